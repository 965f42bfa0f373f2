//! The diff as a reviewer reads it. [`parse`] turns the text of `git diff --binary
//! --find-renames` (what `GET /api/attempts/{id}/diff` returns) into files, hunks and numbered
//! lines; [`render`] writes them as HTML tables, unified or side by side; [`final_text`] rebuilds
//! a file after the diff from its base content.
//!
//! The diff comes from an agent working in a repository that may be hostile. So parsing is one
//! pass over the lines that never panics: garbage lines are skipped, and a hunk's line counts are
//! believed only as far as its lines agree (a removed line reading `--- a/x` is still a removed
//! line; a `diff --git` line always starts a new file). Every path, line and hunk section reaches
//! the page escaped, through [`text_into`], and the HTML has no inline styles, event handlers or
//! scripts.
//!
//! # CSS classes
//! - `details.file`: one file, `open` unless its diff has more than [`LARGE_DIFF_LINES`] lines;
//!   its id is `file-` + [`id_fragment`] of [`FileDiff::path`] (a later file with the same path,
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

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use super::highlight::{Highlighter, Language, text_into};
use super::html::id_fragment;

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

/// Parses `git diff` output. Never fails: what it cannot read it skips.
pub fn parse(diff: &str) -> Vec<FileDiff> {
    let mut parser = Parser::default();
    // A final newline ends the last line; it does not start an empty one.
    for line in diff.strip_suffix('\n').unwrap_or(diff).split('\n') {
        parser.line(line);
    }
    parser.finish_file();
    parser.files
}

#[derive(Default)]
struct Parser {
    files: Vec<FileDiff>,
    file: Option<FileDiff>,
    /// Lines the current hunk's header promises on each side, not yet seen.
    old_left: u64,
    new_left: u64,
    /// The next line numbers on each side.
    old_no: u64,
    new_no: u64,
    /// The previous line was a hunk line, so a `\` line applies to it.
    after_hunk_line: bool,
    /// Inside a `GIT binary patch` payload, skipped up to the next `diff --git`.
    in_binary_patch: bool,
    renamed: bool,
    copied: bool,
}

impl Parser {
    fn line(&mut self, raw: &str) {
        let after_hunk_line = std::mem::take(&mut self.after_hunk_line);
        if let Some(rest) = raw.strip_prefix("diff --git ") {
            self.finish_file();
            let (old_path, new_path) = header_paths(rest.trim_end_matches('\r'));
            self.file = Some(FileDiff { old_path, new_path, ..FileDiff::default() });
            return;
        }
        if self.in_binary_patch {
            return;
        }
        if self.hunk_line(raw) {
            self.after_hunk_line = true;
            return;
        }
        let line = raw.trim_end_matches('\r');
        if line.starts_with('\\') {
            if after_hunk_line && let Some(last) = self.last_line() {
                last.no_newline = true;
            }
            return;
        }
        if let Some(rest) = line.strip_prefix("@@ -") {
            self.hunk_header(rest);
            return;
        }
        if line.starts_with("--- ") && self.file.as_ref().is_none_or(|file| !file.hunks.is_empty())
        {
            // A plain unified diff (no `diff --git` lines): each file starts at its `---`.
            self.finish_file();
            self.file = Some(FileDiff::default());
        }
        let Some(file) = self.file.as_mut() else { return };
        if !file.hunks.is_empty() {
            return;
        }
        // The extended header, between `diff --git` and the first hunk (git-diff(1)).
        if let Some(path) = line.strip_prefix("--- ") {
            file.old_path = side_path(path);
        } else if let Some(path) = line.strip_prefix("+++ ") {
            file.new_path = side_path(path);
        } else if let Some(mode) = line.strip_prefix("old mode ") {
            file.old_mode = Some(mode.to_owned());
        } else if let Some(mode) = line.strip_prefix("new mode ") {
            file.new_mode = Some(mode.to_owned());
        } else if let Some(mode) = line.strip_prefix("new file mode ") {
            file.old_path = None;
            file.new_mode = Some(mode.to_owned());
        } else if let Some(mode) = line.strip_prefix("deleted file mode ") {
            file.new_path = None;
            file.old_mode = Some(mode.to_owned());
        } else if let Some(path) = line.strip_prefix("rename from ") {
            file.old_path = Some(unquote_path(path));
            self.renamed = true;
        } else if let Some(path) = line.strip_prefix("rename to ") {
            file.new_path = Some(unquote_path(path));
            self.renamed = true;
        } else if let Some(path) = line.strip_prefix("copy from ") {
            file.old_path = Some(unquote_path(path));
            self.copied = true;
        } else if let Some(path) = line.strip_prefix("copy to ") {
            file.new_path = Some(unquote_path(path));
            self.copied = true;
        } else if let Some(percent) = line.strip_prefix("similarity index ") {
            file.similarity = percent.trim_end_matches('%').parse().ok();
        } else if line.starts_with("Binary files ") && line.ends_with(" differ") {
            file.binary = true;
        } else if line == "GIT binary patch" {
            file.binary = true;
            // Base85 lines never contain a space, so `diff --git ` cannot hide among them.
            self.in_binary_patch = true;
        }
    }

    /// Takes `raw` as a line of the open hunk if the hunk still expects one of its kind.
    fn hunk_line(&mut self, raw: &str) -> bool {
        if self.old_left == 0 && self.new_left == 0 {
            return false;
        }
        let (kind, text) = match raw.as_bytes().first() {
            Some(b' ') if self.old_left > 0 && self.new_left > 0 => (LineKind::Context, &raw[1..]),
            // Some tools strip the space of an empty context line; `git apply` accepts that too.
            None if self.old_left > 0 && self.new_left > 0 => (LineKind::Context, ""),
            Some(b'-') if self.old_left > 0 => (LineKind::Removed, &raw[1..]),
            Some(b'+') if self.new_left > 0 => (LineKind::Added, &raw[1..]),
            // `\ No newline at end of file` can come mid-hunk, after the old side's last line.
            Some(b'\\') => return false,
            _ => {
                // The hunk ends short of its header's counts; the line is read as a header.
                self.old_left = 0;
                self.new_left = 0;
                return false;
            }
        };
        let (old_no, new_no) = match kind {
            LineKind::Context => (Some(self.old_no), Some(self.new_no)),
            LineKind::Removed => (Some(self.old_no), None),
            LineKind::Added => (None, Some(self.new_no)),
        };
        if old_no.is_some() {
            self.old_left -= 1;
            self.old_no = self.old_no.saturating_add(1);
        }
        if new_no.is_some() {
            self.new_left -= 1;
            self.new_no = self.new_no.saturating_add(1);
        }
        let Some(file) = self.file.as_mut() else { return false };
        let Some(hunk) = file.hunks.last_mut() else { return false };
        match kind {
            LineKind::Added => file.insertions += 1,
            LineKind::Removed => file.deletions += 1,
            LineKind::Context => {}
        }
        hunk.lines.push(DiffLine {
            kind,
            text: text.to_owned(),
            old_no,
            new_no,
            no_newline: false,
        });
        true
    }

