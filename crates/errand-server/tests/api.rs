//! The HTTP API served for real on loopback, over a real store, with in-process workers running
//! real sandboxes against the scripted model: the whole flow (three attempts, a live SSE stream
//! cut and resumed with `Last-Event-ID`, diff, report, a follow-up, a message to a running
//! attempt, a cancel), isolation between users, bad input, limits, repository roots and
//! environments.

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    GatedModel, RoutedModel, World, kinds, sandbox_available, wait_until, writing_models,
};
use errand_protocol::api::{AttemptView, EventPage, TaskView};
use errand_protocol::{AttemptState, Event, EventKind};
use errand_server::Worker;
use errand_server::api::{ApiConfig, AppState};
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
async fn three_attempts_streamed_resumed_messaged_cancelled_and_followed_up() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
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
