//! The task list (filters, live), the new-task form, a task with its attempts side by side,
//! and cancelling a task.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse};
use errand_protocol::api::{CreateTask, TaskMode, TaskState};
use errand_protocol::{AttemptId, AttemptState, Report, TaskId};
use errand_store::{ArtifactKind, Attempt, Page, Task, now_ms};
use serde::Deserialize;

use super::WebState;
use super::html::{age, first_line};
use super::log::{short_id, state_label};
use super::page::{
    CsrfForm, Layout, PageError, PageResult, check_form, render, render_with, see_other,
};
use super::session::Session;
use crate::api::{self, ApiFailure};

/// Rows per page of the list.
const LIST_PAGE: usize = 30;
/// Tasks read to fill a filtered page, at most (older ones are a click on "older" away).
const SCAN_LIMIT: usize = 600;

/// One row of the task list.
pub struct TaskRow {
    pub href: String,
    pub state_class: &'static str,
    pub state: &'static str,
    pub repository: String,
    pub repository_path: String,
    pub git_ref: String,
    pub mode: &'static str,
    pub attempts: String,
    pub age: String,
    pub summary: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    q: String,
    before: Option<String>,
    /// Only the rows (the page's script refreshes them).
    #[serde(default)]
    fragment: Option<u8>,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct ListPage {
    layout: Layout,
    rows: Vec<TaskRow>,
    state: String,
    mode: String,
    q: String,
    older: String,
    live: bool,
}

#[derive(Template)]
#[template(path = "task_rows.html")]
struct RowsFragment {
    rows: Vec<TaskRow>,
}

const STATES: [&str; 5] = ["queued", "running", "succeeded", "failed", "cancelled"];

/// The caller's tasks, newest first, filtered by state, mode and a text.
pub async fn list(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let store = &state.api.store;
    let wanted_state = STATES.iter().find(|s| **s == query.state).copied();
    let wanted_mode = ["code", "ask"].into_iter().find(|m| *m == query.mode);
    let needle = query.q.trim().to_lowercase();
    let mut before = match &query.before {
        Some(text) => Some(
            text.parse::<TaskId>()
                .map_err(|_| PageError::bad_request("`before` is not a task id"))?,
        ),
        None => None,
    };
    let mut rows = Vec::new();
    let mut scanned = 0;
    let mut older = String::new();
    let now = now_ms();
    'pages: loop {
        let tasks = store.list_tasks(session.id(), Page { before, limit: 100 }).await?;
        let exhausted = tasks.len() < 100;
        for task in tasks {
            scanned += 1;
            before = Some(task.id);
            let attempts = store.list_attempts(session.scope(), task.id).await?;
            let task_state = TaskState::derive(attempts.iter().map(|a| a.state));
            if wanted_state.is_some_and(|s| s != task_state_word(task_state))
                || wanted_mode.is_some_and(|m| m != task.mode.as_str())
                || (!needle.is_empty()
                    && !task.prompt.to_lowercase().contains(&needle)
                    && !task.repository.to_lowercase().contains(&needle))
            {
                if scanned >= SCAN_LIMIT {
                    older = task.id.to_string();
                    break 'pages;
                }
                continue;
            }
            rows.push(task_row(&task, &attempts, now));
            if rows.len() == LIST_PAGE || scanned >= SCAN_LIMIT {
                older = task.id.to_string();
                break 'pages;
            }
        }
        if exhausted {
            break;
        }
    }
    if query.fragment.is_some() {
        let fragment = RowsFragment { rows };
        return Ok(match fragment.render() {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
            }
        });
    }
    let live = rows.iter().any(|r| matches!(r.state, "queued" | "running"));
    Ok(render(&ListPage {
        layout: Layout::new("Tasks", &session, "tasks"),
        rows,
        state: wanted_state.unwrap_or_default().into(),
        mode: wanted_mode.unwrap_or_default().into(),
        q: query.q.trim().chars().take(200).collect(),
        older,
        live,
    }))
}

