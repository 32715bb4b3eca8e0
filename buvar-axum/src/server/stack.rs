//! The service the server runs: the merged routes of every plugin, the built-in probes and the
//! layers around them.

use std::convert::Infallible;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, Response};
use axum::routing::get;
use buvar_kit::{BoxError, Context};
use tower::{Service, ServiceBuilder};

use super::guard::Limits;
use super::request::RequestLayer;
use super::routes::{self, Routes};
use super::{PLUGIN_NAME, ServerError, readiness};
use crate::HttpConfig;

/// The body limit axum's extractors (`Bytes`, `Json`, ...) apply without `DefaultBodyLimit`.
const AXUM_BODY_LIMIT: usize = 2 * 1024 * 1024;

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
///
/// [`PrepareExt::routes`]: super::PrepareExt::routes
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
    let metrics = context
        .try_get::<crate::metrics::HttpMetrics>()
        .map(|metrics| (*metrics).clone());
    #[cfg(feature = "otel")]
    let exporting = crate::otel::active();
    #[cfg(not(feature = "otel"))]
    let exporting = false;
    let limits = Limits::new(http.body_limit, http.request_timeout());
    Ok(ServiceBuilder::new()
        .layer(RequestLayer::new(
            context.clone(),
            limits,
            metrics,
            exporting,
        ))
        // axum's extractors stop at 2 MiB by themselves: only another limit needs telling
        // them, which costs an entry in every request's extensions.
        .option_layer(
            (http.body_limit != AXUM_BODY_LIMIT).then(|| DefaultBodyLimit::max(http.body_limit)),
        )
        // Turns the handlers into routes now, not again for every request.
        .service(router.with_state(())))
}
