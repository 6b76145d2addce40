//! # dci-sandbox
//!
//! A local DCI registry serving all five registries on one port, with an OAuth2 token endpoint,
//! seeded deterministic data, async callbacks, a JWKS and fault injection. Used by `dci sandbox`,
//! the main job's demo, and the integration tests of every crate.
//!
//! Owns: behaving like a registry. Uses `dci-protocol` only (never `dci-client`), so that it can
//! disagree with the client and catch its mistakes.
//! Does not own: the client, storage, anything reachable beyond loopback unless told so.
//!
//! Map:
//! - [`SandboxConfig`] (listen address, [`ClientConfig`]s with [`ClientQuirks`], token lifetime,
//!   [`SignaturePolicy`], seed) → [`spawn`] → [`Sandbox`], which stops on `Drop`.
//! - HTTP surface: `POST /oauth2/client/token`; `/{crvs,dr,ibr,social,fr}/registry/…` (sync
//!   and async search, subscribe, unsubscribe, txn status, DR and IBR extras, `GET …/ping`);
//!   `GET /.well-known/jwks.json`; the admin API under `/admin` (examples, faults, requests,
//!   callbacks, stats).
//! - The admin operations are also plain Rust on [`Sandbox`]: [`Sandbox::set_faults`],
//!   [`Sandbox::requests`], [`Sandbox::token_requests`], [`Sandbox::revoke_tokens`],
//!   [`Sandbox::stats`], [`Sandbox::identifiers`], …
//!
//! ## Faults
//!
//! [`Faults`] (`POST /admin/faults`), per target: `latency_ms`, `http_500_ratio`,
//! `http_503_ratio`, `http_429_ratio` with `retry_after_s`, `down`, `revoke_tokens`, and two
//! ways of losing a reply:
//! - `reset_ratio`: the connection is closed *before* the request is processed: nothing
//!   happened (no transaction, no callback). Retrying is always safe.
//! - `drop_reply_ratio`: the request *is* processed (an async search is accepted and calls
//!   back, a sync search runs, a token is issued, txn status knows the transaction), then the
//!   connection is closed without the answer. Tests that clients recover without doing the
//!   work twice (txn status, or a retry the registry can recognise).
//!
//! Both are logged with status 0 and the fault's name (`reset`, `drop_reply`).
//! [`CallbackFaults`] delay, duplicate or drop (`fail`) callbacks; a dropped callback is not
//! redelivered (the result stays available through txn status).
//!
//! ## Callback redelivery
//!
//! A callback whose delivery fails (connection refused, timeout, HTTP 5xx, 408 or 429) is sent
//! again, the same bytes, with exponential backoff until the receiver answers 2xx: by default 8
//! attempts in all, 200 ms before the second, doubling, at most 5 s apart
//! ([`SandboxConfig::callback_retry`], [`SandboxConfig::callback_timeout`]). Another 4xx is
//! final. Every attempt is a [`DeliveredCallback`] in the callback log, with its `attempt`
//! number, status or error, and `retry_in_ms` when another attempt is scheduled; outcomes are
//! counted in [`SandboxStats::deliveries`]. Pending redeliveries are bounded (the log
//! capacity, four times the log body budget) and stop with the sandbox.
//!
//! ## Data and load
//!
//! [`SandboxConfig::population`] sets how many people the seeded data is generated for
//! (default 80; 100 000 start in about 2 s even in a debug build): identifier
//! searches go through a hash index, records are rendered only for the page asked (pages of
//! 1 000 work), and [`Sandbox::identifiers`] or `GET /admin/examples?ids=K&offset=M` list
//! existing identifiers to drive a load test with.
//!
//! Everything kept per request is bounded ([`SandboxConfig::log_capacity`], default 10 000
//! entries per log; [`SandboxConfig::log_body_budget`], default 16 MiB of bodies per log, 2 MiB
//! per entry): the request log, the transactions kept for txn status and their results, the
//! callback log, subscriptions, and records added at run time. The oldest go first; the
//! counters in [`SandboxStats`] (`GET /admin/stats`) still count everything, and show the bytes
//! kept (`retained_bytes`).
//!
//! ```no_run
//! # async fn demo() -> dci_sandbox::Result<()> {
//! use dci_protocol::RegistryType;
//! let sandbox = dci_sandbox::spawn(dci_sandbox::SandboxConfig::default()).await?;
//! let crvs = sandbox.registry_url(RegistryType::Crvs); // http://127.0.0.1:PORT/crvs
//! let token_url = sandbox.token_url();                  // …/oauth2/client/token
//! # let _ = (crvs, token_url);
//! # Ok(()) }
//! ```

