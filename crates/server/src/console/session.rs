//! Console sessions: sign-in with a username and password (a named user) or with the admin
//! token or the read-only token (the token-only mode of a single-operator setup), a server-side
//! session per browser, and a CSRF token per session that every form carries; the role
//! extractors every console page takes ([`ConsoleViewer`], [`ConsoleOperator`],
//! [`ConsoleAdmin`]), so the role a page needs shows in its handler's signature.
//!
//! Sessions live in the store ([`dci_client::users::UserStore`]): they survive a restart and
//! every instance on the same database shares them. The store keeps only the SHA-256 of a
//! session id; the cookie holds the id.
//!
//! No id or CSRF token lives forever: a failed sign-in replaces the anonymous session (one
//! form, one attempt), a sign-in replaces it with a new one, and a logged-in session ends after
//! 8 h idle or 24 h in all; a new password ends the user's sessions. Failed sign-ins count
//! against the caller's address and, for a username, against that username
//! ([`crate::throttle`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Extension, Form, FromRequestParts, State};
use axum::http::header::{COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dci_client::users::secret::{digest_hex, random};
use dci_client::users::{ConsoleSession, Role, SessionLogin, UserStore};
use maud::html;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::ConsoleConfig;
use super::view;
use crate::admin_token::AdminToken;
use crate::auth::Principal;
use crate::state::AppState;
use crate::throttle::{ClientKey, Throttle, UserThrottle};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "dci_console";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// How long a logged-in session lives without use.
const IDLE_TIMEOUT: Duration = Duration::hours(8);
/// How long a logged-in session lives at most, however much it is used: then its id and CSRF
/// token are retired and the user signs in again.
const MAX_AGE: Duration = Duration::hours(24);
/// How long a not-logged-in session (the login form's CSRF token) lives.
const ANON_TIMEOUT: Duration = Duration::minutes(30);
/// A logged-in session's expiry is written back only when it moves by more than this, so
/// browsing is not one database write per page.
const TOUCH_STEP: Duration = Duration::minutes(1);
/// Expired sessions are purged from the store every this many new sessions.
const PURGE_EVERY: u64 = 64;

/// The console's session settings and limits (cheap to clone).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    config: ConsoleConfig,
    readonly_digest: Option<[u8; 32]>,
    /// Used when the console runs without [`crate::router`]'s shared throttles.
    throttle: Throttle,
    user_throttle: UserThrottle,
    created: AtomicU64,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

/// The logged-in user of a request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// What the user may do.
    pub(crate) role: Role,
    /// Who is signed in, as the page header shows it (`admin`, `read-only`, `alice (operator)`).
    pub(crate) label: String,
    /// Who acts, for the change audit.
    pub(crate) who: Principal,
    /// The session's CSRF token.
    pub(crate) csrf: String,
}

impl Ctx {
    /// Whether the user may change settings (an admin).
    pub(crate) fn can_edit(&self) -> bool {
        self.role.allows(Role::Admin)
    }

    /// Whether the user may search and test connections (an operator or admin).
    pub(crate) fn can_operate(&self) -> bool {
        self.role.allows(Role::Operator)
    }

    /// Checks a state-changing form's CSRF token against the session's.
    #[allow(clippy::result_large_err)]
    pub(crate) fn check_csrf(&self, form_csrf: &str) -> Result<(), Response> {
        if ct_eq_str(&self.csrf, form_csrf) {
            Ok(())
        } else {
            Err(csrf_failed(Some(self)))
        }
    }

    fn of(login: &SessionLogin, csrf: String) -> Ctx {
        let label = match (login.actor.strip_prefix("user:"), login.role) {
            (Some(name), role) => format!("{name} ({role})"),
            (None, Role::Viewer) => "read-only".into(),
            (None, role) => role.as_str().into(),
        };
        Ctx {
            role: login.role,
            label,
            who: Principal {
                role: login.role,
                actor: login.actor.clone(),
                user_id: login.user_id,
            },
            csrf,
        }
    }
}

fn store_of(st: &AppState) -> Arc<dyn UserStore> {
    st.ops.clone()
}

impl Sessions {
    pub(crate) fn new(config: ConsoleConfig) -> Sessions {
        let readonly_digest = config
            .readonly_token
            .as_ref()
            .map(|t| digest(t.expose_secret().trim()));
        Sessions {
            inner: Arc::new(Inner {
                config,
                readonly_digest,
                throttle: Throttle::default(),
                user_throttle: UserThrottle::default(),
                created: AtomicU64::new(0),
            }),
        }
    }

