//! What a worker gets: its slot, the shared sockets, and its lines to the supervisor.

use std::{
    io,
    os::fd::OwnedFd,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use tokio::{
    net::unix::pipe,
    signal::unix::{Signal, SignalKind, signal},
};

use buvar_kit::Cancel;

use crate::sockets::BoundSocket;

/// What a worker writes on its status pipe to the supervisor, one byte per message.
pub(super) mod message {
    /// The worker accepts connections.
    pub(crate) const READY: u8 = b'R';
    /// The worker's runtime is alive.
    pub(crate) const HEARTBEAT: u8 = b'H';
    /// The worker wants to be replaced (e.g. it served `max_requests`).
    pub(crate) const REPLACE_ME: u8 = b'M';
}

/// One worker process (or, with one worker, the supervisor's own process).
///
/// Inside the worker closure of [`Prefork::run`](super::Prefork::run): build a tokio runtime,
/// call [`watch_shutdown`](Self::watch_shutdown), turn the sockets into listeners, start
/// accepting, then call [`notify_ready`](Self::notify_ready). [`serve`](super::serve) does
/// all of this for an axum router.
#[derive(Debug)]
pub struct Worker {
    index: usize,
    sockets: Vec<BoundSocket>,
    graceful_timeout: Duration,
    /// The status pipe to the supervisor (non-blocking, so a busy supervisor never stalls us).
    ready: Option<OwnedFd>,
    notified: AtomicBool,
    replacement_requested: AtomicBool,
    parent: Option<OwnedFd>,
    /// End of file once the supervisor released this worker (see [`Supervised::released`](crate::server::Supervised::released)).
    release: Option<OwnedFd>,
    heartbeat: Option<Duration>,
}

/// Why a worker was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shutdown {
    /// SIGTERM: stop accepting and drain.
    Terminate,
    /// SIGINT: stop accepting and drain.
    Interrupt,
    /// The supervisor is gone; nothing would replace or stop this worker any more.
    ParentGone,
    /// The supervisor passed on a new stop request from the operator (a second SIGTERM or
    /// SIGINT while the shutdown delay runs): skip the rest of the delay.
    Now,
}

impl Worker {
    pub(super) fn new(
        index: usize,
        sockets: Vec<BoundSocket>,
        graceful_timeout: Duration,
        ready: Option<OwnedFd>,
        parent: Option<OwnedFd>,
    ) -> Self {
        Self {
            index,
            sockets,
            graceful_timeout,
            ready,
            notified: AtomicBool::new(false),
            replacement_requested: AtomicBool::new(false),
            parent,
            release: None,
            heartbeat: None,
        }
    }

    /// Watches `release` for the supervisor's [`Supervised::released`](crate::server::Supervised::released).
    pub(super) fn with_release(mut self, release: OwnedFd) -> Self {
        self.release = Some(release);
        self
    }

    /// Ticks the heartbeat this often once [`watch_shutdown`](Self::watch_shutdown) runs.
    pub(super) fn with_heartbeat(mut self, period: Option<Duration>) -> Self {
        self.heartbeat = period;
        self
    }

    fn tell_supervisor(&self, message: u8) -> io::Result<()> {
        if let Some(pipe) = &self.ready {
            nix::unistd::write(pipe, &[message]).map_err(io::Error::from)?;
        }
        Ok(())
    }

    /// The worker's slot, from 0 to the number of workers - 1; a replacement keeps the slot.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The listening sockets, inherited from the supervisor.
    pub fn sockets(&self) -> &[BoundSocket] {
        &self.sockets
    }

    /// Takes the sockets, so that turning them into listeners leaves no other descriptor in
    /// this process: once those listeners are dropped, this worker no longer holds them open.
    pub fn take_sockets(&mut self) -> Vec<BoundSocket> {
        std::mem::take(&mut self.sockets)
    }

    /// How long a drain may take before the supervisor kills the worker.
    pub fn graceful_timeout(&self) -> Duration {
        self.graceful_timeout
    }

