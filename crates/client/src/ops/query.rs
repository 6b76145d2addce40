//! What a caller asks for: searches (by identifier, expression, predicate, date range), their
//! options, subscriptions and transaction-status lookups. Parsing of user input (`TYPE:VALUE`,
//! JSON) happens here, once, with errors naming the field; the protocol builders then enforce
//! the wire rules.

use dci_protocol::build::{SearchItem, SubscribeItem, TxnLookup};
use dci_protocol::codes::{Condition, Operator, SortOrder, TxnType};
use dci_protocol::message::{PredicateClause, PredicateExpression, Query};
use serde_json::{Value, json};

use super::error::OpsError;

/// The `type` an expression query gets when the caller gives only the expression document.
pub const EXPRESSION_TYPE: &str = "ns:org:QueryType:expression";

/// One search criterion: the query plus its options. Build with [`SearchSpec::new`] or the
/// parsing constructors, then chain options.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct SearchSpec {
    /// The query.
    pub query: Query,
    /// `reg_record_type` (e.g. `Person`).
    pub record_type: Option<String>,
    /// `reg_event_type` (e.g. CRVS `LiveBirth`).
    pub event_type: Option<String>,
    /// Sort keys, in order.
    pub sort: Vec<(String, SortOrder)>,
    /// 1-based page number (default 1 when a page size is set).
    pub page: Option<u32>,
    /// Page size.
    pub page_size: Option<u32>,
    /// `consent` object.
    pub consent: Option<Value>,
    /// `authorize` object.
    pub authorize: Option<Value>,
    /// ISO 639-3 locale.
    pub locale: Option<String>,
    /// Our reference id for the item (default: a fresh UUID).
    pub reference_id: Option<String>,
}

impl SearchSpec {
    /// A search for `query` with no options.
    pub fn new(query: Query) -> SearchSpec {
        SearchSpec {
            query,
            record_type: None,
            event_type: None,
            sort: Vec::new(),
            page: None,
            page_size: None,
            consent: None,
            authorize: None,
            locale: None,
            reference_id: None,
        }
    }

    /// `TYPE:VALUE`, e.g. `UIN:1234567890` (the value may itself contain `:`).
    pub fn by_id(type_value: &str) -> Result<SearchSpec, OpsError> {
        Ok(SearchSpec::new(parse_id(type_value)?))
    }

    /// An expression query: either `{type, value}` as on the wire, or just the expression
    /// document (e.g. `{"$and": [{"poverty_score": {"$lt": 5}}]}`), which is wrapped as the spec
    /// examples do.
    pub fn expression(json: Value) -> Result<SearchSpec, OpsError> {
        Ok(SearchSpec::new(parse_expression(json)?))
    }

    /// A predicate query: an array of clauses `{expression1, condition?, expression2?}` or one
    /// clause.
    pub fn predicate(json: Value) -> Result<SearchSpec, OpsError> {
        Ok(SearchSpec::new(parse_predicate(json)?))
    }

