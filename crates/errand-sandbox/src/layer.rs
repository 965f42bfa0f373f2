//! An attempt's writable layer on the host, and reading what the agent changed from it.
//!
//! ```text
//! <data_dir>/attempts/<attempt>/
//!   upper/   overlayfs upper layer: everything the agent wrote (root of /workspace)
//!   work/    overlayfs work directory (same file system as upper/, as overlayfs requires)
//!   merged/  mount point of the overlay (mounted only inside each command's mount namespace)
//!   tmp/     /tmp of the sandbox
//!   home/    /home/agent; with a snapshot, the upper layer over the snapshot's home
//!   home-work/ home-merged/            (with a snapshot) that overlay's work dir and mount point
//!   usr-local/ usr-local-work/ usr-local-merged/
//!            (with a snapshot) /usr/local: upper layer over the snapshot's over the host's
//!   etc/     generated passwd, group, hosts
//!   errand   mount point for the helper binary
//! ```
//!
//! Layers stack with overlayfs's `lowerdir=top:…:bottom`: an attempt over a snapshot sees
//! `upper` over the snapshot's `workspace/` (what setup wrote, whiteouts included) over the
//! checkout. The diff reads `upper` alone and compares it with the tree of the snapshot's
//! workspace merged over the base commit (`snapshot.rs`), so what setup made is the agent's
//! starting point, not its change.
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

/// One overlay: `lowers` from top to bottom, and the writable `upper` with its `work` dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Overlay {
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl Overlay {
    /// The mount options. overlayfs(5): redirect_dir and metacopy off, so a renamed directory
    /// is a real copy and every upper file holds its full data (the diff reads contents from
    /// the upper layer). Paths were checked to hold no `,` or `:` (`check_host`).
    pub fn options(&self) -> String {
        let lowers: Vec<String> = self.lowers.iter().map(|p| p.display().to_string()).collect();
        format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
            lowers.join(":"),
            self.upper.display(),
            self.work.display()
        )
    }
}

/// What `/home/agent` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HomeLayer {
    /// A plain directory (an attempt without a snapshot; the setup phase's snapshot home).
    Dir(PathBuf),
    /// An overlay over a snapshot's home.
    Overlay(Overlay),
}

/// The file systems a sandbox's commands see as their workspace, home and `/usr/local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layers {
    pub workspace: Overlay,
    pub home: HomeLayer,
    /// `None`: the host's `/usr/local`, read-only with the rest of `/usr`.
    pub usr_local: Option<Overlay>,
}

impl Layers {
    /// An attempt with no snapshot: its upper layer over the checkout, its own home.
    pub fn plain(layout: &AttemptLayout, checkout: &Path) -> Layers {
        Layers {
            workspace: Overlay {
                lowers: vec![checkout.to_path_buf()],
                upper: layout.upper(),
                work: layout.root().join("work"),
            },
            home: HomeLayer::Dir(layout.root().join("home")),
            usr_local: None,
        }
    }

    /// An attempt's own upper layers over `below` (each list top first): the snapshot's
    /// workspace, home and usr-local layers (and a maintenance layer above them, if any).
    pub fn over(layout: &AttemptLayout, checkout: &Path, below: &[PathBuf]) -> Layers {
        let lowers = |name: &str, bottom: Option<&Path>| {
            let mut list: Vec<PathBuf> = below.iter().map(|layer| layer.join(name)).collect();
            list.extend(bottom.map(Path::to_path_buf));
            list
        };
        let root = layout.root();
        Layers {
            workspace: Overlay {
                lowers: lowers("workspace", Some(checkout)),
                upper: layout.upper(),
                work: root.join("work"),
            },
            home: HomeLayer::Overlay(Overlay {
                lowers: lowers("home", None),
                upper: root.join("home"),
                work: root.join("home-work"),
            }),
            usr_local: Some(Overlay {
                lowers: lowers("usr-local", Some(Path::new(HOST_USR_LOCAL))),
                upper: root.join("usr-local"),
                work: root.join("usr-local-work"),
            }),
        }
    }

    /// A setup or maintenance run writing into `layer` (its `workspace/`, `home/`, `usr-local/`,
    /// with work dirs under `layer/.work/`), over `below` (a snapshot, for maintenance; nothing,
    /// for setup: then over the checkout, an empty home and the host's /usr/local).
    pub fn into_layer(checkout: &Path, layer: &Path, below: &[PathBuf]) -> Layers {
        let lowers = |name: &str, bottom: Option<&Path>| {
            let mut list: Vec<PathBuf> = below.iter().map(|l| l.join(name)).collect();
            list.extend(bottom.map(Path::to_path_buf));
            list
        };
        let overlay = |name: &str, bottom: Option<&Path>| Overlay {
            lowers: lowers(name, bottom),
            upper: layer.join(name),
            work: layer.join(LAYER_WORK).join(name),
        };
        Layers {
            workspace: overlay("workspace", Some(checkout)),
            home: if below.is_empty() {
                HomeLayer::Dir(layer.join("home"))
            } else {
                HomeLayer::Overlay(overlay("home", None))
            },
            usr_local: Some(overlay("usr-local", Some(Path::new(HOST_USR_LOCAL)))),
        }
    }
}

/// The work directories of a layer being written (removed before it is used as a lower).
pub(crate) const LAYER_WORK: &str = ".work";

/// The host directory under a snapshot's `/usr/local` layer.
pub(crate) const HOST_USR_LOCAL: &str = "/usr/local";

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
        Ok(AttemptLayout { root: Self::all(data_dir).join(attempt) })
    }

    /// The directory that holds every attempt's directory.
    pub fn all(data_dir: &Path) -> PathBuf {
        data_dir.join("attempts")
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
            ("home-work", false, 0o700),
            ("home-merged", false, 0o755),
            // Root's like the host's /usr/local; the snapshot's subdirectories are the agent's.
            ("usr-local", false, 0o755),
            ("usr-local-work", false, 0o700),
            ("usr-local-merged", false, 0o755),
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
