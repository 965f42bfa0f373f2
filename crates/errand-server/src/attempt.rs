//! One attempt end to end, whoever runs it (`errand exec` in the foreground, a [`crate::Worker`]
//! for the service): the environment (setup or maintenance, with their events; a cached snapshot
//! reused), the sandbox over it with the attempt's limits (ask mode: the checkout only, no
//! setup), the egress proxy when the environment opens domains, the agent loop, the diff and the
//! checked report, and the sandbox removed again. Every step is an event in the caller's sink.
//!
//! A follow-up starts from its parent's final state: the sandbox is created on the base commit
//! as usual, the parent's diff is applied inside it, and the agent continues the parent's
//! conversation. Its diff is therefore against the base commit too (the parent's changes and its
//! own), while its report covers what it did.
//!
//! The attempt arrives `preparing` (the caller recorded that: `errand exec` itself, the store in
//! `lease_next`), and leaves in a terminal state with its `finished` event, unless it was stopped
//! from outside without a verdict ([`Stop::Interrupt`], [`Stop::Abandon`]): then the caller
//! decides what the attempt becomes.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use errand_agent::{
    AgentConfig, AttemptResult, AttemptSpec, Conversation, EventSink, Inbox, Model, run_attempt,
    truncate_for_model,
};
use errand_protocol::{AttemptId, AttemptOutcome, AttemptState, Event, EventKind, FileChange};
use errand_sandbox::{
    EnvironmentSpec, ExecRequest, Limits, LocalSandbox, LocalSandboxConfig, PrepareError,
    PrepareOptions, Sandbox,
};
use errand_store::TaskMode;

use crate::leftovers::remove_attempt_dir;
use crate::setup_log::prepare_recorded;

/// The snapshot cache is trimmed to this after an attempt with an environment (expired snapshots
/// always go).
pub const DEFAULT_SNAPSHOT_CACHE_BYTES: u64 = 20 << 30;

/// What one attempt works on.
#[derive(Debug, Clone, Copy)]
pub struct AttemptPlan<'a> {
    /// Names the attempt's sandbox directory; must be new.
    pub attempt: AttemptId,
    /// A git repository on this machine that has `commit`.
    pub repository: &'a Path,
    /// The base commit: the agent starts from it and the diff is against it.
    pub commit: &'a str,
    pub prompt: &'a str,
    /// The agent's working directory relative to the repository root (`""` for the root).
    pub workdir: &'a str,
    /// `ask` skips the environment's setup: the base image and the checkout only.
    pub mode: TaskMode,
    pub environment: Option<&'a EnvironmentSpec>,
    /// Leave the sandbox's directory on disk afterwards (for debugging).
    pub keep_sandbox: bool,
    /// Set for a follow-up: what it starts from.
    pub followup: Option<Followup<'a>>,
}

/// What a follow-up starts from: its parent's results.
#[derive(Debug, Clone, Copy)]
pub struct Followup<'a> {
    pub parent: AttemptId,
    /// The user's follow-up request as they wrote it (for the `follow_up_started` event; the
    /// plan's `prompt` is what the agent is given).
    pub request: &'a str,
    /// The parent's diff against the base commit (`git diff --binary` form), empty when it
    /// changed nothing.
    pub parent_diff: &'a str,
    /// The parent's conversation, continued with the plan's prompt; `None` starts a new one, so
    /// the prompt must then tell the whole story.
    pub conversation: Option<&'a Conversation>,
}

/// Applying a parent's diff is one `git apply`; this only guards against a sandbox that hangs.
const PARENT_DIFF_TIMEOUT: Duration = Duration::from_secs(300);

/// What an attempt runs with.
#[derive(Clone, Copy)]
pub struct AttemptResources<'a> {
    pub sandbox: &'a LocalSandboxConfig,
    pub limits: &'a Limits,
    pub model: &'a dyn Model,
    pub agent: &'a AgentConfig,
    /// See [`DEFAULT_SNAPSHOT_CACHE_BYTES`].
    pub snapshot_cache_bytes: u64,
}