    /// Records whose `attribute` lies in `[from, to]` (either bound optional), e.g.
    /// `event_date` between two RFC 3339 dates.
    pub fn date_range(
        attribute: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<SearchSpec, OpsError> {
        Ok(SearchSpec::new(date_range(attribute, from, to)?))
    }

    /// Parses a query as the gateway API and CLI take it: `query_type` `idtype-value` (a
    /// `TYPE:VALUE` string or `{type, value}`), `expression` or `predicate`.
    pub fn from_parts(query_type: &str, query: Value) -> Result<SearchSpec, OpsError> {
        let q = match query_type {
            "idtype-value" | "idtype_value" | "id" => match query {
                Value::String(s) => parse_id(&s)?,
                Value::Object(ref m) if m.contains_key("type") && m.contains_key("value") => {
                    Query::id(
                        m["type"].as_str().unwrap_or_default().to_owned(),
                        m["value"].clone(),
                    )
                }
                _ => {
                    return Err(OpsError::invalid(
                        "query",
                        "for idtype-value give \"TYPE:VALUE\" or {\"type\": \"UIN\", \"value\": \"…\"}",
                    ));
                }
            },
            "expression" => parse_expression(query)?,
            "predicate" => parse_predicate(query)?,
            other => {
                return Err(OpsError::invalid(
                    "query_type",
                    format!(
                        "{other:?} is not supported: use idtype-value, expression or predicate"
                    ),
                ));
            }
        };
        Ok(SearchSpec::new(q))
    }

    /// `reg_record_type`.
    pub fn record_type(mut self, t: impl Into<String>) -> Self {
        self.record_type = Some(t.into());
        self
    }

    /// `reg_event_type`.
    pub fn event_type(mut self, t: impl Into<String>) -> Self {
        self.event_type = Some(t.into());
        self
    }

    /// Adds a sort key.
    pub fn sort(mut self, attribute: impl Into<String>, order: SortOrder) -> Self {
        self.sort.push((attribute.into(), order));
        self
    }

    /// Page `number` (1-based) of `size` records.
    pub fn page(mut self, number: u32, size: u32) -> Self {
        self.page = Some(number);
        self.page_size = Some(size);
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

    /// Our reference id for this item.
    pub fn reference_id(mut self, id: impl Into<String>) -> Self {
        self.reference_id = Some(id.into());
        self
    }

    pub(crate) fn to_item(&self) -> Result<SearchItem, OpsError> {
        let mut item = SearchItem::new(self.query.clone());
        if let Some(r) = &self.reference_id {
            item = item.reference_id(r.clone());
        }
        if let Some(t) = &self.record_type {
            item = item.record_type(dci_protocol::codes::RecordType::parse_lenient(t));
        }
        if let Some(t) = &self.event_type {
            item = item.event_type(dci_protocol::codes::EventType::parse_lenient(t));
        }
        for (a, o) in &self.sort {
            item = item.sort(a.clone(), o.clone());
        }
        match (self.page, self.page_size) {
            (None, None) => {}
            (Some(0), _) => {
                return Err(OpsError::invalid(
                    "page",
                    "pages are numbered from 1: the first page is page 1",
                ));
            }
            (page, Some(size)) => item = item.page(page.unwrap_or(1), size),
            (Some(_), None) => {
                return Err(OpsError::invalid(
                    "page_size",
                    "a page number needs a page size: set page_size too",
                ));
            }
        }
        if let Some(c) = &self.consent {
            item = item.consent(c.clone());
        }
        if let Some(a) = &self.authorize {
            item = item.authorize(a.clone());
        }
        if let Some(l) = &self.locale {
            item = item.locale(l.clone());
        }
        Ok(item)
    }
}

/// A search message: one or more criteria sent together (`total_count` = number of items).
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct SearchQuery {
    /// The items, in order.
    pub items: Vec<SearchSpec>,
    /// `message.transaction_id` (default: a fresh UUID).
    pub transaction_id: Option<String>,
}

impl SearchQuery {
    /// A message with one search.
    pub fn one(spec: SearchSpec) -> SearchQuery {
        SearchQuery {
            items: vec![spec],
            transaction_id: None,
        }
    }

    /// A message with several searches.
    pub fn many(specs: impl IntoIterator<Item = SearchSpec>) -> SearchQuery {
        SearchQuery {
            items: specs.into_iter().collect(),
            transaction_id: None,
        }
    }

    /// Uses this transaction id.
    pub fn transaction_id(mut self, id: impl Into<String>) -> Self {
        self.transaction_id = Some(id.into());
        self
    }

    pub(crate) fn to_items(&self) -> Result<Vec<SearchItem>, OpsError> {
        if self.items.is_empty() {
            return Err(OpsError::invalid("query", "give at least one search"));
        }
        self.items.iter().map(SearchSpec::to_item).collect()
    }
}

impl From<SearchSpec> for SearchQuery {
    fn from(s: SearchSpec) -> Self {
        SearchQuery::one(s)
    }
}

/// A subscription request.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct SubscribeSpec {
    /// `reg_event_type` (e.g. `LiveBirth`, `REGISTER`).
    pub event_type: String,
    /// The filter (default: an empty expression, i.e. every record where the registry allows it).
    pub filter: Query,
    /// `notify_record_type` (default `Person`).
    pub notify_record_type: String,
    /// `message.transaction_id` (default: fresh).
    pub transaction_id: Option<String>,
}

impl SubscribeSpec {
    /// Subscribe to `event_type` for records matching `filter`. The filter JSON is a predicate
    /// (array or one clause), an expression (`{type, value}` or a bare document) or
    /// `{"type": "UIN", "value": "…"}`; `None` sends an empty expression (every record, where the
    /// registry accepts that).
    pub fn new(event_type: impl Into<String>, filter: Option<Value>) -> Result<Self, OpsError> {
        let filter = match filter {
            None => Query::Expression {
                expression_type: EXPRESSION_TYPE.into(),
                value: serde_json::Map::from_iter([(
                    "expression".to_owned(),
                    json!({"query": {}}),
                )]),
            },
            Some(v) => parse_filter(v)?,
        };
        Ok(SubscribeSpec {
            event_type: event_type.into(),
            filter,
            notify_record_type: "Person".into(),
            transaction_id: None,
        })
    }

