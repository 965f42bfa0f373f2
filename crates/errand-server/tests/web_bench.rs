//! Page weight and time to first render of the attempt page with a 10,000-line log, against the
//! same page with a 100-line log measured in the same run (docs/benchmarks.md, "The attempt page
//! with a 10,000-line log"). Ignored by default (it measures, it does not check):
//! `cargo nextest run -p errand-server --test web_bench --run-ignored only --no-capture`
//! (`ERRAND_BENCH_RUNS` sets the loads per page, default 7). The two pages are saved under
//! `target/test-artifacts/web_bench/`.
//!
//! Both attempts have the same shape: 20 commands, one per turn, each with its reasoning and
//! token usage, a plan made and updated, agent messages, finished. Only the output differs:
//! 5 lines per command (100 in all) or 500 (10,000 in all), lines like compiler and test output.
//! So the ratios are what the output's volume costs.

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::World;
use common::web::Web;
use errand_protocol::{
    AttemptId, AttemptOutcome, AttemptState, EventKind, PlanItem, PlanStatus, TokenUsage,
};
use errand_testkit::browser::{Browser, artifacts_dir};
use serde_json::{Value, json};

const COMMANDS: usize = 20;
/// Output lines per command read from the pipe at once (a worker records a chunk per read).
const CHUNK_LINES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --run-ignored only, figures go to docs/benchmarks.md"]
async fn attempt_page_with_a_big_log() {
    let runs: usize =
        std::env::var("ERRAND_BENCH_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(7).max(1);
    let world = World::new().await;
    let web = Web::start(&world).await;
    let token = web.user("alice").await;
    let session = web.sign_in(&token).await;
    let (_, attempts) = world.task(2).await;
    let pages = [
        Page::store(&web, attempts[0], "100 lines", 5).await,
        Page::store(&web, attempts[1], "10,000 lines", 500).await,
    ];

    // Over HTTP: the weight, and the server's time to the whole page.
    let mut weights = Vec::new();
    for page in &pages {
        weights.push(Weight::fetch(&web, &session, page).await);
    }
    let mut server = [Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (i, page) in pages.iter().enumerate() {
            let started = Instant::now();
            let (status, _, html) = web.get(&session, &page.path()).await;
            server[i].push(ms(started.elapsed()));
            assert_eq!(status, 200);
            assert_eq!(html.len(), weights[i].html, "the same page each time");
        }
    }

    // In Chromium: the page's own timings, then how it answers once loaded.
    let Some(browser) = Browser::start_or_skip(1280, 800).await else {
        print_table(&pages, &weights, &server, None);
        return;
    };
    browser.goto(&format!("{}/login?next=%2F", web.url)).await;
    browser.find("#token").await.send_keys(&token).await;
    browser.find("button[type=submit]").await.click().await;
    browser.wait_for("the task list after signing in", "location.pathname === '/'").await;
    // One untimed load of each first: the stylesheet and script are then cached, as for anyone
    // who has opened a page before (they are served `immutable`).
    for page in &pages {
        Timings::load(&browser, &web, page).await;
    }
    let mut timings = [Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (i, page) in pages.iter().enumerate() {
            timings[i].push(Timings::load(&browser, &web, page).await);
        }
    }
    print_table(&pages, &weights, &server, Some(&timings));
    browser.quit().await;
}

/// An attempt stored with a log of `lines_per_command` × [`COMMANDS`] output lines.
struct Page {
    id: AttemptId,
    name: &'static str,
    lines: usize,
    /// The seq of the last command (scrolled to) and of the middle one (opened).
    last_command: u64,
    middle_command: u64,
}

impl Page {
    async fn store(web: &Web, id: AttemptId, name: &'static str, lines_per_command: usize) -> Page {
        let store = &web.state.store;
        // Leased as a worker would: the attempt is `preparing`, then the log is appended.
        let (leased, _) =
            store.lease_next("bench", Duration::from_secs(600)).await.unwrap().unwrap();
        assert_eq!(leased.id, id, "attempts are leased oldest first");
        let mut commands = Vec::new();
        for kind in attempt_log(lines_per_command) {
            let event = store.append_event(id, &kind).await.unwrap();
            if matches!(kind, EventKind::CommandStarted { .. }) {
                commands.push(event.seq);
            }
        }
        Page {
            id,
            name,
            lines: lines_per_command * COMMANDS,
            last_command: commands[COMMANDS - 1],
            middle_command: commands[COMMANDS / 2],
        }
    }

    fn path(&self) -> String {
        format!("/attempts/{}", self.id)
    }
}

/// What the page weighs, in bytes as served (no compression).
struct Weight {
    html: usize,
    /// The HTML before `<ol id="log"`: everything but the log.
    before_log: usize,
    css: usize,
    js: usize,
}

impl Weight {
    async fn fetch(web: &Web, session: &str, page: &Page) -> Weight {
        let (status, headers, html) = web.get(session, &page.path()).await;
        assert_eq!(status, 200);
        assert!(headers.get("content-encoding").is_none(), "sizes are of uncompressed bodies");
        // Kept for a look (or `gzip -c | wc -c`) after the run.
        let saved = artifacts_dir().join("web_bench").join(format!("{}-lines.html", page.lines));
        std::fs::create_dir_all(saved.parent().unwrap()).unwrap();
        std::fs::write(&saved, &html).unwrap();
        let before_log = html.find("<ol id=\"log\"").expect("the page has the log");
        let asset = |attribute: &str| {
            let at = html.find(attribute).unwrap_or_else(|| panic!("no {attribute} in the page"));
            let start = at + attribute.len();
            html[start..start + html[start..].find('"').unwrap()].to_string()
        };
        let (css, js) = (asset("<link rel=\"stylesheet\" href=\""), asset("<script src=\""));
        let mut sizes = Vec::new();
        for path in [css, js] {
            let (status, _, body) = web.get(session, &path).await;
            assert_eq!(status, 200, "{path}");
            sizes.push(body.len());
        }
        Weight { html: html.len(), before_log, css: sizes[0], js: sizes[1] }
    }

    fn before_log_total(&self) -> usize {
        self.before_log + self.css + self.js
    }
}

/// One load of a page in the browser, in ms.
struct Timings {
    /// Navigation timing, from the navigation's start.
    response_end: f64,
    dom_content_loaded: f64,
    load: f64,
    first_contentful_paint: f64,
    elements: f64,
    /// The last command's item scrolled into view, with the layout that needs.
    scroll: f64,
    /// The middle command's collapsed output opened, with the layout that needs.
    open_layout: f64,
    /// The same, until the frame after it has been painted.
    open_frame: f64,
}

impl Timings {
    async fn load(browser: &Browser, web: &Web, page: &Page) -> Timings {
        browser.goto(&format!("{}{}", web.url, page.path())).await;
        browser
            .wait_for(
                "the load event to end and the first contentful paint",
                "performance.getEntriesByType('navigation')[0].loadEventEnd > 0 \
                 && performance.getEntriesByName('first-contentful-paint').length > 0",
            )
            .await;
        let page_timings = browser
            .execute(
                "const nav = performance.getEntriesByType('navigation')[0];
                 const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                 return [nav.responseEnd - nav.startTime, nav.domContentLoadedEventEnd - nav.startTime,
                         nav.loadEventEnd - nav.startTime, fcp.startTime - nav.startTime,
                         document.getElementsByTagName('*').length];",
                vec![],
            )
            .await;
        let scroll = browser
            .execute(
                "const item = document.getElementById(arguments[0]);
                 const t0 = performance.now();
                 item.scrollIntoView();
                 document.documentElement.getBoundingClientRect();
                 return performance.now() - t0;",
                vec![json!(format!("e{}", page.last_command))],
            )
            .await;
        // WebDriver awaits a returned promise: the second figure is the next frame's start
        // after the one that painted the opened output.
        let open = browser
            .execute(
                "const details = document.querySelector('#' + arguments[0] + ' details.out');
                 if (details.open) throw new Error('the output is open already');
                 const t0 = performance.now();
                 details.open = true;
                 details.getBoundingClientRect();
                 const layout = performance.now() - t0;
                 return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(
                     () => done([layout, performance.now() - t0]))));",
                vec![json!(format!("e{}", page.middle_command))],
            )
            .await;
        let number = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
        Timings {
            response_end: number(&page_timings[0]),
            dom_content_loaded: number(&page_timings[1]),
            load: number(&page_timings[2]),
            first_contentful_paint: number(&page_timings[3]),
            elements: number(&page_timings[4]),
            scroll: number(&scroll),
            open_layout: number(&open[0]),
            open_frame: number(&open[1]),
        }
    }
}

