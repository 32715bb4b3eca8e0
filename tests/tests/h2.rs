//! HTTP/2 with prior knowledge (h2c) next to HTTP/1.1 on the same port of a real pre-forked
//! `Service` with two workers: real clients (reqwest, curl, the h2 crate), hostile ones (rapid
//! reset, SETTINGS and PING floods, an oversize header list, connections that say nothing), the
//! per-stream limits, the graceful drain and a rolling restart under HTTP/2 load.

use std::io::{Read, Write};
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use buvar_tests::service::Service;
use nix::sys::signal::Signal;
use reqwest::{StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// An upper bound for what takes about a second: a loaded machine must not fail the test.
const WITHIN: Duration = Duration::from_secs(25);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn config(extra: &str) -> String {
    format!(
        "[http]\nport = 0\nforks = 2\ngraceful_timeout = 5\nheader_read_timeout = 1\n\
         write_timeout = 1\nbody_limit = 1024\n{extra}\n\
         [log]\nlevel = \"info\"\n"
    )
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(WITHIN)
        .build()
        .expect("an HTTP/2 client")
}

/// The sum of the workers' resident memory, in KiB.
fn workers_rss_kib(service: &Service) -> u64 {
    let rss: u64 = service
        .workers()
        .iter()
        .map(|pid| {
            let rss = buvar_tests::proc_status(*pid as u32, "VmRSS:");
            rss.trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
        })
        .sum();
    assert!(rss > 0, "no VmRSS read");
    rss
}

/// How long the slowest of a few ordinary HTTP/1.1 requests took.
async fn probe(addr: &str) -> Duration {
    let client = reqwest::Client::builder().timeout(WITHIN).build().unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let response = client
            .get(format!("http://{addr}/pid"))
            .send()
            .await
            .expect("the probe is answered");
        assert_eq!(response.status(), StatusCode::OK);
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

async fn h2_connect(
    addr: &str,
) -> (
    h2::client::SendRequest<Bytes>,
    JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    (client, tokio::spawn(connection))
}

#[tokio::test]
async fn http1_and_h2c_are_served_on_one_port_with_the_per_request_limits_per_stream() {
    let service = Service::start(&config("request_timeout = 1"), &[], 2);
    let addr = service.addr.clone();
    let h2 = h2_client();
    let response = h2.get(format!("http://{addr}/pid")).send().await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let h1 = reqwest::Client::new();
    let response = h1.get(format!("http://{addr}/pid")).send().await.unwrap();
    assert_eq!(response.version(), Version::HTTP_11);

    // The request timeout and the body limit hold per stream, beside a stream that passes.
    let slow = h2.get(format!("http://{addr}/slow?ms=5000")).send();
    let big = h2
        .post(format!("http://{addr}/echo"))
        .body(vec![0u8; 4096])
        .send();
    let small = h2.post(format!("http://{addr}/echo")).body("abc").send();
    let (slow, big, small) = tokio::join!(slow, big, small);
    assert_eq!(slow.unwrap().status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(big.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
    let small = small.unwrap();
    assert_eq!(small.version(), Version::HTTP_2);
    assert_eq!(small.text().await.unwrap(), "3");

    let curl = Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code}"])
        .arg(format!("http://{addr}/pid"))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "2 200", "{curl:?}");

    let (status, _, _) = service.stop();
    assert!(status.success(), "{status}");
}

/// A client connection that writes its first bytes one at a time, a moment apart, as a client
/// on a slow link may send the HTTP/2 preface: each byte its own TCP segment.
struct Trickle {
    stream: TcpStream,
    left: usize,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncWrite for Trickle {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Pin::new(&mut this.stream).poll_write(cx, buf);
        }
        if let Some(pause) = &mut this.pause {
            ready!(pause.as_mut().poll(cx));
        }
        let written = ready!(Pin::new(&mut this.stream).poll_write(cx, &buf[..1]))?;
        this.left -= written;
        this.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(10))));
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl AsyncRead for Trickle {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

#[tokio::test]
async fn a_preface_sent_one_byte_at_a_time_is_still_served_as_h2c() {
    // The whole preface takes a quarter of a second: far within the header read timeout.
    let service = Service::start(
        "[http]\nport = 0\nforks = 2\nheader_read_timeout = 30\n[log]\nlevel = \"info\"\n",
        &[],
        2,
    );
    let addr = service.addr.clone();
    let stream = TcpStream::connect(&addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let trickle = Trickle {
        stream,
        left: PREFACE.len(),
        pause: None,
    };
    let (client, connection) = h2::client::handshake(trickle).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = tokio::time::timeout(WITHIN, client.ready())
        .await
        .expect("the server answers the preface")
        .unwrap();
    let request = http::Request::get(format!("http://{addr}/pid"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::time::timeout(WITHIN, response)
        .await
        .expect("an answer")
        .expect("served over HTTP/2");
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _, _) = service.stop();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_is_cut_off_while_other_clients_are_served() {
    let mut service = Service::start(&config(""), &[], 2);
    let workers = service.workers();
    let addr = service.addr.clone();
    let before = workers_rss_kib(&service);
    let attacks: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let (mut client, connection) = h2_connect(&addr).await;
                let mut resets = 0u32;
                // The client gives up after this many; the server must close well before.
                while resets < 100_000 {
                    client = match client.ready().await {
                        Ok(client) => client,
                        Err(_) => break,
                    };
                    let request = http::Request::get(format!("http://{addr}/slow?ms=5000"))
                        .body(())
                        .unwrap();
                    match client.send_request(request, true) {
                        Ok((_response, mut stream)) => {
                            stream.send_reset(h2::Reason::CANCEL);
                            resets += 1;
                            // Lets the connection task put the frames on the wire.
                            tokio::task::yield_now().await;
                        }
                        Err(_) => break,
                    }
                }
                let ended = tokio::time::timeout(WITHIN, connection)
                    .await
                    .expect("the server closed the connection")
                    .unwrap();
                (resets, ended)
            })
        })
        .collect();
    let slowest = probe(&addr).await;
    let mut most_resets = 0;
    let mut closed_between_streams = 0;
    for attack in attacks {
        let (resets, ended) = attack.await.unwrap();
        most_resets = most_resets.max(resets);
        assert!(resets < 100_000, "the server took {resets} resets");
        // Closed either by hyper's bound on streams reset before they were accepted (GOAWAY
        // ENHANCE_YOUR_CALM) or by the bound on cancelled streams (the socket closes: an error,
        // or a clean end when no stream of the client was open at that moment).
        match ended {
            Ok(()) => closed_between_streams += 1,
            Err(err) => assert!(
                err.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || err.is_io(),
                "{err:?} after {resets} resets"
            ),
        }
    }
    // A clean end is the server's cut too, not a drain: the service says why it closed each.
    service.wait_lines(
        "cancels more streams than it lets finish",
        closed_between_streams,
    );
    let after = workers_rss_kib(&service);
    eprintln!(
        "rapid reset: at most {most_resets} resets per connection; slowest probe {slowest:?}; \
         workers' VmRSS {before} KiB before, {after} KiB after"
    );
    assert!(after < before + 64 * 1024, "{before} KiB -> {after} KiB");
    assert_eq!(service.workers(), workers, "a worker died");
}

