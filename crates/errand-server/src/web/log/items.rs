//! The events that are log items of their own (messages, edits, limits, results, …), as HTML.

use super::*;

fn changes_html(changes: &[FileChange], out: &mut String) {
    out.push_str("<ul class=\"files\">");
    for change in changes {
        out.push_str("<li><code>");
        if let FileChangeKind::Renamed { from } = &change.kind {
            escape_into(out, from);
            out.push_str(" → ");
        }
        escape_into(out, &change.path);
        let kind = match change.kind {
            FileChangeKind::Added => "added",
            FileChangeKind::Deleted => "deleted",
            FileChangeKind::Renamed { .. } => "renamed",
            FileChangeKind::ModeChanged => "mode",
            FileChangeKind::Modified => "",
        };
        out.push_str("</code>");
        if !kind.is_empty() {
            out.push_str(&format!(" <span class=\"muted\">{kind}</span>"));
        }
        if change.binary {
            out.push_str(" <span class=\"muted\">binary</span>");
        } else {
            out.push_str(&format!(
                " <span class=\"add\">+{}</span> <span class=\"del\">−{}</span>",
                change.insertions, change.deletions
            ));
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
}

/// An event that is a log item of its own.
pub(super) fn item_html(event: &Event, links: &dyn CitationLinks) -> String {
    let seq = event.seq;
    let mut out = String::new();
    let open = |class: &str, out: &mut String| {
        out.push_str(&format!("<li class=\"ev {class}\" id=\"e{seq}\">"));
    };
    match &event.kind {
        EventKind::StateChanged { state, reason } => {
            open("meta", &mut out);
            out.push_str(&format!("<span class=\"muted\">now {}</span>", state_label(*state).1));
            if let Some(reason) = reason {
                out.push_str(" <span class=\"muted\">(");
                escape_into(&mut out, reason);
                out.push_str(")</span>");
            }
        }
        EventKind::SnapshotReady { snapshot, reused, maintenance_ran } => {
            open("meta", &mut out);
            let how = match (reused, maintenance_ran) {
                (true, true) => "reused, maintenance ran",
                (true, false) => "reused",
                (false, _) => "built",
            };
            out.push_str(&format!(
                "<span class=\"muted\">snapshot {} {how}</span>",
                escape(&snapshot.chars().take(12).collect::<String>())
            ));
        }
        EventKind::SandboxReady { backend, isolation, base_commit, duration_ms } => {
            open("meta", &mut out);
            out.push_str(&format!(
                "<details class=\"muted\"><summary>sandbox ready in {} at {}</summary>{}: {}</details>",
                duration(*duration_ms),
                escape(&base_commit.chars().take(10).collect::<String>()),
                escape(backend),
                escape(&isolation.join(", "))
            ));
        }
        EventKind::InstructionsLoaded { files, bytes, truncated } => {
            open("meta", &mut out);
            out.push_str("<span class=\"muted\">instructions from ");
            escape_into(&mut out, &files.join(", "));
            out.push_str(&format!(
                " ({bytes} bytes{})</span>",
                if *truncated { ", truncated" } else { "" }
            ));
        }
        EventKind::FollowupStarted { parent, files, prompt } => {
            open("user", &mut out);
            out.push_str(&format!("<div class=\"who\">Follow-up of attempt <a href=\"/attempts/{parent}\">{}</a></div><div class=\"text\">", short_id(&parent.to_string())));
            escape_into(&mut out, prompt);
            out.push_str("</div>");
            if !files.is_empty() {
                changes_html(files, &mut out);
            }
        }
        EventKind::TurnStarted { turn } => {
            open("turn", &mut out);
            out.push_str(&format!("<span class=\"muted\">turn {turn}</span>"));
        }
        EventKind::UserMessage { text } => {
            open("user", &mut out);
            out.push_str("<div class=\"who\">You</div><div class=\"text\">");
            escape_into(&mut out, text);
            out.push_str("</div>");
        }
        EventKind::AgentMessage { text } => {
            open("agent", &mut out);
            out.push_str("<div class=\"who\">Agent</div><div class=\"md\">");
            out.push_str(&markdown::render(text, links));
            out.push_str("</div>");
        }
        EventKind::Reasoning { text } => {
            open("reasoning", &mut out);
            out.push_str("<details><summary>thinking</summary><div class=\"text\">");
            escape_into(&mut out, text);
            out.push_str("</div></details>");
        }
        EventKind::PatchApplied { success, changes, output, .. } => {
            open(if *success { "patch" } else { "patch failed" }, &mut out);
            if *success {
                out.push_str("<div class=\"who\">Edited</div>");
                changes_html(changes, &mut out);
            } else {
                out.push_str("<div class=\"who\"><span class=\"badge fail\">patch failed</span></div><pre class=\"msg\">");
                terminal_into(&mut out, output);
                out.push_str("</pre>");
            }
        }
        EventKind::PlanUpdated { explanation, plan } => {
            open("meta", &mut out);
            let done = plan.iter().filter(|i| i.status == PlanStatus::Completed).count();
            out.push_str(&format!(
                "<span class=\"muted\">plan updated: {done}/{} done",
                plan.len()
            ));
            if let Some(explanation) = explanation {
                out.push_str(" — ");
                escape_into(&mut out, explanation);
            }
            out.push_str("</span>");
        }
        EventKind::ToolError { tool, message, .. } => {
            open("warn", &mut out);
            out.push_str("<span class=\"badge fail\">tool error</span> <code>");
            escape_into(&mut out, tool);
            out.push_str("</code> ");
            escape_into(&mut out, message);
        }
        EventKind::ToolCallRecovered { tool, form, .. } => {
            open("meta", &mut out);
            out.push_str("<span class=\"muted\">the agent wrote a <code>");
            escape_into(&mut out, tool);
            out.push_str("</code> call as text; Errand ran it (");
            escape_into(&mut out, &form.replace('_', " "));
            out.push_str(")</span>");
        }
        EventKind::FinishChecks { round, passed, failed, rounds_left } => {
            if *passed {
                open("result", &mut out);
                out.push_str(&format!("<div class=\"who\">Finish checks passed</div><span class=\"muted\">round {round}</span>"));
            } else {
                open("limit", &mut out);
                out.push_str("<span class=\"badge fail\">finish checks failed</span> ");
                escape_into(&mut out, &failed.join(", "));
                out.push_str(&format!(
                    " <span class=\"muted\">(round {round}; {})</span>",
                    if *rounds_left > 0 { "sent back to the agent" } else { "no rounds left" }
                ));
            }
        }
        EventKind::LimitReached { limit, detail } => {
            open("limit", &mut out);
            out.push_str("<span class=\"badge fail\">limit reached</span> <strong>");
            escape_into(&mut out, limit);
            out.push_str("</strong>: ");
            escape_into(&mut out, detail);
        }
        EventKind::ModelRetry { attempt, delay_ms, error } => {
            open("meta", &mut out);
            out.push_str(&format!(
                "<span class=\"muted\">model call failed (try {attempt}), retrying in {}: ",
                duration(*delay_ms)
            ));
            escape_into(&mut out, error);
            out.push_str("</span>");
        }
        EventKind::ContextCompacted {
            tokens_before,
            tokens_after,
            turns_summarized,
            summary,
            ..
        } => {
            open("meta", &mut out);
            out.push_str(&format!(
                "<details><summary>context compacted: {turns_summarized} turns summarised, {} → {} tokens</summary><div class=\"text\">",
                thousands(*tokens_before),
                thousands(*tokens_after)
            ));
            escape_into(&mut out, summary);
            out.push_str("</div></details>");
        }
        EventKind::EgressConnection { host, port, method, decision, reason, .. } => {
            let (class, word) = match decision {
                EgressDecision::Allowed => ("meta", "allowed"),
                EgressDecision::Denied => ("warn", "denied"),
                EgressDecision::Failed => ("warn", "failed"),
            };
            open(class, &mut out);
            out.push_str("<span class=\"muted\">network ");
            escape_into(&mut out, &format!("{method} {host}:{port}"));
            out.push_str(&format!(" {word}"));
            if let Some(reason) = reason {
                out.push_str(": ");
                escape_into(&mut out, reason);
            }
            out.push_str("</span>");
        }
        EventKind::DiffReady { files } => {
            open("result", &mut out);
            out.push_str(&format!(
                "<div class=\"who\">Diff ready: {} file{}</div>",
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            ));
            changes_html(files, &mut out);
        }
        EventKind::ReportReady { report } => {
            open("result", &mut out);
            out.push_str("<div class=\"who\">Report ready</div><div class=\"text\">");
            escape_into(&mut out, &report.title);
            out.push_str("</div>");
        }
        EventKind::Finished { outcome } => {
            let (class, text) = state_label(outcome.state);
            open("finished", &mut out);
            out.push_str(&format!("<span class=\"badge {class}\">{text}</span> "));
            escape_into(&mut out, &outcome.reason);
        }
        // Commands, setup scripts, usage: gathered elsewhere.
        EventKind::CommandStarted { .. }
        | EventKind::CommandOutput { .. }
        | EventKind::CommandFinished { .. }
        | EventKind::SetupStarted { .. }
        | EventKind::SetupOutput { .. }
        | EventKind::SetupFinished { .. }
        | EventKind::TokenUsage { .. } => return String::new(),
    }
    out.push_str("</li>");
    out
}
