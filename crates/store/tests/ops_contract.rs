//! The `OpsStore` contract: one suite, run against SQLite (always) and PostgreSQL (when
//! `DCI_TEST_DATABASE_URL` is set; each test gets its own schema, dropped afterwards), like
//! `contract.rs`.

use std::future::Future;
use std::sync::Arc;

use dci_client::ops::store::{
    AckRecord, CallbackFilter, CallbackRecord, KeyStatus, OpKind, OpsStore, SignatureState,
    SigningKeyRecord, SubscriptionRecord, SubscriptionState, TransactionFilter, TransactionRecord,
    TransactionState,
};
use dci_client::{MasterKey, Store};
use dci_protocol::signature::Algorithm;
use dci_store::{PgStore, SqliteStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::{Duration, OffsetDateTime};

enum Backend {
    Sqlite {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
    Pg {
        url: String,
        schema: String,
    },
}

struct Opened {
    store: Arc<dyn Store>,
    ops: Arc<dyn OpsStore>,
}

impl Backend {
    async fn open(&self, key: &MasterKey) -> Opened {
        match self {
            Backend::Sqlite { path, .. } => {
                let s = Arc::new(SqliteStore::open_file(path, key).await.unwrap());
                Opened {
                    store: s.clone(),
                    ops: s,
                }
            }
            Backend::Pg { url, schema } => {
                let s = Arc::new(PgStore::connect_in_schema(url, schema, key).await.unwrap());
                Opened {
                    store: s.clone(),
                    ops: s,
                }
            }
        }
    }

    /// Everything the database holds, as bytes.
    async fn raw_dump(&self) -> Vec<u8> {
        match self {
            Backend::Sqlite { path, .. } => {
                let mut bytes = std::fs::read(path).unwrap();
                if let Ok(w) = std::fs::read(path.with_extension("sqlite3-wal")) {
                    bytes.extend(w);
                }
                bytes
            }
            Backend::Pg { url, schema } => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let mut out = Vec::new();
                for table in ["sealed_secret", "op_signing_key"] {
                    let sql = format!("SELECT CAST(t AS TEXT) FROM \"{schema}\".{table} t");
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    for r in rows {
                        out.extend(r.into_bytes());
                    }
                }
                out
            }
        }
    }
}

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes([b; 32])
}

async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<Backend>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dci.sqlite3");
    test(Arc::new(Backend::Sqlite { _dir: dir, path })).await;
}

async fn run_pg<F, Fut>(test: F)
where
    F: FnOnce(Arc<Backend>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = std::env::var("DCI_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        dci_protocol::test_support::skip(
            "DCI_TEST_DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)",
        );
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let backend = Arc::new(Backend::Pg {
        url: url.clone(),
        schema: schema.clone(),
    });
    let outcome = tokio::spawn(test(backend)).await;
    PgStore::drop_schema(&url, &schema).await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() { super::run_sqlite(super::$name).await })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() { super::run_pg(super::$name).await })*
        }
    };
}

contract!(
    transactions_round_trip_and_move_forward_only,
    overdue_requests_time_out,
    given_up_requests_keep_their_reason_until_a_result_comes,
    callbacks_are_unique_per_source_and_message_id,
    subscriptions_upsert_keeps_history,
    signing_keys_are_sealed_and_survive_rotation,
    everything_survives_a_reopen,
);

fn now() -> OffsetDateTime {
    // Whole milliseconds: both backends keep at least that.
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap()
}

fn txn(id: &str, source: &str, deadline: OffsetDateTime) -> TransactionRecord {
    let at = now();
    TransactionRecord {
        transaction_id: id.into(),
        source_code: source.into(),
        kind: OpKind::Search,
        message_id: format!("m-{id}"),
        reference_ids: vec!["r1".into(), "r2".into()],
        request: json!({"header": {"message_id": format!("m-{id}")}, "message": {"transaction_id": id}}),
        state: TransactionState::Pending,
        ack: None,
        created_at: at,
        deadline,
        updated_at: at,
        reason: None,
    }
}

