//! Against the real sandbox registry: its OAuth2 server counts token requests, and its faults
//! (503, 429 + Retry-After, down, revoked tokens) are injected server-side.

use std::time::Duration;

use dci_client::{
    AuthConfig, CredentialLocation, DataSource, DciClient, DciRequest, Endpoint, OAuth2Config,
    RetryPolicy, SourceState, Stage, StageStatus, TestOptions, test_connection,
};
use dci_protocol::RegistryType;
use dci_sandbox::{
    ClientConfig, ClientQuirks, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, FaultTarget, Faults, Sandbox,
    SandboxConfig,
};
use secrecy::SecretString;
use serde_json::json;

use crate::support::{MemStore, ops_for, source};

async fn sandbox() -> Sandbox {
    dci_sandbox::spawn(SandboxConfig::default()).await.unwrap()
}

fn crvs_source(sb: &Sandbox, id: &str, secret: &str, loc: CredentialLocation) -> DataSource {
    let auth = AuthConfig::OAuth2(OAuth2Config {
        token_url: sb.token_url(),
        client_id: id.into(),
        client_secret: SecretString::from(secret.to_owned()),
        scope: Some("crvs.read".into()),
        credential_location: loc,
    });
    let mut s = source(&sb.registry_url(RegistryType::Crvs), auth);
    s.receiver_id = Some("dci-sandbox".into());
    s
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        budget: Duration::from_secs(5),
        ..RetryPolicy::default()
    }
}

fn search_envelope(sb: &Sandbox) -> serde_json::Value {
    let ex = &sb.examples()[&RegistryType::Crvs].found[0];
    json!({
        "signature": "",
        "header": {"version": "1.0.0", "message_id": "m-sandbox-1",
            "message_ts": "2026-11-29T10:00:00Z", "action": "search",
            "sender_id": "spmis.example.org", "receiver_id": "dci-sandbox", "total_count": 1},
        "message": {"transaction_id": "t-sandbox-1", "search_request": [{
            "reference_id": "r1", "timestamp": "2026-11-29T10:00:00Z", "locale": "eng",
            "search_criteria": {"version": "1.0.0", "query_type": "idtype-value",
                "query": {"type": ex.id_type, "value": ex.id_value}}}]}
    })
}

fn sync_search(sb: &Sandbox) -> DciRequest {
    DciRequest::new(Endpoint::SyncSearch, search_envelope(sb))
}

#[tokio::test]
async fn every_placement_the_sandbox_accepts_with_string_expires_in() {
    let sb = dci_sandbox::spawn(
        SandboxConfig::default()
            .client(ClientConfig::new("crvs-like", "pw").quirks(ClientQuirks::opencrvs())),
    )
    .await
    .unwrap();
    for (id, secret, loc) in [
        (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, CredentialLocation::Body),
        (
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            CredentialLocation::Basic,
        ),
        ("crvs-like", "pw", CredentialLocation::Query),
        ("crvs-like", "pw", CredentialLocation::Json),
    ] {
        let c = DciClient::builder(crvs_source(&sb, id, secret, loc))
            .build()
            .unwrap();
        let t = c.token().await.unwrap_or_else(|e| panic!("{loc:?}: {e}"));
        assert!(t.info.lifetime_from_server, "{loc:?}");
        let r = c
            .make_request(sync_search(&sb))
            .await
            .unwrap_or_else(|e| panic!("{loc:?}: {e}"));
        assert_eq!(r.body["header"]["status"], "succ", "{loc:?}: {}", r.body);
    }
}

#[tokio::test]
async fn five_hundred_concurrent_searches_mint_exactly_one_token() {
    let sb = sandbox().await;
    let c = DciClient::builder(crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        CredentialLocation::Body,
    ))
    .build()
    .unwrap();
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.token().await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for _ in 0..5 {
        c.make_request(sync_search(&sb)).await.unwrap();
    }
    assert_eq!(sb.token_requests(), 1);
}

