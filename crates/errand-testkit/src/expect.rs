//! Checking a request against a turn's [`Expect`]ations.

use serde_json::{Value, json};

use crate::script::Expect;
use crate::server::Wire;

/// How much of the received text a violation message quotes.
const QUOTE_LIMIT: usize = 300;

/// `Err` describes the first unmet expectation: what was expected and what was received.
pub fn check(expect: &Expect, raw_body: &str, body: &Value, wire: Wire) -> Result<(), String> {
    // Responses sends `input` items; Chat Completions and Anthropic Messages send `messages`.
    let input = body
        .get("input")
        .or_else(|| body.get("messages"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);

    if !expect.last_tool_output_contains.is_empty() {
        let output = match wire {
            Wire::Messages => last_tool_result(input),
            Wire::Responses | Wire::Chat => last_tool_output(input),
        };
        let Some(output) = output else {
            return Err(format!(
                "expected a tool output containing {:?}, but the request has no \
                 function_call_output or custom_tool_call_output item (nor a `tool` message, nor a \
                 `tool_result` block)",
                expect.last_tool_output_contains
            ));
        };
        contains_all("the last tool output", &expect.last_tool_output_contains, &output)?;
    }

    if !expect.last_user_message_contains.is_empty() {
        let text = match wire {
            Wire::Messages => last_user_text(input),
            Wire::Responses | Wire::Chat => input
                .iter()
                .rev()
                .find(|item| {
                    item.get("role").and_then(Value::as_str) == Some("user")
                        && item.get("type").and_then(Value::as_str).unwrap_or("message")
                            == "message"
                })
                .map(|item| item.get("content").map(text_of).unwrap_or_default()),
        };
        let Some(text) = text else {
            return Err(format!(
                "expected a user message containing {:?}, but the request has none",
                expect.last_user_message_contains
            ));
        };
        contains_all("the last user message", &expect.last_user_message_contains, &text)?;
    }

    contains_all("the request body", &expect.request_contains, raw_body)?;

    if !expect.tools.is_empty() {
        let offered: Vec<&str> = body
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                // Responses: `{name}`; Chat Completions: `{function: {name}}`.
                tools
                    .iter()
                    .filter_map(|t| t.get("name").or_else(|| t.pointer("/function/name"))?.as_str())
                    .collect()
            })
            .unwrap_or_default();
        for wanted in &expect.tools {
            if !offered.contains(&wanted.as_str()) {
                return Err(format!(
                    "expected tool `{wanted}` to be offered, but tools were {offered:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Responses and Chat Completions: the last `*_output` item or `tool` message.
fn last_tool_output(input: &[Value]) -> Option<String> {
    let item = input.iter().rev().find(|item| {
        matches!(
            item.get("type").and_then(Value::as_str),
            Some("function_call_output" | "custom_tool_call_output")
        ) || item.get("role").and_then(Value::as_str) == Some("tool")
    })?;
    Some(item.get("output").or_else(|| item.get("content")).map(text_of).unwrap_or_default())
}

/// The content blocks of an Anthropic message (a string content is one text block).
fn blocks(message: &Value) -> Vec<Value> {
    match message.get("content") {
        Some(Value::String(text)) => vec![json!({"type": "text", "text": text})],
        Some(Value::Array(blocks)) => blocks.clone(),
        _ => Vec::new(),
    }
}

/// Anthropic Messages: the content of the last `tool_result` block.
fn last_tool_result(messages: &[Value]) -> Option<String> {
    messages.iter().rev().find_map(|message| {
        let result = blocks(message).into_iter().rev().find(|b| b["type"] == "tool_result")?;
        Some(result.get("content").map(text_of).unwrap_or_default())
    })
}

/// Anthropic Messages: the text blocks of the last user message that has any (a message of tool
/// results only is not what a user said).
fn last_user_text(messages: &[Value]) -> Option<String> {
    messages.iter().rev().filter(|m| m["role"] == "user").find_map(|message| {
        let texts: Vec<String> = blocks(message)
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .collect();
        (!texts.is_empty()).then(|| texts.join("\n"))
    })
}

fn contains_all(what: &str, needles: &[String], haystack: &str) -> Result<(), String> {
    match needles.iter().find(|needle| !haystack.contains(needle.as_str())) {
        None => Ok(()),
        Some(missing) => {
            Err(format!("expected {what} to contain {missing:?}, but it was {:?}", quote(haystack)))
        }
    }
}

/// The text of an `output` or `content` value: a string, or the `text` of each content part.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// The text, cut to [`QUOTE_LIMIT`] characters with a marker when longer.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(f: impl FnOnce(&mut Expect)) -> Expect {
        let mut e = Expect::default();
        f(&mut e);
        e
    }

    #[test]
    fn table() {
        let body = json!({
            "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]},
                {"type": "function_call_output", "call_id": "c1", "output": "3 failed"},
                {"type": "custom_tool_call_output", "call_id": "c2", "output": "1 passed"},
            ],
            "tools": [{"type": "function", "name": "shell"}, {"type": "custom", "name": "apply_patch"}],
        });
        let raw = body.to_string();
        let cases: Vec<(Expect, bool)> = vec![
            (Expect::default(), true),
            (expect(|e| e.last_tool_output_contains = vec!["1 passed".into()]), true),
            (expect(|e| e.last_tool_output_contains = vec!["3 failed".into()]), false),
            (expect(|e| e.last_user_message_contains = vec!["fix".into()]), true),
            (expect(|e| e.last_user_message_contains = vec!["break".into()]), false),
            (expect(|e| e.request_contains = vec!["\"c1\"".into()]), true),
            (expect(|e| e.request_contains = vec!["nope".into()]), false),
            (expect(|e| e.tools = vec!["shell".into(), "apply_patch".into()]), true),
            (expect(|e| e.tools = vec!["update_plan".into()]), false),
        ];
        for (i, (e, ok)) in cases.into_iter().enumerate() {
            assert_eq!(
                check(&e, &raw, &body, Wire::Responses).is_ok(),
                ok,
                "case {i}: {:?}",
                check(&e, &raw, &body, Wire::Responses)
            );
        }
    }

    #[test]
    fn no_tool_output_is_a_violation() {
        let e = expect(|e| e.last_tool_output_contains = vec!["x".into()]);
        let err = check(&e, "{}", &json!({"input": []}), Wire::Responses).unwrap_err();
        assert!(err.contains("no function_call_output"), "{err}");
    }

    #[test]
    fn messages_requests() {
        let body = json!({
            "system": [{"type": "text", "text": "be brief"}],
            "messages": [
                {"role": "user", "content": "fix it"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "shell", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "a", "content": "3 failed"},
                    {"type": "tool_result", "tool_use_id": "b",
                        "content": [{"type": "text", "text": "1 passed"}]},
                ]},
            ],
            "tools": [{"name": "shell", "input_schema": {}}, {"name": "apply_patch", "input_schema": {}}],
        });
        let raw = body.to_string();
        let cases: Vec<(Expect, bool)> = vec![
            (expect(|e| e.last_tool_output_contains = vec!["1 passed".into()]), true),
            (expect(|e| e.last_tool_output_contains = vec!["3 failed".into()]), false),
            (expect(|e| e.last_user_message_contains = vec!["fix it".into()]), true),
            (expect(|e| e.last_user_message_contains = vec!["passed".into()]), false),
            (expect(|e| e.tools = vec!["shell".into(), "apply_patch".into()]), true),
            (expect(|e| e.tools = vec!["update_plan".into()]), false),
        ];
        for (i, (e, ok)) in cases.into_iter().enumerate() {
            let result = check(&e, &raw, &body, Wire::Messages);
            assert_eq!(result.is_ok(), ok, "case {i}: {result:?}");
        }
        let e = expect(|e| e.last_tool_output_contains = vec!["x".into()]);
        let only_text = json!({"messages": [{"role": "user", "content": "hi"}]});
        let err = check(&e, "{}", &only_text, Wire::Messages).unwrap_err();
        assert!(err.contains("`tool_result` block"), "{err}");
    }

    #[test]
    fn quote_truncates() {
        let long = "x".repeat(1000);
        assert!(quote(&long).ends_with("(1000 bytes in all)"));
        assert_eq!(quote("short"), "short");
    }
}
