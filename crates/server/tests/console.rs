//! Router-level tests of the admin console: login and sessions, CSRF on every form, roles,
//! validation errors shown beside their fields, write-only secrets, Test Connection and search
//! against a real sandbox. Each request goes through the whole router (`oneshot`), with a
//! cookie jar of one cookie.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dci_client::{AuthConfig, MasterKey, OpsStore, SourceState, Store};
use dci_protocol::RegistryType;
use dci_server::console::{ConsoleConfig, router_with};
use dci_server::{AdminToken, AppState};
use dci_store::SqliteStore;
use secrecy::{ExposeSecret, SecretString};
use tower::ServiceExt;

const ADMIN: &str = "console-admin-token-0123456789";
const READONLY: &str = "console-readonly-token-98765";

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    state: AppState,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([7u8; 32]);
    let s = Arc::new(
        SqliteStore::open_file(&dir.path().join("dci.sqlite3"), &key)
            .await
            .unwrap(),
    );
    let store: Arc<dyn Store> = s.clone();
    let ops: Arc<dyn OpsStore> = s;
    let state = AppState::new(
        store.clone(),
        ops,
        AdminToken::from_secret(&SecretString::from(ADMIN)),
    );
    Env {
        _dir: dir,
        store,
        state,
    }
}

/// The whole application, as `dci serve` runs it.
fn app(e: &Env) -> Router {
    dci_server::router(e.state.clone())
}

/// The console alone with a read-only token configured.
fn app_with_readonly(e: &Env) -> Router {
    router_with(ConsoleConfig {
        readonly_token: Some(SecretString::from(READONLY)),
        secure_cookies: false,
    })
    .with_state(e.state.clone())
}

struct Resp {
    status: StatusCode,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

/// A browser of one cookie.
struct Browser {
    app: Router,
    cookie: Option<String>,
}

impl Browser {
    fn new(app: Router) -> Browser {
        Browser { app, cookie: None }
    }

    async fn send(&mut self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookie = resp
            .headers()
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned());
        if let Some(c) = &set_cookie {
            let pair = c.split(';').next().unwrap().to_owned();
            self.cookie = if pair.ends_with('=') {
                None
            } else {
                Some(pair)
            };
        }
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Resp {
            status,
            location,
            set_cookie,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Resp {
        let mut b = Request::get(path);
        if let Some(c) = &self.cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let mut b =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = &self.cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// Logs in with `token`; returns the CSRF token of the new session.
    async fn login(&mut self, token: &str) -> String {
        let page = self.get("/login").await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = csrf_of(&page.body);
        let r = self
            .post("/login", &[("csrf", &csrf), ("token", token)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.location.as_deref(), Some("/sources"));
        let page = self.get("/sources").await;
        assert_eq!(page.status, StatusCode::OK);
        csrf_of(&page.body)
    }
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("the page has a CSRF field");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A valid OAuth2 source form (base URL and token URL given).
fn source_fields<'a>(
    code: &'a str,
    base_url: &'a str,
    token_url: &'a str,
    secret: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("code", code),
        ("name", "Test CRVS"),
        ("registry_type", "crvs"),
        ("active", "on"),
        ("base_url", base_url),
        ("timeout_secs", "10"),
        ("tls_verify", "on"),
        ("sender_id", "spmis.test"),
        ("auth", "oauth2"),
        ("token_url", token_url),
        ("client_id", dci_sandbox::DEMO_CLIENT_ID),
        ("client_secret", secret),
        ("scope", "crvs.read"),
        ("credential_location", "body"),
        ("reply_signature_policy", "off"),
        ("sync_search_path", "/registry/sync/search"),
        ("search_path", "/registry/search"),
        ("subscribe_path", "/registry/subscribe"),
        ("unsubscribe_path", "/registry/unsubscribe"),
        ("txn_status_path", "/registry/txn/status"),
        ("sync_txn_status_path", "/registry/sync/txn/status"),
    ]
}

/// A valid schedule form on `source` reading the file `input`.
fn schedule_fields<'a>(source: &'a str, input: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", "monthly death check"),
        ("source_code", source),
        ("cron", "0 2 1 * *"),
        ("input", input),
        ("input_format", "csv"),
        ("output_format", "jsonl"),
        ("batch_size", "50"),
        ("record_type", ""),
        ("catch_up", "none"),
        ("enabled", "on"),
    ]
}

fn with_csrf<'a>(csrf: &'a str, mut fields: Vec<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    fields.insert(0, ("csrf", csrf));
    fields
}

#[tokio::test]
async fn pages_need_a_login_and_the_session_cookie_is_httponly_strict() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    for path in [
        "/sources",
        "/sources/new",
        "/search",
        "/transactions",
        "/log",
        "/keys",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.location.as_deref(), Some("/login"), "{path}");
    }
    let r = b.get("/login").await;
    let cookie = r.set_cookie.expect("the login page starts a session");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );
    assert!(
        r.body.contains(r#"<label for="token">"#),
        "accessible label"
    );

    // Behind a TLS proxy the cookie is Secure.
    let req = Request::get("/login")
        .header("x-forwarded-proto", "https")
        .body(Body::empty())
        .unwrap();
    let r = Browser::new(app(&e)).send(req).await;
    assert!(r.set_cookie.unwrap().contains("; Secure"));
}

