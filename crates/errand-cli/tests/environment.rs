//! `errand exec --env FILE` end to end: setup runs once with the secret (redacted in every
//! output), the agent starts from its snapshot without it, the second run reuses the snapshot
//! and runs maintenance, and a failing setup stops the attempt with its tail.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::path::Path;
use std::process::Output;

use common::{both, git, json_lines, make_repo, sandbox_available, scratch};
use errand_testkit::{Script, ScriptedModel};

const AGENT_SCRIPT: &str = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["bash", "-c", "hello; cat ~/.cache/x generated.txt; env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo agent > agent.txt"] }

[[turns]]
expect.last_tool_output_contains = ["hello from setup", "cached", "generated", "PLAIN=visible"]
[[turns.output]]
type = "message"
text = "Wrote agent.txt\n\nThe environment was ready."
"#;

const ENVIRONMENT: &str = r#"
setup_script = """
echo "setup sees $TOKEN"
printf '#!/bin/sh\necho hello from setup\n' > /usr/local/bin/hello
chmod +x /usr/local/bin/hello
mkdir -p ~/.cache && echo cached > ~/.cache/x
echo generated > generated.txt
"""
maintenance_script = "echo maintenance-ran"
[env]
PLAIN = "visible"
[secrets]
TOKEN = { env = "E2E_SECRET_TOKEN" }
"#;

async fn run(
    root: &Path,
    repo: &Path,
    model: &ScriptedModel,
    args: &[&str],
    secret: &str,
) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(args)
        .current_dir(repo)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", root)
        .env("ERRAND_MODEL_BASE_URL", model.base_url())
        .env("ERRAND_MODEL", "scripted")
        .env("OPENAI_API_KEY", "test-key")
        .env("ERRAND_DATA_DIR", root.join("data"))
        .env("E2E_SECRET_TOKEN", secret)
        .output()
        .await
        .unwrap()
}

fn stored_files_containing(root: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().flatten().map(|e| e.path()));
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn exec_with_an_environment_sets_up_once_and_keeps_the_secret_out() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let env_file = root.path().join("env.toml");
    std::fs::write(&env_file, ENVIRONMENT).unwrap();
    let secret = format!("e2e-secret-{}", std::process::id());
    let env_arg = env_file.to_str().unwrap();

    let model = ScriptedModel::start(Script::from_toml(AGENT_SCRIPT).unwrap()).await.unwrap();
    let out =
        run(root.path(), &repo, &model, &["exec", "--json", "--env", env_arg, "go"], &secret).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    model.verify().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(&secret), "the secret is in the --json output");
    let events = json_lines(&out);
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    let at =
        |t: &str| types.iter().position(|x| *x == t).unwrap_or_else(|| panic!("no {t}: {types:?}"));
    assert!(at("setup_started") < at("setup_finished"));
    assert!(at("snapshot_ready") < at("sandbox_ready"));
    let setup_text: String = events
        .iter()
        .filter(|e| e["type"] == "setup_output")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(setup_text.contains("setup sees [secret:TOKEN]"), "{setup_text}");
    let result = events.last().unwrap();
    let patch = result["patch"].as_str().unwrap();
    assert!(patch.contains("agent.txt") && !patch.contains("generated.txt"), "{patch}");
    // What the model saw of the agent phase's environment holds no secret either.
    for request in model.requests() {
        assert!(!request.to_string().contains(&secret));
    }

    // The second run reuses the snapshot: maintenance runs, setup does not.
    let model = ScriptedModel::start(Script::from_toml(AGENT_SCRIPT).unwrap()).await.unwrap();
    let out = run(root.path(), &repo, &model, &["exec", "--env", env_arg, "go"], &secret).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("● maintenance … (snapshot "), "{stderr}");
    assert!(stderr.contains("reused (maintenance ran)"), "{stderr}");
    assert!(!stderr.contains("setup sees"), "{stderr}");
    assert!(!stderr.contains(&secret));

    let leaks = stored_files_containing(&root.path().join("data"), secret.as_bytes());
    assert!(leaks.is_empty(), "the secret was stored in {leaks:?}");
}

#[tokio::test]
async fn a_failing_setup_stops_exec_with_its_status_and_tail() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let env_file = root.path().join("env.toml");
    std::fs::write(
        &env_file,
        "setup_script = \"echo installing; echo \\\"npm ERR! $TOKEN rejected\\\" >&2; exit 7\"\n\
         [secrets]\nTOKEN = { env = \"E2E_SECRET_TOKEN\" }\n",
    )
    .unwrap();
    let model = ScriptedModel::start(Script::from_toml("turns = []").unwrap()).await.unwrap();
    let secret = "failing-secret-value";
    let out = run(
        root.path(),
        &repo,
        &model,
        &["exec", "--env", env_file.to_str().unwrap(), "go"],
        secret,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("✗ setup script exited 7 after"), "{stderr}");
    assert!(stderr.contains("npm ERR! [secret:TOKEN] rejected"), "{stderr}");
    assert!(!stderr.contains(secret));
    assert!(model.requests().is_empty(), "the agent must not start");
    let snapshots = root.path().join("data/snapshots");
    let left: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".lock-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = git(&repo, &["status"]);
}

/// An environment with variables but no scripts has no snapshot to carry them: they still reach
/// every command of the agent.
#[tokio::test]
async fn an_environment_without_scripts_still_gives_its_variables() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let env_file = root.path().join("env.toml");
    std::fs::write(&env_file, "[env]\nGREETING = \"hello-from-env\"\n").unwrap();
    let script = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["sh", "-c", "echo greeting=$GREETING"] }

[[turns]]
expect.last_tool_output_contains = ["greeting=hello-from-env"]
[[turns.output]]
type = "message"
text = "Checked\n\nThe variable was set."
"#;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let args = ["exec", "--json", "--env", env_file.to_str().unwrap(), "check the variable"];
    let out = run(root.path(), &repo, &model, &args, "unused-secret").await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    model.verify().unwrap();
    assert!(json_lines(&out).iter().all(|e| e["type"] != "setup_started"), "{}", both(&out));
}
