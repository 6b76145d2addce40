//! Observability of a real server over real HTTP: `/metrics` scraped from `dci_server::spawn`
//! and parsed (every documented series present, values moving as calls are made against the
//! sandbox, no identifier in any label), who may read it, and `/readyz` apart from `/healthz`:
//! failing when the store is down (PostgreSQL behind a proxy that the test stops) or its
//! migrations are behind.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use dci_protocol::RegistryType;
use dci_sandbox::{FaultTarget, Faults, SandboxConfig};
use dci_server::{AdminToken, AppState, ServerConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::TOKEN;

/// Every series the README's "Metrics, traces and logs" section documents.
const DOCUMENTED: &[&str] = &[
    "dci_build_info",
    "dci_registry_requests_total",
    "dci_registry_request_duration_seconds",
    "dci_token_fetches_total",
    "dci_registry_retries_total",
    "dci_registry_reauthentications_total",
    "dci_callbacks_total",
    "dci_webhook_attempts_total",
    "dci_audit_queue_entries",
    "dci_transactions_open",
    "dci_webhook_deliveries_backlog",
    "dci_events_unprocessed",
    "dci_metrics_store_errors_total",
];

/// A parsed OpenMetrics exposition: the families declared (`# TYPE`) and every sample by name
/// and its labels.
#[derive(Debug)]
struct Scrape {
    text: String,
    families: Vec<String>,
    samples: BTreeMap<(String, BTreeMap<String, String>), f64>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut families = Vec::new();
        let mut samples = BTreeMap::new();
        assert!(text.trim_end().ends_with("# EOF"), "no # EOF: {text}");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families.push(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').unwrap()),
                None => (series, ""),
            };
            let mut map = BTreeMap::new();
            for pair in split_labels(labels) {
                let (k, v) = pair.split_once('=').unwrap();
                map.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
            samples.insert((name.to_owned(), map), value);
        }
        Scrape {
            text: text.to_owned(),
            families,
            samples,
        }
    }

    /// The sum of `name`'s samples whose labels include every pair of `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name && with.iter().all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    /// Whether a family of this exposed name is declared (a counter `x_total` is declared `x`,
    /// an info `x_info` as `x`).
    fn declares(&self, exposed: &str) -> bool {
        let base = exposed
            .strip_suffix("_total")
            .or_else(|| exposed.strip_suffix("_info"))
            .unwrap_or(exposed);
        self.families.iter().any(|f| f == base || f == exposed)
    }
}

