//! The attempt page: the work log as it happens (commands collapsed to their first lines with
//! exit status and duration, the plan as a checklist, the agent's messages, limits that bit),
//! a box to message the running attempt, cancelling, following up; and its live stream, which
//! sends the page the HTML updates each new event makes (`log.rs`) as Server-Sent Events that
//! resume with `Last-Event-ID` like the API's.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use errand_protocol::AttemptId;
use errand_store::{Attempt, Task};
use futures_util::Stream;
use serde::Deserialize;

use super::WebState;
use super::html::first_line;
use super::log::{LogView, live_ops, state_badge};
use super::page::{CsrfForm, Layout, PageError, PageResult, check_form, render, see_other};
use super::review::Citations;
use super::session::Session;
use super::tasks::{attempt_id, attempt_label, repository_name};
use crate::api::{self, Follow};

/// Events read from the store per query while rendering a page.
const PAGE: u32 = 2000;

/// A tab to another attempt of the same task.
pub struct Sibling {
    pub href: String,
    pub label: String,
    pub state_class: &'static str,
    pub current: bool,
}

/// The header every attempt page (log and review) shares.
pub struct AttemptHeader {
    pub id: String,
    pub task_id: String,
    pub label: String,
    pub prompt: String,
    pub prompt_line: String,
    pub repository: String,
    pub git_ref: String,
    pub mode: &'static str,
    pub state_badge: String,
    pub finished: bool,
    pub siblings: Vec<Sibling>,
}

impl AttemptHeader {
    pub async fn load(
        state: &WebState,
        session: &Session,
        id: AttemptId,
    ) -> PageResult<(AttemptHeader, Attempt, Task)> {
        let store = &state.api.store;
        let attempt = store.get_attempt(session.scope(), id).await?;
        let task = store.get_task(session.scope(), attempt.task_id).await?;
        let siblings = store.list_attempts(session.scope(), task.id).await?;
        let prompt = attempt.prompt.clone().unwrap_or_else(|| task.prompt.clone());
        let header = AttemptHeader {
            id: attempt.id.to_string(),
            task_id: task.id.to_string(),
            label: attempt_label(&attempt),
            prompt_line: first_line(&prompt, 120),
            prompt,
            repository: repository_name(&task.repository),
            git_ref: task.git_ref.clone(),
            mode: task.mode.as_str(),
            state_badge: state_badge(attempt.state),
            finished: attempt.state.is_terminal(),
            siblings: siblings
                .iter()
                .map(|s| Sibling {
                    href: format!("/attempts/{}", s.id),
                    label: attempt_label(s),
                    state_class: super::log::state_label(s.state).0,
                    current: s.id == attempt.id,
                })
                .collect(),
        };
        Ok((header, attempt, task))
    }
}

#[derive(Template)]
#[template(path = "attempt.html")]
struct AttemptPage {
    layout: Layout,
    header: AttemptHeader,
    log: String,
    plan: String,
    usage: String,
    last_seq: u64,
    live: bool,
    outcome: String,
    has_review: bool,
}

/// The attempt's page with its whole log so far; the script follows it live from `last_seq`.
pub async fn show(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    let id = attempt_id(&id)?;
    let (header, attempt, task) = AttemptHeader::load(&state, &session, id).await?;
    let citations = Citations::for_attempt(&state, &session, id).await?;
    let mut view = LogView::new(&citations);
    let mut after = 0;
    loop {
        let events = state.api.store.events_after(session.scope(), id, after, PAGE).await?;
        let Some(last) = events.last() else { break };
        after = last.seq;
        for event in &events {
            view.push(event);
        }
        if events.len() < PAGE as usize {
            break;
        }
    }
    let closed = view.outcome().is_some();
    let page = AttemptPage {
        layout: Layout::new(format!("{} {}", header.label, header.prompt_line), &session, "tasks"),
        log: view.items_html(),
        plan: view.plan().unwrap_or_default().to_string(),
        usage: view.usage().unwrap_or_default().to_string(),
        last_seq: view.last_seq(),
        live: !closed,
        outcome: view.outcome().map(|o| o.reason.clone()).unwrap_or_default(),
        has_review: attempt.state.is_terminal() && (task.mode.as_str() == "code" || closed),
        header,
    };
    Ok(render(&page))
}

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    after: Option<u64>,
}

/// The page updates of each new event, as SSE: `id` is the event's seq, `data` a JSON array of
/// [`super::log::Op`]s. Ends after the `finished` event.
pub async fn live(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
) -> PageResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let id = attempt_id(&id)?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(query.after)
        .unwrap_or(0);
    state.api.store.get_attempt(session.scope(), id).await?;
    let citations = Citations::for_attempt(&state, &session, id).await?;
    let follow = Follow::new(&state.api, session.scope(), id, after);
    let stream =
        futures_util::stream::unfold((follow, citations), |(mut follow, citations)| async move {
            let event = follow.next_event().await?;
            let ops = live_ops(&event, &citations);
            let data = serde_json::to_string(&ops).unwrap_or_else(|_| "[]".into());
            let sse = SseEvent::default().id(event.seq.to_string()).data(data);
            Some((Ok(sse), (follow, citations)))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Deserialize)]
pub struct MessageForm {
    csrf: String,
    text: String,
}

/// Whether the page's script sent this (it wants a status, not a page).
fn from_script(headers: &HeaderMap) -> bool {
    headers.get("x-errand-fetch").is_some()
}

/// Sends a message to the running attempt; the model reads it at its next turn.
pub async fn message(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<MessageForm>,
) -> Response {
    let result = async {
        check_form(&session, &headers, &form.csrf)?;
        let id = attempt_id(&id)?;
        api::send_message(&state.api, &session.caller(), id, &form.text).await?;
        Ok::<_, PageError>(id)
    }
    .await;
    match (result, from_script(&headers)) {
        (Ok(_), true) => StatusCode::NO_CONTENT.into_response(),
        (Ok(id), false) => see_other(&format!("/attempts/{id}")),
        (Err(e), true) => (e.status, e.message).into_response(),
        (Err(e), false) => e.into_response(),
    }
}

/// Cancels the attempt (a running one stops at its worker's next turn or heartbeat).
pub async fn cancel(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    check_form(&session, &headers, &form.csrf)?;
    let id = attempt_id(&id)?;
    state.api.store.request_cancel(session.scope(), id, "cancelled from the web UI").await?;
    Ok(see_other(&format!("/attempts/{id}")))
}

#[derive(Deserialize)]
pub struct FollowupForm {
    csrf: String,
    prompt: String,
}

/// Starts a follow-up of this finished attempt and shows it.
pub async fn followup(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<FollowupForm>,
) -> PageResult {
    check_form(&session, &headers, &form.csrf)?;
    let id = attempt_id(&id)?;
    let attempt = api::create_followup(&state.api, &session.caller(), id, &form.prompt).await?;
    Ok(see_other(&format!("/attempts/{}", attempt.id)))
}
