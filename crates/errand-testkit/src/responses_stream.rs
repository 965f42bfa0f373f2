//! The OpenAI Responses streaming events for one scripted turn, with the real payload shapes.
//!
//! Order per the Responses streaming reference: `response.created`, `response.in_progress`, then
//! for each output item `response.output_item.added`, its part/delta/done events and
//! `response.output_item.done` (the full item), and finally `response.completed` carrying all
//! items and the usage. Every event has a `sequence_number` counting from 0.

use serde_json::{Value, json};

use crate::script::{Output, Usage};

/// One server-sent event: `event: <kind>\ndata: <payload>\n\n`.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub kind: String,
    pub payload: Value,
}

impl SseEvent {
    /// The frame as sent on the wire.
    pub fn to_frame(&self) -> String {
        format!("event: {}\ndata: {}\n\n", self.kind, self.payload)
    }
}

/// Builds the events of one response, numbering them as it goes.
pub struct ResponseEvents {
    /// 1-based turn number: ids and call ids are derived from it.
    turn: usize,
    response: Value,
    events: Vec<SseEvent>,
}

impl ResponseEvents {
    /// Starts a response: `response.created` and `response.in_progress`.
    pub fn start(turn: usize, model: &str) -> Self {
        let created_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let response = json!({
            "id": format!("resp_{turn}"),
            "object": "response",
            "created_at": created_at,
            "status": "in_progress",
            "model": model,
            "output": [],
            // Required in every Response object (openai-python's `Response` model rejects one
            // without them; tests/sdk_conformance.rs): the API's defaults for a request that
            // sets none of them.
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
            "usage": null,
            "error": null,
        });
        let mut this = Self { turn, response, events: Vec::new() };
        let snapshot = this.response.clone();
        this.push("response.created", json!({ "response": snapshot.clone() }));
        this.push("response.in_progress", json!({ "response": snapshot }));
        this
    }

    /// All events of a normal turn: the outputs, then `response.completed` with `usage`.
    pub fn completed(mut self, outputs: &[Output], usage: Usage) -> Vec<SseEvent> {
        let mut items = Vec::new();
        for (index, output) in outputs.iter().enumerate() {
            items.push(self.output_item(index, output));
        }
        self.response["status"] = json!("completed");
        self.response["output"] = Value::Array(items);
        self.response["usage"] = json!({
            "input_tokens": usage.input_tokens,
            // The real API reports prompt-cache writes too (openai-python requires the field);
            // scripts have no such count, so none are written.
            "input_tokens_details": { "cached_tokens": usage.cached_tokens, "cache_write_tokens": 0 },
            "output_tokens": usage.output_tokens,
            "output_tokens_details": { "reasoning_tokens": usage.reasoning_tokens },
            "total_tokens": usage.input_tokens + usage.output_tokens,
        });
        let response = self.response.clone();
        self.push("response.completed", json!({ "response": response }));
        self.events
    }

    /// The events of a turn that fails server-side: `response.failed` with `error`.
    pub fn failed(mut self, code: &str, message: &str) -> Vec<SseEvent> {
        self.response["status"] = json!("failed");
        self.response["error"] = json!({ "code": code, "message": message });
        let response = self.response.clone();
        self.push("response.failed", json!({ "response": response }));
        self.events
    }

    fn push(&mut self, kind: &str, mut payload: Value) {
        payload["type"] = json!(kind);
        payload["sequence_number"] = json!(self.events.len());
        self.events.push(SseEvent { kind: kind.to_string(), payload });
    }

