//! buvar-axum's gRPC example as a real pre-forked service with two workers, and tonic clients:
//! a call over h2c that reads the injected component, REST on the same port, `grpc.health.v1`
//! (`Check`, and a `Watch` that a drain ends), a call over TLS (ALPN h2), and a SIGHUP rollout
//! under concurrent client loops in which no call fails (a call the client itself never sent,
//! its connection closing under it after the GOAWAY, is sent once more and counted), and a
//! call's deadline (`grpc-timeout`) kept by the server.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use buvar_tests::protocols::Example;
use nix::sys::signal::Signal;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

mod proto {
    #![allow(missing_docs, unreachable_pub, missing_debug_implementations)]
    tonic::include_proto!("buvar.example.greeter.v1");
}

use proto::HelloRequest;
use proto::greeter_client::GreeterClient;

/// An upper bound for what takes about a second: a loaded machine must not fail the test.
const WITHIN: Duration = Duration::from_secs(25);

/// The example with two workers, greeting with "Servus" (from its `[greeter]` section, read by
/// the adapter that makes the injected component).
fn start(extra: &str) -> Example {
    Example::start(
        "grpc-example",
        &format!(
            "[http]\nport = 0\nforks = 2\ngraceful_timeout = 5\n{extra}\n\
             [greeter]\ngreeting = \"Servus\"\n[log]\nlevel = \"info\"\n"
        ),
        2,
    )
}

async fn h2c(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(WITHIN)
        .timeout(WITHIN)
        .connect()
        .await
        .expect("a connection")
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest {
        name: name.to_owned(),
    }
}

fn health(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

/// Stops the service with SIGTERM and checks it exits cleanly.
fn stop(mut service: Example) {
    service.child.signal(Signal::SIGTERM);
    let status = service.child.wait_exit(WITHIN);
    assert!(status.success(), "{status}: {}", service.child.stderr());
}

#[tokio::test]
async fn a_tonic_client_over_h2c_reads_the_injected_greeting_and_rest_shares_the_port() {
    let service = start("");
    let workers = service.child.workers();
    for _ in 0..6 {
        // A connection each, so both workers are likely to answer some.
        let mut client = GreeterClient::new(h2c(&service.addr).await);
        let response = client.say_hello(hello("Ada")).await.expect("an answer");
        let request_id = response.metadata().get("x-request-id");
        assert!(request_id.is_some(), "the kit's request id layer ran");
        let reply = response.into_inner();
        assert_eq!(reply.message, "Servus, Ada");
        assert!(
            workers.contains(&i32::try_from(reply.pid).unwrap()),
            "{reply:?} {workers:?}"
        );
    }
    let mut client = GreeterClient::new(h2c(&service.addr).await);
    let refused = client.say_hello(hello("")).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("`name`"), "{refused:?}");

    // The same component answers REST, over HTTP/1.1, on the same port.
    let rest = reqwest::Client::new()
        .get(format!("http://{}/greet/Ada", service.addr))
        .timeout(WITHIN)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.version(), reqwest::Version::HTTP_11);
    assert_eq!(rest.text().await.unwrap(), "Servus, Ada");
    stop(service);
}

#[tokio::test]
async fn health_answers_serving_and_a_drain_ends_a_watch_with_not_serving() {
    let mut service = start("");
    let mut client = HealthClient::new(h2c(&service.addr).await);
    for name in [
        "",
        "buvar.example.greeter.v1.Greeter",
        "grpc.health.v1.Health",
    ] {
        let answer = client.check(health(name)).await.expect("an answer");
        assert_eq!(
            answer.into_inner().status(),
            ServingStatus::Serving,
            "{name:?}"
        );
    }
    let unknown = client.check(health("no.Such")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    let mut watch = client.watch(health("")).await.unwrap().into_inner();
    let first = tokio::time::timeout(WITHIN, watch.message()).await.unwrap();
    assert_eq!(first.unwrap().unwrap().status(), ServingStatus::Serving);

    service.child.signal(Signal::SIGTERM);
    let draining = tokio::time::timeout(WITHIN, watch.message()).await.unwrap();
    assert_eq!(
        draining.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    // Then the watch ends (status OK), so it does not hold the drain up for its 5 s.
    let end = tokio::time::timeout(WITHIN, watch.message()).await.unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");
    let status = service.child.wait_exit(WITHIN);
    assert!(status.success(), "{status}: {}", service.child.stderr());
    service.wait_lines("draining", 2);
}

#[tokio::test]
async fn a_tonic_client_over_tls_negotiates_h2_and_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let service = start(&format!("[http.tls]\ncert = {cert:?}\nkey = {key:?}\n"));

    // tonic's TLS connector offers only `h2` and refuses a connection that did not agree on
    // it: an answer proves ALPN chose h2.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(certified.cert.pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", service.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(WITHIN)
        .timeout(WITHIN)
        .connect()
        .await
        .expect("a TLS connection");
    let reply = GreeterClient::new(channel.clone())
        .say_hello(hello("Grace"))
        .await
        .expect("an answer")
        .into_inner();
    assert_eq!(reply.message, "Servus, Grace");
    let answer = HealthClient::new(channel).check(health("")).await.unwrap();
    assert_eq!(answer.into_inner().status(), ServingStatus::Serving);

    // Plain h2c on the TLS port is not served.
    let plain = Channel::from_shared(format!("http://{}", service.addr))
        .unwrap()
        .connect_timeout(WITHIN)
        .timeout(WITHIN)
        .connect()
        .await;
    if let Ok(plain) = plain {
        let refused = GreeterClient::new(plain).say_hello(hello("Eve")).await;
        assert!(refused.is_err(), "{refused:?}");
    }
    stop(service);
}

/// What the client loops saw: the worker that answered each call, every failure, and how many
/// calls the client had to send again because it never sent them.
#[derive(Default)]
struct Calls {
    answered_by: Vec<Vec<u32>>,
    failures: Vec<String>,
    resent: usize,
}

/// Whether the call failed in the client before it was written to a connection: hyper's
/// "canceled" error, which it gives requests still queued when their connection closes. A
/// stream the server accepted and then reset would be an HTTP/2 error instead.
fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        source = error.source();
    }
    false
}

