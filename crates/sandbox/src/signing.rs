//! The sandbox's own signing key, its JWKS, and verification of client signatures.
//!
//! Callbacks and sync replies are signed with the DCI signature profile of `dci-protocol`
//! (`kidId="{registry_id}|{kid}|ed25519"`), where `kid` is the RFC 7638 thumbprint of the public
//! key as published at `/.well-known/jwks.json`, so a client can find the key by `kid`.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dci_protocol::signature::{Algorithm, Signer, SigningKey, VerifyOptions, VerifyingKey, verify};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::config::{SandboxConfig, SignaturePolicy};
use crate::envelope::{Incoming, Reject};
use crate::state::AppState;
use crate::token::Caller;

/// The sandbox's signing identity.
pub(crate) struct SandboxSigner {
    signer: Signer,
    verifying_key: VerifyingKey,
    kid: String,
}

/// RFC 7638 thumbprint of a public JWK: SHA-256 over the required members in lexicographic
/// order, base64url without padding.
pub(crate) fn thumbprint(jwk: &Value) -> String {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str).unwrap_or_default();
    let canonical = match s("kty") {
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv"), s("x")),
        _ => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n")),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

impl SandboxSigner {
    pub(crate) fn new(config: &SandboxConfig) -> Result<Self, String> {
        let key = match &config.signing_key {
            Some(k) => k.clone(),
            None => SigningKey::generate(Algorithm::Ed25519)
                .map_err(|e| format!("generating the sandbox signing key: {e}"))?,
        };
        let verifying_key = key.verifying_key();
        let kid = thumbprint(&verifying_key.to_jwk(""));
        let signer = Signer::new(key, config.registry_id.clone(), kid.clone());
        Ok(SandboxSigner {
            signer,
            verifying_key,
            kid,
        })
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key, for reply formats other than the DCI profile (OpenCRVS's JWS).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        self.signer.key()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    pub(crate) fn jwks(&self) -> Value {
        json!({"keys": [self.verifying_key.to_jwk(&self.kid)]})
    }
}

/// Signs `{header, message}` with the sandbox key (`None` only if signing itself fails).
pub(crate) fn sign(state: &AppState, header: &Value, message: &Value) -> Option<String> {
    match state
        .0
        .signer
        .signer
        .sign(header, message, OffsetDateTime::now_utc())
    {
        Ok(sig) => Some(sig),
        Err(e) => {
            tracing::error!(error = %e, "signing a sandbox reply failed; sending it unsigned");
            None
        }
    }
}

fn sig_reject(code: &'static str, reason: String) -> Reject {
    Reject::Invalid {
        code,
        rjct: None,
        reason,
    }
}

/// Verifies the request signature according to the configured [`SignaturePolicy`], with the
/// public key of the client the bearer token was issued to.
pub(crate) fn check_request(
    state: &AppState,
    caller: &Caller,
    req: &Incoming,
) -> Result<(), Reject> {
    let policy = state.cfg().signature_policy;
    if policy == SignaturePolicy::Off {
        return Ok(());
    }
    let key = state
        .cfg()
        .clients
        .iter()
        .find(|c| c.id == caller.client_id)
        .and_then(|c| c.public_key.as_ref());
    let Some(key) = key else {
        return match policy {
            SignaturePolicy::Require => Err(sig_reject(
                "err.signature.invalid",
                format!(
                    "signatures are required but the sandbox has no public key for client {:?}: \
                     configure it (ClientConfig::public_key or --client-public-key)",
                    caller.client_id
                ),
            )),
            _ => Ok(()),
        };
    };
    let Some(sig) = req.signature.as_deref() else {
        return match policy {
            SignaturePolicy::Require => Err(sig_reject(
                "err.signature.missing",
                "the envelope has no signature: sign {header, message} with your key".into(),
            )),
            _ => Ok(()),
        };
    };
    let message = &req.message;
    verify(
        sig,
        &req.header,
        message,
        key,
        &VerifyOptions::default(),
        OffsetDateTime::now_utc(),
    )
    .map(|_| ())
    .map_err(|e| sig_reject("err.signature.invalid", format!("signature rejected: {e}")))
}

/// `GET /.well-known/jwks.json`: the sandbox's public signing key.
pub(crate) async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.0.signer.jwks())
}
