//! The web UI over HTTP, as a browser's requests reach it, without a browser: signing in, the
//! session, CSRF and cross-site refusals (with nothing stored), isolation between users,
//! hostile content rendered inert, and the live log's page updates. The flows in a real browser
//! are in errand-cli's tests/web.rs.

#[allow(dead_code)]
mod common;

use common::World;
use common::web::{Web, cookie, field};
use errand_protocol::{
    AttemptOutcome, AttemptState, CheckResult, Citation, CitationTarget, EventKind, Report,
};
use errand_store::{ArtifactKind, Page, Scope};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};

#[tokio::test]
async fn signing_in_takes_a_token_and_a_form_from_this_site() {
    let world = World::new().await;
    let web = Web::start(&world).await;
    let token = web.user("alice").await;

    // Not signed in: every page leads to the sign-in form, remembering where it was going.
    let (status, headers, _) = web.get("", "/tasks/new").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/login?next=%2Ftasks%2Fnew");

    let (nonce_cookie, nonce) = web.login_form().await;
    let attempt = |cookie: Option<String>, origin: &str, token: &str, next: &str| {
        let mut request =
            web.http.post(format!("{}/login", web.url)).header("origin", origin.to_string());
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request
            .form(&[
                ("token", token.to_string()),
                ("nonce", nonce.clone()),
                ("next", next.to_string()),
            ])
            .send()
    };
    // A wrong token, a form without its cookie, a form posted from another site: no session.
    for (cookie, origin, secret, want) in [
        (Some(nonce_cookie.clone()), web.url.as_str(), "errand_wrong", StatusCode::UNAUTHORIZED),
        (None, web.url.as_str(), token.as_str(), StatusCode::FORBIDDEN),
        (Some(nonce_cookie.clone()), "http://evil.example", token.as_str(), StatusCode::FORBIDDEN),
    ] {
        let response = attempt(cookie, origin, secret, "/").await.unwrap();
        assert_eq!(response.status(), want);
        assert!(self::cookie(response.headers(), "errand_session").is_none());
    }
    // The right token: a session, and only a local path is followed afterwards.
    let response = attempt(Some(nonce_cookie), &web.url, &token, "//evil.example/x").await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/");
    let set = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let session_header = set.iter().find(|c| c.starts_with("errand_session=")).unwrap();
    assert!(
        session_header.contains("HttpOnly") && session_header.contains("SameSite=Lax"),
        "{session_header}"
    );
    // The session is a token of its own: the one typed in is not in the cookie.
    let session = cookie(response.headers(), "errand_session").unwrap();
    assert!(!session.contains(&token));

    let (status, headers, html) = web.get(&session, "/").await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(html.contains("Signed in as alice"), "{html}");
    // Pages travel gzipped to browsers that ask (a long work log shrinks about tenfold).
    let gzipped = web
        .http
        .get(format!("{}/", web.url))
        .header("cookie", &session)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");

    // Signing out revokes the session's token: the cookie stops working at once.
    let csrf = field(&html, "csrf");
    let response = web.post(&session, "/logout", Some(&web.url), &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, headers, _) = web.get(&session, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[LOCATION].to_str().unwrap().starts_with("/login"));
    // The API token that was typed in still works.
    assert!(web.state.store.authenticate(&token).await.unwrap().is_some());
}

