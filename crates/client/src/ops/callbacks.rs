//! Callback and notify ingestion: the one function a receiver (`dci serve`, a test server, an
//! embedding application) calls with the raw body of a POST from a registry.
//!
//! Order matters and is the contract: size and shape, the data source, the action, the sender,
//! the signature (per the source's policy), the transaction it answers — and only then is
//! anything stored. A message id already stored for the source is a replay and is refused. The
//! callback is persisted (durably) *before* the ACK is returned, so an ACKed callback survives a
//! crash. Bad input gets the spec's error code and changes nothing.
//!
//! The body is read by `dci-protocol`'s typed lenient parser ([`Callback::parse`]): what it had
//! to tolerate is stored with the callback ([`CallbackRecord::tolerated`]), and a message that
//! does not parse is refused with the JSON path of the problem.
//!
//! A header-only callback (the specs require only `header`: e.g. `status: rjct` with a
//! `status_reason_code`, or `rcvd` / `pdng`) is accepted. It names no transaction, so it is
//! matched to the data source's only open transaction of the kind it answers (`on-search` → an
//! async search, …); with none or several open it is stored unmatched (and still ACKed), since
//! guessing could fail or complete the wrong request. Either way the match (or its absence) is
//! recorded in `tolerated`.

use std::sync::Arc;

use dci_protocol::codes::{Action, ErrorCode, StatusReasonCode, SubscriptionStatus};
use dci_protocol::envelope::AckResponse;
use dci_protocol::inbound::{Callback, CallbackMessage, MessageStatus};
use dci_protocol::lenient::Tolerated;
use serde_json::Value;
use time::OffsetDateTime;

use crate::SignaturePolicy;
use crate::keys::RegistryKeys;
use crate::store::Store;

pub use super::refusal::{CallbackRejection, RefusalLayer};
use super::result::tolerated_strings;
use super::store::{
    CallbackRecord, OpKind, OpsStore, SignatureState, SubscriptionRecord, SubscriptionState,
    TransactionFilter, TransactionRecord, TransactionState,
};

/// Default limit of a callback body (search results can be large).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// What [`ingest`] needs: the stores and the registry-key cache. Cheap to clone; build one per
/// process and share it.
#[derive(Clone)]
pub struct IngestContext {
    /// Data sources (for the policy, keys and sender id).
    pub store: Arc<dyn Store>,
    /// Where requests and callbacks are kept.
    pub ops: Arc<dyn OpsStore>,
    /// Registry public keys and the JWKS cache.
    pub keys: RegistryKeys,
    /// Larger bodies are refused.
    pub max_body_bytes: usize,
    /// The active sources the root routes authenticate against (shared by clones).
    pub(crate) root: Arc<super::root_callbacks::RootSources>,
}

impl std::fmt::Debug for IngestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestContext")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl IngestContext {
    /// A context with a fresh key cache and the default body limit.
    pub fn new(store: Arc<dyn Store>, ops: Arc<dyn OpsStore>) -> IngestContext {
        IngestContext {
            store,
            ops,
            keys: RegistryKeys::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            root: Arc::default(),
        }
    }

    /// Uses this (shared) key cache.
    #[must_use]
    pub fn with_keys(mut self, keys: RegistryKeys) -> IngestContext {
        self.keys = keys;
        self
    }
}

/// What a callback presented to authenticate itself, besides its signature: the secret from
/// the URL (the path segment after the source's callback URI) and/or the bearer token of its
/// `Authorization` header. Either one matching the source's callback secret authenticates it.
#[derive(Clone, Default)]
pub struct CallbackCredentials {
    /// The secret taken from the callback URL.
    pub url_secret: Option<String>,
    /// The token of `Authorization: Bearer …`.
    pub bearer: Option<String>,
}

impl std::fmt::Debug for CallbackCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackCredentials")
            .field(
                "url_secret",
                &self.url_secret.as_ref().map(|_| crate::MASKED),
            )
            .field("bearer", &self.bearer.as_ref().map(|_| crate::MASKED))
            .finish()
    }
}

impl CallbackCredentials {
    /// Nothing presented (only a signature can then authenticate the callback).
    pub fn none() -> CallbackCredentials {
        CallbackCredentials::default()
    }

