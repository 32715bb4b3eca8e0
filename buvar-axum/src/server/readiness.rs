//! `/readyz`: whether the server accepts connections ([`Readiness`]) and the readiness checks
//! plugins contribute.
//!
//! `/readyz` answers whether to send this worker traffic: 200 only while the server accepts
//! connections and every check passes, else 503. `/healthz` answers whether to restart the
//! process and never runs a check: a database outage must not make an orchestrator restart
//! every replica at once, which would turn a dependency's outage into the service's own and
//! throw away warm workers that will serve again the moment the database is back. Nothing in
//! the kit restarts a worker because a check fails.
//!
//! Each check runs with a timeout, and its outcome is kept for `[readiness] cache` seconds:
//! probes within that time (and probes that arrive while the check runs) share one run, so a
//! storm of probes is never a storm of pings to the dependency.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use buvar_kit::config::figment::value::Dict;
use buvar_kit::config::{ConfigError, Limit, Section, serialize_defaults};
use buvar_kit::extract::Component;
use buvar_kit::{BoxError, Cancel, ConfigSource, Context};
use futures_util::FutureExt;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::redact::redact;
use crate::sockets::SocketUri;

/// Whether the server accepts requests, and on which addresses; `/readyz` reads it.
#[derive(Debug)]
pub struct Readiness {
    state: watch::Sender<Vec<SocketUri>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(Vec::new()),
        }
    }
}

impl Readiness {
    pub(super) fn set_ready(&self, addrs: Vec<SocketUri>) {
        self.state.send_replace(addrs);
    }

    /// Whether the server accepts connections.
    pub fn is_ready(&self) -> bool {
        !self.state.borrow().is_empty()
    }

    /// Waits until the server accepts connections and returns the addresses it listens on
    /// (with the ports the kernel chose for port 0).
    pub async fn wait(&self) -> Vec<SocketUri> {
        let mut state = self.state.subscribe();
        match state.wait_for(|addrs| !addrs.is_empty()).await {
            Ok(addrs) => addrs.clone(),
            Err(_) => Vec::new(),
        }
    }
}

/// The longest timeout or cache time accepted.
const LONGEST: Duration = Duration::from_secs(300);

/// The `[readiness]` section: how `/readyz` runs the checks plugins added.
///
/// ```toml
/// [readiness]
/// timeout = "2s"  # how long a check may take; then it fails with "timed out"
/// cache = "1s"    # how long a check's outcome is reused; 0 runs it on every probe
/// ```
///
/// Durations read as `"800ms"`, `"2s"` or a plain number of seconds. Keep `timeout` well below
/// the probe's own timeout (Kubernetes' `timeoutSeconds`, 1 by default), so `/readyz` answers
/// 503 naming the check rather than not answering at all.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadinessConfig {
    /// How long a check may take before it counts as failed (1 ms to 5 min).
    #[serde(with = "buvar_kit::config::duration")]
    pub timeout: Duration,
    /// How long a check's outcome is reused by later probes (0 to 5 min).
    #[serde(with = "buvar_kit::config::duration")]
    pub cache: Duration,
}

impl Section for ReadinessConfig {
    const SECTION: &'static str = "readiness";

    fn defaults() -> Result<Option<Dict>, ConfigError> {
        serialize_defaults(&Self::default()).map(Some)
    }

    fn limits() -> Vec<Limit> {
        vec![
            Limit::duration("timeout", Duration::from_millis(1)..=LONGEST),
            Limit::duration("cache", Duration::ZERO..=LONGEST),
        ]
    }
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(800),
            cache: Duration::from_secs(1),
        }
    }
}

/// Why the readiness checks cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadinessError {
    /// Two checks have one name, so `/readyz` could not tell them apart.
    #[error(
        "plugin `{plugin}` adds a readiness check `{name}`, which plugin `{first}` added \
         already: give each check its own name"
    )]
    Duplicate {
        /// The name of both checks.
        name: String,
        /// The plugin that added the first.
        first: String,
        /// The plugin that added the second.
        plugin: String,
    },
    /// The `[readiness]` section cannot be read.
    #[error(transparent)]
    Config(#[from] buvar_kit::config::ConfigError),
}

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type CheckFn = dyn Fn(Context) -> CheckFuture + Send + Sync;

/// The checks plugins added, in order, with the plugin that added each.
#[derive(Default)]
pub(crate) struct Checks {
    added: Mutex<Vec<Added>>,
}