/// Why an attempt must stop before it reaches an end of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Someone cancelled it: it ends `cancelled` with this reason (and `finished`).
    Cancel(String),
    /// Its runner is going away (a worker's drain timeout): nothing is recorded; the caller
    /// sends it back to the queue or fails it with reason `interrupted`.
    Interrupt(String),
    /// It is not this runner's any more (lease lost, log closed): nothing more may be recorded.
    Abandon(String),
}

/// How an attempt ended.
#[derive(Debug)]
pub enum AttemptEnd {
    /// The agent ran; its terminal state and `finished` are recorded.
    Ran(Box<AttemptResult>),
    /// The environment's setup failed (the user's script, so the user's to fix): `failed` and
    /// `finished` are recorded with this reason.
    SetupFailed(String),
    /// Errand could not prepare the environment or the sandbox, or a follow-up's parent diff
    /// did not apply: `failed` and `finished` are recorded with this reason.
    NotStarted(String),
    /// Stopped by [`Stop::Cancel`]: `cancelled` and `finished` are recorded.
    Cancelled(String),
    /// Stopped by [`Stop::Interrupt`] or [`Stop::Abandon`]: nothing terminal recorded.
    Stopped(Stop),
}

/// An attempt's end and what its environment's preparation logged.
#[derive(Debug)]
pub struct AttemptRun {
    pub end: AttemptEnd,
    /// The `setup_*` and `snapshot_ready` events as recorded, for the environment's own logs.
    pub setup_events: Vec<Event>,
}

/// Runs one attempt end to end (see the module docs), recording every step in `sink` and
/// delivering the messages that reach `inbox` to the agent. `stop` resolving stops the attempt
/// wherever it is: the running command's sandbox is killed (its whole pid namespace, by dropping
/// the agent's future) and the sandbox is still removed, so nothing is left behind.
pub async fn run_one_attempt(
    plan: AttemptPlan<'_>,
    resources: AttemptResources<'_>,
    sink: &mut dyn EventSink,
    inbox: &dyn Inbox,
    stop: impl Future<Output = Stop>,
) -> AttemptRun {
    let mut stop = std::pin::pin!(stop);
    let mut setup_events = Vec::new();
    let started = Instant::now();
    let created = tokio::select! {
        biased;
        stop = &mut stop => Err(stop),
        created = create_sandbox(plan, resources, sink, &mut setup_events) => Ok(created),
    };
    let sandbox = match created {
        Err(stop) => {
            // Stopped half way: a sandbox directory may exist without its `LocalSandbox`.
            if !plan.keep_sandbox {
                remove_attempt_dir(resources.sandbox, plan.attempt).await;
            }
            let end = stopped(sink, stop).await;
            return AttemptRun { end, setup_events };
        }
        Ok(Err(failure)) => {
            let reason = match &failure {
                NotCreated::Setup(reason) | NotCreated::Errand(reason) => reason.clone(),
            };
            record_end(sink, AttemptState::Failed, &reason).await;
            trim_snapshots(plan, resources).await;
            let end = match failure {
                NotCreated::Setup(reason) => AttemptEnd::SetupFailed(reason),
                NotCreated::Errand(reason) => AttemptEnd::NotStarted(reason),
            };
            return AttemptRun { end, setup_events };
        }
        Ok(Ok(sandbox)) => sandbox,
    };
    sink.record(EventKind::SandboxReady {
        backend: "local".into(),
        isolation: sandbox.isolation(),
        base_commit: plan.commit.to_string(),
        duration_ms: started.elapsed().as_millis() as u64,
    })
    .await;

    let ran = {
        let mut sink = WithSandboxEvents { sandbox: &sandbox, sink: &mut *sink };
        let run = async {
            let mut spec = AttemptSpec {
                prompt: plan.prompt.to_string(),
                workdir: plan.workdir.to_string(),
                continues: None,
                finish_checks: plan.mode == TaskMode::Code,
            };
            if let Some(followup) = plan.followup {
                let files = apply_parent_diff(&sandbox, plan.commit, followup.parent_diff).await?;
                sink.record(EventKind::FollowupStarted {
                    parent: followup.parent,
                    files,
                    prompt: followup.request.to_string(),
                })
                .await;
                spec.continues = followup.conversation.cloned();
            }
            // The environment's finish checks join the configuration's.
            let with_checks;
            let agent = match plan.environment.filter(|env| !env.checks.is_empty()) {
                Some(env) => {
                    let mut config = resources.agent.clone();
                    config.gate_checks.extend(env.checks.iter().cloned());
                    with_checks = config;
                    &with_checks
                }
                None => resources.agent,
            };
            let result =
                run_attempt(&spec, &sandbox, resources.model, agent, &mut sink, inbox).await;
            Ok::<_, String>(result)
        };
        tokio::select! {
            biased;
            stop = &mut stop => Err(stop),
            result = run => Ok(result),
        }
    };
    if !plan.keep_sandbox
        && let Err(e) = sandbox.destroy().await
    {
        tracing::warn!(attempt_id = %plan.attempt, "could not remove the attempt's sandbox: {e}");
    }
    trim_snapshots(plan, resources).await;
    let end = match ran {
        Ok(Ok(result)) => AttemptEnd::Ran(Box::new(result)),
        Ok(Err(reason)) => {
            record_end(sink, AttemptState::Failed, &reason).await;
            AttemptEnd::NotStarted(reason)
        }
        Err(stop) => stopped(sink, stop).await,
    };
    AttemptRun { end, setup_events }
}

