//! [`dci_client::ops::OpsStore`] for [`crate::SqliteStore`]: async requests, callbacks,
//! subscriptions and signing keys in the same SQLite file (see `ops_common`).

use crate::ops_common::impl_ops_store;

impl_ops_store!(crate::SqliteStore, sqlx::Sqlite);
