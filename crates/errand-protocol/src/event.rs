//! The work log: an append-only sequence of events per attempt.
//!
//! Events are the source of truth for what happened (design: "Events are the source of truth").
//! Each has a `seq` that is monotonic within its attempt. Command output is recorded in chunks
//! that carry the number of their first line, so a log citation `log:<seq>#L3-L9` (where `<seq>`
//! is the `command_started` event) always resolves to the same bytes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::report::Report;

/// One entry of an attempt's work log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Position in the attempt's log, starting at 1, with no gaps.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the event was recorded.
    pub at_ms: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Tagged with `type` in JSON, e.g. `{"type":"command_started",...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The attempt changed state; `reason` says why when it is not obvious.
    StateChanged {
        state: AttemptState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The environment's setup (`phase: "setup"`) or maintenance script started, building or
    /// running over the snapshot `snapshot` (design, data flow step 2).
    SetupStarted { phase: String, snapshot: String },
    /// A chunk of that script's output, every secret value replaced by `[secret:NAME]`.
    SetupOutput { phase: String, text: String },
    /// The script ended; `exit_code` is `None` when it was killed or timed out.
    SetupFinished { phase: String, exit_code: Option<i32>, duration_ms: u64 },
    /// The attempt's snapshot is ready: built for it, or `reused` (then `maintenance_ran` says
    /// whether the maintenance script ran over it).
    SnapshotReady { snapshot: String, reused: bool, maintenance_ran: bool },
    /// The sandbox is ready: which backend, what isolation and limits apply, how long it took.
    SandboxReady { backend: String, isolation: Vec<String>, base_commit: String, duration_ms: u64 },
    /// Instructions found in AGENTS.md files and given to the model, nearest last.
    InstructionsLoaded { files: Vec<String>, bytes: u64, truncated: bool },
    /// A follow-up attempt starts from its parent's final state: the parent's diff was applied
    /// over the base commit (`files`) and the parent's conversation continues with `prompt`.
    FollowupStarted { parent: crate::AttemptId, files: Vec<FileChange>, prompt: String },
    /// A model turn began (1-based).
    TurnStarted { turn: u32 },
    /// A message the user sent to the running attempt, delivered to the model at this turn
    /// boundary (before the turn's model request).
    UserMessage { text: String },
    /// Text the agent said to the user.
    AgentMessage { text: String },
    /// A summary of the model's reasoning, when the provider gives one.
    Reasoning { text: String },
    /// A command is about to run. Its `seq` is the id used by log citations.
    CommandStarted { call_id: String, command: Vec<String>, workdir: String, timeout_ms: u64 },
    /// A chunk of a command's combined stdout/stderr. `first_line` is the 1-based number, within
    /// that command's output, of the first line this chunk starts; chunks end on line boundaries
    /// except the last one of a command.
    CommandOutput { call_id: String, first_line: u64, text: String },
    /// A command ended. `exit_code` is `None` when it was killed by a signal or timed out.
    CommandFinished {
        call_id: String,
        exit_code: Option<i32>,
        timed_out: bool,
        duration_ms: u64,
        output_lines: u64,
        output_bytes: u64,
        /// Bytes of output dropped because the command wrote more than the per-command cap.
        dropped_bytes: u64,
    },
    /// The agent applied (or failed to apply) a patch.
    PatchApplied {
        call_id: String,
        success: bool,
        changes: Vec<FileChange>,
        /// What the patch engine said: a summary on success, the error on failure.
        output: String,
    },
    /// The agent's plan, as last updated.
    PlanUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        explanation: Option<String>,
        plan: Vec<PlanItem>,
    },
    /// A tool call that could not be carried out (unknown tool, bad arguments); the model was told.
    ToolError { call_id: String, tool: String, message: String },
    /// The model wrote a tool call as text (its endpoint returned no call) and Errand ran it as
    /// call `call_id`; the call's own events follow. `form` says where it was written:
    /// `tool_call_tag`, `json_block`, `bare_json` or `bash_block` (errand-agent's `recover.rs`).
    ToolCallRecovered { call_id: String, tool: String, form: String },
    /// Tokens used by one model turn, the attempt's running total, and their cost in US dollars
    /// when the model has a price in the configuration.
    TokenUsage {
        turn: u32,
        usage: TokenUsage,
        total: TokenUsage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_cost_usd: Option<f64>,
    },
    /// Errand ran the finish checks (the environment's and AGENTS.md's) when the agent said it
    /// was done. `failed` lists the commands that failed; when there are rounds left the
    /// failures went back to the model for another turn, otherwise the attempt ends failed.
    FinishChecks { round: u32, passed: bool, failed: Vec<String>, rounds_left: u32 },
    /// A configured limit stopped something (turns, wall clock, output bytes, ...).
    LimitReached { limit: String, detail: String },
    /// The model endpoint failed and Errand will retry after `delay_ms`.
    ModelRetry { attempt: u32, delay_ms: u64, error: String },
    /// The conversation neared the model's context window (`trigger: "auto"`) or the endpoint
    /// refused it as too long (`"context_length_exceeded"`), so the model summarised its older
    /// turns and the summary replaced them. The task, the AGENTS.md instructions, the plan and
    /// the most recent turns are kept verbatim. Token counts are estimates.
    ContextCompacted {
        turn: u32,
        trigger: String,
        tokens_before: u64,
        tokens_after: u64,
        /// Model turns replaced by the summary, and the recent turns kept as they were.
        turns_summarized: u32,
        turns_kept: u32,
        /// The oldest turns left out of the summary because even the summary request did not
        /// fit the context window.
        #[serde(default, skip_serializing_if = "is_zero")]
        turns_dropped: u32,
        summary: String,
        /// Tokens the summary request used (also counted in the attempt's totals and budgets).
        usage: TokenUsage,
    },
    /// A connection the agent phase made through the environment's egress proxy (design: "Two
    /// phases, two network policies"), recorded when it ended. `decision` is `allowed` (then
    /// `address` is where the proxy connected), `denied` (by the environment's policy, or as a
    /// bad request) or `failed` (allowed, but the origin could not be resolved or reached);
    /// `status` and `reason` are the proxy's answer when it denied or failed. The bytes are the
    /// payload each way: the tunnelled bytes, or the request body and the origin's response.
    EgressConnection {
        /// As the client named it; empty when the request never got as far as naming one.
        host: String,
        port: u16,
        /// `CONNECT` for tunnels (HTTPS), else the plain HTTP request's method.
        method: String,
        decision: EgressDecision,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        bytes_sent: u64,
        bytes_received: u64,
    },
    /// The final diff was computed.
    DiffReady { files: Vec<FileChange> },
    /// The final report, citations checked.
    ReportReady { report: Report },
    /// The attempt is over. Always the last event.
    Finished { outcome: AttemptOutcome },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The life of an attempt: `queued → preparing → running → {succeeded, failed, cancelled, timed_out}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptState {
    Queued,
    Preparing,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl AttemptState {
    /// Whether no further transition can happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled | Self::TimedOut)
    }
}

