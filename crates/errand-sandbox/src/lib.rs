//! The agent's computer: the `Sandbox` trait every backend implements, and the local backend
//! (bubblewrap + overlayfs + namespaces).
//!
//! Invariants: this crate knows nothing of models or tasks. The host never follows a path inside
//! the workspace: file reads and patches run *inside* the sandbox (through the `errand` helper
//! binary, bind-mounted read-only), and the diff is computed from the upper layer with `lstat`
//! semantics, never following a symlink the agent made.

mod sandbox;

pub use sandbox::{ExecOutcome, ExecRequest, PatchOutcome, Sandbox, SandboxError, WorkspaceDiff};
