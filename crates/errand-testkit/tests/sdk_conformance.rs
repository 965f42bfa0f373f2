//! Proof that the fake is real: the official OpenAI (and Anthropic) Python SDKs consume every kind
//! of turn and fault the scripted model streams, parse each event into their own typed models,
//! and see tool calls, usage and errors exactly as scripted. When an SDK rejects something, the
//! fake is wrong.
//!
//! `tests/sdk/drive.py` runs the SDKs, one suite per wire protocol, and prints what they made of
//! each answer; its steps consume the turns of [`script`] in order. The SDKs are pinned in
//! `tests/sdk/requirements.txt` and installed from PyPI into a venv built once under
//! `CARGO_TARGET_TMPDIR` (`tests/sdk/sdk_venv.py`).

use std::path::PathBuf;

use errand_testkit::{Script, ScriptedModel};
use serde_json::{Value, json};

const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk");

/// The venv's python, built on first use; `None` (skip) when this machine has no python3 with
/// `venv`, which CI must have.
async fn sdk_python() -> Option<PathBuf> {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import ensurepip, fcntl, venv"])
        .output()
        .await;
    let why = match probe {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "python3 cannot build a venv ({})",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("no output")
        )),
        Err(e) => Some(format!("python3 is not available ({e})")),
    };
    if let Some(why) = why {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the SDK conformance tests, but {why}"
        );
        eprintln!("skipping: {why} (run scripts/install-deps.sh as root)");
        return None;
    }
    let out = tokio::process::Command::new("python3")
        .arg(format!("{SDK_DIR}/sdk_venv.py"))
        .arg(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "building the SDK venv failed (PyPI reachable?):\n{stderr}");
    Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
}

/// Serves `script` and runs `drive.py <suite>` against it: the driver's report, after checking
/// that the SDK found no problem and every turn was consumed.
async fn drive(suite: &str, script: &str) -> Option<Value> {
    let python = sdk_python().await?;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let mut command = tokio::process::Command::new(python);
    command.arg(format!("{SDK_DIR}/drive.py")).arg(suite).arg(model.base_url());
    // Loopback only: a proxy from the environment must not see the requests.
    for proxy in ["http_proxy", "https_proxy", "all_proxy"] {
        command.env_remove(proxy).env_remove(proxy.to_uppercase());
    }
    let out = command.env("PYTHONDONTWRITEBYTECODE", "1").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "drive.py {suite} failed:\n{stderr}\n{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems.is_empty(),
        "the {suite} SDK rejected what the scripted model streamed:\n{}",
        problems.iter().map(|p| p.as_str().unwrap()).collect::<Vec<_>>().join("\n")
    );
    if let Some(gaps) = report["known_gaps"].as_object().filter(|gaps| !gaps.is_empty()) {
        eprintln!("known gaps of the fake ({suite}): {gaps:#?}");
    }
    model.verify().unwrap();
    Some(report)
}

/// Every kind of output the server streams, in one turn: reasoning with a summary, a message,
/// two parallel function calls (one with its own call id), a freeform tool call, and usage
/// with cached and reasoning tokens.
const EVERY_OUTPUT: &str = r#"
[[turns.output]]
type = "reasoning"
summary = "The test fails; read the file first."
[[turns.output]]
type = "message"
text = "Let me look at the code: ✓."
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "src/lib.rs"] }
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["ls", "-la", "src"] }
call_id = "call_parallel"
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = "*** Begin Patch\n*** Update File: a.txt\n-\"old\"\n+new\n*** End Patch\n"
[turns.usage]
input_tokens = 100
cached_tokens = 40
output_tokens = 20
reasoning_tokens = 8
"#;

/// The turns that follow in every suite, one fault each, in the order of `fault_steps` in
/// drive.py; each turn's text proves the client recovered once the fault was served.
const FAULTS: &str = r#"
[[turns]]
fault = { status = 429, retry_after = 7, times = 2 }
[[turns.output]]
type = "message"
text = "after the rate limit"

[[turns]]
fault = { status = 401 }
[[turns.output]]
type = "message"
text = "after 401"

[[turns]]
fault = { status = 400, code = "context_length_exceeded", message = "input too long: 300000 tokens" }
[[turns.output]]
type = "message"
text = "after context_length_exceeded"

