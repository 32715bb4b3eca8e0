//! The extractors and the per-request context layer, driven through a router with `oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use buvar_kit::extract::{Component, Inject};
use buvar_kit::{Context, ContextLayer, RequestContext};
use http::request::Parts;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Greeting(String);
struct Caller(String);
struct RequestCounter(std::sync::atomic::AtomicUsize);

fn caller(parts: Arc<Parts>) -> Caller {
    let name = parts.headers.get("x-caller").and_then(|v| v.to_str().ok());
    Caller(name.unwrap_or("anonymous").to_owned())
}

async fn greet(Component(greeting): Component<Greeting>, Inject(caller): Inject<Caller>) -> String {
    format!("{}, {}", greeting.0, caller.0)
}

async fn missing(Component(_): Component<u128>) -> &'static str {
    "unreachable"
}

#[derive(Debug)]
struct Database;
async fn failing_database() -> Result<Database, std::io::Error> {
    Err(std::io::Error::other("database is down"))
}
async fn uses_database(Inject(_): Inject<Database>) -> &'static str {
    "unreachable"
}

/// Adds a per-request value, then reads it back after yielding, so concurrent requests would
/// see each other's values if contexts leaked.
async fn scoped(ctx: Context, Inject(caller): Inject<Caller>) -> String {
    ctx.add(caller.0.clone());
    tokio::task::yield_now().await;
    let counter = ctx.get::<RequestCounter>().unwrap();
    counter.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    (*ctx.get::<String>().unwrap()).clone()
}

fn app(plugins: &Context) -> Router {
    Router::new()
        .route("/greet", get(greet))
        .route("/missing", get(missing))
        .route("/db", get(uses_database))
        .route("/scoped", get(scoped))
        .layer(ContextLayer::new(plugins.clone()))
}

fn plugins() -> Context {
    let plugins = Context::new();
    plugins.add(Greeting("Hello".into()));
    plugins.add(RequestCounter(Default::default()));
    plugins.adapters().register_infallible(caller);
    plugins.adapters().register(failing_database);
    plugins
}

