//! The envelope `{signature?, header, message?}`, its header, the synchronous ACK/NACK/ERR
//! reply, and the HTTP error bodies real registries send.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::codes::{AckStatus, Action, ErrorCode, RequestStatus, StatusReasonCode};
use crate::error::ParseError;
use crate::lenient::{Lenient, Tolerated, needs_repair, normalize};
use crate::message::EncryptedMessage;
use crate::signature::{SignatureError, Signer};

/// Spec version sent in `header.version`.
pub const PROTOCOL_VERSION: &str = "1.0.0";

/// One header type for both directions: request (`MsgHeader`) and callback / sync response
/// (`MsgCallbackHeader`). Only `message_id`, `message_ts` and `action` are always present;
/// the builders in [`crate::build`] enforce each direction's required fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// `1.0.0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Unique per message.
    pub message_id: String,
    /// RFC 3339 with offset.
    pub message_ts: String,
    /// Fixed per endpoint.
    pub action: Action,
    /// Callback headers: status of the whole message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RequestStatus>,
    /// Callback headers: reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason_code: Option<StatusReasonCode>,
    /// Callback headers: reason text (≤ 999 chars).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason_message: Option<String>,
    /// Number of requests in the message (= batch length).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_count: Option<u64>,
    /// Callback headers: requests completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_count: Option<u64>,
    /// Sender's id as registered with the receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    /// Request headers: callback URL for async calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_uri: Option<String>,
    /// Receiver's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver_id: Option<String>,
    /// True when `message` is an [`EncryptedMessage`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_msg_encrypted: Option<bool>,
    /// Free-form data for intermediaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `message`: plain, or encrypted when `header.is_msg_encrypted` is true.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Payload<M> {
    /// A plain message.
    Plain(M),
    /// An encrypted message.
    Encrypted(Box<EncryptedMessage>),
}

impl<M> Payload<M> {
    /// The plain message, if not encrypted.
    pub fn plain(&self) -> Option<&M> {
        match self {
            Payload::Plain(m) => Some(m),
            Payload::Encrypted(_) => None,
        }
    }
}

/// A DCI envelope. `M` is the message type (`SearchRequest`, …, or `serde_json::Value`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope<M> {
    /// The DCI signature string, if signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The header.
    pub header: Header,
    /// The message; absent in some error callbacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Payload<M>>,
    /// Unknown top-level fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<M> Envelope<M> {
    /// The plain message, if present and not encrypted.
    pub fn plain_message(&self) -> Option<&M> {
        self.message.as_ref().and_then(Payload::plain)
    }
}

impl<M: Serialize> Envelope<M> {
    /// The envelope as JSON. This is exactly what is sent and signed.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Signs the envelope in place (sets `signature`).
    pub fn sign(&mut self, signer: &Signer, now: OffsetDateTime) -> Result<(), SignatureError> {
        let header = serde_json::to_value(&self.header).unwrap_or(Value::Null);
        let message = match &self.message {
            Some(m) => serde_json::to_value(m).unwrap_or(Value::Null),
            None => Value::Null,
        };
        self.signature = Some(signer.sign(&header, &message, now)?);
        Ok(())
    }

    /// Signs the envelope and returns it as JSON: the same value as `sign` then `to_value`,
    /// with the header and message serialised once (for the digest and the envelope both).
    pub fn into_signed_value(
        self,
        signer: &Signer,
        now: OffsetDateTime,
    ) -> Result<Value, SignatureError> {
        let header = serde_json::to_value(&self.header).unwrap_or(Value::Null);
        let message = match &self.message {
            Some(m) => serde_json::to_value(m).unwrap_or(Value::Null),
            None => Value::Null,
        };
        let signature = signer.sign(&header, &message, now)?;
        // The field order of `Envelope`'s `Serialize`: signature, header, message, extra.
        let mut out = Map::new();
        out.insert("signature".into(), Value::String(signature));
        out.insert("header".into(), header);
        if self.message.is_some() {
            out.insert("message".into(), message);
        }
        for (k, v) in self.extra {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }

    /// Signs and returns the envelope.
    pub fn signed(mut self, signer: &Signer, now: OffsetDateTime) -> Result<Self, SignatureError> {
        self.sign(signer, now)?;
        Ok(self)
    }
}

/// Whether a message is the encrypted form: the header says so, or it carries the
/// ciphertext and the wrapped key (lenient about a header that forgot the flag).
fn is_encrypted(header: &Header, message: &Value) -> bool {
    header.is_msg_encrypted == Some(true)
        || (message.get("ciphertext").is_some() && message.get("encrypted_key").is_some())
}

fn sub_path(prefix: &str, e: serde_path_to_error::Error<serde_json::Error>) -> ParseError {
    let p = e.path().to_string();
    let path = if p == "." || p.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}.{p}")
    };
    ParseError::new(path, e.into_inner().to_string())
}

