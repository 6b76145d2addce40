//! Typed inbound: sync replies and callbacks read through the lenient envelope parser
//! ([`crate::envelope::Envelope::parse`]), with every repair reported as a
//! [`Tolerated`], and what the header says about the whole message ([`MessageStatus`]).
//!
//! The specs require only `header` in a callback or sync reply: `message` is optional, so a
//! header-only envelope (`status: rjct` with a `status_reason_code`, or `rcvd` / `pdng` while the
//! registry works) is valid and parses here with `message: None`.

use serde::de::DeserializeOwned;
use serde_json::Value;

mod search_reply;
pub use search_reply::{RegRecords, SearchReply, parse_raw, search_reply};

use crate::codes::{Action, RequestStatus};
use crate::envelope::{Envelope, Header, Payload};
use crate::error::ParseError;
use crate::lenient::{Lenient, Tolerated};
use crate::message::{
    NotifyEventRequest, SearchResponse, SubscribeResponse, TxnStatus, TxnStatusResponse,
    UnsubscribeResponse,
};

/// The field at `path` (object keys, outermost first) of a raw envelope, e.g.
/// `at(v, &["header", "message_id"])`: what `Value::pointer("/header/message_id")` finds,
/// without parsing a pointer or allocating (the per-call reads of ids and statuses).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

/// An inbound body (a reply, a callback) as JSON: what `serde_json::from_slice` gives, errors
/// included, but with one UTF-8 check over the whole body (a word at a time) and serde_json's
/// `str` reader, which then skips the check `from_slice` makes string by string.
pub fn json_value(body: &[u8]) -> serde_json::Result<Value> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        // Not UTF-8: the byte reader says where, as it always did.
        Err(_) => serde_json::from_slice(body),
    }
}

/// What `header.status` says about the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageStatus {
    /// `rcvd`: the registry has the request and has not answered yet.
    Received,
    /// `pdng`: the registry is working on it.
    Pending,
    /// `succ`.
    Succeeded,
    /// `rjct`: the whole message was refused (the reason is in the header, or in the items).
    Rejected,
    /// No `status` (request-style headers, used by some `on-subscribe` callbacks).
    Unstated,
    /// A value the spec does not define, as sent.
    Other(String),
}

impl MessageStatus {
    /// Reads `header.status`.
    pub fn of(header: &Header) -> MessageStatus {
        match &header.status {
            None => MessageStatus::Unstated,
            Some(RequestStatus::Rcvd) => MessageStatus::Received,
            Some(RequestStatus::Pdng) => MessageStatus::Pending,
            Some(RequestStatus::Succ) => MessageStatus::Succeeded,
            Some(RequestStatus::Rjct) => MessageStatus::Rejected,
            Some(other) => MessageStatus::Other(other.as_str().to_owned()),
        }
    }

    /// `rcvd` or `pdng`: an acknowledgement that carries no answer yet.
    pub fn is_in_progress(&self) -> bool {
        matches!(self, MessageStatus::Received | MessageStatus::Pending)
    }

    /// How the status reads to a person: `received, pending`, never an empty success.
    pub fn describe(&self) -> &str {
        match self {
            MessageStatus::Received => "received, pending: the registry has not answered yet",
            MessageStatus::Pending => "pending: the registry is still working on it",
            MessageStatus::Succeeded => "succeeded",
            MessageStatus::Rejected => "rejected",
            MessageStatus::Unstated => "no status given",
            MessageStatus::Other(s) => s,
        }
    }
}

/// A top-level `"message": {}` or `"message": ""` is read as "no message".
fn drop_empty_message(v: &mut Value, tolerated: &mut Vec<Tolerated>) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    let empty = match obj.get("message") {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    };
    if empty {
        obj.remove("message");
        tolerated.push(Tolerated {
            path: "message".into(),
            what: "an empty message treated as absent (a header-only envelope)".into(),
        });
    }
}

/// Parses a sync reply (or any inbound envelope) leniently as `Envelope<M>`: header-only
/// envelopes have `message: None`; an empty `message` counts as absent.
pub fn parse_reply<M: DeserializeOwned>(mut v: Value) -> Result<Lenient<Envelope<M>>, ParseError> {
    let mut tolerated = Vec::new();
    drop_empty_message(&mut v, &mut tolerated);
    let mut parsed = Envelope::<M>::parse(v)?;
    tolerated.append(&mut parsed.tolerated);
    Ok(Lenient {
        value: parsed.value,
        tolerated,
    })
}

