//! The local backend: bubblewrap + overlayfs on this machine, one overlay upper layer per attempt.

use std::path::{Path, PathBuf};
use std::time::Duration;

use errand_git::Repo;
use tokio::sync::RwLock;

use crate::cgroup::AttemptCgroup;
use crate::egress::{AttemptEgress, EgressPolicy};
use crate::exec::{self, HELPER, Launch, Phase, STAGE, WORKSPACE};
use crate::image::{generated_etc, host_image_args};
use crate::layer::{AttemptLayout, Layers, read_upper_blocking};
use crate::limits::Rlimits;
use crate::paths::{resolve_workdir, resolve_workspace_path};
use crate::setup::SnapshotRef;
use crate::snapshot::SnapshotLease;
use crate::{ExecOutcome, ExecRequest, Limits, PatchOutcome, Sandbox, SandboxError, WorkspaceDiff};

/// Host uid the agent's processes run as (uid 1000 inside the sandbox).
pub const DEFAULT_SANDBOX_UID: u32 = 61000;
/// Wall clock for the sandbox's own file reads and patch applications.
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the local backend keeps its files, and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSandboxConfig {
    /// Holds `checkouts/` (lower layers, shared) and `attempts/` (one upper layer each).
    pub data_dir: PathBuf,
    /// The `errand` binary, mounted read-only at `/opt/errand/errand` for `apply-patch`.
    pub helper: PathBuf,
    /// bubblewrap; a bare name is looked up on PATH.
    pub bwrap: PathBuf,
    /// Unprivileged host uid (and gid) that owns the agent's files and runs bwrap.
    pub sandbox_uid: u32,
}

impl LocalSandboxConfig {
    /// The defaults: `bwrap` from PATH, uid [`DEFAULT_SANDBOX_UID`].
    pub fn new(data_dir: impl Into<PathBuf>, helper: impl Into<PathBuf>) -> Self {
        LocalSandboxConfig {
            data_dir: data_dir.into(),
            helper: helper.into(),
            bwrap: PathBuf::from("bwrap"),
            sandbox_uid: DEFAULT_SANDBOX_UID,
        }
    }
}

/// One attempt's sandbox. Dropping it leaves its directory; call [`LocalSandbox::destroy`].
#[derive(Debug)]
pub struct LocalSandbox {
    layout: AttemptLayout,
    /// The checkout of the base commit: the bottom workspace layer, and the git repository
    /// whose object database the diff uses.
    lower: PathBuf,
    base: String,
    /// What the diff compares against: the base commit, or the tree of a snapshot's (and a
    /// maintenance run's) workspace layers merged over it.
    diff_base: String,
    layers: Layers,
    phase: Phase,
    /// The environment's plain variables, given to every command.
    env: Vec<(String, String)>,
    /// Held while the sandbox exists, so garbage collection leaves its snapshot alone.
    lease: Option<SnapshotLease>,
    /// Directories removed with the sandbox (a maintenance layer it stands on).
    owned_dirs: Vec<PathBuf>,
    bwrap: PathBuf,
    helper: PathBuf,
    uid: u32,
    image: Vec<std::ffi::OsString>,
    isolation: Vec<String>,
    /// `None` when no limit uses a cgroup; always removed by `destroy` (or, failing that, drop).
    cgroup: Option<AttemptCgroup>,
    rlimits: Rlimits,
    /// Commands share the layer; a diff needs it to hold still (the write side).
    pub(crate) layer_use: RwLock<()>,
    /// The agent phase's way out, when the environment allows domains
    /// ([`LocalSandbox::start_egress`]); `None`: no network at all.
    egress: Option<AttemptEgress>,
}

impl LocalSandbox {
    /// Prepares (or reuses) the lower checkout of `repo` at `commit` and creates the attempt's
    /// layer. `commit` may be anything git resolves to a commit; `attempt` names the layer's
    /// directory and must be new. The attempt gets the default [`Limits`].
    pub async fn create(
        config: &LocalSandboxConfig,
        repo: &Path,
        commit: &str,
        attempt: &str,
    ) -> Result<LocalSandbox, SandboxError> {
        LocalSandbox::create_limited(config, repo, commit, attempt, &Limits::default()).await
    }

