//! [`ScriptedModel`]: a loopback HTTP server that answers `POST /v1/responses` (OpenAI Responses),
//! `POST /v1/chat/completions` (Chat Completions) and `POST /v1/messages` (Anthropic Messages)
//! from one [`Script`]: the path a client calls picks the protocol.
//!
//! In `sequence` mode each request consumes the next turn: first its fault (as many times as
//! scripted), then the turn itself. In `per_conversation` mode the turn is chosen from the request
//! alone (the model turns already in its conversation, [`crate::conversation::model_turns`]), so
//! concurrent conversations each replay the script; a turn's fault is served to the first `times`
//! requests of that turn, whichever conversations they come from. A request that breaks an expectation, or arrives after the script ran out, gets HTTP
//! 400 (code `script_violation`; on `/v1/messages` an Anthropic `invalid_request_error`) and is
//! recorded for [`ScriptedModel::verify`].

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::chat_stream::ChatChunks;
use crate::conversation;
use crate::expect::{self, quote};
use crate::messages_stream::{self, MessageEvents};
use crate::responses_stream::ResponseEvents;
use crate::script::{FaultKind, Output, Script, ScriptMode, Turn, Usage};

/// A running scripted model server. It stops accepting connections when dropped.
pub struct ScriptedModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

struct Shared {
    turns: Vec<Turn>,
    mode: ScriptMode,
    state: Mutex<PlayState>,
    /// Flips to `true` when the owner drops the server; stalled streams end then.
    shutdown: watch::Receiver<bool>,
}

#[derive(Default)]
struct PlayState {
    /// `sequence` mode: index of the turn the next request consumes.
    next_turn: usize,
    /// Per turn index: how many times its fault has been served (in `sequence` mode only the
    /// current turn's count moves).
    faults_served: Vec<u32>,
    /// Per turn index: how many times it was served normally (what `verify` checks in
    /// `per_conversation` mode).
    served: Vec<u32>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
}

struct Recorded {
    body: Value,
    headers: HeaderMap,
}

/// What to answer, decided under the lock and carried out after it.
enum Reply {
    Violation { turn: usize, message: String },
    Fault { turn: usize, kind: FaultKind },
    Serve { turn: usize },
}

