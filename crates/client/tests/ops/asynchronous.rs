//! Async search, subscribe, unsubscribe and txn status through real callbacks; duplicates,
//! out-of-order parts, a callback that beats the ACK, a restart, timeouts and the txn-status
//! fallback.

use std::sync::Arc;
use std::time::Duration;

use dci_client::ops::callbacks::{CallbackCredentials, ingest_with};
use dci_client::ops::{
    IngestContext, OpKind, RefusalLayer, SearchQuery, SearchSpec, SignatureState, SubscribeSpec,
    SubscriptionState, TransactionState, TxnStatusQuery, expire_overdue, list_notifications,
    list_subscriptions, transaction_view,
};
use dci_client::{OpsStore, Store};
use dci_protocol::RegistryType;
use dci_protocol::build::CallbackBuilder;
use dci_protocol::codes::{Action, RequestStatus};
use dci_protocol::message::{SearchResponse, SearchResponseItem};
use dci_sandbox::{CallbackFaults, FaultTarget, Faults};
use dci_store::SqliteStore;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::support::{Env, found_id, master_key, ops_with, source_for};

const WAIT: Duration = Duration::from_secs(10);

fn event_type(registry: RegistryType) -> &'static str {
    match registry {
        RegistryType::Crvs => "LiveBirth",
        RegistryType::Ibr => "enrollement",
        _ => "REGISTER",
    }
}

#[tokio::test]
async fn async_search_completes_through_the_callback_on_every_registry() {
    let env = Env::default().await;
    for registry in RegistryType::ALL {
        let ops = env.ops(env.source(registry).await);
        let q = SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, registry)).unwrap());
        let sub = ops.submit_search_async(&q).await.unwrap();
        assert_eq!(sub.ack_status, "ACK");
        assert!(sub.correlation_id.is_some());
        let view = ops
            .await_transaction(&sub.transaction_id, WAIT)
            .await
            .unwrap();
        assert_eq!(
            view.state,
            TransactionState::Completed,
            "{registry}: {view:?}"
        );
        assert_eq!(view.kind, OpKind::Search);
        assert_eq!(view.ack.as_ref().unwrap().ack_status, "ACK");
        assert_eq!(view.callbacks.len(), 1);
        assert_eq!(view.items.len(), 1);
        assert!(!view.items[0].records.is_empty(), "{registry}");
    }
    assert!(env.receiver.received().iter().all(|r| r.status == 200));
    env.assert_requests_conform();
}

#[tokio::test]
async fn a_re_sent_callback_is_acknowledged_again_and_stored_once() {
    let env = Env::default().await;
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            delay_ms: None,
            duplicate: Some(true),
            fail: None,
        }))
        .unwrap();
    let ops = env.ops(env.source(RegistryType::Crvs).await);
    let q = SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap());
    let sub = ops.submit_search_async(&q).await.unwrap();
    let view = ops
        .await_transaction(&sub.transaction_id, WAIT)
        .await
        .unwrap();
    assert_eq!(view.state, TransactionState::Completed);
    // Both deliveries have been answered once the sandbox logged them.
    for _ in 0..200 {
        if env.receiver.received().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = env.receiver.received();
    assert_eq!(got.len(), 2, "{got:?}");
    // The sandbox re-sends the same message: ACKed both times, stored once.
    assert!(
        got.iter().all(|r| r.status == 200 && r.code.is_none()),
        "{got:?}"
    );
    let view = ops.transaction(&sub.transaction_id).await.unwrap();
    assert_eq!(view.callbacks.len(), 1);
    env.assert_requests_conform();
}

