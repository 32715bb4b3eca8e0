//! Baseline (a): plain axum on tokio's multi-thread runtime, one route, nothing else.
//!
//! `plain-axum 127.0.0.1:8080` serves `GET /` with `Hello, world`.

use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use buvar_bench::listen_addr;

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
    let app = Router::new().route("/", get(hello));
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: serving failed: {err}");
            ExitCode::FAILURE
        }
    }
}