    /// [`LocalSandbox::create`] with the attempt's own limits (an environment's configuration).
    pub async fn create_limited(
        config: &LocalSandboxConfig,
        repo: &Path,
        commit: &str,
        attempt: &str,
        limits: &Limits,
    ) -> Result<LocalSandbox, SandboxError> {
        let host = check_host(config).await?;
        let repo = Repo::discover(repo).await.map_err(|e| SandboxError::Setup(e.to_string()))?;
        let base =
            repo.resolve_commit(commit).await.map_err(|e| SandboxError::Setup(e.to_string()))?;
        let lower =
            crate::lower::prepare(&config.data_dir, &repo, &base, config.sandbox_uid).await?;
        LocalSandbox::create_on_lower(config, host, lower, base, attempt, limits).await
    }

    /// An attempt over a prepared environment's snapshot (see
    /// [`crate::prepare_environment`]): its layers stack on the snapshot's (and on the
    /// maintenance run's, which the sandbox now owns and removes on `destroy`), it gets the
    /// environment's plain variables, no secrets and no network, and it holds the snapshot's
    /// lease until it is destroyed.
    pub async fn create_on_snapshot(
        config: &LocalSandboxConfig,
        snapshot: SnapshotRef,
        attempt: &str,
        limits: &Limits,
    ) -> Result<LocalSandbox, SandboxError> {
        let host = check_host(config).await?;
        let parts = snapshot.into_parts();
        let plan = SandboxPlan {
            checkout: parts.checkout,
            base: parts.commit,
            diff_base: parts.tree,
            layers: LayerPlan::Over(parts.layers),
            phase: Phase::Agent,
            env: parts.env,
            lease: Some(parts.lease),
            owned_dirs: parts.maintenance.into_iter().collect(),
        };
        LocalSandbox::create_planned(config, host, plan, attempt, limits).await
    }

    /// Creates an attempt's layer over an already prepared lower checkout.
    pub(crate) async fn create_on_lower(
        config: &LocalSandboxConfig,
        host: HostFacts,
        lower: PathBuf,
        base: String,
        attempt: &str,
        limits: &Limits,
    ) -> Result<LocalSandbox, SandboxError> {
        let plan = SandboxPlan {
            checkout: lower,
            diff_base: base.clone(),
            base,
            layers: LayerPlan::Plain,
            phase: Phase::Agent,
            env: Vec::new(),
            lease: None,
            owned_dirs: Vec::new(),
        };
        LocalSandbox::create_planned(config, host, plan, attempt, limits).await
    }

    /// Creates a sandbox's directory, cgroups and layers as `plan` says.
    pub(crate) async fn create_planned(
        config: &LocalSandboxConfig,
        host: HostFacts,
        plan: SandboxPlan,
        attempt: &str,
        limits: &Limits,
    ) -> Result<LocalSandbox, SandboxError> {
        let layout = AttemptLayout::new(&config.data_dir, attempt)?;
        let blocking_layout = layout.clone();
        let uid = config.sandbox_uid;
        let (attempt, limits) = (attempt.to_string(), limits.clone());
        let (image, enforcement) = tokio::task::spawn_blocking(move || {
            let image = (|| -> std::io::Result<_> {
                blocking_layout.create_blocking(uid)?;
                for (name, contents) in generated_etc() {
                    std::fs::write(blocking_layout.etc().join(name), contents)?;
                }
                // bwrap sees the attempt's generated files under the stage (see exec.rs).
                Ok(host_image_args(&Path::new(STAGE).join("etc")))
            })()
            .map_err(|source| SandboxError::Io {
                context: format!(
                    "cannot create the attempt directory {}",
                    blocking_layout.root().display()
                ),
                source,
            })?;
            match crate::cgroup::enforce(&limits, &attempt) {
                Ok(enforcement) => Ok((image, enforcement)),
                Err(error) => {
                    // The attempt never existed: leave no directory to trip over a retry.
                    let _ = std::fs::remove_dir_all(blocking_layout.root());
                    Err(error)
                }
            }
        })
        .await
        .map_err(|e| SandboxError::Setup(format!("creating the attempt stopped: {e}")))??;
        let (layers, layering) = match &plan.layers {
            LayerPlan::Plain => (
                Layers::plain(&layout, &plan.checkout),
                "overlayfs upper layer over a private checkout",
            ),
            LayerPlan::Over(below) => (
                Layers::over(&layout, &plan.checkout, below),
                "overlayfs upper layers over the environment's snapshot over a private checkout",
            ),
            LayerPlan::Into { layer, below } => (
                Layers::into_layer(&plan.checkout, layer, below),
                "setup phase writing the snapshot's layers",
            ),
        };
        let network = match plan.phase {
            Phase::Agent => "network: none (private namespace)",
            Phase::Setup { .. } => "network: the host's (setup phase)",
        };
        let isolation = vec![
            host.bwrap_version.clone(),
            layering.into(),
            network.into(),
            "capabilities: none".into(),
            format!("uid 1000 (host uid {uid})"),
            "base image: host (read-only /usr, whitelisted /etc)".into(),
            "seccomp: mount, namespaces, ptrace, kernel modules, bpf, io_uring, keyrings and \
             more denied"
                .into(),
            enforcement.summary,
        ];
        Ok(LocalSandbox {
            layout,
            lower: plan.checkout,
            base: plan.base,
            diff_base: plan.diff_base,
            layers,
            phase: plan.phase,
            env: plan.env,
            lease: plan.lease,
            owned_dirs: plan.owned_dirs,
            bwrap: host.bwrap,
            helper: config.helper.clone(),
            uid,
            image,
            isolation,
            cgroup: enforcement.cgroup,
            rlimits: enforcement.rlimits,
            layer_use: RwLock::new(()),
            egress: None,
        })
    }

