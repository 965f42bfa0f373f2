//! The Responses client against the scripted model server: wire format, streaming, retries and
//! the errors a user sees.

use std::time::Duration;

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use common::{run, serve};
use errand_model::{
    FreeformFormat, Item, ModelClient, ModelConfig, ModelError, ModelProgress, ModelRequest, Role,
    ToolSpec,
};
use errand_protocol::TokenUsage;
use errand_testkit::ScriptedModel;
use serde_json::json;

fn config(base_url: String, max_retries: u32) -> ModelConfig {
    common::config(base_url, errand_model::Provider::Responses, max_retries)
}

fn client(server: &ScriptedModel, max_retries: u32) -> ModelClient {
    ModelClient::new(config(server.base_url(), max_retries)).unwrap()
}

fn request() -> ModelRequest {
    ModelRequest {
        instructions: "You are Errand.".into(),
        input: vec![
            Item::Message { role: Role::Developer, text: "AGENTS.md says: run cargo test".into() },
            Item::Message { role: Role::User, text: "fix the test".into() },
        ],
        tools: vec![
            ToolSpec::Function {
                name: "shell".into(),
                description: "Runs a command.".into(),
                parameters: json!({"type": "object", "properties": {"command": {"type": "array"}}}),
            },
            ToolSpec::Freeform {
                name: "apply_patch".into(),
                description: "Applies a patch.".into(),
                format: Some(FreeformFormat {
                    syntax: "lark".into(),
                    definition: "start: x".into(),
                }),
            },
        ],
        parallel_tool_calls: false,
    }
}

fn retries(seen: &[ModelProgress]) -> Vec<(u32, String)> {
    seen.iter()
        .filter_map(|p| match p {
            ModelProgress::Retrying { attempt, error, .. } => Some((*attempt, error.clone())),
            _ => None,
        })
        .collect()
}

const PATCH: &str =
    "*** Begin Patch\n*** Update File: src/lib.rs\n@@\n-    a - b\n+    a + b\n*** End Patch\n";

#[tokio::test]
async fn parses_text_tool_calls_reasoning_and_usage() {
    let server = serve(&format!(
        r#"
        [[turns]]
        expect.tools = ["shell", "apply_patch"]
        expect.last_user_message_contains = ["fix the test"]
        [[turns.output]]
        type = "reasoning"
        summary = "Read the failing test first."
        encrypted_content = "opaque-blob"
        [[turns.output]]
        type = "message"
        text = "Looking at the code."
        [[turns.output]]
        type = "function_call"
        name = "shell"
        arguments = {{ command = ["cat", "src/lib.rs"] }}
        [[turns.output]]
        type = "custom_tool_call"
        name = "apply_patch"
        input = '''
{PATCH}'''
        [[turns.output]]
        type = "function_call"
        name = "shell"
        arguments = '{{"command": ["ls"'
        [turns.usage]
        input_tokens = 1200
        cached_tokens = 1000
        output_tokens = 80
        reasoning_tokens = 30
        "#
    ))
    .await;
    let (turn, seen) = run(&client(&server, 0), &request()).await;
    let turn = turn.unwrap();
    assert_eq!(
        turn.items,
        vec![
            Item::Reasoning {
                id: "rs_1_1".into(),
                summary: vec!["Read the failing test first.".into()],
                encrypted_content: Some("opaque-blob".into()),
            },
            Item::Message { role: Role::Assistant, text: "Looking at the code.".into() },
            Item::FunctionCall {
                call_id: "call_1_3".into(),
                name: "shell".into(),
                arguments: r#"{"command":["cat","src/lib.rs"]}"#.into(),
            },
            Item::CustomToolCall {
                call_id: "call_1_4".into(),
                name: "apply_patch".into(),
                input: PATCH.into()
            },
            // Malformed arguments reach the agent verbatim, for it to report back to the model.
            Item::FunctionCall {
                call_id: "call_1_5".into(),
                name: "shell".into(),
                arguments: r#"{"command": ["ls""#.into(),
            },
        ]
    );
    assert_eq!(
        turn.usage,
        TokenUsage { input: 1200, cached_input: 1000, output: 80, reasoning: 30 }
    );
    assert_eq!(turn.response_id.as_deref(), Some("resp_1"));

    let text: String = seen
        .iter()
        .filter_map(|p| if let ModelProgress::TextDelta(d) = p { Some(d.as_str()) } else { None })
        .collect();
    let reasoning: String = seen
        .iter()
        .filter_map(
            |p| if let ModelProgress::ReasoningDelta(d) = p { Some(d.as_str()) } else { None },
        )
        .collect();
    assert_eq!(text, "Looking at the code.");
    assert_eq!(reasoning, "Read the failing test first.");
    assert!(seen.iter().filter(|p| matches!(p, ModelProgress::TextDelta(_))).count() > 1);
    server.verify().unwrap();
}

