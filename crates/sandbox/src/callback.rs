//! Async callbacks: POST the signed callback envelope to the request's `sender_uri` verbatim,
//! honouring callback faults (delay, duplicate, drop), and log each delivery.

use std::time::Duration;

use dci_protocol::RegistryType;
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

/// Sends one callback (twice with the `duplicate` fault), after the configured delays.
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
    let action = header["action"].as_str().unwrap_or_default().to_owned();
    let transaction_id = message["transaction_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let correlation_id = message["correlation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let log = |status: Option<u16>, error: Option<String>| DeliveredCallback {
        url: url.to_owned(),
        action: action.clone(),
        transaction_id: transaction_id.clone(),
        correlation_id: correlation_id.clone(),
        status,
        error,
        at: reply::now(),
    };
    if faults.fail == Some(true) {
        tracing::info!(%action, %transaction_id, "callback dropped by the `fail` fault");
        state.push_callback(log(
            None,
            Some("dropped by the callback `fail` fault".to_owned()),
        ));
        return;
    }
    let body = sign_envelope(state, header, message);
    let times = if faults.duplicate == Some(true) { 2 } else { 1 };
    for _ in 0..times {
        let entry = match state.0.http.post(url).json(&body).send().await {
            Ok(resp) => {
                tracing::debug!(%action, %transaction_id, status = resp.status().as_u16(), "callback delivered");
                log(Some(resp.status().as_u16()), None)
            }
            Err(e) => {
                // The URL can hold credentials in its query; log without it.
                let e = e.without_url();
                tracing::warn!(%action, %transaction_id, error = %e, "callback delivery failed");
                log(None, Some(e.to_string()))
            }
        };
        state.push_callback(entry);
    }
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
                .records(registry)
                .iter()
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
