use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::Context;

#[derive(Debug, PartialEq)]
struct Foo {
    name: Option<&'static str>,
}
#[derive(Debug)]
struct Bar {
    foo: Arc<Foo>,
}
#[derive(Debug)]
struct Baz {
    bar: Arc<Bar>,
    bim: Option<Arc<Bim>>,
}
#[derive(Debug)]
struct Bim;

crate::name!(BarName = "bar");

fn bar_adapter(foo: Named<Foo, BarName>) -> Bar {
    Bar {
        foo: foo.into_inner(),
    }
}

async fn baz_adapter(bar: Arc<Bar>, bim: Option<Arc<Bim>>) -> Result<Baz, std::io::Error> {
    Ok(Baz { bar, bim })
}

#[tokio::test]
async fn nject_resolves_a_chain_with_named_and_optional_dependencies() {
    let ctx = Context::new();
    ctx.add(Foo { name: None });
    ctx.add_named("bar", Foo { name: Some("bar") });
    ctx.adapters().register_infallible(bar_adapter);
    ctx.adapters().register(baz_adapter);

    let baz = ctx.nject::<Baz>().await.unwrap();
    assert_eq!(baz.bar.foo.name, Some("bar"));
    assert!(baz.bim.is_none());
}

#[tokio::test]
async fn context_value_wins_over_adapters() {
    let ctx = Context::new();
    ctx.add(Foo { name: Some("ctx") });
    ctx.adapters().register_infallible(|| Foo {
        name: Some("adapter"),
    });
    assert_eq!(ctx.nject::<Foo>().await.unwrap().name, Some("ctx"));
}

#[tokio::test]
async fn overrides_win_over_the_context_by_type_and_by_name() {
    let ctx = Context::new();
    ctx.add(Foo { name: None });
    ctx.add_named("bar", Foo { name: Some("bar") });
    ctx.adapters().register_infallible(bar_adapter);

    let bar = ctx
        .nject_with::<Bar>(Overrides::new().with_named("bar", Foo { name: Some("kw") }))
        .await
        .unwrap();
    assert_eq!(bar.foo.name, Some("kw"));

    let foo = ctx
        .nject_with::<Foo>(Overrides::new().with(Foo {
            name: Some("typed"),
        }))
        .await
        .unwrap();
    assert_eq!(foo.name, Some("typed"));

    let bim = Arc::new(Bim);
    ctx.adapters().register(baz_adapter);
    let baz = ctx
        .nject_with::<Baz>(Overrides::new().with(Bim))
        .await
        .unwrap();
    assert!(baz.bim.is_some());
    drop(bim);
}

#[tokio::test]
async fn first_adapter_whose_dependencies_resolve_is_taken() {
    struct NeedsMissing;
    let ctx = Context::new();
    ctx.adapters()
        .register_infallible(|_: Arc<NeedsMissing>| Foo {
            name: Some("first"),
        });
    ctx.adapters().register_infallible(|| Foo {
        name: Some("second"),
    });
    ctx.adapters().register_infallible(|| Foo {
        name: Some("third"),
    });
    assert_eq!(ctx.nject::<Foo>().await.unwrap().name, Some("second"));
}

#[tokio::test]
async fn missing_dependency_error_lists_the_chain() {
    struct Pool;
    struct Repo;
    #[derive(Debug)]
    struct Service;
    let ctx = Context::new();
    ctx.adapters().register_infallible(|_: Arc<Pool>| Repo);
    ctx.adapters().register_infallible(|_: Arc<Repo>| Service);
    let err = ctx.nject::<Service>().await.unwrap_err();
    assert!(err.is_missing());
    assert!(
        err.to_string().starts_with(
            "`Service` needs `Repo` needs `Pool`: no component and no adapter for `Pool`"
        ),
        "{err}"
    );
    assert_eq!(err.chain().len(), 3);
}

#[derive(Debug)]
struct A;
struct B;
fn a_from_b(_: Arc<B>) -> A {
    A
}
fn b_from_a(_: Arc<A>) -> B {
    B
}

#[tokio::test]
async fn cycle_is_reported_as_the_cycle() {
    let ctx = Context::new();
    ctx.adapters().register_infallible(a_from_b);
    ctx.adapters().register_infallible(b_from_a);
    let err = ctx.nject::<A>().await.unwrap_err();
    assert!(err.is_cycle());
    assert!(
        err.to_string().starts_with("dependency cycle: A -> B -> A"),
        "{err}"
    );
}