#[tokio::test]
async fn wrong_token_is_refused_and_never_echoed() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = csrf_of(&b.get("/login").await.body);
    let wrong = "not-the-admin-token-but-close";
    let r = b.post("/login", &[("csrf", &csrf), ("token", wrong)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("That token is not valid"));
    assert!(!r.body.contains(wrong));
    assert_eq!(b.get("/sources").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_and_logout_need_the_csrf_token() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    b.get("/login").await;
    let r = b.post("/login", &[("token", ADMIN)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "login without CSRF");
    let r = b
        .post("/login", &[("csrf", "forged"), ("token", ADMIN)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "login with a forged CSRF");

    let csrf = b.login(ADMIN).await;
    let r = b.post("/logout", &[("csrf", "forged")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get("/sources").await.status, StatusCode::OK);
    let old_cookie = b.cookie.clone();
    let r = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/sources").await.status, StatusCode::SEE_OTHER);
    // The old session id is dead, not just the cookie.
    b.cookie = old_cookie;
    assert_eq!(b.get("/sources").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_rotates_the_session_id() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    b.get("/login").await;
    let before = b.cookie.clone().unwrap();
    b.login(ADMIN).await;
    assert_ne!(b.cookie.clone().unwrap(), before);
}

#[tokio::test]
async fn every_form_post_checks_csrf() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let fields = source_fields(
        "csrf_src",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/t",
        "s",
    );
    let r = b.post("/sources/new", &fields).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(e.store.get_data_source("csrf_src").await.unwrap().is_none());
    let r = b
        .post("/sources/new", &with_csrf("wrong", fields.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post("/sources/new", &with_csrf(&csrf, fields.clone()))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(e.store.get_data_source("csrf_src").await.unwrap().is_some());
    for path in [
        "/sources/csrf_src",
        "/sources/csrf_src/test",
        "/sources/csrf_src/clear-token",
        "/search",
        "/keys",
        "/keys/k1/revoke",
        "/keys/k1/activate",
        "/schedules",
        "/schedules/s1/remove",
    ] {
        let r = b.post(path, &[("csrf", "nope")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Another browser's CSRF token does not work with this session.
    let mut other = Browser::new(app(&e));
    let other_csrf = other.login(ADMIN).await;
    assert_ne!(other_csrf, csrf);
    let r = b
        .post("/sources/csrf_src/clear-token", &[("csrf", &other_csrf)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn validation_errors_show_beside_their_fields_and_typed_secrets_are_not_echoed() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let typed_secret = "typed-secret-must-not-come-back";
    let mut fields = source_fields(
        "Bad Code",
        "https://crvs.example.org/api/",
        "",
        typed_secret,
    );
    fields.retain(|(k, _)| *k != "sender_id" && *k != "name");
    let r = b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains(r#"id="error-summary""#));
    for f in ["code", "name", "base_url", "token_url", "sender_id"] {
        assert!(
            r.body.contains(&format!(r#"id="f-{f}-err""#)),
            "no inline error for {f}"
        );
    }
    assert!(r.body.contains(r#"aria-invalid="true""#));
    assert!(
        r.body
            .contains("must not end with '/': use https://crvs.example.org/api"),
        "the validator's fix is shown"
    );
    // The summary names fields by their labels, is focusable, and required fields are marked.
    let summary = &r.body[r.body.find(r#"id="error-summary""#).unwrap()..];
    let summary = &summary[..summary.find("</div>").unwrap()];
    assert!(
        summary.contains(r##"<a href="#f-base_url">Base URL</a>"##),
        "{summary}"
    );
    assert!(!summary.contains(">base_url<"), "{summary}");
    assert!(r.body.contains(r#"id="error-summary" tabindex="-1""#));
    assert!(r.body.contains(
        r#"<label for="f-base_url">Base URL <span class="req" aria-hidden="true">*</span>"#
    ));
    assert_eq!(
        summary.matches("f-base_url").count(),
        1,
        "one message per error: {summary}"
    );
    assert!(!r.body.contains(typed_secret));
    // What was typed (not secret) is kept.
    assert!(r.body.contains("https://crvs.example.org/api/"));
    assert!(
        e.store
            .list_data_sources(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    // A URL without its scheme gets a suggestion that is itself valid.
    let mut fields = source_fields(
        "noscheme",
        "crvs.example.org/api",
        "http://127.0.0.1:9/t",
        "s",
    );
    fields.retain(|(k, _)| *k != "name");
    let r = b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    assert!(
        r.body
            .contains("has no scheme: use https://crvs.example.org/api"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn secrets_are_write_only_and_the_mask_keeps_them() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let secret = "very-secret-client-secret-42";
    let fields = source_fields(
        "wo",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/token",
        secret,
    );
    let r = b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/sources/wo?notice=created"));

    let page = b.get("/sources/wo?notice=created").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Data source created"));
    assert!(
        page.body
            .contains(r#"name="client_secret" value="********""#)
    );
    for p in [
        "/sources",
        "/sources/wo",
        "/search",
        "/transactions",
        "/log",
        "/keys",
    ] {
        let body = b.get(p).await.body;
        assert!(!body.contains(secret), "secret in {p}");
        assert!(!body.contains(ADMIN), "admin token in {p}");
    }

    // Save with the mask (and a new name): the secret stays.
    let mut fields = source_fields(
        "wo",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/token",
        "********",
    );
    fields.retain(|(k, _)| *k != "name");
    fields.push(("name", "Renamed"));
    let r = b.post("/sources/wo", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let stored = e.store.get_data_source("wo").await.unwrap().unwrap();
    assert_eq!(stored.name, "Renamed");
    match &stored.auth {
        AuthConfig::OAuth2(o) => assert_eq!(o.client_secret.expose_secret(), secret),
        other => panic!("auth changed: {other:?}"),
    }

    // A new secret replaces it.
    let fields = source_fields(
        "wo",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/token",
        "brand-new-secret",
    );
    b.post("/sources/wo", &with_csrf(&csrf, fields)).await;
    match &e.store.get_data_source("wo").await.unwrap().unwrap().auth {
        AuthConfig::OAuth2(o) => assert_eq!(o.client_secret.expose_secret(), "brand-new-secret"),
        other => panic!("auth changed: {other:?}"),
    }
}

#[tokio::test]
async fn code_is_read_only_after_creation_and_profile_is_a_field() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    // The new form offers the code as an input and the profile.
    let new = b.get("/sources/new").await;
    assert!(new.body.contains(r#"name="code""#));
    assert!(new.body.contains(r#"name="profile""#));
    assert!(new.body.contains(r#"value="opencrvs-1.5""#));

    let mut fields = source_fields(
        "ocrvs",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/token",
        "sek-ret-value",
    );
    fields.retain(|(k, _)| *k != "sender_id");
    fields.push(("sender_id", "https://spmis.example.org"));
    fields.push(("profile", "opencrvs-1.3"));
    let r = b
        .post("/sources/new", &with_csrf(&csrf, fields.clone()))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let stored = e.store.get_data_source("ocrvs").await.unwrap().unwrap();
    assert_eq!(stored.profile.as_str(), "opencrvs-1.3");

    // After creation the code is shown, not an input; the profile is selected.
    let page = b.get("/sources/ocrvs").await;
    assert!(
        !page.body.contains(r#"name="code""#),
        "the code is still an input"
    );
    assert!(page.body.contains(r#"<div class="value" id="f-code""#));
    assert!(
        page.body
            .contains(r#"<option value="opencrvs-1.3" selected>"#)
    );

    // A POST that changes the code is refused on the code, and changes nothing.
    let mut rename = fields.clone();
    rename.retain(|(k, _)| *k != "code" && *k != "name");
    rename.push(("code", "ocrvs_renamed"));
    rename.push(("name", "Not saved"));
    let r = b.post("/sources/ocrvs", &with_csrf(&csrf, rename)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains(r#"id="f-code-err""#),
        "no error beside the code"
    );
    assert!(r.body.contains("cannot be changed"));
    let still = e.store.get_data_source("ocrvs").await.unwrap().unwrap();
    assert_eq!(still.name, "Test CRVS");
    assert!(
        e.store
            .get_data_source("ocrvs_renamed")
            .await
            .unwrap()
            .is_none()
    );

    // Without a code (what the form posts now) the edit saves, the profile with it.
    let mut edit = fields;
    edit.retain(|(k, _)| *k != "code" && *k != "profile");
    edit.push(("profile", "standard"));
    edit.retain(|(k, _)| *k != "sender_id");
    edit.push(("sender_id", "spmis.test"));
    let r = b.post("/sources/ocrvs", &with_csrf(&csrf, edit)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let saved = e.store.get_data_source("ocrvs").await.unwrap().unwrap();
    assert_eq!(saved.profile.as_str(), "standard");
    assert_eq!(saved.code, "ocrvs");
}

#[tokio::test]
async fn read_only_users_view_but_cannot_edit_test_or_search() {
    let e = env().await;
    let mut admin = Browser::new(app_with_readonly(&e));
    let csrf = admin.login(ADMIN).await;
    let fields = source_fields(
        "ro_src",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/t",
        "sek-ret-value",
    );
    admin
        .post("/sources/new", &with_csrf(&csrf, fields.clone()))
        .await;

    let mut ro = Browser::new(app_with_readonly(&e));
    let csrf = ro.login(READONLY).await;
    let list = ro.get("/sources").await;
    assert!(list.body.contains("ro_src"));
    assert!(list.body.contains("signed in: read-only"));
    assert!(!list.body.contains("New data source"));
    let form = ro.get("/sources/ro_src").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(!form.body.contains(r#"id="save""#));
    assert!(!form.body.contains(r#"id="test-connection""#));
    assert!(!form.body.contains(r#"id="delete-source""#));
    // Values, not inputs that look editable.
    let settings = &form.body[form.body.find(r#"id="source-form""#).unwrap()..];
    assert!(!settings.contains("<input type=\"text\""), "{settings}");
    assert!(!settings.contains("<select"), "{settings}");
    assert!(settings.contains("http://127.0.0.1:9/crvs"));
    assert!(
        settings.contains("stored (hidden)"),
        "a stored secret is named, not shown"
    );
    assert!(!settings.contains("sek-ret-value"));
    assert_eq!(
        ro.get("/sources/ro_src/delete").await.status,
        StatusCode::FORBIDDEN
    );
    let search = ro.get("/search").await;
    assert!(search.body.contains(r#"id="search-readonly""#));
    assert!(!search.body.contains(r#"id="search-form""#));
    for path in [
        "/sources/ro_src/delete",
        "/sources/ro_src",
        "/sources/ro_src/test",
        "/sources/ro_src/clear-token",
        "/sources/new",
        "/search",
        "/keys",
    ] {
        let r = ro.post(path, &with_csrf(&csrf, fields.clone())).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert!(r.body.contains("read-only"), "{path}");
    }
    let stored = e.store.get_data_source("ro_src").await.unwrap().unwrap();
    assert_eq!(
        stored.state,
        SourceState::Draft,
        "the read-only user did not test it"
    );
}

#[tokio::test]
async fn test_connection_shows_each_stage_and_search_shows_records() {
    let sb = dci_sandbox::spawn(dci_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let base = sb.registry_url(RegistryType::Crvs);
    let token_url = sb.token_url();
    let fields = source_fields("sb", &base, &token_url, dci_sandbox::DEMO_CLIENT_SECRET);
    assert_eq!(
        b.post("/sources/new", &with_csrf(&csrf, fields))
            .await
            .status,
        StatusCode::SEE_OTHER
    );

    let r = b.post("/sources/sb/test", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains(r#"data-stage="token" data-status="pass""#),
        "{}",
        r.body
    );
    assert!(r.body.contains(r#"data-stage="ping" data-status="pass""#));
    assert!(
        r.body
            .contains(r#"<span id="state"><span class="badge b-active">active</span>"#)
    );
    assert_eq!(
        e.store.get_data_source("sb").await.unwrap().unwrap().state,
        SourceState::Active
    );
    let list = b.get("/sources?state=active").await;
    assert!(list.body.contains(r#"href="/sources/sb""#));
    let list = b.get("/sources?state=error").await;
    assert!(!list.body.contains(r#"href="/sources/sb""#));

    // Clear the token cache: the next test fetches a new token.
    let before = sb.token_requests();
    let r = b.post("/sources/sb/clear-token", &[("csrf", &csrf)]).await;
    assert_eq!(
        r.location.as_deref(),
        Some("/sources/sb?notice=token-cleared")
    );
    b.post("/sources/sb/test", &[("csrf", &csrf)]).await;
    assert!(sb.token_requests() > before);

    // Search by identifier.
    let ex = sb.examples()[&RegistryType::Crvs].found[0].clone();
    let r = b
        .post(
            "/search",
            &[
                ("csrf", &csrf),
                ("source", "sb"),
                ("kind", "id"),
                ("id_type", &ex.id_type),
                ("id_value", &ex.id_value),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains(r#"<span id="record-count">1</span>"#),
        "{}",
        r.body
    );
    assert!(r.body.contains(&ex.id_value));
    // A typed view, not raw JSON: a CRVS record is a person, its codes decoded.
    assert!(r.body.contains(r#"data-kind="person""#), "{}", r.body);
    assert!(r.body.contains("Marital status"));
    assert!(r.body.contains(r#"<select id="s-id-type" name="id_type""#));
    // An unknown identifier type is refused with the valid ones.
    let r = b
        .post(
            "/search",
            &[
                ("csrf", &csrf),
                ("source", "sb"),
                ("kind", "id"),
                ("id_type", "PASSPORT"),
                ("id_value", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("Identifier type: choose one of UIN"),
        "{}",
        r.body
    );

    // The audit log shows the calls.
    let log = b.get("/log?source=sb").await;
    assert!(log.body.contains("sync/search") || log.body.contains("search"));

    // A wrong secret: the token stage fails with the registry's reason, state error.
    let fields = source_fields("sb", &base, &token_url, "wrong-secret");
    assert_eq!(
        b.post("/sources/sb", &with_csrf(&csrf, fields))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let r = b.post("/sources/sb/test", &[("csrf", &csrf)]).await;
    assert!(
        r.body.contains(r#"data-stage="token" data-status="fail""#),
        "{}",
        r.body
    );
    assert!(r.body.contains(r#"b-error">error</span>"#));
    assert!(!r.body.contains("wrong-secret"));
    // The failure is said once (in its stage's row), not again as summary and last error.
    assert!(!r.body.contains(r#"id="last-error""#));
    assert!(!r.body.contains(r#"id="test-summary""#));
    // The search page preselects an active source, not this one in error.
    let fields = source_fields("sb_ok", &base, &token_url, dci_sandbox::DEMO_CLIENT_SECRET);
    b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    b.post("/sources/sb_ok/test", &[("csrf", &csrf)]).await;
    let page = b.get("/search").await;
    assert!(
        page.body.contains(r#"<option value="sb_ok" selected>"#),
        "{}",
        page.body
    );
    assert_eq!(
        e.store.get_data_source("sb").await.unwrap().unwrap().state,
        SourceState::Error
    );
}

#[tokio::test]
async fn signing_keys_generate_and_revoke_show_only_the_public_part() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let r = b
        .post(
            "/keys",
            &[
                ("csrf", &csrf),
                ("key_id", "spmis-1"),
                ("algorithm", "ed25519"),
                ("activate", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = b.get("/keys").await;
    assert!(page.body.contains("spmis-1"));
    assert!(page.body.contains("BEGIN PUBLIC KEY"));
    assert!(!page.body.contains("PRIVATE KEY"));
    let r = b
        .post(
            "/keys",
            &[
                ("csrf", &csrf),
                ("key_id", "bad id!"),
                ("algorithm", "ed25519"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("not a valid key id"));
    // Revoke asks first: the keys page links to a confirmation page, and a POST without the
    // confirmation shows it and changes nothing.
    assert!(page.body.contains(r#"href="/keys/spmis-1/revoke""#));
    let confirm = b.get("/keys/spmis-1/revoke").await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Revoke signing key spmis-1?"));
    assert!(confirm.body.contains(r#"name="confirm" value="yes""#));
    let r = b.post("/keys/spmis-1/revoke", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Revoke signing key spmis-1?"));
    assert!(b.get("/keys").await.body.contains(r#"b-active">active"#));
    let r = b
        .post(
            "/keys/spmis-1/revoke",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(b.get("/keys").await.body.contains(r#"b-revoked">revoked"#));
}

#[tokio::test]
async fn the_signing_key_is_a_choice_of_existing_keys_and_an_unknown_one_is_refused() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let mut fields = source_fields(
        "signed",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/t",
        "s",
    );
    fields.push(("signing_key_id", "nosuch"));
    let r = b
        .post("/sources/new", &with_csrf(&csrf, fields.clone()))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body
            .contains(r##"<a href="#f-signing_key_id">Our signing key</a>"##),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("is not one of our signing keys"),
        "{}",
        r.body
    );
    assert!(e.store.get_data_source("signed").await.unwrap().is_none());
    b.post(
        "/keys",
        &[
            ("csrf", &csrf),
            ("key_id", "k-2026"),
            ("algorithm", "ed25519"),
            ("activate", "on"),
        ],
    )
    .await;
    let form = b.get("/sources/new").await;
    assert!(
        form.body
            .contains(r#"<select id="f-signing_key_id" name="signing_key_id""#)
    );
    assert!(
        form.body
            .contains(r#"<option value="k-2026">k-2026 (ed25519, active)</option>"#),
        "{}",
        form.body
    );
    let fields: Vec<_> = fields
        .into_iter()
        .map(|(k, v)| {
            if k == "signing_key_id" {
                (k, "k-2026")
            } else {
                (k, v)
            }
        })
        .collect();
    let r = b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        e.store
            .get_data_source("signed")
            .await
            .unwrap()
            .unwrap()
            .signing_key_id
            .as_deref(),
        Some("k-2026")
    );
}

#[tokio::test]
async fn deleting_a_source_asks_for_confirmation_first() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let fields = source_fields(
        "doomed",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/t",
        "s",
    );
    b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    let page = b.get("/sources/doomed").await;
    assert!(page.body.contains(r#"href="/sources/doomed/delete""#));
    let confirm = b.get("/sources/doomed/delete").await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Delete data source doomed?"));
    // Without the confirmation nothing is deleted.
    let r = b.post("/sources/doomed/delete", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(e.store.get_data_source("doomed").await.unwrap().is_some());
    let r = b
        .post(
            "/sources/doomed/delete",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/sources?notice=deleted"));
    assert!(e.store.get_data_source("doomed").await.unwrap().is_none());
    assert!(
        b.get("/sources?notice=deleted")
            .await
            .body
            .contains("Data source deleted.")
    );
    // Without the CSRF token: refused.
    let fields = source_fields(
        "kept",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/t",
        "s",
    );
    b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    let r = b.post("/sources/kept/delete", &[("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(e.store.get_data_source("kept").await.unwrap().is_some());
}

#[tokio::test]
async fn transactions_page_shows_async_requests_with_their_callbacks() {
    let sb = dci_sandbox::spawn(dci_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let e = env().await;
    // A real server receives the sandbox's callback.
    let server = dci_server::spawn(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        e.state.clone(),
    )
    .await
    .unwrap();
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let base = sb.registry_url(RegistryType::Crvs);
    let token_url = sb.token_url();
    let callback = format!("{}/callback/tx", server.base_url());
    let mut fields = source_fields("tx", &base, &token_url, dci_sandbox::DEMO_CLIENT_SECRET);
    fields.push(("callback_uri", &callback));
    fields.push(("receiver_id", sb.registry_id()));
    let r = b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    let ex = sb.examples()[&RegistryType::Crvs].found[0].clone();
    let ops = e.state.operations("tx").await.unwrap();
    let spec =
        dci_client::ops::SearchSpec::by_id(&format!("{}:{}", ex.id_type, ex.id_value)).unwrap();
    let sub = ops
        .submit_search_async(&dci_client::ops::SearchQuery::one(spec))
        .await
        .unwrap();
    let view = ops
        .await_transaction(&sub.transaction_id, std::time::Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(view.state.as_str(), "completed");

    let page = b.get("/transactions").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&sub.transaction_id), "{}", page.body);
    assert!(page.body.contains("on-search"), "the callback is listed");
    assert!(page.body.contains(r#"b-completed">completed"#));
    // The id links to the transaction's page: ACK, callbacks, the typed result.
    let link = format!(r#"href="/transactions/{}""#, sub.transaction_id);
    assert!(page.body.contains(&link), "{}", page.body);
    let detail = b
        .get(&format!("/transactions/{}", sub.transaction_id))
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.body.contains("Acknowledgement"));
    assert!(
        detail
            .body
            .contains(r#"<span id="txn-record-count">1</span>"#),
        "{}",
        detail.body
    );
    assert!(detail.body.contains(r#"data-kind="person""#));
    assert!(detail.body.contains(&ex.id_value));
    let missing = b.get("/transactions/no-such-txn").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn date_range_search_shows_typed_results() {
    let sb = dci_sandbox::spawn(dci_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let base = sb.registry_url(RegistryType::Crvs);
    let token_url = sb.token_url();
    let fields = source_fields("dates", &base, &token_url, dci_sandbox::DEMO_CLIENT_SECRET);
    b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    let r = b
        .post(
            "/search",
            &[
                ("csrf", &csrf),
                ("source", "dates"),
                ("kind", "date"),
                ("attribute", "event_date"),
                ("from", "1900-01-01"),
                ("to", "2100-12-31"),
                ("event_type", "LiveBirth"),
                ("page_size", "3"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains(r#"<span id="record-count">3</span>"#),
        "{}",
        r.body
    );
    assert!(r.body.contains("page 1 (3 per page) of"));

    // Bad input is named, and nothing is sent.
    let r = b
        .post(
            "/search",
            &[("csrf", &csrf), ("source", "dates"), ("kind", "date")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains(r#"id="search-error""#));
    let r = b
        .post(
            "/search",
            &[
                ("csrf", &csrf),
                ("source", "dates"),
                ("kind", "id"),
                ("id_type", "UIN"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Identifier"));
}

#[tokio::test]
async fn htmx_is_served_locally_and_optional() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let js = b.get("/static/htmx.min.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("htmx"));
    let csrf = b.login(ADMIN).await;
    let fields = source_fields("hx", "http://127.0.0.1:9/crvs", "http://127.0.0.1:9/t", "s");
    b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    let page = b.get("/sources/hx").await;
    assert!(page.body.contains(r#"src="/static/htmx.min.js""#));
    assert!(!page.body.contains("unpkg") && !page.body.contains("cdn"));
    // The plain form still posts to the stable route (works without JavaScript).
    assert!(page.body.contains(r#"action="/sources/hx/test""#));
    assert!(page.body.contains(r#"hx-post="/sources/hx/test""#));
}

#[tokio::test]
async fn accepting_unauthenticated_callbacks_is_a_visible_opt_out() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let form = b.get("/sources/new").await;
    assert!(
        form.body
            .contains(r#"name="accept_unauthenticated_callbacks""#),
        "the opt-out is in the form"
    );
    assert!(
        form.body.contains("forge search results"),
        "with its warning"
    );
    // Off unless ticked.
    let fields = source_fields(
        "closed",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/token",
        "s-1",
    );
    let r = b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let closed = e.store.get_data_source("closed").await.unwrap().unwrap();
    assert!(!closed.callbacks.accept_unauthenticated);
    assert!(
        closed.callbacks.secret.is_some(),
        "a new source gets a secret"
    );
    let mut fields = source_fields(
        "open",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/token",
        "s-1",
    );
    fields.push(("accept_unauthenticated_callbacks", "on"));
    let r = b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let open = e.store.get_data_source("open").await.unwrap().unwrap();
    assert!(open.callbacks.accept_unauthenticated);
    let page = b.get("/sources/open").await;
    assert!(
        page.body
            .contains(r#"name="accept_unauthenticated_callbacks" checked"#),
        "the edit form shows it ticked"
    );
}

#[tokio::test]
async fn schedules_are_added_through_the_form_and_removed_after_a_confirmation() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let fields = source_fields(
        "crvs_main",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/t",
        "s",
    );
    b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    let input = e._dir.path().join("caseload.csv");
    std::fs::write(&input, "id_type,id_value\nNID,1\n").unwrap();
    let input = input.display().to_string();
    let page = b.get("/jobs").await;
    assert!(page.body.contains(r#"id="schedule-form""#), "{}", page.body);
    assert!(page.body.contains(r#"<option value="crvs_main">"#));
    assert!(
        page.body.contains("six fields put seconds first"),
        "the cron hint says what the library accepts"
    );
    assert!(!page.body.contains("add them with"));
    let r = b
        .post(
            "/schedules",
            &with_csrf(&csrf, schedule_fields("crvs_main", &input)),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/jobs?notice=schedule-added"));
    let stored = e.state.ops.list_schedules().await.unwrap();
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert_eq!(
        (
            s.name.as_str(),
            s.source_code.as_str(),
            s.cron.as_str(),
            s.input.as_str()
        ),
        (
            "monthly death check",
            "crvs_main",
            "0 2 1 * *",
            input.as_str()
        )
    );
    assert_eq!(s.batch_size, Some(50));
    assert_eq!(s.catch_up, dci_client::jobs::CatchUp::None);
    assert_eq!(s.input_format, dci_client::bulk::InputFormat::Csv);
    assert!(s.enabled);
    let page = b.get("/jobs?notice=schedule-added").await;
    assert!(page.body.contains("Schedule added"));
    let table = &page.body[page.body.find(r#"id="schedules""#).unwrap()..];
    assert!(table.contains("monthly death check") && table.contains("0 2 1 * *"));
    let remove = format!("/schedules/{}/remove", s.id);
    assert!(table.contains(&format!(r#"href="{remove}""#)));
    // The change audit names the schedule, and who added it.
    let changes = b.get("/changes?target=schedule").await;
    assert!(changes.body.contains(&s.id), "{}", changes.body);
    assert!(changes.body.contains("<td>create</td>"), "{}", changes.body);

    // Removal: a confirmation page first; without the confirmation, or the CSRF token,
    // nothing is removed.
    let confirm = b.get(&remove).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm
            .body
            .contains("Remove schedule monthly death check?")
    );
    let r = b.post(&remove, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = b.post(&remove, &[("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(e.state.ops.list_schedules().await.unwrap().len(), 1);
    let r = b
        .post(&remove, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(r.location.as_deref(), Some("/jobs?notice=schedule-removed"));
    assert!(e.state.ops.list_schedules().await.unwrap().is_empty());
    let page = b.get("/jobs?notice=schedule-removed").await;
    assert!(page.body.contains("Schedule removed"));
    assert!(page.body.contains("No schedules."));
    let changes = b.get("/changes?target=schedule").await;
    assert!(changes.body.contains("<td>delete</td>"), "{}", changes.body);
    // A schedule that is gone: said so.
    let gone = b.get(&remove).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.body.contains("There is no schedule"));
    let recorded = e
        .state
        .ops
        .list_changes(&dci_client::users::ChangeFilter {
            target: Some(dci_client::users::ChangeTarget::Schedule),
            ..dci_client::users::ChangeFilter::default()
        })
        .await
        .unwrap();
    let seen: Vec<(&str, &str, &str)> = recorded
        .iter()
        .map(|c| (c.actor.as_str(), c.target_id.as_str(), c.action.as_str()))
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.contains(&("admin-token", s.id.as_str(), "create")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("admin-token", s.id.as_str(), "delete")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_refused_schedule_form_shows_each_error_beside_its_field_with_the_typed_values() {
    let e = env().await;
    let mut b = Browser::new(app(&e));
    let csrf = b.login(ADMIN).await;
    let fields = source_fields(
        "crvs_main",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/t",
        "s",
    );
    b.post("/sources/new", &with_csrf(&csrf, fields)).await;
    let input = e._dir.path().join("caseload.csv");
    std::fs::write(&input, "id_type,id_value\nNID,1\n").unwrap();
    let input = input.display().to_string();
    let field_err = |body: &str, name: &str| -> String {
        let at = body
            .find(&format!(r#"id="s-{name}-err""#))
            .unwrap_or_else(|| panic!("an error beside {name}: {body}"));
        let rest = &body[at..];
        rest[..rest.find("</span></div>").unwrap()].to_owned()
    };

    // No name, a bad cron expression, a relative input path: each beside its field, by label.
    let mut fields = schedule_fields("crvs_main", "caseload.csv");
    fields[0].1 = "";
    fields[2].1 = "every night";
    fields[7].1 = "Person";
    let r = b.post("/schedules", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body
            .contains("The schedule was not added: fix 3 field(s).")
    );
    assert!(field_err(&r.body, "name").contains("Name: must be 1 to 200 characters"));
    let cron = field_err(&r.body, "cron");
    assert!(
        cron.contains("Cron expression: is not a cron expression"),
        "{cron}"
    );
    assert!(field_err(&r.body, "input").contains("Input: must be an absolute file path"));
    assert!(
        r.body
            .contains(r##"<a href="#s-cron">Cron expression</a>"##)
    );
    assert!(
        r.body.contains(r#"aria-invalid="true""#)
            && r.body
                .contains(r#"aria-describedby="s-cron-hint s-cron-err""#)
    );
    // What was typed is shown again, the choices too.
    assert!(r.body.contains(r#"value="every night""#));
    assert!(r.body.contains(r#"value="caseload.csv""#));
    assert!(r.body.contains(r#"value="Person""#));
    assert!(r.body.contains(r#"value="50""#));
    assert!(r.body.contains(r#"<option value="none" selected>"#));
    assert!(r.body.contains(r#"<option value="crvs_main" selected>"#));
    assert!(!r.body.contains("/cron"), "labels, not JSON pointers");

    // A data source that does not exist, with a bad cron expression: both at once.
    let mut fields = schedule_fields("nosuch", &input);
    fields[2].1 = "every night";
    let r = b.post("/schedules", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        field_err(&r.body, "source_code")
            .contains("Data source: no data source &quot;nosuch&quot;")
    );
    assert!(
        field_err(&r.body, "cron").contains("6 fields put seconds first"),
        "the cron error names every accepted form"
    );
    assert!(
        r.body
            .contains(r#"<option value="nosuch" selected>nosuch (no such data source)"#)
    );
    assert!(r.body.contains(r#"value="monthly death check""#));

    // Identifiers per envelope that is not a number, with another field's error.
    let mut fields = schedule_fields("crvs_main", &input);
    fields[6].1 = "many";
    fields[8].1 = "sometimes";
    let r = b.post("/schedules", &with_csrf(&csrf, fields)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        field_err(&r.body, "batch_size")
            .contains("Identifiers per envelope: must be a whole number")
    );
    assert!(field_err(&r.body, "catch_up").contains("Catch-up: &quot;sometimes&quot;"));
    assert!(r.body.contains(r#"value="many""#));
    // An input file that is not there.
    let missing = e._dir.path().join("missing.csv").display().to_string();
    let r = b
        .post(
            "/schedules",
            &with_csrf(&csrf, schedule_fields("crvs_main", &missing)),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(field_err(&r.body, "input").contains("no such file here"));

    assert!(
        e.state.ops.list_schedules().await.unwrap().is_empty(),
        "nothing stored"
    );
    let changes = b.get("/changes?target=schedule").await;
    assert!(!changes.body.contains("<td>create</td>"));
}

#[tokio::test]
async fn read_only_users_see_schedules_but_cannot_add_or_remove_them() {
    let e = env().await;
    let mut admin = Browser::new(app_with_readonly(&e));
    let csrf = admin.login(ADMIN).await;
    let fields = source_fields(
        "crvs_main",
        "http://127.0.0.1:9/crvs",
        "http://127.0.0.1:9/t",
        "s",
    );
    admin.post("/sources/new", &with_csrf(&csrf, fields)).await;
    let r = admin
        .post(
            "/schedules",
            &with_csrf(
                &csrf,
                schedule_fields("crvs_main", "https://spmis.example/caseload.csv"),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = e.state.ops.list_schedules().await.unwrap()[0].id.clone();
    let remove = format!("/schedules/{id}/remove");

    let mut ro = Browser::new(app_with_readonly(&e));
    let csrf = ro.login(READONLY).await;
    let page = ro.get("/jobs").await;
    assert!(page.body.contains("monthly death check"), "{}", page.body);
    assert!(!page.body.contains(r#"id="schedule-form""#));
    assert!(!page.body.contains(&remove));
    let r = ro
        .post(
            "/schedules",
            &with_csrf(
                &csrf,
                schedule_fields("crvs_main", "https://spmis.example/other.csv"),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("read-only"));
    assert_eq!(ro.get(&remove).await.status, StatusCode::FORBIDDEN);
    let r = ro
        .post(&remove, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(e.state.ops.list_schedules().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_jobs_table_says_which_process_runs_each_job() {
    use dci_client::bulk::{
        BulkJob, Checkpoint, InputFormat, JobLease, JobSpec, JobState, OutputFormat,
    };
    let e = env().await;
    let now = time::OffsetDateTime::now_utc();
    let job = |id: &str, lease: Option<JobLease>, state: JobState| BulkJob {
        id: id.into(),
        source_code: "crvs_main".into(),
        state,
        spec: JobSpec {
            input: Some("/elsewhere/in.csv".into()),
            input_format: InputFormat::Csv,
            output: Some("/elsewhere/out.jsonl".into()),
            output_format: OutputFormat::Jsonl,
            batch_size: 50,
            record_type: None,
            total_rows: Some(10),
            async_wait_secs: None,
        },
        checkpoint: Checkpoint::default(),
        reason: None,
        created_at: now,
        updated_at: now,
        lease,
    };
    let other = "other-host:4242:ab12:4026531836";
    let me = e.state.jobs.instance().to_owned();
    for j in [
        job(
            "job-held-elsewhere",
            Some(JobLease {
                holder: other.into(),
                until: Some(now + time::Duration::hours(1)),
            }),
            JobState::Running,
        ),
        job(
            "job-lease-ended",
            Some(JobLease {
                holder: other.into(),
                until: Some(now - time::Duration::minutes(5)),
            }),
            JobState::Running,
        ),
        job(
            "job-here",
            Some(JobLease {
                holder: me.clone(),
                until: Some(now + time::Duration::seconds(30)),
            }),
            JobState::Running,
        ),
        job("job-never-run", None, JobState::Interrupted),
    ] {
        e.state.ops.create_bulk_job(&j).await.unwrap();
        // Leases are taken as a runner takes them, not stored with the job.
        if let Some(l) = &j.lease {
            let until = l.until.unwrap();
            let taken = e
                .state
                .ops
                .take_bulk_lease(
                    &j.id,
                    &l.holder,
                    until,
                    until - time::Duration::minutes(1),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(taken.map(|t| t.holder).as_ref(), Some(&l.holder));
        }
    }
    let mut b = Browser::new(app(&e));
    b.login(ADMIN).await;
    let page = b.get("/jobs").await;
    assert_eq!(page.status, StatusCode::OK);
    let row = |id: &str| {
        let at = page
            .body
            .find(&format!("<code>{id}</code>"))
            .unwrap_or_else(|| panic!("{id} listed: {}", page.body));
        let end = page.body[at..].find("</tr>").unwrap() + at;
        page.body[at..end].to_owned()
    };
    assert!(page.body.contains("<th>Run by</th>"));
    let held = row("job-held-elsewhere");
    assert!(held.contains(&format!("<code>{other}</code>")), "{held}");
    assert!(held.contains("holds it until"), "{held}");
    assert!(
        held.contains("files outside this server's jobs directory"),
        "{held}"
    );
    let ended = row("job-lease-ended");
    assert!(
        ended.contains("another instance may take it over"),
        "{ended}"
    );
    assert!(!ended.contains("holds it until"), "{ended}");
    let here = row("job-here");
    assert!(
        here.contains("this server") && !here.contains(&me),
        "{here}"
    );
    assert!(row("job-never-run").contains("not started"));
    assert!(
        !page.body.contains("(CLI) job"),
        "no job is labelled by a guess at its origin"
    );
}
