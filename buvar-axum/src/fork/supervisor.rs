//! The single-threaded parent: forks workers, forwards signals, reaps, replaces, restarts.

use std::{
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
    ForkError, Settings, Worker, backoff::Backoff, notify::Notifier, signals, worker::message,
};
use crate::sockets::BoundSocket;

/// How often the poll loop wakes without events, to run timers.
const TICK: Duration = Duration::from_millis(50);

/// How long past the graceful timeout a stopping worker has before it is killed.
const KILL_MARGIN: Duration = Duration::from_millis(500);

/// A forked worker that has not been reaped yet (so its pid is still ours to signal).
#[derive(Debug)]
struct Child {
    pid: Pid,
    slot: usize,
    generation: u64,
    /// The worker's status pipe, read until end of file.
    pipe: Option<OwnedFd>,
    spawned: Instant,
    ready_at: Option<Instant>,
    /// When its runtime last ticked (or said ready); checked once it is ready (before, the
    /// ready timeout applies) and only if it ever ticked (a worker that never started the
    /// heartbeat is not).
    last_beat: Option<Instant>,
    beating: bool,
    /// It asked to be replaced.
    retire: bool,
    /// Set once we asked it to stop: SIGKILL at this instant.
    kill_at: Option<Instant>,
    killed: bool,
    missed_readiness: bool,
    missed_heartbeat: bool,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    backoff: Backoff,
    respawn_at: Option<Instant>,
}

/// One step of a rolling restart: `new` replaces `old` once ready.
#[derive(Debug, Clone, Copy)]
struct Step {
    new: Pid,
    old: Pid,
}

#[derive(Debug)]
pub(super) struct Supervisor {
    settings: Settings,
    sockets: Vec<BoundSocket>,
    signals: Option<signals::SignalQueue>,
    /// Workers watch the read end; end of file there means this process is gone.
    parent_watch: Option<(OwnedFd, OwnedFd)>,
    pid: Pid,
    children: Vec<Child>,
    slots: Vec<Slot>,
    generation: u64,
    rolling: bool,
    step: Option<Step>,
    stopping: bool,
    forced: bool,
    never_ready: Option<(usize, String)>,
    ever_ready: bool,
    notifier: Notifier,
    /// Whether the service manager was last told `READY=1` (not `RELOADING=1`).
    announced_ready: bool,
}

impl Supervisor {
    pub(super) fn new(
        settings: Settings,
        sockets: Vec<BoundSocket>,
        workers: usize,
    ) -> Result<Self, ForkError> {
        let signals = signals::SignalQueue::open()?;
        let parent_watch = pipe2(OFlag::O_CLOEXEC).map_err(ForkError::sys("create a pipe"))?;
        Ok(Self {
            settings,
            sockets,
            signals: Some(signals),
            parent_watch: Some(parent_watch),
            pid: getpid(),
            children: Vec::new(),
            slots: vec![
                Slot {
                    backoff: Backoff::default(),
                    respawn_at: None,
                };
                workers
            ],
            generation: 0,
            rolling: false,
            step: None,
            stopping: false,
            forced: false,
            never_ready: None,
            ever_ready: false,
            notifier: Notifier::from_env(),
            announced_ready: false,
        })
    }

