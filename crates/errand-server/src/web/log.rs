//! An attempt's work log as HTML, in two forms built from the same pieces:
//!
//! - [`LogView`]: the whole log so far, for the attempt page. A command's output, which arrives
//!   as chunks interleaved with other events, is gathered under its command, collapsed to its
//!   first lines with its exit status and duration beside it.
//! - [`live_ops`]: what one new event changes on a page that already shows the log: an item to
//!   add, output lines to append to a running command, a status, the plan or the usage to
//!   replace. The page's script applies them as they stream in (`attempt.rs`).
//!
//! Element ids derive from the log and never from raw model text: `e<seq>` for an item (log
//! citations name a command by its seq), `o-`/`s-`/`n-` plus the hex-escaped call id for a
//! command's output, status and line count. Output lines are `<span class="l">` children of
//! the `<pre>`, one per line, so line N of a command is the N-th child.

use std::collections::HashMap;

use errand_protocol::{
    AttemptOutcome, AttemptState, EgressDecision, Event, EventKind, FileChange, FileChangeKind,
    PlanItem, PlanStatus, TokenUsage,
};
use serde::Serialize;

use super::html::{duration, escape, escape_into, id_fragment, terminal_into};
use super::markdown::{self, CitationLinks};

/// Characters of one output line shown; the rest is summarised (a 5 MB line stays readable and
/// the page stays light). The stored log keeps every byte.
const MAX_LINE_CHARS: usize = 4096;
/// Output lines shown in a collapsed command's summary.
const PREVIEW_LINES: usize = 2;

/// One change to a page showing the log, as the page's script applies it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Append an item to the log.
    Add { html: String },
    /// Append output lines to the element `target`; `lines` is the command's line count after
    /// them, `count` the same in words for the command's summary.
    Append { target: String, html: String, lines: u64, count: String },
    /// Replace the element `target` with `html`.
    Replace { target: String, html: String },
    /// The attempt is over: its final state and the reason, as plain text (the script shows
    /// them with `textContent`).
    Finished { state: String, reason: String },
}

/// The log so far, ready to be shown.
pub struct LogView<'a> {
    items: Vec<Item>,
    commands: HashMap<String, usize>,
    plan: Option<String>,
    usage: Option<String>,
    outcome: Option<AttemptOutcome>,
    last_seq: u64,
    links: &'a dyn CitationLinks,
}

enum Item {
    Html(String),
    Command(Command),
}

/// A command (or a setup script) with its output so far.
struct Command {
    seq: u64,
    key: String,
    head: String,
    /// Output lines as plain text; the last may still be open (no newline yet).
    lines: Vec<String>,
    open_line: bool,
    status: Option<String>,
    failed: bool,
}

