//! End to end over real HTTP: the sandbox registry → a real `dci serve` router on 127.0.0.1:0 →
//! callbacks back into it, driven through the gateway API with the admin token.
//!
//! Ordering is forced, never timed: a small proxy in front of the sandbox holds a reply until
//! the test says so (the callback that beats the ACK, shutdown with a request in flight).

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dci_protocol::RegistryType;
use dci_sandbox::{CallbackFaults, FaultTarget, Faults, Sandbox, SandboxConfig};
use dci_server::RunningServer;
use serde_json::{Value, json};
use support::TOKEN;
use tokio::sync::{Mutex, Notify};

/// Polls `f` until it returns `Some`, for at most 20 s (a bound, not a timing assertion).
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every envelope the sandbox received from us validates against the official CRVS schema.
fn assert_sent_envelopes_conform(sandbox: &Sandbox) {
    let mut n = 0;
    for r in sandbox.requests() {
        let (Some(body), Some(path)) = (r.body, r.endpoint.strip_prefix("/crvs")) else {
            continue;
        };
        if r.method != "POST" {
            continue;
        }
        dci_protocol::conformance::validate_request(RegistryType::Crvs, path, &body)
            .unwrap_or_else(|e| panic!("{path}: the envelope we sent is invalid: {e:#?}"));
        n += 1;
    }
    assert!(n > 0, "no envelope was checked");
}

struct Rig {
    env: support::Env,
    sandbox: Sandbox,
    server: Option<RunningServer>,
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
            env,
            sandbox,
            server: Some(server),
            http: reqwest::Client::new(),
        }
    }

    fn base(&self) -> String {
        self.server.as_ref().unwrap().base_url()
    }

    /// A CRVS source on the sandbox whose callbacks come back to this server, verifying the
    /// sandbox's signatures through its JWKS. `base_url` overrides the registry (a proxy).
    async fn add_source(&self, code: &str, base_url: Option<String>, policy: &str) {
        let body = json!({
            "code": code,
            "name": format!("Sandbox CRVS {code}"),
            "registry_type": "crvs",
            "base_url": base_url.unwrap_or_else(|| self.sandbox.registry_url(RegistryType::Crvs)),
            "auth": {
                "type": "oauth2",
                "token_url": self.sandbox.token_url(),
                "client_id": dci_sandbox::DEMO_CLIENT_ID,
                "client_secret": dci_sandbox::DEMO_CLIENT_SECRET,
                "scope": dci_sandbox::read_scope(RegistryType::Crvs),
            },
            "sender_id": "spmis.example.org",
            "receiver_id": self.sandbox.registry_id(),
            "callback_uri": format!("{}/callback/{code}", self.base()),
            "reply_signature_policy": policy,
            "registry_jwks_url": self.sandbox.jwks_url(),
        });
        let (status, created) = self.api("POST", "/sources", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}/api/v1{path}", self.base());
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

    fn uin(&self) -> String {
        let ex = self.sandbox.examples();
        let found = &ex[&RegistryType::Crvs].found[0];
        format!("{}:{}", found.id_type, found.id_value)
    }

    /// Stops the server and starts a new one, on the same port, over a freshly opened store.
    async fn restart(&mut self) {
        let addr = self.server.as_ref().unwrap().addr();
        self.server.take().unwrap().shutdown().await.unwrap();
        let (store, ops) = support::open(&self.env.db_path(), &self.env.key).await;
        let state = support::state(store, ops);
        self.server = Some(dci_server::spawn(addr, state).await.unwrap());
    }
}

