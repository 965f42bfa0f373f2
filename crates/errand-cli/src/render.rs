//! How `errand exec` shows the work log to a person: one line per step, command output indented
//! and capped per command (the full output is in `--json` and in the stored log).

use std::collections::HashMap;
use std::io::Write;

use errand_protocol::{EgressDecision, Event, EventKind, FileChange, FileChangeKind, PlanStatus};

/// Lines of each command's output shown live.
const SHOWN_LINES: u64 = 20;

#[derive(Default)]
pub struct HumanRenderer {
    shown: HashMap<String, u64>,
}

impl HumanRenderer {
    pub fn render(&mut self, event: &Event, out: &mut dyn Write) -> std::io::Result<()> {
        match &event.kind {
            EventKind::StateChanged { state, reason } => match reason {
                Some(reason) => writeln!(out, "● {} — {reason}", state_name(*state)),
                None => writeln!(out, "● {}", state_name(*state)),
            },
            EventKind::SetupStarted { phase, snapshot } => {
                writeln!(out, "● {phase} … (snapshot {snapshot})")
            }
            EventKind::SetupOutput { text, .. } => {
                for line in text.lines() {
                    writeln!(out, "  │ {}", sanitize(line))?;
                }
                Ok(())
            }
            EventKind::SetupFinished { phase, exit_code, duration_ms } => {
                let secs = *duration_ms as f64 / 1000.0;
                match exit_code {
                    Some(0) => writeln!(out, "  ✓ {phase} exit 0 · {secs:.1} s"),
                    Some(code) => writeln!(out, "  ✗ {phase} exit {code} · {secs:.1} s"),
                    None => writeln!(out, "  ✗ {phase} killed · {secs:.1} s"),
                }
            }
            EventKind::SnapshotReady { snapshot, reused, maintenance_ran } => {
                match (reused, maintenance_ran) {
                    (false, _) => writeln!(out, "● snapshot {snapshot} built"),
                    (true, true) => {
                        writeln!(out, "● snapshot {snapshot} reused (maintenance ran)")
                    }
                    (true, false) => writeln!(out, "● snapshot {snapshot} reused"),
                }
            }
            EventKind::SandboxReady { isolation, duration_ms, base_commit, .. } => writeln!(
                out,
                "● sandbox ready in {duration_ms} ms at {}: {}",
                &base_commit[..base_commit.len().min(12)],
                isolation.join(" · ")
            ),
            EventKind::InstructionsLoaded { files, truncated, .. } => writeln!(
                out,
                "● instructions from {}{}",
                files.join(", "),
                if *truncated { " (cut to the budget)" } else { "" }
            ),
            EventKind::TurnStarted { .. }
            | EventKind::TokenUsage { .. }
            | EventKind::ReportReady { .. } => Ok(()),
            EventKind::FollowupStarted { parent, files, prompt } => {
                writeln!(
                    out,
                    "● follow-up of {parent} ({} changed files carried over)\n» you: {}",
                    files.len(),
                    prompt.trim().replace('\n', "\n  ")
                )
            }
            EventKind::UserMessage { text } => {
                writeln!(out, "» you: {}", text.trim().replace('\n', "\n  "))
            }
            EventKind::AgentMessage { text } => {
                writeln!(out, "» {}", text.trim().replace('\n', "\n  "))
            }
            EventKind::Reasoning { text } => {
                writeln!(out, "… {}", text.lines().next().unwrap_or("").trim())
            }
            EventKind::CommandStarted { call_id, command, workdir, .. } => {
                self.shown.insert(call_id.clone(), 0);
                let shown = errand_agent::display_command(command);
                writeln!(
                    out,
                    "$ {shown}   [log:{}{}]",
                    event.seq,
                    if workdir.is_empty() { String::new() } else { format!(" in {workdir}") }
                )
            }
            EventKind::CommandOutput { call_id, text, .. } => {
                let shown = self.shown.entry(call_id.clone()).or_default();
                for line in text.lines() {
                    if *shown < SHOWN_LINES {
                        writeln!(out, "  │ {}", sanitize(line))?;
                    }
                    *shown += 1;
                }
                Ok(())
            }
            EventKind::CommandFinished {
                call_id,
                exit_code,
                timed_out,
                duration_ms,
                output_lines,
                dropped_bytes,
                ..
            } => {
                if *output_lines > SHOWN_LINES {
                    writeln!(out, "  │ … {} more lines in the log", output_lines - SHOWN_LINES)?;
                }
                self.shown.remove(call_id);
                let secs = *duration_ms as f64 / 1000.0;
                let dropped = if *dropped_bytes > 0 {
                    format!(" · {dropped_bytes} bytes over the output limit dropped")
                } else {
                    String::new()
                };
                match (exit_code, timed_out) {
                    (_, true) => {
                        writeln!(out, "  ✗ killed at its timeout after {secs:.1} s{dropped}")
                    }
                    (Some(0), _) => {
                        writeln!(out, "  ✓ exit 0 · {secs:.1} s · {output_lines} lines{dropped}")
                    }
                    (Some(code), _) => writeln!(
                        out,
                        "  ✗ exit {code} · {secs:.1} s · {output_lines} lines{dropped}"
                    ),
                    (None, _) => writeln!(out, "  ✗ killed · {secs:.1} s{dropped}"),
                }
            }
            EventKind::PatchApplied { success, changes, output, .. } => {
                if *success {
                    let files: Vec<String> = changes.iter().map(change_line).collect();
                    writeln!(out, "✎ patch applied: {}", files.join(", "))
                } else {
                    writeln!(out, "✎ patch failed: {}", output.trim().replace('\n', "\n  "))
                }
            }
            EventKind::PlanUpdated { plan, .. } => {
                writeln!(out, "☰ plan")?;
                for item in plan {
                    let mark = match item.status {
                        PlanStatus::Pending => "[ ]",
                        PlanStatus::InProgress => "[~]",
                        PlanStatus::Completed => "[x]",
                    };
                    writeln!(out, "  {mark} {}", item.step)?;
                }
                Ok(())
            }
            EventKind::ToolError { tool, message, .. } => writeln!(out, "! {tool}: {message}"),
            EventKind::ToolCallRecovered { tool, form, .. } => {
                writeln!(
                    out,
                    "↺ {tool} call recovered from the agent's text ({})",
                    form.replace('_', " ")
                )
            }
            EventKind::LimitReached { limit, detail } => {
                writeln!(out, "! limit reached ({limit}): {detail}")
            }
            EventKind::FinishChecks { round, passed: true, .. } => {
                writeln!(out, "✓ finish checks passed (round {round})")
            }
            EventKind::FinishChecks { round, failed, rounds_left, .. } => {
                let then = if *rounds_left > 0 { "back to the agent" } else { "no rounds left" };
                writeln!(
                    out,
                    "✗ finish checks failed (round {round}): {}; {then}",
                    failed.join(", ")
                )
            }
            EventKind::ModelRetry { attempt, delay_ms, error } => {
                writeln!(out, "! model request failed ({error}); retry {attempt} in {delay_ms} ms")
            }
            EventKind::ContextCompacted {
                trigger,
                tokens_before,
                tokens_after,
                turns_summarized,
                turns_kept,
                turns_dropped,
                ..
            } => {
                let why = if trigger == "auto" { "near the context window" } else { trigger };
                let dropped = if *turns_dropped > 0 {
                    format!(", {turns_dropped} oldest left out")
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "⇣ context compacted ({why}): {turns_summarized} turns summarised{dropped}, \
                     {turns_kept} kept · ~{}k → ~{}k tokens",
                    tokens_before.div_ceil(1000),
                    tokens_after.div_ceil(1000)
                )
            }
            EventKind::EgressConnection {
                host,
                port,
                method,
                decision,
                status,
                reason,
                bytes_sent,
                bytes_received,
                ..
            } => {
                let target =
                    if host.is_empty() { "?".to_string() } else { format!("{host}:{port}") };
                let method = sanitize(method);
                match decision {
                    EgressDecision::Allowed => writeln!(
                        out,
                        "  ⇄ {} {method} allowed · {}",
                        sanitize(&target),
                        bytes(bytes_sent + bytes_received)
                    ),
                    EgressDecision::Denied | EgressDecision::Failed => {
                        let word =
                            if *decision == EgressDecision::Denied { "denied" } else { "failed" };
                        let status = status.map(|s| format!(" {s}")).unwrap_or_default();
                        let reason = reason.as_deref().unwrap_or_default();
                        let reason = reason.strip_prefix("errand egress: ").unwrap_or(reason);
                        writeln!(
                            out,
                            "  ⇄ {} {method} {word}{status}: {}",
                            sanitize(&target),
                            sanitize(reason)
                        )
                    }
                }
            }
            EventKind::DiffReady { files } => {
                let (plus, minus) =
                    files.iter().fold((0, 0), |(p, m), f| (p + f.insertions, m + f.deletions));
                writeln!(out, "● diff: {} file(s) changed, +{plus} −{minus}", files.len())
            }
            EventKind::Finished { .. } => Ok(()),
        }
    }
}

