//! DCI operations on one data source: sync search (with a page iterator), async search with
//! durable request records and callback awaiting, subscribe / unsubscribe, transaction status,
//! and the exact signed envelope of any of them (`dry_run`).
//!
//! - [`Operations`]: one per data source, over a [`crate::DciClient`] and an [`OpsStore`].
//! - [`callbacks::ingest`]: the receiver side (callbacks and notifications).
//! - [`TransactionView`], [`transaction_view`], [`await_transaction`], [`expire_overdue`]:
//!   lookups that need only the store (so `dci serve` and the CLI share them).
//!
//! Every outgoing envelope is built by `dci_protocol::build` (strict) and signed with the data
//! source's signing key when it names one. Async requests are stored before they are sent, so a
//! callback that beats the ACK still finds its transaction, and a restart loses nothing that was
//! acknowledged.

pub mod callbacks;
mod error;
mod query;
mod raw_record;
mod recover;
mod refusal;
mod result;
pub mod root_callbacks;
pub mod store;
mod view;

use std::sync::Arc;
use std::time::Duration;

use dci_protocol::build::{RequestBuilder, TxnLookup};
use dci_protocol::codes::TxnType;
use dci_protocol::inbound::{SearchReply, at};
use serde_json::Value;
use time::OffsetDateTime;

pub use callbacks::{
    CallbackCredentials, CallbackRejection, IngestContext, RefusalLayer, ingest, ingest_with,
};
pub use error::OpsError;
pub use query::{EXPRESSION_TYPE, SearchQuery, SearchSpec, SubscribeSpec, TxnStatusQuery};
pub use raw_record::{OneLine, RawRecord};
pub use recover::{RecoveryStep, never_arrived};
pub use result::{AsyncSubmission, PageInfo, SearchItemResult, SearchResult, TxnStatusResult};
pub(crate) use result::{parse_item, pending_reply};
pub use root_callbacks::ingest_at_root;
pub use store::{
    AckRecord, Backlog, CallbackFilter, CallbackRecord, KeyStatus, OpKind, OpsStore, PurgeReport,
    SchemaStatus, SignatureState, SigningKeyRecord, SubscriptionRecord, SubscriptionState,
    TransactionFilter, TransactionRecord, TransactionState,
};
pub use view::{AckView, CallbackSummary, TransactionView, build_view};

use crate::keys::{KeyManager, RegistryKeys, SignatureOutcome, SignerCache};
use crate::registries::Profile;
use crate::source::{DataSource, SignaturePolicy};
use crate::transport::{DciClient, DciRequest, Endpoint};

/// Default time an async request may take before it counts as timed out.
pub const DEFAULT_ASYNC_DEADLINE: Duration = Duration::from_secs(3600);

/// Default interval at which [`await_transaction`] polls the store when no shared change feed
/// wakes it.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often a wait on a shared change feed reads the store anyway, in case a notification
/// was lost (a crash between commit and notify).
pub const SHARED_FEED_RECHECK: Duration = Duration::from_secs(5);

/// Page size used by [`Operations::search_pages`] when the search sets none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Any operation, for [`Operations::prepare`] and [`Operations::dry_run`].
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Sync search.
    Search(SearchQuery),
    /// Async search.
    SearchAsync(SearchQuery),
    /// Subscribe (async).
    Subscribe(SubscribeSpec),
    /// Unsubscribe these subscription codes (async).
    Unsubscribe(Vec<String>),
    /// Sync transaction status.
    TxnStatus(TxnStatusQuery),
    /// Async transaction status.
    TxnStatusAsync(TxnStatusQuery),
}

impl Operation {
    fn endpoint(&self) -> Endpoint {
        match self {
            Operation::Search(_) => Endpoint::SyncSearch,
            Operation::SearchAsync(_) => Endpoint::Search,
            Operation::Subscribe(_) => Endpoint::Subscribe,
            Operation::Unsubscribe(_) => Endpoint::Unsubscribe,
            Operation::TxnStatus(_) => Endpoint::SyncTxnStatus,
            Operation::TxnStatusAsync(_) => Endpoint::TxnStatus,
        }
    }

    fn kind(&self) -> Option<OpKind> {
        match self {
            Operation::SearchAsync(_) => Some(OpKind::Search),
            Operation::Subscribe(_) => Some(OpKind::Subscribe),
            Operation::Unsubscribe(_) => Some(OpKind::Unsubscribe),
            Operation::TxnStatusAsync(_) => Some(OpKind::TxnStatus),
            Operation::Search(_) | Operation::TxnStatus(_) => None,
        }
    }

