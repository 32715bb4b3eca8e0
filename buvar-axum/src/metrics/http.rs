//! `http_server_request_duration_seconds` and `http_server_active_requests`, as the
//! OpenTelemetry HTTP semantic conventions name them, recorded through the `metrics` facade.

use std::cell::Cell;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::routing::Route;
use http::{Method, Request, Response, StatusCode};
use metrics::{Gauge, Histogram};
use tower::{Layer, Service};

/// The `route` label of a request no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

const DURATION: &str = "http_server_request_duration_seconds";
const ACTIVE: &str = "http_server_active_requests";

std::thread_local! {
    /// The series of the route the router just called on this thread, carried out of the
    /// router to the request layer: axum calls a route in the first poll of the router's
    /// future, and the request layer's poll is the caller of that poll in the same call stack.
    /// Cheaper than a response extension, which allocates a map for each response, and than a
    /// future of our own around the route's.
    static CALLED: Cell<Option<Arc<RouteSeries>>> = const { Cell::new(None) };
}

/// Hands each route's series to the request layer (axum tells a route its template only in
/// the request's extensions).
pub(crate) fn with_route_templates(router: axum::Router) -> axum::Router {
    router.route_layer(RouteSeriesLayer)
}

/// Makes the series of each route: `route_layer` calls it once per route and method, when
/// the router is built.
#[derive(Debug, Clone, Copy)]
struct RouteSeriesLayer;

impl Layer<Route> for RouteSeriesLayer {
    type Service = RouteService;

    fn layer(&self, inner: Route) -> Self::Service {
        RouteService {
            inner: Arc::new(Mutex::new(inner)),
            series: Arc::new(RouteSeries::default()),
        }
    }
}

/// The duration histograms of one route, by method and status. Resolved through the recorder
/// once per combination, so a request costs no hash of its template.
#[derive(Debug, Default)]
struct RouteSeries {
    /// The route's template, from its first request (the layer is made before axum says it).
    template: OnceLock<Box<str>>,
    durations: RwLock<Vec<Duration>>,
}

/// The histogram of one method and status of a route.
#[derive(Debug)]
struct Duration {
    method: &'static str,
    status: u16,
    histogram: Histogram,
}

impl RouteSeries {
    fn unmatched() -> Self {
        Self {
            template: OnceLock::from(Box::from(UNMATCHED)),
            durations: RwLock::default(),
        }
    }

    fn record(&self, method: &'static str, status: u16, seconds: f64) {
        // Method labels are `'static` constants: the same label is the same pointer.
        let matches = |d: &Duration| d.status == status && std::ptr::eq(d.method, method);
        // Recorded under the read lock: no clone of the handle per request.
        if let Some(known) = self
            .durations
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|d| matches(d))
        {
            known.histogram.record(seconds);
            return;
        }
        let route = self.template.get().map_or(UNMATCHED, |t| &**t);
        let histogram = metrics::histogram!(
            DURATION,
            "method" => method,
            "route" => route.to_owned(),
            "status" => status.to_string(),
        );
        histogram.record(seconds);
        let mut durations = self
            .durations
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !durations.iter().any(matches) {
            durations.push(Duration {
                method,
                status,
                histogram,
            });
        }
    }
}

/// Shares its route rather than cloning it: axum clones the service for every request, and a
/// route clones itself again when called, so a clone of our own would be a third.
#[derive(Debug)]
struct RouteService {
    inner: Arc<Mutex<Route>>,
    series: Arc<RouteSeries>,
}

impl Clone for RouteService {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            series: self.series.clone(),
        }
    }
}

impl<B> Service<Request<B>> for RouteService
where
    Route: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = <Route as Service<Request<B>>>::Future;

    /// An axum `Route` is always ready: no lock taken to ask it.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.series.template.get().is_none() {
            if let Some(path) = request.extensions().get::<MatchedPath>() {
                let _ = self.series.template.set(path.as_str().into());
            }
        }
        // The first route called in a poll is the request's: a route called after it in the
        // same poll belongs to a router its handler calls.
        let called = CALLED.take();
        CALLED.set(Some(called.unwrap_or_else(|| self.series.clone())));
        self.route().call(request)
    }
}

