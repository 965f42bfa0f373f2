//! `errand exec`: one attempt on the current repository, no server. Prints the work log as it
//! happens, then the report and the diff. The user's repository is never modified unless
//! `--apply` is given.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::Context;
use errand_agent::{AttemptSpec, EventSink, MemoryLog, run_attempt};
use errand_protocol::{AttemptId, AttemptState, EventKind};
use errand_sandbox::{
    EnvironmentSpec, LocalSandbox, LocalSandboxConfig, PrepareError, PrepareOptions, Sandbox,
    SetupEvent, SnapshotRef,
};

/// The snapshot cache is trimmed to this after each `errand exec` (expired snapshots always go).
const SNAPSHOT_CACHE_BYTES: u64 = 20 << 30;

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
    /// An environment file (TOML: setup_script, maintenance_script, [env], [secrets], ...; see
    /// docs/configuration.md), or the name of one stored with `errand env create`. Setup runs
    /// once per commit, with network and the secrets; the agent then starts from its snapshot.
    #[arg(long = "env", value_name = "FILE.toml|NAME")]
    pub environment: Option<PathBuf>,
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
    let started = Instant::now();
    let limits = config.sandbox.limits();
    let attempt_name = attempt.to_string();
    let snapshot = match &environment {
        None => None,
        Some(spec) => {
            let options = PrepareOptions { limits: limits.clone(), now: SystemTime::now() };
            let prepared =
                prepare(&sandbox_config, repo.root(), &commit, spec, &options, &mut log).await;
            crate::env::save_setup_logs(stored_env.as_ref(), log.events()).await;
            match prepared {
                Ok(snapshot) => snapshot,
                Err(PrepareError::SetupFailed(failed)) => {
                    let reason = failed.to_string();
                    log.record(EventKind::StateChanged {
                        state: AttemptState::Failed,
                        reason: Some(reason.clone()),
                    })
                    .await;
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
                Err(e) => {
                    let reason = format!("could not prepare the environment: {e}");
                    log.record(EventKind::StateChanged {
                        state: AttemptState::Failed,
                        reason: Some(reason.clone()),
                    })
                    .await;
                    anyhow::bail!(reason);
                }
            }
        }
    };
    let created = match snapshot {
        Some(snapshot) => {
            LocalSandbox::create_on_snapshot(&sandbox_config, snapshot, &attempt_name, &limits)
                .await
        }
        None => LocalSandbox::create_limited(
            &sandbox_config,
            repo.root(),
            &commit,
            &attempt_name,
            &limits,
        )
        .await
        .map(|mut sandbox| {
            // An environment without scripts has no snapshot, but its variables still apply.
            if let Some(spec) = &environment {
                sandbox.set_environment_variables(spec.env.clone());
            }
            sandbox
        }),
    };
    let egress = environment.as_ref().map(EnvironmentSpec::egress_policy).transpose()?.flatten();
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
    let sandbox = match created {
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
    let mut sink = WithSandboxEvents { sandbox: &sandbox, log: &mut log };
    let interrupted = tokio::select! {
        result = run_attempt(&spec, &sandbox, &model, &agent_config, &mut sink) => Ok(result),
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
    if environment.is_some() {
        let trimmed = errand_sandbox::gc_snapshots(
            &sandbox_config.data_dir,
            SNAPSHOT_CACHE_BYTES,
            SystemTime::now(),
        )
        .await;
        if let Err(e) = trimmed {
            tracing::warn!("could not trim the snapshot cache: {e}");
        }
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

/// The attempt's event sink with the sandbox's own events (connections through the egress
/// proxy) recorded in order: before each event the agent records, whatever the sandbox has to
/// report since the last one goes first. A command's connections are ready when its `exec`
/// returns, so they land before its `command_finished`; the worker's sink will do the same
/// (see `Sandbox::drain_events`).
struct WithSandboxEvents<'a> {
    sandbox: &'a LocalSandbox,
    log: &'a mut MemoryLog,
}

// `EventSink` is an `async_trait` trait; this is what its macro would write, spelled out so this
// crate needs no dependency for one impl.
impl EventSink for WithSandboxEvents<'_> {
    fn record<'sink, 'future>(
        &'sink mut self,
        kind: EventKind,
    ) -> std::pin::Pin<Box<dyn Future<Output = errand_protocol::Event> + Send + 'future>>
    where
        'sink: 'future,
        Self: 'future,
    {
        Box::pin(async move {
            for pending in self.sandbox.drain_events() {
                self.log.record(pending).await;
            }
            self.log.record(kind).await
        })
    }
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
    let mut table: toml::Table = toml::from_str(text)?;
    if let Some(secrets) = table.get_mut("secrets").and_then(toml::Value::as_table_mut) {
        for (name, value) in secrets.iter_mut() {
            let Some(reference) = value.as_table() else { continue };
            let variable = match (
                reference.get("env").and_then(toml::Value::as_str),
                reference.len(),
            ) {
                (Some(variable), 1) => variable.to_string(),
                _ => anyhow::bail!(
                    "secrets.{name}: write a value, or {{ env = \"VARIABLE\" }} to read it from the environment"
                ),
            };
            let resolved = host_env(&variable).with_context(|| {
                format!("secrets.{name}: the environment variable {variable} is not set")
            })?;
            *value = toml::Value::String(resolved);
        }
    }
    let spec: EnvironmentSpec = table.try_into()?;
    spec.validate()?;
    Ok(spec)
}

/// Prepares the environment, recording the setup log as events as it arrives (the sandbox calls
/// back synchronously; the log is async, so the events travel through a channel).
async fn prepare(
    config: &LocalSandboxConfig,
    repo: &Path,
    commit: &str,
    spec: &EnvironmentSpec,
    options: &PrepareOptions,
    log: &mut MemoryLog,
) -> Result<Option<SnapshotRef>, PrepareError> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<EventKind>();
    let preparing = async move {
        let mut lines = SetupLines::default();
        let mut forward = |event: SetupEvent<'_>| {
            for kind in lines.events(event) {
                let _ = sender.send(kind);
            }
        };
        let result =
            LocalSandbox::prepare_environment(config, repo, commit, spec, options, &mut forward)
                .await;
        if let Ok(Some(snapshot)) = &result {
            let _ = sender.send(EventKind::SnapshotReady {
                snapshot: snapshot.id().to_string(),
                reused: snapshot.reused(),
                maintenance_ran: snapshot.maintenance_ran(),
            });
        }
        result
    };
    let recording = async {
        while let Some(kind) = receiver.recv().await {
            log.record(kind).await;
        }
    };
    let (result, ()) = tokio::join!(preparing, recording);
    result
}

