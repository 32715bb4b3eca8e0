//! A service's `main` in one builder: flags, config, logging, sockets, pre-fork, stage.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use buvar_kit::config::{ConfigError, EnvHelp, Section, env_help};
use buvar_kit::log::{self, LogConfig};
use buvar_kit::plugin::Signals;
use buvar_kit::{ConfigSource, Context, Plugin, Stage};
use clap::Parser;

use crate::before_fork::{BeforeFork, BeforeForkFlags};
use crate::fork::{Credentials, Prefork, Worker};
use crate::server::{self, InheritedSockets, ServicePlugins, Supervisor};
use crate::{HttpConfig, ReadinessConfig};

/// Command-line flags every buvar service understands.
#[derive(Debug, Parser)]
#[command(disable_version_flag = true)]
struct Flags {
    /// A TOML config file (default: the file named by `<PREFIX>_CONFIG`, if set).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Load the config and validate the dependency graph, then exit; binds nothing.
    #[arg(long)]
    check: bool,
    /// Print the effective config (all layers and the environment applied, secrets redacted).
    #[arg(long)]
    print_config: bool,
    /// List every environment variable the config reads, with type and default.
    #[arg(long)]
    env_help: bool,
    #[command(flatten)]
    before_fork: BeforeForkFlags,
}

struct SectionInfo {
    help: fn(&str) -> EnvHelp,
    register: fn(&ConfigSource) -> Result<(), ConfigError>,
}

/// A pre-forked axum service: the builder a service's `main` calls.
///
/// [`Service::run`] parses the flags (`--config FILE`, `--check`, `--print-config`,
/// `--env-help`), loads the config (the file, then `<PREFIX>_*` environment variables), sets up
/// logging from `[log]`, binds the sockets of `[http]` once, forks the workers, and in each
/// worker builds a tokio runtime and stages the plugins with the [server plugin](crate::plugin).
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use buvar_axum::{PrepareExt, Service};
/// use buvar_kit::{BoxError, Plugin, Prepare};
///
/// async fn hello(cx: Prepare) -> Result<(), BoxError> {
///     cx.routes(Router::new().route("/", get(|| async { "Hello, world" })));
///     Ok(())
/// }
///
/// fn main() -> std::process::ExitCode {
///     Service::new("APP").load(Plugin::new("hello", hello)).run()
/// }
/// ```
pub struct Service {
    env_prefix: String,
    plugins: ServicePlugins,
    sections: Vec<SectionInfo>,
    pub(crate) before_fork: BeforeFork,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("env_prefix", &self.env_prefix)
            .field("plugins", &self.plugins)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service reading environment variables that start with `env_prefix` and `_`.
    pub fn new(env_prefix: &str) -> Self {
        Self {
            env_prefix: env_prefix.trim_end_matches('_').to_owned(),
            plugins: ServicePlugins::default(),
            sections: Vec::new(),
            before_fork: BeforeFork::default(),
        }
        .section::<HttpConfig>()
        .section::<LogConfig>()
        .section::<ReadinessConfig>()
    }

    /// Loads `plugin` in every worker.
    pub fn load(mut self, plugin: Plugin) -> Self {
        self.plugins.load(plugin);
        self
    }

    /// Makes `plugin` loadable by name, e.g. from the config's `plugins = [...]` list.
    pub fn register(mut self, plugin: Plugin) -> Self {
        self.plugins.register(plugin);
        self
    }

    /// Declares a config section the service reads, so that `--env-help`, `--print-config`,
    /// `--check` and the unknown-variable warnings cover it.
    pub fn section<T: Section>(mut self) -> Self {
        self.sections.push(SectionInfo {
            help: env_help::<T>,
            register: ConfigSource::register::<T>,
        });
        self
    }

    /// Runs the service with the process's arguments; see [`Service`].
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Runs the service with `args` (the first is the program name).
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let flags = match Flags::try_parse_from(args) {
            Ok(flags) => flags,
            Err(err) => {
                let _ = err.print();
                return if err.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
        };
        match self.start(flags) {
            Ok(code) => code,
            Err(message) => {
                let _ = writeln!(std::io::stderr(), "error: {message}");
                ExitCode::from(2)
            }
        }
    }

    fn config_source(&self, flags: &Flags) -> Result<ConfigSource, ConfigError> {
        let source = ConfigSource::new().env_prefix(&self.env_prefix);
        let source = match &flags.config {
            Some(path) => source.file(path)?,
            None => source.file_from_env(&format!("{}_CONFIG", self.env_prefix))?,
        };
        for section in &self.sections {
            (section.register)(&source)?;
        }
        Ok(source)
    }

