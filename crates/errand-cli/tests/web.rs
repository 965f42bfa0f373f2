//! The web UI in real headless Chromium against the real `errand serve`, its workers and real
//! sandboxes, with the scripted model: sign in, create a task of two attempts from the form,
//! watch the log grow live, message the running attempt, follow a code citation and a log
//! citation to exactly the cited lines, switch between the attempts; hostile content from the
//! model, the repository and the logs renders inert; every page fits 390 px and 1280 px without
//! horizontal scrolling, with screenshots saved as test artifacts.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use common::server::{ServeOptions, TestServer};
use common::{make_repo, model_config, sandbox_available, scratch};
use errand_testkit::browser::{Browser, artifacts_dir};
use errand_testkit::{Script, ScriptedModel};

/// What the page prints into the model's file, command output and messages: if any of it ran,
/// `window.pwned` would be set.
const SCRIPT_TAG: &str = "<script>window.pwned=1</script>";

/// A model that runs a slow command (so the page can watch it live and message it), fixes
/// calc.py, adds a file with a hostile name and content, prints hostile output and a 5 MB line,
/// and reports with a code citation and a log citation. Every conversation replays it.
///
/// Seqs before the first command are fixed (preparing 1, sandbox 2, running 3, AGENTS.md 4,
/// turn 5, usage 6), so the slow command is log:7.
const SCRIPT: &str = r#"
mode = "per_conversation"

[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["bash", "-lc", "for i in $(seq 1 60); do echo \"line $i of the slow loop\"; sleep 0.1; done"] }

[[turns]]
[[turns.output]]
type = "function_call"
name = "update_plan"
arguments = { plan = [
  { step = "Watch the loop", status = "completed" },
  { step = "Fix add()", status = "in_progress" },
] }
[[turns.output]]
type = "custom_tool_call"
name = "apply_patch"
input = """
*** Begin Patch
*** Update File: calc.py
 def add(a, b):
-    return a - b
+    return a + b
*** Add File: x"><svg onload=window.pwned=1>.py
+print("<script>window.pwned=1</script>")
+# </td></table><img src=x onerror=window.pwned=1>
*** End Patch
"""

[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["bash", "-lc", "printf '\\033[31m<script>window.pwned=1</script>\\033[0m\\n'; python3 -c \"print('A' * 5_000_000)\"; python3 -m unittest -v"] }

[[turns]]
[[turns.output]]
type = "message"
text = """
Make add() add <script>window.pwned=1</script>

`add` subtracted its arguments (calc.py:L1-L2); the loop printed its lines as it went
(log:7#L3-L5). A [link](javascript:window.pwned=1) and <img src=x onerror=window.pwned=1> stay text.
"""
"#;

/// The text sent to the running attempt.
const MESSAGE: &str = "please keep the loop";

