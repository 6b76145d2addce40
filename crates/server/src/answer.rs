//! Every request gets an answer, and every refusal the documented body of its route family:
//! the API's `{"error": {"kind", "message", …}}` under `/api`, the DCI ACK `ERR` under
//! `/callback` and `/registry` (the root callback routes), an HTML page for the console (everything else).
//!
//! Three pieces, installed by [`crate::router`]:
//! - [`fallback`]: unknown paths (404) in the family's shape.
//! - [`normalize`]: a middleware that rewrites any 4xx/5xx leaving in another shape — axum's
//!   own plain-text rejections (`Path`, `Query`, `Form`, `Json`, body limit), empty 405s with
//!   their `Allow` header kept, the timeout layer's empty 408, the panic catcher's 500 — into the
//!   family's shape. Handlers that already answer in the right shape pass through untouched.
//! - [`panic_response`]: for `CatchPanicLayer`: a handler that panics is logged and answered
//!   500 (in the family's shape, through [`normalize`]) instead of dropping the connection.

use std::any::Any;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dci_protocol::codes::ErrorCode;

use crate::callback::Refusal;
use crate::error::ApiError;

/// Longest refusal body of another shape that is read to reuse its text.
const MAX_REWRITTEN_BODY: usize = 16 * 1024;
/// Longest message taken from such a body.
const MAX_MESSAGE_CHARS: usize = 300;

/// Which shape a path's refusals take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `/api/…`, `/healthz`, `/readyz`, `/metrics`, `/.well-known/…`: the API's JSON error.
    Api,
    /// `/callback/…` and the root callback routes `/registry/…`: the DCI ACK with
    /// `ack_status: ERR`.
    Callback,
    /// Everything else: an HTML page.
    Console,
}

impl Family {
    pub(crate) fn of(path: &str) -> Family {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/callback") || under("/registry") {
            Family::Callback
        } else if under("/api")
            || under("/healthz")
            || under("/readyz")
            || under("/metrics")
            || under("/.well-known")
        {
            Family::Api
        } else {
            Family::Console
        }
    }

    fn accepts(self, headers: &HeaderMap) -> bool {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        match self {
            Family::Api | Family::Callback => essence.eq_ignore_ascii_case("application/json"),
            Family::Console => essence.eq_ignore_ascii_case("text/html"),
        }
    }
}

/// A refusal with `status` and `message` in `family`'s shape.
pub(crate) fn refusal(family: Family, status: StatusCode, message: &str) -> Response {
    let mut resp = match family {
        Family::Api => api_error(status, message).into_response(),
        Family::Callback => Refusal::new(status, callback_code(status), message).into_response(),
        Family::Console => crate::console::view::message_page(
            status,
            console_title(status),
            None,
            &console_message(status, message),
        ),
    };
    // Same status whatever the variant says (e.g. a 409 answered as a generic bad request).
    *resp.status_mut() = status;
    resp
}

fn api_error(status: StatusCode, message: &str) -> ApiError {
    let m = message.to_owned();
    match status.as_u16() {
        401 => ApiError::Unauthorized,
        404 => ApiError::NotFound(m),
        405 => ApiError::MethodNotAllowed(m),
        408 => ApiError::RequestTimeout(m),
        413 => ApiError::TooLarge(m),
        415 => ApiError::UnsupportedMediaType(m),
        422 => ApiError::Invalid {
            message: m,
            fields: Vec::new(),
        },
        503 => ApiError::Unavailable(m),
        500..=599 => ApiError::Internal(m),
        _ => ApiError::BadRequest(m),
    }
}

fn callback_code(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => ErrorCode::RequestUnauthorized,
        403 => ErrorCode::RequestForbidden,
        404 => ErrorCode::RequestNotFound,
        408 => ErrorCode::RequestTimeout,
        429 => ErrorCode::TooManyRequests,
        500..=599 => ErrorCode::ServiceUnavailable,
        _ => ErrorCode::RequestBad,
    }
}

fn console_title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "Not found",
        405 => "Not allowed here",
        408 => "Timed out",
        413 => "Too large",
        429 => "Too many attempts",
        500..=599 => "Server error",
        _ => "Bad request",
    }
}