    /// The live session of the request's cookie (its id digest and record). A logged-in
    /// session's idle timer restarts. A store failure reads as no session (logged).
    async fn lookup(
        &self,
        store: &dyn UserStore,
        headers: &HeaderMap,
    ) -> Option<(String, ConsoleSession)> {
        let id = cookie_value(headers)?;
        let digest = digest_hex(&id);
        let now = OffsetDateTime::now_utc();
        let s = match store.get_session(&digest, now).await {
            Ok(s) => s?,
            Err(e) => {
                tracing::warn!(error = %e, "console: could not read a session");
                return None;
            }
        };
        if s.login.is_some() {
            let end = s.created_at + MAX_AGE;
            if now >= end {
                let _ = store.delete_session(&digest).await;
                return None;
            }
            let next = (now + IDLE_TIMEOUT).min(end);
            if next - s.expires_at > TOUCH_STEP
                && let Err(e) = store.touch_session(&digest, next).await
            {
                tracing::warn!(error = %e, "console: could not extend a session");
            }
        }
        Some((digest, s))
    }

    /// Makes and stores a session: its id (for the cookie) and CSRF token.
    async fn create(
        &self,
        store: &dyn UserStore,
        login: Option<SessionLogin>,
    ) -> Result<(String, String), Response> {
        let id = random();
        let csrf = random();
        let now = OffsetDateTime::now_utc();
        let ttl = if login.is_some() {
            IDLE_TIMEOUT
        } else {
            ANON_TIMEOUT
        };
        let session = ConsoleSession {
            id_digest: digest_hex(&id),
            csrf: csrf.clone(),
            login,
            created_at: now,
            expires_at: now + ttl,
        };
        if let Err(e) = store.put_session(&session).await {
            tracing::error!(error = %e, "console: could not store a session");
            return Err(unavailable());
        }
        if self
            .inner
            .created
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PURGE_EVERY)
            && let Err(e) = store.purge_sessions(now).await
        {
            tracing::warn!(error = %e, "console: could not purge expired sessions");
        }
        Ok((id, csrf))
    }

    async fn remove(&self, store: &dyn UserStore, digest: &str) {
        if let Err(e) = store.delete_session(digest).await {
            tracing::warn!(error = %e, "console: could not delete a session");
        }
    }

    /// The login a presented token signs in with, if any.
    fn token_login(&self, admin: &AdminToken, presented: &str) -> Option<SessionLogin> {
        let p = if admin.verify(presented) {
            Principal::admin_token()
        } else {
            let d = digest(presented.trim());
            self.inner.readonly_digest.filter(|r| ct_eq(r, &d))?;
            Principal::readonly_token()
        };
        Some(SessionLogin {
            user_id: None,
            role: p.role,
            actor: p.actor,
        })
    }

    /// `Secure` is set when the console is reached over https (directly or behind a proxy that
    /// says so with `X-Forwarded-Proto: https`) or when configured. The demo and the tests run
    /// on plain http on loopback, where a `Secure` cookie would never be sent back and login
    /// would silently fail; browsers treat http://127.0.0.1 as a potentially trustworthy origin,
    /// and `dci serve` warns when it listens beyond loopback without TLS.
    fn secure(&self, headers: &HeaderMap) -> bool {
        self.inner.config.secure_cookies
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
    }

    fn set_cookie(&self, headers: &HeaderMap, id: &str) -> HeaderValue {
        let secure = if self.secure(headers) { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
    }

    fn clear_cookie(&self, headers: &HeaderMap) -> HeaderValue {
        let secure = if self.secure(headers) { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
    }

    /// The logged-in user of a request, if any.
    async fn ctx(&self, st: &AppState, headers: &HeaderMap) -> Option<Ctx> {
        let (_, s) = self.lookup(store_of(st).as_ref(), headers).await?;
        let login = s.login?;
        Some(Ctx::of(&login, s.csrf))
    }
}

fn unavailable() -> Response {
    view::message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Store unavailable",
        None,
        "The console could not reach its database to keep your session. Try again in a moment; if it persists, check the server's log.",
    )
}

/// The 403 page of a role that does not allow a page or action.
fn forbidden(ctx: &Ctx, needed: Role) -> Response {
    let message = match (ctx.role, needed) {
        (Role::Viewer, _) => {
            "Your login is read-only: you may view pages but not edit, test or search. Sign in as an operator to search and test connections, or as an admin to make changes."
        }
        _ => {
            "Operators may view, search and test connections, but not change settings, keys or users. Sign in as an admin to make changes."
        }
    };
    view::message_page(StatusCode::FORBIDDEN, "Not allowed", Some(ctx), message)
}

