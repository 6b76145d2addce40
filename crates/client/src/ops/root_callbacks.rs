//! Callbacks posted at the server root — `/registry/on-search`, `/registry/on-subscribe`,
//! `/registry/on-unsubscribe`, `/registry/txn/on-status`, `/registry/notify`, the DCI default
//! for a `sender_uri` configured once at onboarding — whose URL names no data source.
//!
//! [`ingest_at_root`] finds the data source from the message, in this order: the transaction
//! it answers (`message.transaction_id`, a request we stored), else the registry's correlation
//! id (`message.correlation_id`, from the registry's ACK to a stored request), else the sender
//! (`header.sender_id` matched against each active source's `receiver_id`, the registry's id —
//! the way for a notification, whose transaction id is the registry's own). Unknown or
//! ambiguous is refused (DCI level: HTTP 200 with ACK `ERR`), naming what to fix; nothing is
//! stored.
//!
//! Before any of that, the caller must authenticate as some active data source: its callback
//! secret as `Authorization: Bearer` (the URL carries none here), or a signature that verifies
//! under the policy and keys of a source whose registry it claims to be (`header.sender_id`).
//! This is checked against [`RootSources`], a snapshot of the active sources kept in memory, so
//! a caller that does not authenticate is refused (HTTP 401) without a store read and without
//! anything it names being looked up: its answer and its time do not depend on whether a
//! transaction exists. A source that accepts unauthenticated callbacks is reachable only on its
//! own route (`/callback/{code}/…`).
//!
//! The callback is then ingested exactly as on the source's own route ([`ingest_with`](super::callbacks::ingest_with)), so it
//! is authenticated again, the same way, against the source as stored now.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dci_protocol::codes::{Action, ErrorCode};
use dci_protocol::envelope::AckResponse;
use dci_protocol::inbound::Callback;
use serde_json::Value;
use time::OffsetDateTime;

use super::callbacks::{CallbackCredentials, IngestContext, counted, ingest_value, read_body};
use super::refusal::CallbackRejection;
use super::store::SignatureState;
use crate::SignaturePolicy;
use crate::changes::{Change, Changes};
use crate::source::DataSource;
use crate::store::SourceFilter;

/// How long the snapshot of active sources is used before it is read again, when no change
/// feed says sooner (another process's change on SQLite publishes nothing here).
const ROOT_SOURCES_TTL: Duration = Duration::from_secs(5);

/// Ingests a callback posted at the server root: finds its data source (see the module
/// documentation), then [`ingest_with`](super::callbacks::ingest_with) for that source.
pub async fn ingest_at_root(
    ctx: &IngestContext,
    raw_body: &[u8],
    path_action: Option<Action>,
    credentials: &CallbackCredentials,
) -> Result<AckResponse, CallbackRejection> {
    use tracing::Instrument;
    let span = crate::telemetry::callback_span("");
    let answer = async {
        let body = read_body(ctx, raw_body)?;
        let code = authenticated_source(ctx, &body, path_action.as_ref(), credentials).await?;
        tracing::Span::current().record("dci.source", code.as_str());
        ingest_value(ctx, &code, body, path_action, credentials).await
    }
    .instrument(span.clone())
    .await;
    counted(&span, answer)
}

/// Where to post instead, for refusal messages.
const PER_SOURCE: &str = "or post it to the data source's own route /callback/{code}/registry/…";

/// The active data sources, as the root routes see them before any lookup: read from the store
/// at most every [`ROOT_SOURCES_TTL`], or sooner once the store's change feed reports a changed
/// source. Only ever read again because of time or a change, never because of what a caller
/// sent.
#[derive(Default)]
pub(crate) struct RootSources {
    snapshot: tokio::sync::Mutex<Option<Snapshot>>,
}

struct Snapshot {
    read_at: Instant,
    sources: Arc<Vec<DataSource>>,
    feed: Option<Changes>,
}

