//! Running one command in the local sandbox.
//!
//! Each command is its own bwrap process. Before bwrap starts, a `pre_exec` hook (still root,
//! in the forked child) gives the process a private mount namespace and mounts there: the
//! attempt's directory at [`STAGE`], the workspace overlay (the attempt's upper layer over the
//! snapshot's workspace layer, if any, over the checkout) at `STAGE/merged`, with a snapshot
//! also `/home/agent` and `/usr/local` as overlays (see `layer.rs`, [`Layers`]), and the helper
//! binary at `STAGE/errand`; then it drops to the sandbox uid.
//! The mounts exist only in that namespace, so when the command ends, however it ends, nothing
//! is left mounted on the host. bwrap, now unprivileged, builds the rest in a new user
//! namespace: no network, no capabilities, a fresh /proc and /dev, uid 1000.
//!
//! Mounting the attempt at a fixed place means bwrap, running as the sandbox uid, can reach it
//! even when `data_dir` lies below a directory only root may enter (such as /root).

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::cgroup::AttemptCgroup;
use crate::egress::SandboxEgress;
use crate::hook::{MountHook, setup_failure};
use crate::layer::{HomeLayer, Layers};
use crate::limits::Rlimits;
use crate::{ExecOutcome, ExecRequest, SandboxError};

/// Where the attempt's directory appears inside each command's private mount namespace.
pub(crate) const STAGE: &str = "/run/errand-sandbox";
/// The workspace inside the sandbox.
pub(crate) const WORKSPACE: &str = "/workspace";
/// The helper binary inside the sandbox.
pub(crate) const HELPER: &str = "/opt/errand/errand";
/// The descriptor bwrap reads the seccomp filter from; the status pipe is 3 (see [`WRAPPER`]).
pub(crate) const SECCOMP_FD: RawFd = 4;
/// How long output may keep arriving after bwrap exited before we stop waiting for it. In
/// practice it ends at once: bwrap's exit tears down the pid namespace and every writer in it.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs in the sandbox after bwrap: enters the working directory, or reports through fd 3 that
/// it does not exist, then closes fd 3 and becomes the command (so `ps` shows only the command).
const WRAPPER: &str =
    r#"cd -- "$1" 2>/dev/null || { printf w >&3; exit 127; }; shift; exec 3>&- "$@""#;

/// Everything a command needs from its attempt.
pub(crate) struct Launch<'a> {
    pub bwrap: &'a Path,
    pub attempt_root: &'a Path,
    pub layers: &'a Layers,
    pub helper: &'a Path,
    pub uid: u32,
    /// The base image's bwrap arguments (see `image.rs`).
    pub image: &'a [OsString],
    /// The attempt's cgroups, which every command enters before bwrap starts.
    pub cgroup: Option<&'a AttemptCgroup>,
    /// Limits no cgroup enforces, set on bwrap (and inherited by the command).
    pub rlimits: Rlimits,
    /// The compiled seccomp filter (`seccomp.rs`), handed to bwrap on [`SECCOMP_FD`].
    pub seccomp: &'a [u8],
    /// Which phase: the setup phase keeps the host's network and gets the secrets.
    pub phase: &'a Phase,
    /// Variables every command gets (an environment's plain `env`), before the request's own.
    pub env: &'a [(String, String)],
    /// With an egress proxy, for the agent's own commands (never the sandbox's helper calls):
    /// the socket's bind, the proxy variables and the bridge in front of the command.
    pub egress: Option<&'a SandboxEgress>,
}

/// The network and secrets of a sandbox's commands (design: "Two phases, two network policies").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The agent: a private network namespace (loopback only), no secrets.
    #[default]
    Agent,
    /// Setup or maintenance: the host's network (`--share-net`, `/etc/resolv.conf`) and the
    /// environment's secrets. Secrets reach bwrap through its process environment, never its
    /// argv (which every host user can read in `/proc/<pid>/cmdline`).
    Setup { secrets: Vec<(String, String)> },
}