#[tokio::test]
async fn gateway_api_end_to_end() {
    let rig = Rig::new().await;
    rig.add_source("crvs_main", None, "require").await;

    // Connection test.
    let (status, report) = rig.api("POST", "/sources/crvs_main/test", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], true, "{report}");

    // Sync search: the typed result, verified.
    let search = json!({"query_type": "idtype-value", "query": rig.uin(), "mode": "sync"});
    let (status, result) = rig
        .api("POST", "/sources/crvs_main/search", Some(search))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["items"][0]["status"], "succ", "{result}");
    assert!(!result["items"][0]["records"].as_array().unwrap().is_empty());
    assert_eq!(result["signature"], "verified");

    // A registry rejection is an error with the registry's code, never a success.
    let bad = json!({"query_type": "expression", "query": {"poverty_score": {"$bogus": 1}}, "mode": "sync"});
    let (status, err) = rig
        .api("POST", "/sources/crvs_main/search", Some(bad))
        .await;
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{err}"
    );
    assert_eq!(err["error"]["kind"], "registry_rejected", "{err}");
    assert!(
        err["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .starts_with("rjct."),
        "{err}"
    );

    // Async search: the ACK, then the result through the callback receiver.
    let search = json!({"query_type": "idtype-value", "query": rig.uin(), "mode": "async"});
    let (status, ack) = rig
        .api("POST", "/sources/crvs_main/search", Some(search))
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["ack_status"], "ACK");
    assert!(ack["correlation_id"].is_string());
    let txn = ack["transaction_id"].as_str().unwrap().to_owned();
    let view = eventually("the on-search callback", || async {
        let (_, v) = rig.api("GET", &format!("/transactions/{txn}"), None).await;
        (v["state"] == "completed").then_some(v)
    })
    .await;
    assert_eq!(view["callbacks"].as_array().unwrap().len(), 1);
    assert_eq!(view["callbacks"][0]["signature"], "verified");
    assert!(!view["items"][0]["records"].as_array().unwrap().is_empty());
    assert_eq!(view["ack"]["correlation_id"], ack["correlation_id"]);

    // Async with wait: the completed transaction in the same call.
    let search =
        json!({"query_type": "idtype-value", "query": rig.uin(), "mode": "async", "wait_secs": 20});
    let (status, done) = rig
        .api("POST", "/sources/crvs_main/search", Some(search))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["transaction"]["state"], "completed", "{done}");

    // Txn status (sync) of the async search.
    let (status, st) = rig
        .api(
            "POST",
            "/sources/crvs_main/txn-status",
            Some(json!({"transaction_id": txn})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{st}");
    assert!(st["transaction_id"].is_string(), "{st}");

    // Subscribe, then unsubscribe the codes the registry gave.
    let (status, sub) = rig
        .api(
            "POST",
            "/sources/crvs_main/subscribe",
            Some(json!({"event_type": "LiveBirth", "wait_secs": 20})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sub}");
    let codes: Vec<String> = sub["transaction"]["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["code"].as_str().map(str::to_owned))
        .collect();
    assert!(!codes.is_empty(), "{sub}");
    let (status, unsub) = rig
        .api(
            "POST",
            "/sources/crvs_main/unsubscribe",
            Some(json!({"subscription_codes": codes, "wait_secs": 20})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{unsub}");
    assert_eq!(unsub["transaction"]["state"], "completed", "{unsub}");

    // Notifications reach the receiver through the bare or the notify route.
    let (status, sub) = rig
        .api(
            "POST",
            "/sources/crvs_main/subscribe",
            Some(json!({"event_type": "LiveBirth", "wait_secs": 20})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sub}");
    let sent = rig.sandbox.notify(RegistryType::Crvs, None).await;
    assert!(sent >= 1);
    let ops = rig.env.ops.clone();
    eventually("a stored notification", || {
        let ops = ops.clone();
        async move {
            let n = dci_client::ops::list_notifications(ops.as_ref(), Some("crvs_main"), 10)
                .await
                .unwrap();
            (!n.is_empty()).then_some(())
        }
    })
    .await;

    // Audit log: the calls above, without secrets.
    let (status, audit) = rig
        .api("GET", "/audit?source=crvs_main&limit=50", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!audit["entries"].as_array().unwrap().is_empty());
    assert!(!audit.to_string().contains(dci_sandbox::DEMO_CLIENT_SECRET));
    assert_sent_envelopes_conform(&rig.sandbox);
}

#[tokio::test]
async fn duplicate_callbacks_are_stored_once() {
    let rig = Rig::new().await;
    rig.add_source("crvs_main", None, "require").await;
    rig.sandbox
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            duplicate: Some(true),
            ..CallbackFaults::default()
        }))
        .unwrap();
    let search = json!({"query_type": "idtype-value", "query": rig.uin(), "mode": "async"});
    let (status, ack) = rig
        .api("POST", "/sources/crvs_main/search", Some(search))
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    let txn = ack["transaction_id"].as_str().unwrap().to_owned();
    let statuses = eventually("both deliveries", || async {
        let mut s: Vec<Option<u16>> = rig
            .sandbox
            .callbacks()
            .into_iter()
            .filter(|c| c.transaction_id == txn)
            .map(|c| c.status)
            .collect();
        s.sort();
        (s.len() == 2).then_some(s)
    })
    .await;
    assert_eq!(
        statuses,
        [Some(200), Some(200)],
        "the re-sent callback is ACKed again"
    );
    let (_, view) = rig.api("GET", &format!("/transactions/{txn}"), None).await;
    assert_eq!(view["state"], "completed");
    assert_eq!(view["callbacks"].as_array().unwrap().len(), 1);
    assert_sent_envelopes_conform(&rig.sandbox);
}

/// A proxy in front of the sandbox that, for async searches, holds the registry's reply until
/// `release` says so.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    arrived: Arc<Notify>,
    release: Arc<Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>,
}

async fn forward(State(p): State<Proxy>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let headers: HeaderMap = req.headers().clone();
    let body: Bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap();
    let mut out = p
        .http
        .request(method, format!("{}{path}", p.upstream))
        .body(body);
    for name in ["authorization", "content-type"] {
        if let Some(v) = headers.get(name) {
            out = out.header(name, v.as_bytes());
        }
    }
    let resp = out.send().await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.as_bytes().to_vec());
    let bytes = resp.bytes().await.unwrap();
    if path.ends_with("/registry/search") {
        p.arrived.notify_one();
        let rx = p.release.lock().await.take();
        if let Some(rx) = rx {
            let _ = rx.await;
        }
    }
    let mut r = (status, bytes).into_response();
    if let Some(c) = ctype {
        r.headers_mut()
            .insert("content-type", c.try_into().unwrap());
    }
    r
}

async fn proxy(upstream: String) -> (String, Proxy, tokio::sync::oneshot::Sender<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let p = Proxy {
        upstream,
        http: reqwest::Client::new(),
        arrived: Arc::new(Notify::new()),
        release: Arc::new(Mutex::new(Some(rx))),
    };
    let app = Router::new().fallback(forward).with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), p, tx)
}