#[tokio::test]
async fn a_task_from_the_browser_live_log_citations_attempts_and_hostile_content() {
    if !sandbox_available() {
        return;
    }
    let Some(browser) = Browser::start_or_skip(1280, 800).await else { return };
    let root = scratch();
    let repo = make_repo(root.path());
    let repo = std::fs::canonicalize(&repo).unwrap();
    let model = ScriptedModel::start(Script::from_toml(SCRIPT).unwrap()).await.unwrap();
    let options = ServeOptions {
        config: model_config(&model, "openai-responses", 30),
        workers: Some(2),
        ..Default::default()
    };
    let server = TestServer::start(root.path(), options).await;
    let url = server.url();
    let shots = artifacts_dir().join("web");

    // Sign in with the local user's token.
    browser.goto(&format!("{url}/")).await;
    browser.wait_for("the sign-in form", "location.pathname === '/login'").await;
    browser.find("#token").await.send_keys(server.token()).await;
    browser.find("form[action='/login'] button[type=submit]").await.click().await;
    browser
        .wait_for(
            "the task list",
            "location.pathname === '/' && !!document.querySelector('#tasks')",
        )
        .await;

    // A task of two attempts, in one tap once the form is filled.
    browser.goto(&format!("{url}/tasks/new")).await;
    browser.find("#prompt").await.send_keys("fix the failing test").await;
    let repository = browser.find("#repository").await;
    repository.clear().await;
    repository.send_keys(&repo.display().to_string()).await;
    let attempts = browser.find("#attempts").await;
    attempts.clear().await;
    attempts.send_keys("2").await;
    browser.find("form[action='/tasks'] button[type=submit]").await.click().await;
    browser.wait_for("the task page", "location.pathname.startsWith('/tasks/task_')").await;
    let cards = browser.find_all(".attempt-card").await;
    assert_eq!(cards.len(), 2, "{}", browser.page_text().await);

    // The first attempt's log, live: the slow loop's lines arrive while the page is open.
    browser.find(".attempt-card a[href^='/attempts/']").await.click().await;
    browser.wait_for("the attempt page", "!!document.querySelector('#log[data-live]')").await;
    let first_attempt = browser.url().await;
    browser.wait_for("the slow loop to start", "!!document.querySelector('#e7 pre')").await;
    browser
        .wait_for(
            "lines of the loop to stream in",
            "document.querySelectorAll('#e7 pre .l').length >= 3 && document.querySelectorAll('#e7 pre .l').length < 60",
        )
        .await;
    let early = lines_of(&browser, 7).await;

    // A message to the running attempt, sent from the page without leaving it.
    browser.find("#message").await.send_keys(MESSAGE).await;
    browser.find("#message-form button[type=submit]").await.click().await;
    browser
        .wait_for(
            "the message to be accepted",
            "document.querySelector('#message-status').textContent.startsWith('Sent')",
        )
        .await;
    assert_eq!(browser.url().await, first_attempt, "the page stayed");
    browser
        .wait_for_within(
            "the message in the log, at the next turn",
            &format!("[...document.querySelectorAll('.ev.user .text')].some(e => e.textContent === '{MESSAGE}')"),
            std::time::Duration::from_secs(60),
        )
        .await;
    let later = lines_of(&browser, 7).await;
    assert!(later > early, "the log grew live: {early} then {later} lines");
    assert_eq!(later, 60, "every line of the loop arrived once");

    browser
        .wait_for_within(
            "the attempt to finish",
            "!document.querySelector('#done').classList.contains('hidden')",
            std::time::Duration::from_secs(120),
        )
        .await;
    let item = browser.execute("return document.querySelector('#e7').className", vec![]).await;
    assert_eq!(item, "ev cmd done", "the command's item settled live");
    let done = browser.find("#done-text").await.text().await;
    assert!(done.starts_with("Finished: succeeded"), "{done}\n{}", server.log());
    assert!(
        browser.find_all("#message-form:not(.hidden)").await.is_empty(),
        "no message box once finished"
    );
    assert_inert(&browser, "attempt log").await;
    assert!(browser.page_text().await.contains(SCRIPT_TAG), "hostile output shows as text");

    // The review: the report, then a code citation to the final tree, at exactly its lines.
    browser.goto(&format!("{first_attempt}/review")).await;
    let title = browser.find(".report-title").await.text().await;
    assert_eq!(title, format!("Make add() add {SCRIPT_TAG}"));
    assert_inert(&browser, "review").await;
    browser.find("a.cite[href*='/files/calc.py']").await.click().await;
    browser.wait_for("the file page", "location.pathname.includes('/files/calc.py')").await;
    let cited = browser
        .execute("return [...document.querySelectorAll('tr.hl')].map(r => r.id)", vec![])
        .await;
    assert_eq!(cited, serde_json::json!(["L1", "L2"]));
    let line2 = browser.find("#L2 td.src").await.text().await;
    assert_eq!(line2, "    return a + b", "the file as the attempt left it");

    // A log citation: the log opens at that command with exactly lines 3 to 5 highlighted.
    browser.goto(&format!("{first_attempt}/review")).await;
    browser.find("a.cite[href*='#log-7-L3-L5']").await.click().await;
    browser
        .wait_for("the highlighted log lines", "document.querySelectorAll('#e7 .l.hl').length > 0")
        .await;
    let highlighted = browser
        .execute(
            "return [...document.querySelectorAll('#e7 .l.hl')].map(l => l.textContent)",
            vec![],
        )
        .await;
    assert_eq!(
        highlighted,
        serde_json::json!([
            "line 3 of the slow loop",
            "line 4 of the slow loop",
            "line 5 of the slow loop"
        ])
    );
    assert_eq!(
        browser.execute("return document.querySelector('#e7 details.out').open", vec![]).await,
        true
    );

    // Switching to the other attempt keeps the view.
    browser.goto(&format!("{first_attempt}/review")).await;
    browser.find(".siblings a:not([aria-current]):not([href^='/tasks/'])").await.click().await;
    browser.wait_for("the other attempt's review", &format!("location.href !== '{first_attempt}/review' && location.pathname.endsWith('/review')")).await;
    let current = browser.find(".siblings a[aria-current]").await.text().await;
    assert_eq!(current, "#2");

    // Every page fits a phone and a desktop, tap targets are big enough, and looks right.
    let task_page = browser
        .execute("return document.querySelector('.crumbs a[href^=\"/tasks/\"]').href", vec![])
        .await;
    let pages = [
        ("tasks", format!("{url}/")),
        ("new-task", format!("{url}/tasks/new")),
        ("task", task_page.as_str().unwrap().to_string()),
        ("attempt", first_attempt.clone()),
        ("review", format!("{first_attempt}/review")),
        ("review-split", format!("{first_attempt}/review?view=split")),
        ("file", format!("{first_attempt}/files/calc.py?lines=1-2")),
        ("environments", format!("{url}/environments")),
        ("new-environment", format!("{url}/environments/new")),
    ];
    for (width, height) in [(390, 844), (1280, 800)] {
        browser.set_window_size(width, height).await;
        for (name, page) in &pages {
            browser.goto(page).await;
            browser.wait_for("the page", "document.readyState === 'complete'").await;
            let overflow = browser
                .execute("return document.documentElement.scrollWidth - window.innerWidth", vec![])
                .await;
            browser.screenshot(&shots.join(format!("{name}-{width}.png"))).await;
            assert!(
                overflow.as_i64().unwrap() <= 0,
                "{name} at {width} px overflows by {overflow} px"
            );
            if width == 390 {
                let small = browser.execute(SMALL_TARGETS, vec![]).await;
                assert_eq!(small, serde_json::json!([]), "{name}: tap targets under 44 px");
                // Citation previews are for hovering on desktop; on a phone they stay hidden.
                let shown = browser
                    .execute("return [...document.querySelectorAll('.cite-wrap .preview')].filter(p => getComputedStyle(p).display !== 'none').length", vec![])
                    .await;
                assert_eq!(shown, 0, "{name}: citation previews shown on a phone");
            }
            assert_inert(&browser, name).await;
        }
    }
    browser.quit().await;
    drop(model);
}

