//! The gateway API's one error type and its JSON shape.
//!
//! Every failure leaves as
//! `{"error": {"kind", "message", "code"?, "fields"?, "registry"?, "hint"?}}` with a status that
//! says whose fault it was: 4xx for the caller, 502/503/504 for the registry, a bare 500 for us
//! (details go to the log, never to the caller). Client errors are asked what they are
//! (`is_timeout()`, `is_auth()`, …) rather than matched on text.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dci_client::{StoreError, ValidationErrors};
use serde_json::{Value, json};

use dci_client::EngineError;

/// `Result` with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// One field that failed validation, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiFieldError {
    /// The field's path in the request body's document (e.g. `auth.username`).
    pub field: String,
    /// Where it sits in the request body, as a JSON pointer (e.g. `/auth/username`).
    pub pointer: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// An API failure.
#[derive(Debug)]
pub enum ApiError {
    /// No or wrong admin token.
    Unauthorized,
    /// A personal API token we know but that no longer works (expired, revoked): the message
    /// says which and what to do.
    TokenRejected(String),
    /// The caller's role does not allow the route: the message names the role it needs.
    Forbidden(String),
    /// The thing named does not exist.
    NotFound(String),
    /// The request is malformed (bad JSON, wrong content type).
    BadRequest(String),
    /// A path or query parameter cannot be read (see [`crate::extract`]).
    BadParam {
        /// Summary naming the parameter.
        message: String,
        /// The parameter; its pointer is `/path/{name}` or `/query/{name}`.
        field: ApiFieldError,
    },
    /// The request body is too large.
    TooLarge(String),
    /// The route exists but not with this method.
    MethodNotAllowed(String),
    /// The body's `Content-Type` is not one the route takes.
    UnsupportedMediaType(String),
    /// The request took longer than the server's request timeout.
    RequestTimeout(String),
    /// Too many failed admin-token attempts from the caller's address; the token was not
    /// checked.
    TooManyRequests {
        /// Seconds until the address may try again (also sent as `Retry-After`).
        retry_after_secs: u64,
    },
    /// The gateway is at its limit of requests in flight (admission control): try again
    /// after `Retry-After` rather than wait in a queue.
    Overloaded {
        /// Seconds to wait before trying again (also sent as `Retry-After`).
        retry_after_secs: u64,
    },
    /// The request is well-formed but some fields are invalid.
    Invalid {
        /// Summary.
        message: String,
        /// Each invalid field.
        fields: Vec<ApiFieldError>,
    },
    /// It conflicts with the current state (code taken, source disabled).
    Conflict {
        /// What and how to resolve it.
        message: String,
        /// The field at fault, if any.
        field: Option<&'static str>,
    },
    /// The registry or the network failed, or the registry said no.
    Client(dci_client::Error),
    /// The registry refused the request in a reply or callback (`rjct`, ERR).
    Rejected(dci_client::RegistryError),
    /// The registry's reply failed signature verification.
    BadReply(String),
    /// An async result did not arrive in time (it may still arrive).
    Timeout {
        /// What happened and what to do.
        message: String,
        /// The transaction to look up later.
        transaction_id: String,
        /// Its state when waiting ended.
        state: String,
    },
    /// An async request's reply was lost: the transaction is being resolved (502).
    OutcomeUnknown {
        /// What happened and what to do.
        message: String,
        /// The transaction to look up.
        transaction_id: String,
    },
    /// The server is shutting down.
    Unavailable(String),
    /// Our own failure; logged, never shown.
    Internal(String),
}

