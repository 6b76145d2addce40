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

/// Most identifiers one `GET /admin/examples?ids=K` lists per registry.
const MAX_LISTED_IDS: usize = 100_000;

#[derive(Debug, Deserialize)]
pub(crate) struct ExamplesQuery {
    /// List the main identifier of this many records per registry.
    #[serde(default)]
    ids: usize,
    /// From this record on.
    #[serde(default)]
    offset: usize,
    /// Identifiers of this type instead of each record's main one (e.g. `BRN`).
    #[serde(default)]
    id_type: Option<String>,
    /// Only this registry.
    #[serde(default)]
    registry: Option<String>,
}

/// `GET /admin/examples[?ids=K&offset=M&id_type=T&registry=R]`.
pub(crate) async fn examples(
    State(state): State<AppState>,
    q: Result<Query<ExamplesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => {
            return bad_input(format!(
                "{}; parameters: ids (a count), offset, id_type, registry",
                e.body_text()
            ));
        }
    };
    if q.ids > MAX_LISTED_IDS {
        return bad_input(format!(
            "ids must be at most {MAX_LISTED_IDS} per request, got {}: page with offset",
            q.ids
        ));
    }
    let only = match q
        .registry
        .as_deref()
        .map(str::parse::<dci_protocol::RegistryType>)
    {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => return bad_input(format!("registry: {e}")),
    };
    let data = state.data();
    let map: BTreeMap<String, _> = crate::data::examples(&data)
        .into_iter()
        .filter(|(k, _)| only.is_none_or(|r| r == *k))
        .map(|(k, mut v)| {
            if q.ids > 0 {
                v.ids = data.identifiers(k, q.id_type.as_deref(), q.offset, q.ids);
            }
            (k.as_str().to_owned(), v)
        })
        .collect();
    Json(json!(map)).into_response()
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
                 http_503_ratio, http_429_ratio, retry_after_s, reset_ratio, drop_reply_ratio, \
                 down, revoke_tokens, callback {{delay_ms, duplicate, fail}}"
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
pub(crate) struct LogQuery {
    #[serde(default)]
    bodies: bool,
    /// Only the newest this many entries.
    #[serde(default)]
    last: Option<usize>,
}

/// `GET /admin/requests[?bodies=true][&last=N]`.
pub(crate) async fn requests(
    State(state): State<AppState>,
    Query(q): Query<LogQuery>,
) -> Json<Value> {
    Json(json!({"requests": state.requests(q.bodies, q.last)}))
}

/// `DELETE /admin/requests`.
pub(crate) async fn clear_requests(State(state): State<AppState>) -> Json<Value> {
    state.clear_requests();
    Json(json!({"requests": []}))
}

/// `GET /admin/callbacks[?last=N]`.
pub(crate) async fn callbacks(
    State(state): State<AppState>,
    Query(q): Query<LogQuery>,
) -> Json<Value> {
    Json(json!({"callbacks": state.callbacks(q.last)}))
}

/// `DELETE /admin/callbacks`.
pub(crate) async fn clear_callbacks(State(state): State<AppState>) -> Json<Value> {
    state.clear_callbacks();
    Json(json!({"callbacks": []}))
}

/// `GET /admin/stats`: token counters, log sizes and callback outcomes.
pub(crate) async fn stats(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.stats()))
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
