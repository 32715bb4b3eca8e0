//! Traces exported by OTLP over HTTP (feature `otel`): the `[otel]` section, the exporter each
//! worker starts after fork, and the request span that joins the caller's trace.
//!
//! The subscriber is installed once, in the supervisor, with a [`LayerSlot`]; each worker fills
//! it with its exporter's layer after fork (the batch exporter runs a thread, which the
//! supervisor must never have) and flushes it when it stops. Requests carrying a W3C
//! `traceparent` continue that trace; every log line of a request carries its `trace_id` and
//! `request_id`.

use std::sync::OnceLock;
use std::time::Duration;

use buvar_kit::config::figment::value::Dict;
use buvar_kit::config::{ConfigError, Limit, Section, serialize_defaults};
use buvar_kit::log::{LogConfig, LogError};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing::Event;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, Registry};

/// The `[otel]` section (feature `otel`): where and how spans are exported.
///
/// ```toml
/// [otel]
/// endpoint = "http://127.0.0.1:4318"  # OTLP/HTTP base URL; unset: no export
/// service_name = "my-service"         # default: the program's file name
/// sampling_ratio = 1.0                # of traces started here (a caller's decision is kept)
/// export_timeout = "10s"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtelConfig {
    /// The collector's OTLP/HTTP base URL; spans go to `<endpoint>/v1/traces`. Unset, nothing
    /// is exported and requests cost nothing more.
    pub endpoint: Option<String>,
    /// The `service.name` resource attribute; default: the program's file name.
    pub service_name: Option<String>,
    /// The share of the traces started here that are sampled, from 0 to 1; a request whose
    /// caller sampled it (or not) keeps that decision.
    pub sampling_ratio: f64,
    /// How long one export may take.
    #[serde(with = "buvar_kit::config::duration")]
    pub export_timeout: Duration,
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: None,
            sampling_ratio: 1.0,
            export_timeout: Duration::from_secs(10),
        }
    }
}

impl Section for OtelConfig {
    const SECTION: &'static str = "otel";

    fn defaults() -> Result<Option<Dict>, ConfigError> {
        serialize_defaults(&Self::default()).map(Some)
    }

    fn limits() -> Vec<Limit> {
        vec![Limit::duration(
            "export_timeout",
            Duration::from_millis(10)..=Duration::from_secs(300),
        )]
    }
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// `sampling_ratio` is not between 0 and 1.
    #[error("`otel.sampling_ratio` is {0}: it must be between 0 and 1 (1 samples every trace)")]
    SamplingRatio(f64),
    /// `endpoint` is not an http(s) URL.
    #[error(
        "`otel.endpoint` is {0:?}: it must be an http:// or https:// URL such as \
         http://127.0.0.1:4318"
    )]
    Endpoint(String),
    /// The subscriber could not be set up.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl OtelConfig {
    /// Checks the values no range covers; call before fork, so a bad one stops the start.
    pub fn validate(&self) -> Result<(), OtelError> {
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Err(OtelError::SamplingRatio(self.sampling_ratio));
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(OtelError::Endpoint(endpoint.clone()));
            }
        }
        Ok(())
    }

    fn service_name(&self) -> String {
        self.service_name.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "buvar-service".to_owned())
        })
    }
}

/// The exporter's layer, once a worker started it; set once and never dropped, so that what
/// it lends out (a downcast to its parts, which `tracing-opentelemetry` asks for to read a
/// span's trace) stays valid.
static LATE: OnceLock<Box<dyn Layer<Registry> + Send + Sync>> = OnceLock::new();

/// Whether the supervisor installed the subscriber with the slot (inherited by the workers).
static SLOT: OnceLock<()> = OnceLock::new();

/// In the supervisor, before fork: installs the log subscriber, with a slot for the exporter
/// when `[otel] endpoint` is set (a `reload` layer would not do: it refuses the downcasts
/// `tracing-opentelemetry` needs to join a caller's trace).
pub(crate) fn init_log(log: &LogConfig, otel: &OtelConfig) -> Result<(), OtelError> {
    otel.validate()?;
    if otel.endpoint.is_none() {
        buvar_kit::log::init(log)?;
        return Ok(());
    }
    buvar_kit::log::init_with_layer(log, Late)?;
    let _ = SLOT.set(());
    Ok(())
}

/// Whether this process exports traces (a worker of a service with `[otel] endpoint`).
pub(crate) fn active() -> bool {
    LATE.get().is_some()
}