#[tokio::test]
async fn failing_adapter_error_names_adapter_and_keeps_the_source() {
    #[derive(Debug)]
    struct Pool;
    async fn connect() -> Result<Pool, std::io::Error> {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "db down",
        ))
    }
    let ctx = Context::new();
    ctx.adapters().register(connect);
    let err = ctx.nject::<Pool>().await.unwrap_err();
    assert!(err.is_adapter_failure());
    assert!(
        err.to_string()
            .contains("adapter `connect` failed: db down"),
        "{err}"
    );
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "db down"
    );
}

#[tokio::test]
async fn optional_dependency_still_reports_a_failing_adapter() {
    #[derive(Debug)]
    struct Flaky;
    fn flaky() -> Result<Flaky, std::io::Error> {
        Err(std::io::Error::other("boom"))
    }
    let ctx = Context::new();
    ctx.adapters().register(flaky);
    let err = ctx.resolve::<Option<Arc<Flaky>>>().await.unwrap_err();
    assert!(err.is_adapter_failure());
}

#[tokio::test]
async fn transient_products_are_made_per_resolution_and_singletons_once() {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    struct Transient;
    struct Single;
    let ctx = Context::new();
    ctx.adapters().register_infallible(|| Transient);
    ctx.adapters()
        .register_infallible(|| {
            MADE.fetch_add(1, Ordering::SeqCst);
            Single
        })
        .singleton();
    let t1 = ctx.nject::<Transient>().await.unwrap();
    let t2 = ctx.nject::<Transient>().await.unwrap();
    assert!(!Arc::ptr_eq(&t1, &t2));
    let child = ctx.push();
    let s1 = ctx.nject::<Single>().await.unwrap();
    let s2 = child.nject::<Single>().await.unwrap();
    assert!(Arc::ptr_eq(&s1, &s2));
    assert_eq!(MADE.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_ready_singleton_is_the_first_adapters_made_product_only() {
    struct Single(u8);
    let ctx = Context::new();
    let adapters = ctx.adapters();
    adapters.register_infallible(|| Single(1)).singleton();
    adapters.register_infallible(|| Single(2));
    assert!(
        adapters.ready_singleton::<Single>().is_none(),
        "not made yet"
    );
    let made = ctx.nject::<Single>().await.unwrap();
    let ready = adapters.ready_singleton::<Single>().unwrap();
    assert!(Arc::ptr_eq(&made, &ready));
    assert_eq!(ready.0, 1, "the first adapter made it");

    struct Later;
    let later = Context::new();
    later.adapters().register_infallible(|| Later);
    later.adapters().register_infallible(|| Later).singleton();
    later.nject::<Later>().await.unwrap();
    assert!(
        later.adapters().ready_singleton::<Later>().is_none(),
        "a transient adapter before the singleton wins resolutions"
    );
}

#[tokio::test]
async fn scoped_products_live_in_the_resolving_context() {
    struct PerRequest;
    let root = Context::new();
    root.adapters().register_infallible(|| PerRequest).scoped();
    let one = root.push();
    let two = root.push();
    let a = one.nject::<PerRequest>().await.unwrap();
    let b = one.nject::<PerRequest>().await.unwrap();
    let c = two.nject::<PerRequest>().await.unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &c));
    assert!(!root.contains::<PerRequest>(None));
}

#[tokio::test]
async fn adapters_take_the_context_and_eight_dependencies() {
    #[derive(Debug)]
    struct Eight(u32);
    #[allow(clippy::too_many_arguments)]
    async fn eight(
        ctx: Context,
        a: Arc<u8>,
        b: Arc<u16>,
        c: Arc<u32>,
        d: Arc<u64>,
        e: Option<Arc<i8>>,
        f: Arc<i16>,
        g: Component<i32>,
    ) -> Eight {
        let _ = ctx.get::<u8>().unwrap();
        Eight(
            u32::from(*a)
                + u32::from(*b)
                + *c
                + *d as u32
                + e.map_or(0, |e| *e as u32)
                + *f as u32
                + *g as u32,
        )
    }
    let ctx = Context::new();
    ctx.add(1_u8);
    ctx.add(2_u16);
    ctx.add(3_u32);
    ctx.add(4_u64);
    ctx.add(5_i16);
    ctx.add(6_i32);
    ctx.adapters().register_infallible(eight);
    assert_eq!(ctx.nject::<Eight>().await.unwrap().0, 21);
}

#[tokio::test]
async fn trait_object_components_are_dependencies() {
    trait Clock: Send + Sync {
        fn now(&self) -> u64;
    }
    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> u64 {
            7
        }
    }
    struct Stamp(u64);
    let ctx = Context::new();
    ctx.add_arc::<dyn Clock>(Arc::new(Fixed));
    ctx.adapters()
        .register_infallible(|clock: Component<dyn Clock>| Stamp(clock.now()));
    assert_eq!(ctx.nject::<Stamp>().await.unwrap().0, 7);
}

