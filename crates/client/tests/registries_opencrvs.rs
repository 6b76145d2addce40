//! The OpenCRVS profile against the sandbox's OpenCRVS quirk mode (`/opencrvs`, `/opencrvs-1.3`):
//! its envelope variant, credentials in the query string with a string `expires_in`, JWS-signed
//! replies verified against the JWKS, and the profile's selection and storage per data source.

use std::sync::Arc;

use dci_client::registries::{CrvsClient, IdRef, OpenCrvsVersion, Profile, VitalEventKind};
use dci_client::{
    AuthConfig, CredentialLocation, DataSource, DataSourceInput, DciClient, Endpoints,
    OAuth2Config, Operations, SignaturePolicy, SourceState, Store, TlsSettings,
};
use dci_protocol::RegistryType;
use dci_sandbox::{ClientConfig, ClientQuirks, Sandbox, SandboxConfig};
use dci_store::SqliteStore;
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

const CLIENT: &str = "opencrvs-client";
const SECRET: &str = "opencrvs-secret";

struct H {
    sb: Sandbox,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

async fn harness() -> H {
    let cfg = SandboxConfig::default()
        .clients([ClientConfig::new(CLIENT, SECRET).quirks(ClientQuirks::opencrvs())]);
    let sb = dci_sandbox::spawn(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.sqlite3").display()
    );
    let store = Arc::new(
        SqliteStore::connect(&url, &dci_client::MasterKey::from_bytes([9; 32]))
            .await
            .unwrap(),
    );
    H {
        sb,
        store,
        _dir: dir,
    }
}

fn source(sb: &Sandbox, prefix: &str, profile: Profile) -> DataSource {
    let now = OffsetDateTime::now_utc();
    DataSource {
        id: Uuid::new_v4(),
        code: "opencrvs".into(),
        name: "OpenCRVS".into(),
        registry_type: RegistryType::Crvs,
        base_url: format!("{}/{prefix}", sb.base_url()),
        auth: AuthConfig::OAuth2(OAuth2Config {
            token_url: sb.token_url(),
            client_id: CLIENT.into(),
            client_secret: SecretString::from(SECRET.to_owned()),
            scope: Some("crvs.read".into()),
            credential_location: CredentialLocation::Query,
        }),
        sender_id: Some("https://spmis.example.org".into()),
        receiver_id: None,
        callback_uri: None,
        endpoints: Endpoints::default(),
        tls: TlsSettings::default(),
        timeout_secs: 10,
        signing_key_id: None,
        // Keys come from the JWKS at the base URL's origin, as OpenCRVS serves it.
        reply_signature_policy: SignaturePolicy::Require,
        registry_public_keys: Vec::new(),
        registry_jwks_url: None,
        profile,
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

fn crvs(h: &H, s: DataSource) -> CrvsClient {
    let client = DciClient::builder(s).build().unwrap();
    CrvsClient::new(Operations::new(client, h.store.clone())).unwrap()
}

fn example(h: &H, i: usize) -> IdRef {
    let ex = &h.sb.examples()[&RegistryType::Crvs].found[i];
    IdRef::new(&ex.id_type, &ex.id_value)
}

fn sent_searches(h: &H) -> Vec<Value> {
    h.sb.requests()
        .into_iter()
        .filter(|r| r.endpoint.ends_with("/registry/sync/search"))
        .filter_map(|r| r.body)
        .collect()
}

const V1_5: Profile = Profile::OpenCrvs(OpenCrvsVersion::V1_5);
const V1_3: Profile = Profile::OpenCrvs(OpenCrvsVersion::V1_3);

#[tokio::test]
async fn opencrvs_profile_finds_people_and_verifies_signed_replies() {
    let h = harness().await;
    let c = crvs(&h, source(&h.sb, "opencrvs", V1_5));
    let alive = example(&h, 0);
    let p = c.person(&alive).await.unwrap().expect("found");
    assert_eq!(p.id("UIN"), Some(alive.value.as_str()));
    let brn = example(&h, 1);
    assert!(c.verify_birth(&brn).await.unwrap().is_some());
    assert!(
        c.verify_birth(&IdRef::new("BRN", "BRN-000000"))
            .await
            .unwrap()
            .is_none()
    );
    let dead = example(&h, 4);
    let d = c.check_death(&dead).await.unwrap().expect("known");
    assert!(d.deceased && d.death_date.is_some());
    let a = c.check_death(&alive).await.unwrap().expect("known");
    assert!(!a.deceased);
    assert!(
        c.check_death(&IdRef::new("UIN", "0000000000"))
            .await
            .unwrap()
            .is_none()
    );

    // The wire form: OpenCRVS's envelope variant, unsigned, with consent and locale.
    let sent = sent_searches(&h);
    assert!(!sent.is_empty());
    for env in &sent {
        assert!(env.get("signature").is_none(), "{env:#}");
        assert!(env["header"].get("is_msg_encrypted").is_none());
        let item = &env["message"]["search_request"][0];
        assert!(item["consent"].is_object() && item["locale"] == "eng");
        let c = &item["search_criteria"];
        assert_eq!(c["reg_type"], "ns:org:RegistryType:Civil");
        assert!(["birth", "death"].contains(&c["reg_event_type"].as_str().unwrap()));
        assert_eq!(c["sort"][0]["attribute_name"], "createdAt");
    }
    // The token was fetched with the credentials in the query string (`CredentialLocation::Query`)
    // from a client with OpenCRVS's token quirks (string `expires_in`).
    assert!(h.sb.tokens_issued() >= 1);
}

#[tokio::test]
async fn opencrvs_events_use_the_range_expression_of_each_version() {
    let h = harness().await;
    for (prefix, profile) in [("opencrvs", V1_5), ("opencrvs-1.3", V1_3)] {
        h.sb.clear_requests();
        let c = crvs(&h, source(&h.sb, prefix, profile));
        let births = c
            .events(
                VitalEventKind::Birth,
                Some("1900-01-01"),
                Some("2026-12-31"),
            )
            .await
            .unwrap();
        assert_eq!(births.len(), 80, "{prefix}: every birth, all pages");
        let deaths = c
            .events(
                VitalEventKind::Death,
                Some("2020-01-01"),
                Some("2026-12-31"),
            )
            .await
            .unwrap();
        assert!(!deaths.is_empty());
        for e in &deaths {
            assert!(e.date.as_deref().unwrap() >= "2020-01-01");
        }
        let sent = sent_searches(&h);
        let q = &sent[0]["message"]["search_request"][0]["search_criteria"];
        assert_eq!(q["query_type"], "expression");
        match profile {
            V1_3 => {
                assert_eq!(q["reg_type"], "birth");
                assert!(q.get("reg_event_type").is_none());
                assert_eq!(q["query"]["value"]["event_date"]["type"], "range");
            }
            _ => {
                assert_eq!(
                    q["query"]["value"]["expression"]["query"]["event_date"]["gte"],
                    "1900-01-01"
                );
            }
        }
        // A divorce is not an OpenCRVS event: the registry refuses it, and that is an error.
        let e = c
            .events(VitalEventKind::Divorce, Some("2000-01-01"), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("400"), "{e}");
    }
}

#[tokio::test]
async fn the_standard_profile_is_refused_by_opencrvs() {
    let h = harness().await;
    let c = crvs(&h, source(&h.sb, "opencrvs", Profile::Standard));
    let e = c.person(&example(&h, 0)).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("400") || msg.contains("expected expression"),
        "{msg}"
    );
}

#[tokio::test]
async fn replies_signed_by_another_key_fail_verification() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let h = harness().await;
    let other =
        dci_protocol::signature::SigningKey::generate(dci_protocol::signature::Algorithm::Ed25519)
            .unwrap()
            .verifying_key();
    let jwks = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"keys": [other.to_jwk("other")]})),
        )
        .mount(&jwks)
        .await;
    let mut s = source(&h.sb, "opencrvs", V1_5);
    s.registry_jwks_url = Some(format!("{}/jwks.json", jwks.uri()));
    let e = crvs(&h, s).person(&example(&h, 0)).await.unwrap_err();
    assert!(e.to_string().contains("signature"), "{e}");
    // With the registry's own JWKS it verifies.
    let mut s = source(&h.sb, "opencrvs", V1_5);
    s.registry_jwks_url = Some(h.sb.jwks_url());
    assert!(crvs(&h, s).person(&example(&h, 0)).await.unwrap().is_some());
}

