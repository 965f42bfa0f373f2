//! The agent loop against a fake model and a fake sandbox: limits, tool errors, routing and
//! output recording, without a network or bubblewrap. (The real model wire format and the real
//! sandbox are covered by errand-model's and errand-sandbox's tests and by the end-to-end tests.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use errand_agent::{AgentConfig, AttemptSpec, MemoryLog, Model, NoMessages, run_attempt};
use errand_model::{Item, ModelError, ModelProgress, ModelRequest, ModelTurn, Role};
use errand_protocol::{AttemptState, Event, EventKind, FileChange, FileChangeKind, TokenUsage};
use errand_sandbox::{
    ExecOutcome, ExecRequest, LimitHit, PatchOutcome, Sandbox, SandboxError, WorkspaceDiff,
};

/// Answers each turn from a list; records every request.
#[derive(Default)]
struct FakeModel {
    turns: Mutex<Vec<Result<Vec<Item>, ModelError>>>,
    requests: Mutex<Vec<ModelRequest>>,
    hang: bool,
    /// Like a real endpoint: input tokens are the request's size (about 4 bytes a token), and a
    /// request over this many tokens is refused as too long.
    window: Option<u64>,
    /// Input tokens are the request's size, not a fixed 10.
    measure_input: bool,
    /// Summary requests (compaction) answered so far; they do not consume scripted turns.
    summaries: Mutex<Vec<ModelRequest>>,
    /// Summaries of ~250 kB, far over any sensible size.
    verbose_summaries: bool,
}

impl FakeModel {
    fn new(turns: Vec<Vec<Item>>) -> Self {
        Self { turns: Mutex::new(turns.into_iter().rev().map(Ok).collect()), ..Self::default() }
    }
}

fn request_tokens(request: &ModelRequest) -> u64 {
    (request.instructions.len() + serde_json::to_string(&request.input).unwrap().len()) as u64 / 4
}

fn is_summary_request(request: &ModelRequest) -> bool {
    matches!(request.input.last(), Some(Item::Message { role: Role::User, text })
        if text.contains("about to be compacted"))
}

