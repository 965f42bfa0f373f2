//! An attempt's writable layer on the host, and reading what the agent changed from it.
//!
//! ```text
//! <data_dir>/attempts/<attempt>/
//!   upper/   overlayfs upper layer: everything the agent wrote (root of /workspace)
//!   work/    overlayfs work directory (same file system as upper/, as overlayfs requires)
//!   merged/  mount point of the overlay (mounted only inside each command's mount namespace)
//!   tmp/     /tmp of the sandbox
//!   home/    /home/agent
//!   etc/     generated passwd, group, hosts
//!   errand   mount point for the helper binary
//! ```
//!
//! The upper layer is read with `lstat` semantics only: a symlink the agent made is data, never
//! followed. overlayfs marks a deleted name with a *whiteout*, a character device with device
//! number 0/0, and a directory whose lower contents are hidden as *opaque* with the xattr
//! `trusted.overlay.opaque="y"` (Linux, Documentation/filesystems/overlayfs.rst, "whiteouts and
//! opaque directories").

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use errand_git::PathChange;

use crate::SandboxError;

/// The directories and files of one attempt.
#[derive(Debug, Clone)]
pub(crate) struct AttemptLayout {
    root: PathBuf,
}

impl AttemptLayout {
    pub fn new(data_dir: &Path, attempt: &str) -> Result<AttemptLayout, SandboxError> {
        let valid = !attempt.is_empty()
            && attempt != "."
            && attempt != ".."
            && attempt.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(SandboxError::Setup(format!(
                "attempt id `{attempt}` is not usable as a directory name (letters, digits, `-`, `_`, `.`)"
            )));
        }
        Ok(AttemptLayout { root: data_dir.join("attempts").join(attempt) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn upper(&self) -> PathBuf {
        self.root.join("upper")
    }
    pub fn etc(&self) -> PathBuf {
        self.root.join("etc")
    }
    pub fn helper_mount_point(&self) -> PathBuf {
        self.root.join("errand")
    }

    /// Creates the directories; the agent's (upper, tmp, home) belong to `uid`.
    pub fn create_blocking(&self, uid: u32) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::create_dir_all(self.root.parent().unwrap_or(&self.root))?;
        // Fails if the attempt exists already: two sandboxes must never share a layer.
        std::fs::DirBuilder::new().mode(0o755).create(&self.root)?;
        for (name, owned_by_agent, mode) in [
            ("upper", true, 0o755),
            ("work", false, 0o700),
            ("merged", false, 0o755),
            ("tmp", true, 0o700),
            ("home", true, 0o700),
            ("etc", false, 0o755),
        ] {
            let dir = self.root.join(name);
            std::fs::DirBuilder::new().mode(mode).create(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
            if owned_by_agent {
                std::os::unix::fs::lchown(&dir, Some(uid), Some(uid))?;
            }
        }
        std::fs::File::create(self.helper_mount_point())?;
        Ok(())
    }
}

/// What one entry of the upper layer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpperEntry {
    File {
        executable: bool,
    },
    Symlink,
    /// Whiteout: the name was deleted.
    Whiteout,
    /// A directory; `opaque` when it hides the lower layer's directory of the same name.
    Dir {
        opaque: bool,
    },
    /// Something git cannot hold (fifo, socket, device): left out of the diff.
    Other,
}

/// Classifies an entry from its `lstat` facts.
pub(crate) fn classify(
    file_type: std::fs::FileType,
    mode: u32,
    rdev: u64,
    opaque: bool,
) -> UpperEntry {
    if file_type.is_file() {
        // git records only the owner's execute bit (100755 or 100644).
        UpperEntry::File { executable: mode & 0o100 != 0 }
    } else if file_type.is_symlink() {
        UpperEntry::Symlink
    } else if file_type.is_dir() {
        UpperEntry::Dir { opaque }
    } else if file_type.is_char_device() && rdev == 0 {
        UpperEntry::Whiteout
    } else {
        UpperEntry::Other
    }
}

/// Walks the upper layer (blocking; call from `spawn_blocking`) and lists the changes. `.git`
/// directories are skipped at every depth: git never tracks them, and the workspace's own
/// `.git` is the agent's scratch space, not part of the result.
pub(crate) fn read_upper_blocking(upper: &Path) -> Result<Vec<PathChange>, SandboxError> {
    let mut changes = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let host_dir = upper.join(&dir);
        let entries = std::fs::read_dir(&host_dir).map_err(|source| SandboxError::Io {
            context: format!("cannot read the upper layer at {}", host_dir.display()),
            source,
        })?;
        let mut names: Vec<_> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SandboxError::Io {
                context: format!("cannot read the upper layer at {}", host_dir.display()),
                source,
            })?;
            names.push(entry.file_name());
        }
        names.sort();
        for name in names {
            if name == OsStr::new(".git") {
                continue;
            }
            let path = dir.join(&name);
            let source = upper.join(&path);
            let meta =
                std::fs::symlink_metadata(&source).map_err(|source_err| SandboxError::Io {
                    context: format!("cannot lstat {}", source.display()),
                    source: source_err,
                })?;
            let opaque = meta.is_dir() && is_opaque(&source);
            match classify(meta.file_type(), meta.mode(), meta.rdev(), opaque) {
                UpperEntry::File { executable } => {
                    changes.push(PathChange::File { path, source, executable })
                }
                UpperEntry::Symlink => {
                    let target = std::fs::read_link(&source).map_err(|e| SandboxError::Io {
                        context: format!("cannot read the symlink {}", source.display()),
                        source: e,
                    })?;
                    changes.push(PathChange::Symlink { path, target });
                }
                UpperEntry::Whiteout => changes.push(PathChange::Removed { path }),
                UpperEntry::Dir { opaque } => {
                    if opaque {
                        changes.push(PathChange::Replaced { path: path.clone() });
                    }
                    pending.push(path);
                }
                UpperEntry::Other => {
                    tracing::debug!(path = %path.display(), "not a file git can hold; left out of the diff");
                }
            }
        }
    }
    Ok(changes)
}

