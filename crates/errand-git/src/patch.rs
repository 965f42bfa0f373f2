//! The `git apply`-compatible patch between two trees, as text.
//!
//! `git diff` prints a file it judges to be text byte for byte, and text in another encoding
//! than UTF-8 would not survive being held in a `String`. Such files are diffed again marked
//! `binary` (gitattributes(5)), which makes `--binary` encode them as a binary patch instead.

use std::path::Path;

use errand_protocol::{FileChange, FileChangeKind};

use crate::command::{Git, GitError};

/// `git diff --binary` from `base` to `tree`: the text, or the bytes when some file's section is
/// not UTF-8 (then [`with_binary_attributes`] makes the patch again).
pub(crate) async fn binary_patch(
    checkout: &Path,
    base: &str,
    tree: &str,
) -> Result<Result<String, Vec<u8>>, GitError> {
    let patch = diff(Git::hardened(checkout), base, tree).await?;
    Ok(String::from_utf8(patch).map_err(|error| error.into_bytes()))
}

fn diff(git: Git, base: &str, tree: &str) -> impl Future<Output = Result<Vec<u8>, GitError>> {
    git.args([
        "diff",
        "--binary",
        "--find-renames",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        base,
        tree,
    ])
    .run(None)
}

/// The patch again, with the files whose sections of `patch` are not UTF-8 marked `binary`.
pub(crate) async fn with_binary_attributes(
    checkout: &Path,
    base: &str,
    tree: &str,
    files: &[FileChange],
    patch: &[u8],
    scratch: &Path,
) -> Result<String, GitError> {
    let offending = not_utf8_files(patch, files);
    let mut attributes = String::new();
    for path in &offending {
        let pattern = format!("/{}", glob_escape(path));
        attributes.push_str(&String::from_utf8_lossy(&crate::tree::c_quote(pattern.as_bytes())));
        attributes.push_str(" binary\n");
    }
    let attributes_file = scratch.join("binary-attributes");
    let empty_tree = scratch.join("empty-work-tree");
    tokio::fs::write(&attributes_file, attributes)
        .await
        .map_err(|e| GitError::io("cannot write the attributes for the diff", e))?;
    tokio::fs::create_dir_all(&empty_tree)
        .await
        .map_err(|e| GitError::io("cannot create an empty work tree", e))?;
    // Only our attributes apply: an empty work tree and no index hide the tree's own
    // `.gitattributes`, which would otherwise take precedence over `core.attributesFile`.
    let git = Git::hardened(&empty_tree)
        .env("GIT_DIR", checkout.join(".git"))
        .env("GIT_WORK_TREE", &empty_tree)
        .env("GIT_INDEX_FILE", scratch.join("no-index"))
        .arg("-c")
        .arg(format!("core.attributesFile={}", attributes_file.display()));
    let patch = diff(git, base, tree).await?;
    String::from_utf8(patch).map_err(|_| GitError::Parse {
        what: "diff --binary".into(),
        detail: format!(
            "the patch is not UTF-8 even with these files marked binary: {}",
            offending.join(", ")
        ),
    })
}

/// The paths (both sides of a rename) whose section of `patch` is not UTF-8. Sections come in
/// the same order as `files` (both follow git's diff queue); if the counts differ, every text
/// file is named.
fn not_utf8_files(patch: &[u8], files: &[FileChange]) -> Vec<String> {
    let sections = sections(patch);
    let text_files = files.iter().filter(|f| !f.binary);
    let mut offending = Vec::new();
    let mut add = |file: &FileChange| {
        offending.push(file.path.clone());
        if let FileChangeKind::Renamed { from } = &file.kind {
            offending.push(from.clone());
        }
    };
    if sections.len() == files.len() {
        for (section, file) in sections.iter().zip(files) {
            if !file.binary && std::str::from_utf8(section).is_err() {
                add(file);
            }
        }
    } else {
        text_files.for_each(add);
    }
    offending
}

/// Splits a patch at each `diff --git` header (no content line can start with it: those start
/// with ' ', '+', '-', '@' or '\').
fn sections(patch: &[u8]) -> Vec<&[u8]> {
    const HEADER: &[u8] = b"diff --git ";
    let mut starts: Vec<usize> = Vec::new();
    let mut line_start = 0;
    while line_start < patch.len() {
        if patch[line_start..].starts_with(HEADER) {
            starts.push(line_start);
        }
        match patch[line_start..].iter().position(|&b| b == b'\n') {
            Some(n) => line_start += n + 1,
            None => break,
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| &patch[start..starts.get(i + 1).copied().unwrap_or(patch.len())])
        .collect()
}

/// Escapes the characters gitattributes patterns treat as glob syntax.
fn glob_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str) -> FileChange {
        FileChange {
            path: path.into(),
            kind: FileChangeKind::Modified,
            insertions: 1,
            deletions: 1,
            binary: false,
        }
    }

    #[test]
    fn finds_the_sections_that_are_not_utf8() {
        let mut patch = b"diff --git a/a b/a\n+ok\ndiff --git a/b b/b\n+".to_vec();
        patch.push(0xe9);
        patch.extend_from_slice(b"\ndiff --git a/c b/c\n-diff --git inside\n");
        let files = [text("a"), text("b"), text("c")];
        assert_eq!(sections(&patch).len(), 3);
        assert_eq!(not_utf8_files(&patch, &files), vec!["b".to_string()]);
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\d"), "a\\*b\\?\\[c]\\\\d");
    }
}
