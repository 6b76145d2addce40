//! Inbound leniency: real registries and the spec's own samples send `"total_count": "1"`,
//! `"consent": ""`, a single object where an array belongs, numeric ids, and so on. Before typed
//! deserialisation, [`normalize`] repairs those shapes at the protocol's own keys and reports
//! each repair as a [`Tolerated`], so callers can log what a peer got wrong.
//!
//! Registry data (`reg_records`, `query`, `filter`, `consent`, `meta`, …) is never touched.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use crate::error::ParseError;

/// One repair made while parsing inbound JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tolerated {
    /// Where, e.g. `message.search_request`.
    pub path: String,
    /// What was wrong and what was done.
    pub what: String,
}

impl std::fmt::Display for Tolerated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.what)
    }
}

/// A parsed value and the repairs that were needed to parse it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lenient<T> {
    /// The parsed value.
    pub value: T,
    /// What was tolerated (empty when the input was well-formed).
    pub tolerated: Vec<Tolerated>,
}

/// Numbers that peers send as strings.
const NUMERIC_KEYS: &[&str] = &[
    "total_count",
    "completed_count",
    "page_size",
    "page_number",
    "seq_num",
];

/// Identifiers that peers send as numbers.
const STRING_KEYS: &[&str] = &[
    "message_id",
    "transaction_id",
    "reference_id",
    "correlation_id",
    "sender_id",
    "receiver_id",
    "code",
];

/// Booleans that peers send as strings.
const BOOL_KEYS: &[&str] = &["is_msg_encrypted"];

/// Optional fields where `""` means "absent" (objects, codes and enums).
const EMPTY_AS_ABSENT_KEYS: &[&str] = &[
    "consent",
    "authorize",
    "meta",
    "pagination",
    "frequency",
    "error",
    "data",
    "status_reason_code",
    "status_reason_message",
    "reg_type",
    "reg_record_type",
    "reg_event_type",
    "response_entity",
    "locale",
    "sender_uri",
    "receiver_id",
    "signature",
    "version",
    "filter_type",
    "sort",
];

/// Arrays that peers send as a single object.
const ARRAY_KEYS: &[&str] = &[
    "search_request",
    "search_response",
    "subscribe_request",
    "subscribe_response",
    "notify_event",
    "subscriptions",
    "subscription_codes",
    "subscription_status",
    "sort",
    "disabled_response",
    "enrolled_response",
    "errors",
];

/// Registry data: opaque, never rewritten.
const OPAQUE_KEYS: &[&str] = &[
    "reg_records",
    "query",
    "filter",
    "consent",
    "authorize",
    "meta",
    "attribute_value",
    "beneficiaries",
    "txn_status",
    "value",
];

/// Repairs known shape deviations in place and reports them.
pub fn normalize(v: &mut Value) -> Vec<Tolerated> {
    let mut out = Vec::new();
    let mut path = String::new();
    walk(v, &mut path, &mut out);
    out
}

/// Whether [`normalize`] would repair anything in `v` (the same checks, read-only), so that a
/// well-formed value can be read as it is, without the copy normalising needs.
pub fn needs_repair(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(key, value)| {
            let k = key.as_str();
            (EMPTY_AS_ABSENT_KEYS.contains(&k) && value.as_str() == Some(""))
                || (NUMERIC_KEYS.contains(&k) && value.as_str().and_then(number_from_str).is_some())
                || (STRING_KEYS.contains(&k) && value.is_number())
                || (BOOL_KEYS.contains(&k)
                    && value.as_str().is_some_and(|s| bool_from_str(s).is_some()))
                || (ARRAY_KEYS.contains(&k) && (value.is_object() || value.is_string()))
                || (!OPAQUE_KEYS.contains(&k) && needs_repair(value))
        }),
        Value::Array(items) => items.iter().any(needs_repair),
        _ => false,
    }
}

