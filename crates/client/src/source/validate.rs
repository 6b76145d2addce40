//! Turning what a user typed (CLI flags, a form, an import file) into a [`DataSource`].
//!
//! Every rule reports the field it concerns and how to fix it, and all rules run, so a form or the
//! CLI can show every mistake at once. Uniqueness of the code is not checked here: the database
//! enforces it.

use std::fmt;
use std::path::PathBuf;

use dci_protocol::RegistryType;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use super::{
    AuthConfig, AuthKind, CredentialLocation, DataSource, Endpoints, OAuth2Config, SignaturePolicy,
    SourceState, TlsSettings,
};

/// What a user submits for a data source: strings as typed, secrets as `SecretString`.
///
/// Empty strings count as "not given". A secret equal to [`MASKED`] also counts as "not given",
/// so a form can round-trip the mask; on an update a missing secret keeps the stored one.
#[derive(Debug, Clone, Default)]
pub struct DataSourceInput {
    /// Unique lowercase code, `[a-z0-9_]`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// `crvs`, `dr`, `ibr`, `social` or `fr`.
    pub registry_type: String,
    /// `http(s)://host[:port][/path]`, no trailing slash.
    pub base_url: String,
    /// `none`, `bearer`, `basic` or `oauth2` (default `none`).
    pub auth: Option<String>,
    /// Bearer token (auth `bearer`).
    pub bearer_token: Option<SecretString>,
    /// Basic user name (auth `basic`).
    pub basic_username: Option<String>,
    /// Basic password (auth `basic`).
    pub basic_password: Option<SecretString>,
    /// OAuth2 token endpoint (auth `oauth2`).
    pub token_url: Option<String>,
    /// OAuth2 client id (auth `oauth2`).
    pub client_id: Option<String>,
    /// OAuth2 client secret (auth `oauth2`).
    pub client_secret: Option<SecretString>,
    /// OAuth2 scope (auth `oauth2`).
    pub scope: Option<String>,
    /// `body` (default), `basic`, `query` or `json` (auth `oauth2`).
    pub credential_location: Option<String>,
    /// Our `sender_id` (required unless auth is `none`).
    pub sender_id: Option<String>,
    /// The registry's `receiver_id` (default: the base URL).
    pub receiver_id: Option<String>,
    /// Base URL of our callback routes.
    pub callback_uri: Option<String>,
    /// Sync search path.
    pub sync_search_path: Option<String>,
    /// Async search path.
    pub search_path: Option<String>,
    /// Subscribe path.
    pub subscribe_path: Option<String>,
    /// Unsubscribe path.
    pub unsubscribe_path: Option<String>,
    /// Async txn status path.
    pub txn_status_path: Option<String>,
    /// Sync txn status path.
    pub sync_txn_status_path: Option<String>,
    /// Verify the registry's TLS certificate (default `true`).
    pub tls_verify: Option<bool>,
    /// Extra CA bundle (PEM).
    pub ca_file: Option<String>,
    /// mTLS client certificate (PEM).
    pub client_cert_file: Option<String>,
    /// mTLS client key (PEM).
    pub client_key_file: Option<String>,
    /// Timeout in seconds, as typed (default 30).
    pub timeout_secs: Option<String>,
    /// Signing key reference.
    pub signing_key_id: Option<String>,
    /// `off` (default), `if-present` or `require`.
    pub reply_signature_policy: Option<String>,
    /// Registry public keys (PEM SPKI).
    pub registry_public_keys: Vec<String>,
    /// Registry JWKS URL.
    pub registry_jwks_url: Option<String>,
    /// `standard` (default) or an OpenCRVS profile (`opencrvs`, `opencrvs-1.5`, `opencrvs-1.3`).
    pub profile: Option<String>,
    /// Enabled (default `true`).
    pub active: Option<bool>,
    /// Free-form notes.
    pub notes: Option<String>,
}

/// How a set secret is shown everywhere: in output, JSON and forms.
pub const MASKED: &str = "********";

/// One failed rule: the field (as named in configuration) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field, e.g. `base_url`.
    pub field: &'static str,
    /// What is wrong and how to fix it, e.g. `must not end with '/': use https://…`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

/// Every rule a submission broke, in field order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    /// The errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(FieldError {
            field,
            message: message.into(),
        });
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