    /// The secret from the callback URL.
    pub fn url_secret(secret: impl Into<String>) -> CallbackCredentials {
        CallbackCredentials {
            url_secret: Some(secret.into()),
            bearer: None,
        }
    }

    /// Whether either presented value is the source's callback secret.
    pub(crate) fn matches(&self, source: &crate::DataSource) -> bool {
        [&self.url_secret, &self.bearer]
            .into_iter()
            .flatten()
            .any(|s| source.callbacks.secret_matches(s))
    }
}

/// Neither the secret nor a signature let the callback in. A wrong secret, or no secret where
/// it is the only way in (signature policy `off`), is a transport refusal (HTTP 401); an
/// unsigned callback where a signature would have done is a DCI one (`err.signature.missing`).
fn unauthenticated(source: &crate::DataSource, presented: bool) -> CallbackRejection {
    let fix = "the registry must post to the sender_uri it was sent (it holds the secret), send Authorization: Bearer with the secret, or sign its callbacks";
    let code = &source.code;
    if presented {
        CallbackRejection::transport(
            401,
            ErrorCode::RequestUnauthorized,
            format!(
                "callback for data source {code:?} refused: the callback secret it presented is not this data source's; {fix}"
            ),
        )
    } else if source.reply_signature_policy == SignaturePolicy::Off {
        CallbackRejection::transport(
            401,
            ErrorCode::RequestUnauthorized,
            format!(
                "callback for data source {code:?} refused: it carries no callback secret, and this source does not verify signatures (reply_signature_policy off); {fix}"
            ),
        )
    } else {
        CallbackRejection::dci(
            401,
            ErrorCode::SignatureMissing,
            format!(
                "callback for data source {code:?} refused: it is not signed by the registry and carries no callback secret; {fix}"
            ),
        )
    }
}

fn callback_action(a: &Action) -> bool {
    matches!(
        a,
        Action::OnSearch
            | Action::OnSubscribe
            | Action::OnUnsubscribe
            | Action::TxnOnStatus
            | Action::Notify
    )
}

fn non_empty<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The kind of request a callback action answers.
fn answers_kind(a: &Action) -> Option<OpKind> {
    match a {
        Action::OnSearch => Some(OpKind::Search),
        Action::OnSubscribe => Some(OpKind::Subscribe),
        Action::OnUnsubscribe => Some(OpKind::Unsubscribe),
        Action::TxnOnStatus => Some(OpKind::TxnStatus),
        _ => None,
    }
}

/// The data source's only open (pending, acknowledged or partial) transaction of `kind`.
async fn only_open(
    ctx: &IngestContext,
    source_code: &str,
    kind: OpKind,
) -> Result<(usize, Option<TransactionRecord>), crate::store::StoreError> {
    let mut open = Vec::new();
    for state in [
        TransactionState::Pending,
        TransactionState::Acknowledged,
        TransactionState::Partial,
    ] {
        let filter = TransactionFilter {
            source_code: Some(source_code.to_owned()),
            state: Some(state),
            limit: 1000,
        };
        open.extend(
            ctx.ops
                .list_transactions(&filter)
                .await?
                .into_iter()
                .filter(|t| t.kind == kind),
        );
    }
    let n = open.len();
    Ok((n, if n == 1 { open.pop() } else { None }))
}

/// Ingests one callback that presented no callback secret: [`ingest_with`] with
/// [`CallbackCredentials::none`] (so only a signature, or the source's opt-out, lets it in).
pub async fn ingest(
    ctx: &IngestContext,
    source_code: &str,
    raw_body: &[u8],
    path_action: Option<Action>,
) -> Result<AckResponse, CallbackRejection> {
    ingest_with(
        ctx,
        source_code,
        raw_body,
        path_action,
        &CallbackCredentials::none(),
    )
    .await
}

