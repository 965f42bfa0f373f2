//! Text → [`Patch`]: the `*** Begin Patch` grammar, read leniently the way Codex reads it.
//!
//! ```text
//! *** Begin Patch
//! *** Add File: <path>            then lines starting with '+'
//! *** Delete File: <path>
//! *** Update File: <path>
//! *** Move to: <path>             optional
//! @@ <one line of context>        or a bare '@@'; the first chunk may omit it
//!  context / -removed / +added    lines
//! *** End of File                 optional: the chunk is anchored at the end of the file
//! *** End Patch
//! ```
//! Leniency (after openai/codex `codex-rs/apply-patch/src/parser.rs`): whitespace around marker
//! lines, a heredoc wrapper (`<<'EOF'` … `EOF`) left in by a model that called the tool like a
//! shell command, blank lines between chunks, and an empty line inside a chunk read as an empty
//! context line. Additions of ours: blank lines between hunks, an empty line inside an Add File
//! body, a missing space after the `:` of a header, and a unified-diff range header
//! (`@@ -1,3 +1,4 @@`) read as a bare `@@`.
//! Parsing touches no file; paths are checked when the patch is applied.

use crate::error::PatchError;

const BEGIN_PATCH: &str = "*** Begin Patch";
const END_PATCH: &str = "*** End Patch";
const ADD_FILE: &str = "*** Add File:";
const DELETE_FILE: &str = "*** Delete File:";
const UPDATE_FILE: &str = "*** Update File:";
const MOVE_TO: &str = "*** Move to:";
const END_OF_FILE: &str = "*** End of File";

const VALID_HEADERS: &str = "valid hunk headers are '*** Add File: <path>', '*** Delete File: <path>', '*** Update File: <path>'";
const VALID_CHUNK_LINES: &str = "every line of an update chunk starts with ' ' (context), '-' \
     (removed) or '+' (added); a new chunk starts with '@@' or '@@ <context line>'";

/// A parsed patch: file operations in the order they are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub hunks: Vec<Hunk>,
}

/// One file operation. Paths are as written in the patch (relative to the working directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hunk {
    /// Create (or overwrite) a file with `contents` (each `+` line plus a newline).
    Add { path: String, contents: String },
    /// Remove a file.
    Delete { path: String },
    /// Edit a file in place, optionally moving it to `move_to`.
    Update { path: String, move_to: Option<String>, chunks: Vec<UpdateChunk> },
}

impl Hunk {
    /// The path the hunk reads or removes (for a move, its source).
    pub fn path(&self) -> &str {
        match self {
            Self::Add { path, .. } | Self::Delete { path } | Self::Update { path, .. } => path,
        }
    }
}

/// One `@@` section of an Update: replace `old_lines` by `new_lines`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateChunk {
    /// The text after `@@ `: a line to seek before looking for `old_lines`.
    pub context: Option<String>,
    /// Context and removed lines, in file order.
    pub old_lines: Vec<String>,
    /// Context and added lines, in file order.
    pub new_lines: Vec<String>,
    /// `*** End of File` followed the chunk: `old_lines` are expected at the end of the file.
    pub is_end_of_file: bool,
}

/// Parses a whole patch. Line numbers in errors count lines of `text` from 1.
pub fn parse_patch(text: &str) -> Result<Patch, PatchError> {
    let body = envelope(text)?;
    let mut hunks = Vec::new();
    let mut rest: &[&str] = &body.lines;
    let mut line_no = body.first_line_no;
    while let Some(first) = rest.first() {
        if first.trim().is_empty() {
            rest = &rest[1..];
            line_no += 1;
            continue;
        }
        let (hunk, used) = parse_hunk(rest, line_no)?;
        hunks.push(hunk);
        rest = &rest[used..];
        line_no += used;
    }
    if hunks.is_empty() {
        return Err(PatchError::NoHunks);
    }
    Ok(Patch { hunks })
}

/// The lines between the markers and the patch line number of the first of them.
struct Body<'a> {
    lines: Vec<&'a str>,
    first_line_no: usize,
}

