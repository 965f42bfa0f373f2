//! Applying a parsed patch to the files under a root.
//!
//! Order of events, and why:
//! 1. parse the whole text (a malformed patch changes nothing);
//! 2. resolve every path of every hunk (a patch with one path outside the root changes nothing);
//! 3. apply hunk by hunk, each file written whole through a temporary file and a rename. A hunk
//!    that fails stops the patch, and the hunks before it stay applied (Codex's conformance
//!    scenario 015 pins this), which the error then lists.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use errand_protocol::{FileChange, FileChangeKind};

use crate::error::{PatchError, render_lines};
use crate::parser::{Hunk, parse_patch};
use crate::paths::{Target, Workspace};
use crate::replace::{count_line_changes, updated_contents};

/// What a successful patch changed, in patch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySummary {
    /// One entry per hunk. Paths are as the patch wrote them (relative to the working
    /// directory); a move is `Renamed { from }` at its destination.
    pub changes: Vec<FileChange>,
}

impl ApplySummary {
    /// The text the model reads, in the shape Codex prints:
    /// `Success. Updated the following files:\nA new.txt\nM src/lib.rs\nD old.txt\n`.
    pub fn render(&self) -> String {
        format!("Success. Updated the following files:\n{}", render_lines(&self.changes))
    }
}

/// Applies `patch` with relative paths resolved against `cwd`, which must be inside `root`.
/// Nothing outside `root` is read or written, whatever the patch says.
pub fn apply_patch(root: &Path, cwd: &Path, patch: &str) -> Result<ApplySummary, PatchError> {
    let patch = parse_patch(patch)?;
    let workspace = Workspace::new(root, cwd)?;
    for hunk in &patch.hunks {
        resolve_hunk(&workspace, hunk)?;
    }
    let mut changes = Vec::with_capacity(patch.hunks.len());
    for hunk in &patch.hunks {
        // Resolved again: an earlier hunk may have changed what is on disk.
        let applied = resolve_hunk(&workspace, hunk).and_then(|targets| apply_hunk(hunk, targets));
        match applied {
            Ok(change) => changes.push(change),
            Err(error) if changes.is_empty() => return Err(error),
            Err(error) => {
                return Err(PatchError::PartiallyApplied { changes, error: Box::new(error) });
            }
        }
    }
    Ok(ApplySummary { changes })
}

/// The hunk's path and, for a move, its destination.
struct Targets {
    path: Target,
    move_to: Option<Target>,
}

fn resolve_hunk(workspace: &Workspace, hunk: &Hunk) -> Result<Targets, PatchError> {
    let path = workspace.resolve(hunk.path())?;
    let move_to = match hunk {
        Hunk::Update { move_to: Some(dest), .. } => Some(workspace.resolve(dest)?),
        _ => None,
    };
    Ok(Targets { path, move_to })
}

