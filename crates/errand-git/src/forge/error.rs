//! What went wrong talking to a forge, in the user's terms: which token, which repository,
//! what to change. Invariant: no variant holds the token; messages a forge sends back are
//! scrubbed of it before they land here (see `api.rs`), so `Display` and `Debug` are safe to log.

use super::{ForgeKind, RepoRef};

/// A forge API call that failed. `Display` says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    #[error("forge configuration: {problem}")]
    InvalidConfig { problem: String },

    #[error(
        "{forge} at {api_base} refused the token (HTTP 401) when asked to {action}; check that the configured token is valid, not expired and not revoked"
    )]
    TokenRefused { forge: ForgeKind, api_base: String, action: String },

    #[error(
        "{forge} at {api_base} would not let the token {action} (HTTP 403{message}); the token needs {scope}"
    )]
    TokenLacksScope {
        forge: ForgeKind,
        api_base: String,
        action: String,
        scope: String,
        message: String,
    },

    #[error(
        "{forge} at {api_base} is rate-limiting this token (HTTP {status}) while asked to {action}; wait a while and retry, or use a token with a higher limit"
    )]
    RateLimited { forge: ForgeKind, api_base: String, action: String, status: u16 },

    #[error(
        "{what} was not found at {api_base} (HTTP 404), or the token cannot see it; check the owner, name and number, and that the token has access to the repository"
    )]
    NotFound { what: String, api_base: String },

    /// 409, 412, 422, 423: the forge understood the request and said no, with its reason
    /// ("A pull request already exists for owner:branch.").
    #[error("{forge} refused to {action}: {message} (HTTP {status})")]
    Rejected { forge: ForgeKind, action: String, status: u16, message: String },

    /// Redirects are not followed (the token must not travel to another address).
    #[error(
        "{forge} at {api_base} answered HTTP {status} (moved{location}) when asked to {action}; the repository was probably renamed or transferred: update its URL"
    )]
    Moved { forge: ForgeKind, api_base: String, action: String, status: u16, location: String },

    #[error("cannot reach {api_base} to {action}: {reason}; check the API address and the network")]
    Unreachable { api_base: String, action: String, reason: String },

    #[error(
        "{api_base} did not answer within {seconds} s when asked to {action}; the forge may be overloaded, try again later"
    )]
    TimedOut { api_base: String, action: String, seconds: u64 },

    #[error("{forge} at {api_base} failed to {action} (HTTP {status}{message}); try again later")]
    ServerError { forge: ForgeKind, api_base: String, action: String, status: u16, message: String },

    #[error(
        "{forge} at {api_base} answered the request to {action} with something Errand cannot read: {problem}; is the API address right (GitHub: https://api.github.com or https://HOST/api/v3, Gitea: https://HOST/api/v1)?"
    )]
    UnexpectedResponse { forge: ForgeKind, api_base: String, action: String, problem: String },
}

/// What Errand was asking the forge to do: names the action in errors, what a 404 is about,
/// and which token permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    ReadRepository,
    ListPullRequests,
    OpenPullRequest,
    UpdatePullRequest(u64),
    ReadIssue(u64),
    CommentOnIssue(u64),
}

impl Action {
    /// "open a pull request on owner/repo", for "… would not let the token {action}".
    pub(crate) fn describe(self, repo: &RepoRef) -> String {
        match self {
            Action::ReadRepository => format!("read repository {repo}"),
            Action::ListPullRequests => format!("list the pull requests of {repo}"),
            Action::OpenPullRequest => format!("open a pull request on {repo}"),
            Action::UpdatePullRequest(n) => format!("update pull request #{n} of {repo}"),
            Action::ReadIssue(n) => format!("read issue #{n} of {repo}"),
            Action::CommentOnIssue(n) => format!("comment on issue #{n} of {repo}"),
        }
    }

    /// What a 404 means for this action.
    pub(crate) fn missing(self, repo: &RepoRef) -> String {
        match self {
            Action::UpdatePullRequest(n) => format!("pull request #{n} of repository {repo}"),
            Action::ReadIssue(n) | Action::CommentOnIssue(n) => {
                format!("issue #{n} of repository {repo}")
            }
            _ => format!("repository {repo}"),
        }
    }

    /// The permission a token needs for this action, in the forge's own words.
    // GitHub: "Permissions required for fine-grained personal access tokens" on each REST
    // endpoint's page; classic tokens need `repo` (private) or `public_repo`. Gitea: token scope
    // categories `repository` (pulls live under /repos) and `issue` (issues and comments).
    pub(crate) fn scope(self, kind: ForgeKind) -> &'static str {
        match (kind, self) {
            (ForgeKind::GitHub, Action::ReadRepository) => {
                "read access to the repository (fine-grained: \"Metadata: read\"; classic: `repo` for a private repository)"
            }
            (ForgeKind::GitHub, Action::ListPullRequests) => {
                "fine-grained \"Pull requests: read\" (classic: `repo`, or `public_repo` for a public repository)"
            }
            (ForgeKind::GitHub, Action::OpenPullRequest | Action::UpdatePullRequest(_)) => {
                "fine-grained \"Pull requests: read and write\" (classic: `repo`, or `public_repo` for a public repository)"
            }
            (ForgeKind::GitHub, Action::ReadIssue(_)) => {
                "fine-grained \"Issues: read\" (classic: `repo`, or none for a public repository)"
            }
            (ForgeKind::GitHub, Action::CommentOnIssue(_)) => {
                "fine-grained \"Issues: read and write\", or \"Pull requests: read and write\" on a pull request (classic: `repo` or `public_repo`)"
            }
            (ForgeKind::Gitea, Action::ReadRepository | Action::ListPullRequests) => {
                "the `read:repository` scope"
            }
            (ForgeKind::Gitea, Action::OpenPullRequest | Action::UpdatePullRequest(_)) => {
                "the `write:repository` scope"
            }
            (ForgeKind::Gitea, Action::ReadIssue(_)) => "the `read:issue` scope",
            (ForgeKind::Gitea, Action::CommentOnIssue(_)) => "the `write:issue` scope",
        }
    }
}
