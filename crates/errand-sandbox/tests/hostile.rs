//! A hostile agent against real bubblewrap, real cgroups and the real seccomp filter: a fork
//! bomb, a memory hog and the system calls that attack the sandbox's walls are contained, and
//! ordinary work still runs.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Fixture, request, run, sandbox_available, sh};
use errand_sandbox::{Limits, LocalSandbox, Sandbox};

fn fixture() -> Fixture {
    Fixture::new(&[
        ("README.md", b"# demo\n"),
        ("calc.py", b"def add(a, b):\n    return a + b\n"),
        (
            "test_calc.py",
            b"import unittest\nfrom calc import add\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\nunittest.main()\n",
        ),
    ])
}

/// Whether this host offers cgroups errand can use (then the tests insist on them).
fn host_has_cgroups() -> bool {
    Path::new("/sys/fs/cgroup/memory/tasks").exists()
        || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.contains("memory"))
}

async fn limited(fx: &Fixture, attempt: &str, limits: Limits) -> LocalSandbox {
    LocalSandbox::create_limited(&fx.config, &fx.repo, "HEAD", attempt, &limits)
        .await
        .expect("create the sandbox")
}

/// Calls system calls directly through ctypes and prints `name result-or-errno`. The arguments
/// make each call fail with something other than EPERM (EFAULT, EINVAL, EBADF, ESRCH...) or
/// succeed when nothing filters it, so EPERM can only come from the filter. (Measured without
/// the filter in plain bwrap on Linux 6.x: see the expectations below.)
const PROBE: &str = r#"
import ctypes, errno, os, platform
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
x86 = platform.machine() == "x86_64"
def call(name, x86_nr, arm_nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(x86_nr if x86 else arm_nr), *[ctypes.c_long(a) for a in args])
    e = ctypes.get_errno()
    print(name, r if r != -1 else errno.errorcode.get(e, e))
call("mount", 165, 40, 1, 1, 1, 0, 0)                     # unfiltered: EFAULT
call("umount2", 166, 39, 1, 0xffffffff)                   # EINVAL
call("unshare", 272, 97, 0xffffffff)                      # EINVAL
call("unshare_user", 272, 97, 0x10000000)                 # 0: a new user namespace
call("setns", 308, 268, -1, 0)                            # EBADF
call("ptrace", 101, 117, 2, os.getpid(), 0, 0)            # PEEKDATA of itself: ESRCH
call("keyctl", 250, 219, 0xdead, 0, 0, 0, 0)              # EOPNOTSUPP
call("bpf", 321, 280, 0xdead, 0, 0)                       # EINVAL
call("io_uring_setup", 425, 425, 0, 0)                    # EFAULT
call("perf_event_open", 298, 241, 0, 0, -1, -1, 0)        # EFAULT
call("userfaultfd", 323, 282, 0xffffffff)                 # EINVAL
call("process_vm_readv", 310, 270, 0, 0, 0, 0, 0, 1)      # EINVAL
call("clone_newuser", 56, 220, 0x10000000 | 0x10000, 0, 0, 0, 0)  # with CLONE_THREAD: EINVAL
call("clone3", 435, 435, 0, 0)                            # EINVAL
call("open_by_handle_at", 304, 265, -1, 0, 0)             # EFAULT
call("personality", 135, 92, 0x0040000)                   # ADDR_NO_RANDOMIZE: accepted
call("personality_query", 135, 92, 0xffffffff)            # the current persona
"#;

