//! Translation between the provider-neutral conversation and the OpenAI Responses wire format:
//! the request body going out, output items and usage coming back.

use errand_protocol::TokenUsage;
use serde_json::{Value, json};

use crate::config::ModelConfig;
use crate::conversation::{Item, ModelRequest, Role, ToolSpec};

/// The body of `POST {base_url}/responses`.
pub fn request_body(config: &ModelConfig, request: &ModelRequest) -> Value {
    let mut body = json!({
        "model": config.model,
        "instructions": request.instructions,
        "input": request.input.iter().filter_map(input_item).collect::<Vec<_>>(),
        "tools": request.tools.iter().map(tool).collect::<Vec<_>>(),
        "tool_choice": "auto",
        "parallel_tool_calls": request.parallel_tool_calls,
        "stream": true,
        // Errand keeps the conversation itself; nothing needs to live on the provider's side.
        "store": false,
    });
    if let Some(effort) = &config.reasoning_effort {
        body["reasoning"] = json!({ "effort": effort, "summary": "auto" });
        // With `store: false` a reasoning item can only be passed back with its encrypted
        // content (Responses API: reasoning items are not persisted when store is false).
        body["include"] = json!(["reasoning.encrypted_content"]);
    }
    if let Some(max) = config.max_output_tokens {
        body["max_output_tokens"] = json!(max);
    }
    body
}

/// The wire form of one conversation item; `None` for items the API cannot take back.
fn input_item(item: &Item) -> Option<Value> {
    Some(match item {
        Item::Message { role: Role::Assistant, text } => json!({
            "type": "message", "role": "assistant",
            "content": [{ "type": "output_text", "text": text }],
        }),
        Item::Message { role, text } => json!({
            "type": "message",
            "role": if *role == Role::Developer { "developer" } else { "user" },
            "content": [{ "type": "input_text", "text": text }],
        }),
        Item::FunctionCall { call_id, name, arguments } => json!({
            "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
        }),
        Item::CustomToolCall { call_id, name, input } => json!({
            "type": "custom_tool_call", "call_id": call_id, "name": name, "input": input,
        }),
        Item::FunctionCallOutput { call_id, output } => json!({
            "type": "function_call_output", "call_id": call_id, "output": output,
        }),
        Item::CustomToolCallOutput { call_id, output } => json!({
            "type": "custom_tool_call_output", "call_id": call_id, "output": output,
        }),
        // Without `encrypted_content` the item would be a reference to a stored response,
        // which `store: false` forbids; the summary alone carries nothing the model needs.
        Item::Reasoning { summary, encrypted_content, .. } => json!({
            "type": "reasoning",
            "summary": summary.iter().map(|text| json!({ "type": "summary_text", "text": text }))
                .collect::<Vec<_>>(),
            "encrypted_content": encrypted_content.as_ref()?,
        }),
    })
}

fn tool(spec: &ToolSpec) -> Value {
    match spec {
        ToolSpec::Function { name, description, parameters } => json!({
            "type": "function", "name": name, "description": description,
            "parameters": parameters, "strict": false,
        }),
        ToolSpec::Freeform { name, description, format } => {
            let mut tool = json!({ "type": "custom", "name": name, "description": description });
            if let Some(format) = format {
                tool["format"] = json!({
                    "type": "grammar", "syntax": format.syntax, "definition": format.definition,
                });
            }
            tool
        }
    }
}

