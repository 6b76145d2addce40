//! Retention with the real binary: `dci purge` deletes what finished before the retention and
//! keeps the rest, refuses to run without one, and `dci serve --retention-days` purges at start.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dci_client::ops::store::{OpKind, TransactionRecord, TransactionState};
use dci_store::OpenOptions;
use serde_json::{Value, json};
use time::OffsetDateTime;

#[path = "support/serve.rs"]
mod serve_support;
#[path = "support/sources.rs"]
mod sources;

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

/// Stores a request that finished `age` ago.
async fn finished(o: &dci_store::Opened, id: &str, age: time::Duration) {
    let at = OffsetDateTime::now_utc() - age;
    o.ops
        .insert_transaction(&TransactionRecord {
            transaction_id: id.into(),
            source_code: "crvs_main".into(),
            kind: OpKind::Search,
            message_id: format!("m-{id}"),
            reference_ids: vec!["r1".into()],
            request: json!({"message": {"search_request": [{"name": "Jane Doe"}]}}),
            state: TransactionState::Pending,
            ack: None,
            created_at: at,
            deadline: at + time::Duration::hours(1),
            updated_at: at,
            reason: None,
        })
        .await
        .unwrap();
    o.ops
        .advance_transaction(id, TransactionState::Completed, at, None)
        .await
        .unwrap();
}

fn dci(home: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dci"));
    cmd.args(args)
        .env("DCI_HOME", home)
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_MASTER_KEY")
        .env_remove("DCI_RETENTION_DAYS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn dci_purge_deletes_what_finished_before_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let o = open(&home).await;
    finished(&o, "old", time::Duration::days(40)).await;
    finished(&o, "recent", time::Duration::days(2)).await;

    let out = dci(&home, &["purge"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--older-than-days") && err.contains("DCI_RETENTION_DAYS"),
        "{err}"
    );
    assert!(
        o.ops.get_transaction("old").await.unwrap().is_some(),
        "nothing purged"
    );

    let out = dci(&home, &["--json", "purge"], &[("DCI_RETENTION_DAYS", "30")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["older_than_days"], 30);
    assert_eq!(report["transactions"], 1, "{report}");
    assert!(o.ops.get_transaction("old").await.unwrap().is_none());
    assert!(o.ops.get_transaction("recent").await.unwrap().is_some());

    // The flag wins over the setting.
    let out = dci(
        &home,
        &["--json", "purge", "--older-than-days", "1"],
        &[("DCI_RETENTION_DAYS", "30")],
    );
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["transactions"], 1, "{report}");
    assert!(o.ops.get_transaction("recent").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn dci_serve_with_a_retention_purges_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let o = open(&home).await;
    finished(&o, "old", time::Duration::days(10)).await;
    finished(&o, "recent", time::Duration::hours(1)).await;
    let serve =
        serve_support::start_serve_with(&home, "127.0.0.1:0", &[("DCI_RETENTION_DAYS", "7")]);
    let mut gone = false;
    for _ in 0..200 {
        if o.ops.get_transaction("old").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gone,
        "dci serve at {} did not purge the request past its retention",
        serve.base
    );
    assert!(o.ops.get_transaction("recent").await.unwrap().is_some());
}
