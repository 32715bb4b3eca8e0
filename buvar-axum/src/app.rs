//! A service's `main` in one builder: flags, config, logging, the start-up check, sockets,
//! pre-fork, stage.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
#[cfg(target_os = "linux")]
use std::{cell::RefCell, rc::Rc, sync::Arc};

use buvar_kit::config::{ConfigError, EnvHelp, EnvVar, Section};
use buvar_kit::log::{self, LogConfig};
use buvar_kit::plugin::Signals;
use buvar_kit::{ConfigSource, Context, Plugin, Stage};
use clap::Parser;

#[cfg(target_os = "linux")]
use crate::MetricsError;
use crate::before_fork::{BeforeFork, BeforeForkFlags};
#[cfg(target_os = "linux")]
use crate::fork::{Credentials, Prefork, Worker};
#[cfg(target_os = "linux")]
use crate::metrics::{self, MetricsSocket};
use crate::server::{self, ServicePlugins};
#[cfg(target_os = "linux")]
use crate::server::{InheritedSockets, Supervised};
#[cfg(target_os = "linux")]
use crate::sockets::SocketUri;
use crate::{HttpConfig, MetricsConfig, ReadinessConfig};

mod apart;
mod error;
#[cfg(target_os = "linux")]
mod reload;
#[cfg(target_os = "linux")]
mod workers;

use error::StartError;
#[cfg(target_os = "linux")]
use reload::{AppReload, Generation};

/// In the context of the start-up check's stage: the plugins are prepared in the parent only to
/// find wiring mistakes, so nothing that belongs to a worker (the metrics recorder, say) may be
/// installed process-wide.
#[derive(Debug)]
pub(crate) struct StartCheck;

/// Makes a section type known to a config source ([`ConfigSource::register`]).
type RegisterSection = fn(&ConfigSource) -> Result<(), ConfigError>;

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

/// A pre-forked axum service: the builder a service's `main` calls.
///
/// [`App::run`] parses the flags (`--config FILE`, `--check`, `--print-config`,
/// `--env-help`), loads the config (the file, then `<PREFIX>_*` environment variables), sets up
/// logging from `[log]`, binds the sockets of `[http]` once, forks the workers, and in each
/// worker builds a tokio runtime and stages the plugins with the [server plugin](crate::plugin).
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use buvar_axum::{PrepareExt, App};
/// use buvar_kit::{BoxError, Plugin, Prepare};
///
/// async fn hello(cx: Prepare) -> Result<(), BoxError> {
///     cx.routes(Router::new().route("/", get(|| async { "Hello, world" })));
///     Ok(())
/// }
///
/// fn main() -> std::process::ExitCode {
///     App::new("APP").load(Plugin::new("hello", hello)).run()
/// }
/// ```
pub struct App {
    env_prefix: String,
    plugins: ServicePlugins,
    sections: Vec<RegisterSection>,
    /// The plugins given to `load` and `register`, for the sections they declare.
    declaring: Vec<Plugin>,
    pub(crate) before_fork: BeforeFork,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("env_prefix", &self.env_prefix)
            .field("plugins", &self.plugins)
            .finish_non_exhaustive()
    }
}

impl App {
    /// A service reading environment variables that start with `env_prefix` and `_`.
    pub fn new(env_prefix: &str) -> Self {
        Self {
            env_prefix: env_prefix.trim_end_matches('_').to_owned(),
            plugins: ServicePlugins::default(),
            sections: Vec::new(),
            declaring: Vec::new(),
            before_fork: BeforeFork::default(),
        }
        .section::<HttpConfig>()
        .section::<LogConfig>()
        .section::<MetricsConfig>()
        .section::<ReadinessConfig>()
        .with_otel_section()
    }

    #[cfg(feature = "otel")]
    fn with_otel_section(self) -> Self {
        self.section::<crate::OtelConfig>()
    }

    #[cfg(not(feature = "otel"))]
    fn with_otel_section(self) -> Self {
        self
    }

