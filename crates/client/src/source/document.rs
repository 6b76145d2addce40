//! The one data-source document: what every front end reads and writes.
//!
//! [`SourceDocument`] is the JSON shape of a data source (the gateway API's request and response
//! body, the entries of an export file) and the thing the console form and the CLI flags are
//! parsed into. Its values are kept as given (strings, with secrets as `SecretString`) so that
//! [`SourceDocument::validate`] can report every mistake at once, each [`FieldError`] naming the
//! field by its path in this document (`auth.client_id`, `endpoints.search`, `timeout_secs`).
//! Front ends map those paths to their own wording: the CLI to its flags, the console to its
//! labels, the API to JSON pointers ([`FieldError::pointer`]).
//!
//! Secrets never leave through this type: serializing a document writes [`MASKED`] for every
//! secret that is set, and `Debug` redacts them. A secret equal to [`MASKED`] (or empty) counts as
//! "not given", so a document read back from the API or a form can be sent again unchanged and an
//! update keeps the stored secret.
//!
//! [`FieldError`]: super::FieldError
//! [`FieldError::pointer`]: super::FieldError::pointer

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AuthConfig, AuthKind, DataSource};

/// How a set secret is shown everywhere: in output, JSON and forms.
pub const MASKED: &str = "********";

/// A data source as submitted or shown. Every field is optional on input; see the module docs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDocument {
    /// Read-only: the stable id (ignored on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unique lowercase code, `[a-z0-9_]`.
    #[serde(default)]
    pub code: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `crvs`, `dr`, `ibr`, `social` or `fr`.
    #[serde(default)]
    pub registry_type: Option<String>,
    /// `http(s)://host[:port][/path]`, no trailing slash.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Authentication.
    #[serde(default)]
    pub auth: AuthDocument,
    /// Our `sender_id` (required unless auth is `none`).
    #[serde(default)]
    pub sender_id: Option<String>,
    /// The registry's `receiver_id` (default: the base URL).
    #[serde(default)]
    pub receiver_id: Option<String>,
    /// Base URL of our callback routes.
    #[serde(default)]
    pub callback_uri: Option<String>,
    /// Endpoint paths (defaults: the spec's).
    #[serde(default)]
    pub endpoints: EndpointsDocument,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsDocument,
    /// Timeout in seconds (default 30). JSON may give a number or a string.
    #[serde(default, with = "number_or_text")]
    pub timeout_secs: Option<String>,
    /// Signing key id for outgoing envelopes.
    #[serde(default)]
    pub signing_key_id: Option<String>,
    /// `off` (default), `if-present` or `require`.
    #[serde(default)]
    pub reply_signature_policy: Option<String>,
    /// Registry public keys (PEM SPKI).
    #[serde(default)]
    pub registry_public_keys: Vec<String>,
    /// Registry JWKS URL.
    #[serde(default)]
    pub registry_jwks_url: Option<String>,
    /// `standard` (default) or an OpenCRVS profile (`opencrvs`, `opencrvs-1.5`, `opencrvs-1.3`).
    #[serde(default)]
    pub profile: Option<String>,
    /// How callbacks are authenticated.
    #[serde(default)]
    pub callbacks: CallbacksDocument,
    /// How async requests without a result are followed up and given up.
    #[serde(default)]
    pub recovery: RecoveryDocument,
    /// Retry policy of idempotent calls (defaults: the engine's).
    #[serde(default)]
    pub retry: RetryDocument,
    /// Concurrency, rate, batch-size and circuit-breaker limits (defaults: see each field).
    #[serde(default)]
    pub limits: LimitsDocument,
    /// Enabled (default `true`).
    #[serde(default)]
    pub active: Option<bool>,
    /// Free-form notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// Read-only: lifecycle state (ignored on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Read-only: when the connection was last tested, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_test_at: Option<String>,
    /// Read-only: the last test's or call's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Read-only: creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Read-only: last update time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `auth`: the kind and the settings of that kind. Fields of another kind are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthDocument {
    /// `none` (default), `bearer`, `basic` or `oauth2`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Bearer token (auth `bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "masked")]
    pub bearer_token: Option<SecretString>,
    /// Basic user name (auth `basic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Basic password (auth `basic`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "masked")]
    pub password: Option<SecretString>,
    /// OAuth2 token endpoint (auth `oauth2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// OAuth2 client id (auth `oauth2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// OAuth2 client secret (auth `oauth2`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "masked")]
    pub client_secret: Option<SecretString>,
    /// OAuth2 scope, space-separated (auth `oauth2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `body` (default), `basic`, `query` or `json` (auth `oauth2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_location: Option<String>,
}

