//! The process's Prometheus metrics: every series this crate records, in one registry, and
//! their rendering in the OpenMetrics text format.
//!
//! The library records where things happen (the transport for registry calls, token fetches,
//! retries and 401 re-authentications; the callback receiver; the webhook worker; the audit
//! writer), so every front end — `dci serve`, the CLI, an embedding application — gets the same
//! series; a front end only calls [`scrape`] (or [`render`]) and serves the text.
//!
//! Labels are bounded and never name a person: a data source's code (operator configuration),
//! the action (`search`, `token`, …), the outcome, a DCI error code. Message and transaction
//! ids, bodies, record identifiers and URLs with their queries never become labels.
//!
//! Series (the README's "Metrics, traces and logs" lists the same):
//! - `dci_build_info{version}` — 1.
//! - `dci_registry_requests_total{source,action,outcome}` — attempts of outgoing calls (token
//!   requests included) by outcome (the audit log's: `ok`, `http_error`, `timeout`,
//!   `network`, `auth`, `invalid_response`, `other`).
//! - `dci_registry_request_duration_seconds{source,action}` — latency of each attempt.
//! - `dci_token_fetches_total{source,outcome}` — token endpoint requests (`ok` or `error`).
//! - `dci_registry_retries_total{source,action}` — resends after a transient failure.
//! - `dci_registry_reauthentications_total{source}` — new tokens fetched after an HTTP 401.
//! - `dci_callbacks_total{outcome,code}` — callbacks received: `acknowledged`, or `refused`
//!   with the ACK's DCI error code.
//! - `dci_webhook_attempts_total{outcome}` — webhook delivery attempts: `delivered`, `retry`,
//!   `dead`.
//! - `dci_audit_queue_entries` — audit entries queued for the writer, not yet stored.
//! - `dci_transactions_open{state}` — async requests waiting (`pending`, `acknowledged`,
//!   `partial`), read from the store at each scrape.
//! - `dci_webhook_deliveries_backlog{state}` — deliveries `pending` or `dead`, read at scrape.
//! - `dci_events_unprocessed` — outbox events the SPMIS has not marked processed, read at scrape.
//! - `dci_metrics_store_errors_total` — scrapes whose backlog read failed (the backlog gauges
//!   then keep their last values).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::ops::{Backlog, OpsStore};
use crate::store::AuditOutcome;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency histogram's buckets: 5 ms to 60 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    source: String,
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    source: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceOutcome {
    source: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallbackLabels {
    outcome: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

type LatencyFamily = Family<ActionLabels, Histogram, fn() -> Histogram>;

struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: LatencyFamily,
    token_fetches: Family<SourceOutcome, Counter>,
    retries: Family<ActionLabels, Counter>,
    reauths: Family<SourceLabel, Counter>,
    callbacks: Family<CallbackLabels, Counter>,
    webhook_attempts: Family<OutcomeLabel, Counter>,
    audit_queue: Gauge,
    open_transactions: Family<StateLabel, Gauge>,
    deliveries: Family<StateLabel, Gauge>,
    unprocessed_events: Gauge,
    store_errors: Counter,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::default();
        let calls = Family::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        let token_fetches = Family::default();
        let retries = Family::default();
        let reauths = Family::default();
        let callbacks = Family::default();
        let webhook_attempts = Family::default();
        let audit_queue = Gauge::default();
        let open_transactions = Family::default();
        let deliveries = Family::default();
        let unprocessed_events = Gauge::default();
        let store_errors = Counter::default();
        registry.register(
            "dci_build",
            "Build information: the dci-client version",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            }),
        );
        registry.register(
            "dci_registry_requests",
            "Attempts of outgoing registry calls (token requests included) by outcome",
            calls.clone(),
        );
        registry.register(
            "dci_registry_request_duration_seconds",
            "Latency of each attempt of an outgoing registry call",
            latency.clone(),
        );
        registry.register(
            "dci_token_fetches",
            "Requests to a token endpoint by outcome",
            token_fetches.clone(),
        );
        registry.register(
            "dci_registry_retries",
            "Resends of an idempotent call after a transient failure",
            retries.clone(),
        );
        registry.register(
            "dci_registry_reauthentications",
            "New tokens fetched because the registry answered HTTP 401",
            reauths.clone(),
        );
        registry.register(
            "dci_callbacks",
            "Callbacks received, acknowledged or refused (with the DCI error code)",
            callbacks.clone(),
        );
        registry.register(
            "dci_webhook_attempts",
            "Webhook delivery attempts by outcome",
            webhook_attempts.clone(),
        );
        registry.register(
            "dci_audit_queue_entries",
            "Audit entries queued for the audit writer, not yet stored",
            audit_queue.clone(),
        );
        registry.register(
            "dci_transactions_open",
            "Async requests waiting for their answer, by state (read from the store)",
            open_transactions.clone(),
        );
        registry.register(
            "dci_webhook_deliveries_backlog",
            "Webhook deliveries not delivered, by state (read from the store)",
            deliveries.clone(),
        );
        registry.register(
            "dci_events_unprocessed",
            "Outbox events not yet marked processed (read from the store)",
            unprocessed_events.clone(),
        );
        registry.register(
            "dci_metrics_store_errors",
            "Scrapes whose backlog read from the store failed",
            store_errors.clone(),
        );
        Metrics {
            registry,
            calls,
            latency,
            token_fetches,
            retries,
            reauths,
            callbacks,
            webhook_attempts,
            audit_queue,
            open_transactions,
            deliveries,
            unprocessed_events,
            store_errors,
        }
    })
}

