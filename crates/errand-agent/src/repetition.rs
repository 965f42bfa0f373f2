//! Loops caught: the same call with the same result, over and over (issue 9: a 1.5B model ran
//! one command until the turn limit). After `limit` such calls in a row the model is told so
//! once; one more and the attempt ends with the reason `repetition`.
//!
//! A call is the tool and its arguments with keys in a canonical order; its result is what the
//! model was told, less the lines that change on every run (wall time, log number), so for
//! `shell` it is the exit code and the output as the model saw it. A different call, or the
//! same call with a different result, starts a new run of repeats.

use serde_json::Value;

use crate::report::display_command;
use crate::tools::{SHELL, ShellArgs};

/// What to do about the calls seen since the last verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// Tell the model this.
    Steer(String),
    /// End the attempt; the detail says why.
    Stop(String),
}

/// Watches an attempt's tool calls for repeats.
#[derive(Debug, Default)]
pub struct RepeatWatch {
    /// Calls in a row that may be the same (0: never steer or stop).
    limit: u32,
    last: Option<(String, String)>,
    /// How the last call is shown to the model (`pytest -q`).
    shown: String,
    count: u32,
    steered: bool,
    /// A call was seen since the last verdict.
    fresh: bool,
}

impl RepeatWatch {
    pub fn new(limit: u32) -> Self {
        Self { limit, ..Self::default() }
    }

    /// Records a call of `tool` with `arguments` (JSON, or a freeform tool's input) and the text
    /// the model got back.
    pub fn observe(&mut self, tool: &str, arguments: &str, result: &str) {
        let key = (call_key(tool, arguments), stable_result(result));
        if self.last.as_ref() == Some(&key) {
            self.count += 1;
        } else {
            self.last = Some(key);
            self.shown = shown_call(tool, arguments);
            self.count = 1;
            self.steered = false;
        }
        self.fresh = true;
    }

    /// Starts over, after a compaction: the earlier results are summarised away, so running a
    /// command again to see its output is reading, not looping, and a steer the model no longer
    /// sees could not be said to have been ignored.
    pub fn forget(&mut self) {
        *self = Self::new(self.limit);
    }

    /// Called after a turn's calls are done: steer at `limit` repeats, stop at one more after
    /// the steer.
    pub fn verdict(&mut self) -> Verdict {
        if !std::mem::take(&mut self.fresh) || self.limit == 0 || self.count < self.limit {
            return Verdict::Fine;
        }
        let (shown, count) = (&self.shown, self.count);
        if self.steered {
            return Verdict::Stop(format!(
                "the agent ran {shown} {count} times in a row with the same result, still after \
                 it was told to try something different"
            ));
        }
        self.steered = true;
        Verdict::Steer(format!(
            "You ran {shown} {count} times in a row and got the same result each time. Running it \
             again will not change anything: try something different, or finish with your final \
             message."
        ))
    }
}

/// The tool and its arguments, with the keys of JSON arguments in one order.
fn call_key(tool: &str, arguments: &str) -> String {
    let arguments = match serde_json::from_str::<Value>(arguments) {
        // serde_json's maps keep keys sorted, so equal objects print alike.
        Ok(value) => value.to_string(),
        Err(_) => arguments.to_string(),
    };
    format!("{tool}\n{arguments}")
}

/// The result without the lines of a command's result that differ between identical runs.
fn stable_result(result: &str) -> String {
    result
        .lines()
        .filter(|line| !line.starts_with("Wall time: ") && !line.starts_with("Log: log:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The call as the steering message names it: a `shell` command as the user would type it,
/// anything else by its tool.
fn shown_call(tool: &str, arguments: &str) -> String {
    if tool == SHELL
        && let Ok(args) = serde_json::from_str::<ShellArgs>(arguments)
    {
        let mut command = display_command(&args.command);
        if command.chars().count() > 80 {
            command = command.chars().take(77).collect::<String>() + "...";
        }
        return format!("`{command}`");
    }
    format!("`{tool}` with the same arguments")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(seconds: &str, log: u32, output: &str) -> String {
        format!(
            "Exit code: 1\nWall time: {seconds} seconds\nLog: log:{log} (1 lines)\nOutput:\n{output}"
        )
    }

    /// Feeds `calls` one per turn; returns each turn's verdict.
    fn verdicts(limit: u32, calls: &[(&str, &str)]) -> Vec<Verdict> {
        let mut watch = RepeatWatch::new(limit);
        calls
            .iter()
            .enumerate()
            .map(|(i, (arguments, output))| {
                watch.observe(SHELL, arguments, &result(&format!("0.{i}"), i as u32 * 4, output));
                watch.verdict()
            })
            .collect()
    }

    #[test]
    fn steers_at_the_limit_then_stops_at_one_more() {
        let same = (r#"{"command":["pytest","-q"]}"#, "1 failed");
        // Same call, keys in another order: the same call.
        let reordered = (r#"{"timeout_ms": 5, "command": ["pytest", "-q"]}"#, "1 failed");
        let timed = (r#"{"command":["pytest","-q"],"timeout_ms":5}"#, "1 failed");
        let v = verdicts(3, &[same, same, same, same]);
        assert_eq!(v[..2], [Verdict::Fine, Verdict::Fine]);
        let Verdict::Steer(text) = &v[2] else { panic!("{v:?}") };
        assert!(text.starts_with("You ran `pytest -q` 3 times in a row"), "{text}");
        let Verdict::Stop(detail) = &v[3] else { panic!("{v:?}") };
        assert!(detail.contains("`pytest -q` 4 times"), "{detail}");
        let v = verdicts(2, &[timed, reordered]);
        assert!(matches!(v[1], Verdict::Steer(_)), "{v:?}");
    }

    #[test]
    fn a_different_call_or_result_starts_over() {
        let a = (r#"{"command":["ls"]}"#, "x");
        let b = (r#"{"command":["pwd"]}"#, "/");
        let a_changed = (r#"{"command":["ls"]}"#, "x y");
        let table: &[(&[(&str, &str)], usize)] =
            &[(&[a, a, b, a, a], 0), (&[a, a, a_changed, a, a], 0), (&[a, a, a, b, a, a, a], 2)];
        for (calls, steers) in table {
            let v = verdicts(3, calls);
            assert_eq!(v.iter().filter(|v| matches!(v, Verdict::Steer(_))).count(), *steers);
            assert!(!v.iter().any(|v| matches!(v, Verdict::Stop(_))), "{v:?}");
        }
    }

    #[test]
    fn a_limit_of_zero_turns_it_off_and_turns_without_calls_say_nothing() {
        let a = (r#"{"command":["ls"]}"#, "x");
        assert!(verdicts(0, &[a; 6]).iter().all(|v| *v == Verdict::Fine));
        let mut watch = RepeatWatch::new(2);
        watch.observe("update_plan", r#"{"plan":[]}"#, "Plan updated.");
        watch.observe("update_plan", r#"{ "plan": [] }"#, "Plan updated.");
        let Verdict::Steer(text) = watch.verdict() else { panic!() };
        assert!(
            text.starts_with("You ran `update_plan` with the same arguments 2 times"),
            "{text}"
        );
        assert_eq!(watch.verdict(), Verdict::Fine);
    }
}
