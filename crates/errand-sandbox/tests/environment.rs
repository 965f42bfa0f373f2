//! Environments against real bubblewrap and real overlays: setup writes the snapshot's layers
//! (workspace, home, /usr/local), the agent phase stacks on them and its diff leaves them out;
//! snapshots are reused (maintenance instead of setup), expire, are collected, built once under
//! concurrency; secrets reach setup only and never a stored byte; setup has the network and the
//! agent has none.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{Fixture, sandbox_available, sh};
use errand_protocol::FileChangeKind;
use errand_sandbox::{
    EnvironmentSpec, LocalSandbox, PrepareError, PrepareOptions, Sandbox, ScriptPhase, SetupEvent,
    SnapshotRef, gc_snapshots,
};

fn fixture() -> Fixture {
    Fixture::new(&[
        ("a.txt", b"one\n"),
        ("removed.txt", b"setup deletes me\n"),
        ("lib/keep.txt", b"keep\n"),
        (".gitignore", b"node_modules/\n"),
    ])
}

const SETUP: &str = r#"
echo "SETUP-RAN"
printf '#!/bin/sh\necho hello from setup\n' > /usr/local/bin/hello
chmod +x /usr/local/bin/hello
mkdir -p ~/.cache && echo cached > ~/.cache/x
echo generated > generated.txt
rm removed.txt
rm -r lib && mkdir lib && echo fresh > lib/new.txt
mkdir -p node_modules/pkg && echo 'module.exports = 1' > node_modules/pkg/index.js
"#;

fn spec(setup: &str) -> EnvironmentSpec {
    EnvironmentSpec { setup_script: Some(setup.into()), ..EnvironmentSpec::default() }
}

/// What one preparation logged: (phase, text) of each output chunk, and the phases started.
#[derive(Default, Debug)]
struct Logged {
    started: Vec<ScriptPhase>,
    output: String,
}

async fn prepare_at(
    fx: &Fixture,
    spec: &EnvironmentSpec,
    now: SystemTime,
) -> (Result<Option<SnapshotRef>, PrepareError>, Logged) {
    let mut logged = Logged::default();
    let options = PrepareOptions { now, ..PrepareOptions::default() };
    let result = LocalSandbox::prepare_environment(
        &fx.config,
        &fx.repo,
        "HEAD",
        spec,
        &options,
        &mut |event| match event {
            SetupEvent::Started { phase, .. } => logged.started.push(phase),
            SetupEvent::Output { bytes, .. } => {
                logged.output.push_str(&String::from_utf8_lossy(bytes))
            }
            SetupEvent::Finished { .. } => {}
        },
    )
    .await;
    (result, logged)
}

async fn prepare(fx: &Fixture, spec: &EnvironmentSpec) -> (SnapshotRef, Logged) {
    let (result, logged) = prepare_at(fx, spec, SystemTime::now()).await;
    let snapshot = result.expect("prepare").expect("a snapshot");
    (snapshot, logged)
}

async fn attempt(fx: &Fixture, snapshot: SnapshotRef, name: &str) -> LocalSandbox {
    LocalSandbox::create_on_snapshot(&fx.config, snapshot, name, &Default::default())
        .await
        .expect("sandbox over the snapshot")
}

fn snapshot_dirs(fx: &Fixture) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(fx.data_dir().join("snapshots")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".lock-"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_agent_starts_from_what_setup_made_and_its_diff_holds_only_its_own_changes() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let (snapshot, logged) = prepare(&fx, &spec(SETUP)).await;
    assert_eq!(logged.started, [ScriptPhase::Setup]);
    assert!(logged.output.contains("SETUP-RAN"), "{logged:?}");
    assert!(!snapshot.reused());
    let sandbox = attempt(&fx, snapshot, "agent-1").await;

    let (outcome, out) = sh(
        &sandbox,
        "hello && cat ~/.cache/x generated.txt lib/new.txt && test ! -e removed.txt \
         && test ! -e lib/keep.txt && ls node_modules/pkg",
    )
    .await;
    assert!(outcome.success(), "{out}");
    assert_eq!(out, "hello from setup\ncached\ngenerated\nfresh\nindex.js\n");

    // Nothing yet: what setup made is the starting point.
    assert_eq!(sandbox.diff().await.unwrap().files, vec![]);

    let (outcome, out) = sh(
        &sandbox,
        "echo two >> a.txt && echo more >> generated.txt && echo back > removed.txt \
         && echo agent > ~/.cache/y && echo tool > /usr/local/bin/agent-tool && echo x > node_modules/y",
    )
    .await;
    assert!(outcome.success(), "{out}");
    let diff = sandbox.diff().await.unwrap();
    let mut kinds: Vec<(String, FileChangeKind)> =
        diff.files.iter().map(|f| (f.path.clone(), f.kind.clone())).collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        [
            ("a.txt".to_string(), FileChangeKind::Modified),
            ("generated.txt".to_string(), FileChangeKind::Modified),
            ("removed.txt".to_string(), FileChangeKind::Added),
        ],
        "{}",
        diff.patch
    );
    assert!(diff.patch.contains(" generated\n+more\n"), "{}", diff.patch);
    assert!(!diff.patch.contains("lib/"), "{}", diff.patch);
    sandbox.destroy().await.unwrap();

    // The snapshot did not take the agent's writes: a second attempt starts clean.
    let (snapshot, logged) = prepare(&fx, &spec(SETUP)).await;
    assert!(snapshot.reused());
    assert!(logged.started.is_empty(), "setup ran again: {logged:?}");
    let second = attempt(&fx, snapshot, "agent-2").await;
    let (outcome, out) = sh(
        &second,
        "cat a.txt generated.txt; test -e ~/.cache/y || echo no-y; \
         test -e /usr/local/bin/agent-tool || echo no-tool",
    )
    .await;
    assert!(outcome.success(), "{out}");
    assert_eq!(out, "one\ngenerated\nno-y\nno-tool\n");
    second.destroy().await.unwrap();
}

