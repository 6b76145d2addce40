//! The staged connection test against good and broken sources.

use dci_client::{
    AuthConfig, CredentialLocation, DciClient, SourceState, Stage, StageStatus, TestOptions,
    test_connection,
};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

async fn good_registry() -> MockServer {
    let server = MockServer::start().await;
    mount_token(&server, "tok-good", json!(3600)).await;
    Mock::given(method("GET"))
        .and(path("/registry/ping"))
        .and(header("authorization", "Bearer tok-good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "ok"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/registry/sync/search"))
        .and(header("authorization", "Bearer tok-good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sync_ok_body()))
        .mount(&server)
        .await;
    server
}

fn statuses(r: &dci_client::TestReport) -> Vec<(&'static str, &'static str)> {
    r.stages
        .iter()
        .map(|s| (s.stage.as_str(), s.status.as_str()))
        .collect()
}

#[tokio::test]
async fn a_good_oauth2_source_passes_every_stage_and_becomes_active() {
    let server = good_registry().await;
    let token_url = format!("{}/token", server.uri());
    let mut src = source(&server.uri(), oauth2(&token_url, CredentialLocation::Body));
    src.callback_uri = Some(format!("{}/callback", server.uri()));
    let store = MemStore::new();
    let c = DciClient::builder(src)
        .store(store.clone())
        .build()
        .unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions { probe_search: true }).await;
    assert_eq!(
        statuses(&r),
        [
            ("dns", "pass"),
            ("connect", "warn"), // plain http
            ("token", "pass"),
            ("ping", "pass"),
            ("probe_search", "pass"),
            ("callback", "pass"),
        ],
        "{r:#?}"
    );
    assert!(r.ok && r.verified);
    assert_eq!(r.state, SourceState::Active);
    let states = store.states.lock().unwrap().clone();
    assert_eq!(states.first().map(|s| s.1), Some(SourceState::Testing));
    assert_eq!(
        states.last().map(|s| (s.1, s.2.clone())),
        Some((SourceState::Active, None))
    );
    // The probe is a valid sync search by the official CRVS schema.
    let probe = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/registry/sync/search")
        .unwrap();
    let probe: serde_json::Value = serde_json::from_slice(&probe.body).unwrap();
    dci_protocol::conformance::validate_request(
        dci_protocol::RegistryType::Crvs,
        "/registry/sync/search",
        &probe,
    )
    .unwrap_or_else(|errs| panic!("{errs:#?}\n{probe:#}"));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["stages"][3]["status"], "pass");
    assert!(!json.to_string().contains("tok-good"));
}

#[tokio::test]
async fn wrong_client_secret_fails_at_the_token_stage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        ))
        .mount(&server)
        .await;
    let token_url = format!("{}/token", server.uri());
    let store = MemStore::new();
    let c = DciClient::builder(source(
        &server.uri(),
        oauth2(&token_url, CredentialLocation::Body),
    ))
    .store(store.clone())
    .build()
    .unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions::default()).await;
    let token = r.stage(Stage::Token).unwrap();
    assert_eq!(token.status, StageStatus::Fail);
    assert_eq!(token.error_class, Some("auth"));
    assert!(
        token.message.contains("client authentication failed"),
        "{}",
        token.message
    );
    assert!(
        token.message.contains("client id and secret"),
        "{}",
        token.message
    );
    assert_eq!(r.stage(Stage::Ping).unwrap().status, StageStatus::Skipped);
    assert!(!r.ok);
    let last = store.states.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.1, SourceState::Error);
    assert!(last.2.unwrap().contains("credentials / token failed"));
}

#[tokio::test]
async fn a_missing_ping_is_reachable_but_not_verified_never_success() {
    let server = MockServer::start().await;
    let auth = AuthConfig::Bearer {
        token: secrecy::SecretString::from("b".to_owned()),
    };
    let c = DciClient::builder(source(&server.uri(), auth))
        .build()
        .unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions::default()).await;
    let ping = r.stage(Stage::Ping).unwrap();
    assert_eq!(ping.status, StageStatus::Warn);
    assert!(
        ping.message.contains("reachable, not verified"),
        "{}",
        ping.message
    );
    assert!(!r.ok && !r.verified);
    assert_eq!(r.state, SourceState::Error);
}