impl DataSourceInput {
    /// The input that reproduces `source`, with every secret left out (so an update keeps them).
    pub fn from_source(source: &DataSource) -> DataSourceInput {
        let mut input = DataSourceInput {
            code: source.code.clone(),
            name: source.name.clone(),
            registry_type: source.registry_type.as_str().to_owned(),
            base_url: source.base_url.clone(),
            auth: Some(source.auth.kind().as_str().to_owned()),
            sender_id: source.sender_id.clone(),
            receiver_id: source.receiver_id.clone(),
            callback_uri: source.callback_uri.clone(),
            sync_search_path: Some(source.endpoints.sync_search.clone()),
            search_path: Some(source.endpoints.search.clone()),
            subscribe_path: Some(source.endpoints.subscribe.clone()),
            unsubscribe_path: Some(source.endpoints.unsubscribe.clone()),
            txn_status_path: Some(source.endpoints.txn_status.clone()),
            sync_txn_status_path: Some(source.endpoints.sync_txn_status.clone()),
            tls_verify: Some(source.tls.verify),
            ca_file: source.tls.ca_file.as_ref().map(|p| p.display().to_string()),
            client_cert_file: source
                .tls
                .client_cert_file
                .as_ref()
                .map(|p| p.display().to_string()),
            client_key_file: source
                .tls
                .client_key_file
                .as_ref()
                .map(|p| p.display().to_string()),
            timeout_secs: Some(source.timeout_secs.to_string()),
            signing_key_id: source.signing_key_id.clone(),
            reply_signature_policy: Some(source.reply_signature_policy.as_str().to_owned()),
            registry_public_keys: source.registry_public_keys.clone(),
            registry_jwks_url: source.registry_jwks_url.clone(),
            profile: Some(source.profile.as_str().to_owned()),
            active: Some(source.active),
            notes: Some(source.notes.clone()).filter(|n| !n.is_empty()),
            ..DataSourceInput::default()
        };
        match &source.auth {
            AuthConfig::None | AuthConfig::Bearer { .. } => {}
            AuthConfig::Basic { username, .. } => input.basic_username = Some(username.clone()),
            AuthConfig::OAuth2(o) => {
                input.token_url = Some(o.token_url.clone());
                input.client_id = Some(o.client_id.clone());
                input.scope = o.scope.clone();
                input.credential_location = Some(o.credential_location.as_str().to_owned());
            }
        }
        input
    }

    /// Clears the fields that belong to one auth type (used when switching auth types).
    pub fn clear_auth_fields(&mut self) {
        self.bearer_token = None;
        self.basic_username = None;
        self.basic_password = None;
        self.token_url = None;
        self.client_id = None;
        self.client_secret = None;
        self.scope = None;
        self.credential_location = None;
    }

    /// Validates a new data source: a fresh id, state `draft`, timestamps now.
    pub fn validate(self) -> Result<DataSource, ValidationErrors> {
        self.validate_inner(None)
    }

    /// Validates an edit of `existing`: keeps its id, state, test results and creation time, and
    /// keeps each stored secret that the input leaves out (when the auth type is unchanged).
    /// Whether the edit changed credentials (and so resets the state) is the store's decision.
    pub fn validate_update(self, existing: &DataSource) -> Result<DataSource, ValidationErrors> {
        self.validate_inner(Some(existing))
    }

