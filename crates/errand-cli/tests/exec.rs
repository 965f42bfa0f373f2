//! End to end through the real `errand` binary: a repository with a failing test, the scripted
//! model speaking the Responses protocol on loopback, real bubblewrap and overlays.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::path::Path;
use std::process::Output;

use common::{CALC, both, git, json_lines, make_repo, sandbox_available, scratch};
use errand_testkit::{Script, ScriptedModel};

async fn run_errand(root: &Path, repo: &Path, model: &ScriptedModel, args: &[&str]) -> Output {
    run_errand_with(root, repo, model, args, &[]).await
}

/// `run_errand` with extra environment variables.
async fn run_errand_with(
    root: &Path,
    repo: &Path,
    model: &ScriptedModel,
    args: &[&str],
    env: &[(&str, &str)],
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
        .env("ERRAND_MODEL_MAX_RETRIES", "1")
        .env("ERRAND_MODEL_RETRY_BASE_DELAY_MS", "10")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

/// The whole happy path. Event seqs up to the first command are fixed (preparing 1, sandbox 2,
/// running 3, instructions 4, turn 5, usage 6), so the first command's log is `log:7`.
const FIX_SCRIPT: &str = r#"
[[turns]]
expect.request_contains = ["Run the tests with `python3 -m unittest -v`.", "fix the failing test"]
expect.tools = ["shell", "apply_patch", "update_plan"]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["python3", "-m", "unittest", "-v"] }

[[turns]]
expect.last_tool_output_contains = ["Exit code: 1", "Log: log:7", "AssertionError: -1 != 5"]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "calc.py"] }
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "test_calc.py"] }

[[turns]]
expect.request_contains = ["return a - b", "self.assertEqual(add(2, 3), 5)"]
expect.last_tool_output_contains = ["self.assertEqual(add(2, 3), 5)"]
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

`add` returned `a - b` (calc.py:L1-L2). Before the fix the test failed (log:7#L1-L3).
The old code was at nowhere.py:L1 and the log went to log:7#L1-L900.
"""
"#;

#[tokio::test]
async fn exec_fixes_a_failing_test_end_to_end() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let model = ScriptedModel::start(Script::from_toml(FIX_SCRIPT).unwrap()).await.unwrap();
    let patch_file = root.path().join("fix.patch");
    let out = run_errand(
        root.path(),
        &repo,
        &model,
        &["exec", "--json", "--output-patch", patch_file.to_str().unwrap(), "fix the failing test"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    model.verify().unwrap();

    // Turn 2 made two calls at once; both ran, in order, and come back as the model made
    // them (both calls), then their results in the same order.
    let requests = model.requests();
    assert_eq!(requests[0]["parallel_tool_calls"], true);
    let input = requests[2]["input"].as_array().unwrap();
    let tail: Vec<(&str, &str)> = input[input.len() - 4..]
        .iter()
        .map(|i| (i["type"].as_str().unwrap(), i["call_id"].as_str().unwrap()))
        .collect();
    assert_eq!(tail[0].0, "function_call");
    assert_eq!(tail[1].0, "function_call");
    assert_eq!(tail[2], ("function_call_output", tail[0].1));
    assert_eq!(tail[3], ("function_call_output", tail[1].1));
    assert_ne!(tail[0].1, tail[1].1);

    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let result = lines.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["state"], "succeeded");
    let first_command = lines.iter().find(|e| e["type"] == "command_started").unwrap();
    assert_eq!(first_command["seq"], 7);

    // The diff: exactly the fix, and it applies to the base.
    let patch = std::fs::read_to_string(&patch_file).unwrap();
    assert_eq!(patch, result["patch"].as_str().unwrap());
    assert!(patch.contains("-    return a - b\n+    return a + b\n"), "{patch}");
    assert!(!patch.contains("__pycache__"), "ignored build output leaked into the diff:\n{patch}");
    let files: Vec<&str> = patch.lines().filter(|l| l.starts_with("diff --git")).collect();
    assert_eq!(files, ["diff --git a/calc.py b/calc.py"]);

    // The report: title, two true citations, two flagged, checks from exit codes.
    let report = &result["report"];
    assert_eq!(report["title"], "Make add() add instead of subtract");
    let citations = report["citations"].as_array().unwrap();
    let verdict: Vec<(String, bool)> = citations
        .iter()
        .map(|c| (c["raw"].as_str().unwrap().to_string(), c.get("problem").is_none()))
        .collect();
    assert_eq!(
        verdict,
        [
            ("calc.py:L1-L2".to_string(), true),
            ("log:7#L1-L3".to_string(), true),
            ("nowhere.py:L1".to_string(), false),
            ("log:7#L1-L900".to_string(), false),
        ]
    );
    assert_eq!(citations[0]["excerpt"], "def add(a, b):\n    return a + b");
    assert_eq!(citations[0]["in_diff"], true);
    let description = report["description"].as_str().unwrap();
    assert!(
        description.contains("nowhere.py:L1 [unverified: no such file in the final tree]"),
        "{description}"
    );
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0]["command"], "python3 -m unittest -v");
    assert_eq!(checks[0]["passed"], true);

    // The user's repository is untouched.
    assert_eq!(std::fs::read_to_string(repo.join("calc.py")).unwrap(), CALC);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    git(&repo, &["apply", "--check", patch_file.to_str().unwrap()]);
}

#[tokio::test]
async fn exec_apply_changes_the_working_tree_only_when_asked() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let script = r#"
[[turns]]
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: calc.py
-    return a - b
+    return a + b
*** End Patch
"""
[[turns]]
[[turns.output]]
type = "message"
text = "Fix add"
"#;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let out = run_errand(root.path(), &repo, &model, &["exec", "--apply", "fix it"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("✎ patch applied: M calc.py"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("\n# Fix add"));
    assert_eq!(
        std::fs::read_to_string(repo.join("calc.py")).unwrap(),
        "def add(a, b):\n    return a + b\n"
    );
}

