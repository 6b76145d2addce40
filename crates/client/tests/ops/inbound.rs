//! Typed inbound on real ingest (SQLite, callbacks over HTTP) and on real HTTP replies
//! (wiremock): header-only callbacks, `rcvd` / `pdng`, tolerated deviations recorded, DR
//! support as the spec shapes it.

use std::time::Duration;

use dci_client::OpsStore;
use dci_client::ops::{
    CallbackFilter, SearchQuery, SearchSpec, SubscriptionState, TransactionState, TxnStatusQuery,
    list_subscriptions,
};
use dci_client::registries::{DrClient, IdRef};
use dci_client::{AuthConfig, DataSource, Store};
use dci_protocol::RegistryType;
use dci_sandbox::{CallbackFaults, FaultTarget, Faults};
use serde_json::{Value, json};
use time::OffsetDateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Env, found_id, source_for};

fn now() -> String {
    dci_protocol::build::rfc3339(OffsetDateTime::now_utc())
}

/// A callback header from the source's registry.
fn header(source: &DataSource, action: &str, status: &str) -> Value {
    json!({"version": "1.0.0", "message_id": dci_protocol::build::new_id(), "message_ts": now(),
        "action": action, "status": status, "sender_id": source.receiver_id.clone().unwrap()})
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

/// An env whose CRVS registry never sends its own callbacks (the test sends them).
async fn quiet_env() -> (Env, DataSource) {
    let env = Env::default().await;
    env.sb
        .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
            delay_ms: None,
            duplicate: None,
            fail: Some(true),
        }))
        .unwrap();
    let source = env.source(RegistryType::Crvs).await;
    (env, source)
}

fn url(source: &DataSource, route: &str) -> String {
    format!("{}{route}", source.callback_url_with_secret().unwrap())
}

