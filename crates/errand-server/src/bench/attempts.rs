//! Many attempts in flight: the worker's memory per attempt.
//!
//! The service starts in a scratch directory (store, API on loopback, one [`Worker`] with as
//! many slots as attempts, real sandboxes) with the model stub answering every turn after a
//! fixed latency. One warm-up attempt runs alone first, so one-time costs (the repository's
//! checkout, connection pools, the runtime's threads) are in the idle baseline, not charged to
//! the attempts. Then all the attempts are created through `POST /api/tasks` (up to 8 per task)
//! and the process's resident memory is sampled with the number of attempts in flight until all
//! have finished. Per attempt: (resident memory at the sample with the most attempts in flight −
//! idle baseline) / attempts in flight then. The sandboxes' processes (bubblewrap and the
//! commands) are other processes and are not counted; the model stub and the API are in this
//! process and are.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use errand_model::{ModelClient, ModelConfig, Provider};
use errand_protocol::{AttemptId, AttemptState};
use errand_sandbox::LocalSandboxConfig;
use errand_store::{Scope, Store};
use tokio::sync::oneshot;

use super::model_stub::ModelStub;
use super::{BenchService, rss_kib};
use crate::Worker;

/// What to run.
#[derive(Debug, Clone)]
pub struct AttemptsOptions {
    /// A directory the sandbox uid can enter (see [`super::scratch_dir`]); the store, the
    /// repository and the attempts' layers go in it.
    pub scratch: PathBuf,
    /// The `errand` binary, bind-mounted into sandboxes for `apply_patch` (unused here).
    pub helper: PathBuf,
    pub sandbox_uid: Option<u32>,
    pub attempts: usize,
    /// Model turns per attempt: `turns - 1` shell commands (`true`), then a final message.
    pub turns: u32,
    /// The model's latency per turn.
    pub latency: Duration,
    /// Give up waiting for the attempts after this long.
    pub timeout: Duration,
}

/// One memory sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemorySample {
    pub rss_kib: u64,
    /// Attempts `preparing` or `running` when the sample was taken.
    pub in_flight: u64,
}

/// What [`attempts`] measured.
#[derive(Debug, Clone)]
pub struct AttemptsBench {
    pub attempts: usize,
    pub succeeded: usize,
    /// `attempt id: state (reason)` of every attempt that did not succeed.
    pub failures: Vec<String>,
    /// Before anything ran (service, worker and model idle).
    pub cold_rss_kib: u64,
    /// After the warm-up attempt, idle: the baseline.
    pub idle_rss_kib: u64,
    /// The sample with the most attempts in flight (the largest memory among those).
    pub peak: MemorySample,
    /// The largest memory sampled.
    pub max_rss_kib: u64,
    /// (peak memory − idle baseline) / attempts in flight then.
    pub per_attempt_kib: f64,
    /// From creating the first task to the last attempt finishing.
    pub wall: Duration,
    /// Each attempt, from its creation to its end (`finished_at_ms − created_at_ms`).
    pub attempt_durations: Vec<Duration>,
    pub model_requests: u64,
    /// Model requests past the plan's last turn (should be none).
    pub model_requests_beyond: u64,
    pub samples: usize,
}

