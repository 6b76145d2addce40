//! The RabbitMQ sink against the real broker at 127.0.0.1:5672 (guest/guest): events from the
//! outbox (a real SQLite file) are published with publisher confirms to an exchange this test
//! declares (unique per test), and read back by a consumer on a queue bound to it. The worker
//! reaches the broker through a TCP relay in this test that drops every connection mid-run:
//! no event is lost, each arrives with its event id as message id, duplicates (same id) are
//! counted. An exchange with no queue bound gets nothing marked delivered (the broker returns
//! the unroutable message, so the confirm is not taken as delivery).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dci_client::events::{EventKind, EventStore, NewEvent};
use dci_client::webhooks::{
    DeliveryFilter, DeliveryState, EndpointInput, Sink, WebhookSettings, WebhookWorker,
    create_endpoint,
};
use dci_protocol::test_support::skip;
use dci_store::SqliteStore;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const BROKER: &str = "127.0.0.1:5672";

/// Connects to the real broker, or skips.
async fn broker() -> Option<Connection> {
    match Connection::connect(
        &format!("amqp://guest:guest@{BROKER}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    {
        Ok(c) => Some(c),
        Err(e) => {
            skip(&format!(
                "RabbitMQ is not answering at {BROKER} ({e}): start it (`.ci/run` does)"
            ));
            None
        }
    }
}

/// A TCP relay to the broker; bumping the watch cuts every relayed connection; the counter
/// counts connections made.
async fn relay() -> (u16, watch::Sender<u64>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cut, rx) = watch::channel(0u64);
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut rx = rx.clone();
            rx.mark_unchanged();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(BROKER).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = rx.changed() => {}
                }
            });
        }
    });
    (port, cut, connections)
}