/// Finds the `*** Begin Patch` / `*** End Patch` envelope, unwrapping a heredoc if present.
fn envelope(text: &str) -> Result<Body<'_>, PatchError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(PatchError::InvalidPatch(
            "the patch is empty; it must start with '*** Begin Patch' and end with '*** End Patch'"
                .into(),
        ));
    }
    // Line numbers refer to the text as sent, so count the lines `trim` dropped.
    let leading = text.len() - text.trim_start().len();
    let skipped = text[..leading].matches('\n').count();
    let mut lines: Vec<&str> = trimmed.lines().collect();
    let mut first_line_no = skipped + 1;
    if let Some(inner) = heredoc_inner(&lines) {
        lines = inner.to_vec();
        first_line_no += 1;
    }
    let first = lines.first().map(|l| l.trim());
    if first != Some(BEGIN_PATCH) {
        return Err(PatchError::InvalidPatch(format!(
            "the first line of the patch must be '{BEGIN_PATCH}', got '{}'",
            first.unwrap_or_default()
        )));
    }
    if lines.len() < 2 || lines.last().map(|l| l.trim()) != Some(END_PATCH) {
        return Err(PatchError::InvalidPatch(format!(
            "the last line of the patch must be '{END_PATCH}' (was the patch cut off?)"
        )));
    }
    let inner = lines[1..lines.len() - 1].to_vec();
    Ok(Body { lines: inner, first_line_no: first_line_no + 1 })
}

/// `<<EOF`, `<<'EOF'`, `<<"EOF"` (any delimiter word, optionally after `apply_patch`) on the first
/// line and the delimiter alone on the last: the model passed a shell heredoc as literal text
/// (Codex's parser accepts the same, see its `ParseMode::Lenient`).
fn heredoc_inner<'s, 'a>(lines: &'s [&'a str]) -> Option<&'s [&'a str]> {
    let [first, inner @ .., last] = lines else { return None };
    let opener = first.trim();
    let opener = opener.strip_prefix("apply_patch").unwrap_or(opener).trim_start();
    let delimiter = opener.strip_prefix("<<")?.trim_start_matches('-').trim();
    let delimiter = ['\'', '"']
        .iter()
        .find_map(|q| delimiter.strip_prefix(*q).and_then(|d| d.strip_suffix(*q)))
        .unwrap_or(delimiter);
    let is_word =
        !delimiter.is_empty() && delimiter.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (is_word && last.trim() == delimiter).then_some(inner)
}

/// The path after a header marker, if `line` is that header.
fn header_path<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.trim().strip_prefix(marker).map(str::trim)
}

/// Whether `line` starts the next hunk (or is a stray end marker), ending the current one.
fn is_hunk_boundary(line: &str) -> bool {
    let t = line.trim();
    [ADD_FILE, DELETE_FILE, UPDATE_FILE].iter().any(|m| t.starts_with(m))
        || t == END_PATCH
        || t == BEGIN_PATCH
}

fn non_empty_path(path: &str, line: usize) -> Result<String, PatchError> {
    if path.is_empty() {
        return Err(PatchError::InvalidHunk {
            line,
            message: "the file path after the header is empty".into(),
        });
    }
    Ok(path.to_string())
}

/// Parses the hunk starting at `lines[0]` (patch line `line_no`); returns it and the lines used.
fn parse_hunk(lines: &[&str], line_no: usize) -> Result<(Hunk, usize), PatchError> {
    let header = lines[0];
    if let Some(path) = header_path(header, ADD_FILE) {
        let path = non_empty_path(path, line_no)?;
        let mut contents = String::new();
        let mut used = 1;
        while let Some(line) = lines.get(used) {
            if let Some(text) = line.strip_prefix('+') {
                contents.push_str(text);
            } else if line.is_empty() && next_non_empty_starts_with_plus(&lines[used..]) {
                // A model dropped the '+' of an empty line in the middle of the file.
            } else {
                break;
            }
            contents.push('\n');
            used += 1;
        }
        return Ok((Hunk::Add { path, contents }, used));
    }
    if let Some(path) = header_path(header, DELETE_FILE) {
        return Ok((Hunk::Delete { path: non_empty_path(path, line_no)? }, 1));
    }
    if let Some(path) = header_path(header, UPDATE_FILE) {
        let path = non_empty_path(path, line_no)?;
        let mut used = 1;
        let mut move_to = None;
        if let Some(dest) = lines.get(1).and_then(|l| header_path(l, MOVE_TO)) {
            move_to = Some(non_empty_path(dest, line_no + 1)?);
            used += 1;
        }
        let mut chunks = Vec::new();
        while let Some(line) = lines.get(used) {
            if line.trim().is_empty() {
                used += 1;
                continue;
            }
            if is_hunk_boundary(line) {
                break;
            }
            let (chunk, n) = parse_chunk(&lines[used..], line_no + used, chunks.is_empty())?;
            chunks.push(chunk);
            used += n;
        }
        if chunks.is_empty() {
            return Err(PatchError::InvalidHunk {
                line: line_no,
                message: format!(
                    "'*** Update File: {path}' has no changes; follow it with an '@@' chunk of \
                     ' ', '-' and '+' lines, or use '*** Delete File:' / '*** Add File:'"
                ),
            });
        }
        return Ok((Hunk::Update { path, move_to, chunks }, used));
    }
    Err(PatchError::InvalidHunk {
        line: line_no,
        message: format!("'{}' is not a valid hunk header; {VALID_HEADERS}", header.trim()),
    })
}

