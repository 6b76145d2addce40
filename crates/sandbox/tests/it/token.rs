//! The OAuth2 token endpoint and bearer checks.

use std::time::Duration;

use dci_protocol::RegistryType;
use dci_sandbox::{ClientConfig, ClientQuirks, SandboxConfig};
use serde_json::Value;

use crate::common::{
    envelope, http, id_criteria, post_json, search_message, start, start_with, token,
};

#[tokio::test]
async fn form_body_gets_a_bearer_token_with_numeric_expiry() {
    let sb = start().await;
    let resp = http()
        .post(sb.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sandbox"),
            ("client_secret", "sandbox-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert!(body["access_token"].as_str().unwrap().len() >= 32);
    assert!(body["scope"].as_str().unwrap().contains("crvs.read"));
    assert_eq!(sb.token_requests(), 1);
    assert_eq!(sb.tokens_issued(), 1);
}

#[tokio::test]
async fn http_basic_is_accepted_and_lifetime_is_configurable() {
    let sb = start_with(SandboxConfig::default().token_lifetime(Duration::from_secs(42))).await;
    let resp = http()
        .post(sb.token_url())
        .basic_auth("sandbox", Some("sandbox-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 42);
}

#[tokio::test]
async fn bad_credentials_get_401_with_an_oauth2_error() {
    let sb = start().await;
    for (id, secret) in [("sandbox", "wrong"), ("nobody", "sandbox-secret")] {
        let resp = http()
            .post(sb.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert!(!body.to_string().contains("sandbox-secret"));
    }
    let resp = http()
        .post(sb.token_url())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn grant_type_is_checked() {
    let sb = start().await;
    let resp = http()
        .post(sb.token_url())
        .form(&[
            ("grant_type", "password"),
            ("client_id", "sandbox"),
            ("client_secret", "sandbox-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let resp = http()
        .post(sb.token_url())
        .form(&[
            ("client_id", "sandbox"),
            ("client_secret", "sandbox-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn query_and_json_credentials_only_with_the_quirk() {
    let sb = start_with(
        SandboxConfig::default()
            .client(ClientConfig::new("opencrvs", "ocrvs-secret").quirks(ClientQuirks::opencrvs())),
    )
    .await;
    let url = |id: &str, secret: &str| {
        format!(
            "{}?grant_type=client_credentials&client_id={id}&client_secret={secret}",
            sb.token_url()
        )
    };
    // The default client has no quirks: query string and JSON body are refused.
    let resp = http()
        .post(url("sandbox", "sandbox-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let resp = http()
        .post(sb.token_url())
        .json(&serde_json::json!({"grant_type": "client_credentials", "client_id": "sandbox", "client_secret": "sandbox-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // The OpenCRVS-like client: both accepted, expires_in is a string.
    let resp = http()
        .post(url("opencrvs", "ocrvs-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], "600");
    let resp = http()
        .post(sb.token_url())
        .json(&serde_json::json!({"grant_type": "client_credentials", "client_id": "opencrvs", "client_secret": "ocrvs-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let t = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(id_criteria("UIN", "1")), None),
    )
    .await;
    assert_eq!(status, 200);
    // Query strings hold credentials: the log keeps the path only.
    assert!(sb.requests().iter().all(|r| !r.endpoint.contains("secret")));
    assert!(!format!("{:?}", ClientConfig::new("x", "hunter2")).contains("hunter2"));
}

#[tokio::test]
async fn registry_calls_need_a_valid_token() {
    let sb = start().await;
    let body = envelope("search", search_message(id_criteria("UIN", "1")), None);
    let url = format!(
        "{}/registry/sync/search",
        sb.registry_url(RegistryType::Crvs)
    );
    let resp = http().post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let resp = http()
        .post(&url)
        .bearer_auth("not-a-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http()
        .get(format!(
            "{}/registry/ping",
            sb.registry_url(RegistryType::Dr)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let t = token(&sb).await;
    let resp = http()
        .get(format!(
            "{}/registry/ping",
            sb.registry_url(RegistryType::Dr)
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http()
        .get(format!("{}/registry/ping", sb.base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn expired_tokens_get_401() {
    let sb = start_with(SandboxConfig::default().token_lifetime(Duration::from_secs(1))).await;
    let t = token(&sb).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = http()
        .get(format!("{}/crvs/registry/ping", sb.base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn scopes_are_enforced() {
    let sb = start_with(
        SandboxConfig::default()
            .client(ClientConfig::new("crvs-only", "s3cret").scopes(["crvs.read"])),
    )
    .await;
    let resp = http()
        .post(sb.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "crvs-only"),
            ("client_secret", "s3cret"),
        ])
        .send()
        .await
        .unwrap();
    let t = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = envelope("search", search_message(id_criteria("UIN", "1")), None);
    assert_eq!(
        post_json(&sb, "/crvs/registry/sync/search", &t, &body)
            .await
            .0,
        200
    );
    let (status, err) = post_json(&sb, "/dr/registry/sync/search", &t, &body).await;
    assert_eq!(status, 403);
    assert_eq!(err["errors"][0]["code"], "err.request.forbidden");

    // A requested scope narrows the token; one the client lacks is refused.
    let resp = http()
        .post(sb.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sandbox"),
            ("client_secret", "sandbox-secret"),
            ("scope", "dr.read"),
        ])
        .send()
        .await
        .unwrap();
    let t = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        post_json(&sb, "/crvs/registry/sync/search", &t, &body)
            .await
            .0,
        403
    );
    assert_eq!(
        post_json(&sb, "/dr/registry/sync/search", &t, &body)
            .await
            .0,
        200
    );
    let resp = http()
        .post(sb.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "crvs-only"),
            ("client_secret", "s3cret"),
            ("scope", "fr.read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_token_requests_are_all_served_and_counted() {
    let sb = start().await;
    let client = http();
    let url = sb.token_url();
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", "sandbox"),
                        ("client_secret", "sandbox-secret"),
                    ])
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    assert_eq!(sb.token_requests(), 500);
    assert_eq!(sb.tokens_issued(), 500);
}

#[test]
fn config_debug_never_shows_secrets_or_keys() {
    let key =
        dci_protocol::signature::SigningKey::generate(dci_protocol::signature::Algorithm::Ed25519)
            .unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    let cfg = SandboxConfig::default()
        .client(ClientConfig::new("other", "hunter2-secret"))
        .signing_key(key);
    let dbg = format!("{cfg:?}");
    assert!(
        !dbg.contains("sandbox-secret") && !dbg.contains("hunter2-secret"),
        "{dbg}"
    );
    let pem = secrecy::ExposeSecret::expose_secret(&pem).to_owned();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!dbg.contains(&body), "{dbg}");
    assert!(dbg.contains("other"), "ids are fine to show: {dbg}");
}
