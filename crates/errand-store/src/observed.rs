//! A [`Store`] that lets an observer see the event log grow: before each `append_event`, and
//! after every operation that may append (state changes, cancels, leases, releases, recovery).
//! Everything else passes through unchanged. The API's streams are woken this way; tests use it
//! to look at the store at the moment an event is appended.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use errand_protocol::{AttemptId, Event, EventKind, TaskId};

use crate::{
    ApiToken, ArtifactKind, Attempt, AttemptCounts, CreatedToken, Environment, EnvironmentId,
    EnvironmentLog, LeaseRenewal, Message, NewEnvironmentLog, NewTask, Page, PullRequestRecord,
    Recovered, Result, Scope, Store, Task, TokenId, TriggeredTask, User, UserId,
};

/// Hooks around the appends of an [`ObservedStore`]; both do nothing unless implemented.
#[async_trait]
pub trait AppendObserver: Send + Sync {
    /// Just before `kind` is appended to `attempt`'s log through `append_event`.
    async fn before_append(&self, _store: &dyn Store, _attempt: AttemptId, _kind: &EventKind) {}
    /// After an operation that may have appended to `attempt`'s log, whether it succeeded or not.
    fn appended(&self, _attempt: AttemptId) {}
}

/// `inner`, with `observer` told about appends.
pub struct ObservedStore<O> {
    inner: Arc<dyn Store>,
    observer: O,
}

impl<O: AppendObserver> ObservedStore<O> {
    pub fn new(inner: Arc<dyn Store>, observer: O) -> ObservedStore<O> {
        ObservedStore { inner, observer }
    }

    pub fn observer(&self) -> &O {
        &self.observer
    }
}

