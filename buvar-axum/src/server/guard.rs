//! The request guard's policy: a request body over `[http] body_limit` gets `413`, a handler
//! slower than `[http] request_timeout` gets `408`, and a handler that panics answers `500`.
//! The [request layer](super::request) applies it, in the same future as the rest of a
//! request's bookkeeping.
//!
//! These replace tower-http's `CatchPanicLayer`, `RequestBodyLimitLayer` and a timeout layer,
//! with the same answers. Unlike them they keep the router's response body as it is:
//! `CatchPanicLayer` boxed every response body twice, and the body limit wrapped it once more.
//!
//! The timer ([`Deadline`]) is made only once the handler has to wait: most handlers answer on
//! their first poll, and a timer per request (a clock read, a lock on the runtime's timer wheel
//! to register it and another to remove it) cost them a tenth of the server's throughput. The
//! timeout therefore counts from the handler's first wait; the synchronous work before it is not
//! bounded by a timer anyway. The timer is boxed, so that the request's future stays small for
//! the requests that never need one.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::response::IntoResponse;
use buvar_kit::BoxError;
use http::{Request, Response, StatusCode};
use tokio::time::Sleep;

/// `[http] body_limit` and `[http] request_timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    body: usize,
    timeout: Duration,
}

impl Limits {
    pub(crate) fn new(body_limit: usize, timeout: Duration) -> Self {
        Self {
            body: body_limit,
            timeout,
        }
    }

    /// The request with its body held to the limit, or the refusal of a declared length over
    /// the limit.
    pub(crate) fn admit<B>(&self, request: Request<B>) -> Result<Request<Body>, BodyTooLarge>
    where
        B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
    {
        let limit = self.body;
        // A body that cannot exceed the limit needs no counting: hyper holds a body to its
        // `content-length` (so a declared length over the limit is not such a body), and an
        // empty one has nothing to send. Most requests end here, without a header lookup.
        let bounded = request
            .body()
            .size_hint()
            .upper()
            .is_some_and(|upper| upper <= limit as u64);
        if bounded {
            return Ok(request.map(Body::new));
        }
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(BodyTooLarge);
        }
        let limit = declared.map_or(limit, |length| length.min(limit));
        Ok(request.map(|body| Body::new(http_body_util::Limited::new(body, limit))))
    }

    /// The request's deadline, not armed yet.
    pub(crate) fn deadline(&self) -> Deadline {
        Deadline {
            timeout: self.timeout,
            sleep: None,
        }
    }
}

/// A request that declared a body over `[http] body_limit`.
#[derive(Debug)]
pub(crate) struct BodyTooLarge;

impl BodyTooLarge {
    /// What tower-http's body limit answers: `413` and `length limit exceeded`.
    pub(crate) fn answer(self) -> Response<Body> {
        (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response()
    }
}

/// `[http] request_timeout` of one request: the timer is made on the handler's first wait.
#[derive(Debug)]
pub(crate) struct Deadline {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Ready once the timeout has passed since the first call.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let timeout = self.timeout;
        self.sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
    }

    #[cfg(test)]
    pub(crate) fn is_armed(&self) -> bool {
        self.sleep.is_some()
    }
}

/// What a handler slower than the timeout answers: `408` with no body.
pub(crate) fn timed_out() -> Response<Body> {
    StatusCode::REQUEST_TIMEOUT.into_response()
}

/// What tower-http's catch-panic answers and logs: `500` and `Service panicked`.
pub(crate) fn panicked(panic: &(dyn Any + Send)) -> Response<Body> {
    if let Some(message) = panic.downcast_ref::<String>() {
        tracing::error!("Service panicked: {message}");
    } else if let Some(message) = panic.downcast_ref::<&str>() {
        tracing::error!("Service panicked: {message}");
    } else {
        tracing::error!("Service panicked but `CatchPanic` was unable to downcast the panic info");
    }
    (StatusCode::INTERNAL_SERVER_ERROR, "Service panicked").into_response()
}
