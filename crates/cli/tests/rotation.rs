//! `dci master-key rotate` while real `dci serve` processes answer a load of gateway searches
//! against the sandbox (synchronous, and asynchronous ones completed by signed callbacks): not
//! one answer outside 2xx, and afterwards everything stored opens under the new key alone.
//! - one server on SQLite in its `DCI_HOME`;
//! - two servers on one PostgreSQL schema sharing a `DCI_HOME` (its key file), skipped (failing
//!   under CI) without `DCI_TEST_DATABASE_URL`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dci_client::ops::store::{CallbackFilter, TransactionFilter};
use dci_client::{MasterKey, OpsStore, Store};
use dci_protocol::RegistryType;
use dci_sandbox::{Sandbox, SandboxConfig};
use dci_store::{MASTER_KEY_FILE, master_key};
use serde_json::{Value, json};

#[path = "support/serve.rs"]
mod serve_support;
#[path = "support/sources.rs"]
mod sources;

use serve_support::{ADMIN_TOKEN, Serve, sandbox_crvs_source, start_serve_with};

const CODE: &str = "crvs_main";

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    stop: AtomicBool,
    failures: std::sync::Mutex<Vec<String>>,
}

/// Searches on `base` until told to stop, alternating synchronous and asynchronous (waited
/// for: the sandbox's signed callback completes it) ones.
async fn load(base: String, uin: String, tally: Arc<Tally>) {
    let http = reqwest::Client::new();
    let mut asynchronous = false;
    while !tally.stop.load(Ordering::SeqCst) {
        asynchronous = !asynchronous;
        let body = if asynchronous {
            json!({"query_type": "idtype-value", "query": uin, "mode": "async", "wait_secs": 30})
        } else {
            json!({"query_type": "idtype-value", "query": uin})
        };
        let resp = http
            .post(format!("{base}/api/v1/sources/{CODE}/search"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await;
        let outcome = match resp {
            Ok(r) if r.status().is_success() => {
                let out: Value = r.json().await.unwrap_or(Value::Null);
                let async_done = !asynchronous || out["transaction"]["state"] == "completed";
                async_done
                    .then_some(())
                    .ok_or(format!("not completed: {out}"))
            }
            Ok(r) => Err(format!(
                "{} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )),
            Err(e) => Err(format!("request failed: {e}")),
        };
        match outcome {
            Ok(()) => tally.ok.fetch_add(1, Ordering::SeqCst),
            Err(e) => {
                tally.failures.lock().unwrap().push(e);
                0
            }
        };
    }
}

/// Waits (without a time limit: the test harness has one) until the load has `n` answers.
async fn until_ok(tally: &Tally, n: u64) {
    while tally.ok.load(Ordering::SeqCst) < n && tally.failures.lock().unwrap().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Runs the load on `servers` and `dci --json master-key rotate -y` (with `env`) in the middle
/// of it; returns the rotation's JSON report once every server has answered after it.
async fn rotate_under_load(sb: &Sandbox, servers: &[&Serve], env: &[(&str, &str)]) -> Value {
    let ex = &sb.examples()[&RegistryType::Crvs].found[0];
    let uin = format!("{}:{}", ex.id_type, ex.id_value);
    let tally = Arc::new(Tally::default());
    let workers: Vec<_> = servers
        .iter()
        .flat_map(|s| [s.base.clone(), s.base.clone()])
        .map(|base| tokio::spawn(load(base, uin.clone(), Arc::clone(&tally))))
        .collect();
    until_ok(&tally, 10).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dci"));
    cmd.args(["--json", "master-key", "rotate", "-y"])
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_MASTER_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let at_rotation = tally.ok.load(Ordering::SeqCst);
    until_ok(&tally, at_rotation + 20).await;
    tally.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "answers outside 2xx: {failures:?}");
    let http = reqwest::Client::new();
    for s in servers {
        let health = http
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "{}", health.text().await.unwrap());
    }
    eprintln!(
        "{} searches answered, 0 outside 2xx; rotation after {at_rotation}",
        tally.ok.load(Ordering::SeqCst)
    );
    report
}

/// The key file's newest key, which must be the rotation's new key, followed by the old one.
fn new_key_of(home: &Path, report: &Value, old_id: &str) -> MasterKey {
    let ring = master_key::read_ring_file(&home.join(MASTER_KEY_FILE), "master.key").unwrap();
    let ids: Vec<String> = ring.iter().map(dci_store::key_id).collect();
    assert_eq!(ids, [report["new_key_id"].as_str().unwrap(), old_id]);
    ring.into_iter().next().unwrap()
}

/// Every secret, cached token, request and callback body opens under the new key alone.
async fn all_open(store: &dyn Store, ops: &dyn OpsStore) {
    let source = store.get_data_source(CODE).await.unwrap().unwrap();
    assert!(store.get_token(source.id).await.unwrap().is_some());
    let txns = ops
        .list_transactions(&TransactionFilter {
            limit: 100_000,
            ..TransactionFilter::default()
        })
        .await
        .unwrap();
    let callbacks = ops
        .list_callbacks(&CallbackFilter {
            limit: 100_000,
            ..CallbackFilter::default()
        })
        .await
        .unwrap();
    assert!(!txns.is_empty() && !callbacks.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_under_load_on_sqlite_answers_only_2xx() {
    let home = tempfile::tempdir().unwrap();
    let options = dci_store::OpenOptions {
        home: Some(home.path().to_owned()),
        ..dci_store::OpenOptions::default()
    };
    let opened = dci_store::open(&options).await.unwrap();
    let old = master_key::read_file(&home.path().join(MASTER_KEY_FILE)).unwrap();
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let serve = start_serve_with(home.path(), "127.0.0.1:0", &[]);
    let source = sandbox_crvs_source(&sb, CODE, &serve);
    opened.store.create_data_source(&source).await.unwrap();
    drop(opened);
    let home_s = home.path().display().to_string();
    let report = rotate_under_load(&sb, &[&serve], &[("DCI_HOME", home_s.as_str())]).await;
    assert_eq!(report["old_key_id"], dci_store::key_id(&old));
    let new = new_key_of(home.path(), &report, &dci_store::key_id(&old));
    drop(serve);
    let url = format!(
        "sqlite://{}",
        home.path().join(dci_store::DATABASE_FILE).display()
    );
    let (store, ops) = dci_store::connect_all(&url, &new).await.unwrap();
    all_open(&*store, &*ops).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_under_load_on_two_postgres_instances_answers_only_2xx() {
    let Some(url) = dci_protocol::test_support::postgres_url() else {
        return;
    };
    let schema = format!("rotation_{}", uuid::Uuid::new_v4().simple());
    let home = tempfile::tempdir().unwrap();
    let old = master_key::generate();
    master_key::write_new_file(&home.path().join(MASTER_KEY_FILE), &old).unwrap();
    // Creates the schema and applies the migrations before either instance starts.
    let store = dci_store::PgStore::connect_in_schema(&url, &schema, &old)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let db_url = format!("{url}{sep}options[search_path]={schema}");
    let home_s = home.path().display().to_string();
    let env = [
        ("DCI_HOME", home_s.as_str()),
        ("DCI_DATABASE_URL", db_url.as_str()),
    ];
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let a = start_serve_with(home.path(), "127.0.0.1:0", &env);
    let b = start_serve_with(home.path(), "127.0.0.1:0", &env);
    store
        .create_data_source(&sandbox_crvs_source(&sb, CODE, &b))
        .await
        .unwrap();
    let report = rotate_under_load(&sb, &[&a, &b], &env).await;
    let new = new_key_of(home.path(), &report, &dci_store::key_id(&old));
    drop((a, b));
    store.close().await;
    let fresh = dci_store::PgStore::connect_in_schema(&url, &schema, &new)
        .await
        .unwrap();
    all_open(&fresh, &fresh).await;
    fresh.close().await;
    dci_store::PgStore::drop_schema(&url, &schema)
        .await
        .unwrap();
}
