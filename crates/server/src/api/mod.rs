//! The JSON gateway API under `/api/v1`, for systems in any language that use this client as a
//! sidecar. Every route but the OpenAPI document needs the admin token
//! (`Authorization: Bearer …`).
//!
//! The route table (`routes()`) is the list the router is built from, plus the typed registry
//! endpoints merged from `registries::router()` (listed for the document in
//! `openapi::REGISTRY_ROUTES`); tests check both against the OpenAPI document and that every
//! documented route is served, so the document cannot drift from the routes.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use serde::de::DeserializeOwned;

use crate::admin_token::AdminToken;
use crate::error::ApiError;
use crate::state::AppState;
use crate::throttle::{ClientKey, Throttle};

pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod openapi;
pub(crate) mod openapi_events;
pub(crate) mod openapi_jobs;
pub(crate) mod ops;
pub(crate) mod registries;
pub(crate) mod sources;
pub(crate) mod webhooks;

/// Where the API is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// Every protected route: method, path below [`API_PREFIX`], handler.
pub(crate) fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/sources", get(sources::list)),
        (Method::POST, "/sources", post(sources::create)),
        (Method::GET, "/sources/{code}", get(sources::get)),
        (Method::PUT, "/sources/{code}", put(sources::update)),
        (Method::DELETE, "/sources/{code}", delete(sources::delete)),
        (Method::POST, "/sources/{code}/test", post(sources::test)),
        (Method::POST, "/sources/{code}/search", post(ops::search)),
        (
            Method::POST,
            "/sources/{code}/subscribe",
            post(ops::subscribe),
        ),
        (
            Method::POST,
            "/sources/{code}/unsubscribe",
            post(ops::unsubscribe),
        ),
        (
            Method::POST,
            "/sources/{code}/txn-status",
            post(ops::txn_status),
        ),
        (Method::GET, "/transactions", get(ops::transactions)),
        (
            Method::GET,
            "/transactions/{transaction_id}",
            get(ops::transaction),
        ),
        (Method::GET, "/events", get(events::list)),
        (Method::POST, "/events/ack", post(events::ack)),
        (Method::GET, "/events/{id}", get(events::get)),
        (Method::GET, "/notifications", get(events::notifications)),
        (Method::GET, "/subscriptions", get(events::subscriptions)),
        (Method::GET, "/webhooks", get(webhooks::list)),
        (Method::POST, "/webhooks", post(webhooks::create)),
        (
            Method::POST,
            "/webhooks/redeliver",
            post(webhooks::redeliver),
        ),
        (Method::GET, "/webhooks/{id}", get(webhooks::get)),
        (Method::PUT, "/webhooks/{id}", put(webhooks::update)),
        (Method::DELETE, "/webhooks/{id}", delete(webhooks::delete)),
        (
            Method::GET,
            "/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        ),
        (Method::GET, "/audit", get(sources::audit)),
        (Method::POST, "/sources/{code}/jobs", post(jobs::submit)),
        (Method::GET, "/jobs", get(jobs::list)),
        (Method::GET, "/jobs/{id}", get(jobs::get)),
        (Method::GET, "/jobs/{id}/results", get(jobs::results)),
        (Method::POST, "/jobs/{id}/cancel", post(jobs::cancel)),
        (Method::GET, "/schedules", get(jobs::schedules)),
        (Method::POST, "/schedules", post(jobs::create_schedule)),
        (Method::GET, "/schedules/{id}", get(jobs::schedule)),
        (
            Method::DELETE,
            "/schedules/{id}",
            delete(jobs::delete_schedule),
        ),
        (
            Method::GET,
            "/schedules/{id}/runs",
            get(jobs::schedule_runs),
        ),
    ]
}

/// Public routes (no token): the OpenAPI document.
#[cfg(test)]
pub(crate) const PUBLIC_ROUTES: &[(Method, &str)] = &[(Method::GET, "/openapi.json")];

/// The `/api/v1` sub-router (already nested under the prefix).
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let mut protected = Router::new();
    for (_, path, handler) in routes() {
        protected = protected.route(path, handler);
    }
    protected = protected.merge(registries::router());
    let protected = protected
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.admin.clone(),
            require_admin,
        ));
    let api = Router::new()
        .route("/openapi.json", get(openapi::serve))
        .merge(protected);
    Router::new().nest(API_PREFIX, api)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such API route: GET /api/v1/openapi.json lists them".into())
}

/// Rejects requests without the admin token (`Authorization: Bearer …`). A wrong token counts
/// against the caller's address ([`crate::throttle`]); a locked-out address is answered 429
/// without its token being checked.
async fn require_admin(
    State(admin): State<AdminToken>,
    client: ClientKey,
    req: Request,
    next: Next,
) -> Response {
    let throttle = req.extensions().get::<Throttle>().cloned();
    if let Some(t) = &throttle
        && let Err(locked) = t.check(client)
    {
        return ApiError::TooManyRequests {
            retry_after_secs: locked.retry_after_secs(),
        }
        .into_response();
    }
    let header = req.headers().get(header::AUTHORIZATION);
    let presented = header.and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(rest)
    });
    match presented {
        Some(token) if admin.verify(token) => next.run(req).await,
        _ => {
            // A missing header is no guess; anything presented that is not the token is.
            if header.is_some() {
                tracing::info!(client = %client, "gateway API: wrong admin token refused");
                if let Some(t) = &throttle {
                    t.failed(client);
                }
            }
            ApiError::Unauthorized.into_response()
        }
    }
}

/// Parses a JSON body read as bytes, with the API's error shape.
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    T::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))
            } else {
                let detail = e.to_string();
                let field = detail
                    .strip_prefix("unknown field `")
                    .and_then(|r| r.split('`').next())
                    .unwrap_or("body")
                    .to_owned();
                ApiError::field(&field, detail)
            }
        })
}
