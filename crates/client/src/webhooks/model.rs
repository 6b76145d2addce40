//! Webhook endpoints, deliveries and attempts as stored.

use serde::Serialize;
use time::OffsetDateTime;

use crate::events::{EventKind, EventStore};
use crate::source::FieldError;
use crate::store::StoreError;

use super::WebhookSecret;

/// Where the SPMIS receives events: a webhook URL, or a RabbitMQ exchange ([`Sink`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEndpoint {
    /// Stable id (`wh_…`).
    pub id: String,
    /// Where deliveries go: the URL they are POSTed to (`http` or `https`), or for an AMQP sink
    /// the broker URL without its credentials (the whole URL is sealed at rest).
    pub url: String,
    /// How events are delivered there.
    #[serde(flatten)]
    pub sink: Sink,
    /// The kinds it receives (empty: every kind).
    pub kinds: Vec<EventKind>,
    /// Disabled endpoints get no new deliveries and are not delivered to.
    pub enabled: bool,
    /// Free text.
    pub description: Option<String>,
    /// Creation.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl WebhookEndpoint {
    /// Whether it receives events of this kind.
    pub fn takes(&self, kind: EventKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

/// How an endpoint receives events; serialised flat into the endpoint as `"sink": "webhook"`
/// or `"sink": "amqp", "exchange": …, "routing_key": …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "sink", rename_all = "snake_case")]
pub enum Sink {
    /// A signed HTTP POST per event (Standard Webhooks).
    Webhook,
    /// A persistent message per event published to a RabbitMQ exchange (AMQP 0.9.1) with
    /// publisher confirms; the event id is the message id.
    Amqp {
        /// The exchange (`""`: the broker's default exchange, routing by queue name).
        exchange: String,
        /// The routing key; `None`: the event's kind (e.g. `notification.received`).
        routing_key: Option<String>,
    },
}

impl Sink {
    /// The stored name: `webhook` or `amqp`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Sink::Webhook => "webhook",
            Sink::Amqp { .. } => "amqp",
        }
    }
}

/// What a caller gives to create or change an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    /// The webhook URL, or for `sink = "amqp"` the broker URL (`amqp://user:password@host:port/vhost`
    /// or `amqps://…`), which may carry credentials: it is sealed at rest and shown without them.
    pub url: String,
    /// `webhook` (default) or `amqp`.
    pub sink: Option<String>,
    /// AMQP only: the exchange (default `""`, the default exchange).
    pub exchange: Option<String>,
    /// AMQP only: the routing key (default: each event's kind).
    pub routing_key: Option<String>,
    /// Kind names (empty: every kind).
    pub kinds: Vec<String>,
    /// Enabled (default true).
    pub enabled: Option<bool>,
    /// Free text.
    pub description: Option<String>,
    /// The signing secret (`whsec_…`) when the SPMIS already has one; `None` generates one.
    /// Write-only: never listed.
    pub secret: Option<secrecy::SecretString>,
}

impl EndpointInput {
    /// Checks the URL, sink and kinds, naming the field and the fix. Returns the URL as shown
    /// (without credentials), the sink and the kinds.
    pub fn validate(&self) -> Result<(String, Sink, Vec<EventKind>), FieldError> {
        let field = |field: &'static str, message: String| FieldError {
            field,
            message,
            label: None,
        };
        let sink_name = self.sink.as_deref().map_or("webhook", str::trim);
        let url = self.url.trim();
        let (shown, sink) = match sink_name {
            "webhook" | "" => {
                for (name, v) in [
                    ("exchange", &self.exchange),
                    ("routing_key", &self.routing_key),
                ] {
                    if v.is_some() {
                        return Err(field(
                            name,
                            "only an AMQP sink has one: set sink to \"amqp\", or leave it out"
                                .into(),
                        ));
                    }
                }
                (check_webhook_url(url)?, Sink::Webhook)
            }
            "amqp" => (
                super::amqp::check_broker_url(url).map_err(|m| field("url", m))?,
                Sink::Amqp {
                    exchange: check_amqp_name("exchange", self.exchange.as_deref().unwrap_or(""))?,
                    routing_key: self
                        .routing_key
                        .as_deref()
                        .map(|k| check_amqp_name("routing_key", k))
                        .transpose()?
                        .filter(|k| !k.is_empty()),
                },
            ),
            other => {
                return Err(field(
                    "sink",
                    format!("{other:?} is not a sink: use \"webhook\" or \"amqp\""),
                ));
            }
        };
        let mut kinds = Vec::new();
        for k in &self.kinds {
            let kind: EventKind = k
                .parse()
                .map_err(|e: crate::events::UnknownEventKind| field("kinds", e.to_string()))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok((shown, sink, kinds))
    }
}