mod admin;
mod callback;
mod config;
mod data;
mod envelope;
mod error;
mod faults;
mod opencrvs;
mod registry;
mod reply;
mod ring;
mod search;
mod signing;
mod state;
mod token;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use dci_protocol::RegistryType;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use config::{
    ClientConfig, ClientQuirks, DEFAULT_CLI_LISTEN, DEFAULT_LOG_BODY_BUDGET, DEFAULT_LOG_ENTRIES,
    DEFAULT_LOG_ENTRY_BODY_CAP, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SandboxConfig, SignaturePolicy,
    read_scope,
};
pub use data::{ExampleId, RegistryExamples};
pub use error::{Error, Result};
pub use faults::{CallbackFaults, FaultTarget, Faults};
pub use ring::LogStats;
pub use state::{DeliveredCallback, DeliveryStats, RecordedRequest, SandboxStats};

use state::{AppState, Shared};

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/oauth2/client/token";
/// Largest request body accepted (2 MiB).
pub(crate) const MAX_BODY: usize = 2 * 1024 * 1024;

/// The HTTP application, for callers that serve it themselves.
fn router(state: AppState) -> Router {
    let reg = |p: &str| format!("/{{registry}}/registry{p}");
    Router::new()
        .route(TOKEN_PATH, post(token::token))
        .route(
            "/opencrvs/registry/sync/search",
            post(opencrvs::sync_search),
        )
        .route(
            "/opencrvs-1.3/registry/sync/search",
            post(opencrvs::sync_search_v1_3),
        )
        .route("/.well-known/jwks.json", get(signing::jwks))
        .route("/registry/ping", get(registry::ping_root))
        .route(&reg("/ping"), get(registry::ping))
        .route(&reg("/sync/search"), post(registry::sync_search))
        .route(&reg("/search"), post(registry::search))
        .route(&reg("/subscribe"), post(registry::subscribe))
        .route(&reg("/unsubscribe"), post(registry::unsubscribe))
        .route(&reg("/txn/status"), post(registry::txn_status))
        .route(&reg("/sync/txn/status"), post(registry::sync_txn_status))
        .route(&reg("/sync/disabled"), post(registry::dr_disabled))
        .route(
            &reg("/sync/get-disability-support"),
            post(registry::dr_support),
        )
        .route(
            &reg("/sync/get-disability-details"),
            post(registry::dr_details),
        )
        .route(&reg("/sync/enrolled"), post(registry::ibr_enrolled))
        .route(
            &reg("/sync/enrollment/updates"),
            post(registry::ibr_updates),
        )
        .route("/admin/examples", get(admin::examples))
        .route(
            "/admin/faults",
            get(admin::get_faults)
                .post(admin::set_faults)
                .delete(admin::clear_faults),
        )
        .route(
            "/admin/requests",
            get(admin::requests).delete(admin::clear_requests),
        )
        .route(
            "/admin/callbacks",
            get(admin::callbacks).delete(admin::clear_callbacks),
        )
        .route("/admin/stats", get(admin::stats))
        .route("/admin/notify", post(admin::notify))
        .route("/admin/healthcheck", get(admin::healthcheck))
        .route("/healthcheck", get(admin::healthcheck))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::inject,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            state::record,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    reply::http_error(
        axum::http::StatusCode::NOT_FOUND,
        "err.request.not_found",
        &format!(
            "no endpoint {}: registries are under /crvs, /dr, /ibr, /social and /fr (e.g. \
             /crvs/registry/sync/search); the token endpoint is {TOKEN_PATH}",
            uri.path()
        ),
    )
}

/// A running sandbox. Stops when dropped (or on [`Sandbox::shutdown`]).
pub struct Sandbox {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    /// Tells background work (callback redeliveries) that the sandbox stops.
    stopping: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("addr", &self.addr).finish()
    }
}

/// Starts a sandbox in the current Tokio runtime and returns once it is listening.
pub async fn spawn(config: SandboxConfig) -> Result<Sandbox> {
    if !config.listen.ip().is_loopback() && !config.allow_non_loopback {
        return Err(Error::NonLoopback(config.listen));
    }
    config.validate().map_err(Error::InvalidConfig)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Setup(format!("callback HTTP client: {e}")))?;
    let signer = signing::SandboxSigner::new(&config).map_err(Error::Setup)?;
    let data = data::generate(config.seed, config.population);
    let (stopping, stopping_rx) = watch::channel(false);
    let state = AppState(Arc::new(Shared::new(
        config,
        data,
        http,
        signer,
        stopping_rx,
    )));
    let app = router(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "sandbox server stopped");
        }
    });
    tracing::info!(%addr, "DCI sandbox listening");
    Ok(Sandbox {
        addr,
        state,
        stop: Some(stop),
        stopping,
        task: Some(task),
    })
}

