//! One suite, two backends: every test below runs as `sqlite::<name>` against a fresh SQLite
//! file and as `postgres::<name>` against a fresh database on a PostgreSQL server this test
//! process starts (errand_testkit::postgres). Without PostgreSQL the `postgres::` tests fail under
//! `CI` and are skipped, with the reason printed, elsewhere.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use errand_protocol::{AttemptId, AttemptOutcome, AttemptState, EventKind};
use errand_store::{
    ArtifactKind, Attempt, ConflictKind, NewEnvironmentLog, NewTask, Page, Scope, Store,
    StoreError, Task, TaskMode, User, now_ms,
};

/// A store under test and how to reach it again.
struct Backend {
    store: Arc<dyn Store>,
    url: String,
    sqlite_file: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data").join("errand.db");
    let url = format!("sqlite://{}", file.display());
    let store = errand_store::open(&url).await.unwrap();
    Backend { store, url, sqlite_file: Some(file), _dir: Some(dir) }
}

async fn postgres_backend() -> Option<Backend> {
    let url = errand_testkit::postgres::database_or_skip().await?;
    let store = errand_store::open(&url).await.unwrap();
    Some(Backend { store, url, sqlite_file: None, _dir: None })
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::sqlite_backend().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(backend) = super::postgres_backend().await {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}

suite!(
    token_auth,
    user_isolation,
    environments_are_named_per_user,
    environment_logs_keep_the_newest_and_go_with_their_environment,
    tasks_list_newest_first_by_cursor,
    bad_task_input_is_refused_and_leaves_nothing,
    concurrent_appenders_get_consecutive_seqs,
    events_after_is_exact,
    invalid_transitions_are_refused,
    two_workers_lease_each_attempt_once,
    renew_fails_after_expiry_and_recovery,
    recovery_requeues_unstarted_and_fails_running,
    messages_are_delivered_once_in_order,
    cancel_and_follow_up,
    artifacts_round_trip,
    counts_for_limits,
    delete_task_cascades_but_not_while_running,
    reopen_keeps_data_and_migrations_are_idempotent,
    a_tasks_pull_request_is_one_row_updated_in_place,
    deliveries_are_handled_once_and_triggers_wait_until_reported,
    a_pick_is_a_finished_attempt_of_the_users_own_task,
);

fn new_task(attempts: u32) -> NewTask {
    NewTask {
        environment_id: None,
        repository: "https://example.invalid/repo.git".into(),
        git_ref: "main".into(),
        base_commit: None,
        prompt: "Fix the failing test".into(),
        mode: TaskMode::Code,
        attempts,
    }
}

async fn user(store: &dyn Store, name: &str) -> User {
    store.create_user(name).await.unwrap()
}

async fn task(store: &dyn Store, user: &User, attempts: u32) -> (Task, Vec<Attempt>) {
    store.create_task(user.id, new_task(attempts)).await.unwrap()
}

fn conflict_kind(err: StoreError) -> ConflictKind {
    match err {
        StoreError::Conflict { kind, .. } => kind,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn is_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound(_)))
}

/// Leases the given attempt (it must be the oldest queued one) and moves it to `running`.
async fn start_running(store: &dyn Store, worker: &str) -> Attempt {
    let (attempt, _) = store.lease_next(worker, Duration::from_secs(60)).await.unwrap().unwrap();
    store.transition(attempt.id, AttemptState::Running, None).await.unwrap();
    store.get_attempt(Scope::System, attempt.id).await.unwrap()
}

async fn all_events(store: &dyn Store, attempt: AttemptId) -> Vec<errand_protocol::Event> {
    store.events_after(Scope::System, attempt, 0, 10_000).await.unwrap()
}

fn agent_message(n: usize) -> EventKind {
    EventKind::AgentMessage { text: format!("message {n}") }
}

async fn token_auth(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let created = store.create_token(alice.id, "laptop").await.unwrap();
    assert!(created.secret.starts_with("errand_"));
    assert!(!format!("{created:?}").contains(&created.secret), "Debug must hide the secret");

    assert_eq!(store.authenticate(&created.secret).await.unwrap(), Some(alice.clone()));
    let wrong = format!("{}0", &created.secret[..created.secret.len() - 1]);
    let wrong = if wrong == created.secret { wrong.replace('0', "1") } else { wrong };
    assert_eq!(store.authenticate(&wrong).await.unwrap(), None);
    assert_eq!(store.authenticate("").await.unwrap(), None);
    assert_eq!(store.authenticate("Bearer nonsense").await.unwrap(), None);

    // Bob cannot revoke Alice's token; Alice can, and it stops working.
    assert!(is_not_found(store.revoke_token(bob.id, created.token.id).await));
    assert_eq!(store.authenticate(&created.secret).await.unwrap(), Some(alice.clone()));
    store.revoke_token(alice.id, created.token.id).await.unwrap();
    store.revoke_token(alice.id, created.token.id).await.unwrap();
    assert_eq!(store.authenticate(&created.secret).await.unwrap(), None);
    let tokens = store.list_tokens(alice.id).await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].revoked_at_ms.is_some());
    assert!(store.list_tokens(bob.id).await.unwrap().is_empty());

    let other = store.create_token(alice.id, "ci").await.unwrap();
    assert_eq!(store.authenticate(&other.secret).await.unwrap(), Some(alice));

    if let Some(file) = &b.sqlite_file {
        drop(b.store);
        let mut bytes = std::fs::read(file).unwrap();
        for extra in ["-wal", "-shm"] {
            let mut path = file.clone().into_os_string();
            path.push(extra);
            bytes.extend(std::fs::read(&path).unwrap_or_default());
        }
        for secret in [&created.secret, &other.secret] {
            let hex = &secret["errand_".len()..];
            assert!(
                !bytes.windows(hex.len()).any(|w| w == hex.as_bytes()),
                "a token's plain text is in the database file"
            );
        }
    }
}

