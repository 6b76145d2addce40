//! Async calls: ACK, then a callback POSTed to `sender_uri`.

use dci_protocol::RegistryType;
use serde_json::json;

use crate::common::{
    Receiver, envelope, example, id_criteria, post_json, search_message, start, token,
};

#[tokio::test]
async fn async_search_acks_then_calls_back_with_the_same_ids() {
    let sb = start().await;
    let t = token(&sb).await;
    let mut rx = Receiver::start().await;
    let (_, uin) = example(&sb, RegistryType::Crvs, 0);
    let (status, ack) = post_json(
        &sb,
        "/crvs/registry/search",
        &t,
        &envelope(
            "search",
            search_message(id_criteria("UIN", &uin)),
            Some(&rx.url),
        ),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(ack["message"]["ack_status"], "ACK");
    let correlation_id = ack["message"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cb = rx.next().await;
    assert_eq!(cb["header"]["action"], "on-search");
    assert_eq!(cb["header"]["status"], "succ");
    assert_eq!(cb["header"]["receiver_id"], "spmis.test");
    assert_eq!(cb["message"]["transaction_id"], "txn-1");
    assert_eq!(cb["message"]["correlation_id"], correlation_id.as_str());
    let recs = cb["message"]["search_response"][0]["data"]["reg_records"]
        .as_array()
        .unwrap();
    assert_eq!(recs[0]["identifier"]["identifier_value"], uin.as_str());
    // The sandbox logs the delivery once the receiver has answered.
    let log = crate::common::eventually(|| Some(sb.callbacks()).filter(|l| !l.is_empty())).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[0].url, rx.url);
}

#[tokio::test]
async fn async_search_without_a_sender_uri_is_refused() {
    let sb = start().await;
    let t = token(&sb).await;
    let (status, ack) = post_json(
        &sb,
        "/crvs/registry/search",
        &t,
        &envelope("search", search_message(id_criteria("UIN", "1")), None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ack["message"]["ack_status"], "ERR");
    assert_eq!(ack["message"]["error"]["code"], "err.sender_uri.invalid");
    let (_, ack) = post_json(
        &sb,
        "/crvs/registry/search",
        &t,
        &envelope(
            "search",
            search_message(id_criteria("UIN", "1")),
            Some("not a url"),
        ),
    )
    .await;
    assert_eq!(ack["message"]["error"]["code"], "err.sender_uri.invalid");
}

#[tokio::test]
async fn subscribe_then_unsubscribe() {
    let sb = start().await;
    let t = token(&sb).await;
    let mut rx = Receiver::start().await;
    let sub = json!({"transaction_id": "txn-sub", "subscribe_request": [{
        "reference_id": "r1", "timestamp": "2026-11-29T10:00:00Z",
        "subscribe_criteria": {"reg_event_type": "LiveBirth", "filter_type": "predicate",
            "filter": [{"seq_num": 1, "expression1": {"attribute_name": "birth_date", "operator": "ge", "attribute_value": "2026-01-01"}}],
            "notify_record_type": "spdci-extensions-dci:Person"}
    }]});
    let (status, ack) = post_json(
        &sb,
        "/crvs/registry/subscribe",
        &t,
        &envelope("subscribe", sub, Some(&rx.url)),
    )
    .await;
    assert_eq!(status, 202);
    let cb = rx.next().await;
    assert_eq!(cb["header"]["action"], "on-subscribe");
    assert_eq!(
        cb["message"]["correlation_id"],
        ack["message"]["correlation_id"]
    );
    let item = &cb["message"]["subscribe_response"][0];
    assert_eq!(item["status"], "succ");
    let code = item["subscriptions"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(item["subscriptions"][0]["status"], "subscribe");

    let unsub = |codes: serde_json::Value| json!({"transaction_id": "txn-unsub", "timestamp": "2026-11-29T10:00:00Z", "subscription_codes": codes});
    let (status, _) = post_json(
        &sb,
        "/crvs/registry/unsubscribe",
        &t,
        &envelope("unsubscribe", unsub(json!([code])), Some(&rx.url)),
    )
    .await;
    assert_eq!(status, 202);
    let cb = rx.next().await;
    assert_eq!(cb["header"]["action"], "on-unsubscribe");
    assert_eq!(cb["message"]["status"], "succ");
    assert_eq!(
        cb["message"]["subscription_status"][0]["status"],
        "unsubscribe"
    );
    // Again: already unsubscribed. Unknown code: invalid.
    post_json(
        &sb,
        "/crvs/registry/unsubscribe",
        &t,
        &envelope("unsubscribe", unsub(json!([code])), Some(&rx.url)),
    )
    .await;
    let cb = rx.next().await;
    assert_eq!(
        cb["message"]["status_reason_code"],
        "rjct.event.already_unsubscribed"
    );
    post_json(
        &sb,
        "/crvs/registry/unsubscribe",
        &t,
        &envelope("unsubscribe", unsub(json!(["SUB-NOPE"])), Some(&rx.url)),
    )
    .await;
    let cb = rx.next().await;
    assert_eq!(cb["message"]["status"], "rjct");
    assert_eq!(
        cb["message"]["status_reason_code"],
        "rjct.subscription_code.invalid"
    );
}

#[tokio::test]
async fn async_txn_status_calls_back_with_the_stored_result() {
    let sb = start().await;
    let t = token(&sb).await;
    let mut rx = Receiver::start().await;
    let (_, ack) = post_json(
        &sb,
        "/social/registry/search",
        &t,
        &envelope(
            "search",
            search_message(id_criteria("UIN", "1")),
            Some(&rx.url),
        ),
    )
    .await;
    let first = rx.next().await;
    let cid = ack["message"]["correlation_id"].as_str().unwrap();
    let req = json!({"transaction_id": "txn-st", "txnstatus_request": {"reference_id": "r", "txn_type": "search", "attribute_type": "correlation_id", "attribute_value": cid}});
    let (status, _) = post_json(
        &sb,
        "/social/registry/txn/status",
        &t,
        &envelope("txn-status", req, Some(&rx.url)),
    )
    .await;
    assert_eq!(status, 202);
    let cb = rx.next().await;
    assert_eq!(cb["header"]["action"], "txn-on-status");
    assert_eq!(cb["message"]["transaction_id"], "txn-st");
    assert_eq!(
        cb["message"]["txnstatus_response"]["txn_status"]["correlation_id"],
        first["message"]["correlation_id"]
    );
}