fn apply_hunk(hunk: &Hunk, targets: Targets) -> Result<FileChange, PatchError> {
    let Targets { path: target, move_to } = targets;
    match hunk {
        Hunk::Add { contents, .. } => {
            let previous = existing_file(&target, "add")?
                .map(|_| read_lossy(&target, "add"))
                .transpose()?
                .unwrap_or_default();
            write_file(&target, contents, &target.resolved)?;
            let (insertions, deletions) = count_line_changes(&previous, contents);
            Ok(change(&target.display, FileChangeKind::Added, insertions, deletions))
        }
        Hunk::Delete { .. } => {
            let entry = target.entry();
            let meta = std::fs::symlink_metadata(&entry)
                .map_err(|e| missing_or_io(&target, "delete", e))?;
            if meta.is_dir() {
                return Err(not_a_file(&target, "delete", "a directory"));
            }
            if !meta.is_file() && !meta.file_type().is_symlink() {
                return Err(not_a_file(&target, "delete", "a special file"));
            }
            // A symlink is removed itself; its lines (if it points at a file) are what disappears.
            let old = read_lossy(&target, "delete").unwrap_or_default();
            std::fs::remove_file(&entry).map_err(|source| io_error(&target, "delete", source))?;
            Ok(change(&target.display, FileChangeKind::Deleted, 0, old.lines().count() as u64))
        }
        Hunk::Update { chunks, .. } => {
            let action = "update";
            if existing_file(&target, action)?.is_none() {
                return Err(PatchError::FileNotFound { path: target.display.clone(), action });
            }
            let bytes =
                std::fs::read(&target.resolved).map_err(|e| io_error(&target, action, e))?;
            let original = String::from_utf8(bytes)
                .map_err(|_| PatchError::NotText { path: target.display.clone() })?;
            let updated = updated_contents(&target.display, &original, chunks)?;
            let (insertions, deletions) = count_line_changes(&original, &updated);
            let Some(dest) = move_to else {
                write_file(&target, &updated, &target.resolved)?;
                return Ok(change(
                    &target.display,
                    FileChangeKind::Modified,
                    insertions,
                    deletions,
                ));
            };
            existing_file(&dest, "move to")?;
            write_file(&dest, &updated, &target.resolved)?;
            // Moving a file onto itself (or onto a symlink to itself) must not delete it.
            if dest.resolved != target.resolved {
                std::fs::remove_file(target.entry())
                    .map_err(|source| io_error(&target, "remove the moved file", source))?;
            }
            let kind = FileChangeKind::Renamed { from: target.display.clone() };
            Ok(change(&dest.display, kind, insertions, deletions))
        }
    }
}

fn change(path: &str, kind: FileChangeKind, insertions: u64, deletions: u64) -> FileChange {
    FileChange { path: path.to_string(), kind, insertions, deletions, binary: false }
}