    /// `-l[,s] +l[,s] @@ section` (the `@@ -` already read). A count left out is 1.
    fn hunk_header(&mut self, rest: &str) {
        let Some(file) = self.file.as_mut() else { return };
        let Some((old, rest)) = rest.split_once(" +") else { return };
        let Some((new, rest)) = rest.split_once(" @@") else { return };
        let range = |text: &str| -> Option<(u64, u64)> {
            match text.split_once(',') {
                Some((start, len)) => Some((start.parse().ok()?, len.parse().ok()?)),
                None => Some((text.parse().ok()?, 1)),
            }
        };
        let (Some((old_start, old_len)), Some((new_start, new_len))) = (range(old), range(new))
        else {
            return;
        };
        let section = rest.strip_prefix(' ').unwrap_or(rest).to_owned();
        file.hunks.push(Hunk {
            old_start,
            old_len,
            new_start,
            new_len,
            section,
            lines: Vec::new(),
        });
        (self.old_left, self.new_left) = (old_len, new_len);
        (self.old_no, self.new_no) = (old_start, new_start);
    }

    fn last_line(&mut self) -> Option<&mut DiffLine> {
        self.file.as_mut()?.hunks.last_mut()?.lines.last_mut()
    }

    fn finish_file(&mut self) {
        let (renamed, copied) = (self.renamed, self.copied);
        (self.old_left, self.new_left) = (0, 0);
        (self.renamed, self.copied, self.in_binary_patch) = (false, false, false);
        let Some(mut file) = self.file.take() else { return };
        if file.old_path.is_none()
            && file.new_path.is_none()
            && file.hunks.is_empty()
            && !file.binary
        {
            return; // a `diff --git` line with no readable paths and nothing after it
        }
        file.status = match (&file.old_path, &file.new_path) {
            (None, Some(_)) => FileStatus::Added,
            (Some(_), None) => FileStatus::Deleted,
            _ if copied => FileStatus::Copied,
            (old, new) if renamed || old != new => FileStatus::Renamed,
            _ if file.hunks.is_empty()
                && !file.binary
                && file.old_mode.is_some()
                && file.old_mode != file.new_mode =>
            {
                FileStatus::ModeChanged
            }
            _ => FileStatus::Modified,
        };
        self.files.push(file);
    }
}

/// The two paths of `diff --git a/old b/new`, without their `a/` and `b/`. Unquoted paths with
/// spaces are ambiguous; git's own rule applies (the two names are the same unless this is a
/// rename, which also has `rename from/to` lines that override these).
fn header_paths(rest: &str) -> (Option<String>, Option<String>) {
    let (old, new) = if rest.starts_with('"') {
        let (old, after) = unquote(rest);
        (old, after.trim_start().to_owned())
    } else if let Some(at) = rest.find(" \"") {
        // Unquoted names contain no `"`, and quoted ones escape theirs: the first ` "` splits.
        (rest[..at].to_owned(), rest[at + 1..].to_owned())
    } else {
        let half = rest.len().saturating_sub(1) / 2;
        let same = rest.is_char_boundary(half)
            && rest.len() % 2 == 1
            && rest[half..].starts_with(' ')
            && rest[..half].get(2..) == rest[half + 1..].get(2..);
        match (same, rest.find(" b/")) {
            (true, _) => (rest[..half].to_owned(), rest[half + 1..].to_owned()),
            (false, Some(at)) => (rest[..at].to_owned(), rest[at + 1..].to_owned()),
            (false, None) => return (None, None),
        }
    };
    let new = if new.starts_with('"') { unquote(&new).0 } else { new };
    (Some(strip_side_prefix(&old)), Some(strip_side_prefix(&new)))
}

/// The path of a `---`/`+++` line: `None` for `/dev/null`; a trailing tab (git adds one after a
/// name with a space, GNU diff a timestamp after a tab) ends an unquoted name.
fn side_path(text: &str) -> Option<String> {
    let path = if text.starts_with('"') {
        unquote(text).0
    } else {
        text.split('\t').next().unwrap_or_default().to_owned()
    };
    (path != "/dev/null").then(|| strip_side_prefix(&path))
}

fn strip_side_prefix(path: &str) -> String {
    path.strip_prefix("a/").or_else(|| path.strip_prefix("b/")).unwrap_or(path).to_owned()
}

/// A `rename from`/`copy to` path: quoted or as is, no prefix.
fn unquote_path(text: &str) -> String {
    if text.starts_with('"') { unquote(text).0 } else { text.to_owned() }
}

/// Reads a C-quoted name (git's `quote_c_style`: `\"`, `\\`, `\t`, `\n`…, and `\ooo` octal for
/// each byte of a non-ASCII or control character) at the start of `text`, returning it and what
/// follows its closing quote. Bytes that are not UTF-8 become U+FFFD.
fn unquote(text: &str) -> (String, &str) {
    let bytes = text.as_bytes();
    let mut name = Vec::with_capacity(bytes.len());
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return (String::from_utf8_lossy(&name).into_owned(), &text[i + 1..]),
            b'\\' if i + 1 < bytes.len() => {
                let escaped = bytes[i + 1];
                i += 2;
                let byte = match escaped {
                    b'a' => 7,
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'v' => 11,
                    b'f' => 12,
                    b'r' => b'\r',
                    b'0'..=b'3' => {
                        let digits =
                            bytes[i..].iter().take(2).take_while(|c| matches!(c, b'0'..=b'7'));
                        let value = digits.fold(u32::from(escaped - b'0'), |value, &digit| {
                            i += 1;
                            value * 8 + u32::from(digit - b'0')
                        });
                        // At most 0o377: three octal digits starting 0..=3.
                        value as u8
                    }
                    other => other,
                };
                name.push(byte);
            }
            byte => {
                name.push(byte);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&name).into_owned(), "")
}