impl Snapshot {
    /// Still current: young enough, and no source changed since it was read.
    fn current(&mut self) -> bool {
        let mut changed = false;
        if let Some(feed) = &mut self.feed {
            while let Some(c) = feed.try_next() {
                changed |= matches!(c, Change::Source(_) | Change::Resync);
            }
        }
        !changed && self.read_at.elapsed() < ROOT_SOURCES_TTL
    }
}

impl RootSources {
    async fn get(&self, ctx: &IngestContext) -> Result<Arc<Vec<DataSource>>, CallbackRejection> {
        let mut snapshot = self.snapshot.lock().await;
        if let Some(s) = snapshot.as_mut()
            && s.current()
        {
            return Ok(Arc::clone(&s.sources));
        }
        // Subscribed before the read, so a change committed after it is seen next time.
        let feed = ctx.ops.changes();
        let sources = ctx
            .store
            .list_data_sources(&SourceFilter {
                active: Some(true),
                ..SourceFilter::default()
            })
            .await
            .map_err(|e| unavailable(&e))?;
        let sources = Arc::new(sources);
        *snapshot = Some(Snapshot {
            read_at: Instant::now(),
            sources: Arc::clone(&sources),
            feed,
        });
        Ok(sources)
    }
}

impl std::fmt::Debug for RootSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootSources").finish_non_exhaustive()
    }
}

/// The one refusal of a root callback that does not authenticate, whatever it names.
fn unauthenticated_at_root() -> CallbackRejection {
    CallbackRejection::transport(
        401,
        ErrorCode::RequestUnauthorized,
        format!(
            "a callback at the root path must authenticate first: send the data source's callback secret as Authorization: Bearer, or sign it with the registry's key (header.sender_id naming the registry), {PER_SOURCE} (its sender_uri)"
        ),
    )
}

/// The code of the data source a root callback is for: first the sources it authenticates as,
/// checked before anything the message names is looked up; then [`source_of`] (which reads
/// the stored transactions), whose answer must be one of them.
async fn authenticated_source(
    ctx: &IngestContext,
    body: &Value,
    path_action: Option<&Action>,
    credentials: &CallbackCredentials,
) -> Result<String, CallbackRejection> {
    let signed = matches!(body.get("signature"), Some(Value::String(s)) if !s.trim().is_empty());
    if credentials.bearer.is_none() && !signed {
        return Err(unauthenticated_at_root());
    }
    let sender = body.pointer("/header/sender_id").and_then(Value::as_str);
    let now = OffsetDateTime::now_utc();
    let sources = ctx.root.get(ctx).await?;
    let mut who = Vec::new();
    for s in sources.iter() {
        // Every source's secret is compared, so the time does not say which one matched.
        let by_secret = credentials.matches(s);
        let by_signature = !by_secret
            && signed
            && s.reply_signature_policy != SignaturePolicy::Off
            && s.receiver_id.as_deref().is_none_or(|r| Some(r) == sender)
            && ctx
                .keys
                .check(s, body, now)
                .await
                .is_ok_and(|o| o.state == SignatureState::Verified);
        if by_secret || by_signature {
            who.push(s.code.clone());
        }
    }
    if who.is_empty() {
        return Err(unauthenticated_at_root());
    }
    // Authenticated: now what the message names may be looked up.
    let code = source_of(ctx, &sources, body, path_action).await?;
    if who.contains(&code) {
        return Ok(code);
    }
    Err(CallbackRejection::dci(
        404,
        ErrorCode::RequestNotFound,
        format!(
            "the callback is for data source {code:?}, but it authenticates as {}; check message.transaction_id and header.sender_id, {PER_SOURCE}",
            who.join(", ")
        ),
    ))
}