fn console_message(status: StatusCode, message: &str) -> String {
    match status.as_u16() {
        500..=599 => {
            "The server failed to answer this request; the server log has the details. Try again, and report it if it persists.".into()
        }
        _ => message.to_owned(),
    }
}

/// What a refusal says when the original answer said nothing useful.
fn default_message(family: Family, status: StatusCode, method: &Method, path: &str) -> String {
    match (status.as_u16(), family) {
        (404, Family::Api) => {
            "no such API route: GET /api/v1/openapi.json lists them".into()
        }
        (404, Family::Callback) => format!(
            "no callback route {}: registries POST to /callback/{{code}}/registry/on-search, on-subscribe, on-unsubscribe, txn/on-status or notify, or to the same /registry/… paths at the root",
            short(path)
        ),
        (404, Family::Console) => {
            "There is no page at this address. Use the menu to find what you are looking for."
                .into()
        }
        (405, _) => format!("{method} is not allowed on {}", short(path)),
        (408, _) => "the request was not answered within the server's request timeout: retry, or ask for less (a shorter wait_secs)".into(),
        (413, _) => "the request body is too large".into(),
        (415, _) => "the request body's Content-Type is not one this route takes".into(),
        (500..=599, Family::Callback) => {
            "the receiver failed to process the callback: send it again later".into()
        }
        (500..=599, _) => "internal error: the server log has the details".into(),
        _ => status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_owned(),
    }
}

/// `Router::fallback`: 404 in the family's shape.
pub(crate) async fn fallback(method: Method, req: Request) -> Response {
    let path = req.uri().path();
    let family = Family::of(path);
    refusal(
        family,
        StatusCode::NOT_FOUND,
        &default_message(family, StatusCode::NOT_FOUND, &method, path),
    )
}

/// Rewrites refusals of another shape into the family's (see the module docs).
pub(crate) async fn normalize(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let family = Family::of(&path);
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || family.accepts(resp.headers()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = if status.is_server_error() {
        // Never pass a 5xx's own text on (it may be a panic message).
        String::new()
    } else {
        axum::body::to_bytes(body, MAX_REWRITTEN_BODY)
            .await
            .map(|b| one_line(&String::from_utf8_lossy(&b)))
            .unwrap_or_default()
    };
    let mut message = if text.is_empty() {
        default_message(family, status, &method, &path)
    } else {
        text
    };
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
        && !allow.is_empty()
    {
        message = format!("{message}: use {allow}");
    }
    let mut fixed = refusal(family, status, &message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE
            && name != header::CONTENT_LENGTH
            && !fixed.headers().contains_key(name)
        {
            fixed.headers_mut().append(name, value.clone());
        }
    }
    fixed
}

/// `CatchPanicLayer::custom`: logs the panic and answers a bare 500, which [`normalize`] gives
/// the family's shape.
pub(crate) fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let what = err
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into());
    tracing::error!(panic = %what, "a request handler panicked; answered 500");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// Collapses whitespace and cuts to [`MAX_MESSAGE_CHARS`] (on a character boundary).
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    short_to(&joined, MAX_MESSAGE_CHARS)
}

fn short(s: &str) -> String {
    short_to(s, 120)
}

fn short_to(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_follow_the_path_prefix() {
        assert_eq!(Family::of("/api/v1/sources"), Family::Api);
        assert_eq!(Family::of("/api"), Family::Api);
        assert_eq!(Family::of("/healthz"), Family::Api);
        assert_eq!(Family::of("/.well-known/jwks.json"), Family::Api);
        assert_eq!(
            Family::of("/callback/x/registry/on-search"),
            Family::Callback
        );
        assert_eq!(Family::of("/callback"), Family::Callback);
        assert_eq!(Family::of("/registry/on-search"), Family::Callback);
        assert_eq!(Family::of("/callbackx"), Family::Console);
        assert_eq!(Family::of("/apix"), Family::Console);
        assert_eq!(Family::of("/sources"), Family::Console);
        assert_eq!(Family::of(""), Family::Console);
    }

    #[test]
    fn messages_are_cut_on_character_boundaries() {
        let s = "é".repeat(1000);
        let m = one_line(&s);
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(one_line(" a \n\t b "), "a b");
    }
}
