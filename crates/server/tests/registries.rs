//! The registry endpoints of the gateway API against the sandbox: found (200), not found
//! (404 with `outcome: not_found`), wrong registry type (422), rejected and registry down
//! (errors, never "not found"), and IBR dedupe failing closed.

mod support;

use axum::http::StatusCode;
use dci_client::DataSourceInput;
use dci_protocol::RegistryType;
use dci_sandbox::{FaultTarget, Faults, Sandbox, SandboxConfig};
use secrecy::SecretString;
use serde_json::json;
use support::{Env, api};

async fn add(env: &Env, sb: &Sandbox, r: RegistryType) -> String {
    let code = format!("{}_sb", r.as_str());
    let s = DataSourceInput {
        code: code.clone(),
        name: format!("sandbox {r}"),
        registry_type: r.as_str().into(),
        base_url: sb.registry_url(r),
        auth: Some("oauth2".into()),
        token_url: Some(sb.token_url()),
        client_id: Some(dci_sandbox::DEMO_CLIENT_ID.into()),
        client_secret: Some(SecretString::from(dci_sandbox::DEMO_CLIENT_SECRET)),
        scope: Some(dci_sandbox::read_scope(r)),
        sender_id: Some("spmis.example.org".into()),
        ..DataSourceInput::default()
    }
    .validate()
    .unwrap();
    env.store.create_data_source(&s).await.unwrap();
    code
}

fn found(sb: &Sandbox, r: RegistryType, i: usize) -> String {
    let e = &sb.examples()[&r].found[i];
    format!("{}:{}", e.id_type, e.id_value)
}

#[tokio::test]
async fn lookups_answer_found_not_found_and_refuse_the_wrong_registry() {
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let env = Env::new().await;
    for r in RegistryType::ALL {
        add(&env, &sb, r).await;
    }
    let uin = found(&sb, RegistryType::Crvs, 0);
    let (st, body) = env
        .call(api(
            "GET",
            &format!("/sources/crvs_sb/crvs/person?id={uin}"),
            None,
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "found");
    assert!(body["result"]["raw"]["identifier"].is_object());
    let (st, body) = env
        .call(api(
            "GET",
            "/sources/crvs_sb/crvs/person?id=UIN:0000000000",
            None,
        ))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["outcome"], "not_found");

    let dead = found(&sb, RegistryType::Crvs, 4);
    let (st, body) = env
        .call(api(
            "GET",
            &format!("/sources/crvs_sb/crvs/check-death?id={dead}"),
            None,
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["deceased"], true);
    let (st, body) = env
        .call(api(
            "GET",
            "/sources/crvs_sb/crvs/events?type=death&from=2015-01-01&to=2026-12-31",
            None,
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(!body["result"].as_array().unwrap().is_empty());

    let dr = found(&sb, RegistryType::Dr, 0);
    for what in ["status", "details", "support"] {
        let (st, body) = env
            .call(api(
                "GET",
                &format!("/sources/dr_sb/dr/{what}?id={dr}"),
                None,
            ))
            .await;
        assert_eq!(st, StatusCode::OK, "{what}: {body}");
        let (st, _) = env
            .call(api(
                "GET",
                &format!("/sources/dr_sb/dr/{what}?id=UIN:0000000000"),
                None,
            ))
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{what}");
    }
    let hh = found(&sb, RegistryType::Social, 0);
    let (st, body) = env
        .call(api(
            "GET",
            &format!("/sources/social_sb/social/group?id={hh}"),
            None,
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body["result"]["members"].as_array().unwrap().len() >= 2);
    let farmer = found(&sb, RegistryType::Fr, 0);
    let (st, _) = env
        .call(api(
            "GET",
            &format!("/sources/fr_sb/fr/farmer?id={farmer}"),
            None,
        ))
        .await;
    assert_eq!(st, StatusCode::OK);

    let ibr = found(&sb, RegistryType::Ibr, 0);
    let (st, body) = env
        .call(api(
            "POST",
            "/sources/ibr_sb/ibr/dedupe",
            Some(json!({"ids": [ibr]})),
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["duplicate"], true);
    let (st, _) = env
        .call(api(
            "POST",
            "/sources/ibr_sb/ibr/dedupe",
            Some(json!({"ids": ["UIN:0000000000"]})),
        ))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A DR source asked for a CRVS person: refused, naming the field.
    let (st, body) = env
        .call(api(
            "GET",
            &format!("/sources/dr_sb/crvs/person?id={uin}"),
            None,
        ))
        .await;
    assert!(
        st.is_client_error() && st != StatusCode::NOT_FOUND,
        "{st} {body}"
    );
    assert!(body.to_string().contains("registry_type"), "{body}");
    // A malformed id names the field.
    let (st, body) = env
        .call(api("GET", "/sources/crvs_sb/crvs/person?id=nope", None))
        .await;
    assert!(st.is_client_error(), "{st}");
    assert!(body.to_string().contains("TYPE:VALUE"), "{body}");
}

#[tokio::test]
async fn registry_down_is_an_error_and_dedupe_fails_closed() {
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let env = Env::new().await;
    add(&env, &sb, RegistryType::Ibr).await;
    add(&env, &sb, RegistryType::Crvs).await;
    let mut f = Faults::new(FaultTarget::All);
    f.down = Some(true);
    sb.set_faults(f).unwrap();
    let (st, body) = env
        .call(api(
            "POST",
            "/sources/ibr_sb/ibr/dedupe",
            Some(json!({"ids": ["UIN:0000000000"]})),
        ))
        .await;
    assert!(st.is_server_error(), "{st} {body}");
    assert!(body.get("outcome").is_none(), "{body}");
    let (st, _) = env
        .call(api("GET", "/sources/crvs_sb/crvs/person?id=UIN:1", None))
        .await;
    assert!(st.is_server_error(), "{st}");
}

#[tokio::test]
async fn a_refusing_registry_is_an_error() {
    let sb = dci_sandbox::spawn(
        SandboxConfig::default().signature_policy(dci_sandbox::SignaturePolicy::Require),
    )
    .await
    .unwrap();
    let env = Env::new().await;
    add(&env, &sb, RegistryType::Dr).await;
    let id = found(&sb, RegistryType::Dr, 0);
    let (st, body) = env
        .call(api(
            "GET",
            &format!("/sources/dr_sb/dr/status?id={id}"),
            None,
        ))
        .await;
    assert!(st.is_client_error() || st.is_server_error(), "{st}");
    assert_ne!(st, StatusCode::NOT_FOUND);
    assert!(body.to_string().contains("signature"), "{body}");
}

#[tokio::test]
async fn gateway_requests_share_one_client_token_and_dr_cache_per_source() {
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let env = Env::new().await;
    add(&env, &sb, RegistryType::Dr).await;
    let id = found(&sb, RegistryType::Dr, 0);
    for _ in 0..3 {
        let (st, body) = env
            .call(api(
                "GET",
                &format!("/sources/dr_sb/dr/status?id={id}"),
                None,
            ))
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
    let calls = sb
        .requests()
        .iter()
        .filter(|r| r.endpoint.ends_with("/registry/sync/disabled"))
        .count();
    assert_eq!(
        calls, 1,
        "three identical status lookups, one registry call"
    );
    assert_eq!(sb.token_requests(), 1, "one token for every request");
}
