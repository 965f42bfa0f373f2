//! Best-of-N: a task's finished attempts in the order a reviewer should look at them, each with
//! why. Facts only, in this order: the attempt succeeded (its finish checks passed, if there
//! were any); none of the checks it ran last failed; fewer of its citations failed to verify;
//! then the smaller change (fewer changed lines, then fewer files), since of two attempts that
//! both do the job the smaller is easier to trust. Unfinished attempts are not ranked.

use errand_protocol::api::RankedAttempt;
use errand_protocol::{AttemptId, AttemptState, Report};
use errand_store::{ArtifactKind, Attempt, Scope, Store, StoreError};

/// What ranking looks at for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: AttemptId,
    pub index: u32,
    pub succeeded: bool,
    pub checks_passed: usize,
    pub checks_failed: usize,
    pub flagged: usize,
    pub files: usize,
    pub lines: usize,
}

impl Candidate {
    fn why(&self) -> String {
        let state = if self.succeeded { "succeeded" } else { "did not succeed" };
        let checks = self.checks_passed + self.checks_failed;
        let checks = if checks == 0 {
            "no checks run".to_string()
        } else {
            format!("{}/{checks} checks passed", self.checks_passed)
        };
        format!(
            "{state} · {checks} · {} flagged citation{} · {} file{}, {} changed line{}",
            self.flagged,
            if self.flagged == 1 { "" } else { "s" },
            self.files,
            if self.files == 1 { "" } else { "s" },
            self.lines,
            if self.lines == 1 { "" } else { "s" },
        )
    }
}

/// The candidates, best first.
pub fn rank(mut candidates: Vec<Candidate>) -> Vec<RankedAttempt> {
    candidates.sort_by_key(|c| {
        (!c.succeeded, c.checks_failed > 0, c.checks_failed, c.flagged, c.lines, c.files, c.index)
    });
    candidates
        .iter()
        .zip(1..)
        .map(|(c, rank)| RankedAttempt { attempt_id: c.id, rank, why: c.why() })
        .collect()
}

/// Changed files and lines of a `git diff`.
fn diff_size(diff: &str) -> (usize, usize) {
    let files = diff.lines().filter(|l| l.starts_with("diff --git ")).count();
    let lines = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') && !l.starts_with("+++"))
                || (l.starts_with('-') && !l.starts_with("---"))
        })
        .count();
    (files, lines)
}

/// The ranking of `attempts` (one task's), read from their stored reports and diffs.
pub async fn rank_attempts(
    store: &dyn Store,
    scope: Scope,
    attempts: &[Attempt],
) -> Result<Vec<RankedAttempt>, StoreError> {
    let mut candidates = Vec::new();
    for attempt in attempts.iter().filter(|a| a.state.is_terminal()) {
        let report: Option<Report> = store
            .get_artifact(scope, attempt.id, ArtifactKind::Report)
            .await?
            .and_then(|json| serde_json::from_str(&json).ok());
        let diff =
            store.get_artifact(scope, attempt.id, ArtifactKind::Diff).await?.unwrap_or_default();
        let (files, lines) = diff_size(&diff);
        let checks = report.as_ref().map(|r| r.checks.as_slice()).unwrap_or_default();
        candidates.push(Candidate {
            id: attempt.id,
            index: attempt.index,
            succeeded: attempt.state == AttemptState::Succeeded,
            checks_passed: checks.iter().filter(|c| c.passed).count(),
            checks_failed: checks.iter().filter(|c| !c.passed).count(),
            flagged: report.as_ref().map_or(0, Report::flagged_citations),
            files,
            lines,
        });
    }
    Ok(rank(candidates))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(
        index: u32,
        succeeded: bool,
        failed: usize,
        flagged: usize,
        lines: usize,
    ) -> Candidate {
        Candidate {
            id: AttemptId::new(),
            index,
            succeeded,
            checks_passed: 2,
            checks_failed: failed,
            flagged,
            files: 1,
            lines,
        }
    }

    #[test]
    fn facts_rank_before_size_and_ties_keep_their_order() {
        let failed_gate = candidate(0, false, 1, 0, 3);
        let big = candidate(1, true, 0, 0, 40);
        let small = candidate(2, true, 0, 0, 6);
        let flagged = candidate(3, true, 0, 2, 1);
        let failing_check = candidate(4, true, 1, 0, 1);
        let tie = candidate(5, true, 0, 0, 6);
        let ranked = rank(vec![
            failed_gate.clone(),
            big.clone(),
            small.clone(),
            flagged.clone(),
            failing_check.clone(),
            tie.clone(),
        ]);
        let order: Vec<AttemptId> = ranked.iter().map(|r| r.attempt_id).collect();
        assert_eq!(order, [small.id, tie.id, big.id, flagged.id, failing_check.id, failed_gate.id]);
        assert_eq!(ranked.iter().map(|r| r.rank).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(
            ranked[0].why,
            "succeeded · 2/2 checks passed · 0 flagged citations · 1 file, 6 changed lines"
        );
        assert!(ranked[5].why.starts_with("did not succeed · 2/3 checks passed"));
    }

    #[test]
    fn diffs_are_measured_in_changed_lines() {
        let diff = "diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1 +1,2 @@\n-x\n+y\n+z\ndiff --git a/b b/b\nnew file mode 100644\n--- /dev/null\n+++ b/b\n@@ -0,0 +1 @@\n+w\n";
        assert_eq!(diff_size(diff), (2, 4));
    }
}
