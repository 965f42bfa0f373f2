//! The Anthropic Messages client against the scripted model server: headers, request
//! translation, block assembly, thinking round trips, usage, retries and the errors a user sees.

use std::time::Duration;

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use common::{PATCH, request, run, serve};
use errand_model::{Item, ModelClient, ModelConfig, ModelError, ModelProgress, Provider, Role};
use errand_protocol::TokenUsage;
use errand_testkit::ScriptedModel;
use serde_json::{Value, json};

fn config(server: &ScriptedModel, max_retries: u32) -> ModelConfig {
    ModelConfig {
        model: "claude-test".into(),
        api_key: Some("sk-ant-test".into()),
        reasoning_effort: Some("low".into()),
        ..common::config(server.base_url(), Provider::Anthropic, max_retries)
    }
}

fn client(server: &ScriptedModel, max_retries: u32) -> ModelClient {
    ModelClient::new(config(server, max_retries)).unwrap()
}

fn retries(seen: &[ModelProgress]) -> Vec<String> {
    seen.iter()
        .filter_map(|p| match p {
            ModelProgress::Retrying { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

const OK: &str = "[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"ok\"\n";

#[tokio::test]
async fn a_turn_of_thinking_text_and_parallel_calls_round_trips() {
    let server = serve(&format!(
        r#"
        [[turns]]
        expect.tools = ["shell", "apply_patch"]
        expect.last_user_message_contains = ["fix the test"]
        [[turns.output]]
        type = "reasoning"
        summary = "Two things to check."
        encrypted_content = "EqQBCgIYAhIM1gbcDa9G+/=="
        [[turns.output]]
        type = "message"
        text = "Looking at the code."
        [[turns.output]]
        type = "function_call"
        name = "shell"
        call_id = "toolu_01A"
        arguments = {{ command = ["cat", "a.rs"] }}
        [[turns.output]]
        type = "function_call"
        name = "shell"
        call_id = "toolu_01B"
        arguments = {{ command = ["cat", "b.rs"] }}
        [[turns.output]]
        type = "custom_tool_call"
        name = "apply_patch"
        call_id = "toolu_01C"
        input = {PATCH:?}
        [turns.usage]
        input_tokens = 1200
        cached_tokens = 1000
        output_tokens = 80

        [[turns]]
        expect.last_tool_output_contains = ["Done!"]
        [[turns.output]]
        type = "message"
        text = "Fixed."
        "#
    ))
    .await;
    let client = client(&server, 0);
    let (turn, seen) = run(&client, &request(vec![])).await;
    let turn = turn.unwrap();
    let call = |id: &str, file: &str| Item::FunctionCall {
        call_id: id.into(),
        name: "shell".into(),
        arguments: format!(r#"{{"command":["cat","{file}"]}}"#),
    };
    assert_eq!(
        turn.items,
        [
            Item::Reasoning {
                id: "thinking_msg_1_0".into(),
                summary: vec!["Two things to check.".into()],
                encrypted_content: Some("EqQBCgIYAhIM1gbcDa9G+/==".into()),
            },
            Item::Message { role: Role::Assistant, text: "Looking at the code.".into() },
            call("toolu_01A", "a.rs"),
            call("toolu_01B", "b.rs"),
            Item::CustomToolCall {
                call_id: "toolu_01C".into(),
                name: "apply_patch".into(),
                input: PATCH.into(),
            },
        ]
    );
    assert_eq!(
        turn.usage,
        TokenUsage { input: 1200, cached_input: 1000, output: 80, reasoning: 0 }
    );
    assert_eq!(turn.response_id.as_deref(), Some("msg_1"));
    let streamed = |thinking: bool| -> String {
        seen.iter()
            .filter_map(|p| match p {
                ModelProgress::TextDelta(t) if !thinking => Some(t.as_str()),
                ModelProgress::ReasoningDelta(t) if thinking => Some(t.as_str()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(streamed(false), "Looking at the code.");
    assert_eq!(streamed(true), "Two things to check.");

    // The agent records the turn as it came, then each call's output in order: the calls go
    // back together after the thinking block exactly as it came, and the results together after
    // them, with the API's own ids.
    let mut next = turn.items.clone();
    for item in &turn.items {
        match item {
            Item::FunctionCall { call_id, .. } => next.push(Item::FunctionCallOutput {
                call_id: call_id.clone(),
                output: "fn x()".into(),
            }),
            Item::CustomToolCall { call_id, .. } => next.push(Item::CustomToolCallOutput {
                call_id: call_id.clone(),
                output: "Done!".into(),
            }),
            _ => {}
        }
    }
    let (turn, _) = run(&client, &request(next)).await;
    assert_eq!(
        turn.unwrap().items,
        [Item::Message { role: Role::Assistant, text: "Fixed.".into() }]
    );
    server.verify().unwrap();

    let body = &server.requests()[1];
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        messages[1]["content"],
        json!([
            {"type": "thinking", "thinking": "Two things to check.",
                "signature": "EqQBCgIYAhIM1gbcDa9G+/=="},
            {"type": "text", "text": "Looking at the code."},
            {"type": "tool_use", "id": "toolu_01A", "name": "shell",
                "input": {"command": ["cat", "a.rs"]}},
            {"type": "tool_use", "id": "toolu_01B", "name": "shell",
                "input": {"command": ["cat", "b.rs"]}},
            {"type": "tool_use", "id": "toolu_01C", "name": "apply_patch",
                "input": {"input": PATCH}},
        ])
    );
    let results: Vec<(&str, &str)> = messages[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["type"].as_str().unwrap(), b["tool_use_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        results,
        [("tool_result", "toolu_01A"), ("tool_result", "toolu_01B"), ("tool_result", "toolu_01C")]
    );
}

#[tokio::test]
async fn request_headers_and_body() {
    let server = serve(OK).await;
    run(&client(&server, 0), &request(vec![])).await.0.unwrap();
    assert_eq!(server.request_header(0, "x-api-key").as_deref(), Some("sk-ant-test"));
    assert_eq!(server.request_header(0, "anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(server.request_header(0, "authorization"), None, "the key is not a bearer token");
    assert_eq!(server.request_header(0, "accept").as_deref(), Some("text/event-stream"));

    let body = &server.requests()[0];
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["max_tokens"], 32000);
    assert_eq!(body["stream"], true);
    assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 4000}));
    assert_eq!(body["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": false}));
    assert_eq!(body["system"][0]["text"], "You are Errand.");
    assert_eq!(body["system"][1]["text"], "AGENTS.md: run tests");
    assert_eq!(body["system"][1]["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(body["tools"][0]["input_schema"]["properties"]["command"]["type"], "array");
    assert_eq!(body["tools"][1]["input_schema"]["required"], json!(["input"]));
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert!(body.get("input").is_none() && body.get("instructions").is_none());
}

#[tokio::test]
async fn malformed_arguments_split_across_chunks_reach_the_agent_verbatim() {
    let server = serve(
        r#"
        [[turns]]
        [[turns.output]]
        type = "function_call"
        name = "shell"
        arguments = '{"command": ["cargo", "te'
        "#,
    )
    .await;
    let (turn, _) = run(&client(&server, 0), &request(vec![])).await;
    assert_eq!(
        turn.unwrap().items,
        [Item::FunctionCall {
            call_id: "call_1_1".into(),
            name: "shell".into(),
            arguments: r#"{"command": ["cargo", "te"#.into(),
        }]
    );
}

#[tokio::test]
async fn overloaded_529_is_retried_after_the_servers_wait() {
    let server = serve(&format!("{OK}[turns.fault]\nstatus = 529\nretry_after = 0\n")).await;
    let (turn, seen) = run(&client(&server, 2), &request(vec![])).await;
    assert_eq!(turn.unwrap().items, [Item::Message { role: Role::Assistant, text: "ok".into() }]);
    assert_eq!(retries(&seen), ["HTTP 529: scripted fault: HTTP 529"]);
    let delay = seen.iter().find_map(|p| match p {
        ModelProgress::Retrying { delay, .. } => Some(*delay),
        _ => None,
    });
    assert_eq!(delay, Some(Duration::ZERO), "retry-after is honoured");
    assert_eq!(server.requests().len(), 2);
    server.verify().unwrap();
}

#[tokio::test]
async fn an_overloaded_error_mid_stream_and_a_dropped_stream_are_retried() {
    let server = serve(&format!(
        "{OK}[turns.fault]\nfailed = \"overloaded_error\"\nmessage = \"Overloaded\"\n\
         {OK}[turns.fault]\ndrop_after_events = 3\n"
    ))
    .await;
    let client = client(&server, 1);
    let (turn, seen) = run(&client, &request(vec![])).await;
    assert_eq!(turn.unwrap().items, [Item::Message { role: Role::Assistant, text: "ok".into() }]);
    let errors = retries(&seen);
    assert!(
        matches!(&errors[..], [e] if e.contains("overloaded_error") && e.contains("Overloaded"))
    );
    let (turn, seen) = run(&client, &request(vec![])).await;
    turn.unwrap();
    assert!(retries(&seen)[0].contains("before message_stop"), "{seen:?}");
    server.verify().unwrap();
}

#[tokio::test]
async fn an_error_event_that_is_not_transient_fails_the_turn() {
    let server =
        serve(&format!("{OK}[turns.fault]\nfailed = \"invalid_request_error\"\ntimes = 3\n")).await;
    let (turn, _) = run(&client(&server, 3), &request(vec![])).await;
    let error = turn.unwrap_err();
    assert!(matches!(error, ModelError::TurnFailed { .. }), "{error:?}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_prompt_too_long_is_a_context_length_error_not_retried() {
    let server = serve(&format!(
        "{OK}[turns.fault]\nstatus = 400\ncode = \"context_length_exceeded\"\ntimes = 3\n"
    ))
    .await;
    let (turn, _) = run(&client(&server, 3), &request(vec![])).await;
    let error = turn.unwrap_err();
    let ModelError::ContextLengthExceeded { message, .. } = &error else { panic!("{error:?}") };
    assert!(message.starts_with("prompt is too long: "), "{message}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_refused_or_missing_key_names_anthropic_api_key() {
    let server = serve(&format!("{OK}[turns.fault]\nstatus = 401\n")).await;
    let (turn, _) = run(&client(&server, 3), &request(vec![])).await;
    let error = turn.unwrap_err();
    assert!(matches!(error, ModelError::Unauthorized { status: 401, .. }), "{error:?}");
    assert!(error.to_string().contains("check ANTHROPIC_API_KEY"), "{error}");
    assert_eq!(server.requests().len(), 1, "a 401 is not retried");

    let keyless = ModelClient::new(ModelConfig { api_key: None, ..config(&server, 0) }).unwrap();
    let error = run(&keyless, &request(vec![])).await.0.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("x-api-key header is required"), "{text}");
    assert!(text.contains("ANTHROPIC_API_KEY"), "{text}");
}

#[tokio::test]
async fn an_unknown_reasoning_effort_is_refused_up_front() {
    let server = serve(OK).await;
    let config = ModelConfig { reasoning_effort: Some("max".into()), ..config(&server, 0) };
    let error = ModelClient::new(config).unwrap_err();
    assert!(error.to_string().contains("model.reasoning_effort = \"max\""), "{error}");
    let body: Value = json!(server.requests());
    assert_eq!(body, json!([]));
}
