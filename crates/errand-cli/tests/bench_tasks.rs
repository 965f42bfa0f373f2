//! `errand bench tasks` through the real binary with the scripted model: a suite of two tasks,
//! one the model's patch resolves and one it does not.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use common::{both, json_lines, sandbox_available, scratch};
use errand_testkit::{Script, ScriptedModel};

/// Every task's conversation replays this: fix calc.py, then finish.
const SCRIPT: &str = r#"
mode = "per_conversation"

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
text = "Fix add\n\nadd() adds."
"#;

fn task(suite: &std::path::Path, name: &str, module: &str, code: &str, test: &str) {
    let repo = suite.join(name).join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join(module), code).unwrap();
    std::fs::write(repo.join(format!("test_{module}")), test).unwrap();
    let stem = format!("test_{}", module.trim_end_matches(".py"));
    std::fs::write(
        suite.join(name).join("task.toml"),
        format!(
            "prompt = \"fix the bug\"\nfail_to_pass = \"python3 -m unittest {stem}.Bug\"\npass_to_pass = \"python3 -m unittest {stem}.Kept\"\n"
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn the_task_suite_counts_what_the_model_resolved() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let suite = root.path().join("suite");
    let kept = "\n\nclass Kept(unittest.TestCase):\n    def test_kept(self):\n        self.assertTrue(True)\n";
    task(
        &suite,
        "a-calc",
        "calc.py",
        "def add(a, b):\n    return a - b\n",
        &format!(
            "import unittest\n\nfrom calc import add\n\n\nclass Bug(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n{kept}"
        ),
    );
    task(
        &suite,
        "b-cart",
        "cart.py",
        "def total(prices):\n    result = sum(prices)\n",
        &format!(
            "import unittest\n\nfrom cart import total\n\n\nclass Bug(unittest.TestCase):\n    def test_total(self):\n        self.assertEqual(total([1, 2]), 3)\n{kept}"
        ),
    );
    let model = ScriptedModel::start(Script::from_toml(SCRIPT).unwrap()).await.unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["bench", "tasks", "--suite", suite.to_str().unwrap(), "--json"])
        .current_dir(root.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", root.path())
        .env("ERRAND_MODEL_BASE_URL", model.base_url())
        .env("ERRAND_MODEL", "scripted")
        .env("OPENAI_API_KEY", "test-key")
        .env("ERRAND_DATA_DIR", root.path().join("data"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        (lines[0]["task"].as_str(), lines[0]["resolved"].as_bool()),
        (Some("a-calc"), Some(true))
    );
    assert_eq!(lines[0]["turns"], 2);
    assert_eq!(
        (lines[1]["task"].as_str(), lines[1]["resolved"].as_bool()),
        (Some("b-cart"), Some(false))
    );
    assert!(lines[1]["note"].as_str().unwrap().starts_with("no change"), "{}", lines[1]);
    assert_eq!((lines[2]["resolved"].as_u64(), lines[2]["tasks"].as_u64()), (Some(1), Some(2)));
}

#[tokio::test]
async fn a_suite_that_does_not_hold_is_reported_not_run() {
    let root = scratch();
    let suite = root.path().join("suite");
    // fail_to_pass passes already: the task proves nothing.
    task(
        &suite,
        "broken",
        "ok.py",
        "X = 1\n",
        "import unittest\n\n\nclass Bug(unittest.TestCase):\n    def test_x(self):\n        pass\n\n\nclass Kept(unittest.TestCase):\n    def test_y(self):\n        pass\n",
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["bench", "tasks", "--suite", suite.to_str().unwrap(), "--json"])
        .current_dir(root.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", root.path())
        .env("ERRAND_MODEL_BASE_URL", "http://127.0.0.1:9/v1")
        .env("ERRAND_MODEL", "scripted")
        .env("OPENAI_API_KEY", "test-key")
        .env("ERRAND_DATA_DIR", root.path().join("data"))
        .output()
        .await
        .unwrap();
    let lines = json_lines(&out);
    assert_eq!(
        lines[0]["note"],
        "the task does not hold: fail_to_pass passes on the base",
        "{}",
        both(&out)
    );
    // An empty suite is an error that says what a task is.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["bench", "tasks", "--suite", empty.to_str().unwrap()])
        .env("ERRAND_DATA_DIR", root.path().join("data"))
        .env("OPENAI_API_KEY", "test-key")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no task"), "{}", both(&out));
}
