//! A lost reply is not a failure: an async search whose reply the network drops is stored
//! `unknown` (never `failed`), the caller is told its transaction id and not to resend, and the
//! transaction is resolved — by its callback when it comes, or by the engine's recovery pass
//! (a sync txn-status at the registry) when it does not.

use std::time::Duration;

use dci_client::Engine;
use dci_client::ops::{SearchQuery, SearchSpec, TransactionState, transaction_view};
use dci_protocol::RegistryType;
use dci_sandbox::{CallbackFaults, FaultTarget, Faults};

use crate::support::{Env, found_id};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_dropped_reply_is_unknown_then_completed_by_the_callback() {
    let env = Env::default().await;
    let ops = env.ops(env.source(RegistryType::Crvs).await);
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).drop_reply_ratio(1.0))
        .unwrap();
    let q = SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap());
    let e = ops.submit_search_async(&q).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e}");
    let id = e.transaction_id().unwrap().to_owned();
    assert!(e.to_string().contains("do not send it again"), "{e}");
    assert!(!e.to_string().contains("Try again"), "{e}");

    // The registry did process it: its callback completes the stored transaction.
    let view = ops.await_transaction(&id, WAIT).await.unwrap();
    assert_eq!(view.state, TransactionState::Completed);
    assert_eq!(view.items.len(), 1);
    // Sent once: no blind resend.
    let sent = env
        .sb
        .requests()
        .iter()
        .filter(|r| r.endpoint == "/crvs/registry/search")
        .count();
    assert_eq!(sent, 1);
}

#[tokio::test]
async fn a_dropped_reply_and_a_lost_callback_are_recovered_from_txn_status() {
    let env = Env::default().await;
    env.source(RegistryType::Crvs).await;
    let engine = Engine::builder(env.store.clone(), env.store.clone())
        .queued_audit(false)
        .build();
    let ops = engine.operations("crvs_main").await.unwrap();
    env.sb
        .set_faults(
            Faults::new(FaultTarget::Crvs)
                .drop_reply_ratio(1.0)
                .callback(CallbackFaults {
                    fail: Some(true),
                    ..CallbackFaults::default()
                }),
        )
        .unwrap();
    let q = SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap());
    let e = ops.submit_search_async(&q).await.unwrap_err();
    let id = e.transaction_id().unwrap().to_owned();
    let stored = transaction_view(env.store.as_ref(), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, TransactionState::Unknown, "not failed");
    env.sb.clear_faults();

    // No callback will come: after the expected callback time the recovery pass asks the
    // registry and completes it.
    let due = time::OffsetDateTime::now_utc() + ops.source().recovery.callback_within();
    let r = engine.recover_transactions_at(due).await.unwrap();
    assert_eq!((r.looked_up, r.resolved), (1, 1), "{r:?}");
    let view = transaction_view(env.store.as_ref(), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.state, TransactionState::Completed);
    assert_eq!(view.items.len(), 1);
    // A second pass finds nothing left to do.
    let r = engine.recover_transactions_at(due).await.unwrap();
    assert_eq!(r.looked_up, 0);
}
