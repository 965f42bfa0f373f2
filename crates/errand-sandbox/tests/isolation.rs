//! The local sandbox against real bubblewrap and real overlays: commands run, stream and end
//! as they should, and cannot reach what they must not.

mod common;

use std::time::Duration;

use common::{Fixture, git, request, run, sandbox_available, sh};
use errand_sandbox::{LocalSandbox, Sandbox, SandboxError};

fn fixture() -> Fixture {
    Fixture::new(&[("README.md", b"# demo\n"), ("src/lib.rs", b"pub fn one() -> u32 { 1 }\n")])
}

#[tokio::test]
async fn output_streams_in_order_and_the_exit_code_is_kept() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("stream").await;
    let (outcome, output) = sh(&sandbox, "echo one; echo two >&2; echo three; exit 3").await;
    assert_eq!(output, "one\ntwo\nthree\n");
    assert_eq!(outcome.exit_code, Some(3));
    assert!(!outcome.timed_out);

    // The first line reaches us while the command still runs: the command waits for a file
    // that the output callback creates when it sees that line.
    let go = fx.data_dir().join("attempts/stream/tmp/go");
    let mut seen = String::new();
    let mut req = request(&[
        "sh",
        "-c",
        "echo first; until [ -e /tmp/go ]; do sleep 0.01; done; echo second",
    ]);
    req.timeout = Duration::from_secs(30);
    let outcome = sandbox
        .exec(req, &mut |chunk| {
            seen.push_str(&String::from_utf8_lossy(chunk));
            if seen.contains("first") {
                std::fs::write(&go, "").unwrap();
            }
        })
        .await
        .unwrap();
    assert!(!outcome.timed_out, "the first line was not streamed");
    assert_eq!(seen, "first\nsecond\n");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn stdin_environment_and_identity() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("env").await;
    let mut req = request(&["cat"]);
    req.stdin = Some(b"from stdin\n".to_vec());
    assert_eq!(run(&sandbox, req).await.1, "from stdin\n");

    let mut req =
        request(&["sh", "-c", "echo $FOO:$HOME:$USER:$(pwd):$(id -u):$(id -g):$(hostname); env"]);
    req.env = vec![("FOO".into(), "bar".into())];
    let (outcome, output) = run(&sandbox, req).await;
    assert!(outcome.success(), "{output}");
    let first = output.lines().next().unwrap();
    assert_eq!(first, "bar:/home/agent:agent:/workspace:1000:1000:errand");
    for leaked in ["CARGO", "RUST", "SSH_", "ERRAND_"] {
        assert!(!output.contains(leaked), "host variable {leaked} leaked:\n{output}");
    }
    let (_, whoami) =
        sh(&sandbox, "whoami; ls -ld /workspace /home/agent /tmp | awk '{print $3}'").await;
    assert_eq!(whoami, "agent\nagent\nagent\nagent\n");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn no_capabilities_and_uid_1000() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("caps").await;
    let (outcome, status) = sh(&sandbox, "cat /proc/self/status").await;
    assert!(outcome.success());
    for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap_or_else(|| panic!("{field} missing from:\n{status}"));
        let value = line.split_whitespace().nth(1).unwrap();
        assert_eq!(u64::from_str_radix(value, 16).unwrap(), 0, "{line}");
    }
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().skip(1).collect::<Vec<_>>(), ["1000"; 4]);
    let facts = sandbox.isolation();
    assert!(facts.iter().any(|f| f.starts_with("bubblewrap ")), "{facts:?}");
    assert!(facts.iter().any(|f| f == "capabilities: none"), "{facts:?}");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn the_network_is_unreachable() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("net").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("echo hi > /dev/tcp/127.0.0.1/{port} && echo CONNECTED");
    let (outcome, output) = run(&sandbox, request(&["bash", "-c", &script])).await;
    assert!(!outcome.success(), "{output}");
    assert!(!output.contains("CONNECTED"), "{output}");
    // A connection would be waiting in the backlog by now; there is none.
    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the server saw a connection: {accepted:?}"
    );
    let (_, interfaces) = sh(&sandbox, "cat /proc/net/dev").await;
    assert!(!interfaces.contains("eth"), "{interfaces}");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn host_files_stay_invisible() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let secret = fx.tmp.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let sandbox = fx.sandbox("hidden").await;
    let probes = [
        secret.display().to_string(),
        fx.data_dir().display().to_string(),
        fx.repo.display().to_string(),
        "/root/.bashrc".into(),
        "/etc/shadow".into(),
        "/etc/ssh".into(),
        "/etc/ssl/private".into(),
        "/run/errand-sandbox".into(),
        "/var/lib".into(),
        "/home/agent/../../root".into(),
    ];
    let mut command = vec![
        "sh",
        "-c",
        r#"for p in "$@"; do test -e "$p" && echo "VISIBLE $p"; done; ls -A /root 2>/dev/null; true"#,
        "probe",
    ];
    command.extend(probes.iter().map(String::as_str));
    let (outcome, output) = run(&sandbox, request(&command)).await;
    assert!(outcome.success());
    assert_eq!(output, "", "the sandbox sees host paths");
    let (_, passwd) = sh(&sandbox, "cat /etc/passwd").await;
    assert!(!passwd.contains("root:x:0:0:root:/root:/bin/bash"), "{passwd}");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn writes_land_in_the_attempts_layer_only() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let first = fx.sandbox("writer").await;
    let second = fx.sandbox("reader").await;
    let (outcome, output) =
        sh(&first, "echo new > new.txt && echo changed > README.md && rm src/lib.rs").await;
    assert!(outcome.success(), "{output}");

    let upper = fx.data_dir().join("attempts/writer/upper");
    assert_eq!(std::fs::read_to_string(upper.join("new.txt")).unwrap(), "new\n");
    for untouched in [fx.lower(), fx.repo.clone()] {
        assert_eq!(std::fs::read_to_string(untouched.join("README.md")).unwrap(), "# demo\n");
        assert!(!untouched.join("new.txt").exists());
        assert!(untouched.join("src/lib.rs").exists());
    }
    let (_, seen) = sh(&second, "cat README.md; ls").await;
    assert_eq!(seen, "# demo\nREADME.md\nsrc\n", "attempts see each other's work");

    // Nothing stays mounted on the host after the commands.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(fx.data_dir().to_str().unwrap()), "{mounts}");
    first.destroy().await.unwrap();
    second.destroy().await.unwrap();
    assert!(!fx.data_dir().join("attempts/writer").exists());
}