    fn validate_inner(self, existing: Option<&DataSource>) -> Result<DataSource, ValidationErrors> {
        let mut errs = ValidationErrors::default();

        let code = self.code.trim().to_owned();
        check_code(&code, &mut errs);

        let name = self.name.trim().to_owned();
        if name.is_empty() {
            errs.push(
                "name",
                "is required: give a display name such as \"National CRVS\"",
            );
        } else if name.chars().count() > 200 {
            errs.push("name", "must be at most 200 characters: shorten it");
        }

        let registry_type = match given(&self.registry_type) {
            None => {
                errs.push(
                    "registry_type",
                    "is required: use one of crvs, dr, ibr, social, fr",
                );
                None
            }
            Some(s) => match s.parse::<RegistryType>() {
                Ok(r) => Some(r),
                Err(_) => {
                    errs.push(
                        "registry_type",
                        format!(
                            "{s:?} is not a registry type: use one of crvs, dr, ibr, social, fr"
                        ),
                    );
                    None
                }
            },
        };

        let base_url = self.base_url.trim().to_owned();
        if base_url.is_empty() {
            errs.push(
                "base_url",
                "is required: use e.g. https://crvs.example.org/api/v1",
            );
        } else {
            check_url("base_url", &base_url, &mut errs);
            if base_url.ends_with('/') {
                let trimmed = base_url.trim_end_matches('/');
                errs.push("base_url", format!("must not end with '/': use {trimmed}"));
            }
        }

        let auth_kind = match self.auth.as_deref().and_then(given) {
            None => Some(AuthKind::None),
            Some(s) => match s.to_ascii_lowercase().as_str() {
                "none" => Some(AuthKind::None),
                "bearer" => Some(AuthKind::Bearer),
                "basic" => Some(AuthKind::Basic),
                "oauth2" => Some(AuthKind::OAuth2),
                _ => {
                    errs.push(
                        "auth",
                        format!(
                            "{s:?} is not an auth type: use one of none, bearer, basic, oauth2"
                        ),
                    );
                    None
                }
            },
        };

        // Stored secrets that an edit may keep: only when the auth type stays the same.
        let kept = existing
            .map(|e| &e.auth)
            .filter(|a| Some(a.kind()) == auth_kind);
        let auth = auth_kind.and_then(|kind| self.build_auth(kind, kept, &mut errs));

        let sender_id = opt(&self.sender_id);
        if auth_kind.is_some_and(|k| k != AuthKind::None) && sender_id.is_none() {
            errs.push(
                "sender_id",
                "is required for an authenticated source: set our sender id as the registry knows it, e.g. --sender-id spmis.example.org",
            );
        }
        let receiver_id = opt(&self.receiver_id);
        let callback_uri = opt(&self.callback_uri);
        if let Some(u) = &callback_uri {
            check_url("callback_uri", u, &mut errs);
        }

        let defaults = Endpoints::default();
        let endpoints = Endpoints {
            sync_search: path(
                "sync_search_path",
                &self.sync_search_path,
                defaults.sync_search,
                &mut errs,
            ),
            search: path("search_path", &self.search_path, defaults.search, &mut errs),
            subscribe: path(
                "subscribe_path",
                &self.subscribe_path,
                defaults.subscribe,
                &mut errs,
            ),
            unsubscribe: path(
                "unsubscribe_path",
                &self.unsubscribe_path,
                defaults.unsubscribe,
                &mut errs,
            ),
            txn_status: path(
                "txn_status_path",
                &self.txn_status_path,
                defaults.txn_status,
                &mut errs,
            ),
            sync_txn_status: path(
                "sync_txn_status_path",
                &self.sync_txn_status_path,
                defaults.sync_txn_status,
                &mut errs,
            ),
        };

        let tls = TlsSettings {
            verify: self.tls_verify.unwrap_or(true),
            ca_file: opt(&self.ca_file).map(PathBuf::from),
            client_cert_file: opt(&self.client_cert_file).map(PathBuf::from),
            client_key_file: opt(&self.client_key_file).map(PathBuf::from),
        };
        match (&tls.client_cert_file, &tls.client_key_file) {
            (Some(_), None) => errs.push(
                "client_key_file",
                "is required with client_cert_file: give the PEM key of the mTLS certificate",
            ),
            (None, Some(_)) => errs.push(
                "client_cert_file",
                "is required with client_key_file: give the PEM certificate of the mTLS key",
            ),
            _ => {}
        }

        let timeout_secs = match self.timeout_secs.as_deref().and_then(given) {
            None => DataSource::DEFAULT_TIMEOUT_SECS,
            Some(s) => match s.parse::<u32>() {
                Ok(0) => {
                    errs.push("timeout", "must be greater than 0 seconds: use e.g. 30");
                    DataSource::DEFAULT_TIMEOUT_SECS
                }
                Ok(n) if n > 3600 => {
                    errs.push("timeout", "must be at most 3600 seconds: use e.g. 30");
                    DataSource::DEFAULT_TIMEOUT_SECS
                }
                Ok(n) => n,
                Err(_) => {
                    errs.push(
                        "timeout",
                        format!("{s:?} is not a whole number of seconds: use e.g. 30"),
                    );
                    DataSource::DEFAULT_TIMEOUT_SECS
                }
            },
        };

        let signing_key_id = opt(&self.signing_key_id);

        let reply_signature_policy = match self.reply_signature_policy.as_deref().and_then(given) {
            None => SignaturePolicy::Off,
            Some(s) => match s.to_ascii_lowercase().as_str() {
                "off" => SignaturePolicy::Off,
                "if-present" | "if_present" => SignaturePolicy::IfPresent,
                "require" => SignaturePolicy::Require,
                _ => {
                    errs.push(
                        "reply_signature_policy",
                        format!("{s:?} is not a policy: use one of off, if-present, require"),
                    );
                    SignaturePolicy::Off
                }
            },
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
                    "must each be a PEM public key (-----BEGIN PUBLIC KEY----- … -----END PUBLIC KEY-----): export the registry's key as SPKI PEM",
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
            Some(p) => match p.parse::<crate::registries::Profile>() {
                Ok(p) => p,
                Err(e) => {
                    errs.push("profile", e);
                    crate::registries::Profile::Standard
                }
            },
        };
        if profile.is_opencrvs() {
            if registry_type.is_some_and(|r| r != RegistryType::Crvs) {
                errs.push(
                    "profile",
                    "OpenCRVS profiles are for CRVS data sources: use --profile standard or --registry-type crvs",
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
            active: self.active.unwrap_or(true),
            notes: self.notes.map(|n| n.trim().to_owned()).unwrap_or_default(),
            state: existing.map_or(SourceState::Draft, |e| e.state),
            last_test_at: existing.and_then(|e| e.last_test_at),
            last_error: existing.and_then(|e| e.last_error.clone()),
            created_at: existing.map_or(now, |e| e.created_at),
            updated_at: now,
        })
    }

    fn build_auth(
        &self,
        kind: AuthKind,
        kept: Option<&AuthConfig>,
        errs: &mut ValidationErrors,
    ) -> Option<AuthConfig> {
        let only_with =
            |errs: &mut ValidationErrors, field: &'static str, set: bool, for_: &str| {
                if set {
                    errs.push(
                        field,
                        format!("is only used with auth {for_}: remove it or use --auth {for_}"),
                    );
                }
            };
        if kind != AuthKind::Bearer {
            only_with(
                errs,
                "bearer_token",
                secret(&self.bearer_token).is_some(),
                "bearer",
            );
        }
        if kind != AuthKind::Basic {
            only_with(
                errs,
                "basic_username",
                opt(&self.basic_username).is_some(),
                "basic",
            );
            only_with(
                errs,
                "basic_password",
                secret(&self.basic_password).is_some(),
                "basic",
            );
        }
        if kind != AuthKind::OAuth2 {
            only_with(errs, "token_url", opt(&self.token_url).is_some(), "oauth2");
            only_with(errs, "client_id", opt(&self.client_id).is_some(), "oauth2");
            only_with(
                errs,
                "client_secret",
                secret(&self.client_secret).is_some(),
                "oauth2",
            );
            only_with(errs, "scope", opt(&self.scope).is_some(), "oauth2");
            only_with(
                errs,
                "credential_location",
                opt(&self.credential_location).is_some(),
                "oauth2",
            );
        }
        match kind {
            AuthKind::None => Some(AuthConfig::None),
            AuthKind::Bearer => {
                let kept = match kept {
                    Some(AuthConfig::Bearer { token }) => Some(token.clone()),
                    _ => None,
                };
                let token = secret(&self.bearer_token).or(kept);
                if token.is_none() {
                    errs.push(
                        "bearer_token",
                        "is required with auth bearer: pass it on stdin with --secret-stdin",
                    );
                }
                token.map(|token| AuthConfig::Bearer { token })
            }
            AuthKind::Basic => {
                let username = opt(&self.basic_username);
                match &username {
                    None => errs.push(
                        "basic_username",
                        "is required with auth basic: set --basic-user",
                    ),
                    Some(u) if u.contains(':') => errs.push(
                        "basic_username",
                        "must not contain ':' (HTTP Basic cannot encode it): use another user name",
                    ),
                    Some(_) => {}
                }
                let kept = match kept {
                    Some(AuthConfig::Basic { password, .. }) => Some(password.clone()),
                    _ => None,
                };
                let password = secret(&self.basic_password).or(kept);
                if password.is_none() {
                    errs.push(
                        "basic_password",
                        "is required with auth basic: pass it on stdin with --secret-stdin",
                    );
                }
                Some(AuthConfig::Basic {
                    username: username?,
                    password: password?,
                })
            }
            AuthKind::OAuth2 => {
                let token_url = opt(&self.token_url);
                match &token_url {
                    None => errs.push(
                        "token_url",
                        "is required with auth oauth2: use e.g. https://crvs.example.org/oauth2/client/token",
                    ),
                    Some(u) => check_url("token_url", u, errs),
                }
                let client_id = opt(&self.client_id);
                if client_id.is_none() {
                    errs.push("client_id", "is required with auth oauth2: set --client-id");
                }
                let kept = match kept {
                    Some(AuthConfig::OAuth2(o)) => Some(o.client_secret.clone()),
                    _ => None,
                };
                let client_secret = secret(&self.client_secret).or(kept);
                if client_secret.is_none() {
                    errs.push(
                        "client_secret",
                        "is required with auth oauth2: pass it on stdin with --secret-stdin",
                    );
                }
                let credential_location = match opt(&self.credential_location) {
                    None => CredentialLocation::Body,
                    Some(s) => match s.to_ascii_lowercase().as_str() {
                        "body" => CredentialLocation::Body,
                        "basic" => CredentialLocation::Basic,
                        "query" => CredentialLocation::Query,
                        "json" => CredentialLocation::Json,
                        _ => {
                            errs.push(
                                "credential_location",
                                format!(
                                    "{s:?} is not a credential location: use one of body, basic, query, json"
                                ),
                            );
                            CredentialLocation::Body
                        }
                    },
                };
                Some(AuthConfig::OAuth2(OAuth2Config {
                    token_url: token_url?,
                    client_id: client_id?,
                    client_secret: client_secret?,
                    scope: opt(&self.scope),
                    credential_location,
                }))
            }
        }
    }
}

