//! Translation between the provider-neutral conversation and OpenAI-compatible Chat Completions
//! (vLLM, llama.cpp server, Ollama, LiteLLM): the request body going out, and a [`ChatBuilder`]
//! that assembles streamed `chat.completion.chunk`s into a [`ModelTurn`].
//!
//! Chat Completions has no freeform tools: they are offered as functions taking one string
//! argument `input`, and calls to them are turned back into [`Item::CustomToolCall`]s.

use std::collections::BTreeMap;

use errand_protocol::TokenUsage;
use serde_json::{Value, json};

use crate::client::ModelProgress;
use crate::config::ModelConfig;
use crate::conversation::{Item, ModelRequest, ModelTurn, Role, ToolSpec};
use crate::error::{AttemptError, ModelError};
use crate::retry::classify_failed;
use crate::sse::SseEvent;

/// The key variable named in advice about this protocol's errors.
const KEY_ENV: &str = crate::config::Provider::ChatCompletions.key_env();

/// The body of `POST {base_url}/chat/completions`.
pub fn request_body(config: &ModelConfig, request: &ModelRequest) -> Value {
    let mut body = json!({
        "model": config.model,
        "messages": messages(request),
        "tools": request.tools.iter().map(tool).collect::<Vec<_>>(),
        "tool_choice": "auto",
        "stream": true,
        "stream_options": { "include_usage": true },
        "parallel_tool_calls": request.parallel_tool_calls,
    });
    // `max_tokens`, not OpenAI's newer `max_completion_tokens`: the name vLLM, llama.cpp and
    // Ollama all accept.
    if let Some(max) = config.max_output_tokens {
        body["max_tokens"] = json!(max);
    }
    body
}

/// The conversation as chat messages: instructions first as `system`, consecutive tool calls
/// merged into one assistant message, reasoning dropped (no portable way to pass it back).
fn messages(request: &ModelRequest) -> Vec<Value> {
    let mut messages = vec![json!({ "role": "system", "content": request.instructions })];
    let mut calls: Vec<Value> = Vec::new();
    let flush = |messages: &mut Vec<Value>, calls: &mut Vec<Value>| {
        if !calls.is_empty() {
            messages.push(json!({
                "role": "assistant", "content": null, "tool_calls": std::mem::take(calls),
            }));
        }
    };
    for item in &request.input {
        let call = |id: &str, name: &str, arguments: String| {
            json!({ "id": id, "type": "function",
                "function": { "name": name, "arguments": arguments } })
        };
        match item {
            Item::FunctionCall { call_id, name, arguments } => {
                calls.push(call(call_id, name, arguments.clone()));
                continue;
            }
            Item::CustomToolCall { call_id, name, input } => {
                calls.push(call(call_id, name, json!({ "input": input }).to_string()));
                continue;
            }
            Item::Reasoning { .. } => continue,
            _ => {}
        }
        flush(&mut messages, &mut calls);
        messages.push(match item {
            Item::Message { role, text } => {
                let role = match role {
                    Role::Developer => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({ "role": role, "content": text })
            }
            Item::FunctionCallOutput { call_id, output }
            | Item::CustomToolCallOutput { call_id, output } => {
                json!({ "role": "tool", "tool_call_id": call_id, "content": output })
            }
            // Handled above.
            Item::FunctionCall { .. } | Item::CustomToolCall { .. } | Item::Reasoning { .. } => {
                continue;
            }
        });
    }
    flush(&mut messages, &mut calls);
    messages
}

fn tool(spec: &ToolSpec) -> Value {
    let (name, description, parameters) = match spec {
        ToolSpec::Function { name, description, parameters } => {
            (name, description, parameters.clone())
        }
        ToolSpec::Freeform { name, description, .. } => (
            name,
            description,
            json!({
                "type": "object",
                "properties": { "input": { "type": "string" } },
                "required": ["input"],
            }),
        ),
    };
    json!({ "type": "function",
        "function": { "name": name, "description": description, "parameters": parameters } })
}

/// `usage` of the final chunk as Errand counts it; missing numbers count as zero.
pub fn usage(usage: &Value) -> TokenUsage {
    let number = |pointer: &str| usage.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    TokenUsage {
        input: number("/prompt_tokens"),
        cached_input: number("/prompt_tokens_details/cached_tokens"),
        output: number("/completion_tokens"),
        reasoning: number("/completion_tokens_details/reasoning_tokens"),
    }
}

/// A tool call being assembled from deltas.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Assembles one attempt's chunks. Tool calls are keyed by `index`; `id` and `name` may come in
/// the first chunk only, `arguments` arrive in pieces (or whole, from simpler servers).
pub struct ChatBuilder<'a> {
    model: &'a str,
    endpoint: &'a str,
    /// Names of freeform tools offered: calls to them become `CustomToolCall`s.
    freeform: Vec<String>,
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    finish_reason: Option<String>,
    usage: TokenUsage,
    response_id: Option<String>,
}

