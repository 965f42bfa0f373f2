//! Syntax colouring for the diff and file views: a small table-driven scanner per language
//! (comments, strings, numbers, keywords, types), no dependencies.
//!
//! Why not a real grammar: a reviewer's eye needs comments and strings told apart from code, not
//! a parse tree, and a hostile repository may hold a 5 MB single line or 100,000 quotes in a
//! row. So the scanner makes one pass over each line, never backtracks (an unterminated string
//! simply runs to the end of its line, or on to the next lines where the language allows it), and
//! colours what needs context (JavaScript regex literals, shell here-documents, string
//! interpolation) approximately, never unsafely.
//!
//! Output is escaped HTML, one line per call, every `<span>` closed on the line that opened it so
//! each line can stand in its own table cell. State that spans lines (block comments, triple
//! quoted and other multi-line strings, an HTML tag's attributes) carries over to the next call.
//!
//! CSS classes: `k` keyword, `s` string or character literal, `c` comment, `n` number, `t` type,
//! builtin or tag name, and `bidi`: a bidirectional-override control character (Trojan Source,
//! CVE-2021-42574) shown as its code point (`U+202E`) instead of being obeyed, so code cannot
//! read differently from what it is.

use std::fmt::Write as _;

use super::html::escape_into;

/// The colouring rules for a file, chosen by [`Language::from_path`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Rust,
    Python,
    /// JavaScript and TypeScript.
    JavaScript,
    Go,
    /// C, C++, Java, Kotlin, C#, Swift, Scala and their kin: `//` and `/* */`, one keyword set.
    CFamily,
    Shell,
    /// Shell-like `#` comments and strings; the instructions (`FROM`, `RUN`) are keywords.
    Dockerfile,
    Ruby,
    /// TOML, YAML, INI and `.conf` files: `#` comments, strings, booleans.
    Config,
    Json,
    Sql,
    Css,
    /// HTML, XML, SVG: comments, tag names, attribute values.
    Markup,
    /// Markdown, text and anything unknown: escaped, not coloured.
    Plain,
}

impl Language {
    /// The language of `path` by its well-known file name or its extension.
    pub fn from_path(path: &str) -> Language {
        use Language::*;
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        match name.as_str() {
            "dockerfile" | "containerfile" => return Dockerfile,
            "makefile" | "gnumakefile" | ".bashrc" | ".bash_profile" | ".zshrc" | ".profile"
            | ".envrc" => return Shell,
            "gemfile" | "rakefile" | "vagrantfile" | "podfile" => return Ruby,
            ".gitignore" | ".gitattributes" | ".gitmodules" | ".dockerignore" | ".editorconfig"
            | ".env" | "cmakelists.txt" => return Config,
            _ => {}
        }
        if name.starts_with("dockerfile.") || name.ends_with(".dockerfile") {
            return Dockerfile;
        }
        let Some((_, extension)) = name.rsplit_once('.') else { return Plain };
        match extension {
            "rs" => Rust,
            "py" | "pyi" | "pyw" => Python,
            "js" | "jsx" | "mjs" | "cjs" | "ts" | "tsx" | "mts" | "cts" => JavaScript,
            "go" => Go,
            "c" | "h" | "cc" | "cpp" | "cxx" | "hh" | "hpp" | "hxx" | "java" | "kt" | "kts"
            | "cs" | "swift" | "scala" | "groovy" | "gradle" | "dart" | "proto" => CFamily,
            "sh" | "bash" | "zsh" | "ksh" | "fish" | "mk" => Shell,
            "rb" | "rake" | "gemspec" => Ruby,
            "toml" | "yaml" | "yml" | "ini" | "cfg" | "conf" | "properties" | "env" => Config,
            "json" | "jsonc" | "json5" => Json,
            "sql" => Sql,
            "css" | "scss" | "less" => Css,
            "html" | "htm" | "xhtml" | "xml" | "svg" | "xsl" | "xslt" | "vue" | "svelte"
            | "plist" => Markup,
            _ => Plain,
        }
    }
}

