//! Private checkouts of a repository at one commit (the lower layer of a sandbox).

use std::path::Path;

use crate::command::{Git, GitError};

/// Clones `source` into `dest` (which must not exist yet) with its work tree at `commit`, detached.
///
/// `--no-hardlinks`: a local clone would otherwise hard-link the object files, sharing inodes
/// with the user's repository, and callers change the checkout's ownership afterwards.
/// The objects are copied whole, so any commit of `source`, reachable or not, can be checked out.
pub async fn clone_at_commit(source: &Path, commit: &str, dest: &Path) -> Result<(), GitError> {
    let parent = dest.parent().unwrap_or(Path::new("/"));
    Git::hardened(parent)
        .args(["clone", "--quiet", "--no-hardlinks", "--no-checkout"])
        // No template: nothing (sample hooks, info/exclude) copied from the host's git install.
        .arg("--template=")
        .arg("--")
        .arg(source)
        .arg(dest)
        .run(None)
        .await?;
    Git::hardened(dest).args(["checkout", "--quiet", "--detach", commit, "--"]).run(None).await?;
    Ok(())
}

/// Refreshes the stat information in the checkout's index (after its files changed owner, say),
/// so `git status` inside a sandbox does not re-read every file.
pub async fn refresh_index(checkout: &Path) -> Result<(), GitError> {
    Git::hardened(checkout).args(["update-index", "-q", "--refresh"]).output(None).await?;
    Ok(())
}
