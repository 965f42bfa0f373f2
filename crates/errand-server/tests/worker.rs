//! The worker runtime against a SQLite store, real bubblewrap and the scripted model: attempts
//! leased, run and stored (before `finished` is visible); two workers racing; a worker killed
//! mid-attempt; a cancel; a message sent to a running attempt.

mod common;

use std::sync::Arc;

use common::watched::watched;
use common::{
    GatedModel, RoutedModel, World, assert_complete_log, kinds, sandbox_available, stalled_model,
    writing_models,
};
use errand_protocol::{AttemptState, EventKind};
use errand_server::Worker;
use errand_store::{ArtifactKind, Scope};
use errand_testkit::{Script, ScriptedModel, wait_until};
use tokio::sync::oneshot;

/// Runs `worker` in a task until the returned sender is used (or dropped).
fn start(worker: Worker) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        Arc::new(worker)
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, handle)
}

fn running_count(events: &[errand_protocol::Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StateChanged { state: AttemptState::Running, .. }))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_every_attempt_of_a_task_and_stores_its_results() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let (first, after) = writing_models(3).await;
    let model = Arc::new(RoutedModel::new(&first, &after));
    let (_task, attempts) = world.task(3).await;
    let watched = Arc::new(watched(world.store.clone()));
    let mut worker = world.worker("worker-a", model, 2);
    worker.store = watched.clone();
    let (stop, handle) = start(worker);

    for &attempt in &attempts {
        wait_until("every attempt to finish", || async {
            let a = world.store.get_attempt(Scope::System, attempt).await.unwrap();
            a.state.is_terminal()
        })
        .await;
    }
    for &attempt in &attempts {
        let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
        let events = world.events(attempt).await;
        assert_eq!(stored.state, AttemptState::Succeeded, "{:?} {:?}", stored, kinds(&events));
        assert_complete_log(&events);
        assert_eq!(stored.last_seq, events.len() as u64);
        let kinds = kinds(&events);
        for kind in ["sandbox_ready", "command_finished", "diff_ready", "report_ready"] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} missing: {kinds:?}");
        }
        let diff = world.store.get_artifact(Scope::System, attempt, ArtifactKind::Diff).await;
        let diff = diff.unwrap().expect("a diff artifact");
        assert!(diff.contains("+++ b/result.txt") && diff.contains("+done"), "{diff}");
        let report = world.store.get_artifact(Scope::System, attempt, ArtifactKind::Report).await;
        let report: serde_json::Value = serde_json::from_str(&report.unwrap().unwrap()).unwrap();
        assert_eq!(report["title"], "Write result.txt", "{report}");
        let conversation =
            world.store.get_artifact(Scope::System, attempt, ArtifactKind::Conversation).await;
        let conversation = conversation.unwrap().expect("a conversation artifact");
        assert!(conversation.contains("echo done > result.txt"), "{conversation}");
        // A client that reacts to `finished` finds the results.
        let at_finished = watched.observer().artifacts_at_finished(attempt);
        let all = [ArtifactKind::Diff, ArtifactKind::Report, ArtifactKind::Conversation];
        assert_eq!(at_finished.as_deref(), Some(&all[..]));
        assert!(!world.attempt_dir(attempt).exists(), "the sandbox is removed");
    }
    first.verify().unwrap();
    after.verify().unwrap();
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_racing_never_run_an_attempt_twice() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let (first, after) = writing_models(4).await;
    let model = Arc::new(RoutedModel::new(&first, &after));
    let (_task, attempts) = world.task(4).await;
    let (stop_a, a) = start(world.worker("worker-a", model.clone(), 2));
    let (stop_b, b) = start(world.worker("worker-b", model, 2));

    for &attempt in &attempts {
        wait_until("every attempt to finish", || async {
            let a = world.store.get_attempt(Scope::System, attempt).await.unwrap();
            a.state.is_terminal()
        })
        .await;
    }
    for &attempt in &attempts {
        let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
        let events = world.events(attempt).await;
        assert_eq!(stored.state, AttemptState::Succeeded, "{:?}", kinds(&events));
        assert_complete_log(&events);
        assert_eq!(running_count(&events), 1, "ran once: {:?}", kinds(&events));
        let sandboxes = events.iter().filter(|e| matches!(e.kind, EventKind::SandboxReady { .. }));
        assert_eq!(sandboxes.count(), 1, "{:?}", kinds(&events));
    }
    // Exactly two model turns per attempt: no attempt's agent ran twice.
    first.verify().unwrap();
    after.verify().unwrap();
    assert_eq!(first.requests().len() + after.requests().len(), 8);
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    a.await.unwrap();
    b.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_attempt_is_recovered_as_interrupted_and_its_leftovers_removed() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let stalled = stalled_model().await;
    let model = Arc::new(RoutedModel::new(&stalled, &stalled));
    let (_task, attempts) = world.task(1).await;
    let attempt = attempts[0];
    let (_stop, handle) = start(world.worker("worker-killed", model.clone(), 1));
    wait_until("the agent to wait on the model", || async { !stalled.requests().is_empty() }).await;
    let before = world.events(attempt).await;
    assert_eq!(running_count(&before), 1, "{:?}", kinds(&before));

    // Killed: the worker's future is dropped with its attempt's, nothing runs its cleanup.
    handle.abort();
    assert!(handle.await.unwrap_err().is_cancelled());
    let leftover = world.attempt_dir(attempt);
    assert!(leftover.exists(), "a killed worker leaves its sandbox directory");

    // Once the lease has expired, recovery fails the attempt, keeping what was recorded.
    wait_until("the lease to expire and be recovered", || async {
        world.store.recover_expired(errand_store::now_ms()).await.unwrap();
        let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
        stored.state.is_terminal()
    })
    .await;
    let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
    assert_eq!(stored.state, AttemptState::Failed);
    assert_eq!(stored.reason.as_deref(), Some(errand_server::INTERRUPTED));
    let after = world.events(attempt).await;
    assert_complete_log(&after);
    assert_eq!(after[..before.len()], before[..], "every earlier event is kept");

    // The next worker on this machine removes the leftover directory.
    let (stop, handle) = start(world.worker("worker-next", model, 1));
    wait_until("the leftover to be removed", || async { !leftover.exists() }).await;
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_stops_a_running_attempt_as_cancelled() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let stalled = stalled_model().await;
    let model = Arc::new(RoutedModel::new(&stalled, &stalled));
    let (_task, attempts) = world.task(1).await;
    let attempt = attempts[0];
    let (stop, handle) = start(world.worker("worker-c", model, 1));
    wait_until("the agent to wait on the model", || async { !stalled.requests().is_empty() }).await;

    let now = world.store.request_cancel(Scope::System, attempt, "changed my mind").await.unwrap();
    assert!(now.cancel_requested, "{now:?}");
    wait_until("the attempt to stop", || async {
        let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
        stored.state.is_terminal()
    })
    .await;
    let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
    assert_eq!(stored.state, AttemptState::Cancelled);
    let events = world.events(attempt).await;
    assert_complete_log(&events);
    assert_eq!(running_count(&events), 1, "{:?}", kinds(&events));
    assert!(!world.attempt_dir(attempt).exists(), "the sandbox is removed");
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_then_interrupts_what_is_still_running() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let stalled = stalled_model().await;
    let model = Arc::new(RoutedModel::new(&stalled, &stalled));
    let (_task, attempts) = world.task(1).await;
    let attempt = attempts[0];
    let mut worker = world.worker("worker-d", model, 1);
    worker.drain_timeout = std::time::Duration::from_millis(200);
    let (stop, handle) = start(worker);
    wait_until("the agent to wait on the model", || async { !stalled.requests().is_empty() }).await;

    stop.send(()).unwrap();
    handle.await.unwrap();
    let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
    assert_eq!(stored.state, AttemptState::Failed);
    assert_eq!(stored.reason.as_deref(), Some(errand_server::INTERRUPTED));
    assert_complete_log(&world.events(attempt).await);
    assert!(!world.attempt_dir(attempt).exists(), "the sandbox is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_attempt_was_taken_back_stops_it_and_records_nothing_more() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let stalled = stalled_model().await;
    let model = Arc::new(RoutedModel::new(&stalled, &stalled));
    let (_task, attempts) = world.task(1).await;
    let attempt = attempts[0];
    let (stop, handle) = start(world.worker("worker-slow", model, 1));
    wait_until("the agent to wait on the model", || async { !stalled.requests().is_empty() }).await;

    // As if the worker had missed its heartbeats: recovery (by anyone) takes the attempt back.
    let later = errand_store::now_ms() + 3_600_000;
    let recovered = world.store.recover_expired(later).await.unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let recorded = world.events(attempt).await;
    assert_complete_log(&recorded);

    // Its next heartbeat tells the worker, which stops the attempt and removes its sandbox.
    wait_until("the worker to let go", || async { !world.attempt_dir(attempt).exists() }).await;
    assert_eq!(world.events(attempt).await, recorded, "nothing appended after recovery");
    let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
    assert_eq!(stored.reason.as_deref(), Some(errand_server::INTERRUPTED));
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_to_a_running_attempt_reaches_its_next_turn() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let script = r#"
[[turns]]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["sh", "-c", "echo done > result.txt"] }

