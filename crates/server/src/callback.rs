//! The callback receiver: where registries POST `on-search`, `on-subscribe`, `on-unsubscribe`,
//! `txn-on-status` and `notify`.
//!
//! A data source's `callback_uri` is the base of its routes: `dci serve` answers under
//! `/callback/{code}` at the spec's paths (`/registry/on-search`, …), and a POST to the bare
//! `/callback/{code}` is routed on `header.action`. This module only handles HTTP (body limit,
//! shutdown) and hands the bytes to `dci_client::ops::ingest`, which checks the envelope, the
//! source, the action against the path, the sender and the signature under the source's
//! policy, refuses replays, and persists the callback before we answer ACK.
//!
//! Each route also exists with the source's callback secret after the code
//! (`/callback/{code}/{secret}/registry/on-search`, `/callback/{code}/{secret}`): that is the URL
//! we send as `sender_uri`, so a registry that posts to it verbatim authenticates itself. The
//! secret may instead come as `Authorization: Bearer {secret}`. Both are handed to `ingest_with`,
//! which decides (a signed callback needs neither under a signature policy).
//!
//! The same five paths are also served at the root (`/registry/on-search`, …): the DCI default
//! for a `sender_uri` configured once at onboarding. Such a callback names no source in its
//! URL; `dci_client::ops::ingest_at_root` finds it from the transaction, the correlation id or
//! the sender id, and then authenticates it exactly as the source's own route would (the secret
//! can only come as a bearer token there).
//!
//! Every answer has the DCI ACK shape and stores nothing when it refuses. DCI-level refusals
//! (signature, unknown transaction, sender, malformed message) are HTTP 200 with ACK `ERR` and
//! the spec's error code, unless the source keeps HTTP-status refusals; transport ones (body
//! over the limit or not JSON, wrong or missing callback secret where required, unknown source
//! in the URL, shutting down) are HTTP 4xx/503 with ACK `ERR`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dci_client::ops::callbacks::{CallbackCredentials, CallbackRejection, ingest_with};
use dci_client::ops::ingest_at_root;
use dci_protocol::codes::{Action, ErrorCode};
use dci_protocol::envelope::AckResponse;
use time::OffsetDateTime;

use crate::state::AppState;

/// The callback paths below `/callback/{code}` and the action each one takes.
pub const CALLBACK_PATHS: &[(&str, &str)] = &[
    ("/registry/on-search", "on-search"),
    ("/registry/on-subscribe", "on-subscribe"),
    ("/registry/on-unsubscribe", "on-unsubscribe"),
    ("/registry/txn/on-status", "txn-on-status"),
    ("/registry/notify", "notify"),
];

/// Where a callback is for: the data source named in the URL (with the callback secret when the
/// URL carries it), or none (a root route: found from the message).
enum Target {
    Source(String, Option<String>),
    Root,
}

/// The callback sub-router.
pub(crate) fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/callback/{code}", post(bare))
        .route("/callback/{code}/{secret}", post(bare_with_secret));
    for (path, action) in CALLBACK_PATHS {
        let action: &'static str = action;
        r = r
            .route(
                path,
                post(
                    move |st: State<AppState>,
                          headers: HeaderMap,
                          body: Result<Bytes, BytesRejection>| {
                        receive(st, headers, Ok(Target::Root), Some(action), body)
                    },
                ),
            )
            .route(
                &format!("/callback/{{code}}{path}"),
                post(
                    move |st: State<AppState>,
                          headers: HeaderMap,
                          code: Result<Path<String>, PathRejection>,
                          body: Result<Bytes, BytesRejection>| {
                        let code = code.map(|Path(c)| Target::Source(c, None));
                        receive(st, headers, code, Some(action), body)
                    },
                ),
            )
            .route(
                &format!("/callback/{{code}}/{{secret}}{path}"),
                post(
                    move |st: State<AppState>,
                          headers: HeaderMap,
                          code: Result<Path<(String, String)>, PathRejection>,
                          body: Result<Bytes, BytesRejection>| {
                        let code = code.map(|Path((c, s))| Target::Source(c, Some(s)));
                        receive(st, headers, code, Some(action), body)
                    },
                ),
            );
    }
    r
}

async fn bare(
    st: State<AppState>,
    headers: HeaderMap,
    code: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let target = code.map(|Path(c)| Target::Source(c, None));
    receive(st, headers, target, None, body).await
}

async fn bare_with_secret(
    st: State<AppState>,
    headers: HeaderMap,
    code: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(
        st,
        headers,
        code.map(|Path((c, s))| Target::Source(c, Some(s))),
        None,
        body,
    )
    .await
}

