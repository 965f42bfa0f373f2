//! Environments: the list, a form to create or edit one (setup and maintenance scripts,
//! variables, secrets), and its latest setup logs.
//!
//! Secrets are write-only here, as in the API: the page names the secrets an environment has
//! and never their values; a value typed in replaces one, a box removes one, and a secret not
//! mentioned keeps its stored value (the form is merged into the stored document, then checked
//! by the same rules as `errand env create`).

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use errand_sandbox::{is_environment_name, stored_document};
use errand_store::{Environment, StoreError, now_ms};
use serde_json::{Map, Value};

use super::WebState;
use super::html::{age, duration, terminal_text};
use super::page::{
    CsrfForm, Layout, PageError, PageResult, check_form, render, render_with, see_other,
};
use super::session::Session;

pub struct EnvironmentRow {
    pub name: String,
    pub mode: String,
    pub setup: String,
    pub secrets: usize,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "environments.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<EnvironmentRow>,
}

pub async fn list(State(state): State<WebState>, session: Session) -> PageResult {
    let now = now_ms();
    let rows = state
        .api
        .store
        .list_environments(session.id())
        .await?
        .into_iter()
        .map(|environment| {
            let document = document(&environment);
            EnvironmentRow {
                mode: text_of(&document, "mode"),
                setup: super::html::first_line(&text_of(&document, "setup_script"), 80),
                secrets: document.get("secrets").and_then(Value::as_object).map_or(0, Map::len),
                updated: age(environment.updated_at_ms, now),
                name: environment.name,
            }
        })
        .collect();
    Ok(render(&ListPage { layout: Layout::new("Environments", &session, "environments"), rows }))
}

/// What the form holds.
#[derive(Debug, Default)]
pub struct EnvironmentForm {
    pub csrf: String,
    pub name: String,
    pub mode: String,
    pub base_image: String,
    pub setup_script: String,
    pub maintenance_script: String,
    /// `KEY=value` lines.
    pub env: String,
    /// `NAME=value` lines: secrets to add or replace.
    pub new_secrets: String,
    /// Names of secrets to remove (one checkbox each, so the key repeats).
    pub remove: Vec<String>,
    pub snapshot_ttl: String,
    pub setup_timeout: String,
    /// `none`, or the domains the agent may reach, separated by spaces or commas.
    pub agent_network: String,
    /// Finish checks, one command per line.
    pub checks: String,
}

impl EnvironmentForm {
    /// The form from its fields as posted (a repeated key, `remove`, is why it is not derived:
    /// form decoding into a struct keeps one value per key).
    fn from_pairs(pairs: Vec<(String, String)>) -> EnvironmentForm {
        let mut form = EnvironmentForm::default();
        for (key, value) in pairs {
            let field = match key.as_str() {
                "csrf" => &mut form.csrf,
                "name" => &mut form.name,
                "mode" => &mut form.mode,
                "base_image" => &mut form.base_image,
                "setup_script" => &mut form.setup_script,
                "maintenance_script" => &mut form.maintenance_script,
                "env" => &mut form.env,
                "new_secrets" => &mut form.new_secrets,
                "snapshot_ttl" => &mut form.snapshot_ttl,
                "setup_timeout" => &mut form.setup_timeout,
                "agent_network" => &mut form.agent_network,
                "checks" => &mut form.checks,
                "remove" => {
                    form.remove.push(value);
                    continue;
                }
                _ => continue,
            };
            *field = value;
        }
        form
    }
}

pub struct LogRun {
    pub phase: String,
    pub status: String,
    pub ok: bool,
    pub when: String,
    pub content: String,
}

#[derive(Template)]
#[template(path = "environment.html")]
struct EditPage {
    layout: Layout,
    creating: bool,
    form: EnvironmentForm,
    /// Secrets stored, by name: `(name, shown)` where `shown` is `[secret]` or the variable a
    /// reference reads.
    secrets: Vec<(String, String)>,
    logs: Vec<LogRun>,
    error: String,
}

pub async fn new_form(session: Session) -> PageResult {
    let form = EnvironmentForm {
        mode: "setup".into(),
        base_image: "host".into(),
        snapshot_ttl: "12h".into(),
        setup_timeout: "1h".into(),
        agent_network: "none".into(),
        ..EnvironmentForm::default()
    };
    Ok(edit_page(&session, true, form, Vec::new(), Vec::new(), String::new(), StatusCode::OK))
}

fn edit_page(
    session: &Session,
    creating: bool,
    form: EnvironmentForm,
    secrets: Vec<(String, String)>,
    logs: Vec<LogRun>,
    error: String,
    status: StatusCode,
) -> axum::response::Response {
    let title =
        if creating { "New environment".to_string() } else { format!("Environment {}", form.name) };
    render_with(
        status,
        &EditPage {
            layout: Layout::new(title, session, "environments"),
            creating,
            form,
            secrets,
            logs,
            error,
        },
    )
}

