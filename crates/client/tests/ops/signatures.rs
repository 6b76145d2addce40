//! Signatures both ways: the registry's callbacks and replies verified per policy (JWKS or
//! configured keys; valid, forged, missing, unknown key id, expired), the JWKS re-fetched on an
//! unknown key id, and our envelopes signed with managed keys the registry verifies.

use std::sync::Arc;
use std::time::Duration;

use dci_client::keys::{GenerateOptions, KeyManager, RegistryKeys};
use dci_client::ops::{
    IngestContext, KeyStatus, OpsError, SearchQuery, SearchSpec, SignatureState, TransactionState,
};
use dci_client::{OpsStore, SignaturePolicy, Store};
use dci_protocol::RegistryType;
use dci_protocol::signature::{Algorithm, Signer, SigningKey, VerifyingKey};
use dci_sandbox::{
    CallbackFaults, ClientConfig, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, FaultTarget, Faults,
    SandboxConfig,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::{Env, found_id, receiver, source_for};

const WAIT: Duration = Duration::from_secs(10);

fn drop_callbacks() -> Faults {
    Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
        delay_ms: None,
        duplicate: None,
        fail: Some(true),
    })
}

fn on_search(sender: &str, txn: &str) -> Value {
    json!({
        "header": {"version": "1.0.0", "message_id": dci_protocol::build::new_id(),
            "message_ts": dci_protocol::build::rfc3339(OffsetDateTime::now_utc()),
            "action": "on-search", "status": "succ", "total_count": 1, "completed_count": 1,
            "sender_id": sender},
        "message": {"transaction_id": txn, "correlation_id": "c1", "search_response": [{
            "reference_id": "r1", "timestamp": "2026-11-29T06:00:00Z", "status": "succ",
            "data": {"reg_records": [{"id": 1}]}}]}
    })
}

fn signed(mut env: Value, key: &SigningKey, sender: &str, kid: &str, at: OffsetDateTime) -> Value {
    Signer::new(key.clone(), sender, kid)
        .sign_envelope(&mut env, at)
        .unwrap();
    env
}

async fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn registry_signatures_verify_against_its_jwks_for_callbacks_and_sync_replies() {
    let env = Env::default().await;
    let mut source = source_for(
        &env.sb,
        RegistryType::Crvs,
        "crvs_signed",
        &env.receiver.base,
    );
    source.reply_signature_policy = SignaturePolicy::Require;
    source.registry_jwks_url = Some(env.sb.jwks_url());
    env.store.create_data_source(&source).await.unwrap();
    let ops = env.ops(source);
    let q = SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap());
    let sync = ops.search(&q).await.unwrap();
    assert_eq!(sync.signature, SignatureState::Verified);
    let sub = ops.submit_search_async(&q).await.unwrap();
    let v = ops
        .await_transaction(&sub.transaction_id, WAIT)
        .await
        .unwrap();
    assert_eq!(v.state, TransactionState::Completed);
    assert_eq!(v.callbacks[0].signature, SignatureState::Verified);
    let stored = env.store.callbacks_for(&sub.transaction_id).await.unwrap();
    assert_eq!(
        stored[0].signature_key_id.as_deref(),
        Some(env.sb.key_id().as_str())
    );
    env.assert_requests_conform();
}

