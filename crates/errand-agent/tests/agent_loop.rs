//! The agent loop against a fake model and a fake sandbox: limits, tool errors, routing and
//! output recording, without a network or bubblewrap. (The real model wire format and the real
//! sandbox are covered by errand-model's and errand-sandbox's tests and by the end-to-end tests.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use errand_agent::{AgentConfig, AttemptSpec, MemoryLog, Model, run_attempt};
use errand_model::{Item, ModelError, ModelProgress, ModelRequest, ModelTurn, Role};
use errand_protocol::{AttemptState, Event, EventKind, FileChange, FileChangeKind, TokenUsage};
use errand_sandbox::{
    ExecOutcome, ExecRequest, PatchOutcome, Sandbox, SandboxError, WorkspaceDiff,
};

/// Answers each turn from a list; records every request.
struct FakeModel {
    turns: Mutex<Vec<Result<Vec<Item>, ModelError>>>,
    requests: Mutex<Vec<ModelRequest>>,
    hang: bool,
}

impl FakeModel {
    fn new(turns: Vec<Vec<Item>>) -> Self {
        Self {
            turns: Mutex::new(turns.into_iter().rev().map(Ok).collect()),
            requests: Mutex::default(),
            hang: false,
        }
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
        if self.hang {
            std::future::pending::<()>().await;
        }
        let next = self.turns.lock().unwrap().pop();
        let items =
            next.unwrap_or_else(|| Ok(vec![call("again", "shell", r#"{"command":["true"]}"#)]))?;
        Ok(ModelTurn {
            items,
            usage: TokenUsage { input: 10, cached_input: 2, output: 5, reasoning: 0 },
            response_id: None,
        })
    }
}

#[derive(Default)]
struct FakeSandbox {
    files: HashMap<String, String>,
    /// Output chunks per command name (argv[0]).
    outputs: HashMap<String, (Vec<&'static str>, i32)>,
    patches: Mutex<Vec<(String, String)>>,
    execs: Mutex<Vec<ExecRequest>>,
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
        if request.workdir.contains("missing") {
            return Err(SandboxError::NoSuchWorkdir(request.workdir));
        }
        let (chunks, code) = self.outputs.get(&request.command[0]).cloned().unwrap_or((vec![], 0));
        self.execs.lock().unwrap().push(request);
        for chunk in chunks {
            output(chunk.as_bytes());
        }
        Ok(ExecOutcome {
            exit_code: Some(code),
            signal: None,
            timed_out: false,
            duration: Duration::from_millis(3),
        })
    }
    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SandboxError> {
        Ok(self.files.get(path).map(|s| s.as_bytes().to_vec()))
    }
    async fn apply_patch(&self, patch: &str, workdir: &str) -> Result<PatchOutcome, SandboxError> {
        self.patches.lock().unwrap().push((patch.to_string(), workdir.to_string()));
        Ok(PatchOutcome {
            success: true,
            output: "Success. Updated the following files:\nM a.py\n".into(),
            changes: vec![FileChange {
                path: "a.py".into(),
                kind: FileChangeKind::Modified,
                insertions: 1,
                deletions: 1,
                binary: false,
            }],
        })
    }
    async fn diff(&self) -> Result<WorkspaceDiff, SandboxError> {
        Ok(WorkspaceDiff::default())
    }
}

fn call(id: &str, name: &str, arguments: &str) -> Item {
    Item::FunctionCall { call_id: id.into(), name: name.into(), arguments: arguments.into() }
}

fn say(text: &str) -> Item {
    Item::Message { role: Role::Assistant, text: text.into() }
}

fn spec() -> AttemptSpec {
    AttemptSpec { prompt: "do it".into(), workdir: String::new() }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::StateChanged { .. } => "state",
            EventKind::TurnStarted { .. } => "turn",
            EventKind::TokenUsage { .. } => "usage",
            EventKind::AgentMessage { .. } => "message",
            EventKind::CommandStarted { .. } => "command_started",
            EventKind::CommandOutput { .. } => "output",
            EventKind::CommandFinished { .. } => "command_finished",
            EventKind::PatchApplied { .. } => "patch",
            EventKind::PlanUpdated { .. } => "plan",
            EventKind::ToolError { .. } => "tool_error",
            EventKind::LimitReached { .. } => "limit",
            EventKind::DiffReady { .. } => "diff",
            EventKind::ReportReady { .. } => "report",
            EventKind::Finished { .. } => "finished",
            EventKind::InstructionsLoaded { .. } => "instructions",
            _ => "other",
        })
        .collect()
}

/// The tool output the model received for `call_id`.
fn tool_output(model: &FakeModel, call_id: &str) -> String {
    let requests = model.requests.lock().unwrap();
    requests
        .last()
        .unwrap()
        .input
        .iter()
        .find_map(|item| match item {
            Item::FunctionCallOutput { call_id: id, output }
            | Item::CustomToolCallOutput { call_id: id, output }
                if id == call_id =>
            {
                Some(output.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no output for {call_id}"))
}

#[tokio::test]
async fn output_is_recorded_in_numbered_chunks_and_the_report_is_checked() {
    let mut sandbox = FakeSandbox::default();
    sandbox.outputs.insert(
        "pytest".into(),
        (vec!["collected 2 items\nte", "st_a PASSED\ntest_b PASSED\n", "2 passed"], 0),
    );
    sandbox.files.insert("a.py".into(), "x = 1\ny = 2\n".into());
    sandbox.files.insert("AGENTS.md".into(), "Use pytest.".into());
    let model = FakeModel::new(vec![
        vec![call("c1", "shell", r#"{"command":["pytest"],"timeout_ms":5000}"#)],
        vec![say("Fix it\n\nSee a.py:L1-L2 and log:6#L2-L4; not a.py:L9.")],
    ]);
    let mut log = MemoryLog::default();
    let result = run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log).await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);

    let events = log.events();
    assert_eq!(
        kinds(events),
        [
            "state",
            "instructions",
            "turn",
            "usage",
            "command_started",
            "output",
            "output",
            "output",
            "command_finished",
            "turn",
            "usage",
            "message",
            "diff",
            "report",
            "state",
            "finished"
        ]
    );
    let firsts: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CommandOutput { first_line, .. } => Some(*first_line),
            _ => None,
        })
        .collect();
    assert_eq!(firsts, [1, 2, 4]);
    assert_eq!(events[4].seq, 5);
    let output = tool_output(&model, "c1");
    assert!(output.starts_with("Exit code: 0\n"), "{output}");
    assert!(output.contains("Log: log:5 (4 lines)"), "{output}");
    assert!(
        output.ends_with("Output:\ncollected 2 items\ntest_a PASSED\ntest_b PASSED\n2 passed"),
        "{output}"
    );
    assert_eq!(sandbox.execs.lock().unwrap()[0].timeout, Duration::from_millis(5000));

    let report = result.report.unwrap();
    assert_eq!(report.title, "Fix it");
    let problems: Vec<_> =
        report.citations.iter().map(|c| (c.raw.as_str(), c.problem.is_some())).collect();
    // log:6 is an output chunk, not a command: citations name the command_started event.
    assert_eq!(problems, [("a.py:L1-L2", false), ("log:6#L2-L4", true), ("a.py:L9", true)]);
    assert_eq!(report.checks.len(), 1);
    assert!(report.checks[0].passed);
    assert_eq!(result.usage.input, 20);
    // AGENTS.md reached the model.
    let first = &model.requests.lock().unwrap()[0];
    assert!(
        matches!(&first.input[0], Item::Message { role: Role::Developer, text } if text.contains("Use pytest."))
    );
}

#[tokio::test]
async fn tool_errors_go_back_to_the_model_and_the_loop_goes_on() {
    let sandbox = FakeSandbox::default();
    let model = FakeModel::new(vec![
        vec![
            call("c1", "shell", r#"{"cmd":"ls"}"#),
            call("c2", "browser", "{}"),
            call("c3", "shell", r#"{"command":["ls"],"workdir":"missing"}"#),
            call("c4", "update_plan", r#"{"plan":[{"step":"a","status":"completed"}]}"#),
            call("c5", "shell", r#"{"command":[]}"#),
        ],
        vec![say("Done")],
    ]);
    let mut log = MemoryLog::default();
    let result = run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log).await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded);
    assert!(
        tool_output(&model, "c1")
            .contains(r#"A valid call looks like: {"command": ["bash", "-lc", "ls -la"]"#)
    );
    assert!(tool_output(&model, "c2").contains("unknown tool `browser`"));
    assert_eq!(
        tool_output(&model, "c3"),
        "working directory `missing` does not exist in the sandbox"
    );
    assert_eq!(tool_output(&model, "c4"), "Plan updated.");
    assert!(tool_output(&model, "c5").contains("`command` must not be empty"));
    assert_eq!(kinds(log.events()).iter().filter(|k| **k == "tool_error").count(), 3);
}

#[tokio::test]
async fn patches_sent_through_the_shell_are_applied_inside_the_sandbox() {
    let sandbox = FakeSandbox::default();
    let patch = "*** Begin Patch\n*** Update File: a.py\n-x\n+y\n*** End Patch\n";
    let heredoc = format!("apply_patch <<'EOF'\n{patch}EOF\n");
    let model = FakeModel::new(vec![
        vec![
            call(
                "c1",
                "shell",
                &serde_json::json!({"command": ["apply_patch", patch], "workdir": "src"})
                    .to_string(),
            ),
            call(
                "c2",
                "shell",
                &serde_json::json!({"command": ["bash", "-lc", heredoc]}).to_string(),
            ),
            call("c3", "apply_patch", &serde_json::json!({"input": patch}).to_string()),
        ],
        vec![say("Done")],
    ]);
    let mut log = MemoryLog::default();
    let result = run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log).await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded);
    let patches = sandbox.patches.lock().unwrap();
    assert_eq!(patches.len(), 3);
    assert_eq!(patches[0], (patch.to_string(), "src".to_string()));
    assert!(patches[1].0.starts_with("<<'EOF'\n*** Begin Patch"));
    assert!(sandbox.execs.lock().unwrap().is_empty(), "no patch may run as a shell command");
    assert!(tool_output(&model, "c1").starts_with("Success."));
}

#[tokio::test]
async fn the_turn_limit_stops_the_attempt_with_a_reason_and_keeps_the_diff() {
    let sandbox = FakeSandbox::default();
    let model = FakeModel::new(vec![]);
    let config = AgentConfig { max_turns: 3, ..AgentConfig::default() };
    let mut log = MemoryLog::default();
    let result = run_attempt(&spec(), &sandbox, &model, &config, &mut log).await;
    assert_eq!(result.outcome.state, AttemptState::Failed);
    assert_eq!(result.outcome.reason, "the agent used all 3 turns without finishing");
    assert_eq!(result.turns, 3);
    assert_eq!(model.requests.lock().unwrap().len(), 3);
    assert!(result.diff.is_some() && result.report.is_none());
    let tail = kinds(log.events());
    assert_eq!(&tail[tail.len() - 4..], ["limit", "diff", "state", "finished"]);
}

#[tokio::test(start_paused = true)]
async fn the_wall_clock_ends_a_hung_attempt() {
    let sandbox = FakeSandbox::default();
    let mut model = FakeModel::new(vec![]);
    model.hang = true;
    let config = AgentConfig { attempt_timeout: Duration::from_secs(60), ..AgentConfig::default() };
    let mut log = MemoryLog::default();
    let result = run_attempt(&spec(), &sandbox, &model, &config, &mut log).await;
    assert_eq!(result.outcome.state, AttemptState::TimedOut);
    assert!(log.events().iter().any(|e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "attempt_wall_clock")));
}

#[tokio::test]
async fn a_model_failure_fails_the_attempt_with_its_message() {
    let sandbox = FakeSandbox::default();
    let model = FakeModel {
        turns: Mutex::new(vec![Err(ModelError::Config("no endpoint".into()))]),
        requests: Mutex::default(),
        hang: false,
    };
    let mut log = MemoryLog::default();
    let result = run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log).await;
    assert_eq!(result.outcome.state, AttemptState::Failed);
    assert!(
        result.outcome.reason.starts_with("the model request failed: "),
        "{}",
        result.outcome.reason
    );
    assert!(result.outcome.reason.contains("no endpoint"));
}

#[tokio::test]
async fn budgets_hold_to_the_turn_that_crosses_them() {
    // Each fake turn uses 10 input + 5 output tokens and asks to run `true`.
    let cases = [
        (
            AgentConfig { token_budget: Some(40), ..AgentConfig::default() },
            "token_budget",
            "45 tokens in 3 turns, over its budget of 40",
        ),
        (
            AgentConfig {
                prices: Some(errand_protocol::Prices {
                    input: 1000.0,
                    cached_input: None,
                    output: 2000.0,
                }),
                cost_budget_usd: Some(0.05),
                ..AgentConfig::default()
            },
            "cost_budget",
            "cost $0.0600 in 3 turns, over its budget of $0.05",
        ),
    ];
    for (config, limit, detail) in cases {
        let sandbox = FakeSandbox::default();
        let model = FakeModel::new(vec![]);
        let mut log = MemoryLog::default();
        let result = run_attempt(&spec(), &sandbox, &model, &config, &mut log).await;
        assert_eq!(result.outcome.state, AttemptState::Failed);
        assert!(result.outcome.reason.contains(detail), "{}", result.outcome.reason);
        assert_eq!(result.turns, 3);
        // The third turn's tool call was not carried out.
        assert_eq!(sandbox.execs.lock().unwrap().len(), 2, "{limit}");
        assert!(
            log.events()
                .iter()
                .any(|e| matches!(&e.kind, EventKind::LimitReached { limit: l, .. } if l == limit))
        );
        let last_usage = log
            .events()
            .iter()
            .rev()
            .find_map(|e| match &e.kind {
                EventKind::TokenUsage { total, total_cost_usd, .. } => {
                    Some((*total, *total_cost_usd))
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(last_usage.0.input + last_usage.0.output, 45);
        assert_eq!(last_usage.1.is_some(), config.prices.is_some());
    }
}
