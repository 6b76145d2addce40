//! OAuth2 client credentials (RFC 6749 §4.4) and the per-data-source token cache.
//!
//! Hand-rolled over reqwest (see `interop-and-crates.md` §3): DCI registries need four credential
//! placements, `expires_in` as a string, and the spec's `timestamp` header, which generic OAuth2
//! crates do not offer. The cache refreshes ahead of expiry and is single-flight: however many
//! callers find it cold or stale, one token request is made and everyone shares its outcome.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use crate::error::{Error, Phase, Result};
use crate::source::{CredentialLocation, OAuth2Config};

/// An OAuth2 access token. `Debug` is redacted; there is no `Serialize`, `Display` or
/// `PartialEq`, so it cannot be logged, printed or compared by accident.
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    /// Wraps a token string.
    pub fn new(token: impl Into<String>) -> AccessToken {
        AccessToken(SecretString::from(token.into()))
    }

    /// The token itself.
    ///
    /// # Security
    /// Only for building an `Authorization` header (marked sensitive) or an explicit `--reveal`.
    pub fn secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// Where the token a caller got came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenOrigin {
    /// Just fetched from the token endpoint.
    Fetched,
    /// Served from this process's cache.
    Cached,
    /// Loaded from the store (minted earlier, possibly by another process).
    Stored,
}

impl TokenOrigin {
    /// `fetched`, `cached` or `stored`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenOrigin::Fetched => "fetched",
            TokenOrigin::Cached => "cached",
            TokenOrigin::Stored => "stored",
        }
    }
}

/// What is known about a token, without the token. Safe to print and serialise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Where this token came from for this caller.
    pub origin: TokenOrigin,
    /// The `token_type` the server gave (normalised to lowercase; `bearer` if absent).
    pub token_type: String,
    /// The granted scope, if the server said, else the requested one.
    pub scope: Option<String>,
    /// When this process obtained it: fetched from the token endpoint, or loaded from the
    /// store (which does not keep the original issue time).
    #[serde(with = "time::serde::rfc3339")]
    pub obtained_at: OffsetDateTime,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When the cache will replace it (ahead of expiry).
    #[serde(with = "time::serde::rfc3339")]
    pub refresh_at: OffsetDateTime,
    /// Whether the lifetime came from the server's `expires_in` (else the configured default).
    pub lifetime_from_server: bool,
}

/// A token with its metadata.
#[derive(Debug, Clone)]
pub struct Token {
    /// The bearer credential.
    pub access_token: AccessToken,
    /// Its metadata.
    pub info: TokenInfo,
}

/// When to refresh: `max(lifetime × 0.8, lifetime − skew)` after issue, so a skew larger than a
/// short token's lifetime still leaves most of that lifetime usable (a 60 s token with a 60 s
/// skew is reused for 48 s instead of never).
pub fn refresh_after(lifetime: Duration, skew: Duration) -> Duration {
    let eighty = lifetime.mul_f64(0.8);
    eighty.max(lifetime.saturating_sub(skew))
}

/// Token cache timing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSettings {
    /// How long before expiry to refresh (bounded by [`refresh_after`]). Default 60 s.
    pub refresh_skew: Duration,
    /// Lifetime assumed when the server sends no `expires_in`. Default 300 s: short enough that a
    /// wrong guess costs one 401 and a retry, not an hour of failures.
    pub default_lifetime: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            refresh_skew: Duration::from_secs(60),
            default_lifetime: Duration::from_secs(300),
        }
    }
}

