//! Builders for outbound envelopes. Outbound is strict: a builder either returns an envelope
//! that satisfies the registry's request schema (see the conformance tests) or a
//! [`BuildError`] naming the field and the fix.
//!
//! ```
//! use dci_protocol::build::{RequestBuilder, SearchItem};
//! use dci_protocol::message::Query;
//! use dci_protocol::RegistryType;
//!
//! let env = RequestBuilder::new(RegistryType::Crvs, "spmis.example")
//!     .receiver_id("crvs.example")
//!     .sender_uri("https://spmis.example/registry/on-search")
//!     .search([SearchItem::new(Query::id("UIN", "1234")).page(1, 10)])
//!     .unwrap();
//! assert_eq!(env.header.total_count, Some(1));
//! ```

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::RegistryType;
use crate::codes::{
    Action, AttributeType, EventType, QueryType, RecordType, RegType, RequestStatus,
    ResponseEntity, SortOrder, StatusReasonCode, TxnType,
};
use crate::envelope::{Envelope, Header, PROTOCOL_VERSION, Payload};
use crate::error::BuildError;
use crate::message::{
    CriteriaObject, DisabledRequest, EnrolledRequest, EnrolledUpdates, EnrollmentUpdatesRequest,
    Frequency, NotifyEventRequest, Pagination, Query, SearchCriteria, SearchRequest,
    SearchRequestItem, SearchResponse, Sort, SubscribeCriteria, SubscribeRequest,
    SubscribeRequestItem, SubscribeResponse, TxnStatusRequest, TxnStatusRequestItem,
    TxnStatusResponse, UnsubscribeRequest, UnsubscribeResponse,
};

/// Longest id the specs allow (`transaction_id`, `correlation_id`, subscription codes).
pub const MAX_ID_LEN: usize = 99;
/// Largest page size the builders accept. The specs set no limit; registries do.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Longest `status_reason_message` / `error.message`.
pub const MAX_REASON_LEN: usize = 999;

/// RFC 3339 in UTC with milliseconds and `Z`, e.g. `2026-11-29T05:31:25.123Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp; the offset is mandatory.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// A fresh id (UUID v4, 36 chars). The 122 random bits come from the thread's user-space
/// CSPRNG (`rand::rngs::ThreadRng`: ChaCha, seeded and periodically reseeded from the OS), not
/// from one `getrandom` system call per id as `Uuid::new_v4` makes (three per search request).
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