/// Writes a flood of `frame` after the preface without reading anything, until the server
/// closes the connection; panics if it is still open after [`WITHIN`].
fn flood_without_reading(addr: &str, frame: &[u8]) -> Duration {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_write_timeout(Some(WITHIN)).unwrap();
    let started = Instant::now();
    let mut start = PREFACE.to_vec();
    start.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    stream.write_all(&start).expect("send the preface");
    let batch = frame.repeat(64 * 1024);
    loop {
        match stream.write_all(&batch) {
            Ok(()) => assert!(started.elapsed() < WITHIN, "still open after {WITHIN:?}"),
            Err(err) => {
                assert!(
                    !matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "the server stopped reading but kept the connection open: {err}"
                );
                return started.elapsed();
            }
        }
    }
}

#[tokio::test]
async fn settings_and_ping_floods_from_a_client_that_never_reads_are_closed() {
    let service = Service::start(&config(""), &[], 2);
    let workers = service.workers();
    let before = workers_rss_kib(&service);
    let empty_settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0].to_vec();
    let mut ping = vec![0u8, 0, 8, 6, 0, 0, 0, 0, 0];
    ping.extend_from_slice(b"pingpong");
    let floods: Vec<_> = [empty_settings, ping]
        .into_iter()
        .map(|frame| {
            let addr = service.addr.clone();
            tokio::task::spawn_blocking(move || flood_without_reading(&addr, &frame))
        })
        .collect();
    let slowest = probe(&service.addr).await;
    for flood in floods {
        let took = flood.await.unwrap();
        assert!(took < WITHIN, "{took:?}");
    }
    let after = workers_rss_kib(&service);
    eprintln!(
        "SETTINGS/PING floods: slowest probe {slowest:?}; workers' VmRSS {before} KiB before, {after} KiB after"
    );
    assert!(after < before + 64 * 1024, "{before} KiB -> {after} KiB");
    assert_eq!(service.workers(), workers, "a worker died");
}

