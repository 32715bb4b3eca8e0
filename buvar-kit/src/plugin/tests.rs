use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::BoxError;

type Log = Arc<Mutex<Vec<String>>>;

fn record(log: &Log, entry: impl Into<String>) {
    log.lock().unwrap().push(entry.into());
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

fn explode(message: &str) {
    panic!("{message}")
}

fn quiet() -> Stage {
    Stage::new().signals(Signals::none())
}

#[tokio::test]
async fn stage_returns_each_task_outcome_in_order() {
    let plugin = Plugin::new("foo", |cx: Prepare| async move {
        cx.task("value", |_| async { Ok::<_, BoxError>("foo") });
        cx.task("unit", |_| async {});
        cx.task("failing", |_| async {
            Err::<(), _>(std::io::Error::other("broken"))
        });
        Ok::<_, BoxError>(())
    });
    let report = quiet().load(plugin).run().await.unwrap();
    let tasks = report.tasks();
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[0].value::<&str>(), Some(&"foo"));
    assert_eq!(tasks[1].value::<()>(), Some(&()));
    assert_eq!(tasks[2].error().unwrap().to_string(), "broken");
    assert_eq!(report.first_failure().unwrap().name(), "failing");
    assert!(!report.is_success());
}

#[tokio::test]
async fn each_task_gets_its_own_child_context() {
    let plugin = Plugin::new("ctx", |cx: Prepare| async move {
        cx.context().add_named("bar", String::from("bar"));
        for name in ["task1", "task2"] {
            cx.task(name, move |ctx: Context| async move {
                assert_eq!(*ctx.get_named::<String>("bar")?, "bar");
                ctx.add_named("bar", name.to_owned());
                tokio::task::yield_now().await;
                Ok::<_, BoxError>((*ctx.get_named::<String>("bar")?).clone())
            });
        }
        Ok::<_, BoxError>(())
    });
    let prepared = quiet().load(plugin).prepare().await.unwrap();
    let plugin_context = prepared.context().clone();
    let report = prepared.run().await;
    assert_eq!(report.tasks()[0].value::<String>().unwrap(), "task1");
    assert_eq!(report.tasks()[1].value::<String>().unwrap(), "task2");
    assert_eq!(*plugin_context.get_named::<String>("bar").unwrap(), "bar");
}

#[tokio::test]
async fn stage_context_components_are_visible_to_plugins_but_not_written() {
    let components = Context::new();
    components.add(String::from("foo"));
    let plugin = Plugin::new("reader", |cx: Prepare| async move {
        assert_eq!(*cx.context().get::<String>()?, "foo");
        cx.context().add(1_u8);
        Ok::<_, BoxError>(())
    });
    Stage::with_context(components.clone())
        .signals(Signals::none())
        .load(plugin)
        .run()
        .await
        .unwrap();
    assert!(components.get::<u8>().is_err());
}

#[tokio::test]
async fn a_plugin_loaded_many_times_is_prepared_once() {
    static PREPARED: AtomicUsize = AtomicUsize::new(0);
    fn shared() -> Plugin {
        Plugin::new("shared", |_cx: Prepare| async {
            PREPARED.fetch_add(1, Ordering::SeqCst);
            Ok::<_, BoxError>(())
        })
    }
    let a = Plugin::new("a", |cx: Prepare| async move { cx.load(shared()).await });
    let b = Plugin::new("b", |cx: Prepare| async move {
        cx.load(shared()).await?;
        cx.load(shared()).await
    });
    quiet().load(a).load(b).load(shared()).run().await.unwrap();
    assert_eq!(PREPARED.load(Ordering::SeqCst), 1);
}

fn ping() -> Plugin {
    Plugin::new("ping", |cx: Prepare| async move { cx.load(pong()).await })
}
fn pong() -> Plugin {
    Plugin::new("pong", |cx: Prepare| async move { cx.load(ping()).await })
}

#[tokio::test]
async fn plugins_loading_each_other_in_a_cycle_is_an_error_naming_it() {
    let err = quiet().load(ping()).run().await.unwrap_err();
    match err.plugin_error() {
        PluginError::Cycle { cycle } => assert_eq!(cycle, &["ping", "pong", "ping"]),
        other => panic!("expected a cycle, got {other}"),
    }
    assert!(err.to_string().contains("ping -> pong -> ping"), "{err}");
}