pub(crate) fn check_id(field: &str, v: &str) -> Result<(), BuildError> {
    if v.trim().is_empty() {
        return Err(BuildError::new(field, "must not be empty"));
    }
    if v.chars().count() > MAX_ID_LEN {
        return Err(BuildError::new(
            field,
            format!(
                "is {} characters; the spec allows at most {MAX_ID_LEN}",
                v.chars().count()
            ),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(BuildError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub(crate) fn check_locale(field: &str, v: &str) -> Result<(), BuildError> {
    if v.len() == 3 && v.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(BuildError::new(
            field,
            format!(
                "{v:?} is not an ISO 639-3 code; use three lowercase letters such as \"eng\" or \"fra\" (not \"en\" or \"ENG\")"
            ),
        ))
    }
}

fn check_timestamp(field: &str, v: &str) -> Result<(), BuildError> {
    parse_rfc3339(v).map(|_| ()).ok_or_else(|| {
        BuildError::new(
            field,
            format!("{v:?} is not RFC 3339 with an offset, e.g. 2025-01-01T00:00:00Z"),
        )
    })
}

fn check_uri(field: &str, v: &str) -> Result<(), BuildError> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(u) => Err(BuildError::new(
            field,
            format!(
                "{v:?} has scheme {:?}; use an absolute http(s) URL",
                u.scheme()
            ),
        )),
        Err(e) => Err(BuildError::new(
            field,
            format!(
                "{v:?} is not an absolute URL ({e}); use e.g. https://spmis.example/registry/on-search"
            ),
        )),
    }
}

/// The endpoints of the five specs, with their path, action and availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/registry/search` (async).
    Search,
    /// `/registry/sync/search`.
    SyncSearch,
    /// `/registry/subscribe` (async).
    Subscribe,
    /// `/registry/unsubscribe` (async).
    Unsubscribe,
    /// `/registry/txn/status` (async; not DR).
    TxnStatus,
    /// `/registry/sync/txn/status` (not DR).
    SyncTxnStatus,
    /// DR `/registry/sync/disabled`.
    DrDisabled,
    /// DR `/registry/sync/get-disability-support`.
    DrDisabilitySupport,
    /// DR `/registry/sync/get-disability-details`.
    DrDisabilityDetails,
    /// IBR `/registry/sync/enrolled`.
    IbrEnrolled,
    /// IBR `/registry/sync/enrollment/updates` (SP → IBR, callback header, action `notify`).
    IbrEnrollmentUpdates,
    /// `/registry/on-search` (callback to the SP).
    OnSearch,
    /// `/registry/on-subscribe`.
    OnSubscribe,
    /// `/registry/on-unsubscribe`.
    OnUnsubscribe,
    /// `/registry/notify`.
    Notify,
    /// `/registry/txn/on-status`.
    TxnOnStatus,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 16] = [
        Endpoint::Search,
        Endpoint::SyncSearch,
        Endpoint::Subscribe,
        Endpoint::Unsubscribe,
        Endpoint::TxnStatus,
        Endpoint::SyncTxnStatus,
        Endpoint::DrDisabled,
        Endpoint::DrDisabilitySupport,
        Endpoint::DrDisabilityDetails,
        Endpoint::IbrEnrolled,
        Endpoint::IbrEnrollmentUpdates,
        Endpoint::OnSearch,
        Endpoint::OnSubscribe,
        Endpoint::OnUnsubscribe,
        Endpoint::Notify,
        Endpoint::TxnOnStatus,
    ];

    /// The path, relative to the registry's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Search => "/registry/search",
            Endpoint::SyncSearch => "/registry/sync/search",
            Endpoint::Subscribe => "/registry/subscribe",
            Endpoint::Unsubscribe => "/registry/unsubscribe",
            Endpoint::TxnStatus => "/registry/txn/status",
            Endpoint::SyncTxnStatus => "/registry/sync/txn/status",
            Endpoint::DrDisabled => "/registry/sync/disabled",
            Endpoint::DrDisabilitySupport => "/registry/sync/get-disability-support",
            Endpoint::DrDisabilityDetails => "/registry/sync/get-disability-details",
            Endpoint::IbrEnrolled => "/registry/sync/enrolled",
            Endpoint::IbrEnrollmentUpdates => "/registry/sync/enrollment/updates",
            Endpoint::OnSearch => "/registry/on-search",
            Endpoint::OnSubscribe => "/registry/on-subscribe",
            Endpoint::OnUnsubscribe => "/registry/on-unsubscribe",
            Endpoint::Notify => "/registry/notify",
            Endpoint::TxnOnStatus => "/registry/txn/on-status",
        }
    }

    /// `header.action` of requests to this endpoint.
    pub fn action(self) -> Action {
        match self {
            Endpoint::Search
            | Endpoint::SyncSearch
            | Endpoint::DrDisabled
            | Endpoint::DrDisabilitySupport
            | Endpoint::DrDisabilityDetails
            | Endpoint::IbrEnrolled => Action::Search,
            Endpoint::Subscribe => Action::Subscribe,
            Endpoint::Unsubscribe => Action::Unsubscribe,
            Endpoint::TxnStatus | Endpoint::SyncTxnStatus => Action::TxnStatus,
            Endpoint::IbrEnrollmentUpdates | Endpoint::Notify => Action::Notify,
            Endpoint::OnSearch => Action::OnSearch,
            Endpoint::OnSubscribe => Action::OnSubscribe,
            Endpoint::OnUnsubscribe => Action::OnUnsubscribe,
            Endpoint::TxnOnStatus => Action::TxnOnStatus,
        }
    }

    /// Whether the reply is an ACK and the result comes by callback to `sender_uri`.
    pub fn is_async(self) -> bool {
        matches!(
            self,
            Endpoint::Search | Endpoint::Subscribe | Endpoint::Unsubscribe | Endpoint::TxnStatus
        )
    }

    /// Whether the endpoint is served by the SP (callbacks), not the registry.
    pub fn is_callback(self) -> bool {
        matches!(
            self,
            Endpoint::OnSearch
                | Endpoint::OnSubscribe
                | Endpoint::OnUnsubscribe
                | Endpoint::Notify
                | Endpoint::TxnOnStatus
        )
    }

    /// Whether `registry`'s spec has this endpoint.
    pub fn available_in(self, registry: RegistryType) -> bool {
        match self {
            Endpoint::TxnStatus | Endpoint::SyncTxnStatus | Endpoint::TxnOnStatus => {
                registry.has_txn_status()
            }
            Endpoint::DrDisabled
            | Endpoint::DrDisabilitySupport
            | Endpoint::DrDisabilityDetails => registry == RegistryType::Dr,
            Endpoint::IbrEnrolled | Endpoint::IbrEnrollmentUpdates => registry == RegistryType::Ibr,
            _ => true,
        }
    }

    /// The callback endpoint an async request's result arrives at.
    pub fn callback(self) -> Option<Endpoint> {
        match self {
            Endpoint::Search => Some(Endpoint::OnSearch),
            Endpoint::Subscribe => Some(Endpoint::OnSubscribe),
            Endpoint::Unsubscribe => Some(Endpoint::OnUnsubscribe),
            Endpoint::TxnStatus => Some(Endpoint::TxnOnStatus),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- request items

/// One search of a batch. Build with [`SearchItem::new`] and chain.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct SearchItem {
    query: Query,
    reference_id: Option<String>,
    reg_record_type: Option<RecordType>,
    reg_event_type: Option<EventType>,
    response_entity: Option<ResponseEntity>,
    sort: Vec<Sort>,
    pagination: Option<Pagination>,
    consent: Option<Value>,
    authorize: Option<Value>,
    locale: Option<String>,
}

impl SearchItem {
    /// A search for `query`.
    pub fn new(query: Query) -> Self {
        Self {
            query,
            reference_id: None,
            reg_record_type: None,
            reg_event_type: None,
            response_entity: None,
            sort: Vec::new(),
            pagination: None,
            consent: None,
            authorize: None,
            locale: None,
        }
    }
    /// Per-item id (default: a fresh UUID).
    pub fn reference_id(mut self, id: impl Into<String>) -> Self {
        self.reference_id = Some(id.into());
        self
    }
    /// `reg_record_type`.
    pub fn record_type(mut self, t: impl Into<RecordType>) -> Self {
        self.reg_record_type = Some(t.into());
        self
    }
    /// `reg_event_type` (not in the schema; some registries use it).
    pub fn event_type(mut self, t: impl Into<EventType>) -> Self {
        self.reg_event_type = Some(t.into());
        self
    }
    /// `response_entity` (social registry only).
    pub fn response_entity(mut self, e: ResponseEntity) -> Self {
        self.response_entity = Some(e);
        self
    }
    /// Adds a sort key.
    pub fn sort(mut self, attribute_name: impl Into<String>, order: SortOrder) -> Self {
        self.sort.push(Sort {
            attribute_name: attribute_name.into(),
            sort_order: Some(order),
        });
        self
    }
    /// Page `number` (1-based) of `size` records.
    pub fn page(mut self, number: u32, size: u32) -> Self {
        self.pagination = Some(Pagination {
            page_size: size,
            page_number: Some(number),
        });
        self
    }
    /// `consent` object.
    pub fn consent(mut self, v: Value) -> Self {
        self.consent = Some(v);
        self
    }
    /// `authorize` object.
    pub fn authorize(mut self, v: Value) -> Self {
        self.authorize = Some(v);
        self
    }
    /// ISO 639-3 locale (`eng`).
    pub fn locale(mut self, l: impl Into<String>) -> Self {
        self.locale = Some(l.into());
        self
    }
}

fn check_query(
    field: &str,
    q: &Query,
    registry: RegistryType,
    graphql_ok: bool,
) -> Result<(), BuildError> {
    match q {
        Query::IdTypeValue { id_type, value } => {
            if id_type.as_str().trim().is_empty() {
                return Err(BuildError::new(
                    format!("{field}.type"),
                    "identifier type must not be empty",
                ));
            }
            match value {
                Value::String(s) if s.is_empty() => Err(BuildError::new(
                    format!("{field}.value"),
                    "identifier value must not be empty",
                )),
                Value::Null | Value::Array(_) => Err(BuildError::new(
                    format!("{field}.value"),
                    "must be a string, number, boolean or object",
                )),
                _ => Ok(()),
            }
        }
        Query::Expression {
            expression_type, ..
        } => {
            if expression_type.trim().is_empty() {
                return Err(BuildError::new(
                    format!("{field}.type"),
                    "expression type must not be empty (e.g. ns:org:QueryType:expression)",
                ));
            }
            Ok(())
        }
        Query::Predicate(clauses) => {
            if clauses.is_empty() {
                return Err(BuildError::new(
                    field,
                    "a predicate query needs at least one clause",
                ));
            }
            for (i, c) in clauses.iter().enumerate() {
                let exprs = std::iter::once(("expression1", &c.expression1))
                    .chain(c.expression2.as_ref().map(|e| ("expression2", e)));
                for (name, e) in exprs {
                    let f = format!("{field}[{i}].{name}");
                    if e.attribute_name.trim().is_empty() {
                        return Err(BuildError::new(
                            format!("{f}.attribute_name"),
                            "must not be empty",
                        ));
                    }
                    if !e.operator.is_known() {
                        return Err(BuildError::new(
                            format!("{f}.operator"),
                            format!(
                                "{:?} is not in the spec; use gt, lt, eq, ge, le or in",
                                e.operator.as_str()
                            ),
                        ));
                    }
                    if matches!(e.attribute_value, Value::Null | Value::Array(_)) {
                        return Err(BuildError::new(
                            format!("{f}.attribute_value"),
                            "must be a string, number, boolean or object",
                        ));
                    }
                }
                if c.condition.is_some() != c.expression2.is_some() {
                    return Err(BuildError::new(
                        format!("{field}[{i}].condition"),
                        "condition and expression2 go together",
                    ));
                }
                if let Some(cond) = &c.condition
                    && !cond.is_known()
                {
                    return Err(BuildError::new(
                        format!("{field}[{i}].condition"),
                        "use and, or or not",
                    ));
                }
            }
            Ok(())
        }
        Query::Graphql { expression, .. } => {
            if !graphql_ok || !registry.allows_graphql() {
                return Err(BuildError::new(
                    field,
                    format!(
                        "the {registry} registry does not accept query_type graphql; use idtype-value, expression or predicate"
                    ),
                ));
            }
            if expression.trim().is_empty() {
                return Err(BuildError::new(
                    format!("{field}.value.expression"),
                    "must not be empty",
                ));
            }
            Ok(())
        }
        Query::Other { query_type, .. } => Err(BuildError::new(
            field,
            format!(
                "query_type {query_type:?} is not in the spec; use idtype-value, expression, predicate or graphql"
            ),
        )),
    }
}

fn check_pagination(field: &str, p: &Pagination) -> Result<(), BuildError> {
    if p.page_size == 0 || p.page_size > MAX_PAGE_SIZE {
        return Err(BuildError::new(
            format!("{field}.page_size"),
            format!("{} is out of range; use 1..={MAX_PAGE_SIZE}", p.page_size),
        ));
    }
    if p.page_number == Some(0) {
        return Err(BuildError::new(
            format!("{field}.page_number"),
            "pages are numbered from 1",
        ));
    }
    Ok(())
}

/// One subscription of a batch.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct SubscribeItem {
    event_type: EventType,
    filter: Query,
    notify_record_type: RecordType,
    reference_id: Option<String>,
    frequency: Option<Frequency>,
    authorize: Option<Value>,
    locale: Option<String>,
}