    pub(super) fn run<F>(mut self, work: &F) -> Result<ExitCode, ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        tracing::info!(workers = self.slots.len(), "supervisor starting");
        for slot in 0..self.slots.len() {
            self.spawn(slot, work)?;
        }
        loop {
            let messages = self.wait_for_events()?;
            self.handle_signals(work)?;
            for (pid, message) in messages {
                self.on_message(pid, message);
            }
            self.reap()?;
            self.run_timers(work)?;
            self.advance_rollout(work)?;
            self.report_status();
            if self.stopping && self.children.is_empty() {
                return self.finish();
            }
        }
    }

    fn finish(self) -> Result<ExitCode, ForkError> {
        if let Some((index, status)) = self.never_ready {
            return Err(ForkError::NeverReady { index, status });
        }
        if self.forced {
            tracing::warn!("supervisor stopped; some workers had to be killed");
            Ok(ExitCode::FAILURE)
        } else {
            tracing::info!("supervisor stopped cleanly");
            Ok(ExitCode::SUCCESS)
        }
    }

    /// Polls the signalfd and the workers' status pipes; returns what the workers said.
    fn wait_for_events(&mut self) -> Result<Vec<(Pid, u8)>, ForkError> {
        let Some(signals) = &self.signals else {
            return Ok(Vec::new());
        };
        let watched: Vec<(Pid, &OwnedFd)> = self
            .children
            .iter()
            .filter_map(|child| child.pipe.as_ref().map(|fd| (child.pid, fd)))
            .collect();
        let mut fds = Vec::with_capacity(watched.len() + 1);
        fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
        fds.extend(
            watched
                .iter()
                .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
        );
        let timeout = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::ZERO);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(ForkError::sys("poll")(errno)),
        }
        let mut readable = Vec::new();
        for (fd, (pid, _)) in fds.iter().skip(1).zip(&watched) {
            if fd.any().unwrap_or(false) {
                readable.push(*pid);
            }
        }
        let mut messages = Vec::new();
        for pid in readable {
            let Some(child) = self.children.iter_mut().find(|child| child.pid == pid) else {
                continue;
            };
            let mut bytes = [0u8; 64];
            let got = match &child.pipe {
                Some(fd) => nix::unistd::read(fd.as_raw_fd(), &mut bytes),
                None => continue,
            };
            match got {
                Ok(0) => child.pipe = None,
                Ok(n) => messages.extend(bytes[..n].iter().map(|byte| (pid, *byte))),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                // The worker closed its end in some broken way; reaping tells the rest.
                Err(_) => child.pipe = None,
            }
        }
        Ok(messages)
    }

    fn on_message(&mut self, pid: Pid, byte: u8) {
        match byte {
            message::READY => self.on_ready(pid),
            message::HEARTBEAT => {
                if let Some(child) = self.children.iter_mut().find(|child| child.pid == pid) {
                    child.last_beat = Some(Instant::now());
                    child.beating = true;
                }
            }
            message::REPLACE_ME => {
                if let Some(child) = self.children.iter_mut().find(|child| child.pid == pid) {
                    if child.kill_at.is_none() && !child.retire {
                        tracing::info!(index = child.slot, worker_pid = %pid, "worker asked to be replaced");
                        child.retire = true;
                    }
                }
            }
            other => {
                tracing::warn!(worker_pid = %pid, byte = other, "unknown message from a worker")
            }
        }
    }

    fn handle_signals<F>(&mut self, work: &F) -> Result<(), ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        let received = match &mut self.signals {
            Some(signals) => signals.drain()?,
            None => Vec::new(),
        };
        for signal in received {
            match signal {
                Signal::SIGCHLD => {}
                Signal::SIGTERM | Signal::SIGINT if !self.stopping => {
                    tracing::info!(%signal, "stopping gracefully");
                    self.begin_stop(signal);
                }
                Signal::SIGINT | Signal::SIGQUIT => {
                    tracing::warn!(%signal, "stopping at once");
                    self.begin_stop(Signal::SIGTERM);
                    self.kill_all();
                }
                Signal::SIGTERM => {}
                Signal::SIGHUP if !self.stopping => {
                    tracing::info!("rolling restart requested");
                    self.generation += 1;
                    self.rolling = true;
                    self.announced_ready = false;
                    self.notifier.reloading();
                }
                Signal::SIGTTIN if !self.stopping => self.add_worker(work)?,
                Signal::SIGTTOU if !self.stopping => self.remove_worker(),
                Signal::SIGHUP | Signal::SIGTTIN | Signal::SIGTTOU => {}
                other => {
                    for child in &self.children {
                        signal_child(child, other);
                    }
                }
            }
        }
        Ok(())
    }

    /// SIGTTIN: one more slot, started at once.
    fn add_worker<F>(&mut self, work: &F) -> Result<(), ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        self.slots.push(Slot {
            backoff: Backoff::default(),
            respawn_at: None,
        });
        let index = self.slots.len() - 1;
        tracing::info!(workers = self.slots.len(), "adding a worker");
        if let Err(error) = self.spawn(index, work) {
            self.retry_later(index, error)?;
        }
        Ok(())
    }

    /// SIGTTOU: the newest slot goes away; its workers drain as on SIGTERM.
    fn remove_worker(&mut self) {
        if self.slots.len() <= 1 {
            tracing::warn!("not removing the last worker");
            return;
        }
        self.slots.pop();
        let index = self.slots.len();
        tracing::info!(workers = self.slots.len(), "removing a worker");
        let deadline = Instant::now() + self.kill_after();
        for child in &mut self.children {
            if child.slot == index && child.kill_at.is_none() {
                stop_child(child, Signal::SIGTERM, deadline);
            }
        }
    }

    /// Tells the service manager the counts, and `READY=1` once every slot has a ready worker
    /// and no rollout is under way.
    fn report_status(&mut self) {
        if self.stopping {
            return;
        }
        let total = self.slots.len();
        let ready = (0..total)
            .filter(|slot| {
                self.children.iter().any(|child| {
                    child.slot == *slot && child.ready_at.is_some() && child.kill_at.is_none()
                })
            })
            .count();
        crate::metrics::supervisor_status(total, ready);
        let settled = !self.rolling && self.step.is_none();
        if !self.announced_ready && settled && ready == total {
            self.announced_ready = true;
            self.notifier.ready(ready, total);
        } else {
            self.notifier.status(ready, total);
        }
    }

    fn on_ready(&mut self, pid: Pid) {
        let now = Instant::now();
        let Some(child) = self.children.iter_mut().find(|child| child.pid == pid) else {
            return;
        };
        child.ready_at = Some(now);
        // Saying ready proves the runtime runs: a beat from before a slow start is stale.
        child.last_beat = Some(now);
        self.ever_ready = true;
        tracing::info!(index = child.slot, worker_pid = %pid, "worker ready");
        if let Some(step) = self.step.filter(|step| step.new == pid) {
            self.step = None;
            let deadline = now + self.kill_after();
            if let Some(old) = self.children.iter_mut().find(|child| child.pid == step.old) {
                if old.kill_at.is_none() {
                    tracing::info!(index = old.slot, worker_pid = %old.pid, "stopping the replaced worker");
                    stop_child(old, Signal::SIGTERM, deadline);
                }
            }
        }
    }

    fn reap(&mut self) -> Result<(), ForkError> {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(ForkError::sys("wait for workers")(errno)),
                Ok(status) => status,
            };
            let (pid, how) = match status {
                WaitStatus::Exited(pid, code) => (pid, format!("exited with status {code}")),
                WaitStatus::Signaled(pid, signal, _) => (pid, format!("was killed by {signal}")),
                _ => continue,
            };
            if let Some(child) = self.children.iter().find(|child| child.pid == pid) {
                // What the worker counted joins the metrics' retired totals (memory only).
                crate::metrics::worker_reaped(
                    child.pid.as_raw(),
                    crate::metrics::ExitCause::of(
                        matches!(status, WaitStatus::Signaled(..)),
                        matches!(status, WaitStatus::Exited(_, 0)),
                        child.kill_at.is_some(),
                        self.stopping,
                        child.missed_heartbeat,
                        child.missed_readiness,
                    ),
                );
            }
            self.on_exit(pid, how);
        }
    }

    fn on_exit(&mut self, pid: Pid, how: String) {
        let Some(at) = self.children.iter().position(|child| child.pid == pid) else {
            return;
        };
        let child = self.children.swap_remove(at);
        let index = child.slot;
        let was_new = self.step.is_some_and(|step| step.new == pid);
        if was_new && child.kill_at.is_some() {
            // Stopped on purpose (its slot was removed); the rollout picks the next one.
            self.step = None;
        }
        if child.kill_at.is_some() {
            tracing::info!(index, worker_pid = %pid, "worker {how} after being asked to stop");
            return;
        }
        if self.stopping {
            tracing::info!(index, worker_pid = %pid, "worker {how} while stopping");
            return;
        }
        let why = if child.missed_readiness {
            "it did not become ready in time"
        } else if child.missed_heartbeat {
            "its runtime stopped ticking the heartbeat"
        } else {
            "unexpectedly"
        };
        tracing::warn!(index, worker_pid = %pid, "worker {how}: {why}");
        if was_new {
            tracing::error!(index, worker_pid = %pid, "rolling restart aborted: the new worker failed; keeping the old workers");
            if let Some(step) = self.step.take() {
                // Its replacement failed: it serves on rather than be retried in a loop.
                if let Some(old) = self.children.iter_mut().find(|c| c.pid == step.old) {
                    old.retire = false;
                }
            }
            self.rolling = false;
            return;
        }
        if index >= self.slots.len() {
            return;
        }
        if !self.ever_ready {
            tracing::error!(index, worker_pid = %pid, "no worker ever became ready; stopping");
            self.never_ready = Some((index, how));
            self.begin_stop(Signal::SIGTERM);
            return;
        }
        let slot_taken = self
            .children
            .iter()
            .any(|other| other.slot == index && other.kill_at.is_none());
        if slot_taken {
            return;
        }
        let now = Instant::now();
        let ready_for = child.ready_at.map(|ready| now.duration_since(ready));
        let slot = &mut self.slots[index];
        let delay = slot.backoff.after_failure(ready_for);
        slot.respawn_at = Some(now + delay);
        tracing::info!(index, ?delay, "replacing the worker");
    }

    fn run_timers<F>(&mut self, work: &F) -> Result<(), ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        let now = Instant::now();
        for child in &mut self.children {
            if child.killed {
                continue;
            }
            if child.kill_at.is_some_and(|at| at <= now) {
                tracing::warn!(index = child.slot, worker_pid = %child.pid, "graceful timeout passed; killing the worker");
                signal_child(child, Signal::SIGKILL);
                child.killed = true;
                self.forced = true;
            } else if child.kill_at.is_none()
                && child.ready_at.is_none()
                && now.duration_since(child.spawned) >= self.settings.ready_timeout
            {
                tracing::warn!(index = child.slot, worker_pid = %child.pid, "worker not ready in time; killing it");
                signal_child(child, Signal::SIGKILL);
                child.killed = true;
                child.missed_readiness = true;
            } else if child.kill_at.is_none()
                && child.ready_at.is_some()
                && child.beating
                && self.settings.heartbeat_timeout.is_some_and(|timeout| {
                    child
                        .last_beat
                        .is_some_and(|beat| now.duration_since(beat) >= timeout)
                })
            {
                tracing::warn!(index = child.slot, worker_pid = %child.pid, "worker missed its heartbeat; killing it");
                signal_child(child, Signal::SIGKILL);
                child.killed = true;
                child.missed_heartbeat = true;
            }
        }
        if self.stopping {
            return Ok(());
        }
        for index in 0..self.slots.len() {
            if self.slots[index].respawn_at.is_some_and(|at| at <= now) {
                self.slots[index].respawn_at = None;
                if let Err(error) = self.spawn(index, work) {
                    self.retry_later(index, error)?;
                }
            }
        }
        Ok(())
    }

    /// A worker that could not be forked (out of memory or processes, say) is retried with
    /// the slot's back-off; only a threaded supervisor is beyond repair.
    fn retry_later(&mut self, index: usize, error: ForkError) -> Result<(), ForkError> {
        if let ForkError::Threaded { .. } = error {
            return Err(error);
        }
        let slot = &mut self.slots[index];
        let delay = slot.backoff.after_failure(None);
        slot.respawn_at = Some(Instant::now() + delay);
        tracing::error!(index, %error, ?delay, "cannot start a worker; retrying");
        Ok(())
    }

    fn advance_rollout<F>(&mut self, work: &F) -> Result<(), ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        if self.stopping || self.step.is_some() {
            return Ok(());
        }
        let rolling = self.rolling;
        let generation = self.generation;
        let next = self
            .children
            .iter()
            .find(|child| {
                (child.retire || (rolling && child.generation < generation))
                    && child.kill_at.is_none()
                    && !child.killed
            })
            .map(|child| (child.pid, child.slot));
        match next {
            Some((old, slot)) => match self.spawn(slot, work) {
                Ok(new) => self.step = Some(Step { new, old }),
                Err(error @ ForkError::Threaded { .. }) => return Err(error),
                Err(error) => {
                    tracing::error!(%error, "replacement aborted: cannot start a new worker");
                    self.rolling = false;
                    for child in &mut self.children {
                        child.retire = false;
                    }
                }
            },
            None if rolling => {
                self.rolling = false;
                tracing::info!("rolling restart complete");
            }
            None => {}
        }
        Ok(())
    }

    /// How long after asking a worker to stop it is killed: a worker ends its own drain at
    /// the graceful timeout, so the margin lets it exit cleanly rather than race the kill.
    fn kill_after(&self) -> Duration {
        self.settings.graceful_timeout + KILL_MARGIN
    }

    fn begin_stop(&mut self, signal: Signal) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.notifier.stopping();
        self.rolling = false;
        self.step = None;
        // Closing our copies makes the sockets vanish once the workers drop theirs, so new
        // connections are refused instead of queueing for nobody.
        self.sockets.clear();
        let deadline = Instant::now() + self.kill_after();
        for child in &mut self.children {
            if child.kill_at.is_none() {
                stop_child(child, signal, deadline);
            }
        }
    }

    fn kill_all(&mut self) {
        for child in &mut self.children {
            if !child.killed {
                signal_child(child, Signal::SIGKILL);
                child.killed = true;
                self.forced = true;
            }
        }
    }

    fn spawn<F>(&mut self, slot: usize, work: &F) -> Result<Pid, ForkError>
    where
        F: Fn(Worker) -> i32,
    {
        super::ensure_single_threaded()?;
        let (ready_read, ready_write) =
            pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(ForkError::sys("create a pipe"))?;
        // SAFETY: this process has a single thread (checked above), so no lock is held
        // by a thread that would not exist in the child.
        match unsafe { fork() }.map_err(ForkError::sys("fork"))? {
            ForkResult::Parent { child } => {
                drop(ready_write);
                tracing::info!(index = slot, worker_pid = %child, "worker started");
                self.children.push(Child {
                    pid: child,
                    slot,
                    generation: self.generation,
                    pipe: Some(ready_read),
                    spawned: Instant::now(),
                    ready_at: None,
                    last_beat: None,
                    beating: false,
                    retire: false,
                    kill_at: None,
                    killed: false,
                    missed_readiness: false,
                    missed_heartbeat: false,
                });
                Ok(child)
            }
            ForkResult::Child => {
                drop(ready_read);
                let code = match self.become_worker(slot, ready_write) {
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
    fn become_worker(&mut self, slot: usize, ready: OwnedFd) -> Result<Worker, ForkError> {
        if let Some(signals) = self.signals.take() {
            signals.close_in_worker();
        }
        self.children.clear();
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
        .with_heartbeat(beat))
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
    // `_exit` skips Rust's buffered stdout; what the worker printed must still arrive.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process; nix offers no wrapper for it.
    unsafe { libc::_exit(code) }
}

fn stop_child(child: &mut Child, signal: Signal, deadline: Instant) {
    child.kill_at = Some(deadline);
    signal_child(child, signal);
}

/// Signals a worker that has not been reaped, so its pid cannot belong to anyone else.
fn signal_child(child: &Child, signal: Signal) {
    if let Err(errno) = kill(child.pid, signal) {
        tracing::warn!(worker_pid = %child.pid, %signal, %errno, "cannot signal worker");
    }
}
