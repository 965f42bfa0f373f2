//! The work a sandboxed command's process does between `fork` and `exec`, as root, before it
//! becomes bwrap: a private mount namespace with the attempt's directory at [`STAGE`], the
//! overlays and binds of its layers, the helper binary, the attempt's cgroups and rlimits, the
//! status and seccomp descriptors, then the drop to the sandbox uid. Every string and descriptor
//! is prepared before the fork ([`MountHook::new`]); [`MountHook::enter`] makes only
//! async-signal-safe system calls. A failing step writes one status byte that
//! [`setup_failure`] turns into a sentence.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::net::unix::pipe;

use crate::SandboxError;
use crate::exec::{Launch, SECCOMP_FD, STAGE, read_status_byte};
use crate::layer::HomeLayer;
use crate::limits::Rlimits;

pub(crate) fn setup_failure(
    status: &pipe::Receiver,
    error: std::io::Error,
    launch: &Launch,
) -> SandboxError {
    let step = match read_status_byte(status) {
        Some(b'n') => "creating a private mount namespace".to_string(),
        Some(b'p') => "making mounts private".to_string(),
        Some(b's') => format!("bind-mounting {} at {STAGE}", launch.attempt_root.display()),
        Some(b'o') => format!(
            "mounting an overlay (workspace lowers {:?}; does this kernel have overlayfs?)",
            launch.layers.workspace.lowers
        ),
        Some(b'b') => "bind-mounting the snapshot's home directory".to_string(),
        Some(b'h') => format!("bind-mounting the helper {}", launch.helper.display()),
        Some(b'f') => "preparing file descriptors".to_string(),
        Some(b'c') => "entering the attempt's cgroup".to_string(),
        Some(b'r') => "setting resource limits (rlimits)".to_string(),
        Some(b'u') => format!("switching to uid {}", launch.uid),
        Some(b'd') => "the parent process went away".to_string(),
        _ => format!("starting {}", launch.bwrap.display()),
    };
    SandboxError::Setup(format!("{step} failed: {error}"))
}

/// The work done between fork and exec, with every string prepared in advance.
pub(crate) struct MountHook {
    stage: CString,
    attempt_root: CString,
    /// Mounted in order after the attempt's directory is at the stage.
    mounts: Vec<PreparedMount>,
    helper: CString,
    helper_mount_point: CString,
    uid: libc::uid_t,
    status_fd: RawFd,
    seccomp_fd: RawFd,
    /// Open `cgroup.procs` files of the attempt's cgroups.
    cgroup_procs: Vec<RawFd>,
    rlimits: Rlimits,
    parent: libc::pid_t,
}

/// One `mount(2)` call, its arguments ready for the forked child.
struct PreparedMount {
    source: CString,
    target: CString,
    /// `None` for a bind mount.
    overlay_options: Option<CString>,
    /// The status byte written if it fails.
    step: u8,
}

impl MountHook {
    pub(crate) fn new(
        launch: &Launch,
        status_fd: RawFd,
        seccomp_fd: RawFd,
        cgroup_procs: Vec<RawFd>,
    ) -> Result<MountHook, SandboxError> {
        let c = |path: &Path| {
            CString::new(path.as_os_str().as_bytes()).map_err(|_| {
                SandboxError::Setup(format!("path {} contains a NUL byte", path.display()))
            })
        };
        let text = |text: String| {
            CString::new(text).map_err(|_| SandboxError::Setup("a path contains a NUL byte".into()))
        };
        let stage = PathBuf::from(STAGE);
        let root = launch.attempt_root;
        let layers = launch.layers;
        let overlay = |options: String, target: &str| -> Result<PreparedMount, SandboxError> {
            Ok(PreparedMount {
                source: text("overlay".into())?,
                target: c(&stage.join(target))?,
                overlay_options: Some(text(options)?),
                step: b'o',
            })
        };
        let mut mounts = vec![overlay(layers.workspace.options(), "merged")?];
        match &layers.home {
            HomeLayer::Dir(dir) if dir != &root.join("home") => mounts.push(PreparedMount {
                source: c(dir)?,
                target: c(&stage.join("home"))?,
                overlay_options: None,
                step: b'b',
            }),
            HomeLayer::Dir(_) => {}
            HomeLayer::Overlay(home) => mounts.push(overlay(home.options(), "home-merged")?),
        }
        if let Some(usr_local) = &layers.usr_local {
            mounts.push(overlay(usr_local.options(), "usr-local-merged")?);
        }
        Ok(MountHook {
            stage: c(&stage)?,
            attempt_root: c(root)?,
            mounts,
            helper: c(launch.helper)?,
            helper_mount_point: c(&stage.join("errand"))?,
            uid: launch.uid,
            status_fd,
            seccomp_fd,
            cgroup_procs,
            rlimits: launch.rlimits,
            // SAFETY: getpid has no preconditions.
            parent: unsafe { libc::getpid() },
        })
    }

