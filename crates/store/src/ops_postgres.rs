//! [`dci_client::ops::OpsStore`] and [`dci_client::events::EventStore`] for
//! [`crate::PgStore`]: async requests, callbacks, subscriptions, signing keys, events and
//! webhooks, users, sessions and the change audit in the same database (see `ops_common`,
//! `events_common`, `users_common`).

use crate::bulk_common::impl_bulk_store;
use crate::events_common::impl_event_store;
use crate::ops_common::impl_ops_store;
/// Adopts the master key the database records as current, inside a writing transaction.
use crate::postgres::store_impl::check_key;
use crate::schedule_common::impl_schedule_store;
use crate::users_common::impl_user_store;

/// Row-lock clause of reads that precede a change (a transaction row before its callbacks
/// decide its state).
const FOR_UPDATE: &str = " FOR UPDATE";
/// Row-lock clause of the webhook claim: concurrent instances skip an endpoint being claimed.
const SKIP_LOCKED: &str = " FOR UPDATE OF e SKIP LOCKED";
/// Taken before an event is written, held until commit: events become visible in position
/// order (see `events_common::write_event`). Keyed by schema, like the token leases.
const EVENT_ORDER_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':dci-event-order', 0))";

impl_ops_store!(crate::PgStore, sqlx::Postgres, crate::migrations::postgres);
impl_event_store!(crate::PgStore, sqlx::Postgres);
impl_user_store!(crate::PgStore, sqlx::Postgres);
impl_bulk_store!(crate::PgStore, sqlx::Postgres);
impl_schedule_store!(crate::PgStore, sqlx::Postgres);
