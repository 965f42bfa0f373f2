//! Tasks started from a forge (design: "Triggers"): a comment that mentions the configured
//! handle (`@errand fix this`) on an issue or pull request, or a configured label on an issue,
//! creates a task on the repository with the issue's text as context; Errand answers on the
//! issue with a link to the task, and, when the task is over, with its pull request (or why
//! there is none).
//!
//! The webhook endpoint is `POST /hooks/<forge host>`. A delivery is believed only when its
//! HMAC-SHA256 signature over the exact body matches the forge's configured secret (compared in
//! constant time); its delivery id is recorded, so a replayed delivery does nothing twice; and
//! only forge users on the allow list can start a task. Everything else gets a clear status and
//! changes nothing. Reporting the outcome survives restarts: triggered tasks are rows in the
//! store that [`report_finished`] works through.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use errand_git::forge::{ForgeClient, ForgeKind, RepoRef};
use errand_protocol::api::{CreateTask, TaskMode};
use errand_protocol::{AttemptState, TaskId};
use errand_store::{Scope, TriggeredTask};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::{ApiFailure, AppState, Caller};
use crate::delivery::Forge;

/// What starts a task on one forge, and who may.
#[derive(Clone)]
pub struct TriggerConfig {
    /// The secret the forge signs deliveries with.
    pub secret: String,
    /// The mention that starts a task in a comment, e.g. `@errand`.
    pub handle: String,
    /// A label that starts a task when put on an issue.
    pub label: Option<String>,
    /// Forge logins allowed to start tasks.
    pub allowed_users: Vec<String>,
    /// The Errand user the tasks belong to.
    pub run_as: String,
}

impl std::fmt::Debug for TriggerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerConfig")
            .field("secret", &"***")
            .field("handle", &self.handle)
            .field("label", &self.label)
            .field("allowed_users", &self.allowed_users)
            .field("run_as", &self.run_as)
            .finish()
    }
}

/// HMAC-SHA256 (RFC 2104), as GitHub's `X-Hub-Signature-256` and Gitea's `X-Gitea-Signature`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `headers` carry a valid signature of `body` for this forge.
pub fn signature_holds(kind: ForgeKind, secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let expected = hex(&hmac_sha256(secret.as_bytes(), body));
    let sent = match kind {
        ForgeKind::GitHub => header(headers, "x-hub-signature-256")
            .and_then(|v| v.strip_prefix("sha256=").map(str::to_string)),
        ForgeKind::Gitea => {
            header(headers, "x-gitea-signature").or_else(|| header(headers, "x-forgejo-signature"))
        }
    };
    sent.is_some_and(|sent| {
        constant_time_eq(sent.trim().to_ascii_lowercase().as_bytes(), expected.as_bytes())
    })
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn event_and_delivery(kind: ForgeKind, headers: &HeaderMap) -> (Option<String>, Option<String>) {
    match kind {
        ForgeKind::GitHub => {
            (header(headers, "x-github-event"), header(headers, "x-github-delivery"))
        }
        ForgeKind::Gitea => (
            header(headers, "x-gitea-event").or_else(|| header(headers, "x-forgejo-event")),
            header(headers, "x-gitea-delivery").or_else(|| header(headers, "x-forgejo-delivery")),
        ),
    }
}

/// What a delivery asks for, once read.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    sender: String,
    instruction: String,
    repository: String,
    clone_url: String,
    issue_number: u64,
    issue_title: String,
    issue_body: String,
}

