//! Named users through the router: every API route and console page called with every role
//! (table-driven over the routers' own route tables), sign-in throttled per address and per
//! username, console sessions surviving a restart (a new store handle and router on the same
//! SQLite file), the change audit recording actor and field names but no secret, personal API
//! tokens refused once expired or revoked, and the audit log exported by time range.

mod support;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use dci_client::users::{ApiToken, Role};
use dci_client::{AuditEntry, AuditOutcome};
use dci_server::console::ConsoleConfig;
use dci_server::{AppState, ServerConfig, ThrottleConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use support::{Env, TOKEN};
use time::OffsetDateTime;
use tower::ServiceExt;

const READONLY: &str = "users-test-readonly-token-4242";
const SECRET: &str = "users-test-client-secret-77";
const NEW_SECRET: &str = "users-test-client-secret-88";

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// The app state with a read-only token, like `dci serve` with `DCI_CONSOLE_READONLY_TOKEN`.
fn state_with_readonly(env: &Env) -> AppState {
    AppState::with_config(
        env.store.clone(),
        env.ops.clone(),
        dci_server::AdminToken::from_secret(&SecretString::from(TOKEN)),
        ServerConfig {
            console: Some(ConsoleConfig {
                readonly_token: Some(SecretString::from(READONLY)),
                secure_cookies: false,
            }),
            ..ServerConfig::default()
        },
    )
}

struct Answer {
    status: StatusCode,
    set_cookie: Option<String>,
    location: Option<String>,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(app: &Router, from: &str, mut req: Request<Body>) -> Answer {
    let addr: SocketAddr = from.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    let resp = app.clone().oneshot(req).await.unwrap();
    let h = |name| {
        resp.headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let set_cookie = h(header::SET_COOKIE).map(|c| c.split(';').next().unwrap().to_owned());
    let location = h(header::LOCATION);
    let retry_after = h(header::RETRY_AFTER);
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        set_cookie,
        location,
        retry_after,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn api(method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("the page has a CSRF field");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn form(path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Request<Body> {
    let mut b =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(serde_urlencoded::to_string(fields).unwrap()))
        .unwrap()
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

/// A signed-in console session: (cookie, CSRF token).
async fn sign_in(app: &Router, from: &str, username: &str, secret: &str) -> (String, String) {
    let page = send(app, from, get("/login", None)).await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = page.set_cookie.unwrap();
    let csrf = csrf_of(&page.body);
    let r = send(
        app,
        from,
        form(
            "/login",
            Some(&cookie),
            &[("csrf", &csrf), ("username", username), ("token", secret)],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let cookie = r.set_cookie.unwrap();
    let page = send(app, from, get("/sources", Some(&cookie))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    (cookie, csrf_of(&page.body))
}

/// Path parameters filled with values that name nothing.
fn fill(path: &str) -> String {
    path.replace("{code}", "nosuch")
        .replace("{transaction_id}", "nosuch")
        .replace("{username}", "nosuch")
        .replace("{id}", "nosuch")
}

const FROM: &str = "192.0.2.1:1000";

#[tokio::test]
async fn every_api_route_answers_each_role_as_its_table_says() {
    let env = Env::new().await;
    let state = state_with_readonly(&env);
    let users = state.users();
    let mut tokens: Vec<(String, Role, String)> = Vec::new();
    for role in Role::ALL {
        let name = format!("u-{role}");
        users
            .add("test", &name, role, &pw("a long test passphrase"))
            .await
            .unwrap();
        let (_, t) = users.create_token("test", &name, "t", None).await.unwrap();
        tokens.push((
            format!("personal {role}"),
            role,
            t.expose_secret().to_owned(),
        ));
    }
    tokens.push(("admin token".into(), Role::Admin, TOKEN.into()));
    tokens.push(("read-only token".into(), Role::Viewer, READONLY.into()));
    let app = dci_server::router(state);
    let routes = dci_server::api::route_roles();
    assert!(routes.len() > 40, "the table lists every route");
    for (method, path, needed) in &routes {
        let url = format!("/api/v1{}", fill(path));
        let body = matches!(*method, Method::POST | Method::PUT).then(|| json!({}));
        let r = send(&app, FROM, api(method.clone(), &url, None, body.clone())).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        for (who, role, token) in &tokens {
            let r = send(
                &app,
                FROM,
                api(method.clone(), &url, Some(token), body.clone()),
            )
            .await;
            if role.allows(*needed) {
                assert!(
                    !matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                    "{method} {path} needs {needed}: {who} got {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} needs {needed}: {who} got {}",
                    r.body
                );
                let v = r.json();
                assert_eq!(v["error"]["kind"], "forbidden");
                let m = v["error"]["message"].as_str().unwrap();
                assert!(m.contains(&format!("needs the {needed} role")), "{m}");
            }
        }
    }
}

#[tokio::test]
async fn every_console_page_answers_each_role_as_its_table_says() {
    let env = Env::new().await;
    let state = state_with_readonly(&env);
    let users = state.users();
    for role in Role::ALL {
        users
            .add(
                "test",
                &format!("c-{role}"),
                role,
                &pw("a long test passphrase"),
            )
            .await
            .unwrap();
    }
    let app = dci_server::router(state);
    let mut callers = Vec::new();
    for role in Role::ALL {
        let (cookie, _) = sign_in(&app, FROM, &format!("c-{role}"), "a long test passphrase").await;
        callers.push((format!("user {role}"), role, cookie));
    }
    let (cookie, _) = sign_in(&app, FROM, "", READONLY).await;
    callers.push(("read-only token".into(), Role::Viewer, cookie));
    let (cookie, _) = sign_in(&app, FROM, "", TOKEN).await;
    callers.push(("admin token".into(), Role::Admin, cookie));
    let routes = dci_server::console::route_roles();
    assert!(routes.len() > 20, "the table lists every page");
    // What each role is offered: an operator tests and searches, an admin also edits.
    let source = json!({
        "code": "src_a", "name": "A", "registry_type": "crvs",
        "base_url": "http://127.0.0.1:9/crvs", "auth": {"type": "none"},
        "sender_id": "spmis.example.org", "receiver_id": "crvs.example.org",
        "callback_uri": "http://127.0.0.1:8080/callback/src_a",
    });
    let r = send(
        &app,
        FROM,
        api(Method::POST, "/api/v1/sources", Some(TOKEN), Some(source)),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for (who, role, cookie) in &callers {
        let page = send(&app, FROM, get("/sources/src_a", Some(cookie))).await;
        let shown = |id: &str| page.body.contains(&format!("id=\"{id}\""));
        assert_eq!(
            shown("test-connection"),
            role.allows(Role::Operator),
            "{who}"
        );
        assert_eq!(shown("delete-source"), role.allows(Role::Admin), "{who}");
        assert_eq!(shown("save"), role.allows(Role::Admin), "{who}");
        let search = send(&app, FROM, get("/search", Some(cookie))).await;
        assert_eq!(
            search.body.contains("id=\"search-form\""),
            role.allows(Role::Operator),
            "{who}"
        );
    }
    for (method, path, needed) in &routes {
        let Some(needed) = needed else { continue };
        let url = fill(path);
        let anon = if *method == Method::GET {
            send(&app, FROM, get(&url, None)).await
        } else {
            send(&app, FROM, form(&url, None, &[])).await
        };
        assert_eq!(
            anon.status,
            StatusCode::SEE_OTHER,
            "{method} {path} signed out"
        );
        assert_eq!(anon.location.as_deref(), Some("/login"));
        for (who, role, cookie) in &callers {
            let r = if *method == Method::GET {
                send(&app, FROM, get(&url, Some(cookie))).await
            } else {
                // A wrong CSRF token: an allowed role is refused for the form, not the role,
                // so nothing changes.
                send(&app, FROM, form(&url, Some(cookie), &[("csrf", "stale")])).await
            };
            if role.allows(*needed) {
                assert!(
                    !r.body.contains("Not allowed"),
                    "{method} {path} needs {needed}: {who} got {} {}",
                    r.status,
                    r.body
                );
                if *method == Method::POST {
                    assert!(r.body.contains("Form expired"), "{method} {path} {who}");
                }
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} needs {needed}: {who}"
                );
                assert!(r.body.contains("Not allowed"), "{method} {path} {who}");
            }
        }
    }
}

fn limits(max: u32) -> ThrottleConfig {
    ThrottleConfig {
        max_failures: NonZeroU32::new(max).unwrap(),
        period: Duration::from_secs(600),
    }
}

/// One sign-in attempt from a fresh login form.
async fn attempt(app: &Router, from: &str, username: &str, secret: &str) -> Answer {
    let page = send(app, from, get("/login", None)).await;
    let cookie = page.set_cookie.unwrap();
    let csrf = csrf_of(&page.body);
    send(
        app,
        from,
        form(
            "/login",
            Some(&cookie),
            &[("csrf", &csrf), ("username", username), ("token", secret)],
        ),
    )
    .await
}

#[tokio::test]
async fn sign_in_is_throttled_per_address_and_per_username() {
    let env = Env::new().await;
    let users = env.state.users();
    for name in ["alice", "bob"] {
        users
            .add("test", name, Role::Operator, &pw("the right passphrase"))
            .await
            .unwrap();
    }
    let app = dci_server::router_with(env.state.clone(), limits(3));
    // Three wrong passwords for alice, each from another address: no address is locked, the
    // username is.
    for (i, from) in ["192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1"]
        .iter()
        .enumerate()
    {
        let r = attempt(&app, from, "alice", "a wrong passphrase").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(
            r.body.contains("username and password do not match"),
            "{}",
            r.body
        );
    }
    let r = attempt(&app, "192.0.2.4:1", "alice", "the right passphrase").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password"
    );
    assert!(
        r.body
            .contains("Too many failed sign-ins for this username"),
        "{}",
        r.body
    );
    assert!(r.retry_after.is_some());
    // Any case or spacing is the same username.
    let r = attempt(&app, "192.0.2.4:1", " Alice ", "the right passphrase").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Bob is not affected, from any of those addresses.
    let r = attempt(&app, "192.0.2.1:1", "bob", "the right passphrase").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // Per address: three failures from one address over several usernames (and tokens) lock
    // that address, for every username and the API too.
    let from = "198.51.100.9:1";
    assert_eq!(
        attempt(&app, from, "carol", "x wrong one").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        attempt(&app, from, "dave", "x wrong one").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        attempt(&app, from, "", "not-the-admin-token").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = attempt(&app, from, "bob", "the right passphrase").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.body
            .contains("Too many failed sign-ins from your address"),
        "{}",
        r.body
    );
    let r = send(
        &app,
        from,
        api(Method::GET, "/api/v1/sources", Some(TOKEN), None),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the API shares the address count"
    );
    // Unknown usernames count too (a lock-out does not tell who exists).
    for _ in 0..3 {
        attempt(&app, "203.0.113.1:1", "nobody", "x wrong one").await;
        attempt(&app, "203.0.113.2:1", "nobody", "x wrong one").await;
    }
    let r = attempt(&app, "203.0.113.3:1", "nobody", "x wrong one").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Two instances on one database (two store handles on one SQLite file, two routers): wrong
/// passwords for one username, alternating between them, add up, and the lock-out holds on both.
#[tokio::test]
async fn sign_in_lockouts_per_username_are_shared_by_instances_on_one_database() {
    let env = Env::new().await;
    env.state
        .users()
        .add("test", "gina", Role::Operator, &pw("the right passphrase"))
        .await
        .unwrap();
    let one = dci_server::router_with(env.state.clone(), limits(3));
    let (store, ops) = support::open(&env.db_path(), &env.key).await;
    let two = dci_server::router_with(support::state(store, ops), limits(3));
    // Three failures, from three addresses, split over the instances: no address and, in
    // either process alone, not the username has used up its allowance.
    for (app, from) in [
        (&one, "192.0.2.11:1"),
        (&two, "192.0.2.12:1"),
        (&one, "192.0.2.13:1"),
    ] {
        let r = attempt(app, from, "gina", "a wrong passphrase").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    for app in [&two, &one] {
        let r = attempt(app, "192.0.2.14:1", "gina", "the right passphrase").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(
            r.body
                .contains("Too many failed sign-ins for this username"),
            "{}",
            r.body
        );
        assert!(r.retry_after.is_some());
    }
    // Another username is not affected on either.
    env.state
        .users()
        .add("test", "hugo", Role::Viewer, &pw("hugo's right passphrase"))
        .await
        .unwrap();
    let r = attempt(&two, "192.0.2.14:1", "hugo", "hugo's right passphrase").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[tokio::test]
async fn console_sessions_survive_a_restart() {
    let env = Env::new().await;
    env.state
        .users()
        .add("test", "erin", Role::Viewer, &pw("erin's long passphrase"))
        .await
        .unwrap();
    let app = dci_server::router(env.state.clone());
    let (cookie, _) = sign_in(&app, FROM, "erin", "erin's long passphrase").await;
    let (admin_cookie, _) = sign_in(&app, FROM, "", TOKEN).await;
    drop(app);
    let path = env.db_path();
    let Env { dir, .. } = env;
    // A new process: a new store handle on the same SQLite file, a new router.
    let (store, ops) = support::open(&path, &dci_client::MasterKey::from_bytes([42u8; 32])).await;
    let app = dci_server::router(support::state(store, ops));
    for c in [&cookie, &admin_cookie] {
        let r = send(&app, FROM, get("/sources", Some(c))).await;
        assert_eq!(r.status, StatusCode::OK, "still signed in: {}", r.body);
    }
    let r = send(&app, FROM, get("/sources", Some(&cookie))).await;
    assert!(
        r.body.contains("erin (viewer)"),
        "the header names the user"
    );
    let r = send(&app, FROM, get("/sources", Some("dci_console=forged"))).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    drop(dir);
}

#[tokio::test]
async fn the_change_audit_records_actor_and_field_names_and_no_secret() {
    let env = Env::new().await;
    let users = env.state.users();
    users
        .add("test", "frank", Role::Admin, &pw("frank's long passphrase"))
        .await
        .unwrap();
    let (_, token) = users
        .create_token("test", "frank", "t", None)
        .await
        .unwrap();
    let token = token.expose_secret().to_owned();
    let app = dci_server::router(env.state.clone());
    let source = json!({
        "code": "crvs_a",
        "name": "National CRVS",
        "registry_type": "crvs",
        "base_url": "http://127.0.0.1:9/crvs",
        "auth": {
            "type": "oauth2",
            "token_url": "http://127.0.0.1:9/oauth2/client/token",
            "client_id": "spmis",
            "client_secret": SECRET,
        },
        "sender_id": "spmis.example.org",
        "receiver_id": "crvs.example.org",
        "callback_uri": "http://127.0.0.1:8080/callback/crvs_a",
    });
    let r = send(
        &app,
        FROM,
        api(
            Method::POST,
            "/api/v1/sources",
            Some(&token),
            Some(source.clone()),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mut changed = source.clone();
    changed["base_url"] = "http://127.0.0.1:9/crvs2".into();
    changed["auth"]["client_secret"] = NEW_SECRET.into();
    let r = send(
        &app,
        FROM,
        api(
            Method::PUT,
            "/api/v1/sources/crvs_a",
            Some(&token),
            Some(changed),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(
        &app,
        FROM,
        api(
            Method::POST,
            "/api/v1/webhooks",
            Some(TOKEN),
            Some(json!({"url": "http://127.0.0.1:9/hook"})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = send(
        &app,
        FROM,
        api(Method::DELETE, "/api/v1/sources/crvs_a", Some(&token), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    let r = send(
        &app,
        FROM,
        api(Method::GET, "/api/v1/audit/changes", Some(TOKEN), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let changes = r.json()["changes"].as_array().unwrap().clone();
    let summary: Vec<(String, String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["actor"].as_str().unwrap().to_owned(),
                c["target"].as_str().unwrap().to_owned(),
                c["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        summary,
        [
            s("user:frank", "data_source", "delete"),
            s("admin-token", "webhook", "create"),
            s("user:frank", "data_source", "update"),
            s("user:frank", "data_source", "create"),
            s("test", "api_token", "create"),
            s("test", "user", "create"),
        ]
    );
    let update = &changes[2];
    let fields: Vec<&str> = update["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["auth.client_secret", "base_url"],
        "field names, the secret's included"
    );
    let create = &changes[3];
    assert!(
        create["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "auth.client_secret")
    );
    let created = create["fields"].as_array().unwrap();
    assert!(created.iter().any(|f| f == "base_url"));
    assert!(
        !created.iter().any(|f| f == "id" || f == "created_at"),
        "no bookkeeping"
    );
    for secret in [SECRET, NEW_SECRET, &token] {
        assert!(!r.body.contains(secret), "no secret in the change audit");
    }
    // The console shows it, and the export carries it.
    let (cookie, _) = sign_in(&app, FROM, "", TOKEN).await;
    let page = send(&app, FROM, get("/changes", Some(&cookie))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("user:frank") && page.body.contains("auth.client_secret, base_url"));
    assert!(!page.body.contains(NEW_SECRET));
    let r = send(
        &app,
        FROM,
        api(
            Method::GET,
            "/api/v1/audit/export?log=changes&format=csv",
            Some(TOKEN),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body
            .starts_with("at,actor,target,target_id,action,fields\n"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains(",user:frank,data_source,crvs_a,update,auth.client_secret;base_url\n"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn personal_tokens_are_refused_once_expired_or_revoked() {
    let env = Env::new().await;
    let users = env.state.users();
    let u = users
        .add(
            "test",
            "gina",
            Role::Operator,
            &pw("gina's long passphrase"),
        )
        .await
        .unwrap();
    let (record, token) = users
        .create_token("test", "gina", "laptop", Some(7))
        .await
        .unwrap();
    let token = token.expose_secret().to_owned();
    let app = dci_server::router(env.state.clone());
    let r = send(
        &app,
        FROM,
        api(Method::GET, "/api/v1/me", Some(&token), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["actor"], "user:gina");
    assert_eq!(r.json()["role"], "operator");

    let expired = ApiToken {
        id: uuid::Uuid::now_v7(),
        user_id: u.id,
        name: "old".into(),
        created_at: OffsetDateTime::now_utc() - time::Duration::days(30),
        expires_at: OffsetDateTime::now_utc() - time::Duration::minutes(1),
        revoked_at: None,
    };
    users
        .store()
        .create_api_token(
            &expired,
            &dci_client::users::secret::digest_hex("dcip_old-one"),
        )
        .await
        .unwrap();
    let r = send(
        &app,
        FROM,
        api(Method::GET, "/api/v1/me", Some("dcip_old-one"), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        r.body
    );

    users.revoke_token("test", record.id).await.unwrap();
    let r = send(
        &app,
        FROM,
        api(Method::GET, "/api/v1/me", Some(&token), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_audit_log_exports_by_time_range() {
    let env = Env::new().await;
    let t0 = time::macros::datetime!(2026-11-01 00:00:00 UTC);
    let entries: Vec<AuditEntry> = (0..5)
        .map(|i| AuditEntry {
            at: t0 + time::Duration::days(i),
            source_code: "crvs".into(),
            endpoint: "https://r.example/registry/sync/search".into(),
            action: "search".into(),
            message_id: Some(format!("m{i}")),
            transaction_id: None,
            http_status: Some(200),
            outcome: AuditOutcome::Ok,
            duration_ms: 10 + i as u64,
            attempt: 1,
            error: (i == 2).then(|| "a, \"quoted\" error".to_owned()),
        })
        .collect();
    env.store.append_audit_batch(&entries).await.unwrap();
    let app = dci_server::router(env.state.clone());
    let url = "/api/v1/audit/export?since=2026-11-02T00:00:00Z&until=2026-11-04T00:00:00Z";
    let r = send(&app, FROM, api(Method::GET, url, Some(TOKEN), None)).await;
    assert_eq!(r.status, StatusCode::OK);
    let lines: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines
            .iter()
            .map(|l| l["message_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["m1", "m2"],
        "oldest first, since inclusive, until exclusive"
    );
    let r = send(
        &app,
        FROM,
        api(Method::GET, &format!("{url}&format=csv"), Some(TOKEN), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut rows = csv::Reader::from_reader(r.body.as_bytes());
    let got: Vec<Vec<String>> = rows
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1][10], "a, \"quoted\" error", "quoted and read back");
    let r = send(
        &app,
        FROM,
        api(
            Method::GET,
            "/api/v1/audit/export?format=xml",
            Some(TOKEN),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("use jsonl or csv"), "{}", r.body);
    let r = send(
        &app,
        FROM,
        api(
            Method::GET,
            "/api/v1/audit/export?since=2026-11-04T00:00:00Z&until=2026-11-02T00:00:00Z",
            Some(TOKEN),
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn webhook_changes_made_in_the_console_are_in_the_change_audit() {
    let env = Env::new().await;
    env.state
        .users()
        .add("test", "wendy", Role::Admin, &pw("wendy's long passphrase"))
        .await
        .unwrap();
    let app = dci_server::router(env.state.clone());
    let (cookie, csrf) = sign_in(&app, FROM, "wendy", "wendy's long passphrase").await;
    let r = send(
        &app,
        FROM,
        form(
            "/webhooks",
            Some(&cookie),
            &[("csrf", &csrf), ("url", "http://127.0.0.1:9/hook")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = env.ops.list_webhooks().await.unwrap()[0].id.clone();
    let r = send(
        &app,
        FROM,
        form(
            "/webhooks/redeliver",
            Some(&cookie),
            &[
                ("csrf", &csrf),
                ("since", "2026-01-01T00:00:00Z"),
                ("endpoint_id", &id),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The API's redelivery is recorded the same way.
    let r = send(
        &app,
        FROM,
        api(
            Method::POST,
            "/api/v1/webhooks/redeliver",
            Some(TOKEN),
            Some(json!({"since": "2026-01-01T00:00:00Z"})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(
        &app,
        FROM,
        form(
            &format!("/webhooks/{id}/remove"),
            Some(&cookie),
            &[("csrf", &csrf), ("confirm", "yes")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(env.ops.list_webhooks().await.unwrap().is_empty());

    let r = send(
        &app,
        FROM,
        api(Method::GET, "/api/v1/audit/changes", Some(TOKEN), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let changes = r.json()["changes"].as_array().unwrap().clone();
    let summary: Vec<(&str, &str, &str, Vec<&str>)> = changes
        .iter()
        .filter(|c| c["target"] == "webhook")
        .map(|c| {
            (
                c["actor"].as_str().unwrap(),
                c["target_id"].as_str().unwrap(),
                c["action"].as_str().unwrap(),
                c["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("user:wendy", id.as_str(), "delete", vec![]),
            ("admin-token", "*", "redeliver", vec!["since", "until"]),
            (
                "user:wendy",
                id.as_str(),
                "redeliver",
                vec!["since", "until"]
            ),
            (
                "user:wendy",
                id.as_str(),
                "create",
                vec!["url", "kinds", "enabled", "secret"]
            ),
        ]
    );
    assert!(!r.body.contains("whsec_"), "no secret in the change audit");
}
