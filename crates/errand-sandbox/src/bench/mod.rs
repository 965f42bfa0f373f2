//! How fast the local sandbox is (`errand bench sandbox`): starting attempts, alone and 20 at
//! once, and taking an attempt's final diff in a large repository.
//!
//! `attempt_start`: create an attempt's layer over an already prepared lower checkout, then run
//! `true` in it (its cgroups, mount namespace, overlay, bwrap with the seccomp filter, exec).
//! Removing the attempt is not timed.
//! `bwrap_true`: a bare `bwrap --unshare-all … true` measured in the same run, as the baseline.
//! `snapshot_start`: an attempt over an environment's cached snapshot: finding and leasing the
//! snapshot (a cache hit, no maintenance script), creating the attempt's three upper layers, and
//! `true` under the three overlays (workspace, home, /usr/local). The snapshot is built first,
//! untimed, by a setup script that writes into all three layers.
//!
//! `burst.rs`: many attempts started at once ([`burst_start`]); `diff.rs`: the final diff of an
//! attempt in a large generated repository against `git diff` ([`diff_bench`]).

mod burst;
mod diff;

pub use burst::{BurstBench, burst_start};
pub use diff::{DiffBench, DiffBenchOptions, diff_bench};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::local::{HostFacts, check_host};
use crate::{
    EnvironmentSpec, ExecRequest, LocalSandbox, LocalSandboxConfig, PrepareError, PrepareOptions,
    Sandbox, SandboxError,
};

/// Timings of one kind, over `runs` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub runs: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Stats {
    /// Nearest-rank percentiles. `None` without samples.
    pub fn from_samples(samples: &[Duration]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        Some(Stats {
            runs: sorted.len(),
            p50: percentile(&sorted, 50),
            p95: percentile(&sorted, 95),
            min: *sorted.first()?,
            max: *sorted.last()?,
        })
    }
}

/// The nearest-rank `p`th percentile of `sorted` (ascending, not empty).
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[((sorted.len() * p).div_ceil(100)).max(1) - 1]
}

/// The result of [`sandbox_start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartBench {
    pub attempt_start: Stats,
    pub bwrap_true: Stats,
    pub snapshot_start: Stats,
}

/// Measures `runs` attempt starts on `commit` of `repo` (the lower checkout is prepared first,
/// untimed) and as many bare bwrap starts.
pub async fn sandbox_start(
    config: &LocalSandboxConfig,
    repo: &Path,
    commit: &str,
    runs: usize,
) -> Result<StartBench, SandboxError> {
    let runs = runs.max(1);
    let prefix = format!("bench-{}-{}", std::process::id(), unique());
    let (host, lower, base) = prepared_lower(config, repo, commit, &prefix).await?;

    let environment = EnvironmentSpec {
        setup_script: Some(
            "echo built > built.txt; mkdir -p ~/.cache /usr/local/bin; echo x > ~/.cache/x; \
             printf '#!/bin/sh\\ntrue\\n' > /usr/local/bin/bench-tool"
                .into(),
        ),
        ..EnvironmentSpec::default()
    };
    let prepare = || async {
        LocalSandbox::prepare_environment(
            config,
            repo,
            commit,
            &environment,
            &PrepareOptions::default(),
            &mut |_| {},
        )
        .await
        .map_err(|e| match e {
            PrepareError::Sandbox(e) => e,
            other => SandboxError::Setup(other.to_string()),
        })?
        .ok_or_else(|| SandboxError::Setup("the benchmark environment needs a snapshot".into()))
    };
    // Builds the snapshot (untimed).
    prepare().await?.release().await;

    let mut attempt_samples = Vec::with_capacity(runs);
    let mut bwrap_samples = Vec::with_capacity(runs);
    let mut snapshot_samples = Vec::with_capacity(runs);
    for run in 0..runs {
        let started = Instant::now();
        let sandbox = LocalSandbox::create_on_lower(
            config,
            host.clone(),
            lower.clone(),
            base.clone(),
            &format!("{prefix}-{run}"),
            &crate::Limits::default(),
        )
        .await?;
        let outcome = sandbox.exec(true_request(), &mut |_| {}).await;
        attempt_samples.push(started.elapsed());
        sandbox.destroy().await?;
        let outcome = outcome?;
        if !outcome.success() {
            return Err(SandboxError::Exec(format!("`true` failed in the sandbox: {outcome:?}")));
        }

        let started = Instant::now();
        let status =
            tokio::process::Command::new(&host.bwrap).args(BARE_BWRAP).status().await.map_err(
                |source| SandboxError::Io { context: "cannot run bwrap".into(), source },
            )?;
        bwrap_samples.push(started.elapsed());
        if !status.success() {
            return Err(SandboxError::Exec(format!("bare bwrap failed: {status}")));
        }

        let started = Instant::now();
        let snapshot = prepare().await?;
        let sandbox = LocalSandbox::create_on_snapshot(
            config,
            snapshot,
            &format!("{prefix}-snapshot-{run}"),
            &crate::Limits::default(),
        )
        .await?;
        let outcome = sandbox.exec(true_request(), &mut |_| {}).await;
        snapshot_samples.push(started.elapsed());
        sandbox.destroy().await?;
        let outcome = outcome?;
        if !outcome.success() {
            return Err(SandboxError::Exec(format!(
                "`true` failed over the snapshot: {outcome:?}"
            )));
        }
    }
    Ok(StartBench {
        attempt_start: stats(&attempt_samples)?,
        bwrap_true: stats(&bwrap_samples)?,
        snapshot_start: stats(&snapshot_samples)?,
    })
}

/// Prepares the lower checkout of `commit` (through a first attempt whose start is not counted)
/// and returns what [`LocalSandbox::create_on_lower`] needs to start attempts over it.
async fn prepared_lower(
    config: &LocalSandboxConfig,
    repo: &Path,
    commit: &str,
    prefix: &str,
) -> Result<(HostFacts, PathBuf, String), SandboxError> {
    let warm = LocalSandbox::create(config, repo, commit, &format!("{prefix}-warm")).await?;
    let lower = warm.lower_dir().to_path_buf();
    let base = warm.base_commit().to_string();
    warm.destroy().await?;
    Ok((check_host(config).await?, lower, base))
}

/// Samples as [`Stats`]; an error when there are none.
fn stats(samples: &[Duration]) -> Result<Stats, SandboxError> {
    Stats::from_samples(samples).ok_or_else(|| SandboxError::Exec("no samples were taken".into()))
}

const BARE_BWRAP: &[&str] = &[
    "--unshare-all",
    "--cap-drop",
    "ALL",
    "--die-with-parent",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/bin",
    "/bin",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "true",
];

fn true_request() -> ExecRequest {
    ExecRequest {
        command: vec!["true".into()],
        workdir: String::new(),
        timeout: Duration::from_secs(60),
        env: Vec::new(),
        stdin: None,
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=20).rev().map(Duration::from_millis).collect();
        let stats = Stats::from_samples(&samples).unwrap();
        assert_eq!(stats.runs, 20);
        assert_eq!(stats.p50, Duration::from_millis(10));
        assert_eq!(stats.p95, Duration::from_millis(19));
        assert_eq!(stats.min, Duration::from_millis(1));
        assert_eq!(stats.max, Duration::from_millis(20));
        assert_eq!(Stats::from_samples(&[]), None);
    }
}