    /// Opens the domains `policy` allows to the agent's commands: starts the attempt's egress
    /// proxy on `<attempt dir>/egress.sock`, and from now on every command run through
    /// [`Sandbox::exec`] gets the socket, the proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`, …)
    /// and the bridge in front of it (see `egress/mod.rs`). The sandbox's own helper calls
    /// (`read_file`, `apply_patch`) get none of it, and every command keeps its private
    /// network namespace. The proxy's records come out of [`Sandbox::drain_events`];
    /// [`LocalSandbox::destroy`] stops it. Call inside a tokio runtime, before the first
    /// command; only for the agent phase.
    pub fn start_egress(&mut self, policy: EgressPolicy) -> Result<(), SandboxError> {
        if self.phase != Phase::Agent {
            return Err(SandboxError::Setup(
                "the egress proxy is for the agent phase; setup has the host's network".into(),
            ));
        }
        if self.egress.is_some() {
            return Err(SandboxError::Setup("this sandbox's egress proxy already runs".into()));
        }
        let egress = AttemptEgress::start(policy, self.layout.root(), Path::new(STAGE), HELPER)?;
        for fact in &mut self.isolation {
            if fact.starts_with("network:") {
                fact.clone_from(&egress.isolation);
            }
        }
        self.egress = Some(egress);
        Ok(())
    }

    /// Gives every command of the agent phase an environment's plain variables (`[env]`), for a
    /// sandbox made without a snapshot (an environment with no scripts); one made over a
    /// snapshot has them already. Call before the first command.
    pub fn set_environment_variables(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        self.env = vars.into_iter().collect();
    }