/// [`parse_reply`] of a borrowed value: a well-formed reply is read without copying it first
/// (see [`Envelope::parse_ref`]), so a caller that keeps the reply as received pays for one
/// typed reading, not a copy and then a reading.
pub fn parse_reply_ref<M: DeserializeOwned>(v: &Value) -> Result<Lenient<Envelope<M>>, ParseError> {
    let empty_message = match v.get("message") {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    };
    if empty_message {
        return parse_reply(v.clone());
    }
    Envelope::<M>::parse_ref(v)
}

/// The message of a callback, typed by its action.
#[derive(Debug, Clone, PartialEq)]
pub enum CallbackMessage {
    /// `on-search`.
    Search(SearchResponse),
    /// `on-subscribe`.
    Subscribe(SubscribeResponse),
    /// `on-unsubscribe`.
    Unsubscribe(UnsubscribeResponse),
    /// `txn-on-status`, with `txn_status` decoded by its `txn_type` when it could be.
    TxnStatus(Box<TxnStatusResponse>, Option<Box<TxnStatus>>),
    /// `notify`.
    Notify(NotifyEventRequest),
    /// An encrypted message (not decrypted here).
    Encrypted,
}

impl CallbackMessage {
    /// `message.transaction_id`.
    pub fn transaction_id(&self) -> Option<&str> {
        let id = match self {
            CallbackMessage::Search(m) => &m.transaction_id,
            CallbackMessage::Subscribe(m) => &m.transaction_id,
            CallbackMessage::Unsubscribe(m) => &m.transaction_id,
            CallbackMessage::TxnStatus(m, _) => &m.transaction_id,
            CallbackMessage::Notify(m) => &m.transaction_id,
            CallbackMessage::Encrypted => return None,
        };
        Some(id.trim()).filter(|s| !s.is_empty())
    }

    /// `message.correlation_id`.
    pub fn correlation_id(&self) -> Option<&str> {
        let id = match self {
            CallbackMessage::Search(m) => &m.correlation_id,
            CallbackMessage::Subscribe(m) => &m.correlation_id,
            CallbackMessage::Unsubscribe(m) => &m.correlation_id,
            CallbackMessage::TxnStatus(m, _) => &m.correlation_id,
            CallbackMessage::Notify(_) | CallbackMessage::Encrypted => return None,
        };
        Some(id.trim()).filter(|s| !s.is_empty())
    }
}

/// A callback (registry → SP), parsed leniently.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    /// The header.
    pub header: Header,
    /// The message; `None` for a header-only callback.
    pub message: Option<CallbackMessage>,
}

impl Callback {
    /// What the header says about the whole message.
    pub fn status(&self) -> MessageStatus {
        MessageStatus::of(&self.header)
    }

    /// Whether the callback carries no message (valid: the specs require only `header`).
    pub fn is_header_only(&self) -> bool {
        self.message.is_none()
    }

    /// `message.transaction_id`, if there is a readable message.
    pub fn transaction_id(&self) -> Option<&str> {
        self.message
            .as_ref()
            .and_then(CallbackMessage::transaction_id)
    }

    /// Parses a callback whose action is `action` (`on-search`, `on-subscribe`,
    /// `on-unsubscribe`, `txn-on-status`, `notify`). Errors name the JSON path.
    pub fn parse(action: &Action, mut v: Value) -> Result<Lenient<Callback>, ParseError> {
        let mut tolerated = Vec::new();
        drop_empty_message(&mut v, &mut tolerated);
        let parsed = Envelope::<Value>::parse(v)?;
        tolerated.extend(parsed.tolerated);
        let env = parsed.value;
        let message = match env.message {
            None => None,
            Some(Payload::Encrypted(_)) => Some(CallbackMessage::Encrypted),
            Some(Payload::Plain(m)) => Some(typed(action, m, &mut tolerated)?),
        };
        Ok(Lenient {
            value: Callback {
                header: env.header,
                message,
            },
            tolerated,
        })
    }
}

fn decode<T: DeserializeOwned>(m: Value) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(m).map_err(|e| {
        let p = e.path().to_string();
        let path = if p.is_empty() || p == "." {
            "message".to_owned()
        } else {
            format!("message.{p}")
        };
        ParseError::new(path, e.into_inner().to_string())
    })
}

fn typed(
    action: &Action,
    m: Value,
    tolerated: &mut Vec<Tolerated>,
) -> Result<CallbackMessage, ParseError> {
    Ok(match action {
        Action::OnSearch => CallbackMessage::Search(decode(m)?),
        Action::OnSubscribe => CallbackMessage::Subscribe(decode(m)?),
        Action::OnUnsubscribe => CallbackMessage::Unsubscribe(decode(m)?),
        Action::Notify => CallbackMessage::Notify(decode(m)?),
        Action::TxnOnStatus => {
            let r: TxnStatusResponse = decode(m)?;
            let status = txn_status(&r, tolerated);
            CallbackMessage::TxnStatus(Box::new(r), status.map(Box::new))
        }
        other => {
            return Err(ParseError::new(
                "header.action",
                format!("{other} is not a callback action"),
            ));
        }
    })
}

