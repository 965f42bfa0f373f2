//! Paths the agent names, resolved lexically to absolute paths inside the sandbox. Nothing here
//! touches a file system: symlinks are resolved later, inside the sandbox, where they can only
//! lead to what the sandbox shows.

use crate::SandboxError;
use crate::exec::WORKSPACE;

/// A working directory: absolute (anywhere in the sandbox), or relative to the workspace and
/// then not allowed to climb out of it with `..`.
pub(crate) fn resolve_workdir(workdir: &str) -> Result<String, SandboxError> {
    if workdir.starts_with('/') {
        normalize("/", workdir).ok_or_else(|| SandboxError::OutsideWorkspace(workdir.into()))
    } else {
        within_workspace(workdir)
    }
}

/// A path of the workspace: relative to it, or absolute but inside it.
pub(crate) fn resolve_workspace_path(path: &str) -> Result<String, SandboxError> {
    if path.starts_with('/') {
        let normal =
            normalize("/", path).ok_or_else(|| SandboxError::OutsideWorkspace(path.into()))?;
        let inside = normal == WORKSPACE || normal.starts_with(&format!("{WORKSPACE}/"));
        if inside { Ok(normal) } else { Err(SandboxError::OutsideWorkspace(path.into())) }
    } else {
        within_workspace(path)
    }
}

fn within_workspace(relative: &str) -> Result<String, SandboxError> {
    normalize(WORKSPACE, relative).ok_or_else(|| SandboxError::OutsideWorkspace(relative.into()))
}

/// Joins `path` onto `root` and removes `.` and `..`; `None` if `..` climbs above `root` or the
/// path holds a NUL byte.
fn normalize(root: &str, path: &str) -> Option<String> {
    if path.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    let root = root.trim_end_matches('/');
    if parts.is_empty() {
        Some(if root.is_empty() { "/".into() } else { root.into() })
    } else {
        Some(format!("{root}/{}", parts.join("/")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs() {
        let ok = [
            ("", "/workspace"),
            (".", "/workspace"),
            ("src", "/workspace/src"),
            ("src/../lib/", "/workspace/lib"),
            ("/tmp", "/tmp"),
            ("/workspace/a/./b", "/workspace/a/b"),
            ("/", "/"),
        ];
        for (input, expected) in ok {
            assert_eq!(resolve_workdir(input).unwrap(), expected, "{input:?}");
        }
        for bad in ["..", "../x", "src/../../etc", "/..", "a\0b"] {
            assert!(
                matches!(resolve_workdir(bad), Err(SandboxError::OutsideWorkspace(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn workspace_paths() {
        assert_eq!(resolve_workspace_path("a/b.rs").unwrap(), "/workspace/a/b.rs");
        assert_eq!(resolve_workspace_path("/workspace/x").unwrap(), "/workspace/x");
        for bad in ["../etc/passwd", "/etc/passwd", "/workspace/../etc", "/workspacex/y"] {
            assert!(
                matches!(resolve_workspace_path(bad), Err(SandboxError::OutsideWorkspace(_))),
                "{bad:?}"
            );
        }
    }
}
