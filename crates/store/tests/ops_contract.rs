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

    /// Runs `sql` on the database directly (beside the store), returning the first column of
    /// each row as text.
    async fn raw(&self, sql: &str) -> Vec<String> {
        use sqlx::Connection;
        match self {
            Backend::Sqlite { path, .. } => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
            }
            Backend::Pg { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SET search_path TO \"{schema}\""
                )))
                .execute(&mut conn)
                .await
                .unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap()
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
    let Some(url) = dci_protocol::test_support::postgres_url() else {
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
    bulk_job_leases_admit_one_holder_at_a_time,
    schedules_round_trip_and_each_occurrence_is_claimed_once,
    purge_deletes_only_what_finished_before_the_cutoff,
    changes_are_published_once_committed,
    bodies_are_sealed_at_rest_and_plain_old_ones_still_read,
    instants_within_one_second_keep_their_order,
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
        RedeliverySelection, Sink, WebhookEndpoint,
    };

    contract!(
        amqp_sinks_keep_their_broker_url_sealed,
        a_callback_and_its_events_are_written_together,
        acks_expiry_and_subscriptions_write_their_events,
        concurrent_last_pages_complete_the_search_once,
        events_page_by_cursor_filter_and_are_marked_processed,
        a_reader_following_the_cursor_sees_every_event_while_writers_race,
        webhook_endpoints_keep_their_secret_sealed,
        deliveries_are_leased_ordered_retried_and_redelivered,
        source_state_changes_write_an_event_per_settled_change,
        the_backlog_counts_open_work_and_the_schema_is_current,
    );

    pub(super) async fn the_backlog_counts_open_work_and_the_schema_is_current(b: Arc<Backend>) {
        use dci_client::ops::Backlog;
        let o = b.open(&key(1)).await;
        let ops = o.ops.as_ref();
        let schema = ops.schema_status().await.unwrap();
        assert!(schema.is_current(), "{schema:?}");
        assert!(schema.expected >= 6, "{schema:?}");
        assert_eq!(ops.backlog().await.unwrap(), Backlog::default());

        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        ops.create_webhook(&endpoint("wh_backlog", &[], true), &secret)
            .await
            .unwrap();
        let later = now() + Duration::hours(1);
        for id in ["b-pending", "b-acked", "b-partial", "b-done"] {
            ops.insert_transaction(&txn(id, "crvs", later))
                .await
                .unwrap();
        }
        for (id, state) in [
            ("b-acked", TransactionState::Acknowledged),
            ("b-partial", TransactionState::Partial),
            ("b-done", TransactionState::Completed),
        ] {
            assert!(
                ops.advance_transaction(id, state, now(), None)
                    .await
                    .unwrap()
            );
        }
        let b = ops.backlog().await.unwrap();
        assert_eq!(
            (
                b.pending_transactions,
                b.acknowledged_transactions,
                b.partial_transactions
            ),
            (1, 1, 1),
            "{b:?}"
        );
        // The completed search wrote its event, queued for the endpoint.
        assert!(b.unprocessed_events >= 1, "{b:?}");
        assert_eq!(b.pending_deliveries, b.unprocessed_events, "{b:?}");
        assert_eq!(b.dead_deliveries, 0);
        let ids: Vec<String> = all_events(ops).await.into_iter().map(|e| e.id).collect();
        ops.mark_events_processed(&ids, now()).await.unwrap();
        assert_eq!(ops.backlog().await.unwrap().unprocessed_events, 0);
    }

    fn endpoint(id: &str, kinds: &[EventKind], enabled: bool) -> WebhookEndpoint {
        WebhookEndpoint {
            id: id.into(),
            url: format!("http://127.0.0.1:9/{id}"),
            sink: Sink::Webhook,
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

    /// A consumer that follows the cursor (`after` = the last event it saw) while eight
    /// writers append concurrently sees every event exactly once: an event never becomes
    /// visible behind one the reader already passed (on PostgreSQL a later position could
    /// otherwise commit first).
    pub(super) async fn a_reader_following_the_cursor_sees_every_event_while_writers_race(
        b: Arc<Backend>,
    ) {
        const WRITERS: usize = 8;
        const EACH: usize = 60;
        let o = b.open(&key(1)).await;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let ops = o.ops.clone();
                tokio::spawn(async move {
                    for i in 0..EACH {
                        let e =
                            NewEvent::new(EventKind::NotificationReceived, json!({"w": w, "i": i}));
                        ops.append_event(&e).await.unwrap();
                    }
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut cursor: Option<EventCursor> = None;
        let mut done = false;
        loop {
            let page = o
                .ops
                .list_events(&EventFilter {
                    after: cursor,
                    limit: 50,
                    ..EventFilter::default()
                })
                .await
                .unwrap();
            for e in &page {
                assert!(seen.insert(e.id.clone()), "seen twice: {}", e.id);
            }
            if let Some(last) = page.last() {
                cursor = Some(last.cursor());
            } else if done {
                break;
            }
            if !done && writers.iter().all(|w| w.is_finished()) {
                done = true;
            }
        }
        for w in writers {
            w.await.unwrap();
        }
        let all = o
            .ops
            .list_events(&EventFilter {
                limit: 10_000,
                ..EventFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), WRITERS * EACH);
        assert_eq!(
            seen.len(),
            WRITERS * EACH,
            "the reader missed {} event(s) that committed behind its cursor",
            WRITERS * EACH - seen.len()
        );
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

    pub(super) async fn amqp_sinks_keep_their_broker_url_sealed(b: Arc<Backend>) {
        let o = b.open(&key(1)).await;
        let broker = SecretString::from("amqp://dci:broker-password-never-leaks@rabbit:5672/spmis");
        let mut e = WebhookEndpoint {
            url: "amqp://rabbit:5672/spmis".into(),
            sink: Sink::Amqp {
                exchange: "dci.events".into(),
                routing_key: None,
            },
            ..endpoint("wh_q", &[], true)
        };
        o.ops.create_webhook(&e, &broker).await.unwrap();
        assert_eq!(o.ops.get_webhook("wh_q").await.unwrap().unwrap(), e);
        assert_eq!(
            o.ops
                .webhook_secret("wh_q")
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            broker.expose_secret()
        );
        let dump = b.raw_dump().await;
        assert!(
            !dump.windows(22).any(|w| w == b"broker-password-never-"),
            "the broker URL's password is sealed at rest"
        );
        // Events fan out to a sink like to a webhook.
        o.ops
            .append_event(&NewEvent::new(
                EventKind::SourceStateChanged,
                json!({ "source_code": "s" }),
            ))
            .await
            .unwrap();
        let pending = o
            .ops
            .list_deliveries(&DeliveryFilter {
                endpoint_id: Some("wh_q".into()),
                ..DeliveryFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].state, DeliveryState::Pending);
        // Exchange and routing key change; the sink's kind does not.
        e.sink = Sink::Amqp {
            exchange: String::new(),
            routing_key: Some("spmis.inbox".into()),
        };
        assert!(o.ops.update_webhook(&e).await.unwrap());
        assert_eq!(o.ops.list_webhooks().await.unwrap(), vec![e.clone()]);
        let as_webhook = WebhookEndpoint {
            sink: Sink::Webhook,
            ..e.clone()
        };
        assert!(!o.ops.update_webhook(&as_webhook).await.unwrap());
        assert_eq!(o.ops.get_webhook("wh_q").await.unwrap().unwrap(), e);
        // A confirmed publish (no HTTP status, no error) is recorded as an attempt.
        let now = now();
        let claimed = o
            .ops
            .claim_webhook("w1", now, now + Duration::seconds(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed, e);
        let attempt = AttemptRecord {
            endpoint_id: "wh_q".into(),
            event_id: pending[0].event_id.clone(),
            attempt: 1,
            at: now,
            status: None,
            error: None,
            duration_ms: 3,
        };
        assert!(
            o.ops
                .finish_attempt("w1", &attempt, &AttemptOutcome::Delivered)
                .await
                .unwrap()
        );
        assert_eq!(
            o.ops
                .list_attempts("wh_q", &pending[0].event_id)
                .await
                .unwrap(),
            vec![attempt]
        );
        o.store.rotate_master_key(key(2)).await.unwrap();
        let reopened = b.open(&key(2)).await;
        assert_eq!(
            reopened
                .ops
                .webhook_secret("wh_q")
                .await
                .unwrap()
                .unwrap()
                .expose_secret(),
            broker.expose_secret()
        );
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
        lease: None,
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
    let me = Some("me".to_owned());
    o.ops
        .take_bulk_lease("j2", "me", at + Duration::seconds(30), at, None)
        .await
        .unwrap();
    assert_eq!(
        o.ops
            .save_bulk_checkpoint("j2", "me", &cp, at)
            .await
            .unwrap(),
        Some((JobState::Running, me.clone()))
    );
    assert_eq!(
        o.ops
            .save_bulk_checkpoint("nope", "me", &cp, at)
            .await
            .unwrap(),
        None
    );
    let got = o.ops.get_bulk_job("j2").await.unwrap().unwrap();
    assert_eq!(got.checkpoint, cp);
    assert_eq!(got.updated_at, at);

    // Interrupted by a signal, then resumed: back to running, the checkpoint kept.
    assert!(
        o.ops
            .set_bulk_job_state(
                "j2",
                JobState::Interrupted,
                Some("interrupted by SIGINT"),
                now()
            )
            .await
            .unwrap()
    );
    let got = o.ops.get_bulk_job("j2").await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Interrupted);
    assert!(!got.state.is_final(), "an interrupted job is resumable");
    assert_eq!(got.checkpoint, cp);
    assert!(
        o.ops
            .set_bulk_job_state("j2", JobState::Running, None, now())
            .await
            .unwrap()
    );

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
            .save_bulk_checkpoint("j2", "me", &later, now())
            .await
            .unwrap(),
        Some((JobState::Cancelled, me))
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

fn schedule(id: &str, created_at: OffsetDateTime) -> dci_client::jobs::Schedule {
    use dci_client::bulk::{InputFormat, OutputFormat};
    dci_client::jobs::Schedule {
        id: id.into(),
        name: format!("schedule {id}"),
        source_code: "crvs_main".into(),
        cron: "0 2 * * *".into(),
        input: "https://spmis.example/ids.csv".into(),
        input_format: InputFormat::Csv,
        output_format: OutputFormat::Csv,
        batch_size: Some(50),
        record_type: Some("Person".into()),
        catch_up: dci_client::jobs::CatchUp::None,
        enabled: true,
        created_at,
    }
}

/// A schedule round-trips; of two handles claiming the same occurrence at once, exactly one
/// wins (the key decides); runs list latest occurrence first; a job's end finishes its run;
/// deleting a schedule deletes its runs.
async fn schedules_round_trip_and_each_occurrence_is_claimed_once(b: Arc<Backend>) {
    use dci_client::jobs::{RunState, ScheduleRun};
    let o = b.open(&key(1)).await;
    let other = b.open(&key(1)).await;
    let older = schedule("s1", now() - Duration::hours(1));
    let mut s = schedule("s2", now());
    s.batch_size = None;
    s.record_type = None;
    o.ops.create_schedule(&older).await.unwrap();
    o.ops.create_schedule(&s).await.unwrap();
    assert!(o.ops.create_schedule(&s).await.is_err(), "the id is unique");
    assert_eq!(other.ops.get_schedule("s2").await.unwrap().unwrap(), s);
    assert!(o.ops.get_schedule("nope").await.unwrap().is_none());
    let ids: Vec<String> = o
        .ops
        .list_schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["s1", "s2"], "oldest first");

    let occurrence = time::macros::datetime!(2026-03-01 02:00 UTC);
    let run = |instance: &str, occurrence_at| ScheduleRun {
        schedule_id: "s2".into(),
        occurrence_at,
        instance: instance.into(),
        state: RunState::Running,
        job_id: None,
        reason: None,
        skipped: 3,
        started_at: now(),
        finished_at: None,
    };
    let mut claims = Vec::new();
    for i in 0..10 {
        let (a, b2) = (o.ops.clone(), other.ops.clone());
        let (ra, rb) = (
            run(&format!("a{i}"), occurrence),
            run(&format!("b{i}"), occurrence),
        );
        claims.push(tokio::spawn(async move {
            a.claim_schedule_run(&ra).await.unwrap()
        }));
        claims.push(tokio::spawn(async move {
            b2.claim_schedule_run(&rb).await.unwrap()
        }));
    }
    let mut won = 0;
    for c in claims {
        won += usize::from(c.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one claim of an occurrence wins");
    let later = occurrence + Duration::days(1);
    assert!(o.ops.claim_schedule_run(&run("a", later)).await.unwrap());
    let runs = o.ops.list_schedule_runs("s2", 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].occurrence_at, later, "latest occurrence first");
    assert_eq!(runs[1].skipped, 3);
    assert_eq!(
        o.ops
            .latest_schedule_run("s2")
            .await
            .unwrap()
            .unwrap()
            .occurrence_at,
        later
    );
    assert!(o.ops.latest_schedule_run("s1").await.unwrap().is_none());

    assert!(
        o.ops
            .update_schedule_run(
                "s2",
                later,
                Some("job-1"),
                RunState::Running,
                Some("caught up"),
                None
            )
            .await
            .unwrap()
    );
    assert!(
        !o.ops
            .finish_schedule_run_of_job("job-x", RunState::Completed, None, now())
            .await
            .unwrap(),
        "a job of no schedule changes nothing"
    );
    let end = now();
    assert!(
        o.ops
            .finish_schedule_run_of_job("job-1", RunState::Completed, None, end)
            .await
            .unwrap()
    );
    assert!(
        !o.ops
            .finish_schedule_run_of_job("job-1", RunState::Failed, Some("late"), end)
            .await
            .unwrap(),
        "an ended run stays ended"
    );
    let got = other.ops.latest_schedule_run("s2").await.unwrap().unwrap();
    assert_eq!(got.state, RunState::Completed);
    assert_eq!(got.job_id.as_deref(), Some("job-1"));
    assert_eq!(
        got.reason.as_deref(),
        Some("caught up"),
        "the reason is kept"
    );
    assert_eq!(got.finished_at, Some(end));

    assert!(o.ops.delete_schedule("s2").await.unwrap());
    assert!(!o.ops.delete_schedule("s2").await.unwrap());
    assert!(o.ops.list_schedule_runs("s2", 10).await.unwrap().is_empty());
}

/// Newest first means newest first also within one second: SQLite keeps instants as text, and
/// sqlx's own encoding (`…:05Z`, `…:05.1Z`, `…:05.12Z`) sorts a whole second after its fractions
/// and `.12` after `.123456`.
async fn instants_within_one_second_keep_their_order(b: Arc<Backend>) {
    let o = b.open(&key(1)).await;
    let second = now().replace_millisecond(0).unwrap() - Duration::seconds(10);
    let offsets_us = [120_000, 0, 500_000, 123_456, 100_000];
    for us in offsets_us {
        let mut t = txn(&format!("t{us}"), "s", now() + Duration::hours(1));
        t.created_at = second + Duration::microseconds(us);
        t.updated_at = t.created_at;
        o.ops.insert_transaction(&t).await.unwrap();
        let ack = AckRecord {
            ack_status: "ACK".into(),
            correlation_id: Some("corr-same".into()),
            error_code: None,
            error_message: None,
            state: TransactionState::Acknowledged,
            at: t.created_at,
        };
        assert!(o.ops.record_ack(&t.transaction_id, &ack).await.unwrap());
    }
    let mut newest_first = offsets_us;
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    let expected: Vec<String> = newest_first.iter().map(|us| format!("t{us}")).collect();

    let listed = o
        .ops
        .list_transactions(&TransactionFilter::default())
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|t| t.transaction_id.as_str()).collect();
    assert_eq!(ids, expected, "listed newest first");
    let t = listed
        .iter()
        .find(|t| t.transaction_id == "t123456")
        .unwrap();
    assert_eq!(
        t.created_at,
        second + Duration::microseconds(123_456),
        "read back to the µs"
    );
    assert_eq!(t.ack.as_ref().unwrap().at, t.created_at);

    let by_corr = o
        .ops
        .transactions_by_correlation("corr-same")
        .await
        .unwrap();
    let ids: Vec<&str> = by_corr.iter().map(|t| t.transaction_id.as_str()).collect();
    assert_eq!(ids, expected[..2], "the two newest of one correlation id");

    if let Backend::Sqlite { .. } = &*b {
        let texts = b
            .raw(
                "SELECT created_at FROM op_transaction UNION ALL SELECT ack_at FROM op_transaction",
            )
            .await;
        assert_eq!(texts.len(), 10);
        assert!(
            texts.iter().all(|t| t.len() == 27 && t.ends_with('Z')),
            "one width: {texts:?}"
        );
    }
}

async fn purge_deletes_only_what_finished_before_the_cutoff(b: Arc<Backend>) {
    let o = b.open(&key(1)).await;
    let long_ago = now() - Duration::days(10);
    let later = now() + Duration::hours(1);
    for id in ["old_done", "old_open", "new_done"] {
        let mut t = txn(id, "s", later);
        t.created_at = long_ago;
        t.updated_at = long_ago;
        o.ops.insert_transaction(&t).await.unwrap();
    }
    let mut cb = callback("s", "cb-old", "on-search", Some("old_done"));
    cb.received_at = long_ago;
    o.ops.insert_callback(&cb).await.unwrap();
    o.ops
        .insert_callback(&callback("s", "cb-new", "on-search", Some("new_done")))
        .await
        .unwrap();
    o.ops
        .advance_transaction("old_done", TransactionState::Completed, long_ago, None)
        .await
        .unwrap();
    o.ops
        .advance_transaction("new_done", TransactionState::Completed, now(), None)
        .await
        .unwrap();
    let mut old_notify = callback("s", "n-old", "notify", None);
    old_notify.received_at = long_ago;
    o.ops.insert_callback(&old_notify).await.unwrap();
    o.ops
        .insert_callback(&callback("s", "n-new", "notify", None))
        .await
        .unwrap();

    let cutoff = now() - Duration::days(1);
    let events_before = o
        .ops
        .list_events(&dci_client::events::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let r = o.ops.purge_before(cutoff).await.unwrap();
    assert_eq!(r.transactions, 1, "{r:?}");
    assert_eq!(
        r.callbacks, 2,
        "the finished one's callback and the old notification: {r:?}"
    );
    assert!(o.ops.get_transaction("old_done").await.unwrap().is_none());
    assert!(o.ops.callbacks_for("old_done").await.unwrap().is_empty());
    assert!(o.ops.get_callback("s", "n-old").await.unwrap().is_none());
    // Still waiting (however old), finished recently, received recently: kept.
    assert!(o.ops.get_transaction("old_open").await.unwrap().is_some());
    assert_eq!(o.ops.callbacks_for("new_done").await.unwrap().len(), 1);
    assert!(o.ops.get_callback("s", "n-new").await.unwrap().is_some());
    let events_after = o
        .ops
        .list_events(&dci_client::events::EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        events_before.len() as u64 - r.events,
        events_after.len() as u64
    );
    assert!(events_after.iter().all(|e| e.created_at >= cutoff));
    // Nothing left to purge.
    assert_eq!(
        o.ops.purge_before(cutoff).await.unwrap(),
        dci_client::ops::PurgeReport::default()
    );
}

async fn changes_are_published_once_committed(b: Arc<Backend>) {
    use dci_client::changes::Change;
    let o = b.open(&key(1)).await;
    let mut feed = o.ops.changes().expect("both stores publish their changes");
    o.ops
        .insert_transaction(&txn("t1", "s", now() + Duration::hours(1)))
        .await
        .unwrap();
    o.ops
        .advance_transaction("t1", TransactionState::Completed, now(), None)
        .await
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next());
    assert_eq!(next.await.unwrap(), Some(Change::Transaction("t1".into())));
    let source = dci_client::DataSourceInput {
        code: "crvs".into(),
        name: "CRVS".into(),
        registry_type: "crvs".into(),
        base_url: "http://127.0.0.1:9/crvs".into(),
        auth: Some("none".into()),
        sender_id: Some("spmis".into()),
        ..dci_client::DataSourceInput::default()
    }
    .validate()
    .unwrap();
    o.store.create_data_source(&source).await.unwrap();
    o.store.set_active("crvs", false).await.unwrap();
    for _ in 0..2 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next());
        assert_eq!(next.await.unwrap(), Some(Change::Source("crvs".into())));
    }
    assert_eq!(feed.shared(), matches!(*b, Backend::Pg { .. }));
}

async fn bodies_are_sealed_at_rest_and_plain_old_ones_still_read(b: Arc<Backend>) {
    let o = b.open(&key(1)).await;
    let mut t = txn("t1", "s", now() + Duration::hours(1));
    t.request = json!({"message": {"search_request": [{"name": "Jane Doe"}]}});
    o.ops.insert_transaction(&t).await.unwrap();
    let mut cb = callback("s", "m1", "notify", None);
    cb.body = json!({"message": {"records": [{"name": "Jane Doe"}]}});
    o.ops.insert_callback(&cb).await.unwrap();
    let mut other = callback("s", "m2", "notify", None);
    other.body = json!({"message": {"records": [{"name": "John Roe"}]}});
    o.ops.insert_callback(&other).await.unwrap();

    let at_rest = [
        b.raw("SELECT request FROM op_transaction").await,
        b.raw("SELECT body FROM op_callback").await,
    ]
    .concat();
    assert_eq!(at_rest.len(), 3);
    for text in &at_rest {
        assert!(text.starts_with("sealed:v1:"), "{text}");
        assert!(!text.contains("Doe") && !text.contains("Roe"), "{text}");
    }
    let read = o.ops.get_transaction("t1").await.unwrap().unwrap();
    assert_eq!(read.request, t.request);
    assert_eq!(
        o.ops.get_callback("s", "m1").await.unwrap().unwrap().body,
        cb.body
    );

    // A body stored before bodies were sealed (plain JSON) still reads.
    b.raw(
        "UPDATE op_callback SET body = '{\"plain\": true}' WHERE message_id = 'm2' RETURNING body",
    )
    .await;
    assert_eq!(
        o.ops.get_callback("s", "m2").await.unwrap().unwrap().body,
        json!({"plain": true})
    );
    // A sealed body moved onto another row does not open there.
    b.raw(
        "UPDATE op_callback SET body = (SELECT body FROM op_callback WHERE message_id = 'm1') \
         WHERE message_id = 'm2' RETURNING body",
    )
    .await;
    assert!(o.ops.get_callback("s", "m2").await.is_err());
    b.raw("UPDATE op_callback SET body = '{}' WHERE message_id = 'm2' RETURNING body")
        .await;

    // Rotation re-seals them under the new key, and seals the plain one.
    o.store.rotate_master_key(key(2)).await.unwrap();
    let again = b.open(&key(2)).await;
    assert_eq!(
        again
            .ops
            .get_transaction("t1")
            .await
            .unwrap()
            .unwrap()
            .request,
        t.request
    );
    assert_eq!(
        again
            .ops
            .get_callback("s", "m1")
            .await
            .unwrap()
            .unwrap()
            .body,
        cb.body
    );
    let id2 = dci_store::key_id(&key(2));
    for text in b.raw("SELECT body FROM op_callback").await {
        assert!(text.starts_with(&format!("sealed:v1:{id2}:")), "{text}");
    }
    assert_eq!(
        again
            .ops
            .get_callback("s", "m2")
            .await
            .unwrap()
            .unwrap()
            .body,
        json!({})
    );
}

/// A job's lease admits one holder at a time: taken when free, renewed by its holder, refused
/// to another until it expires, ends, or its holder is named stale; only the holder's
/// checkpoint is saved; a stopped job's lease is free; concurrent takers: exactly one wins.
async fn bulk_job_leases_admit_one_holder_at_a_time(b: Arc<Backend>) {
    use dci_client::bulk::{Checkpoint, JobState};
    let o = b.open(&key(1)).await;
    o.ops.create_bulk_job(&bulk_job("l1", now())).await.unwrap();
    let t0 = now();
    let secs = move |n: i64| t0 + Duration::seconds(n);
    assert!(
        o.ops
            .take_bulk_lease("nope", "a", secs(30), t0, None)
            .await
            .unwrap()
            .is_none()
    );
    let got = o
        .ops
        .take_bulk_lease("l1", "a", secs(30), t0, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.holder, "a");
    assert_eq!(got.until, Some(secs(30)));
    assert!(!got.is_free(secs(29)) && got.is_free(secs(30)));
    // Another holder is refused while the lease runs, and told who holds it.
    let refused = o
        .ops
        .take_bulk_lease("l1", "b", secs(40), secs(10), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refused.holder, "a");
    assert_eq!(refused.until, Some(secs(30)));
    // The holder renews.
    let renewed = o
        .ops
        .take_bulk_lease("l1", "a", secs(50), secs(20), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renewed.holder.as_str(), renewed.until),
        ("a", Some(secs(50)))
    );
    // Only the holder's checkpoint is saved; another is told who holds the job.
    let cp = Checkpoint {
        rows_done: 10,
        ..Checkpoint::default()
    };
    assert_eq!(
        o.ops
            .save_bulk_checkpoint("l1", "b", &cp, secs(21))
            .await
            .unwrap(),
        Some((JobState::Running, Some("a".into())))
    );
    assert_eq!(
        o.ops.get_bulk_job("l1").await.unwrap().unwrap().checkpoint,
        Checkpoint::default()
    );
    // A holder known dead is taken over before the expiry.
    let taken = o
        .ops
        .take_bulk_lease("l1", "b", secs(60), secs(25), Some("a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.holder, "b");
    assert_eq!(
        o.ops
            .save_bulk_checkpoint("l1", "a", &cp, secs(26))
            .await
            .unwrap(),
        Some((JobState::Running, Some("b".into()))),
        "the old holder's checkpoint is fenced off"
    );
    // After the expiry anyone may take it.
    let expired = o
        .ops
        .take_bulk_lease("l1", "c", secs(200), secs(60), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expired.holder, "c");
    // Released: free at once, the holder's name kept for people.
    o.ops.release_bulk_lease("l1", "b").await.unwrap();
    assert_eq!(
        o.ops
            .get_bulk_job("l1")
            .await
            .unwrap()
            .unwrap()
            .lease
            .unwrap()
            .until,
        Some(secs(200)),
        "a release by a former holder changes nothing"
    );
    o.ops.release_bulk_lease("l1", "c").await.unwrap();
    let lease = o
        .ops
        .get_bulk_job("l1")
        .await
        .unwrap()
        .unwrap()
        .lease
        .unwrap();
    assert_eq!((lease.holder.as_str(), lease.until), ("c", None));
    assert!(lease.is_free(t0));
    // A job that stops (interrupted, failed, …) ends its lease.
    o.ops
        .take_bulk_lease("l1", "d", secs(300), secs(70), None)
        .await
        .unwrap();
    o.ops
        .set_bulk_job_state("l1", JobState::Interrupted, Some("SIGINT"), secs(71))
        .await
        .unwrap();
    let lease = o
        .ops
        .get_bulk_job("l1")
        .await
        .unwrap()
        .unwrap()
        .lease
        .unwrap();
    assert_eq!((lease.holder.as_str(), lease.until), ("d", None));

    // Eight processes race for a free lease: exactly one holds it.
    let ops = o.ops.clone();
    let racers = (0..8).map(|i| {
        let ops = ops.clone();
        tokio::spawn(async move {
            let me = format!("racer-{i}");
            let l = ops
                .take_bulk_lease("l1", &me, secs(400), secs(80), None)
                .await
                .unwrap()
                .unwrap();
            l.holder == me
        })
    });
    let mut winners = 0;
    for r in racers.collect::<Vec<_>>() {
        winners += usize::from(r.await.unwrap());
    }
    assert_eq!(winners, 1);
}
