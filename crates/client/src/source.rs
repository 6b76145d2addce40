//! The data-source record: one registry connection as a sysadmin configures it.
//!
//! These are the types every layer shares (store, client, server, CLI). What users submit and
//! see is the [`SourceDocument`] (`document`), validated into a [`DataSource`] by one set of rules
//! (`validate`); the enums' configuration names are parsed in one place (`names`). Secrets are
//! `secrecy` types so that `Debug` and logs never show them.

use std::path::PathBuf;

use dci_protocol::RegistryType;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

mod document;
mod input;
pub mod names;
mod validate;

pub use document::{
    AuthDocument, CallbacksDocument, EndpointsDocument, LimitsDocument, MASKED, RecoveryDocument,
    RetryDocument, SourceDocument, TlsDocument,
};
pub use input::DataSourceInput;
pub use names::UnknownName;
pub use validate::{FieldError, ValidationErrors, pointer_of};

/// How the client authenticates to a registry.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// No credentials (public or network-protected registries).
    None,
    /// A static bearer token.
    Bearer {
        /// The token, sent as `Authorization: Bearer …`.
        token: SecretString,
    },
    /// HTTP Basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SecretString,
    },
    /// OAuth2 client credentials (RFC 6749 §4.4).
    OAuth2(OAuth2Config),
}

impl AuthConfig {
    /// The short name used in configuration and output: `none`, `bearer`, `basic`, `oauth2`.
    pub fn kind(&self) -> AuthKind {
        match self {
            AuthConfig::None => AuthKind::None,
            AuthConfig::Bearer { .. } => AuthKind::Bearer,
            AuthConfig::Basic { .. } => AuthKind::Basic,
            AuthConfig::OAuth2(_) => AuthKind::OAuth2,
        }
    }
}

/// The kind of authentication, without its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// No credentials.
    None,
    /// Static bearer token.
    Bearer,
    /// HTTP Basic.
    Basic,
    /// OAuth2 client credentials.
    #[serde(rename = "oauth2")]
    OAuth2,
}

impl AuthKind {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::Bearer => "bearer",
            AuthKind::Basic => "basic",
            AuthKind::OAuth2 => "oauth2",
        }
    }
}

/// OAuth2 client-credentials settings.
#[derive(Debug, Clone)]
pub struct OAuth2Config {
    /// The token endpoint, e.g. `https://registry.example.org/oauth2/client/token`.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
    /// Optional space-separated scope.
    pub scope: Option<String>,
    /// Where the credentials go in the token request.
    pub credential_location: CredentialLocation,
}

/// Where OAuth2 client credentials are placed in the token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialLocation {
    /// `application/x-www-form-urlencoded` body (the DCI spec's default).
    #[default]
    Body,
    /// HTTP Basic header (RFC 6749 §2.3.1).
    Basic,
    /// Query string (OpenCRVS).
    Query,
    /// JSON body.
    Json,
}

impl CredentialLocation {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialLocation::Body => "body",
            CredentialLocation::Basic => "basic",
            CredentialLocation::Query => "query",
            CredentialLocation::Json => "json",
        }
    }
}

/// Endpoint paths, relative to the base URL. Defaults are the spec's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Synchronous search.
    pub sync_search: String,
    /// Asynchronous search.
    pub search: String,
    /// Subscribe.
    pub subscribe: String,
    /// Unsubscribe.
    pub unsubscribe: String,
    /// Asynchronous transaction status.
    pub txn_status: String,
    /// Synchronous transaction status.
    pub sync_txn_status: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            sync_search: "/registry/sync/search".into(),
            search: "/registry/search".into(),
            subscribe: "/registry/subscribe".into(),
            unsubscribe: "/registry/unsubscribe".into(),
            txn_status: "/registry/txn/status".into(),
            sync_txn_status: "/registry/sync/txn/status".into(),
        }
    }
}

/// TLS settings for the connection to the registry (and its token endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSettings {
    /// Verify the server certificate (default on).
    pub verify: bool,
    /// Extra CA bundle (PEM file) to trust.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    pub client_key_file: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            verify: true,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

