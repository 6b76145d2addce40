//! Nothing acknowledged is lost when `dci serve` is killed: async searches are acknowledged
//! through the gateway, `dci serve` gets SIGKILL while the registry's callbacks are in flight,
//! stays down for a second (the deliveries fail), and is started again on the same address.
//! The registry re-delivers, and every acknowledged transaction ends `completed` with its
//! result. Two kill cycles, bounded in requests and time.

use std::process::Command;
use std::time::{Duration, Instant};

use dci_client::DataSourceInput;
use dci_client::ops::{TransactionFilter, TransactionState};
use dci_protocol::RegistryType;
use dci_sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SandboxConfig};
use dci_store::OpenOptions;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/serve.rs"]
mod serve_support;

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
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    (
        status,
        serde_json::from_str(&body[start..end]).unwrap_or(Value::Null),
    )
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
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let code = "crvs_main";
    let options = OpenOptions {
        home: Some(home.clone()),
        database_url: None,
        master_key: None,
        master_key_file: None,
    };
    let opened = dci_store::open(&options).await.unwrap();
    let source = DataSourceInput {
        code: code.into(),
        name: "Sandbox CRVS".into(),
        registry_type: "crvs".into(),
        base_url: sb.registry_url(RegistryType::Crvs),
        auth: Some("oauth2".into()),
        token_url: Some(sb.token_url()),
        client_id: Some(DEMO_CLIENT_ID.into()),
        client_secret: Some(SecretString::from(DEMO_CLIENT_SECRET.to_owned())),
        scope: Some(dci_sandbox::read_scope(RegistryType::Crvs)),
        sender_id: Some("spmis.example.org".into()),
        receiver_id: Some(sb.registry_id().to_owned()),
        callback_uri: Some(format!("http://{addr}/callback/{code}")),
        ..DataSourceInput::default()
    }
    .validate()
    .unwrap();
    opened.store.create_data_source(&source).await.unwrap();
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
