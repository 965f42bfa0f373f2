//! Building a [`ModelTurn`] from the Anthropic Messages streaming events of one attempt.
//!
//! Event flow (docs.anthropic.com/en/docs/build-with-claude/streaming): `message_start` (the
//! message with empty `content` and the input usage); per content block `content_block_start`,
//! `content_block_delta`s and `content_block_stop`, each with the block's `index`; `message_delta`
//! (`stop_reason`, final usage); `message_stop`. `ping`s may come anywhere, and an `error` event
//! (e.g. `overloaded_error`) may end the stream early. A `redacted_thinking` block arrives whole
//! in its `content_block_start`; a `signature_delta` carries a thinking block's whole signature.

use std::collections::BTreeMap;

use errand_protocol::TokenUsage;
use serde_json::Value;

use crate::anthropic::REDACTED_THINKING;
use crate::client::ModelProgress;
use crate::config::Provider;
use crate::conversation::{Item, ModelRequest, ModelTurn, Role, ToolSpec};
use crate::error::{AttemptError, ModelError};
use crate::retry::classify_failed;
use crate::sse::SseEvent;

/// One content block as it streams in.
enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        /// The `input_json_delta` pieces joined: the input's JSON text as the model wrote it.
        json: String,
        /// The `input` of `content_block_start`, used when no deltas come (some proxies send
        /// the whole input there).
        start_input: Value,
    },
    Thinking {
        text: String,
        signature: String,
    },
    RedactedThinking(String),
    /// Block types Errand does not use (server tools, citations of documents it never sends).
    Other,
}

/// Input token counts as Anthropic reports them: `input_tokens` excludes the cached parts.
#[derive(Default)]
struct WireUsage {
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    output: u64,
}

impl WireUsage {
    /// Takes every count present in `usage` (`message_start`'s, then `message_delta`'s, whose
    /// counts are cumulative).
    fn update(&mut self, usage: &Value) {
        let slots = [
            ("input_tokens", &mut self.input),
            ("cache_read_input_tokens", &mut self.cache_read),
            ("cache_creation_input_tokens", &mut self.cache_creation),
            ("output_tokens", &mut self.output),
        ];
        for (name, slot) in slots {
            if let Some(count) = usage.get(name).and_then(Value::as_u64) {
                *slot = count;
            }
        }
    }

    /// Errand counts all input: uncached, read from the cache, and written to it.
    fn as_token_usage(&self) -> TokenUsage {
        TokenUsage {
            input: self.input + self.cache_read + self.cache_creation,
            cached_input: self.cache_read,
            output: self.output,
            // Thinking tokens are part of `output_tokens`; the API does not count them apart.
            reasoning: 0,
        }
    }
}

pub struct MessagesBuilder<'a> {
    model: &'a str,
    endpoint: &'a str,
    /// Names of freeform tools offered: calls to them become `CustomToolCall`s.
    freeform: Vec<String>,
    message_id: Option<String>,
    blocks: BTreeMap<u64, Block>,
    usage: WireUsage,
    stop_reason: Option<String>,
}

impl<'a> MessagesBuilder<'a> {
    pub fn new(model: &'a str, endpoint: &'a str, request: &ModelRequest) -> Self {
        let freeform = request
            .tools
            .iter()
            .filter(|tool| matches!(tool, ToolSpec::Freeform { .. }))
            .map(|tool| tool.name().to_string())
            .collect();
        Self {
            model,
            endpoint,
            freeform,
            message_id: None,
            blocks: BTreeMap::new(),
            usage: WireUsage::default(),
            stop_reason: None,
        }
    }

