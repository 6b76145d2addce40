//! Query evaluation over the seeded records: `idtype-value`, Mongo-style `expression`,
//! `predicate` (with an `event_date` range), sort and pagination.
//!
//! Parsing is lenient on purpose (operators with or without `$`, `gte`/`lte` beside `ge`/`le`,
//! numbers as strings, a single predicate object where an array is expected), because a sandbox
//! that rejects the real world's variants teaches clients nothing.

use std::cmp::Ordering;

use serde_json::Value;

use crate::data::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(
            match s.trim_start_matches('$').to_ascii_lowercase().as_str() {
                "eq" | "=" | "==" => Op::Eq,
                "ne" | "neq" | "!=" => Op::Ne,
                "lt" | "<" => Op::Lt,
                "le" | "lte" | "<=" => Op::Le,
                "gt" | ">" => Op::Gt,
                "ge" | "gte" | ">=" => Op::Ge,
                "in" => Op::In,
                _ => return None,
            },
        )
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Id { id_type: String, value: String },
    Cond { attr: String, op: Op, value: Value },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    True,
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn first_str<'a>(obj: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter()
        .find_map(|k| obj.get(*k))
        .filter(|v| !v.is_null())
}

/// Parses `query` according to `query_type`; the error is the reason for `rjct.search_criteria.invalid`.
pub(crate) fn parse_query(query_type: &str, query: &Value) -> Result<Expr, String> {
    match query_type {
        "idtype-value" => {
            let id_type = first_str(query, &["type", "id_type", "identifier_type"])
                .and_then(scalar_string)
                .ok_or("query.type is required for query_type idtype-value (e.g. \"UIN\")")?;
            let value = first_str(query, &["value", "id_value", "identifier_value"])
                .ok_or("query.value is required for query_type idtype-value")?;
            let value = scalar_string(value)
                .or_else(|| value.get("value").and_then(scalar_string))
                .ok_or("query.value must be a string or number")?;
            Ok(Expr::Id { id_type: id_type.to_ascii_uppercase(), value })
        }
        "predicate" => parse_predicate(query),
        "expression" => {
            // {type, value: {expression: {collection, query: {...}}}} per the spec examples, but
            // accept the Mongo document at any of the levels real clients put it.
            let value = query.get("value").unwrap_or(query);
            let doc = value
                .get("expression")
                .map(|e| e.get("query").unwrap_or(e))
                .or_else(|| value.get("query"))
                .unwrap_or(value);
            if !doc.is_object() {
                return Err("query.value.expression.query must be an object such as {\"$and\": [{\"poverty_score\": {\"$lt\": 5}}]}".into());
            }
            parse_mongo(doc)
        }
        "graphql" => Err("query_type graphql is not supported by the sandbox: use idtype-value, expression or predicate".into()),
        other => Err(format!(
            "unknown query_type {other:?}: use idtype-value, expression or predicate"
        )),
    }
}

fn parse_cond(e: &Value, what: &str) -> Result<Expr, String> {
    let attr = e
        .get("attribute_name")
        .and_then(Value::as_str)
        .ok_or(format!("{what}.attribute_name is required"))?;
    let op_s = e.get("operator").and_then(Value::as_str).ok_or(format!(
        "{what}.operator is required (gt, lt, eq, ge, le, in)"
    ))?;
    let op = Op::parse(op_s).ok_or(format!(
        "{what}.operator {op_s:?} is not one of gt, lt, eq, ge, le, in"
    ))?;
    let value = e
        .get("attribute_value")
        .cloned()
        .ok_or(format!("{what}.attribute_value is required"))?;
    Ok(Expr::Cond {
        attr: attr.to_owned(),
        op,
        value,
    })
}

