//! Console sessions: login with the admin token (or the read-only token), a server-side session
//! per browser, and a CSRF token per session that every form carries.
//!
//! Sessions are kept in memory: a restart logs everyone out, which is acceptable for an admin
//! console and keeps session ids out of the database. The cookie holds only a random id.
//!
//! No id or CSRF token lives forever: a failed login replaces the anonymous session (one form,
//! one attempt), a login replaces it with a new one, and a logged-in session ends after 8 h idle
//! or 24 h in all. Failed logins count against the caller's address ([`crate::throttle`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Extension, Form, State};
use axum::http::header::{COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::html;
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ConsoleConfig;
use super::view;
use crate::admin_token::AdminToken;
use crate::throttle::{ClientKey, Throttle};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "dci_console";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// How long a logged-in session lives without use.
const IDLE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);
/// How long a logged-in session lives at most, however much it is used: then its id and CSRF
/// token are retired and the user signs in again.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// How long a not-logged-in session (the login form's CSRF token) lives.
const ANON_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Bounds memory when something requests the login page in a loop.
const MAX_SESSIONS: usize = 10_000;

/// What a logged-in user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: edit, test, search, manage keys.
    Admin,
    /// View only.
    ReadOnly,
}

impl Role {
    /// `admin` or `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

struct Session {
    role: Option<Role>,
    csrf: String,
    expires: Instant,
    created: Instant,
}

impl Session {
    fn live(&self, now: Instant) -> bool {
        self.expires > now && now.saturating_duration_since(self.created) < MAX_AGE
    }
}

/// The console's sessions (cheap to clone).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    config: ConsoleConfig,
    readonly_digest: Option<[u8; 32]>,
    map: Mutex<HashMap<String, Session>>,
    /// Used when the console runs without [`crate::router`]'s shared throttle.
    throttle: Throttle,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

/// The logged-in user of a request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) role: Role,
    pub(crate) csrf: String,
}

impl Ctx {
    pub(crate) fn can_edit(&self) -> bool {
        self.role == Role::Admin
    }
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
                map: Mutex::new(HashMap::new()),
                throttle: Throttle::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.inner.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live session of the request's cookie: its role (if logged in) and CSRF token. A
    /// logged-in session's idle timer restarts.
    fn lookup(&self, headers: &HeaderMap) -> Option<(String, Option<Role>, String)> {
        let id = cookie_value(headers)?;
        let mut map = self.lock();
        let now = Instant::now();
        let live = map.get(&id).is_some_and(|s| s.live(now));
        if !live {
            map.remove(&id);
            return None;
        }
        let s = map.get_mut(&id)?;
        if s.role.is_some() {
            s.expires = (now + IDLE_TIMEOUT).min(s.created + MAX_AGE);
        }
        Some((id, s.role, s.csrf.clone()))
    }

    fn create(&self, role: Option<Role>) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        let ttl = if role.is_some() {
            IDLE_TIMEOUT
        } else {
            ANON_TIMEOUT
        };
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            let now = Instant::now();
            map.retain(|_, s| s.live(now));
            if map.len() >= MAX_SESSIONS {
                // Still full of live sessions: drop the not-logged-in ones first.
                map.retain(|_, s| s.role.is_some());
            }
        }
        let now = Instant::now();
        map.insert(
            id.clone(),
            Session {
                role,
                csrf: csrf.clone(),
                expires: now + ttl,
                created: now,
            },
        );
        (id, csrf)
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The role a presented token logs in with, if any.
    fn role_for(&self, admin: &AdminToken, presented: &str) -> Option<Role> {
        if admin.verify(presented) {
            return Some(Role::Admin);
        }
        let d = digest(presented.trim());
        self.inner
            .readonly_digest
            .filter(|r| ct_eq(r, &d))
            .map(|_| Role::ReadOnly)
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

    /// The logged-in user, or a redirect to the login page.
    #[allow(clippy::result_large_err)]
    pub(crate) fn viewer(&self, headers: &HeaderMap) -> Result<Ctx, Response> {
        match self.lookup(headers) {
            Some((_, Some(role), csrf)) => Ok(Ctx { role, csrf }),
            _ => Err(see_other("/login")),
        }
    }

    /// The logged-in user of a page only an admin may see (a confirmation step): a read-only
    /// login gets 403 saying it cannot `what` (e.g. "revoke keys").
    #[allow(clippy::result_large_err)]
    pub(crate) fn admin_viewer(&self, headers: &HeaderMap, what: &str) -> Result<Ctx, Response> {
        let ctx = self.viewer(headers)?;
        if !ctx.can_edit() {
            return Err(view::message_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                Some(&ctx),
                &format!("Read-only logins cannot {what}."),
            ));
        }
        Ok(ctx)
    }

    /// The logged-in user of a state-changing request: the form's CSRF token must match the
    /// session's, and the role must allow editing.
    #[allow(clippy::result_large_err)]
    pub(crate) fn editor(&self, headers: &HeaderMap, form_csrf: &str) -> Result<Ctx, Response> {
        let ctx = self.viewer(headers)?;
        if !ct_eq_str(&ctx.csrf, form_csrf) {
            return Err(csrf_failed(Some(&ctx)));
        }
        if !ctx.can_edit() {
            return Err(view::message_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                Some(&ctx),
                "Your login is read-only: you may view pages but not edit, test or search. Log in with the admin token to make changes.",
            ));
        }
        Ok(ctx)
    }
}

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

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
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

