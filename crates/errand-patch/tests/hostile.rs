//! Patches a hostile model might send to reach outside the workspace. Each case builds, in a
//! fresh temp dir, a workspace `root/` and an `outside/` directory with a sentinel file, plus
//! symlinks inside the root that point out; applies the patch; and asserts the error and that
//! NOTHING changed anywhere in the temp dir (outside sentinel and root alike).
#![cfg(unix)]

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use errand_patch::{PatchError, apply_patch};

const SENTINEL: &str = "sentinel: must never change\n";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("sentinel.txt"), SENTINEL).unwrap();
        std::fs::write(root.join("inside.txt"), "inside\n").unwrap();
        std::fs::write(root.join("sub/deeper/keep.txt"), "keep\n").unwrap();
        // Symlinks placed inside the root by an earlier (sandboxed) command.
        symlink(&outside, root.join("link_dir")).unwrap();
        symlink(&outside, root.join("sub/link_dir")).unwrap();
        symlink(outside.join("sentinel.txt"), root.join("link_file")).unwrap();
        symlink("../outside/sentinel.txt", root.join("rel_link_file")).unwrap();
        symlink(outside.join("not-yet.txt"), root.join("dangling")).unwrap();
        symlink("hop2", root.join("hop1")).unwrap();
        symlink("sub/../../outside", root.join("hop2")).unwrap();
        symlink("loop_b", root.join("loop_a")).unwrap();
        symlink("loop_a", root.join("loop_b")).unwrap();
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// Every entry under the temp dir: files with contents, symlinks with targets, directories.
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(base).unwrap().to_path_buf();
                let ft = std::fs::symlink_metadata(&path).unwrap().file_type();
                if ft.is_symlink() {
                    out.insert(rel, format!("-> {}", std::fs::read_link(&path).unwrap().display()));
                } else if ft.is_dir() {
                    out.insert(rel, "dir".into());
                    walk(base, &path, out);
                } else {
                    out.insert(rel, String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out
    }
}

/// Applies `patch` (with `{OUT}` replaced by the outside directory and `{ROOT}` by the root)
/// from `cwd` (relative to the root) and checks it is refused without any change.
fn assert_refused(name: &str, cwd: &str, patch: &str, want: &str) {
    let fx = Fixture::new();
    let patch = patch
        .replace("{OUT}", fx.outside().to_str().unwrap())
        .replace("{ROOT}", fx.root().to_str().unwrap());
    let before = fx.snapshot();
    let result = apply_patch(&fx.root(), &fx.root().join(cwd), &patch);
    let after = fx.snapshot();
    let err = match result {
        Ok(summary) => panic!("{name}: hostile patch was applied: {summary:?}"),
        Err(e) => e,
    };
    assert!(err.applied_changes().is_empty(), "{name}: partially applied: {err}");
    assert!(err.to_string().contains(want), "{name}: error {err:?} lacks {want:?}");
    assert_eq!(before, after, "{name}: the file system changed");
    assert_eq!(std::fs::read_to_string(fx.outside().join("sentinel.txt")).unwrap(), SENTINEL);
}

const OUTSIDE: &str = "is outside the workspace";

