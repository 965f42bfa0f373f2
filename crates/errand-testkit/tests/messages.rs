//! The scripted server speaks Anthropic's Messages streaming protocol on `POST /v1/messages`,
//! from the same scripts, with Anthropic-shaped errors and the API's header checks.

use errand_testkit::{Script, ScriptedModel};
use serde_json::{Value, json};

async fn start(script: &str) -> ScriptedModel {
    ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap()
}

fn request(user_text: &str) -> Value {
    json!({
        "model": "claude-test",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": user_text}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t0", "name": "shell", "input": {"command": ["ls"]}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t0", "content": "1 passed"}]},
        ],
        "tools": [{"name": "shell", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": false},
        "stream": true,
    })
}

async fn post_with(
    server: &ScriptedModel,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request =
        reqwest::Client::new().post(format!("{}/messages", server.base_url())).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn post(server: &ScriptedModel, body: &Value) -> reqwest::Response {
    post_with(server, body, &[("x-api-key", "sk-ant-test"), ("anthropic-version", "2023-06-01")])
        .await
}

/// `(event name, payload)` of each SSE frame.
fn frames(text: &str) -> Vec<(String, Value)> {
    text.split_terminator("\n\n")
        .map(|frame| {
            let mut lines = frame.lines();
            let event = lines.next().unwrap().strip_prefix("event: ").unwrap().to_string();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            assert!(lines.next().is_none(), "one data line per frame: {frame}");
            (event, serde_json::from_str(data).unwrap())
        })
        .collect()
}

async fn stream_events(server: &ScriptedModel, body: &Value) -> Vec<(String, Value)> {
    let response = post(server, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    frames(&response.text().await.unwrap())
}

const ALL_OUTPUTS: &str = r#"
[[turns]]
expect.last_tool_output_contains = ["1 passed"]
expect.last_user_message_contains = ["fix it"]
expect.tools = ["shell"]
[[turns.output]]
type = "reasoning"
summary = "read the file first"
encrypted_content = "EqQBCgIYAhIM"
[[turns.output]]
type = "message"
text = "Let me look at the code."
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "src/lib.rs"] }
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = "*** Begin Patch\n*** End Patch\n"
[turns.usage]
input_tokens = 100
cached_tokens = 40
output_tokens = 20
reasoning_tokens = 8
"#;

/// The deltas of block `index`, joined, for `field`.
fn joined(events: &[(String, Value)], index: u64, field: &str) -> String {
    events
        .iter()
        .filter(|(kind, p)| kind == "content_block_delta" && p["index"] == index)
        .filter_map(|(_, p)| p["delta"][field].as_str())
        .collect()
}

#[tokio::test]
async fn streams_every_block_type_as_the_api_does() {
    let server = start(ALL_OUTPUTS).await;
    let events = stream_events(&server, &request("fix it")).await;

    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(["content_block_delta"; 4]); // 3 thinking pieces, the signature
    expected.extend(["content_block_stop", "content_block_start"]);
    expected.extend(["content_block_delta"; 3]);
    expected.extend(["content_block_stop", "content_block_start"]);
    expected.extend(["content_block_delta"; 4]); // "" first, then 3 pieces
    expected.extend(["content_block_stop", "content_block_start"]);
    expected.extend(["content_block_delta"; 4]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(kinds, expected);
    for (kind, payload) in &events {
        assert_eq!(payload["type"], kind.as_str());
    }

    assert_eq!(
        events[0].1,
        json!({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-test", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 60, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 40, "output_tokens": 1,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "service_tier": "standard"}}})
    );
    assert_eq!(events[2].1, json!({"type": "ping"}));

    let starts: Vec<&Value> =
        events.iter().filter(|(kind, _)| kind == "content_block_start").map(|(_, p)| p).collect();
    assert_eq!(
        starts,
        [
            &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            &json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "text", "text": ""}}),
            &json!({"type": "content_block_start", "index": 2, "content_block": {
                "type": "tool_use", "id": "call_1_3", "name": "shell", "input": {}}}),
            &json!({"type": "content_block_start", "index": 3, "content_block": {
                "type": "tool_use", "id": "call_1_4", "name": "apply_patch", "input": {}}}),
        ]
    );
    assert_eq!(joined(&events, 0, "thinking"), "read the file first");
    assert_eq!(
        events[6].1,
        json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}})
    );
    assert_eq!(joined(&events, 1, "text"), "Let me look at the code.");
    assert_eq!(joined(&events, 2, "partial_json"), r#"{"command":["cat","src/lib.rs"]}"#);
    let first_piece = events.iter().find(|(_, p)| p["delta"]["type"] == "input_json_delta");
    assert_eq!(first_piece.unwrap().1["delta"]["partial_json"], "");
    let patch: Value = serde_json::from_str(&joined(&events, 3, "partial_json")).unwrap();
    assert_eq!(patch, json!({"input": "*** Begin Patch\n*** End Patch\n"}));
    for (index, delta) in [(0, "thinking_delta"), (1, "text_delta"), (2, "input_json_delta")] {
        assert!(events.iter().any(|(_, p)| p["index"] == index && p["delta"]["type"] == delta));
    }
    let stops: Vec<&Value> =
        events.iter().filter(|(kind, _)| kind == "content_block_stop").map(|(_, p)| p).collect();
    assert_eq!(stops[3], &json!({"type": "content_block_stop", "index": 3}));

    let n = events.len();
    assert_eq!(
        events[n - 2].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"input_tokens": 60, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 40, "output_tokens": 20}})
    );
    assert_eq!(events[n - 1].1, json!({"type": "message_stop"}));
    assert_eq!(server.requests(), vec![request("fix it")]);
    assert_eq!(server.request_header(0, "x-api-key").as_deref(), Some("sk-ant-test"));
    server.verify().unwrap();
}

