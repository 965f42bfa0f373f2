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
}

pub async fn run(command: BenchCommand, config: Config) -> anyhow::Result<i32> {
    match command {
        BenchCommand::Sandbox { runs, repo } => sandbox(runs, repo, config).await,
    }
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
