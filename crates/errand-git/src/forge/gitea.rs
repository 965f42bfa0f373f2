//! What only Gitea (and Forgejo, which serves the same API) does: its pull request list has no
//! `head` filter (operation `repoListPullRequests` in Gitea 1.22 takes `state`, `sort`,
//! `milestone`, `labels`, `page`, `limit`), so finding a branch's open pull request pages
//! through the open ones. Headers and authentication are set up in `api.rs`.

use reqwest::Method;

use super::api::Api;
use super::error::Action;
use super::{ForgeError, PullRequest, RepoRef, wire};

/// Gitea caps `limit` at its `[api] MAX_RESPONSE_ITEMS`, 50 by default.
const PAGE_SIZE: usize = 50;
/// 2,500 open pull requests; past that, a duplicate would still be refused by the forge (409).
const MAX_PAGES: usize = 50;

/// The open pull request whose head is `branch` in `repo` itself (not a fork's branch of the
/// same name).
pub(crate) async fn find_open_pull_request(
    api: &Api,
    repo: &RepoRef,
    branch: &str,
) -> Result<Option<PullRequest>, ForgeError> {
    let full_name = format!("{}/{}", repo.owner, repo.name);
    for page in 1..=MAX_PAGES {
        let mut url = api.repo_url(repo, &["pulls"]);
        url.query_pairs_mut()
            .append_pair("state", "open")
            .append_pair("page", &page.to_string())
            .append_pair("limit", &PAGE_SIZE.to_string());
        let pulls: Vec<wire::Pull> =
            api.call(Action::ListPullRequests, repo, Method::GET, url, None::<&()>).await?;
        let last = pulls.len() < PAGE_SIZE;
        let found = pulls.into_iter().find(|pull| {
            pull.head.name == branch
                && pull
                    .head
                    .repo
                    .as_ref()
                    .and_then(|r| r.full_name.as_deref())
                    .is_none_or(|name| name.eq_ignore_ascii_case(&full_name))
        });
        if let Some(pull) = found {
            return Ok(Some(pull.into()));
        }
        if last {
            return Ok(None);
        }
    }
    tracing::warn!(repo = %full_name, branch, "more than {} open pull requests; stopped looking", PAGE_SIZE * MAX_PAGES);
    Ok(None)
}
