//! The user's repository and private checkouts, against the real `git`.

use std::path::Path;
use std::process::Command;

use errand_git::{GitError, PathChange, Repo, clone_at_commit, diff_changes};
use errand_protocol::FileChangeKind;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn repo_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    git(tmp.path(), &["init", "-q"]);
    for (path, contents) in files {
        let file = tmp.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, contents).unwrap();
    }
    git(tmp.path(), &["add", "-A"]);
    git(tmp.path(), &["commit", "-qm", "base"]);
    tmp
}

#[tokio::test]
async fn discovers_the_top_level_and_head() {
    let tmp = repo_with(&[("src/a.txt", "a\n")]);
    let repo = Repo::discover(&tmp.path().join("src")).await.unwrap();
    assert_eq!(repo.root(), tmp.path().canonicalize().unwrap());
    let head = repo.head_commit().await.unwrap();
    assert_eq!(head.len(), 40);
    assert!(head.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(repo.resolve_commit(&head[..8]).await.unwrap(), head);
    assert!(matches!(repo.resolve_commit("no-such-branch").await, Err(GitError::NoSuchCommit(_))));
}

#[tokio::test]
async fn clear_errors_outside_a_repository_and_without_commits() {
    let plain = tempfile::tempdir().unwrap();
    let error = Repo::discover(plain.path()).await.unwrap_err();
    assert!(matches!(error, GitError::NotARepository(_)), "{error}");

    git(plain.path(), &["init", "-q"]);
    let repo = Repo::discover(plain.path()).await.unwrap();
    let error = repo.head_commit().await.unwrap_err();
    assert!(error.to_string().contains("has no commits yet"), "{error}");
}

#[tokio::test]
async fn cleanliness_counts_untracked_files() {
    let tmp = repo_with(&[("a.txt", "a\n")]);
    let repo = Repo::discover(tmp.path()).await.unwrap();
    assert!(repo.is_clean().await.unwrap());
    std::fs::write(tmp.path().join("new.txt"), "n").unwrap();
    assert!(!repo.is_clean().await.unwrap());
}

#[tokio::test]
async fn a_patch_that_does_not_apply_changes_nothing_and_says_where() {
    let tmp = repo_with(&[("a.txt", "one\ntwo\n"), ("b.txt", "b\n")]);
    let repo = Repo::discover(tmp.path()).await.unwrap();
    let patch = "diff --git a/b.txt b/b.txt\n--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-b\n+B\n\
                 diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n-uno\n+eins\n two\n";
    for check_only in [true, false] {
        let error = repo.apply(patch, check_only).await.unwrap_err();
        assert!(matches!(error, GitError::PatchDoesNotApply(_)), "{error}");
        assert!(error.to_string().contains("a.txt"), "{error}");
    }
    assert_eq!(std::fs::read_to_string(tmp.path().join("b.txt")).unwrap(), "b\n");
    repo.apply("", false).await.unwrap();
}

#[tokio::test]
async fn a_checkout_is_detached_at_the_commit_and_shares_no_inodes() {
    let tmp = repo_with(&[("a.txt", "first\n")]);
    let repo = Repo::discover(tmp.path()).await.unwrap();
    let first = repo.head_commit().await.unwrap();
    std::fs::write(tmp.path().join("a.txt"), "second\n").unwrap();
    git(tmp.path(), &["commit", "-qam", "second"]);

    let checkouts = tempfile::tempdir().unwrap();
    let dest = checkouts.path().join("checkout");
    clone_at_commit(repo.root(), &first, &dest).await.unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("a.txt")).unwrap(), "first\n");
    assert!(!dest.join(".git/hooks").exists(), "no template hooks");
    let ours = walk_inodes(&tmp.path().join(".git/objects"));
    let theirs = walk_inodes(&dest.join(".git/objects"));
    assert!(ours.is_disjoint(&theirs), "objects are hard-linked");

    // The diff plumbing on that checkout: one new file, one whose target is a symlink.
    let upper = tempfile::tempdir().unwrap();
    std::fs::write(upper.path().join("n.txt"), "n\n").unwrap();
    let changes = vec![
        PathChange::File {
            path: "n.txt".into(),
            source: upper.path().join("n.txt"),
            executable: false,
        },
        PathChange::Symlink { path: "a.txt".into(), target: "n.txt".into() },
    ];
    let diff = diff_changes(&dest, &first, &changes).await.unwrap();
    let kinds: Vec<_> = diff.files.iter().map(|f| (f.path.as_str(), f.kind.clone())).collect();
    assert_eq!(kinds, vec![("a.txt", FileChangeKind::Modified), ("n.txt", FileChangeKind::Added)]);
    assert!(diff.patch.contains("new file mode 120000"), "{}", diff.patch);
}

fn walk_inodes(dir: &Path) -> std::collections::HashSet<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut inodes = std::collections::HashSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            inodes.insert(meta.ino());
        }
    }
    inodes
}

#[tokio::test]
async fn a_bare_repository_is_its_own_root_and_checks_out() {
    // A mirror of a remote is bare: the sandbox checks commits out of it like any repository.
    let source = repo_with(&[("a.txt", "a\n")]);
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("mirror.git");
    git(tmp.path(), &["clone", "-q", "--bare", source.path().to_str().unwrap(), "mirror.git"]);
    let repo = Repo::discover(&bare).await.unwrap();
    assert_eq!(repo.root(), bare.canonicalize().unwrap());
    let head = repo.head_commit().await.unwrap();
    let dest = tmp.path().join("checkout");
    clone_at_commit(repo.root(), &head, &dest).await.unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("a.txt")).unwrap(), "a\n");
    // A plain directory is still not a repository.
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    assert!(matches!(Repo::discover(&plain).await, Err(GitError::NotARepository(_))));
}

#[tokio::test]
async fn a_patch_becomes_a_commit_on_its_base_without_touching_the_work_tree() {
    let tmp = repo_with(&[("a.txt", "one\n")]);
    let repo = Repo::discover(tmp.path()).await.unwrap();
    let base = repo.head_commit().await.unwrap();
    std::fs::write(tmp.path().join("local.txt"), "uncommitted\n").unwrap();
    let patch = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n";
    let commit = repo.commit_patch(&base, patch, "Change a\n\nBody.\n").await.unwrap();
    assert_eq!(repo.head_commit().await.unwrap(), base, "HEAD did not move");
    assert_eq!(std::fs::read_to_string(tmp.path().join("a.txt")).unwrap(), "one\n");
    repo.set_branch("errand/x", &commit, false).await.unwrap();
    assert_eq!(repo.resolve_commit("errand/x").await.unwrap(), commit);
    assert!(
        repo.same_tree(&commit, &repo.commit_patch(&base, patch, "again").await.unwrap())
            .await
            .unwrap()
    );
    assert!(!repo.same_tree(&commit, &base).await.unwrap());
    // A patch that does not apply names the hunk; a bad branch name is refused.
    let stale = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-zero\n+two\n";
    assert!(matches!(
        repo.commit_patch(&base, stale, "x").await,
        Err(GitError::PatchDoesNotApply(_))
    ));
    assert!(repo.set_branch("-bad", &commit, false).await.is_err());
    assert!(repo.set_branch("a..b", &commit, false).await.is_err());
}
