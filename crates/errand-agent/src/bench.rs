//! How much the agent loop itself costs per turn (`errand bench agent`): everything but waiting
//! for the model and running commands. A zero-latency model answers every turn at once (a
//! reasoning summary and a shell call, a patch every fifth turn, a plan every tenth, then a final
//! message with citations) and a sandbox that does nothing answers every command at once with 60
//! lines of output. The time between two `turn_started` events is then the loop's own work:
//! recording events, keeping and truncating output, parsing tool calls, checking budgets and the
//! compaction threshold, and cloning the growing conversation into the next request.
//!
//! The baseline, measured in the same run, is the time to encode each turn's request as JSON
//! (what any client must do per turn with a conversation of that size): the ratio of the two
//! is comparable between noisy machines.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use errand_model::{Item, ModelError, ModelProgress, ModelRequest, ModelTurn, Role};
use errand_protocol::{AttemptState, EventKind, FileChange, FileChangeKind, TokenUsage};
use errand_sandbox::bench::percentile;
use errand_sandbox::{
    ExecOutcome, ExecRequest, PatchOutcome, Sandbox, SandboxError, WorkspaceDiff,
};

use crate::events::MemoryLog;
use crate::inbox::NoMessages;
use crate::model::Model;
use crate::run::{AgentConfig, AttemptSpec, run_attempt};

/// Percentiles over a run's turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` without samples.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |p| percentile(&sorted, p);
        Some(Self { p50: rank(50), p90: rank(90), p99: rank(99), max: *sorted.last()? })
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LoopBench {
    pub turns: u32,
    /// Per turn: from one `turn_started` to the next, less the baseline work done in the model.
    pub overhead: Percentiles,
    /// Per turn: JSON-encoding the request the loop handed to the model.
    pub encode: Percentiles,
    pub total: Duration,
    /// Events recorded in the run.
    pub events: usize,
    /// Bytes of conversation in the last request.
    pub final_request_bytes: usize,
}

/// Runs one attempt of `turns` turns (at least 2) against the zero-latency model and sandbox.
pub async fn agent_loop(turns: u32) -> Result<LoopBench, String> {
    let turns = turns.max(2);
    let model = ZeroModel { turns, encode: Mutex::default(), calls: Mutex::new(0) };
    let starts = Arc::new(Mutex::new(Vec::with_capacity(turns as usize + 1)));
    let marks = Arc::clone(&starts);
    let mut log = MemoryLog::new(move |event| {
        if matches!(event.kind, EventKind::TurnStarted { .. } | EventKind::DiffReady { .. }) {
            marks.lock().unwrap_or_else(|e| e.into_inner()).push(Instant::now());
        }
    });
    let config = AgentConfig {
        max_turns: turns + 1,
        context_window: Some(u64::MAX / 2),
        ..AgentConfig::default()
    };
    let spec = AttemptSpec {
        prompt: "Fix the failing test in src/.".into(),
        workdir: String::new(),
        continues: None,
        finish_checks: true,
    };
    let clock = Instant::now();
    let result = run_attempt(&spec, &NullSandbox, &model, &config, &mut log, &NoMessages).await;
    let total = clock.elapsed();
    if result.outcome.state != AttemptState::Succeeded {
        return Err(format!("the benchmark attempt did not succeed: {}", result.outcome.reason));
    }
    let starts = starts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let encode = model.encode.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (overhead, encode_times): (Vec<Duration>, Vec<Duration>) = starts
        .windows(2)
        .zip(&encode)
        .map(|(pair, (encode, _))| {
            (pair[1].duration_since(pair[0]).saturating_sub(*encode), *encode)
        })
        .unzip();
    let final_request_bytes = encode.last().map_or(0, |(_, bytes)| *bytes);
    Ok(LoopBench {
        turns: result.turns,
        overhead: Percentiles::of(&overhead).ok_or("no turns were measured")?,
        encode: Percentiles::of(&encode_times).ok_or("no turns were measured")?,
        total,
        events: log.events().len(),
        final_request_bytes,
    })
}

/// Answers at once; times the JSON encoding of each request (the baseline).
struct ZeroModel {
    turns: u32,
    /// Per call: encoding time and encoded bytes.
    encode: Mutex<Vec<(Duration, usize)>>,
    calls: Mutex<u32>,
}

