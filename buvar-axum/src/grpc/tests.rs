//! gRPC calls through the server's router, without a socket: a hand-written unary service
//! (the messages are tonic-health's) that reads the kit's lookups, deadlines, and the health
//! service before the server serves.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use buvar_kit::{BoxError, ConfigSource, Plugin, Prepare};
use http::{Request, Response};
use http_body_util::BodyExt;
use prost::Message;
use tonic::server::{NamedService, UnaryService};
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::{Service, ServiceExt};

use super::{GrpcRequestExt, PrepareGrpcExt};
use crate::testing::TestApp;

/// A component.
struct Word(&'static str);

/// What an adapter makes from the component and the call's head.
struct Made(String);

fn made(word: Arc<Word>, head: Arc<http::request::Parts>) -> Made {
    Made(format!("{} {}", word.0, head.uri.path()))
}

/// `test.Probe/Probe`: the request's `service` field says what to do; the answer's status is
/// `SERVING` when every lookup found what it should.
#[derive(Debug, Clone)]
struct Probe;

impl NamedService for Probe {
    const NAME: &'static str = "test.Probe";
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl Service<Request<Body>> for Probe {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(async move {
            let codec =
                tonic_prost::ProstCodec::<HealthCheckResponse, HealthCheckRequest>::default();
            Ok(tonic::server::Grpc::new(codec)
                .unary(ProbeMethod, request)
                .await)
        })
    }
}

struct ProbeMethod;

impl UnaryService<HealthCheckRequest> for ProbeMethod {
    type Response = HealthCheckResponse;
    type Future = BoxFuture<tonic::Response<HealthCheckResponse>, Status>;

    fn call(&mut self, request: tonic::Request<HealthCheckRequest>) -> Self::Future {
        Box::pin(async move {
            if request.get_ref().service == "sleep" {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            let component = request.component::<Word>()?;
            let injected = request.nject::<Made>().await?;
            // The ambient form: the method runs inside the call's request context.
            let ambient =
                buvar_kit::get::<Word>().map_err(|err| Status::internal(err.to_string()))?;
            let everything_found = component.0 == "hello"
                && injected.0 == "hello /test.Probe/Probe"
                && ambient.0 == "hello";
            let status = if everything_found {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            Ok(tonic::Response::new(HealthCheckResponse {
                status: status.into(),
            }))
        })
    }
}

async fn app(cx: Prepare) -> Result<(), BoxError> {
    cx.context().add(Word("hello"));
    cx.adapters().register_infallible(made);
    cx.grpc(Probe);
    Ok(())
}

/// A gRPC request for `path` carrying `message`, with `headers`.
fn call(path: &str, message: &HealthCheckRequest, headers: &[(&str, &str)]) -> Request<Body> {
    let payload = message.encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&payload);
    let mut request = Request::post(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from(frame)).unwrap()
}

/// The call's gRPC status (from the trailers, or the headers of a trailers-only answer), its
/// message, and the response message when there is one.
async fn outcome(response: Response<Body>) -> (Code, String, Option<HealthCheckResponse>) {
    let (head, body) = response.into_parts();
    assert_eq!(head.status, 200, "gRPC answers HTTP 200");
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let bytes: Bytes = collected.to_bytes();
    // A trailers-only answer carries the status in its headers.
    let status = Status::from_header_map(&trailers)
        .or_else(|| Status::from_header_map(&head.headers))
        .expect("a grpc-status");
    let message = (bytes.len() > 5).then(|| HealthCheckResponse::decode(&bytes[5..]).unwrap());
    (status.code(), status.message().to_owned(), message)
}

fn test_app(toml: &str) -> TestApp {
    TestApp::new()
        .config(ConfigSource::new().toml(toml).unwrap())
        .load(Plugin::new("probe", app))
}

async fn ask(toml: &str, request: Request<Body>) -> (Code, String, Option<HealthCheckResponse>) {
    test_app(toml)
        .router(
            |router: Router| async move { outcome(router.oneshot(request).await.unwrap()).await },
        )
        .await
}

fn probe(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

#[tokio::test]
async fn a_method_reads_components_injected_values_and_the_ambient_context_of_its_call() {
    let (code, text, answer) = ask("", call("/test.Probe/Probe", &probe(""), &[])).await;
    assert_eq!(code, Code::Ok, "{text}");
    assert_eq!(answer.unwrap().status(), ServingStatus::Serving);
}

#[tokio::test(start_paused = true)]
async fn a_call_without_a_deadline_ends_at_the_request_timeout_as_deadline_exceeded() {
    let request = call("/test.Probe/Probe", &probe("sleep"), &[]);
    let started = tokio::time::Instant::now();
    let (code, text, _) = ask("[http]\nrequest_timeout = 2\n", request).await;
    assert_eq!(code, Code::DeadlineExceeded, "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_deadline_shorter_than_the_request_timeout_ends_the_call() {
    let request = call(
        "/test.Probe/Probe",
        &probe("sleep"),
        &[("grpc-timeout", "250m")],
    );
    let started = tokio::time::Instant::now();
    let (code, text, _) = ask("[http]\nrequest_timeout = 30\n", request).await;
    assert_eq!(code, Code::DeadlineExceeded, "{text}");
    assert!(text.contains("250ms"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_malformed_grpc_timeout_is_refused_naming_the_header() {
    let request = call("/test.Probe/Probe", &probe(""), &[("grpc-timeout", "soon")]);
    let (code, text, _) = ask("", request).await;
    assert_eq!(code, Code::Internal);
    assert!(
        text.contains("malformed grpc-timeout header \"soon\""),
        "{text}"
    );
}

#[tokio::test]
async fn health_is_not_serving_before_the_server_accepts_connections() {
    let check = "/grpc.health.v1.Health/Check";
    for service in ["", "test.Probe", "grpc.health.v1.Health"] {
        let (code, text, answer) = ask("", call(check, &probe(service), &[])).await;
        assert_eq!(code, Code::Ok, "{service}: {text}");
        assert_eq!(answer.unwrap().status(), ServingStatus::NotServing);
    }
}

#[tokio::test]
async fn health_of_a_service_nobody_added_is_not_found() {
    let request = call("/grpc.health.v1.Health/Check", &probe("no.Such"), &[]);
    let (code, text, _) = ask("", request).await;
    assert_eq!(code, Code::NotFound);
    assert!(text.contains("no.Such"), "{text}");
}

#[tokio::test]
#[should_panic(expected = "routes of plugin `again` clash")]
async fn the_same_service_from_two_plugins_is_a_clash_naming_the_second() {
    let again = Plugin::new("again", |cx: Prepare| async move {
        cx.grpc(Probe);
        Ok::<(), BoxError>(())
    });
    test_app("")
        .load(again)
        .router(|_router: Router| async {})
        .await;
}

#[tokio::test]
async fn a_message_over_the_body_limit_ends_the_call_with_a_grpc_status() {
    let big = probe(&"x".repeat(64 * 1024));
    let (code, text, answer) = ask(
        "[http]\nbody_limit = 1024\n",
        call("/test.Probe/Probe", &big, &[]),
    )
    .await;
    assert!(answer.is_none(), "{answer:?}");
    assert_eq!(code, Code::ResourceExhausted, "{text}");
    assert!(text.contains("[http] body_limit (1024 bytes)"), "{text}");
}
