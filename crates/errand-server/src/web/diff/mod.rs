//! The diff as a reviewer reads it. [`parse`] turns the text of `git diff --binary
//! --find-renames` (what `GET /api/attempts/{id}/diff` returns) into files, hunks and numbered
//! lines; [`render`] writes them as HTML tables, unified or side by side; [`final_text`] rebuilds
//! a file after the diff from its base content.
//!
//! The diff comes from an agent working in a repository that may be hostile. So parsing is one
//! pass over the lines that never panics: garbage lines are skipped, and a hunk's line counts are
//! believed only as far as its lines agree (a removed line reading `--- a/x` is still a removed
//! line; a `diff --git` line always starts a new file). Every path, line and hunk section reaches
//! the page escaped, through [`text_into`](super::highlight::text_into), and the HTML has no inline styles, event handlers or
//! scripts.
//!
//! # CSS classes
//! - `details.file`: one file, `open` unless its diff has more than [`LARGE_DIFF_LINES`] lines;
//!   its id is `file-` + [`id_fragment`](super::html::id_fragment) of [`FileDiff::path`] (a later file with the same path,
//!   as a type change gives, gets `..2`, `..3`: `id_fragment` never writes `..`).
//! - In its `summary`: `span.path` (a rename reads `old → new`), `span.status` with one of
//!   `status-added`, `status-deleted`, `status-modified`, `status-renamed`, `status-copied`,
//!   `status-mode`; `span.stat` holding `span.ins` (`+N`) and `span.del` (`−M`); `span.note`
//!   (`large diff`).
//! - `p.note` in the body: `binary file, not shown`, `mode 100644 → 100755`, `no content changes`,
//!   `empty file`.
//! - `table.diff.unified`: rows `tr.hunk` (one cell, `td.hunk`, spanning the row: `@@ … @@` and
//!   the section in `span.section`) and `tr.ctx`, `tr.add`, `tr.del`, each with `td.ln` (old
//!   number), `td.ln` (new number), `td.mark` (` `, `+`, `−`) and `td.code`.
//! - `table.diff.split`: rows `tr.hunk` as above and `tr.line`, each with `td.ln`, `td.code`
//!   (old side), `td.ln`, `td.code` (new side); every cell also has `ctx`, `add`, `del` or
//!   `empty` (the padding beside the longer side of a change).
//! - A `td.ln` with a number shows it and has `data-line="N"`; one without (the side a line is
//!   not on) is empty. Lines have no ids.
//! - `span.nonl`: "No newline at end of file", after the code of the line it applies to.
//! - Inside `td.code`: the classes of [`super::highlight`] (`k`, `s`, `c`, `n`, `t`, `bidi`).

mod apply;
mod parse;
mod render;
#[cfg(test)]
mod tests;

pub use apply::final_text;
pub use parse::parse;
pub use render::{DiffView, render};

/// Files with more diff lines than this render closed, so a generated or vendored file does not
/// bury the rest of the review.
pub const LARGE_DIFF_LINES: usize = 3000;

/// One file's part of the diff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileDiff {
    /// The path before, `None` for an added file (`/dev/null`).
    pub old_path: Option<String>,
    /// The path after, `None` for a deleted file.
    pub new_path: Option<String>,
    pub status: FileStatus,
    /// File modes (`100644`, `100755`, `120000`) from the extended header, when git printed them.
    pub old_mode: Option<String>,
    pub new_mode: Option<String>,
    /// `similarity index` of a rename or copy, in percent.
    pub similarity: Option<u8>,
    pub hunks: Vec<Hunk>,
    pub insertions: u64,
    pub deletions: u64,
    /// `Binary files … differ` or a `GIT binary patch`: no lines to show.
    pub binary: bool,
}

impl FileDiff {
    /// The path a reviewer knows the file by: the new one, or the old one for a deleted file.
    pub fn path(&self) -> &str {
        self.new_path.as_deref().or(self.old_path.as_deref()).unwrap_or_default()
    }

    fn line_count(&self) -> usize {
        self.hunks.iter().map(|hunk| hunk.lines.len()).sum()
    }
}

/// What happened to a file. Binary is not a status: an added, deleted or renamed file can be
/// binary too ([`FileDiff::binary`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileStatus {
    Added,
    Deleted,
    #[default]
    Modified,
    Renamed,
    Copied,
    /// Only the mode changed (`chmod +x`).
    ModeChanged,
}

impl FileStatus {
    fn label(self) -> &'static str {
        match self {
            FileStatus::Added => "added",
            FileStatus::Deleted => "deleted",
            FileStatus::Modified => "modified",
            FileStatus::Renamed => "renamed",
            FileStatus::Copied => "copied",
            FileStatus::ModeChanged => "mode",
        }
    }
}

/// One `@@ -old_start,old_len +new_start,new_len @@ section` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hunk {
    pub old_start: u64,
    pub old_len: u64,
    pub new_start: u64,
    pub new_len: u64,
    /// The text after the second `@@`: git's guess at the enclosing function.
    pub section: String,
    pub lines: Vec<DiffLine>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    pub kind: LineKind,
    /// The line without its `+`/`-`/space marker and without its newline (a `\r` stays).
    pub text: String,
    pub old_no: Option<u64>,
    pub new_no: Option<u64>,
    /// Followed by `\ No newline at end of file`: this line is the last of its side and has no
    /// newline (on both sides, for context).
    pub no_newline: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Context,
    Added,
    Removed,
}
