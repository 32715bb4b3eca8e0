//! Serving a router on bound sockets with hyper, and draining it without failing keep-alive
//! clients.

use std::convert::Infallible;
use std::future::Future;
use std::hash::BuildHasher;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::http::{HeaderValue, Request, Response, StatusCode, header::CONNECTION};
use buvar_kit::BoxError;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::sockets::{BoundSocket, Listener, is_connection_error};

mod activity;
mod h2;
mod head_timer;
mod protocol;
mod service;
mod upgrade;
mod woken;
mod write_timeout;

pub use h2::H2Config;
pub use upgrade::{UpgradeRefused, UpgradeTracker, UpgradedConnection};

use activity::ConnectionActivity;
use head_timer::HeadTimer;
use protocol::Protocol;
use service::{ConnectionService, PerRequest};
use woken::WhenWoken;
use write_timeout::WriteTimeout;

/// The most a connection buffers in this process for each direction: pipelined requests read
/// ahead, and answers the peer has not taken yet. hyper stops reading once the read buffer is
/// full, so a client that pipelines without reading is held to this, the kernel's socket
/// buffers and `write_timeout`. Also the largest request head accepted (nginx takes 32 KiB).
const MAX_CONNECTION_BUFFER: usize = 64 * 1024;

/// How a [`Serving`] treats connections: the defaults, changed with the setters (the type may
/// gain options, so it is built only this way).
///
/// ```
/// use std::time::Duration;
/// use buvar_axum::serving::ServeOptions;
///
/// let options = ServeOptions::default()
///     .graceful_timeout(Duration::from_secs(10))
///     .keep_alive_grace(Duration::ZERO);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServeOptions {
    pub(crate) graceful_timeout: Duration,
    pub(crate) keep_alive_grace: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_requests: Option<u64>,
    pub(crate) max_requests_jitter: u64,
    pub(crate) h2: H2Config,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsConfig>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            graceful_timeout: Duration::from_secs(30),
            keep_alive_grace: Duration::from_secs(1),
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_requests: None,
            max_requests_jitter: 0,
            h2: H2Config::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ServeOptions {
    /// How long a drain waits for open connections before dropping them (default 30 s).
    pub fn graceful_timeout(mut self, timeout: Duration) -> Self {
        self.graceful_timeout = timeout;
        self
    }

    /// How long a drain lets keep-alive clients send one more request (answered with
    /// `Connection: close`) before it closes idle connections (default 1 s, at most the
    /// graceful timeout): closing an idle connection races with a client that just sent a
    /// request on it, and that client would see a failure. Zero closes them at once, for
    /// tests whose clients send nothing more.
    pub fn keep_alive_grace(mut self, grace: Duration) -> Self {
        self.keep_alive_grace = grace;
        self
    }

    /// How long a client may take to send a request head before its connection is closed
    /// (default 10 s).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a write may make no progress (the peer reads nothing) before the connection is
    /// closed (default 30 s).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// How many connections may be open at once (default 10 000; 0 counts as 1); at the limit
    /// the accept loop pauses, so further clients wait in the socket's backlog instead of
    /// costing memory.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// After how many responses, plus up to `jitter` more chosen at random per [`Serving`] (so
    /// that workers started together do not all retire together), the serving asks to be
    /// replaced through [`Serving::max_requests_reached`]; `None` (the default) never asks.
    pub fn max_requests(mut self, max: Option<u64>, jitter: u64) -> Self {
        self.max_requests = max;
        self.max_requests_jitter = jitter;
        self
    }

    /// How HTTP/2 is served next to HTTP/1.1 on the same sockets, and its bounds.
    pub fn h2(mut self, h2: H2Config) -> Self {
        self.h2 = h2;
        self
    }

    /// TLS on every socket (`None`, the default: plain HTTP); see [`crate::tls`].
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: Option<crate::tls::TlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// The response count that fires [`Serving::max_requests_reached`], jitter included.
    fn request_budget(&self) -> Option<u64> {
        let max = self.max_requests?;
        let jitter = match self.max_requests_jitter {
            0 => 0,
            // A fresh `RandomState` is seeded per process and per call: random enough to spread
            // workers apart, without a dependency on a random number crate.
            jitter => {
                std::hash::RandomState::new().hash_one(std::process::id())
                    % jitter.saturating_add(1)
            }
        };
        Some(max.saturating_add(jitter).max(1))
    }
}

