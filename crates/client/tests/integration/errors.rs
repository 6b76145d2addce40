//! Each error class over real sockets, with the message a sysadmin sees.

use std::time::Duration;

use dci_client::{AuthConfig, DciClient, DciRequest, Endpoint, RetryPolicy};
use serde_json::json;
use time::OffsetDateTime;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

fn search() -> DciRequest {
    DciRequest::new(Endpoint::SyncSearch, sync_search_envelope())
}

fn client(base: &str) -> DciClient {
    DciClient::builder(source(base, AuthConfig::None))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

async fn registry_replying(t: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/registry/sync/search"))
        .respond_with(t)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn expired_self_signed_certificate() {
    let now = OffsetDateTime::now_utc();
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
    let c = DciClient::builder(src)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let e = c.make_request(search()).await.unwrap_err();
    assert!(e.is_tls(), "{e:?}");
    assert!(!e.is_connect() && !e.is_timeout());
    let msg = e.to_string();
    assert!(
        msg.contains("certificate of localhost:") && msg.contains("has expired"),
        "{msg}"
    );
    assert!(msg.contains("renew"), "{msg}");
}

#[tokio::test]
async fn valid_certificate_from_a_custom_ca_bundle_works_and_untrusted_fails() {
    let now = OffsetDateTime::now_utc();
    let cert = self_signed(
        now - time::Duration::days(1),
        now + time::Duration::days(30),
    );
    let server = tls_server(&cert).await;
    let base = format!("https://localhost:{}", server.port);

    let ca = pem_file(&cert.cert_pem);
    let mut src = source(&base, AuthConfig::None);
    src.tls.ca_file = Some(ca.path().to_owned());
    let c = DciClient::builder(src)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    c.make_request(search()).await.unwrap();

    let e = client(&base).make_request(search()).await.unwrap_err();
    assert!(e.is_tls(), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("not signed by a trusted authority") && msg.contains("CA bundle"),
        "{msg}"
    );

    // Verification off: works, and the connection test warns about it (see test_connection).
    let mut src = source(&base, AuthConfig::None);
    src.tls.verify = false;
    let c = DciClient::builder(src).build().unwrap();
    c.make_request(search()).await.unwrap();
}

#[tokio::test]
async fn plain_http_to_a_tls_port_is_not_mistaken_for_a_status() {
    let now = OffsetDateTime::now_utc();
    let cert = self_signed(
        now - time::Duration::days(1),
        now + time::Duration::days(30),
    );
    let server = tls_server(&cert).await;
    let e = client(&format!("http://localhost:{}", server.port))
        .make_request(search())
        .await;
    let e = e.unwrap_err();
    assert!(e.status().is_none(), "{e:?}");
}

#[tokio::test]
async fn unknown_host() {
    let e = client("http://no-such-registry.invalid")
        .make_request(search())
        .await
        .unwrap_err();
    assert!(e.is_dns(), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("could not resolve") && msg.contains("base URL"),
        "{msg}"
    );
}

#[tokio::test]
async fn refused_port() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = client(&format!("http://127.0.0.1:{port}"))
        .make_request(search())
        .await
        .unwrap_err();
    assert!(e.is_connect() && !e.is_dns() && !e.is_tls(), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("could not connect to 127.0.0.1:{port}")),
        "{msg}"
    );
    assert!(msg.contains("firewall"), "{msg}");
}

#[tokio::test]
async fn timeout() {
    let server = registry_replying(
        ResponseTemplate::new(200)
            .set_body_json(sync_ok_body())
            .set_delay(Duration::from_secs(5)),
    )
    .await;
    let c = DciClient::builder(source(&server.uri(), AuthConfig::None))
        .timeout(Duration::from_millis(300))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let e = c.make_request(search()).await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("within 0.3 s") && msg.contains("raise the data source's timeout"),
        "{msg}"
    );
}

#[tokio::test]
async fn http_errors_carry_the_registry_reason_and_a_fix() {
    let cases = [
        (
            400,
            json!({"message": {"ack_status": "ERR", "error": {"code": "err.request.bad", "message": "missing header.sender_id"}}}),
            "missing header.sender_id",
            "sender id",
        ),
        (
            403,
            json!({"type": "https://e.org/p/forbidden", "title": "Forbidden", "detail": "scope registry.search required"}),
            "scope registry.search required",
            "lack permission",
        ),
        (
            404,
            json!({"error": "not_found"}),
            "not_found",
            "should not include the /registry path",
        ),
        (
            500,
            json!({"errors": [{"code": "E500", "message": "db down"}]}),
            "E500: db down",
            "administrator",
        ),
        (
            503,
            json!({"code": "MAINT", "message": "maintenance until 06:00"}),
            "maintenance until 06:00",
            "temporarily unavailable",
        ),
    ];
    for (status, body, reason, fix) in cases {
        let server = registry_replying(ResponseTemplate::new(status).set_body_json(body)).await;
        let e = client(&server.uri())
            .make_request(search())
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(status));
        let msg = e.to_string();
        assert!(msg.contains(&format!("HTTP {status}")), "{msg}");
        assert!(msg.contains(reason), "{status}: {msg}");
        assert!(msg.contains(fix), "{status}: {msg}");
        assert_eq!(e.is_auth(), status == 403, "{status}");
    }
}

