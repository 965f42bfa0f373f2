//! The snapshot cache: what an environment's setup script wrote, frozen, keyed by (config
//! hash, base commit), reused by every attempt on that commit until it expires.
//!
//! ```text
//! <data_dir>/snapshots/
//!   <hash>-<commit>-<built, unix ms>/   one finished snapshot (never changed after publishing)
//!     workspace/  home/  usr-local/     upper layers setup wrote (whiteouts and opaque dirs kept)
//!     meta.json                         when it was built, its TTL, the diff base tree
//!     .in-use                           the lease: attempts hold a shared flock(2) on it
//!   .lock-<hash>-<commit>               single flight: the builder holds an exclusive flock
//!   .building-…  .trash-…               being built (renamed into place when complete) / removed
//! ```
//!
//! The build time in the name lets an expired snapshot still in use stay where its attempts
//! mount it from while a fresh one is built beside it; garbage collection removes the old one
//! once its last attempt is gone. Publishing is a `rename(2)` of a complete directory, so a
//! reader sees a whole snapshot or none.
//!
//! Leases: an attempt opens `.in-use` and takes a shared `flock` for its lifetime (the lock
//! belongs to the open file, so it ends when the sandbox is dropped, even on a crash). GC takes
//! it exclusively with `LOCK_NB` and skips a snapshot it cannot lock. A reader that waited for
//! the lock re-checks the directory is still there, since GC removes while holding it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::SandboxError;

const META: &str = "meta.json";
const IN_USE: &str = ".in-use";

/// The three layer directories of a snapshot or of a maintenance run.
pub(crate) const LAYER_DIRS: [&str; 3] = ["workspace", "home", "usr-local"];

/// What is recorded beside a snapshot's layers. Holds no secret: the config hash covers the
/// secrets through a hash of each value only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SnapshotMeta {
    pub config_hash: String,
    pub commit: String,
    /// Unix seconds.
    pub built_at: u64,
    pub ttl_secs: u64,
    /// The git tree of the snapshot's workspace merged over the commit: the diff base.
    pub tree: String,
}

impl SnapshotMeta {
    pub fn expired(&self, ttl: Duration, now: SystemTime) -> bool {
        unix_secs(now) >= self.built_at.saturating_add(ttl.as_secs())
    }
}

/// A shared lock on a snapshot's `.in-use`: while held, GC leaves the snapshot alone.
#[derive(Debug)]
pub struct SnapshotLease {
    _file: File,
}

pub(crate) fn snapshots_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

fn key_prefix(config_hash: &str, commit: &str) -> String {
    format!("{config_hash}-{commit}-")
}

pub(crate) fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |source| SandboxError::Io { context, source }
}

fn flock(file: &File, operation: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// A found, leased, unexpired snapshot.
#[derive(Debug)]
pub(crate) struct Found {
    pub dir: PathBuf,
    pub meta: SnapshotMeta,
    pub lease: SnapshotLease,
}

/// The newest unexpired snapshot of the key, leased (blocking). `None`: build one.
pub(crate) fn find_blocking(
    data_dir: &Path,
    config_hash: &str,
    commit: &str,
    ttl: Duration,
    now: SystemTime,
) -> Result<Option<Found>, SandboxError> {
    let root = snapshots_dir(data_dir);
    let prefix = key_prefix(config_hash, commit);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("cannot list {}", root.display()))(e)),
    };
    let mut candidates: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let stamp: u64 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((stamp, entry.path()))
        })
        .collect();
    candidates.sort_by_key(|candidate| std::cmp::Reverse(candidate.0));
    for (_, dir) in candidates {
        let Ok(meta) = read_meta(&dir) else { continue };
        if meta.expired(ttl, now) {
            continue;
        }
        if let Some(lease) = lease_blocking(&dir, now)? {
            return Ok(Some(Found { dir, meta, lease }));
        }
    }
    Ok(None)
}

pub(crate) fn read_meta(dir: &Path) -> std::io::Result<SnapshotMeta> {
    let text = std::fs::read(dir.join(META))?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}

pub(crate) fn write_meta(dir: &Path, meta: &SnapshotMeta) -> std::io::Result<()> {
    std::fs::write(dir.join(META), serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?)
}

