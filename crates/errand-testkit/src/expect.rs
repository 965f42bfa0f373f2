//! Checking a request against a turn's [`Expect`]ations.

use serde_json::Value;

use crate::script::Expect;

/// How much of the received text a violation message quotes.
const QUOTE_LIMIT: usize = 300;

/// `Err` describes the first unmet expectation: what was expected and what was received.
pub fn check(expect: &Expect, raw_body: &str, body: &Value) -> Result<(), String> {
    // Responses sends `input` items; Chat Completions sends `messages`.
    let input = body
        .get("input")
        .or_else(|| body.get("messages"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);

    if !expect.last_tool_output_contains.is_empty() {
        let last = input.iter().rev().find(|item| {
            matches!(
                item.get("type").and_then(Value::as_str),
                Some("function_call_output" | "custom_tool_call_output")
            ) || item.get("role").and_then(Value::as_str) == Some("tool")
        });
        let Some(item) = last else {
            return Err(format!(
                "expected a tool output containing {:?}, but the request has no \
                 function_call_output or custom_tool_call_output item (nor a `tool` message)",
                expect.last_tool_output_contains
            ));
        };
        let output =
            item.get("output").or_else(|| item.get("content")).map(text_of).unwrap_or_default();
        contains_all("the last tool output", &expect.last_tool_output_contains, &output)?;
    }

    if !expect.last_user_message_contains.is_empty() {
        let last = input.iter().rev().find(|item| {
            item.get("role").and_then(Value::as_str) == Some("user")
                && item.get("type").and_then(Value::as_str).unwrap_or("message") == "message"
        });
        let Some(item) = last else {
            return Err(format!(
                "expected a user message containing {:?}, but the request has none",
                expect.last_user_message_contains
            ));
        };
        let text = item.get("content").map(text_of).unwrap_or_default();
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
    use serde_json::json;

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
                check(&e, &raw, &body).is_ok(),
                ok,
                "case {i}: {:?}",
                check(&e, &raw, &body)
            );
        }
    }

    #[test]
    fn no_tool_output_is_a_violation() {
        let e = expect(|e| e.last_tool_output_contains = vec!["x".into()]);
        let err = check(&e, "{}", &json!({"input": []})).unwrap_err();
        assert!(err.contains("no function_call_output"), "{err}");
    }

    #[test]
    fn quote_truncates() {
        let long = "x".repeat(1000);
        assert!(quote(&long).ends_with("(1000 bytes in all)"));
        assert_eq!(quote("short"), "short");
    }
}
