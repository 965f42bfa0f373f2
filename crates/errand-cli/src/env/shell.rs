//! `errand env shell NAME|FILE`: an interactive shell in a fresh sandbox of an environment, for
//! debugging its setup script. It is the setup phase's view (the host's network, the variables
//! and the secrets) over the environment's cached snapshot for HEAD, if one exists, else over
//! the bare checkout; with `--setup` the setup script first runs in the shell's own sandbox.
//! Nothing is kept: the sandbox, what the shell wrote and its cgroups go when the shell exits
//! or Errand is told to stop (SIGHUP, SIGTERM, SIGINT); no snapshot is built or changed.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use errand_protocol::AttemptId;
use errand_sandbox::terminal::{RawMode, WindowSize};
use errand_sandbox::{
    EnvironmentSpec, ExecRequest, InteractiveRequest, LocalSandbox, LocalSandboxConfig, Redactor,
    Sandbox, ShellOptions,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;

/// The shell: bash as a login shell if the image has it, else sh.
const SHELL: &str = "command -v bash >/dev/null 2>&1 && exec bash -l; exec sh -l";
/// The size a shell gets when Errand's own stdin is not a terminal.
const DEFAULT_SIZE: WindowSize = WindowSize { rows: 24, cols: 80 };

#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// A stored environment's name, or an environment file.
    #[arg(value_name = "NAME|FILE.toml")]
    pub environment: PathBuf,
    /// Run the environment's setup script in this shell's sandbox first (over the bare
    /// checkout, its output shown), then start the shell in what it left, even if it failed.
    #[arg(long)]
    pub setup: bool,
}

/// Exit status: the shell's (128 + the signal if one killed it; 128 + SIGHUP/SIGTERM/SIGINT if
/// Errand was told to stop), or 2 if Errand could not start it.
pub async fn run(args: ShellArgs, config: &Config) -> anyhow::Result<i32> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = errand_git::Repo::discover(&cwd)
        .await
        .context("`errand env shell` runs inside a git repository (its HEAD is checked out)")?;
    let commit = repo.head_commit().await?;
    let (spec, _stored) = crate::env::for_exec(Some(&args.environment), config).await?;
    let Some(spec) = spec else { anyhow::bail!("no environment given") };
    let sandbox_config = LocalSandboxConfig {
        data_dir: config.data_dir(),
        helper: std::env::current_exe()
            .context("cannot find the errand binary for the sandbox helper")?,
        bwrap: PathBuf::from("bwrap"),
        sandbox_uid: config.sandbox.uid,
    };
    let options = ShellOptions {
        limits: config.sandbox.limits(),
        now: SystemTime::now(),
        use_snapshot: !args.setup,
    };
    let attempt = format!("shell-{}", AttemptId::new());
    let shell = LocalSandbox::create_for_shell(
        &sandbox_config,
        repo.root(),
        &commit,
        &spec,
        &attempt,
        &options,
    )
    .await
    .context("could not prepare the shell's sandbox")?;
    let sandbox = shell.sandbox;
    // From here on the sandbox exists: every way out goes through `destroy`.
    let ran = async {
        if args.setup {
            run_setup_script(&sandbox, &spec).await?;
        }
        let name = args.environment.display().to_string();
        eprint!("{}", banner(&name, &commit, shell.snapshot.as_deref(), &spec, args.setup));
        let workdir = cwd
            .strip_prefix(repo.root())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut env = Vec::new();
        if let Ok(term) = std::env::var("TERM") {
            env.push(("TERM".to_string(), term));
        }
        let request = InteractiveRequest {
            command: ["sh", "-c", SHELL].map(String::from).to_vec(),
            workdir,
            env,
        };
        let stdin = std::io::stdin();
        let size = WindowSize::of(stdin.as_fd()).unwrap_or(DEFAULT_SIZE);
        // Restored when dropped: on return, on an error and while a panic unwinds.
        let raw = RawMode::enable(stdin.as_fd()).context("cannot put the terminal in raw mode")?;
        let stopped = stop_signal()?;
        let outcome = tokio::select! {
            outcome = sandbox.interactive(request, stdin.as_fd(), size) => Ok(outcome?),
            signal = stopped => Err(signal),
        };
        drop(raw);
        Ok::<_, anyhow::Error>(match outcome {
            Ok(outcome) => match (outcome.exit_code, outcome.signal) {
                (Some(code), _) => code,
                (None, Some(signal)) => 128 + signal,
                (None, None) => 1,
            },
            Err(signal) => {
                eprintln!("errand: stopped by signal {signal}; removing the shell's sandbox");
                128 + signal
            }
        })
    }
    .await;
    let destroyed = sandbox.destroy().await;
    let code = ran?;
    destroyed.context("could not remove the shell's sandbox")?;
    Ok(code)
}

