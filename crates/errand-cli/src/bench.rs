//! `errand bench …`: Errand measures itself, with a baseline taken in the same run (the machines
//! are shared and noisy, so medians and ratios are what to compare).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use errand_sandbox::LocalSandboxConfig;

use crate::config::Config;

mod service;
mod tasks;

/// The cases of `errand bench sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxCase {
    /// One attempt start at a time, plain and over a cached snapshot.
    Start,
    /// `--burst` attempts started at once.
    Burst,
    /// The final diff of an attempt that changed 10 files in a `--diff-files` repository.
    Diff,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Time to start an attempt sandbox (overlay layer + bubblewrap) and run `true`, against
    /// plain `bwrap … true` as the baseline; many attempts started at once; and an attempt's
    /// final diff in a large repository against `git diff` over the same checkout.
    Sandbox {
        /// Number of runs of each single start.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Repository to check out for the start cases (default: a generated one with 1,000
        /// files).
        #[arg(long)]
        repo: Option<PathBuf>,
        /// Which cases to run, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "start,burst,diff")]
        cases: Vec<SandboxCase>,
        /// Attempts started at once in the burst case.
        #[arg(long, default_value_t = 20)]
        burst: usize,
        /// Bursts to run (each interleaved with one of bare bwraps).
        #[arg(long, default_value_t = 10)]
        burst_rounds: usize,
        /// Files in the diff case's generated repository.
        #[arg(long, default_value_t = 100_000)]
        diff_files: usize,
        /// Timed runs of each diff.
        #[arg(long, default_value_t = 7)]
        diff_rounds: usize,
        /// Keeps the diff case's generated repository and checkout between runs (default:
        /// `errand-bench-cache` in the temporary directory).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
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
    /// The service under load, all in this process: many attempts in flight against a model
    /// with a fixed latency per turn (the worker's memory per attempt, against the same process
    /// idle), and one attempt's events streamed to many SSE clients (delay from stored to
    /// read, against one client).
    Service(service::ServiceBench),
    /// A suite of small real tasks with the configured model: how many it resolves (each
    /// task's fail-to-pass check passes after, its pass-to-pass check still does), with turns,
    /// time and tokens per task.
    Tasks(tasks::TasksBench),
}

