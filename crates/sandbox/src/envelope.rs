//! Lenient parsing and validation of incoming envelopes, and the envelopes the sandbox sends.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::reply;
use crate::state::AppState;

/// A request envelope that passed the envelope-level checks.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub(crate) header: Value,
    pub(crate) message: Value,
    pub(crate) signature: Option<String>,
    pub(crate) transaction_id: String,
}

impl Incoming {
    pub(crate) fn header_str(&self, field: &str) -> Option<&str> {
        self.header.get(field).and_then(Value::as_str)
    }
}

/// Why a request was refused before any item was processed.
#[derive(Debug, Clone)]
pub(crate) enum Reject {
    /// Not an envelope at all (bad JSON, no header or message): HTTP 400 with an ACK `ERR`.
    Malformed(String),
    /// An envelope with an invalid header, message or signature.
    Invalid {
        /// The ACK error code (`err.request.bad`, `err.sender_uri.invalid`, …).
        code: &'static str,
        /// The header status reason code, when the spec has one (`rjct.action.invalid`, …).
        rjct: Option<&'static str>,
        reason: String,
    },
    /// The thing asked about does not exist (txn status of an unknown transaction).
    NotFound(String),
}

impl Reject {
    pub(crate) fn bad(reason: impl Into<String>) -> Self {
        Reject::Invalid {
            code: "err.request.bad",
            rjct: None,
            reason: reason.into(),
        }
    }
    fn header(code: &'static str, rjct: &'static str, reason: impl Into<String>) -> Self {
        Reject::Invalid {
            code,
            rjct: Some(rjct),
            reason: reason.into(),
        }
    }
    /// The reply to an async call: an ACK with `ack_status: ERR`.
    pub(crate) fn into_ack(self) -> Response {
        match self {
            Reject::Malformed(reason) => {
                reply::ack_err(StatusCode::BAD_REQUEST, "err.request.bad", &reason)
            }
            Reject::NotFound(reason) => {
                reply::ack_err(StatusCode::OK, "err.request.not_found", &reason)
            }
            Reject::Invalid {
                code, rjct, reason, ..
            } => {
                let text = match rjct {
                    Some(r) => format!("{r}: {reason}"),
                    None => reason,
                };
                reply::ack_err(StatusCode::OK, code, &text)
            }
        }
    }

    /// The reply to a sync call. With a header reason code (`rjct.action.invalid`, …): a
    /// response envelope whose header has `status: rjct` and no message (the specs do not
    /// require one, and a message would have to be a full response). Otherwise (signature,
    /// sender, encryption, missing message fields): HTTP 400 with an ACK `ERR` and the code.
    pub(crate) fn into_sync(self, state: &AppState, action: &str, req_header: &Value) -> Response {
        match self {
            Reject::Malformed(reason) => {
                reply::ack_err(StatusCode::BAD_REQUEST, "err.request.bad", &reason)
            }
            Reject::Invalid {
                code,
                rjct: None,
                reason,
                ..
            } => reply::ack_err(StatusCode::BAD_REQUEST, code, &reason),
            Reject::Invalid {
                rjct: Some(rjct),
                reason,
                ..
            } => {
                let mut header = response_header(state, action, req_header, "rjct", 0);
                header["status_reason_code"] = json!(rjct);
                header["status_reason_message"] = json!(reply::truncate(&reason, 999));
                (StatusCode::OK, Json(sign_header_only(state, header))).into_response()
            }
            Reject::NotFound(reason) => {
                let mut header = response_header(state, action, req_header, "rjct", 0);
                header["status_reason_message"] = json!(reply::truncate(&reason, 999));
                (StatusCode::OK, Json(sign_header_only(state, header))).into_response()
            }
        }
    }
}

fn as_count(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string id field: strings as they are, numbers as text (real clients send both).
pub(crate) fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses `body` and checks the envelope against the spec's required fields for `action`.
pub(crate) fn parse(body: &[u8], action: &str, is_async: bool) -> Result<Incoming, Reject> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        Reject::Malformed(format!("the body is not valid JSON ({e}): send a DCI envelope {{\"header\": …, \"message\": …}}"))
    })?;
    let Some(obj) = v.as_object() else {
        return Err(Reject::Malformed(
            "the body must be a JSON object {\"signature\", \"header\", \"message\"}".into(),
        ));
    };
    let Some(header) = obj.get("header").filter(|h| h.is_object()) else {
        return Err(Reject::Malformed(
            "header is required and must be an object".into(),
        ));
    };
    let message = match obj.get("message") {
        Some(m) if m.is_object() => m,
        _ => {
            return Err(Reject::Malformed(
                "message is required and must be an object".into(),
            ));
        }
    };
    let txn = id_string(message.get("transaction_id"));
    check_header(header, action, is_async, message)?;
    let Some(transaction_id) = txn else {
        return Err(Reject::bad(
            "message.transaction_id is required (a string of at most 99 characters)",
        ));
    };
    if transaction_id.len() > 99 {
        return Err(Reject::bad(
            "message.transaction_id must be at most 99 characters",
        ));
    }
    let signature = obj
        .get("signature")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok(Incoming {
        header: header.clone(),
        message: message.clone(),
        signature,
        transaction_id,
    })
}

