//! The current context: read from helpers deep inside stage tasks, handlers and jobs, never from
//! outside of them.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use buvar_kit::extract::Component;
use buvar_kit::plugin::StageReport;
use buvar_kit::{
    BoxError, Cancel, Context, ContextLayer, Jobs, Plugin, Prepare, RequestContext, Stage,
};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::{Barrier, oneshot};
use tower::ServiceExt;
use tower::util::MapRequestLayer;

#[derive(Debug)]
struct FromPlugin(&'static str);
#[derive(Debug)]
struct FromTask(String);

fn level_three() -> Result<(String, String), BoxError> {
    let plugin = buvar_kit::get::<FromPlugin>()?;
    let task = buvar_kit::get::<FromTask>()?;
    Ok((plugin.0.to_owned(), task.0.clone()))
}

fn level_two() -> Result<(String, String), BoxError> {
    level_three()
}

async fn level_one() -> Result<(String, String), BoxError> {
    tokio::task::yield_now().await;
    level_two()
}

/// Runs `app` as the stage's only plugin, until its tasks end.
async fn run_alone<Fut>(app: fn(Prepare) -> Fut) -> StageReport
where
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    Stage::new()
        .load(Plugin::new("app", app))
        .run()
        .await
        .expect("the stage runs")
}

#[tokio::test]
async fn a_helper_three_calls_deep_in_a_task_reads_the_plugin_and_the_task_context() {
    async fn app(cx: Prepare) -> Result<(), BoxError> {
        cx.context().add(FromPlugin("plugin"));
        // The prepare step has the plugin context as its current one.
        assert_eq!(buvar_kit::get::<FromPlugin>()?.0, "plugin");
        cx.task("reader", |_: Context| async move {
            Context::current()?.add(FromTask("task".into()));
            let read = level_one().await?;
            buvar_kit::get::<Cancel>()?.cancel();
            Ok::<_, BoxError>(read)
        });
        Ok(())
    }
    let report = run_alone(app).await;
    assert_eq!(
        report.tasks()[0].value::<(String, String)>(),
        Some(&("plugin".to_owned(), "task".to_owned())),
        "{:?}",
        report.tasks()[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn blocking_code_run_in_scope_reads_its_tasks_context_and_a_panic_leaves_the_scope() {
    async fn app(cx: Prepare) -> Result<(), BoxError> {
        cx.context().add(FromPlugin("plugin"));
        cx.task("blocking", |_: Context| async move {
            Context::current()?.add(FromTask("task".into()));
            let context = Context::current()?;
            let read = tokio::task::spawn_blocking(move || {
                let outside = buvar_kit::get::<FromTask>().is_err();
                let inside = context.in_scope(level_three);
                // A panic inside unwinds out of the scope: the thread has no context after it.
                let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    context.in_scope(|| panic!("in the blocking helper"))
                }))
                .is_err();
                (outside, inside, panicked, Context::try_current().is_none())
            })
            .await?;
            buvar_kit::get::<Cancel>()?.cancel();
            let (outside, inside, panicked, left) = read;
            Ok::<_, BoxError>((outside, inside?, panicked, left))
        });
        Ok(())
    }
    let report = run_alone(app).await;
    assert_eq!(
        report.tasks()[0].value::<(bool, (String, String), bool, bool)>(),
        Some(&(true, ("plugin".to_owned(), "task".to_owned()), true, true)),
        "{:?}",
        report.tasks()[0]
    );
}

#[tokio::test]
async fn concurrent_tasks_each_see_their_own_writes_only() {
    async fn app(cx: Prepare) -> Result<(), BoxError> {
        let both_wrote = Arc::new(Barrier::new(2));
        for name in ["one", "two"] {
            let both_wrote = both_wrote.clone();
            cx.task(name, move |_: Context| async move {
                Context::current()?.add(FromTask(name.to_owned()));
                // Neither reads before both have written.
                both_wrote.wait().await;
                let seen = buvar_kit::get::<FromTask>()?.0.clone();
                Ok::<_, BoxError>(seen)
            });
        }
        Ok(())
    }
    let report = run_alone(app).await;
    let seen: Vec<Option<&String>> = report.tasks().iter().map(|t| t.value::<String>()).collect();
    assert_eq!(seen, [Some(&"one".to_owned()), Some(&"two".to_owned())]);
}

