//! Preparing an environment for an attempt (design, data flow step 2): find or build the
//! snapshot for (configuration, commit), or, on a cache hit, run the maintenance script over it.
//!
//! - miss: under the key's single-flight lock, look again (another attempt may have built it
//!   while we waited), else run the setup script in a sandbox whose upper layers are the new
//!   snapshot's directories, over the checkout, an empty home and the host's `/usr/local`,
//!   with the host's network and the secrets; publish by renaming the finished directory.
//! - hit (younger than the TTL): lease it; run the maintenance script, if any, in a layer of
//!   the attempt's own over the snapshot (so the snapshot itself never changes after it is
//!   published, and concurrent attempts never see each other's maintenance); the attempt's
//!   sandbox then stacks on both and removes that layer on `destroy`.
//!
//! Both scripts run as `bash -e -c <script>` in `/workspace` as uid 1000 with capabilities
//! dropped, the seccomp filter and the attempt's limits: the agent phase's sandbox, plus
//! network and secrets. Their output reaches the caller redacted (`redact.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use errand_git::Repo;

use crate::environment::{EnvironmentSpec, InvalidEnvironment};
use crate::exec::Phase;
use crate::layer::{LAYER_WORK, read_upper_blocking};
use crate::local::{LayerPlan, SandboxPlan, check_host};
use crate::redact::Redactor;
use crate::snapshot::{self, LAYER_DIRS, SnapshotLease, SnapshotMeta};
use crate::{ExecRequest, Limits, LocalSandbox, LocalSandboxConfig, Sandbox, SandboxError};

/// Lines of a failed script's output kept for the error.
const TAIL_LINES: usize = 40;
/// Bytes of output kept to find those lines in.
const TAIL_BYTES: usize = 16 * 1024;

/// Which script ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptPhase {
    Setup,
    Maintenance,
}

impl ScriptPhase {
    pub fn name(self) -> &'static str {
        match self {
            ScriptPhase::Setup => "setup",
            ScriptPhase::Maintenance => "maintenance",
        }
    }
}

/// What preparing an environment reports as it goes. Output is already redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupEvent<'a> {
    /// A script starts; `snapshot` names the snapshot it builds or runs over.
    Started {
        phase: ScriptPhase,
        snapshot: &'a str,
    },
    Output {
        phase: ScriptPhase,
        bytes: &'a [u8],
    },
    Finished {
        phase: ScriptPhase,
        exit_code: Option<i32>,
        duration: Duration,
    },
}

/// A setup or maintenance script did not succeed. Nothing was cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} script {} after {:.1} s; its last lines:\n{tail}",
    phase.name(),
    match (exit_code, timed_out) {
        (_, true) => "timed out".to_string(),
        (Some(code), _) => format!("exited {code}"),
        (None, _) => "was killed".to_string(),
    },
    duration.as_secs_f64()
)]
pub struct SetupFailed {
    pub phase: ScriptPhase,
    /// `None` when killed (by a signal, a limit or the timeout).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
    /// The last lines of its output (at most 40), redacted.
    pub tail: String,
}

