//! Translation of the provider-neutral conversation into an Anthropic Messages API request
//! (`POST {base_url}/messages`); `anthropic_stream` reads the answer.
//!
//! Decisions, where the Messages API has no direct counterpart:
//! - **Instructions and Developer messages.** The instructions are the first `system` block. The
//!   Developer messages that open the conversation (the environment and the AGENTS.md chain)
//!   follow as more `system` blocks: Messages has no developer role, and in `system` they keep
//!   their weight and share the cached prefix. A Developer message later in the conversation goes
//!   as user text, because moving it into `system` would reorder the conversation.
//! - **Roles alternate strictly.** Consecutive items of one role share a message. Tool outputs are
//!   `tool_result` blocks in the user message after the calls, ahead of any text there (the API
//!   requires results first).
//! - **A turn goes back as it came.** The agent records a turn's items as the model produced them
//!   (text, thinking, every call), then the calls' results in order; so consecutive calls are one
//!   assistant message and their results one user message. Earlier messages never change as the
//!   conversation grows, so cached prefixes stay valid.
//! - **Freeform tools** (`apply_patch`) are offered as tools taking one string `input`; calls to
//!   them come back as [`Item::CustomToolCall`]s (`anthropic_stream`), as with Chat Completions.
//! - **Thinking.** `reasoning_effort` `minimal`/`low`/`medium`/`high` becomes
//!   `thinking: {type: "enabled", budget_tokens}` ([`thinking_budget`]), `adaptive` becomes
//!   `thinking: {type: "adaptive"}` for the models that only take that. Thinking blocks come back
//!   as [`Item::Reasoning`] and go back unchanged (text and `signature`; `redacted_thinking`
//!   `data`): the API rejects a tool loop whose thinking blocks were dropped or altered.
//! - **Prompt caching.** `cache_control: {"type": "ephemeral"}` marks the last `system` block, the
//!   last tool, the last block of the previous request's final user message and that of this
//!   one: 4 breakpoints, the API's maximum. Each turn then reads the previous turn's prefix from
//!   the cache, however many blocks the turn added (the API looks back only 20 blocks from a
//!   breakpoint for an earlier cache entry).

use serde_json::{Value, json};

use crate::config::{ANTHROPIC_DEFAULT_MAX_TOKENS, ModelConfig};
use crate::conversation::{Item, ModelRequest, Role, ToolSpec};
use crate::error::ModelError;

/// The `anthropic-version` header: the only version of the Messages API, and required.
pub const API_VERSION: &str = "2023-06-01";

/// How an [`Item::Reasoning`] made from a `redacted_thinking` block is told apart: its `id`
/// starts with this (a `thinking` block's id starts with `thinking`).
pub const REDACTED_THINKING: &str = "redacted_thinking";

/// The API refuses a smaller `budget_tokens`.
const MIN_THINKING_BUDGET: u32 = 1_024;
/// Room kept for the answer (text and tool calls) after the largest thinking budget.
const ANSWER_ROOM: u32 = 8_192;

/// How a `reasoning_effort` asks Claude to think.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    /// `thinking: {type: "enabled", budget_tokens}`.
    Budget(u32),
    /// `thinking: {type: "adaptive"}`: the model decides (newer models accept only this).
    Adaptive,
}

/// The thinking a `reasoning_effort` stands for; `None` for a value Anthropic has no mapping of.
pub fn thinking_budget(effort: &str) -> Option<Thinking> {
    Some(match effort {
        "minimal" => Thinking::Budget(MIN_THINKING_BUDGET),
        "low" => Thinking::Budget(4_000),
        "medium" => Thinking::Budget(10_000),
        "high" => Thinking::Budget(20_000),
        "adaptive" => Thinking::Adaptive,
        _ => return None,
    })
}