/// How [`render`] lays out lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffView {
    /// One column: removed lines above the added lines that replace them.
    Unified,
    /// Old on the left, new on the right, changed lines side by side.
    Split,
}

/// Appends the HTML of `files` (see the module doc for its classes) to `out`.
pub fn render(files: &[FileDiff], view: DiffView, out: &mut String) {
    let mut ids = HashSet::new();
    for file in files {
        let base = id_fragment(file.path());
        let mut id = base.clone();
        let mut n = 1;
        while !ids.insert(id.clone()) {
            n += 1;
            id = format!("{base}..{n}");
        }
        render_file(file, view, &id, out);
    }
}

fn render_file(file: &FileDiff, view: DiffView, id: &str, out: &mut String) {
    let large = file.line_count() > LARGE_DIFF_LINES;
    let _ = write!(
        out,
        "<details class=\"file\"{} id=\"file-{id}\"><summary>",
        if large { "" } else { " open" }
    );
    out.push_str("<span class=\"path\">");
    match (&file.old_path, &file.new_path) {
        (Some(old), Some(new)) if old != new => {
            text_into(out, old);
            out.push_str(" → ");
            text_into(out, new);
        }
        _ => text_into(out, file.path()),
    }
    let status = file.status.label();
    let _ = write!(out, "</span> <span class=\"status status-{status}\">{status}");
    if let Some(percent) = file.similarity.filter(|_| file.old_path != file.new_path) {
        let _ = write!(out, " {percent}%");
    }
    let _ = write!(
        out,
        "</span> <span class=\"stat\"><span class=\"ins\">+{}</span> <span class=\"del\">−{}</span></span>",
        file.insertions, file.deletions
    );
    if large {
        out.push_str(" <span class=\"note\">large diff</span>");
    }
    out.push_str("</summary>");
    if let (Some(old), Some(new)) = (&file.old_mode, &file.new_mode)
        && old != new
    {
        out.push_str("<p class=\"note\">mode ");
        text_into(out, old);
        out.push_str(" → ");
        text_into(out, new);
        out.push_str("</p>");
    }
    if file.binary {
        out.push_str("<p class=\"note\">binary file, not shown</p>");
    } else if file.hunks.is_empty() {
        let note = match file.status {
            FileStatus::Added | FileStatus::Deleted => "empty file",
            _ => "no content changes",
        };
        let _ = write!(out, "<p class=\"note\">{note}</p>");
    } else {
        let lang = Language::from_path(file.path());
        let table = match view {
            DiffView::Unified => "unified",
            DiffView::Split => "split",
        };
        let _ = write!(out, "<table class=\"diff {table}\"><tbody>");
        for hunk in &file.hunks {
            hunk_header_row(hunk, out);
            let code = HunkCode::new(lang, hunk);
            match view {
                DiffView::Unified => unified_rows(hunk, &code, out),
                DiffView::Split => split_rows(hunk, &code, out),
            }
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</details>\n");
}

fn hunk_header_row(hunk: &Hunk, out: &mut String) {
    // As git writes it: a count of 1 is left out.
    let range = |start: u64, len: u64| {
        if len == 1 { start.to_string() } else { format!("{start},{len}") }
    };
    let _ = write!(
        out,
        "<tr class=\"hunk\"><td class=\"hunk\" colspan=\"4\">@@ -{} +{} @@",
        range(hunk.old_start, hunk.old_len),
        range(hunk.new_start, hunk.new_len)
    );
    if !hunk.section.is_empty() {
        out.push_str(" <span class=\"section\">");
        text_into(out, &hunk.section);
        out.push_str("</span>");
    }
    out.push_str("</td></tr>");
}

/// A hunk's lines highlighted as each side reads them: the old side is its context and removed
/// lines in order, the new side its context and added lines, each with its own state (a string
/// opened in a removed line does not colour the added lines).
struct HunkCode {
    old: Vec<String>,
    new: Vec<String>,
}

impl HunkCode {
    fn new(lang: Language, hunk: &Hunk) -> Self {
        let (mut old_side, mut new_side) = (Highlighter::new(lang), Highlighter::new(lang));
        let mut code = HunkCode { old: Vec::new(), new: Vec::new() };
        for line in &hunk.lines {
            let (mut old, mut new) = (String::new(), String::new());
            if line.kind != LineKind::Added {
                old_side.line(&line.text, &mut old);
            }
            if line.kind != LineKind::Removed {
                new_side.line(&line.text, &mut new);
            }
            code.old.push(old);
            code.new.push(new);
        }
        code
    }

    /// The HTML of line `i` on the side it shows on (the new side for context).
    fn of(&self, line: &DiffLine, i: usize) -> &str {
        if line.kind == LineKind::Removed { &self.old[i] } else { &self.new[i] }
    }
}

fn number_cell(out: &mut String, class: &str, number: Option<u64>) {
    match number {
        Some(n) => {
            let _ = write!(out, "<td class=\"{class}\" data-line=\"{n}\">{n}</td>");
        }
        None => {
            let _ = write!(out, "<td class=\"{class}\"></td>");
        }
    }
}

fn code_cell(out: &mut String, class: &str, html: &str, no_newline: bool) {
    let _ = write!(out, "<td class=\"{class}\">{html}");
    if no_newline {
        out.push_str("<span class=\"nonl\">No newline at end of file</span>");
    }
    out.push_str("</td>");
}

fn kind_class(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Context => "ctx",
        LineKind::Added => "add",
        LineKind::Removed => "del",
    }
}

fn unified_rows(hunk: &Hunk, code: &HunkCode, out: &mut String) {
    for (i, line) in hunk.lines.iter().enumerate() {
        let (class, mark) = match line.kind {
            LineKind::Context => ("ctx", " "),
            LineKind::Added => ("add", "+"),
            LineKind::Removed => ("del", "−"),
        };
        let _ = write!(out, "<tr class=\"{class}\">");
        number_cell(out, "ln", line.old_no);
        number_cell(out, "ln", line.new_no);
        let _ = write!(out, "<td class=\"mark\">{mark}</td>");
        code_cell(out, "code", code.of(line, i), line.no_newline);
        out.push_str("</tr>");
    }
}

fn split_rows(hunk: &Hunk, code: &HunkCode, out: &mut String) {
    let lines = &hunk.lines;
    let mut i = 0;
    while i < lines.len() {
        if lines[i].kind == LineKind::Context {
            split_row(
                out,
                Some((&lines[i], code.old[i].as_str())),
                Some((&lines[i], code.new[i].as_str())),
            );
            i += 1;
            continue;
        }
        // A run of changed lines: the k-th removed line beside the k-th added one.
        let end = lines[i..]
            .iter()
            .position(|line| line.kind == LineKind::Context)
            .map_or(lines.len(), |at| i + at);
        let removed: Vec<usize> =
            (i..end).filter(|&j| lines[j].kind == LineKind::Removed).collect();
        let added: Vec<usize> = (i..end).filter(|&j| lines[j].kind == LineKind::Added).collect();
        for row in 0..removed.len().max(added.len()) {
            let left = removed.get(row).map(|&j| (&lines[j], code.old[j].as_str()));
            let right = added.get(row).map(|&j| (&lines[j], code.new[j].as_str()));
            split_row(out, left, right);
        }
        i = end;
    }
}

fn split_row(out: &mut String, left: Option<(&DiffLine, &str)>, right: Option<(&DiffLine, &str)>) {
    out.push_str("<tr class=\"line\">");
    for (side, number) in [
        (left, left.and_then(|(line, _)| line.old_no)),
        (right, right.and_then(|(line, _)| line.new_no)),
    ] {
        match side {
            Some((line, html)) => {
                let class = kind_class(line.kind);
                number_cell(out, &format!("ln {class}"), number);
                code_cell(out, &format!("code {class}"), html, line.no_newline);
            }
            None => out.push_str("<td class=\"ln empty\"></td><td class=\"code empty\"></td>"),
        }
    }
    out.push_str("</tr>");
}

/// Why [`final_text`] could not rebuild a file. Hunks are numbered from 1, as a reviewer
/// counts them on the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// A binary diff has no lines to apply.
    Binary,
    /// The hunk starts before the previous one ends or past the end of the base.
    Position { hunk: usize },
    /// A context or removed line of the hunk differs from the base at `old_line`.
    Mismatch { hunk: usize, old_line: u64 },
    /// The hunk's lines disagree with the counts in its header, or a line marked
    /// `\ No newline at end of file` is not the last of its side.
    Malformed { hunk: usize },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Binary => write!(f, "the file is binary; its diff has no lines to apply"),
            ApplyError::Position { hunk } => write!(
                f,
                "hunk {hunk} starts before the previous hunk ends or past the end of the file; \
                 the diff was not made from this base"
            ),
            ApplyError::Mismatch { hunk, old_line } => write!(
                f,
                "hunk {hunk} does not match line {old_line} of the base; the diff was not made \
                 from this base"
            ),
            ApplyError::Malformed { hunk } => write!(
                f,
                "hunk {hunk} is malformed: its lines disagree with its header, or a line \
                 without a final newline is not the last one"
            ),
        }
    }
}