#[tokio::test]
async fn request_carries_items_and_tools_in_wire_form() {
    let server = serve(
        "[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"ok\"\n\
         [[turns]]\nexpect.last_tool_output_contains = [\"1 passed\"]\n\
         [[turns.output]]\ntype = \"message\"\ntext = \"done\"",
    )
    .await;
    let client = client(&server, 0);
    run(&client, &request()).await.0.unwrap();

    let mut followup = request();
    followup.parallel_tool_calls = true;
    followup.input.extend([
        Item::Reasoning {
            id: "rs_1".into(),
            summary: vec!["think".into()],
            encrypted_content: Some("enc".into()),
        },
        Item::Reasoning {
            id: "rs_2".into(),
            summary: vec!["no blob".into()],
            encrypted_content: None,
        },
        Item::Message { role: Role::Assistant, text: "Running tests.".into() },
        Item::FunctionCall {
            call_id: "c1".into(),
            name: "shell".into(),
            arguments: "{\"command\":[\"cargo\",\"test\"]}".into(),
        },
        Item::FunctionCallOutput { call_id: "c1".into(), output: "exit 1".into() },
        Item::CustomToolCall {
            call_id: "c2".into(),
            name: "apply_patch".into(),
            input: PATCH.into(),
        },
        Item::CustomToolCallOutput {
            call_id: "c2".into(),
            output: "test result: ok. 1 passed".into(),
        },
    ]);
    let turn = run(&client, &followup).await.0.unwrap();
    assert_eq!(turn.items, [Item::Message { role: Role::Assistant, text: "done".into() }]);

    let requests = server.requests();
    assert_eq!(
        requests[1],
        json!({
            "model": "test-model",
            "instructions": "You are Errand.",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "AGENTS.md says: run cargo test"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the test"}]},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}], "encrypted_content": "enc"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Running tests."}]},
                {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{\"command\":[\"cargo\",\"test\"]}"},
                {"type": "function_call_output", "call_id": "c1", "output": "exit 1"},
                {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": PATCH},
                {"type": "custom_tool_call_output", "call_id": "c2", "output": "test result: ok. 1 passed"},
            ],
            "tools": [
                {"type": "function", "name": "shell", "description": "Runs a command.",
                 "parameters": {"type": "object", "properties": {"command": {"type": "array"}}}, "strict": false},
                {"type": "custom", "name": "apply_patch", "description": "Applies a patch.",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": true,
            "stream": true,
            "store": false,
        })
    );
    assert_eq!(server.request_header(0, "authorization").as_deref(), Some("Bearer sk-test"));
    assert_eq!(server.request_header(0, "accept").as_deref(), Some("text/event-stream"));
    server.verify().unwrap();
}

#[tokio::test]
async fn reasoning_effort_and_no_key() {
    let server = serve("[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"ok\"").await;
    let mut config = config(server.base_url(), 0);
    config.reasoning_effort = Some("high".into());
    config.api_key = None;
    run(&ModelClient::new(config).unwrap(), &request()).await.0.unwrap();
    let body = &server.requests()[0];
    assert_eq!(body["reasoning"], json!({"effort": "high", "summary": "auto"}));
    assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(server.request_header(0, "authorization"), None);
}

