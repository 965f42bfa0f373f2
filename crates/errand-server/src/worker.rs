//! The worker loop: lease queued attempts from the store (up to `concurrency` at a time), run
//! each end to end with [`run_one_attempt`] into a [`StoreSink`] (which stores its events and
//! its diff, report and conversation), heartbeat while it runs, deliver the messages users send
//! it from the store's queue, and on shutdown drain.
//!
//! Heartbeats renew the lease every third of its TTL. A renewal that reports a user's cancel
//! request stops the attempt as `cancelled`; a lost lease (the attempt was recovered, or is
//! someone else's now) abandons it without recording anything more. Whoever starts on a machine
//! first cleans up what a killed worker left there (design: "Task and attempt states").

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use errand_agent::{AgentConfig, Conversation, EventSink, Inbox, Model, restarted_followup_prompt};
use errand_protocol::{AttemptId, AttemptOutcome, AttemptState, EventKind};
use errand_sandbox::{EnvironmentSpec, Limits, LocalSandboxConfig};
use errand_store::{ArtifactKind, Attempt, Scope, Store, StoreError, Task, TaskMode};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::leftovers::{local_attempts, remove_attempt_dir};
use crate::remotes::RepositorySource;
use crate::{
    AttemptEnd, AttemptPlan, AttemptResources, DEFAULT_SNAPSHOT_CACHE_BYTES, Followup, Stop,
    StopSignal, StoreSink, run_one_attempt,
};

/// The reason recorded for an attempt whose worker went away while it ran (the same word
/// `Store::recover_expired` uses).
pub const INTERRUPTED: &str = "interrupted";

/// Finds a task's stored environment as the worker must run it (secret references resolved).
/// Without one, a worker fails attempts of tasks that name an environment.
#[async_trait::async_trait]
pub trait EnvironmentResolver: Send + Sync {
    async fn resolve(&self, task: &Task) -> Result<EnvironmentSpec, String>;
}

/// One worker: an identity in the store's leases and a number of attempt slots on this machine.
pub struct Worker {
    /// Names this worker in the store's leases; unique among live workers.
    pub id: String,
    pub store: Arc<dyn Store>,
    pub model: Arc<dyn Model>,
    /// Attempts run at once.
    pub concurrency: usize,
    /// How long a lease lasts without a heartbeat; heartbeats come every third of it.
    pub lease_ttl: Duration,
    /// How often an idle worker looks for queued attempts (and recovers expired leases).
    pub poll_interval: Duration,
    /// How long a shutdown waits for running attempts before interrupting them.
    pub drain_timeout: Duration,
    pub sandbox: LocalSandboxConfig,
    pub limits: Limits,
    pub agent: AgentConfig,
    pub snapshot_cache_bytes: u64,
    pub environments: Option<Arc<dyn EnvironmentResolver>>,
    /// Mirrors and credentials for tasks whose repository is a URL; `None`: such tasks fail.
    pub remotes: Option<crate::remotes::Remotes>,
}

impl Worker {
    /// A worker with the embedded defaults: 2 attempts at once, 30 s leases, a 1 s poll, 60 s
    /// to drain, default limits and agent configuration.
    pub fn new(
        id: impl Into<String>,
        store: Arc<dyn Store>,
        model: Arc<dyn Model>,
        sandbox: LocalSandboxConfig,
    ) -> Worker {
        Worker {
            id: id.into(),
            store,
            model,
            concurrency: 2,
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(60),
            sandbox,
            limits: Limits::default(),
            agent: AgentConfig::default(),
            snapshot_cache_bytes: DEFAULT_SNAPSHOT_CACHE_BYTES,
            environments: None,
            remotes: None,
        }
    }

