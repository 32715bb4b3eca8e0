//! Start-up work done in a child process of its own (see [`crate::child`]), waited for.
//!
//! Any tokio runtime with I/O enabled creates tokio's process-wide signal state (a socket pair
//! that signal handlers write to and each runtime's driver reads from). Made in the parent, it
//! would be inherited by every worker: one socket pair shared by all of them, where one worker's
//! driver reads the wake-up meant for another, and that worker never sees its SIGTERM. The
//! start-up check and the before-fork steps both need such a runtime, so they run apart; the
//! parent stays exactly as it was: one thread, no runtime, no handlers.

use std::io::Write;

use nix::sys::wait::{WaitStatus, waitpid};

use super::StartError;

/// Runs `work` in a forked child and waits for it. The child reports its own error on stderr
/// (`error: ...`, as the parent would) and exits 2, which returns [`StartError::Reported`].
pub(super) fn run(
    what: &'static str,
    work: impl FnOnce() -> Result<(), StartError>,
) -> Result<(), StartError> {
    let child = crate::child::spawn(|| match work() {
        Ok(()) => 0,
        Err(StartError::Reported) => 2,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err}");
            2
        }
    })
    .map_err(|errno| StartError::Apart { what, errno })?;
    loop {
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
    }
}