#[test]
fn validation_lists_every_problem_at_once() {
    struct Pool;
    struct Repo;
    struct Cache;
    struct Mailer;
    let ctx = Context::new();
    let adapters = ctx.adapters();
    adapters.register_infallible(|_: Arc<Pool>| Repo);
    adapters.register_infallible(|_: Arc<Cache>, _: Option<Arc<Pool>>| Mailer);
    adapters.register_infallible(a_from_b);
    adapters.register_infallible(b_from_a);
    let err = adapters.validate(&ctx).unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 4, "{err}");
    assert!(problems[0].contains("`Repo`") && problems[0].contains("needs `Pool`"));
    assert!(problems[1].contains("`Mailer`") && problems[1].contains("needs `Cache`"));
    assert!(problems[2].contains("cycle"), "{}", problems[2]);

    ctx.add(Pool);
    ctx.add(Cache);
    ctx.add(A);
    assert!(adapters.validate(&ctx).is_ok());
}

#[test]
fn graph_exports_as_mermaid_and_dot() {
    struct Pool;
    struct Repo;
    let ctx = Context::new();
    ctx.adapters().register_infallible(|_: Arc<Pool>| Repo);
    let graph = ctx.adapters().graph();
    let mermaid = graph.to_mermaid();
    assert!(mermaid.starts_with("flowchart LR\n"));
    assert!(mermaid.contains("[\"Repo\"] -->"), "{mermaid}");
    assert!(mermaid.contains("[\"Pool\"]"), "{mermaid}");
    let dot = graph.to_dot();
    assert!(dot.contains("\"Repo\" -> \"Pool\""), "{dot}");
}

#[derive(Debug, serde::Deserialize)]
struct GreeterConfig {
    greeting: String,
}
crate::section!(GreeterConfig, "greeter");

#[derive(Debug)]
struct Greeter(String);

fn greeter(config: Config<GreeterConfig>) -> Greeter {
    Greeter(config.greeting.clone())
}

#[tokio::test]
async fn config_sections_are_dependencies_loaded_once() {
    let ctx = Context::new();
    let source = crate::ConfigSource::new()
        .toml("[greeter]\ngreeting = \"Hi\"")
        .unwrap();
    ctx.add(source.clone());
    ctx.adapters().register_infallible(greeter);
    assert_eq!(ctx.nject::<Greeter>().await.unwrap().0, "Hi");
    let first = ctx.resolve::<Config<GreeterConfig>>().await.unwrap();
    let second = ctx.resolve::<Config<GreeterConfig>>().await.unwrap();
    assert!(Arc::ptr_eq(&first.0, &second.0));
    assert!(ctx.adapters().validate(&ctx).is_ok());
}

#[tokio::test]
async fn a_bad_config_section_fails_resolution_and_validation_naming_the_key() {
    let ctx = Context::new();
    ctx.add(
        crate::ConfigSource::new()
            .toml("[greeter]\ngreeting = 5")
            .unwrap(),
    );
    ctx.adapters().register_infallible(greeter);
    let err = ctx.nject::<Greeter>().await.unwrap_err();
    assert!(err.is_config());
    let message = err.to_string();
    assert!(
        message.starts_with(
            "`Greeter` needs `Config<GreeterConfig>`: config section `GreeterConfig` failed to load"
        ),
        "{message}"
    );
    assert!(message.contains("greeter.greeting"), "{message}");
    let problems = ctx.adapters().validate(&ctx).unwrap_err();
    assert!(
        problems.problems()[0].contains("greeter.greeting"),
        "{problems}"
    );
}

#[tokio::test]
async fn config_dependency_without_a_source_is_missing() {
    let ctx = Context::new();
    ctx.adapters().register_infallible(greeter);
    let err = ctx.nject::<Greeter>().await.unwrap_err();
    assert!(err.is_missing());
    assert!(err.to_string().contains("`ConfigSource`"), "{err}");
}

#[tokio::test]
async fn an_adapter_argument_says_add_arc_when_the_context_holds_an_arc_of_it() {
    struct Repo;
    fn repo(_: Arc<std::sync::RwLock<Vec<String>>>) -> Repo {
        Repo
    }
    let ctx = Context::new();
    ctx.add(Arc::new(std::sync::RwLock::new(Vec::<String>::new())));
    ctx.adapters().register_infallible(repo);
    let message = ctx.nject::<Repo>().await.err().unwrap().to_string();
    assert!(
        message.starts_with("`Repo` needs `RwLock<Vec<String>>`: no component `RwLock<Vec<String>>`, but there is a component `Arc<RwLock<Vec<String>>>`"),
        "{message}"
    );
    assert!(message.contains("did you mean `add_arc`?"), "{message}");

    let fixed = Context::new();
    fixed.add_arc(Arc::new(std::sync::RwLock::new(Vec::<String>::new())));
    fixed.adapters().register_infallible(repo);
    assert!(fixed.nject::<Repo>().await.is_ok());
}

