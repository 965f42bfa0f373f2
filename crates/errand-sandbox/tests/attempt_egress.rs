//! An attempt's egress proxy in the real local sandbox: started by `start_egress`, put in front
//! of the agent's commands only (the fake helper binary shows how it was invoked), its
//! connections handed out as events, and gone, socket included, after `destroy`. The full
//! path through the real bridge and `errand exec` is in errand-cli's `tests/egress_exec.rs`.

mod common;

use std::net::SocketAddr;

use common::{Fixture, request, run, sandbox_available};
use errand_protocol::{EgressDecision, EventKind};
use errand_sandbox::Sandbox;
use errand_sandbox::egress::EgressPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

/// A loopback origin that answers one fixed response to every connection.
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    address
}

/// Sends one request through the proxy's socket, as the bridge would, and reads the answer.
async fn through_socket(socket: &std::path::Path, request: &str) -> String {
    let mut stream = UnixStream::connect(socket).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_serves_the_agents_commands_only_and_goes_with_the_sandbox() {
    if !sandbox_available() {
        return;
    }
    let origin = origin().await;
    let fx = Fixture::new(&[("README.md", b"# demo\n")]);
    let mut sandbox = fx.sandbox("egress").await;
    assert!(sandbox.isolation().iter().any(|fact| fact.starts_with("network: none")));
    assert_eq!(sandbox.egress_socket(), None);
    let policy = EgressPolicy::parse([format!("127.0.0.1:{}", origin.port())])
        .unwrap()
        .with_allow_private(true);
    sandbox.start_egress(policy.clone()).unwrap();
    assert!(sandbox.start_egress(policy).is_err(), "one proxy per sandbox");

    let network: Vec<String> =
        sandbox.isolation().into_iter().filter(|fact| fact.starts_with("network:")).collect();
    assert_eq!(network, ["network: egress proxy (1 allowed domains, private addresses allowed)"]);
    let socket = sandbox.egress_socket().unwrap().to_path_buf();
    assert_eq!(socket, fx.data_dir().join("attempts/egress/egress.sock"));
    assert!(socket.exists());

    // The agent's command runs behind the bridge (here the fake helper, which says so) ...
    let (outcome, output) = run(&sandbox, request(&["true"])).await;
    assert!(outcome.success(), "{output}");
    assert!(
        output.contains(
            "args=sandbox-bridge --listen 127.0.0.1:3128 --socket /run/errand-egress.sock -- true"
        ),
        "{output}"
    );
    // ... the sandbox's own helper calls do not: read_file gets the file, not the bridge.
    assert_eq!(sandbox.read_file("README.md").await.unwrap(), Some(b"# demo\n".to_vec()));
    let patched = sandbox.apply_patch("*** Begin Patch", "").await.unwrap();
    assert!(patched.output.contains("args=apply-patch --json"), "{}", patched.output);

    // Connections through the socket become events, drained once.
    let port = origin.port();
    let answer = through_socket(
        &socket,
        &format!("GET http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
    )
    .await;
    assert!(answer.ends_with("hello"), "{answer}");
    let answer =
        through_socket(&socket, "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // A command's end waits for open connections to report, so after it the records are there.
    run(&sandbox, request(&["true"])).await;
    let events = sandbox.drain_events();
    let mut decisions: Vec<(u16, EgressDecision)> = events
        .iter()
        .map(|event| match event {
            EventKind::EgressConnection { port, decision, .. } => (*port, *decision),
            other => panic!("not an egress event: {other:?}"),
        })
        .collect();
    decisions.sort_by_key(|(port, _)| *port);
    assert_eq!(decisions, [(1, EgressDecision::Denied), (port, EgressDecision::Allowed)]);
    assert!(sandbox.drain_events().is_empty(), "each record is handed out once");

    sandbox.destroy().await.unwrap();
    assert!(!socket.exists(), "the socket is removed");
    assert!(UnixStream::connect(&socket).await.is_err(), "nothing listens any more");
}
