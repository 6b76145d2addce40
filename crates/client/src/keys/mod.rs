//! Keys on both sides of a signature.
//!
//! - [`KeyManager`]: our signing keys — generate (Ed25519 or RS256), list, activate, revoke,
//!   publish as a JWKS, and the [`Signer`] a data source signs with. Private keys live only in
//!   the [`OpsStore`], sealed at rest; a revoked, inactive or expired key never signs.
//! - [`RegistryKeys`]: the registries' public keys, from a data source's configured PEM keys or
//!   its JWKS URL (cached; fetched again when a signature names a key id the cache lacks), and
//!   verification of callbacks and sync replies under the source's [`SignaturePolicy`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dci_protocol::codes::ErrorCode;
use dci_protocol::signature::{
    self, Algorithm, SignatureError, Signer, SigningKey, VerifyOptions, VerifyingKey,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::ops::OpsError;
use crate::ops::store::{KeyStatus, OpsStore, SignatureState, SigningKeyRecord};
use crate::source::{DataSource, SignaturePolicy};

/// Options of [`KeyManager::generate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Activate at once (default `true`); otherwise the key waits for [`KeyManager::activate`].
    pub activate: bool,
    /// After this the key never signs.
    pub expires_at: Option<OffsetDateTime>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            activate: true,
            expires_at: None,
        }
    }
}

mod signers;

pub use signers::{DEFAULT_SIGNER_TTL, SignerCache};

/// Our signing keys, over an [`OpsStore`]. Cheap to clone.
#[derive(Clone)]
pub struct KeyManager {
    store: Arc<dyn OpsStore>,
    signers: Option<SignerCache>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager").finish_non_exhaustive()
    }
}

/// Checks a key id: it goes into `kidId="{sender}|{key_id}|{alg}"` and JWKS `kid`.
pub fn check_key_id(key_id: &str) -> Result<(), OpsError> {
    let ok = !key_id.is_empty()
        && key_id.len() <= 64
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(OpsError::invalid(
            "key_id",
            format!(
                "{key_id:?} is not a valid key id: use 1-64 letters, digits, '-', '_' or '.', e.g. spmis-2026-11"
            ),
        ))
    }
}

impl KeyManager {
    /// Keys stored in `store`.
    pub fn new(store: Arc<dyn OpsStore>) -> KeyManager {
        KeyManager {
            store,
            signers: None,
        }
    }

    /// Keeps `cache` in step: a key activated or revoked here is dropped from it at once.
    #[must_use]
    pub fn with_signer_cache(mut self, cache: SignerCache) -> KeyManager {
        self.signers = Some(cache);
        self
    }

    fn changed(&self, key_id: &str) {
        if let Some(c) = &self.signers {
            c.invalidate(Some(key_id));
        }
    }

    /// Generates a key pair and stores it (private key sealed). Fails if the id is taken.
    pub async fn generate(
        &self,
        key_id: &str,
        algorithm: Algorithm,
        opts: GenerateOptions,
    ) -> Result<SigningKeyRecord, OpsError> {
        check_key_id(key_id)?;
        let now = OffsetDateTime::now_utc();
        if let Some(e) = opts.expires_at
            && e <= now
        {
            return Err(OpsError::invalid(
                "expires_at",
                "is in the past: give a future expiry",
            ));
        }
        let key = SigningKey::generate(algorithm).map_err(OpsError::Signing)?;
        let pem = key.to_pkcs8_pem().map_err(OpsError::Signing)?;
        let rec = SigningKeyRecord {
            key_id: key_id.to_owned(),
            algorithm,
            status: if opts.activate {
                KeyStatus::Active
            } else {
                KeyStatus::Inactive
            },
            public_key_pem: key.verifying_key().to_spki_pem(),
            created_at: now,
            activated_at: opts.activate.then_some(now),
            revoked_at: None,
            expires_at: opts.expires_at,
        };
        if !self.store.insert_signing_key(&rec, &pem).await? {
            return Err(OpsError::invalid(
                "key_id",
                format!("a signing key {key_id:?} exists already: choose another id"),
            ));
        }
        Ok(rec)
    }

    /// Every key, oldest first.
    pub async fn list(&self) -> Result<Vec<SigningKeyRecord>, OpsError> {
        Ok(self.store.list_signing_keys().await?)
    }

    /// The keys a data source may name as its signing key: every key not revoked, oldest
    /// first (an inactive one signs once activated).
    pub async fn choosable(&self) -> Result<Vec<SigningKeyRecord>, OpsError> {
        let mut keys = self.list().await?;
        keys.retain(|k| k.status != KeyStatus::Revoked);
        Ok(keys)
    }

