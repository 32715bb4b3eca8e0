//! `[metrics]` of a real pre-forked `Service`: one scrape answers for the whole service while
//! workers are killed, recycled and rolled.

use std::io::{Read, Write};
use std::time::Duration;

use buvar_tests::metrics::{Sample, parse_samples, promtool_check, sum};
use buvar_tests::service::Service;
use nix::sys::signal::Signal;

const DURATION_COUNT: &str = "http_server_request_duration_seconds_count";

/// Sends `count` requests to `/` over `concurrency` clients without keep-alive; a request
/// refused before any worker read it (a connection to a killed or drained worker) is sent
/// again. Returns how many were sent again.
async fn hit(addr: &str, count: usize, concurrency: usize) -> usize {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("http://{addr}/");
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (client, url) = (client.clone(), url.clone());
        let share = count / concurrency + usize::from(worker < count % concurrency);
        tasks.spawn(async move {
            let mut again = 0;
            for _ in 0..share {
                loop {
                    match client.get(&url).send().await {
                        Ok(response) => {
                            assert!(response.status().is_success(), "{response:?}");
                            break;
                        }
                        Err(error) if error.is_connect() || error.is_request() => again += 1,
                        Err(error) => panic!("request failed: {error:?}"),
                    }
                }
            }
            again
        });
    }
    let mut again = 0;
    while let Some(done) = tasks.join_next().await {
        again += done.unwrap();
    }
    again
}

