//! The final report: a title and description parsed from the agent's last message, citations
//! checked against the final tree and the recorded command logs, and the checks the agent ran
//! judged by their recorded exit codes, never by the model's words.

use std::collections::{HashMap, HashSet};

use errand_protocol::{
    CheckResult, Citation, CitationProblem, CitationTarget, FileChange, Report, parse_citations,
};
use errand_sandbox::{Sandbox, SandboxError};

use crate::tools::shell_script;

/// What the agent keeps of each command it ran, for citations and the testing checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// seq of the `command_started` event.
    pub event: u64,
    pub command: Vec<String>,
    pub exit_code: Option<i32>,
    pub output: String,
    pub output_lines: u64,
    /// Run by Errand as a finish check: a check whatever it looks like.
    pub gate: bool,
}

/// Splits the final message into a title (first non-empty line, without a leading `#` or
/// `Title:`) and a description (the rest, trimmed).
pub fn parse_final_message(text: &str) -> (String, String) {
    let text = text.trim();
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let title = first.trim().trim_start_matches('#').trim();
    let title = title.strip_prefix("Title:").unwrap_or(title).trim();
    let title = title.trim_matches('*').trim();
    let title = if title.chars().count() > 100 {
        let mut t: String = title.chars().take(99).collect();
        t.push('…');
        t
    } else {
        title.to_string()
    };
    (title, rest.trim().to_string())
}

/// Resolves every citation in `text` against the final tree (through the sandbox) and the
/// recorded commands. Returns the citations and `text` with each failing one flagged in place.
pub async fn check_citations(
    text: &str,
    sandbox: &dyn Sandbox,
    commands: &[CommandRecord],
    diff: &[FileChange],
) -> Result<(Vec<Citation>, String), SandboxError> {
    let by_event: HashMap<u64, &CommandRecord> = commands.iter().map(|c| (c.event, c)).collect();
    let touched: HashSet<&str> = diff.iter().map(|f| f.path.as_str()).collect();
    let mut files: HashMap<String, Option<String>> = HashMap::new();
    let mut citations = Vec::new();
    for (raw, target) in parse_citations(text) {
        let (start, end) = match &target {
            CitationTarget::Code { start, end, .. } | CitationTarget::Log { start, end, .. } => {
                (*start, *end)
            }
        };
        let mut in_diff = false;
        let lines_of: Result<Option<String>, CitationProblem> = match &target {
            CitationTarget::Code { path, .. } => {
                let path = path.trim_start_matches("./").to_string();
                in_diff = touched.contains(path.as_str());
                if !files.contains_key(&path) {
                    let contents = sandbox
                        .read_file(&path)
                        .await?
                        .map(|b| String::from_utf8_lossy(&b).into_owned());
                    files.insert(path.clone(), contents);
                }
                Ok(files[&path].clone())
            }
            CitationTarget::Log { event, .. } => match by_event.get(event) {
                Some(record) => Ok(Some(record.output.clone())),
                None => Err(CitationProblem::NotACommand),
            },
        };
        let (problem, excerpt) = match lines_of {
            Err(problem) => (Some(problem), String::new()),
            Ok(None) => (Some(CitationProblem::FileMissing), String::new()),
            Ok(Some(_)) if start == 0 || end < start => {
                (Some(CitationProblem::BadRange), String::new())
            }
            Ok(Some(contents)) => {
                let lines: Vec<&str> = contents.lines().collect();
                if end as usize > lines.len() {
                    (
                        Some(CitationProblem::LinesOutOfRange { available: lines.len() as u64 }),
                        String::new(),
                    )
                } else {
                    (None, lines[start as usize - 1..end as usize].join("\n"))
                }
            }
        };
        citations.push(Citation { raw, target, problem, excerpt, in_diff });
    }
    let mut flagged = text.to_string();
    let mut done = HashSet::new();
    for citation in citations.iter().filter(|c| c.problem.is_some()) {
        if done.insert(citation.raw.clone()) {
            let problem = citation.problem.as_ref().map(ToString::to_string).unwrap_or_default();
            flagged = flagged
                .replace(&citation.raw, &format!("{} [unverified: {problem}]", citation.raw));
        }
    }
    Ok((citations, flagged))
}

/// Words that mark a command as a check (test, lint, format check, type check, build).
const CHECK_WORDS: &[&str] = &[
    "test", "tests", "pytest", "unittest", "nextest", "jest", "vitest", "mocha", "rspec",
    "phpunit", "ctest", "tox", "nox", "check", "lint", "clippy", "flake8", "ruff", "mypy",
    "pyright", "eslint", "tsc", "build", "fmt", "gofmt", "rustfmt", "black", "prettier", "vet",
];