    /// Checks that a data source may name `key_id` as its signing key: it exists and is not
    /// revoked. The error names the field `signing_key_id` and the keys that may be chosen.
    pub async fn check_choosable(&self, key_id: &str) -> Result<(), OpsError> {
        let keys = self.choosable().await?;
        if keys.iter().any(|k| k.key_id == key_id) {
            return Ok(());
        }
        let fix = if keys.is_empty() {
            "there are no usable signing keys: generate one first, or leave it empty (requests are not signed)".to_owned()
        } else {
            let ids: Vec<&str> = keys.iter().map(|k| k.key_id.as_str()).collect();
            format!("choose one of {}, or leave it empty", ids.join(", "))
        };
        let what = match self.store.get_signing_key(key_id).await? {
            Some(_) => "is revoked",
            None => "is not one of our signing keys",
        };
        Err(OpsError::invalid(
            "signing_key_id",
            format!("{key_id:?} {what}: {fix}"),
        ))
    }

    /// Checks the signing key a data source names (if it names one) with
    /// [`KeyManager::check_choosable`]: every front end runs this before storing a source.
    pub async fn check_source_key(&self, source: &crate::DataSource) -> Result<(), OpsError> {
        match source.signing_key_id.as_deref() {
            Some(id) => self.check_choosable(id).await,
            None => Ok(()),
        }
    }

    /// One key.
    pub async fn get(&self, key_id: &str) -> Result<SigningKeyRecord, OpsError> {
        self.store
            .get_signing_key(key_id)
            .await?
            .ok_or_else(|| not_found(key_id))
    }

    /// Activates a key (several may be active during a rotation). A revoked key stays revoked.
    pub async fn activate(&self, key_id: &str) -> Result<SigningKeyRecord, OpsError> {
        let k = self.get(key_id).await?;
        if k.status == KeyStatus::Revoked {
            return Err(OpsError::invalid(
                "key_id",
                format!(
                    "signing key {key_id:?} is revoked and can never sign again: generate a new key"
                ),
            ));
        }
        self.store
            .set_signing_key_status(key_id, KeyStatus::Active, OffsetDateTime::now_utc())
            .await?;
        self.changed(key_id);
        self.get(key_id).await
    }

    /// Revokes a key: it never signs again and leaves the JWKS.
    pub async fn revoke(&self, key_id: &str) -> Result<SigningKeyRecord, OpsError> {
        self.get(key_id).await?;
        self.store
            .set_signing_key_status(key_id, KeyStatus::Revoked, OffsetDateTime::now_utc())
            .await?;
        self.changed(key_id);
        self.get(key_id).await
    }

    /// `{"keys": [...]}` with the public JWK of every key that can sign at `now`.
    pub async fn jwks(&self, now: OffsetDateTime) -> Result<Value, OpsError> {
        let mut keys = Vec::new();
        for k in self.list().await? {
            if !k.can_sign(now) {
                continue;
            }
            let vk = VerifyingKey::from_spki_pem(&k.public_key_pem).map_err(OpsError::Signing)?;
            keys.push(vk.to_jwk(&k.key_id));
        }
        Ok(json!({ "keys": keys }))
    }

    /// The signer for `key_id` as `sender_id`, if the key may sign at `now` (from the cache
    /// when one is attached).
    pub async fn signer(
        &self,
        key_id: &str,
        sender_id: &str,
        now: OffsetDateTime,
    ) -> Result<Signer, OpsError> {
        let uncached;
        let cache = match &self.signers {
            Some(c) => c,
            None => {
                uncached = SignerCache::new(Duration::ZERO);
                &uncached
            }
        };
        cache
            .signer(self.store.as_ref(), key_id, sender_id, now)
            .await
    }
}

fn not_found(key_id: &str) -> OpsError {
    OpsError::NotFound(format!(
        "no signing key {key_id:?}: list the signing keys to see their ids"
    ))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFailure {
    /// Required but absent.
    #[error("the message is not signed, but the data source requires signatures")]
    Missing,
    /// Present but wrong (forged, altered, malformed, wrong key).
    #[error("invalid signature: {0}")]
    Invalid(String),
    /// Outside its validity window.
    #[error("expired signature: {0}")]
    Expired(String),
    /// Names a key that neither the configured keys nor the (re-fetched) JWKS have.
    #[error(
        "unknown signing key id {0:?}: it is not among the registry's configured keys or its JWKS"
    )]
    UnknownKey(String),
    /// The data source has no registry keys to verify with.
    #[error(
        "no registry public keys configured: set registry_public_keys or registry_jwks_url on the data source, or set the signature policy to off"
    )]
    NoKeys,
    /// The JWKS could not be fetched or read.
    #[error("the registry's JWKS is unavailable: {0}")]
    JwksUnavailable(String),
}

