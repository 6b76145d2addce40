//! The recovery loop ends every waiting async request with its result or a definite state,
//! under the source's `recovery` settings: a request cut mid-send (stored, never answered)
//! that the registry says it does not have is `failed` (safe to send again); one whose result
//! never comes is `expired` at the give-up time with its reason; the registry is asked only
//! after the expected callback time and then once per poll interval. Time is passed in
//! (`recover_transactions_at`), so nothing sleeps.

use dci_client::ops::{
    Operation, SearchQuery, SearchSpec, TransactionRecord, TransactionState, transaction_view,
};
use dci_client::{Engine, RecoverySettings, RetrySettings, Store};
use dci_protocol::RegistryType;
use dci_sandbox::{CallbackFaults, FaultTarget, Faults};
use time::{Duration, OffsetDateTime};

use crate::support::{Env, found_id, source_for};

/// A CRVS source with these recovery settings and no retries (a lookup that fails, fails fast).
async fn source(env: &Env, recovery: RecoverySettings) -> Engine {
    let mut s = source_for(&env.sb, RegistryType::Crvs, "crvs_main", &env.receiver.base);
    s.recovery = recovery;
    s.retry = RetrySettings {
        max_retries: Some(0),
        quota: None,
    };
    env.store.create_data_source(&s).await.unwrap();
    Engine::builder(env.store.clone(), env.store.clone())
        .queued_audit(false)
        .build()
}

fn query(env: &Env) -> SearchQuery {
    SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap())
}

async fn view(env: &Env, id: &str) -> dci_client::ops::TransactionView {
    transaction_view(env.store.as_ref(), id)
        .await
        .unwrap()
        .unwrap()
}

fn received(env: &Env, id: &str) -> usize {
    env.sb
        .requests()
        .iter()
        .filter(|r| r.endpoint == "/crvs/registry/search")
        .filter(|r| {
            r.body
                .as_ref()
                .and_then(|b| b.pointer("/message/transaction_id"))
                .and_then(|v| v.as_str())
                == Some(id)
        })
        .count()
}

#[tokio::test]
async fn a_request_cut_mid_send_ends_failed_and_safe_to_send_again() {
    let env = Env::default().await;
    let engine = source(&env, RecoverySettings::default()).await;
    let ops = engine.operations("crvs_main").await.unwrap();

    // What a kill between storing and sending leaves: the stored request, never sent.
    let p = ops
        .prepare(&Operation::SearchAsync(query(&env)))
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    ops.store()
        .insert_transaction(&TransactionRecord {
            transaction_id: p.transaction_id.clone(),
            source_code: "crvs_main".into(),
            kind: dci_client::ops::OpKind::Search,
            message_id: p.message_id.clone(),
            reference_ids: p.reference_ids.clone(),
            request: p.envelope.clone(),
            state: TransactionState::Pending,
            ack: None,
            created_at: now,
            deadline: now + Duration::hours(1),
            updated_at: now,
            reason: None,
        })
        .await
        .unwrap();
    // A connection reset before the registry read it: the reply is lost, the outcome unknown.
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).reset_ratio(1.0))
        .unwrap();
    let e = ops.submit_search_async(&query(&env)).await.unwrap_err();
    env.sb.clear_faults();
    let reset = e.transaction_id().unwrap().to_owned();
    assert_eq!(
        view(&env, &reset).await.state,
        TransactionState::Unknown,
        "{e}"
    );

    // While a send could still be under way nothing is decided.
    let r = engine.recover_transactions_at(now).await.unwrap();
    assert_eq!((r.looked_up, r.resolved, r.expired), (0, 0, 0), "{r:?}");
    assert_eq!(
        view(&env, &p.transaction_id).await.state,
        TransactionState::Pending
    );

    // Settled: the registry says it has neither, which is definite.
    let later = now + Duration::try_from(ops.settle_time()).unwrap() + Duration::seconds(1);
    let r = engine.recover_transactions_at(later).await.unwrap();
    assert_eq!((r.looked_up, r.resolved), (2, 2), "{r:?}");
    for id in [&p.transaction_id, &reset] {
        let v = view(&env, id).await;
        assert_eq!(v.state, TransactionState::Failed, "{id}");
        let reason = v.reason.unwrap();
        assert!(reason.contains("never arrived"), "{reason}");
        assert!(reason.contains("safe to send it again"), "{reason}");
        assert_eq!(received(&env, id), 0, "the registry never got {id}");
    }
    let r = engine.recover_transactions_at(later).await.unwrap();
    assert_eq!(r.looked_up, 0, "nothing left waiting");
}

