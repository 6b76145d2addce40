//! Shared state: issued tokens, faults, the request log, transactions, subscriptions and the
//! callback log, each bounded (see [`crate::ring`]). Locks are `std` mutexes held for short,
//! await-free sections only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use dci_protocol::RegistryType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::SandboxConfig;
use crate::data::Dataset;
use crate::faults::{FaultTable, InjectedFault};
use crate::reply;
use crate::ring::{LogStats, Ring};

/// A recorded request (`GET /admin/requests`). Never holds credentials or headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The path, e.g. `/crvs/registry/sync/search` (no query string: it may hold credentials).
    pub endpoint: String,
    /// The HTTP method.
    pub method: String,
    /// The HTTP status answered; 0 when no answer was sent (the `reset` and `drop_reply`
    /// faults close the connection instead).
    pub status: u16,
    /// When the request was answered (RFC 3339).
    pub at: String,
    /// The injected fault that produced the answer, if any (`http_500`, `reset`,
    /// `drop_reply`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// For a dropped reply (`drop_reply`), the status the registry had answered before the
    /// reply was lost: 2xx when it processed the request, 401 when it refused the token, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_status: Option<u16>,
    /// The JSON body of registry requests, only with `?bodies=true` (never for the token
    /// endpoint), and only while it fits the log's body budget (see `body_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The size in bytes of the body received, also when the body itself is no longer kept
    /// (larger than the per-entry cap, or pushed out of the body budget by newer ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_size: Option<usize>,
}

/// One delivery attempt of a callback the sandbox sent (or, by fault, dropped).
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
    /// The attempt number, from 1: a failed delivery (network error, timeout, HTTP 5xx, 408
    /// or 429) is sent again with exponential backoff, the same bytes each time.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// When this attempt failed and another one is scheduled: in how many milliseconds.
    /// `None` on success, on a final refusal (other 4xx), on the last attempt, and when too
    /// many redeliveries were pending already (`error` says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

fn first_attempt() -> u32 {
    1
}

/// Callback deliveries, counted once per callback (not per attempt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStats {
    /// Callbacks the receiver accepted (2xx), at whatever attempt.
    pub delivered: u64,
    /// Callbacks the receiver refused for good (4xx other than 408 and 429).
    pub refused: u64,
    /// Callbacks given up after the last attempt failed.
    pub gave_up: u64,
    /// Callbacks not sent because of the callback `fail` fault.
    pub dropped: u64,
    /// Attempts after the first (the redeliveries).
    pub redeliveries: u64,
    /// Callbacks waiting for their next attempt now.
    pub pending: u64,
}

/// Counters and log sizes: `GET /admin/stats`, [`crate::Sandbox::stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxStats {
    /// Requests that reached the token endpoint (including refused and faulted ones).
    pub token_requests: u64,
    /// Tokens issued.
    pub tokens_issued: u64,
    /// Tokens known now (expired ones go lazily).
    pub active_tokens: usize,
    /// The request log (`/admin/requests`) and its kept bodies.
    pub requests: LogStats,
    /// Transactions kept for txn status, and their kept results.
    pub transactions: LogStats,
    /// The callback log (`/admin/callbacks`): one entry per attempt.
    pub callbacks: LogStats,
    /// Callback outcomes.
    pub deliveries: DeliveryStats,
    /// Bytes of request bodies and transaction results kept now, all logs together.
    pub retained_bytes: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: Instant,
}

/// An async (or sync) transaction kept for txn status; its result (the response message, as
/// JSON bytes) is the log entry's payload.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub(crate) registry: RegistryType,
    pub(crate) txn_type: String,
    pub(crate) transaction_id: String,
    pub(crate) correlation_id: String,
    pub(crate) reference_ids: Vec<String>,
}

/// What txn status found.
pub(crate) enum TxnLookup {
    /// The transaction and its result.
    Found {
        txn_type: String,
        message: Value,
    },
    /// The transaction is known but its result was pushed out of the body budget.
    ResultDropped {
        transaction_id: String,
    },
    NotFound,
}

/// The transactions, with hash indexes by transaction id and correlation id (the newest wins).
#[derive(Debug)]
pub(crate) struct TxnLog {
    ring: Ring<Txn>,
    by_transaction: HashMap<(RegistryType, String), u64>,
    by_correlation: HashMap<(RegistryType, String), u64>,
}

impl TxnLog {
    fn new(cfg: &SandboxConfig) -> Self {
        TxnLog {
            ring: Ring::new(cfg.log_entries, cfg.log_body_budget, cfg.log_entry_body_cap),
            by_transaction: HashMap::new(),
            by_correlation: HashMap::new(),
        }
    }