/// The code of the data source a root callback is for; a sender is matched against `sources`,
/// the active data sources.
pub async fn source_of(
    ctx: &IngestContext,
    sources: &[DataSource],
    body: &Value,
    path_action: Option<&Action>,
) -> Result<String, CallbackRejection> {
    let (transaction_id, correlation_id) = ids(body, path_action);
    if let Some(id) = &transaction_id
        && let Some(t) = ctx
            .ops
            .get_transaction(id)
            .await
            .map_err(|e| unavailable(&e))?
    {
        return Ok(t.source_code);
    }
    if let Some(id) = &correlation_id {
        let found = ctx
            .ops
            .transactions_by_correlation(id)
            .await
            .map_err(|e| unavailable(&e))?;
        match found.as_slice() {
            [t] => return Ok(t.source_code.clone()),
            [] => {}
            _ => {
                return Err(CallbackRejection::bad(format!(
                    "message.correlation_id {id:?} matches transactions of several data sources; send message.transaction_id, {PER_SOURCE}"
                )));
            }
        }
    }
    // A notification's transaction id is the registry's own: the sender says whose it is.
    let sender = body
        .pointer("/header/sender_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let Some(sender) = sender else {
        return Err(match (&transaction_id, &correlation_id) {
            (None, None) => CallbackRejection::bad(format!(
                "the callback names no transaction (message.transaction_id), correlation id (message.correlation_id) or sender (header.sender_id), so no data source can be found for it; send one of them, {PER_SOURCE}"
            )),
            _ => CallbackRejection::dci(
                404,
                ErrorCode::RequestNotFound,
                format!(
                    "message.transaction_id {:?} / message.correlation_id {:?} match no transaction this client sent, and header.sender_id is missing, so no data source takes this callback; check the ids, {PER_SOURCE}",
                    transaction_id.as_deref().unwrap_or(""),
                    correlation_id.as_deref().unwrap_or("")
                ),
            ),
        });
    };
    let mut matching = sources
        .iter()
        .filter(|s| s.receiver_id.as_deref() == Some(sender))
        .map(|s| s.code.clone());
    match (matching.next(), matching.next()) {
        (Some(code), None) => Ok(code),
        (None, _) if transaction_id.is_some() || correlation_id.is_some() => {
            Err(CallbackRejection::dci(
                404,
                ErrorCode::RequestNotFound,
                format!(
                    "message.transaction_id {:?} / message.correlation_id {:?} match no transaction this client sent, and header.sender_id {sender:?} is the receiver_id of no active data source, so no data source takes this callback; check the ids, {PER_SOURCE}",
                    transaction_id.as_deref().unwrap_or(""),
                    correlation_id.as_deref().unwrap_or("")
                ),
            ))
        }
        (None, _) => Err(CallbackRejection::dci(
            403,
            ErrorCode::SenderIdInvalid,
            format!(
                "header.sender_id {sender:?} is the receiver_id of no active data source; set the data source's receiver_id to the registry's id, {PER_SOURCE}"
            ),
        )),
        (Some(a), Some(b)) => Err(CallbackRejection::dci(
            403,
            ErrorCode::SenderIdInvalid,
            format!(
                "header.sender_id {sender:?} is the receiver_id of several active data sources ({a:?}, {b:?}, …), so the callback is ambiguous; send message.transaction_id, {PER_SOURCE}"
            ),
        )),
    }
}

/// `message.transaction_id` and `message.correlation_id`, read by the typed lenient parser
/// when the message parses, else straight from the JSON (the ingest that follows reports
/// what is wrong with it).
fn ids(body: &Value, path_action: Option<&Action>) -> (Option<String>, Option<String>) {
    let text = |ptr: &str| {
        body.pointer(ptr)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let action = path_action.cloned().or_else(|| {
        body.pointer("/header/action")
            .and_then(Value::as_str)
            .map(Action::parse_lenient)
    });
    if let Some(action) = action
        && let Ok(parsed) = Callback::parse(&action, body.clone())
        && let Some(m) = &parsed.value.message
    {
        let t = m.transaction_id().map(str::to_owned);
        let c = m.correlation_id().map(str::to_owned);
        if t.is_some() || c.is_some() {
            return (t, c);
        }
    }
    (
        text("/message/transaction_id"),
        text("/message/correlation_id"),
    )
}

fn unavailable(e: &crate::store::StoreError) -> CallbackRejection {
    tracing::error!(error = %e, "finding the data source of a callback failed");
    CallbackRejection::transport(
        503,
        ErrorCode::ServiceUnavailable,
        "the receiver cannot read its store right now; send the callback again later",
    )
}
