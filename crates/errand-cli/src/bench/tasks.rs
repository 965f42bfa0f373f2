//! `errand bench tasks --suite DIR`: how many small real tasks the configured model resolves
//! through Errand, with turns, time and tokens per task.
//!
//! A suite is a directory of tasks, one per subdirectory:
//!
//! ```text
//! DIR/<task>/task.toml   prompt, fail_to_pass, pass_to_pass (shell commands)
//! DIR/<task>/repo/       the repository's files (committed fresh for each run)
//! ```
//!
//! For each task the repository is committed in a scratch directory, its checks are confirmed
//! on the base (`fail_to_pass` must fail, `pass_to_pass` must pass: a task that does not hold
//! is reported, not run), one attempt runs as `errand exec` would, and its diff is applied to
//! a fresh copy where both checks run again: the task is resolved when both pass. The checks
//! are the suite author's commands and run on this machine, in the scratch copies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use errand_agent::{MemoryLog, NoMessages};
use errand_protocol::AttemptId;
use errand_sandbox::LocalSandboxConfig;
use errand_server::{
    AttemptEnd, AttemptPlan, AttemptResources, DEFAULT_SNAPSHOT_CACHE_BYTES, run_one_attempt,
};
use errand_store::TaskMode;
use serde::{Deserialize, Serialize};

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct TasksBench {
    /// The suite: a directory of tasks (see `bench/tasks/README.md`).
    #[arg(long)]
    pub suite: PathBuf,
    /// Only the tasks whose directory name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// One JSON document per task, then a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    prompt: String,
    fail_to_pass: String,
    pass_to_pass: String,
}

/// What one task came to.
#[derive(Debug, Serialize)]
struct TaskOutcome {
    task: String,
    resolved: bool,
    /// Why not, when not.
    note: String,
    turns: u32,
    seconds: f64,
    tokens: u64,
}

