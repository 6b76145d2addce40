//! Router-level tests over `oneshot`: the admin token, validation errors naming fields, secrets
//! never in JSON, callback refusals storing nothing, healthz, JWKS and the OpenAPI document.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dci_client::ops::CallbackFilter;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use support::{Env, TOKEN, api, post_raw};

const SECRET: &str = "very-secret-client-secret-42";

fn oauth_source(code: &str) -> Value {
    json!({
        "code": code,
        "name": "National CRVS",
        "registry_type": "crvs",
        "base_url": "http://127.0.0.1:9/crvs",
        "auth": {
            "type": "oauth2",
            "token_url": "http://127.0.0.1:9/oauth2/client/token",
            "client_id": "spmis",
            "client_secret": SECRET,
        },
        "sender_id": "spmis.example.org",
        "receiver_id": "crvs.example.org",
        "callback_uri": format!("http://127.0.0.1:8080/callback/{code}"),
    })
}

#[tokio::test]
async fn healthz_answers_without_a_token() {
    let env = Env::new().await;
    let (status, body) = env
        .call(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn api_needs_the_admin_token() {
    let env = Env::new().await;
    let no_token = Request::get("/api/v1/sources").body(Body::empty()).unwrap();
    let (status, body) = env.call(no_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["kind"], "unauthorized");

    let wrong = Request::get("/api/v1/sources")
        .header(header::AUTHORIZATION, "Bearer not-the-token-at-all")
        .body(Body::empty())
        .unwrap();
    assert_eq!(env.call(wrong).await.0, StatusCode::UNAUTHORIZED);

    let basic = Request::get("/api/v1/sources")
        .header(header::AUTHORIZATION, format!("Basic {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(env.call(basic).await.0, StatusCode::UNAUTHORIZED);

    // Unknown API paths are also behind the token: nothing leaks about what exists.
    let unknown = Request::get("/api/v1/nope").body(Body::empty()).unwrap();
    assert_eq!(env.call(unknown).await.0, StatusCode::UNAUTHORIZED);

    let (status, body) = env.call(api("GET", "/sources", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sources"], json!([]));
}

#[tokio::test]
async fn validation_errors_are_422_naming_every_field() {
    let env = Env::new().await;
    let (status, body) = env
        .call(api(
            "POST",
            "/sources",
            Some(json!({
                "code": "Bad Code",
                "registry_type": "vital",
                "base_url": "https://crvs.example.org/",
                "auth": { "type": "basic", "username": "u" },
                "timeout_secs": 0,
                "limits": { "rate_per_sec": 0, "max_batch_size": "lots" },
            })),
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["kind"], "invalid_input");
    let fields: Vec<(String, String)> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_owned(),
                f["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (field, pointer) in [
        ("code", "/code"),
        ("name", "/name"),
        ("registry_type", "/registry_type"),
        ("base_url", "/base_url"),
        ("auth.password", "/auth/password"),
        ("sender_id", "/sender_id"),
        ("timeout_secs", "/timeout_secs"),
        ("limits.rate_per_sec", "/limits/rate_per_sec"),
        ("limits.max_batch_size", "/limits/max_batch_size"),
    ] {
        assert!(
            fields.contains(&(field.to_owned(), pointer.to_owned())),
            "{field} missing from {fields:?}"
        );
    }
    // Nothing was stored.
    let (_, list) = env.call(api("GET", "/sources", None)).await;
    assert_eq!(list["sources"], json!([]));
}

#[tokio::test]
async fn unknown_fields_and_bad_json_name_the_problem() {
    let env = Env::new().await;
    let mut body = oauth_source("crvs_main");
    body["colour"] = json!("blue");
    let (status, err) = env.call(api("POST", "/sources", Some(body))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["fields"][0]["field"], "colour");

    let bad = Request::post("/api/v1/sources")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"code\": "))
        .unwrap();
    let (status, err) = env.call(bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["kind"], "bad_request");

    let (status, err) = env
        .call(api(
            "POST",
            "/sources/nope/search",
            Some(json!({"query_type": "idtype-value", "query": "UIN:1", "page": 0})),
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["fields"][0]["field"], "page");
}

#[tokio::test]
async fn secrets_are_write_only_and_never_in_json() {
    let env = Env::new().await;
    let (status, created) = env
        .call(api("POST", "/sources", Some(oauth_source("crvs_main"))))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["auth"]["client_secret"], "********");
    assert_eq!(created["state"], "draft");

    let (_, got) = env.call(api("GET", "/sources/crvs_main", None)).await;
    let (_, list) = env.call(api("GET", "/sources", None)).await;

    // PUT back what GET returned, with the mask in place and one change: the secret stays.
    let mut edit = got.clone();
    edit["name"] = json!("CRVS (renamed)");
    let (status, updated) = env.call(api("PUT", "/sources/crvs_main", Some(edit))).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "CRVS (renamed)");

    for body in [&created, &got, &list, &updated] {
        assert!(!body.to_string().contains(SECRET), "secret leaked: {body}");
    }
    let stored = env
        .store
        .get_data_source("crvs_main")
        .await
        .unwrap()
        .unwrap();
    match stored.auth {
        dci_client::AuthConfig::OAuth2(o) => assert_eq!(o.client_secret.expose_secret(), SECRET),
        other => panic!("auth changed: {other:?}"),
    }

    // The code is fixed: a PUT that changes it is refused on the field, and nothing changes.
    let mut rename = got.clone();
    rename["code"] = json!("crvs_other");
    rename["name"] = json!("Should not be saved");
    let (status, err) = env
        .call(api("PUT", "/sources/crvs_main", Some(rename)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["fields"][0]["field"], "code");
    assert_eq!(err["error"]["fields"][0]["pointer"], "/code");
    let (_, still) = env.call(api("GET", "/sources/crvs_main", None)).await;
    assert_eq!(still["name"], "CRVS (renamed)");
    // Nested fields point into the body.
    let mut bad = got.clone();
    bad["auth"]["client_id"] = json!("");
    bad["endpoints"]["search"] = json!("no-slash");
    let (status, err) = env.call(api("PUT", "/sources/crvs_main", Some(bad))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let pointers: Vec<&str> = err["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/auth/client_id", "/endpoints/search"]);

    // A duplicate code is a conflict on the field.
    let (status, err) = env
        .call(api("POST", "/sources", Some(oauth_source("crvs_main"))))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"]["fields"][0]["field"], "code");
    assert!(!err.to_string().contains(SECRET));

    let (status, _) = env.call(api("DELETE", "/sources/crvs_main", None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, err) = env.call(api("GET", "/sources/crvs_main", None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["kind"], "not_found");
}

#[tokio::test]
async fn operations_on_a_disabled_or_unknown_source_are_refused() {
    let env = Env::new().await;
    let mut src = oauth_source("crvs_off");
    src["active"] = json!(false);
    let (status, _) = env.call(api("POST", "/sources", Some(src))).await;
    assert_eq!(status, StatusCode::CREATED);
    let search = json!({"query_type": "idtype-value", "query": "UIN:1"});
    let (status, err) = env
        .call(api(
            "POST",
            "/sources/crvs_off/search",
            Some(search.clone()),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["fields"][0]["field"], "active");
    let (status, _) = env
        .call(api("POST", "/sources/ghost/search", Some(search)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = env.call(api("GET", "/transactions/t-unknown", None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_registry_that_cannot_be_reached_is_a_502_with_the_class() {
    let env = Env::new().await;
    let mut src = oauth_source("crvs_down");
    src["auth"] = json!({"type": "none"});
    src["base_url"] = json!("http://127.0.0.1:9/crvs");
    let (status, _) = env.call(api("POST", "/sources", Some(src))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, err) = env
        .call(api(
            "POST",
            "/sources/crvs_down/search",
            Some(json!({"query_type": "idtype-value", "query": "UIN:1"})),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{err}");
    assert_eq!(err["error"]["kind"], "registry_unavailable");
    assert_eq!(err["error"]["class"], "connect");
}

async fn stored_callbacks(env: &Env) -> usize {
    env.ops
        .list_callbacks(&CallbackFilter::default())
        .await
        .unwrap()
        .len()
}

/// The path of the callback URL (secret included) in a creation answer.
fn secret_route(created: &Value) -> String {
    created["callbacks"]["url"]
        .as_str()
        .and_then(|u| u.strip_prefix("http://127.0.0.1:8080"))
        .unwrap_or_else(|| panic!("no callback URL in {created}"))
        .to_owned()
}

#[tokio::test]
async fn callback_refusals_use_dci_codes_and_store_nothing() {
    let env = Env::new().await;
    let mut src = oauth_source("crvs_main");
    src["auth"] = json!({"type": "none"});
    let (_, created) = env.call(api("POST", "/sources", Some(src))).await;
    // The callback URL with the source's secret, as the creation answer shows it.
    let cb = secret_route(&created);

    let envelope = json!({
        "header": {"version": "1.0.0", "message_id": "cb-1", "message_ts": "2026-11-29T10:00:00Z",
                   "sender_id": "crvs.example.org", "action": "on-search", "status": "succ", "total_count": 1, "completed_count": 1},
        "message": {"transaction_id": "t-never-sent", "correlation_id": "c1", "search_response": []}
    });

    // Unknown data source.
    let (status, body) = env
        .call(post_raw(
            "/callback/ghost/registry/on-search",
            envelope.to_string(),
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"]["ack_status"], "ERR");
    assert_eq!(body["message"]["error"]["code"], "err.request.not_found");

    // Not JSON.
    let (status, body) = env
        .call(post_raw(&format!("{cb}/registry/on-search"), "not json"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"]["error"]["code"], "err.request.bad");

    // JSON but not an envelope: a malformed DCI message, answered the DCI way (HTTP 200).
    let (status, body) = env.call(post_raw(&cb, "{\"hello\": 1}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"]["ack_status"], "ERR");
    assert_eq!(body["message"]["error"]["code"], "err.request.bad");

    // The action does not belong at this path.
    let (status, body) = env
        .call(post_raw(
            &format!("{cb}/registry/notify"),
            envelope.to_string(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["error"]["code"], "err.request.bad");

    // Not a callback action at all, on the bare route.
    let mut req_action = envelope.clone();
    req_action["header"]["action"] = json!("search");
    let (status, body) = env.call(post_raw(&cb, req_action.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"]["error"]["code"], "err.request.bad");

    // A transaction this source never sent.
    let (status, body) = env
        .call(post_raw(
            &format!("{cb}/registry/on-search"),
            envelope.to_string(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["error"]["code"], "err.request.not_found");

    // The same at the root path: found by its sender, so first authenticated as that source
    // requires (no secret: HTTP 401), then, with the secret as a bearer token, refused the DCI
    // way for its unknown transaction.
    let (status, body) = env
        .call(post_raw("/registry/on-search", envelope.to_string()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["message"]["error"]["code"], "err.request.unauthorized");
    let secret = cb.rsplit('/').next().unwrap().to_owned();
    let mut req = post_raw("/registry/on-search", envelope.to_string());
    req.headers_mut().insert(
        axum::http::header::AUTHORIZATION,
        format!("Bearer {secret}").parse().unwrap(),
    );
    let (status, body) = env.call(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["error"]["code"], "err.request.not_found");

    // Oversized.
    let big = format!(
        "{{\"header\": {{\"pad\": \"{}\"}}}}",
        "x".repeat(3 * 1024 * 1024)
    );
    let (status, body) = env
        .call(post_raw(&format!("{cb}/registry/on-search"), big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["message"]["ack_status"], "ERR");

    assert_eq!(
        stored_callbacks(&env).await,
        0,
        "a refused callback was stored"
    );
}

#[tokio::test]
async fn notify_is_stored_once_and_a_re_send_acknowledged_again() {
    let env = Env::new().await;
    let mut src = oauth_source("crvs_main");
    src["auth"] = json!({"type": "none"});
    let (_, created) = env.call(api("POST", "/sources", Some(src))).await;
    // The callback URL with the source's secret, as the creation answer shows it.
    let cb = secret_route(&created);
    let notify = json!({
        "header": {"version": "1.0.0", "message_id": "n-1", "message_ts": "2026-11-29T10:00:00Z",
                   "sender_id": "crvs.example.org", "action": "notify", "status": "succ", "total_count": 1},
        "message": {"transaction_id": "reg-t1", "notify_event": [{"reference_id": "e1"}]}
    });
    let (status, body) = env
        .call(post_raw(
            &format!("{cb}/registry/notify"),
            notify.to_string(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["ack_status"], "ACK");
    // The registry re-sends it (its ACK was lost): ACKed again, stored once.
    let (status, body) = env.call(post_raw(&cb, notify.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["ack_status"], "ACK");
    assert_eq!(stored_callbacks(&env).await, 1);
    // The same message id with another body is refused, and stores nothing.
    let mut other = notify.clone();
    other["message"]["notify_event"] = json!([{"reference_id": "e2"}]);
    let (status, body) = env.call(post_raw(&cb, other.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["ack_status"], "ERR");
    assert_eq!(body["message"]["error"]["code"], "err.request.bad");
    assert_eq!(stored_callbacks(&env).await, 1);
}

#[tokio::test]
async fn jwks_lists_active_keys_only() {
    let env = Env::new().await;
    let keys = dci_client::keys::KeyManager::new(env.ops.clone());
    let ed = dci_protocol::signature::Algorithm::Ed25519;
    let idle = dci_client::keys::GenerateOptions {
        activate: false,
        ..Default::default()
    };
    keys.generate("k-active", ed, Default::default())
        .await
        .unwrap();
    keys.generate("k-idle", ed, idle).await.unwrap();
    keys.generate("k-revoked", ed, Default::default())
        .await
        .unwrap();
    keys.revoke("k-revoked").await.unwrap();
    let (status, body) = env
        .call(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let kids: Vec<&str> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["k-active"]);
    assert!(!body.to_string().contains("PRIVATE"));
}

#[tokio::test]
async fn openapi_is_public_and_every_documented_route_is_served() {
    let env = Env::new().await;
    let (status, doc) = env
        .call(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut n = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            n += 1;
            let concrete = path
                .replace("{code}", "no_such_source")
                .replace("{transaction_id}", "t-none");
            let body = (method == "post" || method == "put").then(|| json!({}));
            let (status, resp) = env.call(api(&method.to_uppercase(), &concrete, body)).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let msg = resp["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !msg.starts_with("no such API route"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert!(n >= 12, "only {n} operations documented");
}

#[tokio::test]
async fn callbacks_without_a_valid_signature_are_refused_when_required() {
    use dci_protocol::signature::{Algorithm, SigningKey};
    let env = Env::new().await;
    let registry_key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let mut src = oauth_source("crvs_signed");
    src["auth"] = json!({"type": "none"});
    src["reply_signature_policy"] = json!("require");
    src["registry_public_keys"] = json!([registry_key.verifying_key().to_spki_pem()]);
    let (status, body) = env.call(api("POST", "/sources", Some(src))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let notify = json!({
        "header": {"version": "1.0.0", "message_id": "n-sig", "message_ts": "2026-11-29T10:00:00Z",
                   "sender_id": "crvs.example.org", "action": "notify", "status": "succ", "total_count": 1},
        "message": {"transaction_id": "reg-t1", "notify_event": []}
    });
    let (status, body) = env
        .call(post_raw(
            "/callback/crvs_signed/registry/notify",
            notify.to_string(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["error"]["code"], "err.signature.missing");

    let mut forged = notify.clone();
    forged["signature"] = json!(
        "Signature: namespace=\"dci\", kidId=\"reg|k1|ed25519\", algorithm=\"ed25519\", created=\"1764410400\", expires=\"1764414000\", headers=\"(created) (expires) digest\", signature=\"AAAA\""
    );
    let (status, body) = env
        .call(post_raw("/callback/crvs_signed", forged.to_string()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["error"]["code"], "err.signature.invalid");

    assert_eq!(
        stored_callbacks(&env).await,
        0,
        "an unverified callback was stored"
    );
}

#[tokio::test]
async fn waits_longer_than_the_request_timeout_are_refused_up_front() {
    let env = Env::new().await;
    let mut src = oauth_source("crvs_main");
    src["auth"] = json!({"type": "none"});
    env.call(api("POST", "/sources", Some(src))).await;
    let search =
        json!({"query_type": "idtype-value", "query": "UIN:1", "mode": "async", "wait_secs": 600});
    let (status, err) = env
        .call(api("POST", "/sources/crvs_main/search", Some(search)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["fields"][0]["field"], "wait_secs");
    let sync_wait = json!({"query_type": "idtype-value", "query": "UIN:1", "wait_secs": 5});
    let (status, err) = env
        .call(api("POST", "/sources/crvs_main/search", Some(sync_wait)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
}