    /// The names of the attempts that have a sandbox directory under `config.data_dir`: after a
    /// crash, what the dead process left (its processes died with it and nothing of it is
    /// mounted on the host, so the directory is all there is).
    pub async fn leftovers(config: &LocalSandboxConfig) -> Result<Vec<String>, SandboxError> {
        let dir = AttemptLayout::all(&config.data_dir);
        let shown = dir.display().to_string();
        tokio::task::spawn_blocking(move || match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            listing => listing
                .and_then(|entries| {
                    entries
                        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
                        .collect()
                })
                .map_err(|source| SandboxError::Io {
                    context: format!("cannot list {shown}"),
                    source,
                }),
        })
        .await
        .map_err(|e| SandboxError::Setup(format!("listing the attempts stopped: {e}")))?
    }

    /// Removes what a dead attempt left (see [`LocalSandbox::leftovers`]); `Ok(false)` when
    /// there was nothing.
    pub async fn remove_leftover(
        config: &LocalSandboxConfig,
        attempt: &str,
    ) -> Result<bool, SandboxError> {
        let dir = AttemptLayout::new(&config.data_dir, attempt)?.root().to_path_buf();
        let shown = dir.display().to_string();
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            removed => removed.map(|()| true).map_err(|source| SandboxError::Io {
                context: format!("cannot remove {shown}"),
                source,
            }),
        })
        .await
        .map_err(|e| SandboxError::Setup(format!("removing a leftover attempt stopped: {e}")))?
    }

    /// The egress proxy's socket on the host, while it runs.
    pub fn egress_socket(&self) -> Option<&Path> {
        self.egress.as_ref().map(AttemptEgress::socket)
    }

    /// Removes the attempt's cgroups (killing anything left in them) and its directory (its
    /// upper layer: the agent's work is gone after this).
    pub async fn destroy(mut self) -> Result<(), SandboxError> {
        let _quiet = self.layer_use.write().await;
        let root = self.layout.root().to_path_buf();
        let shown = root.display().to_string();
        if let Some(egress) = self.egress.take() {
            egress.shutdown().await;
        }
        let cgroup = self.cgroup.take();
        let owned = std::mem::take(&mut self.owned_dirs);
        // Released when this function returns, after the layers are gone.
        let _lease = self.lease.take();
        tokio::task::spawn_blocking(move || {
            for dir in owned {
                let _ = std::fs::remove_dir_all(dir);
            }
            let cgroup_removed = match cgroup {
                Some(mut cgroup) => cgroup.remove_blocking().map_err(|source| SandboxError::Io {
                    context: format!("cannot remove the cgroups {:?}", cgroup.paths()),
                    source,
                }),
                None => Ok(()),
            };
            let dir_removed = std::fs::remove_dir_all(root).map_err(|source| SandboxError::Io {
                context: format!("cannot remove {shown}"),
                source,
            });
            cgroup_removed.and(dir_removed)
        })
        .await
        .map_err(|e| SandboxError::Setup(format!("removing the attempt stopped: {e}")))?
    }

    /// The attempt's cgroup directories (empty when no limit uses a cgroup).
    pub fn cgroups(&self) -> Vec<PathBuf> {
        self.cgroup.as_ref().map(AttemptCgroup::paths).unwrap_or_default()
    }

    /// The base commit (full object id) the diff is against.
    pub fn base_commit(&self) -> &str {
        &self.base
    }

    /// The host uid the sandbox's processes run as.
    pub(crate) fn sandbox_uid(&self) -> u32 {
        self.uid
    }

    pub(crate) fn lower_dir(&self) -> &Path {
        &self.lower
    }

    /// What a command needs; `agent`: one of the agent's (with egress, if any), not a helper's.
    pub(crate) fn launch(&self, agent: bool) -> Launch<'_> {
        Launch {
            bwrap: &self.bwrap,
            attempt_root: self.layout.root(),
            layers: &self.layers,
            helper: &self.helper,
            uid: self.uid,
            image: &self.image,
            cgroup: self.cgroup.as_ref(),
            rlimits: self.rlimits,
            seccomp: crate::seccomp::compiled(),
            phase: &self.phase,
            env: &self.env,
            egress: self.egress.as_ref().filter(|_| agent).map(|egress| &egress.additions),
        }
    }

    async fn run(
        &self,
        request: ExecRequest,
        agent: bool,
        output: &mut (dyn FnMut(&[u8]) + Send + '_),
    ) -> Result<ExecOutcome, SandboxError> {
        let workdir = resolve_workdir(&request.workdir)?;
        let _sharing = self.layer_use.read().await;
        let outcome = exec::run(&self.launch(agent), request, &workdir, output).await;
        if let Some(egress) = self.egress.as_ref().filter(|_| agent) {
            egress.settle().await;
        }
        outcome
    }

    /// Runs one of our own commands and collects its (combined) output.
    async fn run_collect(
        &self,
        command: Vec<String>,
        workdir: String,
        stdin: Option<Vec<u8>>,
    ) -> Result<(ExecOutcome, Vec<u8>), SandboxError> {
        let mut collected = Vec::new();
        let request =
            ExecRequest { command, workdir, timeout: HELPER_TIMEOUT, env: Vec::new(), stdin };
        let outcome =
            self.run(request, false, &mut |chunk| collected.extend_from_slice(chunk)).await?;
        Ok((outcome, collected))
    }
}

