//! The Markdown a model writes (a report's description, its messages), as safe HTML: a small
//! subset (paragraphs, headings, lists with task boxes, fenced code, inline code, bold, bare
//! `http(s)` links) in which every citation (`path:L10-L20`, `log:17#L3-L9`) becomes a link the
//! caller builds. Everything else is text: escaped, never interpreted, so no HTML, no image, no
//! `javascript:` link can come through.

use errand_protocol::{CitationTarget, parse_citations};

use super::html::escape_into;

/// Builds the link for one citation: `raw` is the text as written, `inner` the escaped HTML to
/// show inside the link.
pub trait CitationLinks: Sync {
    fn link(&self, raw: &str, target: &CitationTarget, inner: &str, out: &mut String);
}

/// Renders `text` as HTML.
pub fn render(text: &str, links: &dyn CitationLinks) -> String {
    let mut out = String::with_capacity(text.len() * 5 / 4);
    let mut lines = text.lines().peekable();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut list: Option<&'static str> = None;
    let flush_paragraph = |paragraph: &mut Vec<&str>, out: &mut String| {
        if !paragraph.is_empty() {
            out.push_str("<p>");
            inline(&paragraph.join("\n"), links, out);
            out.push_str("</p>");
            paragraph.clear();
        }
    };
    let close_list = |list: &mut Option<&'static str>, out: &mut String| {
        if let Some(tag) = list.take() {
            out.push_str(if tag == "ul" { "</ul>" } else { "</ol>" });
        }
    };
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(fence) = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f)) {
            flush_paragraph(&mut paragraph, &mut out);
            close_list(&mut list, &mut out);
            out.push_str("<pre><code>");
            for code in lines.by_ref() {
                if code.trim_start().starts_with(fence) {
                    break;
                }
                escape_into(&mut out, code);
                out.push('\n');
            }
            out.push_str("</code></pre>");
            continue;
        }
        if trimmed.is_empty() {
            flush_paragraph(&mut paragraph, &mut out);
            close_list(&mut list, &mut out);
            continue;
        }
        let hashes = trimmed.bytes().take_while(|&b| b == b'#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with(' ') {
            flush_paragraph(&mut paragraph, &mut out);
            close_list(&mut list, &mut out);
            // The page's own headings are h1/h2: the model's start at h3.
            let level = (hashes + 2).min(6);
            out.push_str(&format!("<h{level}>"));
            inline(trimmed[hashes..].trim(), links, &mut out);
            out.push_str(&format!("</h{level}>"));
            continue;
        }
        if let Some((tag, item)) = list_item(trimmed) {
            flush_paragraph(&mut paragraph, &mut out);
            if list != Some(tag) {
                close_list(&mut list, &mut out);
                out.push_str(if tag == "ul" { "<ul>" } else { "<ol>" });
                list = Some(tag);
            }
            out.push_str("<li>");
            let (mark, item) = match item.get(..4) {
                Some("[x] " | "[X] ") => (Some(true), &item[4..]),
                Some("[ ] ") => (Some(false), &item[4..]),
                _ => (None, item),
            };
            match mark {
                Some(true) => {
                    out.push_str("<span class=\"box done\" aria-label=\"done\">✓</span> ")
                }
                Some(false) => {
                    out.push_str("<span class=\"box\" aria-label=\"not done\">✗</span> ")
                }
                None => {}
            }
            inline(item, links, &mut out);
            out.push_str("</li>");
            continue;
        }
        if list.is_some() && line.starts_with("  ") {
            // A continuation of the list item: appended to it.
            out.truncate(out.len() - "</li>".len());
            out.push(' ');
            inline(trimmed, links, &mut out);
            out.push_str("</li>");
            continue;
        }
        close_list(&mut list, &mut out);
        paragraph.push(line);
    }
    flush_paragraph(&mut paragraph, &mut out);
    close_list(&mut list, &mut out);
    out
}

/// `- x`, `* x`, `+ x` or `1. x`.
fn list_item(line: &str) -> Option<(&'static str, &str)> {
    for bullet in ["- ", "* ", "+ "] {
        if let Some(item) = line.strip_prefix(bullet) {
            return Some(("ul", item));
        }
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=9).contains(&digits) {
        let rest = &line[digits..];
        if let Some(item) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return Some(("ol", item));
        }
    }
    None
}