impl RouteService {
    fn route(&self) -> MutexGuard<'_, Route> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records every request's duration and the requests in flight: the
/// [request layer](crate::server) calls [`begin`](Self::begin) for each request, and
/// [`InFlight::finish`] with its status.
#[derive(Debug, Clone)]
pub(crate) struct HttpMetrics {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    active: Gauge,
    /// The series of requests no route matched.
    unmatched: Arc<RouteSeries>,
}

impl HttpMetrics {
    pub(crate) fn new() -> Self {
        metrics::describe_histogram!(
            DURATION,
            metrics::Unit::Seconds,
            "Duration of HTTP server requests, until the response head, by method, route \
             template and status."
        );
        metrics::describe_gauge!(ACTIVE, "HTTP server requests in flight.");
        Self {
            shared: Arc::new(Shared {
                active: metrics::gauge!(ACTIVE),
                unmatched: Arc::new(RouteSeries::unmatched()),
            }),
        }
    }

    /// Counts a request in, from `start`.
    pub(crate) fn begin(&self, method: &Method, start: Instant) -> InFlight {
        self.shared.active.increment(1.0);
        InFlight {
            shared: self.shared.clone(),
            method: method_label(method),
            start,
            route: None,
        }
    }
}

/// The method, or `_OTHER` for one outside RFC 9110 (a client must not make series at will).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

/// One request in flight: counted out when dropped, answered or not.
#[derive(Debug)]
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    method: &'static str,
    start: Instant,
    /// The route the router called for this request; `None` until it did.
    route: Option<Arc<RouteSeries>>,
}

impl InFlight {
    /// Polls the router's future and notes the route it called: call it for every poll.
    /// What the thread held before is not this request's: a route noted by a request whose
    /// handler runs this one (a request layer nested in a handler), given back after the poll,
    /// or one a route left outside of any request's poll.
    pub(crate) fn poll_router<T>(&mut self, poll: impl FnOnce() -> T) -> T {
        if self.route.is_some() {
            return poll();
        }
        let enclosing = CALLED.take();
        let polled = poll();
        self.route = CALLED.replace(enclosing);
        polled
    }

