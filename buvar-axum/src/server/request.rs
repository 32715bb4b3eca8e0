//! The request layer: everything the server does for each request, around the router, in one
//! service and one future. In order: the request id ([`request_id`](super::request_id)), the
//! request span and its log lines ([`trace`](super::trace)), the metrics
//! ([`HttpMetrics`]), the guard's body limit, timeout and panics ([`guard`](super::guard)),
//! and the request's context ([`RequestContext`]), current while the handler runs.
//!
//! One layer rather than one per concern, because on a request that does little, the layers
//! themselves were the cost: each moved the request (some 250 bytes) and the futures of the
//! layers inside it into its own, and each read the clock or looked a header up again. Here the
//! clock is read twice (start and head) and the future is built once.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use buvar_kit::current::WithContext;
use buvar_kit::{BoxError, Context, RequestContext};
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;

use super::guard::{self, Deadline, Limits};
use super::request_id::{self, RequestIds};
use super::trace;
use crate::metrics::{HttpMetrics, InFlight};

/// Wraps the router in [`RequestService`].
#[derive(Debug, Clone)]
pub(crate) struct RequestLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    ids: RequestIds,
    limits: Limits,
    /// The plugin context, parent of every request's.
    context: Context,
    /// `None` with `[metrics]` off.
    metrics: Option<HttpMetrics>,
    /// Whether request spans are exported (`otel`): they are then made at info level.
    exporting: bool,
}

