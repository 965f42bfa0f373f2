//! What small local models need (issue 9): tool calls written as text recovered and run, or
//! explained when they cannot run; loops of one call with one result steered, then stopped; and
//! malformed calls answered with a call to copy. Against a fake model and sandbox (as in
//! agent_loop.rs), plus the scripted model server for the three wire formats.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use errand_agent::{AgentConfig, AttemptSpec, MemoryLog, Model, NoMessages, run_attempt};
use errand_model::{
    Item, ModelClient, ModelConfig, ModelError, ModelProgress, ModelRequest, ModelTurn, Provider,
    Role,
};
use errand_protocol::{AttemptState, Event, EventKind, FileChange, FileChangeKind, TokenUsage};
use errand_sandbox::{
    ExecOutcome, ExecRequest, PatchOutcome, Sandbox, SandboxError, WorkspaceDiff,
};
use errand_testkit::{Script, ScriptedModel};

/// Answers each turn from a list; records every request. Out of turns, it says "Done".
#[derive(Default)]
struct FakeModel {
    turns: Mutex<Vec<Vec<Item>>>,
    requests: Mutex<Vec<ModelRequest>>,
}

impl FakeModel {
    fn new(turns: Vec<Vec<Item>>) -> Self {
        Self { turns: Mutex::new(turns.into_iter().rev().collect()), ..Self::default() }
    }