/// Runs `request` (whose workdir is already resolved to an absolute sandbox path).
pub(crate) async fn run(
    launch: &Launch<'_>,
    request: ExecRequest,
    workdir: &str,
    output: &mut (dyn FnMut(&[u8]) + Send + '_),
) -> Result<ExecOutcome, SandboxError> {
    let started = Instant::now();
    let io = |context: &str| {
        let context = context.to_string();
        move |source| SandboxError::Io { context, source }
    };

    let (out_read, out_write) = std::io::pipe().map_err(io("cannot create the output pipe"))?;
    let err_write = out_write.try_clone().map_err(io("cannot create the output pipe"))?;
    let counters_before = launch.cgroup.map(|cgroup| cgroup.counters());
    let stdio = StandardStreams {
        stdin: if request.stdin.is_some() { Stdio::piped() } else { Stdio::null() },
        stdout: out_write.into(),
        stderr: err_write.into(),
    };
    // `stdio` holds our copies of the output pipe's write end; `start` drops them once bwrap
    // has its own, or we would never see end of file.
    let Started { mut child, status: status_read } = start(launch, &request, workdir, stdio)?;
    let mut reader = pipe::Receiver::from_owned_fd(OwnedFd::from(out_read))
        .map_err(io("cannot read the output pipe"))?;

    let stdin_pipe = child.stdin.take();
    let feed = async move {
        if let (Some(bytes), Some(mut pipe)) = (request.stdin, stdin_pipe) {
            // A command that exits without reading its input closes the pipe; that is its
            // business, not an error of the sandbox.
            let _ = pipe.write_all(&bytes).await;
        }
    };
    tokio::pin!(feed);

    let now = tokio::time::Instant::now();
    // A timeout too large to represent means no timeout worth the name: a year will do.
    let deadline = now
        .checked_add(request.timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
    let mut buffer = vec![0u8; 64 * 1024];
    let mut status = None;
    let mut drain_deadline = None;
    let mut timed_out = false;
    let mut fed = false;
    let mut eof = false;
    while status.is_none() || !eof {
        tokio::select! {
            read = reader.read(&mut buffer), if !eof => match read {
                Ok(0) => eof = true,
                Ok(n) => output(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io("cannot read the command's output")(e)),
            },
            exited = child.wait(), if status.is_none() => {
                status = Some(exited.map_err(io("cannot wait for bwrap"))?);
                drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
            }
            () = &mut feed, if !fed => fed = true,
            () = tokio::time::sleep_until(deadline), if status.is_none() && !timed_out => {
                // SIGKILL to bwrap; --die-with-parent then kills its pid 1, and with it every
                // process of the command's pid namespace (pid_namespaces(7)).
                timed_out = true;
                let _ = child.start_kill();
            }
            () = tokio::time::sleep_until(drain_deadline.unwrap_or(deadline)), if drain_deadline.is_some() => {
                tracing::warn!("output still open {DRAIN_GRACE:?} after the sandbox exited; stopped reading");
                break;
            }
        }
    }
    let Some(status) = status else {
        return Err(SandboxError::Exec("bwrap ended without a status".into()));
    };
    if !timed_out && read_status_byte(&status_read) == Some(b'w') {
        return Err(SandboxError::NoSuchWorkdir(workdir.to_string()));
    }
    Ok(outcome(launch, status, counters_before, timed_out, started))
}

/// How a command that ran from `started` ended, with the limit that bit meanwhile, if any.
pub(crate) fn outcome(
    launch: &Launch<'_>,
    status: std::process::ExitStatus,
    counters_before: Option<crate::cgroup::Counters>,
    timed_out: bool,
    started: Instant,
) -> ExecOutcome {
    let limit_hit = launch
        .cgroup
        .zip(counters_before)
        .and_then(|(cgroup, before)| cgroup.hit(before, cgroup.counters()));
    use std::os::unix::process::ExitStatusExt;
    ExecOutcome {
        exit_code: if timed_out { None } else { status.code() },
        signal: status.signal(),
        timed_out,
        duration: started.elapsed(),
        limit_hit,
    }
}

/// Where a command's standard streams go.
pub(crate) struct StandardStreams {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// A command's bwrap process, started.
pub(crate) struct Started {
    /// Killed when dropped: bwrap's `--die-with-parent` then takes the whole sandbox with it.
    pub child: tokio::process::Child,
    /// Holds the byte a failed step or the workdir wrapper wrote (see [`read_status_byte`]).
    pub status: pipe::Receiver,
}

/// Starts `request` in bwrap with the mount hook (see the module docs), its standard streams
/// on `stdio`: the one way every command, piped or on a terminal, enters the sandbox.
pub(crate) fn start(
    launch: &Launch<'_>,
    request: &ExecRequest,
    workdir: &str,
    stdio: StandardStreams,
) -> Result<Started, SandboxError> {
    if request.command.is_empty() {
        return Err(SandboxError::Exec("the command is empty".into()));
    }
    let io = |context: &str| {
        let context = context.to_string();
        move |source| SandboxError::Io { context, source }
    };
    let (status_read, status_write) =
        std::io::pipe().map_err(io("cannot create the status pipe"))?;
    // Numbered 5 or above, so the hook's moves to 3 and 4 cannot overwrite one with the other.
    let status_write =
        above_reserved(OwnedFd::from(status_write)).map_err(io("cannot create the status pipe"))?;
    let seccomp = seccomp_pipe(launch.seccomp).map_err(io("cannot pass the seccomp filter"))?;
    let cgroup_procs = launch
        .cgroup
        .iter()
        .flat_map(|cgroup| cgroup.procs_files())
        .map(|file| {
            std::fs::OpenOptions::new().write(true).open(&file).map_err(|source| SandboxError::Io {
                context: format!("cannot open {}", file.display()),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let hook = MountHook::new(
        launch,
        status_write.as_raw_fd(),
        seccomp.as_raw_fd(),
        cgroup_procs.iter().map(AsRawFd::as_raw_fd).collect(),
    )?;
    let mut command = tokio::process::Command::new(launch.bwrap);
    let (args, process_env) = bwrap_args(launch, request, workdir)?;
    command
        .env_clear()
        .envs(process_env)
        .current_dir("/")
        .args(args)
        .stdin(stdio.stdin)
        .stdout(stdio.stdout)
        .stderr(stdio.stderr)
        .kill_on_drop(true);
    // SAFETY: the hook only makes raw system calls on data prepared before the fork (see
    // MountHook::enter), which is what pre_exec requires.
    unsafe {
        command.pre_exec(move || hook.enter());
    }
    let spawned = command.spawn();
    // Our copies of the pipes' write ends must go, or we would never see end of file.
    drop(command);
    drop(status_write);
    drop(seccomp);
    drop(cgroup_procs);
    let status = pipe::Receiver::from_owned_fd(OwnedFd::from(status_read))
        .map_err(io("cannot read the status pipe"))?;
    match spawned {
        Ok(child) => Ok(Started { child, status }),
        Err(error) => Err(setup_failure(&status, error, launch)),
    }
}

/// A duplicate of `fd` numbered 5 or above (close-on-exec, like every descriptor we open).
fn above_reserved(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl on a descriptor we own; the result, if valid, is a new descriptor we own.
    let raised = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, SECCOMP_FD + 1) };
    if raised < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raised` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raised) })
}

/// A pipe holding the filter, its write end already closed: bwrap reads it to end of file. The
/// filter (about 1 KiB, see seccomp.rs's tests) fits in the smallest pipe buffer, one page, so
/// writing it cannot block.
fn seccomp_pipe(filter: &[u8]) -> std::io::Result<OwnedFd> {
    use std::io::Write;
    let (read, mut write) = std::io::pipe()?;
    write.write_all(filter)?;
    drop(write);
    above_reserved(OwnedFd::from(read))
}

/// bwrap's arguments for one command (see the design's "Local sandbox recipe"), and the
/// environment bwrap itself is given (empty in the agent phase: `--clearenv` and `--setenv`).
#[allow(clippy::type_complexity)]
fn bwrap_args(
    launch: &Launch,
    request: &ExecRequest,
    workdir: &str,
) -> Result<(Vec<OsString>, Vec<(String, String)>), SandboxError> {
    let stage = Path::new(STAGE);
    let secrets = match launch.phase {
        Phase::Agent => None,
        Phase::Setup { secrets } => Some(secrets),
    };
    let mut args: Vec<OsString> = ["--unshare-all"].iter().map(OsString::from).collect();
    if secrets.is_some() {
        // Every namespace but the network's: setup installs dependencies.
        args.push("--share-net".into());
    } else {
        args.push("--clearenv".into());
    }
    args.extend(
        [
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--new-session",
            "--seccomp",
            "4",
            "--uid",
            "1000",
            "--gid",
            "1000",
            "--hostname",
            "errand",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
        ]
        .iter()
        .map(OsString::from),
    );
    args.extend_from_slice(launch.image);
    if secrets.is_some() && std::fs::metadata(RESOLV_CONF).is_ok() {
        args.extend(["--ro-bind", RESOLV_CONF, RESOLV_CONF].map(OsString::from));
    }
    let home = match launch.layers.home {
        HomeLayer::Dir(_) => "home",
        HomeLayer::Overlay(_) => "home-merged",
    };
    let mut binds = vec![
        ("--bind", "tmp", "/tmp"),
        ("--bind", home, "/home/agent"),
        ("--bind", "merged", WORKSPACE),
        ("--ro-bind", "errand", HELPER),
    ];
    if launch.layers.usr_local.is_some() {
        // After the image's read-only /usr, so it covers that part of it.
        binds.push(("--bind", "usr-local-merged", "/usr/local"));
    }
    for (flag, source, dest) in binds {
        args.push(flag.into());
        args.push(stage.join(source).into());
        args.push(dest.into());
    }
    if let Some(egress) = launch.egress {
        args.extend(egress.bwrap_args.iter().cloned());
    }
    fn owned(list: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
        list.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    // The proxy's variables after the environment's (which cannot redirect them) and before the
    // request's (an agent overriding them only loses its own way out).
    let egress_env = launch.egress.map(|egress| egress.env.as_slice()).unwrap_or_default();
    let all = DEFAULT_ENV
        .iter()
        .copied()
        .chain(owned(launch.env))
        .chain(owned(egress_env))
        .chain(owned(&request.env))
        .chain(owned(secrets.map(Vec::as_slice).unwrap_or_default()));
    let mut process_env = Vec::new();
    for (key, value) in all {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(SandboxError::Exec(format!(
                "environment variable `{key}` cannot be set (empty name, `=` or NUL)"
            )));
        }
        if secrets.is_some() {
            process_env.push((key.to_string(), value.to_string()));
        } else {
            args.extend(["--setenv".into(), key.into(), value.into()]);
        }
    }
    args.extend(["--chdir".into(), WORKSPACE.into(), "--".into()]);
    args.extend(["/bin/sh", "-c", WRAPPER, "errand", workdir].map(OsString::from));
    match launch.egress {
        // The wrapper's `exec "$@"` becomes the bridge, which then becomes the command.
        Some(egress) => args.extend(egress.wrap(&request.command).into_iter().map(OsString::from)),
        None => args.extend(request.command.iter().map(OsString::from)),
    }
    Ok((args, process_env))
}

/// The host's resolver configuration, shown read-only to the setup phase.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Variables every command starts with.
const DEFAULT_ENV: [(&str, &str); 6] = [
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/home/agent"),
    ("USER", "agent"),
    ("LOGNAME", "agent"),
    ("LANG", "C.UTF-8"),
    ("TERM", "dumb"),
];

/// The one byte a failed setup step or the wrapper left in the status pipe, if any.
pub(crate) fn read_status_byte(status: &pipe::Receiver) -> Option<u8> {
    let mut byte = [0u8; 1];
    match status.try_read(&mut byte) {
        Ok(1) => Some(byte[0]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn request(command: &[&str]) -> ExecRequest {
        ExecRequest {
            command: command.iter().map(|s| s.to_string()).collect(),
            workdir: String::new(),
            timeout: Duration::from_secs(1),
            env: vec![("FOO".into(), "bar baz".into())],
            stdin: None,
        }
    }

    fn with_launch<T>(phase: Phase, snapshot: bool, test: impl FnOnce(&Launch) -> T) -> T {
        with_egress(phase, snapshot, None, test)
    }

    fn with_egress<T>(
        phase: Phase,
        snapshot: bool,
        egress: Option<&SandboxEgress>,
        test: impl FnOnce(&Launch) -> T,
    ) -> T {
        let layout = crate::layer::AttemptLayout::new(Path::new("/d"), "a").unwrap();
        let layers = if snapshot {
            Layers::over(&layout, Path::new("/c"), &[PathBuf::from("/s")])
        } else {
            Layers::plain(&layout, Path::new("/c"))
        };
        let image = crate::image::host_image_args(&Path::new(STAGE).join("etc"));
        let launch = Launch {
            bwrap: Path::new("bwrap"),
            attempt_root: layout.root(),
            layers: &layers,
            helper: Path::new("/h"),
            uid: 1,
            image: &image,
            cgroup: None,
            rlimits: Rlimits::default(),
            seccomp: &[],
            phase: &phase,
            env: &[("PLAIN".into(), "yes".into())],
            egress,
        };
        test(&launch)
    }

    fn text(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into()).collect()
    }

    #[test]
    fn the_command_runs_through_the_workdir_wrapper_with_a_clean_environment() {
        let (args, process_env) = with_launch(Phase::Agent, false, |launch| {
            bwrap_args(launch, &request(&["ls", "-la"]), "/workspace/src").unwrap()
        });
        assert!(process_env.is_empty());
        let text = text(&args);
        let tail = &text[text.len() - 7..];
        assert_eq!(tail[0], "/bin/sh");
        assert_eq!(tail[3..], ["errand", "/workspace/src", "ls", "-la"]);
        for needle in ["--unshare-all", "--clearenv", "--die-with-parent", "--new-session"] {
            assert!(text.iter().any(|a| a == needle), "{needle}");
        }
        assert!(!text.iter().any(|a| a == "--share-net"));
        assert!(text.windows(3).any(|w| w == ["--setenv", "FOO", "bar baz"]));
        assert!(text.windows(3).any(|w| w == ["--setenv", "PLAIN", "yes"]));
        assert!(
            text.windows(3).any(|w| w == ["--bind", "/run/errand-sandbox/merged", "/workspace"])
        );
        assert!(
            text.windows(3).any(|w| w == ["--bind", "/run/errand-sandbox/home", "/home/agent"])
        );
        assert!(!text.iter().any(|a| a == "/usr/local"));
    }

    #[test]
    fn over_a_snapshot_home_and_usr_local_are_overlays() {
        let (args, _) = with_launch(Phase::Agent, true, |launch| {
            bwrap_args(launch, &request(&["true"]), "/workspace").unwrap()
        });
        let text = text(&args);
        assert!(
            text.windows(3)
                .any(|w| w == ["--bind", "/run/errand-sandbox/home-merged", "/home/agent"])
        );
        let usr = text.iter().position(|a| a == "/usr").unwrap();
        let usr_local = text.iter().position(|a| a == "/usr/local").unwrap();
        assert!(usr_local > usr, "/usr/local is bound over the read-only /usr");
        let layers = Layers::over(
            &crate::layer::AttemptLayout::new(Path::new("/d"), "a").unwrap(),
            Path::new("/c"),
            &[PathBuf::from("/m"), PathBuf::from("/s")],
        );
        assert_eq!(
            layers.workspace.options(),
            "lowerdir=/m/workspace:/s/workspace:/c,upperdir=/d/attempts/a/upper,\
             workdir=/d/attempts/a/work,redirect_dir=off,metacopy=off"
        );
        assert!(layers.usr_local.unwrap().options().starts_with(
            "lowerdir=/m/usr-local:/s/usr-local:/usr/local,upperdir=/d/attempts/a/usr-local,"
        ));
    }

    #[test]
    fn the_setup_phase_shares_the_network_and_keeps_secrets_out_of_argv() {
        let phase = Phase::Setup { secrets: vec![("TOKEN".into(), "s3cr3t".into())] };
        let (args, process_env) = with_launch(phase, false, |launch| {
            bwrap_args(launch, &request(&["true"]), "/workspace").unwrap()
        });
        let text = text(&args);
        assert!(text.iter().any(|a| a == "--share-net"));
        assert!(!text.iter().any(|a| a == "--clearenv" || a == "--setenv"));
        assert!(!text.iter().any(|a| a.contains("s3cr3t")), "{text:?}");
        assert!(process_env.contains(&("TOKEN".into(), "s3cr3t".into())));
        assert!(process_env.contains(&("PLAIN".into(), "yes".into())));
        assert!(process_env.contains(&("HOME".into(), "/home/agent".into())));
    }

    #[test]
    fn with_egress_the_socket_is_bound_the_proxy_set_and_the_command_behind_the_bridge() {
        let egress = crate::egress::sandbox_egress(&Path::new(STAGE).join("egress.sock"), HELPER);
        let mut agent_request = request(&["curl", "https://pypi.org"]);
        agent_request.env.push(("HTTPS_PROXY".into(), "http://agent.choice".into()));
        let (args, _) = with_egress(Phase::Agent, false, Some(&egress), |launch| {
            bwrap_args(launch, &agent_request, "/workspace").unwrap()
        });
        let text = text(&args);
        assert!(text.iter().any(|a| a == "--unshare-all"), "still no network of its own");
        let bind = ["--bind", "/run/errand-sandbox/egress.sock", "/run/errand-egress.sock"];
        let bound = text.windows(3).position(|w| w == bind).expect("the socket is bound");
        let separator = text.iter().position(|a| a == "--").unwrap();
        assert!(bound < separator);
        let proxy = ["--setenv", "HTTP_PROXY", "http://127.0.0.1:3128"];
        assert!(text.windows(3).any(|w| w == proxy), "{text:?}");
        let setenv = |key: &str, value: &str| {
            text.windows(3).position(|w| w == ["--setenv", key, value]).unwrap()
        };
        assert!(
            setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
                < setenv("HTTPS_PROXY", "http://agent.choice"),
            "the request's own variables come last"
        );
        let tail = &text[separator + 1..];
        assert_eq!(
            tail[5..],
            [
                HELPER,
                "sandbox-bridge",
                "--listen",
                "127.0.0.1:3128",
                "--socket",
                "/run/errand-egress.sock",
                "--",
                "curl",
                "https://pypi.org"
            ]
        );

        // Without egress (a plain attempt, or a helper call of an attempt with egress).
        let (args, _) = with_launch(Phase::Agent, false, |launch| {
            bwrap_args(launch, &request(&["curl"]), "/workspace").unwrap()
        });
        let text = self::text(&args);
        assert!(!text.iter().any(|a| a.contains("egress") || a.contains("PROXY")), "{text:?}");
        assert_eq!(text.last().unwrap(), "curl");
    }

    #[test]
    fn bad_environment_names_are_refused() {
        let mut bad = request(&["true"]);
        bad.env = vec![("A=B".into(), "x".into())];
        let refused = with_launch(Phase::Agent, false, |launch| {
            matches!(bwrap_args(launch, &bad, "/workspace"), Err(SandboxError::Exec(_)))
        });
        assert!(refused);
    }
}
