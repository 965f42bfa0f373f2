//! Messages sent to a running attempt and follow-ups that continue a conversation, against the
//! scripted model server on loopback (the real Responses wire format, so what a request carries
//! is what a provider would see) and a sandbox that only runs `ls`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_agent::{
    AgentConfig, AttemptSpec, Conversation, Inbox, MemoryLog, NoMessages, run_attempt,
};
use errand_model::{ModelClient, ModelConfig, Provider};
use errand_protocol::{AttemptState, Event, EventKind};
use errand_sandbox::{
    ExecOutcome, ExecRequest, PatchOutcome, Sandbox, SandboxError, WorkspaceDiff,
};
use errand_testkit::{Script, ScriptedModel};
use serde_json::Value;

/// A workspace with an AGENTS.md whose commands all succeed with one line of output.
struct QuietSandbox;

#[async_trait::async_trait]
impl Sandbox for QuietSandbox {
    fn workspace_dir(&self) -> &str {
        "/workspace"
    }
    fn isolation(&self) -> Vec<String> {
        vec!["none (test)".into()]
    }
    async fn exec(
        &self,
        _request: ExecRequest,
        output: &mut (dyn for<'chunk> FnMut(&'chunk [u8]) + Send),
    ) -> Result<ExecOutcome, SandboxError> {
        output(b"README.md\n");
        Ok(ExecOutcome {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            duration: Duration::from_millis(1),
            limit_hit: None,
        })
    }
    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SandboxError> {
        Ok((path == "AGENTS.md").then(|| b"Keep answers short.\n".to_vec()))
    }
    async fn apply_patch(
        &self,
        _patch: &str,
        _workdir: &str,
    ) -> Result<PatchOutcome, SandboxError> {
        Err(SandboxError::Exec("no patches in these tests".into()))
    }
    async fn diff(&self) -> Result<WorkspaceDiff, SandboxError> {
        Ok(WorkspaceDiff::default())
    }
}

/// Messages the test hands over (from the event observer, i.e. while the attempt runs).
#[derive(Clone, Default)]
struct SharedInbox(Arc<Mutex<Vec<String>>>);

impl SharedInbox {
    fn send(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_string());
    }
}

#[async_trait::async_trait]
impl Inbox for SharedInbox {
    async fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

async fn scripted(script: &str) -> (ScriptedModel, ModelClient) {
    let server = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let client = ModelClient::new(ModelConfig {
        base_url: server.base_url(),
        model: "scripted".into(),
        api_key: Some("test-key".into()),
        max_retries: 0,
        provider: Provider::Responses,
        ..ModelConfig::default()
    })
    .unwrap();
    (server, client)
}

fn spec(prompt: &str) -> AttemptSpec {
    AttemptSpec {
        prompt: prompt.into(),
        workdir: String::new(),
        continues: None,
        finish_checks: true,
    }
}

/// The `type` of each event, in order.
fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| serde_json::to_value(&e.kind).unwrap()["type"].as_str().unwrap().to_string())
        .collect()
}

/// The texts of a Responses request's input messages with `role`.
fn texts(request: &Value, role: &str) -> Vec<String> {
    request["input"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["role"] == role)
        .map(|item| item["content"].to_string())
        .collect()
}

#[tokio::test]
async fn a_message_sent_during_turn_one_reaches_the_model_at_turn_two() {
    let (server, client) = scripted(
        r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["ls"] }

[[turns]]
expect.last_user_message_contains = ["use tabs, please"]
expect.request_contains = ["README.md"]
[[turns.output]]
type = "message"
text = "List the files\n\nThere is one file."
"#,
    )
    .await;
    let inbox = SharedInbox::default();
    let sender = inbox.clone();
    // The message arrives while turn 1's command runs.
    let mut log = MemoryLog::new(move |event| {
        if matches!(event.kind, EventKind::CommandFinished { .. }) {
            sender.send("use tabs, please");
        }
    });
    let result = run_attempt(
        &spec("list the files"),
        &QuietSandbox,
        &client,
        &AgentConfig::default(),
        &mut log,
        &inbox,
    )
    .await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);
    server.verify().unwrap();

    let events = log.events();
    let kinds = kinds(events);
    let at = |kind: &str, nth: usize| {
        kinds.iter().enumerate().filter(|(_, k)| *k == kind).nth(nth).map(|(i, _)| i).unwrap()
    };
    assert!(
        at("turn_started", 1) < at("user_message", 0)
            && at("user_message", 0) < at("token_usage", 1),
        "delivered at turn 2's boundary: {kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "user_message").count(), 1, "{kinds:?}");
    assert!(
        events.iter().any(
            |e| matches!(&e.kind, EventKind::UserMessage { text } if text == "use tabs, please")
        )
    );
    let requests = server.requests();
    assert!(!requests[0].to_string().contains("use tabs"), "not before it was sent");
    let users = texts(&requests[1], "user");
    assert!(users.last().unwrap().contains("use tabs, please"), "{users:?}");
    // The conversation handed back has it too, where the model saw it.
    let json = serde_json::to_string(&result.conversation).unwrap();
    assert!(json.contains("use tabs, please"), "{json}");
}