    /// Runs until `shutdown` resolves, then stops leasing, lets running attempts finish for up
    /// to `drain_timeout`, and interrupts the rest: one still preparing goes back to the queue,
    /// one running ends `failed` with reason `interrupted`. Errors only if the store fails at
    /// start.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), StoreError> {
        self.clean_up_on_start().await?;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut running: JoinSet<()> = JoinSet::new();
        let mut stops: HashMap<tokio::task::Id, StopSignal> = HashMap::new();
        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recovered_at = tokio::time::Instant::now();
        loop {
            while running.len() < self.concurrency.max(1) {
                match self.store.lease_next(&self.id, self.lease_ttl).await {
                    Ok(Some((attempt, task))) => {
                        let stop = StopSignal::new();
                        let span = tracing::info_span!(
                            "attempt",
                            task_id = %task.id,
                            attempt_id = %attempt.id
                        );
                        let job = self.clone().run_leased(attempt, task, stop.clone());
                        let handle = running.spawn(job.instrument(span));
                        stops.insert(handle.id(), stop);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(worker = %self.id, "cannot lease an attempt: {e}");
                        break;
                    }
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(joined) = running.join_next_with_id() => {
                    stops.remove(&joined_id(&joined));
                }
                _ = poll.tick() => {
                    // Somebody has to take back what dead workers held; every worker does.
                    if recovered_at.elapsed() >= self.lease_ttl / 3 {
                        recovered_at = tokio::time::Instant::now();
                        self.recover_expired().await;
                    }
                }
            }
        }
        tracing::info!(worker = %self.id, attempts = running.len(), "shutting down: draining");
        let drain = async {
            while let Some(joined) = running.join_next_with_id().await {
                stops.remove(&joined_id(&joined));
            }
        };
        if tokio::time::timeout(self.drain_timeout, drain).await.is_err() {
            for stop in stops.values() {
                stop.raise(Stop::Interrupt("the worker shut down".into()));
            }
            while running.join_next().await.is_some() {}
        }
        Ok(())
    }

