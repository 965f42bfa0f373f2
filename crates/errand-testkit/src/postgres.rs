//! A throwaway PostgreSQL server for the tests: `initdb` into a temp dir, `postgres` on a free
//! loopback port with its socket in that dir, as `nobody` when the tests run as root (PostgreSQL
//! refuses to run as root). One server per test process; each test gets its own database.
//!
//! No orphans: the server is spawned from a thread that lives as long as the process, with
//! PR_SET_PDEATHSIG, so it dies with the test process however that ends; on a normal exit an
//! `atexit` hook stops it (immediate shutdown), reaps it and removes its directory.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct PgServer {
    pub port: u16,
}

struct Running {
    pid: libc::pid_t,
    dir: PathBuf,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// The process's server, started on first use; `Err` says why there is none.
pub fn server() -> Result<&'static PgServer, String> {
    SERVER.get_or_init(start).as_ref().map_err(Clone::clone)
}

fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // Debian's `postgresql` package keeps the server binaries off PATH.
    if let Ok(versions) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = versions.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// uid and gid to run PostgreSQL as: `nobody` when we are root, ourselves otherwise.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: getuid has no preconditions; getpwnam returns NULL or a pointer into static
    // storage that we read before any other call could overwrite it.
    unsafe {
        if libc::getuid() != 0 {
            return None;
        }
        let name = CString::new("nobody").expect("no NUL in a literal");
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn command(bin: &Path, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd.env_remove("PGDATA").env("LC_ALL", "C");
    cmd
}

/// Removes the directories of test processes that were killed before their `atexit` ran (their
/// servers died with them: see the module comment).
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("errand-store-pg-") {
            continue;
        }
        let owner = std::fs::read_to_string(entry.path().join("owner.pid")).unwrap_or_default();
        let Ok(pid) = owner.trim().parse::<libc::pid_t>() else { continue };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn start() -> Result<PgServer, String> {
    let (Some(initdb), Some(postgres)) = (find_bin("initdb"), find_bin("postgres")) else {
        return Err("initdb/postgres not found on PATH or in /usr/lib/postgresql/*/bin \
                    (install the `postgresql` package; scripts/install-deps.sh does)"
            .into());
    };
    remove_stale_dirs();
    let user = run_as();
    let dir = tempfile::Builder::new()
        .prefix("errand-store-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    std::fs::write(dir.join("owner.pid"), std::process::id().to_string())
        .map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let data = dir.join("data");
    let out = command(&initdb, user)
        .args(["-D"])
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", initdb.display()))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    // A port can be taken between probing and binding: try a few.
    let mut last_error = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        match spawn_server(&postgres, user, &dir, &data, port) {
            Ok(()) => return Ok(PgServer { port }),
            Err(e) => last_error = e,
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Err(last_error)
}

fn spawn_server(
    postgres: &Path,
    user: Option<(u32, u32)>,
    dir: &Path,
    data: &Path,
    port: u16,
) -> Result<(), String> {
    let mut cmd = command(postgres, user);
    cmd.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
        .arg(dir)
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .args(["-c", "shared_buffers=16MB", "-c", "max_connections=200"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?);
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec, after
    // the uid change (which would clear the death signal).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The death signal fires when the spawning *thread* exits, so spawn from one that never
    // does (it parks until the process ends).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.spawn().map(|child| child.id()).map_err(|e| e.to_string()));
        loop {
            std::thread::park();
        }
    });
    let pid = rx.recv().map_err(|e| e.to_string())?? as libc::pid_t;
    *RUNNING.lock().unwrap() = Some(Running { pid, dir: dir.to_path_buf() });
    // SAFETY: registering a plain extern "C" fn.
    unsafe {
        libc::atexit(stop_at_exit);
    }
    // postmaster.pid's 8th line becomes "ready" once connections are accepted.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
        if pid_file.lines().nth(7).is_some_and(|l| l.trim() == "ready") {
            return Ok(());
        }
        let mut status = 0;
        // SAFETY: pid is our child; WNOHANG never blocks.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            *RUNNING.lock().unwrap() = None;
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("postgres exited at start: {log}"));
        }
        if Instant::now() > deadline {
            return Err("postgres did not become ready within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

extern "C" fn stop_at_exit() {
    let Ok(mut running) = RUNNING.lock() else { return };
    if let Some(Running { pid, dir }) = running.take() {
        // SAFETY: pid is our child; SIGQUIT is PostgreSQL's immediate shutdown, which also
        // ends its backends; waitpid reaps it so nothing outlives the test process.
        unsafe {
            libc::kill(pid, libc::SIGQUIT);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A fresh, empty database on the process's server; returns its URL. Created with the server's
/// own `createdb`, so the testkit needs no database driver.
pub async fn fresh_database(server: &PgServer) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("t_{}_{n}", std::process::id());
    let createdb = find_bin("createdb").expect("createdb next to initdb");
    let port = server.port.to_string();
    let out = tokio::process::Command::new(createdb)
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", &name])
        .output()
        .await
        .expect("run createdb");
    assert!(out.status.success(), "createdb {name}: {}", String::from_utf8_lossy(&out.stderr));
    format!("postgres://postgres@127.0.0.1:{port}/{name}")
}

/// A database for a test: `Some(url)` on the process's server, `None` (after saying why) when
/// this machine has no PostgreSQL; under CI a missing PostgreSQL fails the test instead.
pub async fn database_or_skip() -> Option<String> {
    match server() {
        Ok(server) => Some(fresh_database(server).await),
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("PostgreSQL is required under CI: {reason}")
        }
        Err(reason) => {
            println!("skipped: no PostgreSQL for this test: {reason}");
            None
        }
    }
}
