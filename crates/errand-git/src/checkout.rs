//! Private checkouts of a repository at one commit (the lower layer of a sandbox).

use std::path::Path;

use crate::command::{Git, GitError};
use crate::mirror::Mirror;

/// Clones `source` into `dest` (which must not exist yet) with its work tree at `commit`, detached.
///
/// `--no-hardlinks`: a local clone would otherwise hard-link the object files, sharing inodes
/// with the user's repository, and callers change the checkout's ownership afterwards.
/// The objects are copied whole, so any commit of `source`, reachable or not, can be checked out.
pub async fn clone_at_commit(source: &Path, commit: &str, dest: &Path) -> Result<(), GitError> {
    clone(source, "--no-hardlinks", commit, dest).await
}

/// Clones `mirror` into `dest` (which must not exist yet) with its work tree at `commit`,
/// detached, without copying a single object: the checkout borrows the mirror's objects through
/// `.git/objects/info/alternates`, which holds the mirror's absolute `objects` path. Only
/// objects the checkout itself creates (an agent's commits) are stored in it.
///
/// What this asks of whoever reads the checkout later (the sandbox, host-side diffs):
/// - the mirror's `objects` directory must be visible at the same absolute path wherever git
///   reads the checkout (inside a sandbox: a read-only bind mount of the mirror, or of the
///   mirrors directory, at its host path) and readable by the uid git runs as there;
/// - the mirror must keep every object a checkout uses: never `git gc`/`prune` a mirror while
///   checkouts of it exist (fetches never delete objects, see [`Mirror`]);
/// - the alternates file belongs to the checkout, so an agent that can write it can point it
///   anywhere: host-side git on an agent's checkout should not trust it (restore it, or give
///   git the mirror's objects through `GIT_ALTERNATE_OBJECT_DIRECTORIES`).
///
/// The checkout's `origin` is the mirror's path; no URL or credential of the remote reaches it.
pub async fn clone_from_mirror(mirror: &Mirror, commit: &str, dest: &Path) -> Result<(), GitError> {
    clone(mirror.path(), "--shared", commit, dest).await
}

/// `git clone <how>` of a local repository, then a detached checkout of `commit`.
async fn clone(source: &Path, how: &str, commit: &str, dest: &Path) -> Result<(), GitError> {
    let parent = dest.parent().unwrap_or(Path::new("/"));
    Git::hardened(parent)
        .args(["clone", "--quiet", how, "--no-checkout"])
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

/// Clones `source`, a mirror Errand owns, into `dest` at `commit`, its objects hard-linked
/// rather than copied (the same file system; git copies when it cannot link). The linked object
/// files are shared with the mirror, so callers must not change them (nor their owner): git
/// never rewrites an object file, and they are read-only to everyone.
pub async fn clone_linked_at_commit(
    source: &Path,
    commit: &str,
    dest: &Path,
) -> Result<(), GitError> {
    let parent = dest.parent().unwrap_or(Path::new("/"));
    Git::hardened(parent)
        .args(["clone", "--quiet", "--local", "--no-checkout", "--template="])
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