    /// Records the request's duration under the route the router called for it, whatever
    /// answered (the handler, or the request layer with 408 or 500 for the handler), or
    /// under the unmatched route.
    pub(crate) fn finish(self, status: StatusCode) {
        let seconds = self.start.elapsed().as_secs_f64();
        let status = status.as_u16();
        let route = self.route.as_deref().unwrap_or(&self.shared.unmatched);
        route.record(self.method, status, seconds);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.active.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use buvar_kit::Context;
    use tower::ServiceExt;

    use super::*;
    use crate::metrics::recorder::RowRecorder;
    use crate::metrics::region::{Kind, Region};
    use crate::server::guard::Limits;
    use crate::server::request::RequestLayer;

    /// The count of the duration series with these labels (`None`: no such series).
    fn count(region: &Region, labels: &str) -> Option<u64> {
        let series = region.find(Kind::Histogram, DURATION, labels)?;
        let buckets = region.buckets().len() + 1;
        Some(
            (0..buckets)
                .map(|i| region.total(series.cell + i, false).0)
                .sum(),
        )
    }

    #[test]
    fn the_route_label_is_the_called_route_whatever_answered_or_unmatched() {
        let region: &'static Region = Box::leak(Box::new(Region::create(&[0.5, 1.0]).unwrap()));
        let row = region.row(Some(region.claim(0).unwrap()));
        let recorder = RowRecorder::new(region, row, 100, HashSet::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            let router = Router::new()
                .route("/greet/{name}", get(|| async { "hi" }))
                .route(
                    "/panic",
                    get(|| async {
                        panic!("on purpose");
                        #[allow(unreachable_code)]
                        ""
                    }),
                )
                .route("/slow", get(std::future::pending::<&str>))
                .route(
                    "/outer",
                    get(|| async {
                        // A router of its own, called in the handler's poll.
                        let inner = with_route_templates(
                            Router::new().route("/inner", get(|| async { "inner" })),
                        );
                        let request = Request::get("/inner").body(Body::empty()).unwrap();
                        inner.oneshot(request).await.unwrap().status()
                    }),
                )
                .route(
                    "/nested",
                    get(|| async {
                        // A request of its own, through a request layer of its own.
                        let inner = RequestLayer::new(
                            Context::new(),
                            Limits::new(4, Duration::from_secs(5)),
                            Some(HttpMetrics::new()),
                            false,
                        )
                        .layer(with_route_templates(
                            Router::new().route("/sub", get(|| async { "sub" })),
                        ));
                        let request = Request::get("/sub").body(Body::empty()).unwrap();
                        inner.oneshot(request).await.unwrap().status()
                    }),
                );
            let service = RequestLayer::new(
                Context::new(),
                Limits::new(4, Duration::from_secs(5)),
                Some(HttpMetrics::new()),
                false,
            )
            .layer(with_route_templates(router));
            runtime.block_on(async {
                for (method, path, body) in [
                    (Method::GET, "/greet/ann", ""),
                    (Method::GET, "/greet/bob", ""),
                    (Method::GET, "/nowhere", ""),
                    (Method::DELETE, "/greet/ann", ""),
                    (Method::from_bytes(b"BREW").unwrap(), "/greet/ann", ""),
                    (Method::POST, "/greet/ann", "over the limit"),
                    (Method::GET, "/panic", ""),
                    (Method::GET, "/slow", ""),
                    (Method::GET, "/outer", ""),
                    (Method::GET, "/nested", ""),
                ] {
                    let request = Request::builder()
                        .method(method)
                        .uri(path)
                        .header("content-length", body.len())
                        .body(Body::from(body))
                        .unwrap();
                    service.clone().oneshot(request).await.unwrap();
                }
            });
        });
        let series = |method: &str, route: &str, status: u16| {
            format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"")
        };
        assert_eq!(count(region, &series("GET", "/greet/{name}", 200)), Some(2));
        assert_eq!(count(region, &series("GET", UNMATCHED, 404)), Some(1));
        // A method the route has no handler for is still the route's.
        assert_eq!(
            count(region, &series("DELETE", "/greet/{name}", 405)),
            Some(1)
        );
        assert_eq!(
            count(region, &series("_OTHER", "/greet/{name}", 405)),
            Some(1)
        );
        assert_eq!(count(region, &series("GET", "/nowhere", 404)), None);
        // Refused before the router saw it: no route was called.
        assert_eq!(count(region, &series("POST", UNMATCHED, 413)), Some(1));
        // Answered by the request layer for the handler: the route's, so that an operator
        // sees which route panics or is slow.
        assert_eq!(count(region, &series("GET", "/panic", 500)), Some(1));
        assert_eq!(count(region, &series("GET", "/slow", 408)), Some(1));
        assert_eq!(count(region, &series("GET", UNMATCHED, 500)), None);
        // The route the request layer's router called, not one its handler called.
        assert_eq!(count(region, &series("GET", "/outer", 200)), Some(1));
        assert_eq!(count(region, &series("GET", "/inner", 200)), None);
        // A request layer in a handler counts its own request, and leaves the handler's.
        assert_eq!(count(region, &series("GET", "/nested", 200)), Some(1));
        assert_eq!(count(region, &series("GET", "/sub", 200)), Some(1));
        assert_eq!(count(region, &series("GET", UNMATCHED, 200)), None);
        let active = region.find(Kind::Gauge, ACTIVE, "").unwrap();
        assert_eq!(region.total(active.cell, true).1, 0.0);
    }
}
