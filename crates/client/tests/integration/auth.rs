//! Auth types, credential placements, the token cache and the 401 path.

use std::sync::Arc;
use std::time::Duration;

use dci_client::{
    AuthConfig, CredentialLocation, DciClient, DciRequest, Endpoint, TokenOrigin, TokenSettings,
};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{
    body_json, body_string_contains, header, header_exists, method, path, query_param,
};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::*;

fn search() -> DciRequest {
    DciRequest::new(Endpoint::SyncSearch, sync_search_envelope())
}

async fn registry_accepting(server: &MockServer, authz: &str) {
    Mock::given(method("POST"))
        .and(path("/registry/sync/search"))
        .and(header("authorization", authz))
        .respond_with(ResponseTemplate::new(200).set_body_json(sync_ok_body()))
        .mount(server)
        .await;
}

#[tokio::test]
async fn no_auth_sends_no_authorization_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/registry/sync/search"))
        .respond_with(|r: &Request| {
            if r.headers.contains_key("authorization") {
                ResponseTemplate::new(400)
            } else {
                ResponseTemplate::new(200).set_body_json(sync_ok_body())
            }
        })
        .mount(&server)
        .await;
    let c = DciClient::builder(source(&server.uri(), AuthConfig::None))
        .build()
        .unwrap();
    let r = c.make_request(search()).await.unwrap();
    assert_eq!(r.body["header"]["status"], "succ");
}

#[tokio::test]
async fn bearer_and_basic_are_sent() {
    let server = MockServer::start().await;
    registry_accepting(&server, "Bearer static-tok").await;
    let auth = AuthConfig::Bearer {
        token: SecretString::from("static-tok".to_owned()),
    };
    let c = DciClient::builder(source(&server.uri(), auth))
        .build()
        .unwrap();
    c.make_request(search()).await.unwrap();

    let server = MockServer::start().await;
    // base64("alice:pw:1")
    registry_accepting(&server, "Basic YWxpY2U6cHc6MQ==").await;
    let auth = AuthConfig::Basic {
        username: "alice".into(),
        password: SecretString::from("pw:1".to_owned()),
    };
    let c = DciClient::builder(source(&server.uri(), auth))
        .build()
        .unwrap();
    c.make_request(search()).await.unwrap();
}

/// Every placement: the token endpoint only answers when the credentials are where expected.
#[tokio::test]
async fn each_credential_placement_reaches_the_token_endpoint() {
    for loc in [
        CredentialLocation::Body,
        CredentialLocation::Basic,
        CredentialLocation::Query,
        CredentialLocation::Json,
    ] {
        let server = MockServer::start().await;
        let ok = ResponseTemplate::new(200).set_body_json(token_body("tok-1", json!(300)));
        let m = Mock::given(method("POST"))
            .and(path("/token"))
            .and(header_exists("timestamp"));
        match loc {
            CredentialLocation::Body => {
                m.and(header("content-type", "application/x-www-form-urlencoded"))
                    .and(body_string_contains("grant_type=client_credentials"))
                    .and(body_string_contains("client_id=client-1"))
                    .and(body_string_contains("client_secret=s3cr3t-value"))
                    .and(body_string_contains("scope=registry.search"))
                    .respond_with(ok)
                    .mount(&server)
                    .await
            }
            CredentialLocation::Basic => {
                // base64("client-1:s3cr3t-value")
                m.and(header(
                    "authorization",
                    "Basic Y2xpZW50LTE6czNjcjN0LXZhbHVl",
                ))
                .and(body_string_contains("grant_type=client_credentials"))
                .respond_with(ok)
                .mount(&server)
                .await
            }
            CredentialLocation::Query => {
                m.and(query_param("grant_type", "client_credentials"))
                    .and(query_param("client_id", "client-1"))
                    .and(query_param("client_secret", "s3cr3t-value"))
                    .respond_with(ok)
                    .mount(&server)
                    .await
            }
            CredentialLocation::Json => {
                m.and(body_json(json!({"grant_type": "client_credentials",
                    "client_id": "client-1", "client_secret": "s3cr3t-value",
                    "scope": "registry.search"})))
                    .respond_with(ok)
                    .mount(&server)
                    .await
            }
        }
        registry_accepting(&server, "Bearer tok-1").await;
        let token_url = format!("{}/token", server.uri());
        let store = MemStore::new();
        let c = DciClient::builder(source(&server.uri(), oauth2(&token_url, loc)))
            .store(store.clone())
            .build()
            .unwrap();
        c.make_request(search())
            .await
            .unwrap_or_else(|e| panic!("{loc:?}: {e}"));
        // The audit never shows the secret, even for the query placement.
        for e in store.audit() {
            assert!(!format!("{e:?}").contains("s3cr3t"), "{loc:?}: {e:?}");
        }
        let actions: Vec<String> = store.audit().iter().map(|e| e.action.clone()).collect();
        assert_eq!(actions, ["token", "sync_search"], "{loc:?}");
    }
}