/// A one-message turn after `fault` (TOML lines of `[turns.fault]`).
async fn faulty(fault: &str) -> ScriptedModel {
    serve(&format!(
        "[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"recovered\"\n[turns.fault]\n{fault}"
    ))
    .await
}

async fn assert_recovers(fault: &str, expected_retries: usize, error_contains: &str) {
    let server = faulty(fault).await;
    let (turn, seen) = run(&client(&server, 4), &request()).await;
    let turn = turn.unwrap_or_else(|e| panic!("fault {fault:?}: {e}"));
    assert_eq!(turn.items, [Item::Message { role: Role::Assistant, text: "recovered".into() }]);
    let retries = retries(&seen);
    assert_eq!(retries.len(), expected_retries, "fault {fault:?}: {retries:?}");
    for (i, (attempt, error)) in retries.iter().enumerate() {
        assert_eq!(*attempt as usize, i + 1);
        assert!(error.contains(error_contains), "fault {fault:?}: {error}");
    }
    assert_eq!(server.requests().len(), expected_retries + 1);
    server.verify().unwrap();
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() {
    assert_recovers("status = 429\nretry_after = 0", 1, "HTTP 429: scripted fault").await;
    assert_recovers("status = 429\nretry_after_ms = 1\ntimes = 2", 2, "HTTP 429").await;
}

#[tokio::test]
async fn server_errors_then_success() {
    assert_recovers("status = 500", 1, "HTTP 500").await;
    assert_recovers("status = 503\ntimes = 3", 3, "HTTP 503").await;
    assert_recovers("status = 529", 1, "HTTP 529").await;
}

#[tokio::test]
async fn dropped_stream_then_success() {
    assert_recovers("drop_after_events = 4", 1, "before response.completed").await;
    assert_recovers("drop_after_events = 0", 1, "before response.completed").await;
}

#[tokio::test]
async fn response_failed_server_error_then_success() {
    assert_recovers("failed = \"server_error\"", 1, "response.failed (server_error)").await;
}

#[tokio::test]
async fn stalled_stream_hits_the_idle_timeout_then_success() {
    let server = faulty("stall_after_events = 3").await;
    let mut config = config(server.base_url(), 2);
    config.idle_timeout = Duration::from_millis(300);
    let (turn, seen) = run(&ModelClient::new(config).unwrap(), &request()).await;
    assert_eq!(turn.unwrap().items.len(), 1);
    let retries = retries(&seen);
    assert_eq!(retries.len(), 1);
    assert!(retries[0].1.contains("stalled"), "{retries:?}");
}

#[tokio::test]
async fn retries_exhausted_carries_the_last_error() {
    let server = faulty("status = 502\ntimes = 10").await;
    let (result, seen) = run(&client(&server, 2), &request()).await;
    let error = result.unwrap_err();
    let ModelError::RetriesExhausted { attempts, last_error } = &error else { panic!("{error}") };
    assert_eq!(*attempts, 3);
    assert!(last_error.contains("HTTP 502"), "{last_error}");
    assert_eq!(retries(&seen).len(), 2);
    assert_eq!(server.requests().len(), 3);
    let text = error.to_string();
    assert!(text.contains("failed 3 times in a row") && text.contains("HTTP 502"), "{text}");
}

#[tokio::test]
async fn unreachable_endpoint_is_retried_then_exhausted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = ModelClient::new(config(format!("http://127.0.0.1:{port}/v1"), 1)).unwrap();
    let (result, seen) = run(&client, &request()).await;
    let error = result.unwrap_err();
    assert!(matches!(error, ModelError::RetriesExhausted { attempts: 2, .. }), "{error}");
    assert!(error.to_string().contains("cannot reach the endpoint"), "{error}");
    assert_eq!(retries(&seen).len(), 1);
}

/// One request, a fatal error, no retry.
async fn fatal(fault: &str) -> (ModelError, ScriptedModel) {
    let server = faulty(fault).await;
    let (result, seen) = run(&client(&server, 4), &request()).await;
    assert!(retries(&seen).is_empty(), "fault {fault:?} must not be retried");
    assert_eq!(server.requests().len(), 1);
    (result.unwrap_err(), server)
}