fn given(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

fn opt(s: &Option<String>) -> Option<String> {
    s.as_deref().and_then(given).map(str::to_owned)
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

    fn oauth2_input() -> DataSourceInput {
        DataSourceInput {
            code: "crvs_main".into(),
            name: "National CRVS".into(),
            registry_type: "crvs".into(),
            base_url: "https://crvs.example.org/api/v1".into(),
            auth: Some("oauth2".into()),
            token_url: Some("https://crvs.example.org/oauth2/client/token".into()),
            client_id: Some("spmis".into()),
            client_secret: Some(SecretString::from("s3cr3t-value")),
            sender_id: Some("spmis.example.org".into()),
            ..DataSourceInput::default()
        }
    }

    fn errors_of(input: DataSourceInput) -> ValidationErrors {
        input.validate().expect_err("input should be invalid")
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
        let s = oauth2_input().validate().unwrap();
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
    fn empty_input_reports_every_required_field() {
        let errs = errors_of(DataSourceInput::default());
        for f in ["code", "name", "registry_type", "base_url"] {
            assert!(errs.has(f), "{f} missing from {errs}");
        }
    }

    #[test]
    fn code_rules() {
        let mut i = oauth2_input();
        i.code = "CRVS-Main".into();
        let m = message(&errors_of(i), "code");
        assert!(m.contains("use crvs_main"), "{m}");

        let mut i = oauth2_input();
        i.code = "crvs é".into();
        assert!(errors_of(i).has("code"));

        let mut i = oauth2_input();
        i.code = "a".repeat(65);
        assert!(message(&errors_of(i), "code").contains("at most 64"));
    }

    #[test]
    fn name_too_long() {
        let mut i = oauth2_input();
        i.name = "n".repeat(201);
        assert!(errors_of(i).has("name"));
    }

    #[test]
    fn registry_type_must_be_known() {
        let mut i = oauth2_input();
        i.registry_type = "civil".into();
        assert!(message(&errors_of(i), "registry_type").contains("crvs, dr, ibr, social, fr"));
    }

    #[test]
    fn base_url_rules() {
        let mut i = oauth2_input();
        i.base_url = "https://crvs.example.org/api/v1/".into();
        assert_eq!(
            message(&errors_of(i), "base_url"),
            "base_url must not end with '/': use https://crvs.example.org/api/v1"
        );
        for bad in [
            "ftp://crvs.example.org",
            "crvs.example.org/api",
            "https://user:pw@crvs.example.org",
            "https://crvs.example.org/api?key=1",
        ] {
            let mut i = oauth2_input();
            i.base_url = bad.into();
            assert!(errors_of(i).has("base_url"), "{bad} accepted");
        }
        let mut i = oauth2_input();
        i.base_url = "http://127.0.0.1:8080".into();
        i.validate().unwrap();
    }

    #[test]
    fn auth_type_must_be_known() {
        let mut i = oauth2_input();
        i.auth = Some("api_key".into());
        assert!(message(&errors_of(i), "auth").contains("none, bearer, basic, oauth2"));
    }

    #[test]
    fn oauth2_requires_token_url_client_id_secret() {
        let mut i = oauth2_input();
        i.token_url = None;
        i.client_id = Some("  ".into());
        i.client_secret = Some(SecretString::from(MASKED));
        let errs = errors_of(i);
        for f in ["token_url", "client_id", "client_secret"] {
            assert!(errs.has(f), "{f} missing from {errs}");
        }
        let mut i = oauth2_input();
        i.token_url = Some("not a url".into());
        assert!(errors_of(i).has("token_url"));
    }

    #[test]
    fn credential_location_values() {
        for (s, want) in [
            ("body", CredentialLocation::Body),
            ("basic", CredentialLocation::Basic),
            ("query", CredentialLocation::Query),
            ("json", CredentialLocation::Json),
        ] {
            let mut i = oauth2_input();
            i.credential_location = Some(s.into());
            let AuthConfig::OAuth2(o) = i.validate().unwrap().auth else {
                panic!()
            };
            assert_eq!(o.credential_location, want);
        }
        let mut i = oauth2_input();
        i.credential_location = Some("header".into());
        assert!(errors_of(i).has("credential_location"));
    }

    #[test]
    fn bearer_and_basic_require_their_secrets() {
        let mut i = oauth2_input();
        i.clear_auth_fields();
        i.auth = Some("bearer".into());
        assert!(errors_of(i.clone()).has("bearer_token"));
        i.bearer_token = Some(SecretString::from("tok"));
        assert!(matches!(
            i.validate().unwrap().auth,
            AuthConfig::Bearer { .. }
        ));

        let mut i = oauth2_input();
        i.clear_auth_fields();
        i.auth = Some("basic".into());
        let errs = errors_of(i.clone());
        assert!(
            errs.has("basic_username") && errs.has("basic_password"),
            "{errs}"
        );
        i.basic_username = Some("a:b".into());
        i.basic_password = Some(SecretString::from("pw"));
        assert!(message(&errors_of(i.clone()), "basic_username").contains("':'"));
        i.basic_username = Some("ab".into());
        assert!(matches!(
            i.validate().unwrap().auth,
            AuthConfig::Basic { .. }
        ));
    }

    #[test]
    fn fields_of_another_auth_type_are_rejected() {
        let mut i = oauth2_input();
        i.bearer_token = Some(SecretString::from("tok"));
        i.basic_username = Some("u".into());
        let errs = errors_of(i);
        assert!(message(&errs, "bearer_token").contains("--auth bearer"));
        assert!(errs.has("basic_username"));
        let mut i = oauth2_input();
        i.auth = Some("none".into());
        let errs = errors_of(i);
        assert!(errs.has("client_id") && errs.has("token_url") && errs.has("client_secret"));
    }

    #[test]
    fn sender_id_required_when_authenticated_only() {
        let mut i = oauth2_input();
        i.sender_id = None;
        assert!(message(&errors_of(i), "sender_id").contains("authenticated"));
        let mut i = oauth2_input();
        i.clear_auth_fields();
        i.auth = None;
        i.sender_id = None;
        assert!(matches!(i.validate().unwrap().auth, AuthConfig::None));
    }

    #[test]
    fn callback_and_jwks_urls_are_checked() {
        let mut i = oauth2_input();
        i.callback_uri = Some("callback".into());
        i.registry_jwks_url = Some("ftp://x".into());
        let errs = errors_of(i);
        assert!(errs.has("callback_uri") && errs.has("registry_jwks_url"));
    }

    #[test]
    fn endpoint_paths_must_be_paths() {
        let mut i = oauth2_input();
        i.sync_search_path = Some("registry/sync/search".into());
        i.search_path = Some("/registry/search?x=1".into());
        i.subscribe_path = Some("/sub".into());
        let errs = errors_of(i);
        assert!(message(&errs, "sync_search_path").contains("use /registry/sync/search"));
        assert!(errs.has("search_path"));
        assert!(!errs.has("subscribe_path"));
    }

    #[test]
    fn timeout_rules() {
        for bad in ["0", "-1", "abc", "3601"] {
            let mut i = oauth2_input();
            i.timeout_secs = Some(bad.into());
            assert!(errors_of(i).has("timeout"), "{bad} accepted");
        }
        let mut i = oauth2_input();
        i.timeout_secs = Some("5".into());
        assert_eq!(i.validate().unwrap().timeout_secs, 5);
    }

    #[test]
    fn mtls_cert_and_key_go_together() {
        let mut i = oauth2_input();
        i.client_cert_file = Some("/etc/dci/client.pem".into());
        assert!(errors_of(i.clone()).has("client_key_file"));
        i.client_cert_file = None;
        i.client_key_file = Some("/etc/dci/client.key".into());
        assert!(errors_of(i).has("client_cert_file"));
    }

    #[test]
    fn signature_policy_rules() {
        let mut i = oauth2_input();
        i.reply_signature_policy = Some("always".into());
        assert!(errors_of(i).has("reply_signature_policy"));
        let mut i = oauth2_input();
        i.reply_signature_policy = Some("require".into());
        assert!(
            message(&errors_of(i.clone()), "reply_signature_policy").contains("registry_jwks_url")
        );
        i.registry_jwks_url = Some("https://crvs.example.org/.well-known/jwks.json".into());
        assert_eq!(
            i.validate().unwrap().reply_signature_policy,
            SignaturePolicy::Require
        );
        let mut i = oauth2_input();
        i.registry_public_keys = vec!["not a key".into()];
        assert!(errors_of(i).has("registry_public_keys"));
    }

    #[test]
    fn update_keeps_secret_and_identity_when_secret_left_out() {
        let existing = oauth2_input().validate().unwrap();
        let mut edit = DataSourceInput::from_source(&existing);
        edit.name = "Renamed".into();
        let updated = edit.validate_update(&existing).unwrap();
        assert_eq!(updated.id, existing.id);
        assert_eq!(updated.created_at, existing.created_at);
        assert_eq!(updated.name, "Renamed");
        let AuthConfig::OAuth2(o) = &updated.auth else {
            panic!()
        };
        assert_eq!(o.client_secret.expose_secret(), "s3cr3t-value");

        // Switching auth type does not carry a secret over.
        let mut edit = DataSourceInput::from_source(&existing);
        edit.clear_auth_fields();
        edit.auth = Some("bearer".into());
        assert!(
            edit.validate_update(&existing)
                .unwrap_err()
                .has("bearer_token")
        );
    }

    #[test]
    fn from_source_round_trips() {
        let mut i = oauth2_input();
        i.scope = Some("registry.read".into());
        i.credential_location = Some("query".into());
        i.timeout_secs = Some("12".into());
        i.notes = Some("note".into());
        let s = i.validate().unwrap();
        let again = DataSourceInput::from_source(&s)
            .validate_update(&s)
            .unwrap();
        assert_eq!(again.timeout_secs, 12);
        assert_eq!(again.notes, "note");
        let AuthConfig::OAuth2(o) = &again.auth else {
            panic!()
        };
        assert_eq!(o.scope.as_deref(), Some("registry.read"));
        assert_eq!(o.credential_location, CredentialLocation::Query);
    }

    #[test]
    fn redacted_json_masks_every_secret() {
        let oauth = oauth2_input().validate().unwrap();
        let mut bearer = oauth2_input();
        bearer.clear_auth_fields();
        bearer.auth = Some("bearer".into());
        bearer.bearer_token = Some(SecretString::from("bearer-plain-1"));
        let mut basic = oauth2_input();
        basic.clear_auth_fields();
        basic.auth = Some("basic".into());
        basic.basic_username = Some("user".into());
        basic.basic_password = Some(SecretString::from("basic-plain-2"));
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
    fn errors_display_one_per_line_and_serialize() {
        let errs = errors_of(DataSourceInput::default());
        assert_eq!(errs.to_string().lines().count(), errs.errors().len());
        let json = serde_json::to_value(&errs).unwrap();
        assert_eq!(json[0]["field"], "code");
    }
}
