//! One scrape of `/metrics` from a real pre-forked `buvar-server`: 4 workers, each holding
//! the same 1,000 counter series, summed in every scrape (render plus the HTTP round trip over
//! a fresh connection), and `/healthz` of the same server over a fresh connection as the
//! baseline: the difference is the scrape's own cost.
//!
//! `cargo bench -p buvar-bench --bench scrape`

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use buvar_bench::server::{Server, free_port};
use criterion::{Criterion, criterion_group, criterion_main};

const WORKERS: usize = 4;
const SERIES: usize = 1_000;

/// The body of `GET path` over a fresh connection.
fn get_body(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

/// The value of the sample line that starts with `series ` (a series without labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn scrape(c: &mut Criterion) {
    let port = free_port().expect("a free port");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut command = Command::new(env!("CARGO_BIN_EXE_buvar-server"));
    command.envs([
        ("APP_HTTP_HOST", "127.0.0.1".to_owned()),
        ("APP_HTTP_PORT", port.to_string()),
        ("APP_HTTP_FORKS", WORKERS.to_string()),
        ("APP_LOG_LEVEL", "warn".to_owned()),
        ("BENCH_SERIES", SERIES.to_string()),
    ]);
    let mut server = Server::spawn(command, addr).expect("start buvar-server");
    server
        .wait_ready("/metrics", Duration::from_secs(60))
        .expect("buvar-server answers");
    // Every worker has claimed its row and recorded its series once it says it is ready.
    let text = loop {
        let text = get_body(addr, "/metrics");
        if value(&text, "buvar_workers_ready") == Some(WORKERS as f64) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let series = text
        .lines()
        .filter(|line| line.starts_with("bench_series_total{"))
        .count();
    assert_eq!(series, SERIES, "{text}");
    assert!(
        text.lines()
            .filter(|line| line.starts_with("bench_series_total{"))
            .all(|line| line.ends_with(&format!(" {WORKERS}"))),
        "every series sums the {WORKERS} workers"
    );

    c.bench_function("scrape/4 workers x 1000 series", |b| {
        b.iter(|| get_body(addr, "/metrics"))
    });
    c.bench_function("scrape/healthz (baseline)", |b| {
        b.iter(|| get_body(addr, "/healthz"))
    });
    server.stop(Duration::from_secs(10));
}

criterion_group!(benches, scrape);
criterion_main!(benches);
