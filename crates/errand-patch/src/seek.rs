//! Finding a chunk's lines in a file, forgiving the small differences models make.
//!
//! Matching is tried at decreasing strictness, each level over the whole search range before the
//! next one starts, so an exact match anywhere wins over a fuzzy one nearer the start (the same
//! order as openai/codex `codex-rs/apply-patch/src/seek_sequence.rs`):
//! exact → trailing whitespace ignored → surrounding whitespace ignored → Unicode punctuation
//! look-alikes (dashes, curly quotes, odd spaces) folded to ASCII.

/// How loosely a match was found; kept for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum MatchLevel {
    Exact,
    TrailingWhitespace,
    SurroundingWhitespace,
    Punctuation,
}

const LEVELS: [MatchLevel; 4] = [
    MatchLevel::Exact,
    MatchLevel::TrailingWhitespace,
    MatchLevel::SurroundingWhitespace,
    MatchLevel::Punctuation,
];

impl MatchLevel {
    fn same(self, file_line: &str, pattern_line: &str) -> bool {
        match self {
            Self::Exact => file_line == pattern_line,
            Self::TrailingWhitespace => file_line.trim_end() == pattern_line.trim_end(),
            Self::SurroundingWhitespace => file_line.trim() == pattern_line.trim(),
            Self::Punctuation => fold_punctuation(file_line) == fold_punctuation(pattern_line),
        }
    }
}

/// Index of the first occurrence of `pattern` in `lines` at or after `start`.
///
/// With `at_end`, a match ending on the last line is preferred (the chunk said `*** End of File`);
/// failing that the search falls back to `start` onwards. An empty pattern matches at `start`.
pub(crate) fn seek(
    lines: &[String],
    pattern: &[String],
    start: usize,
    at_end: bool,
) -> Option<(usize, MatchLevel)> {
    if pattern.is_empty() {
        return Some((start, MatchLevel::Exact));
    }
    let last_start = lines.len().checked_sub(pattern.len())?;
    let matches_at = |i: usize, level: MatchLevel| {
        lines[i..i + pattern.len()].iter().zip(pattern).all(|(l, p)| level.same(l, p))
    };
    if at_end
        && last_start >= start
        && let Some(level) = LEVELS.into_iter().find(|&level| matches_at(last_start, level))
    {
        return Some((last_start, level));
    }
    LEVELS
        .into_iter()
        .find_map(|level| (start..=last_start).find(|&i| matches_at(i, level)).map(|i| (i, level)))
}

/// Trims the line and maps typographic characters to the ASCII a model tends to type instead.
fn fold_punctuation(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.trim().chars() {
        match c {
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
            | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' => out.push('-'),
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{FF07}' => {
                out.push('\'')
            }
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{00AB}'
            | '\u{00BB}' | '\u{FF02}' => out.push('"'),
            '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => {
                out.push(' ')
            }
            '\u{2026}' => out.push_str("..."),
            // Zero-width characters and the byte-order mark are invisible to whoever copied them.
            '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    /// (file lines, pattern, expected match)
    type Case<'a> = (&'a [&'a str], &'a [&'a str], Option<(usize, MatchLevel)>);

    #[test]
    fn levels_in_order() {
        let cases: &[Case] = &[
            (&["foo", "bar", "baz"], &["bar", "baz"], Some((1, MatchLevel::Exact))),
            (&["foo   ", "bar\t"], &["foo", "bar"], Some((0, MatchLevel::TrailingWhitespace))),
            (&["  foo ", "\tbar"], &["foo", "bar"], Some((0, MatchLevel::SurroundingWhitespace))),
            (
                &["let s = \u{201C}hi\u{201D}; // a\u{2014}b\u{00A0}c"],
                &["let s = \"hi\"; // a-b c"],
                Some((0, MatchLevel::Punctuation)),
            ),
            (&["wait\u{2026}"], &["wait..."], Some((0, MatchLevel::Punctuation))),
            (&["one"], &["one", "two", "three"], None),
            (&["foo"], &["bar"], None),
        ];
        for (lines, pattern, want) in cases {
            assert_eq!(seek(&v(lines), &v(pattern), 0, false), *want, "{lines:?} / {pattern:?}");
        }
    }

    #[test]
    fn an_exact_match_later_beats_a_fuzzy_one_earlier() {
        let lines = v(&["  x", "x"]);
        assert_eq!(seek(&lines, &v(&["x"]), 0, false), Some((1, MatchLevel::Exact)));
    }

    #[test]
    fn respects_start_and_end_anchor() {
        let lines = v(&["a", "b", "a", "b"]);
        assert_eq!(seek(&lines, &v(&["a"]), 1, false), Some((2, MatchLevel::Exact)));
        assert_eq!(seek(&lines, &v(&["a", "b"]), 0, true), Some((2, MatchLevel::Exact)));
        // Not at the end: fall back to the first match after `start`.
        assert_eq!(seek(&lines, &v(&["a"]), 0, true), Some((0, MatchLevel::Exact)));
        assert_eq!(seek(&lines, &v(&["b"]), 4, false), None);
    }

    #[test]
    fn empty_pattern_matches_at_start() {
        assert_eq!(seek(&v(&["a"]), &[], 1, false), Some((1, MatchLevel::Exact)));
    }
}
