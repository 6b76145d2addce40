//! Extractors whose rejections are [`ApiError`]s, so a malformed path or query string gets the
//! API's JSON error shape naming the parameter, not axum's plain-text rejection:
//! [`ApiPath`] for `axum::extract::Path`, [`ApiQuery`] for `axum::extract::Query` (and
//! [`crate::ApiJson`] for bodies).
//!
//! A parameter that cannot be read is a 400 `bad_request` whose `fields` entry names it, with a
//! pointer into the request's parts: `/path/{name}` or `/query/{name}`.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, RawPathParams};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiFieldError};

/// `axum::extract::Path` whose rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(rej) => {
                // A single parameter is deserialised without its name: look it up.
                let only = RawPathParams::from_request_parts(parts, state)
                    .await
                    .ok()
                    .and_then(|p| {
                        let mut it = p.iter();
                        let (key, _) = it.next()?;
                        it.next().is_none().then(|| key.to_owned())
                    });
                Err(path_error(&rej, only.as_deref()))
            }
        }
    }
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

fn param(location: &str, name: &str, message: String) -> ApiError {
    ApiError::BadParam {
        message: format!("{location} parameter `{name}`: {message}"),
        field: ApiFieldError {
            field: name.to_owned(),
            pointer: format!("/{location}/{}", name.replace('~', "~0").replace('/', "~1")),
            message,
        },
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        path_error(&r, None)
    }
}

/// `only` is the route's one parameter, when it has just one.
fn path_error(r: &PathRejection, only: Option<&str>) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(e) = r else {
        // No parameters where the route declares some: a routing bug of ours.
        return ApiError::internal(r.body_text());
    };
    match e.kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => param(
            "path",
            key,
            "is not valid UTF-8 once percent-decoded: percent-encode UTF-8 text".into(),
        ),
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => param(
            "path",
            key,
            format!("{:?} is not a valid {expected_type}", short(value)),
        ),
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => param(
            "path",
            key,
            format!("{:?} is not valid: {message}", short(value)),
        ),
        ErrorKind::ParseError {
            value,
            expected_type,
        } if only.is_some() => param(
            "path",
            only.unwrap_or_default(),
            format!("{:?} is not a valid {expected_type}", short(value)),
        ),
        ErrorKind::ParseError {
            value,
            expected_type,
        } => ApiError::BadRequest(format!(
            "the path segment {:?} is not a valid {expected_type}",
            short(value)
        )),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => ApiError::BadRequest(format!(
            "path segment {index} ({:?}) is not a valid {expected_type}",
            short(value)
        )),
        // Wrong parameter count, unsupported target type: our bug, not the caller's.
        _ => ApiError::internal(r.body_text()),
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        // serde_path_to_error gives "name: message" when it knows the parameter.
        let detail = match &r {
            QueryRejection::FailedToDeserializeQueryString(e) => {
                std::error::Error::source(e).map_or_else(|| r.body_text(), ToString::to_string)
            }
            _ => r.body_text(),
        };
        match detail.split_once(": ") {
            Some((name, message)) if !name.is_empty() && !name.contains(' ') => {
                param("query", name, message.to_owned())
            }
            _ => ApiError::BadRequest(format!("the query string is not valid: {detail}")),
        }
    }
}

/// A caller's value, cut to a length that fits in a message.
fn short(v: &str) -> String {
    const MAX: usize = 80;
    if v.chars().count() <= MAX {
        v.to_owned()
    } else {
        let mut s: String = v.chars().take(MAX).collect();
        s.push('…');
        s
    }
}