#[tokio::test]
async fn unauthorized_says_to_check_the_key() {
    for status in [401, 403] {
        let (error, _server) = fatal(&format!(
            "status = {status}\nmessage = \"Incorrect API key provided: sk-te**st\""
        ))
        .await;
        assert!(matches!(error, ModelError::Unauthorized { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains(&format!("HTTP {status}: Incorrect API key provided")), "{text}");
        assert!(text.contains("check OPENAI_API_KEY"), "{text}");
    }
}

#[tokio::test]
async fn not_found_names_model_and_endpoint() {
    let (error, server) =
        fatal("status = 404\nmessage = \"The model `test-model` does not exist\"").await;
    assert_eq!(
        error.to_string(),
        format!(
            "model `test-model` or endpoint `{}/responses` not found (HTTP 404: The model \
             `test-model` does not exist): check ERRAND_MODEL and ERRAND_MODEL_BASE_URL",
            server.base_url()
        )
    );

    // A wrong base URL: the server has no such path.
    let server = serve("[[turns]]").await;
    let client = ModelClient::new(config(format!("{}/v2/", server.base_url()), 3)).unwrap();
    let error = run(&client, &request()).await.0.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&format!("endpoint `{}/v2/responses` not found", server.base_url())),
        "{text}"
    );
}

#[tokio::test]
async fn context_length_exceeded_is_not_retried() {
    for fault in [
        "status = 400\ncode = \"context_length_exceeded\"\nmessage = \"Your input exceeds the context window\"",
        "failed = \"context_length_exceeded\"\nmessage = \"Your input exceeds the context window\"",
    ] {
        let (error, _server) = fatal(fault).await;
        assert!(matches!(error, ModelError::ContextLengthExceeded { .. }), "{error:?}");
        assert!(error.to_string().contains("context window"), "{error}");
    }
}

#[tokio::test]
async fn bad_request_and_quota_are_not_retried() {
    let (error, _server) =
        fatal("status = 400\nmessage = \"Unsupported parameter: 'reasoning'\"").await;
    assert!(matches!(error, ModelError::BadRequest { status: 400, .. }), "{error:?}");
    assert!(error.to_string().contains("Unsupported parameter"), "{error}");

    let (error, _server) = fatal("status = 429\ncode = \"insufficient_quota\"").await;
    assert!(matches!(error, ModelError::QuotaExceeded { .. }), "{error:?}");

    let (error, _server) = fatal("failed = \"invalid_prompt\"\nmessage = \"flagged\"").await;
    assert!(matches!(error, ModelError::TurnFailed { .. }), "{error:?}");
}

#[tokio::test]
async fn script_violation_reaches_the_user_as_bad_request() {
    let server = serve("[[turns]]\nexpect.tools = [\"update_plan\"]").await;
    let error = run(&client(&server, 4), &request()).await.0.unwrap_err();
    assert!(matches!(error, ModelError::BadRequest { .. }), "{error:?}");
    assert!(
        error.to_string().contains("scripted model: turn 1: expected tool `update_plan`"),
        "{error}"
    );
}

#[test]
fn configuration_errors_name_the_setting() {
    let base = ModelConfig::default();
    assert_eq!(base.base_url, "https://api.openai.com/v1");
    assert_eq!(base.max_retries, 4);
    let cases = [
        (
            ModelConfig { base_url: "api.openai.com/v1".into(), ..base.clone() },
            "ERRAND_MODEL_BASE_URL",
        ),
        (ModelConfig { model: " ".into(), ..base.clone() }, "ERRAND_MODEL"),
        (ModelConfig { api_key: Some("sk-\n".into()), ..base.clone() }, "OPENAI_API_KEY"),
        (ModelConfig { idle_timeout: Duration::ZERO, ..base.clone() }, "idle timeout"),
    ];
    for (config, needle) in cases {
        let error = ModelClient::new(config).unwrap_err();
        assert!(matches!(error, ModelError::Config(_)));
        assert!(error.to_string().contains(needle), "{error}");
    }
    assert!(ModelClient::new(base).is_ok());
}
