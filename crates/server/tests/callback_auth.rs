//! Callback authentication through the real router: a callback is accepted only with the
//! source's callback secret (in the URL or as a bearer token), a signature under a signature
//! policy, or the source's explicit opt-out; only from its registry's sender id; and never for a
//! transaction whose result is final — on the per-source routes and at the root paths
//! (`/registry/on-search`, …), where the source is found from the message. Refusals keep the
//! DCI ACK `ERR` shape and store nothing: DCI-level ones (signature, sender, unknown or closed
//! transaction, reused message id) are HTTP 200, transport ones (secret) HTTP 401, and a source
//! with `callbacks.http_refusals` gets HTTP statuses for all of them.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dci_protocol::RegistryType;
use dci_protocol::signature::{Algorithm, Signer, SigningKey};
use dci_sandbox::{CallbackFaults, FaultTarget, Faults, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use time::OffsetDateTime;

const CALLBACK_BASE: &str = "http://127.0.0.1:8080";

struct Rig {
    env: support::Env,
    sandbox: Sandbox,
}

impl Rig {
    /// A sandbox that ACKs async searches but never calls back: the test plays the registry.
    async fn new() -> Rig {
        let sandbox = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
        sandbox
            .set_faults(Faults::new(FaultTarget::Crvs).callback(CallbackFaults {
                fail: Some(true),
                ..CallbackFaults::default()
            }))
            .unwrap();
        Rig {
            env: support::Env::new().await,
            sandbox,
        }
    }

    fn source_body(&self, code: &str) -> Value {
        json!({
            "code": code,
            "name": "National CRVS",
            "registry_type": "crvs",
            "base_url": self.sandbox.registry_url(RegistryType::Crvs),
            "auth": {
                "type": "oauth2",
                "token_url": self.sandbox.token_url(),
                "client_id": dci_sandbox::DEMO_CLIENT_ID,
                "client_secret": dci_sandbox::DEMO_CLIENT_SECRET,
                "scope": dci_sandbox::read_scope(RegistryType::Crvs),
            },
            "sender_id": "spmis.example.org",
            "receiver_id": self.sandbox.registry_id(),
            "callback_uri": format!("{CALLBACK_BASE}/callback/{code}"),
        })
    }

    /// Creates the source through the API; returns the callback URL's path (secret included),
    /// which the creation answer shows once.
    async fn add_source(&self, body: Value) -> String {
        let (status, created) = self.api("POST", "/sources", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let url = created["callbacks"]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("the creation answer shows the callback URL: {created}"));
        assert_eq!(created["callbacks"]["secret"], "********", "{created}");
        url.strip_prefix(CALLBACK_BASE).unwrap().to_owned()
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", support::TOKEN))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        self.env.call(req).await
    }

    async fn post(&self, path: &str, body: &Value, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(b) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {b}"));
        }
        self.env
            .call(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn submit(&self, code: &str) -> String {
        let ops = self.env.state.operations(code).await.unwrap();
        let ex = self.sandbox.examples()[&RegistryType::Crvs].found[0].clone();
        let spec = dci_client::ops::SearchSpec::by_id(&format!("{}:{}", ex.id_type, ex.id_value))
            .unwrap()
            .reference_id("r1");
        ops.submit_search_async(&dci_client::ops::SearchQuery::one(spec))
            .await
            .unwrap()
            .transaction_id
    }

    async fn view(&self, txn: &str) -> Value {
        let (status, v) = self.api("GET", &format!("/transactions/{txn}"), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    fn on_search(&self, txn: &str, message_id: &str, record: &str) -> Value {
        json!({
            "header": {"version": "1.0.0", "message_id": message_id,
                       "message_ts": "2026-11-29T10:00:00Z", "action": "on-search",
                       "status": "succ", "total_count": 1, "completed_count": 1,
                       "sender_id": self.sandbox.registry_id()},
            "message": {"transaction_id": txn,
                "search_response": [{"reference_id": "r1", "timestamp": "2026-11-29T10:00:00Z",
                    "status": "succ", "data": {"reg_records": [{"id": record}]}}]}
        })
    }
}

fn refused(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["message"]["ack_status"], "ERR", "{body}");
    assert_eq!(body["message"]["error"]["code"], code, "{body}");
}

fn records(view: &Value) -> Vec<String> {
    view["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["records"].as_array().cloned().unwrap_or_default())
        .map(|r| r.to_string())
        .collect()
}

#[tokio::test]
async fn a_forged_unsigned_on_search_is_refused_and_changes_nothing() {
    let rig = Rig::new().await;
    let url = rig.add_source(rig.source_body("crvs_main")).await;
    let txn = rig.submit("crvs_main").await;
    let forged = rig.on_search(&txn, "forged-1", "FORGED");
    // The plain route, without any secret, as anyone could post it.
    for path in [
        "/callback/crvs_main/registry/on-search",
        "/callback/crvs_main",
    ] {
        let (status, body) = rig.post(path, &forged, None).await;
        refused(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "err.request.unauthorized",
        );
    }
    // A wrong secret, in the URL or as a bearer token.
    let wrong = "A".repeat(43);
    let (status, body) = rig
        .post(
            &format!("/callback/crvs_main/{wrong}/registry/on-search"),
            &forged,
            None,
        )
        .await;
    refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "err.request.unauthorized",
    );
    assert!(
        body["message"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not this data source's"),
        "{body}"
    );
    let (status, body) = rig
        .post(
            "/callback/crvs_main/registry/on-search",
            &forged,
            Some(&wrong),
        )
        .await;
    refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "err.request.unauthorized",
    );
    let view = rig.view(&txn).await;
    assert_eq!(view["state"], "acknowledged", "{view}");
    assert_eq!(
        view["callbacks"].as_array().map_or(0, Vec::len),
        0,
        "{view}"
    );
    // The secret never appears in the source's ordinary JSON.
    let secret = url.split('/').nth(3).unwrap();
    let (_, shown) = rig.api("GET", "/sources/crvs_main", None).await;
    assert!(!shown.to_string().contains(secret), "{shown}");
    assert!(shown["callbacks"].get("url").is_none(), "{shown}");
    let (_, revealed) = rig
        .api("GET", "/sources/crvs_main?reveal_callback_url=true", None)
        .await;
    assert_eq!(
        revealed["callbacks"]["url"],
        format!("{CALLBACK_BASE}{url}")
    );
}

#[tokio::test]
async fn the_url_secret_or_the_bearer_secret_is_accepted() {
    let rig = Rig::new().await;
    let url = rig.add_source(rig.source_body("crvs_main")).await;
    let secret = url.split('/').nth(3).unwrap().to_owned();
    // In the URL, as the sandbox and real registries post to sender_uri verbatim.
    let txn = rig.submit("crvs_main").await;
    let (status, body) = rig
        .post(
            &format!("{url}/registry/on-search"),
            &rig.on_search(&txn, "m-1", "REAL"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["ack_status"], "ACK");
    let view = rig.view(&txn).await;
    assert_eq!(view["state"], "completed", "{view}");
    assert!(records(&view).iter().any(|r| r.contains("REAL")), "{view}");
    // As a bearer token on the plain route.
    let txn = rig.submit("crvs_main").await;
    let (status, body) = rig
        .post(
            "/callback/crvs_main/registry/on-search",
            &rig.on_search(&txn, "m-2", "REAL2"),
            Some(&secret),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(rig.view(&txn).await["state"], "completed");
}

#[tokio::test]
async fn the_right_secret_from_the_wrong_sender_is_refused() {
    let rig = Rig::new().await;
    let url = rig.add_source(rig.source_body("crvs_main")).await;
    let txn = rig.submit("crvs_main").await;
    let mut body = rig.on_search(&txn, "m-1", "OTHER");
    body["header"]["sender_id"] = json!("another-registry");
    let (status, ack) = rig
        .post(&format!("{url}/registry/on-search"), &body, None)
        .await;
    refused(status, &ack, StatusCode::OK, "err.sender_id.invalid");
    assert_eq!(rig.view(&txn).await["state"], "acknowledged");
}

#[tokio::test]
async fn a_late_callback_after_completion_is_refused_and_the_result_unchanged() {
    let rig = Rig::new().await;
    let url = rig.add_source(rig.source_body("crvs_main")).await;
    let txn = rig.submit("crvs_main").await;
    let route = format!("{url}/registry/on-search");
    let (status, body) = rig
        .post(&route, &rig.on_search(&txn, "m-1", "REAL"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = rig.view(&txn).await;
    assert_eq!(before["state"], "completed");
    assert!(
        records(&before).iter().any(|r| r.contains("REAL")),
        "{before}"
    );
    // Even with the secret: the result is final.
    let (status, body) = rig
        .post(&route, &rig.on_search(&txn, "m-2", "LATE"), None)
        .await;
    refused(status, &body, StatusCode::OK, "err.request.forbidden");
    // A re-delivery of the stored callback (its ACK was lost) is ACKed again, stored once.
    let (status, body) = rig
        .post(&route, &rig.on_search(&txn, "m-1", "REAL"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["ack_status"], "ACK", "{body}");
    // The same message id with another body is refused.
    let (status, body) = rig
        .post(&route, &rig.on_search(&txn, "m-1", "LATE"), None)
        .await;
    refused(status, &body, StatusCode::OK, "err.request.bad");
    assert!(
        body["message"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("different body"),
        "{body}"
    );
    let after = rig.view(&txn).await;
    assert_eq!(records(&after), records(&before));
    assert!(!after.to_string().contains("LATE"), "{after}");
    assert_eq!(after["callbacks"].as_array().unwrap().len(), 1, "{after}");
}

#[tokio::test]
async fn a_forged_notify_is_refused_and_the_opt_out_accepts_it() {
    let rig = Rig::new().await;
    rig.add_source(rig.source_body("crvs_main")).await;
    let notify = json!({
        "header": {"version": "1.0.0", "message_id": "n-1", "message_ts": "2026-11-29T10:00:00Z",
                   "action": "notify", "sender_id": rig.sandbox.registry_id()},
        "message": {"event_notification": [{"reg_event_type": "Death",
            "data": {"reg_records": [{"id": "FORGED"}]}}]}
    });
    for path in [
        "/callback/crvs_main/registry/notify",
        "/callback/crvs_main/registry/on-subscribe",
    ] {
        let (status, body) = rig.post(path, &notify, None).await;
        refused(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "err.request.unauthorized",
        );
    }
    // The explicit, visible opt-out: unauthenticated callbacks are accepted.
    let mut open = rig.source_body("crvs_open");
    open["callbacks"] = json!({"accept_unauthenticated": true});
    rig.add_source(open).await;
    let (_, shown) = rig.api("GET", "/sources/crvs_open", None).await;
    assert_eq!(
        shown["callbacks"]["accept_unauthenticated"], true,
        "{shown}"
    );
    let (status, body) = rig
        .post("/callback/crvs_open/registry/notify", &notify, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let txn = rig.submit("crvs_open").await;
    let (status, body) = rig
        .post(
            "/callback/crvs_open/registry/on-search",
            &rig.on_search(&txn, "m-1", "UNSIGNED"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(rig.view(&txn).await["state"], "completed");
}

#[tokio::test]
async fn a_signed_callback_needs_no_secret_when_the_source_requires_signatures() {
    let rig = Rig::new().await;
    let registry_key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let mut body = rig.source_body("crvs_signed");
    body["reply_signature_policy"] = json!("require");
    body["registry_public_keys"] = json!([registry_key.verifying_key().to_spki_pem()]);
    rig.add_source(body).await;
    let txn = rig.submit("crvs_signed").await;
    let sender = rig.sandbox.registry_id().to_owned();
    let sign = |mut v: Value| {
        Signer::new(registry_key.clone(), &sender, "registry-1")
            .sign_envelope(&mut v, OffsetDateTime::now_utc())
            .unwrap();
        v
    };
    // Unsigned without the secret: refused (the policy wants a signature), the DCI way.
    let (status, ack) = rig
        .post(
            "/callback/crvs_signed/registry/on-search",
            &rig.on_search(&txn, "m-0", "UNSIGNED"),
            None,
        )
        .await;
    refused(status, &ack, StatusCode::OK, "err.signature.missing");
    // At the root path it is refused before anything is looked up: it does not authenticate.
    let (status, ack) = rig
        .post(
            "/registry/on-search",
            &rig.on_search(&txn, "m-0", "UNSIGNED"),
            None,
        )
        .await;
    refused(
        status,
        &ack,
        StatusCode::UNAUTHORIZED,
        "err.request.unauthorized",
    );
    assert_eq!(rig.view(&txn).await["state"], "acknowledged");
    // Signed by the registry's key, on the plain route: accepted.
    let (status, ack) = rig
        .post(
            "/callback/crvs_signed/registry/on-search",
            &sign(rig.on_search(&txn, "m-1", "SIGNED")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(rig.view(&txn).await["state"], "completed");
    // Signed, at the root path: the signature authenticates it as the source.
    let txn = rig.submit("crvs_signed").await;
    let (status, ack) = rig
        .post(
            "/registry/on-search",
            &sign(rig.on_search(&txn, "m-2", "SIGNED")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["message"]["ack_status"], "ACK", "{ack}");
    assert_eq!(rig.view(&txn).await["state"], "completed");
}

#[tokio::test]
async fn regenerating_the_secret_refuses_the_old_url() {
    let rig = Rig::new().await;
    let old = rig.add_source(rig.source_body("crvs_main")).await;
    let (_, doc) = rig.api("GET", "/sources/crvs_main", None).await;
    let (status, updated) = rig
        .api(
            "PUT",
            "/sources/crvs_main?regenerate_callback_secret=true",
            Some(doc),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let new = updated["callbacks"]["url"]
        .as_str()
        .unwrap()
        .strip_prefix(CALLBACK_BASE)
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    let txn = rig.submit("crvs_main").await;
    let (status, body) = rig
        .post(
            &format!("{old}/registry/on-search"),
            &rig.on_search(&txn, "m-1", "OLD"),
            None,
        )
        .await;
    refused(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "err.request.unauthorized",
    );
    let (status, body) = rig
        .post(
            &format!("{new}/registry/on-search"),
            &rig.on_search(&txn, "m-2", "NEW"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn root_callbacks_find_their_source_and_are_authenticated_the_same_way() {
    let rig = Rig::new().await;
    let url = rig.add_source(rig.source_body("crvs_main")).await;
    let secret = url.split('/').nth(3).unwrap().to_owned();
    let txn = rig.submit("crvs_main").await;
    let body = rig.on_search(&txn, "m-1", "ROOT");
    // No secret where the source verifies no signatures: transport refusal, HTTP 401. A wrong
    // secret (another value, or the URL form, which the root cannot carry) likewise.
    let (status, ack) = rig.post("/registry/on-search", &body, None).await;
    refused(
        status,
        &ack,
        StatusCode::UNAUTHORIZED,
        "err.request.unauthorized",
    );
    let (status, ack) = rig
        .post("/registry/on-search", &body, Some(&"B".repeat(43)))
        .await;
    refused(
        status,
        &ack,
        StatusCode::UNAUTHORIZED,
        "err.request.unauthorized",
    );
    let (status, ack) = rig
        .post(&format!("/{secret}/registry/on-search"), &body, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{ack}");
    assert_eq!(rig.view(&txn).await["state"], "acknowledged");
    // The source's secret as a bearer token: found from the transaction id, accepted.
    let (status, ack) = rig.post("/registry/on-search", &body, Some(&secret)).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["message"]["ack_status"], "ACK", "{ack}");
    let view = rig.view(&txn).await;
    assert_eq!(view["state"], "completed", "{view}");
    assert!(records(&view).iter().any(|r| r.contains("ROOT")), "{view}");
    // Re-sent: ACKed again, stored once.
    let (status, ack) = rig.post("/registry/on-search", &body, Some(&secret)).await;
    assert_eq!(
        (status, &ack["message"]["ack_status"]),
        (StatusCode::OK, &json!("ACK"))
    );
    assert_eq!(
        rig.view(&txn).await["callbacks"].as_array().unwrap().len(),
        1
    );
    // A transaction nobody sent, from no known sender: refused the DCI way, nothing stored.
    let mut unknown = rig.on_search("t-nobody-sent", "m-2", "X");
    unknown["header"]["sender_id"] = json!("unknown-registry");
    let (status, ack) = rig
        .post("/registry/on-search", &unknown, Some(&secret))
        .await;
    refused(status, &ack, StatusCode::OK, "err.request.not_found");
    unknown["header"]
        .as_object_mut()
        .unwrap()
        .remove("sender_id");
    let (status, ack) = rig
        .post("/registry/on-search", &unknown, Some(&secret))
        .await;
    refused(status, &ack, StatusCode::OK, "err.request.not_found");
    // Not JSON: transport refusal.
    let req = axum::http::Request::post("/registry/on-search")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, ack) = rig.env.call(req).await;
    refused(status, &ack, StatusCode::BAD_REQUEST, "err.request.bad");
}

#[tokio::test]
async fn a_root_notify_is_matched_by_its_sender_and_an_ambiguous_one_refused() {
    let rig = Rig::new().await;
    let url = rig.add_source(rig.source_body("crvs_main")).await;
    let secret = url.split('/').nth(3).unwrap().to_owned();
    let notify = |id: &str, sender: &str| {
        json!({
            "header": {"version": "1.0.0", "message_id": id, "message_ts": "2026-11-29T10:00:00Z",
                       "action": "notify", "sender_id": sender},
            "message": {"event_notification": [{"reg_event_type": "Death",
                "data": {"reg_records": [{"id": "DEATH-1"}]}}]}
        })
    };
    let registry = rig.sandbox.registry_id().to_owned();
    // Found by header.sender_id = the source's receiver_id; still needs the secret.
    let (status, ack) = rig
        .post("/registry/notify", &notify("n-1", &registry), None)
        .await;
    refused(
        status,
        &ack,
        StatusCode::UNAUTHORIZED,
        "err.request.unauthorized",
    );
    let (status, ack) = rig
        .post("/registry/notify", &notify("n-1", &registry), Some(&secret))
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["message"]["ack_status"], "ACK", "{ack}");
    let stored = rig
        .env
        .state
        .ingest
        .ops
        .list_callbacks(&dci_client::ops::CallbackFilter {
            action: Some("notify".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].source_code, "crvs_main");
    // An unknown sender: refused, the DCI way.
    let (status, ack) = rig
        .post("/registry/notify", &notify("n-2", "nobody"), Some(&secret))
        .await;
    refused(status, &ack, StatusCode::OK, "err.sender_id.invalid");
    // Two sources with the same registry id: ambiguous, refused clearly.
    rig.add_source(rig.source_body("crvs_second")).await;
    let (status, ack) = rig
        .post("/registry/notify", &notify("n-3", &registry), Some(&secret))
        .await;
    refused(status, &ack, StatusCode::OK, "err.sender_id.invalid");
    let msg = ack["message"]["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("several") && msg.contains("/callback/"),
        "{msg}"
    );
    let stored = rig
        .env
        .state
        .ingest
        .ops
        .list_callbacks(&dci_client::ops::CallbackFilter::default())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "refused callbacks are stored nowhere");
}

#[tokio::test]
async fn a_source_that_keeps_http_refusals_gets_http_statuses() {
    let rig = Rig::new().await;
    let mut body = rig.source_body("crvs_http");
    body["callbacks"] = json!({"http_refusals": true});
    let url = rig.add_source(body).await;
    let (_, shown) = rig.api("GET", "/sources/crvs_http", None).await;
    assert_eq!(shown["callbacks"]["http_refusals"], true, "{shown}");
    let txn = rig.submit("crvs_http").await;
    let route = format!("{url}/registry/on-search");
    let mut wrong_sender = rig.on_search(&txn, "m-1", "X");
    wrong_sender["header"]["sender_id"] = json!("another-registry");
    let (status, ack) = rig.post(&route, &wrong_sender, None).await;
    refused(status, &ack, StatusCode::FORBIDDEN, "err.sender_id.invalid");
    let (status, ack) = rig
        .post(&route, &rig.on_search("t-unknown", "m-2", "X"), None)
        .await;
    refused(status, &ack, StatusCode::NOT_FOUND, "err.request.not_found");
    // Switched back off through the API: the same refusal is HTTP 200 with ACK ERR.
    let (_, mut doc) = rig.api("GET", "/sources/crvs_http", None).await;
    doc["callbacks"]["http_refusals"] = json!(false);
    let (status, updated) = rig.api("PUT", "/sources/crvs_http", Some(doc)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (status, ack) = rig.post(&route, &wrong_sender, None).await;
    refused(status, &ack, StatusCode::OK, "err.sender_id.invalid");
    assert_eq!(rig.view(&txn).await["state"], "acknowledged");
}

#[tokio::test]
async fn a_root_callback_is_authenticated_before_its_transaction_is_looked_up() {
    let rig = Rig::new().await;
    let url = rig.add_source(rig.source_body("crvs_main")).await;
    let secret = url.split('/').nth(3).unwrap().to_owned();
    let txn = rig.submit("crvs_main").await;
    let wrong = "A".repeat(43);
    let mut forged_signature = rig.on_search(&txn, "m-0", "FORGED");
    forged_signature["signature"] =
        json!("Signature keyId=\"x|y|ed25519\",algorithm=\"ed25519\",signature=\"AAAA\"");
    // Whether the transaction exists or not, a caller that does not authenticate gets the same
    // answer, word for word: nothing tells it which transaction ids are real.
    let mut answers = Vec::new();
    for id in [txn.as_str(), "no-such-transaction"] {
        for (body, bearer) in [
            (rig.on_search(id, "m-0", "FORGED"), None),
            (rig.on_search(id, "m-0", "FORGED"), Some(wrong.as_str())),
            (
                {
                    let mut b = forged_signature.clone();
                    b["message"]["transaction_id"] = json!(id);
                    b
                },
                None,
            ),
        ] {
            let (status, ack) = rig.post("/registry/on-search", &body, bearer).await;
            refused(
                status,
                &ack,
                StatusCode::UNAUTHORIZED,
                "err.request.unauthorized",
            );
            let message = ack["message"]["error"]["message"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(!message.contains(id), "{message}");
            answers.push(message);
        }
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(
        answers[0].contains("Authorization: Bearer"),
        "{}",
        answers[0]
    );
    let view = rig.view(&txn).await;
    assert_eq!(view["state"], "acknowledged", "{view}");
    assert_eq!(
        view["callbacks"].as_array().map_or(0, Vec::len),
        0,
        "{view}"
    );
    // The secret as a bearer token authenticates it; then its transaction is found.
    let (status, ack) = rig
        .post(
            "/registry/on-search",
            &rig.on_search(&txn, "m-1", "REAL"),
            Some(&secret),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["message"]["ack_status"], "ACK", "{ack}");
    assert_eq!(rig.view(&txn).await["state"], "completed");
}
