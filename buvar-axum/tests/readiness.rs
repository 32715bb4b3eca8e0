//! `/readyz` with checks that plugins add, over a real socket: 503 naming the failing check,
//! the detail as JSON, `/healthz` unaffected, the cache, and bad settings refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use buvar_axum::PrepareExt;
use buvar_axum::testing::{TestApp, TestServer};
use buvar_kit::{BoxError, ConfigSource, Plugin, Prepare};
use serde_json::Value;

/// Whether the fake dependency is up, and how often it was asked.
#[derive(Default)]
struct Dependency {
    down: AtomicBool,
    pings: AtomicUsize,
}

async fn database(cx: Prepare) -> Result<(), BoxError> {
    cx.context().add(Dependency::default());
    cx.readiness_check("db", |ctx| async move {
        let dependency = ctx.get::<Dependency>()?;
        dependency.pings.fetch_add(1, Ordering::SeqCst);
        if dependency.down.load(Ordering::SeqCst) {
            Err("connection to postgres://app:hunter2@db:5432/app refused".into())
        } else {
            Ok(())
        }
    });
    Ok(())
}

async fn serve(config: &str) -> (TestServer, Arc<Dependency>) {
    let server = TestApp::new()
        .config(ConfigSource::new().toml(config).unwrap())
        .load(Plugin::new("database", database))
        .serve()
        .await
        .unwrap();
    let dependency = server.context().get::<Dependency>().unwrap();
    (server, dependency)
}

async fn text(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (
        status,
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn readyz_is_503_naming_a_failing_check_while_healthz_stays_200() {
    let (server, db) = serve("[readiness]\ncache = 0").await;
    let client = reqwest::Client::new();
    assert_eq!(
        text(&client, &server.url("/readyz")).await,
        (200, "ready".to_owned())
    );

    db.down.store(true, Ordering::SeqCst);
    assert_eq!(
        text(&client, &server.url("/readyz")).await,
        (503, "failing: db".to_owned())
    );
    assert_eq!(
        text(&client, &server.url("/healthz")).await,
        (200, "ok".to_owned())
    );
    for request in [
        client.get(server.url("/readyz?verbose")),
        client
            .get(server.url("/readyz"))
            .header("accept", "application/json"),
    ] {
        let (status, body) = json(request).await;
        assert_eq!(status, 503);
        assert_eq!(body["status"], "failing");
        let check = &body["checks"][0];
        assert_eq!(
            (&check["name"], &check["status"]),
            (&"db".into(), &"fail".into())
        );
        assert_eq!(
            check["error"],
            "connection to postgres://app:***@db:5432/app refused"
        );
        assert!(check["duration_ms"].as_f64().unwrap() >= 0.0, "{body}");
    }

    db.down.store(false, Ordering::SeqCst);
    let (status, body) = json(client.get(server.url("/readyz?verbose=1"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["checks"][0]["status"], "pass");
    assert!(body["checks"][0].get("error").is_none(), "{body}");
    assert!(server.stop().await.is_success());
}

#[tokio::test]
async fn a_storm_of_probes_within_the_cache_time_pings_once() {
    let (server, db) = serve("[readiness]\ncache = 300").await;
    let client = reqwest::Client::new();
    let url = server.url("/readyz");
    let probes = (0..40).map(|_| text(&client, &url));
    let answers = futures_util::future::join_all(probes).await;
    assert!(answers.iter().all(|(status, _)| *status == 200));
    assert_eq!(db.pings.load(Ordering::SeqCst), 1);

    // Within the cache time an outage is not seen yet: that is the price of the cache.
    db.down.store(true, Ordering::SeqCst);
    assert_eq!(text(&client, &server.url("/readyz")).await.0, 200);
    assert_eq!(db.pings.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn readiness_settings_out_of_range_stop_the_server_naming_the_key() {
    let err = TestApp::new()
        .config(
            ConfigSource::new()
                .toml("[readiness]\ntimeout = 0")
                .unwrap(),
        )
        .load(Plugin::new("database", database))
        .serve()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`readiness.timeout` must be between 1ms and 5m, found 0"),
        "{err}"
    );
}

#[tokio::test]
async fn two_checks_with_one_name_stop_the_server_naming_both_plugins() {
    let err = TestApp::new()
        .load(Plugin::new("database", database))
        .load(Plugin::new("replica", |cx: Prepare| async move {
            cx.readiness_check("db", |_| async { Ok(()) });
            Ok::<(), BoxError>(())
        }))
        .serve()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`replica`") && err.contains("`database`"),
        "{err}"
    );
}