fn bool_from_str(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Walks `v` at `path` (one buffer for the whole walk, restored on return).
fn walk(v: &mut Value, path: &mut String, out: &mut Vec<Tolerated>) {
    match v {
        Value::Object(map) => walk_object(map, path, out),
        Value::Array(items) => {
            let len = path.len();
            for (i, item) in items.iter_mut().enumerate() {
                let _ = write!(path, "[{i}]");
                walk(item, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn walk_object(map: &mut Map<String, Value>, path: &mut String, out: &mut Vec<Tolerated>) {
    let len = path.len();
    let mut absent: Vec<String> = Vec::new();
    for (key, value) in map.iter_mut() {
        let k = key.as_str();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(k);
        if EMPTY_AS_ABSENT_KEYS.contains(&k) && value.as_str() == Some("") {
            // Removed after the walk (in this order), which leaves the same map.
            absent.push(key.clone());
            out.push(Tolerated {
                path: path.clone(),
                what: "empty string treated as absent".into(),
            });
            path.truncate(len);
            continue;
        }
        if NUMERIC_KEYS.contains(&k)
            && let Value::String(s) = value
            && let Some(n) = number_from_str(s)
        {
            out.push(Tolerated {
                path: path.clone(),
                what: format!("number sent as string {s:?}"),
            });
            *value = Value::Number(n);
        }
        if STRING_KEYS.contains(&k)
            && let Value::Number(n) = value
        {
            out.push(Tolerated {
                path: path.clone(),
                what: format!("identifier sent as number {n}"),
            });
            *value = Value::String(n.to_string());
        }
        if BOOL_KEYS.contains(&k)
            && let Value::String(s) = value
            && let Some(b) = bool_from_str(s)
        {
            out.push(Tolerated {
                path: path.clone(),
                what: format!("boolean sent as string {s:?}"),
            });
            *value = Value::Bool(b);
        }
        if ARRAY_KEYS.contains(&k) && (value.is_object() || value.is_string()) {
            out.push(Tolerated {
                path: path.clone(),
                what: "a single value where an array is expected; wrapped in an array".into(),
            });
            let single = value.take();
            *value = Value::Array(vec![single]);
        }
        if !OPAQUE_KEYS.contains(&k) {
            walk(value, path, out);
        }
        path.truncate(len);
    }
    for k in absent {
        map.remove(&k);
    }
}

fn number_from_str(s: &str) -> Option<Number> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(u.into());
    }
    t.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(|f| {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Some(Number::from(f as i64))
            } else {
                Number::from_f64(f)
            }
        })
}

/// Normalises `v` and deserialises it as `T`, with the JSON path of any remaining error.
pub fn from_value<T: DeserializeOwned>(mut v: Value) -> Result<Lenient<T>, ParseError> {
    let tolerated = normalize(&mut v);
    let value = serde_path_to_error::deserialize(v).map_err(ParseError::from_path_error)?;
    Ok(Lenient { value, tolerated })
}

/// Parses JSON text leniently as `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<Lenient<T>, ParseError> {
    let v: Value = serde_json::from_slice(bytes).map_err(ParseError::from_json)?;
    from_value(v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn repairs_are_reported() {
        let mut v = json!({
            "header": {"total_count": "1", "meta": "", "is_msg_encrypted": "false"},
            "message": {
                "search_request": {"reference_id": "r", "search_criteria": {"consent": "",
                    "pagination": {"page_size": "10"}, "query": {"total_count": "7"}}},
                "reg_records": {"page_size": "x"}
            }
        });
        let t = normalize(&mut v);
        assert_eq!(v["header"]["total_count"], 1);
        assert_eq!(v["header"]["is_msg_encrypted"], false);
        assert!(v["header"].get("meta").is_none());
        assert!(v["message"]["search_request"].is_array());
        assert_eq!(
            v["message"]["search_request"][0]["search_criteria"]["pagination"]["page_size"],
            10
        );
        // Registry data is left alone.
        assert_eq!(
            v["message"]["search_request"][0]["search_criteria"]["query"]["total_count"],
            "7"
        );
        assert_eq!(v["message"]["reg_records"]["page_size"], "x");
        let paths: Vec<&str> = t.iter().map(|t| t.path.as_str()).collect();
        assert!(paths.contains(&"header.total_count"));
        assert!(paths.contains(&"message.search_request"));
        assert!(paths.contains(&"message.search_request[0].search_criteria.consent"));
        assert_eq!(t.len(), 6, "{t:?}");
    }

    #[test]
    fn needs_repair_says_what_normalize_would_do() {
        let well_formed = json!({
            "header": {"message_id": "m", "total_count": 1, "is_msg_encrypted": false},
            "message": {"transaction_id": "t", "search_response": [{"reference_id": "r",
                "data": {"reg_records": [{"total_count": "x", "meta": ""}]},
                "pagination": {"page_size": 10, "page_number": 1, "total_count": 1}}]}
        });
        let cases = [
            well_formed.clone(),
            json!({"header": {"total_count": "1"}}),
            json!({"header": {"total_count": "many"}}),
            json!({"header": {"meta": ""}}),
            json!({"header": {"meta": "x"}}),
            json!({"header": {"message_id": 7}}),
            json!({"header": {"is_msg_encrypted": "false"}}),
            json!({"header": {"is_msg_encrypted": "maybe"}}),
            json!({"message": {"search_response": {"reference_id": "r"}}}),
            json!({"message": {"search_response": "r"}}),
            json!({"message": {"search_response": [{"pagination": {"page_size": "10"}}]}}),
            json!({"message": {"search_response": [{"data": {"reg_records": {"page_size": "1"}}}]}}),
            json!([{"reference_id": 1}]),
            json!("plain"),
        ];
        for v in cases {
            let mut copy = v.clone();
            let repaired = !normalize(&mut copy).is_empty();
            assert_eq!(needs_repair(&v), repaired, "{v}");
        }
        assert!(!needs_repair(&well_formed));
    }
}