/// Whether overlayfs marked the directory opaque (`trusted.overlay.opaque` = `y`).
fn is_opaque(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 8];
    // SAFETY: both pointers are valid for the lengths given; lgetxattr does not follow symlinks.
    let len = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    len == 1 && value[0] == b'y'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(dir: &Path) -> (std::fs::FileType, std::fs::FileType, std::fs::FileType) {
        std::fs::write(dir.join("f"), "x").unwrap();
        std::os::unix::fs::symlink("f", dir.join("l")).unwrap();
        std::fs::create_dir(dir.join("d")).unwrap();
        let t = |n: &str| std::fs::symlink_metadata(dir.join(n)).unwrap().file_type();
        (t("f"), t("l"), t("d"))
    }

    #[test]
    fn classifies_files_links_and_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let (file, link, dir) = types(tmp.path());
        let cases = [
            (file, 0o100644, 0, false, UpperEntry::File { executable: false }),
            (file, 0o100755, 0, false, UpperEntry::File { executable: true }),
            (file, 0o100744, 0, false, UpperEntry::File { executable: true }),
            (file, 0o100655, 0, false, UpperEntry::File { executable: false }),
            (link, 0o120777, 0, false, UpperEntry::Symlink),
            (dir, 0o40755, 0, false, UpperEntry::Dir { opaque: false }),
            (dir, 0o40755, 0, true, UpperEntry::Dir { opaque: true }),
        ];
        for (file_type, mode, rdev, opaque, expected) in cases {
            assert_eq!(classify(file_type, mode, rdev, opaque), expected, "mode {mode:o}");
        }
    }

    #[test]
    fn a_char_device_0_0_is_a_whiteout_and_other_devices_are_not() {
        let null = std::fs::symlink_metadata("/dev/null").unwrap();
        // /dev/null is 1:3, a real device: not a whiteout.
        assert_eq!(classify(null.file_type(), null.mode(), null.rdev(), false), UpperEntry::Other);
        assert_eq!(classify(null.file_type(), null.mode(), 0, false), UpperEntry::Whiteout);
    }

    #[test]
    fn reads_an_upper_layer_with_lstat_semantics() {
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path();
        std::fs::create_dir_all(upper.join("src/deep")).unwrap();
        std::fs::create_dir_all(upper.join(".git/objects")).unwrap();
        std::fs::create_dir_all(upper.join("vendor/.git")).unwrap();
        std::fs::write(upper.join("src/deep/a.rs"), "fn a() {}").unwrap();
        std::fs::write(upper.join(".git/objects/x"), "").unwrap();
        std::fs::write(upper.join("vendor/.git/HEAD"), "").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", upper.join("link")).unwrap();
        let changes = read_upper_blocking(upper).unwrap();
        assert_eq!(
            changes,
            vec![
                PathChange::Symlink { path: "link".into(), target: "/etc/passwd".into() },
                PathChange::File {
                    path: "src/deep/a.rs".into(),
                    source: upper.join("src/deep/a.rs"),
                    executable: false
                },
            ]
        );
    }

    #[test]
    fn attempt_ids_cannot_leave_the_attempts_directory() {
        for bad in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(AttemptLayout::new(Path::new("/d"), bad).is_err(), "{bad:?}");
        }
        let ok = AttemptLayout::new(Path::new("/d"), "att_01J-x.1").unwrap();
        assert_eq!(ok.upper(), Path::new("/d/attempts/att_01J-x.1/upper"));
    }
}