/// Spawns a process tree that outlives the timeout and checks that every process is gone.
async fn timeout_kills_the_tree(script_prefix: &str) {
    let fx = fixture();
    let sandbox = fx.sandbox("timeout").await;
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let marker = format!("1000.{}{nanos:09}", std::process::id());
    let script = format!("{script_prefix} sleep {marker} & sleep {marker}; wait");
    let mut req = request(&["sh", "-c", &script]);
    req.timeout = Duration::from_millis(500);
    let (outcome, _) = run(&sandbox, req).await;
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, None);

    let mut survivors = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(&marker)
        {
            survivors.push(entry.file_name());
        }
    }
    assert!(survivors.is_empty(), "still running: {survivors:?}");

    // The sandbox still works afterwards.
    assert_eq!(sh(&sandbox, "echo alive").await.1, "alive\n");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_timeout_kills_the_command_and_its_children() {
    if sandbox_available() {
        timeout_kills_the_tree("").await;
    }
}

#[tokio::test]
async fn a_timeout_kills_commands_that_ignore_sigterm() {
    if sandbox_available() {
        timeout_kills_the_tree("trap '' TERM INT HUP;").await;
    }
}

#[tokio::test]
async fn workdirs_are_checked() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("workdirs").await;
    let mut req = request(&["pwd"]);
    req.workdir = "src".into();
    assert_eq!(run(&sandbox, req.clone()).await.1, "/workspace/src\n");
    req.workdir = "/tmp".into();
    assert_eq!(run(&sandbox, req.clone()).await.1, "/tmp\n");

    for escape in ["..", "src/../../etc", "../workspace"] {
        req.workdir = escape.into();
        let result = sandbox.exec(req.clone(), &mut |_| {}).await;
        assert!(matches!(result, Err(SandboxError::OutsideWorkspace(_))), "{escape}: {result:?}");
    }
    req.workdir = "no/such/dir".into();
    let result = sandbox.exec(req.clone(), &mut |_| {}).await;
    assert!(
        matches!(&result, Err(SandboxError::NoSuchWorkdir(dir)) if dir == "/workspace/no/such/dir"),
        "{result:?}"
    );
    // A command that does not exist is the command's failure, reported like a shell would.
    let (outcome, output) = run(&sandbox, request(&["no-such-command"])).await;
    assert_eq!(outcome.exit_code, Some(127), "{output}");
    assert!(output.contains("not found"), "{output}");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn read_file_reads_inside_the_sandbox() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("read").await;
    sh(&sandbox, "echo edited > README.md; ln -s /etc/shadow leak; mkdir d").await;
    assert_eq!(sandbox.read_file("README.md").await.unwrap(), Some(b"edited\n".to_vec()));
    assert_eq!(
        sandbox.read_file("/workspace/src/lib.rs").await.unwrap(),
        Some(b"pub fn one() -> u32 { 1 }\n".to_vec())
    );
    assert_eq!(sandbox.read_file("missing.txt").await.unwrap(), None);
    assert_eq!(sandbox.read_file("d").await.unwrap(), None);
    assert_eq!(sandbox.read_file("leak").await.unwrap(), None);
    for escape in ["../etc/passwd", "/etc/passwd"] {
        let result = sandbox.read_file(escape).await;
        assert!(matches!(result, Err(SandboxError::OutsideWorkspace(_))), "{result:?}");
    }
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn apply_patch_runs_the_helper_inside() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("patch").await;
    let outcome = sandbox.apply_patch("*** Begin Patch", "src").await.unwrap();
    assert!(outcome.success);
    assert_eq!(
        outcome.output,
        "cwd=/workspace/src args=apply-patch --json --root /workspace stdin=*** Begin Patch"
    );
    assert_eq!(outcome.changes.len(), 1);
    assert!(matches!(
        sandbox.apply_patch("x", "../..").await,
        Err(SandboxError::OutsideWorkspace(_))
    ));
    sandbox.destroy().await.unwrap();

    // A helper that prints no result line: the error carries what it said.
    let broken = fx.tmp.path().join("broken-helper");
    std::fs::write(&broken, "#!/bin/sh\necho 'panicked at boom' >&2\nexit 101\n").unwrap();
    common::chmod(&broken, 0o755);
    let mut config = fx.config.clone();
    config.helper = broken;
    let sandbox =
        errand_sandbox::LocalSandbox::create(&config, &fx.repo, "HEAD", "patch2").await.unwrap();
    let error = sandbox.apply_patch("x", "").await.unwrap_err().to_string();
    assert!(error.contains("panicked at boom") && error.contains("101"), "{error}");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn attempts_on_one_commit_share_one_checkout() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let (a, b) = tokio::join!(fx.sandbox("one"), fx.sandbox("two"));
    let checkouts: Vec<_> = std::fs::read_dir(fx.data_dir().join("checkouts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(checkouts, vec![fx.head()]);
    assert_eq!(sh(&a, "cat README.md").await.1, "# demo\n");
    assert_eq!(sh(&b, "cat README.md").await.1, "# demo\n");
    let duplicate = errand_sandbox::LocalSandbox::create(&fx.config, &fx.repo, "HEAD", "one").await;
    assert!(duplicate.is_err(), "two sandboxes must not share an attempt directory");
    a.destroy().await.unwrap();
    b.destroy().await.unwrap();
}

#[tokio::test]
async fn no_host_file_descriptor_leaks_into_the_sandbox() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("fds").await;
    // An inheritable descriptor of the host process (no CLOEXEC), as a careless library or
    // errand's own parent might leave open: bwrap would pass it on.
    let secret = fx.tmp.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let file = std::fs::File::open(&secret).unwrap();
    // SAFETY: dup of a valid descriptor; the copy is closed below.
    let leaked = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&file)) };
    assert!(leaked > 2);
    let (outcome, output) = sh(&sandbox, "ls /proc/self/fd; ls -l /proc/self/fd").await;
    // SAFETY: closing the descriptor dup returned above.
    unsafe { libc::close(leaked) };
    assert!(outcome.success(), "{output}");
    let fds: Vec<&str> = output.lines().take_while(|l| !l.starts_with("total")).collect();
    // 0-2 are the standard streams; 3 is the directory ls itself opened.
    assert_eq!(fds, ["0", "1", "2", "3"], "{output}");
    assert!(!output.contains("secret"), "{output}");

    let mut req = request(&["echo", "unbounded"]);
    req.timeout = Duration::MAX;
    assert_eq!(run(&sandbox, req).await.1, "unbounded\n");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn setup_errors_say_what_to_do() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let mut config = fx.config.clone();
    config.bwrap = "/nonexistent/bwrap".into();
    let error = errand_sandbox::LocalSandbox::create(&config, &fx.repo, "HEAD", "nobwrap")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("apt-get install bubblewrap"), "{error}");

    let error = errand_sandbox::LocalSandbox::create(&fx.config, &fx.repo, "no-such-ref", "noref")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no-such-ref"), "{error}");
    assert!(!fx.data_dir().join("attempts/noref").exists());
}

