//! Nothing acknowledged is lost when `dci serve` is killed: async searches are acknowledged
//! through the gateway, `dci serve` gets SIGKILL while the registry's callbacks are in flight,
//! stays down for a second (the deliveries fail), and is started again on the same address.
//! The registry re-delivers, and every acknowledged transaction ends `completed` with its
//! result. Two kill cycles, bounded in requests and time.
//!
//! And at any instant under load: gateway clients keep sending async searches while
//! `dci serve` is killed at random moments (requests cut mid-send included: stored, never
//! answered); after the last restart every stored transaction ends with its result or a
//! definite state, and none is reported wrongly (failed although the registry got it).

use std::process::Command;
use std::time::{Duration, Instant};

use dci_client::DataSourceInput;
use dci_client::ops::{TransactionFilter, TransactionState};
use dci_protocol::RegistryType;
use dci_sandbox::SandboxConfig;
use dci_store::OpenOptions;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/serve.rs"]
mod serve_support;
#[path = "support/sources.rs"]
mod sources;

use serve_support::{ADMIN_TOKEN, Serve, start_serve};

const PER_CYCLE: usize = 20;

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

/// `POST` a JSON body with the admin token; status and JSON answer.
async fn post(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    try_post(addr, path, body)
        .await
        .unwrap_or_else(|| panic!("no answer from {addr}{path}"))
}

