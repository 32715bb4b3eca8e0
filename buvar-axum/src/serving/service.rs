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
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;
use tower::Service;
use tower::ServiceExt;
use tower::util::Oneshot;

/// A tower service served on one connection (see the module docs).
#[derive(Debug)]
pub(super) struct ConnectionService<S> {
    service: RefCell<S>,
}

impl<S> ConnectionService<S> {
    pub(super) fn new(service: S) -> Self {
        Self {
            service: RefCell::new(service),
        }
    }
}

impl<S, Request> hyper::service::Service<Request> for ConnectionService<S>
where
    S: Service<Request> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Request>;

    fn call(&self, request: Request) -> Self::Future {
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
    /// The response future of [`ConnectionService`].
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
    use std::sync::Arc;
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

    impl Service<u32> for Counted {
        type Response = u32;
        type Error = Infallible;
        type Future = std::future::Ready<Result<u32, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: u32) -> Self::Future {
            std::future::ready(Ok(request * 2))
        }
    }

    #[tokio::test]
    async fn a_ready_service_is_called_in_place_without_a_clone_per_request() {
        let clones = Arc::new(AtomicUsize::new(0));
        let connection = ConnectionService::new(Counted {
            clones: clones.clone(),
        });
        for n in 0..10 {
            assert_eq!(connection.call(n).await.unwrap(), n * 2);
        }
        assert_eq!(clones.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_service_that_is_not_ready_is_awaited_on_a_clone() {
        let limited = ConcurrencyLimit::new(
            service_fn(|n: u32| async move { Ok::<_, Infallible>(n + 1) }),
            1,
        );
        let connection = ConnectionService::new(limited);
        // The first call takes the only permit and holds it until its future ends.
        let first = connection.call(1);
        let second = connection.call(2);
        assert!(matches!(second, ResponseFuture::Waiting { .. }));
        assert_eq!(first.await.unwrap(), 2);
        assert_eq!(second.await.unwrap(), 3);
    }
}
