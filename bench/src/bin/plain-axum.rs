//! Baseline (a): plain axum on tokio's multi-thread runtime, one route, nothing else.
//!
//! `plain-axum 127.0.0.1:8080` serves `GET /` with `Hello, world`. With `PLAIN_AXUM_LAYERS=1`
//! (diagnostic variant i) the route gets, the way axum's docs add them, the tower-http layers
//! that stand for what buvar's server plugin does on every request: request ids both ways,
//! a trace span, catch-panic, a body limit and a request timeout.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::routing::get;
use buvar_bench::listen_addr;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Request ids from a counter, as cheap as tower-http's `MakeRequestId` allows.
#[derive(Clone, Default)]
struct CounterId(Arc<AtomicU64>);

impl MakeRequestId for CounterId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Some(RequestId::new(HeaderValue::from(n)))
    }
}

async fn hello() -> &'static str {
    "Hello, world"
}

#[tokio::main]
async fn main() -> ExitCode {
    let addr = match listen_addr() {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot bind {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut app = Router::new().route("/", get(hello));
    if std::env::var_os("PLAIN_AXUM_LAYERS").is_some_and(|v| v == "1") {
        app = app.layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(CounterId::default()))
                .layer(TraceLayer::new_for_http())
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(CatchPanicLayer::new())
                .layer(RequestBodyLimitLayer::new(2 * 1024 * 1024))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                )),
        );
    }
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: serving failed: {err}");
            ExitCode::FAILURE
        }
    }
}
