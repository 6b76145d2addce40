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
    bulk_jobs_keep_their_checkpoint_and_final_state,
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
    // Found by the registry's correlation id (root callback routes name no source).
    let by_corr = o.ops.transactions_by_correlation("corr-1").await.unwrap();
    assert_eq!(
        by_corr
            .iter()
            .map(|t| t.transaction_id.as_str())
            .collect::<Vec<_>>(),
        ["t1"]
    );
    assert!(
        o.ops
            .transactions_by_correlation("corr-none")
            .await
            .unwrap()
            .is_empty()
    );
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
    // Read back by source and message id, to tell a re-send from a reused id.
    assert_eq!(
        o.ops.get_callback("crvs_main", "m1").await.unwrap(),
        Some(c1.clone())
    );
    assert_eq!(
        o.ops
            .get_callback("dr_main", "m1")
            .await
            .unwrap()
            .unwrap()
            .transaction_id
            .as_deref(),
        Some("t9")
    );
    assert!(
        o.ops
            .get_callback("crvs_main", "nope")
            .await
            .unwrap()
            .is_none()
    );
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

// ---- events and webhooks (the outbox) ----

mod events {
    use super::*;
    use dci_client::events::{EventCursor, EventFilter, EventKind, NewEvent};
    use dci_client::webhooks::{
        AttemptOutcome, AttemptRecord, DeliveryFilter, DeliveryState, Redelivery,
        RedeliverySelection, WebhookEndpoint,
    };

    contract!(
        a_callback_and_its_events_are_written_together,
        acks_expiry_and_subscriptions_write_their_events,
        concurrent_last_pages_complete_the_search_once,
        events_page_by_cursor_filter_and_are_marked_processed,
        webhook_endpoints_keep_their_secret_sealed,
        deliveries_are_leased_ordered_retried_and_redelivered,
        source_state_changes_write_an_event_per_settled_change,
    );

    fn endpoint(id: &str, kinds: &[EventKind], enabled: bool) -> WebhookEndpoint {
        WebhookEndpoint {
            id: id.into(),
            url: format!("http://127.0.0.1:9/{id}"),
            kinds: kinds.to_vec(),
            enabled,
            description: None,
            created_at: now(),
            updated_at: now(),
        }
    }

    fn on_search(txn: &str, message_id: &str, refs: &[&str], completed: u64) -> CallbackRecord {
        let items: Vec<_> = refs
            .iter()
            .map(|r| {
                json!({"reference_id": r, "timestamp": "2025-01-01T00:00:00Z", "status": "succ",
                       "data": {"reg_records": [{"name": format!("person {r}")}]}})
            })
            .collect();
        CallbackRecord {
            status: Some("succ".into()),
            total_count: Some(2),
            completed_count: Some(completed),
            body: json!({
                "header": {"version": "1.0.0", "message_id": message_id,
                           "message_ts": "2025-01-01T00:00:00Z", "action": "on-search",
                           "status": "succ", "total_count": 2, "completed_count": completed},
                "message": {"transaction_id": txn, "correlation_id": "c1",
                            "search_response": items}}),
            tolerated: vec![],
            ..callback("crvs", message_id, "on-search", Some(txn))
        }
    }

    async fn all_events(ops: &dyn OpsStore) -> Vec<dci_client::events::EventRecord> {
        ops.list_events(&EventFilter {
            limit: 1000,
            ..EventFilter::default()
        })
        .await
        .unwrap()
    }