#[tokio::test]
async fn a_header_only_rjct_on_search_is_accepted_and_fails_the_transaction_with_its_reason() {
    let (env, source) = quiet_env().await;
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let id = found_id(&env.sb, RegistryType::Crvs);
    let sub = ops
        .submit_search_async(&SearchQuery::one(SearchSpec::by_id(&id).unwrap()))
        .await
        .unwrap();
    assert_eq!(sub.state, TransactionState::Acknowledged);

    let mut h = header(&source, "on-search", "rjct");
    h["status_reason_code"] = json!("rjct.search_criteria.invalid");
    h["status_reason_message"] = json!("the query is not supported");
    let (status, ack) = post(&url(&source, "/registry/on-search"), &json!({"header": h})).await;
    assert_eq!(
        status, 200,
        "a spec-valid header-only callback is accepted: {ack}"
    );
    assert_eq!(ack["message"]["ack_status"], "ACK");

    let v = ops
        .await_transaction(&sub.transaction_id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(v.state, TransactionState::Failed);
    let reason = v.error.expect("the header's reason");
    assert_eq!(reason.code.as_deref(), Some("rjct.search_criteria.invalid"));
    assert_eq!(
        reason.message.as_deref(),
        Some("the query is not supported")
    );
    assert!(v.items.is_empty());
    let cb = &v.callbacks[0];
    assert!(cb.header_only);
    assert_eq!(cb.status.as_deref(), Some("rjct"));
    assert!(
        cb.tolerated
            .iter()
            .any(|t| t.contains("matched to the only open search transaction")),
        "{:?}",
        cb.tolerated
    );
}

#[tokio::test]
async fn rcvd_and_pdng_callbacks_acknowledge_but_never_complete() {
    let (env, source) = quiet_env().await;
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let id = found_id(&env.sb, RegistryType::Crvs);
    let sub = ops
        .submit_search_async(&SearchQuery::one(
            SearchSpec::by_id(&id).unwrap().reference_id("r1"),
        ))
        .await
        .unwrap();
    let on_search = url(&source, "/registry/on-search");
    // Header-only rcvd, then a pdng with an (empty) message naming the transaction.
    let (s, _) = post(
        &on_search,
        &json!({"header": header(&source, "on-search", "rcvd")}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(
        &on_search,
        &json!({"header": header(&source, "on-search", "pdng"),
                "message": {"transaction_id": sub.transaction_id, "correlation_id": "c",
                            "search_response": []}}),
    )
    .await;
    assert_eq!(s, 200);
    let v = ops.transaction(&sub.transaction_id).await.unwrap();
    assert_eq!(v.state, TransactionState::Acknowledged, "{v:?}");
    assert_eq!(v.callbacks.len(), 2);
    assert!(v.items.is_empty());
    let e = ops
        .await_transaction(&sub.transaction_id, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");

    // The answer itself completes it.
    let (s, ack) = post(
        &on_search,
        &json!({"header": header(&source, "on-search", "succ"),
                "message": {"transaction_id": sub.transaction_id, "correlation_id": "c",
                            "search_response": [{"reference_id": "r1", "timestamp": now(),
                                "status": "succ", "data": {"reg_records": [{"id": "x"}]}}]}}),
    )
    .await;
    assert_eq!(s, 200, "{ack}");
    let v = ops
        .await_transaction(&sub.transaction_id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(v.state, TransactionState::Completed);
    assert_eq!(v.items[0].records, vec![json!({"id": "x"})]);
}

#[tokio::test]
async fn tolerated_deviations_are_recorded_with_the_callback() {
    let (env, source) = quiet_env().await;
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let id = found_id(&env.sb, RegistryType::Crvs);
    let sub = ops
        .submit_search_async(&SearchQuery::one(
            SearchSpec::by_id(&id).unwrap().reference_id("r1"),
        ))
        .await
        .unwrap();
    let mut h = header(&source, "on-search", "SUCC");
    h["total_count"] = json!("1");
    h["completed_count"] = json!("1");
    h["meta"] = json!("");
    // search_response as one object, pagination numbers as strings.
    let body = json!({"header": h, "message": {"transaction_id": sub.transaction_id,
        "correlation_id": "c", "search_response": {"reference_id": "r1", "timestamp": now(),
            "status": "succ", "data": {"reg_records": {"id": "only"}},
            "pagination": {"page_size": "10", "page_number": "1", "total_count": "1"}}}});
    let (s, ack) = post(&url(&source, "/registry/on-search"), &body).await;
    assert_eq!(s, 200, "{ack}");
    let v = ops
        .await_transaction(&sub.transaction_id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(v.state, TransactionState::Completed);
    assert_eq!(v.items[0].records, vec![json!({"id": "only"})]);
    assert_eq!(v.items[0].pagination.unwrap().total_count, 1);
    let cb = &v.callbacks[0];
    assert_eq!(cb.status.as_deref(), Some("succ"));
    assert_eq!(cb.completed_count, Some(1));
    let paths: Vec<&str> = cb
        .tolerated
        .iter()
        .map(|t| t.split(':').next().unwrap())
        .collect();
    for p in [
        "header.total_count",
        "header.completed_count",
        "header.meta",
        "message.search_response",
        "message.search_response[0].pagination.page_size",
    ] {
        assert!(paths.contains(&p), "{p} not in {:?}", cb.tolerated);
    }
    // Stored, not recomputed: the store gives the same list back.
    let stored = env.store.callbacks_for(&sub.transaction_id).await.unwrap();
    assert_eq!(stored[0].tolerated, cb.tolerated);
}

#[tokio::test]
async fn an_ambiguous_header_only_callback_is_stored_unmatched() {
    let (env, source) = quiet_env().await;
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let id = found_id(&env.sb, RegistryType::Crvs);
    let q = SearchQuery::one(SearchSpec::by_id(&id).unwrap());
    let a = ops.submit_search_async(&q).await.unwrap();
    let b = ops.submit_search_async(&q).await.unwrap();
    let (s, _) = post(
        &url(&source, "/registry/on-search"),
        &json!({"header": header(&source, "on-search", "rjct")}),
    )
    .await;
    assert_eq!(s, 200);
    for t in [&a, &b] {
        let v = ops.transaction(&t.transaction_id).await.unwrap();
        assert_eq!(v.state, TransactionState::Acknowledged, "{v:?}");
        assert!(v.callbacks.is_empty());
    }
    let all = env
        .store
        .list_callbacks(&CallbackFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].transaction_id, None);
    assert!(
        all[0].tolerated[0].contains("2 search transactions are open"),
        "{:?}",
        all[0].tolerated
    );
}

#[tokio::test]
async fn a_header_only_succ_completes_an_unsubscribe_but_not_a_search() {
    let (env, source) = quiet_env().await;
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let unsub = ops.unsubscribe(&["SUB-1".to_owned()]).await.unwrap();
    let (s, _) = post(
        &url(&source, "/registry/on-unsubscribe"),
        &json!({"header": header(&source, "on-unsubscribe", "succ")}),
    )
    .await;
    assert_eq!(s, 200);
    let v = ops.transaction(&unsub.transaction_id).await.unwrap();
    assert_eq!(v.state, TransactionState::Completed);
    let subs = list_subscriptions(env.store.as_ref(), Some(&source.code))
        .await
        .unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(
        (subs[0].code.as_str(), subs[0].state),
        ("SUB-1", SubscriptionState::Unsubscribed)
    );

    let id = found_id(&env.sb, RegistryType::Crvs);
    let search = ops
        .submit_search_async(&SearchQuery::one(SearchSpec::by_id(&id).unwrap()))
        .await
        .unwrap();
    let mut h = header(&source, "on-search", "succ");
    h["total_count"] = json!(1);
    h["completed_count"] = json!(1);
    let (s, _) = post(&url(&source, "/registry/on-search"), &json!({"header": h})).await;
    assert_eq!(s, 200);
    let v = ops.transaction(&search.transaction_id).await.unwrap();
    // No results arrived: not "completed, nothing found".
    assert_eq!(v.state, TransactionState::Acknowledged, "{v:?}");
    assert!(
        v.callbacks[0]
            .tolerated
            .iter()
            .any(|t| t.contains("delivers no results")),
        "{:?}",
        v.callbacks[0].tolerated
    );
}

/// A data source whose registry is a wiremock server.
async fn mock_source(env: &Env, registry: RegistryType, code: &str) -> (MockServer, DataSource) {
    let server = MockServer::start().await;
    let mut source = source_for(&env.sb, registry, code, &env.receiver.base);
    source.base_url = server.uri();
    source.auth = AuthConfig::None;
    env.store.create_data_source(&source).await.unwrap();
    (server, source)
}

fn reply_header(action: &str, status: &str) -> Value {
    json!({"version": "1.0.0", "message_id": "reply-1", "message_ts": now(), "action": action,
        "status": status, "total_count": 1, "completed_count": 0})
}

#[tokio::test]
async fn a_header_only_rcvd_reply_reads_as_received_pending_never_an_empty_success() {
    let env = Env::default().await;
    let (server, source) = mock_source(&env, RegistryType::Crvs, "slow_reg").await;
    Mock::given(method("POST"))
        .and(path("/registry/sync/search"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"header": reply_header("on-search", "rcvd")})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/registry/sync/txn/status"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"header": reply_header("txn-on-status", "pdng")})),
        )
        .mount(&server)
        .await;
    let ops = env.ops(source);
    let r = ops
        .search(&SearchQuery::one(SearchSpec::by_id("UIN:1").unwrap()))
        .await
        .unwrap();
    assert!(r.is_pending(), "{r:?}");
    assert_eq!(r.status.as_deref(), Some("rcvd"));
    assert_eq!(
        r.items.len(),
        1,
        "one whole-message entry, not an empty list"
    );
    assert_eq!(r.items[0].status, "rcvd");
    assert!(!r.items[0].is_success());
    let said = r.items[0].reason.as_ref().unwrap().to_string();
    assert!(said.contains("received, pending"), "{said}");

    let t = ops
        .txn_status(&TxnStatusQuery::transaction("t-1".to_owned()))
        .await
        .unwrap();
    assert_eq!(t.status.as_deref(), Some("pdng"));
    assert_eq!(t.items[0].status, "pdng");
    assert!(t.items[0].is_pending());
}

#[tokio::test]
async fn dr_support_follows_the_spec_and_a_pending_reply_is_not_an_answer() {
    let env = Env::default().await;
    let (server, source) = mock_source(&env, RegistryType::Dr, "dr_mock").await;
    // The spec's GetDisabilitySupportResponse example: reg_records is an array of arrays.
    let support = json!({"header": reply_header("on-search", "succ"),
        "message": {"transaction_id": "t", "correlation_id": "c", "search_response": [{
            "reference_id": "r", "timestamp": now(), "status": "succ",
            "data": {"version": "1.0.0", "reg_records": [[{
                "human_assistance": {"type": "mobility", "frequency": "Daily",
                    "support_status": "Needed",
                    "caregiver": {"id": "Person_001", "name": "John Doe", "identifier": "12345"},
                    "relationship": "Parent", "registration_date": "2024-01-15T10:00:00Z",
                    "last_updated": "2024-09-20T12:30:00Z"},
                "assistive_technology": [{"type": "wheelchair", "support_status": "Provided"}],
                "housing_support": [], "medical_care": ["physiotherapy"], "animal_assistance": [],
                "registration_date": "2023-05-20T09:00:00Z",
                "last_updated": "2024-10-01T11:15:00Z"}]]}}]}});
    Mock::given(method("POST"))
        .and(path("/registry/sync/get-disability-support"))
        .respond_with(ResponseTemplate::new(200).set_body_json(support))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/registry/sync/get-disability-support"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"header": reply_header("on-search", "pdng")})),
        )
        .mount(&server)
        .await;
    let dr = DrClient::new(env.ops(source)).unwrap();
    let id = IdRef::new("UIN", "1");
    let s = dr.disability_support(&id).await.unwrap().expect("support");
    assert_eq!(s.human_assistance, Some(true));
    let h = s.human_assistance_detail.as_ref().unwrap();
    assert_eq!(h.kind.as_deref(), Some("mobility"));
    assert_eq!(h.frequency.as_deref(), Some("Daily"));
    assert_eq!(h.support_status.as_deref(), Some("Needed"));
    assert_eq!(h.relationship.as_deref(), Some("Parent"));
    let cg = h.caregiver.as_ref().unwrap();
    assert_eq!(
        (
            cg.id.as_deref(),
            cg.name.as_deref(),
            cg.identifier.as_deref()
        ),
        (Some("Person_001"), Some("John Doe"), Some("12345"))
    );
    assert_eq!(s.assistive_technology, ["wheelchair"]);
    assert_eq!(s.medical_care, ["physiotherapy"]);
    assert!(s.housing_support.is_empty() && s.animal_assistance.is_empty());
    assert_eq!(s.needs.len(), 3);
    assert_eq!(s.last_updated.as_deref(), Some("2024-10-01T11:15:00Z"));

    let e = dr.disability_support(&id).await.unwrap_err();
    assert!(e.is_pending(), "{e}");
    assert!(e.to_string().contains("not answered yet"), "{e}");
}
