//! Large seeded populations: fast start, identifier lookups through the index, identifiers
//! listed for load tests, pages of 1 000 records.

use std::time::{Duration, Instant};

use dci_protocol::RegistryType;
use dci_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::common::{
    Receiver, envelope, http, id_criteria, post_json, search_message, start_with, token,
};

async fn sync_search(sb: &Sandbox, t: &str, registry: RegistryType, criteria: Value) -> Value {
    let (status, reply) = post_json(
        sb,
        &format!("/{registry}/registry/sync/search"),
        t,
        &envelope("search", search_message(criteria), None),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    reply["message"]["search_response"][0].clone()
}

/// Every CRVS person (all are born after 1900), `page_size` at a time.
fn everyone(page_size: usize, page_number: usize, sort: Option<Value>) -> Value {
    let mut c = json!({"version": "1.0.0", "query_type": "predicate",
        "query": [{"seq_num": 1, "expression1": {"attribute_name": "birth_date", "operator": "ge", "attribute_value": "1900-01-01"}}],
        "pagination": {"page_size": page_size, "page_number": page_number}});
    if let Some(s) = sort {
        c["sort"] = s;
    }
    c
}

#[tokio::test]
async fn a_population_of_100_000_starts_fast_and_finds_anyone_by_identifier() {
    let started = Instant::now();
    let sb = start_with(SandboxConfig::default().population(100_000)).await;
    let took = started.elapsed();
    println!("100 000 people generated and indexed in {took:?}");
    // Generous for a debug build on a busy machine; a release build takes well under a second.
    assert!(took < Duration::from_secs(60), "start took {took:?}");
    let t = token(&sb).await;
    let ex = sb.examples();
    assert_eq!(ex[&RegistryType::Crvs].records, 100_000);
    for r in RegistryType::ALL {
        assert!(ex[&r].records > 10_000, "{r}: {}", ex[&r].records);
    }
    // The last people too, by their main identifier, in every registry.
    for r in RegistryType::ALL {
        let n = ex[&r].records;
        let ids = sb.identifiers(r, n - 3, 10);
        assert_eq!(ids.len(), 3, "{r}");
        for id in ids {
            let item = sync_search(&sb, &t, r, id_criteria(&id.id_type, &id.id_value)).await;
            assert_eq!(item["status"], "succ", "{r}: {item}");
            assert_eq!(
                item["pagination"]["total_count"], 1,
                "{r} {}: {item}",
                id.id_type
            );
        }
    }
    // The found examples work as before.
    let (t_, v) = {
        let e = &ex[&RegistryType::Crvs].found[0];
        (e.id_type.clone(), e.id_value.clone())
    };
    let item = sync_search(&sb, &t, RegistryType::Crvs, id_criteria(&t_, &v)).await;
    assert_eq!(
        item["data"]["reg_records"][0]["identifier"]["identifier_value"],
        v.as_str()
    );
    // Over HTTP: the identifiers of records 99 997.. of CRVS.
    let listed: Value = http()
        .get(format!(
            "{}/admin/examples?registry=crvs&ids=5&offset=99997",
            sb.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_object().unwrap().len(), 1);
    assert_eq!(listed["crvs"]["records"], 100_000);
    let ids = listed["crvs"]["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0]["id_type"], "UIN");
    assert_eq!(
        ids[2]["id_value"],
        sb.identifiers(RegistryType::Crvs, 99_999, 1)[0]
            .id_value
            .as_str()
    );
    // Other identifier types can be listed too.
    let listed: Value = http()
        .get(format!(
            "{}/admin/examples?registry=crvs&ids=2&id_type=BRN",
            sb.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["crvs"]["ids"][1]["id_type"], "BRN");
    let resp = http()
        .get(format!("{}/admin/examples?ids=lots", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("ids"));
}

#[tokio::test]
async fn pages_of_1000_records_come_whole_in_order_and_sorted() {
    let n = 5_000;
    let sb = start_with(SandboxConfig::default().population(n)).await;
    let t = token(&sb).await;
    let crvs = RegistryType::Crvs;
    let page = sync_search(&sb, &t, crvs, everyone(1000, 2, None)).await;
    let recs = page["data"]["reg_records"].as_array().unwrap();
    assert_eq!(recs.len(), 1000);
    assert_eq!(page["pagination"]["total_count"], n);
    assert_eq!(page["pagination"]["page_size"], 1000);
    // Page 2 starts at record 1 000, in registry order.
    let first = &sb.identifiers(crvs, 1000, 1)[0];
    assert_eq!(
        recs[0]["identifier"]["identifier_value"],
        first.id_value.as_str()
    );
    let last = sync_search(&sb, &t, crvs, everyone(1000, 5, None)).await;
    assert_eq!(last["data"]["reg_records"].as_array().unwrap().len(), 1000);
    let beyond = sync_search(&sb, &t, crvs, everyone(1000, 6, None)).await;
    assert_eq!(beyond["data"]["reg_records"].as_array().unwrap().len(), 0);
    assert_eq!(beyond["pagination"]["total_count"], n);
    // Sorted over all 5 000, not within the page.
    let sort = json!([{"attribute_name": "birth_date", "sort_order": "desc"}]);
    let sorted = sync_search(&sb, &t, crvs, everyone(1000, 1, Some(sort))).await;
    let dates: Vec<&str> = sorted["data"]["reg_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["birth_date"].as_str().unwrap())
        .collect();
    assert_eq!(dates.len(), 1000);
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    assert!(dates[0] >= "2019-01-01", "the youngest first: {}", dates[0]);
    // An async search delivers a page of 1 000 in its callback.
    let mut rx = Receiver::start().await;
    let (status, _) = post_json(
        &sb,
        "/crvs/registry/search",
        &t,
        &envelope(
            "search",
            search_message(everyone(1000, 3, None)),
            Some(&rx.url),
        ),
    )
    .await;
    assert_eq!(status, 202);
    let cb = rx.next().await;
    let item = &cb["message"]["search_response"][0];
    assert_eq!(item["data"]["reg_records"].as_array().unwrap().len(), 1000);
    assert_eq!(item["pagination"]["page_number"], 3);
}

#[tokio::test]
async fn the_same_seed_and_population_give_the_same_records() {
    let config = || SandboxConfig::default().seed(42).population(3_000);
    let a = start_with(config()).await;
    let b = start_with(config()).await;
    let c = start_with(SandboxConfig::default().seed(43).population(3_000)).await;
    for r in RegistryType::ALL {
        assert_eq!(
            a.identifiers(r, 0, 5_000),
            b.identifiers(r, 0, 5_000),
            "{r}"
        );
    }
    assert_ne!(
        a.identifiers(RegistryType::Crvs, 0, 100),
        c.identifiers(RegistryType::Crvs, 0, 100)
    );
    let (ta, tb) = (token(&a).await, token(&b).await);
    let id = &a.identifiers(RegistryType::Social, 400, 1)[0];
    let criteria = id_criteria(&id.id_type, &id.id_value);
    let ra = sync_search(&a, &ta, RegistryType::Social, criteria.clone()).await;
    let rb = sync_search(&b, &tb, RegistryType::Social, criteria).await;
    assert_eq!(ra["data"], rb["data"]);
    assert_eq!(ra["pagination"]["total_count"], 1);
}

#[tokio::test]
async fn an_out_of_range_population_is_refused_by_name() {
    let err = dci_sandbox::spawn(SandboxConfig::default().population(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("population"), "{err}");
    let err = dci_sandbox::spawn(SandboxConfig::default().population(20_000_000))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("population"), "{err}");
}
