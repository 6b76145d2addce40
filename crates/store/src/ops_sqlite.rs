//! [`dci_client::ops::OpsStore`] and [`dci_client::events::EventStore`] for
//! [`crate::SqliteStore`]: async requests, callbacks, subscriptions, signing keys, events and
//! webhooks, users, sessions and the change audit in the same SQLite file (see
//! `ops_common`, `events_common`, `users_common`).

use crate::bulk_common::impl_bulk_store;
use crate::events_common::impl_event_store;
use crate::ops_common::impl_ops_store;
use crate::schedule_common::impl_schedule_store;
/// Adopts the master key the database records as current, inside a writing transaction.
use crate::sqlite::store_impl::check_key;
use crate::users_common::impl_user_store;

/// Row-lock clause of reads that precede a change: none (SQLite's writer lock, taken by the
/// write that starts each such transaction, serialises them).
const FOR_UPDATE: &str = "";
/// Row-lock clause of the webhook claim: none (as above).
const SKIP_LOCKED: &str = "";
/// None: SQLite runs one writing transaction at a time, so events become visible in
/// position order already.
const EVENT_ORDER_LOCK: &str = "";

impl_ops_store!(crate::SqliteStore, sqlx::Sqlite, crate::migrations::sqlite);
impl_event_store!(crate::SqliteStore, sqlx::Sqlite);
impl_user_store!(crate::SqliteStore, sqlx::Sqlite);
impl_bulk_store!(crate::SqliteStore, sqlx::Sqlite);
impl_schedule_store!(crate::SqliteStore, sqlx::Sqlite);
