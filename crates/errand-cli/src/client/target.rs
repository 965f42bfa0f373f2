//! What `TASK[/ATTEMPT]` names, and which attempts a command acts on when the attempt is left
//! out: the only one; for a result (diff, apply, follow-up) the one that succeeded; for logs
//! the first; for a message the one still unfinished; for cancel all of them.

use errand_protocol::api::{AttemptView, TaskView};
use errand_protocol::{AttemptId, AttemptState, TaskId};

/// A parsed `TASK[/ATTEMPT]`, or an attempt id alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Task {
        task: TaskId,
        attempt: Option<AttemptSelector>,
    },
    /// `att_…` alone: its task is asked of the server.
    Attempt(AttemptId),
}

/// The `/ATTEMPT` part: an index within the task (0, 1, …) or an attempt id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptSelector {
    Index(u32),
    Id(AttemptId),
}

/// What the command will do with the attempt, which decides the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Diff, apply, follow-up: the attempt whose result the user wants.
    Result,
    /// Logs: the first attempt.
    Log,
    /// A message: the attempt still running or queued.
    Message,
    /// Cancel: every attempt.
    All,
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        if text.starts_with("att_") {
            return text.parse().map(Target::Attempt).map_err(|e| e.to_string());
        }
        let (task, attempt) = match text.split_once('/') {
            Some((task, attempt)) => (task, Some(attempt)),
            None => (text, None),
        };
        let task: TaskId = task.parse().map_err(|e| {
            format!("{e}; name a task as `task_…`, or one of its attempts as `task_…/1` or `att_…`")
        })?;
        let attempt = match attempt {
            None => None,
            Some(attempt) if attempt.starts_with("att_") => {
                Some(AttemptSelector::Id(attempt.parse().map_err(|e| format!("{e}"))?))
            }
            Some(attempt) => Some(AttemptSelector::Index(attempt.parse().map_err(|_| {
                format!("`{attempt}` after the `/` must be an attempt's index (0, 1, …) or its `att_…` id")
            })?)),
        };
        Ok(Target::Task { task, attempt })
    }
}

/// The attempts of `task` that `selector` (or, without one, `purpose`) names; never empty.
pub fn pick(
    task: &TaskView,
    selector: Option<AttemptSelector>,
    purpose: Purpose,
) -> Result<Vec<&AttemptView>, String> {
    let attempts = &task.attempts;
    if let Some(selector) = selector {
        let found = attempts.iter().find(|a| match selector {
            AttemptSelector::Index(index) => a.index == index,
            AttemptSelector::Id(id) => a.id == id,
        });
        return match (found, selector) {
            (Some(attempt), _) => Ok(vec![attempt]),
            (None, AttemptSelector::Index(index)) => Err(format!(
                "task {} has no attempt {index}; its attempts are:\n{}",
                task.id,
                listing(task)
            )),
            (None, AttemptSelector::Id(id)) => Err(format!(
                "attempt {id} is not one of task {}'s; they are:\n{}",
                task.id,
                listing(task)
            )),
        };
    }
    match (attempts.as_slice(), purpose) {
        ([], _) => Err(format!("task {} has no attempts", task.id)),
        (_, Purpose::All) => Ok(attempts.iter().collect()),
        ([only], _) => Ok(vec![only]),
        ([first, ..], Purpose::Log) => Ok(vec![first]),
        (_, Purpose::Result) if task.picked_attempt.is_some() => {
            let picked = attempts.iter().find(|a| Some(a.id) == task.picked_attempt);
            picked.map(|a| vec![a]).ok_or_else(|| ambiguous(task, "its pick is gone"))
        }
        (_, Purpose::Result) => {
            // A succeeded follow-up carries its parent's changes (its diff is cumulative against
            // the base commit), so the parent is no longer a candidate of its own.
            let succeeded: Vec<&AttemptView> =
                attempts.iter().filter(|a| a.state == AttemptState::Succeeded).collect();
            let superseded = |a: &&AttemptView| succeeded.iter().any(|s| s.parent_id == Some(a.id));
            let latest: Vec<&AttemptView> =
                succeeded.iter().copied().filter(|a| !superseded(a)).collect();
            match latest.as_slice() {
                [one] => Ok(vec![*one]),
                [] => Err(ambiguous(task, "none has succeeded")),
                _ => Err(ambiguous(task, &format!("{} succeeded", latest.len()))),
            }
        }
        (_, Purpose::Message) => {
            let unfinished: Vec<&AttemptView> =
                attempts.iter().filter(|a| !a.state.is_terminal()).collect();
            match unfinished.as_slice() {
                [one] => Ok(vec![*one]),
                [] => Err(ambiguous(task, "none is unfinished")),
                _ => Err(ambiguous(task, &format!("{} are unfinished", unfinished.len()))),
            }
        }
    }
}