/// Programs that only read or search; a command starting with one is not a check even when it
/// names a test file (`cat tests/test_api.py`).
const READERS: &[&str] =
    &["cat", "sed", "head", "tail", "less", "grep", "rg", "ls", "find", "nl", "wc", "echo", "git"];

fn looks_like_check(command: &[String]) -> bool {
    let shown = display_command(command);
    let first = shown.split_whitespace().next().unwrap_or("");
    if READERS.contains(&first.rsplit('/').next().unwrap_or(first)) {
        return false;
    }
    shown
        .split(|c: char| !c.is_alphanumeric())
        .any(|word| CHECK_WORDS.contains(&word.to_ascii_lowercase().as_str()))
}

/// The checks the agent ran: one entry per distinct command that looks like a check, judged by
/// its last run's exit code, in the order they were first run.
pub fn recorded_checks(commands: &[CommandRecord]) -> Vec<CheckResult> {
    let mut order: Vec<String> = Vec::new();
    let mut last: HashMap<String, &CommandRecord> = HashMap::new();
    for record in commands.iter().filter(|c| c.gate || looks_like_check(&c.command)) {
        let key = display_command(&record.command);
        if !last.contains_key(&key) {
            order.push(key.clone());
        }
        last.insert(key, record);
    }
    order
        .into_iter()
        .map(|command| {
            let record = last[&command];
            CheckResult {
                passed: record.exit_code == Some(0),
                exit_code: record.exit_code,
                event: record.event,
                output_lines: record.output_lines,
                command,
            }
        })
        .collect()
}

/// A command as a person would type it: `bash -lc "x"` shows as `x`.
pub fn display_command(command: &[String]) -> String {
    if let Some(script) = shell_script(command) {
        return script.trim().to_string();
    }
    command
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words that claim success.
const PASS_WORDS: &[&str] =
    &["pass", "passes", "passed", "passing", "green", "succeed", "succeeds", "succeeded", "clean"];
/// Words that make a sentence about failure (or doubt) rather than success.
const NEGATIONS: &[&str] = &[
    "fail", "fails", "failed", "failing", "not", "no", "never", "still", "broken", "can't",
    "cannot", "didn't", "doesn't", "don't", "isn't", "aren't", "won't",
];

/// The description with every sentence that claims a check passed, while that check's last
/// recorded run failed, flagged in place: `… the tests pass [not so: `python3 -m unittest`
/// exited 1, log:7].` A sentence is about a check when it names the check's program or one of
/// its check words (`test`, `lint`, …, or `checks`); it claims success with a word such as
/// `pass` or `green` and no negation. Returns the text and how many claims were flagged.
pub fn correct_claims(description: &str, checks: &[CheckResult]) -> (String, usize) {
    let failed: Vec<(&CheckResult, Vec<String>)> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| {
            let mut words: Vec<String> = c
                .command
                .split(|ch: char| !ch.is_alphanumeric())
                .map(str::to_ascii_lowercase)
                .filter(|w| CHECK_WORDS.contains(&w.as_str()))
                .collect();
            if words
                .iter()
                .any(|w| w == "test" || w == "unittest" || w == "pytest" || w == "nextest")
            {
                words.extend(["test".to_string(), "tests".to_string()]);
            }
            words.push("checks".into());
            (c, words)
        })
        .collect();
    if failed.is_empty() {
        return (description.to_string(), 0);
    }
    let mut out = String::with_capacity(description.len());
    let mut flagged = 0;
    // Sentences end at `. `, `! `, `? ` or a line end; the separator stays with its sentence.
    let mut rest = description;
    while !rest.is_empty() {
        let end = rest
            .char_indices()
            .find(|&(i, c)| {
                c == '\n'
                    || (matches!(c, '.' | '!' | '?')
                        && (rest[i + 1..].is_empty() || rest[i + 1..].starts_with([' ', '\n'])))
            })
            .map_or(rest.len(), |(i, _)| i);
        let sentence = &rest[..end];
        let words: Vec<String> = sentence
            .split(|ch: char| !(ch.is_alphanumeric() || ch == '\''))
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let claims = words.iter().any(|w| PASS_WORDS.contains(&w.as_str()))
            && !words.iter().any(|w| NEGATIONS.contains(&w.as_str()));
        let about = failed.iter().find(|(check, keywords)| {
            let program =
                check.command.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
            words.iter().any(|w| keywords.contains(w) || *w == program)
        });
        out.push_str(sentence);
        if let (true, Some((check, _))) = (claims, about) {
            let status =
                check.exit_code.map_or("was killed".to_string(), |code| format!("exited {code}"));
            out.push_str(&format!(" [not so: `{}` {status}, log:{}]", check.command, check.event));
            flagged += 1;
        }
        // The separator (if any) goes with the text before it.
        let separator = rest[end..].chars().next().map_or(0, char::len_utf8);
        out.push_str(&rest[end..end + separator]);
        rest = &rest[end + separator..];
    }
    (out, flagged)
}

