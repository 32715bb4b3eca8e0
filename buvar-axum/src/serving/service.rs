//! The service of one connection.
//!
//! hyper calls a connection's service by shared reference, once per request, while a tower
//! service is called by `&mut`; hyper-util's adapter therefore clones the whole stack for every
//! request. Each clone counts up, and its drop counts down, every `Arc` the stack holds (the
//! router, the plugin context, the request ids, ...); on a multi-threaded runtime those counts
//! are shared between the threads. This adapter keeps one copy per connection instead and
//! calls it in place whenever it is ready, which the server's own stack always is.
//! A service that is not ready at once is awaited as hyper-util's adapter would.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use axum::http::{self, Version};

use pin_project_lite::pin_project;
use tower::Service;
use tower::ServiceExt;
use tower::util::Oneshot;

use super::activity::{ConnectionActivity, StreamGuard};

/// A tower service served on one connection (see the module docs).
#[derive(Debug)]
pub(super) struct ConnectionService<S> {
    service: RefCell<S>,
    activity: Arc<ConnectionActivity>,
}

impl<S> ConnectionService<S> {
    pub(super) fn new(service: S, activity: Arc<ConnectionActivity>) -> Self {
        Self {
            service: RefCell::new(service),
            activity,
        }
    }
}

impl<S, B> hyper::service::Service<http::Request<B>> for ConnectionService<S>
where
    S: Service<http::Request<B>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = StreamFuture<ResponseFuture<S, http::Request<B>>>;

    fn call(&self, request: http::Request<B>) -> Self::Future {
        self.activity.request();
        // Only an HTTP/2 stream can be cancelled while its connection serves on.
        let guard =
            (request.version() == Version::HTTP_2).then(|| StreamGuard::new(self.activity.clone()));
        StreamFuture {
            inner: self.respond(request),
            guard,
        }
    }
}

impl<S> ConnectionService<S> {
    fn respond<Request>(&self, request: Request) -> ResponseFuture<S, Request>
    where
        S: Service<Request> + Clone,
    {
        let mut service = self.service.borrow_mut();
        // Readiness is asked without a waker first. A service that is not ready at once (one
        // with a concurrency limit, say) may have queued for capacity: that very service is
        // then awaited with the request's waker, and a fresh clone serves the next requests.
        let mut cx = Context::from_waker(Waker::noop());
        match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => ResponseFuture::Called {
                future: service.call(request),
            },
            Poll::Ready(Err(err)) => ResponseFuture::Failed { error: Some(err) },
            Poll::Pending => {
                let fresh = service.clone();
                let waiting = std::mem::replace(&mut *service, fresh);
                ResponseFuture::Waiting {
                    future: waiting.oneshot(request),
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`ConnectionService`]: an HTTP/2 stream's notes whether it was
    /// answered or cancelled.
    pub(super) struct StreamFuture<F> {
        #[pin]
        inner: F,
        guard: Option<StreamGuard>,
    }
}

impl<F: Future> Future for StreamFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        if let Some(guard) = this.guard {
            guard.finish();
        }
        Poll::Ready(output)
    }
}

pin_project! {
    /// What [`ConnectionService`] answers with.
    #[project = Projected]
    pub(super) enum ResponseFuture<S, Request>
    where
        S: Service<Request>,
    {
        Called { #[pin] future: S::Future },
        Waiting { #[pin] future: Oneshot<S, Request> },
        Failed { error: Option<S::Error> },
    }
}

impl<S, Request> Future for ResponseFuture<S, Request>
where
    S: Service<Request>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Projected::Called { future } => future.poll(cx),
            Projected::Waiting { future } => future.poll(cx),
            Projected::Failed { error } => match error.take() {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::service::Service as _;
    use tower::limit::ConcurrencyLimit;
    use tower::service_fn;

    use super::*;

    /// Counts how often it is cloned.
    #[derive(Debug)]
    struct Counted {
        clones: Arc<AtomicUsize>,
    }

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.clones.fetch_add(1, Ordering::Relaxed);
            Self {
                clones: self.clones.clone(),
            }
        }
    }

    impl Service<http::Request<u32>> for Counted {
        type Response = u32;
        type Error = Infallible;
        type Future = std::future::Ready<Result<u32, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<u32>) -> Self::Future {
            std::future::ready(Ok(request.into_body() * 2))
        }
    }

    fn request(n: u32, version: Version) -> http::Request<u32> {
        let mut request = http::Request::new(n);
        *request.version_mut() = version;
        request
    }

    #[tokio::test]
    async fn a_ready_service_is_called_in_place_without_a_clone_per_request() {
        let clones = Arc::new(AtomicUsize::new(0));
        let activity = Arc::new(ConnectionActivity::new(10));
        let connection = ConnectionService::new(
            Counted {
                clones: clones.clone(),
            },
            activity.clone(),
        );
        assert!(!activity.requested());
        for n in 0..10 {
            let call = connection.call(request(n, Version::HTTP_11));
            assert!(call.guard.is_none());
            assert_eq!(call.await.unwrap(), n * 2);
        }
        assert_eq!(clones.load(Ordering::Relaxed), 0);
        assert!(activity.requested());
    }

    #[tokio::test]
    async fn http2_streams_dropped_unanswered_count_as_cancelled() {
        let activity = Arc::new(ConnectionActivity::new(1));
        let connection = ConnectionService::new(
            Counted {
                clones: Arc::default(),
            },
            activity.clone(),
        );
        assert_eq!(
            connection.call(request(1, Version::HTTP_2)).await.unwrap(),
            2
        );
        for _ in 0..2 {
            drop(connection.call(request(1, Version::HTTP_2)));
        }
        // Two cancelled against one answered plus one allowed: still fine; one more is not.
        drop(connection.call(request(1, Version::HTTP_2)));
        tokio::time::timeout(std::time::Duration::from_secs(5), activity.abusive())
            .await
            .expect("found abusive");
    }

    #[tokio::test]
    async fn a_service_that_is_not_ready_is_awaited_on_a_clone() {
        let limited = ConcurrencyLimit::new(
            service_fn(|request: http::Request<u32>| async move {
                Ok::<_, Infallible>(request.into_body() + 1)
            }),
            1,
        );
        let connection = ConnectionService::new(limited, Arc::new(ConnectionActivity::new(1)));
        // The first call takes the only permit and holds it until its future ends.
        let first = connection.call(request(1, Version::HTTP_11));
        let second = connection.call(request(2, Version::HTTP_11));
        assert!(matches!(second.inner, ResponseFuture::Waiting { .. }));
        assert_eq!(first.await.unwrap(), 2);
        assert_eq!(second.await.unwrap(), 3);
    }
}
