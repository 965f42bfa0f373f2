//! Tool calls recovered from a message's text, for models whose endpoint returned no tool call
//! although the model wrote one (issue 9: a 1.5B model behind `llama-server` writes its calls
//! as fenced JSON, so the server returns none, and every other agent stops at "final answer").
//!
//! What counts as a call, in the order it is looked for:
//! - **`<tool_call>` tags** (Qwen's form): each tag holds `{"name": …, "arguments": …}`; every
//!   tag of the message is a call, whatever prose is around them. An unclosed last tag runs to
//!   the end of the message (the model stopped before closing it).
//! - **A JSON call**: a message that is only such an object, or whose one fenced block
//!   (```` ```json ```` or no language) holds one.
//! - **A `bash` block** (```` ```bash ````, `sh` or `shell`) as the call of `shell`, only when
//!   the system prompt asked for that form: the block becomes `["bash", "-lc", SCRIPT]`.
//!
//! In the JSON forms `parameters` may stand for `arguments`, and the arguments may be an object
//! or a string holding one.
//!
//! A fenced block only counts when it is the whole substance of the message: the only block,
//! with at most [`MAX_PROSE_LINES`] short lines of prose on one side of it. Several blocks, or
//! text before *and* after, is an example in an explanation (a strong model's final answer often
//! shows how to run the tests), and the message stands as written.
//!
//! Invariant: nothing here runs anything. A call is only returned when its tool is offered and
//! its arguments pass the same deserialization a real call of that tool goes through
//! (`tools::check_args`); a call-shaped text that fails either is a [`Recovery::NearMiss`],
//! which the loop tells the model about instead of running it.

use serde_json::Value;

use crate::tools::{self, SHELL};

/// Lines of prose a fenced call may have around it ("Let me look at the tests:").
const MAX_PROSE_LINES: usize = 2;
/// Characters of that prose.
const MAX_PROSE_CHARS: usize = 300;

/// What a `<tool_call>` tag that holds no call is answered with.
const TAG_EXAMPLE: &str = "a <tool_call> tag must hold one JSON object with the tool's `name` \
and its `arguments`, e.g. <tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": [\"ls\", \
\"-la\"]}}</tool_call>";

/// Where in the text a call was found; recorded in the `tool_call_recovered` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    ToolCallTag,
    JsonBlock,
    BareJson,
    BashBlock,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Self::ToolCallTag => "tool_call_tag",
            Self::JsonBlock => "json_block",
            Self::BareJson => "bare_json",
            Self::BashBlock => "bash_block",
        }
    }
}

/// A call found in text, checked against its tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextCall {
    pub tool: String,
    /// JSON arguments, as a real function call carries them.
    pub arguments: String,
    pub form: Form,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No call in the text: the message is what it looks like.
    None,
    /// Calls to carry out, in order.
    Calls(Vec<TextCall>),
    /// The text is plainly a call, but not one that may run (a tool not offered, invalid
    /// arguments): the tool it names (`tool_call` when it names none) and what is wrong, in
    /// words the model can act on.
    NearMiss { tool: String, why: String },
}

