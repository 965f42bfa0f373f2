//! The agent's computer: the `Sandbox` trait every backend implements, and the local backend
//! (bubblewrap + overlayfs + namespaces).
//!
//! Invariants: this crate knows nothing of models or tasks. The host never follows a path inside
//! the workspace: file reads and patches run *inside* the sandbox (through the `errand` helper
//! binary, bind-mounted read-only), and the diff is computed from the upper layer with `lstat`
//! semantics, never following a symlink the agent made. Nothing is ever left mounted on the
//! host: each command mounts its overlay in a mount namespace of its own.
//!
//! - `sandbox.rs`: the trait and its request/outcome types.
//! - `local.rs`: [`LocalSandbox`], the local backend; `lower.rs` its shared checkouts,
//!   `layer.rs` an attempt's upper layer, `image.rs` the `host` base image, `exec.rs` one
//!   command in bwrap, `paths.rs` the agent's paths checked lexically.
//! - `environment.rs`: [`EnvironmentSpec`], an environment's configuration and its hash;
//!   `environment/document.rs` its stored JSON form ([`stored_document`], [`resolve_document`],
//!   [`redacted_document`]), shared by the CLI, the HTTP API and the workers;
//!   `setup.rs` preparing one (setup or maintenance scripts, with network and secrets);
//!   `snapshot.rs` the snapshot cache, leases and GC; `redact.rs` secrets out of output.
//! - `limits.rs`: [`Limits`] and the rlimit fallback; `cgroup.rs` an attempt's cgroups;
//!   `seccomp.rs` the system call filter every command runs under.
//! - [`egress`]: the egress proxy, the agent phase's only way out when an environment allows
//!   domains ([`AgentNetwork`], [`LocalSandbox::start_egress`]); its connections come out of
//!   [`Sandbox::drain_events`] as `egress_connection` events.
//! - `interactive.rs`: [`LocalSandbox::create_for_shell`], a sandbox with the setup phase's
//!   view of an environment, and [`LocalSandbox::interactive`], a command in it on a pty of its
//!   own; [`terminal`] the user's terminal in raw mode, the pty and the relay between them.
//! - [`bench`]: start-up timings.

pub mod bench;
mod cgroup;
pub mod egress;
mod environment;
mod exec;
mod hook;
mod image;
mod interactive;
mod layer;
mod limits;
mod local;
mod lower;
mod paths;
mod redact;
mod sandbox;
mod seccomp;
mod setup;
mod snapshot;
pub mod terminal;

pub use environment::{
    AgentNetwork, DocumentError, EnvironmentMode, EnvironmentSpec, InvalidEnvironment,
    MAX_DOCUMENT_BYTES, MIN_SECRET_LEN, SECRET_SHOWN_AS, is_environment_name, redacted_document,
    resolve_document, stored_document,
};
pub use interactive::{InteractiveRequest, ShellOptions, ShellSandbox};
pub use limits::{LimitHit, Limits};
pub use local::{DEFAULT_SANDBOX_UID, LocalSandbox, LocalSandboxConfig};
pub use redact::Redactor;
pub use sandbox::{ExecOutcome, ExecRequest, PatchOutcome, Sandbox, SandboxError, WorkspaceDiff};
pub use setup::{PrepareError, PrepareOptions, ScriptPhase, SetupEvent, SetupFailed, SnapshotRef};
pub use snapshot::{GcReport, SnapshotLease, gc_snapshots};
