//! One hot path in a loop, for a profiler: `valgrind --tool=callgrind` or `perf record` on
//!
//! `target/release/examples/hot <case> [iterations]`
//!
//! with `<case>` one of `extension`, `component`, `config`, `inject`, `bare-router`,
//! `server-router`. Each iteration builds a fresh request (as a server would) and runs the case
//! on it, so the profile shows what one request pays: `extension`, `component`, `config` and
//! `inject` call only the extractor; the router cases send `GET /hello` through
//! `tower::ServiceExt::oneshot`.

use std::future::Future;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::Request;
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Extension, Router};
use buvar_axum::testing::TestApp;
use buvar_axum::{Component, Config, Inject, PrepareExt};
use buvar_bench::{Greeter, GreeterConfig, Greeting, greeter};
use buvar_kit::{BoxError, ConfigSource, Context, Plugin, Prepare, RequestContext};
use tokio::runtime::Runtime;
use tower::ServiceExt;

fn parts(context: Option<&Context>) -> Parts {
    let mut parts = Request::get("/hello")
        .body(())
        .map(|r| r.into_parts().0)
        .unwrap_or_else(|_| unreachable!("a constant request is valid"));
    if let Some(context) = context {
        parts
            .extensions
            .insert(RequestContext::new(context.clone()));
    }
    parts
}

async fn hello() -> &'static str {
    "ok"
}

async fn app(cx: Prepare) -> Result<(), BoxError> {
    cx.routes(Router::new().route("/hello", get(hello)));
    Ok(())
}

fn run<F: Future<Output = bool>>(
    rt: &Runtime,
    iterations: u64,
    mut case: impl FnMut() -> F,
) -> u64 {
    (0..iterations).filter(|_| rt.block_on(case())).count() as u64
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let iterations = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: no runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let plugins = Context::new();
    plugins.add(Greeting("Hello".to_owned()));
    plugins.add(ConfigSource::new());
    plugins.adapters().register_infallible(greeter).singleton();
    let state = Arc::new(Greeting("Hello".to_owned()));
    let ok = match case.as_str() {
        "extension" => run(&rt, iterations, || async {
            let mut parts = parts(None);
            parts.extensions.insert(state.clone());
            Extension::<Arc<Greeting>>::from_request_parts(&mut parts, &())
                .await
                .is_ok()
        }),
        "component" => run(&rt, iterations, || async {
            let mut parts = parts(Some(&plugins));
            Component::<Greeting>::from_request_parts(&mut parts, &())
                .await
                .is_ok()
        }),
        "config" => run(&rt, iterations, || async {
            let mut parts = parts(Some(&plugins));
            Config::<GreeterConfig>::from_request_parts(&mut parts, &())
                .await
                .is_ok()
        }),
        "inject" => run(&rt, iterations, || async {
            let mut parts = parts(Some(&plugins));
            Inject::<Greeter>::from_request_parts(&mut parts, &())
                .await
                .is_ok()
        }),
        "bare-router" | "server-router" => {
            let router = if case == "bare-router" {
                Router::new().route("/hello", get(hello)).with_state(())
            } else {
                rt.block_on(
                    TestApp::new()
                        .load(Plugin::new("app", app))
                        .router(|router| async move { router }),
                )
            };
            run(&rt, iterations, || {
                let router = router.clone();
                async move {
                    let request = Request::get("/hello").body(Body::empty());
                    match request {
                        Ok(request) => router
                            .oneshot(request)
                            .await
                            .is_ok_and(|r| r.status().is_success()),
                        Err(_) => false,
                    }
                }
            })
        }
        other => {
            eprintln!(
                "error: unknown case `{other}`; pass one of extension, component, config, inject, bare-router, server-router"
            );
            return ExitCode::from(2);
        }
    };
    black_box(ok);
    if ok == iterations {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: {} of {iterations} iterations failed",
            iterations - ok
        );
        ExitCode::FAILURE
    }
}