/// A service served on sockets (HTTP/1.1 with upgrades, and HTTP/2), until [`Serving::drain`].
///
/// The drain closes the listeners at once (so, once no other process holds the sockets, new
/// connections are refused), answers further requests on open connections with
/// `Connection: close`, gives keep-alive clients a moment, then closes idle connections and
/// waits up to the graceful timeout for the rest; whatever is still open then is dropped.
/// A connection whose first bytes have not arrived yet is not idle: its request may be on its
/// way, so the drain waits for them (up to the header read timeout), then serves it as it
/// serves the open ones.
/// Upgraded connections (WebSockets) whose handler holds an [`UpgradedConnection`] are waited
/// for too, and told to close when the graceful timeout has passed.
///
/// ```
/// use axum::{Router, routing::get};
/// use buvar_axum::serving::{ServeOptions, Serving};
/// use buvar_axum::sockets::{BindOptions, bind, parse_uris};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sockets = bind(&parse_uris(["tcp://127.0.0.1:0"])?, &BindOptions::default())?;
/// let router = Router::new().route("/", get(|| async { "hi" }));
/// let options = ServeOptions::default().max_connections(100).max_requests(Some(1000), 50);
/// let serving = Serving::start(sockets, router.with_state(()), options)?;
/// assert_eq!(serving.open_connections(), 0);
/// assert!(serving.drain().await);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Serving {
    stop: CancellationToken,
    retire: CancellationToken,
    tally: Arc<Tally>,
    close_idle: CancellationToken,
    kill: CancellationToken,
    accepting: JoinSet<()>,
    connections: TaskTracker,
    graceful_timeout: Duration,
    keep_alive_grace: Duration,
}

impl Serving {
    /// Starts accepting on every socket; call it inside a tokio runtime. Takes the sockets, so
    /// that once the drain closes the listeners, this process holds no copy of them.
    ///
    /// `service` answers the requests: an axum `Router` or any tower service of HTTP requests.
    /// Hand a router over as `router.with_state(())`, as `axum::serve` does: that turns its
    /// handlers into routes once instead of on every request.
    pub fn start<S, B>(
        sockets: Vec<BoundSocket>,
        service: S,
        options: ServeOptions,
    ) -> io::Result<Self>
    where
        S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
    {
        let listeners = sockets
            .into_iter()
            .map(BoundSocket::into_listener)
            .collect::<io::Result<Vec<_>>>()?;
        let stop = CancellationToken::new();
        let close_idle = CancellationToken::new();
        let kill = CancellationToken::new();
        let retire = CancellationToken::new();
        let connections = TaskTracker::new();
        let tally = Arc::new(Tally {
            budget: options.request_budget(),
            answered: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            retire: retire.clone(),
        });
        // One budget across all listeners: the limit is about this process's memory.
        let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
        let upgrades = UpgradeTracker::new(connections.clone(), stop.clone(), kill.clone());
        let mut http1 = http1::Builder::new();
        // The header read timeout's timer is each connection's own (`drive`).
        http1
            .header_read_timeout(options.header_read_timeout)
            .max_buf_size(MAX_CONNECTION_BUFFER);
        let http2 = options.h2.builder();
        #[cfg(feature = "tls")]
        let tls = match &options.tls {
            Some(config) => {
                let acceptor = crate::tls::Acceptor::load(config).map_err(io::Error::other)?;
                acceptor.watch(stop.clone());
                Some(acceptor)
            }
            None => None,
        };
        let mut accepting = JoinSet::new();
        for listener in listeners {
            accepting.spawn(accept(
                listener,
                Connections {
                    service: service.clone(),
                    http1: http1.clone(),
                    http2: http2.clone(),
                    tracker: connections.clone(),
                    upgrades: upgrades.clone(),
                    tally: tally.clone(),
                    close_idle: close_idle.clone(),
                    kill: kill.clone(),
                    slots: slots.clone(),
                    write_timeout: options.write_timeout,
                    first_request_timeout: options.header_read_timeout,
                    max_reset_streams: options.h2.max_reset_streams,
                    #[cfg(feature = "tls")]
                    tls: tls.clone(),
                },
                stop.clone(),
            ));
        }
        Ok(Self {
            stop,
            retire,
            tally,
            close_idle,
            kill,
            accepting,
            connections,
            graceful_timeout: options.graceful_timeout,
            keep_alive_grace: options.keep_alive_grace,
        })
    }