/// Takes the shared lease on `dir` and marks it used at `now`; `None` if GC removed it
/// meanwhile.
pub(crate) fn lease_blocking(
    dir: &Path,
    now: SystemTime,
) -> Result<Option<SnapshotLease>, SandboxError> {
    let path = dir.join(IN_USE);
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("cannot open {}", path.display()))(e)),
    };
    flock(&file, libc::LOCK_SH).map_err(io(format!("cannot lock {}", path.display())))?;
    // GC removes a snapshot while holding the lock exclusively: if we waited for it, the file
    // we hold may no longer be the one at the path.
    let held = file.metadata().map_err(io(format!("cannot stat {}", path.display())))?;
    match std::fs::symlink_metadata(&path) {
        Ok(now_there) if now_there.ino() == held.ino() && now_there.dev() == held.dev() => {}
        _ => return Ok(None),
    }
    // Least recently used is judged by this time (GC).
    let _ = file.set_modified(now);
    Ok(Some(SnapshotLease { _file: file }))
}

/// Creates the lease file of a snapshot being built and leases it (before publishing, so GC
/// can never take a snapshot between its publication and its first use).
pub(crate) fn lease_new_blocking(
    dir: &Path,
    now: SystemTime,
) -> Result<SnapshotLease, SandboxError> {
    let path = dir.join(IN_USE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(format!("cannot create {}", path.display())))?;
    flock(&file, libc::LOCK_SH).map_err(io(format!("cannot lock {}", path.display())))?;
    let _ = file.set_modified(now);
    Ok(SnapshotLease { _file: file })
}

/// The single-flight lock of a key, held (exclusively) while it is looked up again and built.
pub(crate) struct BuildLock {
    _file: File,
}

pub(crate) fn build_lock_blocking(
    data_dir: &Path,
    config_hash: &str,
    commit: &str,
) -> Result<BuildLock, SandboxError> {
    let root = snapshots_dir(data_dir);
    std::fs::create_dir_all(&root).map_err(io(format!("cannot create {}", root.display())))?;
    let path = root.join(format!(".lock-{config_hash}-{commit}"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(format!("cannot create {}", path.display())))?;
    flock(&file, libc::LOCK_EX).map_err(io(format!("cannot lock {}", path.display())))?;
    Ok(BuildLock { _file: file })
}

/// The directory a finished snapshot of the key built at `now` is published as.
pub(crate) fn final_dir(
    data_dir: &Path,
    config_hash: &str,
    commit: &str,
    now: SystemTime,
) -> PathBuf {
    let millis = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    snapshots_dir(data_dir).join(format!("{}{millis}", key_prefix(config_hash, commit)))
}

/// A fresh directory name for something temporary beside the snapshots.
/// A snapshot's short name: its configuration hash and commit, 12 characters each.
pub(crate) fn snapshot_name(config_hash: &str, commit: &str) -> String {
    format!("{}-{}", &config_hash[..12.min(config_hash.len())], &commit[..12.min(commit.len())])
}

pub(crate) fn scratch_name(kind: &str, what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(".{kind}-{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What [`gc_snapshots`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Directory names of the snapshots removed.
    pub removed: Vec<String>,
    /// Snapshots that were due (expired, or over the size bound) but in use.
    pub kept_in_use: Vec<String>,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Removes expired snapshots, then the least recently used ones until the cache holds at most
/// `max_bytes`; never a snapshot an attempt holds a lease on. Also clears what interrupted
/// builds and removals left behind.
pub async fn gc_snapshots(
    data_dir: &Path,
    max_bytes: u64,
    now: SystemTime,
) -> Result<GcReport, SandboxError> {
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || gc_blocking(&data_dir, max_bytes, now))
        .await
        .map_err(|e| SandboxError::Setup(format!("snapshot garbage collection stopped: {e}")))?
}

struct Candidate {
    name: String,
    dir: PathBuf,
    bytes: u64,
    last_used: SystemTime,
    expired: bool,
}

fn gc_blocking(data_dir: &Path, max_bytes: u64, now: SystemTime) -> Result<GcReport, SandboxError> {
    let root = snapshots_dir(data_dir);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(GcReport::default()),
        Err(e) => return Err(io(format!("cannot list {}", root.display()))(e)),
    };
    let mut report = GcReport::default();
    let mut candidates = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else { continue };
        let dir = entry.path();
        if name.starts_with(".trash-") {
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        }
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = read_meta(&dir) else { continue };
        let last_used =
            std::fs::metadata(dir.join(IN_USE)).and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH);
        let bytes = tree_bytes(&dir);
        report.bytes_before += bytes;
        let expired = meta.expired(Duration::from_secs(meta.ttl_secs), now);
        candidates.push(Candidate { name, dir, bytes, last_used, expired });
    }
    let mut total = report.bytes_before;
    // Expired ones first, then the least recently used.
    candidates.sort_by(|a, b| b.expired.cmp(&a.expired).then(a.last_used.cmp(&b.last_used)));
    for candidate in candidates {
        if !candidate.expired && total <= max_bytes {
            continue;
        }
        if remove_unless_in_use(&root, &candidate.dir)? {
            total -= candidate.bytes;
            report.removed.push(candidate.name);
        } else {
            report.kept_in_use.push(candidate.name);
        }
    }
    report.bytes_after = total;
    Ok(report)
}