fn parse_predicate(query: &Value) -> Result<Expr, String> {
    let items: Vec<&Value> = match query {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![query],
        _ => return Err("query must be an array of predicates for query_type predicate".into()),
    };
    if items.is_empty() {
        return Err("query must contain at least one predicate".into());
    }
    let mut sorted: Vec<(f64, &Value)> = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let seq = v
                .get("seq_num")
                .and_then(|s| {
                    s.as_f64()
                        .or_else(|| s.as_str().and_then(|s| s.parse().ok()))
                })
                .unwrap_or(i as f64);
            (seq, v)
        })
        .collect();
    sorted.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    let mut all = Vec::new();
    for (i, (_, item)) in sorted.into_iter().enumerate() {
        let what = format!("query[{i}]");
        // A bare {attribute_name, operator, attribute_value} (IBR's enrolled sample) is one condition.
        let e1 = match item.get("expression1") {
            Some(e) => parse_cond(e, &format!("{what}.expression1"))?,
            None => parse_cond(item, &what)?,
        };
        let expr = match (
            item.get("condition").and_then(Value::as_str),
            item.get("expression2"),
        ) {
            (_, None) | (_, Some(Value::Null)) => e1,
            (cond, Some(e)) => {
                let e2 = parse_cond(e, &format!("{what}.expression2"))?;
                match cond.unwrap_or("and").to_ascii_lowercase().as_str() {
                    "and" => Expr::And(vec![e1, e2]),
                    "or" => Expr::Or(vec![e1, e2]),
                    "not" => Expr::And(vec![e1, Expr::Not(Box::new(e2))]),
                    c => return Err(format!("{what}.condition {c:?} is not one of and, or, not")),
                }
            }
        };
        all.push(expr);
    }
    Ok(Expr::And(all))
}

fn parse_mongo(doc: &Value) -> Result<Expr, String> {
    let obj = doc.as_object().ok_or("an expression must be an object")?;
    let mut all = Vec::new();
    for (k, v) in obj {
        let key = k.trim_start_matches('$').to_ascii_lowercase();
        match key.as_str() {
            "and" | "or" => {
                let parts = v
                    .as_array()
                    .ok_or(format!("${key} takes an array of expressions"))?
                    .iter()
                    .map(parse_mongo)
                    .collect::<Result<Vec<_>, _>>()?;
                all.push(if key == "and" {
                    Expr::And(parts)
                } else {
                    Expr::Or(parts)
                });
            }
            "not" => all.push(Expr::Not(Box::new(parse_mongo(v)?))),
            // A document may name the collection beside the query; it is not a condition.
            "collection" => {}
            "query" => all.push(parse_mongo(v)?),
            _ => match v {
                Value::Object(ops)
                    if ops.keys().all(|o| Op::parse(o).is_some()) && !ops.is_empty() =>
                {
                    for (o, val) in ops {
                        let op = Op::parse(o).unwrap_or(Op::Eq);
                        all.push(Expr::Cond {
                            attr: k.clone(),
                            op,
                            value: val.clone(),
                        });
                    }
                }
                Value::Object(ops) => {
                    let bad: Vec<_> = ops.keys().filter(|o| Op::parse(o).is_none()).collect();
                    return Err(format!(
                        "unknown operator {bad:?} on {k:?}: use $eq, $ne, $lt, $lte, $gt, $gte or $in"
                    ));
                }
                _ => all.push(Expr::Cond {
                    attr: k.clone(),
                    op: Op::Eq,
                    value: v.clone(),
                }),
            },
        }
    }
    Ok(if all.is_empty() {
        Expr::True
    } else {
        Expr::And(all)
    })
}

fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10 && b[4] == b'-' && b[7] == b'-' && b[..4].iter().all(u8::is_ascii_digit)
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Orders two scalars leniently: numbers (also as strings), dates by their day, else text.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x.partial_cmp(&y);
    }
    let (x, y) = (scalar_string(a)?, scalar_string(b)?);
    if looks_like_date(&x) && looks_like_date(&y) {
        return Some(x[..10].cmp(&y[..10]));
    }
    Some(x.to_lowercase().cmp(&y.to_lowercase()))
}