#[tokio::test]
async fn rejections_inside_http_200() {
    let rjct = json!({"header": {"message_id": "m", "message_ts": "2026-11-29T00:00:00Z",
        "action": "on-search", "status": "rjct", "status_reason_code": "rjct.search_criteria.invalid",
        "status_reason_message": "query type not supported"}});
    let server = registry_replying(ResponseTemplate::new(200).set_body_json(rjct)).await;
    let e = client(&server.uri())
        .make_request(search())
        .await
        .unwrap_err();
    assert!(e.is_rejected() && !e.is_auth(), "{e:?}");
    assert_eq!(
        e.registry_error().unwrap().code.as_deref(),
        Some("rjct.search_criteria.invalid")
    );
    assert!(e.to_string().contains("query type not supported"), "{e}");

    let item = json!({"header": {"status": "succ"}, "message": {"transaction_id": "t",
        "search_response": [{"reference_id": "r1", "status": "rjct",
            "status_reason_code": "rjct.reference_id.invalid", "status_reason_message": "dup"}]}});
    let server = registry_replying(ResponseTemplate::new(200).set_body_json(item)).await;
    let e = client(&server.uri())
        .make_request(search())
        .await
        .unwrap_err();
    assert!(e.is_rejected());
    assert_eq!(
        e.registry_error().unwrap().code.as_deref(),
        Some("rjct.reference_id.invalid")
    );

    // ACK ERR on an async submission.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/registry/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message": {
            "ack_status": "ERR", "timestamp": "2026-11-29T00:00:00Z", "correlation_id": "c",
            "error": {"code": "err.signature.invalid", "message": "bad signature"}}})))
        .mount(&server)
        .await;
    let e = client(&server.uri())
        .make_request(DciRequest::new(Endpoint::Search, sync_search_envelope()))
        .await
        .unwrap_err();
    assert!(e.is_rejected() && e.is_auth(), "{e:?}");
    assert!(e.to_string().contains("signing key"), "{e}");
}

#[tokio::test]
async fn a_web_page_instead_of_json_is_a_decode_error() {
    let server = registry_replying(
        ResponseTemplate::new(200).set_body_raw("<html>Login</html>", "text/html"),
    )
    .await;
    let e = client(&server.uri())
        .make_request(search())
        .await
        .unwrap_err();
    assert!(e.is_decode(), "{e:?}");
    assert!(
        e.to_string()
            .contains("something other than a DCI registry"),
        "{e}"
    );
}

#[tokio::test]
async fn configuration_mistakes_name_the_field() {
    let e = DciClient::builder(source("ftp://x", AuthConfig::None))
        .build()
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("base_url"), "{e}");
    let mut src = source("https://x.example", AuthConfig::None);
    src.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let e = DciClient::builder(src).build().unwrap_err();
    assert!(
        e.is_config() && e.to_string().contains("tls.ca_file"),
        "{e}"
    );
    let e = DciClient::builder(source(
        "https://x.example",
        oauth2("not a url?client_secret=zz", Default::default()),
    ))
    .build()
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("auth.token_url") && !msg.contains("zz"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_configured_proxy_carries_the_calls() {
    // wiremock stands in for an HTTP proxy: it receives the absolute-form request for a host
    // that does not even resolve, which proves nothing went direct.
    let proxy = registry_replying(ResponseTemplate::new(200).set_body_json(sync_ok_body())).await;
    let c = DciClient::builder(source("http://registry.invalid", AuthConfig::None))
        .proxy(proxy.uri())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let r = c.make_request(search()).await.unwrap();
    assert_eq!(r.body["header"]["status"], "succ");
    let seen = proxy.received_requests().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].url.host_str(), Some("registry.invalid"));
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate_and_its_absence_is_named() {
    let pki = pki();
    let server = tls_server_with(&pki.server, Some(pki.ca_der.clone())).await;
    let base = format!("https://localhost:{}", server.port);
    let ca = pem_file(&pki.ca_pem);
    let cert = pem_file(&pki.client_cert_pem);
    let key = pem_file(&pki.client_key_pem);

    let mut src = source(&base, AuthConfig::None);
    src.tls.ca_file = Some(ca.path().to_owned());
    src.tls.client_cert_file = Some(cert.path().to_owned());
    src.tls.client_key_file = Some(key.path().to_owned());
    let c = DciClient::builder(src.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    c.make_request(search()).await.unwrap();

    src.tls.client_cert_file = None;
    src.tls.client_key_file = None;
    let c = DciClient::builder(src.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let e = c.make_request(search()).await.unwrap_err();
    assert!(e.is_tls(), "{e:?}");
    assert!(
        e.to_string().contains("mutual-TLS client certificate"),
        "{e}"
    );

    // Half a pair is a configuration error naming the missing field.
    src.tls.client_cert_file = Some(cert.path().to_owned());
    let e = DciClient::builder(src).build().unwrap_err();
    assert!(
        e.is_config() && e.to_string().contains("tls.client_key_file"),
        "{e}"
    );
}