#[test]
fn hostile_patches_are_refused_and_change_nothing() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "update via ..",
            "",
            "*** Update File: ../outside/sentinel.txt\n-sentinel: must never change\n+owned",
            OUTSIDE,
        ),
        ("add via ..", "", "*** Add File: ../escape.txt\n+x", OUTSIDE),
        ("delete via ..", "", "*** Delete File: ../outside/sentinel.txt", OUTSIDE),
        (
            "dotdot from a subdirectory cwd",
            "sub/deeper",
            "*** Delete File: ../../../outside/sentinel.txt",
            OUTSIDE,
        ),
        ("dotdot hidden in the middle", "", "*** Add File: sub/deeper/../../../x.txt\n+x", OUTSIDE),
        (
            "absolute update",
            "",
            "*** Update File: {OUT}/sentinel.txt\n-sentinel: must never change\n+owned",
            OUTSIDE,
        ),
        ("absolute add", "", "*** Add File: /tmp/errand-patch-hostile-absolute.txt\n+x", OUTSIDE),
        ("absolute delete", "", "*** Delete File: {OUT}/sentinel.txt", OUTSIDE),
        (
            "absolute path under root then ..",
            "",
            "*** Delete File: {ROOT}/../outside/sentinel.txt",
            OUTSIDE,
        ),
        ("symlinked dir: add", "", "*** Add File: link_dir/new.txt\n+x", OUTSIDE),
        (
            "symlinked dir: update",
            "",
            "*** Update File: link_dir/sentinel.txt\n-sentinel: must never change\n+owned",
            OUTSIDE,
        ),
        ("symlinked dir: delete", "", "*** Delete File: link_dir/sentinel.txt", OUTSIDE),
        (
            "symlinked dir in the middle",
            "",
            "*** Add File: sub/link_dir/nested/new.txt\n+x",
            OUTSIDE,
        ),
        ("symlinked dir relative to cwd", "sub", "*** Delete File: link_dir/sentinel.txt", OUTSIDE),
        (
            "final symlink: update",
            "",
            "*** Update File: link_file\n-sentinel: must never change\n+owned",
            OUTSIDE,
        ),
        ("final symlink: relative target", "", "*** Update File: rel_link_file\n+owned", OUTSIDE),
        ("final symlink: delete", "", "*** Delete File: link_file", OUTSIDE),
        ("final symlink: add overwrites", "", "*** Add File: link_file\n+owned", OUTSIDE),
        (
            "final symlink: move onto it",
            "",
            "*** Update File: inside.txt\n*** Move to: link_file\n@@\n-inside\n+owned",
            OUTSIDE,
        ),
        (
            "final symlink: move from it",
            "",
            "*** Update File: link_file\n*** Move to: stolen.txt\n@@\n+x",
            OUTSIDE,
        ),
        ("dangling symlink pointing out", "", "*** Add File: dangling\n+x", OUTSIDE),
        ("chain of relative symlinks", "", "*** Add File: hop1/x.txt\n+x", OUTSIDE),
        (
            "move destination via ..",
            "",
            "*** Update File: inside.txt\n*** Move to: ../moved.txt\n@@\n-inside\n+moved",
            OUTSIDE,
        ),
        (
            "move destination absolute",
            "",
            "*** Update File: inside.txt\n*** Move to: {OUT}/moved.txt\n@@\n-inside\n+moved",
            OUTSIDE,
        ),
        (
            "move destination via symlinked dir",
            "",
            "*** Update File: inside.txt\n*** Move to: link_dir/moved.txt\n@@\n-inside\n+moved",
            OUTSIDE,
        ),
        // Validation covers the whole patch: the harmless hunks before the bad one are not applied.
        (
            "good hunks before a bad one",
            "",
            "*** Add File: fine.txt\n+fine\n*** Update File: inside.txt\n@@\n-inside\n+changed\n*** Delete File: sub/deeper/keep.txt\n*** Add File: ../escape.txt\n+x",
            OUTSIDE,
        ),
        ("empty path", "", "*** Delete File:   ", "path after the header is empty"),
        ("NUL in path", "", "*** Add File: a\u{0}b\n+x", "contains a NUL byte"),
        ("symlink loop", "", "*** Add File: loop_a/x.txt\n+x", "too many levels of symbolic links"),
        ("path naming a directory", "", "*** Add File: sub/..\n+x", "must end with a file name"),
    ];
    for (name, cwd, body, want) in cases {
        assert_refused(name, cwd, &format!("*** Begin Patch\n{body}\n*** End Patch\n"), want);
    }
}

#[test]
fn cwd_outside_root_is_refused() {
    let fx = Fixture::new();
    let before = fx.snapshot();
    let patch = "*** Begin Patch\n*** Add File: x.txt\n+x\n*** End Patch\n";
    for cwd in [fx.outside(), fx.root().join("link_dir")] {
        let err = apply_patch(&fx.root(), &cwd, patch).unwrap_err();
        assert!(matches!(err, PatchError::CwdOutsideRoot { .. }), "{cwd:?}: {err}");
    }
    assert_eq!(before, fx.snapshot());
}

/// A hard link inside the root to a file outside cannot be refused by looking at paths, but
/// writes replace the directory entry instead of writing through it, so the outside file keeps
/// its contents.
#[test]
fn hard_link_to_an_outside_file_is_never_written_through() {
    let fx = Fixture::new();
    let hard = fx.root().join("hard.txt");
    if std::fs::hard_link(fx.outside().join("sentinel.txt"), &hard).is_err() {
        eprintln!("SKIPPED: this file system does not support hard links");
        return;
    }
    let patch = "*** Begin Patch\n*** Update File: hard.txt\n-sentinel: must never change\n+owned\n*** End Patch\n";
    apply_patch(&fx.root(), &fx.root(), patch).unwrap();
    assert_eq!(std::fs::read_to_string(&hard).unwrap(), "owned\n");
    assert_eq!(std::fs::read_to_string(fx.outside().join("sentinel.txt")).unwrap(), SENTINEL);
    let add = "*** Begin Patch\n*** Add File: hard2.txt\n+x\n*** End Patch\n";
    std::fs::hard_link(fx.outside().join("sentinel.txt"), fx.root().join("hard2.txt")).unwrap();
    apply_patch(&fx.root(), &fx.root(), add).unwrap();
    assert_eq!(std::fs::read_to_string(fx.outside().join("sentinel.txt")).unwrap(), SENTINEL);
}

/// Symlinks that stay inside the root are ordinary: followed, and the change lands on the target.
#[test]
fn symlinks_inside_the_root_still_work() {
    let fx = Fixture::new();
    symlink("sub/deeper", fx.root().join("alias")).unwrap();
    let patch = "*** Begin Patch\n*** Update File: alias/keep.txt\n-keep\n+kept\n*** End Patch\n";
    let summary = apply_patch(&fx.root(), &fx.root(), patch).unwrap();
    assert_eq!(summary.render(), "Success. Updated the following files:\nM alias/keep.txt\n");
    assert_eq!(std::fs::read_to_string(fx.root().join("sub/deeper/keep.txt")).unwrap(), "kept\n");
    assert_eq!(std::fs::read_to_string(fx.outside().join("sentinel.txt")).unwrap(), SENTINEL);
}