    fn callback_path(&self) -> Option<&'static str> {
        match self {
            Operation::SearchAsync(_) => Some("/registry/on-search"),
            Operation::Subscribe(_) => Some("/registry/on-subscribe"),
            Operation::Unsubscribe(_) => Some("/registry/on-unsubscribe"),
            Operation::TxnStatusAsync(_) => Some("/registry/txn/on-status"),
            Operation::Search(_) | Operation::TxnStatus(_) => None,
        }
    }
}

/// A built (and, with a signing key, signed) request, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRequest {
    /// The envelope exactly as it will be sent.
    pub envelope: Value,
    /// `message.transaction_id`.
    pub transaction_id: String,
    /// `header.message_id`.
    pub message_id: String,
    /// The items' reference ids.
    pub reference_ids: Vec<String>,
    /// The registry endpoint path, relative to the base URL.
    pub path: String,
    /// Whether the envelope carries our signature.
    pub signed: bool,
}

/// A registry's reply whose signature passed the source's policy.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) body: Value,
    pub(crate) signature: SignatureOutcome,
}

/// Operations on one data source: the one path every outgoing DCI call takes — build, adapt
/// to the source's dialect (profile), sign, send, verify, parse. Cheap to clone. Get one from
/// [`crate::Engine::operations`], which shares the client, caches and keys of the source.
#[derive(Clone)]
pub struct Operations {
    client: DciClient,
    ops: Arc<dyn OpsStore>,
    keys: RegistryKeys,
    signers: SignerCache,
    deadline: Duration,
    poll: Duration,
    txn_status_fallback: bool,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations")
            .field("source", &self.client.source().code)
            .finish_non_exhaustive()
    }
}

impl Operations {
    /// Operations through `client`, keeping requests, callbacks and keys in `ops`.
    pub fn new(client: DciClient, ops: Arc<dyn OpsStore>) -> Operations {
        let deadline = client.source().recovery.give_up_after();
        Operations {
            client,
            ops,
            keys: RegistryKeys::new(),
            signers: SignerCache::new(Duration::ZERO),
            deadline,
            poll: DEFAULT_POLL_INTERVAL,
            txn_status_fallback: true,
        }
    }

    /// Shares this registry-key (JWKS) cache, e.g. with the callback receiver.
    #[must_use]
    pub fn with_registry_keys(mut self, keys: RegistryKeys) -> Operations {
        self.keys = keys;
        self
    }

    /// Signs with keys from this cache (decrypted once) instead of reading each from the store.
    #[must_use]
    pub fn with_signer_cache(mut self, cache: SignerCache) -> Operations {
        self.signers = cache;
        self
    }

    /// The registry-key (JWKS) cache.
    pub fn registry_keys(&self) -> &RegistryKeys {
        &self.keys
    }

    /// Our signing keys, kept in step with this operations' signer cache.
    pub fn key_manager(&self) -> KeyManager {
        KeyManager::new(Arc::clone(&self.ops)).with_signer_cache(self.signers.clone())
    }

    /// The data source's dialect.
    pub fn profile(&self) -> Profile {
        self.source().profile
    }

    /// How long async requests may take before they are given up (default: the source's
    /// `recovery.give_up_after_secs`).
    #[must_use]
    pub fn with_async_deadline(mut self, d: Duration) -> Operations {
        self.deadline = d;
        self
    }

    /// How often [`Operations::await_transaction`] polls the store.
    #[must_use]
    pub fn with_poll_interval(mut self, d: Duration) -> Operations {
        self.poll = d;
        self
    }

    /// Whether an await that runs out of time asks the registry with a sync txn-status
    /// (default on, where the registry has one).
    #[must_use]
    pub fn with_txn_status_fallback(mut self, on: bool) -> Operations {
        self.txn_status_fallback = on;
        self
    }

    /// The data source.
    pub fn source(&self) -> &DataSource {
        self.client.source()
    }

    /// The client.
    pub fn client(&self) -> &DciClient {
        &self.client
    }

    /// The operations store.
    pub fn store(&self) -> &Arc<dyn OpsStore> {
        &self.ops
    }

