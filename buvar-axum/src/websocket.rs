//! WebSockets that take part in the graceful drain (cargo feature `ws`).
//!
//! A handler takes a [`WebSocketRequest`] (axum's `WebSocketUpgrade`, plus the server's count of
//! upgraded connections) and answers with [`WebSocketRequest::serve`]; the session task talks to
//! the client through a [`WebSocketSession`]:
//!
//! ```
//! use axum::{Router, response::Response, routing::get};
//! use buvar_axum::websocket::{WebSocketRequest, WebSocketSession};
//!
//! async fn echo(request: WebSocketRequest) -> Response {
//!     request.serve(|mut session: WebSocketSession| async move {
//!         while let Some(message) = session.recv().await {
//!             if session.send(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//! }
//!
//! let router: Router = Router::new().route("/echo", get(echo));
//! # let _ = router;
//! ```
//!
//! What the server does to a session:
//! - a drain lets it run: [`WebSocketSession::draining`] resolves, so it may say goodbye and end
//!   early; when the graceful timeout has passed, the server sends a close frame (`1001 Going
//!   Away`) and ends it, and [`WebSocketSession::recv`] returns `None`;
//! - the `[http]` request timeout does not cut it: the timeout bounds the handler, which answers
//!   `101 Switching Protocols` at once; the session runs in a task of its own afterwards;
//! - `write_timeout` still holds: a client that reads nothing for that long is disconnected;
//! - it keeps counting against `max_connections` as the connection of its handshake did; an
//!   upgrade while the server drains is answered `503 Service Unavailable`.
//!
//! A session whose task ends (the session dropped) is closed with `1000 Normal Closure`.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::serving::{UpgradeRefused, UpgradeTracker, UpgradedConnection};

/// How many messages wait between the socket and the session task, each way.
const QUEUED_MESSAGES: usize = 16;

/// How long the closing handshake's frame may take to leave; the supervisor kills a draining
/// worker half a second after the graceful timeout.
const CLOSE_FRAME_TIMEOUT: Duration = Duration::from_millis(250);

/// The extractor of a WebSocket handshake served by the kit (see the [module docs](self)).
///
/// Rejects what axum's `WebSocketUpgrade` rejects (not a WebSocket handshake: `400`, `405`,
/// `426`), and with `503 Service Unavailable` while the server drains. Served by something else than the kit's serving (`axum::serve`),
/// the session simply never drains.
#[derive(Debug)]
pub struct WebSocketRequest {
    upgrade: WebSocketUpgrade,
    connection: Option<UpgradedConnection>,
}

/// Why a [`WebSocketRequest`] was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebSocketRejection {
    /// Not a WebSocket handshake, as axum tells.
    #[error(transparent)]
    Handshake(#[from] axum::extract::ws::rejection::WebSocketUpgradeRejection),
    /// The server drains.
    #[error(transparent)]
    Refused(#[from] UpgradeRefused),
}

impl IntoResponse for WebSocketRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Handshake(rejection) => rejection.into_response(),
            Self::Refused(refused) => {
                (StatusCode::SERVICE_UNAVAILABLE, refused.to_string()).into_response()
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketRequest {
    type Rejection = WebSocketRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state).await?;
        let connection = parts
            .extensions
            .get::<UpgradeTracker>()
            .map(UpgradeTracker::hold)
            .transpose()?;
        Ok(Self {
            upgrade,
            connection,
        })
    }
}

impl WebSocketRequest {
    /// Changes axum's handshake settings (protocols, message and frame sizes, buffers).
    ///
    /// ```
    /// use buvar_axum::websocket::WebSocketRequest;
    ///
    /// fn small(request: WebSocketRequest) -> WebSocketRequest {
    ///     request.configure(|upgrade| upgrade.max_message_size(64 * 1024))
    /// }
    /// # let _ = small;
    /// ```
    pub fn configure(mut self, change: impl FnOnce(WebSocketUpgrade) -> WebSocketUpgrade) -> Self {
        self.upgrade = change(self.upgrade);
        self
    }

