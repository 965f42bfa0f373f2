//! The client commands (`errand task …`, `errand apply`) end to end: the real `errand serve`
//! on loopback, the real `errand` client against it, and, where an attempt runs, the scripted
//! model and a real sandbox.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::server::{ServeOptions, TestServer};
use common::{CALC, both, git, make_repo, model_config, sandbox_available, scratch};
use errand_testkit::{Script, ScriptedModel};
use serde_json::Value;

/// Fixes calc.py, runs the tests, reports; then a follow-up that changes nothing more.
const FIX_SCRIPT: &str = r#"
[[turns]]
expect.last_user_message_contains = ["fix the failing test"]
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: calc.py
 def add(a, b):
-    return a - b
+    return a + b
*** End Patch
"""

[[turns]]
expect.last_tool_output_contains = ["calc.py"]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["python3", "-m", "unittest", "-v"] }

[[turns]]
expect.last_tool_output_contains = ["Exit code: 0", "OK"]
[[turns.output]]
type = "message"
text = """
Make add() add instead of subtract

`add` returned `a - b`; it now returns `a + b` and the test passes.
"""

[[turns]]
expect.last_user_message_contains = ["check the docstring"]
[[turns.output]]
type = "message"
text = """
Nothing more to change

There is no docstring to fix; the change stands as it was.
"""
"#;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", both(out)))
}

/// Runs a client command and checks its exit code.
async fn expect(server: &TestServer, cwd: &Path, args: &[&str], code: i32) -> Output {
    let out = server.errand(cwd, args).await;
    assert_eq!(
        out.status.code(),
        Some(code),
        "errand {args:?}\n{}\nserver:\n{}",
        both(&out),
        server.log()
    );
    out
}

/// A server that runs nothing (`--workers 0`): attempts stay queued until cancelled.
async fn idle_server(root: &Path) -> TestServer {
    TestServer::start(root, ServeOptions { workers: Some(0), ..Default::default() }).await
}

#[tokio::test]
async fn a_task_runs_on_the_server_and_its_diff_lands_in_the_checkout() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let head = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    let model = ScriptedModel::start(Script::from_toml(FIX_SCRIPT).unwrap()).await.unwrap();
    let options = ServeOptions {
        config: model_config(&model, "openai-responses", 30),
        workers: Some(1),
        ..Default::default()
    };
    let server = TestServer::start(root.path(), options).await;
    // From a subdirectory: the task names the repository's root and its current branch.
    let subdir = repo.join("docs");
    std::fs::create_dir(&subdir).unwrap();

    let out =
        expect(&server, &subdir, &["task", "create", "fix the failing test", "--follow"], 0).await;
    let printed = stdout(&out);
    let id = printed.lines().next().unwrap().to_string();
    assert!(id.starts_with("task_"), "{printed}");
    assert!(printed.contains("✎ patch applied: M calc.py"), "{printed}");
    assert!(printed.contains("$ python3 -m unittest -v"), "{printed}");
    assert!(printed.contains("» Make add() add instead of subtract"), "{printed}");
    assert!(stderr(&out).contains(&format!("✓ {id}/0 succeeded")), "{}", both(&out));

    let task = json(&expect(&server, &repo, &["task", "show", &id, "--json"], 0).await);
    assert_eq!(task["state"], "succeeded");
    let canonical = std::fs::canonicalize(&repo).unwrap();
    assert_eq!(task["repository"], canonical.display().to_string());
    assert_eq!(task["ref"], "main");
    assert_eq!(task["base_commit"], head);
    let shown = stdout(&expect(&server, &repo, &["task", "show", &id], 0).await);
    assert!(shown.contains("report: Make add() add instead of subtract"), "{shown}");
    let list = json(&expect(&server, &repo, &["task", "list", "--json"], 0).await);
    assert_eq!(list["tasks"][0]["id"], id.as_str());
    let table = stdout(&expect(&server, &repo, &["task", "list"], 0).await);
    let row = table.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("succeeded") && row.ends_with("fix the failing test"), "{table}");

    // The stored log, as JSON lines: every event once, in order, `finished` last.
    let logs = stdout(&expect(&server, &repo, &["task", "logs", &id, "--json"], 0).await);
    let events: Vec<Value> = logs.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert_eq!(events.last().unwrap()["type"], "finished");

    let diff = stdout(&expect(&server, &repo, &["task", "diff", &id], 0).await);
    assert!(diff.contains("-    return a - b\n+    return a + b"), "{diff}");

    // A dry run on the clean checkout: it applies, and nothing changes.
    let out = expect(&server, &repo, &["apply", &id, "--check"], 0).await;
    assert!(
        stdout(&out).contains("applies cleanly") && stdout(&out).contains("calc.py"),
        "{}",
        both(&out)
    );
    assert_eq!(std::fs::read_to_string(repo.join("calc.py")).unwrap(), CALC);

    // A conflicting local change: the conflict is listed, and the file keeps the local change.
    let local = "def add(a, b):\n    return b - a\n";
    std::fs::write(repo.join("calc.py"), local).unwrap();
    for args in [&["apply", &id, "--check"][..], &["apply", &id]] {
        let out = expect(&server, &repo, args, 1).await;
        let said = stdout(&out);
        assert!(said.contains("does not apply") && said.contains("calc.py"), "{}", both(&out));
        assert_eq!(std::fs::read_to_string(repo.join("calc.py")).unwrap(), local, "{args:?}");
    }
    let check = json(&expect(&server, &repo, &["apply", &id, "--check", "--json"], 1).await);
    assert_eq!(check["applies"], false);
    assert!(
        check["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("calc.py")),
        "{check}"
    );

    // The local change goes, and HEAD moves on: the diff still applies, with a note.
    git(&repo, &["checkout", "calc.py"]);
    std::fs::write(repo.join("NOTES.md"), "notes\n").unwrap();
    git(&repo, &["add", "NOTES.md"]);
    git(&repo, &["commit", "-qm", "notes"]);
    let out = expect(&server, &repo, &["apply", &id], 0).await;
    assert!(stdout(&out).contains("applied the diff of"), "{}", both(&out));
    assert!(stderr(&out).contains(&format!("was made against {}", &head[..12])), "{}", both(&out));
    assert_eq!(
        std::fs::read_to_string(repo.join("calc.py")).unwrap(),
        CALC.replace("a - b", "a + b")
    );

    // A follow-up continues the succeeded attempt; its (cumulative) diff is now the task's.
    let out =
        expect(&server, &repo, &["task", "followup", &id, "check the docstring", "--follow"], 0)
            .await;
    assert!(stdout(&out).starts_with(&format!("{id}/1\n")), "{}", both(&out));
    assert!(stdout(&out).contains("» Nothing more to change"), "{}", both(&out));
    let task = json(&expect(&server, &repo, &["task", "show", &id, "--json"], 0).await);
    assert_eq!(task["attempts"][1]["parent_id"], task["attempts"][0]["id"]);
    let followup_diff = json(&expect(&server, &repo, &["task", "diff", &id, "--json"], 0).await);
    assert_eq!(followup_diff["attempt"], task["attempts"][1]["id"]);
    assert_eq!(followup_diff["diff"], diff.as_str());
    model.verify().unwrap();
}

/// The first turn answers slowly, so a message can arrive while it is under way; it is
/// answered with a second turn instead of the attempt ending over it.
const STEERED_SCRIPT: &str = r#"
[[turns]]
delay_ms = 3000
[[turns.output]]
type = "message"
text = """
Looked around