    /// How many connections are open.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Resolves once `max_requests` (plus jitter) responses were sent; never without a limit.
    /// Serving goes on regardless: whoever awaits this decides when to drain (a pre-forked
    /// worker asks its supervisor for a replacement first).
    pub fn max_requests_reached(&self) -> impl Future<Output = ()> + Send + 'static {
        self.retire.clone().cancelled_owned()
    }

    /// Stops accepting and drains; returns whether every connection ended within the graceful
    /// timeout (the rest were dropped).
    pub async fn drain(self) -> bool {
        self.drain_after(std::future::ready(())).await
    }

    /// Drains as [`drain`](Self::drain) does, but serves on as before until `released`
    /// resolves (at most the keep-alive grace): for listening sockets another process also
    /// holds, such as a pre-fork supervisor, whose close resets what queued on a socket nobody
    /// accepts on any more.
    pub async fn drain_after(mut self, released: impl Future<Output = ()>) -> bool {
        let deadline = Instant::now() + self.graceful_timeout;
        let grace = Instant::now() + self.keep_alive_grace.min(self.graceful_timeout);
        let _ = timeout_at(grace, released).await;
        self.stop.cancel();
        while self.accepting.join_next().await.is_some() {}
        // Only now `Connection: close`: the clients it sends to connect anew would meet the
        // last listeners closing (a handshake under way then is reset), where now they find
        // the sockets gone (refused, never sent) or another process still serving them.
        self.tally.draining.store(true, Ordering::Relaxed);
        self.connections.close();
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

/// What every response passes: the count against the request budget, and `Connection: close`
/// once draining. Atomics rather than cancellation tokens, which take a lock to clone or read.
#[derive(Debug)]
struct Tally {
    budget: Option<u64>,
    answered: AtomicU64,
    draining: AtomicBool,
    retire: CancellationToken,
}

impl Tally {
    fn response<B>(&self, mut response: Response<B>) -> Response<B> {
        if self
            .budget
            // Each count is handed out once: exactly one response sees the budget reached.
            .is_some_and(|budget| self.answered.fetch_add(1, Ordering::Relaxed) + 1 == budget)
        {
            self.retire.cancel();
        }
        // An upgrade (a WebSocket handshake) needs its own `Connection: upgrade`; the
        // connection leaves hyper's hands with it anyway.
        if self.draining.load(Ordering::Relaxed)
            && response.status() != StatusCode::SWITCHING_PROTOCOLS
        {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[derive(Clone)]
struct Connections<S> {
    service: S,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    tracker: TaskTracker,
    upgrades: UpgradeTracker,
    tally: Arc<Tally>,
    close_idle: CancellationToken,
    kill: CancellationToken,
    slots: Arc<Semaphore>,
    write_timeout: Duration,
    first_request_timeout: Duration,
    max_reset_streams: u64,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::Acceptor>,
}

/// The most connections one drain takes from a listener's queue (see [`take_queued`]).
const MAX_QUEUED: usize = 65_535;

async fn accept<S, B>(mut listener: Listener, connections: Connections<S>, stop: CancellationToken)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    loop {
        // Waiting for a free slot before accepting leaves the surplus clients in the kernel's
        // backlog, where they cost this process nothing.
        let slot = tokio::select! {
            biased;
            () = stop.cancelled() => return take_queued(listener, connections),
            slot = connections.slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { return };
        let (stream, _peer) = tokio::select! {
            biased;
            () = stop.cancelled() => return take_queued(listener, connections),
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
        };
        serve_connection(stream, Some(slot), connections.clone());
    }
}

/// Accepts what the kernel already queued when the drain began: closing the listener would
/// reset those connections (clients that reconnected after a `Connection: close` while another
/// worker still held the socket). They are served like the open ones, draining.
fn take_queued<S, B>(listener: Listener, connections: Connections<S>)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    // The kernel queues at most the listen backlog (capped by `net.core.somaxconn`), so a
    // sweep longer than this takes connections that arrived after it began: a client flooding
    // a stopping worker with connects would otherwise keep it here, with nothing else running.
    for _ in 0..MAX_QUEUED {
        let stream = match listener.try_accept() {
            Ok(Some(stream)) => stream,
            Ok(None) => return,
            // The peer gave up before we accepted: the next one may still be queued.
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                tracing::warn!(%error, "taking the queued connections failed; closing the listener");
                return;
            }
        };
        let slot = connections.slots.clone().try_acquire_owned().ok();
        serve_connection(stream, slot, connections.clone());
    }
}

fn serve_connection<S, B>(
    stream: <Listener as axum::serve::Listener>::Io,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    connections: Connections<S>,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let tracker = connections.tracker.clone();
    tracker.spawn(async move {
        // The connection's slot, held until the connection ends or an upgrade takes it over.
        let per_request = PerRequest::new(
            connections.upgrades.connection(slot),
            connections.tally.clone(),
        );
        // One deadline for the first request, whatever comes before it: the TLS handshake,
        // the first bytes, the HTTP/2 preface and settings.
        let first_request = Instant::now() + connections.first_request_timeout;
        #[cfg(feature = "tls")]
        if let Some(tls) = connections.tls.clone() {
            let stream = WriteTimeout::new(stream, connections.write_timeout);
            let handshake = tokio::select! {
                biased;
                () = connections.kill.cancelled() => return,
                handshake = timeout_at(first_request, tls.acceptor().accept(stream)) => handshake,
            };
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("no TLS handshake within the header read timeout; closing");
                    return;
                }
            };
            // Over TLS, HTTP/2 is chosen by ALPN only (RFC 9113, section 3.3).
            let protocol = match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            let per_request =
                per_request.with_client(crate::tls::ClientCertificate::of(stream.get_ref().1));
            return drive(stream, protocol, first_request, per_request, connections).await;
        }
        let sniffed = tokio::select! {
            biased;
            () = connections.kill.cancelled() => return,
            // Not idle, unlike a keep-alive connection between requests: its client connected
            // to send a request, which may still be on its way when the drain closes the idle
            // ones. It is waited for up to the header read timeout (or the drain's kill).
            sniffed = timeout_at(first_request, protocol::sniff(&stream)) => sniffed,
        };
        let protocol = match sniffed {
            Ok(Ok(protocol)) => protocol,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "reading a connection's first bytes failed");
                return;
            }
            Err(_) => {
                tracing::debug!("no request within the header read timeout; closing");
                return;
            }
        };
        let stream = WriteTimeout::new(stream, connections.write_timeout);
        drive(stream, protocol, first_request, per_request, connections).await;
    });
}

