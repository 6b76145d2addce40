//! The RabbitMQ sink: one persistent AMQP 0.9.1 message per event, published to the sink's
//! exchange on a channel in confirm mode. An attempt succeeds only when the broker has
//! confirmed the message (`basic.ack`) and has not returned it as unroutable (the publish is
//! `mandatory`), so the delivery machinery of [`super::WebhookWorker`] marks the event delivered
//! only after that. The event id is the message id (and the `webhook-id` header), the kind its
//! type: at least once, and a consumer de-duplicates by message id.
//!
//! Owns the broker links (one connection and confirm channel per sink, opened on first use).
//! A failed attempt drops its link; the next attempt — after the worker's exponential backoff —
//! connects again, so a broker restart or a dropped connection costs retries, never events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

use crate::events::EventRecord;

/// Checks an AMQP broker URL and returns it as shown: without user name and password.
pub(crate) fn check_broker_url(url: &str) -> Result<String, String> {
    let mut parsed = url::Url::parse(url).map_err(|e| {
        format!("the broker URL is not a URL ({e}): give amqp://user:password@host:5672/vhost")
    })?;
    if !matches!(parsed.scheme(), "amqp" | "amqps") || parsed.host_str().is_none() {
        return Err(format!(
            "{:?} is not an amqp:// or amqps:// URL with a host: give amqp://user:password@host:5672/vhost",
            redact(&parsed)
        ));
    }
    // lapin parses the URL again when connecting; refuse here what it would refuse there.
    if let Err(e) = url.parse::<lapin::uri::AMQPUri>() {
        return Err(format!(
            "the broker URL is not usable ({e}): give amqp://user:password@host:5672/vhost"
        ));
    }
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok(parsed.to_string())
}

fn redact(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Where a message goes: the exchange and the routing key (`None`: the event's kind).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) exchange: &'a str,
    pub(crate) routing_key: Option<&'a str>,
}

/// One sink's connection and confirm channel.
struct Link {
    // Kept so the connection lives as long as its channel.
    _connection: Connection,
    channel: Channel,
}

/// The broker links of a worker, one per sink (endpoint id). Cheap to share.
#[derive(Default)]
pub(crate) struct Brokers {
    links: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Link>>>>>,
}

impl Brokers {
    /// Publishes one event and waits for the broker's confirm, within `timeout` per step.
    /// `Err` says why in words without the URL's credentials.
    pub(crate) async fn publish(
        &self,
        endpoint_id: &str,
        broker_url: &SecretString,
        target: Target<'_>,
        event: &EventRecord,
        body: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        let slot = {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            links.entry(endpoint_id.to_owned()).or_default().clone()
        };
        let mut link = slot.lock().await;
        let result = publish_on(&mut link, broker_url, target, event, body, timeout).await;
        if result.is_err() {
            // Reconnect on the next attempt (after the delivery's backoff).
            if let Some(old) = link.take() {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    old._connection.close(200, "reconnecting".into()),
                )
                .await;
            }
        }
        result.map_err(|e| scrub(&e, broker_url))
    }
}

async fn publish_on(
    link: &mut Option<Link>,
    broker_url: &SecretString,
    Target {
        exchange,
        routing_key,
    }: Target<'_>,
    event: &EventRecord,
    body: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    if link
        .as_ref()
        .is_some_and(|l| !l.channel.status().connected())
    {
        *link = None;
    }
    if link.is_none() {
        *link = Some(within(timeout, "connecting to the broker", connect(broker_url)).await?);
    }
    let Some(l) = link.as_ref() else {
        return Err("no broker link".into());
    };
    let mut headers = FieldTable::default();
    headers.insert(
        "webhook-id".into(),
        AMQPValue::LongString(LongString::from(event.id.as_str())),
    );
    let properties = BasicProperties::default()
        .with_message_id(ShortString::from(event.id.as_str()))
        .with_type(ShortString::from(event.kind.as_str()))
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(u64::try_from(event.created_at.unix_timestamp()).unwrap_or(0))
        .with_app_id("dci".into())
        .with_headers(headers);
    let key = routing_key.unwrap_or(event.kind.as_str());
    let confirm = within(
        timeout,
        "publishing",
        l.channel.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        ),
    )
    .await?;
    let confirmation = within(timeout, "waiting for the broker's confirm", confirm).await?;
    if confirmation.is_nack() {
        return Err("the broker refused the message (basic.nack)".into());
    }
    if confirmation.take_message().is_some() {
        return Err(format!(
            "the broker returned the message as unroutable: no queue is bound to exchange {exchange:?} for routing key {key:?}"
        ));
    }
    Ok(())
}

async fn connect(broker_url: &SecretString) -> lapin::Result<Link> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(concat!("dci/", env!("CARGO_PKG_VERSION"))));
    let connection = Connection::connect(broker_url.expose_secret(), props).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(Link {
        _connection: connection,
        channel,
    })
}

async fn within<T>(
    timeout: Duration,
    what: &str,
    f: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: timed out after {}s",
            timeout.as_secs_f32()
        )),
    }
}

/// An error's words without the broker URL or its password, in case a library quoted them.
fn scrub(message: &str, broker_url: &SecretString) -> String {
    let url = broker_url.expose_secret();
    let mut out = message.replace(url, "<broker URL>");
    if let Ok(u) = url::Url::parse(url)
        && let Some(p) = u.password()
        && !p.is_empty()
    {
        out = out.replace(p, crate::MASKED);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_are_checked_and_shown_without_credentials() {
        assert_eq!(
            check_broker_url("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap(),
            "amqp://127.0.0.1:5672/%2f"
        );
        let e = check_broker_url("http://u:secretpw@rabbit:5672").unwrap_err();
        assert!(e.contains("amqp://"), "{e}");
        assert!(!e.contains("secretpw"), "{e}");
        assert!(check_broker_url("not a url").is_err());
        let s = SecretString::from("amqp://u:hunter22@h/v".to_owned());
        assert_eq!(
            scrub("failed on amqp://u:hunter22@h/v (hunter22)", &s),
            format!("failed on <broker URL> ({})", crate::MASKED)
        );
    }
}