/// Looks for tool calls in `message`. `offered` names the tools of the request; `bash_block`
/// says whether the system prompt asked for bare ```` ```bash ```` blocks as `shell` calls.
pub fn recover(message: &str, offered: &[&str], bash_block: bool) -> Recovery {
    if let Some(bodies) = tool_call_tags(message) {
        let mut calls = Vec::new();
        for body in bodies {
            match call_in_json(strip_fence(body)) {
                Some(Ok((tool, arguments))) => {
                    calls.push(Candidate { tool, arguments, form: Form::ToolCallTag })
                }
                Some(Err(near_miss)) => return near_miss,
                None => {
                    return Recovery::NearMiss {
                        tool: "tool_call".into(),
                        why: TAG_EXAMPLE.into(),
                    };
                }
            }
        }
        return checked(calls, offered);
    }
    let trimmed = message.trim();
    if trimmed.starts_with('{') {
        return match call_in_json(trimmed) {
            Some(Ok((tool, arguments))) => {
                checked(vec![Candidate { tool, arguments, form: Form::BareJson }], offered)
            }
            Some(Err(near_miss)) => near_miss,
            None => Recovery::None,
        };
    }
    let Some(block) = sole_fenced_block(message) else {
        return Recovery::None;
    };
    let language = block.info.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    match language.as_str() {
        "json" | "" | "tool_call" => match call_in_json(block.body.trim()) {
            Some(Ok((tool, arguments))) => {
                checked(vec![Candidate { tool, arguments, form: Form::JsonBlock }], offered)
            }
            Some(Err(near_miss)) => near_miss,
            None => Recovery::None,
        },
        "bash" | "sh" | "shell"
            if bash_block && offered.contains(&SHELL) && !block.body.trim().is_empty() =>
        {
            let script = block.body.trim_end_matches('\n');
            let arguments = serde_json::json!({"command": ["bash", "-lc", script]}).to_string();
            let candidate = Candidate { tool: SHELL.into(), arguments, form: Form::BashBlock };
            checked(vec![candidate], offered)
        }
        _ => Recovery::None,
    }
}

struct Candidate {
    tool: String,
    arguments: String,
    form: Form,
}

/// The candidates as calls when every one names an offered tool with valid arguments; else the
/// first problem.
fn checked(candidates: Vec<Candidate>, offered: &[&str]) -> Recovery {
    let mut calls = Vec::new();
    for Candidate { tool, arguments, form } in candidates {
        if !offered.contains(&tool.as_str()) {
            let why = crate::malformed::unknown_tool(&tool);
            return Recovery::NearMiss { tool, why };
        }
        if let Err(why) = tools::check_args(&tool, &arguments) {
            return Recovery::NearMiss { tool, why };
        }
        calls.push(TextCall { tool, arguments, form });
    }
    Recovery::Calls(calls)
}

/// The bodies of the message's `<tool_call>` tags, or `None` when it has none.
fn tool_call_tags(message: &str) -> Option<Vec<&str>> {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut bodies = Vec::new();
    let mut rest = message;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let (body, next) = match after.find(CLOSE) {
            Some(end) => (&after[..end], &after[end + CLOSE.len()..]),
            None => (after, ""),
        };
        bodies.push(body.trim());
        rest = next;
    }
    (!bodies.is_empty()).then_some(bodies)
}

/// The text inside a fence, when the whole of `text` is one (models fence JSON inside tags too).
fn strip_fence(text: &str) -> &str {
    text.strip_prefix("```")
        .and_then(|rest| rest.split_once('\n'))
        .and_then(|(_, body)| body.trim_end().strip_suffix("```"))
        .map_or(text, str::trim)
}

/// `Some(Ok((tool, arguments)))` when `text` is a JSON object with a string `name` and
/// `arguments` (or `parameters`); `Some(Err)` when it has that shape but the arguments are not
/// an object; `None` when it is not call-shaped at all (other JSON, or not JSON).
fn call_in_json(text: &str) -> Option<Result<(String, String), Recovery>> {
    let Ok(Value::Object(mut call)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let Some(Value::String(tool)) = call.remove("name") else {
        return None;
    };
    let arguments = call.remove("arguments").or_else(|| call.remove("parameters"))?;
    let arguments = match arguments {
        Value::Object(_) => Some(arguments.to_string()),
        // Arguments as a JSON string holding the object, as the wire format carries them.
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(_)) => Some(text),
            _ => None,
        },
        _ => None,
    };
    Some(arguments.map(|arguments| (tool.clone(), arguments)).ok_or_else(|| {
        let why = format!(
            "the `arguments` of your `{tool}` call must be a JSON object. A valid call looks \
             like: {}",
            crate::malformed::example(&tool)
        );
        Recovery::NearMiss { tool, why }
    }))
}