#[tokio::test]
async fn a_patch_that_does_not_apply_reaches_the_model_and_a_broken_script_fails_clearly() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let script = r#"
[[turns]]
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: calc.py
-    return a * b
+    return a + b
*** End Patch
"""
[[turns]]
expect.last_tool_output_contains = ["Success"]
[[turns.output]]
type = "message"
text = "Done"
"#;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let out = run_errand(root.path(), &repo, &model, &["exec", "fix it"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The engine's error, naming the file and the line, is what the model saw...
    assert!(stderr.contains("✎ patch failed"), "{stderr}");
    assert!(stderr.contains("calc.py") && stderr.contains("return a * b"), "{stderr}");
    // ...and the scripted model's complaint names the turn.
    assert!(stderr.contains("turn 2"), "{stderr}");
    assert!(stderr.contains("reason: the model request failed"), "{stderr}");
    assert!(model.verify().is_err());
    assert_eq!(std::fs::read_to_string(repo.join("calc.py")).unwrap(), CALC);
}

const UNUSED: &str = "[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"unused\"\n";

#[tokio::test]
async fn exec_outside_a_repository_says_so() {
    let root = scratch();
    let model = ScriptedModel::start(Script::from_toml(UNUSED).unwrap()).await.unwrap();
    let out = run_errand(root.path(), root.path(), &model, &["exec", "anything"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("runs inside a git repository"), "{stderr}");
}

/// A hostile repository: a committed symlink pointing at a secret on the host. The agent reads it
/// and cites it; neither the secret nor the host file leaks, and the citation is flagged.
#[tokio::test]
async fn a_symlink_in_the_repository_does_not_reach_host_files() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let secret_file = root.path().join("host-secret.txt");
    let secret = format!("secret-{}", std::process::id());
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    std::os::unix::fs::symlink(&secret_file, repo.join("leak")).unwrap();
    git(&repo, &["add", "leak"]);
    git(&repo, &["commit", "-qm", "a link out"]);
    let script = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "leak"] }
[[turns]]
expect.last_tool_output_contains = ["No such file or directory"]
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: leak
-x
+y
*** End Patch
"""
[[turns]]
[[turns.output]]
type = "message"
text = "Read it\n\nThe secret is at leak:L1."
"#;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let out = run_errand(root.path(), &repo, &model, &["exec", "--json", "read the link"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    model.verify().unwrap();
    assert!(!stdout.contains(&secret), "the host secret leaked:\n{stdout}");
    for body in model.requests() {
        assert!(!body.to_string().contains(&secret), "the host secret reached the model");
    }
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["report"]["citations"][0]["raw"], "leak:L1");
    assert!(result["report"]["citations"][0].get("problem").is_some(), "{result}");
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), format!("{secret}\n"));
}