#[tokio::test]
async fn a_header_list_over_the_limit_is_refused_and_the_connection_serves_on() {
    let service = Service::start(&config("[http.h2]\nmax_header_list_size = 4096"), &[], 2);
    let addr = service.addr.clone();
    let (client, _connection) = h2_connect(&addr).await;
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("http://{addr}/pid"))
        .header("x-big", "a".repeat(8192))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    match response.await {
        Ok(response) => assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        Err(err) => assert_eq!(err.reason(), Some(h2::Reason::REFUSED_STREAM), "{err:?}"),
    }
    let mut client = client.ready().await.expect("the connection serves on");
    let request = http::Request::get(format!("http://{addr}/pid"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    let slowest = probe(&addr).await;
    eprintln!("oversize header list: slowest probe {slowest:?}");
}

#[test]
fn connections_that_send_nothing_are_closed_after_the_header_read_timeout() {
    let service = Service::start(&config(""), &[], 2);
    let before = workers_rss_kib(&service);
    for opening in [
        &b""[..],
        PREFACE,
        &[PREFACE, &[0, 0, 0, 4, 0, 0, 0, 0, 0]].concat(),
    ] {
        let mut stream = std::net::TcpStream::connect(&service.addr).unwrap();
        stream.set_read_timeout(Some(WITHIN)).unwrap();
        let started = Instant::now();
        stream.write_all(opening).unwrap();
        let mut got = Vec::new();
        // Whatever the server sends (its SETTINGS), it must end the connection.
        let ended = stream.read_to_end(&mut got);
        let took = started.elapsed();
        if let Err(err) = ended {
            assert!(
                !matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "still open after {took:?}: {err}"
            );
        }
        assert!(took < WITHIN, "{took:?}");
    }
    let after = workers_rss_kib(&service);
    eprintln!("silent connections: workers' VmRSS {before} KiB before, {after} KiB after");
}

#[tokio::test]
async fn a_drain_sends_goaway_and_lets_open_streams_finish() {
    let mut service = Service::start(&config("request_timeout = 10"), &[], 2);
    let addr = service.addr.clone();
    let (client, connection) = h2_connect(&addr).await;
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("http://{addr}/slow?ms=2500"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    // Sent and on its way before the stop request.
    let started = Instant::now();
    service.signal(Signal::SIGTERM);
    let response = tokio::time::timeout(WITHIN, response)
        .await
        .expect("an answer")
        .expect("the open stream finishes");
    assert_eq!(response.status(), StatusCode::OK);
    let ended = tokio::time::timeout(WITHIN, connection)
        .await
        .expect("the server ends the connection")
        .unwrap();
    // GOAWAY with NO_ERROR ends the connection cleanly.
    assert!(ended.is_ok(), "{ended:?}");
    assert!(started.elapsed() < WITHIN);
    // Stopping already: a second SIGTERM could meet it exiting, after its handlers are gone.
    let status = service.wait_exit();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_rolling_restart_under_h2_load_fails_no_stream() {
    let service = Service::start(&config(""), &[], 2);
    let old = service.workers();
    let client = h2_client();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..8)
        .map(|_| {
            let (client, stop, ok) = (client.clone(), stop.clone(), ok.clone());
            let url = format!("http://{}/pid", service.addr);
            tokio::spawn(async move {
                let mut failures = Vec::new();
                let mut pids = std::collections::HashSet::new();
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).send().await {
                        Ok(response) if response.status() == StatusCode::OK => {
                            pids.insert(response.text().await.unwrap_or_default());
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(response) => failures.push(format!("status {}", response.status())),
                        Err(err) => failures.push(format!("{err:?}")),
                    }
                }
                (failures, pids)
            })
        })
        .collect();
    // Under way before the restart: every loop has had answers.
    let deadline = Instant::now() + WITHIN;
    while ok.load(Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "no load");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.signal(Signal::SIGHUP);
    // The rollout is done when neither old worker is left and two new ones serve.
    loop {
        let now = service.workers();
        if now.len() == 2 && now.iter().all(|pid| !old.contains(pid)) {
            break;
        }
        assert!(Instant::now() < deadline, "no rollout: {old:?} -> {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered_before = ok.load(Ordering::Relaxed);
    while ok.load(Ordering::Relaxed) < answered_before + 100 {
        assert!(Instant::now() < deadline, "no load after the rollout");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut pids = std::collections::HashSet::new();
    for done in loops {
        let (failures, seen) = done.await.unwrap();
        assert!(failures.is_empty(), "failed streams: {failures:?}");
        pids.extend(seen);
    }
    eprintln!(
        "rolling restart under h2 load: {} answered, 0 failed, by {} workers",
        ok.load(Ordering::Relaxed),
        pids.len()
    );
    let new = service.workers();
    assert!(
        new.iter().any(|pid| pids.contains(&pid.to_string())),
        "the new workers answered nothing: {pids:?} vs {new:?}"
    );
}