/// A finished output item (`response.output_item.done`'s `item`) as a conversation item.
/// `Ok(None)` for item types Errand does not use (e.g. `web_search_call`).
pub fn output_item(item: &Value) -> Result<Option<Item>, String> {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
    let field = |name: &str| -> Result<String, String> {
        item.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("a `{kind}` item without a string `{name}`"))
    };
    Ok(Some(match kind {
        "message" => {
            let text = item
                .get("content")
                .and_then(Value::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .filter_map(|part| match part.get("type").and_then(Value::as_str) {
                            Some("output_text") => part.get("text")?.as_str(),
                            Some("refusal") => part.get("refusal")?.as_str(),
                            _ => None,
                        })
                        .collect::<String>()
                })
                .unwrap_or_default();
            Item::Message { role: Role::Assistant, text }
        }
        "function_call" => Item::FunctionCall {
            call_id: field("call_id")?,
            name: field("name")?,
            arguments: field("arguments")?,
        },
        "custom_tool_call" => Item::CustomToolCall {
            call_id: field("call_id")?,
            name: field("name")?,
            input: field("input")?,
        },
        "reasoning" => Item::Reasoning {
            id: field("id").unwrap_or_default(),
            summary: item
                .get("summary")
                .and_then(Value::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .filter_map(|p| Some(p.get("text")?.as_str()?.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            encrypted_content: item
                .get("encrypted_content")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
        _ => return Ok(None),
    }))
}

/// `response.usage` as Errand counts it; missing numbers count as zero.
pub fn usage(usage: &Value) -> TokenUsage {
    let number = |path: &[&str]| {
        path.iter()
            .try_fold(usage, |value, key| value.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    TokenUsage {
        input: number(&["input_tokens"]),
        cached_input: number(&["input_tokens_details", "cached_tokens"]),
        output: number(&["output_tokens"]),
        reasoning: number(&["output_tokens_details", "reasoning_tokens"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::FreeformFormat;

    #[test]
    fn items_in_wire_form() {
        let cases = [
            (
                Item::Message { role: Role::Developer, text: "d".into() },
                json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "d"}]}),
            ),
            (
                Item::Message { role: Role::Assistant, text: "a".into() },
                json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]}),
            ),
            (
                Item::CustomToolCallOutput { call_id: "c".into(), output: "ok".into() },
                json!({"type": "custom_tool_call_output", "call_id": "c", "output": "ok"}),
            ),
            (
                Item::Reasoning {
                    id: "rs_1".into(),
                    summary: vec!["s".into()],
                    encrypted_content: Some("e".into()),
                },
                json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}], "encrypted_content": "e"}),
            ),
        ];
        for (item, wire) in cases {
            assert_eq!(input_item(&item), Some(wire));
        }
        let bare = Item::Reasoning { id: "rs_1".into(), summary: vec![], encrypted_content: None };
        assert_eq!(input_item(&bare), None);
    }

    #[test]
    fn freeform_tool_format_is_omitted_when_none() {
        let tool_without =
            ToolSpec::Freeform { name: "p".into(), description: "d".into(), format: None };
        assert_eq!(tool(&tool_without), json!({"type": "custom", "name": "p", "description": "d"}));
        let with = ToolSpec::Freeform {
            name: "p".into(),
            description: "d".into(),
            format: Some(FreeformFormat { syntax: "lark".into(), definition: "start: x".into() }),
        };
        assert_eq!(
            tool(&with)["format"],
            json!({"type": "grammar", "syntax": "lark", "definition": "start: x"})
        );
    }

    #[test]
    fn output_items_parse() {
        let message = json!({"type": "message", "id": "m", "role": "assistant", "content": [
            {"type": "output_text", "text": "Hello, ", "annotations": []},
            {"type": "output_text", "text": "world", "annotations": []}]});
        assert_eq!(
            output_item(&message),
            Ok(Some(Item::Message { role: Role::Assistant, text: "Hello, world".into() }))
        );
        assert_eq!(output_item(&json!({"type": "web_search_call", "id": "w"})), Ok(None));
        let broken = json!({"type": "function_call", "name": "shell", "arguments": "{}"});
        assert!(output_item(&broken).unwrap_err().contains("`call_id`"));
    }

    #[test]
    fn usage_maps_details() {
        let wire = json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 16});
        assert_eq!(
            usage(&wire),
            TokenUsage { input: 10, cached_input: 4, output: 6, reasoning: 2 }
        );
        assert_eq!(usage(&json!({"input_tokens": 3})).input, 3);
    }
}
