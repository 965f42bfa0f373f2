//! Mirrors of remote repositories and checkouts from them, against the real `git`: remotes as
//! bare repositories over `file://`, over smart HTTP with a token (`git http-backend` on
//! loopback) and over SSH (a `GIT_SSH_COMMAND` that runs the remote side locally).

use std::path::{Path, PathBuf};
use std::process::Command;

use errand_git::{Credentials, GitError, Mirror, RemoteUrl, clone_from_mirror};
use errand_testkit::git_http::GitHttpServer;

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

/// A bare remote whose default branch is `trunk` (not git's default, so following the
/// remote's `HEAD` is tested), fed by a work repository with one commit.
struct Remote {
    _tmp: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
}

impl Remote {
    fn new() -> Remote {
        let tmp = tempfile::tempdir().unwrap();
        let bare = tmp.path().join("served/team/remote.git");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "trunk"]);
        git(&work, &["init", "-q", "-b", "trunk"]);
        let remote = Remote { _tmp: tmp, bare, work };
        remote.commit("a.txt", "first\n");
        remote
    }

    /// Commits `path` with `contents` and pushes it to the remote's `trunk`; returns the commit.
    fn commit(&self, path: &str, contents: &str) -> String {
        std::fs::write(self.work.join(path), contents).unwrap();
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-qm", contents.trim()]);
        git(&self.work, &["push", "-q", self.bare.to_str().unwrap(), "HEAD:refs/heads/trunk"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn file_url(&self) -> RemoteUrl {
        RemoteUrl::parse(&format!("file://{}", self.bare.display())).unwrap()
    }
}

/// Whether any file under `dir` contains `needle` (`grep -r`, binary files included).
fn grep(dir: &Path, needle: &str) -> bool {
    let out = Command::new("grep").args(["-r", "-a", "-F", "-q", "--", needle]).arg(dir).output();
    let status = out.unwrap().status;
    assert!(status.code() == Some(0) || status.code() == Some(1), "grep failed");
    status.success()
}

/// The files under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.push(path.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn a_file_remote_is_mirrored_checked_out_without_copying_and_refetched() {
    let remote = Remote::new();
    let mirrors = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(mirrors.path(), remote.file_url());
    let name = mirror.path().file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with(".git") && name.len() == 16 + 4, "{name}");
    assert!(!mirror.path().exists(), "nothing on disk before the first fetch");

    mirror.fetch(&Credentials::None).await.unwrap();
    let first = git(&remote.work, &["rev-parse", "HEAD"]);
    assert_eq!(mirror.resolve_commit("trunk").await.unwrap(), first);
    assert_eq!(mirror.resolve_commit("HEAD").await.unwrap(), first, "HEAD follows the remote's");
    assert!(matches!(mirror.resolve_commit("nope").await, Err(GitError::NoSuchCommit(_))));
    let config = std::fs::read_to_string(mirror.path().join("config")).unwrap();
    assert!(!config.contains("remote"), "the mirror names no remote:\n{config}");

    let checkouts = tempfile::tempdir().unwrap();
    let dest = checkouts.path().join("checkout");
    clone_from_mirror(&mirror, &first, &dest).await.unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("a.txt")).unwrap(), "first\n");
    assert_eq!(git(&dest, &["rev-parse", "HEAD"]), first);
    // No object was copied: the checkout's object store is only the pointer to the mirror's.
    assert_eq!(files_under(&dest.join(".git/objects")), vec!["info/alternates".to_string()]);
    let alternates = std::fs::read_to_string(dest.join(".git/objects/info/alternates")).unwrap();
    assert_eq!(
        Path::new(alternates.trim()).canonicalize().unwrap(),
        mirror.path().join("objects").canonicalize().unwrap()
    );
    assert!(!dest.join(".git/hooks").exists(), "no template hooks");

    // A new commit and a new branch on the remote, then a branch deleted: a fetch sees them.
    let second = remote.commit("b.txt", "second\n");
    git(&remote.bare, &["branch", "feature", &first]);
    mirror.fetch(&Credentials::None).await.unwrap();
    assert_eq!(mirror.resolve_commit("trunk").await.unwrap(), second);
    assert_eq!(mirror.resolve_commit("feature").await.unwrap(), first);
    git(&remote.bare, &["branch", "-D", "feature"]);
    mirror.fetch(&Credentials::None).await.unwrap();
    assert!(mirror.resolve_commit("feature").await.is_err(), "--prune drops deleted branches");
    // The older checkout still reads its commit through the mirror.
    assert_eq!(git(&dest, &["show", "HEAD:a.txt"]), "first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_of_one_mirror_take_turns_and_both_succeed() {
    let remote = Remote::new();
    for i in 0..5 {
        remote.commit(&format!("f{i}.txt"), &format!("{i}\n"));
    }
    let mirrors = tempfile::tempdir().unwrap();
    // Two handles on the same mirror, as two workers would have.
    let one = Mirror::new(mirrors.path(), remote.file_url());
    let two = Mirror::new(mirrors.path(), remote.file_url());
    assert_eq!(one.path(), two.path());
    let (a, b) = tokio::join!(one.fetch(&Credentials::None), two.fetch(&Credentials::None));
    a.unwrap();
    b.unwrap();
    let head = git(&remote.work, &["rev-parse", "HEAD"]);
    assert_eq!(one.resolve_commit("trunk").await.unwrap(), head);
    assert!(one.path().with_extension("lock").is_file(), "the lock file sits beside the mirror");
}

