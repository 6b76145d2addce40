//! The admin console: server-rendered HTML pages for sysadmins, merged into [`crate::router`].
//!
//! Map:
//! - [`session`]: login with the admin token (or a read-only token), server-side sessions in
//!   memory, cookies (`HttpOnly`, `SameSite=Strict`, `Secure` over https), a CSRF token on every
//!   form.
//! - [`sources`]: DCI > Configuration > Data Sources — list with state badges and filters, the
//!   grouped form with inline validation errors and write-only secrets, Test Connection (the
//!   same `dci_client::test_connection` as `dci source test`), clear token cache.
//! - [`search`]: one sync search, results drawn by [`records`] as the registry's typed view (a
//!   person, a group with members, a farmer, a disability status, enrolments).
//! - [`transactions`]: async requests with ACK and callbacks, one page per transaction,
//!   subscriptions, notifications with their content.
//! - [`events`]: the events outbox, one event with its deliveries and attempts.
//! - [`webhooks`]: delivery endpoints (webhooks and RabbitMQ sinks) with add, remove (after a
//!   confirmation page) and redeliver.
//! - [`log`]: the audit log. [`keys`]: signing keys (revoke after a confirmation page).
//! - [`view`]: the layout and small HTML helpers (maud escapes every interpolation).
//!
//! Routes are stable so bookmarks and scripts keep working: `GET/POST /login`, `POST /logout`,
//! `GET /sources`, `GET/POST /sources/new`, `GET/POST /sources/{code}`,
//! `POST /sources/{code}/test`, `POST /sources/{code}/clear-token`,
//! `GET/POST /sources/{code}/delete` (confirmation, then delete), `GET/POST /search`,
//! `GET /transactions`, `GET /transactions/{id}`, `GET /log`, `GET/POST /keys`,
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

mod events;
mod keys;
mod log;
mod records;
mod search;
pub mod session;
mod sources;
mod transactions;
pub(crate) mod view;
mod webhooks;

use axum::Router;
use axum::extract::Extension;
use axum::response::Redirect;
use axum::routing::{get, post};
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

/// The console with explicit settings. Sessions live in this router (one per server).
pub fn router_with(config: ConsoleConfig) -> Router<AppState> {
    let sessions = Sessions::new(config);
    Router::new()
        .route("/", get(|| async { Redirect::to("/sources") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/sources", get(sources::list))
        .route("/sources/new", get(sources::new_form).post(sources::create))
        .route(
            "/sources/{code}",
            get(sources::edit_form).post(sources::update),
        )
        .route("/sources/{code}/test", post(sources::test))
        .route("/sources/{code}/clear-token", post(sources::clear_token))
        .route(
            "/sources/{code}/delete",
            get(sources::delete_confirm).post(sources::delete),
        )
        .route("/search", get(search::search_page).post(search::search_run))
        .route("/transactions", get(transactions::transactions))
        .route("/transactions/{id}", get(transactions::transaction))
        .route("/log", get(log::log))
        .route("/keys", get(keys::keys).post(keys::key_generate))
        .route("/keys/{id}/activate", post(keys::key_activate))
        .route(
            "/keys/{id}/revoke",
            get(keys::key_revoke_confirm).post(keys::key_revoke),
        )
        .route("/events", get(events::events))
        .route("/events/{id}", get(events::event))
        .route(
            "/webhooks",
            get(webhooks::webhooks).post(webhooks::webhook_add),
        )
        .route("/webhooks/redeliver", post(webhooks::webhook_redeliver))
        .route(
            "/webhooks/{id}/remove",
            get(webhooks::webhook_remove_confirm).post(webhooks::webhook_remove),
        )
        .route("/console.js", get(view::script))
        .route("/static/htmx.min.js", get(view::htmx))
        .layer(Extension(sessions))
}