#[tokio::test]
async fn a_message_id_reused_for_a_different_body_is_refused_in_an_ack_err() {
    let env = Env::default().await;
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            fail: Some(true),
            ..CallbackFaults::default()
        }))
        .unwrap();
    let source = env.source(RegistryType::Crvs).await;
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let q = SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap());
    let sub = ops.submit_search_async(&q).await.unwrap();
    let first = part(&source, &sub.transaction_id, "r1", 1, 2);
    let mut other = part(&source, &sub.transaction_id, "r2", 2, 2);
    other["header"]["message_id"] = first["header"]["message_id"].clone();
    let ctx = IngestContext::new(env.store.clone(), env.store.clone());
    let creds =
        CallbackCredentials::url_secret(source.callbacks.secret.as_ref().unwrap().expose_secret());
    let send = |b: &Value| {
        let bytes = serde_json::to_vec(b).unwrap();
        let (ctx, creds) = (ctx.clone(), creds.clone());
        async move { ingest_with(&ctx, "crvs_main", &bytes, Some(Action::OnSearch), &creds).await }
    };
    send(&first).await.expect("first delivery");
    send(&first)
        .await
        .expect("identical re-send is ACKed again");
    let refused = send(&other).await.unwrap_err();
    assert_eq!(
        (refused.http_status, refused.answer_status, refused.layer),
        (409, 200, RefusalLayer::Dci),
        "{refused:?}"
    );
    assert_eq!(refused.code, "err.request.bad");
    assert!(refused.message.contains("different body"), "{refused}");
    let view = ops.transaction(&sub.transaction_id).await.unwrap();
    assert_eq!(
        view.callbacks.len(),
        1,
        "stored once, the other body not at all"
    );
    let refs: Vec<&str> = view.items.iter().map(|i| i.reference_id.as_str()).collect();
    assert_eq!(refs, ["r1"], "the refused body changed nothing");
}

pub(crate) fn part(
    source: &dci_client::DataSource,
    transaction_id: &str,
    reference_id: &str,
    completed: u64,
    total: u64,
) -> Value {
    let item = SearchResponseItem {
        reference_id: reference_id.into(),
        timestamp: dci_protocol::build::rfc3339(OffsetDateTime::now_utc()),
        status: RequestStatus::Succ,
        status_reason_code: None,
        status_reason_message: None,
        data: Some(serde_json::from_value(json!({"reg_records": [{"id": reference_id}]})).unwrap()),
        pagination: None,
        locale: None,
        extra: Map::new(),
    };
    let mut env = CallbackBuilder::new(source.receiver_id.clone().unwrap())
        .completed_count(completed)
        .on_search(SearchResponse {
            transaction_id: transaction_id.into(),
            correlation_id: "corr-x".into(),
            search_response: vec![item],
            extra: Map::new(),
        })
        .unwrap()
        .to_value();
    env["header"]["total_count"] = json!(total);
    env
}

async fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn results_split_over_callbacks_out_of_order_are_aggregated() {
    let env = Env::default().await;
    // The registry's own callback is dropped: the test sends the parts itself.
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            delay_ms: None,
            duplicate: None,
            fail: Some(true),
        }))
        .unwrap();
    let source = env.source(RegistryType::Crvs).await;
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let id = found_id(&env.sb, RegistryType::Crvs);
    let q = SearchQuery::many([
        SearchSpec::by_id(&id).unwrap().reference_id("r1"),
        SearchSpec::by_id(&id).unwrap().reference_id("r2"),
    ]);
    let sub = ops.submit_search_async(&q).await.unwrap();
    let url = format!(
        "{}/registry/on-search",
        source.callback_url_with_secret().unwrap()
    );
    // Part 2 first.
    let (s, ack) = post(&url, &part(&source, &sub.transaction_id, "r2", 2, 2)).await;
    assert_eq!(s, 200, "{ack}");
    assert_eq!(ack["message"]["ack_status"], "ACK");
    let v = ops.transaction(&sub.transaction_id).await.unwrap();
    assert_eq!(v.state, TransactionState::Partial);
    let e = ops
        .await_transaction(&sub.transaction_id, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    let (s, _) = post(&url, &part(&source, &sub.transaction_id, "r1", 1, 2)).await;
    assert_eq!(s, 200);
    let v = ops
        .await_transaction(&sub.transaction_id, WAIT)
        .await
        .unwrap();
    assert_eq!(v.state, TransactionState::Completed);
    let mut refs: Vec<&str> = v.items.iter().map(|i| i.reference_id.as_str()).collect();
    refs.sort_unstable();
    assert_eq!(refs, ["r1", "r2"]);
    assert_eq!(v.callbacks.len(), 2);

    // A callback for a transaction this source never sent, or with the wrong action for the
    // route, is refused and changes nothing.
    // DCI-level refusals are HTTP 200 with the ACK ERR; an unknown source in the URL, a
    // body that is not a DCI envelope at all keep their HTTP status.
    let (s, body) = post(&url, &part(&source, "t-unknown", "r1", 1, 1)).await;
    assert_eq!(s, 200);
    assert_eq!(body["message"]["ack_status"], "ERR");
    assert_eq!(body["message"]["error"]["code"], "err.request.not_found");
    let wrong_route = format!(
        "{}/registry/notify",
        source.callback_url_with_secret().unwrap()
    );
    let (s, body) = post(
        &wrong_route,
        &part(&source, &sub.transaction_id, "r9", 1, 1),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["message"]["error"]["code"], "err.request.bad");
    let (s, _) = post(
        &format!("{}/callback/nobody/registry/on-search", env.receiver.base),
        &part(&source, &sub.transaction_id, "r9", 1, 1),
    )
    .await;
    assert_eq!(s, 404);
    let mut forged_sender = part(&source, &sub.transaction_id, "r9", 1, 1);
    forged_sender["header"]["sender_id"] = json!("someone-else");
    let (s, body) = post(&url, &forged_sender).await;
    assert_eq!(s, 200);
    assert_eq!(body["message"]["error"]["code"], "err.sender_id.invalid");
    let (s, body) = post(&url, &json!({"not": "an envelope"})).await;
    assert_eq!(s, 200);
    assert_eq!(body["message"]["error"]["code"], "err.request.bad");
    assert_eq!(
        ops.transaction(&sub.transaction_id)
            .await
            .unwrap()
            .callbacks
            .len(),
        2
    );
}

