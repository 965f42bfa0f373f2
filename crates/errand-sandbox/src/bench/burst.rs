//! Many attempts started at once: `attempts` attempt layers over the same cached checkout, each
//! created and running `true` in a tokio task of its own, all spawned at the same instant; and,
//! in the same round, as many bare `bwrap … true` run at once as the baseline.
//!
//! Per round: the time until the last of them has finished (*all done*), and each one's time
//! from the burst's start to its `true` exiting (*each start*, pooled over the rounds). Removing
//! the attempts is not timed. A failed attempt is counted, not fatal: the figures say how many
//! of the burst succeeded, which is half of what this case checks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{BARE_BWRAP, prepared_lower, stats, true_request, unique};
use crate::local::HostFacts;
use crate::{LocalSandbox, LocalSandboxConfig, Sandbox, SandboxError};

/// The result of [`burst_start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstBench {
    /// Attempts per burst.
    pub attempts: usize,
    pub rounds: usize,
    /// Per round: from spawning the burst to the last attempt's `true` exiting.
    pub all_done: super::Stats,
    /// Per succeeded attempt, over all rounds: from spawning the burst to its `true` exiting
    /// (`None` when none succeeded).
    pub each_start: Option<super::Stats>,
    /// The baseline, the same for bare `bwrap … true`.
    pub bwrap_all_done: super::Stats,
    pub bwrap_each: Option<super::Stats>,
    /// Attempts (of `attempts × rounds`) whose sandbox was created and whose `true` exited 0.
    pub succeeded: usize,
    pub bwrap_succeeded: usize,
    /// What went wrong with the others (at most a few, for the report).
    pub failures: Vec<String>,
}

/// Runs `rounds` bursts of `attempts` attempts on `commit` of `repo`, each interleaved with a
/// burst of as many bare bwraps. The lower checkout is prepared first, untimed.
pub async fn burst_start(
    config: &LocalSandboxConfig,
    repo: &Path,
    commit: &str,
    attempts: usize,
    rounds: usize,
) -> Result<BurstBench, SandboxError> {
    let (attempts, rounds) = (attempts.max(1), rounds.max(1));
    let prefix = format!("burst-{}-{}", std::process::id(), unique());
    let (host, lower, base) = prepared_lower(config, repo, commit, &prefix).await?;

    let mut all_done = Vec::with_capacity(rounds);
    let mut each = Vec::with_capacity(rounds * attempts);
    let mut bwrap_all_done = Vec::with_capacity(rounds);
    let mut bwrap_each = Vec::with_capacity(rounds * attempts);
    let (mut succeeded, mut bwrap_succeeded) = (0, 0);
    let mut failures = Vec::new();
    for round in 0..rounds {
        let burst = Burst {
            config: config.clone(),
            host: host.clone(),
            lower: lower.clone(),
            base: base.clone(),
            prefix: format!("{prefix}-{round}"),
        };
        let (elapsed, results) = burst.run(attempts).await;
        all_done.push(elapsed);
        for result in results {
            match result {
                Ok(took) => {
                    each.push(took);
                    succeeded += 1;
                }
                Err(error) if failures.len() < 5 => failures.push(error),
                Err(_) => {}
            }
        }

        let (elapsed, results) = bare_bwrap_burst(&host.bwrap, attempts).await;
        bwrap_all_done.push(elapsed);
        for result in results {
            match result {
                Ok(took) => {
                    bwrap_each.push(took);
                    bwrap_succeeded += 1;
                }
                Err(error) if failures.len() < 5 => failures.push(error),
                Err(_) => {}
            }
        }
    }
    Ok(BurstBench {
        attempts,
        rounds,
        all_done: stats(&all_done)?,
        each_start: super::Stats::from_samples(&each),
        bwrap_all_done: stats(&bwrap_all_done)?,
        bwrap_each: super::Stats::from_samples(&bwrap_each),
        succeeded,
        bwrap_succeeded,
        failures,
    })
}

/// What every attempt of one burst shares.
#[derive(Clone)]
struct Burst {
    config: LocalSandboxConfig,
    host: HostFacts,
    lower: PathBuf,
    base: String,
    prefix: String,
}

impl Burst {
    /// Spawns `attempts` tasks at once; returns the time until all have finished and each one's
    /// time to its `true` exiting (or why it failed). Every sandbox is removed afterwards.
    async fn run(&self, attempts: usize) -> (Duration, Vec<Result<Duration, String>>) {
        let started = Instant::now();
        let tasks: Vec<_> = (0..attempts)
            .map(|n| {
                let burst = self.clone();
                tokio::spawn(async move { burst.one(n, started).await })
            })
            .collect();
        let mut finished = Vec::with_capacity(attempts);
        for task in tasks {
            finished.push(task.await);
        }
        let elapsed = started.elapsed();
        let mut results = Vec::with_capacity(attempts);
        let mut sandboxes = Vec::with_capacity(attempts);
        for task in finished {
            match task {
                Ok((sandbox, result)) => {
                    sandboxes.extend(sandbox);
                    results.push(result);
                }
                Err(error) => results.push(Err(format!("the attempt's task stopped: {error}"))),
            }
        }
        for sandbox in sandboxes {
            if let Err(error) = sandbox.destroy().await {
                results.push(Err(format!("removing an attempt failed: {error}")));
            }
        }
        (elapsed, results)
    }

    /// One attempt: create its layer, run `true`; the sandbox is returned for removal.
    async fn one(
        &self,
        n: usize,
        burst_started: Instant,
    ) -> (Option<LocalSandbox>, Result<Duration, String>) {
        let sandbox = match LocalSandbox::create_on_lower(
            &self.config,
            self.host.clone(),
            self.lower.clone(),
            self.base.clone(),
            &format!("{}-{n}", self.prefix),
            &crate::Limits::default(),
        )
        .await
        {
            Ok(sandbox) => sandbox,
            Err(error) => return (None, Err(format!("attempt {n}: {error}"))),
        };
        let outcome = sandbox.exec(true_request(), &mut |_| {}).await;
        let took = burst_started.elapsed();
        let result = match outcome {
            Ok(outcome) if outcome.success() => Ok(took),
            Ok(outcome) => Err(format!("attempt {n}: `true` failed: {outcome:?}")),
            Err(error) => Err(format!("attempt {n}: {error}")),
        };
        (Some(sandbox), result)
    }
}

/// `attempts` bare `bwrap … true` at once.
async fn bare_bwrap_burst(
    bwrap: &Path,
    attempts: usize,
) -> (Duration, Vec<Result<Duration, String>>) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..attempts)
        .map(|n| {
            let bwrap = bwrap.to_path_buf();
            tokio::spawn(async move {
                let status = tokio::process::Command::new(&bwrap).args(BARE_BWRAP).status().await;
                match status {
                    Ok(status) if status.success() => Ok(started.elapsed()),
                    Ok(status) => Err(format!("bare bwrap {n} failed: {status}")),
                    Err(error) => Err(format!("cannot run bwrap: {error}")),
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(attempts);
    for task in tasks {
        results.push(task.await.unwrap_or_else(|e| Err(format!("a bwrap task stopped: {e}"))));
    }
    (started.elapsed(), results)
}
