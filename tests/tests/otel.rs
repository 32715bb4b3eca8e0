//! Traces across pre-forked workers (feature `otel`): a real OTLP/HTTP receiver (an HTTP
//! server decoding the protobuf export requests) and `service-server` with 2 workers, each
//! exporting its own spans after fork and flushing them when it stops.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use buvar_tests::service::Service;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// A span as received: its trace id, parent span id and name, and its service's name.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    parent_span_id: String,
    name: String,
    service: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver on a free port: every span of every export request it was sent.
async fn receiver() -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP export");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            Value::StringValue(name) => Some(name.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        store.lock().unwrap().push(Received {
                            trace_id: hex(&span.trace_id),
                            parent_span_id: hex(&span.parent_span_id),
                            name: span.name,
                            service: service.clone(),
                        });
                    }
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

const CONFIG: &str = "[http]\nport = 0\nforks = 2\n";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_joins_its_callers_trace_and_every_worker_flushes_its_spans_on_stop() {
    let (addr, received) = receiver().await;
    let endpoint = format!("http://{addr}");
    let mut service = Service::start(
        CONFIG,
        &[
            ("SVC_OTEL_ENDPOINT", endpoint.as_str()),
            ("SVC_OTEL_SERVICE_NAME", "svc-under-test"),
        ],
        2,
    );
    let client = reqwest::Client::new();
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    for _ in 0..20 {
        let response = client
            .get(format!("http://{}/slow?ms=1", service.addr))
            .header("traceparent", &traceparent)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // A request without a caller starts a trace of its own.
    let root = client
        .get(format!("http://{}/pid", service.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 200);
    tokio::task::block_in_place(|| service.wait_lines("slow request started", 20));
    let (status, stdout, _) = tokio::task::block_in_place(|| service.stop());
    assert!(status.success(), "{status}");

    // Stopping flushed every worker's spans: nothing arrives later.
    let spans = received.lock().unwrap().clone();
    let joined: Vec<&Received> = spans.iter().filter(|s| s.trace_id == TRACE).collect();
    assert_eq!(joined.len(), 20, "{spans:?}");
    assert!(
        joined
            .iter()
            .all(|s| s.parent_span_id == CALLER && s.name == "request")
    );
    assert!(
        spans.iter().all(|s| s.service == "svc-under-test"),
        "{spans:?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id != TRACE && s.parent_span_id.is_empty()),
        "the request without a caller has a root span: {spans:?}"
    );
    // The handler's log lines carry the trace id and the request id.
    let logged: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("slow request started"))
        .collect();
    assert_eq!(logged.len(), 20);
    for line in logged {
        assert!(
            line.contains(&format!("\"trace_id\":\"{TRACE}\"")),
            "{line}"
        );
        assert!(line.contains("\"request_id\":"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampling_ratio_of_0_exports_no_trace_started_here_and_a_bad_ratio_stops_the_start() {
    let (addr, received) = receiver().await;
    let endpoint = format!("http://{addr}");
    let service = Service::start(
        CONFIG,
        &[
            ("SVC_OTEL_ENDPOINT", endpoint.as_str()),
            ("SVC_OTEL_SAMPLING_RATIO", "0"),
        ],
        2,
    );
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let response = client
            .get(format!("http://{}/pid", service.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let (status, _, _) = tokio::task::block_in_place(|| service.stop());
    assert!(status.success(), "{status}");
    assert!(received.lock().unwrap().is_empty());

    let output =
        buvar_tests::service::run(CONFIG, &["--check"], &[("SVC_OTEL_SAMPLING_RATIO", "1.5")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("otel.sampling_ratio"), "{stderr}");
    tokio::time::sleep(Duration::ZERO).await;
}