const SOURCE: &str = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n";

#[async_trait::async_trait]
impl Model for ZeroModel {
    async fn turn(
        &self,
        request: &ModelRequest,
        _progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, ModelError> {
        let clock = Instant::now();
        let body = serde_json::to_vec(&(&request.instructions, &request.input, &request.tools))
            .map_err(|e| ModelError::Config(e.to_string()))?;
        let encoded = clock.elapsed();
        self.encode.lock().unwrap_or_else(|e| e.into_inner()).push((encoded, body.len()));
        let turn = {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            *calls += 1;
            *calls
        };
        let reasoning = Item::Reasoning {
            id: format!("rs_{turn}"),
            summary: vec![format!("Turn {turn}: read the next module and check the tests.")],
            encrypted_content: None,
        };
        let items = if turn >= self.turns {
            // log:5 is the first command_started (state, turn, usage, reasoning, command).
            vec![Item::Message {
                role: Role::Assistant,
                text: "Fix add in src/calc.py\n\nThe sum was wrong (src/calc.py:L1-L2); the \
                       tests pass (log:5#L1-L3)."
                    .into(),
            }]
        } else if turn % 10 == 0 {
            let plan = r#"{"plan":[{"step":"read","status":"completed"},{"step":"fix","status":"in_progress"}]}"#;
            vec![reasoning, call(turn, "update_plan", plan.into())]
        } else if turn % 5 == 0 {
            vec![
                reasoning,
                Item::CustomToolCall {
                    call_id: format!("call_{turn}"),
                    name: "apply_patch".into(),
                    input: "*** Begin Patch\n*** Update File: src/calc.py\n@@\n-    return a - b\n\
                            +    return a + b\n*** End Patch\n"
                        .into(),
                },
            ]
        } else {
            let command = format!(
                r#"{{"command":["bash","-lc","sed -n 1,60p src/m{turn}.py && python3 -m pytest -q"],"timeout_ms":60000}}"#
            );
            vec![reasoning, call(turn, "shell", command)]
        };
        Ok(ModelTurn {
            items,
            usage: TokenUsage { input: 1_000, cached_input: 800, output: 100, reasoning: 40 },
            response_id: None,
        })
    }
}

fn call(turn: u32, name: &str, arguments: String) -> Item {
    Item::FunctionCall { call_id: format!("call_{turn}"), name: name.into(), arguments }
}

/// Does nothing, at once: 60 lines of output per command, every patch applies.
struct NullSandbox;

#[async_trait::async_trait]
impl Sandbox for NullSandbox {
    fn workspace_dir(&self) -> &str {
        "/workspace"
    }

    fn isolation(&self) -> Vec<String> {
        vec!["none (benchmark)".into()]
    }

    async fn exec(
        &self,
        _request: ExecRequest,
        output: &mut (dyn for<'chunk> FnMut(&'chunk [u8]) + Send),
    ) -> Result<ExecOutcome, SandboxError> {
        const LINE: &str = "tests/test_calc.py::test_add_handles_negative_numbers PASSED [ 42%]\n";
        let chunk = LINE.repeat(30);
        output(chunk.as_bytes());
        output(chunk.as_bytes());
        Ok(ExecOutcome {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            duration: Duration::ZERO,
            limit_hit: None,
        })
    }

    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SandboxError> {
        Ok((path == "src/calc.py").then(|| SOURCE.as_bytes().to_vec()))
    }

    async fn apply_patch(
        &self,
        _patch: &str,
        _workdir: &str,
    ) -> Result<PatchOutcome, SandboxError> {
        Ok(PatchOutcome {
            success: true,
            output: "Success. Updated the following files:\nM src/calc.py\n".into(),
            changes: vec![FileChange {
                path: "src/calc.py".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_short_run_measures_every_turn() {
        let bench = agent_loop(12).await.unwrap();
        assert_eq!(bench.turns, 12);
        assert!(bench.events > 12 * 4, "{} events", bench.events);
        assert!(bench.final_request_bytes > 12 * 1_000);
        assert!(bench.overhead.p50 <= bench.overhead.max);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples).unwrap();
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max),
            (
                Duration::from_millis(50),
                Duration::from_millis(90),
                Duration::from_millis(99),
                Duration::from_millis(100)
            )
        );
        assert!(Percentiles::of(&[]).is_none());
    }
}
