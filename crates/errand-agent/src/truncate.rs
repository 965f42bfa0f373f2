//! Tool output shortened for the model: the head and the tail are kept, the middle is replaced by
//! a marker saying which lines were left out. The full output stays in the event log.

/// Keeps at most `max_lines` lines and `max_bytes` bytes of `text`, half from the start and half
/// from the end, and says what was omitted with the (1-based) line numbers of the gap so the
/// model can still cite exact log ranges.
pub fn truncate_for_model(text: &str, max_lines: usize, max_bytes: usize) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.len() <= max_lines && text.len() <= max_bytes {
        return text.to_string();
    }
    let head_budget = max_bytes / 2;
    let tail_budget = max_bytes - head_budget;
    let head_max = max_lines.div_ceil(2);
    let tail_max = max_lines / 2;

    let mut head = 0;
    let mut head_bytes = 0;
    while head < lines.len().min(head_max) && head_bytes + lines[head].len() <= head_budget {
        head_bytes += lines[head].len();
        head += 1;
    }
    let mut tail = 0;
    let mut tail_bytes = 0;
    while tail < tail_max
        && head + tail < lines.len()
        && tail_bytes + lines[lines.len() - 1 - tail].len() <= tail_budget
    {
        tail_bytes += lines[lines.len() - 1 - tail].len();
        tail += 1;
    }
    if head == 0 && tail == 0 {
        // Not even one whole line fits (a single huge line): keep bytes from both ends instead.
        let start = floor_char_boundary(text, head_budget);
        let end = ceil_char_boundary(text, text.len() - tail_budget.min(text.len()));
        return format!(
            "{}\n[… {} bytes omitted from a line too long to show; the full output is in the log …]\n{}",
            &text[..start],
            end.saturating_sub(start),
            &text[end.max(start)..]
        );
    }
    let mut out = String::with_capacity(head_bytes + tail_bytes + 80);
    for line in &lines[..head] {
        out.push_str(line);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "[… lines {}-{} omitted ({} bytes); the full output is in the log …]\n",
        head + 1,
        lines.len() - tail,
        text.len() - head_bytes - tail_bytes
    ));
    for line in &lines[lines.len() - tail..] {
        out.push_str(line);
    }
    out
}

fn ceil_char_boundary(s: &str, mut index: usize) -> usize {
    while index < s.len() && !s.is_char_boundary(index) {
        index += 1;
    }
    index
}

fn floor_char_boundary(s: &str, mut index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn short_output_is_unchanged() {
        assert_eq!(truncate_for_model("a\nb\n", 10, 100), "a\nb\n");
        assert_eq!(truncate_for_model("", 10, 100), "");
    }

    #[test]
    fn keeps_head_and_tail_and_names_the_gap() {
        let out = truncate_for_model(&numbered(100), 10, 10_000);
        assert!(out.starts_with("line 1\nline 2\n"), "{out}");
        assert!(out.contains("[… lines 6-95 omitted"), "{out}");
        assert!(out.ends_with("line 99\nline 100\n"), "{out}");
        assert!(!out.contains("line 50\n"));
    }

    #[test]
    fn respects_the_byte_budget() {
        let out = truncate_for_model(&numbered(1000), 1000, 200);
        assert!(out.len() < 400, "{}", out.len());
        assert!(out.contains("omitted"));
    }

    #[test]
    fn a_single_huge_line_is_cut_on_a_char_boundary() {
        let text = "é".repeat(10_000);
        let out = truncate_for_model(&text, 10, 101);
        assert!(out.starts_with("éé"), "{out}");
        assert!(out.ends_with("éé"), "{out}");
        assert!(out.contains("bytes omitted from a line too long to show"), "{out}");
        assert!(out.len() < 250, "{}", out.len());
    }
}
