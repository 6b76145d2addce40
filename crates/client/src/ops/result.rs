//! Typed results: what a registry answered, item by item, with the raw records kept.
//!
//! Replies go through `dci-protocol`'s lenient envelope parser ([`dci_protocol::inbound`]):
//! what it had to tolerate is kept in `tolerated`. A reply that does not parse as typed is read
//! field by field instead (and says so in `tolerated`), so an odd registry reply still yields
//! whatever it did say, and the raw item is always kept.
//!
//! A header-only reply is valid DCI. With header status `rcvd` or `pdng` it is an
//! acknowledgement, not an answer: it gets one whole-message entry whose `status` is `rcvd` /
//! `pdng` (and [`SearchResult::is_pending`] is true), so it never reads as an empty success.

use dci_protocol::envelope::Payload;
use dci_protocol::inbound::{self, MessageStatus, RegRecords, SearchReply};
use dci_protocol::lenient::Tolerated;
use dci_protocol::message::{SearchResponse, SearchResponseItem, TxnStatus, TxnStatusResponse};
use serde::Serialize;
use serde_json::Value;

use crate::error::RegistryError;

use super::error::OpsError;
use super::raw_record::RawRecord;
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
    /// One entry per answered search item (for a header-only `rcvd` / `pdng` reply, one
    /// whole-message entry with an empty reference id).
    pub items: Vec<SearchItemResult>,
    /// How the reply's signature was checked.
    pub signature: SignatureState,
    /// `header.status` of the reply (`succ`, `rjct`, `rcvd`, `pdng`), if it sent one.
    pub status: Option<String>,
    /// The header's `status_reason_code` / `status_reason_message`, if any.
    pub reason: Option<RegistryError>,
    /// What had to be tolerated to read the reply, as `path: what` (empty when well-formed).
    pub tolerated: Vec<String>,
}

impl SearchResult {
    /// Every record of every successful item, raw.
    pub fn records(&self) -> impl Iterator<Item = &RawRecord> {
        self.items.iter().flat_map(|i| i.records.iter())
    }

    /// Whether the registry only acknowledged the request (`rcvd` / `pdng`) and answered none
    /// of it yet.
    pub fn is_pending(&self) -> bool {
        is_in_progress(self.status.as_deref()) && self.items.iter().all(|i| i.is_pending())
    }
}

/// One answered search item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchItemResult {
    /// Our reference id (empty for the whole-message entry of a header-only reply).
    pub reference_id: String,
    /// `succ`, `rjct`, `pdng`, `rcvd` (as sent). `rcvd` / `pdng` mean "received, pending": no
    /// answer yet, neither success nor failure.
    pub status: String,
    /// Why, when rejected (or when the registry said).
    pub reason: Option<RegistryError>,
    /// `data.reg_record_type`.
    pub record_type: Option<String>,
    /// `data.reg_event_type`.
    pub event_type: Option<String>,
    /// The records, exactly as the registry sent them (`data.reg_records` as a list); a sync
    /// search reply's as their text (see [`RawRecord`]).
    pub records: Vec<RawRecord>,
    /// The page the records are, if the registry paginated.
    pub pagination: Option<PageInfo>,
    /// The item as received, except its `data.reg_records`: those are [`Self::records`], kept
    /// once (the reply's header for a whole-message entry).
    pub raw: Value,
}

impl SearchItemResult {
    /// Whether the item succeeded.
    pub fn is_success(&self) -> bool {
        self.status.eq_ignore_ascii_case("succ")
    }

    /// Whether the registry has it but has not answered yet (`rcvd` / `pdng`).
    pub fn is_pending(&self) -> bool {
        is_in_progress(Some(&self.status))
    }
}

