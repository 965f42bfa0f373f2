//! The HTTP API's requests and responses (design: "Interfaces people touch": JSON under `/api`).
//!
//! The server builds its OpenAPI document from these types, and the CLI client deserializes
//! them, so both ends share one definition. Requests refuse unknown fields: a misspelt option is
//! an error, never silently ignored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AttemptId, AttemptState, Event, TaskId};

/// `code` changes the repository and yields a diff; `ask` only answers (a quick sandbox with
/// the checkout and no setup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskMode {
    #[default]
    Code,
    Ask,
}

impl TaskMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskMode::Code => "code",
            TaskMode::Ask => "ask",
        }
    }
}

impl fmt::Display for TaskMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "code" => Ok(TaskMode::Code),
            "ask" => Ok(TaskMode::Ask),
            other => Err(format!("unknown task mode `{other}`: use `code` or `ask`")),
        }
    }
}

/// A task's state, derived from its attempts: `running` while any attempt is held by a worker,
/// `queued` while the rest wait, and once all are over `succeeded` if any succeeded,
/// `cancelled` if all were cancelled, `failed` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskState {
    /// The state of a task whose attempts are in `states`.
    pub fn derive(states: impl IntoIterator<Item = AttemptState>) -> TaskState {
        let (mut any, mut queued, mut held, mut succeeded, mut all_cancelled) =
            (false, false, false, false, true);
        for state in states {
            any = true;
            match state {
                AttemptState::Queued => queued = true,
                AttemptState::Preparing | AttemptState::Running => held = true,
                AttemptState::Succeeded => succeeded = true,
                AttemptState::Failed | AttemptState::TimedOut => {}
                AttemptState::Cancelled => continue,
            }
            all_cancelled = false;
        }
        match () {
            _ if held => TaskState::Running,
            _ if queued => TaskState::Queued,
            _ if succeeded => TaskState::Succeeded,
            _ if any && all_cancelled => TaskState::Cancelled,
            _ => TaskState::Failed,
        }
    }
}

/// `POST /api/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// The repository: an absolute path to a git repository on the server's machine.
    pub repository: String,
    /// Branch, tag or commit to start from; `HEAD` when absent. Resolved when the task is
    /// created, so every attempt starts from the same commit.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// An environment of the caller's, by name or id; none runs on the base image only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[schema(min_length = 1)]
    pub prompt: String,
    #[serde(default)]
    pub mode: TaskMode,
    /// Attempts run in parallel, each in its own sandbox (best-of-N): 1 to 8, default 1.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 8)]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

/// A task with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    pub id: TaskId,
    pub state: TaskState,
    pub repository: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit the ref resolved to.
    pub base_commit: Option<String>,
    /// The environment's id, if the task uses one.
    pub environment_id: Option<String>,
    pub prompt: String,
    pub mode: TaskMode,
    pub created_at_ms: i64,
    /// The parallel attempts first, then follow-ups, by index.
    pub attempts: Vec<AttemptView>,
    /// The finished attempts, best first, with why (only on `GET /api/tasks/{id}`): succeeded
    /// before not, then failing checks, then citations that did not hold, then the smaller diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranking: Vec<RankedAttempt>,
    /// The attempt the user picked as the task's result, overriding the ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picked_attempt: Option<AttemptId>,
}

/// `POST /api/tasks/{id}/pick`: the attempt to take as the task's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickRequest {
    pub attempt: AttemptId,
}

/// One attempt's place in its task's ranking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RankedAttempt {
    pub attempt_id: AttemptId,
    /// 1 is the best.
    pub rank: u32,
    /// What placed it there, e.g. `succeeded · 3/3 checks passed · 0 flagged · 2 files, 14 lines`.
    pub why: String,
}

/// `GET /api/tasks`: newest first. Pass `next_before` as `before` for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<TaskView>,
    pub next_before: Option<TaskId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub id: AttemptId,
    pub task_id: TaskId,
    /// 0, 1, 2… within the task.
    pub index: u32,
    pub state: AttemptState,
    /// Why it is in its state (set with terminal states).
    pub reason: Option<String>,
    /// For a follow-up: the attempt it continues.
    pub parent_id: Option<AttemptId>,
    /// For a follow-up: its instruction.
    pub prompt: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub cancel_requested: bool,
    /// The `seq` of its latest event (0 before the first).
    pub last_seq: u64,
}