/// Ingests one callback or notification POSTed for data source `source_code`.
///
/// `path_action` is the action the URL implies (`/registry/on-search` → `on-search`), or `None`
/// for a bare route, which is then routed on `header.action`. Returns the ACK to answer with
/// (HTTP 200), or the rejection (nothing stored).
///
/// The callback must be authenticated: by `credentials` matching the source's callback secret,
/// or by a signature verified with the registry's keys (policy `if-present` or `require`), or
/// the source must accept unauthenticated callbacks (`callbacks.accept_unauthenticated`).
/// Otherwise it is refused with `err.request.unauthorized` (401). A callback for a completed or
/// failed transaction is refused with `err.request.forbidden` (403), unless its message id was
/// already stored (then it is the usual replay, `rjct.message_id.duplicate`).
///
/// Refusals are answered the DCI way (see [`CallbackRejection::answer_status`]): DCI-level
/// ones HTTP 200 with ACK `ERR`, unless the source keeps HTTP-status refusals
/// (`callbacks.http_refusals`); transport ones with their HTTP status. A re-sent callback
/// identical to the stored one (same message id, same body) is ACKed again and not stored
/// twice; the same message id with a different body is refused.
pub async fn ingest_with(
    ctx: &IngestContext,
    source_code: &str,
    raw_body: &[u8],
    path_action: Option<Action>,
    credentials: &CallbackCredentials,
) -> Result<AckResponse, CallbackRejection> {
    use tracing::Instrument;
    let span = crate::telemetry::callback_span(source_code);
    let answer = async {
        let body = read_body(ctx, raw_body)?;
        ingest_value(ctx, source_code, body, path_action, credentials).await
    }
    .instrument(span.clone())
    .await;
    counted(&span, answer)
}

/// Counts a callback's answer in the metrics (`dci_callbacks_total`), records it on the
/// callback's span, and passes it on.
pub(crate) fn counted(
    span: &tracing::Span,
    answer: Result<AckResponse, CallbackRejection>,
) -> Result<AckResponse, CallbackRejection> {
    let refused = answer.as_ref().err().map(|r| r.code.as_str());
    crate::metrics::callback(refused);
    crate::telemetry::callback_answered(span, refused);
    answer
}

