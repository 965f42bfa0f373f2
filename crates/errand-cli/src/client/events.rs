//! An attempt's work log from the server: read once in pages, or followed live over the SSE
//! stream. Following survives dropped connections and server restarts: the client reconnects
//! with `Last-Event-ID` set to the last `seq` it handed on (the server then replays exactly
//! what came after, errand-server `api/events.rs`), and skips any `seq` it has already handed
//! on, so every event reaches the caller once and in order.

use std::time::Duration;

use errand_protocol::api::EventPage;
use errand_protocol::{AttemptId, AttemptOutcome, Event, EventKind};
use reqwest::Method;

use super::http::{ApiClient, RequestError};
use super::sse::SseParser;

/// One event as it came: its JSON text (printed as is by `--json`) and, when this version of
/// errand knows its kind, the parsed event.
pub struct Received<'a> {
    pub json: &'a str,
    pub event: Option<&'a Event>,
}

/// How hard following tries to get a broken stream back.
#[derive(Debug, Clone)]
pub struct Reconnect {
    /// The first pause after a broken stream; it doubles up to `max_delay` while nothing new
    /// arrives, and starts over once an event does.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Give up after this many tries in a row that brought no event.
    pub tries: u32,
    /// A stream silent for this long is taken for dead (the server sends a keep-alive comment
    /// every 15 s).
    pub idle: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        // Doubling from 250 ms to 5 s over 12 tries waits about 45 s in all: long enough for a
        // server restart, short enough that a script is not stuck on a server that is gone.
        Reconnect {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            tries: 12,
            idle: Duration::from_secs(45),
        }
    }
}

