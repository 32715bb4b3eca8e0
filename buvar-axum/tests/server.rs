//! The server plugin in process: routes from plugins, built-in probes, extractors over a real
//! socket, panics, limits and the drain.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use buvar_axum::testing::TestApp;
use buvar_axum::{Component, Config, Inject, PrepareExt, ServerError};
use buvar_kit::plugin::Signals;
use buvar_kit::{BoxError, ConfigSource, Plugin, Prepare, Stage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tower::ServiceExt;

fn routes(name: &'static str, router: fn() -> Router) -> Plugin {
    Plugin::new(name, move |cx: Prepare| async move {
        cx.routes(router());
        Ok::<_, BoxError>(())
    })
}

fn users() -> Router {
    Router::new().route("/users", get(|| async { "users" }))
}

fn orders() -> Router {
    Router::new().route("/orders", get(|| async { "orders" }))
}

fn other_users() -> Router {
    Router::new().route("/users", get(|| async { "other users" }))
}

async fn get_status(router: Router, uri: &str) -> StatusCode {
    router
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn routes_of_several_plugins_are_merged_with_the_probes() {
    TestApp::new()
        .load(routes("users", users))
        .load(routes("orders", orders))
        .router(|router| async move {
            assert_eq!(get_status(router.clone(), "/users").await, StatusCode::OK);
            assert_eq!(get_status(router.clone(), "/orders").await, StatusCode::OK);
            assert_eq!(get_status(router.clone(), "/healthz").await, StatusCode::OK);
            assert_eq!(get_status(router, "/nope").await, StatusCode::NOT_FOUND);
        })
        .await;
}

#[tokio::test]
async fn clashing_routes_are_an_error_naming_the_plugin() {
    let prepared = Stage::new()
        .signals(Signals::none())
        .load(routes("users", users))
        .load(routes("legacy", other_users))
        .prepare()
        .await
        .unwrap();
    let err = buvar_axum::router(prepared.context(), &Default::default()).unwrap_err();
    assert!(matches!(&err, ServerError::RouteClash { plugin, .. } if plugin == "legacy"));
    assert!(err.to_string().contains("/users"), "{err}");
    prepared.teardown().await;
}

#[tokio::test]
async fn readyz_answers_503_once_the_stage_is_cancelled() {
    TestApp::new()
        .router(|router| async move {
            // Without a running server the stage is not ready yet.
            assert_eq!(
                get_status(router, "/readyz").await,
                StatusCode::SERVICE_UNAVAILABLE
            );
        })
        .await;

    let server = TestApp::new().serve().await.unwrap();
    let client = reqwest::Client::new();
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    server.cancel().cancel();
    // The pooled keep-alive connection is still open during the drain's first moment.
    let draining = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(draining.status(), 503);
    assert_eq!(draining.headers()["connection"], "close");
    assert!(server.stop().await.is_success());
}

#[derive(serde::Deserialize)]
struct Limits {
    max: u32,
}
buvar_kit::section!(Limits, "limits");

struct Counter(std::sync::atomic::AtomicU32);
struct Caller(String);

fn caller(parts: Arc<axum::http::request::Parts>) -> Caller {
    let name = parts.headers.get("x-caller").and_then(|v| v.to_str().ok());
    Caller(name.unwrap_or("anonymous").to_owned())
}

async fn extractors(
    Component(counter): Component<Counter>,
    Inject(caller): Inject<Caller>,
    Config(limits): Config<Limits>,
) -> String {
    let n = counter.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{} {n} {}", caller.0, limits.max)
}

async fn panicking() -> &'static str {
    panic!("handler bug")
}

fn service_plugin() -> Plugin {
    Plugin::new("service", |cx: Prepare| async move {
        cx.context().add(Counter(Default::default()));
        cx.adapters().register_infallible(caller);
        cx.routes(
            Router::new()
                .route("/extract", get(extractors))
                .route("/panic", get(panicking))
                .route("/echo", post(|body: String| async move { body }))
                .route(
                    "/slow",
                    get(|| async {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        "late"
                    }),
                ),
        );
        Ok::<_, BoxError>(())
    })
}

fn config() -> ConfigSource {
    ConfigSource::new()
        .toml(
            "[limits]\nmax = 7\n[http]\nbody_limit = 16\nrequest_timeout = 0.2\nheader_read_timeout = 0.3",
        )
        .unwrap()
}

async fn serve_service() -> buvar_axum::testing::TestServer {
    TestApp::new()
        .config(config())
        .load(service_plugin())
        .serve()
        .await
        .unwrap()
}

#[tokio::test]
async fn extractors_work_over_a_real_socket() {
    let server = serve_service().await;
    let client = reqwest::Client::new();
    for n in 0..3 {
        let body = client
            .get(server.url("/extract"))
            .header("x-caller", "ada")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, format!("ada {n} 7"));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let server = serve_service().await;
    let client = reqwest::Client::new();
    let panicked = client.get(server.url("/panic")).send().await.unwrap();
    assert_eq!(panicked.status(), 500);
    let after = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(after.status(), 200);
    assert!(after.headers().contains_key("x-request-id"));
    server.stop().await;
}

#[tokio::test]
async fn body_over_the_limit_gets_413_and_a_slow_handler_408() {
    TestApp::new()
        .config(config())
        .load(service_plugin())
        .router(|router| async move {
            let small = Request::post("/echo").body(Body::from("tiny")).unwrap();
            let response = router.clone().oneshot(small).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let large = Request::post("/echo")
                .body(Body::from("x".repeat(1024)))
                .unwrap();
            let response = router.clone().oneshot(large).await.unwrap();
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let slow = Request::get("/slow").body(Body::empty()).unwrap();
            let response = router.oneshot(slow).await.unwrap();
            assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        })
        .await;
}

#[tokio::test]
async fn a_client_sending_headers_too_slowly_is_cut_off() {
    let server = serve_service().await;
    let addr = server.base_url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection after header_read_timeout");
    assert!(read.is_ok());
    assert!(
        rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    server.stop().await;
}

#[tokio::test]
async fn stopping_waits_for_the_request_in_flight() {
    let started = Arc::new(Notify::new());
    let plugin = {
        let started = started.clone();
        Plugin::new("slow", move |cx: Prepare| {
            let started = started.clone();
            async move {
                cx.routes(Router::new().route(
                    "/work",
                    get(move || {
                        let started = started.clone();
                        async move {
                            started.notify_one();
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            "done"
                        }
                    }),
                ));
                Ok::<_, BoxError>(())
            }
        })
    };
    let server = TestApp::new().load(plugin).serve().await.unwrap();
    let request = tokio::spawn(reqwest::get(server.url("/work")));
    started.notified().await;
    let report = server.stop().await;
    assert!(report.is_success());
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "done");
}

#[tokio::test]
async fn inherited_sockets_are_named_components_and_are_served() {
    use buvar_axum::InheritedSockets;
    use buvar_axum::sockets::{BindOptions, SocketUri, bind, parse_uris};

    let sockets = bind(
        &parse_uris(["tcp://127.0.0.1:0"]).unwrap(),
        &BindOptions::default(),
    )
    .unwrap();
    let local = sockets[0].local_addr().clone();
    let context = buvar_kit::Context::new();
    context.add(InheritedSockets::new(sockets));
    let prepared = Stage::with_context(context)
        .signals(Signals::none())
        .load(buvar_axum::plugin())
        .prepare()
        .await
        .unwrap();
    let named = prepared
        .context()
        .get_named::<SocketUri>("tcp://127.0.0.1:0")
        .unwrap();
    assert_eq!(*named, local);
    let readiness = prepared.context().get::<buvar_axum::Readiness>().unwrap();
    let cancel = prepared.cancel();
    let stage = tokio::spawn(prepared.run());
    assert_eq!(readiness.wait().await, vec![local.clone()]);
    let SocketUri::Tcp(addr) = local else {
        panic!("bound a TCP socket")
    };
    let body = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    cancel.cancel();
    assert!(stage.await.unwrap().is_success());
}