impl SubscribeItem {
    /// Subscribe to `event_type` for records matching `filter`, notified as
    /// `notify_record_type`.
    pub fn new(
        event_type: impl Into<EventType>,
        filter: Query,
        notify_record_type: impl Into<RecordType>,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            filter,
            notify_record_type: notify_record_type.into(),
            reference_id: None,
            frequency: None,
            authorize: None,
            locale: None,
        }
    }
    /// Per-item id (default: a fresh UUID).
    pub fn reference_id(mut self, id: impl Into<String>) -> Self {
        self.reference_id = Some(id.into());
        self
    }
    /// Notification schedule: RFC 3339 start and end, Quartz cron.
    pub fn frequency(
        mut self,
        start: OffsetDateTime,
        end: OffsetDateTime,
        cron: impl Into<String>,
    ) -> Self {
        self.frequency = Some(Frequency {
            start_time: rfc3339(start),
            end_time: rfc3339(end),
            frequency: cron.into(),
        });
        self
    }
    /// `authorize` object.
    pub fn authorize(mut self, v: Value) -> Self {
        self.authorize = Some(v);
        self
    }
    /// ISO 639-3 locale.
    pub fn locale(mut self, l: impl Into<String>) -> Self {
        self.locale = Some(l.into());
        self
    }
}

/// What a txn-status request looks up.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnLookup {
    /// By the original transaction id.
    TransactionId(String),
    /// By reference ids.
    ReferenceIds(Vec<String>),
    /// By the registry's correlation id.
    CorrelationId(String),
    /// By subscription codes (CRVS, FR).
    SubscriptionCodes(Vec<String>),
}

// ---------------------------------------------------------------- request builder

/// Builds request envelopes (SP → registry). Set the header fields, then call one of the
/// message methods, which validates everything and returns the envelope.
#[derive(Debug, Clone)]
#[must_use]
pub struct RequestBuilder {
    registry: RegistryType,
    sender_id: String,
    receiver_id: Option<String>,
    sender_uri: Option<String>,
    message_id: Option<String>,
    transaction_id: Option<String>,
    now: Option<OffsetDateTime>,
    meta: Option<Value>,
}