/// An environment's form and its latest setup and maintenance runs.
pub async fn show(
    State(state): State<WebState>,
    session: Session,
    Path(name): Path<String>,
) -> PageResult {
    let environment = find(&state, &session, &name).await?;
    let document = document(&environment);
    let logs = logs(&state, &session, &environment).await?;
    let form = form_of(&environment.name, &document);
    Ok(edit_page(&session, false, form, secrets_of(&document), logs, String::new(), StatusCode::OK))
}

/// Creates an environment from the form.
pub async fn create(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let form = EnvironmentForm::from_pairs(pairs);
    check_form(&session, &headers, &form.csrf)?;
    let name = form.name.trim().to_string();
    let refused = |form: EnvironmentForm, error: String, status| {
        Ok(edit_page(&session, true, form, Vec::new(), Vec::new(), error, status))
    };
    if !is_environment_name(&name) {
        return refused(
            form,
            "A name uses letters, digits, `-` and `_` (at most 64, starting with a letter or digit).".into(),
            StatusCode::BAD_REQUEST,
        );
    }
    let document = match merged(&form, &Map::new())
        .and_then(|d| stored_document(d).map_err(|e| e.to_string()))
    {
        Ok(document) => document,
        Err(e) => {
            return refused(form, format!("Invalid environment: {e}"), StatusCode::BAD_REQUEST);
        }
    };
    match state.api.store.create_environment(session.id(), &name, &document).await {
        Ok(environment) => Ok(see_other(&format!("/environments/{}", environment.name))),
        Err(StoreError::Conflict { .. }) => refused(
            form,
            format!("An environment named `{name}` exists already."),
            StatusCode::CONFLICT,
        ),
        Err(e) => Err(e.into()),
    }
}

/// Replaces an environment's settings with the form, keeping the secrets it does not mention.
pub async fn update(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut form = EnvironmentForm::from_pairs(pairs);
    check_form(&session, &headers, &form.csrf)?;
    let environment = find(&state, &session, &name).await?;
    let stored: Map<String, Value> =
        serde_json::from_str(&environment.config_json).unwrap_or_default();
    let document =
        match merged(&form, &stored).and_then(|d| stored_document(d).map_err(|e| e.to_string())) {
            Ok(document) => document,
            Err(e) => {
                form.name = environment.name.clone();
                let shown = document(&environment);
                let logs = logs(&state, &session, &environment).await?;
                return Ok(edit_page(
                    &session,
                    false,
                    form,
                    secrets_of(&shown),
                    logs,
                    format!("Invalid environment: {e}"),
                    StatusCode::BAD_REQUEST,
                ));
            }
        };
    state.api.store.update_environment(session.id(), environment.id, &document).await?;
    Ok(see_other(&format!("/environments/{}", environment.name)))
}

/// Deletes an environment (refused while a task uses it).
pub async fn delete(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    check_form(&session, &headers, &form.csrf)?;
    let environment = find(&state, &session, &name).await?;
    match state.api.store.delete_environment(session.id(), environment.id).await {
        Ok(()) => Ok(see_other("/environments")),
        Err(StoreError::Conflict { message, .. }) => {
            Err(PageError::new(StatusCode::CONFLICT, message))
        }
        Err(e) => Err(e.into()),
    }
}

async fn find(state: &WebState, session: &Session, name: &str) -> PageResult<Environment> {
    crate::api::lookup_environment(&state.api, session.id(), name).await.map_err(|e| match e {
        StoreError::NotFound(_) => PageError::not_found("no such environment"),
        e => e.into(),
    })
}

async fn logs(
    state: &WebState,
    session: &Session,
    environment: &Environment,
) -> PageResult<Vec<LogRun>> {
    let now = now_ms();
    Ok(state
        .api
        .store
        .environment_logs(session.id(), environment.id, 5)
        .await?
        .into_iter()
        .map(|log| LogRun {
            phase: log.phase,
            ok: log.exit_code == Some(0),
            status: match log.exit_code {
                Some(code) => {
                    format!("exit {code} after {}", duration(log.duration_ms.max(0) as u64))
                }
                None => format!("killed after {}", duration(log.duration_ms.max(0) as u64)),
            },
            when: age(log.created_at_ms, now),
            // Already redacted when stored; shown as terminal text (escape sequences dropped).
            content: terminal_text(&log.content),
        })
        .collect())
}

/// The stored document as it may be shown (secrets hidden).
fn document(environment: &Environment) -> Map<String, Value> {
    errand_sandbox::redacted_document(&environment.config_json).unwrap_or_default()
}