#[async_trait]
impl<O: AppendObserver> Store for ObservedStore<O> {
    async fn create_user(&self, name: &str) -> Result<User> {
        self.inner.create_user(name).await
    }
    async fn get_user(&self, id: UserId) -> Result<User> {
        self.inner.get_user(id).await
    }
    async fn user_by_name(&self, name: &str) -> Result<User> {
        self.inner.user_by_name(name).await
    }
    async fn create_token(&self, user: UserId, label: &str) -> Result<CreatedToken> {
        self.inner.create_token(user, label).await
    }
    async fn authenticate(&self, secret: &str) -> Result<Option<User>> {
        self.inner.authenticate(secret).await
    }
    async fn list_tokens(&self, user: UserId) -> Result<Vec<ApiToken>> {
        self.inner.list_tokens(user).await
    }
    async fn revoke_token(&self, user: UserId, token: TokenId) -> Result<()> {
        self.inner.revoke_token(user, token).await
    }
    async fn create_environment(
        &self,
        user: UserId,
        name: &str,
        config_json: &str,
    ) -> Result<Environment> {
        self.inner.create_environment(user, name, config_json).await
    }
    async fn get_environment(&self, user: UserId, id: EnvironmentId) -> Result<Environment> {
        self.inner.get_environment(user, id).await
    }
    async fn environment_by_name(&self, user: UserId, name: &str) -> Result<Environment> {
        self.inner.environment_by_name(user, name).await
    }
    async fn list_environments(&self, user: UserId) -> Result<Vec<Environment>> {
        self.inner.list_environments(user).await
    }
    async fn update_environment(
        &self,
        user: UserId,
        id: EnvironmentId,
        config_json: &str,
    ) -> Result<Environment> {
        self.inner.update_environment(user, id, config_json).await
    }
    async fn delete_environment(&self, user: UserId, id: EnvironmentId) -> Result<()> {
        self.inner.delete_environment(user, id).await
    }
    async fn add_environment_log(
        &self,
        user: UserId,
        id: EnvironmentId,
        log: NewEnvironmentLog,
    ) -> Result<EnvironmentLog> {
        self.inner.add_environment_log(user, id, log).await
    }
    async fn environment_logs(
        &self,
        user: UserId,
        id: EnvironmentId,
        limit: u32,
    ) -> Result<Vec<EnvironmentLog>> {
        self.inner.environment_logs(user, id, limit).await
    }
    async fn get_pull_request(
        &self,
        scope: Scope,
        task: TaskId,
    ) -> Result<Option<PullRequestRecord>> {
        self.inner.get_pull_request(scope, task).await
    }
    async fn save_pull_request(&self, record: &PullRequestRecord) -> Result<()> {
        self.inner.save_pull_request(record).await
    }
    async fn record_delivery(&self, delivery_id: &str) -> Result<bool> {
        self.inner.record_delivery(delivery_id).await
    }
    async fn add_triggered_task(&self, trigger: &TriggeredTask) -> Result<()> {
        self.inner.add_triggered_task(trigger).await
    }
    async fn waiting_triggered_tasks(&self, limit: u32) -> Result<Vec<TriggeredTask>> {
        self.inner.waiting_triggered_tasks(limit).await
    }
    async fn mark_trigger_reported(&self, task: TaskId) -> Result<()> {
        self.inner.mark_trigger_reported(task).await
    }
    async fn pick_attempt(&self, user: UserId, task: TaskId, attempt: AttemptId) -> Result<Task> {
        self.inner.pick_attempt(user, task, attempt).await
    }
    async fn create_task(&self, user: UserId, task: NewTask) -> Result<(Task, Vec<Attempt>)> {
        self.inner.create_task(user, task).await
    }
    async fn get_task(&self, scope: Scope, id: TaskId) -> Result<Task> {
        self.inner.get_task(scope, id).await
    }
    async fn list_tasks(&self, user: UserId, page: Page<TaskId>) -> Result<Vec<Task>> {
        self.inner.list_tasks(user, page).await
    }
    async fn delete_task(&self, user: UserId, id: TaskId) -> Result<()> {
        self.inner.delete_task(user, id).await
    }
    async fn set_base_commit(&self, task: TaskId, commit: &str) -> Result<Task> {
        self.inner.set_base_commit(task, commit).await
    }
    async fn get_attempt(&self, scope: Scope, id: AttemptId) -> Result<Attempt> {
        self.inner.get_attempt(scope, id).await
    }
    async fn list_attempts(&self, scope: Scope, task: TaskId) -> Result<Vec<Attempt>> {
        self.inner.list_attempts(scope, task).await
    }
    async fn create_followup(
        &self,
        user: UserId,
        parent: AttemptId,
        prompt: &str,
    ) -> Result<Attempt> {
        self.inner.create_followup(user, parent, prompt).await
    }
    async fn request_cancel(
        &self,
        scope: Scope,
        attempt: AttemptId,
        reason: &str,
    ) -> Result<Attempt> {
        let result = self.inner.request_cancel(scope, attempt, reason).await;
        self.observer.appended(attempt);
        result
    }
    async fn append_event(&self, attempt: AttemptId, kind: &EventKind) -> Result<Event> {
        self.observer.before_append(&*self.inner, attempt, kind).await;
        let result = self.inner.append_event(attempt, kind).await;
        self.observer.appended(attempt);
        result
    }
    async fn events_after(
        &self,
        scope: Scope,
        attempt: AttemptId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>> {
        self.inner.events_after(scope, attempt, after_seq, limit).await
    }
    async fn put_artifact(
        &self,
        attempt: AttemptId,
        kind: ArtifactKind,
        content: &str,
    ) -> Result<()> {
        self.inner.put_artifact(attempt, kind, content).await
    }
    async fn get_artifact(
        &self,
        scope: Scope,
        attempt: AttemptId,
        kind: ArtifactKind,
    ) -> Result<Option<String>> {
        self.inner.get_artifact(scope, attempt, kind).await
    }
    async fn enqueue_message(
        &self,
        scope: Scope,
        attempt: AttemptId,
        text: &str,
    ) -> Result<Message> {
        self.inner.enqueue_message(scope, attempt, text).await
    }
    async fn take_messages(&self, attempt: AttemptId) -> Result<Vec<Message>> {
        self.inner.take_messages(attempt).await
    }
    async fn lease_next(&self, worker_id: &str, ttl: Duration) -> Result<Option<(Attempt, Task)>> {
        let leased = self.inner.lease_next(worker_id, ttl).await;
        if let Ok(Some((attempt, _))) = &leased {
            self.observer.appended(attempt.id);
        }
        leased
    }
    async fn renew_lease(
        &self,
        attempt: AttemptId,
        worker_id: &str,
        ttl: Duration,
    ) -> Result<LeaseRenewal> {
        self.inner.renew_lease(attempt, worker_id, ttl).await
    }
    async fn release(&self, attempt: AttemptId, worker_id: &str, reason: &str) -> Result<()> {
        let result = self.inner.release(attempt, worker_id, reason).await;
        self.observer.appended(attempt);
        result
    }
    async fn recover_expired(&self, now_ms: i64) -> Result<Vec<Recovered>> {
        let recovered = self.inner.recover_expired(now_ms).await;
        if let Ok(recovered) = &recovered {
            for r in recovered {
                self.observer.appended(r.attempt_id);
            }
        }
        recovered
    }
    async fn attempts_by_worker(&self, worker_id: &str) -> Result<Vec<Attempt>> {
        self.inner.attempts_by_worker(worker_id).await
    }
    async fn count_tasks_since(&self, user: UserId, since_ms: i64) -> Result<u64> {
        self.inner.count_tasks_since(user, since_ms).await
    }
    async fn attempt_counts(&self, user: Option<UserId>) -> Result<AttemptCounts> {
        self.inner.attempt_counts(user).await
    }
}
