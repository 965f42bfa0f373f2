//! The proxy itself: a unix socket on the host, one task per connection, a decision per
//! request, a record per connection.
//!
//! Order of checks for each request: the head is read within a size and time limit; the target
//! is parsed (CONNECT `host:port`, or `http://` absolute-form); the host and port must match an
//! entry of the policy; the method must pass the method policy; the host is resolved once and
//! *every* address must be public (one private answer refuses the lot, so a name cannot
//! smuggle in `127.0.0.1` as a second record); then the proxy connects to those vetted
//! addresses and nothing else. It never resolves the name again, so a DNS answer that changes
//! between check and use (rebinding) changes nothing. Shape learnt from sandbox-runtime's
//! `http-proxy.ts` (CONNECT handler and a plain-HTTP handler behind one allow filter) and
//! codex's `network-proxy` (limited mode, local-address refusal); no code taken from either.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::addr::{AddressClass, classify};
use super::http::{self, HeadError, RequestHead};
use super::policy::{EgressPolicy, Host, Methods};

/// Bounds on what one client can make the proxy do.
#[derive(Debug, Clone)]
pub struct EgressLimits {
    /// The request head, all headers included (431 past it).
    pub max_head_bytes: usize,
    /// From accepting a connection to a complete request head (408 past it).
    pub head_timeout: Duration,
    /// Resolving a name.
    pub resolve_timeout: Duration,
    /// Connecting to the origin.
    pub connect_timeout: Duration,
    /// A tunnel or response with no bytes moving either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Records kept for the reader of [`EgressProxy::records`]; past it they are counted and
    /// dropped (see [`EgressProxy::dropped_records`]) rather than held without bound.
    pub record_buffer: usize,
}

impl Default for EgressLimits {
    fn default() -> Self {
        EgressLimits {
            max_head_bytes: http::DEFAULT_MAX_HEAD_BYTES,
            head_timeout: Duration::from_secs(30),
            resolve_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_connections: 128,
            record_buffer: 4096,
        }
    }
}

/// What the proxy did with one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum EgressDecision {
    /// Tunnelled or forwarded to `address`.
    Allowed { address: SocketAddr },
    /// Refused by policy or for a bad request; `reason` is the body the client received.
    Refused { status: u16, reason: String },
    /// Allowed, but the origin could not be resolved or reached.
    Failed { status: u16, reason: String },
}

/// One connection through the proxy, for the attempt's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressRecord {
    /// Empty when the request never got as far as naming one.
    pub host: String,
    pub port: u16,
    pub method: String,
    #[serde(flatten)]
    pub decision: EgressDecision,
    /// From the sandbox to the origin (request body, or tunnelled bytes).
    pub bytes_sent: u64,
    /// From the origin to the sandbox.
    pub bytes_received: u64,
}