struct User(&'static str);

fn user_name() -> String {
    buvar_kit::get::<User>().map_or_else(|err| err.to_string(), |user| user.0.to_owned())
}

async fn handler() -> String {
    user_name()
}

async fn authenticate(request: Request, next: Next) -> Response {
    let context = request.extensions().get::<RequestContext>().unwrap();
    context.context().add(User("ada"));
    next.run(request).await
}

#[tokio::test]
async fn a_handlers_helper_reads_what_a_middleware_added_to_the_request_context() {
    let plugins = Context::new();
    let router = Router::new()
        .route("/", get(handler))
        .layer(middleware::from_fn(authenticate))
        .layer(ContextLayer::new(plugins.clone()));
    let response = router
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ada");
    assert!(
        plugins.get::<User>().is_err(),
        "the request's value stayed in the request"
    );
}

#[tokio::test]
async fn a_job_spawned_with_the_helper_sees_its_parents_context_and_a_plain_spawn_gets_the_error() {
    let context = Context::new();
    context.add(FromPlugin("parent"));
    let jobs = Jobs::new();
    let (job_tx, job_rx) = oneshot::channel();
    let (spawned, plain) = context
        .scope(async {
            jobs.spawn("reader", async move {
                job_tx
                    .send(buvar_kit::get::<FromPlugin>().map(|v| v.0))
                    .ok();
            });
            let spawned = buvar_kit::spawn(async { buvar_kit::get::<FromPlugin>().map(|v| v.0) });
            let plain = tokio::spawn(async { buvar_kit::get::<FromPlugin>().map(|v| v.0) });
            (spawned.await.unwrap(), plain.await.unwrap())
        })
        .await;
    assert_eq!(job_rx.await.unwrap().unwrap(), "parent");
    assert_eq!(spawned.unwrap(), "parent");
    let err = plain.unwrap_err();
    assert!(err.is_outside_context(), "{err}");
    assert!(
        err.to_string()
            .contains("a plain `tokio::spawn` carries none"),
        "{err}"
    );
    jobs.shutdown().await;
}

#[tokio::test]
async fn current_outside_a_stage_is_an_error_naming_where_a_context_exists() {
    assert!(Context::try_current().is_none());
    let err = Context::current().unwrap_err().to_string();
    for place in [
        "a plugin's prepare step",
        "a stage task",
        "a request handler behind `ContextLayer`",
        "`Jobs::spawn`",
        "`buvar_kit::spawn`",
    ] {
        assert!(err.contains(place), "{place} missing from: {err}");
    }
    let err = buvar_kit::nject::<FromPlugin>().await.unwrap_err();
    assert!(err.is_outside_context(), "{err}");
    assert!(
        err.to_string().starts_with("cannot resolve `FromPlugin`"),
        "{err}"
    );
}

/// Sends `GET /` through `router` and returns the body.
async fn body_of(router: Router) -> String {
    let response = router
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

async fn authenticate_ambiently(request: Request, next: Next) -> Response {
    Context::current().unwrap().add(User("grace"));
    next.run(request).await
}

async fn by_component(Component(user): Component<User>) -> String {
    user.0.to_owned()
}

#[tokio::test]
async fn the_component_extractor_finds_what_a_middleware_added_to_the_current_context() {
    let plugins = Context::new();
    let router = Router::new()
        .route("/", get(by_component))
        .layer(middleware::from_fn(authenticate_ambiently))
        .layer(ContextLayer::new(plugins.clone()));
    assert_eq!(body_of(router).await, "grace");
    assert!(plugins.get::<User>().is_err(), "it stayed in the request");
}

#[tokio::test]
async fn a_handler_reads_what_a_tower_layer_added_in_its_call_before_the_handler_ran() {
    let plugins = Context::new();
    // `MapRequest` runs its closure in `Service::call`, not in the future it returns.
    let add_in_call = MapRequestLayer::new(|request: Request| {
        let context = request.extensions().get::<RequestContext>().unwrap();
        context.context().add(User("hopper"));
        request
    });
    let router = Router::new()
        .route("/", get(handler))
        .layer(add_in_call)
        .layer(ContextLayer::new(plugins.clone()));
    assert_eq!(body_of(router).await, "hopper");
    assert!(plugins.get::<User>().is_err(), "it stayed in the request");
}