pub async fn run(options: TasksBench, config: Config) -> anyhow::Result<i32> {
    let mut tasks: Vec<PathBuf> = std::fs::read_dir(&options.suite)
        .with_context(|| format!("cannot read the suite {}", options.suite.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("task.toml").is_file())
        .filter(|path| options.only.as_deref().is_none_or(|only| name(path).contains(only)))
        .collect();
    tasks.sort();
    if tasks.is_empty() {
        bail!(
            "{} holds no task (a subdirectory with task.toml and repo/)",
            options.suite.display()
        );
    }
    let model = errand_model::ModelClient::new(config.model_config())?;
    let agent = config.agent_config();
    let limits = config.sandbox.limits();
    let scratch = tempfile::Builder::new().prefix("errand-bench-tasks").tempdir()?;
    std::fs::set_permissions(scratch.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let sandbox = LocalSandboxConfig {
        data_dir: config.data_dir(),
        helper: std::env::current_exe()
            .context("cannot find the errand binary for the sandbox helper")?,
        bwrap: PathBuf::from("bwrap"),
        sandbox_uid: config.sandbox.uid,
    };
    if !options.json {
        println!(
            "errand bench tasks: {} task(s) from {}, model {} ({})",
            tasks.len(),
            options.suite.display(),
            config.model.model(),
            config.model.provider
        );
        println!(
            "{:<28} {:>9} {:>6} {:>8} {:>9}  note",
            "task", "resolved", "turns", "seconds", "tokens"
        );
    }
    let mut outcomes = Vec::new();
    for task in &tasks {
        let resources = AttemptResources {
            sandbox: &sandbox,
            limits: &limits,
            model: &model,
            agent: &agent,
            snapshot_cache_bytes: DEFAULT_SNAPSHOT_CACHE_BYTES,
        };
        let outcome = match run_task(task, scratch.path(), resources).await {
            Ok(outcome) => outcome,
            Err(e) => TaskOutcome {
                task: name(task),
                resolved: false,
                note: format!("{e:#}"),
                turns: 0,
                seconds: 0.0,
                tokens: 0,
            },
        };
        if options.json {
            println!("{}", serde_json::to_string(&outcome)?);
        } else {
            println!(
                "{:<28} {:>9} {:>6} {:>8.1} {:>9}  {}",
                outcome.task,
                if outcome.resolved { "yes" } else { "no" },
                outcome.turns,
                outcome.seconds,
                outcome.tokens,
                outcome.note
            );
        }
        outcomes.push(outcome);
    }
    let resolved = outcomes.iter().filter(|o| o.resolved).count();
    let mut seconds: Vec<f64> = outcomes.iter().map(|o| o.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    if options.json {
        println!(
            "{}",
            serde_json::json!({ "type": "summary", "resolved": resolved, "tasks": outcomes.len(), "median_seconds": median })
        );
    } else {
        println!("resolved {resolved} of {} · median {median:.1} s per task", outcomes.len());
    }
    Ok(0)
}

fn name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A fresh commit of the task's repository under `scratch`.
fn checkout(task: &Path, scratch: &Path, label: &str) -> anyhow::Result<PathBuf> {
    let dest = scratch.join(format!("{}-{label}", name(task)));
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    copy_dir(&task.join("repo"), &dest)?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "task"],
    ] {
        let status = std::process::Command::new("git").args(args).current_dir(&dest).output()?;
        if !status.status.success() {
            bail!("git {args:?} failed: {}", String::from_utf8_lossy(&status.stderr));
        }
    }
    Ok(dest)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Whether `command` passes in `dir` (bounded: a hung check fails).
async fn passes(command: &str, dir: &Path) -> anyhow::Result<bool> {
    let run = tokio::process::Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(Duration::from_secs(300), run).await {
        Ok(status) => Ok(status?.success()),
        Err(_) => Ok(false),
    }
}

async fn run_task(
    task: &Path,
    scratch: &Path,
    resources: AttemptResources<'_>,
) -> anyhow::Result<TaskOutcome> {
    let file: TaskFile = toml::from_str(&std::fs::read_to_string(task.join("task.toml"))?)
        .with_context(|| format!("{}/task.toml", task.display()))?;
    let base = checkout(task, scratch, "base")?;
    let unresolved = |note: &str| TaskOutcome {
        task: name(task),
        resolved: false,
        note: note.into(),
        turns: 0,
        seconds: 0.0,
        tokens: 0,
    };
    if passes(&file.fail_to_pass, &base).await? {
        return Ok(unresolved("the task does not hold: fail_to_pass passes on the base"));
    }
    if !passes(&file.pass_to_pass, &base).await? {
        return Ok(unresolved("the task does not hold: pass_to_pass fails on the base"));
    }
    let repo = errand_git::Repo::discover(&base).await?;
    let commit = repo.head_commit().await?;
    let mut log = MemoryLog::new(|_| {});
    let plan = AttemptPlan {
        attempt: AttemptId::new(),
        repository: repo.root(),
        commit: &commit,
        prompt: &file.prompt,
        workdir: "",
        mode: TaskMode::Code,
        environment: None,
        keep_sandbox: false,
        followup: None,
    };
    let clock = Instant::now();
    let run = run_one_attempt(plan, resources, &mut log, &NoMessages, std::future::pending()).await;
    let seconds = clock.elapsed().as_secs_f64();
    let result = match run.end {
        AttemptEnd::Ran(result) => result,
        AttemptEnd::SetupFailed(reason) | AttemptEnd::NotStarted(reason) => {
            return Ok(TaskOutcome { seconds, ..unresolved(&reason) });
        }
        AttemptEnd::Cancelled(_) | AttemptEnd::Stopped(_) => {
            return Ok(TaskOutcome { seconds, ..unresolved("stopped") });
        }
    };
    let tokens = result.usage.input + result.usage.output;
    let patch = result.diff.as_ref().map(|d| d.patch.clone()).unwrap_or_default();
    let after = checkout(task, scratch, "after")?;
    let applied = errand_git::Repo::discover(&after).await?.apply(&patch, false).await;
    let (resolved, note) = if patch.trim().is_empty() {
        (false, format!("no change ({})", result.outcome.reason))
    } else if let Err(e) = applied {
        (false, format!("the diff does not apply: {e}"))
    } else {
        match (passes(&file.fail_to_pass, &after).await?, passes(&file.pass_to_pass, &after).await?)
        {
            (true, true) => (true, String::new()),
            (false, _) => (false, "fail_to_pass still fails".into()),
            (true, false) => (false, "pass_to_pass broke".into()),
        }
    };
    Ok(TaskOutcome { task: name(task), resolved, note, turns: result.turns, seconds, tokens })
}
