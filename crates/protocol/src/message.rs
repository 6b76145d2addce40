//! Message payloads (`envelope.message`) for all five registries.
//!
//! Structs keep unknown fields in `extra` (the specs never forbid them) and registry data
//! (`reg_records`, `consent`, `authorize`, `query`) as JSON. Tagged unions are stored as
//! tag + raw JSON and decoded by the tag ([`SearchCriteria::query`], …), never by shape.
//! Build outbound messages with [`crate::build`]; parse inbound ones with
//! [`crate::lenient::from_value`] or [`crate::envelope::Envelope::parse`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::codes::{
    AttributeType, Condition, EventType, IdentifierType, Operator, QueryType, RecordType, RegType,
    RequestStatus, ResponseEntity, SortOrder, StatusReasonCode, SubscriptionStatus, TxnType, YesNo,
};
use crate::error::ParseError;

type Extra = Map<String, Value>;

// ---------------------------------------------------------------- queries

/// A search query or subscribe filter, decoded by its `query_type` / `filter_type`.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// `idtype-value`: `{type, value}`; value is a string, number, boolean or object.
    IdTypeValue {
        /// Identifier type (`UIN`, `BRN`, `NationalID`, …).
        id_type: IdentifierType,
        /// Identifier value.
        value: Value,
    },
    /// `expression`: `{type, value: {…}}` with implementation-defined syntax.
    Expression {
        /// Expression language, e.g. `ns:org:QueryType:expression`.
        expression_type: String,
        /// The expression object.
        value: Map<String, Value>,
    },
    /// `predicate`: an array of clauses.
    Predicate(Vec<PredicateClause>),
    /// `graphql`: `{type, value: {expression: "<graphql>"}}`.
    Graphql {
        /// Usually `ns:org:QueryType:graphql`.
        expression_type: String,
        /// The GraphQL text.
        expression: String,
    },
    /// A `query_type` this crate does not know; the query kept verbatim.
    Other {
        /// The tag.
        query_type: String,
        /// The query.
        query: Value,
    },
}

impl Query {
    /// `idtype-value` query, e.g. `Query::id("UIN", "1234")`.
    pub fn id(id_type: impl Into<String>, value: impl Into<Value>) -> Self {
        Query::IdTypeValue {
            id_type: IdentifierType::parse_lenient(&id_type.into()),
            value: value.into(),
        }
    }

    /// The tag.
    pub fn query_type(&self) -> QueryType {
        match self {
            Query::IdTypeValue { .. } => QueryType::IdTypeValue,
            Query::Expression { .. } => QueryType::Expression,
            Query::Predicate(_) => QueryType::Predicate,
            Query::Graphql { .. } => QueryType::Graphql,
            Query::Other { query_type, .. } => QueryType::parse_lenient(query_type),
        }
    }

    /// The wire JSON of the query body.
    pub fn to_json(&self) -> Value {
        match self {
            Query::IdTypeValue { id_type, value } => {
                serde_json::json!({"type": id_type.as_str(), "value": value})
            }
            Query::Expression {
                expression_type,
                value,
            } => serde_json::json!({"type": expression_type, "value": value}),
            Query::Predicate(clauses) => serde_json::to_value(clauses).unwrap_or(Value::Null),
            Query::Graphql {
                expression_type,
                expression,
            } => serde_json::json!({"type": expression_type, "value": {"expression": expression}}),
            Query::Other { query, .. } => query.clone(),
        }
    }

    /// Decodes a query body by its tag.
    pub fn from_parts(query_type: &QueryType, query: &Value) -> Result<Self, ParseError> {
        let field = |name: &str| query.get(name);
        let type_str = || {
            field("type")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ParseError::new("query.type", "missing or not a string"))
        };
        match query_type {
            QueryType::IdTypeValue => Ok(Query::IdTypeValue {
                id_type: IdentifierType::parse_lenient(&type_str()?),
                value: field("value")
                    .cloned()
                    .ok_or_else(|| ParseError::new("query.value", "missing"))?,
            }),
            QueryType::Expression => Ok(Query::Expression {
                expression_type: type_str()?,
                value: match field("value") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => return Err(ParseError::new("query.value", "must be an object")),
                },
            }),
            QueryType::Predicate => {
                let clauses = match query {
                    Value::Array(_) => query.clone(),
                    Value::Object(_) => Value::Array(vec![query.clone()]),
                    _ => return Err(ParseError::new("query", "predicate must be an array")),
                };
                serde_path_to_error::deserialize(clauses)
                    .map(Query::Predicate)
                    .map_err(|e| {
                        ParseError::new(format!("query{}", e.path()), e.into_inner().to_string())
                    })
            }
            QueryType::Graphql => Ok(Query::Graphql {
                expression_type: type_str()?,
                expression: query
                    .pointer("/value/expression")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| ParseError::new("query.value.expression", "missing"))?,
            }),
            QueryType::Other(t) => Ok(Query::Other {
                query_type: t.clone(),
                query: query.clone(),
            }),
        }
    }
}