/// Why an environment could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Invalid(#[from] InvalidEnvironment),
    #[error(transparent)]
    SetupFailed(#[from] SetupFailed),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// A leased snapshot, ready for an attempt's sandbox ([`LocalSandbox::create_on_snapshot`]).
/// Dropping it releases the lease; a maintenance layer it carries is then left for
/// [`SnapshotRef::release`] to remove (or the next GC of the data directory's `layers/`).
#[derive(Debug)]
pub struct SnapshotRef {
    dir: PathBuf,
    name: String,
    checkout: PathBuf,
    commit: String,
    tree: String,
    maintenance: Option<PathBuf>,
    env: Vec<(String, String)>,
    lease: SnapshotLease,
    reused: bool,
}

/// A [`SnapshotRef`] taken apart for the sandbox.
pub(crate) struct SnapshotParts {
    pub checkout: PathBuf,
    pub commit: String,
    pub tree: String,
    /// Layer directories, top first: the maintenance layer (if any), the snapshot.
    pub layers: Vec<PathBuf>,
    pub maintenance: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub lease: SnapshotLease,
}

impl SnapshotRef {
    /// The snapshot's short name (config hash and commit, 12 characters each).
    pub fn id(&self) -> &str {
        &self.name
    }
    /// Its directory under `<data_dir>/snapshots/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Whether it was built before this preparation (a cache hit).
    pub fn reused(&self) -> bool {
        self.reused
    }
    /// Whether a maintenance script ran over it for this attempt.
    pub fn maintenance_ran(&self) -> bool {
        self.maintenance.is_some()
    }
    /// Gives it up without creating a sandbox: removes the maintenance layer, ends the lease.
    pub async fn release(self) {
        if let Some(dir) = self.maintenance {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
    }

    pub(crate) fn into_parts(self) -> SnapshotParts {
        let mut layers: Vec<PathBuf> = self.maintenance.iter().cloned().collect();
        layers.push(self.dir);
        SnapshotParts {
            checkout: self.checkout,
            commit: self.commit,
            tree: self.tree,
            layers,
            maintenance: self.maintenance,
            env: self.env,
            lease: self.lease,
        }
    }
}

/// How to prepare: the limits setup runs under, and the clock (tests move it).
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub limits: Limits,
    pub now: SystemTime,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions { limits: Limits::default(), now: SystemTime::now() }
    }
}

impl LocalSandbox {
    /// Finds or builds the snapshot of `spec` at `commit` of `repo` (see the module docs).
    /// `Ok(None)`: ask mode, or nothing to set up; create the sandbox with
    /// [`LocalSandbox::create_limited`] as without an environment.
    pub async fn prepare_environment(
        config: &LocalSandboxConfig,
        repo: &Path,
        commit: &str,
        spec: &EnvironmentSpec,
        options: &PrepareOptions,
        log: &mut (dyn FnMut(SetupEvent<'_>) + Send),
    ) -> Result<Option<SnapshotRef>, PrepareError> {
        spec.validate()?;
        if !spec.needs_snapshot() {
            return Ok(None);
        }
        if spec.base_image != "host" {
            return Err(SandboxError::Setup(format!(
                "base image `{}` is not available to the local sandbox (it has `host`)",
                spec.base_image
            ))
            .into());
        }
        let host = check_host(config).await?;
        let cached = config.data_dir.join("checkouts").join(commit);
        let (commit, checkout) = if is_object_id(commit)
            && tokio::fs::try_exists(&cached).await.unwrap_or(false)
        {
            // A full id with its checkout in place: no git process on the cache-hit path.
            (commit.to_string(), cached)
        } else {
            let repo =
                Repo::discover(repo).await.map_err(|e| SandboxError::Setup(e.to_string()))?;
            let commit = repo
                .resolve_commit(commit)
                .await
                .map_err(|e| SandboxError::Setup(e.to_string()))?;
            let checkout =
                crate::lower::prepare(&config.data_dir, &repo, &commit, config.sandbox_uid).await?;
            (commit, checkout)
        };
        let hash = spec.config_hash();
        let name = format!("{}-{}", &hash[..12], &commit[..12.min(commit.len())]);
        let env: Vec<(String, String)> =
            spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let data_dir = config.data_dir.clone();
        let (ttl, now) = (spec.snapshot_ttl, options.now);

        let lookup = {
            let (data_dir, hash, commit) = (data_dir.clone(), hash.clone(), commit.clone());
            move || snapshot::find_blocking(&data_dir, &hash, &commit, ttl, now)
        };
        let mut found = blocking(lookup.clone()).await?;
        if found.is_none() {
            let lock = {
                let (data_dir, hash, commit) = (data_dir.clone(), hash.clone(), commit.clone());
                blocking(move || snapshot::build_lock_blocking(&data_dir, &hash, &commit)).await?
            };
            // Another attempt may have built it while we waited for the lock.
            found = blocking(lookup).await?;
            if found.is_none() {
                let build =
                    Build { config, host: &host, spec, checkout: &checkout, commit: &commit };
                let built = build.run(&hash, &name, options, log).await?;
                drop(lock);
                return Ok(Some(SnapshotRef {
                    dir: built.dir,
                    name,
                    checkout,
                    commit,
                    tree: built.meta.tree,
                    maintenance: None,
                    env,
                    lease: built.lease,
                    reused: false,
                }));
            }
        }
        let Some(found) = found else {
            return Err(
                SandboxError::Setup("the snapshot vanished while it was leased".into()).into()
            );
        };
        let mut snapshot = SnapshotRef {
            dir: found.dir,
            name,
            checkout,
            commit,
            tree: found.meta.tree,
            maintenance: None,
            env,
            lease: found.lease,
            reused: true,
        };
        if let Some(script) = &spec.maintenance_script {
            let build = Build {
                config,
                host: &host,
                spec,
                checkout: &snapshot.checkout,
                commit: &snapshot.commit,
            };
            let (layer, tree) = build
                .maintain(script, &snapshot.dir, &snapshot.tree, &snapshot.name, options, log)
                .await?;
            snapshot.maintenance = Some(layer);
            snapshot.tree = tree;
        }
        Ok(Some(snapshot))
    }
}

/// A full SHA-1 or SHA-256 object id (lower-case hex), as git prints them.
fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SandboxError> + Send + 'static,
) -> Result<T, SandboxError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SandboxError::Setup(format!("preparing the environment stopped: {e}")))?
}