#[async_trait::async_trait]
impl Model for FakeModel {
    async fn turn(
        &self,
        request: &ModelRequest,
        _progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, ModelError> {
        let tokens = request_tokens(request);
        if let Some(window) = self.window
            && tokens > window
        {
            let message = format!("{tokens} tokens > {window}");
            return Err(ModelError::ContextLengthExceeded { model: "fake".into(), message });
        }
        let input = if self.measure_input { tokens } else { 10 };
        let usage = TokenUsage { input, cached_input: 2, output: 5, reasoning: 0 };
        if is_summary_request(request) {
            let mut summaries = self.summaries.lock().unwrap();
            summaries.push(request.clone());
            let mut text = format!("SUMMARY {}: ran the big commands", summaries.len());
            if self.verbose_summaries {
                text.push_str(&"\nand then some more detail".repeat(10_000));
            }
            return Ok(ModelTurn { items: vec![say(&text)], usage, response_id: None });
        }
        self.requests.lock().unwrap().push(request.clone());
        if self.hang {
            std::future::pending::<()>().await;
        }
        let next = self.turns.lock().unwrap().pop();
        let items =
            next.unwrap_or_else(|| Ok(vec![call("again", "shell", r#"{"command":["true"]}"#)]))?;
        Ok(ModelTurn { items, usage, response_id: None })
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
        // `memhog` runs into the attempt's memory limit, as a real sandbox reports it.
        let limit_hit = (request.command[0] == "memhog").then(|| LimitHit {
            limit: "memory".into(),
            detail: "the attempt's memory limit (64.0 MiB) was reached; the kernel killed a \
                     process of the command"
                .into(),
        });
        self.execs.lock().unwrap().push(request);
        for chunk in chunks {
            output(chunk.as_bytes());
        }
        Ok(ExecOutcome {
            exit_code: Some(code),
            signal: None,
            timed_out: false,
            duration: Duration::from_millis(3),
            limit_hit,
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
    AttemptSpec {
        prompt: "do it".into(),
        workdir: String::new(),
        continues: None,
        finish_checks: true,
    }
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
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
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
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
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
async fn a_sandbox_limit_that_bit_is_recorded_and_told_to_the_model() {
    let mut sandbox = FakeSandbox::default();
    sandbox.outputs.insert("memhog".into(), (vec!["Killed\n"], 137));
    let model = FakeModel::new(vec![
        vec![call("c1", "shell", r#"{"command":["memhog"]}"#)],
        vec![call("c2", "shell", r#"{"command":["true"]}"#)],
        vec![say("Done")],
    ]);
    let mut log = MemoryLog::default();
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
    // A limit that bit stops the command, not the attempt.
    assert_eq!(result.outcome.state, AttemptState::Succeeded);
    let limits: Vec<(&str, &str)> = log
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LimitReached { limit, detail } => Some((limit.as_str(), detail.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(limits.len(), 1, "{limits:?}");
    assert_eq!(limits[0].0, "memory");
    assert!(limits[0].1.contains("64.0 MiB"), "{limits:?}");
    let told = tool_output(&model, "c1");
    assert!(told.contains("Note: the attempt's memory limit (64.0 MiB) was reached"), "{told}");
    assert!(!tool_output(&model, "c2").contains("Note:"));
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
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
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
    let result = run_attempt(&spec(), &sandbox, &model, &config, &mut log, &NoMessages).await;
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
    let result = run_attempt(&spec(), &sandbox, &model, &config, &mut log, &NoMessages).await;
    assert_eq!(result.outcome.state, AttemptState::TimedOut);
    assert!(log.events().iter().any(|e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "attempt_wall_clock")));
}

#[tokio::test]
async fn a_model_failure_fails_the_attempt_with_its_message() {
    let sandbox = FakeSandbox::default();
    let model = FakeModel {
        turns: Mutex::new(vec![Err(ModelError::Config("no endpoint".into()))]),
        ..FakeModel::default()
    };
    let mut log = MemoryLog::default();
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
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
        let result = run_attempt(&spec(), &sandbox, &model, &config, &mut log, &NoMessages).await;
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

/// A sandbox whose `big` command prints about `bytes` of output, in 100-byte lines.
fn sandbox_with_big_output(bytes: usize) -> FakeSandbox {
    let line: &'static str = Box::leak(format!("{}\n", "b".repeat(99)).into_boxed_str());
    let mut sandbox = FakeSandbox::default();
    sandbox.outputs.insert("big".into(), (vec![line; bytes / 100], 0));
    sandbox.outputs.insert("small".into(), (vec!["ok\n"], 0));
    sandbox.files.insert("a.py".into(), "x = 1\n".into());
    sandbox
}

fn run(id: &str, command: &str) -> Vec<Item> {
    vec![call(id, "shell", &format!(r#"{{"command":["{command}"]}}"#))]
}

/// Every call in a request has its output and every output its call.
fn assert_calls_paired(request: &ModelRequest) {
    let calls: Vec<&str> = request
        .input
        .iter()
        .filter_map(|i| match i {
            Item::FunctionCall { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
        .collect();
    let outputs: Vec<&str> = request
        .input
        .iter()
        .filter_map(|i| match i {
            Item::FunctionCallOutput { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(calls, outputs, "calls and outputs must pair up");
}

fn compactions(events: &[Event]) -> Vec<(String, u32, u32, u32, u64, u64)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ContextCompacted {
                trigger,
                turns_summarized,
                turns_kept,
                turns_dropped,
                tokens_before,
                tokens_after,
                ..
            } => Some((
                trigger.clone(),
                *turns_summarized,
                *turns_kept,
                *turns_dropped,
                *tokens_before,
                *tokens_after,
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_long_run_is_compacted_near_the_window_and_keeps_task_plan_and_recent_turns() {
    let sandbox = sandbox_with_big_output(6000);
    let plan = r#"{"plan":[{"step":"run the big ones","status":"in_progress"}]}"#;
    let mut turns = vec![vec![call("p1", "update_plan", plan)]];
    for n in 1..=6 {
        turns.push(run(&format!("big{n}"), "big"));
    }
    turns.push(run("small1", "small"));
    turns.push(vec![say("Done\n\nThe first run: log:7#L1-L2; a.py:L1.")]);
    let model = FakeModel { measure_input: true, ..FakeModel::new(turns) };
    // ~1.5k tokens a big turn: the 6.4k-token threshold is crossed after a few of them.
    let config = AgentConfig { context_window: Some(8_000), ..AgentConfig::default() };
    let mut log = MemoryLog::default();
    let result = run_attempt(&spec(), &sandbox, &model, &config, &mut log, &NoMessages).await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);

    let done = compactions(log.events());
    assert!(!done.is_empty(), "no compaction in {:?}", kinds(log.events()));
    for (trigger, summarized, _kept, dropped, before, after) in &done {
        assert_eq!(trigger, "auto");
        assert!(*summarized >= 1 && *dropped == 0);
        assert!(before >= &6_400 && after < before, "{before} → {after}");
    }
    let requests = model.requests.lock().unwrap();
    let summaries = model.summaries.lock().unwrap();
    assert_eq!(summaries.len(), done.len());
    // The summary request is the conversation so far, under the same instructions and tools.
    let asked = &summaries[0];
    assert_eq!(asked.instructions, requests[0].instructions);
    assert_eq!(asked.tools, requests[0].tools);
    assert!(serde_json::to_string(&asked.input).unwrap().contains("big1"));

    // The first request after the first compaction: head, bridge, then whole recent turns.
    let first_after = requests
        .iter()
        .find(|r| serde_json::to_string(&r.input).unwrap().contains("SUMMARY 1"))
        .expect("a request carries the summary");
    let input = &first_after.input;
    assert!(
        matches!(&input[0], Item::Message { role: Role::Developer, text } if text.contains("<environment>"))
    );
    assert!(matches!(&input[1], Item::Message { role: Role::User, text } if text == "do it"));
    let Item::Message { role: Role::User, text: bridge } = &input[2] else {
        panic!("no bridge message: {:?}", input[2])
    };
    assert!(bridge.contains("<summary>\nSUMMARY 1: ran the big commands\n</summary>"), "{bridge}");
    assert!(bridge.contains("- [~] run the big ones"), "the plan survives: {bridge}");
    let text = serde_json::to_string(input).unwrap();
    assert!(!text.contains("\"p1\""), "the summarised turns are gone");
    assert!(!text.contains("\"big1\""), "the summarised turns are gone");
    assert!(request_tokens(first_after) < 6_400);
    for request in requests.iter() {
        assert_calls_paired(request);
    }

    // The summary requests' tokens count in the totals, and log citations from before the
    // compaction still hold (the log is not the conversation).
    let turn_usage: u64 = log
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TokenUsage { usage, .. } => Some(usage.input),
            _ => None,
        })
        .sum();
    assert!(result.usage.input > turn_usage);
    let first_command =
        log.events().iter().find(|e| matches!(e.kind, EventKind::CommandStarted { .. }));
    assert_eq!(first_command.unwrap().seq, 7);
    let report = result.report.unwrap();
    assert!(report.citations.iter().all(|c| c.problem.is_none()), "{:?}", report.citations);
}

#[tokio::test]
async fn a_request_refused_as_too_long_is_compacted_and_retried_once() {
    let sandbox = sandbox_with_big_output(6000);
    let mut turns = Vec::new();
    for n in 1..=4 {
        turns.push(run(&format!("big{n}"), "big"));
    }
    turns.push(vec![say("Done")]);
    // No configured window: only the endpoint's refusal triggers compaction.
    let model = FakeModel { window: Some(5_000), measure_input: true, ..FakeModel::new(turns) };
    let mut log = MemoryLog::default();
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);
    let done = compactions(log.events());
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].0, "context_length_exceeded");
    // Every scripted turn was answered once: the refused request was retried, not skipped.
    assert_eq!(result.turns, 5);
    assert_eq!(sandbox.execs.lock().unwrap().len(), 4, "no command ran twice");
}

#[tokio::test]
async fn a_summary_request_that_is_too_long_leaves_out_the_oldest_turns() {
    // The window fits the last turns but not the summary request of all of them.
    let sandbox = sandbox_with_big_output(9000);
    let mut turns = Vec::new();
    for n in 1..=3 {
        turns.push(run(&format!("big{n}"), "big"));
    }
    turns.push(vec![say("Done")]);
    let model = FakeModel { window: Some(6_000), measure_input: true, ..FakeModel::new(turns) };
    let mut log = MemoryLog::default();
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);
    let done = compactions(log.events());
    assert!(done.iter().any(|c| c.3 > 0), "{done:?}");
    let summaries = model.summaries.lock().unwrap();
    assert!(summaries.iter().all(|r| request_tokens(r) <= 6_000));
}

#[tokio::test]
async fn an_overflow_that_compaction_cannot_fix_fails_with_a_clear_reason() {
    // The very first request is too long: there is nothing older to summarise.
    let sandbox = FakeSandbox::default();
    let model = FakeModel { window: Some(100), ..FakeModel::new(vec![vec![say("Done")]]) };
    let mut log = MemoryLog::default();
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
    assert_eq!(result.outcome.state, AttemptState::Failed);
    assert!(
        result.outcome.reason.contains("exceeds the model's context window and could not be compacted: there are no older turns"),
        "{}",
        result.outcome.reason
    );

    // Compacted, but the conversation is still too long: one retry, then a failure that says so.
    let sandbox = sandbox_with_big_output(4000);
    let too_long =
        || Err(ModelError::ContextLengthExceeded { model: "fake".into(), message: "no".into() });
    let turns = vec![too_long(), too_long(), Ok(run("b2", "big")), Ok(run("b1", "big"))];
    let model = FakeModel { turns: Mutex::new(turns), ..FakeModel::default() };
    let mut log = MemoryLog::default();
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
    assert_eq!(result.outcome.state, AttemptState::Failed);
    assert!(
        result.outcome.reason.starts_with("the model request failed (after compacting it): "),
        "{}",
        result.outcome.reason
    );
    assert_eq!(compactions(log.events()).len(), 1);
}

/// Reports a retry, then finishes only once the retry has been recorded.
struct RetryingModel {
    recorded: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl Model for RetryingModel {
    async fn turn(
        &self,
        _request: &ModelRequest,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, ModelError> {
        progress(ModelProgress::Retrying {
            attempt: 1,
            delay: Duration::from_millis(1500),
            error: "HTTP 503".into(),
        });
        self.recorded.notified().await;
        Ok(ModelTurn { items: vec![say("Done")], ..ModelTurn::default() })
    }
}

#[tokio::test]
async fn model_retries_are_recorded_while_the_turn_is_still_running() {
    let model = std::sync::Arc::new(RetryingModel { recorded: tokio::sync::Notify::new() });
    let seen = std::sync::Arc::clone(&model);
    let mut log = MemoryLog::new(move |event| {
        if matches!(event.kind, EventKind::ModelRetry { .. }) {
            seen.recorded.notify_one();
        }
    });
    let sandbox = FakeSandbox::default();
    let (spec, config) = (spec(), AgentConfig::default());
    let run = run_attempt(&spec, &sandbox, model.as_ref(), &config, &mut log, &NoMessages);
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the retry event must be recorded before the turn ends");
    assert_eq!(result.outcome.state, AttemptState::Succeeded);
    assert!(log.events().iter().any(|e| matches!(&e.kind,
        EventKind::ModelRetry { attempt: 1, delay_ms: 1500, error } if error == "HTTP 503")));
}

#[tokio::test]
async fn an_overlong_summary_is_cut_so_compaction_still_frees_room() {
    let sandbox = sandbox_with_big_output(6000);
    let mut turns: Vec<Vec<Item>> = (1..=6).map(|n| run(&format!("big{n}"), "big")).collect();
    turns.push(vec![say("Done")]);
    let model = FakeModel { measure_input: true, verbose_summaries: true, ..FakeModel::new(turns) };
    let config = AgentConfig { context_window: Some(8_000), ..AgentConfig::default() };
    let mut log = MemoryLog::default();
    let result = run_attempt(&spec(), &sandbox, &model, &config, &mut log, &NoMessages).await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded, "{}", result.outcome.reason);
    let summary = log
        .events()
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ContextCompacted { summary, .. } => Some(summary.clone()),
            _ => None,
        })
        .expect("a compaction");
    assert!(summary.starts_with("SUMMARY 1: ran the big commands"), "{summary:.200}");
    assert!(summary.len() <= 8_000 * 4 + 200, "{} bytes", summary.len());
    let requests = model.requests.lock().unwrap();
    assert!(requests.iter().all(|r| request_tokens(r) < 8_000), "the window held");
}

#[tokio::test]
async fn a_turn_with_several_calls_is_replayed_as_the_calls_then_their_results() {
    let sandbox = FakeSandbox::default();
    let model = FakeModel::new(vec![
        vec![
            Item::Reasoning {
                id: "r1".into(),
                summary: vec![],
                encrypted_content: Some("e".into()),
            },
            call("c1", "shell", r#"{"command":["ls"]}"#),
            call("c2", "shell", r#"{"command":["pwd"]}"#),
        ],
        vec![say("Done")],
    ]);
    let mut log = MemoryLog::default();
    let result =
        run_attempt(&spec(), &sandbox, &model, &AgentConfig::default(), &mut log, &NoMessages)
            .await;
    assert_eq!(result.outcome.state, AttemptState::Succeeded);
    let requests = model.requests.lock().unwrap();
    let shape: Vec<String> = requests[1].input[2..]
        .iter()
        .map(|item| match item {
            Item::Reasoning { .. } => "reasoning".to_string(),
            Item::FunctionCall { call_id, .. } => format!("call {call_id}"),
            Item::FunctionCallOutput { call_id, .. } => format!("output {call_id}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(shape, ["reasoning", "call c1", "call c2", "output c1", "output c2"]);
    let execs = sandbox.execs.lock().unwrap();
    let commands: Vec<&str> = execs.iter().map(|r| r.command[0].as_str()).collect();
    assert_eq!(commands, ["ls", "pwd"], "run in the model's order");
}
