//! `errand bench …`: Errand measures itself, with a baseline taken in the same run (the machines
//! are shared and noisy, so medians and ratios are what to compare).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use errand_sandbox::LocalSandboxConfig;

use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Time to start an attempt sandbox (overlay layer + bubblewrap) and run `true`, against
    /// plain `bwrap … true` as the baseline.
    Sandbox {
        /// Number of runs of each.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Repository to check out (default: a generated one with 1,000 files).
        #[arg(long)]
        repo: Option<PathBuf>,
    },
    /// Per-turn overhead of the agent loop (everything but waiting for the model and running
    /// commands), with a zero-latency model and a sandbox that answers at once; JSON-encoding
    /// each turn's request is the baseline.
    Agent {
        /// Turns per run.
        #[arg(long, default_value_t = 200)]
        turns: u32,
        /// Runs; the figures are the medians of the runs' percentiles.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

pub async fn run(command: BenchCommand, config: Config) -> anyhow::Result<i32> {
    match command {
        BenchCommand::Sandbox { runs, repo } => sandbox(runs, repo, config).await,
        BenchCommand::Agent { turns, runs } => agent(turns, runs).await,
    }
}

async fn agent(turns: u32, runs: usize) -> anyhow::Result<i32> {
    if turns < 2 || runs == 0 {
        bail!("--turns must be at least 2 and --runs at least 1");
    }
    let mut benches = Vec::with_capacity(runs);
    for _ in 0..runs {
        benches.push(errand_agent::bench::agent_loop(turns).await.map_err(anyhow::Error::msg)?);
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let median = |pick: &dyn Fn(&errand_agent::bench::LoopBench) -> Duration| {
        let mut values: Vec<Duration> = benches.iter().map(pick).collect();
        values.sort();
        values[values.len() / 2]
    };
    println!(
        "errand bench agent: {runs} runs of {turns} turns, {} cores; medians over the runs",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("{:<46} {:>9} {:>9} {:>9} {:>9}", "per turn", "p50 µs", "p90 µs", "p99 µs", "max µs");
    let overhead = [
        median(&|b| b.overhead.p50),
        median(&|b| b.overhead.p90),
        median(&|b| b.overhead.p99),
        median(&|b| b.overhead.max),
    ];
    let encode = [
        median(&|b| b.encode.p50),
        median(&|b| b.encode.p90),
        median(&|b| b.encode.p99),
        median(&|b| b.encode.max),
    ];
    for (name, values) in
        [("agent loop overhead", overhead), ("baseline: JSON-encode the request", encode)]
    {
        println!(
            "{name:<46} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            us(values[0]),
            us(values[1]),
            us(values[2]),
            us(values[3])
        );
    }
    let last = &benches[benches.len() - 1];
    println!(
        "whole run: {:.1} ms, {} events, last request {} KiB",
        median(&|b| b.total).as_secs_f64() * 1e3,
        last.events,
        last.final_request_bytes / 1024
    );
    println!(
        "ratio of p50s (overhead / baseline): {:.2}",
        overhead[0].as_secs_f64() / encode[0].as_secs_f64().max(1e-9)
    );
    Ok(0)
}

async fn sandbox(runs: usize, repo: Option<PathBuf>, config: Config) -> anyhow::Result<i32> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let scratch = tempdir()?;
    let repo = match repo {
        Some(repo) => repo,
        None => {
            let repo = scratch.join("repo");
            generated_repo(&repo, 1000).await?;
            repo
        }
    };
    let repo = errand_git::Repo::discover(&repo).await?;
    let commit = repo.head_commit().await?;
    let sandbox_config = LocalSandboxConfig {
        data_dir: scratch.join("data"),
        helper: std::env::current_exe()?,
        bwrap: PathBuf::from("bwrap"),
        sandbox_uid: config.sandbox.uid,
    };
    let result =
        errand_sandbox::bench::sandbox_start(&sandbox_config, repo.root(), &commit, runs).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let bench = result?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "errand bench sandbox: {runs} runs each, {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("{:<44} {:>9} {:>9} {:>9} {:>9}", "", "p50 ms", "p95 ms", "min ms", "max ms");
    for (name, stats) in [
        ("attempt start + `true` (overlay + bwrap)", &bench.attempt_start),
        ("over a cached snapshot (3 overlays)", &bench.snapshot_start),
        ("baseline: plain `bwrap … true`", &bench.bwrap_true),
    ] {
        println!(
            "{name:<44} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            ms(stats.p50),
            ms(stats.p95),
            ms(stats.min),
            ms(stats.max)
        );
    }
    let ratio =
        bench.attempt_start.p50.as_secs_f64() / bench.bwrap_true.p50.as_secs_f64().max(1e-9);
    println!("ratio of p50s (attempt / baseline): {ratio:.2}");
    Ok(0)
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("errand-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// A repository of `files` small files in nested directories, one commit.
async fn generated_repo(dir: &Path, files: usize) -> anyhow::Result<()> {
    for i in 0..files {
        let path = dir.join(format!("src/m{}/f{i}.txt", i % 50));
        std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
        std::fs::write(&path, format!("file {i}\n"))?;
    }
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["-c", "user.name=errand", "-c", "user.email=errand@localhost", "commit", "-qm", "bench"],
    ] {
        let status =
            tokio::process::Command::new("git").args(args).current_dir(dir).status().await?;
        if !status.success() {
            bail!("git {} failed while generating the benchmark repository", args.join(" "));
        }
    }
    Ok(())
}