fn callback(source: &str, message_id: &str, action: &str, txn: Option<&str>) -> CallbackRecord {
    CallbackRecord {
        source_code: source.into(),
        message_id: message_id.into(),
        action: action.into(),
        transaction_id: txn.map(str::to_owned),
        correlation_id: Some("c1".into()),
        status: Some("succ".into()),
        total_count: Some(2),
        completed_count: Some(1),
        signature: SignatureState::Verified,
        signature_key_id: Some("kid-1".into()),
        body: json!({"header": {"message_id": message_id}, "message": {"x": [1, 2]}}),
        tolerated: vec!["header.total_count: number sent as string \"2\"".into()],
        received_at: now(),
    }
}

async fn transactions_round_trip_and_move_forward_only(b: Arc<Backend>) {
    let o = b.open(&key(1)).await;
    let t = txn("t1", "crvs_main", now() + Duration::hours(1));
    o.ops.insert_transaction(&t).await.unwrap();
    assert!(
        o.ops.insert_transaction(&t).await.is_err(),
        "a transaction id is unique"
    );
    let got = o.ops.get_transaction("t1").await.unwrap().unwrap();
    assert_eq!(got.reference_ids, t.reference_ids);
    assert_eq!(got.request, t.request);
    assert_eq!(got.deadline, t.deadline);
    assert_eq!(got.state, TransactionState::Pending);
    assert!(got.ack.is_none());

    // A callback that beats the ACK completes it; the ACK then must not move it back.
    assert!(
        o.ops
            .advance_transaction("t1", TransactionState::Completed, now(), None)
            .await
            .unwrap()
    );
    let ack = AckRecord {
        ack_status: "ACK".into(),
        correlation_id: Some("corr-1".into()),
        error_code: None,
        error_message: None,
        state: TransactionState::Acknowledged,
        at: now(),
    };
    assert!(o.ops.record_ack("t1", &ack).await.unwrap());
    assert!(!o.ops.record_ack("nope", &ack).await.unwrap());
    let got = o.ops.get_transaction("t1").await.unwrap().unwrap();
    assert_eq!(got.state, TransactionState::Completed);
    assert_eq!(got.ack.unwrap().correlation_id.as_deref(), Some("corr-1"));
    assert!(
        !o.ops
            .advance_transaction("t1", TransactionState::Partial, now(), None)
            .await
            .unwrap()
    );

    o.ops
        .insert_transaction(&txn("t2", "dr_main", now() + Duration::hours(1)))
        .await
        .unwrap();
    let all = o
        .ops
        .list_transactions(&TransactionFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let dr = o
        .ops
        .list_transactions(&TransactionFilter {
            source_code: Some("dr_main".into()),
            ..TransactionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dr.len(), 1);
    assert_eq!(dr[0].transaction_id, "t2");
    let done = o
        .ops
        .list_transactions(&TransactionFilter {
            state: Some(TransactionState::Completed),
            ..TransactionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].transaction_id, "t1");
}

async fn overdue_requests_time_out(b: Arc<Backend>) {
    let o = b.open(&key(1)).await;
    let past = now() - Duration::minutes(1);
    o.ops
        .insert_transaction(&txn("late", "s", past))
        .await
        .unwrap();
    o.ops
        .insert_transaction(&txn("future", "s", now() + Duration::hours(1)))
        .await
        .unwrap();
    o.ops
        .insert_transaction(&txn("done", "s", past))
        .await
        .unwrap();
    o.ops
        .advance_transaction("done", TransactionState::Completed, now(), None)
        .await
        .unwrap();
    assert_eq!(o.ops.expire_overdue(now()).await.unwrap(), 1);
    let state = |id: &'static str| {
        let ops = o.ops.clone();
        async move { ops.get_transaction(id).await.unwrap().unwrap().state }
    };
    assert_eq!(state("late").await, TransactionState::TimedOut);
    assert_eq!(state("future").await, TransactionState::Pending);
    assert_eq!(state("done").await, TransactionState::Completed);
    // A late callback still completes a timed-out request.
    assert!(
        o.ops
            .advance_transaction("late", TransactionState::Completed, now(), None)
            .await
            .unwrap()
    );
    assert_eq!(o.ops.expire_overdue(now()).await.unwrap(), 0);
}

async fn given_up_requests_keep_their_reason_until_a_result_comes(b: Arc<Backend>) {
    let o = b.open(&key(1)).await;
    let later = now() + Duration::hours(1);
    for id in ["gone", "partial", "done"] {
        o.ops
            .insert_transaction(&txn(id, "s", later))
            .await
            .unwrap();
    }
    let why = "no result 3600 s after it was sent: given up";
    let get = |id: &'static str| {
        let ops = o.ops.clone();
        async move { ops.get_transaction(id).await.unwrap().unwrap() }
    };
    assert!(
        o.ops
            .advance_transaction("gone", TransactionState::Expired, now(), Some(why))
            .await
            .unwrap()
    );
    let t = get("gone").await;
    assert_eq!(t.state, TransactionState::Expired);
    assert_eq!(t.reason.as_deref(), Some(why));
    // A partial result is given up too; a finished one is not.
    o.ops
        .advance_transaction("partial", TransactionState::Partial, now(), None)
        .await
        .unwrap();
    o.ops
        .advance_transaction("done", TransactionState::Completed, now(), None)
        .await
        .unwrap();
    for (id, expect) in [
        ("partial", TransactionState::Expired),
        ("done", TransactionState::Completed),
    ] {
        o.ops
            .advance_transaction(id, TransactionState::Expired, now(), Some(why))
            .await
            .unwrap();
        assert_eq!(get(id).await.state, expect, "{id}");
    }
    assert_eq!(get("done").await.reason, None);
    // A later partial callback does not reopen it; a complete result replaces the reason.
    assert!(
        !o.ops
            .advance_transaction("gone", TransactionState::Partial, now(), None)
            .await
            .unwrap()
    );
    assert!(
        o.ops
            .advance_transaction("gone", TransactionState::Completed, now(), None)
            .await
            .unwrap()
    );
    let t = get("gone").await;
    assert_eq!((t.state, t.reason), (TransactionState::Completed, None));
}