/// Why a connection stops before it ends by itself.
enum Stop {
    /// The drain began: close once idle.
    Drain,
    /// The drain's time is up.
    Kill,
    /// An HTTP/2 client cancels more streams than it lets finish.
    Abusive,
    /// No request within the header read timeout.
    Silent,
}

/// Serves HTTP/1.1 or HTTP/2 on one connection until it ends, the drain closes it or the
/// client misbehaves.
async fn drive<I, S, B>(
    io: I,
    protocol: Protocol,
    first_request: Instant,
    per_request: PerRequest,
    connections: Connections<S>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let activity = Arc::new(ConnectionActivity::new(connections.max_reset_streams));
    let service = ConnectionService::new(connections.service, activity.clone(), per_request);
    let io = TokioIo::new(io);
    let watch = Watch {
        activity,
        first_request,
        close_idle: connections.close_idle,
        kill: connections.kill,
    };
    match protocol {
        Protocol::Http1 => {
            let mut http1 = connections.http1;
            let connection = http1
                .timer(HeadTimer::default())
                .serve_connection(io, service)
                .with_upgrades();
            watch
                .run(connection, http1::UpgradeableConnection::graceful_shutdown)
                .await;
        }
        Protocol::Http2 => {
            let connection = connections.http2.serve_connection(io, service);
            watch
                .run(connection, http2::Connection::graceful_shutdown)
                .await;
        }
    }
}

