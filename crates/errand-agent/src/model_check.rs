//! `errand models check`: one tiny request that tells whether the configured model answers and
//! whether it can call tools, which the agent cannot work without.

use std::time::{Duration, Instant};

use errand_model::{Item, ModelError, ModelRequest, Role, ToolSpec};
use errand_protocol::TokenUsage;
use serde_json::json;

use crate::model::Model;

/// What the check found.
#[derive(Debug, Clone)]
pub struct ModelCheck {
    /// Time from sending the request to the complete answer.
    pub latency: Duration,
    /// The tool call the model made, as `name arguments`, if any.
    pub tool_call: Option<String>,
    /// The model called the offered tool with the requested argument.
    pub tool_calls_work: bool,
    /// Text the model answered with instead of (or besides) the call.
    pub text: String,
    pub usage: TokenUsage,
}

const TOOL: &str = "echo";
const WORD: &str = "errand";

/// Asks the model to call an `echo` tool with a given word.
pub async fn check_model(model: &dyn Model) -> Result<ModelCheck, ModelError> {
    let request = ModelRequest {
        instructions: "You are checking that tool calls work. Answer only with a tool call.".into(),
        input: vec![Item::Message {
            role: Role::User,
            text: format!("Call the `{TOOL}` tool with `text` set to \"{WORD}\"."),
        }],
        tools: vec![ToolSpec::Function {
            name: TOOL.into(),
            description: "Echoes its text back.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
                "additionalProperties": false
            }),
        }],
        parallel_tool_calls: false,
    };
    let started = Instant::now();
    let turn = model.turn(&request, &mut |_| {}).await?;
    let latency = started.elapsed();
    let mut check = ModelCheck {
        latency,
        tool_call: None,
        tool_calls_work: false,
        text: String::new(),
        usage: turn.usage,
    };
    for item in turn.items {
        match item {
            Item::FunctionCall { name, arguments, .. } => {
                let echoed = serde_json::from_str::<serde_json::Value>(&arguments)
                    .ok()
                    .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_lowercase));
                check.tool_calls_work |= name == TOOL && echoed.as_deref() == Some(WORD);
                check.tool_call = Some(format!("{name} {arguments}"));
            }
            Item::Message { text, .. } => check.text.push_str(&text),
            _ => {}
        }
    }
    Ok(check)
}
