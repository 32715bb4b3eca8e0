//! Variants (c), (d) and (e): a buvar-axum service, configured like any other by `APP_*`
//! variables (`APP_HTTP_PORT`, `APP_HTTP_FORKS`, ...).
//!
//! `GET /` answers `Hello, world` (variants c and d); with `BENCH_HANDLER=extract` its handler
//! first uses all three extractors, `Component<T>`, `Inject<T>` and `Config<T>` (variant e).
//! One path for both, so that routing and parsing cost the same.
//!
//! With `BENCH_SERIES=N`, each worker records N series of `bench_series_total` at start (the
//! scrape benchmark).

use std::hint::black_box;
use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use buvar_axum::{App, Component, Config, Inject, PrepareExt};
use buvar_bench::{Greeter, GreeterConfig, Greeting, greeter};
use buvar_kit::{BoxError, Plugin, Prepare};

async fn hello() -> &'static str {
    "Hello, world"
}

/// Answers as `hello` does, so that (e) against (d) measures the extractors alone, not the
/// handler's own work; `black_box` keeps the extracted values from being optimised away.
async fn extract(
    Component(greeting): Component<Greeting>,
    Inject(greeter): Inject<Greeter>,
    Config(config): Config<GreeterConfig>,
) -> &'static str {
    black_box((greeting, greeter, config));
    "Hello, world"
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    cx.context().add(Greeting("Hello".to_owned()));
    cx.adapters().register_infallible(greeter).singleton();
    let handler = if std::env::var_os("BENCH_HANDLER").is_some_and(|v| v == "extract") {
        get(extract)
    } else {
        get(hello)
    };
    cx.routes(Router::new().route("/", handler));
    let series: u32 = match std::env::var("BENCH_SERIES") {
        Ok(n) => n.parse()?,
        Err(_) => 0,
    };
    for n in 0..series {
        metrics::counter!("bench_series_total", "series" => n.to_string()).increment(1);
    }
    Ok(())
}

fn main() -> ExitCode {
    App::new("APP")
        .section::<GreeterConfig>()
        .load(Plugin::new("bench", prepare))
        .run()
}
