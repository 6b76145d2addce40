//! Sync search (every registry, every query kind, pages), txn status, dry run, and rejections.

use dci_client::ops::{Operation, SearchQuery, SearchSpec, TxnStatusQuery};
use dci_protocol::RegistryType;
use serde_json::json;

use crate::support::{Env, found_id};

#[tokio::test]
async fn sync_search_by_id_on_every_registry_gives_the_registrys_records_once() {
    let env = Env::default().await;
    for registry in RegistryType::ALL {
        let ops = env.ops(env.source(registry).await);
        let id = found_id(&env.sb, registry);
        let q = SearchQuery::one(SearchSpec::by_id(&id).unwrap().reference_id("ref-1"));
        let r = ops
            .search(&q)
            .await
            .unwrap_or_else(|e| panic!("{registry}: {e}"));
        assert_eq!(r.items.len(), 1, "{registry}");
        let item = &r.items[0];
        assert_eq!(item.reference_id, "ref-1");
        assert!(item.is_success(), "{registry}: {item:?}");
        assert!(!item.records.is_empty(), "{registry}: no record for {id}");
        // The record is the registry's JSON, untouched: it carries the identifier searched for.
        let value = id.split_once(':').map_or(id.as_str(), |(_, v)| v);
        assert!(
            item.records[0].to_string().contains(value),
            "{registry}: {}",
            item.records[0]
        );
        // Held once: the rest of the item is in `raw`, the records are not repeated there.
        assert!(
            item.raw.pointer("/data/reg_records").is_none() && item.raw["data"].is_object(),
            "{registry}: {}",
            item.raw
        );
    }
    env.assert_requests_conform();
}

#[tokio::test]
async fn not_found_and_several_items_in_one_message() {
    let env = Env::default().await;
    let ops = env.ops(env.source(RegistryType::Crvs).await);
    let ex = &env.sb.examples()[&RegistryType::Crvs];
    let missing = format!("{}:{}", ex.not_found.id_type, ex.not_found.id_value);
    let q = SearchQuery::many([
        SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs))
            .unwrap()
            .reference_id("a"),
        SearchSpec::by_id(&missing).unwrap().reference_id("b"),
    ]);
    let r = ops.search(&q).await.unwrap();
    assert_eq!(r.items.len(), 2);
    let a = r.items.iter().find(|i| i.reference_id == "a").unwrap();
    let b = r.items.iter().find(|i| i.reference_id == "b").unwrap();
    assert!(!a.records.is_empty());
    assert!(b.records.is_empty());
    env.assert_requests_conform();
}

#[tokio::test]
async fn expression_predicate_and_crvs_date_range_with_event_type() {
    let env = Env::default().await;
    let social = env.ops(env.source(RegistryType::Social).await);
    let r = social
        .search(&SearchQuery::one(
            SearchSpec::expression(json!({"$and": [{"poverty_score": {"$lt": 100}}]}))
                .unwrap()
                .page(1, 5),
        ))
        .await
        .unwrap();
    assert!(!r.items[0].records.is_empty());
    assert!(r.items[0].records.len() <= 5);

    let pred = social
        .search(&SearchQuery::one(
            SearchSpec::predicate(json!([{"expression1": {"attribute_name": "poverty_score",
                "operator": "ge", "attribute_value": 0}}]))
            .unwrap()
            .page(1, 3),
        ))
        .await
        .unwrap();
    assert!(!pred.items[0].records.is_empty());

    let crvs = env.ops(env.source(RegistryType::Crvs).await);
    let births = crvs
        .search(&SearchQuery::one(
            SearchSpec::date_range("event_date", Some("1900-01-01"), Some("2100-12-31"))
                .unwrap()
                .event_type("LiveBirth")
                .record_type("Person")
                .page(1, 50),
        ))
        .await
        .unwrap();
    let none = crvs
        .search(&SearchQuery::one(
            SearchSpec::date_range("event_date", Some("1800-01-01"), Some("1800-12-31"))
                .unwrap()
                .event_type("LiveBirth")
                .page(1, 50),
        ))
        .await
        .unwrap();
    assert!(!births.items[0].records.is_empty());
    assert!(none.items[0].records.is_empty());
    env.assert_requests_conform();
}

