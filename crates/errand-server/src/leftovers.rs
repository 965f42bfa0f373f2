//! What a dead attempt leaves on this machine, and its removal. The local backend knows its own
//! layout ([`LocalSandbox::leftovers`], [`LocalSandbox::remove_leftover`]); this adds the
//! worker's view: attempt ids, and failures logged rather than fatal (the next start tries
//! again).

use errand_protocol::AttemptId;
use errand_sandbox::{LocalSandbox, LocalSandboxConfig};

/// Removes an attempt's sandbox directory if it exists.
pub(crate) async fn remove_attempt_dir(config: &LocalSandboxConfig, attempt: AttemptId) {
    match LocalSandbox::remove_leftover(config, &attempt.to_string()).await {
        Ok(true) => tracing::info!(attempt_id = %attempt, "removed a leftover attempt directory"),
        Ok(false) => {}
        Err(e) => tracing::warn!(attempt_id = %attempt, "cannot remove the leftover: {e}"),
    }
}

/// The attempts that have a sandbox directory on this machine (names that are not attempt ids,
/// such as an `errand env shell`'s, are skipped; the worker decides about the rest).
pub(crate) async fn local_attempts(config: &LocalSandboxConfig) -> Vec<AttemptId> {
    match LocalSandbox::leftovers(config).await {
        Ok(names) => names.iter().filter_map(|name| name.parse().ok()).collect(),
        Err(e) => {
            tracing::warn!("cannot list the attempts' directories: {e}");
            Vec::new()
        }
    }
}
