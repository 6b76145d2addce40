//! Every refusal has its route family's documented body, including axum's own rejections:
//! the API's `{"error": {"kind", "message"}}`, the DCI ACK `ERR` on callback routes, an HTML page
//! on the console. Plus `ApiPath`/`ApiQuery` naming the parameter, and a stalled body answered
//! 408 instead of being held.

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use dci_server::{AdminToken, ApiPath, ApiQuery, AppState, ServerConfig};
use secrecy::SecretString;
use serde_json::Value;
use support::{Env, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    content_type: String,
    allow: Option<String>,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.content_type, self.text))
    }

    fn api_kind(&self) -> String {
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.text
        );
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "{v}");
        v["error"]["kind"].as_str().unwrap().to_owned()
    }

    fn ack_code(&self) -> String {
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.text
        );
        let v = self.json();
        assert_eq!(v["message"]["ack_status"], "ERR", "{v}");
        assert!(v["message"]["error"]["message"].is_string(), "{v}");
        v["message"]["error"]["code"].as_str().unwrap().to_owned()
    }

    fn html(&self) -> &str {
        assert!(self.content_type.starts_with("text/html"), "{}", self.text);
        assert!(self.text.contains("<html"), "{}", self.text);
        &self.text
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let header_of = |name| {
        resp.headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let content_type = header_of(header::CONTENT_TYPE).unwrap_or_default();
    let allow = header_of(header::ALLOW);
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        content_type,
        allow,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn req(
    method: &str,
    uri: &str,
    token: bool,
    ct: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    if let Some(ct) = ct {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(body.into()).unwrap()
}

fn get_api(uri: &str) -> Request<Body> {
    req("GET", uri, true, None, Body::empty())
}

#[tokio::test]
async fn api_refusals_have_the_api_error_shape() {
    let env = Env::new().await;
    let app = dci_server::router(env.state.clone());

    // axum's query-string rejection (a handler still on `axum::extract::Query`).
    let a = send(&app, get_api("/api/v1/audit?limit=abc")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.api_kind(), "bad_request");
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit"),
        "{}",
        a.text
    );
    // Path parameters that are not UTF-8 once decoded.
    let a = send(&app, get_api("/api/v1/sources/%FF%FE")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.api_kind(), "bad_request");
    // Unknown routes, with and without the prefix's version.
    let a = send(&app, get_api("/api/v1/nope")).await;
    assert_eq!(
        (a.status, a.api_kind().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let a = send(&app, get_api("/api/v2/sources")).await;
    assert_eq!(
        (a.status, a.api_kind().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let a = send(&app, get_api("/api")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    a.api_kind();
    // Wrong method: 405 with Allow.
    let a = send(
        &app,
        req("DELETE", "/api/v1/sources", true, None, Body::empty()),
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.api_kind(), "method_not_allowed");
    assert!(
        a.allow.as_deref().is_some_and(|v| v.contains("GET")),
        "{:?}",
        a.allow
    );
    let a = send(&app, req("POST", "/healthz", false, None, Body::empty())).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    a.api_kind();
    // Bodies: wrong content type, bad JSON, wrong type, too large.
    let a = send(
        &app,
        req("POST", "/api/v1/sources", true, Some("text/plain"), "{}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(a.api_kind(), "unsupported_media_type");
    let a = send(
        &app,
        req(
            "POST",
            "/api/v1/sources",
            true,
            Some("application/json"),
            "{\"code\":",
        ),
    )
    .await;
    assert_eq!(
        (a.status, a.api_kind().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let a = send(
        &app,
        req(
            "POST",
            "/api/v1/sources",
            true,
            Some("application/json"),
            "[1]",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.api_kind(), "invalid_input");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let a = send(
        &app,
        req(
            "POST",
            "/api/v1/sources",
            true,
            Some("application/json"),
            big,
        ),
    )
    .await;
    assert_eq!(
        (a.status, a.api_kind().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    // A body read as bytes by the handler (`POST /sources/{code}/test`) with a bad query.
    let a = send(
        &app,
        req(
            "POST",
            "/api/v1/sources/%C3%28/test",
            true,
            Some("application/json"),
            "{}",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    a.api_kind();
}

#[tokio::test]
async fn callback_refusals_are_dci_acks() {
    let env = Env::new().await;
    let app = dci_server::router(env.state.clone());
    let a = send(
        &app,
        req(
            "GET",
            "/callback/x/registry/on-search",
            false,
            None,
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.ack_code(), "err.request.bad");
    assert_eq!(a.allow.as_deref(), Some("POST"));
    let a = send(
        &app,
        req(
            "POST",
            "/callback/%FF/registry/on-search",
            false,
            Some("application/json"),
            "{}",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.ack_code(), "err.request.bad");
    assert!(
        a.json()["message"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
    let a = send(
        &app,
        req("POST", "/callback/x/registry/on-nothing", false, None, "{}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.ack_code(), "err.request.not_found");
    let a = send(&app, req("POST", "/callback", false, None, "{}")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    a.ack_code();
    let big = vec![b'x'; 3 * 1024 * 1024];
    let a = send(
        &app,
        req("POST", "/callback/x/registry/on-search", false, None, big),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.ack_code(), "err.request.bad");
}

#[tokio::test]
async fn console_refusals_are_html_pages() {
    let env = Env::new().await;
    let app = dci_server::router(env.state.clone());
    let a = send(
        &app,
        req("GET", "/no/such/page", false, None, Body::empty()),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.html().contains("Not found"));
    let a = send(&app, req("DELETE", "/login", false, None, Body::empty())).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    a.html();
    let a = send(&app, req("POST", "/login", false, Some("text/plain"), "x")).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    a.html();
    let a = send(
        &app,
        req(
            "POST",
            "/keys/%FF/revoke",
            false,
            Some("application/x-www-form-urlencoded"),
            "csrf=x",
        ),
    )
    .await;
    assert!(
        a.status.is_client_error() || a.status.is_redirection(),
        "{}",
        a.status
    );
    if a.status.is_client_error() {
        a.html();
    }
}

#[derive(serde::Deserialize)]
struct Page {
    limit: u32,
}

#[tokio::test]
async fn api_path_and_api_query_name_the_parameter() {
    let app: Router = Router::new()
        .route(
            "/n/{n}",
            get(|ApiPath(n): ApiPath<u32>| async move { n.to_string() }),
        )
        .route(
            "/q",
            get(|ApiQuery(p): ApiQuery<Page>| async move { p.limit.to_string() }),
        );
    let a = send(&app, req("GET", "/n/7", false, None, Body::empty())).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, "7"));
    let a = send(&app, req("GET", "/n/seven", false, None, Body::empty())).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let v = a.json();
    assert_eq!(v["error"]["kind"], "bad_request");
    assert_eq!(v["error"]["fields"][0]["field"], "n");
    assert_eq!(v["error"]["fields"][0]["pointer"], "/path/n");
    let a = send(&app, req("GET", "/n/%FF", false, None, Body::empty())).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"]["fields"][0]["field"], "n");
    let a = send(
        &app,
        req("GET", "/q?limit=lots", false, None, Body::empty()),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let v = a.json();
    assert_eq!(v["error"]["fields"][0]["field"], "limit", "{v}");
    assert_eq!(v["error"]["fields"][0]["pointer"], "/query/limit");
    assert!(v["error"]["message"].as_str().unwrap().contains("limit"));
    let a = send(&app, req("GET", "/q", false, None, Body::empty())).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit"),
        "{}",
        a.text
    );
}

/// Sends `head` plus a body shorter than its `Content-Length`; returns the answer's first line,
/// body and how long it took.
async fn stalled(addr: std::net::SocketAddr, head: &str) -> (String, Value, Duration) {
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = b"{\"header\":";
    let msg = format!(
        "{head}Host: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len() + 100
    );
    s.write_all(msg.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let v = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    (
        head.lines().next().unwrap().to_owned(),
        v,
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_before_the_request_timeout() {
    let env = Env::new().await;
    let config = ServerConfig {
        request_timeout: Duration::from_secs(8),
        ..ServerConfig::default()
    };
    let state = AppState::with_config(
        env.store.clone(),
        env.ops.clone(),
        AdminToken::from_secret(&SecretString::from(TOKEN)),
        config,
    );
    let server = dci_server::spawn("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    let (line, v, took) = stalled(
        server.addr(),
        "POST /callback/x/registry/on-search HTTP/1.1\r\n",
    )
    .await;
    assert!(line.contains(" 408 "), "{line} {v}");
    assert_eq!(v["message"]["error"]["code"], "err.request.timeout", "{v}");
    assert!(
        took < Duration::from_secs(7),
        "the stall limit (4 s) came first: {took:?}"
    );
    let (line, v, _) = stalled(
        server.addr(),
        &format!("POST /api/v1/sources HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"),
    )
    .await;
    assert!(line.contains(" 408 "), "{line} {v}");
    assert_eq!(v["error"]["kind"], "request_timeout", "{v}");
    server.shutdown().await.unwrap();
}
