//! The [`Store`] trait: every operation the server, the scheduler and the workers need, with its
//! contract. Both backends pass the same suite (`tests/store_suite.rs`).

use std::time::Duration;

use async_trait::async_trait;
use errand_protocol::{AttemptId, AttemptState, Event, EventKind, TaskId};

use crate::{
    ApiToken, ArtifactKind, Attempt, AttemptCounts, CreatedToken, Environment, EnvironmentId,
    EnvironmentLog, LeaseRenewal, Message, NewEnvironmentLog, NewTask, Page, PullRequestRecord,
    Recovered, Result, Scope, Task, TokenId, TriggeredTask, User, UserId,
};

/// Errand's durable state. Every method is one transaction: it happens completely or not at
/// all. "Not found" also covers rows of another user, so a handler cannot tell anyone whether
/// someone else's task exists.
#[async_trait]
pub trait Store: Send + Sync {
    // ---- users and tokens ----

    /// A new user. `Conflict(AlreadyExists)` if the name is taken; `Invalid` if it is empty.
    async fn create_user(&self, name: &str) -> Result<User>;
    async fn get_user(&self, id: UserId) -> Result<User>;
    async fn user_by_name(&self, name: &str) -> Result<User>;

    /// A new API token for `user`. The returned secret is the only copy of its plain text.
    async fn create_token(&self, user: UserId, label: &str) -> Result<CreatedToken>;
    /// The user a token secret belongs to; `None` for an unknown, malformed or revoked token.
    async fn authenticate(&self, secret: &str) -> Result<Option<User>>;
    /// The user's tokens, revoked ones included, oldest first.
    async fn list_tokens(&self, user: UserId) -> Result<Vec<ApiToken>>;
    /// Revokes one of the user's tokens (idempotent). `NotFound` if it is not theirs.
    async fn revoke_token(&self, user: UserId, token: TokenId) -> Result<()>;

    // ---- environments ----

    /// `config_json` must be valid JSON; its hash is computed and stored with it.
    /// `Conflict(AlreadyExists)` if the user already has an environment of that name.
    async fn create_environment(
        &self,
        user: UserId,
        name: &str,
        config_json: &str,
    ) -> Result<Environment>;
    async fn get_environment(&self, user: UserId, id: EnvironmentId) -> Result<Environment>;
    async fn environment_by_name(&self, user: UserId, name: &str) -> Result<Environment>;
    /// The user's environments by name.
    async fn list_environments(&self, user: UserId) -> Result<Vec<Environment>>;
    /// Replaces the configuration (and its hash), bumping `updated_at_ms`.
    async fn update_environment(
        &self,
        user: UserId,
        id: EnvironmentId,
        config_json: &str,
    ) -> Result<Environment>;
    /// `Conflict(InUse)` while a task refers to it: tasks keep their history.
    async fn delete_environment(&self, user: UserId, id: EnvironmentId) -> Result<()>;
    /// Records the log of a setup or maintenance run (`content` already redacted) and drops
    /// the environment's oldest beyond [`NewEnvironmentLog::KEPT_PER_ENVIRONMENT`]. Deleting the
    /// environment deletes its logs. `NotFound` if the environment is not the user's; `Invalid`
    /// for an empty phase.
    async fn add_environment_log(
        &self,
        user: UserId,
        id: EnvironmentId,
        log: NewEnvironmentLog,
    ) -> Result<EnvironmentLog>;
    /// Up to `limit` of the environment's logs, newest first. `NotFound` if the environment is
    /// not the user's.
    async fn environment_logs(
        &self,
        user: UserId,
        id: EnvironmentId,
        limit: u32,
    ) -> Result<Vec<EnvironmentLog>>;

    // ---- pull requests ----

    /// The pull request `task` was delivered as, if any. `NotFound` if the task is not visible
    /// in `scope`.
    async fn get_pull_request(
        &self,
        scope: Scope,
        task: TaskId,
    ) -> Result<Option<PullRequestRecord>>;
    /// Records (inserts or replaces) the task's pull request; `created_at_ms` of an existing
    /// row is kept. `NotFound` if the task does not exist; `Invalid` for an empty branch,
    /// forge, repository or commit.
    async fn save_pull_request(&self, record: &PullRequestRecord) -> Result<()>;

