//! `errand env shell FILE` driven through a pty, as a user's terminal would drive it: the test
//! opens a pty pair, runs the binary on the slave (as its controlling terminal), types into the
//! master and reads what the shell prints, each wait bounded. The shell has the setup phase's
//! view (the secret), uid 1000, a pty of its own with the test's window size (also after a
//! resize), job control and a writable workspace; its exit status becomes errand's, and nothing
//! is left: no attempt directory, no scratch layer, no cgroup. SIGTERM cleans up the same way.

#[allow(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{make_repo, sandbox_available, scratch};

const SECRET: &str = "s3cret-only-setup-sees";
const ENVIRONMENT: &str = r#"
setup_script = "echo never runs in these tests"
[env]
PLAIN = "plain-value"
[secrets]
SECRET_NAME = "s3cret-only-setup-sees"
"#;
/// Bounds every wait for output: generous, since two test binaries may share two cores.
const WAIT: Duration = Duration::from_secs(60);

/// `errand env shell` running on the slave of a pty the test holds the master of.
struct Shell {
    master: std::fs::File,
    output: Arc<(Mutex<Vec<u8>>, Condvar)>,
    /// How far [`Shell::expect`] has read.
    seen: usize,
    child: std::process::Child,
    data: PathBuf,
}

impl Shell {
    fn start(root: &Path) -> Shell {
        let repo = make_repo(root);
        let env_file = root.join("env.toml");
        std::fs::write(&env_file, ENVIRONMENT).unwrap();
        let config = root.join("errand.toml");
        std::fs::write(&config, "").unwrap();
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize { ws_row: 33, ws_col: 101, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty writes two descriptors; name and termios may be null.
        let opened = unsafe {
            libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size)
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh descriptors nothing else owns.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let data = root.join("data");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_errand"));
        command
            .arg("--config")
            .arg(&config)
            .args(["env", "shell"])
            .arg(&env_file)
            .current_dir(&repo)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", root)
            .env("TERM", "dumb")
            .env("ERRAND_DATA_DIR", &data)
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        // SAFETY: setsid and ioctl are async-signal-safe system calls on the child alone.
        unsafe {
            command.pre_exec(|| {
                // A session of its own with the pty as its terminal, as a login shell has: a
                // resize then sends errand SIGWINCH.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop(slave);
        let master = std::fs::File::from(master);
        let output = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let (mut reader, sink) = (master.try_clone().unwrap(), output.clone());
        // Ends when every slave is closed (read fails with EIO) or the test ends.
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buffer) {
                sink.0.lock().unwrap().extend_from_slice(&buffer[..n]);
                sink.1.notify_all();
            }
        });
        Shell { master, output, seen: 0, child, data }
    }

    fn send(&mut self, line: &str) {
        self.master.write_all(format!("{line}\r").as_bytes()).unwrap();
    }

    /// Waits (bounded) for `needle` in the output after what earlier calls consumed, and returns
    /// the output up to and including it.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let (lock, ready) = &*self.output;
        let mut output = lock.lock().unwrap();
        loop {
            let fresh = String::from_utf8_lossy(&output[self.seen..]).into_owned();
            if let Some(at) = fresh.find(needle) {
                self.seen += fresh[..at + needle.len()].len();
                return fresh[..at + needle.len()].to_string();
            }
            let now = Instant::now();
            assert!(now < deadline, "waited {WAIT:?} for {needle:?}; the terminal shows:\n{fresh}");
            output = ready.wait_timeout(output, deadline - now).unwrap().0;
        }
    }

    /// The value the shell prints for `expression` between `KEY=` and `=`.
    fn value(&mut self, key: &str, expression: &str) -> String {
        // The typed line shows `KEY:""=`; only the shell's output has `KEY:=`.
        self.send(&format!("echo \"{key}:\"\"={expression}=\""));
        self.expect(&format!("{key}:="));
        let shown = self.expect("=");
        shown.trim_end_matches('=').to_string()
    }

