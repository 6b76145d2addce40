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

#[tokio::test]
async fn callbacks_and_sync_replies_are_signed_with_the_jwks_key() {
    use dci_protocol::signature::{VerifyOptions, VerifyingKey, verify_envelope};
    let sb = start().await;
    let t = token(&sb).await;
    let jwks: serde_json::Value = crate::common::http()
        .get(sb.jwks_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, sb.jwks());
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kid"], sb.key_id().as_str());
    assert_eq!(jwk["use"], "sig");
    let key = VerifyingKey::from_jwk(jwk).unwrap();
    let now = time::OffsetDateTime::now_utc();

    let mut rx = Receiver::start().await;
    post_json(
        &sb,
        "/ibr/registry/search",
        &t,
        &envelope(
            "search",
            search_message(id_criteria("UIN", "1")),
            Some(&rx.url),
        ),
    )
    .await;
    let cb = rx.next().await;
    let parsed = verify_envelope(&cb, &key, &VerifyOptions::default(), now)
        .expect("callback signature verifies");
    assert_eq!(parsed.sender_id, "dci-sandbox");
    assert_eq!(parsed.key_id, sb.key_id());

    let (_, sync) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(id_criteria("UIN", "1")), None),
    )
    .await;
    verify_envelope(&sync, &key, &VerifyOptions::default(), now)
        .expect("sync reply signature verifies");
    // Tampering breaks it.
    let mut tampered = sync.clone();
    tampered["message"]["transaction_id"] = json!("other");
    assert!(verify_envelope(&tampered, &key, &VerifyOptions::default(), now).is_err());
}

#[tokio::test]
async fn notify_reaches_active_subscriptions() {
    let sb = start().await;
    let t = token(&sb).await;
    let mut rx = Receiver::start().await;
    let sub = json!({"transaction_id": "txn-sub", "subscribe_request": [{
        "reference_id": "r1", "timestamp": "2026-11-29T10:00:00Z",
        "subscribe_criteria": {"reg_event_type": "Death", "filter_type": "predicate",
            "filter": [{"seq_num": 1, "expression1": {"attribute_name": "event_date", "operator": "ge", "attribute_value": "1900-01-01"}}],
            "notify_record_type": "spdci-extensions-dci:Person"}
    }]});
    post_json(
        &sb,
        "/crvs/registry/subscribe",
        &t,
        &envelope("subscribe", sub, Some(&rx.url)),
    )
    .await;
    let on_sub = rx.next().await;
    let code = on_sub["message"]["subscribe_response"][0]["subscriptions"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    // Over HTTP, like `dci sandbox` users would.
    let resp: serde_json::Value = crate::common::http()
        .post(format!("{}/admin/notify", sb.base_url()))
        .json(&json!({"registry": "crvs"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["sent"], 1);
    let n = rx.next().await;
    assert_eq!(n["header"]["action"], "notify");
    let events = n["message"]["notify_event"].as_array().unwrap();
    assert!(!events.is_empty());
    for e in events {
        assert_eq!(e["subscription_code"], code.as_str());
        assert!(
            e["data"]["reg_records"]["death_date"].is_string(),
            "only deaths match"
        );
    }
    // After unsubscribing, nothing is sent.
    let unsub = json!({"transaction_id": "u", "timestamp": "2026-11-29T10:00:00Z", "subscription_codes": [code]});
    post_json(
        &sb,
        "/crvs/registry/unsubscribe",
        &t,
        &envelope("unsubscribe", unsub, Some(&rx.url)),
    )
    .await;
    rx.next().await;
    assert_eq!(sb.notify(RegistryType::Crvs, None).await, 0);
}

#[tokio::test]
async fn client_signatures_are_verified_by_policy() {
    use dci_protocol::signature::{Algorithm, Signer, SigningKey};
    use dci_sandbox::{ClientConfig, SandboxConfig, SignaturePolicy};
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let signed = |mut env: serde_json::Value| {
        Signer::new(key.clone(), "spmis.test", "k1")
            .sign_envelope(&mut env, time::OffsetDateTime::now_utc())
            .unwrap();
        env
    };
    let config = |policy| {
        SandboxConfig::default()
            .signature_policy(policy)
            .client(ClientConfig::new("signer", "signer-secret").public_key(key.verifying_key()))
    };
    let token_for = |sb: &dci_sandbox::Sandbox| {
        let url = sb.token_url();
        async move {
            let body: serde_json::Value = crate::common::http()
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "signer"),
                    ("client_secret", "signer-secret"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let search = || envelope("search", search_message(id_criteria("UIN", "1")), None);
    let mut unsigned = search();
    unsigned.as_object_mut().unwrap().remove("signature");

    let sb = crate::common::start_with(config(SignaturePolicy::Require)).await;
    let t = token_for(&sb).await;
    let (_, ok) = post_json(&sb, "/crvs/registry/sync/search", &t, &signed(search())).await;
    assert_eq!(ok["header"]["status"], "succ");
    let (status, missing) = post_json(&sb, "/crvs/registry/sync/search", &t, &unsigned).await;
    assert_eq!(status, 400);
    assert_eq!(missing["message"]["ack_status"], "ERR");
    assert_eq!(missing["message"]["error"]["code"], "err.signature.missing");
    let mut tampered = signed(search());
    tampered["message"]["transaction_id"] = json!("changed");
    let (_, bad) = post_json(&sb, "/crvs/registry/sync/search", &t, &tampered).await;
    assert_eq!(bad["message"]["error"]["code"], "err.signature.invalid");
    // Async: the same as an ACK ERR.
    let mut rx = Receiver::start().await;
    let (_, ack) = post_json(
        &sb,
        "/crvs/registry/search",
        &t,
        &envelope(
            "search",
            search_message(id_criteria("UIN", "1")),
            Some(&rx.url),
        ),
    )
    .await;
    assert_eq!(
        ack["message"]["error"]["code"], "err.signature.invalid",
        "the stub signature is not valid"
    );
    let (status, _) = post_json(
        &sb,
        "/crvs/registry/search",
        &t,
        &signed(envelope(
            "search",
            search_message(id_criteria("UIN", "1")),
            Some(&rx.url),
        )),
    )
    .await;
    assert_eq!(status, 202);
    rx.next().await;

    // if-present: unsigned passes, a bad signature does not.
    let sb = crate::common::start_with(config(SignaturePolicy::IfPresent)).await;
    let t = token_for(&sb).await;
    let (_, ok) = post_json(&sb, "/crvs/registry/sync/search", &t, &unsigned).await;
    assert_eq!(ok["header"]["status"], "succ");
    let (_, bad) = post_json(&sb, "/crvs/registry/sync/search", &t, &search()).await;
    assert_eq!(bad["message"]["error"]["code"], "err.signature.invalid");

    // off: anything goes.
    let sb = crate::common::start_with(config(SignaturePolicy::Off)).await;
    let t = token_for(&sb).await;
    let (_, ok) = post_json(&sb, "/crvs/registry/sync/search", &t, &tampered).await;
    assert_eq!(ok["header"]["status"], "succ");
}