/// The subscriber's side of the slot: forwards to the [`LATE`] layer once there is one.
struct Late;

impl Layer<Registry> for Late {
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        match LATE.get() {
            Some(layer) => layer.register_callsite(metadata),
            // No opinion: the filter decides.
            None => tracing::subscriber::Interest::always(),
        }
    }

    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        ctx: tracing_subscriber::layer::Context<'_, Registry>,
    ) -> bool {
        LATE.get().is_none_or(|layer| layer.enabled(metadata, ctx))
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, Registry>,
    ) {
        if let Some(layer) = LATE.get() {
            layer.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(
        &self,
        span: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, Registry>,
    ) {
        if let Some(layer) = LATE.get() {
            layer.on_record(span, values, ctx);
        }
    }

    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, Registry>,
    ) {
        if let Some(layer) = LATE.get() {
            layer.on_follows_from(span, follows, ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: tracing_subscriber::layer::Context<'_, Registry>) {
        if let Some(layer) = LATE.get() {
            layer.on_event(event, ctx);
        }
    }

    fn on_enter(
        &self,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, Registry>,
    ) {
        if let Some(layer) = LATE.get() {
            layer.on_enter(id, ctx);
        }
    }

    fn on_exit(
        &self,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, Registry>,
    ) {
        if let Some(layer) = LATE.get() {
            layer.on_exit(id, ctx);
        }
    }

    fn on_close(
        &self,
        id: tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, Registry>,
    ) {
        if let Some(layer) = LATE.get() {
            layer.on_close(id, ctx);
        }
    }

    fn on_id_change(
        &self,
        old: &tracing::span::Id,
        new: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, Registry>,
    ) {
        if let Some(layer) = LATE.get() {
            layer.on_id_change(old, new, ctx);
        }
    }

    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            return Some(std::ptr::from_ref(self).cast());
        }
        // SAFETY: forwarded as asked; the layer lives in a static and is never replaced, so
        // the pointer it returns stays valid for the rest of the process.
        LATE.get()
            .and_then(|layer| unsafe { layer.downcast_raw(id) })
    }
}

/// A worker's exporter: flushed and stopped with [`Exporter::shutdown`].
#[derive(Debug)]
pub(crate) struct Exporter(SdkTracerProvider);

impl Exporter {
    /// In a worker, after fork and outside its runtime (the exporter's HTTP client runs its
    /// own): starts exporting. `None` when tracing is off or the exporter cannot be built
    /// (logged: the worker serves without traces rather than not at all).
    pub(crate) fn start(config: &OtelConfig) -> Option<Self> {
        SLOT.get()?;
        let endpoint = config.endpoint.as_deref()?;
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(config.export_timeout)
            .build()
        {
            Ok(exporter) => exporter,
            Err(error) => {
                tracing::error!(%error, endpoint = url, "cannot start the trace exporter; serving without traces");
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sampling_ratio,
            ))))
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(config.service_name())
                    .build(),
            )
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("buvar-axum"));
        if LATE.set(Box::new(layer)).is_err() {
            tracing::error!("a trace exporter runs already; serving without a second one");
            return None;
        }
        tracing::callsite::rebuild_interest_cache();
        tracing::info!(endpoint = url, "exporting traces");
        Some(Self(provider))
    }

    /// Exports what is left and stops; on a worker's graceful stop.
    pub(crate) fn shutdown(self) {
        if let Err(error) = self.0.shutdown() {
            tracing::warn!(%error, "the trace exporter did not flush cleanly");
        }
    }
}

/// The request span when traces are exported: at info level (so the exporter sees it), a child
/// of the caller's `traceparent` if there is one, its trace id on every log line.
pub(crate) fn request_span<B>(request: &http::Request<B>, request_id: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        request_id,
        trace_id = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(request.headers()))
    });
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
    span
}

/// Reads W3C trace context from request headers.
struct Headers<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_outside_0_to_1_and_a_non_http_endpoint_are_refused_naming_the_key() {
        let ratio = OtelConfig {
            sampling_ratio: 1.5,
            ..OtelConfig::default()
        };
        assert!(
            ratio
                .validate()
                .unwrap_err()
                .to_string()
                .contains("otel.sampling_ratio")
        );
        let endpoint = OtelConfig {
            endpoint: Some("127.0.0.1:4318".to_owned()),
            ..OtelConfig::default()
        };
        assert!(
            endpoint
                .validate()
                .unwrap_err()
                .to_string()
                .contains("otel.endpoint")
        );
        OtelConfig::default().validate().unwrap();
    }
}
