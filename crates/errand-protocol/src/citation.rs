//! Citations in a report: `path:L10-L20` points at lines of a file in the attempt's final tree,
//! `log:17#L3-L9` at lines 3 to 9 of the output of the command whose `command_started` event has
//! seq 17. Parsing lives here (pure); checking them against the tree and the log is the agent's.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a citation points at. Line numbers are 1-based and inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CitationTarget {
    Code { path: String, start: u64, end: u64 },
    Log { event: u64, start: u64, end: u64 },
}

impl std::fmt::Display for CitationTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (prefix, start, end) = match self {
            Self::Code { path, start, end } => (path.clone(), start, end),
            Self::Log { event, start, end } => (format!("log:{event}#"), start, end),
        };
        let sep = if matches!(self, Self::Code { .. }) { ":" } else { "" };
        if start == end {
            write!(f, "{prefix}{sep}L{start}")
        } else {
            write!(f, "{prefix}{sep}L{start}-L{end}")
        }
    }
}

/// A citation found in a report, after checking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Citation {
    /// The text as the model wrote it.
    pub raw: String,
    pub target: CitationTarget,
    /// `None` when the citation holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<CitationProblem>,
    /// The cited lines, captured when the citation was checked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub excerpt: String,
    /// For code citations: whether the final diff touched that file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_diff: bool,
}

/// Why a citation does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum CitationProblem {
    FileMissing,
    LinesOutOfRange {
        available: u64,
    },
    NotACommand,
    /// The range is backwards (`L9-L3`) or starts at 0.
    BadRange,
}

impl std::fmt::Display for CitationProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FileMissing => write!(f, "no such file in the final tree"),
            Self::LinesOutOfRange { available } => {
                write!(f, "lines out of range (only {available} lines)")
            }
            Self::NotACommand => write!(f, "that event is not a command"),
            Self::BadRange => write!(f, "the line range is empty or backwards"),
        }
    }
}

/// Finds every citation in `text`, in order, with the exact text that matched.
///
/// A citation is a whitespace-separated token, optionally wrapped in backticks, brackets,
/// parentheses or quotes and followed by punctuation: `src/lib.rs:L10-L20`, `(log:17#L3-L9).`
/// `L10-20` is accepted for `L10-L20`.
pub fn parse_citations(text: &str) -> Vec<(String, CitationTarget)> {
    text.split_whitespace()
        .filter_map(|token| {
            let trimmed =
                token.trim_start_matches(['`', '(', '[', '"', '\'', '<', '*']).trim_end_matches([
                    '`', ')', ']', '"', '\'', '>', '*', ',', '.', ';', ':', '!', '?',
                ]);
            parse_one(trimmed).map(|target| (trimmed.to_string(), target))
        })
        .collect()
}

fn parse_one(token: &str) -> Option<CitationTarget> {
    if let Some(rest) = token.strip_prefix("log:") {
        let (event, lines) = rest.split_once('#')?;
        let event = parse_number(event)?;
        let (start, end) = parse_lines(lines)?;
        return Some(CitationTarget::Log { event, start, end });
    }
    let (path, lines) = token.rsplit_once(':')?;
    if path.is_empty() || path.contains('`') {
        return None;
    }
    let (start, end) = parse_lines(lines)?;
    Some(CitationTarget::Code { path: path.to_string(), start, end })
}

/// `L10`, `L10-L20` or `L10-20`.
fn parse_lines(s: &str) -> Option<(u64, u64)> {
    let s = s.strip_prefix('L')?;
    match s.split_once('-') {
        None => parse_number(s).map(|n| (n, n)),
        Some((a, b)) => Some((parse_number(a)?, parse_number(b.strip_prefix('L').unwrap_or(b))?)),
    }
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(path: &str, start: u64, end: u64) -> CitationTarget {
        CitationTarget::Code { path: path.into(), start, end }
    }

    #[test]
    fn parses_the_forms_models_write() {
        let cases: &[(&str, Vec<CitationTarget>)] = &[
            ("see src/lib.rs:L10-L20", vec![code("src/lib.rs", 10, 20)]),
            ("`src/lib.rs:L3`", vec![code("src/lib.rs", 3, 3)]),
            ("(a.py:L1-5).", vec![code("a.py", 1, 5)]),
            ("log:17#L3-L9", vec![CitationTarget::Log { event: 17, start: 3, end: 9 }]),
            ("[log:2#L1]", vec![CitationTarget::Log { event: 2, start: 1, end: 1 }]),
            ("données/é.txt:L2-L2,", vec![code("données/é.txt", 2, 2)]),
            ("C:\\x:L1", vec![code("C:\\x", 1, 1)]),
            ("two: a.rs:L1 and b.rs:L2-L3", vec![code("a.rs", 1, 1), code("b.rs", 2, 3)]),
        ];
        for (text, want) in cases {
            let got: Vec<_> = parse_citations(text).into_iter().map(|(_, t)| t).collect();
            assert_eq!(&got, want, "{text}");
        }
    }

    #[test]
    fn ignores_near_misses() {
        for text in [
            "http://example.com:8080",
            "a.rs:10",
            "a.rs:Lx",
            "log:x#L1",
            "log:3",
            "log:3#4",
            ":L4",
            "time 10:30",
            "a.rs:L-3",
        ] {
            assert!(parse_citations(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn keeps_the_raw_text_and_displays_canonically() {
        let found = parse_citations("`src/a.rs:L4-9`");
        assert_eq!(found[0].0, "src/a.rs:L4-9");
        assert_eq!(found[0].1.to_string(), "src/a.rs:L4-L9");
        let log = CitationTarget::Log { event: 5, start: 2, end: 2 };
        assert_eq!(log.to_string(), "log:5#L2");
    }
}