#[tokio::test]
async fn a_message_that_arrives_with_the_final_answer_gets_one_more_turn() {
    let (server, client) = scripted(
        r#"
[[turns]]
[[turns.output]]
type = "message"
text = "First answer\n\nNothing to change."

[[turns]]
expect.last_user_message_contains = ["also update the docs"]
[[turns.output]]
type = "message"
text = "Update the docs\n\nThe docs are updated."
"#,
    )
    .await;
    let inbox = SharedInbox::default();
    let sender = inbox.clone();
    // Sent while the model was writing what would have been its final answer.
    let mut log = MemoryLog::new(move |event| {
        if matches!(&event.kind, EventKind::AgentMessage { text } if text.starts_with("First")) {
            sender.send("also update the docs");
        }
    });
    let result = run_attempt(
        &spec("look at the docs"),
        &QuietSandbox,
        &client,
        &AgentConfig::default(),
        &mut log,
        &inbox,
    )
    .await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);
    server.verify().unwrap();
    assert_eq!(result.turns, 2);
    assert_eq!(result.report.unwrap().title, "Update the docs", "the last answer is the report");
    let kinds = kinds(log.events());
    let from = kinds.iter().position(|k| k == "agent_message").unwrap();
    assert_eq!(
        kinds[from..from + 3],
        ["agent_message", "user_message", "turn_started"],
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_follow_up_continues_the_stored_conversation_with_its_prompt() {
    let (server, client) = scripted(
        r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["ls"] }

[[turns]]
[[turns.output]]
type = "message"
text = "List the files\n\nThere is one file."

[[turns]]
expect.request_contains = ["list the files", "Keep answers short.", "There is one file."]
expect.last_user_message_contains = ["now count them"]
[[turns.output]]
type = "message"
text = "Count the files\n\nThere is 1 file."
"#,
    )
    .await;
    let config = AgentConfig::default();
    let mut first_log = MemoryLog::default();
    let first = run_attempt(
        &spec("list the files"),
        &QuietSandbox,
        &client,
        &config,
        &mut first_log,
        &NoMessages,
    )
    .await;
    assert_eq!(first.outcome.state, AttemptState::Succeeded, "{}", first.outcome.reason);

    // Stored as JSON and read back, as the worker does with the conversation artifact.
    let stored = serde_json::to_string(&first.conversation).unwrap();
    let conversation: Conversation = serde_json::from_str(&stored).unwrap();
    let followup = AttemptSpec { continues: Some(conversation.clone()), ..spec("now count them") };
    let mut log = MemoryLog::default();
    let result =
        run_attempt(&followup, &QuietSandbox, &client, &config, &mut log, &NoMessages).await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);
    server.verify().unwrap();
    assert_eq!(result.report.unwrap().title, "Count the files");

    let requests = server.requests();
    let resumed = requests[2]["input"].as_array().unwrap();
    // The earlier items as they were, then the follow-up; the instructions are not repeated.
    assert_eq!(resumed.len(), conversation.items.len() + 1);
    assert_eq!(resumed[..resumed.len() - 2], requests[1]["input"].as_array().unwrap()[..]);
    assert_eq!(resumed[resumed.len() - 2]["role"], "assistant");
    assert_eq!(texts(&requests[2], "developer").len(), 1, "one environment message");
    assert!(!kinds(log.events()).contains(&"instructions_loaded".to_string()));
    assert_eq!(result.conversation.items[..conversation.items.len()], conversation.items[..]);
}
