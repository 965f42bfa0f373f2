//! The scanner: one pass over a line, tokens wrapped in their classes, state carried to the
//! next line.

use super::*;

/// Writes the HTML of one line, flushing plain text between the spans.
struct Emit<'a> {
    out: &'a mut String,
    line: &'a str,
    plain: usize,
}

impl Emit<'_> {
    fn flush(&mut self, to: usize) {
        if to > self.plain {
            text_into(self.out, &self.line[self.plain..to]);
            self.plain = to;
        }
    }

    /// `line[start..end]` in a span of `class`; `start` and `end` are on char boundaries because
    /// the scanner only stops at ASCII bytes or at the end of the line.
    fn span(&mut self, start: usize, end: usize, class: &str) {
        if start >= end {
            return;
        }
        self.flush(start);
        self.out.push_str("<span class=\"");
        self.out.push_str(class);
        self.out.push_str("\">");
        text_into(self.out, &self.line[start..end]);
        self.out.push_str("</span>");
        self.plain = end;
    }
}

impl Highlighter {
    pub fn new(lang: Language) -> Self {
        Highlighter { lang, carry: Carry::Code }
    }

    /// Appends one line (without its newline) as HTML to `out`.
    pub fn line(&mut self, line: &str, out: &mut String) {
        let mut emit = Emit { out, line, plain: 0 };
        match (self.lang, syntax(self.lang)) {
            (_, Some(syntax)) => self.code_line(syntax, &mut emit),
            (Language::Markup, None) => self.markup_line(&mut emit),
            _ => {}
        }
        emit.flush(line.len());
    }

    fn code_line(&mut self, syn: &Syntax, emit: &mut Emit) {
        let b = emit.line.as_bytes();
        let mut i = match self.carry {
            Carry::Comment { depth } => self.block_comment(syn, b, 0, 0, depth, emit),
            Carry::Str(end) => self.string(b, 0, 0, end, true, emit),
            _ => 0,
        };
        let indent = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
        while i < b.len() {
            i = self.token(syn, b, i, indent, emit);
        }
    }

    /// Colours the token starting at `i`, if any, and returns where scanning continues.
    fn token(&mut self, syn: &Syntax, b: &[u8], i: usize, indent: usize, emit: &mut Emit) -> usize {
        let c = b[i];
        let rest = &b[i..];
        for comment in syn.line_comments {
            let after_space = i == 0 || b[i - 1].is_ascii_whitespace();
            if rest.starts_with(comment.as_bytes())
                && (*comment != "#" || !syn.hash_after_space || after_space)
            {
                emit.span(i, b.len(), "c");
                return b.len();
            }
        }
        if let Some((open, _)) = syn.block_comment
            && rest.starts_with(open.as_bytes())
        {
            return self.block_comment(syn, b, i, i + open.len(), 1, emit);
        }
        let prev_word = i > 0 && is_word(syn, b[i - 1]);
        match self.lang {
            Language::Rust if c == b'\'' => {
                if let Some(end) = rust_char_end(b, i) {
                    emit.span(i, end, "s");
                    return end;
                }
                // A lifetime or a label: the name after it is coloured as an identifier.
                return i + 1;
            }
            Language::Rust if !prev_word && (c == b'r' || c == b'b') => {
                if let Some((hashes, body)) = rust_raw_open(b, i) {
                    return self.string(b, i, body, StrEnd::Raw { hashes }, true, emit);
                }
            }
            Language::CFamily if c == b'#' && i == indent => {
                // A preprocessor directive.
                let end = i + 1 + b[i + 1..].iter().take_while(|&&c| is_word(syn, c)).count();
                emit.span(i, end, "k");
                return end;
            }
            // INI comments; an apostrophe inside a word (`don't`) opens no string.
            Language::Config if c == b';' && i == indent => {
                emit.span(i, b.len(), "c");
                return b.len();
            }
            Language::Config if c == b'\'' && prev_word => return i + 1,
            _ => {}
        }
        for quote in syn.strings {
            if rest.starts_with(quote.open.as_bytes()) {
                let body = i + quote.open.len();
                return self.string(b, i, body, quote.end, quote.multiline, emit);
            }
        }
        if prev_word {
            return i + 1;
        }
        if c.is_ascii_digit() {
            let mut end = i + 1;
            while end < b.len()
                && (b[end].is_ascii_alphanumeric()
                    || b[end] == b'_'
                    || (b[end] == b'.' && b.get(end + 1).is_some_and(u8::is_ascii_digit)))
            {
                end += 1;
            }
            emit.span(i, end, "n");
            return end;
        }
        if c.is_ascii_alphabetic() || c == b'_' || syn.ident_start_extra.contains(&c) {
            let end = i + 1 + b[i + 1..].iter().take_while(|&&c| is_word(syn, c)).count();
            // Safe slice: `i` is an ASCII byte and `end` is at an ASCII byte or the end.
            if let Some(class) = classify(syn, &emit.line[i..end]) {
                emit.span(i, end, class);
            }
            return end;
        }
        i + 1
    }

