//! `errand apply-patch`: a patch on stdin, applied under a root; the binary only parses flags.
//!
//! The sandbox runs this inside the agent's sandbox with `--json` and reads exactly one line:
//! `{"success":bool,"output":"<summary or error>","changes":[FileChange...]}`.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::apply::apply_patch;

/// Arguments of `errand apply-patch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliArgs {
    /// Nothing outside this directory is touched; defaults to `cwd`.
    pub root: Option<PathBuf>,
    /// Relative paths of the patch are resolved against it.
    pub cwd: PathBuf,
    /// Print one JSON line instead of human text.
    pub json: bool,
}

/// Reads a patch from `stdin` and applies it; returns the process exit code (0 applied, 1 not,
/// or only partly). Human mode prints the summary to `stdout` or `apply-patch: <error>` to
/// `stderr`; JSON mode prints one line to `stdout` either way.
pub fn run_cli(
    args: &CliArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let mut bytes = Vec::new();
    let outcome = match stdin.read_to_end(&mut bytes) {
        Err(e) => Err((format!("could not read the patch from stdin: {e}"), Vec::new())),
        Ok(_) => match String::from_utf8(bytes) {
            Err(_) => Err(("the patch on stdin is not valid UTF-8".to_string(), Vec::new())),
            Ok(text) if text.trim().is_empty() => Err((
                "no patch on stdin; pipe a patch that starts with '*** Begin Patch'".to_string(),
                Vec::new(),
            )),
            Ok(text) => {
                let root = args.root.as_ref().unwrap_or(&args.cwd);
                apply_patch(root, &args.cwd, &text)
                    .map(|summary| (summary.render(), summary.changes))
                    .map_err(|e| (e.to_string(), e.applied_changes().to_vec()))
            }
        },
    };
    let success = outcome.is_ok();
    // Write failures (a closed pipe) cannot be reported anywhere better; the exit code still is.
    let _ = if args.json {
        let (output, changes) = outcome.unwrap_or_else(|failure| failure);
        let line = serde_json::json!({ "success": success, "output": output, "changes": changes });
        writeln!(stdout, "{line}")
    } else {
        match outcome {
            Ok((summary, _)) => write!(stdout, "{summary}"),
            Err((message, _)) => writeln!(stderr, "apply-patch: {message}"),
        }
    };
    if success { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(dir: &std::path::Path, json: bool, input: &str) -> (i32, String, String) {
        let args = CliArgs { root: None, cwd: dir.to_path_buf(), json };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_cli(&args, &mut input.as_bytes(), &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn human_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (code, out, err) =
            cli(dir.path(), false, "*** Begin Patch\n*** Add File: a.txt\n+x\n*** End Patch\n");
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "Success. Updated the following files:\nA a.txt\n", "")
        );
        let (code, out, err) =
            cli(dir.path(), false, "*** Begin Patch\n*** Delete File: nope\n*** End Patch\n");
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert!(
            err.starts_with("apply-patch: Failed to delete 'nope': the file does not exist."),
            "{err}"
        );
        let (code, _, err) = cli(dir.path(), false, "");
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "apply-patch: no patch on stdin; pipe a patch that starts with '*** Begin Patch'\n"
            )
        );
    }

    #[test]
    fn json_mode_prints_one_line_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let (code, out, err) =
            cli(dir.path(), true, "*** Begin Patch\n*** Add File: a.txt\n+x\n*** End Patch\n");
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["success"], true);
        assert_eq!(v["output"], "Success. Updated the following files:\nA a.txt\n");
        assert_eq!(v["changes"][0]["path"], "a.txt");
        assert_eq!(v["changes"][0]["change"], "added");
        assert_eq!(v["changes"][0]["insertions"], 1);

        let (code, out, err) = cli(
            dir.path(),
            true,
            "*** Begin Patch\n*** Add File: b.txt\n+y\n*** Update File: a.txt\n-zzz\n+q\n*** End Patch\n",
        );
        assert_eq!((code, err.as_str()), (1, ""));
        assert_eq!(out.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["success"], false);
        assert!(
            v["output"]
                .as_str()
                .unwrap()
                .starts_with("Failed to find expected lines in a.txt:\nzzz\n")
        );
        assert_eq!(v["changes"].as_array().unwrap().len(), 1, "the applied Add is reported");
    }

    #[test]
    fn root_confines_a_cwd_below_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let args = CliArgs {
            root: Some(dir.path().join("sub")),
            cwd: dir.path().join("sub"),
            json: false,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let patch = "*** Begin Patch\n*** Add File: ../escape.txt\n+x\n*** End Patch\n";
        assert_eq!(run_cli(&args, &mut patch.as_bytes(), &mut out, &mut err), 1);
        assert!(String::from_utf8(err).unwrap().contains("is outside the workspace"));
        assert!(!dir.path().join("escape.txt").exists());
    }
}