impl RequestBuilder {
    /// A request from `sender_id` to a registry of type `registry`.
    pub fn new(registry: RegistryType, sender_id: impl Into<String>) -> Self {
        Self {
            registry,
            sender_id: sender_id.into(),
            receiver_id: None,
            sender_uri: None,
            message_id: None,
            transaction_id: None,
            now: None,
            meta: None,
        }
    }
    /// `header.receiver_id`.
    pub fn receiver_id(mut self, v: impl Into<String>) -> Self {
        self.receiver_id = Some(v.into());
        self
    }
    /// `header.sender_uri`: the exact callback URL (required for async endpoints).
    pub fn sender_uri(mut self, v: impl Into<String>) -> Self {
        self.sender_uri = Some(v.into());
        self
    }
    /// `header.message_id` (default: a fresh UUID).
    pub fn message_id(mut self, v: impl Into<String>) -> Self {
        self.message_id = Some(v.into());
        self
    }
    /// `message.transaction_id` (default: a fresh UUID).
    pub fn transaction_id(mut self, v: impl Into<String>) -> Self {
        self.transaction_id = Some(v.into());
        self
    }
    /// The clock for `message_ts` and item timestamps (default: now).
    pub fn at(mut self, now: OffsetDateTime) -> Self {
        self.now = Some(now);
        self
    }
    /// `header.meta` (an object).
    pub fn meta(mut self, meta: Value) -> Self {
        self.meta = Some(meta);
        self
    }

    fn now(&self) -> OffsetDateTime {
        self.now.unwrap_or_else(OffsetDateTime::now_utc)
    }

    fn transaction_id_checked(&self) -> Result<String, BuildError> {
        let t = self.transaction_id.clone().unwrap_or_else(new_id);
        check_id("message.transaction_id", &t)?;
        Ok(t)
    }

    fn require(&self, endpoint: Endpoint) -> Result<(), BuildError> {
        if !endpoint.available_in(self.registry) {
            return Err(BuildError::new(
                "endpoint",
                format!(
                    "the {} registry spec has no {}",
                    self.registry,
                    endpoint.path()
                ),
            ));
        }
        Ok(())
    }

    fn header(&self, endpoint: Endpoint, total_count: usize) -> Result<Header, BuildError> {
        let message_id = self.message_id.clone().unwrap_or_else(new_id);
        check_id("header.message_id", &message_id)?;
        check_id("header.sender_id", &self.sender_id)?;
        if let Some(r) = &self.receiver_id {
            check_id("header.receiver_id", r)?;
        }
        match (&self.sender_uri, endpoint.is_async()) {
            (Some(u), _) => check_uri("header.sender_uri", u)?,
            (None, true) => {
                return Err(BuildError::new(
                    "header.sender_uri",
                    format!(
                        "{} is asynchronous: set the callback URL the registry should POST the result to (e.g. https://spmis.example{})",
                        endpoint.path(),
                        endpoint.callback().map(Endpoint::path).unwrap_or("")
                    ),
                ));
            }
            (None, false) => {}
        }
        if let Some(m) = &self.meta
            && !m.is_object()
        {
            return Err(BuildError::new("header.meta", "must be a JSON object"));
        }
        let callback_style = endpoint == Endpoint::IbrEnrollmentUpdates;
        Ok(Header {
            version: Some(PROTOCOL_VERSION.into()),
            message_id,
            message_ts: rfc3339(self.now()),
            action: endpoint.action(),
            // IBR enrollment/updates is declared with the callback header, which requires status.
            status: callback_style.then_some(RequestStatus::Rcvd),
            status_reason_code: None,
            status_reason_message: None,
            total_count: Some(total_count as u64),
            completed_count: None,
            sender_id: Some(self.sender_id.clone()),
            sender_uri: self.sender_uri.clone(),
            receiver_id: self.receiver_id.clone(),
            is_msg_encrypted: Some(false),
            meta: self.meta.clone(),
            extra: Map::new(),
        })
    }

    fn envelope<M>(&self, header: Header, message: M) -> Envelope<M> {
        Envelope {
            signature: None,
            header,
            message: Some(Payload::Plain(message)),
            extra: Map::new(),
        }
    }

