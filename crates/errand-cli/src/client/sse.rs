//! Server-Sent Events frames from a byte stream (WHATWG HTML, "9.2 Server-sent events":
//! "Interpreting an event stream"). Only what an attempt's event stream uses: `id` and `data`
//! (several `data` lines join with `\n`), `event` kept for completeness, comments (`:`) as the
//! keep-alives they are, lines ending in LF, CRLF or a lone CR. Bytes arrive in chunks cut
//! anywhere, even inside a line ending.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id` field of this frame, if it had one.
    pub id: Option<String>,
    /// The `event` field, if any (`message` when absent, per the spec).
    pub event: Option<String>,
    pub data: String,
}

/// Turns chunks of bytes into events; keeps what is left of an unfinished line or frame.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line being read.
    line: Vec<u8>,
    /// The previous chunk ended in CR: an LF first in the next one belongs to that line ending.
    after_cr: bool,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_ended(&line) {
                        events.push(event);
                    }
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    fn line_ended(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            // A blank line ends the frame; one without data dispatches nothing.
            let data = self.data.take()?;
            return Some(SseEvent { id: self.id.take(), event: self.event.take(), data });
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            // The spec ignores an id containing NUL.
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            // `retry` and unknown fields: the client's backoff is its own.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: Option<&str>, data: &str) -> SseEvent {
        SseEvent { id: id.map(String::from), event: None, data: data.into() }
    }

    /// Every way of cutting the input into two chunks gives the same events.
    fn parse_split_everywhere(input: &[u8]) -> Vec<SseEvent> {
        let whole = SseParser::default().feed(input);
        for cut in 0..=input.len() {
            let mut parser = SseParser::default();
            let mut events = parser.feed(&input[..cut]);
            events.extend(parser.feed(&input[cut..]));
            assert_eq!(events, whole, "cut at byte {cut}");
        }
        let mut parser = SseParser::default();
        let bytewise: Vec<SseEvent> = input.iter().flat_map(|b| parser.feed(&[*b])).collect();
        assert_eq!(bytewise, whole, "one byte at a time");
        whole
    }

    #[test]
    fn frames_become_events() {
        let cases: &[(&str, &[u8], Vec<SseEvent>)] = &[
            ("one frame", b"id: 1\ndata: {\"a\":1}\n\n", vec![event(Some("1"), "{\"a\":1}")]),
            (
                "two frames",
                b"id:1\ndata:x\n\nid: 2\ndata: y\n\n",
                vec![event(Some("1"), "x"), event(Some("2"), "y")],
            ),
            ("CRLF", b"id: 7\r\ndata: z\r\n\r\n", vec![event(Some("7"), "z")]),
            ("lone CR", b"id: 7\rdata: z\r\r", vec![event(Some("7"), "z")]),
            ("data lines join", b"data: a\ndata: b\n\n", vec![event(None, "a\nb")]),
            ("only one space is stripped", b"data:  two\n\n", vec![event(None, " two")]),
            ("keep-alive comments", b": ping\n\n:\n\ndata: x\n\n", vec![event(None, "x")]),
            ("no data, no event", b"id: 3\n\n", vec![]),
            ("unfinished frame is held", b"id: 4\ndata: half", vec![]),
            ("field without colon", b"data\n\n", vec![event(None, "")]),
            (
                "retry and unknown fields are ignored",
                b"retry: 10\nfoo: bar\ndata: x\n\n",
                vec![event(None, "x")],
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(&parse_split_everywhere(input), expected, "{name}");
        }
    }

    #[test]
    fn the_event_name_is_kept_and_an_id_applies_to_its_frame_only() {
        let events = SseParser::default().feed(b"event: end\nid: 5\ndata: x\n\ndata: y\n\n");
        assert_eq!(events[0].event.as_deref(), Some("end"));
        assert_eq!(events[1], event(None, "y"));
    }

    #[test]
    fn a_frame_cut_by_a_dropped_connection_is_never_dispatched() {
        let mut parser = SseParser::default();
        assert_eq!(parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n"), vec![event(Some("1"), "a")]);
        // A new connection gets a new parser: the half frame is gone, and `2` comes again.
        let mut parser = SseParser::default();
        assert_eq!(parser.feed(b"id: 2\ndata: b\n\n"), vec![event(Some("2"), "b")]);
    }
}
