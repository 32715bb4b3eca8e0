//! Request ids: every request carries an `x-request-id` header (the client's, or one made
//! here), and its response repeats it.
//!
//! One layer where `tower_http::request_id` uses two, and no copy of the id in the request's
//! extensions (no `tower_http::request_id::RequestId` to extract: read the header): that pair
//! looked the header up three times and grew every request's extension map, a tenth of what
//! the server's layers cost per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use http::header::{Entry, HeaderName};
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// The request id header.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Ids of the form `<pid>-<n>`: unique across the workers of one service without the cost of
/// random numbers.
#[derive(Debug, Clone)]
pub(crate) struct RequestIdLayer {
    ids: Arc<Ids>,
}

#[derive(Debug)]
struct Ids {
    /// `<pid>-`, written once.
    prefix: Vec<u8>,
    next: AtomicU64,
}

impl RequestIdLayer {
    pub(crate) fn new(pid: u32) -> Self {
        Self::starting_at(pid, 0)
    }

    fn starting_at(pid: u32, next: u64) -> Self {
        Self {
            ids: Arc::new(Ids {
                prefix: format!("{pid}-").into_bytes(),
                next: AtomicU64::new(next),
            }),
        }
    }
}

impl Ids {
    fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // The prefix holds at most 11 bytes (a u32 and a dash), a u64 at most 20 digits.
        let mut id = [0_u8; 32];
        id[..self.prefix.len()].copy_from_slice(&self.prefix);
        let end = write_decimal(&mut id, self.prefix.len(), n);
        HeaderValue::from_bytes(&id[..end])
            .unwrap_or_else(|_| HeaderValue::from_static("invalid-request-id"))
    }
}

/// Writes `value` in decimal at `at`; returns the end.
fn write_decimal(buffer: &mut [u8; 32], at: usize, mut value: u64) -> usize {
    let len = value
        .checked_ilog10()
        .map_or(1, |digits| digits as usize + 1);
    for slot in buffer[at..at + len].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    at + len
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestId {
            inner,
            ids: self.ids.clone(),
        }
    }
}

/// The service [`RequestIdLayer`] wraps around another.
#[derive(Debug, Clone)]
pub(crate) struct RequestId<S> {
    inner: S,
    ids: Arc<Ids>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestId<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // One entry lookup: `get` and then `insert` would hash the header name twice.
        let id = match request.headers_mut().entry(X_REQUEST_ID) {
            Entry::Occupied(id) => id.get().clone(),
            Entry::Vacant(slot) => slot.insert(self.ids.make()).clone(),
        };
        ResponseFuture {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

pin_project! {
    /// The response future of [`RequestId`].
    #[derive(Debug)]
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().entry(X_REQUEST_ID).or_insert(id);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceExt, service_fn};

    use super::*;

    /// Answers with the request id it saw in the body.
    async fn echo(request: Request<()>) -> Result<Response<String>, Infallible> {
        let seen = request
            .headers()
            .get(X_REQUEST_ID)
            .map(|id| id.to_str().unwrap().to_owned());
        Ok(Response::new(seen.unwrap_or_default()))
    }

    #[tokio::test]
    async fn requests_without_an_id_get_pid_dash_counter_and_the_response_repeats_it() {
        let service =
            RequestIdLayer::starting_at(4_294_967_295, u64::MAX - 1).layer(service_fn(echo));
        let response = service.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.body(), "4294967295-18446744073709551614");
        assert_eq!(
            response.headers()[X_REQUEST_ID],
            "4294967295-18446744073709551614"
        );
        let next = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(next.body(), "4294967295-18446744073709551615");
    }

    #[tokio::test]
    async fn the_first_id_is_zero_and_small_numbers_have_no_padding() {
        let service = RequestIdLayer::new(7).layer(service_fn(echo));
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.headers()[X_REQUEST_ID], "7-0");
    }

    #[tokio::test]
    async fn a_client_id_is_kept_and_repeated() {
        let service = RequestIdLayer::new(7).layer(service_fn(echo));
        let request = Request::builder()
            .header("x-request-id", "abc")
            .body(())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.body(), "abc");
        assert_eq!(response.headers()[X_REQUEST_ID], "abc");
    }

    #[tokio::test]
    async fn an_id_the_handler_set_on_the_response_wins() {
        let service = RequestIdLayer::new(7).layer(service_fn(|_: Request<()>| async {
            let mut response = Response::new(String::new());
            response
                .headers_mut()
                .insert(X_REQUEST_ID, HeaderValue::from_static("own"));
            Ok::<_, Infallible>(response)
        }));
        let response = service.oneshot(Request::new(())).await.unwrap();
        assert_eq!(response.headers()[X_REQUEST_ID], "own");
    }
}