    /// Records `t` with its result, the message as serialised JSON.
    fn push(&mut self, t: Txn, message: &[u8]) {
        let keys = (
            (t.registry, t.transaction_id.clone()),
            (t.registry, t.correlation_id.clone()),
        );
        let (seq, evicted) = self
            .ring
            .push(t, Some((message.len(), || Box::<[u8]>::from(message))));
        if let Some((old, e)) = evicted {
            let k = (e.registry, e.transaction_id);
            if self.by_transaction.get(&k) == Some(&old) {
                self.by_transaction.remove(&k);
            }
            let k = (e.registry, e.correlation_id);
            if self.by_correlation.get(&k) == Some(&old) {
                self.by_correlation.remove(&k);
            }
        }
        self.by_transaction.insert(keys.0, seq);
        self.by_correlation.insert(keys.1, seq);
    }

    /// The newest transaction of `registry` whose `attr_type` is one of `values`.
    pub(crate) fn find(
        &self,
        registry: RegistryType,
        attr_type: &str,
        values: &[String],
    ) -> TxnLookup {
        let by_key = |map: &HashMap<(RegistryType, String), u64>| {
            values
                .iter()
                .filter_map(|v| map.get(&(registry, v.clone())).copied())
                .max()
        };
        let seq = match attr_type {
            "transaction_id" => by_key(&self.by_transaction),
            "correlation_id" => by_key(&self.by_correlation),
            "reference_id_list" => self
                .ring
                .iter()
                .rev()
                .find(|(_, t, _)| {
                    t.registry == registry && values.iter().any(|v| t.reference_ids.contains(v))
                })
                .map(|(seq, _, _)| seq),
            _ => None,
        };
        let Some((t, payload)) = seq.and_then(|s| self.ring.get(s)) else {
            return TxnLookup::NotFound;
        };
        match payload.and_then(|p| serde_json::from_slice(p).ok()) {
            Some(message) => TxnLookup::Found {
                txn_type: t.txn_type.clone(),
                message,
            },
            None => TxnLookup::ResultDropped {
                transaction_id: t.transaction_id.clone(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub(crate) registry: RegistryType,
    pub(crate) info: Value,
    pub(crate) sender_uri: String,
    pub(crate) receiver_id: String,
    pub(crate) active: bool,
    /// Order of creation, to forget the oldest when the table is full.
    pub(crate) created: u64,
}

#[derive(Debug, Default)]
pub(crate) struct DeliveryCounters {
    pub(crate) delivered: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) gave_up: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) redeliveries: AtomicU64,
    pub(crate) pending: AtomicU64,
    /// Bytes of callback bodies held by pending redeliveries.
    pub(crate) pending_bytes: std::sync::atomic::AtomicUsize,
}

impl DeliveryCounters {
    fn snapshot(&self) -> DeliveryStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DeliveryStats {
            delivered: get(&self.delivered),
            refused: get(&self.refused),
            gave_up: get(&self.gave_up),
            dropped: get(&self.dropped),
            redeliveries: get(&self.redeliveries),
            pending: get(&self.pending),
        }
    }
}

pub(crate) struct Shared {
    pub(crate) cfg: SandboxConfig,
    pub(crate) data: RwLock<Dataset>,
    pub(crate) tokens: Mutex<HashMap<String, Issued>>,
    pub(crate) token_requests: AtomicU64,
    pub(crate) tokens_issued: AtomicU64,
    pub(crate) faults: Mutex<FaultTable>,
    pub(crate) requests: Mutex<Ring<RecordedRequest>>,
    pub(crate) txns: Mutex<TxnLog>,
    pub(crate) subscriptions: Mutex<HashMap<String, Subscription>>,
    pub(crate) callbacks: Mutex<Ring<DeliveredCallback>>,
    pub(crate) deliveries: DeliveryCounters,
    pub(crate) counter: AtomicU64,
    pub(crate) http: reqwest::Client,
    pub(crate) signer: crate::signing::SandboxSigner,
    /// Turns `true` when the sandbox stops: pending redeliveries give up.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn new(
        cfg: SandboxConfig,
        data: Dataset,
        http: reqwest::Client,
        signer: crate::signing::SandboxSigner,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Shared {
            data: RwLock::new(data),
            tokens: Mutex::new(HashMap::new()),
            token_requests: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            faults: Mutex::new(FaultTable::default()),
            requests: Mutex::new(Ring::new(
                cfg.log_entries,
                cfg.log_body_budget,
                cfg.log_entry_body_cap,
            )),
            txns: Mutex::new(TxnLog::new(&cfg)),
            subscriptions: Mutex::new(HashMap::new()),
            callbacks: Mutex::new(Ring::new(cfg.log_entries, 0, 0)),
            deliveries: DeliveryCounters::default(),
            counter: AtomicU64::new(0),
            http,
            signer,
            stopping,
            cfg,
        }
    }
}

