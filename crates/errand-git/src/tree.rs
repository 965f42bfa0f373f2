//! The diff of a work tree given as a list of changed paths (an overlay's upper layer) against
//! its base commit, through git plumbing on a temporary index:
//! `read-tree <base>` → `hash-object -w` the new contents → `update-index --index-info` →
//! `write-tree` → `diff <base> <tree>`. Nothing walks or hashes the unchanged part of the tree.
//!
//! All of it runs in [`Git::hardened`] mode: the file contents are an agent's work and untrusted.
//! Contents are hashed with `--no-filters`, i.e. exactly the bytes on disk.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use errand_protocol::FileChange;

use crate::command::{Git, GitError};
use crate::ignore::ignored_new_paths;
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
    let summary = Git::hardened(checkout)
        .args(["diff", "-z", "--raw", "--numstat", "--find-renames", "--no-ext-diff"])
        .args([base, tree.as_str()])
        .run(None)
        .await?;
    let files = parse_raw_numstat(&summary)?;
    let patch = crate::patch::binary_patch(checkout, base, &tree, &files, scratch).await?;
    Ok(TreeDiff { patch, files })
}

/// `base` with `changes` applied, written as a tree, using a scratch index in `scratch`.
async fn write_tree_in(
    checkout: &Path,
    base: &str,
    changes: &[PathChange],
    scratch: &Path,
) -> Result<String, GitError> {
    let index = scratch.join("index");
    let git = || Git::hardened(checkout).env("GIT_INDEX_FILE", &index);

    git().args(["read-tree", base]).run(None).await?;
    let base_entries = if changes
        .iter()
        .any(|c| matches!(c, PathChange::Removed { .. } | PathChange::Replaced { .. }))
    {
        let listing = git().args(["ls-files", "-z"]).run(None).await?;
        split_nul(&listing)
    } else {
        Vec::new()
    };

    let blob_ids = hash_blobs(checkout, scratch, changes).await?;
    let zero_id = "0".repeat(base.len());
    let edit = IndexEdit::plan(changes, &blob_ids, &base_entries);

    let ignored = ignored_new_paths(checkout, &index, scratch, &edit).await?;
    git()
        .args(["update-index", "--add", "--replace", "-z", "--index-info"])
        .run(Some(edit.index_info(&zero_id, &ignored)))
        .await?;
    git().arg("write-tree").run_line().await
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

/// What to do to the base index: remove some entries, then add (or overwrite) others.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct IndexEdit {
    pub removals: Vec<PathBuf>,
    /// (mode, blob id, path)
    pub additions: Vec<(u32, String, PathBuf)>,
}

impl IndexEdit {
    /// Plans the edit. `base_entries` lists the base index (needed only when something was
    /// removed or replaced); `blob_ids` holds the id of every file and symlink change.
    pub fn plan(
        changes: &[PathChange],
        blob_ids: &HashMap<PathBuf, String>,
        base_entries: &[PathBuf],
    ) -> IndexEdit {
        let mut edit = IndexEdit::default();
        for change in changes {
            let (mode, path) = match change {
                PathChange::File { path, executable, .. } => {
                    (if *executable { 0o100755 } else { 0o100644 }, path)
                }
                PathChange::Symlink { path, .. } => (0o120000, path),
                PathChange::Removed { .. } | PathChange::Replaced { .. } => continue,
            };
            if let Some(id) = blob_ids.get(path) {
                edit.additions.push((mode, id.clone(), path.clone()));
            }
        }
        let added: HashSet<&Path> = edit.additions.iter().map(|(_, _, p)| p.as_path()).collect();
        let gone: HashSet<&Path> = changes
            .iter()
            .filter_map(|change| match change {
                PathChange::Removed { path } | PathChange::Replaced { path } => {
                    Some(path.as_path())
                }
                _ => None,
            })
            .collect();
        for entry in base_entries {
            let under_gone = entry.ancestors().any(|ancestor| gone.contains(ancestor));
            if under_gone && !added.contains(entry.as_path()) {
                edit.removals.push(entry.clone());
            }
        }
        edit
    }