    // ---- triggers ----

    /// Records a webhook delivery as handled; `false` if it was already (a replay).
    async fn record_delivery(&self, delivery_id: &str) -> Result<bool>;
    /// Records a task started from a forge's issue. `NotFound` if the task does not exist.
    async fn add_triggered_task(&self, trigger: &TriggeredTask) -> Result<()>;
    /// Triggered tasks whose outcome is not reported yet, oldest first.
    async fn waiting_triggered_tasks(&self, limit: u32) -> Result<Vec<TriggeredTask>>;
    /// Marks a triggered task's outcome as reported.
    async fn mark_trigger_reported(&self, task: TaskId) -> Result<()>;

    // ---- tasks ----

    /// The task and its `task.attempts` attempts (indexes 0..n, all `queued`), atomically.
    /// `Invalid` for an empty repository, ref or prompt, a prompt over
    /// [`NewTask::MAX_PROMPT_BYTES`], or attempts outside 1..=8; `NotFound` for an environment
    /// that is not the user's.
    async fn create_task(&self, user: UserId, task: NewTask) -> Result<(Task, Vec<Attempt>)>;
    async fn get_task(&self, scope: Scope, id: TaskId) -> Result<Task>;
    /// The user's tasks, newest first, one page at a time.
    async fn list_tasks(&self, user: UserId, page: Page<TaskId>) -> Result<Vec<Task>>;
    /// Deletes the task with its attempts, events, artifacts and messages.
    /// `Conflict(InUse)` while one of its attempts is `preparing` or `running`.
    async fn delete_task(&self, user: UserId, id: TaskId) -> Result<()>;
    /// Records `attempt` (finished, of this task) as the user's pick of the task's result.
    /// `NotFound` unless both are the user's and the attempt is the task's; `Conflict` while
    /// the attempt has not finished.
    async fn pick_attempt(&self, user: UserId, task: TaskId, attempt: AttemptId) -> Result<Task>;
    /// Records the commit the task's ref resolved to, once: setting the same value again is a
    /// no-op, a different one is `Conflict(InvalidTransition)`, so all attempts share a base.
    async fn set_base_commit(&self, task: TaskId, commit: &str) -> Result<Task>;

    // ---- attempts ----

    async fn get_attempt(&self, scope: Scope, id: AttemptId) -> Result<Attempt>;
    /// A task's attempts by index. `NotFound` if the task is not visible in `scope`.
    async fn list_attempts(&self, scope: Scope, task: TaskId) -> Result<Vec<Attempt>>;
    /// A new `queued` attempt of the same task that continues `parent` with `prompt`.
    /// `Conflict(InvalidTransition)` unless the parent is terminal.
    async fn create_followup(
        &self,
        user: UserId,
        parent: AttemptId,
        prompt: &str,
    ) -> Result<Attempt>;
    /// Shorthand for appending `state_changed { state: to, reason }`.
    async fn transition(
        &self,
        attempt: AttemptId,
        to: AttemptState,
        reason: Option<&str>,
    ) -> Result<Event> {
        let kind = EventKind::StateChanged { state: to, reason: reason.map(str::to_string) };
        self.append_event(attempt, &kind).await
    }
    /// Cancels a `queued` attempt at once (`state_changed` + `finished`); for one a worker holds,
    /// sets `cancel_requested`, which the worker learns from [`Store::renew_lease`]. A terminal
    /// attempt is returned unchanged. Returns the attempt as it is now.
    async fn request_cancel(
        &self,
        scope: Scope,
        attempt: AttemptId,
        reason: &str,
    ) -> Result<Attempt>;

    // ---- the event log ----