#[tokio::test]
async fn the_registry_is_asked_after_the_expected_callback_time_then_per_poll_interval() {
    let env = Env::default().await;
    let engine = source(
        &env,
        RecoverySettings {
            callback_within_secs: 5,
            poll_interval_secs: 10,
            give_up_after_secs: 60,
        },
    )
    .await;
    let ops = engine.operations("crvs_main").await.unwrap();
    // The callback is lost; the result is at the registry.
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            fail: Some(true),
            ..CallbackFaults::default()
        }))
        .unwrap();
    let sub = ops.submit_search_async(&query(&env)).await.unwrap();
    let t = ops
        .store()
        .get_transaction(&sub.transaction_id)
        .await
        .unwrap()
        .unwrap();
    let give_up = t.deadline - t.created_at;
    assert!(
        (give_up - Duration::seconds(60)).abs() < Duration::milliseconds(5),
        "the source's give-up time: {give_up}"
    );
    let at = |secs: i64| t.created_at + Duration::seconds(secs);

    // Before the expected callback time: not asked.
    let r = engine.recover_transactions_at(at(3)).await.unwrap();
    assert_eq!(r.looked_up, 0, "{r:?}");
    // The registry is down when first asked: no answer, asked again after the poll interval.
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).down(true))
        .unwrap();
    let r = engine.recover_transactions_at(at(6)).await.unwrap();
    assert_eq!((r.looked_up, r.resolved), (1, 0), "{r:?}");
    let r = engine.recover_transactions_at(at(12)).await.unwrap();
    assert_eq!(r.looked_up, 0, "within the poll interval: {r:?}");
    env.sb.clear_faults();
    let r = engine.recover_transactions_at(at(17)).await.unwrap();
    assert_eq!((r.looked_up, r.resolved), (1, 1), "{r:?}");
    let v = view(&env, &sub.transaction_id).await;
    assert_eq!(v.state, TransactionState::Completed);
    assert_eq!(v.items.len(), 1);
    assert_eq!(received(&env, &sub.transaction_id), 1, "sent once");
}

#[tokio::test]
async fn a_result_that_never_comes_is_expired_at_the_give_up_time_with_its_reason() {
    let env = Env::default().await;
    let engine = source(
        &env,
        RecoverySettings {
            callback_within_secs: 5,
            poll_interval_secs: 5,
            give_up_after_secs: 30,
        },
    )
    .await;
    let ops = engine.operations("crvs_main").await.unwrap();
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            fail: Some(true),
            ..CallbackFaults::default()
        }))
        .unwrap();
    let sub = ops.submit_search_async(&query(&env)).await.unwrap();
    assert_eq!(sub.state, TransactionState::Acknowledged);
    // The registry stays unreachable for txn-status.
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).down(true))
        .unwrap();
    let created = OffsetDateTime::now_utc();
    let r = engine
        .recover_transactions_at(created + Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!((r.looked_up, r.expired), (1, 0), "{r:?}");
    assert_eq!(
        view(&env, &sub.transaction_id).await.state,
        TransactionState::Acknowledged
    );
    let r = engine
        .recover_transactions_at(created + Duration::seconds(31))
        .await
        .unwrap();
    assert_eq!(r.expired, 1, "{r:?}");
    let v = view(&env, &sub.transaction_id).await;
    assert_eq!(v.state, TransactionState::Expired);
    let reason = v.reason.clone().unwrap();
    assert!(reason.contains("give_up_after_secs"), "{reason}");
    assert!(reason.contains("no result"), "{reason}");
    // Shown in the view's JSON (what the API and `--json` print).
    assert_eq!(serde_json::to_value(&v).unwrap()["reason"], reason.as_str());
    // Expired is definite: the next passes leave it alone.
    let r = engine
        .recover_transactions_at(created + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!((r.looked_up, r.expired), (0, 0), "{r:?}");
}

#[tokio::test]
async fn a_request_of_a_deleted_source_is_expired_at_its_deadline() {
    let env = Env::default().await;
    let engine = source(&env, RecoverySettings::default()).await;
    let ops = engine.operations("crvs_main").await.unwrap();
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            fail: Some(true),
            ..CallbackFaults::default()
        }))
        .unwrap();
    let sub = ops.submit_search_async(&query(&env)).await.unwrap();
    env.store.delete_data_source("crvs_main").await.unwrap();
    engine.invalidate("crvs_main");
    let now = OffsetDateTime::now_utc();
    let r = engine.recover_transactions_at(now).await.unwrap();
    assert_eq!(r.expired, 0, "not before its deadline");
    let r = engine
        .recover_transactions_at(now + Duration::seconds(3601))
        .await
        .unwrap();
    assert_eq!(r.expired, 1, "{r:?}");
    let v = view(&env, &sub.transaction_id).await;
    assert_eq!(v.state, TransactionState::Expired);
    assert!(v.reason.unwrap().contains("cannot be asked"));
}