/// `path` fit for a log: the segment after `/callback/{code}/` is shown as `********` unless it
/// is the start of a callback route (`registry`), since it is then the callback secret.
pub fn redacted_path(path: &str) -> std::borrow::Cow<'_, str> {
    let Some(rest) = path.strip_prefix("/callback/") else {
        return path.into();
    };
    let mut parts = rest.splitn(3, '/');
    let (code, second, tail) = (parts.next(), parts.next(), parts.next());
    match (code, second) {
        (Some(code), Some(second)) if !second.is_empty() && second != "registry" => {
            let tail = tail.map(|t| format!("/{t}")).unwrap_or_default();
            format!("/callback/{code}/{}{tail}", dci_client::MASKED).into()
        }
        _ => path.into(),
    }
}

/// The token of `Authorization: Bearer …`, if the header has that form.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// A refusal: HTTP status plus ACK `ERR` with a DCI error code.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        tracing::info!(status = self.status.as_u16(), code = self.code.as_str(), reason = %self.message, "callback refused");
        let body = AckResponse::err(
            &dci_protocol::build::new_id(),
            self.code,
            &self.message,
            OffsetDateTime::now_utc(),
        );
        (self.status, axum::Json(body)).into_response()
    }
}

async fn receive(
    State(st): State<AppState>,
    headers: HeaderMap,
    target: Result<Target, PathRejection>,
    expected: Option<&'static str>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (code, url_secret) = match target {
        Ok(Target::Source(code, secret)) => (Some(code), secret),
        Ok(Target::Root) => (None, None),
        Err(rej) => return path_refusal(&rej).into_response(),
    };
    let credentials = CallbackCredentials {
        url_secret,
        bearer: bearer(&headers),
    };
    match receive_inner(&st, code.as_deref(), expected, body, &credentials).await {
        Ok(r) | Err(r) => r,
    }
}

/// A `{code}` that cannot be read (not UTF-8 once percent-decoded).
fn path_refusal(rej: &PathRejection) -> Refusal {
    if rej.status().is_server_error() {
        tracing::error!(error = %rej.body_text(), "callback route without its code parameter");
        return Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServiceUnavailable,
            "the receiver failed to read its route: send the callback again later",
        );
    }
    Refusal::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::RequestBad,
        "the data source code in the path is not valid: it must be UTF-8 text once percent-decoded (codes are lowercase letters, digits and _)",
    )
}

async fn receive_inner(
    st: &AppState,
    code: Option<&str>,
    expected: Option<&'static str>,
    body: Result<Bytes, BytesRejection>,
    credentials: &CallbackCredentials,
) -> Result<Response, Response> {
    let body = body.map_err(|rej| {
        let status = rej.status();
        if crate::error::is_body_timeout(&rej) {
            return Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                "the body stopped arriving before its Content-Length was reached: send the whole body",
            )
            .into_response();
        }
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the body is larger than {} bytes", st.config.body_limit)
        } else {
            rej.body_text()
        };
        Refusal::new(status, ErrorCode::RequestBad, msg).into_response()
    })?;
    if st.shutdown.is_triggered() {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            "the receiver is shutting down: retry shortly",
        )
        .into_response());
    }
    let path_action = expected.map(Action::parse_lenient);
    let answer = match code {
        Some(code) => ingest_with(&st.ingest, code, &body, path_action, credentials).await,
        None => ingest_at_root(&st.ingest, &body, path_action, credentials).await,
    };
    match answer {
        Ok(ack) => Ok((StatusCode::OK, axum::Json(ack)).into_response()),
        Err(rej) => Err(refused(code.unwrap_or("(root)"), &rej)),
    }
}

/// The answer to a refusal from the library: its answer status (200 for a DCI-level refusal,
/// unless the source keeps HTTP statuses) with the ACK `ERR`.
fn refused(source: &str, rej: &CallbackRejection) -> Response {
    tracing::info!(source = %source, status = rej.answer_status, meaning = rej.http_status,
        code = %rej.code, reason = %rej.message, "callback refused");
    let status = StatusCode::from_u16(rej.answer_status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(rej.to_ack(OffsetDateTime::now_utc()))).into_response()
}

#[cfg(test)]
mod tests {
    use super::redacted_path;

    #[test]
    fn logged_paths_mask_the_callback_secret() {
        assert_eq!(
            redacted_path("/callback/crvs/SeCrEt123/registry/on-search"),
            "/callback/crvs/********/registry/on-search"
        );
        assert_eq!(
            redacted_path("/callback/crvs/SeCrEt123"),
            "/callback/crvs/********"
        );
        assert_eq!(
            redacted_path("/callback/crvs/registry/on-search"),
            "/callback/crvs/registry/on-search"
        );
        assert_eq!(redacted_path("/callback/crvs"), "/callback/crvs");
        assert_eq!(redacted_path("/api/v1/sources"), "/api/v1/sources");
    }
}