#[tokio::test]
async fn token_is_reused_then_refreshed_ahead_of_expiry() {
    let server = MockServer::start().await;
    // A 5 s token with the default 60 s skew: refreshed after 4 s, not never.
    mount_token(&server, "tok-short", json!("5")).await;
    registry_accepting(&server, "Bearer tok-short").await;
    let token_url = format!("{}/token", server.uri());
    let c = DciClient::builder(source(
        &server.uri(),
        oauth2(&token_url, CredentialLocation::Body),
    ))
    .build()
    .unwrap();
    let t1 = c.token().await.unwrap();
    assert_eq!(t1.info.origin, TokenOrigin::Fetched);
    assert!(
        t1.info.lifetime_from_server,
        "string expires_in is honoured"
    );
    c.make_request(search()).await.unwrap();
    c.make_request(search()).await.unwrap();
    let t2 = c.token().await.unwrap();
    assert_eq!(t2.info.origin, TokenOrigin::Cached);
    assert_eq!(count(&server, "/token").await, 1, "reused while fresh");
    tokio::time::sleep(Duration::from_millis(4200)).await;
    c.make_request(search()).await.unwrap();
    assert_eq!(count(&server, "/token").await, 2, "refreshed before expiry");
}

#[tokio::test]
async fn five_hundred_concurrent_callers_cause_one_token_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(token_body("tok-sf", json!(3600)))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&server)
        .await;
    let token_url = format!("{}/token", server.uri());
    let c = DciClient::builder(source(
        &server.uri(),
        oauth2(&token_url, CredentialLocation::Body),
    ))
    .build()
    .unwrap();
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.token().await.map(|t| t.access_token.secret().to_owned()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "tok-sf");
    }
    assert_eq!(count(&server, "/token").await, 1);
}

#[tokio::test]
async fn concurrent_callers_share_one_failed_fetch() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(
                    json!({"error": "invalid_client", "error_description": "unknown client"}),
                )
                .set_delay(Duration::from_millis(200)),
        )
        .mount(&server)
        .await;
    let token_url = format!("{}/token", server.uri());
    let c = DciClient::builder(source(
        &server.uri(),
        oauth2(&token_url, CredentialLocation::Body),
    ))
    .build()
    .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.token().await })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
        assert!(e.is_auth() && e.is_token_endpoint(), "{e}");
        assert!(e.to_string().contains("unknown client"), "{e}");
    }
    assert_eq!(
        count(&server, "/token").await,
        1,
        "401 from the token endpoint is not retried"
    );
}

#[tokio::test]
async fn a_401_drops_the_token_fetches_a_new_one_and_retries_once() {
    let server = MockServer::start().await;
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n2 = n.clone();
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |_: &Request| {
            let i = n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(token_body(&format!("tok-{i}"), json!(3600)))
        })
        .mount(&server)
        .await;
    // The registry revoked tok-1 and only accepts tok-2.
    registry_accepting(&server, "Bearer tok-2").await;
    Mock::given(method("POST"))
        .and(path("/registry/sync/search"))
        .respond_with(ResponseTemplate::new(401))
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
    let r = c.make_request(search()).await.unwrap();
    assert_eq!(r.attempts, 2);
    assert_eq!(count(&server, "/token").await, 2);
    let audit = store.audit();
    let rows: Vec<(String, Option<u16>, u32)> = audit
        .iter()
        .map(|e| (e.action.clone(), e.http_status, e.attempt))
        .collect();
    assert_eq!(
        rows,
        [
            ("token".into(), Some(200), 1),
            ("sync_search".into(), Some(401), 1),
            ("token".into(), Some(200), 1),
            ("sync_search".into(), Some(200), 2),
        ]
    );
    assert_eq!(audit[1].message_id.as_deref(), Some("msg-1"));
    assert_eq!(audit[1].transaction_id.as_deref(), Some("txn-1"));
}