    /// Applies one event; `Ok(Some(turn))` at `message_stop`.
    pub fn event(
        &mut self,
        event: &SseEvent,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<Option<ModelTurn>, AttemptError> {
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(data) => data,
            Err(e) => {
                // A lost `message_stop` would still surface as a stream ending early (retried).
                tracing::debug!(endpoint = self.endpoint, event = %event.event, error = %e,
                    "ignoring an SSE event whose data is not JSON");
                return Ok(None);
            }
        };
        let kind = data.get("type").and_then(Value::as_str).unwrap_or(&event.event);
        match kind {
            "message_start" => {
                let message = &data["message"];
                self.message_id = message["id"].as_str().map(str::to_string);
                self.usage.update(&message["usage"]);
            }
            "content_block_start" => {
                let block = &data["content_block"];
                let text = |field: &str| block[field].as_str().unwrap_or_default().to_string();
                let block = match block["type"].as_str().unwrap_or_default() {
                    "text" => Block::Text(text("text")),
                    "tool_use" => Block::ToolUse {
                        id: text("id"),
                        name: text("name"),
                        json: String::new(),
                        start_input: block["input"].clone(),
                    },
                    "thinking" => {
                        Block::Thinking { text: text("thinking"), signature: text("signature") }
                    }
                    "redacted_thinking" => Block::RedactedThinking(text("data")),
                    _ => Block::Other,
                };
                self.blocks.insert(self.index(&data)?, block);
            }
            "content_block_delta" => self.delta(&data, progress)?,
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_string());
                }
                self.usage.update(&data["usage"]);
            }
            "message_stop" => return self.finish().map(Some),
            "error" => {
                let error = &data["error"];
                let field = |name: &str| error[name].as_str().unwrap_or_default();
                let message = match field("message") {
                    "" => "the model endpoint reported an error without a message",
                    message => message,
                };
                return Err(classify_failed(
                    field("type"),
                    message,
                    self.model,
                    Provider::Anthropic.key_env(),
                ));
            }
            // `ping`, `content_block_stop`, and event types added later carry nothing we need.
            _ => {}
        }
        Ok(None)
    }

    fn index(&self, data: &Value) -> Result<u64, AttemptError> {
        data["index"]
            .as_u64()
            .ok_or_else(|| self.protocol(format!("a `{}` event without an `index`", data["type"])))
    }

    fn delta(
        &mut self,
        data: &Value,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<(), AttemptError> {
        let index = self.index(data)?;
        let delta = &data["delta"];
        let text = |field: &str| delta[field].as_str().unwrap_or_default();
        let Some(block) = self.blocks.get_mut(&index) else {
            return Err(
                self.protocol(format!("a delta for content block {index} before its start"))
            );
        };
        match (delta["type"].as_str().unwrap_or_default(), block) {
            ("text_delta", Block::Text(buffer)) => {
                buffer.push_str(text("text"));
                progress(ModelProgress::TextDelta(text("text").to_string()));
            }
            ("input_json_delta", Block::ToolUse { json, .. }) => {
                json.push_str(text("partial_json"))
            }
            ("thinking_delta", Block::Thinking { text: buffer, .. }) => {
                buffer.push_str(text("thinking"));
                progress(ModelProgress::ReasoningDelta(text("thinking").to_string()));
            }
            // The signature comes whole, in one delta.
            ("signature_delta", Block::Thinking { signature, .. }) => {
                *signature = text("signature").to_string()
            }
            // `citations_delta` and deltas of blocks Errand does not use.
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ModelTurn, AttemptError> {
        let failed = |code: &str, message: &str| -> AttemptError {
            ModelError::TurnFailed {
                model: self.model.to_string(),
                code: code.to_string(),
                message: message.to_string(),
            }
            .into()
        };
        let answered = self.blocks.values().any(|block| match block {
            Block::Text(text) => !text.trim().is_empty(),
            Block::ToolUse { .. } => true,
            _ => false,
        });
        match self.stop_reason.as_deref() {
            // A refusal comes from the API's safety classifiers (docs: "Handling refusals"): a
            // retry of the same conversation is refused again.
            Some("refusal") => {
                return Err(failed(
                    "refusal",
                    "the model declined to continue this conversation (stop_reason `refusal`)",
                ));
            }
            // Only server-side tools pause a turn, and Errand offers none.
            Some("pause_turn") => {
                return Err(failed(
                    "pause_turn",
                    "the model paused its turn for a server-side tool, which Errand does not offer",
                ));
            }
            // Cut off before any answer: text or a tool call cut off is delivered as it is.
            Some(reason @ ("max_tokens" | "model_context_window_exceeded")) if !answered => {
                return Err(failed(
                    reason,
                    "the model reached its output limit before producing an answer; raise \
                     model.max_output_tokens or lower model.reasoning_effort",
                ));
            }
            _ => {}
        }
        let prefix = self.message_id.as_deref().unwrap_or("msg");
        let mut items = Vec::new();
        for (index, block) in std::mem::take(&mut self.blocks) {
            match block {
                Block::Text(text) if !text.trim().is_empty() => {
                    items.push(Item::Message { role: Role::Assistant, text })
                }
                Block::Thinking { text, signature } => items.push(Item::Reasoning {
                    id: format!("thinking_{prefix}_{index}"),
                    summary: if text.is_empty() { Vec::new() } else { vec![text] },
                    encrypted_content: Some(signature).filter(|s| !s.is_empty()),
                }),
                Block::RedactedThinking(data) => items.push(Item::Reasoning {
                    id: format!("{REDACTED_THINKING}_{prefix}_{index}"),
                    summary: Vec::new(),
                    encrypted_content: Some(data),
                }),
                Block::ToolUse { id, name, json, start_input } => {
                    items.push(self.call_item(index, id, name, json, start_input)?)
                }
                Block::Text(_) | Block::Other => {}
            }
        }
        Ok(ModelTurn {
            items,
            usage: self.usage.as_token_usage(),
            response_id: self.message_id.clone(),
        })
    }

    fn call_item(
        &self,
        index: u64,
        id: String,
        name: String,
        json: String,
        start_input: Value,
    ) -> Result<Item, AttemptError> {
        if name.is_empty() || id.is_empty() {
            return Err(self.protocol(format!("tool_use block {index} has no name or id")));
        }
        // A tool without parameters streams no JSON at all.
        let arguments = match json {
            json if !json.is_empty() => json,
            _ if start_input.is_object() => start_input.to_string(),
            _ => "{}".to_string(),
        };
        let call_id = id;
        if self.freeform.contains(&name)
            && let Ok(Value::Object(object)) = serde_json::from_str(&arguments)
            && let Some(Value::String(input)) = object.get("input")
        {
            return Ok(Item::CustomToolCall { call_id, name, input: input.clone() });
        }
        // Arguments that do not parse (e.g. cut off by `max_tokens`) reach the agent as they
        // are, and its malformed-arguments answer tells the model.
        Ok(Item::FunctionCall { call_id, name, arguments })
    }

    fn protocol(&self, message: String) -> AttemptError {
        ModelError::Protocol { endpoint: self.endpoint.to_string(), message }.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> ModelRequest {
        ModelRequest {
            instructions: String::new(),
            input: vec![],
            tools: vec![ToolSpec::Freeform {
                name: "apply_patch".into(),
                description: String::new(),
                format: None,
            }],
            parallel_tool_calls: true,
        }
    }

    fn start() -> Value {
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "content": [], "model": "m", "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 10, "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000, "output_tokens": 1}}})
    }

    fn block(index: u64, block: Value) -> Value {
        json!({"type": "content_block_start", "index": index, "content_block": block})
    }

    fn delta(index: u64, delta: Value) -> Value {
        json!({"type": "content_block_delta", "index": index, "delta": delta})
    }

    fn stop(reason: &str) -> Vec<Value> {
        vec![
            json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null},
                "usage": {"output_tokens": 42}}),
            json!({"type": "message_stop"}),
        ]
    }

    fn run(events: &[Value]) -> (Result<Option<ModelTurn>, AttemptError>, Vec<ModelProgress>) {
        let request = request();
        let mut builder = MessagesBuilder::new("m", "http://x/messages", &request);
        let mut seen = Vec::new();
        let mut result = Ok(None);
        for data in events {
            let kind = data["type"].as_str().unwrap_or_default().to_string();
            let event = SseEvent { event: kind, data: data.to_string() };
            result = builder.event(&event, &mut |p| seen.push(p));
            if !matches!(result, Ok(None)) {
                break;
            }
        }
        (result, seen)
    }

    fn turn(events: &[Value]) -> ModelTurn {
        run(events).0.ok().flatten().expect("a turn")
    }

    #[test]
    fn thinking_text_and_tool_calls_in_block_order() {
        let mut events = vec![
            start(),
            block(0, json!({"type": "thinking", "thinking": "", "signature": ""})),
            delta(0, json!({"type": "thinking_delta", "thinking": "Read "})),
            json!({"type": "ping"}),
            delta(0, json!({"type": "thinking_delta", "thinking": "it."})),
            delta(0, json!({"type": "signature_delta", "signature": "EqQB+/=="})),
            json!({"type": "content_block_stop", "index": 0}),
            block(1, json!({"type": "redacted_thinking", "data": "EmwKAhgB"})),
            block(2, json!({"type": "text", "text": ""})),
            delta(2, json!({"type": "text_delta", "text": "Look"})),
            delta(2, json!({"type": "text_delta", "text": "ing."})),
            block(3, json!({"type": "tool_use", "id": "toolu_a", "name": "shell", "input": {}})),
            delta(3, json!({"type": "input_json_delta", "partial_json": ""})),
            delta(3, json!({"type": "input_json_delta", "partial_json": "{\"command\": [\"l"})),
            block(
                4,
                json!({"type": "tool_use", "id": "toolu_b", "name": "apply_patch", "input": {}}),
            ),
            delta(3, json!({"type": "input_json_delta", "partial_json": "s\"]}"})),
            delta(4, json!({"type": "input_json_delta", "partial_json": "{\"input\": \"P\\n\"}"})),
            block(5, json!({"type": "tool_use", "id": "toolu_c", "name": "list", "input": {}})),
            json!({"type": "some_future_event"}),
        ];
        events.extend(stop("tool_use"));
        let (result, seen) = run(&events);
        let turn = result.ok().flatten().unwrap();
        assert_eq!(
            turn.items,
            [
                Item::Reasoning {
                    id: "thinking_msg_1_0".into(),
                    summary: vec!["Read it.".into()],
                    encrypted_content: Some("EqQB+/==".into()),
                },
                Item::Reasoning {
                    id: "redacted_thinking_msg_1_1".into(),
                    summary: vec![],
                    encrypted_content: Some("EmwKAhgB".into()),
                },
                Item::Message { role: Role::Assistant, text: "Looking.".into() },
                Item::FunctionCall {
                    call_id: "toolu_a".into(),
                    name: "shell".into(),
                    arguments: r#"{"command": ["ls"]}"#.into(),
                },
                Item::CustomToolCall {
                    call_id: "toolu_b".into(),
                    name: "apply_patch".into(),
                    input: "P\n".into(),
                },
                Item::FunctionCall {
                    call_id: "toolu_c".into(),
                    name: "list".into(),
                    arguments: "{}".into(),
                },
            ]
        );
        assert_eq!(
            turn.usage,
            TokenUsage { input: 1110, cached_input: 1000, output: 42, reasoning: 0 }
        );
        assert_eq!(turn.response_id.as_deref(), Some("msg_1"));
        assert_eq!(
            seen,
            [
                ModelProgress::ReasoningDelta("Read ".into()),
                ModelProgress::ReasoningDelta("it.".into()),
                ModelProgress::TextDelta("Look".into()),
                ModelProgress::TextDelta("ing.".into()),
            ]
        );
    }

    #[test]
    fn cut_off_by_max_tokens() {
        // A tool call cut off mid-input reaches the agent as it is, even for a freeform tool.
        let mut events = vec![
            start(),
            block(0, json!({"type": "tool_use", "id": "t", "name": "apply_patch", "input": {}})),
            delta(0, json!({"type": "input_json_delta", "partial_json": "{\"input\": \"*** Beg"})),
        ];
        events.extend(stop("max_tokens"));
        assert_eq!(
            turn(&events).items,
            [Item::FunctionCall {
                call_id: "t".into(),
                name: "apply_patch".into(),
                arguments: "{\"input\": \"*** Beg".into(),
            }]
        );
        // Text cut off is kept.
        let mut events = vec![
            start(),
            block(0, json!({"type": "text", "text": ""})),
            delta(0, json!({"type": "text_delta", "text": "The fix is"})),
        ];
        events.extend(stop("max_tokens"));
        assert_eq!(
            turn(&events).items,
            [Item::Message { role: Role::Assistant, text: "The fix is".into() }]
        );
        // Nothing but thinking: the turn failed.
        let mut events = vec![start(), block(0, json!({"type": "thinking", "thinking": "hm"}))];
        events.extend(stop("max_tokens"));
        let Err(AttemptError::Fatal(error)) = run(&events).0 else { panic!() };
        assert!(error.to_string().contains("max_output_tokens"), "{error}");
    }

    #[test]
    fn refusal_and_pause_fail_and_end_turn_needs_no_blocks_to_parse() {
        for (reason, words) in [("refusal", "declined"), ("pause_turn", "server-side tool")] {
            let mut events = vec![start(), block(0, json!({"type": "text", "text": "I"}))];
            events.extend(stop(reason));
            let Err(AttemptError::Fatal(error @ ModelError::TurnFailed { .. })) = run(&events).0
            else {
                panic!("{reason}")
            };
            assert!(error.to_string().contains(words), "{error}");
        }
        let mut events = vec![start(), block(0, json!({"type": "text", "text": "Done."}))];
        events.extend(stop("end_turn"));
        assert_eq!(
            turn(&events).items,
            [Item::Message { role: Role::Assistant, text: "Done.".into() }]
        );
    }

    #[test]
    fn error_events_and_broken_streams() {
        let error = |kind: &str, message: &str| {
            run(&[start(), json!({"type": "error", "error": {"type": kind, "message": message}})]).0
        };
        assert!(matches!(
            error("overloaded_error", "Overloaded"),
            Err(AttemptError::Transient { .. })
        ));
        assert!(matches!(error("api_error", "Internal"), Err(AttemptError::Transient { .. })));
        assert!(matches!(
            error("invalid_request_error", "bad"),
            Err(AttemptError::Fatal(ModelError::TurnFailed { .. }))
        ));
        assert!(matches!(
            error("invalid_request_error", "prompt is too long: 9 tokens > 8 maximum"),
            Err(AttemptError::Fatal(ModelError::ContextLengthExceeded { .. }))
        ));
        let orphan = run(&[start(), delta(7, json!({"type": "text_delta", "text": "x"}))]).0;
        assert!(matches!(orphan, Err(AttemptError::Fatal(ModelError::Protocol { .. }))));
        let request = request();
        let mut builder = MessagesBuilder::new("m", "http://x/messages", &request);
        let not_json = SseEvent { event: "ping".into(), data: "{oops".into() };
        assert!(matches!(builder.event(&not_json, &mut |_| {}), Ok(None)));
    }
}
