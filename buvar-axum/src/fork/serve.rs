//! Serving an axum router in a worker, and draining it without failing keep-alive clients.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    http::{HeaderValue, header::CONNECTION},
    response::Response,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::watch,
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tower::util::MapResponseLayer;

use super::{Shutdown, ShutdownWatch, Worker};
use crate::sockets::{Listener, PeerAddr, Stream};

/// How long a drain lets keep-alive connections send one more request (answered with
/// `Connection: close`) before idle ones are closed.
const KEEP_ALIVE_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` on all the worker's sockets until SIGTERM, SIGINT or the supervisor's
/// death, then drains; call it inside the worker's tokio runtime.
///
/// It is [`Serving::start`], [`Worker::notify_ready`] and [`Serving::until_shutdown`] in a row.
pub async fn serve(worker: &mut Worker, router: Router) -> io::Result<Shutdown> {
    let serving = Serving::start(worker, router)?;
    worker.notify_ready()?;
    Ok(serving.until_shutdown(worker).await)
}

/// An axum router being served on a worker's sockets, with a graceful drain.
///
/// On a stop it closes the listeners at once (so, once the supervisor closed its copies too,
/// new connections are refused), answers further requests on open connections with
/// `Connection: close`, and waits up to the graceful timeout for the connections to end;
/// whatever is still open then is dropped.
#[derive(Debug)]
pub struct Serving {
    shutdown: ShutdownWatch,
    stop: CancellationToken,
    open: Arc<watch::Sender<usize>>,
    servers: JoinSet<io::Result<()>>,
}

impl Serving {
    /// Installs the stop handlers and starts accepting on every socket of the worker; call it
    /// inside the worker's tokio runtime, then report readiness.
    pub fn start(worker: &mut Worker, router: Router) -> io::Result<Self> {
        let shutdown = worker.watch_shutdown()?;
        let listeners = worker
            .take_sockets()
            .into_iter()
            .map(crate::sockets::BoundSocket::into_listener)
            .collect::<io::Result<Vec<_>>>()?;
        let stop = CancellationToken::new();
        let open = Arc::new(watch::Sender::new(0usize));
        let router = router.layer(MapResponseLayer::new({
            let stop = stop.clone();
            move |mut response: Response| {
                if stop.is_cancelled() {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                response
            }
        }));
        let grace = KEEP_ALIVE_GRACE.min(worker.graceful_timeout());
        let mut servers = JoinSet::new();
        for listener in listeners {
            let listener = Draining {
                listener: Some(listener),
                stop: stop.clone(),
                open: Arc::clone(&open),
            };
            let drained = {
                let stop = stop.clone();
                let mut idle = open.subscribe();
                async move {
                    stop.cancelled().await;
                    let _ = tokio::time::timeout(grace, idle.wait_for(|open| *open == 0)).await;
                }
            };
            servers.spawn(
                axum::serve(listener, router.clone())
                    .with_graceful_shutdown(drained)
                    .into_future(),
            );
        }
        Ok(Self {
            shutdown,
            stop,
            open,
            servers,
        })
    }

    /// Serves until a reason to stop arrives, then drains within the worker's graceful
    /// timeout; returns the reason.
    pub async fn until_shutdown(mut self, worker: &Worker) -> Shutdown {
        let reason = self.shutdown.wait().await;
        tracing::info!(index = worker.index(), ?reason, "worker draining");
        self.stop.cancel();
        let servers = &mut self.servers;
        let drain = tokio::time::timeout(worker.graceful_timeout(), async {
            while servers.join_next().await.is_some() {}
        });
        // Without a supervisor nobody else stops a drain early: a second signal does.
        let second_signal = async {
            if worker.is_supervised() {
                std::future::pending().await
            } else {
                self.shutdown.wait().await
            }
        };
        let open = Arc::clone(&self.open);
        tokio::select! {
            drained = drain => if drained.is_err() {
                let open = *open.borrow();
                tracing::warn!(index = worker.index(), open, "graceful timeout passed; dropping the open connections");
            },
            again = second_signal => {
                let open = *open.borrow();
                tracing::warn!(index = worker.index(), ?again, open, "second stop request; dropping the open connections");
            }
        }
        reason
    }
}

/// A listener that closes itself when the drain starts and counts open connections.
#[derive(Debug)]
struct Draining {
    listener: Option<Listener>,
    stop: CancellationToken,
    open: Arc<watch::Sender<usize>>,
}

impl axum::serve::Listener for Draining {
    type Io = Counted;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        if let Some(listener) = &mut self.listener {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => {}
                (stream, addr) = axum::serve::Listener::accept(listener) => {
                    self.open.send_modify(|open| *open += 1);
                    let counted = Counted { stream, open: Arc::clone(&self.open) };
                    return (counted, addr);
                }
            }
        }
        self.listener = None;
        std::future::pending().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match &self.listener {
            Some(listener) => axum::serve::Listener::local_addr(listener),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the listener was closed for draining",
            )),
        }
    }
}

/// A connection that counts itself out of the open connections when dropped.
#[derive(Debug)]
struct Counted {
    stream: Stream,
    open: Arc<watch::Sender<usize>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.send_modify(|open| *open = open.saturating_sub(1));
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
