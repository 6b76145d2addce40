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
        state.callbacks().push(log(
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
        state.callbacks().push(entry);
    }
}
