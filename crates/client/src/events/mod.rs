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
