//! The admin API, the request log, loopback-only listening and shutdown.

use std::net::SocketAddr;

use dci_protocol::RegistryType;
use dci_sandbox::{Error, SandboxConfig};
use serde_json::Value;

use crate::common::{
    envelope, http, id_criteria, post_json, search_message, start, start_with, token,
};

#[tokio::test]
async fn examples_list_found_and_not_found_ids_per_registry() {
    let sb = start().await;
    let ex: Value = http()
        .get(format!("{}/admin/examples", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for r in RegistryType::ALL {
        let e = &ex[r.as_str()];
        let found = e["found"]
            .as_array()
            .unwrap_or_else(|| panic!("{r} has found"));
        assert!(!found.is_empty());
        assert!(found[0]["id_type"].is_string() && found[0]["id_value"].is_string());
        assert!(e["not_found"]["id_type"].is_string() && e["not_found"]["id_value"].is_string());
    }
    // The same seed gives the same data; another seed gives other data.
    let again = start().await;
    assert_eq!(again.examples(), sb.examples());
    let other = start_with(SandboxConfig::default().seed(99)).await;
    assert_ne!(other.examples(), sb.examples());
}

#[tokio::test]
async fn requests_are_recorded_without_secrets_and_bodies_only_on_request() {
    let sb = start().await;
    let t = token(&sb).await;
    post_json(
        &sb,
        "/crvs/registry/sync/search",
        &t,
        &envelope("search", search_message(id_criteria("UIN", "1")), None),
    )
    .await;
    let url = format!("{}/admin/requests", sb.base_url());
    let log: Value = http().get(&url).send().await.unwrap().json().await.unwrap();
    let list = log["requests"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{log}");
    assert_eq!(list[0]["endpoint"], "/oauth2/client/token");
    assert_eq!(list[0]["status"], 200);
    assert_eq!(list[1]["endpoint"], "/crvs/registry/sync/search");
    assert_eq!(list[1]["method"], "POST");
    assert_eq!(list[1]["status"], 200);
    assert!(list[1]["at"].as_str().unwrap().ends_with('Z'));
    assert!(list[1].get("body").is_none());
    let text = log.to_string();
    assert!(!text.contains("sandbox-secret") && !text.contains(&t));

    let with: Value = http()
        .get(format!("{url}?bodies=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        with["requests"][1]["body"]["message"]["transaction_id"],
        "txn-1"
    );
    assert!(
        with["requests"][0].get("body").is_none(),
        "never the token endpoint's body"
    );
    assert!(!with.to_string().contains("sandbox-secret"));

    assert_eq!(http().delete(&url).send().await.unwrap().status(), 200);
    assert!(sb.requests().is_empty());
}

#[tokio::test]
async fn stats_and_healthcheck() {
    let sb = start().await;
    token(&sb).await;
    let stats: Value = http()
        .get(format!("{}/admin/stats", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["token_requests"], 1);
    assert_eq!(stats["tokens_issued"], 1);
    assert_eq!(
        http()
            .get(format!("{}/healthcheck", sb.base_url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = http()
        .get(format!("{}/nowhere", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http()
        .get(format!("{}/moon/registry/ping", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn refuses_non_loopback_unless_allowed() {
    let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let err = dci_sandbox::spawn(SandboxConfig::default().listen(addr))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NonLoopback(_)));
    assert!(err.to_string().contains("allow_non_loopback"));
    let sb = dci_sandbox::spawn(
        SandboxConfig::default()
            .listen(addr)
            .allow_non_loopback(true),
    )
    .await
    .unwrap();
    assert_ne!(sb.addr().port(), 0);
}

#[tokio::test]
async fn stops_on_drop_and_on_shutdown() {
    let sb = start().await;
    let url = format!("{}/healthcheck", sb.base_url());
    assert_eq!(http().get(&url).send().await.unwrap().status(), 200);
    drop(sb);
    // The listener closes once the aborted server task is dropped; fresh clients, so no pooled
    // connection is reused.
    let url2 = url.clone();
    crate::common::eventually_async(move || {
        let url = url2.clone();
        async move {
            reqwest::Client::new()
                .get(&url)
                .send()
                .await
                .is_err()
                .then_some(())
        }
    })
    .await;

    let sb = start().await;
    let url = format!("{}/healthcheck", sb.base_url());
    sb.shutdown().await;
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
}

#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_contain_secrets_tokens_or_callback_queries() {
    use dci_sandbox::{ClientConfig, ClientQuirks};
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("dci_sandbox=trace"))
        .with_writer(move || writer.clone())
        .finish();
    // Current-thread runtime: every sandbox task runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let sb = start_with(
        SandboxConfig::default()
            .client(ClientConfig::new("ocrvs", "query-secret-1").quirks(ClientQuirks::opencrvs())),
    )
    .await;
    let t = token(&sb).await;
    http()
        .post(format!(
            "{}?grant_type=client_credentials&client_id=ocrvs&client_secret=query-secret-1",
            sb.token_url()
        ))
        .send()
        .await
        .unwrap();
    http()
        .post(sb.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sandbox"),
            ("client_secret", "wrong-secret-2"),
        ])
        .send()
        .await
        .unwrap();
    // A callback to a dead port whose URL carries a credential in its query.
    let dead = "http://127.0.0.1:9/cb?api_key=callback-secret-3";
    post_json(
        &sb,
        "/crvs/registry/search",
        &t,
        &envelope(
            "search",
            search_message(id_criteria("UIN", "1")),
            Some(dead),
        ),
    )
    .await;
    let failed =
        crate::common::eventually(|| sb.callbacks().into_iter().find(|c| c.error.is_some())).await;
    assert!(!failed.error.unwrap().contains("callback-secret-3"));
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("callback delivery failed"),
        "the test must see the logs: {logs}"
    );
    for secret in [
        "sandbox-secret",
        "query-secret-1",
        "wrong-secret-2",
        "callback-secret-3",
        t.as_str(),
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn a_dropped_sandbox_also_closes_kept_alive_connections() {
    let sb = start().await;
    let url = format!("{}/healthcheck", sb.base_url());
    let pooled = reqwest::Client::new();
    assert_eq!(pooled.get(&url).send().await.unwrap().status(), 200);
    drop(sb);
    crate::common::eventually_async(|| {
        let (pooled, url) = (pooled.clone(), url.clone());
        async move { pooled.get(&url).send().await.is_err().then_some(()) }
    })
    .await;
}