    /// Whether this is a forked worker under a supervisor (`false` with one worker).
    pub fn is_supervised(&self) -> bool {
        self.ready.is_some()
    }

    /// Tells the supervisor that this worker accepts connections; later calls do nothing.
    ///
    /// The supervisor counts a worker as up only after this, and a rolling restart stops an
    /// old worker only once its replacement called it.
    pub fn notify_ready(&self) -> io::Result<()> {
        if self.notified.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.tell_supervisor(message::READY)
    }

    /// Asks the supervisor to start a replacement; once that one is ready, this worker gets
    /// SIGTERM and drains as usual, so no request fails. Keep serving meanwhile. Later calls do
    /// nothing, and without a supervisor neither does the first.
    pub fn request_replacement(&self) -> io::Result<()> {
        if self.replacement_requested.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        tracing::info!(
            index = self.index,
            "asking the supervisor for a replacement"
        );
        self.tell_supervisor(message::REPLACE_ME)
    }

    /// Starts listening for the reasons to stop: SIGTERM, SIGINT, and the supervisor's death.
    ///
    /// Call it inside the worker's tokio runtime and before [`notify_ready`](Self::notify_ready),
    /// so that a stop request never meets a worker without handlers. It also installs
    /// handlers for SIGUSR1 (which the supervisor forwards) and SIGUSR2 (the supervisor's
    /// upgrade signal, which reaches a worker only when sent to the whole group), and under a
    /// supervisor for SIGHUP (its reload), so that they never end the worker; listen to SIGUSR1
    /// with `tokio::signal` to act on it.
    ///
    /// Under a supervisor it also starts the heartbeat: a task on this runtime that tells the
    /// supervisor the runtime still runs tasks. A runtime blocked (by a synchronous call in an
    /// async handler, say) stops the heartbeat, and the supervisor replaces the worker.
    pub fn watch_shutdown(&self) -> io::Result<ShutdownWatch> {
        if let (Some(period), Some(pipe)) = (self.heartbeat, &self.ready) {
            let pipe = pipe.try_clone()?;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    // A full pipe means the supervisor has beats to read already.
                    let _ = nix::unistd::write(&pipe, &[message::HEARTBEAT]);
                    // Log lines a stalled stdout did not take go out as it catches up.
                    buvar_kit::log::flush();
                }
            });
        }
        // tokio keeps a handler installed once registered, even after the stream is dropped.
        drop(signal(SignalKind::user_defined1())?);
        drop(signal(SignalKind::user_defined2())?);
        if self.is_supervised() {
            // SIGHUP is the supervisor's (a reload); one sent to the group must not kill us.
            drop(signal(SignalKind::hangup())?);
        }
        let parent = match &self.parent {
            Some(fd) => Some(pipe::Receiver::from_owned_fd(fd.try_clone()?)?),
            None => None,
        };
        let now = match self.is_supervised() {
            true => Some(signal(SignalKind::from_raw(super::signals::skip_delay()))?),
            false => None,
        };
        Ok(ShutdownWatch {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            parent,
            now,
            supervised: self.is_supervised(),
            first: None,
        })
    }
}

/// Installed signal handlers and the parent watch of a worker; see
/// [`Worker::watch_shutdown`].
#[derive(Debug)]
pub struct ShutdownWatch {
    terminate: Signal,
    interrupt: Signal,
    parent: Option<pipe::Receiver>,
    /// The supervisor's "skip the shutdown delay" signal.
    now: Option<Signal>,
    supervised: bool,
    first: Option<Shutdown>,
}