/// Decodes `txnstatus_response.txn_status` (registry data, so not normalised with the rest),
/// reporting its repairs under their full path. `None` when it cannot be decoded.
pub fn txn_status(r: &TxnStatusResponse, tolerated: &mut Vec<Tolerated>) -> Option<TxnStatus> {
    let mut v = r.txnstatus_response.txn_status.clone();
    let repaired = crate::lenient::normalize(&mut v);
    let body = crate::message::TxnStatusResponseBody {
        txn_type: r.txnstatus_response.txn_type.clone(),
        txn_status: v,
        extra: serde_json::Map::new(),
    };
    match body.status() {
        Ok(s) => {
            tolerated.extend(repaired.into_iter().map(|t| Tolerated {
                path: format!("message.txnstatus_response.txn_status.{}", t.path),
                what: t.what,
            }));
            Some(s)
        }
        Err(e) => {
            tolerated.push(Tolerated {
                path: format!(
                    "message.txnstatus_response.txn_status{}",
                    e.path().map(|p| format!(".{p}")).unwrap_or_default()
                ),
                what: format!("not readable ({}); kept as sent", e.message()),
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_values_read_as_from_slice_reads_them_errors_included() {
        let bodies: [&[u8]; 6] = [
            b"{\"header\": {\"message_id\": \"m\\u00e9\", \"x\": [1, 2.5, null]}, \"b\": \"\xc3\xa9t\xc3\xa9\"}",
            b"  \"just a string\"  ",
            b"{\"unterminated\": ",
            b"{\"bad\": \"\xff\xfe\"}",
            b"{\"a\": 1} trailing",
            b"",
        ];
        for body in bodies {
            let ours = json_value(body);
            let theirs = serde_json::from_slice::<Value>(body);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!("{ours:?} against {theirs:?} for {body:?}"),
            }
        }
        assert_eq!(
            json_value("{\"é\": \"ü\"}".as_bytes()).unwrap(),
            json!({"é": "ü"})
        );
    }

    #[test]
    fn header_only_and_empty_messages() {
        let v = json!({"header": {"message_id": "m", "message_ts": "2025-01-01T00:00:00Z",
            "action": "on-search", "status": "rjct", "status_reason_code": "rjct.action.invalid"},
            "message": {}});
        let cb = Callback::parse(&Action::OnSearch, v).unwrap();
        assert!(cb.value.is_header_only());
        assert_eq!(cb.value.status(), MessageStatus::Rejected);
        assert_eq!(cb.tolerated[0].path, "message");
        let err = Callback::parse(
            &Action::OnSearch,
            json!({"header": {"message_id": "m", "message_ts": "t", "action": "on-search"},
                   "message": {"search_response": []}}),
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("message"));
        assert!(err.message().contains("transaction_id"), "{err}");
    }

    #[test]
    fn a_borrowed_reply_parses_as_an_owned_one() {
        let header = json!({"message_id": "m", "message_ts": "2025-01-01T00:00:00Z",
            "action": "on-search", "status": "succ", "total_count": 1, "completed_count": 1});
        let item = json!({"reference_id": "r1", "timestamp": "2025-01-01T00:00:00Z",
            "status": "succ", "data": {"reg_records": [{"uin": "1", "total_count": "x"}]}});
        let cases = [
            // Well-formed: read in place.
            json!({"signature": "s", "header": header, "message": {"transaction_id": "t",
                "correlation_id": "c", "search_response": [item]}, "extra": 1}),
            // Needs repairs: copied and normalised.
            json!({"header": header, "message": {"transaction_id": 5, "correlation_id": "c",
                "search_response": item}}),
            // Header-only, and an empty message.
            json!({"header": header}),
            json!({"header": header, "message": {}}),
            // Errors keep their path.
            json!({"header": header, "message": {"search_response": []}}),
            json!({"header": {"message_id": "m"}}),
            json!({"header": header, "signature": 3}),
            json!([]),
        ];
        for v in cases {
            let owned = parse_reply::<SearchResponse>(v.clone()).map_err(|e| e.to_string());
            let borrowed = parse_reply_ref::<SearchResponse>(&v).map_err(|e| e.to_string());
            assert_eq!(borrowed, owned, "{v}");
        }
    }
}