/// How to build a sandbox: its layers, phase and what it owns.
pub(crate) struct SandboxPlan {
    pub checkout: PathBuf,
    pub base: String,
    pub diff_base: String,
    pub layers: LayerPlan,
    pub phase: Phase,
    pub env: Vec<(String, String)>,
    pub lease: Option<SnapshotLease>,
    pub owned_dirs: Vec<PathBuf>,
}

/// Which layers a sandbox stacks (see `layer.rs`).
pub(crate) enum LayerPlan {
    /// The attempt's upper layer over the checkout (ask mode; no environment).
    Plain,
    /// The attempt's upper layers over these layer directories (top first), over the base.
    Over(Vec<PathBuf>),
    /// A setup or maintenance run whose upper layers are `layer`'s, over `below`.
    Into { layer: PathBuf, below: Vec<PathBuf> },
}

/// Facts about the host checked once per sandbox.
#[derive(Debug, Clone)]
pub(crate) struct HostFacts {
    pub bwrap: PathBuf,
    pub bwrap_version: String,
}

/// Root, bubblewrap and the mount stage: what the local backend needs from the machine.
pub(crate) async fn check_host(config: &LocalSandboxConfig) -> Result<HostFacts, SandboxError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(SandboxError::Setup(
            "the local sandbox needs root to mount its overlay; run errand as root (see README)"
                .into(),
        ));
    }
    let bwrap = find_bwrap(&config.bwrap).ok_or_else(|| {
        SandboxError::Setup(format!(
            "bubblewrap (`{}`) was not found; install it with `apt-get install bubblewrap` \
             (or run scripts/install-deps.sh)",
            config.bwrap.display()
        ))
    })?;
    let bwrap_version = bwrap_version(&bwrap).await?;
    // data_dir goes into overlayfs mount options, where `,` and `:` are separators.
    let data_dir = config.data_dir.to_string_lossy();
    if data_dir.contains([',', ':', '\\']) || !config.data_dir.is_absolute() {
        return Err(SandboxError::Setup(format!(
            "data_dir {data_dir} must be an absolute path without `,`, `:` or `\\` \
             (overlayfs mount options cannot hold them)"
        )));
    }
    if !tokio::fs::metadata(&config.helper).await.map(|m| m.is_file()).unwrap_or(false) {
        return Err(SandboxError::Setup(format!(
            "the helper binary {} does not exist; it is mounted at {HELPER} for apply_patch",
            config.helper.display()
        )));
    }
    tokio::fs::create_dir_all(STAGE).await.map_err(|source| SandboxError::Io {
        context: format!("cannot create the mount point {STAGE}"),
        source,
    })?;
    Ok(HostFacts { bwrap, bwrap_version })
}

/// `bwrap --version`, asked once per binary per process: a process spawn is a sizeable part
/// of an attempt's start (docs/benchmarks.md).
async fn bwrap_version(bwrap: &Path) -> Result<String, SandboxError> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static KNOWN: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);
    let known = |map: &mut Option<HashMap<PathBuf, String>>| {
        map.get_or_insert_with(HashMap::new).get(bwrap).cloned()
    };
    if let Some(version) = KNOWN.lock().ok().and_then(|mut map| known(&mut map)) {
        return Ok(version);
    }
    let output =
        tokio::process::Command::new(bwrap).arg("--version").output().await.map_err(|source| {
            SandboxError::Io { context: format!("cannot run {}", bwrap.display()), source }
        })?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if let Ok(mut map) = KNOWN.lock() {
        map.get_or_insert_with(HashMap::new).insert(bwrap.to_path_buf(), version.clone());
    }
    Ok(version)
}