    fn sender_id(&self) -> Result<&str, OpsError> {
        self.source()
            .sender_id
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                OpsError::invalid(
                    "sender_id",
                    format!(
                        "data source {:?} has no sender_id: set it to the id the registry knows you by",
                        self.source().code
                    ),
                )
            })
    }

    fn sender_uri(&self, op: &Operation) -> Result<Option<String>, OpsError> {
        let Some(path) = op.callback_path() else {
            return Ok(None);
        };
        let base = self
            .source()
            .callback_uri
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                OpsError::invalid(
                    "callback_uri",
                    format!(
                        "asynchronous calls need the data source's callback_uri: set it to where the registry can reach us, e.g. http://127.0.0.1:8080/callback/{}",
                        self.source().code
                    ),
                )
            })?;
        // The callback secret rides in the URL, which registries POST to verbatim:
        // `{callback_uri}/{secret}/registry/on-search`.
        let base = base.trim_end_matches('/');
        Ok(Some(match &self.source().callbacks.secret {
            Some(secret) => format!(
                "{base}/{}{path}",
                secrecy::ExposeSecret::expose_secret(secret)
            ),
            None => format!("{base}{path}"),
        }))
    }

    /// Builds and signs the envelope of `op` (nothing is stored or sent).
    pub async fn prepare(&self, op: &Operation) -> Result<PreparedRequest, OpsError> {
        let now = OffsetDateTime::now_utc();
        let mut b = self.request_builder(now)?;
        if let Some(uri) = self.sender_uri(op)? {
            b = b.sender_uri(uri);
        }
        let envelope = match op {
            Operation::Search(q) | Operation::SearchAsync(q) => {
                if let Some(t) = &q.transaction_id {
                    b = b.transaction_id(t.clone());
                }
                let items = q.to_items()?;
                let env = if matches!(op, Operation::Search(_)) {
                    b.sync_search(items)?
                } else {
                    b.search(items)?
                };
                self.sign_search(env, now).await?
            }
            Operation::Subscribe(s) => {
                if let Some(t) = &s.transaction_id {
                    b = b.transaction_id(t.clone());
                }
                self.sign(b.subscribe([s.to_item()])?, now).await?
            }
            Operation::Unsubscribe(codes) => self.sign(b.unsubscribe(codes.clone())?, now).await?,
            Operation::TxnStatus(q) => {
                self.sign(
                    b.sync_txn_status(q.txn_type.clone(), q.lookup.clone())?,
                    now,
                )
                .await?
            }
            Operation::TxnStatusAsync(q) => {
                self.sign(b.txn_status(q.txn_type.clone(), q.lookup.clone())?, now)
                    .await?
            }
        };
        let str_at = |p: &[&str]| {
            at(&envelope, p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let reference_ids = reference_ids(&envelope);
        let path = path_of(self.source(), &op.endpoint());
        Ok(PreparedRequest {
            transaction_id: str_at(&["message", "transaction_id"]),
            message_id: str_at(&["header", "message_id"]),
            signed: envelope.get("signature").is_some(),
            reference_ids,
            path,
            envelope,
        })
    }

    /// A request builder with our header fields (sender id, receiver id, time) filled in.
    pub(crate) fn request_builder(&self, now: OffsetDateTime) -> Result<RequestBuilder, OpsError> {
        let source = self.source();
        let mut b = RequestBuilder::new(source.registry_type, self.sender_id()?).at(now);
        let receiver = source.effective_receiver_id();
        if receiver.chars().count() <= dci_protocol::build::MAX_ID_LEN {
            b = b.receiver_id(receiver);
        }
        Ok(b)
    }

    /// A search envelope as the source's dialect sends it: signed (standard), or rewritten
    /// into OpenCRVS's variant (never signed).
    pub(crate) async fn sign_search<M: serde::Serialize>(
        &self,
        env: dci_protocol::envelope::Envelope<M>,
        now: OffsetDateTime,
    ) -> Result<Value, OpsError> {
        match self.profile() {
            Profile::Standard => self.sign(env, now).await,
            Profile::OpenCrvs(v) => {
                crate::registries::opencrvs::adapt_search(self.source(), v, env.to_value())
            }
        }
    }

    /// Signs `env` with the source's signing key, when it names one (from the signer cache).
    pub(crate) async fn sign<M: serde::Serialize>(
        &self,
        env: dci_protocol::envelope::Envelope<M>,
        now: OffsetDateTime,
    ) -> Result<Value, OpsError> {
        if let Some(key_id) = &self.source().signing_key_id
            && !self.profile().is_opencrvs()
        {
            let signer = self
                .signers
                .signer(self.ops.as_ref(), key_id, self.sender_id()?, now)
                .await?;
            return env
                .into_signed_value(&signer, now)
                .map_err(OpsError::Signing);
        }
        Ok(env.to_value())
    }

    /// Signs (when the source names a key), sends and checks the reply's signature.
    pub(crate) async fn send_envelope<M: serde::Serialize>(
        &self,
        env: dci_protocol::envelope::Envelope<M>,
        endpoint: Endpoint,
        now: OffsetDateTime,
    ) -> Result<Reply, OpsError> {
        let value = self.sign(env, now).await?;
        self.exchange(value, endpoint, true).await
    }

    /// Sends a ready envelope and checks the reply's signature under the profile's rules.
    pub(crate) async fn exchange(
        &self,
        envelope: Value,
        endpoint: Endpoint,
        retry: bool,
    ) -> Result<Reply, OpsError> {
        let resp = self
            .client
            .make_request(DciRequest::new(endpoint, envelope).retry(retry))
            .await?;
        let signature = self.verify_reply(&resp.body).await?;
        Ok(Reply {
            body: resp.body,
            signature,
        })
    }

    /// The exact signed envelope `op` would send; sends and stores nothing.
    pub async fn dry_run(&self, op: &Operation) -> Result<Value, OpsError> {
        Ok(self.prepare(op).await?.envelope)
    }

    async fn verify_reply(&self, body: &Value) -> Result<SignatureOutcome, OpsError> {
        let http = Some(self.client.http());
        match self.profile() {
            Profile::OpenCrvs(_) => {
                crate::registries::opencrvs::check_reply(self.source(), &self.keys, http, body)
                    .await
                    .map(|state| SignatureOutcome {
                        state,
                        key_id: None,
                    })
                    .map_err(OpsError::Verification)
            }
            Profile::Standard => self
                .keys
                .check_using(http, self.source(), body, OffsetDateTime::now_utc())
                .await
                .map_err(|f| OpsError::Verification(f.to_string())),
        }
    }

    /// Sync search. A reply whose every item is rejected is an error carrying the registry's
    /// code; otherwise items are returned one by one (check [`SearchItemResult::status`]).
    pub async fn search(&self, q: &SearchQuery) -> Result<SearchResult, OpsError> {
        let p = self.prepare(&Operation::Search(q.clone())).await?;
        let (reply, signature) = self.exchange_search(p.envelope).await?;
        Ok(result::search_result(reply, signature.state))
    }

    /// [`Self::exchange`] of a sync search, its records kept as the registry's text
    /// ([`RawRecord`]) — unless the reply's signature is to be checked, which reads the whole
    /// message, or the source speaks a dialect, whose replies are adapted as a whole.
    async fn exchange_search(
        &self,
        envelope: Value,
    ) -> Result<(SearchReply, SignatureOutcome), OpsError> {
        let whole = self.profile().is_opencrvs()
            || self.source().reply_signature_policy != SignaturePolicy::Off;
        if whole {
            let reply = self.exchange(envelope, Endpoint::SyncSearch, true).await?;
            return Ok((SearchReply::from(reply.body), reply.signature));
        }
        let (resp, records) = self
            .client
            .make_search_request(DciRequest::new(Endpoint::SyncSearch, envelope).retry(true))
            .await?;
        let signature = self.verify_reply(&resp.body).await?;
        let reply = SearchReply {
            envelope: resp.body,
            records,
        };
        Ok((reply, signature))
    }

    /// Pages of a sync search, from its page (default 1) to the last.
    pub fn search_pages(&self, spec: SearchSpec) -> SearchPages<'_> {
        let size = spec.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        let first = spec.page.unwrap_or(1);
        SearchPages {
            ops: self,
            spec,
            next_page: Some(first),
            page_size: size,
        }
    }

    async fn submit(&self, op: Operation) -> Result<AsyncSubmission, OpsError> {
        let kind = op
            .kind()
            .expect("submit is only called with async operations");
        let p = self.prepare(&op).await?;
        let now = OffsetDateTime::now_utc();
        let record = TransactionRecord {
            transaction_id: p.transaction_id.clone(),
            source_code: self.source().code.clone(),
            kind,
            message_id: p.message_id.clone(),
            reference_ids: p.reference_ids.clone(),
            request: p.envelope.clone(),
            state: TransactionState::Pending,
            ack: None,
            created_at: now,
            deadline: now + self.deadline,
            updated_at: now,
            reason: None,
        };
        // Stored before it is sent: a callback that beats the ACK finds it.
        self.ops.insert_transaction(&record).await?;
        let sent = self
            .client
            .make_request(DciRequest::new(op.endpoint(), p.envelope))
            .await;
        match sent {
            Ok(resp) => {
                let m = resp.body.get("message").unwrap_or(&Value::Null);
                let ack_status = m
                    .get("ack_status")
                    .and_then(Value::as_str)
                    .unwrap_or("ACK")
                    .to_ascii_uppercase();
                let state = if ack_status == "ACK" {
                    TransactionState::Acknowledged
                } else {
                    TransactionState::Failed
                };
                let correlation_id = m
                    .get("correlation_id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned);
                let ack = AckRecord {
                    ack_status: ack_status.clone(),
                    correlation_id: correlation_id.clone(),
                    error_code: None,
                    error_message: None,
                    state,
                    at: OffsetDateTime::now_utc(),
                };
                self.ops.record_ack(&p.transaction_id, &ack).await?;
                // A callback may already have advanced it; report what is stored.
                let state = self
                    .ops
                    .get_transaction(&p.transaction_id)
                    .await?
                    .map_or(state, |t| t.state);
                Ok(AsyncSubmission {
                    ack_status,
                    correlation_id,
                    transaction_id: p.transaction_id,
                    message_id: p.message_id,
                    state,
                })
            }
            Err(e) => {
                let definitely_not_sent = (e.is_connect() && !e.is_reply_lost())
                    || e.is_dns()
                    || e.is_tls()
                    || e.is_config();
                let reason = e.registry_error();
                if reason.is_some() || definitely_not_sent || e.status().is_some() {
                    // The registry refused it, or it never left: a definite failure.
                    let ack = AckRecord {
                        ack_status: "ERR".into(),
                        correlation_id: None,
                        error_code: reason.and_then(|r| r.code.clone()),
                        error_message: match reason {
                            Some(r) => r.message.clone(),
                            None => Some(e.to_string()),
                        },
                        state: TransactionState::Failed,
                        at: OffsetDateTime::now_utc(),
                    };
                    self.ops.record_ack(&p.transaction_id, &ack).await?;
                    return Err(OpsError::Client(e));
                }
                // Otherwise (a timeout, the connection dropped after sending) the registry may
                // have it: not a failure. It is resolved by its callback or a status lookup.
                self.ops
                    .advance_transaction(
                        &p.transaction_id,
                        TransactionState::Unknown,
                        OffsetDateTime::now_utc(),
                        None,
                    )
                    .await?;
                Err(OpsError::OutcomeUnknown {
                    transaction_id: p.transaction_id,
                    cause: e.summary(),
                })
            }
        }
    }

    /// Async search: stores the request, sends it, records the ACK. Await the result with
    /// [`Operations::await_transaction`].
    pub async fn submit_search_async(&self, q: &SearchQuery) -> Result<AsyncSubmission, OpsError> {
        self.submit(Operation::SearchAsync(q.clone())).await
    }

    /// Subscribe (async; the codes arrive with `on-subscribe` and are kept as subscriptions).
    pub async fn subscribe(&self, s: &SubscribeSpec) -> Result<AsyncSubmission, OpsError> {
        self.submit(Operation::Subscribe(s.clone())).await
    }

    /// Unsubscribe these codes (async).
    pub async fn unsubscribe(&self, codes: &[String]) -> Result<AsyncSubmission, OpsError> {
        self.submit(Operation::Unsubscribe(codes.to_vec())).await
    }

    /// Sync transaction status.
    pub async fn txn_status(&self, q: &TxnStatusQuery) -> Result<TxnStatusResult, OpsError> {
        let p = self.prepare(&Operation::TxnStatus(q.clone())).await?;
        let reply = self
            .exchange(p.envelope, Endpoint::SyncTxnStatus, true)
            .await?;
        Ok(result::txn_status_result(
            &reply.body,
            reply.signature.state,
        ))
    }

    /// Async transaction status (the answer arrives at `txn/on-status`).
    pub async fn txn_status_async(&self, q: &TxnStatusQuery) -> Result<AsyncSubmission, OpsError> {
        self.submit(Operation::TxnStatusAsync(q.clone())).await
    }

    /// The stored view of a transaction.
    pub async fn transaction(&self, transaction_id: &str) -> Result<TransactionView, OpsError> {
        transaction_view(self.ops.as_ref(), transaction_id)
            .await?
            .ok_or_else(|| unknown_transaction(transaction_id))
    }

    /// Waits until the transaction completes or fails, woken by the store's change feed or
    /// polling it (so a callback received by another process counts; see
    /// [`await_transaction`]). On timeout, a search on a registry with txn status
    /// is looked up once with a sync txn-status (unless disabled), and its answer kept.
    pub async fn await_transaction(
        &self,
        transaction_id: &str,
        timeout: Duration,
    ) -> Result<TransactionView, OpsError> {
        match await_transaction(self.ops.as_ref(), transaction_id, timeout, self.poll).await {
            Err(OpsError::Timeout { .. }) if self.txn_status_fallback => {
                self.resolve(transaction_id).await
            }
            other => other,
        }
    }

    /// Asks the registry (sync txn-status) for the result of a stored search whose callback
    /// has not come — the lost reply, the missed callback — and completes the transaction
    /// from the answer. A registry that answers it has no such transaction ends a request that
    /// was never acknowledged (`pending` or `unknown`, unchanged for [`Operations::settle_time`]) as `failed`
    /// with that reason — it never arrived, so it is safe to send again. Fails with
    /// [`OpsError::Timeout`] (state kept) when the registry has no txn status, no answer yet,
    /// or the transaction is not a search.
    pub async fn resolve(&self, transaction_id: &str) -> Result<TransactionView, OpsError> {
        let t = self
            .ops
            .get_transaction(transaction_id)
            .await?
            .ok_or_else(|| unknown_transaction(transaction_id))?;
        let state = match self.look_up(&t).await? {
            Lookup::Answered(view) => view.state,
            Lookup::Absent(words)
                if never_arrived(&t, OffsetDateTime::now_utc(), self.settle_time()) =>
            {
                self.fail_never_arrived(&t, &words).await?;
                TransactionState::Failed
            }
            Lookup::Absent(_) | Lookup::NoAnswer(_) | Lookup::Unsupported => t.state,
        };
        if matches!(
            state,
            TransactionState::Completed | TransactionState::Failed
        ) {
            self.transaction(transaction_id).await
        } else {
            Err(OpsError::Timeout {
                transaction_id: transaction_id.to_owned(),
                state,
            })
        }
    }

    /// Asks the registry (sync txn-status) about stored search `t`; an answer with results is
    /// stored as a `txn-on-status` callback and moves the transaction on.
    pub(crate) async fn look_up(&self, t: &TransactionRecord) -> Result<Lookup, OpsError> {
        if t.kind != OpKind::Search || !self.source().registry_type.has_txn_status() {
            return Ok(Lookup::Unsupported);
        }
        let q = TxnStatusQuery {
            txn_type: TxnType::Search,
            lookup: TxnLookup::TransactionId(t.transaction_id.clone()),
        };
        let p = self.prepare(&Operation::TxnStatus(q)).await?;
        let resp = match self
            .exchange(p.envelope, Endpoint::SyncTxnStatus, true)
            .await
        {
            Ok(r) => r,
            Err(OpsError::Client(e)) => {
                tracing::debug!(error = %e, "txn-status lookup failed");
                return Ok(match no_such_transaction(&e) {
                    Some(words) => Lookup::Absent(words),
                    None => Lookup::NoAnswer(e.summary()),
                });
            }
            Err(e) => return Err(e),
        };
        let sig = resp.signature;
        let read = result::txn_status_result(&resp.body, sig.state);
        let (items, tolerated) = (read.items, read.tolerated);
        if items.is_empty() {
            // `rjct` with no txn-status body: the registry has no such transaction.
            let absent = read.status.as_deref() == Some("rjct")
                && resp
                    .body
                    .pointer("/message/txnstatus_response")
                    .is_none_or(Value::is_null);
            let words = read
                .reason
                .as_ref()
                .and_then(|r| r.message.clone().or_else(|| r.code.clone()))
                .unwrap_or_else(|| "no such transaction".to_owned());
            return Ok(if absent {
                Lookup::Absent(words)
            } else {
                Lookup::NoAnswer(format!(
                    "txn-status had no result yet (status {:?})",
                    read.status.as_deref().unwrap_or("none")
                ))
            });
        }
        let message_id = resp
            .body
            .pointer("/header/message_id")
            .and_then(Value::as_str)
            .map_or_else(
                || format!("txn-status:{}", p.message_id),
                |m| format!("txn-status:{m}"),
            );
        let record = CallbackRecord {
            source_code: t.source_code.clone(),
            message_id,
            action: "txn-on-status".into(),
            transaction_id: Some(t.transaction_id.clone()),
            correlation_id: None,
            status: resp
                .body
                .pointer("/header/status")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase),
            total_count: None,
            completed_count: None,
            signature: sig.state,
            signature_key_id: sig.key_id,
            body: resp.body,
            tolerated,
            received_at: OffsetDateTime::now_utc(),
        };
        self.ops.insert_callback(&record).await?;
        let callbacks = self.ops.callbacks_for(&t.transaction_id).await?;
        let view = build_view(t, &callbacks);
        if view.state != t.state {
            self.ops
                .advance_transaction(
                    &t.transaction_id,
                    view.state,
                    OffsetDateTime::now_utc(),
                    None,
                )
                .await?;
        }
        Ok(Lookup::Answered(Box::new(view)))
    }

    /// Ends `t` as `failed`: the registry answered that it has no such transaction.
    pub(crate) async fn fail_never_arrived(
        &self,
        t: &TransactionRecord,
        words: &str,
    ) -> Result<bool, OpsError> {
        let reason = format!(
            "the registry has no such transaction (it answered: {words}): the request never \
             arrived, nothing was done, and it is safe to send it again"
        );
        Ok(self
            .ops
            .advance_transaction(
                &t.transaction_id,
                TransactionState::Failed,
                OffsetDateTime::now_utc(),
                Some(&reason),
            )
            .await?)
    }
}

