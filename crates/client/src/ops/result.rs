//! Typed results: what a registry answered, item by item, with the raw records kept.
//!
//! Inbound is lenient: items are read from JSON field by field, so an odd registry reply still
//! yields whatever it did say, and the raw item is always kept.

use serde::Serialize;
use serde_json::Value;

use crate::error::RegistryError;

use super::store::{SignatureState, TransactionState};

/// A search answer (a sync reply, or the aggregate of async callbacks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    /// `message.transaction_id`.
    pub transaction_id: String,
    /// The registry's correlation id, if it sent one.
    pub correlation_id: Option<String>,
    /// `header.message_id` of the (last) reply.
    pub message_id: Option<String>,
    /// One entry per answered search item.
    pub items: Vec<SearchItemResult>,
    /// How the reply's signature was checked.
    pub signature: SignatureState,
}

impl SearchResult {
    /// Every record of every successful item, raw.
    pub fn records(&self) -> impl Iterator<Item = &Value> {
        self.items.iter().flat_map(|i| i.records.iter())
    }
}

/// One answered search item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchItemResult {
    /// Our reference id.
    pub reference_id: String,
    /// `succ`, `rjct`, `pdng`, `rcvd` (as sent).
    pub status: String,
    /// Why, when rejected (or when the registry said).
    pub reason: Option<RegistryError>,
    /// `data.reg_record_type`.
    pub record_type: Option<String>,
    /// `data.reg_event_type`.
    pub event_type: Option<String>,
    /// The records, exactly as the registry sent them.
    pub records: Vec<Value>,
    /// The page the records are, if the registry paginated.
    pub pagination: Option<PageInfo>,
    /// The whole item as received.
    pub raw: Value,
}

impl SearchItemResult {
    /// Whether the item succeeded.
    pub fn is_success(&self) -> bool {
        self.status.eq_ignore_ascii_case("succ")
    }
}

/// `pagination` of a response item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PageInfo {
    /// 1-based page number.
    pub page_number: u64,
    /// Page size.
    pub page_size: u64,
    /// Records matching in total.
    pub total_count: u64,
}

impl PageInfo {
    /// Whether later pages exist.
    pub fn has_more(&self) -> bool {
        self.page_size > 0 && self.page_number.saturating_mul(self.page_size) < self.total_count
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn u64_at(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_items(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    }
}

/// Reads one search response item leniently.
pub(crate) fn parse_item(item: &Value) -> SearchItemResult {
    let status = str_at(item, "status")
        .unwrap_or("succ")
        .to_ascii_lowercase();
    let code = str_at(item, "status_reason_code").map(str::to_owned);
    let message = str_at(item, "status_reason_message").map(str::to_owned);
    let reason = (code.is_some() || message.is_some()).then_some(RegistryError { code, message });
    let data = item.get("data");
    let records = match data.and_then(|d| d.get("reg_records")) {
        Some(Value::Array(a)) => a.clone(),
        // Where a spec types reg_records as an object (DR search, CRVS/FR txn status), `{}`
        // means none.
        Some(Value::Object(o)) if o.is_empty() => Vec::new(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    };
    let pagination = item.get("pagination").and_then(|p| {
        Some(PageInfo {
            page_number: u64_at(p, "page_number").unwrap_or(1),
            page_size: u64_at(p, "page_size")?,
            total_count: u64_at(p, "total_count")?,
        })
    });
    SearchItemResult {
        reference_id: str_at(item, "reference_id").unwrap_or_default().to_owned(),
        status,
        reason,
        record_type: data
            .and_then(|d| str_at(d, "reg_record_type"))
            .map(str::to_owned),
        event_type: data
            .and_then(|d| str_at(d, "reg_event_type"))
            .map(str::to_owned),
        records,
        pagination,
        raw: item.clone(),
    }
}

/// Reads `message.search_response` (or `txn_status.search_response`) items from a message.
pub(crate) fn parse_search_items(message: &Value) -> Vec<SearchItemResult> {
    as_items(message.get("search_response"))
        .into_iter()
        .map(parse_item)
        .collect()
}

/// Builds a [`SearchResult`] from a whole envelope (sync reply or `on-search` callback).
pub(crate) fn search_result(envelope: &Value, signature: SignatureState) -> SearchResult {
    let message = envelope.get("message").unwrap_or(&Value::Null);
    SearchResult {
        transaction_id: str_at(message, "transaction_id")
            .unwrap_or_default()
            .to_owned(),
        correlation_id: str_at(message, "correlation_id").map(str::to_owned),
        message_id: envelope
            .get("header")
            .and_then(|h| str_at(h, "message_id"))
            .map(str::to_owned),
        items: parse_search_items(message),
        signature,
    }
}

/// The answer to a transaction-status request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TxnStatusResult {
    /// `message.transaction_id` of the status reply.
    pub transaction_id: String,
    /// The registry's correlation id.
    pub correlation_id: Option<String>,
    /// `txnstatus_response.txn_type`.
    pub txn_type: Option<String>,
    /// Search results the registry returned for the transaction, if any.
    pub items: Vec<SearchItemResult>,
    /// `txn_status` as sent.
    pub txn_status: Value,
    /// How the reply's signature was checked.
    pub signature: SignatureState,
}

pub(crate) fn txn_status_result(envelope: &Value, signature: SignatureState) -> TxnStatusResult {
    let message = envelope.get("message").unwrap_or(&Value::Null);
    let body = message.get("txnstatus_response").unwrap_or(&Value::Null);
    let status = body.get("txn_status").cloned().unwrap_or(Value::Null);
    TxnStatusResult {
        transaction_id: str_at(message, "transaction_id")
            .unwrap_or_default()
            .to_owned(),
        correlation_id: str_at(message, "correlation_id").map(str::to_owned),
        txn_type: str_at(body, "txn_type").map(str::to_owned),
        items: parse_search_items(&status),
        txn_status: status,
        signature,
    }
}

/// The synchronous answer to an async submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsyncSubmission {
    /// `ACK` (or `NACK`; `ERR` is an error).
    pub ack_status: String,
    /// The registry's correlation id.
    pub correlation_id: Option<String>,
    /// Our transaction id: look the result up or await it with this.
    pub transaction_id: String,
    /// The request's `header.message_id`.
    pub message_id: String,
    /// State after the ACK.
    pub state: TransactionState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_keep_raw_records_and_reasons() {
        let env = json!({"header": {"message_id": "m"}, "message": {"transaction_id": "t",
            "correlation_id": "c", "search_response": [
            {"reference_id": "r1", "status": "succ", "data": {"reg_record_type": "Person",
              "reg_records": [{"uin": "1", "x": {"y": 2}}]},
             "pagination": {"page_size": "2", "page_number": 1, "total_count": 5}},
            {"reference_id": "r2", "status": "rjct", "status_reason_code": "rjct.x", "status_reason_message": "bad"}
        ]}});
        let r = search_result(&env, SignatureState::NotChecked);
        assert_eq!(r.items.len(), 2);
        assert_eq!(r.items[0].records[0]["x"]["y"], 2);
        assert!(r.items[0].pagination.unwrap().has_more());
        assert_eq!(
            r.items[1].reason.as_ref().unwrap().code.as_deref(),
            Some("rjct.x")
        );
        assert!(!r.items[1].is_success());
    }
}
