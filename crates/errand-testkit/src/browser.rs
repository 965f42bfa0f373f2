//! Headless Chromium for the web UI's tests, driven over the W3C WebDriver protocol by a
//! chromedriver this module starts: just the commands the tests use, on `reqwest`, instead of a
//! WebDriver crate.
//!
//! Every [`Browser`] is independent, so tests can run in parallel: its own chromedriver on a free
//! loopback port, its own profile and `HOME` in a temp dir (Chromium keeps its crash database
//! under `$HOME/.config`, which would otherwise be shared), its own session.
//!
//! Binaries: `$ERRAND_CHROMIUM` or `/usr/bin/chromium`, and `$ERRAND_CHROMEDRIVER` or
//! `chromedriver` on `PATH` (Debian: `chromium`, `chromium-driver`; `scripts/install-deps.sh`
//! installs them). Their major versions must match.
//!
//! No orphans: killing chromedriver leaves its Chromium running (they talk over a TCP port, not a
//! pipe), so dropping a [`Browser`] also kills every process that names its temp dir. Both
//! stay in the test's process group, so nextest's timeout and Ctrl-C reach them too.
//!
//! Failures panic (these are test helpers) with what was asked, the page's URL or the tail of
//! the chromedriver log (which holds Chromium's stderr too).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

/// How long [`Browser::find`], [`Element::find`] and [`Browser::wait_for`] wait: a bound for a
/// page that never gets there, not a timing assertion.
pub const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
/// W3C WebDriver: the key of a JSON object that references an element.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where tests save screenshots and other files worth keeping after a run:
/// `$ERRAND_TEST_ARTIFACTS` when set, else `target/test-artifacts/` in the workspace. Not
/// created here; [`Browser::screenshot`] creates what it needs.
pub fn artifacts_dir() -> PathBuf {
    match std::env::var_os("ERRAND_TEST_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        // This crate lives in `<workspace>/crates/errand-testkit`.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts"),
    }
}

/// A headless Chromium with one WebDriver session. Dropping it kills chromedriver and Chromium;
/// [`Browser::quit`] ends the session politely first.
pub struct Browser {
    session: Arc<Session>,
    driver: tokio::process::Child,
    /// Chromium's profile and `HOME`, and the chromedriver log. Removed after `Drop::drop` has
    /// killed the processes writing to it.
    dir: tempfile::TempDir,
}

/// An element of the page, found by CSS selector. Goes stale when the page replaces it.
#[derive(Clone)]
pub struct Element {
    session: Arc<Session>,
    id: String,
    css: String,
}