fn task_state_word(state: TaskState) -> &'static str {
    match state {
        TaskState::Queued => "queued",
        TaskState::Running => "running",
        TaskState::Succeeded => "succeeded",
        TaskState::Failed => "failed",
        TaskState::Cancelled => "cancelled",
    }
}

fn task_row(task: &Task, attempts: &[Attempt], now: i64) -> TaskRow {
    let state = TaskState::derive(attempts.iter().map(|a| a.state));
    let word = task_state_word(state);
    let class = match state {
        TaskState::Queued => "wait",
        TaskState::Running => "run",
        TaskState::Succeeded => "ok",
        TaskState::Failed => "fail",
        TaskState::Cancelled => "off",
    };
    let done = attempts.iter().filter(|a| a.state == AttemptState::Succeeded).count();
    let href = match attempts {
        [only] => format!("/attempts/{}", only.id),
        _ => format!("/tasks/{}", task.id),
    };
    TaskRow {
        href,
        state_class: class,
        state: word,
        repository: repository_name(&task.repository),
        repository_path: task.repository.clone(),
        git_ref: task.git_ref.clone(),
        mode: task.mode.as_str(),
        attempts: if attempts.len() == 1 {
            "1 attempt".into()
        } else {
            format!("{done}/{} attempts succeeded", attempts.len())
        },
        age: age(task.created_at_ms, now),
        summary: first_line(&task.prompt, 140),
    }
}

/// The last component of a repository path (or URL).
pub fn repository_name(repository: &str) -> String {
    repository.trim_end_matches('/').rsplit('/').next().unwrap_or(repository).to_string()
}

#[derive(Template)]
#[template(path = "new_task.html")]
struct NewTaskPage {
    layout: Layout,
    form: NewTaskForm,
    environments: Vec<String>,
    error: String,
}

/// What the new-task form holds (also when it comes back with an error).
#[derive(Debug, Default, Deserialize)]
pub struct NewTaskForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub repository: String,
    #[serde(default, rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub environment: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub attempts: String,
}

/// The new-task form, prefilled from the caller's latest task.
pub async fn new_form(State(state): State<WebState>, session: Session) -> PageResult {
    let latest = state.api.store.list_tasks(session.id(), Page::first(1)).await?;
    let mut form =
        NewTaskForm { mode: "code".into(), attempts: "1".into(), ..NewTaskForm::default() };
    if let Some(task) = latest.first() {
        form.repository = task.repository.clone();
        if task.git_ref != "HEAD" {
            form.git_ref = task.git_ref.clone();
        }
        if let Some(id) = task.environment_id
            && let Ok(environment) = state.api.store.get_environment(session.id(), id).await
        {
            form.environment = environment.name;
        }
    }
    new_task_page(&state, &session, form, String::new(), StatusCode::OK).await
}

async fn new_task_page(
    state: &WebState,
    session: &Session,
    form: NewTaskForm,
    error: String,
    status: StatusCode,
) -> PageResult {
    let environments = state
        .api
        .store
        .list_environments(session.id())
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    Ok(render_with(
        status,
        &NewTaskPage { layout: Layout::new("New task", session, "new"), form, environments, error },
    ))
}

