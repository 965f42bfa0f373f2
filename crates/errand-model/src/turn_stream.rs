//! Building a [`ModelTurn`] from the Responses streaming events of one attempt.
//!
//! `response.output_item.done` items are authoritative (deltas are only progress);
//! `response.completed` ends the turn and carries the usage.

use serde_json::Value;

use crate::client::ModelProgress;
use crate::conversation::{Item, ModelTurn};
use crate::error::{AttemptError, ModelError};
use crate::responses;
use crate::retry::classify_failed;
use crate::sse::SseEvent;

/// The key variable named in advice about this protocol's errors.
const KEY_ENV: &str = crate::config::Provider::Responses.key_env();

pub struct TurnBuilder<'a> {
    model: &'a str,
    endpoint: &'a str,
    items: Vec<Item>,
    response_id: Option<String>,
}

impl<'a> TurnBuilder<'a> {
    pub fn new(model: &'a str, endpoint: &'a str) -> Self {
        Self { model, endpoint, items: Vec::new(), response_id: None }
    }

    /// Applies one event; `Ok(Some(turn))` once the response is complete.
    pub fn event(
        &mut self,
        event: &SseEvent,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<Option<ModelTurn>, AttemptError> {
        if event.data == "[DONE]" {
            // Chat Completions' end marker; some proxies add it to Responses streams too.
            return Ok(None);
        }
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(data) => data,
            Err(e) => {
                // Keep-alives and proxy chatter carry nothing; a lost `response.completed` would
                // still surface as a stream ending early, which is retried.
                tracing::debug!(endpoint = self.endpoint, event = %event.event, error = %e,
                    "ignoring an SSE event whose data is not JSON");
                return Ok(None);
            }
        };
        let kind = data.get("type").and_then(Value::as_str).unwrap_or(&event.event);
        let text = |field: &str| data.get(field).and_then(Value::as_str).unwrap_or_default();
        match kind {
            "response.created" | "response.in_progress" => self.note_response_id(&data),
            "response.output_text.delta" => {
                progress(ModelProgress::TextDelta(text("delta").into()))
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                progress(ModelProgress::ReasoningDelta(text("delta").into()))
            }
            "response.output_item.done" => {
                let item = data.get("item").unwrap_or(&Value::Null);
                if let Some(item) = responses::output_item(item).map_err(|e| self.protocol(e))? {
                    self.items.push(item);
                }
            }
            "response.completed" => return self.completed(&data).map(Some),
            "response.failed" => {
                let error = data.pointer("/response/error").unwrap_or(&Value::Null);
                let field = |name| error.get(name).and_then(Value::as_str).unwrap_or_default();
                let message = match field("message") {
                    "" => "the model endpoint reported a failure without a message",
                    message => message,
                };
                return Err(classify_failed(field("code"), message, self.model, KEY_ENV));
            }
            "response.incomplete" => {
                let reason = data
                    .pointer("/response/incomplete_details/reason")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown reason");
                return Err(ModelError::TurnFailed {
                    model: self.model.to_string(),
                    code: "incomplete".to_string(),
                    message: format!("the response stopped early: {reason}"),
                }
                .into());
            }
            // A stream-level error event: `{"type":"error","code":…,"message":…}`.
            "error" => {
                return Err(classify_failed(text("code"), text("message"), self.model, KEY_ENV));
            }
            // Responses API adds event types over time; unknown ones carry nothing we need.
            _ => {}
        }
        Ok(None)
    }

    fn note_response_id(&mut self, data: &Value) {
        if let Some(id) = data.pointer("/response/id").and_then(Value::as_str) {
            self.response_id = Some(id.to_string());
        }
    }

    fn completed(&mut self, data: &Value) -> Result<ModelTurn, AttemptError> {
        self.note_response_id(data);
        let usage = data.pointer("/response/usage").map(responses::usage).unwrap_or_default();
        let mut items = std::mem::take(&mut self.items);
        // Some compatible servers skip `output_item.done` and only fill `response.output`.
        if items.is_empty()
            && let Some(output) = data.pointer("/response/output").and_then(Value::as_array)
        {
            for item in output {
                if let Some(item) = responses::output_item(item).map_err(|e| self.protocol(e))? {
                    items.push(item);
                }
            }
        }
        Ok(ModelTurn { items, usage, response_id: self.response_id.take() })
    }

    fn protocol(&self, message: String) -> AttemptError {
        ModelError::Protocol { endpoint: self.endpoint.to_string(), message }.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::Role;
    use serde_json::json;

    fn run(events: &[Value]) -> (Result<Option<ModelTurn>, AttemptError>, Vec<ModelProgress>) {
        let mut seen = Vec::new();
        let mut builder = TurnBuilder::new("m", "http://x/responses");
        let mut progress = |p| seen.push(p);
        let mut result = Ok(None);
        for data in events {
            let event = SseEvent { event: String::new(), data: data.to_string() };
            result = builder.event(&event, &mut progress);
            if !matches!(result, Ok(None)) {
                break;
            }
        }
        (result, seen)
    }

    #[test]
    fn unknown_events_are_ignored_and_output_fallback_is_used() {
        let message = json!({"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "hi"}]});
        let (result, seen) = run(&[
            json!({"type": "response.created", "response": {"id": "resp_9"}}),
            json!({"type": "response.something_new", "x": 1}),
            json!({"type": "response.output_text.delta", "delta": "hi"}),
            json!({"type": "response.completed", "response": {"id": "resp_9", "output": [message]}}),
        ]);
        let turn = result.ok().flatten().unwrap();
        assert_eq!(turn.items, [Item::Message { role: Role::Assistant, text: "hi".into() }]);
        assert_eq!(turn.response_id.as_deref(), Some("resp_9"));
        assert!(matches!(&seen[..], [ModelProgress::TextDelta(t)] if t == "hi"));
    }

    #[test]
    fn failures() {
        let (result, _) = run(&[json!({"type": "response.incomplete",
            "response": {"incomplete_details": {"reason": "max_output_tokens"}}})]);
        let Err(AttemptError::Fatal(error)) = result else { panic!() };
        assert!(error.to_string().contains("max_output_tokens"), "{error}");

        let (result, _) = run(&[json!({"type": "error", "code": "server_error", "message": "x"})]);
        assert!(matches!(result, Err(AttemptError::Transient { .. })));

        let mut builder = TurnBuilder::new("m", "http://x/responses");
        let not_json = SseEvent { event: "ping".into(), data: "{oops".into() };
        assert!(matches!(builder.event(&not_json, &mut |_| {}), Ok(None)));
        let broken =
            json!({"type": "response.output_item.done", "item": {"type": "custom_tool_call"}});
        let broken = SseEvent { event: String::new(), data: broken.to_string() };
        let result = builder.event(&broken, &mut |_| {});
        assert!(matches!(result, Err(AttemptError::Fatal(ModelError::Protocol { .. }))));
    }
}