impl SignatureFailure {
    /// The DCI error code to answer with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            SignatureFailure::Missing => ErrorCode::SignatureMissing,
            _ => ErrorCode::SignatureInvalid,
        }
    }
}

/// A verified (or unchecked) signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureOutcome {
    /// How it was checked.
    pub state: SignatureState,
    /// The key id that verified it.
    pub key_id: Option<String>,
}

struct CachedJwks {
    keys: Vec<(Option<String>, VerifyingKey)>,
    fetched_at: Instant,
}

/// The registries' public keys with a JWKS cache. Share one (it is cheap to clone) between all
/// data sources of a process so the cache is shared.
#[derive(Clone)]
pub struct RegistryKeys {
    inner: Arc<RegistryKeysInner>,
}

struct RegistryKeysInner {
    /// Built on first use (a client build reads the system's CA certificates); callers that
    /// hold a data source's own client pass it to [`RegistryKeys::check_using`] instead.
    http: std::sync::OnceLock<reqwest::Client>,
    cache: Mutex<HashMap<String, Arc<CachedJwks>>>,
    ttl: Duration,
    min_refetch: Duration,
    verify: VerifyOptions,
}

impl std::fmt::Debug for RegistryKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryKeys")
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for RegistryKeys {
    fn default() -> Self {
        RegistryKeys::new()
    }
}

impl RegistryKeys {
    /// A cache keeping a JWKS for 10 minutes, re-fetched at most every 5 seconds on an unknown
    /// key id (so forged key ids cannot make us hammer the registry).
    pub fn new() -> RegistryKeys {
        RegistryKeys::with_settings(Duration::from_secs(600), Duration::from_secs(5))
    }

    /// A cache with these lifetimes.
    pub fn with_settings(ttl: Duration, min_refetch: Duration) -> RegistryKeys {
        RegistryKeys {
            inner: Arc::new(RegistryKeysInner {
                http: std::sync::OnceLock::new(),
                cache: Mutex::new(HashMap::new()),
                ttl,
                min_refetch,
                verify: VerifyOptions::default(),
            }),
        }
    }

    fn default_http(&self) -> &reqwest::Client {
        self.inner.http.get_or_init(|| {
            let b = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .no_proxy();
            crate::transport::with_system_roots(b)
                .build()
                .expect("a plain reqwest client builds")
        })
    }

    /// Checks `envelope`'s signature under `source`'s policy at `now`, fetching a JWKS with a
    /// plain HTTP client.
    pub async fn check(
        &self,
        source: &DataSource,
        envelope: &Value,
        now: OffsetDateTime,
    ) -> Result<SignatureOutcome, SignatureFailure> {
        self.check_using(None, source, envelope, now).await
    }