    fn requests(&self) -> Vec<ModelRequest> {
        self.requests.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Model for FakeModel {
    async fn turn(
        &self,
        request: &ModelRequest,
        _progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, ModelError> {
        self.requests.lock().unwrap().push(request.clone());
        let items = self.turns.lock().unwrap().pop().unwrap_or_else(|| vec![say("Done")]);
        let usage = TokenUsage { input: 10, cached_input: 0, output: 5, reasoning: 0 };
        Ok(ModelTurn { items, usage, response_id: None })
    }
}

/// Every command prints `ran: <argv joined>` and exits 0; patches succeed.
#[derive(Default)]
struct FakeSandbox {
    execs: Mutex<Vec<ExecRequest>>,
    patches: Mutex<Vec<String>>,
    /// Fixed output per argv[0], instead of the default.
    outputs: HashMap<String, &'static str>,
}

impl FakeSandbox {
    fn commands(&self) -> Vec<Vec<String>> {
        self.execs.lock().unwrap().iter().map(|r| r.command.clone()).collect()
    }
}

#[async_trait::async_trait]
impl Sandbox for FakeSandbox {
    fn workspace_dir(&self) -> &str {
        "/workspace"
    }
    fn isolation(&self) -> Vec<String> {
        vec!["fake".into()]
    }
    async fn exec(
        &self,
        request: ExecRequest,
        output: &mut (dyn for<'chunk> FnMut(&'chunk [u8]) + Send),
    ) -> Result<ExecOutcome, SandboxError> {
        match self.outputs.get(&request.command[0]) {
            Some(text) => output(text.as_bytes()),
            None => output(format!("ran: {}\n", request.command.join(" ")).as_bytes()),
        }
        self.execs.lock().unwrap().push(request);
        Ok(ExecOutcome {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            duration: Duration::from_millis(2),
            limit_hit: None,
        })
    }
    async fn read_file(&self, _path: &str) -> Result<Option<Vec<u8>>, SandboxError> {
        Ok(None)
    }
    async fn apply_patch(&self, patch: &str, _workdir: &str) -> Result<PatchOutcome, SandboxError> {
        self.patches.lock().unwrap().push(patch.to_string());
        Ok(PatchOutcome {
            success: true,
            output: "Success. Updated the following files:\nA hello.txt\n".into(),
            changes: vec![FileChange {
                path: "hello.txt".into(),
                kind: FileChangeKind::Added,
                insertions: 1,
                deletions: 0,
                binary: false,
            }],
        })
    }
    async fn diff(&self) -> Result<WorkspaceDiff, SandboxError> {
        Ok(WorkspaceDiff::default())
    }
}

fn say(text: &str) -> Item {
    Item::Message { role: Role::Assistant, text: text.into() }
}

fn call(id: &str, name: &str, arguments: &str) -> Item {
    Item::FunctionCall { call_id: id.into(), name: name.into(), arguments: arguments.into() }
}

fn spec() -> AttemptSpec {
    AttemptSpec {
        prompt: "fix the test".into(),
        workdir: String::new(),
        continues: None,
        finish_checks: true,
    }
}

async fn attempt(
    sandbox: &FakeSandbox,
    model: &FakeModel,
    config: &AgentConfig,
) -> (errand_agent::AttemptResult, Vec<Event>) {
    let mut log = MemoryLog::default();
    let result = run_attempt(&spec(), sandbox, model, config, &mut log, &NoMessages).await;
    (result, log.into_events())
}

/// `(call_id, tool, form)` of each `tool_call_recovered` event.
fn recovered(events: &[Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolCallRecovered { call_id, tool, form } => {
                Some((call_id.clone(), tool.clone(), form.clone()))
            }
            _ => None,
        })
        .collect()
}

fn tool_errors(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolError { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// The text of the last item of a request, which must be a user message.
fn last_user_text(request: &ModelRequest) -> String {
    match request.input.last() {
        Some(Item::Message { role: Role::User, text }) => text.clone(),
        other => panic!("the last item is not a user message: {other:?}"),
    }
}

const SHELL_JSON: &str =
    r#"{"name": "shell", "arguments": {"command": ["python3", "-m", "pytest", "-q"]}}"#;

#[tokio::test]
async fn each_text_form_is_recovered_and_run_like_a_real_call() {
    let pytest = ["python3", "-m", "pytest", "-q"].map(String::from).to_vec();
    let bash = |script: &str| ["bash", "-lc", script].map(String::from).to_vec();
    let parameters_as_string = r#"{"name": "shell", "parameters": "{\"command\": [\"python3\", \"-m\", \"pytest\", \"-q\"]}"}"#;
    let script = "python3 -m pytest -q tests/test_add.py";
    let cases: Vec<(String, &str, Vec<String>)> = vec![
        (
            format!("Let me run the tests.\n```json\n{SHELL_JSON}\n```"),
            "json_block",
            pytest.clone(),
        ),
        (SHELL_JSON.to_string(), "bare_json", pytest.clone()),
        (parameters_as_string.to_string(), "bare_json", pytest.clone()),
        (
            format!("Running them.\n<tool_call>\n{SHELL_JSON}\n</tool_call>"),
            "tool_call_tag",
            pytest,
        ),
        (format!("```bash\n{script}\n```"), "bash_block", bash(script)),
    ];
    for (text, form, command) in cases {
        let sandbox = FakeSandbox::default();
        let model = FakeModel::new(vec![vec![say(&text)], vec![say("Fix the test\n\nDone.")]]);
        let (result, events) = attempt(&sandbox, &model, &AgentConfig::default()).await;
        assert_eq!(
            result.outcome.state,
            AttemptState::Succeeded,
            "{text}: {}",
            result.outcome.reason
        );
        assert_eq!(sandbox.commands(), std::slice::from_ref(&command), "{text}");
        assert_eq!(
            recovered(&events),
            [("text_1_1".to_string(), "shell".to_string(), form.to_string())]
        );
        // Marked, then run exactly as a real call: started, output, finished, citable.
        let at = |kind: &str| {
            events
                .iter()
                .position(|e| serde_json::to_value(&e.kind).unwrap()["type"] == kind)
                .unwrap_or_else(|| panic!("no {kind}"))
        };
        assert!(at("tool_call_recovered") < at("command_started"));
        let EventKind::CommandStarted { call_id, .. } = &events[at("command_started")].kind else {
            unreachable!()
        };
        assert_eq!(call_id, "text_1_1");
        assert_eq!(result.report.unwrap().checks.len(), 1, "the command is in the checklist");

        // The model sees its own text, then the result as a user message: no call items the
        // endpoint never produced.
        let requests = model.requests();
        let second = &requests[1];
        assert!(
            !second
                .input
                .iter()
                .any(|i| matches!(i, Item::FunctionCall { .. } | Item::FunctionCallOutput { .. })),
            "{:?}",
            second.input
        );
        assert!(matches!(&second.input[second.input.len() - 2],
            Item::Message { role: Role::Assistant, text: said } if *said == text));
        let told = last_user_text(second);
        assert!(
            told.starts_with("Errand ran the shell call in your message.\nExit code: 0"),
            "{told}"
        );
        assert!(told.contains(&format!("ran: {}", command.join(" "))), "{told}");
        // The system prompt offered the bash form.
        assert!(requests[0].instructions.contains("```bash block"));
    }
}

#[tokio::test]
async fn tags_carry_every_tool_and_several_calls_run_in_order() {
    let patch = "*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\n";
    let patch_call = serde_json::json!({"name": "apply_patch", "arguments": {"input": patch}});
    let text = format!(
        "<tool_call>\n{{\"name\": \"update_plan\", \"arguments\": {{\"plan\": [{{\"step\": \"add hello\", \"status\": \"in_progress\"}}]}}}}\n</tool_call>\n<tool_call>\n{patch_call}\n</tool_call>"
    );
    let sandbox = FakeSandbox::default();
    let model = FakeModel::new(vec![vec![say(&text)]]);
    let (result, events) = attempt(&sandbox, &model, &AgentConfig::default()).await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);
    let tools: Vec<(String, String)> =
        recovered(&events).into_iter().map(|(id, tool, _)| (id, tool)).collect();
    assert_eq!(
        tools,
        [
            ("text_1_1".to_string(), "update_plan".to_string()),
            ("text_1_2".to_string(), "apply_patch".to_string())
        ]
    );
    assert_eq!(*sandbox.patches.lock().unwrap(), [patch.to_string()]);
    assert!(events.iter().any(|e| matches!(&e.kind, EventKind::PlanUpdated { .. })));
    let told = last_user_text(&model.requests()[1]);
    assert!(told.contains("update_plan call in your message.\nPlan updated."), "{told}");
    assert!(told.contains("apply_patch call in your message.\nSuccess."), "{told}");
}

#[tokio::test]
async fn near_misses_are_not_run() {
    // Call-shaped text that may not run: explained to the model, which goes on.
    let explained = [
        (
            "```json\n{\"name\": \"run_tests\", \"arguments\": {\"path\": \"tests\"}}\n```",
            "unknown tool `run_tests`",
        ),
        (
            "<tool_call>{\"name\": \"shell\", \"arguments\": {\"command\": \"pytest -q\"}}</tool_call>",
            "invalid arguments for `shell`",
        ),
    ];
    for (text, why) in explained {
        let sandbox = FakeSandbox::default();
        let model = FakeModel::new(vec![vec![say(text)], vec![say("Fix the test\n\nDone.")]]);
        let (result, events) = attempt(&sandbox, &model, &AgentConfig::default()).await;
        assert_eq!(result.outcome.state, AttemptState::Succeeded);
        assert!(sandbox.commands().is_empty(), "{text}");
        assert!(recovered(&events).is_empty(), "{text}");
        let errors = tool_errors(&events);
        assert!(errors.len() == 1 && errors[0].contains(why), "{errors:?}");
        let note = last_user_text(&model.requests()[1]);
        assert!(note.contains("Errand did not run it") && note.contains(why), "{note}");
        assert!(note.contains(r#"{"command": ["bash", "-lc", "ls -la"]}"#), "{note}");
        assert_eq!(result.report.unwrap().title, "Fix the test");
    }

    // Blocks that are examples in prose: the message is the final answer, as written.
    let examples = [
        "Fix the parser\n\nEmpty rows were dropped; the loop keeps them now. Run the tests with:\n```bash\npython3 -m pytest -q\n```\nand all 12 pass.",
        "Fix the parser\n\nTwo ways to check it:\n```bash\npytest -q\n```\n```bash\nmake test\n```",
        "Fix the parser\n\nThe loop dropped empty rows; it keeps them now, and a test covers it.\nThe tool call the task asked about looks like this:\n```json\n{\"name\": \"shell\", \"arguments\": {\"command\": [\"ls\"]}}\n```",
    ];
    for text in examples {
        let sandbox = FakeSandbox::default();
        let model = FakeModel::new(vec![vec![say(text)]]);
        let (result, events) = attempt(&sandbox, &model, &AgentConfig::default()).await;
        assert_eq!(result.outcome.state, AttemptState::Succeeded);
        assert!(sandbox.commands().is_empty(), "{text}");
        assert!(recovered(&events).is_empty() && tool_errors(&events).is_empty(), "{text}");
        assert_eq!(model.requests().len(), 1, "{text}");
        assert_eq!(result.report.unwrap().title, "Fix the parser");
    }
}

#[tokio::test]
async fn a_model_that_never_gets_it_right_still_ends() {
    let bad = "<tool_call>{\"name\": \"shell\", \"arguments\": {}}</tool_call>";
    let sandbox = FakeSandbox::default();
    let model = FakeModel::new(vec![vec![say(bad)]; 10]);
    let (result, events) = attempt(&sandbox, &model, &AgentConfig::default()).await;
    // Three notes, then the fourth such message stands as the final answer.
    assert_eq!(tool_errors(&events).len(), 3);
    assert_eq!(result.turns, 4);
    assert!(sandbox.commands().is_empty());
}

#[tokio::test]
async fn recovery_off_recovers_nothing() {
    let config = AgentConfig { recover_tool_calls: false, ..AgentConfig::default() };
    for text in [
        format!("```json\n{SHELL_JSON}\n```"),
        format!("<tool_call>{SHELL_JSON}</tool_call>"),
        "```bash\nls\n```".into(),
    ] {
        let sandbox = FakeSandbox::default();
        let model = FakeModel::new(vec![vec![say(&text)]]);
        let (result, events) = attempt(&sandbox, &model, &config).await;
        assert_eq!(result.outcome.state, AttemptState::Succeeded);
        assert!(sandbox.commands().is_empty() && recovered(&events).is_empty(), "{text}");
        assert!(tool_errors(&events).is_empty(), "{text}");
        let requests = model.requests();
        assert_eq!(requests.len(), 1);
        assert!(!requests[0].instructions.contains("```bash block"));
    }
}

#[tokio::test]
async fn a_repeated_call_is_steered_then_stopped() {
    let pytest = r#"{"command": ["python3", "-m", "pytest", "-q"]}"#;
    // Real calls, and the same loop written as bash blocks by a model without tool calls.
    let real = |n: usize| vec![call(&format!("c{n}"), "shell", pytest)];
    let text = |_: usize| vec![say("```bash\npython3 -m pytest -q\n```")];
    for (turn, shown) in [
        (&real as &dyn Fn(usize) -> Vec<Item>, "`python3 -m pytest -q`"),
        (&text, "`python3 -m pytest -q`"),
    ] {
        let mut sandbox = FakeSandbox::default();
        sandbox.outputs.insert("python3".into(), "1 failed, 3 passed\n");
        sandbox.outputs.insert("bash".into(), "1 failed, 3 passed\n");
        let model = FakeModel::new((1..=10).map(turn).collect());
        let config = AgentConfig { repeat_limit: 3, ..AgentConfig::default() };
        let (result, events) = attempt(&sandbox, &model, &config).await;

        assert_eq!(result.outcome.state, AttemptState::Failed);
        assert!(result.outcome.reason.starts_with("repetition: "), "{}", result.outcome.reason);
        assert_eq!(result.turns, 4, "stopped instead of using all 80 turns");
        assert_eq!(sandbox.commands().len(), 4);
        let requests = model.requests();
        let steer = last_user_text(&requests[3]);
        assert_eq!(
            steer,
            format!(
                "You ran {shown} 3 times in a row and got the same result each time. Running it \
                 again will not change anything: try something different, or finish with your \
                 final message."
            )
        );
        // Only once: the earlier requests end with the calls' results.
        assert!(!requests[..3].iter().any(|r| format!("{:?}", r.input).contains("You ran")));
        let limits: Vec<&str> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::LimitReached { limit, .. } => Some(limit.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(limits, ["repetition"]);
    }
}

#[tokio::test]
async fn a_steered_model_that_changes_course_goes_on() {
    let pytest = r#"{"command": ["pytest"]}"#;
    let mut turns: Vec<Vec<Item>> =
        (1..=3).map(|n| vec![call(&format!("c{n}"), "shell", pytest)]).collect();
    turns.push(vec![call("c4", "shell", r#"{"command": ["cat", "a.py"]}"#)]);
    turns.push(vec![say("Fix it\n\nDone.")]);
    let sandbox = FakeSandbox::default();
    let model = FakeModel::new(turns);
    let config = AgentConfig { repeat_limit: 3, ..AgentConfig::default() };
    let (result, _) = attempt(&sandbox, &model, &config).await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);
}

#[tokio::test]
async fn a_malformed_call_gets_a_valid_call_to_copy() {
    let cases = [
        ("shell", r#"{"command": "python3 -m pytest -q"}"#, "command"),
        ("shell", r#"{"command": ["ls"#, "command"),
        ("apply_patch", r#"{"patch": 1}"#, "input"),
        ("update_plan", r#"{"plan": "do it"}"#, "plan"),
    ];
    for (tool, arguments, field) in cases {
        let sandbox = FakeSandbox::default();
        let model = FakeModel::new(vec![vec![call("c1", tool, arguments)]]);
        let config = AgentConfig {
            patch_tool: errand_agent::PatchToolMode::Function,
            ..AgentConfig::default()
        };
        let (result, _) = attempt(&sandbox, &model, &config).await;
        assert_eq!(result.outcome.state, AttemptState::Succeeded);
        assert!(sandbox.commands().is_empty());
        let told = model.requests()[1]
            .input
            .iter()
            .find_map(|item| match item {
                Item::FunctionCallOutput { call_id, output } if call_id == "c1" => {
                    Some(output.clone())
                }
                _ => None,
            })
            .unwrap();
        assert!(!told.contains('<') && !told.contains('>'), "no placeholder: {told}");
        let example = told.split("A valid call looks like: ").nth(1).expect(&told);
        // The example is JSON that parses on its own, with the field the tool requires.
        let example: serde_json::Value = serde_json::Deserializer::from_str(example)
            .into_iter()
            .next()
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}: {told}"));
        assert!(example.get(field).is_some(), "{told}");
    }
    // Its own call corrected, when what it meant is plain.
    let sandbox = FakeSandbox::default();
    let model =
        FakeModel::new(vec![vec![call("c1", "shell", r#"{"command": "python3 -m pytest -q"}"#)]]);
    attempt(&sandbox, &model, &AgentConfig::default()).await;
    let told = format!("{:?}", model.requests()[1].input);
    assert!(
        told.contains(
            r#"Your call, corrected: {\"command\":[\"bash\",\"-lc\",\"python3 -m pytest -q\"]}"#
        ),
        "{told}"
    );
}

/// A recovered call's result goes back as a user message after the assistant's text, which every
/// wire format takes: the scripted server speaks each for real, and the client sends what a
/// provider would get.
#[tokio::test]
async fn a_recovered_call_replays_on_every_wire() {
    let script = format!(
        r#"
[[turns]]
[[turns.output]]
type = "message"
text = '''
```json
{SHELL_JSON}
```'''

[[turns]]
expect.last_user_message_contains = ["Errand ran the shell call in your message.", "Exit code: 0"]
[[turns.output]]
type = "message"
text = "Fix the test\n\nDone."
"#
    );
    for provider in [Provider::Responses, Provider::ChatCompletions, Provider::Anthropic] {
        let server = ScriptedModel::start(Script::from_toml(&script).unwrap()).await.unwrap();
        let client = ModelClient::new(ModelConfig {
            base_url: server.base_url(),
            model: "scripted".into(),
            api_key: Some("test-key".into()),
            max_retries: 0,
            provider,
            ..ModelConfig::default()
        })
        .unwrap();
        let sandbox = FakeSandbox::default();
        let mut log = MemoryLog::default();
        let result =
            run_attempt(&spec(), &sandbox, &client, &AgentConfig::default(), &mut log, &NoMessages)
                .await;
        assert_eq!(
            result.outcome.state,
            AttemptState::Succeeded,
            "{provider:?}: {}",
            result.outcome.reason
        );
        server.verify().unwrap_or_else(|e| panic!("{provider:?}: {e:?}"));
        assert_eq!(sandbox.commands().len(), 1);
        let body = server.requests()[1].to_string();
        assert!(!body.contains("text_1_1"), "{provider:?}: no made-up call id on the wire");
    }
}

#[tokio::test]
async fn a_4k_window_gets_the_compact_prompt_and_tighter_budgets() {
    let sandbox = FakeSandbox::default();
    let small =
        AgentConfig { context_window: Some(4096), ..AgentConfig::default() }.fitted_to_window();
    let model = FakeModel::new(vec![vec![say("Done\n\nNothing to do.")]]);
    attempt(&sandbox, &model, &small).await;
    let compact = model.requests()[0].instructions.clone();
    let large =
        AgentConfig { context_window: Some(200_000), ..AgentConfig::default() }.fitted_to_window();
    let model = FakeModel::new(vec![vec![say("Done\n\nNothing to do.")]]);
    attempt(&sandbox, &model, &large).await;
    let full = model.requests()[0].instructions.clone();
    assert!(compact.starts_with("You are Errand, fixing one task"), "{compact}");
    assert!(compact.len() * 2 < full.len(), "{} vs {} bytes", compact.len(), full.len());
    assert!(
        compact.contains("```bash"),
        "the text form small models use is still offered: {compact}"
    );
    assert!(small.instructions_budget < large.instructions_budget);
    assert!(small.model_output_bytes < large.model_output_bytes);
}
