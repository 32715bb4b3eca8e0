//! Component lookup and adapter resolution (1- and 3-deep chains) against the hand-written
//! equivalents, in one run.
//!
//! `cargo bench -p buvar-kit --bench kit`

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use buvar_kit::Context;
use criterion::{Criterion, criterion_group, criterion_main};

struct Config {
    url: String,
}
struct Pool {
    config: Arc<Config>,
}
struct Repo {
    pool: Arc<Pool>,
}
struct Service {
    repo: Arc<Repo>,
}

fn pool(config: Arc<Config>) -> Pool {
    Pool { config }
}
fn repo(pool: Arc<Pool>) -> Repo {
    Repo { pool }
}
fn service(repo: Arc<Repo>) -> Service {
    Service { repo }
}

/// What axum's `State<T>` extraction does: clone an `Arc` out of the app state.
#[derive(Clone)]
struct AppState {
    config: Arc<Config>,
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    let state = AppState {
        config: Arc::new(Config { url: "db".into() }),
    };
    group.bench_function("baseline: Arc clone from state", |b| {
        b.iter(|| black_box(black_box(&state).config.clone()))
    });
    let plugins = Context::new();
    plugins.add(Config { url: "db".into() });
    for i in 0..16_u32 {
        plugins.add_named(&format!("n{i}"), i);
    }
    group.bench_function("Context::get (plugin layer)", |b| {
        b.iter(|| black_box(black_box(&plugins).get::<Config>().ok()))
    });
    let request = plugins.push();
    group.bench_function("Context::get through a request layer", |b| {
        b.iter(|| black_box(black_box(&request).get::<Config>().ok()))
    });
    group.bench_function("Context::push (per-request layer)", |b| {
        b.iter(|| black_box(black_box(&plugins).push()))
    });
    group.finish();
}

/// Polls `future` once with a no-op waker: an adapter chain of sync functions completes at
/// once, and `block_on`'s fixed cost would otherwise dwarf what is measured. Only a future that
/// is still pending goes to the runtime.
fn now<F: Future>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => runtime.block_on(future),
    }
}

fn resolve(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let config = Arc::new(Config { url: "db".into() });
    let ctx = Context::new();
    ctx.add_arc(config.clone());
    let adapters = ctx.adapters();
    adapters.register_infallible(pool);
    adapters.register_infallible(repo);
    adapters.register_infallible(service);
    let request = ctx.push();

    let mut group = c.benchmark_group("resolve 1-deep transient");
    group.bench_function("baseline: hand-wired", |b| {
        b.iter(|| black_box(Arc::new(pool(black_box(&config).clone()))))
    });
    group.bench_function("Context::nject", |b| {
        b.iter(|| {
            let made = now(&runtime, black_box(&request).nject::<Pool>());
            assert!(made.as_ref().is_ok_and(|p| p.config.url == "db"));
            black_box(made)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("resolve 3-deep transient");
    group.bench_function("baseline: hand-wired", |b| {
        b.iter(|| {
            let config = black_box(&config).clone();
            let service = Arc::new(service(Arc::new(repo(Arc::new(pool(config))))));
            black_box(service)
        })
    });
    group.bench_function("Context::nject", |b| {
        b.iter(|| {
            let made = now(&runtime, black_box(&request).nject::<Service>());
            assert!(made.as_ref().is_ok_and(|s| s.repo.pool.config.url == "db"));
            black_box(made)
        })
    });
    group.finish();
}

criterion_group!(benches, lookup, resolve);
criterion_main!(benches);
