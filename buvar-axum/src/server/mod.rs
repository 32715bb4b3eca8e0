//! The axum server plugin: one router from every plugin's routes, served on the shared
//! listeners with graceful shutdown on [`Cancel`].

mod guard;
mod ranges;
mod readiness;
mod request_id;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, Response};
use axum::routing::get;
use buvar_kit::{BoxError, Cancel, ConfigSource, Context, ContextLayer, Plugin, Prepare, Stage};
use tokio::sync::watch;
use tower::{Service, ServiceBuilder};
use tower_http::trace::TraceLayer;

use guard::GuardLayer;
pub use ranges::SettingOutOfRange;
pub(crate) use ranges::check_http;
#[cfg(feature = "grpc")]
pub(crate) use readiness::ReadyVerdict;
pub use readiness::{ReadinessConfig, ReadinessError};
use request_id::{RequestIdLayer, X_REQUEST_ID};
pub use routes::PrepareExt;
pub(crate) use routes::{Routes, merge as merge_routes};

use crate::HttpConfig;
use crate::serving::Serving;
use crate::sockets::{BoundSocket, SocketError, SocketUri};

/// The body limit axum's extractors (`Bytes`, `Json`, ...) apply without `DefaultBodyLimit`.
const AXUM_BODY_LIMIT: usize = 2 * 1024 * 1024;

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
    if let Some(layer) = crate::metrics::prepare(&cx)? {
        cx.context().add(layer);
    }
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
    let http = match context.try_get::<ConfigSource>() {
        Some(source) => source.section::<HttpConfig>()?,
        None => Arc::new(HttpConfig::default()),
    };
    check_http(&http)?;
    Ok(http)
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
    /// A setting is outside its valid range.
    #[error(transparent)]
    OutOfRange(#[from] SettingOutOfRange),
    /// Binding the sockets failed.
    #[error(transparent)]
    Bind(#[from] SocketError),
    /// The readiness checks cannot be set up.
    #[error(transparent)]
    Readiness(#[from] ReadinessError),
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
/// `Arc<dyn Supervised>`: the pre-fork [`Worker`](crate::fork::Worker) implements it.
pub trait Supervised: Send + Sync {
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

/// Liveness: the process answers HTTP. It never asks a dependency, on purpose: a database
/// outage would otherwise make the orchestrator restart every replica at once, which cannot
/// bring the database back and throws away warm workers. Dependencies belong in `/readyz`.
async fn healthz() -> &'static str {
    "ok"
}

/// The server's router: every plugin's routes, `/healthz` and `/readyz`, and the layers (request
/// ids, tracing, panics as 500, the request timeout, the body limit and the per-request
/// context). What [`testing`](crate::testing) calls without a socket; the server serves the
/// same stack without the `Router` around it.
///
/// All of it sits in the returned router's fallback, so that the layers wrap the router once
/// instead of each route: add routes in a plugin ([`PrepareExt::routes`]), not to this router
/// (it has no routes of its own for `route_layer`, and `merge` refuses a second fallback).
pub fn router(context: &Context, http: &HttpConfig) -> Result<Router, ServerError> {
    Ok(Router::new().fallback_service(service::<Body>(context, http)?))
}

/// The layers around the merged routes, as one service. Around the router rather than added
/// with `Router::layer`, which wraps every route in the stack: each request would then clone
/// and box the whole stack and box its future once more.
pub(crate) fn service<B>(
    context: &Context,
    http: &HttpConfig,
) -> Result<
    impl Service<
        Request<B>,
        Response = Response<impl HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static,
    ServerError,
>
where
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let builtin = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", readiness::route(context)?);
    let router = routes::merge(Routes::merged(context)?, builtin, PLUGIN_NAME)?;
    let router = crate::metrics::attach(context, router)?;
    let metrics = context.try_get::<crate::metrics::HttpMetricsLayer>();
    #[cfg(feature = "otel")]
    let exporting = crate::otel::active();
    let trace = TraceLayer::new_for_http().make_span_with(move |request: &Request<B>| {
        #[cfg(feature = "otel")]
        if exporting {
            return crate::otel::request_span(request, request_id_of(request));
        }
        // At debug level: a span per request costs a tenth of the throughput with a JSON
        // subscriber; `APP_LOG_LEVEL=debug` (or `RUST_LOG=buvar_axum=debug`) turns it on. The
        // fields are only evaluated when it is on.
        tracing::debug_span!(
            "request",
            method = %request.method(),
            uri = %request.uri(),
            request_id = request_id_of(request),
        )
    });
    Ok(ServiceBuilder::new()
        .option_layer(metrics.map(|layer| (*layer).clone()))
        .layer(RequestIdLayer::new(std::process::id()))
        .layer(trace)
        .layer(GuardLayer::new(http.body_limit, http.request_timeout()))
        // axum's extractors stop at 2 MiB by themselves: only another limit needs telling
        // them, which costs an entry in every request's extensions.
        .option_layer(
            (http.body_limit != AXUM_BODY_LIMIT).then(|| DefaultBodyLimit::max(http.body_limit)),
        )
        .layer(ContextLayer::new(context.clone()))
        // Turns the handlers into routes now, not again for every request.
        .service(router.with_state(())))
}

fn request_id_of<B>(request: &Request<B>) -> &str {
    request
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

async fn serve(
    context: Context,
    http: Arc<HttpConfig>,
    readiness: Arc<Readiness>,
) -> Result<(), ServerError> {
    let service = service(&context, &http)?;
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
    let serving = Serving::start(sockets, service, http.serve_options())?;
    for addr in &addrs {
        tracing::info!(%addr, "serving");
    }
    readiness.set_ready(addrs);
    if let Some(supervisor) = context.try_get::<dyn Supervised>() {
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
