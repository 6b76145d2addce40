//! Events for the SPMIS: what happened (a notification arrived, a search completed, a
//! transaction failed or expired, a subscription or a data source changed state), kept in a
//! durable outbox and pushed to webhooks ([`crate::webhooks`]).
//!
//! - [`EventRecord`], [`EventKind`]: one row of the outbox. Its `id` is stable and is the
//!   `webhook-id` of every delivery of it, so a receiver de-duplicates re-deliveries.
//! - The store writes an event *in the same database transaction* as the change that causes it
//!   (the callback insert, the state advance, the expiry, the subscription upsert, the
//!   data-source state change), from the builders in [`build`]: a `kill -9` between them cannot
//!   keep one without the other.
//! - [`EventStore`]: listing with an opaque cursor ([`EventCursor`]), processed markers,
//!   webhook endpoints and deliveries; implemented by `dci-store` for SQLite and PostgreSQL.

pub mod build;
mod model;
pub mod store;

pub use model::{
    BadCursor, EventCursor, EventFilter, EventKind, EventRecord, NewEvent, UnknownEventKind,
};
pub use store::EventStore;

use serde::Serialize;

use crate::ops::OpsStore;
use crate::ops::store::CallbackFilter;
use crate::store::{Store, StoreError};

/// One page of events and the cursor to continue from.
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    /// Events, oldest first.
    pub events: Vec<EventRecord>,
    /// Pass as `after` for the next page: the last event's position, or the given cursor when
    /// the page is empty (poll again with it). `None` only for an empty outbox read from the
    /// start.
    pub next_cursor: Option<String>,
}

/// A page of events (what the gateway and the CLI list).
pub async fn page(store: &dyn EventStore, filter: &EventFilter) -> Result<EventPage, StoreError> {
    let events = store.list_events(filter).await?;
    let next_cursor = events
        .last()
        .map(EventRecord::cursor)
        .or(filter.after)
        .map(EventCursor::encode);
    Ok(EventPage {
        events,
        next_cursor,
    })
}

/// Notifications received, newest first, each typed per its data source's registry as in a
/// `notification.received` event's data (with `source_code`).
pub async fn typed_notifications(
    sources: &dyn Store,
    ops: &dyn OpsStore,
    source_code: Option<&str>,
    limit: u32,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let records = ops
        .list_callbacks(&CallbackFilter {
            source_code: source_code.map(str::to_owned),
            action: Some("notify".into()),
            limit,
        })
        .await?;
    let mut registries = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(records.len());
    for r in &records {
        if !registries.contains_key(&r.source_code) {
            let registry = sources
                .get_data_source(&r.source_code)
                .await?
                .map(|s| s.registry_type);
            registries.insert(r.source_code.clone(), registry);
        }
        let registry = registries.get(&r.source_code).copied().flatten();
        if let Some(e) = build::notification(registry, r) {
            let mut data = e.payload;
            if let Some(o) = data.as_object_mut() {
                o.insert("source_code".into(), r.source_code.clone().into());
            }
            out.push(data);
        }
    }
    Ok(out)
}
