//! A WebSocket echo: `cargo run --release --example websocket --features ws`, then connect a
//! WebSocket client to `ws://localhost:8080/echo` (`websocat ws://localhost:8080/echo`).
//!
//! Every text or binary message comes back as it was sent. On SIGTERM the server drains: each
//! session is told (this one sends `server draining` once), runs on for up to
//! `[http] graceful_timeout`, then the server closes it with a close frame (`1001`).
//!
//! Flags: `--config FILE`, `--check`, `--print-config`, `--env-help`.

use std::process::ExitCode;

use axum::Router;
use axum::extract::ws::Message;
use axum::response::Response;
use axum::routing::get;
use buvar_axum::websocket::{WebSocketRequest, WebSocketSession};
use buvar_axum::{App, PrepareExt};
use buvar_kit::{BoxError, Plugin, Prepare};

async fn echo(request: WebSocketRequest) -> Response {
    request.serve(echo_session)
}

async fn echo_session(mut session: WebSocketSession) {
    let mut draining = std::pin::pin!(session.draining());
    let mut told = false;
    loop {
        let message = tokio::select! {
            message = session.recv() => message,
            () = draining.as_mut(), if !told => {
                told = true;
                Some(Message::text("server draining"))
            }
        };
        let reply = match message {
            Some(message @ (Message::Text(_) | Message::Binary(_))) => message,
            Some(_) => continue,
            None => return,
        };
        if session.send(reply).await.is_err() {
            return;
        }
    }
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    cx.routes(Router::new().route("/echo", get(echo)));
    Ok(())
}

fn main() -> ExitCode {
    App::new("APP")
        .load(Plugin::new("websocket", prepare))
        .run()
}