/// What a registry's sync txn-status said about a stored search.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Results came (stored; the view is the transaction after them).
    Answered(Box<TransactionView>),
    /// The registry has no such transaction (its words).
    Absent(String),
    /// No definite answer (an error, or no result yet).
    NoAnswer(String),
    /// Not a search, or the registry has no txn status.
    Unsupported,
}

/// The registry's words when `e` is its definite answer that it has no such transaction: a
/// DCI rejection (`rjct` / ACK `ERR`) inside an HTTP 200, with no reason code or a
/// `*.not_found` one. A rejection naming another problem (version, signature, …) is not.
fn no_such_transaction(e: &crate::Error) -> Option<String> {
    if !e.is_rejected() || e.status() != Some(reqwest::StatusCode::OK) {
        return None;
    }
    let reason = e.registry_error();
    let code = reason.and_then(|r| r.code.as_deref());
    if code.is_some_and(|c| !c.ends_with(".not_found")) {
        return None;
    }
    Some(
        reason
            .and_then(|r| r.message.clone().or_else(|| r.code.clone()))
            .unwrap_or_else(|| "no such transaction".to_owned()),
    )
}

fn unknown_transaction(id: &str) -> OpsError {
    OpsError::NotFound(format!(
        "no transaction {id:?} in this store: it was sent from another store, or never"
    ))
}