/// Builds the token request for the configured credential placement: the request without its
/// body, and the body (form or JSON), whose bytes — holding the client secret — are wiped
/// when the last copy is dropped ([`crate::transport::wipe`]).
pub(crate) fn token_request(
    http: &reqwest::Client,
    cfg: &OAuth2Config,
    url: &Url,
) -> Result<(reqwest::RequestBuilder, Option<bytes::Bytes>)> {
    use crate::transport::wipe;
    use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
    const FORM: &str = "application/x-www-form-urlencoded";
    let secret = cfg.client_secret.expose_secret();
    let mut params: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    let creds = [
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", secret),
    ];
    let scope = cfg.scope.as_deref().filter(|s| !s.trim().is_empty());
    let req = http
        .post(url.clone())
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        // The DCI auth spec requires an HTTP-date `timestamp` header on token calls.
        .header("timestamp", httpdate::fmt_http_date(SystemTime::now()))
        .header("message_id", uuid::Uuid::new_v4().to_string());
    Ok(match cfg.credential_location {
        CredentialLocation::Body => {
            params.extend(creds);
            if let Some(s) = scope {
                params.push(("scope", s));
            }
            let form = req.header(CONTENT_TYPE, HeaderValue::from_static(FORM));
            (form, Some(wipe::form_body(&params)))
        }
        CredentialLocation::Basic => {
            // RFC 6749 §2.3.1: form-urlencode id and secret before Basic encoding.
            let enc = |s: &str| -> zeroize::Zeroizing<String> {
                zeroize::Zeroizing::new(
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect(),
                )
            };
            if let Some(s) = scope {
                params.push(("scope", s));
            }
            let basic = wipe::basic(&enc(&cfg.client_id), &enc(secret))?;
            let form = req
                .header(AUTHORIZATION, basic)
                .header(CONTENT_TYPE, HeaderValue::from_static(FORM));
            (form, Some(wipe::form_body(&params)))
        }
        // A quirk of some servers (OpenCRVS): the secret rides in the URL, which reqwest and
        // hyper copy as plain strings; prefer any other placement.
        CredentialLocation::Query => {
            params.extend(creds);
            if let Some(s) = scope {
                params.push(("scope", s));
            }
            (req.query(&params), None)
        }
        CredentialLocation::Json => {
            let body = JsonCredentials {
                grant_type: "client_credentials",
                client_id: &cfg.client_id,
                client_secret: secret,
                scope,
            };
            let json = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            (json, Some(wipe::json_body(&body)))
        }
    })
}

/// The JSON body of a token request, serialised straight from borrowed fields (no owned copy
/// of the secret on the way).
#[derive(Serialize)]
struct JsonCredentials<'a> {
    grant_type: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<SecretString>,
    token_type: Option<String>,
    expires_in: Option<Value>,
    scope: Option<Value>,
}

/// Parses a token endpoint's success body. Lenient where servers differ (`expires_in` as
/// number or string, absent `token_type`), strict where it matters (a token must be present,
/// and must be a bearer token).
pub(crate) fn parse_token_response(
    body: &[u8],
    url: &Url,
    cfg: &OAuth2Config,
    settings: &TokenSettings,
) -> Result<Token> {
    let raw: RawTokenResponse = serde_json::from_slice(body).map_err(|e| {
        // Deliberately no body excerpt: it may hold the token.
        Error::decode(
            Phase::Token,
            url,
            format!(
                "an OAuth2 token response as JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
            None,
        )
    })?;
    let token = raw
        .access_token
        .filter(|t| !t.expose_secret().trim().is_empty())
        .ok_or_else(|| Error::decode(Phase::Token, url, "a non-empty `access_token`", None))?;
    let token_type = raw
        .token_type
        .unwrap_or_else(|| "bearer".into())
        .to_ascii_lowercase();
    if token_type != "bearer" {
        return Err(Error::decode(
            Phase::Token,
            url,
            format!(
                "`token_type` \"bearer\" (got \"{token_type}\"; only bearer tokens are supported)"
            ),
            None,
        ));
    }
    let server_lifetime = match raw.expires_in {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_f64()
                .filter(|s| *s >= 0.0)
                .ok_or_else(|| bad_expires(url, &n.to_string()))?,
        ),
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.0)
                .ok_or_else(|| bad_expires(url, &s))?,
        ),
        Some(other) => return Err(bad_expires(url, &other.to_string())),
    };
    let (lifetime, from_server) = match server_lifetime {
        Some(s) if s > 0.0 => (Duration::from_secs_f64(s.min(10.0 * 365.0 * 86400.0)), true),
        _ => (settings.default_lifetime, false),
    };
    let scope = match raw.scope {
        Some(Value::String(s)) => Some(s),
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => cfg.scope.clone(),
    };
    let now = OffsetDateTime::now_utc();
    Ok(Token {
        access_token: AccessToken(token),
        info: TokenInfo {
            origin: TokenOrigin::Fetched,
            token_type,
            scope,
            obtained_at: now,
            expires_at: now + lifetime,
            refresh_at: now + refresh_after(lifetime, settings.refresh_skew),
            lifetime_from_server: from_server,
        },
    })
}

fn bad_expires(url: &Url, got: &str) -> Error {
    let got: String = got.chars().take(40).collect();
    Error::decode(
        Phase::Token,
        url,
        format!("`expires_in` as a number of seconds (got {got})"),
        None,
    )
}

pub(crate) struct Cached {
    pub(crate) token: Token,
    pub(crate) generation: u64,
}

/// Single-flight token cache for one data source.
///
/// The fast path takes a short std read lock. Misses queue on an async gate; the first one in
/// fetches, and the ones behind it find either the new token or the failure that fetch produced
/// (so a dead token server costs one request per wave of callers, not one per caller).
pub(crate) struct TokenCache {
    slot: RwLock<Option<Arc<Cached>>>,
    gate: tokio::sync::Mutex<Option<(u64, Error)>>,
    completed: AtomicU64,
    generations: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new() -> TokenCache {
        TokenCache {
            slot: RwLock::new(None),
            gate: tokio::sync::Mutex::new(None),
            completed: AtomicU64::new(0),
            generations: AtomicU64::new(0),
        }
    }