Nothing to change yet.
"""

[[turns]]
expect.last_user_message_contains = ["use the v2 client"]
[[turns.output]]
type = "message"
text = """
Switched to the v2 client

As asked.
"""
"#;

#[tokio::test]
async fn a_message_reaches_a_running_attempt() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let model = ScriptedModel::start(Script::from_toml(STEERED_SCRIPT).unwrap()).await.unwrap();
    let options = ServeOptions {
        config: model_config(&model, "openai-responses", 30),
        workers: Some(1),
        ..Default::default()
    };
    let server = TestServer::start(root.path(), options).await;
    let created =
        json(&expect(&server, &repo, &["task", "create", "look around", "--json"], 0).await);
    let id = created["id"].as_str().unwrap().to_string();
    // The model has the first request: the attempt is inside its first turn.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while model.requests().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no model request:\n{}", server.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = expect(&server, &repo, &["task", "message", &id, "use the v2 client"], 0).await;
    assert!(stderr(&out).contains("the agent reads it at its next turn"), "{}", both(&out));
    let out = expect(&server, &repo, &["task", "logs", &id, "--follow"], 0).await;
    let log = stdout(&out);
    assert!(log.contains("» you: use the v2 client"), "{log}");
    assert!(log.contains("» Switched to the v2 client"), "{log}");
    model.verify().unwrap();
}

#[tokio::test]
async fn queued_attempts_take_messages_and_are_cancelled() {
    let root = scratch();
    let repo = make_repo(root.path());
    let server = idle_server(root.path()).await;
    let created = json(
        &expect(&server, &repo, &["task", "create", "two ways", "--attempts", "2", "--json"], 0)
            .await,
    );
    let id = created["id"].as_str().unwrap().to_string();
    let second = created["attempts"][1]["id"].as_str().unwrap().to_string();
    assert_eq!(created["attempts"][0]["state"], "queued");

    // Two unfinished attempts: a message must say which.
    let out = expect(&server, &repo, &["task", "message", &id, "hello"], 2).await;
    assert!(
        stderr(&out).starts_with("errand: ") && stderr(&out).contains(&format!("`{id}/1`")),
        "{}",
        both(&out)
    );
    let sent = json(
        &expect(
            &server,
            &repo,
            &["task", "message", &format!("{id}/1"), "please hurry", "--json"],
            0,
        )
        .await,
    );
    assert_eq!(
        (sent["text"].as_str(), sent["attempt_id"].as_str()),
        (Some("please hurry"), Some(second.as_str()))
    );

    // Cancelling one attempt (named by its id alone) leaves the other queued.
    expect(&server, &repo, &["task", "cancel", &second], 0).await;
    let task = json(&expect(&server, &repo, &["task", "show", &id, "--json"], 0).await);
    assert_eq!(task["attempts"][0]["state"], "queued");
    assert_eq!(task["attempts"][1]["state"], "cancelled");
    let out = expect(&server, &repo, &["task", "logs", &format!("{id}/1"), "--follow"], 1).await;
    assert!(stdout(&out).contains("● cancelled"), "{}", both(&out));
    let out = expect(&server, &repo, &["task", "message", &format!("{id}/1"), "too late"], 2).await;
    assert!(stderr(&out).starts_with("errand: "), "{}", both(&out));

    // Without an attempt, cancel stops them all; nothing succeeded, so there is no diff to pick.
    let task = json(&expect(&server, &repo, &["task", "cancel", &id, "--json"], 0).await);
    assert_eq!(task["state"], "cancelled");
    let out = expect(&server, &repo, &["task", "diff", &id], 2).await;
    assert!(stderr(&out).contains("none has succeeded"), "{}", both(&out));
}

#[tokio::test]
async fn failures_are_sentences_with_exit_code_2() {
    let root = scratch();
    let repo = make_repo(root.path());
    let mut server = idle_server(root.path()).await;

    let unknown = "task_0195f0a0c0c07000800000000000000a";
    let out = expect(&server, &repo, &["task", "show", unknown], 2).await;
    assert_eq!(stderr(&out).trim(), format!("errand: task {unknown} not found"));
    let out = expect(&server, &repo, &["task", "logs", "42"], 2).await;
    assert!(stderr(&out).contains("`task_…/1`"), "{}", both(&out));

    // A ref the server cannot resolve: refused, and no task is left behind.
    let out = expect(&server, &repo, &["task", "create", "p", "--ref", "no-such-branch"], 2).await;
    assert!(stderr(&out).contains("no-such-branch"), "{}", both(&out));
    let list = json(&expect(&server, &repo, &["task", "list", "--json"], 0).await);
    assert_eq!(list["tasks"], serde_json::json!([]));

    let out = server
        .client(&repo)
        .env("ERRAND_TOKEN", "not-a-token")
        .args(["task", "list"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stderr(&out).contains("ERRAND_TOKEN") && stderr(&out).contains("errand user token"),
        "{}",
        both(&out)
    );

    // Without ERRAND_TOKEN the local user's token from the data directory is used; without
    // that either, the error says where a token comes from.
    let out = server
        .client(&repo)
        .env_remove("ERRAND_TOKEN")
        .args(["task", "list"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let empty = root.path().join("elsewhere");
    let out = server
        .client(&repo)
        .env_remove("ERRAND_TOKEN")
        .env("ERRAND_DATA_DIR", &empty)
        .args(["task", "list"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr(&out).contains("no API token: set ERRAND_TOKEN"), "{}", both(&out));

    server.kill9().await;
    let out = expect(&server, &repo, &["task", "list"], 2).await;
    let expected = format!("cannot reach the Errand server at {}", server.url());
    assert!(
        stderr(&out).contains(&expected) && stderr(&out).contains("is `errand serve` running?"),
        "{}",
        both(&out)
    );
    server.restart().await;
    expect(&server, &repo, &["task", "list"], 0).await;
}

/// `task logs --follow` outlives a server crash: it reconnects to the restarted server and
/// prints the rest of the log once.
#[tokio::test]
async fn following_survives_a_server_restart() {
    let root = scratch();
    let repo = make_repo(root.path());
    let mut server = idle_server(root.path()).await;
    let created = json(&expect(&server, &repo, &["task", "create", "p", "--json"], 0).await);
    let id = created["id"].as_str().unwrap().to_string();

    let follower = server
        .client(&repo)
        .args(["task", "logs", &id, "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The follower is on the stream before the crash.
    let metrics = format!("{}/metrics", server.url());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !reqwest::get(&metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("\nerrand_sse_clients 1")
    {
        assert!(tokio::time::Instant::now() < deadline, "the follower never connected");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill9().await;
    server.restart().await;
    expect(&server, &repo, &["task", "cancel", &id], 0).await;

    let out =
        tokio::time::timeout(std::time::Duration::from_secs(120), follower.wait_with_output())
            .await
            .expect("the follower did not finish")
            .unwrap();
    assert_eq!(out.status.code(), Some(1), "cancelled is not success\n{}", both(&out));
    let events: Vec<Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["state_changed", "finished"], "{}", both(&out));
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[1]["seq"], 2);
}

#[tokio::test]
async fn a_task_on_a_repository_url_runs_from_the_servers_mirror() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    // The remote: a bare clone, named by URL; the server mirrors it under its data dir.
    git(root.path(), &["clone", "-q", "--bare", repo.to_str().unwrap(), "remote.git"]);
    let url = format!("file://{}", root.path().join("remote.git").display());
    let model = ScriptedModel::start(Script::from_toml(FIX_SCRIPT).unwrap()).await.unwrap();
    let options = ServeOptions {
        config: model_config(&model, "openai-responses", 30),
        workers: Some(1),
        ..Default::default()
    };
    let server = TestServer::start(root.path(), options).await;
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();

    let out = expect(
        &server,
        &elsewhere,
        &["task", "create", "fix the failing test", "--repo", &url, "--ref", "main", "--follow"],
        0,
    )
    .await;
    let id = stdout(&out).lines().next().unwrap().to_string();
    let task = json(&expect(&server, &elsewhere, &["task", "show", &id, "--json"], 0).await);
    assert_eq!(task["repository"], url.as_str());
    assert_eq!(task["state"], "succeeded");
    let mirrors = server.data_dir().join("mirrors");
    assert_eq!(
        std::fs::read_dir(&mirrors)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "git"))
            .count(),
        1,
        "one mirror"
    );
    // The diff applies to a clone of the remote.
    let diff = stdout(&expect(&server, &elsewhere, &["task", "diff", &id], 0).await);
    assert!(diff.contains("+    return a + b"), "{diff}");
}

#[tokio::test]
async fn task_pull_makes_the_attempt_a_local_branch() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let base = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    let model = ScriptedModel::start(Script::from_toml(FIX_SCRIPT).unwrap()).await.unwrap();
    let options = ServeOptions {
        config: model_config(&model, "openai-responses", 30),
        workers: Some(1),
        ..Default::default()
    };
    let server = TestServer::start(root.path(), options).await;
    let out =
        expect(&server, &repo, &["task", "create", "fix the failing test", "--follow"], 0).await;
    let id = stdout(&out).lines().next().unwrap().to_string();

    let out = expect(&server, &repo, &["task", "pull", &id], 0).await;
    let branch = format!("errand/{id}");
    assert!(stdout(&out).contains(&format!("is now branch {branch}")), "{}", both(&out));
    assert_eq!(git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), branch, "checked out");
    assert_eq!(git(&repo, &["rev-parse", "HEAD^"]).trim(), base, "one commit on the base");
    assert!(std::fs::read_to_string(repo.join("calc.py")).unwrap().contains("return a + b"));
    let message = git(&repo, &["log", "-1", "--format=%B"]);
    assert!(message.starts_with("Make add() add instead of subtract\n"), "{message}");
    let commit = git(&repo, &["rev-parse", "HEAD"]);

    // Pulling again is a no-op; another branch name with a dirty work tree is made, not
    // checked out; an existing branch elsewhere is not moved without --force.
    expect(&server, &repo, &["task", "pull", &id], 0).await;
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), commit);
    git(&repo, &["switch", "-q", "main"]);
    std::fs::write(repo.join("notes.txt"), "mine\n").unwrap();
    let out = expect(&server, &repo, &["task", "pull", &id, "--branch", "review/fix"], 0).await;
    assert!(stderr(&out).contains("git switch review/fix"), "{}", both(&out));
    assert_eq!(git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
    assert!(repo.join("notes.txt").exists());
    let out = expect(&server, &repo, &["task", "pull", &id, "--branch", "main"], 2).await;
    assert!(stderr(&out).contains("exists and points elsewhere"), "{}", both(&out));
    assert_eq!(git(&repo, &["rev-parse", "main"]).trim(), base, "main did not move");
}

#[tokio::test]
async fn three_attempts_are_ranked_by_their_finish_checks_and_the_size_of_their_change() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    std::fs::write(
        repo.join("AGENTS.md"),
        "Run the tests with `python3 -m unittest -v`.\n\n## Checks\n- `python3 -m unittest`\n",
    )
    .unwrap();
    git(&repo, &["commit", "-qam", "finish checks"]);
    // One worker slot: the attempts run one after the other, taking the turns in order. The
    // first claims success without a fix (the gate fails it), the second fixes with extra
    // lines, the third fixes with one line.
    let script = r#"
[[turns]]
[[turns.output]]
type = "message"
text = "Nothing to do\n\nIt works."

[[turns]]
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: calc.py
 def add(a, b):
-    return a - b
+    # Add the two numbers.
+    # (They used to be subtracted.)
+    total = a + b
+    return total
*** End Patch
"""