fn path_of(source: &DataSource, e: &Endpoint) -> String {
    let ep = &source.endpoints;
    match e {
        Endpoint::SyncSearch => ep.sync_search.clone(),
        Endpoint::Search => ep.search.clone(),
        Endpoint::Subscribe => ep.subscribe.clone(),
        Endpoint::Unsubscribe => ep.unsubscribe.clone(),
        Endpoint::TxnStatus => ep.txn_status.clone(),
        Endpoint::SyncTxnStatus => ep.sync_txn_status.clone(),
        Endpoint::Other { path, .. } => path.clone(),
    }
}

fn reference_ids(envelope: &Value) -> Vec<String> {
    let m = envelope.get("message").unwrap_or(&Value::Null);
    let from = |key: &str| -> Vec<String> {
        m.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| i.get("reference_id").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    };
    let mut ids = from("search_request");
    ids.extend(from("subscribe_request"));
    if let Some(r) = at(m, &["txnstatus_request", "reference_id"]).and_then(Value::as_str) {
        ids.push(r.to_owned());
    }
    ids
}

/// Follows pagination of a sync search to the last page. Call [`SearchPages::next`] until it
/// returns `None`.
#[derive(Debug)]
pub struct SearchPages<'a> {
    ops: &'a Operations,
    spec: SearchSpec,
    next_page: Option<u32>,
    page_size: u32,
}

