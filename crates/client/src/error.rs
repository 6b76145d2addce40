//! The one error type of `dci-client`.
//!
//! Shaped like reqwest's: a boxed inner value with a private kind, so kinds can grow without
//! breaking callers, who ask questions instead (`is_timeout()`, `is_tls()`, `status()`,
//! `registry_error()`, …). Classification uses typed causes only — reqwest's own predicates,
//! `rustls::Error` and `io::Error` found by walking `source()` — never the text of a message.
//!
//! `Display` is written for the sysadmin who configured the data source: what failed, where, why,
//! what to change, and the registry's own reason when it gave one. URLs never carry their query
//! string (OpenCRVS puts client credentials there) or user info.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::source::AuthKind;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

type Source = Arc<dyn StdError + Send + Sync>;

/// Anything that went wrong talking to a registry or its token endpoint.
///
/// Cheap to clone: concurrent callers waiting on one token fetch all receive its error.
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: Kind,
    phase: Phase,
    url: Option<Url>,
    status: Option<StatusCode>,
    registry: Option<RegistryError>,
    auth: Option<AuthKind>,
    timeout: Option<Duration>,
    attempts: u32,
    detail: Option<String>,
    source: Option<Source>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Timeout,
    Dns,
    Connect,
    /// Connected, but the connection closed before a complete reply.
    Closed,
    Tls(TlsProblem),
    Status,
    Rejected,
    Decode,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsProblem {
    Expired,
    NotYetValid,
    UnknownIssuer,
    WrongHost,
    Revoked,
    ClientCertRejected,
    NotTls,
    Other,
}

/// Which call failed: the OAuth2 token request or the registry call itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The OAuth2 token endpoint.
    Token,
    /// A registry endpoint.
    Registry,
    /// The async callback URI (connection test only).
    Callback,
    /// Not a network call (configuration).
    Local,
}

/// The registry's own reason for a failure, from whatever error shape it sent: a DCI ACK with
/// `error`, a callback header's `status_reason_code`/`status_reason_message`, `{errors:[…]}`,
/// RFC 7807 problem details, OAuth2 `{error, error_description}` or a bare
/// `{error|code|message}` object. The shapes are those of [`dci_protocol::reason::Reason`], so
/// HTTP errors, ACKs, sync replies and callbacks all give this one type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegistryError {
    /// Machine-readable code, e.g. `rjct.reference_id.invalid` or `invalid_client`.
    pub code: Option<String>,
    /// Human-readable message, as the registry wrote it (trimmed and truncated).
    pub message: Option<String>,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, "{c}: {m}"),
            (Some(c), None) => f.write_str(c),
            (None, Some(m)) => f.write_str(m),
            (None, None) => f.write_str("no reason given"),
        }
    }
}

const MAX_REASON_CHARS: usize = 300;

fn clean(s: &str) -> Option<String> {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.chars().count() > MAX_REASON_CHARS {
        let cut: String = s.chars().take(MAX_REASON_CHARS).collect();
        Some(format!("{cut}…"))
    } else {
        Some(s.to_owned())
    }
}

fn reason(code: Option<&str>, message: Option<&str>) -> Option<RegistryError> {
    let e = RegistryError {
        code: code.and_then(clean),
        message: message.and_then(clean),
    };
    (e.code.is_some() || e.message.is_some()).then_some(e)
}

impl RegistryError {
    /// Extracts the registry's reason from an error body of any known shape. Bodies that are
    /// not JSON give their first line of text (HTML error pages give nothing useful, so none).
    pub fn from_body(body: &[u8]) -> Option<RegistryError> {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            let text = String::from_utf8_lossy(body);
            let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
            if line.starts_with('<') {
                return None;
            }
            return reason(None, Some(line));
        };
        Self::from_json(&v)
    }

    /// As [`RegistryError::from_body`], for an already-parsed body. The shapes are read by
    /// [`dci_protocol::reason::Reason`]; this cleans what it found for display.
    pub fn from_json(v: &Value) -> Option<RegistryError> {
        dci_protocol::reason::Reason::from_value(v).and_then(RegistryError::from_reason)
    }

    /// The protocol's reason, trimmed, without control characters and truncated; `None` when
    /// nothing is left.
    pub fn from_reason(r: dci_protocol::reason::Reason) -> Option<RegistryError> {
        reason(r.code.as_deref(), r.message.as_deref())
    }

    /// A reason from a code and a message (either may be absent), cleaned like
    /// [`RegistryError::from_reason`].
    pub fn new(code: Option<&str>, message: Option<&str>) -> Option<RegistryError> {
        reason(code, message)
    }
}