async fn callbacks_are_unique_per_source_and_message_id(b: Arc<Backend>) {
    let o = b.open(&key(1)).await;
    let c1 = callback("crvs_main", "m1", "on-search", Some("t1"));
    assert!(o.ops.insert_callback(&c1).await.unwrap());
    assert!(!o.ops.insert_callback(&c1).await.unwrap(), "replay refused");
    // The same message id from another source is another message.
    assert!(
        o.ops
            .insert_callback(&callback("dr_main", "m1", "on-search", Some("t9")))
            .await
            .unwrap()
    );
    assert!(
        o.ops
            .insert_callback(&callback("crvs_main", "m2", "on-search", Some("t1")))
            .await
            .unwrap()
    );
    assert!(
        o.ops
            .insert_callback(&callback("crvs_main", "n1", "notify", None))
            .await
            .unwrap()
    );
    let for_t1 = o.ops.callbacks_for("t1").await.unwrap();
    assert_eq!(
        for_t1
            .iter()
            .map(|c| c.message_id.as_str())
            .collect::<Vec<_>>(),
        ["m1", "m2"]
    );
    assert_eq!(for_t1[0], c1);
    let notes = o
        .ops
        .list_callbacks(&CallbackFilter {
            source_code: Some("crvs_main".into()),
            action: Some("notify".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].message_id, "n1");
    assert!(notes[0].transaction_id.is_none());
    let newest = o
        .ops
        .list_callbacks(&CallbackFilter {
            limit: 2,
            ..CallbackFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(newest[0].message_id, "n1");
    assert_eq!(newest.len(), 2);
}

async fn subscriptions_upsert_keeps_history(b: Arc<Backend>) {
    let o = b.open(&key(1)).await;
    let first = now() - Duration::minutes(5);
    let sub = SubscriptionRecord {
        source_code: "crvs_main".into(),
        code: "sub-1".into(),
        state: SubscriptionState::Subscribed,
        event_type: Some("LiveBirth".into()),
        transaction_id: Some("t1".into()),
        created_at: first,
        updated_at: first,
    };
    o.ops.upsert_subscription(&sub).await.unwrap();
    let later = now();
    o.ops
        .upsert_subscription(&SubscriptionRecord {
            state: SubscriptionState::Unsubscribed,
            event_type: None,
            transaction_id: Some("t2".into()),
            created_at: later,
            updated_at: later,
            ..sub.clone()
        })
        .await
        .unwrap();
    o.ops
        .upsert_subscription(&SubscriptionRecord {
            source_code: "fr_main".into(),
            ..sub.clone()
        })
        .await
        .unwrap();
    let crvs = o.ops.list_subscriptions(Some("crvs_main")).await.unwrap();
    assert_eq!(crvs.len(), 1);
    assert_eq!(crvs[0].state, SubscriptionState::Unsubscribed);
    assert_eq!(crvs[0].event_type.as_deref(), Some("LiveBirth"));
    assert_eq!(crvs[0].transaction_id.as_deref(), Some("t2"));
    assert_eq!(crvs[0].created_at, first);
    assert_eq!(crvs[0].updated_at, later);
    assert_eq!(o.ops.list_subscriptions(None).await.unwrap().len(), 2);
}

fn key_record(id: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        key_id: id.into(),
        algorithm: Algorithm::Ed25519,
        status: KeyStatus::Active,
        public_key_pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
        created_at: now(),
        activated_at: Some(now()),
        revoked_at: None,
        expires_at: Some(now() + Duration::days(30)),
    }
}

const PRIVATE: &str =
    "-----BEGIN PRIVATE KEY-----\nPLAINTEXT-PRIVATE-KEY-MARKER\n-----END PRIVATE KEY-----\n";

async fn signing_keys_are_sealed_and_survive_rotation(b: Arc<Backend>) {
    let o = b.open(&key(1)).await;
    let k = key_record("spmis-1");
    assert!(
        o.ops
            .insert_signing_key(&k, &SecretString::from(PRIVATE))
            .await
            .unwrap()
    );
    assert!(
        !o.ops
            .insert_signing_key(&k, &SecretString::from("other"))
            .await
            .unwrap(),
        "ids are unique"
    );
    assert_eq!(o.ops.get_signing_key("spmis-1").await.unwrap().unwrap(), k);
    assert_eq!(
        o.ops
            .signing_key_private("spmis-1")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        PRIVATE
    );
    assert!(o.ops.signing_key_private("nope").await.unwrap().is_none());
    let dump = b.raw_dump().await;
    assert!(
        !dump.windows(12).any(|w| w == b"PLAINTEXT-PR"),
        "the private key is stored in plain text"
    );

    // Revoked stays revoked.
    assert!(
        o.ops
            .set_signing_key_status("spmis-1", KeyStatus::Revoked, now())
            .await
            .unwrap()
    );
    assert!(
        !o.ops
            .set_signing_key_status("spmis-1", KeyStatus::Active, now())
            .await
            .unwrap()
    );
    let got = o.ops.get_signing_key("spmis-1").await.unwrap().unwrap();
    assert_eq!(got.status, KeyStatus::Revoked);
    assert!(got.revoked_at.is_some());
    assert!(!got.can_sign(now()));
    assert!(
        !o.ops
            .set_signing_key_status("nope", KeyStatus::Revoked, now())
            .await
            .unwrap()
    );

    o.ops
        .insert_signing_key(&key_record("spmis-2"), &SecretString::from(PRIVATE))
        .await
        .unwrap();
    let report = o.store.rotate_master_key(key(2)).await.unwrap();
    assert!(report.resealed >= 2, "signing keys are re-sealed too");
    drop(o);
    let o = b.open(&key(2)).await;
    assert_eq!(
        o.ops
            .signing_key_private("spmis-2")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        PRIVATE
    );
    let ids: Vec<String> = o
        .ops
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(ids, ["spmis-1", "spmis-2"]);
}

async fn everything_survives_a_reopen(b: Arc<Backend>) {
    {
        let o = b.open(&key(1)).await;
        o.ops
            .insert_transaction(&txn("t1", "s", now() + Duration::hours(1)))
            .await
            .unwrap();
        o.ops
            .insert_callback(&callback("s", "m1", "on-search", Some("t1")))
            .await
            .unwrap();
    }
    let o = b.open(&key(1)).await;
    assert!(o.ops.get_transaction("t1").await.unwrap().is_some());
    assert_eq!(o.ops.callbacks_for("t1").await.unwrap().len(), 1);
    assert!(
        !o.ops
            .insert_callback(&callback("s", "m1", "on-search", Some("t1")))
            .await
            .unwrap(),
        "replay refused after a restart"
    );
}
