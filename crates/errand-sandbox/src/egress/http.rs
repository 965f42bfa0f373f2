//! The small part of HTTP/1.1 the proxy speaks: reading a request head with a hard size limit,
//! parsing it strictly, the two target forms a proxy sees (RFC 9112 §3.2.2 absolute-form,
//! §3.2.3 authority-form for CONNECT), and the head forwarded to the origin.
//!
//! Strict on purpose: anything ambiguous (folded headers, whitespace before a colon, user info
//! in a URL, chunked request bodies) is refused rather than interpreted, because a proxy and
//! an origin that read one request differently is how policies get bypassed.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::policy::Host;

/// Headers longer than this in all are refused (431), and never buffered past it.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// At most this many header lines.
pub const MAX_HEADERS: usize = 100;

/// Why a request head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// More than the limit arrived without the blank line that ends a head.
    TooLarge,
    /// The client closed the connection (or reading failed) before a complete head.
    Closed,
    Malformed(String),
}

/// Reads up to and including the blank line ending a request head, never holding more than
/// `max` bytes. Returns the head and whatever followed it in the last read (the start of a
/// body, or of a TLS handshake sent eagerly after CONNECT).
pub(crate) async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut buffer = vec![0u8; max];
    let mut filled = 0;
    loop {
        if filled == max {
            return Err(HeadError::TooLarge);
        }
        let n = reader.read(&mut buffer[filled..]).await.map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        // The terminator may straddle the previous read.
        let from = filled.saturating_sub(3);
        filled += n;
        if let Some(at) = find(&buffer[from..filled], b"\r\n\r\n") {
            let end = from + at + 4;
            let rest = buffer[end..filled].to_vec();
            buffer.truncate(end);
            return Ok((buffer, rest));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The values of header `name` (compared without case).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a head as returned by [`read_head`].
pub(crate) fn parse_head(head: &[u8]) -> Result<RequestHead, HeadError> {
    let bad = |what: &str| HeadError::Malformed(what.to_string());
    let text = std::str::from_utf8(head).map_err(|_| bad("the request head is not UTF-8"))?;
    let text = text.strip_suffix("\r\n\r\n").ok_or_else(|| bad("the request head is cut short"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line is not `METHOD target HTTP/1.1`"));
    };
    if !is_token(method) {
        return Err(bad("the method is not a token"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad("only HTTP/1.0 and HTTP/1.1 are spoken here"));
    }
    if target.is_empty() || target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("the request target is empty or has control characters"));
    }
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == MAX_HEADERS {
            return Err(HeadError::TooLarge);
        }
        if line.starts_with([' ', '\t']) {
            return Err(bad("folded header lines are not accepted"));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| bad("a header line has no `:`"))?;
        if !is_token(name) {
            return Err(bad("a header name is not a token (or has space before `:`)"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(bad("a header value has control characters"));
        }
        headers.push((name.to_string(), value.to_string()));
    }
    Ok(RequestHead { method: method.to_string(), target: target.to_string(), headers })
}

/// `host:port` (CONNECT's authority-form; the port is required).
pub(crate) fn parse_authority(target: &str) -> Result<(Host, u16), String> {
    let colon = target.rfind(':').ok_or("CONNECT needs `host:port`")?;
    let (host, port) = (&target[..colon], &target[colon + 1..]);
    let port = match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(format!("`{port}` is not a port")),
        Ok(port) => port,
    };
    if !host.starts_with('[') && host.contains(':') {
        return Err("write IPv6 addresses in brackets".into());
    }
    Ok((Host::parse(host).map_err(|why| format!("`{host}` {why}"))?, port))
}

/// `http://host[:port][/path][?query][#fragment]` → host, port, origin-form path and query.
pub(crate) fn parse_absolute(target: &str) -> Result<(Host, u16, String), String> {
    let scheme_end = target.find("://").ok_or("not an absolute URL")?;
    let scheme = &target[..scheme_end];
    if scheme.eq_ignore_ascii_case("https") {
        return Err("https:// URLs go through CONNECT, not as a plain proxy request".into());
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("the `{scheme}` scheme is not proxied"));
    }
    let rest = &target[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err("user information in the URL (`user@host`) is not accepted".into());
    }
    let (host, port) = if let Some(i) = authority.rfind(':').filter(|&i| {
        // The colon of `[v6]` does not separate a port.
        !authority.starts_with('[') || authority[..i].ends_with(']')
    }) {
        let port = &authority[i + 1..];
        let port = match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("`{port}` is not a port")),
            Ok(port) => port,
        };
        (&authority[..i], port)
    } else {
        (authority, 80)
    };
    let host = Host::parse(host).map_err(|why| format!("`{host}` {why}"))?;
    let path = path.split('#').next().unwrap_or_default();
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok((host, port, path))
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and proxy credentials: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The head sent to the origin: origin-form target, a `Host` naming the vetted host (never the
/// client's own `Host`, which could steer a shared front end to another site), no hop-by-hop
/// headers, and `Connection: close` (one request per connection).
pub(crate) fn forwarded_head(head: &RequestHead, host: &Host, port: u16, path: &str) -> Vec<u8> {
    let named_by_connection: Vec<String> = head
        .values("connection")
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = format!("{} {path} HTTP/1.1\r\nHost: {host}", head.method);
    if port != 80 {
        out.push_str(&format!(":{port}"));
    }
    out.push_str("\r\n");
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || named_by_connection.contains(&lower) {
            continue;
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// The request body's length: 0 without a body; an error for chunked or conflicting framing.
pub(crate) fn body_length(head: &RequestHead) -> Result<u64, String> {
    if head.values("transfer-encoding").next().is_some() {
        return Err("request bodies with Transfer-Encoding (chunked) are not supported by \
                    errand's proxy; send Content-Length"
            .into());
    }
    let mut lengths = head.values("content-length").flat_map(|v| v.split(','));
    let Some(first) = lengths.next() else { return Ok(0) };
    let length: u64 = first.trim().parse().map_err(|_| "Content-Length is not a number")?;
    if lengths.any(|other| other.trim().parse::<u64>() != Ok(length)) {
        return Err("conflicting Content-Length headers".into());
    }
    Ok(length)
}

/// A complete response the proxy makes itself (refusals and errors), closing the connection.
pub(crate) fn response(status: u16, body: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nX-Errand-Egress: refused\r\n\r\n{body}\n",
        body.len() + 1
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_head_is_read_with_what_follows_it() {
        let mut input: &[u8] =
            b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03\x01";
        let (head, rest) = read_head(&mut input, 1024).await.unwrap();
        assert!(head.ends_with(b"\r\n\r\n"));
        assert_eq!(rest, b"\x16\x03\x01");
        let parsed = parse_head(&head).unwrap();
        assert_eq!(parsed.method, "CONNECT");
        assert_eq!(parsed.target, "a.example:443");
        assert_eq!(parsed.headers, [("Host".to_string(), "a.example:443".to_string())]);
    }

    /// A reader that yields a few bytes at a time, so the terminator straddles reads.
    struct Trickle<'a>(&'a [u8]);

    impl AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.0.len().min(3).min(buf.remaining());
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_end_of_a_head_is_found_across_reads() {
        let mut input = Trickle(b"GET http://a.example/ HTTP/1.1\r\nX: y\r\n\r\nbody");
        let (head, rest) = read_head(&mut input, 1024).await.unwrap();
        assert_eq!(head, b"GET http://a.example/ HTTP/1.1\r\nX: y\r\n\r\n");
        // What arrived in the same read as the terminator, and no more.
        assert!(!rest.is_empty() && b"body".starts_with(&rest), "{rest:?}");
    }

    #[tokio::test]
    async fn an_endless_head_is_cut_off_at_the_limit() {
        // An endless header: the reader must stop at the limit, not buffer what keeps coming.
        let endless = tokio::io::repeat(b'a');
        let mut limited = endless.take(10 * 1024 * 1024);
        let error = read_head(&mut limited, 4096).await.unwrap_err();
        assert!(matches!(error, HeadError::TooLarge));
        assert_eq!(limited.limit(), 10 * 1024 * 1024 - 4096, "read past the limit");

        let mut many = String::from("GET http://a.example/ HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let (head, _) = read_head(&mut many.as_bytes(), 64 * 1024).await.unwrap();
        assert!(matches!(parse_head(&head), Err(HeadError::TooLarge)));

        let mut closed: &[u8] = b"GET http://a.example/ HTTP/1.1\r\n";
        assert!(matches!(read_head(&mut closed, 4096).await, Err(HeadError::Closed)));
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        for head in [
            "GET http://a/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nX : a\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET http://a/  HTTP/1.1\r\n\r\n",
            "GET http://a/ HTTP/2\r\n\r\n",
            "G(T http://a/ HTTP/1.1\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(head.as_bytes()), Err(HeadError::Malformed(_))),
                "{head:?}"
            );
        }
    }

    #[test]
    fn targets_are_parsed() {
        let host = |s: &str| Host::parse(s).unwrap();
        assert_eq!(parse_authority("Example.com:443").unwrap(), (host("example.com"), 443));
        assert_eq!(parse_authority("[::1]:8080").unwrap(), (host("[::1]"), 8080));
        for bad in ["example.com", "example.com:0", "example.com:x", "::1:80", "a b:80"] {
            assert!(parse_authority(bad).is_err(), "{bad}");
        }
        let cases = [
            ("http://a.example", "a.example", 80, "/"),
            ("http://a.example:8080/x?y=1#frag", "a.example", 8080, "/x?y=1"),
            ("HTTP://A.example?q", "a.example", 80, "/?q"),
            ("http://[2001:db8::1]/p", "[2001:db8::1]", 80, "/p"),
            ("http://[2001:db8::1]:81/p", "[2001:db8::1]", 81, "/p"),
        ];
        for (target, want_host, want_port, want_path) in cases {
            let (h, port, path) = parse_absolute(target).unwrap();
            assert_eq!((h, port, path.as_str()), (host(want_host), want_port, want_path));
        }
        for bad in [
            "/relative",
            "https://a.example/",
            "ftp://a.example/",
            "http://user@a.example/",
            "http://a.example:99999/",
            "http://a%2eexample/",
        ] {
            assert!(parse_absolute(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_forwarded_head_names_the_vetted_host_and_drops_hop_by_hop_headers() {
        let head = parse_head(
            b"GET http://a.example/x HTTP/1.1\r\nHost: evil.example\r\nAccept: */*\r\n\
              Proxy-Authorization: secret\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\
              Keep-Alive: 5\r\n\r\n",
        )
        .unwrap();
        let out = forwarded_head(&head, &Host::parse("a.example").unwrap(), 8080, "/x");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nHost: a.example:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn body_framing() {
        let head = |extra: &str| {
            parse_head(format!("POST http://a/ HTTP/1.1\r\n{extra}\r\n").as_bytes()).unwrap()
        };
        assert_eq!(body_length(&head("")), Ok(0));
        assert_eq!(body_length(&head("Content-Length: 12\r\n")), Ok(12));
        assert_eq!(body_length(&head("Content-Length: 12\r\nContent-Length: 12\r\n")), Ok(12));
        assert!(body_length(&head("Content-Length: 12\r\nContent-Length: 13\r\n")).is_err());
        assert!(body_length(&head("Content-Length: x\r\n")).is_err());
        assert!(body_length(&head("Transfer-Encoding: chunked\r\n")).is_err());
    }
}
