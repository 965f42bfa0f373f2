//! A local bare mirror of a remote repository: fetched before a task, the source of its
//! checkouts ([`crate::clone_from_mirror`]), shared by every task and worker on the data dir.
//!
//! Layout: `<mirrors_dir>/<first 16 hex digits of sha256(normalized URL)>.git`, the bare
//! repository, and `<same>.lock` beside it, on which a fetch (or a push, while it updates the
//! mirror's branch) holds an exclusive `flock(2)`: two workers fetching the same mirror take
//! turns, which git alone does not make safe (both would race on the same ref and pack files).
//!
//! Invariants:
//! - The mirror's configuration never names the remote or a credential: git fetches by URL
//!   and the token travels in the environment only (see [`Credentials`]).
//! - Objects are never deleted from a mirror (no gc, no prune of objects: `gc.auto=0`), because
//!   checkouts borrow them through `objects/info/alternates`. `--prune` drops refs only.
//! - Every git process here runs hardened (no user or system configuration, no hooks, no
//!   prompts) with only the https, http, ssh and file transports allowed.
//!
//! Sending work back (a commit built in the mirror, pushed as a branch) is in `push.rs`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::command::{Git, GitError};
use crate::credentials::Credentials;
use crate::remote::RemoteUrl;

/// What a fetch copies: every branch and tag, force-updated, so the mirror matches the remote
/// (and `--prune` drops what the remote deleted).
const REFSPECS: &[&str] = &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

/// The bare mirror of one remote repository. Cheap to create: nothing touches the disk until
/// [`Mirror::fetch`].
#[derive(Debug, Clone)]
pub struct Mirror {
    url: RemoteUrl,
    path: PathBuf,
    lock_path: PathBuf,
}

impl Mirror {
    /// The mirror of `url` under `mirrors_dir` (absolute, so checkouts' alternates are too).
    pub fn new(mirrors_dir: &Path, url: RemoteUrl) -> Mirror {
        let digest = Sha256::digest(url.normalized().as_bytes());
        let name: String = digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
        Mirror {
            path: mirrors_dir.join(format!("{name}.git")),
            lock_path: mirrors_dir.join(format!("{name}.lock")),
            url,
        }
    }