/// Visible buttons, links styled as buttons, navigation links and form fields shorter than
/// 44 px, described.
const SMALL_TARGETS: &str = r#"
return [...document.querySelectorAll('button, .button, nav a, input:not([type=hidden]):not([type=radio]):not([type=checkbox]), select, textarea, .choice, .task a')]
  .filter(e => e.offsetParent !== null)
  .filter(e => e.getBoundingClientRect().height < 44)
  .map(e => e.tagName + '.' + e.className + ' ' + (e.textContent || e.name || '').trim().slice(0, 30) + ' ' + e.getBoundingClientRect().height);
"#;

/// The number of output lines shown for the command of log seq `seq`.
async fn lines_of(browser: &Browser, seq: u64) -> u64 {
    let count = browser
        .execute(&format!("return document.querySelectorAll('#e{seq} pre .l').length"), vec![])
        .await;
    count.as_u64().unwrap()
}

/// Nothing the model, the repository or a log wrote became markup: no script ran, no element
/// or attribute of theirs exists, no script but ours is on the page.
async fn assert_inert(browser: &Browser, page: &str) {
    let found = browser
        .execute(
            r#"return {
                pwned: window.pwned === undefined ? null : String(window.pwned),
                injected: document.querySelectorAll('img, svg, iframe, object, embed, [onerror], [onload], [onclick], [onmouseover], [style]').length,
                scripts: [...document.scripts].filter(s => !s.src.includes('/assets/')).length,
                js_links: document.querySelectorAll('a[href^="javascript:" i]').length,
            }"#,
            vec![],
        )
        .await;
    assert_eq!(
        found,
        serde_json::json!({ "pwned": null, "injected": 0, "scripts": 0, "js_links": 0 }),
        "{page}"
    );
}