/// [`post`], `None` when the server is down or the connection is cut before a whole answer.
async fn try_post(addr: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
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

/// A free local address for `dci serve`.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A store under `home` holding the CRVS source `code` of `sb`, its callbacks to `addr`.
async fn store_with_source(
    sb: &dci_sandbox::Sandbox,
    home: &std::path::Path,
    addr: &str,
    code: &str,
    tune: impl FnOnce(&mut DataSourceInput),
) -> dci_store::Opened {
    let options = OpenOptions {
        home: Some(home.to_owned()),
        database_url: None,
        master_key: None,
        master_key_file: None,
        connections: dci_store::Connections::Pool,
    };
    let opened = dci_store::open(&options).await.unwrap();
    let mut input = DataSourceInput {
        callback_uri: Some(format!("http://{addr}/callback/{code}")),
        ..sources::sandbox_input(sb, RegistryType::Crvs, code)
    };
    tune(&mut input);
    let source = input.validate().unwrap();
    opened.store.create_data_source(&source).await.unwrap();
    opened
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_searches_survive_kill_9_of_dci_serve() {
    // The registry answers after 400 ms and re-delivers failed callbacks with backoff.
    let sb = dci_sandbox::spawn(
        SandboxConfig::default()
            .callback_delay(Duration::from_millis(400))
            .callback_retry(10, Duration::from_millis(200), Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let addr = free_addr();
    let code = "crvs_main";
    let opened = store_with_source(&sb, &home, &addr, code, |_| {}).await;
    let ex = &sb.examples()[&RegistryType::Crvs].found[0];
    let id = format!("{}:{}", ex.id_type, ex.id_value);

    let mut acknowledged = Vec::new();
    let mut serve = Some(start_serve(&home, &addr));
    assert_eq!(serve.as_ref().unwrap().base, format!("http://{addr}"));
    for _cycle in 0..2 {
        let mut tasks = Vec::new();
        for _ in 0..PER_CYCLE {
            let (addr, id) = (addr.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                post(
                    &addr,
                    &format!("/api/v1/sources/{code}/search"),
                    &json!({"query_type": "idtype-value", "query": id, "mode": "async"}),
                )
                .await
            }));
        }
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["ack_status"], "ACK", "{body}");
            acknowledged.push(body["transaction_id"].as_str().unwrap().to_owned());
        }
        // The callbacks are due in 400 ms: kill the server before they arrive.
        tokio::time::sleep(Duration::from_millis(150)).await;
        kill9(serve.take().unwrap());
        // Down long enough for the first deliveries to fail.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        serve = Some(start_serve(&home, &addr));
        // Back on the same address, where the registry's callbacks go.
        assert_eq!(serve.as_ref().unwrap().base, format!("http://{addr}"));
    }
    let failed_deliveries = sb
        .callbacks()
        .iter()
        .filter(|c| c.status != Some(200))
        .count();
    assert!(
        failed_deliveries > 0,
        "the kills must have cut deliveries off for this test to mean anything"
    );

    // Every acknowledged transaction gets its result: none left waiting.
    let until = Instant::now() + Duration::from_secs(45);
    let waiting = loop {
        let waiting: Vec<_> = opened
            .ops
            .list_transactions(&TransactionFilter {
                source_code: Some(code.into()),
                state: None,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_iter()
            .filter(|t| acknowledged.contains(&t.transaction_id))
            .filter(|t| t.state != TransactionState::Completed)
            .map(|t| (t.transaction_id, t.state))
            .collect();
        if waiting.is_empty() || Instant::now() > until {
            break waiting;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        waiting.is_empty(),
        "{} of {} acknowledged transactions never got their result: {waiting:?}",
        waiting.len(),
        acknowledged.len()
    );
    assert_eq!(acknowledged.len(), 2 * PER_CYCLE);
    drop(serve);
}

/// A small deterministic generator (xorshift), seeded from the clock and printed, so a failing
/// run can be told apart from another.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

const CYCLES: usize = 4;
const CLIENTS: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_instants_under_load_leaves_no_transaction_undecided() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let sb = dci_sandbox::spawn(
        SandboxConfig::default()
            .log_capacity(20_000)
            .callback_delay(Duration::from_millis(100))
            .callback_retry(8, Duration::from_millis(200), Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let addr = free_addr();
    let code = "crvs_main";
    // Short timeouts so that the recovery loop decides within the test's bound: a request
    // never answered settles after 2 × 2 s; the registry is asked after 1 s, every 1 s.
    let opened = store_with_source(&sb, &home, &addr, code, |i| {
        i.timeout_secs = Some("2".into());
        i.recovery.callback_within_secs = Some("1".into());
        i.recovery.poll_interval_secs = Some("1".into());
        i.recovery.give_up_after_secs = Some("120".into());
    })
    .await;
    let ex = &sb.examples()[&RegistryType::Crvs].found[0];
    let id = format!("{}:{}", ex.id_type, ex.id_value);

    let mut serve = Some(start_serve(&home, &addr));
    let (mut answered, mut cut) = (0usize, 0usize);
    for cycle in 0..CYCLES {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (addr, id, stop) = (addr.clone(), id.clone(), stop.clone());
            clients.push(tokio::spawn(async move {
                let (mut ok, mut cut) = (0usize, 0usize);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = json!({"query_type": "idtype-value", "query": id, "mode": "async"});
                    match try_post(&addr, &format!("/api/v1/sources/{code}/search"), &body).await {
                        Some((200, _)) => ok += 1,
                        _ => {
                            cut += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (ok, cut)
            }));
        }
        // Killed at a random instant of the load: mid-request, mid-send, mid-callback.
        let at = 150 + rng.next(600);
        tokio::time::sleep(Duration::from_millis(at)).await;
        kill9(serve.take().unwrap());
        let down = 200 + rng.next(800);
        tokio::time::sleep(Duration::from_millis(down)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            let (ok, c) = c.await.unwrap();
            answered += ok;
            cut += c;
        }
        println!("cycle {cycle}: killed after {at} ms, down {down} ms");
        serve = Some(start_serve(&home, &addr));
    }
    assert!(answered > 0, "the load must have been served between kills");

    // After the last restart: every stored transaction ends with its result or a definite
    // state (bounded wait).
    let all = || async {
        opened
            .ops
            .list_transactions(&TransactionFilter {
                source_code: Some(code.into()),
                state: None,
                limit: 100_000,
            })
            .await
            .unwrap()
    };
    let until = Instant::now() + Duration::from_secs(90);
    let stored = loop {
        let stored = all().await;
        let open = stored.iter().filter(|t| !t.state.is_terminal()).count();
        if open == 0 || Instant::now() > until {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let undecided: Vec<_> = stored
        .iter()
        .filter(|t| !t.state.is_terminal())
        .map(|t| (t.transaction_id.as_str(), t.state))
        .collect();
    assert!(
        undecided.is_empty(),
        "{} of {} transactions left without a result or a definite state: {undecided:?}",
        undecided.len(),
        stored.len()
    );

    // None reported wrongly: a transaction the registry received is never `failed` as
    // "never arrived", and one it did not receive never `completed`.
    let mut received = std::collections::HashMap::<String, usize>::new();
    for r in sb.requests() {
        if r.endpoint == "/crvs/registry/search"
            && let Some(t) = r
                .body
                .as_ref()
                .and_then(|b| b.pointer("/message/transaction_id"))
                .and_then(Value::as_str)
        {
            *received.entry(t.to_owned()).or_default() += 1;
        }
    }
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for t in &stored {
        *counts.entry(t.state.as_str()).or_default() += 1;
        let got = received.get(&t.transaction_id).copied().unwrap_or(0);
        assert!(got <= 1, "{} sent {got} times", t.transaction_id);
        match t.state {
            TransactionState::Completed => {
                assert_eq!(got, 1, "{} completed, never received", t.transaction_id)
            }
            TransactionState::Failed => {
                let reason = t.reason.as_deref().unwrap_or_default();
                assert!(
                    got == 0 && reason.contains("never arrived"),
                    "{} failed ({reason:?}) although the registry received it {got} times",
                    t.transaction_id
                );
            }
            other => panic!("{}: {other} is not expected here", t.transaction_id),
        }
    }
    println!(
        "{} stored, {answered} answered, {cut} cut or refused: {counts:?}",
        stored.len()
    );
    drop(serve);
}