    fn search_at(
        self,
        endpoint: Endpoint,
        items: impl IntoIterator<Item = SearchItem>,
    ) -> Result<Envelope<SearchRequest>, BuildError> {
        self.require(endpoint)?;
        let now = rfc3339(self.now());
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let f = format!("message.search_request[{i}]");
            let reference_id = item.reference_id.unwrap_or_else(new_id);
            check_id(&format!("{f}.reference_id"), &reference_id)?;
            check_query(
                &format!("{f}.search_criteria.query"),
                &item.query,
                self.registry,
                true,
            )?;
            if let Some(p) = &item.pagination {
                check_pagination(&format!("{f}.search_criteria.pagination"), p)?;
            }
            if let Some(l) = &item.locale {
                check_locale(&format!("{f}.locale"), l)?;
            }
            if item.response_entity.is_some() && self.registry != RegistryType::Social {
                return Err(BuildError::new(
                    format!("{f}.search_criteria.response_entity"),
                    format!(
                        "only the social registry's search has response_entity, not {}",
                        self.registry
                    ),
                ));
            }
            for (k, s) in item.sort.iter().enumerate() {
                if s.attribute_name.trim().is_empty() {
                    return Err(BuildError::new(
                        format!("{f}.search_criteria.sort[{k}].attribute_name"),
                        "must not be empty",
                    ));
                }
            }
            for (name, v) in [("consent", &item.consent), ("authorize", &item.authorize)] {
                if let Some(v) = v
                    && !v.is_object()
                {
                    return Err(BuildError::new(
                        format!("{f}.search_criteria.{name}"),
                        "must be a JSON object",
                    ));
                }
            }
            out.push(SearchRequestItem {
                reference_id,
                timestamp: now.clone(),
                search_criteria: SearchCriteria {
                    version: Some(PROTOCOL_VERSION.into()),
                    reg_type: Some(RegType::from(self.registry)),
                    reg_record_type: item.reg_record_type,
                    reg_event_type: item.reg_event_type,
                    query_type: item.query.query_type(),
                    response_entity: item.response_entity,
                    query: item.query.to_json(),
                    sort: item.sort,
                    pagination: item.pagination,
                    consent: item.consent,
                    authorize: item.authorize,
                    extra: Map::new(),
                },
                locale: item.locale,
                extra: Map::new(),
            });
        }
        if out.is_empty() {
            return Err(BuildError::new(
                "message.search_request",
                "needs at least one search",
            ));
        }
        let header = self.header(endpoint, out.len())?;
        let message = SearchRequest {
            transaction_id: self.transaction_id_checked()?,
            search_request: out,
            extra: Map::new(),
        };
        Ok(self.envelope(header, message))
    }

    /// `/registry/search` (async; needs `sender_uri`).
    pub fn search(
        self,
        items: impl IntoIterator<Item = SearchItem>,
    ) -> Result<Envelope<SearchRequest>, BuildError> {
        self.search_at(Endpoint::Search, items)
    }

    /// `/registry/sync/search`.
    pub fn sync_search(
        self,
        items: impl IntoIterator<Item = SearchItem>,
    ) -> Result<Envelope<SearchRequest>, BuildError> {
        self.search_at(Endpoint::SyncSearch, items)
    }

    /// `/registry/subscribe` (async; needs `sender_uri`).
    pub fn subscribe(
        self,
        items: impl IntoIterator<Item = SubscribeItem>,
    ) -> Result<Envelope<SubscribeRequest>, BuildError> {
        let now = rfc3339(self.now());
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let f = format!("message.subscribe_request[{i}]");
            let reference_id = item.reference_id.unwrap_or_else(new_id);
            check_id(&format!("{f}.reference_id"), &reference_id)?;
            let c = format!("{f}.subscribe_criteria");
            if item.event_type.as_str().trim().is_empty() {
                return Err(BuildError::new(
                    format!("{c}.reg_event_type"),
                    "must not be empty",
                ));
            }
            if self.registry == RegistryType::Dr && item.event_type != EventType::Register {
                return Err(BuildError::new(
                    format!("{c}.reg_event_type"),
                    format!(
                        "the DR spec only allows REGISTER, not {:?}",
                        item.event_type.as_str()
                    ),
                ));
            }
            if item.notify_record_type.as_str().trim().is_empty() {
                return Err(BuildError::new(
                    format!("{c}.notify_record_type"),
                    "must not be empty",
                ));
            }
            check_query(&format!("{c}.filter"), &item.filter, self.registry, true)?;
            if let Some(fr) = &item.frequency {
                check_timestamp(&format!("{c}.frequency.start_time"), &fr.start_time)?;
                check_timestamp(&format!("{c}.frequency.end_time"), &fr.end_time)?;
                if fr.frequency.trim().is_empty() {
                    return Err(BuildError::new(
                        format!("{c}.frequency.frequency"),
                        "needs a cron expression, e.g. \"0 0 0 5,15 * ? *\"",
                    ));
                }
            }
            if let Some(l) = &item.locale {
                check_locale(&format!("{f}.locale"), l)?;
            }
            if let Some(v) = &item.authorize
                && !v.is_object()
            {
                return Err(BuildError::new(
                    format!("{c}.authorize"),
                    "must be a JSON object",
                ));
            }
            out.push(SubscribeRequestItem {
                reference_id,
                timestamp: now.clone(),
                subscribe_criteria: SubscribeCriteria {
                    version: Some(PROTOCOL_VERSION.into()),
                    reg_type: Some(RegType::from(self.registry)),
                    reg_event_type: item.event_type,
                    frequency: item.frequency,
                    filter_type: Some(item.filter.query_type()),
                    filter: item.filter.to_json(),
                    notify_record_type: item.notify_record_type,
                    authorize: item.authorize,
                    extra: Map::new(),
                },
                locale: item.locale,
                extra: Map::new(),
            });
        }
        if out.is_empty() {
            return Err(BuildError::new(
                "message.subscribe_request",
                "needs at least one subscription",
            ));
        }
        let header = self.header(Endpoint::Subscribe, out.len())?;
        let message = SubscribeRequest {
            transaction_id: self.transaction_id_checked()?,
            subscribe_request: out,
            extra: Map::new(),
        };
        Ok(self.envelope(header, message))
    }

    /// `/registry/unsubscribe` (async; needs `sender_uri`).
    pub fn unsubscribe<S: Into<String>>(
        self,
        codes: impl IntoIterator<Item = S>,
    ) -> Result<Envelope<UnsubscribeRequest>, BuildError> {
        let codes: Vec<String> = codes.into_iter().map(Into::into).collect();
        if codes.is_empty() {
            return Err(BuildError::new(
                "message.subscription_codes",
                "needs at least one subscription code",
            ));
        }
        for (i, c) in codes.iter().enumerate() {
            check_id(&format!("message.subscription_codes[{i}]"), c)?;
        }
        let header = self.header(Endpoint::Unsubscribe, codes.len())?;
        let message = UnsubscribeRequest {
            transaction_id: self.transaction_id_checked()?,
            timestamp: rfc3339(self.now()),
            subscription_codes: codes,
            extra: Map::new(),
        };
        Ok(self.envelope(header, message))
    }

    fn txn_status_at(
        self,
        endpoint: Endpoint,
        txn_type: TxnType,
        lookup: TxnLookup,
        reference_id: Option<String>,
    ) -> Result<Envelope<TxnStatusRequest>, BuildError> {
        self.require(endpoint)?;
        let f = "message.txnstatus_request";
        let crvs_like = matches!(self.registry, RegistryType::Crvs | RegistryType::Fr);
        let allowed = match &txn_type {
            TxnType::Search | TxnType::Subscribe => true,
            TxnType::Unsubscribe => crvs_like,
            TxnType::Receipt => !crvs_like,
            TxnType::Other(_) => false,
        };
        if !allowed {
            let options = if crvs_like {
                "search, subscribe or unsubscribe"
            } else {
                "search, subscribe or receipt"
            };
            return Err(BuildError::new(
                format!("{f}.txn_type"),
                format!(
                    "the {} registry does not accept {:?}; use {options}",
                    self.registry,
                    txn_type.as_str()
                ),
            ));
        }
        let (attribute_type, attribute_value) = match lookup {
            TxnLookup::TransactionId(t) => {
                check_id(&format!("{f}.attribute_value"), &t)?;
                (AttributeType::TransactionId, Value::String(t))
            }
            TxnLookup::CorrelationId(c) => {
                check_id(&format!("{f}.attribute_value"), &c)?;
                (AttributeType::CorrelationId, Value::String(c))
            }
            TxnLookup::ReferenceIds(ids) | TxnLookup::SubscriptionCodes(ids) if ids.is_empty() => {
                return Err(BuildError::new(
                    format!("{f}.attribute_value"),
                    "needs at least one id",
                ));
            }
            TxnLookup::ReferenceIds(ids) => {
                for (i, id) in ids.iter().enumerate() {
                    if id.trim().is_empty() {
                        return Err(BuildError::new(
                            format!("{f}.attribute_value[{i}]"),
                            "must not be empty",
                        ));
                    }
                }
                (AttributeType::ReferenceIdList, Value::from(ids))
            }
            TxnLookup::SubscriptionCodes(codes) => {
                if !crvs_like {
                    return Err(BuildError::new(
                        format!("{f}.attribute_type"),
                        format!(
                            "subscription_code_list is only in the CRVS and FR specs, not {}",
                            self.registry
                        ),
                    ));
                }
                for (i, c) in codes.iter().enumerate() {
                    check_id(&format!("{f}.attribute_value[{i}]"), c)?;
                }
                (AttributeType::SubscriptionCodeList, Value::from(codes))
            }
        };
        let reference_id = reference_id.unwrap_or_else(new_id);
        check_id(&format!("{f}.reference_id"), &reference_id)?;
        let header = self.header(endpoint, 1)?;
        let message = TxnStatusRequest {
            transaction_id: self.transaction_id_checked()?,
            txnstatus_request: TxnStatusRequestItem {
                reference_id,
                txn_type,
                attribute_type,
                attribute_value,
                locale: None,
                extra: Map::new(),
            },
            extra: Map::new(),
        };
        Ok(self.envelope(header, message))
    }

    /// `/registry/txn/status` (async; not DR).
    pub fn txn_status(
        self,
        txn_type: TxnType,
        lookup: TxnLookup,
    ) -> Result<Envelope<TxnStatusRequest>, BuildError> {
        self.txn_status_at(Endpoint::TxnStatus, txn_type, lookup, None)
    }

    /// `/registry/sync/txn/status` (not DR).
    pub fn sync_txn_status(
        self,
        txn_type: TxnType,
        lookup: TxnLookup,
    ) -> Result<Envelope<TxnStatusRequest>, BuildError> {
        self.txn_status_at(Endpoint::SyncTxnStatus, txn_type, lookup, None)
    }

    fn criteria(
        &self,
        field: &str,
        query_type: QueryType,
        query: Map<String, Value>,
        response_entity: Option<ResponseEntity>,
    ) -> Result<CriteriaObject, BuildError> {
        if !query_type.is_known() {
            return Err(BuildError::new(
                format!("{field}.query_type"),
                "use idtype-value, expression, predicate or graphql",
            ));
        }
        if query.is_empty() {
            return Err(BuildError::new(
                format!("{field}.query"),
                "must not be empty",
            ));
        }
        Ok(CriteriaObject {
            query_type: Some(query_type),
            response_entity,
            query: Some(query),
            extra: Map::new(),
        })
    }

    fn dr(
        self,
        endpoint: Endpoint,
        query_type: QueryType,
        query: Map<String, Value>,
    ) -> Result<Envelope<DisabledRequest>, BuildError> {
        self.require(endpoint)?;
        let criteria = self.criteria("message.disabled_criteria", query_type, query, None)?;
        let header = self.header(endpoint, 1)?;
        let message = DisabledRequest {
            transaction_id: self.transaction_id_checked()?,
            disabled_criteria: criteria,
            extra: Map::new(),
        };
        Ok(self.envelope(header, message))
    }

    /// DR `/registry/sync/disabled`, e.g. query `{"member.member_identifier":{"eq":"ABC"}}`.
    pub fn dr_disabled(
        self,
        query_type: QueryType,
        query: Map<String, Value>,
    ) -> Result<Envelope<DisabledRequest>, BuildError> {
        self.dr(Endpoint::DrDisabled, query_type, query)
    }

    /// DR `/registry/sync/get-disability-support`.
    pub fn dr_disability_support(
        self,
        query_type: QueryType,
        query: Map<String, Value>,
    ) -> Result<Envelope<DisabledRequest>, BuildError> {
        self.dr(Endpoint::DrDisabilitySupport, query_type, query)
    }

    /// DR `/registry/sync/get-disability-details`.
    pub fn dr_disability_details(
        self,
        query_type: QueryType,
        query: Map<String, Value>,
    ) -> Result<Envelope<DisabledRequest>, BuildError> {
        self.dr(Endpoint::DrDisabilityDetails, query_type, query)
    }

    /// IBR `/registry/sync/enrolled`.
    pub fn ibr_enrolled(
        self,
        query_type: QueryType,
        query: Map<String, Value>,
        response_entity: Option<ResponseEntity>,
    ) -> Result<Envelope<EnrolledRequest>, BuildError> {
        self.require(Endpoint::IbrEnrolled)?;
        let criteria = self.criteria(
            "message.enrolled_criteria",
            query_type,
            query,
            response_entity,
        )?;
        let header = self.header(Endpoint::IbrEnrolled, 1)?;
        let message = EnrolledRequest {
            transaction_id: self.transaction_id_checked()?,
            enrolled_criteria: criteria,
            extra: Map::new(),
        };
        Ok(self.envelope(header, message))
    }

    /// IBR `/registry/sync/enrollment/updates`: push beneficiary records (objects).
    pub fn ibr_enrollment_updates(
        self,
        beneficiaries: Vec<Value>,
    ) -> Result<Envelope<EnrollmentUpdatesRequest>, BuildError> {
        self.require(Endpoint::IbrEnrollmentUpdates)?;
        if beneficiaries.is_empty() {
            return Err(BuildError::new(
                "message.enrolled_updates.beneficiaries",
                "needs at least one beneficiary",
            ));
        }
        for (i, b) in beneficiaries.iter().enumerate() {
            if !b.is_object() {
                return Err(BuildError::new(
                    format!("message.enrolled_updates.beneficiaries[{i}]"),
                    "must be a JSON object",
                ));
            }
        }
        let header = self.header(Endpoint::IbrEnrollmentUpdates, beneficiaries.len())?;
        let message = EnrollmentUpdatesRequest {
            transaction_id: self.transaction_id_checked()?,
            enrolled_updates: EnrolledUpdates {
                beneficiaries,
                extra: Map::new(),
            },
            extra: Map::new(),
        };
        Ok(self.envelope(header, message))
    }
}

