//! A forge on loopback that plays GitHub or Gitea from their published API descriptions: the
//! one fake forge for every test, from the clients' own (errand-git) to the flows through the
//! real `errand serve`.
//!
//! Every request it receives is checked against the description (`description.rs`): an
//! operation must exist for its method and path, authentication must take the documented form,
//! query parameters must be declared, a JSON body must validate against the request schema.
//! Every answer is built from the declared response schema with the forge's state filled in and
//! validated against it (`schema.rs`), so the fake cannot drift from the real API. What each
//! operation does to that state (one repository, its pull requests, issues and comments) is in
//! `operations.rs`. Whatever does not conform is recorded; [`ConformingForge::assert_conformed`]
//! or dropping the fake fails the test if anything was.
//!
//! The descriptions are read at test time from `../shared/conformance/forges/` beside the
//! workspace. When they are missing, [`ConformingForge::start`] says why and returns `None` so
//! the test can skip; under `CI` it panics instead.

mod description;
mod operations;
mod schema;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use description::{Description, descriptions_dir};

/// The token the fake accepts unless [`ForgeSetup::token`] says otherwise.
pub const TOKEN: &str = "tok-SECRET-4f2a9c";
/// The repository the fake holds unless [`ForgeSetup`] names another.
pub const OWNER: &str = "octo";
pub const NAME: &str = "hello";

/// Which forge's description the fake plays. Its own type: errand-git dev-depends on this
/// crate, so this crate cannot use errand-git's `ForgeKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    Gitea,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::GitHub => "GitHub",
            Kind::Gitea => "Gitea",
        })
    }
}

/// What the fake serves besides its description.
#[derive(Clone, Debug)]
pub struct ForgeSetup {
    /// The one repository it holds.
    pub owner: String,
    pub name: String,
    /// The only token it accepts; any other is answered 401.
    pub token: String,
    /// The API's path prefix; `None` is the description's own base path (Gitea `/api/v1`,
    /// GitHub none). GitHub Enterprise serves under `/api/v3`.
    pub prefix: Option<String>,
    /// Where the web pages it links (`html_url`) live; `None` is the fake's own address.
    pub web_base: Option<String>,
}

