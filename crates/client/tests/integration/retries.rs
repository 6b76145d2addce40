//! Retries of idempotent calls, `Retry-After`, the budget, and no blind resend of async calls.

use std::time::Duration;

use dci_client::{AuthConfig, CredentialLocation, DciClient, DciRequest, Endpoint, RetryPolicy};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        budget: Duration::from_secs(5),
        ..RetryPolicy::default()
    }
}

async fn failing_then_ok(p: &str, failure: ResponseTemplate, failures: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(p))
        .respond_with(failure)
        .up_to_n_times(failures)
        .mount(&server)
        .await;
    let ok = if p == "/registry/sync/search" {
        sync_ok_body()
    } else {
        json!({"message": {"ack_status": "ACK", "timestamp": "2026-11-29T00:00:00Z", "correlation_id": "c"}})
    };
    Mock::given(method("POST"))
        .and(path(p))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn sync_search_is_retried_through_502_503_504() {
    for status in [502u16, 503, 504] {
        let server =
            failing_then_ok("/registry/sync/search", ResponseTemplate::new(status), 2).await;
        let store = MemStore::new();
        let c = DciClient::builder(source(&server.uri(), AuthConfig::None))
            .retry_policy(fast())
            .store(store.clone())
            .build()
            .unwrap();
        let r = c
            .make_request(DciRequest::new(
                Endpoint::SyncSearch,
                sync_search_envelope(),
            ))
            .await
            .unwrap();
        assert_eq!(r.attempts, 3, "{status}");
        let rows: Vec<(u32, Option<u16>)> = store
            .audit()
            .iter()
            .map(|e| (e.attempt, e.http_status))
            .collect();
        assert_eq!(rows, [(1, Some(status)), (2, Some(status)), (3, Some(200))]);
    }
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_too_long_one_stops_retrying() {
    let server = failing_then_ok(
        "/registry/sync/search",
        ResponseTemplate::new(429).insert_header("retry-after", "1"),
        1,
    )
    .await;
    let c = DciClient::builder(source(&server.uri(), AuthConfig::None))
        .retry_policy(fast())
        .build()
        .unwrap();
    let r = c
        .make_request(DciRequest::new(
            Endpoint::SyncSearch,
            sync_search_envelope(),
        ))
        .await
        .unwrap();
    assert_eq!(r.attempts, 2);

    // Retry-After beyond the 5 s budget: give up at once and say why.
    let server = failing_then_ok(
        "/registry/sync/search",
        ResponseTemplate::new(429)
            .insert_header("retry-after", "60")
            .set_body_json(json!({"error": "rate_limited", "message": "quota exceeded"})),
        1,
    )
    .await;
    let c = DciClient::builder(source(&server.uri(), AuthConfig::None))
        .retry_policy(fast())
        .build()
        .unwrap();
    let e = c
        .make_request(DciRequest::new(
            Endpoint::SyncSearch,
            sync_search_envelope(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(e.attempts(), 1);
    let msg = e.to_string();
    assert!(
        msg.contains("quota exceeded") && msg.contains("rate limiting"),
        "{msg}"
    );
    assert_eq!(count(&server, "/registry/sync/search").await, 1);
}

#[tokio::test]
async fn the_retry_budget_ends_with_an_error_counting_attempts() {
    let server = failing_then_ok("/registry/sync/search", ResponseTemplate::new(503), 100).await;
    let c = DciClient::builder(source(&server.uri(), AuthConfig::None))
        .retry_policy(fast())
        .build()
        .unwrap();
    let e = c
        .make_request(DciRequest::new(Endpoint::SyncTxnStatus, json!({})).retry(true))
        .await;
    // SyncTxnStatus is not mounted: a 404 is not transient, so one attempt only.
    assert_eq!(e.unwrap_err().attempts(), 1);
    let e = c
        .make_request(DciRequest::new(
            Endpoint::SyncSearch,
            sync_search_envelope(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.attempts(), 4);
    assert!(e.to_string().contains("after 4 attempts"), "{e}");
    assert_eq!(count(&server, "/registry/sync/search").await, 4);
}

#[tokio::test]
async fn async_submissions_are_never_resent_automatically() {
    for endpoint in [Endpoint::Search, Endpoint::Subscribe, Endpoint::Unsubscribe] {
        let p = match endpoint {
            Endpoint::Search => "/registry/search",
            Endpoint::Subscribe => "/registry/subscribe",
            _ => "/registry/unsubscribe",
        };
        let server = failing_then_ok(p, ResponseTemplate::new(503), 1).await;
        let c = DciClient::builder(source(&server.uri(), AuthConfig::None))
            .retry_policy(fast())
            .build()
            .unwrap();
        let env = sync_search_envelope();
        let e = c
            .make_request(DciRequest::new(endpoint.clone(), env.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(503));
        assert_eq!(count(&server, p).await, 1, "{endpoint:?} was resent");
        // Resending is the caller's explicit decision, with the same ids.
        let r = c
            .make_request(DciRequest::new(endpoint.clone(), env.clone()))
            .await
            .unwrap();
        assert_eq!(r.body["message"]["ack_status"], "ACK");
        let bodies: Vec<serde_json::Value> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        assert_eq!(bodies[0], bodies[1]);
    }
}

#[tokio::test]
async fn token_requests_are_retried_on_transient_failures() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_token(&server, "tok-r", json!(600)).await;
    let token_url = format!("{}/token", server.uri());
    let c = DciClient::builder(source(
        &server.uri(),
        oauth2(&token_url, CredentialLocation::Body),
    ))
    .retry_policy(fast())
    .build()
    .unwrap();
    assert_eq!(c.token().await.unwrap().access_token.secret(), "tok-r");
    assert_eq!(count(&server, "/token").await, 2);
}