#[tokio::test]
async fn a_checkout_of_a_mirror_links_its_objects_and_git_still_works_inside() {
    if !sandbox_available() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let fixture = Fixture::new(&[("a.txt", b"one\n")]);
    // A remote's mirror lives in the data dir: Errand's own, on the checkouts' file system.
    let mirrors = fixture.data_dir().join("mirrors");
    std::fs::create_dir_all(&mirrors).unwrap();
    git(&mirrors, &["clone", "-q", "--bare", fixture.repo.to_str().unwrap(), "m.git"]);
    let mirror = mirrors.join("m.git");
    let sandbox =
        LocalSandbox::create(&fixture.config, &mirror, "HEAD", "att-linked").await.unwrap();

    // The checkout's object files are the mirror's (same inodes), and keep the mirror's owner.
    let lower = fixture.lower();
    let mut linked = 0;
    let mut stack = vec![lower.join(".git/objects")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.nlink() > 1 {
                let relative = path.strip_prefix(lower.join(".git")).unwrap();
                let theirs = std::fs::metadata(mirror.join(relative)).unwrap();
                assert_eq!(
                    (meta.ino(), meta.uid()),
                    (theirs.ino(), theirs.uid()),
                    "{}",
                    path.display()
                );
                linked += 1;
            }
        }
    }
    assert!(linked > 0, "no object was linked from the mirror");

    // Inside, git reads the history and can still write objects of its own.
    let (outcome, output) = sh(
        &sandbox,
        "git log --format=%s -1 && echo two > b.txt && git add b.txt && git status --short",
    )
    .await;
    assert_eq!(outcome.exit_code, Some(0), "{output}");
    assert!(output.contains("base") && output.contains("A  b.txt"), "{output}");
    // The mirror is untouched.
    git(&mirror, &["fsck", "--no-progress"]);
}