/// Colours the lines of one file (or one side of one hunk) in order.
pub struct Highlighter {
    lang: Language,
    carry: Carry,
}

/// What the previous line left open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carry {
    Code,
    Comment {
        depth: u32,
    },
    Str(StrEnd),
    /// Inside a markup tag, after its name.
    Tag,
    /// Inside a markup attribute value quoted with this byte.
    TagStr(u8),
}

/// How a string literal ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StrEnd {
    /// At the next `quote`, unless a backslash escapes it (when `escapes`).
    Quote { quote: u8, escapes: bool },
    /// At three `quote`s in a row (Python, TOML, Kotlin/Swift/Java text blocks).
    Triple { quote: u8, escapes: bool },
    /// Rust raw strings: at `"` followed by `hashes` `#`.
    Raw { hashes: usize },
}

struct Quote {
    open: &'static str,
    end: StrEnd,
    /// The literal may continue on the next line; otherwise an unterminated one ends there.
    multiline: bool,
}

const fn quote(open: &'static str, end: StrEnd, multiline: bool) -> Quote {
    Quote { open, end, multiline }
}
const fn single(byte: u8, escapes: bool) -> StrEnd {
    StrEnd::Quote { quote: byte, escapes }
}
const fn triple(byte: u8, escapes: bool) -> StrEnd {
    StrEnd::Triple { quote: byte, escapes }
}

/// One language's rules. Keyword and type lists are sorted (a test checks) for binary search.
struct Syntax {
    line_comments: &'static [&'static str],
    /// `#` starts a comment only at the start of a line or after whitespace (shell `${#x}`,
    /// YAML `url: a#b`).
    hash_after_space: bool,
    block_comment: Option<(&'static str, &'static str)>,
    /// Block comments nest (Rust).
    nested_comments: bool,
    /// Tried in order: longer openers first.
    strings: &'static [Quote],
    keywords: &'static [&'static str],
    types: &'static [&'static str],
    /// Keywords match in any case (SQL); the lists are lower case.
    any_case: bool,
    /// An identifier starting upper case with a lower-case letter in it (`HashMap`) is a type.
    capitalized_types: bool,
    /// Bytes that may continue an identifier besides ASCII letters, digits and `_`.
    ident_extra: &'static [u8],
    /// Bytes that may start one besides ASCII letters and `_`.
    ident_start_extra: &'static [u8],
}

const BASE: Syntax = Syntax {
    line_comments: &[],
    hash_after_space: false,
    block_comment: None,
    nested_comments: false,
    strings: &[],
    keywords: &[],
    types: &[],
    any_case: false,
    capitalized_types: false,
    ident_extra: &[],
    ident_start_extra: &[],
};

const C_COMMENT: Option<(&str, &str)> = Some(("/*", "*/"));

#[rustfmt::skip]
static RUST: Syntax = Syntax {
    line_comments: &["//"],
    block_comment: C_COMMENT,
    nested_comments: true,
    strings: &[quote("\"", single(b'"', true), true)],
    keywords: &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
        "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
        "type", "union", "unsafe", "use", "where", "while", "yield",
    ],
    types: &[
        "bool", "char", "f32", "f64", "i128", "i16", "i32", "i64", "i8", "isize", "str", "u128",
        "u16", "u32", "u64", "u8", "usize",
    ],
    capitalized_types: true,
    ..BASE
};

#[rustfmt::skip]
static PYTHON: Syntax = Syntax {
    line_comments: &["#"],
    strings: &[
        quote("\"\"\"", triple(b'"', true), true),
        quote("'''", triple(b'\'', true), true),
        quote("\"", single(b'"', true), false),
        quote("'", single(b'\'', true), false),
    ],
    keywords: &[
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "case", "class",
        "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
        "if", "import", "in", "is", "lambda", "match", "nonlocal", "not", "or", "pass", "raise",
        "return", "try", "while", "with", "yield",
    ],
    types: &[
        "bool", "bytes", "dict", "float", "int", "len", "list", "object", "print", "range", "self",
        "set", "str", "super", "tuple", "type",
    ],
    capitalized_types: true,
    ..BASE
};