/// Settings this protocol cannot send, named so the user can fix them.
pub fn check_config(config: &ModelConfig) -> Result<(), ModelError> {
    if let Some(effort) = &config.reasoning_effort
        && thinking_budget(effort).is_none()
    {
        return Err(ModelError::Config(format!(
            "model.reasoning_effort = {effort:?} has no meaning for Anthropic; use minimal, low, \
             medium, high or adaptive"
        )));
    }
    if config.max_output_tokens == Some(0) {
        return Err(ModelError::Config("model.max_output_tokens must be at least 1".into()));
    }
    Ok(())
}

/// The body of `POST {base_url}/messages`.
pub fn request_body(config: &ModelConfig, request: &ModelRequest) -> Value {
    let max_tokens = config.max_output_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS);
    let (mut system, start) = system_blocks(request);
    let mut tools: Vec<Value> = request.tools.iter().map(tool).collect();
    let mut messages = messages(&request.input[start..]);
    mark_cache_breakpoints(&mut system, &mut tools, &mut messages);

    let mut body = json!({
        "model": config.model,
        "max_tokens": max_tokens,
        "messages": messages,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = Value::Array(system);
    }
    // The API refuses `tool_choice` without tools.
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
        body["tool_choice"] =
            json!({ "type": "auto", "disable_parallel_tool_use": !request.parallel_tool_calls });
    }
    match config.reasoning_effort.as_deref().and_then(thinking_budget) {
        Some(Thinking::Adaptive) => body["thinking"] = json!({ "type": "adaptive" }),
        Some(Thinking::Budget(budget)) => {
            // `budget_tokens` must be at least 1024 and below `max_tokens`; a small configured
            // `max_tokens` shrinks the budget rather than being exceeded.
            let budget =
                budget.min(max_tokens.saturating_sub(ANSWER_ROOM)).max(MIN_THINKING_BUDGET);
            if budget < max_tokens {
                body["thinking"] = json!({ "type": "enabled", "budget_tokens": budget });
            } else {
                tracing::warn!(
                    max_tokens,
                    "max_output_tokens leaves no room to think; thinking off"
                );
            }
        }
        None => {}
    }
    body
}

/// The `system` blocks (instructions, then the Developer messages that open the conversation)
/// and the index of the first input item that goes into `messages`.
fn system_blocks(request: &ModelRequest) -> (Vec<Value>, usize) {
    let mut leading = request
        .input
        .iter()
        .take_while(|item| matches!(item, Item::Message { role: Role::Developer, .. }))
        .count();
    // A conversation of Developer messages only would leave `messages` empty, which the API
    // refuses: they stay messages then.
    if leading == request.input.len() {
        leading = 0;
    }
    let texts = std::iter::once(request.instructions.as_str()).chain(
        request.input[..leading].iter().filter_map(|item| match item {
            Item::Message { text, .. } => Some(text.as_str()),
            _ => None,
        }),
    );
    // The API refuses empty text blocks.
    let blocks = texts.filter(|text| !text.trim().is_empty()).map(text_block).collect();
    (blocks, leading)
}