impl Calls {
    /// Whether every loop has `count` answers from workers outside `old`.
    fn each_answered_by_others(&self, old: &[i32], count: usize) -> bool {
        self.answered_by.iter().all(|pids| {
            pids.iter()
                .filter(|pid| !old.contains(&i32::try_from(**pid).unwrap()))
                .count()
                >= count
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_rollout_under_concurrent_tonic_clients_fails_no_call() {
    const CLIENTS: usize = 3;
    let mut service = start("");
    let old = service.child.workers();
    let calls = Arc::new(Mutex::new(Calls {
        answered_by: vec![Vec::new(); CLIENTS],
        failures: Vec::new(),
        resent: 0,
    }));
    let stop_loops = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for index in 0..CLIENTS {
        // A channel (one HTTP/2 connection, reconnected after a GOAWAY) per loop.
        let mut client = GreeterClient::new(h2c(&service.addr).await);
        let (calls, stop_loops) = (calls.clone(), stop_loops.clone());
        loops.push(tokio::spawn(async move {
            while !stop_loops.load(Ordering::Relaxed) {
                let mut outcome = client.say_hello(Request::new(hello("Ada"))).await;
                // A call the client never sent (its connection closed between choosing it and
                // writing the request: hyper cancels what is still queued) is sent again, as
                // grpc-go does transparently; the server never saw it. Once: twice in a row
                // would mean the client cannot reach a worker at all.
                if outcome.as_ref().is_err_and(never_sent) {
                    calls.lock().unwrap().resent += 1;
                    outcome = client.say_hello(Request::new(hello("Ada"))).await;
                }
                let mut calls = calls.lock().unwrap();
                match outcome {
                    Ok(reply) => calls.answered_by[index].push(reply.into_inner().pid),
                    Err(status) => calls.failures.push(format!("{status:?}")),
                }
            }
        }));
    }
    let wait_for = |done: &dyn Fn(&Calls) -> bool| {
        let calls = calls.clone();
        let started = std::time::Instant::now();
        loop {
            if done(&calls.lock().unwrap()) {
                return;
            }
            assert!(started.elapsed() < WITHIN * 2, "the client loops stalled");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    tokio::task::block_in_place(|| {
        wait_for(&|calls| calls.answered_by.iter().all(|pids| pids.len() >= 20));
        service.child.signal(Signal::SIGHUP);
        service.wait_lines("rolling restart complete", 1);
        // Every loop moved on to the new workers, through the GOAWAYs of the old ones.
        wait_for(&|calls| calls.each_answered_by_others(&old, 20));
    });
    stop_loops.store(true, Ordering::Relaxed);
    for each in loops {
        each.await.unwrap();
    }
    let calls = calls.lock().unwrap();
    let total: usize = calls.answered_by.iter().map(Vec::len).sum();
    assert!(
        calls.failures.is_empty(),
        "{} of {} calls failed: {:?}",
        calls.failures.len(),
        total + calls.failures.len(),
        calls.failures
    );
    let answering: HashSet<u32> = calls.answered_by.iter().flatten().copied().collect();
    assert!(
        service.child.workers().iter().all(|pid| !old.contains(pid)),
        "the old workers are gone"
    );
    assert!(
        answering.len() >= 3,
        "old and new workers answered: {answering:?}"
    );
    eprintln!(
        "{total} calls from {CLIENTS} clients answered by {} workers across the rollout; {} \
         sent again because the client had not sent them",
        answering.len(),
        calls.resent
    );
    drop(calls);
    stop(service);
}

/// A call whose request message never comes keeps the method waiting: the server ends it at
/// the client's deadline with `DEADLINE_EXCEEDED`, and serves on. tonic's own `Channel` would
/// give up at the deadline itself (as `CANCELLED`), so this client runs on hyper's HTTP/2 client,
/// which leaves the deadline to the server.
#[tokio::test]
async fn a_call_past_its_grpc_timeout_is_ended_by_the_server_with_deadline_exceeded() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let service = start("request_timeout = 30");
    let http = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<tonic::body::Body>();
    let origin: http::Uri = format!("http://{}", service.addr).parse().unwrap();
    let mut grpc = tonic::client::Grpc::with_origin(http.clone(), origin.clone());
    grpc.ready().await.expect("a connection");
    let mut request = Request::new(futures_util::stream::pending::<HelloRequest>());
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let call = grpc.client_streaming::<_, HelloRequest, proto::HelloReply, _>(
        request,
        http::uri::PathAndQuery::from_static("/buvar.example.greeter.v1.Greeter/SayHello"),
        tonic_prost::ProstCodec::default(),
    );
    let status = tokio::time::timeout(WITHIN, call)
        .await
        .expect("the server ends the call")
        .expect_err("no answer without a request message");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("deadline"), "{status:?}");
    assert!(
        took >= Duration::from_millis(300),
        "ended before its deadline: {took:?}"
    );
    eprintln!("a call with a deadline of 300 ms ended DEADLINE_EXCEEDED after {took:?}");

    let mut client = GreeterClient::with_origin(http, origin);
    let mut request = Request::new(hello("Ada"));
    request.set_timeout(WITHIN);
    let reply = client.say_hello(request).await.expect("an answer");
    assert_eq!(reply.get_ref().message, "Servus, Ada");
    stop(service);
}
