//! `POST /oauth2/client/token` (RFC 6749 §4.4 client credentials) and bearer checks.
//!
//! Credentials are accepted in the form body and by HTTP Basic; in the query string or a JSON
//! body only for clients whose quirks allow it, so that clients can be tested against both
//! well-behaved and OpenCRVS-like token endpoints.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use dci_protocol::RegistryType;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::config::read_scope;
use crate::reply;
use crate::state::{AppState, Issued};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Basic,
    Form,
    Json,
    Query,
}

#[derive(Default)]
struct Params {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

impl Params {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut p = Params::default();
        for (k, v) in pairs {
            match k.as_str() {
                "grant_type" => p.grant_type = Some(v),
                "client_id" => p.client_id = Some(v),
                "client_secret" => p.client_secret = Some(v),
                "scope" => p.scope = Some(v),
                _ => {}
            }
        }
        p
    }
    fn from_json(v: &Value) -> Self {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Params {
            grant_type: s("grant_type"),
            client_id: s("client_id"),
            client_secret: s("client_secret"),
            scope: s("scope"),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    let dec = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
            .unwrap_or_else(|| s.to_owned())
    };
    Some((dec(id), dec(secret)))
}

/// The token endpoint.
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    let body_params = if is_json {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => Params::from_json(&v),
            Err(_) => {
                return reply::oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the JSON body is not valid JSON",
                );
            }
        }
    } else {
        Params::from_pairs(serde_urlencoded::from_bytes(&body).unwrap_or_default())
    };
    let query_params = Params::from_pairs(
        query
            .as_deref()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default(),
    );
    let body_loc = if is_json {
        Location::Json
    } else {
        Location::Form
    };

    let creds = if let Some((id, secret)) = basic_credentials(&headers) {
        Some((id, secret, Location::Basic))
    } else if let (Some(id), Some(secret)) = (&body_params.client_id, &body_params.client_secret) {
        Some((id.clone(), secret.clone(), body_loc))
    } else if let (Some(id), Some(secret)) = (&query_params.client_id, &query_params.client_secret)
    {
        Some((id.clone(), secret.clone(), Location::Query))
    } else {
        None
    };
    let Some((client_id, secret, location)) = creds else {
        return reply::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no client credentials: send client_id and client_secret in the form body \
             (application/x-www-form-urlencoded) or by HTTP Basic",
        );
    };
    let Some(client) = state.cfg().clients.iter().find(|c| c.id == client_id) else {
        tracing::info!(client_id = %client_id, "token request for an unknown client");
        return reply::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed: unknown client_id or wrong client_secret",
        );
    };
    if !constant_time_eq(secret.as_bytes(), client.secret.expose_secret().as_bytes()) {
        tracing::info!(client_id = %client_id, "token request with a wrong secret");
        return reply::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed: unknown client_id or wrong client_secret",
        );
    }
    match location {
        Location::Query if !client.quirks.credentials_in_query => {
            return reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "credentials in the query string are not accepted for this client: send them \
                 in the form body or by HTTP Basic",
            );
        }
        Location::Json if !client.quirks.credentials_in_json => {
            return reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a JSON body is not accepted for this client: send \
                 application/x-www-form-urlencoded",
            );
        }
        _ => {}
    }
    let grant_type = body_params.grant_type.or(query_params.grant_type);
    match grant_type.as_deref() {
        Some("client_credentials") => {}
        None => {
            return reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required: send grant_type=client_credentials",
            );
        }
        Some(other) => {
            return reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type {other:?} is not supported: use client_credentials"),
            );
        }
    }
    let requested = body_params.scope.or(query_params.scope);
    let scopes: Vec<String> = match requested.as_deref().map(str::trim) {
        None | Some("") => client.scopes.clone(),
        Some(s) => {
            let wanted: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
            if let Some(bad) = wanted.iter().find(|w| !client.scopes.contains(w)) {
                return reply::oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!(
                        "scope {bad:?} is not allowed for this client; allowed: {}",
                        client.scopes.join(" ")
                    ),
                );
            }
            wanted
        }
    };
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    let access_token = URL_SAFE_NO_PAD.encode(raw);
    let lifetime = state.cfg().token_lifetime;
    let now = Instant::now();
    {
        let mut tokens = state.tokens();
        if tokens.len() > 50_000 {
            tokens.retain(|_, t| t.expires_at > now);
        }
        tokens.insert(
            access_token.clone(),
            Issued {
                client_id: client.id.clone(),
                scopes: scopes.clone(),
                expires_at: now + lifetime,
            },
        );
    }
    state
        .0
        .tokens_issued
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let secs = lifetime.as_secs();
    let expires_in = if client.quirks.expires_in_as_string {
        json!(secs.to_string())
    } else {
        json!(secs)
    };
    let mut resp = Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scopes.join(" "),
    }))
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Who made an authorised call.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) client_id: String,
}

/// Checks the bearer token, and the registry's read scope when `registry` is given.
#[allow(
    clippy::result_large_err,
    reason = "the error is the ready HTTP reply, the axum idiom"
)]
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    registry: Option<RegistryType>,
) -> Result<Caller, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(reply::unauthorized(
            "missing Authorization header: send `Authorization: Bearer <token>` with a token \
             from POST /oauth2/client/token",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(reply::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    };
    let issued = {
        let mut tokens = state.tokens();
        match tokens.get(&token) {
            None => None,
            Some(t) if t.expires_at <= Instant::now() => {
                tokens.remove(&token);
                return Err(reply::unauthorized(
                    "the access token has expired: get a new one",
                ));
            }
            Some(t) => Some(t.clone()),
        }
    };
    let Some(issued) = issued else {
        return Err(reply::unauthorized(
            "unknown or revoked access token: get a new one",
        ));
    };
    if let Some(r) = registry {
        let scope = read_scope(r);
        if !issued.scopes.contains(&scope) {
            return Err(reply::http_error(
                StatusCode::FORBIDDEN,
                "err.request.forbidden",
                &format!("the access token lacks the scope {scope:?} needed for /{r}"),
            ));
        }
    }
    Ok(Caller {
        client_id: issued.client_id,
    })
}