impl<'a> LogView<'a> {
    pub fn new(links: &'a dyn CitationLinks) -> LogView<'a> {
        LogView {
            items: Vec::new(),
            commands: HashMap::new(),
            plan: None,
            usage: None,
            outcome: None,
            last_seq: 0,
            links,
        }
    }

    /// The `seq` of the last event taken.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The plan checklist, once the agent made one.
    pub fn plan(&self) -> Option<&str> {
        self.plan.as_deref()
    }

    /// Tokens and cost so far.
    pub fn usage(&self) -> Option<&str> {
        self.usage.as_deref()
    }

    /// How the attempt ended, once it has.
    pub fn outcome(&self) -> Option<&AttemptOutcome> {
        self.outcome.as_ref()
    }

    pub fn push(&mut self, event: &Event) {
        self.last_seq = event.seq;
        match &event.kind {
            EventKind::CommandStarted { call_id, command, workdir, .. } => {
                self.start(event.seq, call_id.clone(), command_head(command, workdir));
            }
            EventKind::SetupStarted { phase, snapshot } => {
                self.start(event.seq, setup_key(phase), setup_head(phase, snapshot));
            }
            EventKind::CommandOutput { call_id, text, .. } => self.output(call_id, text),
            EventKind::SetupOutput { phase, text } => self.output(&setup_key(phase), text),
            EventKind::CommandFinished {
                call_id,
                exit_code,
                timed_out,
                duration_ms,
                dropped_bytes,
                ..
            } => {
                let (html, failed) =
                    command_status(*exit_code, *timed_out, *duration_ms, *dropped_bytes);
                self.finish(call_id, html, failed);
            }
            EventKind::SetupFinished { phase, exit_code, duration_ms } => {
                let (html, failed) =
                    command_status(*exit_code, exit_code.is_none(), *duration_ms, 0);
                self.finish(&setup_key(phase), html, failed);
            }
            EventKind::PlanUpdated { plan, .. } => {
                self.plan = Some(plan_html(plan));
                self.items.push(Item::Html(item_html(event, self.links)));
            }
            EventKind::TokenUsage { total, total_cost_usd, .. } => {
                self.usage = Some(usage_html(total, *total_cost_usd));
            }
            EventKind::Finished { outcome } => {
                self.outcome = Some(outcome.clone());
                self.items.push(Item::Html(item_html(event, self.links)));
            }
            _ => self.items.push(Item::Html(item_html(event, self.links))),
        }
    }

    fn start(&mut self, seq: u64, key: String, head: String) {
        self.commands.insert(key.clone(), self.items.len());
        self.items.push(Item::Command(Command {
            seq,
            key,
            head,
            lines: Vec::new(),
            open_line: false,
            status: None,
            failed: false,
        }));
    }

    fn command(&mut self, key: &str) -> Option<&mut Command> {
        let index = *self.commands.get(key)?;
        match self.items.get_mut(index) {
            Some(Item::Command(command)) => Some(command),
            _ => None,
        }
    }

    fn output(&mut self, key: &str, text: &str) {
        let Some(command) = self.command(key) else { return };
        let mut pieces = text.split('\n').peekable();
        if command.open_line
            && let (Some(first), Some(last)) = (pieces.next(), command.lines.last_mut())
        {
            last.push_str(first);
        }
        command.open_line = !text.ends_with('\n');
        let ends_with_newline = text.ends_with('\n');
        while let Some(piece) = pieces.next() {
            if pieces.peek().is_none() && ends_with_newline {
                break;
            }
            command.lines.push(piece.to_string());
        }
    }

    fn finish(&mut self, key: &str, status: String, failed: bool) {
        if let Some(command) = self.command(key) {
            command.status = Some(status);
            command.failed = failed;
        }
    }

    /// The items as HTML, in order (`<li>`s for an `<ol id="log">`).
    pub fn items_html(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            match item {
                Item::Html(html) => out.push_str(html),
                Item::Command(command) => command_html(command, &mut out),
            }
        }
        out
    }
}

fn setup_key(phase: &str) -> String {
    format!("setup-{phase}")
}

fn command_head(command: &[String], workdir: &str) -> String {
    let text = display_command(command);
    let mut out = String::from("<code class=\"cmdline\">$ ");
    escape_into(&mut out, &super::html::first_line(&text, 300));
    out.push_str("</code>");
    if text.contains('\n') || text.chars().count() > 300 {
        out.push_str("<details class=\"full\"><summary>full command</summary><pre>");
        escape_into(&mut out, &text);
        out.push_str("</pre></details>");
    }
    if workdir != "/workspace" && !workdir.is_empty() {
        out.push_str(" <span class=\"muted\">in ");
        escape_into(&mut out, workdir);
        out.push_str("</span>");
    }
    out
}

/// `bash -lc "script"` shows as the script; anything else as its words joined.
fn display_command(command: &[String]) -> String {
    match command {
        [shell, flag, script]
            if (shell == "bash" || shell == "sh")
                && flag.starts_with('-')
                && flag.ends_with('c') =>
        {
            script.clone()
        }
        _ => command.join(" "),
    }
}

fn setup_head(phase: &str, snapshot: &str) -> String {
    format!(
        "<code class=\"cmdline\">{} script</code> <span class=\"muted\">snapshot {}</span>",
        escape(phase),
        escape(&snapshot.chars().take(12).collect::<String>())
    )
}

/// The status of a finished command: its HTML and whether it failed.
fn command_status(
    exit_code: Option<i32>,
    timed_out: bool,
    duration_ms: u64,
    dropped: u64,
) -> (String, bool) {
    let (class, text) = match (exit_code, timed_out) {
        (_, true) => ("fail", "timed out".to_string()),
        (Some(0), _) => ("ok", "exit 0".to_string()),
        (Some(code), _) => ("fail", format!("exit {code}")),
        (None, _) => ("fail", "killed".to_string()),
    };
    let dropped = if dropped > 0 { format!(" · {dropped} bytes not kept") } else { String::new() };
    (
        format!(
            "<span class=\"badge {class}\">{text}</span> <span class=\"muted\">{}{dropped}</span>",
            duration(duration_ms)
        ),
        class == "fail",
    )
}