    /// errand's exit status, waited for (bounded).
    fn exit_status(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "errand did not exit within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize.
        assert_eq!(unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) }, 0);
    }

    /// Entries of a directory under the data dir (none if it does not exist).
    fn entries(&self, dir: &str) -> Vec<String> {
        std::fs::read_dir(self.data.join(dir))
            .map(|entries| {
                entries.flatten().map(|e| e.file_name().to_string_lossy().into()).collect()
            })
            .unwrap_or_default()
    }

    /// The cgroups errand (this child) made: `…/errand/<attempt>-<pid>-<n>` (see cgroup.rs).
    fn cgroups(&self) -> Vec<PathBuf> {
        let marker = format!("-{}-", self.child.id());
        let mut found = Vec::new();
        let mut pending = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
        while let Some((dir, depth)) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if dir.file_name().is_some_and(|n| n == "errand") && name.contains(&marker) {
                    found.push(entry.path());
                } else if depth < 6 {
                    pending.push((entry.path(), depth + 1));
                }
            }
        }
        found
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_shell_on_a_pty_has_the_setup_view_and_leaves_nothing_behind() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let mut shell = Shell::start(root.path());
    let banner = shell.expect("kept:");
    assert!(banner.contains("the setup phase's view"), "{banner}");
    assert!(banner.contains("no snapshot is cached"), "{banner}");
    assert!(banner.contains("SECRET_NAME") && !banner.contains(SECRET), "{banner}");

    assert_eq!(shell.value("S", "$SECRET_NAME"), SECRET, "setup's view has the secret");
    assert_eq!(shell.value("P", "$PLAIN"), "plain-value");
    assert_eq!(shell.value("U", "$(id -u)"), "1000");
    let tty = shell.value("T", "$(tty)");
    assert!(tty.starts_with("/dev/"), "tty names a device: {tty}");
    // Unix98 pty slaves have majors 136..=143 (Documentation/admin-guide/devices.txt).
    let major = shell.value("M", "$(stat -L -c %t \"$(tty)\")");
    assert!(matches!(u32::from_str_radix(&major, 16), Ok(136..=143)), "not a pty: {major}");
    assert_eq!(shell.value("Z", "$(stty size)"), "33 101", "the test's window size");
    // Job control: bash's monitor mode is on only with a controlling terminal.
    assert_eq!(shell.value("J", "${-//[^m]/}"), "m", "job control");
    shell.send("touch /workspace/x");
    assert_eq!(shell.value("W", "$(ls /workspace/x)"), "/workspace/x");

    shell.resize(20, 70);
    // SIGWINCH reaches errand asynchronously: ask until the shell sees it (bounded).
    let mut size = String::new();
    for attempt in 0..50 {
        size = shell.value(&format!("R{attempt}"), "$(stty size)");
        if size == "20 70" {
            break;
        }
    }
    assert_eq!(size, "20 70", "a resize reaches the shell");

    assert_eq!(shell.entries("attempts").len(), 1, "the shell's sandbox exists while it runs");
    assert_eq!(shell.entries("layers").len(), 1, "and its scratch layer");
    let cgroups = shell.cgroups();
    if cgroups.is_empty() {
        eprintln!("note: no cgroup on this machine (rlimits); only the directories are checked");
    }
    shell.send("exit 3");
    assert_eq!(shell.exit_status().code(), Some(3), "the shell's exit status is errand's");
    assert_eq!(shell.entries("attempts"), Vec::<String>::new(), "no attempt directory left");
    assert_eq!(shell.entries("layers"), Vec::<String>::new(), "no scratch layer left");
    for cgroup in &cgroups {
        assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
    }
    assert_eq!(shell.cgroups(), Vec::<PathBuf>::new());
}

#[test]
fn sigterm_removes_the_shells_sandbox() {
    if !sandbox_available() {
        return;
    }
    let root = scratch();
    let mut shell = Shell::start(root.path());
    shell.expect("kept:");
    assert_eq!(shell.value("U", "$(id -u)"), "1000");
    assert_eq!(shell.entries("attempts").len(), 1);
    let cgroups = shell.cgroups();
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(shell.child.id() as i32, libc::SIGTERM) }, 0);
    let status = shell.exit_status();
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGTERM),
        "{status:?} (signal {:?})",
        status.signal()
    );
    assert_eq!(shell.entries("attempts"), Vec::<String>::new());
    assert_eq!(shell.entries("layers"), Vec::<String>::new());
    for cgroup in &cgroups {
        assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
    }
}