/// One predicate clause: `expression1 [condition expression2]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredicateClause {
    /// Order of evaluation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_num: Option<Value>,
    /// First expression.
    pub expression1: PredicateExpression,
    /// Joins the two expressions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// Second expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression2: Option<PredicateExpression>,
}

/// `attribute_name operator attribute_value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredicateExpression {
    /// Attribute, e.g. `age`.
    pub attribute_name: String,
    /// Comparison.
    pub operator: Operator,
    /// String, number, boolean or object.
    pub attribute_value: Value,
}

// ---------------------------------------------------------------- search

/// `SearchRequest`: message of `/registry/search` and `/registry/sync/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// Business transaction id (≤ 99 chars), echoed in the response.
    pub transaction_id: String,
    /// The batch.
    pub search_request: Vec<SearchRequestItem>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One item of a search batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequestItem {
    /// Per-item id, echoed per item in the response.
    pub reference_id: String,
    /// RFC 3339 with offset.
    pub timestamp: String,
    /// What to search.
    pub search_criteria: SearchCriteria,
    /// ISO 639-3 (three lowercase letters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `search_criteria`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchCriteria {
    /// Default `1.0.0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Registry type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reg_type: Option<RegType>,
    /// Record type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reg_record_type: Option<RecordType>,
    /// Not in the schema, but used by samples and some registries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reg_event_type: Option<EventType>,
    /// The tag of `query`.
    pub query_type: QueryType,
    /// Social registry only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_entity: Option<ResponseEntity>,
    /// Raw query; decode with [`SearchCriteria::query`].
    pub query: Value,
    /// Sort order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sort: Vec<Sort>,
    /// Page request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    /// Consent object (JSON-LD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<Value>,
    /// Authorize object (JSON-LD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize: Option<Value>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SearchCriteria {
    /// The query, decoded by `query_type`.
    pub fn query(&self) -> Result<Query, ParseError> {
        Query::from_parts(&self.query_type, &self.query)
    }
}

/// A sort key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sort {
    /// Attribute.
    pub attribute_name: String,
    /// Direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<SortOrder>,
}

/// Page request. Page numbers start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pagination {
    /// Records per page.
    pub page_size: u32,
    /// 1-based page number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_number: Option<u32>,
}

/// Page information in a response.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PaginationResponse {
    /// Records per page.
    #[serde(default)]
    pub page_size: u64,
    /// 1-based page number.
    #[serde(default)]
    pub page_number: u64,
    /// Total records across pages.
    #[serde(default)]
    pub total_count: u64,
}