#[rustfmt::skip]
static JAVASCRIPT: Syntax = Syntax {
    line_comments: &["//"],
    block_comment: C_COMMENT,
    strings: &[
        quote("`", single(b'`', true), true),
        quote("\"", single(b'"', true), false),
        quote("'", single(b'\'', true), false),
    ],
    keywords: &[
         "abstract", "as", "async", "await", "break", "case", "catch", "class", "const",
         "constructor", "continue", "debugger", "declare", "default", "delete", "do", "else",
         "enum", "export", "extends", "false", "finally", "for", "from", "function", "get", "if",
         "implements", "import", "in", "instanceof", "interface", "let", "new", "null", "of",
         "private", "protected", "public", "readonly", "return", "set", "static", "super", "switch",
         "this", "throw", "true", "try", "type", "typeof", "undefined", "var", "void", "while",
         "with", "yield",
     ],
    types: &[
        "any", "bigint", "boolean", "never", "number", "object", "string", "symbol", "unknown",
    ],
    capitalized_types: true,
    ident_extra: b"$",
    ident_start_extra: b"$",
    ..BASE
};

#[rustfmt::skip]
static GO: Syntax = Syntax {
    line_comments: &["//"],
    block_comment: C_COMMENT,
    strings: &[
        quote("`", single(b'`', false), true),
        quote("\"", single(b'"', true), false),
        quote("'", single(b'\'', true), false),
    ],
    keywords: &[
         "break", "case", "chan", "const", "continue", "default", "defer", "else", "fallthrough",
         "false", "for", "func", "go", "goto", "if", "import", "interface", "iota", "map", "nil",
         "package", "range", "return", "select", "struct", "switch", "true", "type", "var",
     ],
    types: &[
         "any", "append", "bool", "byte", "cap", "close", "complex128", "complex64", "copy",
         "delete", "error", "float32", "float64", "int", "int16", "int32", "int64", "int8", "len",
         "make", "new", "panic", "recover", "rune", "string", "uint", "uint16", "uint32", "uint64",
         "uint8", "uintptr",
     ],
    ..BASE
};

#[rustfmt::skip]
static C_FAMILY: Syntax = Syntax {
    line_comments: &["//"],
    block_comment: C_COMMENT,
    strings: &[
        quote("\"\"\"", triple(b'"', true), true),
        quote("\"", single(b'"', true), false),
        quote("'", single(b'\'', true), false),
    ],
    keywords: &[
         "abstract", "as", "auto", "break", "case", "catch", "class", "const", "constexpr",
         "continue", "data", "default", "delete", "do", "else", "enum", "explicit", "extends",
         "extension", "extern", "false", "final", "finally", "for", "fun", "func", "goto", "guard",
         "if", "implements", "import", "in", "inline", "interface", "internal", "is", "let",
         "namespace", "new", "nil", "null", "nullptr", "object", "operator", "override", "package",
         "private", "protected", "protocol", "public", "record", "return", "sealed", "static",
         "struct", "super", "switch", "synchronized", "template", "this", "throw", "throws",
         "trait", "true", "try", "typedef", "typename", "union", "using", "val", "var", "virtual",
         "volatile", "when", "where", "while", "yield",
     ],
    types: &[
        "bool", "boolean", "byte", "char", "double", "float", "int", "long", "short", "signed",
        "size_t", "string", "unsigned", "void",
    ],
    capitalized_types: true,
    ..BASE
};

const SHELL_STRINGS: &[Quote] =
    &[quote("\"", single(b'"', true), true), quote("'", single(b'\'', false), true)];

