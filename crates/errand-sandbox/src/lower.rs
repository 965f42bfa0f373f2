//! The lower layer: a checkout of the repository at the base commit, shared read-only by every
//! attempt on that commit and cached under `<data_dir>/checkouts/<commit>`.
//!
//! A commit id names the whole tree, so the commit alone is the cache key. A checkout is built
//! in a temporary directory and renamed into place when complete: the rename is atomic, so two
//! attempts preparing the same commit at once both end up using one finished checkout.
//! Its files belong to the sandbox uid, so the agent may change them (through the overlay).

use std::path::{Path, PathBuf};

use errand_git::Repo;

use crate::SandboxError;

/// Returns the checkout of `commit` (a full object id of `repo`), creating it if needed.
pub(crate) async fn prepare(
    data_dir: &Path,
    repo: &Repo,
    commit: &str,
    uid: u32,
) -> Result<PathBuf, SandboxError> {
    let checkouts = data_dir.join("checkouts");
    let finished = checkouts.join(commit);
    if tokio::fs::try_exists(&finished).await.unwrap_or(false) {
        return Ok(finished);
    }
    tokio::fs::create_dir_all(&checkouts).await.map_err(|source| SandboxError::Io {
        context: format!("cannot create {}", checkouts.display()),
        source,
    })?;
    let building =
        checkouts.join(format!(".building-{commit}-{}-{}", std::process::id(), unique_suffix()));
    let result = build(repo, commit, &building, uid).await;
    let result = match result {
        Ok(()) => tokio::fs::rename(&building, &finished)
            .await
            .or_else(|error| {
                // Another attempt finished the same checkout first: use theirs.
                if finished.is_dir() { Ok(()) } else { Err(error) }
            })
            .map_err(|source| SandboxError::Io {
                context: format!("cannot move the checkout to {}", finished.display()),
                source,
            }),
        Err(error) => Err(error),
    };
    if tokio::fs::try_exists(&building).await.unwrap_or(false) {
        let leftover = building.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(leftover)).await;
    }
    result.map(|()| finished)
}

async fn build(repo: &Repo, commit: &str, dest: &Path, uid: u32) -> Result<(), SandboxError> {
    let git_error = |e: errand_git::GitError| {
        SandboxError::Setup(format!("cannot check out {commit} of {}: {e}", repo.root().display()))
    };
    // A remote's mirror is Errand's own: its objects are linked, not copied, so a checkout of
    // a large repository costs its work tree only. A user's repository is copied, so nothing
    // of theirs shares an inode with a tree the sandbox owns.
    if repo.is_bare() {
        errand_git::clone_linked_at_commit(repo.root(), commit, dest).await.map_err(git_error)?;
    } else {
        errand_git::clone_at_commit(repo.root(), commit, dest).await.map_err(git_error)?;
    }
    chown_tree(dest, uid).await?;
    // The ownership change touched every file's ctime; refresh the index so git inside the
    // sandbox does not think everything changed, then hand the rewritten index over too.
    errand_git::refresh_index(dest).await.map_err(git_error)?;
    chown_tree(&dest.join(".git"), uid).await
}

/// Gives a tree to `uid` (a blocking walk on the blocking pool), except files linked from
/// elsewhere (a mirror's objects): they stay as they are, shared and read-only, while the
/// directories around them become the sandbox uid's, so git inside can still add objects of its
/// own. `lchown` and `lstat`: a symlink in the repository is changed itself, never what it
/// points to.
async fn chown_tree(root: &Path, uid: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let root = root.to_path_buf();
    let walk = move || -> std::io::Result<()> {
        let mut pending = vec![root];
        while let Some(path) = pending.pop() {
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_file() && meta.nlink() > 1 {
                continue;
            }
            std::os::unix::fs::lchown(&path, Some(uid), Some(uid))?;
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    pending.push(entry?.path());
                }
            }
        }
        Ok(())
    };
    tokio::task::spawn_blocking(walk)
        .await
        .map_err(|e| SandboxError::Setup(format!("the ownership change stopped: {e}")))?
        .map_err(|source| SandboxError::Io {
            context: format!("cannot give the checkout to uid {uid}"),
            source,
        })
}

/// Distinguishes concurrent builders within one process.
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
