//! The service of one connection.
//!
//! hyper calls a connection's service by shared reference, once per request, while a tower
//! service is called by `&mut`; hyper-util's adapter therefore clones the whole stack for every
//! request. Each clone counts up, and its drop counts down, every `Arc` the stack holds (the
//! router, the plugin context, the request ids, ...); on a multi-threaded runtime those counts
//! are shared between the threads. This adapter keeps one copy per connection instead and
//! calls it in place whenever it is ready, which the server's own stack always is.
//! A service that is not ready at once is awaited as hyper-util's adapter would.
//!
//! What the server adds to each request and response of a connection ([`PerRequest`]) is done
//! here too, rather than in layers of their own whose futures every request would build and
//! move.

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

use super::Tally;
use super::activity::{ConnectionActivity, StreamGuard};
use super::upgrade::UpgradeTracker;

/// A tower service served on one connection (see the module docs).
#[derive(Debug)]
pub(super) struct ConnectionService<S> {
    service: RefCell<S>,
    activity: Arc<ConnectionActivity>,
    per_request: PerRequest,
}

/// What the server adds to every request of one connection, and to its response.
#[derive(Debug)]
pub(super) struct PerRequest {
    /// Handed to the requests hyper can upgrade.
    upgrades: UpgradeTracker,
    /// The TLS client's certificate, on every request.
    #[cfg(feature = "tls")]
    client: Option<crate::tls::ClientCertificate>,
    /// Counts the responses and closes connections once draining.
    tally: Arc<Tally>,
}

impl PerRequest {
    pub(super) fn new(upgrades: UpgradeTracker, tally: Arc<Tally>) -> Self {
        Self {
            upgrades,
            #[cfg(feature = "tls")]
            client: None,
            tally,
        }
    }

    #[cfg(feature = "tls")]
    pub(super) fn with_client(self, client: Option<crate::tls::ClientCertificate>) -> Self {
        Self { client, ..self }
    }

    fn attach<B>(&self, request: &mut http::Request<B>) {
        self.upgrades.attach(request);
        #[cfg(feature = "tls")]
        if let Some(client) = &self.client {
            request.extensions_mut().insert(client.clone());
        }
    }
}

impl<S> ConnectionService<S> {
    pub(super) fn new(
        service: S,
        activity: Arc<ConnectionActivity>,
        per_request: PerRequest,
    ) -> Self {
        Self {
            service: RefCell::new(service),
            activity,
            per_request,
        }
    }
}

impl<S, B, R> hyper::service::Service<http::Request<B>> for ConnectionService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = StreamFuture<ResponseFuture<S, http::Request<B>>>;

    fn call(&self, mut request: http::Request<B>) -> Self::Future {
        self.activity.request();
        self.per_request.attach(&mut request);
        // Only an HTTP/2 stream can be cancelled while its connection serves on.
        let guard =
            (request.version() == Version::HTTP_2).then(|| StreamGuard::new(self.activity.clone()));
        StreamFuture {
            inner: self.respond(request),
            guard,
            tally: self.per_request.tally.clone(),
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
    /// The response future of [`ConnectionService`]: passes the response through the tally,
    /// and an HTTP/2 stream's notes whether it was answered or cancelled.
    pub(super) struct StreamFuture<F> {
        #[pin]
        inner: F,
        guard: Option<StreamGuard>,
        tally: Arc<Tally>,
    }
}

impl<F, R, E> Future for StreamFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        if let Some(guard) = this.guard {
            guard.finish();
        }
        Poll::Ready(output.map(|response| this.tally.response(response)))
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
        type Response = http::Response<u32>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<http::Response<u32>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<u32>) -> Self::Future {
            std::future::ready(Ok(http::Response::new(request.into_body() * 2)))
        }
    }

    /// What a connection of a server that neither drains nor counts adds to its requests.
    fn per_request() -> PerRequest {
        let stop = tokio_util::sync::CancellationToken::new();
        let upgrades = UpgradeTracker::new(
            tokio_util::task::TaskTracker::new(),
            stop.clone(),
            stop.clone(),
        );
        let tally = Tally {
            budget: None,
            answered: std::sync::atomic::AtomicU64::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            retire: stop,
        };
        PerRequest::new(upgrades.connection(None), Arc::new(tally))
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
            per_request(),
        );
        assert!(!activity.requested());
        for n in 0..10 {
            let call = connection.call(request(n, Version::HTTP_11));
            assert!(call.guard.is_none());
            assert_eq!(call.await.unwrap().into_body(), n * 2);
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
            per_request(),
        );
        assert_eq!(
            connection
                .call(request(1, Version::HTTP_2))
                .await
                .unwrap()
                .into_body(),
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
                Ok::<_, Infallible>(http::Response::new(request.into_body() + 1))
            }),
            1,
        );
        let connection =
            ConnectionService::new(limited, Arc::new(ConnectionActivity::new(1)), per_request());
        // The first call takes the only permit and holds it until its future ends.
        let first = connection.call(request(1, Version::HTTP_11));
        let second = connection.call(request(2, Version::HTTP_11));
        assert!(matches!(second.inner, ResponseFuture::Waiting { .. }));
        assert_eq!(first.await.unwrap().into_body(), 2);
        assert_eq!(second.await.unwrap().into_body(), 3);
    }
}
