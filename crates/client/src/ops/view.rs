//! What a stored async request looks like to callers: its state, the ACK, the callbacks and the
//! results aggregated over them. Computed from the stored rows on every read, so any process
//! sharing the store (CLI, `dci serve` replicas) sees the same view.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::RegistryError;

use super::result::{SearchItemResult, parse_search_items};
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
    /// When it was stored.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it times out if incomplete.
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

fn header_reason(c: &CallbackRecord) -> Option<RegistryError> {
    let h = c.body.get("header")?;
    let code = h.get("status_reason_code").and_then(Value::as_str);
    let msg = h.get("status_reason_message").and_then(Value::as_str);
    (code.is_some() || msg.is_some()).then(|| RegistryError {
        code: code.map(str::to_owned),
        message: msg.map(str::to_owned),
    })
}

/// Builds the view of `t` from its callbacks (in arrival order).
pub fn build_view(t: &TransactionRecord, callbacks: &[CallbackRecord]) -> TransactionView {
    let mut items: Vec<SearchItemResult> = Vec::new();
    let mut subscriptions = Vec::new();
    let mut error = t.ack.as_ref().and_then(|a| ack_view(a).error);
    let mut rejected = false;
    let mut max_completed = 0u64;
    for c in callbacks {
        let m = message(c);
        if c.status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("rjct"))
        {
            rejected = true;
            error = header_reason(c).or(error);
        }
        max_completed = max_completed.max(c.completed_count.unwrap_or(0));
        let found = match c.action.as_str() {
            "txn-on-status" | "txn_on_status" => m
                .pointer("/txnstatus_response/txn_status")
                .map(parse_search_items)
                .unwrap_or_default(),
            _ => parse_search_items(m),
        };
        for it in found {
            // A duplicate answer for a reference id (a re-sent part) replaces the earlier one.
            if let Some(pos) = items
                .iter()
                .position(|x| !it.reference_id.is_empty() && x.reference_id == it.reference_id)
            {
                items[pos] = it;
            } else {
                items.push(it);
            }
        }
        if let Some(Value::Array(subs)) = m.get("subscribe_response") {
            for s in subs {
                if let Some(Value::Array(infos)) = s.get("subscriptions") {
                    subscriptions.extend(infos.iter().cloned());
                }
            }
        }
        if let Some(Value::Array(st)) = m.get("subscription_status") {
            subscriptions.extend(st.iter().cloned());
        }
        if m.get("status")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("rjct"))
        {
            rejected = true;
            let code = m.get("status_reason_code").and_then(Value::as_str);
            let msg = m.get("status_reason_message").and_then(Value::as_str);
            if code.is_some() || msg.is_some() {
                error = Some(RegistryError {
                    code: code.map(str::to_owned),
                    message: msg.map(str::to_owned),
                });
            }
        }
    }
    let expected: BTreeSet<&str> = t.reference_ids.iter().map(String::as_str).collect();
    let answered: BTreeSet<&str> = items.iter().map(|i| i.reference_id.as_str()).collect();
    let total = t.reference_ids.len() as u64;
    let complete = !callbacks.is_empty()
        && match t.kind {
            // Unsubscribe answers once for the whole message.
            OpKind::Unsubscribe | OpKind::TxnStatus => true,
            OpKind::Subscribe => {
                let subs_answered: BTreeSet<&str> = callbacks
                    .iter()
                    .filter_map(|c| {
                        message(c)
                            .get("subscribe_response")
                            .and_then(Value::as_array)
                    })
                    .flatten()
                    .filter_map(|s| s.get("reference_id").and_then(Value::as_str))
                    .collect();
                expected.is_subset(&subs_answered) || max_completed >= total
            }
            OpKind::Search => {
                if answered.iter().any(|r| expected.contains(r)) {
                    expected.is_subset(&answered)
                } else {
                    // The registry does not echo our reference ids: trust its counts.
                    max_completed >= total
                }
            }
        };
    let computed = if rejected
        && (complete
            || callbacks
                .iter()
                .all(|c| c.status.as_deref() == Some("rjct")))
    {
        TransactionState::Failed
    } else if complete {
        TransactionState::Completed
    } else if !callbacks.is_empty() {
        TransactionState::Partial
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
            .map(|c| CallbackSummary {
                message_id: c.message_id.clone(),
                action: c.action.clone(),
                status: c.status.clone(),
                total_count: c.total_count,
                completed_count: c.completed_count,
                signature: c.signature,
                received_at: c.received_at,
            })
            .collect(),
        items,
        subscriptions,
        error,
        created_at: t.created_at,
        deadline: t.deadline,
    }
}

impl TransactionView {
    /// Every record of every answered item, raw.
    pub fn records(&self) -> impl Iterator<Item = &Value> {
        self.items.iter().flat_map(|i| i.records.iter())
    }
}