[[turns]]
[[turns.output]]
type = "message"
text = "Make add() add, verbosely\n\nadd() adds."

[[turns]]
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: calc.py
 def add(a, b):
-    return a - b
+    return a + b
*** End Patch
"""

[[turns]]
[[turns.output]]
type = "message"
text = "Make add() add\n\nadd() adds."
"#;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let config = format!(
        "{}\n[agent]\nfinish_check_rounds = 0\n",
        model_config(&model, "openai-responses", 30)
    );
    let options = ServeOptions { config, workers: Some(1), ..Default::default() };
    let server = TestServer::start(root.path(), options).await;
    let out =
        expect(&server, &repo, &["task", "create", "fix the failing test", "--attempts", "3"], 0)
            .await;
    let id = stdout(&out).lines().next().unwrap().to_string();
    for index in 0..3 {
        expect(
            &server,
            &repo,
            &["task", "logs", &format!("{id}/{index}"), "--follow"],
            if index == 0 { 1 } else { 0 },
        )
        .await;
    }
    let task = json(&expect(&server, &repo, &["task", "show", &id, "--json"], 0).await);
    let ranked: Vec<u64> = task["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let attempt = r["attempt_id"].as_str().unwrap();
            task["attempts"].as_array().unwrap().iter().find(|a| a["id"] == attempt).unwrap()["index"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(ranked, [2, 1, 0], "{task}");
    assert!(
        task["ranking"][2]["why"]
            .as_str()
            .unwrap()
            .starts_with("did not succeed · 0/1 checks passed"),
        "{task}"
    );
    let shown = stdout(&expect(&server, &repo, &["task", "show", &id], 0).await);
    let attempt_lines: Vec<&str> = shown
        .lines()
        .filter(|l| l.split("  ").nth(1).is_some_and(|w| w.starts_with("att_")))
        .collect();
    let order: Vec<&str> = attempt_lines.iter().map(|l| l.split("  ").next().unwrap()).collect();
    assert_eq!(order, ["2", "1", "0"], "best first: {shown}");
    assert!(shown.contains("rank 1 (best): succeeded · 1/1 checks passed"), "{shown}");
}