[[turns]]
expect.last_user_message_contains = ["say hello in the report"]
[[turns.output]]
type = "message"
text = "Write result.txt\n\nWrote `result.txt`. Hello!"
"#;
    let scripted = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let model = Arc::new(GatedModel::new(RoutedModel::new(&scripted, &scripted)));
    let (_task, attempts) = world.task(1).await;
    let attempt = attempts[0];
    let (stop, handle) = start(world.worker("worker-m", model.clone(), 1));
    wait_until("the agent to wait on the model", || async { model.arrived() }).await;

    let running = world.store.get_attempt(Scope::System, attempt).await.unwrap();
    assert_eq!(running.state, AttemptState::Running);
    world.store.enqueue_message(Scope::System, attempt, "say hello in the report").await.unwrap();
    model.open();
    wait_until("the attempt to finish", || async {
        let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
        stored.state.is_terminal()
    })
    .await;
    let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
    let events = world.events(attempt).await;
    assert_eq!(stored.state, AttemptState::Succeeded, "{:?} {:?}", stored.reason, kinds(&events));
    assert_complete_log(&events);
    let delivered: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::UserMessage { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, ["say hello in the report"], "{:?}", kinds(&events));
    assert!(world.store.take_messages(attempt).await.unwrap().is_empty(), "taken once");
    scripted.verify().unwrap();
    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// Runs `worker` until `attempt` is terminal, then stops it.
