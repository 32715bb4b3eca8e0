//! The single-threaded parent, as a thin executor of the [`policy`](super::policy): it waits
//! for signals and worker messages, reaps, forks, signals and notifies as the policy says.

use std::{
    collections::VecDeque,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    process::ExitCode,
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    fcntl::OFlag,
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::{
        signal::{Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::{ForkResult, Pid, fork, getpid, getppid, pipe2},
};

use super::{
    ForkError, Prefork, Reload, Settings, Worker,
    notify::Notifier,
    pidfile::Pidfile,
    policy::{Action, Event, Exit, Fate, Hangup, KillCause, Notice, Outcome, Policy, Timing},
    signals,
    upgrade::{self, Program},
};
use crate::sockets::BoundSocket;

/// How often the poll loop wakes without events, to run timers.
const TICK: Duration = Duration::from_millis(50);

pub(super) struct Supervisor {
    settings: Settings,
    sockets: Vec<BoundSocket>,
    signals: Option<signals::SignalQueue>,
    /// Workers watch the read end; end of file there means this process is gone.
    parent_watch: Option<(OwnedFd, OwnedFd)>,
    pid: Pid,
    policy: Policy,
    /// Each worker's status pipe, read until end of file.
    pipes: Vec<(Pid, OwnedFd)>,
    /// The write end of each worker's release pipe, closed by [`Action::Release`].
    releases: Vec<(Pid, OwnedFd)>,
    notifier: Notifier,
    reload: Option<Box<dyn Reload>>,
    /// What SIGUSR2 runs again, or why it cannot.
    program: Result<Program, String>,
    /// While an upgrade runs: the pipe the new program confirms on.
    upgrade_pipe: Option<OwnedFd>,
    /// Started by an upgrade: the pipe to confirm on once every worker is ready.
    handoff: Option<OwnedFd>,
    pidfile: Option<Pidfile>,
}

impl Supervisor {
    pub(super) fn new(prefork: Prefork, workers: usize) -> Result<Self, ForkError> {
        let Prefork {
            sockets,
            settings,
            reload,
            pidfile,
            ..
        } = prefork;
        let signals = signals::SignalQueue::open()?;
        let parent_watch = pipe2(OFlag::O_CLOEXEC).map_err(ForkError::sys("create a pipe"))?;
        let timing = Timing {
            graceful_timeout: settings.graceful_timeout,
            ready_timeout: settings.ready_timeout,
            heartbeat_timeout: settings.heartbeat_timeout,
            shutdown_delay: settings.shutdown_delay,
            upgrade_timeout: settings.upgrade_timeout,
        };
        let hangup = match reload {
            Some(_) => Hangup::Reload,
            None => Hangup::Restart,
        };
        Ok(Self {
            settings,
            sockets,
            signals: Some(signals),
            parent_watch: Some(parent_watch),
            pid: getpid(),
            policy: Policy::new(timing, workers, hangup),
            pipes: Vec::new(),
            releases: Vec::new(),
            notifier: Notifier::from_env(),
            reload,
            program: Program::current(),
            upgrade_pipe: None,
            handoff: upgrade::take_handoff(),
            pidfile: pidfile.map(Pidfile::new),
        })
    }

    pub(super) fn run<F>(mut self, work: &F) -> Result<ExitCode, ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        tracing::info!(workers = self.policy.slots(), "supervisor starting");
        // Before the first fork: a pidfile that cannot be written stops the start with nothing
        // to clean up. An upgrade's new supervisor writes it once it takes over.
        if self.handoff.is_none() {
            if let Some(pidfile) = &self.pidfile {
                pidfile.write()?;
            }
        }
        let start = self.policy.start();
        self.perform(start, work)?;
        loop {
            let said = self.wait_for_events()?;
            let received = match &mut self.signals {
                Some(signals) => signals.drain()?,
                None => Vec::new(),
            };
            let mut events: Vec<Event> = received
                .into_iter()
                .filter(|signal| self.takes(*signal))
                .map(Event::Signal)
                .collect();
            events.extend(said);
            for event in events {
                self.handle(event, work)?;
            }
            for (pid, exit) in reap()? {
                self.pipes.retain(|(child, _)| *child != pid);
                self.releases.retain(|(child, _)| *child != pid);
                if let Some(fate) = self.policy.fate(pid) {
                    // What the worker counted joins the metrics' retired totals (memory only).
                    crate::metrics::worker_reaped(pid.as_raw(), exit_cause(exit, fate));
                }
                self.handle(Event::Exited(pid, exit), work)?;
            }
            self.handle(Event::Tick, work)?;
            // Log lines a stalled reader of stdout did not take wait in a backlog; the loop
            // writes them as the reader catches up (never blocking on it).
            buvar_kit::log::flush();
            if let Some(outcome) = self.policy.outcome() {
                if let Some(pidfile) = &self.pidfile {
                    pidfile.remove();
                }
                return finish(outcome);
            }
        }
    }

    fn handle<F>(&mut self, event: Event, work: &F) -> Result<(), ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        let actions = self.policy.handle(event, Instant::now());
        self.perform(actions, work)
    }

    /// Performs `actions` in order; what a fork answers goes back to the policy at once.
    fn perform<F>(&mut self, actions: Vec<Action>, work: &F) -> Result<(), ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Spawn { slot, replacing } => {
                    let result = match self.spawn(slot, work) {
                        Ok(pid) => Ok(pid),
                        Err(error @ ForkError::Threaded { .. }) => return Err(error),
                        Err(error) => Err(error.to_string()),
                    };
                    let event = Event::Spawned {
                        slot,
                        replacing,
                        result,
                    };
                    queue.extend(self.policy.handle(event, Instant::now()));
                }
                Action::Signal(pid, signal) => signal_child(pid, signal),
                Action::SkipDelay(pid) => {
                    // SAFETY: `kill` only sends a signal; the pid is not reaped yet, so it is
                    // still our worker's.
                    if unsafe { libc::kill(pid.as_raw(), signals::skip_delay()) } != 0 {
                        let errno = Errno::last();
                        tracing::warn!(worker_pid = %pid, %errno, "cannot signal worker");
                    }
                }
                Action::CloseSockets => self.sockets.clear(),
                Action::Release(pid) => self.releases.retain(|(child, _)| *child != pid),
                Action::HandOverSockets => {
                    for socket in &mut self.sockets {
                        socket.disown_file();
                    }
                    self.sockets.clear();
                    self.upgrade_pipe = None;
                }
                Action::CheckConfig => {
                    let event = Event::CheckStarted(self.check_config());
                    queue.extend(self.policy.handle(event, Instant::now()));
                }
                Action::CommitConfig(reloaded) => {
                    if let Some(reload) = &mut self.reload {
                        reload.commit();
                    }
                    if let Some(timeout) = reloaded.graceful_timeout {
                        self.settings.graceful_timeout = timeout;
                    }
                    if let Some(timeout) = reloaded.heartbeat_timeout {
                        self.settings.heartbeat_timeout = timeout;
                    }
                }
                Action::Upgrade => {
                    let event = Event::UpgradeStarted(self.start_upgrade());
                    queue.extend(self.policy.handle(event, Instant::now()));
                }
                Action::Notify(notice) => match notice {
                    Notice::Ready { ready, total } => {
                        crate::metrics::supervisor_status(total, ready);
                        if let Some(handoff) = self.handoff.take() {
                            // The pidfile first: the old supervisor, once told, removes it at
                            // exit unless it names another process. Its path was written by
                            // the old one; should it fail now, serving matters more.
                            if let Some(Err(error)) = self.pidfile.as_ref().map(Pidfile::write) {
                                tracing::error!(%error, "taking over without the pidfile");
                            }
                            self.notifier.main_pid();
                            upgrade::confirm(handoff);
                            tracing::info!("serving in place of the supervisor that started us");
                        }
                        self.notifier.ready(ready, total);
                    }
                    Notice::Status { ready, total } => {
                        crate::metrics::supervisor_status(total, ready);
                        self.notifier.status(ready, total);
                    }
                    Notice::Reloading => self.notifier.reloading(),
                    Notice::ReloadFailed => self.notifier.reload_failed(),
                    Notice::Upgrading => self.notifier.upgrading(),
                    Notice::UpgradeFailed => self.notifier.upgrade_failed(),
                    Notice::Stopping => self.notifier.stopping(),
                },
            }
        }
        Ok(())
    }

    /// Polls the signalfd, the workers' status pipes and an upgrade's pipe; returns what the
    /// workers and the new program said.
    fn wait_for_events(&mut self) -> Result<Vec<Event>, ForkError> {
        let Some(signals) = &self.signals else {
            return Ok(Vec::new());
        };
        let mut fds = Vec::with_capacity(self.pipes.len() + 2);
        fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
        fds.extend(
            self.pipes
                .iter()
                .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
        );
        if let Some(pipe) = &self.upgrade_pipe {
            fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
        }
        let timeout = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::ZERO);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(ForkError::sys("poll")(errno)),
        }
        let readable: Vec<bool> = fds
            .iter()
            .skip(1)
            .map(|fd| fd.any().unwrap_or(false))
            .collect();
        drop(fds);
        let upgrade_readable = readable.get(self.pipes.len()) == Some(&true);
        let mut events = Vec::new();
        let mut closed = Vec::new();
        for ((pid, fd), readable) in self.pipes.iter().zip(&readable) {
            if !readable {
                continue;
            }
            let mut bytes = [0u8; 64];
            match nix::unistd::read(fd.as_raw_fd(), &mut bytes) {
                Ok(0) => closed.push(*pid),
                Ok(n) => events.extend(bytes[..n].iter().map(|byte| Event::Message(*pid, *byte))),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                // The worker closed its end in some broken way; reaping tells the rest.
                Err(_) => closed.push(*pid),
            }
        }
        self.pipes.retain(|(pid, _)| !closed.contains(pid));
        if upgrade_readable {
            if let Some(pipe) = &self.upgrade_pipe {
                let mut byte = [0u8; 1];
                match nix::unistd::read(pipe.as_raw_fd(), &mut byte) {
                    Ok(1) => events.push(Event::UpgradeReady),
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    // Closed without a word: reaping the new program tells why.
                    _ => self.upgrade_pipe = None,
                }
            }
        }
        Ok(events)
    }

    /// Whether to act on `signal`. A supervisor started by an upgrade that has not taken over
    /// yet leaves reloads and upgrades to the one that started it: a SIGHUP or SIGUSR2 sent to
    /// the whole group was meant for that one.
    fn takes(&self, signal: Signal) -> bool {
        let waiting = self.handoff.is_some() && matches!(signal, Signal::SIGHUP | Signal::SIGUSR2);
        if waiting {
            tracing::warn!(%signal, "ignored: this supervisor has not taken over from the one that started it yet");
        }
        !waiting
    }

    /// SIGHUP with a [`Reload`]: reads the configuration (here) and checks it (in a child).
    fn check_config(&mut self) -> Result<(Pid, super::Reloaded), String> {
        let Some(reload) = self.reload.as_mut() else {
            return Err("this service has nothing to reload".to_owned());
        };
        let reloaded = reload.load().map_err(|error| error.to_string())?;
        super::ensure_single_threaded().map_err(|error| error.to_string())?;
        let reload = &*reload;
        let checker = crate::child::spawn(|| {
            // The check may run a runtime: it needs signals as any process has them.
            if let Err(error) = signals::reset_in_worker() {
                tracing::error!(%error, "config check cannot reset its signals");
                return 2;
            }
            if reload.check() { 0 } else { 2 }
        })
        .map_err(|errno| format!("cannot fork the config check: {errno}"))?;
        Ok((checker, reloaded))
    }

    /// SIGUSR2: runs the program again with the sockets; keeps the pipe it confirms on.
    fn start_upgrade(&mut self) -> Result<Pid, String> {
        let program = self.program.as_ref().map_err(Clone::clone)?;
        let (pid, pipe) = program
            .start(&self.sockets)
            .map_err(|error| error.to_string())?;
        self.upgrade_pipe = Some(pipe);
        Ok(pid)
    }

    fn spawn<F>(&mut self, slot: usize, work: &F) -> Result<Pid, ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        super::ensure_single_threaded()?;
        let (ready_read, ready_write) =
            pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(ForkError::sys("create a pipe"))?;
        let (release_read, release_write) =
            pipe2(OFlag::O_CLOEXEC).map_err(ForkError::sys("create a pipe"))?;
        // SAFETY: this process has a single thread (checked above), so no lock is held
        // by a thread that would not exist in the child.
        match unsafe { fork() }.map_err(ForkError::sys("fork"))? {
            ForkResult::Parent { child } => {
                drop(ready_write);
                drop(release_read);
                tracing::info!(index = slot, worker_pid = %child, "worker started");
                self.pipes.push((child, ready_read));
                self.releases.push((child, release_write));
                Ok(child)
            }
            ForkResult::Child => {
                drop(ready_read);
                drop(release_write);
                let code = match self.become_worker(slot, ready_write, release_read) {
                    Ok(worker) => run_worker(work, worker),
                    Err(error) => {
                        tracing::error!(index = slot, %error, "worker setup failed");
                        1
                    }
                };
                exit_worker(code)
            }
        }
    }

    /// Runs in the child right after fork: drop what belongs to the parent, die with it.
    fn become_worker(
        &mut self,
        slot: usize,
        ready: OwnedFd,
        release: OwnedFd,
    ) -> Result<Worker, ForkError> {
        if let Some(signals) = self.signals.take() {
            signals.close_in_worker();
        }
        self.pipes.clear();
        // The siblings' write ends: held here, their release would never come.
        self.releases.clear();
        self.upgrade_pipe = None;
        self.handoff = None;
        let parent_watch = self.parent_watch.take().map(|(read, _write)| read);
        signals::reset_in_worker()?;
        if let Some(credentials) = self.settings.credentials {
            credentials.assume()?;
        }
        // After the credentials: changing them clears the parent-death signal.
        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
            .map_err(ForkError::sys("set the parent-death signal"))?;
        // The supervisor may have died before the line above took effect.
        if getppid() != self.pid {
            return Err(ForkError::Sys {
                action: "start a worker: the supervisor is already gone",
                source: Errno::ESRCH,
            });
        }
        // A few beats per timeout, so one late tick is no reason to kill.
        let beat = self
            .settings
            .heartbeat_timeout
            .map(|timeout| (timeout / 4).max(Duration::from_millis(1)));
        Ok(Worker::new(
            slot,
            std::mem::take(&mut self.sockets),
            self.settings.graceful_timeout,
            Some(ready),
            parent_watch,
        )
        .with_release(release)
        .with_heartbeat(beat))
    }
}