#[tokio::test]
async fn reuse_runs_maintenance_in_the_attempts_own_layer_and_expiry_rebuilds() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let spec = EnvironmentSpec {
        maintenance_script: Some("echo MAINTENANCE-RAN; echo m >> maint.txt".into()),
        ..spec("echo SETUP-RAN; echo s > built.txt")
    };
    let t0 = SystemTime::now();
    let (first, logged) = prepare_at(&fx, &spec, t0).await;
    let first = first.unwrap().unwrap();
    assert_eq!(logged.started, [ScriptPhase::Setup]);
    assert!(!first.maintenance_ran());
    let first_dir = first.dir().to_path_buf();
    first.release().await;

    let (second, logged) = prepare_at(&fx, &spec, t0 + Duration::from_secs(3600)).await;
    let second = second.unwrap().unwrap();
    assert_eq!(logged.started, [ScriptPhase::Maintenance]);
    assert!(logged.output.contains("MAINTENANCE-RAN") && !logged.output.contains("SETUP-RAN"));
    assert!(second.reused() && second.maintenance_ran());
    assert_eq!(second.dir(), first_dir);
    let sandbox = attempt(&fx, second, "after-maintenance").await;
    let (_, out) = sh(&sandbox, "cat built.txt maint.txt").await;
    assert_eq!(out, "s\nm\n");
    assert_eq!(sandbox.diff().await.unwrap().files, vec![], "maintenance is not the agent's");
    sandbox.destroy().await.unwrap();
    // Maintenance wrote into its own layer, never into the snapshot.
    assert!(!first_dir.join("workspace/maint.txt").exists());
    assert_eq!(std::fs::read_dir(fx.data_dir().join("layers")).unwrap().count(), 0);

    // 13 hours later the 12-hour snapshot has expired: setup runs again, beside the old one.
    let (third, logged) = prepare_at(&fx, &spec, t0 + Duration::from_secs(13 * 3600)).await;
    let third = third.unwrap().unwrap();
    assert_eq!(logged.started, [ScriptPhase::Setup]);
    assert_ne!(third.dir(), first_dir);
    assert_eq!(snapshot_dirs(&fx).len(), 2);
    third.release().await;
}

#[tokio::test]
async fn gc_removes_an_expired_unused_snapshot_and_keeps_one_in_use() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let t0 = SystemTime::now();
    let (unused, _) = prepare_at(&fx, &spec("echo unused > u.txt"), t0).await;
    let unused = unused.unwrap().unwrap();
    let unused_dir = unused.dir().to_path_buf();
    unused.release().await;
    let (used, _) = prepare_at(&fx, &spec("echo used > u.txt"), t0).await;
    let used = used.unwrap().unwrap();
    let used_dir = used.dir().to_path_buf();
    let sandbox = attempt(&fx, used, "holds-the-lease").await;

    let later = t0 + Duration::from_secs(13 * 3600);
    let report = gc_snapshots(fx.data_dir(), u64::MAX, later).await.unwrap();
    assert!(!unused_dir.exists(), "{report:?}");
    assert!(used_dir.exists(), "{report:?}");
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.kept_in_use.len(), 1);
    // The attempt still works on its (expired) snapshot.
    let (_, out) = sh(&sandbox, "cat u.txt").await;
    assert_eq!(out, "used\n");

    sandbox.destroy().await.unwrap();
    let report = gc_snapshots(fx.data_dir(), u64::MAX, later).await.unwrap();
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert!(snapshot_dirs(&fx).is_empty(), "{:?}", snapshot_dirs(&fx));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_attempts_needing_the_same_missing_snapshot_build_it_once() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    // The pause only widens the window in which the second waits; correctness does not rely on it.
    let spec = spec("echo SETUP-RAN; sleep 0.3");
    let now = SystemTime::now();
    let ((a, log_a), (b, log_b)) =
        tokio::join!(prepare_at(&fx, &spec, now), prepare_at(&fx, &spec, now));
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    let setups = log_a.started.len() + log_b.started.len();
    assert_eq!(setups, 1, "{log_a:?} {log_b:?}");
    assert_eq!(a.dir(), b.dir());
    assert_ne!(a.reused(), b.reused());
    assert_eq!(snapshot_dirs(&fx).len(), 1);
    a.release().await;
    b.release().await;
}

