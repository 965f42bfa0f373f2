//! The egress path end to end with real bubblewrap: the `errand` binary's hidden
//! `sandbox-bridge` inside a sandbox with no network, the proxy on the host behind a
//! bind-mounted unix socket, and Python's urllib inside honouring `http_proxy`. The sandbox is
//! built with the arguments `errand_sandbox::egress::sandbox_egress` returns, as `exec.rs`
//! will once it is wired (see that module's docs).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use errand_sandbox::egress::{EgressPolicy, EgressProxy, sandbox_egress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Root and bwrap are needed; without them the test says why and passes, except under CI.
fn sandbox_available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let bwrap = std::process::Command::new("bwrap").arg("--version").output().is_ok();
    let python = Path::new("/usr/bin/python3").exists();
    let why = match (root, bwrap, python) {
        (true, true, true) => return true,
        (false, _, _) => "not running as root",
        (_, false, _) => "bubblewrap (bwrap) is not installed",
        (_, _, false) => "/usr/bin/python3 is not installed",
    };
    assert!(std::env::var_os("CI").is_none(), "CI must run the egress sandbox test, but {why}");
    eprintln!("skipped: {why}");
    false
}

/// An origin on the host's loopback answering every request with its path.
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
    address
}

const SCRIPT: &str = r#"
import socket, sys, urllib.error, urllib.request

port = int(sys.argv[1])
print("allowed:", urllib.request.urlopen("http://allowed.test/hello", timeout=20).read().decode())
try:
    urllib.request.urlopen("http://denied.test/", timeout=20)
    print("denied: reached")
except urllib.error.HTTPError as error:
    print("denied:", error.code, error.read().decode().strip())

# CONNECT through the bridge by hand (what an https client does before TLS).
tunnel = socket.create_connection(("127.0.0.1", 3128), timeout=20)
tunnel.sendall(b"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n")
reply = b""
while not reply.endswith(b"\r\n\r\n"):
    reply += tunnel.recv(1)
print("connect:", reply.split(b"\r\n")[0].decode())
tunnel.sendall(b"GET /tunnelled HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
data = b""
while True:
    chunk = tunnel.recv(4096)
    if not chunk:
        break
    data += chunk
print("tunnel:", data.split(b"\r\n\r\n", 1)[1].decode())

# Without the proxy: the host's server is not on this loopback, and there is no other route.
for address in [("127.0.0.1", port), ("203.0.113.1", 80)]:
    try:
        socket.create_connection(address, timeout=5)
        print("direct: connected to", address[0])
    except OSError as error:
        print("direct: failed", address[0], error.errno)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_command_reaches_allowed_domains_only_through_the_bridge() {
    if !sandbox_available() {
        return;
    }
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("egress.sock");
    let policy = EgressPolicy::parse(["allowed.test"])
        .unwrap()
        .with_test_resolution("allowed.test", origin)
        .with_test_resolution("denied.test", origin);
    let mut proxy = EgressProxy::start(policy, &socket).unwrap();

    let helper = env!("CARGO_BIN_EXE_errand");
    let egress = sandbox_egress(&socket, "/opt/errand/errand");
    let mut args: Vec<std::ffi::OsString> = [
        "--unshare-all",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--uid",
        "1000",
        "--gid",
        "1000",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .map(Into::into)
    .to_vec();
    // Merged-/usr systems (Debian 12): /bin, /lib… are links into /usr.
    for name in ["bin", "sbin", "lib", "lib64"] {
        let host = Path::new("/").join(name);
        if let Ok(target) = std::fs::read_link(&host) {
            args.extend(["--symlink".into(), target.into(), host.into()]);
        }
    }
    args.extend(["--ro-bind".into(), helper.into(), "/opt/errand/errand".into()]);
    args.extend(egress.bwrap_args.iter().cloned());
    args.extend(["--setenv".into(), "PATH".into(), "/usr/bin:/bin".into()]);
    for (key, value) in &egress.env {
        args.extend(["--setenv".into(), key.into(), value.into()]);
    }
    args.push("--".into());
    let command: Vec<String> =
        ["/usr/bin/python3", "-c", SCRIPT, &origin.port().to_string()].map(String::from).to_vec();
    args.extend(egress.wrap(&command).into_iter().map(Into::into));

    let mut bwrap = std::process::Command::new("bwrap");
    bwrap.args(&args).env_clear();
    // An unprivileged uid outside too, as exec.rs runs bwrap: the socket must be usable by it.
    bwrap.uid(65534).gid(65534);
    let output = tokio::task::spawn_blocking(move || bwrap.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bwrap failed: {}\n{stdout}\n{stderr}", output.status);

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "allowed: origin saw /hello",
            "denied: 403 errand egress: denied.test is not in this environment's allowed domains",
            "connect: HTTP/1.1 200 Connection Established",
            "tunnel: origin saw /tunnelled",
        ],
        "{stdout}\n{stderr}"
    );
    // ECONNREFUSED (111) on the sandbox's own loopback; ENETUNREACH (101) anywhere else.
    assert_eq!(lines[4], "direct: failed 127.0.0.1 111", "{stdout}");
    assert_eq!(lines[5], "direct: failed 203.0.113.1 101", "{stdout}");

    let mut seen = Vec::new();
    for _ in 0..3 {
        let record = proxy.records().recv().await.unwrap();
        seen.push((record.method.clone(), record.host.clone(), record.allowed()));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("CONNECT".into(), "allowed.test".into(), true),
            ("GET".into(), "allowed.test".into(), true),
            ("GET".into(), "denied.test".into(), false),
        ]
    );
    proxy.shutdown().await;
}