#[tokio::test]
async fn forged_missing_unknown_expired_and_altered_signatures_are_refused() {
    let registry_key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let env = Env::new(SandboxConfig::default().signing_key(registry_key.clone())).await;
    env.sb.set_faults(drop_callbacks()).unwrap();
    let mut source = source_for(
        &env.sb,
        RegistryType::Crvs,
        "crvs_strict",
        &env.receiver.base,
    );
    source.reply_signature_policy = SignaturePolicy::Require;
    source.registry_jwks_url = Some(env.sb.jwks_url());
    env.store.create_data_source(&source).await.unwrap();
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let sub = ops
        .submit_search_async(&SearchQuery::one(
            SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs))
                .unwrap()
                .reference_id("r1"),
        ))
        .await
        .unwrap();
    let url = format!(
        "{}/registry/on-search",
        source.callback_uri.as_ref().unwrap()
    );
    let sender = env.sb.registry_id().to_owned();
    let kid = env.sb.key_id();
    let now = OffsetDateTime::now_utc();
    let body = || on_search(&sender, &sub.transaction_id);
    let other = SigningKey::generate(Algorithm::Ed25519).unwrap();

    let cases: Vec<(&str, Value, &str)> = vec![
        ("missing", body(), "err.signature.missing"),
        (
            "forged",
            signed(body(), &other, &sender, &kid, now),
            "err.signature.invalid",
        ),
        (
            "unknown key id",
            signed(body(), &other, &sender, "no-such-kid", now),
            "err.signature.invalid",
        ),
        (
            "expired",
            signed(
                body(),
                &registry_key,
                &sender,
                &kid,
                now - time::Duration::hours(1),
            ),
            "err.signature.invalid",
        ),
        (
            "altered",
            {
                let mut b = signed(body(), &registry_key, &sender, &kid, now);
                b["message"]["search_response"][0]["data"]["reg_records"][0]["id"] = json!(2);
                b
            },
            "err.signature.invalid",
        ),
    ];
    for (name, b, code) in &cases {
        // A DCI-level refusal: HTTP 200 with ACK ERR and the spec's code.
        let (status, ack) = post(&url, b).await;
        assert_eq!(status, 200, "{name}: {ack}");
        assert_eq!(ack["message"]["ack_status"], "ERR", "{name}");
        assert_eq!(ack["message"]["error"]["code"], *code, "{name}: {ack}");
        if *name == "unknown key id" {
            let msg = ack["message"]["error"]["message"].as_str().unwrap();
            assert!(msg.contains("unknown signing key id"), "{msg}");
        }
        if *name == "expired" {
            let msg = ack["message"]["error"]["message"].as_str().unwrap();
            assert!(msg.contains("expired"), "{msg}");
        }
    }
    // A source that keeps HTTP-status refusals gets the same refusals as HTTP 401.
    let mut kept = env
        .store
        .get_data_source(&source.code)
        .await
        .unwrap()
        .unwrap();
    kept.callbacks.http_refusals = true;
    env.store.update_data_source(&kept).await.unwrap();
    for (name, b, code) in &cases {
        let (status, ack) = post(&url, b).await;
        assert_eq!(status, 401, "{name}: {ack}");
        assert_eq!(ack["message"]["error"]["code"], *code, "{name}: {ack}");
    }
    let v = ops.transaction(&sub.transaction_id).await.unwrap();
    assert!(v.callbacks.is_empty(), "a refused callback was stored");
    assert_eq!(v.state, TransactionState::Acknowledged);

    let (status, _) = post(&url, &signed(body(), &registry_key, &sender, &kid, now)).await;
    assert_eq!(status, 200);
    let v = ops
        .await_transaction(&sub.transaction_id, WAIT)
        .await
        .unwrap();
    assert_eq!(v.state, TransactionState::Completed);
    assert_eq!(v.callbacks[0].signature, SignatureState::Verified);
}

#[tokio::test]
async fn if_present_accepts_unsigned_and_configured_pem_keys_verify() {
    let registry_key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let env = Env::new(SandboxConfig::default().signing_key(registry_key.clone())).await;
    env.sb.set_faults(drop_callbacks()).unwrap();
    let mut source = source_for(&env.sb, RegistryType::Crvs, "crvs_pem", &env.receiver.base);
    source.reply_signature_policy = SignaturePolicy::IfPresent;
    source.registry_public_keys = vec![registry_key.verifying_key().to_spki_pem()];
    env.store.create_data_source(&source).await.unwrap();
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let q = SearchQuery::one(
        SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs))
            .unwrap()
            .reference_id("r1"),
    );
    let a = ops.submit_search_async(&q).await.unwrap();
    let b = ops.submit_search_async(&q).await.unwrap();
    let url = format!(
        "{}/registry/on-search",
        source.callback_url_with_secret().unwrap()
    );
    let sender = env.sb.registry_id().to_owned();
    let (s, _) = post(&url, &on_search(&sender, &a.transaction_id)).await;
    assert_eq!(s, 200);
    let signed_b = signed(
        on_search(&sender, &b.transaction_id),
        &registry_key,
        &sender,
        "any-kid",
        OffsetDateTime::now_utc(),
    );
    let (s, _) = post(&url, &signed_b).await;
    assert_eq!(s, 200);
    let va = ops
        .await_transaction(&a.transaction_id, WAIT)
        .await
        .unwrap();
    let vb = ops
        .await_transaction(&b.transaction_id, WAIT)
        .await
        .unwrap();
    assert_eq!(va.callbacks[0].signature, SignatureState::Unsigned);
    assert_eq!(vb.callbacks[0].signature, SignatureState::Verified);
    // A present but bad signature is refused even under if-present.
    let other = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let c = ops.submit_search_async(&q).await.unwrap();
    let bad = signed(
        on_search(&sender, &c.transaction_id),
        &other,
        &sender,
        "k",
        OffsetDateTime::now_utc(),
    );
    let (s, ack) = post(&url, &bad).await;
    assert_eq!(s, 200, "{ack}");
    assert_eq!(ack["message"]["error"]["code"], "err.signature.invalid");
}