fn test_op(actual: &Value, op: Op, expected: &Value) -> bool {
    if let Value::Array(items) = actual {
        return match op {
            Op::Ne => items.iter().all(|a| test_op(a, Op::Ne, expected)),
            _ => items.iter().any(|a| test_op(a, op, expected)),
        };
    }
    if actual.is_null() {
        return false;
    }
    match op {
        Op::In => {
            let options: Vec<Value> = match expected {
                Value::Array(a) => a.clone(),
                Value::String(s) => s
                    .split(',')
                    .map(|x| Value::String(x.trim().to_owned()))
                    .collect(),
                other => vec![other.clone()],
            };
            options
                .iter()
                .any(|o| compare(actual, o) == Some(Ordering::Equal))
        }
        _ => match compare(actual, expected) {
            Some(ord) => match op {
                Op::Eq => ord == Ordering::Equal,
                Op::Ne => ord != Ordering::Equal,
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
                Op::Gt => ord == Ordering::Greater,
                Op::Ge => ord != Ordering::Less,
                Op::In => false,
            },
            None => op == Op::Ne,
        },
    }
}

/// Looks up an attribute: the bound vital event, the flat attributes, then a dotted path.
pub(crate) fn lookup(record: &Record, event: Option<&(String, String)>, attr: &str) -> Value {
    match (attr, event) {
        ("event_date", Some(e)) => return Value::String(e.1.clone()),
        ("event_type", Some(e)) => return Value::String(e.0.clone()),
        _ => {}
    }
    if let Some(v) = record.attrs.get(attr) {
        return v.clone();
    }
    let mut cur = vec![&record.json];
    for part in attr.split('.') {
        let mut next = Vec::new();
        for v in cur {
            match v {
                Value::Array(a) => next.extend(a.iter().filter_map(|x| x.get(part))),
                _ => next.extend(v.get(part)),
            }
        }
        cur = next;
    }
    match cur.len() {
        0 => Value::Null,
        1 => cur[0].clone(),
        _ => Value::Array(cur.into_iter().cloned().collect()),
    }
}

fn eval(expr: &Expr, record: &Record, event: Option<&(String, String)>) -> bool {
    match expr {
        Expr::True => true,
        Expr::Id { id_type, value } => record
            .ids
            .iter()
            .any(|(t, v)| t.eq_ignore_ascii_case(id_type) && v == value),
        Expr::Cond { attr, op, value } => test_op(&lookup(record, event, attr), *op, value),
        Expr::And(parts) => parts.iter().all(|p| eval(p, record, event)),
        Expr::Or(parts) => parts.iter().any(|p| eval(p, record, event)),
        Expr::Not(p) => !eval(p, record, event),
    }
}

/// Normalises a `reg_event_type` (`LiveBirth`, `spdci-common:RegistryEventType:Death`, `birth`…)
/// to the event names the records use.
pub(crate) fn event_kind(s: &str) -> String {
    let last = s
        .rsplit(':')
        .next()
        .unwrap_or(s)
        .to_ascii_lowercase()
        .replace(['_', '-', ' '], "");
    match last.as_str() {
        "livebirth" | "birth" => "live_birth".into(),
        other => other.into(),
    }
}

/// Whether `record` matches; with vital events, one event must satisfy the whole expression.
pub(crate) fn matches(expr: &Expr, record: &Record, event_kind: Option<&str>) -> bool {
    let events: Vec<&(String, String)> = record
        .events
        .iter()
        .filter(|e| event_kind.is_none_or(|k| e.0 == k))
        .collect();
    if events.is_empty() {
        return event_kind.is_none() && eval(expr, record, None);
    }
    events.into_iter().any(|e| eval(expr, record, Some(e)))
}

/// The sort keys of `[{attribute_name, sort_order}]` (or one such object): `(name, descending)`.
pub(crate) fn sort_keys(sort: &Value) -> Vec<(String, bool)> {
    match sort {
        Value::Array(a) => a.iter().collect::<Vec<_>>(),
        Value::Object(_) => vec![sort],
        _ => Vec::new(),
    }
    .into_iter()
    .filter_map(|s| {
        let name = s.get("attribute_name")?.as_str()?.to_owned();
        let desc = s.get("sort_order").and_then(Value::as_str) == Some("desc");
        Some((name, desc))
    })
    .collect()
}

