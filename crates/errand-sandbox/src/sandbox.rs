//! The `Sandbox` trait: what the agent may do to its computer.

use std::time::Duration;

use errand_protocol::{EventKind, FileChange};

use crate::LimitHit;

/// Something went wrong with the sandbox itself (not with the command that ran in it).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    #[error("could not run the command in the sandbox: {0}")]
    Exec(String),
    #[error("working directory `{0}` does not exist in the sandbox")]
    NoSuchWorkdir(String),
    #[error("path `{0}` is outside the workspace")]
    OutsideWorkspace(String),
    #[error("could not compute the diff: {0}")]
    Diff(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// argv; run directly, not through a shell (the agent passes `["bash", "-lc", "…"]` for that).
    pub command: Vec<String>,
    /// Absolute path inside the sandbox, or relative to the workspace root.
    pub workdir: String,
    /// Wall clock for the whole process tree; on expiry everything it started is killed.
    pub timeout: Duration,
    /// Extra environment on top of the sandbox's clean one.
    pub env: Vec<(String, String)>,
    /// Bytes written to the command's stdin, which is then closed; `None` gives it /dev/null.
    pub stdin: Option<Vec<u8>>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// `None` when killed by a signal or by the timeout.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
    /// A resource limit of the attempt that bit while the command ran (an OOM kill, a refused
    /// fork), for the work log and the model. Attempts' commands share the limits, so with
    /// commands running at once it may name the other command's doing.
    pub limit_hit: Option<LimitHit>,
}

impl ExecOutcome {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// The result of applying a `*** Begin Patch` patch inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchOutcome {
    pub success: bool,
    /// What the patch engine said: the summary on success, the error (naming file and context
    /// line) on failure. This is what the model sees.
    pub output: String,
    pub changes: Vec<FileChange>,
}

/// The workspace's changes against the base commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceDiff {
    /// `git apply`-compatible patch (`git diff --binary` form), empty when nothing changed.
    pub patch: String,
    pub files: Vec<FileChange>,
}

/// The agent's computer. Every operation runs inside it; nothing follows workspace paths on the host.
#[async_trait::async_trait]
pub trait Sandbox: Send + Sync {
    /// Absolute path of the workspace (the repository checkout) inside the sandbox.
    fn workspace_dir(&self) -> &str;

    /// Human-readable facts about the isolation in force (for the `sandbox_ready` event),
    /// e.g. `["bubblewrap 0.8.0", "network: none", "capabilities: none", "uid 1000",
    /// "limits (cgroup v1): memory 4.0 GiB, pids 512, cpu 2 cores; wall clock per command"]`.
    fn isolation(&self) -> Vec<String>;

    /// Runs a command; its combined stdout and stderr are passed to `output` as they arrive.
    ///
    /// The `for<'chunk>` is spelled out on purpose: `async_trait` names every elided lifetime of
    /// an argument, including the one in `FnMut(&[u8])`, which would make the chunk outlive the
    /// call and leave an implementation no way to pass its own read buffer. Implementations
    /// must repeat the signature exactly.
    async fn exec(
        &self,
        request: ExecRequest,
        output: &mut (dyn for<'chunk> FnMut(&'chunk [u8]) + Send),
    ) -> Result<ExecOutcome, SandboxError>;

    /// Reads a file of the workspace (`path` relative to the workspace root). `Ok(None)` when it
    /// does not exist or is not a regular file.
    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SandboxError>;

    /// Applies a patch with paths relative to `workdir` (which is relative to the workspace root,
    /// or absolute inside the sandbox). Paths leaving the workspace are refused by the engine.
    async fn apply_patch(&self, patch: &str, workdir: &str) -> Result<PatchOutcome, SandboxError>;

    /// The workspace's changes against the base commit, ignoring `.git/` and git-ignored files.
    async fn diff(&self) -> Result<WorkspaceDiff, SandboxError>;

    /// Events the sandbox itself has to report since the last call, oldest first: today one
    /// `egress_connection` per connection through the attempt's egress proxy. The sandbox
    /// cannot write the work log and the agent must not know what they mean, so whoever records
    /// the attempt's events drains this before recording each one (`errand exec` wraps its
    /// sink so). A command's own events are ready when its `exec` returns. Never blocks.
    fn drain_events(&self) -> Vec<EventKind> {
        Vec::new()
    }
}
