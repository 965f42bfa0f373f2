//! [`FileDiff`]s as HTML tables, unified or side by side (classes: see the module above).

use std::collections::HashSet;
use std::fmt::Write as _;

use super::super::highlight::{Highlighter, Language, text_into};
use super::super::html::id_fragment;
use super::*;

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
