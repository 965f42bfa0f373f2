//! Tasks whose repository is a URL, end to end over the real API, a real sandbox and real git:
//! a bare repository served by `git http-backend` behind token auth on loopback, mirrored on
//! the server, checked out into the sandbox; the token never reaches the task, its events, the
//! mirror's files or the checkout.

#[allow(dead_code)]
mod common;

use std::sync::Arc;

use common::{RoutedModel, World, sandbox_available, writing_models};
use errand_git::Credentials;
use errand_protocol::AttemptState;
use errand_protocol::api::TaskView;
use errand_server::api::{ApiConfig, AppState};
use errand_server::remotes::Remotes;
use errand_store::{ArtifactKind, Scope};
use errand_testkit::git_http::GitHttpServer;
use errand_testkit::wait_until;
use reqwest::StatusCode;
use serde_json::json;

const TOKEN: &str = "remote-token-5f1c9a";

#[tokio::test]
async fn a_task_on_an_https_style_remote_runs_from_its_mirror_without_the_token_leaking() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    // The remote: a bare clone of the world's repository, behind Basic auth.
    let served = tempfile::tempdir().unwrap();
    common::git(
        served.path(),
        &["clone", "-q", "--bare", world.repo.to_str().unwrap(), "project.git"],
    );
    let forge = GitHttpServer::start(served.path(), "x-access-token", TOKEN).await.unwrap();
    let url = forge.url("project.git");
    let head = common::git(&world.repo, &["rev-parse", "main"]).trim().to_string();

    let mirrors = world.dir.path().join("mirrors");
    let remotes = Remotes::new(&mirrors).with_credentials("127.0.0.1", Credentials::token(TOKEN));
    let config = ApiConfig { remotes: Some(remotes.clone()), ..ApiConfig::default() };
    let state = AppState::new(world.store.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let served_state = state.clone();
    tokio::spawn(async move {
        errand_server::api::serve(listener, served_state, std::future::pending()).await.unwrap()
    });
    let user = state.store.create_user("alice").await.unwrap();
    let token = state.store.create_token(user.id, "test").await.unwrap().secret;
    let http = reqwest::Client::new();

    let response = http
        .post(format!("{api}/api/tasks"))
        .bearer_auth(&token)
        .json(&json!({"repository": url, "ref": "main", "prompt": "write result.txt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let task: TaskView = response.json().await.unwrap();
    assert_eq!(task.repository, url, "the task names the URL, not the mirror");
    assert_eq!(task.base_commit.as_deref(), Some(head.as_str()));

    let (first, after) = writing_models(1).await;
    let mut worker = world.worker("remote-worker", Arc::new(RoutedModel::new(&first, &after)), 1);
    worker.store = state.store.clone();
    worker.remotes = Some(remotes);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        Arc::new(worker)
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    let attempt = task.attempts[0].id;
    wait_until("the attempt to finish", || async {
        state.store.get_attempt(Scope::System, attempt).await.unwrap().state.is_terminal()
    })
    .await;
    let _ = stop.send(());
    running.await.unwrap();
    let finished = state.store.get_attempt(Scope::System, attempt).await.unwrap();
    assert_eq!(finished.state, AttemptState::Succeeded, "{:?}", finished.reason);
    let diff = state
        .store
        .get_artifact(Scope::System, attempt, ArtifactKind::Diff)
        .await
        .unwrap()
        .unwrap();
    assert!(diff.contains("+++ b/result.txt"), "{diff}");

    // The token is nowhere but the server's configuration.
    let events = world.events(attempt).await;
    assert!(!serde_json::to_string(&events).unwrap().contains(TOKEN));
    let grep = std::process::Command::new("grep")
        .args(["-r", "-l", "-a", TOKEN])
        .arg(&mirrors)
        .arg(world.data_dir())
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "the token is in {}", String::from_utf8_lossy(&grep.stdout));
    assert!(
        forge.requests().iter().any(|r| r.authorized && r.target.contains("git-upload-pack")),
        "fetched over HTTP"
    );
}

#[tokio::test]
async fn urls_are_refused_with_a_wrong_or_missing_token_or_a_host_not_allowed() {
    let world = World::new().await;
    let served = tempfile::tempdir().unwrap();
    common::git(
        served.path(),
        &["clone", "-q", "--bare", world.repo.to_str().unwrap(), "project.git"],
    );
    let forge = GitHttpServer::start(served.path(), "x-access-token", TOKEN).await.unwrap();
    let url = forge.url("project.git");
    let cases = [
        (
            Remotes::new(world.dir.path().join("m1"))
                .with_credentials("127.0.0.1", Credentials::token("wrong-token-1234")),
            "refused the token",
        ),
        (Remotes::new(world.dir.path().join("m2")), "needs credentials"),
        (
            Remotes::new(world.dir.path().join("m3"))
                .with_credentials("127.0.0.1", Credentials::token(TOKEN))
                .allow_hosts(vec!["git.example.com".into()]),
            "not a host this server fetches from",
        ),
    ];
    for (remotes, expected) in cases {
        let state = AppState::new(
            world.store.clone(),
            ApiConfig { remotes: Some(remotes), ..ApiConfig::default() },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(errand_server::api::serve(listener, state.clone(), std::future::pending()));
        let user = match state.store.user_by_name("alice").await {
            Ok(user) => user,
            Err(_) => state.store.create_user("alice").await.unwrap(),
        };
        let token = state.store.create_token(user.id, "test").await.unwrap().secret;
        let response = reqwest::Client::new()
            .post(format!("{api}/api/tasks"))
            .bearer_auth(&token)
            .json(&json!({"repository": url, "prompt": "p"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let message = response.text().await.unwrap();
        assert!(message.contains(expected), "{expected}: {message}");
        assert!(!message.contains(TOKEN) && !message.contains("wrong-token-1234"), "{message}");
        let tasks = state.store.list_tasks(user.id, errand_store::Page::first(10)).await.unwrap();
        assert!(tasks.is_empty(), "nothing stored");
    }
}
