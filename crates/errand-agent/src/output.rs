//! Command output as it is recorded: chunks that end on line boundaries and carry the number of
//! their first line, so that `log:<seq>#L3-L9` always resolves to the same bytes.

/// Splits a command's byte stream into line-aligned chunks and keeps the full text (up to a cap)
/// for citation checks and for the model.
#[derive(Debug)]
pub struct OutputRecorder {
    pending: Vec<u8>,
    next_line: u64,
    kept: String,
    kept_bytes: u64,
    max_bytes: u64,
    total_bytes: u64,
}

impl OutputRecorder {
    /// `max_bytes`: output beyond this is counted but neither recorded nor shown.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            pending: Vec::new(),
            next_line: 1,
            kept: String::new(),
            kept_bytes: 0,
            max_bytes,
            total_bytes: 0,
        }
    }

    /// Feeds bytes; returns a chunk `(first_line, text)` to record when complete lines are ready.
    pub fn push(&mut self, bytes: &[u8]) -> Option<(u64, String)> {
        self.total_bytes += bytes.len() as u64;
        let room = self.max_bytes.saturating_sub(self.kept_bytes + self.pending.len() as u64);
        let take = (bytes.len() as u64).min(room) as usize;
        self.pending.extend_from_slice(&bytes[..take]);
        let last_newline = self.pending.iter().rposition(|&b| b == b'\n')?;
        let rest = self.pending.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        Some(self.emit(complete))
    }

    /// Flushes a final partial line, if any.
    pub fn finish(&mut self) -> Option<(u64, String)> {
        if self.pending.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.pending);
        Some(self.emit(rest))
    }

    fn emit(&mut self, bytes: Vec<u8>) -> (u64, String) {
        // Splitting only after `\n` never splits a UTF-8 sequence, so lossy decoding here is
        // stable: the same bytes always give the same text.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let first = self.next_line;
        self.next_line += text.matches('\n').count() as u64;
        if !text.ends_with('\n') {
            self.next_line += 1;
        }
        self.kept_bytes += bytes.len() as u64;
        self.kept.push_str(&text);
        (first, text)
    }

    /// Everything recorded so far.
    pub fn text(&self) -> &str {
        &self.kept
    }

    /// Number of recorded lines (a final line without `\n` counts).
    pub fn lines(&self) -> u64 {
        self.next_line - 1
    }

    pub fn recorded_bytes(&self) -> u64 {
        self.kept_bytes
    }

    /// Bytes the command wrote beyond the cap.
    pub fn dropped_bytes(&self) -> u64 {
        self.total_bytes - self.kept_bytes - self.pending.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_on_lines_and_number_them() {
        let mut rec = OutputRecorder::new(1 << 20);
        assert_eq!(rec.push(b"one\ntw"), Some((1, "one\n".into())));
        assert_eq!(rec.push(b"o\nthree\nfo"), Some((2, "two\nthree\n".into())));
        assert_eq!(rec.push(b"ur"), None);
        assert_eq!(rec.finish(), Some((4, "four".into())));
        assert_eq!(rec.lines(), 4);
        assert_eq!(rec.text(), "one\ntwo\nthree\nfour");
        assert_eq!(rec.dropped_bytes(), 0);
    }

    #[test]
    fn multibyte_characters_split_across_reads_survive() {
        let mut rec = OutputRecorder::new(1 << 20);
        let bytes = "é\n".as_bytes();
        assert_eq!(rec.push(&bytes[..1]), None);
        assert_eq!(rec.push(&bytes[1..]), Some((1, "é\n".into())));
    }

    #[test]
    fn output_past_the_cap_is_counted_not_kept() {
        let mut rec = OutputRecorder::new(10);
        rec.push(b"0123456\n89abcdef\n");
        rec.finish();
        assert_eq!(rec.recorded_bytes(), 10);
        assert_eq!(rec.dropped_bytes(), 7);
        assert_eq!(rec.text(), "0123456\n89");
    }
}
