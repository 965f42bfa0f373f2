//! What the worker tests share: a SQLite store and a repository in a temp dir, a model that
//! routes each attempt's first turn and its later turns to two scripted model servers (so
//! attempts running at once cannot take each other's turns), a model that holds its first
//! request until the test lets it go, a store that watches `finished`, and bounded waits.

pub mod watched;
#[allow(dead_code)]
pub mod web;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use errand_agent::Model;
use errand_model::{Item, ModelClient, ModelConfig, ModelError, ModelProgress, ModelRequest};
use errand_model::{ModelTurn, Provider};
use errand_protocol::{AttemptId, Event, EventKind};
use errand_sandbox::LocalSandboxConfig;
use errand_server::Worker;
use errand_store::{NewTask, Scope, SqliteStore, Store, Task, TaskMode};
use errand_testkit::{Script, ScriptedModel};

/// Whether this machine can run real sandboxes; under CI it must.
pub fn sandbox_available() -> bool {
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    let bwrap = std::process::Command::new("bwrap").arg("--version").output().is_ok();
    if root && bwrap {
        return true;
    }
    let why =
        if root { "bubblewrap is not installed" } else { "tests of the local sandbox need root" };
    assert!(std::env::var_os("CI").is_none(), "CI must run the worker tests, but {why}");
    eprintln!("skipping: {why} (run scripts/install-deps.sh as root)");
    false
}

/// A temp dir with a committed repository, a SQLite store and a data directory, all reachable
/// by the sandbox's uid.
pub struct World {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub store: Arc<dyn Store>,
}

impl World {
    pub async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(repo.join("README.md"), "A repository for worker tests.\n").unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "base"]);
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("errand.db")).await.unwrap());
        World { dir, repo, store }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A task on the repository's `main` with `attempts` queued attempts.
    pub async fn task(&self, attempts: u32) -> (Task, Vec<AttemptId>) {
        let user = match self.store.user_by_name("alice").await {
            Ok(user) => user,
            Err(_) => self.store.create_user("alice").await.unwrap(),
        };
        let new = NewTask {
            environment_id: None,
            repository: self.repo.to_string_lossy().into_owned(),
            git_ref: "main".into(),
            base_commit: None,
            prompt: "write result.txt".into(),
            mode: TaskMode::Code,
            attempts,
        };
        let (task, attempts) = self.store.create_task(user.id, new).await.unwrap();
        (task, attempts.into_iter().map(|a| a.id).collect())
    }

    /// A worker on this world's store and data directory, with short leases and a fast poll.
    pub fn worker(&self, id: &str, model: Arc<dyn Model>, concurrency: usize) -> Worker {
        let helper = self.dir.path().join("errand-helper");
        if !helper.exists() {
            // The agent edits with shell commands here; apply_patch (the helper) is not used.
            std::fs::write(&helper, "#!/bin/sh\necho 'no helper in these tests' >&2\nexit 2\n")
                .unwrap();
            std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let sandbox = LocalSandboxConfig::new(self.data_dir(), helper);
        let mut worker = Worker::new(id, self.store.clone(), model, sandbox);
        worker.concurrency = concurrency;
        worker.lease_ttl = Duration::from_secs(3);
        worker.poll_interval = Duration::from_millis(50);
        worker.drain_timeout = Duration::from_secs(30);
        worker
    }

    pub async fn events(&self, attempt: AttemptId) -> Vec<Event> {
        self.store.events_after(Scope::System, attempt, 0, 10_000).await.unwrap()
    }

    pub fn attempt_dir(&self, attempt: AttemptId) -> PathBuf {
        self.data_dir().join("attempts").join(attempt.to_string())
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Sends an attempt's first turn (no tool output yet) to `first`, every later turn to `after`.
pub struct RoutedModel {
    first: ModelClient,
    after: ModelClient,
}

impl RoutedModel {
    pub fn new(first: &ScriptedModel, after: &ScriptedModel) -> RoutedModel {
        let client = |model: &ScriptedModel| {
            ModelClient::new(ModelConfig {
                base_url: model.base_url(),
                model: "scripted".into(),
                api_key: Some("test-key".into()),
                max_retries: 0,
                provider: Provider::Responses,
                ..ModelConfig::default()
            })
            .unwrap()
        };
        RoutedModel { first: client(first), after: client(after) }
    }
}

#[async_trait::async_trait]
impl Model for RoutedModel {
    async fn turn(
        &self,
        request: &ModelRequest,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, ModelError> {
        let later = request.input.iter().any(|item| {
            matches!(item, Item::FunctionCallOutput { .. } | Item::CustomToolCallOutput { .. })
        });
        let client = if later { &self.after } else { &self.first };
        client.turn(request, progress).await
    }
}

/// Holds every request until [`GatedModel::open`], so a test can act while the attempt is
/// certainly running and waiting on its model (no sleeps), then passes it on.
pub struct GatedModel {
    inner: RoutedModel,
    arrived: AtomicBool,
    gate: tokio::sync::Semaphore,
}

impl GatedModel {
    pub fn new(inner: RoutedModel) -> GatedModel {
        GatedModel { inner, arrived: AtomicBool::new(false), gate: tokio::sync::Semaphore::new(0) }
    }

    /// Whether a request is waiting (or has waited) at the gate.
    pub fn arrived(&self) -> bool {
        self.arrived.load(Ordering::SeqCst)
    }

    /// Lets every waiting and later request through.
    pub fn open(&self) {
        self.gate.close();
    }
}

#[async_trait::async_trait]
impl Model for GatedModel {
    async fn turn(
        &self,
        request: &ModelRequest,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, ModelError> {
        self.arrived.store(true, Ordering::SeqCst);
        // A closed semaphore is the open gate: acquiring fails at once.
        let _ = self.gate.acquire().await;
        self.inner.turn(request, progress).await
    }
}

/// `n` first turns that write `result.txt`, and `n` final answers.
pub async fn writing_models(n: usize) -> (ScriptedModel, ScriptedModel) {
    let write = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["sh", "-c", "echo done > result.txt"] }
"#;
    let answer = r#"
[[turns]]
expect.last_tool_output_contains = ["Exit code: 0"]
[[turns.output]]
type = "message"
text = "Write result.txt\n\nWrote `result.txt` with one line."
"#;
    let first = Script::from_toml(&write.repeat(n)).unwrap();
    let after = Script::from_toml(&answer.repeat(n)).unwrap();
    (ScriptedModel::start(first).await.unwrap(), ScriptedModel::start(after).await.unwrap())
}

/// A model whose first turn never answers (within any test's time): the attempt stays
/// `running`, waiting on it.
pub async fn stalled_model() -> ScriptedModel {
    let script =
        "[[turns]]\ndelay_ms = 3600000\n[[turns.output]]\ntype = \"message\"\ntext = \"late\"\n";
    ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap()
}

/// The `type` of each event, in order.
pub fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| serde_json::to_value(&e.kind).unwrap()["type"].as_str().unwrap().to_string())
        .collect()
}

/// Seqs are 1, 2, 3… with no gap, and the log ends with `finished`.
pub fn assert_complete_log(events: &[Event]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "{:?}", kinds(events));
    assert!(
        matches!(events.last().map(|e| &e.kind), Some(EventKind::Finished { .. })),
        "{:?}",
        kinds(events)
    );
}
