//! The extractors and the per-request context layer against axum's own `State<T>` and
//! `Extension<T>`, and the server plugin's whole layer stack against a bare router, in one run.
//!
//! `cargo bench -p buvar-bench --bench extract`
//!
//! Two views of the same work: `extract/*` calls each extractor's `from_request_parts` on a
//! fresh request (what the handler pays), `request/*` sends the same request through a router
//! with `tower::ServiceExt::oneshot` (what a request pays, layers included); `ambient` reads the
//! same component from the current context instead of an extractor. Both run on a
//! current-thread runtime, like a pre-forked worker.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::Request;
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Extension, Router};
use buvar_axum::testing::TestApp;
use buvar_axum::{Component, Config, ContextLayer, Inject, PrepareExt};
use buvar_bench::{Greeter, GreeterConfig, Greeting, greeter};
use buvar_kit::{BoxError, ConfigSource, Context, Plugin, Prepare, RequestContext};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// A transient product one adapter away from a component: resolved anew on every request.
struct Salute(Arc<Greeting>);

fn salute(greeting: Arc<Greeting>) -> Salute {
    Salute(greeting)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// The plugin layer every buvar case shares: a component, a config source, a singleton and a
/// transient adapter.
fn plugin_context() -> Context {
    let plugins = Context::new();
    plugins.add(Greeting("Hello".to_owned()));
    plugins.add(ConfigSource::new());
    let adapters = plugins.adapters();
    adapters.register_infallible(greeter).singleton();
    adapters.register_infallible(salute);
    plugins
}

/// Polls `future` once with a no-op waker, the way an already-ready extractor completes inside
/// a handler; only a future that is still pending goes to the runtime. Spares the `extract`
/// cases `block_on`'s fixed cost, which would hide the differences between them.
fn now<F: Future>(rt: &Runtime, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => rt.block_on(future),
    }
}

fn parts() -> Parts {
    Request::get("/")
        .body(())
        .expect("a request")
        .into_parts()
        .0
}

