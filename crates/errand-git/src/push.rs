//! Sending an attempt back to its remote: a commit built in the mirror
//! ([`Mirror::commit_patch`]), pushed as a branch ([`Mirror::push_branch`]) for a pull request,
//! and where a branch is on the remote now ([`Mirror::remote_branch`]).
//!
//! Invariants, as for fetching (see `mirror.rs` and `credentials.rs`):
//! - Pushes go by URL, from the mirror, with hardened git: no configured remote, no hooks
//!   (`core.hooksPath=/dev/null` and `--no-verify`), no tags or signatures the configuration
//!   could ask for, no prompts, only the allowed transports; the token travels in the
//!   environment only and is scrubbed from everything git printed.
//! - A branch name is checked before any git process that reaches the remote starts.
//! - What the remote has is never guessed from the mirror: every expectation
//!   ([`BranchExpectation`]) is checked by git against what the remote advertised during the
//!   push itself, so two pushes racing cannot both win.
//! - After a push, the mirror's own branch points where the remote's now does, so the next fetch
//!   changes nothing and a checkout of the branch sees the pushed commit.

use crate::command::{Git, GitError, GitOutput, failed, stderr_tail};
use crate::credentials::Credentials;
use crate::mirror::{Mirror, http_refused, scrub_error};
use crate::repo::Repo;

/// What the remote branch must look like for [`Mirror::push_branch`] to change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchExpectation {
    /// Create only: refused if the branch exists, even at the pushed commit (a first pull
    /// request must not adopt a branch someone else made).
    Absent,
    /// Update only if the remote branch is at this commit (full object id), whatever the pushed
    /// commit's history: a follow-up may replace the previous attempt's commit. git's
    /// `--force-with-lease=refs/heads/<branch>:<commit>`.
    At(String),
    /// A plain push: create the branch, or move it forward to a descendant of where it is.
    FastForward,
}

/// What a successful push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub branch: String,
    /// The full object id the remote branch now points at.
    pub commit: String,
    pub kind: PushKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// The branch did not exist and now does.
    Created,
    /// The branch moved; `forced` when the old tip is not in the new commit's history.
    Updated { forced: bool },
    /// The branch was already at the commit; nothing was sent.
    UpToDate,
}

/// Why a push did not happen. Each rejection says what was left as it was (always: everything)
/// and what to do. No variant ever holds a token.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("`{branch}` is not a valid branch name: {problem}; names like `errand/task_01J…` work")]
    InvalidBranch { branch: String, problem: String },
    #[error(
        "`{0}` is not a commit id; the expected position of a branch is the full object id (40 or 64 hex digits) it was last pushed at"
    )]
    InvalidExpectation(String),
    #[error(
        "branch `{branch}` already exists on {url}{}; nothing was pushed. To update it, push expecting the commit it is at; otherwise choose another branch name",
        at_clause(.at)
    )]
    BranchExists { url: String, branch: String, at: Option<String> },
    #[error(
        "branch `{branch}` on {url} is no longer at {expected} ({}): someone else changed it, and nothing was pushed. Fetch, rebuild the commit on what the branch holds now, and push again",
        now_clause(.actual)
    )]
    LeaseMismatch { url: String, branch: String, expected: String, actual: Option<String> },
    #[error(
        "branch `{branch}` on {url} has commits that {commit} does not contain, and a plain push would discard them; nothing was pushed. Build on the branch's tip, or push expecting that tip to replace it"
    )]
    NotFastForward { url: String, branch: String, commit: String },
    #[error(
        "{url} refused the push to `{branch}` ({reason}); nothing was pushed. A protected branch or a server-side hook decides this: push to another branch or ask the repository's administrators{}",
        said_clause(.message)
    )]
    Declined { url: String, branch: String, reason: String, message: String },
    #[error(
        "the remote refused the token for pushing to {url}: check that the token configured for {host} is current and may push to this repository (write access to its contents)"
    )]
    TokenRefused { url: String, host: String },
    #[error(transparent)]
    Git(#[from] GitError),
}

fn at_clause(at: &Option<String>) -> String {
    at.as_ref().map(|at| format!(" at {at}")).unwrap_or_default()
}

fn now_clause(actual: &Option<String>) -> String {
    match actual {
        Some(actual) => format!("it is at {actual}"),
        None => "it does not exist now".into(),
    }
}

fn said_clause(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!(". The remote said:\n{message}") }
}

