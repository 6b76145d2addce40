//! Reply shapes: HTTP-layer errors, ACKs, OAuth2 errors, timestamps and ids.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now as RFC 3339 with offset (`…Z`).
pub(crate) fn now() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// A fresh id (UUID v4 text, 36 characters: within the spec's 99), from the client library's
/// generator (the thread's user-space CSPRNG, not a system call per id).
pub(crate) fn new_id() -> String {
    dci_protocol::build::new_id()
}

/// The spec's `HttpErrorResponse`: `{"errors": [{"code", "message"}]}`.
pub(crate) fn http_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"code": code, "message": message}]})),
    )
        .into_response()
}

/// 401 for a missing, unknown, expired or revoked bearer token.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut resp = http_error(
        StatusCode::UNAUTHORIZED,
        "err.request.unauthorized",
        message,
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dci-sandbox\", error=\"invalid_token\""),
    );
    resp
}

/// The ACK body of an accepted async request.
pub(crate) fn ack(correlation_id: &str) -> Value {
    json!({"message": {"ack_status": "ACK", "timestamp": now(), "correlation_id": correlation_id}})
}

/// An ACK with `ack_status: ERR` and the spec's error code and a reason.
pub(crate) fn ack_err(status: StatusCode, code: &str, reason: &str) -> Response {
    let body = json!({"message": {
        "ack_status": "ERR",
        "timestamp": now(),
        "correlation_id": new_id(),
        "error": {"code": code, "message": truncate(reason, 999)},
    }});
    (status, Json(body)).into_response()
}

/// An RFC 6749 §5.2 error.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"dci-sandbox\""),
        );
    }
    resp
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