/// An explicit path, or the first match on PATH.
fn find_bwrap(bwrap: &Path) -> Option<PathBuf> {
    if bwrap.components().count() > 1 {
        return bwrap.is_file().then(|| bwrap.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(bwrap)).find(|candidate| candidate.is_file())
}

#[async_trait::async_trait]
impl Sandbox for LocalSandbox {
    fn workspace_dir(&self) -> &str {
        WORKSPACE
    }

    fn isolation(&self) -> Vec<String> {
        self.isolation.clone()
    }

    async fn exec(
        &self,
        request: ExecRequest,
        output: &mut (dyn for<'chunk> FnMut(&'chunk [u8]) + Send),
    ) -> Result<ExecOutcome, SandboxError> {
        self.run(request, true, output).await
    }

    fn drain_events(&self) -> Vec<errand_protocol::EventKind> {
        self.egress.as_ref().map(AttemptEgress::drain).unwrap_or_default()
    }

    async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SandboxError> {
        let path = resolve_workspace_path(path)?;
        // Read inside the sandbox: a symlink the agent made leads only to what it can see.
        let script = r#"test -f "$1" || exit 3; exec cat -- "$1""#;
        let command = ["sh", "-c", script, "read_file", &path].map(String::from).to_vec();
        let (outcome, bytes) = self.run_collect(command, WORKSPACE.into(), None).await?;
        match outcome.exit_code {
            Some(0) => Ok(Some(bytes)),
            Some(3) => Ok(None),
            _ => Err(SandboxError::Exec(format!(
                "reading {path} failed ({outcome:?}): {}",
                String::from_utf8_lossy(&bytes).trim()
            ))),
        }
    }

    async fn apply_patch(&self, patch: &str, workdir: &str) -> Result<PatchOutcome, SandboxError> {
        let workdir = resolve_workdir(workdir)?;
        let command =
            [HELPER, "apply-patch", "--json", "--root", WORKSPACE].map(String::from).to_vec();
        let (outcome, output) =
            self.run_collect(command, workdir, Some(patch.as_bytes().to_vec())).await?;
        parse_patch_outcome(&output).ok_or_else(|| {
            let text = String::from_utf8_lossy(&output);
            let tail: String =
                text.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
            SandboxError::Exec(format!(
                "the patch helper gave no result (exit {:?}); it printed: {}",
                outcome.exit_code,
                tail.trim()
            ))
        })
    }

    async fn diff(&self) -> Result<WorkspaceDiff, SandboxError> {
        let _still = self.layer_use.write().await;
        let upper = self.layout.upper();
        let changes = tokio::task::spawn_blocking(move || read_upper_blocking(&upper))
            .await
            .map_err(|e| SandboxError::Diff(format!("reading the upper layer stopped: {e}")))??;
        let diff = errand_git::diff_changes(&self.lower, &self.diff_base, &changes)
            .await
            .map_err(|e| SandboxError::Diff(e.to_string()))?;
        Ok(WorkspaceDiff { patch: diff.patch, files: diff.files })
    }
}

/// The helper's result line: the last line of its output that is a JSON object of that shape
/// (stderr shares the stream, so other lines may surround it).
fn parse_patch_outcome(output: &[u8]) -> Option<PatchOutcome> {
    #[derive(serde::Deserialize)]
    struct Line {
        success: bool,
        #[serde(default)]
        output: String,
        #[serde(default)]
        changes: Vec<errand_protocol::FileChange>,
    }
    String::from_utf8_lossy(output)
        .lines()
        .rev()
        .filter(|line| line.trim_start().starts_with('{'))
        .find_map(|line| serde_json::from_str::<Line>(line).ok())
        .map(|line| PatchOutcome {
            success: line.success,
            output: line.output,
            changes: line.changes,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_protocol::{FileChange, FileChangeKind};

    #[test]
    fn the_patch_result_is_the_last_json_line() {
        let output = b"warning: something\n{\"success\":true,\"output\":\"Done!\",\"changes\":[{\"path\":\"a.txt\",\"change\":\"added\",\"insertions\":1,\"deletions\":0}]}\n";
        let outcome = parse_patch_outcome(output).unwrap();
        assert!(outcome.success);
        assert_eq!(outcome.output, "Done!");
        assert_eq!(
            outcome.changes,
            vec![FileChange {
                path: "a.txt".into(),
                kind: FileChangeKind::Added,
                insertions: 1,
                deletions: 0,
                binary: false
            }]
        );
        assert!(parse_patch_outcome(b"Segmentation fault\n").is_none());
        assert!(parse_patch_outcome(b"{\"succ").is_none());
    }

    #[test]
    fn bwrap_is_found_on_path_or_by_explicit_path() {
        assert_eq!(find_bwrap(Path::new("/nonexistent/bwrap")), None);
        assert_eq!(find_bwrap(Path::new("surely-not-a-command-xyz")), None);
        assert_eq!(find_bwrap(Path::new("sh")).map(|p| p.is_absolute()), Some(true));
    }
}