fn text_of(document: &Map<String, Value>, key: &str) -> String {
    match document.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn form_of(name: &str, document: &Map<String, Value>) -> EnvironmentForm {
    let env = document
        .get("env")
        .and_then(Value::as_object)
        .map(|env| {
            env.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let agent_network = match document.get("agent_network") {
        Some(Value::Object(policy)) => policy
            .get("allow")
            .and_then(Value::as_array)
            .map(|domains| domains.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        _ => "none".into(),
    };
    EnvironmentForm {
        name: name.into(),
        mode: text_of(document, "mode"),
        base_image: text_of(document, "base_image"),
        setup_script: text_of(document, "setup_script"),
        maintenance_script: text_of(document, "maintenance_script"),
        env,
        snapshot_ttl: text_of(document, "snapshot_ttl"),
        setup_timeout: text_of(document, "setup_timeout"),
        agent_network,
        checks: document
            .get("checks")
            .and_then(Value::as_array)
            .map(|checks| checks.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default(),
        ..EnvironmentForm::default()
    }
}

fn secrets_of(document: &Map<String, Value>) -> Vec<(String, String)> {
    document
        .get("secrets")
        .and_then(Value::as_object)
        .map(|secrets| {
            secrets
                .iter()
                .map(|(name, value)| {
                    let shown = match value {
                        Value::Object(reference) => format!(
                            "read from ${}",
                            reference.get("env").and_then(Value::as_str).unwrap_or_default()
                        ),
                        _ => "set (hidden)".into(),
                    };
                    (name.clone(), shown)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `KEY=value` lines as a JSON object; blank lines and `#` comments skipped.
fn pairs(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{what}, line {}: write `NAME=value`", number + 1));
        };
        map.insert(key.trim().to_string(), Value::String(value.to_string()));
    }
    Ok(map)
}

/// The document the form describes, over the stored one (whose secrets it keeps unless removed
/// or replaced).
fn merged(form: &EnvironmentForm, stored: &Map<String, Value>) -> Result<Value, String> {
    let mut document = Map::new();
    let optional_text = |text: &str| {
        let text = text.replace("\r\n", "\n");
        if text.trim().is_empty() { Value::Null } else { Value::String(text) }
    };
    document.insert("mode".into(), Value::String(form.mode.trim().to_string()));
    document.insert("base_image".into(), Value::String(form.base_image.trim().to_string()));
    document.insert("setup_script".into(), optional_text(&form.setup_script));
    document.insert("maintenance_script".into(), optional_text(&form.maintenance_script));
    document.insert("env".into(), Value::Object(pairs(&form.env, "variables")?));
    let mut secrets = stored.get("secrets").and_then(Value::as_object).cloned().unwrap_or_default();
    for name in &form.remove {
        secrets.remove(name);
    }
    for (name, value) in pairs(&form.new_secrets, "secrets")? {
        secrets.insert(name, value);
    }
    document.insert("secrets".into(), Value::Object(secrets));
    document.insert("snapshot_ttl".into(), Value::String(form.snapshot_ttl.trim().to_string()));
    document.insert("setup_timeout".into(), Value::String(form.setup_timeout.trim().to_string()));
    let network = form.agent_network.trim();
    let network = if network.is_empty() || network == "none" {
        Value::String("none".into())
    } else {
        let allow: Vec<Value> = network
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|d| !d.is_empty())
            .map(|d| Value::String(d.to_string()))
            .collect();
        serde_json::json!({ "allow": allow })
    };
    document.insert("agent_network".into(), network);
    let checks: Vec<Value> = form
        .checks
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| Value::String(line.to_string()))
        .collect();
    document.insert("checks".into(), Value::Array(checks));
    Ok(Value::Object(document))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_not_mentioned_keep_their_stored_value() {
        let stored: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "secrets": { "KEEP_TOKEN": "kept-value-123", "DROP_TOKEN": "dropped-value-1" }
        }))
        .unwrap();
        let form = EnvironmentForm {
            mode: "setup".into(),
            base_image: "host".into(),
            env: "A=1\n# comment\n\nB=two=2".into(),
            new_secrets: "NEW_TOKEN=new-value-4567".into(),
            remove: vec!["DROP_TOKEN".into()],
            snapshot_ttl: "12h".into(),
            setup_timeout: "1h".into(),
            agent_network: "pypi.org, files.pythonhosted.org".into(),
            ..EnvironmentForm::default()
        };
        let document = merged(&form, &stored).unwrap();
        assert_eq!(
            document["secrets"],
            serde_json::json!({ "KEEP_TOKEN": "kept-value-123", "NEW_TOKEN": "new-value-4567" })
        );
        assert_eq!(document["env"], serde_json::json!({ "A": "1", "B": "two=2" }));
        assert_eq!(
            document["agent_network"],
            serde_json::json!({ "allow": ["pypi.org", "files.pythonhosted.org"] })
        );
        assert!(stored_document(document).is_ok());
        let bad = EnvironmentForm { env: "no equals sign".into(), ..form };
        assert!(merged(&bad, &stored).unwrap_err().contains("line 1"));
    }
}
