//! Start-up work done in a child process of its own, so that nothing it leaves behind reaches
//! the supervisor or the workers forked from it.
//!
//! Any tokio runtime with I/O enabled creates tokio's process-wide signal state (a socket pair
//! that signal handlers write to and each runtime's driver reads from). Made in the parent, it
//! would be inherited by every worker: one socket pair shared by all of them, where one worker's
//! driver reads the wake-up meant for another, and that worker never sees its SIGTERM. The
//! start-up check and the before-fork steps both need such a runtime, so they run here instead;
//! the parent stays exactly as it was: one thread, no runtime, no handlers.

use std::io::Write;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

use super::StartError;

/// Runs `work` in a forked child and waits for it. The child reports its own error on stderr
/// (`error: ...`, as the parent would) and exits 2, which returns [`StartError::Reported`].
pub(super) fn run(
    what: &'static str,
    work: impl FnOnce() -> Result<(), StartError>,
) -> Result<(), StartError> {
    buvar_kit::log::flush();
    let _ = std::io::stdout().flush();
    #[cfg(target_os = "linux")]
    let parent = nix::unistd::getpid();
    // SAFETY: the parent has one thread (no runtime exists before fork), so no lock can be held
    // by a thread the child would lack.
    match unsafe { fork() }.map_err(|errno| StartError::Apart { what, errno })? {
        ForkResult::Child => {
            #[cfg(target_os = "linux")]
            die_with(parent);
            let code = match work() {
                Ok(()) => 0,
                Err(StartError::Reported) => 2,
                Err(err) => {
                    let _ = writeln!(std::io::stderr(), "error: {err}");
                    2
                }
            };
            buvar_kit::log::flush();
            let _ = std::io::stdout().flush();
            // SAFETY: `_exit` only ends the process, skipping the parent's atexit state.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
                Ok(WaitStatus::Exited(..)) => return Err(StartError::Reported),
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    return Err(StartError::ApartKilled {
                        what,
                        signal: signal.as_str(),
                    });
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(StartError::Apart { what, errno }),
            }
        },
    }
}

/// A parent stopped while the child works (a lone SIGTERM before any handler exists) takes the
/// child with it: a migration must not run on unsupervised behind a service that is gone.
#[cfg(target_os = "linux")]
fn die_with(parent: nix::unistd::Pid) {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    // The parent may have died before the request was made.
    if nix::unistd::getppid() != parent {
        // SAFETY: as above.
        unsafe { libc::_exit(2) }
    }
}