    fn fresh(&self) -> Option<Arc<Cached>> {
        let slot = self.slot.read().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|c| OffsetDateTime::now_utc() < c.token.info.refresh_at)
            .cloned()
    }

    /// The cached token even if it is due for refresh (for display only).
    pub(crate) fn peek(&self) -> Option<Arc<Cached>> {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Returns a fresh token, fetching one (once, for all concurrent callers) if needed.
    /// `force` skips the cache unless another caller fetched while this one waited.
    pub(crate) async fn get<F, Fut>(&self, force: bool, fetch: F) -> Result<Arc<Cached>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token>>,
    {
        if !force && let Some(c) = self.fresh() {
            return Ok(c);
        }
        let seen = self.completed.load(Ordering::Acquire);
        let mut gate = self.gate.lock().await;
        let now = self.completed.load(Ordering::Acquire);
        if now != seen {
            if let Some(c) = self.fresh() {
                return Ok(c);
            }
            if let Some((epoch, err)) = gate.as_ref()
                && *epoch == now
            {
                return Err(err.clone());
            }
        } else if !force && let Some(c) = self.fresh() {
            return Ok(c);
        }
        let result = fetch().await;
        let epoch = self.completed.fetch_add(1, Ordering::AcqRel) + 1;
        match result {
            Ok(token) => {
                *gate = None;
                Ok(self.install(token))
            }
            Err(e) => {
                *gate = Some((epoch, e.clone()));
                Err(e)
            }
        }
    }

    pub(crate) fn install(&self, token: Token) -> Arc<Cached> {
        let cached = Arc::new(Cached {
            token,
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
        });
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = Some(cached.clone());
        cached
    }

    /// Drops the token if it is still the one with `generation` (a 401 on an older token must
    /// not throw away the new one another caller already fetched).
    pub(crate) fn invalidate(&self, generation: u64) -> bool {
        let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|c| c.generation == generation) {
            *slot = None;
            true
        } else {
            false
        }
    }

    pub(crate) fn clear(&self) {
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::CredentialLocation;

    fn cfg() -> OAuth2Config {
        OAuth2Config {
            token_url: "https://t.example/token".into(),
            client_id: "id".into(),
            client_secret: SecretString::from("s".to_owned()),
            scope: Some("registry.search".into()),
            credential_location: CredentialLocation::Body,
        }
    }

    fn parse(body: &str) -> Result<Token> {
        let u = Url::parse("https://t.example/token").unwrap();
        parse_token_response(body.as_bytes(), &u, &cfg(), &TokenSettings::default())
    }

    #[test]
    fn short_lifetimes_stay_usable() {
        let skew = Duration::from_secs(60);
        assert_eq!(
            refresh_after(Duration::from_secs(60), skew),
            Duration::from_secs(48)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(3600), skew),
            Duration::from_secs(3540)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(10), skew),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn expires_in_number_or_string() {
        let t = parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":"120"}"#).unwrap();
        assert!(t.info.lifetime_from_server);
        assert_eq!(
            (t.info.expires_at - t.info.obtained_at).whole_seconds(),
            120
        );
        let t = parse(r#"{"access_token":"a","token_type":"bearer","expires_in":120}"#).unwrap();
        assert_eq!(
            (t.info.expires_at - t.info.obtained_at).whole_seconds(),
            120
        );
        let t = parse(r#"{"access_token":"a"}"#).unwrap();
        assert!(!t.info.lifetime_from_server);
        assert_eq!(
            (t.info.expires_at - t.info.obtained_at).whole_seconds(),
            300
        );
        assert_eq!(t.info.scope.as_deref(), Some("registry.search"));
        let e = parse(r#"{"access_token":"a","expires_in":"soon"}"#).unwrap_err();
        assert!(e.is_decode() && e.to_string().contains("expires_in"), "{e}");
    }

    #[test]
    fn token_type_and_presence_are_checked() {
        let e = parse(r#"{"access_token":"a","token_type":"mac"}"#).unwrap_err();
        assert!(e.to_string().contains("token_type"), "{e}");
        let e = parse(r#"{"token_type":"bearer"}"#).unwrap_err();
        assert!(e.to_string().contains("access_token"), "{e}");
        let e = parse("<html>login</html>").unwrap_err();
        assert!(e.is_decode());
    }

    #[test]
    fn access_token_debug_is_redacted() {
        let t = parse(r#"{"access_token":"tok-123","expires_in":5}"#).unwrap();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("tok-123"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }
}