#[tokio::test]
async fn forms_need_the_sessions_csrf_token_and_this_sites_origin() {
    let world = World::new().await;
    let web = Web::start(&world).await;
    let session = web.sign_in(&web.user("alice").await).await;
    let (_, _, html) = web.get(&session, "/tasks/new").await;
    let csrf = field(&html, "csrf");
    let repo = world.repo.display().to_string();
    let form = |csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("prompt", "fix it".to_string()),
            ("repository", repo.clone()),
            ("attempts", "1".to_string()),
            ("mode", "code".to_string()),
        ]
    };
    let post = |form: Vec<(&'static str, String)>,
                origin: Option<String>,
                fetch_site: Option<&'static str>| {
        let mut request =
            web.http.post(format!("{}/tasks", web.url)).header("cookie", &session).form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        request.send()
    };
    for (form, origin, site) in [
        (form(""), Some(web.url.clone()), None),
        (form("0000"), Some(web.url.clone()), None),
        (form(&csrf), Some("http://evil.example".to_string()), None),
        (form(&csrf), None, Some("cross-site")),
    ] {
        let response = post(form, origin, site).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let alice = web.state.store.user_by_name("alice").await.unwrap();
    assert!(
        web.state.store.list_tasks(alice.id, Page::first(10)).await.unwrap().is_empty(),
        "a refused form stored nothing"
    );

    // A bad repository comes back as the form, with what was typed and why.
    let mut bad = form(&csrf);
    bad[2].1 = "/nonexistent/repo".into();
    bad[1].1 = "keep <this> text".into();
    let response = post(bad, Some(web.url.clone()), Some("same-origin")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("cannot open the repository") && html.contains("keep &#60;this&#62; text"),
        "{html}"
    );
    assert!(web.state.store.list_tasks(alice.id, Page::first(10)).await.unwrap().is_empty());

    let response = post(form(&csrf), Some(web.url.clone()), Some("same-origin")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let tasks = web.state.store.list_tasks(alice.id, Page::first(10)).await.unwrap();
    assert_eq!(tasks.len(), 1);
    let attempts = web.state.store.list_attempts(Scope::System, tasks[0].id).await.unwrap();
    assert_eq!(response.headers()[LOCATION], format!("/attempts/{}", attempts[0].id).as_str());
}

#[tokio::test]
async fn another_users_tasks_and_attempts_are_not_found() {
    let world = World::new().await;
    let web = Web::start(&world).await;
    let (task, attempts) = world.task(1).await; // alice's
    let bob = web.sign_in(&web.user("bob").await).await;
    for path in [
        format!("/tasks/{}", task.id),
        format!("/attempts/{}", attempts[0]),
        format!("/attempts/{}/review", attempts[0]),
        format!("/attempts/{}/patch", attempts[0]),
        format!("/attempts/{}/live", attempts[0]),
        format!("/attempts/{}/files/README.md", attempts[0]),
        "/attempts/not-an-id".to_string(),
    ] {
        let (status, _, html) = web.get(&bob, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {html}");
        assert!(!html.contains("write result.txt"), "{path} leaks the prompt");
    }
    let (_, _, html) = web.get(&bob, "/tasks/new").await;
    let csrf = field(&html, "csrf");
    let response = web
        .post(
            &bob,
            &format!("/attempts/{}/cancel", attempts[0]),
            Some(&web.url),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let attempt = web.state.store.get_attempt(Scope::System, attempts[0]).await.unwrap();
    assert!(!attempt.cancel_requested && attempt.state == AttemptState::Queued);
}

/// Everything a model, a repository or a command could put on a page, at once.
const SCRIPT: &str = "<script>window.pwned=1</script>";
const IMG: &str = "\"><img src=x onerror=\"window.pwned=1\">";

#[tokio::test]
async fn hostile_logs_reports_and_diffs_render_inert() {
    let world = World::new().await;
    let web = Web::start(&world).await;
    let (task, attempts) = world.task(1).await;
    let id = attempts[0];
    let session = web.sign_in(&web.user("alice").await).await;
    let store = &web.state.store;
    // Citations are whitespace-separated, so the cited hostile path has no space.
    let hostile_path = "x\"><svg/onload=window.pwned=1>.py".to_string();
    // Leased as a worker would: the attempt is `preparing`.
    store.lease_next("w", std::time::Duration::from_secs(60)).await.unwrap().unwrap();
    let events = [
        EventKind::StateChanged { state: AttemptState::Running, reason: Some(SCRIPT.into()) },
        EventKind::AgentMessage {
            text: format!("{SCRIPT} [x](javascript:alert(1)) {IMG} `{hostile_path}:L1`"),
        },
        EventKind::CommandStarted {
            call_id: IMG.into(),
            command: vec!["bash".into(), "-lc".into(), SCRIPT.into()],
            workdir: "/workspace".into(),
            timeout_ms: 1000,
        },
        EventKind::CommandOutput {
            call_id: IMG.into(),
            first_line: 1,
            text: format!(
                "\x1b[31m{SCRIPT}\x1b[0m\n\x1b]8;;javascript:alert(1)\x1b\\link\x1b]8;;\x1b\\\n{}\n",
                "A".repeat(5 << 20)
            ),
        },
        EventKind::CommandFinished {
            call_id: IMG.into(),
            exit_code: Some(0),
            timed_out: false,
            duration_ms: 5,
            output_lines: 3,
            output_bytes: 5 << 20,
            dropped_bytes: 0,
        },
        EventKind::LimitReached { limit: SCRIPT.into(), detail: IMG.into() },
        EventKind::StateChanged { state: AttemptState::Succeeded, reason: None },
        EventKind::Finished {
            outcome: AttemptOutcome { state: AttemptState::Succeeded, reason: SCRIPT.into() },
        },
    ];
    for kind in &events {
        store.append_event(id, kind).await.unwrap();
    }
    let report = Report {
        title: format!("{SCRIPT} title"),
        description: format!(
            "See `{hostile_path}:L1` and log:4#L1-L2 and [me](javascript:alert(1)).\n\n{IMG}"
        ),
        citations: vec![Citation {
            raw: format!("{hostile_path}:L1"),
            target: CitationTarget::Code { path: hostile_path.clone(), start: 1, end: 1 },
            problem: None,
            excerpt: SCRIPT.into(),
            in_diff: true,
        }],
        checks: vec![CheckResult {
            command: SCRIPT.into(),
            passed: false,
            exit_code: Some(1),
            event: 4,
            output_lines: 3,
        }],
    };
    store
        .put_artifact(id, ArtifactKind::Report, &serde_json::to_string(&report).unwrap())
        .await
        .unwrap();
    let diff = format!(
        "diff --git a/{hostile_path} b/{hostile_path}\nnew file mode 100644\n--- /dev/null\n+++ b/{hostile_path}\n@@ -0,0 +1,2 @@\n+{SCRIPT}\n+</td></table>{IMG}\n"
    );
    store.put_artifact(id, ArtifactKind::Diff, &diff).await.unwrap();

    for path in [
        "/".to_string(),
        format!("/tasks/{}", task.id),
        format!("/attempts/{id}"),
        format!("/attempts/{id}/review"),
        format!("/attempts/{id}/review?view=split"),
    ] {
        let (status, _, html) = web.get(&session, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let scripts = html.matches("<script").count();
        assert_eq!(scripts, 1, "{path}: only our own script tag");
        for bad in
            ["<img", "<svg", "onerror=\"", "href=\"javascript:", "\x1b", "window.pwned=1</script>"]
        {
            if let Some(at) = html.find(bad) {
                panic!(
                    "{path} contains {bad:?}: …{}…",
                    &html[at.saturating_sub(300)..(at + 100).min(html.len())]
                );
            }
        }
        assert!(
            html.len() < 1 << 20,
            "{path} is {} bytes: the 5 MB line is not sent whole",
            html.len()
        );
    }
    let (_, _, log) = web.get(&session, &format!("/attempts/{id}")).await;
    assert!(log.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;"), "the text shows, escaped");
    assert!(log.contains("more bytes"), "the long line is cut with a note");
    let (_, _, review) = web.get(&session, &format!("/attempts/{id}/review")).await;
    assert!(
        review.contains("&#60;script&#62;window.pwned=1&#60;/script&#62; title"),
        "the title shows, escaped"
    );
    let link = "/files/x%22%3E%3Csvg/onload%3Dwindow.pwned%3D1%3E.py?lines=1-1";
    assert!(
        review.contains(link),
        "the citation links to the file: {}",
        &review[review.find("class=\"md\"").unwrap()..][..1500]
    );
}

#[tokio::test]
async fn the_live_log_streams_page_updates_from_where_the_page_stopped() {
    let world = World::new().await;
    let web = Web::start(&world).await;
    let (_, attempts) = world.task(1).await;
    let id = attempts[0];
    let session = web.sign_in(&web.user("alice").await).await;
    let store = web.state.store.clone();
    store.lease_next("w", std::time::Duration::from_secs(60)).await.unwrap().unwrap();
    store
        .append_event(id, &EventKind::StateChanged { state: AttemptState::Running, reason: None })
        .await
        .unwrap();
    store
        .append_event(
            id,
            &EventKind::CommandStarted {
                call_id: "c1".into(),
                command: vec!["make".into()],
                workdir: "/workspace".into(),
                timeout_ms: 1000,
            },
        )
        .await
        .unwrap();
    let (_, _, page) = web.get(&session, &format!("/attempts/{id}")).await;
    assert!(page.contains("data-after=\"3\"") && page.contains("data-live=\"1\""), "{page}");

    let response = web
        .http
        .get(format!("{}/attempts/{id}/live?after=3", web.url))
        .header("cookie", &session)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(
        response.headers().get("content-encoding").is_none(),
        "events are not held back to compress"
    );
    let writer = tokio::spawn(async move {
        store
            .append_event(
                id,
                &EventKind::CommandOutput {
                    call_id: "c1".into(),
                    first_line: 1,
                    text: "one\ntwo\n".into(),
                },
            )
            .await
            .unwrap();
        store
            .append_event(
                id,
                &EventKind::CommandFinished {
                    call_id: "c1".into(),
                    exit_code: Some(2),
                    timed_out: false,
                    duration_ms: 1500,
                    output_lines: 2,
                    output_bytes: 8,
                    dropped_bytes: 0,
                },
            )
            .await
            .unwrap();
        store
            .append_event(
                id,
                &EventKind::StateChanged { state: AttemptState::Failed, reason: None },
            )
            .await
            .unwrap();
        store
            .append_event(
                id,
                &EventKind::Finished {
                    outcome: AttemptOutcome {
                        state: AttemptState::Failed,
                        reason: "exit 2".into(),
                    },
                },
            )
            .await
            .unwrap();
    });
    let mut body = String::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await.unwrap()
    {
        body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    writer.await.unwrap();
    let messages: Vec<(u64, serde_json::Value)> = body
        .split("\n\n")
        .filter_map(|message| {
            let id = message.lines().find_map(|l| l.strip_prefix("id:"))?.trim().parse().ok()?;
            let data = message.lines().find_map(|l| l.strip_prefix("data:"))?.trim();
            Some((id, serde_json::from_str(data).unwrap()))
        })
        .collect();
    assert_eq!(
        messages.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        vec![4, 5, 6, 7],
        "{body}"
    );
    assert_eq!(messages[0].1[0]["op"], "append");
    assert_eq!(messages[0].1[0]["target"], "o-c1");
    assert_eq!(messages[0].1[0]["count"], "2 lines");
    assert!(messages[1].1[0]["html"].as_str().unwrap().contains("exit 2"));
    let last = messages[3].1.as_array().unwrap();
    assert!(
        last.iter().any(|op| op["op"] == "finished"
            && op["state"] == "failed"
            && op["reason"] == "exit 2"),
        "{last:?}"
    );
}

#[tokio::test]
async fn environment_secrets_are_write_only_and_kept_unless_replaced_or_removed() {
    let world = World::new().await;
    let web = Web::start(&world).await;
    let session = web.sign_in(&web.user("alice").await).await;
    let (_, _, html) = web.get(&session, "/environments/new").await;
    let csrf = field(&html, "csrf");
    let form = |name: &str, secrets: &str, remove: Option<&str>, setup: &str| {
        let mut form = vec![
            ("csrf", csrf.clone()),
            ("name", name.to_string()),
            ("mode", "setup".to_string()),
            ("base_image", "host".to_string()),
            ("setup_script", setup.to_string()),
            ("maintenance_script", String::new()),
            ("env", "PLAIN=visible-value".to_string()),
            ("new_secrets", secrets.to_string()),
            ("snapshot_ttl", "12h".to_string()),
            ("setup_timeout", "1h".to_string()),
            ("agent_network", "none".to_string()),
        ];
        if let Some(remove) = remove {
            form.push(("remove", remove.to_string()));
        }
        form
    };
    let post = |path: String, form: Vec<(&'static str, String)>| {
        web.http
            .post(format!("{}{path}", web.url))
            .header("cookie", &session)
            .header("origin", &web.url)
            .form(&form)
            .send()
    };
    let stored = || async {
        let alice = web.state.store.user_by_name("alice").await.unwrap();
        let env = web.state.store.environment_by_name(alice.id, "web-env").await.unwrap();
        serde_json::from_str::<serde_json::Value>(&env.config_json).unwrap()
    };

    // A bad name or a bad secret comes back as the form, nothing stored.
    let response = post("/environments".into(), form("-bad name", "", None, "make")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response =
        post("/environments".into(), form("web-env", "TOKEN=abc", None, "make")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("Invalid environment"));
    let alice = web.state.store.user_by_name("alice").await.unwrap();
    assert!(web.state.store.list_environments(alice.id).await.unwrap().is_empty());

    let response = post(
        "/environments".into(),
        form(
            "web-env",
            "API_TOKEN=s3cret-value-123456\nOTHER_TOKEN=other-value-654321",
            None,
            "make deps",
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, _, page) = web.get(&session, "/environments/web-env").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("API_TOKEN") && page.contains("visible-value") && page.contains("make deps")
    );
    assert!(
        !page.contains("s3cret-value-123456") && !page.contains("other-value-654321"),
        "secret values are never shown"
    );

    // Saving without mentioning a secret keeps it; a new value replaces one; a box removes one.
    let response =
        post("/environments/web-env".into(), form("web-env", "", None, "make all")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let document = stored().await;
    assert_eq!(document["secrets"]["API_TOKEN"], "s3cret-value-123456");
    assert_eq!(document["setup_script"], "make all");
    let response = post(
        "/environments/web-env".into(),
        form("web-env", "API_TOKEN=replaced-value-7890", Some("OTHER_TOKEN"), "make all"),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let document = stored().await;
    assert_eq!(document["secrets"], serde_json::json!({ "API_TOKEN": "replaced-value-7890" }));

    let (_, _, list) = web.get(&session, "/environments").await;
    assert!(list.contains("web-env") && list.contains("1 secret"), "{list}");
    let response =
        post("/environments/web-env/delete".into(), vec![("csrf", csrf.clone())]).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(web.state.store.list_environments(alice.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn follow_up_cancel_and_patch_from_the_pages() {
    let world = World::new().await;
    let web = Web::start(&world).await;
    let (task, attempts) = world.task(2).await;
    let session = web.sign_in(&web.user("alice").await).await;
    let store = &web.state.store;
    // As the API does when it creates a task: the ref resolved to its commit.
    let head = common::git(&world.repo, &["rev-parse", "HEAD"]);
    store.set_base_commit(task.id, head.trim()).await.unwrap();
    let (_, _, html) = web.get(&session, &format!("/tasks/{}", task.id)).await;
    let csrf = field(&html, "csrf");
    assert!(html.contains("Cancel all attempts"), "queued attempts can be cancelled");

    // The first attempt finishes with a diff; the second is cancelled from its page.
    let (leased, _) =
        store.lease_next("w", std::time::Duration::from_secs(60)).await.unwrap().unwrap();
    let done = leased.id;
    let queued = *attempts.iter().find(|a| **a != done).unwrap();
    store
        .append_event(done, &EventKind::StateChanged { state: AttemptState::Running, reason: None })
        .await
        .unwrap();
    let diff = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-A repository for worker tests.\n+A repository for web tests.\n";
    store.put_artifact(done, ArtifactKind::Diff, diff).await.unwrap();
    store
        .append_event(
            done,
            &EventKind::StateChanged { state: AttemptState::Succeeded, reason: None },
        )
        .await
        .unwrap();
    store
        .append_event(
            done,
            &EventKind::Finished {
                outcome: AttemptOutcome { state: AttemptState::Succeeded, reason: "done".into() },
            },
        )
        .await
        .unwrap();

    let response = web
        .post(&session, &format!("/attempts/{queued}/cancel"), Some(&web.url), &[("csrf", &csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        store.get_attempt(Scope::System, queued).await.unwrap().state,
        AttemptState::Cancelled
    );

    // The patch downloads as a file; the final tree shows the changed line.
    let response = web
        .http
        .get(format!("{}/attempts/{done}/patch", web.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"att_")
    );
    assert_eq!(response.text().await.unwrap(), diff);
    let (status, _, file) =
        web.get(&session, &format!("/attempts/{done}/files/README.md?lines=1-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        file.contains("A repository for web tests.") && file.contains("class=\"hl\""),
        "{file}"
    );
    let (status, _, _) = web.get(&session, &format!("/attempts/{done}/files/../etc/passwd")).await;
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND, "{status}");
    let (_, _, review) = web.get(&session, &format!("/attempts/{done}/review")).await;
    assert!(
        review.contains(&format!("errand apply {done}")) && review.contains("Download patch"),
        "{review}"
    );

    // A follow-up: a new attempt of the same task, and its page.
    let response = web
        .post(
            &session,
            &format!("/attempts/{done}/followup"),
            Some(&web.url),
            &[("csrf", &csrf), ("prompt", "also the docs")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let all = store.list_attempts(Scope::System, task.id).await.unwrap();
    let followup = all.iter().find(|a| a.parent_id == Some(done)).expect("a follow-up attempt");
    assert_eq!(followup.prompt.as_deref(), Some("also the docs"));
    assert_eq!(response.headers()[LOCATION], format!("/attempts/{}", followup.id).as_str());
    // An empty one is refused with the reason, and nothing is created.
    let response = web
        .post(
            &session,
            &format!("/attempts/{done}/followup"),
            Some(&web.url),
            &[("csrf", &csrf), ("prompt", "  ")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("prompt must not be empty"));
    assert_eq!(store.list_attempts(Scope::System, task.id).await.unwrap().len(), 3);
}

#[tokio::test]
async fn attempts_are_ranked_by_facts_on_the_api_and_the_task_page() {
    let world = World::new().await;
    let web = Web::start(&world).await;
    let token = web.user("alice").await;
    let session = web.sign_in(&token).await;
    let (task, attempts) = world.task(3).await;
    let store = &web.state.store;
    let check = |passed: bool| CheckResult {
        command: "python3 -m unittest".into(),
        passed,
        exit_code: Some(i32::from(!passed)),
        event: 4,
        output_lines: 1,
    };
    let diff = |lines: usize| {
        let added: String = (0..lines).map(|i| format!("+line {i}\n")).collect();
        format!(
            "diff --git a/f b/f\nnew file mode 100644\n--- /dev/null\n+++ b/f\n@@ -0,0 +1,{lines} @@\n{added}"
        )
    };
    // #1 fails its finish checks; #2 and #3 pass, #3 with the smaller change.
    for (i, (state, passed, lines)) in [
        (AttemptState::Failed, false, 2),
        (AttemptState::Succeeded, true, 30),
        (AttemptState::Succeeded, true, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let leased =
            store.lease_next("w", std::time::Duration::from_secs(60)).await.unwrap().unwrap().0;
        assert_eq!(leased.id, attempts[i]);
        store
            .append_event(
                leased.id,
                &EventKind::StateChanged { state: AttemptState::Running, reason: None },
            )
            .await
            .unwrap();
        let report = Report {
            title: format!("take {i}"),
            description: String::new(),
            citations: Vec::new(),
            checks: vec![check(passed)],
        };
        store
            .put_artifact(leased.id, ArtifactKind::Report, &serde_json::to_string(&report).unwrap())
            .await
            .unwrap();
        store.put_artifact(leased.id, ArtifactKind::Diff, &diff(lines)).await.unwrap();
        store
            .append_event(leased.id, &EventKind::StateChanged { state, reason: None })
            .await
            .unwrap();
        store
            .append_event(
                leased.id,
                &EventKind::Finished { outcome: AttemptOutcome { state, reason: "r".into() } },
            )
            .await
            .unwrap();
    }
    let shown: serde_json::Value = web
        .http
        .get(format!("{}/api/tasks/{}", web.url, task.id))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order: Vec<&str> = shown["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attempt_id"].as_str().unwrap())
        .collect();
    let ids: Vec<String> = attempts.iter().map(|a| a.to_string()).collect();
    assert_eq!(order, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    assert_eq!(
        shown["ranking"][0]["why"],
        "succeeded · 1/1 checks passed · 0 flagged citations · 1 file, 3 changed lines"
    );
    assert!(
        shown["ranking"][2]["why"]
            .as_str()
            .unwrap()
            .starts_with("did not succeed · 0/1 checks passed")
    );
    // The list does not rank (it would read every attempt's artifacts).
    let list: serde_json::Value = web
        .http
        .get(format!("{}/api/tasks", web.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["tasks"][0].get("ranking").is_none());

    let (_, _, page) = web.get(&session, &format!("/tasks/{}", task.id)).await;
    let first = page.find(&format!("card-{}", ids[2])).unwrap();
    let second = page.find(&format!("card-{}", ids[1])).unwrap();
    let third = page.find(&format!("card-{}", ids[0])).unwrap();
    assert!(first < second && second < third, "cards best first");
    assert!(page[first..second].contains("badge ok\">best"), "the best is marked");

    // The user overrides the ranking: the pick shows on the page and in the API.
    let csrf = field(&page, "csrf");
    let response = web
        .post(
            &session,
            &format!("/tasks/{}/pick", task.id),
            Some(&web.url),
            &[("csrf", &csrf), ("attempt", &ids[1])],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], format!("/attempts/{}/review#act", ids[1]).as_str());
    let (_, _, page) = web.get(&session, &format!("/tasks/{}", task.id)).await;
    let card = page.find(&format!("card-{}", ids[1])).unwrap();
    assert!(page[card..].split("</article>").next().unwrap().contains("badge run\">picked"));
    let shown: serde_json::Value = web
        .http
        .get(format!("{}/api/tasks/{}", web.url, task.id))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["picked_attempt"], ids[1].as_str());
}
