//! Each model fault end to end through the real `errand` binary: a scripted model injects one
//! fault (errand-testkit's `[turns.fault]`), and the test checks what the user sees: the exit
//! code, the work log on stderr or the `--json` events, and the requests the model received.
//! Retries are fast (10 ms base delay) and stall tests use a 1 s idle timeout, through an
//! `errand.toml` passed with `--config`.

mod common;

use std::process::Output;

use common::{CALC, both, json_lines, make_repo, model_config, run_errand, sandbox_available};
use errand_testkit::{Script, ScriptedModel};
use serde_json::Value;

/// The wire protocols, which fail differently: their own error bodies, mid-stream failure
/// events, end-of-turn markers, ways of saying "too long", and key variables. Every fault runs
/// over each.
#[derive(Debug, Clone, Copy)]
enum Wire {
    Responses,
    Chat,
    /// Anthropic Messages.
    Messages,
}

impl Wire {
    const ALL: [Wire; 3] = [Wire::Responses, Wire::Chat, Wire::Messages];

    /// `model.provider` in errand.toml.
    fn provider(self) -> &'static str {
        match self {
            Wire::Responses => "openai-responses",
            Wire::Chat => "chat-completions",
            Wire::Messages => "anthropic",
        }
    }

    /// What marks a complete turn on this wire; the client's errors name it.
    fn end_marker(self) -> &'static str {
        match self {
            Wire::Responses => "response.completed",
            Wire::Chat => "[DONE]",
            Wire::Messages => "message_stop",
        }
    }

    /// The variable the provider's key conventionally lives in, which advice names.
    fn key_env(self) -> &'static str {
        match self {
            Wire::Responses | Wire::Chat => "OPENAI_API_KEY",
            Wire::Messages => "ANTHROPIC_API_KEY",
        }
    }
}

/// Idle timeout for tests that do not stall: long enough never to fire on a loaded machine.
const PATIENT: u64 = 60;

/// One `errand exec "fix the failing test"` on a fresh repository against `script` over `wire`:
/// the process output and the model, for its requests.
async fn exec(
    script: &str,
    wire: Wire,
    idle_timeout_secs: u64,
    json: bool,
) -> (Output, ScriptedModel) {
    let root = common::scratch();
    let repo = make_repo(root.path());
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let config = model_config(&model, wire.provider(), idle_timeout_secs);
    let mut args = vec!["exec"];
    if json {
        args.push("--json");
    }
    args.push("fix the failing test");
    let out = run_errand(root.path(), &repo, &config, &args).await;
    // The user's repository is never touched, whatever the model did.
    assert_eq!(std::fs::read_to_string(repo.join("calc.py")).unwrap(), CALC);
    (out, model)
}

/// The `--json` events of one type.
fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|line| line["type"] == kind).collect()
}

/// The `result` line of a `--json` run, after checking the exit code matches its state.
fn result(out: &Output, lines: &[Value]) -> Value {
    let result = lines.last().unwrap_or_else(|| panic!("no output\n{}", both(out)));
    assert_eq!(result["type"], "result", "{}", both(out));
    let code = if result["state"] == "succeeded" { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(code), "{}", both(out));
    result.clone()
}

const DONE: &str = r#"
[[turns.output]]
type = "message"
text = "Nothing to change: add() is fine as the task describes it."
"#;

#[tokio::test]
async fn rate_limit_waits_what_retry_after_says_then_succeeds() {
    if !sandbox_available() {
        return;
    }
    let script = format!("[[turns]]\nfault = {{ status = 429, retry_after = 1 }}\n{DONE}");
    for wire in Wire::ALL {
        let (out, model) = exec(&script, wire, PATIENT, true).await;
        let lines = json_lines(&out);
        assert_eq!(result(&out, &lines)["state"], "succeeded", "{wire:?}");
        let retries = of_type(&lines, "model_retry");
        assert_eq!(retries.len(), 1, "{wire:?}: {}", both(&out));
        assert_eq!(retries[0]["attempt"], 1);
        // The server's 1 s, not the configured 10 ms backoff.
        assert_eq!(retries[0]["delay_ms"], 1000, "{wire:?}");
        let error = retries[0]["error"].as_str().unwrap();
        assert!(error.starts_with("HTTP 429: "), "{wire:?}: {error}");
        assert_eq!(model.requests().len(), 2);
        model.verify().unwrap();
    }
}

#[tokio::test]
async fn server_errors_and_failed_streams_are_retried_then_succeed() {
    if !sandbox_available() {
        return;
    }
    let faults = [
        ("status = 500", "HTTP 500: "),
        ("status = 502", "HTTP 502: "),
        ("status = 503", "HTTP 503: "),
        // Anthropic's "overloaded".
        ("status = 529", "HTTP 529: "),
        // A stream that starts, then fails: `response.failed`, an error chunk, an `error` event.
        ("failed = \"server_error\"", "server_error"),
    ];
    for wire in Wire::ALL {
        for (fault, error) in faults {
            let script = format!("[[turns]]\nfault = {{ {fault} }}\n{DONE}");
            let (out, model) = exec(&script, wire, PATIENT, true).await;
            let lines = json_lines(&out);
            assert_eq!(result(&out, &lines)["state"], "succeeded", "{wire:?} {fault}");
            let retries = of_type(&lines, "model_retry");
            assert_eq!(retries.len(), 1, "{wire:?} {fault}: {}", both(&out));
            let said = retries[0]["error"].as_str().unwrap();
            assert!(said.contains(error), "{wire:?} {fault}: {said}");
            assert_eq!(model.requests().len(), 2, "{wire:?} {fault}");
            model.verify().unwrap();
        }
    }
}