#[tokio::test]
async fn a_second_401_is_an_auth_error_naming_the_fix() {
    let server = MockServer::start().await;
    mount_token(&server, "tok-x", json!(3600)).await;
    Mock::given(method("POST"))
        .and(path("/registry/sync/search"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"errors": [{"code": "err.request.unauthorized", "message": "client not registered"}]}),
        ))
        .mount(&server)
        .await;
    let token_url = format!("{}/token", server.uri());
    let c = DciClient::builder(source(
        &server.uri(),
        oauth2(&token_url, CredentialLocation::Body),
    ))
    .build()
    .unwrap();
    let e = c.make_request(search()).await.unwrap_err();
    assert!(e.is_auth(), "{e:?}");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401));
    let msg = e.to_string();
    assert!(msg.contains("client not registered"), "{msg}");
    assert!(msg.contains("even after a fresh one was fetched"), "{msg}");
    // A retried (idempotent) call fetches at most three new tokens — a token may be revoked
    // again during a long run of retries — and then stops: bounded, never a loop.
    assert_eq!(count(&server, "/token").await, 4);
    assert_eq!(
        count(&server, "/registry/sync/search").await,
        4,
        "re-sent with each of three fresh tokens, then given up"
    );
}

#[tokio::test]
async fn force_refresh_clear_and_persistence_through_the_store() {
    let server = MockServer::start().await;
    mount_token(&server, "tok-p", json!(3600)).await;
    let token_url = format!("{}/token", server.uri());
    let store = MemStore::new();
    let src = source(&server.uri(), oauth2(&token_url, CredentialLocation::Body));
    let c = DciClient::builder(src.clone())
        .store(store.clone())
        .build()
        .unwrap();
    assert_eq!(c.token().await.unwrap().info.origin, TokenOrigin::Fetched);
    assert!(
        store.tokens.lock().unwrap().contains_key(&src.id),
        "persisted"
    );

    // A new client (a restart) reuses the stored token instead of minting one.
    let c2 = DciClient::builder(src.clone())
        .store(store.clone())
        .build()
        .unwrap();
    let t = c2.token().await.unwrap();
    assert_eq!(t.info.origin, TokenOrigin::Stored);
    assert_eq!(t.access_token.secret(), "tok-p");
    assert_eq!(count(&server, "/token").await, 1);

    assert_eq!(
        c2.force_refresh().await.unwrap().info.origin,
        TokenOrigin::Fetched
    );
    assert_eq!(count(&server, "/token").await, 2);

    c2.clear_token_cache().await.unwrap();
    assert!(c2.cached_token_info().is_none());
    assert!(store.tokens.lock().unwrap().is_empty());
    c2.token().await.unwrap();
    assert_eq!(count(&server, "/token").await, 3);
}

#[tokio::test]
async fn missing_expires_in_uses_the_configured_default() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "t"})))
        .mount(&server)
        .await;
    let token_url = format!("{}/token", server.uri());
    let c = DciClient::builder(source(
        &server.uri(),
        oauth2(&token_url, CredentialLocation::Body),
    ))
    .token_settings(TokenSettings {
        default_lifetime: Duration::from_secs(120),
        ..TokenSettings::default()
    })
    .build()
    .unwrap();
    let t = c.token().await.unwrap();
    assert!(!t.info.lifetime_from_server);
    assert_eq!(
        (t.info.expires_at - t.info.obtained_at).whole_seconds(),
        120
    );
    // 120 s lifetime, 60 s skew: refresh at max(96, 60) = 96 s.
    assert_eq!((t.info.refresh_at - t.info.obtained_at).whole_seconds(), 96);
}

#[tokio::test]
async fn token_debug_and_errors_never_show_secrets() {
    let server = MockServer::start().await;
    mount_token(&server, "tok-secret-zz", json!(60)).await;
    let token_url = format!("{}/token?client_secret=s3cr3t-value", server.uri());
    let c = DciClient::builder(source(
        &server.uri(),
        oauth2(&token_url, CredentialLocation::Query),
    ))
    .build()
    .unwrap();
    let t = c.token().await.unwrap();
    let shown = format!("{t:?} {:?} {}", c, serde_json::to_string(&t.info).unwrap());
    assert!(
        !shown.contains("tok-secret-zz") && !shown.contains("s3cr3t"),
        "{shown}"
    );
}