    /// `notify_record_type`.
    pub fn notify_record_type(mut self, t: impl Into<String>) -> Self {
        self.notify_record_type = t.into();
        self
    }

    pub(crate) fn to_item(&self) -> SubscribeItem {
        SubscribeItem::new(
            dci_protocol::codes::EventType::parse_lenient(&self.event_type),
            self.filter.clone(),
            dci_protocol::codes::RecordType::parse_lenient(&self.notify_record_type),
        )
    }
}

/// What a transaction-status request asks about.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct TxnStatusQuery {
    /// Kind of the transaction asked about (default `search`).
    pub txn_type: TxnType,
    /// The lookup.
    pub lookup: TxnLookup,
}

impl TxnStatusQuery {
    /// The status of our transaction `transaction_id` (a search by default).
    pub fn transaction(transaction_id: impl Into<String>) -> TxnStatusQuery {
        TxnStatusQuery {
            txn_type: TxnType::Search,
            lookup: TxnLookup::TransactionId(transaction_id.into()),
        }
    }

    /// Of this kind of transaction.
    pub fn txn_type(mut self, t: TxnType) -> Self {
        self.txn_type = t;
        self
    }
}

fn parse_id(s: &str) -> Result<Query, OpsError> {
    match s.split_once(':') {
        Some((t, v)) if !t.trim().is_empty() && !v.trim().is_empty() => {
            Ok(Query::id(t.trim().to_owned(), v.trim().to_owned()))
        }
        _ => Err(OpsError::invalid(
            "id",
            format!("{s:?} is not TYPE:VALUE; write it like UIN:1234567890"),
        )),
    }
}

fn parse_expression(v: Value) -> Result<Query, OpsError> {
    let Value::Object(m) = v else {
        return Err(OpsError::invalid(
            "expression",
            "must be a JSON object such as {\"$and\": [{\"poverty_score\": {\"$lt\": 5}}]}",
        ));
    };
    if let (Some(Value::String(t)), Some(Value::Object(val))) = (m.get("type"), m.get("value")) {
        return Ok(Query::Expression {
            expression_type: t.clone(),
            value: val.clone(),
        });
    }
    if m.is_empty() {
        return Err(OpsError::invalid("expression", "must not be empty"));
    }
    Ok(Query::Expression {
        expression_type: EXPRESSION_TYPE.into(),
        value: serde_json::Map::from_iter([(
            "expression".to_owned(),
            json!({ "query": Value::Object(m) }),
        )]),
    })
}

fn parse_predicate(v: Value) -> Result<Query, OpsError> {
    let clauses = match v {
        Value::Array(a) => a,
        o @ Value::Object(_) => vec![o],
        _ => {
            return Err(OpsError::invalid(
                "predicate",
                "must be an array of clauses like [{\"expression1\": {\"attribute_name\": \"age\", \"operator\": \"lt\", \"attribute_value\": 25}}]",
            ));
        }
    };
    if clauses.is_empty() {
        return Err(OpsError::invalid("predicate", "needs at least one clause"));
    }
    let mut out = Vec::new();
    for (i, c) in clauses.into_iter().enumerate() {
        let clause: PredicateClause = serde_json::from_value(c).map_err(|e| {
            OpsError::invalid(
                format!("predicate[{i}]"),
                format!(
                    "{e}; a clause is {{\"expression1\": {{\"attribute_name\", \"operator\" (gt lt eq ge le in), \"attribute_value\"}}, \"condition\"?: and|or|not, \"expression2\"?: {{…}}}}"
                ),
            )
        })?;
        out.push(clause);
    }
    Ok(Query::Predicate(out))
}