/// How strictly signatures on the registry's replies and callbacks are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignaturePolicy {
    /// Do not check.
    #[default]
    Off,
    /// Check a signature when one is present; accept unsigned messages.
    IfPresent,
    /// Reject unsigned or invalid messages.
    Require,
}

impl SignaturePolicy {
    /// The configuration name: `off`, `if-present`, `require`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignaturePolicy::Off => "off",
            SignaturePolicy::IfPresent => "if-present",
            SignaturePolicy::Require => "require",
        }
    }
}

/// How callbacks for a data source are authenticated (see `dci_client::ops::ingest`).
///
/// A callback is accepted when it carries a valid signature from the registry's key (under
/// `reply_signature_policy` `if-present` or `require`), or presents this source's callback
/// secret — as the path segment after the source's callback URI (the `sender_uri` we send
/// is `{callback_uri}/{secret}/registry/on-search`) or as `Authorization: Bearer {secret}` —
/// or when the source opts out with `accept_unauthenticated`.
#[derive(Clone, Default)]
pub struct CallbackSettings {
    /// The per-source callback secret: generated when the source is created, kept on edits,
    /// replaced by [`CallbackSettings::generate_secret`]. `None` for sources stored before
    /// callback secrets existed.
    pub secret: Option<SecretString>,
    /// Accept callbacks that are neither signed nor carry the secret (unsafe: anyone who can
    /// reach the receiver can then forge results).
    pub accept_unauthenticated: bool,
    /// Answer DCI-level refusals (bad signature, unknown transaction, wrong sender, malformed
    /// message) with their HTTP 4xx status, for registries that want that. By default they are
    /// answered the DCI way: HTTP 200 with an ACK `ERR` and the spec's error code.
    pub http_refusals: bool,
}

impl std::fmt::Debug for CallbackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSettings")
            .field("secret", &self.secret.as_ref().map(|_| MASKED))
            .field("accept_unauthenticated", &self.accept_unauthenticated)
            .field("http_refusals", &self.http_refusals)
            .finish()
    }
}

impl CallbackSettings {
    /// A fresh, unguessable callback secret: 32 random bytes, base64url without padding (43
    /// characters, safe in a URL path).
    pub fn generate_secret() -> SecretString {
        use base64::Engine as _;
        use rand::RngCore as _;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Whether `presented` is this source's secret (compared in constant time).
    pub fn secret_matches(&self, presented: &str) -> bool {
        use secrecy::ExposeSecret as _;
        let Some(secret) = &self.secret else {
            return false;
        };
        let (a, b) = (secret.expose_secret().as_bytes(), presented.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// How the recovery loop ([`crate::Engine::recover_transactions`]) follows up this source's
/// async requests whose result has not come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct RecoverySettings {
    /// Expected callback time: how long after sending a result normally arrives; after it the
    /// registry is asked with a sync txn-status (where it has one). Seconds, > 0.
    pub callback_within_secs: u32,
    /// How often a request still waiting is asked about again. Seconds, > 0.
    pub poll_interval_secs: u32,
    /// Give-up rule: a request still without a result this long after it was sent is marked
    /// `expired`, with the reason. Seconds, at least `callback_within_secs`.
    pub give_up_after_secs: u32,
}

impl RecoverySettings {
    /// Default expected callback time.
    pub const DEFAULT_CALLBACK_WITHIN_SECS: u32 = 30;
    /// Default poll interval.
    pub const DEFAULT_POLL_INTERVAL_SECS: u32 = 30;
    /// Default give-up time (one hour).
    pub const DEFAULT_GIVE_UP_AFTER_SECS: u32 = 3600;
    /// Largest value of any of the three (30 days).
    pub const MAX_SECS: u32 = 30 * 24 * 3600;

    /// The expected callback time.
    pub fn callback_within(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.callback_within_secs.into())
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.poll_interval_secs.into())
    }

    /// The give-up time.
    pub fn give_up_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.give_up_after_secs.into())
    }
}

impl Default for RecoverySettings {
    fn default() -> Self {
        RecoverySettings {
            callback_within_secs: Self::DEFAULT_CALLBACK_WITHIN_SECS,
            poll_interval_secs: Self::DEFAULT_POLL_INTERVAL_SECS,
            give_up_after_secs: Self::DEFAULT_GIVE_UP_AFTER_SECS,
        }
    }
}