/// One attempt of an outgoing call ended (the transport calls this once per attempt).
pub(crate) fn call_attempt(source: &str, action: &str, outcome: AuditOutcome, took: Duration) {
    let m = metrics();
    m.calls
        .get_or_create(&CallLabels {
            source: source.to_owned(),
            action: action.to_owned(),
            outcome: outcome.as_str().to_owned(),
        })
        .inc();
    m.latency
        .get_or_create(&ActionLabels {
            source: source.to_owned(),
            action: action.to_owned(),
        })
        .observe(took.as_secs_f64());
}

/// A token request ended (once per fetch, however many attempts it took).
pub(crate) fn token_fetch(source: &str, ok: bool) {
    metrics()
        .token_fetches
        .get_or_create(&SourceOutcome {
            source: source.to_owned(),
            outcome: if ok { "ok" } else { "error" }.to_owned(),
        })
        .inc();
}

/// A call is about to be resent after a transient failure.
pub(crate) fn retry(source: &str, action: &str) {
    metrics()
        .retries
        .get_or_create(&ActionLabels {
            source: source.to_owned(),
            action: action.to_owned(),
        })
        .inc();
}

/// The registry answered 401 and a new token is being fetched.
pub(crate) fn reauthentication(source: &str) {
    metrics()
        .reauths
        .get_or_create(&SourceLabel {
            source: source.to_owned(),
        })
        .inc();
}

/// A callback was answered: acknowledged (`None`) or refused with this DCI error code.
pub(crate) fn callback(refused: Option<&str>) {
    let (outcome, code) = match refused {
        None => ("acknowledged", ""),
        Some(code) => ("refused", code),
    };
    metrics()
        .callbacks
        .get_or_create(&CallbackLabels {
            outcome: outcome.to_owned(),
            code: code.to_owned(),
        })
        .inc();
}

/// A webhook delivery attempt ended: `delivered`, `retry` or `dead`.
pub(crate) fn webhook_attempt(outcome: &'static str) {
    metrics()
        .webhook_attempts
        .get_or_create(&OutcomeLabel {
            outcome: outcome.to_owned(),
        })
        .inc();
}

/// `n` audit entries joined (positive) or left (negative) the audit writer's queue.
pub(crate) fn audit_queue(n: i64) {
    metrics().audit_queue.inc_by(n);
}

/// Sets the backlog gauges from the store's counts.
pub fn set_backlog(b: &Backlog) {
    let m = metrics();
    for (state, n) in [
        ("pending", b.pending_transactions),
        ("acknowledged", b.acknowledged_transactions),
        ("partial", b.partial_transactions),
    ] {
        m.open_transactions
            .get_or_create(&StateLabel {
                state: state.to_owned(),
            })
            .set(gauge(n));
    }
    for (state, n) in [
        ("pending", b.pending_deliveries),
        ("dead", b.dead_deliveries),
    ] {
        m.deliveries
            .get_or_create(&StateLabel {
                state: state.to_owned(),
            })
            .set(gauge(n));
    }
    m.unprocessed_events.set(gauge(b.unprocessed_events));
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Every series in the OpenMetrics text format (ending `# EOF`), as last recorded.
pub fn render() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
}

/// Reads the backlogs from `ops` into their gauges, then [`render`]s. A failed read is counted
/// (`dci_metrics_store_errors_total`) and logged; the rest is rendered anyway.
pub async fn scrape(ops: &dyn OpsStore) -> String {
    match ops.backlog().await {
        Ok(b) => set_backlog(&b),
        Err(e) => {
            metrics().store_errors.inc();
            tracing::warn!(error = %e, "metrics: could not read the backlogs from the store");
        }
    }
    render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_series_carry_their_labels_and_the_build_version() {
        call_attempt(
            "unit-src",
            "search",
            AuditOutcome::Ok,
            Duration::from_millis(30),
        );
        callback(Some("err.request.bad"));
        let text = render();
        assert!(
            text.contains(&format!(
                "dci_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(
            text.contains(
                "dci_registry_requests_total{source=\"unit-src\",action=\"search\",outcome=\"ok\"}"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "dci_registry_request_duration_seconds_bucket{le=\"0.05\",source=\"unit-src\",action=\"search\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "dci_registry_request_duration_seconds_bucket{le=\"0.025\",source=\"unit-src\",action=\"search\"} 0"
            ),
            "30 ms is above the 25 ms bucket: {text}"
        );
        assert!(
            text.contains("dci_callbacks_total{outcome=\"refused\",code=\"err.request.bad\"}"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
