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
//! The callback is then ingested exactly as on the source's own route ([`ingest_with`]), so it
//! is authenticated the same way: a signature under the source's policy, or the source's
//! callback secret — here only as `Authorization: Bearer`, since the URL carries none.

use dci_protocol::codes::{Action, ErrorCode};
use dci_protocol::envelope::AckResponse;
use dci_protocol::inbound::Callback;
use serde_json::Value;

use super::callbacks::{CallbackCredentials, IngestContext, counted, ingest_value, read_body};
use super::refusal::CallbackRejection;
use crate::store::SourceFilter;

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
        let code = source_of(ctx, &body, path_action.as_ref()).await?;
        tracing::Span::current().record("dci.source", code.as_str());
        ingest_value(ctx, &code, body, path_action, credentials).await
    }
    .instrument(span.clone())
    .await;
    counted(&span, answer)
}

/// Where to post instead, for refusal messages.
const PER_SOURCE: &str = "or post it to the data source's own route /callback/{code}/registry/…";

/// The code of the data source a root callback is for.
pub async fn source_of(
    ctx: &IngestContext,
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
    let sources = ctx
        .store
        .list_data_sources(&SourceFilter {
            active: Some(true),
            ..SourceFilter::default()
        })
        .await
        .map_err(|e| unavailable(&e))?;
    let mut matching = sources
        .into_iter()
        .filter(|s| s.receiver_id.as_deref() == Some(sender))
        .map(|s| s.code);
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
