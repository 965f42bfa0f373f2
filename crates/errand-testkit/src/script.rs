//! The script a [`crate::ScriptedModel`] plays: one entry per model turn, read from TOML.
//!
//! Parsing is two-step (TOML document, then each turn and each output on its own) so that every
//! error names the turn and the output it is about, not only a line number.

use std::path::Path;

use serde::Deserialize;

/// A parsed script: the turns, and how requests are matched to them.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub turns: Vec<Turn>,
    pub mode: ScriptMode,
}

/// How a request is matched to a turn (top-level `mode` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScriptMode {
    /// `"sequence"`: one global list; each request takes the next turn, whichever conversation
    /// it belongs to.
    #[default]
    Sequence,
    /// `"per_conversation"`: the turns are a template every conversation replays on its own.
    /// The turn is chosen from the request alone: the number of model turns already in its
    /// input (0 for a conversation's first request), so concurrent conversations can interleave.
    PerConversation,
}

/// One model turn: what the request must look like, what to answer, and how to misbehave first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Turn {
    pub expect: Expect,
    pub output: Vec<Output>,
    /// `None`: plausible numbers derived from the request and output sizes.
    pub usage: Option<Usage>,
    pub fault: Option<Fault>,
    /// Wait this long before answering each request of this turn (faults included).
    pub delay_ms: u64,
}

/// Assertions on the request a turn receives; every listed string must be found.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The `output` of the last `function_call_output` / `custom_tool_call_output` input item.
    #[serde(default)]
    pub last_tool_output_contains: Vec<String>,
    /// The text of the last input message with role `user`.
    #[serde(default)]
    pub last_user_message_contains: Vec<String>,
    /// The raw request body (JSON text, so a newline is `\n` there).
    #[serde(default)]
    pub request_contains: Vec<String>,
    /// Names of tools that must be offered in `tools`.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// One output item of a turn, streamed in order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Output {
    Message {
        text: String,
    },
    FunctionCall {
        name: String,
        arguments: Arguments,
        /// Defaults to `call_<turn>_<n>` (both 1-based).
        #[serde(default)]
        call_id: Option<String>,
    },
    CustomToolCall {
        name: String,
        input: String,
        #[serde(default)]
        call_id: Option<String>,
    },
    Reasoning {
        summary: String,
        /// Sent in the done item, as the real API does with `include: ["reasoning.encrypted_content"]`.
        #[serde(default)]
        encrypted_content: Option<String>,
    },
}

/// A function call's arguments: a TOML table (sent as its JSON text) or a raw string sent as is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Arguments {
    Raw(String),
    Table(toml::Table),
}

impl Arguments {
    /// The `arguments` string of the wire item.
    pub fn to_json_text(&self) -> String {
        match self {
            Self::Raw(text) => text.clone(),
            // A TOML table always serializes to a JSON object (datetimes become strings).
            Self::Table(table) => serde_json::to_string(table).unwrap_or_else(|_| "{}".into()),
        }
    }
}

/// Token usage reported in `response.completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cached_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// A misbehaviour served `times` times before the turn is served normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub times: u32,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this HTTP status and a JSON error body instead of a stream.
    Status {
        status: u16,
        retry_after: Option<u64>,
        retry_after_ms: Option<u64>,
        code: Option<String>,
        message: Option<String>,
    },
    /// Start a 200 stream and drop the connection after this many events.
    DropAfterEvents(usize),
    /// Start a 200 stream, send this many events, then send nothing until the server stops.
    StallAfterEvents(usize),
    /// Send `response.failed` with this error code.
    Failed { code: String, message: Option<String> },
}

/// A script that cannot be played; the message names the turn and the field.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot read script {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("script is not valid TOML: {0}")]
    Toml(String),
    #[error("script: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTurn {
    #[serde(default)]
    expect: Expect,
    #[serde(default)]
    output: Vec<toml::Value>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    fault: Option<RawFault>,
    #[serde(default)]
    delay_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    times: Option<u32>,
    status: Option<u16>,
    retry_after: Option<u64>,
    retry_after_ms: Option<u64>,
    code: Option<String>,
    message: Option<String>,
    drop_after_events: Option<usize>,
    stall_after_events: Option<usize>,
    failed: Option<String>,
}

