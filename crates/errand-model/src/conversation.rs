//! The provider-neutral conversation the agent builds; each wire protocol translates it.

use errand_protocol::TokenUsage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions with more weight than the user's (Responses: `developer`).
    Developer,
    User,
    Assistant,
}

/// One item of the conversation, in the order the model saw or produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message {
        role: Role,
        text: String,
    },
    /// A JSON function call; `arguments` is the JSON text exactly as the model produced it.
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    /// A freeform (custom) tool call, e.g. `apply_patch` with the patch as raw text.
    CustomToolCall {
        call_id: String,
        name: String,
        input: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: String,
    },
    CustomToolCallOutput {
        call_id: String,
        output: String,
    },
    /// The model's reasoning: `summary` is what the user is shown; `encrypted_content` is passed
    /// back verbatim when the provider gives it.
    ///
    /// Anthropic: a `thinking` block has its text as the only `summary` entry (none when empty)
    /// and its `signature` in `encrypted_content`; a `redacted_thinking` block has no summary, its
    /// `data` in `encrypted_content`, and an `id` that starts with `redacted_thinking`. Both go
    /// back unchanged, as that API requires.
    Reasoning {
        id: String,
        summary: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolSpec {
    /// Arguments are a JSON object described by a JSON Schema.
    Function { name: String, description: String, parameters: serde_json::Value },
    /// Input is free text (Responses API `custom` tools), optionally constrained by a grammar.
    Freeform {
        name: String,
        description: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<FreeformFormat>,
    },
}

impl ToolSpec {
    pub fn name(&self) -> &str {
        match self {
            Self::Function { name, .. } | Self::Freeform { name, .. } => name,
        }
    }
}

/// A grammar for a freeform tool (Responses API: `{"type":"grammar","syntax":"lark","definition":…}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeformFormat {
    pub syntax: String,
    pub definition: String,
}

/// Everything one model turn needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    /// The system prompt.
    pub instructions: String,
    pub input: Vec<Item>,
    pub tools: Vec<ToolSpec>,
    pub parallel_tool_calls: bool,
}

/// What one model turn produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelTurn {
    pub items: Vec<Item>,
    pub usage: TokenUsage,
    pub response_id: Option<String>,
}
