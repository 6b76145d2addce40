//! The sandbox's own signing key, its JWKS, and verification of client signatures.

use serde_json::Value;

use crate::state::AppState;

/// The sandbox's signing identity (filled in once the protocol crate's signer lands).
pub(crate) struct SandboxSigner;

impl SandboxSigner {
    pub(crate) fn new(config: &crate::config::SandboxConfig) -> Result<Option<Self>, String> {
        let _ = config;
        Ok(None)
    }
}

/// Signs `{header, message}` with the sandbox key, if it has one.
pub(crate) fn sign(state: &AppState, header: &Value, message: &Value) -> Option<String> {
    let _ = (header, message);
    state
        .0
        .signer
        .as_ref()
        .map(|_| String::new())
        .filter(|s| !s.is_empty())
}

/// Verifies the request signature according to the policy (no-op until signing lands).
pub(crate) fn check_request(
    state: &AppState,
    caller: &crate::token::Caller,
    req: &crate::envelope::Incoming,
) -> Result<(), crate::envelope::Reject> {
    let _ = (state, caller, req.signature.as_deref());
    Ok(())
}

/// `GET /.well-known/jwks.json`.
pub(crate) async fn jwks(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<Value> {
    let _ = state;
    axum::Json(serde_json::json!({"keys": []}))
}
