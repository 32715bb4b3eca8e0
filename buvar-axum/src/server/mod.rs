//! The axum server plugin: one router from every plugin's routes, served on the shared
//! listeners with graceful shutdown on [`Cancel`].

mod routes;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::routing::get;
use buvar_kit::extract::Component;
use buvar_kit::{BoxError, Cancel, ConfigSource, Context, ContextLayer, Plugin, Prepare, Stage};
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use routes::PrepareExt;
pub(crate) use routes::Routes;

use crate::HttpConfig;
use crate::serving::Serving;
use crate::sockets::{BoundSocket, SocketError, SocketUri};

/// The name of the server plugin.
pub const PLUGIN_NAME: &str = "buvar-axum.server";

/// The server plugin: prepares the `[http]` section and hands the stage a task that serves the
/// merged router of every plugin's routes on the listeners found in the context (or binds
/// `host:port` itself when there are none), with `/healthz` and `/readyz` built in.
///
/// Each inherited socket's bound address becomes a [`SocketUri`] component named by the URI
/// it was asked for (`ctx.get_named::<SocketUri>("tcp://0.0.0.0:8080")`).
pub fn plugin() -> Plugin {
    Plugin::new(PLUGIN_NAME, prepare)
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    let http = http_config(cx.context())?;
    let readiness = cx.context().add(Readiness::default());
    if let Some(inherited) = cx.context().try_get::<InheritedSockets>() {
        for (uri, local) in inherited.addresses() {
            cx.context().add_named(&uri.to_string(), local);
        }
    }
    cx.task("http server", move |ctx: Context| {
        serve(ctx, http, readiness)
    });
    Ok(())
}

/// The plugins of a service, staged with the server plugin.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServicePlugins {
    loads: Vec<Plugin>,
    registered: Vec<Plugin>,
}

impl ServicePlugins {
    pub(crate) fn load(&mut self, plugin: Plugin) {
        self.loads.push(plugin);
    }

    pub(crate) fn register(&mut self, plugin: Plugin) {
        self.registered.push(plugin);
    }

    /// `stage` with the server plugin, then the service's plugins, to load.
    pub(crate) fn stage(&self, stage: Stage) -> Stage {
        let stage = self
            .registered
            .iter()
            .fold(stage, |stage, plugin| stage.register(plugin.clone()));
        self.loads
            .iter()
            .fold(stage.load(plugin()), |stage, plugin| {
                stage.load(plugin.clone())
            })
    }
}

/// The `[http]` section of the config source in the context, or the defaults without one.
pub(crate) fn http_config(context: &Context) -> Result<Arc<HttpConfig>, ServerError> {
    match context.try_get::<ConfigSource>() {
        Some(source) => Ok(source.section::<HttpConfig>()?),
        None => Ok(Arc::new(HttpConfig::default())),
    }
}

