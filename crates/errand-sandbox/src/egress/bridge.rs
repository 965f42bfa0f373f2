//! The bridge inside the sandbox: TCP on the sandbox's loopback to the proxy's unix socket.
//!
//! The sandbox has its own network namespace with only `lo`, so no TCP connection can leave
//! it; a unix socket bind-mounted from the host is a file, which namespaces do not isolate.
//! Tools speak to a proxy over TCP (`HTTPS_PROXY=http://127.0.0.1:3128`), so something in
//! the sandbox must listen there and carry each connection to the socket. sandbox-runtime runs
//! two `socat` processes for this (`TCP-LISTEN:3128,fork … UNIX-CONNECT:…` inside bwrap,
//! see its `linux-sandbox-utils.ts`); Errand uses its own helper binary, already mounted in
//! every sandbox, so no image needs socat.
//!
//! The bridge carries bytes only: every decision is the host proxy's.
//!
//! Started as `errand sandbox-bridge --listen 127.0.0.1:3128 --socket S -- command…`, it binds
//! the port first, then forks a bridge into the background and *becomes* the command (exec),
//! so the command's first connection cannot race the listener, its pid, stdio and exit status
//! are its own, and the bridge dies with it: it watches the command through a pidfd, and in
//! the sandbox the pid namespace's end kills it anyway.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixStream};

/// Serves the bridge on `listen` until an error stops accepting.
pub async fn run(listen: SocketAddr, socket: &Path) -> std::io::Result<()> {
    serve(TcpListener::bind(listen).await?, socket.to_path_buf()).await
}

/// Serves the bridge on a bound listener.
pub async fn serve(listener: TcpListener, socket: PathBuf) -> std::io::Result<()> {
    loop {
        let (mut tcp, _) = listener.accept().await?;
        let socket = socket.clone();
        // Each connection's task ends when either side closes; the bridge lives only as long as
        // its sandbox, so nothing needs to own them beyond the runtime.
        tokio::spawn(async move {
            match UnixStream::connect(&socket).await {
                Ok(mut unix) => {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
                Err(error) => {
                    let body = format!(
                        "errand egress: the proxy socket {} is not reachable: {error}\n",
                        socket.display()
                    );
                    let reply = format!(
                        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(reply.as_bytes()).await;
                }
            }
        });
    }
}

/// The `errand sandbox-bridge` entry point; returns the process's exit status. With an empty
/// `command` it serves in the foreground. With a command it binds `listen`, starts the bridge
/// in the background and replaces this process with the command (returning only on failure,
/// 127 like a shell). Call it before any other thread exists: it forks.
pub fn main(listen: SocketAddr, socket: PathBuf, command: Vec<OsString>) -> i32 {
    let listener = match std::net::TcpListener::bind(listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("errand sandbox-bridge: cannot listen on {listen}: {error}");
            return 2;
        }
    };
    let Some((program, args)) = command.split_first() else {
        return serve_blocking(listener, socket);
    };
    if let Err(error) = spawn_background(listener, socket) {
        eprintln!("errand sandbox-bridge: cannot start the bridge: {error}");
        return 2;
    }
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(program).args(args).exec();
    eprintln!("errand sandbox-bridge: cannot run {}: {error}", program.to_string_lossy());
    127
}

fn serve_blocking(listener: std::net::TcpListener, socket: PathBuf) -> i32 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let result = runtime.and_then(|runtime| {
        runtime.block_on(async {
            listener.set_nonblocking(true)?;
            serve(TcpListener::from_std(listener)?, socket).await
        })
    });
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("errand sandbox-bridge: {error}");
            1
        }
    }
}

/// Forks twice so the bridge is nobody's child but init's (in the sandbox: bwrap's pid 1,
/// which reaps it), and no program that waits for "all children" ever waits for it.
fn spawn_background(listener: std::net::TcpListener, socket: PathBuf) -> std::io::Result<()> {
    // fork(2) copies only the calling thread; with other threads alive the child could inherit
    // a lock held forever (say, the allocator's). A fresh `errand` has one thread here.
    let threads = std::fs::read_dir("/proc/self/task").map(|dir| dir.count()).unwrap_or(1);
    if threads != 1 {
        return Err(std::io::Error::other(format!(
            "{threads} threads are running; the bridge must fork before any other starts"
        )));
    }
    // SAFETY: getpid has no preconditions.
    let command_pid = unsafe { libc::getpid() };
    // SAFETY: single-threaded (checked above), so the child may run arbitrary code.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // pidfd_open(2), Linux 5.3: readable once the command exits. Opened here, while
            // the command's process waits for us, so the pid cannot be another's yet.
            // SAFETY: a system call with plain integer arguments.
            let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, command_pid, 0) } as i32;
            // SAFETY: as above; this intermediate child only forks again and exits.
            let code = match unsafe { libc::fork() } {
                0 => background(listener, socket, pidfd),
                -1 => 1,
                _ => 0,
            };
            // SAFETY: _exit ends this process without running the parent's atexit handlers
            // or flushing its copies of stdio buffers.
            unsafe { libc::_exit(code) }
        }
        child => {
            let mut status = 0;
            // SAFETY: waits for the child we just forked; `status` is a valid out pointer.
            unsafe { libc::waitpid(child, &mut status, 0) };
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::other("the bridge process could not start"))
            }
        }
    }
}

/// The background bridge: quiet (its output would mix into the command's), and gone when the
/// command is.
fn background(listener: std::net::TcpListener, socket: PathBuf, pidfd: i32) -> i32 {
    // SAFETY: plain system calls on descriptors this process owns; /dev/null is opened fresh.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..=2 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        libc::setsid();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(_) => return 1,
    };
    runtime.block_on(async move {
        let Ok(listener) =
            listener.set_nonblocking(true).and_then(|()| TcpListener::from_std(listener))
        else {
            return 1;
        };
        let command_exited = async {
            if pidfd < 0 {
                return std::future::pending::<()>().await;
            }
            use std::os::fd::FromRawFd;
            // SAFETY: `pidfd` is a fresh descriptor nothing else owns.
            let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd) };
            // SAFETY: an OwnedFd keeps its descriptor open and unchanged until dropped, and
            // the AsyncFd owns it.
            match unsafe { tokio::io::unix::AsyncFd::register(owned) } {
                Ok(fd) => {
                    let _ = fd.readable().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = serve(listener, socket) => 1,
            () = command_exited => 0,
        }
    })
}