    /// The bare repository's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn url(&self) -> &RemoteUrl {
        &self.url
    }

    /// Brings the mirror up to date with the remote, creating it on first use: every branch and
    /// tag, and `HEAD` following the remote's default branch. Waits for any other fetch of the
    /// same mirror (in any process) to finish first. Errors never contain the token.
    pub async fn fetch(&self, credentials: &Credentials) -> Result<(), GitError> {
        self.check_credentials(credentials, "fetch")?;
        tracing::debug!(url = %self.url, mirror = %self.path.display(), "fetching the mirror");
        let parent = self.path.parent().unwrap_or(Path::new("/"));
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| GitError::io(format!("cannot create {}", parent.display()), e))?;
        let _lock = self.lock().await?;
        if !tokio::fs::try_exists(self.path.join("HEAD")).await.unwrap_or(false) {
            // Idempotent, so a mirror left half-made by a crash is simply finished. No
            // template: nothing (sample hooks, info/exclude) from the host's git install.
            Git::hardened(parent)
                .args(["init", "--quiet", "--bare", "--template="])
                .arg("--")
                .arg(&self.path)
                .run(None)
                .await?;
        }
        let env = credentials.git_env(&self.url);
        self.remote_git(&env)
            .args(["fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head"])
            .arg("--")
            .arg(self.url.display())
            .args(REFSPECS)
            .run(None)
            .await
            .map_err(|error| scrub_error(error, &self.url, credentials))?;
        self.follow_remote_head(&env, credentials).await
    }

    /// The full object id of the commit `rev` names in the mirror (a sha, a branch or tag
    /// name as the remote has it, `HEAD` for the remote's default branch).
    pub async fn resolve_commit(&self, rev: &str) -> Result<String, GitError> {
        let output = Git::hardened(&self.path)
            .env("GIT_DIR", &self.path)
            .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
            .arg(format!("{rev}^{{commit}}"))
            .output(None)
            .await?;
        if !output.status.success() {
            return Err(GitError::NoSuchCommit(rev.to_string()));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Points the mirror's `HEAD` at the branch the remote's `HEAD` names, so `HEAD` means
    /// "the default branch" as it does in a clone. A remote without one (empty, or a detached
    /// `HEAD`) leaves it as it was.
    async fn follow_remote_head(
        &self,
        env: &[(String, String)],
        credentials: &Credentials,
    ) -> Result<(), GitError> {
        let listing = self
            .remote_git(env)
            .args(["ls-remote", "--symref", "--"])
            .arg(self.url.display())
            .arg("HEAD")
            .run(None)
            .await
            .map_err(|error| scrub_error(error, &self.url, credentials))?;
        let listing = String::from_utf8_lossy(&listing);
        let branch = listing.lines().find_map(|line| {
            let target = line.strip_prefix("ref: ")?.strip_suffix("\tHEAD")?;
            target.starts_with("refs/heads/").then_some(target)
        });
        if let Some(branch) = branch {
            Git::hardened(&self.path)
                .env("GIT_DIR", &self.path)
                .args(["symbolic-ref", "HEAD", branch])
                .run(None)
                .await?;
        }
        Ok(())
    }

    /// An error, before any git process starts, when `credentials` cannot be used for this
    /// remote; `verb` says what was attempted ("fetch", "push to").
    pub(crate) fn check_credentials(
        &self,
        credentials: &Credentials,
        verb: &str,
    ) -> Result<(), GitError> {
        match credentials.problem_with(&self.url) {
            None => Ok(()),
            Some(problem) => Err(GitError::io(
                format!("cannot {verb} {}: {problem}", self.url),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no git process was started"),
            )),
        }
    }

    /// Waits for, then holds, the mirror's exclusive lock: whoever changes its refs (a fetch,
    /// the branch a push updates) holds it.
    pub(crate) async fn lock(&self) -> Result<MirrorLock, GitError> {
        MirrorLock::acquire(&self.lock_path).await
    }

    /// Hardened git on the mirror (by `GIT_DIR`: never a repository found by walking up) with
    /// the environment that reaches the remote.
    pub(crate) fn remote_git(&self, env: &[(String, String)]) -> Git {
        let mut git = Git::hardened(&self.path).env("GIT_DIR", &self.path);
        for (key, value) in env {
            git = git.env(key, value);
        }
        git
    }
}

/// `error` with the token scrubbed out of everything git printed, and, when git's words mean
/// the remote wanted other credentials, a line saying so in the user's terms.
pub(crate) fn scrub_error(error: GitError, url: &RemoteUrl, credentials: &Credentials) -> GitError {
    match error {
        GitError::Failed { what, status, stderr } => {
            let mut stderr = credentials.scrub(&stderr);
            if let Some(hint) = credentials_hint(&stderr, url, credentials) {
                stderr.push('\n');
                stderr.push_str(&hint);
            }
            GitError::Failed { what: credentials.scrub(&what), status, stderr }
        }
        GitError::Parse { what, detail } => {
            GitError::Parse { what: credentials.scrub(&what), detail: credentials.scrub(&detail) }
        }
        other => other,
    }
}

/// What to do when git's stderr says authentication failed (git's messages: http.c and
/// OpenSSH's), or `None` when it does not.
fn credentials_hint(stderr: &str, url: &RemoteUrl, credentials: &Credentials) -> Option<String> {
    let host = url.host().unwrap_or("this machine");
    let http_refused = http_refused(stderr);
    let ssh_refused = ["Permission denied (publickey", "Host key verification failed"]
        .iter()
        .any(|sign| stderr.contains(sign));
    match credentials {
        Credentials::Token { .. } if http_refused => Some(format!(
            "the remote refused the token configured for {host}: check that it is current and may read this repository"
        )),
        Credentials::None if http_refused => {
            Some(format!("{url} needs credentials: configure a token for {host}"))
        }
        _ if ssh_refused => Some(format!(
            "SSH to {host} failed: configure an SSH command for {host} that names a key with access and a known_hosts file holding the host's key"
        )),
        _ => None,
    }
}

/// Whether git's stderr says the HTTP server refused the credentials (git's messages, http.c:
/// with prompts off, a 401 ends in "could not read Username"; a 403 names its status).
pub(crate) fn http_refused(stderr: &str) -> bool {
    ["could not read Username", "Authentication failed", "HTTP 401", "HTTP 403", "error: 403"]
        .iter()
        .any(|sign| stderr.contains(sign))
}

/// An exclusive `flock(2)` on a mirror's lock file, released when dropped (closing the file
/// releases it, and so does the process dying: no stale locks).
pub(crate) struct MirrorLock {
    _file: std::fs::File,
}

impl MirrorLock {
    async fn acquire(path: &Path) -> Result<MirrorLock, GitError> {
        let path = path.to_path_buf();
        let context = format!("cannot lock {}", path.display());
        // flock blocks: wait on the blocking pool, never on an async thread.
        let wait = tokio::task::spawn_blocking(move || -> std::io::Result<MirrorLock> {
            use std::os::fd::AsRawFd;
            let file =
                std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            loop {
                // SAFETY: flock on a descriptor we own and keep open for the lock's lifetime.
                if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                    return Ok(MirrorLock { _file: file });
                }
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        });
        match wait.await {
            Ok(result) => result.map_err(|e| GitError::io(context, e)),
            Err(join) => Err(GitError::io(context, std::io::Error::other(join.to_string()))),
        }
    }
}