fn command_html(command: &Command, out: &mut String) {
    let key = id_fragment(&command.key);
    let state = match (&command.status, command.failed) {
        (None, _) => "running",
        (Some(_), true) => "failed",
        (Some(_), false) => "done",
    };
    out.push_str(&format!(
        "<li class=\"ev cmd {state}\" id=\"e{}\" data-seq=\"{}\"><div class=\"cmd-head\">",
        command.seq, command.seq
    ));
    out.push_str(&command.head);
    out.push_str(&format!(" <span class=\"st\" id=\"s-{key}\">"));
    match &command.status {
        Some(status) => out.push_str(status),
        None => out.push_str(RUNNING),
    }
    out.push_str("</span></div>");
    out.push_str(&format!(
        "<details class=\"out\"><summary><span class=\"count\" id=\"n-{key}\">{}</span><span class=\"preview\">",
        line_count(command.lines.len() as u64)
    ));
    for line in command.lines.iter().take(PREVIEW_LINES) {
        out.push_str("<span class=\"pl\">");
        line_html(line, 160, out);
        out.push_str("</span>");
    }
    out.push_str(&format!("</span></summary><pre id=\"o-{key}\">"));
    for line in &command.lines {
        out.push_str("<span class=\"l\">");
        line_html(line, MAX_LINE_CHARS, out);
        out.push_str("</span>");
    }
    out.push_str("</pre></details></li>");
}

const RUNNING: &str = "<span class=\"badge run\">running</span>";

fn line_count(lines: u64) -> String {
    match lines {
        0 => "no output".into(),
        1 => "1 line".into(),
        n => format!("{n} lines"),
    }
}

/// One output line, terminal sequences dropped, cut at `max` characters.
fn line_html(line: &str, max: usize, out: &mut String) {
    let line = line.strip_suffix('\r').unwrap_or(line);
    match line.char_indices().nth(max) {
        None => terminal_into(out, line),
        Some((cut, _)) => {
            terminal_into(out, &line[..cut]);
            out.push_str(&format!("<span class=\"cut\">… {} more bytes</span>", line.len() - cut));
        }
    }
}

fn plan_html(plan: &[PlanItem]) -> String {
    let mut out = String::from("<ul class=\"plan\" id=\"plan\">");
    for item in plan {
        let (class, mark) = match item.status {
            PlanStatus::Completed => ("done", "✓"),
            PlanStatus::InProgress => ("doing", "▸"),
            PlanStatus::Pending => ("todo", "○"),
        };
        out.push_str(&format!(
            "<li class=\"{class}\"><span class=\"mark\" aria-hidden=\"true\">{mark}</span> "
        ));
        escape_into(&mut out, &item.step);
        out.push_str("</li>");
    }
    out.push_str("</ul>");
    out
}

fn usage_html(total: &TokenUsage, cost: Option<f64>) -> String {
    let cost = cost.map(|c| format!(" · ${c:.2}")).unwrap_or_default();
    format!(
        "<span id=\"usage\" class=\"muted\">{} tokens in, {} out{cost}</span>",
        thousands(total.input),
        thousands(total.output)
    )
}