#[tokio::test]
async fn a_token_fetches_over_http_and_never_lands_in_files_or_errors() {
    const TOKEN: &str = "tok_RIGHT_8f3a2c";
    const WRONG: &str = "tok_WRONG_77d1e0";
    let remote = Remote::new();
    let served = remote.bare.parent().unwrap().parent().unwrap();
    let server = GitHttpServer::start(served, "bot", TOKEN).await.unwrap();
    let url = RemoteUrl::parse(&server.url("team/remote.git")).unwrap();
    let mirrors = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(mirrors.path(), url.clone());

    // Without credentials the server refuses, and git does not prompt.
    let anonymous = mirror.fetch(&Credentials::None).await.unwrap_err().to_string();
    assert!(anonymous.contains("needs credentials: configure a token"), "{anonymous}");

    // A wrong token: refused, and neither token appears in the error.
    let wrong = Credentials::Token { user: "bot".into(), token: WRONG.into() };
    let error = mirror.fetch(&wrong).await.unwrap_err();
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(WRONG) && !shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("refused the token configured for 127.0.0.1"), "{shown}");
    }
    assert!(mirror.resolve_commit("trunk").await.is_err());

    // The right token.
    let right = Credentials::Token { user: "bot".into(), token: TOKEN.into() };
    mirror.fetch(&right).await.unwrap();
    let head = git(&remote.work, &["rev-parse", "HEAD"]);
    assert_eq!(mirror.resolve_commit("trunk").await.unwrap(), head);
    assert_eq!(mirror.resolve_commit("HEAD").await.unwrap(), head);
    assert!(server.requests().iter().any(|r| r.authorized && r.target.contains("upload-pack")));

    let checkouts = tempfile::tempdir().unwrap();
    let dest = checkouts.path().join("checkout");
    clone_from_mirror(&mirror, &head, &dest).await.unwrap();
    for dir in [mirrors.path(), dest.as_path()] {
        for needle in [TOKEN, WRONG, "Authorization", "extraHeader"] {
            assert!(!grep(dir, needle), "{needle} found under {}", dir.display());
        }
    }
    let checkout_config = std::fs::read_to_string(dest.join(".git/config")).unwrap();
    assert!(!checkout_config.contains("http"), "{checkout_config}");
}

#[tokio::test]
async fn an_ssh_remote_is_reached_through_the_configured_command() {
    let remote = Remote::new();
    // Stands in for ssh: runs the command git asks the remote host to run, here. `-G` is git
    // asking which ssh it is; failing it makes git use the plainest invocation.
    let wrapper = remote.work.parent().unwrap().join("fake-ssh");
    std::fs::write(
        &wrapper,
        "[ \"$1\" = -G ] && exit 1\nfor last; do :; done\necho \"$@\" >> \"$0.log\"\nexec sh -c \"$last\"\n",
    )
    .unwrap();
    let url = RemoteUrl::parse(&format!("ssh://git@localhost{}", remote.bare.display())).unwrap();
    let mirrors = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(mirrors.path(), url);
    let ssh = Credentials::Ssh { command: format!("sh {}", wrapper.display()) };
    mirror.fetch(&ssh).await.unwrap();
    let head = git(&remote.work, &["rev-parse", "HEAD"]);
    assert_eq!(mirror.resolve_commit("HEAD").await.unwrap(), head);
    let log = std::fs::read_to_string(wrapper.with_extension("log")).unwrap();
    assert!(log.contains("git@localhost git-upload-pack"), "{log}");
}

#[tokio::test]
async fn bad_urls_and_mismatched_credentials_are_refused_before_git_runs() {
    let mirrors = tempfile::tempdir().unwrap();
    let marker = mirrors.path().join("pwned");
    for input in [
        format!("ext::sh -c touch% {}", marker.display()),
        "fd::3".to_string(),
        "https://x-access-token:tok_SECRET@github.com/o/r.git".to_string(),
        "ssh://-oProxyCommand=touch%20pwned/r".to_string(),
        "host:-oProxyCommand=touch pwned".to_string(),
        "git://github.com/o/r".to_string(),
        "https://github.com/".to_string(),
    ] {
        let error = RemoteUrl::parse(&input).unwrap_err().to_string();
        assert!(!error.contains("tok_SECRET"), "{error}");
    }
    // Credentials for the wrong kind of URL stop before any git process (or directory).
    let file = RemoteUrl::parse("file:///nonexistent/r.git").unwrap();
    let mirror = Mirror::new(&mirrors.path().join("sub"), file);
    let error = mirror.fetch(&Credentials::token("tok_SECRET")).await.unwrap_err().to_string();
    assert!(error.contains("only over HTTP(S)") && !error.contains("tok_SECRET"), "{error}");
    let injected = RemoteUrl::parse("https://h.example/o/r").unwrap();
    let mirror = Mirror::new(&mirrors.path().join("sub"), injected);
    let error = mirror.fetch(&Credentials::token("t\r\nX-Evil: 1")).await.unwrap_err();
    assert!(error.to_string().contains("line break"), "{error}");
    assert_eq!(files_under(mirrors.path()), Vec::<String>::new(), "nothing was created");
}
