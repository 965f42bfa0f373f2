//! How many model turns a request's conversation already holds: the turn a `per_conversation`
//! script serves it (0-based), decided from the request alone so that conversations may
//! interleave on one server.

use serde_json::Value;

use crate::server::Wire;

/// The number of model turns in the request's conversation so far.
///
/// A model turn is a run of consecutive assistant items: on Responses, `input` items that are
/// assistant `message`s, `function_call`s, `custom_tool_call`s or `reasoning` (one turn often
/// streams several of them); on Chat Completions and Anthropic Messages, `role: "assistant"`
/// messages (a Chat client may send a turn's text and its tool calls as two assistant messages
/// in a row, so runs are counted there too).
pub fn model_turns(body: &Value, wire: Wire) -> usize {
    let items = match wire {
        Wire::Responses => body.get("input"),
        Wire::Chat | Wire::Messages => body.get("messages"),
    };
    let Some(items) = items.and_then(Value::as_array) else { return 0 };
    let mut turns = 0;
    let mut in_turn = false;
    for item in items {
        let assistant = match wire {
            Wire::Responses => is_responses_model_item(item),
            Wire::Chat | Wire::Messages => {
                item.get("role").and_then(Value::as_str) == Some("assistant")
            }
        };
        if assistant && !in_turn {
            turns += 1;
        }
        in_turn = assistant;
    }
    turns
}

/// Responses input items the model produced. A message may omit `type` (the API's "easy input"
/// form), so a `role: "assistant"` item without one counts too.
fn is_responses_model_item(item: &Value) -> bool {
    match item.get("type").and_then(Value::as_str) {
        Some("function_call" | "custom_tool_call" | "reasoning") => true,
        Some("message") | None => item.get("role").and_then(Value::as_str) == Some("assistant"),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn responses_counts_runs_of_model_items() {
        let user = json!({"type": "message", "role": "user", "content": "fix it"});
        let reasoning = json!({"type": "reasoning", "summary": []});
        let call =
            json!({"type": "function_call", "call_id": "c", "name": "shell", "arguments": "{}"});
        let output = json!({"type": "function_call_output", "call_id": "c", "output": "ok"});
        let patch =
            json!({"type": "custom_tool_call", "call_id": "p", "name": "apply_patch", "input": ""});
        let patch_output =
            json!({"type": "custom_tool_call_output", "call_id": "p", "output": "ok"});
        let said = json!({"type": "message", "role": "assistant", "content": "done"});
        let easy = json!({"role": "assistant", "content": "done"});
        let developer = json!({"type": "message", "role": "developer", "content": "note"});
        let cases: Vec<(Vec<&Value>, usize)> = vec![
            (vec![], 0),
            (vec![&user], 0),
            (vec![&user, &reasoning, &said, &call, &output], 1),
            (vec![&user, &call, &output, &patch, &patch_output], 2),
            (vec![&user, &call, &output, &developer, &said, &user], 2),
            (vec![&user, &call, &call, &output, &output, &easy], 2),
            (vec![&user, &said, &user, &reasoning, &patch, &patch_output, &said], 3),
        ];
        for (i, (input, turns)) in cases.into_iter().enumerate() {
            let body = json!({"input": input});
            assert_eq!(model_turns(&body, Wire::Responses), turns, "case {i}");
        }
    }

    #[test]
    fn chat_and_messages_count_runs_of_assistant_messages() {
        let body = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "fix it"},
            {"role": "assistant", "content": "looking"},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "tool_call_id": "c", "content": "ok"},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "tool_call_id": "d", "content": "ok"},
        ]});
        assert_eq!(model_turns(&body, Wire::Chat), 2);
        assert_eq!(model_turns(&body, Wire::Messages), 2);
        assert_eq!(model_turns(&json!({"messages": []}), Wire::Messages), 0);
        assert_eq!(model_turns(&json!({}), Wire::Chat), 0);
    }
}
