//! Which new files of a work tree git ignores, judged by the `.gitignore` files of the tree as it
//! will be (the base's, minus those removed, plus those the change adds or edits), so a build
//! directory the agent's own new `.gitignore` lists stays out of the diff too.
//!
//! `git check-ignore` reads ignore files from a work tree; we give it a scratch work tree holding
//! only those `.gitignore` files, written from git's object store (never read through a path the
//! agent controls), and the base index, so files tracked in the base never count as ignored.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::command::{Git, GitError, failed};
use crate::tree::{IndexEdit, split_nul};

const GITIGNORE: &str = ".gitignore";

/// The paths among `edit.additions` that are new and ignored. `index` holds the base tree.
pub(crate) async fn ignored_new_paths(
    checkout: &Path,
    index: &Path,
    scratch: &Path,
    edit: &IndexEdit,
) -> Result<HashSet<PathBuf>, GitError> {
    if edit.additions.is_empty() {
        return Ok(HashSet::new());
    }
    let ignore_files = final_ignore_files(checkout, index, edit).await?;
    let info_exclude = checkout.join(".git/info/exclude");
    if ignore_files.is_empty() && !tokio::fs::try_exists(&info_exclude).await.unwrap_or(false) {
        return Ok(HashSet::new());
    }
    let shadow = scratch.join("ignore-tree");
    write_blobs(checkout, &shadow, &ignore_files).await?;

    let mut input = Vec::new();
    for (_, _, path) in &edit.additions {
        input.extend_from_slice(path.as_os_str().as_bytes());
        input.push(0);
    }
    let git = Git::hardened(&shadow)
        .env("GIT_DIR", checkout.join(".git"))
        .env("GIT_WORK_TREE", &shadow)
        .env("GIT_INDEX_FILE", index)
        .args(["check-ignore", "--stdin", "-z"]);
    let what = git.what().to_string();
    let output = git.output(Some(input)).await?;
    // check-ignore(1): 0 = some path is ignored, 1 = none is, 128 = fatal error.
    match output.status.code() {
        Some(0) => Ok(split_nul(&output.stdout).into_iter().collect()),
        Some(1) => Ok(HashSet::new()),
        _ => Err(failed(what, &output)),
    }
}

/// Path → blob id of every `.gitignore` regular file in the tree after `edit`.
async fn final_ignore_files(
    checkout: &Path,
    index: &Path,
    edit: &IndexEdit,
) -> Result<BTreeMap<PathBuf, String>, GitError> {
    let listing = Git::hardened(checkout)
        .env("GIT_INDEX_FILE", index)
        .args(["ls-files", "-z", "--stage", "--", ":(glob)**/.gitignore"])
        .run(None)
        .await?;
    let mut files = BTreeMap::new();
    for record in listing.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        // "<mode> <id> <stage>\t<path>"
        let Some(tab) = record.iter().position(|&b| b == b'\t') else {
            continue;
        };
        let meta = String::from_utf8_lossy(&record[..tab]);
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&record[tab + 1..]));
        let mut fields = meta.split(' ');
        if let (Some(mode), Some(id)) = (fields.next(), fields.next())
            && (mode == "100644" || mode == "100755")
        {
            files.insert(path, id.to_string());
        }
    }
    for removed in &edit.removals {
        files.remove(removed);
    }
    for (mode, id, path) in &edit.additions {
        if path.file_name() == Some(GITIGNORE.as_ref()) {
            if *mode == 0o120000 {
                // git does not follow a symlinked .gitignore inside the tree.
                files.remove(path);
            } else {
                files.insert(path.clone(), id.clone());
            }
        }
    }
    Ok(files)
}

/// Writes each blob to `root/<path>`.
async fn write_blobs(
    checkout: &Path,
    root: &Path,
    files: &BTreeMap<PathBuf, String>,
) -> Result<(), GitError> {
    tokio::fs::create_dir_all(root)
        .await
        .map_err(|e| GitError::io("cannot create the ignore-rules tree", e))?;
    for (path, id) in files {
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            continue;
        }
        let content = Git::hardened(checkout).args(["cat-file", "blob", id]).run(None).await?;
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
