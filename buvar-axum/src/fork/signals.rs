//! The supervisor's signals: blocked and read from a signalfd, so no handler runs in the
//! parent and none leaks into a worker.

use nix::sys::{
    signal::{SigHandler, SigSet, SigmaskHow, Signal, pthread_sigmask},
    signalfd::{SfdFlags, SignalFd},
};
use std::os::fd::{AsFd, BorrowedFd};

use super::ForkError;

/// The signals the supervisor acts on or forwards to its workers.
pub(super) const HANDLED: [Signal; 10] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGCHLD,
];

/// The signal by which the supervisor tells its workers to skip the rest of the shutdown
/// delay: a real-time one, since every standard signal already means something to a worker.
pub(super) fn skip_delay() -> i32 {
    libc::SIGRTMIN()
}

fn handled_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in HANDLED {
        set.add(signal);
    }
    set
}

/// Blocked signals, queued on a descriptor the poll loop reads.
#[derive(Debug)]
pub(super) struct SignalQueue {
    fd: SignalFd,
    previous_mask: SigSet,
    /// Dropped in a freshly forked worker: close the descriptor, nothing more.
    in_worker: bool,
}

impl SignalQueue {
    /// Blocks the handled signals and opens the descriptor they queue on.
    pub(super) fn open() -> Result<Self, ForkError> {
        let mut previous_mask = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&handled_set()),
            Some(&mut previous_mask),
        )
        .map_err(ForkError::sys("block signals"))?;
        // Ignored signals are discarded, never queued: an inherited SIG_IGN (for SIGCHLD, the
        // kernel would reap workers behind our back; for the rest, see `ignore_until_open`)
        // goes, now that they are blocked and wait here.
        for signal in HANDLED {
            // SAFETY: resetting to the default disposition installs no handler code.
            unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }
                .map_err(ForkError::sys("reset a signal disposition"))?;
        }
        let fd = SignalFd::with_flags(
            &handled_set(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )
        .map_err(ForkError::sys("open a signalfd"))?;
        Ok(Self {
            fd,
            previous_mask,
            in_worker: false,
        })
    }

    /// Every signal queued since the last call.
    pub(super) fn drain(&mut self) -> Result<Vec<Signal>, ForkError> {
        let mut signals = Vec::new();
        while let Some(info) = self
            .fd
            .read_signal()
            .map_err(ForkError::sys("read the signalfd"))?
        {
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                signals.push(signal);
            }
        }
        Ok(signals)
    }
}

impl AsFd for SignalQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl SignalQueue {
    /// Closes the inherited descriptor in a forked worker. A signalfd reads the *reading*
    /// process's pending signals: draining it here would swallow a SIGTERM sent to the worker
    /// in its first microseconds, and the worker would never stop. Left pending, that signal
    /// is delivered once [`reset_in_worker`] unblocks it.
    pub(super) fn close_in_worker(mut self) {
        self.in_worker = true;
    }
}

impl Drop for SignalQueue {
    fn drop(&mut self) {
        if self.in_worker {
            return;
        }
        // Unblocking would deliver what is still queued with its default action (a late
        // second SIGTERM would kill a supervisor that already stopped cleanly).
        while let Ok(Some(_)) = self.fd.read_signal() {}
        if let Err(errno) =
            pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.previous_mask), None)
        {
            tracing::warn!(%errno, "cannot restore the signal mask");
        }
    }
}

/// For a new program started by an upgrade, until its supervisor opens its queue: the signals
/// an operator sends to the whole process group (`kill -USR2 -PGID`, `systemctl kill` without
/// `--kill-who=main`) meant for the old supervisor are ignored instead of killing the new one
/// (the default action of SIGHUP, SIGUSR1/2) or stopping it (SIGTTIN/TTOU). A stop request
/// (SIGTERM, SIGINT, SIGQUIT) still ends it.
pub(super) fn ignore_until_open() -> Result<(), ForkError> {
    for signal in HANDLED {
        let handler = match signal {
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT | Signal::SIGCHLD => {
                SigHandler::SigDfl
            }
            _ => SigHandler::SigIgn,
        };
        // SAFETY: the default disposition and ignoring install no handler code.
        unsafe { nix::sys::signal::signal(signal, handler) }
            .map_err(ForkError::sys("set a signal disposition"))?;
    }
    // Unblocked last: a signal that came while blocked is discarded if ignored, not delivered.
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(ForkError::sys("unblock signals"))
}

/// Gives a freshly forked worker default dispositions and an empty signal mask, so it can
/// install its own handlers (tokio's) like any process.
pub(super) fn reset_in_worker() -> Result<(), ForkError> {
    for signal in HANDLED {
        // SAFETY: the default disposition installs no handler code.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }
            .map_err(ForkError::sys("reset a signal disposition"))?;
    }
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(ForkError::sys("unblock signals"))
}