#[tokio::test]
async fn a_stalled_stream_times_out_and_is_retried() {
    if !sandbox_available() {
        return;
    }
    for wire in Wire::ALL {
        let script = format!("[[turns]]\nfault = {{ stall_after_events = 2 }}\n{DONE}");
        let (out, model) = exec(&script, wire, 1, true).await;
        let lines = json_lines(&out);
        assert_eq!(result(&out, &lines)["state"], "succeeded", "{wire:?}");
        let retries = of_type(&lines, "model_retry");
        assert_eq!(retries.len(), 1, "{wire:?}: {}", both(&out));
        assert_eq!(
            retries[0]["error"],
            format!("the stream stalled: no data for 1s before {}", wire.end_marker()),
            "{wire:?}"
        );
        model.verify().unwrap();
    }
}

#[tokio::test]
async fn a_stream_that_always_stalls_fails_naming_the_stall() {
    if !sandbox_available() {
        return;
    }
    for wire in Wire::ALL {
        // One stall per try: the first and both retries.
        let script = format!("[[turns]]\nfault = {{ stall_after_events = 2, times = 3 }}\n{DONE}");
        let (out, model) = exec(&script, wire, 1, false).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{wire:?}: {}", both(&out));
        let stall = format!("the stream stalled: no data for 1s before {}", wire.end_marker());
        for retry in 1..=2 {
            let line = format!("! model request failed ({stall}); retry {retry} in ");
            assert!(stderr.contains(&line), "{wire:?}: no `{line}` in\n{stderr}");
        }
        assert!(stderr.contains("✗ did not succeed"), "{stderr}");
        let reason = stderr.lines().find(|l| l.starts_with("reason: ")).unwrap_or_default();
        assert!(
            reason.contains("failed 3 times in a row, last with: ") && reason.contains(&stall),
            "{wire:?}: {reason}"
        );
        assert_eq!(model.requests().len(), 3, "{wire:?}");
        // The turn itself was never served.
        assert!(model.verify().unwrap_err().contains("turn 1 of 1 never served"));
    }
}

#[tokio::test]
async fn a_dropped_stream_is_retried_and_its_tool_call_runs_once() {
    if !sandbox_available() {
        return;
    }
    // The cut comes after every event but the last (`response.completed`, `[DONE]`,
    // `message_stop`): the call is
    // complete on the wire, but the turn is not, so nothing of it may run before the retry.
    let script = r#"
[[turns]]
fault = { drop_after_events = 1000 }
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "calc.py"] }
call_id = "call_cat"

[[turns]]
expect.last_tool_output_contains = ["return a - b"]
[[turns.output]]
type = "message"
text = "calc.py subtracts; the test expects a sum."
"#;
    for wire in Wire::ALL {
        let (out, model) = exec(script, wire, PATIENT, true).await;
        let lines = json_lines(&out);
        assert_eq!(result(&out, &lines)["state"], "succeeded", "{wire:?}");
        let retries = of_type(&lines, "model_retry");
        assert_eq!(retries.len(), 1, "{wire:?}: {}", both(&out));
        let error = retries[0]["error"].as_str().unwrap();
        assert!(error.contains(&format!("before {}", wire.end_marker())), "{wire:?}: {error}");
        let started = of_type(&lines, "command_started");
        assert_eq!(started.len(), 1, "{wire:?}: {started:?}");
        assert_eq!(started[0]["call_id"], "call_cat");
        assert_eq!(of_type(&lines, "command_finished")[0]["exit_code"], 0);
        assert_eq!(model.requests().len(), 3, "{wire:?}");
        model.verify().unwrap();
    }
}

#[tokio::test]
async fn malformed_tool_arguments_reach_the_model_which_fixes_them() {
    if !sandbox_available() {
        return;
    }
    let script = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = '{"command": ["cat", "calc.py"'

[[turns]]
expect.last_tool_output_contains = ["invalid arguments for `shell`", "A valid call looks like"]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "calc.py"] }