#[tokio::test]
async fn plugins_load_by_name_and_an_unknown_name_lists_the_known_ones() {
    let loaded: Log = Log::default();
    let marker = loaded.clone();
    let metrics = Plugin::new("metrics", move |_cx: Prepare| {
        let marker = marker.clone();
        async move {
            record(&marker, "metrics");
            Ok::<_, BoxError>(())
        }
    });
    let app = Plugin::new("app", |cx: Prepare| async move {
        cx.load_named("metrics").await
    });
    quiet()
        .register(metrics.clone())
        .register(app.clone())
        .load_named("app")
        .run()
        .await
        .unwrap();
    assert_eq!(entries(&loaded), ["metrics"]);

    let err = quiet()
        .register(metrics)
        .register(app)
        .load_named("metrix")
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown plugin `metrix`; known plugins: app, metrics"
    );
}

#[tokio::test]
async fn failed_prepare_runs_teardown_and_names_the_plugin() {
    let log = Log::default();
    let teardown_log = log.clone();
    let broken = Plugin::new("broken", move |cx: Prepare| {
        let log = teardown_log.clone();
        async move {
            cx.teardown("cleanup", async move { record(&log, "teardown") });
            cx.task("never runs", |_| async { explode("tasks must not run") });
            Err::<(), _>(std::io::Error::other("plugin is broken"))
        }
    });
    let outer = Plugin::new("outer", move |cx: Prepare| {
        let broken = broken.clone();
        async move { cx.load(broken).await }
    });
    let err = quiet().load(outer).run().await.unwrap_err();
    assert_eq!(err.plugin_error().plugin(), Some("broken"));
    assert_eq!(
        err.to_string(),
        "plugin `broken` failed to prepare: plugin is broken"
    );
    assert_eq!(entries(&log), ["teardown"]);
}

