//! The Anthropic Messages streaming events for one scripted turn, with the payload shapes the
//! real API sends (docs.anthropic.com/en/docs/build-with-claude/streaming, and recorded streams
//! such as the `@ai-sdk/anthropic` test fixtures).
//!
//! Order: `message_start` (a `message` with empty `content` and the input usage); per output one
//! content block: `content_block_start`, its deltas, `content_block_stop`; a `ping` after the
//! first block starts; `message_delta` (`stop_reason`, usage); `message_stop`. Every payload
//! carries its `type`, which is also the SSE event name.

use serde_json::{Value, json};

use crate::responses_stream::{SseEvent, split_in_chunks};
use crate::script::{Output, Usage};

/// Builds the events of one message.
pub struct MessageEvents {
    /// 1-based turn number: ids are derived from it.
    turn: usize,
    events: Vec<SseEvent>,
    pinged: bool,
}

impl MessageEvents {
    /// Starts a message: `message_start`.
    pub fn start(turn: usize, model: &str, usage: Usage) -> Self {
        let mut this = Self { turn, events: Vec::new(), pinged: false };
        let mut usage = input_usage(usage);
        // The API reports the first output token or so already here.
        usage["output_tokens"] = json!(1);
        usage["cache_creation"] =
            json!({"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0});
        usage["service_tier"] = json!("standard");
        let message = json!({
            "id": format!("msg_{turn}"),
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage,
        });
        this.push("message_start", json!({ "message": message }));
        this
    }

    /// All events of a normal turn.
    pub fn completed(mut self, outputs: &[Output], usage: Usage) -> Vec<SseEvent> {
        let mut called = false;
        for (index, output) in outputs.iter().enumerate() {
            called |= self.block(index, output);
        }
        self.ping();
        let mut final_usage = input_usage(usage);
        final_usage["output_tokens"] = json!(usage.output_tokens);
        let stop_reason = if called { "tool_use" } else { "end_turn" };
        self.push(
            "message_delta",
            json!({"delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": final_usage}),
        );
        self.push("message_stop", json!({}));
        self.events
    }

    /// A stream that fails mid-way: an `error` event (as the API sends `overloaded_error` under
    /// load), and nothing after it.
    pub fn failed(mut self, error_type: &str, message: &str) -> Vec<SseEvent> {
        self.ping();
        self.push("error", json!({"error": {"type": error_type, "message": message}}));
        self.events
    }

    fn ping(&mut self) {
        if !self.pinged {
            self.pinged = true;
            self.push("ping", json!({}));
        }
    }

    fn push(&mut self, kind: &str, mut payload: Value) {
        payload["type"] = json!(kind);
        self.events.push(SseEvent { kind: kind.to_string(), payload });
    }

    fn delta(&mut self, index: usize, delta: Value) {
        self.push("content_block_delta", json!({"index": index, "delta": delta}));
    }

    /// Emits one output as a content block; `true` for a tool call.
    fn block(&mut self, index: usize, output: &Output) -> bool {
        let n = index + 1;
        let turn = self.turn;
        let start = |this: &mut Self, block: Value| {
            this.push("content_block_start", json!({"index": index, "content_block": block}));
            this.ping();
        };
        let tool_use = match output {
            Output::Message { text } => {
                start(self, json!({"type": "text", "text": ""}));
                for piece in split_in_chunks(text) {
                    self.delta(index, json!({"type": "text_delta", "text": piece}));
                }
                None
            }
            Output::Reasoning { summary, encrypted_content } => {
                start(self, json!({"type": "thinking", "thinking": "", "signature": ""}));
                for piece in split_in_chunks(summary) {
                    self.delta(index, json!({"type": "thinking_delta", "thinking": piece}));
                }
                let signature =
                    encrypted_content.clone().unwrap_or_else(|| format!("sig_{turn}_{n}"));
                self.delta(index, json!({"type": "signature_delta", "signature": signature}));
                None
            }
            Output::FunctionCall { name, arguments, call_id } => {
                Some((name, arguments.to_json_text(), call_id))
            }
            Output::CustomToolCall { name, input, call_id } => {
                Some((name, json!({ "input": input }).to_string(), call_id))
            }
        };
        if let Some((name, input, call_id)) = &tool_use {
            let id = call_id
                .as_deref()
                .map(str::to_string)
                .unwrap_or_else(|| format!("call_{turn}_{n}"));
            start(self, json!({"type": "tool_use", "id": id, "name": name, "input": {}}));
            // The API opens a tool's input with an empty piece.
            self.delta(index, json!({"type": "input_json_delta", "partial_json": ""}));
            for piece in split_in_chunks(input) {
                self.delta(index, json!({"type": "input_json_delta", "partial_json": piece}));
            }
        }
        self.push("content_block_stop", json!({"index": index}));
        tool_use.is_some()
    }
}

/// The input part of a usage object: Anthropic's `input_tokens` excludes what was read from the
/// cache, so a script's `input_tokens` (all input, OpenAI style) is split.
fn input_usage(usage: Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens.saturating_sub(usage.cached_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    })
}

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}, "request_id"}`.
pub fn error_body(error_type: &str, message: &str, turn: usize) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": format!("req_scripted_{turn}"),
    })
}

/// The error type the API gives an HTTP status (docs.anthropic.com/en/api/errors).
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// A script's fault `code` (written for any protocol) as an Anthropic error type and default
/// message. Codes that are Anthropic types already pass through.
pub fn error_for_code(code: &str) -> (&str, Option<&'static str>) {
    match code {
        "context_length_exceeded" => {
            ("invalid_request_error", Some("prompt is too long: 210000 tokens > 200000 maximum"))
        }
        "server_error" | "internal_error" => ("api_error", None),
        "overloaded" | "server_is_overloaded" => ("overloaded_error", None),
        "rate_limit_exceeded" => ("rate_limit_error", None),
        "invalid_api_key" => ("authentication_error", None),
        "model_not_found" => ("not_found_error", None),
        other => (other, None),
    }
}
