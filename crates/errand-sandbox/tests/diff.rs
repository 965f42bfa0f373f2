//! The diff of an attempt, computed from its real overlay upper layer, against the base commit:
//! what it lists, and that its patch rebuilds the agent's tree on a fresh clone.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Fixture, git, sandbox_available, sh};
use errand_protocol::{FileChange, FileChangeKind};
use errand_sandbox::{LocalSandbox, Sandbox};

const RENAMED: &[u8] =
    b"pub fn a() {}\npub fn b() {}\npub fn c() {}\npub fn d() {}\npub fn e() {}\n\
pub fn f() {}\npub fn g() {}\npub fn h() {}\npub fn i() {}\npub fn j() {}\n";

fn fixture() -> Fixture {
    Fixture::new(&[
        ("README.md", b"# demo\n"),
        ("data.txt", b"one\ntwo\n"),
        ("script.sh", b"#!/bin/sh\necho hi\n"),
        ("image.bin", b"\x00\x01\x02\x03binary"),
        ("src/lib.rs", b"pub fn one() -> u32 { 1 }\n"),
        ("src/old_name.rs", RENAMED),
        ("docs/a.md", b"a\n"),
        ("docs/deep/b.md", b"b\n"),
        (".gitignore", b"target/\n*.pyc\n"),
    ])
}

fn kinds(files: &[FileChange]) -> Vec<(String, FileChangeKind)> {
    let mut kinds: Vec<_> = files.iter().map(|f| (f.path.clone(), f.kind.clone())).collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    kinds
}

/// Applies the patch to a fresh clone of the base and returns the clone.
async fn apply_to_fresh_clone(fx: &Fixture, patch: &str) -> std::path::PathBuf {
    let fresh = fx.tmp.path().join("fresh");
    git(fx.tmp.path(), &["clone", "-q", fx.repo.to_str().unwrap(), fresh.to_str().unwrap()]);
    let repo = errand_git::Repo::discover(&fresh).await.unwrap();
    repo.apply(patch, true).await.expect("the patch checks");
    repo.apply(patch, false).await.expect("the patch applies");
    fresh
}