// ---------------------------------------------------------------- callback builder

/// Builds callback and sync-response envelopes (registry → SP): used by registries, the
/// sandbox and tests. The header carries every field of both header schemas, so it satisfies
/// `MsgCallbackHeader` and — for `on-subscribe`/`on-unsubscribe`, which most specs declare
/// with the request header — `MsgHeader` as well.
#[derive(Debug, Clone)]
#[must_use]
pub struct CallbackBuilder {
    sender_id: String,
    receiver_id: Option<String>,
    message_id: Option<String>,
    now: Option<OffsetDateTime>,
    status: RequestStatus,
    status_reason_code: Option<StatusReasonCode>,
    status_reason_message: Option<String>,
    completed_count: Option<u64>,
}

impl CallbackBuilder {
    /// A callback from registry `sender_id` with status `succ`.
    pub fn new(sender_id: impl Into<String>) -> Self {
        Self {
            sender_id: sender_id.into(),
            receiver_id: None,
            message_id: None,
            now: None,
            status: RequestStatus::Succ,
            status_reason_code: None,
            status_reason_message: None,
            completed_count: None,
        }
    }
    /// `header.receiver_id` (the SP).
    pub fn receiver_id(mut self, v: impl Into<String>) -> Self {
        self.receiver_id = Some(v.into());
        self
    }
    /// `header.message_id` (default: a fresh UUID).
    pub fn message_id(mut self, v: impl Into<String>) -> Self {
        self.message_id = Some(v.into());
        self
    }
    /// The clock (default: now).
    pub fn at(mut self, now: OffsetDateTime) -> Self {
        self.now = Some(now);
        self
    }
    /// Header status (default `succ`).
    pub fn status(mut self, s: RequestStatus) -> Self {
        self.status = s;
        self
    }
    /// Header reason code and message (message truncated to 999 chars).
    pub fn reason(mut self, code: StatusReasonCode, message: impl Into<String>) -> Self {
        self.status_reason_code = Some(code);
        self.status_reason_message = Some(message.into().chars().take(MAX_REASON_LEN).collect());
        self
    }
    /// `completed_count` (default: the total).
    pub fn completed_count(mut self, n: u64) -> Self {
        self.completed_count = Some(n);
        self
    }

