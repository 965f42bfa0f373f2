use super::apply::ApplyError;
use super::*;

/// One line per file: what a reviewer sees in its summary.
fn summary(files: &[FileDiff]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            let modes = match (&f.old_mode, &f.new_mode) {
                (None, None) => String::new(),
                (old, new) => format!(" mode {old:?}->{new:?}"),
            };
            let similarity = f.similarity.map(|s| format!(" {s}%")).unwrap_or_default();
            format!(
                "{:?} {:?} -> {:?} +{} -{} hunks={}{}{}{modes}{similarity}",
                f.status,
                f.old_path.as_deref().unwrap_or("-"),
                f.new_path.as_deref().unwrap_or("-"),
                f.insertions,
                f.deletions,
                f.hunks.len(),
                if f.binary { " binary" } else { "" },
                ""
            )
        })
        .collect()
}

const GIT_BINARY: &str = "diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000000000000000000000000000000000000..5d1c8e0b0e2f
GIT binary patch
literal 12
Tc${NkU|?WiVE6x@fq?-44ul1k
-c${NkU|?Wi
+c${NkU|?Wi

literal 0
HcmV?d00001

diff --git a/next.txt b/next.txt
index 1111111..2222222 100644
--- a/next.txt
+++ b/next.txt
@@ -1 +1 @@
-a
+b
";

#[test]
fn parses_every_kind_of_file_section() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("nothing", "", &[]),
        ("garbage", "hello\n@@ nonsense\n+++\n-x\ndiff --git \nindex 1..2\n", &[]),
        (
            "modified, two hunks",
            "diff --git a/src/lib.rs b/src/lib.rs\nindex 83db48f..bf269f4 100644\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,4 @@\n fn a() {}\n-fn b() {}\n+fn b() { 1 }\n+fn c() {}\n fn d() {}\n@@ -10,2 +11,2 @@ impl X\n x\n-y\n+z\n",
            &[r#"Modified "src/lib.rs" -> "src/lib.rs" +3 -2 hunks=2"#],
        ),
        (
            "added",
            "diff --git a/new.txt b/new.txt\nnew file mode 100644\nindex 0000000..3b18e51\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n",
            &[r#"Added "-" -> "new.txt" +2 -0 hunks=1 mode None->Some("100644")"#],
        ),
        (
            "deleted, no final newline",
            "diff --git a/old.txt b/old.txt\ndeleted file mode 100644\nindex 3b18e51..0000000\n--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-hello\n\\ No newline at end of file\n",
            &[r#"Deleted "old.txt" -> "-" +0 -1 hunks=1 mode Some("100644")->None"#],
        ),
        (
            "empty file added: no hunks, the path from the header",
            "diff --git a/my file.txt b/my file.txt\nnew file mode 100644\nindex 0000000..e69de29\n",
            &[r#"Added "-" -> "my file.txt" +0 -0 hunks=0 mode None->Some("100644")"#],
        ),
        (
            "a name that contains ' b/'",
            "diff --git a/x b/y b/x b/y\nold mode 100644\nnew mode 100755\n",
            &[
                r#"ModeChanged "x b/y" -> "x b/y" +0 -0 hunks=0 mode Some("100644")->Some("100755")"#,
            ],
        ),
        (
            "pure rename",
            "diff --git a/a.rs b/b.rs\nsimilarity index 100%\nrename from a.rs\nrename to b.rs\n",
            &[r#"Renamed "a.rs" -> "b.rs" +0 -0 hunks=0 100%"#],
        ),
        (
            "rename with spaces and changes",
            "diff --git a/my dir/a b.rs b/my dir/c d.rs\nsimilarity index 90%\nrename from my dir/a b.rs\nrename to my dir/c d.rs\nindex 1..2 100644\n--- a/my dir/a b.rs\t\n+++ b/my dir/c d.rs\t\n@@ -1 +1 @@\n-x\n+y\n",
            &[r#"Renamed "my dir/a b.rs" -> "my dir/c d.rs" +1 -1 hunks=1 90%"#],
        ),
        (
            "copy",
            "diff --git a/a.rs b/b.rs\nsimilarity index 100%\ncopy from a.rs\ncopy to b.rs\n",
            &[r#"Copied "a.rs" -> "b.rs" +0 -0 hunks=0 100%"#],
        ),
        (
            "quoted octal UTF-8",
            "diff --git \"a/caf\\303\\251.txt\" \"b/caf\\303\\251.txt\"\nnew file mode 100644\nindex 0000000..e69de29\n",
            &[r#"Added "-" -> "café.txt" +0 -0 hunks=0 mode None->Some("100644")"#],
        ),
        (
            "quoted escapes on ---/+++ and in a rename",
            "diff --git a/x \"b/tab\\there\\\".txt\"\nsimilarity index 50%\nrename from x\nrename to \"tab\\there\\\".txt\"\n--- a/x\n+++ \"b/tab\\there\\\".txt\"\n@@ -1 +1 @@\n-a\n+b\n",
            &["Renamed \"x\" -> \"tab\\there\\\".txt\" +1 -1 hunks=1 50%"],
        ),
        (
            "not UTF-8 after unquoting",
            "diff --git \"a/\\377.bin\" \"b/\\377.bin\"\nindex 1..2 100644\nBinary files \"a/\\377.bin\" and \"b/\\377.bin\" differ\n",
            &["Modified \"\u{fffd}.bin\" -> \"\u{fffd}.bin\" +0 -0 hunks=0 binary"],
        ),
        (
            "git binary patch, payload skipped",
            GIT_BINARY,
            &[
                r#"Added "-" -> "logo.png" +0 -0 hunks=0 binary mode None->Some("100644")"#,
                r#"Modified "next.txt" -> "next.txt" +1 -1 hunks=1"#,
            ],
        ),
        (
            "hunk lines that look like headers",
            "diff --git a/x.md b/x.md\n--- a/x.md\n+++ b/x.md\n@@ -1,3 +1,3 @@\n--- a/x\n-diff\n diff --git a/q b/q\n+++ b/y\n+@@ -1 +1 @@\n",
            &[r#"Modified "x.md" -> "x.md" +2 -2 hunks=1"#],
        ),
        (
            "plain unified diff without diff --git",
            "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n--- a/y\t2024-01-01\n+++ b/y\t2024-01-02\n@@ -1 +1 @@\n-c\n+d\n",
            &[r#"Modified "x" -> "x" +1 -1 hunks=1"#, r#"Modified "y" -> "y" +1 -1 hunks=1"#],
        ),
        (
            "a hunk shorter than its header, then the next file",
            "diff --git a/a b/a\n@@ -1,99999999999 +1,99999999999 @@\n-x\ndiff --git a/b b/b\n@@ -18446744073709551615,2 +1 @@\n-y\n-z\n+w\n@@ -99999999999999999999 +1 @@\n-ignored\n",
            &[r#"Modified "a" -> "a" +0 -1 hunks=1"#, r#"Modified "b" -> "b" +1 -2 hunks=1"#],
        ),
        (
            "mode and content",
            "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\nindex 1..2\n--- a/run.sh\n+++ b/run.sh\n@@ -1 +1,2 @@\n x\n+y\n",
            &[r#"Modified "run.sh" -> "run.sh" +1 -0 hunks=1 mode Some("100644")->Some("100755")"#],
        ),
    ];
    for (name, diff, want) in cases {
        assert_eq!(summary(&parse(diff)), *want, "{name}");
    }
}

#[test]
fn numbers_lines_and_keeps_their_text() {
    let diff = "diff --git a/w.txt b/w.txt\n--- a/w.txt\n+++ b/w.txt\n@@ -3,4 +3,4 @@ fn main() {\n a\r\n-b\n\\ No newline at end of file\n+b\n+--- c\n \n-x\n";
    let files = parse(diff);
    let hunk = &files[0].hunks[0];
    assert_eq!((hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len), (3, 4, 3, 4));
    assert_eq!(hunk.section, "fn main() {");
    let lines: Vec<_> = hunk
        .lines
        .iter()
        .map(|l| (l.kind, l.text.as_str(), l.old_no, l.new_no, l.no_newline))
        .collect();
    use LineKind::*;
    assert_eq!(
        lines,
        [
            (Context, "a\r", Some(3), Some(3), false),
            (Removed, "b", Some(4), None, true),
            (Added, "b", None, Some(4), false),
            (Added, "--- c", None, Some(5), false),
            (Context, "", Some(5), Some(6), false),
            (Removed, "x", Some(6), None, false),
        ]
    );
}

/// Every prefix of a diff, and a shuffle of diff fragments, parse, render and apply
/// without panicking.
#[test]
fn survives_truncated_and_scrambled_input() {
    let whole = format!(
        "{GIT_BINARY}diff --git \"a/\\303\\251 x\" \"b/\\303\\251 y\"\nrename from \"\\303\"\n@@ -1,2 +1,2 @@\n é\n-a\n\\ No newline at end of file\n+b\n"
    );
    let mut inputs: Vec<String> =
        whole.char_indices().map(|(at, _)| whole[..at].to_owned()).collect();
    let fragments = [
        "diff --git ",
        "a/x b/x\n",
        "\"a/\\",
        "\\377\"",
        "@@ -",
        "1,2 +",
        "1 @@",
        "\n",
        "+",
        "-",
        " ",
        "\\ No newline at end of file\n",
        "GIT binary patch\n",
        "rename from ",
        "--- ",
        "+++ ",
        "/dev/null",
        "new file mode 100644\n",
        "Binary files a and b differ\n",
        "é",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        let mut input = String::new();
        for _ in 0..40 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            input.push_str(fragments[(seed >> 33) as usize % fragments.len()]);
        }
        inputs.push(input);
    }
    for input in &inputs {
        let files = parse(input);
        for file in &files {
            let _ = final_text("a\nb\n", file);
            let _ = final_text("é\na", file);
        }
        let mut out = String::new();
        render(&files, DiffView::Split, &mut out);
        render(&files, DiffView::Unified, &mut out);
    }
}

fn rendered(diff: &str, view: DiffView) -> String {
    let mut out = String::new();
    render(&parse(diff), view, &mut out);
    out
}

const NOTES: &str = "diff --git a/notes.txt b/notes.txt\n--- a/notes.txt\n+++ b/notes.txt\n@@ -1,3 +1,3 @@ intro\n-a\n-b\n+A\n c\n+d\n\\ No newline at end of file\n";

#[test]
fn renders_unified_rows() {
    let html = rendered(NOTES, DiffView::Unified);
    let want = concat!(
        r#"<details class="file" open id="file-notes.2etxt"><summary><span class="path">notes.txt</span> "#,
        r#"<span class="status status-modified">modified</span> <span class="stat"><span class="ins">+2</span> "#,
        r#"<span class="del">−2</span></span></summary><table class="diff unified"><tbody>"#,
        r#"<tr class="hunk"><td class="hunk" colspan="4">@@ -1,3 +1,3 @@ <span class="section">intro</span></td></tr>"#,
        r#"<tr class="del"><td class="ln" data-line="1">1</td><td class="ln"></td><td class="mark">−</td><td class="code">a</td></tr>"#,
        r#"<tr class="del"><td class="ln" data-line="2">2</td><td class="ln"></td><td class="mark">−</td><td class="code">b</td></tr>"#,
        r#"<tr class="add"><td class="ln"></td><td class="ln" data-line="1">1</td><td class="mark">+</td><td class="code">A</td></tr>"#,
        r#"<tr class="ctx"><td class="ln" data-line="3">3</td><td class="ln" data-line="2">2</td><td class="mark"> </td><td class="code">c</td></tr>"#,
        r#"<tr class="add"><td class="ln"></td><td class="ln" data-line="3">3</td><td class="mark">+</td>"#,
        r#"<td class="code">d<span class="nonl">No newline at end of file</span></td></tr>"#,
        "</tbody></table></details>\n",
    );
    assert_eq!(html, want);
}

#[test]
fn renders_split_rows_pairing_changes() {
    let html = rendered(NOTES, DiffView::Split);
    let body = &html[html.find("<tr class=\"line\">").expect("a line row")..];
    let want = concat!(
        r#"<tr class="line"><td class="ln del" data-line="1">1</td><td class="code del">a</td>"#,
        r#"<td class="ln add" data-line="1">1</td><td class="code add">A</td></tr>"#,
        r#"<tr class="line"><td class="ln del" data-line="2">2</td><td class="code del">b</td>"#,
        r#"<td class="ln empty"></td><td class="code empty"></td></tr>"#,
        r#"<tr class="line"><td class="ln ctx" data-line="3">3</td><td class="code ctx">c</td>"#,
        r#"<td class="ln ctx" data-line="2">2</td><td class="code ctx">c</td></tr>"#,
        r#"<tr class="line"><td class="ln empty"></td><td class="code empty"></td>"#,
        r#"<td class="ln add" data-line="3">3</td><td class="code add">d<span class="nonl">No newline at end of file</span></td></tr>"#,
        "</tbody></table></details>\n",
    );
    assert_eq!(body, want);
    assert!(html.contains(r#"<table class="diff split"><tbody><tr class="hunk">"#));
}

#[test]
fn renders_summaries_and_notes() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "rename",
            "diff --git a/a.rs b/b.rs\nsimilarity index 100%\nrename from a.rs\nrename to b.rs\n",
            &[
                r#"id="file-b.2ers""#,
                "a.rs → b.rs",
                r#"<span class="status status-renamed">renamed 100%</span>"#,
                r#"<p class="note">no content changes</p>"#,
            ],
        ),
        (
            "binary",
            "diff --git a/i.png b/i.png\nnew file mode 100644\nBinary files /dev/null and b/i.png differ\n",
            &["status-added", r#"<p class="note">binary file, not shown</p>"#],
        ),
        (
            "empty added file",
            "diff --git a/e b/e\nnew file mode 100644\nindex 0000000..e69de29\n",
            &[r#"<p class="note">empty file</p>"#],
        ),
        (
            "mode",
            "diff --git a/r.sh b/r.sh\nold mode 100644\nnew mode 100755\n",
            &[
                r#"<span class="status status-mode">mode</span>"#,
                r#"<p class="note">mode 100644 → 100755</p>"#,
            ],
        ),
        (
            "deleted",
            "diff --git a/d.py b/d.py\ndeleted file mode 100644\n--- a/d.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-def f(): pass\n",
            &[
                r#"id="file-d.2epy""#,
                r#"<span class="path">d.py</span>"#,
                r#"<td class="code"><span class="k">def</span> f(): <span class="k">pass</span></td>"#,
            ],
        ),
        (
            "same path twice (a type change)",
            "diff --git a/l b/l\ndeleted file mode 120000\ndiff --git a/l b/l\nnew file mode 100644\n",
            &[r#"id="file-l""#, r#"id="file-l..2""#],
        ),
    ];
    for (name, diff, wants) in cases {
        let html = rendered(diff, DiffView::Unified);
        for want in *wants {
            assert!(html.contains(want), "{name}: {want} not in {html}");
        }
    }
}

#[test]
fn large_diffs_render_closed() {
    let mut diff = String::from("diff --git a/big.txt b/big.txt\n@@ -0,0 +1,3001 @@\n");
    for n in 0..3001 {
        diff.push_str(&format!("+{n}\n"));
    }
    let html = rendered(&diff, DiffView::Unified);
    assert!(html.starts_with(r#"<details class="file" id="file-big.2etxt">"#), "{}", &html[..80]);
    assert!(html.contains(r#"<span class="note">large diff</span>"#));
    assert!(html.contains(r#"data-line="3001""#));
    let small = rendered(&diff.replace("3001 @@", "3000 @@"), DiffView::Unified);
    assert!(small.starts_with(r#"<details class="file" open "#));
}

/// Every tag in the page is one of ours, with our attributes only; everything else is text.
fn assert_only_our_tags(html: &str) {
    let allowed_tags = ["details", "summary", "span", "table", "tbody", "tr", "td", "p"];
    let allowed_attributes = ["class", "id", "open", "data-line", "colspan"];
    for tag in html.split('<').skip(1) {
        let tag = &tag[..tag.find('>').expect("every < of ours is closed")];
        if let Some(name) = tag.strip_prefix('/') {
            assert!(allowed_tags.contains(&name), "</{name}>");
            continue;
        }
        let (name, mut rest) = tag.split_once(' ').unwrap_or((tag, ""));
        assert!(allowed_tags.contains(&name), "<{tag}>");
        while !rest.is_empty() {
            let end = rest.find([' ', '=']).unwrap_or(rest.len());
            assert!(allowed_attributes.contains(&&rest[..end]), "{} in <{tag}>", &rest[..end]);
            rest = &rest[end..];
            if let Some(value) = rest.strip_prefix("=\"") {
                let close = value.find('"').expect("a closed attribute value");
                rest = &value[close + 1..];
            }
            rest = rest.strip_prefix(' ').unwrap_or(rest);
        }
    }
}

#[test]
fn hostile_names_and_lines_stay_text() {
    let diff = concat!(
        "diff --git \"a/\\\"><img src=x onerror=alert(1)>.rs\" \"b/\\\"><img src=x onerror=alert(1)>.rs\"\n",
        "--- \"a/\\\"><img src=x onerror=alert(1)>.rs\"\n",
        "+++ \"b/\\\"><img src=x onerror=alert(1)>.rs\"\n",
        "@@ -1 +1 @@ <script>alert(1)</script>\n",
        "-</td></table><script>alert(1)</script>\n",
        "+\"</td></table><script>alert(1)</script>\n",
        "diff --git a/javascript:alert(1) b/javascript:alert(1)\n",
        "--- a/javascript:alert(1)\n+++ b/javascript:alert(1)\n",
        "@@ -1 +1 @@\n-' onmouseover='x\n+<!-- </td>\n",
        "diff --git a/x.html b/x.html\n--- a/x.html\n+++ b/x.html\n",
        "@@ -1 +1 @@\n-<a href=\"javascript:alert(1)\" onclick='y'>\n+</td></tr><tr><td onerror=z>\n",
    );
    let files = parse(diff);
    assert_eq!(files[0].path(), "\"><img src=x onerror=alert(1)>.rs");
    for view in [DiffView::Unified, DiffView::Split] {
        let html = rendered(diff, view);
        for forbidden in ["<script", "<img", "<a ", "<!--"] {
            assert!(!html.contains(forbidden), "{forbidden} in {html}");
        }
        assert_only_our_tags(&html);
        // The text itself survives, escaped: with the tags taken out, it reads as it was.
        let text: String = html
            .split('<')
            .map(|part| part.split_once('>').map_or(part, |(_, text)| text))
            .collect();
        for survivor in [
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.rs",
            "&lt;/td&gt;&lt;/table&gt;&lt;script&gt;alert(1)&lt;/script&gt;",
            "javascript:alert(1)",
            "&#39; onmouseover=&#39;x",
            "&lt;a href=&quot;javascript:alert(1)&quot; onclick=&#39;y&#39;&gt;",
        ] {
            assert!(text.contains(survivor), "{survivor} not in {text}");
        }
        assert!(
            html.contains(r#"id="file-.22.3e.3cimg.20src.3dx.20onerror.3dalert.281.29.3e.2ers""#)
        );
    }
}

fn file(hunks: &str) -> FileDiff {
    let files = parse(&format!("diff --git a/f b/f\n--- a/f\n+++ b/f\n{hunks}"));
    files.into_iter().next().expect("the test diff has a file")
}

#[test]
fn final_text_applies_hunks_exactly() {
    use ApplyError::*;
    let cases: &[(&str, &str, &str, Result<&str, ApplyError>)] = &[
        ("replace", "a\nb\nc\n", "@@ -2 +2 @@\n-b\n+B\n", Ok("a\nB\nc\n")),
        ("insert first", "a\n", "@@ -0,0 +1 @@\n+z\n", Ok("z\na\n")),
        ("insert after 1", "a\nb\n", "@@ -1,0 +2 @@\n+z\n", Ok("a\nz\nb\n")),
        (
            "two hunks",
            "1\n2\n3\n4\n5\n",
            "@@ -1 +1 @@\n-1\n+one\n@@ -5 +5,2 @@\n 5\n+6\n",
            Ok("one\n2\n3\n4\n5\n6\n"),
        ),
        (
            "add final newline",
            "a",
            "@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n",
            Ok("a\n"),
        ),
        (
            "drop final newline",
            "a\n",
            "@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n",
            Ok("a"),
        ),
        (
            "context without newline",
            "a\nb",
            "@@ -1,2 +1,2 @@\n-a\n+A\n b\n\\ No newline at end of file\n",
            Ok("A\nb"),
        ),
        ("untouched unterminated end", "a\nb\nc", "@@ -1 +1 @@\n-a\n+A\n", Ok("A\nb\nc")),
        ("crlf", "a\r\nb\r\n", "@@ -1 +1 @@\n-a\r\n+x\r\n", Ok("x\r\nb\r\n")),
        ("added file", "", "@@ -0,0 +1,2 @@\n+x\n+y\n\\ No newline at end of file\n", Ok("x\ny")),
        ("deleted file", "x\ny\n", "@@ -1,2 +0,0 @@\n-x\n-y\n", Ok("")),
        ("no hunks", "a\nb", "", Ok("a\nb")),
        (
            "context differs",
            "a\nx\n",
            "@@ -1,2 +1,2 @@\n a\n-b\n+c\n",
            Err(Mismatch { hunk: 1, old_line: 2 }),
        ),
        (
            "base lacks a final newline the diff assumes",
            "a",
            "@@ -1 +1 @@\n-a\n+b\n",
            Err(Mismatch { hunk: 1, old_line: 1 }),
        ),
        (
            "base has a final newline the diff says is missing",
            "a\n",
            "@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n",
            Err(Mismatch { hunk: 1, old_line: 1 }),
        ),
        (
            "second hunk differs",
            "1\n2\n3\n",
            "@@ -1 +1 @@\n-1\n+x\n@@ -3 +3 @@\n-9\n+y\n",
            Err(Mismatch { hunk: 2, old_line: 3 }),
        ),
        (
            "base too short",
            "a\n",
            "@@ -1,2 +1 @@\n a\n-b\n",
            Err(Mismatch { hunk: 1, old_line: 2 }),
        ),
        (
            "overlapping hunks",
            "1\n2\n3\n",
            "@@ -2 +2 @@\n-2\n+x\n@@ -1 +1 @@\n-1\n+y\n",
            Err(Position { hunk: 2 }),
        ),
        ("past the end", "a\n", "@@ -5 +5 @@\n-x\n+y\n", Err(Position { hunk: 1 })),
        ("line 0 with an old side", "a\n", "@@ -0,1 +0,1 @@\n-a\n+b\n", Err(Position { hunk: 1 })),
        ("shorter than its header", "a\nb\n", "@@ -1,3 +1,3 @@\n a\n", Err(Malformed { hunk: 1 })),
        (
            "appending after an unterminated line",
            "a",
            "@@ -1,0 +2 @@\n+b\n",
            Err(Malformed { hunk: 1 }),
        ),
        (
            "no-newline mark before the end",
            "a\nb\n",
            "@@ -1 +1 @@\n-a\n+A\n\\ No newline at end of file\n",
            Err(Malformed { hunk: 1 }),
        ),
    ];
    for (name, base, hunks, want) in cases {
        let got = final_text(base, &file(hunks));
        assert_eq!(got, want.clone().map(str::to_owned), "{name}");
    }
    let binary = parse("diff --git a/b b/b\nBinary files a/b and b/b differ\n");
    assert_eq!(final_text("", &binary[0]), Err(Binary));
    assert_eq!(
        Mismatch { hunk: 2, old_line: 14 }.to_string(),
        "hunk 2 does not match line 14 of the base; the diff was not made from this base"
    );
}