impl Default for ForgeSetup {
    fn default() -> Self {
        ForgeSetup {
            owner: OWNER.into(),
            name: NAME.into(),
            token: TOKEN.into(),
            prefix: None,
            web_base: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct FakePull {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub state: String,
    /// `owner/name` of the repository the head branch is in.
    pub head_repo: String,
}

#[derive(Clone, Debug)]
pub struct FakeIssue {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub user: Option<String>,
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// A short name of what was asked for, relative to the repository: `repo`, `pulls`,
    /// `pulls/1`, `issues/5`, `comments/5` (comments on issue or pull request 5); the whole
    /// path for anything else.
    pub what: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The JSON body; `Null` when there was none (or it was not JSON, which is a violation).
    pub body: Value,
    /// The description's operation id, when one matched.
    pub operation: Option<String>,
    pub status: u16,
}

/// The forge's data, which tests may arrange and inspect through [`ConformingForge::state`].
#[derive(Default)]
pub struct ForgeState {
    pub default_branch: String,
    pub pulls: Vec<FakePull>,
    pub issues: Vec<FakeIssue>,
    /// `(issue or pull request number, body)` of each comment made.
    pub comments: Vec<(u64, String)>,
    pub requests: Vec<Recorded>,
    pub violations: Vec<String>,
    /// The next answer to an operation (by operation id), instead of the normal one.
    pub scripted: Vec<(String, u16, Value)>,
}

impl ForgeState {
    /// Pull requests and issues share one sequence of numbers, as on both forges.
    fn next_number(&self) -> u64 {
        let pulls = self.pulls.iter().map(|p| p.number);
        pulls.chain(self.issues.iter().map(|i| i.number)).max().unwrap_or(0) + 1
    }
}

struct Shared {
    description: Description,
    setup: ForgeSetup,
    prefix: String,
    web_base: String,
    state: Mutex<ForgeState>,
}

pub struct ConformingForge {
    pub kind: Kind,
    /// What to configure Errand with: `http://127.0.0.1:PORT{prefix}`.
    pub api_base: String,
    /// Where the `html_url`s it answers point.
    pub web_base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl ConformingForge {
    /// The fake with the default repository (`octo/hello`) and token ([`TOKEN`]).
    pub async fn start(kind: Kind) -> Option<ConformingForge> {
        ConformingForge::start_with(kind, ForgeSetup::default()).await
    }

    /// `None` when the descriptions are missing and `CI` is not set: the shared-data rule is to
    /// skip with a reason then, and to fail under CI.
    pub async fn start_with(kind: Kind, setup: ForgeSetup) -> Option<ConformingForge> {
        let Some(description) = Description::load(kind) else {
            let dir = descriptions_dir();
            assert!(
                std::env::var_os("CI").is_none(),
                "forge API descriptions missing at {} (required when CI is set)",
                dir.display()
            );
            eprintln!("SKIPPED: forge API descriptions not found at {}", dir.display());
            return None;
        };
        let prefix = setup.prefix.clone().unwrap_or_else(|| description.base_path());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let own = format!("http://{}", listener.local_addr().unwrap());
        let web_base = setup.web_base.clone().unwrap_or_else(|| own.clone());
        let api_base = format!("{own}{prefix}");
        let state = ForgeState { default_branch: "main".into(), ..ForgeState::default() };
        let shared = Arc::new(Shared {
            description,
            setup,
            prefix,
            web_base: web_base.clone(),
            state: Mutex::new(state),
        });
        let app = axum::Router::new().fallback(serve).with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Some(ConformingForge { kind, api_base, web_base, shared, server })
    }

    pub fn state(&self) -> MutexGuard<'_, ForgeState> {
        self.shared.state.lock().unwrap()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// An existing pull request from a branch of the fake's repository.
    pub fn add_pull(&self, head: &str, state: &str) -> u64 {
        let repo = format!("{}/{}", self.shared.setup.owner, self.shared.setup.name);
        self.add_pull_from(head, state, &repo)
    }

    /// An existing pull request from `head` in `head_repo` (`owner/name`, a fork).
    pub fn add_pull_from(&self, head: &str, state: &str, head_repo: &str) -> u64 {
        let mut s = self.state();
        let number = s.next_number();
        s.pulls.push(FakePull {
            number,
            title: format!("PR from {head}"),
            body: String::new(),
            head: head.into(),
            base: "main".into(),
            state: state.into(),
            head_repo: head_repo.into(),
        });
        number
    }

    /// An existing issue, with the next number.
    pub fn add_issue(&self, title: &str, body: Option<&str>, user: Option<&str>) -> u64 {
        let number = self.state().next_number();
        self.add_issue_numbered(number, title, body, user);
        number
    }

    /// An existing issue with a given number, as a webhook delivery names it; later pull
    /// requests are numbered after it.
    pub fn add_issue_numbered(
        &self,
        number: u64,
        title: &str,
        body: Option<&str>,
        user: Option<&str>,
    ) {
        self.state().issues.push(FakeIssue {
            number,
            title: title.into(),
            body: body.map(Into::into),
            user: user.map(Into::into),
        });
    }

    /// Answers the next request for `operation` (an operation id of the description) with
    /// `status` and `body`, which is still checked against the declared response schema.
    pub fn script(&self, operation: &str, status: u16, body: Value) {
        self.state().scripted.push((operation.into(), status, body));
    }

    /// Fails the test, listing them, if any request or answer so far did not conform.
    pub fn assert_conformed(&self) {
        let violations = std::mem::take(&mut self.state().violations);
        if !violations.is_empty() {
            panic!(
                "requests or answers that do not conform to the {} description:\n{}",
                self.kind,
                violations.join("\n")
            );
        }
    }
}

impl Drop for ConformingForge {
    fn drop(&mut self) {
        self.server.abort();
        if !std::thread::panicking() {
            self.assert_conformed();
        }
    }
}

async fn serve(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let (status, body) = shared.answer(&parts, &bytes);
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    match body {
        Some(body) => {
            (status, [("content-type", "application/json")], body.to_string()).into_response()
        }
        None => status.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The point of the fake: what the description does not declare fails the test.
    #[tokio::test]
    async fn undeclared_requests_fail_the_test_that_made_them() {
        let Some(forge) = ConformingForge::start(Kind::GitHub).await else { return };
        let http = reqwest::Client::new();
        let send = |method: reqwest::Method, path: &str| {
            http.request(method, format!("{}{path}", forge.api_base))
                .bearer_auth(TOKEN)
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
                .header("user-agent", "errand-test")
        };
        let pulls = format!("/repos/{OWNER}/{NAME}/pulls");
        let body = serde_json::json!({"title": "t", "head": "h", "base": "main", "colour": "red"});
        let created = send(reqwest::Method::POST, &pulls).json(&body).send().await.unwrap();
        assert_eq!(created.status(), 201);
        let missing = send(reqwest::Method::DELETE, &pulls).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        let what: Vec<_> = forge.requests().into_iter().map(|r| (r.method, r.what)).collect();
        assert_eq!(what, [("POST".into(), "pulls".into()), ("DELETE".into(), "pulls".into())]);

        let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            forge.assert_conformed();
        }));
        let message = *failure.unwrap_err().downcast::<String>().unwrap();
        assert!(
            message.contains("body.colour: not a property the description declares"),
            "{message}"
        );
        assert!(message.contains("DELETE /repos/octo/hello/pulls: no such operation"), "{message}");
    }
}
