//! [`dci_client::ops::OpsStore`] for [`crate::PgStore`]: async requests, callbacks,
//! subscriptions and signing keys in the same database (see `ops_common`).

use crate::ops_common::impl_ops_store;

impl_ops_store!(crate::PgStore, sqlx::Postgres);