    /// Answers the handshake and runs `session` on the upgraded connection in a task of its
    /// own; the connection closes when `session` ends, or when the server's drain ends it.
    pub fn serve<F, Fut>(self, session: F) -> Response
    where
        F: FnOnce(WebSocketSession) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Self {
            upgrade,
            connection,
        } = self;
        upgrade.on_upgrade(move |socket| async move {
            let (to_session, incoming) = mpsc::channel(QUEUED_MESSAGES);
            let (outgoing, from_session) = mpsc::channel(QUEUED_MESSAGES);
            let (draining_tx, draining) = tokio::sync::watch::channel(false);
            let session = session(WebSocketSession {
                incoming,
                outgoing,
                draining,
            });
            // The session reads what the client sent before it left; after that `recv` returns
            // `None` and `send` fails, which ends a session written as in the module docs.
            tokio::join!(
                pump(socket, to_session, from_session, draining_tx, connection),
                session
            );
        })
    }
}

/// The session task's side of a WebSocket connection.
#[derive(Debug)]
pub struct WebSocketSession {
    incoming: mpsc::Receiver<Message>,
    outgoing: mpsc::Sender<Message>,
    draining: tokio::sync::watch::Receiver<bool>,
}

/// The connection closed: the message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the WebSocket connection is closed")]
#[non_exhaustive]
pub struct SessionClosed;

impl WebSocketSession {
    /// The next message from the client (pings and pongs included; axum answers pings by
    /// itself); `None` once the connection closed: by the client, by a failure, or by the
    /// server at the end of its graceful timeout.
    pub async fn recv(&mut self) -> Option<Message> {
        self.incoming.recv().await
    }

    /// Sends `message`; waits while the connection has messages queued.
    pub async fn send(&self, message: Message) -> Result<(), SessionClosed> {
        self.outgoing.send(message).await.map_err(|_| SessionClosed)
    }

    /// Resolves once the server drains: the session still runs until the graceful timeout,
    /// and may end early (with a message of its own to the client, say). Never resolves when
    /// the router is served by something else than the kit. The future borrows nothing, so it
    /// can be awaited beside [`recv`](Self::recv).
    pub fn draining(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut draining = self.draining.clone();
        async move {
            if draining.wait_for(|draining| *draining).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How the pump ended.
enum Ended {
    /// The client closed or the connection failed: nothing more to send.
    Gone,
    /// Closes with a close frame.
    Close(u16, &'static str),
}

/// Carries messages between the socket and the session until either side ends or the drain's
/// graceful timeout passes.
async fn pump(
    socket: WebSocket,
    to_session: mpsc::Sender<Message>,
    mut from_session: mpsc::Receiver<Message>,
    draining: tokio::sync::watch::Sender<bool>,
    connection: Option<UpgradedConnection>,
) {
    let (mut sink, mut stream) = socket.split();
    let mut closing = pin!(async {
        match &connection {
            Some(connection) => connection.closing().await,
            None => std::future::pending().await,
        }
    });
    let mut drain_started = pin!(async {
        match &connection {
            Some(connection) => connection.draining().await,
            None => std::future::pending().await,
        }
    });
    let going_away = Ended::Close(close_code::AWAY, GOING_AWAY);
    let ended = loop {
        tokio::select! {
            biased;
            () = closing.as_mut() => break going_away,
            () = drain_started.as_mut(), if !*draining.borrow() => {
                draining.send_replace(true);
            }
            message = from_session.recv() => {
                let Some(message) = message else {
                    break Ended::Close(close_code::NORMAL, "");
                };
                tokio::select! {
                    biased;
                    () = closing.as_mut() => break going_away,
                    sent = sink.send(message) => if sent.is_err() { break Ended::Gone },
                }
            }
            message = stream.next() => {
                let Some(Ok(message)) = message else { break Ended::Gone };
                tokio::select! {
                    biased;
                    () = closing.as_mut() => break going_away,
                    passed = to_session.send(message) => if passed.is_err() {
                        break Ended::Close(close_code::NORMAL, "");
                    },
                }
            }
        }
    };
    if let Ended::Close(code, reason) = ended {
        close(&mut sink, code, reason).await;
    }
}

const GOING_AWAY: &str = "the server is shutting down";

async fn close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    if tokio::time::timeout(CLOSE_FRAME_TIMEOUT, sink.send(frame))
        .await
        .is_err()
    {
        tracing::debug!("the WebSocket close frame did not leave in time");
    }
}
