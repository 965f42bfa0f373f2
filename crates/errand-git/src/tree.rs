//! The diff of a work tree given as a list of changed paths (an overlay's upper layer) against
//! its base commit, built from the changed directories alone: the trees on the paths from the
//! root to each change are read from the base (`git cat-file --batch`), edited in memory
//! (`edit.rs`), and written bottom-up (`git mktree --batch`); the new contents are written with
//! one `git hash-object -w`; then `git diff <base> <tree>`, tree to tree. No index is built and
//! nothing reads the unchanged part of the tree, so the cost follows the change, not the
//! repository.
//!
//! All of it runs in [`Git::hardened`] mode: the file contents are an agent's work and untrusted.
//! Contents are hashed with `--no-filters`, i.e. exactly the bytes on disk.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use errand_protocol::FileChange;

use crate::batch::{ObjectReader, TreeWriter};
use crate::command::{Git, GitError};
use crate::edit::{TreeEdit, parent_dirs};
use crate::ignore::{GITIGNORE, ignored_paths};
use crate::summary::parse_raw_numstat;

/// One path of the work tree that differs from the base, as the caller found it (for the local
/// sandbox: the classification of an overlayfs upper layer). Paths are relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathChange {
    /// A regular file, whose bytes git reads from `source` on the host. The caller has checked
    /// with `lstat` that `source` is a regular file (git then opens it without further checks).
    File { path: PathBuf, source: PathBuf, executable: bool },
    /// A symbolic link; git stores its target as the blob's content.
    Symlink { path: PathBuf, target: PathBuf },
    /// `path`, and everything below it if it was a directory, no longer exists.
    Removed { path: PathBuf },
    /// `path` is a directory that replaced whatever the base had there: of the base's content at
    /// or below `path`, only what other changes list again exists.
    Replaced { path: PathBuf },
}

impl PathChange {
    pub fn path(&self) -> &Path {
        match self {
            PathChange::File { path, .. }
            | PathChange::Symlink { path, .. }
            | PathChange::Removed { path }
            | PathChange::Replaced { path } => path,
        }
    }
}

/// The work tree's changes against the base commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDiff {
    /// `git diff --binary --find-renames` output: applies with `git apply`. Empty when unchanged.
    pub patch: String,
    pub files: Vec<FileChange>,
}

/// Computes the diff of `changes` against `base` using the object database and ignore rules of
/// the checkout at `checkout` (a work tree whose `.git` holds `base`). New files that the
/// resulting tree's `.gitignore` files (or `.git/info/exclude`) ignore are left out.
pub async fn diff_changes(
    checkout: &Path,
    base: &str,
    changes: &[PathChange],
) -> Result<TreeDiff, GitError> {
    if changes.is_empty() {
        return Ok(TreeDiff::default());
    }
    let scratch = tempfile::Builder::new()
        .prefix("errand-diff-")
        .tempdir()
        .map_err(|e| GitError::io("cannot create a temporary directory for the diff", e))?;
    let result = diff_in(checkout, base, changes, scratch.path()).await;
    // Removing the scratch index is a directory walk: keep it off the async threads.
    let _ = tokio::task::spawn_blocking(move || drop(scratch)).await;
    result
}

/// Writes the tree of `base` (a commit or tree id of the checkout at `checkout`) with `changes`
/// applied into the checkout's object database and returns its id. New files the resulting
/// tree's ignore rules ignore are left out, as in [`diff_changes`]. An environment's snapshot
/// layer becomes such a tree: the base its attempts' diffs are taken against.
pub async fn tree_with_changes(
    checkout: &Path,
    base: &str,
    changes: &[PathChange],
) -> Result<String, GitError> {
    let scratch = tempfile::Builder::new()
        .prefix("errand-tree-")
        .tempdir()
        .map_err(|e| GitError::io("cannot create a temporary directory for a tree", e))?;
    let result = write_tree_in(checkout, base, changes, scratch.path()).await;
    let _ = tokio::task::spawn_blocking(move || drop(scratch)).await;
    result
}

async fn diff_in(
    checkout: &Path,
    base: &str,
    changes: &[PathChange],
    scratch: &Path,
) -> Result<TreeDiff, GitError> {
    let tree = write_tree_in(checkout, base, changes, scratch).await?;
    // The summary and the patch are independent reads of the same two trees: run them at once.
    let summary = Git::hardened(checkout)
        .args(["diff", "-z", "--raw", "--numstat", "--find-renames", "--no-ext-diff"])
        .args([base, tree.as_str()])
        .run(None);
    let (summary, patch) = tokio::join!(summary, crate::patch::binary_patch(checkout, base, &tree));
    let files = parse_raw_numstat(&summary?)?;
    let patch = match patch? {
        Ok(text) => text,
        Err(bytes) => {
            crate::patch::with_binary_attributes(checkout, base, &tree, &files, &bytes, scratch)
                .await?
        }
    };
    Ok(TreeDiff { patch, files })
}