/// `SearchResponse`: message of `on-search` and of sync search replies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// Echo of the request's transaction id.
    pub transaction_id: String,
    /// Registry's correlation id (as in the ACK).
    #[serde(default)]
    pub correlation_id: String,
    /// One entry per request item (or page).
    #[serde(default)]
    pub search_response: Vec<SearchResponseItem>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One item of a search response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponseItem {
    /// Echo of the request item's reference id.
    pub reference_id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// Item status.
    pub status: RequestStatus,
    /// Reason when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason_code: Option<StatusReasonCode>,
    /// Human-readable reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason_message: Option<String>,
    /// The records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<SearchData>,
    /// Page information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<PaginationResponse>,
    /// Locale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `data` of a search response item or notify event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchData {
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Registry type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reg_type: Option<RegType>,
    /// Event type (notify).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reg_event_type: Option<EventType>,
    /// Record type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reg_record_type: Option<RecordType>,
    /// Records: an array in most specs, an object in DR search and in notify.
    #[serde(default)]
    pub reg_records: RegRecords,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `reg_records`, kept as JSON: an array, a single object, or absent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RegRecords(pub Value);

impl RegRecords {
    /// The records as a list: array items, or the object as one record; nothing for null.
    pub fn records(&self) -> Vec<&Value> {
        match &self.0 {
            Value::Array(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            other => vec![other],
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records().len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------- subscribe

/// `SubscribeRequest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeRequest {
    /// Business transaction id.
    pub transaction_id: String,
    /// The batch.
    pub subscribe_request: Vec<SubscribeRequestItem>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One subscription request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeRequestItem {
    /// Per-item id.
    pub reference_id: String,
    /// RFC 3339 with offset.
    pub timestamp: String,
    /// What to subscribe to.
    pub subscribe_criteria: SubscribeCriteria,
    /// ISO 639-3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `subscribe_criteria`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeCriteria {
    /// Default `1.0.0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Registry type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reg_type: Option<RegType>,
    /// Event to be notified of.
    pub reg_event_type: EventType,
    /// Notification schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency: Option<Frequency>,
    /// Tag of `filter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_type: Option<QueryType>,
    /// Raw filter; decode with [`SubscribeCriteria::filter`].
    pub filter: Value,
    /// Record type of notifications.
    pub notify_record_type: RecordType,
    /// Authorize object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize: Option<Value>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SubscribeCriteria {
    /// The filter, decoded by `filter_type` (absent means `idtype-value`-like `{type, value}`,
    /// kept as [`Query::Other`] with an empty tag).
    pub fn filter(&self) -> Result<Query, ParseError> {
        match &self.filter_type {
            Some(t) => Query::from_parts(t, &self.filter),
            None => Ok(Query::Other {
                query_type: String::new(),
                query: self.filter.clone(),
            }),
        }
    }
}

/// Notification schedule (Quartz-style cron in `frequency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frequency {
    /// RFC 3339.
    pub start_time: String,
    /// RFC 3339.
    #[serde(default)]
    pub end_time: String,
    /// Cron expression.
    pub frequency: String,
}

/// `SubscribeResponse` (`on-subscribe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeResponse {
    /// Echo.
    pub transaction_id: String,
    /// Registry's correlation id.
    #[serde(default)]
    pub correlation_id: String,
    /// Per request item.
    #[serde(default)]
    pub subscribe_response: Vec<SubscribeResponseItem>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One subscribe response item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeResponseItem {
    /// Echo.
    pub reference_id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// Status.
    pub status: RequestStatus,
    /// Reason when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason_code: Option<StatusReasonCode>,
    /// Human-readable reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason_message: Option<String>,
    /// Created subscriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubscriptionInfo>,
    /// Page information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<PaginationResponse>,
    /// Locale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `SubscriptionInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    /// Subscription code (≤ 99 chars), used to unsubscribe.
    pub code: String,
    /// `subscribe` or `unsubscribe`.
    pub status: SubscriptionStatus,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// Unknown and optional fields (`reg_type`, `filter`, …), kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `UnSubscribeRequest`: not a batch, no reference id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeRequest {
    /// Business transaction id.
    pub transaction_id: String,
    /// RFC 3339 with offset.
    pub timestamp: String,
    /// Codes to cancel.
    pub subscription_codes: Vec<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `UnSubscribeResponse` (`on-unsubscribe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeResponse {
    /// Echo.
    pub transaction_id: String,
    /// Registry's correlation id.
    #[serde(default)]
    pub correlation_id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// Overall status.
    pub status: RequestStatus,
    /// Reason when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason_code: Option<StatusReasonCode>,
    /// Human-readable reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason_message: Option<String>,
    /// Per code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscription_status: Vec<SubscriptionCodeStatus>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Status of one subscription code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionCodeStatus {
    /// The code.
    pub code: String,
    /// Its status.
    pub status: SubscriptionStatus,
}

// ---------------------------------------------------------------- notify

/// `NotifyEventRequest` (registry → SP `/registry/notify`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyEventRequest {
    /// Transaction id.
    pub transaction_id: String,
    /// Events.
    #[serde(default)]
    pub notify_event: Vec<NotifyEvent>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyEvent {
    /// Event id.
    pub reference_id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// Event data.
    pub data: SearchData,
    /// Locale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

// ---------------------------------------------------------------- txn status

/// `TxnStatusRequest`: `txnstatus_request` is a single object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnStatusRequest {
    /// Id of this status request.
    pub transaction_id: String,
    /// What to look up.
    pub txnstatus_request: TxnStatusRequestItem,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// What a txn-status request asks about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnStatusRequestItem {
    /// Item id.
    pub reference_id: String,
    /// Kind of the transaction asked about.
    pub txn_type: TxnType,
    /// What `attribute_value` holds.
    pub attribute_type: AttributeType,
    /// A string id or a list of ids, by `attribute_type`.
    pub attribute_value: Value,
    /// ISO 639-3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `TxnStatusResponse` (`txn/on-status` or the sync reply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnStatusResponse {
    /// Echo.
    pub transaction_id: String,
    /// Registry's correlation id.
    #[serde(default)]
    pub correlation_id: String,
    /// The answer.
    pub txnstatus_response: TxnStatusResponseBody,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `txnstatus_response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnStatusResponseBody {
    /// Kind of the transaction.
    pub txn_type: TxnType,
    /// Raw status; decode with [`TxnStatusResponseBody::status`].
    pub txn_status: Value,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A decoded `txn_status`.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnStatus {
    /// A search transaction's responses.
    Search(SearchResponse),
    /// A subscribe transaction's responses.
    Subscribe(SubscribeResponse),
    /// An unsubscribe transaction's response.
    Unsubscribe(UnsubscribeResponse),
    /// A receipt (`receipt_information`), kept as JSON.
    Receipt(Value),
    /// Anything else, kept as JSON.
    Other(Value),
}

impl TxnStatusResponseBody {
    /// Decodes `txn_status` by `txn_type` first, then by which key is present.
    pub fn status(&self) -> Result<TxnStatus, ParseError> {
        let v = self.txn_status.clone();
        let has = |k: &str| v.get(k).is_some();
        Ok(match &self.txn_type {
            TxnType::Search if has("search_response") => TxnStatus::Search(decode(v)?),
            TxnType::Subscribe if has("subscribe_response") => TxnStatus::Subscribe(decode(v)?),
            TxnType::Unsubscribe if has("subscription_status") || has("status") => {
                TxnStatus::Unsubscribe(decode(v)?)
            }
            _ if has("receipt_information") => TxnStatus::Receipt(v),
            _ if has("search_response") => TxnStatus::Search(decode(v)?),
            _ if has("subscribe_response") => TxnStatus::Subscribe(decode(v)?),
            _ => TxnStatus::Other(v),
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ParseError> {
    crate::lenient::from_value(v).map(|l| l.value)
}

// ---------------------------------------------------------------- DR

/// DR `DisabledRequest` (`/registry/sync/disabled`) and `GetDisabilitySupportRequest`
/// (`/registry/sync/get-disability-support` and `…/get-disability-details`): same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisabledRequest {
    /// Transaction id.
    pub transaction_id: String,
    /// The query.
    pub disabled_criteria: CriteriaObject,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `disabled_criteria` / `enrolled_criteria`: a tag and an object query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriteriaObject {
    /// Tag of `query`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_type: Option<QueryType>,
    /// IBR enrolled only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_entity: Option<ResponseEntity>,
    /// The query object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<Map<String, Value>>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// DR `DisabledResponse` and IBR `EnrolledResponse`/`EnrollmentUpdatesResponse`: per-item
/// yes/no answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusListResponse {
    /// Echo.
    pub transaction_id: String,
    /// Registry's correlation id.
    #[serde(default)]
    pub correlation_id: String,
    /// DR `disabled_response`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_response: Vec<StatusItem>,
    /// IBR `enrolled_response`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrolled_response: Vec<StatusItem>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One yes/no answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusItem {
    /// Item id.
    #[serde(default)]
    pub reference_id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// Status.
    pub status: RequestStatus,
    /// Reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason_message: Option<String>,
    /// DR answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_status: Option<YesNo>,
    /// IBR answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrolled_status: Option<YesNo>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// DR `GetDisabilitySupportRequest` (same shape as [`DisabledRequest`]).
pub type GetDisabilitySupportRequest = DisabledRequest;
/// DR `DisabledResponse`.
pub type DisabledResponse = StatusListResponse;
/// DR `GetDisabilitySupportResponse`: search-response shaped (`reg_records` is an array of
/// arrays of `DisabilitySupport`).
pub type GetDisabilitySupportResponse = SearchResponse;
/// DR `GetDisabilityInfoResponse`: search-response shaped.
pub type GetDisabilityInfoResponse = SearchResponse;
/// IBR `EnrolledResponse`.
pub type EnrolledResponse = StatusListResponse;
/// IBR `EnrollmentUpdatesResponse`.
pub type EnrollmentUpdatesResponse = StatusListResponse;

// ---------------------------------------------------------------- IBR

/// IBR `EnrolledRequest` (`/registry/sync/enrolled`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolledRequest {
    /// Transaction id.
    pub transaction_id: String,
    /// The query.
    pub enrolled_criteria: CriteriaObject,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// IBR `EnrollmentUpdatesRequest` (`/registry/sync/enrollment/updates`, SP → IBR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentUpdatesRequest {
    /// Transaction id.
    pub transaction_id: String,
    /// The beneficiaries.
    pub enrolled_updates: EnrolledUpdates,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `enrolled_updates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolledUpdates {
    /// Beneficiary records (IBR `Beneficiary` shape), kept as JSON.
    #[serde(default)]
    pub beneficiaries: Vec<Value>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

// ---------------------------------------------------------------- encryption

/// `EncryptedMessage`: replaces `message` when `header.is_msg_encrypted` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncryptedMessage {
    /// Clear header naming the algorithms and key.
    pub header: EncryptedHeader,
    /// b64url ciphertext.
    pub ciphertext: String,
    /// b64url encrypted content key.
    pub encrypted_key: String,
    /// b64url authentication tag.
    pub tag: String,
    /// b64url IV.
    pub iv: String,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Header of an [`EncryptedMessage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncryptedHeader {
    /// JWE key-management algorithm, e.g. `RSA-OAEP-256`.
    pub alg: String,
    /// Content encryption, e.g. `A256GCM`.
    pub enc: String,
    /// Recipient key id.
    pub kid: String,
}