impl<M: DeserializeOwned> Envelope<M> {
    /// Parses an inbound envelope leniently. Verify signatures on the raw JSON *before* this
    /// (see [`crate::signature::verify_envelope`]), because parsing normalises.
    pub fn parse(mut v: Value) -> Result<Lenient<Self>, ParseError> {
        let tolerated: Vec<Tolerated> = normalize(&mut v);
        let Value::Object(mut obj) = v else {
            return Err(ParseError::new("", "an envelope must be a JSON object"));
        };
        let header = obj
            .remove("header")
            .ok_or_else(|| ParseError::new("header", "missing: every DCI envelope has a header"))?;
        let header: Header =
            serde_path_to_error::deserialize(header).map_err(|e| sub_path("header", e))?;
        let signature = match obj.remove("signature") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(ParseError::new("signature", "must be a string")),
        };
        let message = match obj.remove("message") {
            None | Some(Value::Null) => None,
            Some(m) => {
                if is_encrypted(&header, &m) {
                    Some(Payload::Encrypted(Box::new(
                        serde_path_to_error::deserialize(m).map_err(|e| sub_path("message", e))?,
                    )))
                } else {
                    Some(Payload::Plain(
                        serde_path_to_error::deserialize(m).map_err(|e| sub_path("message", e))?,
                    ))
                }
            }
        };
        Ok(Lenient {
            value: Envelope {
                signature,
                header,
                message,
                extra: obj,
            },
            tolerated,
        })
    }

    /// [`Envelope::parse`] of a borrowed value. A well-formed envelope (nothing for
    /// [`normalize`] to repair) is read from `v` as it is, without copying it first; otherwise,
    /// and to report any error, `v` is copied and goes through [`Envelope::parse`].
    pub fn parse_ref(v: &Value) -> Result<Lenient<Self>, ParseError> {
        if needs_repair(v) {
            return Self::parse(v.clone());
        }
        match Self::read_well_formed(v) {
            Some(value) => Ok(Lenient {
                value,
                tolerated: Vec::new(),
            }),
            // The same error, with its path, as `parse` gives.
            None => Self::parse(v.clone()),
        }
    }

    /// The typed envelope read from a value that needs no repair; `None` when it does not
    /// read (the caller reports the error).
    fn read_well_formed(v: &Value) -> Option<Self> {
        let obj = v.as_object()?;
        let header = Header::deserialize(obj.get("header")?).ok()?;
        let signature = match obj.get("signature") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return None,
        };
        let message = match obj.get("message") {
            None | Some(Value::Null) => None,
            Some(m) => {
                if is_encrypted(&header, m) {
                    Some(Payload::Encrypted(Box::new(
                        EncryptedMessage::deserialize(m).ok()?,
                    )))
                } else {
                    Some(Payload::Plain(M::deserialize(m).ok()?))
                }
            }
        };
        let extra = obj
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "header" | "signature" | "message"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Some(Envelope {
            signature,
            header,
            message,
            extra,
        })
    }

    /// Parses JSON bytes leniently.
    pub fn parse_slice(bytes: &[u8]) -> Result<Lenient<Self>, ParseError> {
        let v: Value = serde_json::from_slice(bytes).map_err(ParseError::from_json)?;
        Self::parse(v)
    }
}

/// Lenient, like [`Envelope::parse`] (what was tolerated is dropped; use `parse` to see it).
impl<'de, M: DeserializeOwned> Deserialize<'de> for Envelope<M> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::parse(v)
            .map(|l| l.value)
            .map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------- ACK