    /// Before the first lease: fail or requeue what this worker id still holds from a previous
    /// life (nothing of it runs any more), take back expired leases, and remove the sandbox
    /// directories of finished attempts left on this machine.
    async fn clean_up_on_start(&self) -> Result<(), StoreError> {
        for attempt in self.store.attempts_by_worker(&self.id).await? {
            remove_attempt_dir(&self.sandbox, attempt.id).await;
            self.give_up(attempt.id, "the worker restarted").await;
        }
        self.recover_expired().await;
        for attempt in local_attempts(&self.sandbox).await {
            // Only finished ones: a queued attempt's directory is removed by whoever leases it
            // next (see `run_leased`), and one in flight belongs to a live worker. An id the
            // store does not know is not a worker's (`errand exec` shares the directory).
            match self.store.get_attempt(Scope::System, attempt).await {
                Ok(stored) if stored.state.is_terminal() => {
                    remove_attempt_dir(&self.sandbox, attempt).await;
                }
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn recover_expired(&self) {
        match self.store.recover_expired(errand_store::now_ms()).await {
            Ok(recovered) => {
                for r in recovered {
                    tracing::info!(
                        attempt_id = %r.attempt_id,
                        worker = %r.worker_id,
                        "took back an expired lease: {:?} -> {:?}",
                        r.from,
                        r.to
                    );
                }
            }
            Err(e) => tracing::warn!("cannot recover expired leases: {e}"),
        }
    }

    /// One leased attempt, with its heartbeat, to the end.
    async fn run_leased(self: Arc<Self>, attempt: Attempt, task: Task, stop: StopSignal) {
        let mut sink = StoreSink::new(self.store.clone(), attempt.id, stop.clone());
        if task.mode != TaskMode::Code {
            sink = sink.without_diff();
        }
        let ending = sink.ending();
        let work = self.work(&attempt, &task, sink, &stop);
        let mut work = std::pin::pin!(work);
        tokio::select! {
            biased;
            () = &mut work => {}
            () = self.heartbeat(attempt.id, &stop, &ending) => work.await,
        }
    }

    /// Renews the lease until it is lost, then returns, having raised [`Stop::Abandon`] unless
    /// the attempt is recording its own end (a terminal state drops the lease). A cancel request
    /// raises [`Stop::Cancel`] and heartbeats go on, so the lease holds while the attempt cleans
    /// up.
    async fn heartbeat(&self, attempt: AttemptId, stop: &StopSignal, ending: &AtomicBool) {
        let mut every = tokio::time::interval(self.lease_ttl / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.store.renew_lease(attempt, &self.id, self.lease_ttl).await {
                Ok(renewal) => {
                    if renewal.cancel_requested {
                        stop.raise(Stop::Cancel(cancel_reason(renewal.cancel_reason)));
                    }
                }
                Err(e) if e.is_lease_lost() => {
                    if !ending.load(Ordering::SeqCst) {
                        stop.raise(Stop::Abandon(format!("the worker lost the lease: {e}")));
                    }
                    return;
                }
                // The store may come back before the lease runs out; if not, recovery decides.
                Err(e) => tracing::warn!(attempt_id = %attempt, "cannot renew the lease: {e}"),
            }
        }
    }

    async fn work(&self, attempt: &Attempt, task: &Task, mut sink: StoreSink, stop: &StopSignal) {
        let ready = async {
            let commit = self.base_commit(task).await?;
            let repository = self.checkout_source(task, &commit).await?;
            let environment = match (task.environment_id, &self.environments) {
                (None, _) => None,
                (Some(_), Some(resolver)) => Some(resolver.resolve(task).await?),
                (Some(id), None) => {
                    return Err(format!("this worker cannot load environments (task uses {id})"));
                }
            };
            let parent = match attempt.parent_id {
                Some(parent) => Some(self.parent_results(parent).await?),
                None => None,
            };
            Ok((commit, repository, environment, parent))
        };
        let (commit, repository, environment, parent) = match ready.await {
            Ok(ready) => ready,
            Err(reason) => {
                record_end(&mut sink, AttemptState::Failed, &reason).await;
                return;
            }
        };
        // A directory left by an earlier try of this attempt on this machine (it was sent back
        // to the queue) would stop the sandbox from being created; it is ours to remove now.
        remove_attempt_dir(&self.sandbox, attempt.id).await;
        let request = attempt.prompt.as_deref().unwrap_or(&task.prompt);
        let prompt = match &parent {
            // Nothing to continue: one message that tells the whole story.
            Some(parent) if parent.conversation.is_none() => {
                restarted_followup_prompt(&task.prompt, parent.prompt.as_deref(), request)
            }
            _ => request.to_string(),
        };
        let plan = AttemptPlan {
            attempt: attempt.id,
            repository: &repository,
            commit: &commit,
            prompt: &prompt,
            workdir: "",
            mode: task.mode,
            environment: environment.as_ref(),
            keep_sandbox: false,
            followup: parent.as_ref().map(|parent| Followup {
                parent: parent.id,
                request,
                parent_diff: &parent.diff,
                conversation: parent.conversation.as_ref(),
            }),
        };
        let resources = AttemptResources {
            sandbox: &self.sandbox,
            limits: &self.limits,
            model: &*self.model,
            agent: &self.agent,
            snapshot_cache_bytes: self.snapshot_cache_bytes,
        };
        let inbox =
            StoreInbox { store: self.store.clone(), attempt: attempt.id, stop: stop.clone() };
        let run = run_one_attempt(plan, resources, &mut sink, &inbox, stop.wait()).await;
        if let (Some(id), Some(spec)) = (task.environment_id, environment.as_ref()) {
            // The environment's own logs (`GET /api/environments/{name}/logs`, `errand env
            // logs`) show the runs of the service's attempts too; a failure to save them is
            // not the attempt's.
            for log in crate::environment_logs(&run.setup_events, &spec.secrets) {
                if let Err(e) = self.store.add_environment_log(task.user_id, id, log).await {
                    tracing::warn!(attempt_id = %attempt.id, "cannot store the setup log: {e}");
                }
            }
        }
        match run.end {
            // The sink stored the results before `finished`.
            AttemptEnd::Ran(_)
            | AttemptEnd::SetupFailed(_)
            | AttemptEnd::NotStarted(_)
            | AttemptEnd::Cancelled(_) => {}
            AttemptEnd::Stopped(Stop::Interrupt(reason)) => self.give_up(attempt.id, &reason).await,
            AttemptEnd::Stopped(stop) => tracing::info!("stopped: {stop:?}"),
        }
    }

    /// What a follow-up needs of its parent. A parent without a diff changed nothing (or never
    /// got as far); one without a readable conversation is started over (its agent never ran,
    /// or it was stopped before it finished).
    async fn parent_results(&self, parent: AttemptId) -> Result<ParentResults, String> {
        let artifact = |kind: ArtifactKind| async move {
            self.store
                .get_artifact(Scope::System, parent, kind)
                .await
                .map_err(|e| format!("cannot read the parent attempt's {kind:?} artifact: {e}"))
        };
        let stored = self
            .store
            .get_attempt(Scope::System, parent)
            .await
            .map_err(|e| format!("cannot read the parent attempt {parent}: {e}"))?;
        let diff = artifact(ArtifactKind::Diff).await?.unwrap_or_default();
        let conversation = match artifact(ArtifactKind::Conversation).await? {
            None => None,
            Some(json) => match serde_json::from_str::<Conversation>(&json) {
                Ok(conversation) => Some(conversation),
                Err(e) => {
                    tracing::warn!(
                        parent_id = %parent,
                        "the parent's conversation is unreadable, starting a new one: {e}"
                    );
                    None
                }
            },
        };
        Ok(ParentResults { id: parent, prompt: stored.prompt, diff, conversation })
    }

    /// Where the sandbox checks `commit` out from: the task's repository on this machine, or
    /// the mirror of its remote, fetched if it lacks the commit.
    async fn checkout_source(&self, task: &Task, commit: &str) -> Result<PathBuf, String> {
        match self.source(task)? {
            RepositorySource::Local(path) => Ok(path),
            RepositorySource::Remote(url) => {
                Ok(self.remotes(&url)?.with_commit(&url, commit).await?.root().to_path_buf())
            }
        }
    }

    fn source(&self, task: &Task) -> Result<RepositorySource, String> {
        RepositorySource::parse(&task.repository)
            .map_err(|e| format!("the task's repository {}: {e}", task.repository))
    }

    fn remotes(&self, url: &errand_git::RemoteUrl) -> Result<&crate::remotes::Remotes, String> {
        self.remotes.as_ref().ok_or_else(|| {
            format!(
                "the repository {} is a URL, and this worker has no mirrors configured",
                url.display()
            )
        })
    }

    /// The commit the task's ref resolved to, resolved and recorded by the first attempt that
    /// needs it, so every attempt of a task starts from the same one.
    async fn base_commit(&self, task: &Task) -> Result<String, String> {
        if let Some(commit) = &task.base_commit {
            return Ok(commit.clone());
        }
        let repo = match self.source(task)? {
            RepositorySource::Local(path) => errand_git::Repo::discover(&path)
                .await
                .map_err(|e| format!("cannot open {}: {e}", task.repository))?,
            RepositorySource::Remote(url) => self.remotes(&url)?.fetch(&url).await?,
        };
        let commit = repo.resolve_commit(&task.git_ref).await.map_err(|e| {
            format!("cannot resolve `{}` in {}: {e}", task.git_ref, task.repository)
        })?;
        match self.store.set_base_commit(task.id, &commit).await {
            Ok(stored) => Ok(stored.base_commit.unwrap_or(commit)),
            // Another attempt recorded a different resolution first (the ref moved): use it.
            Err(StoreError::Conflict { .. }) => self
                .store
                .get_task(Scope::System, task.id)
                .await
                .ok()
                .and_then(|t| t.base_commit)
                .ok_or_else(|| "the task's base commit changed under it".to_string()),
            Err(e) => Err(format!("cannot record the task's base commit: {e}")),
        }
    }

    /// Ends this worker's hold on an attempt that will not run to its end here: back to the
    /// queue if it never started running, else `failed` with reason `interrupted` (events kept).
    async fn give_up(&self, attempt: AttemptId, why: &str) {
        let state = match self.store.get_attempt(Scope::System, attempt).await {
            Ok(stored) => stored.state,
            Err(e) => {
                tracing::warn!(attempt_id = %attempt, "cannot read the attempt to give it up: {e}");
                return;
            }
        };
        let given_up = match state {
            AttemptState::Preparing => self.store.release(attempt, &self.id, why).await,
            AttemptState::Running => {
                let failed = AttemptState::Failed;
                let outcome = AttemptOutcome { state: failed, reason: INTERRUPTED.into() };
                match self.store.transition(attempt, failed, Some(INTERRUPTED)).await {
                    Ok(_) => self
                        .store
                        .append_event(attempt, &EventKind::Finished { outcome })
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(()),
        };
        match given_up {
            Ok(()) => tracing::info!(attempt_id = %attempt, "gave the attempt up: {why}"),
            Err(e) => tracing::warn!(attempt_id = %attempt, "cannot give the attempt up: {e}"),
        }
    }
}

/// A follow-up's parent as the follow-up starts from it.
struct ParentResults {
    id: AttemptId,
    /// The parent's own follow-up request, if it was one.
    prompt: Option<String>,
    diff: String,
    conversation: Option<Conversation>,
}

/// The messages users sent to an attempt, from the store's queue: each is taken once, and a store
/// that cannot be read counts as no messages (they stay queued for the next turn boundary).
struct StoreInbox {
    store: Arc<dyn Store>,
    attempt: AttemptId,
    stop: StopSignal,
}

#[async_trait::async_trait]
impl Inbox for StoreInbox {
    /// Also the turn boundary's look at a cancel request, so a cancel takes effect before the
    /// next model request rather than at the next heartbeat.
    async fn take(&self) -> Vec<String> {
        match self.store.get_attempt(Scope::System, self.attempt).await {
            Ok(attempt) if attempt.cancel_requested => {
                self.stop.raise(Stop::Cancel(cancel_reason(attempt.cancel_reason)));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(attempt_id = %self.attempt, "cannot read the attempt: {e}"),
        }
        match self.store.take_messages(self.attempt).await {
            Ok(messages) => messages.into_iter().map(|m| m.text).collect(),
            Err(e) => {
                tracing::warn!(attempt_id = %self.attempt, "cannot take the attempt's messages: {e}");
                Vec::new()
            }
        }
    }
}

/// The reason a cancelled attempt ends with: the user's, else a generic one.
fn cancel_reason(given: Option<String>) -> String {
    given.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "cancelled on request".into())
}

/// The task id of a finished (or panicked) attempt task.
fn joined_id(joined: &Result<(tokio::task::Id, ()), tokio::task::JoinError>) -> tokio::task::Id {
    match joined {
        Ok((id, ())) => *id,
        Err(e) => {
            tracing::error!("an attempt's task ended abnormally: {e}");
            e.id()
        }
    }
}

/// The terminal `state_changed` and the `finished` that closes the log.
async fn record_end(sink: &mut dyn EventSink, state: AttemptState, reason: &str) {
    sink.record(EventKind::StateChanged { state, reason: Some(reason.to_string()) }).await;
    let outcome = AttemptOutcome { state, reason: reason.to_string() };
    sink.record(EventKind::Finished { outcome }).await;
}
