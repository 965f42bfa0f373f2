//! Fan-out of attempts' events to live streams.
//!
//! One reader per watched attempt pulls new events from the store and broadcasts each, already
//! serialized, to every stream of that attempt: a thousand clients cost one store query per wake,
//! not a thousand. The reader wakes at once when this process appends an event (through
//! [`NotifyingStore`], which the in-process workers use) and every `poll` otherwise, for events
//! that workers in other processes append.
//!
//! Streams never trust the broadcast alone: they read their backlog from the store, drop what
//! they already sent (by `seq`), and go back to the store whenever the broadcast skips ahead or
//! they lag behind it, so a stream has no gap and no duplicate whatever the timing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use errand_protocol::{AttemptId, Event, EventKind, TaskId};
use errand_store::{
    ApiToken, ArtifactKind, Attempt, AttemptCounts, CreatedToken, Environment, EnvironmentId,
    EnvironmentLog, LeaseRenewal, Message, NewEnvironmentLog, NewTask, Page, Recovered, Result,
    Scope, Store, Task, TokenId, User, UserId,
};
use tokio::sync::{Notify, broadcast};

/// An event as streams send it: the event and its JSON, serialized once for every client.
#[derive(Debug)]
pub struct Published {
    pub event: Event,
    pub json: Arc<str>,
}

/// Events buffered per attempt for slow clients; one that falls further behind re-reads the
/// store.
const CHANNEL_CAPACITY: usize = 1024;

struct Watch {
    sender: broadcast::Sender<Arc<Published>>,
    wake: Notify,
}

/// The attempts being watched by streams of this process, each with its reader.
pub struct EventHub {
    store: Arc<dyn Store>,
    poll: Duration,
    watches: Mutex<HashMap<AttemptId, Arc<Watch>>>,
    myself: Weak<EventHub>,
}

impl EventHub {
    /// A hub reading from `store` (the plain one: the hub itself must not be notified of its
    /// own reads).
    pub fn new(store: Arc<dyn Store>, poll: Duration) -> Arc<EventHub> {
        Arc::new_cyclic(|myself| EventHub {
            store,
            poll,
            watches: Mutex::new(HashMap::new()),
            myself: myself.clone(),
        })
    }

    /// Events of `attempt` stored from now on; the reader starts with the first subscriber.
    pub fn subscribe(&self, attempt: AttemptId) -> broadcast::Receiver<Arc<Published>> {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watch) = watches.get(&attempt) {
            return watch.sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(CHANNEL_CAPACITY);
        let watch = Arc::new(Watch { sender, wake: Notify::new() });
        watches.insert(attempt, watch.clone());
        if let Some(hub) = self.myself.upgrade() {
            tokio::spawn(async move { hub.read(attempt, watch).await });
        }
        receiver
    }

    /// Somebody in this process appended to `attempt`'s log: its reader (if any) reads now.
    pub fn notify(&self, attempt: AttemptId) {
        let watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watch) = watches.get(&attempt) {
            // A permit is kept if the reader is busy, so no append goes unnoticed.
            watch.wake.notify_one();
        }
    }

    /// Streams currently following some attempt.
    pub fn streams(&self) -> usize {
        let watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches.values().map(|w| w.sender.receiver_count()).sum()
    }

    /// The reader of one attempt: from the log's end when it started, every new event, once,
    /// in order, until the log closes or nobody listens.
    async fn read(&self, attempt: AttemptId, watch: Arc<Watch>) {
        let mut cursor = match self.store.get_attempt(Scope::System, attempt).await {
            Ok(stored) => stored.last_seq,
            Err(e) => {
                tracing::warn!(attempt_id = %attempt, "cannot watch the attempt: {e}");
                self.unwatch(attempt, &watch, true);
                return;
            }
        };
        loop {
            tokio::select! {
                () = watch.wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
            if self.unwatch(attempt, &watch, false) {
                return;
            }
            let events = match self.store.events_after(Scope::System, attempt, cursor, 1000).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(attempt_id = %attempt, "cannot read events to stream: {e}");
                    continue;
                }
            };
            let mut closed = false;
            for event in events {
                cursor = event.seq;
                closed |= matches!(event.kind, EventKind::Finished { .. });
                let json = match serde_json::to_string(&event) {
                    Ok(json) => json.into(),
                    Err(e) => {
                        tracing::error!("cannot serialize event {}: {e}", event.seq);
                        continue;
                    }
                };
                // No receiver is fine: they may all have left between two events.
                let _ = watch.sender.send(Arc::new(Published { event, json }));
            }
            if closed {
                self.unwatch(attempt, &watch, true);
                return;
            }
        }
    }

    /// Stops watching `attempt` when `always` or when nobody listens any more; whether it did.
    /// Under the map's lock, so a subscriber either gets this watch before it goes or starts a
    /// new one.
    fn unwatch(&self, attempt: AttemptId, watch: &Arc<Watch>, always: bool) -> bool {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if !always && watch.sender.receiver_count() > 0 {
            return false;
        }
        if watches.get(&attempt).is_some_and(|current| Arc::ptr_eq(current, watch)) {
            watches.remove(&attempt);
        }
        true
    }
}

/// A [`Store`] that tells the hub whenever it appends to a log, so streams of this process see
/// events at once. Everything else passes through unchanged.
pub struct NotifyingStore {
    inner: Arc<dyn Store>,
    hub: Arc<EventHub>,
}

impl NotifyingStore {
    pub fn new(inner: Arc<dyn Store>, hub: Arc<EventHub>) -> NotifyingStore {
        NotifyingStore { inner, hub }
    }
}

#[async_trait]
impl Store for NotifyingStore {
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
        self.hub.notify(attempt);
        result
    }
    async fn append_event(&self, attempt: AttemptId, kind: &EventKind) -> Result<Event> {
        let result = self.inner.append_event(attempt, kind).await;
        self.hub.notify(attempt);
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
            self.hub.notify(attempt.id);
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
        self.hub.notify(attempt);
        result
    }
    async fn recover_expired(&self, now_ms: i64) -> Result<Vec<Recovered>> {
        let recovered = self.inner.recover_expired(now_ms).await;
        if let Ok(recovered) = &recovered {
            for r in recovered {
                self.hub.notify(r.attempt_id);
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
