//! `errand env …` through the real binary against a SQLite store in a temp data dir: the
//! create/list/show/update/rm round trip, refusals that leave the store as it was, no secret
//! value in any output, `errand exec --env NAME` running a stored environment (real bubblewrap)
//! with `errand env logs` showing its setup, and no database for commands that need none.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{both, make_repo, sandbox_available, scratch};
use errand_testkit::{Script, ScriptedModel};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The value of the secret a file writes inline (stored in the database, never shown).
const INLINE_SECRET: &str = "inline-secret-4c1d";
/// The value behind a `{ env = "HOST_REF" }` reference (neither stored nor shown).
const HOST_SECRET: &str = "host-secret-9f2e";

const WEB: &str = r#"
setup_script = "npm ci"
maintenance_script = "npm install"
[env]
NODE_ENV = "test"
[secrets]
INLINE = "inline-secret-4c1d"
FROM_HOST = { env = "HOST_REF" }
"#;

/// `errand <args>` in `cwd` with a clean environment: HOME and the data dir under `root`, the
/// local user `tester`, `HOST_REF` set, and `model` (if any) as the model endpoint.
async fn errand(
    root: &Path,
    cwd: &Path,
    model: Option<&ScriptedModel>,
    args: &[&str],
    stdin: &[u8],
) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"));
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", root)
        .env("USER", "tester")
        .env("ERRAND_DATA_DIR", root.join("data"))
        .env("HOST_REF", HOST_SECRET)
        .env("E2E_SECRET_TOKEN", HOST_SECRET)
        .env("OPENAI_API_KEY", "test-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(model) = model {
        command.env("ERRAND_MODEL_BASE_URL", model.base_url()).env("ERRAND_MODEL", "scripted");
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

async fn env_cmd(root: &Path, args: &[&str]) -> Output {
    let mut full = vec!["env"];
    full.extend_from_slice(args);
    errand(root, root, None, &full, b"").await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> Output {
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", both(out)))
}

fn write(root: &Path, name: &str, text: &str) -> PathBuf {
    let path = root.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn database(root: &Path) -> PathBuf {
    root.join("data/errand.db")
}

/// The bytes of the database and its write-ahead log: what a secret at rest would be in.
fn database_bytes(root: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(database(root)).unwrap();
    bytes.extend(std::fs::read(root.join("data/errand.db-wal")).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every output of a listing or a showing, for secret searches.
fn assert_no_secret(out: &Output) {
    for secret in [INLINE_SECRET, HOST_SECRET] {
        assert!(!contains(&out.stdout, secret), "stdout shows {secret}: {}", both(out));
        assert!(!contains(&out.stderr, secret), "stderr shows {secret}: {}", both(out));
    }
}

#[tokio::test]
async fn environments_round_trip_without_showing_a_secret() {
    let root = scratch();
    let root = root.path();
    let web = write(root, "web.toml", WEB);
    let web = web.to_str().unwrap();

    let created = ok(env_cmd(root, &["create", "web", "--file", web]).await);
    assert!(stderr(&created).contains("created environment `web`"), "{}", both(&created));
    let again = env_cmd(root, &["create", "web", "--file", web]).await;
    assert_eq!(again.status.code(), Some(2), "{}", both(&again));
    assert!(
        stderr(&again).contains("an environment named `web` already exists"),
        "{}",
        both(&again)
    );

    let list = ok(env_cmd(root, &["list"]).await);
    assert_no_secret(&list);
    let listed = json(&ok(env_cmd(root, &["list", "--json"]).await));
    assert_eq!(listed.as_array().unwrap().len(), 1, "the duplicate added nothing: {listed}");
    let entry = &listed[0];
    assert_eq!(entry["name"], "web");
    assert_eq!(
        (entry["setup_script"].as_bool(), entry["maintenance_script"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(entry["secrets"], 2);
    let hash = entry["config_hash"].as_str().unwrap().to_string();
    let row = stdout(&list).lines().find(|l| l.starts_with("web ")).map(str::to_string);
    let row = row.unwrap_or_else(|| panic!("no row for web: {}", stdout(&list)));
    assert!(row.contains(&hash[..12]) && row.contains("yes"), "{row}");
    assert!(row.trim_end().ends_with(" 2"), "secrets count: {row}");

    let show = ok(env_cmd(root, &["show", "web"]).await);
    assert_no_secret(&show);
    let shown = stdout(&show);
    assert!(shown.contains("INLINE = \"[secret]\""), "{shown}");
    assert!(shown.contains("HOST_REF"), "references are shown, they hold no secret: {shown}");
    assert!(shown.contains("npm ci") && shown.contains("NODE_ENV = \"test\""), "{shown}");
    let show_json = ok(env_cmd(root, &["show", "web", "--json"]).await);
    assert_no_secret(&show_json);
    let config = &json(&show_json)["config"];
    assert_eq!(config["secrets"]["INLINE"], "[secret]");
    assert_eq!(config["secrets"]["FROM_HOST"]["env"], "HOST_REF");

    // At rest: a value written in the file is in the database (docs/security.md); a reference
    // is stored as the reference, never its value.
    let stored = database_bytes(root);
    assert!(contains(&stored, INLINE_SECRET), "the inline value is what setup needs");
    {
        use std::os::unix::fs::PermissionsExt;
        // The -wal file is gone once the last connection closed (SQLite checkpoints it).
        let mode = std::fs::metadata(database(root)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "errand.db holds secrets but is mode {mode:o}");
    }
    assert!(!contains(&stored, HOST_SECRET), "a referenced secret's value was stored");

    let changed = write(root, "web2.toml", "setup_script = \"uv sync\"\n");
    ok(env_cmd(root, &["update", "web", "--file", changed.to_str().unwrap()]).await);
    let listed = json(&ok(env_cmd(root, &["list", "--json"]).await));
    assert_ne!(listed[0]["config_hash"], hash.as_str());
    assert_eq!(
        (listed[0]["maintenance_script"].as_bool(), listed[0]["secrets"].as_u64()),
        (Some(false), Some(0))
    );
    assert!(stdout(&ok(env_cmd(root, &["show", "web"]).await)).contains("uv sync"));

    // In use by a task (created through the store, as the service will): kept.
    let task = add_task_using(root, "web").await;
    let refused = env_cmd(root, &["rm", "web"]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", both(&refused));
    assert!(stderr(&refused).contains("environment `web` is used by tasks"), "{}", both(&refused));
    assert_eq!(json(&ok(env_cmd(root, &["list", "--json"]).await)).as_array().unwrap().len(), 1);
    drop_task(root, task).await;

    ok(env_cmd(root, &["rm", "web"]).await);
    assert_eq!(json(&ok(env_cmd(root, &["list", "--json"]).await)), serde_json::json!([]));
    let gone = env_cmd(root, &["show", "web"]).await;
    assert_eq!(gone.status.code(), Some(2));
    assert!(stderr(&gone).contains("no environment named `web`"), "{}", both(&gone));
}

async fn store_of(root: &Path) -> (std::sync::Arc<dyn errand_store::Store>, errand_store::User) {
    let url = format!("sqlite://{}", database(root).display());
    let store = errand_store::open(&url).await.unwrap();
    let user = store.user_by_name("tester").await.unwrap();
    (store, user)
}

async fn add_task_using(root: &Path, env: &str) -> errand_protocol::TaskId {
    let (store, user) = store_of(root).await;
    let env = store.environment_by_name(user.id, env).await.unwrap();
    let task = errand_store::NewTask {
        environment_id: Some(env.id),
        repository: "/srv/repo".into(),
        git_ref: "main".into(),
        base_commit: None,
        prompt: "p".into(),
        mode: errand_store::TaskMode::Code,
        attempts: 1,
    };
    store.create_task(user.id, task).await.unwrap().0.id
}

async fn drop_task(root: &Path, task: errand_protocol::TaskId) {
    let (store, user) = store_of(root).await;
    store.delete_task(user.id, task).await.unwrap();
}

#[tokio::test]
async fn bad_files_and_names_are_refused_and_create_nothing() {
    let root = scratch();
    let root = root.path();
    for (text, key) in [
        ("setup_scrpit = \"npm ci\"\n", "setup_scrpit"),
        ("[secrets]\nTOKEN = \"abc\"\n", "secrets.TOKEN"),
        ("[secrets]\nTOKEN = { file = \"/etc/token\" }\n", "secrets.TOKEN"),
        ("snapshot_ttl = \"soon\"\n", "soon"),
    ] {
        let file = write(root, "bad.toml", text);
        let out = env_cmd(root, &["create", "bad", "--file", file.to_str().unwrap()]).await;
        assert_eq!(out.status.code(), Some(2), "{}", both(&out));
        assert!(stderr(&out).contains(key), "{text:?} must name {key}: {}", both(&out));
        assert!(stderr(&out).contains("bad.toml"), "the error names the file: {}", both(&out));
        assert!(!database(root).exists(), "a refused file must not even create the store");
    }
    let missing = env_cmd(root, &["create", "x", "--file", "/nonexistent/env.toml"]).await;
    assert!(stderr(&missing).contains("cannot read the environment file"), "{}", both(&missing));

    let good = write(root, "good.toml", "setup_script = \"true\"\n");
    let bad_name = env_cmd(root, &["create", "web.toml", "--file", good.to_str().unwrap()]).await;
    assert_eq!(bad_name.status.code(), Some(2));
    assert!(
        stderr(&bad_name).contains("`web.toml` is not an environment name"),
        "{}",
        both(&bad_name)
    );
    // The store exists now (the name was checked after opening it) but holds nothing.
    assert_eq!(json(&ok(env_cmd(root, &["list", "--json"]).await)), serde_json::json!([]));

    // Updating with a bad file keeps the stored configuration.
    ok(env_cmd(root, &["create", "web", "--file", good.to_str().unwrap()]).await);
    let before = json(&ok(env_cmd(root, &["show", "web", "--json"]).await));
    let bad = write(root, "bad.toml", "setup_script = 5\n");
    let out = env_cmd(root, &["update", "web", "--file", bad.to_str().unwrap()]).await;
    assert!(stderr(&out).contains("setup_script"), "{}", both(&out));
    assert_eq!(json(&ok(env_cmd(root, &["show", "web", "--json"]).await)), before);
    let unknown = env_cmd(root, &["update", "nope", "--file", good.to_str().unwrap()]).await;
    assert!(stderr(&unknown).contains("no environment named `nope`"), "{}", both(&unknown));
}

#[tokio::test]
async fn commands_that_need_no_store_create_no_database() {
    let root = scratch();
    let root = root.path();
    let repo = make_repo(root);
    let patch = b"*** Begin Patch\n*** Add File: new.txt\n+hello\n*** End Patch\n";
    ok(errand(root, &repo, None, &["apply-patch"], patch).await);
    assert_eq!(std::fs::read_to_string(repo.join("new.txt")).unwrap(), "hello\n");
    let out = errand(root, &repo, None, &["exec", "--env", "./missing.toml", "go"], b"").await;
    assert!(stderr(&out).contains("cannot read the environment file"), "{}", both(&out));
    let out = errand(root, &repo, None, &["exec", "--env", "/nowhere/env.toml", "go"], b"").await;
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    ok(errand(root, &repo, None, &["env", "--help"], b"").await);
    assert!(!database(root).exists(), "{} was created", database(root).display());

    // A name that is neither a file nor stored: a clear error that names both.
    let out = errand(root, &repo, None, &["exec", "--env", "web", "go"], b"").await;
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("no environment named `web`"), "{}", both(&out));
    assert!(stderr(&out).contains("no such file either"), "{}", both(&out));
}

const STORED: &str = r#"
setup_script = """
echo "setup sees $TOKEN"
echo made-by-setup > generated.txt
"""
maintenance_script = "echo maintenance-ran"
[secrets]
TOKEN = { env = "E2E_SECRET_TOKEN" }
"#;

const AGENT: &str = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "generated.txt"] }

[[turns]]
expect.last_tool_output_contains = ["PLAIN_CHECK"]
[[turns.output]]
type = "message"
text = "Checked the environment."
"#;

#[tokio::test]
async fn exec_runs_a_stored_environment_and_env_logs_shows_its_setup() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let root = root.path();
    let repo = make_repo(root);

    // A file still works, and needs no store.
    let plain = write(root, "plain.toml", "setup_script = \"echo PLAIN_CHECK > generated.txt\"\n");
    let model = ScriptedModel::start(Script::from_toml(AGENT).unwrap()).await.unwrap();
    let args = ["exec", "--env", plain.to_str().unwrap(), "go"];
    ok(errand(root, &repo, Some(&model), &args, b"").await);
    model.verify().unwrap();
    assert!(!database(root).exists(), "exec --env FILE created the store");

    let file = write(root, "stored.toml", STORED);
    ok(env_cmd(root, &["create", "web", "--file", file.to_str().unwrap()]).await);
    std::fs::remove_file(&file).unwrap();
    let none = ok(env_cmd(root, &["logs", "web"]).await);
    assert!(stderr(&none).contains("has no setup log yet"), "{}", both(&none));

    let script = AGENT.replace("PLAIN_CHECK", "made-by-setup");
    let model = ScriptedModel::start(Script::from_toml(&script).unwrap()).await.unwrap();
    let out = errand(root, &repo, Some(&model), &["exec", "--env", "web", "go"], b"").await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    model.verify().unwrap();
    assert!(stderr(&out).contains("setup sees [secret:TOKEN]"), "{}", both(&out));

    let logs = ok(env_cmd(root, &["logs", "web"]).await);
    assert_no_secret(&logs);
    assert!(stdout(&logs).contains("setup sees [secret:TOKEN]"), "{}", both(&logs));
    assert!(
        stderr(&logs).contains("setup of `web`") && stderr(&logs).contains("exited 0"),
        "{}",
        both(&logs)
    );
    let logged = json(&ok(env_cmd(root, &["logs", "web", "--json"]).await));
    assert_eq!((logged["phase"].as_str(), logged["exit_code"].as_i64()), (Some("setup"), Some(0)));

    // The second run reuses the snapshot; the newest log is then its maintenance.
    let model = ScriptedModel::start(Script::from_toml(&script).unwrap()).await.unwrap();
    ok(errand(root, &repo, Some(&model), &["exec", "--env", "web", "go"], b"").await);
    let logs = ok(env_cmd(root, &["logs", "web"]).await);
    assert!(stdout(&logs).contains("maintenance-ran"), "{}", both(&logs));
    assert!(stderr(&logs).starts_with("maintenance of `web`"), "{}", both(&logs));

    let stored = database_bytes(root);
    assert!(contains(&stored, "setup sees [secret:TOKEN]"), "the setup log is in the store");
    assert!(!contains(&stored, HOST_SECRET), "the secret reached the store");
}
