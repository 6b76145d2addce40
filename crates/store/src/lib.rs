//! # dci-store
//!
//! SQLite (default) and PostgreSQL implementations of the client's [`dci_client::Store`] trait,
//! with embedded migrations and secrets sealed at rest under a master key.
//!
//! - [`open`] opens the store as every front end does, from [`OpenOptions::from_env`]
//!   (`DCI_HOME`, `DCI_DATABASE_URL`, `DCI_MASTER_KEY`); [`connect`] picks a backend by URL.
//!   [`Connections`] sizes the pool: a pool for services and bulk runs, one connection for a
//!   one-shot command.
//! - [`SqliteStore`] and [`PgStore`] own their pools and migrations (`migrations/sqlite/`,
//!   `migrations/postgres/`), applied on connect. Both run the same SQL and pass one contract
//!   test suite (`tests/contract.rs`).
//! - Secrets (client secrets, bearer tokens, basic passwords, cached access tokens) are sealed
//!   with XChaCha20-Poly1305 ([`SealedSecret`]), the record id and field name bound as associated
//!   data, and stored as key id + nonce + ciphertext. The database records which key seals them,
//!   so a wrong key fails on open with a clear error instead of producing garbage.
//!   [`dci_client::Store::rotate_master_key`] re-seals everything in one transaction;
//!   [`rotate_master_key`] does it crash-safely with the key file (see [`rotate`]).
//! - [`transfer`] exports data sources (secrets sealed under an export key, if asked) and imports
//!   them all or none, in one transaction ([`dci_client::Store::apply_data_sources`]).
//! - Both also implement [`dci_client::ops::OpsStore`] (`ops_*.rs`, migration 0002): async
//!   requests, callbacks, subscriptions and signing keys, private keys sealed like other secrets;
//!   the backlog counts and the schema status against this build's migrations (for `/metrics`
//!   and `/readyz`).
//! - Both publish their changes (a transaction, a data source: [`dci_client::changes`]) after
//!   each commit: SQLite in-process, PostgreSQL to every instance through `LISTEN/NOTIFY`
//!   (`changes`), and PostgreSQL leases a source's token fetch to one instance at a time (an
//!   advisory lock, [`dci_client::Store::token_lease`]).
//! - And [`dci_client::events::EventStore`] (`events_common.rs`, migration 0004): the events
//!   outbox — each event written in the database transaction of the change that causes it —
//!   webhook endpoints (secrets sealed), leases, deliveries, attempts and redelivery.
//! - And [`dci_client::users::UserStore`] (`users_common.rs`, migrations 0008 and 0015): named
//!   users (argon2 hashes), personal API tokens (digests only), console sessions (by the digest
//!   of their id), the append-only change audit, and failed sign-ins per username digest (one
//!   count for every instance on the database).
//! - And [`dci_client::bulk::BulkStore`] (`bulk_common.rs`, migration 0007): bulk jobs and
//!   their checkpoints.
//! - And [`dci_client::jobs::ScheduleStore`] (`schedule_common.rs`, migration 0012): schedules
//!   and one row per claimed occurrence (its key makes the claim exclusive across instances).
//!
//! - Instants are bound through `instant::At`: `timestamptz` in PostgreSQL, fixed-width UTC text
//!   in SQLite (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, so that text order is time order; migration 0014
//!   rewrote older rows).
//!
//! Owns: databases and encryption at rest. Does not own: what is stored (the model and its
//! validation live in `dci-client`).

mod bulk_common;
mod changes;
mod common;
mod events_common;
mod instant;
pub mod master_key;
mod migrations;
mod open;
mod ops_common;
mod ops_postgres;
mod ops_sqlite;
mod postgres;
pub mod rotate;
mod schedule_common;
mod seal;
mod sqlite;
pub mod transfer;
mod users_common;

pub use master_key::{MASTER_KEY_FILE, MasterKeyError};
pub use open::{
    Connections, DATABASE_FILE, KeyOrigin, OpenError, OpenOptions, Opened, connect, connect_all,
    open, redact_url,
};
pub use postgres::PgStore;
pub use rotate::{RotateError, Rotation, rotate_master_key};
pub use seal::{SealedSecret, key_id, open_with, seal_with};
pub use sqlite::SqliteStore;