struct Added {
    name: String,
    plugin: String,
    check: Arc<CheckFn>,
}

impl Checks {
    fn of(context: &Context) -> Arc<Checks> {
        match context.try_get::<Checks>() {
            Some(checks) => checks,
            None => context.add(Checks::default()),
        }
    }

    /// Adds a check named `name` to the checks in `context`.
    pub(crate) fn add<F, Fut, E>(context: &Context, plugin: &str, name: &str, check: F)
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let check: Arc<CheckFn> =
            Arc::new(move |ctx| Box::pin(check(ctx).map(|result| result.map_err(Into::into))));
        Self::of(context)
            .added
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Added {
                name: name.to_owned(),
                plugin: plugin.to_owned(),
                check,
            });
    }
}

/// The `/readyz` route over the checks in `context`, with the timeout and cache time of the
/// `[readiness]` section of its config.
pub(crate) fn route(context: &Context) -> Result<MethodRouter, ReadinessError> {
    let config = match context.try_get::<ConfigSource>() {
        Some(source) => source.section::<ReadinessConfig>()?,
        None => Arc::new(ReadinessConfig::default()),
    };
    let probe = Arc::new(Probe::new(context, &config)?);
    #[cfg(feature = "grpc")]
    context.add(ReadyVerdict {
        probe: probe.clone(),
        cache: config.cache,
    });
    Ok(get(
        move |Component(readiness): Component<Readiness>,
              Component(cancel): Component<Cancel>,
              headers: HeaderMap,
              uri: Uri| {
            let probe = probe.clone();
            async move {
                let state = State::of(&readiness, &cancel);
                probe.answer(state, wants_detail(&headers, &uri)).await
            }
        },
    ))
}

/// `/readyz`'s verdict for the gRPC health service, found in the server's context once its
/// router is built: the same checks, sharing their cached outcomes.
#[cfg(feature = "grpc")]
pub(crate) struct ReadyVerdict {
    probe: Arc<Probe>,
    /// `[readiness] cache`.
    pub(crate) cache: Duration,
}

#[cfg(feature = "grpc")]
impl ReadyVerdict {
    /// Whether `/readyz` would answer 200 now.
    pub(crate) async fn ready(&self, readiness: &Readiness, cancel: &Cancel) -> bool {
        State::of(readiness, cancel) == State::Serving
            && self.probe.reports().await.iter().all(|r| r.error.is_none())
    }
}

/// `?verbose` (with or without a value) or an `Accept` naming JSON.
fn wants_detail(headers: &HeaderMap, uri: &Uri) -> bool {
    let verbose = uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "verbose" || pair.starts_with("verbose="))
    });
    verbose
        || headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|accept| accept.contains("application/json"))
}

/// What the server is doing, apart from the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Serving,
    Draining,
}

impl State {
    fn of(readiness: &Readiness, cancel: &Cancel) -> Self {
        if cancel.is_stopping() {
            State::Draining
        } else if readiness.is_ready() {
            State::Serving
        } else {
            State::Starting
        }
    }
}

/// The checks, each with its last outcome.
struct Probe {
    checks: Vec<Check>,
}

struct Check {
    name: String,
    run: Arc<CheckFn>,
    context: Context,
    timeout: Duration,
    cache: Duration,
    // An async lock: probes that arrive while the check runs wait for its outcome instead of
    // running it again.
    last: tokio::sync::Mutex<Option<Outcome>>,
}

#[derive(Debug, Clone)]
struct Outcome {
    finished: Instant,
    took: Duration,
    error: Option<String>,
}

