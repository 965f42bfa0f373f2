//! Nothing is lost when a process dies (issue 6, "Crash"): `kill -9` of `errand serve` (SQLite)
//! and, separately, of one of two `errand worker` processes (PostgreSQL) while attempts run a
//! command in their sandboxes. After a restart: every event a client saw before the kill is still
//! there, unchanged; no attempt stays `running`; no sandbox process or attempt directory is left.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::server::{ServeOptions, TestServer};
use common::{make_repo, model_config, sandbox_available, scratch};
use errand_protocol::api::{AttemptView, EventPage, TaskView};
use errand_protocol::{AttemptState, Event, EventKind};
use errand_testkit::{Script, ScriptedModel, wait_until};
use serde_json::json;

/// Every attempt starts a long command (and would then finish, were it allowed to).
const LONG_COMMAND: &str = r#"
mode = "per_conversation"

[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["sh", "-c", "echo started; sleep 600"] }

[[turns]]
[[turns.output]]
type = "message"
text = "Done\n\nSlept."
"#;

/// Short leases, so that recovery comes quickly.
fn service_config(model: &ScriptedModel) -> String {
    format!("{}\n[server]\nlease_secs = 3\n", model_config(model, "openai-responses", 30))
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    fn of(server: &TestServer) -> Client {
        Client { http: reqwest::Client::new(), url: server.url(), token: server.token().into() }
    }

    async fn create(&self, repo: &Path, attempts: u32) -> TaskView {
        let body = json!({"repository": repo.display().to_string(), "prompt": "sleep", "attempts": attempts});
        let response = self
            .http
            .post(format!("{}/api/tasks", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn attempt(&self, id: &str) -> AttemptView {
        let url = format!("{}/api/attempts/{id}", self.url);
        self.http.get(url).bearer_auth(&self.token).send().await.unwrap().json().await.unwrap()
    }

    async fn events(&self, id: &str) -> Vec<Event> {
        let url = format!("{}/api/attempts/{id}/events?limit=10000", self.url);
        let page: EventPage =
            self.http.get(url).bearer_auth(&self.token).send().await.unwrap().json().await.unwrap();
        page.events
    }

    async fn cancel(&self, id: &str) {
        let url = format!("{}/api/attempts/{id}/cancel", self.url);
        let response = self.http.post(url).bearer_auth(&self.token).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    /// Waits until the attempt's command runs in its sandbox; the events seen by then.
    async fn wait_running_command(&self, id: &str) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let seen = self.events(id).await;
            let started = seen.iter().any(|e| {
                matches!(&e.kind, EventKind::CommandOutput { text, .. } if text.contains("started"))
            });
            if started {
                return seen;
            }
            assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {id}'s command");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Processes of this attempt's sandbox: in its cgroup (named after the attempt), or with the
/// attempt in their command line.
fn processes_of(attempt: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cgroup.contains(attempt) || cmdline.contains(attempt) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Whether the attempt's sandbox runs in cgroups (else its processes are found by command line
/// only, and bwrap's command line does not name the attempt).
fn uses_cgroups(events: &[Event]) -> bool {
    events.iter().any(|e| {
        matches!(&e.kind, EventKind::SandboxReady { isolation, .. }
            if isolation.iter().any(|i| i.contains("cgroup")))
    })
}

/// Mount points on the host under `dir` (the overlays live in private mount namespaces; none
/// may ever show up here).
fn mounts_under(dir: &Path) -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.display().to_string();
    mountinfo.lines().filter(|l| l.contains(&dir)).map(String::from).collect()
}

/// What the log must look like after recovery: what was seen before the kill, unchanged, then
/// a terminal state and `finished`, with seqs 1, 2, 3… throughout.
fn assert_kept_and_closed(before: &[Event], after: &[Event]) {
    assert!(after.len() > before.len(), "recovery appends the end");
    assert_eq!(&after[..before.len()], before, "every acknowledged event is kept as it was");
    let seqs: Vec<u64> = after.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=after.len() as u64).collect::<Vec<_>>());
    assert!(matches!(after.last().unwrap().kind, EventKind::Finished { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_server_loses_no_event_and_leaves_nothing_running() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let model = ScriptedModel::start(Script::from_toml(LONG_COMMAND).unwrap()).await.unwrap();
    let options =
        ServeOptions { config: service_config(&model), workers: Some(2), ..Default::default() };
    let mut server = TestServer::start(root.path(), options).await;
    let client = Client::of(&server);
    let task = client.create(&repo, 2).await;
    let ids: Vec<String> = task.attempts.iter().map(|a| a.id.to_string()).collect();
    let mut seen = Vec::new();
    for id in &ids {
        let events = client.wait_running_command(id).await;
        if uses_cgroups(&events) {
            assert!(!processes_of(id).is_empty(), "the sandbox runs the command");
        }
        seen.push(events);
    }

    server.kill9().await;
    for id in &ids {
        wait_until("the sandbox processes to die with the server", || async {
            processes_of(id).is_empty()
        })
        .await;
    }
    assert!(mounts_under(&server.data_dir()).is_empty());

    server.restart().await;
    let client = Client::of(&server);
    for (id, before) in ids.iter().zip(&seen) {
        wait_until("the interrupted attempt to be failed", || async {
            client.attempt(id).await.state.is_terminal()
        })
        .await;
        let attempt = client.attempt(id).await;
        assert_eq!(attempt.state, AttemptState::Failed, "{attempt:?}");
        assert!(attempt.reason.as_deref().unwrap_or("").contains("interrupted"), "{attempt:?}");
        assert_kept_and_closed(before, &client.events(id).await);
        assert!(!server.data_dir().join("attempts").join(id).exists(), "cleaned up on restart");
    }
    // The restarted server works: a new task runs to its command.
    let again = client.create(&repo, 1).await;
    let again = again.attempts[0].id.to_string();
    client.wait_running_command(&again).await;
    client.cancel(&again).await;
    wait_until("the cancel", || async { client.attempt(&again).await.state.is_terminal() }).await;
    assert_eq!(client.attempt(&again).await.state, AttemptState::Cancelled);
}

/// An `errand worker` process on its own data directory (its own "machine").
struct WorkerProcess {
    child: Option<tokio::process::Child>,
    data_dir: PathBuf,
    id: String,
}

impl WorkerProcess {
    fn start(server: &TestServer, id: &str, database_url: &str) -> WorkerProcess {
        let data_dir = server.data_dir().with_file_name(format!("data-{id}"));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
            .arg("--config")
            .arg(server.config_file())
            .args(["worker", "--concurrency", "1", "--id", id, "--database-url", database_url])
            .env_clear()
            .envs(server.env())
            .env("ERRAND_DATA_DIR", &data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        WorkerProcess { child: Some(child), data_dir, id: id.into() }
    }

    fn holds(&self, attempt: &str) -> bool {
        self.data_dir.join("attempts").join(attempt).exists()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_of_two_workers_on_postgres_fails_only_its_attempt() {
    if !sandbox_available() {
        return;
    }
    let Some(database) = errand_testkit::postgres::database_or_skip().await else { return };
    let root = scratch();
    let repo = make_repo(root.path());
    let model = ScriptedModel::start(Script::from_toml(LONG_COMMAND).unwrap()).await.unwrap();
    let options = ServeOptions {
        config: service_config(&model),
        workers: Some(0),
        env: vec![("ERRAND_DATABASE_URL".into(), database.clone())],
    };
    let server = TestServer::start(root.path(), options).await;
    let client = Client::of(&server);
    let mut one = WorkerProcess::start(&server, "one", &database);
    let two = WorkerProcess::start(&server, "two", &database);

    let task = client.create(&repo, 2).await;
    let ids: Vec<String> = task.attempts.iter().map(|a| a.id.to_string()).collect();
    let mut seen = Vec::new();
    for id in &ids {
        seen.push(client.wait_running_command(id).await);
    }
    let (victim, survivor) = if one.holds(&ids[0]) { (0, 1) } else { (1, 0) };
    assert!(one.holds(&ids[victim]) && two.holds(&ids[survivor]), "one attempt per worker");

    one.child.take().unwrap().kill().await.unwrap();
    wait_until("the killed worker's sandbox to die", || async {
        processes_of(&ids[victim]).is_empty()
    })
    .await;
    // The live worker takes back the dead one's attempt once its lease expires.
    wait_until("the dead worker's attempt to be failed", || async {
        client.attempt(&ids[victim]).await.state.is_terminal()
    })
    .await;
    let failed = client.attempt(&ids[victim]).await;
    assert_eq!(
        (failed.state, failed.reason.as_deref()),
        (AttemptState::Failed, Some("interrupted"))
    );
    assert_kept_and_closed(&seen[victim], &client.events(&ids[victim]).await);
    // The other attempt is untouched: still running its command on the live worker.
    assert_eq!(client.attempt(&ids[survivor]).await.state, AttemptState::Running);
    if uses_cgroups(&seen[survivor]) {
        assert!(!processes_of(&ids[survivor]).is_empty());
    }

    // The dead worker's directory stays until a worker starts again on its machine.
    assert!(one.holds(&ids[victim]));
    let one = WorkerProcess::start(&server, &one.id, &database);
    wait_until("the restarted worker to clean up", || async { !one.holds(&ids[victim]) }).await;

    client.cancel(&ids[survivor]).await;
    wait_until("the cancel", || async { client.attempt(&ids[survivor]).await.state.is_terminal() })
        .await;
    assert_eq!(client.attempt(&ids[survivor]).await.state, AttemptState::Cancelled);
    wait_until("the cancelled sandbox to go", || async {
        processes_of(&ids[survivor]).is_empty() && !two.holds(&ids[survivor])
    })
    .await;
    for id in &ids {
        assert!(mounts_under(&root.path().join("data-one")).is_empty(), "{id}");
    }
}
