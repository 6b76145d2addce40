//! Events reach the SPMIS as webhooks, end to end over real HTTP: the sandbox registry → a
//! real `dci serve` (router and delivery worker) on 127.0.0.1:0 → a webhook receiver (axum, in
//! this test). A CRVS subscription's notification, an async search's callback and a failed
//! transaction each arrive signed per Standard Webhooks, and the signatures are verified by
//! an implementation other than ours: Python's `standardwebhooks` package.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dci_protocol::RegistryType;
use dci_sandbox::{Sandbox, SandboxConfig};
use dci_server::RunningServer;
use serde_json::{Value, json};
use support::TOKEN;
use tokio::sync::Mutex;

#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// The first delivery is refused with 503 + Retry-After: 1 (the worker must retry it).
    refused_first: Arc<Mutex<bool>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let received = Received {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    r.got.lock().await.push(received);
    let mut refused = r.refused_first.lock().await;
    if !*refused {
        *refused = true;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            "busy",
        )
            .into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn receiver() -> (String, Receiver) {
    let r = Receiver::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

struct Rig {
    _env: support::Env,
    sandbox: Sandbox,
    server: RunningServer,
    http: reqwest::Client,
}

impl Rig {
    async fn new() -> Rig {
        let sandbox = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
        let env = support::Env::new().await;
        let server = dci_server::spawn("127.0.0.1:0".parse().unwrap(), env.state.clone())
            .await
            .unwrap();
        Rig {
            _env: env,
            sandbox,
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}/api/v1{path}", self.server.base_url());
        let mut req = self
            .http
            .request(method.parse().unwrap(), url)
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    async fn add_crvs_source(&self, code: &str) {
        let body = json!({
            "code": code,
            "name": "Sandbox CRVS",
            "registry_type": "crvs",
            "base_url": self.sandbox.registry_url(RegistryType::Crvs),
            "auth": {
                "type": "oauth2",
                "token_url": self.sandbox.token_url(),
                "client_id": dci_sandbox::DEMO_CLIENT_ID,
                "client_secret": dci_sandbox::DEMO_CLIENT_SECRET,
                "scope": dci_sandbox::read_scope(RegistryType::Crvs),
            },
            "sender_id": "spmis.example.org",
            "receiver_id": self.sandbox.registry_id(),
            "callback_uri": format!("{}/callback/{code}", self.server.base_url()),
            "reply_signature_policy": "require",
            "registry_jwks_url": self.sandbox.jwks_url(),
        });
        let (status, created) = self.api("POST", "/sources", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
}

/// `python3` with `standardwebhooks`, or `None` (skip) — except under CI, where it must exist.
fn python_standardwebhooks() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("python3");
    }
    dci_protocol::test_support::skip(
        "python3 with the `standardwebhooks` package is not available (pip install standardwebhooks)",
    );
    None
}

/// Verifies every delivery with Python's `standardwebhooks` (and that a tampered body and a
/// wrong secret fail there). Returns how many it verified.
fn verify_in_python(python: &str, secret: &str, got: &[Received]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deliveries.json");
    let deliveries: Vec<Value> = got
        .iter()
        .map(|r| {
            json!({
                "body": r.body,
                "headers": {
                    "webhook-id": r.header("webhook-id"),
                    "webhook-timestamp": r.header("webhook-timestamp"),
                    "webhook-signature": r.header("webhook-signature"),
                },
            })
        })
        .collect();
    std::fs::write(
        &file,
        json!({ "secret": secret, "deliveries": deliveries }).to_string(),
    )
    .unwrap();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
data = json.load(open(sys.argv[1]))
wh = Webhook(data["secret"])
n = 0
for d in data["deliveries"]:
    payload = wh.verify(d["body"], d["headers"])
    assert payload["id"] == d["headers"]["webhook-id"], payload
    n += 1
first = data["deliveries"][0]
for bad in (lambda: wh.verify(first["body"] + " ", first["headers"]),
            lambda: Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(first["body"], first["headers"])):
    try:
        bad()
    except Exception:
        continue
    sys.exit("a tampered delivery verified")
print(n)
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused a delivery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

async fn wait_for<F: Fn(&[Received]) -> bool>(r: &Receiver, what: &str, f: F) -> Vec<Received> {
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = r.got.lock().await.clone();
        if f(&got) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "gave up waiting for {what}; received: {:#?}",
            got.iter().map(Received::json).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn of_kind<'a>(got: &'a [Received], kind: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.json()["type"] == kind).collect()
}

#[tokio::test]
async fn notifications_results_and_failures_arrive_as_signed_webhooks() {
    let Some(python) = python_standardwebhooks() else {
        return;
    };
    let rig = Rig::new().await;
    rig.add_crvs_source("crvs_main").await;
    let (url, receiver) = receiver().await;

    // The SPMIS registers its endpoint; the secret comes back once.
    let (status, created) = rig
        .api(
            "POST",
            "/webhooks",
            Some(json!({"url": url, "kinds": ["notification.received", "search.completed", "transaction.failed", "subscription.changed"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, listed) = rig.api("GET", "/webhooks", None).await;
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is never listed"
    );

    // 1. Subscribe to CRVS deaths; the registry notifies.
    let (status, sub) = rig
        .api(
            "POST",
            "/sources/crvs_main/subscribe",
            Some(json!({"event_type": "Death", "wait_secs": 20})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sub}");
    assert!(rig.sandbox.notify(RegistryType::Crvs, None).await >= 1);

    // 2. An async search completes through its callback.
    let ex = rig.sandbox.examples();
    let found = &ex[&RegistryType::Crvs].found[0];
    let uin = format!("{}:{}", found.id_type, found.id_value);
    let (status, search) = rig
        .api(
            "POST",
            "/sources/crvs_main/search",
            Some(json!({"query_type": "idtype-value", "query": uin, "mode": "async", "wait_secs": 20})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{search}");
    let search_txn = search["transaction"]["transaction_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{search}"))
        .to_owned();

    // 3. A transaction the registry refuses.
    let (_, bad) = rig
        .api(
            "POST",
            "/sources/crvs_main/search",
            Some(json!({"query_type": "expression", "query": {"poverty_score": {"$bogus": 1}}, "mode": "async", "wait_secs": 20})),
        )
        .await;

    let got = wait_for(&receiver, "the three kinds of event", |g| {
        !of_kind(g, "notification.received").is_empty()
            && !of_kind(g, "search.completed").is_empty()
            && !of_kind(g, "transaction.failed").is_empty()
            && !of_kind(g, "subscription.changed").is_empty()
    })
    .await;

    // Each is signed so that another implementation verifies it.
    assert_eq!(verify_in_python(python, &secret, &got), got.len());

    let note = of_kind(&got, "notification.received")[0].json();
    assert_eq!(note["source_code"], "crvs_main");
    assert_eq!(note["data"]["notification"]["registry_type"], "crvs");
    let vital = &note["data"]["notification"]["events"][0];
    assert!(
        vital["people"].is_array(),
        "typed CRVS notification: {note}"
    );
    let done = of_kind(&got, "search.completed")[0].json();
    assert_eq!(done["transaction_id"], search_txn.as_str());
    assert_eq!(done["data"]["state"], "completed");
    assert!(
        !done["data"]["items"].as_array().unwrap().is_empty(),
        "{done}"
    );
    let failed = of_kind(&got, "transaction.failed")[0].json();
    assert_eq!(
        failed["data"]["state"], "failed",
        "{failed} (search answer: {bad})"
    );

    // The refused first delivery was retried (Retry-After honoured) with the same webhook-id,
    // and deliveries to the endpoint stayed in event order: the retry came before the rest.
    let first_id = got[0].header("webhook-id").to_owned();
    assert_eq!(
        got[1].header("webhook-id"),
        first_id,
        "the head was retried first"
    );
    let t0: i64 = got[0].header("webhook-timestamp").parse().unwrap();
    let t1: i64 = got[1].header("webhook-timestamp").parse().unwrap();
    assert!(t1 > t0, "not before Retry-After: 1");
    let (_, outbox) = rig.api("GET", "/events?limit=1000", None).await;
    let position = |id: &str| {
        outbox["events"]
            .as_array()
            .unwrap()
            .iter()
            .position(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not in the outbox"))
    };
    let order: Vec<usize> = got[1..]
        .iter()
        .map(|r| position(r.header("webhook-id")))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "delivered in outbox order: {order:?}"
    );

    // The attempts are visible, and the events can be listed, acked and redelivered.
    let (status, deliveries) = rig
        .api(
            "GET",
            &format!("/webhooks/{id}/deliveries?event={first_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deliveries}");
    let d = &deliveries["deliveries"][0];
    assert_eq!(d["state"], "delivered", "{deliveries}");
    let codes: Vec<&Value> = d["attempts_made"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(codes, vec![&json!(503), &json!(204)]);

    let (_, txns) = rig
        .api(
            "GET",
            "/transactions?source=crvs_main&state=completed",
            None,
        )
        .await;
    assert!(
        txns["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["transaction_id"] == search_txn.as_str()),
        "{txns}"
    );
    let (_, failed_list) = rig.api("GET", "/transactions?state=failed", None).await;
    assert!(!failed_list["transactions"].as_array().unwrap().is_empty());
    let (_, page) = rig
        .api("GET", "/events?kind=notification.received", None)
        .await;
    let event_id = page["events"][0]["id"].as_str().unwrap().to_owned();
    let (status, acked) = rig
        .api("POST", "/events/ack", Some(json!({"ids": [event_id]})))
        .await;
    assert_eq!((status, &acked["marked"]), (StatusCode::OK, &json!(1)));
    let before = receiver.got.lock().await.len();
    let (status, queued) = rig
        .api(
            "POST",
            "/webhooks/redeliver",
            Some(json!({"event_id": event_id})),
        )
        .await;
    assert_eq!(
        (status, &queued["queued"]),
        (StatusCode::OK, &json!(1)),
        "{queued}"
    );
    let again = wait_for(&receiver, "the redelivery", |g| g.len() > before).await;
    assert_eq!(again.last().unwrap().header("webhook-id"), event_id);
}