/// `base` with `changes` applied, written as a tree (see the module comment).
async fn write_tree_in(
    checkout: &Path,
    base: &str,
    changes: &[PathChange],
    scratch: &Path,
) -> Result<String, GitError> {
    // Started first, so their start-up overlaps the work before they are needed.
    let mut writer = TreeWriter::start(checkout)?;
    let mut reader = ObjectReader::start(checkout)?;

    let read_base = async {
        let root = reader
            .read(&format!("{base}^{{tree}}"))
            .await?
            .ok_or_else(|| GitError::NoSuchCommit(base.to_string()))?;
        let mut edit = TreeEdit::load(&mut reader, &root.id).await?;
        // Which added files the base tracks (those are never ignored), asked before any edit.
        let mut in_base = HashMap::new();
        for change in changes {
            if let PathChange::File { path, .. } | PathChange::Symlink { path, .. } = change {
                in_base.insert(path.as_path(), edit.is_base_leaf(&mut reader, path).await?);
            }
        }
        Ok::<_, GitError>((edit, in_base))
    };
    let (blob_ids, based) = tokio::join!(hash_blobs(checkout, scratch, changes), read_base);
    let (blob_ids, (mut edit, in_base)) = (blob_ids?, based?);

    // Whatever is gone goes first, shallowest first, then the files and links land.
    let mut gone: Vec<&PathChange> = changes
        .iter()
        .filter(|c| matches!(c, PathChange::Removed { .. } | PathChange::Replaced { .. }))
        .collect();
    gone.sort_by_key(|c| c.path().components().count());
    for change in gone {
        match change {
            PathChange::Removed { path } => edit.remove(&mut reader, path).await?,
            PathChange::Replaced { path } => edit.replace_with_empty_dir(&mut reader, path).await?,
            PathChange::File { .. } | PathChange::Symlink { .. } => {}
        }
    }
    let mut added = Vec::new();
    for change in changes {
        let (path, mode) = match change {
            PathChange::File { path, executable, .. } => {
                (path, if *executable { 0o100755 } else { 0o100644 })
            }
            PathChange::Symlink { path, .. } => (path, 0o120000),
            PathChange::Removed { .. } | PathChange::Replaced { .. } => continue,
        };
        let Some(id) = blob_ids.get(path) else { continue };
        edit.set_leaf(&mut reader, path, mode, id).await?;
        if !in_base.get(path.as_path()).copied().unwrap_or(false) {
            added.push(path.clone());
        }
    }

    if !added.is_empty() {
        let ignore_files = ignore_files_above(&edit, &mut reader, &added).await?;
        for path in ignored_paths(checkout, scratch, &added, &ignore_files).await? {
            edit.remove(&mut reader, &path).await?;
        }
    }
    reader.finish().await?;
    let tree = edit.write(&mut writer).await?;
    writer.finish().await?;
    Ok(tree)
}

/// The contents of the `.gitignore` regular files of the edited tree in the directories above
/// `paths`: the only ones whose rules can match them.
async fn ignore_files_above(
    edit: &TreeEdit,
    reader: &mut ObjectReader,
    paths: &[PathBuf],
) -> Result<BTreeMap<PathBuf, Vec<u8>>, GitError> {
    let mut files = BTreeMap::new();
    for path in paths {
        for dir in parent_dirs(path) {
            let file = dir.join(GITIGNORE);
            if files.contains_key(&file) {
                continue;
            }
            let Some(id) = edit.regular_file(&file) else { continue };
            if let Some(object) = reader.read(id).await? {
                files.insert(file, object.content);
            }
        }
    }
    Ok(files)
}

/// Writes the blob of every file and symlink change; returns their ids by path.
async fn hash_blobs(
    checkout: &Path,
    scratch: &Path,
    changes: &[PathChange],
) -> Result<HashMap<PathBuf, String>, GitError> {
    let mut paths = Vec::new();
    let mut sources = Vec::new();
    for (n, change) in changes.iter().enumerate() {
        match change {
            PathChange::File { path, source, .. } => {
                paths.push(path.clone());
                sources.push(source.clone());
            }
            PathChange::Symlink { path, target } => {
                // The blob of a symlink is its target; hash it from a file of our own.
                let holder = scratch.join(format!("link-{n}"));
                tokio::fs::write(&holder, target.as_os_str().as_bytes())
                    .await
                    .map_err(|e| GitError::io("cannot write a symlink target", e))?;
                paths.push(path.clone());
                sources.push(holder);
            }
            PathChange::Removed { .. } | PathChange::Replaced { .. } => {}
        }
    }
    if paths.is_empty() {
        return Ok(HashMap::new());
    }
    let mut input = Vec::new();
    for source in &sources {
        input.extend_from_slice(&c_quote(source.as_os_str().as_bytes()));
        input.push(b'\n');
    }
    let output = Git::hardened(checkout)
        .args(["hash-object", "-w", "--no-filters", "--stdin-paths"])
        .run(Some(input))
        .await?;
    let ids: Vec<String> = String::from_utf8_lossy(&output).lines().map(str::to_string).collect();
    if ids.len() != paths.len() {
        return Err(GitError::Parse {
            what: "hash-object --stdin-paths".into(),
            detail: format!("{} ids for {} files", ids.len(), paths.len()),
        });
    }
    Ok(paths.into_iter().zip(ids).collect())
}

/// NUL-separated paths.
pub(crate) fn split_nul(bytes: &[u8]) -> Vec<PathBuf> {
    bytes
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
        .collect()
}

/// C-style quoting, which `--stdin-paths` undoes for lines starting with `"` (so names with
/// newlines survive).
pub(crate) fn c_quote(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
    }
    out.push(b'"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_quote_escapes_what_git_unquotes() {
        assert_eq!(c_quote(b"a b"), b"\"a b\"".to_vec());
        assert_eq!(c_quote(b"x\ny\"\\"), b"\"x\\ny\\\"\\\\\"".to_vec());
        assert_eq!(c_quote("é".as_bytes()), b"\"\\303\\251\"".to_vec());
    }
}