/// Every file under `root` whose bytes contain `needle` (lstat walk; whiteouts and sockets
/// skipped).
fn files_containing(root: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|e| e.path()));
            }
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn secrets_reach_setup_only_and_are_redacted_from_everything_kept() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let value = format!("tok-{}-{}", std::process::id(), rand_suffix());
    let spec = EnvironmentSpec {
        secrets: BTreeMap::from([("TOKEN".to_string(), value.clone())]),
        env: BTreeMap::from([("PLAIN".to_string(), "visible".to_string())]),
        maintenance_script: Some("echo \"maintenance sees $TOKEN\"".into()),
        ..spec(
            "echo \"the token is $TOKEN and $PLAIN\"; printf '%s' \"$TOKEN\" | fold -w 3; echo; \
             test -n \"$TOKEN\" && echo has-token > proof.txt",
        )
    };
    let (snapshot, logged) = prepare(&fx, &spec).await;
    assert!(logged.output.contains("the token is [secret:TOKEN] and visible"), "{logged:?}");
    assert!(!logged.output.contains(&value));
    snapshot.release().await;
    let (snapshot, logged) = prepare(&fx, &spec).await;
    assert_eq!(logged.output, "maintenance sees [secret:TOKEN]\n");
    let sandbox = attempt(&fx, snapshot, "agent").await;

    let (outcome, out) = sh(
        &sandbox,
        "cat proof.txt; env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; echo \"[$TOKEN]\"",
    )
    .await;
    assert!(outcome.success(), "{out}");
    assert!(out.starts_with("has-token\n"), "{out}");
    assert!(out.contains("PLAIN=visible"), "plain variables reach the agent: {out}");
    assert!(!out.contains(&value), "the agent phase sees the secret: {out}");
    assert!(out.contains("\n[]\n"), "{out}");
    assert!(!out.contains("TOKEN="), "{out}");

    let leaks = files_containing(fx.data_dir(), value.as_bytes());
    assert!(leaks.is_empty(), "the secret was stored in {leaks:?}");
    sandbox.destroy().await.unwrap();
}

fn rand_suffix() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos()
}

#[tokio::test]
async fn a_failed_setup_reports_status_and_tail_and_leaves_nothing_cached() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let failing =
        spec("for n in $(seq 1 60); do echo \"line $n\"; done; echo 'npm ERR! boom' >&2; exit 3");
    let (result, logged) = prepare_at(&fx, &failing, SystemTime::now()).await;
    let Err(PrepareError::SetupFailed(failed)) = result else {
        panic!("expected a setup failure, got {result:?}");
    };
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(failed.phase, ScriptPhase::Setup);
    assert!(failed.tail.ends_with("line 60\nnpm ERR! boom"), "{}", failed.tail);
    assert_eq!(failed.tail.lines().count(), 40);
    assert!(logged.output.contains("line 1\n"));
    assert!(failed.to_string().starts_with("setup script exited 3 after "), "{failed}");
    assert!(snapshot_dirs(&fx).is_empty(), "{:?}", snapshot_dirs(&fx));
    let attempts: Vec<_> = std::fs::read_dir(fx.data_dir().join("attempts")).unwrap().collect();
    assert!(attempts.is_empty(), "the setup run's directory was left: {attempts:?}");

    // A script that stops on its first failing command (bash -e).
    let (result, logged) =
        prepare_at(&fx, &spec("false; echo not reached"), SystemTime::now()).await;
    let Err(PrepareError::SetupFailed(failed)) = result else {
        panic!("expected a setup failure, got {result:?}");
    };
    assert_eq!(failed.exit_code, Some(1));
    assert!(!logged.output.contains("not reached"));
}

#[tokio::test]
async fn setup_has_the_hosts_network_and_the_agent_has_none() {
    if !sandbox_available() {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"hello over loopback\n").unwrap();
    });
    let fx = fixture();
    let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && head -n1 <&3");
    let (snapshot, logged) = prepare(&fx, &spec(&connect)).await;
    assert!(logged.output.contains("hello over loopback"), "{logged:?}");
    server.join().unwrap();

    let sandbox = attempt(&fx, snapshot, "no-network").await;
    let (outcome, out) = common::run(&sandbox, common::request(&["bash", "-c", &connect])).await;
    assert!(!outcome.success(), "the agent phase reached the host's loopback: {out}");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn ask_mode_and_no_scripts_need_no_snapshot() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let ask = EnvironmentSpec { mode: errand_sandbox::EnvironmentMode::Ask, ..Default::default() };
    let (result, logged) = prepare_at(&fx, &ask, SystemTime::now()).await;
    assert!(result.unwrap().is_none());
    assert!(logged.started.is_empty());
    let (result, _) = prepare_at(&fx, &EnvironmentSpec::default(), SystemTime::now()).await;
    assert!(result.unwrap().is_none());
    assert!(!fx.data_dir().join("snapshots").exists());
}
