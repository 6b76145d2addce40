//! The engine against the sandbox over real HTTP, on a real SQLite store: one client per
//! source reused, state rebuilt on change, disabled sources refused, DR cache shared, the
//! OpenCRVS dialect on the generic path and in Test Connection, the permission stage, stored
//! tokens refreshed ahead, signing keys cached and revoked at once, audit written off the
//! critical path and complete after close.

use std::sync::Arc;
use std::time::Duration;

use dci_client::ops::{SearchQuery, SearchSpec};
use dci_client::registries::{IdRef, Profile};
use dci_client::{
    AuditFilter, CachedToken, DataSourceInput, Engine, OpsStore, SourceState, StageStatus, Store,
    TestOptions,
};
use dci_protocol::RegistryType;
use dci_sandbox::{ClientConfig, ClientQuirks, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox};
use dci_store::SqliteStore;
use secrecy::SecretString;
use time::OffsetDateTime;

struct H {
    sb: Sandbox,
    store: Arc<dyn Store>,
    ops: Arc<dyn OpsStore>,
    _dir: tempfile::TempDir,
}

async fn harness(cfg: dci_sandbox::SandboxConfig) -> H {
    let sb = dci_sandbox::spawn(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.sqlite3").display()
    );
    let s = Arc::new(
        SqliteStore::connect(&url, &dci_client::MasterKey::from_bytes([3; 32]))
            .await
            .unwrap(),
    );
    H {
        sb,
        store: s.clone(),
        ops: s,
        _dir: dir,
    }
}

fn input(sb: &Sandbox, code: &str, registry: RegistryType) -> DataSourceInput {
    DataSourceInput {
        code: code.into(),
        name: code.into(),
        registry_type: registry.as_str().into(),
        base_url: sb.registry_url(registry),
        auth: Some("oauth2".into()),
        token_url: Some(sb.token_url()),
        client_id: Some(DEMO_CLIENT_ID.into()),
        client_secret: Some(SecretString::from(DEMO_CLIENT_SECRET)),
        scope: Some(format!("{}.read", registry.as_str())),
        sender_id: Some("spmis.example.org".into()),
        ..DataSourceInput::default()
    }
}

async fn add(h: &H, input: DataSourceInput) {
    h.store
        .create_data_source(&input.validate().unwrap())
        .await
        .unwrap();
}

fn registry_calls(sb: &Sandbox, path: &str) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.endpoint.ends_with(path))
        .count()
}

fn example(sb: &Sandbox, r: RegistryType) -> IdRef {
    let e = sb.examples()[&r].found[0].clone();
    IdRef::new(e.id_type, e.id_value)
}

#[tokio::test]
async fn one_client_per_source_is_reused_and_rebuilt_when_the_record_changes() {
    let h = harness(Default::default()).await;
    add(&h, input(&h.sb, "crvs_a", RegistryType::Crvs)).await;
    let engine = Engine::builder(h.store.clone(), h.ops.clone())
        .revalidate_after(Duration::ZERO)
        .build();
    let id = example(&h.sb, RegistryType::Crvs);
    let q = SearchQuery::one(SearchSpec::by_id(&id.to_string()).unwrap());
    for _ in 0..5 {
        let r = engine
            .operations("crvs_a")
            .await
            .unwrap()
            .search(&q)
            .await
            .unwrap();
        assert_eq!(r.items[0].records.len(), 1);
    }
    // Five searches through the engine: one token for all of them.
    assert_eq!(h.sb.token_requests(), 1);

    // Another process changes the record: the engine notices and rebuilds (new token).
    let mut changed = h.store.get_data_source("crvs_a").await.unwrap().unwrap();
    changed.timeout_secs = 12;
    changed.updated_at = OffsetDateTime::now_utc();
    h.store.update_data_source(&changed).await.unwrap();
    let ops = engine.operations("crvs_a").await.unwrap();
    assert_eq!(ops.source().timeout_secs, 12);
    // Fresh state: the new client had no token in memory and takes the stored one (same
    // credentials, so no new token request).
    let t = ops.client().token().await.unwrap();
    assert_eq!(t.info.origin, dci_client::TokenOrigin::Stored);
    ops.search(&q).await.unwrap();
    assert_eq!(h.sb.token_requests(), 1);
}

