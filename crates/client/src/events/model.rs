//! The outbox row and how it is listed.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A notification (`notify`) arrived from a subscription.
    #[serde(rename = "notification.received")]
    NotificationReceived,
    /// An async search completed: every result arrived.
    #[serde(rename = "search.completed")]
    SearchCompleted,
    /// An async request failed (refused at the ACK, or by its callback).
    #[serde(rename = "transaction.failed")]
    TransactionFailed,
    /// An async request passed its deadline incomplete.
    #[serde(rename = "transaction.expired")]
    TransactionExpired,
    /// A subscription was confirmed, refused or ended.
    #[serde(rename = "subscription.changed")]
    SubscriptionChanged,
    /// A data source changed state (draft, tested, failing, …).
    #[serde(rename = "source.state_changed")]
    SourceStateChanged,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: [EventKind; 6] = [
        EventKind::NotificationReceived,
        EventKind::SearchCompleted,
        EventKind::TransactionFailed,
        EventKind::TransactionExpired,
        EventKind::SubscriptionChanged,
        EventKind::SourceStateChanged,
    ];

    /// The stored and delivered name (`notification.received`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NotificationReceived => "notification.received",
            EventKind::SearchCompleted => "search.completed",
            EventKind::TransactionFailed => "transaction.failed",
            EventKind::TransactionExpired => "transaction.expired",
            EventKind::SubscriptionChanged => "subscription.changed",
            EventKind::SourceStateChanged => "source.state_changed",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown event kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event kind {0:?}: use one of notification.received, search.completed, transaction.failed, transaction.expired, subscription.changed, source.state_changed"
)]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;
    fn from_str(s: &str) -> Result<Self, UnknownEventKind> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| UnknownEventKind(s.to_owned()))
    }
}

/// An event about to be written (the store assigns its position).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Stable id (`evt_…`), the `webhook-id` of its deliveries.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// The data source it concerns.
    pub source_code: Option<String>,
    /// The transaction it concerns.
    pub transaction_id: Option<String>,
    /// The subscription it concerns.
    pub subscription_code: Option<String>,
    /// When it happened.
    pub created_at: OffsetDateTime,
    /// What the SPMIS receives as `data` (typed per registry where a type exists).
    pub payload: Value,
}

impl NewEvent {
    /// A new event with a fresh id, now.
    pub fn new(kind: EventKind, payload: Value) -> NewEvent {
        NewEvent {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            kind,
            source_code: None,
            transaction_id: None,
            subscription_code: None,
            created_at: OffsetDateTime::now_utc(),
            payload,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Position in the outbox (increasing; the cursor is built from it).
    #[serde(skip)]
    pub seq: i64,
    /// Stable id, the `webhook-id`.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// The data source.
    pub source_code: Option<String>,
    /// The transaction.
    pub transaction_id: Option<String>,
    /// The subscription.
    pub subscription_code: Option<String>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The event's data.
    pub payload: Value,
    /// When a consumer marked it processed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub processed_at: Option<OffsetDateTime>,
}

impl EventRecord {
    /// The cursor that lists the events after this one.
    pub fn cursor(&self) -> EventCursor {
        EventCursor(self.seq)
    }

    /// The body of a webhook delivery: `{"id", "type", "timestamp", "data"}` (the Standard
    /// Webhooks payload shape).
    pub fn webhook_body(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "timestamp": self.created_at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            "source_code": self.source_code,
            "transaction_id": self.transaction_id,
            "subscription_code": self.subscription_code,
            "data": self.payload,
        })
    }
}

/// An opaque position in the outbox: events are listed strictly after it, in outbox order, so
/// paging is stable under inserts (new events only ever come after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor(pub(crate) i64);

impl EventCursor {
    /// The outbox position (for stores).
    pub fn position(self) -> i64 {
        self.0
    }

    /// A cursor at a stored position (for stores).
    pub fn at(position: i64) -> EventCursor {
        EventCursor(position)
    }

    /// The opaque text form given to API callers.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("ev1:{}", self.0))
    }

    /// Reads a cursor given back by a caller.
    pub fn decode(s: &str) -> Result<EventCursor, BadCursor> {
        let bad = || {
            BadCursor(format!(
                "after {s:?} is not a cursor returned by an events listing: pass the next_cursor of the previous page, or omit it to start from the oldest event"
            ))
        };
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        text.strip_prefix("ev1:")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= 0)
            .map(EventCursor)
            .ok_or_else(bad)
    }
}

/// A cursor that no listing returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadCursor(pub String);

/// Which events to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Only after this position.
    pub after: Option<EventCursor>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<EventKind>,
    /// Only this data source's.
    pub source_code: Option<String>,
    /// Only those not marked processed.
    pub unprocessed: bool,
    /// Only created at or after this.
    pub since: Option<OffsetDateTime>,
    /// Only created before this.
    pub until: Option<OffsetDateTime>,
    /// At most this many, oldest first.
    pub limit: u32,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter {
            after: None,
            kinds: Vec::new(),
            source_code: None,
            unprocessed: false,
            since: None,
            until: None,
            limit: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_cursors_are_opaque_and_checked() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!("search.done".parse::<EventKind>().is_err());
        let c = EventCursor(42);
        assert!(!c.encode().contains("42"));
        assert_eq!(EventCursor::decode(&c.encode()).unwrap(), c);
        let e = EventCursor::decode("42").unwrap_err().to_string();
        assert!(e.contains("next_cursor"), "{e}");
    }
}
