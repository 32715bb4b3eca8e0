//! The example service: `cargo run --release --example hello`, then
//! `curl localhost:8080/greet/ada`.
//!
//! - `GET /` answers `Hello, world`;
//! - `GET /greet/{name}` answers through an injected `Greeter`, made by an adapter from the
//!   `[greeter]` config section (`APP_GREETER_GREETING=Hi` changes the greeting).
//!
//! Flags: `--config FILE`, `--check`, `--print-config`, `--env-help`.

use std::process::ExitCode;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use buvar_axum::{App, Inject, PrepareExt};
use buvar_kit::{BoxError, Config, Plugin, Prepare};
use serde::{Deserialize, Serialize};

/// The `[greeter]` section.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
struct GreeterConfig {
    greeting: String,
}

impl Default for GreeterConfig {
    fn default() -> Self {
        Self {
            greeting: "Hello".to_owned(),
        }
    }
}

buvar_kit::section!(GreeterConfig, "greeter", default);

struct Greeter {
    greeting: String,
}

impl Greeter {
    fn greet(&self, name: &str) -> String {
        format!("{}, {name}", self.greeting)
    }
}

/// The adapter: `Greeter` depends on its config section.
fn greeter(config: Config<GreeterConfig>) -> Greeter {
    Greeter {
        greeting: config.greeting.clone(),
    }
}

async fn hello() -> &'static str {
    "Hello, world"
}

async fn greet(Inject(greeter): Inject<Greeter>, Path(name): Path<String>) -> String {
    greeter.greet(&name)
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    cx.adapters().register_infallible(greeter).singleton();
    cx.routes(
        Router::new()
            .route("/", get(hello))
            .route("/greet/{name}", get(greet)),
    );
    Ok(())
}

fn main() -> ExitCode {
    App::new("APP")
        .section::<GreeterConfig>()
        .load(Plugin::new("hello", prepare))
        .run()
}