impl Mirror {
    /// A new commit in the mirror, child of `base`, whose tree is `base`'s with `patch` (a
    /// `git diff --binary` patch) applied; returns its id. No ref names it until
    /// [`Mirror::push_branch`] pushes it (objects in a mirror are never pruned, see `mirror.rs`).
    /// See [`Repo::commit_patch`] for the author.
    pub async fn commit_patch(
        &self,
        base: &str,
        patch: &str,
        message: &str,
    ) -> Result<String, GitError> {
        Repo::discover(self.path()).await?.commit_patch(base, patch, message).await
    }

    /// The commit `refs/heads/<branch>` points at on the remote now, or `None` when the remote
    /// has no such branch (`git ls-remote`, nothing fetched). Errors never contain the token.
    pub async fn remote_branch(
        &self,
        credentials: &Credentials,
        branch: &str,
    ) -> Result<Option<String>, GitError> {
        check_branch_name(branch).await.map_err(|error| match error {
            PushError::Git(error) => error,
            invalid => GitError::io(
                invalid.to_string(),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no git process was started"),
            ),
        })?;
        self.check_credentials(credentials, "list the branches of")?;
        let refname = format!("refs/heads/{branch}");
        let listing = self
            .ls_remote_git(credentials)
            .await
            .args(["ls-remote", "--heads", "--"])
            .arg(self.url().display())
            .arg(&refname)
            .run(None)
            .await
            .map_err(|error| scrub_error(error, self.url(), credentials))?;
        // A pattern matches any ref that ends with it (`refs/heads/x/refs/heads/b` too): keep
        // the exact name only.
        Ok(String::from_utf8_lossy(&listing).lines().find_map(|line| {
            let (id, name) = line.split_once('\t')?;
            (name == refname).then(|| id.to_string())
        }))
    }

    /// Pushes `commit` (an object in the mirror) to the remote as `refs/heads/<branch>`, if the
    /// remote branch is as `expect` says, then points the mirror's own branch at it. Every
    /// refusal leaves the remote and the mirror as they were.
    pub async fn push_branch(
        &self,
        credentials: &Credentials,
        commit: &str,
        branch: &str,
        expect: BranchExpectation,
    ) -> Result<PushOutcome, PushError> {
        check_branch_name(branch).await?;
        let refname = format!("refs/heads/{branch}");
        let lease = match &expect {
            // An empty expected value: "the ref must not exist yet" (git-push(1)).
            BranchExpectation::Absent => Some(format!("--force-with-lease={refname}:")),
            BranchExpectation::At(expected) => {
                if !is_object_id(expected) {
                    return Err(PushError::InvalidExpectation(expected.clone()));
                }
                Some(format!("--force-with-lease={refname}:{}", expected.to_ascii_lowercase()))
            }
            BranchExpectation::FastForward => None,
        };
        self.check_credentials(credentials, "push to")?;
        let commit = self.resolve_commit(commit).await?;
        let url = self.url().display();
        tracing::debug!(%url, branch, commit, ?expect, "pushing a branch");

        // Held until the mirror's branch is updated: a fetch must not interleave its own ref
        // updates with ours.
        let _lock = self.lock().await?;
        let mut push = self.remote_git(&credentials.git_env(self.url())).args([
            "push",
            "--porcelain",
            "--no-verify",
            "--no-follow-tags",
            "--no-signed",
            "--recurse-submodules=no",
        ]);
        if let Some(lease) = lease {
            push = push.arg(lease);
        }
        let what = push.what().to_string();
        let output =
            push.arg("--").arg(&url).arg(format!("{commit}:{refname}")).output(None).await?;
        let stdout = credentials.scrub(&String::from_utf8_lossy(&output.stdout));
        let stderr = credentials.scrub(&String::from_utf8_lossy(&output.stderr));

        let Some(status) = ref_status(&stdout, &refname) else {
            // No verdict on our ref: git stopped before the remote answered (refused
            // credentials, no such repository, network).
            if matches!(credentials, Credentials::Token { .. }) && http_refused(&stderr) {
                return Err(PushError::TokenRefused {
                    url,
                    host: self.url().host().unwrap_or("this machine").to_string(),
                });
            }
            let error = failed(what, &GitOutput { stdout: Vec::new(), ..output });
            return Err(scrub_error(error, self.url(), credentials).into());
        };

        let kind = match status.verdict() {
            Verdict::Pushed(PushKind::UpToDate) if expect == BranchExpectation::Absent => {
                return Err(PushError::BranchExists {
                    url,
                    branch: branch.into(),
                    at: Some(commit),
                });
            }
            Verdict::Pushed(kind) => kind,
            Verdict::Stale => {
                // The remote did not match the lease; say where the branch is, if we can.
                let actual = self.remote_branch(credentials, branch).await.ok().flatten();
                return Err(match expect {
                    BranchExpectation::At(expected) => {
                        PushError::LeaseMismatch { url, branch: branch.into(), expected, actual }
                    }
                    _ => PushError::BranchExists { url, branch: branch.into(), at: actual },
                });
            }
            Verdict::NotFastForward => {
                return Err(PushError::NotFastForward { url, branch: branch.into(), commit });
            }
            Verdict::Declined(reason) => {
                return Err(PushError::Declined {
                    url,
                    branch: branch.into(),
                    reason,
                    message: remote_messages(&stderr),
                });
            }
        };

        Git::hardened(self.path())
            .env("GIT_DIR", self.path())
            .args(["update-ref", "--end-of-options", &refname, &commit])
            .run(None)
            .await?;
        Ok(PushOutcome { branch: branch.into(), commit, kind })
    }