/// Reads a delivery: `Ok(None)` when it asks for nothing (another event or action, no
/// mention, another label), `Err` when it is malformed.
fn read(event: &str, payload: &Value, trigger: &TriggerConfig) -> Result<Option<Request>, String> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let action = text(&payload["action"]);
    let instruction = match (event, action.as_str()) {
        ("issue_comment", "created") => {
            let body = text(&payload["comment"]["body"]);
            match mention(&body, &trigger.handle) {
                Some(instruction) => instruction,
                None => return Ok(None),
            }
        }
        ("issues", "labeled") => {
            let label = text(&payload["label"]["name"]);
            match &trigger.label {
                Some(wanted) if wanted.eq_ignore_ascii_case(&label) => String::new(),
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let issue = &payload["issue"];
    let number = issue["number"].as_u64().ok_or("the delivery has no issue number")?;
    let repository = text(&payload["repository"]["full_name"]);
    let clone_url = text(&payload["repository"]["clone_url"]);
    let sender = text(&payload["sender"]["login"]);
    if repository.is_empty() || clone_url.is_empty() || sender.is_empty() {
        return Err("the delivery lacks the repository or the sender".into());
    }
    Ok(Some(Request {
        sender,
        instruction,
        repository,
        clone_url,
        issue_number: number,
        issue_title: text(&issue["title"]),
        issue_body: text(&issue["body"]),
    }))
}

/// The text after the first mention of `handle` as a whole word (`@errand fix this` → `fix
/// this`); `None` without one.
fn mention(body: &str, handle: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let handle = handle.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&handle).map(|i| i + from) {
        let before_ok = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
        let end = at + handle.len();
        let after_ok = lower
            .as_bytes()
            .get(end)
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
        if before_ok && after_ok {
            return Some(body[end..].trim().to_string());
        }
        from = end;
    }
    None
}

/// Largest issue text taken into a prompt.
const MAX_ISSUE_BYTES: usize = 8 << 10;

fn prompt(request: &Request) -> String {
    let mut body = request.issue_body.clone();
    if body.len() > MAX_ISSUE_BYTES {
        let mut cut = MAX_ISSUE_BYTES;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push_str("\n[…]");
    }
    let ask =
        if request.instruction.is_empty() { "Resolve this issue." } else { &request.instruction };
    format!(
        "{ask}\n\nFrom {}#{} (by {}): {}\n\n{body}",
        request.repository, request.issue_number, request.sender, request.issue_title
    )
}

/// `POST /hooks/{host}`: a forge's webhook delivery.
pub async fn webhook(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiFailure> {
    let forge =
        state.config.forges.for_host(&host).filter(|f| f.trigger.is_some()).ok_or_else(|| {
            ApiFailure::not_found(format!(
                "no forge with triggers is configured for `{}`",
                host.escape_debug()
            ))
        })?;
    let trigger = forge.trigger.as_ref().expect("filtered above");
    if !signature_holds(forge.kind, &trigger.secret, &headers, &body) {
        return Err(ApiFailure::unauthorized(
            "the delivery's signature does not match the configured webhook secret",
        ));
    }
    let (event, delivery) = event_and_delivery(forge.kind, &headers);
    let (Some(event), Some(delivery)) = (event, delivery) else {
        return Err(ApiFailure::bad_request("the delivery lacks its event or delivery id header"));
    };
    if !state.store.record_delivery(&format!("{}:{delivery}", forge.host)).await? {
        return Ok((StatusCode::OK, Json(json!({ "status": "already handled" }))));
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiFailure::bad_request(format!("the delivery is not JSON: {e}")))?;
    let request = match read(&event, &payload, trigger).map_err(ApiFailure::bad_request)? {
        Some(request) => request,
        None => {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "status": format!("ignored: {event} asks for nothing") })),
            ));
        }
    };
    if !trigger.allowed_users.iter().any(|u| u.eq_ignore_ascii_case(&request.sender)) {
        tracing::info!(forge = %forge.host, sender = %request.sender, "a trigger from a user not allowed is ignored");
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": format!("ignored: {} may not start tasks", request.sender) })),
        ));
    }
    let user = state.store.user_by_name(&trigger.run_as).await.map_err(|_| {
        ApiFailure::internal(format!(
            "the trigger's Errand user `{}` does not exist",
            trigger.run_as
        ))
    })?;
    let create = CreateTask {
        repository: request.clone_url.clone(),
        git_ref: None,
        environment: None,
        prompt: prompt(&request),
        mode: TaskMode::Code,
        attempts: 1,
    };
    let task = crate::api::create_task(state.clone(), Caller(user), create).await?;
    state
        .store
        .add_triggered_task(&TriggeredTask {
            task_id: task.id,
            forge_host: forge.host.clone(),
            repository: request.repository.clone(),
            issue_number: request.issue_number as i64,
            state: "waiting".into(),
            created_at_ms: 0,
            updated_at_ms: 0,
        })
        .await?;
    let link = format!("{}/tasks/{}", state.config.public_url.trim_end_matches('/'), task.id);
    comment(forge, &request.repository, request.issue_number, &format!("On it: {link}")).await;
    tracing::info!(task_id = %task.id, forge = %forge.host, issue = request.issue_number, "task started from a forge");
    Ok((StatusCode::CREATED, Json(json!({ "status": "task created", "task": task.id }))))
}

async fn comment(forge: &Forge, repository: &str, issue: u64, text: &str) -> bool {
    let Some((owner, name)) = repository.split_once('/') else { return false };
    let result = match ForgeClient::new(forge.config.clone()) {
        Ok(client) => {
            client.comment_on_issue(&RepoRef::new(owner, name), issue, text).await.map(|_| ())
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(forge = %forge.host, issue, "cannot comment on the issue: {e}");
            false
        }
    }
}

