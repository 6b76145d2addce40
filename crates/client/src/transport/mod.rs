//! The transport: one pooled HTTP client per data source, authentication, retries, the 401
//! re-token path, DCI-level outcome checks and the audit log.
//!
//! Every outgoing call — token requests included — goes through [`DciClient::execute`], which
//! writes one audit entry per attempt when the client has a store.

mod audit;
mod dci;
mod retry;
mod tls;
pub(crate) mod wipe;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use futures::future::BoxFuture;
use std::time::{Duration, Instant};

use dci_protocol::inbound::{RegRecords, at};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use audit::AuditSink;
pub use audit::AuditWriter;
pub use retry::RetryPolicy;
pub(crate) use retry::retry_after;
pub(crate) use tls::with_system_roots;

use crate::auth::{self, Token, TokenCache, TokenInfo, TokenOrigin, TokenSettings};
use crate::error::{Error, Phase, Result, redact_url};
use crate::source::{AuthConfig, AuthKind, DataSource};
use crate::store::{AuditEntry, AuditOutcome, CachedToken, Store};
use crate::telemetry;

/// The DCI endpoints a client calls, each with its default retry safety.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Synchronous search (idempotent: retried).
    SyncSearch,
    /// Asynchronous search (never resent automatically).
    Search,
    /// Subscribe (never resent automatically).
    Subscribe,
    /// Unsubscribe (never resent automatically).
    Unsubscribe,
    /// Asynchronous transaction status (idempotent: retried).
    TxnStatus,
    /// Synchronous transaction status (idempotent: retried).
    SyncTxnStatus,
    /// Any other path below the base URL, e.g. DR's `/registry/sync/disabled`.
    Other {
        /// The path, starting with `/`.
        path: String,
        /// The audit action name.
        action: String,
        /// Whether a resend is harmless.
        idempotent: bool,
    },
}

impl Endpoint {
    fn path<'a>(&'a self, source: &'a DataSource) -> &'a str {
        let e = &source.endpoints;
        match self {
            Endpoint::SyncSearch => &e.sync_search,
            Endpoint::Search => &e.search,
            Endpoint::Subscribe => &e.subscribe,
            Endpoint::Unsubscribe => &e.unsubscribe,
            Endpoint::TxnStatus => &e.txn_status,
            Endpoint::SyncTxnStatus => &e.sync_txn_status,
            Endpoint::Other { path, .. } => path,
        }
    }

    /// The action name recorded in the audit log.
    pub fn action(&self) -> &str {
        match self {
            Endpoint::SyncSearch => "sync_search",
            Endpoint::Search => "search",
            Endpoint::Subscribe => "subscribe",
            Endpoint::Unsubscribe => "unsubscribe",
            Endpoint::TxnStatus => "txn_status",
            Endpoint::SyncTxnStatus => "sync_txn_status",
            Endpoint::Other { action, .. } => action,
        }
    }

    /// Whether resending after a transient failure is harmless.
    pub fn is_idempotent(&self) -> bool {
        match self {
            Endpoint::SyncSearch | Endpoint::TxnStatus | Endpoint::SyncTxnStatus => true,
            Endpoint::Search | Endpoint::Subscribe | Endpoint::Unsubscribe => false,
            Endpoint::Other { idempotent, .. } => *idempotent,
        }
    }
}

/// One DCI request: an envelope for an endpoint.
///
/// Resending an async submission is the caller's explicit decision: call
/// [`DciClient::make_request`] again with the same envelope (same `message_id` and
/// `transaction_id`), so the registry can recognise the duplicate.
#[derive(Debug, Clone)]
#[must_use]
pub struct DciRequest {
    endpoint: Endpoint,
    envelope: Value,
    retry: Option<bool>,
}

impl DciRequest {
    /// A request to `endpoint` with this envelope.
    pub fn new(endpoint: Endpoint, envelope: Value) -> DciRequest {
        DciRequest {
            endpoint,
            envelope,
            retry: None,
        }
    }

    /// Overrides whether transient failures are retried (default: the endpoint's idempotency).
    pub fn retry(mut self, retry: bool) -> DciRequest {
        self.retry = Some(retry);
        self
    }
}

/// A successful reply.
#[derive(Debug, Clone)]
pub struct DciResponse {
    /// The HTTP status (2xx).
    pub status: StatusCode,
    /// The parsed JSON body (`Null` when the body was empty).
    pub body: Value,
    /// How many attempts it took (401 re-token and retries included).
    pub attempts: u32,
}