fn text_block(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Speaker {
    User,
    Assistant,
}

/// Messages being built, merging consecutive blocks of one role.
struct Messages {
    list: Vec<(Speaker, Vec<Value>)>,
}

impl Messages {
    fn user(&mut self, block: Value) {
        match self.list.last_mut() {
            Some((Speaker::User, content)) => {
                // Tool results lead the message; text follows them.
                let at = if is_tool_result(&block) {
                    content.iter().take_while(|b| is_tool_result(b)).count()
                } else {
                    content.len()
                };
                content.insert(at, block);
            }
            _ => self.list.push((Speaker::User, vec![block])),
        }
    }

    fn assistant(&mut self, block: Value) {
        match self.list.last_mut() {
            Some((Speaker::Assistant, content)) => content.push(block),
            _ => self.list.push((Speaker::Assistant, vec![block])),
        }
    }
}

fn is_tool_result(block: &Value) -> bool {
    block["type"] == "tool_result"
}

/// The conversation as alternating user and assistant messages.
fn messages(items: &[Item]) -> Vec<Value> {
    let mut messages = Messages { list: Vec::new() };
    for item in items {
        match item {
            Item::Message { text, .. } if text.trim().is_empty() => {}
            Item::Message { role: Role::Assistant, text } => messages.assistant(text_block(text)),
            Item::Message { role: Role::User | Role::Developer, text } => {
                messages.user(text_block(text))
            }
            Item::Reasoning { .. } => {
                if let Some(block) = thinking_block(item) {
                    messages.assistant(block);
                }
            }
            Item::FunctionCall { call_id, name, arguments } => {
                // `input` must be an object. Arguments that are not one (cut off, malformed)
                // were answered with an error the model reads in the tool result.
                let input = match serde_json::from_str::<Value>(arguments) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({}),
                };
                let block =
                    json!({ "type": "tool_use", "id": call_id, "name": name, "input": input });
                messages.assistant(block);
            }
            Item::CustomToolCall { call_id, name, input } => {
                let input = json!({ "input": input });
                let block =
                    json!({ "type": "tool_use", "id": call_id, "name": name, "input": input });
                messages.assistant(block);
            }
            Item::FunctionCallOutput { call_id, output }
            | Item::CustomToolCallOutput { call_id, output } => {
                let mut result = json!({ "type": "tool_result", "tool_use_id": call_id });
                // An empty text block is refused; a result without content is not.
                if !output.is_empty() {
                    result["content"] = json!(output);
                }
                messages.user(result);
            }
        }
    }
    messages
        .list
        .into_iter()
        .map(|(speaker, content)| {
            let role = if speaker == Speaker::User { "user" } else { "assistant" };
            json!({ "role": role, "content": content })
        })
        .collect()
}

/// A reasoning item as the thinking block it came from; `None` when it has no signature (it did
/// not come from Anthropic, and the API would refuse it unsigned).
fn thinking_block(item: &Item) -> Option<Value> {
    let Item::Reasoning { id, summary, encrypted_content } = item else { return None };
    let opaque = encrypted_content.as_deref().filter(|blob| !blob.is_empty())?;
    if id.starts_with(REDACTED_THINKING) {
        return Some(json!({ "type": "redacted_thinking", "data": opaque }));
    }
    Some(json!({ "type": "thinking", "thinking": summary.concat(), "signature": opaque }))
}

fn tool(spec: &ToolSpec) -> Value {
    match spec {
        ToolSpec::Function { name, description, parameters } => {
            json!({ "name": name, "description": description, "input_schema": parameters })
        }
        ToolSpec::Freeform { name, description, .. } => json!({
            "name": name,
            "description": description,
            "input_schema": {
                "type": "object",
                "properties": { "input": { "type": "string" } },
                "required": ["input"],
            },
        }),
    }
}

