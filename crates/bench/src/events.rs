//! `dci-bench events`: the outbox's two costs, side by side in alternating rounds (see
//! `bench/EVENTS.md`):
//!
//! - delivery: events per second from the outbox (a real SQLite file) to a webhook receiver on
//!   loopback (axum, answers 204) and to a RabbitMQ queue (127.0.0.1:5672, publisher confirms),
//!   by the library's `WebhookWorker`;
//! - ingest: the cost per callback of writing its event — `insert_callback` of a `notify`
//!   callback (its row, its `notification.received` event and one delivery row per endpoint, in
//!   one transaction) against the same insert of a callback that causes no event (the baseline),
//!   with 0 and 1 endpoints configured.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use dci_client::events::{EventKind, EventStore, NewEvent};
use dci_client::ops::OpsStore;
use dci_client::ops::store::{CallbackRecord, SignatureState};
use dci_client::webhooks::{
    DeliveryFilter, DeliveryState, EndpointInput, WebhookSettings, WebhookWorker, create_endpoint,
};
use dci_store::SqliteStore;
use serde_json::json;

#[derive(clap::Args)]
pub(crate) struct EventsArgs {
    /// Events per delivery round.
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Callbacks per ingest round.
    #[arg(long, default_value_t = 2000)]
    callbacks: usize,
    /// Rounds per side (alternating).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The RabbitMQ broker.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    broker: String,
    /// Where to write the results (Markdown).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

async fn store(dir: &tempfile::TempDir, name: &str) -> Result<Arc<SqliteStore>> {
    Ok(Arc::new(
        SqliteStore::open_file(
            &dir.path().join(name),
            &dci_client::MasterKey::from_bytes([5; 32]),
        )
        .await?,
    ))
}

/// A receiver answering 204 to every POST; its URL.
async fn receiver() -> Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// A queue on the default exchange, drained by a consumer that acks; its name.
async fn queue(broker: &str) -> Result<(lapin::Connection, String)> {
    use futures::StreamExt as _;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
    let conn = lapin::Connection::connect(broker, lapin::ConnectionProperties::default())
        .await
        .context("connecting to RabbitMQ")?;
    let ch = conn.create_channel().await?;
    let name = format!("dci-bench-{}", uuid_like());
    ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
        lapin::types::FieldTable::default(),
    )
    .await?;
    let mut consumer = ch
        .basic_consume(
            name.as_str().into(),
            "dci-bench".into(),
            BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let _ = d.ack(BasicAckOptions::default()).await;
        }
    });
    Ok((conn, name))
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

