//! Everything that can go wrong, worded for the model that wrote the patch: each message says
//! what happened, names the file or patch line, and says what to do next.

use errand_protocol::FileChange;

/// Why a patch could not be parsed or applied. `Display` is the text the model reads.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The text is not a `*** Begin Patch` … `*** End Patch` envelope.
    #[error("invalid patch: {0}")]
    InvalidPatch(String),

    /// A line inside the envelope is not valid where it stands (1-based line of the patch text).
    #[error("invalid patch, line {line}: {message}")]
    InvalidHunk { line: usize, message: String },

    /// The envelope holds no file operation at all.
    #[error(
        "invalid patch: it contains no file operations. Add at least one '*** Add File: <path>', \
         '*** Delete File: <path>' or '*** Update File: <path>' section between the markers"
    )]
    NoHunks,

    /// A path is malformed (empty, NUL byte, names a directory rather than a file).
    #[error("invalid path '{path}': {reason}")]
    InvalidPath { path: String, reason: String },

    /// A path would leave the workspace root (`..`, absolute path elsewhere, symlink pointing out).
    /// Nothing of the patch was applied.
    #[error(
        "path '{path}' is outside the workspace ({reason}); nothing was changed. \
         Use a path relative to the working directory that stays inside the workspace"
    )]
    OutsideWorkspace { path: String, reason: String },

    /// The caller's working directory is not inside the root it gave (a caller bug, not the model's).
    #[error("working directory '{cwd}' is not inside the workspace root '{root}'")]
    CwdOutsideRoot { cwd: String, root: String },

    /// The file an Update or Delete names does not exist.
    #[error(
        "Failed to {action} '{path}': the file does not exist. Check the path (it is relative to \
         the working directory){}",
        if *.action == "update" { format!("; use '*** Add File: {path}' to create a new file") } else { String::new() }
    )]
    FileNotFound { path: String, action: &'static str },

    /// The path exists but is not a regular file (a directory, a device, ...).
    #[error("Failed to {action} '{path}': it is {what}, not a regular file")]
    NotAFile { path: String, action: &'static str, what: &'static str },

    /// An Update targets a file that is not UTF-8 text.
    #[error(
        "Failed to update '{path}': the file is not UTF-8 text; apply_patch edits text files only"
    )]
    NotText { path: String },

    /// The `@@ <context>` line of a chunk was not found in the file.
    #[error(
        "Failed to find context '{context}' in {path}\n(hint: the text after '@@' must be one line \
         copied from the file, usually a function or class header; re-read the file)"
    )]
    ContextNotFound { path: String, context: String },

    /// The ` `/`-` lines of a chunk were not found in the file.
    #[error(
        "Failed to find expected lines in {path}:\n{lines}\n(hint: re-read the file; the context \
         must match its current contents)"
    )]
    LinesNotFound { path: String, lines: String },

    /// The file system refused an operation.
    #[error("Failed to {action} '{path}': {source}")]
    Io {
        path: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A hunk failed after earlier hunks of the same patch were written. Those stay applied
    /// (Codex behaves the same: its conformance scenario 015 pins it); the message lists them so
    /// the model knows the current state of the files.
    #[error(
        "{error}\nThe earlier parts of this patch were applied and remain on disk:\n{}",
        render_lines(changes)
    )]
    PartiallyApplied { changes: Vec<FileChange>, error: Box<PatchError> },
}

impl PatchError {
    /// Changes already on disk when this error happened (empty unless partially applied).
    pub fn applied_changes(&self) -> &[FileChange] {
        match self {
            Self::PartiallyApplied { changes, .. } => changes,
            _ => &[],
        }
    }
}

/// One `X path` line per change: `A` added, `M` modified or moved (shown at its destination),
/// `D` deleted. Shared by the success summary and the partial-failure message.
pub(crate) fn render_lines(changes: &[FileChange]) -> String {
    use errand_protocol::FileChangeKind;
    let mut out = String::new();
    for change in changes {
        let letter = match change.kind {
            FileChangeKind::Added => 'A',
            FileChangeKind::Deleted => 'D',
            FileChangeKind::Modified
            | FileChangeKind::Renamed { .. }
            | FileChangeKind::ModeChanged => 'M',
        };
        out.push(letter);
        out.push(' ');
        out.push_str(&change.path);
        out.push('\n');
    }
    out
}