/// `callbacks`: how callbacks from the registry are authenticated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksDocument {
    /// Accept callbacks that are neither signed by the registry nor carry the callback secret
    /// (default `false`; unsafe: anyone who reaches the receiver can forge results).
    #[serde(default)]
    pub accept_unauthenticated: Option<bool>,
    /// Answer DCI-level refusals (bad signature, unknown transaction, wrong sender, malformed
    /// message) with HTTP 4xx statuses (default `false`: HTTP 200 with an ACK `ERR` and the
    /// spec's error code, as the DCI specs answer them).
    #[serde(default)]
    pub http_refusals: Option<bool>,
    /// The callback secret: shown as [`MASKED`] when one is set. On input, left out, empty or
    /// [`MASKED`] keeps the stored one (a new source gets a generated one); another value
    /// replaces it (at least 32 characters of `A-Z a-z 0-9 - _`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "masked")]
    pub secret: Option<SecretString>,
    /// Read-only, and only when revealed on purpose ([`SourceDocument::reveal_callback_url`]):
    /// the URL the registry posts callbacks to, secret included (ignored on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `recovery`: when the registry is asked for a result that has not come, and when it is
/// given up (marked `expired`). Seconds; JSON may give numbers or strings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryDocument {
    /// Expected callback time (default 30): after it, the registry is asked with txn-status.
    #[serde(default, with = "number_or_text")]
    pub callback_within_secs: Option<String>,
    /// How often a request still waiting is asked about again (default 30).
    #[serde(default, with = "number_or_text")]
    pub poll_interval_secs: Option<String>,
    /// Give up (mark `expired`) this long after sending (default 3600).
    #[serde(default, with = "number_or_text")]
    pub give_up_after_secs: Option<String>,
}

/// `retry`: retries of idempotent calls (token, sync search, txn status).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryDocument {
    /// Retries after the first attempt, 0–10 (default: the engine's, 5).
    #[serde(default, with = "number_or_text")]
    pub max_retries: Option<String>,
    /// Size of the retry quota (token bucket), 0 (none) – 100000 (default: the engine's, 500).
    #[serde(default, with = "number_or_text")]
    pub quota: Option<String>,
}

/// `limits`: how hard this registry may be driven (see [`crate::LimitSettings`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsDocument {
    /// Calls in flight at once, 1–256 (default 4).
    #[serde(default, with = "number_or_text")]
    pub max_concurrency: Option<String>,
    /// Requests per second, 1–100000 (default: none).
    #[serde(default, with = "number_or_text")]
    pub rate_per_sec: Option<String>,
    /// Token-bucket burst, 1–100000 (default: the rate).
    #[serde(default, with = "number_or_text")]
    pub burst: Option<String>,
    /// Identifiers per search envelope, 1–1000 (default 100).
    #[serde(default, with = "number_or_text")]
    pub max_batch_size: Option<String>,
    /// Consecutive transient failures that open the circuit breaker, 0 (none) – 1000 (default 5).
    #[serde(default, with = "number_or_text")]
    pub breaker_failures: Option<String>,
    /// Seconds the breaker stays open before a probe, 1–3600 (default 30).
    #[serde(default, with = "number_or_text")]
    pub breaker_cooldown_secs: Option<String>,
}

/// `endpoints`: paths relative to the base URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsDocument {
    /// Sync search (default `/registry/sync/search`).
    #[serde(default)]
    pub sync_search: Option<String>,
    /// Async search (default `/registry/search`).
    #[serde(default)]
    pub search: Option<String>,
    /// Subscribe (default `/registry/subscribe`).
    #[serde(default)]
    pub subscribe: Option<String>,
    /// Unsubscribe (default `/registry/unsubscribe`).
    #[serde(default)]
    pub unsubscribe: Option<String>,
    /// Async txn status (default `/registry/txn/status`).
    #[serde(default)]
    pub txn_status: Option<String>,
    /// Sync txn status (default `/registry/sync/txn/status`).
    #[serde(default)]
    pub sync_txn_status: Option<String>,
}

