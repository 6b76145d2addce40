//! Fault injection, through the Rust API and the HTTP admin API.

use std::time::Duration;

use dci_protocol::RegistryType;
use dci_sandbox::{CallbackFaults, FaultTarget, Faults};
use serde_json::{Value, json};

use crate::common::{
    Receiver, envelope, example, http, id_criteria, post, post_json, search_message, start, token,
};

fn body() -> Value {
    envelope("search", search_message(id_criteria("UIN", "1")), None)
}

#[tokio::test]
async fn http_500_applies_to_its_target_only_and_is_recorded() {
    let sb = start().await;
    let t = token(&sb).await;
    sb.set_faults(Faults::new(FaultTarget::Crvs).http_500_ratio(1.0))
        .unwrap();
    let (status, err) = post_json(&sb, "/crvs/registry/sync/search", &t, &body()).await;
    assert_eq!(status, 500);
    assert_eq!(err["errors"][0]["code"], "err.server");
    assert_eq!(
        post_json(&sb, "/dr/registry/sync/search", &t, &body())
            .await
            .0,
        200
    );
    let faulted: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .collect();
    assert_eq!(faulted.len(), 1);
    assert_eq!(faulted[0].fault.as_deref(), Some("http_500"));
    assert_eq!(faulted[0].status, 500);
    sb.clear_faults();
    assert_eq!(
        post_json(&sb, "/crvs/registry/sync/search", &t, &body())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn http_503_and_429_carry_retry_after() {
    let sb = start().await;
    let t = token(&sb).await;
    sb.set_faults(Faults::new(FaultTarget::Dr).http_429(1.0, 7))
        .unwrap();
    let resp = post(&sb, "/dr/registry/sync/search", &t, &body()).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errors"][0]["code"],
        "err.request.too_many_requests"
    );
    sb.set_faults(Faults::new(FaultTarget::Dr).http_503_ratio(1.0))
        .unwrap();
    let resp = post(&sb, "/dr/registry/sync/search", &t, &body()).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
}

#[tokio::test]
async fn reset_closes_the_connection_without_a_response() {
    let sb = start().await;
    let t = token(&sb).await;
    sb.set_faults(Faults::new(FaultTarget::Fr).reset_ratio(1.0))
        .unwrap();
    let err = http()
        .post(format!("{}/fr/registry/sync/search", sb.base_url()))
        .bearer_auth(&t)
        .json(&body())
        .send()
        .await
        .expect_err("no response");
    assert!(!err.is_status());
    let reset: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.fault.as_deref() == Some("reset"))
        .collect();
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0].status, 0);
    // The server keeps serving other connections.
    assert_eq!(
        post_json(&sb, "/crvs/registry/sync/search", &t, &body())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn latency_delays_responses_past_a_short_client_timeout() {
    let sb = start().await;
    let t = token(&sb).await;
    sb.set_faults(Faults::new(FaultTarget::Social).latency_ms(5_000))
        .unwrap();
    let err = reqwest::Client::new()
        .post(format!("{}/social/registry/sync/search", sb.base_url()))
        .bearer_auth(&t)
        .timeout(Duration::from_millis(200))
        .json(&body())
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout());
    assert_eq!(
        post_json(&sb, "/crvs/registry/sync/search", &t, &body())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn down_and_all_cover_the_token_endpoint() {
    let sb = start().await;
    sb.set_faults(Faults::new(FaultTarget::Token).down(true))
        .unwrap();
    let resp = http()
        .post(sb.token_url())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    sb.clear_faults();
    let t = token(&sb).await;
    sb.set_faults(Faults::new(FaultTarget::All).http_500_ratio(1.0))
        .unwrap();
    let resp = http()
        .post(sb.token_url())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    for r in RegistryType::ALL {
        assert_eq!(
            post_json(&sb, &format!("/{r}/registry/sync/search"), &t, &body())
                .await
                .0,
            500,
            "{r}"
        );
    }
    // A target's own setting wins over `all`.
    sb.set_faults(Faults::new(FaultTarget::Crvs).http_500_ratio(0.0))
        .unwrap();
    assert_eq!(
        post_json(&sb, "/crvs/registry/sync/search", &t, &body())
            .await
            .0,
        200
    );
    // The token endpoint counts faulted requests too.
    assert_eq!(sb.token_requests(), 3);
}

#[tokio::test]
async fn revoke_tokens_makes_the_next_call_401() {
    let sb = start().await;
    let t = token(&sb).await;
    assert_eq!(
        post_json(&sb, "/crvs/registry/sync/search", &t, &body())
            .await
            .0,
        200
    );
    sb.set_faults(Faults::new(FaultTarget::All).revoke_tokens())
        .unwrap();
    assert_eq!(
        post_json(&sb, "/crvs/registry/sync/search", &t, &body())
            .await
            .0,
        401
    );
    let t2 = token(&sb).await;
    assert_eq!(
        post_json(&sb, "/crvs/registry/sync/search", &t2, &body())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn callback_faults_duplicate_delay_and_fail() {
    let sb = start().await;
    let t = token(&sb).await;
    let mut rx = Receiver::start().await;
    let (_, uin) = example(&sb, RegistryType::Crvs, 0);
    let url = rx.url.clone();
    let search = |txn: &str| {
        let mut m = search_message(id_criteria("UIN", &uin));
        m["transaction_id"] = json!(txn);
        envelope("search", m, Some(&url))
    };
    sb.set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
        delay_ms: Some(100),
        duplicate: Some(true),
        fail: None,
    }))
    .unwrap();
    let (_, ack) = post_json(&sb, "/crvs/registry/search", &t, &search("txn-dup")).await;
    let a = rx.next().await;
    let b = rx.next().await;
    assert_eq!(
        a["message"]["correlation_id"],
        ack["message"]["correlation_id"]
    );
    assert_eq!(a["message"], b["message"]);

    sb.set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
        fail: Some(true),
        ..CallbackFaults::default()
    }))
    .unwrap();
    let (status, ack) = post_json(&sb, "/crvs/registry/search", &t, &search("txn-lost")).await;
    assert_eq!(status, 202);
    assert!(
        !rx.another_within(Duration::from_millis(1500)).await,
        "a dropped callback must not arrive"
    );
    let dropped = crate::common::eventually(|| {
        let d: Vec<_> = sb
            .callbacks()
            .into_iter()
            .filter(|c| c.transaction_id == "txn-lost")
            .collect();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].status, None);
    // The result is still available through txn status.
    let req = json!({"transaction_id": "txn-st", "txnstatus_request": {"reference_id": "r", "txn_type": "search", "attribute_type": "transaction_id", "attribute_value": "txn-lost"}});
    let (_, st) = post_json(
        &sb,
        "/crvs/registry/sync/txn/status",
        &t,
        &envelope("txn-status", req, None),
    )
    .await;
    assert_eq!(
        st["message"]["txnstatus_response"]["txn_status"]["correlation_id"],
        ack["message"]["correlation_id"]
    );
}