/// Resolves with the number of the first SIGHUP (the terminal went away), SIGTERM or SIGINT.
/// In raw mode the keyboard sends no SIGINT: Ctrl-C goes to the shell as a byte.
fn stop_signal() -> anyhow::Result<impl Future<Output = i32>> {
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch for SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = hangup.recv() => libc::SIGHUP,
            _ = terminate.recv() => libc::SIGTERM,
            _ = interrupt.recv() => libc::SIGINT,
        }
    })
}

/// `--setup`: the setup script, as a setup run would start it, its output (redacted) on stderr.
async fn run_setup_script(sandbox: &LocalSandbox, spec: &EnvironmentSpec) -> anyhow::Result<()> {
    let Some(script) = &spec.setup_script else {
        eprintln!("--setup: this environment has no setup script");
        return Ok(());
    };
    eprintln!("--setup: running the setup script in the shell's sandbox (nothing is cached)");
    let request = ExecRequest {
        command: ["bash", "-e", "-c", script, "setup"].map(String::from).to_vec(),
        workdir: String::new(),
        timeout: spec.setup_timeout,
        env: Vec::new(),
        stdin: None,
    };
    let mut redactor = Redactor::new(&spec.secrets);
    let show = |bytes: Vec<u8>| {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&bytes);
        let _ = err.flush();
    };
    let outcome = sandbox.exec(request, &mut |chunk| show(redactor.push(chunk))).await?;
    show(redactor.finish());
    let status = match (outcome.exit_code, outcome.timed_out) {
        (_, true) => "timed out".to_string(),
        (Some(code), _) => format!("exited {code}"),
        (None, _) => "was killed".to_string(),
    };
    eprintln!("--setup: the setup script {status}; the shell starts in what it left");
    Ok(())
}

/// What the shell is, printed before it starts.
fn banner(
    name: &str,
    commit: &str,
    snapshot: Option<&str>,
    spec: &EnvironmentSpec,
    ran_setup: bool,
) -> String {
    let short = &commit[..12.min(commit.len())];
    let over = match (snapshot, ran_setup) {
        (_, true) => "the bare checkout, after the setup script above".to_string(),
        (Some(snapshot), false) => format!("the cached snapshot {snapshot}"),
        (None, false) if spec.needs_snapshot() => format!(
            "the bare checkout: no snapshot is cached for this commit; build it with \
             `errand exec --env {name} …`, or start with `errand env shell --setup {name}` \
             to run the setup script here first"
        ),
        (None, false) => "the bare checkout (this environment has no setup)".to_string(),
    };
    let secrets = if spec.secrets.is_empty() {
        "none".to_string()
    } else {
        let names: Vec<&str> = spec.secrets.keys().map(String::as_str).collect();
        format!("present as variables: {}", names.join(", "))
    };
    format!(
        "errand env shell: `{name}` at {short}, the setup phase's view (for debugging setup scripts)\n\
         \x20 over:    {over}\n\
         \x20 network: on (the host's, as setup has)\n\
         \x20 secrets: {secrets}\n\
         \x20 kept:    nothing; the sandbox, its files and its cgroups go when the shell exits\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_says_what_the_shell_stands_on() {
        let mut spec =
            EnvironmentSpec { setup_script: Some("true".into()), ..EnvironmentSpec::default() };
        spec.secrets.insert("TOKEN".into(), "s3cr3t-value".into());
        let cached = banner("web", &"a".repeat(40), Some("0123-abcd"), &spec, false);
        assert!(cached.contains("snapshot 0123-abcd"), "{cached}");
        assert!(cached.contains("network: on"), "{cached}");
        assert!(cached.contains("present as variables: TOKEN"), "{cached}");
        assert!(!cached.contains("s3cr3t"), "never the value: {cached}");
        let bare = banner("web", "abc", None, &spec, false);
        assert!(bare.contains("errand exec --env web"), "{bare}");
        assert!(bare.contains("--setup web"), "{bare}");
        spec.setup_script = None;
        spec.secrets.clear();
        let plain = banner("web", "abc", None, &spec, false);
        assert!(plain.contains("no setup") && plain.contains("secrets: none"), "{plain}");
    }
}
