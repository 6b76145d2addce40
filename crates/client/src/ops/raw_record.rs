//! One registry record as received: its JSON text, parsed when first read.

use std::fmt;
use std::ops::{Deref, Index};
use std::sync::OnceLock;

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// One record of a registry's reply, exactly as the registry sent it.
///
/// A record of a sync search reply is kept as its JSON text (see
/// [`dci_protocol::inbound::search_reply`]) and handed on as such: serialising it with
/// serde_json writes the bytes the registry sent, in its field order, without building the
/// record as a map. It is parsed into a [`Value`] the first time it is read (through `Deref`,
/// `Index` or [`RawRecord::value`]), once. A record that arrived parsed (a callback, a reply
/// whose signature was checked, a stored result) keeps its `Value`.
///
/// Equality compares the records as JSON values.
#[derive(Clone)]
pub struct RawRecord(Repr);

#[derive(Clone)]
enum Repr {
    Text {
        text: Box<RawValue>,
        value: OnceLock<Value>,
    },
    Value(Value),
}

impl RawRecord {
    /// A record from its JSON text.
    pub fn from_text(text: Box<RawValue>) -> RawRecord {
        RawRecord(Repr::Text {
            text,
            value: OnceLock::new(),
        })
    }

    /// The record as a JSON value (parsed now if it was kept as text).
    pub fn value(&self) -> &Value {
        match &self.0 {
            Repr::Text { text, value } => {
                value.get_or_init(|| dci_protocol::inbound::parse_raw(text))
            }
            Repr::Value(v) => v,
        }
    }

    /// The record for a line-based output (JSON Lines, a CSV cell): serialised as sent when
    /// the text is on one line, else compact (a registry's pretty-printed text would break the
    /// line). Strings never hold a raw line break, so any is whitespace between tokens.
    pub fn one_line(&self) -> OneLine<'_> {
        OneLine(self)
    }

    /// The record as a JSON value, owned.
    pub fn into_value(self) -> Value {
        match self.0 {
            Repr::Text { text, value } => value
                .into_inner()
                .unwrap_or_else(|| dci_protocol::inbound::parse_raw(&text)),
            Repr::Value(v) => v,
        }
    }
}

impl From<Value> for RawRecord {
    fn from(v: Value) -> RawRecord {
        RawRecord(Repr::Value(v))
    }
}

impl Deref for RawRecord {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl<I: serde_json::value::Index> Index<I> for RawRecord {
    type Output = Value;

    fn index(&self, i: I) -> &Value {
        &self.value()[i]
    }
}

impl PartialEq for RawRecord {
    fn eq(&self, other: &RawRecord) -> bool {
        self.value() == other.value()
    }
}

impl PartialEq<Value> for RawRecord {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

/// The record as compact JSON (as a `Value` displays; the text as sent may be spaced out).
impl fmt::Display for RawRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.value(), f)
    }
}

impl fmt::Debug for RawRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawRecord({self})")
    }
}

/// [`RawRecord::one_line`].
#[derive(Debug, Clone, Copy)]
pub struct OneLine<'a>(&'a RawRecord);

impl Serialize for OneLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0.0 {
            Repr::Text { text, .. } if !text.get().contains(['\n', '\r']) => text.serialize(s),
            _ => self.0.value().serialize(s),
        }
    }
}

impl Serialize for RawRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Text { text, .. } => text.serialize(s),
            Repr::Value(v) => v.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEXT: &str = r#"{"b": 1,  "a": [1.10, "x"], "n": null}"#;

    fn text() -> RawRecord {
        RawRecord::from_text(RawValue::from_string(TEXT.to_owned()).unwrap())
    }

    #[test]
    fn a_record_kept_as_text_serialises_as_sent_and_reads_as_its_value() {
        let r = text();
        assert_eq!(serde_json::to_string(&r).unwrap(), TEXT);
        assert_eq!(
            serde_json::to_string(&json!({"records": [&r]})).unwrap(),
            r#"{"records":[{"b":1,"a":[1.1,"x"],"n":null}]}"#,
            "serde_json's value serializer reads the text"
        );
        assert_eq!(r["a"][0], 1.1);
        assert_eq!(r.get("b"), Some(&json!(1)), "Deref to the value");
        assert_eq!(
            r.to_string(),
            r#"{"b":1,"a":[1.1,"x"],"n":null}"#,
            "compact"
        );
        assert_eq!(format!("{r:?}"), format!("RawRecord({r})"));
        let v: Value = serde_json::from_str(TEXT).unwrap();
        assert_eq!(r, v);
        assert_eq!(r, RawRecord::from(v.clone()), "equal as values");
        assert_eq!(r.clone().into_value(), v);
        assert_eq!(text().into_value(), v, "unread text parses on the way out");
    }

    #[test]
    fn a_record_that_arrived_parsed_keeps_its_value() {
        let v = json!({"uin": "1", "x": {"y": 2}});
        let r = RawRecord::from(v.clone());
        assert_eq!(serde_json::to_string(&r).unwrap(), v.to_string());
        assert_eq!(r["x"]["y"], 2);
        assert_eq!(r.into_value(), v);
        assert_ne!(text(), RawRecord::from(json!({"b": 2})));
    }

    #[test]
    fn one_line_keeps_the_text_unless_it_spans_lines() {
        assert_eq!(serde_json::to_string(&text().one_line()).unwrap(), TEXT);
        let pretty = "{\n  \"b\": 1,\r\n  \"s\": \"x\\ny\"\n}";
        let r = RawRecord::from_text(RawValue::from_string(pretty.to_owned()).unwrap());
        assert_eq!(serde_json::to_string(&r).unwrap(), pretty, "as sent");
        assert_eq!(
            serde_json::to_string(&r.one_line()).unwrap(),
            r#"{"b":1,"s":"x\ny"}"#,
            "compact, the escaped line break in the string kept"
        );
        let v = RawRecord::from(json!({"a": 1}));
        assert_eq!(serde_json::to_string(&v.one_line()).unwrap(), r#"{"a":1}"#);
    }
}