/// This source's retry policy for idempotent calls; a field left `None` takes the engine's
/// ([`crate::transport::RetryPolicy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RetrySettings {
    /// Retries after the first attempt (0: none). At most 10.
    pub max_retries: Option<u32>,
    /// Size of the source's retry quota (token bucket; 0: no quota). At most 100 000.
    pub quota: Option<u32>,
}

impl RetrySettings {
    /// Largest `max_retries`.
    pub const MAX_RETRIES: u32 = 10;
    /// Largest `quota`.
    pub const MAX_QUOTA: u32 = 100_000;

    /// `base` with this source's fields applied.
    pub fn apply(&self, base: crate::transport::RetryPolicy) -> crate::transport::RetryPolicy {
        crate::transport::RetryPolicy {
            max_retries: self.max_retries.unwrap_or(base.max_retries),
            quota: self.quota.unwrap_or(base.quota),
            ..base
        }
    }
}

/// This source's limits: how many calls may run at once, how fast they may be sent (a token
/// bucket: `rate_per_sec` with `burst`), the largest batch of identifiers in one envelope, and
/// when the circuit breaker opens. `None` takes the default named on each constant; applied by
/// [`crate::limits::Limiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitSettings {
    /// Calls in flight at once, 1–256 (default 4).
    pub max_concurrency: Option<u32>,
    /// Requests per second, 1–100 000 (default: no rate limit).
    pub rate_per_sec: Option<u32>,
    /// Requests that may be sent at once after a quiet spell, 1–100 000 (default: the rate).
    pub burst: Option<u32>,
    /// Identifiers in one search envelope, 1–1000 (default 100).
    pub max_batch_size: Option<u32>,
    /// Consecutive transient failures that open the circuit breaker, 0 (no breaker) – 1000
    /// (default 5).
    pub breaker_failures: Option<u32>,
    /// Seconds the breaker stays open before one probe is let through, 1–3600 (default 30).
    pub breaker_cooldown_secs: Option<u32>,
}

impl LimitSettings {
    /// Default calls in flight.
    pub const DEFAULT_CONCURRENCY: u32 = 4;
    /// Largest `max_concurrency`.
    pub const MAX_CONCURRENCY: u32 = 256;
    /// Largest `rate_per_sec` and `burst`.
    pub const MAX_RATE: u32 = 100_000;
    /// Default identifiers per envelope.
    pub const DEFAULT_BATCH_SIZE: u32 = 100;
    /// Largest `max_batch_size`.
    pub const MAX_BATCH_SIZE: u32 = 1000;
    /// Default consecutive failures that open the breaker.
    pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
    /// Largest `breaker_failures`.
    pub const MAX_BREAKER_FAILURES: u32 = 1000;
    /// Default seconds the breaker stays open.
    pub const DEFAULT_BREAKER_COOLDOWN_SECS: u32 = 30;
    /// Largest `breaker_cooldown_secs`.
    pub const MAX_BREAKER_COOLDOWN_SECS: u32 = 3600;

    /// Calls in flight at once.
    pub fn concurrency(&self) -> u32 {
        self.max_concurrency.unwrap_or(Self::DEFAULT_CONCURRENCY)
    }

    /// Identifiers per envelope.
    pub fn batch_size(&self) -> u32 {
        self.max_batch_size.unwrap_or(Self::DEFAULT_BATCH_SIZE)
    }

    /// Consecutive transient failures that open the breaker (0: never).
    pub fn breaker_threshold(&self) -> u32 {
        self.breaker_failures
            .unwrap_or(Self::DEFAULT_BREAKER_FAILURES)
    }

    /// How long the breaker stays open before a probe.
    pub fn breaker_cooldown(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.breaker_cooldown_secs
                .unwrap_or(Self::DEFAULT_BREAKER_COOLDOWN_SECS)
                .into(),
        )
    }
}

/// Lifecycle state of a data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    /// Configured, not (successfully) tested since the last credential change.
    #[default]
    Draft,
    /// A connection test is running.
    Testing,
    /// The last connection test passed.
    Active,
    /// The last connection test failed.
    Error,
}