impl std::error::Error for ApplyError {}

/// The file after the diff, from `base`, its content before (empty for an added file). Each
/// hunk applies at its recorded position, its context and removed lines checked against the
/// base; "No newline at end of file" marks must agree with the base and decide whether the
/// result ends with a newline.
pub fn final_text(base: &str, file: &FileDiff) -> Result<String, ApplyError> {
    if file.binary {
        return Err(ApplyError::Binary);
    }
    let mut lines: Vec<&str> = base.split('\n').collect();
    // `split` leaves an empty piece after a final newline (or for an empty base): not a line.
    let base_unterminated = !base.is_empty() && !base.ends_with('\n');
    if !base_unterminated {
        lines.pop();
    }
    let mut out = Output { text: String::with_capacity(base.len()), unterminated: false };
    let mut next = 0; // the first base line not yet copied or consumed
    for (index, hunk) in file.hunks.iter().enumerate() {
        let number = index + 1;
        let malformed = ApplyError::Malformed { hunk: number };
        let old_count = hunk.lines.iter().filter(|line| line.kind != LineKind::Added).count();
        let new_count = hunk.lines.iter().filter(|line| line.kind != LineKind::Removed).count();
        if old_count as u64 != hunk.old_len || new_count as u64 != hunk.new_len {
            return Err(malformed);
        }
        // An empty old side (`-5,0`) means "after line 5"; otherwise the first line is 5.
        let start =
            if hunk.old_len == 0 { Some(hunk.old_start) } else { hunk.old_start.checked_sub(1) };
        let start = start.and_then(|start| usize::try_from(start).ok());
        let Some(start) = start.filter(|&start| start >= next && start <= lines.len()) else {
            return Err(ApplyError::Position { hunk: number });
        };
        for (at, line) in lines.iter().enumerate().take(start).skip(next) {
            let unterminated = base_unterminated && at + 1 == lines.len();
            out.push(line, unterminated).map_err(|()| malformed.clone())?;
        }
        let mut at = start;
        for line in &hunk.lines {
            if line.kind != LineKind::Added {
                let base_line_unterminated = base_unterminated && at + 1 == lines.len();
                if lines.get(at) != Some(&line.text.as_str())
                    || line.no_newline != base_line_unterminated
                {
                    return Err(ApplyError::Mismatch { hunk: number, old_line: at as u64 + 1 });
                }
                at += 1;
            }
            if line.kind != LineKind::Removed {
                out.push(&line.text, line.no_newline).map_err(|()| malformed.clone())?;
            }
        }
        next = at;
    }
    let last_hunk = ApplyError::Malformed { hunk: file.hunks.len() };
    for (at, line) in lines.iter().enumerate().skip(next) {
        let unterminated = base_unterminated && at + 1 == lines.len();
        out.push(line, unterminated).map_err(|()| last_hunk.clone())?;
    }
    Ok(out.text)
}

