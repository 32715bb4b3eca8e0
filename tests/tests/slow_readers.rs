//! Clients that pipeline requests and never read the answers, against a real pre-forked
//! `Service`: each is closed once its answers stop flowing for `write_timeout`, and the slots
//! they held under `max_connections` go back to other clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use buvar_tests::service::Service;

/// An upper bound for what takes about a second: a loaded machine must not fail the test.
const WITHIN: Duration = Duration::from_secs(25);

fn config(max_connections: usize) -> String {
    format!(
        "[http]\nport = 0\nforks = 2\nwrite_timeout = 1\nmax_connections = {max_connections}\n\
         graceful_timeout = 2\n[log]\nlevel = \"info\"\n"
    )
}

/// Pipelines requests without ever reading until the server closes the connection; returns how
/// long that took. Panics if the connection is still open after [`WITHIN`].
fn pipeline_without_reading(addr: &str) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    // Bounds each blocked write: without the write timeout the server stops reading for good.
    stream
        .set_write_timeout(Some(WITHIN))
        .expect("set a write timeout");
    // Large answers fill the socket buffers of both sides within a few requests.
    let requests = "GET /bytes?n=262144 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    loop {
        match stream.write_all(requests.as_bytes()) {
            Ok(()) => assert!(
                started.elapsed() < WITHIN,
                "still open after {WITHIN:?} of pipelining without reading"
            ),
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

/// One ordinary request on a new connection; its answer.
fn get_pid(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WITHIN)).expect("read timeout");
    stream
        .write_all(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send a request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    answer
}

#[test]
fn a_client_that_pipelines_and_never_reads_is_closed_after_the_write_timeout() {
    let service = Service::start(&config(100), &[], 2);
    let workers = service.workers();
    let took = pipeline_without_reading(&service.addr);
    assert!(took < WITHIN, "took {took:?}");
    assert!(get_pid(&service.addr).starts_with("HTTP/1.1 200"));
    assert_eq!(service.workers(), workers, "a worker died");
    let (status, _, _) = service.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn slow_readers_filling_every_slot_do_not_lock_out_other_clients() {
    // Two workers with two slots each; six slow readers more than fill them.
    let service = Service::start(&config(2), &[], 2);
    let workers = service.workers();
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let addr = service.addr.clone();
            std::thread::spawn(move || pipeline_without_reading(&addr))
        })
        .collect();
    let started = Instant::now();
    let answer = get_pid(&service.addr);
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(waited < WITHIN, "an ordinary client waited {waited:?}");
    for client in slow {
        let took = client.join().expect("a slow client");
        assert!(took < WITHIN, "a slow reader was held for {took:?}");
    }
    assert_eq!(service.workers(), workers, "a worker died");
    let (status, _, _) = service.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn an_out_of_range_write_timeout_stops_the_start_naming_the_key() {
    for (variable, value, key) in [
        ("SVC_HTTP_WRITE_TIMEOUT", "inf", "`http.write_timeout`"),
        ("SVC_HTTP_WRITE_TIMEOUT", "0", "`http.write_timeout`"),
        (
            "SVC_HTTP_H2_MAX_CONCURRENT_STREAMS",
            "0",
            "`http.h2.max_concurrent_streams`",
        ),
        (
            "SVC_HTTP_H2_KEEP_ALIVE_TIMEOUT",
            "nan",
            "`http.h2.keep_alive_timeout`",
        ),
    ] {
        let output = buvar_tests::service::run(&config(100), &[], &[(variable, value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{variable}={value}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("{key} must be between")),
            "{variable}={value}: {stderr}"
        );
    }
}