/// What a Browser and its Elements share: where to send commands, and the log to quote.
struct Session {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`
    base: String,
    log: PathBuf,
}

impl Browser {
    /// A browser whose page area is `width` x `height` CSS pixels, or `None` (after saying why)
    /// when this machine has no Chromium or chromedriver; under CI that fails the test instead.
    /// Panics when they are there but do not start: that is a broken setup, not a missing one.
    pub async fn start_or_skip(width: u32, height: u32) -> Option<Browser> {
        let (chromium, chromedriver) = match binaries() {
            Ok(found) => found,
            Err(reason) if std::env::var_os("CI").is_some() => {
                panic!("Chromium and chromedriver are required under CI: {reason}")
            }
            Err(reason) => {
                println!("skipped: no headless browser for this test: {reason}");
                return None;
            }
        };
        let browser = Browser::start(&chromium, &chromedriver, width, height).await;
        browser.set_window_size(width, height).await;
        Some(browser)
    }

    async fn start(chromium: &Path, chromedriver: &Path, width: u32, height: u32) -> Browser {
        let dir = tempfile::Builder::new()
            .prefix("errand-browser-")
            .tempdir()
            .expect("create a temp dir for the browser");
        let (profile, home, log) =
            (dir.path().join("profile"), dir.path().join("home"), dir.path().join("driver.log"));
        std::fs::create_dir_all(&home).expect("create the browser's HOME");
        let http = reqwest::Client::builder()
            // Loopback only: an HTTP(S)_PROXY in the environment must not see these requests.
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("build an HTTP client");
        // A port can be taken between probing and chromedriver binding it: try a few.
        let mut attempts = 0;
        let (driver, port) = loop {
            attempts += 1;
            let port = free_port();
            let out = std::fs::File::create(&log).expect("create the chromedriver log");
            let err = out.try_clone().expect("share the chromedriver log");
            let mut driver = tokio::process::Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .env("HOME", &home)
                .stdin(std::process::Stdio::null())
                .stdout(out)
                .stderr(err)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromedriver.display()));
            match wait_ready(&http, port, &mut driver).await {
                Ok(()) => break (driver, port),
                Err(e) if attempts < 3 => eprintln!("chromedriver on port {port}: {e}; retrying"),
                Err(e) => panic!("chromedriver did not start: {e}\n{}", log_tail(&log)),
            }
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Chromium's sandbox refuses to run as root, which the test machines are.
                    "--no-sandbox",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                    // Screenshots in CSS pixels, whatever the display says.
                    "--force-device-scale-factor=1",
                ],
            },
        }}});
        let url = format!("http://127.0.0.1:{port}/session");
        let created = send(&http, Method::POST, &url, Some(capabilities)).await;
        let id = match created.as_ref().map(|v| v["sessionId"].as_str()) {
            Ok(Some(id)) => id.to_string(),
            Ok(None) => panic!("chromedriver answered a new session without an id: {created:?}"),
            Err(e) => panic!("Chromium did not start: {e}\n{}", log_tail(&log)),
        };
        let session = Arc::new(Session { http, base: format!("{url}/{id}"), log });
        Browser { session, driver, dir }
    }

    /// Makes the page area (`window.innerWidth` x `window.innerHeight`) `width` x `height`:
    /// sets the window's size, measures what the page got, and corrects the difference once.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        let (mut outer_w, mut outer_h) = (i64::from(width), i64::from(height));
        for _ in 0..2 {
            let rect = json!({"width": outer_w, "height": outer_h});
            self.session.call("set the window rect", Method::POST, "/window/rect", rect).await;
            let inner =
                self.execute("return [window.innerWidth, window.innerHeight]", vec![]).await;
            let (w, h) = (inner[0].as_i64().unwrap_or(0), inner[1].as_i64().unwrap_or(0));
            if (w, h) == (i64::from(width), i64::from(height)) {
                return;
            }
            outer_w += i64::from(width) - w;
            outer_h += i64::from(height) - h;
        }
        let inner = self.execute("return [window.innerWidth, window.innerHeight]", vec![]).await;
        panic!("asked for a {width}x{height} page area, got {inner} after correcting once");
    }

    /// Loads `url` and waits for its `load` event (WebDriver's default page load strategy).
    pub async fn goto(&self, url: &str) {
        self.session.call(&format!("go to {url}"), Method::POST, "/url", json!({"url": url})).await;
    }

    /// The URL of the page shown now.
    pub async fn url(&self) -> String {
        let url = self.session.call("read the URL", Method::GET, "/url", Value::Null).await;
        url.as_str().unwrap_or_default().to_string()
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for one to appear.
    pub async fn find(&self, css: &str) -> Element {
        find_waiting(&self.session, "", css).await
    }

    /// Every element matching `css` now, without waiting.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        find_now(&self.session, "", css).await
    }

    /// Waits up to [`WAIT`] until the JavaScript expression `js_condition` is truthy; panics
    /// naming `what` otherwise. An expression that throws counts as not yet.
    pub async fn wait_for(&self, what: &str, js_condition: &str) {
        self.wait_for_within(what, js_condition, WAIT).await;
    }

    /// [`Browser::wait_for`] with another bound.
    pub async fn wait_for_within(&self, what: &str, js_condition: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let script = format!("return !!({js_condition});");
        let args = json!({"script": script, "args": []});
        loop {
            let last = match self.session.send(Method::POST, "/execute/sync", args.clone()).await {
                Ok(Value::Bool(true)) => return,
                Ok(other) => other.to_string(),
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "gave up waiting {timeout:?} for {what} (`{js_condition}` was {last}) at {}\n\
                     page text: {}",
                    self.url().await,
                    self.text_snippet().await,
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `js` as the body of a function (so `return` gives the result) with `args` as
    /// `arguments`. An [`Element::to_json`] in `args` arrives as the DOM element, and a DOM
    /// element returned arrives as such a reference.
    pub async fn execute(&self, js: &str, args: Vec<Value>) -> Value {
        let body = json!({"script": js, "args": args});
        let what = format!("run the script `{js}`");
        self.session.call(&what, Method::POST, "/execute/sync", body).await
    }

    /// Saves a PNG of the page area to `path`, creating its parent directories.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.session.call("take a screenshot", Method::GET, "/screenshot", Value::Null);
        let png = decode_base64(png.await.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("chromedriver sent a screenshot that is not base64: {e}"));
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        tokio::fs::write(path, png)
            .await
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// `document.body.innerText`: the page's text as a user sees it.
    pub async fn page_text(&self) -> String {
        let text = self.execute("return document.body ? document.body.innerText : ''", vec![]);
        text.await.as_str().unwrap_or_default().to_string()
    }

    /// The start of the page's text, for failure messages; never panics.
    async fn text_snippet(&self) -> String {
        let args =
            json!({"script": "return document.body ? document.body.innerText : ''", "args": []});
        match self.session.send(Method::POST, "/execute/sync", args).await {
            Ok(Value::String(text)) => snippet(&text),
            Ok(other) => other.to_string(),
            Err(e) => format!("(unreadable: {e})"),
        }
    }

    /// Ends the session (chromedriver closes Chromium) and stops chromedriver.
    pub async fn quit(mut self) {
        let _ = self.session.send(Method::DELETE, "", Value::Null).await;
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium first: it outlives chromedriver (see the module comment).
        kill_processes_using(self.dir.path());
        let _ = self.driver.start_kill();
    }
}

impl Element {
    /// Clicks the element's centre, as a user would (it must be visible and not covered).
    pub async fn click(&self) {
        self.call("click", Method::POST, "/click", json!({})).await;
    }

    /// Types `text` into the element, after focusing it.
    pub async fn send_keys(&self, text: &str) {
        self.call(&format!("type {text:?} into"), Method::POST, "/value", json!({"text": text}))
            .await;
    }

    /// Empties an input, textarea or contenteditable element.
    pub async fn clear(&self) {
        self.call("clear", Method::POST, "/clear", json!({})).await;
    }

    /// The element's rendered text (`innerText`): what a user reads.
    pub async fn text(&self) -> String {
        let text = self.call("read the text of", Method::GET, "/text", Value::Null).await;
        text.as_str().unwrap_or_default().to_string()
    }

    /// The HTML attribute `name` as written in the markup (or set by `setAttribute`); `None`
    /// when absent. For the live state of an input, use [`Element::property`]`("value")`.
    pub async fn attribute(&self, name: &str) -> Option<String> {
        let what = format!("read the attribute {name:?} of");
        let value = self.call(&what, Method::GET, &format!("/attribute/{name}"), Value::Null).await;
        value.as_str().map(str::to_string)
    }

    /// The DOM property `name` (`value`, `checked`, `disabled`…) as the page holds it now.
    pub async fn property(&self, name: &str) -> Value {
        let what = format!("read the property {name:?} of");
        self.call(&what, Method::GET, &format!("/property/{name}"), Value::Null).await
    }

    /// Whether a user could see the element (chromedriver's visibility check).
    pub async fn is_displayed(&self) -> bool {
        self.call("check the visibility of", Method::GET, "/displayed", Value::Null).await
            == Value::Bool(true)
    }

    /// The first descendant matching `css`, waiting up to [`WAIT`] for one to appear.
    pub async fn find(&self, css: &str) -> Element {
        find_waiting(&self.session, &format!("/element/{}", self.id), css).await
    }

    /// The reference to pass this element to [`Browser::execute`].
    pub fn to_json(&self) -> Value {
        json!({ELEMENT_KEY: self.id})
    }

    async fn call(&self, action: &str, method: Method, path: &str, body: Value) -> Value {
        let what = format!("{action} the element `{}`", self.css);
        self.session.call(&what, method, &format!("/element/{}{path}", self.id), body).await
    }
}

impl Session {
    /// A command of this session; `Err` is WebDriver's or the transport's error, as text.
    async fn send(&self, method: Method, path: &str, body: Value) -> Result<Value, String> {
        let body = (!body.is_null()).then_some(body);
        send(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    /// [`Session::send`] that panics with `what` and the chromedriver log's tail on error.
    async fn call(&self, what: &str, method: Method, path: &str, body: Value) -> Value {
        match self.send(method, path, body).await {
            Ok(value) => value,
            Err(e) => panic!("WebDriver could not {what}: {e}\n{}", log_tail(&self.log)),
        }
    }
}

/// One WebDriver request; the response's `value`, or its error as `<error>: <message>`.
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status();
    let mut answer: Value =
        response.json().await.map_err(|e| format!("{method} {url}: {status}, not JSON: {e}"))?;
    let value = answer["value"].take();
    if status.is_success() {
        return Ok(value);
    }
    // W3C WebDriver, "Handling errors": {"value": {"error", "message", "stacktrace"}}.
    let message = value["message"].as_str().unwrap_or_default();
    Err(format!("{}: {message}", value["error"].as_str().unwrap_or("error")))
}

async fn find_now(session: &Arc<Session>, scope: &str, css: &str) -> Vec<Element> {
    let by = json!({"using": "css selector", "value": css});
    let found = session.call(&format!("find `{css}`"), Method::POST, &elements(scope), by).await;
    let found = found.as_array().cloned().unwrap_or_default();
    found.iter().map(|reference| element(session, reference, css)).collect()
}

async fn find_waiting(session: &Arc<Session>, scope: &str, css: &str) -> Element {
    let deadline = tokio::time::Instant::now() + WAIT;
    let by = json!({"using": "css selector", "value": css});
    loop {
        let found = session.send(Method::POST, &elements(scope), by.clone()).await;
        match &found {
            Ok(found) if !found.as_array().is_none_or(Vec::is_empty) => {
                return element(session, &found[0], css);
            }
            // No page will ever match a selector CSS cannot parse.
            Err(e) if e.starts_with("invalid selector") => panic!("cannot find `{css}`: {e}"),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let url = session.send(Method::GET, "/url", Value::Null).await.unwrap_or_default();
            let url = url.as_str().unwrap_or("an unknown URL");
            let text = "return document.body ? document.body.innerText : ''";
            let text = json!({"script": text, "args": []});
            let text = session.send(Method::POST, "/execute/sync", text).await;
            let text = text.map(|t| snippet(t.as_str().unwrap_or_default()));
            panic!(
                "no element matches `{css}` after {WAIT:?} at {url} ({}); page text: {}",
                found.err().unwrap_or_else(|| "none found".into()),
                text.unwrap_or_else(|e| format!("(unreadable: {e})")),
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn elements(scope: &str) -> String {
    format!("{scope}/elements")
}

fn element(session: &Arc<Session>, reference: &Value, css: &str) -> Element {
    let id = reference[ELEMENT_KEY].as_str();
    let id = id.unwrap_or_else(|| panic!("chromedriver sent {reference} for an element"));
    Element { session: session.clone(), id: id.to_string(), css: css.to_string() }
}

fn snippet(text: &str) -> String {
    let cut: String = text.chars().take(500).collect();
    if cut.len() < text.len() { format!("{cut}…") } else { cut }
}

/// `$ERRAND_CHROMIUM` or `/usr/bin/chromium`, and `$ERRAND_CHROMEDRIVER` or `chromedriver` on
/// `PATH`; `Err` says which is missing and how to get it.
fn binaries() -> Result<(PathBuf, PathBuf), String> {
    let chromium =
        std::env::var_os("ERRAND_CHROMIUM").map_or("/usr/bin/chromium".into(), PathBuf::from);
    let chromedriver = match std::env::var_os("ERRAND_CHROMEDRIVER") {
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("chromedriver"))
            .find(|path| path.is_file()),
    };
    let install = "install the `chromium` and `chromium-driver` packages; \
                   scripts/install-deps.sh does";
    match chromedriver {
        _ if !chromium.is_file() => Err(format!("no {} ({install})", chromium.display())),
        Some(chromedriver) if chromedriver.is_file() => Ok((chromium, chromedriver)),
        _ => Err(format!("no chromedriver on PATH or at $ERRAND_CHROMEDRIVER ({install})")),
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("a bound listener has an address").port()
}

/// Polls chromedriver's `GET /status` until it says ready, for at most 20 s.
async fn wait_ready(
    http: &reqwest::Client,
    port: u16,
    driver: &mut tokio::process::Child,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let url = format!("http://127.0.0.1:{port}/status");
    loop {
        let status = send(http, Method::GET, &url, None).await;
        if status.is_ok_and(|status| status["ready"] == Value::Bool(true)) {
            return Ok(());
        }
        if let Ok(Some(exit)) = driver.try_wait() {
            return Err(format!("it exited ({exit})"));
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = driver.kill().await;
            return Err("not ready after 20 s".into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The last lines of the chromedriver log, to quote in a panic.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    // No path: the log goes with the temp dir when the panic drops the Browser.
    format!("chromedriver log, last lines:\n{tail}")
}

/// SIGKILLs every process whose command line mentions `dir`, until none is left (at most 5 s),
/// so that the temp dir can be removed: Chromium's processes name it in `--user-data-dir`, its
/// crash handlers in `--database` (under `HOME`). A process that has died has an empty command
/// line, whether or not it has been reaped yet. Blocks, briefly: it runs in `Drop`.
fn kill_processes_using(dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let Ok(entries) = std::fs::read_dir("/proc") else { return };
        let mut found = false;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<libc::pid_t>().ok()) else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if cmdline.windows(needle.len()).any(|window| window == needle) {
                found = true;
                // SAFETY: kill has no memory preconditions; the process names our temp dir.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if !found {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Standard base64 (RFC 4648 §4, padding optional), as WebDriver sends screenshots.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0u32);
    for byte in text.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' => continue,
            _ => return Err(format!("unexpected byte {byte:#04x}")),
        };
        // Only the low `count + 6` bits matter; older ones shift out.
        bits = (bits << 6) | u32::from(sextet);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn decodes_base64() {
        for (text, bytes) in [
            ("", &b""[..]),
            ("Zg==", b"f"),
            ("Zm8=", b"fo"),
            ("Zm9v", b"foo"),
            ("Zm9vYmFy", b"foobar"),
            ("iVBORw0KGgo=", b"\x89PNG\r\n\x1a\n"),
            ("+/+/", b"\xfb\xff\xbf"),
        ] {
            assert_eq!(decode_base64(text).unwrap(), bytes, "{text}");
        }
        assert!(decode_base64("Zm9v!").is_err());
    }
}
