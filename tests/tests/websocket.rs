//! buvar-axum's WebSocket example as a real pre-forked service with two workers, and a real
//! WebSocket client (tokio-tungstenite): the echo, the request timeout that must not cut an
//! upgraded connection, and what a graceful drain does to one.

use std::time::{Duration, Instant};

use buvar_tests::protocols::Example;
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An upper bound for what takes about a second: a loaded machine must not fail the test.
const WITHIN: Duration = Duration::from_secs(25);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn start(graceful_timeout: u32, extra: &str) -> Example {
    Example::start(
        "websocket-example",
        &format!(
            "[http]\nport = 0\nforks = 2\nrequest_timeout = 1\n\
             graceful_timeout = {graceful_timeout}\n{extra}\n[log]\nlevel = \"info\"\n"
        ),
        2,
    )
}

async fn connect(addr: &str) -> Client {
    let (client, response) = tokio::time::timeout(
        WITHIN,
        tokio_tungstenite::connect_async(format!("ws://{addr}/echo")),
    )
    .await
    .expect("the handshake ends in time")
    .expect("the handshake succeeds");
    assert_eq!(response.status(), 101);
    client
}

/// The next message that is not a ping or pong.
async fn next(client: &mut Client) -> Message {
    loop {
        let message = tokio::time::timeout(WITHIN, client.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .expect("a well-formed message");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

async fn echoes(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("send");
    assert_eq!(next(client).await, Message::text(text));
}

#[tokio::test]
async fn an_echo_outlives_the_request_timeout() {
    let mut service = start(5, "");
    let mut clients = Vec::new();
    // Several connections, so both workers are likely to serve some.
    for n in 0..4 {
        let mut client = connect(&service.addr).await;
        echoes(&mut client, &format!("hello {n}")).await;
        client
            .send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .unwrap();
        assert_eq!(
            next(&mut client).await,
            Message::binary(vec![0u8, 1, 2, 255])
        );
        clients.push(client);
    }
    // The handler answered `101` at once; the session is not a request the 1 s request timeout
    // bounds. Idle past it, each connection still echoes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for client in &mut clients {
        echoes(client, "still here").await;
    }
    // The client closes: the server answers the closing handshake.
    let mut client = clients.pop().unwrap();
    client.close(None).await.unwrap();
    assert!(matches!(next(&mut client).await, Message::Close(_)));

    // Not a WebSocket handshake: axum's rejection, not a panic.
    let plain = reqwest::get(format!("http://{}/echo", service.addr))
        .await
        .unwrap();
    assert!(plain.status().is_client_error(), "{}", plain.status());

    service.child.signal(Signal::SIGTERM);
    let status = service.child.wait_exit(WITHIN);
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_drain_gives_a_websocket_the_graceful_timeout_then_closes_it_with_a_close_frame() {
    let graceful_timeout = Duration::from_secs(2);
    let mut service = start(2, "");
    let mut clients = Vec::new();
    for n in 0..4 {
        let mut client = connect(&service.addr).await;
        echoes(&mut client, &format!("hello {n}")).await;
        clients.push(client);
    }
    let stopped = Instant::now();
    service.child.signal(Signal::SIGTERM);
    for client in &mut clients {
        // The session is told, and keeps echoing while the drain lasts.
        assert_eq!(next(client).await, Message::text("server draining"));
        echoes(client, "during the drain").await;
    }
    for client in &mut clients {
        let Message::Close(Some(frame)) = next(client).await else {
            panic!("a close frame with a code");
        };
        assert_eq!(frame.code, CloseCode::Away);
        assert!(
            stopped.elapsed() >= graceful_timeout,
            "closed {:?} after SIGTERM, before the graceful timeout",
            stopped.elapsed()
        );
    }
    // Every worker ended its own drain (exit 0), none had to be killed.
    let status = service.child.wait_exit(WITHIN);
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn an_upgraded_connection_takes_over_the_slot_of_its_handshake() {
    // One connection per worker: the upgrade must not need a second slot beside the one its
    // handshake's connection holds.
    let mut service = start(5, "max_connections = 1");
    let mut client = connect(&service.addr).await;
    echoes(&mut client, "one of one").await;
    client.close(None).await.unwrap();
    assert!(matches!(next(&mut client).await, Message::Close(_)));
    service.child.signal(Signal::SIGTERM);
    let status = service.child.wait_exit(WITHIN);
    assert!(status.success(), "{status}");
}
