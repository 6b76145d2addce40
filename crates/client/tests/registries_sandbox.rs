//! Typed registry clients against the sandbox over real HTTP, with a real SQLite store: each
//! call's found / not-found / rejected / registry-down paths, the DR cache, IBR's fail-closed
//! duplication check, and refusal of data sources of the wrong registry type.

use std::sync::Arc;
use std::time::Duration;

use dci_client::registries::{
    CrvsClient, DisabilityStatusKind, DrCacheSettings, DrClient, FarmerClient, IbrClient, IdRef,
    SocialClient, VitalEventKind,
};
use dci_client::{
    AuthConfig, CredentialLocation, DataSource, DciClient, Endpoints, OAuth2Config, Operations,
    RetryPolicy, SignaturePolicy, SourceState, TlsSettings,
};
use dci_protocol::RegistryType;
use dci_sandbox::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, FaultTarget, Faults, Sandbox, SandboxConfig,
};
use dci_store::SqliteStore;
use secrecy::SecretString;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

struct H {
    sb: Sandbox,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

async fn harness(cfg: SandboxConfig) -> H {
    let sb = dci_sandbox::spawn(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.sqlite3").display()
    );
    let store = Arc::new(
        SqliteStore::connect(&url, &dci_client::MasterKey::from_bytes([7; 32]))
            .await
            .unwrap(),
    );
    H {
        sb,
        store,
        _dir: dir,
    }
}

fn source(sb: &Sandbox, registry: RegistryType) -> DataSource {
    let now = OffsetDateTime::now_utc();
    DataSource {
        id: Uuid::new_v4(),
        code: format!("{}_main", registry.as_str()),
        name: format!("{registry} sandbox"),
        registry_type: registry,
        base_url: sb.registry_url(registry),
        auth: AuthConfig::OAuth2(OAuth2Config {
            token_url: sb.token_url(),
            client_id: DEMO_CLIENT_ID.into(),
            client_secret: SecretString::from(DEMO_CLIENT_SECRET.to_owned()),
            scope: Some(dci_sandbox::read_scope(registry)),
            credential_location: CredentialLocation::Body,
        }),
        sender_id: Some("spmis.example.org".into()),
        receiver_id: Some(sb.registry_id().to_owned()),
        callback_uri: None,
        endpoints: Endpoints::default(),
        tls: TlsSettings::default(),
        timeout_secs: 10,
        signing_key_id: None,
        reply_signature_policy: SignaturePolicy::IfPresent,
        registry_public_keys: Vec::new(),
        registry_jwks_url: Some(sb.jwks_url()),
        profile: Default::default(),
        callbacks: Default::default(),
        recovery: Default::default(),
        retry: Default::default(),
        limits: Default::default(),
        active: true,
        notes: String::new(),
        state: SourceState::Active,
        last_test_at: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}

fn ops_for(h: &H, s: DataSource) -> Operations {
    let client = DciClient::builder(s)
        .retry_policy(RetryPolicy {
            max_retries: 1,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(10),
            budget: Duration::from_millis(200),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    Operations::new(client, h.store.clone())
}

fn ops(h: &H, registry: RegistryType) -> Operations {
    ops_for(h, source(&h.sb, registry))
}

fn found(h: &H, registry: RegistryType, i: usize) -> IdRef {
    let ex = &h.sb.examples()[&registry].found[i];
    IdRef::new(&ex.id_type, &ex.id_value)
}

fn missing(h: &H, registry: RegistryType) -> IdRef {
    let ex = &h.sb.examples()[&registry].not_found;
    IdRef::new(&ex.id_type, &ex.id_value)
}

fn down(h: &H, registry: RegistryType) {
    let mut f = Faults::new(FaultTarget::from(registry));
    f.down = Some(true);
    h.sb.set_faults(f).unwrap();
}

/// A sandbox that requires signatures it cannot check: every registry call is refused.
async fn refusing() -> H {
    harness(SandboxConfig::default().signature_policy(dci_sandbox::SignaturePolicy::Require)).await
}

fn requests_to(h: &H, suffix: &str) -> usize {
    h.sb.requests()
        .iter()
        .filter(|r| r.endpoint.ends_with(suffix))
        .count()
}

#[tokio::test]
async fn each_client_refuses_a_source_of_another_registry_type() {
    let h = harness(SandboxConfig::default()).await;
    let e = CrvsClient::new(ops(&h, RegistryType::Dr)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("registry_type:") && msg.contains("dr_main") && msg.contains("not crvs"),
        "{msg}"
    );
    assert!(DrClient::new(ops(&h, RegistryType::Crvs)).is_err());
    assert!(IbrClient::new(ops(&h, RegistryType::Social)).is_err());
    assert!(SocialClient::new(ops(&h, RegistryType::Fr)).is_err());
    assert!(FarmerClient::new(ops(&h, RegistryType::Ibr)).is_err());
}

#[tokio::test]
async fn crvs_person_birth_and_death_found_and_not_found() {
    let h = harness(SandboxConfig::default()).await;
    let crvs = CrvsClient::new(ops(&h, RegistryType::Crvs)).unwrap();
    let alive = found(&h, RegistryType::Crvs, 0);
    let p = crvs.person(&alive).await.unwrap().expect("found");
    assert_eq!(p.id("UIN"), Some(alive.value.as_str()));
    assert!(!p.deceased && p.birth_date.is_some() && p.name.is_some());
    assert_eq!(
        p.raw["identifier"]["identifier_value"],
        alive.value.as_str()
    );
    assert!(
        crvs.person(&missing(&h, RegistryType::Crvs))
            .await
            .unwrap()
            .is_none()
    );

    let brn = found(&h, RegistryType::Crvs, 1);
    let b = crvs
        .verify_birth(&brn)
        .await
        .unwrap()
        .expect("birth record");
    assert_eq!(b.id("BRN"), Some(brn.value.as_str()));
    assert!(
        crvs.verify_birth(&IdRef::new("BRN", "BRN-000000"))
            .await
            .unwrap()
            .is_none()
    );

    let dead = found(&h, RegistryType::Crvs, 4);
    let d = crvs
        .check_death(&dead)
        .await
        .unwrap()
        .expect("known person");
    assert!(
        d.deceased && d.death_date.is_some() && d.drn.is_some(),
        "{d:?}"
    );
    let a = crvs
        .check_death(&alive)
        .await
        .unwrap()
        .expect("known person");
    assert!(!a.deceased && a.death_date.is_none());
    assert!(
        crvs.check_death(&missing(&h, RegistryType::Crvs))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn crvs_events_follow_pages_to_the_end_and_stay_in_range() {
    let h = harness(SandboxConfig::default()).await;
    let crvs = CrvsClient::new(ops(&h, RegistryType::Crvs)).unwrap();
    let all = crvs
        .events(
            VitalEventKind::Birth,
            Some("1900-01-01"),
            Some("2026-12-31"),
        )
        .await
        .unwrap();
    // 80 seeded people, 50 per page: the client had to ask for page 2.
    assert_eq!(all.len(), 80, "every birth");
    assert!(requests_to(&h, "/crvs/registry/sync/search") >= 2);
    let some = crvs
        .events(
            VitalEventKind::Death,
            Some("2000-01-01"),
            Some("2026-12-31"),
        )
        .await
        .unwrap();
    for e in &some {
        let d = e.date.as_deref().unwrap();
        assert!(("2000-01-01"..="2026-12-31").contains(&d), "{d}");
        assert!(e.person.deceased);
    }
    let none = crvs
        .events(
            VitalEventKind::Divorce,
            Some("1800-01-01"),
            Some("1800-12-31"),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    let e = crvs
        .events(VitalEventKind::Birth, Some("01/02/2020"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("from:"), "{e}");
}

#[tokio::test]
async fn crvs_rejected_and_down_are_errors_not_not_found() {
    let h = refusing().await;
    let crvs = CrvsClient::new(ops(&h, RegistryType::Crvs)).unwrap();
    let e = crvs
        .person(&found(&h, RegistryType::Crvs, 0))
        .await
        .unwrap_err();
    assert!(e.is_rejected(), "{e}");
    assert!(e.registry_error().is_some(), "{e:?}");

    let h = harness(SandboxConfig::default()).await;
    let crvs = CrvsClient::new(ops(&h, RegistryType::Crvs)).unwrap();
    down(&h, RegistryType::Crvs);
    let id = found(&h, RegistryType::Crvs, 0);
    assert!(crvs.person(&id).await.is_err());
    assert!(crvs.check_death(&id).await.is_err());
    assert!(
        crvs.events(VitalEventKind::Birth, Some("2000-01-01"), None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn crvs_subscribe_reports_each_kind() {
    let h = harness(SandboxConfig::default()).await;
    let mut s = source(&h.sb, RegistryType::Crvs);
    // Nothing listens there: the sandbox's callback fails, but the ACK is what we check.
    s.callback_uri = Some("http://127.0.0.1:9/callback/crvs_main".into());
    let crvs = CrvsClient::new(ops_for(&h, s)).unwrap();
    let out = crvs
        .subscribe(&[VitalEventKind::Birth, VitalEventKind::Death])
        .await;
    assert_eq!(out.len(), 2);
    for o in &out {
        let ack = o.result.as_ref().unwrap();
        assert_eq!(ack.ack_status, "ACK");
    }
    // Without a callback URI each kind fails on its own, naming the field.
    let crvs = CrvsClient::new(ops(&h, RegistryType::Crvs)).unwrap();
    let out = crvs.subscribe(&[VitalEventKind::Marriage]).await;
    let e = out[0].result.as_ref().unwrap_err();
    assert!(e.to_string().starts_with("callback_uri:"), "{e}");
}

#[tokio::test]
async fn dr_status_details_support_found_not_found() {
    let h = harness(SandboxConfig::default()).await;
    let dr = DrClient::new(ops(&h, RegistryType::Dr)).unwrap();
    let approved = found(&h, RegistryType::Dr, 0);
    let s = dr.status(&approved).await.unwrap().expect("found");
    assert!(s.disabled);
    assert_eq!(s.status, Some(DisabilityStatusKind::Approved));
    let pending = found(&h, RegistryType::Dr, 1);
    let s = dr.status(&pending).await.unwrap().expect("found");
    assert!(!s.disabled);
    assert_eq!(s.status, Some(DisabilityStatusKind::Pending));
    let expired = found(&h, RegistryType::Dr, 2);
    assert_eq!(
        dr.status(&expired).await.unwrap().unwrap().status,
        Some(DisabilityStatusKind::Expired)
    );
    let nobody = missing(&h, RegistryType::Dr);
    assert!(dr.status(&nobody).await.unwrap().is_none());

    let by_search = dr.status_by_search(&approved).await.unwrap().unwrap();
    assert!(by_search.disabled && by_search.raw["personal_details"].is_object());
    assert!(dr.status_by_search(&nobody).await.unwrap().is_none());

    let d = dr.details(&approved).await.unwrap().expect("details");
    assert_eq!(d.impairment_types.len(), 1);
    assert!(dr.details(&nobody).await.unwrap().is_none());
    let sup = dr
        .disability_support(&approved)
        .await
        .unwrap()
        .expect("support");
    assert!(sup.human_assistance.is_some() && !sup.medical_care.is_empty());
    assert!(dr.disability_support(&nobody).await.unwrap().is_none());
}

#[tokio::test]
async fn dr_cache_keeps_found_and_not_found_only_briefly() {
    let h = harness(SandboxConfig::default()).await;
    let dr = DrClient::with_cache(
        ops(&h, RegistryType::Dr),
        DrCacheSettings {
            ttl: Duration::from_secs(3600),
            not_found_ttl: Duration::ZERO,
            capacity: 100,
        },
    )
    .unwrap();
    let id = found(&h, RegistryType::Dr, 0);
    assert!(!dr.status(&id).await.unwrap().unwrap().cached);
    assert!(dr.status(&id).await.unwrap().unwrap().cached);
    assert_eq!(
        requests_to(&h, "/sync/disabled"),
        1,
        "the second answer came from the cache"
    );

    let nobody = missing(&h, RegistryType::Dr);
    assert!(dr.status(&nobody).await.unwrap().is_none());
    assert!(dr.status(&nobody).await.unwrap().is_none());
    assert_eq!(
        requests_to(&h, "/sync/disabled"),
        3,
        "a not-found is asked again, never kept as 'not disabled'"
    );

    // An error is not cached either: after the outage the registry is asked again.
    let other = found(&h, RegistryType::Dr, 1);
    down(&h, RegistryType::Dr);
    assert!(dr.status(&other).await.is_err());
    h.sb.clear_faults();
    assert!(dr.status(&other).await.unwrap().is_some());
}

#[tokio::test]
async fn dr_rejected_and_down_are_errors() {
    let h = refusing().await;
    let dr = DrClient::new(ops(&h, RegistryType::Dr)).unwrap();
    let id = found(&h, RegistryType::Dr, 0);
    assert!(dr.status(&id).await.unwrap_err().is_rejected());
    assert!(dr.details(&id).await.unwrap_err().is_rejected());
    assert!(dr.disability_support(&id).await.unwrap_err().is_rejected());

    let h = harness(SandboxConfig::default()).await;
    let dr = DrClient::new(ops(&h, RegistryType::Dr)).unwrap();
    down(&h, RegistryType::Dr);
    assert!(dr.status(&id).await.is_err());
    assert!(dr.details(&id).await.is_err());
    assert!(dr.disability_support(&id).await.is_err());
}

#[tokio::test]
async fn ibr_enrolled_beneficiaries_and_dedupe() {
    let h = harness(SandboxConfig::default()).await;
    let ibr = IbrClient::new(ops(&h, RegistryType::Ibr)).unwrap();
    let two = found(&h, RegistryType::Ibr, 0);
    let e = ibr.enrolled(&two).await.unwrap().expect("enrolled");
    assert!(e.enrolled);
    assert_eq!(e.programmes.len(), 2, "{e:?}");
    let nobody = missing(&h, RegistryType::Ibr);
    assert!(ibr.enrolled(&nobody).await.unwrap().is_none());

    let b = ibr.beneficiaries(&two).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].member_identifier.as_deref(), Some(two.value.as_str()));
    assert!(ibr.beneficiaries(&nobody).await.unwrap().is_empty());

    let d = ibr.dedupe(std::slice::from_ref(&two)).await.unwrap();
    assert!(d.duplicate);
    assert_eq!(d.programmes.len(), 2);
    let d = ibr.dedupe(std::slice::from_ref(&nobody)).await.unwrap();
    assert!(!d.duplicate && d.programmes.is_empty());
    assert!(ibr.dedupe(&[]).await.unwrap_err().is_invalid_input());
}

#[tokio::test]
async fn ibr_push_enrolment_is_then_found() {
    let h = harness(SandboxConfig::default()).await;
    let ibr = IbrClient::new(ops(&h, RegistryType::Ibr)).unwrap();
    let new = IdRef::new("UIN", "5550001112");
    assert!(ibr.enrolled(&new).await.unwrap().is_none());
    let out = ibr
        .push_enrolments(vec![json!({
            "member": {"member_identifier": new.value},
            "programme_identifier": {"programme": {"programme_identifier": "PRG-CT-01",
                "programme_name": "Child Grant"}, "enrolment_status": "Active",
                "enrolment_date": "2026-11-01"},
        })])
        .await
        .unwrap();
    assert!(out.all_accepted, "{out:?}");
    let e = ibr.enrolled(&new).await.unwrap().expect("now enrolled");
    assert_eq!(e.programmes[0].key(), Some("PRG-CT-01"));
    assert!(ibr.dedupe(&[new]).await.unwrap().duplicate);
    assert!(
        ibr.push_enrolments(vec![])
            .await
            .unwrap_err()
            .is_invalid_input()
    );
}

#[tokio::test]
async fn ibr_dedupe_fails_closed_when_rejected_or_down() {
    let h = refusing().await;
    let ibr = IbrClient::new(ops(&h, RegistryType::Ibr)).unwrap();
    let id = found(&h, RegistryType::Ibr, 0);
    let e = ibr.dedupe(std::slice::from_ref(&id)).await.unwrap_err();
    assert!(e.is_rejected(), "{e}");
    assert!(ibr.enrolled(&id).await.unwrap_err().is_rejected());

    let h = harness(SandboxConfig::default()).await;
    let ibr = IbrClient::new(ops(&h, RegistryType::Ibr)).unwrap();
    let nobody = missing(&h, RegistryType::Ibr);
    down(&h, RegistryType::Ibr);
    // One identifier answered, one not: still an error, never "no duplicate".
    assert!(ibr.dedupe(&[nobody.clone(), id.clone()]).await.is_err());
    assert!(ibr.dedupe(&[nobody]).await.is_err());
}

#[tokio::test]
async fn ibr_dedupe_fails_closed_on_unreadable_replies() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let h = harness(SandboxConfig::default()).await;
    for body in [
        json!({"message": {"transaction_id": "t"}}),
        json!({"message": {"enrolled_response": [{"reference_id": "r", "status": "succ"}]}}),
        json!({"message": {"enrolled_response": [{"status": "succ", "enrolled_status": "maybe"}]}}),
        json!({"message": {"enrolled_response": [{"status": "succ", "enrolled_status": "no",
            "enrolments": [{"programme": {"programme_identifier": "P"}}]}]}}),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/registry/sync/enrolled"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&body))
            .mount(&server)
            .await;
        let mut s = source(&h.sb, RegistryType::Ibr);
        s.base_url = server.uri();
        s.auth = AuthConfig::None;
        s.reply_signature_policy = SignaturePolicy::Off;
        let ibr = IbrClient::new(ops_for(&h, s)).unwrap();
        let e = ibr
            .dedupe(&[IdRef::new("UIN", "1")])
            .await
            .expect_err(&format!("{body} must not read as 'no duplicate'"));
        assert!(e.to_string().contains("unreadable"), "{e}");
    }
}

#[tokio::test]
async fn social_group_member_household() {
    let h = harness(SandboxConfig::default()).await;
    let social = SocialClient::new(ops(&h, RegistryType::Social)).unwrap();
    let hh = found(&h, RegistryType::Social, 0);
    let g = social.group(&hh).await.unwrap().expect("group");
    assert_eq!(g.identifiers[0], hh);
    assert!(g.members.len() >= 2);
    assert_eq!(g.size, Some(g.members.len() as u64));
    assert!(g.head.is_some());
    let uin = found(&h, RegistryType::Social, 1);
    let m = social.member(&uin).await.unwrap().expect("member");
    assert_eq!(m.member_identifier.as_deref(), Some(uin.value.as_str()));
    assert!(m.name.is_some());
    let house = social.household(&uin).await.unwrap();
    assert!(
        house
            .iter()
            .any(|x| x.member_identifier.as_deref() == Some(&uin.value))
    );
    let nobody = missing(&h, RegistryType::Social);
    assert!(social.group(&nobody).await.unwrap().is_none());
    assert!(
        social
            .member(&IdRef::new("UIN", "0000000000"))
            .await
            .unwrap()
            .is_none()
    );
    // The member search asked for members: response_entity went on the wire.
    let sent = h.sb.requests();
    assert!(sent.iter().any(|r| r.body.as_ref().is_some_and(|b| {
        b.pointer("/message/search_request/0/search_criteria/response_entity")
            == Some(&json!("Member"))
    })));

    down(&h, RegistryType::Social);
    assert!(social.group(&hh).await.is_err());
    let h = refusing().await;
    let social = SocialClient::new(ops(&h, RegistryType::Social)).unwrap();
    assert!(social.member(&uin).await.unwrap_err().is_rejected());
}

#[tokio::test]
async fn fr_farmer_found_not_found_rejected_down() {
    let h = harness(SandboxConfig::default()).await;
    let fr = FarmerClient::new(ops(&h, RegistryType::Fr)).unwrap();
    let id = found(&h, RegistryType::Fr, 0);
    let f = fr.farmer(&id).await.unwrap().expect("farmer");
    assert_eq!(f.member_identifier.as_deref(), Some(id.value.as_str()));
    assert!(f.farm_type.is_some() && f.raw["farm_details"].is_object());
    assert!(
        fr.farmer(&missing(&h, RegistryType::Fr))
            .await
            .unwrap()
            .is_none()
    );
    down(&h, RegistryType::Fr);
    assert!(fr.farmer(&id).await.is_err());
    let h = refusing().await;
    let fr = FarmerClient::new(ops(&h, RegistryType::Fr)).unwrap();
    assert!(fr.farmer(&id).await.unwrap_err().is_rejected());
}

/// The callback receiver of the operations tests (`ops/support.rs`), which calls `ingest`.
#[allow(dead_code)]
#[path = "ops/support.rs"]
mod support;

/// Polls `probe` every 20 ms for up to 10 s; `None` when it never answered.
async fn poll<T, F, Fut>(mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..500 {
        if let Some(v) = probe().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn crvs_subscription_notifications_arrive_as_typed_events() {
    use dci_client::Store;
    use dci_client::ops::{IngestContext, list_notifications, list_subscriptions};

    let h = harness(SandboxConfig::default()).await;
    let receiver = support::receiver(IngestContext::new(h.store.clone(), h.store.clone())).await;
    let mut s = source(&h.sb, RegistryType::Crvs);
    s.callback_uri = Some(format!("{}/callback/{}", receiver.base, s.code));
    h.store.create_data_source(&s).await.unwrap();
    let code = s.code.clone();
    let crvs = CrvsClient::new(ops_for(&h, s)).unwrap();

    let out = crvs.subscribe(&[VitalEventKind::Birth]).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, VitalEventKind::Birth);
    assert_eq!(out[0].result.as_ref().unwrap().ack_status, "ACK");
    // The subscription code arrives with on-subscribe.
    let sub_code = poll(|| async {
        list_subscriptions(h.store.as_ref(), Some(&code))
            .await
            .unwrap()
            .into_iter()
            .next()
            .map(|s| s.code)
    })
    .await
    .unwrap_or_else(|| panic!("no subscription code: {:?}", receiver.received()));

    assert_eq!(h.sb.notify(RegistryType::Crvs, Some(&sub_code)).await, 1);
    let events = poll(|| async {
        let ev = crvs.notifications(10).await.unwrap();
        (!ev.is_empty()).then_some(ev)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no notification ingested: receiver {:?}, sandbox {:?}",
            receiver.received(),
            h.sb.callbacks()
        )
    });
    let delivered: Vec<_> =
        h.sb.callbacks()
            .into_iter()
            .filter(|c| c.action == "notify")
            .collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].status, Some(200), "{delivered:?}");

    // What the sandbox sent, as the receiver stored it.
    let stored = list_notifications(h.store.as_ref(), Some(&code), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].transaction_id.as_deref(),
        Some(delivered[0].transaction_id.as_str())
    );
    let sent = stored[0].body["message"]["notify_event"]
        .as_array()
        .expect("notify_event")
        .clone();
    assert!(!sent.is_empty());
    assert_eq!(events.len(), sent.len(), "one typed event per notify_event");

    for (ev, item) in events.iter().zip(&sent) {
        let data = &item["data"];
        assert_eq!(ev.subscription_code.as_deref(), Some(sub_code.as_str()));
        assert_eq!(ev.kind, Some(VitalEventKind::Birth), "{item:#}");
        assert_eq!(ev.event_type.as_deref(), data["reg_event_type"].as_str());
        assert_eq!(&ev.raw, item);
        assert_eq!(ev.people.len(), 1, "{item:#}");
        let p = &ev.people[0];
        let rec = &data["reg_records"];
        let id_type = rec["identifier"]["identifier_type"].as_str().unwrap();
        let id_value = rec["identifier"]["identifier_value"].as_str().unwrap();
        assert_eq!(p.id(id_type), Some(id_value), "{p:?}");
        assert_eq!(p.birth_date.as_deref(), rec["birth_date"].as_str());
        assert!(
            p.birth_date.is_some(),
            "a birth carries a birth date: {rec:#}"
        );
        assert_eq!(&p.raw, rec);

        // The same person as the registry's seeded record answers a direct lookup.
        let seeded = crvs
            .person(&IdRef::new(id_type, id_value))
            .await
            .unwrap()
            .expect("the notified person is in the registry");
        assert_eq!(p.identifiers, seeded.identifiers);
        assert_eq!(p.name, seeded.name);
        assert!(p.name.is_some(), "{rec:#}");
        assert_eq!(p.sex, seeded.sex);
        assert_eq!(p.birth_date, seeded.birth_date);
        assert_eq!(p.deceased, seeded.deceased);
    }
}