impl Sandbox {
    /// The bound address (with the real port when the config said `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A registry's base URL, e.g. `http://127.0.0.1:PORT/crvs`; its endpoints are under
    /// `…/registry/…`.
    pub fn registry_url(&self, registry: RegistryType) -> String {
        format!("{}/{}", self.base_url(), registry.as_str())
    }

    /// `http://127.0.0.1:PORT/oauth2/client/token`.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base_url())
    }

    /// `http://127.0.0.1:PORT/.well-known/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base_url())
    }

    /// The public key that verifies the sandbox's callbacks and sync replies.
    pub fn verifying_key(&self) -> dci_protocol::signature::VerifyingKey {
        self.signer().verifying_key().clone()
    }

    /// The sandbox key's id: its RFC 7638 thumbprint, the `kid` in the JWKS and the middle part
    /// of `kidId="{registry_id}|{kid}|ed25519"` in its signatures.
    pub fn key_id(&self) -> String {
        self.signer().kid().to_owned()
    }

    /// The JWKS served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        self.signer().jwks()
    }

    /// The `sender_id` of the sandbox's replies and callbacks (default `dci-sandbox`).
    pub fn registry_id(&self) -> &str {
        &self.state.cfg().registry_id
    }

    fn signer(&self) -> &signing::SandboxSigner {
        &self.state.0.signer
    }

    /// Sets the faults of `faults.target` (replacing that target's previous faults);
    /// `revoke_tokens` takes effect immediately.
    pub fn set_faults(&self, faults: Faults) -> Result<()> {
        admin::apply_faults(&self.state, faults).map_err(Error::InvalidFaults)
    }

    /// Clears every fault.
    pub fn clear_faults(&self) {
        self.state.faults().clear();
    }

    /// The faults in force, one entry per target.
    pub fn faults(&self) -> Vec<Faults> {
        self.state.faults().list()
    }

    /// Invalidates every issued token: the next call with one gets 401.
    pub fn revoke_tokens(&self) {
        self.state.revoke_tokens();
    }

    /// How many requests reached the token endpoint (including refused and faulted ones).
    pub fn token_requests(&self) -> u64 {
        self.state.0.token_requests.load(Ordering::Relaxed)
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> u64 {
        self.state.0.tokens_issued.load(Ordering::Relaxed)
    }

    /// The recorded requests (admin endpoints excluded), oldest first, with the bodies still
    /// kept (see [`SandboxConfig::log_body_budget`]). At most [`SandboxConfig::log_capacity`]
    /// entries, the newest.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests(true, None)
    }

    /// Forgets recorded requests (the counters in [`Sandbox::stats`] stay).
    pub fn clear_requests(&self) {
        self.state.clear_requests();
    }

    /// The callback attempts (sent, failed, or dropped by a fault), oldest first: a callback
    /// redelivered after failures has one entry per attempt (see
    /// [`DeliveredCallback::attempt`]).
    pub fn callbacks(&self) -> Vec<DeliveredCallback> {
        self.state.callbacks(None)
    }

    /// Forgets the callback log (the counters in [`Sandbox::stats`] stay).
    pub fn clear_callbacks(&self) {
        self.state.clear_callbacks();
    }

    /// Counters and log sizes, as `GET /admin/stats`.
    pub fn stats(&self) -> SandboxStats {
        self.state.stats()
    }

    /// Sends `notify` callbacks now to the active subscriptions of `registry` (or only the one
    /// with `subscription_code`), each with the records its filter matches. Returns how many
    /// subscriptions were notified.
    pub async fn notify(&self, registry: RegistryType, subscription_code: Option<&str>) -> usize {
        callback::notify(&self.state, registry, subscription_code).await
    }

    /// Identifiers that exist per registry, and one that does not (as `GET /admin/examples`).
    pub fn examples(&self) -> BTreeMap<RegistryType, RegistryExamples> {
        data::examples(&self.state.data())
    }

    /// The main identifier (CRVS, DR, IBR, FR: the UIN; social registry: the household id)
    /// of records `offset..offset + limit` of `registry`, in order: existing identifiers for
    /// load tests (as `GET /admin/examples?ids=K&offset=M`).
    pub fn identifiers(
        &self,
        registry: RegistryType,
        offset: usize,
        limit: usize,
    ) -> Vec<ExampleId> {
        self.state.data().identifiers(registry, None, offset, limit)
    }

    /// Stops serving and waits (up to 5 s) for the server task to end.
    pub async fn shutdown(mut self) {
        self.stopping.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stopping.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Keep-alive connections would hold graceful shutdown open; a dropped sandbox must
        // stop listening now.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