fn is_in_progress(status: Option<&str>) -> bool {
    status.is_some_and(|s| s.eq_ignore_ascii_case("rcvd") || s.eq_ignore_ascii_case("pdng"))
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

/// `reg_records` as a list. Where a spec types reg_records as an object (DR search, CRVS/FR
/// txn status), `{}` means none.
fn record_list(v: Option<Value>) -> Vec<RawRecord> {
    match v {
        Some(Value::Array(a)) => a.into_iter().map(RawRecord::from).collect(),
        Some(Value::Object(o)) if o.is_empty() => Vec::new(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![RawRecord::from(other)],
    }
}

/// [`record_list`] of records set aside as the reply was read: a list's records as their text.
fn aside_list(r: RegRecords) -> Vec<RawRecord> {
    match r {
        RegRecords::List(list) => list.into_iter().map(RawRecord::from_text).collect(),
        RegRecords::Other(v) => record_list(Some(v)),
    }
}

/// Takes `data.reg_records` out of an item as received (the rest stays in place and in order).
fn take_records(item: &mut Value) -> Option<Value> {
    item.get_mut("data")?
        .as_object_mut()?
        .shift_remove("reg_records")
}

/// Reads one search response item field by field (for replies that are not typed DCI).
pub(crate) fn parse_item(item: &Value) -> SearchItemResult {
    let mut raw = item.clone();
    let records = record_list(take_records(&mut raw));
    let item = &raw;
    let status = str_at(item, "status")
        .unwrap_or("succ")
        .to_ascii_lowercase();
    let reason = RegistryError::new(
        str_at(item, "status_reason_code"),
        str_at(item, "status_reason_message"),
    );
    let data = item.get("data");
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
        raw,
    }
}

/// One typed item; `raw` is the item as received (before normalisation), whose records it
/// takes. Record and event types are shown as sent (the typed codes would canonicalise them).
fn typed_item(item: &SearchResponseItem, raw: &Value) -> SearchItemResult {
    typed_item_owned(item.clone(), raw.clone(), None)
}

/// [`typed_item`] taking both by value: the records are those `aside` (set aside as the reply
/// was read; their place in `raw` is `null`), or else move out of `raw` (the typed ones are the
/// same JSON).
fn typed_item_owned(
    item: SearchResponseItem,
    mut raw: Value,
    aside: Option<RegRecords>,
) -> SearchItemResult {
    let in_raw = take_records(&mut raw);
    let records = match (aside, in_raw) {
        (Some(aside), _) => aside_list(aside),
        (None, Some(records)) => record_list(Some(records)),
        (None, None) => record_list(item.data.map(|d| d.reg_records.0)),
    };
    let data = raw.get("data");
    let record_type = data
        .and_then(|d| str_at(d, "reg_record_type"))
        .map(str::to_owned);
    let event_type = data
        .and_then(|d| str_at(d, "reg_event_type"))
        .map(str::to_owned);
    SearchItemResult {
        status: item.status.as_str().to_ascii_lowercase(),
        reason: RegistryError::new(
            item.status_reason_code.as_ref().map(|c| c.as_str()),
            item.status_reason_message.as_deref(),
        ),
        reference_id: item.reference_id,
        record_type,
        event_type,
        records,
        pagination: item.pagination.map(|p| PageInfo {
            page_number: p.page_number.max(1),
            page_size: p.page_size,
            total_count: p.total_count,
        }),
        raw,
    }
}

/// The items of a typed search response; `raw_message` is the message as received.
pub(crate) fn typed_items(m: &SearchResponse, raw_message: &Value) -> Vec<SearchItemResult> {
    let raws = as_items(raw_message.get("search_response"));
    m.search_response
        .iter()
        .enumerate()
        .map(|(i, it)| typed_item(it, raws.get(i).copied().unwrap_or(&Value::Null)))
        .collect()
}

/// Reads `message.search_response` (or `txn_status.search_response`) items from a message,
/// field by field.
pub(crate) fn parse_search_items(message: &Value) -> Vec<SearchItemResult> {
    as_items(message.get("search_response"))
        .into_iter()
        .map(parse_item)
        .collect()
}

pub(crate) fn tolerated_strings(t: &[Tolerated]) -> Vec<String> {
    t.iter().map(ToString::to_string).collect()
}

/// The whole-message entry of a header-only `rcvd` / `pdng` reply.
fn pending_entry(header: &Value, status: &str, reason: Option<&RegistryError>) -> SearchItemResult {
    let st = if status == "pdng" {
        MessageStatus::Pending
    } else {
        MessageStatus::Received
    };
    let what = st.describe().to_owned();
    let message = match reason.and_then(|r| r.message.as_deref()) {
        Some(m) => format!("{what} ({m})"),
        None => what,
    };
    SearchItemResult {
        reference_id: String::new(),
        status: status.to_owned(),
        reason: RegistryError::new(reason.and_then(|r| r.code.as_deref()), Some(&message)),
        record_type: None,
        event_type: None,
        records: Vec::new(),
        pagination: None,
        raw: header.clone(),
    }
}

/// Header fields of a reply, read leniently even when the rest does not parse.
struct HeaderInfo {
    message_id: Option<String>,
    status: Option<String>,
    reason: Option<RegistryError>,
}

fn header_info(envelope: &Value) -> HeaderInfo {
    let h = envelope.get("header").unwrap_or(&Value::Null);
    HeaderInfo {
        message_id: str_at(h, "message_id").map(str::to_owned),
        status: str_at(h, "status").map(|s| s.trim().to_ascii_lowercase()),
        reason: RegistryError::new(
            str_at(h, "status_reason_code"),
            str_at(h, "status_reason_message"),
        ),
    }
}

/// Adds the whole-message entry when a reply answered nothing and says `rcvd` / `pdng`.
fn mark_pending(items: &mut Vec<SearchItemResult>, envelope: &Value, h: &HeaderInfo) {
    if items.is_empty()
        && let Some(s) = h.status.as_deref().filter(|s| is_in_progress(Some(s)))
    {
        let header = envelope.get("header").cloned().unwrap_or(Value::Null);
        items.push(pending_entry(&header, s, h.reason.as_ref()));
    }
}

/// Builds a [`SearchResult`] from a sync search reply, its records set aside as it was read
/// (see [`inbound::search_reply`]; a whole envelope converts with `SearchReply::from`).
pub(crate) fn search_result(reply: SearchReply, signature: SignatureState) -> SearchResult {
    let SearchReply {
        mut envelope,
        records: aside,
    } = reply;
    let h = header_info(&envelope);
    // The typed parse reads `envelope` in place (a copy only when it needs repairs), its
    // records set aside: it leaves registry data alone but would copy it twice on the way
    // (serde buffers each struct with flattened fields). The items as received then move out
    // of `envelope`, and the records from aside into the results.
    let parsed = inbound::parse_reply_ref::<SearchResponse>(&envelope);
    let (transaction_id, correlation_id, mut items, tolerated) = match parsed {
        Ok(parsed) => {
            let tolerated = tolerated_strings(&parsed.tolerated);
            match parsed.value.message {
                Some(Payload::Plain(m)) => {
                    let mut raws = take_items(&mut envelope, "search_response").into_iter();
                    let mut aside = aside.into_iter();
                    let items = m
                        .search_response
                        .into_iter()
                        .map(|it| {
                            let raw = raws.next().unwrap_or(Value::Null);
                            typed_item_owned(it, raw, aside.next().flatten())
                        })
                        .collect();
                    (
                        m.transaction_id,
                        Some(m.correlation_id).filter(|c| !c.is_empty()),
                        items,
                        tolerated,
                    )
                }
                _ => (String::new(), None, Vec::new(), tolerated),
            }
        }
        Err(e) => {
            // Read field by field from the reply whole (rare: a reply that is not DCI).
            envelope = SearchReply {
                envelope,
                records: aside,
            }
            .whole();
            let raw_message = envelope.get("message").unwrap_or(&Value::Null);
            (
                str_at(raw_message, "transaction_id")
                    .unwrap_or_default()
                    .to_owned(),
                str_at(raw_message, "correlation_id").map(str::to_owned),
                parse_search_items(raw_message),
                vec![format!(
                    "{e}; not a typed SearchResponse, read field by field"
                )],
            )
        }
    };
    mark_pending(&mut items, &envelope, &h);
    SearchResult {
        transaction_id,
        correlation_id,
        message_id: h.message_id,
        items,
        signature,
        status: h.status,
        reason: h.reason,
        tolerated,
    }
}

/// `message.{key}` taken out of `envelope` as a list of items (an object is one item).
fn take_items(envelope: &mut Value, key: &str) -> Vec<Value> {
    match envelope
        .get_mut("message")
        .and_then(|m| m.get_mut(key))
        .map(Value::take)
    {
        Some(Value::Array(a)) => a,
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    }
}

/// When a reply is header-only with status `rcvd` / `pdng`: the error that says "received,
/// pending" (for typed clients that need an answer, instead of "no items").
pub(crate) fn pending_reply(envelope: &Value) -> Option<OpsError> {
    let h = header_info(envelope);
    let answered = envelope
        .get("message")
        .is_some_and(|m| m.as_object().is_some_and(|o| !o.is_empty()));
    match h.status {
        Some(s) if !answered && is_in_progress(Some(&s)) => Some(OpsError::Pending {
            status: s,
            reason: h.reason,
        }),
        _ => None,
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
    /// Search results the registry returned for the transaction, if any (for a header-only
    /// `rcvd` / `pdng` reply, one whole-message entry, as in [`SearchResult::items`]).
    pub items: Vec<SearchItemResult>,
    /// `txn_status` as sent.
    pub txn_status: Value,
    /// How the reply's signature was checked.
    pub signature: SignatureState,
    /// `header.status` of the reply, if it sent one.
    pub status: Option<String>,
    /// The header's reason, if any.
    pub reason: Option<RegistryError>,
    /// What had to be tolerated to read the reply, as `path: what`.
    pub tolerated: Vec<String>,
}

/// The search items of a typed txn-status answer (`txn_status.search_response`).
pub(crate) fn txn_items(
    r: &TxnStatusResponse,
    status: Option<&TxnStatus>,
    raw_message: &Value,
) -> Vec<SearchItemResult> {
    let raw_status = raw_message
        .pointer("/txnstatus_response/txn_status")
        .unwrap_or(&Value::Null);
    match status {
        Some(TxnStatus::Search(s)) => typed_items(s, raw_status),
        // Not decodable as typed: whatever items it has, field by field.
        None => parse_search_items(&r.txnstatus_response.txn_status),
        Some(_) => Vec::new(),
    }
}

pub(crate) fn txn_status_result(envelope: &Value, signature: SignatureState) -> TxnStatusResult {
    let h = header_info(envelope);
    let raw_message = envelope.get("message").unwrap_or(&Value::Null);
    let raw_body = raw_message
        .get("txnstatus_response")
        .unwrap_or(&Value::Null);
    let raw_status = raw_body.get("txn_status").cloned().unwrap_or(Value::Null);
    let mut result = TxnStatusResult {
        transaction_id: str_at(raw_message, "transaction_id")
            .unwrap_or_default()
            .to_owned(),
        correlation_id: str_at(raw_message, "correlation_id").map(str::to_owned),
        txn_type: str_at(raw_body, "txn_type").map(str::to_owned),
        items: Vec::new(),
        txn_status: raw_status.clone(),
        signature,
        status: h.status.clone(),
        reason: h.reason.clone(),
        tolerated: Vec::new(),
    };
    match inbound::parse_reply_ref::<TxnStatusResponse>(envelope) {
        Ok(parsed) => {
            let mut tolerated = parsed.tolerated;
            if let Some(m) = parsed.value.plain_message() {
                let status = inbound::txn_status(m, &mut tolerated);
                result.transaction_id = m.transaction_id.clone();
                result.items = txn_items(m, status.as_ref(), raw_message);
            }
            result.tolerated = tolerated_strings(&tolerated);
        }
        Err(e) => {
            result.items = parse_search_items(&raw_status);
            result.tolerated = vec![format!(
                "{e}; not a typed TxnStatusResponse, read field by field"
            )];
        }
    }
    mark_pending(&mut result.items, envelope, &h);
    result
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

    /// `env` read both ways a reply is read: from its bytes with the records kept as text, and
    /// whole (a checked signature, a dialect); both give the same result.
    fn read(env: &Value) -> SearchResult {
        let as_text = search_result(
            inbound::search_reply(env.to_string().as_bytes()).unwrap(),
            SignatureState::NotChecked,
        );
        let whole = search_result(SearchReply::from(env.clone()), SignatureState::NotChecked);
        assert_eq!(as_text, whole, "both ways of reading {env}");
        assert_eq!(
            serde_json::to_string(&as_text).unwrap(),
            serde_json::to_string(&whole).unwrap(),
            "the same JSON, fields in the same order"
        );
        as_text
    }

    #[test]
    fn items_keep_raw_records_and_reasons() {
        let env = json!({"header": {"message_id": "m"}, "message": {"transaction_id": "t",
            "correlation_id": "c", "search_response": [
            {"reference_id": "r1", "status": "succ", "data": {"reg_record_type": "Person",
              "reg_records": [{"uin": "1", "x": {"y": 2}}]},
             "pagination": {"page_size": "2", "page_number": 1, "total_count": 5}},
            {"reference_id": "r2", "status": "rjct", "status_reason_code": "rjct.x", "status_reason_message": "bad"}
        ]}});
        let r = read(&env);
        assert_eq!(r.items.len(), 2);
        assert_eq!(r.items[0].records[0]["x"]["y"], 2);
        assert!(
            r.items[0].raw["data"].get("reg_records").is_none(),
            "records are kept once, read field by field too"
        );
        assert_eq!(r.items[0].raw["data"]["reg_record_type"], "Person");
        assert!(r.items[0].pagination.unwrap().has_more());
        assert_eq!(
            r.items[1].reason.as_ref().unwrap().code.as_deref(),
            Some("rjct.x")
        );
        assert!(!r.items[1].is_success());
    }

    #[test]
    fn typed_replies_give_each_item_its_records_once() {
        let env = json!({"header": {"version": "1.0.0", "message_id": "m",
            "message_ts": "2025-01-01T00:00:00Z", "action": "on-search", "status": "succ",
            "total_count": 2, "completed_count": 2, "sender_id": "reg", "receiver_id": "us"},
            "message": {"transaction_id": "t", "correlation_id": "c", "search_response": [
                {"reference_id": "r1", "timestamp": "2025-01-01T00:00:00Z", "status": "succ",
                 "data": {"version": "1.0.0", "reg_record_type": "Person",
                          "reg_records": [{"uin": "1", "x": {"y": 2}}, {"uin": "2"}]}},
                {"reference_id": "r2", "timestamp": "2025-01-01T00:00:00Z", "status": "succ",
                 "data": {"version": "1.0.0", "reg_records": {"uin": "3"}}}]}});
        let r = read(&env);
        assert!(r.tolerated.is_empty(), "read as typed: {:?}", r.tolerated);
        assert_eq!((r.transaction_id.as_str(), r.items.len()), ("t", 2));
        let raws = env["message"]["search_response"].as_array().unwrap();
        assert_eq!(
            r.items[0].records,
            raws[0]["data"]["reg_records"].as_array().unwrap().clone()
        );
        assert_eq!(
            r.items[1].records,
            vec![json!({"uin": "3"})],
            "an object is one record"
        );
        for (item, raw) in r.items.iter().zip(raws) {
            let mut rest = raw.clone();
            rest["data"]
                .as_object_mut()
                .unwrap()
                .shift_remove("reg_records");
            assert_eq!(
                item.raw, rest,
                "raw is the item as received but for its records"
            );
            assert_eq!(
                item.raw["data"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect::<Vec<_>>(),
                raw["data"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "reg_records")
                    .collect::<Vec<_>>(),
                "in the order received"
            );
        }
        assert_eq!(r.records().count(), 3);
    }

    #[test]
    fn typed_replies_keep_raw_items_and_report_tolerated() {
        let env = json!({"header": {"message_id": "m", "message_ts": "2025-01-01T00:00:00Z",
            "action": "on-search", "status": "succ", "total_count": "1"},
            "message": {"transaction_id": "t", "correlation_id": "c", "search_response":
                {"reference_id": "r1", "timestamp": "", "status": "SUCC",
                 "data": {"reg_record_type": "Person", "reg_records": {}},
                 "pagination": {"page_size": 10, "page_number": 1, "total_count": "0"}}}});
        let r = read(&env);
        assert_eq!(r.status.as_deref(), Some("succ"));
        assert!(!r.is_pending());
        assert_eq!(r.items.len(), 1);
        let item = &r.items[0];
        assert_eq!(item.status, "succ");
        assert!(item.records.is_empty(), "`{{}}` means no records");
        assert_eq!(item.record_type.as_deref(), Some("Person"));
        assert_eq!(
            item.raw["pagination"]["total_count"], "0",
            "raw is as received"
        );
        assert!(
            r.tolerated
                .iter()
                .any(|t| t.starts_with("header.total_count"))
        );
        assert!(
            r.tolerated
                .iter()
                .any(|t| t.starts_with("message.search_response:"))
        );
    }

    #[test]
    fn header_only_replies() {
        let h = |status: &str| {
            json!({"header": {"message_id": "m", "message_ts": "2025-01-01T00:00:00Z",
                "action": "on-search", "status": status, "status_reason_message": "queued"}})
        };
        let r = read(&h("pdng"));
        assert!(r.is_pending());
        assert_eq!(r.items[0].status, "pdng");
        assert_eq!(
            r.items[0].reason.as_ref().unwrap().message.as_deref(),
            Some("pending: the registry is still working on it (queued)")
        );
        let e = pending_reply(&h("rcvd")).unwrap();
        assert!(e.is_pending() && e.to_string().contains("received"), "{e}");
        assert!(pending_reply(&h("rjct")).is_none());
        let ok = read(&h("succ"));
        assert!(ok.items.is_empty() && !ok.is_pending());
    }
}