#[tokio::test]
async fn disabled_and_unknown_sources_are_refused_with_the_field_to_change() {
    let h = harness(Default::default()).await;
    let mut i = input(&h.sb, "crvs_off", RegistryType::Crvs);
    i.active = Some(false);
    add(&h, i).await;
    let engine = Engine::open(h.store.clone(), h.ops.clone());
    let e = engine.operations("crvs_off").await.unwrap_err();
    assert!(e.is_disabled(), "{e}");
    assert!(e.to_string().contains("active"), "{e}");
    assert!(
        !e.to_string().contains("--"),
        "library messages name no CLI flag: {e}"
    );
    assert!(engine.crvs("crvs_off").await.unwrap_err().is_disabled());
    let e = engine.operations("nope").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    // Nothing was sent on the disabled source's behalf.
    assert_eq!(h.sb.requests().len(), 0);
}

#[tokio::test]
async fn the_dr_status_cache_lives_in_the_engine_across_callers() {
    let h = harness(Default::default()).await;
    add(&h, input(&h.sb, "dr_a", RegistryType::Dr)).await;
    let engine = Engine::open(h.store.clone(), h.ops.clone());
    let id = example(&h.sb, RegistryType::Dr);
    for _ in 0..3 {
        // A new DrClient per call, as a gateway handler gets one per request.
        let dr = engine.dr("dr_a").await.unwrap();
        assert!(dr.status(&id).await.unwrap().is_some());
    }
    assert_eq!(registry_calls(&h.sb, "/registry/sync/disabled"), 1);
}

#[tokio::test]
async fn a_reported_change_that_leaves_the_configuration_as_it_was_keeps_the_caches() {
    let h = harness(Default::default()).await;
    add(&h, input(&h.sb, "dr_b", RegistryType::Dr)).await;
    let engine = Engine::open(h.store.clone(), h.ops.clone());
    let id = example(&h.sb, RegistryType::Dr);
    assert!(
        engine
            .dr("dr_b")
            .await
            .unwrap()
            .status(&id)
            .await
            .unwrap()
            .is_some()
    );
    // A state write reports a change of the source (as its own creation, reported late, does)
    // but leaves its configuration as it was.
    h.store
        .set_state("dr_b", SourceState::Active)
        .await
        .unwrap();
    // The change reaches the engine through the store's feed; give it time to arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..2 {
        let dr = engine.dr("dr_b").await.unwrap();
        assert!(dr.status(&id).await.unwrap().is_some());
    }
    assert_eq!(registry_calls(&h.sb, "/registry/sync/disabled"), 1);
    assert_eq!(h.sb.token_requests(), 1);
}

async fn opencrvs_harness() -> (H, Engine) {
    let cfg = dci_sandbox::SandboxConfig::default().clients([ClientConfig::new(
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
    )
    .quirks(ClientQuirks::opencrvs())]);
    let h = harness(cfg).await;
    let mut i = input(&h.sb, "opencrvs", RegistryType::Crvs);
    i.base_url = format!("{}/opencrvs", h.sb.base_url());
    i.scope = Some("crvs.read".into());
    i.credential_location = Some("query".into());
    i.sender_id = Some("https://spmis.example.org".into());
    i.reply_signature_policy = Some("require".into());
    i.registry_jwks_url = Some(format!("{}/.well-known/jwks.json", h.sb.base_url()));
    i.profile = Some(Profile::OpenCrvs(dci_client::OpenCrvsVersion::V1_5).to_string());
    add(&h, i).await;
    let engine = Engine::open(h.store.clone(), h.ops.clone());
    (h, engine)
}