    fn header(&self, action: Action, total: usize) -> Result<Header, BuildError> {
        let message_id = self.message_id.clone().unwrap_or_else(new_id);
        check_id("header.message_id", &message_id)?;
        check_id("header.sender_id", &self.sender_id)?;
        if !self.status.is_known() {
            return Err(BuildError::new(
                "header.status",
                "use rcvd, pdng, succ or rjct",
            ));
        }
        Ok(Header {
            version: Some(PROTOCOL_VERSION.into()),
            message_id,
            message_ts: rfc3339(self.now.unwrap_or_else(OffsetDateTime::now_utc)),
            action,
            status: Some(self.status.clone()),
            status_reason_code: self.status_reason_code.clone(),
            status_reason_message: self.status_reason_message.clone(),
            total_count: Some(total as u64),
            completed_count: Some(self.completed_count.unwrap_or(total as u64)),
            sender_id: Some(self.sender_id.clone()),
            sender_uri: None,
            receiver_id: self.receiver_id.clone(),
            is_msg_encrypted: Some(false),
            meta: None,
            extra: Map::new(),
        })
    }

    /// Any callback with an explicit action and message.
    pub fn build<M>(
        self,
        action: Action,
        total: usize,
        message: Option<M>,
    ) -> Result<Envelope<M>, BuildError> {
        let header = self.header(action, total)?;
        Ok(Envelope {
            signature: None,
            header,
            message: message.map(Payload::Plain),
            extra: Map::new(),
        })
    }

    /// `on-search` (also the sync search reply).
    pub fn on_search(self, m: SearchResponse) -> Result<Envelope<SearchResponse>, BuildError> {
        check_id("message.correlation_id", &m.correlation_id)?;
        let n = m.search_response.len();
        self.build(Action::OnSearch, n, Some(m))
    }

    /// `on-subscribe`.
    pub fn on_subscribe(
        self,
        m: SubscribeResponse,
    ) -> Result<Envelope<SubscribeResponse>, BuildError> {
        check_id("message.correlation_id", &m.correlation_id)?;
        let n = m.subscribe_response.len();
        self.build(Action::OnSubscribe, n, Some(m))
    }

    /// `on-unsubscribe`.
    pub fn on_unsubscribe(
        self,
        m: UnsubscribeResponse,
    ) -> Result<Envelope<UnsubscribeResponse>, BuildError> {
        check_id("message.correlation_id", &m.correlation_id)?;
        check_timestamp("message.timestamp", &m.timestamp)?;
        let n = m.subscription_status.len().max(1);
        self.build(Action::OnUnsubscribe, n, Some(m))
    }