/// A reply as bytes, for calls whose body is not a DCI envelope (ping, callback checks).
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    /// As hyper read it (no copy: a token reply's bytes are not duplicated on the heap).
    pub(crate) body: bytes::Bytes,
}

/// What [`DciClient::token`] returns: metadata, and the token itself.
#[derive(Debug, Clone)]
pub struct TokenStatus {
    /// Metadata (safe to print).
    pub info: TokenInfo,
    /// The token (redacted `Debug`; reveal deliberately).
    pub access_token: auth::AccessToken,
}

/// A client for one data source: cheap to clone (an `Arc`), share one per data source so the
/// connection pool and the token cache are shared too.
#[derive(Clone)]
pub struct DciClient {
    inner: Arc<Inner>,
}

struct Inner {
    source: DataSource,
    base: Url,
    token_url: Option<Url>,
    http: reqwest::Client,
    tokens: TokenCache,
    token_settings: TokenSettings,
    retry: RetryPolicy,
    quota: retry::RetryQuota,
    timeout: Duration,
    connect_timeout: Duration,
    store: Option<Arc<dyn Store>>,
    audit: AuditSink,
    persist_tokens: bool,
    uses_proxy: bool,
    /// Endpoint URLs already joined onto `base`, by path ([`DciClient::url_for`]): a call
    /// clones one instead of parsing a URL. At most [`MAX_CACHED_URLS`] paths.
    urls: RwLock<HashMap<String, Url>>,
}

/// Endpoint paths whose joined URL a client keeps (a source has a handful).
const MAX_CACHED_URLS: usize = 32;

impl std::fmt::Debug for DciClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DciClient")
            .field("source", &self.inner.source.code)
            .field("base", &self.inner.base.as_str())
            .field("auth", &self.inner.source.auth.kind())
            .finish_non_exhaustive()
    }
}

/// Builds a [`DciClient`]; mistakes are reported by [`DciClientBuilder::build`].
#[must_use]
pub struct DciClientBuilder {
    source: DataSource,
    store: Option<Arc<dyn Store>>,
    token_settings: TokenSettings,
    retry: RetryPolicy,
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    proxy: Option<String>,
    persist_tokens: bool,
    audit: Option<AuditWriter>,
}

impl DciClientBuilder {
    /// Queue audit entries for this writer instead of writing each one before the call
    /// returns (the engine's way: the audit stays off the call's critical path).
    pub fn audit_writer(mut self, writer: AuditWriter) -> Self {
        self.audit = Some(writer);
        self
    }

    /// Audit every call, and (unless disabled) persist tokens, through this store.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Whether tokens are saved to and loaded from the store (default on when a store is set),
    /// so a restart or another process reuses a live token instead of minting one.
    pub fn persist_tokens(mut self, on: bool) -> Self {
        self.persist_tokens = on;
        self
    }

    /// Token refresh skew and default lifetime.
    pub fn token_settings(mut self, settings: TokenSettings) -> Self {
        self.token_settings = settings;
        self
    }