    /// A block comment from `start` whose body continues at `from`, `depth` levels deep.
    fn block_comment(
        &mut self,
        syn: &Syntax,
        b: &[u8],
        start: usize,
        from: usize,
        mut depth: u32,
        emit: &mut Emit,
    ) -> usize {
        let Some((open, close)) = syn.block_comment else { return start };
        let (open, close) = (open.as_bytes(), close.as_bytes());
        let mut i = from;
        while i < b.len() {
            if b[i..].starts_with(close) {
                i += close.len();
                depth -= 1;
                if depth == 0 {
                    emit.span(start, i, "c");
                    self.carry = Carry::Code;
                    return i;
                }
            } else if syn.nested_comments && b[i..].starts_with(open) {
                i += open.len();
                depth = depth.saturating_add(1);
            } else {
                i += 1;
            }
        }
        emit.span(start, b.len(), "c");
        self.carry = Carry::Comment { depth };
        b.len()
    }

    /// A string literal from `start` whose body continues at `from`.
    fn string(
        &mut self,
        b: &[u8],
        start: usize,
        from: usize,
        end: StrEnd,
        multiline: bool,
        emit: &mut Emit,
    ) -> usize {
        match string_end(b, from, end) {
            Some(stop) => {
                emit.span(start, stop, "s");
                self.carry = Carry::Code;
                stop
            }
            None => {
                emit.span(start, b.len(), "s");
                self.carry = if multiline { Carry::Str(end) } else { Carry::Code };
                b.len()
            }
        }
    }

    /// Markup: comments, tag names and quoted attribute values; text and the contents of
    /// `<script>` and `<style>` are left plain.
    fn markup_line(&mut self, emit: &mut Emit) {
        let line = emit.line;
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match self.carry {
                Carry::Comment { .. } => {
                    i = self.markup_comment(i, i, emit);
                }
                Carry::TagStr(quote) => {
                    let (end, closed) = match b[i..].iter().position(|&c| c == quote) {
                        Some(at) => (i + at + 1, true),
                        None => (b.len(), false),
                    };
                    emit.span(i, end, "s");
                    self.carry = if closed { Carry::Tag } else { Carry::TagStr(quote) };
                    i = end;
                }
                Carry::Tag => match b[i] {
                    b'>' => {
                        self.carry = Carry::Code;
                        i += 1;
                    }
                    quote @ (b'"' | b'\'') => {
                        let (end, closed) = match b[i + 1..].iter().position(|&c| c == quote) {
                            Some(at) => (i + 2 + at, true),
                            None => (b.len(), false),
                        };
                        emit.span(i, end, "s");
                        self.carry = if closed { Carry::Tag } else { Carry::TagStr(quote) };
                        i = end;
                    }
                    _ => i += 1,
                },
                Carry::Code | Carry::Str(_) => {
                    if b[i] != b'<' {
                        i += 1;
                    } else if b[i..].starts_with(b"<!--") {
                        i = self.markup_comment(i, i + 4, emit);
                    } else {
                        let name =
                            i + 1 + usize::from(matches!(b.get(i + 1), Some(b'/' | b'?' | b'!')));
                        if b.get(name).is_some_and(u8::is_ascii_alphabetic) {
                            let end = name
                                + b[name..]
                                    .iter()
                                    .take_while(|&&c| {
                                        c.is_ascii_alphanumeric()
                                            || matches!(c, b'_' | b':' | b'.' | b'-')
                                    })
                                    .count();
                            emit.span(name, end, "t");
                            self.carry = Carry::Tag;
                            i = end;
                        } else {
                            i += 1;
                        }
                    }
                }
            }
        }
    }

    /// A markup comment from `start` whose body continues at `from`.
    fn markup_comment(&mut self, start: usize, from: usize, emit: &mut Emit) -> usize {
        let (end, closed) = match emit.line[from..].find("-->") {
            Some(at) => (from + at + 3, true),
            None => (emit.line.len(), false),
        };
        emit.span(start, end, "c");
        self.carry = if closed { Carry::Code } else { Carry::Comment { depth: 1 } };
        end
    }
}