#[tokio::test]
async fn a_callback_that_beats_the_ack_still_matches() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    let env = Env::default().await;
    let registry = MockServer::start().await;
    let mut source = source_for(&env.sb, RegistryType::Crvs, "fast_reg", &env.receiver.base);
    source.base_url = registry.uri();
    source.auth = dci_client::AuthConfig::None;
    env.store.create_data_source(&source).await.unwrap();

    /// Delivers the callback — and waits for the receiver's answer — before answering ACK.
    struct CallbackFirst {
        source: dci_client::DataSource,
    }
    impl Respond for CallbackFirst {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let txn = body["message"]["transaction_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let reference = body["message"]["search_request"][0]["reference_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let url = body["header"]["sender_uri"].as_str().unwrap().to_owned();
            let cb = part(&self.source, &txn, &reference, 1, 1);
            let status = std::thread::spawn(move || {
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(async { post(&url, &cb).await.0 })
            })
            .join()
            .unwrap();
            assert_eq!(status, 200, "the early callback was refused");
            ResponseTemplate::new(202).set_body_json(json!({"message": {
                "ack_status": "ACK", "timestamp": "2026-11-29T06:00:00Z", "correlation_id": "c-late"}}))
        }
    }
    Mock::given(method("POST"))
        .and(path("/registry/search"))
        .respond_with(CallbackFirst {
            source: source.clone(),
        })
        .mount(&registry)
        .await;

    let ops = env.ops(source);
    let sub = ops
        .submit_search_async(&SearchQuery::one(SearchSpec::by_id("UIN:1").unwrap()))
        .await
        .unwrap();
    // Completed before the ACK was even recorded, and the ACK did not move it back.
    assert_eq!(sub.state, TransactionState::Completed);
    let v = ops.transaction(&sub.transaction_id).await.unwrap();
    assert_eq!(v.state, TransactionState::Completed);
    assert_eq!(v.ack.unwrap().correlation_id.as_deref(), Some("c-late"));
    let sent: Vec<Value> = registry
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    for b in sent {
        dci_protocol::conformance::validate_request(RegistryType::Crvs, "/registry/search", &b)
            .unwrap();
    }
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_across_a_restart() {
    let env = Env::default().await;
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            delay_ms: Some(400),
            duplicate: None,
            fail: None,
        }))
        .unwrap();
    let source = env.source(RegistryType::Crvs).await;
    let path = env.dir.path().join("dci.sqlite3");
    let txn_id = {
        // Process 1: submits, then goes away before the callback arrives.
        let store1 = Arc::new(SqliteStore::open_file(&path, &master_key()).await.unwrap());
        let ops1 = ops_with(source.clone(), store1.clone());
        let q =
            SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap());
        let sub = ops1.submit_search_async(&q).await.unwrap();
        assert_eq!(sub.state, TransactionState::Acknowledged);
        store1.close().await;
        sub.transaction_id
    };
    // Process 2: a new handle on the same file sees the callback the receiver stored.
    let store2 = Arc::new(SqliteStore::open_file(&path, &master_key()).await.unwrap());
    let ops2 = ops_with(source, store2.clone());
    let v = ops2.await_transaction(&txn_id, WAIT).await.unwrap();
    assert_eq!(v.state, TransactionState::Completed);
    assert!(!v.items[0].records.is_empty());
    env.assert_requests_conform();
}