macro_rules! console_role {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub(crate) struct $name(pub(crate) Ctx);

        impl FromRequestParts<AppState> for $name {
            type Rejection = Response;

            async fn from_request_parts(
                parts: &mut Parts,
                st: &AppState,
            ) -> Result<Self, Self::Rejection> {
                let Some(sessions) = parts.extensions.get::<Sessions>().cloned() else {
                    return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
                };
                let Some(ctx) = sessions.ctx(st, &parts.headers).await else {
                    return Err(see_other("/login"));
                };
                if !ctx.role.allows($role) {
                    return Err(forbidden(&ctx, $role));
                }
                Ok($name(ctx))
            }
        }
    };
}

console_role!(
    /// A signed-in console user with at least the viewer role (pages).
    ConsoleViewer,
    Role::Viewer
);
console_role!(
    /// A signed-in console user with at least the operator role (search, Test Connection).
    ConsoleOperator,
    Role::Operator
);
console_role!(
    /// A signed-in console user with the admin role (changes, keys, confirmation pages).
    ConsoleAdmin,
    Role::Admin
);

fn csrf_failed(ctx: Option<&Ctx>) -> Response {
    view::message_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        ctx,
        "This form's security token is missing or does not match your session (the form is old, or it was sent from another site). Go back, reload the page and submit again.",
    )
}

/// A 303 redirect (after a POST the browser follows with GET).
pub(crate) fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Compares through digests so the time taken does not depend on where the strings differ.
fn ct_eq_str(a: &str, b: &str) -> bool {
    !b.is_empty() && ct_eq(&digest(a), &digest(b))
}

fn login_form(csrf: &str, username: &str, error: Option<&str>) -> maud::Markup {
    html! {
        h1 { "Sign in" }
        p { "Sign in with your username and password. Without a username, the password field takes the admin token printed by "
            code { "dci serve" } " or " code { "dci demo" } " (or the one in " code { "DCI_ADMIN_TOKEN" }
            "); a read-only token (" code { "DCI_CONSOLE_READONLY_TOKEN" } ") may view but not change anything." }
        @if let Some(e) = error {
            div.error-summary role="alert" id="login-error" { (e) }
        }
        form method="post" action="/login" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            div.field {
                label for="username" { "Username (leave empty to sign in with a token)" }
                input id="username" name="username" type="text" autocomplete="username"
                    value=(username) autocapitalize="none" spellcheck="false";
            }
            div.field {
                label for="token" { "Password or token" }
                input id="token" name="token" type="password" autocomplete="current-password"
                    required aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[error.map(|_| "login-error")];
            }
            button type="submit" id="login" { "Sign in" }
        }
    }
}

fn login_page_with(
    status: StatusCode,
    csrf: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    view::page(
        status,
        "Sign in",
        None,
        "",
        login_form(csrf, username, error),
    )
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
) -> Response {
    let store = store_of(&st);
    match sessions.lookup(store.as_ref(), &headers).await {
        Some((_, s)) if s.login.is_some() => see_other("/sources"),
        Some((_, s)) => login_page_with(StatusCode::OK, &s.csrf, "", None),
        None => {
            let (id, csrf) = match sessions.create(store.as_ref(), None).await {
                Ok(x) => x,
                Err(r) => return r,
            };
            let mut r = login_page_with(StatusCode::OK, &csrf, "", None);
            r.headers_mut()
                .insert(SET_COOKIE, sessions.set_cookie(&headers, &id));
            r
        }
    }
}

/// The login form.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    /// The password, or (without a username) the admin or read-only token.
    #[serde(default)]
    token: String,
}