/// `tls`: certificate checks and mutual TLS.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsDocument {
    /// Verify the registry's certificate (default `true`).
    #[serde(default)]
    pub verify: Option<bool>,
    /// Extra CA bundle (PEM file).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// mTLS client certificate (PEM file).
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// mTLS client key (PEM file).
    #[serde(default)]
    pub client_key_file: Option<String>,
}

/// Generates the text-field accessors and the list of every field path from one table, so a
/// path is spelled once.
macro_rules! text_fields {
    ($($path:literal => $($field:ident).+;)*) => {
        /// Paths of the fields that hold text (settable with [`SourceDocument::set_text`]).
        pub const TEXT_FIELDS: &'static [&'static str] = &[$($path),*];

        /// The text field at `path` (e.g. `auth.client_id`), or `None` if `path` is not a text
        /// field.
        pub fn text(&self, path: &str) -> Option<Option<&str>> {
            match path {
                $($path => Some(self.$($field).+.as_deref()),)*
                _ => None,
            }
        }

        fn text_slot(&mut self, path: &str) -> Option<&mut Option<String>> {
            match path {
                $($path => Some(&mut self.$($field).+),)*
                _ => None,
            }
        }
    };
}

impl SourceDocument {
    text_fields! {
        "code" => code;
        "name" => name;
        "registry_type" => registry_type;
        "base_url" => base_url;
        "auth.type" => auth.kind;
        "auth.username" => auth.username;
        "auth.token_url" => auth.token_url;
        "auth.client_id" => auth.client_id;
        "auth.scope" => auth.scope;
        "auth.credential_location" => auth.credential_location;
        "sender_id" => sender_id;
        "receiver_id" => receiver_id;
        "callback_uri" => callback_uri;
        "endpoints.sync_search" => endpoints.sync_search;
        "endpoints.search" => endpoints.search;
        "endpoints.subscribe" => endpoints.subscribe;
        "endpoints.unsubscribe" => endpoints.unsubscribe;
        "endpoints.txn_status" => endpoints.txn_status;
        "endpoints.sync_txn_status" => endpoints.sync_txn_status;
        "tls.ca_file" => tls.ca_file;
        "tls.client_cert_file" => tls.client_cert_file;
        "tls.client_key_file" => tls.client_key_file;
        "timeout_secs" => timeout_secs;
        "recovery.callback_within_secs" => recovery.callback_within_secs;
        "recovery.poll_interval_secs" => recovery.poll_interval_secs;
        "recovery.give_up_after_secs" => recovery.give_up_after_secs;
        "retry.max_retries" => retry.max_retries;
        "retry.quota" => retry.quota;
        "limits.max_concurrency" => limits.max_concurrency;
        "limits.rate_per_sec" => limits.rate_per_sec;
        "limits.burst" => limits.burst;
        "limits.max_batch_size" => limits.max_batch_size;
        "limits.breaker_failures" => limits.breaker_failures;
        "limits.breaker_cooldown_secs" => limits.breaker_cooldown_secs;
        "signing_key_id" => signing_key_id;
        "reply_signature_policy" => reply_signature_policy;
        "registry_jwks_url" => registry_jwks_url;
        "profile" => profile;
        "notes" => notes;
    }

