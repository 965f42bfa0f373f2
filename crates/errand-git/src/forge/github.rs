//! What only GitHub does: finding a branch's open pull request with the list endpoint's `head`
//! filter (`GET /repos/{owner}/{repo}/pulls?state=open&head=owner:branch`, operation
//! `pulls/list`). Headers and authentication are set up in `api.rs`.

use reqwest::Method;

use super::api::Api;
use super::error::Action;
use super::{ForgeError, PullRequest, RepoRef, wire};

/// The open pull request whose head is `branch` in `repo` itself. GitHub filters by
/// `user:ref-name`; a branch of the same name in a fork has another user, so it is not found.
pub(crate) async fn find_open_pull_request(
    api: &Api,
    repo: &RepoRef,
    branch: &str,
) -> Result<Option<PullRequest>, ForgeError> {
    let mut url = api.repo_url(repo, &["pulls"]);
    url.query_pairs_mut()
        .append_pair("state", "open")
        .append_pair("head", &format!("{}:{branch}", repo.owner))
        .append_pair("per_page", "100");
    let pulls: Vec<wire::Pull> =
        api.call(Action::ListPullRequests, repo, Method::GET, url, None::<&()>).await?;
    Ok(pulls.into_iter().find(|pull| pull.head.name == branch).map(PullRequest::from))
}
