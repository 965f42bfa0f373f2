//! What end-to-end tests of `errand exec` share: a repository with a failing test, a scratch
//! directory the sandbox's uid can traverse, and one way to run the binary against a scripted
//! model with a configuration file.

#[allow(dead_code, reason = "only the tests of the service start a server")]
pub mod server;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use errand_testkit::ScriptedModel;
use serde_json::Value;

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
    assert!(std::env::var_os("CI").is_none(), "CI must run the end-to-end tests, but {why}");
    eprintln!("skipping: {why} (run scripts/install-deps.sh as root)");
    false
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

pub const CALC: &str = "def add(a, b):\n    return a - b\n";
const TEST: &str = "import unittest\n\nfrom calc import add\n\n\nclass AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n";

/// A world-traversable temp dir (the sandbox's uid must reach the data dir under it).
pub fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `root/repo`: `calc.py` with a bug, its failing test, and an AGENTS.md, committed.
pub fn make_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("calc.py"), CALC).unwrap();
    std::fs::write(repo.join("test_calc.py"), TEST).unwrap();
    std::fs::write(repo.join("AGENTS.md"), "Run the tests with `python3 -m unittest -v`.\n")
        .unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "calc with a bug"]);
    repo
}

/// Runs `errand --config <root>/errand.toml <args>` in `repo` with a clean environment (HOME is
/// `root`, every provider's API key is `test-key`). `config` is the whole configuration file; see
/// [`model_config`].
pub async fn run_errand(root: &Path, repo: &Path, config: &str, args: &[&str]) -> Output {
    let config_file = root.join("errand.toml");
    std::fs::write(&config_file, config).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_errand"))
        .arg("--config")
        .arg(&config_file)
        .args(args)
        .current_dir(repo)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", root)
        .env("OPENAI_API_KEY", "test-key")
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("ERRAND_DATA_DIR", root.join("data"))
        .output()
        .await
        .unwrap()
}

/// An `errand.toml` pointing at `model` over `provider` (`openai-responses`, `chat-completions`),
/// with fast retries: two of them, 10 ms apart (before jitter), and the given idle timeout.
pub fn model_config(model: &ScriptedModel, provider: &str, idle_timeout_secs: u64) -> String {
    format!(
        "[model]\nprovider = \"{provider}\"\nmodel = \"scripted\"\nbase_url = \"{}\"\n\
         max_retries = 2\nretry_base_delay_ms = 10\nidle_timeout_secs = {idle_timeout_secs}\n",
        model.base_url()
    )
}

/// The `--json` output: every event, then the `result` line.
pub fn json_lines(out: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// Both output streams, for assertion messages.
pub fn both(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
