//! `errand exec --env FILE` with `agent_network`, end to end: the agent's command reaches an
//! allowed origin only through the attempt's egress proxy, is refused elsewhere, has no direct
//! route, and every proxied connection is an `egress_connection` event; without
//! `agent_network` the same command has no proxy and no way out.
//!
//! The origins are loopback servers this test runs on the host. Loopback is reachable through
//! the proxy only as an explicitly allowed address with `allow_private = true`: the proxy's
//! test-only name mapping is not something an environment file can set.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{both, json_lines, make_repo, sandbox_available, scratch};
use errand_testkit::{Script, ScriptedModel};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An origin on the host's loopback answering every request with its path; counts requests.
async fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                let body = format!("origin saw {path}");
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

/// What the agent runs: urllib through `HTTP_PROXY` to the allowed and the other origin, then
/// a direct connection. `NO_PROXY` names loopback (so servers the agent starts in its own
/// sandbox are reached directly); the origins are on the *host's* loopback, so the probe
/// drops it and urllib takes the proxy from `HTTP_PROXY` like any other address.
const PROBE: &str = r#"
import os, socket, sys, urllib.error, urllib.request
allowed, other = sys.argv[1], sys.argv[2]
print("proxy:", os.environ.get("HTTP_PROXY"), os.environ.get("https_proxy"))
for name in ("NO_PROXY", "no_proxy"):
    os.environ.pop(name, None)
def fetch(url):
    try:
        return "ok " + urllib.request.urlopen(url, timeout=20).read().decode()
    except urllib.error.HTTPError as error:
        return "http %d %s" % (error.code, error.read().decode().strip())
    except OSError as error:
        return "error %s" % error
print("allowed:", fetch("http://127.0.0.1:%s/hello" % allowed))
print("other:", fetch("http://127.0.0.1:%s/secret" % other))
try:
    socket.create_connection(("127.0.0.1", int(allowed)), timeout=5)
    print("direct: connected")
except OSError as error:
    print("direct: failed", error.errno)
"#;

/// A model that runs the probe, expects `expected` in what it printed, and finishes.
fn script(allowed: u16, other: u16, expected: &[&str]) -> Script {
    let command: Vec<toml::Value> =
        ["python3", "-c", PROBE, &allowed.to_string(), &other.to_string()]
            .into_iter()
            .map(|part| toml::Value::String(part.into()))
            .collect();
    let expected: Vec<toml::Value> =
        expected.iter().map(|text| toml::Value::String(text.to_string())).collect();
    let text = format!(
        r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = {{ command = {} }}

[[turns]]
expect.last_tool_output_contains = {}
[[turns.output]]
type = "message"
text = "Probed the network."
"#,
        toml::Value::Array(command),
        toml::Value::Array(expected)
    );
    Script::from_toml(&text).unwrap()
}

async fn exec(root: &Path, repo: &Path, model: &ScriptedModel, env_file: &Path) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["exec", "--json", "--env", env_file.to_str().unwrap(), "probe the network"])
        .current_dir(repo)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", root)
        .env("ERRAND_MODEL_BASE_URL", model.base_url())
        .env("ERRAND_MODEL", "scripted")
        .env("OPENAI_API_KEY", "test-key")
        .env("ERRAND_DATA_DIR", root.join("data"))
        .output()
        .await
        .unwrap()
}

/// The probe's output, as the `command_output` events of the run carry it.
fn command_output(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "command_output")
        .filter_map(|e| e["text"].as_str())
        .collect()
}

