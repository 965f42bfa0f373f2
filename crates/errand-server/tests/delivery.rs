//! Delivering attempts as pull requests, with real git over smart HTTP (token auth, loopback)
//! and a fake GitHub that checks every request against GitHub's published API description
//! (`errand_testkit::forge`): the first delivery pushes `errand/<task>` and opens one pull request; delivering again, or
//! another attempt, replaces the branch and updates that same pull request; a branch someone
//! else moved is refused and left alone; bad requests change nothing.

#[allow(dead_code)]
mod common;

use common::World;
use errand_git::Credentials;
use errand_git::forge::{ForgeConfig, ForgeKind};
use errand_protocol::{AttemptOutcome, AttemptState, Citation, CitationTarget, EventKind, Report};
use errand_server::delivery::{DeliveryError, Forge, Forges, deliver};
use errand_server::remotes::Remotes;
use errand_store::{ArtifactKind, NewTask, Scope, Store, TaskMode};
use errand_testkit::forge::{ConformingForge, ForgeSetup, Kind};
use errand_testkit::git_http::GitHttpServer;

const GIT_TOKEN: &str = "git-token-delivery-1";
const API_TOKEN: &str = "api-token-delivery-2";

/// Finishes `attempt` as a worker would, with `diff` and a report citing `README.md:L1`.
async fn succeed(store: &dyn Store, attempt: errand_protocol::AttemptId, diff: &str, title: &str) {
    store
        .append_event(
            attempt,
            &EventKind::StateChanged { state: AttemptState::Running, reason: None },
        )
        .await
        .unwrap();
    store.put_artifact(attempt, ArtifactKind::Diff, diff).await.unwrap();
    let report = Report {
        title: title.into(),
        description: "Changed the first line (README.md:L1).".into(),
        citations: vec![Citation {
            raw: "README.md:L1".into(),
            target: CitationTarget::Code { path: "README.md".into(), start: 1, end: 1 },
            problem: None,
            excerpt: String::new(),
            in_diff: true,
        }],
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
}

fn readme_diff(to: &str) -> String {
    format!(
        "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-A repository for worker tests.\n+{to}\n"
    )
}

#[tokio::test]
async fn attempts_become_one_pull_request_that_later_attempts_update() {
    let world = World::new().await;
    let served = tempfile::tempdir().unwrap();
    std::fs::create_dir(served.path().join("o")).unwrap();
    common::git(
        &served.path().join("o"),
        &["clone", "-q", "--bare", world.repo.to_str().unwrap(), "project.git"],
    );
    let remote = served.path().join("o/project.git");
    let git_server =
        GitHttpServer::start(served.path(), "x-access-token", GIT_TOKEN).await.unwrap();
    let url = git_server.url("o/project.git");
    let setup = ForgeSetup {
        owner: "o".into(),
        name: "project".into(),
        token: API_TOKEN.into(),
        web_base: Some("https://github.example".into()),
        ..ForgeSetup::default()
    };
    let Some(github) = ConformingForge::start_with(Kind::GitHub, setup).await else { return };
    let remotes = Remotes::new(world.dir.path().join("mirrors"))
        .with_credentials("127.0.0.1", Credentials::token(GIT_TOKEN));
    let forges = Forges(vec![Forge {
        host: "127.0.0.1".into(),
        kind: ForgeKind::GitHub,
        web_base: "https://github.example".into(),
        config: ForgeConfig::new(ForgeKind::GitHub, &github.api_base, API_TOKEN),
        branch_prefix: "errand/".into(),
        trigger: None,
    }]);

    let store = world.store.clone();
    let alice = store.create_user("alice").await.unwrap();
    let base = common::git(&world.repo, &["rev-parse", "main"]).trim().to_string();
    let new = NewTask {
        environment_id: None,
        repository: url.clone(),
        git_ref: "main".into(),
        base_commit: Some(base.clone()),
        prompt: "fix the readme".into(),
        mode: TaskMode::Code,
        attempts: 2,
    };
    let (task, attempts) = store.create_task(alice.id, new).await.unwrap();
    let scope = Scope::User(alice.id);
    for _ in 0..2 {
        store.lease_next("w", std::time::Duration::from_secs(60)).await.unwrap().unwrap();
    }
    succeed(&*store, attempts[0].id, &readme_diff("First take."), "Fix the readme").await;
    succeed(&*store, attempts[1].id, &readme_diff("Second take."), "Fix the readme, better").await;

    // The first delivery: the branch, then one pull request whose body links the cited line.
    let record = deliver(&*store, Some(&remotes), &forges, scope, attempts[0].id).await.unwrap();
    let branch = format!("errand/{}", task.id);
    assert_eq!(
        (record.state.as_str(), record.number, record.branch.as_str()),
        ("open", Some(1), branch.as_str())
    );
    let pushed = common::git(&remote, &["rev-parse", &branch]).trim().to_string();
    assert_eq!(pushed, record.commit_id);
    assert_eq!(
        common::git(&remote, &["rev-parse", &format!("{branch}^")]).trim(),
        base,
        "one commit on the base"
    );
    assert_eq!(common::git(&remote, &["show", &format!("{branch}:README.md")]), "First take.\n");
    {
        let requests = github.requests();
        let opened: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].what, "pulls");
        let body = &opened[0].body;
        assert_eq!(
            (body["head"].as_str(), body["base"].as_str(), body["title"].as_str()),
            (Some(branch.as_str()), Some("main"), Some("Fix the readme"))
        );
        let text = body["body"].as_str().unwrap();
        assert!(
            text.contains(&format!(
                "[README.md:L1](https://github.example/o/project/blob/{pushed}/README.md#L1"
            )),
            "{text}"
        );
    }

    // Delivering the other attempt replaces the branch and updates the same pull request.
    let record = deliver(&*store, Some(&remotes), &forges, scope, attempts[1].id).await.unwrap();
    assert_eq!((record.number, record.attempt_id), (Some(1), attempts[1].id));
    assert_eq!(common::git(&remote, &["show", &format!("{branch}:README.md")]), "Second take.\n");
    {
        let requests = github.requests();
        assert_eq!(
            requests.iter().filter(|r| r.method == "POST").count(),
            1,
            "no second pull request"
        );
        let patched = requests.iter().find(|r| r.method == "PATCH").expect("an update");
        assert_eq!(patched.what, "pulls/1");
        assert_eq!(patched.body["title"], "Fix the readme, better");
    }

    // Someone else moves the branch: Errand refuses and leaves it alone.
    let clone = world.dir.path().join("someone");
    common::git(world.dir.path(), &["clone", "-q", remote.to_str().unwrap(), "someone"]);
    common::git(&clone, &["checkout", "-q", &branch]);
    std::fs::write(clone.join("theirs.txt"), "theirs\n").unwrap();
    common::git(&clone, &["add", "theirs.txt"]);
    common::git(&clone, &["commit", "-qm", "theirs"]);
    common::git(&clone, &["push", "-q", "origin", &branch]);
    let theirs = common::git(&remote, &["rev-parse", &branch]);
    let refused =
        deliver(&*store, Some(&remotes), &forges, scope, attempts[0].id).await.unwrap_err();
    assert!(
        matches!(&refused, DeliveryError::Refused(m) if m.contains("Errand did not put it there")),
        "{refused}"
    );
    assert_eq!(common::git(&remote, &["rev-parse", &branch]), theirs, "their commit stays");

    // Neither token is in any file Errand wrote.
    let grep = std::process::Command::new("grep")
        .args(["-r", "-l", "-a", "-e", GIT_TOKEN, "-e", API_TOKEN])
        .arg(world.dir.path())
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "a token is in {}", String::from_utf8_lossy(&grep.stdout));
    github.assert_conformed();
}