#[tokio::test]
async fn revoked_tokens_are_replaced_and_the_call_retried_once() {
    let sb = sandbox().await;
    let store = MemStore::new();
    let c = DciClient::builder(crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        CredentialLocation::Body,
    ))
    .store(store.clone())
    .build()
    .unwrap();
    c.make_request(sync_search(&sb)).await.unwrap();
    sb.revoke_tokens();
    let r = c.make_request(sync_search(&sb)).await.unwrap();
    assert_eq!(r.attempts, 2);
    assert_eq!(sb.token_requests(), 2);
    let statuses: Vec<Option<u16>> = store.audit().iter().map(|e| e.http_status).collect();
    assert_eq!(
        statuses,
        [Some(200), Some(200), Some(401), Some(200), Some(200)]
    );
}

#[tokio::test]
async fn wrong_secret_and_missing_scope_are_auth_errors_with_reasons() {
    let sb = sandbox().await;
    let c = DciClient::builder(crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        "nope",
        CredentialLocation::Body,
    ))
    .build()
    .unwrap();
    let e = c.make_request(sync_search(&sb)).await.unwrap_err();
    assert!(e.is_auth() && e.is_token_endpoint(), "{e:?}");
    assert!(e.registry_error().is_some(), "{e}");
    assert!(e.to_string().contains("client id and secret"), "{e}");

    // A client limited to the DR scope may get a token but not read CRVS.
    let sb = dci_sandbox::spawn(
        SandboxConfig::default().client(ClientConfig::new("dr-only", "pw").scopes(["dr.read"])),
    )
    .await
    .unwrap();
    let mut src = crvs_source(&sb, "dr-only", "pw", CredentialLocation::Body);
    if let AuthConfig::OAuth2(o) = &mut src.auth {
        o.scope = None;
    }
    let c = DciClient::builder(src).build().unwrap();
    let e = c.make_request(sync_search(&sb)).await.unwrap_err();
    assert!(e.is_auth(), "{e:?}");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}");
    assert!(e.registry_error().is_some(), "{e}");
}

#[tokio::test]
async fn retry_after_from_sandbox_faults_is_honoured_until_the_registry_recovers() {
    let sb = sandbox().await;
    let c = DciClient::builder(crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        CredentialLocation::Body,
    ))
    .retry_policy(fast())
    .build()
    .unwrap();
    c.token().await.unwrap();
    sb.set_faults(Faults::new(FaultTarget::Crvs).http_429(1.0, 1))
        .unwrap();
    let e = c
        .make_request(sync_search(&sb))
        .await
        .expect_err("always 429 within a 5 s budget of 1 s waits");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(e.attempts(), 4, "{e}");

    assert_eq!(sb.requests().iter().filter(|r| r.status == 429).count(), 4);
}

#[tokio::test]
async fn a_registry_that_comes_back_during_backoff_gets_the_retry() {
    let sb = sandbox().await;
    let slow_backoff = RetryPolicy {
        max_retries: 5,
        min_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
        budget: Duration::from_secs(10),
        ..RetryPolicy::default()
    };
    let c = DciClient::builder(crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        CredentialLocation::Body,
    ))
    .retry_policy(slow_backoff)
    .build()
    .unwrap();
    c.token().await.unwrap();
    // Down (503 without Retry-After) and back after 300 ms: 200 ms + 400 ms + … outlasts it.
    sb.set_faults(Faults::new(FaultTarget::Crvs).down(true))
        .unwrap();
    let clear = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sb.clear_faults();
    };
    let (r, ()) = tokio::join!(c.make_request(sync_search(&sb)), clear);
    let r = r.unwrap();
    assert!(r.attempts >= 2, "{}", r.attempts);
}

#[tokio::test]
async fn async_search_is_not_resent_when_the_registry_is_down() {
    let sb = sandbox().await;
    let c = DciClient::builder(crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        CredentialLocation::Body,
    ))
    .retry_policy(fast())
    .build()
    .unwrap();
    c.token().await.unwrap();
    sb.clear_requests();
    sb.set_faults(Faults::new(FaultTarget::Crvs).down(true))
        .unwrap();
    let mut env = search_envelope(&sb);
    env["header"]["sender_uri"] = json!("http://127.0.0.1:9/registry/on-search");
    let e = c
        .make_request(DciRequest::new(Endpoint::Search, env))
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503));
    let searches = sb
        .requests()
        .iter()
        .filter(|r| r.endpoint == "/crvs/registry/search")
        .count();
    assert_eq!(searches, 1);
}

