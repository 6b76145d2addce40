//! `dci search|subscribe|unsubscribe|txn-status|key` run as the real binary against a spawned
//! sandbox, with a temporary DCI_HOME. Async commands with `--wait` complete when this test
//! process — standing in for a separately running `dci serve` on the same store — receives
//! the callback and ingests it.

#[path = "support/sources.rs"]
mod sources;

use std::path::{Path, PathBuf};
use std::process::Output;

use dci_client::DataSourceInput;
use dci_client::ops::{IngestContext, ingest};
use dci_protocol::RegistryType;
use dci_protocol::codes::Action;
use dci_sandbox::{Sandbox, SandboxConfig};
use dci_store::OpenOptions;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Home {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn home() -> Home {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("home");
    Home { _dir: dir, path }
}

async fn dci(home: &Path, args: &[&str]) -> Output {
    let home = home.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dci"))
            .args(&args)
            .env("DCI_HOME", &home)
            .env_remove("DCI_DATABASE_URL")
            .env_remove("DCI_MASTER_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn json_out(o: &Output) -> Value {
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn ok(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    json_out(o)
}

async fn open(home: &Path) -> dci_store::Opened {
    dci_store::open(&OpenOptions {
        home: Some(home.to_owned()),
        database_url: None,
        master_key: None,
        master_key_file: None,
        connections: dci_store::Connections::Pool,
    })
    .await
    .unwrap()
}

/// Receives callbacks for every source into the store at `home` (what `dci serve` does).
async fn receiver(home: &Path) -> (String, tokio::task::JoinHandle<()>) {
    let opened = open(home).await;
    let ctx = IngestContext::new(opened.store, opened.ops);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let rest = path.strip_prefix("/callback/").unwrap_or_default();
                let (code, suffix) = rest.split_once('/').unwrap_or((rest, ""));
                let action = match suffix {
                    "registry/on-search" => Some(Action::OnSearch),
                    "registry/on-subscribe" => Some(Action::OnSubscribe),
                    "registry/on-unsubscribe" => Some(Action::OnUnsubscribe),
                    "registry/txn/on-status" => Some(Action::TxnOnStatus),
                    "registry/notify" => Some(Action::Notify),
                    _ => None,
                };
                let body = &buf[head_end..head_end + len];
                let (status, json) = match ingest(&ctx, code, body, action).await {
                    Ok(ack) => (200, serde_json::to_vec(&ack).unwrap()),
                    Err(r) => (
                        r.answer_status,
                        serde_json::to_vec(&r.to_ack(OffsetDateTime::now_utc())).unwrap(),
                    ),
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    json.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&json).await;
            });
        }
    });
    (base, task)
}

async fn add_source(
    home: &Path,
    sb: &Sandbox,
    registry: RegistryType,
    callback_base: &str,
) -> String {
    let code = format!("{}_main", registry.as_str());
    let s = DataSourceInput {
        callback_uri: Some(format!("{callback_base}/callback/{code}")),
        ..sources::verified(sb, sources::sandbox_input(sb, registry, &code))
    }
    .validate()
    .unwrap_or_else(|e| panic!("{e:?}"));
    open(home).await.store.create_data_source(&s).await.unwrap();
    code
}

fn found(sb: &Sandbox, registry: RegistryType) -> String {
    let ex = &sb.examples()[&registry].found[0];
    format!("{}:{}", ex.id_type, ex.id_value)
}

