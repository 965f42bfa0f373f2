//! What the fake forge does with one request: checks it against the description, then plays
//! the operation on its state (the repository, pull requests, issues, comments) and answers
//! with a body built from, and validated against, the declared response schema.

use axum::http::request::Parts;
use serde_json::{Value, json};

use super::description::{Operation, Request};
use super::schema::{instance, validate};
use super::{FakePull, ForgeState, Kind, Recorded, Shared};

impl Shared {
    pub(super) fn answer(&self, parts: &Parts, bytes: &[u8]) -> (u16, Option<Value>) {
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
        let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_string();
        let mut record = Recorded {
            method: method.clone(),
            what: path.clone(),
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
        record.what = self.what(&segments).unwrap_or_else(|| rest.to_string());
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
        let token = &self.setup.token;
        let problems = self.description.check_request(&operation, &request, token);
        state.violations.extend(problems);

        let credential = header("authorization").unwrap_or_default();
        let credential = credential.split_once(' ').map(|(_, token)| token).unwrap_or("");
        let (status, fill) = if credential != token {
            (401, Some(self.error_body("Bad credentials")))
        } else if let Some(i) = state.scripted.iter().position(|(id, _, _)| *id == operation.id) {
            let (_, status, body) = state.scripted.remove(i);
            (status, Some(body))
        } else {
            self.handle(&mut state, &operation, &query, &body)
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

    /// The short name of a request on the fake's repository (see [`Recorded::what`]).
    fn what(&self, segments: &[String]) -> Option<String> {
        let rest = match segments {
            [repos, owner, name, rest @ ..]
                if repos == "repos" && *owner == self.setup.owner && *name == self.setup.name =>
            {
                rest
            }
            _ => return None,
        };
        Some(match rest {
            [] => "repo".into(),
            [issues, number, comments] if issues == "issues" && comments == "comments" => {
                format!("comments/{number}")
            }
            rest => rest.join("/"),
        })
    }

    fn error_body(&self, message: &str) -> Value {
        match self.description.kind {
            Kind::GitHub => {
                json!({"message": message, "documentation_url": "https://docs.github.com/rest"})
            }
            Kind::Gitea => {
                json!({"message": message, "url": format!("{}/api/swagger", self.web_base)})
            }
        }
    }

    fn full_name(&self) -> String {
        format!("{}/{}", self.setup.owner, self.setup.name)
    }

    fn handle(
        &self,
        state: &mut ForgeState,
        operation: &Operation<'_>,
        query: &[(String, String)],
        body: &Value,
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
        if param(&["owner"]) != self.setup.owner || param(&["repo"]) != self.setup.name {
            return (404, Some(self.error_body("Not Found")));
        }
        let number: u64 = param(&["pull_number", "issue_number", "index"]).parse().unwrap_or(0);
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        match operation.id.as_str() {
            "repos/get" | "repoGet" => {
                (ok, Some(self.repo_fill(&self.full_name(), Some(&state.default_branch))))
            }
            "pulls/list" | "repoListPullRequests" => {
                let wanted_state = query_value("state").unwrap_or("open");
                // GitHub: `head=user:branch`; Gitea has no such filter, so clients page.
                let head = query_value("head").map(|h| h.split_once(':').unwrap_or(("", h)));
                let page: usize =
                    query_value("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
                let size: usize = query_value("per_page")
                    .or(query_value("limit"))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(30);
                let size = size.min(if self.description.kind == Kind::Gitea { 50 } else { 100 });
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
            "pulls/create" | "repoCreatePullRequest" => self.create_pull(state, ok, body),
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
                let html_url = format!(
                    "{}/{}/issues/{number}#issuecomment-{id}",
                    self.web_base,
                    self.full_name()
                );
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

    fn create_pull(&self, state: &mut ForgeState, ok: u16, body: &Value) -> (u16, Option<Value>) {
        let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        let (head, base) = (text("head"), text("base"));
        let owner = &self.setup.owner;
        if let Some(existing) = state.pulls.iter().find(|p| p.state == "open" && p.head == head) {
            return match self.description.kind {
                // What GitHub answers (schema validation-error).
                Kind::GitHub => (
                    422,
                    Some(json!({
                        "message": "Validation Failed",
                        "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {owner}:{head}.")}],
                        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                    })),
                ),
                // Gitea 1.22 models/issues ErrPullRequestAlreadyExists, sent as 409.
                Kind::Gitea => (
                    409,
                    Some(self.error_body(&format!(
                        "pull request already exists for these targets [id: {0}, issue_id: {0}, head_repo_id: 1, base_repo_id: 1, head_branch: {head}, base_branch: {1}]",
                        existing.number, existing.base
                    ))),
                ),
            };
        }
        let pull = FakePull {
            number: state.next_number(),
            title: text("title"),
            body: text("body"),
            head,
            base,
            state: "open".into(),
            head_repo: self.full_name(),
        };
        let fill = self.pull_fill(&pull);
        state.pulls.push(pull);
        (ok, Some(fill))
    }

    fn user_fill(&self, login: &str) -> Value {
        json!({"login": login, "html_url": format!("{}/{login}", self.web_base)})
    }

    fn repo_fill(&self, full_name: &str, default_branch: Option<&str>) -> Value {
        let (owner, name) = full_name.split_once('/').expect("full names are owner/name");
        let mut repo = json!({"name": name, "full_name": full_name, "html_url": format!("{}/{full_name}", self.web_base), "owner": self.user_fill(owner)});
        if let Some(branch) = default_branch {
            repo["default_branch"] = json!(branch);
        }
        repo
    }

    fn pull_fill(&self, pull: &FakePull) -> Value {
        let kind = self.description.kind;
        let branch = |name: &str, repo: &str| {
            let owner = repo.split('/').next().unwrap_or(repo);
            let mut fill = json!({"ref": name, "label": format!("{owner}:{name}"), "sha": "1f".repeat(20), "repo": self.repo_fill(repo, None)});
            if kind == Kind::GitHub {
                fill["user"] = self.user_fill(owner);
            }
            fill
        };
        // The web page of a pull request: GitHub `/pull/N`, Gitea `/pulls/N`.
        let page = if kind == Kind::GitHub { "pull" } else { "pulls" };
        json!({
            "number": pull.number,
            "title": pull.title,
            "body": pull.body,
            "state": pull.state,
            "html_url": format!("{}/{}/{page}/{}", self.web_base, self.full_name(), pull.number),
            "user": self.user_fill("errand-bot"),
            "head": branch(&pull.head, &pull.head_repo),
            "base": branch(&pull.base, &self.full_name()),
        })
    }

    fn issue_fill(&self, issue: &super::FakeIssue) -> Value {
        json!({
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "state": "open",
            "html_url": format!("{}/{}/issues/{}", self.web_base, self.full_name(), issue.number),
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
