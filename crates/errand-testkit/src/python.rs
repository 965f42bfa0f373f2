//! Python tools from PyPI for tests (the official model SDKs, schemathesis), installed once per
//! pin set into a venv by `python/pinned_venv.py` with the system `python3`.

use std::path::{Path, PathBuf};

const PINNED_VENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/pinned_venv.py");

/// The python of a venv holding the packages pinned in `requirements`, built on first use under
/// `parent` (a test's `CARGO_TARGET_TMPDIR`). `None` (skip, after saying why) when this machine
/// has no python3 that can build a venv; under CI that fails the test instead. Panics when the
/// install itself fails (PyPI unreachable, a bad pin): that is a broken test setup.
pub async fn pinned_venv(requirements: &Path, parent: &Path) -> Option<PathBuf> {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import ensurepip, fcntl, venv"])
        .output()
        .await;
    let why = match probe {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "python3 cannot build a venv ({})",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("no output")
        )),
        Err(e) => Some(format!("python3 is not available ({e})")),
    };
    if let Some(why) = why {
        assert!(std::env::var_os("CI").is_none(), "CI must run the Python-driven tests, but {why}");
        eprintln!("skipping: {why} (run scripts/install-deps.sh as root)");
        return None;
    }
    let out = tokio::process::Command::new("python3")
        .arg(PINNED_VENV)
        .arg(parent)
        .arg(requirements)
        .output()
        .await
        .expect("run pinned_venv.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "building the venv failed (PyPI reachable?):\n{stderr}");
    Some(PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim()))
}
