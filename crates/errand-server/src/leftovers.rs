//! What a dead attempt leaves on this machine, and its removal.
//!
//! An attempt's sandbox lives in `<data_dir>/attempts/<attempt id>` (the local backend's layout,
//! `errand-sandbox`'s `AttemptLayout`); its processes die with it (`--die-with-parent`, and its
//! cgroups kill what is left when dropped), and nothing of it is ever mounted on the host. So
//! what survives a killed worker is that directory, and removing it is the whole cleanup.

use std::path::PathBuf;

use errand_protocol::AttemptId;
use errand_sandbox::LocalSandboxConfig;

/// Where the local backend keeps an attempt's sandbox.
pub(crate) fn attempt_dir(config: &LocalSandboxConfig, attempt: AttemptId) -> PathBuf {
    config.data_dir.join("attempts").join(attempt.to_string())
}

/// Removes an attempt's sandbox directory if it exists (on a blocking thread: it can be a
/// large tree). Failures are logged: the next start tries again.
pub(crate) async fn remove_attempt_dir(config: &LocalSandboxConfig, attempt: AttemptId) {
    let dir = attempt_dir(config, attempt);
    let shown = dir.display().to_string();
    let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        other => other.map(|()| true),
    })
    .await;
    match removed {
        Ok(Ok(true)) => tracing::info!(attempt_id = %attempt, "removed the leftover {shown}"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!(attempt_id = %attempt, "cannot remove {shown}: {e}"),
        Err(e) => tracing::warn!(attempt_id = %attempt, "removing {shown} stopped: {e}"),
    }
}

/// The attempts that have a sandbox directory on this machine (names that are not attempt ids,
/// such as an `errand env shell`'s, are not ours and are skipped).
pub(crate) async fn local_attempts(config: &LocalSandboxConfig) -> Vec<AttemptId> {
    let dir = config.data_dir.join("attempts");
    let listed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    })
    .await;
    match listed {
        Ok(Ok(names)) => names.iter().filter_map(|name| name.parse().ok()).collect(),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Ok(Err(e)) => {
            tracing::warn!("cannot list the attempts' directories: {e}");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!("listing the attempts' directories stopped: {e}");
            Vec::new()
        }
    }
}