#[tokio::test]
async fn overdue_requests_time_out_and_txn_status_fills_a_lost_callback() {
    let env = Env::default().await;
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            delay_ms: None,
            duplicate: None,
            fail: Some(true),
        }))
        .unwrap();
    let ops = env
        .ops(env.source(RegistryType::Crvs).await)
        .with_async_deadline(Duration::from_millis(1));
    let q = SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap());
    let sub = ops.submit_search_async(&q).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let n = expire_overdue(env.store.as_ref(), OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let v = transaction_view(env.store.as_ref(), &sub.transaction_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.state, TransactionState::TimedOut);
    // The callback was lost, but the registry keeps the result for txn status.
    let v = ops
        .await_transaction(&sub.transaction_id, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(v.state, TransactionState::Completed);
    assert_eq!(v.callbacks[0].action, "txn-on-status");
    assert!(!v.items[0].records.is_empty());
    env.assert_requests_conform();
}

#[tokio::test]
async fn subscribe_notify_and_unsubscribe_on_every_registry() {
    let env = Env::default().await;
    for registry in RegistryType::ALL {
        let source = env.source(registry).await;
        let ops = env.ops(source.clone());
        let spec = SubscribeSpec::new(event_type(registry), None).unwrap();
        let sub = ops
            .subscribe(&spec)
            .await
            .unwrap_or_else(|e| panic!("{registry}: {e}"));
        let v = ops
            .await_transaction(&sub.transaction_id, WAIT)
            .await
            .unwrap();
        assert_eq!(v.state, TransactionState::Completed, "{registry}: {v:?}");
        let subs = list_subscriptions(env.store.as_ref(), Some(&source.code))
            .await
            .unwrap();
        assert_eq!(
            subs.len(),
            1,
            "{registry}: {subs:?} {:#}",
            env.store.callbacks_for(&sub.transaction_id).await.unwrap()[0].body
        );
        assert_eq!(subs[0].state, SubscriptionState::Subscribed);
        assert_eq!(subs[0].event_type.as_deref(), Some(event_type(registry)));
        let code = subs[0].code.clone();

        let sent = env.sb.notify(registry, Some(&code)).await;
        assert_eq!(sent, 1, "{registry}");
        let mut notes = Vec::new();
        for _ in 0..250 {
            notes = list_notifications(env.store.as_ref(), Some(&source.code), 10)
                .await
                .unwrap();
            if !notes.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            notes.len(),
            1,
            "{registry}: no notification stored: {:?}",
            env.receiver.received()
        );
        assert_eq!(notes[0].action, "notify");

        let un = ops.unsubscribe(std::slice::from_ref(&code)).await.unwrap();
        let v = ops
            .await_transaction(&un.transaction_id, WAIT)
            .await
            .unwrap();
        assert_eq!(v.state, TransactionState::Completed, "{registry}: {v:?}");
        let subs = list_subscriptions(env.store.as_ref(), Some(&source.code))
            .await
            .unwrap();
        assert_eq!(subs[0].state, SubscriptionState::Unsubscribed, "{registry}");
    }
    env.assert_requests_conform();
}

#[tokio::test]
async fn async_txn_status_arrives_at_on_status() {
    let env = Env::default().await;
    for registry in RegistryType::ALL.into_iter().filter(|r| r.has_txn_status()) {
        let ops = env.ops(env.source(registry).await);
        let first = ops
            .search(&SearchQuery::one(
                SearchSpec::by_id(&found_id(&env.sb, registry)).unwrap(),
            ))
            .await
            .unwrap();
        let sub = ops
            .txn_status_async(&TxnStatusQuery::transaction(first.transaction_id.clone()))
            .await
            .unwrap();
        let v = ops
            .await_transaction(&sub.transaction_id, WAIT)
            .await
            .unwrap();
        assert_eq!(v.state, TransactionState::Completed, "{registry}: {v:?}");
        assert_eq!(v.kind, OpKind::TxnStatus);
        assert_eq!(v.items[0].records, first.items[0].records, "{registry}");
        assert_eq!(v.callbacks[0].signature, SignatureState::NotChecked);
    }
    env.assert_requests_conform();
}

#[tokio::test]
async fn async_calls_without_a_callback_uri_name_the_field() {
    let env = Env::default().await;
    let mut source = env.source(RegistryType::Crvs).await;
    source.callback_uri = None;
    let ops = env.ops(source);
    let e = ops
        .submit_search_async(&SearchQuery::one(SearchSpec::by_id("UIN:1").unwrap()))
        .await
        .unwrap_err();
    assert!(e.is_invalid_input());
    assert!(e.to_string().starts_with("callback_uri:"), "{e}");
    assert!(env.sb.requests().is_empty());
    let none: Vec<_> = env
        .store
        .list_transactions(&Default::default())
        .await
        .unwrap();
    assert!(
        none.is_empty(),
        "nothing is stored for a request that cannot be sent"
    );
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_refused_with_nothing_stored() {
    use dci_client::ops::{CallbackFilter, ingest};

    let env = Env::default().await;
    let source = env.source(RegistryType::Crvs).await;
    let mut ctx = IngestContext::new(env.store.clone(), env.store.clone());
    ctx.max_body_bytes = 64;
    let big = vec![b' '; 65];
    let e = ingest(&ctx, &source.code, &big, Some(Action::OnSearch))
        .await
        .unwrap_err();
    // Transport level: over the limit keeps its HTTP status.
    assert_eq!(
        (e.http_status, e.answer_status, e.code.as_str()),
        (413, 413, "err.request.bad")
    );
    assert_eq!(e.layer, RefusalLayer::Transport);
    ctx.max_body_bytes = 1 << 20;
    for (body, what) in [
        (&b"{not json"[..], "not JSON"),
        (&br#"{"message": {}}"#[..], "header"),
        (&br#"{"header": {"action": "on-search"}}"#[..], "message_id"),
        (
            &br#"{"header": {"message_id": "m", "action": "search"}}"#[..],
            "not a callback",
        ),
        (
            &br#"{"header": {"message_id": "m", "action": "on-search", "sender_id": "dci-sandbox"}}"#[..],
            "message_ts",
        ),
        (
            &br#"{"header": {"message_id": "m", "message_ts": "2025-01-01T00:00:00Z", "action": "on-search", "status": "succ", "sender_id": "dci-sandbox"}, "message": {"search_response": []}}"#[..],
            "transaction_id",
        ),
        (
            &br#"{"header": {"message_id": "m", "message_ts": "2025-01-01T00:00:00Z", "action": "on-search", "status": "succ", "sender_id": "dci-sandbox"}, "message": {"transaction_id": "t", "search_response": [{"reference_id": "r"}]}}"#[..],
            "message.search_response[0]",
        ),
    ] {
        let e = ingest(&ctx, &source.code, body, None).await.unwrap_err();
        assert_eq!(e.http_status, 400, "{what}: {e}");
        // Not JSON is a transport refusal (HTTP 400); a malformed DCI message is answered the
        // DCI way: HTTP 200 with the ACK ERR.
        let (layer, answer) = if what == "not JSON" {
            (RefusalLayer::Transport, 400)
        } else {
            (RefusalLayer::Dci, 200)
        };
        assert_eq!((e.layer, e.answer_status), (layer, answer), "{what}: {e}");
        assert!(e.message.contains(what), "{what}: {e}");
        let ack = serde_json::to_value(e.to_ack(OffsetDateTime::now_utc())).unwrap();
        assert_eq!(ack["message"]["ack_status"], "ERR");
    }
    let stored = env
        .store
        .list_callbacks(&CallbackFilter::default())
        .await
        .unwrap();
    assert!(stored.is_empty());
}