#[tokio::test]
async fn connection_resets_of_idempotent_calls_are_retried() {
    let sb = sandbox().await;
    let c = DciClient::builder(crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        CredentialLocation::Body,
    ))
    .retry_policy(RetryPolicy {
        max_retries: 2,
        ..fast()
    })
    .build()
    .unwrap();
    c.token().await.unwrap();
    sb.set_faults(Faults::new(FaultTarget::Crvs).reset_ratio(1.0))
        .unwrap();
    let e = c.make_request(sync_search(&sb)).await.unwrap_err();
    assert!(e.status().is_none() && e.is_connect(), "{e:?}");
    assert_eq!(e.attempts(), 3, "{e}");
}

#[tokio::test]
async fn staged_test_against_the_sandbox_good_and_broken() {
    let sb = sandbox().await;
    let store = MemStore::new();
    let good = crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        CredentialLocation::Body,
    );
    let c = DciClient::builder(good)
        .store(store.clone())
        .build()
        .unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions { probe_search: true }).await;
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.state, SourceState::Active);
    assert_eq!(r.stage(Stage::Ping).unwrap().status, StageStatus::Pass);
    assert_eq!(
        r.stage(Stage::ProbeSearch).unwrap().status,
        StageStatus::Pass,
        "{r:#?}"
    );

    let bad = crvs_source(&sb, DEMO_CLIENT_ID, "wrong", CredentialLocation::Body);
    let c = DciClient::builder(bad)
        .store(store.clone())
        .build()
        .unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions { probe_search: true }).await;
    assert!(!r.ok);
    assert_eq!(r.state, SourceState::Error);
    let token = r.stage(Stage::Token).unwrap();
    assert_eq!(
        (token.status, token.error_class),
        (StageStatus::Fail, Some("auth"))
    );

    sb.set_faults(Faults::new(FaultTarget::All).down(true))
        .unwrap();
    let good = crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        CredentialLocation::Body,
    );
    let c = DciClient::builder(good)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions::default()).await;
    let token = r.stage(Stage::Token).unwrap();
    assert_eq!(token.status, StageStatus::Fail, "{r:#?}");
    assert!(token.message.contains("HTTP 503"), "{}", token.message);
}

/// A fault storm on the registry (30 % of requests: HTTP 500, 503, 429 or a reset): sync
/// searches are idempotent, so the default policy (standard-mode retries, full jitter, the
/// retry quota) must carry ≥ 99.5 % of them to a correct answer — 0.3⁶ ≈ 0.07 % expected
/// failures, so more than 5 of 1 000 would be a defect, not bad luck.
#[tokio::test]
async fn idempotent_calls_survive_a_30_percent_fault_storm() {
    let sb = sandbox().await;
    let policy = RetryPolicy {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        ..RetryPolicy::default()
    };
    let c = DciClient::builder(crvs_source(
        &sb,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        CredentialLocation::Body,
    ))
    .retry_policy(policy)
    .build()
    .unwrap();
    c.token().await.unwrap();
    sb.set_faults(
        Faults::new(FaultTarget::Crvs)
            .http_500_ratio(0.10)
            .http_503_ratio(0.07)
            .http_429(0.05, 0)
            .reset_ratio(0.08),
    )
    .unwrap();
    let n = 1000usize;
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (c, req, sem) = (c.clone(), sync_search(&sb), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            c.make_request(req).await
        }));
    }
    let mut failed = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failed.push(e.to_string());
        }
    }
    let faulted = sb.requests().iter().filter(|r| r.status != 200).count();
    assert!(
        faulted > n / 5,
        "the storm must really have happened: {faulted} faulted requests"
    );
    assert!(
        failed.len() <= 5,
        "{} of {n} idempotent calls failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}