fn login_form(csrf: &str, error: Option<&str>) -> maud::Markup {
    html! {
        h1 { "Sign in" }
        p { "Sign in with the admin token printed by " code { "dci serve" } " or " code { "dci demo" }
            " (or the one in " code { "DCI_ADMIN_TOKEN" } "). A read-only token ("
            code { "DCI_CONSOLE_READONLY_TOKEN" } ") may view but not change anything." }
        @if let Some(e) = error {
            div.error-summary role="alert" id="login-error" { (e) }
        }
        form method="post" action="/login" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            div.field {
                label for="token" { "Admin token" }
                input id="token" name="token" type="password" autocomplete="current-password"
                    required aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[error.map(|_| "login-error")];
            }
            button type="submit" id="login" { "Sign in" }
        }
    }
}

/// `GET /login`.
pub(crate) async fn login_page(
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
) -> Response {
    match sessions.lookup(&headers) {
        Some((_, Some(_), _)) => see_other("/sources"),
        Some((_, None, csrf)) => {
            view::page(StatusCode::OK, "Sign in", None, "", login_form(&csrf, None))
        }
        None => {
            let (id, csrf) = sessions.create(None);
            let mut r = view::page(StatusCode::OK, "Sign in", None, "", login_form(&csrf, None));
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
    token: String,
}

/// `POST /login`. A wrong token counts against the caller's address ([`crate::throttle`],
/// shared with the gateway API) and starts a new anonymous session (new id, new CSRF token), so
/// a form is good for one attempt. A locked-out address is answered 429 without its token being
/// checked.
pub(crate) async fn login(
    State(admin): State<AdminToken>,
    Extension(sessions): Extension<Sessions>,
    throttle: Option<Extension<Throttle>>,
    client: ClientKey,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let throttle = throttle.map_or_else(|| sessions.inner.throttle.clone(), |Extension(t)| t);
    let Some((old_id, _, csrf)) = sessions.lookup(&headers) else {
        return csrf_failed(None);
    };
    if !ct_eq_str(&csrf, &form.csrf) {
        return csrf_failed(None);
    }
    if let Err(locked) = throttle.check(client) {
        let secs = locked.retry_after_secs();
        let mut r = view::page(
            StatusCode::TOO_MANY_REQUESTS,
            "Sign in",
            None,
            "",
            login_form(
                &csrf,
                Some(&format!(
                    "Too many failed sign-ins from your address. Wait {secs} seconds, then sign in with the right token."
                )),
            ),
        );
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let Some(role) = sessions.role_for(&admin, &form.token) else {
        tracing::info!(client = %client, "console login refused: wrong token");
        throttle.failed(client);
        // One form, one attempt: the next try needs the new session's CSRF token.
        sessions.remove(&old_id);
        let (id, csrf) = sessions.create(None);
        let mut r = view::page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            None,
            "",
            login_form(
                &csrf,
                Some(
                    "That token is not valid. Use the admin token printed when the server started (only its hash is stored), or set DCI_ADMIN_TOKEN and restart.",
                ),
            ),
        );
        r.headers_mut()
            .insert(SET_COOKIE, sessions.set_cookie(&headers, &id));
        return r;
    };
    // A fresh session id on login, so an id planted before login is worth nothing after it.
    sessions.remove(&old_id);
    let (id, _) = sessions.create(Some(role));
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
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some((id, _, csrf)) = sessions.lookup(&headers) else {
        return see_other("/login");
    };
    if !ct_eq_str(&csrf, &form.csrf) {
        return csrf_failed(None);
    }
    sessions.remove(&id);
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
    fn a_busy_session_still_ends_at_its_maximum_age() {
        let s = Sessions::new(ConsoleConfig::default());
        let (id, _) = s.create(Some(Role::Admin));
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("{COOKIE_NAME}={id}")).unwrap(),
        );
        assert!(s.viewer(&h).is_ok());
        let map = s.lock();
        let session = map.get(&id).unwrap();
        // Each use pushes the idle expiry out, but never past the maximum age.
        assert!(session.expires <= session.created + MAX_AGE);
        let busy = Session {
            role: Some(Role::Admin),
            csrf: String::new(),
            expires: session.created + MAX_AGE * 2,
            created: session.created,
        };
        assert!(busy.live(session.created + Duration::from_secs(3600)));
        assert!(!busy.live(session.created + MAX_AGE));
    }

    #[test]
    fn empty_csrf_never_matches() {
        assert!(!ct_eq_str("", ""));
        assert!(ct_eq_str("abc", "abc"));
        assert!(!ct_eq_str("abc", "abd"));
    }
}
