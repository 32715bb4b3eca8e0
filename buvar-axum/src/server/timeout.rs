//! The request timeout: `408 Request Timeout` for a handler that takes longer than
//! `[http] request_timeout`.
//!
//! Unlike `tower_http::timeout`, the timer is made only once the handler has to wait: most
//! handlers answer on their first poll, and a timer per request (a clock read, a lock on the
//! runtime's timer wheel to register it and another to remove it) cost them a tenth of the
//! server's throughput. The timeout therefore counts from the handler's first wait; the
//! synchronous work before it is not bounded by a timer anyway.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

/// Answers `408` when the inner service's response takes longer than the timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestTimeoutLayer {
    timeout: Duration,
}

impl RequestTimeoutLayer {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service [`RequestTimeoutLayer`] wraps around another.
#[derive(Debug, Clone)]
pub(crate) struct RequestTimeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S, Request, B> Service<Request> for RequestTimeout<S>
where
    S: Service<Request, Response = Response<B>>,
    B: Default,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(request),
            sleep: None,
            timeout: self.timeout,
        }
    }
}

pin_project! {
    /// The response future of [`RequestTimeout`].
    #[derive(Debug)]
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        timeout: Duration,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(response) = this.inner.poll(cx) {
            return Poll::Ready(response);
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep(*this.timeout)));
        }
        if let Some(sleep) = this.sleep.as_pin_mut() {
            ready!(sleep.poll(cx));
        }
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;
    use tower::service_fn;

    use super::*;

    fn answering_after(
        delay: Duration,
    ) -> impl Service<(), Response = Response<String>, Error = Infallible, Future: Send> + Clone
    {
        service_fn(move |()| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(Response::new("done".to_owned()))
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_slower_than_the_timeout_gets_408() {
        let service = RequestTimeoutLayer::new(Duration::from_secs(1))
            .layer(answering_after(Duration::from_secs(2)));
        let response = service.oneshot(()).await.unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.body(), "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_that_waits_less_than_the_timeout_answers() {
        let service = RequestTimeoutLayer::new(Duration::from_secs(2))
            .layer(answering_after(Duration::from_secs(1)));
        let response = service.oneshot(()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), "done");
    }

    #[tokio::test]
    async fn a_handler_that_answers_at_once_makes_no_timer() {
        let mut service =
            RequestTimeoutLayer::new(Duration::from_secs(1)).layer(answering_after(Duration::ZERO));
        let mut future = std::pin::pin!(service.call(()));
        let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        assert!(matches!(polled, Poll::Ready(Ok(ref r)) if r.body() == "done"));
        assert!(future.sleep.is_none());
    }
}
