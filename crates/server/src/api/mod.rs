//! The JSON gateway API under `/api/v1`, for systems in any language that use this client as a
//! sidecar. Every route but the OpenAPI document needs a token (`Authorization: Bearer …`:
//! the admin token, the read-only token or a personal API token) whose role allows it
//! ([`crate::auth`]): viewers read, operators also search and test, admins also configure.
//!
//! The route table (`routes()`) is the list the router is built from, plus the typed registry
//! endpoints merged from `registries::router()` (listed for the document in
//! `openapi::REGISTRY_ROUTES`); tests check both against the OpenAPI document and that every
//! documented route is served, so the document cannot drift from the routes.

use axum::Router;
use axum::extract::Extension;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};
use dci_client::users::Role;
use serde::de::DeserializeOwned;

use crate::auth::ApiViewer;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) mod audit;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod openapi;
pub(crate) mod openapi_events;
pub(crate) mod openapi_jobs;
pub(crate) mod openapi_users;
pub(crate) mod ops;
pub(crate) mod registries;
pub(crate) mod sources;
pub(crate) mod users;
pub(crate) mod webhooks;

/// Where the API is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// Every protected route: method, path below [`API_PREFIX`], the role it needs, handler. The
/// handler's role extractor ([`crate::auth`]) enforces the role; a test calls every route with
/// every role and checks the answers against this table.
pub(crate) fn routes() -> Vec<(Method, &'static str, Role, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/sources", Role::Viewer, get(sources::list)),
        (Method::POST, "/sources", Role::Admin, post(sources::create)),
        (
            Method::GET,
            "/sources/{code}",
            Role::Viewer,
            get(sources::get),
        ),
        (
            Method::PUT,
            "/sources/{code}",
            Role::Admin,
            put(sources::update),
        ),
        (
            Method::DELETE,
            "/sources/{code}",
            Role::Admin,
            delete(sources::delete),
        ),
        (
            Method::POST,
            "/sources/{code}/test",
            Role::Operator,
            post(sources::test),
        ),
        (
            Method::POST,
            "/sources/{code}/search",
            Role::Operator,
            post(ops::search),
        ),
        (
            Method::POST,
            "/sources/{code}/subscribe",
            Role::Operator,
            post(ops::subscribe),
        ),
        (
            Method::POST,
            "/sources/{code}/unsubscribe",
            Role::Operator,
            post(ops::unsubscribe),
        ),
        (
            Method::POST,
            "/sources/{code}/txn-status",
            Role::Operator,
            post(ops::txn_status),
        ),
        (
            Method::GET,
            "/transactions",
            Role::Viewer,
            get(ops::transactions),
        ),
        (
            Method::GET,
            "/transactions/{transaction_id}",
            Role::Viewer,
            get(ops::transaction),
        ),
        (Method::GET, "/events", Role::Viewer, get(events::list)),
        (
            Method::POST,
            "/events/ack",
            Role::Operator,
            post(events::ack),
        ),
        (Method::GET, "/events/{id}", Role::Viewer, get(events::get)),
        (
            Method::GET,
            "/notifications",
            Role::Viewer,
            get(events::notifications),
        ),
        (
            Method::GET,
            "/subscriptions",
            Role::Viewer,
            get(events::subscriptions),
        ),
        (Method::GET, "/webhooks", Role::Viewer, get(webhooks::list)),
        (
            Method::POST,
            "/webhooks",
            Role::Admin,
            post(webhooks::create),
        ),
        (
            Method::POST,
            "/webhooks/redeliver",
            Role::Admin,
            post(webhooks::redeliver),
        ),
        (
            Method::GET,
            "/webhooks/{id}",
            Role::Viewer,
            get(webhooks::get),
        ),
        (
            Method::PUT,
            "/webhooks/{id}",
            Role::Admin,
            put(webhooks::update),
        ),
        (
            Method::DELETE,
            "/webhooks/{id}",
            Role::Admin,
            delete(webhooks::delete),
        ),
        (
            Method::GET,
            "/webhooks/{id}/deliveries",
            Role::Viewer,
            get(webhooks::deliveries),
        ),
        (Method::GET, "/audit", Role::Viewer, get(sources::audit)),
        (
            Method::GET,
            "/audit/changes",
            Role::Viewer,
            get(audit::changes),
        ),
        (
            Method::GET,
            "/audit/export",
            Role::Viewer,
            get(audit::export),
        ),
        (Method::GET, "/users", Role::Admin, get(users::list)),
        (Method::POST, "/users", Role::Admin, post(users::create)),
        (
            Method::DELETE,
            "/users/{username}",
            Role::Admin,
            delete(users::delete),
        ),
        (Method::GET, "/me", Role::Viewer, get(users::me)),
        (
            Method::POST,
            "/sources/{code}/jobs",
            Role::Operator,
            post(jobs::submit),
        ),
        (Method::GET, "/jobs", Role::Viewer, get(jobs::list)),
        (Method::GET, "/jobs/{id}", Role::Viewer, get(jobs::get)),
        (
            Method::GET,
            "/jobs/{id}/results",
            Role::Viewer,
            get(jobs::results),
        ),
        (
            Method::POST,
            "/jobs/{id}/cancel",
            Role::Operator,
            post(jobs::cancel),
        ),
        (
            Method::GET,
            "/schedules",
            Role::Viewer,
            get(jobs::schedules),
        ),
        (
            Method::POST,
            "/schedules",
            Role::Admin,
            post(jobs::create_schedule),
        ),
        (
            Method::GET,
            "/schedules/{id}",
            Role::Viewer,
            get(jobs::schedule),
        ),
        (
            Method::DELETE,
            "/schedules/{id}",
            Role::Admin,
            delete(jobs::delete_schedule),
        ),
        (
            Method::GET,
            "/schedules/{id}/runs",
            Role::Viewer,
            get(jobs::schedule_runs),
        ),
    ]
}

/// Every protected route (the typed registry endpoints included, which need the operator
/// role: each one searches a registry) with the role it needs: method, path below
/// [`API_PREFIX`], role.
pub fn route_roles() -> Vec<(Method, String, Role)> {
    let mut all: Vec<(Method, String, Role)> = routes()
        .into_iter()
        .map(|(m, p, r, _)| (m, p.to_owned(), r))
        .collect();
    for (m, p, _) in openapi::REGISTRY_ROUTES {
        let m = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap_or(Method::GET);
        all.push((m, (*p).to_owned(), Role::Operator));
    }
    all
}

/// Public routes (no token): the OpenAPI document.
#[cfg(test)]
pub(crate) const PUBLIC_ROUTES: &[(Method, &str)] = &[(Method::GET, "/openapi.json")];

/// The `/api/v1` sub-router (already nested under the prefix).
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let mut protected = Router::new();
    for (_, path, _, handler) in routes() {
        protected = protected.route(path, handler);
    }
    protected = protected.merge(registries::router());
    // The read-only token of the console is a viewer's token on the API too.
    let console =
        (state.config.console.clone()).unwrap_or_else(crate::console::ConsoleConfig::from_env);
    let readonly = crate::auth::ReadonlyDigest::of(Some(&console));
    let protected = protected.fallback(not_found).layer(Extension(readonly));
    let api = Router::new()
        .route("/openapi.json", get(openapi::serve))
        .merge(protected);
    Router::new().nest(API_PREFIX, api)
}

/// Unknown routes answer 404 only to a caller who may read the API (401 to anyone else).
async fn not_found(_: ApiViewer) -> ApiError {
    ApiError::NotFound("no such API route: GET /api/v1/openapi.json lists them".into())
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
