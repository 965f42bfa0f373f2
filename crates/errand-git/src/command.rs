//! Running `git`: one place that decides which configuration a git process may see.
//!
//! Two flavours. [`Git::user`] runs in the user's own repository with their configuration (their
//! identity, their aliases do not matter to plumbing). [`Git::hardened`] runs on checkouts Errand
//! made and on trees whose file contents an agent wrote: no system or global configuration, no
//! hooks, no fsmonitor, no prompts, and `safe.directory=*` because those checkouts belong to the
//! unprivileged sandbox uid rather than to us. Git runs no filter or hook that is not configured,
//! so with no configuration a hostile repository has nothing to make us execute.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A git operation failed. `Display` says what was attempted and ends with git's own words.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run `git {what}`: {source} (is git installed and on PATH?)")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`git {what}` failed ({status}): {stderr}")]
    Failed { what: String, status: String, stderr: String },
    #[error("{0} is not inside a git repository")]
    NotARepository(PathBuf),
    #[error("repository {0} has no commits yet; commit something first")]
    NoCommits(PathBuf),
    #[error("`{0}` does not name a commit in this repository")]
    NoSuchCommit(String),
    #[error("the patch does not apply:\n{0}")]
    PatchDoesNotApply(String),
    #[error("unexpected output from `git {what}`: {detail}")]
    Parse { what: String, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        GitError::Io { context: context.into(), source }
    }
}

/// What a finished git process left behind.
pub(crate) struct GitOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A git invocation being built.
pub(crate) struct Git {
    command: Command,
    /// The subcommand and its first arguments, for error messages.
    what: String,
}

/// Configuration forced on every hardened invocation (`-c` beats the repository's own config).
const HARDENED_CONFIG: &[&str] = &[
    // Our checkouts are owned by the sandbox uid; git would otherwise refuse them.
    "safe.directory=*",
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    // No background gc or maintenance processes on checkouts that attempts share.
    "gc.auto=0",
    "maintenance.auto=false",
];

impl Git {
    /// git in the user's repository, with the user's configuration.
    pub fn user(dir: &Path) -> Self {
        let mut command = Command::new("git");
        command
            .current_dir(dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE");
        Git::finish(command)
    }

    /// git with no configuration but the repository's own and ours (see the module comment).
    pub fn hardened(dir: &Path) -> Self {
        let mut command = Command::new("git");
        command.current_dir(dir).env_clear();
        for key in ["PATH", "TMPDIR"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env("HOME", "/nonexistent")
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0");
        for setting in HARDENED_CONFIG {
            command.arg("-c").arg(setting);
        }
        Git::finish(command)
    }

    fn finish(mut command: Command) -> Self {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Git { command, what: String::new() }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        if self.what.split(' ').count() < 3 {
            if !self.what.is_empty() {
                self.what.push(' ');
            }
            self.what.push_str(&arg.as_ref().to_string_lossy());
        }
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Runs to completion, whatever the exit status.
    pub async fn output(mut self, stdin: Option<Vec<u8>>) -> Result<GitOutput, GitError> {
        if stdin.is_some() {
            self.command.stdin(Stdio::piped());
        }
        let mut child = self
            .command
            .spawn()
            .map_err(|source| GitError::Spawn { what: self.what.clone(), source })?;
        // Feed stdin concurrently with reading the output, or a large input and a large output
        // would wait on each other forever.
        let pipe = child.stdin.take();
        let feed = async move {
            if let (Some(bytes), Some(mut pipe)) = (stdin, pipe) {
                // A git that exits early closes its stdin; the error that follows is not ours to
                // report (the exit status says what happened).
                let _ = pipe.write_all(&bytes).await;
                drop(pipe);
            }
        };
        let (output, ()) = tokio::join!(child.wait_with_output(), feed);
        let output =
            output.map_err(|source| GitError::Spawn { what: self.what.clone(), source })?;
        Ok(GitOutput { status: output.status, stdout: output.stdout, stderr: output.stderr })
    }

    /// Runs and requires success; returns stdout.
    pub async fn run(self, stdin: Option<Vec<u8>>) -> Result<Vec<u8>, GitError> {
        let what = self.what.clone();
        let output = self.output(stdin).await?;
        if output.status.success() { Ok(output.stdout) } else { Err(failed(what, &output)) }
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    /// Starts git as a conversation: requests written to its stdin, answers read from its stdout
    /// as they come (`cat-file --batch`, `mktree --batch`).
    pub fn spawn(mut self) -> Result<GitProcess, GitError> {
        self.command.stdin(Stdio::piped());
        let mut child = self
            .command
            .spawn()
            .map_err(|source| GitError::Spawn { what: self.what.clone(), source })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        Ok(GitProcess { child, stdin, stdout, what: self.what })
    }
}

/// A running git process fed through its stdin (see [`Git::spawn`]). Its stderr is read only
/// once it has exited: the batch commands we run this way print nothing there but an error
/// message, far less than a pipe holds.
pub(crate) struct GitProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    what: String,
}

impl GitProcess {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), GitError> {
        let what = &self.what;
        let stdin = self.stdin.as_mut().ok_or_else(|| GitError::Parse {
            what: what.clone(),
            detail: "its input was already closed".into(),
        })?;
        match stdin.write_all(bytes).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.exited().await),
        }
    }