impl SourceState {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Draft => "draft",
            SourceState::Testing => "testing",
            SourceState::Active => "active",
            SourceState::Error => "error",
        }
    }
}

/// One registry connection.
#[derive(Debug, Clone)]
pub struct DataSource {
    /// Stable identifier (bound into the encryption of this record's secrets).
    pub id: Uuid,
    /// Unique, lowercase `[a-z0-9_]` code used in URLs and on the command line.
    pub code: String,
    /// Human-readable name.
    pub name: String,
    /// Which registry API it speaks.
    pub registry_type: RegistryType,
    /// Base URL, http or https, no trailing slash (endpoint paths are appended).
    pub base_url: String,
    /// Authentication and its credentials.
    pub auth: AuthConfig,
    /// Our `sender_id` (required for any authenticated source).
    pub sender_id: Option<String>,
    /// The registry's `receiver_id` (default: the base URL).
    pub receiver_id: Option<String>,
    /// Base URL of our callback routes for async operations.
    pub callback_uri: Option<String>,
    /// Endpoint paths.
    pub endpoints: Endpoints,
    /// TLS settings.
    pub tls: TlsSettings,
    /// Request timeout in seconds (> 0).
    pub timeout_secs: u32,
    /// Id of the signing key used for outgoing envelopes, if any.
    pub signing_key_id: Option<String>,
    /// How the registry's replies and callbacks are verified.
    pub reply_signature_policy: SignaturePolicy,
    /// The registry's public keys (PEM, SPKI), if configured directly.
    pub registry_public_keys: Vec<String>,
    /// The registry's JWKS URL, if keys are discovered.
    pub registry_jwks_url: Option<String>,
    /// The dialect the registry speaks: the SPDCI standard or a versioned OpenCRVS profile.
    pub profile: crate::registries::Profile,
    /// How its callbacks are authenticated.
    pub callbacks: CallbackSettings,
    /// How its async requests without a result are followed up and given up.
    pub recovery: RecoverySettings,
    /// Its retry policy for idempotent calls.
    pub retry: RetrySettings,
    /// Its concurrency, rate, batch-size and circuit-breaker limits.
    pub limits: LimitSettings,
    /// Whether the source may be used.
    pub active: bool,
    /// Free-form notes.
    pub notes: String,
    /// Lifecycle state.
    pub state: SourceState,
    /// When the connection was last tested.
    pub last_test_at: Option<OffsetDateTime>,
    /// The last test's or call's error, if any.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last update time.
    pub updated_at: OffsetDateTime,
}

impl DataSource {
    /// The effective `receiver_id`: the configured one, else the base URL.
    pub fn effective_receiver_id(&self) -> &str {
        self.receiver_id.as_deref().unwrap_or(&self.base_url)
    }

    /// The callback URL a registry must POST to, secret included: `{callback_uri}/{secret}`
    /// (the routes below it are `/registry/on-search`, …). `None` without a callback URI or a
    /// secret. A credential: show it only on purpose.
    pub fn callback_url_with_secret(&self) -> Option<String> {
        use secrecy::ExposeSecret as _;
        let base = self
            .callback_uri
            .as_deref()
            .filter(|s| !s.trim().is_empty())?;
        let secret = self.callbacks.secret.as_ref()?;
        Some(format!(
            "{}/{}",
            base.trim_end_matches('/'),
            secret.expose_secret()
        ))
    }

    /// Replaces the callback secret with a fresh one (store the source to make it count):
    /// callbacks to the old URL are refused from then on, and requests sent afterwards carry the
    /// new one. Returns the new callback URL, if the source has a callback URI.
    pub fn regenerate_callback_secret(&mut self) -> Option<String> {
        self.callbacks.secret = Some(CallbackSettings::generate_secret());
        self.callback_url_with_secret()
    }

    /// Default request timeout in seconds.
    pub const DEFAULT_TIMEOUT_SECS: u32 = 30;

    /// The record as JSON for output (CLI `--json`, API, console), every secret shown as
    /// [`MASKED`]: the [`SourceDocument`] of the record, the documented, stable shape of a data
    /// source.
    pub fn to_redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(SourceDocument::from_source(self)).expect("a document serializes")
    }
}