/// Reads the attempt's events after `after` that are stored now, in pages; returns the last
/// `seq` read and whether the log is closed.
pub async fn read_stored(
    api: &ApiClient,
    attempt: AttemptId,
    mut after: u64,
    on_event: &mut dyn FnMut(Received<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, bool)> {
    loop {
        let page: EventPage =
            api.get(&format!("/api/attempts/{attempt}/events?after={after}&limit=1000")).await?;
        let Some(last) = page.events.last().map(|e| e.seq) else {
            return Ok((after, page.finished));
        };
        for event in &page.events {
            let json = serde_json::to_string(event)?;
            on_event(Received { json: &json, event: Some(event) })?;
        }
        after = last;
        if page.finished || after >= page.last_seq {
            return Ok((after, page.finished));
        }
    }
}

/// Follows the attempt's events after `after` until `finished`, handing each to `on_event`
/// once, in order, and returns the outcome `finished` carried. An error of `on_event` (stdout
/// closed) ends following at once.
pub async fn follow(
    api: &ApiClient,
    attempt: AttemptId,
    mut after: u64,
    reconnect: &Reconnect,
    on_event: &mut dyn FnMut(Received<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<AttemptOutcome> {
    let mut fruitless = 0;
    let mut delay = reconnect.first_delay;
    loop {
        let before = after;
        let broke = match stream_once(api, attempt, &mut after, reconnect.idle, on_event).await? {
            Ok(ended) => return Ok(ended),
            Err(broke) => broke,
        };
        if after > before {
            fruitless = 0;
            delay = reconnect.first_delay;
        } else {
            fruitless += 1;
        }
        if fruitless >= reconnect.tries {
            anyhow::bail!(
                "lost the event stream of {attempt} ({broke}); gave up after {fruitless} tries. \
                 Everything up to event {after} was shown; `errand task logs {attempt} --follow` \
                 shows the rest once the server is back"
            );
        }
        tracing::info!(attempt_id = %attempt, "event stream broke ({broke}); resuming after {after} in {delay:?}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(reconnect.max_delay);
    }
}

/// One connection to the stream. `Ok(Err(why))` when it broke before `finished` (try again);
/// `Err` when trying again cannot help (the attempt is not there, the token is refused, the
/// caller's `on_event` failed).
async fn stream_once(
    api: &ApiClient,
    attempt: AttemptId,
    after: &mut u64,
    idle: Duration,
    on_event: &mut dyn FnMut(Received<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<Result<AttemptOutcome, String>> {
    let mut request = api
        .request(Method::GET, &format!("/api/attempts/{attempt}/events/stream"))
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if *after > 0 {
        request = request.header("Last-Event-ID", after.to_string());
    }
    let mut response = match api.send(request).await {
        Ok(response) => response,
        Err(e) if e.is_transient() => return Ok(Err(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let mut parser = SseParser::default();
    loop {
        let chunk = match tokio::time::timeout(idle, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return Ok(Err("the server closed the stream".into())),
            Ok(Err(e)) => {
                let broke =
                    RequestError::Transport { url: api.base().into(), detail: e.to_string() };
                return Ok(Err(broke.to_string()));
            }
            Err(_) => return Ok(Err(format!("nothing arrived for {} s", idle.as_secs()))),
        };
        for frame in parser.feed(&chunk) {
            let event: Option<Event> = serde_json::from_str(&frame.data).ok();
            let seq = match (&event, frame.id.as_deref().map(str::parse::<u64>)) {
                (Some(event), _) => event.seq,
                (None, Some(Ok(seq))) => seq,
                (None, _) => anyhow::bail!(
                    "the event stream sent a frame without a sequence number: {}",
                    frame.data.chars().take(200).collect::<String>()
                ),
            };
            if seq <= *after {
                continue;
            }
            on_event(Received { json: &frame.data, event: event.as_ref() })?;
            *after = seq;
            if let Some(Event { kind: EventKind::Finished { outcome }, .. }) = event {
                return Ok(Ok(outcome));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use errand_protocol::AttemptState;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn frame(seq: u64, kind: EventKind) -> String {
        let json = serde_json::to_string(&Event { seq, at_ms: 0, kind }).unwrap();
        format!("id: {seq}\ndata: {json}\n\n")
    }

    fn message(seq: u64) -> String {
        frame(seq, EventKind::AgentMessage { text: format!("message {seq}") })
    }

    fn finished(seq: u64) -> String {
        let outcome = AttemptOutcome { state: AttemptState::Succeeded, reason: "done".into() };
        frame(seq, EventKind::Finished { outcome })
    }

    /// A one-route HTTP server that answers the n-th connection with `bodies[n]` (as a
    /// `text/event-stream` without a length, then closes it: a dropped stream) and records
    /// each request's `Last-Event-ID`. Past the scripted answers it refuses with 503.
    async fn stream_server(bodies: Vec<String>) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                while !request.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8];
                    if socket.read(&mut byte).await.unwrap() == 0 {
                        break;
                    }
                    request.push(byte[0]);
                }
                let request = String::from_utf8(request).unwrap();
                let last_id = request.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("last-event-id").then(|| value.trim().to_string())
                });
                log.lock().unwrap().push(last_id);
                let answer = match bodies.get(n) {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}"
                    ),
                    None => {
                        let body = r#"{"error":{"code":"unavailable","message":"restarting"}}"#;
                        format!(
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                socket.write_all(answer.as_bytes()).await.unwrap();
                socket.shutdown().await.unwrap();
            }
        });
        (url, seen)
    }

    fn quick() -> Reconnect {
        Reconnect {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            tries: 3,
            idle: Duration::from_secs(10),
        }
    }

    async fn follow_all(url: &str, after: u64) -> (anyhow::Result<AttemptOutcome>, Vec<u64>) {
        let api = ApiClient::new(url.into(), "t".into()).unwrap();
        let mut seqs = Vec::new();
        let ended = follow(&api, AttemptId::new(), after, &quick(), &mut |received| {
            seqs.push(received.event.unwrap().seq);
            Ok(())
        })
        .await;
        (ended, seqs)
    }

    #[tokio::test]
    async fn a_dropped_stream_resumes_after_the_last_event_and_repeats_nothing() {
        let bodies = vec![
            // Dropped in the middle of event 3's frame.
            format!("{}: keep-alive\n\n{}{}", message(1), message(2), &message(3)[..20]),
            // A server that replays from before Last-Event-ID: 2 is not shown twice.
            format!("{}{}", message(2), message(3)),
            // Dropped right after a whole frame, then nothing for a while.
            String::new(),
            format!("{}{}", message(4), finished(5)),
        ];
        let (url, seen) = stream_server(bodies).await;
        let (ended, seqs) = follow_all(&url, 0).await;
        let outcome = ended.unwrap();
        assert_eq!(outcome.state, AttemptState::Succeeded);
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        let ids = seen.lock().unwrap().clone();
        assert_eq!(ids, vec![None, Some("2".into()), Some("3".into()), Some("3".into())]);
    }

    #[tokio::test]
    async fn following_starts_after_the_given_event() {
        let (url, seen) = stream_server(vec![format!("{}{}", message(8), finished(9))]).await;
        let (ended, seqs) = follow_all(&url, 7).await;
        assert!(ended.is_ok(), "{ended:?}");
        assert_eq!(seqs, vec![8, 9]);
        assert_eq!(seen.lock().unwrap().clone(), vec![Some("7".into())]);
    }

    #[tokio::test]
    async fn following_gives_up_when_the_stream_never_comes_back() {
        // One event, then every try is refused with 503.
        let (url, seen) = stream_server(vec![message(1)]).await;
        let (ended, seqs) = follow_all(&url, 0).await;
        let err = ended.unwrap_err().to_string();
        assert_eq!(seqs, vec![1]);
        assert!(err.contains("gave up after 3 tries") && err.contains("up to event 1"), "{err}");
        assert_eq!(seen.lock().unwrap().len(), 4, "the first stream and three tries");
    }

    #[tokio::test]
    async fn a_request_that_cannot_succeed_is_not_retried() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await.unwrap();
            let body = r#"{"error":{"code":"not_found","message":"no attempt att_x"}}"#;
            let answer = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let (ended, seqs) = follow_all(&url, 0).await;
        assert_eq!(ended.unwrap_err().to_string(), "no attempt att_x");
        assert!(seqs.is_empty());
    }
}