fn thousands(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{}k", n / 1000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// The badge for an attempt's state.
pub fn state_badge(state: AttemptState) -> String {
    let (class, text) = state_label(state);
    format!("<span class=\"badge {class}\" id=\"state\">{text}</span>")
}

/// CSS class and words for a state.
pub fn state_label(state: AttemptState) -> (&'static str, &'static str) {
    match state {
        AttemptState::Queued => ("wait", "queued"),
        AttemptState::Preparing => ("run", "preparing"),
        AttemptState::Running => ("run", "running"),
        AttemptState::Succeeded => ("ok", "succeeded"),
        AttemptState::Failed => ("fail", "failed"),
        AttemptState::Cancelled => ("off", "cancelled"),
        AttemptState::TimedOut => ("fail", "timed out"),
    }
}

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
fn item_html(event: &Event, links: &dyn CitationLinks) -> String {
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

/// The first characters of an id after its prefix, for display.
pub fn short_id(id: &str) -> String {
    let body = id.split_once('_').map_or(id, |(_, rest)| rest);
    body.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect()
}

/// What one new event changes on a page that shows the log up to the event before it.
pub fn live_ops(event: &Event, links: &dyn CitationLinks) -> Vec<Op> {
    let replace = |target: String, html: String| Op::Replace { target, html };
    match &event.kind {
        EventKind::CommandStarted { call_id, command, workdir, .. } => {
            vec![Op::Add { html: started_html(event.seq, call_id, command_head(command, workdir)) }]
        }
        EventKind::SetupStarted { phase, snapshot } => {
            vec![Op::Add {
                html: started_html(event.seq, &setup_key(phase), setup_head(phase, snapshot)),
            }]
        }
        EventKind::CommandOutput { call_id, first_line, text } => {
            vec![append_op(call_id, text, first_line.saturating_sub(1))]
        }
        EventKind::SetupOutput { phase, text } => vec![append_op(&setup_key(phase), text, 0)],
        EventKind::CommandFinished {
            call_id,
            exit_code,
            timed_out,
            duration_ms,
            dropped_bytes,
            output_lines,
            ..
        } => {
            let (html, failed) =
                command_status(*exit_code, *timed_out, *duration_ms, *dropped_bytes);
            let key = id_fragment(call_id);
            vec![
                replace(
                    format!("s-{key}"),
                    format!(
                        "<span class=\"st{}\" id=\"s-{key}\">{html}</span>",
                        if failed { " failed" } else { "" }
                    ),
                ),
                replace(
                    format!("n-{key}"),
                    format!(
                        "<span class=\"count\" id=\"n-{key}\">{}</span>",
                        line_count(*output_lines)
                    ),
                ),
            ]
        }
        EventKind::SetupFinished { phase, exit_code, duration_ms } => {
            let (html, _) = command_status(*exit_code, exit_code.is_none(), *duration_ms, 0);
            let key = id_fragment(&setup_key(phase));
            vec![replace(
                format!("s-{key}"),
                format!("<span class=\"st\" id=\"s-{key}\">{html}</span>"),
            )]
        }
        EventKind::PlanUpdated { plan, .. } => {
            vec![replace("plan".into(), plan_html(plan)), Op::Add { html: item_html(event, links) }]
        }
        EventKind::TokenUsage { total, total_cost_usd, .. } => {
            vec![replace("usage".into(), usage_html(total, *total_cost_usd))]
        }
        EventKind::StateChanged { state, .. } => vec![
            replace("state".into(), state_badge(*state)),
            Op::Add { html: item_html(event, links) },
        ],
        EventKind::Finished { outcome } => vec![
            replace("state".into(), state_badge(outcome.state)),
            Op::Add { html: item_html(event, links) },
            Op::Finished {
                state: state_label(outcome.state).1.into(),
                reason: outcome.reason.clone(),
            },
        ],
        _ => vec![Op::Add { html: item_html(event, links) }],
    }
}

fn started_html(seq: u64, key: &str, head: String) -> String {
    let mut out = String::new();
    command_html(
        &Command {
            seq,
            key: key.into(),
            head,
            lines: Vec::new(),
            open_line: false,
            status: None,
            failed: false,
        },
        &mut out,
    );
    out
}

fn append_op(key: &str, text: &str, lines_before: u64) -> Op {
    let mut html = String::new();
    let mut count = 0;
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        html.push_str("<span class=\"l\">");
        line_html(line, MAX_LINE_CHARS, &mut html);
        html.push_str("</span>");
        count += 1;
    }
    let lines = lines_before + count;
    Op::Append { target: format!("o-{}", id_fragment(key)), html, lines, count: line_count(lines) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_protocol::CitationTarget;

    struct NoLinks;
    impl CitationLinks for NoLinks {
        fn link(&self, _: &str, _: &CitationTarget, inner: &str, out: &mut String) {
            out.push_str(inner);
        }
    }

    fn event(seq: u64, kind: EventKind) -> Event {
        Event { seq, at_ms: 0, kind }
    }

    fn command(seq: u64, call: &str, script: &str) -> Event {
        event(
            seq,
            EventKind::CommandStarted {
                call_id: call.into(),
                command: vec!["bash".into(), "-lc".into(), script.into()],
                workdir: "/workspace".into(),
                timeout_ms: 1000,
            },
        )
    }

    fn output(seq: u64, call: &str, first_line: u64, text: &str) -> Event {
        event(seq, EventKind::CommandOutput { call_id: call.into(), first_line, text: text.into() })
    }

    fn finished(seq: u64, call: &str, code: i32, lines: u64) -> Event {
        event(
            seq,
            EventKind::CommandFinished {
                call_id: call.into(),
                exit_code: Some(code),
                timed_out: false,
                duration_ms: 1200,
                output_lines: lines,
                output_bytes: 10,
                dropped_bytes: 0,
            },
        )
    }

    #[test]
    fn commands_gather_their_output_lines_in_order() {
        let mut view = LogView::new(&NoLinks);
        view.push(&command(3, "c1", "cargo test"));
        view.push(&output(4, "c1", 1, "one\ntwo\n"));
        view.push(&event(5, EventKind::AgentMessage { text: "meanwhile".into() }));
        view.push(&output(6, "c1", 3, "three"));
        view.push(&finished(7, "c1", 101, 3));
        let html = view.items_html();
        assert!(html.contains("id=\"e3\""), "{html}");
        assert!(html.contains("<pre id=\"o-c1\"><span class=\"l\">one</span><span class=\"l\">two</span><span class=\"l\">three</span></pre>"), "{html}");
        assert!(html.contains("exit 101") && html.contains("cmd failed"), "{html}");
        assert!(html.contains("3 lines"), "{html}");
        // The message comes after the command that started first.
        assert!(html.find("meanwhile").unwrap() > html.find("three").unwrap(), "{html}");
        assert_eq!(view.last_seq(), 7);
    }

    #[test]
    fn live_ops_match_the_page_ids() {
        let ops = live_ops(&command(3, "c\"1", "ls"), &NoLinks);
        let Op::Add { html } = &ops[0] else { panic!("{ops:?}") };
        assert!(html.contains("id=\"o-c.221\"") && html.contains("id=\"s-c.221\""), "{html}");
        let ops = live_ops(&output(4, "c\"1", 5, "a\nb\n"), &NoLinks);
        assert_eq!(
            ops,
            vec![Op::Append {
                target: "o-c.221".into(),
                html: "<span class=\"l\">a</span><span class=\"l\">b</span>".into(),
                lines: 6,
                count: "6 lines".into(),
            }]
        );
        let ops = live_ops(&finished(5, "c\"1", 0, 6), &NoLinks);
        assert!(matches!(&ops[0], Op::Replace { target, .. } if target == "s-c.221"), "{ops:?}");
    }

    #[test]
    fn hostile_output_is_inert_and_long_lines_are_cut() {
        let mut view = LogView::new(&NoLinks);
        view.push(&command(1, "x", "<script>alert(1)</script>"));
        let long = "A".repeat(5 << 20);
        view.push(&output(
            2,
            "x",
            1,
            &format!("\x1b[31m<img src=x onerror=alert(1)>\x1b[0m\n{long}"),
        ));
        let html = view.items_html();
        assert!(
            !html.contains("<script") && !html.contains("<img") && !html.contains('\x1b'),
            "escaped"
        );
        assert!(html.contains("more bytes"), "the 5 MB line is cut");
        assert!(html.len() < 64 << 10, "{} bytes", html.len());
    }

    #[test]
    fn plan_usage_and_outcome_are_kept_aside() {
        let mut view = LogView::new(&NoLinks);
        view.push(&event(
            1,
            EventKind::PlanUpdated {
                explanation: None,
                plan: vec![
                    PlanItem { step: "read <code>".into(), status: PlanStatus::Completed },
                    PlanItem { step: "fix".into(), status: PlanStatus::InProgress },
                ],
            },
        ));
        view.push(&event(
            2,
            EventKind::TokenUsage {
                turn: 1,
                usage: TokenUsage::default(),
                total: TokenUsage { input: 12_345, output: 67, ..TokenUsage::default() },
                cost_usd: None,
                total_cost_usd: Some(0.5),
            },
        ));
        view.push(&event(
            3,
            EventKind::Finished {
                outcome: AttemptOutcome { state: AttemptState::Succeeded, reason: "done".into() },
            },
        ));
        assert!(view.plan().unwrap().contains("read &lt;code&gt;"));
        assert!(
            view.usage().unwrap().contains("12k tokens in")
                && view.usage().unwrap().contains("$0.50")
        );
        assert_eq!(view.outcome().map(|o| o.state), Some(AttemptState::Succeeded));
        assert!(view.items_html().contains("1/2 done"));
    }
}