fn finish(outcome: Outcome) -> Result<ExitCode, ForkError> {
    buvar_kit::log::flush();
    match outcome {
        Outcome::NeverReady(index, status) => Err(ForkError::NeverReady { index, status }),
        Outcome::Forced => {
            tracing::warn!("supervisor stopped; some workers had to be killed");
            Ok(ExitCode::FAILURE)
        }
        Outcome::Clean => {
            tracing::info!("supervisor stopped cleanly");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Every child that ended since the last call (`waitpid(-1, WNOHANG)` until nothing is left),
/// with how it ended.
fn reap() -> Result<Vec<(Pid, Exit)>, ForkError> {
    let mut exited = Vec::new();
    loop {
        let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(exited),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(ForkError::sys("wait for workers")(errno)),
            Ok(status) => status,
        };
        match status {
            WaitStatus::Exited(pid, code) => exited.push((pid, Exit::Code(code))),
            WaitStatus::Signaled(pid, signal, _) => exited.push((pid, Exit::Signal(signal))),
            _ => {}
        }
    }
}

/// Why a reaped worker ended, as the metrics count it.
fn exit_cause(exit: Exit, fate: Fate) -> crate::metrics::ExitCause {
    use crate::metrics::ExitCause;
    match fate {
        Fate::Killed(KillCause::Heartbeat) => ExitCause::Heartbeat,
        Fate::Killed(KillCause::NotReady) => ExitCause::NotReady,
        Fate::ServiceStopping => ExitCause::Shutdown,
        Fate::Replaced | Fate::Killed(_) => ExitCause::Recycled,
        Fate::Unasked => match exit {
            Exit::Signal(_) => ExitCause::Signal,
            Exit::Code(0) => ExitCause::Exited,
            Exit::Code(_) => ExitCause::Crash,
        },
    }
}

fn run_worker<F>(work: &F, worker: Worker) -> i32
where
    F: Fn(Worker) -> i32,
{
    let index = worker.index();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(worker))) {
        Ok(code) => code,
        Err(_) => {
            tracing::error!(index, "worker panicked");
            101
        }
    }
}

/// Ends a forked worker without ever returning into the supervisor's code.
fn exit_worker(code: i32) -> ! {
    use std::io::Write;
    buvar_kit::log::flush();
    // `_exit` skips Rust's buffered stdout; what the worker printed must still arrive.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process; nix offers no wrapper for it.
    unsafe { libc::_exit(code) }
}

/// Signals a worker that has not been reaped (the policy forgets a pid once it is reaped), so
/// its pid cannot belong to anyone else.
fn signal_child(pid: Pid, signal: Signal) {
    if let Err(errno) = kill(pid, signal) {
        tracing::warn!(worker_pid = %pid, %signal, %errno, "cannot signal worker");
    }
}