fn input(profile: &str, registry: &str, sender: &str) -> DataSourceInput {
    DataSourceInput {
        code: "ocrvs".into(),
        name: "OpenCRVS".into(),
        registry_type: registry.into(),
        base_url: "https://crvs.example.org/api".into(),
        auth: Some("oauth2".into()),
        token_url: Some("https://crvs.example.org/oauth2/client/token".into()),
        client_id: Some("c".into()),
        client_secret: Some(SecretString::from("s".to_owned())),
        credential_location: Some("query".into()),
        sender_id: Some(sender.into()),
        profile: Some(profile.into()),
        ..DataSourceInput::default()
    }
}

#[tokio::test]
async fn the_profile_is_validated_and_stored_per_data_source() {
    let s = input("opencrvs", "crvs", "https://spmis.example.org")
        .validate()
        .unwrap();
    assert_eq!(s.profile, V1_5);
    assert_eq!(s.to_redacted_json()["profile"], "opencrvs-1.5");
    let e = input("opencrvs-1.3", "dr", "https://spmis.example.org")
        .validate()
        .unwrap_err();
    assert!(e.has("profile"), "{e}");
    let e = input("opencrvs", "crvs", "spmis.example.org")
        .validate()
        .unwrap_err();
    assert!(e.has("sender_id"), "{e}");
    let e = input("opencrvs-9", "crvs", "https://x.example.org")
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("opencrvs-1.3"), "{e}");
    assert_eq!(
        input("", "dr", "x").validate().unwrap().profile,
        Profile::Standard
    );

    let h = harness().await;
    let s = input("opencrvs-1.3", "crvs", "https://spmis.example.org")
        .validate()
        .unwrap();
    h.store.create_data_source(&s).await.unwrap();
    let back = h.store.get_data_source("ocrvs").await.unwrap().unwrap();
    assert_eq!(back.profile, V1_3);
    // An edit that leaves the profile out keeps it.
    let mut edit = DataSourceInput::from_source(&back);
    edit.profile = None;
    edit.notes = Some("edited".into());
    assert_eq!(edit.validate_update(&back).unwrap().profile, V1_3);
}

#[tokio::test]
async fn opencrvs_down_is_an_error_not_not_found() {
    let h = harness().await;
    let c = crvs(&h, source(&h.sb, "opencrvs", V1_5));
    let mut f = dci_sandbox::Faults::new(dci_sandbox::FaultTarget::Crvs);
    f.down = Some(true);
    h.sb.set_faults(f).unwrap();
    assert!(c.person(&example(&h, 0)).await.is_err());
    assert!(c.check_death(&example(&h, 4)).await.is_err());
    assert!(
        c.events(VitalEventKind::Birth, Some("2000-01-01"), None)
            .await
            .is_err()
    );
}