/// Removes a snapshot if no attempt holds its lease. `false` when one does.
fn remove_unless_in_use(root: &Path, dir: &Path) -> Result<bool, SandboxError> {
    let path = dir.join(IN_USE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(format!("cannot open {}", path.display()))(e)),
    };
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(false),
        Err(e) => return Err(io(format!("cannot lock {}", path.display()))(e)),
    }
    // Out of the way while still locked: a reader waiting for the lock finds the path gone.
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let trash = root.join(scratch_name("trash", &name));
    std::fs::rename(dir, &trash).map_err(io(format!("cannot move {} away", dir.display())))?;
    drop(file);
    std::fs::remove_dir_all(&trash).map_err(io(format!("cannot remove {}", trash.display())))?;
    Ok(true)
}

/// Bytes a directory tree occupies on disk (`lstat` blocks; never follows a link).
pub(crate) fn tree_bytes(root: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        total += meta.blocks() * 512;
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            pending.extend(entries.flatten().map(|e| e.path()));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(built_at: u64, ttl_secs: u64) -> SnapshotMeta {
        SnapshotMeta {
            config_hash: "h".into(),
            commit: "c".into(),
            built_at,
            ttl_secs,
            tree: "t".into(),
        }
    }

    fn publish(data: &Path, hash: &str, built: SystemTime, ttl: u64) -> PathBuf {
        let dir = final_dir(data, hash, "c0ffee", built);
        std::fs::create_dir_all(dir.join("workspace")).unwrap();
        std::fs::write(dir.join("workspace/f"), vec![7u8; 8192]).unwrap();
        write_meta(&dir, &meta(unix_secs(built), ttl)).unwrap();
        drop(lease_new_blocking(&dir, built).unwrap());
        dir
    }

    #[test]
    fn expiry_is_built_at_plus_ttl() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert!(!meta(100, 60).expired(Duration::from_secs(60), at(159)));
        assert!(meta(100, 60).expired(Duration::from_secs(60), at(160)));
    }

    #[test]
    fn the_newest_unexpired_snapshot_of_the_key_is_found_and_leased() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ttl = Duration::from_secs(3600);
        assert!(find_blocking(tmp.path(), "h", "c0ffee", ttl, t0).unwrap().is_none());
        let old = publish(tmp.path(), "h", t0, 3600);
        let new = publish(tmp.path(), "h", t0 + Duration::from_secs(10), 3600);
        publish(tmp.path(), "other", t0 + Duration::from_secs(20), 3600);
        let found = find_blocking(tmp.path(), "h", "c0ffee", ttl, t0 + Duration::from_secs(30));
        assert_eq!(found.unwrap().unwrap().dir, new);
        let later = t0 + Duration::from_secs(3605);
        let found = find_blocking(tmp.path(), "h", "c0ffee", ttl, later).unwrap().unwrap();
        assert_eq!(found.dir, new, "the older one expired");
        drop(found);
        assert!(old.exists());
    }

    #[test]
    fn gc_removes_expired_and_least_recently_used_but_never_a_leased_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let expired = publish(tmp.path(), "a", t0, 10);
        let expired_in_use = publish(tmp.path(), "b", t0, 10);
        let lru = publish(tmp.path(), "c", t0 + Duration::from_secs(1), 3600);
        let recent = publish(tmp.path(), "d", t0 + Duration::from_secs(2), 3600);
        let lease = lease_blocking(&expired_in_use, t0).unwrap().unwrap();
        // Mark `recent` as used last.
        drop(lease_blocking(&recent, t0 + Duration::from_secs(50)).unwrap());
        let one = tree_bytes(&recent);
        let report = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(gc_snapshots(tmp.path(), one * 5 / 2, t0 + Duration::from_secs(60)))
            .unwrap();
        assert!(!expired.exists() && !lru.exists());
        assert!(expired_in_use.exists() && recent.exists());
        assert_eq!(report.removed.len(), 2, "{report:?}");
        assert_eq!(report.kept_in_use.len(), 1, "{report:?}");
        drop(lease);
        let report = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(gc_snapshots(tmp.path(), u64::MAX, t0 + Duration::from_secs(60)))
            .unwrap();
        assert_eq!(report.removed.len(), 1);
        assert!(!expired_in_use.exists());
    }
}
