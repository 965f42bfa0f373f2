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
        (Plain, &["# Title <b>\"x\" & 'y'"], &["# Title &lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;"]),
        (
            Plain,
            &["a\u{202E}b\u{2066}c\u{200F}"],
            &["a<span class=\"bidi\">U+202E</span>b<span class=\"bidi\">U+2066</span>c\u{200F}"],
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