/// `errand apply-patch` as a person uses it: in the current directory, clear errors, and a
/// refused path changes nothing.
#[test]
fn apply_patch_command_applies_and_refuses_clearly() {
    let root = scratch();
    let dir = root.path().join("work");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "one\ntwo\n").unwrap();
    let run = |patch: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_errand"))
            .arg("apply-patch")
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(patch.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = run(
        "*** Begin Patch\n*** Update File: a.txt\n one\n-two\n+2\n*** Add File: b.txt\n+new\n*** End Patch\n",
    );
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "Success. Updated the following files:\nM a.txt\nA b.txt\n"
    );
    assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), "one\n2\n");

    let bad = run("*** Begin Patch\n*** Update File: a.txt\n-three\n+3\n*** End Patch\n");
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.starts_with("apply-patch: ") && stderr.contains("a.txt") && stderr.contains("three"),
        "{stderr}"
    );

    let escape = run("*** Begin Patch\n*** Add File: ../outside.txt\n+x\n*** End Patch\n");
    assert_eq!(escape.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&escape.stderr).contains("outside"),
        "{}",
        String::from_utf8_lossy(&escape.stderr)
    );
    assert!(!root.path().join("outside.txt").exists());
}

/// The same fix over an OpenAI-compatible Chat Completions server (vLLM, llama.cpp, Ollama):
/// `apply_patch` travels as a function with one `input` string and comes back as a patch.
#[tokio::test]
async fn exec_fixes_a_failing_test_over_chat_completions() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let model = ScriptedModel::start(Script::from_toml(FIX_SCRIPT).unwrap()).await.unwrap();
    let env = [("ERRAND_MODEL_PROVIDER", "chat-completions")];
    let args = ["exec", "--json", "fix the failing test"];
    let out = run_errand_with(root.path(), &repo, &model, &args, &env).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    model.verify().unwrap();
    let requests = model.requests();
    assert_eq!(requests[0]["messages"][0]["role"], "system");
    assert!(
        requests.iter().all(|r| r.get("input").is_none()),
        "Responses fields in a chat request"
    );
    // Turn 2's two calls replay as the one assistant message the model sent, then both results.
    let messages = requests[2]["messages"].as_array().unwrap();
    let tail: Vec<&str> =
        messages[messages.len() - 3..].iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(tail, ["assistant", "tool", "tool"]);
    assert_eq!(messages[messages.len() - 3]["tool_calls"].as_array().unwrap().len(), 2);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(result["patch"].as_str().unwrap().contains("+    return a + b\n"), "{result}");
    assert_eq!(result["report"]["checks"][0]["passed"], true);
}

