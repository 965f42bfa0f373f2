//! Keeping every file operation inside the workspace root.
//!
//! Invariant: a [`Target`] only exists for a path whose physical location, with every symlink on
//! the way resolved the way the kernel would, lies under the canonical root: no `..` above it, no
//! absolute path elsewhere, no symlinked directory or final symlink pointing out of it (dangling
//! ones included, judged by where they point). The applier resolves all paths of a patch before
//! writing anything, and again right before each hunk, then works on the resolved locations.
//!
//! This is the second wall, not the only one: in production the helper runs inside the attempt's
//! sandbox, which cannot see the host anyway (design.md, "All file work happens inside the
//! sandbox"). A process racing us inside the root could still swap a directory for a symlink
//! between check and use; writes go through a fresh temporary file renamed into place, which at
//! least never writes through a hard link or a pre-planted symlink at the final name.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::PatchError;

/// Symlinks followed while resolving one path before giving up (Linux's `MAXSYMLINKS` is 40).
const MAX_SYMLINKS: u32 = 40;

/// The root and working directory, canonicalised once.
#[derive(Debug)]
pub(crate) struct Workspace {
    root: PathBuf,
    cwd: PathBuf,
    /// The cwd as the caller spelt it, to shorten absolute paths for display.
    cwd_given: PathBuf,
    root_given: PathBuf,
}

/// A path of the patch, resolved and confined.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The path as the model should see it again (relative to the working directory).
    pub display: String,
    /// The physical directory holding the final component (inside the root).
    pub parent: PathBuf,
    /// The final component as written.
    pub name: OsString,
    /// The physical location of the file after following a final symlink (inside the root).
    pub resolved: PathBuf,
}

impl Target {
    /// The directory entry itself, without following a final symlink (what Delete removes).
    pub fn entry(&self) -> PathBuf {
        self.parent.join(&self.name)
    }
}

/// Why a path failed to resolve.
enum Refusal {
    Outside(String),
    Invalid(String),
    Io(io::Error),
}

impl Workspace {
    pub fn new(root: &Path, cwd: &Path) -> Result<Self, PatchError> {
        let canonical = |p: &Path| {
            std::fs::canonicalize(p).map_err(|source| PatchError::Io {
                path: p.display().to_string(),
                action: "open the workspace directory",
                source,
            })
        };
        let root_c = canonical(root)?;
        // A relative cwd is taken relative to the root.
        let cwd_c = canonical(&root.join(cwd))?;
        if !cwd_c.starts_with(&root_c) {
            return Err(PatchError::CwdOutsideRoot {
                cwd: cwd.display().to_string(),
                root: root.display().to_string(),
            });
        }
        Ok(Self { root: root_c, cwd: cwd_c, cwd_given: root.join(cwd), root_given: root.into() })
    }

    /// Resolves `raw` (as written in the patch) to a confined [`Target`].
    pub fn resolve(&self, raw: &str) -> Result<Target, PatchError> {
        let invalid =
            |reason: &str| PatchError::InvalidPath { path: raw.into(), reason: reason.into() };
        if raw.trim().is_empty() {
            return Err(invalid("the path is empty"));
        }
        if raw.contains('\0') {
            return Err(invalid("the path contains a NUL byte"));
        }
        let path = Path::new(raw);
        let (start, relative) = if path.is_absolute() {
            // An absolute path is fine when it names something under the root, spelt either way.
            let under =
                [&self.root, &self.root_given].into_iter().find_map(|r| path.strip_prefix(r).ok());
            match under {
                Some(rest) => (self.root.clone(), rest.to_path_buf()),
                None => {
                    return Err(PatchError::OutsideWorkspace {
                        path: raw.into(),
                        reason: "an absolute path outside the workspace root".into(),
                    });
                }
            }
        } else {
            (self.cwd.clone(), path.to_path_buf())
        };
        let display = self.display(raw, path);
        self.walk(start, &relative)
            .map(|(parent, name, resolved)| Target { display, parent, name, resolved })
            .map_err(|refusal| match refusal {
                Refusal::Outside(reason) => {
                    PatchError::OutsideWorkspace { path: raw.into(), reason }
                }
                Refusal::Invalid(reason) => PatchError::InvalidPath { path: raw.into(), reason },
                Refusal::Io(source) => {
                    PatchError::Io { path: raw.into(), action: "resolve the path", source }
                }
            })
    }

    /// How a path is shown back: as written, or relative to the cwd when written absolute.
    fn display(&self, raw: &str, path: &Path) -> String {
        if !path.is_absolute() {
            return raw.to_string();
        }
        [&self.cwd, &self.cwd_given]
            .into_iter()
            .find_map(|c| path.strip_prefix(c).ok())
            .filter(|rest| !rest.as_os_str().is_empty())
            .map_or_else(|| raw.to_string(), |rest| rest.display().to_string())
    }