/// Removes query, fragment and user info: they may carry credentials (OpenCRVS's token call).
pub(crate) fn redact_url(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u
}

impl Error {
    fn new(kind: Kind, phase: Phase) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                phase,
                url: None,
                status: None,
                registry: None,
                auth: None,
                timeout: None,
                attempts: 1,
                detail: None,
                source: None,
            }),
        }
    }

    /// A configuration mistake. `detail` names the field and the fix.
    pub(crate) fn config(detail: impl Into<String>) -> Error {
        let mut e = Error::new(Kind::Config, Phase::Local);
        e.inner.detail = Some(detail.into());
        e
    }

    pub(crate) fn config_with(
        detail: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Error {
        let mut e = Error::config(detail);
        e.inner.source = Some(Arc::new(source));
        e
    }

    /// An HTTP error status with whatever reason the body gave.
    pub(crate) fn http_status(phase: Phase, url: &Url, status: StatusCode, body: &[u8]) -> Error {
        let mut e = Error::new(Kind::Status, phase).with_url(url);
        e.inner.status = Some(status);
        e.inner.registry = RegistryError::from_body(body);
        e
    }

    /// A DCI rejection inside an HTTP success.
    pub(crate) fn rejected(url: &Url, status: StatusCode, reason: Option<RegistryError>) -> Error {
        let mut e = Error::new(Kind::Rejected, Phase::Registry).with_url(url);
        e.inner.status = Some(status);
        e.inner.registry = reason;
        e
    }

    /// A reply that could not be understood. `what` says what was expected.
    pub(crate) fn decode(
        phase: Phase,
        url: &Url,
        what: impl Into<String>,
        source: Option<Source>,
    ) -> Error {
        let mut e = Error::new(Kind::Decode, phase).with_url(url);
        e.inner.detail = Some(what.into());
        e.inner.source = source;
        e
    }

    /// Classifies a reqwest error from its typed causes.
    pub(crate) fn from_reqwest(phase: Phase, url: &Url, err: reqwest::Error) -> Error {
        let kind = classify(&err);
        let mut e = Error::new(kind, phase).with_url(url);
        if let Some(s) = err.status() {
            e.inner.status = Some(s);
        }
        e.inner.source = Some(Arc::new(err.without_url()));
        e
    }

    /// Classifies an I/O error (raw TCP connects in the connection test).
    pub(crate) fn from_io(phase: Phase, url: &Url, err: io::Error) -> Error {
        let kind = classify_chain(&err).unwrap_or(match err.kind() {
            io::ErrorKind::TimedOut => Kind::Timeout,
            _ => Kind::Connect,
        });
        let mut e = Error::new(kind, phase).with_url(url);
        e.inner.source = Some(Arc::new(err));
        e
    }

    pub(crate) fn dns(phase: Phase, url: &Url, err: Option<io::Error>) -> Error {
        let mut e = Error::new(Kind::Dns, phase).with_url(url);
        e.inner.source = err.map(|e| Arc::new(e) as Source);
        e
    }

    pub(crate) fn timeout(phase: Phase, url: &Url, after: Duration) -> Error {
        Error::new(Kind::Timeout, phase)
            .with_url(url)
            .with_timeout(after)
    }

    pub(crate) fn with_url(mut self, url: &Url) -> Error {
        self.inner.url = Some(redact_url(url));
        self
    }

    pub(crate) fn with_auth(mut self, auth: AuthKind) -> Error {
        self.inner.auth = Some(auth);
        self
    }

    pub(crate) fn with_timeout(mut self, t: Duration) -> Error {
        self.inner.timeout = Some(t);
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Error {
        self.inner.attempts = attempts;
        self
    }

    /// The request did not complete in time (connect, read or total timeout).
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == Kind::Timeout
    }

    /// No connection could be made (refused, unreachable, reset before a reply). DNS and TLS
    /// failures answer their own questions, not this one.
    pub fn is_connect(&self) -> bool {
        matches!(self.inner.kind, Kind::Connect | Kind::Closed)
    }

    /// The request may have reached the server but its reply did not come back whole (the
    /// connection closed mid-reply, or the call timed out): for a non-idempotent call the
    /// outcome is unknown, not failed.
    pub fn is_reply_lost(&self) -> bool {
        matches!(self.inner.kind, Kind::Closed | Kind::Timeout)
    }

    /// What failed and why, without the advice sentence (for callers that give their own).
    pub fn summary(&self) -> String {
        format!("{} failed: {}", what(self), problem(self))
    }

    /// The host name could not be resolved.
    pub fn is_dns(&self) -> bool {
        self.inner.kind == Kind::Dns
    }

    /// The TLS handshake failed (certificate expired, untrusted, wrong host, client certificate
    /// refused, or the server does not speak TLS).
    pub fn is_tls(&self) -> bool {
        matches!(self.inner.kind, Kind::Tls(_))
    }

    /// The credentials were refused or are missing: HTTP 401/403 from the registry, the token
    /// endpoint rejecting the client, or a DCI rejection with an authorisation reason code.
    pub fn is_auth(&self) -> bool {
        let code = self.registry_code().unwrap_or_default();
        match self.inner.kind {
            Kind::Status => match self.inner.phase {
                Phase::Token => {
                    matches!(self.inner.status.map(|s| s.as_u16()), Some(400 | 401 | 403))
                        && !matches!(code, "invalid_request" | "unsupported_grant_type")
                }
                _ => matches!(self.inner.status.map(|s| s.as_u16()), Some(401 | 403)),
            },
            Kind::Rejected => {
                code.contains("unauthorized")
                    || code.contains("forbidden")
                    || code.starts_with("err.signature")
            }
            _ => false,
        }
    }

    /// The HTTP status, when the server answered (also set for DCI rejections inside a 200).
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The registry's (or token endpoint's) own reason, when it gave one.
    pub fn registry_error(&self) -> Option<&RegistryError> {
        self.inner.registry.as_ref()
    }

    /// The registry accepted the HTTP request but rejected it at the DCI level: ACK `ERR`,
    /// header `status: rjct`, or rejected items.
    pub fn is_rejected(&self) -> bool {
        self.inner.kind == Kind::Rejected
    }

    /// The reply could not be parsed (not JSON, missing `access_token`, bad `expires_in`, …).
    pub fn is_decode(&self) -> bool {
        self.inner.kind == Kind::Decode
    }

    /// The data source or client configuration is unusable; nothing was sent.
    pub fn is_config(&self) -> bool {
        self.inner.kind == Kind::Config
    }

    /// The failure came from the OAuth2 token endpoint rather than the registry.
    pub fn is_token_endpoint(&self) -> bool {
        self.inner.phase == Phase::Token
    }

    /// The URL of the failed call, without query string or user info.
    pub fn url(&self) -> Option<&Url> {
        self.inner.url.as_ref()
    }

    /// How many attempts were made before giving up.
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// A short stable name for the class of failure, for audit rows and JSON output.
    pub fn class(&self) -> &'static str {
        match self.inner.kind {
            Kind::Config => "config",
            Kind::Timeout => "timeout",
            Kind::Dns => "dns",
            Kind::Connect | Kind::Closed => "connect",
            Kind::Tls(_) => "tls",
            Kind::Status if self.is_auth() => "auth",
            Kind::Status => "http_status",
            Kind::Rejected => "rejected",
            Kind::Decode => "decode",
            Kind::Request => "request",
        }
    }

    /// What the sysadmin should change or check, as one sentence or two.
    pub fn hint(&self) -> String {
        hint(self)
    }

    /// Retrying might help: transient network trouble or an overloaded registry.
    pub(crate) fn is_transient(&self) -> bool {
        match self.inner.kind {
            Kind::Connect | Kind::Closed | Kind::Timeout => true,
            Kind::Status => matches!(
                self.inner.status.map(|s| s.as_u16()),
                Some(429 | 500 | 502 | 503 | 504)
            ),
            _ => false,
        }
    }

    fn registry_code(&self) -> Option<&str> {
        self.inner.registry.as_ref()?.code.as_deref()
    }

    fn host(&self) -> String {
        match &self.inner.url {
            Some(u) => match (u.host_str(), u.port_or_known_default()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => u.to_string(),
            },
            None => "the server".to_owned(),
        }
    }
}

