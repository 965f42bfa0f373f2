//! schemathesis (from PyPI, pinned in `tests/schemathesis/requirements.txt`) generates requests
//! from `/api/openapi.json` — valid, invalid and hostile ones, alone and chained — against the
//! real API over a real store, and checks every answer: no 5xx, every status and body as the
//! document says, bad input refused, auth enforced. Only "schema-valid data is accepted" is left
//! out: the API checks more than a schema can say (a repository must exist, a ref must resolve).

#[allow(dead_code)]
mod common;

use std::path::Path;

use common::World;
use errand_server::api::{ApiConfig, AppState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let requirements =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/requirements.txt");
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let Some(python) = errand_testkit::python::pinned_venv(&requirements, parent).await else {
        return;
    };
    let world = World::new().await;
    let state = AppState::new(world.store.clone(), ApiConfig::default());
    let user = state.store.create_user("fuzz").await.unwrap();
    let token = state.store.create_token(user.id, "schemathesis").await.unwrap().secret;
    // Something for the generated requests to find besides 404s.
    let env = serde_json::json!({"setup_script": "true"}).to_string();
    state.store.create_environment(user.id, "web", &env).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(errand_server::api::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let mut command = tokio::process::Command::new(python);
    command
        .args(["-m", "schemathesis.cli", "run", &format!("{url}/api/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "25", "--seed", "1"])
        // Revoking the one token would leave nothing else to test.
        .args(["--exclude-path", "/api/tokens/{id}"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(world.dir.path());
    // Loopback only: a proxy from the environment must not see the requests.
    for proxy in ["http_proxy", "https_proxy", "all_proxy"] {
        command.env_remove(proxy).env_remove(proxy.to_uppercase());
    }
    let out = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
