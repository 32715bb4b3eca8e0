//! An [`App`] with before-fork steps, for `tests/tests/before_fork.rs`; every `[http]`
//! setting comes from `BF_*` variables. What the steps do is chosen by the environment:
//!
//! - `record` appends this process's pid to the file named by `BF_STEP_LOG`, if set;
//! - `migrate` fails, quoting a database URL with a password, when `BF_STEP_FAIL` is set;
//! - `leak` leaves a thread running when `BF_STEP_LEAK` is set.
//!
//! Its one route, `GET /pid`, answers the worker's pid.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use buvar_axum::{App, PrepareExt};
use buvar_kit::{BoxError, ConfigSource, Context, Plugin, Prepare};

async fn record(ctx: Context) -> Result<(), BoxError> {
    // The step sees the config, and its runtime has timers.
    ctx.get::<ConfigSource>()?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    if let Some(path) = std::env::var_os("BF_STEP_LOG") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{}", std::process::id())?;
    }
    Ok(())
}

async fn migrate(_: Context) -> Result<(), BoxError> {
    if std::env::var_os("BF_STEP_FAIL").is_some() {
        return Err("cannot connect to postgres://app:hunter2@db.invalid:5432/app".into());
    }
    Ok(())
}

async fn leak(_: Context) -> Result<(), BoxError> {
    if std::env::var_os("BF_STEP_LEAK").is_some() {
        std::thread::spawn(|| {
            loop {
                std::thread::park();
            }
        });
    }
    Ok(())
}

async fn routes(cx: Prepare) -> Result<(), BoxError> {
    cx.routes(Router::new().route("/pid", get(|| async { std::process::id().to_string() })));
    Ok(())
}

fn main() -> ExitCode {
    App::new("BF")
        .before_fork("record", record)
        .before_fork("migrate", migrate)
        .before_fork("leak", leak)
        .load(Plugin::new("routes", routes))
        .run()
}
