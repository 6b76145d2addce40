//! What a stored async request looks like to callers: its state, the ACK, the callbacks and the
//! results aggregated over them. Computed from the stored rows on every read, so any process
//! sharing the store (CLI, `dci serve` replicas) sees the same view.
//!
//! Each stored callback is read through `dci-protocol`'s typed lenient parser
//! ([`dci_protocol::inbound::Callback`]); one stored before typed ingest that does not parse is
//! read field by field. How callbacks move a transaction:
//!
//! - header `rjct` (with or without a message): that message was refused; the transaction fails
//!   with the header's reason (or the first rejected item's) once it is complete or every
//!   answering callback is `rjct` — so a header-only `rjct` fails it at once.
//! - header `rcvd` / `pdng` without results: an acknowledgement, not an answer. The transaction
//!   is (at least) `acknowledged`, never `partial` or `completed` because of it.
//! - header `succ` without a message: for unsubscribe, the whole request succeeded, which is all
//!   its answer says, so it completes. For search, subscribe and txn status the answer *is* the
//!   items / subscription codes / status body: a header-only `succ` delivers none of them, so it
//!   completes nothing (the result may still come, or be fetched with txn status) rather than
//!   reading as "nothing found".

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::RegistryError;

use dci_protocol::codes::Action;
use dci_protocol::codes::RequestStatus;
use dci_protocol::inbound::{Callback, CallbackMessage, MessageStatus};

use super::raw_record::RawRecord;
use super::result::{SearchItemResult, parse_search_items, txn_items, typed_items};
use super::store::{
    AckRecord, CallbackRecord, OpKind, SignatureState, TransactionRecord, TransactionState,
};

/// A stored async request with everything that came back for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransactionView {
    /// Our transaction id.
    pub transaction_id: String,
    /// The data source.
    pub source_code: String,
    /// Which operation.
    pub kind: OpKind,
    /// Where it stands.
    pub state: TransactionState,
    /// The request's `header.message_id`.
    pub message_id: String,
    /// The request's reference ids.
    pub reference_ids: Vec<String>,
    /// The registry's synchronous answer.
    pub ack: Option<AckView>,
    /// Callbacks received, in order of arrival.
    pub callbacks: Vec<CallbackSummary>,
    /// Search results so far (search and txn-status), one per answered reference id.
    pub items: Vec<SearchItemResult>,
    /// Subscription codes and their status (subscribe / unsubscribe).
    pub subscriptions: Vec<Value>,
    /// The registry's reason when it failed.
    pub error: Option<RegistryError>,
    /// Why it is in its state when no registry answer says so: `expired` (given up, and what
    /// was tried), or `failed` because the registry has no such transaction.
    pub reason: Option<String>,
    /// When it was stored.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it is given up if incomplete.
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
}

