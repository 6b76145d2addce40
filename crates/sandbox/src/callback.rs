//! Async callbacks: POST the signed callback envelope to the request's `sender_uri` verbatim,
//! honouring callback faults (delay, duplicate, drop), redeliver it with exponential backoff
//! while the receiver fails, and log each attempt.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use dci_protocol::RegistryType;
use reqwest::StatusCode;
use serde_json::Value;

use crate::envelope::sign_envelope;
use crate::faults::FaultTarget;
use crate::reply;
use crate::state::{AppState, DeliveredCallback};

/// Sends the callback in the background; the ACK does not wait for it.
pub(crate) fn spawn_delivery(
    state: AppState,
    registry: RegistryType,
    url: String,
    header: Value,
    message: Value,
) {
    tokio::spawn(async move {
        deliver(&state, registry, &url, header, message).await;
    });
}

/// One callback to deliver: the signed body, sent as the same bytes at every attempt (so the
/// receiver sees one `message_id` and can deduplicate).
#[derive(Debug, Clone)]
struct Delivery {
    url: String,
    body: Bytes,
    action: String,
    transaction_id: String,
    correlation_id: String,
}

impl Delivery {
    fn log(&self, attempt: u32, status: Option<u16>, error: Option<String>) -> DeliveredCallback {
        DeliveredCallback {
            url: self.url.clone(),
            action: self.action.clone(),
            transaction_id: self.transaction_id.clone(),
            correlation_id: self.correlation_id.clone(),
            status,
            error,
            at: reply::now(),
            attempt,
            retry_in_ms: None,
        }
    }
}

/// Sends one callback (twice with the `duplicate` fault), after the configured delays. The
/// first attempt is awaited; redeliveries run in the background.
pub(crate) async fn deliver(
    state: &AppState,
    registry: RegistryType,
    url: &str,
    header: Value,
    message: Value,
) {
    let faults = state
        .faults()
        .effective(FaultTarget::from(registry))
        .callback
        .unwrap_or_default();
    let delay = state.cfg().callback_delay + Duration::from_millis(faults.delay_ms.unwrap_or(0));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut delivery = Delivery {
        url: url.to_owned(),
        body: Bytes::new(),
        action: text(&header["action"]),
        transaction_id: text(&message["transaction_id"]),
        correlation_id: text(&message["correlation_id"]),
    };
    if faults.fail == Some(true) {
        tracing::info!(action = %delivery.action, transaction_id = %delivery.transaction_id, "callback dropped by the `fail` fault");
        state.0.deliveries.dropped.fetch_add(1, Ordering::Relaxed);
        state.push_callback(delivery.log(
            1,
            None,
            Some("dropped by the callback `fail` fault".to_owned()),
        ));
        return;
    }
    let body = sign_envelope(state, header, message);
    delivery.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let times = if faults.duplicate == Some(true) { 2 } else { 1 };
    for _ in 0..times {
        // A scheduled redelivery has its room reserved; `redeliver` gives it back.
        if let Some(wait) = attempt(state, &delivery, 1, false).await {
            tokio::spawn(redeliver(state.clone(), delivery.clone(), wait));
        }
    }
}

/// Makes room for one pending redelivery of `bytes`: at most the log capacity of callbacks
/// wait, holding at most [`PENDING_BUDGET_FACTOR`] times the log body budget. When full, the
/// callback is given up at once, keeping memory bounded while a receiver is down under load.
fn reserve(state: &AppState, bytes: usize) -> bool {
    let counters = &state.0.deliveries;
    let cfg = state.cfg();
    let max_bytes = cfg
        .log_body_budget
        .saturating_mul(PENDING_BUDGET_FACTOR)
        .max(bytes);
    let held = counters.pending_bytes.fetch_add(bytes, Ordering::Relaxed);
    let waiting = counters.pending.fetch_add(1, Ordering::Relaxed);
    if held + bytes <= max_bytes && waiting < cfg.log_entries as u64 {
        return true;
    }
    release(state, bytes);
    tracing::warn!(
        waiting,
        held,
        "callback not redelivered: too many redeliveries pending"
    );
    false
}

fn release(state: &AppState, bytes: usize) {
    let counters = &state.0.deliveries;
    counters.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
    counters.pending.fetch_sub(1, Ordering::Relaxed);
}

/// Pending redeliveries may hold this many times the log body budget (64 MiB by default).
const PENDING_BUDGET_FACTOR: usize = 4;

/// The wait before attempt `n + 1`: the initial backoff doubled `n - 1` times, capped.
fn backoff(state: &AppState, n: u32) -> Duration {
    let cfg = state.cfg();
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    cfg.callback_initial_backoff
        .saturating_mul(factor)
        .min(cfg.callback_max_backoff)
}

