//! What every handler shares: [`AppState`] and its substates.
//!
//! Each part is cheap to clone and can be extracted on its own (`State<Arc<dyn Store>>`,
//! `State<ClientCache>`, …) through `FromRef`, so a sub-router (the console, the gateway API, the
//! callback receiver) asks only for what it uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::FromRef;
use dci_client::keys::RegistryKeys;
use dci_client::ops::{IngestContext, Operations};
use dci_client::{DataSource, DciClient, OpsStore, Store, StoreError};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::admin_token::AdminToken;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted anywhere (callbacks included). Default 2 MiB.
    pub body_limit: usize,
    /// Longest a request may take before it is answered 408. Default 60 s.
    pub request_timeout: Duration,
    /// Longest an in-flight request may keep the server alive after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The state of `dci serve`: stores, per-source clients, configuration, admin-token
/// verification and the shutdown signal.
#[derive(Clone)]
pub struct AppState {
    /// Data sources, tokens, audit log.
    pub store: Arc<dyn Store>,
    /// Async requests, callbacks, subscriptions, signing keys.
    pub ops: Arc<dyn OpsStore>,
    /// The registries' public keys and JWKS cache, shared by replies and callbacks.
    pub registry_keys: RegistryKeys,
    /// What the callback receiver hands to `dci_client::ops::ingest`.
    pub ingest: IngestContext,
    /// One [`DciClient`] per data source, shared by every request.
    pub clients: ClientCache,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// Verifies the admin token of `/api/v1` (and the console).
    pub admin: AdminToken,
    /// Fires when the server starts shutting down.
    pub shutdown: Shutdown,
}

impl AppState {
    /// State over the stores, guarded by `admin`, with default settings.
    pub fn new(store: Arc<dyn Store>, ops: Arc<dyn OpsStore>, admin: AdminToken) -> AppState {
        AppState::with_config(store, ops, admin, ServerConfig::default())
    }

    /// State with explicit settings.
    pub fn with_config(
        store: Arc<dyn Store>,
        ops: Arc<dyn OpsStore>,
        admin: AdminToken,
        config: ServerConfig,
    ) -> AppState {
        let registry_keys = RegistryKeys::new();
        let mut ingest =
            IngestContext::new(store.clone(), ops.clone()).with_keys(registry_keys.clone());
        ingest.max_body_bytes = config.body_limit;
        AppState {
            clients: ClientCache::new(store.clone()),
            store,
            ops,
            registry_keys,
            ingest,
            config: Arc::new(config),
            admin,
            shutdown: Shutdown::new(),
        }
    }
}

impl AppState {
    /// The operations of data source `code`, sharing this server's client, stores and key
    /// cache. Disabled sources are refused here, so no handler sends on their behalf.
    pub async fn operations(&self, code: &str) -> Result<Operations, ClientCacheError> {
        let client = self.clients.get(code).await?;
        if !client.source().active {
            return Err(ClientCacheError::Disabled(code.to_owned()));
        }
        Ok(
            Operations::new(client, self.ops.clone())
                .with_registry_keys(self.registry_keys.clone()),
        )
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl FromRef<AppState> for Arc<dyn Store> {
    fn from_ref(s: &AppState) -> Self {
        s.store.clone()
    }
}

impl FromRef<AppState> for Arc<dyn OpsStore> {
    fn from_ref(s: &AppState) -> Self {
        s.ops.clone()
    }
}

impl FromRef<AppState> for RegistryKeys {
    fn from_ref(s: &AppState) -> Self {
        s.registry_keys.clone()
    }
}

impl FromRef<AppState> for IngestContext {
    fn from_ref(s: &AppState) -> Self {
        s.ingest.clone()
    }
}

impl FromRef<AppState> for ClientCache {
    fn from_ref(s: &AppState) -> Self {
        s.clients.clone()
    }
}

impl FromRef<AppState> for Arc<ServerConfig> {
    fn from_ref(s: &AppState) -> Self {
        s.config.clone()
    }
}

impl FromRef<AppState> for AdminToken {
    fn from_ref(s: &AppState) -> Self {
        s.admin.clone()
    }
}

impl FromRef<AppState> for Shutdown {
    fn from_ref(s: &AppState) -> Self {
        s.shutdown.clone()
    }
}

/// A signal that fires once, when the server begins to shut down. Long waits (an async search
/// awaiting its callback) select on [`Shutdown::wait`] so they end instead of holding the drain.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    fn new() -> Shutdown {
        let (tx, _) = watch::channel(false);
        Shutdown { tx: Arc::new(tx) }
    }

    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the shutdown has started.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Why a data source's client could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ClientCacheError {
    /// No data source has this code.
    #[error("no data source {0:?}: GET /api/v1/sources lists the codes")]
    NotFound(String),
    /// The data source is disabled.
    #[error(
        "data source {0:?} is disabled: enable it (PUT with \"active\": true, or `dci source enable`) first"
    )]
    Disabled(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data source's configuration cannot make a client (bad TLS file, …).
    #[error(transparent)]
    Client(#[from] dci_client::Error),
}

/// One [`DciClient`] per data source, so the connection pool and the token cache are shared by
/// every request. The record is read from the store on each lookup (cheap, and another process
/// such as `dci source edit` may have changed it); the client is rebuilt when the record's
/// `updated_at` moves.
#[derive(Clone)]
pub struct ClientCache {
    store: Arc<dyn Store>,
    clients: Arc<Mutex<HashMap<String, (OffsetDateTime, DciClient)>>>,
}

impl ClientCache {
    /// An empty cache over `store`.
    pub fn new(store: Arc<dyn Store>) -> ClientCache {
        ClientCache {
            store,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The client of data source `code` (active or not: callers decide).
    pub async fn get(&self, code: &str) -> Result<DciClient, ClientCacheError> {
        let source = self
            .store
            .get_data_source(code)
            .await?
            .ok_or_else(|| ClientCacheError::NotFound(code.to_owned()))?;
        self.for_source(source)
    }

    /// The client of an already loaded record.
    pub fn for_source(&self, source: DataSource) -> Result<DciClient, ClientCacheError> {
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, client)) = map.get(&source.code)
            && *at == source.updated_at
            && client.source().id == source.id
        {
            return Ok(client.clone());
        }
        let code = source.code.clone();
        let at = source.updated_at;
        let client = DciClient::builder(source)
            .store(self.store.clone())
            .build()?;
        map.insert(code, (at, client.clone()));
        Ok(client)
    }

    /// Forgets the client of `code` (after an edit or delete through this server).
    pub fn invalidate(&self, code: &str) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(code);
    }
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.clients.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("ClientCache").field("clients", &n).finish()
    }
}