/// The body as JSON, within the size limit (transport-level refusals otherwise).
pub(crate) fn read_body(ctx: &IngestContext, raw_body: &[u8]) -> Result<Value, CallbackRejection> {
    if raw_body.len() > ctx.max_body_bytes {
        return Err(CallbackRejection::transport(
            413,
            ErrorCode::RequestBad,
            format!(
                "the body is {} bytes; the limit is {}",
                raw_body.len(),
                ctx.max_body_bytes
            ),
        ));
    }
    dci_protocol::inbound::json_value(raw_body).map_err(|e| {
        CallbackRejection::transport(
            400,
            ErrorCode::RequestBad,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// [`ingest_with`] on a body already read; a DCI-level refusal is answered with its HTTP
/// status if the source keeps HTTP-status refusals.
pub(crate) async fn ingest_value(
    ctx: &IngestContext,
    source_code: &str,
    body: Value,
    path_action: Option<Action>,
    credentials: &CallbackCredentials,
) -> Result<AckResponse, CallbackRejection> {
    match ingest_checked(ctx, source_code, body, path_action, credentials).await {
        Err(r) if r.layer == RefusalLayer::Dci && keeps_http_refusals(ctx, source_code).await => {
            Err(r.with_http_status())
        }
        other => other,
    }
}

/// Whether the source answers DCI-level refusals with HTTP statuses (read only on a refusal).
async fn keeps_http_refusals(ctx: &IngestContext, source_code: &str) -> bool {
    matches!(ctx.store.get_data_source(source_code).await,
        Ok(Some(s)) if s.callbacks.http_refusals)
}

async fn ingest_checked(
    ctx: &IngestContext,
    source_code: &str,
    body: Value,
    path_action: Option<Action>,
    credentials: &CallbackCredentials,
) -> Result<AckResponse, CallbackRejection> {
    let now = OffsetDateTime::now_utc();
    if !body.is_object() || !body.get("header").is_some_and(Value::is_object) {
        return Err(CallbackRejection::bad(
            "the body is not a DCI envelope: it needs a `header` object",
        ));
    }
    let message_id = non_empty(&body, "/header/message_id")
        .ok_or_else(|| CallbackRejection::bad("header.message_id is missing"))?
        .to_owned();
    let action_str = non_empty(&body, "/header/action")
        .ok_or_else(|| CallbackRejection::bad("header.action is missing"))?;
    let action = Action::parse_lenient(action_str);
    if !callback_action(&action) {
        return Err(CallbackRejection::bad(format!(
            "header.action {action_str:?} is not a callback: expected on-search, on-subscribe, on-unsubscribe, txn-on-status or notify"
        )));
    }
    // Registries commonly POST notifications to the subscription's own callback URL.
    let notify_at_subscribe = path_action == Some(Action::OnSubscribe) && action == Action::Notify;
    if let Some(p) = &path_action
        && *p != action
        && !notify_at_subscribe
    {
        return Err(CallbackRejection::bad(format!(
            "this route receives {p} but header.action is {action}"
        )));
    }
    if body
        .get("message")
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(CallbackRejection::bad("message must be an object"));
    }
    let parsed = match Callback::parse(&action, body.clone()) {
        Ok(p) => p,
        // A notification answers no request: one whose message is not typed DCI is still
        // stored (for the application to read), saying so, rather than lost.
        Err(e)
            if action == Action::Notify && e.path().is_some_and(|p| p.starts_with("message")) =>
        {
            let mut header_only = body.clone();
            if let Some(o) = header_only.as_object_mut() {
                o.remove("message");
            }
            let mut p = Callback::parse(&action, header_only)
                .map_err(|e| CallbackRejection::bad(e.to_string()))?;
            p.tolerated.push(Tolerated {
                path: e.path().unwrap_or("message").to_owned(),
                what: format!("not a typed notification ({}); stored as sent", e.message()),
            });
            p
        }
        Err(e) => return Err(CallbackRejection::bad(e.to_string())),
    };
    let callback = parsed.value;
    let mut tolerated = tolerated_strings(&parsed.tolerated);
    if matches!(callback.message, Some(CallbackMessage::Encrypted)) {
        return Err(CallbackRejection::bad(
            "message is encrypted (header.is_msg_encrypted): encrypted callbacks are not supported; ask the registry to send this data source plain messages",
        ));
    }

    let source = ctx
        .store
        .get_data_source(source_code)
        .await
        .map_err(|e| unavailable(&e))?
        .filter(|s| s.active)
        .ok_or_else(|| {
            CallbackRejection::transport(
                404,
                ErrorCode::RequestNotFound,
                format!("no active data source {source_code:?} receives callbacks here"),
            )
        })?;
    // Authentication: the secret, else a verified signature (checked below), else the opt-out.
    // Under policy `off` no signature can count, so refuse before reading anything else.
    let secret_ok = credentials.matches(&source);
    let presented = credentials.url_secret.is_some() || credentials.bearer.is_some();
    let open_door = source.callbacks.accept_unauthenticated;
    if !secret_ok && !open_door && source.reply_signature_policy == SignaturePolicy::Off {
        return Err(unauthenticated(&source, presented));
    }
    if let Some(expected) = &source.receiver_id {
        let sender = non_empty(&body, "/header/sender_id");
        if sender != Some(expected.as_str()) {
            return Err(CallbackRejection::dci(
                403,
                ErrorCode::SenderIdInvalid,
                format!(
                    "header.sender_id {:?} is not this data source's registry ({expected:?})",
                    sender.unwrap_or("")
                ),
            ));
        }
    }
    let sig = ctx
        .keys
        .check(&source, &body, now)
        .await
        .map_err(|f| CallbackRejection::dci(401, f.error_code(), f.to_string()))?;
    if !secret_ok && !open_door && sig.state != SignatureState::Verified {
        return Err(unauthenticated(&source, presented));
    }

    crate::telemetry::callback_identified(action.as_str(), &message_id, callback.transaction_id())
        .await;
    let status = callback.status();
    let transaction = match (&action, callback.transaction_id()) {
        (Action::Notify, _) => None,
        (_, Some(id)) => {
            let t = ctx
                .ops
                .get_transaction(id)
                .await
                .map_err(|e| unavailable(&e))?
                .filter(|t| t.source_code == source.code)
                .ok_or_else(|| {
                    CallbackRejection::dci(
                        404,
                        ErrorCode::RequestNotFound,
                        format!("transaction {id:?} was not sent by data source {source_code:?}"),
                    )
                })?;
            refuse_if_closed(ctx, &t, &message_id).await?;
            Some(t)
        }
        (_, None) if callback.is_header_only() => {
            let kind = answers_kind(&action).unwrap_or(OpKind::Search);
            let (open, t) = only_open(ctx, &source.code, kind)
                .await
                .map_err(|e| unavailable(&e))?;
            let what = match &t {
                Some(t) => format!(
                    "a header-only callback names no transaction; matched to the only open {kind} transaction {}",
                    t.transaction_id
                ),
                None => format!(
                    "a header-only callback names no transaction, and {open} {kind} transactions are open: stored unmatched"
                ),
            };
            tracing::info!(source = %source.code, action = %action, status = %status.describe(),
                transaction_id = t.as_ref().map_or("-", |t| t.transaction_id.as_str()),
                "header-only callback");
            tolerated.push(format!("message: {what}"));
            t
        }
        // A message without transaction_id is refused by the typed parser already.
        (_, None) => {
            return Err(CallbackRejection::bad("message.transaction_id is missing"));
        }
    };
    if callback.is_header_only()
        && status == MessageStatus::Succeeded
        && answers_kind(&action).is_some_and(|k| k != OpKind::Unsubscribe)
    {
        tolerated.push(
            "message: a header-only succ delivers no results; nothing is concluded from it".into(),
        );
    }

    let header = &callback.header;
    let record = CallbackRecord {
        source_code: source.code.clone(),
        message_id: message_id.clone(),
        action: action.as_str().to_owned(),
        transaction_id: transaction
            .as_ref()
            .map(|t| t.transaction_id.clone())
            .or_else(|| callback.transaction_id().map(str::to_owned)),
        correlation_id: callback
            .message
            .as_ref()
            .and_then(CallbackMessage::correlation_id)
            .map(str::to_owned),
        status: header
            .status
            .as_ref()
            .map(|s| s.as_str().trim().to_ascii_lowercase()),
        total_count: header.total_count,
        completed_count: header.completed_count,
        signature: sig.state,
        signature_key_id: sig.key_id,
        body,
        tolerated,
        received_at: now,
    };
    if !record.tolerated.is_empty() {
        tracing::debug!(source = %source.code, message_id = %message_id,
            tolerated = record.tolerated.len(), "callback read leniently");
    }
    // A registry re-sends until it sees our ACK: the same message again is ACKed again and
    // stored once; the same id with another body is refused (and changes nothing).
    if let Some(stored) = ctx
        .ops
        .get_callback(&source.code, &message_id)
        .await
        .map_err(|e| unavailable(&e))?
    {
        return resent(&stored, &record.body, now);
    }
    // Subscriptions first: a waiter that sees the stored callback must also see its codes.
    // Re-applying them for a concurrent identical re-send changes nothing.
    if let Some(t) = &transaction {
        apply_subscriptions(ctx, t, &callback, now)
            .await
            .map_err(|e| unavailable(&e))?;
    }
    if !ctx
        .ops
        .insert_callback(&record)
        .await
        .map_err(|e| unavailable(&e))?
    {
        // Stored concurrently by a re-send that overtook this one.
        let stored = ctx
            .ops
            .get_callback(&source.code, &message_id)
            .await
            .map_err(|e| unavailable(&e))?;
        return match stored {
            Some(stored) => resent(&stored, &record.body, now),
            None => Err(unavailable(&crate::store::StoreError::Corrupt(format!(
                "callback {message_id:?} of {:?} was refused as a duplicate but is not stored",
                source.code
            )))),
        };
    }

    // Stored: the store moved the transaction to the state its callbacks now show, with its
    // event, in the same database transaction (`OpsStore::insert_callback`).
    Ok(AckResponse::ack(&dci_protocol::build::new_id(), now))
}

/// The answer to a callback whose message id is already stored: ACK if it is the same message
/// (a re-send after a lost ACK), refused if the id now comes with a different body.
fn resent(
    stored: &CallbackRecord,
    body: &Value,
    now: OffsetDateTime,
) -> Result<AckResponse, CallbackRejection> {
    if stored.body == *body {
        tracing::debug!(source = %stored.source_code, message_id = %stored.message_id,
            "re-sent callback acknowledged again, not stored twice");
        return Ok(AckResponse::ack(&dci_protocol::build::new_id(), now));
    }
    Err(CallbackRejection::dci(
        409,
        ErrorCode::RequestBad,
        format!(
            "header.message_id {:?} was already received with a different body ({}): a new message needs a new message_id",
            stored.message_id,
            StatusReasonCode::MessageIdDuplicate.as_str()
        ),
    ))
}

/// A completed or failed transaction takes no further callbacks: its result is final. A
/// re-delivery of a callback already stored is left to the duplicate check (ACKed again if
/// identical), so a registry retrying a lost ACK still learns that it was received.
async fn refuse_if_closed(
    ctx: &IngestContext,
    t: &TransactionRecord,
    message_id: &str,
) -> Result<(), CallbackRejection> {
    if !matches!(
        t.state,
        TransactionState::Completed | TransactionState::Failed
    ) {
        return Ok(());
    }
    let stored = ctx
        .ops
        .callbacks_for(&t.transaction_id)
        .await
        .map_err(|e| unavailable(&e))?;
    if stored.iter().any(|c| c.message_id == message_id) {
        return Ok(());
    }
    Err(CallbackRejection::dci(
        403,
        ErrorCode::RequestForbidden,
        format!(
            "transaction {:?} is already {}: its result is final and takes no further callbacks",
            t.transaction_id,
            t.state.as_str()
        ),
    ))
}

async fn apply_subscriptions(
    ctx: &IngestContext,
    t: &TransactionRecord,
    callback: &Callback,
    now: OffsetDateTime,
) -> Result<(), crate::store::StoreError> {
    let upsert =
        |code: &str, state: SubscriptionState, event_type: Option<String>| SubscriptionRecord {
            source_code: t.source_code.clone(),
            code: code.to_owned(),
            state,
            event_type,
            transaction_id: Some(t.transaction_id.clone()),
            created_at: now,
            updated_at: now,
        };
    match (&t.kind, &callback.message) {
        (OpKind::Subscribe, Some(CallbackMessage::Subscribe(m))) => {
            let event_type = t
                .request
                .pointer("/message/subscribe_request/0/subscribe_criteria/reg_event_type")
                .and_then(Value::as_str)
                .map(str::to_owned);
            for item in &m.subscribe_response {
                let rejected = item.status == dci_protocol::codes::RequestStatus::Rjct;
                for s in &item.subscriptions {
                    let live = s.status != SubscriptionStatus::Unsubscribe;
                    let state = match (rejected, live) {
                        (true, _) => SubscriptionState::Rejected,
                        (false, true) => SubscriptionState::Subscribed,
                        (false, false) => SubscriptionState::Unsubscribed,
                    };
                    ctx.ops
                        .upsert_subscription(&upsert(&s.code, state, event_type.clone()))
                        .await?;
                }
            }
        }
        (OpKind::Unsubscribe, Some(CallbackMessage::Unsubscribe(m))) => {
            for s in &m.subscription_status {
                let state = if s.status == SubscriptionStatus::Subscribe {
                    SubscriptionState::Subscribed
                } else {
                    SubscriptionState::Unsubscribed
                };
                ctx.ops
                    .upsert_subscription(&upsert(&s.code, state, None))
                    .await?;
            }
        }
        // A header-only `succ` to an unsubscribe: the whole request succeeded, so every code
        // it named is unsubscribed.
        (OpKind::Unsubscribe, None) if callback.status() == MessageStatus::Succeeded => {
            for code in t
                .request
                .pointer("/message/subscription_codes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                ctx.ops
                    .upsert_subscription(&upsert(code, SubscriptionState::Unsubscribed, None))
                    .await?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn unavailable(e: &crate::store::StoreError) -> CallbackRejection {
    tracing::error!(error = %e, "callback storage failed");
    CallbackRejection::transport(
        503,
        ErrorCode::ServiceUnavailable,
        "the receiver cannot store the callback right now; send it again later",
    )
}