/// Whether a receiver's answer is worth another attempt.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// Attempt `n`; logs it and returns the wait before the next attempt, if there is to be one
/// (reserving room for it unless `reserved` already).
async fn attempt(state: &AppState, d: &Delivery, n: u32, reserved: bool) -> Option<Duration> {
    let counters = &state.0.deliveries;
    let sent = state
        .0
        .http
        .post(&d.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(state.cfg().callback_timeout)
        .body(d.body.clone())
        .send()
        .await;
    let (mut entry, failed) = match sent {
        Ok(resp) => {
            let status = resp.status();
            tracing::debug!(action = %d.action, transaction_id = %d.transaction_id, status = status.as_u16(), attempt = n, "callback answered");
            if status.is_success() {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
            } else if !retryable(status) {
                counters.refused.fetch_add(1, Ordering::Relaxed);
            }
            (d.log(n, Some(status.as_u16()), None), retryable(status))
        }
        Err(e) => {
            // The URL can hold credentials in its query; log without it.
            let e = e.without_url();
            tracing::warn!(action = %d.action, transaction_id = %d.transaction_id, attempt = n, error = %e, "callback delivery failed");
            (d.log(n, None, Some(e.to_string())), true)
        }
    };
    let next = if !failed {
        None
    } else if n >= state.cfg().callback_attempts {
        counters.gave_up.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(action = %d.action, transaction_id = %d.transaction_id, attempts = n, "callback given up");
        None
    } else if reserved || reserve(state, d.body.len()) {
        Some(backoff(state, n))
    } else {
        counters.gave_up.fetch_add(1, Ordering::Relaxed);
        let note = "not redelivered: too many redeliveries pending (the limit follows \
                    log_capacity and log_body_budget)";
        entry.error = Some(match entry.error.take() {
            Some(e) => format!("{e}; {note}"),
            None => note.to_owned(),
        });
        None
    };
    entry.retry_in_ms = next.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
    state.push_callback(entry);
    next
}

/// Attempts 2, 3, … until one succeeds, is refused, or the last fails; stops with the sandbox.
async fn redeliver(state: AppState, d: Delivery, first_wait: Duration) {
    let counters = &state.0.deliveries;
    let mut stopping = state.0.stopping.clone();
    let mut wait = first_wait;
    let mut n = 1;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // The sandbox stopped (or was dropped): pending redeliveries end with it.
            _ = stopping.wait_for(|stop| *stop) => break,
        }
        n += 1;
        counters.redeliveries.fetch_add(1, Ordering::Relaxed);
        match attempt(&state, &d, n, true).await {
            Some(next) => wait = next,
            None => break,
        }
    }
    release(&state, d.body.len());
}

/// Sends a `notify` to every active subscription of `registry` (or only `code`), with the
/// records its filter matches (up to 10 per subscription). Returns how many were sent.
pub(crate) async fn notify(state: &AppState, registry: RegistryType, code: Option<&str>) -> usize {
    let targets: Vec<(String, crate::state::Subscription)> = state
        .subscriptions()
        .iter()
        .filter(|(c, s)| s.active && s.registry == registry && code.is_none_or(|x| x == c.as_str()))
        .map(|(c, s)| (c.clone(), s.clone()))
        .collect();
    let mut sent = 0;
    for (code, sub) in targets {
        let info = &sub.info;
        let expr = crate::search::parse_query(
            info["filter_type"].as_str().unwrap_or("predicate"),
            &info["filter"],
        );
        let event_type = info["reg_event_type"]
            .as_str()
            .unwrap_or("REGISTER")
            .to_owned();
        let event =
            (registry == RegistryType::Crvs).then(|| crate::search::event_kind(&event_type));
        let records: Vec<Value> = match &expr {
            Ok(expr) => state
                .data()
                .iter(registry)
                .filter(|r| {
                    crate::search::matches(expr, r, event.as_deref().filter(|e| *e != "register"))
                })
                .take(10)
                .map(|r| r.json.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        let events: Vec<Value> = records
            .into_iter()
            .enumerate()
            .map(|(i, rec)| {
                serde_json::json!({
                    "reference_id": format!("{code}-{}", i + 1),
                    "timestamp": reply::now(),
                    "data": {
                        "version": "1.0.0",
                        "reg_type": registry.reg_type(),
                        "reg_event_type": notify_event_type(registry, &event_type),
                        "reg_record_type": info["notify_record_type"],
                        "reg_records": rec,
                    },
                    "subscription_code": code,
                })
            })
            .collect();
        if events.is_empty() {
            continue;
        }
        let header = serde_json::json!({
            "version": "1.0.0",
            "message_id": reply::new_id(),
            "message_ts": reply::now(),
            "action": "notify",
            "status": "succ",
            "total_count": events.len(),
            "completed_count": events.len(),
            "sender_id": state.cfg().registry_id,
            "receiver_id": sub.receiver_id,
            "is_msg_encrypted": false,
        });
        let message = serde_json::json!({
            "transaction_id": reply::new_id(),
            "correlation_id": reply::new_id(),
            "notify_event": events,
        });
        deliver(state, registry, &sub.sender_uri, header, message).await;
        sent += 1;
    }
    sent
}

/// The notify `reg_event_type` each spec allows (an enum everywhere but CRVS), from the
/// subscription's event type.
fn notify_event_type(registry: RegistryType, subscribed: &str) -> &str {
    match registry {
        RegistryType::Crvs => subscribed,
        RegistryType::Ibr if subscribed == "enrollement_status_change" => subscribed,
        RegistryType::Ibr => "enrollement",
        RegistryType::Social if subscribed == "NewHouseHoldMember" => subscribed,
        _ => "REGISTER",
    }
}
