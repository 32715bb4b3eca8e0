//! Baseline (b): actix-web with its default worker count (one per available CPU), one route.
//!
//! `actix 127.0.0.1:8080` serves `GET /` with `Hello, world`.

use std::process::ExitCode;

use actix_web::{App, HttpServer, web};
use buvar_bench::listen_addr;

async fn hello() -> &'static str {
    "Hello, world"
}

#[actix_web::main]
async fn main() -> ExitCode {
    let addr = match listen_addr() {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let server = match HttpServer::new(|| App::new().route("/", web::get().to(hello))).bind(addr) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("error: cannot bind {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    match server.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: serving failed: {err}");
            ExitCode::FAILURE
        }
    }
}
