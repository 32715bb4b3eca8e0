//! The service's routes through the kit's test helpers: first without a socket, then on a real
//! server at a port the kernel picks.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use buvar_axum::testing::TestApp;
use buvar_kit::ConfigSource;
use tower::ServiceExt;

use {{crate_name}}::plugins::greeter;

#[tokio::test]
async fn greets_through_the_router_without_a_socket() {
    let (status, body) = TestApp::new()
        .load(greeter::plugin())
        .router(|router| async move {
            let request = Request::get("/greet/ada").body(Body::empty()).unwrap();
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let body = to_bytes(response.into_body(), 1024).await.unwrap();
            (status, body)
        })
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "Hello, ada!");
}

#[tokio::test]
async fn a_real_server_is_healthy_and_greets_with_the_configured_word() {
    let config = ConfigSource::new()
        .toml("[greeter]\ngreeting = \"Hi\"")
        .unwrap();
    let server = TestApp::new()
        .config(config)
        .load(greeter::plugin())
        .serve()
        .await
        .unwrap();

    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let greeting = reqwest::get(server.url("/greet/ada")).await.unwrap();
    assert_eq!(greeting.text().await.unwrap(), "Hi, ada!");
    let count = reqwest::get(server.url("/greetings")).await.unwrap();
    assert_eq!(count.text().await.unwrap(), "1");

    let report = server.stop().await;
    assert!(report.is_success(), "{report:?}");
    let task = report
        .tasks()
        .iter()
        .find(|task| task.name() == "greetings report");
    assert!(task.is_some_and(|task| task.is_done()), "{report:?}");
}
