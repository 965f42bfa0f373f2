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

mod items;
#[cfg(test)]
mod tests;

use items::item_html;

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