#[tokio::test]
async fn unknown_host_and_refused_port_stop_early_with_a_fix() {
    let c = DciClient::builder(source("http://registry.invalid", AuthConfig::None))
        .build()
        .unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions::default()).await;
    assert_eq!(r.stage(Stage::Dns).unwrap().status, StageStatus::Fail);
    assert!(r.stage(Stage::Dns).unwrap().message.contains("base URL"));
    assert_eq!(
        r.stage(Stage::Connect).unwrap().status,
        StageStatus::Skipped
    );
    assert_eq!(r.stage(Stage::Token).unwrap().status, StageStatus::Skipped);

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = DciClient::builder(source(
        &format!("http://127.0.0.1:{port}"),
        AuthConfig::None,
    ))
    .build()
    .unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions::default()).await;
    assert_eq!(r.stage(Stage::Dns).unwrap().status, StageStatus::Pass);
    let connect = r.stage(Stage::Connect).unwrap();
    assert_eq!(
        (connect.status, connect.error_class),
        (StageStatus::Fail, Some("connect"))
    );
    assert!(
        r.summary.contains("TCP/TLS connection failed"),
        "{}",
        r.summary
    );
}

#[tokio::test]
async fn an_expired_certificate_fails_the_connect_stage() {
    let now = time::OffsetDateTime::now_utc();
    let cert = self_signed(
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    );
    let server = tls_server(&cert).await;
    let ca = pem_file(&cert.cert_pem);
    let mut src = source(
        &format!("https://localhost:{}", server.port),
        AuthConfig::None,
    );
    src.tls.ca_file = Some(ca.path().to_owned());
    let c = DciClient::builder(src).build().unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions::default()).await;
    let connect = r.stage(Stage::Connect).unwrap();
    assert_eq!(
        (connect.status, connect.error_class),
        (StageStatus::Fail, Some("tls")),
        "{r:#?}"
    );
    assert!(connect.message.contains("expired"));
}

#[tokio::test]
async fn an_unreachable_callback_uri_fails_its_stage() {
    let server = good_registry().await;
    let token_url = format!("{}/token", server.uri());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut src = source(&server.uri(), oauth2(&token_url, CredentialLocation::Body));
    src.callback_uri = Some(format!("http://127.0.0.1:{port}/dci/callback"));
    let c = DciClient::builder(src).build().unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions::default()).await;
    let cb = r.stage(Stage::Callback).unwrap();
    assert_eq!(cb.status, StageStatus::Fail, "{r:#?}");
    assert!(cb.message.contains("callback URI"), "{}", cb.message);
    assert_eq!(r.stage(Stage::Ping).unwrap().status, StageStatus::Pass);
    assert!(!r.ok);
}

/// The callback stage of a source whose callback URI answers, with `tweak` applied.
async fn callback_stage(
    tweak: impl FnOnce(&mut dci_client::DataSource),
) -> dci_client::StageReport {
    let server = good_registry().await;
    let token_url = format!("{}/token", server.uri());
    let mut src = source(&server.uri(), oauth2(&token_url, CredentialLocation::Body));
    src.callback_uri = Some(format!("{}/callback", server.uri()));
    tweak(&mut src);
    let c = DciClient::builder(src).build().unwrap();
    let r = test_connection(&ops_for(c).await, TestOptions::default()).await;
    r.stage(Stage::Callback).unwrap().clone()
}

#[tokio::test]
async fn accepting_unauthenticated_callbacks_is_flagged_unsafe() {
    let cb = callback_stage(|s| s.callbacks.accept_unauthenticated = true).await;
    assert_eq!(cb.status, StageStatus::Warn, "{cb:#?}");
    assert!(
        cb.message.contains("callbacks.accept_unauthenticated") && cb.message.contains("unsafe"),
        "{}",
        cb.message
    );
}

#[tokio::test]
async fn a_source_without_a_callback_secret_is_told_how_to_get_one() {
    let cb = callback_stage(|s| s.callbacks.secret = None).await;
    assert_eq!(cb.status, StageStatus::Warn, "{cb:#?}");
    assert!(
        cb.message.contains("no callback secret") && cb.message.contains("regenerate"),
        "{}",
        cb.message
    );
    // Requiring signatures authenticates callbacks without a secret.
    let cb = callback_stage(|s| {
        s.callbacks.secret = None;
        s.reply_signature_policy = dci_client::SignaturePolicy::Require;
        s.registry_jwks_url = Some("https://registry.example/jwks.json".into());
    })
    .await;
    assert_eq!(cb.status, StageStatus::Pass, "{cb:#?}");
}