/// Applies a follow-up's parent diff in the sandbox: `git apply` run inside it reads the patch
/// from its stdin, so nothing on the host follows a path of the workspace (design: "All file work
/// happens inside the sandbox"). Returns the files changed, as the workspace's diff against the
/// base commit now lists them.
async fn apply_parent_diff(
    sandbox: &LocalSandbox,
    commit: &str,
    patch: &str,
) -> Result<Vec<FileChange>, String> {
    if patch.trim().is_empty() {
        return Ok(Vec::new());
    }
    let request = ExecRequest {
        command: ["git", "apply", "--binary", "--whitespace=nowarn", "-"]
            .map(String::from)
            .to_vec(),
        workdir: String::new(),
        timeout: PARENT_DIFF_TIMEOUT,
        env: Vec::new(),
        stdin: Some(patch.as_bytes().to_vec()),
    };
    let mut output = Vec::new();
    let mut collect = |chunk: &[u8]| output.extend_from_slice(chunk);
    let outcome = sandbox
        .exec(request, &mut collect)
        .await
        .map_err(|e| format!("could not apply the parent attempt's diff: {e}"))?;
    if !outcome.success() {
        let status = match (outcome.exit_code, outcome.timed_out) {
            (_, true) => "timed out".to_string(),
            (Some(code), _) => format!("exited {code}"),
            (None, _) => "was killed".to_string(),
        };
        let said = String::from_utf8_lossy(&output);
        return Err(format!(
            "the parent attempt's diff does not apply to the base commit {} (git apply {status}): {}",
            &commit[..commit.len().min(12)],
            truncate_for_model(said.trim(), 20, 2000)
        ));
    }
    let diff = sandbox.diff().await.map_err(|e| {
        format!("could not compute the diff after applying the parent attempt's: {e}")
    })?;
    Ok(diff.files)
}

/// Why there is no sandbox.
enum NotCreated {
    /// The environment's setup script failed.
    Setup(String),
    /// Anything else (Errand's or the host's problem).
    Errand(String),
}