/// Splits `a="x",b="y"` on the commas between pairs (values hold no quotes here).
fn split_labels(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

struct Rig {
    _env: support::Env,
    sandbox: dci_sandbox::Sandbox,
    server: dci_server::RunningServer,
    http: reqwest::Client,
}

const READONLY: &str = "read-only-token-0123456789";

impl Rig {
    async fn new() -> Rig {
        let sandbox = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
        let env = support::Env::new().await;
        let config = ServerConfig {
            console: Some(dci_server::console::ConsoleConfig {
                readonly_token: Some(SecretString::from(READONLY)),
                secure_cookies: false,
            }),
            webhooks: dci_client::webhooks::WebhookSettings {
                poll: Duration::from_millis(50),
                base_delay: Duration::from_millis(50),
                ..dci_client::webhooks::WebhookSettings::default()
            },
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
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn scrape_with(&self, token: Option<&str>) -> (StatusCode, String, String) {
        let mut req = self.http.get(format!("{}/metrics", self.server.base_url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ct, resp.text().await.unwrap())
    }

    async fn scrape(&self) -> Scrape {
        let (status, ct, text) = self.scrape_with(Some(READONLY)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        Scrape::parse(&text)
    }

    async fn add_source(&self, code: &str) {
        let body = json!({
            "code": code,
            "name": format!("Sandbox CRVS {code}"),
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

    fn uin(&self) -> (String, String) {
        let ex = self.sandbox.examples();
        let found = &ex[&RegistryType::Crvs].found[0];
        (found.id_type.clone(), found.id_value.clone())
    }

    async fn search(&self, code: &str, mode: &str) -> (StatusCode, Value) {
        let (t, v) = self.uin();
        let body = json!({"query_type": "idtype-value", "query": format!("{t}:{v}"), "mode": mode});
        self.api("POST", &format!("/sources/{code}/search"), Some(body))
            .await
    }
}

/// Polls `f` until it returns `Some`, for at most 20 s (a bound, not a timing assertion).
async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_are_guarded_and_move_with_the_calls_made() {
    let rig = Rig::new().await;
    let code = "crvs_metrics";
    rig.add_source(code).await;
    let src = [("source", code)];

    // Who may read it: the admin or the read-only token; nobody else, in the API's shape.
    let (status, _, body) = rig.scrape_with(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["kind"], "unauthorized", "{v}");
    let (status, _, _) = rig.scrape_with(Some("not-the-token-at-all")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = rig.scrape_with(Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);

    let before = rig.scrape().await;
    assert_eq!(
        before.sum("dci_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );

    // A sync search: one token fetch, one call, its latency observed.
    let (status, result) = rig.search(code, "sync").await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let after_sync = rig.scrape().await;
    let ok_sync = [
        ("source", code),
        ("action", "sync_search"),
        ("outcome", "ok"),
    ];
    assert_eq!(
        after_sync.sum("dci_registry_requests_total", &ok_sync)
            - before.sum("dci_registry_requests_total", &ok_sync),
        1.0
    );
    assert_eq!(
        after_sync.sum(
            "dci_token_fetches_total",
            &[("source", code), ("outcome", "ok")]
        ),
        1.0
    );
    let count = |s: &Scrape| {
        s.sum(
            "dci_registry_request_duration_seconds_count",
            &[("source", code), ("action", "sync_search")],
        )
    };
    assert_eq!(count(&after_sync) - count(&before), 1.0);
    let inf = [("source", code), ("action", "sync_search"), ("le", "+Inf")];
    assert_eq!(
        after_sync.sum("dci_registry_request_duration_seconds_bucket", &inf),
        count(&after_sync),
        "the +Inf bucket holds every observation"
    );

    // The registry revokes our token: a 401, a re-authentication, a second token fetch.
    rig.sandbox.revoke_tokens();
    let (status, result) = rig.search(code, "sync").await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let after_401 = rig.scrape().await;
    assert_eq!(
        after_401.sum("dci_registry_reauthentications_total", &src),
        1.0
    );
    assert_eq!(
        after_401.sum(
            "dci_token_fetches_total",
            &[("source", code), ("outcome", "ok")]
        ),
        2.0
    );
    assert_eq!(
        after_401.sum(
            "dci_registry_requests_total",
            &[
                ("source", code),
                ("action", "sync_search"),
                ("outcome", "auth")
            ]
        ),
        1.0
    );

    // The registry is down: the idempotent sync search is retried, and fails.
    rig.sandbox
        .set_faults(Faults {
            retry_after_s: Some(0),
            ..Faults::new(FaultTarget::Crvs).down(true)
        })
        .unwrap();
    let (status, err) = rig.search(code, "sync").await;
    assert!(status.is_server_error(), "{status} {err}");
    rig.sandbox.clear_faults();
    let after_down = rig.scrape().await;
    let retries = after_down.sum(
        "dci_registry_retries_total",
        &[("source", code), ("action", "sync_search")],
    );
    assert!(retries >= 1.0, "{}", after_down.text);
    assert_eq!(
        after_down.sum(
            "dci_registry_requests_total",
            &[
                ("source", code),
                ("action", "sync_search"),
                ("outcome", "http_error")
            ]
        ),
        retries + 1.0,
        "every attempt is counted: the first and each retry"
    );

    // A webhook endpoint that refuses everything: its deliveries back up and are retried.
    let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", refusing.local_addr().unwrap());
    tokio::spawn(async move {
        let app = Router::new().route(
            "/hook",
            post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
        axum::serve(refusing, app).await.unwrap();
    });
    let (status, created) = rig
        .api(
            "POST",
            "/webhooks",
            Some(json!({"url": hook, "kinds": ["search.completed"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // An async search: acknowledged, then its callback comes back and is acknowledged.
    let callbacks_ok = |s: &Scrape| s.sum("dci_callbacks_total", &[("outcome", "acknowledged")]);
    let (status, ack) = rig.search(code, "async").await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    let txn = ack["transaction_id"].as_str().unwrap().to_owned();
    eventually("the on-search callback", || async {
        let (_, v) = rig.api("GET", &format!("/transactions/{txn}"), None).await;
        (v["state"] == "completed").then_some(())
    })
    .await;
    let after_async = rig.scrape().await;
    assert!(callbacks_ok(&after_async) - callbacks_ok(&before) >= 1.0);
    assert_eq!(
        after_async.sum(
            "dci_registry_requests_total",
            &[("source", code), ("action", "search"), ("outcome", "ok")]
        ),
        1.0
    );

    // A callback that is not a DCI envelope is refused, with its DCI code.
    let resp = rig
        .http
        .post(format!("{}/callback/{code}", rig.server.base_url()))
        .header("content-type", "application/json")
        .body(r#"{"not":"an envelope"}"#)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success() || resp.status().is_client_error());
    let refused = rig.scrape().await;
    let bad = [("outcome", "refused"), ("code", "err.request.bad")];
    assert!(
        refused.sum("dci_callbacks_total", &bad) - after_async.sum("dci_callbacks_total", &bad)
            >= 1.0,
        "{}",
        refused.text
    );

    // The search.completed event waits for the refusing endpoint: attempts fail, the
    // delivery stays pending, the event unprocessed.
    let backed_up = eventually("a failed webhook attempt", || async {
        let s = rig.scrape().await;
        (s.sum("dci_webhook_attempts_total", &[("outcome", "retry")]) >= 1.0).then_some(s)
    })
    .await;
    assert!(
        backed_up.sum("dci_webhook_deliveries_backlog", &[("state", "pending")]) >= 1.0,
        "{}",
        backed_up.text
    );
    assert!(backed_up.sum("dci_events_unprocessed", &[]) >= 1.0);
    for state in ["pending", "acknowledged", "partial"] {
        assert!(
            backed_up
                .samples
                .contains_key(&("dci_transactions_open".to_owned(), {
                    let mut m = BTreeMap::new();
                    m.insert("state".to_owned(), state.to_owned());
                    m
                })),
            "dci_transactions_open{{state={state}}} missing"
        );
    }
    assert_eq!(backed_up.sum("dci_metrics_store_errors_total", &[]), 0.0);

    // By now every documented series has happened at least once, and is exposed.
    for name in DOCUMENTED {
        assert!(
            backed_up.declares(name),
            "{name} is not exposed:\n{}",
            backed_up.text
        );
    }

    // No identifier of a person, transaction or message in any label.
    let (id_type, id_value) = rig.uin();
    for leaked in [
        id_value.as_str(),
        txn.as_str(),
        dci_sandbox::DEMO_CLIENT_SECRET,
        TOKEN,
    ] {
        assert!(
            !backed_up.text.contains(leaked),
            "{leaked:?} appears in /metrics"
        );
    }
    let _ = id_type;
}

#[tokio::test]
async fn metrics_open_serves_without_a_token() {
    let env = support::Env::new().await;
    let state = AppState::with_config(
        env.store.clone(),
        env.ops.clone(),
        AdminToken::from_secret(&SecretString::from(TOKEN)),
        ServerConfig {
            metrics_open: true,
            ..ServerConfig::default()
        },
    );
    let server = dci_server::spawn("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    let resp = reqwest::get(format!("{}/metrics", server.base_url()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let s = Scrape::parse(&resp.text().await.unwrap());
    assert!(s.declares("dci_build_info"));
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn readyz_fails_when_migrations_are_behind_while_healthz_stays_up() {
    let env = support::Env::new().await;
    let server = dci_server::spawn("127.0.0.1:0".parse().unwrap(), env.state.clone())
        .await
        .unwrap();
    let base = server.base_url();
    let (status, ready) = get(&base, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    let latest = ready["schema"]["version"].as_i64().unwrap();
    assert!(latest >= 6, "{ready}");

    // The database loses its newest migration (as if restored from an older backup).
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        env.db_path().display()
    ))
    .await
    .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(latest)
        .execute(&mut conn)
        .await
        .unwrap();
    let (status, ready) = get(&base, "/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["schema"]["missing"], json!([latest]), "{ready}");
    assert!(
        ready["fix"].as_str().unwrap().contains("restart"),
        "{ready}"
    );
    let (status, health) = get(&base, "/healthz").await;
    assert_eq!(status, 200, "alive all the same: {health}");

    // And one this build does not know (a newer build migrated it).
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT $1, 'restored', 1, checksum, 0 FROM _sqlx_migrations LIMIT 1",
    )
    .bind(latest)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT 9999, 'future', 1, checksum, 0 FROM _sqlx_migrations LIMIT 1",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let (status, ready) = get(&base, "/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["schema"]["unknown"], json!([9999]), "{ready}");
    assert!(
        ready["fix"].as_str().unwrap().contains("newer build"),
        "{ready}"
    );
}

/// A TCP proxy to PostgreSQL that the test can cut: `stop` closes the listener and every
/// connection through it, so the store becomes unreachable as when the database host goes down.
struct Cuttable {
    addr: std::net::SocketAddr,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cuttable {
    async fn start(upstream: std::net::SocketAddr) -> Cuttable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let held = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                held.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Cuttable { addr, tasks }
    }

    fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn readyz_fails_when_the_store_is_down_while_healthz_stays_up() {
    let Some(url) = dci_protocol::test_support::postgres_url() else {
        return;
    };
    let parsed = reqwest::Url::parse(&url).unwrap();
    let upstream =
        tokio::net::lookup_host((parsed.host_str().unwrap(), parsed.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap();
    let proxy = Cuttable::start(upstream).await;
    let mut through = parsed.clone();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(proxy.addr.port())).unwrap();
    let schema = format!("readyz_{}", uuid::Uuid::new_v4().simple());
    let key = dci_client::MasterKey::from_bytes([9u8; 32]);
    let pg = Arc::new(
        dci_store::PgStore::connect_in_schema(through.as_str(), &schema, &key)
            .await
            .unwrap(),
    );
    let state = support::state(pg.clone(), pg.clone());
    let server = dci_server::spawn("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    let base = server.base_url();
    let (status, ready) = get(&base, "/readyz").await;
    assert_eq!(status, 200, "{ready}");

    proxy.stop();
    let (status, ready) = get(&base, "/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["store"], "unavailable", "{ready}");
    let (status, health) = get(&base, "/healthz").await;
    assert_eq!(status, 200, "alive all the same: {health}");

    server.shutdown().await.unwrap();
    dci_store::PgStore::drop_schema(&url, &schema)
        .await
        .unwrap();
}
