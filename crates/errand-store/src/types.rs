//! The rows the store hands out, and the inputs it takes.

use errand_protocol::{AttemptId, AttemptState, TaskId};
use serde::{Deserialize, Serialize};

use crate::{EnvironmentId, StoreError, TokenId, UserId};

/// Whose data an operation may see. Request handlers always pass `User`: another user's rows are
/// then simply not found. Workers and the scheduler pass `System`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User(UserId),
    System,
}

impl Scope {
    pub(crate) fn user(&self) -> Option<String> {
        match self {
            Scope::User(id) => Some(id.to_string()),
            Scope::System => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// Unique across the installation.
    pub name: String,
    pub created_at_ms: i64,
}

/// An API token's metadata; the secret itself is shown once, in [`CreatedToken`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: TokenId,
    pub user_id: UserId,
    /// What the user called it ("laptop", "ci").
    pub label: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// A token just created: `secret` is the only copy of the plain text, to be shown to the user
/// once. Its `Debug` form hides it so that it cannot end up in a log by accident.
#[derive(Clone)]
pub struct CreatedToken {
    pub token: ApiToken,
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken").field("token", &self.token).field("secret", &"***").finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub id: EnvironmentId,
    pub user_id: UserId,
    /// Unique per user.
    pub name: String,
    /// The configuration as the user gave it (JSON text).
    pub config_json: String,
    /// Hex SHA-256 of `config_json`: the snapshot cache's key together with the base commit.
    pub config_hash: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A task started from a forge's issue or pull request (see `0005_triggers.sql`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggeredTask {
    pub task_id: TaskId,
    pub forge_host: String,
    /// `owner/name` on the forge.
    pub repository: String,
    pub issue_number: i64,
    /// `waiting` until the outcome is reported on the issue, then `reported`.
    pub state: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The pull request a task was delivered as (one per task; see `0004_pull_requests.sql`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRecord {
    pub task_id: TaskId,
    /// The attempt whose result the branch carries now.
    pub attempt_id: AttemptId,
    /// The forge's API base URL.
    pub forge: String,
    /// `owner/name` on the forge.
    pub repository: String,
    pub branch: String,
    /// The branch head Errand pushed last.
    pub commit_id: String,
    /// `pushing` until the forge answered with a pull request, then `open`.
    pub state: String,
    pub number: Option<i64>,
    pub url: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The log of one setup or maintenance run of an environment, as the user reads it in
/// `errand env logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentLog {
    /// Increasing per store: a later run has a larger id.
    pub id: i64,
    pub environment_id: EnvironmentId,
    /// `setup` or `maintenance`.
    pub phase: String,
    /// The snapshot the run built or refreshed.
    pub snapshot: Option<String>,
    /// `None` when the script was killed (timeout, signal).
    pub exit_code: Option<i32>,
    pub duration_ms: i64,
    /// The output, redacted by the caller before it was stored.
    pub content: String,
    pub created_at_ms: i64,
}

/// What [`crate::Store::add_environment_log`] needs. `content` must already be redacted: the
/// store keeps it as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvironmentLog {
    pub phase: String,
    pub snapshot: Option<String>,
    pub exit_code: Option<i32>,
    pub duration_ms: i64,
    pub content: String,
}

impl NewEnvironmentLog {
    /// Logs kept per environment; adding one more drops the oldest.
    pub const KEPT_PER_ENVIRONMENT: u32 = 20;
}

/// `code` changes the repository and yields a diff; `ask` only answers.
pub use errand_protocol::TaskMode;

pub(crate) fn parse_mode(text: &str) -> Result<TaskMode, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Backend(format!("unknown task mode `{text}` in the database")))
}

/// What [`crate::Store::create_task`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub environment_id: Option<EnvironmentId>,
    /// A URL or a path the workers can reach.
    pub repository: String,
    /// Branch, tag or commit the user asked for.
    pub git_ref: String,
    /// The commit `git_ref` resolved to, when already known.
    pub base_commit: Option<String>,
    pub prompt: String,
    pub mode: TaskMode,
    /// Parallel attempts, 1 to [`NewTask::MAX_ATTEMPTS`].
    pub attempts: u32,
}