fn check_header(h: &Value, action: &str, is_async: bool, message: &Value) -> Result<(), Reject> {
    if let Some(v) = h.get("version").filter(|v| !v.is_null())
        && v.as_str() != Some("1.0.0")
    {
        return Err(Reject::header(
            "err.version.not_supported",
            "rjct.version.invalid",
            format!("header.version {v} is not supported: use \"1.0.0\""),
        ));
    }
    if id_string(h.get("message_id")).is_none() {
        return Err(Reject::bad(
            "header.message_id is required (unique per message)",
        ));
    }
    match h.get("message_ts").and_then(Value::as_str) {
        None => {
            return Err(Reject::header(
                "err.request.bad",
                "rjct.message_ts.invalid",
                "header.message_ts is required (RFC 3339 with offset, e.g. 2026-11-29T10:00:00Z)",
            ));
        }
        Some(ts) if OffsetDateTime::parse(ts, &Rfc3339).is_err() => {
            return Err(Reject::header(
                "err.request.bad",
                "rjct.message_ts.invalid",
                format!(
                    "header.message_ts {ts:?} is not RFC 3339 with an offset (e.g. 2026-11-29T10:00:00Z)"
                ),
            ));
        }
        Some(_) => {}
    }
    match h.get("action").and_then(Value::as_str) {
        Some(a) if a == action => {}
        Some(a) => {
            return Err(Reject::header(
                "err.request.bad",
                "rjct.action.invalid",
                format!("header.action {a:?} does not match this endpoint: use {action:?}"),
            ));
        }
        None => {
            return Err(Reject::header(
                "err.request.bad",
                "rjct.action.invalid",
                format!("header.action is required: use {action:?}"),
            ));
        }
    }
    if id_string(h.get("sender_id")).is_none() {
        return Err(Reject::Invalid {
            code: "err.sender_id.invalid",
            rjct: None,
            reason: "header.sender_id is required (the id you are registered with)".into(),
        });
    }
    match h.get("total_count").map(as_count) {
        None => {
            return Err(Reject::header(
                "err.request.bad",
                "rjct.total_count.invalid",
                "header.total_count is required (the number of requests in the message)",
            ));
        }
        Some(None) => {
            return Err(Reject::header(
                "err.request.bad",
                "rjct.total_count.invalid",
                "header.total_count must be a whole number",
            ));
        }
        Some(Some(n)) if n < 0 => {
            return Err(Reject::header(
                "err.request.bad",
                "rjct.total_count.invalid",
                "header.total_count must not be negative",
            ));
        }
        Some(Some(_)) => {}
    }
    if h.get("is_msg_encrypted").and_then(Value::as_bool) == Some(true) {
        return Err(Reject::Invalid {
            code: "err.encryption.invalid",
            rjct: None,
            reason: "the sandbox does not decrypt messages: send is_msg_encrypted false".into(),
        });
    }
    if is_async {
        let uri = h.get("sender_uri").and_then(Value::as_str).unwrap_or("");
        let ok = url::Url::parse(uri)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .unwrap_or(false);
        if !ok {
            return Err(Reject::Invalid {
                code: "err.sender_uri.invalid",
                rjct: None,
                reason: format!(
                    "header.sender_uri {uri:?} must be an absolute http(s) URL: the callback is posted there"
                ),
            });
        }
    }
    let _ = message;
    Ok(())
}

/// The header of a sync response or callback. It carries the callback header's fields and, for
/// `on-subscribe`/`on-unsubscribe` (declared with the request header), `sender_id` and
/// `total_count` too, so one shape satisfies both.
pub(crate) fn response_header(
    state: &AppState,
    action: &str,
    req_header: &Value,
    status: &str,
    total: usize,
) -> Value {
    let mut h = Map::new();
    h.insert("version".into(), json!("1.0.0"));
    h.insert("message_id".into(), json!(reply::new_id()));
    h.insert("message_ts".into(), json!(reply::now()));
    h.insert("action".into(), json!(action));
    h.insert("status".into(), json!(status));
    h.insert("total_count".into(), json!(total));
    h.insert("completed_count".into(), json!(total));
    h.insert("sender_id".into(), json!(state.cfg().registry_id));
    if let Some(r) = req_header.get("sender_id").and_then(Value::as_str) {
        h.insert("receiver_id".into(), json!(r));
    }
    h.insert("is_msg_encrypted".into(), json!(false));
    Value::Object(h)
}

/// `{signature, header, message}`, signed with the sandbox key when it has one.
pub(crate) fn sign_envelope(state: &AppState, header: Value, message: Value) -> Value {
    match crate::signing::sign(state, &header, &message) {
        Some(sig) => json!({"signature": sig, "header": header, "message": message}),
        None => json!({"header": header, "message": message}),
    }
}

/// The HTTP reply `{signature, header, message}` of a sync answer whose message is already
/// serialised (`message_bytes`, the bytes the transaction log keeps): the same bytes as
/// `Json(sign_envelope(..))`, without serialising the message a second time.
pub(crate) fn signed_reply(
    state: &AppState,
    header: &Value,
    message: &Value,
    message_bytes: &[u8],
) -> Response {
    let mut body = Vec::with_capacity(message_bytes.len() + 1024);
    body.push(b'{');
    if let Some(sig) = crate::signing::sign(state, header, message) {
        body.extend_from_slice(b"\"signature\":");
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut body, &sig);
        body.push(b',');
    }
    body.extend_from_slice(b"\"header\":");
    let _ = serde_json::to_writer(&mut body, header);
    body.extend_from_slice(b",\"message\":");
    body.extend_from_slice(message_bytes);
    body.push(b'}');
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `{signature, header}` for replies without a message (signed over `"message": null`).
pub(crate) fn sign_header_only(state: &AppState, header: Value) -> Value {
    match crate::signing::sign(state, &header, &Value::Null) {
        Some(sig) => json!({"signature": sig, "header": header}),
        None => json!({"header": header}),
    }
}
