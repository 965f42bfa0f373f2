//! How the service holds up under load (`errand bench service`), measured on the real pieces:
//! the HTTP API ([`crate::api`]) on loopback over a SQLite store, and a [`crate::Worker`] running
//! attempts in real sandboxes.
//!
//! - [`attempts`]: many attempts in flight at once against a model that takes a fixed time per
//!   turn; the worker process's memory per attempt in flight, against the same process idle.
//! - [`fanout`]: one attempt's events streamed to many SSE clients; the delay from an event
//!   being stored to each client reading it, against the same with one client.
//!
//! Both run everything in this process (API, worker, model, clients), so the figures include
//! the model stub's and the clients' share of CPU and memory: an upper bound for the service.
//! The model is `model_stub.rs`, a few dozen lines of Responses SSE, because the scripted model
//! of `errand-testkit` must never ship in the binary; `http.rs` is the minimal HTTP/1.1 client
//! the cases need (the service has no HTTP client dependency of its own).

mod attempts;
mod fanout;
mod http;
mod model_stub;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use errand_protocol::api::{CreateTask, TaskView};
use errand_store::{SqliteStore, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{ApiConfig, ApiLimits, AppState};

pub use attempts::{AttemptsBench, AttemptsOptions, MemorySample, attempts};
pub use fanout::{FanoutBench, FanoutOptions, FanoutRound, fanout};

/// The service as `errand serve` runs it, in a scratch directory: a SQLite store, a user with a
/// token, and the API on a loopback port, with limits high enough for any benchmark.
struct BenchService {
    state: AppState,
    addr: SocketAddr,
    token: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl BenchService {
    async fn start(scratch: &Path) -> Result<BenchService, String> {
        let store = SqliteStore::open(&scratch.join("errand.db"))
            .await
            .map_err(|e| format!("cannot open the benchmark's store: {e}"))?;
        let store: Arc<dyn Store> = Arc::new(store);
        let user = store.create_user("bench").await.map_err(|e| e.to_string())?;
        let token = store.create_token(user.id, "bench").await.map_err(|e| e.to_string())?;
        let limits = ApiLimits {
            tasks_per_hour: 1_000_000,
            attempts_per_user: 1_000_000,
            attempts_total: 1_000_000,
            ..ApiLimits::default()
        };
        let state = AppState::new(store, ApiConfig { limits, ..ApiConfig::default() });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| format!("cannot listen on loopback: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(crate::api::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(BenchService {
            state,
            addr,
            token: token.secret,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// `POST /api/tasks` for `attempts` attempts on `repository`'s HEAD.
    async fn create_task(&self, repository: &Path, attempts: u32) -> Result<TaskView, String> {
        let request = CreateTask {
            repository: repository.to_string_lossy().into_owned(),
            git_ref: None,
            environment: None,
            prompt: "Run `true` a few times, then say you are done.".into(),
            mode: Default::default(),
            attempts,
        };
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        let (status, body) =
            http::request(self.addr, "POST", "/api/tasks", &self.token, Some(&body)).await?;
        if status != 201 {
            return Err(format!(
                "POST /api/tasks answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("POST /api/tasks: {e}"))
    }

    /// Stops accepting, gives open requests a moment, and waits for the server to end.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for BenchService {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A scratch directory under `parent` that the sandbox's unprivileged uid can enter (the
/// repository and the attempts' layers live in it). Removed by the caller.
pub fn scratch_dir(parent: &Path, name: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent.join(format!("errand-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot open up {}: {e}", dir.display()))?;
    Ok(dir)
}

/// This process's resident memory in KiB (`VmRSS` of `/proc/self/status`), threads included;
/// child processes (the sandboxes' bubblewrap and commands) are separate processes and never
/// counted.
pub fn rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/self/status".to_string())
}

/// The soft limit on open files of this process (`/proc/self/limits`), `None` if unlimited or
/// unreadable.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Both cases end to end at tiny sizes, so `errand bench service` cannot rot. They check that
/// each case completes and reports what it measured, never how fast.
#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;

    #[test]
    fn memory_and_limits_are_read_from_proc() {
        assert!(rss_kib().unwrap() > 0);
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    /// Whether this machine can run real sandboxes; under CI it must.
    fn sandbox_available() -> bool {
        // SAFETY: getuid has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        let bwrap = std::process::Command::new("bwrap").arg("--version").output().is_ok();
        if root && bwrap {
            return true;
        }
        let why = if root { "bubblewrap is not installed" } else { "sandboxes need root" };
        assert!(std::env::var_os("CI").is_none(), "CI must run the bench cases, but {why}");
        eprintln!("skipping: {why} (run scripts/install-deps.sh as root)");
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attempts_case_runs_every_attempt_to_success_and_samples_memory() {
        if !sandbox_available() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let scratch = scratch_dir(tmp.path(), "attempts").unwrap();
        // The agent only runs `true`: the apply_patch helper is never called.
        let helper = tmp.path().join("errand-helper");
        std::fs::write(&helper, "#!/bin/sh\nexit 2\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let options = AttemptsOptions {
            scratch,
            helper,
            sandbox_uid: None,
            attempts: 3,
            turns: 3,
            latency: Duration::from_millis(50),
            timeout: Duration::from_secs(60),
        };
        let bench = attempts(&options).await.expect("the attempts case runs");
        assert_eq!(bench.failures, Vec::<String>::new());
        assert_eq!((bench.attempts, bench.succeeded), (3, 3));
        assert_eq!(bench.attempt_durations.len(), 3);
        // Three turns for each of the three attempts and the warm-up, none past the plan.
        assert_eq!((bench.model_requests, bench.model_requests_beyond), (12, 0));
        assert!(bench.peak.in_flight >= 1 && bench.peak.rss_kib > 0, "{:?}", bench.peak);
        assert!(bench.idle_rss_kib > 0 && bench.max_rss_kib >= bench.peak.rss_kib);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fanout_case_delivers_every_event_to_every_client() {
        let tmp = tempfile::tempdir().unwrap();
        let options = FanoutOptions {
            scratch: tmp.path().to_path_buf(),
            clients: 20,
            events: 10,
            interval: Duration::from_millis(5),
            timeout: Duration::from_secs(30),
        };
        let bench = fanout(&options).await.expect("the fanout case runs");
        assert_eq!(bench.one.problems, Vec::<String>::new());
        assert_eq!(bench.many.problems, Vec::<String>::new());
        assert_eq!((bench.one.clients, bench.one.complete_clients), (1, 1));
        assert_eq!((bench.many.clients, bench.many.complete_clients), (20, 20));
        assert_eq!((bench.one.deliveries, bench.many.deliveries), (10, 200));
        assert!(bench.many.delay.max >= bench.many.delay.p50);
    }
}