    /// Hardened git for `ls-remote`, which needs no repository: in the mirror when it exists,
    /// else in `/` (a branch may be looked up before the first fetch).
    async fn ls_remote_git(&self, credentials: &Credentials) -> Git {
        if tokio::fs::try_exists(self.path().join("HEAD")).await.unwrap_or(false) {
            return self.remote_git(&credentials.git_env(self.url()));
        }
        let mut git = Git::hardened(std::path::Path::new("/"));
        for (key, value) in credentials.git_env(self.url()) {
            git = git.env(&key, value);
        }
        git
    }
}

/// Refuses a branch name git would refuse or read as something else: checked by
/// `git check-ref-format --branch` (git's own rules: no `..`, spaces, `~^:?*[\`, `@{`, a
/// trailing `.lock` ...), after what makes an argument unsafe to pass at all.
async fn check_branch_name(branch: &str) -> Result<(), PushError> {
    let invalid = |problem: &str| {
        Err(PushError::InvalidBranch { branch: branch.into(), problem: problem.into() })
    };
    if branch.is_empty() {
        return invalid("it is empty");
    }
    if branch.starts_with('-') {
        return invalid("it starts with `-`, which git would read as an option");
    }
    if branch.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return invalid("it contains a space or a control character");
    }
    if branch.starts_with("refs/") {
        return invalid("give the name without `refs/heads/`");
    }
    let output =
        Git::hardened(std::path::Path::new("/")).args(["check-ref-format", "--branch", branch]);
    let output = output.output(None).await?;
    // `--branch` prints the name it checked; anything else means git expanded it (`@{-1}`).
    if !output.status.success() || String::from_utf8_lossy(&output.stdout).trim_end() != branch {
        return invalid(
            "git does not accept it as a branch name (no `..`, `~^:?*[\\`, `@{`, or `.lock` at the end)",
        );
    }
    Ok(())
}

/// A full hex object id (SHA-1 or SHA-256).
fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// One line of `git push --porcelain` (git-push(1), OUTPUT):
/// `<flag> TAB <from>:<to> TAB <summary> [(<reason>)]`.
#[derive(Debug, PartialEq, Eq)]
struct RefStatus {
    flag: char,
    summary: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Pushed(PushKind),
    /// The lease did not hold (`stale info`).
    Stale,
    NotFastForward,
    /// Refused for another reason, as git words it (`pre-receive hook declined`).
    Declined(String),
}

impl RefStatus {
    fn verdict(&self) -> Verdict {
        match self.flag {
            '*' => Verdict::Pushed(PushKind::Created),
            ' ' => Verdict::Pushed(PushKind::Updated { forced: false }),
            '+' => Verdict::Pushed(PushKind::Updated { forced: true }),
            '=' => Verdict::Pushed(PushKind::UpToDate),
            _ => {
                let reason = self
                    .summary
                    .split_once('(')
                    .map(|(_, reason)| reason.trim_end().trim_end_matches(')').to_string())
                    .unwrap_or_else(|| self.summary.clone());
                let remote = self.summary.starts_with("[remote");
                match reason.as_str() {
                    "stale info" if !remote => Verdict::Stale,
                    // "fetch first": the remote tip is not in the mirror, so not an ancestor.
                    "non-fast-forward" | "fetch first" | "needs force" if !remote => {
                        Verdict::NotFastForward
                    }
                    _ => Verdict::Declined(reason),
                }
            }
        }
    }
}

