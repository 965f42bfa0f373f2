//! The user's repository: where a task starts and where its diff is applied.

use std::path::{Path, PathBuf};

use crate::command::{Git, GitError, failed, stderr_tail};

/// A git work tree on the host, by its top-level directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    root: PathBuf,
}

impl Repo {
    /// The repository containing `path` (any directory inside the work tree).
    pub async fn discover(path: &Path) -> Result<Repo, GitError> {
        if !tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Err(GitError::io(
                format!("cannot open {}", path.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        // A bare repository (a mirror of a remote) is its own root: it has commits to check out
        // but no work tree.
        let output = Git::user(path)
            .args(["rev-parse", "--is-bare-repository", "--absolute-git-dir", "--show-toplevel"])
            .output(None)
            .await?;
        let text = String::from_utf8(output.stdout).map_err(|_| GitError::Parse {
            what: "rev-parse --show-toplevel".into(),
            detail: "the repository path is not UTF-8".into(),
        })?;
        let mut lines = text.lines();
        let root = match (lines.next(), lines.next(), lines.next()) {
            (Some("true"), Some(git_dir), _) => git_dir,
            (Some("false"), Some(_), Some(top)) if output.status.success() => top,
            _ => return Err(GitError::NotARepository(path.to_path_buf())),
        };
        Ok(Repo { root: PathBuf::from(root) })
    }

    /// The top-level directory of the work tree.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The full object id of `HEAD`.
    pub async fn head_commit(&self) -> Result<String, GitError> {
        self.resolve_commit("HEAD").await.map_err(|error| match error {
            GitError::NoSuchCommit(_) => GitError::NoCommits(self.root.clone()),
            other => other,
        })
    }

    /// The full object id of the commit `rev` names (a sha, a branch, a tag, `HEAD~2`, ...).
    pub async fn resolve_commit(&self, rev: &str) -> Result<String, GitError> {
        let output = Git::user(&self.root)
            .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
            .arg(format!("{rev}^{{commit}}"))
            .output(None)
            .await?;
        if !output.status.success() {
            return Err(GitError::NoSuchCommit(rev.to_string()));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// The bytes of `path` in `commit`, or `None` when the commit has no such file (or it is
    /// not a file). `path` is relative to the root, as a diff names it; it is passed to git as
    /// one `<commit>:<path>` argument after `--end-of-options`, so no path is read as an option.
    /// Read with [`Git::hardened`]: the path may come from an agent.
    pub async fn file_at(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let output = Git::hardened(&self.root)
            .args(["cat-file", "blob", "--end-of-options"])
            .arg(format!("{commit}:{path}"))
            .output(None)
            .await?;
        Ok(output.status.success().then_some(output.stdout))
    }

    /// Whether the work tree and index match `HEAD` (untracked, non-ignored files count as changes).
    pub async fn is_clean(&self) -> Result<bool, GitError> {
        let status = Git::user(&self.root)
            .args(["status", "--porcelain=v1", "-z", "--untracked-files=normal"])
            .run(None)
            .await?;
        Ok(status.is_empty())
    }

    /// Applies a `git diff --binary` patch to the work tree, all or nothing. With `check_only`,
    /// only says whether it would apply. On failure the error lists each hunk that did not.
    pub async fn apply(&self, patch: &str, check_only: bool) -> Result<(), GitError> {
        if patch.trim().is_empty() {
            return Ok(());
        }
        let mut git = Git::user(&self.root).args(["apply", "--whitespace=nowarn"]);
        if check_only {
            git = git.arg("--check");
        }
        let what = git.what().to_string();
        let output = git.arg("-").output(Some(patch.as_bytes().to_vec())).await?;
        if output.status.success() {
            return Ok(());
        }
        let problems = apply_problems(&output.stderr);
        if problems.is_empty() {
            Err(failed(what, &output))
        } else {
            Err(GitError::PatchDoesNotApply(problems))
        }
    }
}

/// The `error:` lines of `git apply`, which name each file and hunk that failed.
fn apply_problems(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("error: ")).collect();
    if lines.is_empty() {
        return String::new();
    }
    let listed = lines.iter().map(|line| format!("  {line}")).collect::<Vec<_>>();
    let joined = listed.join("\n");
    if joined.len() > 4000 { stderr_tail(joined.as_bytes()) } else { joined }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_problems_lists_error_lines() {
        let stderr = b"Checking patch a.txt...\nerror: patch failed: a.txt:1\nerror: a.txt: patch does not apply\n";
        assert_eq!(
            apply_problems(stderr),
            "  patch failed: a.txt:1\n  a.txt: patch does not apply"
        );
        assert_eq!(apply_problems(b"fatal: something else\n"), "");
    }
}
