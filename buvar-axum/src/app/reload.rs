//! SIGHUP for a whole [`App`]: the config files read again in the supervisor, checked as
//! `--check` checks them in a child process, and only then given to the workers a rollout forks.
//!
//! What the supervisor set up once from the config cannot change in place: the sockets (bound
//! once, shared by every worker), the workers' user and group, the `[log]` output (set up before
//! the first fork), the metrics region and socket, the pidfile and the upgrade timeout. A reload
//! that changes one of them is refused with a message naming the key; a binary upgrade
//! (SIGUSR2) starts the program afresh and applies everything. The environment is read at exec
//! and never again: a reload reads only the files.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use buvar_kit::log::LogConfig;
use buvar_kit::{BoxError, ConfigSource};

use super::App;
use crate::fork::{Reload, Reloaded};
use crate::{HttpConfig, MetricsConfig, server};

/// The config the workers are forked with: replaced by a reload once its check passed.
#[derive(Debug, Clone)]
pub(super) struct Generation {
    pub(super) source: ConfigSource,
    pub(super) http: Arc<HttpConfig>,
}

/// The [`Reload`] of an [`App`].
pub(super) struct AppReload {
    service: Arc<App>,
    config: Option<PathBuf>,
    current: Rc<RefCell<Generation>>,
    candidate: Option<Generation>,
}

impl AppReload {
    pub(super) fn new(
        service: Arc<App>,
        config: Option<PathBuf>,
        current: Rc<RefCell<Generation>>,
    ) -> Self {
        Self {
            service,
            config,
            current,
            candidate: None,
        }
    }
}

impl Reload for AppReload {
    fn load(&mut self) -> Result<Reloaded, BoxError> {
        self.candidate = None;
        let source = self.service.config_source(self.config.as_deref())?;
        let http = source.section::<HttpConfig>()?;
        server::check_http(&http)?;
        // A certificate or key that cannot be used stops the reload here, not in a new worker.
        #[cfg(feature = "tls")]
        crate::tls::check(http.tls.as_ref())?;
        fixed(&self.current.borrow().source, &source)?;
        let reloaded = Reloaded::new(http.forks)
            .graceful_timeout(http.graceful_timeout())
            .shutdown_delay(http.shutdown_delay())
            .heartbeat_timeout(http.heartbeat_timeout());
        self.candidate = Some(Generation { source, http });
        Ok(reloaded)
    }

    fn check(&self) -> bool {
        let Some(candidate) = &self.candidate else {
            return false;
        };
        match self.service.check(&candidate.source) {
            Ok(()) => true,
            Err(err) => {
                // The same words `--check` prints, as a log line of the running service.
                tracing::error!("config reload check failed: {err}");
                let _ = std::io::stdout().flush();
                false
            }
        }
    }

    fn commit(&mut self) {
        if let Some(candidate) = self.candidate.take() {
            *self.current.borrow_mut() = candidate;
        }
    }
}

/// A reload that changes what the supervisor set up once.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{key}` cannot change on reload (the supervisor set it up once); restart the service or \
     upgrade it with SIGUSR2 to apply it"
)]
struct FixedSetting {
    key: &'static str,
}

/// Refuses a reload that changes what the supervisor set up once, naming the first such key.
fn fixed(current: &ConfigSource, new: &ConfigSource) -> Result<(), BoxError> {
    let refuse = |key: &'static str| Err(FixedSetting { key }.into());
    let load = |source: &ConfigSource| -> Result<_, BoxError> {
        Ok((
            source.section::<HttpConfig>()?,
            source.section::<LogConfig>()?,
            source.section::<MetricsConfig>()?,
        ))
    };
    let (http, log, metrics) = load(current)?;
    let (new_http, new_log, new_metrics) = load(new)?;
    let http_keys: [(&str, bool); 9] = [
        ("http.host", http.host == new_http.host),
        ("http.port", http.port == new_http.port),
        ("http.sockets", http.sockets == new_http.sockets),
        ("http.backlog", http.backlog == new_http.backlog),
        ("http.unix_mode", http.unix_mode == new_http.unix_mode),
        ("http.user", http.user == new_http.user),
        ("http.group", http.group == new_http.group),
        ("http.pidfile", http.pidfile == new_http.pidfile),
        (
            "http.upgrade_timeout",
            http.upgrade_timeout == new_http.upgrade_timeout,
        ),
    ];
    if let Some((key, _)) = http_keys.iter().find(|(_, same)| !same) {
        return refuse(key);
    }
    if *log != *new_log {
        return refuse("log");
    }
    if *metrics != *new_metrics {
        return refuse("metrics");
    }
    Ok(())
}
