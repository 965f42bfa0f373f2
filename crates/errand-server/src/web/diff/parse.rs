//! Reading `git diff` text into [`FileDiff`]s: one pass, never a panic.

use super::*;

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
