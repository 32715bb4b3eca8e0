//! What a worker gets: its slot, the shared sockets, and its lines to the supervisor.

use std::{
    io,
    os::fd::OwnedFd,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use tokio::{
    net::unix::pipe,
    signal::unix::{Signal, SignalKind, signal},
};

use crate::sockets::BoundSocket;

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
    ready: Option<OwnedFd>,
    notified: AtomicBool,
    parent: Option<OwnedFd>,
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
            parent,
        }
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
        if let Some(ready) = &self.ready {
            nix::unistd::write(ready, b"R").map_err(io::Error::from)?;
        }
        Ok(())
    }

    /// Starts listening for the reasons to stop: SIGTERM, SIGINT, and the supervisor's death.
    ///
    /// Call it inside the worker's tokio runtime and before [`notify_ready`](Self::notify_ready),
    /// so that a stop request never meets a worker without handlers. It also installs
    /// handlers for SIGUSR1 and SIGUSR2, which the supervisor forwards, so that they no longer
    /// end the worker; listen to them with `tokio::signal` to act on them.
    pub fn watch_shutdown(&self) -> io::Result<ShutdownWatch> {
        // tokio keeps a handler installed once registered, even after the stream is dropped.
        drop(signal(SignalKind::user_defined1())?);
        drop(signal(SignalKind::user_defined2())?);
        let parent = match &self.parent {
            Some(fd) => Some(pipe::Receiver::from_owned_fd(fd.try_clone()?)?),
            None => None,
        };
        Ok(ShutdownWatch {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            parent,
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
}

impl ShutdownWatch {
    /// Waits for the first reason to stop.
    pub async fn wait(&mut self) -> Shutdown {
        let parent_gone = async {
            match &self.parent {
                // The supervisor holds the only write end: readable means end of file.
                Some(parent) => match parent.readable().await {
                    Ok(_) => Shutdown::ParentGone,
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.terminate.recv() => Shutdown::Terminate,
            _ = self.interrupt.recv() => Shutdown::Interrupt,
            reason = parent_gone => reason,
        }
    }
}