fn state_name(state: errand_protocol::AttemptState) -> &'static str {
    use errand_protocol::AttemptState::*;
    match state {
        Queued => "queued",
        Preparing => "preparing",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        TimedOut => "timed out",
    }
}

fn change_line(change: &FileChange) -> String {
    match &change.kind {
        FileChangeKind::Added => format!("A {}", change.path),
        FileChangeKind::Modified | FileChangeKind::ModeChanged => format!("M {}", change.path),
        FileChangeKind::Deleted => format!("D {}", change.path),
        FileChangeKind::Renamed { from } => format!("R {from} → {}", change.path),
    }
}

/// A byte count as people read it: `812 B`, `12 kB`, `3.4 MB` (powers of 1000).
fn bytes(count: u64) -> String {
    match count {
        0..1_000 => format!("{count} B"),
        1_000..10_000 => format!("{:.1} kB", count as f64 / 1e3),
        10_000..1_000_000 => format!("{} kB", count / 1_000),
        1_000_000..1_000_000_000 => format!("{:.1} MB", count as f64 / 1e6),
        _ => format!("{:.1} GB", count as f64 / 1e9),
    }
}

/// Terminal control sequences from command output must not reach the user's terminal.
fn sanitize(line: &str) -> String {
    line.chars().map(|c| if c.is_control() && c != '\t' { '�' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(kind: EventKind) -> String {
        let mut out = Vec::new();
        HumanRenderer::default().render(&Event { seq: 9, at_ms: 0, kind }, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn egress_connections_render_one_line_each() {
        let connection = |decision, status, reason: Option<&str>| EventKind::EgressConnection {
            host: "pypi.org".into(),
            port: 443,
            method: "CONNECT".into(),
            decision,
            address: None,
            status,
            reason: reason.map(String::from),
            bytes_sent: 700,
            bytes_received: 11_800,
        };
        assert_eq!(
            rendered(connection(EgressDecision::Allowed, None, None)),
            "  ⇄ pypi.org:443 CONNECT allowed · 12 kB\n"
        );
        assert_eq!(
            rendered(connection(
                EgressDecision::Denied,
                Some(403),
                Some("errand egress: pypi.org is not in this environment's allowed domains\x1b[2J")
            )),
            "  ⇄ pypi.org:443 CONNECT denied 403: pypi.org is not in this environment's allowed \
             domains�[2J\n"
        );
        assert_eq!(
            rendered(connection(EgressDecision::Failed, Some(502), Some("cannot resolve"))),
            "  ⇄ pypi.org:443 CONNECT failed 502: cannot resolve\n"
        );
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_234), "1.2 kB");
        assert_eq!(bytes(3_400_000), "3.4 MB");
    }

    #[test]
    fn control_sequences_are_neutralised() {
        assert_eq!(sanitize("a\x1b[31mred"), "a�[31mred");
    }
}
