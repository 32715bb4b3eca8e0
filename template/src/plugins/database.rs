//! The PostgreSQL plugin, on sqlx:
//!
//! - a config section, `[database]` (`{{env_prefix}}_DATABASE_URL` overrides the URL; it is a
//!   `Secret`, so `--print-config` and the logs never show it);
//! - [`migrate`], a before-fork step: the parent runs the migrations in `migrations/` once,
//!   before any worker exists, over one connection that is closed when the step ends;
//! - one [`PgPool`] per worker, made in the worker after fork. A pool holds sockets and a
//!   runtime's tasks: a pool made before fork would hand every worker the same connections,
//!   each speaking to PostgreSQL over one socket at once, and its tasks would not exist in
//!   the children. The pool connects lazily, so a worker starts while the database is down;
//! - a readiness check, `db`, that asks the pool for a connection and runs `SELECT 1`.

use std::str::FromStr;
use std::time::Duration;

use buvar_axum::{BoxError, Config, Context, Plugin, Prepare, PrepareExt, Secret};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// The migrations in `migrations/`, compiled into the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The `[database]` config section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: Secret<String>,
    /// Connections per worker (1 to 1000): PostgreSQL sees up to `forks` times this many.
    pub pool_size: u32,
    /// Seconds a new connection may take (0.1 to 300).
    pub connect_timeout: f64,
    /// Seconds a request may wait for a connection of the pool before it is answered with
    /// 503 (0.1 to 300).
    pub acquire_timeout: f64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::new(String::new()),
            pool_size: 5,
            connect_timeout: 5.0,
            acquire_timeout: 2.0,
        }
    }
}

buvar_axum::section!(DatabaseConfig, "database", default);

/// The pieces of a checked `[database]` section.
struct Settings {
    options: PgConnectOptions,
    connect_timeout: Duration,
    acquire_timeout: Duration,
}

impl DatabaseConfig {
    fn settings(&self) -> Result<Settings, BoxError> {
        if self.url.expose().is_empty() {
            return Err(
                "`[database] url` is not set: set it in the config file or in \
                        {{env_prefix}}_DATABASE_URL (postgres://user:password@host:port/database)"
                    .into(),
            );
        }
        let url = self.url.expose();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("`[database] url` must start with postgres:// or postgresql://".into());
        }
        let options = PgConnectOptions::from_str(url).map_err(|err| {
            // sqlx quotes the URL in some of its errors: say what is wrong without it.
            format!("`[database] url` is not a PostgreSQL URL ({})", kind(&err))
        })?;
        if !(1..=1000).contains(&self.pool_size) {
            return Err(format!(
                "`[database] pool_size` is {}: expected 1 to 1000",
                self.pool_size
            )
            .into());
        }
        Ok(Settings {
            options: options.disable_statement_logging(),
            connect_timeout: seconds("connect_timeout", self.connect_timeout)?,
            acquire_timeout: seconds("acquire_timeout", self.acquire_timeout)?,
        })
    }
}

fn kind(err: &sqlx::Error) -> &'static str {
    match err {
        sqlx::Error::Configuration(_) => "a bad scheme, host, port or parameter",
        _ => "unreadable",
    }
}

fn seconds(key: &str, value: f64) -> Result<Duration, BoxError> {
    if value.is_finite() && (0.1..=300.0).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!("`[database] {key}` is {value}: expected seconds from 0.1 to 300").into())
    }
}

/// Where `options` points, without user or password: `postgres://host:port/database`.
fn location(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

/// The before-fork step: runs the pending migrations once before the workers fork. sqlx takes an
/// advisory lock in the database first, so two services starting at once (or a Kubernetes
/// Job and a replica) run each migration once.
pub async fn migrate(ctx: Context) -> Result<(), BoxError> {
    let config: Config<DatabaseConfig> = ctx.resolve().await?;
    let settings = config.settings()?;
    let at = location(&settings.options);
    let connect = PgConnection::connect_with(&settings.options);
    let mut connection = match tokio::time::timeout(settings.connect_timeout, connect).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => return Err(format!("cannot connect to {at}: {err}").into()),
        Err(_) => {
            return Err(format!(
                "cannot connect to {at}: no answer within {:?}",
                settings.connect_timeout
            )
            .into());
        }
    };
    MIGRATOR
        .run(&mut connection)
        .await
        .map_err(|err| format!("cannot migrate {at}: {err}"))?;
    connection.close().await?;
    tracing::info!(database = %at, "migrations applied");
    Ok(())
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    let config: Config<DatabaseConfig> = cx.context().resolve().await?;
    let settings = config.settings()?;
    let pool = PgPoolOptions::new()
        .max_connections(config.pool_size)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(settings.options);
    cx.context().add(pool.clone());
    cx.readiness_check("db", |ctx| async move {
        let pool = ctx.get::<PgPool>()?;
        sqlx::query("SELECT 1").execute(&*pool).await?;
        Ok(())
    });
    cx.teardown("close the database pool", async move {
        pool.close().await;
    });
    Ok(())
}

/// The plugin, named `database`: a pool in each worker and the `db` readiness check.
pub fn plugin() -> Plugin {
    Plugin::new("database", prepare)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> DatabaseConfig {
        DatabaseConfig {
            url: Secret::new(url.to_owned()),
            ..DatabaseConfig::default()
        }
    }

    #[test]
    fn a_missing_or_bad_url_is_refused_without_quoting_it() {
        let err = config("").settings().err().unwrap().to_string();
        assert!(err.contains("{{env_prefix}}_DATABASE_URL"), "{err}");
        let err = config("mysql://app:hunter2@db/app")
            .settings()
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("`[database] url`") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn settings_out_of_range_are_refused_naming_the_key() {
        let url = "postgres://app:hunter2@db/app";
        let mut bad = config(url);
        bad.pool_size = 0;
        assert!(
            bad.settings()
                .err()
                .unwrap()
                .to_string()
                .contains("pool_size")
        );
        let mut bad = config(url);
        bad.acquire_timeout = f64::NAN;
        assert!(
            bad.settings()
                .err()
                .unwrap()
                .to_string()
                .contains("acquire_timeout")
        );
    }

    #[test]
    fn the_location_names_the_host_and_never_the_password() {
        let settings = config("postgres://app:hunter2@db.internal:6432/notes")
            .settings()
            .unwrap();
        assert_eq!(
            location(&settings.options),
            "postgres://db.internal:6432/notes"
        );
    }
}