async fn user_isolation(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    assert_eq!(
        conflict_kind(store.create_user("alice").await.unwrap_err()),
        ConflictKind::AlreadyExists
    );
    let env = store.create_environment(alice.id, "default", "{}").await.unwrap();
    let (task, attempts) = task(store, &alice, 2).await;
    let attempt = attempts[0].id;
    store.append_event(attempt, &agent_message(1)).await.unwrap();
    store.put_artifact(attempt, ArtifactKind::Diff, "diff --git").await.unwrap();
    let as_bob = Scope::User(bob.id);

    assert!(is_not_found(store.get_task(as_bob, task.id).await));
    assert!(store.list_tasks(bob.id, Page::first(50)).await.unwrap().is_empty());
    assert!(is_not_found(store.list_attempts(as_bob, task.id).await));
    assert!(is_not_found(store.get_attempt(as_bob, attempt).await));
    assert!(is_not_found(store.events_after(as_bob, attempt, 0, 100).await));
    assert!(is_not_found(store.get_artifact(as_bob, attempt, ArtifactKind::Diff).await));
    assert!(is_not_found(store.enqueue_message(as_bob, attempt, "hi").await));
    assert!(is_not_found(store.request_cancel(as_bob, attempt, "mine now").await));
    assert!(is_not_found(store.create_followup(bob.id, attempt, "more").await));
    assert!(is_not_found(store.delete_task(bob.id, task.id).await));
    assert!(is_not_found(store.get_environment(bob.id, env.id).await));
    assert!(is_not_found(store.environment_by_name(bob.id, "default").await));
    assert!(store.list_environments(bob.id).await.unwrap().is_empty());
    assert!(is_not_found(store.update_environment(bob.id, env.id, "[]").await));
    assert!(is_not_found(store.delete_environment(bob.id, env.id).await));
    let mut bobs = new_task(1);
    bobs.environment_id = Some(env.id);
    assert!(is_not_found(store.create_task(bob.id, bobs).await));

    // Alice's data is untouched and visible to her.
    let as_alice = Scope::User(alice.id);
    assert_eq!(store.get_task(as_alice, task.id).await.unwrap(), task);
    assert_eq!(store.list_attempts(as_alice, task.id).await.unwrap().len(), 2);
    assert_eq!(store.events_after(as_alice, attempt, 0, 100).await.unwrap().len(), 1);
    assert_eq!(store.get_attempt(as_alice, attempt).await.unwrap().state, AttemptState::Queued);
    assert_eq!(store.get_environment(alice.id, env.id).await.unwrap(), env);
}