impl ScriptedModel {
    /// Starts the server on `127.0.0.1` with a port chosen by the system.
    pub async fn start(script: Script) -> io::Result<ScriptedModel> {
        Self::start_on(script, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts the server on `addr` (port 0: chosen by the system).
    pub async fn start_on(script: Script, addr: SocketAddr) -> io::Result<ScriptedModel> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let turn_count = script.turns.len();
        let state = PlayState {
            faults_served: vec![0; turn_count],
            served: vec![0; turn_count],
            ..PlayState::default()
        };
        let shared = Arc::new(Shared {
            turns: script.turns,
            mode: script.mode,
            state: Mutex::new(state),
            shutdown: shutdown_rx.clone(),
        });
        let app = Router::new()
            .route("/v1/responses", post(responses))
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/messages", post(messages))
            .fallback(no_route)
            .with_state(shared.clone());
        let mut stop = shutdown_rx;
        // Owned through `shutdown`: dropping the server flips it, the serve loop drains and ends.
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped).await;
        });
        Ok(ScriptedModel { addr, shared, shutdown })
    }

    /// The base URL a client appends `/responses` to: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request body received, in order (a body that was not JSON appears as a string).
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().requests.iter().map(|r| r.body.clone()).collect()
    }

    /// Header `name` of the `index`th request (0-based), e.g. to check `authorization`.
    pub fn request_header(&self, index: usize, name: &str) -> Option<String> {
        let state = self.shared.lock();
        let value = state.requests.get(index)?.headers.get(name)?;
        Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// `Ok` when every turn was consumed and no request broke an expectation; `Err` lists each
    /// problem on its own line, naming the turn.
    pub fn verify(&self) -> Result<(), String> {
        let state = self.shared.lock();
        let mut problems = state.violations.clone();
        let total = self.shared.turns.len();
        if self.shared.mode == ScriptMode::PerConversation {
            let unserved: Vec<String> = (state.served.iter().enumerate())
                .filter(|(_, served)| **served == 0)
                .map(|(index, _)| (index + 1).to_string())
                .collect();
            if !unserved.is_empty() {
                problems.push(format!(
                    "scripted model: turn(s) {} of {total} never served to any conversation; \
                     {} request(s) received",
                    unserved.join(", "),
                    state.requests.len()
                ));
            }
        } else if state.next_turn < total {
            let unconsumed: Vec<String> =
                (state.next_turn + 1..=total).map(|n| n.to_string()).collect();
            problems.push(format!(
                "scripted model: turn {} of {total} never served (unconsumed turns: {}); \
                 {} request(s) received",
                state.next_turn + 1,
                unconsumed.join(", "),
                state.requests.len()
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PlayState> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a request that is answered before the script is consulted.
    fn record(&self, headers: HeaderMap, raw: &str) {
        let body = serde_json::from_str::<Value>(raw);
        let body = body.unwrap_or_else(|_| Value::String(raw.to_string()));
        self.lock().requests.push(Recorded { body, headers });
    }

    /// The 0-based index of the turn a request with this body would be served.
    fn turn_index(&self, state: &PlayState, body: Option<&Value>, wire: Wire) -> usize {
        match (self.mode, body) {
            (ScriptMode::Sequence, _) | (ScriptMode::PerConversation, None) => state.next_turn,
            (ScriptMode::PerConversation, Some(body)) => conversation::model_turns(body, wire),
        }
    }

    /// The 1-based turn number to name in an answer given before the script is consulted.
    fn turn_hint(&self, raw: &str, wire: Wire) -> usize {
        let body = serde_json::from_str::<Value>(raw).ok();
        self.turn_index(&self.lock(), body.as_ref(), wire) + 1
    }

    /// Records the request and decides the reply, advancing the script.
    fn decide(&self, headers: HeaderMap, raw: &str, wire: Wire) -> Reply {
        let mut state = self.lock();
        let body = serde_json::from_str::<Value>(raw);
        let index = self.turn_index(&state, body.as_ref().ok(), wire);
        let turn = index + 1;
        state.requests.push(Recorded {
            body: body.as_ref().cloned().unwrap_or_else(|_| Value::String(raw.to_string())),
            headers,
        });
        let violation = match (&body, self.turns.get(index), self.mode) {
            (Err(e), _, _) => Some(format!("request body is not JSON ({e}): {:?}", quote(raw))),
            (Ok(_), None, ScriptMode::Sequence) => Some(format!(
                "the script has {} turn(s), all consumed, but another request arrived: {:?}",
                self.turns.len(),
                quote(raw)
            )),
            (Ok(_), None, ScriptMode::PerConversation) => Some(format!(
                "the request's conversation already has {index} model turn(s), but the script \
                 (per_conversation) has only {} turn(s): {:?}",
                self.turns.len(),
                quote(raw)
            )),
            (Ok(body), Some(spec), _) => expect::check(&spec.expect, raw, body, wire).err(),
        };
        if let Some(what) = violation {
            let message = format!("scripted model: turn {turn}: {what}");
            eprintln!("{message}");
            state.violations.push(message.clone());
            return Reply::Violation { turn, message };
        }
        let Some(spec) = self.turns.get(index) else {
            // Unreachable: a missing turn is a violation above.
            let message = format!("scripted model: turn {turn}: no such turn");
            return Reply::Violation { turn, message };
        };
        if let Some(fault) = &spec.fault
            && state.faults_served[index] < fault.times
        {
            state.faults_served[index] += 1;
            return Reply::Fault { turn, kind: fault.kind.clone() };
        }
        state.served[index] += 1;
        if self.mode == ScriptMode::Sequence {
            state.next_turn += 1;
        }
        Reply::Serve { turn }
    }
}

/// The wire protocol a request came in on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Responses,
    Chat,
    /// Anthropic Messages.
    Messages,
}

async fn responses(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    serve(&shared, headers, body, Wire::Responses).await
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&shared, headers, body, Wire::Chat).await
}

async fn messages(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    // The headers the real API requires, refused as it refuses them (status, type and message
    // as api.anthropic.com answers), before the script is consulted. The key may also come as
    // `Authorization: Bearer`, as the official Python SDK sends it (tests/sdk_conformance.rs).
    let keyless =
        !headers.contains_key("x-api-key") && !headers.contains_key(header::AUTHORIZATION);
    let missing = if keyless {
        Some((StatusCode::UNAUTHORIZED, "authentication_error", "x-api-key header is required"))
    } else if !headers.contains_key("anthropic-version") {
        Some((
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        ))
    } else {
        None
    };
    if let Some((status, kind, message)) = missing {
        let raw = String::from_utf8_lossy(&body);
        let turn = shared.turn_hint(&raw, Wire::Messages);
        shared.record(headers, &raw);
        return (status, axum::Json(messages_stream::error_body(kind, message, turn)))
            .into_response();
    }
    serve(&shared, headers, body, Wire::Messages).await
}

async fn serve(shared: &Shared, headers: HeaderMap, body: Bytes, wire: Wire) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let (turn, fault) = match shared.decide(headers, &raw, wire) {
        Reply::Violation { turn, message } => return violation_response(&message, wire, turn),
        Reply::Fault { turn, kind } => (turn, Some(kind)),
        Reply::Serve { turn } => (turn, None),
    };
    // `decide` only returns turn numbers of existing turns (1-based).
    let spec = &shared.turns[turn - 1];
    if spec.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(spec.delay_ms)).await;
    }
    let json = serde_json::from_str::<Value>(&raw).unwrap_or_default();
    let model = json.get("model").and_then(Value::as_str).unwrap_or("scripted").to_string();
    let include_usage = json.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
    let usage = spec.usage.unwrap_or_else(|| default_usage(&raw, &spec.output));
    let completed = || match wire {
        Wire::Responses => {
            frames(ResponseEvents::start(turn, &model).completed(&spec.output, usage))
        }
        Wire::Chat => {
            ChatChunks::start(turn, &model).completed(&spec.output, include_usage.then_some(usage))
        }
        Wire::Messages => {
            frames(MessageEvents::start(turn, &model, usage).completed(&spec.output, usage))
        }
    };
    match fault {
        None => sse_response(completed(), Tail::End, shared),
        Some(FaultKind::Status { status, retry_after, retry_after_ms, code, message }) => {
            let mut response = match wire {
                Wire::Messages => messages_status_fault(status, code, message, turn),
                Wire::Responses | Wire::Chat => status_fault(status, code, message),
            };
            let headers = response.headers_mut();
            if let Some(seconds) = retry_after {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            if let Some(ms) = retry_after_ms {
                headers.insert("retry-after-ms", HeaderValue::from(ms));
            }
            response
        }
        Some(FaultKind::Failed { code, message }) => {
            let frames = match wire {
                Wire::Responses => {
                    let message = message.unwrap_or_else(|| format!("scripted failure: {code}"));
                    frames(ResponseEvents::start(turn, &model).failed(&code, &message))
                }
                Wire::Chat => {
                    let message = message.unwrap_or_else(|| format!("scripted failure: {code}"));
                    ChatChunks::start(turn, &model).failed(&code, &message)
                }
                Wire::Messages => {
                    let (kind, default) = messages_stream::error_for_code(&code);
                    let message = message
                        .or(default.map(str::to_string))
                        .unwrap_or_else(|| format!("scripted failure: {code}"));
                    frames(MessageEvents::start(turn, &model, usage).failed(kind, &message))
                }
            };
            sse_response(frames, Tail::End, shared)
        }
        Some(FaultKind::DropAfterEvents(n)) => {
            sse_response(cut(completed(), n), Tail::Drop, shared)
        }
        Some(FaultKind::StallAfterEvents(n)) => {
            sse_response(cut(completed(), n), Tail::Stall, shared)
        }
    }
}