struct FencedBlock<'a> {
    info: &'a str,
    body: String,
}

/// The message's only fenced block, when the prose around it is short and on one side only.
fn sole_fenced_block(message: &str) -> Option<FencedBlock<'_>> {
    let lines: Vec<&str> = message.lines().collect();
    let is_fence = |line: &str| line.trim_start().starts_with("```");
    let open = lines.iter().position(|l| is_fence(l))?;
    let info = lines[open].trim_start().trim_start_matches('`').trim();
    // An unclosed block runs to the end (the model stopped before closing it).
    let close = lines[open + 1..]
        .iter()
        .position(|l| l.trim().starts_with("```") && l.trim().trim_start_matches('`').is_empty())
        .map_or(lines.len(), |i| open + 1 + i);
    let before = &lines[..open];
    let after = lines.get(close + 1..).unwrap_or_default();
    if after.iter().any(|l| is_fence(l)) {
        return None;
    }
    let prose = |part: &[&str]| -> (usize, usize) {
        let words: Vec<&&str> = part.iter().filter(|l| !l.trim().is_empty()).collect();
        (words.len(), words.iter().map(|l| l.trim().chars().count()).sum())
    };
    let (before_lines, before_chars) = prose(before);
    let (after_lines, after_chars) = prose(after);
    if before_lines > 0 && after_lines > 0 {
        return None;
    }
    if before_lines + after_lines > MAX_PROSE_LINES || before_chars + after_chars > MAX_PROSE_CHARS
    {
        return None;
    }
    let mut body = lines[open + 1..close].join("\n");
    body.push('\n');
    Some(FencedBlock { info, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFERED: &[&str] = &["shell", "apply_patch", "update_plan"];

    fn call(tool: &str, arguments: &str, form: Form) -> Recovery {
        let arguments = serde_json::from_str::<Value>(arguments).unwrap().to_string();
        Recovery::Calls(vec![TextCall { tool: tool.into(), arguments, form }])
    }

    fn normalized(recovery: Recovery) -> Recovery {
        match recovery {
            Recovery::Calls(calls) => Recovery::Calls(
                calls
                    .into_iter()
                    .map(|c| TextCall {
                        arguments: serde_json::from_str::<Value>(&c.arguments).unwrap().to_string(),
                        ..c
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    #[test]
    fn each_form_is_recovered() {
        let ls = r#"{"command":["ls","-la"]}"#;
        let cases: &[(&str, Recovery)] = &[
            (
                "```json\n{\"name\": \"shell\", \"arguments\": {\"command\": [\"ls\", \"-la\"]}}\n```",
                call("shell", ls, Form::JsonBlock),
            ),
            (
                "Let me list the files:\n```json\n{\"name\": \"shell\", \"parameters\": {\"command\": [\"ls\", \"-la\"]}}\n```\n",
                call("shell", ls, Form::JsonBlock),
            ),
            (
                "```\n{\"name\": \"shell\", \"arguments\": \"{\\\"command\\\": [\\\"ls\\\", \\\"-la\\\"]}\"}\n```",
                call("shell", ls, Form::JsonBlock),
            ),
            (
                " {\"name\": \"shell\", \"arguments\": {\"command\": [\"ls\", \"-la\"]}}\n",
                call("shell", ls, Form::BareJson),
            ),
            (
                "I will look.\n<tool_call>\n{\"name\": \"shell\", \"arguments\": {\"command\": [\"ls\", \"-la\"]}}\n</tool_call>",
                call("shell", ls, Form::ToolCallTag),
            ),
            (
                "<tool_call>\n{\"name\": \"update_plan\", \"arguments\": {\"plan\": [{\"step\": \"a\", \"status\": \"pending\"}]}}",
                call(
                    "update_plan",
                    r#"{"plan":[{"step":"a","status":"pending"}]}"#,
                    Form::ToolCallTag,
                ),
            ),
            (
                "```bash\npython3 -m pytest -q\n```",
                call(
                    "shell",
                    r#"{"command":["bash","-lc","python3 -m pytest -q"]}"#,
                    Form::BashBlock,
                ),
            ),
            (
                "Run the tests:\n\n```sh\ncd src && ls\n```\n",
                call("shell", r#"{"command":["bash","-lc","cd src && ls"]}"#, Form::BashBlock),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(&normalized(recover(text, OFFERED, true)), expected, "{text}");
        }
    }

    #[test]
    fn several_tags_are_several_calls_in_order() {
        let text = "<tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": [\"ls\"]}}</tool_call>\n<tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": [\"pwd\"]}}</tool_call>";
        let Recovery::Calls(calls) = recover(text, OFFERED, false) else { panic!() };
        let commands: Vec<&str> = calls.iter().map(|c| c.arguments.as_str()).collect();
        assert_eq!(commands, [r#"{"command":["ls"]}"#, r#"{"command":["pwd"]}"#]);
    }

    #[test]
    fn near_misses_are_explained_not_run() {
        let cases: &[(&str, &str)] = &[
            (
                "```json\n{\"name\": \"python\", \"arguments\": {\"code\": \"1\"}}\n```",
                "unknown tool `python`",
            ),
            (
                "{\"name\": \"shell\", \"arguments\": {\"command\": \"ls -la\"}}",
                "invalid arguments for `shell`",
            ),
            (
                "<tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": []}}</tool_call>",
                "`command` must not be empty",
            ),
            (
                "<tool_call>{\"name\": \"shell\", \"arguments\": [\"ls\"]}</tool_call>",
                "must be a JSON object",
            ),
            ("<tool_call>shell ls</tool_call>", "must hold one JSON object"),
            // One bad call spoils the lot: none of them runs.
            (
                "<tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": [\"ls\"]}}</tool_call><tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>",
                "unknown tool `rm`",
            ),
        ];
        for (text, why) in cases {
            match recover(text, OFFERED, true) {
                Recovery::NearMiss { why: message, .. } => {
                    assert!(message.contains(why), "{text}: {message}");
                    assert!(
                        message.contains("{\"command\": [\"") || message.contains("{\"plan\""),
                        "{message}"
                    );
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn examples_in_prose_and_other_text_are_left_alone() {
        let cases: &[&str] = &[
            "Fix the parser\n\nThe tests pass now; run them with:\n```bash\npytest -q\n```\nand they should all pass.",
            "Title\n\nFirst:\n```bash\nmake\n```\nthen\n```bash\nmake test\n```",
            "Fix the parser\n\nThe parser dropped empty rows (src/import.py:L40-L52), so I\nchanged the loop to keep them and added a test.\nVerified with:\n```bash\npytest -q\n```",
            "```python\nprint(1)\n```",
            "```json\n{\"name\": \"widget\", \"size\": 3}\n```",
            "{\"status\": \"done\"}",
            "```json\n{not json\n```",
            "All done: the bug was in `add`.",
            "",
        ];
        for text in cases {
            assert_eq!(recover(text, OFFERED, true), Recovery::None, "{text}");
        }
    }

    #[test]
    fn bash_blocks_count_only_when_the_prompt_asked_for_them() {
        assert_eq!(recover("```bash\nls\n```", OFFERED, false), Recovery::None);
        assert!(matches!(recover("```bash\nls\n```", OFFERED, true), Recovery::Calls(_)));
        // Nor when `shell` is not offered.
        assert_eq!(recover("```bash\nls\n```", &["update_plan"], true), Recovery::None);
        let Recovery::NearMiss { tool, .. } = recover("<tool_call>ls</tool_call>", OFFERED, true)
        else {
            panic!()
        };
        assert_eq!(tool, "tool_call");
    }
}