/// `Some` if a regular file is at the target (after a final symlink), `None` if nothing is;
/// an error for a directory or a special file.
fn existing_file(target: &Target, action: &'static str) -> Result<Option<()>, PatchError> {
    match std::fs::metadata(&target.resolved) {
        Ok(meta) if meta.is_file() => Ok(Some(())),
        Ok(meta) if meta.is_dir() => Err(not_a_file(target, action, "a directory")),
        Ok(_) => Err(not_a_file(target, action, "a special file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(target, action, e)),
    }
}

fn read_lossy(target: &Target, action: &'static str) -> Result<String, PatchError> {
    let bytes = std::fs::read(&target.resolved).map_err(|e| io_error(target, action, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Writes `contents` at the target's resolved location through a new temporary file renamed
/// into place: never through a hard link or a symlink planted at the final name, and never a
/// half-written file. Permissions are copied from `mode_from` when it is an existing file.
fn write_file(target: &Target, contents: &str, mode_from: &Path) -> Result<(), PatchError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = &target.resolved;
    let Some(dir) = path.parent() else {
        // `resolved` lies strictly under the root, so it always has a parent.
        return Err(not_a_file(target, "write", "the file system root"));
    };
    std::fs::create_dir_all(dir)
        .map_err(|source| io_error(target, "create the parent directories of", source))?;
    let permissions =
        std::fs::metadata(mode_from).ok().filter(|m| m.is_file()).map(|m| m.permissions());
    let tmp = dir.join(format!(
        ".{}.errand-patch-{}-{}.tmp",
        target.name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        drop(file);
        if let Some(permissions) = permissions {
            std::fs::set_permissions(&tmp, permissions)?;
        }
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        // Best effort: the temporary file may not exist if creating it is what failed.
        let _ = std::fs::remove_file(&tmp);
        io_error(target, "write", source)
    })
}

fn not_a_file(target: &Target, action: &'static str, what: &'static str) -> PatchError {
    PatchError::NotAFile { path: target.display.clone(), action, what }
}

fn io_error(target: &Target, action: &'static str, source: std::io::Error) -> PatchError {
    PatchError::Io { path: target.display.clone(), action, source }
}

fn missing_or_io(target: &Target, action: &'static str, source: std::io::Error) -> PatchError {
    if source.kind() == std::io::ErrorKind::NotFound {
        PatchError::FileNotFound { path: target.display.clone(), action }
    } else {
        io_error(target, action, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        files: &[(&str, &str)],
        patch: &str,
    ) -> (tempfile::TempDir, Result<ApplySummary, PatchError>) {
        let dir = tempfile::tempdir().unwrap();
        for (path, contents) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
        }
        let result = apply_patch(dir.path(), dir.path(), patch);
        (dir, result)
    }

    #[test]
    fn summary_renders_like_codex() {
        let (dir, result) = run(
            &[("old.txt", "x\n"), ("src/lib.rs", "a\nb\n"), ("m.txt", "1\n")],
            "*** Begin Patch\n*** Add File: new.txt\n+hi\n*** Update File: src/lib.rs\n@@\n-b\n+c\n\
             *** Delete File: old.txt\n*** Update File: m.txt\n*** Move to: moved/m.txt\n@@\n 1\n+2\n\
             *** End Patch",
        );
        let summary = result.unwrap();
        assert_eq!(
            summary.render(),
            "Success. Updated the following files:\nA new.txt\nM src/lib.rs\nD old.txt\nM moved/m.txt\n"
        );
        let counts: Vec<(u64, u64)> =
            summary.changes.iter().map(|c| (c.insertions, c.deletions)).collect();
        assert_eq!(counts, vec![(1, 0), (1, 1), (0, 1), (1, 0)]);
        assert_eq!(summary.changes[3].kind, FileChangeKind::Renamed { from: "m.txt".into() });
        assert_eq!(std::fs::read_to_string(dir.path().join("moved/m.txt")).unwrap(), "1\n2\n");
        assert!(!dir.path().join("m.txt").exists());
    }

    #[test]
    fn partial_failure_lists_what_was_applied() {
        let (dir, result) = run(
            &[],
            "*** Begin Patch\n*** Add File: created.txt\n+hello\n*** Update File: missing.txt\n@@\n-a\n+b\n\
             *** End Patch",
        );
        let err = result.unwrap_err();
        assert_eq!(err.applied_changes().len(), 1);
        assert!(
            err.to_string().starts_with("Failed to update 'missing.txt': the file does not exist."),
            "{err}"
        );
        assert!(err.to_string().ends_with("remain on disk:\nA created.txt\n"), "{err}");
        assert!(dir.path().join("created.txt").exists());
    }

    #[test]
    fn delete_errors() {
        let (_dir, result) =
            run(&[("dir/f", "x")], "*** Begin Patch\n*** Delete File: dir\n*** End Patch");
        assert_eq!(
            result.unwrap_err().to_string(),
            "Failed to delete 'dir': it is a directory, not a regular file"
        );
        let (_dir, result) = run(&[], "*** Begin Patch\n*** Delete File: nope.txt\n*** End Patch");
        assert!(
            result
                .unwrap_err()
                .to_string()
                .starts_with("Failed to delete 'nope.txt': the file does not exist.")
        );
    }

    #[test]
    fn update_refuses_binary_and_keeps_mode() {
        let (_dir, result) = run(
            &[("b.bin", "\u{0}\u{1}")],
            "*** Begin Patch\n*** Update File: b.bin\n+x\n*** End Patch",
        );
        assert!(result.is_ok(), "valid UTF-8 with NULs is still text");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.bin"), [0xff, 0xfe, b'\n']).unwrap();
        let err = apply_patch(
            dir.path(),
            dir.path(),
            "*** Begin Patch\n*** Update File: b.bin\n+x\n*** End Patch",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not UTF-8 text"), "{err}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let script = dir.path().join("run.sh");
            std::fs::write(&script, "echo a\n").unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            apply_patch(
                dir.path(),
                dir.path(),
                "*** Begin Patch\n*** Update File: run.sh\n-echo a\n+echo b\n*** End Patch",
            )
            .unwrap();
            assert_eq!(std::fs::metadata(&script).unwrap().permissions().mode() & 0o777, 0o755);
            assert_eq!(std::fs::read_to_string(&script).unwrap(), "echo b\n");
        }
    }

    #[test]
    fn move_onto_itself_keeps_the_file() {
        let (dir, result) = run(
            &[("a.txt", "1\n")],
            "*** Begin Patch\n*** Update File: a.txt\n*** Move to: ./a.txt\n@@\n-1\n+2\n*** End Patch",
        );
        result.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("a.txt")).unwrap(), "2\n");
    }
}