#[tokio::test]
async fn system_calls_against_the_walls_are_denied() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("seccomp").await;
    let (outcome, output) = run(&sandbox, request(&["python3", "-c", PROBE])).await;
    assert!(outcome.success(), "{output}");
    let results: std::collections::HashMap<&str, &str> =
        output.lines().filter_map(|l| l.split_once(' ')).collect();
    for name in [
        "mount",
        "umount2",
        "unshare",
        "unshare_user",
        "setns",
        "ptrace",
        "keyctl",
        "bpf",
        "io_uring_setup",
        "perf_event_open",
        "userfaultfd",
        "process_vm_readv",
        "clone_newuser",
        "open_by_handle_at",
        "personality",
    ] {
        assert_eq!(results.get(name), Some(&"EPERM"), "{name}:\n{output}");
    }
    // glibc falls back to clone on ENOSYS; the query of the persona is harmless.
    assert_eq!(results.get("clone3"), Some(&"ENOSYS"), "{output}");
    assert_eq!(results.get("personality_query"), Some(&"0"), "{output}");

    // The tools a hostile agent would reach for.
    for (script, refusal) in [
        ("unshare -U true", "Operation not permitted"),
        ("unshare -m true", "Operation not permitted"),
        ("unshare -r id", "Operation not permitted"),
        ("mount -t tmpfs none /tmp", ""),
    ] {
        let (outcome, output) = sh(&sandbox, script).await;
        assert!(!outcome.success(), "`{script}` succeeded:\n{output}");
        assert!(output.contains(refusal), "`{script}`:\n{output}");
    }
    // The filter is installed in the command itself (2 = SECCOMP_MODE_FILTER).
    let (_, status) = sh(&sandbox, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status").await;
    assert_eq!(status, "NoNewPrivs:\t1\nSeccomp:\t2\n");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn ordinary_work_runs_under_the_filter_and_the_limits() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let sandbox = fx.sandbox("ordinary").await;
    let (outcome, output) = sh(&sandbox, "python3 test_calc.py 2>&1 | tail -1").await;
    assert!(outcome.success(), "{output}");
    assert_eq!(output, "OK\n");
    let (outcome, output) =
        sh(&sandbox, "echo x >> README.md && git status --short --untracked-files=no").await;
    assert!(outcome.success(), "{output}");
    assert_eq!(output, " M README.md\n");
    // Threads (clone with CLONE_THREAD) and processes (fork) in numbers a build uses.
    let threads = "import threading\nts=[threading.Thread(target=sum, args=([1,2],)) for _ in range(64)]\n[t.start() for t in ts]; [t.join() for t in ts]; print('threads ok')";
    let (outcome, output) = run(&sandbox, request(&["python3", "-c", threads])).await;
    assert!(outcome.success(), "{output}");
    let (outcome, output) =
        sh(&sandbox, "for i in $(seq 100); do (true) & done; wait; echo forks ok").await;
    assert!(outcome.success(), "{output}");
    assert_eq!(output, "forks ok\n");
    if Path::new("/usr/bin/cc").exists() {
        let script = "printf '#include <stdio.h>\\nint main(void){puts(\"compiled\");return 0;}\\n' > /tmp/m.c && cc -o /tmp/m /tmp/m.c && /tmp/m";
        let (outcome, output) = sh(&sandbox, script).await;
        assert!(outcome.success(), "{output}");
        assert_eq!(output, "compiled\n");
    }
    assert_eq!(outcome.limit_hit, None);
    sandbox.destroy().await.unwrap();
}

/// The pids of host processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_is_contained_and_another_attempt_runs_on() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let pids = 64;
    let bombed = limited(&fx, "bomb", Limits { pids: Some(pids), ..Limits::default() }).await;
    let bystander = fx.sandbox("bystander").await;
    if host_has_cgroups() {
        let facts = bombed.isolation().join("\n");
        assert!(facts.contains("pids 64") && facts.contains("cgroup"), "{facts}");
    }
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let marker = format!("forkbomb{}x{nanos}", std::process::id());
    // Every process doubles and waits for its children, so the bomb never ends by itself: the
    // command's wall clock ends it.
    let script = format!("# {marker}\nf() {{ f & f & wait; }}; f");
    let mut bomb = request(&["bash", "-c", &script]);
    bomb.timeout = Duration::from_secs(8);
    let bomb = tokio::spawn(async move {
        let outcome = run(&bombed, bomb).await;
        (bombed, outcome)
    });

    // Watch the bomb grow from the host, then use the other attempt while it is at its height.
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut most = 0;
    while Instant::now() < deadline {
        most = most.max(processes_with(&marker).len());
        if most >= (pids as usize) / 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(most >= pids as usize / 2, "the bomb never grew (at most {most} processes)");
    let (outcome, output) =
        sh(&bystander, "for i in $(seq 20); do (true) & done; wait; echo bystander ok").await;
    assert!(outcome.success(), "{output}");
    assert_eq!(output, "bystander ok\n");
    most = most.max(processes_with(&marker).len());

    let (bombed, (outcome, output)) = bomb.await.unwrap();
    most = most.max(processes_with(&marker).len());
    assert!(most <= pids as usize, "{most} bomb processes exceeded the limit of {pids}");
    assert!(!outcome.success());
    let hit = outcome.limit_hit.expect("the pids limit was reported");
    assert_eq!(hit.limit, "pids", "{hit:?}");
    assert!(hit.detail.contains("64"), "{hit:?}");
    assert!(output.contains("fork") || output.contains("Resource"), "{output}");
    assert_eq!(processes_with(&marker), Vec::<u32>::new(), "bomb processes survived");
    assert_eq!(sh(&bombed, "echo alive").await.1, "alive\n");
    bombed.destroy().await.unwrap();
    bystander.destroy().await.unwrap();
}