async fn environments_are_named_per_user(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let env = store.create_environment(alice.id, "py", r#"{"setup":"pip install"}"#).await.unwrap();
    let err = store.create_environment(alice.id, "py", "{}").await.unwrap_err();
    assert_eq!(conflict_kind(err), ConflictKind::AlreadyExists);
    store.create_environment(bob.id, "py", "{}").await.unwrap();
    assert!(matches!(
        store.create_environment(alice.id, "bad", "{not json").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.create_environment(alice.id, " ", "{}").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.update_environment(alice.id, env.id, "nope").await,
        Err(StoreError::Invalid(_))
    ));
    let names: Vec<_> =
        store.list_environments(alice.id).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["py"], "refused input must leave nothing behind");

    let updated =
        store.update_environment(alice.id, env.id, r#"{"setup":"uv sync"}"#).await.unwrap();
    assert_ne!(updated.config_hash, env.config_hash);
    assert_eq!(updated.config_json, r#"{"setup":"uv sync"}"#);
    assert!(updated.updated_at_ms >= env.updated_at_ms);
    assert_eq!(store.environment_by_name(alice.id, "py").await.unwrap(), updated);

    // In use by a task: kept. Unused: deleted.
    let mut t = new_task(1);
    t.environment_id = Some(env.id);
    store.create_task(alice.id, t).await.unwrap();
    let err = store.delete_environment(alice.id, env.id).await.unwrap_err();
    assert_eq!(conflict_kind(err), ConflictKind::InUse);
    let spare = store.create_environment(alice.id, "spare", "{}").await.unwrap();
    store.delete_environment(alice.id, spare.id).await.unwrap();
    assert!(is_not_found(store.get_environment(alice.id, spare.id).await));
}

async fn environment_logs_keep_the_newest_and_go_with_their_environment(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let env = store.create_environment(alice.id, "py", "{}").await.unwrap();
    let log = |n: u32| NewEnvironmentLog {
        phase: if n == 0 { "setup" } else { "maintenance" }.into(),
        snapshot: Some(format!("snap-{n}")),
        exit_code: if n == 1 { None } else { Some(n as i32) },
        duration_ms: 40,
        content: format!("run {n}\n"),
    };
    assert!(store.environment_logs(alice.id, env.id, 5).await.unwrap().is_empty());
    let first = store.add_environment_log(alice.id, env.id, log(0)).await.unwrap();
    assert_eq!((first.phase.as_str(), first.exit_code), ("setup", Some(0)));
    assert_eq!(store.environment_logs(alice.id, env.id, 5).await.unwrap(), vec![first.clone()]);

    // Another user's environment is not found, for writing and reading alike, and gets nothing.
    assert!(is_not_found(store.add_environment_log(bob.id, env.id, log(9)).await));
    assert!(is_not_found(store.environment_logs(bob.id, env.id, 5).await));
    assert!(matches!(
        store
            .add_environment_log(
                alice.id,
                env.id,
                NewEnvironmentLog { phase: " ".into(), ..log(3) }
            )
            .await,
        Err(StoreError::Invalid(_))
    ));

    let kept = NewEnvironmentLog::KEPT_PER_ENVIRONMENT;
    for n in 1..=kept {
        store.add_environment_log(alice.id, env.id, log(n)).await.unwrap();
    }
    let logs = store.environment_logs(alice.id, env.id, 1000).await.unwrap();
    assert_eq!(logs.len(), kept as usize, "only the newest are kept");
    assert_eq!(logs[0].content, format!("run {kept}\n"), "newest first");
    assert!(logs.iter().all(|l| l.id != first.id), "the oldest was dropped");
    assert!(logs.windows(2).all(|w| w[0].id > w[1].id));
    let none = logs.iter().find(|l| l.content == "run 1\n").unwrap();
    assert_eq!(none.exit_code, None);
    assert_eq!(store.environment_logs(alice.id, env.id, 2).await.unwrap().len(), 2);

    store.delete_environment(alice.id, env.id).await.unwrap();
    assert!(is_not_found(store.environment_logs(alice.id, env.id, 5).await));
    // A new environment of the same name starts without the old one's logs.
    let again = store.create_environment(alice.id, "py", "{}").await.unwrap();
    assert!(store.environment_logs(alice.id, again.id, 5).await.unwrap().is_empty());
}

async fn tasks_list_newest_first_by_cursor(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(task(store, &alice, 1).await.0);
    }
    created.reverse();
    let mut seen = Vec::new();
    let mut page = Page::first(3);
    loop {
        let tasks = store.list_tasks(alice.id, page).await.unwrap();
        if tasks.is_empty() {
            break;
        }
        page.before = Some(tasks.last().unwrap().id);
        seen.extend(tasks);
    }
    assert_eq!(seen, created);
    assert!(matches!(
        store.list_tasks(alice.id, Page::first(0)).await,
        Err(StoreError::Invalid(_))
    ));
    let (t, attempts) = task(store, &alice, 3).await;
    assert_eq!(attempts.iter().map(|a| a.index).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(attempts.iter().all(|a| a.state == AttemptState::Queued && a.lease.is_none()));
    assert_eq!(store.list_attempts(Scope::System, t.id).await.unwrap(), attempts);
    let with_commit = store.set_base_commit(t.id, "abc123").await.unwrap();
    assert_eq!(with_commit.base_commit.as_deref(), Some("abc123"));
    store.set_base_commit(t.id, "abc123").await.unwrap();
    let err = store.set_base_commit(t.id, "def456").await.unwrap_err();
    assert_eq!(conflict_kind(err), ConflictKind::InvalidTransition);
}

async fn bad_task_input_is_refused_and_leaves_nothing(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let mut bad = Vec::new();
    for attempts in [0, 9] {
        bad.push(NewTask { attempts, ..new_task(1) });
    }
    bad.push(NewTask { prompt: "  ".into(), ..new_task(1) });
    bad.push(NewTask { repository: String::new(), ..new_task(1) });
    bad.push(NewTask { prompt: "x".repeat(NewTask::MAX_PROMPT_BYTES + 1), ..new_task(1) });
    for input in bad {
        assert!(matches!(store.create_task(alice.id, input).await, Err(StoreError::Invalid(_))));
    }
    let unknown_env = NewTask { environment_id: Some(Default::default()), ..new_task(1) };
    assert!(is_not_found(store.create_task(alice.id, unknown_env).await));
    assert!(store.list_tasks(alice.id, Page::first(10)).await.unwrap().is_empty());
    assert_eq!(store.attempt_counts(None).await.unwrap().queued, 0);
}

async fn concurrent_appenders_get_consecutive_seqs(b: Backend) {
    let alice = user(&*b.store, "alice").await;
    let (_, attempts) = task(&*b.store, &alice, 1).await;
    let attempt = attempts[0].id;
    const APPENDERS: usize = 16;
    const EACH: usize = 25;
    let mut handles = Vec::new();
    for appender in 0..APPENDERS {
        let store = b.store.clone();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let event = store.append_event(attempt, &agent_message(appender * 1000 + i)).await;
                seqs.push(event.unwrap().seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for handle in handles {
        let mine = handle.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "one appender's seqs increase");
        seqs.extend(mine);
    }
    seqs.sort_unstable();
    let total = (APPENDERS * EACH) as u64;
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    let stored = all_events(&*b.store, attempt).await;
    assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(b.store.get_attempt(Scope::System, attempt).await.unwrap().last_seq, total);
}

async fn events_after_is_exact(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let (_, attempts) = task(store, &alice, 1).await;
    let attempt = attempts[0].id;
    let mut appended = Vec::new();
    for n in 0..50 {
        appended.push(store.append_event(attempt, &agent_message(n)).await.unwrap());
    }
    // A client reading in pages of 7 and resuming from the last seq it saw gets every event once.
    let mut read = Vec::new();
    let mut last = 0;
    loop {
        let page = store.events_after(Scope::User(alice.id), attempt, last, 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        last = page.last().unwrap().seq;
        read.extend(page);
    }
    assert_eq!(read, appended);
    let tail = store.events_after(Scope::System, attempt, 47, 100).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [48, 49, 50]);
    assert!(store.events_after(Scope::System, attempt, 50, 100).await.unwrap().is_empty());
    assert!(store.events_after(Scope::System, attempt, u64::MAX, 100).await.unwrap().is_empty());
    assert!(matches!(
        store.events_after(Scope::System, attempt, 0, 0).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(is_not_found(store.events_after(Scope::System, AttemptId::new(), 0, 10).await));
    assert!(is_not_found(store.append_event(AttemptId::new(), &agent_message(0)).await));
}

async fn invalid_transitions_are_refused(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let (_, attempts) = task(store, &alice, 1).await;
    let id = attempts[0].id;
    let refused = |result: Result<errand_protocol::Event, StoreError>| {
        assert_eq!(conflict_kind(result.unwrap_err()), ConflictKind::InvalidTransition);
    };
    refused(store.transition(id, AttemptState::Running, None).await);
    refused(store.transition(id, AttemptState::Preparing, None).await);
    refused(store.transition(id, AttemptState::Succeeded, None).await);
    let finished =
        |state| EventKind::Finished { outcome: AttemptOutcome { state, reason: "x".into() } };
    refused(store.append_event(id, &finished(AttemptState::Succeeded)).await);
    assert!(all_events(store, id).await.is_empty(), "refusals write nothing");
    assert_eq!(store.get_attempt(Scope::System, id).await.unwrap().state, AttemptState::Queued);

    let running = start_running(store, "w1").await;
    assert_eq!(running.state, AttemptState::Running);
    assert!(running.started_at_ms.is_some() && running.lease.is_some());
    refused(store.transition(id, AttemptState::Preparing, None).await);
    refused(store.transition(id, AttemptState::Queued, None).await);
    let done = store.transition(id, AttemptState::Succeeded, Some("all tests pass")).await.unwrap();
    assert_eq!(done.seq, 3);
    let after = store.get_attempt(Scope::System, id).await.unwrap();
    assert_eq!(after.state, AttemptState::Succeeded);
    assert_eq!(after.reason.as_deref(), Some("all tests pass"));
    assert!(after.finished_at_ms.is_some());
    assert!(after.lease.is_none(), "terminal attempts hold no lease");
    for to in [AttemptState::Running, AttemptState::Failed, AttemptState::Queued] {
        refused(store.transition(id, to, None).await);
    }
    refused(store.append_event(id, &finished(AttemptState::Failed)).await);
    // Events may follow the terminal state until `finished` closes the log.
    store.append_event(id, &agent_message(1)).await.unwrap();
    let last = store.append_event(id, &finished(AttemptState::Succeeded)).await.unwrap();
    assert_eq!(last.seq, 5);
    let err = store.append_event(id, &agent_message(2)).await.unwrap_err();
    assert_eq!(conflict_kind(err), ConflictKind::LogClosed);
    let kinds: Vec<_> = all_events(store, id).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 5);
    assert_eq!(kinds[0], EventKind::StateChanged { state: AttemptState::Preparing, reason: None });
    assert_eq!(kinds[1], EventKind::StateChanged { state: AttemptState::Running, reason: None });
}

async fn two_workers_lease_each_attempt_once(b: Backend) {
    let alice = user(&*b.store, "alice").await;
    let mut queued = BTreeSet::new();
    for attempts in [8, 2] {
        queued.extend(task(&*b.store, &alice, attempts).await.1.into_iter().map(|a| a.id));
    }
    let mut workers = Vec::new();
    for worker in ["worker-a", "worker-b"] {
        let store = b.store.clone();
        workers.push(tokio::spawn(async move {
            let mut leased = Vec::new();
            while let Some((attempt, task)) =
                store.lease_next(worker, Duration::from_secs(60)).await.unwrap()
            {
                assert_eq!(attempt.task_id, task.id);
                assert_eq!(attempt.state, AttemptState::Preparing);
                assert_eq!(attempt.lease.as_ref().unwrap().worker_id, worker);
                leased.push(attempt.id);
            }
            leased
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    assert_eq!(all.len(), 10, "each attempt leased exactly once");
    assert_eq!(all.iter().copied().collect::<BTreeSet<_>>(), queued);
    assert!(b.store.lease_next("worker-c", Duration::from_secs(60)).await.unwrap().is_none());
    let counts = b.store.attempt_counts(Some(alice.id)).await.unwrap();
    assert_eq!((counts.queued, counts.preparing, counts.in_flight()), (0, 10, 10));
    let a = b.store.attempts_by_worker("worker-a").await.unwrap();
    let bb = b.store.attempts_by_worker("worker-b").await.unwrap();
    assert_eq!(a.len() + bb.len(), 10);
}

async fn renew_fails_after_expiry_and_recovery(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let (_, attempts) = task(store, &alice, 1).await;
    let (leased, _) = store.lease_next("w1", Duration::from_secs(30)).await.unwrap().unwrap();
    assert_eq!(leased.id, attempts[0].id);
    let renewal = store.renew_lease(leased.id, "w1", Duration::from_secs(60)).await.unwrap();
    assert!(!renewal.cancel_requested);
    assert!(renewal.expires_at_ms >= leased.lease.unwrap().expires_at_ms);
    let err = store.renew_lease(leased.id, "w2", Duration::from_secs(60)).await.unwrap_err();
    assert!(err.is_lease_lost());

    // Nothing has expired yet.
    assert!(store.recover_expired(now_ms()).await.unwrap().is_empty());
    let later = now_ms() + 3_600_000;
    let recovered = store.recover_expired(later).await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        (recovered[0].from, recovered[0].to),
        (AttemptState::Preparing, AttemptState::Queued)
    );
    assert_eq!(recovered[0].worker_id, "w1");
    let err = store.renew_lease(leased.id, "w1", Duration::from_secs(60)).await.unwrap_err();
    assert!(err.is_lease_lost(), "{err}");
    assert!(store.release(leased.id, "w1", "bye").await.unwrap_err().is_lease_lost());

    // Another worker takes it over; the old one still cannot renew.
    let (again, _) = store.lease_next("w2", Duration::from_secs(30)).await.unwrap().unwrap();
    assert_eq!(again.id, leased.id);
    assert!(
        store
            .renew_lease(leased.id, "w1", Duration::from_secs(60))
            .await
            .unwrap_err()
            .is_lease_lost()
    );
    store.renew_lease(leased.id, "w2", Duration::from_secs(60)).await.unwrap();
    // Releasing gives it back to the queue.
    store.release(leased.id, "w2", "shutting down").await.unwrap();
    let released = store.get_attempt(Scope::System, leased.id).await.unwrap();
    assert_eq!((released.state, released.lease), (AttemptState::Queued, None));
}

async fn recovery_requeues_unstarted_and_fails_running(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    task(store, &alice, 3).await;
    let short = Duration::from_secs(1);
    let (preparing, _) = store.lease_next("dead", short).await.unwrap().unwrap();
    let (running, _) = store.lease_next("dead", short).await.unwrap().unwrap();
    store.transition(running.id, AttemptState::Running, None).await.unwrap();
    store.append_event(running.id, &agent_message(1)).await.unwrap();
    let (alive, _) = store.lease_next("alive", Duration::from_secs(3600)).await.unwrap().unwrap();

    let now = now_ms() + 60_000;
    let mut recovered = store.recover_expired(now).await.unwrap();
    recovered.sort_by_key(|r| r.attempt_id);
    assert_eq!(recovered.len(), 2);
    let find = |id| recovered.iter().find(|r| r.attempt_id == id).unwrap();
    assert_eq!(find(preparing.id).to, AttemptState::Queued);
    assert_eq!(
        (find(running.id).from, find(running.id).to),
        (AttemptState::Running, AttemptState::Failed)
    );

    let failed = store.get_attempt(Scope::System, running.id).await.unwrap();
    assert_eq!(failed.state, AttemptState::Failed);
    assert_eq!(failed.reason.as_deref(), Some("interrupted"));
    assert!(failed.lease.is_none() && failed.finished_at_ms.is_some());
    let log: Vec<_> = all_events(store, running.id).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(log.len(), 5, "{log:?}");
    assert_eq!(log[2], agent_message(1), "events recorded before the crash are kept");
    assert_eq!(
        log[3],
        EventKind::StateChanged { state: AttemptState::Failed, reason: Some("interrupted".into()) }
    );
    assert_eq!(
        log[4],
        EventKind::Finished {
            outcome: AttemptOutcome { state: AttemptState::Failed, reason: "interrupted".into() }
        }
    );

    let requeued = store.get_attempt(Scope::System, preparing.id).await.unwrap();
    assert_eq!((requeued.state, requeued.lease.clone()), (AttemptState::Queued, None));
    let log = all_events(store, preparing.id).await;
    assert!(matches!(
        log.last().unwrap().kind,
        EventKind::StateChanged { state: AttemptState::Queued, .. }
    ));

    let untouched = store.get_attempt(Scope::System, alive.id).await.unwrap();
    assert_eq!(untouched.state, AttemptState::Preparing);
    assert!(store.attempts_by_worker("dead").await.unwrap().is_empty());
    assert_eq!(store.attempts_by_worker("alive").await.unwrap(), vec![untouched]);
    assert!(store.recover_expired(now).await.unwrap().is_empty(), "recovery is idempotent");
    // The requeued attempt is leased again.
    let (next, _) = store.lease_next("new", short).await.unwrap().unwrap();
    assert_eq!(next.id, preparing.id);
}

async fn messages_are_delivered_once_in_order(b: Backend) {
    let alice = user(&*b.store, "alice").await;
    let (_, attempts) = task(&*b.store, &alice, 1).await;
    let id = attempts[0].id;
    let store = &*b.store;
    for text in ["first", "second", "third"] {
        store.enqueue_message(Scope::User(alice.id), id, text).await.unwrap();
    }
    let taken = store.take_messages(id).await.unwrap();
    assert_eq!(
        taken.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["first", "second", "third"]
    );
    assert!(taken.iter().all(|m| m.delivered_at_ms.is_some()));
    assert!(store.take_messages(id).await.unwrap().is_empty());
    assert!(matches!(
        store.enqueue_message(Scope::System, id, "").await,
        Err(StoreError::Invalid(_))
    ));

    // Concurrent takers split the messages between them, none twice.
    for n in 0..40 {
        store.enqueue_message(Scope::System, id, &format!("m{n}")).await.unwrap();
    }
    let mut takers = Vec::new();
    for _ in 0..4 {
        let store = b.store.clone();
        takers.push(tokio::spawn(async move { store.take_messages(id).await.unwrap() }));
    }
    let mut ids = Vec::new();
    for taker in takers {
        let got = taker.await.unwrap();
        assert!(got.windows(2).all(|w| w[0].id < w[1].id));
        ids.extend(got.into_iter().map(|m| m.id));
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40);

    store.request_cancel(Scope::System, id, "not needed").await.unwrap();
    let err = store.enqueue_message(Scope::System, id, "too late").await.unwrap_err();
    assert_eq!(conflict_kind(err), ConflictKind::InvalidTransition);
}

async fn cancel_and_follow_up(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let (t, attempts) = task(store, &alice, 2).await;
    let as_alice = Scope::User(alice.id);

    // A running attempt: the worker learns of the request on its next heartbeat.
    let running = start_running(store, "w1").await;
    assert_eq!(running.id, attempts[0].id);
    let requested = store.request_cancel(as_alice, running.id, "changed my mind").await.unwrap();
    assert_eq!((requested.state, requested.cancel_requested), (AttemptState::Running, true));
    let renewal = store.renew_lease(running.id, "w1", Duration::from_secs(60)).await.unwrap();
    assert!(renewal.cancel_requested);
    assert_eq!(renewal.cancel_reason.as_deref(), Some("changed my mind"), "the worker learns why");
    let err = store.create_followup(alice.id, running.id, "and more").await.unwrap_err();
    assert_eq!(conflict_kind(err), ConflictKind::InvalidTransition);
    store
        .transition(running.id, AttemptState::Cancelled, Some("cancelled by the user"))
        .await
        .unwrap();

    // A queued attempt is cancelled at once, with its log closed.
    let queued = store.request_cancel(as_alice, attempts[1].id, "changed my mind").await.unwrap();
    assert_eq!(queued.state, AttemptState::Cancelled);
    let log = all_events(store, queued.id).await;
    assert!(matches!(log.last().unwrap().kind, EventKind::Finished { .. }));
    let again = store.request_cancel(as_alice, attempts[1].id, "twice").await.unwrap();
    assert_eq!(again, queued, "cancelling a finished attempt changes nothing");
    assert!(store.lease_next("w1", Duration::from_secs(60)).await.unwrap().is_none());

    let followup =
        store.create_followup(alice.id, running.id, "now also update the docs").await.unwrap();
    assert_eq!(followup.index, 2);
    assert_eq!(followup.parent_id, Some(running.id));
    assert_eq!(followup.prompt.as_deref(), Some("now also update the docs"));
    assert_eq!(followup.state, AttemptState::Queued);
    let (leased, leased_task) =
        store.lease_next("w2", Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((leased.id, leased_task.id), (followup.id, t.id));
    assert_eq!(store.list_attempts(as_alice, t.id).await.unwrap().len(), 3);
}

async fn artifacts_round_trip(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let (_, attempts) = task(store, &alice, 1).await;
    let id = attempts[0].id;
    let scope = Scope::User(alice.id);
    assert_eq!(store.get_artifact(scope, id, ArtifactKind::Diff).await.unwrap(), None);
    store.put_artifact(id, ArtifactKind::Diff, "diff --git a/x b/x\n").await.unwrap();
    store.put_artifact(id, ArtifactKind::Diff, "diff --git a/y b/y\n").await.unwrap();
    assert_eq!(
        store.get_artifact(scope, id, ArtifactKind::Diff).await.unwrap().as_deref(),
        Some("diff --git a/y b/y\n")
    );
    let report = serde_json::to_string(&errand_protocol::Report::default()).unwrap();
    store.put_artifact(id, ArtifactKind::Report, &report).await.unwrap();
    assert_eq!(
        store.get_artifact(scope, id, ArtifactKind::Report).await.unwrap(),
        Some(report.clone())
    );
    assert!(matches!(
        store.put_artifact(id, ArtifactKind::Report, "{broken").await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.get_artifact(scope, id, ArtifactKind::Report).await.unwrap(), Some(report));
    assert!(is_not_found(store.put_artifact(AttemptId::new(), ArtifactKind::Diff, "x").await));
}

async fn counts_for_limits(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let before = now_ms();
    task(store, &alice, 2).await;
    task(store, &alice, 1).await;
    task(store, &bob, 4).await;
    assert_eq!(store.count_tasks_since(alice.id, before).await.unwrap(), 2);
    assert_eq!(store.count_tasks_since(alice.id, now_ms() + 1000).await.unwrap(), 0);
    assert_eq!(store.count_tasks_since(bob.id, 0).await.unwrap(), 1);
    start_running(store, "w").await;
    store.lease_next("w", Duration::from_secs(60)).await.unwrap().unwrap();
    let alices = store.attempt_counts(Some(alice.id)).await.unwrap();
    assert_eq!((alices.queued, alices.preparing, alices.running), (1, 1, 1));
    let all = store.attempt_counts(None).await.unwrap();
    assert_eq!((all.queued, all.in_flight()), (5, 2));
}

async fn delete_task_cascades_but_not_while_running(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let (t, attempts) = task(store, &alice, 1).await;
    let running = start_running(store, "w").await;
    store.enqueue_message(Scope::System, running.id, "hi").await.unwrap();
    store.put_artifact(running.id, ArtifactKind::Diff, "d").await.unwrap();
    let err = store.delete_task(alice.id, t.id).await.unwrap_err();
    assert_eq!(conflict_kind(err), ConflictKind::InUse);
    assert_eq!(store.get_task(Scope::System, t.id).await.unwrap(), t);
    store.transition(running.id, AttemptState::Failed, Some("boom")).await.unwrap();
    store.delete_task(alice.id, t.id).await.unwrap();
    assert!(is_not_found(store.get_task(Scope::System, t.id).await));
    assert!(is_not_found(store.get_attempt(Scope::System, attempts[0].id).await));
    assert!(is_not_found(store.events_after(Scope::System, attempts[0].id, 0, 10).await));
    assert!(store.take_messages(running.id).await.unwrap().is_empty());
    assert!(is_not_found(store.delete_task(alice.id, t.id).await));
}

async fn reopen_keeps_data_and_migrations_are_idempotent(b: Backend) {
    let alice = user(&*b.store, "alice").await;
    let token = b.store.create_token(alice.id, "t").await.unwrap();
    let (t, attempts) = task(&*b.store, &alice, 1).await;
    let event = b.store.append_event(attempts[0].id, &agent_message(7)).await.unwrap();
    drop(b.store);
    for _ in 0..2 {
        let store = errand_store::open(&b.url).await.unwrap();
        assert_eq!(store.authenticate(&token.secret).await.unwrap(), Some(alice.clone()));
        assert_eq!(store.get_task(Scope::User(alice.id), t.id).await.unwrap(), t);
        assert_eq!(all_events(&*store, attempts[0].id).await, vec![event.clone()]);
    }
    // Two stores opened at once on one database (two replicas starting) both work.
    let (one, two) = tokio::join!(errand_store::open(&b.url), errand_store::open(&b.url));
    let (one, two) = (one.unwrap(), two.unwrap());
    one.append_event(attempts[0].id, &agent_message(8)).await.unwrap();
    assert_eq!(all_events(&*two, attempts[0].id).await.len(), 2);
    assert!(matches!(errand_store::open("mysql://x").await, Err(StoreError::Invalid(_))));
}

async fn a_tasks_pull_request_is_one_row_updated_in_place(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let (task, attempts) = task(store, &alice, 2).await;
    assert_eq!(store.get_pull_request(Scope::User(alice.id), task.id).await.unwrap(), None);
    let mut record = errand_store::PullRequestRecord {
        task_id: task.id,
        attempt_id: attempts[0].id,
        forge: "https://api.github.com".into(),
        repository: "o/r".into(),
        branch: format!("errand/{}", task.id),
        commit_id: "a".repeat(40),
        state: "pushing".into(),
        number: None,
        url: None,
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    store.save_pull_request(&record).await.unwrap();
    let pushing = store.get_pull_request(Scope::User(alice.id), task.id).await.unwrap().unwrap();
    assert_eq!((pushing.state.as_str(), pushing.number), ("pushing", None));
    assert!(pushing.created_at_ms > 0);
    // Opened, then updated by another attempt: still one row, created_at kept.
    record.state = "open".into();
    record.number = Some(7);
    record.url = Some("https://github.com/o/r/pull/7".into());
    store.save_pull_request(&record).await.unwrap();
    record.attempt_id = attempts[1].id;
    record.commit_id = "b".repeat(40);
    store.save_pull_request(&record).await.unwrap();
    let open = store.get_pull_request(Scope::System, task.id).await.unwrap().unwrap();
    assert_eq!(
        (open.number, open.attempt_id, open.commit_id.as_str()),
        (Some(7), attempts[1].id, "b".repeat(40).as_str())
    );
    assert_eq!(open.created_at_ms, pushing.created_at_ms);
    // Another user's task is not found; bad input is refused; deleting the task takes the row.
    assert!(matches!(
        store.get_pull_request(Scope::User(bob.id), task.id).await,
        Err(StoreError::NotFound(_))
    ));
    let empty = errand_store::PullRequestRecord { branch: String::new(), ..record.clone() };
    assert!(matches!(store.save_pull_request(&empty).await, Err(StoreError::Invalid(_))));
    let missing = errand_store::PullRequestRecord {
        task_id: errand_protocol::TaskId::new(),
        ..record.clone()
    };
    assert!(matches!(store.save_pull_request(&missing).await, Err(StoreError::NotFound(_))));
    for attempt in &attempts {
        store.request_cancel(Scope::System, attempt.id, "done").await.unwrap();
    }
    store.delete_task(alice.id, task.id).await.unwrap();
    assert!(matches!(
        store.get_pull_request(Scope::System, task.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn deliveries_are_handled_once_and_triggers_wait_until_reported(b: Backend) {
    let store = &*b.store;
    assert!(store.record_delivery("github.com:abc").await.unwrap());
    assert!(!store.record_delivery("github.com:abc").await.unwrap(), "a replay");
    assert!(store.record_delivery("gitea.example:abc").await.unwrap(), "another forge's id");
    assert!(matches!(store.record_delivery("").await, Err(StoreError::Invalid(_))));

    let alice = user(store, "alice").await;
    let (task, _) = task(store, &alice, 1).await;
    let trigger = errand_store::TriggeredTask {
        task_id: task.id,
        forge_host: "github.com".into(),
        repository: "o/r".into(),
        issue_number: 12,
        state: String::new(),
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    store.add_triggered_task(&trigger).await.unwrap();
    let waiting = store.waiting_triggered_tasks(10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].issue_number, waiting[0].state.as_str()), (12, "waiting"));
    store.mark_trigger_reported(task.id).await.unwrap();
    assert!(store.waiting_triggered_tasks(10).await.unwrap().is_empty());
    let missing =
        errand_store::TriggeredTask { task_id: errand_protocol::TaskId::new(), ..trigger };
    assert!(matches!(store.add_triggered_task(&missing).await, Err(StoreError::NotFound(_))));
}

async fn a_pick_is_a_finished_attempt_of_the_users_own_task(b: Backend) {
    let store = &*b.store;
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let (task, attempts) = task(store, &alice, 2).await;
    let (other, other_attempts) = self::task(store, &alice, 1).await;
    // Unfinished: refused.
    assert!(matches!(
        store.pick_attempt(alice.id, task.id, attempts[0].id).await,
        Err(StoreError::Conflict { .. })
    ));
    store.request_cancel(Scope::System, attempts[0].id, "done").await.unwrap();
    let picked = store.pick_attempt(alice.id, task.id, attempts[0].id).await.unwrap();
    assert_eq!(picked.picked_attempt, Some(attempts[0].id));
    assert_eq!(
        store.get_task(Scope::System, task.id).await.unwrap().picked_attempt,
        Some(attempts[0].id)
    );
    // Another task's attempt, another user: not found, the pick unchanged.
    store.request_cancel(Scope::System, other_attempts[0].id, "done").await.unwrap();
    assert!(matches!(
        store.pick_attempt(alice.id, task.id, other_attempts[0].id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.pick_attempt(bob.id, task.id, attempts[0].id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.get_task(Scope::System, task.id).await.unwrap().picked_attempt,
        Some(attempts[0].id)
    );
    assert_eq!(store.get_task(Scope::System, other.id).await.unwrap().picked_attempt, None);
}