[[turns]]
fault = { status = 500 }
[[turns.output]]
type = "message"
text = "after 500"
[[turns]]
fault = { status = 502 }
[[turns.output]]
type = "message"
text = "after 502"
[[turns]]
fault = { status = 503 }
[[turns.output]]
type = "message"
text = "after 503"
[[turns]]
fault = { status = 529 }
[[turns.output]]
type = "message"
text = "after 529"

[[turns]]
fault = { failed = "server_error", message = "the model broke" }
[[turns.output]]
type = "message"
text = "after the failure"

[[turns]]
fault = { drop_after_events = 5 }
[[turns.output]]
type = "message"
text = "after the drop"
"#;

/// Two turns of every output (one per way of reading a stream), then the faults.
fn script() -> String {
    format!("[[turns]]\n{EVERY_OUTPUT}\n[[turns]]\n{EVERY_OUTPUT}\n{FAULTS}")
}

/// What every SDK must make of [`FAULTS`]: typed errors, the rate limit's `Retry-After` honoured.
fn assert_faults(report: &Value) {
    let error = |step: &str| -> (String, Value, Value) {
        let e = &report[step];
        (e["class"].as_str().unwrap().to_string(), e["status"].clone(), e["code"].clone())
    };
    assert_eq!(
        error("rate_limited"),
        ("RateLimitError".into(), json!(429), json!("rate_limit_exceeded"))
    );
    assert_eq!(report["rate_limited"]["retry_after"], "7");
    // One retry, after exactly the server's wish (the SDK's own backoff is under 8 s, jittered).
    assert_eq!(report["rate_limited_sleeps"], json!([7.0]));
    assert_eq!(report["rate_limited_then"], "after the rate limit");

    assert_eq!(
        error("unauthorized"),
        ("AuthenticationError".into(), json!(401), json!("invalid_api_key"))
    );
    assert_eq!(report["unauthorized_then"], "after 401");

    assert_eq!(
        error("context_length"),
        ("BadRequestError".into(), json!(400), json!("context_length_exceeded"))
    );
    assert!(report["context_length"]["message"].as_str().unwrap().contains("300000 tokens"));
    assert_eq!(report["context_length_then"], "after context_length_exceeded");

    let statuses: Vec<(&str, &Value)> = report["server_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["class"].as_str().unwrap(), &e["status"]))
        .collect();
    let internal = "InternalServerError";
    let expected = [(internal, &json!(500)), (internal, &json!(502))];
    assert_eq!(statuses[..2], expected);
    assert_eq!(statuses[2..], [(internal, &json!(503)), (internal, &json!(529))]);
    assert_eq!(
        report["server_errors_then"],
        json!(["after 500", "after 502", "after 503", "after 529"])
    );

    assert_eq!(report["failed_then"], "after the failure");
    // A connection cut mid-stream is the SDK's connection error, not a parse error.
    assert_eq!(report["dropped"]["class"], "APIConnectionError");
    assert_eq!(report["dropped_then"], "after the drop");
}

const PATCH: &str = "*** Begin Patch\n*** Update File: a.txt\n-\"old\"\n+new\n*** End Patch\n";

#[tokio::test]
async fn openai_sdk_reads_the_responses_stream() {
    let Some(report) = drive("responses", &script()).await else { return };

    // `responses.create(stream=True)`: every raw event typed, numbered, in order.
    let create = &report["create"];
    let types: Vec<&str> =
        create["types"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"response.created"));
    assert_eq!(types.last(), Some(&"response.completed"));
    let count = |kind: &str| types.iter().filter(|t| **t == kind).count();
    assert_eq!(count("response.output_item.added"), 5);
    assert_eq!(count("response.output_item.done"), 5);
    assert_eq!(count("response.function_call_arguments.done"), 2);
    assert_eq!(count("response.custom_tool_call_input.done"), 1);
    assert_eq!(count("response.reasoning_summary_part.done"), 1);
    let numbers: Vec<u64> = create["sequence_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..types.len() as u64).collect::<Vec<_>>());
    assert_eq!(create["text_deltas"], "Let me look at the code: ✓.");
    assert_eq!(create["reasoning_deltas"], "The test fails; read the file first.");
    assert_eq!(
        create["argument_deltas"],
        json!({"fc_1_3": r#"{"command":["cat","src/lib.rs"]}"#,
               "fc_1_4": r#"{"command":["ls","-la","src"]}"#})
    );
    assert_eq!(create["custom_input_deltas"], PATCH);
    assert_eq!(create["output_text"], "Let me look at the code: ✓.");
    let completed = &create["last"]["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["model"], "scripted-model");
    assert_eq!(
        completed["usage"],
        json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40},
               "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 8},
               "total_tokens": 120})
    );

    // `responses.stream()` + `get_final_response()`: the SDK's own accumulation of turn 2.
    let helper = &report["helper"];
    assert_eq!(helper["status"], "completed");
    assert_eq!(helper["output_text"], "Let me look at the code: ✓.");
    assert_eq!(
        helper["function_calls"],
        json!([
            {"name": "shell", "call_id": "call_2_3", "arguments": r#"{"command":["cat","src/lib.rs"]}"#,
             "parsed_arguments": {"command": ["cat", "src/lib.rs"]}},
            {"name": "shell", "call_id": "call_parallel",
             "arguments": r#"{"command":["ls","-la","src"]}"#,
             "parsed_arguments": {"command": ["ls", "-la", "src"]}},
        ])
    );
    let output = helper["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|item| item["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["reasoning", "message", "function_call", "function_call", "custom_tool_call"]
    );
    assert_eq!(output[0]["summary"][0]["text"], "The test fails; read the file first.");
    assert_eq!(
        (&output[4]["name"], &output[4]["call_id"], &output[4]["input"]),
        (&json!("apply_patch"), &json!("call_2_5"), &json!(PATCH))
    );
    assert_eq!(helper["usage"], completed["usage"]);

    assert_faults(&report);
    // `response.failed`: the typed event with its error, and no final response.
    let failed = &report["failed"];
    assert_eq!(failed["types"].as_array().unwrap().last().unwrap(), "response.failed");
    assert_eq!(failed["error"], json!({"code": "server_error", "message": "the model broke"}));
    assert_eq!(failed["final_error"], "Didn't receive a `response.completed` event.");
}

#[tokio::test]
async fn openai_sdk_reads_chat_completions() {
    let Some(report) = drive("chat", &script()).await else { return };

    // `chat.completions.create(stream=True, include_usage)`: every chunk typed, then assembled.
    let create = &report["create"];
    assert_eq!(create["objects"], json!(["chat.completion.chunk"]));
    assert_eq!(create["ids"], json!(["chatcmpl-1"]));
    assert_eq!(create["roles"], json!(["assistant"]));
    assert_eq!(create["content"], "Let me look at the code: ✓.");
    assert_eq!(create["reasoning"], "The test fails; read the file first.");
    assert_eq!(
        create["tool_calls"],
        json!([
            {"id": "call_1_3", "name": "shell", "arguments": r#"{"command":["cat","src/lib.rs"]}"#},
            {"id": "call_parallel", "name": "shell", "arguments": r#"{"command":["ls","-la","src"]}"#},
            {"id": "call_1_5", "name": "apply_patch", "arguments": json!({"input": PATCH}).to_string()},
        ])
    );
    assert_eq!(create["finish_reason"], "tool_calls");
    let usage = json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                       "prompt_tokens_details": {"cached_tokens": 40},
                       "completion_tokens_details": {"reasoning_tokens": 8}});
    assert_eq!(create["usage"], json!([usage]));
    assert_eq!(create["last_has_choices"], false, "the usage chunk has `choices: []`");

    // `chat.completions.stream()`: the SDK assembles the tool calls and parses their arguments.
    let helper = &report["helper"];
    assert_eq!(helper["content"], "Let me look at the code: ✓.");
    assert_eq!(helper["finish_reason"], "tool_calls");
    let calls: Vec<(&str, &str, &Value)> = helper["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["name"].as_str().unwrap(), &c["parsed_arguments"]))
        .collect();
    assert_eq!(
        calls,
        [
            ("call_2_3", "shell", &json!({"command": ["cat", "src/lib.rs"]})),
            ("call_parallel", "shell", &json!({"command": ["ls", "-la", "src"]})),
            ("call_2_5", "apply_patch", &json!({"input": PATCH})),
        ]
    );
    assert_eq!(helper["arguments_done"].as_array().unwrap().len(), 3);
    assert_eq!(helper["usage"], usage);

    assert_faults(&report);
    // A mid-stream `{"error": …}` chunk: the SDK raises it with the scripted code.
    let failed = &report["failed"];
    assert_eq!((&failed["class"], &failed["code"]), (&json!("APIError"), &json!("server_error")));
    assert_eq!(failed["message"], "the model broke");
}