/// The same fix over Anthropic's Messages API: the key travels as `x-api-key` from
/// `ANTHROPIC_API_KEY`, `apply_patch` as a tool with one `input` string, and every request keeps
/// the roles alternating with each tool result right after its call.
#[tokio::test]
async fn exec_fixes_a_failing_test_over_anthropic_messages() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let model = ScriptedModel::start(Script::from_toml(FIX_SCRIPT).unwrap()).await.unwrap();
    let env = [("ERRAND_MODEL_PROVIDER", "anthropic"), ("ANTHROPIC_API_KEY", "sk-ant-e2e")];
    let args = ["exec", "--json", "fix the failing test"];
    let out = run_errand_with(root.path(), &repo, &model, &args, &env).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    model.verify().unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), 5);
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(model.request_header(i, "x-api-key").as_deref(), Some("sk-ant-e2e"));
        assert_eq!(model.request_header(i, "anthropic-version").as_deref(), Some("2023-06-01"));
        assert!(request.get("input").is_none(), "Responses fields in a Messages request");
        assert!(request["max_tokens"].as_u64().unwrap() > 0);
        let roles: Vec<&str> = request["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles.len(), 2 * i + 1, "request {i}: {roles:?}");
        assert!(roles.iter().enumerate().all(|(k, r)| *r == ["user", "assistant"][k % 2]));
    }
    // The AGENTS.md chain is part of the cached system prompt.
    let system = requests[0]["system"].to_string();
    assert!(system.contains("Run the tests with `python3 -m unittest -v`."), "{system}");
    let patch_call = &requests[3]["messages"][5]["content"][0];
    assert_eq!(patch_call["type"], "tool_use");
    assert_eq!(patch_call["name"], "apply_patch");
    assert!(patch_call["input"]["input"].as_str().unwrap().starts_with("*** Begin Patch"));
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(result["patch"].as_str().unwrap().contains("+    return a + b\n"), "{result}");
    assert_eq!(result["report"]["checks"][0]["passed"], true);
}

/// What `errand exec --json` printed for one run on a fresh repository.
struct JsonRun {
    _root: tempfile::TempDir,
    model: ScriptedModel,
    out: Output,
    lines: Vec<serde_json::Value>,
}

/// `errand exec --json PROMPT` in a fresh copy of the test repository, against `script`, with
/// extra environment variables.
async fn exec_json(script: &str, env: &[(&str, &str)], prompt: &str) -> JsonRun {
    let root = scratch();
    let repo = make_repo(root.path());
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let out = run_errand_with(root.path(), &repo, &model, &["exec", "--json", prompt], env).await;
    let lines = json_lines(&out);
    JsonRun { _root: root, model, out, lines }
}

/// A long run through the real binary: with a small context window, the conversation is
/// compacted before it reaches the endpoint's limit, and the next request carries the model's
/// summary, the task and the AGENTS.md chain but not the summarised turn.
const COMPACT_SCRIPT: &str = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["bash", "-lc", "cat test_calc.py; seq 1 300"] }

[[turns]]
expect.last_user_message_contains = ["about to be compacted", "log citation"]
expect.request_contains = ["class AddTest"]
[[turns.output]]
type = "message"
text = "Progress: read test_calc.py (log:7#L1-L3); add() must return a + b."

[[turns]]
expect.request_contains = [
    "<summary>",
    "read test_calc.py (log:7#L1-L3)",
    "fix the failing test",
    "Run the tests with `python3 -m unittest -v`.",
]
[[turns.output]]
type = "message"
text = "Explain the failure\n\nadd() subtracts; the test expects 5 (log:7#L8-L8)."
"#;

#[tokio::test]
async fn a_long_run_is_compacted_before_the_context_window_fills() {
    if !sandbox_available() {
        return;
    }
    let env = [("ERRAND_MODEL_CONTEXT_WINDOW", "1000")];
    let JsonRun { model, out, lines, .. } =
        exec_json(COMPACT_SCRIPT, &env, "fix the failing test").await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    model.verify().unwrap();
    let compacted: Vec<&serde_json::Value> =
        lines.iter().filter(|e| e["type"] == "context_compacted").collect();
    assert_eq!(compacted.len(), 1, "{}", both(&out));
    assert_eq!(compacted[0]["trigger"], "auto");
    assert_eq!(compacted[0]["turns_summarized"], 1);
    assert!(compacted[0]["summary"].as_str().unwrap().starts_with("Progress: read test_calc.py"));
    // What the model saw after the compaction: not the summarised turn's call or output.
    let after = model.requests()[2].to_string();
    assert!(!after.contains("class AddTest"), "{after}");
    assert!(!after.contains("function_call"), "{after}");
    // Citations made before the compaction still resolve against the log.
    let result = lines.last().unwrap();
    let citations = result["report"]["citations"].as_array().unwrap();
    assert_eq!(citations[0]["raw"], "log:7#L8-L8");
    assert!(citations[0].get("problem").is_none(), "{citations:?}");
}