    /// Walks `relative` from `start` physically; returns (parent dir, final name, resolved path).
    fn walk(
        &self,
        start: PathBuf,
        relative: &Path,
    ) -> Result<(PathBuf, OsString, PathBuf), Refusal> {
        let components: Vec<Component> = relative.components().collect();
        let Some((last, dirs)) = components.split_last() else {
            return Err(Refusal::Invalid("the path names no file".into()));
        };
        let Component::Normal(name) = last else {
            return Err(Refusal::Invalid(
                "the path must end with a file name, not '.', '..' or '/'".into(),
            ));
        };
        let mut budget = MAX_SYMLINKS;
        let mut current = start;
        for component in dirs {
            current = step(current, *component, &mut budget)?;
            self.ensure_inside(&current, "it climbs out of the workspace root")?;
        }
        let parent = current.clone();
        let resolved = step(current, *last, &mut budget)?;
        self.ensure_inside(&resolved, "a symlink at its end points out of the workspace root")?;
        Ok((parent, name.to_os_string(), resolved))
    }

    fn ensure_inside(&self, physical: &Path, reason: &str) -> Result<(), Refusal> {
        if physical.starts_with(&self.root) { Ok(()) } else { Err(Refusal::Outside(reason.into())) }
    }
}

/// Moves from the physical directory `current` through one component, following a symlink there
/// (recursively) the way path lookup in the kernel does. Missing entries are taken literally:
/// they cannot be symlinks.
fn step(mut current: PathBuf, component: Component, budget: &mut u32) -> Result<PathBuf, Refusal> {
    match component {
        Component::RootDir | Component::Prefix(_) => Ok(PathBuf::from("/")),
        Component::CurDir => Ok(current),
        Component::ParentDir => {
            current.pop();
            Ok(current)
        }
        Component::Normal(name) => {
            let next = current.join(name);
            match std::fs::symlink_metadata(&next) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    if *budget == 0 {
                        return Err(Refusal::Invalid("too many levels of symbolic links".into()));
                    }
                    *budget -= 1;
                    let target = std::fs::read_link(&next).map_err(Refusal::Io)?;
                    // A symlink's target is resolved from the directory holding the link.
                    target.components().try_fold(current, |dir, c| step(dir, c, budget))
                }
                Ok(_) => Ok(next),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(next),
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    // A file used as a directory.
                    Err(Refusal::Invalid(format!(
                        "'{}' is a file, not a directory",
                        current.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                    )))
                }
                Err(e) => Err(Refusal::Io(e)),
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A temp dir holding `root/` (with `root/sub/`) and `outside/`.
    fn fixture() -> (tempfile::TempDir, PathBuf, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        let ws = Workspace::new(&root, Path::new("sub")).unwrap();
        (dir, root, ws)
    }

    fn outside(ws: &Workspace, raw: &str) -> bool {
        matches!(ws.resolve(raw), Err(PatchError::OutsideWorkspace { .. }))
    }

    #[test]
    fn relative_paths_inside_resolve_against_cwd() {
        let (_dir, root, ws) = fixture();
        let t = ws.resolve("a/b.txt").unwrap();
        let root = std::fs::canonicalize(root).unwrap();
        assert_eq!(t.resolved, root.join("sub/a/b.txt"));
        assert_eq!(t.display, "a/b.txt");
        assert_eq!(ws.resolve("../top.txt").unwrap().resolved, root.join("top.txt"));
        let abs = root.join("sub/x.txt");
        assert_eq!(ws.resolve(abs.to_str().unwrap()).unwrap().display, "x.txt");
    }

    #[test]
    fn escapes_are_refused() {
        let (dir, root, ws) = fixture();
        symlink(dir.path().join("outside"), root.join("sub/out")).unwrap();
        symlink(dir.path().join("outside/f"), root.join("sub/dangling")).unwrap();
        symlink("../../outside", root.join("sub/rel_out")).unwrap();
        symlink(".", root.join("sub/self")).unwrap();
        for raw in [
            "../../x",
            "../sub/../../x",
            "/etc/passwd",
            "out/f",
            "out",
            "dangling",
            "rel_out/x",
            "self/../../outside/x",
            "./../../outside/x",
        ] {
            assert!(outside(&ws, raw), "{raw} should be refused: {:?}", ws.resolve(raw));
        }
    }

    #[test]
    fn symlinks_inside_the_root_are_followed() {
        let (_dir, root, ws) = fixture();
        std::fs::create_dir(root.join("real")).unwrap();
        symlink("../real", root.join("sub/link")).unwrap();
        let t = ws.resolve("link/f.txt").unwrap();
        assert_eq!(t.resolved, std::fs::canonicalize(root.join("real")).unwrap().join("f.txt"));
    }

    #[test]
    fn malformed_paths_are_invalid() {
        let (_dir, root, ws) = fixture();
        symlink("loop", root.join("sub/loop")).unwrap();
        for raw in ["", "  ", "a\0b", "dir/..", ".", "loop"] {
            assert!(
                matches!(ws.resolve(raw), Err(PatchError::InvalidPath { .. })),
                "{raw:?}: {:?}",
                ws.resolve(raw)
            );
        }
    }

    #[test]
    fn cwd_must_be_inside_root() {
        let (dir, root, _ws) = fixture();
        let err = Workspace::new(&root, &dir.path().join("outside")).unwrap_err();
        assert!(matches!(err, PatchError::CwdOutsideRoot { .. }), "{err}");
    }
}