#[tokio::test]
async fn an_unknown_key_id_refetches_the_jwks() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let env = Env::default().await;
    env.sb.set_faults(drop_callbacks()).unwrap();
    let jwks = MockServer::start().await;
    let k1 = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let k2 = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let serve = |keys: Vec<Value>| {
        Mock::given(method("GET"))
            .and(path("/jwks.json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": keys})))
    };
    serve(vec![k1.verifying_key().to_jwk("k1")])
        .mount(&jwks)
        .await;

    // A receiver whose cache may re-fetch at once (the default waits 5 s between re-fetches).
    let keys = RegistryKeys::with_settings(Duration::from_secs(600), Duration::ZERO);
    let rx =
        receiver(IngestContext::new(env.store.clone(), env.store.clone()).with_keys(keys)).await;
    let mut source = source_for(&env.sb, RegistryType::Crvs, "crvs_rotating", &rx.base);
    source.reply_signature_policy = SignaturePolicy::Require;
    source.registry_jwks_url = Some(format!("{}/jwks.json", jwks.uri()));
    env.store.create_data_source(&source).await.unwrap();
    let ops = env.ops(source.clone()).with_txn_status_fallback(false);
    let q = SearchQuery::one(
        SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs))
            .unwrap()
            .reference_id("r1"),
    );
    let url = format!(
        "{}/registry/on-search",
        source.callback_uri.as_ref().unwrap()
    );
    let sender = env.sb.registry_id().to_owned();
    let now = OffsetDateTime::now_utc();

    let a = ops.submit_search_async(&q).await.unwrap();
    let (s, _) = post(
        &url,
        &signed(
            on_search(&sender, &a.transaction_id),
            &k1,
            &sender,
            "k1",
            now,
        ),
    )
    .await;
    assert_eq!(s, 200);
    // The registry rotates to k2; our cache still holds only k1.
    jwks.reset().await;
    serve(vec![
        k1.verifying_key().to_jwk("k1"),
        k2.verifying_key().to_jwk("k2"),
    ])
    .mount(&jwks)
    .await;
    let b = ops.submit_search_async(&q).await.unwrap();
    let (s, ack) = post(
        &url,
        &signed(
            on_search(&sender, &b.transaction_id),
            &k2,
            &sender,
            "k2",
            now,
        ),
    )
    .await;
    assert_eq!(s, 200, "{ack}");
    let v = ops
        .await_transaction(&b.transaction_id, WAIT)
        .await
        .unwrap();
    assert_eq!(v.callbacks[0].signature, SignatureState::Verified);
    let fetches = jwks.received_requests().await.unwrap().len();
    assert_eq!(fetches, 1, "the cache was refilled once on the unknown kid");
}

