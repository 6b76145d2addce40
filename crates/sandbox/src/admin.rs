//! The admin API under `/admin`: examples, faults, recorded requests, callbacks and counters.
//! Unauthenticated on purpose: the sandbox listens on loopback only unless told otherwise.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::Faults;
use crate::state::AppState;

fn bad_input(message: String) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": message})),
    )
        .into_response()
}

/// `GET /admin/examples`.
pub(crate) async fn examples(State(state): State<AppState>) -> Json<Value> {
    let ex = crate::data::examples(&state.data());
    let map: BTreeMap<String, _> = ex
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect();
    Json(json!(map))
}

/// Applies a fault specification (also used by [`crate::Sandbox::set_faults`]).
pub(crate) fn apply_faults(state: &AppState, faults: Faults) -> Result<(), String> {
    faults.validate()?;
    if faults.revoke_tokens == Some(true) {
        state.revoke_tokens();
        tracing::info!("all issued tokens revoked by fault injection");
    }
    state.faults().set(faults);
    Ok(())
}

/// `POST /admin/faults`.
pub(crate) async fn set_faults(State(state): State<AppState>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return bad_input(format!(
                "invalid fault specification: {e}; fields: target, latency_ms, http_500_ratio, \
                 http_503_ratio, http_429_ratio, retry_after_s, reset_ratio, down, revoke_tokens, \
                 callback {{delay_ms, duplicate, fail}}"
            ));
        }
    };
    if let Err(e) = apply_faults(&state, faults) {
        return bad_input(e);
    }
    Json(json!({"faults": state.faults().list()})).into_response()
}

/// `GET /admin/faults`.
pub(crate) async fn get_faults(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"faults": state.faults().list()}))
}

/// `DELETE /admin/faults`.
pub(crate) async fn clear_faults(State(state): State<AppState>) -> Json<Value> {
    state.faults().clear();
    Json(json!({"faults": []}))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestsQuery {
    #[serde(default)]
    bodies: bool,
}

/// `GET /admin/requests[?bodies=true]`.
pub(crate) async fn requests(
    State(state): State<AppState>,
    Query(q): Query<RequestsQuery>,
) -> Json<Value> {
    let mut list = state.requests().clone();
    if !q.bodies {
        for r in &mut list {
            r.body = None;
        }
    }
    Json(json!({"requests": list}))
}

/// `DELETE /admin/requests`.
pub(crate) async fn clear_requests(State(state): State<AppState>) -> Json<Value> {
    state.requests().clear();
    Json(json!({"requests": []}))
}

/// `GET /admin/callbacks`.
pub(crate) async fn callbacks(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"callbacks": state.callbacks().clone()}))
}

/// `DELETE /admin/callbacks`.
pub(crate) async fn clear_callbacks(State(state): State<AppState>) -> Json<Value> {
    state.callbacks().clear();
    Json(json!({"callbacks": []}))
}

/// `GET /admin/stats`: token counters.
pub(crate) async fn stats(State(state): State<AppState>) -> Json<Value> {
    use std::sync::atomic::Ordering;
    Json(json!({
        "token_requests": state.0.token_requests.load(Ordering::Relaxed),
        "tokens_issued": state.0.tokens_issued.load(Ordering::Relaxed),
        "active_tokens": state.tokens().len(),
    }))
}

/// `GET /admin/healthcheck` (and `/healthcheck`): no auth, for readiness probes.
pub(crate) async fn healthcheck() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotifyRequest {
    registry: String,
    #[serde(default)]
    subscription_code: Option<String>,
}

/// `POST /admin/notify {"registry": "crvs", "subscription_code"?: "…"}`: sends `notify`
/// callbacks to active subscriptions now.
pub(crate) async fn notify(State(state): State<AppState>, body: Bytes) -> Response {
    let req: NotifyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad_input(format!(
                "invalid notify request: {e}; send {{\"registry\": \"crvs\", \"subscription_code\": \"…\" (optional)}}"
            ));
        }
    };
    let registry = match req.registry.parse::<dci_protocol::RegistryType>() {
        Ok(r) => r,
        Err(e) => return bad_input(format!("registry: {e}")),
    };
    let sent = crate::callback::notify(&state, registry, req.subscription_code.as_deref()).await;
    Json(json!({"sent": sent})).into_response()
}
