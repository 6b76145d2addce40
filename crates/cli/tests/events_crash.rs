//! The outbox under `kill -9`, with the real `dci serve` binary and a webhook receiver in this
//! test that counts deliveries by `webhook-id`.
//!
//! 1. 1 000 `notify` callbacks from the sandbox registry while `dci serve` is killed with
//!    SIGKILL at random instants and restarted (bounded cycles): every callback `dci serve`
//!    acknowledged (HTTP 200 to the registry) is stored once and becomes exactly one event,
//!    and that event reaches the receiver; duplicates are only the same id again (reported).
//! 2. Two `dci serve` processes on one PostgreSQL schema deliver one outbox: every event
//!    reaches every endpoint, one of the processes is killed mid-delivery, nothing is lost, and
//!    a redelivery is only the same id again (counted).

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use dci_client::DataSourceInput;
use dci_client::events::{EventFilter, EventKind, EventStore, NewEvent};
use dci_client::ops::store::CallbackFilter;
use dci_client::webhooks::{DeliveryFilter, DeliveryState, EndpointInput, create_endpoint};
use dci_protocol::RegistryType;
use dci_protocol::test_support::skip;
use dci_sandbox::SandboxConfig;
use dci_store::OpenOptions;
use serde_json::{Value, json};

#[path = "support/serve.rs"]
mod serve_support;
#[path = "support/sources.rs"]
mod sources;

use serve_support::{ADMIN_TOKEN, Serve, start_serve_with};

fn kill9(serve: Serve) {
    let pid = serve.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    drop(serve);
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Deliveries received, per receiver path and `webhook-id`.
type Counts = Arc<Mutex<HashMap<(String, String), u32>>>;

/// A webhook receiver on 127.0.0.1:0 answering 204 to `POST /{path}`; returns its base URL.
async fn receiver(counts: Counts) -> String {
    async fn hook(
        State(c): State<Counts>,
        UrlPath(path): UrlPath<String>,
        headers: HeaderMap,
    ) -> StatusCode {
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        *c.lock().unwrap().entry((path, id)).or_default() += 1;
        StatusCode::NO_CONTENT
    }
    let app = Router::new()
        .route("/{path}", post(hook))
        .with_state(counts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// xorshift, seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        println!("seed {seed}");
        Rng(seed)
    }

    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

async fn post_json(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let client = reqwest_like(base, path, body).await;
    client.unwrap_or_else(|| panic!("no answer from {base}{path}"))
}

/// A one-shot HTTP POST with the admin token (the CLI crate has no HTTP client dependency).
async fn reqwest_like(base: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.ok()?;
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).await.ok()?;
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).await.ok()?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    Some((
        status,
        serde_json::from_str(&body[start..end]).unwrap_or(Value::Null),
    ))
}

const CALLBACKS: usize = 1000;
const SENDERS: usize = 4;