[[turns]]
expect.last_tool_output_contains = ["return a - b"]
[[turns.output]]
type = "message"
text = "calc.py subtracts; the test expects a sum."
"#;
    for wire in Wire::ALL {
        let (out, model) = exec(script, wire, PATIENT, true).await;
        let lines = json_lines(&out);
        assert_eq!(result(&out, &lines)["state"], "succeeded", "{wire:?}: {}", both(&out));
        let errors = of_type(&lines, "tool_error");
        assert_eq!(errors.len(), 1, "{wire:?}: {}", both(&out));
        assert_eq!(errors[0]["tool"], "shell");
        assert_eq!(errors[0]["call_id"], "call_1_1");
        // Only the corrected call ran.
        let started = of_type(&lines, "command_started");
        let ids: Vec<&Value> = started.iter().map(|e| &e["call_id"]).collect();
        assert_eq!(ids, [&Value::from("call_2_1")], "{wire:?}");
        assert!(of_type(&lines, "model_retry").is_empty(), "a tool error is not a model failure");
        model.verify().unwrap();
    }
}

/// Turns of an attempt whose third request is refused as too long. The first turn's output is
/// long (one line of about 9 kB, which the model sees whole), so compaction summarises it; the
/// second's is short, so it is kept verbatim.
const BEFORE_OVERFLOW: &str = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["seq", "-s", " ", "1", "2000"] }

[[turns]]
expect.last_tool_output_contains = ["1998 1999 2000"]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "calc.py"] }
"#;

/// The endpoint refuses the request as too long, in each protocol's words (OpenAI's code
/// `context_length_exceeded`; on Anthropic's wire, "prompt is too long: …").
const TOO_LONG: &str = "{ status = 400, code = \"context_length_exceeded\" }";

#[tokio::test]
async fn context_length_exceeded_compacts_the_conversation_and_retries() {
    if !sandbox_available() {
        return;
    }
    // Turn 3 is refused once; its next request is the summary request, which it answers; turn 4
    // answers the retried request, which carries the summary instead of turn 1.
    let script = format!(
        r#"{BEFORE_OVERFLOW}
[[turns]]
fault = {TOO_LONG}
[[turns.output]]
type = "message"
text = "Progress: counted to 2000 and read calc.py; add() subtracts."

[[turns]]
expect.request_contains = ["<summary>", "add() subtracts.", "return a - b"]
[[turns.output]]
type = "message"
text = "calc.py subtracts; the test expects a sum."
"#
    );
    for wire in Wire::ALL {
        let (out, model) = exec(&script, wire, PATIENT, true).await;
        let lines = json_lines(&out);
        assert_eq!(result(&out, &lines)["state"], "succeeded", "{wire:?}: {}", both(&out));
        let compacted = of_type(&lines, "context_compacted");
        assert_eq!(compacted.len(), 1, "{wire:?}: {}", both(&out));
        let event = compacted[0];
        assert_eq!(event["trigger"], "context_length_exceeded");
        assert_eq!((&event["turns_summarized"], &event["turns_kept"]), (&1.into(), &1.into()));
        let summary = "Progress: counted to 2000 and read calc.py; add() subtracts.";
        assert_eq!(event["summary"], summary);
        assert!(of_type(&lines, "model_retry").is_empty(), "too long is not retried as is");
        model.verify().unwrap();

        let requests: Vec<String> = model.requests().iter().map(Value::to_string).collect();
        assert_eq!(requests.len(), 5, "turns 1, 2, the refused one, the summary, the retry");
        assert!(requests[3].contains("about to be compacted"), "{}", requests[3]);
        assert!(requests[2].contains("1998 1999 2000"), "the refused request had turn 1's output");
        assert!(!requests[4].contains("1998 1999 2000"), "the retry still has turn 1's output");
    }
}

#[tokio::test]
async fn context_length_exceeded_with_nothing_to_compact_fails_clearly() {
    if !sandbox_available() {
        return;
    }
    // Refused on the very first turn: there are no older turns to summarise.
    let script = format!("[[turns]]\nfault = {TOO_LONG}\n{DONE}");
    for wire in Wire::ALL {
        let (out, model) = exec(&script, wire, PATIENT, true).await;
        let lines = json_lines(&out);
        let result = result(&out, &lines);
        assert_eq!(result["state"], "failed", "{wire:?}");
        let reason = result["reason"].as_str().unwrap();
        assert!(
            reason.contains("exceeds the model's context window")
                && reason.contains("no older turns to summarise"),
            "{wire:?}: {reason}"
        );
        assert!(of_type(&lines, "context_compacted").is_empty());
        assert_eq!(model.requests().len(), 1, "neither retried nor summarised");
    }
}

#[tokio::test]
async fn a_refused_api_key_fails_at_once_with_advice() {
    if !sandbox_available() {
        return;
    }
    let script = format!("[[turns]]\nfault = {{ status = 401 }}\n{DONE}");
    for wire in Wire::ALL {
        let (out, model) = exec(&script, wire, PATIENT, false).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{wire:?}: {}", both(&out));
        let reason = stderr.lines().find(|l| l.starts_with("reason: ")).unwrap_or_default();
        let advice = format!("check {}", wire.key_env());
        assert!(
            reason.contains("refused the API key (HTTP 401: ") && reason.contains(&advice),
            "{wire:?}: {stderr}"
        );
        assert!(!stderr.contains("! model request failed"), "retried a refused key:\n{stderr}");
        assert_eq!(model.requests().len(), 1);
    }
}