/// Cheap to clone; every handler gets one.
#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Shared>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder cannot leave these tables inconsistent, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn body_value(bytes: &[u8]) -> Value {
    serde_json::from_slice::<Value>(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
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
    pub(crate) fn txns(&self) -> MutexGuard<'_, TxnLog> {
        lock(&self.0.txns)
    }
    pub(crate) fn subscriptions(&self) -> MutexGuard<'_, HashMap<String, Subscription>> {
        lock(&self.0.subscriptions)
    }
    pub(crate) fn next_number(&self) -> u64 {
        self.0.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn revoke_tokens(&self) {
        self.tokens().clear();
    }

    /// The newest `last` recorded requests (all when `None`), oldest first, with bodies when
    /// `bodies` (and still kept).
    pub(crate) fn requests(&self, bodies: bool, last: Option<usize>) -> Vec<RecordedRequest> {
        let log = lock(&self.0.requests);
        let skip = last.map_or(0, |n| log.len().saturating_sub(n));
        log.iter()
            .skip(skip)
            .map(|(_, r, body)| RecordedRequest {
                body: body.filter(|_| bodies).map(body_value),
                ..r.clone()
            })
            .collect()
    }

    pub(crate) fn clear_requests(&self) {
        lock(&self.0.requests).clear();
    }

    /// The newest `last` callback attempts (all when `None`), oldest first.
    pub(crate) fn callbacks(&self, last: Option<usize>) -> Vec<DeliveredCallback> {
        let log = lock(&self.0.callbacks);
        let skip = last.map_or(0, |n| log.len().saturating_sub(n));
        log.iter().skip(skip).map(|(_, c, _)| c.clone()).collect()
    }

    pub(crate) fn clear_callbacks(&self) {
        lock(&self.0.callbacks).clear();
    }

    pub(crate) fn stats(&self) -> SandboxStats {
        let requests = lock(&self.0.requests).stats();
        let transactions = self.txns().ring.stats();
        let callbacks = lock(&self.0.callbacks).stats();
        SandboxStats {
            token_requests: self.0.token_requests.load(Ordering::Relaxed),
            tokens_issued: self.0.tokens_issued.load(Ordering::Relaxed),
            active_tokens: self.tokens().len(),
            requests,
            transactions,
            callbacks,
            deliveries: self.0.deliveries.snapshot(),
            retained_bytes: requests.retained_bytes + transactions.retained_bytes,
        }
    }

    fn push_request(&self, r: RecordedRequest, body: Option<&[u8]>) {
        let payload = body.map(|b| (b.len(), move || Box::<[u8]>::from(b)));
        lock(&self.0.requests).push(r, payload);
    }

    /// Records a transaction and its result (the message, serialised).
    pub(crate) fn push_txn(&self, t: Txn, message: &[u8]) {
        self.txns().push(t, message);
    }

    pub(crate) fn push_callback(&self, c: DeliveredCallback) {
        lock(&self.0.callbacks).push(c, None::<(usize, fn() -> Box<[u8]>)>);
    }

    /// Adds a subscription; beyond the log capacity, an inactive one (else the oldest) goes.
    pub(crate) fn add_subscription(&self, code: String, mut sub: Subscription) {
        let mut subs = self.subscriptions();
        if subs.len() >= self.cfg().log_entries {
            let victim = subs
                .iter()
                .min_by_key(|(_, s)| (s.active, s.created))
                .map(|(c, _)| c.clone());
            if let Some(v) = victim {
                subs.remove(&v);
            }
        }
        sub.created = self.next_number();
        subs.insert(code, sub);
    }

    pub(crate) fn record_reset(&self, method: &str, path: &str) {
        self.push_request(
            RecordedRequest {
                endpoint: path.to_owned(),
                method: method.to_owned(),
                status: 0,
                at: reply::now(),
                fault: Some("reset".to_owned()),
                dropped_status: None,
                body: None,
                body_size: None,
            },
            None,
        );
    }
}

fn is_registry_path(path: &str) -> bool {
    matches!(crate::faults::target_of(path), Some(t) if t != crate::faults::FaultTarget::Token)
}

/// Middleware: counts token requests and records every non-admin request with its status.
/// Also carries out the `drop_reply` fault, after recording: the request was processed, and
/// the connection is closed without the answer.
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
            Ok(bytes) => (
                Request::from_parts(parts, axum::body::Body::from(bytes.clone())),
                Some(bytes),
            ),
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
    let fault = resp.extensions().get::<InjectedFault>().map(|f| f.0);
    let drop_reply = fault == Some(crate::faults::DROP_REPLY);
    state.push_request(
        RecordedRequest {
            endpoint: path,
            method,
            status: if drop_reply {
                0
            } else {
                resp.status().as_u16()
            },
            at: reply::now(),
            fault: fault.map(str::to_owned),
            dropped_status: drop_reply.then(|| resp.status().as_u16()),
            body: None,
            body_size: body.as_ref().map(|b| b.len()),
        },
        body.as_deref(),
    );
    if drop_reply {
        drop(resp);
        // As for `reset`: unwinding out of the connection task drops the socket without a
        // response; `resume_unwind` skips the panic hook, so nothing is printed.
        std::panic::resume_unwind(Box::new("dci-sandbox: injected lost reply"));
    }
    resp
}
