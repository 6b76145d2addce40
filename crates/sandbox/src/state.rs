//! Shared state: issued tokens, faults, the request log, transactions, subscriptions and the
//! callback log. Locks are `std` mutexes held for short, await-free sections only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::SandboxConfig;
use crate::data::Dataset;
use crate::faults::{FaultTable, InjectedFault};
use crate::reply;

/// A recorded request (`GET /admin/requests`). Never holds credentials or headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The path, e.g. `/crvs/registry/sync/search` (no query string: it may hold credentials).
    pub endpoint: String,
    /// The HTTP method.
    pub method: String,
    /// The HTTP status answered; 0 when the connection was reset by a fault.
    pub status: u16,
    /// When the request was answered (RFC 3339).
    pub at: String,
    /// The injected fault that produced the answer, if any (`http_500`, `reset`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The JSON body of registry requests, only with `?bodies=true` (never for the token endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// A callback the sandbox sent (or, by fault, dropped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveredCallback {
    /// The `sender_uri` it was posted to.
    pub url: String,
    /// `on-search`, `on-subscribe`, `on-unsubscribe`, `txn-on-status` or `notify`.
    pub action: String,
    /// The transaction id echoed in the callback.
    pub transaction_id: String,
    /// The correlation id (the ACK's).
    pub correlation_id: String,
    /// The receiver's HTTP status; `None` when dropped by a fault or on a network error.
    pub status: Option<u16>,
    /// Why it was not delivered, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was sent (RFC 3339).
    pub at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: Instant,
}

/// An async (or sync) transaction kept for txn status.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub(crate) registry: dci_protocol::RegistryType,
    pub(crate) txn_type: String,
    pub(crate) transaction_id: String,
    pub(crate) correlation_id: String,
    pub(crate) reference_ids: Vec<String>,
    pub(crate) message: Value,
}

#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "sender_uri and receiver_id are for notify, landing next"
)]
pub(crate) struct Subscription {
    pub(crate) registry: dci_protocol::RegistryType,
    pub(crate) info: Value,
    pub(crate) sender_uri: String,
    pub(crate) receiver_id: String,
    pub(crate) active: bool,
}

pub(crate) struct Shared {
    pub(crate) cfg: SandboxConfig,
    pub(crate) data: RwLock<Dataset>,
    pub(crate) tokens: Mutex<HashMap<String, Issued>>,
    pub(crate) token_requests: AtomicU64,
    pub(crate) tokens_issued: AtomicU64,
    pub(crate) faults: Mutex<FaultTable>,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    pub(crate) txns: Mutex<Vec<Txn>>,
    pub(crate) subscriptions: Mutex<HashMap<String, Subscription>>,
    pub(crate) callbacks: Mutex<Vec<DeliveredCallback>>,
    pub(crate) counter: AtomicU64,
    pub(crate) http: reqwest::Client,
    pub(crate) signer: crate::signing::SandboxSigner,
}

/// Cheap to clone; every handler gets one.
#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Shared>);

/// Bound of each in-memory log (requests, transactions, callbacks): oldest entries go first.
const MAX_RECORDED: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder cannot leave these tables inconsistent, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AppState {
    pub(crate) fn cfg(&self) -> &SandboxConfig {
        &self.0.cfg
    }
    pub(crate) fn data(&self) -> RwLockReadGuard<'_, Dataset> {
        self.0.data.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn data_mut(&self) -> RwLockWriteGuard<'_, Dataset> {
        self.0.data.write().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn tokens(&self) -> MutexGuard<'_, HashMap<String, Issued>> {
        lock(&self.0.tokens)
    }
    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultTable> {
        lock(&self.0.faults)
    }
    pub(crate) fn requests(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        lock(&self.0.requests)
    }
    pub(crate) fn txns(&self) -> MutexGuard<'_, Vec<Txn>> {
        lock(&self.0.txns)
    }
    pub(crate) fn subscriptions(&self) -> MutexGuard<'_, HashMap<String, Subscription>> {
        lock(&self.0.subscriptions)
    }
    pub(crate) fn callbacks(&self) -> MutexGuard<'_, Vec<DeliveredCallback>> {
        lock(&self.0.callbacks)
    }
    pub(crate) fn next_number(&self) -> u64 {
        self.0.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn revoke_tokens(&self) {
        self.tokens().clear();
    }

    fn push_request(&self, r: RecordedRequest) {
        let mut log = self.requests();
        if log.len() >= MAX_RECORDED {
            log.remove(0);
        }
        log.push(r);
    }

    pub(crate) fn push_txn(&self, t: Txn) {
        let mut txns = self.txns();
        if txns.len() >= MAX_RECORDED {
            txns.remove(0);
        }
        txns.push(t);
    }

    pub(crate) fn push_callback(&self, c: DeliveredCallback) {
        let mut log = self.callbacks();
        if log.len() >= MAX_RECORDED {
            log.remove(0);
        }
        log.push(c);
    }

    pub(crate) fn record_reset(&self, method: &str, path: &str) {
        self.push_request(RecordedRequest {
            endpoint: path.to_owned(),
            method: method.to_owned(),
            status: 0,
            at: reply::now(),
            fault: Some("reset".to_owned()),
            body: None,
        });
    }
}

fn is_registry_path(path: &str) -> bool {
    matches!(crate::faults::target_of(path), Some(t) if t != crate::faults::FaultTarget::Token)
}

/// Middleware: counts token requests and records every non-admin request with its status.
pub(crate) async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/admin") {
        return next.run(req).await;
    }
    if path == crate::TOKEN_PATH {
        state.0.token_requests.fetch_add(1, Ordering::Relaxed);
    }
    let method = req.method().as_str().to_owned();
    // Registry bodies are kept for `?bodies=true`; the token endpoint's never are (secrets).
    let (req, body) = if is_registry_path(&path) && req.method() == axum::http::Method::POST {
        let (parts, body) = req.into_parts();
        match axum::body::to_bytes(body, crate::MAX_BODY).await {
            Ok(bytes) => {
                let v = serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                });
                (
                    Request::from_parts(parts, axum::body::Body::from(bytes)),
                    Some(v),
                )
            }
            Err(_) => {
                return reply::http_error(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "err.request.bad",
                    "request body too large (limit 2 MiB)",
                );
            }
        }
    } else {
        (req, None)
    };
    let resp = next.run(req).await;
    let fault = resp
        .extensions()
        .get::<InjectedFault>()
        .map(|f| f.0.to_owned());
    state.push_request(RecordedRequest {
        endpoint: path,
        method,
        status: resp.status().as_u16(),
        at: reply::now(),
        fault,
        body,
    });
    resp
}
