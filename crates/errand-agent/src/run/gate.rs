//! The finish gate: checks Errand runs itself when the agent says it is done, so "the tests
//! pass" is a fact, not a claim. The checks come from the configuration (an environment's
//! `checks`) and from the repository's root AGENTS.md, under a heading `Checks` (documented in
//! docs/configuration.md):
//!
//! ```markdown
//! ## Checks
//! - `cargo test`
//! - `cargo clippy -- -D warnings`
//! ```
//!
//! Each runs in the sandbox like any command of the agent's (recorded, citable, in the report's
//! testing checklist). When one fails and rounds are left, its output goes back to the model as
//! a message and the loop goes on; when none are left, the attempt ends failed, with its report.

use super::*;

/// The commands listed under a `Checks` heading (any level, any case) of an AGENTS.md: list
/// items whose text is one backticked command, until the next heading.
pub(crate) fn checks_in_agents_md(text: &str) -> Vec<String> {
    let mut checks = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(heading) = trimmed.strip_prefix('#') {
            inside = heading.trim_start_matches('#').trim().eq_ignore_ascii_case("checks");
            continue;
        }
        if !inside {
            continue;
        }
        let Some(item) = trimmed.strip_prefix("- ").or_else(|| trimmed.strip_prefix("* ")) else {
            continue;
        };
        let item = item.trim();
        if let Some(command) =
            item.strip_prefix('`').and_then(|rest| rest.split_once('`')).map(|(c, _)| c.trim())
            && !command.is_empty()
            && !checks.iter().any(|c| c == command)
        {
            checks.push(command.to_string());
        }
    }
    checks
}

/// The checks for this attempt: the configuration's, then AGENTS.md's (without repeats).
pub(super) async fn gate_checks(config: &AgentConfig, sandbox: &dyn Sandbox) -> Vec<String> {
    let mut checks = config.gate_checks.clone();
    if let Ok(Some(bytes)) = sandbox.read_file(crate::instructions::AGENTS_FILE).await {
        for check in checks_in_agents_md(&String::from_utf8_lossy(&bytes)) {
            if !checks.contains(&check) {
                checks.push(check);
            }
        }
    }
    checks
}

/// Runs `checks` in the sandbox as round `round`; returns, for each that failed, the command
/// and what the model is told of its run.
pub(super) async fn run_checks(
    ctx: &ToolContext<'_>,
    checks: &[String],
    round: u32,
    sink: &mut dyn EventSink,
    state: &mut LoopState,
) -> Result<Vec<(String, String)>, LoopEnd> {
    let mut failed = Vec::new();
    for (i, check) in checks.iter().enumerate() {
        let args = ShellArgs {
            command: vec!["bash".into(), "-lc".into(), check.clone()],
            workdir: None,
            timeout_ms: None,
        };
        let told =
            run_shell(ctx, &format!("finish-check-{round}-{}", i + 1), args, sink, state).await?;
        let passed = state.commands.last().is_some_and(|record| record.exit_code == Some(0));
        if let Some(record) = state.commands.last_mut() {
            record.gate = true;
        }
        if !passed {
            failed.push((check.clone(), told));
        }
    }
    Ok(failed)
}

/// What the model is told when checks failed and it has another round.
pub(super) fn failure_message(failed: &[(String, String)], rounds_left: u32) -> String {
    let mut text = String::from(
        "Errand ran the finish checks before accepting your answer, and these failed:\n",
    );
    for (check, told) in failed {
        text.push_str(&format!("\n## `{check}`\n{told}\n"));
    }
    text.push_str(&format!(
        "\nFix the cause, run the checks yourself, then give your final answer again \
         ({rounds_left} more round{} of checks).",
        if rounds_left == 1 { "" } else { "s" }
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_read_from_their_heading_only() {
        let text = "# Project\n\nRun `make` first.\n\n## Checks\n- `cargo test`\n* `cargo clippy -- -D warnings`\n- not a command\n- `cargo test`\n\n## Style\n- `not a check`\n### checks\n- `npm run lint`\n";
        assert_eq!(
            checks_in_agents_md(text),
            ["cargo test", "cargo clippy -- -D warnings", "npm run lint"]
        );
        assert!(checks_in_agents_md("no heading\n- `x`\n").is_empty());
    }
}
