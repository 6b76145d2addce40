//! Fault injection: latency, 5xx, 429 with `Retry-After`, connection resets, lost replies,
//! "down", token revocation and callback faults, per target (a registry, the token endpoint,
//! or all).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dci_protocol::RegistryType;
use serde::{Deserialize, Serialize};

use crate::reply;
use crate::state::AppState;

/// What a fault applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultTarget {
    /// The civil registry under `/crvs`.
    Crvs,
    /// The disability registry under `/dr`.
    Dr,
    /// The integrated beneficiary registry under `/ibr`.
    Ibr,
    /// The social registry under `/social`.
    Social,
    /// The farmer registry under `/fr`.
    Fr,
    /// The OAuth2 token endpoint.
    Token,
    /// Every registry and the token endpoint (the default).
    #[default]
    All,
}

impl From<RegistryType> for FaultTarget {
    fn from(r: RegistryType) -> Self {
        match r {
            RegistryType::Crvs => FaultTarget::Crvs,
            RegistryType::Dr => FaultTarget::Dr,
            RegistryType::Ibr => FaultTarget::Ibr,
            RegistryType::Social => FaultTarget::Social,
            RegistryType::Fr => FaultTarget::Fr,
        }
    }
}

/// Faults applied to async callbacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackFaults {
    /// Extra delay before the callback is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Send every callback twice (clients must deduplicate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Do not send the callback at all (the result stays available through txn status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail: Option<bool>,
}

/// A fault specification, as posted to `POST /admin/faults`. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// What the faults apply to (default `all`). Posting replaces the faults of that target.
    #[serde(default)]
    pub target: FaultTarget,
    /// Delay before every response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Share of requests answered with HTTP 500 (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_500_ratio: Option<f64>,
    /// Share of requests answered with HTTP 503 (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_503_ratio: Option<f64>,
    /// Share of requests answered with HTTP 429 and `Retry-After` (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_429_ratio: Option<f64>,
    /// `Retry-After` seconds on 429 and 503 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// Share of requests whose connection is closed without any response (0–1), before the
    /// request is processed: nothing happens (no transaction, no callback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_ratio: Option<f64>,
    /// Share of requests processed and then left without an answer (0–1): the connection is
    /// closed instead of sending the response. An async search is accepted and its callback
    /// is sent, a sync search is run, a token is issued, and txn status knows the transaction;
    /// only the reply is lost, as when a network drops it. Tests whether clients retry
    /// safely (the same `transaction_id` twice, or txn status first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reply_ratio: Option<f64>,
    /// Answer every request with 503 until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<bool>,
    /// Invalidate every issued token now: the next call with an old token gets 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_tokens: Option<bool>,
    /// Faults applied to async callbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackFaults>,
}

impl Faults {
    /// Empty faults for `target`; chain the setters below.
    pub fn new(target: FaultTarget) -> Self {
        Faults {
            target,
            ..Faults::default()
        }
    }
    /// Sets `latency_ms`.
    #[must_use]
    pub fn latency_ms(mut self, ms: u64) -> Self {
        self.latency_ms = Some(ms);
        self
    }
    /// Sets `http_500_ratio`.
    #[must_use]
    pub fn http_500_ratio(mut self, r: f64) -> Self {
        self.http_500_ratio = Some(r);
        self
    }
    /// Sets `http_503_ratio`.
    #[must_use]
    pub fn http_503_ratio(mut self, r: f64) -> Self {
        self.http_503_ratio = Some(r);
        self
    }
    /// Sets `http_429_ratio` and `retry_after_s`.
    #[must_use]
    pub fn http_429(mut self, ratio: f64, retry_after_s: u64) -> Self {
        self.http_429_ratio = Some(ratio);
        self.retry_after_s = Some(retry_after_s);
        self
    }
    /// Sets `reset_ratio`.
    #[must_use]
    pub fn reset_ratio(mut self, r: f64) -> Self {
        self.reset_ratio = Some(r);
        self
    }
    /// Sets `drop_reply_ratio`.
    #[must_use]
    pub fn drop_reply_ratio(mut self, r: f64) -> Self {
        self.drop_reply_ratio = Some(r);
        self
    }
    /// Sets `down`.
    #[must_use]
    pub fn down(mut self, down: bool) -> Self {
        self.down = Some(down);
        self
    }
    /// Sets `revoke_tokens`.
    #[must_use]
    pub fn revoke_tokens(mut self) -> Self {
        self.revoke_tokens = Some(true);
        self
    }
    /// Sets the callback faults.
    #[must_use]
    pub fn callback(mut self, c: CallbackFaults) -> Self {
        self.callback = Some(c);
        self
    }

