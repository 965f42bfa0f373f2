//! Terminals for interactive sandboxes (`errand env shell`): the user's terminal in raw mode,
//! a fresh pseudo-terminal for the sandbox, the relay between the two, and the step inside the
//! sandbox that makes the pty the shell's controlling terminal.
//!
//! Invariants: the sandbox never sees the user's terminal, only a pty of its own, so nothing it
//! does to its terminal (`TIOCSTI`, which the seccomp filter denies anyway, modes, job control)
//! reaches the user's; every byte between them passes through [`relay`]. The user's terminal
//! leaves raw mode when [`RawMode`] is dropped, so on every way out that unwinds.

use std::ffi::OsString;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::io::unix::AsyncFd;

/// How long the pty's last output may keep coming after the sandbox exited. It ends at once in
/// practice: the sandbox's exit closes every slave descriptor (our own copy is closed at start).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

impl WindowSize {
    /// The size of the terminal on `fd`; `None` if it is not a terminal.
    pub fn of(fd: BorrowedFd<'_>) -> Option<WindowSize> {
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass.
        let done = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
        (done == 0).then_some(WindowSize { rows: size.ws_row, cols: size.ws_col })
    }

    /// Sets the size of the terminal on `fd` (its foreground process group gets SIGWINCH).
    pub fn apply(self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        let size =
            libc::winsize { ws_row: self.rows, ws_col: self.cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize from the struct we pass.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The user's terminal in raw mode (no echo, no line editing, no signals from keys: every byte
/// goes to the sandbox's shell) until dropped, which restores the modes it found.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Puts the terminal on `fd` into raw mode; `Ok(None)` if `fd` is not a terminal.
    pub fn enable(fd: BorrowedFd<'_>) -> std::io::Result<Option<RawMode>> {
        let fd = fd.as_raw_fd();
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr fills the struct we pass; it fails (ENOTTY) on a non-terminal.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Ok(None);
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw only edits the struct; tcsetattr reads it.
        unsafe {
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the modes read in `enable` on the same descriptor, which the caller
        // keeps open (it is the process's stdin).
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// A new pseudo-terminal pair: `master` stays with Errand, `slave` becomes the sandbox's
/// stdin, stdout and stderr.
pub(crate) struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

impl Pty {
    /// `openpty(3)` with the given size; the slave is handed to `owner` (the sandbox's host
    /// uid), as login(1) does with a user's terminal. Both ends are close-on-exec: the slave
    /// reaches bwrap only as its standard streams.
    pub fn open(size: WindowSize, owner: u32) -> std::io::Result<Pty> {
        let (mut master, mut slave) = (-1, -1);
        let size =
            libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty writes two descriptors on success; name and termios may be null.
        let done = unsafe {
            libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size)
        };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both are fresh descriptors nobody else owns.
        let pty = unsafe {
            Pty { master: OwnedFd::from_raw_fd(master), slave: OwnedFd::from_raw_fd(slave) }
        };
        for fd in [&pty.master, &pty.slave] {
            // SAFETY: fcntl on a descriptor we own.
            if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        // SAFETY: fchown on a descriptor we own.
        if unsafe { libc::fchown(pty.slave.as_raw_fd(), owner, owner) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(pty)
    }
}

/// Inside the sandbox (behind a hidden `errand sandbox-terminal`): starts a new session and
/// makes stdin, the sandbox's pty, its controlling terminal, then becomes `command`. bwrap's
/// `--new-session` left the sandbox without one, so without this step a shell has no job
/// control and `/dev/tty` cannot be opened. Returns only on failure, with an exit status.
pub fn take_terminal_and_exec(command: &[OsString]) -> i32 {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = command.split_first() else {
        eprintln!("errand sandbox-terminal: no command");
        return 2;
    };
    // SAFETY: setsid and ioctl(TIOCSCTTY) are plain system calls on this process and fd 0.
    unsafe {
        if libc::setsid() < 0 {
            eprintln!("errand sandbox-terminal: setsid: {}", std::io::Error::last_os_error());
            return 1;
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            eprintln!(
                "errand sandbox-terminal: cannot take the terminal: {}",
                std::io::Error::last_os_error()
            );
            return 1;
        }
    }
    let error = std::process::Command::new(program).args(args).exec();
    eprintln!("errand sandbox-terminal: cannot run {}: {error}", program.to_string_lossy());
    127
}

/// Carries bytes between the user's terminal (`input`, `output`) and the pty's `master` until
/// `exited` resolves and the pty has no more output, copying the window size from `input` to
/// the pty on every SIGWINCH. Returns what `exited` gave. Dropping the future stops the relay.
pub(crate) async fn relay<T>(
    master: OwnedFd,
    input: BorrowedFd<'_>,
    exited: impl Future<Output = T>,
) -> std::io::Result<T> {
    set_nonblocking(master.as_fd())?;
    // SAFETY: an OwnedFd keeps its descriptor open and unchanged until dropped, and the
    // AsyncFd owns it.
    let master = unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?;
    let reader = InputReader::start(input)?;
    let mut input_rx = reader.chunks;
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut stdout = tokio::io::stdout();
    let mut pending: Vec<u8> = Vec::new();
    let mut input_open = true;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut result = None;
    let mut drain_until = None;
    tokio::pin!(exited);
    loop {
        tokio::select! {
            readable = master.readable() => {
                let mut guard = readable?;
                match guard.try_io(|fd| read_fd(fd.get_ref().as_fd(), &mut buffer)) {
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => {
                        stdout.write_all(&buffer[..n]).await?;
                        stdout.flush().await?;
                    }
                    // EIO: every slave descriptor is closed, the sandbox is gone.
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => break,
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            }
            writable = master.writable(), if !pending.is_empty() => {
                let mut guard = writable?;
                match guard.try_io(|fd| write_fd(fd.get_ref().as_fd(), &pending)) {
                    Ok(Ok(n)) => { pending.drain(..n); }
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => pending.clear(),
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            }
            chunk = input_rx.recv(), if input_open => match chunk {
                Some(bytes) => pending.extend_from_slice(&bytes),
                None => {
                    // End of input (a pipe, or a hung-up terminal): the shell gets end of file
                    // (^D at the start of a line) and may finish.
                    input_open = false;
                    pending.push(0x04);
                }
            },
            _ = winch.recv() => {
                if let Some(size) = WindowSize::of(input) {
                    let _ = size.apply(master.get_ref().as_fd());
                }
            }
            value = &mut exited, if result.is_none() => {
                result = Some(value);
                drain_until = Some(tokio::time::Instant::now() + DRAIN_GRACE);
            }
            () = tokio::time::sleep_until(drain_until.unwrap_or_else(tokio::time::Instant::now)), if drain_until.is_some() => break,
        }
    }
    let value = match result {
        Some(value) => value,
        None => exited.await,
    };
    // First, so a thread blocked handing over a chunk is released rather than joined forever.
    drop(input_rx);
    reader.stop.stop();
    Ok(value)
}

/// A thread reading the user's terminal (blocking reads on a descriptor we must not make
/// non-blocking: the user's shell shares it), until it ends or [`InputStop::stop`].
struct InputReader {
    chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    stop: InputStop,
}

/// Ends the input thread: closing the pipe's write end wakes its `poll`. Also on drop.
struct InputStop {
    write: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InputStop {
    fn stop(mut self) {
        self.write.take();
        // The thread sees the closed pipe at its next poll, at once; joining cannot hang.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for InputStop {
    fn drop(&mut self) {
        // Dropped with the relay (a cancelled shell): the thread ends on its own.
        self.write.take();
    }
}

impl InputReader {
    fn start(input: BorrowedFd<'_>) -> std::io::Result<InputReader> {
        let input = input.try_clone_to_owned()?;
        let (stop_read, stop_write) = std::io::pipe()?;
        let stop_read = OwnedFd::from(stop_read);
        let (tx, chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        let thread =
            std::thread::Builder::new().name("errand-terminal-input".into()).spawn(move || {
                let mut buffer = vec![0u8; 4096];
                loop {
                    let mut fds = [
                        libc::pollfd { fd: input.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                        libc::pollfd {
                            fd: stop_read.as_raw_fd(),
                            events: libc::POLLIN,
                            revents: 0,
                        },
                    ];
                    // SAFETY: poll on two descriptors this thread owns.
                    let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
                    if ready < 0 {
                        if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                        {
                            continue;
                        }
                        return;
                    }
                    if fds[1].revents != 0 {
                        return;
                    }
                    if fds[0].revents == 0 {
                        continue;
                    }
                    match read_fd(input.as_fd(), &mut buffer) {
                        Ok(0) => return,
                        Ok(n) => {
                            if tx.blocking_send(buffer[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
            })?;
        Ok(InputReader {
            chunks,
            stop: InputStop { write: Some(OwnedFd::from(stop_write)), thread: Some(thread) },
        })
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns (the pty's master, ours alone).
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn read_fd(fd: BorrowedFd<'_>, buffer: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: read into a buffer we own, at most its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
}

fn write_fd(fd: BorrowedFd<'_>, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: write from a buffer we own, at most its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pty_has_the_size_it_was_opened_with_and_takes_a_new_one() {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let pty = Pty::open(WindowSize { rows: 33, cols: 101 }, uid).unwrap();
        assert_eq!(WindowSize::of(pty.slave.as_fd()), Some(WindowSize { rows: 33, cols: 101 }));
        WindowSize { rows: 10, cols: 20 }.apply(pty.master.as_fd()).unwrap();
        assert_eq!(WindowSize::of(pty.slave.as_fd()), Some(WindowSize { rows: 10, cols: 20 }));
        let (read, _write) = std::io::pipe().unwrap();
        assert_eq!(WindowSize::of(read.as_fd()), None, "a pipe is no terminal");
        assert!(RawMode::enable(read.as_fd()).unwrap().is_none());
    }

    #[test]
    fn raw_mode_is_undone_on_drop() {
        // SAFETY: getuid has no preconditions.
        let pty = Pty::open(WindowSize { rows: 24, cols: 80 }, unsafe { libc::getuid() }).unwrap();
        let modes = |fd: BorrowedFd<'_>| {
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: tcgetattr fills the struct.
            assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
            t.c_lflag & (libc::ECHO | libc::ICANON)
        };
        let cooked = modes(pty.slave.as_fd());
        assert_ne!(cooked, 0);
        let raw = RawMode::enable(pty.slave.as_fd()).unwrap().unwrap();
        assert_eq!(modes(pty.slave.as_fd()), 0);
        drop(raw);
        assert_eq!(modes(pty.slave.as_fd()), cooked);
    }
}
