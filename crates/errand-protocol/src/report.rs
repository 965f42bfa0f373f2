//! The result a person reviews: a pull-request title and description with checked citations,
//! and the checks the agent ran with pass/fail taken from recorded exit codes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::citation::Citation;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Report {
    pub title: String,
    /// Markdown, as the model wrote it, with citations that did not hold flagged in place.
    pub description: String,
    pub citations: Vec<Citation>,
    /// Checks the agent ran (tests, linters, builds), last run of each.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// Number of citations that did not hold.
    pub fn flagged_citations(&self) -> usize {
        self.citations.iter().filter(|c| c.problem.is_some()).count()
    }

    /// The report as Markdown, with the testing checklist from recorded exit codes.
    pub fn to_markdown(&self) -> String {
        let mut text = format!("# {}\n\n", self.title);
        if !self.description.is_empty() {
            text.push_str(self.description.trim());
            text.push_str("\n\n");
        }
        if !self.checks.is_empty() {
            text.push_str("## Testing\n");
            for check in &self.checks {
                let mark = if check.passed { "x" } else { " " };
                let status = match check.exit_code {
                    Some(code) => format!("exit {code}"),
                    None => "killed".into(),
                };
                let lines = if check.output_lines > 0 {
                    format!("#L1-L{}", check.output_lines)
                } else {
                    String::new()
                };
                text.push_str(&format!(
                    "- [{mark}] `{}` ({status}, log:{}{lines})\n",
                    check.command, check.event
                ));
            }
            text.push('\n');
        }
        let flagged = self.flagged_citations();
        if flagged > 0 {
            text.push_str(&format!(
                "_{flagged} citation(s) could not be verified and are flagged above._\n"
            ));
        }
        text
    }
}

/// One check the agent ran, judged by its recorded exit code, not by the model's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    pub command: String,
    pub passed: bool,
    pub exit_code: Option<i32>,
    /// seq of the `command_started` event of the run that counts (the last one).
    pub event: u64,
    pub output_lines: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_checks_with_their_log() {
        let report = Report {
            title: "Fix it".into(),
            description: "Done (a.py:L1).".into(),
            citations: vec![],
            checks: vec![CheckResult {
                command: "pytest".into(),
                passed: false,
                exit_code: Some(1),
                event: 7,
                output_lines: 3,
            }],
        };
        let md = report.to_markdown();
        assert!(md.starts_with("# Fix it\n\nDone (a.py:L1).\n\n## Testing\n"), "{md}");
        assert!(md.contains("- [ ] `pytest` (exit 1, log:7#L1-L3)"), "{md}");
    }
}