#[tokio::test]
async fn an_opencrvs_source_passes_test_connection_and_the_generic_search() {
    let (h, engine) = opencrvs_harness().await;
    let report = engine
        .test_connection("opencrvs", TestOptions::default())
        .await
        .unwrap();
    assert!(report.ok, "{report:#?}");
    assert_eq!(
        report
            .stage(dci_client::Stage::ProbeSearch)
            .map(|s| s.status),
        Some(StageStatus::Pass),
        "{report:#?}"
    );
    let s = engine.source("opencrvs").await.unwrap();
    assert_eq!(s.state, SourceState::Active);

    // The generic search path (what `dci search` and the gateway use) speaks the dialect too.
    let id = example(&h.sb, RegistryType::Crvs);
    let q = SearchQuery::one(
        SearchSpec::by_id(&id.to_string())
            .unwrap()
            .event_type("LiveBirth"),
    );
    let r = engine
        .operations("opencrvs")
        .await
        .unwrap()
        .search(&q)
        .await
        .unwrap();
    assert_eq!(r.items[0].records.len(), 1, "{r:?}");
}

#[tokio::test]
async fn test_connection_checks_permission_by_default() {
    // The client may read DR only; the source points at CRVS.
    let cfg = dci_sandbox::SandboxConfig::default().clients([ClientConfig::new(
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
    )
    .scopes(["dr.read"])]);
    let h = harness(cfg).await;
    let mut i = input(&h.sb, "crvs_noscope", RegistryType::Crvs);
    i.scope = None;
    add(&h, i).await;
    let engine = Engine::open(h.store.clone(), h.ops.clone());
    let report = engine
        .test_connection("crvs_noscope", TestOptions::default())
        .await
        .unwrap();
    assert!(!report.ok, "{report:#?}");
    let probe = report.stage(dci_client::Stage::ProbeSearch).unwrap();
    assert_eq!(probe.status, StageStatus::Fail, "{report:#?}");
    assert_eq!(probe.error_class, Some("permission"));
    assert!(probe.message.contains("scope"), "{}", probe.message);
    let s = engine.source("crvs_noscope").await.unwrap();
    assert_eq!(s.state, SourceState::Error);

    // Turned off, the test does not pretend to have checked permissions.
    let report = engine
        .test_connection(
            "crvs_noscope",
            TestOptions {
                probe_search: false,
            },
        )
        .await
        .unwrap();
    let probe = report.stage(dci_client::Stage::ProbeSearch).unwrap();
    assert_eq!(probe.status, StageStatus::Warn);
}

