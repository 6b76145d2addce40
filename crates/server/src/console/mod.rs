//! The admin console: server-rendered HTML pages for sysadmins, merged into [`crate::router`].
//!
//! Map:
//! - [`session`]: sign-in with a username and password, or with the admin token (or a
//!   read-only token); server-side sessions in the store (they survive a restart and are
//!   shared by instances); cookies (`HttpOnly`, `SameSite=Strict`, `Secure` over https); a
//!   CSRF token on every form; the role extractors every page takes (viewer: pages; operator:
//!   also search and Test Connection; admin: also changes and keys).
//! - [`sources`]: DCI > Configuration > Data Sources — list with state badges and filters, the
//!   grouped form with inline validation errors and write-only secrets, Test Connection (the
//!   same `dci_client::test_connection` as `dci source test`), clear token cache.
//! - [`search`]: one sync search, results drawn by [`records`] as the registry's typed view (a
//!   person, a group with members, a farmer, a disability status, enrolments).
//! - [`transactions`]: async requests with ACK and callbacks, one page per transaction,
//!   subscriptions, notifications with their content.
//! - [`log`]: the audit log. [`changes`]: the change audit (who changed what, when, which
//!   fields). [`keys`]: signing keys (revoke after a confirmation page).
//! - [`jobs`]: background bulk jobs (upload, progress, download results, cancel).
//!   [`schedules`]: on the same page, the schedules with their latest runs, add (a form with
//!   its errors beside the fields) and remove (after a confirmation page).
//! - [`events`]: the events outbox, one event with its deliveries and attempts.
//! - [`webhooks`]: delivery endpoints (webhooks and RabbitMQ sinks) with add, remove (after a
//!   confirmation page) and redeliver.
//! - [`view`]: the layout and small HTML helpers (maud escapes every interpolation).
//!
//! Routes are stable so bookmarks and scripts keep working: `GET/POST /login`, `POST /logout`,
//! `GET /sources`, `GET/POST /sources/new`, `GET/POST /sources/{code}`,
//! `POST /sources/{code}/test`, `POST /sources/{code}/clear-token`,
//! `GET/POST /sources/{code}/delete` (confirmation, then delete), `GET/POST /search`,
//! `GET /transactions`, `GET /transactions/{id}`, `GET/POST /jobs`, `GET /jobs/{id}/results`,
//! `POST /jobs/{id}/cancel`, `POST /schedules`, `GET/POST /schedules/{id}/remove` (confirmation,
//! then remove), `GET /log`, `GET /changes`, `GET/POST /keys`,
//! `POST /keys/{id}/activate`, `GET/POST /keys/{id}/revoke` (confirmation, then revoke),
//! `GET /events`, `GET /events/{id}`, `GET/POST /webhooks`, `GET/POST /webhooks/{id}/remove`
//! (confirmation, then remove), `POST /webhooks/redeliver`.
//!
//! Every page works without JavaScript; one small script only moves the focus to the error
//! summary after a failed submit and hides the authentication fields of the auth types not
//! chosen, and vendored htmx (`/static/htmx.min.js`) lets Test Connection
//! replace just its panel instead of reloading the page. No secret or token is ever written
//! into HTML: stored secrets show as `********`, and a secret typed into a form that fails
//! validation is not echoed back.
//!
//! Owns: HTML, sessions, CSRF. Does not own: what the pages do (`dci_client`), storage.

mod changes;
mod events;
mod jobs;
mod keys;
mod log;
mod records;
mod schedules;
mod search;
pub mod session;
mod sources;
mod transactions;
pub(crate) mod view;
mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::Method;
use axum::response::Redirect;
use axum::routing::{MethodRouter, get, post};
use dci_client::users::Role;
use secrecy::SecretString;

use crate::state::AppState;
pub use session::Sessions;

/// Environment variable: a second token that logs in read-only (may view, not edit or test).
pub const READONLY_TOKEN_ENV: &str = "DCI_CONSOLE_READONLY_TOKEN";
/// Environment variable: `1`/`true` marks session cookies `Secure` even on plain http (set it
/// when a TLS-terminating proxy does not send `X-Forwarded-Proto: https`).
pub const SECURE_COOKIES_ENV: &str = "DCI_CONSOLE_SECURE_COOKIES";

/// Settings of the console.
#[derive(Clone, Default)]
pub struct ConsoleConfig {
    /// A token that logs in with the read-only role.
    pub readonly_token: Option<SecretString>,
    /// Always mark session cookies `Secure`.
    pub secure_cookies: bool,
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field(
                "readonly_token",
                &self.readonly_token.as_ref().map(|_| "[redacted]"),
            )
            .field("secure_cookies", &self.secure_cookies)
            .finish()
    }
}

impl ConsoleConfig {
    /// Reads [`READONLY_TOKEN_ENV`] and [`SECURE_COOKIES_ENV`].
    pub fn from_env() -> ConsoleConfig {
        let readonly_token = std::env::var(READONLY_TOKEN_ENV)
            .ok()
            .filter(|t| t.trim().len() >= 16)
            .map(SecretString::from);
        if std::env::var(READONLY_TOKEN_ENV)
            .is_ok_and(|t| !t.trim().is_empty() && t.trim().len() < 16)
        {
            tracing::warn!("{READONLY_TOKEN_ENV} is shorter than 16 characters and is ignored");
        }
        let secure_cookies = std::env::var(SECURE_COOKIES_ENV)
            .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        ConsoleConfig {
            readonly_token,
            secure_cookies,
        }
    }
}

