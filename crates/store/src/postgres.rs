//! The PostgreSQL store: the one shared store when several client instances (`dci serve`
//! replicas, CLI users) work on the same data sources.

use std::str::FromStr;
use std::sync::{Arc, RwLock};

use dci_client::{MasterKey, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::common::{db, impl_store};
use crate::migrations;
use crate::seal::Sealer;

/// PostgreSQL storage. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    sealer: Arc<RwLock<Arc<Sealer>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("key_id", &self.sealer().key_id())
            .finish()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), applies migrations, and checks that `master_key` is
    /// the key its secrets are sealed under.
    pub async fn connect(url: &str, master_key: &MasterKey) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db("parsing the PostgreSQL URL"))?;
        Self::connect_with(options, master_key).await
    }

    /// Like [`PgStore::connect`], but keeps every table in `schema` (created if missing): one
    /// database can then hold several independent stores (tenants, parallel test runs).
    /// `schema` must match `[a-z_][a-z0-9_]*`.
    pub async fn connect_in_schema(
        url: &str,
        schema: &str,
        master_key: &MasterKey,
    ) -> Result<PgStore, StoreError> {
        check_schema_name(schema)?;
        let options = PgConnectOptions::from_str(url).map_err(db("parsing the PostgreSQL URL"))?;
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(db("connecting to PostgreSQL"))?;
        // The name was checked above, so it is safe to splice into the statement.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
        )))
        .execute(&mut conn)
        .await
        .map_err(db("creating the schema"))?;
        conn.close().await.map_err(db("closing a connection"))?;
        let options = options.options([("search_path", schema)]);
        Self::connect_with(options, master_key).await
    }

    /// Drops `schema` and everything in it (the counterpart of [`PgStore::connect_in_schema`],
    /// for test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        check_schema_name(schema)?;
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(db("connecting to PostgreSQL"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut conn)
        .await
        .map_err(db("dropping the schema"))?;
        conn.close().await.map_err(db("closing a connection"))?;
        Ok(())
    }

    async fn connect_with(
        options: PgConnectOptions,
        master_key: &MasterKey,
    ) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(db("connecting to PostgreSQL"))?;
        migrations::postgres()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend {
                message: "applying PostgreSQL migrations".into(),
                source: Box::new(e),
            })?;
        let sealer = Sealer::new(master_key);
        store_impl::claim_key(&pool, &sealer).await?;
        Ok(PgStore {
            pool,
            sealer: Arc::new(RwLock::new(Arc::new(sealer))),
        })
    }

    /// The id of the master key in use.
    pub fn master_key_id(&self) -> String {
        self.sealer().key_id().to_owned()
    }

    /// Closes the pool (waits for connections to return).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for the operations store (`ops_*`).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn sealer(&self) -> Arc<Sealer> {
        Arc::clone(&self.sealer.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_sealer(&self, sealer: Arc<Sealer>) {
        *self.sealer.write().unwrap_or_else(|p| p.into_inner()) = sealer;
    }
}

fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_lowercase() || b == b'_' || (i > 0 && b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Backend {
            message: format!("invalid schema name {schema:?}: use [a-z_][a-z0-9_]*"),
            source: "invalid schema name".into(),
        })
    }
}

impl_store!(
    super::PgStore,
    sqlx::Postgres,
    "SELECT value FROM store_meta WHERE key = $1 FOR SHARE",
    None::<&str>,
    crate::ops_postgres::events_store_impl::write_event
);