/// What ends a connection besides its client.
struct Watch {
    activity: Arc<ConnectionActivity>,
    first_request: Instant,
    close_idle: CancellationToken,
    kill: CancellationToken,
}

impl Watch {
    /// Drives `connection` to its end, or closes it (with `graceful_shutdown` for the drain).
    async fn run<C>(self, connection: C, graceful_shutdown: impl FnOnce(Pin<&mut C>))
    where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let Self {
            activity,
            first_request,
            close_idle,
            kill,
        } = self;
        let mut connection = pin!(connection);
        // hyper's header read timeout starts once it knows the protocol, and HTTP/2 has
        // none: `first_request` covers the HTTP/2 preface and settings, and the first request of
        // either protocol.
        let signals = WhenWoken::new(async {
            let mut first_request = pin!(tokio::time::sleep_until(first_request));
            let mut awaiting_first = true;
            loop {
                tokio::select! {
                    () = close_idle.cancelled() => return Stop::Drain,
                    () = kill.cancelled() => return Stop::Kill,
                    () = activity.abusive() => return Stop::Abusive,
                    () = first_request.as_mut(), if awaiting_first => {
                        if !activity.requested() {
                            return Stop::Silent;
                        }
                        awaiting_first = false;
                    }
                }
            }
        });
        let ended = tokio::select! {
            biased;
            ended = connection.as_mut() => Some(ended),
            stop = signals => match stop {
                Stop::Drain => None,
                Stop::Kill => return,
                Stop::Abusive => {
                    tracing::warn!(
                        "closing an HTTP/2 connection whose client cancels more streams \
                         than it lets finish (http.h2.max_reset_streams)"
                    );
                    return;
                }
                Stop::Silent => {
                    tracing::debug!("no request within the header read timeout; closing");
                    return;
                }
            },
        };
        let ended = match ended {
            Some(ended) => ended,
            None => {
                // HTTP/1.1: closes once the response in flight is sent; HTTP/2: GOAWAY,
                // and the open streams finish.
                graceful_shutdown(connection.as_mut());
                tokio::select! {
                    ended = connection => ended,
                    () = kill.cancelled() => return,
                }
            }
        };
        if let Err(err) = ended {
            tracing::debug!(error = %err, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(budget: Option<u64>) -> Tally {
        Tally {
            budget,
            answered: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            retire: CancellationToken::new(),
        }
    }

    #[test]
    fn the_budget_is_reached_by_exactly_one_response() {
        let tally = tally(Some(3));
        for _ in 0..2 {
            tally.response(Response::new(()));
        }
        assert!(!tally.retire.is_cancelled());
        tally.response(Response::new(()));
        assert!(tally.retire.is_cancelled());
        assert_eq!(tally.answered.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn draining_closes_connections_but_not_upgrades() {
        let tally = tally(None);
        assert!(
            !tally
                .response(Response::new(()))
                .headers()
                .contains_key(CONNECTION)
        );
        tally.draining.store(true, Ordering::Relaxed);
        assert_eq!(
            tally.response(Response::new(())).headers()[CONNECTION],
            "close"
        );
        let mut upgrade = Response::new(());
        *upgrade.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        upgrade
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        assert_eq!(tally.response(upgrade).headers()[CONNECTION], "upgrade");
    }

    #[test]
    fn the_largest_jitter_does_not_overflow() {
        let options = ServeOptions::default().max_requests(Some(10), u64::MAX);
        assert!(options.request_budget().is_some_and(|budget| budget >= 10));
    }
}