#[tokio::test]
async fn admin_http_api_sets_lists_and_clears_faults() {
    let sb = start().await;
    let t = token(&sb).await;
    let admin = format!("{}/admin/faults", sb.base_url());
    let resp = http()
        .post(&admin)
        .json(&json!({"target": "ibr", "http_503_ratio": 1, "retry_after_s": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = post(&sb, "/ibr/registry/sync/search", &t, &body()).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "3");
    let listed: Value = http()
        .get(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["faults"][0]["target"], "ibr");
    // Bad input names the field.
    let resp = http()
        .post(&admin)
        .json(&json!({"http_500_ratio": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("http_500_ratio"));
    let resp = http()
        .post(&admin)
        .json(&json!({"target": "ibr", "latncy_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("latncy_ms"));
    let resp = http()
        .post(&admin)
        .json(&json!({"target": "moon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    // revoke_tokens over HTTP.
    http()
        .post(&admin)
        .json(&json!({"revoke_tokens": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        post(&sb, "/crvs/registry/sync/search", &t, &body())
            .await
            .status(),
        401
    );
    let resp = http().delete(&admin).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(sb.faults().is_empty());
    let t = token(&sb).await;
    assert_eq!(
        post(&sb, "/ibr/registry/sync/search", &t, &body())
            .await
            .status(),
        200
    );
}
