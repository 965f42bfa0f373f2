//! `errand exec`: one attempt on the current repository, no server. Prints the work log as it
//! happens, then the report and the diff. The attempt itself runs as a worker's does
//! (`errand_server::run_one_attempt`); this file parses, prints and applies. The user's repository is never modified unless
//! `--apply` is given.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use errand_agent::{EventSink, MemoryLog, NoMessages};
use errand_protocol::{AttemptId, AttemptState, EventKind};
use errand_sandbox::{EnvironmentSpec, LocalSandboxConfig};
use errand_server::{
    AttemptEnd, AttemptPlan, AttemptResources, DEFAULT_SNAPSHOT_CACHE_BYTES, Stop, run_one_attempt,
};
use errand_store::TaskMode;

use crate::config::Config;

mod ci;
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
    /// An environment file (TOML: setup_script, maintenance_script, [env], [secrets], ...; see
    /// docs/configuration.md), or the name of one stored with `errand env create`. Setup runs
    /// once per commit, with network and the secrets; the agent then starts from its snapshot.
    #[arg(long = "env", value_name = "FILE.toml|NAME")]
    pub environment: Option<PathBuf>,
    /// For CI: write errand.patch, report.md, report.json, result.json and log.jsonl into DIR
    /// (and the report to GITHUB_STEP_SUMMARY when set), and exit 3 when the attempt succeeded
    /// but a check it ran failed (see docs/ci.md).
    #[arg(long, value_name = "DIR")]
    pub ci: Option<PathBuf>,
}

/// Exit statuses: 0 succeeded, 1 the attempt failed or timed out, 2 Errand could not start it;
/// with `--ci`, 3 when it succeeded but a check it ran failed.
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

    let (environment, stored_env) =
        crate::env::for_exec(args.environment.as_deref(), &config).await?;
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
    let limits = config.sandbox.limits();
    let agent_config = config.agent_config();
    let plan = AttemptPlan {
        attempt,
        repository: repo.root(),
        commit: &commit,
        prompt: &args.prompt,
        workdir: &workdir,
        mode: TaskMode::Code,
        environment: environment.as_ref(),
        keep_sandbox: args.keep,
        followup: None,
    };
    let resources = AttemptResources {
        sandbox: &sandbox_config,
        limits: &limits,
        model: &model,
        agent: &agent_config,
        snapshot_cache_bytes: DEFAULT_SNAPSHOT_CACHE_BYTES,
    };
    // Ctrl-C cancels the attempt: the running command's sandbox (its whole pid namespace) is
    // killed and the layer is still removed, so nothing is left behind.
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No handler, no Ctrl-C to wait for: the default action still ends the process.
            std::future::pending::<()>().await;
        }
        Stop::Cancel("interrupted by the user (Ctrl-C)".into())
    };
    let run = run_one_attempt(plan, resources, &mut log, &NoMessages, ctrl_c).await;
    crate::env::save_setup_logs(stored_env.as_ref(), &run.setup_events).await;
    let result = match run.end {
        AttemptEnd::Ran(result) => result,
        AttemptEnd::SetupFailed(reason) => {
            if let Some(dir) = &args.ci {
                ci::CiOutcome {
                    attempt: attempt.to_string(),
                    outcome: errand_protocol::AttemptOutcome {
                        state: AttemptState::Failed,
                        reason: reason.clone(),
                    },
                    report: None,
                    patch: "",
                    events: log.events(),
                    usage: None,
                    turns: None,
                }
                .write(dir)?;
            }
            if json {
                let summary = serde_json::json!({
                    "type": "result",
                    "attempt": attempt.to_string(),
                    "state": AttemptState::Failed,
                    "reason": reason,
                });
                println!("{summary}");
            } else {
                eprintln!("✗ {reason}");
            }
            return Ok(1);
        }
        AttemptEnd::NotStarted(reason) => anyhow::bail!(reason),
        AttemptEnd::Cancelled(_) | AttemptEnd::Stopped(_) => return Ok(130),
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
    if let Some(dir) = &args.ci {
        let status = ci::CiOutcome {
            attempt: attempt.to_string(),
            outcome: result.outcome.clone(),
            report: result.report.as_ref(),
            patch: &patch,
            events: log.events(),
            usage: Some(result.usage),
            turns: Some(result.turns),
        }
        .write(dir)?;
        eprintln!("wrote the patch, the report and the log to {}", dir.display());
        return Ok(status);
    }
    Ok(if succeeded { 0 } else { 1 })
}

