//! A fault storm: 30 % mixed faults from the sandbox on the registry (HTTP 500, 503, 429 with
//! `Retry-After`, connection resets, dropped replies, all slowed down) and on its token
//! endpoint (500, 503, resets; tokens revoked during the run so that new ones must be fetched
//! through the faults). Counted against the sandbox's own request log:
//!
//! - idempotent calls (sync searches) that end with the right result: at least 99.9 %;
//! - non-idempotent calls (async searches) the registry received more than once: 0;
//! - outcomes reported wrongly: 0 — a call reported failed (or stored `failed`) that the
//!   registry processed, or reported acknowledged (or stored `completed`) that it did not.
//!
//! Every async search ends `completed` (its callback, or txn-status) or `failed` as never
//! arrived, after the recovery pass.

use std::collections::HashMap;

use dci_client::ops::{SearchQuery, SearchSpec, TransactionState, transaction_view};
use dci_client::{Engine, OpsStore, RecoverySettings, RetrySettings, Store};
use dci_protocol::RegistryType;
use dci_sandbox::{FaultTarget, Faults};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::support::{Env, found_id, source_for};

const SYNC_CALLS: usize = 600;
const ASYNC_CALLS: usize = 120;
const CONCURRENCY: usize = 12;
/// Each of five faults in turn: 1 − 0.93⁵ ≈ 30 % of requests get one.
const EACH: f64 = 0.07;

fn storm(target: FaultTarget) -> Faults {
    let f = Faults::new(target)
        .latency_ms(3)
        .reset_ratio(EACH)
        .http_429(EACH, 0)
        .http_503_ratio(EACH)
        .http_500_ratio(EACH);
    if target == FaultTarget::Token {
        f
    } else {
        f.drop_reply_ratio(EACH)
    }
}