impl Script {
    /// Parse a script from TOML text.
    pub fn from_toml(text: &str) -> Result<Script, ScriptError> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| ScriptError::Toml(e.to_string()))?;
        let turns = match doc.remove("turns") {
            None => return Err(invalid("no `[[turns]]`: a script needs at least one turn")),
            Some(toml::Value::Array(turns)) => turns,
            Some(_) => return Err(invalid("`turns` must be an array of tables (`[[turns]]`)")),
        };
        let mode = match doc.remove("mode") {
            None => ScriptMode::Sequence,
            Some(toml::Value::String(mode)) if mode == "sequence" => ScriptMode::Sequence,
            Some(toml::Value::String(mode)) if mode == "per_conversation" => {
                ScriptMode::PerConversation
            }
            Some(other) => {
                return Err(invalid(format!(
                    "`mode` must be \"sequence\" or \"per_conversation\", got {other}"
                )));
            }
        };
        if let Some(key) = doc.keys().next() {
            return Err(invalid(format!(
                "unknown top-level key `{key}` (only `mode` and `turns` are allowed)"
            )));
        }
        let turns = turns
            .into_iter()
            .enumerate()
            .map(|(i, value)| parse_turn(i + 1, value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Script { turns, mode })
    }

    /// Read and parse a script file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Script, ScriptError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScriptError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
    }
}

fn invalid(message: impl Into<String>) -> ScriptError {
    ScriptError::Invalid(message.into())
}

fn parse_turn(number: usize, value: toml::Value) -> Result<Turn, ScriptError> {
    let raw = RawTurn::deserialize(value)
        .map_err(|e| invalid(format!("turn {number}: {}", e.message())))?;
    let output = raw
        .output
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            Output::deserialize(value)
                .map_err(|e| invalid(format!("turn {number}, output {}: {}", i + 1, e.message())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let fault = raw.fault.map(|f| parse_fault(number, f)).transpose()?;
    Ok(Turn { expect: raw.expect, output, usage: raw.usage, fault, delay_ms: raw.delay_ms })
}

fn parse_fault(number: usize, raw: RawFault) -> Result<Fault, ScriptError> {
    let err = |what: &str| invalid(format!("turn {number}, fault: {what}"));
    let kinds = [raw.status.is_some(), raw.drop_after_events.is_some()]
        .into_iter()
        .chain([raw.stall_after_events.is_some(), raw.failed.is_some()])
        .filter(|set| *set)
        .count();
    if kinds != 1 {
        return Err(err(
            "set exactly one of `status`, `drop_after_events`, `stall_after_events`, `failed`",
        ));
    }
    let times = raw.times.unwrap_or(1);
    if times == 0 {
        return Err(err("`times` must be at least 1 (remove the fault to serve normally)"));
    }
    let status_only = raw.retry_after.is_some() || raw.retry_after_ms.is_some();
    let kind = if let Some(status) = raw.status {
        if !(400..=599).contains(&status) {
            return Err(err(&format!("`status` must be an error status 400..=599, got {status}")));
        }
        FaultKind::Status {
            status,
            retry_after: raw.retry_after,
            retry_after_ms: raw.retry_after_ms,
            code: raw.code,
            message: raw.message,
        }
    } else if status_only || raw.code.is_some() {
        return Err(err("`retry_after`, `retry_after_ms` and `code` go with `status` only"));
    } else if let Some(n) = raw.drop_after_events {
        FaultKind::DropAfterEvents(n)
    } else if let Some(n) = raw.stall_after_events {
        FaultKind::StallAfterEvents(n)
    } else if let Some(code) = raw.failed {
        FaultKind::Failed { code, message: raw.message }
    } else {
        // `kinds == 1` above guarantees one of the four branches matched.
        return Err(err("no fault kind set"));
    };
    Ok(Fault { times, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_table_becomes_json_text() {
        let script = Script::from_toml(
            r#"
            [[turns]]
            [[turns.output]]
            type = "function_call"
            name = "shell"
            arguments = { command = ["ls", "-la"], timeout_ms = 1000 }
            "#,
        )
        .unwrap();
        let Output::FunctionCall { arguments, .. } = &script.turns[0].output[0] else { panic!() };
        let json: serde_json::Value = serde_json::from_str(&arguments.to_json_text()).unwrap();
        assert_eq!(json, serde_json::json!({"command": ["ls", "-la"], "timeout_ms": 1000}));
    }
}
