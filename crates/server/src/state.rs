//! What every handler shares: [`AppState`] and its substates.
//!
//! Each part is cheap to clone and can be extracted on its own (`State<Arc<dyn Store>>`,
//! `State<Engine>`, …) through `FromRef`, so a sub-router (the console, the gateway API, the
//! callback receiver) asks only for what it uses. Everything that talks to a registry comes
//! from the [`Engine`]: handlers never build clients or operations themselves.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use dci_client::jobs::JobRunner;
use dci_client::ops::{IngestContext, Operations};
use dci_client::{Engine, EngineError, OpsStore, Store};
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
    /// How the webhook delivery worker (started by [`crate::serve`]) delivers and retries.
    pub webhooks: dci_client::webhooks::WebhookSettings,
    /// The console's settings; `None` reads them from the environment
    /// ([`crate::console::ConsoleConfig::from_env`]).
    pub console: Option<crate::console::ConsoleConfig>,
    /// Most gateway (`/api/v1`) requests in flight at once; beyond it a request is answered
    /// 503 with `Retry-After` at once instead of queueing (admission control). Default 256.
    pub max_in_flight: usize,
    /// Serve `/metrics` without a token (default off: the admin or read-only token is needed).
    pub metrics_open: bool,
    /// Where background bulk jobs keep their input and results files (`dci serve`: `DCI_HOME/
    /// jobs`); `None`: jobs are refused (schedules too).
    pub jobs_dir: Option<std::path::PathBuf>,
    /// Largest job input accepted (upload or a schedule's fetched input). Default 1 GiB.
    pub max_job_input: u64,
    /// How often the scheduler looks for due occurrences (and for jobs no instance runs).
    /// Default 15 s.
    pub schedule_tick: Duration,
    /// How long a background job's lease lasts unless renewed (renewed every third of it):
    /// how soon after an instance dies another may continue its jobs. Default 30 s.
    pub job_lease: Duration,
    /// How long after a scheduled run's lease ended an instance that cannot reach the run's
    /// files runs the occurrence again. Default 60 s.
    pub schedule_takeover_after: Duration,
    /// How long requests, callbacks and events (personal data) are kept once finished: with a
    /// value, [`crate::serve`] purges what is older at start and every hour
    /// ([`dci_client::OpsStore::purge_before`]). `None` (default): kept until deleted.
    pub retention: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            webhooks: dci_client::webhooks::WebhookSettings::default(),
            console: None,
            max_in_flight: 256,
            metrics_open: false,
            jobs_dir: None,
            max_job_input: dci_client::jobs::DEFAULT_MAX_UPLOAD,
            schedule_tick: Duration::from_secs(15),
            job_lease: dci_client::bulk::lease::DEFAULT_LEASE,
            schedule_takeover_after: dci_client::jobs::DEFAULT_TAKEOVER_AFTER,
            retention: None,
        }
    }
}

/// The state of `dci serve`: the engine (and its stores), configuration, admin-token
/// verification and the shutdown signal, reached through it (`state.engine`, `state.config`,
/// …). Cloning it costs one reference count: axum clones the state for every extractor and
/// middleware layer of every request, and a copy of each part (a dozen reference counts up,
/// then down) was ~2.5 % of the gateway's CPU under load.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of an [`AppState`].
pub struct Shared {
    /// Data sources, tokens, audit log.
    pub store: Arc<dyn Store>,
    /// Async requests, callbacks, subscriptions, signing keys.
    pub ops: Arc<dyn OpsStore>,
    /// Every data source's client, token cache, keys and caches, shared by every request.
    pub engine: Engine,
    /// What the callback receiver hands to `dci_client::ops::ingest`.
    pub ingest: IngestContext,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// Verifies the admin token of `/api/v1` (and the console).
    pub admin: AdminToken,
    /// Fires when the server starts shutting down.
    pub shutdown: Shutdown,
    /// Background bulk jobs (API and console uploads, schedules).
    pub jobs: JobRunner,
}

impl AppState {
    /// State over the stores, guarded by `admin`, with default settings.
    pub fn new(store: Arc<dyn Store>, ops: Arc<dyn OpsStore>, admin: AdminToken) -> AppState {
        AppState::with_config(store, ops, admin, ServerConfig::default())
    }

    /// State with explicit settings (and an engine of its own over the stores).
    pub fn with_config(
        store: Arc<dyn Store>,
        ops: Arc<dyn OpsStore>,
        admin: AdminToken,
        config: ServerConfig,
    ) -> AppState {
        let engine = Engine::builder(store.clone(), ops.clone())
            .max_callback_bytes(config.body_limit)
            .build();
        AppState::with_engine(engine, admin, config)
    }

    /// State over an engine the caller opened (and may share with other front ends).
    pub fn with_engine(engine: Engine, admin: AdminToken, config: ServerConfig) -> AppState {
        let mut ingest = engine.ingest_context();
        ingest.max_body_bytes = config.body_limit;
        let jobs = JobRunner::with_limits(
            engine.clone(),
            config.jobs_dir.clone(),
            config.max_job_input,
            dci_client::bulk::RunOptions {
                lease: config.job_lease,
                ..dci_client::bulk::RunOptions::default()
            },
        );
        AppState(Arc::new(Shared {
            jobs,
            store: engine.store().clone(),
            ops: engine.ops_store().clone(),
            ingest,
            engine,
            config: Arc::new(config),
            admin,
            shutdown: Shutdown::new(),
        }))
    }

    /// The user operations (users, personal API tokens, the change audit) over the store.
    pub fn users(&self) -> dci_client::users::Users {
        dci_client::users::Users::new(self.ops.clone())
    }

    /// Writes a change-audit record: `who` changed `target` `id` (`action`, these `fields`).
    /// The change is already made, so a failure to record it is logged, not answered.
    pub async fn record_change(
        &self,
        who: &crate::auth::Principal,
        target: dci_client::users::ChangeTarget,
        id: &str,
        action: &str,
        fields: Vec<String>,
    ) {
        let change = dci_client::users::ChangeRecord::now(&who.actor, target, id, action, fields);
        self.users().record_or_log(change).await;
    }

    /// The operations of data source `code`, from the engine. Disabled sources are refused
    /// here, so no handler sends on their behalf.
    pub async fn operations(&self, code: &str) -> Result<Operations, EngineError> {
        self.engine.operations(code).await
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

impl FromRef<AppState> for Engine {
    fn from_ref(s: &AppState) -> Self {
        s.engine.clone()
    }
}

impl FromRef<AppState> for IngestContext {
    fn from_ref(s: &AppState) -> Self {
        s.ingest.clone()
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

impl FromRef<AppState> for JobRunner {
    fn from_ref(s: &AppState) -> Self {
        s.jobs.clone()
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