    /// Retry policy for idempotent calls.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Total timeout per attempt (default: the data source's `timeout_secs`).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// TCP+TLS connect timeout (default: the smaller of 10 s and the total timeout).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = Some(t);
        self
    }

    /// Send everything through this HTTP(S) proxy (e.g. `http://proxy:3128`). Environment
    /// proxy variables are never read implicitly.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// Validates the configuration and builds the pooled HTTP client.
    pub fn build(self) -> Result<DciClient> {
        let s = &self.source;
        let base = parse_http_url("base_url", &s.base_url)?;
        let token_url = match &s.auth {
            AuthConfig::OAuth2(o) => {
                if o.client_id.trim().is_empty() {
                    return Err(Error::config(
                        "auth.client_id is empty: set the OAuth2 client id the registry issued",
                    ));
                }
                if o.client_secret.expose_secret().is_empty() {
                    return Err(Error::config(
                        "auth.client_secret is empty: set the OAuth2 client secret",
                    ));
                }
                Some(parse_http_url("auth.token_url", &o.token_url)?)
            }
            AuthConfig::Bearer { token } if token.expose_secret().trim().is_empty() => {
                return Err(Error::config(
                    "auth.bearer_token is empty: set the token, or choose another auth type",
                ));
            }
            AuthConfig::Basic { username, .. } if username.trim().is_empty() => {
                return Err(Error::config(
                    "auth.username is empty: set the Basic user name",
                ));
            }
            _ => None,
        };
        let timeout = match self.timeout {
            Some(t) => t,
            None if s.timeout_secs == 0 => {
                return Err(Error::config(
                    "timeout_secs is 0: set a request timeout in seconds greater than 0",
                ));
            }
            None => Duration::from_secs(u64::from(s.timeout_secs)),
        };
        let connect_timeout = self
            .connect_timeout
            .unwrap_or(timeout.min(Duration::from_secs(10)));

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("dci-client/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            // Credentials must never follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90));
        if !s.tls.verify {
            b = b.tls_danger_accept_invalid_certs(true);
        } else if s.tls.ca_file.is_none()
            && s.tls.client_cert_file.is_none()
            && s.tls.client_key_file.is_none()
        {
            // The system's roots, loaded once per process and only when TLS is first used.
            b = tls::with_system_roots(b);
        }
        if let Some(path) = &s.tls.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::config_with(
                    format!(
                        "tls.ca_file {}: cannot read it; fix the path",
                        path.display()
                    ),
                    e,
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::config_with(
                    format!(
                        "tls.ca_file {}: not a PEM certificate bundle; give the CA certificate(s) \
                         in PEM form",
                        path.display()
                    ),
                    e,
                )
            })?;
            if certs.is_empty() {
                return Err(Error::config(format!(
                    "tls.ca_file {}: contains no certificate; give the CA certificate(s) in PEM",
                    path.display()
                )));
            }
            b = b.tls_certs_merge(certs);
        }
        match (&s.tls.client_cert_file, &s.tls.client_key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read_file("tls.client_cert_file", cert)?;
                pem.push(b'\n');
                pem.extend(read_file("tls.client_key_file", key)?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    Error::config_with(
                        "tls.client_cert_file/tls.client_key_file: not a PEM certificate and \
                         private key pair; give both in PEM form",
                        e,
                    )
                })?;
                b = b.identity(id);
            }
            (Some(_), None) => {
                return Err(Error::config(
                    "tls.client_key_file is missing: mutual TLS needs both certificate and key",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "tls.client_cert_file is missing: mutual TLS needs both certificate and key",
                ));
            }
            (None, None) => {}
        }
        b = match &self.proxy {
            Some(p) => b.proxy(reqwest::Proxy::all(p).map_err(|e| {
                Error::config_with(format!("proxy {p:?}: not a valid proxy URL"), e)
            })?),
            None => b.no_proxy(),
        };
        let http = b.build().map_err(|e| {
            Error::config_with("could not build the HTTP client from the TLS settings", e)
        })?;
        let persist = self.persist_tokens && self.store.is_some();
        let audit = match (&self.audit, &self.store) {
            (Some(w), _) => w.sink(),
            (None, Some(store)) => AuditSink::Direct(store.clone()),
            (None, None) => AuditSink::None,
        };
        Ok(DciClient {
            inner: Arc::new(Inner {
                base,
                token_url,
                http,
                tokens: TokenCache::new(),
                token_settings: self.token_settings,
                quota: retry::RetryQuota::new(self.retry.quota),
                retry: self.retry,
                timeout,
                connect_timeout,
                store: self.store,
                audit,
                persist_tokens: persist,
                uses_proxy: self.proxy.is_some(),
                source: self.source,
                urls: RwLock::new(HashMap::new()),
            }),
        })
    }
}

fn read_file(field: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::config_with(
            format!("{field} {}: cannot read it; fix the path", path.display()),
            e,
        )
    })
}

fn parse_http_url(field: &str, s: &str) -> Result<Url> {
    let u = Url::parse(s.trim()).map_err(|e| {
        Error::config(format!(
            "{field} {:?} is not a valid URL ({e}); write it like https://registry.example.org",
            redact_str(s)
        ))
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(Error::config(format!(
            "{field} {:?} must be an http:// or https:// URL with a host",
            redact_str(s)
        )));
    }
    Ok(u)
}

fn redact_str(s: &str) -> String {
    match Url::parse(s) {
        Ok(u) => redact_url(&u).to_string(),
        Err(_) => s.split('?').next().unwrap_or_default().to_owned(),
    }
}

/// Everything `execute` needs to make one (retried) call.
pub(crate) struct Call<'a> {
    pub(crate) phase: Phase,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) action: &'a str,
    pub(crate) headers: HeaderMap,
    /// Shared by every attempt (a clone is a reference count, not a copy).
    pub(crate) body: Option<bytes::Bytes>,
    pub(crate) authenticate: bool,
    pub(crate) retry: bool,
    /// Any HTTP status is an answer (reachability checks): only transport failures are errors.
    pub(crate) any_status: bool,
    pub(crate) ids: (Option<String>, Option<String>),
}