/// Turns the sandbox's setup callbacks into events whose output chunks end on line boundaries.
#[derive(Default)]
struct SetupLines {
    pending: Vec<u8>,
}

impl SetupLines {
    fn events(&mut self, event: SetupEvent<'_>) -> Vec<EventKind> {
        match event {
            SetupEvent::Started { phase, snapshot } => vec![EventKind::SetupStarted {
                phase: phase.name().into(),
                snapshot: snapshot.into(),
            }],
            SetupEvent::Output { phase, bytes } => {
                self.pending.extend_from_slice(bytes);
                match self.pending.iter().rposition(|&b| b == b'\n') {
                    Some(end) => {
                        let lines: Vec<u8> = self.pending.drain(..=end).collect();
                        vec![EventKind::SetupOutput {
                            phase: phase.name().into(),
                            text: String::from_utf8_lossy(&lines).into_owned(),
                        }]
                    }
                    None => Vec::new(),
                }
            }
            SetupEvent::Finished { phase, exit_code, duration } => {
                let mut events = Vec::new();
                if !self.pending.is_empty() {
                    let rest = std::mem::take(&mut self.pending);
                    events.push(EventKind::SetupOutput {
                        phase: phase.name().into(),
                        text: String::from_utf8_lossy(&rest).into_owned(),
                    });
                }
                events.push(EventKind::SetupFinished {
                    phase: phase.name().into(),
                    exit_code,
                    duration_ms: duration.as_millis() as u64,
                });
                events
            }
        }
    }
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
        assert!(format!("{missing:#}").contains("HOST_NPM_TOKEN is not set"), "{missing:#}");
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

    #[test]
    fn setup_output_events_end_on_line_boundaries() {
        use errand_sandbox::ScriptPhase;
        let mut lines = SetupLines::default();
        let phase = ScriptPhase::Setup;
        assert!(lines.events(SetupEvent::Output { phase, bytes: b"par" }).is_empty());
        let events = lines.events(SetupEvent::Output { phase, bytes: b"tial\nnext" });
        assert_eq!(
            events,
            [EventKind::SetupOutput { phase: "setup".into(), text: "partial\n".into() }]
        );
        let events = lines.events(SetupEvent::Finished {
            phase,
            exit_code: Some(0),
            duration: std::time::Duration::from_millis(5),
        });
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0],
            EventKind::SetupOutput { phase: "setup".into(), text: "next".into() }
        );
    }
}
