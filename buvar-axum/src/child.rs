//! A forked child process that does one piece of start-up or reload work and exits, so that
//! nothing the work leaves behind (a runtime's signal state, threads, recorders) reaches the
//! process that forked it or the workers that process forks later.

use std::io::Write;

use nix::unistd::{ForkResult, Pid, fork};

/// Forks a child that runs `work` and exits with the status it returns; the caller reaps it.
///
/// The child dies with its parent (on Linux, by the parent-death signal): work must not run
/// on unsupervised behind a process that is gone.
///
/// Call it only while the process has one thread: the child would inherit locks held by
/// threads it lacks.
pub(crate) fn spawn(work: impl FnOnce() -> i32) -> nix::Result<Pid> {
    buvar_kit::log::flush();
    let _ = std::io::stdout().flush();
    #[cfg(target_os = "linux")]
    let parent = nix::unistd::getpid();
    // SAFETY: the caller has one thread, so no lock can be held by a thread the child lacks.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            #[cfg(target_os = "linux")]
            die_with(parent);
            let code = work();
            buvar_kit::log::flush();
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            // SAFETY: `_exit` only ends the process, skipping the parent's atexit state.
            unsafe { libc::_exit(code) }
        }
    }
}

#[cfg(target_os = "linux")]
fn die_with(parent: Pid) {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    // The parent may have died before the request was made.
    if nix::unistd::getppid() != parent {
        // SAFETY: as above.
        unsafe { libc::_exit(2) }
    }
}
