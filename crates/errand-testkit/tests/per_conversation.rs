//! `mode = "per_conversation"`: every conversation replays the script on its own, whatever the
//! order in which requests of different conversations reach the server, on all three wires.
//!
//! Each test drives conversations the way a client does: send the history, read the streamed
//! turn, append what the model said plus one tool output per call (naming the conversation), and
//! send again until the model answers without a tool call.

use errand_testkit::{Script, ScriptedModel};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
mode = "per_conversation"

[[turns]]
delay_ms = 30
expect.last_user_message_contains = ["conversation"]
[[turns.output]]
type = "reasoning"
summary = "look first"
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["ls"] }

[[turns]]
delay_ms = 30
expect.last_tool_output_contains = ["ran call_1_2"]
[[turns.output]]
type = "message"
text = "patching"
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = "*** Begin Patch\n*** End Patch\n"

[[turns]]
expect.last_tool_output_contains = ["ran call_2_2"]
[[turns.output]]
type = "message"
text = "all done"
"#;

#[derive(Clone, Copy, Debug)]
enum Wire {
    Responses,
    Chat,
    Messages,
}

/// One conversation's client state on one wire.
struct Conversation {
    wire: Wire,
    name: String,
    /// `input` (Responses) or `messages` (Chat Completions, Messages).
    history: Vec<Value>,
    done: bool,
}

/// What one streamed turn said, read from the wire.
struct TurnSeen {
    /// The turn number the server put in the response id (`resp_N`, `chatcmpl-N`, `msg_N`).
    turn: usize,
    text: String,
    /// `(call id, tool name)` of each tool call.
    calls: Vec<(String, String)>,
}

