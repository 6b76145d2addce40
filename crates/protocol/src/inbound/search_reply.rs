//! A sync search reply read with its records left as the registry's JSON text.
//!
//! A reply's records are registry data the client hands on (to its caller, into an answer, a
//! file) far more often than it reads them. [`search_reply`] reads a reply into a `Value` as
//! [`super::json_value`] does, except that each `message.search_response` item's
//! `data.reg_records` list is kept as the text of each record ([`RawValue`]), with `null` left
//! in its place: the records are checked as JSON but not built as maps, and hand on as sent
//! (the same bytes, the fields in the registry's order).

use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

/// The scalar `visit_*` methods of a visitor whose value is `$out`: each builds the `Value`
/// serde_json's own would, then `$wrap`s it.
macro_rules! scalars {
    ($out:ty, $wrap:expr) => {
        fn visit_bool<E>(self, v: bool) -> Result<$out, E> {
            Ok($wrap(Value::Bool(v)))
        }

        fn visit_i64<E>(self, v: i64) -> Result<$out, E> {
            Ok($wrap(Value::Number(v.into())))
        }

        fn visit_u64<E>(self, v: u64) -> Result<$out, E> {
            Ok($wrap(Value::Number(v.into())))
        }

        fn visit_f64<E>(self, v: f64) -> Result<$out, E> {
            Ok($wrap(
                Number::from_f64(v).map_or(Value::Null, Value::Number),
            ))
        }

        fn visit_str<E>(self, v: &str) -> Result<$out, E> {
            Ok($wrap(Value::String(v.to_owned())))
        }

        fn visit_string<E>(self, v: String) -> Result<$out, E> {
            Ok($wrap(Value::String(v)))
        }

        fn visit_unit<E>(self) -> Result<$out, E> {
            Ok($wrap(Value::Null))
        }

        fn visit_none<E>(self) -> Result<$out, E> {
            Ok($wrap(Value::Null))
        }
    };
}

/// A search reply as [`search_reply`] reads it.
#[derive(Debug, Clone)]
pub struct SearchReply {
    /// The reply, with each search-response item's `data.reg_records` `null`.
    pub envelope: Value,
    /// One entry per item of `message.search_response` (an object is one item), in order:
    /// the item's `data.reg_records`, when it had them.
    pub records: Vec<Option<RegRecords>>,
}

/// One item's `data.reg_records`, set aside.
#[derive(Debug, Clone)]
pub enum RegRecords {
    /// A list: each record's JSON text, as sent.
    List(Vec<Box<RawValue>>),
    /// Anything else (an object — one record, or `{}` for none —, `null`, a scalar), parsed.
    Other(Value),
}

impl RegRecords {
    /// As `Value`, the way [`super::json_value`] would have read it.
    pub fn to_value(&self) -> Value {
        match self {
            RegRecords::List(list) => Value::Array(list.iter().map(|r| parse_raw(r)).collect()),
            RegRecords::Other(v) => v.clone(),
        }
    }
}

/// A record's text as `Value`. It was read as JSON once, so this does not fail; should it
/// (a nesting deeper than serde_json's limit), the text is kept as a string.
pub fn parse_raw(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::String(raw.get().to_owned()))
}

impl SearchReply {
    /// The reply whole, as [`super::json_value`] would have read it.
    pub fn whole(&self) -> Value {
        let mut v = self.envelope.clone();
        for (item, records) in items_mut(&mut v).into_iter().zip(&self.records) {
            if let (Some(slot), Some(records)) = (
                item.get_mut("data").and_then(|d| d.get_mut("reg_records")),
                records,
            ) {
                *slot = records.to_value();
            }
        }
        v
    }
}

/// A reply already read as a whole `Value` (a reply whose signature is checked, a dialect's
/// reply): its records are moved aside as they are, so that both ways of reading a reply give
/// the same shape.
impl From<Value> for SearchReply {
    fn from(mut envelope: Value) -> SearchReply {
        let records = items_mut(&mut envelope)
            .into_iter()
            .map(|item| {
                item.get_mut("data")
                    .and_then(|d| d.get_mut("reg_records"))
                    .map(|r| RegRecords::Other(r.take()))
            })
            .collect();
        SearchReply { envelope, records }
    }
}