/// One delivery round: `n` events queued for one endpoint, drained by the worker; events/s.
async fn delivery_round(input: EndpointInput, n: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let s = store(&dir, "deliver.sqlite3").await?;
    let (endpoint, _) = create_endpoint(s.as_ref(), &input)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    for i in 0..n {
        s.append_event(&NewEvent::new(
            EventKind::NotificationReceived,
            json!({ "n": i, "notification": { "events": [{ "reference_id": format!("r{i}") }] } }),
        ))
        .await?;
    }
    let worker = WebhookWorker::new(
        s.clone(),
        WebhookSettings {
            concurrency: 1,
            ..WebhookSettings::default()
        },
    )?;
    let started = Instant::now();
    loop {
        let made = worker.pass().await?;
        let pending = s
            .list_deliveries(&DeliveryFilter {
                endpoint_id: Some(endpoint.id.clone()),
                state: Some(DeliveryState::Pending),
                limit: 1,
                ..DeliveryFilter::default()
            })
            .await?;
        if pending.is_empty() {
            break;
        }
        if made == 0 {
            return Err(anyhow!(
                "deliveries to {} stopped with some pending (is the sink up?)",
                endpoint.url
            ));
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn record(i: usize, round: usize, action: &str) -> CallbackRecord {
    let message_id = format!("m-{round}-{action}-{i}");
    CallbackRecord {
        source_code: "bench_crvs".into(),
        message_id: message_id.clone(),
        action: action.into(),
        transaction_id: None,
        correlation_id: Some(format!("c-{round}-{i}")),
        status: Some("succ".into()),
        total_count: Some(1),
        completed_count: Some(1),
        signature: SignatureState::Verified,
        signature_key_id: Some("kid-1".into()),
        body: json!({
            "header": { "message_id": message_id, "action": action },
            "message": { "correlation_id": format!("c-{round}-{i}"), "notify_event": [
                { "reference_id": format!("r{i}"), "subscription_code": "sub-1",
                  "data": { "reg_event_type": "4", "reg_records": { "uin": format!("{i:010}") } } }
            ] }
        }),
        tolerated: Vec::new(),
        received_at: time::OffsetDateTime::now_utc(),
    }
}

/// One ingest round: `n` callbacks inserted one after another; microseconds per callback.
async fn ingest_round(action: &str, endpoints: usize, n: usize, round: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let s = store(&dir, "ingest.sqlite3").await?;
    for _ in 0..endpoints {
        create_endpoint(
            s.as_ref(),
            &EndpointInput {
                url: "http://127.0.0.1:9/hook".into(),
                ..EndpointInput::default()
            },
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
    }
    let records: Vec<_> = (0..n).map(|i| record(i, round, action)).collect();
    let started = Instant::now();
    for r in &records {
        s.insert_callback(r).await?;
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    // The sides did what they claim: events written only by the notify side.
    let events = s
        .list_events(&dci_client::events::EventFilter {
            limit: u32::try_from(n + 1).unwrap_or(u32::MAX),
            ..Default::default()
        })
        .await?
        .len();
    let expected = if action == "notify" { n } else { 0 };
    if events != expected {
        return Err(anyhow!(
            "{action}: {events} events written, expected {expected}"
        ));
    }
    Ok(per)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) async fn events_bench(a: EventsArgs) -> Result<()> {
    let hook = receiver().await?;
    let (_conn, q) = queue(&a.broker).await?;
    let webhook = EndpointInput {
        url: hook.clone(),
        ..EndpointInput::default()
    };
    let amqp = EndpointInput {
        url: a.broker.clone(),
        sink: Some("amqp".into()),
        exchange: Some(String::new()),
        routing_key: Some(q.clone()),
        ..EndpointInput::default()
    };
    // Warm-up (connections, page cache), not counted.
    delivery_round(webhook.clone(), 50).await?;
    delivery_round(amqp.clone(), 50).await?;
    ingest_round("txn-on-status", 0, 200, 0).await?;
    ingest_round("notify", 1, 200, 0).await?;

    let (mut wh, mut mq) = (Vec::new(), Vec::new());
    let (mut base, mut ev0, mut ev1) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=a.rounds {
        wh.push(delivery_round(webhook.clone(), a.events).await?);
        mq.push(delivery_round(amqp.clone(), a.events).await?);
        // The ingest sides in a rotating order (A B C, B C A, C A B, …).
        for side in 0..3 {
            match (side + round) % 3 {
                0 => base.push(ingest_round("txn-on-status", 0, a.callbacks, round).await?),
                1 => ev0.push(ingest_round("notify", 0, a.callbacks, round).await?),
                _ => ev1.push(ingest_round("notify", 1, a.callbacks, round).await?),
            }
        }
        eprintln!(
            "round {round}: webhook {:.0} ev/s, amqp {:.0} ev/s; ingest {:.0} / {:.0} / {:.0} µs",
            wh[round - 1],
            mq[round - 1],
            base[round - 1],
            ev0[round - 1],
            ev1[round - 1]
        );
    }
    let (wh, mq) = (median(&mut wh), median(&mut mq));
    let (base, ev0, ev1) = (median(&mut base), median(&mut ev0), median(&mut ev1));
    let report = format!(
        "# Events benchmark results (`dci-bench events`)\n\n\
         Method: `bench/EVENTS.md`. {} rounds per side, alternating; medians.\n\n\
         ## Delivery from the outbox ({} events per round, one endpoint, concurrency 1)\n\n\
         | sink | events/s | ratio to webhook |\n|---|---:|---:|\n\
         | webhook (signed POST to a loopback receiver, 204) | {wh:.0} | 1.00 |\n\
         | RabbitMQ (persistent, mandatory, confirmed one by one) | {mq:.0} | {:.2} |\n\n\
         ## Ingest: cost per callback of writing its event ({} callbacks per round)\n\n\
         | side | µs per callback | ratio to baseline |\n|---|---:|---:|\n\
         | baseline: a callback that causes no event (`txn-on-status`, no transaction) | {base:.0} | 1.00 |\n\
         | `notify` + its event, no endpoint configured | {ev0:.0} | {:.2} |\n\
         | `notify` + its event + 1 delivery row (1 endpoint) | {ev1:.0} | {:.2} |\n",
        a.rounds,
        a.events,
        mq / wh,
        a.callbacks,
        ev0 / base,
        ev1 / base,
    );
    println!("{report}");
    if let Some(out) = a.out {
        std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