impl<'a> ChatBuilder<'a> {
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
            text: String::new(),
            calls: BTreeMap::new(),
            finish_reason: None,
            usage: TokenUsage::default(),
            response_id: None,
        }
    }

    /// Applies one event; `Ok(Some(turn))` at `[DONE]`.
    pub fn event(
        &mut self,
        event: &SseEvent,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<Option<ModelTurn>, AttemptError> {
        if event.data.trim() == "[DONE]" {
            return self.finish().map(Some);
        }
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(data) => data,
            Err(e) => {
                tracing::debug!(endpoint = self.endpoint, error = %e,
                    "ignoring an SSE event whose data is not JSON");
                return Ok(None);
            }
        };
        if let Some(error) = data.get("error").filter(|e| !e.is_null()) {
            let field = |name| error.get(name).and_then(Value::as_str).unwrap_or_default();
            let message = match (error.as_str(), field("message")) {
                (Some(message), _) => message,
                (None, "") => "the model endpoint reported a failure without a message",
                (None, message) => message,
            };
            let code = match field("code") {
                "" => field("type"),
                code => code,
            };
            return Err(classify_failed(code, message, self.model, KEY_ENV));
        }
        if self.response_id.is_none() {
            self.response_id = data.get("id").and_then(Value::as_str).map(str::to_string);
        }
        if let Some(wire) = data.get("usage").filter(|u| u.is_object()) {
            self.usage = usage(wire);
        }
        let choices = data.get("choices").and_then(Value::as_array);
        for choice in choices.into_iter().flatten() {
            self.choice(choice, progress);
        }
        Ok(None)
    }

    fn choice(&mut self, choice: &Value, progress: &mut (dyn FnMut(ModelProgress) + Send)) {
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        if let Some(delta) = delta {
            let text = |field: &str| delta.get(field).and_then(Value::as_str).unwrap_or_default();
            if !text("content").is_empty() {
                self.text.push_str(text("content"));
                progress(ModelProgress::TextDelta(text("content").to_string()));
            }
            for field in ["reasoning_content", "reasoning"] {
                if !text(field).is_empty() {
                    progress(ModelProgress::ReasoningDelta(text(field).to_string()));
                }
            }
            let calls = delta.get("tool_calls").and_then(Value::as_array);
            for (position, call) in calls.into_iter().flatten().enumerate() {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
                let partial = self.calls.entry(index).or_default();
                let text = |pointer: &str| call.pointer(pointer).and_then(Value::as_str);
                if let Some(id) = text("/id").filter(|id| !id.is_empty()) {
                    partial.id = id.to_string();
                }
                if let Some(name) = text("/function/name").filter(|name| !name.is_empty()) {
                    partial.name = name.to_string();
                }
                match call.pointer("/function/arguments") {
                    Some(Value::String(piece)) => partial.arguments.push_str(piece),
                    // Some servers send the arguments as an object rather than its JSON text.
                    Some(object @ Value::Object(_)) => partial.arguments = object.to_string(),
                    _ => {}
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_string());
        }
    }

    /// The stream ended cleanly without `[DONE]`: a turn if the model said it finished.
    pub fn end_of_stream(&mut self) -> Option<Result<ModelTurn, AttemptError>> {
        self.finish_reason.is_some().then(|| self.finish())
    }

    fn finish(&mut self) -> Result<ModelTurn, AttemptError> {
        let reason = self.finish_reason.as_deref().unwrap_or("stop");
        let empty = self.text.is_empty() && self.calls.is_empty();
        let failed = |code: &str, message: &str| -> AttemptError {
            ModelError::TurnFailed {
                model: self.model.to_string(),
                code: code.to_string(),
                message: message.to_string(),
            }
            .into()
        };
        if reason == "length" && empty {
            return Err(failed(
                "length",
                "the model hit its output limit before producing any answer",
            ));
        }
        if reason == "content_filter" {
            return Err(failed(
                "content_filter",
                "the provider's content filter stopped the answer",
            ));
        }
        let mut items = Vec::new();
        if !self.text.is_empty() {
            let text = std::mem::take(&mut self.text);
            items.push(Item::Message { role: Role::Assistant, text });
        }
        let response_id = self.response_id.clone();
        for (index, call) in std::mem::take(&mut self.calls) {
            items.push(self.call_item(index, call, response_id.as_deref())?);
        }
        Ok(ModelTurn { items, usage: self.usage, response_id })
    }

    fn call_item(
        &self,
        index: u64,
        call: PartialCall,
        response_id: Option<&str>,
    ) -> Result<Item, AttemptError> {
        if call.name.is_empty() {
            return Err(ModelError::Protocol {
                endpoint: self.endpoint.to_string(),
                message: format!("tool call {index} has no function name"),
            }
            .into());
        }
        // Some servers (older llama.cpp, Ollama) omit ids; the agent needs one to pair outputs.
        let call_id = match call.id {
            id if id.is_empty() => format!("call_{}_{index}", response_id.unwrap_or("chat")),
            id => id,
        };
        if self.freeform.contains(&call.name)
            && let Ok(Value::Object(arguments)) = serde_json::from_str(&call.arguments)
            && let Some(Value::String(input)) = arguments.get("input")
        {
            return Ok(Item::CustomToolCall { call_id, name: call.name, input: input.clone() });
        }
        Ok(Item::FunctionCall { call_id, name: call.name, arguments: call.arguments })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ModelRequest {
        ModelRequest {
            instructions: "sys".into(),
            input: vec![
                Item::Message { role: Role::Developer, text: "dev".into() },
                Item::Message { role: Role::User, text: "hi".into() },
                Item::Reasoning {
                    id: "r".into(),
                    summary: vec!["s".into()],
                    encrypted_content: None,
                },
                Item::FunctionCall {
                    call_id: "c1".into(),
                    name: "shell".into(),
                    arguments: "{}".into(),
                },
                Item::CustomToolCall {
                    call_id: "c2".into(),
                    name: "apply_patch".into(),
                    input: "P".into(),
                },
                Item::FunctionCallOutput { call_id: "c1".into(), output: "out1".into() },
                Item::CustomToolCallOutput { call_id: "c2".into(), output: "out2".into() },
                Item::Message { role: Role::Assistant, text: "done".into() },
            ],
            tools: vec![
                ToolSpec::Function {
                    name: "shell".into(),
                    description: "d".into(),
                    parameters: json!({"type": "object"}),
                },
                ToolSpec::Freeform {
                    name: "apply_patch".into(),
                    description: "p".into(),
                    format: None,
                },
            ],
            parallel_tool_calls: true,
        }
    }

    fn run(chunks: &[Value]) -> Result<ModelTurn, AttemptError> {
        let request = request();
        let mut builder = ChatBuilder::new("m", "http://x/chat/completions", &request);
        for chunk in chunks {
            let event = SseEvent { event: String::new(), data: chunk.to_string() };
            assert!(builder.event(&event, &mut |_| {})?.is_none());
        }
        let done = SseEvent { event: String::new(), data: "[DONE]".into() };
        Ok(builder.event(&done, &mut |_| {})?.unwrap())
    }

    #[test]
    fn messages_in_wire_form() {
        let body = request_body(&ModelConfig::default(), &request());
        let roles: Vec<&str> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "system", "user", "assistant", "tool", "tool", "assistant"]);
        let calls = &body["messages"][3]["tool_calls"];
        assert_eq!(calls[0]["function"]["name"], "shell");
        assert_eq!(calls[1]["function"]["arguments"], r#"{"input":"P"}"#);
        assert_eq!(body["messages"][5]["tool_call_id"], "c2");
        assert_eq!(body["tools"][1]["function"]["parameters"]["required"], json!(["input"]));
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn assembles_calls_from_many_chunks() {
        let chunk = |delta: Value| json!({"id": "cc1", "choices": [{"index": 0, "delta": delta}]});
        let turn = run(&[
            chunk(json!({"role": "assistant", "content": ""})),
            chunk(json!({"content": "Let me "})),
            chunk(json!({"content": "look."})),
            chunk(json!({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                "function": {"name": "shell", "arguments": ""}}]})),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"comm"}}]})),
            chunk(json!({"tool_calls": [{"index": 1, "id": "b", "type": "function",
                "function": {"name": "apply_patch", "arguments": "{\"input\":"}}]})),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "and\":[]}"}}]})),
            chunk(json!({"tool_calls": [{"index": 1, "function": {"arguments": "\"P\\n\"}"}}]})),
            json!({"id": "cc1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"id": "cc1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 2}}}),
        ])
        .unwrap();
        assert_eq!(
            turn.items,
            [
                Item::Message { role: Role::Assistant, text: "Let me look.".into() },
                Item::FunctionCall {
                    call_id: "a".into(),
                    name: "shell".into(),
                    arguments: r#"{"command":[]}"#.into()
                },
                Item::CustomToolCall {
                    call_id: "b".into(),
                    name: "apply_patch".into(),
                    input: "P\n".into()
                },
            ]
        );
        assert_eq!(turn.usage, TokenUsage { input: 9, cached_input: 2, output: 3, reasoning: 0 });
    }

    #[test]
    fn assembles_a_call_sent_in_one_chunk() {
        let turn =
            run(&[json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "delta": {
            "tool_calls": [{"index": 0, "id": "x", "type": "function",
                "function": {"name": "apply_patch", "arguments": "not json"}}]}}]})])
            .unwrap();
        // Unparsable arguments stay a function call, so the agent reports a tool error.
        assert_eq!(
            turn.items,
            [Item::FunctionCall {
                call_id: "x".into(),
                name: "apply_patch".into(),
                arguments: "not json".into()
            }]
        );
        assert_eq!(turn.usage, TokenUsage::default());
    }

    #[test]
    fn length_and_filter_and_error_chunks_fail() {
        let finish =
            |reason| json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]});
        let Err(AttemptError::Fatal(error)) = run(&[finish("length")]) else { panic!() };
        assert!(error.to_string().contains("output limit"), "{error}");
        let Err(AttemptError::Fatal(error)) = run(&[finish("content_filter")]) else { panic!() };
        assert!(error.to_string().contains("content filter"), "{error}");
        let result = run(&[json!({"error": {"message": "boom", "code": "server_error"}})]);
        assert!(matches!(result, Err(AttemptError::Transient { .. })));
    }
}