    /// [`RegistryKeys::check`], fetching a JWKS through `http` (the data source's own client,
    /// with its TLS settings and connection pool) when given.
    pub async fn check_using(
        &self,
        http: Option<&reqwest::Client>,
        source: &DataSource,
        envelope: &Value,
        now: OffsetDateTime,
    ) -> Result<SignatureOutcome, SignatureFailure> {
        let policy = source.reply_signature_policy;
        if policy == SignaturePolicy::Off {
            return Ok(SignatureOutcome {
                state: SignatureState::NotChecked,
                key_id: None,
            });
        }
        let sig = match envelope.get("signature") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.as_str(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return match policy {
                    SignaturePolicy::Require => Err(SignatureFailure::Missing),
                    _ => Ok(SignatureOutcome {
                        state: SignatureState::Unsigned,
                        key_id: None,
                    }),
                };
            }
            Some(_) => {
                return Err(SignatureFailure::Invalid(
                    "`signature` must be a string".into(),
                ));
            }
        };
        let parsed = signature::parse(sig).map_err(|e| SignatureFailure::Invalid(e.to_string()))?;
        let header = envelope.get("header").unwrap_or(&Value::Null);
        let message = envelope.get("message").unwrap_or(&Value::Null);
        let mut candidates: Vec<(Option<String>, VerifyingKey)> = Vec::new();
        for (i, pem) in source.registry_public_keys.iter().enumerate() {
            match VerifyingKey::from_spki_pem(pem) {
                Ok(k) => candidates.push((None, k)),
                Err(e) => tracing::warn!(source = %source.code, index = i, error = %e,
                    "a configured registry public key does not parse; skipped"),
            }
        }
        if candidates.is_empty() && source.registry_jwks_url.is_none() {
            return Err(SignatureFailure::NoKeys);
        }
        let try_keys =
            |keys: &[(Option<String>, VerifyingKey)]| -> Option<Result<String, SignatureError>> {
                let mut last = None;
                for (kid, key) in keys {
                    if kid.as_deref().is_some_and(|k| k != parsed.key_id) {
                        continue;
                    }
                    if key.algorithm() != parsed.algorithm {
                        continue;
                    }
                    match signature::verify(sig, header, message, key, &self.inner.verify, now) {
                        Ok(p) => return Some(Ok(kid.clone().unwrap_or(p.key_id))),
                        Err(e) => last = Some(Err(e)),
                    }
                }
                last
            };
        let mut outcome = try_keys(&candidates);
        if !matches!(outcome, Some(Ok(_)))
            && let Some(url) = &source.registry_jwks_url
        {
            let mut jwks = self.jwks(http, url, false).await?;
            if !jwks
                .keys
                .iter()
                .any(|(k, _)| k.as_deref().is_none_or(|k| k == parsed.key_id))
            {
                jwks = self.jwks(http, url, true).await?;
            }
            if let Some(r) = try_keys(&jwks.keys) {
                outcome = Some(r);
            }
        }
        match outcome {
            Some(Ok(key_id)) => Ok(SignatureOutcome {
                state: SignatureState::Verified,
                key_id: Some(key_id),
            }),
            Some(Err(
                e @ (SignatureError::Expired { .. } | SignatureError::NotYetValid { .. }),
            )) => Err(SignatureFailure::Expired(e.to_string())),
            Some(Err(e)) => Err(SignatureFailure::Invalid(e.to_string())),
            None => Err(SignatureFailure::UnknownKey(parsed.key_id)),
        }
    }

    /// The keys of the JWKS at `url`: cached for the TTL, fetched again on `refresh` (at most
    /// once per `min_refetch`).
    pub(crate) async fn jwks_keys(
        &self,
        http: Option<&reqwest::Client>,
        url: &str,
        refresh: bool,
    ) -> Result<Vec<(Option<String>, VerifyingKey)>, SignatureFailure> {
        Ok(self.jwks(http, url, refresh).await?.keys.clone())
    }

    async fn jwks(
        &self,
        http: Option<&reqwest::Client>,
        url: &str,
        refresh: bool,
    ) -> Result<Arc<CachedJwks>, SignatureFailure> {
        let cached = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned();
        if let Some(c) = &cached {
            let age = c.fetched_at.elapsed();
            let fresh = age < self.inner.ttl;
            if (fresh && !refresh) || (refresh && age < self.inner.min_refetch) {
                return Ok(Arc::clone(c));
            }
        }
        let fetched = match self.fetch(http, url).await {
            Ok(k) => Arc::new(CachedJwks {
                keys: k,
                fetched_at: Instant::now(),
            }),
            // A registry briefly down should not fail verification with keys we already hold.
            Err(e) => return cached.ok_or(e),
        };
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(url.to_owned(), Arc::clone(&fetched));
        Ok(fetched)
    }

    async fn fetch(
        &self,
        http: Option<&reqwest::Client>,
        url: &str,
    ) -> Result<Vec<(Option<String>, VerifyingKey)>, SignatureFailure> {
        let unavailable = |e: String| SignatureFailure::JwksUnavailable(e);
        let http = http.unwrap_or_else(|| self.default_http());
        let resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("HTTP {}", resp.status().as_u16())));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| unavailable(format!("not JSON: {}", e.without_url())))?;
        let Some(keys) = v.get("keys").and_then(Value::as_array) else {
            return Err(unavailable("no `keys` array".into()));
        };
        let mut out = Vec::new();
        for k in keys {
            if let Ok(vk) = VerifyingKey::from_jwk(k) {
                out.push((k.get("kid").and_then(Value::as_str).map(str::to_owned), vk));
            }
        }
        Ok(out)
    }
}

/// Tells whether `a` is a supported algorithm name (`ed25519` or `rs256`).
pub fn parse_algorithm(a: &str) -> Result<Algorithm, OpsError> {
    a.parse().map_err(|_| {
        OpsError::invalid(
            "alg",
            format!("{a:?} is not supported: use ed25519 or rs256"),
        )
    })
}
