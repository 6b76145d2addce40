//! The events a change causes, built from the stored records. The store calls these inside the
//! database transaction that makes the change, so an event exists exactly when its cause does.

use dci_protocol::RegistryType;
use serde_json::{Value, json};

use crate::ops::TransactionView;
use crate::ops::store::{
    CallbackRecord, OpKind, SubscriptionRecord, SubscriptionState, TransactionState,
};
use crate::registries::crvs::CrvsEvent;
use crate::source::SourceState;

use super::{EventKind, NewEvent};

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `notification.received` for a stored `notify` callback, or `None` for any other action.
///
/// `data.notification.events` is typed where the registry has a type (CRVS: [`CrvsEvent`], the
/// vital event and the people), else the `notify_event` items as sent.
pub fn notification(registry: Option<RegistryType>, c: &CallbackRecord) -> Option<NewEvent> {
    if c.action != "notify" {
        return None;
    }
    let message = c.body.get("message").unwrap_or(&Value::Null);
    let items: Vec<Value> = match message.get("notify_event") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => Vec::new(),
    };
    let codes: Vec<String> = items
        .iter()
        .filter_map(|i| i.get("subscription_code").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let events = match registry {
        Some(RegistryType::Crvs) => {
            serde_json::to_value(CrvsEvent::from_notification(&c.body)).unwrap_or(Value::Null)
        }
        _ => Value::Array(items),
    };
    let mut e = NewEvent::new(
        EventKind::NotificationReceived,
        json!({
            "message_id": c.message_id,
            "received_at": rfc3339(c.received_at),
            "signature": c.signature.as_str(),
            "subscription_codes": codes,
            "notification": {
                "registry_type": registry.map(RegistryType::as_str),
                "events": events,
            },
            "tolerated": c.tolerated,
        }),
    );
    e.source_code = Some(c.source_code.clone());
    e.subscription_code = (codes.len() == 1).then(|| codes[0].clone());
    e.created_at = c.received_at;
    Some(e)
}

/// The event of a transaction reaching `view.state`: `search.completed` (an async search with
/// every result; `data` is the transaction view, items typed), `transaction.failed` (any kind,
/// with the registry's reason), `transaction.expired`. `None` for other states.
pub fn transaction(view: &TransactionView, at: time::OffsetDateTime) -> Option<NewEvent> {
    let kind = match (view.state, view.kind) {
        (TransactionState::Completed, OpKind::Search) => EventKind::SearchCompleted,
        (TransactionState::Failed, _) => EventKind::TransactionFailed,
        (TransactionState::TimedOut | TransactionState::Expired, _) => {
            EventKind::TransactionExpired
        }
        _ => return None,
    };
    let mut e = NewEvent::new(kind, serde_json::to_value(view).unwrap_or(Value::Null));
    e.source_code = Some(view.source_code.clone());
    e.transaction_id = Some(view.transaction_id.clone());
    e.created_at = at;
    Some(e)
}

/// `subscription.changed` when a subscription is new or its state differs from `before`.
pub fn subscription(before: Option<SubscriptionState>, s: &SubscriptionRecord) -> Option<NewEvent> {
    if before == Some(s.state) {
        return None;
    }
    let mut data = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(o) = data.as_object_mut() {
        o.insert(
            "previous_state".into(),
            before.map_or(Value::Null, |b| b.as_str().into()),
        );
    }
    let mut e = NewEvent::new(EventKind::SubscriptionChanged, data);
    e.source_code = Some(s.source_code.clone());
    e.subscription_code = Some(s.code.clone());
    e.transaction_id = s.transaction_id.clone();
    e.created_at = s.updated_at;
    Some(e)
}

/// `source.state_changed` when a data source leaves `before` for a settled state (`testing`,
/// the moment a test runs, is not reported; its outcome is).
pub fn source_state(
    code: &str,
    before: Option<SourceState>,
    after: SourceState,
    last_error: Option<&str>,
    at: time::OffsetDateTime,
) -> Option<NewEvent> {
    if before == Some(after) || after == SourceState::Testing {
        return None;
    }
    let mut e = NewEvent::new(
        EventKind::SourceStateChanged,
        json!({
            "source_code": code,
            "previous_state": before.map(SourceState::as_str),
            "state": after.as_str(),
            "last_error": last_error,
        }),
    );
    e.source_code = Some(code.to_owned());
    e.created_at = at;
    Some(e)
}
