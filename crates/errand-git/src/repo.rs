//! The user's repository: where a task starts and where its diff is applied.

use std::path::{Path, PathBuf};

use crate::command::{Git, GitError, failed, stderr_tail};

/// A git work tree on the host, by its top-level directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    root: PathBuf,
    /// A bare repository (a remote's mirror): `root` is its git directory.
    bare: bool,
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
        let (root, bare) = match (lines.next(), lines.next(), lines.next()) {
            (Some("true"), Some(git_dir), _) => (git_dir, true),
            (Some("false"), Some(_), Some(top)) if output.status.success() => (top, false),
            _ => return Err(GitError::NotARepository(path.to_path_buf())),
        };
        Ok(Repo { root: PathBuf::from(root), bare })
    }

    /// The top-level directory of the work tree (a bare repository's git directory).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is a bare repository (a remote's mirror), with no work tree.
    pub fn is_bare(&self) -> bool {
        self.bare
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

    /// A new commit, child of `base`, whose tree is `base`'s with `patch` applied, and whose
    /// message is `message`; returns its id. Nothing else changes: the work tree, the index and
    /// every ref stay as they were (the patch is applied to a private index). The author is the
    /// user's configured identity, or `Errand <errand@localhost>` when there is none.
    pub async fn commit_patch(
        &self,
        base: &str,
        patch: &str,
        message: &str,
    ) -> Result<String, GitError> {
        let scratch =
            tempfile::tempdir().map_err(|e| GitError::io("cannot create a temporary index", e))?;
        let index = scratch.path().join("index");
        let git = || Git::user(&self.root).env("GIT_INDEX_FILE", &index);
        git().args(["read-tree", "--end-of-options", base]).run(None).await?;
        if !patch.trim().is_empty() {
            let apply = git().args(["apply", "--cached", "--binary", "--whitespace=nowarn"]);
            let what = apply.what().to_string();
            let output = apply.arg("-").output(Some(patch.as_bytes().to_vec())).await?;
            if !output.status.success() {
                let problems = apply_problems(&output.stderr);
                return Err(if problems.is_empty() {
                    failed(what, &output)
                } else {
                    GitError::PatchDoesNotApply(problems)
                });
            }
        }
        let tree = String::from_utf8_lossy(&git().args(["write-tree"]).run(None).await?)
            .trim()
            .to_string();
        let identity = Git::user(&self.root).args(["var", "GIT_AUTHOR_IDENT"]).output(None).await?;
        let mut commit = git().args(["commit-tree", &tree, "-p", base, "-F", "-"]);
        if !identity.status.success() {
            for key in ["GIT_AUTHOR", "GIT_COMMITTER"] {
                commit = commit
                    .env(&format!("{key}_NAME"), "Errand")
                    .env(&format!("{key}_EMAIL"), "errand@localhost");
            }
        }
        let id = commit.run(Some(message.as_bytes().to_vec())).await?;
        Ok(String::from_utf8_lossy(&id).trim().to_string())
    }

    /// Points branch `name` at `commit`: creates it, or moves it when `force` (refused
    /// otherwise if it exists). `name` must be a valid branch name (`git check-ref-format`).
    pub async fn set_branch(&self, name: &str, commit: &str, force: bool) -> Result<(), GitError> {
        let valid =
            Git::user(&self.root).args(["check-ref-format", "--branch", name]).output(None).await?;
        if !valid.status.success() || name.starts_with('-') {
            return Err(GitError::Parse {
                what: "branch name".into(),
                detail: format!("`{name}` is not a valid branch name"),
            });
        }
        let mut git = Git::user(&self.root).arg("branch");
        if force {
            git = git.arg("--force");
        }
        git.args(["--end-of-options", name, commit]).run(None).await?;
        Ok(())
    }

    /// Whether commits `a` and `b` have the same tree (the same files, whatever their history).
    pub async fn same_tree(&self, a: &str, b: &str) -> Result<bool, GitError> {
        let tree = |rev: String| async move {
            let out = Git::user(&self.root)
                .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
                .arg(format!("{rev}^{{tree}}"))
                .output(None)
                .await?;
            Ok::<_, GitError>(out.status.success().then_some(out.stdout))
        };
        Ok(match (tree(a.to_string()).await?, tree(b.to_string()).await?) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        })
    }

    /// `git switch NAME` in the work tree.
    pub async fn switch(&self, name: &str) -> Result<(), GitError> {
        Git::user(&self.root)
            .args(["switch", "--quiet", "--end-of-options", name])
            .run(None)
            .await?;
        Ok(())
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
