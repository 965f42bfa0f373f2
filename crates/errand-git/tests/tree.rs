//! The tree and diff of a list of changed paths against a base commit, built from the changed
//! directories alone, against the real `git`: the edge cases of rewriting only the trees on the
//! paths to the changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use errand_git::{PathChange, diff_changes, tree_with_changes};
use errand_protocol::FileChangeKind;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A committed repository and a directory standing in for the upper layer.
struct Fixture {
    tmp: tempfile::TempDir,
    base: String,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(tmp.path().join("upper")).unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q"]);
        for (path, contents) in files {
            let file = repo.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, contents).unwrap();
        }
        git(&repo, &["add", "-A", "--force"]);
        git(&repo, &["commit", "-qm", "base"]);
        let base = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
        Fixture { tmp, base }
    }

    fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    /// A file change whose content sits in the upper directory.
    fn file(&self, path: &str, contents: &str, executable: bool) -> PathChange {
        let source = self.tmp.path().join("upper").join(path);
        std::fs::create_dir_all(source.parent().unwrap()).unwrap();
        std::fs::write(&source, contents).unwrap();
        PathChange::File { path: path.into(), source, executable }
    }

    /// `git ls-tree -r` of `tree`: "mode path" lines (ids left out), sorted.
    fn listing(&self, tree: &str) -> Vec<String> {
        git(&self.repo(), &["ls-tree", "-r", "--format=%(objectmode) %(path)", tree])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Applies `patch` to a fresh clone of the base and returns the clone's tree listing.
    fn apply_to_clone(&self, patch: &str) -> Vec<String> {
        let clone = self.tmp.path().join("clone");
        git(self.tmp.path(), &["clone", "-q", self.repo().to_str().unwrap(), "clone"]);
        let patch_file = self.tmp.path().join("patch");
        std::fs::write(&patch_file, patch).unwrap();
        git(&clone, &["apply", "--index", patch_file.to_str().unwrap()]);
        let tree = git(&clone, &["write-tree"]).trim().to_string();
        self.listing_in(&clone, &tree)
    }

    fn listing_in(&self, repo: &Path, tree: &str) -> Vec<String> {
        git(repo, &["ls-tree", "-r", "--format=%(objectmode) %(path)", tree])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn kinds(diff: &errand_git::TreeDiff) -> Vec<(String, FileChangeKind)> {
    let mut kinds: Vec<_> = diff.files.iter().map(|f| (f.path.clone(), f.kind.clone())).collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    kinds
}

fn lines(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_file_becomes_a_directory_and_a_directory_becomes_a_file() {
    let fx = Fixture::new(&[
        ("thing", "a file\n"),
        ("dir/a.txt", "a\n"),
        ("dir/sub/b.txt", "b\n"),
        ("other", "other\n"),
        ("opaque", "also a file\n"),
    ]);
    let changes = vec![
        // Without an opaque marker: the new file's parent replaces the base's file.
        fx.file("thing/inside.txt", "inside\n", false),
        fx.file("dir", "now a file\n", false),
        // With one, as overlayfs may mark a directory made where a file was.
        PathChange::Replaced { path: "opaque".into() },
        fx.file("opaque/x.txt", "x\n", false),
    ];
    let tree = tree_with_changes(&fx.repo(), &fx.base, &changes).await.unwrap();
    let expected =
        lines(&["100644 dir", "100644 opaque/x.txt", "100644 other", "100644 thing/inside.txt"]);
    assert_eq!(fx.listing(&tree), expected);

    let diff = diff_changes(&fx.repo(), &fx.base, &changes).await.unwrap();
    assert_eq!(
        kinds(&diff),
        vec![
            ("dir".into(), FileChangeKind::Added),
            ("dir/a.txt".into(), FileChangeKind::Deleted),
            ("dir/sub/b.txt".into(), FileChangeKind::Deleted),
            ("opaque".into(), FileChangeKind::Deleted),
            ("opaque/x.txt".into(), FileChangeKind::Added),
            ("thing".into(), FileChangeKind::Deleted),
            ("thing/inside.txt".into(), FileChangeKind::Added),
        ]
    );
    assert_eq!(fx.apply_to_clone(&diff.patch), expected);
}

#[tokio::test]
async fn a_removed_directory_takes_everything_below_it_and_nothing_beside_it() {
    let fx = Fixture::new(&[
        ("docs/a.md", "a\n"),
        ("docs/deep/er/b.md", "b\n"),
        ("docsx/c.md", "c\n"),
        ("docs.md", "d\n"),
        ("keep/docs/e.md", "e\n"),
    ]);
    let changes = vec![PathChange::Removed { path: "docs".into() }];
    let diff = diff_changes(&fx.repo(), &fx.base, &changes).await.unwrap();
    assert_eq!(
        kinds(&diff),
        vec![
            ("docs/a.md".into(), FileChangeKind::Deleted),
            ("docs/deep/er/b.md".into(), FileChangeKind::Deleted),
        ]
    );
    let expected = lines(&["100644 docs.md", "100644 docsx/c.md", "100644 keep/docs/e.md"]);
    assert_eq!(fx.apply_to_clone(&diff.patch), expected);

    // Removing the last file of a directory removes the directory from the tree, too.
    let changes = vec![PathChange::Removed { path: "docsx/c.md".into() }];
    let tree = tree_with_changes(&fx.repo(), &fx.base, &changes).await.unwrap();
    assert!(!fx.listing(&tree).iter().any(|l| l.contains("docsx")));
}

#[tokio::test]
async fn a_deep_change_among_many_siblings_rewrites_only_its_own_trees() {
    let mut files: Vec<(String, String)> = Vec::new();
    for dir in 0..20 {
        for file in 0..50 {
            files.push((format!("src/m{dir:02}/deep/f{file:02}.rs"), format!("// {dir} {file}\n")));
        }
    }
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let fx = Fixture::new(&borrowed);
    let changes = vec![fx.file("src/m07/deep/f31.rs", "// changed\n", false)];
    let diff = diff_changes(&fx.repo(), &fx.base, &changes).await.unwrap();
    assert_eq!(kinds(&diff), vec![("src/m07/deep/f31.rs".into(), FileChangeKind::Modified)]);

    // Every other subtree is the base's very object.
    let tree = tree_with_changes(&fx.repo(), &fx.base, &changes).await.unwrap();
    let subtrees = |rev: &str| git(&fx.repo(), &["ls-tree", &format!("{rev}:src")]);
    let (before, after) = (subtrees(&fx.base), subtrees(&tree));
    let differing: Vec<_> = before.lines().zip(after.lines()).filter(|(b, a)| b != a).collect();
    assert_eq!(differing.len(), 1, "{differing:?}");
    assert!(differing[0].1.ends_with("\tm07"));
    assert_eq!(fx.listing(&tree).len(), 1000);
}

#[tokio::test]
async fn the_executable_bit_alone_is_a_mode_change_that_applies() {
    let fx = Fixture::new(&[("run.sh", "#!/bin/sh\necho hi\n"), ("bin/tool", "#!/bin/sh\n")]);
    let changes = vec![
        fx.file("run.sh", "#!/bin/sh\necho hi\n", true),
        fx.file("bin/tool", "#!/bin/sh\nexit 0\n", true),
    ];
    let diff = diff_changes(&fx.repo(), &fx.base, &changes).await.unwrap();
    assert_eq!(
        kinds(&diff),
        vec![
            ("bin/tool".into(), FileChangeKind::Modified),
            ("run.sh".into(), FileChangeKind::ModeChanged),
        ]
    );
    assert!(diff.patch.contains("old mode 100644\nnew mode 100755"), "{}", diff.patch);
    assert_eq!(fx.apply_to_clone(&diff.patch), lines(&["100755 bin/tool", "100755 run.sh"]));
}

#[tokio::test]
async fn new_files_ignored_by_a_gitignore_above_them_are_left_out() {
    let fx = Fixture::new(&[
        (".gitignore", "*.log\n__pycache__/\n"),
        ("pkg/.gitignore", "out/\n"),
        ("pkg/src/lib.rs", "fn a() {}\n"),
        ("pkg/src/tracked.log", "tracked despite the pattern\n"),
        ("other/.gitignore", "*.rs\n"),
    ]);
    let changes = vec![
        fx.file("pkg/src/new.rs", "fn b() {}\n", false),
        // Ignored by the nested pkg/.gitignore.
        fx.file("pkg/out/build.o", "object\n", false),
        // Ignored by the root's, in a changed directory.
        fx.file("pkg/src/debug.log", "noise\n", false),
        fx.file("pkg/src/__pycache__/lib.cpython-311.pyc", "bytecode\n", false),
        // Tracked in the base: never ignored.
        fx.file("pkg/src/tracked.log", "still tracked\n", false),
        // A .gitignore the change adds, and what it ignores beside it.
        fx.file("gen/.gitignore", "*.tmp\n", false),
        fx.file("gen/a.tmp", "scratch\n", false),
        fx.file("gen/b.rs", "fn c() {}\n", false),
        // other/.gitignore is not above pkg/: its `*.rs` must not reach pkg/src/new.rs.
    ];
    let diff = diff_changes(&fx.repo(), &fx.base, &changes).await.unwrap();
    assert_eq!(
        kinds(&diff),
        vec![
            ("gen/.gitignore".into(), FileChangeKind::Added),
            ("gen/b.rs".into(), FileChangeKind::Added),
            ("pkg/src/new.rs".into(), FileChangeKind::Added),
            ("pkg/src/tracked.log".into(), FileChangeKind::Modified),
        ]
    );
    assert!(!diff.patch.contains("pycache"), "{}", diff.patch);

    // A directory holding only ignored files does not appear at all.
    let changes = vec![fx.file("pkg/out/only.o", "object\n", false)];
    let tree = tree_with_changes(&fx.repo(), &fx.base, &changes).await.unwrap();
    let base_tree = git(&fx.repo(), &["rev-parse", &format!("{}^{{tree}}", fx.base)]);
    assert_eq!(tree, base_tree.trim());
}

#[tokio::test]
async fn no_changes_give_the_base_tree_and_an_empty_diff() {
    let fx = Fixture::new(&[("a.txt", "a\n"), ("d/b.txt", "b\n")]);
    let tree = tree_with_changes(&fx.repo(), &fx.base, &[]).await.unwrap();
    let base_tree = git(&fx.repo(), &["rev-parse", &format!("{}^{{tree}}", fx.base)]);
    assert_eq!(tree, base_tree.trim());
    let same = vec![fx.file("d/b.txt", "b\n", false)];
    assert!(diff_changes(&fx.repo(), &fx.base, &same).await.unwrap().files.is_empty());
}

#[tokio::test]
async fn a_base_that_is_not_there_is_an_error() {
    let fx = Fixture::new(&[("a.txt", "a\n")]);
    let changes = vec![fx.file("a.txt", "b\n", false)];
    let missing = "0123456789012345678901234567890123456789";
    let error = diff_changes(&fx.repo(), missing, &changes).await.unwrap_err();
    assert!(matches!(error, errand_git::GitError::NoSuchCommit(_)), "{error}");
    assert!(error.to_string().contains(missing), "{error}");
}