/// The figures as a Markdown table for docs/benchmarks.md: medians, and big ÷ small.
fn print_table(
    pages: &[Page; 2],
    weights: &[Weight],
    server: &[Vec<f64>; 2],
    timings: Option<&[Vec<Timings>; 2]>,
) {
    let kb = |bytes: usize| format!("{:.1} KB", bytes as f64 / 1000.0);
    let mut rows: Vec<(String, [String; 2], f64)> = Vec::new();
    let mut bytes_row = |name: &str, of: &dyn Fn(&Weight) -> usize| {
        let (a, b) = (of(&weights[0]), of(&weights[1]));
        rows.push((name.into(), [kb(a), kb(b)], b as f64 / a as f64));
    };
    bytes_row("HTML", &|w| w.html);
    bytes_row("HTML before the log", &|w| w.before_log);
    bytes_row("CSS", &|w| w.css);
    bytes_row("JS", &|w| w.js);
    bytes_row("**before the log: HTML + CSS + JS**", &|w| w.before_log_total());
    bytes_row("HTML from the log on", &|w| w.html - w.before_log);
    let mut ms_row = |name: &str, values: [f64; 2]| {
        rows.push((
            name.into(),
            [format!("{:.1} ms", values[0]), format!("{:.1} ms", values[1])],
            values[1] / values[0],
        ));
    };
    ms_row("server: request → whole page", [median(&server[0]), median(&server[1])]);
    if let Some(timings) = timings {
        let of = |f: &dyn Fn(&Timings) -> f64| {
            [0, 1].map(|i| median(&timings[i].iter().map(f).collect::<Vec<_>>()))
        };
        ms_row("browser: responseEnd", of(&|t| t.response_end));
        ms_row("browser: domContentLoadedEventEnd", of(&|t| t.dom_content_loaded));
        ms_row(
            "browser: parsing (domContentLoadedEventEnd − responseEnd)",
            of(&|t| t.dom_content_loaded - t.response_end),
        );
        ms_row("browser: loadEventEnd", of(&|t| t.load));
        ms_row("**browser: first-contentful-paint**", of(&|t| t.first_contentful_paint));
        ms_row("after load: scroll to the last command (+ layout)", of(&|t| t.scroll));
        ms_row("after load: open a command's output (+ layout)", of(&|t| t.open_layout));
        ms_row("after load: open a command's output, to the next frame", of(&|t| t.open_frame));
        let elements = of(&|t| t.elements);
        rows.push((
            "DOM elements".into(),
            elements.map(|n| format!("{n:.0}")),
            elements[1] / elements[0],
        ));
    }
    let runs = server[0].len();
    println!();
    println!("medians of {runs} loads each, interleaved; sizes uncompressed");
    println!("| figure | {} | {} | ratio |", pages[0].name, pages[1].name);
    println!("| --- | ---: | ---: | ---: |");
    for (name, [small, big], ratio) in rows {
        println!("| {name} | {small} | {big} | {ratio:.2}× |");
    }
    for page in pages {
        println!("({}: {} output lines)", page.name, page.lines);
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A whole attempt's log: [`COMMANDS`] turns of reasoning, one command with
/// `lines_per_command` lines of output (in chunks) and token usage; a plan, made and updated;
/// agent messages along the way; finished.
fn attempt_log(lines_per_command: usize) -> Vec<EventKind> {
    let plan = |done: usize| {
        let steps = ["Reproduce the failing test", "Find the cause", "Fix it", "Run the suite"];
        let plan = steps
            .iter()
            .enumerate()
            .map(|(i, step)| PlanItem {
                step: step.to_string(),
                status: match i.cmp(&done) {
                    std::cmp::Ordering::Less => PlanStatus::Completed,
                    std::cmp::Ordering::Equal => PlanStatus::InProgress,
                    std::cmp::Ordering::Greater => PlanStatus::Pending,
                },
            })
            .collect();
        EventKind::PlanUpdated { explanation: None, plan }
    };
    let mut log = vec![
        EventKind::StateChanged { state: AttemptState::Running, reason: None },
        EventKind::SandboxReady {
            backend: "local".into(),
            isolation: vec!["namespaces".into(), "seccomp".into(), "cgroups".into()],
            base_commit: "3f2a9c41d07be5a1c0ffee5eed1234567890abcd".into(),
            duration_ms: 11,
        },
    ];
    let mut total = TokenUsage { input: 0, cached_input: 0, output: 0, reasoning: 0 };
    for command in 0..COMMANDS {
        let turn = command as u32 + 1;
        log.push(EventKind::TurnStarted { turn });
        if command == 0 {
            log.push(plan(0));
        }
        if command == COMMANDS / 2 {
            log.push(plan(2));
        }
        if command % 5 == 4 {
            log.push(EventKind::AgentMessage {
                text: format!(
                    "The failure in `store::lease` comes from the clock skew check (step {turn}).\n\n\
                     - `lease_next` compares against the row's `leased_until`\n\
                     - the test's TTL is **3 s**, the poll interval 50 ms\n\nNext: run the crate's tests again."
                ),
            });
        }
        log.push(EventKind::Reasoning {
            text: "The test output shows the lease expiring early; check the TTL arithmetic."
                .into(),
        });
        let call_id = format!("call_{command:03}");
        let crate_name = CRATES[command % CRATES.len()];
        log.push(EventKind::CommandStarted {
            call_id: call_id.clone(),
            command: vec![
                "bash".into(),
                "-lc".into(),
                format!("cargo test -p {crate_name} 2>&1 | tail -n {lines_per_command}"),
            ],
            workdir: "/workspace".into(),
            timeout_ms: 600_000,
        });
        let lines: Vec<String> = (0..lines_per_command).map(|n| output_line(command, n)).collect();
        let mut bytes = 0;
        for (chunk, text) in lines.chunks(CHUNK_LINES).enumerate() {
            let mut text = text.join("\n");
            text.push('\n');
            bytes += text.len() as u64;
            log.push(EventKind::CommandOutput {
                call_id: call_id.clone(),
                first_line: (chunk * CHUNK_LINES + 1) as u64,
                text,
            });
        }
        let failed = command % 4 == 1;
        log.push(EventKind::CommandFinished {
            call_id,
            exit_code: Some(if failed { 101 } else { 0 }),
            timed_out: false,
            duration_ms: 4_000 + 731 * command as u64,
            output_lines: lines_per_command as u64,
            output_bytes: bytes,
            dropped_bytes: 0,
        });
        let usage = TokenUsage {
            input: 12_000 + 900 * u64::from(turn),
            cached_input: 10_000,
            output: 350,
            reasoning: 120,
        };
        total.add(&usage);
        log.push(EventKind::TokenUsage {
            turn,
            usage,
            total,
            cost_usd: Some(0.01),
            total_cost_usd: Some(0.01 * f64::from(turn)),
        });
    }
    log.push(plan(4));
    log.push(EventKind::AgentMessage {
        text: "Fixed the lease expiry: `leased_until` is now computed from the database clock.\n\n\
               All tests pass."
            .into(),
    });
    log.push(EventKind::StateChanged { state: AttemptState::Succeeded, reason: None });
    log.push(EventKind::Finished {
        outcome: AttemptOutcome { state: AttemptState::Succeeded, reason: "done".into() },
    });
    log
}

const CRATES: [&str; 5] =
    ["errand-store", "errand-agent", "errand-sandbox", "errand-server", "errand-git"];
const MODULES: [&str; 6] = ["lease", "events", "snapshot", "overlay", "citations", "diff"];

/// Line `n` of command `command`'s output: what `cargo build` and `cargo test` print, ~60-100
/// characters.
fn output_line(command: usize, n: usize) -> String {
    let krate = CRATES[(command + n / 97) % CRATES.len()];
    let module = MODULES[(n * 7 + command) % MODULES.len()];
    match n % 10 {
        0 => format!(
            "   Compiling {krate} v0.{command}.{} (/workspace/crates/{krate}) in {}.{:02}s",
            n % 13,
            n % 9,
            n % 100
        ),
        1 => format!(
            "warning: unused variable: `attempt_{n}` in function `{module}_round_trip_{command}`"
        ),
        2 => format!("   --> crates/{krate}/src/{module}.rs:{}:{}", 40 + n % 900, 9 + n % 30),
        3 => "    = note: `#[warn(unused_variables)]` on by default; prefix it with an underscore"
            .to_string(),
        4 => format!(
            "     Running unittests src/lib.rs (target/debug/deps/{}-{:016x})",
            krate.replace('-', "_"),
            (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ),
        5..=7 => format!(
            "test {module}::tests::{}_keeps_the_{module}_consistent_{n:05} ... ok",
            ["leasing", "appending", "recovering", "reading"][n % 4]
        ),
        8 => format!(
            "test {module}::tests::rejects_a_stale_{module}_after_{n}_ms ... {}",
            if n % 50 == 8 { "FAILED" } else { "ok" }
        ),
        _ => format!(
            "test result: ok. {} passed; 0 failed; 0 ignored; 0 measured; {} filtered out; finished in {}.{:02}s",
            n % 300,
            n % 17,
            n % 7,
            n % 100
        ),
    }
}