enum Auth {
    None,
    /// User name and the decrypted password, wiped from memory when dropped.
    Basic(String, zeroize::Zeroizing<String>),
    Header(HeaderValue, Option<u64>),
}

impl DciClient {
    /// Starts building a client for `source`.
    pub fn builder(source: DataSource) -> DciClientBuilder {
        DciClientBuilder {
            source,
            store: None,
            token_settings: TokenSettings::default(),
            retry: RetryPolicy::default(),
            connect_timeout: None,
            timeout: None,
            proxy: None,
            persist_tokens: true,
            audit: None,
        }
    }

    /// The data source this client talks to.
    pub fn source(&self) -> &DataSource {
        &self.inner.source
    }

    /// The store, if the client has one.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.inner.store.as_ref()
    }

    /// The pooled HTTP client (with the source's TLS settings), for calls beside the DCI
    /// endpoints such as the registry's JWKS.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn base_url(&self) -> &Url {
        &self.inner.base
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    pub(crate) fn uses_proxy(&self) -> bool {
        self.inner.uses_proxy
    }

    /// `base_url` joined with an endpoint path (the base may itself have a path prefix),
    /// parsed once per path and kept (up to [`MAX_CACHED_URLS`] paths).
    pub(crate) fn url_for(&self, path: &str) -> Result<Url> {
        if let Some(u) = self
            .inner
            .urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
        {
            return Ok(u.clone());
        }
        let joined = format!(
            "{}/{}",
            self.inner.base.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        let url = Url::parse(&joined).map_err(|e| {
            Error::config(format!(
                "endpoint path {path:?} does not form a valid URL: {e}"
            ))
        })?;
        let mut urls = self
            .inner
            .urls
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if urls.len() < MAX_CACHED_URLS {
            urls.insert(path.to_owned(), url.clone());
        }
        Ok(url)
    }

    /// Sends a DCI envelope and returns the registry's JSON reply.
    ///
    /// Adds authentication; on a 401 with OAuth2, drops the token, fetches a new one and
    /// retries once; retries transient failures (connect errors, timeouts, 429/502/503/504 with
    /// `Retry-After`) of idempotent endpoints within the [`RetryPolicy`]; turns a DCI rejection
    /// inside HTTP 200 (ACK `ERR`, header `rjct`, all items `rjct`) into an error.
    pub async fn make_request(&self, req: DciRequest) -> Result<DciResponse> {
        let (response, ()) = self
            .send_dci(req, |body| {
                dci_protocol::inbound::json_value(body).map(|v| (v, ()))
            })
            .await?;
        Ok(response)
    }

    /// [`Self::make_request`] of a sync search whose records are to stay as the registry's
    /// text: the reply is read by [`dci_protocol::inbound::search_reply`], its body with each
    /// item's `data.reg_records` `null`, the records beside it.
    pub(crate) async fn make_search_request(
        &self,
        req: DciRequest,
    ) -> Result<(DciResponse, Vec<Option<RegRecords>>)> {
        self.send_dci(req, |body| {
            dci_protocol::inbound::search_reply(body).map(|r| (r.envelope, r.records))
        })
        .await
    }

    /// Sends a DCI envelope; `read` reads a 2xx body into the envelope and whatever it sets
    /// aside (`T`, its default for an empty body).
    async fn send_dci<T: Default>(
        &self,
        req: DciRequest,
        read: impl Fn(&[u8]) -> serde_json::Result<(Value, T)>,
    ) -> Result<(DciResponse, T)> {
        let url = self.url_for(req.endpoint.path(&self.inner.source))?;
        let body = serde_json::to_vec(&req.envelope)
            .map_err(|e| Error::config_with("the envelope could not be serialised", e))?;
        let ids = (
            at(&req.envelope, &["header", "message_id"])
                .and_then(Value::as_str)
                .map(str::to_owned),
            at(&req.envelope, &["message", "transaction_id"])
                .and_then(Value::as_str)
                .map(str::to_owned),
        );
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let call = Call {
            phase: Phase::Registry,
            method: Method::POST,
            url,
            action: req.endpoint.action(),
            headers,
            body: Some(bytes::Bytes::from(body)),
            authenticate: true,
            retry: req.retry.unwrap_or(req.endpoint.is_idempotent()),
            any_status: false,
            ids,
        };
        let (raw, attempts, (body, aside)) = self.execute_dci(call, read).await?;
        let response = DciResponse {
            status: raw.status,
            body,
            attempts,
        };
        Ok((response, aside))
    }

    async fn execute_dci<T: Default>(
        &self,
        call: Call<'_>,
        read: impl Fn(&[u8]) -> serde_json::Result<(Value, T)>,
    ) -> Result<(RawResponse, u32, (Value, T))> {
        let mut parsed = (Value::Null, T::default());
        let (raw, attempts) = self
            .execute(call, |url, raw| {
                if raw.body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(());
                }
                let v = read(&raw.body).map_err(|e| {
                    Error::decode(Phase::Registry, url, "a JSON body", Some(Arc::new(e)))
                })?;
                if let Some(reason) = dci::rejection(&v.0) {
                    return Err(Error::rejected(url, raw.status, reason));
                }
                parsed = v;
                Ok(())
            })
            .await?;
        Ok((raw, attempts, parsed))
    }

    /// Makes one call with auth, the 401 path, retries and audit, in its own span
    /// ([`crate::telemetry::call_span`]). `check` judges a 2xx reply (parse, DCI rejection) so
    /// that its verdict is what the audit records.
    pub(crate) async fn execute(
        &self,
        call: Call<'_>,
        check: impl FnMut(&Url, &RawResponse) -> Result<()>,
    ) -> Result<(RawResponse, u32)> {
        use tracing::Instrument;
        let span = telemetry::call_span(
            &self.inner.source.code,
            call.action,
            call.method.as_str(),
            call.url.path(),
            &call.ids,
        );
        if let Some(t) = &call.ids.1 {
            telemetry::remember(&span, t).await;
        }
        let result = self.attempts(call, check).instrument(span.clone()).await;
        match &result {
            Ok((raw, attempts)) => {
                telemetry::call_ended(&span, Some(raw.status.as_u16()), *attempts, true)
            }
            Err(e) => {
                telemetry::call_ended(&span, e.status().map(|s| s.as_u16()), e.attempts(), false)
            }
        }
        result
    }

    async fn attempts(
        &self,
        call: Call<'_>,
        mut check: impl FnMut(&Url, &RawResponse) -> Result<()>,
    ) -> Result<(RawResponse, u32)> {
        let kind = self.inner.source.auth.kind();
        let mut retry = self.inner.retry.start();
        let mut attempt = 0u32;
        // New tokens fetched after a 401: one for any call; up to three for a retried one,
        // whose token may be revoked again (or a concurrent caller's refresh may hand it the
        // old token once more) during a long run of retries. Wrong credentials end there.
        let max_reauths = if call.retry { 3 } else { 1 };
        let mut reauths = 0u32;
        loop {
            attempt += 1;
            // A token fetch has its own audit entry; this one times the call itself.
            let auth = if call.authenticate {
                match self.authorization().await {
                    Ok(a) => a,
                    Err(e) => return Err(e.with_auth(kind)),
                }
            } else {
                Auth::None
            };
            let started_at = OffsetDateTime::now_utc();
            let t0 = Instant::now();
            let mut rb = self
                .inner
                .http
                .request(call.method.clone(), call.url.clone())
                .headers(call.headers.clone());
            if let Some(body) = &call.body {
                rb = rb.body(body.clone());
            }
            let generation = match auth {
                Auth::Header(v, g) => {
                    rb = rb.header(reqwest::header::AUTHORIZATION, v);
                    g
                }
                Auth::Basic(u, p) => {
                    rb = rb.header(reqwest::header::AUTHORIZATION, wipe::basic(&u, &p)?);
                    None
                }
                Auth::None => None,
            };
            let sent = self.send(call.phase, &call.url, rb).await;
            let (result, retry_after) = match sent {
                Ok((raw, ra)) => {
                    if raw.status == StatusCode::UNAUTHORIZED
                        && kind == AuthKind::OAuth2
                        && call.authenticate
                        && reauths < max_reauths
                    {
                        // The registry may have revoked or expired our token early: drop it
                        // (only if nobody replaced it already), fetch a new one, retry.
                        reauths += 1;
                        crate::metrics::reauthentication(&self.inner.source.code);
                        if let Some(g) = generation
                            && self.inner.tokens.invalidate(g)
                        {
                            self.forget_stored_token().await;
                        }
                        self.audit(
                            &call,
                            started_at,
                            t0,
                            attempt,
                            Some(401),
                            AuditOutcome::Auth,
                            Some("HTTP 401: token refused; fetching a new token and retrying once"),
                        )
                        .await;
                        continue;
                    }
                    if raw.status.is_success() || call.any_status {
                        (check(&call.url, &raw).map(|()| raw), ra)
                    } else {
                        (
                            Err(Error::http_status(
                                call.phase, &call.url, raw.status, &raw.body,
                            )),
                            ra,
                        )
                    }
                }
                Err(e) => (Err(e), None),
            };
            match result {
                Ok(raw) => {
                    retry.succeeded(&self.inner.quota);
                    self.audit(
                        &call,
                        started_at,
                        t0,
                        attempt,
                        Some(raw.status.as_u16()),
                        AuditOutcome::Ok,
                        None,
                    )
                    .await;
                    return Ok((raw, attempt));
                }
                Err(e) => {
                    let e = e.with_auth(kind).with_attempts(attempt);
                    let e = if e.is_timeout() {
                        e.with_timeout(self.inner.timeout)
                    } else {
                        e
                    };
                    let status = e.status().map(|s| s.as_u16());
                    self.audit(
                        &call,
                        started_at,
                        t0,
                        attempt,
                        status,
                        outcome_of(&e),
                        Some(&e.to_string()),
                    )
                    .await;
                    if call.retry
                        && e.is_transient()
                        && let Some(delay) =
                            retry.next_delay(&self.inner.quota, retry_after, e.is_timeout())
                    {
                        tracing::debug!(source = %self.inner.source.code, action = call.action,
                                attempt, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), class = e.class(), status = status.unwrap_or_default(),
                                "retrying transient failure");
                        crate::metrics::retry(&self.inner.source.code, call.action);
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn send(
        &self,
        phase: Phase,
        url: &Url,
        rb: reqwest::RequestBuilder,
    ) -> Result<(RawResponse, Option<Duration>)> {
        let resp = rb
            .send()
            .await
            .map_err(|e| Error::from_reqwest(phase, url, e))?;
        let status = resp.status();
        let retry_after = retry::retry_after(resp.headers());
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::from_reqwest(phase, url, e))?;
        Ok((RawResponse { status, body }, retry_after))
    }

    async fn authorization(&self) -> Result<Auth> {
        Ok(match &self.inner.source.auth {
            AuthConfig::None => Auth::None,
            // The header text holding a secret is wiped once the header value is built.
            AuthConfig::Bearer { token } => {
                Auth::Header(wipe::header(bearer(token.expose_secret()))?, None)
            }
            AuthConfig::Basic { username, password } => Auth::Basic(
                username.clone(),
                zeroize::Zeroizing::new(password.expose_secret().to_owned()),
            ),
            AuthConfig::OAuth2(_) => {
                let cached = self.cached_token(false).await?;
                let v = wipe::header(bearer(cached.token.access_token.secret()))?;
                Auth::Header(v, Some(cached.generation))
            }
        })
    }

    /// Boxed with an explicit `Send`: fetching a token goes through `execute`, which may itself
    /// need a token, and the compiler cannot infer `Send` through that cycle.
    fn cached_token(&self, force: bool) -> BoxFuture<'_, Result<Arc<auth::Cached>>> {
        Box::pin(async move {
            self.inner
                .tokens
                .get(force, || self.obtain_token(force))
                .await
        })
    }

    /// Called with the cache's gate held: at most one runs per client at a time. Across
    /// processes, the store's token lease makes one fetch serve them all: whoever holds it
    /// fetches and stores, the others wait for it and then find the stored token.
    async fn obtain_token(&self, force: bool) -> Result<Token> {
        let persist = self.inner.persist_tokens;
        if !force
            && persist
            && let Some(t) = self.load_stored_token().await
        {
            return Ok(t);
        }
        let lease = if persist {
            self.token_lease().await
        } else {
            None
        };
        if !force
            && lease.is_some()
            && let Some(t) = self.load_stored_token().await
        {
            if let Some(l) = lease {
                l.release().await;
            }
            return Ok(t);
        }
        let token = self.fetch_token().await;
        if persist && let Ok(t) = &token {
            self.save_token(t).await;
        }
        if let Some(l) = lease {
            l.release().await;
        }
        token
    }

    /// The store's cross-process token lease, if it has one; a failure to take it is logged
    /// and the token fetched without it (one extra token request, not a failed call).
    async fn token_lease(&self) -> Option<crate::store::TokenLease> {
        let store = self.inner.store.as_ref()?;
        match store.token_lease(self.inner.source.id).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(source = %self.inner.source.code, error = %e,
                    "could not take the shared token lease; fetching without it");
                None
            }
        }
    }

    async fn fetch_token(&self) -> Result<Token> {
        let AuthConfig::OAuth2(cfg) = &self.inner.source.auth else {
            return Err(Error::config("this data source does not use OAuth2"));
        };
        let url = self
            .inner
            .token_url
            .clone()
            .expect("validated by build() for OAuth2");
        let settings = self.inner.token_settings;
        // The `timestamp` header is set once per call; retries stay within the retry budget.
        let (rb, body) = auth::token_request(&self.inner.http, cfg, &url)?;
        let req = rb
            .build()
            .map_err(|e| Error::from_reqwest(Phase::Token, &url, e))?;
        let call = Call {
            phase: Phase::Token,
            method: req.method().clone(),
            url: req.url().clone(),
            action: "token",
            headers: req.headers().clone(),
            body,
            authenticate: false,
            retry: true,
            any_status: false,
            ids: (None, None),
        };
        let mut token = None;
        let fetched = self
            .execute(call, |u, raw| {
                token = Some(auth::parse_token_response(&raw.body, u, cfg, &settings)?);
                Ok(())
            })
            .await;
        crate::metrics::token_fetch(&self.inner.source.code, fetched.is_ok());
        fetched?;
        Ok(token.expect("set by the check on success"))
    }

    async fn load_stored_token(&self) -> Option<Token> {
        let store = self.inner.store.as_ref()?;
        let stored = match store.get_token(self.inner.source.id).await {
            Ok(t) => t?,
            Err(e) => {
                tracing::warn!(source = %self.inner.source.code, error = %e,
                    "could not read the stored token; fetching a new one");
                return None;
            }
        };
        let now = OffsetDateTime::now_utc();
        if !stored.token_type.eq_ignore_ascii_case("bearer") {
            return None;
        }
        // Refresh on the schedule of the process that fetched it: ahead of expiry by the
        // same share of its whole lifetime, not of what is left of it.
        let obtained = stored.obtained_at?.min(now);
        let lifetime = Duration::try_from(stored.expires_at - obtained).ok()?;
        let refresh_at =
            obtained + auth::refresh_after(lifetime, self.inner.token_settings.refresh_skew);
        if refresh_at <= now {
            return None;
        }
        Some(Token {
            access_token: auth::AccessToken::new(stored.access_token.expose_secret()),
            info: TokenInfo {
                origin: TokenOrigin::Stored,
                token_type: stored.token_type.to_ascii_lowercase(),
                scope: stored.scope,
                obtained_at: obtained,
                expires_at: stored.expires_at,
                refresh_at,
                lifetime_from_server: true,
            },
        })
    }

    async fn forget_stored_token(&self) {
        let Some(store) = self
            .inner
            .store
            .as_ref()
            .filter(|_| self.inner.persist_tokens)
        else {
            return;
        };
        if let Err(e) = store.delete_token(self.inner.source.id).await {
            tracing::warn!(source = %self.inner.source.code, error = %e,
                "could not delete the refused token from the store");
        }
    }

    async fn save_token(&self, token: &Token) {
        let Some(store) = &self.inner.store else {
            return;
        };
        let cached = CachedToken {
            access_token: secrecy::SecretString::from(token.access_token.secret().to_owned()),
            token_type: token.info.token_type.clone(),
            expires_at: token.info.expires_at,
            scope: token.info.scope.clone(),
            obtained_at: Some(token.info.obtained_at),
        };
        if let Err(e) = store.put_token(self.inner.source.id, &cached).await {
            tracing::warn!(source = %self.inner.source.code, error = %e,
                "could not persist the token; it stays cached in memory");
        }
    }

    /// A usable access token and its metadata (OAuth2 only): from the cache when fresh,
    /// otherwise fetched — once, however many callers ask at the same time.
    pub async fn token(&self) -> Result<TokenStatus> {
        self.token_inner(false).await
    }

    /// Fetches a new token now, replacing the cached one.
    pub async fn force_refresh(&self) -> Result<TokenStatus> {
        self.token_inner(true).await
    }

    async fn token_inner(&self, force: bool) -> Result<TokenStatus> {
        if self.inner.source.auth.kind() != AuthKind::OAuth2 {
            return Err(Error::config(format!(
                "data source {:?} uses {} authentication, not oauth2: it has no token to fetch",
                self.inner.source.code,
                self.inner.source.auth.kind().as_str()
            )));
        }
        let before = self.inner.tokens.peek().map(|c| c.generation);
        let cached = self.cached_token(force).await?;
        let mut info = cached.token.info.clone();
        if before == Some(cached.generation) {
            info.origin = TokenOrigin::Cached;
        }
        Ok(TokenStatus {
            info,
            access_token: cached.token.access_token.clone(),
        })
    }

    /// Metadata of the token currently cached in this process, if any.
    pub fn cached_token_info(&self) -> Option<TokenInfo> {
        self.inner.tokens.peek().map(|c| {
            let mut i = c.token.info.clone();
            i.origin = TokenOrigin::Cached;
            i
        })
    }

    /// Forgets the cached token, in memory and in the store.
    pub async fn clear_token_cache(&self) -> Result<()> {
        self.inner.tokens.clear();
        if let (Some(store), true) = (&self.inner.store, self.inner.persist_tokens) {
            store
                .delete_token(self.inner.source.id)
                .await
                .map_err(|e| Error::config_with("could not delete the stored token", e))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        call: &Call<'_>,
        at: OffsetDateTime,
        t0: Instant,
        attempt: u32,
        http_status: Option<u16>,
        outcome: AuditOutcome,
        error: Option<&str>,
    ) {
        crate::metrics::call_attempt(&self.inner.source.code, call.action, outcome, t0.elapsed());
        if matches!(self.inner.audit, AuditSink::None) {
            return;
        }
        let entry = AuditEntry {
            at,
            source_code: self.inner.source.code.clone(),
            endpoint: redact_url(&call.url).to_string(),
            action: call.action.to_owned(),
            message_id: call.ids.0.clone(),
            transaction_id: call.ids.1.clone(),
            http_status,
            outcome,
            duration_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
            attempt,
            error: error.map(str::to_owned),
        };
        self.inner.audit.record(entry).await;
    }
}

