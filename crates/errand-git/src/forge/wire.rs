//! The fields Errand reads from forge answers. GitHub and Gitea name them alike for everything
//! used here (checked against `github-subset.json` and `gitea-subset.json` in the shared
//! conformance data); everything else in an answer is ignored, and fields a forge may send as
//! `null` are `Option`s.

use serde::Deserialize;

use super::PullRequest;

#[derive(Deserialize)]
pub(crate) struct Repository {
    /// GitHub `full-repository.default_branch`; Gitea `Repository.default_branch` (empty for
    /// an empty repository).
    #[serde(default)]
    pub(crate) default_branch: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Pull {
    pub(crate) number: u64,
    pub(crate) html_url: String,
    #[serde(default)]
    pub(crate) state: Option<String>,
    pub(crate) head: Branch,
    pub(crate) base: Branch,
}

#[derive(Deserialize)]
pub(crate) struct Branch {
    #[serde(rename = "ref")]
    pub(crate) name: String,
    /// `null` on GitHub when the head's fork was deleted.
    #[serde(default)]
    pub(crate) repo: Option<RepoName>,
}

#[derive(Deserialize)]
pub(crate) struct RepoName {
    #[serde(default)]
    pub(crate) full_name: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Issue {
    pub(crate) number: u64,
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) body: Option<String>,
    #[serde(default)]
    pub(crate) user: Option<User>,
    pub(crate) html_url: String,
}

#[derive(Deserialize)]
pub(crate) struct User {
    pub(crate) login: String,
}

#[derive(Deserialize)]
pub(crate) struct Comment {
    pub(crate) html_url: String,
}

impl From<Pull> for PullRequest {
    fn from(pull: Pull) -> PullRequest {
        PullRequest {
            number: pull.number,
            url: pull.html_url,
            head: pull.head.name,
            base: pull.base.name,
            state: pull.state.unwrap_or_default(),
        }
    }
}