/// Fast webhook retries (a delivery cut by a kill is retried soon).
const FAST: &[(&str, &str)] = &[("DCI_WEBHOOK_RETRY_BASE_MS", "50")];

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_callback_becomes_one_delivered_event_across_kill_9() {
    let mut rng = Rng::seeded();
    let sb = dci_sandbox::spawn(
        SandboxConfig::default()
            .log_capacity(50_000)
            .callback_retry(40, Duration::from_millis(200), Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let addr = free_addr();
    let code = "crvs_main";
    let opened = dci_store::open(&OpenOptions {
        home: Some(home.clone()),
        database_url: None,
        master_key: None,
        master_key_file: None,
        connections: dci_store::Connections::Pool,
    })
    .await
    .unwrap();
    let source = DataSourceInput {
        callback_uri: Some(format!("http://{addr}/callback/{code}")),
        ..sources::sandbox_input(&sb, RegistryType::Crvs, code)
    }
    .validate()
    .unwrap();
    opened.store.create_data_source(&source).await.unwrap();
    let counts = Counts::default();
    let hooks = receiver(counts.clone()).await;
    let (endpoint, _) = create_endpoint(
        opened.ops.as_ref(),
        &EndpointInput {
            url: format!("{hooks}/spmis"),
            kinds: vec!["notification.received".into()],
            ..EndpointInput::default()
        },
    )
    .await
    .unwrap();

    let mut serve = Some(start_serve_with(&home, &addr, FAST));
    let base = serve.as_ref().unwrap().base.clone();
    assert_eq!(base, format!("http://{addr}"));
    let (status, sub) = post_json(
        &base,
        &format!("/api/v1/sources/{code}/subscribe"),
        &json!({"event_type": "Death", "wait_secs": 20}),
    )
    .await;
    assert_eq!(status, 200, "{sub}");
    assert!(
        sb.notify(RegistryType::Crvs, None).await >= 1,
        "the subscription is active"
    );
    sb.clear_callbacks();

    // Senders: the registry sends notify callbacks until CALLBACKS are out; the server is
    // killed at random instants meanwhile and restarted (bounded: at most 30 cycles).
    let sb = Arc::new(sb);
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (sb, sent) = (sb.clone(), sent.clone());
        senders.push(tokio::spawn(async move {
            while sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < CALLBACKS {
                sb.notify(RegistryType::Crvs, None).await;
            }
        }));
    }
    let mut cycles = 0;
    while senders.iter().any(|s| !s.is_finished()) && cycles < 30 {
        let at = 100 + rng.next(900);
        tokio::time::sleep(Duration::from_millis(at)).await;
        kill9(serve.take().unwrap());
        let down = 50 + rng.next(500);
        tokio::time::sleep(Duration::from_millis(down)).await;
        serve = Some(start_serve_with(&home, &addr, FAST));
        cycles += 1;
        println!("cycle {cycles}: killed after {at} ms, down {down} ms");
    }
    for s in senders {
        s.await.unwrap();
    }
    assert!(
        cycles >= 3,
        "only {cycles} kill cycles: the load ended too soon"
    );

    // Wait (bounded) until the registry's redeliveries are done and the outbox is empty.
    // A kill mid-delivery leaves the endpoint leased to the dead process for the lease (60 s).
    let until = Instant::now() + Duration::from_secs(150);
    loop {
        // Callbacks whose last attempt scheduled another one.
        let mut last: HashMap<String, bool> = HashMap::new();
        for c in sb.callbacks() {
            last.insert(c.correlation_id.clone(), c.retry_in_ms.is_some());
        }
        let retrying = last.values().filter(|r| **r).count();
        let pending = opened
            .ops
            .list_deliveries(&DeliveryFilter {
                endpoint_id: Some(endpoint.id.clone()),
                state: Some(DeliveryState::Pending),
                limit: 10,
                ..DeliveryFilter::default()
            })
            .await
            .unwrap()
            .len();
        let acked: std::collections::HashSet<String> = sb
            .callbacks()
            .iter()
            .filter(|c| c.status == Some(200))
            .map(|c| c.correlation_id.clone())
            .collect();
        let delivered = counts.lock().unwrap().len();
        if (pending == 0 && delivered >= acked.len() && retrying == 0) || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let redeliveries scheduled at the end land.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Acknowledged callbacks (by correlation id) → stored callbacks → events → deliveries.
    let log = sb.callbacks();
    let acked: std::collections::HashSet<String> = log
        .iter()
        .filter(|c| c.action == "notify" && c.status == Some(200))
        .map(|c| c.correlation_id.clone())
        .collect();
    let attempts = log.iter().filter(|c| c.action == "notify").count();
    let stored = opened
        .ops
        .list_callbacks(&CallbackFilter {
            source_code: Some(code.into()),
            action: Some("notify".into()),
            limit: 100_000,
        })
        .await
        .unwrap();
    let mut by_correlation: HashMap<String, Vec<&str>> = HashMap::new();
    for c in &stored {
        // The registry's correlation id, as in the stored envelope.
        let correlation = c.body["message"]["correlation_id"]
            .as_str()
            .unwrap_or_default();
        by_correlation
            .entry(correlation.to_owned())
            .or_default()
            .push(c.message_id.as_str());
    }
    let events = opened
        .ops
        .list_events(&EventFilter {
            kinds: vec![EventKind::NotificationReceived],
            limit: 100_000,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    let mut by_message: HashMap<String, Vec<String>> = HashMap::new();
    for e in &events {
        by_message
            .entry(
                e.payload["message_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default()
            .push(e.id.clone());
    }
    let counts = counts.lock().unwrap().clone();
    let mut duplicates = 0u32;
    for correlation in &acked {
        let messages = by_correlation
            .get(correlation)
            .unwrap_or_else(|| panic!("acknowledged callback {correlation} was not stored"));
        assert_eq!(
            messages.len(),
            1,
            "callback {correlation} stored {} times",
            messages.len()
        );
        let ids = by_message
            .get(messages[0])
            .unwrap_or_else(|| panic!("callback {correlation} has no event"));
        assert_eq!(
            ids.len(),
            1,
            "callback {correlation} has {} events",
            ids.len()
        );
        let got = counts
            .get(&("spmis".to_owned(), ids[0].clone()))
            .copied()
            .unwrap_or(0);
        assert!(
            got >= 1,
            "event {} of callback {correlation} never delivered",
            ids[0]
        );
        duplicates += got - 1;
    }
    // Nothing delivered that is not an event of a stored callback.
    for (_, id) in counts.keys() {
        assert!(
            events.iter().any(|e| &e.id == id),
            "unknown webhook-id {id}"
        );
    }
    // Why the others were not acknowledged: the last attempt of each, by outcome.
    let mut final_attempt: HashMap<&str, &dci_sandbox::DeliveredCallback> = HashMap::new();
    for c in log.iter().filter(|c| c.action == "notify") {
        final_attempt.insert(c.correlation_id.as_str(), c);
    }
    let mut unacked = std::collections::BTreeMap::<String, usize>::new();
    for c in final_attempt.values().filter(|c| c.status != Some(200)) {
        let why = format!(
            "status {:?}, attempt {}, {}",
            c.status,
            c.attempt,
            c.error.as_deref().unwrap_or("-")
        );
        *unacked.entry(why).or_default() += 1;
    }
    println!("not acknowledged, by last attempt: {unacked:?}");
    assert!(
        acked.len() >= CALLBACKS / 2,
        "only {} of {CALLBACKS} callbacks were acknowledged: {unacked:?}",
        acked.len()
    );
    println!(
        "{CALLBACKS} callbacks ({attempts} delivery attempts by the registry), {} acknowledged, \
         {} stored, {} events, {} delivered, {duplicates} duplicate deliveries (same id), \
         {cycles} kill -9 cycles",
        acked.len(),
        stored.len(),
        events.len(),
        counts.len()
    );
    drop(serve);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_serve_processes_on_one_postgres_schema_deliver_each_event_without_loss() {
    let Some(url) = dci_protocol::test_support::postgres_url() else {
        return;
    };
    let schema = format!("dci_two_serve_{}", uuid_like());
    let key = dci_client::MasterKey::from_bytes([9; 32]);
    let store = match dci_store::PgStore::connect_in_schema(&url, &schema, &key).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            skip(&format!("PostgreSQL at {url} is not usable: {e}"));
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let key_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let db_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");

    let counts = Counts::default();
    let hooks = receiver(counts.clone()).await;
    const ENDPOINTS: usize = 4;
    const EVENTS: usize = 250;
    let mut endpoints = Vec::new();
    for i in 0..ENDPOINTS {
        let (e, _) = create_endpoint(
            store.as_ref(),
            &EndpointInput {
                url: format!("{hooks}/spmis{i}"),
                ..EndpointInput::default()
            },
        )
        .await
        .unwrap();
        endpoints.push(e);
    }
    let mut ids = Vec::new();
    for i in 0..EVENTS {
        let e = store
            .append_event(&NewEvent::new(
                EventKind::SourceStateChanged,
                json!({ "n": i }),
            ))
            .await
            .unwrap();
        ids.push(e.id);
    }

    let env: Vec<(&str, &str)> = vec![
        ("DCI_DATABASE_URL", db_url.as_str()),
        ("DCI_MASTER_KEY", key_b64.as_str()),
        ("DCI_WEBHOOK_RETRY_BASE_MS", "50"),
        // A killed instance's endpoints are taken over once its leases run out.
        ("DCI_WEBHOOK_LEASE_SECS", "20"),
    ];
    let a = start_serve_with(&home, "127.0.0.1:0", &env);
    let b = start_serve_with(&home, "127.0.0.1:0", &env);
    // Kill one of them while it delivers; the other (and a restarted one) take over once its
    // leases expire.
    let until = Instant::now() + Duration::from_secs(20);
    while counts.lock().unwrap().len() < ENDPOINTS * EVENTS / 4 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_kill = counts.lock().unwrap().len();
    // The leases held now run for the configured 20 s, not the 60 s default.
    let pg = sqlx::PgPool::connect(&db_url).await.unwrap();
    let (leased, longest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), max(lease_until_ms) - (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
         FROM webhook_endpoint WHERE lease_owner IS NOT NULL",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    pg.close().await;
    assert!(leased > 0, "no endpoint was leased while delivering");
    let longest = longest.unwrap_or_default();
    assert!(
        (1..=20_500).contains(&longest),
        "a lease runs {longest} ms from now: DCI_WEBHOOK_LEASE_SECS=20 was not used"
    );
    kill9(a);
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let pending = store
            .list_deliveries(&DeliveryFilter {
                state: Some(DeliveryState::Pending),
                limit: 10,
                ..DeliveryFilter::default()
            })
            .await
            .unwrap()
            .len();
        if pending == 0 || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let counts = counts.lock().unwrap().clone();
    let mut redelivered = 0u32;
    for (i, _) in endpoints.iter().enumerate() {
        for id in &ids {
            let got = counts
                .get(&(format!("spmis{i}"), id.clone()))
                .copied()
                .unwrap_or(0);
            assert!(got >= 1, "event {id} never reached endpoint {i}");
            redelivered += got - 1;
        }
    }
    let delivered = store
        .list_deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Delivered),
            limit: 100_000,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap()
        .len();
    assert_eq!(delivered, ENDPOINTS * EVENTS);
    println!(
        "two dci serve on one schema: {} deliveries, {at_kill} before one was killed, \
         {redelivered} redelivered (same id)",
        ENDPOINTS * EVENTS
    );
    drop(b);
    let _ = dci_store::PgStore::drop_schema(&url, &schema).await;
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