/// `Bearer TOKEN` in a buffer of exactly its size (no reallocation leaves a copy behind).
fn bearer(token: &str) -> zeroize::Zeroizing<String> {
    let mut text = zeroize::Zeroizing::new(String::with_capacity(7 + token.len()));
    text.push_str("Bearer ");
    text.push_str(token);
    text
}

fn outcome_of(e: &Error) -> AuditOutcome {
    if e.is_auth() {
        AuditOutcome::Auth
    } else if e.is_timeout() {
        AuditOutcome::Timeout
    } else if e.is_connect() || e.is_dns() || e.is_tls() {
        AuditOutcome::Network
    } else if e.is_decode() {
        AuditOutcome::InvalidResponse
    } else if e.status().is_some() {
        AuditOutcome::HttpError
    } else {
        AuditOutcome::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::DataSourceInput;

    fn client(base_url: &str) -> DciClient {
        let source = DataSourceInput {
            code: "urls".into(),
            name: "URL joins".into(),
            registry_type: "crvs".into(),
            base_url: base_url.into(),
            ..DataSourceInput::default()
        }
        .validate()
        .expect("a valid source");
        DciClient::builder(source).build().expect("a client")
    }

    #[test]
    fn endpoint_urls_are_joined_once_and_stay_right_beyond_the_cache() {
        let c = client("https://registry.example.org/dci/v1");
        let first = c.url_for("/registry/sync/search").unwrap();
        assert_eq!(
            first.as_str(),
            "https://registry.example.org/dci/v1/registry/sync/search"
        );
        // The second call is served from the cache and is the same URL.
        assert_eq!(c.url_for("registry/sync/search").unwrap(), first);
        assert_eq!(c.url_for("/registry/sync/search").unwrap(), first);
        // More paths than the cache keeps: every one is still joined correctly.
        for i in 0..(2 * MAX_CACHED_URLS) {
            let u = c.url_for(&format!("/registry/p{i}")).unwrap();
            assert_eq!(
                u.as_str(),
                format!("https://registry.example.org/dci/v1/registry/p{i}")
            );
        }
        assert_eq!(c.inner.urls.read().unwrap().len(), MAX_CACHED_URLS);
    }
}
