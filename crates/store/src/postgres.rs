//! The PostgreSQL store: the one shared store when several client instances (`dci serve`
//! replicas, CLI users) work on the same data sources.

use std::str::FromStr;
use std::sync::{Arc, RwLock};

use dci_client::changes::{Change, Changes};
use dci_client::{MasterKey, StoreError, TokenLease, TokenLock};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::changes::{CHANNEL, PgChanges};
use crate::common::{db, impl_store};
use crate::migrations;
use crate::open::Connections;
use crate::seal::Sealer;

/// PostgreSQL storage. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    sealer: Arc<RwLock<Arc<Sealer>>>,
    changes: Arc<PgChanges>,
    /// One token lease per source at a time in this process (see [`PgStore::lease_token`]).
    leases:
        Arc<std::sync::Mutex<std::collections::HashMap<uuid::Uuid, Arc<tokio::sync::Mutex<()>>>>>,
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
        Self::connect_ring(url, Sealer::new(master_key), Connections::Pool).await
    }

    /// [`PgStore::connect`] with a key ring (see [`crate::seal`]).
    pub(crate) async fn connect_ring(
        url: &str,
        sealer: Sealer,
        connections: Connections,
    ) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db("parsing the PostgreSQL URL"))?;
        Self::connect_with(options, sealer, connections).await
    }

    /// Like [`PgStore::connect`], but keeps every table in `schema` (created if missing): one
    /// database can then hold several independent stores (tenants, parallel test runs).
    /// `schema` must match `[a-z_][a-z0-9_]*`.
    pub async fn connect_in_schema(
        url: &str,
        schema: &str,
        master_key: &MasterKey,
    ) -> Result<PgStore, StoreError> {
        let options = Self::schema_options(url, schema).await?;
        Self::connect_with(options, Sealer::new(master_key), Connections::Pool).await
    }

    /// Connection options whose `search_path` is `schema`, created if missing.
    async fn schema_options(url: &str, schema: &str) -> Result<PgConnectOptions, StoreError> {
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
        Ok(options.options([("search_path", schema)]))
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
        sealer: Sealer,
        connections: Connections,
    ) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(8))
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
        store_impl::claim_key(&pool, &sealer).await?;
        let changes = Arc::new(match connections {
            Connections::Pool => PgChanges::start(&pool).await?,
            Connections::Single => PgChanges::local(&pool).await?,
        });
        Ok(PgStore {
            pool,
            sealer: Arc::new(RwLock::new(Arc::new(sealer))),
            changes,
            leases: Arc::default(),
        })
    }

    /// The id of the master key in use.
    pub fn master_key_id(&self) -> String {
        self.sealer().key_id()
    }

    /// Closes the pool (waits for connections to return) and stops listening for changes.
    pub async fn close(&self) {
        self.changes.close().await;
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

    /// Tells every instance on this database (this one included, through its listener, or
    /// directly when it does not listen) about a committed change. A failed notify is logged:
    /// readers re-read on their safety net.
    pub(crate) async fn publish(&self, change: Change) {
        let payload = self.changes.payload(&change);
        self.changes.echo_locally(change);
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "could not notify the other instances of a change");
        }
    }

    /// A reader of every instance's changes.
    pub(crate) fn subscribe_changes(&self) -> Changes {
        self.changes.hub.subscribe()
    }

    /// The token lease: an advisory lock keyed by schema and source id, on a connection of its
    /// own (waiting for it never holds one of the pool's), taken by one caller per source at a
    /// time in this process. Waits at most 30 s for it.
    pub(crate) async fn lease_token(
        &self,
        source_id: uuid::Uuid,
    ) -> Result<Option<TokenLease>, StoreError> {
        let local = {
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(leases.entry(source_id).or_default())
        };
        let local = local.lock_owned().await;
        let mut conn = sqlx::PgConnection::connect_with(&self.pool.connect_options())
            .await
            .map_err(db("connecting for the token lease"))?;
        sqlx::query("SET lock_timeout = '30s'")
            .execute(&mut conn)
            .await
            .map_err(db("setting the lock timeout"))?;
        sqlx::query(
            "SELECT pg_advisory_lock(hashtextextended(current_schema() || ':dci-token:' || $1, 0))",
        )
        .bind(source_id.to_string())
        .execute(&mut conn)
        .await
        .map_err(db("taking the token lease"))?;
        Ok(Some(TokenLease::new(PgTokenLock {
            conn,
            _local: local,
        })))
    }
}

/// The session holding a token lease's advisory lock; closing it (or dropping it: the session
/// ends) releases the lock.
struct PgTokenLock {
    conn: sqlx::PgConnection,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

#[async_trait::async_trait]
impl TokenLock for PgTokenLock {
    async fn release(self: Box<Self>) {
        if let Err(e) = self.conn.close().await {
            tracing::warn!(error = %e, "could not release the token lease cleanly");
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use dci_client::Store;

    /// Sessions on the database named `application_name`.
    async fn sessions(url: &str, application_name: &str) -> i64 {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1",
        )
        .bind(application_name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
    }

    fn source(code: &str) -> dci_client::DataSource {
        dci_client::DataSourceInput {
            code: code.into(),
            name: code.into(),
            registry_type: "crvs".into(),
            base_url: "http://127.0.0.1:9/crvs".into(),
            auth: Some("none".into()),
            sender_id: Some("spmis".into()),
            ..dci_client::DataSourceInput::default()
        }
        .validate()
        .unwrap()
    }

    async fn next(feed: &mut Changes) -> Option<Change> {
        tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
            .await
            .expect("the change arrived within 10 s")
    }

    #[tokio::test]
    async fn a_single_connection_store_holds_one_session_and_still_tells_the_others() {
        let Some(url) = dci_protocol::test_support::postgres_url() else {
            return;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let app = format!("dci-one-shot-{}", uuid::Uuid::new_v4().simple());
        let key = crate::master_key::generate();
        let options = PgStore::schema_options(&url, &schema).await.unwrap();
        let pooled = PgStore::connect_with(options.clone(), Sealer::new(&key), Connections::Pool)
            .await
            .unwrap();
        let one = PgStore::connect_with(
            options.application_name(&app),
            Sealer::new(&key),
            Connections::Single,
        )
        .await
        .unwrap();
        // A one-shot command's store: its one connection, no listening session beside it.
        assert_eq!(sessions(&url, &app).await, 1);
        let mut own = one.subscribe_changes();
        let mut others = pooled.subscribe_changes();
        assert!(!own.shared() && others.shared());

        // Its changes reach its own readers and, notified, every other instance's.
        one.create_data_source(&source("crvs_a")).await.unwrap();
        assert_eq!(next(&mut own).await, Some(Change::Source("crvs_a".into())));
        assert_eq!(
            next(&mut others).await,
            Some(Change::Source("crvs_a".into()))
        );
        // Another instance's changes are not heard: its readers poll, as SQLite's do.
        pooled.create_data_source(&source("crvs_b")).await.unwrap();
        assert_eq!(
            next(&mut others).await,
            Some(Change::Source("crvs_b".into()))
        );
        assert_eq!(own.try_next(), None);
        assert_eq!(sessions(&url, &app).await, 1);

        one.close().await;
        pooled.close().await;
        PgStore::drop_schema(&url, &schema).await.unwrap();
    }
}