/// A record's values of the sort keys, looked up once so that sorting renders nothing.
pub(crate) fn sort_values(record: &Record, keys: &[(String, bool)]) -> Vec<Value> {
    keys.iter()
        .map(|(name, _)| lookup(record, None, name))
        .collect()
}

/// Orders two records by their [`sort_values`]; unknown (null) values sort last.
pub(crate) fn compare_sort_values(x: &[Value], y: &[Value], keys: &[(String, bool)]) -> Ordering {
    for ((a, b), (_, desc)) in x.iter().zip(y).zip(keys) {
        let ord = match (a.is_null(), b.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => {
                let o = compare(a, b).unwrap_or(Ordering::Equal);
                if *desc { o.reverse() } else { o }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// A page request: `(page_size, page_number)`, 1-based.
pub(crate) fn pagination(p: Option<&Value>, default_size: usize) -> Result<(usize, usize), String> {
    let Some(p) = p.filter(|p| !p.is_null() && *p != "") else {
        return Ok((default_size, 1));
    };
    let num = |field: &str| -> Result<Option<i64>, String> {
        match p.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => as_number(v)
                .filter(|n| n.fract() == 0.0)
                .map(|n| Some(n as i64))
                .ok_or(format!(
                    "pagination.{field} must be a whole number, got {v}"
                )),
        }
    };
    let size = num("page_size")?.unwrap_or(default_size as i64);
    let page = num("page_number")?.unwrap_or(1);
    if size <= 0 {
        return Err(format!(
            "pagination.page_size must be at least 1, got {size}"
        ));
    }
    if page <= 0 {
        return Err(format!(
            "pagination.page_number is 1-based and must be at least 1, got {page}"
        ));
    }
    Ok((size as usize, page as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec() -> Record {
        let mut attrs = serde_json::Map::new();
        attrs.insert("poverty_score".into(), json!(3.5));
        attrs.insert("programme".into(), json!(["A", "B"]));
        Record {
            ids: vec![("UIN".into(), "123".into())],
            attrs,
            events: vec![
                ("live_birth".into(), "1990-05-01".into()),
                ("death".into(), "2020-02-02".into()),
            ],
            json: json!({"name": {"surname": "Banda"}}),
        }
    }

    #[test]
    fn queries_match_leniently() {
        let r = rec();
        let q = parse_query("idtype-value", &json!({"type": "uin", "value": 123})).unwrap();
        assert!(matches(&q, &r, None));
        let q = parse_query("expression", &json!({"type": "x", "value": {"expression": {"collection": "G", "query": {"$and": [{"poverty_score": {"$lt": 5}}, {"name.surname": "banda"}]}}}})).unwrap();
        assert!(matches(&q, &r, None));
        let q = parse_query("predicate", &json!([{"seq_num": 1, "expression1": {"attribute_name": "event_date", "operator": "ge", "attribute_value": "2020-01-01"}, "condition": "and", "expression2": {"attribute_name": "event_date", "operator": "le", "attribute_value": "2020-12-31"}}])).unwrap();
        assert!(matches(&q, &r, None));
        assert!(matches(&q, &r, Some("death")));
        assert!(!matches(&q, &r, Some("live_birth")));
        let q = parse_query(
            "predicate",
            &json!({"attribute_name": "programme", "operator": "eq", "attribute_value": "B"}),
        )
        .unwrap();
        assert!(matches(&q, &r, None));
        assert!(parse_query("predicate", &json!([{"expression1": {"attribute_name": "a", "operator": "like", "attribute_value": 1}}])).unwrap_err().contains("like"));
        assert!(pagination(Some(&json!({"page_size": 0})), 10).is_err());
        assert!(pagination(Some(&json!({"page_size": "5", "page_number": 0})), 10).is_err());
        assert_eq!(
            pagination(Some(&json!({"page_size": "5"})), 10).unwrap(),
            (5, 1)
        );
    }
}
