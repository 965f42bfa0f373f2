//! Which new files of a work tree git ignores, judged by the `.gitignore` files of the tree as it
//! will be (the base's, minus those removed, plus those the change adds or edits), so a build
//! directory the agent's own new `.gitignore` lists stays out of the diff too.
//!
//! `git check-ignore` reads ignore files from a work tree; we give it a scratch work tree holding
//! only the `.gitignore` files that can match a new file (those in the directories above it),
//! written from git's object store (never read through a path the agent controls), and ask only
//! about files the base does not track, so a tracked file never counts as ignored.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::command::{Git, GitError, failed};
use crate::tree::split_nul;

pub(crate) const GITIGNORE: &str = ".gitignore";

/// The paths among `candidates` (files the change adds, none of them tracked in the base) that
/// git ignores. `ignore_files` holds the content of every `.gitignore` regular file of the
/// resulting tree in a directory above a candidate (the only ones that can match it), read from
/// git's object store.
pub(crate) async fn ignored_paths(
    checkout: &Path,
    scratch: &Path,
    candidates: &[PathBuf],
    ignore_files: &BTreeMap<PathBuf, Vec<u8>>,
) -> Result<HashSet<PathBuf>, GitError> {
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    let info_exclude = checkout.join(".git/info/exclude");
    if ignore_files.is_empty() && !tokio::fs::try_exists(&info_exclude).await.unwrap_or(false) {
        return Ok(HashSet::new());
    }
    let shadow = scratch.join("ignore-tree");
    write_files(&shadow, ignore_files).await?;

    let mut input = Vec::new();
    for path in candidates {
        input.extend_from_slice(path.as_os_str().as_bytes());
        input.push(0);
    }
    // `--no-index`: no index to read (the caller left out tracked files); the rules come from
    // the shadow work tree, `.git/info/exclude` and the repository's `core.excludesFile`.
    let git = Git::hardened(&shadow)
        .env("GIT_DIR", checkout.join(".git"))
        .env("GIT_WORK_TREE", &shadow)
        .args(["check-ignore", "--no-index", "--stdin", "-z"]);
    let what = git.what().to_string();
    let output = git.output(Some(input)).await?;
    // check-ignore(1): 0 = some path is ignored, 1 = none is, 128 = fatal error.
    match output.status.code() {
        Some(0) => Ok(split_nul(&output.stdout).into_iter().collect()),
        Some(1) => Ok(HashSet::new()),
        _ => Err(failed(what, &output)),
    }
}

/// Writes each file to `root/<path>`.
async fn write_files(root: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) -> Result<(), GitError> {
    tokio::fs::create_dir_all(root)
        .await
        .map_err(|e| GitError::io("cannot create the ignore-rules tree", e))?;
    for (path, content) in files {
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            continue;
        }
        let target = root.join(path);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| GitError::io("cannot create the ignore-rules tree", e))?;
        }
        tokio::fs::write(&target, content)
            .await
            .map_err(|e| GitError::io("cannot write an ignore file", e))?;
    }
    Ok(())
}