/// A token budget holds to the turn through the real binary: the turn that crosses it is the
/// last, its tool call is not run, and the attempt fails with the reason.
const BUDGET_SCRIPT: &str = r#"
[[turns]]
usage = { input_tokens = 600, output_tokens = 100 }
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["cat", "calc.py"] }

[[turns]]
usage = { input_tokens = 700, output_tokens = 100 }
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["touch", "over-budget"] }

[[turns]]
[[turns.output]]
type = "message"
text = "never reached"
"#;

#[tokio::test]
async fn a_token_budget_stops_the_attempt_at_the_turn_that_crosses_it() {
    if !sandbox_available() {
        return;
    }
    let env = [("ERRAND_TOKEN_BUDGET", "1000")];
    let JsonRun { model, out, lines, .. } =
        exec_json(BUDGET_SCRIPT, &env, "fix the failing test").await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert_eq!(model.requests().len(), 2, "no request after the budget ran out");
    let limit = lines.iter().find(|e| e["type"] == "limit_reached").expect("a limit_reached event");
    assert_eq!(limit["limit"], "token_budget");
    let commands: Vec<&serde_json::Value> =
        lines.iter().filter(|e| e["type"] == "command_started").collect();
    assert_eq!(commands.len(), 1, "the crossing turn's call must not run");
    let result = lines.last().unwrap();
    assert_eq!(result["state"], "failed");
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.contains("1500 tokens in 2 turns, over its budget of 1000"), "{reason}");
    assert!(result["patch"].as_str().unwrap_or("").is_empty(), "{result}");
}

/// The configured sandbox limits reach the attempt, and one that bites is in the log and in
/// what the model is told.
const MEMORY_SCRIPT: &str = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["python3", "-c", "b = bytearray(768 << 20); b[::4096] = b'x' * len(b[::4096]); print('allocated')"] }

[[turns]]
expect.last_tool_output_contains = ["memory"]
[[turns.output]]
type = "message"
text = "Report the limit\n\nThe allocation was stopped by the sandbox's memory limit."
"#;