impl NewTask {
    pub const MAX_ATTEMPTS: u32 = 8;
    /// A backstop against absurd input; the API may refuse far less.
    pub const MAX_PROMPT_BYTES: usize = 1 << 20;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub user_id: UserId,
    pub environment_id: Option<EnvironmentId>,
    pub repository: String,
    pub git_ref: String,
    pub base_commit: Option<String>,
    pub prompt: String,
    pub mode: TaskMode,
    pub attempts: u32,
    pub created_at_ms: i64,
    /// The attempt the user picked as the task's result, if they overrode the ranking.
    pub picked_attempt: Option<AttemptId>,
}

/// Who holds an attempt and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub worker_id: String,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: AttemptId,
    pub task_id: TaskId,
    pub user_id: UserId,
    /// 0, 1, 2… within the task: the parallel attempts first, then follow-ups.
    pub index: u32,
    pub state: AttemptState,
    /// Why the attempt is in its state, when it is not obvious (set with terminal states).
    pub reason: Option<String>,
    /// For a follow-up: the attempt whose final state and conversation it continues.
    pub parent_id: Option<AttemptId>,
    /// For a follow-up: the user's new instruction (the task's prompt otherwise).
    pub prompt: Option<String>,
    pub created_at_ms: i64,
    /// When it first became `running`.
    pub started_at_ms: Option<i64>,
    /// When it reached a terminal state.
    pub finished_at_ms: Option<i64>,
    /// Present exactly while the attempt is `preparing` or `running`.
    pub lease: Option<Lease>,
    /// Set by [`crate::Store::request_cancel`] while a worker holds the attempt; the worker
    /// learns it from [`crate::Store::renew_lease`] and records `cancelled`.
    pub cancel_requested: bool,
    /// The reason given with the cancel request, recorded when the attempt ends `cancelled`.
    pub cancel_reason: Option<String>,
    /// The `seq` of the last event appended (0 before the first).
    pub last_seq: u64,
}

/// What [`crate::Store::renew_lease`] tells the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRenewal {
    pub expires_at_ms: i64,
    /// The user asked to cancel: stop the agent and record `cancelled`.
    pub cancel_requested: bool,
    /// The reason they gave.
    pub cancel_reason: Option<String>,
}

/// One attempt that [`crate::Store::recover_expired`] took back from a worker whose lease expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub attempt_id: AttemptId,
    pub task_id: TaskId,
    pub worker_id: String,
    pub from: AttemptState,
    /// `queued` (it never ran) or `failed` with reason `interrupted`.
    pub to: AttemptState,
}

/// Stored results of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// The final diff against the base commit (text).
    Diff,
    /// The final report (JSON of `errand_protocol::Report`).
    Report,
    /// The conversation a follow-up continues (JSON, the agent's own format).
    Conversation,
}

impl ArtifactKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Diff => "diff",
            ArtifactKind::Report => "report",
            ArtifactKind::Conversation => "conversation",
        }
    }

    pub(crate) fn is_json(self) -> bool {
        !matches!(self, ArtifactKind::Diff)
    }
}

/// A message a user sent to an attempt, delivered to the model at its next turn boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Increasing in the order messages were sent.
    pub id: i64,
    pub attempt_id: AttemptId,
    pub text: String,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

/// A page of a newest-first listing: the items strictly older than `before` (the last id of the
/// previous page), at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page<Id> {
    pub before: Option<Id>,
    pub limit: u32,
}

impl<Id> Page<Id> {
    pub const MAX_LIMIT: u32 = 1000;

    pub fn first(limit: u32) -> Self {
        Self { before: None, limit }
    }
}

/// Attempts not yet finished, by state: what concurrency limits are computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptCounts {
    pub queued: u64,
    pub preparing: u64,
    pub running: u64,
}

impl AttemptCounts {
    /// Attempts a worker holds (`preparing` + `running`).
    pub fn in_flight(&self) -> u64 {
        self.preparing + self.running
    }
}
