//! The Chat Completions client against the scripted model server: request translation, chunk
//! assembly, freeform tools as functions, usage, retries and the errors a user sees.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use common::{PATCH, request, run, serve};
use errand_model::{Item, ModelClient, ModelConfig, ModelError, ModelProgress, Provider, Role};
use errand_protocol::TokenUsage;
use errand_testkit::ScriptedModel;
use serde_json::{Value, json};

fn client(server: &ScriptedModel, max_retries: u32) -> ModelClient {
    let config = common::config(server.base_url(), Provider::ChatCompletions, max_retries);
    ModelClient::new(ModelConfig { api_key: None, ..config }).unwrap()
}

#[tokio::test]
async fn text_two_tool_calls_and_a_freeform_patch_round_trip() {
    let server = serve(&format!(
        r#"
        [[turns]]
        expect.tools = ["shell", "apply_patch"]
        expect.last_user_message_contains = ["fix the test"]
        [[turns.output]]
        type = "reasoning"
        summary = "think"
        [[turns.output]]
        type = "message"
        text = "Looking at the code."
        [[turns.output]]
        type = "function_call"
        name = "shell"
        arguments = {{ command = ["cat", "a.rs"] }}
        [[turns.output]]
        type = "custom_tool_call"
        name = "apply_patch"
        input = {PATCH:?}
        [turns.usage]
        input_tokens = 120
        cached_tokens = 30
        output_tokens = 15

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
    assert_eq!(
        turn.items,
        [
            Item::Message { role: Role::Assistant, text: "Looking at the code.".into() },
            Item::FunctionCall {
                call_id: "call_1_3".into(),
                name: "shell".into(),
                arguments: r#"{"command":["cat","a.rs"]}"#.into(),
            },
            Item::CustomToolCall {
                call_id: "call_1_4".into(),
                name: "apply_patch".into(),
                input: PATCH.into(),
            },
        ]
    );
    assert_eq!(turn.usage, TokenUsage { input: 120, cached_input: 30, output: 15, reasoning: 0 });
    let text: String = seen
        .iter()
        .filter_map(|p| match p {
            ModelProgress::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Looking at the code.");
    assert!(seen.iter().any(|p| matches!(p, ModelProgress::ReasoningDelta(_))));

    // Second turn: the calls and their outputs go back as one assistant message and tool messages.
    let mut next = turn.items.clone();
    next.push(Item::FunctionCallOutput { call_id: "call_1_3".into(), output: "fn x()".into() });
    next.push(Item::CustomToolCallOutput { call_id: "call_1_4".into(), output: "Done!".into() });
    let (turn, _) = run(&client, &request(next)).await;
    assert_eq!(
        turn.unwrap().items,
        [Item::Message { role: Role::Assistant, text: "Fixed.".into() }]
    );
    server.verify().unwrap();

    let body = &server.requests()[1];
    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "system", "user", "assistant", "assistant", "tool", "tool"]);
    assert_eq!(messages[0]["content"], "You are Errand.");
    assert_eq!(messages[1]["content"], "AGENTS.md: run tests");
    assert_eq!(messages[3]["content"], "Looking at the code.");
    let calls = messages[4]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "call_1_3");
    assert_eq!(calls[1]["function"]["name"], "apply_patch");
    let patch: Value =
        serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(patch, json!({"input": PATCH}));
    assert_eq!(
        messages[6],
        json!({"role": "tool", "tool_call_id": "call_1_4", "content": "Done!"})
    );
}

#[tokio::test]
async fn request_body_shape() {
    let server = serve("[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"ok\"\n").await;
    let (turn, _) = run(&client(&server, 0), &request(vec![])).await;
    turn.unwrap();
    let body = &server.requests()[0];
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["parallel_tool_calls"], true);
    assert!(body.get("input").is_none() && body.get("instructions").is_none());
    assert_eq!(body["messages"][0], json!({"role": "system", "content": "You are Errand."}));
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "shell");
    assert_eq!(
        body["tools"][0]["function"]["parameters"]["properties"]["command"]["type"],
        "array"
    );
    assert_eq!(
        body["tools"][1]["function"],
        json!({"name": "apply_patch", "description": "Applies a patch.", "parameters": {
            "type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}})
    );
    assert_eq!(
        server.request_header(0, "accept").as_deref(),
        Some("text/event-stream"),
        "streams are asked for"
    );
}

#[tokio::test]
async fn rate_limit_is_retried_then_succeeds() {
    let server = serve(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "ok"
        [turns.fault]
        status = 429
        retry_after_ms = 5
        "#,
    )
    .await;
    let (turn, seen) = run(&client(&server, 2), &request(vec![])).await;
    assert_eq!(turn.unwrap().items, [Item::Message { role: Role::Assistant, text: "ok".into() }]);
    let retries: Vec<&ModelProgress> =
        seen.iter().filter(|p| matches!(p, ModelProgress::Retrying { .. })).collect();
    assert!(
        matches!(retries[..], [ModelProgress::Retrying { attempt: 1, error, .. }] if error.starts_with("HTTP 429")),
        "{retries:?}"
    );
    assert_eq!(server.requests().len(), 2);
    server.verify().unwrap();
}

#[tokio::test]
async fn stream_failure_and_drop_are_retried() {
    let server = serve(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "one"
        [turns.fault]
        failed = "server_error"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "two"
        [turns.fault]
        drop_after_events = 2
        "#,
    )
    .await;
    let client = client(&server, 1);
    let (turn, _) = run(&client, &request(vec![])).await;
    assert_eq!(turn.unwrap().items, [Item::Message { role: Role::Assistant, text: "one".into() }]);
    let (turn, seen) = run(&client, &request(vec![])).await;
    assert_eq!(turn.unwrap().items, [Item::Message { role: Role::Assistant, text: "two".into() }]);
    assert!(
        seen.iter().any(|p| matches!(p, ModelProgress::Retrying { error, .. }
            if error.contains("before [DONE]"))),
        "{seen:?}"
    );
    server.verify().unwrap();
}

#[tokio::test]
async fn not_found_names_the_chat_completions_endpoint() {
    let server = serve(
        "[[turns]]\n[turns.fault]\nstatus = 404\nmessage = \"The model `test-model` does not exist\"\n",
    )
    .await;
    let (turn, _) = run(&client(&server, 3), &request(vec![])).await;
    let error = turn.unwrap_err();
    assert!(matches!(error, ModelError::NotFound { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains(&format!("endpoint `{}/chat/completions` not found", server.base_url())),
        "{text}"
    );
    assert!(text.contains("does not exist"), "{text}");
    assert_eq!(server.requests().len(), 1, "a 404 is not retried");
}
