//! The egress proxy driven over its unix socket, as the bridge in a sandbox would drive it, with
//! loopback servers standing in for allowed domains (the policy's test resolution maps a name
//! to them). Nothing here leaves the machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use errand_sandbox::egress::{
    EgressDecision, EgressLimits, EgressPolicy, EgressProxy, EgressRecord, Methods,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::mpsc;

/// A TCP server that echoes every connection back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

/// An HTTP server that answers every request with `hello from origin` and reports the request
/// head (and body, per Content-Length) it received.
async fn http_server() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let n = stream.read(&mut buffer).await.unwrap_or(0);
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .map_or(0, |v| v.parse::<usize>().unwrap());
                        if request.len() >= end + 4 + length || n == 0 {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                seen.send(String::from_utf8_lossy(&request).to_string()).unwrap();
                let body = "hello from origin";
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (address, requests)
}

struct Setup {
    _dir: tempfile::TempDir,
    proxy: EgressProxy,
    socket: PathBuf,
}

fn start(policy: EgressPolicy) -> Setup {
    start_with(policy, EgressLimits::default())
}

fn start_with(policy: EgressPolicy, limits: EgressLimits) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("egress.sock");
    let proxy = EgressProxy::start_with(policy, &socket, limits).unwrap();
    Setup { _dir: dir, proxy, socket }
}

impl Setup {
    async fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.socket).await.unwrap()
    }

    /// Sends `request` and reads the whole answer (the proxy closes after one request).
    async fn exchange(&self, request: &str) -> String {
        let mut stream = self.connect().await;
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).to_string()
    }

    async fn record(&mut self) -> EgressRecord {
        self.proxy.records().recv().await.expect("a record per connection")
    }
}

fn policy(entries: &[&str]) -> EgressPolicy {
    EgressPolicy::parse(entries).unwrap()
}

/// Reads up to the end of a response head.
async fn read_head(stream: &mut UnixStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn connect_to_an_allowed_domain_tunnels_bytes_both_ways() {
    let echo = echo_server().await;
    let mut setup =
        start(policy(&["*.allowed.test"]).with_test_resolution("api.allowed.test", echo));
    let mut stream = setup.connect().await;
    stream
        .write_all(b"CONNECT API.allowed.test:443 HTTP/1.1\r\nHost: api.allowed.test:443\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    stream.write_all(b"ping through the tunnel").await.unwrap();
    let mut echoed = [0u8; 23];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping through the tunnel");
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());

    let record = setup.record().await;
    assert_eq!(record.host, "api.allowed.test");
    assert_eq!(record.port, 443);
    assert_eq!(record.method, "CONNECT");
    assert_eq!(record.decision, EgressDecision::Allowed { address: echo });
    assert_eq!((record.bytes_sent, record.bytes_received), (23, 23));
}

#[tokio::test]
async fn a_plain_http_request_is_forwarded_once_to_the_vetted_host() {
    let (origin, mut requests) = http_server().await;
    let mut setup = start(policy(&["allowed.test"]).with_test_resolution("allowed.test", origin));
    let answer = setup
        .exchange(
            "POST http://allowed.test/submit?x=1 HTTP/1.1\r\nHost: elsewhere.test\r\n\
             Proxy-Authorization: Basic c2VjcmV0\r\nContent-Length: 5\r\n\
             Connection: keep-alive\r\n\r\nhello\
             GET http://allowed.test/second HTTP/1.1\r\n\r\n",
        )
        .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("hello from origin"), "{answer}");
    let seen = requests.recv().await.unwrap();
    assert!(seen.starts_with("POST /submit?x=1 HTTP/1.1\r\nHost: allowed.test\r\n"), "{seen}");
    assert!(seen.contains("Connection: close\r\n"), "{seen}");
    assert!(seen.ends_with("\r\n\r\nhello"), "the body, and nothing pipelined after it: {seen}");
    assert!(!seen.contains("Proxy-Authorization") && !seen.contains("keep-alive"), "{seen}");
    assert!(!seen.contains("elsewhere"), "{seen}");

    let record = setup.record().await;
    assert_eq!((record.method.as_str(), record.port), ("POST", 80));
    assert!(record.allowed());
    assert_eq!(record.bytes_sent, 5);
    assert_eq!(record.bytes_received, answer.len() as u64);
    // The pipelined second request never reached the origin (the proxy opens one origin
    // connection per client connection, and the origin saw one request on it).
    assert!(requests.try_recv().is_err());
}

