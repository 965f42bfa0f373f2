//! The portable `apply_patch` scenario suite (`../shared/conformance/apply-patch/`, from
//! openai/codex): copy `input/`, apply `patch.txt`, compare the whole tree with `expected/`.
//! The scenarios live beside the checkout and are read in place, never copied into the repo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/apply-patch/scenarios")
}

/// Every regular file under `dir`, by path relative to it, with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            let file_type = std::fs::symlink_metadata(&path).unwrap().file_type();
            if file_type.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree(from) {
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }
}

fn show(tree: &BTreeMap<PathBuf, Vec<u8>>) -> String {
    tree.iter()
        .map(|(p, b)| format!("{}: {:?}\n", p.display(), String::from_utf8_lossy(b)))
        .collect()
}

#[test]
fn every_scenario_produces_the_expected_tree() {
    let dir = scenarios_dir();
    if !dir.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "conformance scenarios missing at {} (required when CI is set)",
            dir.display()
        );
        eprintln!("SKIPPED: conformance scenarios not found at {}", dir.display());
        return;
    }
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    scenarios.sort();
    assert!(!scenarios.is_empty(), "no scenarios in {}", dir.display());

    let mut failures = Vec::new();
    for scenario in &scenarios {
        let name = scenario.file_name().unwrap().to_string_lossy().into_owned();
        let work = tempfile::tempdir().unwrap();
        copy_tree(&scenario.join("input"), work.path());
        let patch = std::fs::read_to_string(scenario.join("patch.txt")).unwrap();
        let result = errand_patch::apply_patch(work.path(), work.path(), &patch);
        // Errors are allowed (some scenarios must be rejected), but must say something.
        if let Err(e) = &result {
            assert!(!e.to_string().trim().is_empty(), "{name}: empty error message");
            eprintln!("{name}: rejected: {e}");
        }
        let got = tree(work.path());
        let want = tree(&scenario.join("expected"));
        if got != want {
            failures.push(format!(
                "{name} (result: {result:?})\n  got:\n{}  want:\n{}",
                show(&got),
                show(&want)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
    eprintln!("{} conformance scenarios passed", scenarios.len());
}