    /// Runs in the forked child: only async-signal-safe system calls, no allocation.
    pub(crate) fn enter(&self) -> std::io::Result<()> {
        // SAFETY: every pointer comes from a CString owned by self, alive for the whole call;
        // the calls are plain system calls on this (single-threaded, forked) process.
        unsafe {
            let null = std::ptr::null::<libc::c_char>();
            let fail = |fd: RawFd, step: u8| {
                let error = std::io::Error::last_os_error();
                libc::write(fd, (&step as *const u8).cast(), 1);
                Err(error)
            };
            // First, while still root: from here on every process of the command, bwrap
            // included, is born in the attempt's cgroups. "0" means the writer itself.
            for &fd in &self.cgroup_procs {
                if libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                    return fail(self.status_fd, b'c');
                }
            }
            if self.rlimits.apply().is_err() {
                return fail(self.status_fd, b'r');
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail(self.status_fd, b'n');
            }
            if libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return fail(self.status_fd, b'p');
            }
            if libc::mount(
                self.attempt_root.as_ptr(),
                self.stage.as_ptr(),
                null,
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return fail(self.status_fd, b's');
            }
            for mount in &self.mounts {
                let done = match &mount.overlay_options {
                    Some(options) => libc::mount(
                        mount.source.as_ptr(),
                        mount.target.as_ptr(),
                        c"overlay".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        options.as_ptr().cast(),
                    ),
                    None => libc::mount(
                        mount.source.as_ptr(),
                        mount.target.as_ptr(),
                        null,
                        libc::MS_BIND,
                        std::ptr::null(),
                    ),
                };
                if done != 0 {
                    return fail(self.status_fd, mount.step);
                }
            }
            if libc::mount(
                self.helper.as_ptr(),
                self.helper_mount_point.as_ptr(),
                null,
                libc::MS_BIND,
                std::ptr::null(),
            ) != 0
            {
                return fail(self.status_fd, b'h');
            }
            // The status pipe becomes fd 3 for the wrapper and the filter fd 4 for bwrap (which
            // closes it after reading); every other descriptor above the standard ones closes
            // at exec, so nothing the host process holds leaks into the sandbox (bwrap itself
            // closes none). Both sources are numbered 5 or above (see `above_reserved`), and
            // dup2 clears close-on-exec on the copies.
            const STATUS: RawFd = 3;
            if libc::dup2(self.status_fd, STATUS) < 0 || libc::dup2(self.seccomp_fd, SECCOMP_FD) < 0
            {
                return fail(self.status_fd, b'f');
            }
            let first_closed = (SECCOMP_FD + 1) as u32;
            if libc::syscall(
                libc::SYS_close_range,
                first_closed,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                return fail(STATUS, b'f');
            }
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(self.uid) != 0
                || libc::setuid(self.uid) != 0
            {
                return fail(STATUS, b'u');
            }
            // Set after setuid, which clears it. If errand dies, bwrap dies, and with it the
            // sandbox. (The signal follows the *thread* that forked: a tokio worker, which
            // lives as long as the runtime.)
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() != self.parent {
                return fail(STATUS, b'd');
            }
        }
        Ok(())
    }
}