/// Inline text: code spans, bold, citations and bare links.
fn inline(text: &str, links: &dyn CitationLinks, out: &mut String) {
    // Backticks delimit code spans; an unmatched one is text.
    let parts: Vec<&str> = text.split('`').collect();
    let spans = if parts.len() % 2 == 1 { parts.len() } else { parts.len() - 1 };
    for (i, part) in parts.iter().enumerate() {
        if i >= spans {
            out.push('`');
            words(part, links, out);
        } else if i % 2 == 1 {
            let mut code = String::new();
            escape_into(&mut code, part);
            let code = format!("<code>{code}</code>");
            match parse_citations(part).as_slice() {
                [(raw, target)] if raw == part.trim() => links.link(raw, target, &code, out),
                _ => out.push_str(&code),
            }
        } else {
            bold(part, links, out);
        }
    }
}

/// `**bold**` pairs; an unpaired `**` is text.
fn bold(text: &str, links: &dyn CitationLinks, out: &mut String) {
    let parts: Vec<&str> = text.split("**").collect();
    let paired = if parts.len() % 2 == 1 { parts.len() } else { parts.len() - 1 };
    for (i, part) in parts.iter().enumerate() {
        if i >= paired {
            out.push_str("**");
            words(part, links, out);
        } else if i % 2 == 1 {
            out.push_str("<strong>");
            words(part, links, out);
            out.push_str("</strong>");
        } else {
            words(part, links, out);
        }
    }
}

/// Plain text, whitespace kept, with citations and `http(s)` URLs as links.
fn words(text: &str, links: &dyn CitationLinks, out: &mut String) {
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(|c: char| !c.is_whitespace()).unwrap_or(rest.len());
        escape_into(out, &rest[..start]);
        rest = &rest[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        token(&rest[..end], links, out);
        rest = &rest[end..];
    }
}

fn token(token: &str, links: &dyn CitationLinks, out: &mut String) {
    if let [(raw, target)] = parse_citations(token).as_slice()
        && let Some(at) = token.find(raw.as_str())
    {
        escape_into(out, &token[..at]);
        let mut inner = String::new();
        escape_into(&mut inner, raw);
        links.link(raw, target, &inner, out);
        escape_into(out, &token[at + raw.len()..]);
        return;
    }
    let url_start = token.find("https://").or_else(|| token.find("http://"));
    if let Some(at) = url_start {
        let url = token[at..].trim_end_matches(['.', ',', ';', ':', ')', ']', '!', '?', '"', '\'']);
        escape_into(out, &token[..at]);
        out.push_str("<a href=\"");
        escape_into(out, url);
        out.push_str("\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">");
        escape_into(out, url);
        out.push_str("</a>");
        escape_into(out, &token[at + url.len()..]);
        return;
    }
    escape_into(out, token);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;

    impl CitationLinks for Plain {
        fn link(&self, raw: &str, _: &CitationTarget, inner: &str, out: &mut String) {
            out.push_str(&format!(
                "<a data-cite=\"{}\">{inner}</a>",
                super::super::html::escape(raw)
            ));
        }
    }

    #[test]
    fn renders_the_subset() {
        let cases = [
            ("hello\nworld", "<p>hello\nworld</p>"),
            ("# Title", "<h3>Title</h3>"),
            (
                "- a\n- [x] b\n- [ ] c",
                "<ul><li>a</li><li><span class=\"box done\" aria-label=\"done\">✓</span> b</li><li><span class=\"box\" aria-label=\"not done\">✗</span> c</li></ul>",
            ),
            ("1. one\n2. two", "<ol><li>one</li><li>two</li></ol>"),
            ("```\n<b>x</b>\n```", "<pre><code>&lt;b&gt;x&lt;/b&gt;\n</code></pre>"),
            ("use `x < y` **now**", "<p>use <code>x &lt; y</code> <strong>now</strong></p>"),
            ("odd ` tick", "<p>odd ` tick</p>"),
            (
                "see src/a.rs:L1-L2.",
                "<p>see <a data-cite=\"src/a.rs:L1-L2\">src/a.rs:L1-L2</a>.</p>",
            ),
            (
                "see `log:3#L1-L4`",
                "<p>see <a data-cite=\"log:3#L1-L4\"><code>log:3#L1-L4</code></a></p>",
            ),
            (
                "at https://example.com/x.",
                "<p>at <a href=\"https://example.com/x\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">https://example.com/x</a>.</p>",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(render(input, &Plain), want, "{input:?}");
        }
    }

    #[test]
    fn hostile_text_stays_text() {
        let hostile = "<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)> \
                       \"><svg onload=alert(1)>.rs:L1 https://x\"onmouseover=\"alert(1)";
        let html = render(hostile, &Plain);
        for bad in
            ["<script", "<img", "<svg", "href=\"javascript", "\" onmouseover", "\"onmouseover"]
        {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