#[tokio::test]
async fn allocating_past_the_memory_limit_is_killed_and_reported() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let limits = Limits { memory_bytes: Some(64 << 20), ..Limits::default() };
    let sandbox = limited(&fx, "memhog", limits).await;
    let facts = sandbox.isolation().join("\n");
    if !host_has_cgroups() {
        eprintln!("no cgroups here; the memory limit is an rlimit:\n{facts}");
        return;
    }
    assert!(facts.contains("memory 64.0 MiB") && facts.contains("cgroup"), "{facts}");
    // Writes every byte of 512 MiB, eight times the limit.
    let hog = "b = b'x' * (512 << 20); print('survived', len(b))";
    let (outcome, output) = run(&sandbox, request(&["python3", "-c", hog])).await;
    assert!(!outcome.success(), "{output}");
    assert!(!output.contains("survived"), "{output}");
    let hit = outcome.limit_hit.expect("the memory limit was reported");
    assert_eq!(hit.limit, "memory", "{hit:?}");
    assert!(hit.detail.contains("64.0 MiB"), "{hit:?}");

    // The attempt goes on, and a command within the limit reports nothing.
    let (outcome, output) = sh(&sandbox, "python3 -c 'print(len(bytearray(8 << 20)))'").await;
    assert!(outcome.success(), "{output}");
    assert_eq!(outcome.limit_hit, None);
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn cgroups_are_created_per_attempt_and_gone_after_destroy() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let (first, second) = tokio::join!(fx.sandbox("cg-one"), fx.sandbox("cg-two"));
    let paths = first.cgroups();
    if !host_has_cgroups() {
        assert!(paths.is_empty());
        return;
    }
    assert!(!paths.is_empty(), "{:?}", first.isolation());
    for path in &paths {
        assert!(path.join("cgroup.procs").exists(), "{}", path.display());
        assert!(!second.cgroups().contains(path), "attempts share {}", path.display());
    }
    // The command runs inside them: seen from the host while it waits for a file that the
    // output callback creates once it has looked. (Inside, the cgroup namespace shows "/".)
    let go = fx.data_dir().join("attempts/cg-one/tmp/go");
    let mut members = Vec::new();
    let mut req = request(&["sh", "-c", "echo started; until [ -e /tmp/go ]; do sleep 0.01; done"]);
    req.timeout = Duration::from_secs(30);
    let outcome = first
        .exec(req, &mut |_| {
            if members.is_empty() {
                for path in &paths {
                    let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap();
                    members.push(procs.lines().count());
                }
                std::fs::write(&go, "").unwrap();
            }
        })
        .await
        .unwrap();
    assert!(outcome.success(), "{outcome:?}");
    assert!(members.iter().all(|&n| n >= 2), "processes per cgroup: {members:?}");
    // The command's processes leave the cgroups as the kernel reaps them, which can trail
    // bwrap's own exit by a moment: wait (bounded) for that, then require it.
    for path in &paths {
        let procs = || std::fs::read_to_string(path.join("cgroup.procs")).unwrap();
        for _ in 0..200 {
            if procs().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert_eq!(procs(), "", "{} still has processes", path.display());
    }

    first.destroy().await.unwrap();
    for path in &paths {
        assert!(!path.exists(), "{} is left behind", path.display());
    }
    assert!(second.cgroups().iter().all(|p| p.exists()), "destroy removed another attempt's");
    second.destroy().await.unwrap();
}

#[tokio::test]
async fn without_cgroups_rlimits_still_bound_memory() {
    if !sandbox_available() {
        return;
    }
    let fx = fixture();
    let limits = Limits { memory_bytes: Some(256 << 20), use_cgroups: false, ..Limits::default() };
    let sandbox = limited(&fx, "rlimits", limits).await;
    assert!(sandbox.cgroups().is_empty());
    let facts = sandbox.isolation().join("\n");
    assert!(facts.contains("memory 256.0 MiB (rlimit RLIMIT_AS, per process)"), "{facts}");
    let hog = "b = b'x' * (512 << 20); print('survived', len(b))";
    let (outcome, output) = run(&sandbox, request(&["python3", "-c", hog])).await;
    assert!(!outcome.success(), "{output}");
    assert!(output.contains("MemoryError"), "{output}");
    let (_, limit) = sh(&sandbox, "ulimit -v").await;
    assert_eq!(limit, format!("{}\n", 256 * 1024));
    sandbox.destroy().await.unwrap();
}