pub async fn run(command: BenchCommand, config: Config) -> anyhow::Result<i32> {
    match command {
        BenchCommand::Sandbox {
            runs,
            repo,
            cases,
            burst,
            burst_rounds,
            diff_files,
            diff_rounds,
            cache_dir,
        } => {
            let options = SandboxBench {
                runs,
                repo,
                cases,
                burst,
                burst_rounds,
                diff_files,
                diff_rounds,
                cache_dir,
            };
            sandbox(options, config).await
        }
        BenchCommand::Agent { turns, runs } => agent(turns, runs).await,
        BenchCommand::Service(options) => service::run(options, config).await,
        BenchCommand::Tasks(options) => tasks::run(options, config).await,
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

/// The flags of `errand bench sandbox`.
struct SandboxBench {
    runs: usize,
    repo: Option<PathBuf>,
    cases: Vec<SandboxCase>,
    burst: usize,
    burst_rounds: usize,
    diff_files: usize,
    diff_rounds: usize,
    cache_dir: Option<PathBuf>,
}

async fn sandbox(options: SandboxBench, config: Config) -> anyhow::Result<i32> {
    if options.runs == 0 || options.burst == 0 || options.burst_rounds == 0 {
        bail!("--runs, --burst and --burst-rounds must be at least 1");
    }
    if options.diff_files < 100 || options.diff_rounds == 0 {
        bail!("--diff-files must be at least 100 and --diff-rounds at least 1");
    }
    let scratch = tempdir()?;
    let result = sandbox_cases(&options, &scratch, config).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn sandbox_cases(
    options: &SandboxBench,
    scratch: &Path,
    config: Config,
) -> anyhow::Result<i32> {
    let sandbox_config = LocalSandboxConfig {
        data_dir: scratch.join("data"),
        helper: std::env::current_exe()?,
        bwrap: PathBuf::from("bwrap"),
        sandbox_uid: config.sandbox.uid,
    };
    let wants = |case| options.cases.contains(&case);
    let mut code = 0;
    if wants(SandboxCase::Start) || wants(SandboxCase::Burst) {
        let repo = match &options.repo {
            Some(repo) => repo.clone(),
            None => {
                let repo = scratch.join("repo");
                generated_repo(&repo, 1000).await?;
                repo
            }
        };
        let repo = errand_git::Repo::discover(&repo).await?;
        let commit = repo.head_commit().await?;
        if wants(SandboxCase::Start) {
            let bench = errand_sandbox::bench::sandbox_start(
                &sandbox_config,
                repo.root(),
                &commit,
                options.runs,
            )
            .await?;
            print_start(options.runs, &bench);
        }
        if wants(SandboxCase::Burst) {
            let bench = errand_sandbox::bench::burst_start(
                &sandbox_config,
                repo.root(),
                &commit,
                options.burst,
                options.burst_rounds,
            )
            .await?;
            if !print_burst(&bench) {
                code = 1;
            }
        }
    }
    if wants(SandboxCase::Diff) {
        let cache_dir = options
            .cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("errand-bench-cache"));
        let diff_options = errand_sandbox::bench::DiffBenchOptions {
            files: options.diff_files,
            rounds: options.diff_rounds,
            cache_dir,
        };
        let bench = errand_sandbox::bench::diff_bench(&sandbox_config, &diff_options).await?;
        print_diff(&diff_options, &bench);
    }
    Ok(code)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn print_stats_header() {
    println!("{:<44} {:>9} {:>9} {:>9} {:>9}", "", "p50 ms", "p95 ms", "min ms", "max ms");
}

fn print_stats(name: &str, stats: &errand_sandbox::bench::Stats) {
    println!(
        "{name:<44} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        ms(stats.p50),
        ms(stats.p95),
        ms(stats.min),
        ms(stats.max)
    );
}

fn print_start(runs: usize, bench: &errand_sandbox::bench::StartBench) {
    println!("errand bench sandbox: {runs} runs each, {} cores", cores());
    print_stats_header();
    for (name, stats) in [
        ("attempt start + `true` (overlay + bwrap)", &bench.attempt_start),
        ("over a cached snapshot (3 overlays)", &bench.snapshot_start),
        ("baseline: plain `bwrap … true`", &bench.bwrap_true),
    ] {
        print_stats(name, stats);
    }
    let ratio =
        bench.attempt_start.p50.as_secs_f64() / bench.bwrap_true.p50.as_secs_f64().max(1e-9);
    println!("ratio of p50s (attempt / baseline): {ratio:.2}");
}

/// Prints the burst case; `false` when some attempt failed.
fn print_burst(bench: &errand_sandbox::bench::BurstBench) -> bool {
    let total = bench.attempts * bench.rounds;
    println!();
    println!(
        "{} attempts started at once: {} rounds, each interleaved with {} bare bwraps at once",
        bench.attempts, bench.rounds, bench.attempts
    );
    print_stats_header();
    print_stats("all done (per round)", &bench.all_done);
    if let Some(each) = &bench.each_start {
        print_stats("each attempt: burst start to `true` exited", each);
    }
    print_stats("baseline: all bare bwraps done (per round)", &bench.bwrap_all_done);
    if let Some(each) = &bench.bwrap_each {
        print_stats("baseline: each bare bwrap", each);
    }
    println!(
        "ratio of all-done p50s (attempts / baseline): {:.2}",
        bench.all_done.p50.as_secs_f64() / bench.bwrap_all_done.p50.as_secs_f64().max(1e-9)
    );
    println!(
        "succeeded: {} of {total} attempts, {} of {total} bare bwraps",
        bench.succeeded, bench.bwrap_succeeded
    );
    for failure in &bench.failures {
        println!("  failed: {failure}");
    }
    bench.succeeded == total && bench.bwrap_succeeded == total
}

fn print_diff(
    options: &errand_sandbox::bench::DiffBenchOptions,
    bench: &errand_sandbox::bench::DiffBench,
) {
    println!();
    println!(
        "final diff of an attempt that changed {} files (7 modified, 1 deleted, 2 added) in a \
         repository of {} files; {} rounds, warm caches",
        bench.changed_files, bench.tracked_files, options.rounds
    );
    match bench.generated_in {
        Some(took) => println!(
            "repository generated in {:.1} s (kept in {})",
            took.as_secs_f64(),
            options.cache_dir.display()
        ),
        None => println!("repository reused from {}", options.cache_dir.display()),
    }
    println!(
        "attempt created in {:.1} s ({})",
        bench.attempt_created_in.as_secs_f64(),
        if bench.checkout_was_cached { "checkout cached" } else { "including the checkout" }
    );
    print_stats_header();
    print_stats("attempt's diff (reads the upper layer)", &bench.sandbox_diff);
    print_stats("baseline: `git diff` in a working copy", &bench.git_diff);
    print_stats("baseline: `git status --porcelain`", &bench.git_status);
    println!(
        "patch: {} bytes (`git diff`: {} bytes, without the 2 untracked files)",
        bench.patch_bytes, bench.git_diff_bytes
    );
    let speedup = |baseline: Duration| {
        baseline.as_secs_f64() / bench.sandbox_diff.p50.as_secs_f64().max(1e-9)
    };
    println!(
        "speed-up of p50s: {:.2}x over `git diff`, {:.2}x over `git status` (target: 10x over \
         `git diff`)",
        speedup(bench.git_diff.p50),
        speedup(bench.git_status.p50)
    );
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