    /// Paths of the secret fields, one per auth kind that has one.
    pub const SECRET_FIELDS: &'static [&'static str] =
        &["auth.bearer_token", "auth.password", "auth.client_secret"];

    /// Paths of the other fields: yes/no switches and the list of keys.
    pub const OTHER_FIELDS: &'static [&'static str] = &[
        "tls.verify",
        "active",
        "callbacks.accept_unauthenticated",
        "callbacks.http_refusals",
        "registry_public_keys",
    ];

    /// Whether `path` names a field of the document.
    pub fn is_field(path: &str) -> bool {
        Self::TEXT_FIELDS
            .iter()
            .chain(Self::SECRET_FIELDS)
            .chain(Self::OTHER_FIELDS)
            .any(|p| *p == path)
    }

    /// Sets the text field at `path` (`None` clears it). Returns `false`, changing nothing, if
    /// `path` is not a text field.
    pub fn set_text(&mut self, path: &str, value: Option<String>) -> bool {
        match self.text_slot(path) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// Sets the yes/no field at `path` (`tls.verify`, `active`). Returns `false`, changing
    /// nothing, if `path` is not one.
    pub fn set_switch(&mut self, path: &str, value: Option<bool>) -> bool {
        let slot = match path {
            "tls.verify" => &mut self.tls.verify,
            "active" => &mut self.active,
            "callbacks.accept_unauthenticated" => &mut self.callbacks.accept_unauthenticated,
            "callbacks.http_refusals" => &mut self.callbacks.http_refusals,
            _ => return false,
        };
        *slot = value;
        true
    }

    /// The yes/no field at `path`, or `None` if `path` is not one.
    pub fn switch(&self, path: &str) -> Option<Option<bool>> {
        match path {
            "tls.verify" => Some(self.tls.verify),
            "active" => Some(self.active),
            "callbacks.accept_unauthenticated" => Some(self.callbacks.accept_unauthenticated),
            "callbacks.http_refusals" => Some(self.callbacks.http_refusals),
            _ => None,
        }
    }

    /// Sets the secret field at `path` (one of [`SourceDocument::SECRET_FIELDS`]). Returns
    /// `false`, changing nothing, if `path` is not one.
    pub fn set_secret_at(&mut self, path: &str, secret: Option<SecretString>) -> bool {
        let slot = match path {
            "auth.bearer_token" => &mut self.auth.bearer_token,
            "auth.password" => &mut self.auth.password,
            "auth.client_secret" => &mut self.auth.client_secret,
            _ => return false,
        };
        *slot = secret;
        true
    }

    /// The secret field of an auth kind (`None` for `none`).
    pub fn secret_field(kind: AuthKind) -> Option<&'static str> {
        match kind {
            AuthKind::None => None,
            AuthKind::Bearer => Some("auth.bearer_token"),
            AuthKind::Basic => Some("auth.password"),
            AuthKind::OAuth2 => Some("auth.client_secret"),
        }
    }

    /// The paths of the `auth` settings that belong to `kind` (its secret included).
    pub fn auth_fields(kind: AuthKind) -> &'static [&'static str] {
        match kind {
            AuthKind::None => &[],
            AuthKind::Bearer => &["auth.bearer_token"],
            AuthKind::Basic => &["auth.username", "auth.password"],
            AuthKind::OAuth2 => &[
                "auth.token_url",
                "auth.client_id",
                "auth.client_secret",
                "auth.scope",
                "auth.credential_location",
            ],
        }
    }

    /// Sets the secret of `kind` (the bearer token, basic password or client secret).
    pub fn set_secret(&mut self, kind: AuthKind, secret: Option<SecretString>) {
        match kind {
            AuthKind::None => {}
            AuthKind::Bearer => self.auth.bearer_token = secret,
            AuthKind::Basic => self.auth.password = secret,
            AuthKind::OAuth2 => self.auth.client_secret = secret,
        }
    }

    /// The auth kind the document asks for: `auth.type`, `none` when empty. `None` when the name
    /// is unknown (validation reports it).
    pub fn auth_kind(&self) -> Option<AuthKind> {
        match self.auth.kind.as_deref().map(str::trim) {
            None | Some("") => Some(AuthKind::None),
            Some(k) => k.parse().ok(),
        }
    }

    /// Clears every `auth` setting but the kind (used when switching auth kinds, so the old
    /// kind's settings are not refused as foreign).
    pub fn clear_auth_settings(&mut self) {
        self.auth = AuthDocument {
            kind: self.auth.kind.take(),
            ..AuthDocument::default()
        };
    }

    /// Adds the callback URL with its secret (`callbacks.url`, see
    /// [`DataSource::callback_url_with_secret`]): a credential, for an operator who asked for it
    /// (on creation, or deliberately later) to hand to the registry.
    pub fn reveal_callback_url(mut self, source: &DataSource) -> SourceDocument {
        self.callbacks.url = source.callback_url_with_secret();
        self
    }

    /// Clears the read-only fields (id, state, test results, timestamps), e.g. for an export.
    pub fn without_status(mut self) -> SourceDocument {
        self.callbacks.url = None;
        self.id = None;
        self.state = None;
        self.last_test_at = None;
        self.last_error = None;
        self.created_at = None;
        self.updated_at = None;
        self
    }

    /// The document of a stored source: every setting, the read-only fields, and each stored
    /// secret as [`MASKED`] (so validating it as an update keeps the secret).
    pub fn from_source(s: &DataSource) -> SourceDocument {
        let rfc3339 = |t: &OffsetDateTime| t.format(&Rfc3339).ok();
        let masked = || Some(SecretString::from(MASKED));
        let mut auth = AuthDocument {
            kind: Some(s.auth.kind().as_str().to_owned()),
            ..AuthDocument::default()
        };
        match &s.auth {
            AuthConfig::None => {}
            AuthConfig::Bearer { .. } => auth.bearer_token = masked(),
            AuthConfig::Basic { username, .. } => {
                auth.username = Some(username.clone());
                auth.password = masked();
            }
            AuthConfig::OAuth2(o) => {
                auth.token_url = Some(o.token_url.clone());
                auth.client_id = Some(o.client_id.clone());
                auth.client_secret = masked();
                auth.scope = o.scope.clone();
                auth.credential_location = Some(o.credential_location.as_str().to_owned());
            }
        }
        let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        SourceDocument {
            id: Some(s.id.to_string()),
            code: Some(s.code.clone()),
            name: Some(s.name.clone()),
            registry_type: Some(s.registry_type.as_str().to_owned()),
            base_url: Some(s.base_url.clone()),
            auth,
            sender_id: s.sender_id.clone(),
            receiver_id: s.receiver_id.clone(),
            callback_uri: s.callback_uri.clone(),
            endpoints: EndpointsDocument {
                sync_search: Some(s.endpoints.sync_search.clone()),
                search: Some(s.endpoints.search.clone()),
                subscribe: Some(s.endpoints.subscribe.clone()),
                unsubscribe: Some(s.endpoints.unsubscribe.clone()),
                txn_status: Some(s.endpoints.txn_status.clone()),
                sync_txn_status: Some(s.endpoints.sync_txn_status.clone()),
            },
            tls: TlsDocument {
                verify: Some(s.tls.verify),
                ca_file: path(&s.tls.ca_file),
                client_cert_file: path(&s.tls.client_cert_file),
                client_key_file: path(&s.tls.client_key_file),
            },
            timeout_secs: Some(s.timeout_secs.to_string()),
            signing_key_id: s.signing_key_id.clone(),
            reply_signature_policy: Some(s.reply_signature_policy.as_str().to_owned()),
            registry_public_keys: s.registry_public_keys.clone(),
            registry_jwks_url: s.registry_jwks_url.clone(),
            profile: Some(s.profile.as_str().to_owned()),
            callbacks: CallbacksDocument {
                accept_unauthenticated: Some(s.callbacks.accept_unauthenticated),
                http_refusals: Some(s.callbacks.http_refusals),
                secret: s.callbacks.secret.as_ref().and_then(|_| masked()),
                url: None,
            },
            recovery: RecoveryDocument {
                callback_within_secs: Some(s.recovery.callback_within_secs.to_string()),
                poll_interval_secs: Some(s.recovery.poll_interval_secs.to_string()),
                give_up_after_secs: Some(s.recovery.give_up_after_secs.to_string()),
            },
            retry: RetryDocument {
                max_retries: s.retry.max_retries.map(|n| n.to_string()),
                quota: s.retry.quota.map(|n| n.to_string()),
            },
            limits: LimitsDocument {
                max_concurrency: s.limits.max_concurrency.map(|n| n.to_string()),
                rate_per_sec: s.limits.rate_per_sec.map(|n| n.to_string()),
                burst: s.limits.burst.map(|n| n.to_string()),
                max_batch_size: s.limits.max_batch_size.map(|n| n.to_string()),
                breaker_failures: s.limits.breaker_failures.map(|n| n.to_string()),
                breaker_cooldown_secs: s.limits.breaker_cooldown_secs.map(|n| n.to_string()),
            },
            active: Some(s.active),
            notes: Some(s.notes.clone()),
            state: Some(s.state.as_str().to_owned()),
            last_test_at: s.last_test_at.as_ref().and_then(rfc3339),
            last_error: s.last_error.clone(),
            created_at: rfc3339(&s.created_at),
            updated_at: rfc3339(&s.updated_at),
        }
    }
}