impl ApiError {
    /// One invalid field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::Invalid {
            message: format!("{field} {message}"),
            fields: vec![ApiFieldError {
                field: field.to_owned(),
                pointer: format!("/{}", field.replace('.', "/")),
                message,
            }],
        }
    }

    /// A logged internal error.
    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(what.to_string())
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::TokenRejected(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::BadParam { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Client(e) => client_status(e),
            ApiError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadReply(_) => StatusCode::BAD_GATEWAY,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::OutcomeUnknown { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body (`{"error": {…}}`).
    pub fn body(&self) -> Value {
        let mut err = match self {
            ApiError::Unauthorized => json!({
                "kind": "unauthorized",
                "message": "missing or wrong token: send `Authorization: Bearer <token>` with the admin token (DCI_ADMIN_TOKEN) or a personal API token (`dci user token create`)",
            }),
            ApiError::TokenRejected(m) => json!({ "kind": "unauthorized", "message": m }),
            ApiError::Forbidden(m) => json!({ "kind": "forbidden", "message": m }),
            ApiError::NotFound(m) => json!({ "kind": "not_found", "message": m }),
            ApiError::BadRequest(m) => json!({ "kind": "bad_request", "message": m }),
            ApiError::BadParam { message, field } => json!({
                "kind": "bad_request", "message": message, "fields": [field],
            }),
            ApiError::TooLarge(m) => json!({ "kind": "too_large", "message": m }),
            ApiError::MethodNotAllowed(m) => json!({ "kind": "method_not_allowed", "message": m }),
            ApiError::UnsupportedMediaType(m) => {
                json!({ "kind": "unsupported_media_type", "message": m })
            }
            ApiError::RequestTimeout(m) => json!({ "kind": "request_timeout", "message": m }),
            ApiError::TooManyRequests { retry_after_secs } => json!({
                "kind": "too_many_requests",
                "message": format!(
                    "too many failed token attempts from your address: wait {retry_after_secs} s (Retry-After) and send the right token"
                ),
                "retry_after_secs": retry_after_secs,
            }),
            ApiError::Overloaded { retry_after_secs } => json!({
                "kind": "overloaded",
                "message": format!(
                    "the gateway is at its limit of requests in flight: try again in {retry_after_secs} s (Retry-After); nothing was sent for this request"
                ),
                "retry_after_secs": retry_after_secs,
            }),
            ApiError::Invalid { message, fields } => json!({
                "kind": "invalid_input", "message": message, "fields": fields,
            }),
            ApiError::Conflict { message, field } => {
                let mut v = json!({ "kind": "conflict", "message": message });
                if let Some(f) = field {
                    v["fields"] =
                        json!([{ "field": f, "pointer": format!("/{f}"), "message": message }]);
                }
                v
            }
            ApiError::Client(e) => client_body(e),
            ApiError::Rejected(r) => json!({
                "kind": "registry_rejected",
                "code": r.code,
                "message": format!("the registry rejected the request: {r}"),
                "registry": { "code": r.code, "message": r.message },
            }),
            ApiError::BadReply(m) => json!({ "kind": "registry_signature", "message": m }),
            ApiError::Timeout {
                message,
                transaction_id,
                state,
            } => json!({
                "kind": "timeout", "message": message,
                "transaction_id": transaction_id, "state": state,
            }),
            ApiError::OutcomeUnknown {
                message,
                transaction_id,
            } => json!({
                "kind": "outcome_unknown", "message": message,
                "transaction_id": transaction_id, "state": "unknown",
            }),
            ApiError::Unavailable(m) => json!({ "kind": "unavailable", "message": m }),
            ApiError::Internal(_) => json!({
                "kind": "internal",
                "message": "internal error: the server log has the details",
            }),
        };
        if let Some(obj) = err.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
        json!({ "error": err })
    }
}

/// Whose fault, from the client error's own answers.
fn client_status(e: &dci_client::Error) -> StatusCode {
    if e.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else if e.is_config() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else if e.is_auth() {
        // Our credentials for the registry were refused: the gateway is misconfigured, not the
        // caller unauthenticated, so not a 401.
        StatusCode::BAD_GATEWAY
    } else if e.is_rejected() {
        // The registry understood the request and said no (`rjct.*`, ACK ERR): the request
        // cannot be processed as it stands.
        StatusCode::UNPROCESSABLE_ENTITY
    } else if e.status().map(|s| s.as_u16()) == Some(503) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_GATEWAY
    }
}

fn client_body(e: &dci_client::Error) -> Value {
    let kind = if e.is_rejected() && !e.is_auth() {
        "registry_rejected"
    } else {
        match e.class() {
            "config" => "source_config",
            "timeout" => "registry_timeout",
            "auth" | "rejected" => "registry_auth",
            _ => "registry_unavailable",
        }
    };
    let registry = e.registry_error();
    json!({
        "kind": kind,
        "class": e.class(),
        "code": registry.and_then(|r| r.code.clone()),
        "message": e.to_string(),
        "registry": registry.map(|r| json!({ "code": r.code, "message": r.message })),
        "http_status": e.status().map(|s| s.as_u16()),
        "hint": e.hint(),
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            ApiError::Client(e) => {
                tracing::warn!(error = %e, class = e.class(), "registry call failed")
            }
            _ => {}
        }
        let mut resp = (self.status(), Json(self.body())).into_response();
        match &self {
            ApiError::Unauthorized | ApiError::TokenRejected(_) => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"dci\""),
                );
            }
            ApiError::TooManyRequests { retry_after_secs }
            | ApiError::Overloaded { retry_after_secs } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        resp
    }
}