fn extract(c: &mut Criterion) {
    let rt = runtime();
    let state = Arc::new(Greeting("Hello".to_owned()));
    let plugins = plugin_context();
    let mut group = c.benchmark_group("extract");
    group.bench_function("baseline: State<Arc<T>>", |b| {
        b.iter_batched_ref(
            parts,
            |parts| {
                let made = now(
                    &rt,
                    State::<Arc<Greeting>>::from_request_parts(parts, &state),
                );
                black_box(made.is_ok())
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("baseline: Extension<Arc<T>>", |b| {
        b.iter_batched_ref(
            || {
                let mut parts = parts();
                parts.extensions.insert(state.clone());
                parts
            },
            |parts| {
                let made = now(
                    &rt,
                    Extension::<Arc<Greeting>>::from_request_parts(parts, &()),
                );
                black_box(made.is_ok())
            },
            BatchSize::SmallInput,
        )
    });
    let with_context = || {
        let mut parts = parts();
        parts
            .extensions
            .insert(RequestContext::new(plugins.clone()));
        parts
    };
    group.bench_function("Component<T>", |b| {
        b.iter_batched_ref(
            with_context,
            |parts| {
                let made = now(&rt, Component::<Greeting>::from_request_parts(parts, &()));
                black_box(made.is_ok())
            },
            BatchSize::SmallInput,
        )
    });
    // The read a handler's helper makes, inside the context the request layer sets (entering it
    // is the layer's cost, measured by `context layer/*`).
    group.bench_function("ambient: buvar_kit::get::<T>()", |b| {
        rt.block_on(
            plugins
                .clone()
                .scope(async { b.iter(|| black_box(buvar_kit::get::<Greeting>().is_ok())) }),
        )
    });
    group.bench_function("Config<T>", |b| {
        b.iter_batched_ref(
            with_context,
            |parts| {
                let made = now(&rt, Config::<GreeterConfig>::from_request_parts(parts, &()));
                black_box(made.is_ok())
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("Inject<T> (singleton)", |b| {
        b.iter_batched_ref(
            with_context,
            |parts| {
                let made = now(&rt, Inject::<Greeter>::from_request_parts(parts, &()));
                black_box(made.is_ok_and(|g| g.0.greeting == "Hello"))
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("Inject<T> (transient, 1-deep)", |b| {
        b.iter_batched_ref(
            with_context,
            |parts| {
                let made = now(&rt, Inject::<Salute>::from_request_parts(parts, &()));
                black_box(made.is_ok_and(|s| s.0.0.0 == "Hello"))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

async fn by_state(State(greeting): State<Arc<Greeting>>) -> &'static str {
    black_box(&greeting);
    "ok"
}

async fn by_extension(Extension(greeting): Extension<Arc<Greeting>>) -> &'static str {
    black_box(&greeting);
    "ok"
}

async fn by_component(Component(greeting): Component<Greeting>) -> &'static str {
    black_box(&greeting);
    "ok"
}

async fn by_ambient() -> &'static str {
    let greeting = buvar_kit::get::<Greeting>();
    black_box(&greeting);
    if greeting.is_ok() { "ok" } else { "missing" }
}

async fn by_config(Config(config): Config<GreeterConfig>) -> &'static str {
    black_box(&config);
    "ok"
}

async fn by_inject(Inject(greeter): Inject<Greeter>) -> &'static str {
    black_box(&greeter);
    "ok"
}

async fn all_three(
    Component(greeting): Component<Greeting>,
    Inject(greeter): Inject<Greeter>,
    Config(config): Config<GreeterConfig>,
) -> &'static str {
    black_box((&greeting, &greeter, &config));
    "ok"
}

async fn hello() -> &'static str {
    "ok"
}

fn send(rt: &Runtime, router: &Router) -> bool {
    let request = Request::get("/").body(Body::empty()).expect("a request");
    let response = rt.block_on(router.clone().oneshot(request));
    response.is_ok_and(|r| r.status().is_success())
}

fn request(c: &mut Criterion) {
    let rt = runtime();
    let state = Arc::new(Greeting("Hello".to_owned()));
    let plugins = plugin_context();
    // Every router has its handlers turned into routes once (`with_state`), as `axum::serve`
    // and the buvar server do before serving.
    let buvar = |handler| {
        Router::new()
            .route("/", handler)
            .layer(ContextLayer::new(plugins.clone()))
            .with_state(())
    };
    let cases: [(&str, Router); 7] = [
        (
            "baseline: State<Arc<T>>",
            Router::new()
                .route("/", get(by_state))
                .with_state(state.clone()),
        ),
        (
            "baseline: Extension<Arc<T>>",
            Router::new()
                .route("/", get(by_extension))
                .layer(Extension(state.clone()))
                .with_state(()),
        ),
        ("Component<T>", buvar(get(by_component))),
        ("ambient: buvar_kit::get::<T>()", buvar(get(by_ambient))),
        ("Config<T>", buvar(get(by_config))),
        ("Inject<T> (singleton)", buvar(get(by_inject))),
        ("Component + Inject + Config", buvar(get(all_three))),
    ];
    let mut group = c.benchmark_group("request");
    for (name, router) in &cases {
        assert!(send(&rt, router), "{name} answers 200");
        group.bench_function(*name, |b| b.iter(|| black_box(send(&rt, router))));
    }
    group.finish();

    let mut group = c.benchmark_group("context layer");
    for (name, router) in [
        (
            "baseline: no layer",
            Router::new().route("/", get(hello)).with_state(()),
        ),
        ("ContextLayer", buvar(get(hello))),
    ] {
        assert!(send(&rt, &router), "{name} answers 200");
        group.bench_function(name, |b| b.iter(|| black_box(send(&rt, &router))));
    }
    group.finish();
}

async fn app(cx: Prepare) -> Result<(), BoxError> {
    cx.routes(Router::new().route("/hello", get(hello)));
    Ok(())
}

/// The server plugin's whole stack (request id, tracing, panics, timeout, body limits, context)
/// against the same route with no layer.
fn server_stack(c: &mut Criterion) {
    let rt = runtime();
    let staged = rt.block_on(
        TestApp::new()
            .load(Plugin::new("app", app))
            .router(|router| async move { router }),
    );
    let bare = Router::new().route("/hello", get(hello)).with_state(());
    let mut group = c.benchmark_group("server stack");
    for (name, router) in [
        ("baseline: bare router", &bare),
        ("buvar_axum::router", &staged),
    ] {
        let send = || {
            let request = Request::get("/hello")
                .body(Body::empty())
                .expect("a request");
            let response = rt.block_on(router.clone().oneshot(request));
            response.is_ok_and(|r| r.status().is_success())
        };
        assert!(send(), "{name} answers 200");
        group.bench_function(name, |b| b.iter(|| black_box(send())));
    }
    group.finish();
}

criterion_group!(benches, extract, request, server_stack);
criterion_main!(benches);