impl EgressRecord {
    pub fn allowed(&self) -> bool {
        matches!(self.decision, EgressDecision::Allowed { .. })
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[error("egress proxy: cannot listen on {path}: {source}")]
pub struct EgressError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A running proxy. Dropping it stops accepting, aborts open connections and removes the
/// socket file; [`EgressProxy::shutdown`] does the same and waits for it.
pub struct EgressProxy {
    socket_path: PathBuf,
    records: mpsc::Receiver<EgressRecord>,
    dropped: Arc<AtomicU64>,
    open: Arc<OpenConnections>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    policy: EgressPolicy,
    limits: EgressLimits,
    records: mpsc::Sender<EgressRecord>,
    dropped: Arc<AtomicU64>,
    open: Arc<OpenConnections>,
}

/// Connections accepted whose record is not sent yet, and a wake-up when that number changes.
#[derive(Default)]
struct OpenConnections {
    count: AtomicUsize,
    changed: Notify,
}

/// A handle on a proxy's open connections that needs no access to the proxy itself (which its
/// owner may be holding to read records). See [`EgressProxy::activity`].
#[derive(Clone)]
pub struct EgressActivity(Arc<OpenConnections>);

impl EgressActivity {
    /// Connections accepted and not yet ended with their record sent.
    pub fn open(&self) -> usize {
        self.0.count.load(Ordering::SeqCst)
    }

    /// Waits, at most `within`, until every accepted connection has ended and sent its record.
    /// Returns whether none is left. After a sandboxed command exits its bridge is gone, so its
    /// connections end as soon as their origins notice; waiting here lets the caller log them
    /// with the command that made them instead of some time later.
    pub async fn settle(&self, within: Duration) -> bool {
        let wait = async {
            loop {
                // Created before the check: `notify_waiters` wakes every `Notified` future
                // that exists when it is called, polled or not, so no change is missed.
                let changed = self.0.changed.notified();
                if self.open() == 0 {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }
}

impl EgressProxy {
    /// Listens on `socket_path` (which must not exist) with default limits. Call inside a
    /// tokio runtime. The socket is made connectable by any uid (0666): the sandbox's uid must
    /// reach it, so put it in a directory only that attempt can see.
    pub fn start(policy: EgressPolicy, socket_path: &Path) -> Result<EgressProxy, EgressError> {
        EgressProxy::start_with(policy, socket_path, EgressLimits::default())
    }

    pub fn start_with(
        policy: EgressPolicy,
        socket_path: &Path,
        limits: EgressLimits,
    ) -> Result<EgressProxy, EgressError> {
        let error = |source| EgressError { path: socket_path.to_path_buf(), source };
        let listener = UnixListener::bind(socket_path).map_err(error)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket_path, std::fs::Permissions::from_mode(0o666))
            .map_err(error)?;
        let (sender, records) = mpsc::channel(limits.record_buffer.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let open = Arc::new(OpenConnections::default());
        let shared = Arc::new(Shared {
            policy,
            limits,
            records: sender,
            dropped: Arc::clone(&dropped),
            open: Arc::clone(&open),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared, stopped));
        Ok(EgressProxy {
            socket_path: socket_path.to_path_buf(),
            records,
            dropped,
            open,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// One record per finished connection, in the order they finished.
    pub fn records(&mut self) -> &mut mpsc::Receiver<EgressRecord> {
        &mut self.records
    }

    /// Records dropped because nobody read them fast enough.
    pub fn dropped_records(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Its open connections, to wait for them to end (see [`EgressActivity::settle`]).
    pub fn activity(&self) -> EgressActivity {
        EgressActivity(Arc::clone(&self.open))
    }

    /// Stops accepting, ends open connections, removes the socket.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = std::fs::remove_file(&self.socket_path);
        }
    }
}

async fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections.max(1)));
    // Owns every connection task: dropping it (when this loop ends) aborts them.
    let mut connections = JoinSet::new();
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        tokio::select! {
            _ = &mut stopped => return,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    shared.open.count.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(async move {
                        serve(stream, &shared).await;
                        shared.open.count.fetch_sub(1, Ordering::SeqCst);
                        shared.open.changed.notify_waiters();
                        drop(slot);
                    });
                }
                Err(error) => {
                    // EMFILE and the like: wait for a connection to end instead of spinning.
                    tracing::warn!("egress proxy: accept failed: {error}");
                    if connections.join_next().await.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
        }
    }
}

/// Serves one connection and sends its record.
async fn serve(mut client: UnixStream, shared: &Shared) {
    let mut record = EgressRecord {
        host: String::new(),
        port: 0,
        method: String::new(),
        decision: EgressDecision::Refused { status: 400, reason: String::new() },
        bytes_sent: 0,
        bytes_received: 0,
    };
    if let Err((status, reason, failed)) = handle(&mut client, shared, &mut record).await {
        if status != 0 {
            let _ = client.write_all(&http::response(status, &reason)).await;
            let _ = client.shutdown().await;
            linger(&mut client).await;
        }
        record.decision = if failed {
            EgressDecision::Failed { status, reason }
        } else {
            EgressDecision::Refused { status, reason }
        };
    }
    tracing::debug!(?record, "egress");
    if shared.records.try_send(record).is_err() {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// After a refusal, reads and discards what the client is still sending, a little and
/// briefly, before closing: closing a socket with unread input resets it, and a client still
/// writing its request might then never read the refusal (the "lingering close" of HTTP
/// servers). Bounded in bytes and time, and nothing is kept.
async fn linger(client: &mut UnixStream) {
    const MAX_DISCARD: usize = 256 * 1024;
    let mut buffer = [0u8; 8192];
    let mut discarded = 0;
    let drain = async {
        while discarded < MAX_DISCARD {
            match client.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// (status, message, whether it is a failure of an allowed request rather than a refusal).
/// Status 0: nothing to answer (the client went away).
type Refusal = (u16, String, bool);

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    (status, reason.into(), false)
}

fn fail(status: u16, reason: impl Into<String>) -> Refusal {
    (status, reason.into(), true)
}

async fn handle(
    client: &mut UnixStream,
    shared: &Shared,
    record: &mut EgressRecord,
) -> Result<(), Refusal> {
    let limits = &shared.limits;
    let read = http::read_head(client, limits.max_head_bytes);
    let (head, rest) = match tokio::time::timeout(limits.head_timeout, read).await {
        Err(_) => {
            return Err(refuse(408, "errand egress: the request head did not arrive in time"));
        }
        Ok(Err(HeadError::TooLarge)) => return Err(too_large(limits)),
        Ok(Err(HeadError::Closed)) => {
            return Err(refuse(0, "the client closed the connection before a request"));
        }
        Ok(Err(HeadError::Malformed(why))) => {
            return Err(refuse(400, format!("errand egress: {why}")));
        }
        Ok(Ok(read)) => read,
    };
    let head = match http::parse_head(&head) {
        Ok(head) => head,
        Err(HeadError::TooLarge) => return Err(too_large(limits)),
        Err(HeadError::Malformed(why)) => return Err(refuse(400, format!("errand egress: {why}"))),
        Err(HeadError::Closed) => return Err(refuse(400, "errand egress: bad request")),
    };
    record.method = head.method.clone();
    let connect = head.method == "CONNECT";
    let (host, port, path) = if connect {
        let (host, port) = http::parse_authority(&head.target)
            .map_err(|why| refuse(400, format!("errand egress: {why}")))?;
        (host, port, None)
    } else if head.target.starts_with('/') || head.target == "*" {
        return Err(refuse(
            400,
            "errand egress: this is a proxy: send `GET http://host/path` (absolute form) or \
             `CONNECT host:port`",
        ));
    } else {
        let (host, port, path) = http::parse_absolute(&head.target)
            .map_err(|why| refuse(400, format!("errand egress: {why}")))?;
        (host, port, Some(path))
    };
    record.host = host.to_string();
    record.port = port;

    check_policy(&shared.policy, &head, &host, port)?;
    let body = match path {
        Some(_) => {
            http::body_length(&head).map_err(|why| refuse(501, format!("errand egress: {why}")))?
        }
        None => 0,
    };
    let addresses = vet(&shared.policy, limits, &host, port).await?;
    let (mut upstream, address) = connect_any(&addresses, limits, &host, port).await?;
    record.decision = EgressDecision::Allowed { address };

    let counters = Counters::default();
    match path {
        None => {
            client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .map_err(|_| refuse(0, "the client went away"))?;
            if !rest.is_empty() {
                upstream.write_all(&rest).await.map_err(|e| fail(0, e.to_string()))?;
                counters.sent.fetch_add(rest.len() as u64, Ordering::Relaxed);
            }
            let (client_read, client_write) = client.split();
            let (upstream_read, upstream_write) = upstream.split();
            relay(
                client_read,
                upstream_write,
                upstream_read,
                client_write,
                true,
                &counters,
                limits,
            )
            .await;
        }
        Some(path) => {
            let forwarded = http::forwarded_head(&head, &host, port, &path);
            upstream.write_all(&forwarded).await.map_err(|e| fail(0, e.to_string()))?;
            // Only this request's body goes on; anything the client pipelined after it is
            // dropped with the connection, so one connection carries exactly one request.
            let early = rest.len().min(usize::try_from(body).unwrap_or(usize::MAX));
            upstream.write_all(&rest[..early]).await.map_err(|e| fail(0, e.to_string()))?;
            counters.sent.fetch_add(early as u64, Ordering::Relaxed);
            let remaining = body - early as u64;
            let (client_read, client_write) = client.split();
            let (upstream_read, upstream_write) = upstream.split();
            relay(
                client_read.take(remaining),
                upstream_write,
                upstream_read,
                client_write,
                false,
                &counters,
                limits,
            )
            .await;
        }
    }
    record.bytes_sent = counters.sent.load(Ordering::Relaxed);
    record.bytes_received = counters.received.load(Ordering::Relaxed);
    Ok(())
}

fn too_large(limits: &EgressLimits) -> Refusal {
    refuse(
        431,
        format!(
            "errand egress: the request head is larger than {} bytes or has more than {} headers",
            limits.max_head_bytes,
            http::MAX_HEADERS
        ),
    )
}

/// The allow list, then the method policy.
fn check_policy(
    policy: &EgressPolicy,
    head: &RequestHead,
    host: &Host,
    port: u16,
) -> Result<(), Refusal> {
    if policy.allowing(host, port).is_none() {
        // The port first: an address allowed on another port is refused for its port.
        let why = if policy.names_host(host) {
            format!(
                "errand egress: port {port} of {host} is not allowed (entries without a port \
                 allow 80 and 443; write `{host}:{port}` to allow this one)"
            )
        } else if let Host::Ip(_) = host {
            format!(
                "errand egress: {host} is a literal IP address, and not in this environment's \
                 allowed domains (connect by name, or allow the address explicitly)"
            )
        } else {
            format!("errand egress: {host} is not in this environment's allowed domains")
        };
        return Err(refuse(403, why));
    }
    if policy.methods == Methods::ReadOnly {
        if head.method == "CONNECT" {
            return Err(refuse(
                403,
                format!(
                    "errand egress: CONNECT to {host}:{port} is refused: this environment's \
                     network access is read-only, and inside a TLS tunnel the proxy cannot \
                     tell a GET from a POST; use http:// or ask for all methods"
                ),
            ));
        }
        if !policy.methods.allows(&head.method) {
            return Err(refuse(
                405,
                format!(
                    "errand egress: {} is refused: this environment's network access is \
                     read-only (GET, HEAD, OPTIONS)",
                    head.method
                ),
            ));
        }
    }
    Ok(())
}

/// Resolves `host` once and checks every address.
async fn vet(
    policy: &EgressPolicy,
    limits: &EgressLimits,
    host: &Host,
    port: u16,
) -> Result<Vec<SocketAddr>, Refusal> {
    if let Some(mapped) = policy.test_resolution(host) {
        return Ok(vec![mapped]);
    }
    let addresses: Vec<SocketAddr> = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Domain(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), port));
            match tokio::time::timeout(limits.resolve_timeout, lookup).await {
                Err(_) => {
                    return Err(fail(504, format!("errand egress: resolving {host} timed out")));
                }
                Ok(Err(error)) => {
                    return Err(fail(
                        502,
                        format!("errand egress: cannot resolve {host}: {error}"),
                    ));
                }
                Ok(Ok(found)) => found.collect(),
            }
        }
    };
    if addresses.is_empty() {
        return Err(fail(502, format!("errand egress: {host} has no addresses")));
    }
    if !policy.allow_private {
        for address in &addresses {
            let class = classify(address.ip());
            if class != AddressClass::Public {
                return Err(refuse(
                    403,
                    format!(
                        "errand egress: {host} resolves to {}, a {} address; the proxy refuses \
                         private, loopback, link-local and other non-public addresses",
                        address.ip(),
                        class.describe()
                    ),
                ));
            }
        }
    }
    Ok(addresses)
}

/// Connects to the first vetted address that answers.
async fn connect_any(
    addresses: &[SocketAddr],
    limits: &EgressLimits,
    host: &Host,
    port: u16,
) -> Result<(TcpStream, SocketAddr), Refusal> {
    let mut last = String::new();
    for &address in addresses {
        match tokio::time::timeout(limits.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok((stream, address)),
            Ok(Err(error)) => last = format!("{address}: {error}"),
            Err(_) => last = format!("{address}: timed out"),
        }
    }
    Err(fail(502, format!("errand egress: cannot connect to {host}:{port} ({last})")))
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    /// Bumped by every chunk either way; the idle watchdog looks for it to stand still.
    activity: AtomicU64,
}

/// Moves bytes both ways until both directions end or nothing moves for the idle timeout.
/// `half_close` propagates one side's end of stream to the other (tunnels); a forwarded
/// request keeps the origin's write side open, as some servers take a half-close as an abort.
async fn relay(
    client_read: impl AsyncRead + Unpin,
    upstream_write: impl AsyncWrite + Unpin,
    upstream_read: impl AsyncRead + Unpin,
    client_write: impl AsyncWrite + Unpin,
    half_close: bool,
    counters: &Counters,
    limits: &EgressLimits,
) {
    let up = pump(client_read, upstream_write, half_close, &counters.sent, &counters.activity);
    let down = pump(upstream_read, client_write, true, &counters.received, &counters.activity);
    let watchdog = async {
        let mut seen = counters.activity.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(limits.idle_timeout).await;
            let now = counters.activity.load(Ordering::Relaxed);
            if now == seen {
                return;
            }
            seen = now;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = watchdog => tracing::debug!("egress: idle connection closed"),
    }
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    shutdown_at_end: bool,
    count: &AtomicU64,
    activity: &AtomicU64,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
        activity.fetch_add(1, Ordering::Relaxed);
    }
    if shutdown_at_end {
        let _ = to.shutdown().await;
    }
}