    fn start(self, flags: Flags) -> Result<ExitCode, String> {
        if flags.env_help {
            let mut out = std::io::stdout().lock();
            for section in &self.sections {
                let _ = write!(out, "{}", (section.help)(&self.env_prefix));
            }
            return Ok(ExitCode::SUCCESS);
        }
        let source = self.config_source(&flags).map_err(|e| e.to_string())?;
        let log_config = source.section::<LogConfig>().map_err(|e| e.to_string())?;
        let http = source.section::<HttpConfig>().map_err(|e| e.to_string())?;
        if flags.print_config {
            let dump = source.dump().map_err(|e| e.to_string())?;
            let _ = write!(std::io::stdout(), "{dump}");
            return Ok(ExitCode::SUCCESS);
        }
        log::init(&log_config).map_err(|e| e.to_string())?;
        for warning in source.env_warnings() {
            tracing::warn!("{warning}");
        }
        if flags.check {
            return Ok(self.check(source));
        }
        if flags.before_fork.only() {
            let ran = self.before_fork.run(&flags.before_fork, &source);
            return ran.map(|()| ExitCode::SUCCESS).map_err(|e| e.to_string());
        }
        let uris = http.socket_uris().map_err(|e| e.to_string())?;
        // Resolved before binding, so a typo costs nothing and binding still runs as root.
        let credentials = match &http.user {
            Some(user) => {
                Some(Credentials::lookup(user, http.group.as_deref()).map_err(|e| e.to_string())?)
            }
            None if http.group.is_some() => {
                return Err("`[http] group` needs `[http] user` as well".to_owned());
            }
            None => None,
        };
        let sockets =
            crate::sockets::bind(&uris, &http.bind_options()).map_err(|e| e.to_string())?;
        self.before_fork
            .run(&flags.before_fork, &source)
            .map_err(|e| e.to_string())?;
        let plugins = Arc::new(self);
        Prefork::new(sockets)
            .workers(http.forks)
            .graceful_timeout(http.graceful_timeout())
            .heartbeat_timeout(http.heartbeat_timeout())
            .credentials(credentials)
            .run(|worker| plugins.run_worker(worker, &source, &http))
            .map_err(|e| e.to_string())
    }

    fn stage(&self, context: Context, source: ConfigSource, http: &HttpConfig) -> Stage {
        self.plugins.stage(
            Stage::with_context(context)
                .config(source)
                .signals(Signals::none())
                .cancel_timeout(server::stage_grace(http)),
        )
    }

    /// `--check`: prepares the plugins (binding nothing), loads every declared section and
    /// validates the dependency graph, listing every problem.
    fn check(&self, source: ConfigSource) -> ExitCode {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(error = %err, "cannot start a runtime for --check");
                return ExitCode::FAILURE;
            }
        };
        let http = HttpConfig::default();
        let stage = self.stage(Context::new(), source, &http);
        runtime.block_on(async {
            let prepared = match stage.prepare().await {
                Ok(prepared) => prepared,
                Err(err) => {
                    let _ = writeln!(std::io::stderr(), "check failed: {err}");
                    return ExitCode::FAILURE;
                }
            };
            let validated = prepared.context().adapters().validate(prepared.context());
            let failures = prepared.teardown().await;
            match validated {
                Ok(()) if failures.is_empty() => {
                    let _ = writeln!(std::io::stdout(), "check passed");
                    ExitCode::SUCCESS
                }
                Ok(()) => ExitCode::FAILURE,
                Err(err) => {
                    let _ = writeln!(std::io::stderr(), "check failed: {err}");
                    ExitCode::FAILURE
                }
            }
        })
    }

    fn run_worker(&self, mut worker: Worker, source: &ConfigSource, http: &HttpConfig) -> i32 {
        log::set_worker(worker.index());
        let runtime = if http.threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(http.threads)
                .enable_all()
                .build()
        };
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(error = %err, "cannot build the worker's runtime");
                return 1;
            }
        };
        runtime.block_on(async move {
            let mut shutdown = match worker.watch_shutdown() {
                Ok(shutdown) => shutdown,
                Err(err) => {
                    tracing::error!(error = %err, "cannot install the worker's signal handlers");
                    return 1;
                }
            };
            let context = Context::new();
            context.add(InheritedSockets::new(worker.take_sockets()));
            let worker = Arc::new(worker);
            context.add_arc::<dyn Supervisor>(worker.clone());
            let prepared = match self.stage(context, source.clone(), http).prepare().await {
                Ok(prepared) => prepared,
                Err(err) => {
                    tracing::error!(error = %err, "the worker failed to start");
                    return 1;
                }
            };
            let cancel = prepared.cancel();
            tokio::spawn(async move {
                let reason = shutdown.wait().await;
                tracing::info!(?reason, "worker stopping");
                cancel.cancel();
                let again = shutdown.wait().await;
                tracing::warn!(?again, "second stop request; stopping at once");
                cancel.cancel_now();
            });
            let report = prepared.run().await;
            for task in report.tasks() {
                if let Some(err) = task.error() {
                    tracing::error!(task = task.name(), error = %err, "task failed");
                }
            }
            i32::from(!report.is_success())
        })
    }
}
