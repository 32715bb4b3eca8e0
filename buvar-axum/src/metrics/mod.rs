//! Prometheus metrics of a pre-forked service as one service.
//!
//! Before the first fork the [`App`](crate::App) maps one shared memory region; each
//! worker installs a recorder of the `metrics` facade that counts in its own row of it, so a
//! service's own `metrics::counter!`, `gauge!` and `histogram!` calls are aggregated exactly
//! like the built-in ones. A scrape, answered by whichever worker takes it, sums the rows of
//! every live worker and the row of what reaped workers had counted: the supervisor folds a
//! worker's row into it when it reaps the worker, so counters never go backwards across kill
//! -9, `max_requests` recycling, rolling restarts or scaling. The supervisor only touches
//! memory (it never waits for a worker), and a scrape only reads memory and `/proc`, so a stuck
//! or dying worker cannot make it fail or hang.
//!
//! - Counters and histograms are summed (histograms bucket by bucket: every worker uses
//!   `[metrics] buckets`).
//! - Gauges are summed too, unless named in `[metrics] per_worker_gauges`: then each live
//!   worker's value is a series of its own, labelled `worker` (its index).
//! - Built in: `http_server_request_duration_seconds{method,route,status}` (`route` is the
//!   matched template such as `/greet/{name}`, also when the request layer answers for the
//!   route's handler with 408 or 500; `unmatched` when no route was called: 404, or 413 for a
//!   declared length over the limit), `http_server_active_requests`,
//!   `buvar_workers_configured`, `buvar_workers_ready`, `buvar_workers_alive`,
//!   `buvar_worker_exits_total{cause}`, and `process_resident_memory_bytes`,
//!   `process_cpu_seconds_total`, `process_open_fds`, `process_start_time_seconds` for the
//!   supervisor and each worker (labels `process`, `worker`, `pid`).
//! - Scrapes are requests like any other: they are counted with `route` = the metrics path
//!   when served on the service's sockets, and not at all on a `[metrics] listen` socket.

mod config;
mod exposition;
mod http;
mod process;
mod recorder;
mod region;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use buvar_kit::{BoxError, Cancel, ConfigSource, Context, Prepare};

pub use config::{MetricsConfig, MetricsError};
pub(crate) use http::{HttpMetrics, InFlight};
#[cfg(target_os = "linux")]
pub(crate) use region::ExitCause;

use crate::server::ServerError;
use crate::serving::{ServeOptions, Serving};
use crate::sockets::BoundSocket;
use region::Region;

/// The region the supervisor mapped before forking, inherited by every worker.
static SUPERVISOR_REGION: OnceLock<&'static Region> = OnceLock::new();

/// This process's recorder: its region, and whether a supervisor made that region.
static INSTALLED: OnceLock<Option<(&'static Region, bool)>> = OnceLock::new();

/// Maps the shared region; called by the supervisor before its first fork.
#[cfg(target_os = "linux")]
pub(crate) fn before_fork(config: &MetricsConfig) -> Result<(), MetricsError> {
    config.validate()?;
    if config.enabled && SUPERVISOR_REGION.get().is_none() {
        let region = Region::create(&config.buckets).map_err(MetricsError::Map)?;
        let _ = SUPERVISOR_REGION.set(Box::leak(Box::new(region)));
    }
    Ok(())
}

/// The supervisor reaped the worker `pid`: what it counted joins the retired totals.
#[cfg(target_os = "linux")]
pub(crate) fn worker_reaped(pid: i32, cause: ExitCause) {
    if let (Some(region), Ok(pid)) = (SUPERVISOR_REGION.get(), u32::try_from(pid)) {
        region.retire(pid, cause);
    }
}

/// The supervisor's worker counts, for `buvar_workers_configured` and `buvar_workers_ready`.
#[cfg(target_os = "linux")]
pub(crate) fn supervisor_status(configured: usize, ready: usize) {
    if let Some(region) = SUPERVISOR_REGION.get() {
        region.set_workers(configured, ready);
    }
}

/// Installs this process's recorder once: into a row of the supervisor's region, or of a
/// region of its own when no supervisor made one (one process, tests).
fn install(config: &MetricsConfig) -> Option<(&'static Region, bool)> {
    *INSTALLED.get_or_init(|| {
        let (region, supervised) = match SUPERVISOR_REGION.get() {
            Some(region) => (*region, true),
            None => match Region::create(&config.buckets) {
                Ok(region) => (&*Box::leak(Box::new(region)), false),
                Err(error) => {
                    tracing::error!(%error, "cannot map the metrics region; metrics are off");
                    return None;
                }
            },
        };
        let index = buvar_kit::log::worker().unwrap_or(0);
        let row = match region.claim(index) {
            Some(slot) => region.row(Some(slot)),
            None => {
                tracing::error!(
                    "more than {} worker processes at once: this one's metrics are not \
                     aggregated",
                    region::SLOTS
                );
                Box::leak(
                    (0..region::CELLS)
                        .map(|_| std::sync::atomic::AtomicU64::new(0))
                        .collect(),
                )
            }
        };
        let recorder = recorder::RowRecorder::new(
            region,
            row,
            config.series_limit,
            config
                .per_worker_gauges
                .iter()
                .cloned()
                .collect::<HashSet<_>>(),
        );
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "another `metrics` recorder is installed: the built-in metrics go to it, and \
                 the metrics endpoint shows only what reaches buvar's"
            );
        }
        Some((region, supervised))
    })
}