    /// The `git update-index -z --index-info` input, leaving out `skip`ped additions.
    pub fn index_info(&self, zero_id: &str, skip: &HashSet<PathBuf>) -> Vec<u8> {
        let mut out = Vec::new();
        for path in &self.removals {
            // Mode 0 removes the entry (git-update-index(1), "USING --INDEX-INFO").
            out.extend_from_slice(format!("0 {zero_id}\t").as_bytes());
            out.extend_from_slice(path.as_os_str().as_bytes());
            out.push(0);
        }
        for (mode, id, path) in &self.additions {
            if skip.contains(path) {
                continue;
            }
            out.extend_from_slice(format!("{mode:o} {id}\t").as_bytes());
            out.extend_from_slice(path.as_os_str().as_bytes());
            out.push(0);
        }
        out
    }
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

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn file(path: &str, executable: bool) -> PathChange {
        PathChange::File { path: p(path), source: p(&format!("/upper/{path}")), executable }
    }

    fn ids(paths: &[&str]) -> HashMap<PathBuf, String> {
        paths.iter().enumerate().map(|(n, path)| (p(path), format!("{n:040}"))).collect()
    }

    #[test]
    fn files_and_symlinks_become_additions_with_their_modes() {
        let changes = [
            file("a.txt", false),
            file("bin/run", true),
            PathChange::Symlink { path: p("link"), target: p("a.txt") },
        ];
        let edit = IndexEdit::plan(&changes, &ids(&["a.txt", "bin/run", "link"]), &[]);
        let modes: Vec<(u32, &Path)> =
            edit.additions.iter().map(|(mode, _, path)| (*mode, path.as_path())).collect();
        assert_eq!(
            modes,
            vec![
                (0o100644, Path::new("a.txt")),
                (0o100755, Path::new("bin/run")),
                (0o120000, Path::new("link"))
            ]
        );
        assert!(edit.removals.is_empty());
    }

    #[test]
    fn a_removed_directory_removes_every_base_entry_below_it() {
        let base = [p("docs/a.md"), p("docs/deep/b.md"), p("docsx/c.md"), p("keep")];
        let changes = [PathChange::Removed { path: p("docs") }];
        let edit = IndexEdit::plan(&changes, &HashMap::new(), &base);
        assert_eq!(edit.removals, vec![p("docs/a.md"), p("docs/deep/b.md")]);
    }

    #[test]
    fn a_removed_file_removes_just_that_entry() {
        let base = [p("a"), p("a.txt"), p("b")];
        let changes = [PathChange::Removed { path: p("a") }];
        let edit = IndexEdit::plan(&changes, &HashMap::new(), &base);
        assert_eq!(edit.removals, vec![p("a")]);
    }

    #[test]
    fn a_replaced_directory_keeps_only_what_is_listed_again() {
        let base = [p("src/a.rs"), p("src/b.rs"), p("src/sub/c.rs"), p("top")];
        let changes = [
            PathChange::Replaced { path: p("src") },
            file("src/a.rs", false),
            file("src/new.rs", false),
        ];
        let edit = IndexEdit::plan(&changes, &ids(&["src/a.rs", "src/new.rs"]), &base);
        assert_eq!(edit.removals, vec![p("src/b.rs"), p("src/sub/c.rs")]);
        assert_eq!(edit.additions.len(), 2);
    }

    #[test]
    fn a_file_replaced_by_a_directory_is_removed() {
        let base = [p("thing")];
        let changes = [PathChange::Replaced { path: p("thing") }, file("thing/x", false)];
        let edit = IndexEdit::plan(&changes, &ids(&["thing/x"]), &base);
        assert_eq!(edit.removals, vec![p("thing")]);
    }

    #[test]
    fn index_info_lines_are_nul_terminated_and_skip_ignored_paths() {
        let changes = [file("a", false), file("target/x", false)];
        let base = [p("old")];
        let mut edit = IndexEdit::plan(&changes, &ids(&["a", "target/x"]), &base);
        edit.removals.push(p("old"));
        let skip: HashSet<PathBuf> = [p("target/x")].into_iter().collect();
        let info = edit.index_info("0000", &skip);
        let expected = format!("0 0000\told\x00100644 {:040}\ta\x00", 0);
        assert_eq!(String::from_utf8(info).unwrap(), expected);
    }

    #[test]
    fn c_quote_escapes_what_git_unquotes() {
        assert_eq!(c_quote(b"a b"), b"\"a b\"".to_vec());
        assert_eq!(c_quote(b"x\ny\"\\"), b"\"x\\ny\\\"\\\\\"".to_vec());
        assert_eq!(c_quote("é".as_bytes()), b"\"\\303\\251\"".to_vec());
    }
}