#[tokio::test]
async fn the_page_iterator_follows_pagination_to_the_end() {
    let env = Env::default().await;
    let ops = env.ops(env.source(RegistryType::Social).await);
    let spec = SearchSpec::expression(json!({"$and": [{"poverty_score": {"$ge": 0}}]}))
        .unwrap()
        .page(1, 7);
    let single = ops.search(&SearchQuery::one(spec.clone())).await.unwrap();
    let total = single.items[0]
        .pagination
        .expect("the sandbox paginates")
        .total_count;
    assert!(total > 7, "the seeded data should span several pages");
    let pages = ops.search_pages(spec).collect_all().await.unwrap();
    assert_eq!(pages.len() as u64, total.div_ceil(7));
    let records: usize = pages.iter().map(|p| p.items[0].records.len()).sum();
    assert_eq!(records as u64, total);
    env.assert_requests_conform();
}

#[tokio::test]
async fn a_registry_rejection_is_an_error_with_its_code() {
    let env = Env::default().await;
    let ops = env.ops(env.source(RegistryType::Crvs).await);
    let bad = SearchQuery::one(
        SearchSpec::from_parts("idtype-value", json!({"type": "NOPE_TYPE", "value": "1"})).unwrap(),
    );
    match ops.search(&bad).await {
        Err(e) => {
            let reason = e
                .registry_error()
                .unwrap_or_else(|| panic!("no registry reason: {e}"));
            assert!(
                reason.code.as_deref().unwrap_or("").starts_with("rjct."),
                "{reason}"
            );
        }
        Ok(r) => {
            // A registry may answer an unknown id type with an empty success instead.
            assert!(r.items[0].records.is_empty(), "{r:?}");
        }
    }
    // Bad input never reaches the registry and names the field.
    let before = env.sb.requests().len();
    let e = SearchSpec::by_id("UIN").unwrap_err();
    assert!(e.is_invalid_input());
    assert_eq!(env.sb.requests().len(), before);
}

#[tokio::test]
async fn dry_run_prints_the_exact_envelope_and_sends_nothing() {
    let env = Env::default().await;
    let source = env.source(RegistryType::Crvs).await;
    let ops = env.ops(source.clone());
    let q = SearchQuery::one(SearchSpec::by_id("UIN:123").unwrap()).transaction_id("t-dry");
    let env_json = ops.dry_run(&Operation::SearchAsync(q)).await.unwrap();
    assert_eq!(env_json["message"]["transaction_id"], "t-dry");
    // The sender_uri carries the source's callback secret after the callback URI.
    let secret =
        secrecy::ExposeSecret::expose_secret(source.callbacks.secret.as_ref().unwrap()).to_owned();
    assert_eq!(
        env_json["header"]["sender_uri"],
        format!(
            "{}/callback/crvs_main/{secret}/registry/on-search",
            env.receiver.base
        )
    );
    assert!(env_json.get("signature").is_none(), "no signing key set");
    dci_protocol::conformance::validate_request(RegistryType::Crvs, "/registry/search", &env_json)
        .unwrap();
    assert!(env.sb.requests().is_empty());
    assert!(
        env.store
            .as_ref()
            .get_transaction_for_test("t-dry")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn sync_txn_status_finds_an_earlier_search() {
    let env = Env::default().await;
    for registry in RegistryType::ALL.into_iter().filter(|r| r.has_txn_status()) {
        let ops = env.ops(env.source(registry).await);
        let id = found_id(&env.sb, registry);
        let first = ops
            .search(
                &SearchQuery::one(SearchSpec::by_id(&id).unwrap())
                    .transaction_id(format!("t-{registry}")),
            )
            .await
            .unwrap();
        let st = ops
            .txn_status(&TxnStatusQuery::transaction(first.transaction_id.clone()))
            .await
            .unwrap_or_else(|e| panic!("{registry}: {e}"));
        assert_eq!(st.items.len(), 1, "{registry}: {st:?}");
        assert_eq!(st.items[0].records, first.items[0].records);
    }
    env.assert_requests_conform();
}

/// Test-only lookup through the trait object.
trait ForTest {
    async fn get_transaction_for_test(
        &self,
        id: &str,
    ) -> Option<dci_client::ops::TransactionRecord>;
}

impl ForTest for dci_store::SqliteStore {
    async fn get_transaction_for_test(
        &self,
        id: &str,
    ) -> Option<dci_client::ops::TransactionRecord> {
        dci_client::OpsStore::get_transaction(self, id)
            .await
            .unwrap()
    }
}