    /// Emits the events of one output item and returns the finished item.
    fn output_item(&mut self, index: usize, output: &Output) -> Value {
        let n = index + 1;
        let turn = self.turn;
        let default_call_id = || format!("call_{turn}_{n}");
        match output {
            Output::Message { text } => {
                let id = format!("msg_{turn}_{n}");
                let part =
                    |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
                let item = json!({
                    "type": "message", "id": id, "role": "assistant", "status": "completed",
                    "content": [part(text)],
                });
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["content"] = json!([]);
                self.push(
                    "response.output_item.added",
                    json!({"output_index": index, "item": added}),
                );
                let at = json!({"item_id": id, "output_index": index, "content_index": 0});
                self.push("response.content_part.added", with(&at, "part", part("")));
                for delta in split_in_chunks(text) {
                    let mut event = with(&at, "delta", json!(delta));
                    event["logprobs"] = json!([]);
                    self.push("response.output_text.delta", event);
                }
                let mut done = with(&at, "text", json!(text));
                done["logprobs"] = json!([]);
                self.push("response.output_text.done", done);
                self.push("response.content_part.done", with(&at, "part", part(text)));
                self.item_done(index, item)
            }
            Output::FunctionCall { name, arguments, call_id } => {
                let id = format!("fc_{turn}_{n}");
                let arguments = arguments.to_json_text();
                let item = json!({
                    "type": "function_call", "id": id,
                    "call_id": call_id.clone().unwrap_or_else(default_call_id),
                    "name": name, "arguments": arguments, "status": "completed",
                });
                let mut added = item.clone();
                added["arguments"] = json!("");
                added["status"] = json!("in_progress");
                self.push(
                    "response.output_item.added",
                    json!({"output_index": index, "item": added}),
                );
                let at = json!({"item_id": id, "output_index": index});
                for delta in split_in_chunks(&arguments) {
                    self.push(
                        "response.function_call_arguments.delta",
                        with(&at, "delta", json!(delta)),
                    );
                }
                let mut done = with(&at, "arguments", json!(arguments));
                done["name"] = json!(name);
                self.push("response.function_call_arguments.done", done);
                self.item_done(index, item)
            }
            Output::CustomToolCall { name, input, call_id } => {
                let id = format!("ctc_{turn}_{n}");
                let item = json!({
                    "type": "custom_tool_call", "id": id,
                    "call_id": call_id.clone().unwrap_or_else(default_call_id),
                    "name": name, "input": input,
                });
                let mut added = item.clone();
                added["input"] = json!("");
                self.push(
                    "response.output_item.added",
                    json!({"output_index": index, "item": added}),
                );
                let at = json!({"item_id": id, "output_index": index});
                for delta in split_in_chunks(input) {
                    self.push(
                        "response.custom_tool_call_input.delta",
                        with(&at, "delta", json!(delta)),
                    );
                }
                self.push("response.custom_tool_call_input.done", with(&at, "input", json!(input)));
                self.item_done(index, item)
            }
            Output::Reasoning { summary, encrypted_content } => {
                let id = format!("rs_{turn}_{n}");
                let part = |text: &str| json!({"type": "summary_text", "text": text});
                let mut item = json!({"type": "reasoning", "id": id, "summary": [part(summary)]});
                if let Some(encrypted) = encrypted_content {
                    item["encrypted_content"] = json!(encrypted);
                }
                let added = json!({"type": "reasoning", "id": id, "summary": []});
                self.push(
                    "response.output_item.added",
                    json!({"output_index": index, "item": added}),
                );
                let at = json!({"item_id": id, "output_index": index, "summary_index": 0});
                self.push("response.reasoning_summary_part.added", with(&at, "part", part("")));
                for delta in split_in_chunks(summary) {
                    self.push(
                        "response.reasoning_summary_text.delta",
                        with(&at, "delta", json!(delta)),
                    );
                }
                self.push(
                    "response.reasoning_summary_text.done",
                    with(&at, "text", json!(summary)),
                );
                self.push("response.reasoning_summary_part.done", with(&at, "part", part(summary)));
                self.item_done(index, item)
            }
        }
    }

    fn item_done(&mut self, index: usize, item: Value) -> Value {
        self.push(
            "response.output_item.done",
            json!({"output_index": index, "item": item.clone()}),
        );
        item
    }
}

/// `base` (an object) plus one more field.
fn with(base: &Value, key: &str, value: Value) -> Value {
    let mut out = base.clone();
    out[key] = value;
    out
}

/// Splits text into up to three deltas at character boundaries, as a model streams tokens.
pub fn split_in_chunks(text: &str) -> Vec<&str> {
    let chars = text.chars().count();
    if chars == 0 {
        return Vec::new();
    }
    let per_chunk = chars.div_ceil(3);
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = rest.char_indices().nth(per_chunk).map_or(rest.len(), |(i, _)| i);
        let (chunk, tail) = rest.split_at(cut);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_rejoin_to_the_text() {
        for text in ["", "a", "ab", "héllo wörld ✓", "0123456789"] {
            let chunks = split_in_chunks(text);
            assert_eq!(chunks.concat(), text);
            assert!(chunks.len() <= 3);
        }
        assert_eq!(split_in_chunks("abcdef"), ["ab", "cd", "ef"]);
    }
}