/// Creates the task through the API's own handler (same checks, same limits), then shows it.
/// A refusal comes back as the form with what was typed and the reason.
pub async fn create(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<NewTaskForm>,
) -> PageResult {
    check_form(&session, &headers, &form.csrf)?;
    let attempts = match form.attempts.trim() {
        "" => Ok(1),
        text => text.parse::<u32>().map_err(|_| format!("attempts must be a number, not `{text}`")),
    };
    let mode = match form.mode.as_str() {
        "ask" => Ok(TaskMode::Ask),
        "code" | "" => Ok(TaskMode::Code),
        other => Err(format!("mode must be `code` or `ask`, not `{other}`")),
    };
    let (attempts, mode) = match (attempts, mode) {
        (Ok(a), Ok(m)) => (a, m),
        (Err(e), _) | (_, Err(e)) => {
            return new_task_page(&state, &session, form, e, StatusCode::BAD_REQUEST).await;
        }
    };
    let optional = |text: &str| Some(text.trim().to_string()).filter(|t| !t.is_empty());
    let request = CreateTask {
        repository: form.repository.trim().to_string(),
        git_ref: optional(&form.git_ref),
        environment: optional(&form.environment),
        prompt: form.prompt.clone(),
        mode,
        attempts,
    };
    match api::create_task(state.api.clone(), session.caller(), request).await {
        Ok(task) => Ok(see_other(&match task.attempts.as_slice() {
            [only] => format!("/attempts/{}", only.id),
            _ => format!("/tasks/{}", task.id),
        })),
        Err(failure) => {
            let ApiFailure { status, message, .. } = failure;
            new_task_page(&state, &session, form, message, status).await
        }
    }
}

/// One attempt as a column of the side-by-side view.
pub struct AttemptCard {
    pub id: String,
    pub label: String,
    pub state_class: &'static str,
    pub state: &'static str,
    pub reason: String,
    pub title: String,
    pub checks: Vec<CheckLine>,
    pub files: usize,
    pub insertions: u64,
    pub deletions: u64,
    pub duration: String,
    pub followup_of: String,
    pub flagged: usize,
    pub finished: bool,
    /// 1 is the best; 0 while unranked (not finished).
    pub rank: u32,
    pub why: String,
    /// Ranked first of several.
    pub best: bool,
    /// The user's pick.
    pub picked: bool,
}

pub struct CheckLine {
    pub passed: bool,
    pub command: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    layout: Layout,
    task_id: String,
    prompt: String,
    repository: String,
    git_ref: String,
    base: String,
    mode: &'static str,
    state_class: &'static str,
    state: &'static str,
    cards: Vec<AttemptCard>,
    running: bool,
}

/// A task with its attempts side by side: state, the report's title, the checks and how much
/// each changed, with a way to open and pick one.
pub async fn show(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    let id: TaskId = id.parse().map_err(|_| PageError::not_found("no such task"))?;
    let store = &state.api.store;
    let task = store.get_task(session.scope(), id).await?;
    let attempts = store.list_attempts(session.scope(), id).await?;
    // Best first (finished attempts by rank, then the rest), each with why.
    let ranking =
        crate::ranking::rank_attempts(&*state.api.store, session.scope(), &attempts).await?;
    let mut ordered: Vec<&Attempt> = attempts.iter().collect();
    let rank_of = |id| ranking.iter().find(|r| r.attempt_id == id);
    ordered.sort_by_key(|a| (rank_of(a.id).map_or(u32::MAX, |r| r.rank), a.index));
    let mut cards = Vec::with_capacity(attempts.len());
    for attempt in ordered {
        let mut card = attempt_card(&state, &session, attempt).await?;
        if let Some(ranked) = rank_of(attempt.id) {
            card.rank = ranked.rank;
            card.why = ranked.why.clone();
        }
        card.best = card.rank == 1 && ranking.len() > 1;
        card.picked = task.picked_attempt == Some(attempt.id);
        cards.push(card);
    }
    let task_state = TaskState::derive(attempts.iter().map(|a| a.state));
    let (state_class, _) = state_label(match task_state {
        TaskState::Queued => AttemptState::Queued,
        TaskState::Running => AttemptState::Running,
        TaskState::Succeeded => AttemptState::Succeeded,
        TaskState::Failed => AttemptState::Failed,
        TaskState::Cancelled => AttemptState::Cancelled,
    });
    Ok(render(&TaskPage {
        layout: Layout::new(first_line(&task.prompt, 60), &session, "tasks"),
        task_id: task.id.to_string(),
        prompt: task.prompt.clone(),
        repository: task.repository.clone(),
        git_ref: task.git_ref.clone(),
        base: task.base_commit.as_deref().unwrap_or("").chars().take(10).collect(),
        mode: task.mode.as_str(),
        state_class,
        state: task_state_word(task_state),
        running: attempts.iter().any(|a| !a.state.is_terminal()),
        cards,
    }))
}

