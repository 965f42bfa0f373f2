//! The scripted server speaks the Responses streaming protocol and enforces its script.

use errand_testkit::{Script, ScriptedModel};
use serde_json::{Value, json};

async fn start(script: &str) -> ScriptedModel {
    ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap()
}

fn request(user_text: &str) -> Value {
    json!({
        "model": "test-model",
        "instructions": "be brief",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": user_text}]}],
        "tools": [{"type": "function", "name": "shell", "parameters": {}}],
        "stream": true,
    })
}

async fn post(server: &ScriptedModel, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/responses", server.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `(event name, payload)` of each SSE frame.
fn frames(text: &str) -> Vec<(String, Value)> {
    text.split_terminator("\n\n")
        .map(|frame| {
            let mut lines = frame.lines();
            let event = lines.next().unwrap().strip_prefix("event: ").unwrap().to_string();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            (event, serde_json::from_str(data).unwrap())
        })
        .collect()
}

const ALL_OUTPUTS: &str = r#"
[[turns]]
[[turns.output]]
type = "reasoning"
summary = "read the file first"
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

#[tokio::test]
async fn streams_every_event_type_in_order() {
    let server = start(ALL_OUTPUTS).await;
    let response = post(&server, &request("hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = frames(&response.text().await.unwrap());

    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    let mut expected = vec!["response.created", "response.in_progress"];
    expected.extend(["response.output_item.added", "response.reasoning_summary_part.added"]);
    expected.extend(["response.reasoning_summary_text.delta"; 3]);
    expected
        .extend(["response.reasoning_summary_text.done", "response.reasoning_summary_part.done"]);
    expected.push("response.output_item.done");
    expected.extend(["response.output_item.added", "response.content_part.added"]);
    expected.extend(["response.output_text.delta"; 3]);
    expected.extend(["response.output_text.done", "response.content_part.done"]);
    expected.push("response.output_item.done");
    expected.push("response.output_item.added");
    expected.extend(["response.function_call_arguments.delta"; 3]);
    expected.extend(["response.function_call_arguments.done", "response.output_item.done"]);
    expected.push("response.output_item.added");
    expected.extend(["response.custom_tool_call_input.delta"; 3]);
    expected.extend(["response.custom_tool_call_input.done", "response.output_item.done"]);
    expected.push("response.completed");
    assert_eq!(kinds, expected);

    for (i, (kind, payload)) in events.iter().enumerate() {
        assert_eq!(payload["type"], kind.as_str());
        assert_eq!(payload["sequence_number"], i);
    }

    let done: Vec<&Value> = events
        .iter()
        .filter(|(kind, _)| kind == "response.output_item.done")
        .map(|(_, payload)| &payload["item"])
        .collect();
    assert_eq!(
        done[0],
        &json!({"type": "reasoning", "id": "rs_1_1", "summary": [{"type": "summary_text", "text": "read the file first"}]})
    );
    assert_eq!(
        done[1],
        &json!({"type": "message", "id": "msg_1_2", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "Let me look at the code.", "annotations": []}]})
    );
    assert_eq!(
        done[2],
        &json!({"type": "function_call", "id": "fc_1_3", "call_id": "call_1_3", "name": "shell",
                "arguments": r#"{"command":["cat","src/lib.rs"]}"#, "status": "completed"})
    );
    assert_eq!(
        done[3],
        &json!({"type": "custom_tool_call", "id": "ctc_1_4", "call_id": "call_1_4", "name": "apply_patch",
                "input": "*** Begin Patch\n*** End Patch\n"})
    );

    let text: String = events
        .iter()
        .filter(|(kind, _)| kind == "response.output_text.delta")
        .map(|(_, p)| p["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Let me look at the code.");

    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["model"], "test-model");
    assert_eq!(completed["output"].as_array().unwrap().len(), 4);
    assert_eq!(
        completed["usage"],
        json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 0}, "output_tokens": 20,
               "output_tokens_details": {"reasoning_tokens": 8}, "total_tokens": 120})
    );
    assert_eq!(server.requests(), vec![request("hi")]);
    server.verify().unwrap();
}

