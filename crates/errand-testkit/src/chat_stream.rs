//! The OpenAI Chat Completions streaming chunks for one scripted turn, as vLLM, llama.cpp server,
//! Ollama and LiteLLM send them.
//!
//! Frames are `data: {chat.completion.chunk}\n\n` (no `event:` line), ending with
//! `data: [DONE]\n\n`. The first chunk carries `delta.role`; text comes as `delta.content`
//! pieces, reasoning as `delta.reasoning_content`, each tool call as `delta.tool_calls` whose
//! first chunk has `id` and `function.name` and later ones only `index` and an `arguments`
//! piece. A custom tool call becomes a function call with arguments `{"input": …}`.

use serde_json::{Value, json};

use crate::responses_stream::split_in_chunks;
use crate::script::{Output, Usage};

/// Builds the frames of one completion.
pub struct ChatChunks {
    turn: usize,
    base: Value,
    frames: Vec<String>,
}

impl ChatChunks {
    /// Starts a completion with the `role: "assistant"` chunk.
    pub fn start(turn: usize, model: &str) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let base = json!({
            "id": format!("chatcmpl-{turn}"),
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        });
        let mut this = Self { turn, base, frames: Vec::new() };
        this.delta(json!({"role": "assistant", "content": ""}));
        this
    }

    /// All frames of a normal turn; the usage chunk only when `include_usage` was requested.
    pub fn completed(mut self, outputs: &[Output], usage: Option<Usage>) -> Vec<String> {
        let mut calls = 0;
        for (index, output) in outputs.iter().enumerate() {
            let default_call_id = format!("call_{}_{}", self.turn, index + 1);
            let (name, arguments, call_id) = match output {
                Output::Message { text } => {
                    for piece in split_in_chunks(text) {
                        self.delta(json!({"content": piece}));
                    }
                    continue;
                }
                Output::Reasoning { summary, .. } => {
                    for piece in split_in_chunks(summary) {
                        self.delta(json!({"reasoning_content": piece}));
                    }
                    continue;
                }
                Output::FunctionCall { name, arguments, call_id } => {
                    (name, arguments.to_json_text(), call_id)
                }
                Output::CustomToolCall { name, input, call_id } => {
                    (name, json!({"input": input}).to_string(), call_id)
                }
            };
            let id = call_id.clone().unwrap_or(default_call_id);
            self.delta(json!({"tool_calls": [{"index": calls, "id": id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}));
            for piece in split_in_chunks(&arguments) {
                self.delta(json!({"tool_calls": [{"index": calls,
                    "function": {"arguments": piece}}]}));
            }
            calls += 1;
        }
        let reason = if calls > 0 { "tool_calls" } else { "stop" };
        self.push(json!([{"index": 0, "delta": {}, "finish_reason": reason}]), None);
        if let Some(usage) = usage {
            let usage = json!({
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            });
            self.push(json!([]), Some(usage));
        }
        self.done()
    }

    /// A turn that fails server-side: an `{"error": {…}}` chunk (as vLLM and OpenAI send
    /// mid-stream), then `[DONE]`.
    pub fn failed(mut self, code: &str, message: &str) -> Vec<String> {
        let error = json!({"error": {"message": message, "type": "server_error", "code": code}});
        self.frames.push(format!("data: {error}\n\n"));
        self.done()
    }

    fn done(mut self) -> Vec<String> {
        self.frames.push("data: [DONE]\n\n".to_string());
        self.frames
    }

    fn delta(&mut self, delta: Value) {
        self.push(json!([{"index": 0, "delta": delta, "finish_reason": null}]), None);
    }

    fn push(&mut self, choices: Value, usage: Option<Value>) {
        let mut chunk = self.base.clone();
        chunk["choices"] = choices;
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        self.frames.push(format!("data: {chunk}\n\n"));
    }
}