fn classify(err: &reqwest::Error) -> Kind {
    if let Some(k) = classify_chain(err) {
        return k;
    }
    if err.is_timeout() {
        Kind::Timeout
    } else if err.is_dns() {
        Kind::Dns
    } else if err.is_connect() {
        Kind::Connect
    } else if err.is_decode() {
        Kind::Decode
    } else if err.is_builder() {
        Kind::Config
    } else if err.is_request() || err.is_body() {
        // The connection broke mid-request (reset, closed early): a transport failure.
        if has_io_error(err) {
            Kind::Connect
        } else {
            Kind::Request
        }
    } else {
        Kind::Request
    }
}

/// Looks for a TLS cause anywhere in the chain. TLS failures surface inside connect errors,
/// so they must be found before `is_connect()` claims them.
fn classify_chain(err: &(dyn StdError + 'static)) -> Option<Kind> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(Kind::Tls(tls_problem(t)));
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        {
            return Some(Kind::Closed);
        }
        // `io::Error::source()` skips the error it wraps (it returns *that* error's source),
        // and tokio-rustls nests io::Error(io::Error(rustls::Error)): descend by hand.
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            cur = Some(inner as &(dyn StdError + 'static));
            continue;
        }
        cur = e.source();
    }
    None
}

fn has_io_error(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<io::Error>() {
            return true;
        }
        cur = e.source();
    }
    false
}