fn next_non_empty_starts_with_plus(lines: &[&str]) -> bool {
    lines.iter().find(|l| !l.is_empty()).is_some_and(|l| l.starts_with('+'))
}

/// `@@ -12,7 +12,8 @@` (optionally followed by text): a unified-diff header, which carries no
/// context line we could seek.
fn is_unified_range(context: &str) -> bool {
    let mut parts = context.split_whitespace();
    let range = |p: Option<&str>, sign: char| {
        p.and_then(|p| p.strip_prefix(sign)).is_some_and(|r| {
            !r.is_empty()
                && r.split(',').all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    range(parts.next(), '-') && range(parts.next(), '+') && parts.next() == Some("@@")
}

/// Parses one chunk at `lines[0]` (patch line `line_no`); `first` allows omitting `@@`.
fn parse_chunk(
    lines: &[&str],
    line_no: usize,
    first: bool,
) -> Result<(UpdateChunk, usize), PatchError> {
    let header = lines[0];
    let mut chunk = UpdateChunk::default();
    let start = if header.trim_end() == "@@" {
        1
    } else if let Some(context) = header.strip_prefix("@@ ") {
        if !is_unified_range(context) {
            chunk.context = Some(context.to_string());
        }
        1
    } else if first {
        0
    } else {
        return Err(PatchError::InvalidHunk {
            line: line_no,
            message: format!("unexpected line '{header}'; {VALID_CHUNK_LINES}"),
        });
    };
    let mut used = start;
    while let Some(line) = lines.get(used) {
        if line.trim() == END_OF_FILE {
            chunk.is_end_of_file = true;
            used += 1;
            break;
        }
        if is_hunk_boundary(line) || (used > start && line.starts_with("@@")) {
            break;
        }
        match line.chars().next() {
            None => {
                chunk.old_lines.push(String::new());
                chunk.new_lines.push(String::new());
            }
            Some(' ') => {
                chunk.old_lines.push(line[1..].to_string());
                chunk.new_lines.push(line[1..].to_string());
            }
            Some('-') => chunk.old_lines.push(line[1..].to_string()),
            Some('+') => chunk.new_lines.push(line[1..].to_string()),
            Some(_) if used == start => {
                return Err(PatchError::InvalidHunk {
                    line: line_no + used,
                    message: format!("unexpected line '{line}'; {VALID_CHUNK_LINES}"),
                });
            }
            // Not a chunk line: the caller decides whether it starts another chunk.
            Some(_) => break,
        }
        used += 1;
    }
    if chunk.old_lines.is_empty() && chunk.new_lines.is_empty() {
        return Err(PatchError::InvalidHunk {
            line: line_no,
            message: format!("this update chunk has no lines; {VALID_CHUNK_LINES}"),
        });
    }
    Ok((chunk, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn err(text: &str) -> String {
        parse_patch(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_hunk_kind() {
        let patch = parse_patch(
            "*** Begin Patch\n*** Add File: a/new.py\n+abc\n+def\n*** Delete File: old.py\n\
             *** Update File: u.py\n*** Move to: v.py\n@@ def f():\n-    pass\n+    return 1\n\
             *** End Patch\n",
        )
        .unwrap();
        assert_eq!(
            patch.hunks,
            vec![
                Hunk::Add { path: "a/new.py".into(), contents: "abc\ndef\n".into() },
                Hunk::Delete { path: "old.py".into() },
                Hunk::Update {
                    path: "u.py".into(),
                    move_to: Some("v.py".into()),
                    chunks: vec![UpdateChunk {
                        context: Some("def f():".into()),
                        old_lines: lines(&["    pass"]),
                        new_lines: lines(&["    return 1"]),
                        is_end_of_file: false,
                    }],
                },
            ]
        );
    }

    #[test]
    fn first_chunk_may_omit_the_header() {
        let patch =
            parse_patch("*** Begin Patch\n*** Update File: f\n import foo\n+bar\n*** End Patch")
                .unwrap();
        let Hunk::Update { chunks, .. } = &patch.hunks[0] else { panic!("not an update") };
        assert_eq!(chunks[0].old_lines, lines(&["import foo"]));
        assert_eq!(chunks[0].new_lines, lines(&["import foo", "bar"]));
    }

    #[test]
    fn several_chunks_and_end_of_file() {
        let patch = parse_patch(
            "*** Begin Patch\n*** Update File: f\n@@\n-a\n+b\n@@ ctx\n c\n\n+d\n*** End of File\n\
             *** Add File: g\n+x\n*** End Patch",
        )
        .unwrap();
        let Hunk::Update { chunks, .. } = &patch.hunks[0] else { panic!("not an update") };
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].context.as_deref(), Some("ctx"));
        assert_eq!(chunks[1].old_lines, lines(&["c", ""]));
        assert_eq!(chunks[1].new_lines, lines(&["c", "", "d"]));
        assert!(chunks[1].is_end_of_file);
        assert_eq!(patch.hunks[1], Hunk::Add { path: "g".into(), contents: "x\n".into() });
    }

    #[test]
    fn lenient_envelopes() {
        let cases = [
            " *** Begin Patch\n*** Delete File: a\n*** End Patch ",
            "\n\n*** Begin Patch  \r\n*** Delete File: a\r\n  *** End Patch\r\n",
            "<<'EOF'\n*** Begin Patch\n*** Delete File: a\n*** End Patch\nEOF\n",
            "<<EOF\n*** Begin Patch\n*** Delete File: a\n*** End Patch\nEOF",
            "apply_patch <<\"PATCH\"\n*** Begin Patch\n*** Delete File: a\n*** End Patch\nPATCH\n",
            "*** Begin Patch\n\n  *** Delete File:a\n\n*** End Patch",
        ];
        for case in cases {
            let patch = parse_patch(case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
            assert_eq!(patch.hunks, vec![Hunk::Delete { path: "a".into() }], "{case:?}");
        }
    }

    #[test]
    fn unified_range_header_is_a_bare_marker() {
        let patch = parse_patch(
            "*** Begin Patch\n*** Update File: f\n@@ -1,2 +1,2 @@\n-a\n+b\n*** End Patch",
        )
        .unwrap();
        let Hunk::Update { chunks, .. } = &patch.hunks[0] else { panic!("not an update") };
        assert_eq!(chunks[0].context, None);
        assert!(is_unified_range("-3 +3,2 @@ fn main()"));
        assert!(!is_unified_range("fn main() -> Result<()>"));
    }

    #[test]
    fn empty_line_inside_add_file_is_kept() {
        let patch =
            parse_patch("*** Begin Patch\n*** Add File: f\n+a\n\n+b\n\n*** End Patch").unwrap();
        assert_eq!(patch.hunks[0], Hunk::Add { path: "f".into(), contents: "a\n\nb\n".into() });
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(
            err("bad"),
            "invalid patch: the first line of the patch must be '*** Begin Patch', got 'bad'"
        );
        assert!(err("*** Begin Patch\n*** Delete File: a").contains("must be '*** End Patch'"));
        assert!(err("").contains("the patch is empty"));
        assert!(err("*** Begin Patch\n*** End Patch").contains("no file operations"));
    }

    #[test]
    fn hunk_errors_name_the_line_and_what_is_valid() {
        assert_eq!(
            err("*** Begin Patch\n*** Frobnicate File: foo\n*** End Patch"),
            format!(
                "invalid patch, line 2: '*** Frobnicate File: foo' is not a valid hunk header; \
                 {VALID_HEADERS}"
            )
        );
        // Line numbers count the leading blank lines and the heredoc opener.
        assert!(
            err("\n<<EOF\n*** Begin Patch\n\nnope\n*** End Patch\nEOF")
                .starts_with("invalid patch, line 5: 'nope' is not a valid hunk header")
        );
        let empty_update = err("*** Begin Patch\n*** Update File: foo.txt\n*** End Patch");
        assert!(
            empty_update
                .starts_with("invalid patch, line 2: '*** Update File: foo.txt' has no changes")
        );
        let bad_line = err("*** Begin Patch\n*** Update File: f\n@@\nxyz\n*** End Patch");
        assert!(bad_line.starts_with("invalid patch, line 4: unexpected line 'xyz'"), "{bad_line}");
        let second = err("*** Begin Patch\n*** Update File: f\n-a\n+b\nxyz\n*** End Patch");
        assert!(second.starts_with("invalid patch, line 5: unexpected line 'xyz'"), "{second}");
        assert!(
            err("*** Begin Patch\n*** Add File: \n+x\n*** End Patch")
                .contains("path after the header is empty")
        );
        let eof_only =
            err("*** Begin Patch\n*** Update File: f\n@@\n*** End of File\n*** End Patch");
        assert!(eof_only.contains("this update chunk has no lines"), "{eof_only}");
    }
}