#[rustfmt::skip]
static SHELL: Syntax = Syntax {
    line_comments: &["#"],
    hash_after_space: true,
    strings: SHELL_STRINGS,
    keywords: &[
        "case", "do", "done", "elif", "else", "esac", "export", "fi", "for", "function", "if",
        "in", "local", "readonly", "return", "select", "then", "until", "while",
    ],
    types: &["cd", "echo", "eval", "exec", "exit", "printf", "read", "set", "shift", "source"],
    ..BASE
};

#[rustfmt::skip]
static DOCKERFILE: Syntax = Syntax {
    line_comments: &["#"],
    hash_after_space: true,
    strings: SHELL_STRINGS,
    keywords: &[
         "ADD", "ARG", "AS", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
         "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
         "WORKDIR",
     ],
    ..BASE
};

#[rustfmt::skip]
static RUBY: Syntax = Syntax {
    line_comments: &["#"],
    strings: &[quote("\"", single(b'"', true), true), quote("'", single(b'\'', true), true)],
    keywords: &[
        "BEGIN", "END", "alias", "and", "begin", "break", "case", "class", "def", "do", "else",
        "elsif", "end", "ensure", "false", "for", "if", "in", "module", "next", "nil", "not", "or",
        "redo", "require", "rescue", "retry", "return", "self", "super", "then", "true", "undef",
        "unless", "until", "when", "while", "yield",
    ],
    capitalized_types: true,
    ..BASE
};

#[rustfmt::skip]
static CONFIG: Syntax = Syntax {
    line_comments: &["#"],
    hash_after_space: true,
    strings: &[
        quote("\"\"\"", triple(b'"', true), true),
        quote("'''", triple(b'\'', false), true),
        quote("\"", single(b'"', true), false),
        quote("'", single(b'\'', false), false),
    ],
    keywords: &["false", "no", "null", "off", "on", "true", "yes"],
    ..BASE
};

#[rustfmt::skip]
static JSON: Syntax = Syntax {
    // Not JSON, but JSONC and JSON5 have them, and `//` cannot occur outside a string in JSON.
    line_comments: &["//"],
    block_comment: C_COMMENT,
    strings: &[quote("\"", single(b'"', true), false)],
    keywords: &["false", "null", "true"],
    ..BASE
};

#[rustfmt::skip]
static SQL: Syntax = Syntax {
    line_comments: &["--"],
    block_comment: C_COMMENT,
    // SQL escapes a quote by doubling it, which reads as one string ending and the next starting.
    strings: &[quote("'", single(b'\'', false), true), quote("\"", single(b'"', false), false)],
    keywords: &[
         "add", "all", "alter", "and", "as", "asc", "begin", "between", "by", "case", "check",
         "commit", "constraint", "create", "cross", "default", "delete", "desc", "distinct", "drop",
         "else", "end", "exists", "foreign", "from", "full", "group", "having", "if", "in", "index",
         "inner", "insert", "into", "is", "join", "key", "left", "like", "limit", "not", "null",
         "offset", "on", "or", "order", "outer", "primary", "references", "returning", "right",
         "rollback", "select", "set", "table", "then", "transaction", "trigger", "union", "unique",
         "update", "using", "values", "view", "when", "where", "with",
     ],
    types: &[
         "bigint", "blob", "boolean", "char", "date", "decimal", "double", "float", "int",
         "integer", "real", "serial", "text", "timestamp", "varchar",
     ],
    any_case: true,
    ..BASE
};

#[rustfmt::skip]
static CSS: Syntax = Syntax {
    block_comment: C_COMMENT,
    strings: &[quote("\"", single(b'"', true), false), quote("'", single(b'\'', true), false)],
    keywords: &[
         "@charset", "@container", "@font-face", "@import", "@keyframes", "@layer", "@media",
         "@namespace", "@page", "@supports",
     ],
    ident_extra: b"-",
    ident_start_extra: b"@",
    ..BASE
};

