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
    view.push(&output(2, "x", 1, &format!("\x1b[31m<img src=x onerror=alert(1)>\x1b[0m\n{long}")));
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
        view.usage().unwrap().contains("12k tokens in") && view.usage().unwrap().contains("$0.50")
    );
    assert_eq!(view.outcome().map(|o| o.state), Some(AttemptState::Succeeded));
    assert!(view.items_html().contains("1/2 done"));
}