#[tokio::test]
async fn a_callback_that_beats_the_ack_still_completes_the_transaction() {
    let rig = Rig::new().await;
    let (proxy_base, p, release) = proxy(rig.sandbox.base_url()).await;
    rig.add_source("crvs_main", Some(format!("{proxy_base}/crvs")), "require")
        .await;
    let search = json!({"query_type": "idtype-value", "query": rig.uin(), "mode": "async"});
    let base = rig.base();
    let http = rig.http.clone();
    let submit = tokio::spawn(async move {
        http.post(format!("{base}/api/v1/sources/crvs_main/search"))
            .bearer_auth(TOKEN)
            .json(&search)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    p.arrived.notified().await;
    // The registry has answered ACK, but we hold it: wait for its callback to be stored first.
    let ops = rig.env.ops.clone();
    let txn = eventually("the callback, before the ACK", || {
        let ops = ops.clone();
        async move {
            let cbs = dci_client::OpsStore::list_callbacks(
                ops.as_ref(),
                &dci_client::ops::CallbackFilter::default(),
            )
            .await
            .unwrap();
            cbs.first().and_then(|c| c.transaction_id.clone())
        }
    })
    .await;
    let before = rig
        .api("GET", &format!("/transactions/{txn}"), None)
        .await
        .1;
    assert!(
        before["ack"].is_null(),
        "the ACK was not recorded yet: {before}"
    );
    release.send(()).unwrap();
    let ack = submit.await.unwrap();
    assert_eq!(ack["ack_status"], "ACK", "{ack}");
    assert_eq!(ack["transaction_id"], txn.as_str());
    let (_, view) = rig.api("GET", &format!("/transactions/{txn}"), None).await;
    assert_eq!(
        view["state"], "completed",
        "the late ACK must not move it back: {view}"
    );
    assert_eq!(view["ack"]["ack_status"], "ACK");
}

#[tokio::test]
async fn shutdown_drains_a_request_in_flight() {
    let mut rig = Rig::new().await;
    let (proxy_base, p, release) = proxy(rig.sandbox.base_url()).await;
    rig.add_source("crvs_main", Some(format!("{proxy_base}/crvs")), "require")
        .await;
    let search = json!({"query_type": "idtype-value", "query": rig.uin(), "mode": "async"});
    let base = rig.base();
    let http = rig.http.clone();
    let submit = tokio::spawn(async move {
        let r = http
            .post(format!("{base}/api/v1/sources/crvs_main/search"))
            .bearer_auth(TOKEN)
            .json(&search)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    p.arrived.notified().await;
    let server = rig.server.take().unwrap();
    let addr = server.addr();
    let stopping = tokio::spawn(server.shutdown());
    // New work is refused once the shutdown has begun…
    eventually("the listener to close", || async {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    // …while the request in flight still completes.
    release.send(()).unwrap();
    let (status, ack) = submit.await.unwrap();
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["ack_status"], "ACK");
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_restart_between_submit_and_callback_loses_nothing() {
    let mut rig = Rig::new().await;
    rig.add_source("crvs_main", None, "require").await;
    // The registry delays its callback; the restart (no request in flight) takes a fraction of
    // that, and a callback that found the server down would show as undelivered below.
    rig.sandbox
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            delay_ms: Some(3_000),
            ..CallbackFaults::default()
        }))
        .unwrap();
    let search = json!({"query_type": "idtype-value", "query": rig.uin(), "mode": "async"});
    let (status, ack) = rig
        .api("POST", "/sources/crvs_main/search", Some(search))
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    let txn = ack["transaction_id"].as_str().unwrap().to_owned();
    rig.restart().await;
    let (_, pending) = rig.api("GET", &format!("/transactions/{txn}"), None).await;
    assert_eq!(pending["state"], "acknowledged", "{pending}");
    let view = eventually("the callback after the restart", || async {
        let (_, v) = rig.api("GET", &format!("/transactions/{txn}"), None).await;
        (v["state"] == "completed").then_some(v)
    })
    .await;
    assert_eq!(view["callbacks"][0]["signature"], "verified");
    // The sandbox logs a delivery once it has our answer, just after we stored the callback.
    let delivered = eventually("the sandbox's delivery log", || async {
        let d: Vec<_> = rig
            .sandbox
            .callbacks()
            .into_iter()
            .filter(|c| c.transaction_id == txn)
            .collect();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].status, Some(200));
}

#[tokio::test]
async fn out_of_order_and_split_callbacks_aggregate() {
    let rig = Rig::new().await;
    // Policy off: the test itself plays the registry for the callbacks.
    rig.add_source("crvs_main", None, "off").await;
    rig.sandbox
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            fail: Some(true),
            ..CallbackFaults::default()
        }))
        .unwrap();
    // Two items in one message, through the library (the API sends one per call).
    let ops = rig.env.state.operations("crvs_main").await.unwrap();
    let uin = rig.uin();
    let spec = |r: &str| {
        dci_client::ops::SearchSpec::by_id(&uin)
            .unwrap()
            .reference_id(r)
    };
    let q = dci_client::ops::SearchQuery::many([spec("r1"), spec("r2")]);
    let sub = ops.submit_search_async(&q).await.unwrap();
    let txn = sub.transaction_id.clone();
    // Playing the registry: its sender id, and the source's callback secret as a bearer token.
    let source = rig
        .env
        .store
        .get_data_source("crvs_main")
        .await
        .unwrap()
        .unwrap();
    let secret =
        secrecy::ExposeSecret::expose_secret(source.callbacks.secret.as_ref().unwrap()).to_owned();
    let sender = rig.sandbox.registry_id().to_owned();
    let part = |n: u32, reference: &str| {
        json!({
            "header": {"version": "1.0.0", "message_id": format!("part-{n}"), "sender_id": sender,
                       "message_ts": "2026-11-29T10:00:00Z", "action": "on-search",
                       "status": "succ", "total_count": 2, "completed_count": n},
            "message": {"transaction_id": txn, "correlation_id": sub.correlation_id,
                "search_response": [{"reference_id": reference, "timestamp": "2026-11-29T10:00:00Z",
                    "status": "succ", "data": {"reg_records": [{"id": reference}]}}]}
        })
    };
    let post = |v: Value, path: &'static str| {
        let http = rig.http.clone();
        let url = format!("{}/callback/crvs_main{path}", rig.base());
        let secret = secret.clone();
        async move {
            let r = http
                .post(url)
                .bearer_auth(secret)
                .json(&v)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // The second part first.
    let (status, body) = post(part(2, "r2"), "/registry/on-search").await;
    assert_eq!(status, 200, "{body}");
    let (_, view) = rig.api("GET", &format!("/transactions/{txn}"), None).await;
    assert_eq!(view["state"], "partial", "{view}");
    // A re-send of it is ACKed again and changes nothing.
    let (status, body) = post(part(2, "r2"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["ack_status"], "ACK");
    let (_, again) = rig.api("GET", &format!("/transactions/{txn}"), None).await;
    assert_eq!(again["callbacks"].as_array().unwrap().len(), 1, "{again}");
    // Then the first part, on the bare route.
    let (status, _) = post(part(1, "r1"), "").await;
    assert_eq!(status, 200);
    let (_, view) = rig.api("GET", &format!("/transactions/{txn}"), None).await;
    assert_eq!(view["state"], "completed", "{view}");
    let refs: Vec<&str> = view["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference_id"].as_str().unwrap())
        .collect();
    assert_eq!(refs.len(), 2);
    assert!(refs.contains(&"r1") && refs.contains(&"r2"));
    assert_eq!(view["callbacks"].as_array().unwrap().len(), 2);
}

/// The same flow on PostgreSQL (when `DCI_TEST_DATABASE_URL` is set, as CI does): its own
/// schema, dropped afterwards.
#[tokio::test]
async fn async_search_through_the_callback_on_postgresql() {
    let Some(url) = dci_protocol::test_support::postgres_url() else {
        return;
    };
    let schema = format!("srv_{}", uuid::Uuid::new_v4().simple());
    let key = dci_client::MasterKey::from_bytes([7u8; 32]);
    let pg = Arc::new(
        dci_store::PgStore::connect_in_schema(&url, &schema, &key)
            .await
            .unwrap(),
    );
    let outcome = tokio::spawn(async move {
        let sandbox = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
        let state = support::state(pg.clone(), pg.clone());
        let server = dci_server::spawn("127.0.0.1:0".parse().unwrap(), state.clone())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rig = Rig {
            env: support::Env {
                dir,
                key: dci_client::MasterKey::from_bytes([7u8; 32]),
                store: pg.clone(),
                ops: pg.clone(),
                state,
            },
            sandbox,
            server: Some(server),
            http: reqwest::Client::new(),
        };
        rig.add_source("crvs_pg", None, "require").await;
        let search = json!({"query_type": "idtype-value", "query": rig.uin(), "mode": "async", "wait_secs": 20});
        let (status, done) = rig
            .api("POST", "/sources/crvs_pg/search", Some(search))
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(done["transaction"]["state"], "completed", "{done}");
        assert_eq!(done["transaction"]["callbacks"][0]["signature"], "verified");
        assert_sent_envelopes_conform(&rig.sandbox);
    })
    .await;
    dci_store::PgStore::drop_schema(&url, &schema)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn shutdown_ends_a_long_wait_instead_of_holding_the_drain() {
    let mut rig = Rig::new().await;
    rig.add_source("crvs_main", None, "require").await;
    rig.sandbox
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            fail: Some(true),
            ..CallbackFaults::default()
        }))
        .unwrap();
    let search =
        json!({"query_type": "idtype-value", "query": rig.uin(), "mode": "async", "wait_secs": 50});
    let base = rig.base();
    let http = rig.http.clone();
    let waiting = tokio::spawn(async move {
        let r = http
            .post(format!("{base}/api/v1/sources/crvs_main/search"))
            .bearer_auth(TOKEN)
            .json(&search)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    let ops = rig.env.ops.clone();
    let txn = eventually("the acknowledged request", || {
        let ops = ops.clone();
        async move {
            let all = ops
                .list_transactions(&dci_client::ops::TransactionFilter::default())
                .await
                .unwrap();
            all.into_iter()
                .find(|t| t.state == dci_client::ops::TransactionState::Acknowledged)
                .map(|t| t.transaction_id)
        }
    })
    .await;
    rig.server.take().unwrap().shutdown().await.unwrap();
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["kind"], "unavailable");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&txn),
        "the caller learns the transaction id to look up later: {body}"
    );
}

