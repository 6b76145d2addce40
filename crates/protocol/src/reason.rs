//! The registry's own reason for a failure, read from whichever error shape it sent: the
//! ACK's `Error {code, message}`, a callback or sync-reply header's `status_reason_code` /
//! `status_reason_message`, the spec's `HttpErrorResponse {errors: [{code, message}]}`, or the
//! shapes real registries use instead (OAuth2 `{error, error_description}`, RFC 7807 problem
//! details, `{error: {code, message}}`, a bare `{code, message}`).
//!
//! One reader for every shape, so the client's error type is derived from it and never
//! re-invents the parsing.

use serde_json::Value;

use crate::envelope::{ErrorInfo, ErrorInfoRaw};

/// A code and a message, as the registry wrote them (untrimmed; either may be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reason {
    /// Machine-readable code (`rjct.reference_id.invalid`, `err.signature.invalid`, `invalid_client`).
    pub code: Option<String>,
    /// Human-readable message.
    pub message: Option<String>,
}

impl Reason {
    fn new(code: Option<&str>, message: Option<&str>) -> Option<Reason> {
        let keep = |s: Option<&str>| s.filter(|s| !s.trim().is_empty()).map(str::to_owned);
        let r = Reason {
            code: keep(code),
            message: keep(message),
        };
        (r.code.is_some() || r.message.is_some()).then_some(r)
    }

    /// From an ACK's `error`.
    pub fn from_error_info(e: &ErrorInfo) -> Option<Reason> {
        Reason::new(e.code.as_ref().map(|c| c.as_str()), e.message.as_deref())
    }

    /// From a header (`status_reason_code` / `status_reason_message`).
    pub fn from_header(h: &crate::envelope::Header) -> Option<Reason> {
        Reason::new(
            h.status_reason_code.as_ref().map(|c| c.as_str()),
            h.status_reason_message.as_deref(),
        )
    }

    /// Reads the reason from a body of any known shape; `None` when it names none.
    pub fn from_value(v: &Value) -> Option<Reason> {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str);
        // DCI ACK: {message: {ack_status, error: {code, message}}}
        if let Some(e) = v.pointer("/message/error").filter(|e| e.is_object())
            && let Ok(info) = serde_json::from_value::<ErrorInfo>(e.clone())
            && let Some(r) = Reason::from_error_info(&info)
        {
            return Some(r);
        }
        // DCI callback / sync-reply header.
        if let Some(r) = Reason::new(
            s("/header/status_reason_code"),
            s("/header/status_reason_message"),
        ) {
            return Some(r);
        }
        // HttpErrorResponse: {errors: [{code, message}]} (some send plain strings).
        if let Some(errors) = v.get("errors").and_then(Value::as_array) {
            let first = errors.first()?;
            let mut r = match first {
                Value::String(text) => Reason::new(None, Some(text))?,
                other => {
                    let e: ErrorInfoRaw = serde_json::from_value(other.clone()).ok()?;
                    Reason::new(e.code.as_deref(), e.message.as_deref())?
                }
            };
            if errors.len() > 1 {
                r.message = Some(format!(
                    "{} (and {} more)",
                    r.message.unwrap_or_default(),
                    errors.len() - 1
                ));
            }
            return Some(r);
        }
        // OAuth2 (RFC 6749 §5.2).
        if let Some(code) = s("/error") {
            return Reason::new(
                Some(code),
                s("/error_description").or_else(|| s("/message")),
            );
        }
        // {error: {code, message}}
        if let Some(e) = v.get("error").filter(|e| e.is_object())
            && let Some(r) = Reason::new(
                e.get("code").and_then(Value::as_str),
                e.get("message").and_then(Value::as_str),
            )
        {
            return Some(r);
        }
        // RFC 7807 problem details.
        if v.get("title").is_some() || v.get("detail").is_some() {
            return Reason::new(
                s("/type")
                    .filter(|t| *t != "about:blank")
                    .or_else(|| s("/title")),
                s("/detail").or_else(|| s("/title")),
            );
        }
        // Bare {code, message} / {message} / {detail}.
        let code = match v.get("code") {
            Some(Value::String(c)) => Some(c.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Reason::new(code.as_deref(), s("/message").or_else(|| s("/detail")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_shape() {
        let r = |v: Value| Reason::from_value(&v);
        let ack = r(
            json!({"message": {"ack_status": "ERR", "error": {"code": "err.x", "message": "m"}}}),
        );
        assert_eq!(ack.unwrap().code.as_deref(), Some("err.x"));
        let hdr =
            r(json!({"header": {"status": "rjct", "status_reason_code": "rjct.action.invalid"}}));
        assert_eq!(hdr.unwrap().code.as_deref(), Some("rjct.action.invalid"));
        let errs = r(json!({"errors": ["just text"]})).unwrap();
        assert_eq!(errs.message.as_deref(), Some("just text"));
        let bare = r(json!({"code": 42, "message": "nope"})).unwrap();
        assert_eq!(bare.code.as_deref(), Some("42"));
        assert_eq!(r(json!({"ok": true})), None);
        assert_eq!(r(json!({"header": {"status_reason_message": "  "}})), None);
    }
}