/// One check in a detailed answer.
#[derive(Debug, Serialize)]
struct CheckReport {
    name: String,
    status: &'static str,
    duration_ms: f64,
    /// How long ago the check ran: 0 when this probe ran it, more when it was reused.
    age_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Probe {
    fn new(context: &Context, config: &ReadinessConfig) -> Result<Self, ReadinessError> {
        let (timeout, cache) = (config.timeout, config.cache);
        let added = Checks::of(context);
        let added = added.added.lock().unwrap_or_else(PoisonError::into_inner);
        let mut checks: Vec<Check> = Vec::with_capacity(added.len());
        for (index, check) in added.iter().enumerate() {
            if let Some(first) = added[..index].iter().find(|a| a.name == check.name) {
                return Err(ReadinessError::Duplicate {
                    name: check.name.clone(),
                    first: first.plugin.clone(),
                    plugin: check.plugin.clone(),
                });
            }
            checks.push(Check {
                name: check.name.clone(),
                run: check.check.clone(),
                context: context.clone(),
                timeout,
                cache,
                last: tokio::sync::Mutex::new(None),
            });
        }
        Ok(Self { checks })
    }

    async fn reports(&self) -> Vec<CheckReport> {
        join_all(self.checks.iter().map(Check::report)).await
    }

    async fn answer(&self, state: State, detail: bool) -> Response {
        // Checks run only while serving: a starting or draining worker gets no traffic either
        // way, and a draining one should not open connections to its dependencies.
        let reports = if state == State::Serving {
            self.reports().await
        } else {
            Vec::new()
        };
        let failing: Vec<&str> = reports
            .iter()
            .filter(|report| report.error.is_some())
            .map(|report| report.name.as_str())
            .collect();
        let (status, word) = match state {
            State::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
            State::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
            State::Serving if failing.is_empty() => (StatusCode::OK, "ready"),
            State::Serving => (StatusCode::SERVICE_UNAVAILABLE, "failing"),
        };
        let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
        if detail {
            let body = serde_json::json!({ "status": word, "checks": reports });
            (status, no_store, axum::Json(body)).into_response()
        } else if failing.is_empty() {
            (status, no_store, word).into_response()
        } else {
            (status, no_store, format!("{word}: {}", failing.join(", "))).into_response()
        }
    }
}

impl Check {
    async fn report(&self) -> CheckReport {
        let outcome = self.outcome().await;
        CheckReport {
            name: self.name.clone(),
            status: if outcome.error.is_none() {
                "pass"
            } else {
                "fail"
            },
            duration_ms: outcome.took.as_secs_f64() * 1000.0,
            age_ms: outcome.finished.elapsed().as_secs_f64() * 1000.0,
            error: outcome.error,
        }
    }

