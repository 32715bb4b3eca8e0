//! The request span and the request's log lines, as tower-http's `TraceLayer::new_for_http`
//! makes them with its defaults: `started processing request`, `finished processing request`
//! and `end of stream` at debug level (with the gRPC status for gRPC calls), and `response
//! failed` at error level for a `5xx` answer.
//!
//! The [request layer](super::request) calls these in its own future, where `TraceLayer` was
//! one layer more with three clock reads and a wrapper around every response body. Here the
//! body is wrapped only while the span is recorded: the span then lasts until the body is sent,
//! and its end is logged.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response};
use hyper::body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tracing::Span;

/// The request's span, at debug level unless traces are exported: a span per request costs a
/// tenth of the throughput with a JSON subscriber; `APP_LOG_LEVEL=debug` (or
/// `RUST_LOG=buvar_axum=debug`) turns it on. The fields are only evaluated when it is on.
pub(crate) fn request_span<B>(
    request: &Request<B>,
    request_id: &HeaderValue,
    exporting: bool,
) -> Span {
    #[cfg(feature = "otel")]
    if exporting {
        return crate::otel::request_span(request, request_id.to_str().unwrap_or("-"));
    }
    #[cfg(not(feature = "otel"))]
    let _ = exporting;
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        request_id = request_id.to_str().unwrap_or("-"),
    )
}

/// Logs the request's start (inside its span).
pub(crate) fn started() {
    tracing::debug!("started processing request");
}

/// Logs the response's head (inside the request's span); a `5xx` is logged as a failure.
pub(crate) fn finished<B>(start: Instant, response: &Response<B>) {
    tracing::debug!(
        latency = %Millis(start.elapsed()),
        status = status(response),
        "finished processing request"
    );
    let status = response.status();
    if status.is_server_error() {
        tracing::error!(
            classification = %format_args!("Status code: {status}"),
            latency = %Millis(start.elapsed()),
            "response failed"
        );
    }
}

/// The status to log: a gRPC call's `grpc-status` (when it answers in the head), else the
/// HTTP status.
fn status<B>(response: &Response<B>) -> Option<i32> {
    let grpc = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        grpc_status(response.headers())
    } else {
        Some(i32::from(response.status().as_u16()))
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status").map(|value| {
        value
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// The response, its body wrapped while the span is recorded (see the module docs).
pub(crate) fn follow(response: Response<Body>, span: &Span) -> Response<Body> {
    if span.is_disabled() {
        return response;
    }
    let span = span.clone();
    response.map(|body| {
        Body::new(Traced {
            inner: body,
            span,
            stream_start: Some(Instant::now()),
        })
    })
}

/// A duration shown in whole milliseconds, as tower-http's default lines show it.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0.as_millis())
    }
}

pin_project! {
    /// A response body that keeps the request's span until it is sent, and logs its end.
    struct Traced {
        #[pin]
        inner: Body,
        span: Span,
        // `None` once the end is logged.
        stream_start: Option<Instant>,
    }
}

impl HttpBody for Traced {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let _entered = this.span.enter();
        let frame = ready!(this.inner.poll_frame(cx));
        let trailers = match &frame {
            Some(Ok(frame)) => frame.trailers_ref(),
            _ => None,
        };
        if (frame.is_none() || trailers.is_some())
            && let Some(start) = this.stream_start.take()
        {
            tracing::debug!(
                stream_duration = %Millis(start.elapsed()),
                status = trailers.and_then(grpc_status),
                "end of stream"
            );
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_left_alone_when_no_span_is_recorded() {
        let response = follow(Response::new(Body::from("done")), &Span::none());
        assert_eq!(response.body().size_hint().exact(), Some(4));
    }

    #[test]
    fn a_grpc_call_logs_its_grpc_status_and_any_other_response_its_http_status() {
        let plain = Response::builder().status(404).body(()).unwrap();
        assert_eq!(status(&plain), Some(404));
        let grpc = Response::builder()
            .header(CONTENT_TYPE, "application/grpc+proto")
            .header("grpc-status", "5")
            .body(())
            .unwrap();
        assert_eq!(status(&grpc), Some(5));
        let streaming = Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        assert_eq!(status(&streaming), None, "its status comes in the trailers");
    }
}