/// The ACK as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckView {
    /// `ACK`, `NACK`, `ERR`.
    pub ack_status: String,
    /// The registry's correlation id.
    pub correlation_id: Option<String>,
    /// The registry's reason for ERR.
    pub error: Option<RegistryError>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One callback as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackSummary {
    /// `header.message_id`.
    pub message_id: String,
    /// `header.action`.
    pub action: String,
    /// `header.status`.
    pub status: Option<String>,
    /// `header.total_count`.
    pub total_count: Option<u64>,
    /// `header.completed_count`.
    pub completed_count: Option<u64>,
    /// Signature check.
    pub signature: SignatureState,
    /// Whether it carried no message (valid DCI: a status in the header only).
    pub header_only: bool,
    /// What had to be tolerated to read it, as `path: what`.
    pub tolerated: Vec<String>,
    /// When it arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

fn ack_view(a: &AckRecord) -> AckView {
    let error = (a.error_code.is_some() || a.error_message.is_some()).then(|| RegistryError {
        code: a.error_code.clone(),
        message: a.error_message.clone(),
    });
    AckView {
        ack_status: a.ack_status.clone(),
        correlation_id: a.correlation_id.clone(),
        error,
        at: a.at,
    }
}

fn message(c: &CallbackRecord) -> &Value {
    c.body.get("message").unwrap_or(&Value::Null)
}

/// What one callback says, read from its stored body.
#[derive(Default)]
struct Reading {
    status: Option<String>,
    header_reason: Option<RegistryError>,
    header_only: bool,
    items: Vec<SearchItemResult>,
    subscriptions: Vec<Value>,
    /// Reference ids answered in `subscribe_response`.
    subscribe_refs: Vec<String>,
    /// `on-unsubscribe` `message.status` and its reason.
    unsubscribe: Option<(String, Option<RegistryError>)>,
    /// A `txnstatus_response` arrived.
    txn_status: bool,
}

impl Reading {
    fn is(&self, s: &str) -> bool {
        self.status
            .as_deref()
            .is_some_and(|x| x.eq_ignore_ascii_case(s))
    }

    fn in_progress(&self) -> bool {
        self.is("rcvd") || self.is("pdng")
    }

    /// Whether the callback carries an answer (results, codes, a status body) or a final
    /// word (`rjct`; a header-only `succ` to an unsubscribe), as opposed to an acknowledgement.
    fn answers(&self, kind: OpKind) -> bool {
        self.is("rjct")
            || self.items.iter().any(|i| !i.is_pending())
            || !self.subscribe_refs.is_empty()
            || self
                .unsubscribe
                .as_ref()
                .is_some_and(|(s, _)| s == "succ" || s == "rjct")
            || self.txn_status
            || (kind == OpKind::Unsubscribe && self.header_only && self.is("succ"))
    }
}

fn sub_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn read(c: &CallbackRecord) -> Reading {
    let header = c.body.get("header").unwrap_or(&Value::Null);
    let text = |k: &str| header.get(k).and_then(Value::as_str);
    let mut r = Reading {
        status: c.status.clone(),
        header_reason: RegistryError::new(
            text("status_reason_code"),
            text("status_reason_message"),
        ),
        ..Reading::default()
    };
    let action = Action::parse_lenient(&c.action);
    let Ok(parsed) = Callback::parse(&action, c.body.clone()) else {
        read_untyped(c, &mut r);
        return r;
    };
    let raw = message(c);
    let cb = parsed.value;
    if r.status.is_none() && cb.status() != MessageStatus::Unstated {
        r.status = cb.header.status.as_ref().map(|s| s.as_str().to_owned());
    }
    r.header_only = cb.is_header_only();
    match &cb.message {
        None | Some(CallbackMessage::Encrypted) | Some(CallbackMessage::Notify(_)) => {}
        Some(CallbackMessage::Search(m)) => r.items = typed_items(m, raw),
        Some(CallbackMessage::TxnStatus(m, status)) => {
            r.txn_status = true;
            r.items = txn_items(m, status.as_deref(), raw);
        }
        Some(CallbackMessage::Subscribe(m)) => {
            for item in &m.subscribe_response {
                r.subscribe_refs.push(item.reference_id.clone());
                r.subscriptions
                    .extend(item.subscriptions.iter().map(sub_value));
            }
        }
        Some(CallbackMessage::Unsubscribe(m)) => {
            r.subscriptions
                .extend(m.subscription_status.iter().map(sub_value));
            let reason = RegistryError::new(
                m.status_reason_code.as_ref().map(|c| c.as_str()),
                m.status_reason_message.as_deref(),
            );
            let status = match &m.status {
                RequestStatus::Other(s) => s.to_ascii_lowercase(),
                s => s.as_str().to_owned(),
            };
            r.unsubscribe = Some((status, reason));
        }
    }
    r
}

/// A stored callback that is not typed DCI (stored before typed ingest): field by field.
fn read_untyped(c: &CallbackRecord, r: &mut Reading) {
    let m = message(c);
    r.header_only = m.as_object().is_none_or(serde_json::Map::is_empty);
    r.items = match c.action.as_str() {
        "txn-on-status" | "txn_on_status" => {
            r.txn_status = m.get("txnstatus_response").is_some();
            m.pointer("/txnstatus_response/txn_status")
                .map(parse_search_items)
                .unwrap_or_default()
        }
        _ => parse_search_items(m),
    };
    if let Some(Value::Array(subs)) = m.get("subscribe_response") {
        for s in subs {
            if let Some(reference) = s.get("reference_id").and_then(Value::as_str) {
                r.subscribe_refs.push(reference.to_owned());
            }
            if let Some(Value::Array(infos)) = s.get("subscriptions") {
                r.subscriptions.extend(infos.iter().cloned());
            }
        }
    }
    if let Some(Value::Array(st)) = m.get("subscription_status") {
        r.subscriptions.extend(st.iter().cloned());
    }
    if let Some(status) = m.get("status").and_then(Value::as_str) {
        let reason = RegistryError::new(
            m.get("status_reason_code").and_then(Value::as_str),
            m.get("status_reason_message").and_then(Value::as_str),
        );
        r.unsubscribe = Some((status.to_ascii_lowercase(), reason));
    }
}

/// Builds the view of `t` from its callbacks (in arrival order).
pub fn build_view(t: &TransactionRecord, callbacks: &[CallbackRecord]) -> TransactionView {
    let readings: Vec<Reading> = callbacks.iter().map(read).collect();
    let mut items: Vec<SearchItemResult> = Vec::new();
    let mut subscriptions = Vec::new();
    let mut error = t.ack.as_ref().and_then(|a| ack_view(a).error);
    let mut rejected = false;
    for r in &readings {
        if r.is("rjct") {
            rejected = true;
            let first_item_reason = r
                .items
                .iter()
                .find(|i| i.status == "rjct")
                .and_then(|i| i.reason.clone());
            error = r.header_reason.clone().or(first_item_reason).or(error);
        }
        for it in r.items.iter().filter(|i| !i.is_pending()) {
            // A duplicate answer for a reference id (a re-sent part) replaces the earlier one.
            if let Some(pos) = items.iter().position(|x: &SearchItemResult| {
                !it.reference_id.is_empty() && x.reference_id == it.reference_id
            }) {
                items[pos] = it.clone();
            } else {
                items.push(it.clone());
            }
        }
        subscriptions.extend(r.subscriptions.iter().cloned());
        if let Some((status, reason)) = &r.unsubscribe
            && status == "rjct"
        {
            rejected = true;
            if reason.is_some() {
                error = reason.clone();
            }
        }
    }
    let expected: BTreeSet<&str> = t.reference_ids.iter().map(String::as_str).collect();
    let answered: BTreeSet<&str> = items.iter().map(|i| i.reference_id.as_str()).collect();
    let total = t.reference_ids.len() as u64;
    // Counts are trusted only from callbacks that carry results: a header-only `succ` with
    // `completed_count` would otherwise read as "nothing found".
    let max_completed = callbacks
        .iter()
        .zip(&readings)
        .filter(|(_, r)| !r.header_only && !r.in_progress())
        .filter_map(|(c, _)| c.completed_count)
        .max()
        .unwrap_or(0);
    let answering: Vec<&Reading> = readings.iter().filter(|r| r.answers(t.kind)).collect();
    // Without recorded reference ids, any answer completes it.
    let counted =
        (total == 0 && !answering.is_empty()) || (max_completed > 0 && max_completed >= total);
    let complete = match t.kind {
        OpKind::Unsubscribe => readings.iter().any(|r| {
            r.unsubscribe
                .as_ref()
                .is_some_and(|(s, _)| s == "succ" || s == "rjct")
                || (r.header_only && (r.is("succ") || r.is("rjct")))
        }),
        OpKind::TxnStatus => readings.iter().any(|r| r.txn_status && !r.in_progress()),
        OpKind::Subscribe => {
            let subs_answered: BTreeSet<&str> = readings
                .iter()
                .flat_map(|r| r.subscribe_refs.iter().map(String::as_str))
                .collect();
            (!subs_answered.is_empty() && expected.is_subset(&subs_answered)) || counted
        }
        OpKind::Search => {
            if answered.iter().any(|r| expected.contains(r)) {
                expected.is_subset(&answered)
            } else {
                // The registry does not echo our reference ids: trust its counts.
                counted
            }
        }
    };
    let computed = if rejected
        && (complete || (!answering.is_empty() && answering.iter().all(|r| r.is("rjct"))))
    {
        TransactionState::Failed
    } else if complete {
        TransactionState::Completed
    } else if !answering.is_empty() {
        TransactionState::Partial
    } else if !callbacks.is_empty() {
        // Only acknowledgements (`rcvd` / `pdng`, or a header-only `succ`): the registry has it.
        TransactionState::Acknowledged
    } else {
        t.state
    };
    // The stored state may be ahead (failed ACK, timed out) of what the callbacks say.
    let state = if callbacks.is_empty() || computed.rank() < t.state.rank() {
        t.state
    } else {
        computed
    };
    TransactionView {
        transaction_id: t.transaction_id.clone(),
        source_code: t.source_code.clone(),
        kind: t.kind,
        state,
        message_id: t.message_id.clone(),
        reference_ids: t.reference_ids.clone(),
        ack: t.ack.as_ref().map(ack_view),
        callbacks: callbacks
            .iter()
            .zip(&readings)
            .map(|(c, r)| CallbackSummary {
                message_id: c.message_id.clone(),
                action: c.action.clone(),
                status: c.status.clone(),
                total_count: c.total_count,
                completed_count: c.completed_count,
                signature: c.signature,
                header_only: r.header_only,
                tolerated: c.tolerated.clone(),
                received_at: c.received_at,
            })
            .collect(),
        items,
        subscriptions,
        error,
        reason: t.reason.clone(),
        created_at: t.created_at,
        deadline: t.deadline,
    }
}

impl TransactionView {
    /// Every record of every answered item, raw.
    pub fn records(&self) -> impl Iterator<Item = &RawRecord> {
        self.items.iter().flat_map(|i| i.records.iter())
    }
}
