//! Proof that the fake is real: the official OpenAI and Anthropic Python SDKs consume every kind
//! of turn and fault the scripted model streams (Responses, Chat Completions, Messages), parse
//! each event into their own typed models, and see tool calls, usage and errors exactly as
//! scripted. When an SDK rejects something, the fake is wrong.
//!
//! `tests/sdk/drive.py` runs the SDKs, one suite per wire protocol, and prints what they made of
//! each answer; its steps consume the turns of [`script`] in order. The SDKs are pinned in
//! `tests/sdk/requirements.txt` and installed from PyPI into a venv built once under
//! `CARGO_TARGET_TMPDIR` (`errand_testkit::python`).

use std::path::PathBuf;

use errand_testkit::{Script, ScriptedModel};
use serde_json::{Value, json};

const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk");

/// The venv's python with the pinned SDKs, built on first use; `None` (skip) when this machine
/// has no python3 with `venv`, which CI must have.
async fn sdk_python() -> Option<PathBuf> {
    let requirements = PathBuf::from(format!("{SDK_DIR}/requirements.txt"));
    errand_testkit::python::pinned_venv(&requirements, env!("CARGO_TARGET_TMPDIR").as_ref()).await
}

/// Serves `script` and runs `drive.py <suite>` against it: the driver's report (after checking
/// that the SDK found no problem and every turn was consumed) and the server, for its requests.
async fn drive(suite: &str, script: &str) -> Option<(Value, ScriptedModel)> {
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
    Some((report, model))
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

/// How an SDK reports the errors of [`FAULTS`]: `(error class, kind)` of the 429, the 401, the
/// 400 and each server error, where the kind is the API's machine-readable one (OpenAI's `code`,
/// Anthropic's error `type`).
struct Errors {
    rate_limited: (&'static str, &'static str),
    unauthorized: (&'static str, &'static str),
    context_length: (&'static str, &'static str),
    server: [(&'static str, &'static str); 4],
}

const OPENAI_ERRORS: Errors = Errors {
    rate_limited: ("RateLimitError", "rate_limit_exceeded"),
    unauthorized: ("AuthenticationError", "invalid_api_key"),
    context_length: ("BadRequestError", "context_length_exceeded"),
    server: [("InternalServerError", "server_error"); 4],
};

/// What every SDK must make of [`FAULTS`]: typed errors, the rate limit's `Retry-After` honoured,
/// and the turn served after each fault.
fn assert_faults(report: &Value, expected: &Errors) {
    fn error(e: &Value) -> (&str, &str) {
        (e["class"].as_str().unwrap(), e["kind"].as_str().unwrap_or("none"))
    }
    assert_eq!(error(&report["rate_limited"]), expected.rate_limited);
    assert_eq!(report["rate_limited"]["status"], 429);
    assert_eq!(report["rate_limited"]["retry_after"], "7");
    // One retry, after exactly the server's wish (the SDKs' own backoff is under 8 s, jittered).
    assert_eq!(report["rate_limited_sleeps"], json!([7.0]));
    assert_eq!(report["rate_limited_then"], "after the rate limit");

    assert_eq!(error(&report["unauthorized"]), expected.unauthorized);
    assert_eq!(report["unauthorized"]["status"], 401);
    assert_eq!(report["unauthorized_then"], "after 401");

    assert_eq!(error(&report["context_length"]), expected.context_length);
    assert_eq!(report["context_length"]["status"], 400);
    assert!(report["context_length"]["message"].as_str().unwrap().contains("300000 tokens"));
    assert_eq!(report["context_length_then"], "after context_length_exceeded");

    let server = report["server_errors"].as_array().unwrap();
    let got: Vec<(&str, &str)> = server.iter().map(error).collect();
    assert_eq!(got, expected.server);
    let statuses: Vec<&Value> = server.iter().map(|e| &e["status"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(502), &json!(503), &json!(529)]);
    assert_eq!(
        report["server_errors_then"],
        json!(["after 500", "after 502", "after 503", "after 529"])
    );

    assert_eq!(report["failed_then"], "after the failure");
    assert_eq!(report["dropped_then"], "after the drop");
}

const PATCH: &str = "*** Begin Patch\n*** Update File: a.txt\n-\"old\"\n+new\n*** End Patch\n";

#[tokio::test]
async fn openai_sdk_reads_the_responses_stream() {
    let Some((report, _)) = drive("responses", &script()).await else { return };

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
        json!({"input_tokens": 100,
               "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 0},
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

    assert_faults(&report, &OPENAI_ERRORS);
    // A connection cut mid-stream is the SDK's connection error, not a parse error.
    assert_eq!(report["dropped"]["class"], "APIConnectionError");
    // `response.failed`: the typed event with its error, and no final response.
    let failed = &report["failed"];
    assert_eq!(failed["types"].as_array().unwrap().last().unwrap(), "response.failed");
    assert_eq!(failed["error"], json!({"code": "server_error", "message": "the model broke"}));
    assert_eq!(failed["final_error"], "Didn't receive a `response.completed` event.");
}

#[tokio::test]
async fn openai_sdk_reads_chat_completions() {
    let Some((report, _)) = drive("chat", &script()).await else { return };

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

    assert_faults(&report, &OPENAI_ERRORS);
    assert_eq!(report["dropped"]["class"], "APIConnectionError");
    // A mid-stream `{"error": …}` chunk: the SDK raises it with the scripted code.
    let failed = &report["failed"];
    assert_eq!((&failed["class"], &failed["code"]), (&json!("APIError"), &json!("server_error")));
    assert_eq!(failed["message"], "the model broke");
}

#[tokio::test]
async fn anthropic_sdk_reads_the_messages_stream() {
    let Some((report, model)) = drive("anthropic", &script()).await else { return };
    // This SDK sends the key as a bearer token, not in `x-api-key`: the server must take both.
    assert_eq!(
        model.request_header(0, "authorization").as_deref(),
        Some("Bearer sk-test-conformance")
    );
    assert!(model.request_header(0, "anthropic-version").is_some());

    // `messages.create(stream=True)`: every raw event typed (the SDK skips `ping`), in order.
    let create = &report["create"];
    let types: Vec<&str> =
        create["types"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"message_start"));
    assert_eq!(types[types.len() - 2..], ["message_delta", "message_stop"]);
    let count = |kind: &str| types.iter().filter(|t| **t == kind).count();
    assert_eq!((count("content_block_start"), count("content_block_stop")), (5, 5));
    let blocks = create["blocks"].as_array().unwrap();
    let block = |i: usize| (&blocks[i]["start"], &blocks[i]["deltas"]);
    assert_eq!(
        block(0),
        (
            &json!({"type": "thinking", "thinking": "", "signature": ""}),
            &json!({"thinking_delta": "The test fails; read the file first.",
                    "signature_delta": "sig_1_1"})
        )
    );
    assert_eq!(
        block(1),
        (
            &json!({"type": "text", "text": ""}),
            &json!({"text_delta": "Let me look at the code: ✓."})
        )
    );
    let tool = |id: &str, name: &str, input: &str| {
        (
            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            json!({"input_json_delta": input}),
        )
    };
    let two = (blocks[2]["start"].clone(), blocks[2]["deltas"].clone());
    assert_eq!(two, tool("call_1_3", "shell", r#"{"command":["cat","src/lib.rs"]}"#));
    let three = (blocks[3]["start"].clone(), blocks[3]["deltas"].clone());
    assert_eq!(three, tool("call_parallel", "shell", r#"{"command":["ls","-la","src"]}"#));
    let four = (blocks[4]["start"].clone(), blocks[4]["deltas"].clone());
    assert_eq!(four, tool("call_1_5", "apply_patch", &json!({"input": PATCH}).to_string()));
    assert_eq!(create["stop_reason"], "tool_use");
    // Anthropic's input tokens exclude cache reads: 100 scripted, 40 of them cached.
    let start_usage = &create["message_start"]["usage"];
    assert_eq!(
        (&start_usage["input_tokens"], &start_usage["cache_read_input_tokens"]),
        (&json!(60), &json!(40))
    );
    assert_eq!(
        create["final_usage"],
        json!({"input_tokens": 60, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 40, "output_tokens": 20})
    );

    // `messages.stream()` + `get_final_message()`: the SDK's blocks, tool inputs parsed.
    let helper = &report["helper"];
    assert_eq!(helper["id"], "msg_2");
    assert_eq!(
        helper["content"],
        json!([
            {"type": "thinking", "thinking": "The test fails; read the file first.",
             "signature": "sig_2_1"},
            {"type": "text", "text": "Let me look at the code: ✓."},
            {"type": "tool_use", "id": "call_2_3", "name": "shell",
             "input": {"command": ["cat", "src/lib.rs"]}},
            {"type": "tool_use", "id": "call_parallel", "name": "shell",
             "input": {"command": ["ls", "-la", "src"]}},
            {"type": "tool_use", "id": "call_2_5", "name": "apply_patch", "input": {"input": PATCH}},
        ])
    );
    assert_eq!(helper["stop_reason"], "tool_use");
    let usage = &helper["usage"];
    assert_eq!((&usage["input_tokens"], &usage["output_tokens"]), (&json!(60), &json!(20)));

    assert_faults(
        &report,
        &Errors {
            rate_limited: ("RateLimitError", "rate_limit_error"),
            unauthorized: ("AuthenticationError", "authentication_error"),
            context_length: ("BadRequestError", "invalid_request_error"),
            server: [
                ("InternalServerError", "api_error"),
                ("InternalServerError", "api_error"),
                ("ServiceUnavailableError", "api_error"),
                ("OverloadedError", "overloaded_error"),
            ],
        },
    );
    // An `error` event mid-stream (HTTP 200 already sent): a status error with the event's body.
    let failed = &report["failed"];
    assert_eq!((&failed["class"], &failed["status"]), (&json!("APIStatusError"), &json!(200)));
    assert_eq!(failed["body"]["error"], json!({"type": "api_error", "message": "the model broke"}));
    // This SDK lets the HTTP library's error through when a stream is cut.
    assert_eq!(report["dropped"]["class"], "RemoteProtocolError");
    assert!(report["dropped"]["message"].as_str().unwrap().contains("incomplete chunked read"));
}