/// Reports finished triggered tasks on their issues: the pull request of the attempt that
/// succeeded (opened now), or why there is none. A task whose comment cannot be posted stays
/// waiting and is tried again next time. Returns how many were reported.
pub async fn report_finished(state: &AppState) -> usize {
    let waiting = match state.store.waiting_triggered_tasks(50).await {
        Ok(waiting) => waiting,
        Err(e) => {
            tracing::warn!("cannot read the triggered tasks: {e}");
            return 0;
        }
    };
    let mut reported = 0;
    for trigger in waiting {
        let Some(forge) = state.config.forges.for_host(&trigger.forge_host) else { continue };
        let Ok(attempts) = state.store.list_attempts(Scope::System, trigger.task_id).await else {
            continue;
        };
        if attempts.is_empty() || attempts.iter().any(|a| !a.state.is_terminal()) {
            continue;
        }
        let text = match attempts.iter().find(|a| a.state == AttemptState::Succeeded) {
            Some(attempt) => {
                let task = match state.store.get_task(Scope::System, trigger.task_id).await {
                    Ok(task) => task,
                    Err(_) => continue,
                };
                let delivered = crate::delivery::deliver(
                    &*state.store,
                    state.config.remotes.as_ref(),
                    &state.config.forges,
                    Scope::User(task.user_id),
                    attempt.id,
                )
                .await;
                match delivered {
                    Ok(record) => format!("Done: {}", record.url.unwrap_or(record.branch)),
                    Err(crate::delivery::DeliveryError::Failed(e)) => {
                        tracing::warn!(task_id = %trigger.task_id, "delivery failed, will retry: {e}");
                        continue;
                    }
                    Err(e) => format!("Finished, but no pull request: {e}"),
                }
            }
            None => {
                let why = attempts
                    .iter()
                    .find_map(|a| a.reason.clone())
                    .unwrap_or_else(|| "it did not succeed".into());
                format!("Errand could not finish this: {why}")
            }
        };
        let link = task_link(state, trigger.task_id);
        if comment(
            forge,
            &trigger.repository,
            trigger.issue_number as u64,
            &format!("{text}\n\n{link}"),
        )
        .await
            && state.store.mark_trigger_reported(trigger.task_id).await.is_ok()
        {
            reported += 1;
        }
    }
    reported
}

fn task_link(state: &AppState, task: TaskId) -> String {
    format!("{}/tasks/{task}", state.config.public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_rfc_4231_vectors() {
        // RFC 4231, test cases 1 and 2.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (test case 6).
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn trigger() -> TriggerConfig {
        TriggerConfig {
            secret: "s".into(),
            handle: "@errand".into(),
            label: Some("errand".into()),
            allowed_users: vec!["octocat".into()],
            run_as: "local".into(),
        }
    }

    #[test]
    fn labels_and_comments_are_read_and_the_rest_asks_for_nothing() {
        let base = json!({
            "issue": {"number": 3, "title": "T", "body": "B"},
            "repository": {"full_name": "o/r", "clone_url": "https://h/o/r.git"},
            "sender": {"login": "octocat"},
        });
        let with = |extra: Value| {
            let mut payload = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                payload[k] = v.clone();
            }
            payload
        };
        let labeled = with(json!({"action": "labeled", "label": {"name": "Errand"}}));
        let request = read("issues", &labeled, &trigger()).unwrap().unwrap();
        assert_eq!((request.issue_number, request.instruction.as_str()), (3, ""));
        assert!(prompt(&request).starts_with("Resolve this issue.\n\nFrom o/r#3 (by octocat): T"));
        let other_label = with(json!({"action": "labeled", "label": {"name": "bug"}}));
        assert_eq!(read("issues", &other_label, &trigger()).unwrap(), None);
        let edited = with(json!({"action": "edited", "comment": {"body": "@errand go"}}));
        assert_eq!(read("issue_comment", &edited, &trigger()).unwrap(), None);
        let broken = json!({"action": "created", "comment": {"body": "@errand go"}});
        assert!(read("issue_comment", &broken, &trigger()).is_err());
    }

    #[test]
    fn signatures_are_checked_per_forge() {
        let body = br#"{"a":1}"#;
        let mac = hex(&hmac_sha256(b"s", body));
        let mut github = HeaderMap::new();
        github.insert("x-hub-signature-256", format!("sha256={mac}").parse().unwrap());
        assert!(signature_holds(ForgeKind::GitHub, "s", &github, body));
        assert!(!signature_holds(ForgeKind::GitHub, "other", &github, body));
        assert!(!signature_holds(ForgeKind::GitHub, "s", &github, br#"{"a":2}"#));
        let mut gitea = HeaderMap::new();
        gitea.insert("x-forgejo-signature", mac.parse().unwrap());
        assert!(signature_holds(ForgeKind::Gitea, "s", &gitea, body));
        assert!(!signature_holds(ForgeKind::Gitea, "s", &HeaderMap::new(), body));
        assert!(
            !signature_holds(ForgeKind::GitHub, "s", &gitea, body),
            "GitHub's header is required"
        );
    }

    #[test]
    fn mentions_are_whole_words() {
        for (body, want) in [
            ("@errand fix the build", Some("fix the build")),
            ("Hey @Errand, please look", Some(", please look")),
            ("cc @errand-bot", None),
            ("email me at x@errand.dev", None),
            ("no mention", None),
            ("@errand", Some("")),
        ] {
            assert_eq!(mention(body, "@errand").as_deref(), want, "{body}");
        }
    }
}
