//! What a gRPC call gets from the kit beyond the server's layers: its deadline (the shorter of
//! the client's `grpc-timeout` and `[http] request_timeout`, answered `DEADLINE_EXCEEDED`),
//! `RESOURCE_EXHAUSTED` for messages over `[http] body_limit`, and the request's head for the
//! adapters that depend on it.

use std::any::TypeId;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::body::Body;
use buvar_kit::di::Adapters;
use buvar_kit::{BoxError, RequestContext};
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, LengthLimitError};
use tonic::Status;
use tower::Service;

/// The header a gRPC client sends its deadline in.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The longest `grpc-timeout` value: eight digits, as the gRPC protocol allows.
const MAX_DIGITS: usize = 8;

/// A `grpc-timeout` header that does not follow the gRPC protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "malformed grpc-timeout header {value:?}: expected 1 to 8 digits and a unit (H, M, S, m, u \
     or n), e.g. \"500m\" for 500 milliseconds"
)]
pub(crate) struct MalformedTimeout {
    value: String,
}

/// How long a call may take: the client's deadline when it has one and it is shorter than
/// `limit`, else `limit`.
pub(crate) fn deadline(
    header: Option<&HeaderValue>,
    limit: Duration,
) -> Result<Duration, MalformedTimeout> {
    let Some(header) = header else {
        return Ok(limit);
    };
    let malformed = || MalformedTimeout {
        value: String::from_utf8_lossy(header.as_bytes()).into_owned(),
    };
    let text = header.to_str().map_err(|_| malformed())?;
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed());
    }
    // At most 99,999,999: every unit fits a `Duration` without overflow.
    let value: u64 = digits.parse().map_err(|_| malformed())?;
    let asked = match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return Err(malformed()),
    };
    Ok(asked.min(limit))
}

/// A tonic service with the deadline of each call, the body limit as a gRPC status, and the
/// request's head in its context when an adapter needs it (as the `Inject` extractor does for
/// routes).
#[derive(Debug, Clone)]
pub(crate) struct GrpcCall<S> {
    inner: S,
    /// `[http] request_timeout`.
    limit: Duration,
    /// `[http] body_limit`.
    body_limit: usize,
}

impl<S> GrpcCall<S> {
    pub(crate) fn new(inner: S, limit: Duration, body_limit: usize) -> Self {
        Self {
            inner,
            limit,
            body_limit,
        }
    }
}

type BoxFuture =
    Pin<Box<dyn Future<Output = Result<Response<tonic::body::Body>, Infallible>> + Send>>;

impl<S> Service<Request<Body>> for GrpcCall<S>
where
    S: Service<Request<Body>, Response = Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let timeout = match deadline(request.headers().get(GRPC_TIMEOUT), self.limit) {
            Ok(timeout) => timeout,
            Err(err) => {
                tracing::debug!(%err, "gRPC call refused");
                let answer = Status::internal(err.to_string()).into_http();
                return Box::pin(std::future::ready(Ok(answer)));
            }
        };
        add_head_if_needed(&request);
        let body_limit = self.body_limit;
        let request =
            request.map(|body| Body::new(body.map_err(move |err| over_the_limit(err, body_limit))));
        let call = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(answer) => answer,
                Err(_elapsed) => Ok(Status::deadline_exceeded(format!(
                    "the call took longer than its deadline of {timeout:?}"
                ))
                .into_http()),
            }
        })
    }
}

/// The body limit's error as `RESOURCE_EXHAUSTED`, which tonic finds in the error's chain and
/// answers with; any other error as it is.
fn over_the_limit(err: axum::Error, body_limit: usize) -> BoxError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(error) = source {
        if error.is::<LengthLimitError>() {
            return Box::new(Status::resource_exhausted(format!(
                "the request's messages are larger than [http] body_limit ({body_limit} bytes)"
            )));
        }
        source = error.source();
    }
    Box::new(err)
}

/// Adds the request's head (without its extensions, which hold the context itself) to the
/// request's context when some adapter depends on it.
fn add_head_if_needed(request: &Request<Body>) {
    let Some(context) = request.extensions().get::<RequestContext>() else {
        return;
    };
    let needed = context
        .nearest()
        .try_get::<Adapters>()
        .is_some_and(|adapters| adapters.requires(TypeId::of::<Parts>()));
    if needed {
        let mut head = Request::new(());
        *head.method_mut() = request.method().clone();
        *head.uri_mut() = request.uri().clone();
        *head.version_mut() = request.version();
        *head.headers_mut() = request.headers().clone();
        context.context().add(head.into_parts().0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    fn parse(value: &str) -> Result<Duration, MalformedTimeout> {
        deadline(Some(&HeaderValue::from_str(value).unwrap()), LIMIT)
    }

    #[test]
    fn every_unit_of_the_protocol_is_read() {
        assert_eq!(parse("1H"), Ok(LIMIT));
        assert_eq!(parse("0M"), Ok(Duration::ZERO));
        assert_eq!(parse("2S"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("500m"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("250u"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("99999999n"), Ok(Duration::from_nanos(99_999_999)));
    }

    #[test]
    fn a_deadline_never_lengthens_the_request_timeout() {
        assert_eq!(parse("99999999H"), Ok(LIMIT));
        assert_eq!(parse("31S"), Ok(LIMIT));
        assert_eq!(deadline(None, LIMIT), Ok(LIMIT));
    }

    #[test]
    fn a_malformed_header_is_refused_naming_it() {
        for bad in [
            "",
            "S",
            "5",
            "5s",
            "123456789S",
            "-1S",
            "1.5S",
            " 5S",
            "5 S",
            "٣S",
        ] {
            let value = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            let err = deadline(Some(&value), LIMIT).unwrap_err().to_string();
            assert!(err.contains("malformed grpc-timeout"), "{bad:?}: {err}");
        }
        let binary = HeaderValue::from_bytes(b"5\xffS").unwrap();
        assert!(deadline(Some(&binary), LIMIT).is_err());
    }
}