async fn call(router: Router, uri: &str, caller: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(uri);
    if let Some(caller) = caller {
        request = request.header("x-caller", caller);
    }
    let response = router
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn component_and_inject_extractors_serve_present_values() {
    let plugins = plugins();
    let (status, body) = call(app(&plugins), "/greet", Some("ada")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "Hello, ada");
}

#[tokio::test]
async fn missing_component_answers_500_without_details() {
    let (status, body) = call(app(&plugins()), "/missing", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !body.contains("u128"),
        "internal types stay in the log: {body}"
    );
}

#[tokio::test]
async fn failing_adapter_answers_500() {
    let (status, _) = call(app(&plugins()), "/db", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn router_without_the_layer_answers_500() {
    let router = Router::new().route("/greet", get(greet));
    let (status, _) = call(router, "/greet", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_contexts_are_isolated_under_concurrent_requests() {
    let plugins = plugins();
    let router = app(&plugins);
    let calls = (0..200).map(|i| {
        let router = router.clone();
        tokio::spawn(async move {
            let name = format!("caller-{i}");
            let (status, body) = call(router, "/scoped", Some(&name)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, name);
        })
    });
    for call in calls {
        call.await.unwrap();
    }
    assert!(
        plugins.get::<String>().is_err(),
        "nothing leaked into the plugin context"
    );
    assert!(plugins.get::<Parts>().is_err());
    let counter = plugins.get::<RequestCounter>().unwrap();
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 200);
}

#[derive(serde::Deserialize)]
struct Limits {
    max_items: u32,
}
buvar_kit::section!(Limits, "limits");

async fn limits(buvar_kit::Config(limits): buvar_kit::Config<Limits>) -> String {
    limits.max_items.to_string()
}

#[tokio::test]
async fn config_extractor_reads_a_typed_section() {
    let plugins = Context::new();
    plugins.add(
        buvar_kit::ConfigSource::new()
            .toml("[limits]\nmax_items = 12")
            .unwrap(),
    );
    let router = Router::new()
        .route("/limits", get(limits))
        .layer(ContextLayer::new(plugins));
    assert_eq!(
        call(router, "/limits", None).await,
        (StatusCode::OK, "12".to_owned())
    );
}

#[tokio::test]
async fn config_extractor_with_a_bad_section_answers_500() {
    let plugins = Context::new();
    plugins.add(
        buvar_kit::ConfigSource::new()
            .toml("[limits]\nmax_items = \"many\"")
            .unwrap(),
    );
    let router = Router::new()
        .route("/limits", get(limits))
        .layer(ContextLayer::new(plugins));
    assert_eq!(
        call(router, "/limits", None).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_request_context_is_freed_after_the_response() {
    let plugins = plugins();
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = dropped.clone();
    let router = Router::new()
        .route(
            "/",
            get(move |ctx: Context, Inject(caller): Inject<Caller>| {
                ctx.add(DropFlag(flag.clone()));
                async move { caller.0.clone() }
            }),
        )
        .layer(ContextLayer::new(plugins.clone()));
    let (status, body) = call(router, "/", Some("ada")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ada"));
    assert!(
        dropped.load(std::sync::atomic::Ordering::SeqCst),
        "the request's context (and what the handler added to it) outlived the request"
    );
}

struct Shared(&'static str);

async fn shared(Inject(shared): Inject<Shared>) -> &'static str {
    shared.0
}

#[tokio::test]
async fn inject_hands_every_request_the_same_made_singleton() {
    let plugins = Context::new();
    plugins
        .adapters()
        .register_infallible(|| Arc::new(Shared("one")))
        .singleton();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let router = Router::new()
        .route(
            "/",
            get({
                let seen = seen.clone();
                move |Inject(shared): Inject<Arc<Shared>>| async move {
                    seen.lock().unwrap().push(shared);
                    "ok"
                }
            }),
        )
        .layer(ContextLayer::new(plugins));
    for _ in 0..3 {
        assert_eq!(call(router.clone(), "/", None).await.0, StatusCode::OK);
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| Arc::ptr_eq(s, &seen[0])));
}

#[tokio::test]
async fn inject_prefers_a_value_in_the_request_context_over_a_made_singleton() {
    let plugins = Context::new();
    plugins
        .adapters()
        .register_infallible(|| Shared("singleton"))
        .singleton();
    let router = Router::new()
        .route("/", get(shared))
        .layer(axum::middleware::from_fn(
            |request: axum::extract::Request, next: axum::middleware::Next| async move {
                if request.headers().contains_key("x-own") {
                    if let Some(context) = request.extensions().get::<RequestContext>() {
                        context.context().add(Shared("request"));
                    }
                }
                next.run(request).await
            },
        ))
        .layer(ContextLayer::new(plugins));
    assert_eq!(
        call(router.clone(), "/", None).await,
        (StatusCode::OK, "singleton".to_owned())
    );
    let request = Request::get("/")
        .header("x-own", "1")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "request");
    assert_eq!(
        call(router, "/", None).await,
        (StatusCode::OK, "singleton".to_owned()),
        "the request's value stayed in that request"
    );
}

#[derive(Debug, serde::Deserialize)]
struct LimitsConfig {
    #[allow(dead_code)]
    limit: u32,
}
buvar_kit::section!(LimitsConfig, "limits");

#[tokio::test]
async fn each_extractor_rejects_with_its_own_type_status_and_body() {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    use buvar_kit::Config;
    use buvar_kit::extract::{
        ComponentRejection, ConfigRejection, ContextRejection, InjectRejection,
    };

    let (mut bare, ()) = Request::get("/").body(()).unwrap().into_parts();
    let context = Context::from_request_parts(&mut bare, &())
        .await
        .unwrap_err();
    assert!(matches!(
        context,
        ContextRejection::MissingRequestContext(_)
    ));
    assert!(
        context.to_string().contains("add `ContextLayer`"),
        "{context}"
    );
    let component = Component::<u8>::from_request_parts(&mut bare, &())
        .await
        .err()
        .unwrap();
    assert!(matches!(
        component,
        ComponentRejection::MissingRequestContext(_)
    ));

    let (mut parts, ()) = Request::get("/").body(()).unwrap().into_parts();
    parts.extensions.insert(RequestContext::new(Context::new()));
    let component = Component::<u8>::from_request_parts(&mut parts, &())
        .await
        .err()
        .unwrap();
    assert!(matches!(&component, ComponentRejection::Missing(err) if err.type_name() == "u8"));
    let inject = Inject::<u8>::from_request_parts(&mut parts, &())
        .await
        .err()
        .unwrap();
    assert!(matches!(&inject, InjectRejection::Resolve(err) if err.is_missing()));
    let config = Config::<LimitsConfig>::from_request_parts(&mut parts, &())
        .await
        .err()
        .unwrap();
    assert!(matches!(config, ConfigRejection::Config(_)));
    assert!(config.to_string().contains("no `ConfigSource`"), "{config}");

    assert_eq!(component.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(inject.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(config.body_text(), "Internal Server Error");
    let response = inject.into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        b"Internal Server Error",
        "the reason is logged, not sent"
    );
}