#[tokio::test]
async fn expectation_violation_is_a_400_naming_the_turn() {
    let server = start(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "first"
        [[turns]]
        expect.request_contains = ["AGENTS.md says"]
        [[turns.output]]
        type = "message"
        text = "second"
        "#,
    )
    .await;
    assert_eq!(post(&server, &request("one")).await.status(), 200);
    let response = post(&server, &request("two")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "script_violation");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("scripted model: turn 2: "), "{message}");
    assert!(message.contains("AGENTS.md says") && message.contains("two"), "{message}");

    let problems = server.verify().unwrap_err();
    assert!(problems.contains("turn 2: expected the request body"), "{problems}");
    assert!(problems.contains("turn 2 of 2 never served"), "{problems}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn missing_tool_and_tool_output_are_violations() {
    let server = start(
        r#"
        [[turns]]
        expect.tools = ["update_plan"]
        [[turns.output]]
        type = "message"
        text = "x"
        "#,
    )
    .await;
    let body: Value = post(&server, &request("x")).await.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("turn 1: expected tool `update_plan`"), "{message}");
    assert!(message.contains("\"shell\""), "{message}");
}

#[tokio::test]
async fn request_after_the_script_ends_is_a_violation() {
    let server = start("[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"only\"").await;
    assert_eq!(post(&server, &request("a")).await.status(), 200);
    let response = post(&server, &request("b")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("turn 2: the script has 1 turn(s), all consumed"), "{message}");
    assert!(server.verify().unwrap_err().contains("turn 2:"));
}

#[tokio::test]
async fn status_fault_then_normal_turn() {
    let server = start(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "ok"
        [turns.fault]
        status = 429
        retry_after = 7
        times = 2
        "#,
    )
    .await;
    for _ in 0..2 {
        let response = post(&server, &request("x")).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    }
    let response = post(&server, &request("x")).await;
    assert_eq!(response.status(), 200);
    let events = frames(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "response.completed");
    assert_eq!(server.requests().len(), 3);
    server.verify().unwrap();
}

#[tokio::test]
async fn dropped_stream_ends_without_completed() {
    let server = start(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "partial answer"
        [turns.fault]
        drop_after_events = 3
        "#,
    )
    .await;
    let response = post(&server, &request("x")).await;
    assert_eq!(response.status(), 200);
    let mut body = Vec::new();
    let mut response = response;
    let outcome = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(outcome.is_err(), "the connection should be cut mid-body");
    let events = frames(&String::from_utf8(body).unwrap());
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|(kind, _)| kind != "response.completed"));
    // The retry is served normally.
    let events = frames(&post(&server, &request("x")).await.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "response.completed");
    server.verify().unwrap();
}

#[tokio::test]
async fn failed_fault_sends_response_failed() {
    let server = start(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "ok"
        [turns.fault]
        failed = "server_error"
        message = "The server had an error"
        "#,
    )
    .await;
    let events = frames(&post(&server, &request("x")).await.text().await.unwrap());
    let (kind, payload) = events.last().unwrap();
    assert_eq!(kind, "response.failed");
    assert_eq!(payload["response"]["status"], "failed");
    assert_eq!(
        payload["response"]["error"],
        json!({"code": "server_error", "message": "The server had an error"})
    );
}