fn read(root: &Path, path: &str) -> Vec<u8> {
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn every_kind_of_change_and_the_patch_applies() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("diff").await;
    let script = r#"set -e
printf 'hello\n' > new.txt
echo more >> README.md
rm data.txt
mv src/old_name.rs src/new_name.rs
printf '\000\001\002\377' > blob.bin
printf '\000changed' > image.bin
chmod +x script.sh
ln -s README.md link
cat src/lib.rs > /tmp/same && cat /tmp/same > src/lib.rs
rm -r docs
mkdir -p target/debug && echo app > target/debug/app
echo cache > mod.pyc
printf 'out/\n' >> .gitignore && mkdir out && echo built > out/file
mkdir -p vendor/dep/.git && echo ref > vendor/dep/.git/HEAD
git status --short > /dev/null
"#;
    let (outcome, output) = sh(&sandbox, script).await;
    assert!(outcome.success(), "{output}");

    let diff = sandbox.diff().await.unwrap();
    assert_eq!(
        kinds(&diff.files),
        vec![
            (".gitignore".into(), FileChangeKind::Modified),
            ("README.md".into(), FileChangeKind::Modified),
            ("blob.bin".into(), FileChangeKind::Added),
            ("data.txt".into(), FileChangeKind::Deleted),
            ("docs/a.md".into(), FileChangeKind::Deleted),
            ("docs/deep/b.md".into(), FileChangeKind::Deleted),
            ("image.bin".into(), FileChangeKind::Modified),
            ("link".into(), FileChangeKind::Added),
            ("new.txt".into(), FileChangeKind::Added),
            ("script.sh".into(), FileChangeKind::ModeChanged),
            ("src/new_name.rs".into(), FileChangeKind::Renamed { from: "src/old_name.rs".into() }),
        ],
        "{}",
        diff.patch
    );
    let readme = diff.files.iter().find(|f| f.path == "README.md").unwrap();
    assert_eq!((readme.insertions, readme.deletions, readme.binary), (1, 0, false));
    let blob = diff.files.iter().find(|f| f.path == "blob.bin").unwrap();
    assert!(blob.binary);
    assert!(diff.patch.contains("GIT binary patch"));

    let fresh = apply_to_fresh_clone(&fx, &diff.patch).await;
    assert_eq!(read(&fresh, "new.txt"), b"hello\n");
    assert_eq!(read(&fresh, "README.md"), b"# demo\nmore\n");
    assert_eq!(read(&fresh, "blob.bin"), b"\x00\x01\x02\xff");
    assert_eq!(read(&fresh, "image.bin"), b"\x00changed");
    assert_eq!(read(&fresh, "src/new_name.rs"), RENAMED);
    assert!(!fresh.join("data.txt").exists());
    assert!(!fresh.join("src/old_name.rs").exists());
    assert!(!fresh.join("docs").exists());
    assert!(!fresh.join("target").exists() && !fresh.join("mod.pyc").exists());
    assert!(!fresh.join("out").exists() && !fresh.join("vendor").exists());
    assert_eq!(std::fs::read_link(fresh.join("link")).unwrap(), Path::new("README.md"));
    let mode = std::fs::metadata(fresh.join("script.sh")).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111);
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn an_untouched_or_identically_rewritten_workspace_has_an_empty_diff() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("same").await;
    assert_eq!(sandbox.diff().await.unwrap(), Default::default());
    // Copied up, touched, mode set to what it was: all in the upper layer, none a change.
    let (outcome, output) = sh(
        &sandbox,
        "cp README.md /tmp/r && cat /tmp/r > README.md && touch data.txt && chmod 644 src/lib.rs \
         && mkdir -p target && echo x > target/out",
    )
    .await;
    assert!(outcome.success(), "{output}");
    let upper = fx.data_dir().join("attempts/same/upper");
    assert!(upper.join("README.md").exists(), "the rewrite should be copied up");
    let diff = sandbox.diff().await.unwrap();
    assert_eq!(diff.patch, "");
    assert_eq!(diff.files, vec![]);
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_directory_replaced_wholesale_is_an_opaque_directory() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("opaque").await;
    // docs is replaced by a new directory (opaque in the upper layer); src/lib.rs, a file,
    // becomes a directory; script.sh becomes a symlink.
    let script = "rm -r docs && mkdir docs && echo c > docs/c.md && echo a > docs/a.md \
        && rm src/lib.rs && mkdir src/lib.rs && echo inner > src/lib.rs/mod.rs \
        && rm script.sh && ln -s README.md script.sh";
    let (outcome, output) = sh(&sandbox, script).await;
    assert!(outcome.success(), "{output}");
    let diff = sandbox.diff().await.unwrap();
    assert_eq!(
        kinds(&diff.files),
        vec![
            ("docs/c.md".into(), FileChangeKind::Added),
            ("docs/deep/b.md".into(), FileChangeKind::Deleted),
            ("script.sh".into(), FileChangeKind::Modified),
            ("src/lib.rs".into(), FileChangeKind::Deleted),
            ("src/lib.rs/mod.rs".into(), FileChangeKind::Added),
        ],
        "{}",
        diff.patch
    );
    let fresh = apply_to_fresh_clone(&fx, &diff.patch).await;
    assert_eq!(read(&fresh, "docs/a.md"), b"a\n");
    assert_eq!(read(&fresh, "docs/c.md"), b"c\n");
    assert!(!fresh.join("docs/deep").exists());
    assert_eq!(read(&fresh, "src/lib.rs/mod.rs"), b"inner\n");
    assert!(std::fs::symlink_metadata(fresh.join("script.sh")).unwrap().is_symlink());
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn text_in_another_encoding_survives_the_patch() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("latin1").await;
    let (outcome, _) =
        sh(&sandbox, r"printf 'caf\351\n' > latin1.txt && printf 'na\357ve\n' >> README.md").await;
    assert!(outcome.success());
    let diff = sandbox.diff().await.unwrap();
    assert_eq!(diff.files.len(), 2, "{:?}", diff.files);
    // Held as binary patches: a String cannot carry the Latin-1 bytes as text.
    assert_eq!(diff.patch.matches("GIT binary patch").count(), 2, "{}", diff.patch);
    let fresh = apply_to_fresh_clone(&fx, &diff.patch).await;
    assert_eq!(read(&fresh, "latin1.txt"), b"caf\xe9\n");
    assert_eq!(read(&fresh, "README.md"), b"# demo\nna\xefve\n");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn the_diff_is_against_the_base_even_after_the_repository_moves_on() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let base = fx.head();
    let sandbox = LocalSandbox::create(&fx.config, &fx.repo, &base[..12], "moving").await.unwrap();
    assert_eq!(sandbox.base_commit(), base);
    std::fs::write(fx.repo.join("README.md"), "# changed upstream\n").unwrap();
    git(&fx.repo, &["commit", "-qam", "upstream"]);
    sh(&sandbox, "echo x > x.txt").await;
    let diff = sandbox.diff().await.unwrap();
    assert_eq!(kinds(&diff.files), vec![("x.txt".into(), FileChangeKind::Added)]);
    sandbox.destroy().await.unwrap();
}