/// Secrets serialize as [`MASKED`], never as their value; they deserialize from a string.
mod masked {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        v: &Option<SecretString>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(_) => s.serialize_str(MASKED),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
    }
}

/// A whole number given as a JSON number or a string; kept as text for validation.
mod number_or_text {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Number(serde_json::Number),
        Text(String),
    }

    pub(super) fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match v.as_deref().map(|t| (t, t.trim().parse::<u64>())) {
            Some((_, Ok(n))) => s.serialize_u64(n),
            Some((t, Err(_))) => s.serialize_str(t),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Given>::deserialize(d)?.map(|g| match g {
            Given::Number(n) => n.to_string(),
            Given::Text(t) => t,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::json;

    #[test]
    fn secrets_serialize_masked_and_read_back() {
        let mut doc = SourceDocument::default();
        doc.auth.client_secret = Some(SecretString::from("plain-secret-1"));
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains("plain-secret-1"), "{text}");
        assert!(!format!("{doc:?}").contains("plain-secret-1"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["auth"]["client_secret"], MASKED);
        let back: SourceDocument = serde_json::from_value(json!({
            "auth": { "type": "oauth2", "client_secret": "typed" },
            "timeout_secs": 12,
        }))
        .unwrap();
        assert_eq!(
            back.auth.client_secret.as_ref().unwrap().expose_secret(),
            "typed"
        );
        assert_eq!(back.timeout_secs.as_deref(), Some("12"));
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = serde_json::from_value::<SourceDocument>(json!({ "auth": { "user": "x" } }))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `user`"), "{err}");
    }

    #[test]
    fn text_paths_cover_every_text_field_and_nothing_else() {
        let mut doc = SourceDocument::default();
        for p in SourceDocument::TEXT_FIELDS {
            assert!(doc.set_text(p, Some(format!("v:{p}"))), "{p}");
            assert!(SourceDocument::is_field(p));
        }
        for p in SourceDocument::TEXT_FIELDS {
            assert_eq!(doc.text(p), Some(Some(format!("v:{p}").as_str())));
        }
        let v = serde_json::to_value(&doc).unwrap();
        // Each path is where the value sits in the JSON.
        for p in SourceDocument::TEXT_FIELDS {
            let pointer = format!("/{}", p.replace('.', "/"));
            assert_eq!(v.pointer(&pointer), Some(&json!(format!("v:{p}"))), "{p}");
        }
        assert!(!doc.set_text("auth.client_secret", Some("x".into())));
        assert!(!doc.set_text("colour", Some("x".into())));
        assert!(doc.text("tls.verify").is_none());
        assert!(doc.set_switch("tls.verify", Some(false)) && !doc.set_switch("name", Some(true)));
        assert_eq!(doc.switch("tls.verify"), Some(Some(false)));
        assert!(doc.set_secret_at("auth.password", Some(SecretString::from("pw"))));
        assert!(!doc.set_secret_at("auth.username", None));
        for p in SourceDocument::SECRET_FIELDS
            .iter()
            .chain(SourceDocument::OTHER_FIELDS)
        {
            assert!(SourceDocument::is_field(p));
        }
    }

    #[test]
    fn timeout_given_as_text_that_is_not_a_number_stays_text() {
        let doc = SourceDocument {
            timeout_secs: Some("soon".into()),
            ..SourceDocument::default()
        };
        assert_eq!(serde_json::to_value(&doc).unwrap()["timeout_secs"], "soon");
    }
}