    /// The last outcome while it is fresh, else a new one.
    async fn outcome(&self) -> Outcome {
        let mut last = self.last.lock().await;
        if let Some(outcome) = last.as_ref().filter(|o| o.finished.elapsed() < self.cache) {
            return outcome.clone();
        }
        let started = Instant::now();
        let run = AssertUnwindSafe((self.run)(self.context.clone())).catch_unwind();
        let error = match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(err))) => Some(redact(&err.to_string())),
            Ok(Err(_panic)) => Some("the check panicked".to_owned()),
            Err(_elapsed) => Some(format!("timed out after {:?}", self.timeout)),
        };
        let outcome = Outcome {
            finished: Instant::now(),
            took: started.elapsed(),
            error,
        };
        match (last.as_ref().and_then(|o| o.error.as_ref()), &outcome.error) {
            (None, Some(error)) => {
                tracing::warn!(check = %self.name, %error, "readiness check failing");
            }
            (Some(_), None) => tracing::info!(check = %self.name, "readiness check passes again"),
            _ => {}
        }
        *last = Some(outcome.clone());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn probe(config: &ReadinessConfig, add: impl FnOnce(&Context)) -> Probe {
        let context = Context::new();
        add(&context);
        Probe::new(&context, config).unwrap()
    }

    fn counting(context: &Context, name: &str, fail: bool) -> Arc<AtomicUsize> {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        Checks::add(context, "test", name, move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if fail {
                    Err("connection refused by postgres://app:hunter2@db:5432/app")
                } else {
                    Ok(())
                }
            }
        });
        runs
    }

    #[tokio::test(start_paused = true)]
    async fn an_outcome_is_reused_for_the_cache_time_then_run_again() {
        let mut runs = None;
        let probe = probe(&ReadinessConfig::default(), |cx| {
            runs = Some(counting(cx, "db", false));
        });
        let runs = runs.unwrap();
        probe.reports().await;
        tokio::time::advance(Duration::from_millis(999)).await;
        let reused = probe.reports().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!((reused[0].age_ms - 999.0).abs() < 1.0, "{reused:?}");
        tokio::time::advance(Duration::from_millis(1)).await;
        probe.reports().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cache_of_zero_runs_the_check_on_every_probe() {
        let mut runs = None;
        let config = ReadinessConfig {
            cache: Duration::ZERO,
            ..ReadinessConfig::default()
        };
        let probe = probe(&config, |cx| runs = Some(counting(cx, "db", false)));
        for _ in 0..3 {
            probe.reports().await;
        }
        assert_eq!(runs.unwrap().load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn probes_that_arrive_while_a_check_runs_share_its_run() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let probe = probe(&ReadinessConfig::default(), |cx| {
            Checks::add(cx, "test", "slow", move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok::<(), BoxError>(())
                }
            });
        });
        let answers = join_all((0..50).map(|_| probe.reports())).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(answers.iter().all(|a| a[0].error.is_none()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_hangs_fails_at_its_timeout() {
        let probe = probe(&ReadinessConfig::default(), |cx| {
            Checks::add(cx, "test", "db", |_| {
                std::future::pending::<Result<(), BoxError>>()
            });
        });
        let started = Instant::now();
        let reports = probe.reports().await;
        assert_eq!(started.elapsed(), Duration::from_millis(800));
        assert_eq!(reports[0].status, "fail");
        assert_eq!(reports[0].error.as_deref(), Some("timed out after 800ms"));
    }

    #[tokio::test]
    async fn a_failing_check_names_itself_with_its_error_redacted() {
        let probe = probe(&ReadinessConfig::default(), |cx| {
            counting(cx, "cache", false);
            counting(cx, "db", true);
        });
        let response = probe.answer(State::Serving, false).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let reports = probe.reports().await;
        assert_eq!(reports[0].error, None);
        assert_eq!(
            reports[1].error.as_deref(),
            Some("connection refused by postgres://app:***@db:5432/app")
        );
    }

    #[tokio::test]
    async fn a_panicking_check_fails_without_taking_the_probe_down() {
        let probe = probe(&ReadinessConfig::default(), |cx| {
            Checks::add(cx, "test", "boom", |_| async {
                panic!("bug in a check");
                #[allow(unreachable_code)]
                Ok::<(), BoxError>(())
            });
        });
        let reports = probe.reports().await;
        assert_eq!(reports[0].error.as_deref(), Some("the check panicked"));
    }

    #[tokio::test]
    async fn no_check_runs_while_starting_or_draining() {
        let mut runs = None;
        let probe = probe(&ReadinessConfig::default(), |cx| {
            runs = Some(counting(cx, "db", false));
        });
        for state in [State::Starting, State::Draining] {
            let response = probe.answer(state, true).await;
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        assert_eq!(runs.unwrap().load(Ordering::SeqCst), 0);
        assert_eq!(
            probe.answer(State::Serving, false).await.status(),
            StatusCode::OK
        );
    }

    #[test]
    fn two_checks_with_one_name_are_refused_naming_both_plugins() {
        let context = Context::new();
        Checks::add(&context, "pg", "db", |_| async { Ok::<(), BoxError>(()) });
        Checks::add(&context, "mysql", "db", |_| async {
            Ok::<(), BoxError>(())
        });
        let err = Probe::new(&context, &ReadinessConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`mysql`") && err.contains("`pg`") && err.contains("`db`"));
    }

    #[test]
    fn durations_read_as_text_or_seconds_and_out_of_range_ones_are_refused_naming_the_key() {
        let load = |toml: &str| {
            ConfigSource::new()
                .toml(toml)
                .unwrap()
                .load::<ReadinessConfig>()
        };
        let config = load("[readiness]\ntimeout = \"250ms\"\ncache = 2").unwrap();
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert_eq!(config.cache, Duration::from_secs(2));
        for (toml, key) in [
            ("timeout = 0", "readiness.timeout"),
            ("timeout = \"inf\"", "readiness.timeout"),
            ("cache = -1", "readiness.cache"),
            ("cache = \"301s\"", "readiness.cache"),
        ] {
            let err = load(&format!("[readiness]\n{toml}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn verbose_or_json_asks_for_the_detail() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let none = HeaderMap::new();
        assert!(wants_detail(&none, &uri("/readyz?verbose")));
        assert!(wants_detail(&none, &uri("/readyz?a=1&verbose=1")));
        assert!(!wants_detail(&none, &uri("/readyz?verbosity=1")));
        assert!(!wants_detail(&none, &uri("/readyz")));
        let mut json = HeaderMap::new();
        json.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html, application/json;q=0.9"),
        );
        assert!(wants_detail(&json, &uri("/readyz")));
    }
}