/// The first `n` frames, never including the last (`response.completed`, `[DONE]` or
/// `message_stop` would be a success).
fn cut(mut frames: Vec<String>, n: usize) -> Vec<String> {
    frames.truncate(n.min(frames.len().saturating_sub(1)));
    frames
}

fn frames(events: Vec<crate::responses_stream::SseEvent>) -> Vec<String> {
    events.iter().map(|event| event.to_frame()).collect()
}

/// How a streamed body ends.
enum Tail {
    End,
    /// Abort the connection mid-body (no terminating chunk).
    Drop,
    /// Send nothing more until the server shuts down.
    Stall,
}

fn sse_response(frames: Vec<String>, tail: Tail, shared: &Shared) -> Response {
    // Yielding before each frame makes hyper flush the previous one, so frames leave as separate
    // chunks (as from a real model) and a dropped stream has delivered its events before the cut.
    let frames = stream::iter(frames).then(|frame| async move {
        tokio::task::yield_now().await;
        Ok::<_, io::Error>(Bytes::from(frame))
    });
    let dropped = || io::Error::new(io::ErrorKind::ConnectionAborted, "scripted fault: dropped");
    let body: BoxStream<'static, io::Result<Bytes>> = match tail {
        Tail::End => frames.boxed(),
        Tail::Drop => frames
            .chain(stream::once(async move {
                tokio::task::yield_now().await;
                Err(dropped())
            }))
            .boxed(),
        Tail::Stall => {
            let mut shutdown = shared.shutdown.clone();
            let wait = async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
                Err(dropped())
            };
            frames.chain(stream::once(wait)).boxed()
        }
    };
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// An OpenAI-style error answer: `{"error": {message, type, code, param}}`.
fn status_fault(status: u16, code: Option<String>, message: Option<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, default_code) = match status.as_u16() {
        401 | 403 => ("invalid_request_error", Some("invalid_api_key")),
        404 => ("invalid_request_error", Some("model_not_found")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        500..=599 => ("server_error", Some("server_error")),
        _ => ("invalid_request_error", None),
    };
    let message = message.unwrap_or_else(|| format!("scripted fault: HTTP {}", status.as_u16()));
    let code = code.as_deref().or(default_code);
    let body = json!({"error": {"message": message, "type": kind, "code": code, "param": null}});
    (status, axum::Json(body)).into_response()
}

