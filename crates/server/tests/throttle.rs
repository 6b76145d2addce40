//! Brute-force limits on the admin token, through the router: wrong tokens from one address are
//! answered 429 with `Retry-After` after the allowance (even the right token, which is then not
//! checked), other addresses are unaffected, the lock-out ends after the period, the console's
//! login shares the count and rotates its CSRF token on every failure, and `dci_server::spawn`
//! keys on the real TCP peer.

mod support;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use dci_server::ThrottleConfig;
use serde_json::Value;
use support::{Env, TOKEN};
use tower::ServiceExt;

const A: &str = "192.0.2.10:40000";
const B: &str = "198.51.100.20:40001";

fn limits(max: u32, period: Duration) -> ThrottleConfig {
    ThrottleConfig {
        max_failures: NonZeroU32::new(max).unwrap(),
        period,
    }
}

struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    set_cookie: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(app: &Router, from: Option<&str>, mut req: Request<Body>) -> Answer {
    if let Some(addr) = from {
        let addr: SocketAddr = addr.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let set_cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        retry_after,
        set_cookie,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn sources(token: &str) -> Request<Body> {
    Request::get("/api/v1/sources")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_thousand_wrong_tokens_are_throttled_and_the_right_token_works_elsewhere() {
    let env = Env::new().await;
    let app = dci_server::router_with(env.state.clone(), limits(5, Duration::from_secs(60)));

    let mut unauthorized = 0;
    let mut throttled = 0;
    for i in 0..1000 {
        let a = send(
            &app,
            Some(A),
            sources(&format!("wrong-token-{i:04}-xxxxxxxx")),
        )
        .await;
        match a.status {
            StatusCode::UNAUTHORIZED => {
                assert_eq!(
                    throttled, 0,
                    "no 401 after the lock-out started (attempt {i})"
                );
                unauthorized += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                throttled += 1;
                let secs = a.retry_after.expect("a 429 says when to retry");
                assert!((1..=12).contains(&secs), "Retry-After {secs}");
                let body = a.json();
                assert_eq!(body["error"]["kind"], "too_many_requests", "{}", a.body);
                assert!(body["error"]["message"].as_str().unwrap().contains("wait"));
                assert!(
                    !a.body.contains("wrong-token"),
                    "the attempt is never echoed"
                );
            }
            other => panic!("attempt {i}: unexpected {other}: {}", a.body),
        }
    }
    assert_eq!(unauthorized, 5, "the allowance is 5 failures");
    assert_eq!(throttled, 995);

    // From the locked address even the right token is refused, unchecked.
    let a = send(&app, Some(A), sources(TOKEN)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is not affected: the right token works, a wrong one is a plain 401.
    assert_eq!(
        send(&app, Some(B), sources(TOKEN)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, Some(B), sources("wrong-from-b-xxxxxxxxx"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Successful requests are never counted.
    for _ in 0..50 {
        assert_eq!(
            send(&app, Some(B), sources(TOKEN)).await.status,
            StatusCode::OK
        );
    }
    // The public document stays public from the locked address.
    let doc = Request::get("/api/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, Some(A), doc).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_lock_out_ends_after_the_period() {
    let env = Env::new().await;
    let period = Duration::from_millis(600);
    let app = dci_server::router_with(env.state.clone(), limits(3, period));
    for _ in 0..3 {
        let a = send(&app, Some(A), sources("wrong-wrong-wrong-wrong")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let locked_at = Instant::now();
    assert_eq!(
        send(&app, Some(A), sources("wrong-wrong-wrong-wrong"))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&app, Some(A), sources(TOKEN)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(period.saturating_sub(locked_at.elapsed()) + Duration::from_millis(50))
        .await;
    assert_eq!(
        send(&app, Some(A), sources(TOKEN)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_without_a_peer_address_count_as_one_client() {
    let env = Env::new().await;
    let app = dci_server::router_with(env.state.clone(), limits(2, Duration::from_secs(60)));
    for _ in 0..2 {
        assert_eq!(
            send(&app, None, sources("nope-nope-nope-nope"))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        send(&app, None, sources("nope-nope-nope-nope"))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&app, Some(B), sources(TOKEN)).await.status,
        StatusCode::OK
    );
    // A missing header is no guess and is not counted.
    let app = dci_server::router_with(env.state.clone(), limits(1, Duration::from_secs(60)));
    for _ in 0..5 {
        let bare = Request::get("/api/v1/sources").body(Body::empty()).unwrap();
        assert_eq!(
            send(&app, None, bare).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        send(&app, None, sources(TOKEN)).await.status,
        StatusCode::OK
    );
}

fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let at = html.find(marker).expect("the page has a CSRF field") + marker.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

fn login_page(cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get("/login");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn login(cookie: &str, csrf: &str, token: &str) -> Request<Body> {
    Request::post("/login")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            serde_urlencoded::to_string([("csrf", csrf), ("token", token)]).unwrap(),
        ))
        .unwrap()
}

#[tokio::test]
async fn console_login_is_throttled_shares_the_count_and_rotates_its_csrf() {
    let env = Env::new().await;
    let app = dci_server::router_with(env.state.clone(), limits(4, Duration::from_secs(60)));

    // Two wrong tokens on the API count too.
    for _ in 0..2 {
        assert_eq!(
            send(&app, Some(A), sources("api-wrong-api-wrong"))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let page = send(&app, Some(A), login_page(None)).await;
    let mut cookie = page.set_cookie.expect("the login page starts a session");
    let mut csrf = csrf_of(&page.body);
    for i in 0..2 {
        let a = send(&app, Some(A), login(&cookie, &csrf, "console-wrong-token")).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(a.body.contains("That token is not valid"));
        assert!(!a.body.contains("console-wrong-token"));
        let new_cookie = a.set_cookie.expect("a failed login starts a new session");
        let new_csrf = csrf_of(&a.body);
        assert_ne!(
            new_cookie, cookie,
            "the session id rotates on a failed login"
        );
        assert_ne!(new_csrf, csrf, "the CSRF token rotates on a failed login");
        // The old form is spent.
        let replay = send(&app, Some(A), login(&cookie, &csrf, TOKEN)).await;
        assert_eq!(
            replay.status,
            StatusCode::FORBIDDEN,
            "a spent form is refused"
        );
        cookie = new_cookie;
        csrf = new_csrf;
    }
    // 2 API + 2 console failures use up the allowance of 4: now even the right token is 429.
    let a = send(&app, Some(A), login(&cookie, &csrf, TOKEN)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert!(a.retry_after.is_some_and(|s| s >= 1));
    assert!(a.body.contains("Too many failed sign-ins"), "{}", a.body);
    assert!(a.body.contains("<html") || a.body.contains("<!DOCTYPE"));
    // And the API is locked for that address too.
    assert_eq!(
        send(&app, Some(A), sources(TOKEN)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Another address signs in.
    let page = send(&app, Some(B), login_page(None)).await;
    let cookie_b = page.set_cookie.unwrap();
    let a = send(&app, Some(B), login(&cookie_b, &csrf_of(&page.body), TOKEN)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
}

#[tokio::test]
async fn spawn_keys_on_the_tcp_peer() {
    let env = Env::new().await;
    let server = dci_server::spawn_with(
        "127.0.0.1:0".parse().unwrap(),
        env.state.clone(),
        limits(2, Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let url = format!("{}/api/v1/sources", server.base_url());
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(Some(std::net::IpAddr::from(ip)))
            .build()
            .unwrap()
    };
    let one = from([127, 0, 0, 1]);
    for _ in 0..2 {
        let r = one
            .get(&url)
            .bearer_auth("wrong-wrong-wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = one.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // 127.0.0.2 is another peer on Linux loopback; elsewhere binding it may fail.
    let two = from([127, 0, 0, 2]);
    match two.get(&url).bearer_auth(TOKEN).send().await {
        Ok(r) => assert_eq!(r.status(), 200),
        Err(e) if cfg!(target_os = "linux") => panic!("127.0.0.2: {e}"),
        Err(e) => eprintln!("skipping the second peer: cannot bind 127.0.0.2 here: {e}"),
    }
    server.shutdown().await.unwrap();
}