#[tokio::test]
async fn teardown_runs_in_reverse_order_and_reports_failures_and_panics() {
    let log = Log::default();
    let plugin_log = log.clone();
    let plugin = Plugin::new("steps", move |cx: Prepare| {
        let log = plugin_log.clone();
        async move {
            let (a, b, c) = (log.clone(), log.clone(), log.clone());
            cx.teardown("first", async move { record(&a, "first") });
            cx.teardown("panics", async move {
                record(&b, "panics");
                explode("teardown exploded")
            });
            cx.teardown("fails", async move {
                record(&c, "fails");
                Err::<(), _>(std::io::Error::other("could not close"))
            });
            cx.task("work", |_| async {});
            Ok::<_, BoxError>(())
        }
    });
    let report = quiet().load(plugin).run().await.unwrap();
    assert_eq!(entries(&log), ["fails", "panics", "first"]);
    let failures: Vec<(&str, String)> = report
        .teardown_failures()
        .iter()
        .map(|(name, err)| (name.as_str(), err.to_string()))
        .collect();
    assert_eq!(
        failures,
        [
            ("fails", "could not close".to_owned()),
            ("panics", "panicked: teardown exploded".to_owned())
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_gives_tasks_the_grace_period_then_aborts_the_rest() {
    let plugin = Plugin::new("server", |cx: Prepare| async move {
        let cancel = cx.cancel();
        cx.task("trigger", move |_| async move { cancel.cancel() });
        let cancel = cx.cancel();
        cx.task("cooperative", move |_| async move {
            cancel.cancelled().await;
            Ok::<_, BoxError>("drained")
        });
        cx.task("stubborn", |_| std::future::pending::<()>());
        Ok::<_, BoxError>(())
    });
    let started = tokio::time::Instant::now();
    let report = quiet()
        .cancel_timeout(Duration::from_secs(5))
        .load(plugin)
        .run()
        .await
        .unwrap();
    let tasks = report.tasks();
    assert!(tasks[0].is_done());
    assert_eq!(tasks[1].value::<&str>(), Some(&"drained"));
    assert!(tasks[2].is_cancelled());
    assert!(started.elapsed() >= Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_failing_critical_task_cancels_the_stage_and_teardown_still_runs() {
    let log = Log::default();
    let plugin_log = log.clone();
    let plugin = Plugin::new("broken task", move |cx: Prepare| {
        let log = plugin_log.clone();
        async move {
            let cancel = cx.cancel();
            cx.teardown("teardown", async move { record(&log, "teardown") });
            cx.task("waits", move |_| async move { cancel.cancelled().await });
            cx.task("broken", |_| async {
                Err::<(), _>(std::io::Error::other("task is broken"))
            });
            Ok::<_, BoxError>(())
        }
    });
    let report = quiet().load(plugin).run().await.unwrap();
    assert!(
        report.tasks()[0].is_done(),
        "the waiting task saw the cancel"
    );
    assert_eq!(
        report.first_failure().unwrap().error().unwrap().to_string(),
        "task is broken"
    );
    assert_eq!(entries(&log), ["teardown"]);
}

#[tokio::test]
async fn a_failing_non_critical_task_does_not_cancel_the_stage() {
    let plugin = Plugin::new("tolerant", |cx: Prepare| async move {
        cx.spawn(
            Task::new("flaky", |_| async {
                Err::<(), _>(std::io::Error::other("flaky"))
            })
            .non_critical(),
        );
        let cancel = cx.cancel();
        cx.task("observer", move |_| async move {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            Ok::<_, BoxError>(cancel.is_cancelled())
        });
        Ok::<_, BoxError>(())
    });
    let prepared = quiet().load(plugin).prepare().await.unwrap();
    let cancel = prepared.cancel();
    let report = prepared.run().await;
    assert!(report.tasks()[0].error().is_some());
    assert!(!cancel.is_cancelled());
}

#[tokio::test]
async fn a_panicking_task_is_a_failure_with_its_message() {
    let plugin = Plugin::new("panics", |cx: Prepare| async move {
        cx.task("boom", |_| async { explode("kaboom") });
        Ok::<_, BoxError>(())
    });
    let report = quiet().load(plugin).run().await.unwrap();
    assert_eq!(
        report.tasks()[0].error().unwrap().to_string(),
        "panicked: kaboom"
    );
}

#[tokio::test]
async fn background_jobs_are_stopped_before_teardown_steps() {
    let log = Log::default();
    let plugin_log = log.clone();
    let plugin = Plugin::new("jobs", move |cx: Prepare| {
        let log = plugin_log.clone();
        async move {
            let job_log = log.clone();
            let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
            cx.jobs().spawn("forever", async move {
                struct OnDrop(Log);
                impl Drop for OnDrop {
                    fn drop(&mut self) {
                        record(&self.0, "job stopped");
                    }
                }
                let _guard = OnDrop(job_log);
                started_tx.send(()).ok();
                std::future::pending::<()>().await;
            });
            cx.teardown("close pool", async move { record(&log, "teardown") });
            cx.task("wait for job", |_| async move {
                Ok::<_, BoxError>(started_rx.await.is_ok())
            });
            Ok::<_, BoxError>(())
        }
    });
    let report = quiet().load(plugin).run().await.unwrap();
    assert_eq!(report.tasks()[0].value::<bool>(), Some(&true));
    assert_eq!(entries(&log), ["job stopped", "teardown"]);
}

#[tokio::test]
async fn prepared_stage_exposes_context_and_loads_more_plugins() {
    let prepared = quiet().prepare().await.unwrap();
    assert!(prepared.context().get::<Cancel>().is_ok());
    prepared
        .loader()
        .load(Plugin::new("late", |cx: Prepare| async move {
            cx.context().add(String::from("late"));
            Ok::<_, BoxError>(())
        }))
        .await
        .unwrap();
    assert_eq!(*prepared.context().get::<String>().unwrap(), "late");
    assert!(prepared.teardown().await.is_empty());
}

#[tokio::test]
async fn plugins_named_in_the_config_are_loaded() {
    let loaded = Log::default();
    let plugin = |name: &'static str| {
        let loaded = loaded.clone();
        Plugin::new(name, move |_cx: Prepare| {
            let loaded = loaded.clone();
            async move {
                record(&loaded, name);
                Ok::<_, BoxError>(())
            }
        })
    };
    let source = crate::ConfigSource::new()
        .toml("plugins = [\"metrics\", \"app\"]")
        .unwrap();
    let prepared = quiet()
        .config(source)
        .register(plugin("app"))
        .register(plugin("metrics"))
        .register(plugin("unused"))
        .prepare()
        .await
        .unwrap();
    assert_eq!(entries(&loaded), ["metrics", "app"]);
    assert!(prepared.context().get::<crate::ConfigSource>().is_ok());

    let source = crate::ConfigSource::new()
        .toml("plugins = [\"nope\"]")
        .unwrap();
    let err = quiet().config(source).run().await.unwrap_err();
    assert!(
        err.to_string().starts_with("unknown plugin `nope`"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_now_aborts_without_waiting_for_the_grace_period() {
    let plugin = Plugin::new("stubborn", |cx: Prepare| async move {
        let cancel = cx.cancel();
        cx.task("stops everything", move |_| async move {
            cancel.cancel();
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel_now();
        });
        cx.task("stubborn", |_| std::future::pending::<()>());
        Ok::<_, BoxError>(())
    });
    let started = tokio::time::Instant::now();
    let report = quiet().load(plugin).run().await.unwrap();
    assert!(report.tasks()[1].is_cancelled());
    assert!(started.elapsed() < Duration::from_secs(60));
}