fn tls_problem(e: &rustls::Error) -> TlsProblem {
    use rustls::{AlertDescription as A, CertificateError as C};
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => TlsProblem::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => TlsProblem::NotYetValid,
            C::UnknownIssuer => TlsProblem::UnknownIssuer,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsProblem::WrongHost,
            C::Revoked => TlsProblem::Revoked,
            _ => TlsProblem::Other,
        },
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::CertificateRequired
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::AccessDenied,
        ) => TlsProblem::ClientCertRejected,
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            TlsProblem::NotTls
        }
        _ => TlsProblem::Other,
    }
}

fn what(e: &Error) -> String {
    let url = e.inner.url.as_ref().map(Url::as_str).unwrap_or("(no URL)");
    match e.inner.phase {
        Phase::Token => format!("OAuth2 token request to {url}"),
        Phase::Registry => format!("request to {url}"),
        Phase::Callback => format!("callback URI check of {url}"),
        Phase::Local => "configuration".to_owned(),
    }
}

fn url_field(e: &Error) -> &'static str {
    match e.inner.phase {
        Phase::Token => "OAuth2 token URL",
        Phase::Callback => "callback URI",
        _ => "base URL",
    }
}

fn problem(e: &Error) -> String {
    let host = e.host();
    let status = e.inner.status.map(|s| s.as_u16()).unwrap_or(0);
    match e.inner.kind {
        Kind::Config => e
            .inner
            .detail
            .clone()
            .unwrap_or_else(|| "invalid configuration".into()),
        Kind::Timeout => match e.inner.timeout {
            Some(t) => format!("no response from {host} within {} s", t.as_secs_f32()),
            None => format!("timed out waiting for {host}"),
        },
        Kind::Dns => format!("could not resolve the host name of {host}"),
        Kind::Connect => format!("could not connect to {host} (refused, unreachable or reset)"),
        Kind::Closed => format!("the connection to {host} closed before a complete reply"),
        Kind::Tls(p) => match p {
            TlsProblem::Expired => format!("the TLS certificate of {host} has expired"),
            TlsProblem::NotYetValid => format!("the TLS certificate of {host} is not valid yet"),
            TlsProblem::UnknownIssuer => {
                format!("the TLS certificate of {host} is not signed by a trusted authority")
            }
            TlsProblem::WrongHost => {
                format!("the TLS certificate presented by {host} is for a different host name")
            }
            TlsProblem::Revoked => format!("the TLS certificate of {host} has been revoked"),
            TlsProblem::ClientCertRejected => {
                format!("{host} refused the TLS handshake (our client certificate, or lack of one)")
            }
            TlsProblem::NotTls => format!("{host} did not answer with TLS"),
            TlsProblem::Other => format!("the TLS handshake with {host} failed"),
        },
        Kind::Status => {
            let reason = e
                .inner
                .status
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            format!("HTTP {status} {reason}").trim_end().to_owned()
        }
        Kind::Rejected => "the registry rejected the request (DCI status rjct / ERR)".to_owned(),
        Kind::Decode => format!(
            "the reply could not be understood: expected {}",
            e.inner.detail.as_deref().unwrap_or("JSON")
        ),
        Kind::Request => "the request failed".to_owned(),
    }
}

