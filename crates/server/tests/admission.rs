//! Admission control of the gateway, through the real server over TCP: with every permit
//! held by a request in flight, one more gateway request is answered at once with 503,
//! `Retry-After` and the documented JSON error (`kind: overloaded`) — not queued — while
//! routes outside the gateway (health) are unaffected; once the request in flight ends, the
//! next is admitted.

mod support;

use std::time::{Duration, Instant};

use dci_server::{AdminToken, AppState, ServerConfig};
use secrecy::SecretString;
use serde_json::Value;
use support::TOKEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get(addr: &str, path: &str) -> (u16, Option<u64>, Value) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let retry_after = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .map(|v| v.trim().parse().unwrap());
    let json = body
        .find('{')
        .and_then(|s| serde_json::from_str(&body[s..=body.rfind('}')?]).ok())
        .unwrap_or(Value::Null);
    (status, retry_after, json)
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_the_in_flight_limit_the_gateway_answers_503_with_retry_after_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = dci_client::MasterKey::from_bytes([42u8; 32]);
    let (store, ops) = support::open(&dir.path().join("dci.sqlite3"), &key).await;
    let config = ServerConfig {
        max_in_flight: 1,
        ..ServerConfig::default()
    };
    let state = AppState::with_config(
        store,
        ops,
        AdminToken::from_secret(&SecretString::from(TOKEN)),
        config,
    );
    let server = dci_server::spawn("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    let addr = server.addr().to_string();

    let (status, _, _) = get(&addr, "/api/v1/sources").await;
    assert_eq!(status, 200, "admitted while nothing else is in flight");

    // A gateway request in flight: its head is read, its body has not all come.
    let mut held = TcpStream::connect(&addr).await.unwrap();
    held.write_all(
        format!(
            "POST /api/v1/sources HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{{\"code\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let t0 = Instant::now();
    let (status, retry_after, body) = get(&addr, "/api/v1/sources").await;
    let took = t0.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after, Some(1));
    assert_eq!(body["error"]["kind"], "overloaded", "{body}");
    assert_eq!(body["error"]["retry_after_secs"], 1, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Retry-After"),
        "{body}"
    );
    // Refused, not queued behind the stalled request (which holds it for up to 10 s).
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Outside the gateway nothing is limited.
    let (status, _, _) = get(&addr, "/healthz").await;
    assert_eq!(status, 200);

    // The request in flight ends (its body refused as incomplete JSON): the next is admitted.
    held.write_all(b"}").await.unwrap();
    held.shutdown().await.unwrap();
    let mut rest = Vec::new();
    held.read_to_end(&mut rest).await.unwrap();
    let (status, _, body) = get(&addr, "/api/v1/sources").await;
    assert_eq!(status, 200, "{body}");
    server.shutdown().await.unwrap();
}