impl Conversation {
    fn new(wire: Wire, name: &str) -> Conversation {
        let text = format!("conversation {name}: fix the test");
        let first = match wire {
            Wire::Responses => json!({"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": text}]}),
            Wire::Chat | Wire::Messages => json!({"role": "user", "content": text}),
        };
        Conversation { wire, name: name.to_string(), history: vec![first], done: false }
    }

    fn body(&self) -> Value {
        match self.wire {
            Wire::Responses => json!({"model": "m", "input": self.history, "stream": true}),
            Wire::Chat => json!({"model": "m", "messages": self.history, "stream": true}),
            Wire::Messages => {
                json!({"model": "m", "max_tokens": 64, "messages": self.history, "stream": true})
            }
        }
    }

    async fn post(&self, server: &ScriptedModel) -> reqwest::Response {
        let path = match self.wire {
            Wire::Responses => "responses",
            Wire::Chat => "chat/completions",
            Wire::Messages => "messages",
        };
        reqwest::Client::new()
            .post(format!("{}/{path}", server.base_url()))
            .header("x-api-key", "k")
            .header("anthropic-version", "2023-06-01")
            .json(&self.body())
            .send()
            .await
            .unwrap()
    }

    /// Sends the next request, reads the turn, and extends the history as a client would.
    async fn step(&mut self, server: &ScriptedModel) -> TurnSeen {
        let response = self.post(server).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{} ({:?}): {text}", self.name, self.wire);
        let seen = match self.wire {
            Wire::Responses => self.read_responses(&text),
            Wire::Chat => self.read_chat(&text),
            Wire::Messages => self.read_messages(&text),
        };
        self.done = seen.calls.is_empty();
        seen
    }

    fn tool_output(&self, call_id: &str) -> String {
        format!("ran {call_id} for {}", self.name)
    }

    fn read_responses(&mut self, text: &str) -> TurnSeen {
        let mut seen = TurnSeen { turn: 0, text: String::new(), calls: Vec::new() };
        for data in data_lines(text) {
            let event: Value = serde_json::from_str(data).unwrap();
            match event["type"].as_str().unwrap() {
                "response.output_item.done" => {
                    let item = &event["item"];
                    match item["type"].as_str().unwrap() {
                        "message" => seen.text += item["content"][0]["text"].as_str().unwrap(),
                        "function_call" | "custom_tool_call" => seen.calls.push((
                            item["call_id"].as_str().unwrap().to_string(),
                            item["name"].as_str().unwrap().to_string(),
                        )),
                        _ => {}
                    }
                    self.history.push(item.clone());
                }
                "response.completed" => seen.turn = turn_of(&event["response"]["id"], "resp_"),
                _ => {}
            }
        }
        for (call_id, name) in &seen.calls {
            let kind =
                if name == "shell" { "function_call_output" } else { "custom_tool_call_output" };
            let output = self.tool_output(call_id);
            self.history.push(json!({"type": kind, "call_id": call_id, "output": output}));
        }
        seen
    }

    fn read_chat(&mut self, text: &str) -> TurnSeen {
        let mut seen = TurnSeen { turn: 0, text: String::new(), calls: Vec::new() };
        for data in data_lines(text).filter(|data| *data != "[DONE]") {
            let chunk: Value = serde_json::from_str(data).unwrap();
            seen.turn = turn_of(&chunk["id"], "chatcmpl-");
            let delta = &chunk["choices"][0]["delta"];
            seen.text += delta["content"].as_str().unwrap_or("");
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                if let Some(id) = call["id"].as_str() {
                    let name = call["function"]["name"].as_str().unwrap().to_string();
                    seen.calls.push((id.to_string(), name));
                }
            }
        }
        // Text and tool calls as two assistant messages in a row, as errand-model's client
        // sends them: still one model turn.
        self.history.push(json!({"role": "assistant", "content": seen.text}));
        if !seen.calls.is_empty() {
            let calls: Vec<Value> = (seen.calls.iter())
                .map(|(id, name)| {
                    json!({"id": id, "type": "function",
                    "function": {"name": name, "arguments": "{}"}})
                })
                .collect();
            self.history.push(json!({"role": "assistant", "content": null, "tool_calls": calls}));
        }
        for (call_id, _) in &seen.calls {
            let output = self.tool_output(call_id);
            self.history.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
        }
        seen
    }

    fn read_messages(&mut self, text: &str) -> TurnSeen {
        let mut seen = TurnSeen { turn: 0, text: String::new(), calls: Vec::new() };
        let mut blocks = Vec::new();
        for data in data_lines(text) {
            let event: Value = serde_json::from_str(data).unwrap();
            match event["type"].as_str().unwrap() {
                "message_start" => seen.turn = turn_of(&event["message"]["id"], "msg_"),
                "content_block_start" => {
                    let block = &event["content_block"];
                    if block["type"] == "tool_use" {
                        let id = block["id"].as_str().unwrap().to_string();
                        seen.calls.push((id, block["name"].as_str().unwrap().to_string()));
                        blocks.push(json!({"type": "tool_use", "id": block["id"],
                            "name": block["name"], "input": {}}));
                    }
                }
                "content_block_delta" if event["delta"]["type"] == "text_delta" => {
                    seen.text += event["delta"]["text"].as_str().unwrap();
                }
                _ => {}
            }
        }
        blocks.insert(0, json!({"type": "text", "text": seen.text}));
        self.history.push(json!({"role": "assistant", "content": blocks}));
        if !seen.calls.is_empty() {
            let results: Vec<Value> = (seen.calls.iter())
                .map(|(id, _)| {
                    json!({"type": "tool_result", "tool_use_id": id,
                    "content": self.tool_output(id)})
                })
                .collect();
            self.history.push(json!({"role": "user", "content": results}));
        }
        seen
    }
}

fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|line| line.strip_prefix("data: "))
}

fn turn_of(id: &Value, prefix: &str) -> usize {
    id.as_str().unwrap().strip_prefix(prefix).unwrap().parse().unwrap()
}

/// What each turn of [`SCRIPT`] must look like to the client.
fn check_turn(conversation: &Conversation, step: usize, seen: &TurnSeen) {
    let who = format!("{} ({:?}), request {step}", conversation.name, conversation.wire);
    assert_eq!(seen.turn, step, "{who}: served the wrong turn");
    let (text, tool) = match step {
        1 => ("", Some("shell")),
        2 => ("patching", Some("apply_patch")),
        _ => ("all done", None),
    };
    assert_eq!(seen.text, text, "{who}");
    let tools: Vec<&str> = seen.calls.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(tools, tool.into_iter().collect::<Vec<_>>(), "{who}");
}

async fn start() -> ScriptedModel {
    ScriptedModel::start(Script::from_toml(SCRIPT).unwrap()).await.unwrap()
}