#[tokio::test]
async fn unknown_path_is_a_json_404() {
    let server = start("[[turns]]").await;
    let response = reqwest::Client::new()
        .post(format!("{}/completions", server.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("POST /v1/completions"), "{message}");
    assert!(
        message.contains(
            "it serves POST /v1/responses, POST /v1/chat/completions and POST /v1/messages"
        )
    );
}

#[tokio::test]
async fn records_headers() {
    let server = start("[[turns]]").await;
    reqwest::Client::new()
        .post(format!("{}/responses", server.base_url()))
        .bearer_auth("sk-test")
        .json(&request("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(server.request_header(0, "authorization").as_deref(), Some("Bearer sk-test"));
    assert_eq!(server.request_header(1, "authorization"), None);
}

// --- Chat Completions: the same script over `POST /v1/chat/completions`. ---

fn chat_request(include_usage: bool) -> Value {
    json!({
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "fix it"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c0", "type": "function",
                "function": {"name": "shell", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c0", "content": "1 passed"},
        ],
        "tools": [{"type": "function", "function": {"name": "shell", "parameters": {}}}],
        "stream": true,
        "stream_options": {"include_usage": include_usage},
    })
}

async fn post_chat(server: &ScriptedModel, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The data of each `data:` frame; `[DONE]` as a JSON string.
fn chat_frames(text: &str) -> Vec<Value> {
    text.split_terminator("\n\n")
        .map(|frame| {
            let data = frame.strip_prefix("data: ").unwrap();
            serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn chat_streams_chunks_with_split_tool_calls_and_usage() {
    let script = format!(
        "{ALL_OUTPUTS}\n[turns.expect]\nlast_tool_output_contains = [\"1 passed\"]\ntools = [\"shell\"]\n"
    );
    let server = start(&script).await;
    let response = post_chat(&server, &chat_request(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = chat_frames(&response.text().await.unwrap());
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let chunks = &chunks[..chunks.len() - 1];
    assert!(
        chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "test-model")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    let deltas: Vec<&Value> =
        chunks.iter().filter_map(|c| c["choices"].get(0).map(|ch| &ch["delta"])).collect();
    let joined = |field: &str| deltas.iter().filter_map(|d| d[field].as_str()).collect::<String>();
    assert_eq!(joined("content"), "Let me look at the code.");
    assert_eq!(joined("reasoning_content"), "read the file first");

    let calls: Vec<&Value> = deltas.iter().filter_map(|d| d["tool_calls"].get(0)).collect();
    let arguments = |index: u64| {
        calls
            .iter()
            .filter(|c| c["index"] == index)
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect::<String>()
    };
    let firsts: Vec<&&Value> = calls.iter().filter(|c| c.get("id").is_some()).collect();
    assert_eq!(firsts.len(), 2);
    assert_eq!(firsts[0]["function"]["name"], "shell");
    assert_eq!(firsts[0]["id"], "call_1_3");
    assert_eq!(firsts[1]["function"]["name"], "apply_patch");
    assert!(calls.iter().filter(|c| c["index"] == 0).count() > 2, "arguments split over chunks");
    assert_eq!(arguments(0), r#"{"command":["cat","src/lib.rs"]}"#);
    let patch: Value = serde_json::from_str(&arguments(1)).unwrap();
    assert_eq!(patch, json!({"input": "*** Begin Patch\n*** End Patch\n"}));

    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 100);
    assert_eq!(usage["usage"]["completion_tokens"], 20);
    assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 40);
    server.verify().unwrap();
}

#[tokio::test]
async fn chat_without_include_usage_ends_with_stop_and_no_usage() {
    let server = start("[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"hi\"\n").await;
    let chunks = chat_frames(&post_chat(&server, &chat_request(false)).await.text().await.unwrap());
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    server.verify().unwrap();
}

#[tokio::test]
async fn chat_expectations_and_faults_apply() {
    let server = start(
        r#"
        [[turns]]
        expect = { last_tool_output_contains = ["2 failed"] }
        [[turns]]
        expect = { tools = ["apply_patch"] }
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "ok"
        [turns.fault]
        failed = "server_error"
        "#,
    )
    .await;
    let response = post_chat(&server, &chat_request(true)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("turn 1: expected the last tool output to contain"), "{message}");
    assert!(message.contains("1 passed"), "{message}");
    assert!(server.verify().is_err());
}

#[tokio::test]
async fn chat_failed_and_status_faults() {
    let server = start(
        r#"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "ok"
        [turns.fault]
        failed = "server_error"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "ok"
        [turns.fault]
        status = 429
        "#,
    )
    .await;
    let chunks = chat_frames(&post_chat(&server, &chat_request(true)).await.text().await.unwrap());
    assert_eq!(chunks[chunks.len() - 2]["error"]["code"], "server_error");
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let chunks = chat_frames(&post_chat(&server, &chat_request(false)).await.text().await.unwrap());
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(post_chat(&server, &chat_request(true)).await.status(), 429);
    let response = post_chat(&server, &chat_request(true)).await;
    assert_eq!(response.status(), 200);
    server.verify().unwrap();
}
