//! The program of the binary-upgrade tests (`tests/tests/upgrade.rs`), built as one small
//! binary per [`Build`]: the builds differ in code, never in environment, since an upgrade
//! starts the new binary with the old one's environment. Settings come from `UP_*` variables.
//!
//! Its one route, `GET /`, answers the build's name.

use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use buvar_axum::{App, PrepareExt, Supervised};
use buvar_kit::{BoxError, Plugin, Prepare};

/// Which build this binary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Answers `v1`.
    V1,
    /// Answers `v2`.
    V2,
    /// Exits with status 1 before doing anything.
    ExitsAtOnce,
    /// Its workers never become ready: their plugin never finishes preparing in a worker
    /// (the start-up check, which prepares it too, passes).
    NeverReady,
}

impl Build {
    fn answer(self) -> &'static str {
        match self {
            Build::V1 => "v1",
            Build::V2 | Build::ExitsAtOnce | Build::NeverReady => "v2",
        }
    }
}

/// The build's `main`.
pub fn main(build: Build) -> ExitCode {
    if build == Build::ExitsAtOnce {
        eprintln!("error: this build exits at once");
        return ExitCode::FAILURE;
    }
    let plugin = Plugin::new("answer", move |cx: Prepare| async move {
        // Only a worker has a supervisor to tell it is ready; the start-up check has none.
        let in_worker = cx.context().get::<dyn Supervised>().is_ok();
        if build == Build::NeverReady && in_worker {
            std::future::pending::<()>().await;
        }
        cx.routes(Router::new().route("/", get(move || async move { build.answer() })));
        Ok::<(), BoxError>(())
    });
    App::new("UP").load(plugin).run()
}