fn locked_out(csrf: &str, username: &str, secs: u64, message: String) -> Response {
    let mut r = login_page_with(
        StatusCode::TOO_MANY_REQUESTS,
        csrf,
        username,
        Some(&message),
    );
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// `POST /login`. A wrong password or token counts against the caller's address (shared with
/// the gateway API) and, with a username, against that username ([`crate::throttle`]); it
/// starts a new anonymous session (new id, new CSRF token), so a form is good for one attempt.
/// A locked-out address or username is answered 429 without its password being checked.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn login(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    throttle: Option<Extension<Throttle>>,
    user_throttle: Option<Extension<UserThrottle>>,
    client: ClientKey,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let throttle = throttle.map_or_else(|| sessions.inner.throttle.clone(), |Extension(t)| t);
    let user_limit = user_throttle
        .map_or(sessions.inner.user_throttle, |Extension(t)| t)
        .limit();
    let store = store_of(&st);
    let Some((old_id, session)) = sessions.lookup(store.as_ref(), &headers).await else {
        return csrf_failed(None);
    };
    let csrf = session.csrf;
    if !ct_eq_str(&csrf, &form.csrf) {
        return csrf_failed(None);
    }
    let username = form.username.trim().to_owned();
    if let Err(locked) = throttle.check(client) {
        let secs = locked.retry_after_secs();
        return locked_out(
            &csrf,
            &username,
            secs,
            format!(
                "Too many failed sign-ins from your address. Wait {secs} seconds, then sign in with the right password or token."
            ),
        );
    }
    let user_locked = if username.is_empty() {
        None
    } else {
        match st.users().sign_in_locked(&username, user_limit).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::error!(error = %e, "console login: could not read failed sign-ins");
                return unavailable();
            }
        }
    };
    if let Some(wait) = user_locked {
        let secs = crate::throttle::Locked { retry_after: wait }.retry_after_secs();
        return locked_out(
            &csrf,
            &username,
            secs,
            format!(
                "Too many failed sign-ins for this username. Wait {secs} seconds, then sign in again; an admin can set a new password with `dci user passwd USERNAME`."
            ),
        );
    }
    let login = if username.is_empty() {
        sessions.token_login(&st.admin, &form.token)
    } else {
        match st
            .users()
            .authenticate(&username, &SecretString::from(form.token.clone()))
            .await
        {
            Ok(user) => user.map(|u| {
                let p = Principal::user(&u);
                SessionLogin {
                    user_id: p.user_id,
                    role: p.role,
                    actor: p.actor,
                }
            }),
            Err(e) => {
                tracing::error!(error = %e, "console login: could not check the password");
                return unavailable();
            }
        }
    };
    let Some(login) = login else {
        tracing::info!(client = %client, "console login refused: wrong password or token");
        throttle.failed(client);
        if !username.is_empty()
            && let Err(e) = st.users().sign_in_failed(&username, user_limit).await
        {
            tracing::error!(error = %e, "console login: could not count a failed sign-in");
        }
        // One form, one attempt: the next try needs the new session's CSRF token.
        sessions.remove(store.as_ref(), &old_id).await;
        let (id, csrf) = match sessions.create(store.as_ref(), None).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let message = if username.is_empty() {
            "That token is not valid. Use the admin token printed when the server started (only its hash is stored), or set DCI_ADMIN_TOKEN and restart; or enter your username with your password."
        } else {
            "That username and password do not match. Check both (the username is lowercase); an admin can set a new password with `dci user passwd USERNAME`."
        };
        let mut r = login_page_with(StatusCode::UNAUTHORIZED, &csrf, &username, Some(message));
        r.headers_mut()
            .insert(SET_COOKIE, sessions.set_cookie(&headers, &id));
        return r;
    };
    // A fresh session id on login, so an id planted before login is worth nothing after it.
    sessions.remove(store.as_ref(), &old_id).await;
    let role = login.role;
    let (id, _) = match sessions.create(store.as_ref(), Some(login)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    tracing::info!(role = role.as_str(), "console login");
    let mut r = see_other("/sources");
    r.headers_mut()
        .insert(SET_COOKIE, sessions.set_cookie(&headers, &id));
    r
}

/// The logout form.
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout` (any role; needs the CSRF token so another site cannot log you out).
pub(crate) async fn logout(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let store = store_of(&st);
    let Some((id, session)) = sessions.lookup(store.as_ref(), &headers).await else {
        return see_other("/login");
    };
    if !ct_eq_str(&session.csrf, &form.csrf) {
        return csrf_failed(None);
    }
    sessions.remove(store.as_ref(), &id).await;
    let mut r = see_other("/login");
    r.headers_mut()
        .insert(SET_COOKIE, sessions.clear_cookie(&headers));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; dci_console=abc; b=2"),
        );
        assert_eq!(cookie_value(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("dci_console_x=abc"));
        assert_eq!(cookie_value(&h), None);
    }

    #[test]
    fn cookie_attributes_follow_the_scheme() {
        let s = Sessions::new(ConsoleConfig::default());
        let plain = s.set_cookie(&HeaderMap::new(), "id");
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            s.set_cookie(&h, "id")
                .to_str()
                .unwrap()
                .contains("; Secure")
        );
        let forced = Sessions::new(ConsoleConfig {
            secure_cookies: true,
            ..ConsoleConfig::default()
        });
        assert!(
            forced
                .set_cookie(&HeaderMap::new(), "id")
                .to_str()
                .unwrap()
                .contains("; Secure")
        );
    }

    #[test]
    fn empty_csrf_never_matches() {
        assert!(!ct_eq_str("", ""));
        assert!(ct_eq_str("abc", "abc"));
        assert!(!ct_eq_str("abc", "abd"));
    }

    #[test]
    fn the_header_names_the_login() {
        let user = SessionLogin {
            user_id: None,
            role: Role::Operator,
            actor: "user:alice".into(),
        };
        assert_eq!(Ctx::of(&user, String::new()).label, "alice (operator)");
        let ro = SessionLogin {
            user_id: None,
            role: Role::Viewer,
            actor: "readonly-token".into(),
        };
        assert_eq!(Ctx::of(&ro, String::new()).label, "read-only");
    }
}