    /// `notify`.
    pub fn notify(self, m: NotifyEventRequest) -> Result<Envelope<NotifyEventRequest>, BuildError> {
        check_id("message.transaction_id", &m.transaction_id)?;
        let n = m.notify_event.len();
        self.build(Action::Notify, n, Some(m))
    }

    /// `txn-on-status` (also the sync txn-status reply).
    pub fn txn_on_status(
        self,
        m: TxnStatusResponse,
    ) -> Result<Envelope<TxnStatusResponse>, BuildError> {
        check_id("message.correlation_id", &m.correlation_id)?;
        self.build(Action::TxnOnStatus, 1, Some(m))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::codes::Operator;
    use crate::message::{PredicateClause, PredicateExpression};

    #[test]
    fn new_ids_are_distinct_v4_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id.len(), 36);
            assert_eq!(id, &id.to_ascii_lowercase());
        }
    }

    fn rb(r: RegistryType) -> RequestBuilder {
        RequestBuilder::new(r, "spmis")
            .receiver_id("registry")
            .sender_uri("https://spmis.example/registry/on-search")
    }

    #[test]
    fn search_envelope_shape() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let env = rb(RegistryType::Social)
            .at(t)
            .transaction_id("txn-1")
            .search([
                SearchItem::new(Query::id("UIN", "1"))
                    .page(1, 10)
                    .locale("eng"),
                SearchItem::new(Query::Predicate(vec![PredicateClause {
                    seq_num: Some(json!(1)),
                    expression1: PredicateExpression {
                        attribute_name: "age".into(),
                        operator: Operator::Lt,
                        attribute_value: json!("25"),
                    },
                    condition: None,
                    expression2: None,
                }])),
            ])
            .unwrap();
        let v = env.to_value();
        assert_eq!(v["header"]["total_count"], 2);
        assert_eq!(v["header"]["action"], "search");
        assert_eq!(v["header"]["message_ts"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["message"]["transaction_id"], "txn-1");
        let c = &v["message"]["search_request"][0]["search_criteria"];
        assert_eq!(c["reg_type"], "ns:org:RegistryType:Social");
        assert_eq!(c["query_type"], "idtype-value");
        assert_eq!(c["query"], json!({"type": "UIN", "value": "1"}));
        assert_eq!(
            v["message"]["search_request"][1]["search_criteria"]["query_type"],
            "predicate"
        );
        assert!(v.get("signature").is_none());
    }

    #[test]
    fn bad_input_names_the_field() {
        let e = rb(RegistryType::Crvs)
            .search([SearchItem::new(Query::id("UIN", "1")).locale("en")])
            .unwrap_err();
        assert_eq!(e.field, "message.search_request[0].locale");
        let e = rb(RegistryType::Crvs)
            .search([SearchItem::new(Query::id("UIN", "1")).page(0, 10)])
            .unwrap_err();
        assert_eq!(
            e.field,
            "message.search_request[0].search_criteria.pagination.page_number"
        );
        let e = rb(RegistryType::Crvs)
            .search([SearchItem::new(Query::id("UIN", "1")).page(1, 0)])
            .unwrap_err();
        assert!(e.field.ends_with("page_size"));
        let e = rb(RegistryType::Social)
            .search([SearchItem::new(Query::Graphql {
                expression_type: "ns:org:QueryType:graphql".into(),
                expression: "{ a }".into(),
            })])
            .unwrap_err();
        assert!(e.reason.contains("graphql"), "{e}");
        let e = rb(RegistryType::Crvs)
            .transaction_id("x".repeat(100))
            .search([SearchItem::new(Query::id("UIN", "1"))])
            .unwrap_err();
        assert_eq!(e.field, "message.transaction_id");
        let e = RequestBuilder::new(RegistryType::Crvs, "s")
            .search([SearchItem::new(Query::id("UIN", "1"))])
            .unwrap_err();
        assert_eq!(e.field, "header.sender_uri");
        assert!(
            RequestBuilder::new(RegistryType::Crvs, "s")
                .sync_search([SearchItem::new(Query::id("UIN", "1"))])
                .is_ok()
        );
        let e = rb(RegistryType::Dr)
            .txn_status(TxnType::Search, TxnLookup::TransactionId("t".into()))
            .unwrap_err();
        assert_eq!(e.field, "endpoint");
        let e = rb(RegistryType::Social)
            .txn_status(TxnType::Unsubscribe, TxnLookup::TransactionId("t".into()))
            .unwrap_err();
        assert!(e.field.ends_with("txn_type"));
        let e = rb(RegistryType::Crvs)
            .sender_uri("not a url")
            .unsubscribe(["c"])
            .unwrap_err();
        assert_eq!(e.field, "header.sender_uri");
        let e = rb(RegistryType::Dr)
            .subscribe([SubscribeItem::new(
                "LiveBirth",
                Query::id("UIN", "1"),
                "Person",
            )])
            .unwrap_err();
        assert!(e.field.ends_with("reg_event_type"));
        let e = rb(RegistryType::Crvs)
            .search([SearchItem::new(Query::Predicate(vec![PredicateClause {
                seq_num: None,
                expression1: PredicateExpression {
                    attribute_name: "age".into(),
                    operator: Operator::parse_lenient("gte"),
                    attribute_value: json!(1),
                },
                condition: None,
                expression2: None,
            }]))])
            .unwrap_err();
        assert!(e.field.ends_with("expression1.operator"), "{e}");
    }

    #[test]
    fn endpoints_match_registry_capabilities() {
        assert!(!Endpoint::TxnStatus.available_in(RegistryType::Dr));
        assert!(Endpoint::DrDisabled.available_in(RegistryType::Dr));
        assert!(!Endpoint::IbrEnrolled.available_in(RegistryType::Crvs));
        assert_eq!(Endpoint::TxnOnStatus.action().as_str(), "txn-on-status");
        assert_eq!(Endpoint::Search.callback(), Some(Endpoint::OnSearch));
    }
}