/// `POST /api/attempts/{id}/cancel` and `POST /api/tasks/{id}/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/attempts/{id}/followup`: a new attempt that continues this one's final state and
/// conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowupRequest {
    pub prompt: String,
}

/// `POST /api/attempts/{id}/messages`: delivered to the model at the attempt's next turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: i64,
    pub attempt_id: AttemptId,
    pub text: String,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

/// `GET /api/attempts/{id}/events`: the events after `after`, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// The attempt's latest `seq` when the page was read; more may follow if it is larger than
    /// the page's last event.
    pub last_seq: u64,
    /// The log is closed (its `finished` event is stored): nothing will follow.
    pub finished: bool,
}

/// An environment as its owner sees it: secrets that were given as values are hidden,
/// references to variables are shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentView {
    pub id: String,
    pub name: String,
    /// The environment document, with every default written out.
    pub config: serde_json::Value,
    /// SHA-256 of the stored document: snapshots are cached per hash and base commit.
    pub config_hash: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// `POST /api/environments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    pub name: String,
    /// The environment document (the JSON form of an environment file).
    pub config: serde_json::Value,
}

/// `PUT /api/environments/{id}`: replaces the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironment {
    pub config: serde_json::Value,
}

/// One setup or maintenance run of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentLogView {
    pub id: i64,
    /// `setup` or `maintenance`.
    pub phase: String,
    pub snapshot: Option<String>,
    /// `null` when the script was killed.
    pub exit_code: Option<i32>,
    pub duration_ms: i64,
    /// The output, secrets redacted.
    pub content: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub label: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// A task's pull request (`POST /api/attempts/{id}/pull-request`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PullRequestView {
    pub task_id: TaskId,
    /// The attempt whose result the pull request carries now.
    pub attempt_id: AttemptId,
    /// `owner/name` on the forge.
    pub repository: String,
    pub branch: String,
    /// The branch head Errand pushed.
    pub commit: String,
    /// `pushing`, `pushed` (the branch is there, the pull request not yet) or `open`.
    pub state: String,
    pub number: Option<i64>,
    pub url: Option<String>,
}

/// `POST /api/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub label: String,
}

/// A token just created: `secret` is shown this once and never stored in plain text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedTokenView {
    pub token: TokenView,
    pub secret: String,
}

impl fmt::Debug for CreatedTokenView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedTokenView")
            .field("token", &self.token)
            .field("secret", &"***")
            .finish()
    }
}

/// Every error response: a stable machine-readable `code` and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// `bad_request`, `unauthorized`, `not_found`, `conflict`, `payload_too_large`,
    /// `rate_limited`, `unavailable` or `internal`.
    pub code: String,
    pub message: String,
}

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the store does not answer.
    pub status: String,
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptState as A;

    #[test]
    fn task_state_follows_its_attempts() {
        assert_eq!(TaskState::derive([A::Queued, A::Queued]), TaskState::Queued);
        assert_eq!(TaskState::derive([A::Queued, A::Preparing]), TaskState::Running);
        assert_eq!(TaskState::derive([A::Succeeded, A::Running]), TaskState::Running);
        assert_eq!(TaskState::derive([A::Failed, A::Succeeded]), TaskState::Succeeded);
        assert_eq!(TaskState::derive([A::Failed, A::TimedOut]), TaskState::Failed);
        assert_eq!(TaskState::derive([A::Cancelled, A::Cancelled]), TaskState::Cancelled);
        assert_eq!(TaskState::derive([A::Cancelled, A::Failed]), TaskState::Failed);
        assert_eq!(TaskState::derive([A::Cancelled, A::Queued]), TaskState::Queued);
        assert_eq!(TaskState::derive([]), TaskState::Failed);
    }

    #[test]
    fn requests_refuse_unknown_fields_and_fill_defaults() {
        let task: CreateTask =
            serde_json::from_str(r#"{"repository":"/r","prompt":"fix it"}"#).unwrap();
        assert_eq!((task.attempts, task.mode, task.git_ref), (1, TaskMode::Code, None));
        let err =
            serde_json::from_str::<CreateTask>(r#"{"repository":"/r","prompt":"p","attempt":3}"#)
                .unwrap_err();
        assert!(err.to_string().contains("unknown field `attempt`"), "{err}");
        let task: CreateTask =
            serde_json::from_str(r#"{"repository":"/r","prompt":"p","ref":"main","mode":"ask"}"#)
                .unwrap();
        assert_eq!((task.git_ref.as_deref(), task.mode), (Some("main"), TaskMode::Ask));
    }
}