#[tokio::test]
async fn a_missing_component_without_an_arc_of_it_gives_no_add_arc_hint() {
    let ctx = Context::new();
    ctx.add(Arc::new(1_u8));
    let message = ctx.nject::<u16>().await.err().unwrap().to_string();
    assert!(!message.contains("add_arc"), "{message}");
    let message = ctx
        .resolve::<Component<u8>>()
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("did you mean `add_arc`?"), "{message}");
}

#[tokio::test]
async fn nject_resolves_a_config_section_an_adapter_reads() {
    let ctx = Context::new();
    ctx.add(
        crate::ConfigSource::new()
            .toml("[greeter]\ngreeting = \"Hi\"")
            .unwrap(),
    );
    ctx.adapters().register_infallible(greeter);
    // One verb for components, adapter products and config sections.
    assert_eq!(ctx.nject::<GreeterConfig>().await.unwrap().greeting, "Hi");
    assert_eq!(ctx.nject::<Greeter>().await.unwrap().0, "Hi");
    ctx.add(7_u32);
    assert_eq!(*ctx.nject::<u32>().await.unwrap(), 7);
    // Loaded once: the section and the `Config<T>` share the value.
    let config = ctx.resolve::<Config<GreeterConfig>>().await.unwrap();
    assert!(Arc::ptr_eq(
        &config.0,
        &ctx.nject::<GreeterConfig>().await.unwrap()
    ));
    assert!(ctx.adapters().validate(&ctx).is_ok());
}

#[derive(Debug, serde::Deserialize)]
struct LimitsConfig {
    limit: u32,
}
crate::section!(LimitsConfig, "limits");

#[tokio::test]
async fn a_declared_section_resolves_after_every_adapter_for_its_type() {
    let ctx = Context::new();
    ctx.add(
        crate::ConfigSource::new()
            .toml("[limits]\nlimit = 3")
            .unwrap(),
    );
    let err = ctx.nject::<LimitsConfig>().await.unwrap_err();
    assert!(err.is_missing(), "undeclared: {err}");
    ctx.adapters().section::<LimitsConfig>();
    ctx.adapters().section::<LimitsConfig>();
    assert_eq!(ctx.adapters().len(), 1, "declared once");
    assert_eq!(ctx.nject::<LimitsConfig>().await.unwrap().limit, 3);
    ctx.adapters()
        .register_infallible(|| LimitsConfig { limit: 99 });
    assert_eq!(ctx.nject::<LimitsConfig>().await.unwrap().limit, 99);
}

#[derive(Debug, Clone, serde::Deserialize)]
struct FooConfig {
    size: u32,
}
crate::section!(FooConfig, "foo");

#[tokio::test]
async fn overrides_reach_config_sections_at_every_depth() {
    let ctx = Context::new();
    ctx.adapters().register_infallible(greeter);
    ctx.adapters()
        .register_infallible(|greeter: Arc<Greeter>| Bim::from(greeter));
    let overrides = || {
        Overrides::new().with(
            crate::ConfigSource::new()
                .toml("[greeter]\ngreeting = \"overridden\"")
                .unwrap(),
        )
    };
    let greeter = ctx.nject_with::<Greeter>(overrides()).await.unwrap();
    assert_eq!(greeter.0, "overridden");
    let section = ctx.nject_with::<GreeterConfig>(overrides()).await.unwrap();
    assert_eq!(section.greeting, "overridden");
    assert!(ctx.nject_with::<Bim>(overrides()).await.is_ok(), "two deep");
    assert!(ctx.nject::<Greeter>().await.unwrap_err().is_missing());
}

impl From<Arc<Greeter>> for Bim {
    fn from(_: Arc<Greeter>) -> Self {
        Bim
    }
}

#[tokio::test]
async fn a_section_type_made_by_an_adapter_never_reads_as_needing_itself() {
    fn foo(config: Config<FooConfig>) -> FooConfig {
        FooConfig {
            size: config.size * 2,
        }
    }
    let ctx = Context::new();
    ctx.add(
        crate::ConfigSource::new()
            .toml("[foo]\nsize = \"big\"")
            .unwrap(),
    );
    ctx.adapters().register_infallible(foo);
    let message = ctx.nject::<FooConfig>().await.unwrap_err().to_string();
    assert!(
        !message.contains("`FooConfig` needs `FooConfig`"),
        "{message}"
    );
    assert!(
        message.starts_with(
            "`FooConfig` needs `Config<FooConfig>`: config section `FooConfig` failed to load"
        ),
        "{message}"
    );
}
