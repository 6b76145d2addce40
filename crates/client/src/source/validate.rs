//! Validating a [`SourceDocument`] into a [`DataSource`]: the one set of rules every front end
//! (CLI, console, API, import) goes through.
//!
//! Every rule reports the field it concerns, by its path in the document (`auth.client_id`), and
//! how to fix it in neutral words (no CLI flags, form labels or JSON pointers: front ends add
//! their own naming with [`ValidationErrors::relabel`] or [`FieldError::pointer`]). All rules
//! run, so a form or the CLI can show every mistake at once. Uniqueness of the code is not
//! checked here: the database enforces it.

use std::fmt;
use std::path::PathBuf;

use dci_protocol::RegistryType;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use super::document::{MASKED, SourceDocument};
use super::{
    AuthConfig, AuthKind, CallbackSettings, CredentialLocation, DataSource, Endpoints,
    LimitSettings, OAuth2Config, RecoverySettings, RetrySettings, SignaturePolicy, SourceState,
    TlsSettings, names,
};
use crate::registries::Profile;

/// One failed rule: the field (its path in [`SourceDocument`]) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's path, e.g. `base_url` or `auth.client_id`.
    pub field: &'static str,
    /// What is wrong and how to fix it, e.g. `must not end with '/': use https://…`.
    pub message: String,
    /// How the front end that shows the error names the field (a CLI flag, a form label), if it
    /// set one with [`ValidationErrors::relabel`]; shown instead of the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl FieldError {
    /// Where the field sits in a JSON document, as a JSON pointer (RFC 6901): `auth.client_id`
    /// is `/auth/client_id`.
    pub fn pointer(&self) -> String {
        pointer_of(self.field)
    }
}

/// The JSON pointer of a field path (`auth.client_id` → `/auth/client_id`).
pub fn pointer_of(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    for part in path.split('.') {
        out.push('/');
        out.push_str(&part.replace('~', "~0").replace('/', "~1"));
    }
    out
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.label {
            Some(label) => write!(f, "{label} {}", self.message),
            None => write!(f, "{} {}", self.field, self.message),
        }
    }
}

