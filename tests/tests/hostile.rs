//! Hostile HTTP clients against a real pre-forked `Service`: slow headers, huge bodies, slow
//! handlers, garbage, and more connections than a worker takes. No worker may crash.

use std::time::{Duration, Instant};

use buvar_tests::service::Service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(extra: &str) -> String {
    format!(
        "[http]\nport = 0\nforks = 2\ngraceful_timeout = 2\nheader_read_timeout = 1\n\
         request_timeout = 1\nbody_limit = 1024\n{extra}\n[log]\nlevel = \"info\"\n"
    )
}

/// Everything the server sends until it closes the connection (or `within` passes).
async fn read_all(stream: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads until `complete` says what arrived is whole; panics after `within` or at a close.
async fn read_until(
    stream: &mut TcpStream,
    within: Duration,
    complete: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if complete(&text) {
            return text;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed before a response: {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Reads until one whole response head arrived; panics after `within`.
async fn read_head(stream: &mut TcpStream, within: Duration) -> String {
    read_until(stream, within, |text| text.contains("\r\n\r\n")).await
}

/// Reads one whole response with a `content-length` body; panics after `within`.
async fn read_response(stream: &mut TcpStream, within: Duration) -> String {
    read_until(stream, within, |text| {
        text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |n| n.parse::<usize>().expect("a content-length"));
            body.len() >= length
        })
    })
    .await
}

fn assert_workers_unchanged(service: &Service, before: &[i32]) {
    assert_eq!(service.workers(), before, "a worker died or was replaced");
}

/// Sends a request head a byte every 50 ms until the server closes the connection; returns how
/// long that took and what the server sent meanwhile. Panics if the whole head went through.
async fn trickle_until_cut(stream: &mut TcpStream) -> (Duration, String) {
    let (mut read, mut write) = stream.split();
    let head = format!(
        "GET /pid HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n",
        "a".repeat(200)
    );
    let started = Instant::now();
    let trickle = async {
        for byte in head.bytes() {
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            // The client's pace, not synchronisation: 200+ bytes take over 10 s this way.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut got = Vec::new();
    let closed = async {
        let _ = read.read_to_end(&mut got).await;
    };
    tokio::select! {
        () = trickle => panic!("the whole head went through without being cut off"),
        () = closed => {}
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&got).into_owned(),
    )
}

#[tokio::test]
async fn a_client_trickling_its_headers_byte_by_byte_is_cut_off_at_the_timeout() {
    let service = Service::start(&config(""), &[], 2);
    let workers = service.workers();
    let mut stream = TcpStream::connect(&service.addr).await.unwrap();
    let (elapsed, answer) = trickle_until_cut(&mut stream).await;
    assert!(
        elapsed < Duration::from_secs(4),
        "cut off only after {elapsed:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_workers_unchanged(&service, &workers);
}

#[tokio::test]
async fn a_keep_alive_connection_outlives_a_request_longer_than_the_header_timeout_and_its_next_trickled_head_is_cut()
 {
    let service = Service::start(
        "[http]\nport = 0\nforks = 1\nheader_read_timeout = 1\nrequest_timeout = 10\n",
        &[],
        1,
    );
    let workers = service.workers();
    let mut stream = TcpStream::connect(&service.addr).await.unwrap();
    // The connection's header timer was armed for this head and is due during the handler.
    stream
        .write_all(b"GET /slow?ms=2500 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let slow = read_response(&mut stream, Duration::from_secs(8)).await;
    assert!(
        slow.starts_with("HTTP/1.1 200") && slow.ends_with("slow done"),
        "{slow}"
    );
    for _ in 0..3 {
        stream
            .write_all(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let next = read_response(&mut stream, Duration::from_secs(3)).await;
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
    }
    let (elapsed, answer) = trickle_until_cut(&mut stream).await;
    // Neither at a deadline left over from an earlier head, nor late.
    assert!(
        (Duration::from_millis(500)..Duration::from_secs(4)).contains(&elapsed),
        "cut off after {elapsed:?}, where the header read timeout is 1 s"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_workers_unchanged(&service, &workers);
}

#[tokio::test]
async fn a_huge_declared_body_gets_413_before_it_is_sent() {
    let service = Service::start(&config(""), &[], 2);
    let workers = service.workers();
    let mut stream = TcpStream::connect(&service.addr).await.unwrap();
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\nsome bytes",
        )
        .await
        .unwrap();
    // 10 GB were announced and only a few bytes sent: the answer cannot wait for the body.
    let head = read_head(&mut stream, Duration::from_secs(3)).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert_workers_unchanged(&service, &workers);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413() {
    let service = Service::start(&config(""), &[], 2);
    let workers = service.workers();
    let mut stream = TcpStream::connect(&service.addr).await.unwrap();
    let chunk = "x".repeat(800);
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
         320\r\n{chunk}\r\n320\r\n{chunk}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream, Duration::from_secs(3)).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert_workers_unchanged(&service, &workers);
}

#[tokio::test]
async fn a_request_past_the_request_timeout_gets_408() {
    let service = Service::start(&config(""), &[], 2);
    let workers = service.workers();
    let mut stream = TcpStream::connect(&service.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /slow?ms=10000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_workers_unchanged(&service, &workers);
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_workers_live_on() {
    let service = Service::start(&config(""), &[], 2);
    let workers = service.workers();
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /\x00\x01 HTTP/1.1\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(&service.addr).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let answer = read_all(&mut stream, Duration::from_secs(3)).await;
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 505"),
            "{:?} got {answer:?}",
            String::from_utf8_lossy(garbage)
        );
    }
    let mut stream = TcpStream::connect(&service.addr).await.unwrap();
    stream
        .write_all(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_all(&mut stream, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_workers_unchanged(&service, &workers);
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_in_the_backlog_until_one_closes() {
    let service = Service::start(
        "[http]\nport = 0\nforks = 1\nmax_connections = 2\nheader_read_timeout = 30\n",
        &[],
        1,
    );
    let request = b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&service.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let head = read_head(&mut stream, Duration::from_secs(3)).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(stream);
    }
    // The kernel completes the handshake from the backlog; the worker must not accept it.
    let mut waiting = TcpStream::connect(&service.addr).await.unwrap();
    waiting.write_all(request).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served: {early:?}");

    drop(held.pop());
    let head = read_head(&mut waiting, Duration::from_secs(3)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