    async fn pending_for(ops: &dyn OpsStore, endpoint: &str) -> Vec<String> {
        ops.list_deliveries(&DeliveryFilter {
            endpoint_id: Some(endpoint.into()),
            state: Some(DeliveryState::Pending),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event_id)
        .collect()
    }

    pub(super) async fn a_callback_and_its_events_are_written_together(b: Arc<Backend>) {
        let o = b.open(&key(1)).await;
        let ops = o.ops.as_ref();
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        ops.create_webhook(&endpoint("wh_all", &[], true), &secret)
            .await
            .unwrap();
        ops.create_webhook(
            &endpoint("wh_search", &[EventKind::SearchCompleted], true),
            &secret,
        )
        .await
        .unwrap();
        ops.create_webhook(&endpoint("wh_off", &[], false), &secret)
            .await
            .unwrap();

        // A notification: its event, with the typed notification, and a delivery per taker.
        let mut n = callback("crvs", "n-1", "notify", None);
        n.body = json!({"header": {"message_id": "n-1", "action": "notify"},
            "message": {"notify_event": [{"subscription_code": "sub-1",
                "data": {"reg_event_type": "death", "reg_records": [{"name": "X"}]}}]}});
        assert!(ops.insert_callback(&n).await.unwrap());
        assert!(
            !ops.insert_callback(&n).await.unwrap(),
            "a replay is stored once"
        );
        let events = all_events(ops).await;
        assert_eq!(events.len(), 1, "the replay wrote no second event");
        let e = &events[0];
        assert_eq!(e.kind, EventKind::NotificationReceived);
        assert!(e.id.starts_with("evt_"));
        assert_eq!(e.source_code.as_deref(), Some("crvs"));
        assert_eq!(e.subscription_code.as_deref(), Some("sub-1"));
        assert_eq!(e.payload["message_id"], "n-1");
        assert_eq!(
            e.payload["notification"]["events"][0]["subscription_code"],
            "sub-1"
        );
        assert_eq!(pending_for(ops, "wh_all").await, vec![e.id.clone()]);
        assert!(pending_for(ops, "wh_search").await.is_empty());
        assert!(pending_for(ops, "wh_off").await.is_empty());

        // A search: the partial page moves it to partial (no event), the last page completes
        // it in the callback's own transaction, with search.completed carrying the items.
        ops.insert_transaction(&txn("t-1", "crvs", now() + Duration::hours(1)))
            .await
            .unwrap();
        assert!(
            ops.insert_callback(&on_search("t-1", "cb-1", &["r1"], 1))
                .await
                .unwrap()
        );
        let t = ops.get_transaction("t-1").await.unwrap().unwrap();
        assert_eq!(t.state, TransactionState::Partial);
        assert_eq!(all_events(ops).await.len(), 1);
        assert!(
            ops.insert_callback(&on_search("t-1", "cb-2", &["r2"], 2))
                .await
                .unwrap()
        );
        let t = ops.get_transaction("t-1").await.unwrap().unwrap();
        assert_eq!(t.state, TransactionState::Completed);
        let events = all_events(ops).await;
        assert_eq!(events.len(), 2);
        let done = &events[1];
        assert_eq!(done.kind, EventKind::SearchCompleted);
        assert_eq!(done.transaction_id.as_deref(), Some("t-1"));
        assert_eq!(done.payload["state"], "completed");
        assert_eq!(done.payload["items"].as_array().unwrap().len(), 2);
        assert_eq!(pending_for(ops, "wh_search").await, vec![done.id.clone()]);
        assert_eq!(pending_for(ops, "wh_all").await.len(), 2);
        // Advancing again changes nothing and writes nothing.
        assert!(
            !ops.advance_transaction("t-1", TransactionState::Completed, now(), None)
                .await
                .unwrap()
        );
        assert_eq!(all_events(ops).await.len(), 2);
        // A callback naming another source's transaction does not move it.
        ops.insert_transaction(&txn("t-2", "other", now() + Duration::hours(1)))
            .await
            .unwrap();
        assert!(
            ops.insert_callback(&on_search("t-2", "cb-3", &["r1", "r2"], 2))
                .await
                .unwrap()
        );
        assert_eq!(
            ops.get_transaction("t-2").await.unwrap().unwrap().state,
            TransactionState::Pending
        );
    }

    pub(super) async fn acks_expiry_and_subscriptions_write_their_events(b: Arc<Backend>) {
        let o = b.open(&key(1)).await;
        let ops = o.ops.as_ref();
        ops.insert_transaction(&txn("t-err", "crvs", now() + Duration::hours(1)))
            .await
            .unwrap();
        let ack = AckRecord {
            ack_status: "ERR".into(),
            correlation_id: None,
            error_code: Some("err.request.bad".into()),
            error_message: Some("bad query".into()),
            state: TransactionState::Failed,
            at: now(),
        };
        assert!(ops.record_ack("t-err", &ack).await.unwrap());
        // Recording it again moves nothing: no second event.
        assert!(ops.record_ack("t-err", &ack).await.unwrap());
        ops.insert_transaction(&txn("t-late", "crvs", now() - Duration::seconds(1)))
            .await
            .unwrap();
        assert_eq!(ops.expire_overdue(now()).await.unwrap(), 1);
        assert_eq!(ops.expire_overdue(now()).await.unwrap(), 0);
        let sub = |state| SubscriptionRecord {
            source_code: "crvs".into(),
            code: "sub-1".into(),
            state,
            event_type: Some("death".into()),
            transaction_id: Some("t-sub".into()),
            created_at: now(),
            updated_at: now(),
        };
        ops.upsert_subscription(&sub(SubscriptionState::Subscribed))
            .await
            .unwrap();
        ops.upsert_subscription(&sub(SubscriptionState::Subscribed))
            .await
            .unwrap();
        ops.upsert_subscription(&sub(SubscriptionState::Unsubscribed))
            .await
            .unwrap();
        let events = all_events(ops).await;
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::TransactionFailed,
                EventKind::TransactionExpired,
                EventKind::SubscriptionChanged,
                EventKind::SubscriptionChanged,
            ]
        );
        assert_eq!(events[0].payload["error"]["code"], "err.request.bad");
        assert_eq!(events[1].transaction_id.as_deref(), Some("t-late"));
        assert_eq!(events[1].payload["state"], "timed_out");
        assert_eq!(events[2].payload["state"], "subscribed");
        assert_eq!(events[2].payload["previous_state"], serde_json::Value::Null);
        assert_eq!(events[3].payload["previous_state"], "subscribed");
        assert_eq!(events[3].subscription_code.as_deref(), Some("sub-1"));
    }

    pub(super) async fn concurrent_last_pages_complete_the_search_once(b: Arc<Backend>) {
        let o = b.open(&key(1)).await;
        for round in 0..10 {
            let id = format!("t-{round}");
            o.ops
                .insert_transaction(&txn(&id, "crvs", now() + Duration::hours(1)))
                .await
                .unwrap();
            let (a, c) = (o.ops.clone(), o.ops.clone());
            let (ia, ic) = (id.clone(), id.clone());
            let one = tokio::spawn(async move {
                a.insert_callback(&on_search(&ia, &format!("{ia}-a"), &["r1"], 1))
                    .await
                    .unwrap()
            });
            let two = tokio::spawn(async move {
                c.insert_callback(&on_search(&ic, &format!("{ic}-b"), &["r2"], 1))
                    .await
                    .unwrap()
            });
            assert!(one.await.unwrap() && two.await.unwrap());
            let t = o.ops.get_transaction(&id).await.unwrap().unwrap();
            assert_eq!(t.state, TransactionState::Completed, "round {round}");
        }
        let completed = all_events(o.ops.as_ref())
            .await
            .into_iter()
            .filter(|e| e.kind == EventKind::SearchCompleted)
            .count();
        assert_eq!(completed, 10, "one search.completed per search");
    }

    pub(super) async fn events_page_by_cursor_filter_and_are_marked_processed(b: Arc<Backend>) {
        let o = b.open(&key(1)).await;
        let ops = o.ops.as_ref();
        let mut ids = Vec::new();
        for i in 0..7 {
            let kind = if i % 2 == 0 {
                EventKind::NotificationReceived
            } else {
                EventKind::SourceStateChanged
            };
            let mut e = NewEvent::new(kind, json!({"i": i}));
            e.source_code = Some(if i < 5 { "a" } else { "b" }.into());
            ids.push(ops.append_event(&e).await.unwrap().id);
        }
        // Pages of 3 by cursor; an insert between pages lands after, never in between.
        let page = |after: Option<EventCursor>| EventFilter {
            after,
            limit: 3,
            ..EventFilter::default()
        };
        let p1 = ops.list_events(&page(None)).await.unwrap();
        assert_eq!(
            p1.iter().map(|e| &e.id).collect::<Vec<_>>(),
            ids[..3].iter().collect::<Vec<_>>()
        );
        let cursor = EventCursor::decode(&p1[2].cursor().encode()).unwrap();
        let late = ops
            .append_event(&NewEvent::new(EventKind::SearchCompleted, json!({})))
            .await
            .unwrap();
        let p2 = ops.list_events(&page(Some(cursor))).await.unwrap();
        assert_eq!(
            p2.iter().map(|e| &e.id).collect::<Vec<_>>(),
            ids[3..6].iter().collect::<Vec<_>>()
        );
        let p3 = ops.list_events(&page(Some(p2[2].cursor()))).await.unwrap();
        assert_eq!(
            p3.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            vec![ids[6].clone(), late.id.clone()]
        );

        let only = ops
            .list_events(&EventFilter {
                kinds: vec![EventKind::SourceStateChanged],
                source_code: Some("a".into()),
                ..EventFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(
            only.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            vec![ids[1].clone(), ids[3].clone()]
        );

        let marked = ops
            .mark_events_processed(
                &[ids[0].clone(), ids[1].clone(), "evt_unknown".into()],
                now(),
            )
            .await
            .unwrap();
        assert_eq!(marked, 2);
        assert_eq!(
            ops.mark_events_processed(&[ids[0].clone()], now())
                .await
                .unwrap(),
            0
        );
        let open = ops
            .list_events(&EventFilter {
                unprocessed: true,
                ..EventFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(open.len(), 6);
        assert!(
            ops.get_event(&ids[0])
                .await
                .unwrap()
                .unwrap()
                .processed_at
                .is_some()
        );
    }

    pub(super) async fn webhook_endpoints_keep_their_secret_sealed(b: Arc<Backend>) {
        let o = b.open(&key(1)).await;
        let secret = SecretString::from("whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1sZWFr");
        let mut e = endpoint("wh_1", &[EventKind::NotificationReceived], true);
        o.ops.create_webhook(&e, &secret).await.unwrap();
        assert!(
            o.ops.create_webhook(&e, &secret).await.is_err(),
            "ids are unique"
        );
        assert_eq!(o.ops.get_webhook("wh_1").await.unwrap().unwrap(), e);
        assert_eq!(
            o.ops
                .webhook_secret("wh_1")
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            secret.expose_secret()
        );
        let dump = b.raw_dump().await;
        assert!(
            !dump
                .windows(20)
                .any(|w| w == &secret.expose_secret().as_bytes()[6..26]),
            "the secret is sealed at rest"
        );
        e.enabled = false;
        e.kinds = vec![];
        e.url = "https://spmis.example/hooks".into();
        assert!(o.ops.update_webhook(&e).await.unwrap());
        assert_eq!(o.ops.list_webhooks().await.unwrap(), vec![e.clone()]);
        // Rotation re-seals it with everything else.
        o.store.rotate_master_key(key(2)).await.unwrap();
        let reopened = b.open(&key(2)).await;
        assert_eq!(
            reopened
                .ops
                .webhook_secret("wh_1")
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            secret.expose_secret()
        );
        assert!(reopened.ops.delete_webhook("wh_1").await.unwrap());
        assert!(!reopened.ops.delete_webhook("wh_1").await.unwrap());
        assert!(reopened.ops.webhook_secret("wh_1").await.unwrap().is_none());
    }

    pub(super) async fn deliveries_are_leased_ordered_retried_and_redelivered(b: Arc<Backend>) {
        let o = b.open(&key(1)).await;
        let ops = o.ops.as_ref();
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        ops.create_webhook(&endpoint("wh_a", &[], true), &secret)
            .await
            .unwrap();
        ops.create_webhook(&endpoint("wh_b", &[], true), &secret)
            .await
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..3 {
            let e = ops
                .append_event(&NewEvent::new(EventKind::SearchCompleted, json!({"i": i})))
                .await
                .unwrap();
            ids.push(e.id);
        }
        let t = now();
        let lease = t + Duration::seconds(30);
        // Two workers claim two different endpoints; a third finds none free.
        let a = ops.claim_webhook("w1", t, lease).await.unwrap().unwrap();
        let c = ops.claim_webhook("w2", t, lease).await.unwrap().unwrap();
        assert_ne!(a.id, c.id);
        assert!(ops.claim_webhook("w3", t, lease).await.unwrap().is_none());
        // Oldest first; only the holder may record.
        let (d, ev) = ops.head_delivery(&a.id).await.unwrap().unwrap();
        assert_eq!(ev.id, ids[0]);
        assert_eq!(d.state, DeliveryState::Pending);
        let attempt = |n, status| AttemptRecord {
            endpoint_id: a.id.clone(),
            event_id: ev.id.clone(),
            attempt: n,
            at: now(),
            status,
            error: None,
            duration_ms: 3,
        };
        assert!(
            !ops.finish_attempt("w2", &attempt(1, Some(500)), &AttemptOutcome::Delivered)
                .await
                .unwrap()
        );
        let later = now() + Duration::minutes(5);
        assert!(
            ops.finish_attempt("w1", &attempt(1, Some(503)), &AttemptOutcome::Retry(later))
                .await
                .unwrap()
        );
        // The failed head blocks the endpoint's later events until it is due.
        let (d, head) = ops.head_delivery(&a.id).await.unwrap().unwrap();
        assert_eq!(
            (head.id.as_str(), d.attempts, d.last_status),
            (ids[0].as_str(), 1, Some(503))
        );
        assert!(ops.renew_webhook_lease(&a.id, "w1", None).await.unwrap());
        assert!(
            ops.claim_webhook("w3", now(), lease)
                .await
                .unwrap()
                .is_none(),
            "head not due"
        );
        // Once due, it is claimable again; delivered, then dead for the next.
        let a2 = ops
            .claim_webhook(
                "w3",
                later + Duration::seconds(1),
                later + Duration::minutes(1),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a2.id, a.id);
        assert!(
            ops.finish_attempt("w3", &attempt(2, Some(200)), &AttemptOutcome::Delivered)
                .await
                .unwrap()
        );
        let (_, next) = ops.head_delivery(&a.id).await.unwrap().unwrap();
        assert_eq!(next.id, ids[1]);
        let dead = AttemptRecord {
            event_id: next.id.clone(),
            ..attempt(12, None)
        };
        let dead = AttemptRecord {
            error: Some("could not connect".into()),
            ..dead
        };
        assert!(
            ops.finish_attempt(
                "w3",
                &dead,
                &AttemptOutcome::Dead("12 attempts failed".into())
            )
            .await
            .unwrap()
        );
        let attempts = ops.list_attempts(&a.id, &ids[0]).await.unwrap();
        assert_eq!(
            attempts.iter().map(|x| x.status).collect::<Vec<_>>(),
            vec![Some(503), Some(200)]
        );
        let states = ops
            .list_deliveries(&DeliveryFilter {
                endpoint_id: Some(a.id.clone()),
                ..DeliveryFilter::default()
            })
            .await
            .unwrap();
        let by_event = |id: &str| states.iter().find(|d| d.event_id == id).unwrap().clone();
        assert_eq!(by_event(&ids[0]).state, DeliveryState::Delivered);
        assert!(by_event(&ids[0]).delivered_at.is_some());
        assert_eq!(by_event(&ids[1]).state, DeliveryState::Dead);
        assert!(
            by_event(&ids[1])
                .last_error
                .unwrap()
                .contains("could not connect")
        );
        assert_eq!(by_event(&ids[2]).state, DeliveryState::Pending);

        // Redelivery by id: to both endpoints (queued again, attempts reset).
        let n = ops
            .redeliver(
                &Redelivery {
                    events: RedeliverySelection::Event(ids[1].clone()),
                    endpoint_id: None,
                },
                now(),
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        let d = ops
            .list_deliveries(&DeliveryFilter {
                endpoint_id: Some(a.id.clone()),
                event_id: Some(ids[1].clone()),
                ..DeliveryFilter::default()
            })
            .await
            .unwrap();
        assert_eq!((d[0].state, d[0].attempts), (DeliveryState::Pending, 0));
        // By time range, to one endpoint.
        let n = ops
            .redeliver(
                &Redelivery {
                    events: RedeliverySelection::Range {
                        since: t - Duration::minutes(1),
                        until: now() + Duration::seconds(1),
                    },
                    endpoint_id: Some(c.id.clone()),
                },
                now(),
            )
            .await
            .unwrap();
        assert_eq!(n, 3);
        // An endpoint created after the events gets them only by redelivery.
        ops.create_webhook(
            &endpoint("wh_new", &[EventKind::NotificationReceived], true),
            &secret,
        )
        .await
        .unwrap();
        assert!(pending_for(ops, "wh_new").await.is_empty());
        let n = ops
            .redeliver(
                &Redelivery {
                    events: RedeliverySelection::Event(ids[0].clone()),
                    endpoint_id: Some("wh_new".into()),
                },
                now(),
            )
            .await
            .unwrap();
        assert_eq!(n, 0, "its filter does not take search.completed");
    }

    pub(super) async fn source_state_changes_write_an_event_per_settled_change(b: Arc<Backend>) {
        use dci_client::{DataSourceInput, SourceState};
        let o = b.open(&key(1)).await;
        let source = DataSourceInput {
            code: "crvs".into(),
            name: "CRVS".into(),
            registry_type: "crvs".into(),
            base_url: "http://127.0.0.1:9/crvs".into(),
            auth: Some("none".into()),
            sender_id: Some("spmis".into()),
            ..DataSourceInput::default()
        }
        .validate()
        .unwrap();
        o.store.create_data_source(&source).await.unwrap();
        // Two tests that fail, then one that passes: testing is not reported, and the second
        // failure changes nothing.
        for (end, error) in [
            (SourceState::Error, Some("could not connect")),
            (SourceState::Error, Some("could not connect")),
            (SourceState::Active, None),
        ] {
            o.store
                .set_state("crvs", SourceState::Testing)
                .await
                .unwrap();
            o.store
                .record_test_result("crvs", end, now(), error)
                .await
                .unwrap();
        }
        let events = all_events(o.ops.as_ref()).await;
        let seen: Vec<(serde_json::Value, serde_json::Value)> = events
            .iter()
            .map(|e| {
                assert_eq!(e.kind, EventKind::SourceStateChanged);
                (
                    e.payload["previous_state"].clone(),
                    e.payload["state"].clone(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (serde_json::Value::Null, json!("error")),
                (json!("error"), json!("active")),
            ]
        );
        assert_eq!(events[0].payload["last_error"], "could not connect");
        assert!(
            o.store
                .set_state("nope", SourceState::Active)
                .await
                .unwrap_err()
                .is_not_found()
        );
    }
}

fn bulk_job(id: &str, created_at: OffsetDateTime) -> dci_client::bulk::BulkJob {
    use dci_client::bulk::{BulkJob, Checkpoint, InputFormat, JobSpec, JobState, OutputFormat};
    BulkJob {
        id: id.into(),
        source_code: "crvs_main".into(),
        state: JobState::Running,
        spec: JobSpec {
            input: Some("/data/in.csv".into()),
            input_format: InputFormat::Csv,
            output: Some("/data/out.jsonl".into()),
            output_format: OutputFormat::Jsonl,
            batch_size: 50,
            record_type: Some("Person".into()),
            total_rows: Some(1000),
            async_wait_secs: Some(60),
        },
        checkpoint: Checkpoint::default(),
        reason: None,
        created_at,
        updated_at: created_at,
    }
}

/// A bulk job round-trips; checkpoints replace each other while it runs; a cancelled job keeps
/// its last checkpoint, says so to the next save, and cannot change state again; jobs list
/// newest first; everything survives a reopen.
async fn bulk_jobs_keep_their_checkpoint_and_final_state(b: Arc<Backend>) {
    use dci_client::bulk::{Checkpoint, JobState};
    let o = b.open(&key(1)).await;
    let older = bulk_job("j1", now() - Duration::minutes(5));
    let job = bulk_job("j2", now());
    o.ops.create_bulk_job(&older).await.unwrap();
    o.ops.create_bulk_job(&job).await.unwrap();
    assert!(
        o.ops.create_bulk_job(&job).await.is_err(),
        "a job id is unique"
    );
    assert_eq!(o.ops.get_bulk_job("j2").await.unwrap().unwrap(), job);
    assert!(o.ops.get_bulk_job("nope").await.unwrap().is_none());

    let cp = Checkpoint {
        rows_done: 150,
        input_offset: 4096,
        input_line: 151,
        output_offset: 9000,
        found: 100,
        not_found: 40,
        errors: 10,
        batches_sent: 4,
        retries: 1,
        runs: 1,
    };
    let at = now();
    assert_eq!(
        o.ops.save_bulk_checkpoint("j2", &cp, at).await.unwrap(),
        Some(JobState::Running)
    );
    assert_eq!(
        o.ops.save_bulk_checkpoint("nope", &cp, at).await.unwrap(),
        None
    );
    let got = o.ops.get_bulk_job("j2").await.unwrap().unwrap();
    assert_eq!(got.checkpoint, cp);
    assert_eq!(got.updated_at, at);

    assert!(
        o.ops
            .set_bulk_job_state("j2", JobState::Cancelled, Some("by the user"), now())
            .await
            .unwrap()
    );
    // A run still going sees the cancellation at its next save; the checkpoint stays.
    let later = Checkpoint {
        rows_done: 200,
        ..cp
    };
    assert_eq!(
        o.ops
            .save_bulk_checkpoint("j2", &later, now())
            .await
            .unwrap(),
        Some(JobState::Cancelled)
    );
    assert!(
        !o.ops
            .set_bulk_job_state("j2", JobState::Completed, None, now())
            .await
            .unwrap(),
        "a final state is final"
    );
    let got = o.ops.get_bulk_job("j2").await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Cancelled);
    assert_eq!(got.reason.as_deref(), Some("by the user"));
    assert_eq!(got.checkpoint, cp);

    let ids: Vec<_> = o
        .ops
        .list_bulk_jobs(10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, ["j2", "j1"]);
    assert_eq!(o.ops.list_bulk_jobs(1).await.unwrap().len(), 1);
    drop(o);
    let o = b.open(&key(1)).await;
    assert_eq!(
        o.ops.get_bulk_job("j2").await.unwrap().unwrap().checkpoint,
        cp
    );
}
