//! Tasks started from a forge's webhook, over the real API: a signed `issue_comment` that
//! mentions `@errand` from an allowed user creates a task on the repository and answers on the
//! issue with its link; when the task has succeeded, its pull request is opened and reported on
//! the issue. A wrong signature, a replayed delivery, another event, a user not allowed: each
//! gets a clear status and changes nothing. The forge is a fake GitHub that checks every
//! request against GitHub's published API description (`errand_testkit::forge`).

#[allow(dead_code)]
mod common;

use common::World;
use errand_git::Credentials;
use errand_git::forge::{ForgeConfig, ForgeKind};
use errand_protocol::{AttemptOutcome, AttemptState, EventKind, Report};
use errand_server::api::{ApiConfig, AppState};
use errand_server::delivery::{Forge, Forges};
use errand_server::remotes::Remotes;
use errand_server::triggers::{TriggerConfig, hmac_sha256, report_finished};
use errand_store::{ArtifactKind, Page, Scope};
use errand_testkit::forge::{ConformingForge, ForgeSetup, Kind};
use errand_testkit::git_http::GitHttpServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "webhook-secret-0042";

fn sign(body: &[u8], secret: &str) -> String {
    let mac = hmac_sha256(secret.as_bytes(), body);
    format!("sha256={}", mac.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn comment_payload(sender: &str, body: &str, clone_url: &str) -> Value {
    json!({
        "action": "created",
        "issue": {"number": 12, "title": "The readme is wrong", "body": "It says worker tests.", "html_url": "https://github.example/o/project/issues/12"},
        "comment": {"body": body, "user": {"login": sender}},
        "repository": {"full_name": "o/project", "clone_url": clone_url},
        "sender": {"login": sender},
    })
}

#[tokio::test]
async fn a_mention_starts_a_task_and_its_pull_request_is_reported_on_the_issue() {
    let world = World::new().await;
    let served = tempfile::tempdir().unwrap();
    std::fs::create_dir(served.path().join("o")).unwrap();
    common::git(
        &served.path().join("o"),
        &["clone", "-q", "--bare", world.repo.to_str().unwrap(), "project.git"],
    );
    let git_server =
        GitHttpServer::start(served.path(), "x-access-token", "git-token-7").await.unwrap();
    let clone_url = git_server.url("o/project.git");
    let setup = ForgeSetup {
        owner: "o".into(),
        name: "project".into(),
        token: "api-token-7".into(),
        web_base: Some("https://github.example".into()),
        ..ForgeSetup::default()
    };
    let Some(github) = ConformingForge::start_with(Kind::GitHub, setup).await else { return };
    // The issue the deliveries below are about; the pull request is numbered after it.
    github.add_issue_numbered(12, "The readme is wrong", Some("It says worker tests."), None);
    let forges = Forges(vec![Forge {
        host: "127.0.0.1".into(),
        kind: ForgeKind::GitHub,
        web_base: "https://github.example".into(),
        config: ForgeConfig::new(ForgeKind::GitHub, &github.api_base, "api-token-7"),
        branch_prefix: "errand/".into(),
        trigger: Some(TriggerConfig {
            secret: SECRET.into(),
            handle: "@errand".into(),
            label: Some("errand".into()),
            allowed_users: vec!["octocat".into()],
            run_as: "alice".into(),
        }),
    }]);
    let config = ApiConfig {
        remotes: Some(
            Remotes::new(world.dir.path().join("mirrors"))
                .with_credentials("127.0.0.1", Credentials::token("git-token-7")),
        ),
        forges,
        public_url: "https://errand.example".into(),
        ..ApiConfig::default()
    };
    let state = AppState::new(world.store.clone(), config);
    let alice = state.store.create_user("alice").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/127.0.0.1", listener.local_addr().unwrap());
    tokio::spawn(errand_server::api::serve(listener, state.clone(), std::future::pending()));
    let http = reqwest::Client::new();
    let send = |payload: &Value, event: &str, delivery: &str, secret: &str| {
        let body = serde_json::to_vec(payload).unwrap();
        http.post(&url)
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sign(&body, secret))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let tasks = || async { state.store.list_tasks(alice.id, Page::first(10)).await.unwrap() };

    // Refused or ignored: nothing created, nothing said on the forge.
    let mention = comment_payload("octocat", "@errand fix the readme please", &clone_url);
    let response = send(&mention, "issue_comment", "d-1", "wrong-secret").await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let stranger = comment_payload("mallory", "@errand delete everything", &clone_url);
    let response = send(&stranger, "issue_comment", "d-2", SECRET).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(response.text().await.unwrap().contains("mallory may not start tasks"));
    let response = send(&json!({"ref": "refs/heads/main"}), "push", "d-3", SECRET).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let no_mention = comment_payload("octocat", "thanks, errand folks", &clone_url);
    assert_eq!(
        send(&no_mention, "issue_comment", "d-4", SECRET).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert!(tasks().await.is_empty());
    assert!(github.requests().is_empty());
    // A host with no forge configured has no endpoint.
    let elsewhere = url.rsplit_once("/hooks/").unwrap().0.to_string() + "/hooks/elsewhere.example";
    assert_eq!(
        http.post(elsewhere).body("{}").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // The mention: a task on the repository, with the issue as context, and an answer.
    let response = send(&mention, "issue_comment", "d-5", SECRET).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let listed = tasks().await;
    assert_eq!(listed.len(), 1);
    let task = &listed[0];
    assert_eq!(created["task"], task.id.to_string());
    assert_eq!(task.repository, clone_url);
    assert!(
        task.prompt.starts_with("fix the readme please")
            && task.prompt.contains("o/project#12")
            && task.prompt.contains("It says worker tests."),
        "{}",
        task.prompt
    );
    {
        let requests = github.requests();
        let answer = requests.last().unwrap();
        assert_eq!((answer.method.as_str(), answer.what.as_str()), ("POST", "comments/12"));
        assert_eq!(answer.body["body"], format!("On it: https://errand.example/tasks/{}", task.id));
    }
    // The same delivery again does nothing.
    let response = send(&mention, "issue_comment", "d-5", SECRET).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(tasks().await.len(), 1);

    // Nothing to report while the attempt runs; once it succeeded, its pull request.
    assert_eq!(report_finished(&state).await, 0);
    let attempt = state.store.list_attempts(Scope::System, task.id).await.unwrap()[0].id;
    let store = &state.store;
    store.lease_next("w", std::time::Duration::from_secs(60)).await.unwrap().unwrap();
    store
        .append_event(
            attempt,
            &EventKind::StateChanged { state: AttemptState::Running, reason: None },
        )
        .await
        .unwrap();
    let diff = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-A repository for worker tests.\n+A repository.\n";
    store.put_artifact(attempt, ArtifactKind::Diff, diff).await.unwrap();
    let report = Report {
        title: "Fix the readme".into(),
        description: "Shorter.".into(),
        citations: Vec::new(),
        checks: Vec::new(),
    };
    store
        .put_artifact(attempt, ArtifactKind::Report, &serde_json::to_string(&report).unwrap())
        .await
        .unwrap();
    store
        .append_event(
            attempt,
            &EventKind::StateChanged { state: AttemptState::Succeeded, reason: None },
        )
        .await
        .unwrap();
    store
        .append_event(
            attempt,
            &EventKind::Finished {
                outcome: AttemptOutcome { state: AttemptState::Succeeded, reason: "done".into() },
            },
        )
        .await
        .unwrap();
    assert_eq!(report_finished(&state).await, 1);
    {
        let requests = github.requests();
        assert_eq!(requests.iter().filter(|r| r.method == "POST" && r.what == "pulls").count(), 1);
        let done = requests.last().unwrap();
        assert_eq!((done.method.as_str(), done.what.as_str()), ("POST", "comments/12"));
        // Issues and pull requests share their numbers: the pull request after issue 12 is 13.
        assert!(
            done.body["body"]
                .as_str()
                .unwrap()
                .starts_with("Done: https://github.example/o/project/pull/13"),
            "{}",
            done.body
        );
    }
    assert_eq!(report_finished(&state).await, 0, "reported once");
    github.assert_conformed();
}
