//! Text from the model, the repository and the logs is untrusted: every byte of it reaches a
//! page through this module. [`escape_into`] escapes the five HTML-significant characters, so a
//! value is inert in element content and in double-quoted attributes alike; [`terminal_text`]
//! also drops terminal escape sequences (ANSI colours, cursor movement, OSC titles and links)
//! and shows other control characters as visible symbols, so a log cannot hide text or forge
//! what follows it.

use std::fmt::Write as _;

/// Appends `text` to `out` with `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape_into(out: &mut String, text: &str) {
    let mut last = 0;
    for (i, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&text[last..i]);
        out.push_str(entity);
        last = i + 1;
    }
    out.push_str(&text[last..]);
}

/// `text` escaped (see [`escape_into`]).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    escape_into(&mut out, text);
    out
}

/// Appends terminal output to `out`, escaped, without its escape sequences: CSI (`ESC [` …
/// final byte), OSC (`ESC ]` … BEL or `ESC \`), and two-byte `ESC x` sequences vanish; a
/// carriage return that does not end a line and other C0/C1 controls but tab and newline become
/// visible control pictures (U+2400 + code), so nothing is silently hidden.
pub fn terminal_into(out: &mut String, text: &str) {
    let mut chars = text.char_indices().peekable();
    let mut plain_from = 0;
    let flush = |out: &mut String, from: usize, to: usize| escape_into(out, &text[from..to]);
    while let Some((i, c)) = chars.next() {
        let is_control = (c < ' ' && c != '\t' && c != '\n')
            || c == '\u{7f}'
            || ('\u{80}'..='\u{9f}').contains(&c);
        if !is_control {
            continue;
        }
        flush(out, plain_from, i);
        match c {
            '\u{1b}' => match chars.peek().map(|&(_, n)| n) {
                Some('[') => {
                    chars.next();
                    // Parameters and intermediates, then one final byte in @..~.
                    for (_, n) in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('_') | Some('^') => {
                    chars.next();
                    // A string terminated by BEL or ST (ESC \).
                    while let Some((_, n)) = chars.next() {
                        if n == '\u{7}' {
                            break;
                        }
                        if n == '\u{1b}' && chars.peek().map(|&(_, m)| m) == Some('\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\r' if chars.peek().map(|&(_, n)| n) == Some('\n') => {}
            '\u{7f}' => out.push('\u{2421}'),
            c if c < ' ' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
            _ => out.push('\u{fffd}'),
        }
        plain_from = chars.peek().map_or(text.len(), |&(next, _)| next);
    }
    flush(out, plain_from.min(text.len()), text.len());
}

/// `text` as [`terminal_into`] writes it.
pub fn terminal_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    terminal_into(&mut out, text);
    out
}

/// A string safe to use as (part of) an HTML id or class: `[A-Za-z0-9_-]` kept, every other
/// byte hex-encoded as `.xx`, so distinct inputs stay distinct.
pub fn id_fragment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(byte as char);
        } else {
            let _ = write!(out, ".{byte:02x}");
        }
    }
    out
}

/// A percent-encoded URL path segment (RFC 3986 unreserved characters kept), for ids and file
/// paths placed in links. `/` is encoded too, so a segment cannot become a path.
pub fn url_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A file path for a URL: each segment encoded, the slashes kept.
pub fn url_path(path: &str) -> String {
    path.split('/').map(url_segment).collect::<Vec<_>>().join("/")
}

/// A duration the way a person reads it: `850 ms`, `4.2 s`, `3 min 5 s`, `2 h 10 min`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// How long ago `at_ms` was, from `now_ms`: `just now`, `5 min ago`, `3 h ago`, `2 d ago`.
pub fn age(at_ms: i64, now_ms: i64) -> String {
    let seconds = (now_ms - at_ms).max(0) / 1000;
    match seconds {
        0..=44 => "just now".into(),
        45..=3_599 => format!("{} min ago", (seconds / 60).max(1)),
        3_600..=86_399 => format!("{} h ago", seconds / 3_600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// The first line of `text`, cut to `max` characters with an ellipsis.
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.trim().lines().next().unwrap_or_default();
    let mut chars = line.chars();
    let cut: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() || text.trim().lines().nth(1).is_some() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_significant_character() {
        assert_eq!(
            escape(r#"<script>alert('x')</script> & "q""#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("plain é text"), "plain é text");
    }

    #[test]
    fn terminal_text_drops_escape_sequences_and_shows_controls() {
        let cases = [
            ("\x1b[1;31mred\x1b[0m ok", "red ok"),
            ("\x1b]0;title\x07after", "after"),
            ("\x1b]8;;https://evil\x1b\\link\x1b]8;;\x1b\\", "link"),
            ("a\r\nb", "a\nb"),
            ("50%\r100%", "50%\u{240d}100%"),
            ("bell\x07", "bell\u{2407}"),
            ("<b>\x1b[2K</b>", "&lt;b&gt;&lt;/b&gt;"),
            ("tab\there", "tab\there"),
            ("\u{9b}31mcsi", "\u{fffd}31mcsi"),
            ("trailing escape \x1b", "trailing escape "),
            ("unterminated \x1b[31", "unterminated "),
        ];
        for (input, want) in cases {
            assert_eq!(terminal_text(input), want, "{input:?}");
        }
    }

    #[test]
    fn ids_and_urls_cannot_break_out() {
        assert_eq!(id_fragment("call_1"), "call_1");
        assert_eq!(id_fragment("a\" onmouseover=x"), "a.22.20onmouseover.3dx");
        assert_eq!(url_segment("../x y"), "..%2Fx%20y");
        assert_eq!(url_path("src/a b/\"x\".rs"), "src/a%20b/%22x%22.rs");
        assert_eq!(url_path("javascript:alert(1)"), "javascript%3Aalert%281%29");
    }

    #[test]
    fn durations_and_ages_read_naturally() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(4_200), "4.2 s");
        assert_eq!(duration(185_000), "3 min 5 s");
        assert_eq!(duration(7_800_000), "2 h 10 min");
        assert_eq!(age(0, 10_000), "just now");
        assert_eq!(age(0, 300_000), "5 min ago");
        assert_eq!(age(0, 3 * 86_400_000), "3 d ago");
        assert_eq!(first_line("  fix the\nflaky test", 40), "fix the…");
        assert_eq!(first_line("short", 40), "short");
        assert_eq!(first_line("abcdef", 3), "abc…");
    }
}
