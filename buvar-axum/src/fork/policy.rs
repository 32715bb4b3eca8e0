//! The supervisor's decisions, without a system call: when to start, stop, kill, replace and
//! roll workers, and what to tell the service manager. It takes an [`Event`] and the time and
//! returns [`Action`]s; the executor (`supervisor.rs`) forks, signals and notifies, and feeds
//! back what happened. Unit-tested with a fake clock below.

use std::time::{Duration, Instant};

use nix::{sys::signal::Signal, unistd::Pid};

use super::{backoff::Backoff, reload::Reloaded, worker::message};

/// How long past the graceful timeout a stopping worker has before it is killed.
const KILL_MARGIN: Duration = Duration::from_millis(500);

/// The timing the policy applies.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) graceful_timeout: Duration,
    pub(super) ready_timeout: Duration,
    pub(super) heartbeat_timeout: Option<Duration>,
    pub(super) shutdown_delay: Duration,
    /// How long a new program started by SIGUSR2 may take to say its workers are ready.
    pub(super) upgrade_timeout: Duration,
}

/// What SIGHUP does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hangup {
    /// Roll the workers onto the configuration they were forked with.
    Restart,
    /// Read and check the configuration again, then roll the workers onto it.
    Reload,
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it.
    Signal(Signal),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with status {code}"),
            Exit::Signal(signal) => write!(f, "was killed by {signal}"),
        }
    }
}

/// What happened, as the executor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    /// A signal arrived.
    Signal(Signal),
    /// A worker wrote a byte on its status pipe.
    Message(Pid, u8),
    /// A child (a worker, a config check, a new program) was reaped.
    Exited(Pid, Exit),
    /// The answer to [`Action::Spawn`]: the new worker's pid, or why it could not start.
    Spawned {
        slot: usize,
        replacing: Option<Pid>,
        result: Result<Pid, String>,
    },
    /// The answer to [`Action::CheckConfig`]: the child checking the reloaded configuration
    /// and what it changes, or why the configuration was refused.
    CheckStarted(Result<(Pid, Reloaded), String>),
    /// The answer to [`Action::Upgrade`]: the new program's pid, or why it could not start.
    UpgradeStarted(Result<Pid, String>),
    /// The new program said its workers are ready.
    UpgradeReady,
    /// Time passed: run timers, the rollout and the status.
    Tick,
}

/// What the executor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Fork a worker for `slot` and answer with [`Event::Spawned`].
    Spawn { slot: usize, replacing: Option<Pid> },
    /// Send `signal` to a worker that is not reaped yet.
    Signal(Pid, Signal),
    /// Tell a worker to skip the rest of the shutdown delay.
    SkipDelay(Pid),
    /// Close the supervisor's copies of the listening sockets.
    CloseSockets,
    /// Close them, leaving unix socket files to the new program that took them over.
    HandOverSockets,
    /// Close the worker's release pipe: its end of file tells a worker asked to stop that no
    /// connection can queue on a listening socket that only the supervisor still holds (the
    /// supervisor closed its copies first, or keeps serving them through other workers), so its
    /// drain may stop accepting.
    Release(Pid),
    /// Read the configuration again and check it in a child; answer with
    /// [`Event::CheckStarted`].
    CheckConfig,
    /// The checked configuration is the one new workers get from now on.
    CommitConfig(Reloaded),
    /// Start the program again with the listening sockets; answer with
    /// [`Event::UpgradeStarted`].
    Upgrade,
    /// Tell the service manager.
    Notify(Notice),
}

/// A message for the service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notice {
    Ready { ready: usize, total: usize },
    Status { ready: usize, total: usize },
    Reloading,
    ReloadFailed,
    Upgrading,
    UpgradeFailed,
    Stopping,
}

/// A change of the running service under way; one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Idle,
    /// SIGHUP: the configuration was read again and a child checks it.
    Checking {
        checker: Pid,
        reloaded: Reloaded,
    },
    /// SIGUSR2: a new program runs with the sockets; it must say ready by `deadline`.
    Upgrading {
        pid: Pid,
        deadline: Instant,
    },
    /// A child of a change that failed or that the stop ended: told to stop, killed at
    /// `kill_at` if set, and waited for.
    Abandoning {
        pid: Pid,
        kill_at: Option<Instant>,
    },
}

/// Why a worker was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KillCause {
    NotReady,
    Heartbeat,
    Deadline,
    AtOnce,
}

/// Where a worker is in its life; a reaped worker leaves the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildState {
    /// Forked, not ready yet; `beating` once its heartbeat started.
    Starting { since: Instant, beating: bool },
    /// Accepting; `beat` is the last heartbeat once it beats (checked from then on).
    Ready { beat: Option<Instant> },
    /// Ready, and asked to be replaced: serves on until its replacement is ready.
    Retiring { beat: Option<Instant> },
    /// Asked to stop; killed at the deadline.
    Stopping { deadline: Instant },
    /// Sent SIGKILL; waits to be reaped.
    Killed { cause: KillCause },
}

impl ChildState {
    /// Asked to stop (drain or kill): its exit is no failure and its slot is free.
    fn asked_to_stop(self) -> bool {
        matches!(
            self,
            ChildState::Stopping { .. }
                | ChildState::Killed {
                    cause: KillCause::Deadline | KillCause::AtOnce
                }
        )
    }

    fn is_ready(self) -> bool {
        matches!(self, ChildState::Ready { .. } | ChildState::Retiring { .. })
    }
}

/// What the policy had decided for a worker when it ended, so its exit can be told apart
/// (the metrics count exits by cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Nobody asked it to stop: its exit was its own (or an operator's signal).
    Unasked,
    /// Asked to stop while the service serves on: replaced, recycled or removed.
    Replaced,
    /// Asked to stop because the service stops.
    ServiceStopping,
    /// Killed by the supervisor for this reason.
    Killed(KillCause),
}

/// A forked worker that was not reaped yet.
#[derive(Debug, Clone, Copy)]
struct Child {
    pid: Pid,
    slot: usize,
    generation: u64,
    ready_since: Option<Instant>,
    state: ChildState,
}

impl Child {
    /// Asks the worker to stop with `signal` (it drains), to be killed at `deadline`, and
    /// releases it. Callers that close the supervisor's sockets push that first: a worker that
    /// stopped accepting before it would leave connections to queue on a socket nobody
    /// accepts on, reset when it closes (a stop signal sent to the whole group reaches the
    /// workers as early as the supervisor).
    fn ask_to_stop(&mut self, signal: Signal, deadline: Instant, actions: &mut Vec<Action>) {
        self.state = ChildState::Stopping { deadline };
        actions.push(Action::Signal(self.pid, signal));
        actions.push(Action::Release(self.pid));
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    backoff: Backoff,
    respawn_at: Option<Instant>,
}

/// One step of a replacement: `new` (once forked) replaces `old` once ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    new: Option<Pid>,
    old: Pid,
}

