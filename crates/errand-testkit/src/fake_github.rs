//! A small fake of GitHub's REST API for tests of delivery and triggers: the operations Errand
//! uses (repository, pull requests, issue comments), answering with the fields GitHub's
//! description declares and recording every request. The clients themselves are checked
//! against the published description in errand-git's `tests/forge.rs`; this fake is for flows.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::{get, patch};
use serde_json::{Value, json};

#[derive(Default)]
pub struct FakeGitHub {
    pub pulls: Vec<Value>,
    /// Every request: method, what (`pulls`, `pulls/1`, `comments/12`), body.
    pub requests: Vec<(String, String, Value)>,
}

pub type Shared = Arc<Mutex<FakeGitHub>>;

/// The few GitHub operations delivery uses, answering with the fields GitHub's description
/// declares for them.
pub async fn fake_github() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/repos/{owner}/{repo}", get(|Path((o, r)): Path<(String, String)>| async move {
            Json(json!({"id": 1, "name": r, "full_name": format!("{o}/{r}"), "default_branch": "main"}))
        }))
        .route(
            "/repos/{owner}/{repo}/pulls",
            get(|State(s): State<Shared>, axum::extract::RawQuery(q): axum::extract::RawQuery| async move {
                let mut s = s.lock().unwrap();
                s.requests.push(("GET".into(), format!("pulls?{}", q.clone().unwrap_or_default()), Value::Null));
                let head = q.unwrap_or_default().split('&').find_map(|kv| kv.strip_prefix("head=").map(str::to_string));
                let open: Vec<Value> = s
                    .pulls
                    .iter()
                    .filter(|p| head.as_deref().is_none_or(|h| h.replace("%2F", "/").ends_with(p["head"]["ref"].as_str().unwrap())))
                    .cloned()
                    .collect();
                Json(Value::Array(open))
            })
            .post(|State(s): State<Shared>, Json(body): Json<Value>| async move {
                let mut s = s.lock().unwrap();
                s.requests.push(("POST".into(), "pulls".into(), body.clone()));
                let number = s.pulls.len() + 1;
                let pull = json!({
                    "number": number, "state": "open", "title": body["title"], "body": body["body"],
                    "html_url": format!("https://github.example/o/project/pull/{number}"),
                    "head": {"ref": body["head"], "repo": {"full_name": "o/project"}},
                    "base": {"ref": body["base"], "repo": {"full_name": "o/project"}},
                });
                s.pulls.push(pull.clone());
                (axum::http::StatusCode::CREATED, Json(pull))
            }),
        )
        .route(
            "/repos/{owner}/{repo}/pulls/{number}",
            patch(|State(s): State<Shared>, Path((_, _, n)): Path<(String, String, usize)>, Json(body): Json<Value>| async move {
                let mut s = s.lock().unwrap();
                s.requests.push(("PATCH".into(), format!("pulls/{n}"), body.clone()));
                let pull = &mut s.pulls[n - 1];
                pull["title"] = body["title"].clone();
                pull["body"] = body["body"].clone();
                Json(pull.clone())
            }),
        )
        .route(
            "/repos/{owner}/{repo}/issues/{number}/comments",
            axum::routing::post(|State(s): State<Shared>, Path((_, _, n)): Path<(String, String, u64)>, Json(body): Json<Value>| async move {
                let mut s = s.lock().unwrap();
                s.requests.push(("POST".into(), format!("comments/{n}"), body.clone()));
                (
                    axum::http::StatusCode::CREATED,
                    Json(json!({"id": 1, "body": body["body"], "html_url": format!("https://github.example/o/project/issues/{n}#issuecomment-1")})),
                )
            }),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}
