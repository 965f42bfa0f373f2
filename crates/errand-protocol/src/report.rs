//! The result a person reviews: a pull-request title and description with checked citations,
//! and the checks the agent ran with pass/fail taken from recorded exit codes.

use serde::{Deserialize, Serialize};

use crate::citation::Citation;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// One check the agent ran, judged by its recorded exit code, not by the model's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub command: String,
    pub passed: bool,
    pub exit_code: Option<i32>,
    /// seq of the `command_started` event of the run that counts (the last one).
    pub event: u64,
    pub output_lines: u64,
}