    /// Appends an event with the next `seq` (1, 2, 3… with no gap, whoever appends concurrently)
    /// and the store's clock as `at_ms`, and returns it as stored.
    ///
    /// A `state_changed` event also moves the attempt to its state, in the same transaction, if
    /// [`crate::allowed_transition`] allows it (`Conflict(InvalidTransition)` otherwise, and
    /// nothing is written): `running` sets `started_at_ms`; a terminal state sets
    /// `finished_at_ms` and the reason and drops the lease. A `finished` event must name the
    /// attempt's current, terminal state, and closes the log: later appends are
    /// `Conflict(LogClosed)`. Appending does not check the lease; a worker that lost it learns so
    /// from its next heartbeat.
    async fn append_event(&self, attempt: AttemptId, kind: &EventKind) -> Result<Event>;
    /// Up to `limit` (1..=10000) events with `seq > after_seq`, in order: exactly what a client
    /// that saw `after_seq` is missing (SSE `Last-Event-ID`).
    async fn events_after(
        &self,
        scope: Scope,
        attempt: AttemptId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>>;

    // ---- artifacts ----

    /// Stores (or replaces) an artifact. JSON kinds must be valid JSON (`Invalid` otherwise).
    async fn put_artifact(
        &self,
        attempt: AttemptId,
        kind: ArtifactKind,
        content: &str,
    ) -> Result<()>;
    /// `None` if the attempt has none of that kind (yet); `NotFound` if the attempt is not
    /// visible in `scope`.
    async fn get_artifact(
        &self,
        scope: Scope,
        attempt: AttemptId,
        kind: ArtifactKind,
    ) -> Result<Option<String>>;

    // ---- steering messages ----

    /// Queues a message for the attempt's next turn. `Conflict(InvalidTransition)` if the attempt
    /// is terminal.
    async fn enqueue_message(
        &self,
        scope: Scope,
        attempt: AttemptId,
        text: &str,
    ) -> Result<Message>;
    /// The undelivered messages in the order they were sent, marked delivered in the same
    /// statement: each message is taken exactly once, even by concurrent callers.
    async fn take_messages(&self, attempt: AttemptId) -> Result<Vec<Message>>;

    // ---- the queue and leases ----

    /// Leases the oldest `queued` attempt to `worker_id` for `ttl`: it becomes `preparing` (with
    /// its `state_changed` event) and is returned with its task. `None` when nothing is queued.
    /// Concurrent callers never get the same attempt.
    async fn lease_next(&self, worker_id: &str, ttl: Duration) -> Result<Option<(Attempt, Task)>>;
    /// Extends the lease to now + `ttl`. `Conflict(LeaseLost)` if `worker_id` does not hold it
    /// (another worker does, it was recovered, or the attempt is terminal).
    async fn renew_lease(
        &self,
        attempt: AttemptId,
        worker_id: &str,
        ttl: Duration,
    ) -> Result<LeaseRenewal>;
    /// Gives a `preparing` attempt back to the queue (`state_changed { queued, reason }`), e.g.
    /// on graceful shutdown. `Conflict(LeaseLost)` if `worker_id` does not hold it;
    /// `Conflict(InvalidTransition)` if it is `running` (finish it instead).
    async fn release(&self, attempt: AttemptId, worker_id: &str, reason: &str) -> Result<()>;
    /// Takes back every attempt whose lease expired before `now_ms`: `preparing` ones go back to
    /// `queued`, `running` ones become `failed` with reason `interrupted` (plus `finished`);
    /// each change is logged with its events, and every earlier event is kept.
    async fn recover_expired(&self, now_ms: i64) -> Result<Vec<Recovered>>;
    /// The attempts `worker_id` holds (expired or not): what a restarting worker cleans up.
    async fn attempts_by_worker(&self, worker_id: &str) -> Result<Vec<Attempt>>;

    // ---- counts for limits ----

    /// Tasks the user created at or after `since_ms` (rate limits).
    async fn count_tasks_since(&self, user: UserId, since_ms: i64) -> Result<u64>;
    /// Unfinished attempts by state, for one user or (with `None`) for everyone.
    async fn attempt_counts(&self, user: Option<UserId>) -> Result<AttemptCounts>;
}
