//! The binary upgrade's system calls: starting the program again with the listening sockets
//! (SIGUSR2 in the old supervisor), and telling the old supervisor that the new one serves.
//!
//! The sockets go over as systemd passes them (`LISTEN_FDS`, `LISTEN_PID`, descriptors 3, 4,
//! ...), so [`crate::sockets::bind`] takes them over as it takes systemd's; `LISTEN_FDNAMES`
//! names each by the URI it was asked for, so a configured `tcp://127.0.0.1:0` finds the socket
//! bound for it. One more descriptor, named by `BUVAR_UPGRADE_FD`, is the write end of a pipe:
//! the new supervisor writes a byte there once every worker of its is ready.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::unistd::{ForkResult, Pid, dup2, fork, pipe2};

use super::{ForkError, signals};
use crate::sockets::{BoundSocket, activation};

/// The variable naming the descriptor a new supervisor confirms its start on.
const UPGRADE_FD: &str = "BUVAR_UPGRADE_FD";
/// The first descriptor of the sockets handed over (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;
/// The variables the handover sets, removed from what the program had.
const HANDOVER_VARS: [&str; 4] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", UPGRADE_FD];

/// The program as it was started: its path (run again, whatever file is there by then) and
/// its arguments.
#[derive(Debug, Clone)]
pub(super) struct Program {
    path: PathBuf,
    args: Vec<OsString>,
}

impl Program {
    /// This process's program, read at start: `current_exe` names the path it was started
    /// from, which a deployment may later replace with a new file.
    pub(super) fn current() -> Result<Self, String> {
        let path = std::env::current_exe()
            .map_err(|error| format!("cannot tell this program's path: {error}"))?;
        Ok(Self {
            path,
            args: std::env::args_os().skip(1).collect(),
        })
    }

    /// Forks and executes the program with `sockets` handed over; returns its pid and the read
    /// end of the pipe it confirms on (non-blocking, close-on-exec).
    pub(super) fn start(&self, sockets: &[BoundSocket]) -> Result<(Pid, OwnedFd), ForkError> {
        let c_string = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| ForkError::Sys {
                action: "start the program again: its path, an argument or a variable holds a \
                         NUL byte",
                source: nix::errno::Errno::EINVAL,
            })
        };
        let path = c_string(self.path.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for arg in &self.args {
            argv.push(c_string(arg.as_bytes())?);
        }
        let names = sockets
            .iter()
            .map(|socket| activation::fd_name(&socket.uri().to_string()))
            .collect::<Vec<_>>()
            .join(":");
        let upgrade_fd = FIRST_FD + sockets.len() as RawFd;
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            if HANDOVER_VARS.iter().any(|var| name == *var) {
                continue;
            }
            let mut entry = name.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            env.push(c_string(&entry)?);
        }
        env.push(c_string(
            format!("LISTEN_FDS={}", sockets.len()).as_bytes(),
        )?);
        env.push(c_string(format!("LISTEN_FDNAMES={names}").as_bytes())?);
        env.push(c_string(format!("{UPGRADE_FD}={upgrade_fd}").as_bytes())?);
        let (read, write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(ForkError::sys("create the upgrade pipe"))?;
        let fds: Vec<RawFd> = sockets
            .iter()
            .map(AsRawFd::as_raw_fd)
            .chain([write.as_raw_fd()])
            .collect();
        super::ensure_single_threaded()?;
        // SAFETY: this process has a single thread (checked above), so no lock is held by a
        // thread that would not exist in the child.
        match unsafe { fork() }.map_err(ForkError::sys("fork the new program"))? {
            ForkResult::Parent { child } => Ok((child, read)),
            ForkResult::Child => {
                let error = exec(&path, &argv, env, &fds);
                // Only reached when exec failed; stderr is the service's.
                eprintln!(
                    "error: cannot start the program again ({}): {error}",
                    self.path.display()
                );
                // SAFETY: `_exit` only ends the process, skipping the parent's atexit state.
                unsafe { libc::_exit(127) }
            }
        }
    }
}

/// In the forked child: moves `fds` to 3, 4, ... (without close-on-exec), resets the signals
/// the supervisor blocked, and executes. Returns only on failure.
fn exec(path: &CString, argv: &[CString], mut env: Vec<CString>, fds: &[RawFd]) -> nix::Error {
    // First above every target, so that moving one never overwrites another still to move.
    let high = FIRST_FD + fds.len() as RawFd;
    let mut moved = Vec::with_capacity(fds.len());
    for fd in fds {
        match fcntl(*fd, FcntlArg::F_DUPFD_CLOEXEC(high)) {
            Ok(copy) => moved.push(copy),
            Err(errno) => return errno,
        }
    }
    for (at, fd) in moved.into_iter().enumerate() {
        let target = FIRST_FD + at as RawFd;
        // dup2 leaves the copy without close-on-exec, so the program inherits it.
        if let Err(errno) = dup2(fd, target) {
            return errno;
        }
        if let Err(errno) = fcntl(target, FcntlArg::F_SETFD(FdFlag::empty())) {
            return errno;
        }
    }
    if let Err(error) = signals::ignore_until_open() {
        eprintln!("error: {error}");
    }
    match CString::new(format!("LISTEN_PID={}", nix::unistd::getpid())) {
        Ok(entry) => env.push(entry),
        Err(_) => return nix::errno::Errno::EINVAL,
    }
    match nix::unistd::execve(path, argv, &env) {
        Err(errno) => errno,
        Ok(never) => match never {},
    }
}

/// In a supervisor started by an upgrade: the pipe on which it tells the old supervisor that it
/// serves. The variable is removed so that nothing else (a worker, a later upgrade) sees it.
pub(super) fn take_handoff() -> Option<OwnedFd> {
    let value = std::env::var(UPGRADE_FD).ok()?;
    // SAFETY: the supervisor runs before any thread exists, so no other thread reads the
    // environment concurrently.
    unsafe { std::env::remove_var(UPGRADE_FD) };
    let fd: RawFd = value.trim().parse().ok().filter(|fd| *fd > 2)?;
    if fcntl(fd, FcntlArg::F_GETFD).is_err() {
        tracing::warn!(
            fd,
            "{UPGRADE_FD} names a descriptor that is not open; ignored"
        );
        return None;
    }
    // SAFETY: the old supervisor handed this descriptor to this process alone, and the variable
    // is gone, so nothing else takes it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    Some(fd)
}

/// Tells the old supervisor that this one serves; a gone reader is no error (it died, or gave
/// up and killed us, in which case we are not reading this).
pub(super) fn confirm(handoff: OwnedFd) {
    if let Err(errno) = nix::unistd::write(&handoff, b"R") {
        tracing::warn!(%errno, "cannot tell the old supervisor that this one serves");
    }
}
