//! Pushing an attempt's commit from a mirror to its remote as a branch, against the real `git`:
//! remotes as bare repositories over `file://` and over smart HTTP with a token (`git
//! http-backend` on loopback, with the served repository's own hooks).

use std::path::{Path, PathBuf};
use std::process::Command;

use errand_git::{BranchExpectation, Credentials, Mirror, PushError, PushKind, RemoteUrl};
use errand_testkit::git_http::GitHttpServer;

const BRANCH: &str = "errand/task_x";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare remote (`<tmp>/served/team/remote.git`, default branch `trunk`) with one commit.
struct Remote {
    _tmp: tempfile::TempDir,
    bare: PathBuf,
    mirrors: PathBuf,
}

impl Remote {
    fn new() -> Remote {
        let tmp = tempfile::tempdir().unwrap();
        let bare = tmp.path().join("served/team/remote.git");
        let work = tmp.path().join("work");
        let mirrors = tmp.path().join("mirrors");
        for dir in [&bare, &work, &mirrors] {
            std::fs::create_dir_all(dir).unwrap();
        }
        git(&bare, &["init", "-q", "--bare", "-b", "trunk"]);
        git(&work, &["init", "-q", "-b", "trunk"]);
        std::fs::write(work.join("a.txt"), "first\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-qm", "first"]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "HEAD:refs/heads/trunk"]);
        Remote { _tmp: tmp, bare, mirrors }
    }

    fn served_root(&self) -> &Path {
        self.bare.parent().unwrap().parent().unwrap()
    }

    fn file_url(&self) -> RemoteUrl {
        RemoteUrl::parse(&format!("file://{}", self.bare.display())).unwrap()
    }

    /// Where `branch` is on the remote, read directly from the bare repository.
    fn branch(&self, branch: &str) -> Option<String> {
        let out = Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")])
            .current_dir(&self.bare)
            .output()
            .unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Every ref of the remote with its commit, to show that a refused push changed nothing.
    fn refs(&self) -> String {
        git(&self.bare, &["for-each-ref", "--format=%(objectname) %(refname)"])
    }
}

/// A patch that creates `path` holding `line`.
fn new_file(path: &str, line: &str) -> String {
    format!(
        "diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+{line}\n"
    )
}

/// Whether any file under `dir` contains `needle` (`grep -r`, binary files included).
fn grep(dir: &Path, needle: &str) -> bool {
    let out = Command::new("grep").args(["-r", "-a", "-F", "-q", "--", needle]).arg(dir).output();
    let status = out.unwrap().status;
    assert!(status.code() == Some(0) || status.code() == Some(1), "grep failed");
    status.success()
}

