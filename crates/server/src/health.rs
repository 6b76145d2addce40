//! `/healthz` (alive), `/readyz` (store reachable, schema current) and
//! `/.well-known/jwks.json`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dci_client::keys::KeyManager;
use serde_json::json;
use time::OffsetDateTime;

use crate::error::ApiError;

use crate::state::AppState;

/// `GET /healthz` (liveness): 200 `{"status":"ok"}` while the process serves requests, 503
/// `shutting_down` once it drains. It asks nothing of the store: a database outage makes the
/// server unready ([`readyz`]), not dead, so an orchestrator does not restart it for that.
pub(crate) async fn healthz(State(st): State<AppState>) -> impl IntoResponse {
    if st.shutdown.is_triggered() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        );
    }
    (StatusCode::OK, Json(json!({ "status": "ok" })))
}

/// Longest `/readyz` waits for the store: a probe must answer, not hang on a dead database.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /readyz` (readiness): 200 `{"status":"ready"}` when the store answers and its schema
/// is exactly this build's migrations; 503 otherwise, saying which (`store: unavailable`, or
/// the missing / unknown migration versions with the fix), and while shutting down, so a load
/// balancer sends work only to an instance that can do it.
pub(crate) async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    if st.shutdown.is_triggered() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        );
    }
    let status = tokio::time::timeout(READY_TIMEOUT, st.ops.schema_status()).await;
    match status {
        Ok(Ok(schema)) if schema.is_current() => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "store": "ok",
                "schema": { "version": schema.expected },
            })),
        ),
        Ok(Ok(schema)) => {
            let fix = if schema.unknown.is_empty() {
                "the database lacks migrations this build needs: restart dci serve (it applies them on start)"
            } else {
                "the database was migrated by a newer build: run that build, or restore a database of this one"
            };
            tracing::warn!(missing = ?schema.missing, unknown = ?schema.unknown,
                "readyz: the database schema is not this build's");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "not_ready",
                    "store": "ok",
                    "schema": {
                        "version": schema.expected,
                        "missing": schema.missing,
                        "unknown": schema.unknown,
                    },
                    "fix": fix,
                })),
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "readyz: store failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "store": "unavailable" })),
            )
        }
        Err(_) => {
            tracing::error!(
                timeout_secs = READY_TIMEOUT.as_secs(),
                "readyz: the store did not answer in time"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "not_ready", "store": "unavailable" })),
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