fn parse_filter(v: Value) -> Result<Query, OpsError> {
    match &v {
        Value::Array(_) => parse_predicate(v),
        Value::Object(m) if m.contains_key("expression1") => parse_predicate(v),
        Value::Object(m)
            if m.get("type").is_some_and(Value::is_string)
                && m.get("value").is_some_and(|x| !x.is_object()) =>
        {
            Ok(Query::id(
                m["type"].as_str().unwrap_or_default().to_owned(),
                m["value"].clone(),
            ))
        }
        Value::Object(_) => parse_expression(v),
        _ => Err(OpsError::invalid(
            "filter",
            "must be a JSON predicate (array), expression object or {\"type\", \"value\"}",
        )),
    }
}

fn date_range(attribute: &str, from: Option<&str>, to: Option<&str>) -> Result<Query, OpsError> {
    if attribute.trim().is_empty() {
        return Err(OpsError::invalid(
            "attribute",
            "name the date attribute, e.g. event_date",
        ));
    }
    let expr = |op: Operator, v: &str| PredicateExpression {
        attribute_name: attribute.to_owned(),
        operator: op,
        attribute_value: Value::String(v.to_owned()),
    };
    let clause = match (from, to) {
        (Some(f), Some(t)) => PredicateClause {
            seq_num: Some(json!(1)),
            expression1: expr(Operator::Ge, f),
            condition: Some(Condition::And),
            expression2: Some(expr(Operator::Le, t)),
        },
        (Some(f), None) => PredicateClause {
            seq_num: Some(json!(1)),
            expression1: expr(Operator::Ge, f),
            condition: None,
            expression2: None,
        },
        (None, Some(t)) => PredicateClause {
            seq_num: Some(json!(1)),
            expression1: expr(Operator::Le, t),
            condition: None,
            expression2: None,
        },
        (None, None) => {
            return Err(OpsError::invalid(
                "date_range",
                "give a start, an end or both (YYYY-MM-DD)",
            ));
        }
    };
    Ok(Query::Predicate(vec![clause]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_parses_type_and_value() {
        let s = SearchSpec::by_id("UIN:12:34").unwrap();
        assert_eq!(s.query.to_json(), json!({"type": "UIN", "value": "12:34"}));
        let e = SearchSpec::by_id("1234").unwrap_err();
        assert!(e.to_string().starts_with("id:"), "{e}");
    }

    #[test]
    fn expression_wraps_a_bare_document() {
        let s = SearchSpec::expression(json!({"$and": [{"age": {"$lt": 5}}]})).unwrap();
        assert_eq!(
            s.query.to_json(),
            json!({"type": EXPRESSION_TYPE, "value": {"expression": {"query": {"$and": [{"age": {"$lt": 5}}]}}}})
        );
        let wire = json!({"type": "ns:org:QueryType:NoSql", "value": {"a": 1}});
        assert_eq!(
            SearchSpec::expression(wire.clone())
                .unwrap()
                .query
                .to_json(),
            wire
        );
    }

    #[test]
    fn predicate_errors_name_the_clause() {
        let e =
            SearchSpec::predicate(json!([{"expression1": {"attribute_name": "a"}}])).unwrap_err();
        assert!(e.to_string().starts_with("predicate[0]"), "{e}");
    }

    #[test]
    fn date_range_is_ge_and_le() {
        let s =
            SearchSpec::date_range("event_date", Some("2020-01-01"), Some("2020-12-31")).unwrap();
        let j = s.query.to_json();
        assert_eq!(j[0]["expression1"]["operator"], "ge");
        assert_eq!(j[0]["expression2"]["operator"], "le");
        assert_eq!(j[0]["condition"], "and");
    }

    #[test]
    fn page_zero_is_refused() {
        let e = SearchSpec::by_id("UIN:1")
            .unwrap()
            .page(0, 10)
            .to_item()
            .unwrap_err();
        assert!(e.to_string().starts_with("page:"), "{e}");
    }
}