struct Build<'a> {
    config: &'a LocalSandboxConfig,
    host: &'a crate::local::HostFacts,
    spec: &'a EnvironmentSpec,
    checkout: &'a Path,
    commit: &'a str,
}

struct Built {
    dir: PathBuf,
    meta: SnapshotMeta,
    lease: SnapshotLease,
}

impl Build<'_> {
    /// Runs setup into a new snapshot directory and publishes it (the caller holds the lock).
    async fn run(
        &self,
        hash: &str,
        name: &str,
        options: &PrepareOptions,
        log: &mut (dyn FnMut(SetupEvent<'_>) + Send),
    ) -> Result<Built, PrepareError> {
        let root = snapshot::snapshots_dir(&self.config.data_dir);
        let building = root.join(snapshot::scratch_name("building", name));
        let uid = self.config.sandbox_uid;
        let layer = building.clone();
        blocking(move || create_layer_blocking(&layer, uid, true)).await?;
        let result = self.build_in(&building, hash, name, options, log).await;
        if result.is_err() {
            let leftover = building.clone();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(leftover)).await;
        }
        result
    }

    async fn build_in(
        &self,
        building: &Path,
        hash: &str,
        name: &str,
        options: &PrepareOptions,
        log: &mut (dyn FnMut(SetupEvent<'_>) + Send),
    ) -> Result<Built, PrepareError> {
        if let Some(script) = &self.spec.setup_script {
            let layers = LayerPlan::Into { layer: building.to_path_buf(), below: Vec::new() };
            self.run_script(ScriptPhase::Setup, script, layers, name, options, log).await?;
        }
        let changes = finish_layer(building).await?;
        let tree = errand_git::tree_with_changes(self.checkout, self.commit, &changes)
            .await
            .map_err(|e| SandboxError::Setup(format!("cannot record the snapshot's tree: {e}")))?;
        let meta = SnapshotMeta {
            config_hash: hash.to_string(),
            commit: self.commit.to_string(),
            built_at: snapshot::unix_secs(options.now),
            ttl_secs: self.spec.snapshot_ttl.as_secs(),
            tree,
        };
        let dir = snapshot::final_dir(&self.config.data_dir, hash, self.commit, options.now);
        let (from, to, record, now) =
            (building.to_path_buf(), dir.clone(), meta.clone(), options.now);
        let lease = blocking(move || {
            snapshot::write_meta(&from, &record).map_err(|source| SandboxError::Io {
                context: format!("cannot write {}", from.display()),
                source,
            })?;
            let lease = snapshot::lease_new_blocking(&from, now)?;
            std::fs::rename(&from, &to).map_err(|source| SandboxError::Io {
                context: format!("cannot publish the snapshot at {}", to.display()),
                source,
            })?;
            Ok(lease)
        })
        .await?;
        Ok(Built { dir, meta, lease })
    }

    /// Runs maintenance in a new layer over the snapshot; returns the layer and the diff base
    /// tree with its workspace changes.
    async fn maintain(
        &self,
        script: &str,
        snapshot_dir: &Path,
        snapshot_tree: &str,
        name: &str,
        options: &PrepareOptions,
        log: &mut (dyn FnMut(SetupEvent<'_>) + Send),
    ) -> Result<(PathBuf, String), PrepareError> {
        let layer =
            self.config.data_dir.join("layers").join(snapshot::scratch_name("maintenance", name));
        let uid = self.config.sandbox_uid;
        let create = layer.clone();
        blocking(move || create_layer_blocking(&create, uid, false)).await?;
        let result = async {
            let plan =
                LayerPlan::Into { layer: layer.clone(), below: vec![snapshot_dir.to_path_buf()] };
            self.run_script(ScriptPhase::Maintenance, script, plan, name, options, log).await?;
            let changes = finish_layer(&layer).await?;
            let tree = errand_git::tree_with_changes(self.checkout, snapshot_tree, &changes)
                .await
                .map_err(|e| {
                    SandboxError::Setup(format!("cannot record maintenance's tree: {e}"))
                })?;
            Ok::<_, PrepareError>(tree)
        }
        .await;
        match result {
            Ok(tree) => Ok((layer, tree)),
            Err(error) => {
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(layer)).await;
                Err(error)
            }
        }
    }

    /// One script in a sandbox of the setup phase, its output redacted into `log`.
    async fn run_script(
        &self,
        phase: ScriptPhase,
        script: &str,
        layers: LayerPlan,
        name: &str,
        options: &PrepareOptions,
        log: &mut (dyn FnMut(SetupEvent<'_>) + Send),
    ) -> Result<(), PrepareError> {
        let secrets: Vec<(String, String)> =
            self.spec.secrets.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let plan = SandboxPlan {
            checkout: self.checkout.to_path_buf(),
            base: self.commit.to_string(),
            diff_base: self.commit.to_string(),
            layers,
            phase: Phase::Setup { secrets },
            env: self.spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            lease: None,
            owned_dirs: Vec::new(),
        };
        let run_name = snapshot::scratch_name(phase.name(), name);
        let sandbox = LocalSandbox::create_planned(
            self.config,
            self.host.clone(),
            plan,
            run_name.trim_start_matches('.'),
            &options.limits,
        )
        .await?;
        log(SetupEvent::Started { phase, snapshot: name });
        let request = ExecRequest {
            command: ["bash", "-e", "-c", script, phase.name()].map(String::from).to_vec(),
            workdir: String::new(),
            timeout: self.spec.setup_timeout,
            env: Vec::new(),
            stdin: None,
        };
        let mut redactor = Redactor::new(&self.spec.secrets);
        let mut tail = Vec::new();
        let started = Instant::now();
        let outcome = {
            let mut emit = |bytes: &[u8]| {
                if bytes.is_empty() {
                    return;
                }
                log(SetupEvent::Output { phase, bytes });
                tail.extend_from_slice(bytes);
                if tail.len() > 2 * TAIL_BYTES {
                    tail.drain(..tail.len() - TAIL_BYTES);
                }
            };
            let outcome = sandbox.exec(request, &mut |chunk| emit(&redactor.push(chunk))).await;
            emit(&redactor.finish());
            outcome
        };
        let destroyed = sandbox.destroy().await;
        let outcome = outcome?;
        destroyed?;
        let duration = started.elapsed();
        log(SetupEvent::Finished { phase, exit_code: outcome.exit_code, duration });
        if outcome.success() {
            return Ok(());
        }
        Err(SetupFailed {
            phase,
            exit_code: outcome.exit_code,
            timed_out: outcome.timed_out,
            duration,
            tail: last_lines(&tail, TAIL_LINES),
        }
        .into())
    }
}

/// The last `count` lines of `bytes`, as text.
fn last_lines(bytes: &[u8], count: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim_end_matches('\n').lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// Creates a layer directory: `workspace/` and `home/` the agent's, `usr-local/` root's (with,
/// for a snapshot, the host's /usr/local directories recreated as the agent's, so setup can
/// install into them), and the overlay work dirs.
pub(crate) fn create_layer_blocking(
    layer: &Path,
    uid: u32,
    usr_local_skeleton: bool,
) -> Result<(), SandboxError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let run = || -> std::io::Result<()> {
        if let Some(parent) = layer.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::DirBuilder::new().mode(0o755).create(layer)?;
        std::fs::DirBuilder::new().mode(0o700).create(layer.join(LAYER_WORK))?;
        for (name, agents, mode) in
            [("workspace", true, 0o755), ("home", true, 0o700), ("usr-local", false, 0o755)]
        {
            let dir = layer.join(name);
            std::fs::DirBuilder::new().mode(mode).create(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
            if agents {
                std::os::unix::fs::lchown(&dir, Some(uid), Some(uid))?;
            }
            std::fs::DirBuilder::new().mode(0o700).create(layer.join(LAYER_WORK).join(name))?;
        }
        if usr_local_skeleton {
            copy_dir_skeleton(
                Path::new(crate::layer::HOST_USR_LOCAL),
                &layer.join("usr-local"),
                uid,
            )?;
        }
        Ok(())
    };
    run().map_err(|source| SandboxError::Io {
        context: format!("cannot create the layer {}", layer.display()),
        source,
    })
}

/// Recreates the directories below `from` (not `from` itself, not files, no symlinks) under
/// `to`, owned by `uid`: in the overlay they take the place of the host's, so the sandbox user
/// may write there while still seeing the host's files.
fn copy_dir_skeleton(from: &Path, to: &Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(from.join(&relative)) else { continue };
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else { continue };
            if !file_type.is_dir() {
                continue;
            }
            let path = relative.join(entry.file_name());
            let dest = to.join(&path);
            std::fs::DirBuilder::new().mode(0o755).create(&dest)?;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))?;
            std::os::unix::fs::lchown(&dest, Some(uid), Some(uid))?;
            pending.push(path);
        }
    }
    Ok(())
}

/// Removes a written layer's work dirs and lists its workspace's changes.
async fn finish_layer(layer: &Path) -> Result<Vec<errand_git::PathChange>, SandboxError> {
    let layer = layer.to_path_buf();
    blocking(move || {
        let work = layer.join(LAYER_WORK);
        std::fs::remove_dir_all(&work).map_err(|source| SandboxError::Io {
            context: format!("cannot remove {}", work.display()),
            source,
        })?;
        debug_assert_eq!(LAYER_DIRS[0], "workspace");
        read_upper_blocking(&layer.join(LAYER_DIRS[0]))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_the_last_lines() {
        let text: String = (1..=50).map(|n| format!("line {n}\n")).collect();
        let tail = last_lines(text.as_bytes(), 40);
        assert!(tail.starts_with("line 11\n"));
        assert!(tail.ends_with("line 50"));
        assert_eq!(last_lines(b"one", 40), "one");
    }

    #[test]
    fn a_failure_says_what_happened() {
        let failed = SetupFailed {
            phase: ScriptPhase::Setup,
            exit_code: Some(2),
            timed_out: false,
            duration: Duration::from_millis(41_000),
            tail: "npm ERR! missing".into(),
        };
        assert_eq!(
            failed.to_string(),
            "setup script exited 2 after 41.0 s; its last lines:\nnpm ERR! missing"
        );
    }
}