impl RequestLayer {
    pub(crate) fn new(
        context: Context,
        limits: Limits,
        metrics: Option<HttpMetrics>,
        exporting: bool,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                ids: RequestIds::new(std::process::id()),
                limits,
                context,
                metrics,
                exporting,
            }),
        }
    }
}

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`RequestLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub(crate) struct RequestService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B> Service<Request<B>> for RequestService<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = RequestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let shared = &*self.shared;
        let start = Instant::now();
        let id = shared.ids.tag(request.headers_mut());
        let span = trace::request_span(&request, &id, shared.exporting);
        let entered = span.enter();
        trace::started();
        let flight = shared
            .metrics
            .as_ref()
            .map(|metrics| metrics.begin(request.method(), start));
        let state = match shared.limits.admit(request) {
            Err(refused) => State::answered(refused.answer()),
            Ok(mut request) => {
                let context = RequestContext::attach(&shared.context, &mut request);
                match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
                    Ok(inner) => State::Running {
                        inner: context.scope(inner),
                        deadline: shared.limits.deadline(),
                    },
                    Err(panic) => State::answered(guard::panicked(&*panic)),
                }
            }
        };
        drop(entered);
        RequestFuture {
            state,
            span,
            id: Some(id),
            flight,
            start,
        }
    }
}

pin_project! {
    /// The response future of [`RequestService`].
    pub(crate) struct RequestFuture<F> {
        #[pin]
        state: State<F>,
        span: Span,
        id: Option<HeaderValue>,
        flight: Option<InFlight>,
        start: Instant,
    }
}

pin_project! {
    #[project = Projected]
    enum State<F> {
        /// The router has the request.
        Running {
            #[pin]
            inner: WithContext<F>,
            deadline: Deadline,
        },
        /// Answered before the router was called (`413`, or a panic in its call); `None` once
        /// the answer is out.
        Answered { response: Option<Response<Body>> },
    }
}

impl<F> State<F> {
    fn answered(response: Response<Body>) -> Self {
        Self::Answered {
            response: Some(response),
        }
    }
}

impl<F, E> Future for RequestFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let response = match this.state.project() {
            Projected::Running {
                mut inner,
                deadline,
            } => match poll_router(this.flight, || {
                catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)))
            }) {
                Ok(Poll::Ready(response)) => response?,
                Ok(Poll::Pending) => {
                    ready!(deadline.poll_expired(cx));
                    guard::timed_out()
                }
                Err(panic) => guard::panicked(&*panic),
            },
            Projected::Answered { response } => match response.take() {
                Some(response) => response,
                None => return Poll::Pending,
            },
        };
        if let Some(flight) = this.flight.take() {
            flight.finish(response.status());
        }
        trace::finished(*this.start, &response);
        let mut response = trace::follow(response, this.span);
        if let Some(id) = this.id.take() {
            request_id::repeat(id, response.headers_mut());
        }
        Poll::Ready(Ok(response))
    }
}

/// Polls the router's future, through the request's metrics when they are on.
fn poll_router<T>(flight: &mut Option<InFlight>, poll: impl FnOnce() -> T) -> T {
    match flight {
        Some(flight) => flight.poll_router(poll),
        None => poll(),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use axum::http::StatusCode;
    use axum::http::header::CONTENT_TYPE;
    use tower::ServiceExt;
    use tower::service_fn;

    use super::*;
    use crate::server::request_id::X_REQUEST_ID;

    const SECOND: Duration = Duration::from_secs(1);

    fn layer(body_limit: usize, timeout: Duration) -> RequestLayer {
        RequestLayer::new(
            Context::new(),
            Limits::new(body_limit, timeout),
            None,
            false,
        )
    }

    fn answering_after(
        delay: Duration,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
    {
        service_fn(move |_: Request<Body>| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(Response::new(Body::from("done")))
        })
    }

    async fn text(response: Response<Body>) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_slower_than_the_timeout_gets_408() {
        let service = layer(1024, SECOND).layer(answering_after(2 * SECOND));
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(response.headers().contains_key(X_REQUEST_ID));
        assert_eq!(text(response).await, "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_waits_less_than_the_timeout_answers() {
        let service = layer(1024, 2 * SECOND).layer(answering_after(SECOND));
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "done");
    }

    #[tokio::test]
    async fn a_handler_that_answers_at_once_makes_no_timer() {
        let mut service = layer(1024, SECOND).layer(answering_after(Duration::ZERO));
        let mut future = std::pin::pin!(service.call(Request::new(Body::empty())));
        let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        assert!(matches!(polled, Poll::Ready(Ok(ref r)) if r.status() == StatusCode::OK));
        assert!(matches!(
            &future.state,
            State::Running { deadline, .. } if !deadline.is_armed()
        ));
    }

    #[tokio::test]
    async fn a_panic_in_the_call_or_the_future_answers_500_with_the_request_id() {
        let in_call = layer(1024, SECOND).layer(service_fn(|_: Request<Body>| {
            panic!("in call");
            #[allow(unreachable_code)]
            std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty())))
        }));
        let in_future = layer(1024, SECOND).layer(service_fn(|_: Request<Body>| async {
            panic!("in future");
            #[allow(unreachable_code)]
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
        for response in [
            in_call.oneshot(Request::new(Body::empty())).await.unwrap(),
            in_future
                .oneshot(Request::new(Body::empty()))
                .await
                .unwrap(),
        ] {
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
            assert!(response.headers().contains_key(X_REQUEST_ID));
            assert_eq!(text(response).await, "Service panicked");
        }
    }

    /// Reads the whole body, as an extractor would, and answers with its length.
    fn reading_the_body()
    -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
        service_fn(|request: Request<Body>| async move {
            let response = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
                Ok(bytes) => Response::new(Body::from(bytes.len().to_string())),
                Err(_) => {
                    let mut over = Response::new(Body::from("over"));
                    *over.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                    over
                }
            };
            Ok::<_, Infallible>(response)
        })
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_gets_413_before_the_handler() {
        // The handler would answer `done`.
        let service = layer(4, SECOND).layer(answering_after(Duration::ZERO));
        let request = Request::post("/")
            .header("content-length", "5")
            .body(Body::from("12345"))
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(text(response).await, "length limit exceeded");
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_is_cut_at_the_limit() {
        let service = layer(4, SECOND).layer(reading_the_body());
        let stream = |text: &'static str| {
            let chunks = text
                .as_bytes()
                .chunks(2)
                .map(|c| Ok::<_, Infallible>(Bytes::from(c)));
            Request::post("/")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap()
        };
        let over = service.clone().oneshot(stream("12345")).await.unwrap();
        assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let within = service.oneshot(stream("1234")).await.unwrap();
        assert_eq!(text(within).await, "4");
    }

    #[tokio::test]
    async fn the_handler_sees_the_request_id_and_its_context_as_the_current_one() {
        let plugins = Context::new();
        plugins.add(5_u16);
        let service = RequestLayer::new(plugins, Limits::new(1024, SECOND), None, false).layer(
            service_fn(|request: Request<Body>| async move {
                let id = request.headers()[X_REQUEST_ID].to_str().unwrap().to_owned();
                let seen = *buvar_kit::get::<u16>().unwrap();
                let own = request.extensions().get::<RequestContext>().is_some();
                Ok::<_, Infallible>(Response::new(Body::from(format!("{id} {seen} {own}"))))
            }),
        );
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        let id = response.headers()[X_REQUEST_ID]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(text(response).await, format!("{id} 5 true"));
        assert!(id.starts_with(&format!("{}-", std::process::id())), "{id}");
    }
}