impl ShutdownWatch {
    /// Waits for a stop request: the first reason to stop, then only a new request.
    ///
    /// One stop request may arrive by several routes within microseconds: SIGTERM or SIGINT
    /// sent to the whole process group (systemd's `KillMode=control-group`, Ctrl-C) reaches a
    /// worker directly and again forwarded by the supervisor; a dying supervisor sends the
    /// parent-death signal and closes the parent pipe. These are one request. A forked worker
    /// therefore absorbs every stop signal after the first and leaves escalation to its
    /// supervisor, which kills it on a second SIGINT or a SIGQUIT, or at the graceful deadline:
    /// after the first request only [`Shutdown::Now`] from the supervisor completes it.
    /// Without a supervisor no signal comes twice, so a later SIGTERM or SIGINT is a new
    /// request and completes it again.
    pub async fn wait(&mut self) -> Shutdown {
        loop {
            let reason = self.next_signal().await;
            match self.first {
                None => {
                    self.first = Some(reason);
                    return reason;
                }
                Some(_) if !self.supervised || reason == Shutdown::Now => return reason,
                Some(first) => {
                    tracing::debug!(?reason, ?first, "the first stop request again; ignored");
                }
            }
        }
    }

    /// Drives a stage's [`Cancel`] from the stop requests, as [`App`](crate::App)
    /// does in each worker: on the first request [`Cancel::cancel`] (the drain); on SIGTERM
    /// with a `shutdown_delay`, first [`Cancel::announce`] (readiness fails, serving goes on)
    /// for the delay or until a new request; during the drain, a new SIGINT (without a
    /// supervisor; with one, the supervisor kills instead) [`Cancel::cancel_now`].
    pub async fn cancel_stage(mut self, cancel: Cancel, shutdown_delay: Duration) {
        let reason = self.wait().await;
        tracing::info!(?reason, "worker stopping");
        if reason == Shutdown::Terminate && !shutdown_delay.is_zero() {
            cancel.announce();
            tracing::info!(
                delay = ?shutdown_delay,
                "not ready any more; serving on for the shutdown delay"
            );
            tokio::select! {
                () = tokio::time::sleep(shutdown_delay) => {}
                again = self.wait() => {
                    tracing::info!(?again, "a new stop request; skipping the rest of the shutdown delay");
                }
            }
        }
        cancel.cancel();
        loop {
            let again = self.wait().await;
            if again == Shutdown::Interrupt {
                tracing::warn!(?again, "second stop request; stopping at once");
                cancel.cancel_now();
                return;
            }
            tracing::info!(?again, "already draining");
        }
    }

    async fn next_signal(&mut self) -> Shutdown {
        let parent = self.parent.as_ref();
        let now = async {
            match self.now.as_mut() {
                Some(now) => {
                    now.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let parent_gone = async move {
            match parent {
                // The supervisor holds the only write end: readable means end of file.
                Some(parent) => match parent.readable().await {
                    Ok(_) => Shutdown::ParentGone,
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            _ = self.terminate.recv() => Shutdown::Terminate,
            _ = self.interrupt.recv() => Shutdown::Interrupt,
            () = now => Shutdown::Now,
            reason = parent_gone => reason,
        };
        if reason == Shutdown::ParentGone {
            // End of file stays readable: once seen, it is no news.
            self.parent = None;
        }
        reason
    }
}

impl crate::server::Supervised for Worker {
    fn ready(&self) {
        if let Err(err) = self.notify_ready() {
            tracing::error!(error = %err, "cannot report readiness to the supervisor");
        }
    }

    fn replace(&self) {
        if let Err(err) = self.request_replacement() {
            tracing::error!(error = %err, "cannot ask the supervisor for a replacement");
        }
    }

    fn released(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let Some(fd) = &self.release else {
            return Box::pin(std::future::ready(()));
        };
        match fd.try_clone().and_then(pipe::Receiver::from_owned_fd) {
            // The supervisor holds the only write end, and writes nothing: readable means end
            // of file (released, or the supervisor is gone).
            Ok(release) => Box::pin(async move {
                let _ = release.readable().await;
            }),
            Err(error) => {
                tracing::warn!(%error, "cannot watch for the supervisor's release; draining at once");
                Box::pin(std::future::ready(()))
            }
        }
    }
}
