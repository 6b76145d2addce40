//! How a store publishes its changes ([`dci_client::changes`]): SQLite in this process only;
//! PostgreSQL to every instance on the database, through `NOTIFY` on one channel and a
//! `LISTEN`ing connection per pooled store that hands each notification to the store's hub. A
//! one-connection store ([`crate::Connections::Single`], a one-shot command) still notifies the
//! others but does not listen: its feed is in-process, so its readers poll as SQLite's do.
//!
//! Channels are database-wide but stores may live in schemas (`connect_in_schema`), so each
//! payload starts with the schema it belongs to and a listener keeps only its own.

use std::sync::Arc;
use std::time::Duration;

use dci_client::StoreError;
use dci_client::changes::{Change, ChangeHub};
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::oneshot;

use crate::common::db;

/// The one channel every store's changes go through.
pub(crate) const CHANNEL: &str = "dci_changes";

/// A PostgreSQL store's side of the feed: its schema, its hub, and the listener task if it
/// listens (stopped when the last clone of the store is dropped, or by [`PgChanges::close`]).
#[derive(Debug)]
pub(crate) struct PgChanges {
    pub(crate) schema: String,
    pub(crate) hub: Arc<ChangeHub>,
    listener: Option<Listener>,
}

/// The listening side: its own one-connection pool, so it never holds one of the store's.
#[derive(Debug)]
struct Listener {
    pool: PgPool,
    _stop: oneshot::Sender<()>,
}

impl PgChanges {
    /// Starts listening (before it returns, so no change committed after is missed).
    pub(crate) async fn start(pool: &PgPool) -> Result<PgChanges, StoreError> {
        let schema = current_schema(pool).await?;
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*pool.connect_options()).clone());
        let mut listener = PgListener::connect_with(&listen_pool)
            .await
            .map_err(db("connecting the change listener"))?;
        listener
            .listen(CHANNEL)
            .await
            .map_err(db("listening for changes"))?;
        let hub = Arc::new(ChangeHub::new(true));
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(listen(listener, schema.clone(), Arc::clone(&hub), stopped));
        Ok(PgChanges {
            schema,
            hub,
            listener: Some(Listener {
                pool: listen_pool,
                _stop: stop,
            }),
        })
    }

    /// A feed that does not listen: this process's changes only (readers poll for the
    /// others'), and no connection beside the store's.
    pub(crate) async fn local(pool: &PgPool) -> Result<PgChanges, StoreError> {
        Ok(PgChanges {
            schema: current_schema(pool).await?,
            hub: Arc::new(ChangeHub::new(false)),
            listener: None,
        })
    }

    /// Tells this process's readers about `change` when it does not listen; a listening feed
    /// hears its own `NOTIFY` instead, so this does nothing there.
    pub(crate) fn echo_locally(&self, change: Change) {
        if self.listener.is_none() {
            self.hub.publish(change);
        }
    }

    /// Stops listening: the listener's wait ends and its connection closes.
    pub(crate) async fn close(&self) {
        if let Some(l) = &self.listener {
            l.pool.close().await;
        }
    }

    /// The payload that tells this schema's listeners about `change`.
    pub(crate) fn payload(&self, change: &Change) -> String {
        format!("{}|{}", self.schema, change.encode())
    }
}

async fn current_schema(pool: &PgPool) -> Result<String, StoreError> {
    sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await
        .map_err(db("reading the current schema"))
}

async fn listen(
    mut listener: PgListener,
    schema: String,
    hub: Arc<ChangeHub>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let next = tokio::select! {
            _ = &mut stopped => return,
            n = listener.try_recv() => n,
        };
        match next {
            Ok(Some(n)) => {
                if let Some((s, change)) = n.payload().split_once('|')
                    && s == schema
                {
                    hub.publish(Change::decode(change));
                }
            }
            // The connection was lost; the next call connects and listens again. What was
            // notified in between is gone: every reader looks again.
            Ok(None) => {
                tracing::warn!("the change listener lost its database connection; reconnecting");
                hub.publish(Change::Resync);
            }
            // Closed with the store.
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "the change listener could not reconnect; retrying");
                hub.publish(Change::Resync);
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}