/// Reads an environment file. `[secrets]` values are text, or `{ env = "NAME" }` to take the
/// value from this process's environment, so secrets need not be written into files.
pub fn load_environment(path: &Path) -> anyhow::Result<EnvironmentSpec> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the environment file {}", path.display()))?;
    parse_environment(&text, &|name| std::env::var(name).ok())
        .with_context(|| format!("in the environment file {}", path.display()))
}

fn parse_environment(
    text: &str,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<EnvironmentSpec> {
    crate::env::spec_from_toml("file", text, host_env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_file_or_the_host_environment() {
        let text = r#"
setup_script = "npm ci"
snapshot_ttl = "6h"
[env]
NODE_ENV = "test"
[secrets]
NPM_TOKEN = { env = "HOST_NPM_TOKEN" }
PLAIN = "inline-value"
"#;
        let host = |name: &str| (name == "HOST_NPM_TOKEN").then(|| "from-host".to_string());
        let spec = parse_environment(text, &host).unwrap();
        assert_eq!(spec.secrets["NPM_TOKEN"], "from-host");
        assert_eq!(spec.secrets["PLAIN"], "inline-value");
        assert_eq!(spec.env["NODE_ENV"], "test");
        assert_eq!(spec.snapshot_ttl.as_secs(), 6 * 3600);

        let missing = parse_environment(text, &|_| None).unwrap_err();
        assert!(
            format!("{missing:#}").contains(
                "secrets.NPM_TOKEN is read from the variable HOST_NPM_TOKEN, which is not set"
            ),
            "{missing:#}"
        );
        let unknown = parse_environment("setup_scrpit = \"x\"", &|_| None).unwrap_err();
        assert!(format!("{unknown:#}").contains("setup_scrpit"), "{unknown:#}");
        let bad = parse_environment("[secrets]\nT = { file = \"x\" }", &|_| None).unwrap_err();
        assert!(format!("{bad:#}").contains("secrets.T"), "{bad:#}");
    }

    #[test]
    fn agent_network_is_a_table_of_allowed_domains_checked_at_load() {
        let none = |_: &str| None;
        let spec = parse_environment(
            "[agent_network]\nallow = [\"pypi.org\", \"*.pythonhosted.org\"]\nread_only = true\n",
            &none,
        )
        .unwrap();
        let policy = spec.egress_policy().unwrap().unwrap();
        assert_eq!(policy.allow.len(), 2);
        assert_eq!(policy.methods, errand_sandbox::egress::Methods::ReadOnly);
        assert!(!policy.allow_private);
        let inline = "agent_network = { allow = [\"127.0.0.1:8080\"], allow_private = true }";
        assert!(parse_environment(inline, &none).unwrap().egress_policy().unwrap().is_some());
        for text in ["", "agent_network = \"none\""] {
            assert!(parse_environment(text, &none).unwrap().egress_policy().unwrap().is_none());
        }
        for (text, needle) in [
            ("[agent_network]\nallow = [\"pypi.org/simple\"]", "agent_network.allow"),
            ("[agent_network]\nallow = [\"pypi.org/simple\"]", "write the name alone"),
            ("[agent_network]\nallow = []", "lists no domain"),
            ("[agent_network]\nallow = [\"a.org\"]\nmethods = \"all\"", "methods"),
            ("agent_network = \"open\"", "`open` is not a network policy"),
        ] {
            let error = parse_environment(text, &none).unwrap_err();
            assert!(format!("{error:#}").contains(needle), "{text}: {error:#}");
        }
    }
}
