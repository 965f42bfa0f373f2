//! The text of a file after an Update's chunks, computed in memory (no I/O here).
//!
//! Semantics follow openai/codex `codex-rs/apply-patch/src/lib.rs` (`compute_replacements`):
//! chunks are located in order, each after the previous one; an `@@ <context>` line is sought
//! first and the chunk's lines must come after it; a chunk whose old lines end in an empty line
//! is retried without it (models add a blank line at the end of a chunk); the result always ends
//! with a newline. Differences: a pure addition after an `@@ <context>` line is inserted right
//! after that line (Codex appends it to the end of the file), and a file with CRLF line endings
//! keeps them.

use crate::error::PatchError;
use crate::parser::UpdateChunk;
use crate::seek::seek;

/// Applies `chunks` to `original`; `path` is only used in error messages.
pub(crate) fn updated_contents(
    path: &str,
    original: &str,
    chunks: &[UpdateChunk],
) -> Result<String, PatchError> {
    let crlf = uses_crlf(original);
    let mut lines: Vec<String> = original
        .split('\n')
        .map(|l| if crlf { l.strip_suffix('\r').unwrap_or(l) } else { l }.to_string())
        .collect();
    // `split` yields an empty last element for a file ending in a newline; it is not a line.
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }

    // (index into the original lines, how many to remove, lines to put there)
    let mut replacements: Vec<(usize, usize, &[String])> = Vec::new();
    let mut cursor = 0;
    for chunk in chunks {
        if let Some(context) = &chunk.context {
            let found = seek(&lines, std::slice::from_ref(context), cursor, false);
            let Some((index, _)) = found else {
                return Err(PatchError::ContextNotFound {
                    path: path.into(),
                    context: context.clone(),
                });
            };
            cursor = index + 1;
        }
        if chunk.old_lines.is_empty() {
            let at = if chunk.context.is_some() { cursor } else { lines.len() };
            replacements.push((at, 0, &chunk.new_lines));
            continue;
        }
        let mut old: &[String] = &chunk.old_lines;
        let mut new: &[String] = &chunk.new_lines;
        let mut found = seek(&lines, old, cursor, chunk.is_end_of_file);
        if found.is_none() && old.last().is_some_and(String::is_empty) {
            old = &old[..old.len() - 1];
            if new.last().is_some_and(String::is_empty) {
                new = &new[..new.len() - 1];
            }
            found = seek(&lines, old, cursor, chunk.is_end_of_file);
        }
        let Some((index, _)) = found else {
            return Err(PatchError::LinesNotFound {
                path: path.into(),
                lines: chunk.old_lines.join("\n"),
            });
        };
        replacements.push((index, old.len(), new));
        cursor = index + old.len();
    }

    // Later positions first, so earlier indices stay valid; equal positions keep patch order.
    replacements.sort_by_key(|(index, _, _)| *index);
    for (index, remove, insert) in replacements.into_iter().rev() {
        lines.splice(index..index + remove, insert.iter().cloned());
    }
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut out = lines.join(eol);
    if !lines.is_empty() {
        out.push_str(eol);
    }
    Ok(out)
}

/// Whether most line endings of `text` are CRLF.
fn uses_crlf(text: &str) -> bool {
    let total = text.matches('\n').count();
    let crlf = text.matches("\r\n").count();
    crlf > 0 && crlf * 2 >= total
}

/// Lines added and removed between two texts, for the change summary: the longest common
/// subsequence of lines when that is cheap, otherwise everything between the common prefix and
/// suffix.
pub(crate) fn count_line_changes(old: &str, new: &str) -> (u64, u64) {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let old = &old[prefix..old.len() - suffix];
    let new = &new[prefix..new.len() - suffix];
    // A table of (old × new) u32s: cap it at a few megabytes.
    let common =
        if old.len().saturating_mul(new.len()) <= 1_000_000 { lcs_len(old, new) } else { 0 };
    ((new.len() - common) as u64, (old.len() - common) as u64)
}

