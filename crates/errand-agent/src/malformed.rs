//! What the model is told when its tool call cannot be carried out: what was wrong, a valid call
//! it can copy as is, and, when its intent is plain (a command given as one string, a known
//! misnamed field), its own call corrected.
//!
//! Invariant: every example here is a call that would run as written. Small models copy text
//! from errors back verbatim (issue 9: a 1.5B model sent `<command>` as its command), so no
//! example may hold a placeholder, and none names a path that may not exist (a `workdir` of
//! `src` fails in a repository without one).

use serde_json::{Map, Value, json};

use crate::tools::{APPLY_PATCH, SHELL, UPDATE_PLAN};

/// A valid call of `tool`, as JSON arguments to copy.
pub fn example(tool: &str) -> &'static str {
    match tool {
        SHELL => r#"{"command": ["bash", "-lc", "ls -la"]}"#,
        APPLY_PATCH => {
            r#"{"input": "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n"}"#
        }
        UPDATE_PLAN => r#"{"plan": [{"step": "Run the tests", "status": "in_progress"}]}"#,
        _ => "{}",
    }
}

/// The error for arguments of `tool` that do not deserialize (`error` says why).
pub fn invalid_arguments(tool: &str, arguments: &str, error: &str) -> String {
    let mut text = format!(
        "invalid arguments for `{tool}`: {error}. A valid call looks like: {}",
        example(tool)
    );
    if tool == SHELL {
        text.push_str(r#" or {"command": ["python3", "-m", "pytest", "-q"]}"#);
    }
    if let Some(fixed) = corrected(tool, arguments) {
        text.push_str(&format!(". Your call, corrected: {fixed}"));
    }
    text
}

/// The error for a `shell` call whose `command` is an empty list.
pub fn empty_command() -> String {
    format!(
        "invalid arguments for `shell`: `command` must not be empty; give the program and its \
         arguments. A valid call looks like: {}",
        example(SHELL)
    )
}

/// The error for a call of a tool that is not offered.
pub fn unknown_tool(name: &str) -> String {
    format!(
        "unknown tool `{name}`; the available tools are shell, apply_patch and update_plan. To \
         run a program, call shell, e.g. with {}",
        example(SHELL)
    )
}

/// Fields models put a tool's main argument under instead of its real name.
const SHELL_ALIASES: &[&str] = &["cmd", "commands", "script", "bash", "argv", "args", "code"];
const PATCH_ALIASES: &[&str] = &["patch", "diff", "content", "text"];
const PLAN_ALIASES: &[&str] = &["steps", "items", "tasks"];

/// The model's own call made valid, when what it meant is plain; `None` when it is not (then the
/// example has to do).
fn corrected(tool: &str, arguments: &str) -> Option<String> {
    let Ok(Value::Object(mut args)) = serde_json::from_str::<Value>(arguments) else {
        return None;
    };
    let fixed = match tool {
        SHELL => {
            rename_alias(&mut args, "command", SHELL_ALIASES);
            let command = match args.remove("command")? {
                // One string is a shell command line: run it as one.
                Value::String(line) if !line.trim().is_empty() => json!(["bash", "-lc", line]),
                Value::Array(parts)
                    if !parts.is_empty()
                        && parts.iter().all(|p| !p.is_object() && !p.is_array()) =>
                {
                    let parts: Vec<String> = parts
                        .iter()
                        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                        .collect();
                    json!(parts)
                }
                _ => return None,
            };
            let mut fixed = Map::new();
            fixed.insert("command".into(), command);
            for key in ["workdir", "timeout_ms"] {
                if let Some(value) = args.remove(key) {
                    fixed.insert(key.into(), value);
                }
            }
            fixed
        }
        APPLY_PATCH => {
            rename_alias(&mut args, "input", PATCH_ALIASES);
            let patch = args.remove("input")?;
            patch.as_str().filter(|p| p.contains("*** Begin Patch"))?;
            Map::from_iter([("input".to_string(), patch)])
        }
        UPDATE_PLAN => {
            rename_alias(&mut args, "plan", PLAN_ALIASES);
            let Value::Array(steps) = args.remove("plan")? else { return None };
            let steps = steps.into_iter().map(plan_step).collect::<Option<Vec<_>>>()?;
            let mut fixed = Map::from_iter([("plan".to_string(), Value::Array(steps))]);
            if let Some(explanation @ Value::String(_)) = args.remove("explanation") {
                fixed.insert("explanation".into(), explanation);
            }
            fixed
        }
        _ => return None,
    };
    let fixed = Value::Object(fixed).to_string();
    // Only a correction that would now pass is worth showing.
    crate::tools::check_args(tool, &fixed).is_ok().then_some(fixed)
}

/// Moves the first alias present to `field` when `field` itself is missing.
fn rename_alias(args: &mut Map<String, Value>, field: &str, aliases: &[&str]) {
    if args.contains_key(field) {
        return;
    }
    if let Some(value) = aliases.iter().find_map(|alias| args.remove(*alias)) {
        args.insert(field.into(), value);
    }
}

/// One plan step made valid: a bare string is a pending step; status words models use for the
/// three statuses are mapped to them.
fn plan_step(step: Value) -> Option<Value> {
    match step {
        Value::String(step) => Some(json!({"step": step, "status": "pending"})),
        Value::Object(mut fields) => {
            let step = fields.remove("step").or_else(|| fields.remove("description"))?;
            let status = fields.remove("status").and_then(|s| s.as_str().map(str::to_lowercase));
            let status = match status.as_deref().map(|s| s.replace(['-', ' '], "_")).as_deref() {
                None | Some("pending" | "todo" | "to_do" | "not_started" | "open") => "pending",
                Some("in_progress" | "doing" | "active" | "started" | "current") => "in_progress",
                Some("completed" | "complete" | "done" | "finished") => "completed",
                Some(_) => return None,
            };
            Some(json!({"step": step, "status": status}))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::check_args;

    #[test]
    fn examples_are_valid_calls_without_placeholders() {
        for tool in [SHELL, APPLY_PATCH, UPDATE_PLAN] {
            let example = example(tool);
            assert!(check_args(tool, example).is_ok(), "{tool}: {example}");
            assert!(!example.contains('<'), "{tool}: {example}");
        }
    }

    #[test]
    fn plain_intent_is_corrected_into_a_valid_call() {
        let cases = [
            (SHELL, r#"{"command": "ls -la src"}"#, r#"{"command":["bash","-lc","ls -la src"]}"#),
            (SHELL, r#"{"cmd": "pytest -q"}"#, r#"{"command":["bash","-lc","pytest -q"]}"#),
            (
                SHELL,
                r#"{"cmd": ["ls", 3], "workdir": "a", "extra": 1}"#,
                r#"{"command":["ls","3"],"workdir":"a"}"#,
            ),
            (
                APPLY_PATCH,
                r#"{"patch": "*** Begin Patch\n*** End Patch"}"#,
                r#"{"input":"*** Begin Patch\n*** End Patch"}"#,
            ),
            (
                UPDATE_PLAN,
                r#"{"steps": ["read", {"step": "fix", "status": "Done"}]}"#,
                r#"{"plan":[{"status":"pending","step":"read"},{"status":"completed","step":"fix"}]}"#,
            ),
        ];
        for (tool, bad, fixed) in cases {
            assert!(check_args(tool, bad).is_err(), "{bad}");
            assert_eq!(corrected(tool, bad).as_deref(), Some(fixed), "{bad}");
        }
    }

    #[test]
    fn unclear_intent_gets_only_the_example() {
        let cases = [
            (SHELL, "{not json"),
            (SHELL, r#"{"path": "src"}"#),
            (SHELL, r#"{"command": ""}"#),
            (SHELL, r#"{"command": [["ls"]]}"#),
            (APPLY_PATCH, r#"{"patch": "just some text"}"#),
            (UPDATE_PLAN, r#"{"plan": [{"step": "a", "status": "blocked"}]}"#),
            ("browser", r#"{"url": "x"}"#),
        ];
        for (tool, bad) in cases {
            assert_eq!(corrected(tool, bad), None, "{bad}");
            let text = invalid_arguments(tool, bad, "some error");
            assert!(text.contains("A valid call looks like: {"), "{text}");
            assert!(!text.contains("corrected"), "{text}");
        }
    }

    #[test]
    fn every_message_offers_a_call_to_copy() {
        for text in [empty_command(), unknown_tool("python")] {
            assert!(text.contains(r#"{"command": ["bash", "-lc", "ls -la"]}"#), "{text}");
            assert!(!text.contains('<'), "{text}");
        }
    }
}