    /// Checks ratios; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("http_500_ratio", self.http_500_ratio),
            ("http_503_ratio", self.http_503_ratio),
            ("http_429_ratio", self.http_429_ratio),
            ("reset_ratio", self.reset_ratio),
            ("drop_reply_ratio", self.drop_reply_ratio),
        ] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        Ok(())
    }

    /// `self` with unset fields taken from `fallback`.
    fn or(&self, fallback: &Faults) -> Faults {
        let cb = match (&self.callback, &fallback.callback) {
            (Some(a), Some(b)) => Some(CallbackFaults {
                delay_ms: a.delay_ms.or(b.delay_ms),
                duplicate: a.duplicate.or(b.duplicate),
                fail: a.fail.or(b.fail),
            }),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        Faults {
            target: self.target,
            latency_ms: self.latency_ms.or(fallback.latency_ms),
            http_500_ratio: self.http_500_ratio.or(fallback.http_500_ratio),
            http_503_ratio: self.http_503_ratio.or(fallback.http_503_ratio),
            http_429_ratio: self.http_429_ratio.or(fallback.http_429_ratio),
            retry_after_s: self.retry_after_s.or(fallback.retry_after_s),
            reset_ratio: self.reset_ratio.or(fallback.reset_ratio),
            drop_reply_ratio: self.drop_reply_ratio.or(fallback.drop_reply_ratio),
            down: self.down.or(fallback.down),
            revoke_tokens: None,
            callback: cb,
        }
    }
}

/// The faults in force, by target.
#[derive(Debug, Default)]
pub(crate) struct FaultTable(HashMap<FaultTarget, Faults>);

impl FaultTable {
    pub(crate) fn set(&mut self, f: Faults) {
        let mut f = f;
        f.revoke_tokens = None;
        self.0.insert(f.target, f);
    }
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
    pub(crate) fn list(&self) -> Vec<Faults> {
        let mut v: Vec<Faults> = self.0.values().cloned().collect();
        v.sort_by_key(|f| format!("{:?}", f.target));
        v
    }
    /// The target's own faults over the `all` faults.
    pub(crate) fn effective(&self, target: FaultTarget) -> Faults {
        let all = self.0.get(&FaultTarget::All).cloned().unwrap_or_default();
        match self.0.get(&target) {
            Some(own) if target != FaultTarget::All => own.or(&all),
            _ => all,
        }
    }
}

/// Which fault target a request path belongs to, if any (admin and JWKS paths have none).
pub(crate) fn target_of(path: &str) -> Option<FaultTarget> {
    if path.starts_with("/oauth2/") {
        return Some(FaultTarget::Token);
    }
    let first = path.trim_start_matches('/').split('/').next()?;
    // The OpenCRVS quirk mode is the civil registry too (faults, request bodies).
    if first.starts_with("opencrvs") {
        return Some(FaultTarget::Crvs);
    }
    first.parse::<RegistryType>().ok().map(FaultTarget::from)
}

/// The [`InjectedFault`] of a processed request whose reply is to be lost: the request
/// recorder closes the connection instead of answering.
pub(crate) const DROP_REPLY: &str = "drop_reply";

/// Marks a response as produced by a fault, for the request log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InjectedFault(pub(crate) &'static str);

fn hit(ratio: Option<f64>) -> bool {
    match ratio {
        Some(r) if r >= 1.0 => true,
        Some(r) if r > 0.0 => rand::random::<f64>() < r,
        _ => false,
    }
}

fn with_fault(mut resp: Response, name: &'static str) -> Response {
    resp.extensions_mut().insert(InjectedFault(name));
    resp
}

fn retry_after(resp: &mut Response, secs: u64) {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// Middleware: applies the faults of the request's target before the handler runs.
pub(crate) async fn inject(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(target) = target_of(req.uri().path()) else {
        return next.run(req).await;
    };
    let f = state.faults().effective(target);
    if f.down == Some(true) {
        let resp = reply::http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "err.service.unavailable",
            "the registry is down (injected fault `down`)",
        );
        return with_fault(resp, "down");
    }
    if let Some(ms) = f.latency_ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if hit(f.reset_ratio) {
        state.record_reset(req.method().as_str(), req.uri().path());
        // Unwinding out of the connection task drops the socket without a response, which is
        // what a reset looks like to the client; `resume_unwind` skips the panic hook, so
        // nothing is printed.
        std::panic::resume_unwind(Box::new("dci-sandbox: injected connection reset"));
    }
    let secs = f.retry_after_s.unwrap_or(1);
    if hit(f.http_429_ratio) {
        let mut resp = reply::http_error(
            StatusCode::TOO_MANY_REQUESTS,
            "err.request.too_many_requests",
            "too many requests (injected fault `http_429_ratio`)",
        );
        retry_after(&mut resp, secs);
        return with_fault(resp, "http_429");
    }
    if hit(f.http_503_ratio) {
        let mut resp = reply::http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "err.service.unavailable",
            "service unavailable (injected fault `http_503_ratio`)",
        );
        retry_after(&mut resp, secs);
        return with_fault(resp, "http_503");
    }
    if hit(f.http_500_ratio) {
        let resp = reply::http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "err.server",
            "internal error (injected fault `http_500_ratio`)",
        );
        return with_fault(resp, "http_500");
    }
    if hit(f.drop_reply_ratio) {
        return with_fault(next.run(req).await.into_response(), DROP_REPLY);
    }
    next.run(req).await.into_response()
}