pub async fn attempt_card(
    state: &WebState,
    session: &Session,
    attempt: &Attempt,
) -> PageResult<AttemptCard> {
    let store = &state.api.store;
    let report: Option<Report> = store
        .get_artifact(session.scope(), attempt.id, ArtifactKind::Report)
        .await?
        .and_then(|json| serde_json::from_str(&json).ok());
    let (_, files) = super::review::diff_of(state, session, attempt.id).await?;
    let (class, word) = state_label(attempt.state);
    let checks = report
        .as_ref()
        .map(|r| {
            r.checks
                .iter()
                .map(|c| CheckLine {
                    passed: c.passed,
                    command: first_line(&c.command, 80),
                    href: format!("/attempts/{}#log-{}", attempt.id, c.event),
                })
                .collect()
        })
        .unwrap_or_default();
    let duration = match (attempt.started_at_ms, attempt.finished_at_ms) {
        (Some(start), Some(end)) => super::html::duration((end - start).max(0) as u64),
        (Some(start), None) => {
            format!("running for {}", super::html::duration((now_ms() - start).max(0) as u64))
        }
        _ => String::new(),
    };
    Ok(AttemptCard {
        id: attempt.id.to_string(),
        label: attempt_label(attempt),
        state_class: class,
        state: word,
        reason: attempt.reason.clone().unwrap_or_default(),
        title: report.as_ref().map(|r| r.title.clone()).unwrap_or_default(),
        flagged: report.as_ref().map_or(0, Report::flagged_citations),
        checks,
        files: files.len(),
        insertions: files.iter().map(|f| f.insertions).sum(),
        deletions: files.iter().map(|f| f.deletions).sum(),
        duration,
        followup_of: attempt.parent_id.map(|p| short_id(&p.to_string())).unwrap_or_default(),
        finished: attempt.state.is_terminal(),
        rank: 0,
        why: String::new(),
        best: false,
        picked: false,
    })
}

/// `#1`, or `#3 (follow-up)`.
pub fn attempt_label(attempt: &Attempt) -> String {
    if attempt.parent_id.is_some() {
        format!("#{} follow-up", attempt.index + 1)
    } else {
        format!("#{}", attempt.index + 1)
    }
}

/// Cancels every unfinished attempt of the task.
pub async fn cancel(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    check_form(&session, &headers, &form.csrf)?;
    let id: TaskId = id.parse().map_err(|_| PageError::not_found("no such task"))?;
    api::cancel_unfinished(&state.api, &session.caller(), id, "cancelled from the web UI").await?;
    Ok(see_other(&format!("/tasks/{id}")))
}

#[derive(Deserialize)]
pub struct PickForm {
    csrf: String,
    attempt: String,
}

/// Picks an attempt as the task's result, then shows what to do with it.
pub async fn pick(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<PickForm>,
) -> PageResult {
    check_form(&session, &headers, &form.csrf)?;
    let id: TaskId = id.parse().map_err(|_| PageError::not_found("no such task"))?;
    let attempt = attempt_id(&form.attempt)?;
    api::pick_attempt(&state.api, &session.caller(), id, attempt).await?;
    Ok(see_other(&format!("/attempts/{attempt}/review#act")))
}

/// Parses an attempt id from a URL, as "not found" when it is not one.
pub fn attempt_id(text: &str) -> PageResult<AttemptId> {
    text.parse().map_err(|_| PageError::not_found("no such attempt"))
}
