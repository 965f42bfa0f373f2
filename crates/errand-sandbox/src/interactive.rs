//! Interactive sandboxes (`errand env shell`): a fresh sandbox with the setup phase's view of an
//! environment, and a command in it on a terminal of its own.
//!
//! The view is exactly what a setup or maintenance script sees (`setup.rs`): the host's network,
//! the environment's variables and secrets, `/usr/local` and `/home/agent` writable, over the
//! environment's cached snapshot for (configuration, commit) if one exists, else over the bare
//! checkout as a setup run starts. What the shell writes goes to a scratch layer the sandbox
//! owns: [`LocalSandbox::destroy`] removes it with the attempt's directory and cgroups, and no
//! snapshot is ever built, changed or published from it.
//!
//! The command runs through the same launch as every other (`exec::start`), its standard
//! streams on a fresh pty (`terminal.rs`) instead of pipes; behind `errand sandbox-terminal`
//! it takes the pty as its controlling terminal, so job control works although bwrap's
//! `--new-session` put it in a session without one.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use errand_git::Repo;

use crate::exec::{self, HELPER, Phase, StandardStreams, Started};
use crate::local::{LayerPlan, SandboxPlan, check_host};
use crate::paths::resolve_workdir;
use crate::terminal::{Pty, WindowSize};
use crate::{
    EnvironmentSpec, ExecOutcome, ExecRequest, Limits, LocalSandbox, LocalSandboxConfig,
    PrepareError, SandboxError,
};

/// What a shell's sandbox is made of.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    pub limits: Limits,
    /// The clock snapshots are judged fresh by.
    pub now: SystemTime,
    /// Stand on the environment's cached snapshot if one exists; `false`: the bare checkout,
    /// as the setup script finds it.
    pub use_snapshot: bool,
}

/// A sandbox for a shell, and which snapshot it stands on (`None`: the bare checkout).
#[derive(Debug)]
pub struct ShellSandbox {
    pub sandbox: LocalSandbox,
    pub snapshot: Option<String>,
}

/// A command to run on a terminal.
#[derive(Debug, Clone)]
pub struct InteractiveRequest {
    /// argv; it becomes the pty's session leader (see the module docs).
    pub command: Vec<String>,
    /// Absolute inside the sandbox, or relative to the workspace.
    pub workdir: String,
    /// On top of the sandbox's own (e.g. the user's `TERM`).
    pub env: Vec<(String, String)>,
}

impl LocalSandbox {
    /// A fresh sandbox with the setup phase's view of `spec` at `commit` of `repo` (see the
    /// module docs). It holds the snapshot's lease until destroyed, so GC leaves it alone.
    pub async fn create_for_shell(
        config: &LocalSandboxConfig,
        repo: &Path,
        commit: &str,
        spec: &EnvironmentSpec,
        attempt: &str,
        options: &ShellOptions,
    ) -> Result<ShellSandbox, PrepareError> {
        spec.validate()?;
        if spec.base_image != "host" {
            return Err(SandboxError::Setup(format!(
                "base image `{}` is not available to the local sandbox (it has `host`)",
                spec.base_image
            ))
            .into());
        }
        let host = check_host(config).await?;
        let repo = Repo::discover(repo).await.map_err(|e| SandboxError::Setup(e.to_string()))?;
        let commit =
            repo.resolve_commit(commit).await.map_err(|e| SandboxError::Setup(e.to_string()))?;
        let checkout =
            crate::lower::prepare(&config.data_dir, &repo, &commit, config.sandbox_uid).await?;
        let found = if options.use_snapshot && spec.needs_snapshot() {
            let (data_dir, hash, commit) =
                (config.data_dir.clone(), spec.config_hash(), commit.clone());
            let (ttl, now) = (spec.snapshot_ttl, options.now);
            blocking(move || crate::snapshot::find_blocking(&data_dir, &hash, &commit, ttl, now))
                .await?
        } else {
            None
        };
        let snapshot =
            found.as_ref().map(|_| crate::snapshot::snapshot_name(&spec.config_hash(), &commit));
        let layer =
            config.data_dir.join("layers").join(crate::snapshot::scratch_name("shell", attempt));
        let (create, uid, fresh) = (layer.clone(), config.sandbox_uid, found.is_none());
        // Like a setup run over nothing, or a maintenance run over the snapshot.
        blocking(move || crate::setup::create_layer_blocking(&create, uid, fresh)).await?;
        let below: Vec<PathBuf> = found.iter().map(|found| found.dir.clone()).collect();
        let plan = SandboxPlan {
            checkout,
            diff_base: found.as_ref().map_or_else(|| commit.clone(), |f| f.meta.tree.clone()),
            base: commit,
            layers: LayerPlan::Into { layer: layer.clone(), below },
            phase: Phase::Setup {
                secrets: spec.secrets.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            },
            env: spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            lease: found.map(|found| found.lease),
            owned_dirs: vec![layer.clone()],
        };
        match LocalSandbox::create_planned(config, host, plan, attempt, &options.limits).await {
            Ok(sandbox) => Ok(ShellSandbox { sandbox, snapshot }),
            Err(error) => {
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(layer)).await;
                Err(error.into())
            }
        }
    }

    /// Runs `request` on a new pty of `size` and relays it to and from this process's terminal
    /// (stdin, stdout) until it exits; the window size follows `input`'s on SIGWINCH. Put the
    /// terminal in raw mode first ([`crate::terminal::RawMode`]). No timeout: the user ends
    /// it; the attempt's limits still hold. Dropping the future kills the sandbox's processes.
    pub async fn interactive(
        &self,
        request: InteractiveRequest,
        input: BorrowedFd<'_>,
        size: WindowSize,
    ) -> Result<ExecOutcome, SandboxError> {
        let workdir = resolve_workdir(&request.workdir)?;
        let io = |context: &'static str| {
            move |source| SandboxError::Io { context: context.into(), source }
        };
        let pty = Pty::open(size, self.sandbox_uid()).map_err(io("cannot open a pty"))?;
        let mut command = vec![HELPER.to_string(), "sandbox-terminal".into(), "--".into()];
        command.extend(request.command);
        let exec_request = ExecRequest {
            command,
            workdir: String::new(),
            timeout: std::time::Duration::MAX,
            env: request.env,
            stdin: None,
        };
        let stream = |fd: BorrowedFd<'_>| {
            fd.try_clone_to_owned()
                .map(std::process::Stdio::from)
                .map_err(io("cannot share the pty"))
        };
        let stdio = StandardStreams {
            stdin: stream(pty.slave.as_fd())?,
            stdout: stream(pty.slave.as_fd())?,
            stderr: stream(pty.slave.as_fd())?,
        };
        let _sharing = self.layer_use.read().await;
        let launch = self.launch(false);
        let counters_before = launch.cgroup.map(|cgroup| cgroup.counters());
        let started = Instant::now();
        let Started { mut child, status } = exec::start(&launch, &exec_request, &workdir, stdio)?;
        // Ours must go: the master reads end of file (EIO) only once no slave is open.
        drop(pty.slave);
        let exit = crate::terminal::relay(pty.master, input, child.wait())
            .await
            .map_err(io("the terminal relay failed"))?
            .map_err(io("cannot wait for bwrap"))?;
        if exec::read_status_byte(&status) == Some(b'w') {
            return Err(SandboxError::NoSuchWorkdir(workdir));
        }
        Ok(exec::outcome(&launch, exit, counters_before, false, started))
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SandboxError> + Send + 'static,
) -> Result<T, SandboxError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SandboxError::Setup(format!("preparing the shell stopped: {e}")))?
}
