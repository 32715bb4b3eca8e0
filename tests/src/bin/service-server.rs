//! A service built with [`App`], the whole `main` builder, for the end-to-end tests:
//! every `[http]` setting comes from the config file or `SVC_*` variables.
//!
//! Routes: `GET /` counts `app_hits_total` (a metric of the service's own) and answers the
//! worker's pid, `GET /pid` answers the worker's pid, `GET /slow?ms=N` answers after N milliseconds
//! (and logs `slow request started` when it starts),
//! `GET /block?ms=N` blocks the worker's runtime for N milliseconds, `POST /echo` answers the
//! length of the body it read, `GET /bytes?n=N` answers N bytes (at most 16 MiB), `GET /lazy`
//! answers `[lazy] n` through an adapter, `GET /client` answers the subject of the client's
//! TLS certificate (403 without one).
//!
//! The `[vault]` section holds secrets; the `vault` plugin logs the whole section at start, so
//! the tests can check that no secret value ever reaches a log line.

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::routing::{get, post};
use buvar_axum::tls::ClientCertificate;
use buvar_axum::{App, Inject, PrepareExt};
use buvar_kit::config::Secret;
use buvar_kit::{BoxError, Config, ConfigSource, Plugin, Prepare};
use serde::{Deserialize, Serialize};

/// The `[vault]` section.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
struct VaultConfig {
    url: String,
    retries: u32,
    token: Secret<String>,
    pin: Secret<u32>,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            url: "https://vault.invalid".to_owned(),
            retries: 3,
            token: Secret::new(String::new()),
            pin: Secret::new(0),
        }
    }
}

buvar_kit::section!(VaultConfig, "vault", default);

/// The `[lazy]` section: declared by the `lazy` plugin, not by `main`, and read only by an
/// adapter when `GET /lazy` is served.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct LazyConfig {
    n: u32,
}

buvar_kit::section!(LazyConfig, "lazy", default);

struct LazyN(u32);

fn lazy_n(config: Config<LazyConfig>) -> LazyN {
    LazyN(config.n)
}

async fn lazy(cx: Prepare) -> Result<(), BoxError> {
    cx.adapters().register_infallible(lazy_n);
    cx.routes(Router::new().route(
        "/lazy",
        get(|Inject(n): Inject<LazyN>| async move { n.0.to_string() }),
    ));
    Ok(())
}

#[derive(Deserialize)]
struct Bytes {
    n: usize,
}

#[derive(Deserialize)]
struct Slow {
    ms: u64,
}

async fn vault(cx: Prepare) -> Result<(), BoxError> {
    let config = cx
        .context()
        .get::<ConfigSource>()?
        .section::<VaultConfig>()?;
    tracing::info!(config = ?*config, "vault configured");
    Ok(())
}

async fn routes(cx: Prepare) -> Result<(), BoxError> {
    cx.routes(
        Router::new()
            .route(
                "/",
                get(|| async {
                    metrics::counter!("app_hits_total").increment(1);
                    std::process::id().to_string()
                }),
            )
            .route("/pid", get(|| async { std::process::id().to_string() }))
            .route(
                "/client",
                get(|client: ClientCertificate| async move { client.subject().to_owned() }),
            )
            .route(
                "/slow",
                get(|Query(slow): Query<Slow>| async move {
                    tracing::info!(ms = slow.ms, "slow request started");
                    tokio::time::sleep(Duration::from_millis(slow.ms)).await;
                    "slow done"
                }),
            )
            .route(
                "/block",
                get(|Query(slow): Query<Slow>| async move {
                    // Deliberately blocking: the runtime stops, as with a synchronous call gone
                    // wrong.
                    std::thread::sleep(Duration::from_millis(slow.ms));
                    "block done"
                }),
            )
            .route(
                "/bytes",
                get(|Query(bytes): Query<Bytes>| async move { vec![b'x'; bytes.n.min(16 << 20)] }),
            )
            .route(
                "/echo",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            ),
    );
    Ok(())
}

fn main() -> ExitCode {
    App::new("SVC")
        .section::<VaultConfig>()
        .load(Plugin::new("vault", vault))
        .load(Plugin::new("routes", routes))
        .load(Plugin::new("lazy", lazy).section::<LazyConfig>())
        .run()
}
