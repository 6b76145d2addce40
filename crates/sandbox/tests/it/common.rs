//! Helpers shared by the integration tests.

use std::time::Duration;

use dci_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub(crate) async fn start() -> Sandbox {
    start_with(SandboxConfig::default()).await
}

pub(crate) async fn start_with(config: SandboxConfig) -> Sandbox {
    dci_sandbox::spawn(config).await.expect("sandbox starts")
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A token for the demo client, by form body.
pub(crate) async fn token(sb: &Sandbox) -> String {
    let resp = http()
        .post(sb.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sandbox"),
            ("client_secret", "sandbox-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

pub(crate) fn envelope(action: &str, message: Value, sender_uri: Option<&str>) -> Value {
    let mut header = json!({
        "version": "1.0.0",
        "message_id": "msg-1",
        "message_ts": "2026-11-29T10:00:00Z",
        "action": action,
        "sender_id": "spmis.test",
        "receiver_id": "dci-sandbox",
        "total_count": 1,
    });
    if let Some(uri) = sender_uri {
        header["sender_uri"] = json!(uri);
    }
    json!({"signature": "unsigned-stub", "header": header, "message": message})
}

pub(crate) fn search_message(criteria: Value) -> Value {
    json!({
        "transaction_id": "txn-1",
        "search_request": [{
            "reference_id": "ref-1",
            "timestamp": "2026-11-29T10:00:00Z",
            "search_criteria": criteria,
            "locale": "eng",
        }],
    })
}

pub(crate) fn id_criteria(id_type: &str, value: &str) -> Value {
    json!({"version": "1.0.0", "query_type": "idtype-value", "query": {"type": id_type, "value": value}})
}

pub(crate) async fn post(sb: &Sandbox, path: &str, token: &str, body: &Value) -> reqwest::Response {
    http()
        .post(format!("{}{path}", sb.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// POSTs and returns (status, JSON body).
pub(crate) async fn post_json(sb: &Sandbox, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let resp = post(sb, path, token, body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The first existing example id of a registry.
pub(crate) fn example(
    sb: &Sandbox,
    registry: dci_protocol::RegistryType,
    n: usize,
) -> (String, String) {
    let ex = sb.examples();
    let e = &ex[&registry].found[n];
    (e.id_type.clone(), e.id_value.clone())
}

/// A callback receiver on 127.0.0.1:0 that forwards each received body (and its Content-Type).
pub(crate) struct Receiver {
    pub(crate) url: String,
    rx: mpsc::UnboundedReceiver<Value>,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/callback/{action}",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(body);
                    axum::Json(json!({"message": {"ack_status": "ACK", "timestamp": "2026-11-29T10:00:00Z", "correlation_id": "cb"}}))
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://{addr}/callback/on-search"),
            rx,
            _task: task,
        }
    }

    pub(crate) async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(15), self.rx.recv())
            .await
            .expect("a callback arrives within 15 s")
            .expect("receiver open")
    }

    /// Whether another callback arrives within `wait` (used to prove one does not).
    pub(crate) async fn another_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.rx.recv()).await.is_ok()
    }
}

/// Polls `f` until it returns `Some` (for state the sandbox updates after answering).
pub(crate) async fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within 5 s");
}

/// Like [`eventually`] for an async check.
pub(crate) async fn eventually_async<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within 5 s");
}