/// The `[metrics]` section of the config source in the context, or the defaults without one.
fn metrics_config(context: &Context) -> Result<Arc<MetricsConfig>, BoxError> {
    let config = match context.try_get::<ConfigSource>() {
        Some(source) => source.section::<MetricsConfig>()?,
        None => Arc::new(MetricsConfig::default()),
    };
    config.validate()?;
    Ok(config)
}

/// The metrics endpoint, when served on the service's own sockets.
#[derive(Debug)]
struct Endpoint {
    path: String,
    router: Router,
}

/// Adds the metrics endpoint to the service's routes (a route at the same path is a start-up
/// error naming both) and makes the routes tell the recorder their template.
pub(crate) fn attach(context: &Context, router: Router) -> Result<Router, ServerError> {
    let router = match context.try_get::<Endpoint>() {
        Some(endpoint) => crate::server::merge_routes(router, endpoint.router.clone(), "")
            .map_err(|error| match error {
                ServerError::RouteClash { message, .. } => ServerError::RouteClash {
                    plugin: "buvar-axum.metrics".to_owned(),
                    message: format!(
                        "`[metrics] path` = `{}` is also a route of the service ({message}); \
                         set `[metrics] path` to a free path, or `[metrics] listen` to a socket \
                         of its own",
                        endpoint.path
                    ),
                },
                error => error,
            })?,
        None => router,
    };
    Ok(match context.try_get::<HttpMetrics>() {
        Some(_) => http::with_route_templates(router),
        None => router,
    })
}

/// The socket the supervisor bound for `[metrics] listen`, handed to the server plugin.
#[derive(Debug)]
pub(crate) struct MetricsSocket(pub(crate) std::sync::Mutex<Option<BoundSocket>>);

/// Part of the server plugin's prepare: installs the recorder and serves the endpoint, on the
/// service's routes or on the `listen` socket. Returns what records the requests, for the request layer.
pub(crate) fn prepare(cx: &Prepare) -> Result<Option<HttpMetrics>, BoxError> {
    let config = metrics_config(cx.context())?;
    if !config.enabled || cx.context().try_get::<crate::app::StartCheck>().is_some() {
        return Ok(None);
    }
    let Some((region, supervised)) = install(&config) else {
        return Ok(None);
    };
    let catalog = Arc::new(Mutex::new(exposition::Catalog::default()));
    let endpoint = Router::new().route(
        &config.path,
        get(move || async move {
            let mut catalog = catalog.lock().unwrap_or_else(PoisonError::into_inner);
            (
                [(CONTENT_TYPE, exposition::CONTENT_TYPE)],
                exposition::render(region, supervised, &mut catalog),
            )
        }),
    );
    match config.listen_uri()? {
        None => {
            cx.context().add(Endpoint {
                path: config.path.clone(),
                router: endpoint,
            });
        }
        Some(uri) => {
            let inherited = cx
                .context()
                .try_get::<MetricsSocket>()
                .and_then(|socket| socket.0.lock().ok()?.take());
            let socket = match inherited {
                Some(socket) => socket,
                None => crate::sockets::bind(&[uri], &Default::default())?
                    .pop()
                    .ok_or("binding `[metrics] listen` gave no socket")?,
            };
            cx.task("metrics server", move |ctx: Context| {
                serve(ctx, socket, endpoint)
            });
        }
    }
    Ok(Some(HttpMetrics::new()))
}

async fn serve(context: Context, socket: BoundSocket, endpoint: Router) -> Result<(), BoxError> {
    let cancel = context.get::<Cancel>()?;
    let addr = socket.local_addr().clone();
    let serving = Serving::start(
        vec![socket],
        endpoint.into_service(),
        ServeOptions::default(),
    )?;
    tracing::info!(%addr, "serving metrics");
    cancel.cancelled().await;
    // Inherited from the supervisor, the socket is held there too.
    serving.drain_after(crate::server::released(&context)).await;
    Ok(())
}