/// Transaction ids of the async searches the registry processed (answered 2xx, or so
/// answered and the reply dropped), and how often each was received at all.
fn registry_log(env: &Env) -> (HashMap<String, usize>, HashMap<String, usize>) {
    let (mut processed, mut received) = (HashMap::new(), HashMap::new());
    for r in env.sb.requests() {
        if r.endpoint != "/crvs/registry/search" {
            continue;
        }
        let Some(id) = r
            .body
            .as_ref()
            .and_then(|b| b.pointer("/message/transaction_id"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        *received.entry(id.to_owned()).or_insert(0) += 1;
        // Answered 2xx, or answered 2xx and the reply dropped (a dropped 401 was refused).
        if (200..300).contains(&r.dropped_status.unwrap_or(r.status)) {
            *processed.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    (processed, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_percent_fault_storm_loses_nothing_duplicates_nothing_and_misreports_nothing() {
    let env = Env::default().await;
    let mut s = source_for(&env.sb, RegistryType::Crvs, "crvs_main", &env.receiver.base);
    // Per-source retry policy: 10 retries (0.3¹¹ < 2·10⁻⁶ per call), a quota that lets the
    // storm through.
    s.retry = RetrySettings {
        max_retries: Some(10),
        quota: Some(100_000),
    };
    s.recovery = RecoverySettings {
        callback_within_secs: 5,
        poll_interval_secs: 5,
        give_up_after_secs: 600,
    };
    env.store.create_data_source(&s).await.unwrap();
    let engine = Engine::builder(env.store.clone(), env.store.clone())
        .queued_audit(false)
        .poll_interval(std::time::Duration::from_millis(20))
        .build();
    let ops = engine.operations("crvs_main").await.unwrap();
    let id = found_id(&env.sb, RegistryType::Crvs);
    let q = SearchQuery::one(SearchSpec::by_id(&id).unwrap());

    env.sb.set_faults(storm(FaultTarget::Crvs)).unwrap();
    env.sb.set_faults(storm(FaultTarget::Token)).unwrap();

    // Idempotent: sync searches, each must return the record.
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let (ops, q) = (ops.clone(), q.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors) = (0usize, Vec::new());
            for _ in (worker..SYNC_CALLS).step_by(CONCURRENCY) {
                match ops.search(&q).await {
                    Ok(r) if r.items.len() == 1 && r.items[0].records.len() == 1 => ok += 1,
                    Ok(r) => errors.push(format!("wrong result: {:?}", r.items)),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (ok, errors)
        }));
    }
    // New tokens must come through the faulty token endpoint.
    while !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        env.sb
            .set_faults(storm(FaultTarget::Token).revoke_tokens())
            .unwrap();
    }
    let (mut sync_ok, mut sync_errors) = (0usize, Vec::new());
    for t in tasks {
        let (ok, errors) = t.await.unwrap();
        sync_ok += ok;
        sync_errors.extend(errors);
    }

    // Non-idempotent: async searches, never resent; what the caller is told is recorded.
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let (ops, q) = (ops.clone(), q.clone());
        tasks.push(tokio::spawn(async move {
            let mut told = Vec::new();
            for _ in (worker..ASYNC_CALLS).step_by(CONCURRENCY) {
                told.push(match ops.submit_search_async(&q).await {
                    Ok(sub) => (sub.transaction_id, "acknowledged".to_owned()),
                    Err(e) if e.is_outcome_unknown() => {
                        (e.transaction_id().unwrap().to_owned(), "unknown".to_owned())
                    }
                    Err(e) => (
                        e.transaction_id().unwrap_or_default().to_owned(),
                        format!("failed: {e}"),
                    ),
                });
            }
            told
        }));
    }
    let mut told = Vec::new();
    for t in tasks {
        told.extend(t.await.unwrap());
    }
    env.sb.clear_faults();

    // Callbacks arrive (not faulted); what has none is recovered from txn-status, and what
    // never arrived is failed once settled.
    let ids: Vec<String> = env
        .store
        .list_transactions(&dci_client::ops::TransactionFilter {
            source_code: Some("crvs_main".into()),
            state: None,
            limit: 10_000,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.transaction_id)
        .collect();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut open = 0;
        for id in &ids {
            let v = transaction_view(env.store.as_ref(), id)
                .await
                .unwrap()
                .unwrap();
            if !v.state.is_terminal() {
                open += 1;
            }
        }
        if open == 0 || tokio::time::Instant::now() > until {
            break;
        }
        let later = OffsetDateTime::now_utc() + Duration::seconds(60);
        engine.recover_transactions_at(later).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let (processed, received) = registry_log(&env);
    // Received more than once and processed more than once: a duplicate. (A request refused
    // before processing — 401 with a revoked token — may be sent again with a fresh token.)
    let duplicates: Vec<_> = processed.iter().filter(|(_, n)| **n > 1).collect();
    let resent = received.values().filter(|n| **n > 1).count();
    let mut wrong = Vec::new();
    let mut states = HashMap::<TransactionState, usize>::new();
    // What each caller was told: acknowledged / unknown with the transaction id; a definite
    // failure without it (the registry refused it: HTTP 5xx, 429).
    let told_ids: HashMap<&str, &str> = told
        .iter()
        .filter(|(id, _)| !id.is_empty())
        .map(|(id, what)| (id.as_str(), what.as_str()))
        .collect();
    let told_failed = told.iter().filter(|(id, _)| id.is_empty()).count();
    let mut stored_failed_untold = 0;
    for id in &ids {
        let got = processed.contains_key(id);
        let v = transaction_view(env.store.as_ref(), id)
            .await
            .unwrap()
            .unwrap();
        *states.entry(v.state).or_insert(0) += 1;
        let what = told_ids.get(id.as_str()).copied().unwrap_or("failed");
        if !told_ids.contains_key(id.as_str()) {
            stored_failed_untold += 1;
        }
        let told_wrong = match what {
            "acknowledged" => !got,
            w if w.starts_with("failed") => got,
            _ => false,
        };
        let stored_wrong = match v.state {
            TransactionState::Completed => !got,
            TransactionState::Failed => got,
            _ => true,
        };
        if told_wrong || stored_wrong {
            wrong.push(format!(
                "{id}: told {what}, stored {}, registry processed it: {got} ({:?})",
                v.state, v.reason
            ));
        }
    }
    assert_eq!(ids.len(), ASYNC_CALLS, "every submission stored");
    assert_eq!(told_failed, stored_failed_untold, "{told:?}");
    let share = sync_ok as f64 / SYNC_CALLS as f64;
    println!(
        "sync: {sync_ok}/{SYNC_CALLS} correct; async: {} submitted, {states:?}; duplicates {}; wrongly reported {}",
        told.len(),
        duplicates.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "outcomes reported wrongly: {wrong:#?}");
    assert!(
        share >= 0.999,
        "{sync_ok} of {SYNC_CALLS} idempotent calls ended correctly: {sync_errors:#?}"
    );
    assert!(duplicates.is_empty(), "sent more than once: {duplicates:?}");
    assert!(wrong.is_empty(), "outcomes reported wrongly: {wrong:#?}");
    println!("sent again after a refusal: {resent}");
    assert!(
        states
            .get(&TransactionState::Completed)
            .copied()
            .unwrap_or(0)
            > ASYNC_CALLS / 2,
        "{states:?}"
    );
}