/// Three conversations run at once (the turns' delays keep their requests in flight together);
/// each gets turns 1, 2, 3 in order and the server records all nine requests.
async fn concurrent_conversations(wire: Wire) {
    let server = start().await;
    let run = |name: &'static str| {
        let server = &server;
        async move {
            let mut conversation = Conversation::new(wire, name);
            let mut step = 0;
            while !conversation.done {
                step += 1;
                let seen = conversation.step(server).await;
                check_turn(&conversation, step, &seen);
            }
            assert_eq!(step, 3, "{name} ({wire:?}) ended after {step} turns");
            conversation
        }
    };
    let (a, _, _) = tokio::join!(run("alpha"), run("bravo"), run("charlie"));
    assert_eq!(server.requests().len(), 9);
    server.verify().unwrap();

    // A fourth request from a finished conversation is past the script: a 400 naming why.
    let response = a.post(&server).await;
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("already has 3 model turn(s), but the script (per_conversation) has only 3"),
        "{body}"
    );
    assert_eq!(server.requests().len(), 10);
    let problems = server.verify().unwrap_err();
    assert!(problems.contains("turn 4: the request's conversation already has 3"), "{problems}");
}

/// A fixed interleaving: a conversation starts after others are mid-way, one finishes before
/// another has begun its second turn; each still gets its own next turn.
async fn interleaved_in_a_fixed_order(wire: Wire) {
    let server = start().await;
    let mut conversations = [Conversation::new(wire, "alpha"), Conversation::new(wire, "bravo")];
    let order = [0, 0, 1, 0, 1, 1];
    let mut steps = [0, 0];
    for which in order {
        steps[which] += 1;
        let seen = conversations[which].step(&server).await;
        check_turn(&conversations[which], steps[which], &seen);
    }
    assert!(conversations.iter().all(|c| c.done));
    server.verify().unwrap();
}

#[tokio::test]
async fn responses_conversations_run_concurrently() {
    concurrent_conversations(Wire::Responses).await;
}

#[tokio::test]
async fn chat_conversations_run_concurrently() {
    concurrent_conversations(Wire::Chat).await;
}

#[tokio::test]
async fn messages_conversations_run_concurrently() {
    concurrent_conversations(Wire::Messages).await;
}

#[tokio::test]
async fn responses_interleaved_in_a_fixed_order() {
    interleaved_in_a_fixed_order(Wire::Responses).await;
}

#[tokio::test]
async fn chat_interleaved_in_a_fixed_order() {
    interleaved_in_a_fixed_order(Wire::Chat).await;
}

#[tokio::test]
async fn messages_interleaved_in_a_fixed_order() {
    interleaved_in_a_fixed_order(Wire::Messages).await;
}

/// Expectations are checked per turn: a second-turn request whose tool output is not the one
/// the script expects is a violation naming turn 2, and the turn stays available.
#[tokio::test]
async fn expectations_apply_to_the_turn_the_request_is_at() {
    let server = start().await;
    let mut conversation = Conversation::new(Wire::Responses, "alpha");
    conversation.step(&server).await;
    let mut wrong = conversation.body();
    let last = wrong["input"].as_array_mut().unwrap().last_mut().unwrap();
    last["output"] = json!("something else");
    let response = reqwest::Client::new()
        .post(format!("{}/responses", server.base_url()))
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(body.contains("turn 2: expected the last tool output to contain"), "{body}");
    let seen = conversation.step(&server).await;
    check_turn(&conversation, 2, &seen);
}

/// A turn's fault is served to the first `times` requests at that turn, whichever conversation
/// sends them; later requests at that turn are served normally. Unserved turns are reported.
#[tokio::test]
async fn faults_count_per_turn_across_conversations() {
    let script = r#"
        mode = "per_conversation"
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "hello"
        [turns.fault]
        status = 429
        times = 2
        [[turns]]
        [[turns.output]]
        type = "message"
        text = "again"
    "#;
    let server = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let alpha = Conversation::new(Wire::Responses, "alpha");
    let bravo = Conversation::new(Wire::Responses, "bravo");
    assert_eq!(alpha.post(&server).await.status(), 429);
    assert_eq!(bravo.post(&server).await.status(), 429);
    assert_eq!(alpha.post(&server).await.status(), 200);
    assert_eq!(bravo.post(&server).await.status(), 200);
    let problems = server.verify().unwrap_err();
    assert!(problems.contains("turn(s) 2 of 2 never served to any conversation"), "{problems}");
}

#[test]
fn mode_must_be_known() {
    let err = Script::from_toml("mode = \"parallel\"\n[[turns]]\n").unwrap_err().to_string();
    assert!(err.contains("`mode` must be \"sequence\" or \"per_conversation\""), "{err}");
    let script = Script::from_toml("mode = \"sequence\"\n[[turns]]\n").unwrap();
    assert_eq!(script.mode, errand_testkit::ScriptMode::Sequence);
    let script = Script::from_toml("[[turns]]\n").unwrap();
    assert_eq!(script.mode, errand_testkit::ScriptMode::Sequence);
}