/// A data source may name only one of our signing keys (not revoked): the API refuses others
/// on `/signing_key_id` and stores nothing.
#[tokio::test]
async fn the_api_refuses_a_signing_key_that_is_not_ours() {
    let rig = Rig::new().await;
    let body = json!({
        "code": "crvs_k",
        "name": "Keyed",
        "registry_type": "crvs",
        "base_url": rig.sandbox.registry_url(RegistryType::Crvs),
        "auth": {"type": "none"},
        "sender_id": "spmis.example.org",
        "receiver_id": rig.sandbox.registry_id(),
        "callback_uri": format!("{}/callback/crvs_k", rig.base()),
        "signing_key_id": "nosuch",
    });
    let (status, v) = rig.api("POST", "/sources", Some(body.clone())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["fields"][0]["pointer"], "/signing_key_id", "{v}");
    assert!(
        v["error"]["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("\"nosuch\" is not one of our signing keys"),
        "{v}"
    );
    let (status, _) = rig.api("GET", "/sources/crvs_k", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    let mut unsigned = body.clone();
    unsigned.as_object_mut().unwrap().remove("signing_key_id");
    let (status, v) = rig.api("POST", "/sources", Some(unsigned.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = rig.api("PUT", "/sources/crvs_k", Some(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (_, stored) = rig.api("GET", "/sources/crvs_k", None).await;
    assert!(stored["signing_key_id"].is_null(), "{stored}");
}

/// A sync search's records reach the gateway's caller as the registry sent them: the same
/// text (spacing, number forms, field order), not a copy rebuilt from parsed values. With the
/// reply's signature to check, the library reads the reply whole, and the records are the same
/// values.
#[tokio::test]
async fn the_gateway_answers_with_records_as_the_registry_sent_them() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let rig = Rig::new().await;
    let registry = MockServer::start().await;
    let ts = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let record = r#"{"family_name": "Doe",  "given_name": "Ana", "height": 1.10, "ids": [ {"t": "UIN", "v": "1"} ]}"#;
    let reply = format!(
        r#"{{"header": {{"version": "1.0.0", "message_id": "m1", "message_ts": "{ts}",
        "action": "on-search", "status": "succ", "total_count": 1, "completed_count": 1,
        "sender_id": "registry", "receiver_id": "spmis.example.org"}},
        "message": {{"transaction_id": "t1", "correlation_id": "c1", "search_response": [
        {{"reference_id": "r1", "timestamp": "{ts}", "status": "succ",
          "data": {{"version": "1.0.0", "reg_record_type": "Person", "reg_records": [{record}]}}}}]}}}}"#
    );
    Mock::given(method("POST"))
        .and(path("/registry/sync/search"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(reply, "application/json"))
        .mount(&registry)
        .await;
    rig.add_source("crvs_text", Some(registry.uri()), "off")
        .await;
    rig.add_source("crvs_checked", Some(registry.uri()), "if-present")
        .await;

    let search = json!({"query_type": "idtype-value", "query": "UIN:1", "mode": "sync"});
    let mut answers = Vec::new();
    for code in ["crvs_text", "crvs_checked"] {
        let resp = rig
            .http
            .post(format!("{}/api/v1/sources/{code}/search", rig.base()))
            .bearer_auth(TOKEN)
            .json(&search)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        answers.push(resp.text().await.unwrap());
    }
    assert!(
        answers[0].contains(&format!(r#""records":[{record}]"#)),
        "the record's text as sent: {}",
        answers[0]
    );
    let values: Vec<Value> = answers
        .iter()
        .map(|a| serde_json::from_str(a).unwrap())
        .collect();
    assert_eq!(values[0]["items"][0]["records"][0]["height"], 1.1);
    assert_eq!(values[1]["signature"], "unsigned", "{}", answers[1]);
    assert_eq!(
        values[0]["items"], values[1]["items"],
        "read whole, the same records and items"
    );
}