/// Every rule a submission broke, in field order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    /// One error.
    pub fn one(field: &'static str, message: impl Into<String>) -> ValidationErrors {
        let mut errs = ValidationErrors::default();
        errs.push(field, message);
        errs
    }

    /// The errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// Whether `field` (a path) has an error.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds an error (front ends add their own, e.g. a file that could not be read).
    pub fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(FieldError {
            field,
            message: message.into(),
            label: None,
        });
    }

    /// Names each field the way a front end does (`auth.client_id` → `--client-id`); fields
    /// for which `label` answers `None` keep their path.
    pub fn relabel(mut self, label: impl Fn(&str) -> Option<String>) -> ValidationErrors {
        for e in &mut self.0 {
            e.label = label(e.field);
        }
        self
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Whether an update may change the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeRule {
    New,
    Fixed,
    MayChange,
}

impl SourceDocument {
    /// Validates a new data source: a fresh id, state `draft`, timestamps now. Read-only fields
    /// are ignored.
    pub fn validate(self) -> Result<DataSource, ValidationErrors> {
        self.validate_inner(None, CodeRule::New)
    }

    /// Validates an edit of `existing`: keeps its id, state, test results and creation time, and
    /// keeps each stored secret that the document leaves out or masks (when the auth kind is
    /// unchanged). Whether the edit changed credentials (and so resets the state) is the store's
    /// decision.
    ///
    /// The code is fixed: a document without a code keeps it, one with another code is refused
    /// with an error on `code`. Use [`SourceDocument::validate_rename`] to allow a new code.
    pub fn validate_update(self, existing: &DataSource) -> Result<DataSource, ValidationErrors> {
        self.validate_inner(Some(existing), CodeRule::Fixed)
    }

    /// Like [`SourceDocument::validate_update`], but a new code renames the source.
    pub fn validate_rename(self, existing: &DataSource) -> Result<DataSource, ValidationErrors> {
        self.validate_inner(Some(existing), CodeRule::MayChange)
    }

    fn validate_inner(
        self,
        existing: Option<&DataSource>,
        rule: CodeRule,
    ) -> Result<DataSource, ValidationErrors> {
        let mut errs = ValidationErrors::default();

        let code = match (opt(&self.code), existing) {
            (None, Some(e)) => e.code.clone(),
            (Some(c), Some(e)) if rule == CodeRule::Fixed && c != e.code => {
                errs.push(
                    "code",
                    format!(
                        "cannot be changed: it is fixed once created (URLs and scripts use it): keep {:?}",
                        e.code
                    ),
                );
                e.code.clone()
            }
            (c, _) => {
                let c = c.unwrap_or_default();
                check_code(&c, &mut errs);
                c
            }
        };

        let name = opt(&self.name).unwrap_or_default();
        if name.is_empty() {
            errs.push(
                "name",
                "is required: give a display name such as \"National CRVS\"",
            );
        } else if name.chars().count() > 200 {
            errs.push("name", "must be at most 200 characters: shorten it");
        }

        let registry_type = match opt(&self.registry_type) {
            None => {
                errs.push(
                    "registry_type",
                    format!("is required: use one of {}", names::REGISTRY_TYPE_NAMES),
                );
                None
            }
            Some(s) => parse_or_push("registry_type", names::registry_type(&s), &mut errs),
        };

        let base_url = opt(&self.base_url).unwrap_or_default();
        if base_url.is_empty() {
            errs.push(
                "base_url",
                "is required: use e.g. https://crvs.example.org/api/v1",
            );
        } else {
            let before = errs.0.len();
            check_url("base_url", &base_url, &mut errs);
            // One message per mistake, and a suggestion that is itself valid: the trailing
            // slash is named only once the URL is otherwise fine.
            if errs.0.len() == before && base_url.ends_with('/') {
                let trimmed = base_url.trim_end_matches('/');
                errs.push("base_url", format!("must not end with '/': use {trimmed}"));
            }
        }

        let auth_kind = match opt(&self.auth.kind) {
            None => Some(AuthKind::None),
            Some(s) => parse_or_push("auth.type", s.parse::<AuthKind>(), &mut errs),
        };

        // Stored secrets that an edit may keep: only when the auth kind stays the same.
        let kept = existing
            .map(|e| &e.auth)
            .filter(|a| Some(a.kind()) == auth_kind);
        let auth = auth_kind.and_then(|kind| self.build_auth(kind, kept, &mut errs));

        let sender_id = opt(&self.sender_id);
        if auth_kind.is_some_and(|k| k != AuthKind::None) && sender_id.is_none() {
            errs.push(
                "sender_id",
                "is required for an authenticated source: set our sender id as the registry knows it, e.g. spmis.example.org",
            );
        }
        let receiver_id = opt(&self.receiver_id);
        let callback_uri = opt(&self.callback_uri);
        if let Some(u) = &callback_uri {
            check_url("callback_uri", u, &mut errs);
            // Callbacks are matched to their registry by header.sender_id; a new source that
            // receives them must say what that id is (sources stored earlier are grandfathered).
            if existing.is_none() && receiver_id.is_none() {
                errs.push(
                    "receiver_id",
                    "is required with callback_uri: set the registry's id as it sends it in header.sender_id of its callbacks, e.g. crvs.example.org",
                );
            }
        }
        let callbacks = self.build_callbacks(existing, &mut errs);

        let d = Endpoints::default();
        let ep = &self.endpoints;
        let endpoints = Endpoints {
            sync_search: path(
                "endpoints.sync_search",
                &ep.sync_search,
                d.sync_search,
                &mut errs,
            ),
            search: path("endpoints.search", &ep.search, d.search, &mut errs),
            subscribe: path("endpoints.subscribe", &ep.subscribe, d.subscribe, &mut errs),
            unsubscribe: path(
                "endpoints.unsubscribe",
                &ep.unsubscribe,
                d.unsubscribe,
                &mut errs,
            ),
            txn_status: path(
                "endpoints.txn_status",
                &ep.txn_status,
                d.txn_status,
                &mut errs,
            ),
            sync_txn_status: path(
                "endpoints.sync_txn_status",
                &ep.sync_txn_status,
                d.sync_txn_status,
                &mut errs,
            ),
        };

        let tls = TlsSettings {
            verify: self.tls.verify.unwrap_or(true),
            ca_file: opt(&self.tls.ca_file).map(PathBuf::from),
            client_cert_file: opt(&self.tls.client_cert_file).map(PathBuf::from),
            client_key_file: opt(&self.tls.client_key_file).map(PathBuf::from),
        };
        match (&tls.client_cert_file, &tls.client_key_file) {
            (Some(_), None) => errs.push(
                "tls.client_key_file",
                "is required with tls.client_cert_file: give the PEM key of the mTLS certificate",
            ),
            (None, Some(_)) => errs.push(
                "tls.client_cert_file",
                "is required with tls.client_key_file: give the PEM certificate of the mTLS key",
            ),
            _ => {}
        }

        let timeout_secs = match opt(&self.timeout_secs) {
            None => DataSource::DEFAULT_TIMEOUT_SECS,
            Some(s) => match s.parse::<u32>() {
                Ok(0) => {
                    errs.push(
                        "timeout_secs",
                        "must be greater than 0 seconds: use e.g. 30",
                    );
                    DataSource::DEFAULT_TIMEOUT_SECS
                }
                Ok(n) if n > 3600 => {
                    errs.push("timeout_secs", "must be at most 3600 seconds: use e.g. 30");
                    DataSource::DEFAULT_TIMEOUT_SECS
                }
                Ok(n) => n,
                Err(_) => {
                    errs.push(
                        "timeout_secs",
                        format!("{s:?} is not a whole number of seconds: use e.g. 30"),
                    );
                    DataSource::DEFAULT_TIMEOUT_SECS
                }
            },
        };

        let recovery = self.recovery_settings(&mut errs);
        let retry = RetrySettings {
            max_retries: whole(
                &mut errs,
                "retry.max_retries",
                &self.retry.max_retries,
                0..=RetrySettings::MAX_RETRIES,
                "a count of retries, e.g. 5",
            ),
            quota: whole(
                &mut errs,
                "retry.quota",
                &self.retry.quota,
                0..=RetrySettings::MAX_QUOTA,
                "a quota size, e.g. 500 (0: no quota)",
            ),
        };

        let limits = self.limit_settings(&mut errs);

        let signing_key_id = opt(&self.signing_key_id);

        let reply_signature_policy = match opt(&self.reply_signature_policy) {
            None => SignaturePolicy::Off,
            Some(s) => {
                parse_or_push("reply_signature_policy", s.parse(), &mut errs).unwrap_or_default()
            }
        };
        let registry_public_keys: Vec<String> = self
            .registry_public_keys
            .iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        for key in &registry_public_keys {
            if !(key.starts_with("-----BEGIN PUBLIC KEY-----")
                && key.ends_with("-----END PUBLIC KEY-----"))
            {
                errs.push(
                    "registry_public_keys",
                    "must each be a PEM public key (BEGIN PUBLIC KEY … END PUBLIC KEY): export the registry's key as SPKI PEM",
                );
                break;
            }
        }
        let registry_jwks_url = opt(&self.registry_jwks_url);
        if let Some(u) = &registry_jwks_url {
            check_url("registry_jwks_url", u, &mut errs);
        }
        if reply_signature_policy == SignaturePolicy::Require
            && registry_public_keys.is_empty()
            && registry_jwks_url.is_none()
        {
            errs.push(
                "reply_signature_policy",
                "require needs the registry's keys: set registry_public_keys or registry_jwks_url, or use if-present",
            );
        }

        let profile = match opt(&self.profile) {
            None => existing.map(|e| e.profile).unwrap_or_default(),
            Some(p) => {
                parse_or_push("profile", names::profile(&p), &mut errs).unwrap_or(Profile::Standard)
            }
        };
        if profile.is_opencrvs() {
            if registry_type.is_some_and(|r| r != RegistryType::Crvs) {
                errs.push(
                    "profile",
                    "OpenCRVS profiles are for CRVS data sources: use profile standard or registry type crvs",
                );
            }
            // OpenCRVS fetches the JWKS of a signed request from `{sender_id}/.well-known/jwks.json`.
            if sender_id
                .as_deref()
                .is_some_and(|s| !(s.starts_with("https://") || s.starts_with("http://")))
            {
                errs.push(
                    "sender_id",
                    "must be the URL of the origin serving our JWKS for an OpenCRVS source, e.g. https://spmis.example.org",
                );
            }
        }

        if !errs.is_empty() {
            return Err(errs);
        }
        let (Some(registry_type), Some(auth)) = (registry_type, auth) else {
            // Both are only missing when an error was recorded above.
            return Err(errs);
        };

        let now = OffsetDateTime::now_utc();
        Ok(DataSource {
            id: existing.map_or_else(Uuid::now_v7, |e| e.id),
            code,
            name,
            registry_type,
            base_url,
            auth,
            sender_id,
            receiver_id,
            callback_uri,
            endpoints,
            tls,
            timeout_secs,
            signing_key_id,
            reply_signature_policy,
            registry_public_keys,
            registry_jwks_url,
            profile,
            callbacks,
            recovery,
            retry,
            limits,
            active: self.active.unwrap_or(true),
            notes: self.notes.map(|n| n.trim().to_owned()).unwrap_or_default(),
            state: existing.map_or(SourceState::Draft, |e| e.state),
            last_test_at: existing.and_then(|e| e.last_test_at),
            last_error: existing.and_then(|e| e.last_error.clone()),
            created_at: existing.map_or(now, |e| e.created_at),
            updated_at: now,
        })
    }

    /// The callback settings: a given secret replaces the stored one; otherwise the stored one
    /// is kept, and a source without one (new, or stored before secrets existed) gets one.
    fn build_callbacks(
        &self,
        existing: Option<&DataSource>,
        errs: &mut ValidationErrors,
    ) -> CallbackSettings {
        let given = self
            .callbacks
            .secret
            .as_ref()
            .map(|s| s.expose_secret().trim().to_owned())
            .filter(|s| !s.is_empty() && s != MASKED);
        let secret = match given {
            Some(s) => {
                let url_safe = s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if s.len() < 32 || !url_safe {
                    errs.push(
                        "callbacks.secret",
                        "must be at least 32 characters of A-Z, a-z, 0-9, '-' and '_': leave it out to keep (or generate) one",
                    );
                }
                SecretString::from(s)
            }
            None => existing
                .and_then(|e| e.callbacks.secret.clone())
                .unwrap_or_else(CallbackSettings::generate_secret),
        };
        CallbackSettings {
            secret: Some(secret),
            accept_unauthenticated: self.callbacks.accept_unauthenticated.unwrap_or(false),
            http_refusals: self.callbacks.http_refusals.unwrap_or(false),
        }
    }

    fn build_auth(
        &self,
        kind: AuthKind,
        kept: Option<&AuthConfig>,
        errs: &mut ValidationErrors,
    ) -> Option<AuthConfig> {
        let a = &self.auth;
        // Settings of another kind are refused rather than silently dropped.
        let given: [(&'static str, bool); 8] = [
            ("auth.bearer_token", secret(&a.bearer_token).is_some()),
            ("auth.username", opt(&a.username).is_some()),
            ("auth.password", secret(&a.password).is_some()),
            ("auth.token_url", opt(&a.token_url).is_some()),
            ("auth.client_id", opt(&a.client_id).is_some()),
            ("auth.client_secret", secret(&a.client_secret).is_some()),
            ("auth.scope", opt(&a.scope).is_some()),
            (
                "auth.credential_location",
                opt(&a.credential_location).is_some(),
            ),
        ];
        let mine = SourceDocument::auth_fields(kind);
        for (field, set) in given {
            if set && !mine.contains(&field) {
                let owner = [AuthKind::Bearer, AuthKind::Basic, AuthKind::OAuth2]
                    .into_iter()
                    .find(|k| SourceDocument::auth_fields(*k).contains(&field))
                    .map_or("", AuthKind::as_str);
                errs.push(
                    field,
                    format!("is only used with auth type {owner}: remove it or set the auth type to {owner}"),
                );
            }
        }
        match kind {
            AuthKind::None => Some(AuthConfig::None),
            AuthKind::Bearer => {
                let kept = match kept {
                    Some(AuthConfig::Bearer { token }) => Some(token.clone()),
                    _ => None,
                };
                let token = secret(&a.bearer_token).or(kept);
                if token.is_none() {
                    errs.push(
                        "auth.bearer_token",
                        "is required with auth type bearer: give the token the registry issued",
                    );
                }
                token.map(|token| AuthConfig::Bearer { token })
            }
            AuthKind::Basic => {
                let username = opt(&a.username);
                match &username {
                    None => errs.push(
                        "auth.username",
                        "is required with auth type basic: give the user name the registry knows",
                    ),
                    Some(u) if u.contains(':') => errs.push(
                        "auth.username",
                        "must not contain ':' (HTTP Basic cannot encode it): use another user name",
                    ),
                    Some(_) => {}
                }
                let kept = match kept {
                    Some(AuthConfig::Basic { password, .. }) => Some(password.clone()),
                    _ => None,
                };
                let password = secret(&a.password).or(kept);
                if password.is_none() {
                    errs.push(
                        "auth.password",
                        "is required with auth type basic: give the password of that user",
                    );
                }
                Some(AuthConfig::Basic {
                    username: username?,
                    password: password?,
                })
            }
            AuthKind::OAuth2 => {
                let token_url = opt(&a.token_url);
                match &token_url {
                    None => errs.push(
                        "auth.token_url",
                        "is required with auth type oauth2: use e.g. https://crvs.example.org/oauth2/client/token",
                    ),
                    Some(u) => check_url("auth.token_url", u, errs),
                }
                let client_id = opt(&a.client_id);
                if client_id.is_none() {
                    errs.push(
                        "auth.client_id",
                        "is required with auth type oauth2: give the client id the registry issued",
                    );
                }
                let kept = match kept {
                    Some(AuthConfig::OAuth2(o)) => Some(o.client_secret.clone()),
                    _ => None,
                };
                let client_secret = secret(&a.client_secret).or(kept);
                if client_secret.is_none() {
                    errs.push(
                        "auth.client_secret",
                        "is required with auth type oauth2: give the client secret issued with the client id",
                    );
                }
                let credential_location = match opt(&a.credential_location) {
                    None => CredentialLocation::Body,
                    Some(s) => parse_or_push("auth.credential_location", s.parse(), errs)
                        .unwrap_or_default(),
                };
                Some(AuthConfig::OAuth2(OAuth2Config {
                    token_url: token_url?,
                    client_id: client_id?,
                    client_secret: client_secret?,
                    scope: opt(&a.scope),
                    credential_location,
                }))
            }
        }
    }
}

fn parse_or_push<T>(
    field: &'static str,
    parsed: Result<T, names::UnknownName>,
    errs: &mut ValidationErrors,
) -> Option<T> {
    parsed.map_err(|e| errs.push(field, e.to_string())).ok()
}

impl SourceDocument {
    /// `limits.*`, each a whole number in range.
    fn limit_settings(&self, errs: &mut ValidationErrors) -> LimitSettings {
        let l = &self.limits;
        let rate = 1..=LimitSettings::MAX_RATE;
        LimitSettings {
            max_concurrency: whole(
                errs,
                "limits.max_concurrency",
                &l.max_concurrency,
                1..=LimitSettings::MAX_CONCURRENCY,
                "a number of calls, e.g. 4",
            ),
            rate_per_sec: whole(
                errs,
                "limits.rate_per_sec",
                &l.rate_per_sec,
                rate.clone(),
                "requests per second, e.g. 50",
            ),
            burst: whole(
                errs,
                "limits.burst",
                &l.burst,
                rate,
                "a number of requests, e.g. 10",
            ),
            max_batch_size: whole(
                errs,
                "limits.max_batch_size",
                &l.max_batch_size,
                1..=LimitSettings::MAX_BATCH_SIZE,
                "identifiers per envelope, e.g. 100",
            ),
            breaker_failures: whole(
                errs,
                "limits.breaker_failures",
                &l.breaker_failures,
                0..=LimitSettings::MAX_BREAKER_FAILURES,
                "a count of failures, e.g. 5 (0: no breaker)",
            ),
            breaker_cooldown_secs: whole(
                errs,
                "limits.breaker_cooldown_secs",
                &l.breaker_cooldown_secs,
                1..=LimitSettings::MAX_BREAKER_COOLDOWN_SECS,
                "a number of seconds, e.g. 30",
            ),
        }
    }

    /// `recovery.*`, each a whole number of seconds in range; the give-up time not shorter than
    /// the expected callback time.
    fn recovery_settings(&self, errs: &mut ValidationErrors) -> RecoverySettings {
        let d = RecoverySettings::default();
        let r = &self.recovery;
        let max = RecoverySettings::MAX_SECS;
        let mut secs = |path, v: &Option<String>, default: u32, example| {
            whole(errs, path, v, 1..=max, example).unwrap_or(default)
        };
        let out = RecoverySettings {
            callback_within_secs: secs(
                "recovery.callback_within_secs",
                &r.callback_within_secs,
                d.callback_within_secs,
                "seconds, e.g. 30",
            ),
            poll_interval_secs: secs(
                "recovery.poll_interval_secs",
                &r.poll_interval_secs,
                d.poll_interval_secs,
                "seconds, e.g. 30",
            ),
            give_up_after_secs: secs(
                "recovery.give_up_after_secs",
                &r.give_up_after_secs,
                d.give_up_after_secs,
                "seconds, e.g. 3600",
            ),
        };
        if out.give_up_after_secs < out.callback_within_secs {
            errs.push(
                "recovery.give_up_after_secs",
                format!(
                    "must be at least recovery.callback_within_secs ({}): a request is given up only after its result was due",
                    out.callback_within_secs
                ),
            );
        }
        out
    }
}

/// A whole number in `range` from an optional text field; `None` when not given (or wrong,
/// with the error recorded naming `field` and the fix).
fn whole(
    errs: &mut ValidationErrors,
    field: &'static str,
    value: &Option<String>,
    range: std::ops::RangeInclusive<u32>,
    example: &str,
) -> Option<u32> {
    let s = opt(value)?;
    match s.parse::<u32>() {
        Ok(n) if range.contains(&n) => Some(n),
        Ok(_) => {
            errs.push(
                field,
                format!(
                    "must be from {} to {}: use {example}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
        Err(_) => {
            errs.push(field, format!("{s:?} is not a whole number: use {example}"));
            None
        }
    }
}

fn opt(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn secret(s: &Option<SecretString>) -> Option<SecretString> {
    s.as_ref()
        .filter(|s| {
            let v = s.expose_secret();
            !v.trim().is_empty() && v != MASKED
        })
        .cloned()
}

fn check_code(code: &str, errs: &mut ValidationErrors) {
    if code.is_empty() {
        errs.push(
            "code",
            "is required: use a short lowercase code such as crvs_main",
        );
        return;
    }
    if code.len() > 64 {
        errs.push("code", "must be at most 64 characters: shorten it");
    }
    if !code
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        let suggestion: String = code
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        errs.push(
            "code",
            format!("must contain only lowercase letters a-z, digits and '_': use {suggestion}"),
        );
    }
}

fn check_url(field: &'static str, value: &str, errs: &mut ValidationErrors) {
    match Url::parse(value) {
        // `crvs.example.org/api`: the scheme is missing; suggest the value with it.
        Err(url::ParseError::RelativeUrlWithoutBase)
            if Url::parse(&format!("https://{value}")).is_ok_and(|u| u.host_str().is_some()) =>
        {
            errs.push(
                field,
                format!("has no scheme: use https://{}", value.trim_end_matches('/')),
            );
        }
        Err(e) => errs.push(
            field,
            format!("is not a valid URL ({e}): use e.g. https://registry.example.org/api"),
        ),
        Ok(u) => {
            if u.scheme() != "http" && u.scheme() != "https" {
                errs.push(
                    field,
                    format!("must start with http:// or https://, not {}://", u.scheme()),
                );
            } else if u.host_str().is_none_or(str::is_empty) {
                errs.push(field, "has no host: use e.g. https://registry.example.org");
            }
            if !u.username().is_empty() || u.password().is_some() {
                errs.push(
                    field,
                    "must not contain credentials (user:password@): use the auth settings instead",
                );
            }
            if u.query().is_some() || u.fragment().is_some() {
                errs.push(
                    field,
                    "must not have a query string or fragment: remove the '?…'/'#…' part",
                );
            }
        }
    }
}

fn path(
    field: &'static str,
    value: &Option<String>,
    default: String,
    errs: &mut ValidationErrors,
) -> String {
    let Some(p) = opt(value) else { return default };
    if !p.starts_with('/') {
        errs.push(
            field,
            format!("must start with '/': use /{}", p.trim_start_matches('/')),
        );
    } else if p.contains(char::is_whitespace) || p.contains('?') || p.contains('#') {
        errs.push(
            field,
            format!("must be a plain path without spaces, '?' or '#': use e.g. {default}"),
        );
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::document::{AuthDocument, TlsDocument};

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    fn oauth2_doc() -> SourceDocument {
        SourceDocument {
            code: s("crvs_main"),
            name: s("National CRVS"),
            registry_type: s("crvs"),
            base_url: s("https://crvs.example.org/api/v1"),
            auth: AuthDocument {
                kind: s("oauth2"),
                token_url: s("https://crvs.example.org/oauth2/client/token"),
                client_id: s("spmis"),
                client_secret: Some(SecretString::from("s3cr3t-value")),
                ..AuthDocument::default()
            },
            sender_id: s("spmis.example.org"),
            ..SourceDocument::default()
        }
    }

    fn with(f: impl FnOnce(&mut SourceDocument)) -> SourceDocument {
        let mut d = oauth2_doc();
        f(&mut d);
        d
    }

    #[test]
    fn new_sources_get_a_callback_secret_that_edits_keep_and_never_show() {
        let src = oauth2_doc().validate().unwrap();
        let secret = src
            .callbacks
            .secret
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned();
        assert_eq!(secret.len(), 43, "32 random bytes, base64url");
        assert!(!src.callbacks.accept_unauthenticated, "off by default");
        let other = oauth2_doc().validate().unwrap();
        assert_ne!(
            other.callbacks.secret.as_ref().unwrap().expose_secret(),
            secret
        );
        let doc = SourceDocument::from_source(&src);
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains(&secret), "{text}");
        assert!(!format!("{src:?}").contains(&secret));
        assert_eq!(
            doc.callbacks.secret.as_ref().unwrap().expose_secret(),
            MASKED
        );
        let kept = doc.validate_update(&src).unwrap();
        assert_eq!(kept.callbacks.secret.unwrap().expose_secret(), secret);
        // A secret given on purpose must be long and URL-safe.
        let errs = with(|d| d.callbacks.secret = Some(SecretString::from("short/one")))
            .validate()
            .unwrap_err();
        assert!(errs.has("callbacks.secret"), "{errs}");
        // The URL the registry posts to carries it; without a callback URI there is none.
        assert!(src.callback_url_with_secret().is_none());
        let mut with_uri = src.clone();
        with_uri.callback_uri = s("https://spmis.example.org/callback/crvs_main/");
        assert_eq!(
            with_uri.callback_url_with_secret().unwrap(),
            format!("https://spmis.example.org/callback/crvs_main/{secret}")
        );
        let new_url = with_uri.regenerate_callback_secret().unwrap();
        assert!(!new_url.ends_with(&secret));
        assert!(
            with_uri
                .callbacks
                .secret_matches(new_url.rsplit('/').next().unwrap())
        );
        assert!(!with_uri.callbacks.secret_matches(&secret));
    }

    #[test]
    fn limits_are_validated_by_field_and_round_trip_through_the_document() {
        let errs = with(|d| {
            d.limits.max_concurrency = s("0");
            d.limits.rate_per_sec = s("fast");
            d.limits.burst = s("200000");
            d.limits.max_batch_size = s("1001");
            d.limits.breaker_failures = s("-1");
            d.limits.breaker_cooldown_secs = s("0");
        })
        .validate()
        .unwrap_err();
        for f in [
            "limits.max_concurrency",
            "limits.rate_per_sec",
            "limits.burst",
            "limits.max_batch_size",
            "limits.breaker_failures",
            "limits.breaker_cooldown_secs",
        ] {
            assert!(errs.has(f), "{f}: {errs}");
        }
        let src = with(|d| {
            d.limits.max_concurrency = s("8");
            d.limits.rate_per_sec = s("50");
            d.limits.max_batch_size = s("250");
            d.limits.breaker_failures = s("0");
        })
        .validate()
        .unwrap();
        assert_eq!(src.limits.concurrency(), 8);
        assert_eq!(src.limits.batch_size(), 250);
        assert_eq!(src.limits.breaker_threshold(), 0);
        assert_eq!(src.limits.burst, None, "the burst defaults to the rate");
        let doc = SourceDocument::from_source(&src);
        assert_eq!(doc.text("limits.rate_per_sec"), Some(Some("50")));
        assert_eq!(doc.validate_update(&src).unwrap().limits, src.limits);
        // Defaults when unset.
        let plain = oauth2_doc().validate().unwrap();
        assert_eq!(
            plain.limits.concurrency(),
            LimitSettings::DEFAULT_CONCURRENCY
        );
        assert_eq!(plain.limits.batch_size(), LimitSettings::DEFAULT_BATCH_SIZE);
    }

    #[test]
    fn a_url_without_scheme_gets_one_valid_suggestion() {
        let errs = errors_of(with(|d| d.base_url = s("crvs.example.org/api/")));
        let on_base: Vec<_> = errs
            .errors()
            .iter()
            .filter(|e| e.field == "base_url")
            .collect();
        assert_eq!(on_base.len(), 1, "{errs}");
        assert_eq!(
            on_base[0].message,
            "has no scheme: use https://crvs.example.org/api"
        );
    }

    #[test]
    fn a_new_source_with_a_callback_uri_names_its_registry() {
        let errs = with(|d| d.callback_uri = s("https://spmis.example.org/callback/crvs_main"))
            .validate()
            .unwrap_err();
        assert!(errs.has("receiver_id"), "{errs}");
        assert!(errs.to_string().contains("header.sender_id"), "{errs}");
        let ok = with(|d| {
            d.callback_uri = s("https://spmis.example.org/callback/crvs_main");
            d.receiver_id = s("crvs.example.org");
        })
        .validate()
        .unwrap();
        // Sources stored before the rule are not forced to add one on an edit.
        let mut legacy = ok.clone();
        legacy.receiver_id = None;
        let doc = SourceDocument::from_source(&legacy);
        assert!(doc.validate_update(&legacy).is_ok());
    }

    fn errors_of(doc: SourceDocument) -> ValidationErrors {
        doc.validate().expect_err("document should be invalid")
    }

    fn message(errs: &ValidationErrors, field: &str) -> String {
        errs.errors()
            .iter()
            .find(|e| e.field == field)
            .unwrap_or_else(|| panic!("no error for {field}: {errs}"))
            .to_string()
    }

    #[test]
    fn valid_oauth2_source_gets_defaults() {
        let s = oauth2_doc().validate().unwrap();
        assert_eq!(s.code, "crvs_main");
        assert_eq!(s.registry_type, RegistryType::Crvs);
        assert_eq!(s.state, SourceState::Draft);
        assert!(s.active);
        assert_eq!(s.timeout_secs, 30);
        assert!(s.tls.verify);
        assert_eq!(s.endpoints, Endpoints::default());
        assert_eq!(s.reply_signature_policy, SignaturePolicy::Off);
        assert_eq!(s.effective_receiver_id(), "https://crvs.example.org/api/v1");
        let AuthConfig::OAuth2(o) = &s.auth else {
            panic!("not oauth2")
        };
        assert_eq!(o.credential_location, CredentialLocation::Body);
        assert_eq!(o.client_secret.expose_secret(), "s3cr3t-value");
        assert!(!format!("{s:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn empty_document_reports_every_required_field() {
        let errs = errors_of(SourceDocument::default());
        for f in ["code", "name", "registry_type", "base_url"] {
            assert!(errs.has(f), "{f} missing from {errs}");
        }
    }

    #[test]
    fn messages_name_fields_not_cli_flags() {
        // Every rule that can fire at once, and a few more: no message speaks of flags.
        let docs = [
            SourceDocument::default(),
            with(|d| {
                d.auth = AuthDocument {
                    kind: s("bearer"),
                    client_id: s("x"),
                    ..AuthDocument::default()
                };
                d.sender_id = None;
                d.profile = s("opencrvs");
                d.registry_type = s("dr");
            }),
            with(|d| d.auth.kind = s("basic")),
        ];
        for doc in docs {
            for e in errors_of(doc).errors() {
                assert!(!e.message.contains("--"), "{e}");
                assert!(
                    SourceDocument::is_field(e.field),
                    "{} is not a path",
                    e.field
                );
            }
        }
    }

    #[test]
    fn code_rules() {
        let m = message(&errors_of(with(|d| d.code = s("CRVS-Main"))), "code");
        assert!(m.contains("use crvs_main"), "{m}");
        assert!(errors_of(with(|d| d.code = s("crvs é"))).has("code"));
        let m = message(&errors_of(with(|d| d.code = Some("a".repeat(65)))), "code");
        assert!(m.contains("at most 64"));
    }

    #[test]
    fn update_refuses_a_new_code_and_rename_allows_it() {
        let existing = oauth2_doc().validate().unwrap();
        let mut edit = SourceDocument::from_source(&existing);
        edit.code = s("other");
        let errs = edit.clone().validate_update(&existing).unwrap_err();
        assert!(
            message(&errs, "code").contains("keep \"crvs_main\""),
            "{errs}"
        );
        assert_eq!(edit.validate_rename(&existing).unwrap().code, "other");
        // Without a code (or with the same one) the code stays.
        let mut edit = SourceDocument::from_source(&existing);
        edit.code = None;
        assert_eq!(edit.validate_update(&existing).unwrap().code, "crvs_main");
    }

    #[test]
    fn name_too_long() {
        assert!(errors_of(with(|d| d.name = Some("n".repeat(201)))).has("name"));
    }

    #[test]
    fn registry_type_must_be_known() {
        let m = message(
            &errors_of(with(|d| d.registry_type = s("civil"))),
            "registry_type",
        );
        assert!(m.contains("crvs, dr, ibr, social, fr"), "{m}");
    }

    #[test]
    fn base_url_rules() {
        assert_eq!(
            message(
                &errors_of(with(|d| d.base_url = s("https://crvs.example.org/api/v1/"))),
                "base_url"
            ),
            "base_url must not end with '/': use https://crvs.example.org/api/v1"
        );
        for bad in [
            "ftp://crvs.example.org",
            "crvs.example.org/api",
            "https://user:pw@crvs.example.org",
            "https://crvs.example.org/api?key=1",
        ] {
            assert!(
                errors_of(with(|d| d.base_url = s(bad))).has("base_url"),
                "{bad} accepted"
            );
        }
        with(|d| d.base_url = s("http://127.0.0.1:8080"))
            .validate()
            .unwrap();
    }

    #[test]
    fn auth_type_must_be_known() {
        let m = message(
            &errors_of(with(|d| d.auth.kind = s("api_key"))),
            "auth.type",
        );
        assert!(m.contains("none, bearer, basic, oauth2"), "{m}");
    }

    #[test]
    fn oauth2_requires_token_url_client_id_secret() {
        let errs = errors_of(with(|d| {
            d.auth.token_url = None;
            d.auth.client_id = s("  ");
            d.auth.client_secret = Some(SecretString::from(MASKED));
        }));
        for f in ["auth.token_url", "auth.client_id", "auth.client_secret"] {
            assert!(errs.has(f), "{f} missing from {errs}");
        }
        assert!(errors_of(with(|d| d.auth.token_url = s("not a url"))).has("auth.token_url"));
    }

    #[test]
    fn credential_location_values() {
        for (v, want) in [
            ("body", CredentialLocation::Body),
            ("basic", CredentialLocation::Basic),
            ("query", CredentialLocation::Query),
            ("json", CredentialLocation::Json),
        ] {
            let AuthConfig::OAuth2(o) = with(|d| d.auth.credential_location = s(v))
                .validate()
                .unwrap()
                .auth
            else {
                panic!()
            };
            assert_eq!(o.credential_location, want);
        }
        assert!(
            errors_of(with(|d| d.auth.credential_location = s("header")))
                .has("auth.credential_location")
        );
    }

    #[test]
    fn bearer_and_basic_require_their_secrets() {
        let mut d = oauth2_doc();
        d.auth = AuthDocument {
            kind: s("bearer"),
            ..AuthDocument::default()
        };
        assert!(errors_of(d.clone()).has("auth.bearer_token"));
        d.auth.bearer_token = Some(SecretString::from("tok"));
        assert!(matches!(
            d.validate().unwrap().auth,
            AuthConfig::Bearer { .. }
        ));

        let mut d = oauth2_doc();
        d.auth = AuthDocument {
            kind: s("basic"),
            ..AuthDocument::default()
        };
        let errs = errors_of(d.clone());
        assert!(
            errs.has("auth.username") && errs.has("auth.password"),
            "{errs}"
        );
        d.auth.username = s("a:b");
        d.auth.password = Some(SecretString::from("pw"));
        assert!(message(&errors_of(d.clone()), "auth.username").contains("':'"));
        d.auth.username = s("ab");
        assert!(matches!(
            d.validate().unwrap().auth,
            AuthConfig::Basic { .. }
        ));
    }

    #[test]
    fn fields_of_another_auth_type_are_rejected() {
        let errs = errors_of(with(|d| {
            d.auth.bearer_token = Some(SecretString::from("tok"));
            d.auth.username = s("u");
        }));
        assert!(
            message(&errs, "auth.bearer_token").contains("set the auth type to bearer"),
            "{errs}"
        );
        assert!(errs.has("auth.username"));
        let errs = errors_of(with(|d| d.auth.kind = s("none")));
        for f in ["auth.client_id", "auth.token_url", "auth.client_secret"] {
            assert!(errs.has(f), "{f}: {errs}");
        }
    }

    #[test]
    fn sender_id_required_when_authenticated_only() {
        let m = message(&errors_of(with(|d| d.sender_id = None)), "sender_id");
        assert!(m.contains("authenticated"));
        let d = with(|d| {
            d.auth = AuthDocument::default();
            d.sender_id = None;
        });
        assert!(matches!(d.validate().unwrap().auth, AuthConfig::None));
    }

    #[test]
    fn callback_and_jwks_urls_are_checked() {
        let errs = errors_of(with(|d| {
            d.callback_uri = s("callback");
            d.registry_jwks_url = s("ftp://x");
        }));
        assert!(errs.has("callback_uri") && errs.has("registry_jwks_url"));
    }

    #[test]
    fn endpoint_paths_must_be_paths() {
        let errs = errors_of(with(|d| {
            d.endpoints.sync_search = s("registry/sync/search");
            d.endpoints.search = s("/registry/search?x=1");
            d.endpoints.subscribe = s("/sub");
        }));
        assert!(message(&errs, "endpoints.sync_search").contains("use /registry/sync/search"));
        assert!(errs.has("endpoints.search"));
        assert!(!errs.has("endpoints.subscribe"));
    }

    #[test]
    fn timeout_rules() {
        for bad in ["0", "-1", "abc", "3601"] {
            assert!(
                errors_of(with(|d| d.timeout_secs = s(bad))).has("timeout_secs"),
                "{bad} accepted"
            );
        }
        let v = with(|d| d.timeout_secs = s("5")).validate().unwrap();
        assert_eq!(v.timeout_secs, 5);
    }

    #[test]
    fn mtls_cert_and_key_go_together() {
        let errs = errors_of(with(|d| {
            d.tls = TlsDocument {
                client_cert_file: s("/etc/dci/client.pem"),
                ..TlsDocument::default()
            }
        }));
        assert!(errs.has("tls.client_key_file"));
        let errs = errors_of(with(|d| d.tls.client_key_file = s("/etc/dci/client.key")));
        assert!(errs.has("tls.client_cert_file"));
    }

    #[test]
    fn signature_policy_rules() {
        assert!(
            errors_of(with(|d| d.reply_signature_policy = s("always")))
                .has("reply_signature_policy")
        );
        let d = with(|d| d.reply_signature_policy = s("require"));
        assert!(
            message(&errors_of(d.clone()), "reply_signature_policy").contains("registry_jwks_url")
        );
        let d = SourceDocument {
            registry_jwks_url: s("https://crvs.example.org/.well-known/jwks.json"),
            ..d
        };
        assert_eq!(
            d.validate().unwrap().reply_signature_policy,
            SignaturePolicy::Require
        );
        assert!(
            errors_of(with(|d| d.registry_public_keys = vec!["not a key".into()]))
                .has("registry_public_keys")
        );
    }

    #[test]
    fn update_keeps_secret_and_identity_when_secret_masked() {
        let existing = oauth2_doc().validate().unwrap();
        let mut edit = SourceDocument::from_source(&existing);
        edit.name = s("Renamed");
        let updated = edit.validate_update(&existing).unwrap();
        assert_eq!(updated.id, existing.id);
        assert_eq!(updated.created_at, existing.created_at);
        assert_eq!(updated.name, "Renamed");
        let AuthConfig::OAuth2(o) = &updated.auth else {
            panic!()
        };
        assert_eq!(o.client_secret.expose_secret(), "s3cr3t-value");

        // Switching auth type does not carry a secret over.
        let mut edit = SourceDocument::from_source(&existing);
        edit.auth.kind = s("bearer");
        edit.clear_auth_settings();
        assert!(
            edit.validate_update(&existing)
                .unwrap_err()
                .has("auth.bearer_token")
        );
    }

    #[test]
    fn from_source_round_trips_through_json() {
        let d = with(|d| {
            d.auth.scope = s("registry.read");
            d.auth.credential_location = s("query");
            d.timeout_secs = s("12");
            d.notes = s("note");
            d.profile = s("opencrvs-1.3");
            d.sender_id = s("https://spmis.example.org");
        });
        let src = d.validate().unwrap();
        let json = serde_json::to_string(&SourceDocument::from_source(&src)).unwrap();
        let back: SourceDocument = serde_json::from_str(&json).unwrap();
        let again = back.validate_update(&src).unwrap();
        assert_eq!(again.timeout_secs, 12);
        assert_eq!(again.notes, "note");
        assert_eq!(again.profile, src.profile);
        let AuthConfig::OAuth2(o) = &again.auth else {
            panic!()
        };
        assert_eq!(o.scope.as_deref(), Some("registry.read"));
        assert_eq!(o.credential_location, CredentialLocation::Query);
        assert_eq!(o.client_secret.expose_secret(), "s3cr3t-value");
    }

    #[test]
    fn redacted_json_masks_every_secret() {
        let oauth = oauth2_doc().validate().unwrap();
        let mut bearer = oauth2_doc();
        bearer.auth = AuthDocument {
            kind: s("bearer"),
            bearer_token: Some(SecretString::from("bearer-plain-1")),
            ..AuthDocument::default()
        };
        let mut basic = oauth2_doc();
        basic.auth = AuthDocument {
            kind: s("basic"),
            username: s("user"),
            password: Some(SecretString::from("basic-plain-2")),
            ..AuthDocument::default()
        };
        for (source, secret_key) in [
            (oauth, "client_secret"),
            (bearer.validate().unwrap(), "bearer_token"),
            (basic.validate().unwrap(), "password"),
        ] {
            let json = source.to_redacted_json();
            assert_eq!(json["auth"][secret_key], MASKED);
            let text = json.to_string();
            for plain in ["s3cr3t-value", "bearer-plain-1", "basic-plain-2"] {
                assert!(!text.contains(plain), "{plain} in {text}");
                assert!(!format!("{source:?}").contains(plain));
            }
        }
    }

    #[test]
    fn errors_display_one_per_line_serialize_and_point() {
        let errs = errors_of(SourceDocument::default());
        assert_eq!(errs.to_string().lines().count(), errs.errors().len());
        let json = serde_json::to_value(&errs).unwrap();
        assert_eq!(json[0]["field"], "code");
        let errs = errors_of(with(|d| d.auth.client_id = None));
        let e = &errs.errors()[0];
        assert_eq!(e.pointer(), "/auth/client_id");
        let relabeled = errs.relabel(|f| (f == "auth.client_id").then(|| "--client-id".into()));
        assert!(relabeled.to_string().starts_with("--client-id is required"));
        assert_eq!(pointer_of("a~b/c"), "/a~0b~1c");
    }
}