fn lcs_len(a: &[&str], b: &[&str]) -> usize {
    let mut prev = vec![0u32; b.len() + 1];
    let mut row = vec![0u32; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            row[j + 1] = if x == y { prev[j] + 1 } else { row[j].max(prev[j + 1]) };
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()] as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(context: Option<&str>, old: &[&str], new: &[&str], eof: bool) -> UpdateChunk {
        UpdateChunk {
            context: context.map(String::from),
            old_lines: old.iter().map(|s| s.to_string()).collect(),
            new_lines: new.iter().map(|s| s.to_string()).collect(),
            is_end_of_file: eof,
        }
    }

    #[test]
    fn replacements() {
        let cases: &[(&str, Vec<UpdateChunk>, &str)] = &[
            ("a\nb\nc\n", vec![chunk(None, &["b"], &["B"], false)], "a\nB\nc\n"),
            ("no newline", vec![chunk(None, &["no newline"], &["x", "y"], false)], "x\ny\n"),
            ("a\nb\n", vec![chunk(None, &[], &["c"], false)], "a\nb\nc\n"),
            (
                "fn a() {\n}\nfn b() {\n}\n",
                vec![chunk(Some("fn a() {"), &[], &["  // in a"], false)],
                "fn a() {\n  // in a\n}\nfn b() {\n}\n",
            ),
            ("x\ny\nx\ny\n", vec![chunk(Some("y"), &["x"], &["X"], false)], "x\ny\nX\ny\n"),
            ("a\nb\na\n", vec![chunk(None, &["a"], &["Z"], true)], "a\nb\nZ\n"),
            (
                "1\n2\n3\n4\n",
                vec![chunk(None, &["2"], &["two"], false), chunk(None, &["4"], &["four"], false)],
                "1\ntwo\n3\nfour\n",
            ),
            // A trailing empty context line that the file does not have is forgiven.
            ("a\nb\n", vec![chunk(None, &["b", ""], &["c", ""], false)], "a\nc\n"),
            ("only\n", vec![chunk(None, &["only"], &[], false)], ""),
            ("a\r\nb\r\n", vec![chunk(None, &["a"], &["A", "A2"], false)], "A\r\nA2\r\nb\r\n"),
            ("\u{2014} dash\n", vec![chunk(None, &["- dash"], &["ok"], false)], "ok\n"),
        ];
        for (original, chunks, want) in cases {
            let got = updated_contents("f", original, chunks).unwrap();
            assert_eq!(&got, want, "{original:?} with {chunks:?}");
        }
    }

    #[test]
    fn errors_name_file_and_lines() {
        let err =
            updated_contents("src/lib.rs", "a\n", &[chunk(None, &["missing", "two"], &[], false)])
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Failed to find expected lines in src/lib.rs:\nmissing\ntwo\n(hint: re-read the file; \
             the context must match its current contents)"
        );
        let err = updated_contents("f", "a\n", &[chunk(Some("fn nope()"), &["a"], &[], false)])
            .unwrap_err();
        assert!(err.to_string().starts_with("Failed to find context 'fn nope()' in f\n"), "{err}");
    }

    #[test]
    fn chunks_must_come_in_file_order() {
        let chunks = [chunk(None, &["b"], &["B"], false), chunk(None, &["a"], &["A"], false)];
        assert!(updated_contents("f", "a\nb\n", &chunks).is_err());
    }

    #[test]
    fn line_counts() {
        assert_eq!(count_line_changes("a\nb\nc\n", "a\nB\nc\nd\n"), (2, 1));
        assert_eq!(count_line_changes("", "x\ny\n"), (2, 0));
        assert_eq!(count_line_changes("a\nb\n", "b\n"), (0, 1));
        assert_eq!(count_line_changes("a\nx\nb\n", "x\na\nb\n"), (1, 1));
    }
}