#[tokio::test]
async fn configured_sandbox_limits_apply_and_a_hit_is_reported() {
    if !sandbox_available() {
        return;
    }
    let env = [("ERRAND_SANDBOX_MEMORY_MB", "256"), ("ERRAND_SANDBOX_PIDS", "100")];
    let JsonRun { model, out, lines, .. } = exec_json(MEMORY_SCRIPT, &env, "allocate a lot").await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    model.verify().unwrap();
    let ready = lines.iter().find(|e| e["type"] == "sandbox_ready").unwrap();
    let isolation = ready["isolation"].to_string();
    assert!(isolation.contains("pids 100"), "{isolation}");
    assert!(isolation.contains("256"), "{isolation}");
    let finished = lines.iter().find(|e| e["type"] == "command_finished").unwrap();
    assert_ne!(finished["exit_code"], 0, "{finished}");
    let limit = lines.iter().find(|e| e["type"] == "limit_reached").expect("a limit_reached event");
    assert_eq!(limit["limit"], "memory", "{limit}");
    let printed = lines.iter().filter(|e| e["type"] == "command_output");
    assert!(
        printed.clone().all(|e| !e["text"].as_str().unwrap().contains("allocated")),
        "the allocation must not succeed: {:?}",
        printed.collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn exec_ci_writes_the_patch_report_and_log_and_exits_by_the_checks() {
    if !sandbox_available() {
        return;
    }
    // The whole fix: the last test run passes, exit 0, the files a CI job keeps.
    let root = scratch();
    let repo = make_repo(root.path());
    let model = ScriptedModel::start(Script::from_toml(FIX_SCRIPT).unwrap()).await.unwrap();
    let out_dir = root.path().join("ci-out");
    let summary = root.path().join("summary.md");
    let summary_env = summary.display().to_string();
    let out = run_errand_with(
        root.path(),
        &repo,
        &model,
        &["exec", "--ci", out_dir.to_str().unwrap(), "fix the failing test"],
        &[("GITHUB_STEP_SUMMARY", &summary_env)],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let patch = std::fs::read_to_string(out_dir.join("errand.patch")).unwrap();
    assert!(patch.contains("+    return a + b"), "{patch}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("result.json")).unwrap())
            .unwrap();
    assert_eq!(result["state"], "succeeded");
    assert_eq!(result["exit_status"], 0);
    assert!(result["checks_passed"].as_u64().unwrap() >= 1, "{result}");
    let log = std::fs::read_to_string(out_dir.join("log.jsonl")).unwrap();
    assert!(log.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    assert!(log.contains("\"type\":\"finished\""));
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(std::fs::read_to_string(&summary).unwrap().contains(report.lines().next().unwrap()));
    // The patch applies to the CI checkout.
    common::git(&repo, &["apply", "--check", out_dir.join("errand.patch").to_str().unwrap()]);

    // A model that stops with the tests still failing: the attempt "succeeded", its check did
    // not, and CI hears 3.
    let root = scratch();
    let repo = make_repo(root.path());
    let script = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["python3", "-m", "unittest", "-v"] }
[[turns]]
[[turns.output]]
type = "message"
text = "Looked into it\n\nThe test fails; I did not fix it."
"#;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let out_dir = root.path().join("ci-out");
    let out = run_errand(
        root.path(),
        &repo,
        &model,
        &["exec", "--ci", out_dir.to_str().unwrap(), "look"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("result.json")).unwrap())
            .unwrap();
    assert_eq!(result["checks_failed"], 1, "{result}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("errand.patch")).unwrap(),
        "",
        "nothing changed"
    );
}

/// The repository of `make_repo` with AGENTS.md naming the test suite as a finish check.
fn repo_with_finish_check(root: &Path) -> std::path::PathBuf {
    let repo = make_repo(root);
    std::fs::write(
        repo.join("AGENTS.md"),
        "Run the tests with `python3 -m unittest -v`.\n\n## Checks\n- `python3 -m unittest`\n",
    )
    .unwrap();
    git(&repo, &["commit", "-qam", "finish checks"]);
    repo
}

#[tokio::test]
async fn the_finish_gate_sends_a_failing_check_back_and_accepts_the_fix() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = repo_with_finish_check(root.path());
    // The model claims it is done without fixing anything; the gate says otherwise; it fixes.
    let script = r#"
[[turns]]
[[turns.output]]
type = "message"
text = "All good\n\nThe tests pass."

[[turns]]
expect.last_user_message_contains = ["finish checks", "python3 -m unittest", "AssertionError"]
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: calc.py
-    return a - b
+    return a + b
*** End Patch
"""

[[turns]]
[[turns.output]]
type = "message"
text = "Make add() add\n\nThe finish checks failed first; add() now adds."
"#;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let out = run_errand(root.path(), &repo, &model, &["exec", "--json", "fix it"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let lines = json_lines(&out);
    let gates: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["type"] == "finish_checks").collect();
    assert_eq!(gates.len(), 2, "{lines:?}");
    assert_eq!(
        (gates[0]["passed"].as_bool(), gates[0]["rounds_left"].as_u64()),
        (Some(false), Some(2))
    );
    assert_eq!(gates[0]["failed"], serde_json::json!(["python3 -m unittest"]));
    assert_eq!(gates[1]["passed"], true);
    let result = lines.last().unwrap();
    assert_eq!(result["state"], "succeeded");
    let checks = result["report"]["checks"].as_array().unwrap();
    let gate =
        checks.iter().find(|c| c["command"] == "python3 -m unittest").expect("the gate's check");
    assert_eq!(gate["passed"], true, "the last run counts: {checks:?}");
}

#[tokio::test]
async fn a_finish_gate_that_keeps_failing_ends_the_attempt_failed_with_its_report() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = repo_with_finish_check(root.path());
    let script = r#"
[[turns]]
[[turns.output]]
type = "message"
text = "Done\n\nNothing to change."

[[turns]]
[[turns.output]]
type = "message"
text = "Still done\n\nI insist."
"#;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let out = run_errand_with(
        root.path(),
        &repo,
        &model,
        &["exec", "--json", "fix it"],
        &[("ERRAND_FINISH_CHECK_ROUNDS", "1")],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let lines = json_lines(&out);
    let result = lines.last().unwrap();
    assert_eq!(result["state"], "failed");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .contains("the finish checks still fail: python3 -m unittest"),
        "{result}"
    );
    assert_eq!(result["report"]["title"], "Still done", "the report is kept");
    let checks = result["report"]["checks"].as_array().unwrap();
    assert!(
        checks.iter().any(|c| c["command"] == "python3 -m unittest" && c["passed"] == false),
        "{checks:?}"
    );
}

#[tokio::test]
async fn a_report_with_false_citations_and_a_false_claim_is_verified_not_trusted() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    // The tests fail (log:7), and the model says otherwise, with two true and two false citations.
    let script = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["python3", "-m", "unittest", "-v"] }

[[turns]]
[[turns.output]]
type = "message"
text = """
Explain add()

add subtracts (calc.py:L1-L2) and the test expects a sum (test_calc.py:L7-L8).
The helper lives in helpers.py:L1-L3 and the loop in calc.py:L40-L50.
All tests pass.
"""
"#;
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let out_dir = root.path().join("ci");
    let out = run_errand(
        root.path(),
        &repo,
        &model,
        &["exec", "--json", "--ci", out_dir.to_str().unwrap(), "explain add"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "succeeded, but its check failed: {}", both(&out));
    let lines = json_lines(&out);
    let report = &lines.last().unwrap()["report"];
    let citations = report["citations"].as_array().unwrap();
    let problems: Vec<(&str, Option<&str>)> = citations
        .iter()
        .map(|c| (c["raw"].as_str().unwrap(), c["problem"]["problem"].as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            ("calc.py:L1-L2", None),
            ("test_calc.py:L7-L8", None),
            ("helpers.py:L1-L3", Some("file_missing")),
            ("calc.py:L40-L50", Some("lines_out_of_range")),
        ]
    );
    let description = report["description"].as_str().unwrap();
    assert!(
        description.contains("All tests pass [not so: `python3 -m unittest -v` exited 1, log:7]."),
        "{description}"
    );
    assert!(description.contains("helpers.py:L1-L3 [unverified"), "{description}");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(
        (checks[0]["command"].as_str(), checks[0]["passed"].as_bool()),
        (Some("python3 -m unittest -v"), Some(false))
    );
    let markdown = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(markdown.contains("- [ ] `python3 -m unittest -v` (exit 1, log:7#L1-"), "{markdown}");
}

#[tokio::test]
async fn an_environment_names_finish_checks_too() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let repo = make_repo(root.path());
    let env_file = root.path().join("env.toml");
    std::fs::write(&env_file, "checks = [\"python3 -m unittest\"]\n").unwrap();
    let script =
        "[[turns]]\n[[turns.output]]\ntype = \"message\"\ntext = \"Done\\n\\nNothing to do.\"\n";
    let model = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let out = run_errand_with(
        root.path(),
        &repo,
        &model,
        &["exec", "--json", "--env", env_file.to_str().unwrap(), "look"],
        &[("ERRAND_FINISH_CHECK_ROUNDS", "0")],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let result = json_lines(&out).pop().unwrap();
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .ends_with("the finish checks still fail: python3 -m unittest"),
        "{result}"
    );
    // A bad check is refused with the setting named.
    std::fs::write(&env_file, "checks = [\"  \"]\n").unwrap();
    let out = run_errand(
        root.path(),
        &repo,
        &model,
        &["exec", "--env", env_file.to_str().unwrap(), "look"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checks[0]"), "{}", both(&out));
}
