//! The in-memory logs stay bounded in entries and in bytes under load; the newest entries stay
//! and the counters still count everything.

use dci_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::common::{envelope, http, id_criteria, post_json, search_message, start_with, token};

const BUDGET: usize = 64 * 1024;
const PER_ENTRY: usize = 16 * 1024;

/// A sync search for `criteria` whose body carries `padding` bytes of filler.
fn padded(txn: &str, criteria: Value, padding: usize) -> Value {
    let mut m = search_message(criteria);
    m["transaction_id"] = json!(txn);
    m["padding"] = json!("x".repeat(padding));
    envelope("search", m, None)
}

async fn stats_over_http(sb: &Sandbox) -> Value {
    http()
        .get(format!("{}/admin/stats", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn many_large_requests_keep_the_request_log_within_its_budget() {
    let sb = start_with(
        SandboxConfig::default()
            .log_capacity(40)
            .log_body_budget(BUDGET, PER_ENTRY),
    )
    .await;
    let t = token(&sb).await;
    for i in 0..100 {
        let (status, _) = post_json(
            &sb,
            "/crvs/registry/sync/search",
            &t,
            &padded(&format!("txn-{i}"), id_criteria("UIN", "1"), 12_000),
        )
        .await;
        assert_eq!(status, 200);
    }
    let stats = sb.stats();
    // 100 searches and the token request.
    assert_eq!(stats.requests.recorded, 101);
    assert_eq!(stats.requests.retained, 40);
    assert_eq!(stats.requests.evicted, 61);
    assert!(stats.requests.retained_bytes <= BUDGET, "{stats:?}");
    assert!(stats.requests.retained_bytes > 4 * 12_000, "{stats:?}");
    assert_eq!(stats.transactions.recorded, 100);
    assert_eq!(stats.transactions.retained, 40);
    // The newest entries are there, the newest bodies with them.
    let log = sb.requests();
    assert_eq!(log.len(), 40);
    let txn_of = |r: &dci_sandbox::RecordedRequest| {
        r.body
            .as_ref()
            .map(|b| b["message"]["transaction_id"].clone())
    };
    assert_eq!(txn_of(log.last().unwrap()), Some(json!("txn-99")));
    let with_body: Vec<_> = log.iter().filter_map(txn_of).collect();
    let n = with_body.len();
    assert!(n >= 4, "{n} bodies kept");
    let newest: Vec<_> = (100 - n..100).map(|i| json!(format!("txn-{i}"))).collect();
    assert_eq!(with_body, newest, "the bodies kept are the newest");
    // Entries whose body went still say how large it was.
    assert!(log[0].body.is_none());
    assert!(log[0].body_size.unwrap() > 12_000);
    // The same over HTTP.
    let s = stats_over_http(&sb).await;
    assert_eq!(s["requests"]["recorded"], 101);
    assert_eq!(s["requests"]["retained"], 40);
    assert!(s["requests"]["retained_bytes"].as_u64().unwrap() <= BUDGET as u64);
    assert_eq!(s["token_requests"], 1);
    let last: Value = http()
        .get(format!(
            "{}/admin/requests?bodies=true&last=1",
            sb.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["requests"].as_array().unwrap().len(), 1);
    assert_eq!(
        last["requests"][0]["body"]["message"]["transaction_id"],
        "txn-99"
    );
    // Clearing forgets the entries, not the counts.
    sb.clear_requests();
    let stats = sb.stats();
    assert_eq!(
        (stats.requests.retained, stats.requests.retained_bytes),
        (0, 0)
    );
    assert_eq!(stats.requests.recorded, 101);
}

#[tokio::test]
async fn a_body_larger_than_the_per_entry_cap_is_not_kept() {
    let sb = start_with(SandboxConfig::default().log_body_budget(BUDGET, PER_ENTRY)).await;
    let t = token(&sb).await;
    post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &padded("txn-big", id_criteria("UIN", "1"), PER_ENTRY + 1),
    )
    .await;
    let r = sb.requests().pop().unwrap();
    assert!(r.body.is_none());
    assert!(r.body_size.unwrap() > PER_ENTRY);
    let s = sb.stats().requests;
    assert_eq!((s.retained_bytes, s.payloads_dropped), (0, 1));
}

/// Every CRVS record of the default population, in one page.
fn all_records() -> Value {
    json!({"version": "1.0.0", "query_type": "predicate",
        "query": [{"seq_num": 1, "expression1": {"attribute_name": "birth_date", "operator": "ge", "attribute_value": "1900-01-01"}}],
        "pagination": {"page_size": 100, "page_number": 1}})
}

async fn txn_status(sb: &Sandbox, t: &str, txn: &str) -> Value {
    let req = json!({"transaction_id": "txn-st", "txnstatus_request": {"reference_id": "r",
        "txn_type": "search", "attribute_type": "transaction_id", "attribute_value": txn}});
    post_json(
        sb,
        "/crvs/registry/sync/txn/status",
        t,
        &envelope("txn-status", req, None),
    )
    .await
    .1
}

#[tokio::test]
async fn searches_of_many_records_keep_the_transaction_log_within_its_budget() {
    // Each result is every CRVS record (about 80 KB): the case that grew without bound.
    let budget = 512 * 1024;
    let sb = start_with(SandboxConfig::default().log_body_budget(budget, 128 * 1024)).await;
    let t = token(&sb).await;
    for i in 0..40 {
        let (status, reply) = post_json(
            &sb,
            "/crvs/registry/sync/search",
            &t,
            &padded(&format!("txn-all-{i}"), all_records(), 0),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            reply["message"]["search_response"][0]["data"]["reg_records"]
                .as_array()
                .unwrap()
                .len(),
            80
        );
    }
    let stats = sb.stats();
    assert!(stats.transactions.retained_bytes <= budget, "{stats:?}");
    assert!(stats.transactions.payloads_dropped > 0, "{stats:?}");
    assert!(stats.retained_bytes <= 2 * budget);
    assert_eq!(stats.transactions.recorded, 40);
    // The newest result is there for txn status; an old one is known but gone.
    let st = txn_status(&sb, &t, "txn-all-39").await;
    assert_eq!(st["header"]["status"], "succ", "{st}");
    let recs = &st["message"]["txnstatus_response"]["txn_status"]["search_response"][0]["data"]["reg_records"];
    assert_eq!(recs.as_array().map(Vec::len), Some(80));
    // Not "no such transaction" (a header `rjct`), which a client may take as "never arrived".
    let st = txn_status(&sb, &t, "txn-all-0").await;
    assert_eq!(st["message"]["ack_status"], "ERR", "{st}");
    assert!(
        st["message"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer kept"),
        "{st}"
    );
}

#[tokio::test]
async fn the_callback_and_transaction_logs_keep_their_capacity() {
    let sb = start_with(SandboxConfig::default().log_capacity(5)).await;
    let t = token(&sb).await;
    let dead = "http://127.0.0.1:9/cb";
    for i in 0..12 {
        let mut m = search_message(id_criteria("UIN", "1"));
        m["transaction_id"] = json!(format!("txn-cb-{i}"));
        post_json(
            &sb,
            "/crvs/registry/search",
            &t,
            &envelope("search", m, Some(dead)),
        )
        .await;
    }
    let stats =
        crate::common::eventually(|| Some(sb.stats()).filter(|s| s.callbacks.recorded >= 12)).await;
    assert_eq!(stats.callbacks.retained, 5);
    assert!(sb.callbacks().len() <= 5);
    assert_eq!(stats.transactions.retained, 5);
    // The oldest transaction is forgotten, the newest known.
    let st = txn_status(&sb, &t, "txn-cb-0").await;
    assert_eq!(st["header"]["status"], "rjct");
    let st = txn_status(&sb, &t, "txn-cb-11").await;
    assert_eq!(st["header"]["status"], "succ", "{st}");
}