#[tokio::test]
async fn a_domain_not_allowed_is_refused_with_a_message_naming_the_rule() {
    let echo = echo_server().await;
    let mut setup = start(
        policy(&["allowed.test", "*.allowed.test"])
            .with_test_resolution("example.org", echo)
            .with_test_resolution("allowed.test.example.org", echo),
    );
    for (request, host) in [
        ("CONNECT example.org:443 HTTP/1.1\r\n\r\n", "example.org"),
        ("GET http://example.org/ HTTP/1.1\r\n\r\n", "example.org"),
        ("CONNECT allowed.test.example.org:443 HTTP/1.1\r\n\r\n", "allowed.test.example.org"),
    ] {
        let answer = setup.exchange(request).await;
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
        let message = format!("errand egress: {host} is not in this environment's allowed domains");
        assert!(answer.ends_with(&format!("\r\n\r\n{message}\n")), "{answer}");
        let record = setup.record().await;
        assert_eq!(record.host, host);
        assert_eq!(record.decision, EgressDecision::Refused { status: 403, reason: message });
    }

    let answer = setup.exchange("CONNECT allowed.test:8443 HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("port 8443 of allowed.test is not allowed"), "{answer}");
    assert!(!setup.record().await.allowed());
}

#[tokio::test]
async fn a_domain_resolving_to_a_private_address_is_refused() {
    // `localhost` resolves (through /etc/hosts) to loopback: allowed by name, refused by address.
    let mut setup = start(policy(&["localhost"]));
    let answer = setup.exchange("CONNECT localhost:443 HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("errand egress: localhost resolves to"), "{answer}");
    assert!(answer.contains("a loopback address"), "{answer}");
    let record = setup.record().await;
    assert!(matches!(record.decision, EgressDecision::Refused { status: 403, .. }), "{record:?}");
}

#[tokio::test]
async fn literal_ip_addresses_are_refused_unless_allowed_and_public_or_private_is_allowed() {
    let echo = echo_server().await;
    let target = format!("127.0.0.1:{}", echo.port());
    let request = format!("CONNECT {target} HTTP/1.1\r\n\r\n");

    let setup = start(policy(&["allowed.test"]));
    let answer = setup.exchange(&request).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("127.0.0.1 is a literal IP address"), "{answer}");
    let answer = setup.exchange("GET http://[::1]/ HTTP/1.1\r\n\r\n").await;
    assert!(answer.contains("[::1] is a literal IP address"), "{answer}");

    // Listed explicitly, it is still loopback: refused unless private addresses are allowed.
    let mut setup = start(policy(&[&target]));
    let answer = setup.exchange(&request).await;
    assert!(answer.contains("resolves to 127.0.0.1, a loopback address"), "{answer}");
    assert!(!setup.record().await.allowed());

    let mut setup = start(policy(&[&target]).with_allow_private(true));
    let mut stream = setup.connect().await;
    stream.write_all(request.as_bytes()).await.unwrap();
    assert!(read_head(&mut stream).await.starts_with("HTTP/1.1 200 "));
    stream.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await.unwrap();
    drop(stream);
    assert!(setup.record().await.allowed());
}

#[tokio::test]
async fn read_only_mode_allows_get_and_refuses_other_methods_and_connect() {
    let (origin, mut requests) = http_server().await;
    let mut setup = start(
        policy(&["allowed.test"])
            .with_methods(Methods::ReadOnly)
            .with_test_resolution("allowed.test", origin),
    );
    let answer = setup.exchange("GET http://allowed.test/ HTTP/1.1\r\n\r\n").await;
    assert!(answer.ends_with("hello from origin"), "{answer}");
    assert!(setup.record().await.allowed());

    let answer =
        setup.exchange("POST http://allowed.test/ HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi").await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("POST is refused: this environment's network access is read-only"));

    let answer = setup.exchange("CONNECT allowed.test:443 HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("CONNECT to allowed.test:443 is refused"), "{answer}");
    assert!(answer.contains("read-only"), "{answer}");

    // Only the GET reached the origin.
    assert!(requests.recv().await.unwrap().starts_with("GET / HTTP/1.1"));
    assert!(requests.try_recv().is_err());
}

#[tokio::test]
async fn an_oversized_head_is_refused_without_reading_it_all() {
    let mut setup = start(policy(&["allowed.test"]));
    let stream = setup.connect().await;
    let (mut read, mut write) = stream.into_split();
    // 64 MiB of one header line, far more than the socket buffers hold: if the proxy read it
    // all, the writer would finish; it must instead be cut off after the 431.
    let writer = tokio::spawn(async move {
        write.write_all(b"GET http://allowed.test/ HTTP/1.1\r\nX-Big: ").await?;
        let chunk = vec![b'a'; 1024 * 1024];
        for _ in 0..64 {
            write.write_all(&chunk).await?;
        }
        write.write_all(b"\r\n\r\n").await
    });
    // The answer, then end of file or a reset (the proxy closes with our input unread).
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n @ 1..) = read.read(&mut buffer).await {
        answer.extend_from_slice(&buffer[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large"), "{answer}");
    assert!(answer.contains("larger than 16384 bytes"), "{answer}");
    drop(read);
    let written = writer.await.unwrap();
    assert!(written.is_err(), "the proxy consumed the whole 64 MiB head");
    let record = setup.record().await;
    assert!(matches!(record.decision, EgressDecision::Refused { status: 431, .. }));
}

#[tokio::test]
async fn bad_requests_get_a_clear_400() {
    let mut setup = start(policy(&["allowed.test"]));
    for (request, needle) in [
        ("GET /relative HTTP/1.1\r\n\r\n", "this is a proxy"),
        ("GET https://allowed.test/ HTTP/1.1\r\n\r\n", "go through CONNECT"),
        ("GET http://user@allowed.test/ HTTP/1.1\r\n\r\n", "user information"),
        ("CONNECT allowed.test HTTP/1.1\r\n\r\n", "host:port"),
        ("GET http://allowed.test/ HTTP/1.1\r\nBad Header: x\r\n\r\n", "not a token"),
        ("GET http://bücher.test/ HTTP/1.1\r\n\r\n", "punycode"),
    ] {
        let answer = setup.exchange(request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{request}: {answer}");
        assert!(answer.contains(needle), "{request}: {answer}");
        assert!(!setup.record().await.allowed());
    }
    let answer = setup
        .exchange("POST http://allowed.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
}

#[tokio::test]
async fn records_are_bounded_and_dropping_the_proxy_removes_its_socket() {
    let limits = EgressLimits { record_buffer: 1, ..EgressLimits::default() };
    let setup = start_with(policy(&["allowed.test"]), limits);
    for _ in 0..3 {
        setup.exchange("CONNECT denied.test:443 HTTP/1.1\r\n\r\n").await;
    }
    // Each exchange ends when the proxy closes the connection, just after sending its record;
    // the proxy's task may still be between the two, so wait for the count to settle.
    while setup.proxy.dropped_records() < 2 {
        tokio::task::yield_now().await;
    }
    assert_eq!(setup.proxy.dropped_records(), 2);
    let socket = setup.socket.clone();
    assert!(socket.exists());
    let Setup { _dir, proxy, .. } = setup;
    drop(proxy);
    assert!(!socket.exists());
    assert!(UnixStream::connect(&socket).await.is_err());
}
