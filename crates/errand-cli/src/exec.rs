//! `errand exec`: one attempt on the current repository, no server. Prints the work log as it
//! happens, then the report and the diff. The user's repository is never modified unless
//! `--apply` is given.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use errand_agent::{AttemptSpec, EventSink, MemoryLog, run_attempt};
use errand_protocol::{AttemptId, AttemptState, EventKind};
use errand_sandbox::{LocalSandbox, LocalSandboxConfig, Sandbox};

use crate::config::Config;
use crate::render::HumanRenderer;

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// What to do, as you would say it to a colleague.
    pub prompt: String,
    /// Print events as JSON lines instead of the human-readable log.
    #[arg(long)]
    pub json: bool,
    /// Also write the diff to this file (a `git apply`-compatible patch).
    #[arg(long, value_name = "FILE")]
    pub output_patch: Option<PathBuf>,
    /// Apply the diff to your working tree when the attempt succeeds.
    #[arg(long)]
    pub apply: bool,
    /// Keep the attempt's sandbox layer on disk afterwards (for debugging).
    #[arg(long)]
    pub keep: bool,
}

/// Exit statuses: 0 succeeded, 1 the attempt failed or timed out, 2 Errand could not start it.
pub async fn run(args: ExecArgs, config: Config) -> anyhow::Result<i32> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = errand_git::Repo::discover(&cwd)
        .await
        .context("`errand exec` runs inside a git repository")?;
    let commit = repo.head_commit().await?;
    let workdir =
        cwd.strip_prefix(repo.root()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    if !repo.is_clean().await.unwrap_or(true) {
        eprintln!(
            "note: your working tree has uncommitted changes; Errand works from HEAD ({}) and ignores them",
            &commit[..12.min(commit.len())]
        );
    }

    let model = errand_model::ModelClient::new(config.model_config())?;
    let sandbox_config = LocalSandboxConfig {
        data_dir: config.data_dir(),
        helper: std::env::current_exe()
            .context("cannot find the errand binary for the sandbox helper")?,
        bwrap: PathBuf::from("bwrap"),
        sandbox_uid: config.sandbox.uid,
    };

    let json = args.json;
    let mut renderer = HumanRenderer::default();
    let stdout_lock = Arc::new(Mutex::new(()));
    let mut log = MemoryLog::new(move |event| {
        let _guard = stdout_lock.lock();
        if json {
            if let Ok(line) = serde_json::to_string(event) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        } else {
            let mut err = std::io::stderr().lock();
            let _ = renderer.render(event, &mut err);
        }
    });

    let attempt = AttemptId::new();
    log.record(EventKind::StateChanged { state: AttemptState::Preparing, reason: None }).await;
    let started = Instant::now();
    let limits = config.sandbox.limits();
    let attempt_name = attempt.to_string();
    let sandbox = match LocalSandbox::create_limited(
        &sandbox_config,
        repo.root(),
        &commit,
        &attempt_name,
        &limits,
    )
    .await
    {
        Ok(sandbox) => sandbox,
        Err(e) => {
            let reason = format!("could not prepare the sandbox: {e}");
            log.record(EventKind::StateChanged {
                state: AttemptState::Failed,
                reason: Some(reason.clone()),
            })
            .await;
            anyhow::bail!(reason);
        }
    };
    log.record(EventKind::SandboxReady {
        backend: "local".into(),
        isolation: sandbox.isolation(),
        base_commit: commit.clone(),
        duration_ms: started.elapsed().as_millis() as u64,
    })
    .await;

    let spec = AttemptSpec { prompt: args.prompt.clone(), workdir };
    let agent_config = config.agent_config();
    // Ctrl-C cancels the attempt: dropping its future kills the running command's sandbox (its
    // whole pid namespace), and the layer is still removed below, so nothing is left behind.
    let interrupted = tokio::select! {
        result = run_attempt(&spec, &sandbox, &model, &agent_config, &mut log) => Ok(result),
        _ = tokio::signal::ctrl_c() => Err(()),
    };
    if interrupted.is_err() {
        log.record(EventKind::StateChanged {
            state: AttemptState::Cancelled,
            reason: Some("interrupted by the user (Ctrl-C)".into()),
        })
        .await;
    }
    if !args.keep
        && let Err(e) = sandbox.destroy().await
    {
        eprintln!("warning: could not remove the attempt's sandbox layer: {e}");
    }
    let Ok(result) = interrupted else {
        return Ok(130);
    };

    let patch = result.diff.as_ref().map(|d| d.patch.clone()).unwrap_or_default();
    if let Some(path) = &args.output_patch {
        std::fs::write(path, &patch)
            .with_context(|| format!("could not write the patch to {}", path.display()))?;
    }
    let succeeded = result.outcome.state == AttemptState::Succeeded;
    if json {
        let summary = serde_json::json!({
            "type": "result",
            "attempt": attempt.to_string(),
            "state": result.outcome.state,
            "reason": result.outcome.reason,
            "report": result.report,
            "patch": patch,
            "usage": result.usage,
            "cost_usd": result.cost_usd,
            "turns": result.turns,
        });
        println!("{summary}");
    } else {
        let mut out = std::io::stdout().lock();
        if let Some(report) = &result.report {
            writeln!(out, "\n{}", report.to_markdown())?;
        }
        if !patch.is_empty() {
            writeln!(out, "{patch}")?;
        }
        let u = result.usage;
        let cost = result.cost_usd.map(|c| format!(" · cost ${c:.4}")).unwrap_or_default();
        eprintln!(
            "{} after {} turn(s) · tokens: {} in ({} cached), {} out{cost}",
            if succeeded { "✓ succeeded" } else { "✗ did not succeed" },
            result.turns,
            u.input,
            u.cached_input,
            u.output,
        );
        if !succeeded {
            eprintln!("reason: {}", result.outcome.reason);
        }
    }

    if args.apply && succeeded && !patch.is_empty() {
        repo.apply(&patch, false).await.context(
            "the diff does not apply to your working tree; it is unchanged (use --output-patch to keep the patch)",
        )?;
        eprintln!("applied the diff to {}", repo.root().display());
    }
    Ok(if succeeded { 0 } else { 1 })
}