#[tokio::test]
async fn text_only_ends_the_turn_and_malformed_arguments_stream_verbatim() {
    let server = start(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "Done."
        [[turns]]
        [[turns.output]]
        type = "function_call"
        name = "shell"
        call_id = "toolu_x"
        arguments = '{"command": ["ls"'
        "#,
    )
    .await;
    let events = stream_events(&server, &request("a")).await;
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(joined(&events, 0, "text"), "Done.");
    assert_eq!(events[7].1["delta"]["stop_reason"], "end_turn");

    let events = stream_events(&server, &request("b")).await;
    assert_eq!(events[1].1["content_block"]["id"], "toolu_x");
    assert_eq!(joined(&events, 0, "partial_json"), r#"{"command": ["ls""#);
    server.verify().unwrap();
}

#[tokio::test]
async fn missing_headers_are_refused_as_the_api_does_without_consuming_a_turn() {
    let server = start("[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"ok\"\n").await;
    let response = post_with(&server, &request("x"), &[("anthropic-version", "2023-06-01")]).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(
        body["error"],
        json!({"type": "authentication_error", "message": "x-api-key header is required"})
    );
    let response = post_with(&server, &request("x"), &[("x-api-key", "k")]).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        json!({"type": "invalid_request_error", "message": "anthropic-version: header is required"})
    );
    assert_eq!(server.verify().unwrap_err().lines().count(), 1, "only the unserved turn");
    assert_eq!(post(&server, &request("x")).await.status(), 200);
    assert_eq!(server.requests().len(), 3);
    server.verify().unwrap();
}

#[tokio::test]
async fn status_faults_have_anthropic_error_bodies() {
    let server = start(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "ok"
        [turns.fault]
        status = 529
        retry_after = 2
        [[turns]]
        [turns.fault]
        status = 400
        code = "context_length_exceeded"
        [[turns]]
        [turns.fault]
        status = 401
        "#,
    )
    .await;
    let response = post(&server, &request("x")).await;
    assert_eq!(response.status(), 529);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "overloaded_error",
            "message": "scripted fault: HTTP 529"}, "request_id": "req_scripted_1"})
    );
    assert_eq!(post(&server, &request("x")).await.status(), 200);

    let response = post(&server, &request("x")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("prompt is too long: ") && message.ends_with(" maximum"));
    assert_eq!(post(&server, &request("x")).await.status(), 200);

    let body: Value = post(&server, &request("x")).await.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn a_failed_fault_is_an_error_event_mid_stream_and_drops_cut_the_stream() {
    let server = start(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "ok"
        [turns.fault]
        failed = "overloaded_error"
        message = "Overloaded"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "partial answer"
        [turns.fault]
        drop_after_events = 4
        "#,
    )
    .await;
    let events = stream_events(&server, &request("x")).await;
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["message_start", "ping", "error"]);
    assert_eq!(
        events[2].1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert_eq!(stream_events(&server, &request("x")).await.last().unwrap().0, "message_stop");

    let mut response = post(&server, &request("x")).await;
    let mut body = Vec::new();
    let outcome = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(outcome.is_err(), "the connection should be cut mid-body");
    let events = frames(&String::from_utf8(body).unwrap());
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|(kind, _)| kind != "message_stop"));
}

#[tokio::test]
async fn expectations_read_messages_requests_and_violations_are_anthropic_errors() {
    let server = start(
        r#"
        [[turns]]
        expect.last_tool_output_contains = ["2 failed"]
        [[turns.output]]
        type = "message"
        text = "x"
        "#,
    )
    .await;
    let response = post(&server, &request("x")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("turn 1: expected the last tool output to contain"), "{message}");
    assert!(message.contains("1 passed"), "{message}");
    assert!(server.verify().is_err());
}