/// An Anthropic error answer: the type from `code` if given (`context_length_exceeded` becomes
/// the API's "prompt is too long" `invalid_request_error`), else from the status.
fn messages_status_fault(
    status: u16,
    code: Option<String>,
    message: Option<String>,
    turn: usize,
) -> Response {
    let (kind, default) = match code.as_deref() {
        Some(code) => messages_stream::error_for_code(code),
        None => (messages_stream::error_type_for_status(status), None),
    };
    let message = message
        .or(default.map(str::to_string))
        .unwrap_or_else(|| format!("scripted fault: HTTP {status}"));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(messages_stream::error_body(kind, &message, turn))).into_response()
}

fn violation_response(message: &str, wire: Wire, turn: usize) -> Response {
    let body = match wire {
        Wire::Messages => messages_stream::error_body("invalid_request_error", message, turn),
        Wire::Responses | Wire::Chat => json!({"error": {
            "message": message, "type": "invalid_request_error", "code": "script_violation",
            "param": null,
        }}),
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn no_route(method: Method, uri: Uri) -> Response {
    let message = format!(
        "scripted model: no route for {method} {uri}; it serves POST /v1/responses, \
         POST /v1/chat/completions and POST /v1/messages"
    );
    let body = json!({"error": {
        "message": message, "type": "invalid_request_error", "code": "not_found", "param": null,
    }});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// Plausible usage: about four bytes a token, as tokenizers average on English and code.
fn default_usage(raw_request: &str, outputs: &[Output]) -> Usage {
    let mut output_bytes = 0;
    let mut reasoning_bytes = 0;
    for output in outputs {
        match output {
            Output::Message { text } => output_bytes += text.len(),
            Output::FunctionCall { arguments, .. } => {
                output_bytes += arguments.to_json_text().len()
            }
            Output::CustomToolCall { input, .. } => output_bytes += input.len(),
            Output::Reasoning { summary, .. } => reasoning_bytes += summary.len() * 4,
        }
    }
    let reasoning_tokens = (reasoning_bytes / 4) as u64;
    Usage {
        input_tokens: (raw_request.len() / 4).max(1) as u64,
        cached_tokens: 0,
        output_tokens: (output_bytes / 4) as u64 + 1 + reasoning_tokens,
        reasoning_tokens,
    }
}