/// Marks up to four cache breakpoints (see the module documentation).
fn mark_cache_breakpoints(system: &mut [Value], tools: &mut [Value], messages: &mut [Value]) {
    let ephemeral = json!({ "type": "ephemeral" });
    if let Some(block) = system.last_mut() {
        block["cache_control"] = ephemeral.clone();
    }
    if let Some(tool) = tools.last_mut() {
        tool["cache_control"] = ephemeral.clone();
    }
    // User messages only: their blocks (text, tool_result) all take `cache_control`, while a
    // thinking block in an assistant message does not.
    let users = messages.iter_mut().filter(|message| message["role"] == "user").rev().take(2);
    for message in users {
        if let Some(block) = message["content"].as_array_mut().and_then(|c| c.last_mut()) {
            block["cache_control"] = ephemeral.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Provider;

    fn config() -> ModelConfig {
        ModelConfig {
            model: "claude-test".into(),
            provider: Provider::Anthropic,
            ..ModelConfig::default()
        }
    }

    fn user(text: &str) -> Item {
        Item::Message { role: Role::User, text: text.into() }
    }

    fn call(id: &str) -> Item {
        Item::FunctionCall {
            call_id: id.into(),
            name: "shell".into(),
            arguments: r#"{"command":["ls"]}"#.into(),
        }
    }

    fn output(id: &str) -> Item {
        Item::FunctionCallOutput { call_id: id.into(), output: format!("out {id}") }
    }

    fn thinking(text: &str, signature: &str) -> Item {
        Item::Reasoning {
            id: "thinking_msg_1_0".into(),
            summary: if text.is_empty() { vec![] } else { vec![text.into()] },
            encrypted_content: Some(signature.into()),
        }
    }

    fn request(input: Vec<Item>, parallel_tool_calls: bool) -> ModelRequest {
        let mut all = vec![
            Item::Message { role: Role::Developer, text: "AGENTS.md: run tests".into() },
            user("fix the test"),
        ];
        all.extend(input);
        ModelRequest {
            instructions: "You are Errand.".into(),
            input: all,
            tools: vec![
                ToolSpec::Function {
                    name: "shell".into(),
                    description: "Runs a command.".into(),
                    parameters: json!({"type": "object"}),
                },
                ToolSpec::Freeform {
                    name: "apply_patch".into(),
                    description: "Applies a patch.".into(),
                    format: None,
                },
            ],
            parallel_tool_calls,
        }
    }

    fn wire(input: Vec<Item>, parallel: bool) -> Value {
        request_body(&config(), &request(input, parallel))
    }

    /// `(role, [block type…])` of each message.
    fn shape(body: &Value) -> Vec<(String, Vec<String>)> {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let types = m["content"].as_array().unwrap().iter();
                let types = types.map(|b| b["type"].as_str().unwrap().to_string()).collect();
                (m["role"].as_str().unwrap().to_string(), types)
            })
            .collect()
    }

    fn roles(shape: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        shape
            .iter()
            .map(|(role, types)| (role.to_string(), types.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn top_level_fields() {
        let body = wire(vec![], false);
        assert_eq!(body["model"], "claude-test");
        assert_eq!(body["max_tokens"], ANTHROPIC_DEFAULT_MAX_TOKENS);
        assert_eq!(body["stream"], true);
        assert_eq!(body["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
        assert!(body.get("thinking").is_none());
        let system: Vec<&str> = body["system"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"].as_str().unwrap())
            .collect();
        assert_eq!(system, ["You are Errand.", "AGENTS.md: run tests"]);
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [
            {"type": "text", "text": "fix the test", "cache_control": {"type": "ephemeral"}}]}])
        );
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(
            body["tools"][1],
            json!({"name": "apply_patch", "description": "Applies a patch.", "input_schema": {
                "type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]},
                "cache_control": {"type": "ephemeral"}})
        );

        let mut bare = request(vec![], true);
        bare.tools.clear();
        bare.instructions.clear();
        bare.input.remove(0);
        let bare = request_body(&config(), &bare);
        for absent in ["tools", "tool_choice", "system"] {
            assert!(bare.get(absent).is_none(), "{absent}: {bare}");
        }
    }

    #[test]
    fn roles_alternate_and_results_follow_their_calls() {
        let later_note = Item::Message { role: Role::Developer, text: "3 turns left".into() };
        let body = wire(
            vec![
                thinking("plan", "sig-1"),
                Item::Message { role: Role::Assistant, text: "Looking.".into() },
                call("a"),
                output("a"),
                later_note,
                user("also check b"),
                Item::Message { role: Role::Assistant, text: "  ".into() },
                call("b"),
                output("b"),
            ],
            false,
        );
        assert_eq!(
            shape(&body),
            roles(&[
                ("user", &["text"]),
                ("assistant", &["thinking", "text", "tool_use"]),
                ("user", &["tool_result", "text", "text"]),
                ("assistant", &["tool_use"]),
                ("user", &["tool_result"]),
            ])
        );
        let messages = &body["messages"];
        assert_eq!(messages[1]["content"][2]["input"], json!({"command": ["ls"]}));
        assert_eq!(
            messages[2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "a", "content": "out a"})
        );
        assert_eq!(messages[2]["content"][1]["text"], "3 turns left");
    }

    #[test]
    fn a_result_arriving_after_text_still_leads_its_message() {
        let body = wire(vec![call("a"), user("and hurry"), output("a")], false);
        assert_eq!(
            shape(&body),
            roles(&[
                ("user", &["text"]),
                ("assistant", &["tool_use"]),
                ("user", &["tool_result", "text"])
            ])
        );
    }

    #[test]
    fn a_turns_parallel_calls_go_back_together() {
        let input = vec![
            thinking("two things", "sig"),
            call("a"),
            call("b"),
            output("a"),
            output("b"),
            call("c"),
            output("c"),
            thinking("next", "sig-2"),
            call("d"),
            output("d"),
        ];
        let body = wire(input, true);
        assert_eq!(
            shape(&body),
            roles(&[
                ("user", &["text"]),
                ("assistant", &["thinking", "tool_use", "tool_use"]),
                ("user", &["tool_result", "tool_result"]),
                ("assistant", &["tool_use"]),
                ("user", &["tool_result"]),
                ("assistant", &["thinking", "tool_use"]),
                ("user", &["tool_result"]),
            ])
        );
        let messages = &body["messages"];
        assert_eq!(messages[1]["content"][2]["id"], "b");
        assert_eq!(messages[2]["content"][1]["tool_use_id"], "b");
        assert_eq!(messages[3]["content"][0]["id"], "c");
        // A call answered before the next call are two turns.
        let input = vec![call("a"), output("a"), call("b"), output("b")];
        assert_eq!(shape(&wire(input, true)).len(), 5);
    }

    #[test]
    fn earlier_messages_stay_the_same_as_the_conversation_grows() {
        let mut input = vec![call("a"), output("a")];
        let before = wire(input.clone(), true)["messages"].as_array().unwrap().clone();
        input.extend([call("b"), output("b")]);
        let after = wire(input, true)["messages"].as_array().unwrap().clone();
        // Cache breakpoints move to the end; nothing else may change.
        let strip = |message: &Value| {
            let mut message = message.clone();
            for block in message["content"].as_array_mut().unwrap() {
                block.as_object_mut().unwrap().remove("cache_control");
            }
            message
        };
        assert_eq!(after.len(), before.len() + 2);
        for (old, new) in before.iter().zip(&after) {
            assert_eq!(strip(old), strip(new));
        }
    }

    #[test]
    fn thinking_goes_back_verbatim_and_unsigned_reasoning_is_dropped() {
        let redacted = Item::Reasoning {
            id: format!("{REDACTED_THINKING}_msg_1_1"),
            summary: vec![],
            encrypted_content: Some("EmwKAhgBEgy3va".into()),
        };
        let unsigned = Item::Reasoning {
            id: "rs_1".into(),
            summary: vec!["from elsewhere".into()],
            encrypted_content: None,
        };
        let text = "Let me think.\n\n  Twice. ";
        let body =
            wire(vec![thinking(text, "sig+/=="), redacted, unsigned, call("a"), output("a")], true);
        assert_eq!(
            body["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": text, "signature": "sig+/=="},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"},
                {"type": "tool_use", "id": "a", "name": "shell", "input": {"command": ["ls"]}},
            ])
        );
        // A thinking block with no text (display omitted) still goes back, signed.
        let empty = wire(vec![thinking("", "s"), call("a"), output("a")], true);
        assert_eq!(
            empty["messages"][1]["content"][0],
            json!({"type": "thinking", "thinking": "", "signature": "s"})
        );
    }

    #[test]
    fn freeform_calls_and_odd_outputs() {
        let body = wire(
            vec![
                Item::CustomToolCall {
                    call_id: "p".into(),
                    name: "apply_patch".into(),
                    input: "*** Begin Patch\n".into(),
                },
                Item::FunctionCall {
                    call_id: "m".into(),
                    name: "shell".into(),
                    arguments: r#"{"command": ["ls""#.into(),
                },
                Item::CustomToolCallOutput { call_id: "p".into(), output: "Done!".into() },
                Item::FunctionCallOutput { call_id: "m".into(), output: String::new() },
            ],
            true,
        );
        let content = &body["messages"][1]["content"];
        assert_eq!(content[0]["input"], json!({"input": "*** Begin Patch\n"}));
        assert_eq!(content[1]["input"], json!({}), "malformed arguments become an empty object");
        assert_eq!(
            body["messages"][2]["content"][1],
            json!({"type": "tool_result", "tool_use_id": "m", "cache_control": {"type": "ephemeral"}})
        );
    }

    #[test]
    fn at_most_four_cache_breakpoints_on_system_tools_and_the_last_two_user_messages() {
        let input = vec![call("a"), output("a"), call("b"), output("b"), call("c"), output("c")];
        let body = wire(input, false);
        let text = body.to_string();
        assert_eq!(text.matches("cache_control").count(), 4, "{text}");
        let marked = |value: &Value| value.get("cache_control").is_some();
        assert!(marked(body["system"].as_array().unwrap().last().unwrap()));
        assert!(!marked(&body["system"][0]));
        assert!(marked(&body["tools"][1]) && !marked(&body["tools"][0]));
        let messages = body["messages"].as_array().unwrap();
        let marked_messages: Vec<usize> = (0..messages.len())
            .filter(|&i| messages[i]["content"].as_array().unwrap().iter().any(marked))
            .collect();
        assert_eq!(marked_messages, [messages.len() - 3, messages.len() - 1]);
        // A short conversation has fewer.
        assert_eq!(wire(vec![], false).to_string().matches("cache_control").count(), 3);
    }

    #[test]
    fn effort_becomes_a_thinking_budget_below_max_tokens() {
        let with = |effort: &str, max: Option<u32>| {
            let config = ModelConfig {
                reasoning_effort: Some(effort.into()),
                max_output_tokens: max,
                ..config()
            };
            let body = request_body(&config, &request(vec![], true));
            (body["thinking"].clone(), body["max_tokens"].clone())
        };
        assert_eq!(with("minimal", None).0, json!({"type": "enabled", "budget_tokens": 1024}));
        assert_eq!(
            with("high", None),
            (json!({"type": "enabled", "budget_tokens": 20000}), json!(32000))
        );
        assert_eq!(with("high", Some(16_000)).0["budget_tokens"], 16_000 - ANSWER_ROOM);
        assert_eq!(with("low", Some(4_000)).0["budget_tokens"], 1024);
        assert_eq!(with("low", Some(1_024)).0, Value::Null, "no room to think");
        assert_eq!(with("adaptive", None).0, json!({"type": "adaptive"}));

        let bad = ModelConfig { reasoning_effort: Some("extreme".into()), ..config() };
        let error = check_config(&bad).unwrap_err().to_string();
        assert!(error.contains("model.reasoning_effort = \"extreme\""), "{error}");
        assert!(check_config(&ModelConfig { max_output_tokens: Some(0), ..config() }).is_err());
        assert!(check_config(&config()).is_ok());
    }

    #[test]
    fn only_developer_messages_stay_messages() {
        let mut request = request(vec![], false);
        request.input.truncate(1);
        let body = request_body(&config(), &request);
        assert_eq!(body["system"].as_array().unwrap().len(), 1);
        assert_eq!(body["messages"][0]["content"][0]["text"], "AGENTS.md: run tests");
    }
}
