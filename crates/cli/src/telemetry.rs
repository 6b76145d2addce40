//! The one logging and tracing set-up of every command (with the retry notices of
//! [`crate::progress`]): log lines to stderr as text or JSON
//! (`DCI_LOG_FORMAT` / `--log-format` / `log_format`), filtered by `DCI_LOG` / `--log` / `log`;
//! and, when an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` / `--otlp-endpoint`
//! / `otlp_endpoint`), the library's spans (every outgoing call, every callback) exported over
//! OTLP/HTTP (protobuf) to `{endpoint}/v1/traces` in batches, flushed when the command ends.
//!
//! The log filter does not apply to the export: traces take every span of the `dci_*` crates
//! (debug-level: the outgoing calls, the callbacks, `dci serve`'s HTTP requests) and their
//! events at info or above, whatever the log level. `OTEL_SERVICE_NAME` names the service (default `dci`); the
//! exporter's own settings (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_EXPORTER_OTLP_HEADERS`, …) are
//! read by the OpenTelemetry SDK.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Flushes and stops the trace export when dropped (at the end of `main`).
#[must_use]
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: exporting the last traces failed: {e}");
        }
    }
}

/// Installs the global subscriber; `default` is the log filter when none is configured. Safe to
/// call more than once (later calls do nothing).
pub(crate) fn init(default: &str) -> Telemetry {
    let settings = crate::config::settings();
    let filter = settings
        .log
        .value
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = crate::context::colour(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match settings.log_format.value.unwrap_or_default() {
        LogFormat::Text => fmt.with_ansi(ansi).with_filter(filter).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let (provider, traces) = match settings.otlp_endpoint.value.as_deref() {
        Some(endpoint) => match exporter(endpoint) {
            Ok(provider) => {
                let tracer = provider.tracer("dci");
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(tracing_subscriber::filter::filter_fn(exported));
                (Some(provider), Some(layer))
            }
            Err(e) => {
                eprintln!("warning: traces are not exported: {e}");
                (None, None)
            }
        },
        None => (None, None),
    };
    // The retry notices see the transport's debug events whatever the log filter says.
    let retries = crate::progress::RetryNotices.with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("dci_client::transport", tracing::Level::DEBUG),
    );
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .with(retries)
        .try_init();
    Telemetry { provider }
}

/// What the trace export takes: every span of the `dci_*` crates (the call, callback and HTTP
/// request spans are debug-level, so that they stay out of info logs) and their events at info
/// or above (as span events).
fn exported(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("dci") && (meta.is_span() || *meta.level() <= tracing::Level::INFO)
}

fn exporter(endpoint: &str) -> Result<SdkTracerProvider, String> {
    let url = format!("{}/v1/traces", endpoint.trim().trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.clone())
        .build()
        .map_err(|e| format!("the OTLP exporter for {url} could not be built: {e}"))?;
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "dci".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