/// The items of `message.search_response`, to change in place (an object is one item).
fn items_mut(envelope: &mut Value) -> Vec<&mut Value> {
    match envelope
        .get_mut("message")
        .and_then(|m| m.get_mut("search_response"))
    {
        Some(Value::Array(a)) => a.iter_mut().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    }
}

/// Reads a sync search reply (see the module's description). Errors are those of
/// [`super::json_value`] for the same body.
pub fn search_reply(body: &[u8]) -> serde_json::Result<SearchReply> {
    let Ok(text) = std::str::from_utf8(body) else {
        // Not UTF-8: the byte reader says where (and `RawValue` needs text).
        return serde_json::from_slice(body).map(|envelope| SearchReply {
            envelope,
            records: Vec::new(),
        });
    };
    let mut records = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let envelope = Node {
        at: Level::Root,
        records: &mut records,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(SearchReply { envelope, records })
}

/// Where in the envelope a value is, on the way to the records.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The envelope.
    Root,
    /// `message`.
    Message,
    /// `message.search_response`: a list of items, or one item.
    Items,
    /// One item.
    Item,
    /// An item's `data`.
    Data,
}

/// Reads one value at `at` into a `Value`, setting the records aside into `records`.
struct Node<'a> {
    at: Level,
    records: &'a mut Vec<Option<RegRecords>>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    scalars!(Value, |v| v);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        if self.at == Level::Items {
            // Every element is an item with its slot, objects or not (as the items are
            // counted when the records go back).
            loop {
                self.records.push(None);
                let item = Node {
                    at: Level::Item,
                    records: &mut *self.records,
                };
                match seq.next_element_seed(item)? {
                    Some(v) => out.push(v),
                    None => {
                        self.records.pop();
                        break;
                    }
                }
            }
        } else {
            while let Some(v) = seq.next_element::<Value>()? {
                out.push(v);
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let at = match self.at {
            // `search_response` as one object: one item.
            Level::Items => {
                self.records.push(None);
                Level::Item
            }
            at => at,
        };
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = match (at, key.as_str()) {
                (Level::Root, "message") | (Level::Message, "search_response") => {
                    // A repeated key replaces the earlier one, its items too.
                    self.records.clear();
                    Some(if at == Level::Root {
                        Level::Message
                    } else {
                        Level::Items
                    })
                }
                (Level::Item, "data") => {
                    // A repeated `data` replaces the earlier one, its records too.
                    if let Some(slot) = self.records.last_mut() {
                        *slot = None;
                    }
                    Some(Level::Data)
                }
                (Level::Data, "reg_records") => {
                    let records = map.next_value_seed(Records)?;
                    if let Some(slot) = self.records.last_mut() {
                        *slot = Some(records);
                    }
                    out.insert(key, Value::Null);
                    continue;
                }
                _ => None,
            };
            let value = match child {
                Some(at) => map.next_value_seed(Node {
                    at,
                    records: &mut *self.records,
                })?,
                None => map.next_value::<Value>()?,
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// `data.reg_records`: a list as each record's text, anything else as `Value`.
struct Records;

impl<'de> DeserializeSeed<'de> for Records {
    type Value = RegRecords;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RegRecords, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Records {
    type Value = RegRecords;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("registry records")
    }

    scalars!(RegRecords, RegRecords::Other);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RegRecords, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(r) = seq.next_element::<Box<RawValue>>()? {
            out.push(r);
        }
        Ok(RegRecords::List(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RegRecords, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(RegRecords::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::json_value;

    /// Replies of every shape `message.search_response` comes in, and records that look like
    /// envelopes themselves.
    const REPLIES: &[&str] = &[
        r#"{"header": {"status": "succ"}, "message": {"transaction_id": "t", "search_response": [
            {"reference_id": "r1", "data": {"reg_record_type": "Person",
              "reg_records": [ {"uin": "1", "height": 1.10, "z": null, "a": [1, -2, 3e2]},
                               {"message": {"search_response": [{"data": {"reg_records": [1]}}]}} ]},
             "pagination": {"page_size": 10}},
            {"reference_id": "r2", "status": "rjct"},
            "not an item",
            {"reference_id": "r3", "data": {"reg_records": {"uin": "3"}}},
            {"reference_id": "r4", "data": {"reg_records": {}}},
            {"reference_id": "r5", "data": {"reg_records": null}},
            {"reference_id": "r6", "data": {"reg_records": "odd"}},
            {"reference_id": "r7", "data": "odd"}]}}"#,
        r#"{"header": {}, "message": {"search_response": {"reference_id": "one",
            "data": {"reg_records": [{"uin": "9"}]}}}}"#,
        r#"{"header": {}, "message": {"search_response": [{"data": {"reg_records": [{"x": 1}]}}],
            "search_response": [{"data": {"reg_records": [{"y": 2}]}}, {"data": {}}]}}"#,
        r#"{"header": {"status": "rcvd"}}"#,
        r#"{"header": {}, "message": "encrypted text"}"#,
        r#"[1, 2]"#,
        r#""just a string""#,
    ];

    #[test]
    fn the_whole_reply_is_what_json_value_reads() {
        for body in REPLIES {
            let split = search_reply(body.as_bytes()).unwrap();
            let whole = json_value(body.as_bytes()).unwrap();
            assert_eq!(split.whole(), whole, "{body}");
            assert_eq!(
                split.whole().to_string(),
                whole.to_string(),
                "the same fields in the same order: {body}"
            );
            let moved = SearchReply::from(whole.clone());
            assert_eq!(moved.envelope, split.envelope, "{body}");
            assert_eq!(moved.whole(), whole, "{body}");
        }
    }

    #[test]
    fn records_of_a_list_are_kept_as_sent_and_their_place_left_null() {
        let r = search_reply(REPLIES[0].as_bytes()).unwrap();
        assert_eq!(r.records.len(), 8, "one slot per item, objects or not");
        let Some(RegRecords::List(list)) = &r.records[0] else {
            panic!("a list of records: {:?}", r.records[0]);
        };
        assert_eq!(
            list[0].get(),
            r#"{"uin": "1", "height": 1.10, "z": null, "a": [1, -2, 3e2]}"#,
            "the text as sent"
        );
        assert!(
            list[1]
                .get()
                .starts_with(r#"{"message": {"search_response""#),
            "a record that looks like an envelope is not read into"
        );
        assert!(r.envelope["message"]["search_response"][0]["data"]["reg_records"].is_null());
        assert_eq!(
            r.envelope["message"]["search_response"][0]["data"]["reg_record_type"],
            "Person"
        );
        assert!(r.records[1].is_none() && r.records[2].is_none() && r.records[7].is_none());
        let other = |i: usize| match &r.records[i] {
            Some(RegRecords::Other(v)) => v.clone(),
            x => panic!("item {i}: {x:?}"),
        };
        assert_eq!(other(3), serde_json::json!({"uin": "3"}));
        assert_eq!(other(4), serde_json::json!({}));
        assert_eq!(other(5), Value::Null);
        assert_eq!(other(6), "odd");
    }

    #[test]
    fn one_item_as_an_object_and_a_repeated_key_the_last_counts() {
        let one = search_reply(REPLIES[1].as_bytes()).unwrap();
        assert!(
            matches!(&one.records[..], [Some(RegRecords::List(l))] if l[0].get() == r#"{"uin": "9"}"#)
        );
        let twice = search_reply(REPLIES[2].as_bytes()).unwrap();
        assert_eq!(twice.records.len(), 2, "the second search_response's items");
        assert!(
            matches!(&twice.records[0], Some(RegRecords::List(l)) if l[0].get() == r#"{"y": 2}"#)
        );
        let data_twice = br#"{"message": {"search_response": [
            {"data": {"reg_records": [{"x": 1}]}, "data": {"reg_record_type": "Person"}}]}}"#;
        let r = search_reply(data_twice).unwrap();
        assert!(r.records[0].is_none(), "the second data has no records");
        assert_eq!(r.whole(), json_value(data_twice).unwrap());
    }

    #[test]
    fn bodies_that_are_not_json_fail_as_json_value_fails() {
        for body in [
            &b"{\"header\": {}} trailing"[..],
            b"{\"message\": {\"search_response\": [{\"data\": {\"reg_records\": [{\"a\": }]}}]}}",
            b"{\"a\": \"\xff\"}",
            b"",
        ] {
            let split = search_reply(body).unwrap_err().to_string();
            let whole = json_value(body).unwrap_err().to_string();
            assert_eq!(split, whole, "{}", String::from_utf8_lossy(body));
        }
    }
}
