//! Forge clients (design: errand-git owns "forge clients (GitHub, Gitea/Forgejo) for pull
//! requests and webhooks"): opening and updating pull requests, reading and commenting on
//! issues, over each forge's REST API.
//!
//! One [`ForgeClient`] per forge and token. Only endpoints present in both GitHub's and Gitea's
//! published API descriptions are used (the subsets in the shared conformance data, which the
//! tests in `tests/forge.rs` check every request against), and both forges name the fields read
//! here alike (`wire.rs`). What differs lives in one place each: authentication and headers
//! (`api.rs`), finding a branch's open pull request (`github.rs`, `gitea.rs`), and links to
//! lines of code (`citation.rs`).
//!
//! Invariant: the token is never part of a URL, an error, a log line or a `Debug` output.

mod api;
mod citation;
mod error;
mod gitea;
mod github;
mod wire;

use std::fmt;

use reqwest::Method;
use serde::Serialize;

pub use citation::citation_link;
pub use error::ForgeError;

use crate::remote::{RemoteUrl, Transport};
use api::Api;
use error::Action;

/// GitHub's public API address; GitHub Enterprise Server serves it at `https://HOST/api/v3`.
pub const GITHUB_API_BASE: &str = "https://api.github.com";

/// Which REST API a forge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForgeKind {
    /// github.com and GitHub Enterprise Server.
    GitHub,
    /// Gitea, and Forgejo, which keeps Gitea's API (`/api/v1`).
    Gitea,
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForgeKind::GitHub => "GitHub",
            ForgeKind::Gitea => "Gitea",
        })
    }
}

/// Where a forge's API is and the token to use there.
#[derive(Clone)]
pub struct ForgeConfig {
    pub kind: ForgeKind,
    /// The API address, e.g. `https://api.github.com`, `https://ghe.example.com/api/v3`,
    /// `https://gitea.example.com/api/v1`.
    pub api_base: String,
    /// Never shown: `Debug` prints `<redacted>`.
    pub token: String,
}

impl ForgeConfig {
    pub fn new(kind: ForgeKind, api_base: impl Into<String>, token: impl Into<String>) -> Self {
        ForgeConfig { kind, api_base: api_base.into(), token: token.into() }
    }
}

impl fmt::Debug for ForgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForgeConfig")
            .field("kind", &self.kind)
            .field("api_base", &self.api_base)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A repository on a forge: `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    pub fn new(owner: impl Into<String>, name: impl Into<String>) -> Self {
        RepoRef { owner: owner.into(), name: name.into() }
    }

    /// The forge repository a clone URL points at: the last two path segments, `.git` dropped
    /// (`https://github.com/o/r.git`, `git@github.com:o/r.git`, `ssh://git@host:2222/o/r`,
    /// `https://host/gitea/o/r` for a forge under a sub-path). `None` for `file://` URLs and
    /// paths with fewer than two segments.
    pub fn from_url(url: &RemoteUrl) -> Option<RepoRef> {
        if url.transport() == Transport::File {
            return None;
        }
        let mut segments = url.path().split('/').filter(|s| !s.is_empty()).rev();
        let name = segments.next()?;
        let owner = segments.next()?;
        let name = name.strip_suffix(".git").unwrap_or(name);
        if name.is_empty() {
            return None;
        }
        Some(RepoRef::new(owner, name))
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A pull request as Errand tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    /// The page a person opens (`html_url`), not the API address.
    pub url: String,
    /// The branch with the changes.
    pub head: String,
    /// The branch they are to be merged into.
    pub base: String,
    /// `open` or `closed`, as the forge says.
    pub state: String,
}

/// What to open: `head` and `base` are branch names in the same repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPullRequest {
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
}

/// An issue (or a pull request read as an issue: both forges serve those there too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    /// Empty when the issue has no description.
    pub body: String,
    /// `None` when the forge no longer knows the author (a deleted account).
    pub user_login: Option<String>,
    pub html_url: String,
}

/// A client for one forge's REST API with one token. Cheap to share by reference; the HTTP
/// connection pool lives inside.
pub struct ForgeClient {
    api: Api,
}

impl fmt::Debug for ForgeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForgeClient").field("kind", &self.api.kind()).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct PullRequestText<'a> {
    title: &'a str,
    body: &'a str,
}

#[derive(Serialize)]
struct CommentText<'a> {
    body: &'a str,
}

impl ForgeClient {
    /// Checks the configuration (an http(s) API address without credentials in it, a token
    /// that can go in a header); nothing is sent yet.
    pub fn new(config: ForgeConfig) -> Result<ForgeClient, ForgeError> {
        Ok(ForgeClient { api: Api::new(config)? })
    }

    pub fn kind(&self) -> ForgeKind {
        self.api.kind()
    }

    /// The repository's default branch, the base of a pull request unless told otherwise.
    /// `GET /repos/{owner}/{repo}`.
    pub async fn default_branch(&self, repo: &RepoRef) -> Result<String, ForgeError> {
        let action = Action::ReadRepository;
        let url = self.api.repo_url(repo, &[]);
        let answer: wire::Repository =
            self.api.call(action, repo, Method::GET, url, None::<&()>).await?;
        match answer.default_branch {
            Some(branch) if !branch.is_empty() => Ok(branch),
            _ => Err(self.api.unexpected(
                action,
                repo,
                "no default branch (is the repository empty? push a first commit)".into(),
            )),
        }
    }