/// The status line for `refname` in `git push --porcelain` output.
fn ref_status(stdout: &str, refname: &str) -> Option<RefStatus> {
    stdout.lines().find_map(|line| {
        let mut fields = line.splitn(3, '\t');
        let flag = fields.next()?;
        let refs = fields.next()?;
        let summary = fields.next()?;
        let flag = match flag.chars().collect::<Vec<_>>()[..] {
            [flag] => flag,
            _ => return None,
        };
        refs.ends_with(&format!(":{refname}"))
            .then(|| RefStatus { flag, summary: summary.trim().to_string() })
    })
}

/// What the remote printed (its `remote: ` lines: a hook's message, a forge's explanation),
/// without the prefix.
fn remote_messages(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("remote:"))
        .map(str::trim_end)
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .filter(|line| !line.is_empty())
        .collect();
    if lines.is_empty() { String::new() } else { stderr_tail(lines.join("\n").as_bytes()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_lines_become_verdicts() {
        let cases: &[(&str, Option<Verdict>)] = &[
            ("*\tabc:refs/heads/b\t[new branch]", Some(Verdict::Pushed(PushKind::Created))),
            (
                " \tabc:refs/heads/b\tb5849d7..81cb9b6",
                Some(Verdict::Pushed(PushKind::Updated { forced: false })),
            ),
            (
                "+\tabc:refs/heads/b\tb5849d7...81cb9b6 (forced update)",
                Some(Verdict::Pushed(PushKind::Updated { forced: true })),
            ),
            ("=\tabc:refs/heads/b\t[up to date]", Some(Verdict::Pushed(PushKind::UpToDate))),
            ("!\tabc:refs/heads/b\t[rejected] (stale info)", Some(Verdict::Stale)),
            ("!\tabc:refs/heads/b\t[rejected] (non-fast-forward)", Some(Verdict::NotFastForward)),
            ("!\tabc:refs/heads/b\t[rejected] (fetch first)", Some(Verdict::NotFastForward)),
            (
                "!\tabc:refs/heads/b\t[remote rejected] (pre-receive hook declined)",
                Some(Verdict::Declined("pre-receive hook declined".into())),
            ),
            (
                "!\tabc:refs/heads/b\t[remote rejected] (protected branch hook declined)",
                Some(Verdict::Declined("protected branch hook declined".into())),
            ),
            (
                "!\tabc:refs/heads/b\t[remote failure]",
                Some(Verdict::Declined("[remote failure]".into())),
            ),
            // Another ref, and lines that are not ref statuses.
            ("*\tabc:refs/heads/other/b\t[new branch]", None),
            ("*\tabc:refs/heads/bb\t[new branch]", None),
            ("To file:///r.git", None),
            ("Done", None),
        ];
        for (line, expected) in cases {
            let stdout = format!("To file:///r.git\n{line}\nDone\n");
            let verdict = ref_status(&stdout, "refs/heads/b").map(|status| status.verdict());
            assert_eq!(&verdict, expected, "{line}");
        }
    }

    #[test]
    fn remote_messages_keep_only_what_the_remote_said() {
        let stderr = "remote: branch is frozen      \nremote: \nremote:   see policy\nTo http://h/r\nerror: failed to push some refs\n";
        assert_eq!(remote_messages(stderr), "branch is frozen\n  see policy");
        assert_eq!(remote_messages("error: failed\n"), "");
    }

    #[test]
    fn object_ids_are_full_hex() {
        assert!(is_object_id(&"a".repeat(40)));
        assert!(is_object_id(&"0F".repeat(32)));
        for bad in ["", "abc123", &"g".repeat(40), &"a".repeat(41), "HEAD", "main"] {
            assert!(!is_object_id(bad), "{bad}");
        }
    }

    #[test]
    fn rejections_say_what_to_do() {
        let exists = PushError::BranchExists {
            url: "file:///r.git".into(),
            branch: "errand/t".into(),
            at: Some("abc".into()),
        };
        assert!(exists.to_string().contains("already exists on file:///r.git at abc"), "{exists}");
        let lease = PushError::LeaseMismatch {
            url: "u".into(),
            branch: "b".into(),
            expected: "e".into(),
            actual: None,
        };
        assert!(lease.to_string().contains("(it does not exist now)"), "{lease}");
        let declined = PushError::Declined {
            url: "u".into(),
            branch: "b".into(),
            reason: "pre-receive hook declined".into(),
            message: "frozen".into(),
        };
        assert!(declined.to_string().ends_with("The remote said:\nfrozen"), "{declined}");
    }
}