/// Runs the case; `Err` when the service cannot be set up or the attempts do not finish in time.
pub async fn attempts(options: &AttemptsOptions) -> Result<AttemptsBench, String> {
    let repo = options.scratch.join("repo");
    generated_repo(&repo).await?;
    let cold_rss_kib = rss_kib()?;
    let service = BenchService::start(&options.scratch).await?;
    let model = ModelStub::start(options.turns, options.latency).await?;
    let client = ModelClient::new(ModelConfig {
        base_url: model.base_url(),
        model: "bench".into(),
        api_key: Some("bench".into()),
        // A failed request is a failed attempt: the benchmark must see it, not retry it away.
        max_retries: 0,
        provider: Provider::Responses,
        ..ModelConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let mut sandbox = LocalSandboxConfig::new(options.scratch.join("data"), &options.helper);
    if let Some(uid) = options.sandbox_uid {
        sandbox.sandbox_uid = uid;
    }
    let store = service.state.store.clone();
    let mut worker = Worker::new("bench-worker", store.clone(), Arc::new(client), sandbox);
    worker.concurrency = options.attempts.max(1);
    worker.poll_interval = Duration::from_millis(50);
    worker.agent.max_turns = options.turns + 2;
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(Arc::new(worker).run(async move {
        let _ = stopped.await;
    }));

    let result = async {
        let warm_up = service.create_task(&repo, 1).await?;
        let warm_up: Vec<AttemptId> = warm_up.attempts.iter().map(|a| a.id).collect();
        wait_until_done(&*store, options.timeout).await?;
        let idle_rss_kib = rss_kib()?;

        let started = Instant::now();
        let (stop_sampling, sampling) = oneshot::channel();
        let sampler = tokio::spawn(sample(store.clone(), sampling));
        let mut ids = Vec::with_capacity(options.attempts);
        let mut left = options.attempts;
        while left > 0 {
            let n = left.min(errand_store::NewTask::MAX_ATTEMPTS as usize);
            let task = service.create_task(&repo, n as u32).await?;
            ids.extend(task.attempts.iter().map(|a| a.id));
            left -= n;
        }
        let waited = wait_until_done(&*store, options.timeout).await;
        let wall = started.elapsed();
        let _ = stop_sampling.send(());
        let samples = sampler.await.unwrap_or_default();
        waited?;
        Ok::<_, String>((warm_up, idle_rss_kib, ids, wall, samples))
    }
    .await;
    let _ = stop.send(());
    let _ = worker.await;
    service.stop().await;
    let (warm_up, idle_rss_kib, ids, wall, samples) = result?;

    let mut succeeded = 0;
    let mut failures = Vec::new();
    let mut attempt_durations = Vec::new();
    for id in warm_up.iter().chain(&ids) {
        let attempt = store.get_attempt(Scope::System, *id).await.map_err(|e| e.to_string())?;
        let is_warm_up = warm_up.contains(id);
        if attempt.state == AttemptState::Succeeded {
            if !is_warm_up {
                succeeded += 1;
                if let Some(end) = attempt.finished_at_ms {
                    let ms = (end - attempt.created_at_ms).max(0) as u64;
                    attempt_durations.push(Duration::from_millis(ms));
                }
            }
        } else {
            let which = if is_warm_up { " (the warm-up)" } else { "" };
            let reason = attempt.reason.unwrap_or_default();
            failures.push(format!("{id}{which}: {:?} ({reason})", attempt.state));
        }
    }
    let peak = samples.iter().copied().max_by_key(|s| (s.in_flight, s.rss_kib)).unwrap_or_default();
    let per_attempt_kib = if peak.in_flight == 0 {
        0.0
    } else {
        peak.rss_kib.saturating_sub(idle_rss_kib) as f64 / peak.in_flight as f64
    };
    let (model_requests, model_requests_beyond) = model.requests();
    Ok(AttemptsBench {
        attempts: ids.len(),
        succeeded,
        failures,
        cold_rss_kib,
        idle_rss_kib,
        peak,
        max_rss_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        per_attempt_kib,
        wall,
        attempt_durations,
        model_requests,
        model_requests_beyond,
        samples: samples.len(),
    })
}

/// Samples memory and attempts in flight every 50 ms until `stop` fires.
async fn sample(store: Arc<dyn Store>, mut stop: oneshot::Receiver<()>) -> Vec<MemorySample> {
    let mut samples = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = &mut stop => return samples,
            _ = every.tick() => {}
        }
        let Ok(counts) = store.attempt_counts(None).await else { continue };
        let Ok(rss_kib) = rss_kib() else { continue };
        samples.push(MemorySample { rss_kib, in_flight: counts.in_flight() });
    }
}

/// Waits until no attempt is queued or in flight.
async fn wait_until_done(store: &dyn Store, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let counts = store.attempt_counts(None).await.map_err(|e| e.to_string())?;
        if counts.queued + counts.in_flight() == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "attempts still unfinished after {} s: {} queued, {} in flight",
                timeout.as_secs(),
                counts.queued,
                counts.in_flight()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small committed repository for the attempts to check out.
pub(super) async fn generated_repo(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("README.md"), "A repository for `errand bench service`.\n")
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("src/lib.rs"), "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n")
        .map_err(|e| e.to_string())?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["-c", "user.name=errand", "-c", "user.email=errand@localhost", "commit", "-qm", "bench"],
    ] {
        let out = tokio::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .await
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "git {} failed while generating the benchmark repository: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}