fn syntax(lang: Language) -> Option<&'static Syntax> {
    Some(match lang {
        Language::Rust => &RUST,
        Language::Python => &PYTHON,
        Language::JavaScript => &JAVASCRIPT,
        Language::Go => &GO,
        Language::CFamily => &C_FAMILY,
        Language::Shell => &SHELL,
        Language::Dockerfile => &DOCKERFILE,
        Language::Ruby => &RUBY,
        Language::Config => &CONFIG,
        Language::Json => &JSON,
        Language::Sql => &SQL,
        Language::Css => &CSS,
        Language::Markup | Language::Plain => return None,
    })
}

/// A whole file as HTML, one string per line (a trailing newline does not make an empty last
/// line; a `\r` before a newline is dropped).
pub fn lines(path: &str, text: &str) -> Vec<String> {
    let mut highlighter = Highlighter::new(Language::from_path(path));
    if text.is_empty() {
        return Vec::new();
    }
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.split('\n')
        .map(|line| {
            let mut out = String::with_capacity(line.len() + 32);
            highlighter.line(line.strip_suffix('\r').unwrap_or(line), &mut out);
            out
        })
        .collect()
}

/// Appends `text` escaped ([`escape_into`]) with the bidirectional embedding, override and
/// isolate controls (U+202A–U+202E, U+2066–U+2069) shown as `<span class="bidi">U+202E</span>`:
/// obeyed, they can make a line read differently from what it is.
pub fn text_into(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut last = 0;
    let mut i = 0;
    while i + 2 < bytes.len() {
        // UTF-8: U+202A..U+202E are E2 80 AA..AE, U+2066..U+2069 are E2 81 A6..A9.
        let code = match (bytes[i], bytes[i + 1], bytes[i + 2]) {
            (0xE2, 0x80, low @ 0xAA..=0xAE) => 0x2000 + u32::from(low - 0x80),
            (0xE2, 0x81, low @ 0xA6..=0xA9) => 0x2040 + u32::from(low - 0x80),
            _ => {
                i += 1;
                continue;
            }
        };
        escape_into(out, &text[last..i]);
        let _ = write!(out, "<span class=\"bidi\">U+{code:04X}</span>");
        i += 3;
        last = i;
    }
    escape_into(out, &text[last..]);
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn render(lang: Language, lines: &[&str]) -> Vec<String> {
        let mut highlighter = Highlighter::new(lang);
        lines
            .iter()
            .map(|line| {
                let mut out = String::new();
                highlighter.line(line, &mut out);
                out
            })
            .collect()
    }

    /// The output with its spans removed: what is left must be escaped text only.
    fn assert_only_spans(html: &str, input: &str) {
        let mut rest = html.replace("</span>", "");
        for class in ["k", "s", "c", "n", "t", "bidi"] {
            rest = rest.replace(&format!("<span class=\"{class}\">"), "");
        }
        assert!(!rest.contains(['<', '>', '"', '\'']), "{input:?} gave {html:?}");
        assert_eq!(html.matches("<span").count(), html.matches("</span>").count(), "{html:?}");
    }

    #[test]
    fn colours_tokens() {
        use Language::*;
        let cases: &[(Language, &[&str], &[&str])] = &[
            (
                Rust,
                &["let x = 5; // hi"],
                &[
                    r#"<span class="k">let</span> x = <span class="n">5</span>; <span class="c">// hi</span>"#,
                ],
            ),
            (
                Rust,
                &[r#"f("a\"b", 'c')"#],
                &[
                    r#"f(<span class="s">&quot;a\&quot;b&quot;</span>, <span class="s">&#39;c&#39;</span>)"#,
                ],
            ),
            (
                Rust,
                &["a /* b", "c */ d"],
                &[r#"a <span class="c">/* b</span>"#, r#"<span class="c">c */</span> d"#],
            ),
            (Rust, &["/* /* */ x */ y"], &[r#"<span class="c">/* /* */ x */</span> y"#]),
            (Rust, &[r##"r#"a"b"# c"##], &[r#"<span class="s">r#&quot;a&quot;b&quot;#</span> c"#]),
            (Rust, &["x = br\"\\\" y"], &[r#"x = <span class="s">br&quot;\&quot;</span> y"#]),
            (Rust, &["&'a str"], &[r#"&amp;&#39;a <span class="t">str</span>"#]),
            (
                Rust,
                &[r"'\n' '\u{1F600}' 'é'"],
                &[
                    r#"<span class="s">&#39;\n&#39;</span> <span class="s">&#39;\u{1F600}&#39;</span> <span class="s">&#39;é&#39;</span>"#,
                ],
            ),
            (
                Rust,
                &["Vec<String> HTTP"],
                &[r#"<span class="t">Vec</span>&lt;<span class="t">String</span>&gt; HTTP"#],
            ),
            (
                Rust,
                &["let s = \"one", "two\";"],
                &[
                    r#"<span class="k">let</span> s = <span class="s">&quot;one</span>"#,
                    r#"<span class="s">two&quot;</span>;"#,
                ],
            ),
            (
                Rust,
                &["x1 = 1.5e3 + 0x1F..2", "é1"],
                &[
                    r#"x1 = <span class="n">1.5e3</span> + <span class="n">0x1F</span>..<span class="n">2</span>"#,
                    "é1",
                ],
            ),
            (
                Python,
                &["x = \"\"\"doc", "more\"\"\"  # c"],
                &[
                    r#"x = <span class="s">&quot;&quot;&quot;doc</span>"#,
                    r#"<span class="s">more&quot;&quot;&quot;</span>  <span class="c"># c</span>"#,
                ],
            ),
            (Python, &["s = 'abc", "y"], &[r#"s = <span class="s">&#39;abc</span>"#, "y"]),
            (
                Python,
                &["def f(self): return None"],
                &[
                    r#"<span class="k">def</span> f(<span class="t">self</span>): <span class="k">return</span> <span class="k">None</span>"#,
                ],
            ),
            (
                JavaScript,
                &["const t = `a", "${b}` // c"],
                &[
                    r#"<span class="k">const</span> t = <span class="s">`a</span>"#,
                    r#"<span class="s">${b}`</span> <span class="c">// c</span>"#,
                ],
            ),
            (JavaScript, &["$x = null"], &["$x = <span class=\"k\">null</span>"]),
            (
                Go,
                &["s := `a\\`+\"b\""],
                &[r#"s := <span class="s">`a\`</span>+<span class="s">&quot;b&quot;</span>"#],
            ),
            (
                CFamily,
                &["  #include <stdio.h>", "int x; // c"],
                &[
                    r#"  <span class="k">#include</span> &lt;stdio.h&gt;"#,
                    r#"<span class="t">int</span> x; <span class="c">// c</span>"#,
                ],
            ),
            (
                CFamily,
                &["String s = \"\"\"", "text\"\"\";"],
                &[
                    r#"<span class="t">String</span> s = <span class="s">&quot;&quot;&quot;</span>"#,
                    r#"<span class="s">text&quot;&quot;&quot;</span>;"#,
                ],
            ),
            (
                Shell,
                &["echo ${#x} a#b # c"],
                &[r#"<span class="t">echo</span> ${#x} a#b <span class="c"># c</span>"#],
            ),
            (
                Shell,
                &["if [ -f x ]; then", "echo 'a", "b'; fi"],
                &[
                    r#"<span class="k">if</span> [ -f x ]; <span class="k">then</span>"#,
                    r#"<span class="t">echo</span> <span class="s">&#39;a</span>"#,
                    r#"<span class="s">b&#39;</span>; <span class="k">fi</span>"#,
                ],
            ),
            (
                Dockerfile,
                &["FROM rust AS build # base"],
                &[
                    r#"<span class="k">FROM</span> rust <span class="k">AS</span> build <span class="c"># base</span>"#,
                ],
            ),
            (
                Config,
                &["note: don't # c", "; ini", "url: http://a/#b", "name = \"x\" # y"],
                &[
                    r#"note: don&#39;t <span class="c"># c</span>"#,
                    r#"<span class="c">; ini</span>"#,
                    "url: http://a/#b",
                    r#"name = <span class="s">&quot;x&quot;</span> <span class="c"># y</span>"#,
                ],
            ),
            (Config, &["on: true"], &[r#"<span class="k">on</span>: <span class="k">true</span>"#]),
            (
                Json,
                &[r#"{"a": [1, true, null]}"#],
                &[
                    r#"{<span class="s">&quot;a&quot;</span>: [<span class="n">1</span>, <span class="k">true</span>, <span class="k">null</span>]}"#,
                ],
            ),
            (
                Sql,
                &["SELECT 'it''s' FROM t -- c"],
                &[
                    r#"<span class="k">SELECT</span> <span class="s">&#39;it&#39;</span><span class="s">&#39;s&#39;</span> <span class="k">FROM</span> t <span class="c">-- c</span>"#,
                ],
            ),
            (
                Sql,
                &["create table x (id Integer)"],
                &[
                    r#"<span class="k">create</span> <span class="k">table</span> x (id <span class="t">Integer</span>)"#,
                ],
            ),
            (
                Css,
                &["@media (max-width: 10px) { a { color: #fff } } /* c */"],
                &[
                    r#"<span class="k">@media</span> (max-width: <span class="n">10px</span>) { a { color: #fff } } <span class="c">/* c */</span>"#,
                ],
            ),
            (
                Markup,
                &[r#"<a href="x">t</a> a < b"#],
                &[
                    r#"&lt;<span class="t">a</span> href=<span class="s">&quot;x&quot;</span>&gt;t&lt;/<span class="t">a</span>&gt; a &lt; b"#,
                ],
            ),
            (
                Markup,
                &["x <!-- a", "b --> <br", "  class='p", "q'>"],
                &[
                    r#"x <span class="c">&lt;!-- a</span>"#,
                    r#"<span class="c">b --&gt;</span> &lt;<span class="t">br</span>"#,
                    r#"  class=<span class="s">&#39;p</span>"#,
                    r#"<span class="s">q&#39;</span>&gt;"#,
                ],
            ),
            (
                Markup,
                &["<?xml version=\"1.0\"?><!DOCTYPE html>"],
                &[
                    r#"&lt;?<span class="t">xml</span> version=<span class="s">&quot;1.0&quot;</span>?&gt;&lt;!<span class="t">DOCTYPE</span> html&gt;"#,
                ],
            ),
            (
                Plain,
                &["# Title <b>\"x\" & 'y'"],
                &["# Title &lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;"],
            ),
            (
                Plain,
                &["a\u{202E}b\u{2066}c\u{200F}"],
                &[
                    "a<span class=\"bidi\">U+202E</span>b<span class=\"bidi\">U+2066</span>c\u{200F}",
                ],
            ),
            (
                Rust,
                &["// x\u{202E}y"],
                &[r#"<span class="c">// x<span class="bidi">U+202E</span>y</span>"#],
            ),
        ];
        for (lang, input, want) in cases {
            assert_eq!(render(*lang, input), *want, "{lang:?} {input:?}");
        }
    }

    #[test]
    fn chooses_language_by_path() {
        use Language::*;
        let cases = [
            ("src/main.rs", Rust),
            ("a/b/tool.py", Python),
            ("web/app.tsx", JavaScript),
            ("x.mjs", JavaScript),
            ("main.go", Go),
            ("Foo.java", CFamily),
            ("lib.HPP", CFamily),
            ("App.kt", CFamily),
            ("build.sh", Shell),
            ("Makefile", Shell),
            ("docker/Dockerfile", Dockerfile),
            ("Dockerfile.dev", Dockerfile),
            ("Gemfile", Ruby),
            ("Cargo.toml", Config),
            ("ci.yml", Config),
            (".gitignore", Config),
            ("package.json", Json),
            ("schema.sql", Sql),
            ("site.css", Css),
            ("index.html", Markup),
            ("icon.svg", Markup),
            ("README.md", Plain),
            ("LICENSE", Plain),
            ("notes.", Plain),
            ("", Plain),
            ("dir.rs/file", Plain),
        ];
        for (path, want) in cases {
            assert_eq!(Language::from_path(path), want, "{path}");
        }
    }

    #[test]
    fn keyword_lists_are_sorted_for_binary_search() {
        for lang in ALL {
            let Some(syntax) = syntax(lang) else { continue };
            for list in [syntax.keywords, syntax.types] {
                assert!(list.windows(2).all(|pair| pair[0] < pair[1]), "{lang:?}: {list:?}");
                if syntax.any_case {
                    assert!(list.iter().all(|k| *k == k.to_ascii_lowercase()), "{lang:?}");
                }
            }
        }
    }

    const ALL: [Language; 14] = [
        Language::Rust,
        Language::Python,
        Language::JavaScript,
        Language::Go,
        Language::CFamily,
        Language::Shell,
        Language::Dockerfile,
        Language::Ruby,
        Language::Config,
        Language::Json,
        Language::Sql,
        Language::Css,
        Language::Markup,
        Language::Plain,
    ];

    const HOSTILE: &[&str] = &[
        "\"", "'", "`", "/*", "*/", "<!--", "-->", "<a ", "<", ">", "r#", "r###\"", "\"#", "'''",
        "\"\"\"", "\\", "#", "--", "//", "0", "a", "é", "&", "'a", "'\\", "\u{202E}", "$", "@",
    ];

    #[test]
    fn output_is_escaped_text_in_balanced_spans() {
        for lang in ALL {
            for a in HOSTILE {
                for b in HOSTILE {
                    let input =
                        [format!("{a}x{b}"), format!("{b}{a}<img src=x onerror=y>"), "\"'".into()];
                    let mut highlighter = Highlighter::new(lang);
                    for line in &input {
                        let mut out = String::new();
                        highlighter.line(line, &mut out);
                        assert_only_spans(&out, line);
                    }
                }
            }
        }
    }

    /// 20 kB of each pattern in each language, and 2 MB of the worst ones: a scanner that
    /// backtracks, or searches again from every position, would take minutes on these.
    #[test]
    fn huge_lines_take_linear_time() {
        let mut cases: Vec<(Language, String)> = vec![
            (Language::Rust, "\"".repeat(2_000_000)),
            (Language::Python, "'".repeat(2_000_000)),
            (Language::Markup, "<a '".repeat(500_000)),
        ];
        for lang in ALL {
            for pattern in HOSTILE {
                cases.push((lang, pattern.repeat(20_000 / pattern.len())));
            }
        }
        for (lang, line) in cases {
            let mut out = String::new();
            Highlighter::new(lang).line(&line, &mut out);
            assert!(out.len() >= line.len(), "{lang:?} {:?}", &line[..8]);
        }
    }

    #[test]
    fn lines_splits_a_whole_file() {
        assert_eq!(lines("a.py", ""), Vec::<String>::new());
        assert_eq!(
            lines("a.py", "x\r\n'''a\nb'''\n"),
            [
                "x",
                "<span class=\"s\">&#39;&#39;&#39;a</span>",
                "<span class=\"s\">b&#39;&#39;&#39;</span>",
            ]
        );
        assert_eq!(lines("a.txt", "a\n\nb"), ["a", "", "b"]);
        assert_eq!(lines("a.txt", "\n"), [""]);
    }
}