#[tokio::test]
async fn a_branch_is_created_updated_under_a_lease_and_never_overwritten_by_surprise() {
    let remote = Remote::new();
    let mirror = Mirror::new(&remote.mirrors, remote.file_url());
    let none = Credentials::None;
    mirror.fetch(&none).await.unwrap();
    let base = mirror.resolve_commit("HEAD").await.unwrap();

    // The commit is built in the bare mirror, on the fetched base.
    let first = mirror.commit_patch(&base, &new_file("b.txt", "one"), "Add b\n").await.unwrap();
    assert_eq!(git(mirror.path(), &["rev-parse", &format!("{first}^")]), base);
    assert_eq!(git(mirror.path(), &["show", &format!("{first}:b.txt")]), "one");
    assert_eq!(git(mirror.path(), &["log", "-1", "--format=%s", &first]), "Add b");
    assert_eq!(mirror.remote_branch(&none, BRANCH).await.unwrap(), None);

    let pushed =
        mirror.push_branch(&none, &first, BRANCH, BranchExpectation::Absent).await.unwrap();
    assert_eq!((pushed.kind, pushed.commit.as_str()), (PushKind::Created, first.as_str()));
    assert_eq!(remote.branch(BRANCH).as_deref(), Some(first.as_str()));
    assert_eq!(mirror.resolve_commit(BRANCH).await.unwrap(), first, "the mirror follows");
    assert_eq!(mirror.remote_branch(&none, BRANCH).await.unwrap().as_deref(), Some(&*first));

    // `Absent` again: refused, whether the commit is the same or another one.
    let other = mirror.commit_patch(&base, &new_file("c.txt", "other"), "Other\n").await.unwrap();
    let before = remote.refs();
    for commit in [&first, &other] {
        let error =
            mirror.push_branch(&none, commit, BRANCH, BranchExpectation::Absent).await.unwrap_err();
        match &error {
            PushError::BranchExists { at, .. } => assert_eq!(at.as_deref(), Some(&*first)),
            other => panic!("{other:?}"),
        }
        let shown = error.to_string();
        assert!(
            shown.contains("already exists") && shown.contains("nothing was pushed"),
            "{shown}"
        );
        assert_eq!(remote.refs(), before);
    }

    // A follow-up: a child of the first commit, expecting the branch at the first.
    let second = mirror.commit_patch(&first, &new_file("d.txt", "two"), "Add d\n").await.unwrap();
    let pushed = mirror
        .push_branch(&none, &second, BRANCH, BranchExpectation::At(first.clone()))
        .await
        .unwrap();
    assert_eq!(pushed.kind, PushKind::Updated { forced: false });
    assert_eq!(remote.branch(BRANCH).as_deref(), Some(second.as_str()));
    assert_eq!(mirror.resolve_commit(BRANCH).await.unwrap(), second);

    // The lease no longer holds (the branch moved on to `second`): refused, nothing changed.
    let third = mirror.commit_patch(&second, &new_file("e.txt", "3"), "Add e\n").await.unwrap();
    let before = remote.refs();
    let error = mirror
        .push_branch(&none, &third, BRANCH, BranchExpectation::At(first.clone()))
        .await
        .unwrap_err();
    match &error {
        PushError::LeaseMismatch { expected, actual, .. } => {
            assert_eq!((expected, actual.as_deref()), (&first, Some(&*second)));
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("someone else changed it"), "{error}");
    assert_eq!(remote.refs(), before);
    assert_eq!(mirror.resolve_commit(BRANCH).await.unwrap(), second, "the mirror did not move");

    // A plain push that would discard `second`: refused.
    let error = mirror
        .push_branch(&none, &other, BRANCH, BranchExpectation::FastForward)
        .await
        .unwrap_err();
    assert!(matches!(error, PushError::NotFastForward { .. }), "{error:?}");
    assert!(error.to_string().contains("would discard them"), "{error}");
    assert_eq!(remote.refs(), before);

    // A plain push that only adds to it goes through.
    let pushed =
        mirror.push_branch(&none, &third, BRANCH, BranchExpectation::FastForward).await.unwrap();
    assert_eq!(pushed.kind, PushKind::Updated { forced: false });

    // A follow-up that rebuilt the attempt from the base replaces the branch under the lease.
    let pushed = mirror
        .push_branch(&none, &other, BRANCH, BranchExpectation::At(third.clone()))
        .await
        .unwrap();
    assert_eq!(pushed.kind, PushKind::Updated { forced: true });
    assert_eq!(remote.branch(BRANCH).as_deref(), Some(other.as_str()));
    let again = mirror
        .push_branch(&none, &other, BRANCH, BranchExpectation::At(other.clone()))
        .await
        .unwrap();
    assert_eq!(again.kind, PushKind::UpToDate);

    // An expectation that is not a commit id is refused before anything runs.
    let error = mirror
        .push_branch(&none, &third, BRANCH, BranchExpectation::At("trunk".into()))
        .await
        .unwrap_err();
    assert!(matches!(error, PushError::InvalidExpectation(_)), "{error:?}");
    assert_eq!(remote.branch(BRANCH).as_deref(), Some(other.as_str()));

    // A fetch afterwards agrees with what was pushed.
    mirror.fetch(&none).await.unwrap();
    assert_eq!(mirror.resolve_commit(BRANCH).await.unwrap(), other);
    let config = std::fs::read_to_string(mirror.path().join("config")).unwrap();
    assert!(!config.contains("remote"), "the mirror names no remote:\n{config}");
}

#[tokio::test]
async fn remote_branch_names_exactly_one_branch() {
    let remote = Remote::new();
    let trunk = remote.branch("trunk").unwrap();
    // ls-remote matches patterns at any `/`: this one ends with `refs/heads/errand/task_x`.
    git(&remote.bare, &["branch", "nested/refs/heads/errand/task_x", &trunk]);
    let mirror = Mirror::new(&remote.mirrors, remote.file_url());
    // No fetch yet: no mirror on disk, and the question is answered anyway.
    assert_eq!(mirror.remote_branch(&Credentials::None, BRANCH).await.unwrap(), None);
    assert_eq!(
        mirror.remote_branch(&Credentials::None, "trunk").await.unwrap().as_deref(),
        Some(trunk.as_str())
    );
    assert!(!mirror.path().exists());
}

#[tokio::test]
async fn a_token_pushes_over_http_and_a_wrong_one_is_refused_without_showing_it() {
    const TOKEN: &str = "tok_PUSH_RIGHT_51c9";
    const WRONG: &str = "tok_PUSH_WRONG_0b7e";
    let remote = Remote::new();
    let server = GitHttpServer::start(remote.served_root(), "bot", TOKEN).await.unwrap();
    let url = RemoteUrl::parse(&server.url("team/remote.git")).unwrap();
    let mirror = Mirror::new(&remote.mirrors, url);
    let right = Credentials::Token { user: "bot".into(), token: TOKEN.into() };
    let wrong = Credentials::Token { user: "bot".into(), token: WRONG.into() };
    mirror.fetch(&right).await.unwrap();
    let base = mirror.resolve_commit("HEAD").await.unwrap();
    let commit = mirror.commit_patch(&base, &new_file("b.txt", "one"), "Add b\n").await.unwrap();

    let before = remote.refs();
    let error =
        mirror.push_branch(&wrong, &commit, BRANCH, BranchExpectation::Absent).await.unwrap_err();
    assert!(matches!(error, PushError::TokenRefused { .. }), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(WRONG) && !shown.contains(TOKEN), "{shown}");
    assert!(error.to_string().contains("the remote refused the token for pushing"), "{error}");
    assert_eq!(remote.refs(), before, "nothing reached the remote");
    assert!(mirror.resolve_commit(BRANCH).await.is_err(), "the mirror did not move");
    let error = mirror.remote_branch(&wrong, BRANCH).await.unwrap_err();
    assert!(!format!("{error} {error:?}").contains(WRONG), "{error:?}");

    let pushed =
        mirror.push_branch(&right, &commit, BRANCH, BranchExpectation::Absent).await.unwrap();
    assert_eq!(pushed.kind, PushKind::Created);
    assert_eq!(remote.branch(BRANCH).as_deref(), Some(commit.as_str()));
    assert_eq!(mirror.remote_branch(&right, BRANCH).await.unwrap().as_deref(), Some(&*commit));
    assert!(
        server.requests().iter().any(|r| r.authorized && r.target.contains("git-receive-pack")),
        "{:?}",
        server.requests()
    );
    for needle in [TOKEN, WRONG, "Authorization", "extraHeader"] {
        assert!(!grep(&remote.mirrors, needle), "{needle} found in the mirror");
    }
}

#[tokio::test]
async fn a_push_declined_by_the_remote_carries_the_remote_s_words() {
    const TOKEN: &str = "tok_HOOK_33a1";
    let remote = Remote::new();
    let hook = remote.bare.join("hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, "#!/bin/sh\necho 'errand/* branches are frozen by policy' >&2\nexit 1\n")
        .unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&hook, executable).unwrap();
    let server = GitHttpServer::start(remote.served_root(), "bot", TOKEN).await.unwrap();
    let mirror = Mirror::new(&remote.mirrors, server.url("team/remote.git").parse().unwrap());
    let creds = Credentials::Token { user: "bot".into(), token: TOKEN.into() };
    mirror.fetch(&creds).await.unwrap();
    let base = mirror.resolve_commit("HEAD").await.unwrap();
    let commit = mirror.commit_patch(&base, &new_file("b.txt", "one"), "Add b\n").await.unwrap();

    let before = remote.refs();
    let error =
        mirror.push_branch(&creds, &commit, BRANCH, BranchExpectation::Absent).await.unwrap_err();
    match &error {
        PushError::Declined { reason, message, .. } => {
            assert_eq!(reason, "pre-receive hook declined");
            assert_eq!(message, "errand/* branches are frozen by policy");
        }
        other => panic!("{other:?}"),
    }
    let shown = error.to_string();
    assert!(shown.contains("refused the push to `errand/task_x`"), "{shown}");
    assert!(shown.ends_with("The remote said:\nerrand/* branches are frozen by policy"), "{shown}");
    assert!(!format!("{shown} {error:?}").contains(TOKEN));
    assert_eq!(remote.refs(), before);
    assert!(mirror.resolve_commit(BRANCH).await.is_err(), "the mirror did not move");
}

#[tokio::test]
async fn bad_branch_names_are_refused_before_anything_reaches_the_remote() {
    const TOKEN: &str = "tok_NAMES_9d2f";
    let remote = Remote::new();
    let server = GitHttpServer::start(remote.served_root(), "bot", TOKEN).await.unwrap();
    let mirror = Mirror::new(&remote.mirrors, server.url("team/remote.git").parse().unwrap());
    let creds = Credentials::Token { user: "bot".into(), token: TOKEN.into() };
    mirror.fetch(&creds).await.unwrap();
    let base = mirror.resolve_commit("HEAD").await.unwrap();
    let commit = mirror.commit_patch(&base, &new_file("b.txt", "one"), "Add b\n").await.unwrap();
    let requests = server.requests().len();
    let before = remote.refs();
    let mirror_refs = git(mirror.path(), &["for-each-ref"]);

    for name in [
        "-x",
        "--force",
        "a..b",
        "refs/../x",
        "refs/heads/x",
        "with space",
        "tab\there",
        "",
        "x.lock",
        "a~1",
        "a:b",
        "@{-1}",
        "HEAD",
        "trailing/",
        "x\nrefs/heads/y",
    ] {
        for expect in [BranchExpectation::Absent, BranchExpectation::FastForward] {
            let error = mirror.push_branch(&creds, &commit, name, expect).await.unwrap_err();
            assert!(matches!(error, PushError::InvalidBranch { .. }), "{name:?}: {error:?}");
            assert!(error.to_string().contains("is not a valid branch name"), "{error}");
        }
        let error = mirror.remote_branch(&creds, name).await.unwrap_err();
        assert!(error.to_string().contains("is not a valid branch name"), "{name:?}: {error}");
    }
    assert_eq!(server.requests().len(), requests, "no request reached the server");
    assert_eq!(remote.refs(), before);
    assert_eq!(git(mirror.path(), &["for-each-ref"]), mirror_refs);
}
