//! Webhook endpoints, deliveries and attempts as stored.

use serde::Serialize;
use time::OffsetDateTime;

use crate::events::{EventKind, EventStore};
use crate::source::FieldError;
use crate::store::StoreError;

use super::WebhookSecret;

/// A URL the SPMIS receives events at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEndpoint {
    /// Stable id (`wh_…`).
    pub id: String,
    /// Where deliveries are POSTed (`http` or `https`).
    pub url: String,
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

/// What a caller gives to create or change an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    /// The URL.
    pub url: String,
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
    /// Checks the URL and kinds, naming the field and the fix.
    pub fn validate(&self) -> Result<(String, Vec<EventKind>), FieldError> {
        let url = self.url.trim();
        let parsed = url::Url::parse(url).map_err(|e| FieldError {
            field: "url",
            message: format!(
                "{url:?} is not a URL ({e}): give an absolute http:// or https:// URL"
            ),
            label: None,
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(FieldError {
                field: "url",
                message: format!("{url:?} is not an http:// or https:// URL with a host"),
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
        let mut kinds = Vec::new();
        for k in &self.kinds {
            let kind: EventKind =
                k.parse()
                    .map_err(|e: crate::events::UnknownEventKind| FieldError {
                        field: "kinds",
                        message: e.to_string(),
                        label: None,
                    })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok((url.to_owned(), kinds))
    }
}

/// Validates `input`, stores a new endpoint with its secret (the given one, or a fresh one)
/// and returns both; the secret is not retrievable through any listing afterwards (only the
/// delivery worker opens it).
pub async fn create_endpoint(
    store: &dyn EventStore,
    input: &EndpointInput,
) -> Result<(WebhookEndpoint, WebhookSecret), CreateEndpointError> {
    let (url, kinds) = input.validate().map_err(CreateEndpointError::Invalid)?;
    let now = OffsetDateTime::now_utc();
    let endpoint = WebhookEndpoint {
        id: format!("wh_{}", uuid::Uuid::now_v7().simple()),
        url,
        kinds,
        enabled: input.enabled.unwrap_or(true),
        description: input.description.clone().filter(|d| !d.trim().is_empty()),
        created_at: now,
        updated_at: now,
    };
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
    Ok((endpoint, secret))
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