async fn scrape(client: &reqwest::Client, addr: &str) -> String {
    let response = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("the scrape is answered");
    assert!(response.status().is_success(), "{response:?}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.contains("version=0.0.4"), "{content_type}");
    response.text().await.unwrap()
}

/// The counters the scrapes during churn follow: requests to `/`, and the service's own.
fn counts(samples: &[Sample]) -> (f64, f64) {
    (
        sum(samples, DURATION_COUNT, &[("route", "/")]),
        sum(samples, "app_hits_total", &[]),
    )
}

/// Scrapes `count` times, each after the previous one, checking each is consistent.
async fn scrapes(addr: String, count: usize, mut last: (f64, f64)) -> (f64, f64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..count {
        let samples = parse_samples(&scrape(&client, &addr).await);
        let now = counts(&samples);
        assert!(
            now.0 >= last.0 && now.1 >= last.1,
            "a counter went backwards: {last:?} then {now:?}"
        );
        // A histogram's count is the sum of its buckets: never torn.
        let inf = sum(
            &samples,
            "http_server_request_duration_seconds_bucket",
            &[("route", "/"), ("le", "+Inf")],
        );
        assert_eq!(inf, now.0);
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scrape_counts_every_request_across_kill_recycling_and_rollout() {
    let service = Service::start(
        "[http]\nport = 0\nforks = 3\ngraceful_timeout = 5\nmax_requests = 700\n",
        &[],
        3,
    );
    let addr = service.addr.clone();
    let mut last = (0.0, 0.0);
    let mut again = 0;
    // Three rounds of 1,000 requests with 70 scrapes beside each (210 in all); between rounds,
    // with nothing in flight (so no answered request is lost with its worker), one worker is
    // killed with -9, then a rolling restart begins. `max_requests` recycles workers all along.
    for round in 0..3 {
        let scraper = tokio::spawn(scrapes(addr.clone(), 70, last));
        again += hit(&addr, 1_000, 8).await;
        last = scraper.await.unwrap();
        match round {
            0 => {
                let victim = service.workers()[0];
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), Signal::SIGKILL)
                    .unwrap();
            }
            1 => service.signal(Signal::SIGHUP),
            _ => {}
        }
    }

    let client = reqwest::Client::new();
    let text = scrape(&client, &addr).await;
    promtool_check(&text).unwrap_or_else(|problems| panic!("{problems}\n{text}"));
    let samples = parse_samples(&text);
    assert_eq!(
        counts(&samples),
        (3_000.0, 3_000.0),
        "sent again: {again}\n{text}"
    );
    // Every request to `/` was a GET answered 200, recorded under the route template.
    let ok = [("route", "/"), ("method", "GET"), ("status", "200")];
    assert_eq!(sum(&samples, DURATION_COUNT, &ok), 3_000.0);
    assert!(
        sum(&samples, "buvar_worker_exits_total", &[("cause", "signal")]) >= 1.0,
        "{text}"
    );
    assert!(
        sum(
            &samples,
            "buvar_worker_exits_total",
            &[("cause", "recycled")]
        ) >= 3.0,
        "{text}"
    );
    assert_eq!(sum(&samples, "buvar_workers_configured", &[]), 3.0);
    // The supervisor and every worker report their resources.
    let rss: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "process_resident_memory_bytes")
        .collect();
    assert!(
        rss.iter().any(|s| s.label("process") == Some("supervisor")),
        "{text}"
    );
    assert!(
        rss.iter()
            .filter(|s| s.label("process") == Some("worker"))
            .count()
            >= 3,
        "{text}"
    );
    assert!(rss.iter().all(|s| s.value > 0.0));
    let (status, _, stderr) = service.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn metrics_on_a_listen_socket_are_served_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("metrics.sock");
    let service = Service::start(
        &format!(
            "[http]\nport = 0\nforks = 2\n[metrics]\nlisten = \"unix://{}\"\n",
            socket.display()
        ),
        &[],
        2,
    );
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    assert!(
        body.contains("# TYPE buvar_workers_configured gauge"),
        "{body}"
    );

    let on_service_port = reqwest::blocking_get(&format!("http://{}/metrics", service.addr));
    assert_eq!(on_service_port, 404);
    let (status, _, stderr) = service.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn port_0_for_the_service_and_the_metrics_gives_each_a_socket_of_its_own() {
    let mut service = Service::start(
        "[http]\nhost = \"127.0.0.1\"\nport = 0\nforks = 2\n\
         [metrics]\nlisten = \"tcp://127.0.0.1:0\"\n",
        &[],
        2,
    );
    service.wait_lines("serving metrics", 2);
    let addrs: std::collections::HashSet<String> = service
        .stdout
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["message"] == "serving metrics")
        .map(|event| {
            event["addr"]
                .as_str()
                .unwrap()
                .trim_start_matches("tcp://")
                .to_owned()
        })
        .collect();
    assert_eq!(
        addrs.len(),
        1,
        "one socket, bound once in the parent: {addrs:?}"
    );
    let metrics = addrs.into_iter().next().unwrap();
    assert_ne!(metrics, service.addr);
    let text = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(scrape(&reqwest::Client::new(), &metrics));
    assert!(
        text.contains("# TYPE buvar_workers_configured gauge"),
        "{text}"
    );
    let service_addr = service.addr.clone();
    assert_eq!(
        reqwest::blocking_get(&format!("http://{service_addr}/metrics")),
        404
    );
    assert_eq!(
        reqwest::blocking_get(&format!("http://{service_addr}/healthz")),
        200
    );
    let (status, _, stderr) = service.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_metrics_path_that_clashes_with_a_route_stops_the_start_naming_both() {
    let output = buvar_tests::service::run(
        "[http]\nport = 0\nforks = 1\n[metrics]\npath = \"/pid\"\n",
        &[],
        &[],
    );
    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        all.contains("`[metrics] path` = `/pid` is also a route") && all.contains("GET /pid"),
        "{all}"
    );
}

#[test]
fn a_metrics_listen_address_in_use_is_an_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("tcp://{}", taken.local_addr().unwrap());
    let output = buvar_tests::service::run(
        &format!("[http]\nport = 0\nforks = 2\n[metrics]\nlisten = \"{uri}\"\n"),
        &[],
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&uri), "{stderr}");
}

mod reqwest {
    pub(crate) use ::reqwest::*;

    /// The status of a GET, on a runtime of its own.
    pub(crate) fn blocking_get(url: &str) -> u16 {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { ::reqwest::get(url).await.unwrap().status().as_u16() })
    }
}