fn hint(e: &Error) -> String {
    let field = url_field(e);
    let status = e.inner.status.map(|s| s.as_u16()).unwrap_or(0);
    let code = e.registry_code().unwrap_or_default();
    let token = e.inner.phase == Phase::Token;
    let auth = e.inner.auth;
    match e.inner.kind {
        Kind::Config => String::new(),
        Kind::Timeout => format!(
            "The server is slow or not answering. Check that it is up and that the {field} points \
             at it; if it is known to be slow, raise the data source's timeout."
        ),
        Kind::Dns => format!(
            "Check the spelling of the host in the {field}, and that this machine's DNS can \
             resolve it (e.g. `getent hosts HOST`)."
        ),
        Kind::Connect => format!(
            "Check the host and port in the {field}, that the server is running, and that no \
             firewall or proxy blocks the connection."
        ),
        Kind::Closed => "The registry, or a proxy or load balancer in front of it, dropped the \
            connection. Try again; if it persists, check proxies and ask the registry operator to \
            check the registry's logs."
            .to_owned(),
        Kind::Tls(p) => match p {
            TlsProblem::Expired | TlsProblem::NotYetValid => "Ask the registry operator to renew \
                the certificate, and check this machine's clock. Do not turn verification off \
                in production."
                .to_owned(),
            TlsProblem::UnknownIssuer => "If the registry uses a private CA, set the data \
                source's CA bundle (TLS CA file); turn verification off only for local testing."
                .to_owned(),
            TlsProblem::WrongHost => format!(
                "Use the host name the certificate was issued for in the {field}, or ask the \
                 registry operator for a certificate that covers this name."
            ),
            TlsProblem::Revoked => {
                "Ask the registry operator to replace the revoked certificate.".to_owned()
            }
            TlsProblem::ClientCertRejected => "Check the data source's mutual-TLS client \
                certificate and key, and that the registry trusts the CA that issued it."
                .to_owned(),
            TlsProblem::NotTls => format!(
                "The {field} probably says https:// for a plain-HTTP port; check scheme and port."
            ),
            TlsProblem::Other => {
                format!("Check the {field}'s scheme and port, and the data source's TLS settings.")
            }
        },
        Kind::Status if token => match (status, code) {
            (_, "invalid_client") | (401, _) => "The token endpoint refused the client \
                credentials. Check the client id and secret, and where they are sent \
                (credential placement: body, basic, query or json) for this server."
                .to_owned(),
            (_, "invalid_scope") => "The requested OAuth2 scope is not allowed for this \
                client. Fix the data source's scope or ask the registry operator to grant it."
                .to_owned(),
            (_, "unauthorized_client") | (403, _) => "This client may not use the \
                client-credentials grant. Ask the registry operator to enable it."
                .to_owned(),
            (_, "unsupported_grant_type") | (_, "invalid_request") | (400, _) => "The token \
                endpoint did not accept the request. Check the credential placement (body, \
                basic, query or json) this server expects, and the token URL."
                .to_owned(),
            (404 | 405, _) => {
                "Nothing answers token requests there: check the OAuth2 token URL.".to_owned()
            }
            (429, _) => "The token endpoint is rate limiting us; try again later.".to_owned(),
            (500..=599, _) => "The token server failed. Try again later; if it persists, contact \
                the registry administrator."
                .to_owned(),
            _ => "Check the OAuth2 token URL and credentials.".to_owned(),
        },
        Kind::Status => match status {
            400 | 422 => "The registry found the request invalid. Check the data source's \
                sender id, receiver id and endpoint paths, and the search parameters."
                .to_owned(),
            401 => match auth {
                Some(AuthKind::OAuth2) => "The registry refused our access token even after a \
                    fresh one was fetched. Check that the OAuth2 client (client id, scope) is \
                    registered with this registry and that the token URL belongs to it."
                    .to_owned(),
                Some(AuthKind::Bearer) => "The registry refused the bearer token. Check that \
                    the token is correct and has not expired or been revoked."
                    .to_owned(),
                Some(AuthKind::Basic) => {
                    "The registry refused the user name and password. Check both.".to_owned()
                }
                _ => "The registry requires authentication. Configure the data source's \
                    authentication (oauth2, bearer or basic)."
                    .to_owned(),
            },
            403 => "Our credentials were accepted but lack permission. Ask the registry \
                operator to authorise this client and sender id, and check the OAuth2 scope."
                .to_owned(),
            404 => "The registry has no such endpoint. Check the base URL (it should not \
                include the /registry path) and the data source's endpoint paths."
                .to_owned(),
            405 => "The registry does not accept this method here. Check the endpoint paths."
                .to_owned(),
            408 => "The registry timed out reading the request; try again.".to_owned(),
            413 => "The request was too large. Send fewer search items per request.".to_owned(),
            429 => "The registry is rate limiting us. Wait, or lower the request rate or \
                concurrency for this data source."
                .to_owned(),
            500 => "The registry failed internally. Try again later; if it persists, contact \
                the registry administrator."
                .to_owned(),
            502 => "A gateway in front of the registry could not reach it. Try again later; if \
                it persists, contact the registry administrator."
                .to_owned(),
            503 => "The registry is temporarily unavailable (maintenance or overload). Try \
                again later; if it persists, contact the registry administrator."
                .to_owned(),
            504 => "A gateway in front of the registry timed out waiting for it. Try again \
                later; if it persists, contact the registry administrator."
                .to_owned(),
            _ => "Check the data source's base URL and endpoint paths.".to_owned(),
        },
        Kind::Rejected => {
            if code.starts_with("err.signature") {
                "The registry refused our signature: check the data source's signing key and \
                 that the registry has our public key (JWKS)."
                    .to_owned()
            } else if code.contains("unauthorized") || code.contains("forbidden") {
                "The registry does not authorise this client for the request: check the sender \
                 id and the OAuth2 scope with the registry operator."
                    .to_owned()
            } else if code.contains("sender_id") || code.contains("receiver_id") {
                "Check the data source's sender id and receiver id.".to_owned()
            } else {
                "Check the request against the registry's reason above.".to_owned()
            }
        }
        Kind::Decode => {
            if token {
                "The token URL may point at something other than an OAuth2 token endpoint \
                 (e.g. a login page); check it."
                    .to_owned()
            } else {
                "The base URL may point at something other than a DCI registry (e.g. a web \
                 page or a proxy's error page); check it and the endpoint paths."
                    .to_owned()
            }
        }
        Kind::Request => "Check the data source's settings.".to_owned(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inner.kind == Kind::Config {
            return write!(f, "invalid configuration: {}", problem(self));
        }
        write!(f, "{} failed: {}", what(self), problem(self))?;
        if let Some(r) = &self.inner.registry {
            let who = if self.inner.phase == Phase::Token {
                "token server"
            } else {
                "registry"
            };
            write!(f, "; the {who} said: {r}")?;
        }
        if self.inner.attempts > 1 {
            write!(f, " (after {} attempts)", self.inner.attempts)?;
        }
        f.write_str(". ")?;
        f.write_str(&hint(self))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("dci_client::Error");
        d.field("kind", &self.inner.kind)
            .field("phase", &self.inner.phase);
        if let Some(u) = &self.inner.url {
            d.field("url", &u.as_str());
        }
        if let Some(s) = &self.inner.status {
            d.field("status", s);
        }
        if let Some(r) = &self.inner.registry {
            d.field("registry", r);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(v: Value) -> Option<RegistryError> {
        RegistryError::from_json(&v)
    }

    #[test]
    fn error_is_small_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn reads_every_error_body_shape() {
        let ack = json!({"message": {"ack_status": "ERR", "correlation_id": "c",
            "error": {"code": "err.sender_id.invalid", "message": "unknown sender"}}});
        assert_eq!(
            r(ack).unwrap().to_string(),
            "err.sender_id.invalid: unknown sender"
        );
        let hdr = json!({"header": {"status": "rjct", "status_reason_code": "rjct.search_criteria.invalid",
            "status_reason_message": "bad query"}});
        assert_eq!(
            r(hdr).unwrap().code.as_deref(),
            Some("rjct.search_criteria.invalid")
        );
        let errs =
            json!({"errors": [{"code": "E1", "message": "first"}, {"code": "E2", "message": "x"}]});
        assert_eq!(r(errs).unwrap().to_string(), "E1: first (and 1 more)");
        let oauth = json!({"error": "invalid_client", "error_description": "bad secret"});
        assert_eq!(r(oauth).unwrap().to_string(), "invalid_client: bad secret");
        let p7807 = json!({"type": "about:blank", "title": "Forbidden", "status": 403, "detail": "no scope"});
        assert_eq!(r(p7807).unwrap().to_string(), "Forbidden: no scope");
        let bare = json!({"code": 42, "message": "nope"});
        assert_eq!(r(bare).unwrap().to_string(), "42: nope");
        let nested = json!({"error": {"code": "X", "message": "y"}});
        assert_eq!(r(nested).unwrap().to_string(), "X: y");
        assert_eq!(r(json!({"ok": true})), None);
        assert_eq!(
            RegistryError::from_body(b"<html><body>502</body></html>"),
            None
        );
        assert_eq!(
            RegistryError::from_body(b"\n upstream connect error \n")
                .unwrap()
                .message
                .as_deref(),
            Some("upstream connect error")
        );
    }

    #[test]
    fn long_reasons_are_truncated_and_control_chars_removed() {
        let long = "x".repeat(2000);
        let e = r(json!({"message": format!("a\u{1b}[31m{long}")})).unwrap();
        let m = e.message.unwrap();
        assert!(m.chars().count() <= MAX_REASON_CHARS + 1);
        assert!(!m.contains('\u{1b}'));
    }

    #[test]
    fn urls_lose_query_and_userinfo() {
        let u = Url::parse("https://u:p@h.example/t?client_secret=s3cret#f").unwrap();
        let e = Error::http_status(Phase::Token, &u, StatusCode::UNAUTHORIZED, b"");
        let text = format!("{e} {e:?}");
        assert!(!text.contains("s3cret") && !text.contains("u:p"), "{text}");
        assert_eq!(e.url().unwrap().as_str(), "https://h.example/t");
    }

    #[test]
    fn status_messages_carry_reason_and_fix() {
        let u = Url::parse("https://reg.example/registry/sync/search").unwrap();
        let e = Error::http_status(
            Phase::Registry,
            &u,
            StatusCode::FORBIDDEN,
            br#"{"errors":[{"code":"err.request.forbidden","message":"scope missing"}]}"#,
        );
        assert!(e.is_auth());
        let s = e.to_string();
        assert!(s.contains("HTTP 403"), "{s}");
        assert!(s.contains("scope missing"), "{s}");
        assert!(s.contains("Ask the registry operator"), "{s}");
        let e = Error::http_status(Phase::Registry, &u, StatusCode::SERVICE_UNAVAILABLE, b"");
        assert!(e.is_transient() && !e.is_auth());
        assert!(e.to_string().contains("administrator"));
        let e = Error::http_status(
            Phase::Token,
            &u,
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_client"}"#,
        );
        assert!(e.is_auth() && e.is_token_endpoint());
        assert!(e.to_string().contains("client id and secret"));
    }
}