/// The environment (unless ask mode) and the sandbox over it, with the egress proxy started.
async fn create_sandbox(
    plan: AttemptPlan<'_>,
    resources: AttemptResources<'_>,
    sink: &mut dyn EventSink,
    setup_events: &mut Vec<Event>,
) -> Result<LocalSandbox, NotCreated> {
    let config = resources.sandbox;
    let limits = resources.limits;
    let name = plan.attempt.to_string();
    let egress = match plan.environment.map(EnvironmentSpec::egress_policy).transpose() {
        Ok(policy) => policy.flatten(),
        Err(e) => return Err(NotCreated::Errand(e.to_string())),
    };
    let setup = plan.environment.filter(|_| plan.mode == TaskMode::Code);
    let snapshot = match setup {
        None => None,
        Some(spec) => {
            let options = PrepareOptions { limits: limits.clone(), now: SystemTime::now() };
            let prepared = prepare_recorded(
                config,
                plan.repository,
                plan.commit,
                spec,
                &options,
                sink,
                setup_events,
            )
            .await;
            match prepared {
                Ok(snapshot) => snapshot,
                Err(PrepareError::SetupFailed(failed)) => {
                    return Err(NotCreated::Setup(failed.to_string()));
                }
                Err(e) => {
                    return Err(NotCreated::Errand(format!(
                        "could not prepare the environment: {e}"
                    )));
                }
            }
        }
    };
    let created = match snapshot {
        Some(snapshot) => LocalSandbox::create_on_snapshot(config, snapshot, &name, limits).await,
        None => LocalSandbox::create_limited(config, plan.repository, plan.commit, &name, limits)
            .await
            .map(|mut sandbox| {
                // No snapshot (no scripts, or ask mode), but the variables still apply.
                if let Some(spec) = plan.environment {
                    sandbox.set_environment_variables(spec.env.clone());
                }
                sandbox
            }),
    };
    let created = match (created, egress) {
        (Ok(mut sandbox), Some(policy)) => match sandbox.start_egress(policy) {
            Ok(()) => Ok(sandbox),
            Err(e) => {
                let _ = sandbox.destroy().await;
                Err(e)
            }
        },
        (created, _) => created,
    };
    created.map_err(|e| NotCreated::Errand(format!("could not prepare the sandbox: {e}")))
}

/// What a stop means for the log: a cancel is recorded, anything else is the caller's.
async fn stopped(sink: &mut dyn EventSink, stop: Stop) -> AttemptEnd {
    match stop {
        Stop::Cancel(reason) => {
            record_end(sink, AttemptState::Cancelled, &reason).await;
            AttemptEnd::Cancelled(reason)
        }
        other => AttemptEnd::Stopped(other),
    }
}

/// The terminal `state_changed` and the `finished` that closes the log.
async fn record_end(sink: &mut dyn EventSink, state: AttemptState, reason: &str) {
    sink.record(EventKind::StateChanged { state, reason: Some(reason.to_string()) }).await;
    let outcome = AttemptOutcome { state, reason: reason.to_string() };
    sink.record(EventKind::Finished { outcome }).await;
}

async fn trim_snapshots(plan: AttemptPlan<'_>, resources: AttemptResources<'_>) {
    if plan.environment.is_none() {
        return;
    }
    let trimmed = errand_sandbox::gc_snapshots(
        &resources.sandbox.data_dir,
        resources.snapshot_cache_bytes,
        SystemTime::now(),
    )
    .await;
    if let Err(e) = trimmed {
        tracing::warn!("could not trim the snapshot cache: {e}");
    }
}

/// The attempt's event sink with the sandbox's own events (connections through the egress
/// proxy) recorded in order: before each event the agent records, whatever the sandbox has to
/// report since the last one goes first. A command's connections are ready when its `exec`
/// returns, so they land before its `command_finished` (see `Sandbox::drain_events`).
struct WithSandboxEvents<'a> {
    sandbox: &'a LocalSandbox,
    sink: &'a mut dyn EventSink,
}

#[async_trait::async_trait]
impl EventSink for WithSandboxEvents<'_> {
    async fn record(&mut self, kind: EventKind) -> Event {
        for pending in self.sandbox.drain_events() {
            self.sink.record(pending).await;
        }
        self.sink.record(kind).await
    }

    async fn results_ready(&mut self, result: &AttemptResult) {
        self.sink.results_ready(result).await;
    }
}
