//! The events, notifications, subscriptions, transactions and webhook routes through the
//! router (`oneshot`) over a real SQLite store: cursor paging, filters, acks, webhook CRUD
//! with a write-only secret, deliveries, redelivery, and errors that name the field.

mod support;

use dci_client::events::{EventKind, NewEvent};
use dci_client::ops::store::{SubscriptionRecord, SubscriptionState};
use secrecy::ExposeSecret;
use serde_json::json;
use support::{Env, api};
use time::OffsetDateTime;

async fn seed(env: &Env, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let kind = if i % 2 == 0 {
            EventKind::NotificationReceived
        } else {
            EventKind::SearchCompleted
        };
        let mut e = NewEvent::new(kind, json!({"i": i}));
        e.source_code = Some(if i < 3 { "crvs" } else { "dr" }.into());
        ids.push(env.ops.append_event(&e).await.unwrap().id);
    }
    ids
}

#[tokio::test]
async fn events_page_by_cursor_filter_and_ack() {
    let env = Env::new().await;
    let ids = seed(&env, 5).await;
    let (s, p1) = env.call(api("GET", "/events?limit=2", None)).await;
    assert_eq!(s, 200, "{p1}");
    let got: Vec<&str> = p1["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[0].as_str(), ids[1].as_str()]);
    let cursor = p1["next_cursor"].as_str().unwrap().to_owned();
    assert!(!cursor.contains('2'), "opaque: {cursor}");
    // An event appended meanwhile comes after the rest, never inside a page already read.
    let late = seed(&env, 1).await;
    let (_, p2) = env
        .call(api(
            "GET",
            &format!("/events?after={cursor}&limit=10"),
            None,
        ))
        .await;
    let got: Vec<&str> = p2["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            ids[2].as_str(),
            ids[3].as_str(),
            ids[4].as_str(),
            late[0].as_str()
        ]
    );
    // An empty page hands the cursor back, to poll with.
    let end = p2["next_cursor"].as_str().unwrap().to_owned();
    let (_, p3) = env
        .call(api("GET", &format!("/events?after={end}"), None))
        .await;
    assert_eq!(p3["events"], json!([]));
    assert_eq!(p3["next_cursor"], end.as_str());

    let (_, only) = env
        .call(api("GET", "/events?kind=search.completed&source=dr", None))
        .await;
    assert_eq!(only["events"].as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only["events"][0]["id"], ids[3].as_str());

    let (s, acked) = env
        .call(api(
            "POST",
            "/events/ack",
            Some(json!({"ids": [ids[0], ids[1]]})),
        ))
        .await;
    assert_eq!((s.as_u16(), &acked["marked"]), (200, &json!(2)));
    let (_, open) = env.call(api("GET", "/events?unprocessed=true", None)).await;
    assert_eq!(open["events"].as_array().unwrap().len(), 4);
    let (s, one) = env
        .call(api("GET", &format!("/events/{}", ids[0]), None))
        .await;
    assert_eq!(s, 200);
    assert!(one["processed_at"].is_string(), "{one}");

    // Errors name the field and the fix.
    for (path, field) in [
        ("/events?after=42", "after"),
        ("/events?kind=search.done", "kind"),
        ("/events?since=yesterday", "since"),
        ("/events?limit=0", "limit"),
    ] {
        let (s, e) = env.call(api("GET", path, None)).await;
        assert_eq!(s, 422, "{path}: {e}");
        assert_eq!(e["error"]["fields"][0]["field"], field, "{path}: {e}");
    }
    let (s, e) = env
        .call(api("POST", "/events/ack", Some(json!({"ids": []}))))
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, _) = env.call(api("GET", "/events/evt_nope", None)).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn webhook_endpoints_are_managed_with_a_write_only_secret() {
    let env = Env::new().await;
    let (s, created) = env
        .call(api(
            "POST",
            "/webhooks",
            Some(json!({"url": "https://spmis.example/hooks", "kinds": ["notification.received"], "description": "deaths"})),
        ))
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    // Stored sealed; never shown again.
    assert_eq!(
        env.ops
            .webhook_secret(&id)
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        secret
    );
    for path in ["/webhooks".to_owned(), format!("/webhooks/{id}")] {
        let (s, v) = env.call(api("GET", &path, None)).await;
        assert_eq!(s, 200);
        assert!(!v.to_string().contains(&secret), "{path}: {v}");
        assert!(!v.to_string().contains("secret"), "{path}: {v}");
    }
    let raw = std::fs::read(env.db_path()).unwrap();
    let wal = std::fs::read(env.db_path().with_extension("sqlite3-wal")).unwrap_or_default();
    let needle = &secret.as_bytes()[6..30];
    assert!(
        !raw.windows(needle.len())
            .chain(wal.windows(needle.len()))
            .any(|w| w == needle)
    );

    // A given secret is taken (and not echoed back as anything but what was given).
    let mine = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (s, c2) = env
        .call(api(
            "POST",
            "/webhooks",
            Some(json!({"url": "http://10.0.0.5:8000/in", "secret": mine})),
        ))
        .await;
    assert_eq!(s, 201, "{c2}");
    assert_eq!(c2["secret"], mine);

    let (s, up) = env
        .call(api(
            "PUT",
            &format!("/webhooks/{id}"),
            Some(json!({"url": "https://spmis.example/v2", "enabled": false})),
        ))
        .await;
    assert_eq!(s, 200, "{up}");
    assert_eq!(
        (
            up["enabled"].clone(),
            up["kinds"].clone(),
            up["description"].clone()
        ),
        (json!(false), json!([]), json!("deaths"))
    );

    for (body, field) in [
        (json!({"url": "ftp://x"}), "url"),
        (json!({"url": "https://user:pw@spmis.example/"}), "url"),
        (
            json!({"url": "https://spmis.example/", "kinds": ["search.done"]}),
            "kinds",
        ),
        (
            json!({"url": "https://spmis.example/", "secret": "whsec_short"}),
            "secret",
        ),
    ] {
        let (s, e) = env.call(api("POST", "/webhooks", Some(body.clone()))).await;
        assert_eq!(s, 422, "{body}: {e}");
        assert_eq!(e["error"]["fields"][0]["field"], field, "{e}");
    }
    let (s, e) = env
        .call(api(
            "POST",
            "/webhooks",
            Some(json!({"url": "https://x.example/", "colour": 1})),
        ))
        .await;
    assert_eq!(s, 422, "{e}");

    let (s, _) = env
        .call(api("DELETE", &format!("/webhooks/{id}"), None))
        .await;
    assert_eq!(s, 204);
    let (s, _) = env
        .call(api("DELETE", &format!("/webhooks/{id}"), None))
        .await;
    assert_eq!(s, 404);
    let (s, _) = env
        .call(api("GET", &format!("/webhooks/{id}/deliveries"), None))
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn deliveries_are_listed_and_redelivered_by_id_or_range() {
    let env = Env::new().await;
    let (_, created) = env
        .call(api(
            "POST",
            "/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/hook"})),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let ids = seed(&env, 3).await;
    let (s, d) = env
        .call(api("GET", &format!("/webhooks/{id}/deliveries"), None))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["deliveries"].as_array().unwrap().len(), 3);
    assert!(
        d["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["state"] == "pending")
    );
    let (_, one) = env
        .call(api(
            "GET",
            &format!("/webhooks/{id}/deliveries?event={}", ids[1]),
            None,
        ))
        .await;
    assert_eq!(one["deliveries"][0]["attempts_made"], json!([]));
    let (s, e) = env
        .call(api(
            "GET",
            &format!("/webhooks/{id}/deliveries?state=lost"),
            None,
        ))
        .await;
    assert_eq!(
        (s.as_u16(), e["error"]["fields"][0]["field"].clone()),
        (422, json!("state"))
    );

    let (s, q) = env
        .call(api(
            "POST",
            "/webhooks/redeliver",
            Some(json!({"event_id": ids[0]})),
        ))
        .await;
    assert_eq!((s.as_u16(), q["queued"].clone()), (200, json!(1)), "{q}");
    let since = (OffsetDateTime::now_utc() - time::Duration::minutes(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (s, q) = env
        .call(api(
            "POST",
            "/webhooks/redeliver",
            Some(json!({"since": since, "endpoint_id": id})),
        ))
        .await;
    assert_eq!((s.as_u16(), q["queued"].clone()), (200, json!(3)), "{q}");
    let (s, _) = env
        .call(api(
            "POST",
            "/webhooks/redeliver",
            Some(json!({"event_id": "evt_nope"})),
        ))
        .await;
    assert_eq!(s, 404);
    let (s, e) = env
        .call(api("POST", "/webhooks/redeliver", Some(json!({}))))
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, _) = env
        .call(api(
            "POST",
            "/webhooks/redeliver",
            Some(json!({"event_id": ids[0], "endpoint_id": "wh_nope"})),
        ))
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn subscriptions_notifications_and_transactions_are_listed() {
    let env = Env::new().await;
    let now = OffsetDateTime::now_utc();
    env.ops
        .upsert_subscription(&SubscriptionRecord {
            source_code: "crvs".into(),
            code: "sub-1".into(),
            state: SubscriptionState::Subscribed,
            event_type: Some("Death".into()),
            transaction_id: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let (s, subs) = env
        .call(api("GET", "/subscriptions?source=crvs", None))
        .await;
    assert_eq!(s, 200);
    assert_eq!(subs["subscriptions"][0]["code"], "sub-1");
    assert_eq!(subs["subscriptions"][0]["state"], "subscribed");
    // The upsert wrote its event.
    let (_, ev) = env
        .call(api("GET", "/events?kind=subscription.changed", None))
        .await;
    assert_eq!(ev["events"][0]["subscription_code"], "sub-1", "{ev}");

    let (s, n) = env.call(api("GET", "/notifications", None)).await;
    assert_eq!((s.as_u16(), n["notifications"].clone()), (200, json!([])));
    let (s, t) = env
        .call(api(
            "GET",
            "/transactions?state=completed&since=2020-01-01T00:00:00Z",
            None,
        ))
        .await;
    assert_eq!(
        (s.as_u16(), t["transactions"].clone()),
        (200, json!([])),
        "{t}"
    );
    let (s, e) = env.call(api("GET", "/transactions?state=done", None)).await;
    assert_eq!(
        (s.as_u16(), e["error"]["fields"][0]["field"].clone()),
        (422, json!("state"))
    );
}
