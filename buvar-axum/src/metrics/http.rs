//! `http_server_request_duration_seconds` and `http_server_active_requests`, as the
//! OpenTelemetry HTTP semantic conventions name them, recorded through the `metrics` facade.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::MatchedPath;
use http::{Method, Request, Response};
use metrics::{Gauge, Histogram};
use tower::{Layer, Service};

/// The `route` label of a request no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

const DURATION: &str = "http_server_request_duration_seconds";
const ACTIVE: &str = "http_server_active_requests";

std::thread_local! {
    /// The route template that just answered on this thread, carried out of the router to
    /// [`MetricsFuture`], whose poll is the caller of the route's in the same call stack (the
    /// layers between map a ready response without waiting). Cheaper than a response extension,
    /// which allocates a map for each response.
    static MATCHED: std::cell::Cell<Option<MatchedPath>> = const { std::cell::Cell::new(None) };
}

/// Hands each route's template to the metrics layer (axum leaves it on the request only).
pub(crate) fn with_route_templates(router: axum::Router) -> axum::Router {
    router.route_layer(RouteTemplateLayer)
}

#[derive(Debug, Clone, Copy)]
struct RouteTemplateLayer;

impl<S> Layer<S> for RouteTemplateLayer {
    type Service = RouteTemplate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RouteTemplate { inner }
    }
}

#[derive(Debug, Clone)]
struct RouteTemplate<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for RouteTemplate<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = TemplateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        TemplateFuture {
            inner: self.inner.call(request),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RouteTemplate`].
    #[derive(Debug)]
    struct TemplateFuture<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, R, E> Future for TemplateFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        MATCHED.set(this.route.take());
        Poll::Ready(Ok(response))
    }
}

/// Records every request's duration and the requests in flight.
#[derive(Debug, Clone)]
pub(crate) struct HttpMetricsLayer {
    shared: Arc<Shared>,
}

/// The histogram of one method and status of a route.
#[derive(Debug)]
struct Duration {
    method: Method,
    status: u16,
    histogram: Histogram,
}

#[derive(Debug)]
struct Shared {
    active: Gauge,
    /// Handles by route template, then method and status: resolved once per combination.
    durations: RwLock<HashMap<Box<str>, Vec<Duration>, BuildHasherDefault<TemplateHasher>>>,
}

/// FNV-1a: route templates are short and chosen by the service, not by clients, so the
/// SipHash of the default hasher (a third of what recording cost) buys nothing here.
#[derive(Debug)]
struct TemplateHasher(u64);

impl Default for TemplateHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for TemplateHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl HttpMetricsLayer {
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
                durations: RwLock::default(),
            }),
        }
    }
}

impl Shared {
    fn record(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let matches = |d: &Duration| d.status == status && d.method == *method;
        // Recorded under the read lock: no clone of the handle per request.
        if let Some(known) = self
            .durations
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .and_then(|handles| handles.iter().find(|d| matches(d)))
        {
            known.histogram.record(seconds);
            return;
        }
        let histogram = metrics::histogram!(
            DURATION,
            "method" => method_label(method),
            "route" => route.to_owned(),
            "status" => status.to_string(),
        );
        histogram.record(seconds);
        let mut durations = self
            .durations
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let handles = durations.entry(route.into()).or_default();
        if !handles.iter().any(matches) {
            handles.push(Duration {
                method: method.clone(),
                status,
                histogram,
            });
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

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`HttpMetricsLayer`].
#[derive(Debug, Clone)]
pub(crate) struct HttpMetricsService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B, R> Service<Request<B>> for HttpMetricsService<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method().clone();
        self.shared.active.increment(1.0);
        MetricsFuture {
            inner: self.inner.call(request),
            flight: InFlight {
                shared: self.shared.clone(),
                method,
                start: Instant::now(),
            },
        }
    }
}

/// One request in flight: counted out when dropped, answered or not.
#[derive(Debug)]
struct InFlight {
    shared: Arc<Shared>,
    method: Method,
    start: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.active.decrement(1.0);
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`HttpMetricsService`].
    #[derive(Debug)]
    pub(crate) struct MetricsFuture<F> {
        #[pin]
        inner: F,
        flight: InFlight,
    }
}

impl<F, R, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // A template left by a request whose response never reached its metrics layer is not
        // this request's.
        MATCHED.set(None);
        let response = ready!(this.inner.poll(cx))?;
        let route = MATCHED.take();
        let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
        let flight = &*this.flight;
        flight.shared.record(
            &flight.method,
            route,
            response.status().as_u16(),
            flight.start.elapsed().as_secs_f64(),
        );
        Poll::Ready(Ok(response))
    }
}