async fn run_until_done(world: &World, worker: Worker, attempt: errand_protocol::AttemptId) {
    let (stop, handle) = start(worker);
    wait_until("the attempt to finish", || async {
        let stored = world.store.get_attempt(Scope::System, attempt).await.unwrap();
        stored.state.is_terminal()
    })
    .await;
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_starts_from_its_parents_changes_and_conversation() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let (first, after) = writing_models(1).await;
    let (task, attempts) = world.task(1).await;
    let parent = attempts[0];
    let model = Arc::new(RoutedModel::new(&first, &after));
    run_until_done(&world, world.worker("worker-p", model, 1), parent).await;
    let stored = world.store.get_attempt(Scope::System, parent).await.unwrap();
    assert_eq!(stored.state, AttemptState::Succeeded, "{:?}", stored.reason);

    // The follow-up continues the parent's conversation (its task and its answer are in the
    // request) and finds the parent's file in the workspace.
    let script = r#"
[[turns]]
expect.request_contains = ["write result.txt", "Wrote `result.txt` with one line."]
expect.last_user_message_contains = ["also write second.txt"]
[[turns.output]]
type = "function_call"
name = "shell"
arguments = { command = ["sh", "-c", "cat result.txt && echo second > second.txt"] }

[[turns]]
expect.last_tool_output_contains = ["Exit code: 0", "Output:\ndone"]
[[turns.output]]
type = "message"
text = "Add second.txt\n\nresult.txt says `done`; added second.txt."
"#;
    let scripted = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let model = Arc::new(RoutedModel::new(&scripted, &scripted));
    let followup =
        world.store.create_followup(task.user_id, parent, "also write second.txt").await.unwrap();
    run_until_done(&world, world.worker("worker-f", model, 1), followup.id).await;

    let stored = world.store.get_attempt(Scope::System, followup.id).await.unwrap();
    let events = world.events(followup.id).await;
    assert_eq!(stored.state, AttemptState::Succeeded, "{:?} {:?}", stored.reason, kinds(&events));
    assert_complete_log(&events);
    scripted.verify().unwrap();
    let started = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::FollowupStarted { parent, files, prompt } => Some((parent, files, prompt)),
            _ => None,
        })
        .expect("a follow_up_started event");
    assert_eq!(*started.0, parent);
    let paths: Vec<&str> = started.1.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["result.txt"]);
    assert_eq!(started.2, "also write second.txt");
    let order = kinds(&events);
    let at = |kind: &str| order.iter().position(|k| k == kind).unwrap();
    assert!(at("sandbox_ready") < at("followup_started"), "{order:?}");
    assert!(at("followup_started") < at("turn_started"), "{order:?}");
    assert!(!order.contains(&"instructions_loaded".to_string()), "not loaded twice: {order:?}");

    // Cumulative against the base commit; the report is the follow-up's.
    let diff = world.store.get_artifact(Scope::System, followup.id, ArtifactKind::Diff).await;
    let diff = diff.unwrap().expect("a diff artifact");
    assert!(diff.contains("+++ b/result.txt") && diff.contains("+done"), "{diff}");
    assert!(diff.contains("+++ b/second.txt") && diff.contains("+second"), "{diff}");
    let report = world.store.get_artifact(Scope::System, followup.id, ArtifactKind::Report).await;
    let report: serde_json::Value = serde_json::from_str(&report.unwrap().unwrap()).unwrap();
    assert_eq!(report["title"], "Add second.txt", "{report}");
    assert!(!world.attempt_dir(followup.id).exists(), "the sandbox is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_of_a_parent_that_never_ran_starts_over_with_both_prompts() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let (task, attempts) = world.task(1).await;
    let parent = attempts[0];
    // Cancelled while queued: no diff, no conversation.
    world.store.request_cancel(Scope::System, parent, "not now").await.unwrap();
    let script = r#"
[[turns]]
expect.last_user_message_contains = ["write result.txt", "and make it loud"]
expect.request_contains = ["<environment>"]
[[turns.output]]
type = "message"
text = "Nothing to do\n\nresult.txt was never written; nothing changed."
"#;
    let scripted = ScriptedModel::start(Script::from_toml(script).unwrap()).await.unwrap();
    let model = Arc::new(RoutedModel::new(&scripted, &scripted));
    let followup =
        world.store.create_followup(task.user_id, parent, "and make it loud").await.unwrap();
    run_until_done(&world, world.worker("worker-n", model, 1), followup.id).await;

    let stored = world.store.get_attempt(Scope::System, followup.id).await.unwrap();
    let events = world.events(followup.id).await;
    assert_eq!(stored.state, AttemptState::Succeeded, "{:?} {:?}", stored.reason, kinds(&events));
    scripted.verify().unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind,
        EventKind::FollowupStarted { files, prompt, .. }
            if files.is_empty() && prompt == "and make it loud")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_whose_parent_diff_does_not_apply_fails_saying_so() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let (task, attempts) = world.task(1).await;
    let parent = attempts[0];
    world.store.request_cancel(Scope::System, parent, "not now").await.unwrap();
    // A diff made against some other README.md.
    let stale = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n\
                 @@ -1 +1 @@\n-A different first line.\n+A changed first line.\n";
    world.store.put_artifact(parent, ArtifactKind::Diff, stale).await.unwrap();
    let stalled = stalled_model().await;
    let model = Arc::new(RoutedModel::new(&stalled, &stalled));
    let followup = world.store.create_followup(task.user_id, parent, "go on").await.unwrap();
    run_until_done(&world, world.worker("worker-s", model, 1), followup.id).await;

    let stored = world.store.get_attempt(Scope::System, followup.id).await.unwrap();
    let events = world.events(followup.id).await;
    assert_eq!(stored.state, AttemptState::Failed, "{:?}", kinds(&events));
    let reason = stored.reason.unwrap();
    assert!(reason.contains("the parent attempt's diff does not apply"), "{reason}");
    assert!(reason.contains("README.md"), "git apply's words are kept: {reason}");
    assert_complete_log(&events);
    assert!(stalled.requests().is_empty(), "the agent never ran");
    assert!(!world.attempt_dir(followup.id).exists(), "the sandbox is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environments_setup_runs_for_a_workers_attempt_and_its_log_is_kept_redacted() {
    if !sandbox_available() {
        return;
    }
    let world = World::new().await;
    let (first, after) = writing_models(1).await;
    let model = Arc::new(RoutedModel::new(&first, &after));
    let user = world.store.create_user("alice").await.unwrap();
    let document = serde_json::json!({
        "setup_script": "echo setting up with $TOKEN",
        "secrets": {"TOKEN": "hunter2-the-secret"},
    });
    let config = errand_sandbox::stored_document(document).unwrap();
    let env = world.store.create_environment(user.id, "web", &config).await.unwrap();
    let new = errand_store::NewTask {
        environment_id: Some(env.id),
        repository: world.repo.display().to_string(),
        git_ref: "main".into(),
        base_commit: None,
        prompt: "write result.txt".into(),
        mode: errand_store::TaskMode::Code,
        attempts: 1,
    };
    let (_task, attempts) = world.store.create_task(user.id, new).await.unwrap();
    let mut worker = world.worker("worker-env", model, 1);
    worker.environments =
        Some(Arc::new(errand_server::StoreEnvironments::new(world.store.clone())));
    let (stop, handle) = start(worker);
    wait_until("the attempt to finish", || async {
        world.store.get_attempt(Scope::System, attempts[0].id).await.unwrap().state.is_terminal()
    })
    .await;
    // The worker saves the setup log after the attempt's last event: drained, it has.
    stop.send(()).unwrap();
    handle.await.unwrap();
    let events = world.events(attempts[0].id).await;
    let stored = world.store.get_attempt(Scope::System, attempts[0].id).await.unwrap();
    assert_eq!(stored.state, AttemptState::Succeeded, "{:?}", kinds(&events));
    let logs = world.store.environment_logs(user.id, env.id, 5).await.unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!((logs[0].phase.as_str(), logs[0].exit_code), ("setup", Some(0)));
    assert!(logs[0].content.contains("setting up with"), "{}", logs[0].content);
    assert!(!logs[0].content.contains("hunter2-the-secret"), "{}", logs[0].content);
}
