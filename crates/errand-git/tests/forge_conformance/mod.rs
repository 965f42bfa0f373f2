//! A local forge on loopback that plays GitHub or Gitea from their published API descriptions.
//!
//! Every request it receives is checked against the description (`description.rs`): an
//! operation must exist for its method and path, authentication must take the documented form,
//! query parameters must be declared, a JSON body must validate against the request schema.
//! Every answer is built from the declared response schema with the test's data filled in and
//! validated against it (`schema.rs`), so the fake cannot drift from the real API. Whatever does
//! not conform is recorded; dropping the fake fails the test if anything was.

pub mod description;
pub mod schema;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use errand_git::forge::ForgeKind;
use serde_json::{Value, json};

use description::{Description, Operation, Request, descriptions_dir};
use schema::{instance, validate};

/// The token the fake accepts.
pub const TOKEN: &str = "tok-SECRET-4f2a9c";
pub const OWNER: &str = "octo";
pub const NAME: &str = "hello";

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
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub operation: Option<String>,
    pub status: u16,
}

#[derive(Default)]
pub struct ForgeState {
    pub default_branch: String,
    pub pulls: Vec<FakePull>,
    pub issues: Vec<FakeIssue>,
    pub comments: Vec<(u64, String)>,
    pub requests: Vec<Recorded>,
    pub violations: Vec<String>,
    /// The next answer to an operation (by operation id), instead of the normal one.
    pub scripted: Vec<(String, u16, Value)>,
}

struct Shared {
    description: Description,
    prefix: String,
    web_base: String,
    state: Mutex<ForgeState>,
}

pub struct FakeForge {
    pub kind: ForgeKind,
    /// What to configure Errand with: `http://127.0.0.1:PORT{prefix}`.
    pub api_base: String,
    pub web_base: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeForge {
    /// Serves the description's own base path (Gitea `/api/v1`, GitHub none), or `prefix`
    /// (GitHub Enterprise: `/api/v3`). `None` when the descriptions are missing and `CI` is not
    /// set: the shared-data rule is to skip with a reason then, and to fail under CI.
    pub async fn start(kind: ForgeKind, prefix: Option<&str>) -> Option<FakeForge> {
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
        let prefix = prefix.map(str::to_string).unwrap_or_else(|| description.base_path());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let web_base = format!("http://{}", listener.local_addr().unwrap());
        let api_base = format!("{web_base}{prefix}");
        let state = ForgeState { default_branch: "main".into(), ..ForgeState::default() };
        let shared = Arc::new(Shared {
            description,
            prefix,
            web_base: web_base.clone(),
            state: Mutex::new(state),
        });
        let app = axum::Router::new().fallback(serve).with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Some(FakeForge { kind, api_base, web_base, shared, server })
    }

    pub fn state(&self) -> MutexGuard<'_, ForgeState> {
        self.shared.state.lock().unwrap()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    pub fn add_pull(&self, head: &str, state: &str) -> u64 {
        self.add_pull_from(head, state, &format!("{OWNER}/{NAME}"))
    }

    pub fn add_pull_from(&self, head: &str, state: &str, head_repo: &str) -> u64 {
        let mut s = self.state();
        let number = next_number(&s);
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

    pub fn add_issue(&self, title: &str, body: Option<&str>, user: Option<&str>) -> u64 {
        let mut s = self.state();
        let number = next_number(&s);
        s.issues.push(FakeIssue {
            number,
            title: title.into(),
            body: body.map(Into::into),
            user: user.map(Into::into),
        });
        number
    }

    pub fn script(&self, operation: &str, status: u16, body: Value) {
        self.state().scripted.push((operation.into(), status, body));
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.server.abort();
        let violations = std::mem::take(&mut self.state().violations);
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "requests or answers that do not conform to the {} description:\n{}",
                self.kind,
                violations.join("\n")
            );
        }
    }
}

fn next_number(state: &ForgeState) -> u64 {
    let pulls = state.pulls.iter().map(|p| p.number);
    pulls.chain(state.issues.iter().map(|i| i.number)).max().unwrap_or(0) + 1
}

