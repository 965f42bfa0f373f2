//! The HTTP API served for real on loopback, over a real store, with in-process workers running
//! real sandboxes against the scripted model: the whole flow (three attempts, a live SSE stream
//! cut and resumed with `Last-Event-ID`, diff, report, a follow-up, a message to a running
//! attempt, a cancel), isolation between users, bad input, limits, repository roots and
//! environments.

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{GatedModel, RoutedModel, World, kinds, sandbox_available, writing_models};
use errand_protocol::api::{AttemptView, EnvironmentView, EventPage, TaskList, TaskView};
use errand_protocol::{AttemptState, Event, EventKind};
use errand_server::Worker;
use errand_server::api::{ApiConfig, AppState};
use errand_testkit::wait_until;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The API on a free loopback port; stops when dropped.
struct Api {
    url: String,
    http: reqwest::Client,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Api {
    async fn start(world: &World, config: ApiConfig) -> Api {
        let state = AppState::new(world.store.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            errand_server::api::serve(listener, served, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Api { url, http: reqwest::Client::new(), state, stop: Some(stop) }
    }

    /// A user and a token for them.
    async fn user(&self, name: &str) -> String {
        let user = self.state.store.create_user(name).await.unwrap();
        self.state.store.create_token(user.id, "test").await.unwrap().secret
    }

    fn get(&self, token: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url)).bearer_auth(token)
    }

    fn post(&self, token: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url)).bearer_auth(token).json(&body)
    }

    async fn create_task(&self, token: &str, body: Value) -> TaskView {
        let response = self.post(token, "/api/tasks", body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    async fn attempt(&self, token: &str, id: &str) -> AttemptView {
        self.get(token, &format!("/api/attempts/{id}")).send().await.unwrap().json().await.unwrap()
    }

    /// A worker that appends through the API's store, as `errand serve` runs it.
    fn worker(&self, world: &World, model: Arc<dyn errand_agent::Model>, slots: usize) -> Worker {
        let mut worker = world.worker("api-worker", model, slots);
        worker.store = self.state.store.clone();
        worker
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Reads an SSE stream: `(id, data)` of each event, until the stream ends or `stop_after`
/// events were read (then the connection is dropped).
async fn read_sse(
    url: String,
    token: String,
    attempt: String,
    last_event_id: Option<u64>,
    stop_after: Option<usize>,
) -> Vec<(u64, Event)> {
    let mut request = reqwest::Client::new()
        .get(format!("{url}/api/attempts/{attempt}/events/stream"))
        .bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"),
        "{:?}",
        response.headers()
    );
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(120), body.next())
        .await
        .expect("the stream went silent for two minutes")
    {
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let (mut id, mut data) = (None, None);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
                    id = Some(v.trim().parse::<u64>().unwrap());
                } else if let Some(v) =
                    line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:"))
                {
                    data = Some(serde_json::from_str::<Event>(v).unwrap());
                }
            }
            if let (Some(id), Some(event)) = (id, data) {
                assert_eq!(id, event.seq, "the SSE id is the event's seq");
                events.push((id, event));
                if stop_after == Some(events.len()) {
                    return events;
                }
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_sqlite() {
    if !sandbox_available() {
        return;
    }
    three_attempts_streamed_resumed_messaged_cancelled_and_followed_up(World::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_postgres() {
    if !sandbox_available() {
        return;
    }
    let Some(url) = errand_testkit::postgres::database_or_skip().await else { return };
    let mut world = World::new().await;
    world.store = errand_store::open(&url).await.unwrap();
    three_attempts_streamed_resumed_messaged_cancelled_and_followed_up(world).await;
}

async fn three_attempts_streamed_resumed_messaged_cancelled_and_followed_up(world: World) {
    let api = Api::start(&world, ApiConfig::default()).await;
    let alice = api.user("alice").await;
    // Three first turns write result.txt; four answers: the attempts' and the follow-up's.
    let (first, after) = writing_models(4).await;
    let gated = Arc::new(GatedModel::new(RoutedModel::new(&first, &after)));
    let worker = api.worker(&world, gated.clone(), 3);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(async move {
        Arc::new(worker)
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });

    let repo = world.repo.display().to_string();
    let task = api
        .create_task(
            &alice,
            json!({"repository": repo, "ref": "main", "prompt": "write result.txt", "attempts": 3}),
        )
        .await;
    assert_eq!(task.attempts.len(), 3);
    assert_eq!(
        task.base_commit.as_deref(),
        Some(common::git(&world.repo, &["rev-parse", "main"]).trim())
    );
    let ids: Vec<String> = task.attempts.iter().map(|a| a.id.to_string()).collect();

    // All three are running, each held at its model: follow attempt 0 live, message attempt 1,
    // cancel attempt 2.
    for id in &ids {
        wait_until("every attempt to run", || async {
            api.attempt(&alice, id).await.state == AttemptState::Running
        })
        .await;
    }
    wait_until("a model request", || async { gated.arrived() }).await;
    let first_part = read_sse(api.url.clone(), alice.clone(), ids[0].clone(), None, Some(2)).await;
    assert_eq!(first_part.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![1, 2]);
    let rest = {
        let resumed =
            tokio::spawn(read_sse(api.url.clone(), alice.clone(), ids[0].clone(), Some(2), None));
        let sent = api
            .post(
                &alice,
                &format!("/api/attempts/{}/messages", ids[1]),
                json!({"text": "also say hello"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
        let cancelled = api
            .post(
                &alice,
                &format!("/api/attempts/{}/cancel", ids[2]),
                json!({"reason": "not needed"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(cancelled.status(), StatusCode::OK);
        let cancelled: AttemptView = cancelled.json().await.unwrap();
        assert!(cancelled.cancel_requested);
        // The worker learns of the cancel from its heartbeat and stops the attempt where it
        // waits.
        wait_until("the cancel to take", || async {
            api.attempt(&alice, &ids[2]).await.state == AttemptState::Cancelled
        })
        .await;
        gated.open();
        resumed.await.unwrap()
    };

    // The resumed stream continued exactly after event 2 and ran to `finished`, live.
    let seqs: Vec<u64> = first_part.iter().chain(&rest).map(|(id, _)| *id).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gap, no duplicate");
    let streamed: Vec<Event> = first_part.into_iter().chain(rest).map(|(_, e)| e).collect();
    assert!(matches!(streamed.last().unwrap().kind, EventKind::Finished { .. }));
    let stored = world.events(ids[0].parse().unwrap()).await;
    assert_eq!(streamed, stored, "the stream is the stored log");

    for id in &ids {
        wait_until("every attempt to finish", || async {
            api.attempt(&alice, id).await.state.is_terminal()
        })
        .await;
    }
    assert_eq!(api.attempt(&alice, &ids[0]).await.state, AttemptState::Succeeded);
    let messaged = world.events(ids[1].parse().unwrap()).await;
    assert!(
        messaged.iter().any(
            |e| matches!(&e.kind, EventKind::UserMessage { text } if text == "also say hello")
        ),
        "{:?}",
        kinds(&messaged)
    );
    let cancelled = api.attempt(&alice, &ids[2]).await;
    assert_eq!(cancelled.state, AttemptState::Cancelled);
    assert!(cancelled.reason.as_deref().unwrap_or("").contains("not needed"), "{cancelled:?}");

    // Diff and report of the winner; the events as pages.
    let diff = api.get(&alice, &format!("/api/attempts/{}/diff", ids[0])).send().await.unwrap();
    assert_eq!(diff.status(), StatusCode::OK);
    assert!(diff.headers()["content-type"].to_str().unwrap().starts_with("text/x-diff"));
    let diff = diff.text().await.unwrap();
    assert!(diff.contains("+++ b/result.txt"), "{diff}");
    let report: Value = api
        .get(&alice, &format!("/api/attempts/{}/report", ids[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["title"], "Write result.txt");
    let page: EventPage = api
        .get(&alice, &format!("/api/attempts/{}/events?after=3&limit=2", ids[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
    assert!(!page.finished);
    let tail: EventPage = api
        .get(&alice, &format!("/api/attempts/{}/events?after={}", ids[0], stored.len()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tail.events.is_empty() && tail.finished);
    let no_diff = api.get(&alice, &format!("/api/attempts/{}/diff", ids[2])).send().await.unwrap();
    assert_eq!(no_diff.status(), StatusCode::NOT_FOUND);

    // A follow-up continues attempt 0: its diff still has result.txt.
    let followup = api
        .post(
            &alice,
            &format!("/api/attempts/{}/followup", ids[0]),
            json!({"prompt": "now check it"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(followup.status(), StatusCode::CREATED);
    let followup: AttemptView = followup.json().await.unwrap();
    assert_eq!(followup.parent_id.map(|p| p.to_string()).as_deref(), Some(ids[0].as_str()));
    let followup_id = followup.id.to_string();
    let streamed = read_sse(api.url.clone(), alice.clone(), followup_id.clone(), None, None).await;
    assert!(matches!(streamed.last().unwrap().1.kind, EventKind::Finished { .. }));
    assert_eq!(api.attempt(&alice, &followup_id).await.state, AttemptState::Succeeded);
    let diff = api.get(&alice, &format!("/api/attempts/{followup_id}/diff")).send().await.unwrap();
    assert!(diff.text().await.unwrap().contains("+++ b/result.txt"));

    // The task as a whole.
    let shown: TaskView = api
        .get(&alice, &format!("/api/tasks/{}", task.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown.attempts.len(), 4);
    assert_eq!(shown.state, errand_protocol::api::TaskState::Succeeded);
    let metrics =
        api.http.get(format!("{}/metrics", api.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("errand_tasks_created_total 1"), "{metrics}");

    let _ = stop.send(());
    worker.await.unwrap();
}

/// Status and error code of a response, consuming it.
async fn failure(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let code = body["error"]["code"].as_str().unwrap_or_default().to_string();
    let message = body["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "every error says why: {body}");
    (status, code, message)
}

#[tokio::test]
async fn users_see_only_their_own_tasks_attempts_logs_and_environments() {
    let world = World::new().await;
    let api = Api::start(&world, ApiConfig::default()).await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let repo = world.repo.display().to_string();
    let task = api.create_task(&alice, json!({"repository": repo, "prompt": "mine"})).await;
    let attempt = task.attempts[0].id.to_string();
    let env = api
        .post(
            &alice,
            "/api/environments",
            json!({"name": "web", "config": {"setup_script": "true"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(env.status(), StatusCode::CREATED);

    let gets = [
        format!("/api/tasks/{}", task.id),
        format!("/api/attempts/{attempt}"),
        format!("/api/attempts/{attempt}/events"),
        format!("/api/attempts/{attempt}/events/stream"),
        format!("/api/attempts/{attempt}/diff"),
        format!("/api/attempts/{attempt}/report"),
        "/api/environments/web".to_string(),
        "/api/environments/web/logs".to_string(),
    ];
    for path in &gets {
        let (status, code, _) = failure(api.get(&bob, path).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"), "GET {path}");
    }
    let posts = [
        (format!("/api/tasks/{}/cancel", task.id), json!({})),
        (format!("/api/attempts/{attempt}/cancel"), json!({})),
        (format!("/api/attempts/{attempt}/messages"), json!({"text": "hi"})),
        (format!("/api/attempts/{attempt}/followup"), json!({"prompt": "more"})),
    ];
    for (path, body) in &posts {
        let (status, _, _) =
            failure(api.post(&bob, path, body.clone()).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "POST {path}");
    }
    let deleted =
        api.http.delete(format!("{}/api/tasks/{}", api.url, task.id)).bearer_auth(&bob).send();
    assert_eq!(deleted.await.unwrap().status(), StatusCode::NOT_FOUND);
    // Bob cannot run a task in Alice's environment either, by name or by id.
    let env: EnvironmentView =
        api.get(&alice, "/api/environments/web").send().await.unwrap().json().await.unwrap();
    for name in ["web", env.id.as_str()] {
        let body = json!({"repository": repo, "prompt": "p", "environment": name});
        let (status, _, message) =
            failure(api.post(&bob, "/api/tasks", body).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    }
    let listed: TaskList = api.get(&bob, "/api/tasks").send().await.unwrap().json().await.unwrap();
    assert!(listed.tasks.is_empty());
    let envs: Vec<EnvironmentView> =
        api.get(&bob, "/api/environments").send().await.unwrap().json().await.unwrap();
    assert!(envs.is_empty());

    // Alice's own view is intact: nothing Bob did touched her task.
    let mine: TaskView = api
        .get(&alice, &format!("/api/tasks/{}", task.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine.attempts[0].state, AttemptState::Queued);
    assert!(!mine.attempts[0].cancel_requested);

    // No token, a malformed header, an unknown or revoked token: 401 with a way forward.
    let anonymous = api.http.get(format!("{}/api/tasks", api.url)).send().await.unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(failure(anonymous).await.0, StatusCode::UNAUTHORIZED);
    let basic =
        api.http.get(format!("{}/api/tasks", api.url)).header("Authorization", "Basic eDp5").send();
    assert_eq!(failure(basic.await.unwrap()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        failure(api.get("errand_nope", "/api/tasks").send().await.unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let tokens: Vec<Value> =
        api.get(&bob, "/api/tokens").send().await.unwrap().json().await.unwrap();
    let revoked = api
        .http
        .delete(format!("{}/api/tokens/{}", api.url, tokens[0]["id"].as_str().unwrap()))
        .bearer_auth(&bob)
        .send();
    assert_eq!(revoked.await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        failure(api.get(&bob, "/api/me").send().await.unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_nothing_is_created() {
    let world = World::new().await;
    let config = ApiConfig { max_body_bytes: 64 << 10, ..ApiConfig::default() };
    let config = ApiConfig {
        limits: errand_server::api::ApiLimits {
            max_prompt_bytes: 16 << 10,
            ..config.limits.clone()
        },
        ..config
    };
    let api = Api::start(&world, config).await;
    let alice = api.user("alice").await;
    let repo = world.repo.display().to_string();
    let not_a_repo = world.dir.path().join("data-not-repo");
    std::fs::create_dir_all(&not_a_repo).unwrap();
    let raw = |body: &'static str| {
        api.http
            .post(format!("{}/api/tasks", api.url))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, code, message) = failure(raw("{\"repository\": ").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "bad_request"), "{message}");
    let (status, _, message) = failure(raw("[1, 2]").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    let no_type =
        api.http.post(format!("{}/api/tasks", api.url)).bearer_auth(&alice).body("{}").send();
    assert_eq!(failure(no_type.await.unwrap()).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let cases = [
        (json!({"repository": repo, "prompt": "p", "atempts": 2}), "unknown field `atempts`"),
        (json!({"repository": repo, "prompt": "   "}), "prompt must not be empty"),
        (json!({"repository": repo, "prompt": "x".repeat(20 << 10)}), "the limit is 16384"),
        (json!({"repository": repo, "prompt": "p", "attempts": 0}), "between 1 and 8"),
        (json!({"repository": repo, "prompt": "p", "attempts": 9}), "between 1 and 8"),
        (json!({"repository": repo, "prompt": "p", "mode": "plan"}), "unknown variant `plan`"),
        (json!({"repository": repo, "prompt": "p", "ref": "no-such-branch"}), "names no commit"),
        (
            json!({"repository": repo, "prompt": "p", "ref": "--upload-pack=touch /tmp/x"}),
            "is not a branch",
        ),
        (json!({"repository": repo, "prompt": "p", "environment": "nope"}), "does not exist"),
        (json!({"repository": "relative/path", "prompt": "p"}), "absolute path"),
        (
            // This server has no mirrors configured.
            json!({"repository": "https://example.com/r.git", "prompt": "p"}),
            "repositories on its own machine only",
        ),
        (
            json!({"repository": "https://user:s3cret@example.com/r.git", "prompt": "p"}),
            "not the URL",
        ),
        (
            json!({"repository": not_a_repo.display().to_string(), "prompt": "p"}),
            "not a git repository",
        ),
        (json!({"repository": "/no/such/dir", "prompt": "p"}), "cannot open"),
    ];
    for (body, expected) in cases {
        let (status, _, message) =
            failure(api.post(&alice, "/api/tasks", body.clone()).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {message}");
        assert!(message.contains(expected), "{body}: {message}");
    }
    // A body over the server's limit: 413 before anything is parsed.
    let huge = json!({"repository": repo, "prompt": "x".repeat(100 << 10)});
    let (status, code, _) =
        failure(api.post(&alice, "/api/tasks", huge).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    // Ids that are not ids, routes that are not routes, queries that are not queries.
    for path in ["/api/tasks/nope", "/api/attempts/task_0", "/api/nothing-here"] {
        assert_eq!(
            failure(api.get(&alice, path).send().await.unwrap()).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for path in [
        "/api/tasks?limit=0",
        "/api/tasks?limit=x",
        "/api/tasks?before=att_1",
        "/api/tasks?bogus=1",
    ] {
        assert_eq!(
            failure(api.get(&alice, path).send().await.unwrap()).await.0,
            StatusCode::BAD_REQUEST,
            "{path}"
        );
    }
    let bad_resume = api
        .get(&alice, "/api/attempts/att_01a2109b4fd57149972c892cdb0743fa/events/stream")
        .header("Last-Event-ID", "ten")
        .send();
    assert_eq!(failure(bad_resume.await.unwrap()).await.0, StatusCode::BAD_REQUEST);

    let listed: TaskList =
        api.get(&alice, "/api/tasks").send().await.unwrap().json().await.unwrap();
    assert!(listed.tasks.is_empty(), "nothing half-created: {listed:?}");
    let counts = api.state.store.attempt_counts(None).await.unwrap();
    assert_eq!(counts.queued + counts.in_flight(), 0);

    // Environments: bad names and documents are refused, secrets never come back.
    let env_cases = [
        (json!({"name": "-x", "config": {}}), "not an environment name"),
        (json!({"name": "ok", "config": [1]}), "JSON object"),
        (json!({"name": "ok", "config": {"setpu": "true"}}), "setpu"),
        (json!({"name": "ok", "config": {}, "extra": 1}), "unknown field `extra`"),
    ];
    for (body, expected) in env_cases {
        let (status, _, message) =
            failure(api.post(&alice, "/api/environments", body.clone()).send().await.unwrap())
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {message}");
        assert!(message.contains(expected), "{body}: {message}");
    }
    let secret = "s3cret-value-that-must-not-leak";
    let body =
        json!({"name": "ok", "config": {"secrets": {"TOKEN": secret, "KEY": {"env": "SOME_VAR"}}}});
    let created = api.post(&alice, "/api/environments", body.clone()).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let shown = created.text().await.unwrap();
    assert!(!shown.contains(secret) && shown.contains("SOME_VAR"), "{shown}");
    let again = failure(api.post(&alice, "/api/environments", body).send().await.unwrap()).await;
    assert_eq!(again.0, StatusCode::CONFLICT);
    let listed = api.get(&alice, "/api/environments").send().await.unwrap().text().await.unwrap();
    assert!(!listed.contains(secret), "{listed}");
}

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_the_limit_named() {
    let world = World::new().await;
    let mut config = ApiConfig::default();
    config.limits.tasks_per_hour = 2;
    config.limits.attempts_per_user = 3;
    let api = Api::start(&world, config).await;
    let alice = api.user("alice").await;
    let repo = world.repo.display().to_string();
    api.create_task(&alice, json!({"repository": repo, "prompt": "one", "attempts": 2})).await;
    // Two more attempts would make four unfinished: over the concurrency limit.
    let response = api
        .post(&alice, "/api/tasks", json!({"repository": repo, "prompt": "two", "attempts": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "30");
    let (status, code, message) = failure(response).await;
    assert_eq!((status, code.as_str()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    assert!(message.contains("the limit is 3 at once"), "{message}");
    api.create_task(&alice, json!({"repository": repo, "prompt": "two", "attempts": 1})).await;
    // A third task within the hour.
    let response = api
        .post(&alice, "/api/tasks", json!({"repository": repo, "prompt": "three"}))
        .send()
        .await
        .unwrap();
    let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3000..=3600).contains(&wait), "until the first task leaves the hour: {wait}");
    let (status, _, message) = failure(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(message.contains("2 per hour"), "{message}");
    // Another user has their own allowance.
    let bob = api.user("bob").await;
    api.create_task(&bob, json!({"repository": repo, "prompt": "bob's"})).await;
    let metrics =
        api.http.get(format!("{}/metrics", api.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("errand_rate_limited_total 2"), "{metrics}");
    assert!(metrics.contains("errand_attempts{state=\"queued\"} 4"), "{metrics}");
}

#[tokio::test]
async fn repository_roots_keep_tasks_inside_them_even_through_symlinks() {
    let world = World::new().await;
    let inside = world.dir.path().join("repos");
    std::fs::create_dir(&inside).unwrap();
    let allowed = inside.join("repo");
    std::fs::rename(&world.repo, &allowed).unwrap();
    let outside = world.dir.path().join("elsewhere");
    std::fs::create_dir(&outside).unwrap();
    common::git(&outside, &["init", "-q"]);
    common::git(&outside, &["commit", "-q", "--allow-empty", "-m", "private"]);
    std::os::unix::fs::symlink(&outside, inside.join("link")).unwrap();
    let config = ApiConfig { repository_roots: vec![inside.clone()], ..ApiConfig::default() };
    let api = Api::start(&world, config).await;
    let alice = api.user("alice").await;

    let task = api
        .create_task(&alice, json!({"repository": allowed.display().to_string(), "prompt": "p"}))
        .await;
    assert_eq!(task.repository, allowed.display().to_string());
    let refused = [
        outside.display().to_string(),
        inside.join("link").display().to_string(),
        inside.join("repo/../../elsewhere").display().to_string(),
        "/no/such/dir".to_string(),
    ];
    let mut messages = Vec::new();
    for repository in refused {
        let body = json!({"repository": repository, "prompt": "p"});
        let (status, _, message) =
            failure(api.post(&alice, "/api/tasks", body).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{repository}");
        assert!(
            message.contains("is not a git repository under this server's repository roots"),
            "{message}"
        );
        messages.push(message.replace(&repository, "PATH"));
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "one answer for missing and forbidden paths alike: {messages:?}");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_health_and_metrics_answer_without_a_token()
{
    let world = World::new().await;
    let api = Api::start(&world, ApiConfig::default()).await;
    let doc: Value = api
        .http
        .get(format!("{}/api/openapi.json", api.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/tasks",
        "/api/tasks/{id}",
        "/api/tasks/{id}/cancel",
        "/api/attempts/{id}/events/stream",
        "/api/attempts/{id}/followup",
        "/api/attempts/{id}/messages",
        "/api/attempts/{id}/diff",
        "/api/environments/{name}",
        "/api/tokens",
    ] {
        assert!(paths.contains_key(path), "{path} missing from {:?}", paths.keys());
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in ["CreateTask", "TaskView", "EventKind", "ApiError", "Report"] {
        assert!(schemas.contains_key(schema), "{schema} missing");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let health = api.http.get(format!("{}/api/health", api.url)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = api.http.get(format!("{}/metrics", api.url)).send().await.unwrap();
    assert!(metrics.text().await.unwrap().contains("errand_store_up 1"));
}