/// The synchronous reply to an async call (and what a callback receiver answers):
/// `{"message": {ack_status, timestamp, correlation_id, error?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckResponse {
    /// The ACK.
    pub message: Ack,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ack_status`, `timestamp`, `correlation_id`, `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// ACK, NACK or ERR.
    pub ack_status: AckStatus,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// The receiver's correlation id (≤ 99 chars).
    #[serde(default)]
    pub correlation_id: String,
    /// Why, for ERR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Error {code, message}`; both optional in the spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Message (≤ 999 chars).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl AckResponse {
    fn make(
        status: AckStatus,
        correlation_id: &str,
        error: Option<ErrorInfo>,
        now: OffsetDateTime,
    ) -> Self {
        AckResponse {
            message: Ack {
                ack_status: status,
                timestamp: crate::build::rfc3339(now),
                correlation_id: correlation_id.chars().take(99).collect(),
                error,
                extra: Map::new(),
            },
            extra: Map::new(),
        }
    }

    /// An ACK.
    pub fn ack(correlation_id: &str, now: OffsetDateTime) -> Self {
        Self::make(AckStatus::Ack, correlation_id, None, now)
    }

    /// A NACK.
    pub fn nack(correlation_id: &str, now: OffsetDateTime) -> Self {
        Self::make(AckStatus::Nack, correlation_id, None, now)
    }

    /// An ERR with a code and a message (truncated to 999 chars).
    pub fn err(correlation_id: &str, code: ErrorCode, message: &str, now: OffsetDateTime) -> Self {
        let error = ErrorInfo {
            code: Some(code),
            message: Some(message.chars().take(999).collect()),
        };
        Self::make(AckStatus::Err, correlation_id, Some(error), now)
    }

    /// Parses an ACK leniently.
    pub fn parse(v: Value) -> Result<Lenient<Self>, ParseError> {
        crate::lenient::from_value(v)
    }
}

// ---------------------------------------------------------------- HTTP errors

/// An HTTP 4xx/5xx body, in whichever variant the registry sends.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpErrorBody {
    /// The spec's `HttpErrorResponse`: `{"errors": [{code, message}]}`.
    Dci(Vec<ErrorInfoRaw>),
    /// A DCI ACK-ERR body.
    Ack(Ack),
    /// RFC 7807 problem details.
    Problem {
        /// `type`.
        problem_type: Option<String>,
        /// `title`.
        title: Option<String>,
        /// `status`.
        status: Option<u16>,
        /// `detail`.
        detail: Option<String>,
    },
    /// A bare `{error | code | message}` object (OAuth-style included).
    Bare {
        /// `code` or `error`.
        code: Option<String>,
        /// `message`, `error_description` or `error`.
        message: Option<String>,
    },
    /// Anything else (HTML, text, empty), truncated to 512 chars.
    Opaque(String),
}

