//! The `dci serve` story with real processes: `dci serve` runs on a temporary DCI_HOME, a
//! separate `dci search … --async --wait` on the same store completes when the running server
//! receives the sandbox's callback, the gateway API answers with the admin token, and SIGTERM
//! stops the server cleanly.

use std::path::Path;
use std::process::{Command, Output};

use dci_client::DataSourceInput;
use dci_protocol::RegistryType;
use dci_sandbox::SandboxConfig;
use dci_store::OpenOptions;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/serve.rs"]
mod serve_support;
#[path = "support/sources.rs"]
mod sources;

use serve_support::{ADMIN_TOKEN, start_serve};

async fn dci(home: &Path, args: &[&str]) -> Output {
    let home = home.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_dci"))
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

/// A GET with the admin token over a plain socket; returns status and JSON body.
async fn get(base: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let host = base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(host).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One chunk is enough for these small bodies: drop the size lines.
        body.lines()
            .filter(|l| !l.chars().all(|c| c.is_ascii_hexdigit()))
            .collect::<String>()
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn async_search_from_the_cli_completes_through_a_running_dci_serve() {
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let serve = start_serve(&home, "127.0.0.1:0");

    // The data source, on the same store, with its callback URI at the running server.
    let code = "crvs_main";
    let source = DataSourceInput {
        callback_uri: Some(format!("{}/callback/{code}", serve.base)),
        ..sources::verified(&sb, sources::sandbox_input(&sb, RegistryType::Crvs, code))
    }
    .validate()
    .unwrap();
    let opened = dci_store::open(&OpenOptions {
        home: Some(home.clone()),
        database_url: None,
        master_key: None,
        master_key_file: None,
        connections: dci_store::Connections::Pool,
    })
    .await
    .unwrap();
    opened.store.create_data_source(&source).await.unwrap();

    let ex = &sb.examples()[&RegistryType::Crvs].found[0];
    let id = format!("{}:{}", ex.id_type, ex.id_value);
    let out = dci(
        &home,
        &[
            "--json", "search", code, "--id", &id, "--async", "--wait", "60",
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dci search failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The last JSON line is the completed transaction.
    let view: Value = stdout
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("state").is_some())
        })
        .unwrap_or_else(|| panic!("no transaction in the output: {stdout}"));
    assert_eq!(view["state"], "completed", "{view}");
    let txn = view["transaction_id"].as_str().unwrap();

    // The sandbox delivered its callback to `dci serve`, which answered 200. (It logs the
    // delivery once it has the answer, a moment after `dci serve` stored the callback.)
    let mut delivered = Vec::new();
    for _ in 0..400 {
        delivered = sb
            .callbacks()
            .into_iter()
            .filter(|c| c.transaction_id == txn)
            .collect();
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].status, Some(200));
    assert!(delivered[0].url.starts_with(&serve.base));

    // The gateway API sees the same transaction; without the token it refuses.
    let path = format!("/api/v1/transactions/{txn}");
    let (status, api_view) = get(&serve.base, &path, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{api_view}");
    assert_eq!(api_view["state"], "completed");
    assert_eq!(get(&serve.base, &path, None).await.0, 401);

    // SIGTERM: a clean stop.
    let pid = serve.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let mut serve = serve;
        serve.child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(
        status.success(),
        "dci serve exited with {status:?} on SIGTERM"
    );
}