/// The rebuilt file: lines end with a newline except one marked unterminated, which must be last.
struct Output {
    text: String,
    unterminated: bool,
}

impl Output {
    fn push(&mut self, line: &str, unterminated: bool) -> Result<(), ()> {
        if self.unterminated {
            return Err(());
        }
        self.text.push_str(line);
        if unterminated {
            self.unterminated = true;
        } else {
            self.text.push('\n');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per file: what a reviewer sees in its summary.
    fn summary(files: &[FileDiff]) -> Vec<String> {
        files
            .iter()
            .map(|f| {
                let modes = match (&f.old_mode, &f.new_mode) {
                    (None, None) => String::new(),
                    (old, new) => format!(" mode {old:?}->{new:?}"),
                };
                let similarity = f.similarity.map(|s| format!(" {s}%")).unwrap_or_default();
                format!(
                    "{:?} {:?} -> {:?} +{} -{} hunks={}{}{}{modes}{similarity}",
                    f.status,
                    f.old_path.as_deref().unwrap_or("-"),
                    f.new_path.as_deref().unwrap_or("-"),
                    f.insertions,
                    f.deletions,
                    f.hunks.len(),
                    if f.binary { " binary" } else { "" },
                    ""
                )
            })
            .collect()
    }

    const GIT_BINARY: &str = "diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000000000000000000000000000000000000..5d1c8e0b0e2f
GIT binary patch
literal 12
Tc${NkU|?WiVE6x@fq?-44ul1k
-c${NkU|?Wi
+c${NkU|?Wi

literal 0
HcmV?d00001

diff --git a/next.txt b/next.txt
index 1111111..2222222 100644
--- a/next.txt
+++ b/next.txt
@@ -1 +1 @@
-a
+b
";

    #[test]
    fn parses_every_kind_of_file_section() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("nothing", "", &[]),
            ("garbage", "hello\n@@ nonsense\n+++\n-x\ndiff --git \nindex 1..2\n", &[]),
            (
                "modified, two hunks",
                "diff --git a/src/lib.rs b/src/lib.rs\nindex 83db48f..bf269f4 100644\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,4 @@\n fn a() {}\n-fn b() {}\n+fn b() { 1 }\n+fn c() {}\n fn d() {}\n@@ -10,2 +11,2 @@ impl X\n x\n-y\n+z\n",
                &[r#"Modified "src/lib.rs" -> "src/lib.rs" +3 -2 hunks=2"#],
            ),
            (
                "added",
                "diff --git a/new.txt b/new.txt\nnew file mode 100644\nindex 0000000..3b18e51\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n",
                &[r#"Added "-" -> "new.txt" +2 -0 hunks=1 mode None->Some("100644")"#],
            ),
            (
                "deleted, no final newline",
                "diff --git a/old.txt b/old.txt\ndeleted file mode 100644\nindex 3b18e51..0000000\n--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-hello\n\\ No newline at end of file\n",
                &[r#"Deleted "old.txt" -> "-" +0 -1 hunks=1 mode Some("100644")->None"#],
            ),
            (
                "empty file added: no hunks, the path from the header",
                "diff --git a/my file.txt b/my file.txt\nnew file mode 100644\nindex 0000000..e69de29\n",
                &[r#"Added "-" -> "my file.txt" +0 -0 hunks=0 mode None->Some("100644")"#],
            ),
            (
                "a name that contains ' b/'",
                "diff --git a/x b/y b/x b/y\nold mode 100644\nnew mode 100755\n",
                &[
                    r#"ModeChanged "x b/y" -> "x b/y" +0 -0 hunks=0 mode Some("100644")->Some("100755")"#,
                ],
            ),
            (
                "pure rename",
                "diff --git a/a.rs b/b.rs\nsimilarity index 100%\nrename from a.rs\nrename to b.rs\n",
                &[r#"Renamed "a.rs" -> "b.rs" +0 -0 hunks=0 100%"#],
            ),
            (
                "rename with spaces and changes",
                "diff --git a/my dir/a b.rs b/my dir/c d.rs\nsimilarity index 90%\nrename from my dir/a b.rs\nrename to my dir/c d.rs\nindex 1..2 100644\n--- a/my dir/a b.rs\t\n+++ b/my dir/c d.rs\t\n@@ -1 +1 @@\n-x\n+y\n",
                &[r#"Renamed "my dir/a b.rs" -> "my dir/c d.rs" +1 -1 hunks=1 90%"#],
            ),
            (
                "copy",
                "diff --git a/a.rs b/b.rs\nsimilarity index 100%\ncopy from a.rs\ncopy to b.rs\n",
                &[r#"Copied "a.rs" -> "b.rs" +0 -0 hunks=0 100%"#],
            ),
            (
                "quoted octal UTF-8",
                "diff --git \"a/caf\\303\\251.txt\" \"b/caf\\303\\251.txt\"\nnew file mode 100644\nindex 0000000..e69de29\n",
                &[r#"Added "-" -> "café.txt" +0 -0 hunks=0 mode None->Some("100644")"#],
            ),
            (
                "quoted escapes on ---/+++ and in a rename",
                "diff --git a/x \"b/tab\\there\\\".txt\"\nsimilarity index 50%\nrename from x\nrename to \"tab\\there\\\".txt\"\n--- a/x\n+++ \"b/tab\\there\\\".txt\"\n@@ -1 +1 @@\n-a\n+b\n",
                &["Renamed \"x\" -> \"tab\\there\\\".txt\" +1 -1 hunks=1 50%"],
            ),
            (
                "not UTF-8 after unquoting",
                "diff --git \"a/\\377.bin\" \"b/\\377.bin\"\nindex 1..2 100644\nBinary files \"a/\\377.bin\" and \"b/\\377.bin\" differ\n",
                &["Modified \"\u{fffd}.bin\" -> \"\u{fffd}.bin\" +0 -0 hunks=0 binary"],
            ),
            (
                "git binary patch, payload skipped",
                GIT_BINARY,
                &[
                    r#"Added "-" -> "logo.png" +0 -0 hunks=0 binary mode None->Some("100644")"#,
                    r#"Modified "next.txt" -> "next.txt" +1 -1 hunks=1"#,
                ],
            ),
            (
                "hunk lines that look like headers",
                "diff --git a/x.md b/x.md\n--- a/x.md\n+++ b/x.md\n@@ -1,3 +1,3 @@\n--- a/x\n-diff\n diff --git a/q b/q\n+++ b/y\n+@@ -1 +1 @@\n",
                &[r#"Modified "x.md" -> "x.md" +2 -2 hunks=1"#],
            ),
            (
                "plain unified diff without diff --git",
                "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n--- a/y\t2024-01-01\n+++ b/y\t2024-01-02\n@@ -1 +1 @@\n-c\n+d\n",
                &[r#"Modified "x" -> "x" +1 -1 hunks=1"#, r#"Modified "y" -> "y" +1 -1 hunks=1"#],
            ),
            (
                "a hunk shorter than its header, then the next file",
                "diff --git a/a b/a\n@@ -1,99999999999 +1,99999999999 @@\n-x\ndiff --git a/b b/b\n@@ -18446744073709551615,2 +1 @@\n-y\n-z\n+w\n@@ -99999999999999999999 +1 @@\n-ignored\n",
                &[r#"Modified "a" -> "a" +0 -1 hunks=1"#, r#"Modified "b" -> "b" +1 -2 hunks=1"#],
            ),
            (
                "mode and content",
                "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\nindex 1..2\n--- a/run.sh\n+++ b/run.sh\n@@ -1 +1,2 @@\n x\n+y\n",
                &[
                    r#"Modified "run.sh" -> "run.sh" +1 -0 hunks=1 mode Some("100644")->Some("100755")"#,
                ],
            ),
        ];
        for (name, diff, want) in cases {
            assert_eq!(summary(&parse(diff)), *want, "{name}");
        }
    }

    #[test]
    fn numbers_lines_and_keeps_their_text() {
        let diff = "diff --git a/w.txt b/w.txt\n--- a/w.txt\n+++ b/w.txt\n@@ -3,4 +3,4 @@ fn main() {\n a\r\n-b\n\\ No newline at end of file\n+b\n+--- c\n \n-x\n";
        let files = parse(diff);
        let hunk = &files[0].hunks[0];
        assert_eq!((hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len), (3, 4, 3, 4));
        assert_eq!(hunk.section, "fn main() {");
        let lines: Vec<_> = hunk
            .lines
            .iter()
            .map(|l| (l.kind, l.text.as_str(), l.old_no, l.new_no, l.no_newline))
            .collect();
        use LineKind::*;
        assert_eq!(
            lines,
            [
                (Context, "a\r", Some(3), Some(3), false),
                (Removed, "b", Some(4), None, true),
                (Added, "b", None, Some(4), false),
                (Added, "--- c", None, Some(5), false),
                (Context, "", Some(5), Some(6), false),
                (Removed, "x", Some(6), None, false),
            ]
        );
    }

    /// Every prefix of a diff, and a shuffle of diff fragments, parse, render and apply
    /// without panicking.
    #[test]
    fn survives_truncated_and_scrambled_input() {
        let whole = format!(
            "{GIT_BINARY}diff --git \"a/\\303\\251 x\" \"b/\\303\\251 y\"\nrename from \"\\303\"\n@@ -1,2 +1,2 @@\n é\n-a\n\\ No newline at end of file\n+b\n"
        );
        let mut inputs: Vec<String> =
            whole.char_indices().map(|(at, _)| whole[..at].to_owned()).collect();
        let fragments = [
            "diff --git ",
            "a/x b/x\n",
            "\"a/\\",
            "\\377\"",
            "@@ -",
            "1,2 +",
            "1 @@",
            "\n",
            "+",
            "-",
            " ",
            "\\ No newline at end of file\n",
            "GIT binary patch\n",
            "rename from ",
            "--- ",
            "+++ ",
            "/dev/null",
            "new file mode 100644\n",
            "Binary files a and b differ\n",
            "é",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut input = String::new();
            for _ in 0..40 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                input.push_str(fragments[(seed >> 33) as usize % fragments.len()]);
            }
            inputs.push(input);
        }
        for input in &inputs {
            let files = parse(input);
            for file in &files {
                let _ = final_text("a\nb\n", file);
                let _ = final_text("é\na", file);
            }
            let mut out = String::new();
            render(&files, DiffView::Split, &mut out);
            render(&files, DiffView::Unified, &mut out);
        }
    }

    fn rendered(diff: &str, view: DiffView) -> String {
        let mut out = String::new();
        render(&parse(diff), view, &mut out);
        out
    }

    const NOTES: &str = "diff --git a/notes.txt b/notes.txt\n--- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@ intro\n-a\n-b\n+A\n c\n+d\n\\ No newline at end of file\n";

    #[test]
    fn renders_unified_rows() {
        let html = rendered(NOTES, DiffView::Unified);
        let want = concat!(
            r#"<details class="file" open id="file-notes.2etxt"><summary><span class="path">notes.txt</span> "#,
            r#"<span class="status status-modified">modified</span> <span class="stat"><span class="ins">+2</span> "#,
            r#"<span class="del">−2</span></span></summary><table class="diff unified"><tbody>"#,
            r#"<tr class="hunk"><td class="hunk" colspan="4">@@ -1,3 +1,3 @@ <span class="section">intro</span></td></tr>"#,
            r#"<tr class="del"><td class="ln" data-line="1">1</td><td class="ln"></td><td class="mark">−</td><td class="code">a</td></tr>"#,
            r#"<tr class="del"><td class="ln" data-line="2">2</td><td class="ln"></td><td class="mark">−</td><td class="code">b</td></tr>"#,
            r#"<tr class="add"><td class="ln"></td><td class="ln" data-line="1">1</td><td class="mark">+</td><td class="code">A</td></tr>"#,
            r#"<tr class="ctx"><td class="ln" data-line="3">3</td><td class="ln" data-line="2">2</td><td class="mark"> </td><td class="code">c</td></tr>"#,
            r#"<tr class="add"><td class="ln"></td><td class="ln" data-line="3">3</td><td class="mark">+</td>"#,
            r#"<td class="code">d<span class="nonl">No newline at end of file</span></td></tr>"#,
            "</tbody></table></details>\n",
        );
        assert_eq!(html, want);
    }

    #[test]
    fn renders_split_rows_pairing_changes() {
        let html = rendered(NOTES, DiffView::Split);
        let body = &html[html.find("<tr class=\"line\">").expect("a line row")..];
        let want = concat!(
            r#"<tr class="line"><td class="ln del" data-line="1">1</td><td class="code del">a</td>"#,
            r#"<td class="ln add" data-line="1">1</td><td class="code add">A</td></tr>"#,
            r#"<tr class="line"><td class="ln del" data-line="2">2</td><td class="code del">b</td>"#,
            r#"<td class="ln empty"></td><td class="code empty"></td></tr>"#,
            r#"<tr class="line"><td class="ln ctx" data-line="3">3</td><td class="code ctx">c</td>"#,
            r#"<td class="ln ctx" data-line="2">2</td><td class="code ctx">c</td></tr>"#,
            r#"<tr class="line"><td class="ln empty"></td><td class="code empty"></td>"#,
            r#"<td class="ln add" data-line="3">3</td><td class="code add">d<span class="nonl">No newline at end of file</span></td></tr>"#,
            "</tbody></table></details>\n",
        );
        assert_eq!(body, want);
        assert!(html.contains(r#"<table class="diff split"><tbody><tr class="hunk">"#));
    }

    #[test]
    fn renders_summaries_and_notes() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "rename",
                "diff --git a/a.rs b/b.rs\nsimilarity index 100%\nrename from a.rs\nrename to b.rs\n",
                &[
                    r#"id="file-b.2ers""#,
                    "a.rs → b.rs",
                    r#"<span class="status status-renamed">renamed 100%</span>"#,
                    r#"<p class="note">no content changes</p>"#,
                ],
            ),
            (
                "binary",
                "diff --git a/i.png b/i.png\nnew file mode 100644\nBinary files /dev/null and b/i.png differ\n",
                &["status-added", r#"<p class="note">binary file, not shown</p>"#],
            ),
            (
                "empty added file",
                "diff --git a/e b/e\nnew file mode 100644\nindex 0000000..e69de29\n",
                &[r#"<p class="note">empty file</p>"#],
            ),
            (
                "mode",
                "diff --git a/r.sh b/r.sh\nold mode 100644\nnew mode 100755\n",
                &[
                    r#"<span class="status status-mode">mode</span>"#,
                    r#"<p class="note">mode 100644 → 100755</p>"#,
                ],
            ),
            (
                "deleted",
                "diff --git a/d.py b/d.py\ndeleted file mode 100644\n--- a/d.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-def f(): pass\n",
                &[
                    r#"id="file-d.2epy""#,
                    r#"<span class="path">d.py</span>"#,
                    r#"<td class="code"><span class="k">def</span> f(): <span class="k">pass</span></td>"#,
                ],
            ),
            (
                "same path twice (a type change)",
                "diff --git a/l b/l\ndeleted file mode 120000\ndiff --git a/l b/l\nnew file mode 100644\n",
                &[r#"id="file-l""#, r#"id="file-l..2""#],
            ),
        ];
        for (name, diff, wants) in cases {
            let html = rendered(diff, DiffView::Unified);
            for want in *wants {
                assert!(html.contains(want), "{name}: {want} not in {html}");
            }
        }
    }

    #[test]
    fn large_diffs_render_closed() {
        let mut diff = String::from("diff --git a/big.txt b/big.txt\n@@ -0,0 +1,3001 @@\n");
        for n in 0..3001 {
            diff.push_str(&format!("+{n}\n"));
        }
        let html = rendered(&diff, DiffView::Unified);
        assert!(
            html.starts_with(r#"<details class="file" id="file-big.2etxt">"#),
            "{}",
            &html[..80]
        );
        assert!(html.contains(r#"<span class="note">large diff</span>"#));
        assert!(html.contains(r#"data-line="3001""#));
        let small = rendered(&diff.replace("3001 @@", "3000 @@"), DiffView::Unified);
        assert!(small.starts_with(r#"<details class="file" open "#));
    }

    /// Every tag in the page is one of ours, with our attributes only; everything else is text.
    fn assert_only_our_tags(html: &str) {
        let allowed_tags = ["details", "summary", "span", "table", "tbody", "tr", "td", "p"];
        let allowed_attributes = ["class", "id", "open", "data-line", "colspan"];
        for tag in html.split('<').skip(1) {
            let tag = &tag[..tag.find('>').expect("every < of ours is closed")];
            if let Some(name) = tag.strip_prefix('/') {
                assert!(allowed_tags.contains(&name), "</{name}>");
                continue;
            }
            let (name, mut rest) = tag.split_once(' ').unwrap_or((tag, ""));
            assert!(allowed_tags.contains(&name), "<{tag}>");
            while !rest.is_empty() {
                let end = rest.find([' ', '=']).unwrap_or(rest.len());
                assert!(allowed_attributes.contains(&&rest[..end]), "{} in <{tag}>", &rest[..end]);
                rest = &rest[end..];
                if let Some(value) = rest.strip_prefix("=\"") {
                    let close = value.find('"').expect("a closed attribute value");
                    rest = &value[close + 1..];
                }
                rest = rest.strip_prefix(' ').unwrap_or(rest);
            }
        }
    }

    #[test]
    fn hostile_names_and_lines_stay_text() {
        let diff = concat!(
            "diff --git \"a/\\\"><img src=x onerror=alert(1)>.rs\" \"b/\\\"><img src=x onerror=alert(1)>.rs\"\n",
            "--- \"a/\\\"><img src=x onerror=alert(1)>.rs\"\n",
            "+++ \"b/\\\"><img src=x onerror=alert(1)>.rs\"\n",
            "@@ -1 +1 @@ <script>alert(1)</script>\n",
            "-</td></table><script>alert(1)</script>\n",
            "+\"</td></table><script>alert(1)</script>\n",
            "diff --git a/javascript:alert(1) b/javascript:alert(1)\n",
            "--- a/javascript:alert(1)\n+++ b/javascript:alert(1)\n",
            "@@ -1 +1 @@\n-' onmouseover='x\n+<!-- </td>\n",
            "diff --git a/x.html b/x.html\n--- a/x.html\n+++ b/x.html\n",
            "@@ -1 +1 @@\n-<a href=\"javascript:alert(1)\" onclick='y'>\n+</td></tr><tr><td onerror=z>\n",
        );
        let files = parse(diff);
        assert_eq!(files[0].path(), "\"><img src=x onerror=alert(1)>.rs");
        for view in [DiffView::Unified, DiffView::Split] {
            let html = rendered(diff, view);
            for forbidden in ["<script", "<img", "<a ", "<!--"] {
                assert!(!html.contains(forbidden), "{forbidden} in {html}");
            }
            assert_only_our_tags(&html);
            // The text itself survives, escaped: with the tags taken out, it reads as it was.
            let text: String = html
                .split('<')
                .map(|part| part.split_once('>').map_or(part, |(_, text)| text))
                .collect();
            for survivor in [
                "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.rs",
                "&lt;/td&gt;&lt;/table&gt;&lt;script&gt;alert(1)&lt;/script&gt;",
                "javascript:alert(1)",
                "&#39; onmouseover=&#39;x",
                "&lt;a href=&quot;javascript:alert(1)&quot; onclick=&#39;y&#39;&gt;",
            ] {
                assert!(text.contains(survivor), "{survivor} not in {text}");
            }
            assert!(
                html.contains(
                    r#"id="file-.22.3e.3cimg.20src.3dx.20onerror.3dalert.281.29.3e.2ers""#
                )
            );
        }
    }

    fn file(hunks: &str) -> FileDiff {
        let files = parse(&format!("diff --git a/f b/f\n--- a/f\n+++ b/f\n{hunks}"));
        files.into_iter().next().expect("the test diff has a file")
    }

    #[test]
    fn final_text_applies_hunks_exactly() {
        use ApplyError::*;
        let cases: &[(&str, &str, &str, Result<&str, ApplyError>)] = &[
            ("replace", "a\nb\nc\n", "@@ -2 +2 @@\n-b\n+B\n", Ok("a\nB\nc\n")),
            ("insert first", "a\n", "@@ -0,0 +1 @@\n+z\n", Ok("z\na\n")),
            ("insert after 1", "a\nb\n", "@@ -1,0 +2 @@\n+z\n", Ok("a\nz\nb\n")),
            (
                "two hunks",
                "1\n2\n3\n4\n5\n",
                "@@ -1 +1 @@\n-1\n+one\n@@ -5 +5,2 @@\n 5\n+6\n",
                Ok("one\n2\n3\n4\n5\n6\n"),
            ),
            (
                "add final newline",
                "a",
                "@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n",
                Ok("a\n"),
            ),
            (
                "drop final newline",
                "a\n",
                "@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n",
                Ok("a"),
            ),
            (
                "context without newline",
                "a\nb",
                "@@ -1,2 +1,2 @@\n-a\n+A\n b\n\\ No newline at end of file\n",
                Ok("A\nb"),
            ),
            ("untouched unterminated end", "a\nb\nc", "@@ -1 +1 @@\n-a\n+A\n", Ok("A\nb\nc")),
            ("crlf", "a\r\nb\r\n", "@@ -1 +1 @@\n-a\r\n+x\r\n", Ok("x\r\nb\r\n")),
            (
                "added file",
                "",
                "@@ -0,0 +1,2 @@\n+x\n+y\n\\ No newline at end of file\n",
                Ok("x\ny"),
            ),
            ("deleted file", "x\ny\n", "@@ -1,2 +0,0 @@\n-x\n-y\n", Ok("")),
            ("no hunks", "a\nb", "", Ok("a\nb")),
            (
                "context differs",
                "a\nx\n",
                "@@ -1,2 +1,2 @@\n a\n-b\n+c\n",
                Err(Mismatch { hunk: 1, old_line: 2 }),
            ),
            (
                "base lacks a final newline the diff assumes",
                "a",
                "@@ -1 +1 @@\n-a\n+b\n",
                Err(Mismatch { hunk: 1, old_line: 1 }),
            ),
            (
                "base has a final newline the diff says is missing",
                "a\n",
                "@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n",
                Err(Mismatch { hunk: 1, old_line: 1 }),
            ),
            (
                "second hunk differs",
                "1\n2\n3\n",
                "@@ -1 +1 @@\n-1\n+x\n@@ -3 +3 @@\n-9\n+y\n",
                Err(Mismatch { hunk: 2, old_line: 3 }),
            ),
            (
                "base too short",
                "a\n",
                "@@ -1,2 +1 @@\n a\n-b\n",
                Err(Mismatch { hunk: 1, old_line: 2 }),
            ),
            (
                "overlapping hunks",
                "1\n2\n3\n",
                "@@ -2 +2 @@\n-2\n+x\n@@ -1 +1 @@\n-1\n+y\n",
                Err(Position { hunk: 2 }),
            ),
            ("past the end", "a\n", "@@ -5 +5 @@\n-x\n+y\n", Err(Position { hunk: 1 })),
            (
                "line 0 with an old side",
                "a\n",
                "@@ -0,1 +0,1 @@\n-a\n+b\n",
                Err(Position { hunk: 1 }),
            ),
            (
                "shorter than its header",
                "a\nb\n",
                "@@ -1,3 +1,3 @@\n a\n",
                Err(Malformed { hunk: 1 }),
            ),
            (
                "appending after an unterminated line",
                "a",
                "@@ -1,0 +2 @@\n+b\n",
                Err(Malformed { hunk: 1 }),
            ),
            (
                "no-newline mark before the end",
                "a\nb\n",
                "@@ -1 +1 @@\n-a\n+A\n\\ No newline at end of file\n",
                Err(Malformed { hunk: 1 }),
            ),
        ];
        for (name, base, hunks, want) in cases {
            let got = final_text(base, &file(hunks));
            assert_eq!(got, want.clone().map(str::to_owned), "{name}");
        }
        let binary = parse("diff --git a/b b/b\nBinary files a/b and b/b differ\n");
        assert_eq!(final_text("", &binary[0]), Err(Binary));
        assert_eq!(
            Mismatch { hunk: 2, old_line: 14 }.to_string(),
            "hunk 2 does not match line 14 of the base; the diff was not made from this base"
        );
    }
}