    /// Opens a pull request. When one is already open for the branch, the forge refuses
    /// ([`ForgeError::Rejected`], GitHub 422 / Gitea 409): look for it first with
    /// [`ForgeClient::find_open_pull_request`]. `POST /repos/{owner}/{repo}/pulls`.
    pub async fn open_pull_request(
        &self,
        repo: &RepoRef,
        new: &NewPullRequest,
    ) -> Result<PullRequest, ForgeError> {
        let url = self.api.repo_url(repo, &["pulls"]);
        let pull: wire::Pull =
            self.api.call(Action::OpenPullRequest, repo, Method::POST, url, Some(new)).await?;
        Ok(pull.into())
    }

    /// The open pull request from `head_branch` of `repo` itself, if there is one: a
    /// follow-up updates it instead of opening another.
    pub async fn find_open_pull_request(
        &self,
        repo: &RepoRef,
        head_branch: &str,
    ) -> Result<Option<PullRequest>, ForgeError> {
        match self.api.kind() {
            ForgeKind::GitHub => github::find_open_pull_request(&self.api, repo, head_branch).await,
            ForgeKind::Gitea => gitea::find_open_pull_request(&self.api, repo, head_branch).await,
        }
    }

    /// Replaces a pull request's title and body. `PATCH /repos/{owner}/{repo}/pulls/{number}`.
    pub async fn update_pull_request(
        &self,
        repo: &RepoRef,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ForgeError> {
        let number_text = number.to_string();
        let url = self.api.repo_url(repo, &["pulls", &number_text]);
        let text = PullRequestText { title, body };
        let action = Action::UpdatePullRequest(number);
        let pull: wire::Pull = self.api.call(action, repo, Method::PATCH, url, Some(&text)).await?;
        Ok(pull.into())
    }

    /// Comments on an issue or pull request; returns the comment's web address.
    /// `POST /repos/{owner}/{repo}/issues/{number}/comments`.
    pub async fn comment_on_issue(
        &self,
        repo: &RepoRef,
        number: u64,
        body: &str,
    ) -> Result<String, ForgeError> {
        let number_text = number.to_string();
        let url = self.api.repo_url(repo, &["issues", &number_text, "comments"]);
        let action = Action::CommentOnIssue(number);
        let comment: wire::Comment =
            self.api.call(action, repo, Method::POST, url, Some(&CommentText { body })).await?;
        Ok(comment.html_url)
    }

    /// Reads an issue (or a pull request's conversation). `GET /repos/{owner}/{repo}/issues/{number}`.
    pub async fn issue(&self, repo: &RepoRef, number: u64) -> Result<Issue, ForgeError> {
        let number_text = number.to_string();
        let url = self.api.repo_url(repo, &["issues", &number_text]);
        let action = Action::ReadIssue(number);
        let issue: wire::Issue = self.api.call(action, repo, Method::GET, url, None::<&()>).await?;
        Ok(Issue {
            number: issue.number,
            title: issue.title,
            body: issue.body.unwrap_or_default(),
            user_login: issue.user.map(|user| user.login),
            html_url: issue.html_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ref_from_clone_urls() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("https://github.com/o/r", Some(("o", "r"))),
            ("https://github.com/o/r.git", Some(("o", "r"))),
            ("https://github.com/o/r/", Some(("o", "r"))),
            ("git@github.com:o/r.git", Some(("o", "r"))),
            ("ssh://git@git.example.com:2222/o/r.git", Some(("o", "r"))),
            ("https://example.com/gitea/o/r.git", Some(("o", "r"))),
            ("https://github.com/r.git", None),
            ("file:///srv/git/o/r.git", None),
        ];
        for (input, want) in cases {
            let url = RemoteUrl::parse(input).unwrap();
            let want = want.map(|(o, n)| RepoRef::new(o, n));
            assert_eq!(RepoRef::from_url(&url), want, "{input}");
        }
    }

    #[test]
    fn the_token_is_in_no_debug_output() {
        let config = ForgeConfig::new(ForgeKind::GitHub, GITHUB_API_BASE, "ghp_secret123");
        assert!(!format!("{config:?}").contains("ghp_secret123"));
        let client = ForgeClient::new(config).unwrap();
        assert!(!format!("{client:?}").contains("ghp_secret123"));
    }

    #[test]
    fn bad_configurations_are_refused_without_echoing_secrets() {
        let cases: &[(&str, &str, &str)] = &[
            ("ftp://example.com", "tok", "must start with https://"),
            ("https://user:hunter2@example.com/api/v1", "tok", "carries credentials"),
            ("not a url", "tok", "is not a URL"),
            ("https://example.com/api/v1", "  ", "no token is configured"),
            ("https://example.com/api/v1", "tok\nen", "not allowed in an HTTP header"),
        ];
        for (base, token, want) in cases {
            let error = ForgeClient::new(ForgeConfig::new(ForgeKind::Gitea, *base, *token))
                .unwrap_err()
                .to_string();
            assert!(error.contains(want), "{base}: {error}");
            assert!(!error.contains("hunter2") && !error.contains("tok\nen"), "{error}");
        }
    }
}
