//! The `drop_reply` fault: the request is processed, the answer is lost. Contrasted with
//! `reset`, which closes the connection before anything happens.

use std::time::Duration;

use dci_protocol::RegistryType;
use dci_sandbox::{FaultTarget, Faults, Sandbox};
use serde_json::{Value, json};

use crate::common::{
    Receiver, envelope, example, http, id_criteria, post_json, search_message, start, token,
};

fn search(uin: &str, txn: &str, sender_uri: Option<&str>) -> Value {
    let mut m = search_message(id_criteria("UIN", uin));
    m["transaction_id"] = json!(txn);
    envelope("search", m, sender_uri)
}

/// POSTs expecting no answer at all: the connection closes without a response.
async fn post_unanswered(sb: &Sandbox, path: &str, token: &str, body: &Value) {
    let err = http()
        .post(format!("{}{path}", sb.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect_err("the reply is lost");
    assert!(!err.is_status(), "an HTTP answer came: {err}");
}

/// Sync txn status by transaction id: (status of the reply header, txn_status).
async fn txn_status(sb: &Sandbox, token: &str, txn: &str) -> (Value, Value) {
    let req = json!({"transaction_id": "txn-st", "txnstatus_request": {"reference_id": "r",
        "txn_type": "search", "attribute_type": "transaction_id", "attribute_value": txn}});
    let (status, reply) = post_json(
        sb,
        "/crvs/registry/sync/txn/status",
        token,
        &envelope("txn-status", req, None),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    (
        reply["header"]["status"].clone(),
        reply["message"]["txnstatus_response"]["txn_status"].clone(),
    )
}

#[tokio::test]
async fn an_async_search_whose_ack_is_lost_still_calls_back_and_txn_status_knows_it() {
    let sb = start().await;
    let t = token(&sb).await;
    let mut rx = Receiver::start().await;
    let (_, uin) = example(&sb, RegistryType::Crvs, 0);
    sb.set_faults(Faults::new(FaultTarget::Crvs).drop_reply_ratio(1.0))
        .unwrap();
    post_unanswered(
        &sb,
        "/crvs/registry/search",
        &t,
        &search(&uin, "txn-ack-lost", Some(&rx.url)),
    )
    .await;
    // Processed: the callback comes anyway, with the found record.
    let cb = rx.next().await;
    assert_eq!(cb["header"]["action"], "on-search");
    assert_eq!(cb["message"]["transaction_id"], "txn-ack-lost");
    let recs = &cb["message"]["search_response"][0]["data"]["reg_records"];
    assert_eq!(recs[0]["identifier"]["identifier_value"], uin.as_str());
    // Recorded as unanswered, with its body.
    let lost: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.fault.as_deref() == Some("drop_reply"))
        .collect();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].status, 0);
    assert_eq!(lost[0].endpoint, "/crvs/registry/search");
    assert_eq!(
        lost[0].body.as_ref().unwrap()["message"]["transaction_id"],
        "txn-ack-lost"
    );
    // The fault applies to the CRVS target only: txn status elsewhere would answer; clear it
    // and ask CRVS, which knows the transaction under the correlation id of the callback.
    sb.clear_faults();
    let (header_status, st) = txn_status(&sb, &t, "txn-ack-lost").await;
    assert_eq!(header_status, "succ");
    assert_eq!(st["transaction_id"], "txn-ack-lost");
    assert_eq!(st["correlation_id"], cb["message"]["correlation_id"]);
}

#[tokio::test]
async fn a_sync_search_and_a_token_request_whose_replies_are_lost_were_processed() {
    let sb = start().await;
    let t = token(&sb).await;
    let (_, uin) = example(&sb, RegistryType::Crvs, 0);
    sb.set_faults(Faults::new(FaultTarget::All).drop_reply_ratio(1.0))
        .unwrap();
    post_unanswered(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &search(&uin, "txn-sync-lost", None),
    )
    .await;
    let err = http()
        .post(sb.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sandbox"),
            ("client_secret", "sandbox-secret"),
        ])
        .send()
        .await
        .expect_err("the token reply is lost");
    assert!(!err.is_status());
    // The token was issued all the same.
    assert_eq!(sb.tokens_issued(), 2);
    sb.clear_faults();
    let (header_status, st) = txn_status(&sb, &t, "txn-sync-lost").await;
    assert_eq!(header_status, "succ");
    assert_eq!(
        st["search_response"][0]["data"]["reg_records"]["identifier"]["identifier_value"],
        uin.as_str()
    );
}

#[tokio::test]
async fn reset_loses_the_request_itself() {
    let sb = start().await;
    let t = token(&sb).await;
    let mut rx = Receiver::start().await;
    let (_, uin) = example(&sb, RegistryType::Crvs, 0);
    sb.set_faults(Faults::new(FaultTarget::Crvs).reset_ratio(1.0))
        .unwrap();
    post_unanswered(
        &sb,
        "/crvs/registry/search",
        &t,
        &search(&uin, "txn-reset", Some(&rx.url)),
    )
    .await;
    assert!(
        !rx.another_within(Duration::from_millis(800)).await,
        "a reset request must not be processed"
    );
    sb.clear_faults();
    let (header_status, _) = txn_status(&sb, &t, "txn-reset").await;
    assert_eq!(header_status, "rjct");
}

#[tokio::test]
async fn drop_reply_ratio_is_set_over_http_and_validated() {
    let sb = start().await;
    let admin = format!("{}/admin/faults", sb.base_url());
    let resp = http()
        .post(&admin)
        .json(&json!({"target": "dr", "drop_reply_ratio": 1.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("drop_reply_ratio"));
    let resp = http()
        .post(&admin)
        .json(&json!({"target": "dr", "drop_reply_ratio": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sb.faults()[0].drop_reply_ratio, Some(1.0));
    let t = token(&sb).await;
    post_unanswered(
        &sb,
        "/dr/registry/sync/search",
        &t,
        &search("1", "txn-dr", None),
    )
    .await;
    // Other targets answer.
    let (status, _) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &search("1", "txn-crvs", None),
    )
    .await;
    assert_eq!(status, 200);
}
