//! Traces: the span of every outgoing call and of every callback received, and the link from a
//! callback's span to the span of the request that caused it.
//!
//! The spans are `tracing` spans (target `dci_client`, level debug, so that info-level logs
//! neither show nor format them); a front end that installs `tracing-opentelemetry` with a
//! filter taking them exports them (`dci` does, over OTLP, when an endpoint is configured), and
//! without one they cost what any disabled span costs. Attributes: `dci.source`,
//! `dci.action`, `dci.message_id`, `dci.transaction_id`, `http.request.method`, `url.path` (never
//! the query: a token request may carry credentials there), `http.response.status_code`,
//! `dci.attempts`; never a body, a record identifier or a credential.
//!
//! The link: when a call that carries a transaction id starts, its span context is kept here
//! under that id (in memory, bounded, for a day); the callback naming the transaction links its
//! span to it. A callback arriving at another instance, or after a restart, has no link, but
//! both spans carry `dci.transaction_id`, which a trace backend can join on.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Span contexts kept for linking, at most.
const REMEMBERED: u64 = 100_000;
/// How long a request's span context is kept for its callbacks.
const REMEMBER_FOR: Duration = Duration::from_secs(24 * 3600);

fn contexts() -> &'static moka::future::Cache<String, SpanContext> {
    static CONTEXTS: OnceLock<moka::future::Cache<String, SpanContext>> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        moka::future::Cache::builder()
            .max_capacity(REMEMBERED)
            .time_to_live(REMEMBER_FOR)
            .build()
    })
}

/// The span of one outgoing call (all its attempts): `dci {action}`, kind client.
pub(crate) fn call_span(
    source: &str,
    action: &str,
    method: &str,
    path: &str,
    ids: &(Option<String>, Option<String>),
) -> tracing::Span {
    let span = tracing::debug_span!(
        target: "dci_client",
        "dci.call",
        otel.name = %format_args!("dci {action}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        dci.source = %source,
        dci.action = %action,
        dci.message_id = tracing::field::Empty,
        dci.transaction_id = tracing::field::Empty,
        http.request.method = %method,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
        dci.attempts = tracing::field::Empty,
    );
    if let Some(m) = &ids.0 {
        span.record("dci.message_id", m.as_str());
    }
    if let Some(t) = &ids.1 {
        span.record("dci.transaction_id", t.as_str());
    }
    span
}

/// Records how a call ended on its span.
pub(crate) fn call_ended(span: &tracing::Span, status: Option<u16>, attempts: u32, ok: bool) {
    if let Some(s) = status {
        span.record("http.response.status_code", s);
    }
    span.record("dci.attempts", attempts);
    if !ok {
        span.record("otel.status_code", "ERROR");
    }
}

/// Keeps `span`'s context for the callbacks of `transaction_id` (nothing when no trace
/// exporter is installed: the context is then invalid).
pub(crate) async fn remember(span: &tracing::Span, transaction_id: &str) {
    let cx = span.context().span().span_context().clone();
    if cx.is_valid() {
        contexts().insert(transaction_id.to_owned(), cx).await;
    }
}

/// The span of one callback received for data source `source`: `dci callback`, kind internal
/// (the HTTP server span, if the front end makes one, is its parent).
pub(crate) fn callback_span(source: &str) -> tracing::Span {
    tracing::debug_span!(
        target: "dci_client",
        "dci.callback",
        otel.name = "dci callback",
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        dci.source = %source,
        dci.action = tracing::field::Empty,
        dci.message_id = tracing::field::Empty,
        dci.transaction_id = tracing::field::Empty,
        dci.outcome = tracing::field::Empty,
        dci.error_code = tracing::field::Empty,
    )
}

/// Names the callback on the current (callback) span and links it to its request's span.
pub(crate) async fn callback_identified(
    action: &str,
    message_id: &str,
    transaction_id: Option<&str>,
) {
    let span = tracing::Span::current();
    span.record("dci.action", action);
    span.record("dci.message_id", message_id);
    if let Some(t) = transaction_id {
        span.record("dci.transaction_id", t);
        if let Some(cx) = contexts().get(t).await {
            span.add_link(cx);
        }
    }
}

/// Records the callback's answer on its span.
pub(crate) fn callback_answered(span: &tracing::Span, refused: Option<&str>) {
    match refused {
        None => {
            span.record("dci.outcome", "acknowledged");
        }
        Some(code) => {
            span.record("dci.outcome", "refused");
            span.record("dci.error_code", code);
            span.record("otel.status_code", "ERROR");
        }
    }
}
