//! The notes resource on a real PostgreSQL, over a real socket. These tests are ignored
//! unless asked for: set {{env_prefix}}_DATABASE_URL to a database they may write to and run
//! `cargo test -- --include-ignored` (CI does, with a postgres service container).

use buvar_axum::Context;
use buvar_axum::kit::ConfigSource;
use buvar_axum::testing::{TestApp, TestServer};
use serde_json::{Value, json};

use {{crate_name}}::plugins::{database, notes};

fn config() -> ConfigSource {
    let url = std::env::var("{{env_prefix}}_DATABASE_URL")
        .expect("set {{env_prefix}}_DATABASE_URL to a PostgreSQL database the tests may write to");
    let toml = format!("[database]\nurl = {url:?}\npool_size = 2\n\n[readiness]\ncache = 0\n");
    ConfigSource::new().toml(&toml).expect("a valid config")
}

/// Runs the migrations as the service does before fork, then serves the plugins.
async fn server() -> TestServer {
    let config = config();
    let context = Context::new();
    context.add(config.clone());
    database::migrate(context)
        .await
        .expect("the migrations run");
    TestApp::new()
        .config(config)
        .load(database::plugin())
        .load(notes::plugin())
        .serve()
        .await
        .expect("the server starts")
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (status, body)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set {{env_prefix}}_DATABASE_URL and run cargo test -- --include-ignored"]
async fn a_note_is_created_read_listed_updated_and_deleted() {
    use reqwest::Method;
    let server = server().await;
    let client = reqwest::Client::new();
    let (status, created) = call(
        &client,
        Method::POST,
        &server.url("/notes"),
        Some(json!({ "title": "groceries", "body": "milk" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("an id");
    let url = server.url(&format!("/notes/{id}"));
    assert_eq!(
        call(&client, Method::GET, &url, None).await,
        (200, created.clone())
    );

    let (status, page) = call(
        &client,
        Method::GET,
        &server.url(&format!("/notes?after={}", id - 1)),
        None,
    )
    .await;
    assert_eq!((status, &page[0]), (200, &created));

    let changed = json!({ "id": id, "title": "groceries", "body": "oat milk" });
    let update = json!({ "title": "groceries", "body": "oat milk" });
    assert_eq!(
        call(&client, Method::PUT, &url, Some(update)).await,
        (200, changed)
    );
    assert_eq!(call(&client, Method::DELETE, &url, None).await.0, 204);
    assert_eq!(call(&client, Method::GET, &url, None).await.0, 404);
    assert_eq!(call(&client, Method::DELETE, &url, None).await.0, 404);
    server.stop().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set {{env_prefix}}_DATABASE_URL and run cargo test -- --include-ignored"]
async fn invalid_notes_are_422_naming_the_field() {
    use reqwest::Method;
    let server = server().await;
    let client = reqwest::Client::new();
    let url = server.url("/notes");
    let (status, body) = call(&client, Method::POST, &url, Some(json!({ "title": " " }))).await;
    assert_eq!((status, &body["field"]), (422, &json!("title")), "{body}");
    let long = "x".repeat(10_001);
    let (status, body) = call(
        &client,
        Method::POST,
        &url,
        Some(json!({ "title": "t", "body": long })),
    )
    .await;
    assert_eq!((status, &body["field"]), (422, &json!("body")), "{body}");
    for (input, field) in [
        (json!({ "title": "t", "body": 5 }), "body"),
        (json!({ "body": "no title" }), "title"),
    ] {
        let (status, body) = call(&client, Method::POST, &url, Some(input)).await;
        assert_eq!(status, 422, "{body}");
        let message = body["message"].as_str().expect("a message");
        assert!(message.contains(field), "{message}");
    }
    server.stop().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set {{env_prefix}}_DATABASE_URL and run cargo test -- --include-ignored"]
async fn readyz_pings_the_database() {
    let server = server().await;
    let client = reqwest::Client::new();
    let (status, body) = call(
        &client,
        reqwest::Method::GET,
        &server.url("/readyz?verbose"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"][0]["name"], "db");
    assert_eq!(body["checks"][0]["status"], "pass");
    server.stop().await;
}