#[tokio::test]
async fn our_envelopes_are_signed_with_managed_keys_and_revoked_keys_never_sign() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        dci_store::SqliteStore::open_file(
            &dir.path().join("k.sqlite3"),
            &crate::support::master_key(),
        )
        .await
        .unwrap(),
    );
    let km = KeyManager::new(store.clone());
    let ed = km
        .generate("spmis-ed", Algorithm::Ed25519, GenerateOptions::default())
        .await
        .unwrap();
    let rs = km
        .generate("spmis-rs", Algorithm::Rs256, GenerateOptions::default())
        .await
        .unwrap();
    let staged = km
        .generate(
            "spmis-next",
            Algorithm::Ed25519,
            GenerateOptions {
                activate: false,
                expires_at: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(staged.status, KeyStatus::Inactive);
    let dup = km
        .generate("spmis-ed", Algorithm::Ed25519, GenerateOptions::default())
        .await
        .unwrap_err();
    assert!(dup.is_invalid_input(), "{dup}");
    let jwks = km.jwks(OffsetDateTime::now_utc()).await.unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        ["spmis-ed", "spmis-rs"],
        "only active keys are published"
    );

    for rec in [&ed, &rs] {
        let vk = VerifyingKey::from_spki_pem(&rec.public_key_pem).unwrap();
        let sb_cfg = SandboxConfig::default()
            .clients([ClientConfig::new(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).public_key(vk)])
            .signature_policy(dci_sandbox::SignaturePolicy::Require);
        let env = Env::new(sb_cfg).await;
        let mut source = source_for(&env.sb, RegistryType::Crvs, "crvs_sign", &env.receiver.base);
        source.signing_key_id = Some(rec.key_id.clone());
        env.store.create_data_source(&source).await.unwrap();
        // The key lives in the test's own store; the operations read it from there.
        let ops = crate::support::ops_with(source.clone(), store.clone());
        let q =
            SearchQuery::one(SearchSpec::by_id(&found_id(&env.sb, RegistryType::Crvs)).unwrap());
        let r = ops
            .search(&q)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", rec.key_id));
        assert!(!r.items[0].records.is_empty());
        let sent = env.sb.requests();
        let body = sent.last().unwrap().body.as_ref().unwrap();
        let sig = body["signature"].as_str().unwrap();
        assert!(
            sig.contains(&format!("spmis.example.org|{}|", rec.key_id)),
            "{sig}"
        );
        env.assert_requests_conform();

        // Unsigned, the registry refuses with its code.
        let mut unsigned = source.clone();
        unsigned.signing_key_id = None;
        let e = crate::support::ops_with(unsigned, store.clone())
            .search(&q)
            .await
            .unwrap_err();
        assert_eq!(
            e.registry_error().and_then(|r| r.code.as_deref()),
            Some("err.signature.missing"),
            "{e}"
        );
    }

    // Revoked, inactive and unknown keys never sign: nothing is sent.
    km.revoke("spmis-ed").await.unwrap();
    let env = Env::default().await;
    for (key, what) in [
        ("spmis-ed", "revoked"),
        ("spmis-next", "not active"),
        ("nope", "no signing key"),
    ] {
        let mut source = source_for(&env.sb, RegistryType::Crvs, "crvs_x", &env.receiver.base);
        source.signing_key_id = Some(key.into());
        let ops = crate::support::ops_with(source, store.clone());
        let e = ops
            .search(&SearchQuery::one(SearchSpec::by_id("UIN:1").unwrap()))
            .await
            .unwrap_err();
        assert!(matches!(e, OpsError::SigningKey(_)), "{e}");
        assert!(e.to_string().contains(what), "{e}");
    }
    assert!(env.sb.requests().is_empty());
    let e = km.activate("spmis-ed").await.unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
    km.activate("spmis-next").await.unwrap();
    let kids = km.jwks(OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(kids["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_expired_key_never_signs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        dci_store::SqliteStore::open_file(
            &dir.path().join("k.sqlite3"),
            &crate::support::master_key(),
        )
        .await
        .unwrap(),
    );
    let km = KeyManager::new(store.clone());
    let soon = OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
    km.generate(
        "short",
        Algorithm::Ed25519,
        GenerateOptions {
            activate: true,
            expires_at: Some(soon),
        },
    )
    .await
    .unwrap();
    assert!(
        km.signer("short", "spmis", OffsetDateTime::now_utc())
            .await
            .is_ok()
    );
    let later = soon + time::Duration::seconds(1);
    let e = km.signer("short", "spmis", later).await.unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    let jwks = km.jwks(later).await.unwrap();
    assert!(jwks["keys"].as_array().unwrap().is_empty());
    assert!(store.list_signing_keys().await.unwrap()[0].status == KeyStatus::Active);
}
