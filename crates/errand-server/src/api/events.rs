//! An attempt's work log over HTTP: pages of JSON, and a live SSE stream whose event ids are
//! the log's `seq`s, so a client that reconnects with `Last-Event-ID` (or `?after=`) gets
//! exactly what it missed: no gap, no duplicate. The stream ends after the `finished` event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use errand_protocol::api::{ApiError, EventPage};
use errand_protocol::{AttemptId, Event, EventKind};
use errand_store::{Scope, Store};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast;
use utoipa::IntoParams;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiFailure, ApiResult, Query, parse_id};
use super::hub::{EventHub, Published};
use super::ops::Metrics;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/attempts/{id}/events", get(list_events))
        .route("/api/attempts/{id}/events/stream", get(stream_events))
}

/// Events read from the store per query.
const PAGE: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// Only events with a larger `seq` (default 0: from the start).
    after: Option<u64>,
    /// At most this many, 1 to 10000 (default 1000).
    limit: Option<u32>,
}

/// A page of the attempt's events.
#[utoipa::path(get, path = "/api/attempts/{id}/events", tag = "events",
    params(("id" = String, Path, description = "An attempt id"), PageQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<EventPage>> {
    let id: AttemptId = parse_id(&id, "attempt")?;
    let limit = query.limit.unwrap_or(PAGE);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiFailure::bad_request("limit must be between 1 and 10000"));
    }
    let after = query.after.unwrap_or(0);
    let attempt = state.store.get_attempt(caller.scope(), id).await?;
    let events = state.store.events_after(caller.scope(), id, after, limit).await?;
    let finished = match events.last() {
        Some(last) => matches!(last.kind, EventKind::Finished { .. }),
        // Nothing new: closed if the log's last event is `finished`.
        None if attempt.state.is_terminal()
            && attempt.last_seq > 0
            && after >= attempt.last_seq =>
        {
            let last =
                state.store.events_after(caller.scope(), id, attempt.last_seq - 1, 1).await?;
            last.first().is_some_and(|e| matches!(e.kind, EventKind::Finished { .. }))
        }
        None => false,
    };
    Ok(axum::Json(EventPage { events, last_seq: attempt.last_seq, finished }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StreamQuery {
    /// Start after this `seq`, for clients that cannot send `Last-Event-ID` (which wins).
    after: Option<u64>,
}

/// The attempt's events as Server-Sent Events: `id` is the event's `seq`, `data` its JSON. The
/// stream replays from `Last-Event-ID` (or `?after=`), follows the log live, and ends after the
/// `finished` event.
#[utoipa::path(get, path = "/api/attempts/{id}/events/stream", tag = "events",
    params(("id" = String, Path, description = "An attempt id"), StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The last `seq` the client received")),
    responses((status = 200, content_type = "text/event-stream", description = "One SSE event per log event", body = String),
        (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let id: AttemptId = parse_id(&id, "attempt")?;
    let after = match headers.get("last-event-id") {
        Some(value) => {
            value.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
                ApiFailure::bad_request("Last-Event-ID must be the seq of an event (a number)")
            })?
        }
        None => query.after.unwrap_or(0),
    };
    // Visible to the caller, or a 404 before the stream starts.
    state.store.get_attempt(caller.scope(), id).await?;
    let follow = Follow::new(&state, caller.scope(), id, after);
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let (seq, json) = follow.next().await?;
        let event = SseEvent::default().id(seq.to_string()).data(&*json);
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Decrements the stream gauge when a stream ends (or its client goes away).
struct ClientGauge(Arc<Metrics>);

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One client's position in one attempt's log: the API's event stream, and the web UI's live
/// log, which turns each event into page updates.
pub(crate) struct Follow {
    store: Arc<dyn Store>,
    hub: Arc<EventHub>,
    scope: Scope,
    attempt: AttemptId,
    /// The last `seq` handed to the client.
    cursor: u64,
    /// Events after `cursor`, in order, to hand out next, with their JSON when the hub made it.
    ready: VecDeque<(Event, Option<Arc<str>>)>,
    receiver: broadcast::Receiver<Arc<Published>>,
    /// Read the store before trusting the broadcast (at start, after a gap or lag).
    from_store: bool,
    /// The `finished` event was handed out: the stream ends.
    done: bool,
    metrics: ClientGauge,
}

impl Follow {
    /// Follows `attempt`'s log after `after`. The caller has checked that `scope` sees it.
    pub(crate) fn new(state: &AppState, scope: Scope, attempt: AttemptId, after: u64) -> Follow {
        // Subscribed before the backlog is read, so nothing falls between the two.
        let receiver = state.hub.subscribe(attempt);
        state.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
        Follow {
            store: state.store.clone(),
            hub: state.hub.clone(),
            scope,
            attempt,
            cursor: after,
            ready: VecDeque::new(),
            receiver,
            from_store: true,
            done: false,
            metrics: ClientGauge(state.metrics.clone()),
        }
    }

    /// The next event as `(seq, json)`, or `None` when the stream ends.
    async fn next(&mut self) -> Option<(u64, Arc<str>)> {
        loop {
            let (event, json) = self.next_with_json().await?;
            let json = match json {
                Some(json) => json,
                None => match serde_json::to_string(&event) {
                    Ok(json) => json.into(),
                    Err(e) => {
                        tracing::error!("cannot serialize event {}: {e}", event.seq);
                        continue;
                    }
                },
            };
            return Some((event.seq, json));
        }
    }

    /// The next event, or `None` when the log is closed (or the store failed: the client
    /// resumes from its last event).
    pub(crate) async fn next_event(&mut self) -> Option<Event> {
        self.next_with_json().await.map(|(event, _)| event)
    }

    async fn next_with_json(&mut self) -> Option<(Event, Option<Arc<str>>)> {
        loop {
            if let Some((event, json)) = self.ready.pop_front() {
                self.cursor = event.seq;
                self.done |= matches!(event.kind, EventKind::Finished { .. });
                self.metrics.0.events_streamed.fetch_add(1, Ordering::Relaxed);
                return Some((event, json));
            }
            if self.done {
                return None;
            }
            if self.from_store {
                let events = match self
                    .store
                    .events_after(self.scope, self.attempt, self.cursor, PAGE)
                    .await
                {
                    Ok(events) => events,
                    Err(e) => {
                        // The client reconnects with Last-Event-ID and loses nothing.
                        tracing::warn!(attempt_id = %self.attempt, "event stream ends: {e}");
                        return None;
                    }
                };
                if events.is_empty() {
                    self.from_store = false;
                }
                for event in events {
                    self.ready.push_back((event, None));
                }
                continue;
            }
            match self.receiver.recv().await {
                Ok(published) => {
                    let seq = published.event.seq;
                    if seq == self.cursor + 1 {
                        self.queue(&published.event, Some(published.json.clone()));
                    } else if seq > self.cursor + 1 {
                        self.from_store = true;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.from_store = true,
                Err(broadcast::error::RecvError::Closed) => {
                    // The attempt's reader stopped (the log closed, or it failed): whatever is
                    // left is in the store; follow a fresh reader after a pause.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    self.receiver = self.hub.subscribe(self.attempt);
                    self.from_store = true;
                }
            }
        }
    }

    fn queue(&mut self, event: &Event, json: Option<Arc<str>>) {
        self.ready.push_back((event.clone(), json));
    }
}