fn settings() -> WebhookSettings {
    WebhookSettings {
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        poll: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        max_attempts: 1000,
        ..WebhookSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_confirmed_by_the_broker_and_none_is_lost_across_a_connection_drop() {
    let Some(admin) = broker().await else {
        return;
    };
    let channel = admin.create_channel().await.unwrap();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let exchange = format!("dci-test-{unique}");
    let queue = format!("dci-test-{unique}");
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open_file(
            &dir.path().join("dci.sqlite3"),
            &dci_client::MasterKey::from_bytes([7; 32]),
        )
        .await
        .unwrap(),
    );
    let (port, cut, connections) = relay().await;
    let (sink, secret) = create_endpoint(
        store.as_ref(),
        &EndpointInput {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            sink: Some("amqp".into()),
            exchange: Some(exchange.clone()),
            ..EndpointInput::default()
        },
    )
    .await
    .unwrap();
    assert!(secret.is_none(), "a sink has no signing secret to show");
    assert_eq!(sink.url, format!("amqp://127.0.0.1:{port}/%2f"));
    assert!(matches!(&sink.sink, Sink::Amqp { exchange: x, routing_key: None } if *x == exchange));

    const EVENTS: usize = 300;
    let mut ids = Vec::new();
    let mut bodies = HashMap::new();
    for i in 0..EVENTS / 2 {
        let kind = if i % 2 == 0 {
            EventKind::NotificationReceived
        } else {
            EventKind::SearchCompleted
        };
        let e = store
            .append_event(&NewEvent::new(kind, json!({ "n": i })))
            .await
            .unwrap();
        bodies.insert(e.id.clone(), (kind, e.webhook_body()));
        ids.push(e.id);
    }

    let consumer_channel = admin.create_channel().await.unwrap();
    let mut consumer = consumer_channel
        .basic_consume(
            queue.as_str().into(),
            "dci-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let worker = WebhookWorker::new(store.clone(), settings()).unwrap();
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(worker.run_until(async move {
        let mut s = stopped;
        let _ = s.wait_for(|v| *v).await;
    }));

    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut received = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < EVENTS {
        if seen.len() == EVENTS / 2 && ids.len() == EVENTS / 2 {
            // The first half is in: drop the worker's broker connection, then queue the second
            // half (the worker must notice and reconnect), and drop it again mid-stream below.
            cut.send_modify(|g| *g += 1);
            for i in EVENTS / 2..EVENTS {
                let kind = if i % 2 == 0 {
                    EventKind::NotificationReceived
                } else {
                    EventKind::SearchCompleted
                };
                let e = store
                    .append_event(&NewEvent::new(kind, json!({ "n": i })))
                    .await
                    .unwrap();
                bodies.insert(e.id.clone(), (kind, e.webhook_body()));
                ids.push(e.id);
            }
        }
        let next = tokio::time::timeout_at(deadline, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {EVENTS} events arrived", seen.len()))
            .unwrap()
            .unwrap();
        let id = next
            .properties
            .message_id()
            .as_ref()
            .expect("every message carries the event id as message id")
            .to_string();
        let (kind, body) = bodies
            .get(&id)
            .unwrap_or_else(|| panic!("unknown message id {id}"));
        assert_eq!(
            next.properties.delivery_mode(),
            &Some(2),
            "messages are persistent"
        );
        assert_eq!(
            next.properties.kind().as_ref().map(|k| k.to_string()),
            Some(kind.as_str().to_owned())
        );
        assert_eq!(
            next.routing_key.as_str(),
            kind.as_str(),
            "routing key: the kind"
        );
        let got: serde_json::Value = serde_json::from_slice(&next.data).unwrap();
        assert_eq!(&got, body, "the body is the webhook body");
        next.ack(BasicAckOptions::default()).await.unwrap();
        *seen.entry(id).or_default() += 1;
        received += 1;
        if seen.len() == EVENTS * 2 / 3 {
            cut.send_modify(|g| *g += 1);
        }
    }
    assert!(
        connections.load(Ordering::SeqCst) >= 2,
        "the worker connected again after the drop"
    );

    // Every delivery ends delivered, after the broker's confirm.
    let wait = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pending = store
            .list_deliveries(&DeliveryFilter {
                endpoint_id: Some(sink.id.clone()),
                state: Some(DeliveryState::Pending),
                limit: 1000,
                ..DeliveryFilter::default()
            })
            .await
            .unwrap();
        if pending.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < wait,
            "{} deliveries still pending",
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = store
        .list_deliveries(&DeliveryFilter {
            endpoint_id: Some(sink.id.clone()),
            state: Some(DeliveryState::Delivered),
            limit: 1000,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(delivered.len(), EVENTS);
    assert!(ids.iter().all(|id| seen.contains_key(id)), "none lost");
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    // A message the broker took but whose confirm died with the connection is sent again,
    // with the same message id.
    println!(
        "amqp sink: {EVENTS} events, {received} messages, {duplicates} duplicates (same id) across 2 connection drops ({} connections)",
        connections.load(Ordering::SeqCst)
    );
    // Attempts are recorded; the failed ones say why, without the broker's password.
    let mut failed = 0;
    for id in &ids {
        for a in store.list_attempts(&sink.id, id).await.unwrap() {
            if let Some(e) = &a.error {
                failed += 1;
                assert!(!e.contains("guest:guest"), "{e}");
            }
        }
    }
    println!("amqp sink: {failed} failed attempts while reconnecting");

    stop.send(true).unwrap();
    running.await.unwrap();
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_event_is_not_marked_delivered() {
    let Some(admin) = broker().await else {
        return;
    };
    let channel = admin.create_channel().await.unwrap();
    let exchange = format!("dci-test-{}", uuid::Uuid::new_v4().simple());
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open_file(
            &dir.path().join("dci.sqlite3"),
            &dci_client::MasterKey::from_bytes([7; 32]),
        )
        .await
        .unwrap(),
    );
    let (sink, _) = create_endpoint(
        store.as_ref(),
        &EndpointInput {
            url: format!("amqp://guest:guest@{BROKER}/%2f"),
            sink: Some("amqp".into()),
            exchange: Some(exchange.clone()),
            routing_key: Some("nobody-listens".into()),
            ..EndpointInput::default()
        },
    )
    .await
    .unwrap();
    let e = store
        .append_event(&NewEvent::new(EventKind::TransactionFailed, json!({})))
        .await
        .unwrap();
    let worker = WebhookWorker::new(store.clone(), settings()).unwrap();
    assert_eq!(worker.pass().await.unwrap(), 1);
    let attempts = store.list_attempts(&sink.id, &e.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    let why = attempts[0].error.as_deref().unwrap_or_default();
    assert!(why.contains("unroutable"), "{why}");
    let d = store
        .list_deliveries(&DeliveryFilter {
            endpoint_id: Some(sink.id.clone()),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(d[0].state, DeliveryState::Pending, "retried, not delivered");
    // A wrong exchange (not declared) fails the same way, and a bad broker URL is refused
    // naming the field.
    let bad = create_endpoint(
        store.as_ref(),
        &EndpointInput {
            url: "rabbit://guest:guest@h".into(),
            sink: Some("amqp".into()),
            ..EndpointInput::default()
        },
    )
    .await
    .unwrap_err();
    let msg = bad.to_string();
    assert!(msg.starts_with("url:"), "{msg}");
    assert!(!msg.contains("guest:guest"), "{msg}");
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}