/// What the egress proxy did with one connection (see [`EventKind::EgressConnection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EgressDecision {
    Allowed,
    Denied,
    Failed,
}

/// How an attempt ended, with the reason a person reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttemptOutcome {
    pub state: AttemptState,
    pub reason: String,
}

/// Token counts for one turn or a whole attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenUsage {
    pub input: u64,
    pub cached_input: u64,
    pub output: u64,
    pub reasoning: u64,
}

impl TokenUsage {
    pub fn add(&mut self, other: &TokenUsage) {
        self.input += other.input;
        self.cached_input += other.cached_input;
        self.output += other.output;
        self.reasoning += other.reasoning;
    }
}

/// What a model's tokens cost, in US dollars per million tokens. Reasoning tokens are billed as
/// output (they are part of `output`), cached input at its own rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub input: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
    pub output: f64,
}

impl Prices {
    /// The cost of `usage`; cached input falls back to the input rate when no cached rate is set.
    pub fn cost_usd(&self, usage: &TokenUsage) -> f64 {
        let cached = usage.cached_input.min(usage.input);
        let uncached = usage.input - cached;
        let per_token = 1e-6;
        (uncached as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + usage.output as f64 * self.output)
            * per_token
    }
}

/// One step of the agent's plan (the `update_plan` tool's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanItem {
    pub step: String,
    pub status: PlanStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Pending,
    InProgress,
    Completed,
}