fn is_word(syn: &Syntax, byte: u8) -> bool {
    // Bytes of non-ASCII characters count as word bytes, so `é1` holds no number.
    byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80 || syn.ident_extra.contains(&byte)
}

fn classify(syn: &Syntax, word: &str) -> Option<&'static str> {
    let find = |list: &[&str]| {
        if syn.any_case {
            list.binary_search_by(|k| k.bytes().cmp(word.bytes().map(|c| c.to_ascii_lowercase())))
                .is_ok()
        } else {
            list.binary_search(&word).is_ok()
        }
    };
    if find(syn.keywords) {
        Some("k")
    } else if find(syn.types)
        || (syn.capitalized_types
            && word.as_bytes()[0].is_ascii_uppercase()
            && word.bytes().any(|c| c.is_ascii_lowercase()))
    {
        Some("t")
    } else {
        None
    }
}

/// Where the string ending with `end` whose body starts at `from` ends (after its closing
/// quote), or `None` when it does not end on this line.
fn string_end(b: &[u8], from: usize, end: StrEnd) -> Option<usize> {
    let mut i = from;
    while i < b.len() {
        match end {
            StrEnd::Quote { escapes: true, .. } | StrEnd::Triple { escapes: true, .. }
                if b[i] == b'\\' =>
            {
                i += 2;
                continue;
            }
            StrEnd::Quote { quote, .. } if b[i] == quote => return Some(i + 1),
            StrEnd::Triple { quote, .. } if b[i..].starts_with(&[quote; 3]) => return Some(i + 3),
            StrEnd::Raw { hashes } if b[i] == b'"' => {
                let closing = b[i + 1..].iter().take(hashes).take_while(|&&c| c == b'#').count();
                if closing == hashes {
                    return Some(i + 1 + hashes);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The end of a Rust character literal at `i` (`'x'`, `'é'`, `'\n'`, `'\u{1F600}'`), or
/// `None` for a lifetime or label.
fn rust_char_end(b: &[u8], i: usize) -> Option<usize> {
    let rest = &b[i + 1..];
    if rest.first() == Some(&b'\\') {
        // The longest escape is `\u{10FFFF}`: the closing quote is within 10 bytes.
        let window = &rest[rest.len().min(2)..rest.len().min(11)];
        return window.iter().position(|&c| c == b'\'').map(|at| i + 1 + 2 + at + 1);
    }
    let first = *rest.first()?;
    let width = match first {
        b'\'' => return None,
        0..0x80 => 1,
        0x80..0xE0 => 2,
        0xE0..0xF0 => 3,
        _ => 4,
    };
    (rest.get(width) == Some(&b'\'')).then_some(i + 1 + width + 1)
}

/// A Rust raw string opening at `i` (`r"`, `r#"`, `br##"`): its number of `#` and where its
/// body starts. Rust allows at most 255 `#`, which also bounds the look-ahead.
fn rust_raw_open(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let after_r = match (b[i], b.get(i + 1)) {
        (b'r', _) => i + 1,
        (b'b', Some(b'r')) => i + 2,
        _ => return None,
    };
    let hashes = b[after_r..].iter().take(256).take_while(|&&c| c == b'#').count();
    (hashes < 256 && b.get(after_r + hashes) == Some(&b'"'))
        .then_some((hashes, after_r + hashes + 1))
}