fn check_webhook_url(url: &str) -> Result<String, FieldError> {
    let parsed = url::Url::parse(url).map_err(|e| FieldError {
        field: "url",
        message: format!("{url:?} is not a URL ({e}): give an absolute http:// or https:// URL"),
        label: None,
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(FieldError {
            field: "url",
            message: format!(
                "{url:?} is not an http:// or https:// URL with a host (for RabbitMQ set sink to \"amqp\")"
            ),
            label: None,
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(FieldError {
            field: "url",
            message: "the URL must not carry credentials: deliveries are signed with the endpoint's secret instead".into(),
            label: None,
        });
    }
    Ok(url.to_owned())
}

/// An exchange name or routing key: at most 255 bytes (an AMQP short string), no control
/// characters.
fn check_amqp_name(name: &'static str, v: &str) -> Result<String, FieldError> {
    let v = v.trim();
    if v.len() > 255 || v.chars().any(char::is_control) {
        return Err(FieldError {
            field: name,
            message: format!("{v:?} is not usable: at most 255 bytes without control characters"),
            label: None,
        });
    }
    Ok(v.to_owned())
}

/// Validates `input`, stores a new endpoint with its secret and returns both. A webhook's
/// secret is the given one or a fresh one (returned, to show once); an AMQP sink's is its
/// whole broker URL (nothing is returned). Neither is retrievable through any listing
/// afterwards (only the delivery worker opens it).
pub async fn create_endpoint(
    store: &dyn EventStore,
    input: &EndpointInput,
) -> Result<(WebhookEndpoint, Option<WebhookSecret>), CreateEndpointError> {
    let (url, sink, kinds) = input.validate().map_err(CreateEndpointError::Invalid)?;
    let now = OffsetDateTime::now_utc();
    let endpoint = WebhookEndpoint {
        id: format!("wh_{}", uuid::Uuid::now_v7().simple()),
        url,
        sink,
        kinds,
        enabled: input.enabled.unwrap_or(true),
        description: input.description.clone().filter(|d| !d.trim().is_empty()),
        created_at: now,
        updated_at: now,
    };
    if matches!(endpoint.sink, Sink::Amqp { .. }) {
        if input.secret.is_some() {
            return Err(CreateEndpointError::Invalid(FieldError {
                field: "secret",
                message: "an AMQP sink has no signing secret (its broker URL is sealed instead): leave it out".into(),
                label: None,
            }));
        }
        let broker = secrecy::SecretString::from(input.url.trim().to_owned());
        store
            .create_webhook(&endpoint, &broker)
            .await
            .map_err(CreateEndpointError::Store)?;
        return Ok((endpoint, None));
    }
    let secret = match &input.secret {
        Some(s) => WebhookSecret::parse(s).map_err(|e| {
            CreateEndpointError::Invalid(FieldError {
                field: "secret",
                message: format!(
                    "{e}: give a Standard Webhooks secret, or none to have one generated"
                ),
                label: None,
            })
        })?,
        None => WebhookSecret::generate(),
    };
    store
        .create_webhook(&endpoint, secret.expose())
        .await
        .map_err(CreateEndpointError::Store)?;
    Ok((endpoint, Some(secret)))
}

/// Why [`create_endpoint`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateEndpointError {
    /// A field is wrong.
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(FieldError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

/// Where one event's delivery to one endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet accepted by the endpoint (due at `next_attempt_at`).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up (too many attempts or too old): the dead letter. Redeliver to try again.
    Dead,
}

impl DeliveryState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    /// Reads a stored or given name.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        match s.trim() {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "dead" => Some(DeliveryState::Dead),
            _ => None,
        }
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    /// The endpoint.
    pub endpoint_id: String,
    /// The event (the `webhook-id`).
    pub event_id: String,
    /// Its kind.
    pub event_kind: EventKind,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When it is due (pending).
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    /// HTTP status of the last attempt.
    pub last_status: Option<u16>,
    /// Error of the last attempt (transport error, or why it was dead-lettered).
    pub last_error: Option<String>,
    /// When it was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the endpoint accepted it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

/// One HTTP attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// The endpoint.
    pub endpoint_id: String,
    /// The event.
    pub event_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The response status, if one came.
    pub status: Option<u16>,
    /// The transport error, if any (no secrets, no payload).
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// What an attempt leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Accepted: the delivery is done.
    Delivered,
    /// Try again at this time.
    Retry(OffsetDateTime),
    /// Give up (the dead letter), saying why.
    Dead(String),
}

/// Which deliveries to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only to this endpoint.
    pub endpoint_id: Option<String>,
    /// Only of this event.
    pub event_id: Option<String>,
    /// Only in this state.
    pub state: Option<DeliveryState>,
    /// At most this many.
    pub limit: u32,
}

impl Default for DeliveryFilter {
    fn default() -> Self {
        DeliveryFilter {
            endpoint_id: None,
            event_id: None,
            state: None,
            limit: 100,
        }
    }
}

/// Which events to deliver again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeliverySelection {
    /// One event, by id.
    Event(String),
    /// Events created in `[since, until)`.
    Range {
        /// From (inclusive).
        since: OffsetDateTime,
        /// To (exclusive).
        until: OffsetDateTime,
    },
}

/// A redelivery request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redelivery {
    /// Which events.
    pub events: RedeliverySelection,
    /// Only to this endpoint (else every enabled endpoint whose filter takes them).
    pub endpoint_id: Option<String>,
}
