//! The smallest HTTP/1.1 client the benchmark needs, over a plain loopback `TcpStream`: one JSON
//! request per connection, and an SSE reader that notes when each event's frame arrives. Bodies
//! may be `Content-Length`-delimited, chunked (what axum sends for a stream) or end at close.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one request with `Connection: close` and returns the status and the whole body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&[u8]>,
) -> Result<(u16, Vec<u8>), String> {
    let mut stream =
        TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n"
    );
    if let Some(body) = body {
        head += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    }
    head += "\r\n";
    let io = |e: std::io::Error| format!("{method} {path}: {e}");
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    if let Some(body) = body {
        stream.write_all(body).await.map_err(io)?;
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(io)?;
    let (status, chunked, at) = parse_head(&raw)?.ok_or("the response ended inside its head")?;
    let mut rest = raw[at..].to_vec();
    if !chunked {
        return Ok((status, rest));
    }
    let mut body = Vec::new();
    while let Some(chunk) = next_chunk(&mut rest)? {
        if chunk.is_empty() {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// What one SSE client saw: each event's `id` with the moment its frame was read, and whether
/// the stream ended cleanly (the server closed it after its last event).
#[derive(Debug, Default)]
pub struct SseLog {
    pub received: Vec<(u64, Instant)>,
    pub ended: bool,
}

/// Follows `path` as an SSE stream until the server ends it; `seen` is told every id at once
/// (so the caller can tell when every client has caught up).
pub async fn follow_sse(
    addr: SocketAddr,
    path: &str,
    token: &str,
    seen: &std::sync::atomic::AtomicU64,
) -> Result<SseLog, String> {
    let mut stream =
        TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    let io = |e: std::io::Error| format!("GET {path}: {e}");
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::with_capacity(4096);
    let mut buffer = vec![0u8; 16 * 1024];
    let (chunked, mut rest) = loop {
        let n = stream.read(&mut buffer).await.map_err(io)?;
        if n == 0 {
            return Err(format!("GET {path}: the connection closed before the response"));
        }
        raw.extend_from_slice(&buffer[..n]);
        if let Some((status, chunked, at)) = parse_head(&raw)? {
            if status != 200 {
                return Err(format!("GET {path} answered {status}"));
            }
            break (chunked, raw[at..].to_vec());
        }
    };
    let mut log = SseLog::default();
    let mut text: Vec<u8> = Vec::new();
    loop {
        let now = Instant::now();
        if chunked {
            while let Some(chunk) = next_chunk(&mut rest)? {
                if chunk.is_empty() {
                    log.ended = true;
                }
                text.extend_from_slice(&chunk);
            }
        } else {
            text.append(&mut rest);
        }
        while let Some(end) = find(&text, b"\n\n") {
            let frame: Vec<u8> = text.drain(..end + 2).collect();
            let id = String::from_utf8_lossy(&frame)
                .lines()
                .find_map(|line| line.strip_prefix("id:").map(|id| id.trim().parse::<u64>()));
            match id {
                Some(Ok(id)) => {
                    log.received.push((id, now));
                    seen.store(id, std::sync::atomic::Ordering::Release);
                }
                Some(Err(_)) => return Err(format!("GET {path}: an event id is not a number")),
                // A keep-alive comment.
                None => {}
            }
        }
        if log.ended {
            return Ok(log);
        }
        let n = stream.read(&mut buffer).await.map_err(io)?;
        if n == 0 {
            // Closed without the terminating chunk: the stream did not end cleanly.
            return Ok(log);
        }
        rest.extend_from_slice(&buffer[..n]);
    }
}

/// The status, whether the body is chunked, and where the body starts; `None` until the whole
/// head has arrived.
fn parse_head(raw: &[u8]) -> Result<Option<(u16, bool, usize)>, String> {
    let Some(end) = find(raw, b"\r\n\r\n") else { return Ok(None) };
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {:?}", head.lines().next()))?;
    let chunked = lines.any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    Ok(Some((status, chunked, end + 4)))
}

/// Takes one whole chunk off the front of `raw` (empty for the last chunk); `None` until it
/// has all arrived.
fn next_chunk(raw: &mut Vec<u8>) -> Result<Option<Vec<u8>>, String> {
    let Some(line_end) = find(raw, b"\r\n") else { return Ok(None) };
    let size_text = String::from_utf8_lossy(&raw[..line_end]);
    let size_text = size_text.split(';').next().unwrap_or("").trim();
    let size = usize::from_str_radix(size_text, 16)
        .map_err(|_| format!("bad chunk size {size_text:?} in a chunked body"))?;
    let total = line_end + 2 + size + 2;
    if raw.len() < total {
        return Ok(None);
    }
    let chunk = raw[line_end + 2..line_end + 2 + size].to_vec();
    raw.drain(..total);
    Ok(Some(chunk))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_taken_whole_or_not_at_all() {
        let mut raw = b"5\r\nhello\r\n3\r\nab".to_vec();
        assert_eq!(next_chunk(&mut raw).unwrap(), Some(b"hello".to_vec()));
        assert_eq!(next_chunk(&mut raw).unwrap(), None);
        raw.extend_from_slice(b"c\r\n0\r\n\r\n");
        assert_eq!(next_chunk(&mut raw).unwrap(), Some(b"abc".to_vec()));
        assert_eq!(next_chunk(&mut raw).unwrap(), Some(Vec::new()));
        assert!(next_chunk(&mut b"zz\r\n".to_vec()).is_err());
    }

    #[test]
    fn the_head_gives_status_and_framing() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nbody";
        assert_eq!(parse_head(raw).unwrap(), Some((200, true, raw.len() - 4)));
        assert_eq!(parse_head(b"HTTP/1.1 201 Created\r\n").unwrap(), None);
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_head(raw).unwrap(), Some((404, false, raw.len() - 2)));
    }
}