/// Safety stop for registries that never report the end.
const MAX_PAGES: u32 = 10_000;

impl SearchPages<'_> {
    /// The next page, or `None` after the last one (or after an error).
    pub async fn next(&mut self) -> Option<Result<SearchResult, OpsError>> {
        let page = self.next_page.take()?;
        let spec = self.spec.clone().page(page, self.page_size);
        let r = match self.ops.search(&SearchQuery::one(spec)).await {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let item = r.items.first();
        let count = item.map_or(0, |i| i.records.len()) as u64;
        let more = match item.and_then(|i| i.pagination) {
            Some(p) => p.has_more() && count > 0,
            None => count >= u64::from(self.page_size) && count > 0,
        };
        if more && page < MAX_PAGES {
            self.next_page = Some(page + 1);
        }
        Some(Ok(r))
    }

    /// Every remaining page.
    pub async fn collect_all(mut self) -> Result<Vec<SearchResult>, OpsError> {
        let mut out = Vec::new();
        while let Some(p) = self.next().await {
            out.push(p?);
        }
        Ok(out)
    }
}

/// The view of a stored transaction, if it exists.
pub async fn transaction_view(
    ops: &dyn OpsStore,
    transaction_id: &str,
) -> Result<Option<TransactionView>, OpsError> {
    let Some(t) = ops.get_transaction(transaction_id).await? else {
        return Ok(None);
    };
    let callbacks = ops.callbacks_for(transaction_id).await?;
    Ok(Some(build_view(&t, &callbacks)))
}

