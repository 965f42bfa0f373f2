//! Shared set-up for the local sandbox's integration tests: a small git repository, a data
//! directory and a fake helper binary, all in a temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use errand_sandbox::{ExecOutcome, ExecRequest, LocalSandbox, LocalSandboxConfig, Sandbox};

/// Whether the real sandbox can run here. Without root or bubblewrap the test prints why and
/// is skipped, except under CI (env `CI` set), where that is a failure.
pub fn sandbox_available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let bwrap = Command::new("bwrap").arg("--version").output().is_ok();
    let reason = match (root, bwrap) {
        (true, true) => return true,
        (false, _) => "not running as root",
        (true, false) => "bubblewrap (bwrap) is not installed",
    };
    if std::env::var_os("CI").is_some() {
        panic!("the local sandbox tests cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub repo: PathBuf,
    pub config: LocalSandboxConfig,
}

/// The fake `errand` helper: echoes where and how it ran, and what it read, as the JSON line
/// the real `errand apply-patch --json` prints.
const FAKE_HELPER: &str = r#"#!/bin/sh
input=$(cat | tr -d '\n"')
printf 'helper says hello on stderr\n' >&2
printf '{"success":true,"output":"cwd=%s args=%s stdin=%s","changes":[{"path":"a.txt","change":"modified","insertions":1,"deletions":1}]}\n' "$(pwd)" "$*" "$input"
"#;

impl Fixture {
    /// A repository whose first commit holds `files` (path, contents).
    pub fn new(files: &[(&str, &[u8])]) -> Fixture {
        let tmp = tempfile::tempdir().expect("temp dir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).expect("repo dir");
        git(&repo, &["init", "-q", "-b", "main"]);
        for (path, contents) in files {
            let file = repo.join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("dirs");
            std::fs::write(&file, contents).expect("write");
        }
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "base"]);
        let helper = tmp.path().join("errand-helper");
        std::fs::write(&helper, FAKE_HELPER).expect("helper");
        chmod(&helper, 0o755);
        let config = LocalSandboxConfig::new(tmp.path().join("data"), helper);
        Fixture { tmp, repo, config }
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub async fn sandbox(&self, attempt: &str) -> LocalSandbox {
        LocalSandbox::create(&self.config, &self.repo, "HEAD", attempt)
            .await
            .expect("create the sandbox")
    }

    pub fn head(&self) -> String {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&self.repo)
            .output()
            .expect("git");
        String::from_utf8(out.stdout).expect("utf8").trim().to_string()
    }

    /// The shared lower checkout of HEAD.
    pub fn lower(&self) -> PathBuf {
        self.data_dir().join("checkouts").join(self.head())
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn request(command: &[&str]) -> ExecRequest {
    ExecRequest {
        command: command.iter().map(|s| s.to_string()).collect(),
        workdir: String::new(),
        timeout: Duration::from_secs(60),
        env: Vec::new(),
        stdin: None,
    }
}

/// Runs `sh -c script` in the workspace; returns the outcome and the combined output.
pub async fn sh(sandbox: &LocalSandbox, script: &str) -> (ExecOutcome, String) {
    run(sandbox, request(&["sh", "-c", script])).await
}

pub async fn run(sandbox: &LocalSandbox, request: ExecRequest) -> (ExecOutcome, String) {
    let mut output = Vec::new();
    let outcome =
        sandbox.exec(request, &mut |chunk| output.extend_from_slice(chunk)).await.expect("exec");
    (outcome, String::from_utf8_lossy(&output).into_owned())
}