/// An `errors[]` item with codes kept as strings (HTTP errors use free-form codes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfoRaw {
    /// Code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl HttpErrorBody {
    /// Classifies an error body. Never fails.
    pub fn parse(bytes: &[u8]) -> Self {
        let opaque = || {
            let text = String::from_utf8_lossy(bytes);
            HttpErrorBody::Opaque(text.chars().take(512).collect())
        };
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
            return opaque();
        };
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(Value::Array(items)) = v.get("errors") {
            let items = items
                .iter()
                .map(|i| ErrorInfoRaw {
                    code: i.get("code").and_then(Value::as_str).map(str::to_owned),
                    message: i.get("message").and_then(Value::as_str).map(str::to_owned),
                })
                .collect();
            return HttpErrorBody::Dci(items);
        }
        if let Some(m) = v.get("message").filter(|m| m.is_object())
            && (m.get("ack_status").is_some() || m.get("error").is_some())
            && let Ok(ack) = AckResponse::parse(v.clone())
        {
            return HttpErrorBody::Ack(ack.value.message);
        }
        if v.get("title").is_some() || v.get("detail").is_some() || v.get("type").is_some() {
            return HttpErrorBody::Problem {
                problem_type: s("type"),
                title: s("title"),
                status: v
                    .get("status")
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok()),
                detail: s("detail"),
            };
        }
        if v.get("error").is_some() || v.get("code").is_some() || v.get("message").is_some() {
            let nested = v.get("error").filter(|e| e.is_object());
            let code = s("code")
                .or_else(|| {
                    nested
                        .and_then(|e| e.get("code"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .or_else(|| s("error"));
            let message = s("message")
                .or_else(|| s("error_description"))
                .or_else(|| {
                    nested
                        .and_then(|e| e.get("message"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .or_else(|| {
                    if code.as_deref() == s("error").as_deref() {
                        None
                    } else {
                        s("error")
                    }
                });
            return HttpErrorBody::Bare { code, message };
        }
        opaque()
    }

    /// The first error code, if any.
    pub fn code(&self) -> Option<String> {
        match self {
            HttpErrorBody::Dci(items) => items.iter().find_map(|i| i.code.clone()),
            HttpErrorBody::Ack(ack) => ack
                .error
                .as_ref()
                .and_then(|e| e.code.as_ref())
                .map(|c| c.as_str().to_owned()),
            HttpErrorBody::Problem { problem_type, .. } => problem_type.clone(),
            HttpErrorBody::Bare { code, .. } => code.clone(),
            HttpErrorBody::Opaque(_) => None,
        }
    }

    /// One line for logs and users: `code: message`.
    pub fn summary(&self) -> String {
        let join = |c: Option<&str>, m: Option<&str>| match (c, m) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(x), None) | (None, Some(x)) => x.to_owned(),
            (None, None) => "(no details)".to_owned(),
        };
        match self {
            HttpErrorBody::Dci(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| join(i.code.as_deref(), i.message.as_deref()))
                    .collect();
                if parts.is_empty() {
                    "(no details)".into()
                } else {
                    parts.join("; ")
                }
            }
            HttpErrorBody::Ack(ack) => {
                let e = ack.error.as_ref();
                join(
                    e.and_then(|e| e.code.as_ref()).map(|c| c.as_str()),
                    e.and_then(|e| e.message.as_deref()),
                )
            }
            HttpErrorBody::Problem { title, detail, .. } => {
                join(title.as_deref(), detail.as_deref())
            }
            HttpErrorBody::Bare { code, message } => join(code.as_deref(), message.as_deref()),
            HttpErrorBody::Opaque(text) if text.trim().is_empty() => "(empty body)".into(),
            HttpErrorBody::Opaque(text) => text.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::message::SearchResponse;

    #[test]
    fn http_error_variants() {
        let dci = HttpErrorBody::parse(br#"{"errors":[{"code":"401","message":"bad token"}]}"#);
        assert_eq!(dci.summary(), "401: bad token");
        let ack = HttpErrorBody::parse(
            br#"{"message":{"ack_status":"ERR","timestamp":"","correlation_id":"c","error":{"code":"err.signature.invalid","message":"nope"}}}"#,
        );
        assert_eq!(ack.code().as_deref(), Some("err.signature.invalid"));
        let p = HttpErrorBody::parse(
            br#"{"type":"about:blank","title":"Forbidden","status":403,"detail":"x"}"#,
        );
        assert!(matches!(
            p,
            HttpErrorBody::Problem {
                status: Some(403),
                ..
            }
        ));
        let bare = HttpErrorBody::parse(br#"{"error":"invalid_client","error_description":"no"}"#);
        assert_eq!(bare.summary(), "invalid_client: no");
        assert_eq!(
            HttpErrorBody::parse(b"<html>oops</html>").summary(),
            "<html>oops</html>"
        );
        assert_eq!(HttpErrorBody::parse(b"").summary(), "(empty body)");
    }

    #[test]
    fn envelope_parse_reports_path_and_tolerations() {
        let v = json!({
            "signature": "unsigned-mock",
            "header": {"message_id": "m", "message_ts": "2025-01-01T00:00:00Z", "action": "on-search",
                        "status": "succ", "total_count": "1", "x-vendor": 1},
            "message": {"transaction_id": "t", "correlation_id": "c",
                        "search_response": {"reference_id": "r", "timestamp": "", "status": "succ",
                                            "data": {"reg_records": {"name": "x"}}}}
        });
        let parsed = Envelope::<SearchResponse>::parse(v).unwrap();
        assert_eq!(parsed.value.header.total_count, Some(1));
        assert_eq!(parsed.value.header.extra["x-vendor"], 1);
        let msg = parsed.value.plain_message().unwrap();
        assert_eq!(
            msg.search_response[0]
                .data
                .as_ref()
                .unwrap()
                .reg_records
                .len(),
            1
        );
        assert_eq!(parsed.tolerated.len(), 2);

        let bad = json!({"header": {"message_id": "m", "message_ts": "t", "action": "on-search"},
                         "message": {"transaction_id": "t", "search_response": [{"reference_id": "r"}]}});
        let err = Envelope::<SearchResponse>::parse(bad).unwrap_err();
        assert_eq!(err.path(), Some("message.search_response[0]"));
        assert!(err.to_string().contains("status"), "{err}");
        let via_serde: Envelope<SearchResponse> = serde_json::from_value(json!({
            "header": {"message_id": "m", "message_ts": "t", "action": "on-search"}}))
        .unwrap();
        assert!(via_serde.message.is_none());
        let err = Envelope::<Value>::parse(json!({"message": {}})).unwrap_err();
        assert_eq!(err.path(), Some("header"));
    }
}