fn isolation(events: &[Value]) -> Vec<String> {
    let ready = events.iter().find(|e| e["type"] == "sandbox_ready").expect("sandbox_ready");
    ready["isolation"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_network_opens_only_the_allowed_origin_and_logs_every_connection() {
    if !sandbox_available() {
        return;
    }
    let (allowed, allowed_requests) = origin().await;
    let (other, other_requests) = origin().await;
    let root = scratch();
    let repo = make_repo(root.path());
    let env_file = root.path().join("env.toml");
    std::fs::write(
        &env_file,
        format!(
            "[agent_network]\nallow = [\"127.0.0.1:{}\"]\nallow_private = true\n",
            allowed.port()
        ),
    )
    .unwrap();

    let denial =
        format!("http 403 errand egress: port {0} of 127.0.0.1 is not allowed", other.port());
    let model = ScriptedModel::start(script(
        allowed.port(),
        other.port(),
        &["proxy: http://127.0.0.1:3128 http://127.0.0.1:3128", "allowed: ok origin saw /hello"],
    ))
    .await
    .unwrap();
    let out = exec(root.path(), &repo, &model, &env_file).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    model.verify().unwrap();
    let events = json_lines(&out);
    let printed = command_output(&events);
    assert!(printed.contains("allowed: ok origin saw /hello"), "{printed}");
    assert!(printed.contains(&format!("other: {denial}")), "{printed}");
    // ECONNREFUSED: the host's servers are not on the sandbox's own loopback.
    assert!(printed.contains("direct: failed 111"), "{printed}");
    assert_eq!(allowed_requests.load(Ordering::SeqCst), 1, "one request reached the origin");
    assert_eq!(other_requests.load(Ordering::SeqCst), 0, "the other origin was never contacted");

    let network: Vec<String> =
        isolation(&events).into_iter().filter(|fact| fact.starts_with("network:")).collect();
    assert_eq!(network, ["network: egress proxy (1 allowed domains, private addresses allowed)"]);

    let connections: Vec<&Value> =
        events.iter().filter(|e| e["type"] == "egress_connection").collect();
    assert_eq!(connections.len(), 2, "{connections:?}");
    let by_port = |port: u16| {
        connections
            .iter()
            .find(|e| e["port"] == port)
            .unwrap_or_else(|| panic!("no connection to {port}: {connections:?}"))
    };
    let ok = by_port(allowed.port());
    assert_eq!((ok["host"].as_str(), ok["method"].as_str()), (Some("127.0.0.1"), Some("GET")));
    assert_eq!(ok["decision"], "allowed", "{ok}");
    assert_eq!(ok["address"], allowed.to_string());
    assert!(ok["bytes_received"].as_u64().unwrap() > "origin saw /hello".len() as u64, "{ok}");
    let refused = by_port(other.port());
    assert_eq!(refused["decision"], "denied", "{refused}");
    assert_eq!(refused["status"], 403);
    assert!(refused["reason"].as_str().unwrap().contains("is not allowed"), "{refused}");
    assert_eq!(refused["bytes_sent"], 0);
    // Logged with the command that made them: after it started, before it finished.
    let position = |wanted: &dyn Fn(&Value) -> bool| events.iter().position(wanted).unwrap();
    let started = position(&|e| e["type"] == "command_started");
    let finished = position(&|e| e["type"] == "command_finished");
    for connection in &connections {
        let at = position(&|e| e == *connection);
        assert!(started < at && at < finished, "{at} not in {started}..{finished}");
    }
    // The proxy and its socket went with the attempt.
    let attempts = root.path().join("data/attempts");
    let left: Vec<_> = std::fs::read_dir(&attempts).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_agent_network_the_same_command_has_no_proxy_and_no_way_out() {
    if !sandbox_available() {
        return;
    }
    let (allowed, allowed_requests) = origin().await;
    let root = scratch();
    let repo = make_repo(root.path());
    let env_file = root.path().join("env.toml");
    std::fs::write(&env_file, "[env]\nPROBE = \"1\"\n").unwrap();

    let model = ScriptedModel::start(script(
        allowed.port(),
        allowed.port(),
        &["proxy: None None", "direct: failed 111"],
    ))
    .await
    .unwrap();
    let out = exec(root.path(), &repo, &model, &env_file).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    model.verify().unwrap();
    let events = json_lines(&out);
    let printed = command_output(&events);
    assert!(printed.contains("proxy: None None"), "{printed}");
    assert!(printed.contains("allowed: error <urlopen error [Errno 111]"), "{printed}");
    assert!(printed.contains("direct: failed 111"), "{printed}");
    assert_eq!(allowed_requests.load(Ordering::SeqCst), 0);
    assert!(!events.iter().any(|e| e["type"] == "egress_connection"));
    assert!(isolation(&events).iter().any(|fact| fact.starts_with("network: none")));
}
