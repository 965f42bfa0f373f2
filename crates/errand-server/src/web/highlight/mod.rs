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

mod scan;
#[cfg(test)]
mod tests;

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