    /// Loads `plugin` in every worker.
    pub fn load(mut self, plugin: Plugin) -> Self {
        self.declaring.push(plugin.clone());
        self.plugins.load(plugin);
        self
    }

    /// Makes `plugin` loadable by name, e.g. from the config's `plugins = [...]` list.
    pub fn register(mut self, plugin: Plugin) -> Self {
        self.declaring.push(plugin.clone());
        self.plugins.register(plugin);
        self
    }

    /// Declares a config section the service reads, so that `--env-help`, `--print-config`,
    /// the start-up check and the unknown-variable warnings cover it. A plugin can declare the
    /// sections it reads itself, with [`Plugin::section`].
    pub fn section<T: Section>(mut self) -> Self {
        self.sections.push(ConfigSource::register::<T>);
        self
    }

    /// Runs the service with the process's arguments; see [`App`].
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Runs the service with `args` (the first is the program name).
    ///
    /// Exit codes: 0 when the service stopped cleanly (or a flag's output was printed), 2 when
    /// it could not start (bad flags, bad config, a wiring mistake, sockets that cannot be
    /// bound), each reported on stderr as `error: ...`; otherwise what the supervisor returns.
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
            Err(StartError::Reported) => ExitCode::from(2),
            Err(err) => {
                let _ = writeln!(std::io::stderr(), "error: {err}");
                ExitCode::from(2)
            }
        }
    }

    /// Every section the service declares: its own, then those its plugins declare.
    fn register_sections(&self, source: &ConfigSource) -> Result<(), ConfigError> {
        for register in &self.sections {
            register(source)?;
        }
        for plugin in &self.declaring {
            plugin.register_sections(source)?;
        }
        Ok(())
    }

    /// The config of `file` (or of the file `<PREFIX>_CONFIG` names) and the environment.
    fn config_source(&self, file: Option<&Path>) -> Result<ConfigSource, ConfigError> {
        let source = ConfigSource::new().env_prefix(&self.env_prefix);
        let source = match file {
            Some(path) => source.file(path)?,
            None => source.file_from_env(&self.config_var())?,
        };
        self.register_sections(&source)?;
        Ok(source)
    }

    fn config_var(&self) -> String {
        format!("{}_CONFIG", self.env_prefix)
    }

    /// `--env-help`: every variable the declared sections read, the plugin list and the config
    /// file variable; reads no file, so it works whatever the config holds.
    fn env_help(&self) -> Result<EnvHelp, ConfigError> {
        let source = ConfigSource::new().env_prefix(&self.env_prefix);
        self.register_sections(&source)?;
        let mut help = source.env_help();
        help.push(EnvVar {
            name: self.config_var(),
            key: "(config file)".to_owned(),
            type_label: "path".to_owned(),
            default: None,
            range: None,
        });
        help.sort();
        Ok(help)
    }

    fn start(self, flags: Flags) -> Result<ExitCode, StartError> {
        if flags.env_help {
            let _ = write!(std::io::stdout().lock(), "{}", self.env_help()?);
            return Ok(ExitCode::SUCCESS);
        }
        let source = self.config_source(flags.config.as_deref())?;
        let log_config = source.section::<LogConfig>()?;
        let http = source.section::<HttpConfig>()?;
        server::check_http(&http)?;
        #[cfg(feature = "tls")]
        crate::tls::check(http.tls.as_ref())?;
        if flags.print_config {
            let dump = source.dump()?;
            let _ = write!(std::io::stdout(), "{dump}");
            return Ok(ExitCode::SUCCESS);
        }
        #[cfg(feature = "otel")]
        crate::otel::init_log(&log_config, &*source.section::<crate::OtelConfig>()?)?;
        #[cfg(not(feature = "otel"))]
        log::init(&log_config)?;
        // What `--check` runs, also before every start: a wiring mistake or a bad section value
        // stops the start here instead of answering 500 in every worker.
        if flags.check {
            self.check(&source)?;
        } else {
            self.check_apart(&source)?;
        }
        for warning in source.env_warnings() {
            tracing::warn!("{warning}");
        }
        if flags.check {
            let _ = writeln!(std::io::stdout(), "check passed");
            return Ok(ExitCode::SUCCESS);
        }
        if flags.before_fork.only() {
            self.before_fork.run(&flags.before_fork, &source)?;
            return Ok(ExitCode::SUCCESS);
        }
        self.serve(source, &flags)
    }

    /// Binds the sockets, runs the before-fork steps and then the pre-fork supervisor, which
    /// stages the plugins in each worker.
    #[cfg(target_os = "linux")]
    fn serve(self, source: ConfigSource, flags: &Flags) -> Result<ExitCode, StartError> {
        let before_fork = &flags.before_fork;
        let http = source.section::<HttpConfig>()?;
        let mut uris = http.socket_uris()?;
        let metrics_config = source.section::<MetricsConfig>()?;
        let metrics_listen = metrics_listen(&metrics_config, &mut uris)?;
        // Resolved before binding, so a typo costs nothing and binding still runs as root.
        let credentials = match &http.user {
            Some(user) => Some(Credentials::lookup(user, http.group.as_deref())?),
            None if http.group.is_some() => return Err(StartError::GroupWithoutUser),
            None => None,
        };
        crate::sockets::open_files::raise_for(http.max_connections);
        let sockets = crate::sockets::bind(&uris, &http.bind_options())?;
        // Told apart by the address it got: with port 0 its URI may also be one of `[http]`'s.
        let metrics_listen = metrics_listen.and_then(|uri| {
            sockets
                .iter()
                .rev()
                .find(|socket| *socket.uri() == uri)
                .map(|socket| socket.local_addr().clone())
        });
        if self.before_fork.runs(before_fork) {
            apart::run("the before-fork steps", || {
                Ok(self.before_fork.run(before_fork, &source)?)
            })?;
        }
        metrics::before_fork(&metrics_config)?;
        // Logged here; `Prefork` counts the same CPUs for `forks = 0` (and, unlike an explicit
        // 1, still supervises a single worker).
        workers::count(http.forks);
        let plugins = Arc::new(self);
        let current = Rc::new(RefCell::new(Generation {
            source,
            http: http.clone(),
        }));
        let reload = AppReload::new(plugins.clone(), flags.config.clone(), current.clone());
        Ok(Prefork::new(sockets)
            .workers(http.forks)
            .graceful_timeout(http.graceful_timeout())
            .shutdown_delay(http.shutdown_delay())
            .heartbeat_timeout(http.heartbeat_timeout())
            .upgrade_timeout(http.upgrade_timeout)
            .pidfile(http.pidfile.clone())
            .credentials(credentials)
            .reload(reload)
            .run(|worker| {
                // A worker gets the config of the generation it was forked in.
                let generation = current.borrow().clone();
                plugins.run_worker(
                    worker,
                    &generation.source,
                    &generation.http,
                    metrics_listen.as_ref(),
                )
            })?)
    }

    /// The supervisor is built on Linux-only system calls (signalfd, prctl, /proc); elsewhere a
    /// service says so instead of serving.
    #[cfg(not(target_os = "linux"))]
    fn serve(self, _source: ConfigSource, _flags: &Flags) -> Result<ExitCode, StartError> {
        Err(StartError::NeedsLinux)
    }

    fn stage(&self, context: Context, source: ConfigSource, http: &HttpConfig) -> Stage {
        self.plugins.stage(
            Stage::with_context(context)
                .config(source)
                .signals(Signals::none())
                .cancel_timeout(server::stage_grace(http)),
        )
    }

    /// The start-up check (and `--check`): loads every declared section, prepares the plugins
    /// (binding nothing), validates the dependency graph, and loads the sections the plugins
    /// and adapters read; every problem is reported. Runs on a current-thread runtime that is
    /// gone before this returns, so a pre-forking parent stays single-threaded.
    fn check(&self, source: &ConfigSource) -> Result<(), StartError> {
        // Declared sections first: their bad values read as config errors, not as wiring ones.
        source.check()?;
        let http = source.section::<HttpConfig>()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        runtime.block_on(async {
            let context = Context::new();
            context.add(StartCheck);
            let prepared = self.stage(context, source.clone(), &http).prepare().await?;
            let validated = prepared.context().adapters().validate(prepared.context());
            let failures = prepared.teardown().await;
            validated?;
            if !failures.is_empty() {
                return Err(StartError::Teardown(
                    failures.into_iter().map(|(step, _)| step).collect(),
                ));
            }
            // Sections that preparing or the graph check made known.
            Ok(source.check()?)
        })
    }

    /// The start-up check in a child process of its own: preparing the plugins may leave what
    /// must never reach the supervisor or the workers it forks (signal state a runtime made,
    /// process-wide recorders, threads). The child reports a failure itself.
    fn check_apart(&self, source: &ConfigSource) -> Result<(), StartError> {
        apart::run("the start-up check", || self.check(source))
    }

    #[cfg(target_os = "linux")]
    fn run_worker(
        &self,
        mut worker: Worker,
        source: &ConfigSource,
        http: &HttpConfig,
        metrics_addr: Option<&SocketUri>,
    ) -> i32 {
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
        // Outside the runtime: the exporter's HTTP client runs one of its own.
        #[cfg(feature = "otel")]
        let exporter = source
            .section::<crate::OtelConfig>()
            .ok()
            .and_then(|config| crate::otel::Exporter::start(&config));
        let code = runtime.block_on(async move {
            let shutdown = match worker.watch_shutdown() {
                Ok(shutdown) => shutdown,
                Err(err) => {
                    tracing::error!(error = %err, "cannot install the worker's signal handlers");
                    return 1;
                }
            };
            let context = Context::new();
            let (metrics_socket, sockets): (Vec<_>, Vec<_>) = worker
                .take_sockets()
                .into_iter()
                .partition(|socket| Some(socket.local_addr()) == metrics_addr);
            context.add(MetricsSocket(std::sync::Mutex::new(
                metrics_socket.into_iter().next(),
            )));
            context.add(InheritedSockets::new(sockets));
            let worker = Arc::new(worker);
            context.add_arc::<dyn Supervised>(worker.clone());
            let mut shutdown = shutdown;
            // A stop request (or the supervisor's death) while the plugins prepare ends the
            // worker there: a plugin that never finishes preparing must not leave it deaf.
            let prepared = tokio::select! {
                prepared = self.stage(context, source.clone(), http).prepare() => prepared,
                reason = shutdown.wait() => {
                    tracing::info!(?reason, "asked to stop while starting");
                    return 0;
                }
            };
            let prepared = match prepared {
                Ok(prepared) => prepared,
                Err(err) => {
                    tracing::error!(error = %err, "the worker failed to start");
                    return 1;
                }
            };
            tokio::spawn(shutdown.cancel_stage(prepared.cancel(), http.shutdown_delay()));
            let report = prepared.run().await;
            for task in report.tasks() {
                if let Some(err) = task.error() {
                    tracing::error!(task = task.name(), error = %err, "task failed");
                }
            }
            i32::from(!report.is_success())
        });
        #[cfg(feature = "otel")]
        if let Some(exporter) = exporter {
            exporter.shutdown();
        }
        code
    }
}

/// The `[metrics] listen` socket, added to the sockets to bind; it must not be one of them
/// (port 0 asks for a socket of its own, so it never is).
#[cfg(target_os = "linux")]
fn metrics_listen(
    config: &MetricsConfig,
    uris: &mut Vec<SocketUri>,
) -> Result<Option<SocketUri>, MetricsError> {
    config.validate()?;
    let listen = config.listen_uri()?.filter(|_| config.enabled);
    if let Some(uri) = &listen {
        if !uri.is_any_port() && uris.contains(uri) {
            return Err(MetricsError::SharedListen {
                uri: uri.to_string(),
            });
        }
        uris.push(uri.clone());
    }
    Ok(listen)
}
