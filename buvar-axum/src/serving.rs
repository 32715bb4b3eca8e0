//! Serving a router on bound sockets with hyper, and draining it without failing keep-alive
//! clients.

use std::io;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header::CONNECTION};
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::util::MapResponseLayer;

use crate::sockets::{BoundSocket, Listener};

/// How long a drain lets keep-alive clients send one more request (answered with
/// `Connection: close`) before idle connections are closed: closing an idle connection races
/// with a client that just sent a request on it, and that client would see a failure.
const KEEP_ALIVE_GRACE: Duration = Duration::from_secs(1);

/// How a [`Serving`] treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How long a drain waits for open connections before dropping them (default 30 s).
    pub graceful_timeout: Duration,
    /// How long a client may take to send a request head before its connection is closed
    /// (default 10 s).
    pub header_read_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            graceful_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeOptions {
    /// Sets the graceful timeout.
    pub fn graceful_timeout(mut self, timeout: Duration) -> Self {
        self.graceful_timeout = timeout;
        self
    }

    /// Sets the header read timeout.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }
}

/// A router served on sockets (HTTP/1.1, with upgrades), until [`Serving::drain`].
///
/// The drain closes the listeners at once (so, once no other process holds the sockets, new
/// connections are refused), answers further requests on open connections with
/// `Connection: close`, gives keep-alive clients a moment, then closes idle connections and
/// waits up to the graceful timeout for the rest; whatever is still open then is dropped.
#[derive(Debug)]
pub struct Serving {
    stop: CancellationToken,
    close_idle: CancellationToken,
    kill: CancellationToken,
    accepting: JoinSet<()>,
    connections: TaskTracker,
    graceful_timeout: Duration,
}

impl Serving {
    /// Starts accepting on every socket; call it inside a tokio runtime. Takes the sockets, so
    /// that once the drain closes the listeners, this process holds no copy of them.
    pub fn start(
        sockets: Vec<BoundSocket>,
        router: Router,
        options: ServeOptions,
    ) -> io::Result<Self> {
        let listeners = sockets
            .into_iter()
            .map(BoundSocket::into_listener)
            .collect::<io::Result<Vec<_>>>()?;
        let stop = CancellationToken::new();
        let close_idle = CancellationToken::new();
        let kill = CancellationToken::new();
        let connections = TaskTracker::new();
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
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout);
        let mut accepting = JoinSet::new();
        for listener in listeners {
            accepting.spawn(accept(
                listener,
                Connections {
                    router: router.clone(),
                    http: http.clone(),
                    tracker: connections.clone(),
                    close_idle: close_idle.clone(),
                    kill: kill.clone(),
                },
                stop.clone(),
            ));
        }
        Ok(Self {
            stop,
            close_idle,
            kill,
            accepting,
            connections,
            graceful_timeout: options.graceful_timeout,
        })
    }

    /// How many connections are open.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Stops accepting and drains; returns whether every connection ended within the graceful
    /// timeout (the rest were dropped).
    pub async fn drain(mut self) -> bool {
        let deadline = Instant::now() + self.graceful_timeout;
        self.stop.cancel();
        while self.accepting.join_next().await.is_some() {}
        self.connections.close();
        let grace = Instant::now() + KEEP_ALIVE_GRACE.min(self.graceful_timeout);
        let _ = timeout_at(grace, self.connections.wait()).await;
        self.close_idle.cancel();
        if timeout_at(deadline, self.connections.wait()).await.is_ok() {
            return true;
        }
        tracing::warn!(
            open = self.connections.len(),
            "graceful timeout passed; dropping the open connections"
        );
        self.kill.cancel();
        self.connections.wait().await;
        false
    }
}

#[derive(Clone)]
struct Connections {
    router: Router,
    http: http1::Builder,
    tracker: TaskTracker,
    close_idle: CancellationToken,
    kill: CancellationToken,
}

async fn accept(mut listener: Listener, connections: Connections, stop: CancellationToken) {
    loop {
        let (stream, _peer) = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
        };
        let Connections {
            router,
            http,
            tracker,
            close_idle,
            kill,
        } = connections.clone();
        tracker.spawn(async move {
            let service = TowerToHyperService::new(router);
            let mut connection = pin!(
                http.serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
            );
            let ended = tokio::select! {
                ended = connection.as_mut() => Some(ended),
                () = close_idle.cancelled() => None,
                () = kill.cancelled() => return,
            };
            let ended = match ended {
                Some(ended) => ended,
                None => {
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        ended = connection => ended,
                        () = kill.cancelled() => return,
                    }
                }
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
}