async fn serve(State(shared): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
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

impl Shared {
    fn answer(&self, parts: &Parts, bytes: &[u8]) -> (u16, Option<Value>) {
        let mut state = self.state.lock().unwrap();
        let method = parts.method.as_str().to_string();
        let query: Vec<(String, String)> = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name, true), decode(value, true))
            })
            .collect();
        let body: Option<Value> = serde_json::from_slice(bytes).ok();
        let path = parts.uri.path().to_string();
        let mut record = Recorded {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
            operation: None,
            status: 404,
        };
        let doc = &self.description.doc;
        let Some(rest) = path.strip_prefix(&self.prefix).filter(|r| r.starts_with('/')) else {
            state.violations.push(format!("{method} {path}: outside the API base {}", self.prefix));
            state.requests.push(record);
            return (404, None);
        };
        let segments: Vec<String> = rest[1..].split('/').map(|s| decode(s, false)).collect();
        let Some(operation) = self.description.find_operation(&method, &segments) else {
            state.violations.push(format!("{method} {rest}: no such operation in the description"));
            state.requests.push(record);
            return (404, None);
        };
        record.operation = Some(operation.id.clone());
        let header =
            |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let request =
            Request { method: &method, query: &query, header: &header, body: Some(bytes) };
        let problems = self.description.check_request(&operation, &request, TOKEN);
        state.violations.extend(problems);

        let credential = header("authorization").unwrap_or_default();
        let credential = credential.split_once(' ').map(|(_, token)| token).unwrap_or("");
        let (status, fill) = if credential != TOKEN {
            (401, Some(self.error_body("Bad credentials")))
        } else if let Some(i) = state.scripted.iter().position(|(id, _, _)| *id == operation.id) {
            let (_, status, body) = state.scripted.remove(i);
            (status, Some(body))
        } else {
            self.handle(&mut state, &operation, &query, body)
        };
        let body = match (self.description.response_schema(&operation, status), fill) {
            (Some(schema), fill) => {
                let answer = instance(doc, schema, fill.as_ref());
                let mut problems = Vec::new();
                validate(
                    doc,
                    schema,
                    &answer,
                    &format!("answer to {} ({status})", operation.id),
                    true,
                    &mut problems,
                );
                state.violations.extend(problems);
                Some(answer)
            }
            (None, fill) => fill,
        };
        record.status = status;
        state.requests.push(record);
        (status, body)
    }

    fn error_body(&self, message: &str) -> Value {
        match self.description.kind {
            ForgeKind::GitHub => {
                json!({"message": message, "documentation_url": "https://docs.github.com/rest"})
            }
            ForgeKind::Gitea => {
                json!({"message": message, "url": format!("{}/api/swagger", self.web_base)})
            }
        }
    }

    fn handle(
        &self,
        state: &mut ForgeState,
        operation: &Operation<'_>,
        query: &[(String, String)],
        body: Option<Value>,
    ) -> (u16, Option<Value>) {
        let param = |names: &[&str]| {
            operation
                .path_params
                .iter()
                .find(|(n, _)| names.contains(&n.as_str()))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let query_value =
            |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let ok = self.description.success_status(operation);
        if param(&["owner"]) != OWNER || param(&["repo"]) != NAME {
            return (404, Some(self.error_body("Not Found")));
        }
        let number: u64 = param(&["pull_number", "issue_number", "index"]).parse().unwrap_or(0);
        let text = |key: &str| {
            body.as_ref().and_then(|b| b.get(key)).and_then(Value::as_str).map(str::to_string)
        };
        match operation.id.as_str() {
            "repos/get" | "repoGet" => {
                (ok, Some(self.repo_fill(&format!("{OWNER}/{NAME}"), Some(&state.default_branch))))
            }
            "pulls/list" | "repoListPullRequests" => {
                let wanted_state = query_value("state").unwrap_or("open");
                let head = query_value("head").map(|h| h.split_once(':').unwrap_or(("", h)));
                let page: usize =
                    query_value("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
                let size: usize = query_value("per_page")
                    .or(query_value("limit"))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(30);
                let size =
                    size.min(if self.description.kind == ForgeKind::Gitea { 50 } else { 100 });
                let pulls: Vec<Value> = state
                    .pulls
                    .iter()
                    .filter(|p| wanted_state == "all" || p.state == wanted_state)
                    .filter(|p| {
                        head.is_none_or(|(user, branch)| {
                            p.head == branch && p.head_repo.split('/').next() == Some(user)
                        })
                    })
                    .skip((page - 1) * size)
                    .take(size)
                    .map(|p| self.pull_fill(p))
                    .collect();
                (ok, Some(Value::Array(pulls)))
            }
            "pulls/create" | "repoCreatePullRequest" => {
                let (head, base) =
                    (text("head").unwrap_or_default(), text("base").unwrap_or_default());
                if let Some(existing) =
                    state.pulls.iter().find(|p| p.state == "open" && p.head == head)
                {
                    return match self.description.kind {
                        // What GitHub answers (schema validation-error).
                        ForgeKind::GitHub => (422, Some(json!({
                            "message": "Validation Failed",
                            "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {OWNER}:{head}.")}],
                            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                        }))),
                        // Gitea 1.22 models/issues ErrPullRequestAlreadyExists, sent as 409.
                        ForgeKind::Gitea => (409, Some(self.error_body(&format!(
                            "pull request already exists for these targets [id: {0}, issue_id: {0}, head_repo_id: 1, base_repo_id: 1, head_branch: {head}, base_branch: {1}]",
                            existing.number, existing.base
                        )))),
                    };
                }
                let number = next_number(state);
                let pull = FakePull {
                    number,
                    title: text("title").unwrap_or_default(),
                    body: text("body").unwrap_or_default(),
                    head,
                    base,
                    state: "open".into(),
                    head_repo: format!("{OWNER}/{NAME}"),
                };
                let fill = self.pull_fill(&pull);
                state.pulls.push(pull);
                (ok, Some(fill))
            }
            "pulls/update" | "repoEditPullRequest" => {
                let Some(pull) = state.pulls.iter_mut().find(|p| p.number == number) else {
                    return (404, Some(self.error_body("Not Found")));
                };
                pull.title = text("title").unwrap_or(pull.title.clone());
                pull.body = text("body").unwrap_or(pull.body.clone());
                let pull = pull.clone();
                (ok, Some(self.pull_fill(&pull)))
            }
            "issues/get" | "issueGetIssue" => {
                match state.issues.iter().find(|i| i.number == number) {
                    Some(issue) => (ok, Some(self.issue_fill(issue))),
                    None => (404, Some(self.error_body("Not Found"))),
                }
            }
            "issues/create-comment" | "issueCreateComment" => {
                if !state.issues.iter().any(|i| i.number == number)
                    && !state.pulls.iter().any(|p| p.number == number)
                {
                    return (404, Some(self.error_body("Not Found")));
                }
                let id = 9000 + state.comments.len() as u64;
                let comment_body = text("body").unwrap_or_default();
                state.comments.push((number, comment_body.clone()));
                let html_url =
                    format!("{}/{OWNER}/{NAME}/issues/{number}#issuecomment-{id}", self.web_base);
                (
                    ok,
                    Some(
                        json!({"id": id, "body": comment_body, "html_url": html_url, "user": self.user_fill("errand-bot")}),
                    ),
                )
            }
            other => {
                state.violations.push(format!("the fake has no answer for operation {other}"));
                (501, None)
            }
        }
    }

    fn user_fill(&self, login: &str) -> Value {
        json!({"login": login, "html_url": format!("{}/{login}", self.web_base)})
    }

    fn repo_fill(&self, full_name: &str, default_branch: Option<&str>) -> Value {
        let (owner, name) = full_name.split_once('/').unwrap();
        let mut repo = json!({"name": name, "full_name": full_name, "html_url": format!("{}/{full_name}", self.web_base), "owner": self.user_fill(owner)});
        if let Some(branch) = default_branch {
            repo["default_branch"] = json!(branch);
        }
        repo
    }

    fn pull_fill(&self, pull: &FakePull) -> Value {
        let kind = self.description.kind;
        let branch = |name: &str, repo: &str| {
            let owner = repo.split('/').next().unwrap();
            let mut fill = json!({"ref": name, "label": format!("{owner}:{name}"), "sha": "1f".repeat(20), "repo": self.repo_fill(repo, None)});
            if kind == ForgeKind::GitHub {
                fill["user"] = self.user_fill(owner);
            }
            fill
        };
        let page = if kind == ForgeKind::GitHub { "pull" } else { "pulls" };
        json!({
            "number": pull.number,
            "title": pull.title,
            "body": pull.body,
            "state": pull.state,
            "html_url": format!("{}/{OWNER}/{NAME}/{page}/{}", self.web_base, pull.number),
            "user": self.user_fill("errand-bot"),
            "head": branch(&pull.head, &pull.head_repo),
            "base": branch(&pull.base, &format!("{OWNER}/{NAME}")),
        })
    }

    fn issue_fill(&self, issue: &FakeIssue) -> Value {
        json!({
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "state": "open",
            "html_url": format!("{}/{OWNER}/{NAME}/issues/{}", self.web_base, issue.number),
            "user": issue.user.as_deref().map(|u| self.user_fill(u)),
        })
    }
}

/// Percent-decoding of a path segment or (with `plus`) a form-encoded query part.
fn decode(text: &str, plus: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