/// Assembles the report from the final message.
pub async fn build_report(
    final_message: &str,
    sandbox: &dyn Sandbox,
    commands: &[CommandRecord],
    diff: &[FileChange],
) -> Result<Report, SandboxError> {
    let (title, description) = parse_final_message(final_message);
    let (citations, description) = check_citations(&description, sandbox, commands, diff).await?;
    let (title_citations, title) = check_citations(&title, sandbox, commands, diff).await?;
    let mut all = title_citations;
    all.extend(citations);
    let checks = recorded_checks(commands);
    let (description, _) = correct_claims(&description, &checks);
    Ok(Report { title, description, citations: all, checks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn final_message_forms() {
        let cases = [
            ("Fix parser\n\nBody here.", ("Fix parser", "Body here.")),
            ("# Fix parser\nBody", ("Fix parser", "Body")),
            ("Title: **Fix parser**\n\n", ("Fix parser", "")),
            ("\n\n  Just a title  ", ("Just a title", "")),
        ];
        for (text, (title, body)) in cases {
            assert_eq!(parse_final_message(text), (title.to_string(), body.to_string()), "{text}");
        }
        let long = "x".repeat(300);
        assert_eq!(parse_final_message(&long).0.chars().count(), 100);
    }

    #[test]
    fn checks_come_from_recorded_exit_codes() {
        let rec = |event, command: &[&str], exit_code| CommandRecord {
            event,
            command: cmd(command),
            exit_code,
            output: String::new(),
            output_lines: 0,
            gate: false,
        };
        let commands = vec![
            rec(3, &["cat", "tests/test_lib.py"], Some(0)),
            rec(5, &["python3", "-m", "unittest"], Some(1)),
            rec(9, &["bash", "-lc", "cargo clippy -- -D warnings"], Some(0)),
            rec(12, &["python3", "-m", "unittest"], Some(0)),
            rec(14, &["bash", "-lc", "./run_tests.sh"], None),
        ];
        let checks = recorded_checks(&commands);
        let summary: Vec<_> =
            checks.iter().map(|c| (c.command.as_str(), c.passed, c.event)).collect();
        assert_eq!(
            summary,
            [
                ("python3 -m unittest", true, 12),
                ("cargo clippy -- -D warnings", true, 9),
                ("./run_tests.sh", false, 14),
            ]
        );
    }

    #[test]
    fn claims_that_failed_checks_passed_are_flagged_in_place() {
        let check = |command: &str, passed: bool| CheckResult {
            command: command.into(),
            passed,
            exit_code: Some(i32::from(!passed)),
            event: 7,
            output_lines: 3,
        };
        let checks = [check("python3 -m unittest -v", false), check("ruff check .", true)];
        let cases = [
            (
                "Fixed it. All tests pass.",
                "Fixed it. All tests pass [not so: `python3 -m unittest -v` exited 1, log:7].",
            ),
            (
                "The unittest suite is green!\nDone.",
                "The unittest suite is green [not so: `python3 -m unittest -v` exited 1, log:7]!\nDone.",
            ),
            ("The tests still fail; ruff passes.", "The tests still fail; ruff passes."),
            ("Tests do not pass yet.", "Tests do not pass yet."),
            ("Lint is clean.", "Lint is clean."),
            ("I changed calc.py.", "I changed calc.py."),
        ];
        for (text, want) in cases {
            assert_eq!(correct_claims(text, &checks).0, want, "{text}");
        }
        assert_eq!(correct_claims("All tests pass.", &checks).1, 1);
        assert_eq!(correct_claims("All tests pass.", &checks[1..]).1, 0, "nothing failed");
    }

    #[test]
    fn display_quotes_what_needs_it() {
        assert_eq!(
            display_command(&cmd(&["grep", "-n", "a b", "it's"])),
            r#"grep -n 'a b' 'it'\''s'"#
        );
    }
}