/// The console with settings from the environment ([`ConsoleConfig::from_env`]).
pub fn router() -> Router<AppState> {
    router_with(ConsoleConfig::from_env())
}

/// Every console route: method, path, the role it needs (`None`: the sign-in pages and static
/// files, open to all), handler. The handler's role extractor (`session::ConsoleViewer`, …)
/// enforces the role; a test calls every route with every role and checks the answers
/// against this table.
pub(crate) fn routes() -> Vec<(Method, &'static str, Option<Role>, MethodRouter<AppState>)> {
    use Role::{Admin, Operator, Viewer};
    vec![
        (
            Method::GET,
            "/",
            None,
            get(|| async { Redirect::to("/sources") }),
        ),
        (Method::GET, "/login", None, get(session::login_page)),
        (Method::POST, "/login", None, post(session::login)),
        (Method::POST, "/logout", None, post(session::logout)),
        (Method::GET, "/sources", Some(Viewer), get(sources::list)),
        (
            Method::GET,
            "/sources/new",
            Some(Viewer),
            get(sources::new_form),
        ),
        (
            Method::POST,
            "/sources/new",
            Some(Admin),
            post(sources::create),
        ),
        (
            Method::GET,
            "/sources/{code}",
            Some(Viewer),
            get(sources::edit_form),
        ),
        (
            Method::POST,
            "/sources/{code}",
            Some(Admin),
            post(sources::update),
        ),
        (
            Method::POST,
            "/sources/{code}/test",
            Some(Operator),
            post(sources::test),
        ),
        (
            Method::POST,
            "/sources/{code}/clear-token",
            Some(Admin),
            post(sources::clear_token),
        ),
        (
            Method::GET,
            "/sources/{code}/delete",
            Some(Admin),
            get(sources::delete_confirm),
        ),
        (
            Method::POST,
            "/sources/{code}/delete",
            Some(Admin),
            post(sources::delete),
        ),
        (
            Method::GET,
            "/search",
            Some(Viewer),
            get(search::search_page),
        ),
        (
            Method::POST,
            "/search",
            Some(Operator),
            post(search::search_run),
        ),
        (
            Method::GET,
            "/transactions",
            Some(Viewer),
            get(transactions::transactions),
        ),
        (
            Method::GET,
            "/transactions/{id}",
            Some(Viewer),
            get(transactions::transaction),
        ),
        (Method::GET, "/jobs", Some(Viewer), get(jobs::jobs_page)),
        (
            Method::POST,
            "/jobs",
            Some(Operator),
            // The input is streamed to a file; the jobs runner bounds its size.
            post(jobs::job_start).layer(DefaultBodyLimit::disable()),
        ),
        (
            Method::GET,
            "/jobs/{id}/results",
            Some(Viewer),
            get(jobs::job_results),
        ),
        (
            Method::POST,
            "/jobs/{id}/cancel",
            Some(Operator),
            post(jobs::job_cancel),
        ),
        (
            Method::POST,
            "/schedules",
            Some(Admin),
            post(schedules::schedule_add),
        ),
        (
            Method::GET,
            "/schedules/{id}/remove",
            Some(Admin),
            get(schedules::schedule_remove_confirm),
        ),
        (
            Method::POST,
            "/schedules/{id}/remove",
            Some(Admin),
            post(schedules::schedule_remove),
        ),
        (Method::GET, "/events", Some(Viewer), get(events::events)),
        (
            Method::GET,
            "/events/{id}",
            Some(Viewer),
            get(events::event),
        ),
        (
            Method::GET,
            "/webhooks",
            Some(Viewer),
            get(webhooks::webhooks),
        ),
        (
            Method::POST,
            "/webhooks",
            Some(Admin),
            post(webhooks::webhook_add),
        ),
        (
            Method::POST,
            "/webhooks/redeliver",
            Some(Admin),
            post(webhooks::webhook_redeliver),
        ),
        (
            Method::GET,
            "/webhooks/{id}/remove",
            Some(Admin),
            get(webhooks::webhook_remove_confirm),
        ),
        (
            Method::POST,
            "/webhooks/{id}/remove",
            Some(Admin),
            post(webhooks::webhook_remove),
        ),
        (Method::GET, "/log", Some(Viewer), get(log::log)),
        (Method::GET, "/changes", Some(Viewer), get(changes::changes)),
        (Method::GET, "/keys", Some(Viewer), get(keys::keys)),
        (Method::POST, "/keys", Some(Admin), post(keys::key_generate)),
        (
            Method::POST,
            "/keys/{id}/activate",
            Some(Admin),
            post(keys::key_activate),
        ),
        (
            Method::GET,
            "/keys/{id}/revoke",
            Some(Admin),
            get(keys::key_revoke_confirm),
        ),
        (
            Method::POST,
            "/keys/{id}/revoke",
            Some(Admin),
            post(keys::key_revoke),
        ),
        (Method::GET, "/console.js", None, get(view::script)),
        (Method::GET, "/static/htmx.min.js", None, get(view::htmx)),
    ]
}

/// Every console route with the role it needs (`None`: open to all): method, path, role.
pub fn route_roles() -> Vec<(Method, &'static str, Option<Role>)> {
    routes().into_iter().map(|(m, p, r, _)| (m, p, r)).collect()
}

/// The console with explicit settings. Sessions live in the store; the settings and the
/// fallback sign-in limits live in this router.
pub fn router_with(config: ConsoleConfig) -> Router<AppState> {
    let sessions = Sessions::new(config);
    let mut router = Router::new();
    for (_, path, _, handler) in routes() {
        router = router.route(path, handler);
    }
    router.layer(Extension(sessions))
}
