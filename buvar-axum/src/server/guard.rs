//! The request guard: a handler that panics answers `500`, a request body over `[http]
//! body_limit` gets `413`, and a handler slower than `[http] request_timeout` gets `408`.
//!
//! One layer where tower-http's `CatchPanicLayer` and `RequestBodyLimitLayer` and a timeout
//! layer made three. Besides one future less for every layer above to move, it keeps the
//! router's response body as it is: `CatchPanicLayer` boxed every response body twice, and the
//! body limit wrapped it once more.
//!
//! The timer is made only once the handler has to wait: most handlers answer on their first
//! poll, and a timer per request (a clock read, a lock on the runtime's timer wheel to register
//! it and another to remove it) cost them a tenth of the server's throughput. The timeout
//! therefore counts from the handler's first wait; the synchronous work before it is not
//! bounded by a timer anyway. The timer is boxed, so that the futures of the layers above stay
//! small for the requests that never need one.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use buvar_kit::BoxError;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

/// Guards every request with a body limit, a timeout, and a `500` for a panic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardLayer {
    limits: Limits,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    body: usize,
    timeout: Duration,
}

impl GuardLayer {
    pub(crate) fn new(body_limit: usize, timeout: Duration) -> Self {
        Self {
            limits: Limits {
                body: body_limit,
                timeout,
            },
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            limits: self.limits,
        }
    }
}

/// The service [`GuardLayer`] wraps around another.
#[derive(Debug, Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    limits: Limits,
}

impl<S, B> Service<Request<B>> for Guard<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let limit = self.limits.body;
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|length| length > limit) {
            return GuardFuture::answered(payload_too_large());
        }
        // A body that cannot exceed the limit (hyper holds a body to its `content-length`, and
        // an empty one has nothing to send) needs no counting.
        let bounded = request
            .body()
            .size_hint()
            .upper()
            .is_some_and(|upper| upper <= limit as u64);
        let request = if bounded {
            request.map(Body::new)
        } else {
            let limit = declared.map_or(limit, |length| length.min(limit));
            request.map(|body| Body::new(http_body_util::Limited::new(body, limit)))
        };
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(inner) => GuardFuture::Running {
                inner,
                sleep: None,
                timeout: self.limits.timeout,
            },
            Err(panic) => GuardFuture::answered(panicked(&*panic)),
        }
    }
}

pin_project! {
    /// The response future of [`Guard`].
    #[project = Projected]
    pub(crate) enum GuardFuture<F> {
        Running {
            #[pin]
            inner: F,
            sleep: Option<Pin<Box<Sleep>>>,
            timeout: Duration,
        },
        Answered { response: Option<Response<Body>> },
    }
}

impl<F> GuardFuture<F> {
    fn answered(response: Response<Body>) -> Self {
        Self::Answered {
            response: Some(response),
        }
    }
}

impl<F, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (mut inner, sleep, timeout) = match self.project() {
            Projected::Running {
                inner,
                sleep,
                timeout,
            } => (inner, sleep, *timeout),
            Projected::Answered { response } => {
                return match response.take() {
                    Some(response) => Poll::Ready(Ok(response)),
                    None => Poll::Pending,
                };
            }
        };
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Ready(response)) => return Poll::Ready(response),
            Ok(Poll::Pending) => {}
            Err(panic) => return Poll::Ready(Ok(panicked(&*panic))),
        }
        let sleep = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
        Poll::Ready(Ok(response))
    }
}

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// What tower-http's body limit answers: `413` and `length limit exceeded`.
fn payload_too_large() -> Response<Body> {
    plain(StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded")
}

/// What tower-http's catch-panic answers and logs: `500` and `Service panicked`.
fn panicked(panic: &(dyn Any + Send)) -> Response<Body> {
    if let Some(message) = panic.downcast_ref::<String>() {
        tracing::error!("Service panicked: {message}");
    } else if let Some(message) = panic.downcast_ref::<&str>() {
        tracing::error!("Service panicked: {message}");
    } else {
        tracing::error!("Service panicked but `CatchPanic` was unable to downcast the panic info");
    }
    plain(StatusCode::INTERNAL_SERVER_ERROR, "Service panicked")
}

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
    response
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;
    use tower::service_fn;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

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
        let service = GuardLayer::new(1024, SECOND).layer(answering_after(2 * SECOND));
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(text(response).await, "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_waits_less_than_the_timeout_answers() {
        let service = GuardLayer::new(1024, 2 * SECOND).layer(answering_after(SECOND));
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "done");
    }

    #[tokio::test]
    async fn a_handler_that_answers_at_once_makes_no_timer() {
        let mut service = GuardLayer::new(1024, SECOND).layer(answering_after(Duration::ZERO));
        let mut future = std::pin::pin!(service.call(Request::new(Body::empty())));
        let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        assert!(matches!(polled, Poll::Ready(Ok(ref r)) if r.status() == StatusCode::OK));
        assert!(matches!(&*future, GuardFuture::Running { sleep: None, .. }));
    }

    #[tokio::test]
    async fn a_panic_in_the_call_or_the_future_answers_500() {
        let in_call = GuardLayer::new(1024, SECOND).layer(service_fn(|_: Request<Body>| {
            panic!("in call");
            #[allow(unreachable_code)]
            std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty())))
        }));
        let in_future = GuardLayer::new(1024, SECOND).layer(service_fn(|_: Request<Body>| async {
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
            assert_eq!(response.headers()[CONTENT_TYPE], TEXT_PLAIN);
            assert_eq!(text(response).await, "Service panicked");
        }
    }

    /// Reads the whole body, as an extractor would, and answers with its length.
    fn reading_the_body()
    -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
        service_fn(|request: Request<Body>| async move {
            let response = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
                Ok(bytes) => Response::new(Body::from(bytes.len().to_string())),
                Err(_) => plain(StatusCode::PAYLOAD_TOO_LARGE, "over"),
            };
            Ok::<_, Infallible>(response)
        })
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_gets_413_before_the_handler() {
        // The handler would answer `done`.
        let service = GuardLayer::new(4, SECOND).layer(answering_after(Duration::ZERO));
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
        let service = GuardLayer::new(4, SECOND).layer(reading_the_body());
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
}
