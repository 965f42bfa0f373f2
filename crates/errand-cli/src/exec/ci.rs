//! `errand exec --ci DIR`: what a CI job keeps of an attempt, as files, and an exit status a CI
//! system can act on.
//!
//! Files in DIR: `errand.patch` (the diff, `git apply`-compatible; empty when nothing changed),
//! `report.md` (title, description, testing checklist), `report.json` (the report with its
//! checked citations), `result.json` (state, reason, checks, usage, exit status), `log.jsonl`
//! (every event, one per line: the evidence `log:N#L…` citations point into). With
//! `GITHUB_STEP_SUMMARY` set (GitHub Actions, Forgejo Actions), the report is appended to the
//! job's summary too.
//!
//! Exit statuses: 0 the attempt succeeded and every check it ran passed; 1 it did not succeed
//! (failed, timed out, a limit, setup failed); 3 it succeeded but a check it ran last failed;
//! 2 Errand could not run it; 130 interrupted.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use errand_protocol::{AttemptOutcome, AttemptState, Event, Report, TokenUsage};
use serde::Serialize;

/// The attempt succeeded, but a check it ran failed.
pub const CHECKS_FAILED: i32 = 3;

/// What `result.json` holds.
#[derive(Serialize)]
struct CiResult<'a> {
    attempt: String,
    state: AttemptState,
    reason: &'a str,
    exit_status: i32,
    changed_files: usize,
    checks_passed: usize,
    checks_failed: usize,
    usage: Option<TokenUsage>,
    turns: Option<u32>,
}

/// The end of an attempt, as `--ci` writes it.
pub struct CiOutcome<'a> {
    pub attempt: String,
    pub outcome: AttemptOutcome,
    pub report: Option<&'a Report>,
    pub patch: &'a str,
    pub events: &'a [Event],
    pub usage: Option<TokenUsage>,
    pub turns: Option<u32>,
}

impl CiOutcome<'_> {
    /// The exit status for CI.
    pub fn exit_status(&self) -> i32 {
        match self.outcome.state {
            AttemptState::Succeeded
                if self.report.is_some_and(|r| r.checks.iter().any(|c| !c.passed)) =>
            {
                CHECKS_FAILED
            }
            AttemptState::Succeeded => 0,
            AttemptState::Cancelled => 130,
            _ => 1,
        }
    }

    /// Writes the files into `dir` (created if needed) and the job summary; returns the exit
    /// status.
    pub fn write(&self, dir: &Path) -> anyhow::Result<i32> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
        };
        write("errand.patch", self.patch.as_bytes())?;
        let markdown = match self.report {
            Some(report) => report.to_markdown(),
            None => format!("# Errand did not finish the task\n\n{}\n", self.outcome.reason),
        };
        write("report.md", markdown.as_bytes())?;
        write("report.json", serde_json::to_string_pretty(&self.report)?.as_bytes())?;
        let mut log = Vec::new();
        for event in self.events {
            serde_json::to_writer(&mut log, event)?;
            log.push(b'\n');
        }
        write("log.jsonl", &log)?;
        let status = self.exit_status();
        let checks = self.report.map(|r| r.checks.as_slice()).unwrap_or_default();
        let result = CiResult {
            attempt: self.attempt.clone(),
            state: self.outcome.state,
            reason: &self.outcome.reason,
            exit_status: status,
            changed_files: self.patch.matches("\ndiff --git ").count()
                + usize::from(self.patch.starts_with("diff --git ")),
            checks_passed: checks.iter().filter(|c| c.passed).count(),
            checks_failed: checks.iter().filter(|c| !c.passed).count(),
            usage: self.usage,
            turns: self.turns,
        };
        write("result.json", serde_json::to_string_pretty(&result)?.as_bytes())?;
        if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
            let mut file =
                std::fs::OpenOptions::new().create(true).append(true).open(&summary).with_context(
                    || format!("cannot append to GITHUB_STEP_SUMMARY ({summary:?})"),
                )?;
            writeln!(file, "{markdown}")?;
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_protocol::CheckResult;

    fn outcome(state: AttemptState, checks: &[bool]) -> (AttemptOutcome, Report) {
        let report = Report {
            title: "Fix it".into(),
            description: "Done.".into(),
            citations: Vec::new(),
            checks: checks
                .iter()
                .enumerate()
                .map(|(i, &passed)| CheckResult {
                    command: format!("check {i}"),
                    passed,
                    exit_code: Some(i32::from(!passed)),
                    event: 7,
                    output_lines: 1,
                })
                .collect(),
        };
        (AttemptOutcome { state, reason: "r".into() }, report)
    }

    #[test]
    fn exit_statuses_tell_ci_what_happened() {
        for (state, checks, want) in [
            (AttemptState::Succeeded, &[true, true][..], 0),
            (AttemptState::Succeeded, &[][..], 0),
            (AttemptState::Succeeded, &[true, false][..], CHECKS_FAILED),
            (AttemptState::Failed, &[true][..], 1),
            (AttemptState::TimedOut, &[][..], 1),
            (AttemptState::Cancelled, &[][..], 130),
        ] {
            let (outcome, report) = outcome(state, checks);
            let ci = CiOutcome {
                attempt: "att_x".into(),
                outcome,
                report: Some(&report),
                patch: "",
                events: &[],
                usage: None,
                turns: None,
            };
            assert_eq!(ci.exit_status(), want, "{state:?} {checks:?}");
        }
    }

    #[test]
    fn the_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let (outcome, report) = outcome(AttemptState::Succeeded, &[true]);
        let patch =
            "diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n+y\ndiff --git a/b b/b\n";
        let ci = CiOutcome {
            attempt: "att_x".into(),
            outcome,
            report: Some(&report),
            patch,
            events: &[],
            usage: None,
            turns: Some(3),
        };
        let out = dir.path().join("out");
        assert_eq!(ci.write(&out).unwrap(), 0);
        assert_eq!(std::fs::read_to_string(out.join("errand.patch")).unwrap(), patch);
        assert!(std::fs::read_to_string(out.join("report.md")).unwrap().starts_with("# Fix it"));
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(result["changed_files"], 2);
        assert_eq!(result["checks_passed"], 1);
        assert_eq!(result["state"], "succeeded");
        assert!(out.join("log.jsonl").exists() && out.join("report.json").exists());
    }
}