/// Waits until the transaction is completed or failed; after `timeout` fails with
/// [`OpsError::Timeout`] carrying its state.
///
/// Woken by the store's change feed ([`OpsStore::changes`]) when it has one. A shared feed
/// (PostgreSQL `LISTEN/NOTIFY`) sees every instance's callbacks, so the store is read again
/// only on a change or every [`SHARED_FEED_RECHECK`] as a safety net; an in-process feed
/// (SQLite) also polls every `poll`, since a callback stored by another process (`dci serve`
/// beside a CLI wait) publishes nothing here. Without a feed it polls every `poll`.
pub async fn await_transaction(
    ops: &dyn OpsStore,
    transaction_id: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<TransactionView, OpsError> {
    let until = tokio::time::Instant::now() + timeout;
    // Subscribed before the first read, so a change between the read and the wait wakes it.
    let mut feed = ops.changes();
    let recheck = match &feed {
        Some(f) if f.shared() => SHARED_FEED_RECHECK,
        _ => poll,
    };
    loop {
        let view = transaction_view(ops, transaction_id)
            .await?
            .ok_or_else(|| unknown_transaction(transaction_id))?;
        if matches!(
            view.state,
            TransactionState::Completed | TransactionState::Failed
        ) {
            return Ok(view);
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return Err(OpsError::Timeout {
                transaction_id: transaction_id.to_owned(),
                state: view.state,
            });
        }
        let nap = tokio::time::sleep(recheck.min(until - now));
        match &mut feed {
            Some(f) => {
                tokio::select! {
                    () = nap => {}
                    () = f.transaction(transaction_id) => {}
                }
            }
            None => nap.await,
        }
    }
}

/// Marks requests whose deadline passed before `now` as timed out. Returns how many.
pub async fn expire_overdue(ops: &dyn OpsStore, now: OffsetDateTime) -> Result<u64, OpsError> {
    Ok(ops.expire_overdue(now).await?)
}

/// Subscriptions, optionally of one data source.
pub async fn list_subscriptions(
    ops: &dyn OpsStore,
    source_code: Option<&str>,
) -> Result<Vec<SubscriptionRecord>, OpsError> {
    Ok(ops.list_subscriptions(source_code).await?)
}

/// Notifications received (`notify` callbacks), newest first.
pub async fn list_notifications(
    ops: &dyn OpsStore,
    source_code: Option<&str>,
    limit: u32,
) -> Result<Vec<CallbackRecord>, OpsError> {
    Ok(ops
        .list_callbacks(&CallbackFilter {
            source_code: source_code.map(str::to_owned),
            action: Some("notify".into()),
            limit,
        })
        .await?)
}
