//! An incremental server-sent events parser: bytes in, complete events out.
//!
//! Follows the WHATWG event-stream rules that matter for model endpoints: lines end with `\n`,
//! `\r\n` or `\r`; `field: value` with one optional space after the colon; several `data:` lines
//! join with `\n`; a blank line dispatches the event; lines starting with `:` are comments. A
//! chunk may end anywhere, even inside a UTF-8 sequence or between `\r` and `\n`.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty when the server sent none.
    pub event: String,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes not yet forming a complete line.
    pending: Vec<u8>,
    /// The last byte consumed was a `\r`: a `\n` right after it belongs to the same line end.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk and returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut start = 0;
        for (i, &byte) in chunk.iter().enumerate() {
            if byte != b'\n' && byte != b'\r' {
                continue;
            }
            let skip = byte == b'\n' && self.after_cr && i == start && self.pending.is_empty();
            self.after_cr = byte == b'\r';
            if skip {
                // The `\n` of a `\r\n` split across or within chunks: the line already ended.
                start = i + 1;
                continue;
            }
            self.pending.extend_from_slice(&chunk[start..i]);
            let line = std::mem::take(&mut self.pending);
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
            start = i + 1;
        }
        if start < chunk.len() {
            self.after_cr = false;
            self.pending.extend_from_slice(&chunk[start..]);
        }
        events
    }

    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        // Lines are split at `\r`/`\n` only, which never occur inside a UTF-8 sequence, so a line
        // holds whole characters; invalid bytes from a broken server become U+FFFD.
        let line = String::from_utf8_lossy(line);
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // `id` and `retry` only matter to reconnecting browsers.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        has_data.then_some(SseEvent { event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    fn parse_in_pieces(text: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([&text.len()]) {
            events.extend(parser.feed(&text[from..cut]));
            from = cut;
        }
        events
    }

    #[test]
    fn whole_events() {
        let text = b"event: a\ndata: {\"x\":1}\n\nevent: b\ndata: 2\n\n";
        assert_eq!(parse_in_pieces(text, &[]), [ev("a", "{\"x\":1}"), ev("b", "2")]);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let texts: [&[u8]; 3] = [
            b"event: response.created\ndata: {\"a\":\"\xc3\xa9\"}\n\nevent: b\ndata: 2\n\n",
            b"event: response.created\r\ndata: {\"a\":\"\xc3\xa9\"}\r\n\r\nevent: b\r\ndata: 2\r\n\r\n",
            b"event: response.created\rdata: {\"a\":\"\xc3\xa9\"}\r\revent: b\rdata: 2\r\r",
        ];
        let expected = [ev("response.created", "{\"a\":\"é\"}"), ev("b", "2")];
        for text in texts {
            for cut in 0..=text.len() {
                assert_eq!(parse_in_pieces(text, &[cut]), expected, "cut at {cut} of {text:?}");
            }
            let every_byte: Vec<usize> = (1..text.len()).collect();
            assert_eq!(parse_in_pieces(text, &every_byte), expected);
        }
    }

    #[test]
    fn comments_multiline_data_and_fields_without_space() {
        let text = b": keep-alive\n\ndata:line1\ndata: line2\nid: 7\nretry: 10\n\nevent:x\n\n";
        // An event with no data is not dispatched.
        assert_eq!(parse_in_pieces(text, &[]), [ev("", "line1\nline2")]);
    }

    #[test]
    fn incomplete_event_is_held_back() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"event: a\ndata: 1\n").is_empty());
        assert_eq!(parser.feed(b"\n"), [ev("a", "1")]);
    }
}