/// What the supervisor is doing as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Keeping every slot served; `rolling` while a SIGHUP rollout runs, `step` while one
    /// worker is being replaced (by a rollout or because it asked).
    Serving { rolling: bool, step: Option<Step> },
    /// Stopping: no respawns; the workers serve on until `delay_until` (the shutdown delay),
    /// then drain.
    Stopping { delay_until: Option<Instant> },
}

/// How the supervisor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Every worker stopped by itself.
    Clean,
    /// Some workers had to be killed.
    Forced,
    /// No worker ever became ready: the slot and how its worker ended.
    NeverReady(usize, String),
}

/// The supervisor's state and decisions.
#[derive(Debug)]
pub(super) struct Policy {
    timing: Timing,
    hangup: Hangup,
    change: Change,
    children: Vec<Child>,
    slots: Vec<Slot>,
    generation: u64,
    mode: Mode,
    ever_ready: bool,
    forced: bool,
    never_ready: Option<(usize, String)>,
    /// Whether the service manager was last told `READY=1` (not `RELOADING=1`).
    announced_ready: bool,
}

impl Policy {
    pub(super) fn new(timing: Timing, workers: usize, hangup: Hangup) -> Self {
        Self {
            timing,
            hangup,
            change: Change::Idle,
            children: Vec::new(),
            slots: vec![Slot::default(); workers],
            generation: 0,
            mode: Mode::Serving {
                rolling: false,
                step: None,
            },
            ever_ready: false,
            forced: false,
            never_ready: None,
            announced_ready: false,
        }
    }

    /// The first actions: a worker for every slot.
    pub(super) fn start(&self) -> Vec<Action> {
        (0..self.slots.len())
            .map(|slot| Action::Spawn {
                slot,
                replacing: None,
            })
            .collect()
    }

    /// The workers not reaped yet.
    #[cfg(test)]
    fn children(&self) -> &[Child] {
        &self.children
    }

    /// How many slots there are (the worker count).
    pub(super) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// What was decided for `pid`, a worker not reaped yet; `None` for any other pid.
    pub(super) fn fate(&self, pid: Pid) -> Option<Fate> {
        let child = self.children.iter().find(|child| child.pid == pid)?;
        let stopping = matches!(self.mode, Mode::Stopping { .. });
        Some(match child.state {
            ChildState::Killed {
                cause: cause @ (KillCause::NotReady | KillCause::Heartbeat),
            } => Fate::Killed(cause),
            _ if stopping => Fate::ServiceStopping,
            ChildState::Killed { cause } => Fate::Killed(cause),
            ChildState::Stopping { .. } => Fate::Replaced,
            ChildState::Starting { .. }
            | ChildState::Ready { .. }
            | ChildState::Retiring { .. } => Fate::Unasked,
        })
    }

    /// `Some` once stopping and every worker is reaped.
    pub(super) fn outcome(&self) -> Option<Outcome> {
        if !matches!(self.mode, Mode::Stopping { .. })
            || !self.children.is_empty()
            || self.change != Change::Idle
        {
            return None;
        }
        Some(match (&self.never_ready, self.forced) {
            (Some((slot, how)), _) => Outcome::NeverReady(*slot, how.clone()),
            (None, true) => Outcome::Forced,
            (None, false) => Outcome::Clean,
        })
    }