    /// Reads up to and including `delimiter`, which is dropped. Reaching the end of the output
    /// first means git stopped: its error is returned.
    pub async fn read_until(&mut self, delimiter: u8) -> Result<Vec<u8>, GitError> {
        let mut out = Vec::new();
        let read = match self.stdout.as_mut() {
            Some(stdout) => stdout.read_until(delimiter, &mut out).await.ok(),
            None => None,
        };
        if read.is_some_and(|n| n > 0) && out.last() == Some(&delimiter) {
            out.pop();
            Ok(out)
        } else {
            Err(self.exited().await)
        }
    }

    pub async fn read_exact(&mut self, len: usize) -> Result<Vec<u8>, GitError> {
        let mut out = vec![0; len];
        let read = match self.stdout.as_mut() {
            Some(stdout) => stdout.read_exact(&mut out).await.ok(),
            None => None,
        };
        match read {
            Some(_) => Ok(out),
            None => Err(self.exited().await),
        }
    }

    /// Closes the input and waits for git to exit successfully.
    pub async fn finish(mut self) -> Result<(), GitError> {
        drop(self.stdin.take());
        let what = self.what.clone();
        let status = self
            .child
            .wait()
            .await
            .map_err(|source| GitError::Spawn { what: what.clone(), source })?;
        if status.success() {
            Ok(())
        } else {
            let stderr = self.stderr().await;
            Err(failed(what, &GitOutput { status, stdout: Vec::new(), stderr }))
        }
    }

    /// The error for a process that stopped answering: its exit status and stderr.
    async fn exited(&mut self) -> GitError {
        drop(self.stdin.take());
        drop(self.stdout.take());
        let what = self.what.clone();
        match self.child.wait().await {
            Ok(status) => {
                let stderr = self.stderr().await;
                failed(what, &GitOutput { status, stdout: Vec::new(), stderr })
            }
            Err(source) => GitError::Spawn { what, source },
        }
    }

    async fn stderr(&mut self) -> Vec<u8> {
        let mut stderr = Vec::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_end(&mut stderr).await;
        }
        stderr
    }
}

/// The error for a git process that exited unsuccessfully.
pub(crate) fn failed(what: String, output: &GitOutput) -> GitError {
    GitError::Failed {
        what,
        status: output.status.to_string(),
        stderr: stderr_tail(&output.stderr),
    }
}

/// The last lines of git's stderr: enough to say why, short enough for one error line.
pub(crate) fn stderr_tail(stderr: &[u8]) -> String {
    const MAX_LINES: usize = 12;
    const MAX_CHARS: usize = 2000;
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut tail = lines[lines.len().saturating_sub(MAX_LINES)..].join("\n");
    if tail.len() > MAX_CHARS {
        let mut cut = tail.len() - MAX_CHARS;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    if tail.is_empty() { "(git printed nothing)".into() } else { tail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_last_lines() {
        let many: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let tail = stderr_tail(many.as_bytes());
        assert!(tail.starts_with("line 18"), "{tail}");
        assert!(tail.ends_with("line 29"), "{tail}");
        assert_eq!(stderr_tail(b""), "(git printed nothing)");
    }

    #[test]
    fn what_names_the_subcommand() {
        let git = Git::user(Path::new("/")).args(["diff", "--binary", "a", "b"]);
        assert_eq!(git.what(), "diff --binary a");
    }
}
