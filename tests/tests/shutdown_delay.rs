//! `[http] shutdown_delay`: on SIGTERM `/readyz` fails at once while the workers keep accepting
//! and serving for the delay, then they drain; a second SIGTERM skips the rest of the delay.

use std::time::{Duration, Instant};

use buvar_tests::fork::CountedLoad;
use buvar_tests::service::Service;
use nix::sys::signal::Signal;

fn config(delay: u32) -> String {
    format!(
        "[http]\nport = 0\nforks = 2\ngraceful_timeout = 10\nshutdown_delay = {delay}\n\
         [log]\nlevel = \"info\"\n"
    )
}

/// What a fresh connection got for `GET path`: `Ok(status)`, or the connection error.
fn fresh(addr: &str, path: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {answer:?}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_delay_fails_readiness_at_once_serves_for_the_delay_then_drains() {
    let delay = Duration::from_secs(2);
    let mut service = Service::start(&config(2), &[], 2);
    let addr = service.addr.clone();
    assert_eq!(fresh(&addr, "/readyz").unwrap(), 200);
    let load = CountedLoad::start(&format!("http://{addr}/pid"), 16);
    load.wait_ok(300).await;

    service.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    let probe = addr.clone();
    let (not_ready_after, served_until, refused_after, failed) =
        tokio::task::spawn_blocking(move || {
            // Fresh connections, one after another, until one is refused.
            let mut not_ready_after = None;
            let mut served_until = Duration::ZERO;
            let mut failed = Vec::new();
            loop {
                let path = if not_ready_after.is_none() {
                    "/readyz"
                } else {
                    "/pid"
                };
                match fresh(&probe, path) {
                    Ok(503) if path == "/readyz" => {
                        not_ready_after = Some(signalled.elapsed());
                    }
                    Ok(200) if path == "/pid" => served_until = signalled.elapsed(),
                    Ok(200) => {}
                    Ok(status) => {
                        failed.push((signalled.elapsed(), format!("{path}: status {status}")));
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return (not_ready_after, served_until, signalled.elapsed(), failed);
                    }
                    Err(error) => failed.push((signalled.elapsed(), format!("{path}: {error}"))),
                }
                assert!(
                    signalled.elapsed() < Duration::from_secs(30),
                    "never refused"
                );
            }
        })
        .await
        .unwrap();

    let tally = load.finish(Duration::from_secs(20)).await;
    let status = service.wait_exit();
    eprintln!(
        "readyz 503 after {not_ready_after:?}, new connections served until {served_until:?}, \
         refused after {refused_after:?}; load: {} answered, {} failed",
        tally.ok,
        tally.failed.len()
    );
    let not_ready_after = not_ready_after.expect("/readyz turned 503");
    assert!(
        not_ready_after < Duration::from_millis(100),
        "{not_ready_after:?}"
    );
    // The drain serves what is queued before it closes the listener, but a connection that
    // arrives between that last accept and the close is reset, not refused: that one race is
    // tolerated at the refusal itself, nothing before it.
    let before_refusal: Vec<_> = failed
        .iter()
        .filter(|(at, _)| *at + Duration::from_millis(50) < refused_after)
        .collect();
    assert!(
        before_refusal.is_empty(),
        "fresh connections failed: {failed:?}"
    );
    assert!(failed.len() <= 1, "fresh connections failed: {failed:?}");
    assert!(tally.failed.is_empty(), "load failed: {:?}", tally.failed);
    assert!(
        served_until >= delay - Duration::from_millis(100),
        "{served_until:?}"
    );
    assert!(
        refused_after >= delay,
        "refused before the delay ended: {refused_after:?}"
    );
    assert!(
        refused_after < delay + Duration::from_secs(5),
        "{refused_after:?}"
    );
    assert_eq!(status.code(), Some(0), "{}", service.stdout.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_skips_the_rest_of_the_delay() {
    let mut service = Service::start(&config(60), &[], 2);
    let addr = service.addr.clone();
    service.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    let probe = addr.clone();
    tokio::task::spawn_blocking(move || {
        while fresh(&probe, "/readyz").unwrap() != 503 {
            assert!(signalled.elapsed() < Duration::from_secs(10));
        }
    })
    .await
    .unwrap();
    // Still serving: the delay runs.
    assert_eq!(fresh(&addr, "/pid").unwrap(), 200);

    service.signal(Signal::SIGTERM);
    let status = service.wait_exit();
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "{:?}",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(0));
    let stdout = service.stdout.join("\n");
    assert!(
        stdout.contains("skipping the rest of the shutdown delay"),
        "{stdout}"
    );
}