/// Why the server could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Two plugins contributed a handler for the same method and path.
    #[error("routes of plugin `{plugin}` clash with routes added before: {message}")]
    RouteClash {
        /// The plugin whose router clashed.
        plugin: String,
        /// axum's description of the clash.
        message: String,
    },
    /// The `[http]` section is invalid.
    #[error(transparent)]
    Config(#[from] buvar_kit::config::ConfigError),
    /// Binding the sockets failed.
    #[error(transparent)]
    Bind(#[from] SocketError),
    /// Serving failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The sockets a worker inherited, handed to the server once: it turns them into listeners,
/// so that when its listeners close, the worker holds no copy of the sockets open.
#[derive(Debug, Default)]
pub struct InheritedSockets {
    sockets: std::sync::Mutex<Vec<BoundSocket>>,
}

impl InheritedSockets {
    /// Wraps sockets bound by the parent process.
    pub fn new(sockets: Vec<BoundSocket>) -> Self {
        Self {
            sockets: std::sync::Mutex::new(sockets),
        }
    }

    /// Each socket's URI (its name as a component) and the address it is bound to.
    fn addresses(&self) -> Vec<(SocketUri, SocketUri)> {
        self.sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|socket| (socket.uri().clone(), socket.local_addr().clone()))
            .collect()
    }

    fn take(&self) -> Vec<BoundSocket> {
        std::mem::take(
            &mut *self
                .sockets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// What the server tells the process that supervises it, found in the context as
/// `Arc<dyn Supervisor>`: the pre-fork [`Worker`](crate::fork::Worker) implements it.
pub trait Supervisor: Send + Sync {
    /// The server accepts connections.
    fn ready(&self);
    /// The server answered `[http] max_requests` (plus jitter) requests: replace this process.
    fn replace(&self);
}

/// Whether the server accepts requests, and on which addresses; `/readyz` reads it.
#[derive(Debug)]
pub struct Readiness {
    state: watch::Sender<Vec<SocketUri>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(Vec::new()),
        }
    }
}

impl Readiness {
    fn set_ready(&self, addrs: Vec<SocketUri>) {
        self.state.send_replace(addrs);
    }

    /// Whether the server accepts connections.
    pub fn is_ready(&self) -> bool {
        !self.state.borrow().is_empty()
    }

    /// Waits until the server accepts connections and returns the addresses it listens on
    /// (with the ports the kernel chose for port 0).
    pub async fn wait(&self) -> Vec<SocketUri> {
        let mut state = self.state.subscribe();
        match state.wait_for(|addrs| !addrs.is_empty()).await {
            Ok(addrs) => addrs.clone(),
            Err(_) => Vec::new(),
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(
    Component(readiness): Component<Readiness>,
    Component(cancel): Component<Cancel>,
) -> (StatusCode, &'static str) {
    if cancel.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// Request ids of the form `<pid>-<n>`: unique across the workers of one service without the
/// cost of random numbers or of `format!`.
#[derive(Clone, Debug)]
struct PidCounterId {
    pid: u32,
    next: Arc<AtomicU64>,
}

impl MakeRequestId for PidCounterId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = [0_u8; 32];
        let mut end = write_decimal(&mut id, 0, u64::from(self.pid));
        id[end] = b'-';
        end = write_decimal(&mut id, end + 1, n);
        HeaderValue::from_bytes(&id[..end]).ok().map(RequestId::new)
    }
}

/// Writes `value` in decimal at `at`; returns the end. 32 bytes hold a u32, a dash and a u64.
fn write_decimal(buffer: &mut [u8; 32], at: usize, mut value: u64) -> usize {
    let mut digits = [0_u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (value % 10) as u8;
        len += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for (i, digit) in digits[..len].iter().rev().enumerate() {
        buffer[at + i] = *digit;
    }
    at + len
}

/// The server's router: every plugin's routes, `/healthz` and `/readyz`, and the layers (request
/// ids, tracing, panics as 500, the request timeout, the body limit and the per-request
/// context). What the server serves, and what [`testing`](crate::testing) calls without a socket.
pub fn router(context: &Context, http: &HttpConfig) -> Result<Router, ServerError> {
    let builtin = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let router = routes::merge(Routes::merged(context)?, builtin, PLUGIN_NAME)?;
    let request_id = PidCounterId {
        pid: std::process::id(),
        next: Arc::default(),
    };
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        // At debug level: a span per request costs a tenth of the throughput with a JSON
        // subscriber; `APP_LOG_LEVEL=debug` (or `RUST_LOG=buvar_axum=debug`) turns it on.
        tracing::debug_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
    });
    Ok(router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(request_id))
            .layer(trace)
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(CatchPanicLayer::new())
            .layer(RequestBodyLimitLayer::new(http.body_limit))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                http.request_timeout(),
            ))
            .layer(DefaultBodyLimit::max(http.body_limit))
            .layer(ContextLayer::new(context.clone())),
    ))
}

async fn serve(
    context: Context,
    http: Arc<HttpConfig>,
    readiness: Arc<Readiness>,
) -> Result<(), ServerError> {
    let router = router(&context, &http)?;
    let cancel = context
        .get::<Cancel>()
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    let sockets = match context.try_get::<InheritedSockets>() {
        Some(inherited) => inherited.take(),
        None => Vec::new(),
    };
    let sockets = if sockets.is_empty() {
        crate::sockets::bind(&http.socket_uris()?, &http.bind_options())?
    } else {
        sockets
    };
    let addrs: Vec<SocketUri> = sockets.iter().map(|s| s.local_addr().clone()).collect();
    let serving = Serving::start(sockets, router, http.serve_options())?;
    for addr in &addrs {
        tracing::info!(%addr, "serving");
    }
    readiness.set_ready(addrs);
    if let Some(supervisor) = context.try_get::<dyn Supervisor>() {
        supervisor.ready();
        let reached = serving.max_requests_reached();
        tokio::spawn(async move {
            reached.await;
            supervisor.replace();
        });
    }
    cancel.cancelled().await;
    tracing::info!("draining");
    serving.drain().await;
    Ok(())
}

/// How long [`Cancel`] leaves the server to drain before the stage aborts it: a little more than
/// the graceful timeout, so the server ends its own drain.
pub(crate) fn stage_grace(http: &HttpConfig) -> Duration {
    http.graceful_timeout() + Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_pid_dash_counter() {
        let mut ids = PidCounterId {
            pid: 4_294_967_295,
            next: Arc::new(AtomicU64::new(u64::MAX - 1)),
        };
        let request = Request::new(());
        let first = ids.make_request_id(&request).unwrap();
        assert_eq!(first.header_value(), "4294967295-18446744073709551614");
        ids.pid = 7;
        ids.next.store(0, Ordering::Relaxed);
        assert_eq!(ids.make_request_id(&request).unwrap().header_value(), "7-0");
    }
}
