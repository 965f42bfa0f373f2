//! A file after the diff, rebuilt from its base content.

use std::fmt;

use super::*;

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