#[tokio::test]
async fn an_interrupted_test_does_not_stay_testing() {
    let h = harness(Default::default()).await;
    add(&h, input(&h.sb, "crvs_t", RegistryType::Crvs)).await;
    let long_ago = OffsetDateTime::now_utc() - time::Duration::minutes(30);
    h.store
        .record_test_result("crvs_t", SourceState::Testing, long_ago, None)
        .await
        .unwrap();
    let engine = Engine::open(h.store.clone(), h.ops.clone());
    let fixed = engine
        .recover_interrupted_tests(Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(fixed, vec!["crvs_t".to_owned()]);
    let s = engine.source("crvs_t").await.unwrap();
    assert_eq!(s.state, SourceState::Error);
    assert!(s.last_error.unwrap().contains("did not finish"));

    // A test cut short (its future dropped) records an error, not `testing`.
    let e2 = engine.clone();
    let t = tokio::spawn(async move { e2.test_connection("crvs_t", TestOptions::default()).await });
    tokio::time::sleep(Duration::from_millis(2)).await;
    t.abort();
    let _ = t.await;
    let mut state = SourceState::Testing;
    for _ in 0..100 {
        state = engine.source("crvs_t").await.unwrap().state;
        if state != SourceState::Testing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(state, SourceState::Testing);
}

#[tokio::test]
async fn a_stored_token_is_refreshed_on_its_original_schedule() {
    let h = harness(Default::default()).await;
    add(&h, input(&h.sb, "crvs_tok", RegistryType::Crvs)).await;
    let id = h
        .store
        .get_data_source("crvs_tok")
        .await
        .unwrap()
        .unwrap()
        .id;
    let now = OffsetDateTime::now_utc();
    // A 20 s token obtained 17 s ago: past its refresh point (16 s), 3 s still left.
    h.store
        .put_token(
            id,
            &CachedToken {
                access_token: SecretString::from("old-token"),
                token_type: "Bearer".into(),
                expires_at: now + time::Duration::seconds(3),
                scope: None,
                obtained_at: Some(now - time::Duration::seconds(17)),
            },
        )
        .await
        .unwrap();
    let engine = Engine::open(h.store.clone(), h.ops.clone());
    let t = engine
        .client("crvs_tok")
        .await
        .unwrap()
        .token()
        .await
        .unwrap();
    assert_eq!(t.info.origin, dci_client::TokenOrigin::Fetched);
    assert_eq!(h.sb.token_requests(), 1);

    // A fresh stored token (obtained 1 s ago) is reused by the next process.
    let next = Engine::open(h.store.clone(), h.ops.clone());
    let t = next
        .client("crvs_tok")
        .await
        .unwrap()
        .token()
        .await
        .unwrap();
    assert_eq!(t.info.origin, dci_client::TokenOrigin::Stored);
    assert_eq!(h.sb.token_requests(), 1);
}

#[tokio::test]
async fn signing_keys_are_cached_and_a_revocation_through_the_engine_stops_them_at_once() {
    let h = harness(Default::default()).await;
    let engine = Engine::open(h.store.clone(), h.ops.clone());
    engine
        .keys()
        .generate(
            "k1",
            dci_protocol::signature::Algorithm::Ed25519,
            Default::default(),
        )
        .await
        .unwrap();
    let mut i = input(&h.sb, "crvs_signed", RegistryType::Crvs);
    i.signing_key_id = Some("k1".into());
    add(&h, i).await;
    let id = example(&h.sb, RegistryType::Crvs);
    let q = SearchQuery::one(SearchSpec::by_id(&id.to_string()).unwrap());
    let ops = engine.operations("crvs_signed").await.unwrap();
    for _ in 0..3 {
        let p = ops
            .prepare(&dci_client::Operation::Search(q.clone()))
            .await
            .unwrap();
        assert!(p.signed);
    }
    engine.keys().revoke("k1").await.unwrap();
    let e = ops
        .prepare(&dci_client::Operation::Search(q.clone()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
}

#[tokio::test]
async fn audit_entries_are_queued_and_all_written_by_close() {
    let h = harness(Default::default()).await;
    add(&h, input(&h.sb, "crvs_audit", RegistryType::Crvs)).await;
    let engine = Engine::open(h.store.clone(), h.ops.clone());
    let id = example(&h.sb, RegistryType::Crvs);
    let q = SearchQuery::one(SearchSpec::by_id(&id.to_string()).unwrap());
    let ops = engine.operations("crvs_audit").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (ops, q) = (ops.clone(), q.clone());
        tasks.push(tokio::spawn(async move { ops.search(&q).await.is_ok() }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    engine.close().await;
    let entries = h
        .store
        .list_audit(&AuditFilter {
            source_code: Some("crvs_audit".into()),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let searches = entries.iter().filter(|e| e.action == "sync_search").count();
    let tokens = entries.iter().filter(|e| e.action == "token").count();
    assert_eq!((searches, tokens), (40, 1), "{entries:#?}");
    assert!(
        entries
            .iter()
            .all(|e| e.outcome == dci_client::AuditOutcome::Ok)
    );
}