/// One file touched by a patch or by the final diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileChange {
    pub path: String,
    #[serde(flatten)]
    pub kind: FileChangeKind,
    /// Lines added and removed; both 0 for binary files.
    #[serde(default)]
    pub insertions: u64,
    #[serde(default)]
    pub deletions: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum FileChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed {
        from: String,
    },
    /// Only the file mode changed (e.g. made executable).
    ModeChanged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_type_tag() {
        let event = Event {
            seq: 3,
            at_ms: 1,
            kind: EventKind::CommandStarted {
                call_id: "c1".into(),
                command: vec!["cargo".into(), "test".into()],
                workdir: "/workspace".into(),
                timeout_ms: 1000,
            },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "command_started");
        assert_eq!(json["seq"], 3);
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
    }

    #[test]
    fn file_change_renames_carry_their_source() {
        let change = FileChange {
            path: "b.rs".into(),
            kind: FileChangeKind::Renamed { from: "a.rs".into() },
            insertions: 1,
            deletions: 0,
            binary: false,
        };
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(json["change"], "renamed");
        assert_eq!(json["from"], "a.rs");
        assert_eq!(serde_json::from_value::<FileChange>(json).unwrap(), change);
    }

    #[test]
    fn cost_counts_cached_input_at_its_rate() {
        let prices = Prices { input: 2.0, cached_input: Some(0.5), output: 8.0 };
        let usage = TokenUsage {
            input: 1_000_000,
            cached_input: 400_000,
            output: 500_000,
            reasoning: 100_000,
        };
        let cost = prices.cost_usd(&usage);
        assert!((cost - (0.6 * 2.0 + 0.4 * 0.5 + 0.5 * 8.0)).abs() < 1e-9, "{cost}");
        let no_cache_rate = Prices { cached_input: None, ..prices };
        assert!((no_cache_rate.cost_usd(&usage) - (2.0 + 4.0)).abs() < 1e-9);
    }

    #[test]
    fn egress_connections_are_flat_and_omit_what_does_not_apply() {
        let denied = EventKind::EgressConnection {
            host: "evil.example".into(),
            port: 443,
            method: "CONNECT".into(),
            decision: EgressDecision::Denied,
            address: None,
            status: Some(403),
            reason: Some("not allowed".into()),
            bytes_sent: 0,
            bytes_received: 0,
        };
        let json = serde_json::to_value(&denied).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "egress_connection", "host": "evil.example", "port": 443,
                "method": "CONNECT", "decision": "denied", "status": 403,
                "reason": "not allowed", "bytes_sent": 0, "bytes_received": 0
            })
        );
        assert_eq!(serde_json::from_value::<EventKind>(json).unwrap(), denied);
        let allowed = EventKind::EgressConnection {
            host: "pypi.org".into(),
            port: 443,
            method: "CONNECT".into(),
            decision: EgressDecision::Allowed,
            address: Some("151.101.0.223:443".into()),
            status: None,
            reason: None,
            bytes_sent: 310,
            bytes_received: 12_000,
        };
        let json = serde_json::to_value(&allowed).unwrap();
        assert_eq!(json["decision"], "allowed");
        assert!(json.get("status").is_none() && json.get("reason").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<EventKind>(json).unwrap(), allowed);
    }

    #[test]
    fn terminal_states() {
        assert!(AttemptState::TimedOut.is_terminal());
        assert!(!AttemptState::Running.is_terminal());
    }
}