#[tokio::test]
async fn what_cannot_be_delivered_is_refused_with_nothing_pushed_or_recorded() {
    let world = World::new().await;
    let store = world.store.clone();
    let setup = ForgeSetup { token: API_TOKEN.into(), ..ForgeSetup::default() };
    let Some(gitea) = ConformingForge::start_with(Kind::Gitea, setup).await else { return };
    let forges = Forges(vec![Forge {
        host: "git.example.com".into(),
        kind: ForgeKind::Gitea,
        web_base: "https://git.example.com".into(),
        config: ForgeConfig::new(ForgeKind::Gitea, &gitea.api_base, API_TOKEN),
        branch_prefix: "errand/".into(),
        trigger: None,
    }]);
    let remotes = Remotes::new(world.dir.path().join("mirrors"));
    // A task on a path, one on a host with no forge, an attempt that has not succeeded.
    let (path_task, path_attempts) = world.task(1).await;
    store.lease_next("w", std::time::Duration::from_secs(60)).await.unwrap().unwrap();
    succeed(&*store, path_attempts[0], &readme_diff("x"), "t").await;
    let alice = store.user_by_name("alice").await.unwrap();
    let scope = Scope::User(alice.id);
    let cases = [(path_attempts[0], "forge URL")];
    for (attempt, expected) in cases {
        let error = deliver(&*store, Some(&remotes), &forges, scope, attempt).await.unwrap_err();
        assert!(matches!(&error, DeliveryError::Refused(m) if m.contains(expected)), "{error}");
    }
    let new = NewTask {
        environment_id: None,
        repository: "https://elsewhere.example/o/r.git".into(),
        git_ref: "main".into(),
        base_commit: Some("0".repeat(40)),
        prompt: "p".into(),
        mode: TaskMode::Code,
        attempts: 1,
    };
    let (other, other_attempts) = store.create_task(alice.id, new).await.unwrap();
    let error =
        deliver(&*store, Some(&remotes), &forges, scope, other_attempts[0].id).await.unwrap_err();
    assert!(
        matches!(&error, DeliveryError::Refused(m) if m.contains("has not succeeded")),
        "{error}"
    );
    store.lease_next("w", std::time::Duration::from_secs(60)).await.unwrap().unwrap();
    succeed(&*store, other_attempts[0].id, &readme_diff("y"), "t").await;
    let error =
        deliver(&*store, Some(&remotes), &forges, scope, other_attempts[0].id).await.unwrap_err();
    assert!(
        matches!(&error, DeliveryError::Refused(m) if m.contains("no forge is configured for elsewhere.example")),
        "{error}"
    );
    // Another user's attempt is not found.
    let bob = store.create_user("bob").await.unwrap();
    let error =
        deliver(&*store, Some(&remotes), &forges, Scope::User(bob.id), other_attempts[0].id)
            .await
            .unwrap_err();
    assert!(matches!(error, DeliveryError::NotFound(_)), "{error}");
    for task in [path_task.id, other.id] {
        assert_eq!(store.get_pull_request(Scope::System, task).await.unwrap(), None);
    }
    assert!(gitea.requests().is_empty(), "the forge heard nothing");
}