    /// Decides what `event` at `now` calls for.
    pub(super) fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Signal(signal) => self.on_signal(signal, now, &mut actions),
            Event::Message(pid, byte) => self.on_message(pid, byte, now, &mut actions),
            Event::Exited(pid, exit) => {
                if !self.on_change_exit(pid, exit, now, &mut actions) {
                    self.on_exit(pid, &exit.to_string(), now, &mut actions);
                }
            }
            Event::CheckStarted(result) => self.on_check_started(result, &mut actions),
            Event::UpgradeStarted(result) => self.on_upgrade_started(result, now, &mut actions),
            Event::UpgradeReady => self.on_upgrade_ready(now, &mut actions),
            Event::Spawned {
                slot,
                replacing,
                result,
            } => self.on_spawned(slot, replacing, result, now),
            Event::Tick => {
                self.run_change_timers(now, &mut actions);
                self.run_timers(now, &mut actions);
                self.advance_rollout(&mut actions);
                self.report_status(&mut actions);
            }
        }
        actions
    }

    fn kill_after(&self) -> Duration {
        self.timing.graceful_timeout + KILL_MARGIN
    }

    fn child(&mut self, pid: Pid) -> Option<&mut Child> {
        self.children.iter_mut().find(|child| child.pid == pid)
    }

    fn step(&self) -> Option<Step> {
        match self.mode {
            Mode::Serving { step, .. } => step,
            Mode::Stopping { .. } => None,
        }
    }

    fn set_step(&mut self, new_step: Option<Step>) {
        if let Mode::Serving { step, .. } = &mut self.mode {
            *step = new_step;
        }
    }

    fn on_signal(&mut self, signal: Signal, now: Instant, actions: &mut Vec<Action>) {
        let stopping = matches!(self.mode, Mode::Stopping { .. });
        let delaying =
            matches!(self.mode, Mode::Stopping { delay_until: Some(until) } if now < until);
        match signal {
            Signal::SIGCHLD => {}
            Signal::SIGTERM | Signal::SIGINT if !stopping => {
                tracing::info!(%signal, "stopping gracefully");
                self.begin_stop(signal, now, actions);
            }
            Signal::SIGTERM | Signal::SIGINT if delaying => self.skip_delay(signal, now, actions),
            Signal::SIGINT | Signal::SIGQUIT => {
                tracing::warn!(%signal, "stopping at once");
                self.begin_stop(Signal::SIGTERM, now, actions);
                self.kill_all(actions);
            }
            Signal::SIGTERM => {}
            Signal::SIGHUP | Signal::SIGUSR2 if !stopping && self.change != Change::Idle => {
                tracing::warn!(
                    %signal,
                    "a reload or upgrade is under way; ignored (send it again once that is done)"
                );
            }
            Signal::SIGHUP if !stopping => match self.hangup {
                Hangup::Restart => {
                    tracing::info!("rolling restart requested");
                    self.roll(actions);
                }
                Hangup::Reload => {
                    tracing::info!("reloading the configuration");
                    actions.push(Action::CheckConfig);
                }
            },
            Signal::SIGUSR2 if !stopping => {
                tracing::info!("upgrading: starting the program again with the sockets");
                actions.push(Action::Upgrade);
            }
            Signal::SIGTTIN if !stopping => {
                self.slots.push(Slot::default());
                tracing::info!(workers = self.slots.len(), "adding a worker");
                actions.push(Action::Spawn {
                    slot: self.slots.len() - 1,
                    replacing: None,
                });
            }
            Signal::SIGTTOU if !stopping => self.remove_worker(now, actions),
            Signal::SIGHUP | Signal::SIGUSR2 | Signal::SIGTTIN | Signal::SIGTTOU => {}
            other => actions.extend(
                self.children
                    .iter()
                    .map(|child| Action::Signal(child.pid, other)),
            ),
        }
    }

    fn on_message(&mut self, pid: Pid, byte: u8, now: Instant, actions: &mut Vec<Action>) {
        match byte {
            message::READY => self.on_ready(pid, now, actions),
            message::HEARTBEAT => {
                if let Some(child) = self.child(pid) {
                    match &mut child.state {
                        ChildState::Starting { beating, .. } => *beating = true,
                        ChildState::Ready { beat } | ChildState::Retiring { beat } => {
                            *beat = Some(now);
                        }
                        ChildState::Stopping { .. } | ChildState::Killed { .. } => {}
                    }
                }
            }
            message::REPLACE_ME => {
                if let Some(child) = self.child(pid) {
                    if let ChildState::Ready { beat } = child.state {
                        tracing::info!(index = child.slot, worker_pid = %pid, "worker asked to be replaced");
                        child.state = ChildState::Retiring { beat };
                    }
                }
            }
            other => {
                tracing::warn!(worker_pid = %pid, byte = other, "unknown message from a worker");
            }
        }
    }

    fn on_ready(&mut self, pid: Pid, now: Instant, actions: &mut Vec<Action>) {
        let Some(child) = self.child(pid) else {
            return;
        };
        if let ChildState::Starting { beating, .. } = child.state {
            // Saying ready proves the runtime runs: a beat from before a slow start is stale.
            child.state = ChildState::Ready {
                beat: beating.then_some(now),
            };
        }
        child.ready_since = Some(now);
        tracing::info!(index = child.slot, worker_pid = %pid, "worker ready");
        self.ever_ready = true;
        if let Some(step) = self.step().filter(|step| step.new == Some(pid)) {
            self.set_step(None);
            let deadline = now + self.kill_after();
            if let Some(old) = self.child(step.old) {
                if !old.state.asked_to_stop() && !matches!(old.state, ChildState::Killed { .. }) {
                    tracing::info!(index = old.slot, worker_pid = %old.pid, "stopping the replaced worker");
                    old.ask_to_stop(Signal::SIGTERM, deadline, actions);
                }
            }
        }
    }

    fn on_spawned(
        &mut self,
        slot: usize,
        replacing: Option<Pid>,
        result: Result<Pid, String>,
        now: Instant,
    ) {
        match result {
            Ok(pid) => {
                self.children.push(Child {
                    pid,
                    slot,
                    generation: self.generation,
                    ready_since: None,
                    state: ChildState::Starting {
                        since: now,
                        beating: false,
                    },
                });
                if let Some(old) = replacing {
                    self.set_step(Some(Step {
                        new: Some(pid),
                        old,
                    }));
                }
            }
            Err(error) if replacing.is_some() => {
                tracing::error!(%error, "replacement aborted: cannot start a new worker");
                self.abort_replacements();
            }
            Err(error) => {
                // Out of memory or processes, say: retried with the slot's back-off.
                if let Some(entry) = self.slots.get_mut(slot) {
                    let delay = entry.backoff.after_failure(None);
                    entry.respawn_at = Some(now + delay);
                    tracing::error!(index = slot, %error, ?delay, "cannot start a worker; retrying");
                }
            }
        }
    }

    /// A replacement failed: the rollout ends and the old workers serve on rather than be
    /// retried in a loop.
    fn abort_replacements(&mut self) {
        self.mode = Mode::Serving {
            rolling: false,
            step: None,
        };
        for child in &mut self.children {
            if let ChildState::Retiring { beat } = child.state {
                child.state = ChildState::Ready { beat };
            }
        }
    }

    fn on_exit(&mut self, pid: Pid, how: &str, now: Instant, actions: &mut Vec<Action>) {
        let Some(at) = self.children.iter().position(|child| child.pid == pid) else {
            return;
        };
        let child = self.children.swap_remove(at);
        let index = child.slot;
        let was_new = self.step().is_some_and(|step| step.new == Some(pid));
        if child.state.asked_to_stop() {
            if was_new {
                // Stopped on purpose (its slot was removed); the rollout picks the next one.
                self.set_step(None);
            }
            tracing::info!(index, worker_pid = %pid, "worker {how} after being asked to stop");
            return;
        }
        if matches!(self.mode, Mode::Stopping { .. }) {
            tracing::info!(index, worker_pid = %pid, "worker {how} while stopping");
            return;
        }
        let why = match child.state {
            ChildState::Killed {
                cause: KillCause::NotReady,
            } => "it did not become ready in time",
            ChildState::Killed {
                cause: KillCause::Heartbeat,
            } => "its runtime stopped ticking the heartbeat",
            _ => "unexpectedly",
        };
        tracing::warn!(index, worker_pid = %pid, "worker {how}: {why}");
        if was_new {
            tracing::error!(index, worker_pid = %pid, "rolling restart aborted: the new worker failed; keeping the old workers");
            self.abort_replacements();
            return;
        }
        if index >= self.slots.len() {
            return;
        }
        if !self.ever_ready {
            tracing::error!(index, worker_pid = %pid, "no worker ever became ready; stopping");
            self.never_ready = Some((index, how.to_owned()));
            self.begin_stop(Signal::SIGTERM, now, actions);
            return;
        }
        let slot_taken = self
            .children
            .iter()
            .any(|other| other.slot == index && !other.state.asked_to_stop());
        if slot_taken {
            return;
        }
        let ready_for = child.ready_since.map(|ready| now.duration_since(ready));
        let slot = &mut self.slots[index];
        let delay = slot.backoff.after_failure(ready_for);
        slot.respawn_at = Some(now + delay);
        tracing::info!(index, ?delay, "replacing the worker");
    }

    fn run_timers(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let timing = self.timing;
        for child in &mut self.children {
            let cause = match child.state {
                ChildState::Stopping { deadline } if deadline <= now => {
                    tracing::warn!(index = child.slot, worker_pid = %child.pid, "graceful timeout passed; killing the worker");
                    self.forced = true;
                    KillCause::Deadline
                }
                ChildState::Starting { since, .. }
                    if now.duration_since(since) >= timing.ready_timeout =>
                {
                    tracing::warn!(index = child.slot, worker_pid = %child.pid, "worker not ready in time; killing it");
                    KillCause::NotReady
                }
                ChildState::Ready { beat: Some(beat) }
                | ChildState::Retiring { beat: Some(beat) }
                    if timing
                        .heartbeat_timeout
                        .is_some_and(|timeout| now.duration_since(beat) >= timeout) =>
                {
                    tracing::warn!(index = child.slot, worker_pid = %child.pid, "worker missed its heartbeat; killing it");
                    KillCause::Heartbeat
                }
                _ => continue,
            };
            child.state = ChildState::Killed { cause };
            actions.push(Action::Signal(child.pid, Signal::SIGKILL));
        }
        if matches!(self.mode, Mode::Stopping { .. }) {
            return;
        }
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            if entry.respawn_at.is_some_and(|at| at <= now) {
                entry.respawn_at = None;
                actions.push(Action::Spawn {
                    slot,
                    replacing: None,
                });
            }
        }
    }

    fn advance_rollout(&mut self, actions: &mut Vec<Action>) {
        let Mode::Serving {
            rolling,
            step: None,
        } = self.mode
        else {
            return;
        };
        let generation = self.generation;
        let next = self
            .children
            .iter()
            .find(|child| match child.state {
                ChildState::Retiring { .. } => true,
                ChildState::Starting { .. } | ChildState::Ready { .. } => {
                    rolling && child.generation < generation
                }
                ChildState::Stopping { .. } | ChildState::Killed { .. } => false,
            })
            .copied();
        match next {
            Some(old) => {
                // Until the executor answers, the step has no new worker yet.
                self.set_step(Some(Step {
                    new: None,
                    old: old.pid,
                }));
                actions.push(Action::Spawn {
                    slot: old.slot,
                    replacing: Some(old.pid),
                });
            }
            None if rolling => {
                self.mode = Mode::Serving {
                    rolling: false,
                    step: None,
                };
                tracing::info!("rolling restart complete");
            }
            None => {}
        }
    }

    /// Tells the service manager the counts, and `READY=1` once every slot has a ready worker
    /// and no rollout is under way.
    fn report_status(&mut self, actions: &mut Vec<Action>) {
        let Mode::Serving { rolling, step } = self.mode else {
            return;
        };
        let total = self.slots.len();
        let ready = (0..total)
            .filter(|slot| {
                self.children
                    .iter()
                    .any(|child| child.slot == *slot && child.state.is_ready())
            })
            .count();
        if !self.announced_ready && !rolling && step.is_none() && ready == total {
            self.announced_ready = true;
            actions.push(Action::Notify(Notice::Ready { ready, total }));
        } else {
            actions.push(Action::Notify(Notice::Status { ready, total }));
        }
    }

    /// SIGTTOU: the newest slot goes away; its workers drain as on SIGTERM.
    fn remove_worker(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.slots.len() <= 1 {
            tracing::warn!("not removing the last worker");
            return;
        }
        self.slots.pop();
        let index = self.slots.len();
        tracing::info!(workers = self.slots.len(), "removing a worker");
        let deadline = now + self.kill_after();
        for child in &mut self.children {
            if child.slot == index && !child.state.asked_to_stop() {
                child.ask_to_stop(Signal::SIGTERM, deadline, actions);
            }
        }
    }

    fn begin_stop(&mut self, signal: Signal, now: Instant, actions: &mut Vec<Action>) {
        if matches!(self.mode, Mode::Stopping { .. }) {
            return;
        }
        let delay = match signal {
            Signal::SIGTERM => self.timing.shutdown_delay,
            _ => Duration::ZERO,
        };
        let delay_until = (!delay.is_zero()).then(|| now + delay);
        if delay_until.is_some() {
            tracing::info!(
                ?delay,
                "workers serve on for the shutdown delay, then drain"
            );
        }
        actions.push(Action::Notify(Notice::Stopping));
        // Closing our copies makes the sockets vanish once the workers drop theirs, so new
        // connections are refused instead of queueing for nobody.
        actions.push(Action::CloseSockets);
        self.stop_change(signal, now + delay + self.kill_after(), actions);
        self.drain(signal, delay_until, now, actions);
    }

    /// Every worker is asked to stop by `signal`, and killed at the deadline.
    fn drain(
        &mut self,
        signal: Signal,
        delay_until: Option<Instant>,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        self.mode = Mode::Stopping { delay_until };
        let deadline = delay_until.unwrap_or(now) + self.kill_after();
        for child in &mut self.children {
            if !child.state.asked_to_stop() && !matches!(child.state, ChildState::Killed { .. }) {
                child.ask_to_stop(signal, deadline, actions);
            }
        }
    }

    /// The service stops during a change: a config check is killed (it decides nothing any
    /// more), a new program is told to stop as this one was and killed at `deadline`.
    fn stop_change(&mut self, signal: Signal, deadline: Instant, actions: &mut Vec<Action>) {
        match self.change {
            Change::Idle | Change::Abandoning { .. } => {}
            Change::Checking { checker, .. } => {
                actions.push(Action::Signal(checker, Signal::SIGKILL));
                self.change = Change::Abandoning {
                    pid: checker,
                    kill_at: None,
                };
            }
            Change::Upgrading { pid, .. } => {
                tracing::info!(new_pid = %pid, "stopping the new program too");
                actions.push(Action::Signal(pid, signal));
                self.change = Change::Abandoning {
                    pid,
                    kill_at: Some(deadline),
                };
            }
        }
    }

    /// A rollout onto a new generation: every worker is replaced, one slot at a time.
    fn roll(&mut self, actions: &mut Vec<Action>) {
        self.generation += 1;
        if let Mode::Serving { rolling, .. } = &mut self.mode {
            *rolling = true;
        }
        self.announced_ready = false;
        actions.push(Action::Notify(Notice::Reloading));
    }

    fn on_check_started(
        &mut self,
        result: Result<(Pid, Reloaded), String>,
        actions: &mut Vec<Action>,
    ) {
        match result {
            Ok((checker, reloaded)) if !matches!(self.mode, Mode::Stopping { .. }) => {
                self.change = Change::Checking { checker, reloaded };
            }
            Ok((checker, _)) => {
                actions.push(Action::Signal(checker, Signal::SIGKILL));
                self.change = Change::Abandoning {
                    pid: checker,
                    kill_at: None,
                };
            }
            Err(error) => {
                tracing::error!(
                    "config reload refused: {error}; the workers keep the config they have"
                );
                actions.push(Action::Notify(Notice::ReloadFailed));
            }
        }
    }

    fn on_upgrade_started(
        &mut self,
        result: Result<Pid, String>,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        match result {
            Ok(pid) => {
                tracing::info!(new_pid = %pid, "new program started; waiting for its workers");
                self.change = Change::Upgrading {
                    pid,
                    deadline: now + self.timing.upgrade_timeout,
                };
                actions.push(Action::Notify(Notice::Upgrading));
            }
            Err(error) => {
                tracing::error!("upgrade failed: {error}; this generation serves on");
                actions.push(Action::Notify(Notice::UpgradeFailed));
            }
        }
    }

    /// The new program serves on the same sockets: this generation drains (without the
    /// shutdown delay: nothing stops routing here, the sockets stay served) and exits.
    fn on_upgrade_ready(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let Change::Upgrading { pid, .. } = self.change else {
            return;
        };
        tracing::info!(
            new_pid = %pid,
            "upgrade complete: the new program serves; this generation drains and exits"
        );
        self.change = Change::Idle;
        actions.push(Action::HandOverSockets);
        // SIGINT: a worker drains at once on it, skipping the shutdown delay.
        self.drain(Signal::SIGINT, None, now, actions);
    }

    /// A child of a change ended: returns whether `pid` was one.
    fn on_change_exit(
        &mut self,
        pid: Pid,
        exit: Exit,
        now: Instant,
        actions: &mut Vec<Action>,
    ) -> bool {
        match self.change {
            Change::Checking { checker, reloaded } if checker == pid => {
                self.change = Change::Idle;
                if exit == Exit::Code(0) {
                    tracing::info!("configuration reloaded; rolling the workers onto it");
                    actions.push(Action::CommitConfig(reloaded));
                    // A new generation first, so that added slots start on it.
                    self.roll(actions);
                    self.apply(reloaded, now, actions);
                } else {
                    tracing::error!(
                        "config reload refused: its check {exit} (its error is above); the \
                         workers keep the config they have"
                    );
                    actions.push(Action::Notify(Notice::ReloadFailed));
                }
                true
            }
            Change::Upgrading { pid: new, .. } if new == pid => {
                tracing::error!(
                    new_pid = %pid,
                    "upgrade failed: the new program {exit} before its workers were ready; this \
                     generation serves on"
                );
                self.change = Change::Idle;
                actions.push(Action::Notify(Notice::UpgradeFailed));
                true
            }
            Change::Abandoning { pid: old, .. } if old == pid => {
                tracing::info!(child_pid = %pid, "the abandoned change's process {exit}");
                self.change = Change::Idle;
                true
            }
            _ => false,
        }
    }

    fn run_change_timers(&mut self, now: Instant, actions: &mut Vec<Action>) {
        match self.change {
            Change::Upgrading { pid, deadline } if deadline <= now => {
                tracing::error!(
                    new_pid = %pid,
                    timeout = ?self.timing.upgrade_timeout,
                    "upgrade failed: the new program's workers were not ready within the upgrade \
                     timeout; killing it, this generation serves on"
                );
                actions.push(Action::Signal(pid, Signal::SIGKILL));
                actions.push(Action::Notify(Notice::UpgradeFailed));
                self.change = Change::Abandoning { pid, kill_at: None };
            }
            Change::Abandoning {
                pid,
                kill_at: Some(at),
            } if at <= now => {
                tracing::warn!(child_pid = %pid, "the new program did not stop in time; killing it");
                actions.push(Action::Signal(pid, Signal::SIGKILL));
                self.change = Change::Abandoning { pid, kill_at: None };
            }
            _ => {}
        }
    }

    /// A reloaded configuration's timeouts and worker count take effect: added slots get a
    /// worker at once, removed ones drain as on SIGTTOU.
    fn apply(&mut self, reloaded: Reloaded, now: Instant, actions: &mut Vec<Action>) {
        if let Some(timeout) = reloaded.graceful_timeout {
            self.timing.graceful_timeout = timeout;
        }
        if let Some(delay) = reloaded.shutdown_delay {
            self.timing.shutdown_delay = delay;
        }
        if let Some(timeout) = reloaded.heartbeat_timeout {
            self.timing.heartbeat_timeout = timeout;
        }
        let workers = reloaded.resolved_workers().max(1);
        if workers != self.slots.len() {
            tracing::info!(
                from = self.slots.len(),
                to = workers,
                "worker count changed"
            );
        }
        while self.slots.len() > workers {
            self.remove_worker(now, actions);
        }
        while self.slots.len() < workers {
            self.slots.push(Slot::default());
            actions.push(Action::Spawn {
                slot: self.slots.len() - 1,
                replacing: None,
            });
        }
    }

    /// A new stop request while the shutdown delay runs: the workers drain now.
    fn skip_delay(&mut self, signal: Signal, now: Instant, actions: &mut Vec<Action>) {
        tracing::info!(%signal, "a new stop request; skipping the rest of the shutdown delay");
        self.mode = Mode::Stopping { delay_until: None };
        let deadline = now + self.kill_after();
        for child in &mut self.children {
            if let ChildState::Stopping { deadline: at } = &mut child.state {
                *at = (*at).min(deadline);
                actions.push(Action::SkipDelay(child.pid));
            }
        }
    }

    fn kill_all(&mut self, actions: &mut Vec<Action>) {
        for child in &mut self.children {
            if !matches!(child.state, ChildState::Killed { .. }) {
                child.state = ChildState::Killed {
                    cause: KillCause::AtOnce,
                };
                actions.push(Action::Signal(child.pid, Signal::SIGKILL));
                self.forced = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn timing() -> Timing {
        Timing {
            graceful_timeout: Duration::from_secs(10),
            ready_timeout: Duration::from_secs(30),
            heartbeat_timeout: Some(Duration::from_secs(1)),
            shutdown_delay: Duration::ZERO,
            upgrade_timeout: Duration::from_secs(60),
        }
    }

    /// The policy with a fake clock and fake pids: `Spawn` is answered at once.
    struct Sim {
        policy: Policy,
        now: Instant,
        next_pid: i32,
        /// Every pid spawned, in order.
        spawned: Vec<Pid>,
    }

    impl Sim {
        fn new(workers: usize, timing: Timing) -> Self {
            let mut sim = Sim {
                policy: Policy::new(timing, workers, Hangup::Restart),
                now: Instant::now(),
                next_pid: 100,
                spawned: Vec::new(),
            };
            let start = sim.policy.start();
            sim.perform(start);
            sim
        }

        /// Starts every worker and makes it ready.
        fn ready(workers: usize, timing: Timing) -> (Self, Vec<Pid>) {
            let mut sim = Self::new(workers, timing);
            let pids = sim.spawned.clone();
            for pid in &pids {
                sim.event(Event::Message(*pid, message::READY));
            }
            sim.tick();
            (sim, pids)
        }

        /// Answers spawns; returns the other actions.
        fn perform(&mut self, actions: Vec<Action>) -> Vec<Action> {
            let mut queue = VecDeque::from(actions);
            let mut done = Vec::new();
            while let Some(action) = queue.pop_front() {
                if let Action::Spawn { slot, replacing } = action {
                    let pid = Pid::from_raw(self.next_pid);
                    self.next_pid += 1;
                    self.spawned.push(pid);
                    let event = Event::Spawned {
                        slot,
                        replacing,
                        result: Ok(pid),
                    };
                    queue.extend(self.policy.handle(event, self.now));
                    done.push(action);
                } else {
                    done.push(action);
                }
            }
            done
        }

        fn event(&mut self, event: Event) -> Vec<Action> {
            let actions = self.policy.handle(event, self.now);
            self.perform(actions)
        }

        fn tick(&mut self) -> Vec<Action> {
            self.event(Event::Tick)
        }

        fn advance(&mut self, by: Duration) -> Vec<Action> {
            self.now += by;
            self.tick()
        }

        fn exit(&mut self, pid: Pid) -> Vec<Action> {
            self.event(Event::Exited(pid, Exit::Code(1)))
        }

        fn state(&self, pid: Pid) -> Option<ChildState> {
            self.policy
                .children()
                .iter()
                .find(|child| child.pid == pid)
                .map(|child| child.state)
        }
    }

    fn spawns(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|action| matches!(action, Action::Spawn { .. }))
            .count()
    }

    fn signals(actions: &[Action], signal: Signal) -> Vec<Pid> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Signal(pid, sent) if *sent == signal => Some(*pid),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_rollout_whose_new_worker_fails_keeps_the_old_workers_and_stops_rolling() {
        let (mut sim, old) = Sim::ready(2, timing());
        let actions = sim.event(Event::Signal(Signal::SIGHUP));
        assert!(actions.contains(&Action::Notify(Notice::Reloading)));
        let actions = sim.tick();
        assert_eq!(spawns(&actions), 1, "one new worker first: {actions:?}");
        let new = *sim.spawned.last().unwrap();
        assert!(signals(&actions, Signal::SIGTERM).is_empty());

        let actions = sim.exit(new);
        assert!(signals(&actions, Signal::SIGTERM).is_empty(), "{actions:?}");
        assert_eq!(
            sim.policy.mode,
            Mode::Serving {
                rolling: false,
                step: None
            }
        );
        for _ in 0..10 {
            let actions = sim.advance(100 * MS);
            assert_eq!(spawns(&actions), 0, "no retry loop: {actions:?}");
        }
        for pid in old {
            assert!(matches!(sim.state(pid), Some(ChildState::Ready { .. })));
        }
    }

    #[test]
    fn a_rollout_replaces_one_worker_at_a_time_new_one_first() {
        let (mut sim, old) = Sim::ready(2, timing());
        sim.event(Event::Signal(Signal::SIGHUP));
        sim.tick();
        let first = *sim.spawned.last().unwrap();
        // Nothing more until the new one is ready.
        assert_eq!(spawns(&sim.tick()), 0);
        let actions = sim.event(Event::Message(first, message::READY));
        assert_eq!(signals(&actions, Signal::SIGTERM), [old[0]]);
        assert_eq!(spawns(&sim.tick()), 1);
        let second = *sim.spawned.last().unwrap();
        let actions = sim.event(Event::Message(second, message::READY));
        assert_eq!(signals(&actions, Signal::SIGTERM), [old[1]]);
        let actions = sim.tick();
        assert!(actions.contains(&Action::Notify(Notice::Ready { ready: 2, total: 2 })));
    }

    #[test]
    fn the_back_off_doubles_for_a_crash_loop_and_resets_after_a_healthy_run() {
        let (mut sim, pids) = Sim::ready(1, timing());
        sim.exit(pids[0]);
        let mut expected = 100;
        for _ in 0..4 {
            assert_eq!(spawns(&sim.advance((expected - 1) * MS)), 0);
            assert_eq!(spawns(&sim.advance(MS)), 1, "respawn after {expected} ms");
            // The new worker dies before it is ready: the delay doubles.
            sim.exit(*sim.spawned.last().unwrap());
            expected *= 2;
        }
        assert_eq!(spawns(&sim.advance(expected * MS)), 1);
        let healthy = *sim.spawned.last().unwrap();
        sim.event(Event::Message(healthy, message::READY));
        sim.advance(Duration::from_secs(5));
        sim.exit(healthy);
        assert_eq!(spawns(&sim.advance(99 * MS)), 0);
        assert_eq!(spawns(&sim.advance(MS)), 1, "back to 100 ms");
    }

    #[test]
    fn a_worker_that_stops_beating_is_killed_and_replaced() {
        let mut sim = Sim::new(1, timing());
        let pid = sim.spawned[0];
        sim.event(Event::Message(pid, message::HEARTBEAT));
        sim.event(Event::Message(pid, message::READY));
        assert!(signals(&sim.advance(999 * MS), Signal::SIGKILL).is_empty());
        sim.event(Event::Message(pid, message::HEARTBEAT));
        assert!(signals(&sim.advance(999 * MS), Signal::SIGKILL).is_empty());
        assert_eq!(signals(&sim.advance(MS), Signal::SIGKILL), [pid]);
        assert_eq!(
            sim.state(pid),
            Some(ChildState::Killed {
                cause: KillCause::Heartbeat
            })
        );
        sim.exit(pid);
        assert_eq!(spawns(&sim.advance(100 * MS)), 1);
    }

    #[test]
    fn a_worker_without_a_heartbeat_is_not_checked() {
        let (mut sim, pids) = Sim::ready(1, timing());
        assert!(signals(&sim.advance(Duration::from_secs(60)), Signal::SIGKILL).is_empty());
        assert!(matches!(
            sim.state(pids[0]),
            Some(ChildState::Ready { beat: None })
        ));
    }

    #[test]
    fn a_worker_that_never_becomes_ready_is_killed_and_with_none_ever_ready_the_supervisor_gives_up()
     {
        let mut sim = Sim::new(2, timing());
        let (a, b) = (sim.spawned[0], sim.spawned[1]);
        assert!(signals(&sim.advance(Duration::from_secs(29)), Signal::SIGKILL).is_empty());
        let actions = sim.advance(Duration::from_secs(1));
        assert_eq!(signals(&actions, Signal::SIGKILL), [a, b]);
        let actions = sim.exit(a);
        assert!(actions.contains(&Action::CloseSockets), "{actions:?}");
        assert_eq!(sim.policy.outcome(), None);
        sim.exit(b);
        assert_eq!(
            sim.policy.outcome(),
            Some(Outcome::NeverReady(0, "exited with status 1".to_owned()))
        );
    }

    #[test]
    fn a_worker_that_never_becomes_ready_after_others_did_is_replaced() {
        let (mut sim, pids) = Sim::ready(1, timing());
        sim.event(Event::Signal(Signal::SIGTTIN));
        let late = *sim.spawned.last().unwrap();
        assert_eq!(
            signals(&sim.advance(Duration::from_secs(30)), Signal::SIGKILL),
            [late]
        );
        sim.exit(late);
        assert_eq!(spawns(&sim.advance(100 * MS)), 1);
        assert!(sim.state(pids[0]).is_some_and(ChildState::is_ready));
        assert_eq!(sim.policy.outcome(), None);
    }

    #[test]
    fn ttin_and_ttou_during_a_rollout_keep_the_count_and_finish_the_rollout() {
        let (mut sim, old) = Sim::ready(2, timing());
        sim.event(Event::Signal(Signal::SIGHUP));
        sim.tick();
        let replacing_first = *sim.spawned.last().unwrap();
        // TTIN: a third slot at once; TTOU: that slot goes again, its worker drains.
        assert_eq!(spawns(&sim.event(Event::Signal(Signal::SIGTTIN))), 1);
        let added = *sim.spawned.last().unwrap();
        let actions = sim.event(Event::Signal(Signal::SIGTTOU));
        assert_eq!(signals(&actions, Signal::SIGTERM), [added]);
        assert_eq!(sim.policy.slots(), 2);
        sim.exit(added);
        // The rollout goes on.
        let actions = sim.event(Event::Message(replacing_first, message::READY));
        assert_eq!(signals(&actions, Signal::SIGTERM), [old[0]]);
        sim.exit(old[0]);
        sim.tick();
        let replacing_second = *sim.spawned.last().unwrap();
        let actions = sim.event(Event::Message(replacing_second, message::READY));
        assert_eq!(signals(&actions, Signal::SIGTERM), [old[1]]);
        sim.exit(old[1]);
        sim.tick();
        assert_eq!(
            sim.policy.mode,
            Mode::Serving {
                rolling: false,
                step: None
            }
        );
        assert_eq!(sim.policy.children().len(), 2);
        // TTOU never removes the last worker.
        sim.event(Event::Signal(Signal::SIGTTOU));
        let actions = sim.event(Event::Signal(Signal::SIGTTOU));
        assert!(signals(&actions, Signal::SIGTERM).is_empty());
        assert_eq!(sim.policy.slots(), 1);
    }

    /// Where in `actions` the worker `pid` is signalled and released.
    fn signalled_then_released(actions: &[Action], pid: Pid) -> (usize, usize) {
        let at = |wanted: &dyn Fn(&Action) -> bool| {
            actions
                .iter()
                .position(wanted)
                .unwrap_or_else(|| panic!("{pid} not signalled and released: {actions:?}"))
        };
        let signalled = at(&|action| matches!(action, Action::Signal(p, _) if *p == pid));
        let released = at(&|action| *action == Action::Release(pid));
        assert!(signalled < released, "{actions:?}");
        (signalled, released)
    }

    #[test]
    fn a_worker_asked_to_stop_is_released_after_the_signal_and_after_our_sockets_close() {
        // The service stops: our sockets close before any worker is signalled and released.
        let (mut sim, pids) = Sim::ready(2, timing());
        let actions = sim.event(Event::Signal(Signal::SIGTERM));
        let closed = actions.iter().position(|a| *a == Action::CloseSockets);
        for pid in &pids {
            let (signalled, _) = signalled_then_released(&actions, *pid);
            assert!(
                closed.is_some_and(|closed| closed < signalled),
                "{actions:?}"
            );
        }
        // An upgrade's hand-over, likewise.
        let (mut sim, pids) = Sim::ready(1, timing());
        sim.event(Event::Signal(Signal::SIGUSR2));
        sim.event(Event::UpgradeStarted(Ok(NEW_PROGRAM)));
        let actions = sim.event(Event::UpgradeReady);
        let (signalled, _) = signalled_then_released(&actions, pids[0]);
        assert_eq!(actions[0], Action::HandOverSockets);
        assert!(signalled > 0);
        // A worker removed while the service serves on is released at once: our sockets stay
        // open and served.
        let (mut sim, pids) = Sim::ready(2, timing());
        let actions = sim.event(Event::Signal(Signal::SIGTTOU));
        signalled_then_released(&actions, pids[1]);
        assert!(!actions.contains(&Action::CloseSockets));
    }

    #[test]
    fn a_second_sigterm_is_absorbed_and_a_second_sigint_kills() {
        let (mut sim, pids) = Sim::ready(2, timing());
        let actions = sim.event(Event::Signal(Signal::SIGTERM));
        assert_eq!(signals(&actions, Signal::SIGTERM), pids);
        assert!(actions.contains(&Action::Notify(Notice::Stopping)));
        assert!(sim.event(Event::Signal(Signal::SIGTERM)).is_empty());
        let actions = sim.event(Event::Signal(Signal::SIGINT));
        assert_eq!(signals(&actions, Signal::SIGKILL), pids);
        for pid in &pids {
            sim.exit(*pid);
        }
        assert_eq!(sim.policy.outcome(), Some(Outcome::Forced));
    }

    #[test]
    fn a_drain_is_killed_at_the_graceful_deadline_and_no_worker_is_respawned() {
        let (mut sim, pids) = Sim::ready(1, timing());
        sim.event(Event::Signal(Signal::SIGINT));
        assert!(signals(&sim.advance(Duration::from_millis(10_499)), Signal::SIGKILL).is_empty());
        assert_eq!(signals(&sim.advance(MS), Signal::SIGKILL), pids);
        sim.exit(pids[0]);
        assert_eq!(spawns(&sim.advance(Duration::from_secs(60))), 0);
        assert_eq!(sim.policy.outcome(), Some(Outcome::Forced));
    }

    #[test]
    fn duplicate_stop_requests_during_the_shutdown_delay_skip_it_once() {
        let timing = Timing {
            shutdown_delay: Duration::from_secs(5),
            ..timing()
        };
        let (mut sim, pids) = Sim::ready(2, timing);
        let actions = sim.event(Event::Signal(Signal::SIGTERM));
        assert_eq!(signals(&actions, Signal::SIGTERM), pids);
        // The kill deadline is delay + graceful timeout + margin.
        assert!(signals(&sim.advance(Duration::from_millis(15_499)), Signal::SIGKILL).is_empty());
        let mut sim = Sim::ready(2, timing).0;
        sim.event(Event::Signal(Signal::SIGTERM));
        sim.advance(Duration::from_secs(1));
        let actions = sim.event(Event::Signal(Signal::SIGTERM));
        assert_eq!(
            actions,
            sim.spawned
                .iter()
                .map(|pid| Action::SkipDelay(*pid))
                .collect::<Vec<_>>()
        );
        // Skipped: the next one is a second request during the drain.
        assert!(sim.event(Event::Signal(Signal::SIGTERM)).is_empty());
        assert_eq!(
            signals(&sim.advance(Duration::from_millis(10_500)), Signal::SIGKILL).len(),
            2
        );
    }

    #[test]
    fn sigint_first_has_no_delay_and_other_signals_are_forwarded() {
        let timing = Timing {
            shutdown_delay: Duration::from_secs(5),
            ..timing()
        };
        let (mut sim, pids) = Sim::ready(2, timing);
        let actions = sim.event(Event::Signal(Signal::SIGUSR1));
        assert_eq!(signals(&actions, Signal::SIGUSR1), pids);
        sim.event(Event::Signal(Signal::SIGINT));
        assert_eq!(sim.policy.mode, Mode::Stopping { delay_until: None });
        let actions = sim.event(Event::Signal(Signal::SIGINT));
        assert_eq!(signals(&actions, Signal::SIGKILL), pids);
    }

    fn reloading(workers: usize) -> (Sim, Vec<Pid>) {
        let mut sim = Sim::new(workers, timing());
        sim.policy.hangup = Hangup::Reload;
        let pids = sim.spawned.clone();
        for pid in &pids {
            sim.event(Event::Message(*pid, message::READY));
        }
        sim.tick();
        (sim, pids)
    }

    const CHECKER: Pid = Pid::from_raw(900);
    const NEW_PROGRAM: Pid = Pid::from_raw(901);

    #[test]
    fn a_reload_rolls_the_workers_only_after_its_check_passed_and_applies_the_count() {
        let (mut sim, pids) = reloading(2);
        assert_eq!(
            sim.event(Event::Signal(Signal::SIGHUP)),
            [Action::CheckConfig]
        );
        let reloaded = Reloaded::new(3);
        sim.event(Event::CheckStarted(Ok((CHECKER, reloaded))));
        // Checking: nothing is replaced, a second SIGHUP is ignored.
        assert_eq!(spawns(&sim.tick()), 0);
        assert!(sim.event(Event::Signal(Signal::SIGHUP)).is_empty());
        let actions = sim.event(Event::Exited(CHECKER, Exit::Code(0)));
        assert_eq!(actions[0], Action::CommitConfig(reloaded));
        // The added slot's worker starts at once, on the new generation.
        assert_eq!(spawns(&actions), 1);
        let added = *sim.spawned.last().unwrap();
        sim.event(Event::Message(added, message::READY));
        // Then the old workers are replaced one at a time.
        for old in &pids {
            assert_eq!(spawns(&sim.tick()), 1);
            let new = *sim.spawned.last().unwrap();
            let actions = sim.event(Event::Message(new, message::READY));
            assert_eq!(signals(&actions, Signal::SIGTERM), [*old]);
            sim.exit(*old);
        }
        assert_eq!(spawns(&sim.tick()), 0);
        assert_eq!(sim.policy.slots(), 3);
    }

    #[test]
    fn a_refused_or_failing_reload_keeps_every_worker_and_says_so() {
        let (mut sim, pids) = reloading(2);
        sim.event(Event::Signal(Signal::SIGHUP));
        let actions = sim.event(Event::CheckStarted(Err("bad file".to_owned())));
        assert_eq!(actions, [Action::Notify(Notice::ReloadFailed)]);
        sim.event(Event::Signal(Signal::SIGHUP));
        sim.event(Event::CheckStarted(Ok((CHECKER, Reloaded::new(2)))));
        let actions = sim.event(Event::Exited(CHECKER, Exit::Code(2)));
        assert_eq!(actions, [Action::Notify(Notice::ReloadFailed)]);
        assert_eq!(spawns(&sim.advance(Duration::from_secs(5))), 0);
        assert!(pids.iter().all(|pid| sim.state(*pid).is_some()));
        // Done with it: the next SIGHUP checks again.
        assert_eq!(
            sim.event(Event::Signal(Signal::SIGHUP)),
            [Action::CheckConfig]
        );
    }

    #[test]
    fn an_upgrade_hands_over_the_sockets_and_drains_without_the_delay_once_the_new_program_is_ready()
     {
        let timing = Timing {
            shutdown_delay: Duration::from_secs(5),
            ..timing()
        };
        let (mut sim, pids) = Sim::ready(2, timing);
        assert_eq!(sim.event(Event::Signal(Signal::SIGUSR2)), [Action::Upgrade]);
        sim.event(Event::UpgradeStarted(Ok(NEW_PROGRAM)));
        assert!(sim.event(Event::Signal(Signal::SIGUSR2)).is_empty());
        let actions = sim.event(Event::UpgradeReady);
        assert_eq!(actions[0], Action::HandOverSockets);
        assert_eq!(signals(&actions, Signal::SIGINT), pids);
        assert!(!actions.contains(&Action::Notify(Notice::Stopping)));
        for pid in &pids {
            sim.exit(*pid);
        }
        assert_eq!(sim.policy.outcome(), Some(Outcome::Clean));
    }

    #[test]
    fn a_new_program_that_exits_or_is_late_leaves_this_generation_serving() {
        let (mut sim, pids) = Sim::ready(2, timing());
        sim.event(Event::Signal(Signal::SIGUSR2));
        sim.event(Event::UpgradeStarted(Ok(NEW_PROGRAM)));
        let actions = sim.event(Event::Exited(NEW_PROGRAM, Exit::Code(1)));
        assert_eq!(actions, [Action::Notify(Notice::UpgradeFailed)]);
        sim.event(Event::Signal(Signal::SIGUSR2));
        sim.event(Event::UpgradeStarted(Ok(NEW_PROGRAM)));
        assert!(signals(&sim.advance(Duration::from_millis(59_999)), Signal::SIGKILL).is_empty());
        let actions = sim.advance(MS);
        assert_eq!(signals(&actions, Signal::SIGKILL), [NEW_PROGRAM]);
        // Until it is reaped, no other change starts.
        assert!(sim.event(Event::Signal(Signal::SIGUSR2)).is_empty());
        sim.event(Event::Exited(NEW_PROGRAM, Exit::Signal(Signal::SIGKILL)));
        assert!(pids.iter().all(|pid| sim.state(*pid).is_some()));
        assert_eq!(sim.event(Event::Signal(Signal::SIGUSR2)), [Action::Upgrade]);
    }

    #[test]
    fn a_stop_during_an_upgrade_stops_the_new_program_too_and_waits_for_it() {
        let (mut sim, pids) = Sim::ready(2, timing());
        sim.event(Event::Signal(Signal::SIGUSR2));
        sim.event(Event::UpgradeStarted(Ok(NEW_PROGRAM)));
        let actions = sim.event(Event::Signal(Signal::SIGTERM));
        let mut told = pids.clone();
        told.push(NEW_PROGRAM);
        let mut got = signals(&actions, Signal::SIGTERM);
        got.sort();
        assert_eq!(got, told);
        for pid in &pids {
            sim.exit(*pid);
        }
        assert_eq!(
            sim.policy.outcome(),
            None,
            "the new program is not reaped yet"
        );
        assert_eq!(
            signals(&sim.advance(Duration::from_millis(10_500)), Signal::SIGKILL),
            [NEW_PROGRAM]
        );
        sim.event(Event::Exited(NEW_PROGRAM, Exit::Signal(Signal::SIGKILL)));
        assert_eq!(sim.policy.outcome(), Some(Outcome::Clean));
    }
}
