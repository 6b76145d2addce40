//! The SQLite store: one file, WAL journal and a busy timeout so several processes (CLI
//! invocations, `dci serve`) can write concurrently.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dci_client::changes::{Change, ChangeHub, Changes};
use dci_client::{MasterKey, StoreError, TokenLease};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::common::{db, impl_store};
use crate::migrations;
use crate::open::Connections;
use crate::seal::Sealer;

/// SQLite storage. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    sealer: Arc<RwLock<Arc<Sealer>>>,
    /// In-process only: another process on the same file publishes nothing here.
    changes: Arc<ChangeHub>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("key_id", &self.sealer().key_id())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite::memory:`),
    /// applies migrations, and checks that `master_key` is the key its secrets are sealed under.
    pub async fn connect(url: &str, master_key: &MasterKey) -> Result<SqliteStore, StoreError> {
        Self::connect_ring(url, Sealer::new(master_key), Connections::Pool).await
    }

    /// [`SqliteStore::connect`] with a key ring (see [`crate::seal`]).
    pub(crate) async fn connect_ring(
        url: &str,
        sealer: Sealer,
        connections: Connections,
    ) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(db("parsing the SQLite URL"))?;
        Self::connect_with(options, sealer, connections).await
    }

    /// Opens (creating if needed) the database file at `path`.
    pub async fn open_file(path: &Path, master_key: &MasterKey) -> Result<SqliteStore, StoreError> {
        Self::connect_with(
            SqliteConnectOptions::new().filename(path),
            Sealer::new(master_key),
            Connections::Pool,
        )
        .await
    }

    async fn connect_with(
        options: SqliteConnectOptions,
        sealer: Sealer,
        connections: Connections,
    ) -> Result<SqliteStore, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(connections.max(4))
            .connect_with(options)
            .await
            .map_err(db("opening the SQLite database"))?;
        // SQLite has no migration lock: when several processes open a fresh file at once, a
        // loser fails on a table a winner just created. Each run applies what is still missing
        // (waiting on the busy timeout for the winner's commit), so retrying converges.
        let migrator = migrations::sqlite();
        let mut attempt = 0u64;
        while let Err(e) = migrator.run(&pool).await {
            attempt += 1;
            if attempt > 10 {
                return Err(StoreError::Backend {
                    message: "applying SQLite migrations".into(),
                    source: Box::new(e),
                });
            }
            tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
        }
        store_impl::claim_key(&pool, &sealer).await?;
        Ok(SqliteStore {
            pool,
            sealer: Arc::new(RwLock::new(Arc::new(sealer))),
            changes: Arc::new(ChangeHub::new(false)),
        })
    }

    /// The id of the master key in use.
    pub fn master_key_id(&self) -> String {
        self.sealer().key_id()
    }

    /// Closes the pool (waits for connections to return).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for the operations store (`ops_*`).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) fn sealer(&self) -> Arc<Sealer> {
        Arc::clone(&self.sealer.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_sealer(&self, sealer: Arc<Sealer>) {
        *self.sealer.write().unwrap_or_else(|p| p.into_inner()) = sealer;
    }

    /// Tells this process's readers about a committed change.
    pub(crate) async fn publish(&self, change: Change) {
        self.changes.publish(change);
    }

    /// A reader of this process's changes.
    pub(crate) fn subscribe_changes(&self) -> Changes {
        self.changes.subscribe()
    }

    /// No shared token lease: SQLite's single flight is per process.
    #[allow(clippy::unused_async)]
    pub(crate) async fn lease_token(
        &self,
        _source_id: uuid::Uuid,
    ) -> Result<Option<TokenLease>, StoreError> {
        Ok(None)
    }
}

impl_store!(
    super::SqliteStore,
    sqlx::Sqlite,
    "SELECT value FROM store_meta WHERE key = $1",
    Some("PRAGMA wal_checkpoint(FULL)"),
    crate::ops_sqlite::events_store_impl::write_event
);