fn ambiguous(task: &TaskView, why: &str) -> String {
    let example = task.attempts.last().map_or(1, |a| a.index);
    format!(
        "task {} has {} attempts and {why}; name one, e.g. `{}/{example}` (or `errand task pick {}/{example}` once):\n{}",
        task.id,
        task.attempts.len(),
        task.id,
        task.id,
        listing(task)
    )
}

/// One line per attempt: index, id, state and why.
pub fn listing(task: &TaskView) -> String {
    task.attempts
        .iter()
        .map(|a| {
            let reason = a.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            let followup = a
                .parent_id
                .and_then(|p| task.attempts.iter().find(|x| x.id == p))
                .map(|p| format!(", follow-up of {}", p.index))
                .unwrap_or_default();
            format!("  {}  {}  {}{followup}{reason}", a.index, a.id, state_word(a.state))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An attempt state as the API spells it.
pub fn state_word(state: AttemptState) -> &'static str {
    match state {
        AttemptState::Queued => "queued",
        AttemptState::Preparing => "preparing",
        AttemptState::Running => "running",
        AttemptState::Succeeded => "succeeded",
        AttemptState::Failed => "failed",
        AttemptState::Cancelled => "cancelled",
        AttemptState::TimedOut => "timed_out",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptState::*;
    use errand_protocol::api::{TaskMode, TaskState};
    use std::result::Result;

    fn task(states: &[(AttemptState, Option<u32>)]) -> TaskView {
        let id = TaskId::new();
        let mut attempts: Vec<AttemptView> = Vec::new();
        for (index, (state, parent)) in states.iter().enumerate() {
            attempts.push(AttemptView {
                id: AttemptId::new(),
                task_id: id,
                index: index as u32,
                state: *state,
                reason: None,
                parent_id: parent.map(|p| attempts[p as usize].id),
                prompt: None,
                created_at_ms: 0,
                started_at_ms: None,
                finished_at_ms: None,
                cancel_requested: false,
                last_seq: 0,
            });
        }
        TaskView {
            ranking: Vec::new(),
            picked_attempt: None,
            id,
            state: TaskState::derive(states.iter().map(|s| s.0)),
            repository: "/r".into(),
            git_ref: "main".into(),
            base_commit: None,
            environment_id: None,
            prompt: "p".into(),
            mode: TaskMode::Code,
            created_at_ms: 0,
            attempts,
        }
    }

    fn indexes(picked: Result<Vec<&AttemptView>, String>) -> Result<Vec<u32>, String> {
        picked.map(|p| p.iter().map(|a| a.index).collect())
    }

    #[test]
    fn the_users_pick_is_the_result_when_several_succeeded() {
        let mut view = task(&[(Succeeded, None), (Succeeded, None), (Failed, None)]);
        assert!(
            indexes(pick(&view, None, Purpose::Result)).unwrap_err().contains("errand task pick")
        );
        view.picked_attempt = Some(view.attempts[1].id);
        assert_eq!(indexes(pick(&view, None, Purpose::Result)), Ok(vec![1]));
        // A named attempt still wins over the pick.
        assert_eq!(
            indexes(pick(&view, Some(AttemptSelector::Index(0)), Purpose::Result)),
            Ok(vec![0])
        );
    }

    #[test]
    fn targets_parse() {
        let task = TaskId::new();
        let attempt = AttemptId::new();
        assert_eq!(Target::parse(&task.to_string()), Ok(Target::Task { task, attempt: None }));
        assert_eq!(
            Target::parse(&format!("{task}/2")),
            Ok(Target::Task { task, attempt: Some(AttemptSelector::Index(2)) })
        );
        assert_eq!(
            Target::parse(&format!("{task}/{attempt}")),
            Ok(Target::Task { task, attempt: Some(AttemptSelector::Id(attempt)) })
        );
        assert_eq!(Target::parse(&attempt.to_string()), Ok(Target::Attempt(attempt)));
        let err = Target::parse("42").unwrap_err();
        assert!(err.contains("`task_…/1`"), "{err}");
        let err = Target::parse(&format!("{task}/first")).unwrap_err();
        assert!(err.contains("`first`") && err.contains("index"), "{err}");
        assert!(Target::parse(&format!("{task}/att_12")).is_err());
    }

    #[test]
    fn the_default_attempt_depends_on_the_purpose() {
        use Purpose::*;
        /// Attempts' states (and the index of the attempt each follows up), the purpose, and
        /// the indexes picked or words of the error.
        type Outcome = std::result::Result<Vec<u32>, &'static str>;
        type Case = (&'static [(AttemptState, Option<u32>)], Purpose, Outcome);
        let cases: &[Case] = &[
            (&[(Failed, None)], Result, Ok(vec![0])),
            (&[(Running, None)], Message, Ok(vec![0])),
            (&[(Failed, None), (Succeeded, None), (Failed, None)], Result, Ok(vec![1])),
            (&[(Succeeded, None), (Succeeded, None)], Result, Err("2 succeeded")),
            (&[(Failed, None), (Cancelled, None)], Result, Err("none has succeeded")),
            // A succeeded follow-up supersedes its parent.
            (&[(Succeeded, None), (Failed, None), (Succeeded, Some(0))], Result, Ok(vec![2])),
            (&[(Succeeded, None), (Failed, Some(0))], Result, Ok(vec![0])),
            (&[(Running, None), (Queued, None)], Log, Ok(vec![0])),
            (&[(Succeeded, None), (Running, None)], Message, Ok(vec![1])),
            (&[(Running, None), (Queued, None)], Message, Err("2 are unfinished")),
            (&[(Failed, None), (Succeeded, None)], Message, Err("none is unfinished")),
            (&[(Running, None), (Queued, None), (Failed, None)], All, Ok(vec![0, 1, 2])),
            (&[], Log, Err("has no attempts")),
        ];
        for (states, purpose, expected) in cases {
            let task = task(states);
            let got = indexes(pick(&task, None, *purpose));
            match expected {
                Ok(expected) => assert_eq!(got.as_ref(), Ok(expected), "{states:?} {purpose:?}"),
                Err(words) => {
                    let err = got.unwrap_err();
                    assert!(err.contains(words), "{states:?} {purpose:?}: {err}");
                    if !states.is_empty() {
                        assert!(err.contains(&format!("{}/", task.id)), "{err}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_named_attempt_wins_and_a_missing_one_lists_the_others() {
        let task = task(&[(Succeeded, None), (Succeeded, None)]);
        let second = task.attempts[1].id;
        assert_eq!(
            indexes(pick(&task, Some(AttemptSelector::Index(1)), Purpose::Result)),
            Ok(vec![1])
        );
        assert_eq!(
            indexes(pick(&task, Some(AttemptSelector::Id(second)), Purpose::All)),
            Ok(vec![1])
        );
        let err = pick(&task, Some(AttemptSelector::Index(5)), Purpose::Log).unwrap_err();
        assert!(err.contains("no attempt 5") && err.contains(&second.to_string()), "{err}");
        let err =
            pick(&task, Some(AttemptSelector::Id(AttemptId::new())), Purpose::Log).unwrap_err();
        assert!(err.contains("is not one of task"), "{err}");
    }
}