impl From<dci_client::Error> for ApiError {
    fn from(e: dci_client::Error) -> Self {
        ApiError::Client(e)
    }
}

impl From<dci_client::OpsError> for ApiError {
    fn from(e: dci_client::OpsError) -> Self {
        use dci_client::OpsError as E;
        match e {
            E::Invalid { field, message } => ApiError::field(&field, message),
            E::Client(c) => ApiError::Client(c),
            E::Rejected(r) => ApiError::Rejected(r),
            E::Store(s) => s.into(),
            E::SigningKey(m) => ApiError::Conflict {
                message: format!("the data source's signing key cannot sign: {m}"),
                field: Some("signing_key_id"),
            },
            E::Verification(m) => ApiError::BadReply(format!(
                "the registry's reply failed signature verification: {m}"
            )),
            ref t @ E::Timeout {
                ref transaction_id,
                state,
            } => ApiError::Timeout {
                message: t.to_string(),
                transaction_id: transaction_id.clone(),
                state: state.as_str().to_owned(),
            },
            ref u @ E::OutcomeUnknown {
                ref transaction_id, ..
            } => ApiError::OutcomeUnknown {
                message: u.to_string(),
                transaction_id: transaction_id.clone(),
            },
            E::NotFound(m) => ApiError::NotFound(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(code) => ApiError::NotFound(format!(
                "no data source {code:?}: GET /api/v1/sources lists the codes"
            )),
            StoreError::CodeTaken(code) => ApiError::Conflict {
                message: format!(
                    "code {code:?} is already taken by another data source: choose another code"
                ),
                field: Some("code"),
            },
            StoreError::Missing(m) => ApiError::NotFound(m),
            StoreError::Conflict(m) => ApiError::Conflict {
                message: m,
                field: None,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<dci_client::users::UserError> for ApiError {
    fn from(e: dci_client::users::UserError) -> Self {
        use dci_client::users::UserError as E;
        match e {
            E::Invalid { field, message } => ApiError::field(field, message),
            E::NotFound(m) => ApiError::NotFound(m),
            ref t @ E::Taken(_) => ApiError::Conflict {
                message: t.to_string(),
                field: Some("username"),
            },
            E::Store(s) => s.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(_) => ApiError::NotFound(e.to_string()),
            EngineError::Disabled(_) => ApiError::Conflict {
                message: e.to_string(),
                field: Some("active"),
            },
            EngineError::Store(s) => s.into(),
            EngineError::Client(c) => c.into(),
            EngineError::Ops(o) => o.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<dci_client::SaveError> for ApiError {
    fn from(e: dci_client::SaveError) -> Self {
        match e {
            dci_client::SaveError::Invalid(errs) => errs.into(),
            dci_client::SaveError::Store(s) => s.into(),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errs: ValidationErrors) -> Self {
        let fields = errs
            .errors()
            .iter()
            .map(|e| ApiFieldError {
                field: e.field.to_owned(),
                pointer: e.pointer(),
                message: e.message.clone(),
            })
            .collect();
        ApiError::Invalid {
            message: format!("invalid data source: {errs}").replace('\n', "; "),
            fields,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match &r {
            JsonRejection::JsonDataError(e) => {
                // serde's message names the path ("unknown field `x`", "missing field `y`").
                let detail = std::error::Error::source(e)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| e.body_text());
                ApiError::Invalid {
                    message: format!("the request body does not have the expected shape: {detail}"),
                    fields: field_from_serde(&detail).into_iter().collect(),
                }
            }
            JsonRejection::JsonSyntaxError(_) => ApiError::BadRequest(format!(
                "the request body is not valid JSON: {}",
                r.body_text()
            )),
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ),
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge("the request body is too large".into())
            }
            _ if is_body_timeout(&r) => ApiError::RequestTimeout(
                "the request body stopped arriving before its Content-Length was reached: send the whole body".into(),
            ),
            _ => ApiError::BadRequest(r.body_text()),
        }
    }
}

/// Whether reading the body failed because it stalled (`RequestBodyTimeoutLayer`).
pub(crate) fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Pulls the field out of serde's "unknown field `x`" / "missing field `x`" / "x: invalid type"
/// messages, so even a shape error names the field.
fn field_from_serde(detail: &str) -> Option<ApiFieldError> {
    let name = if let Some(rest) = detail
        .strip_prefix("unknown field `")
        .or_else(|| detail.strip_prefix("missing field `"))
    {
        rest.split('`').next()?.to_owned()
    } else {
        // serde_path_to_error style "a.b: message"
        let (path, _) = detail.split_once(": ")?;
        if path.contains(' ') {
            return None;
        }
        path.to_owned()
    };
    Some(ApiFieldError {
        pointer: format!("/{}", name.replace('.', "/")),
        field: name,
        message: detail.to_owned(),
    })
}

/// `axum::Json` whose rejections are [`ApiError`]s, so malformed bodies get the API's shape.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

impl From<dci_client::jobs::JobsError> for ApiError {
    fn from(e: dci_client::jobs::JobsError) -> Self {
        use dci_client::bulk::BulkError as B;
        use dci_client::jobs::JobsError as J;
        match e {
            J::NoDirectory => ApiError::Conflict {
                message: e.to_string(),
                field: None,
            },
            J::Invalid { field, message } => ApiError::field(field, message),
            J::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
            J::NotFound(_) => ApiError::NotFound(format!("{e}: GET /api/v1/jobs lists them")),
            J::Fetch { .. } => ApiError::BadRequest(e.to_string()),
            J::Engine(e) => e.into(),
            J::Store(s) => s.into(),
            J::Bulk(B::Invalid { field, message }) => ApiError::field(&field, message),
            J::Bulk(b) if b.is_invalid_input() => ApiError::field(
                "body",
                format!("the input cannot be read: {b}: check input_format and the file"),
            ),
            J::Bulk(B::NotFound(id)) => {
                ApiError::NotFound(format!("no job {id:?}: GET /api/v1/jobs lists them"))
            }
            J::Bulk(B::Store(s)) => s.into(),
            J::Bulk(B::Ops(o)) => o.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<dci_client::jobs::AddScheduleError> for ApiError {
    fn from(e: dci_client::jobs::AddScheduleError) -> Self {
        match e {
            dci_client::jobs::AddScheduleError::Invalid(errs) => {
                let fields = errs
                    .errors()
                    .iter()
                    .map(|e| ApiFieldError {
                        field: e.field.to_owned(),
                        pointer: e.pointer(),
                        message: e.message.clone(),
                    })
                    .collect();
                ApiError::Invalid {
                    message: format!("invalid schedule: {errs}").replace('\n', "; "),
                    fields,
                }
            }
            dci_client::jobs::AddScheduleError::Store(s) => s.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
