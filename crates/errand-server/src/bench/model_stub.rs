//! A model endpoint for the benchmark: OpenAI Responses over SSE on loopback, answering every
//! request after a fixed latency with the next step of a fixed plan.
//!
//! The step is decided from the request alone (the model turns already in its `input`), so any
//! number of attempts can share the endpoint and interleave freely: turns 1 to `turns - 1` run
//! the shell command `true`, the last one answers with a final message. (The scripted model of
//! `errand-testkit` does the same in its `per_conversation` mode, but it must never ship in the
//! binary.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The running endpoint; it stops when dropped.
pub struct ModelStub {
    addr: SocketAddr,
    plan: Arc<Plan>,
    _stop: oneshot::Sender<()>,
}

struct Plan {
    turns: u32,
    latency: Duration,
    requests: AtomicU64,
    /// Requests that asked past the last turn (the agent did not stop where the plan ends).
    beyond: AtomicU64,
}

impl ModelStub {
    /// Serves on a loopback port: each attempt gets `turns` turns (at least 1), each answered
    /// `latency` after its request arrived.
    pub async fn start(turns: u32, latency: Duration) -> Result<ModelStub, String> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| format!("the model stub cannot listen on loopback: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let plan = Arc::new(Plan {
            turns: turns.max(1),
            latency,
            requests: AtomicU64::new(0),
            beyond: AtomicU64::new(0),
        });
        let app = Router::new().route("/v1/responses", post(respond)).with_state(plan.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        // Owned through `_stop`: dropping the stub ends the server.
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped).await;
        });
        Ok(ModelStub { addr, plan, _stop: stop })
    }

    /// What `ModelConfig::base_url` points at.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests answered so far, and how many of them asked past the plan.
    pub fn requests(&self) -> (u64, u64) {
        (self.plan.requests.load(Ordering::Relaxed), self.plan.beyond.load(Ordering::Relaxed))
    }
}

async fn respond(State(plan): State<Arc<Plan>>, body: Bytes) -> Response {
    plan.requests.fetch_add(1, Ordering::Relaxed);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the request body is not JSON").into_response();
    };
    let turn = model_turns(&request) as u32 + 1;
    if turn > plan.turns {
        plan.beyond.fetch_add(1, Ordering::Relaxed);
    }
    tokio::time::sleep(plan.latency).await;
    let item = if turn < plan.turns {
        json!({"type": "function_call", "id": format!("fc_{turn}"), "call_id": format!("call_{turn}"),
               "name": "shell", "arguments": r#"{"command":["true"]}"#, "status": "completed"})
    } else {
        json!({"type": "message", "id": format!("msg_{turn}"), "role": "assistant",
               "status": "completed", "content": [{"type": "output_text", "annotations": [],
               "text": "Ran `true`\n\nThe command ran and exited 0; nothing needed changing."}]})
    };
    let id = format!("resp_{turn}");
    let usage = json!({"input_tokens": body.len() / 4, "input_tokens_details": {"cached_tokens": 0},
                       "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
                       "total_tokens": body.len() / 4 + 20});
    let events = [
        json!({"type": "response.created", "sequence_number": 0,
               "response": {"id": id, "status": "in_progress", "output": []}}),
        json!({"type": "response.output_item.done", "sequence_number": 1, "output_index": 0,
               "item": item}),
        json!({"type": "response.completed", "sequence_number": 2,
               "response": {"id": id, "status": "completed", "output": [item], "usage": usage}}),
    ];
    let mut text = String::new();
    for event in events {
        text += &format!("event: {}\ndata: {event}\n\n", event["type"].as_str().unwrap_or(""));
    }
    ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response()
}

/// Runs of consecutive model items in a Responses `input` (assistant messages, tool calls,
/// reasoning): the turns the conversation already had.
fn model_turns(request: &Value) -> usize {
    let items = request.get("input").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let mut turns = 0;
    let mut in_turn = false;
    for item in items {
        let model = match item.get("type").and_then(Value::as_str) {
            Some("function_call" | "custom_tool_call" | "reasoning") => true,
            Some("message") | None => item.get("role").and_then(Value::as_str) == Some("assistant"),
            Some(_) => false,
        };
        turns += usize::from(model && !in_turn);
        in_turn = model;
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_counted_from_the_input() {
        let user = json!({"type": "message", "role": "user", "content": "go"});
        let call = json!({"type": "function_call", "call_id": "c", "name": "shell"});
        let output = json!({"type": "function_call_output", "call_id": "c", "output": ""});
        let said = json!({"type": "message", "role": "assistant", "content": "hm"});
        for (input, turns) in [
            (vec![&user], 0),
            (vec![&user, &said, &call, &output], 1),
            (vec![&user, &call, &output, &call, &output, &said], 3),
        ] {
            assert_eq!(model_turns(&json!({"input": input})), turns);
        }
    }
}
