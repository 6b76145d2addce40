//! `/healthz` and `/.well-known/jwks.json`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dci_client::SourceFilter;
use dci_client::keys::KeyManager;
use serde_json::json;
use time::OffsetDateTime;

use crate::error::ApiError;

use crate::state::AppState;

/// `GET /healthz`: 200 `{"status":"ok"}` when the store answers, 503 otherwise (and while
/// shutting down, so a load balancer stops sending work).
pub(crate) async fn healthz(State(st): State<AppState>) -> impl IntoResponse {
    if st.shutdown.is_triggered() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        );
    }
    let filter = SourceFilter {
        active: Some(true),
        ..SourceFilter::default()
    };
    match st.store.list_data_sources(&filter).await {
        Ok(_) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "store": "ok" })),
        ),
        Err(e) => {
            tracing::error!(error = %e, "healthz: store failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "error", "store": "unavailable" })),
            )
        }
    }
}

/// `GET /.well-known/jwks.json`: our active public signing keys.
pub(crate) async fn jwks(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let jwks = KeyManager::new(st.ops.clone())
        .jwks(OffsetDateTime::now_utc())
        .await?;
    Ok((
        // Short: a rotated or revoked key must disappear soon from registries' caches.
        [(axum::http::header::CACHE_CONTROL, "public, max-age=60")],
        Json(jwks),
    ))
}
