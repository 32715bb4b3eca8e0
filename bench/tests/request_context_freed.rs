//! A request's context must be freed once the request is done, whatever the handler extracted.
//! A request context that outlives its request is a leak (`Inject<T>` once kept every one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use axum::http::Request;
use axum::http::request::Parts;
use buvar_axum::{Component, Inject};
use buvar_bench::{Greeter, Greeting, greeter};
use buvar_kit::{ConfigSource, Context, RequestContext};

/// Sets its flag when dropped: proof that the layer holding it was freed.
struct Freed(Arc<AtomicBool>);

impl Drop for Freed {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn plugins() -> Context {
    let plugins = Context::new();
    plugins.add(Greeting("Hello".to_owned()));
    plugins.add(ConfigSource::new());
    plugins.adapters().register_infallible(greeter).singleton();
    plugins
}

/// A request as `ContextLayer` hands it on: a request context in its extensions, whose own
/// layer holds a value whose drop is observed.
fn request(plugins: &Context) -> (Parts, Arc<AtomicBool>) {
    let freed = Arc::new(AtomicBool::new(false));
    let context = RequestContext::new(plugins.clone());
    context.context().add(Freed(freed.clone()));
    let mut parts = Request::get("/").body(()).unwrap().into_parts().0;
    parts.extensions.insert(context);
    (parts, freed)
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn a_request_context_is_freed_after_component_extraction() {
    let plugins = plugins();
    let (mut parts, freed) = request(&plugins);
    let greeting = block_on(Component::<Greeting>::from_request_parts(&mut parts, &())).unwrap();
    assert_eq!(greeting.0.0, "Hello");
    drop(greeting);
    drop(parts);
    assert!(
        freed.load(Ordering::SeqCst),
        "the request context outlived its request"
    );
}

#[test]
fn a_request_context_is_freed_after_inject_extraction() {
    let plugins = plugins();
    let (mut parts, freed) = request(&plugins);
    let greeter = block_on(Inject::<Greeter>::from_request_parts(&mut parts, &())).unwrap();
    assert_eq!(greeter.greeting, "Hello");
    drop(greeter);
    drop(parts);
    assert!(
        freed.load(Ordering::SeqCst),
        "the request context outlived its request"
    );
}