#[tokio::test(flavor = "multi_thread")]
async fn key_lifecycle_and_jwks() {
    let h = home();
    let k1 = ok(&dci(
        &h.path,
        &[
            "--json", "key", "generate", "--alg", "ed25519", "--id", "k1",
        ],
    )
    .await);
    assert_eq!(k1["status"], "active");
    assert_eq!(k1["algorithm"], "ed25519");
    assert!(
        !k1.to_string().contains("PRIVATE"),
        "the private key is never printed"
    );
    let k2 = ok(&dci(
        &h.path,
        &[
            "--json",
            "key",
            "generate",
            "--alg",
            "rs256",
            "--id",
            "k2",
            "--inactive",
        ],
    )
    .await);
    assert_eq!(k2["status"], "inactive");
    let jwks = ok(&dci(&h.path, &["key", "export-jwks"]).await);
    let kids = |j: &Value| -> Vec<String> {
        j["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kids(&jwks), ["k1"]);
    ok(&dci(&h.path, &["--json", "key", "activate", "k2"]).await);
    assert_eq!(
        kids(&ok(&dci(&h.path, &["key", "export-jwks"]).await)),
        ["k1", "k2"]
    );
    let revoked = ok(&dci(&h.path, &["--json", "key", "revoke", "k1", "--yes"]).await);
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(
        kids(&ok(&dci(&h.path, &["key", "export-jwks"]).await)),
        ["k2"]
    );
    let list = ok(&dci(&h.path, &["--json", "key", "list"]).await);
    assert_eq!(list.as_array().unwrap().len(), 2);

    let dup = dci(&h.path, &["--json", "key", "generate", "--id", "k2"]).await;
    assert_eq!(dup.status.code(), Some(2));
    assert_eq!(json_out(&dup)["error"]["kind"], "invalid_input");
    let bad = dci(
        &h.path,
        &["--json", "key", "generate", "--alg", "dsa", "--id", "k3"],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        json_out(&bad)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ed25519 or rs256")
    );
    let again = dci(&h.path, &["--json", "key", "activate", "k1"]).await;
    assert_eq!(again.status.code(), Some(2), "a revoked key stays revoked");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_search_pages_dry_run_and_bad_input() {
    let h = home();
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let crvs = add_source(&h.path, &sb, RegistryType::Crvs, "http://127.0.0.1:9").await;
    let id = found(&sb, RegistryType::Crvs);
    let r = ok(&dci(&h.path, &["--json", "search", &crvs, "--id", &id]).await);
    assert_eq!(r["items"][0]["status"], "succ");
    assert!(!r["items"][0]["records"].as_array().unwrap().is_empty());
    assert_eq!(r["signature"], "verified", "the sandbox signs sync replies");

    let social = add_source(&h.path, &sb, RegistryType::Social, "http://127.0.0.1:9").await;
    let dir = tempfile::tempdir().unwrap();
    let expr = dir.path().join("expr.json");
    std::fs::write(&expr, r#"{"$and": [{"poverty_score": {"$ge": 0}}]}"#).unwrap();
    let pages = ok(&dci(
        &h.path,
        &[
            "--json",
            "search",
            &social,
            "--expression",
            &format!("@{}", expr.display()),
            "--page-size",
            "7",
            "--all-pages",
        ],
    )
    .await);
    let n = pages["pages"].as_array().unwrap().len();
    let total = pages["pages"][0]["items"][0]["pagination"]["total_count"]
        .as_u64()
        .unwrap();
    assert_eq!(n as u64, total.div_ceil(7));
    assert_eq!(pages["records"].as_u64().unwrap(), total);

    // --dry-run with a signing key: the signed envelope, nothing sent.
    ok(&dci(&h.path, &["--json", "key", "generate", "--id", "spmis-1"]).await);
    {
        let opened = open(&h.path).await;
        let mut s = opened.store.get_data_source(&crvs).await.unwrap().unwrap();
        s.signing_key_id = Some("spmis-1".into());
        opened.store.update_data_source(&s).await.unwrap();
    }
    let before = sb.requests().len();
    let env = ok(&dci(
        &h.path,
        &[
            "search",
            &crvs,
            "--id",
            &id,
            "--async",
            "--dry-run",
            "--transaction-id",
            "t-dry",
        ],
    )
    .await);
    assert_eq!(env["message"]["transaction_id"], "t-dry");
    assert!(
        env["signature"]
            .as_str()
            .unwrap()
            .contains("spmis.example.org|spmis-1|ed25519")
    );
    // The sender_uri is the callback URL with the source's secret, as `source show` reveals it.
    let shown = ok(&dci(
        &h.path,
        &["--json", "source", "show", &crvs, "--reveal-callback-url"],
    )
    .await);
    let callback_url = shown["callbacks"]["url"].as_str().unwrap();
    assert!(
        callback_url.starts_with(&format!("http://127.0.0.1:9/callback/{crvs}/")),
        "{shown}"
    );
    assert_eq!(
        env["header"]["sender_uri"],
        format!("{callback_url}/registry/on-search")
    );
    assert_eq!(sb.requests().len(), before, "--dry-run sent something");

    let bad = dci(&h.path, &["--json", "search", &crvs, "--id", "1234"]).await;
    assert_eq!(bad.status.code(), Some(2));
    let err = json_out(&bad);
    assert_eq!(err["error"]["kind"], "invalid_input");
    assert!(
        err["error"]["message"].as_str().unwrap().starts_with("id:"),
        "{err}"
    );
    let bad_json = dci(
        &h.path,
        &["--json", "search", &crvs, "--predicate", "[oops"],
    )
    .await;
    assert_eq!(bad_json.status.code(), Some(2));
    assert!(
        json_out(&bad_json)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--predicate")
    );
    let unknown = dci(&h.path, &["--json", "search", "nope", "--id", "UIN:1"]).await;
    assert_eq!(unknown.status.code(), Some(3), "not found exits 3");
    assert_eq!(json_out(&unknown)["error"]["kind"], "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn async_commands_complete_through_a_receiver_on_the_same_store() {
    let h = home();
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    // Create the home (key file, database) before the receiver opens it.
    drop(open(&h.path).await);
    let (base, rx) = receiver(&h.path).await;
    let crvs = add_source(&h.path, &sb, RegistryType::Crvs, &base).await;
    let id = found(&sb, RegistryType::Crvs);

    let v = ok(&dci(
        &h.path,
        &[
            "--json", "search", &crvs, "--id", &id, "--async", "--wait", "20",
        ],
    )
    .await);
    assert_eq!(v["state"], "completed", "{v}");
    assert_eq!(v["callbacks"][0]["signature"], "verified");
    assert!(!v["items"][0]["records"].as_array().unwrap().is_empty());
    let txn = v["transaction_id"].as_str().unwrap().to_owned();
    let local = ok(&dci(
        &h.path,
        &[
            "--json",
            "txn-status",
            &crvs,
            "--transaction-id",
            &txn,
            "--local",
        ],
    )
    .await);
    assert_eq!(local["state"], "completed");

    let st = ok(&dci(
        &h.path,
        &["--json", "txn-status", &crvs, "--transaction-id", &txn],
    )
    .await);
    assert_eq!(st["items"][0]["records"], v["items"][0]["records"]);
    let st_async = ok(&dci(
        &h.path,
        &[
            "--json",
            "txn-status",
            &crvs,
            "--transaction-id",
            &txn,
            "--async",
            "--wait",
            "20",
        ],
    )
    .await);
    assert_eq!(st_async["state"], "completed", "{st_async}");

    let sub = ok(&dci(
        &h.path,
        &[
            "--json",
            "subscribe",
            &crvs,
            "--event-type",
            "LiveBirth",
            "--wait",
            "20",
        ],
    )
    .await);
    assert_eq!(sub["state"], "completed", "{sub}");
    let code = sub["subscriptions"][0]["code"].as_str().unwrap().to_owned();
    let un = ok(&dci(
        &h.path,
        &[
            "--json",
            "unsubscribe",
            &crvs,
            "--code",
            &code,
            "--wait",
            "20",
        ],
    )
    .await);
    assert_eq!(un["state"], "completed", "{un}");
    assert_eq!(un["subscriptions"][0]["status"], "unsubscribe");

    // Without --wait: the ACK and ids, at once.
    let ack = ok(&dci(
        &h.path,
        &["--json", "search", &crvs, "--id", &id, "--async"],
    )
    .await);
    assert_eq!(ack["ack_status"], "ACK");
    assert!(ack["transaction_id"].is_string());
    assert!(ack["correlation_id"].is_string());
    rx.abort();
}
