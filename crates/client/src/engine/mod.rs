//! The engine: the one long-lived object that owns, per data source, everything a call needs —
//! the pooled HTTP client (TLS roots loaded once per process), the OAuth2 token cache, our
//! signing keys decrypted once, the registry's JWKS cache, the DR status cache — and hands out
//! the [`Operations`] and typed registry clients over them. The CLI, the gateway, the console
//! and the callback receiver all get what they use from here; nothing else builds clients.
//!
//! - A data source's state is built on first use and reused; it is dropped and rebuilt when
//!   the source's record changes: at once after [`Engine::invalidate`] or a change the store's
//!   feed reports ([`crate::changes`]; from every instance on PostgreSQL), and otherwise when
//!   a check against the store finds it changed (at most every
//!   [`EngineBuilder::revalidate_after`]).
//! - Disabled sources are refused by [`Engine::operations`] and the registry clients.
//! - `periodic`: [`Engine::recover_until`] and [`Engine::purge_until`], the recovery pass and
//!   the retention purge run periodically until a stop (as `dci serve` runs them).
//! - Audit entries are queued for a writer task ([`crate::transport::AuditWriter`]), off the
//!   call's critical path; [`Engine::close`] returns once every queued entry is stored.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn dci_client::Store>,
//! #               ops: std::sync::Arc<dyn dci_client::OpsStore>) -> Result<(), Box<dyn std::error::Error>> {
//! use dci_client::Engine;
//! use dci_client::ops::{SearchQuery, SearchSpec};
//! let engine = Engine::open(store, ops); // once per process; clone it freely
//! let result = engine
//!     .operations("crvs_main").await?
//!     .search(&SearchQuery::one(SearchSpec::by_id("UIN:1234567890")?))
//!     .await?;
//! let person = engine.crvs("crvs_main").await?.person(&"UIN:1234567890".parse()?).await?;
//! engine.close().await; // writes the audit entries still queued
//! # let _ = (result, person); Ok(()) }
//! ```

mod error;
mod periodic;
mod sources;

pub(crate) use periodic::every_until;
pub use periodic::{PURGE_INTERVAL, RECOVERY_INTERVAL};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dci_protocol::RegistryType;
use time::OffsetDateTime;

pub use error::EngineError;
pub use sources::SaveError;

use crate::auth::TokenSettings;
use crate::keys::{DEFAULT_SIGNER_TTL, KeyManager, RegistryKeys, SignerCache};
use crate::ops::{IngestContext, Operations, OpsStore};
use crate::registries::{
    CrvsClient, DrCacheSettings, DrClient, FarmerClient, IbrClient, SocialClient,
};
use crate::source::{DataSource, SourceState};
use crate::store::Store;
use crate::test_connection::{TestOptions, TestReport};
use crate::transport::{AuditWriter, DciClient, RetryPolicy};

/// What one pass of [`Engine::recover_transactions`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Transactions looked up at their registry.
    pub looked_up: u32,
    /// Of those, how many the answer completed (or failed).
    pub resolved: u32,
    /// Transactions given up (marked `expired`).
    pub expired: u32,
}

/// Most waiting transactions of one state looked at in one recovery pass (the oldest wait
/// for the next passes when there are more).
const RECOVERY_BATCH: u32 = 500;

/// How often, at most, a source's record is compared with the store by default.
pub const DEFAULT_REVALIDATE_AFTER: Duration = Duration::from_millis(500);

/// The default instead when the store's change feed is shared (every instance's changes
/// arrive as they commit): the check is only a safety net.
pub const SHARED_FEED_REVALIDATE_AFTER: Duration = Duration::from_secs(30);

/// Builds an [`Engine`].
#[must_use]
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    ops: Arc<dyn OpsStore>,
    registry_keys: Option<RegistryKeys>,
    signer_ttl: Duration,
    dr_cache: DrCacheSettings,
    token_settings: TokenSettings,
    retry: RetryPolicy,
    revalidate_after: Option<Duration>,
    async_deadline: Option<Duration>,
    poll_interval: Option<Duration>,
    txn_status_fallback: bool,
    max_body_bytes: Option<usize>,
    queued_audit: bool,
}

impl EngineBuilder {
    /// Shares this registry-key (JWKS) cache.
    pub fn registry_keys(mut self, keys: RegistryKeys) -> Self {
        self.registry_keys = Some(keys);
        self
    }

    /// How long a decrypted signing key is used before its record is read again (default
    /// 10 s; zero reads it for every call).
    pub fn signer_ttl(mut self, ttl: Duration) -> Self {
        self.signer_ttl = ttl;
        self
    }

    /// The DR status cache of every DR source.
    pub fn dr_cache(mut self, settings: DrCacheSettings) -> Self {
        self.dr_cache = settings;
        self
    }

    /// Token refresh skew and default lifetime for every source.
    pub fn token_settings(mut self, settings: TokenSettings) -> Self {
        self.token_settings = settings;
        self
    }

    /// The retry policy of idempotent calls for every source.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How often, at most, a source's record is compared with the store to notice a change
    /// made by another process (default 500 ms, or 30 s when the store's change feed is shared;
    /// zero: at every call).
    pub fn revalidate_after(mut self, d: Duration) -> Self {
        self.revalidate_after = Some(d);
        self
    }

    /// How long async requests may take before they count as timed out.
    pub fn async_deadline(mut self, d: Duration) -> Self {
        self.async_deadline = Some(d);
        self
    }

    /// How often an await polls the store.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = Some(d);
        self
    }

    /// Whether an await that runs out of time asks the registry with a sync txn-status.
    pub fn txn_status_fallback(mut self, on: bool) -> Self {
        self.txn_status_fallback = on;
        self
    }

    /// Largest callback body the receiver accepts.
    pub fn max_callback_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = Some(n);
        self
    }

    /// Whether audit entries are queued for a writer task (default) or written by each call
    /// before it returns (for tests that read the log right after a call without closing).
    pub fn queued_audit(mut self, on: bool) -> Self {
        self.queued_audit = on;
        self
    }

    /// Builds the engine. Needs a tokio runtime (the audit writer is a task on it).
    pub fn build(self) -> Engine {
        let audit = self
            .queued_audit
            .then(|| AuditWriter::spawn(self.store.clone()));
        let feed = self.ops.changes();
        let revalidate_after = self.revalidate_after.unwrap_or(match &feed {
            Some(f) if f.shared() => SHARED_FEED_REVALIDATE_AFTER,
            _ => DEFAULT_REVALIDATE_AFTER,
        });
        let engine = Engine {
            inner: Arc::new(Inner {
                registry_keys: self.registry_keys.unwrap_or_default(),
                signers: SignerCache::new(self.signer_ttl),
                audit,
                sources: Mutex::new(HashMap::new()),
                source_changes: std::sync::atomic::AtomicU64::new(0),
                asked: Mutex::new(HashMap::new()),
                store: self.store,
                ops: self.ops,
                dr_cache: self.dr_cache,
                token_settings: self.token_settings,
                retry: self.retry,
                revalidate_after,
                async_deadline: self.async_deadline,
                poll_interval: self.poll_interval,
                txn_status_fallback: self.txn_status_fallback,
                max_body_bytes: self.max_body_bytes,
            }),
        };
        if let Some(feed) = feed {
            tokio::spawn(drop_changed_sources(Arc::downgrade(&engine.inner), feed));
        }
        engine
    }
}

/// Drops what the engine holds for each data source the feed reports changed (every source on
/// a resync), until the engine or the store is gone.
async fn drop_changed_sources(engine: std::sync::Weak<Inner>, mut feed: crate::changes::Changes) {
    use crate::changes::Change;
    while let Some(change) = feed.next().await {
        let Some(inner) = engine.upgrade() else {
            return;
        };
        if !matches!(change, Change::Transaction(_)) {
            inner
                .source_changes
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        // A reported change marks what is held stale rather than dropping it: the next use
        // reads the record again and keeps the runtime (its token, caches) when the record is
        // the one it was built from. A change can be reported late (a source's own creation),
        // after a runtime was built from the changed record.
        let sources = inner.sources.lock().unwrap_or_else(|p| p.into_inner());
        match change {
            Change::Source(code) => {
                if let Some(rt) = sources.get(&code) {
                    rt.mark_stale();
                }
            }
            Change::Resync => sources.values().for_each(|rt| rt.mark_stale()),
            Change::Transaction(_) => {}
        }
    }
}

/// The engine. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    ops: Arc<dyn OpsStore>,
    registry_keys: RegistryKeys,
    signers: SignerCache,
    audit: Option<AuditWriter>,
    sources: Mutex<HashMap<String, Arc<SourceRuntime>>>,
    /// Counts the source changes the store's feed reported, so a runtime built from a read
    /// that a change overtook is not kept.
    source_changes: std::sync::atomic::AtomicU64,
    /// When the recovery loop last asked about each waiting transaction.
    asked: Mutex<HashMap<String, OffsetDateTime>>,
    dr_cache: DrCacheSettings,
    token_settings: TokenSettings,
    retry: RetryPolicy,
    revalidate_after: Duration,
    async_deadline: Option<Duration>,
    poll_interval: Option<Duration>,
    txn_status_fallback: bool,
    max_body_bytes: Option<usize>,
}

/// What the engine holds for one data source.
struct SourceRuntime {
    id: uuid::Uuid,
    updated_at: OffsetDateTime,
    checked: Mutex<Instant>,
    /// Set when the store reported a change of the source: the next use reads the record again.
    stale: std::sync::atomic::AtomicBool,
    ops: Operations,
    dr: Option<DrClient>,
    limiter: crate::limits::Limiter,
}

impl SourceRuntime {
    fn mark_stale(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the record may have changed since the runtime was last checked against it; a
    /// `true` answer clears the mark (the caller reads the record now).
    fn needs_check(&self, revalidate_after: std::time::Duration) -> bool {
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        let stale = self.stale.swap(false, std::sync::atomic::Ordering::AcqRel);
        if !stale && checked.elapsed() < revalidate_after {
            return false;
        }
        *checked = Instant::now();
        true
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .inner
            .sources
            .lock()
            .map(|m| m.len())
            .unwrap_or_default();
        f.debug_struct("Engine")
            .field("sources", &n)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over the stores with default settings.
    pub fn open(store: Arc<dyn Store>, ops: Arc<dyn OpsStore>) -> Engine {
        Engine::builder(store, ops).build()
    }

    /// Starts building an engine over the stores.
    pub fn builder(store: Arc<dyn Store>, ops: Arc<dyn OpsStore>) -> EngineBuilder {
        EngineBuilder {
            store,
            ops,
            registry_keys: None,
            signer_ttl: DEFAULT_SIGNER_TTL,
            dr_cache: DrCacheSettings::default(),
            token_settings: TokenSettings::default(),
            retry: RetryPolicy::default(),
            revalidate_after: None,
            async_deadline: None,
            poll_interval: None,
            txn_status_fallback: true,
            max_body_bytes: None,
            queued_audit: true,
        }
    }

    /// Data sources, tokens and the audit log.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Async requests, callbacks, subscriptions and signing keys.
    pub fn ops_store(&self) -> &Arc<dyn OpsStore> {
        &self.inner.ops
    }

    /// The registries' public keys (JWKS cache), shared by replies and callbacks.
    pub fn registry_keys(&self) -> &RegistryKeys {
        &self.inner.registry_keys
    }

    /// Our signing keys; a key activated or revoked through it stops (or starts) signing at
    /// once in this engine.
    pub fn keys(&self) -> KeyManager {
        KeyManager::new(self.inner.ops.clone()).with_signer_cache(self.inner.signers.clone())
    }

    /// What the callback receiver hands to [`crate::ops::ingest`]: the stores and this
    /// engine's registry-key cache.
    pub fn ingest_context(&self) -> IngestContext {
        let mut ctx = IngestContext::new(self.inner.store.clone(), self.inner.ops.clone())
            .with_keys(self.inner.registry_keys.clone());
        if let Some(n) = self.inner.max_body_bytes {
            ctx.max_body_bytes = n;
        }
        ctx
    }

    /// Drops what is held for `code` (after its record changed or was deleted); the next use
    /// rebuilds it from the store.
    pub fn invalidate(&self, code: &str) {
        self.lock_sources().remove(code);
    }

    /// Writes every audit entry queued so far.
    pub async fn flush(&self) {
        if let Some(a) = &self.inner.audit {
            a.flush().await;
        }
    }

    /// Ends the engine's work: writes the audit entries still queued. Calls made after this
    /// still work (their entries are written as they come).
    pub async fn close(&self) {
        self.flush().await;
    }

    fn lock_sources(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SourceRuntime>>> {
        self.inner.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn runtime(&self, code: &str) -> Result<Arc<SourceRuntime>, EngineError> {
        let cached = self.lock_sources().get(code).cloned();
        if let Some(rt) = &cached
            && !rt.needs_check(self.inner.revalidate_after)
        {
            return Ok(rt.clone());
        }
        let seen = self
            .inner
            .source_changes
            .load(std::sync::atomic::Ordering::Acquire);
        let source = self
            .inner
            .store
            .get_data_source(code)
            .await?
            .ok_or_else(|| EngineError::NotFound(code.to_owned()))?;
        if let Some(rt) = cached
            && rt.id == source.id
            && rt.updated_at == source.updated_at
        {
            return Ok(rt);
        }
        let rt = Arc::new(self.build_runtime(source)?);
        // A change reported since the read may be newer than what was read: keep the runtime
        // but marked stale, so that the next use reads the record again.
        if self
            .inner
            .source_changes
            .load(std::sync::atomic::Ordering::Acquire)
            != seen
        {
            rt.mark_stale();
        }
        self.lock_sources().insert(code.to_owned(), rt.clone());
        Ok(rt)
    }

    fn build_runtime(&self, source: DataSource) -> Result<SourceRuntime, EngineError> {
        let i = &self.inner;
        let (id, updated_at, registry) = (source.id, source.updated_at, source.registry_type);
        let retry = source.retry.apply(i.retry);
        let mut b = DciClient::builder(source)
            .store(i.store.clone())
            .token_settings(i.token_settings)
            .retry_policy(retry);
        if let Some(a) = &i.audit {
            b = b.audit_writer(a.clone());
        }
        let client = b.build()?;
        let mut ops = Operations::new(client, i.ops.clone())
            .with_registry_keys(i.registry_keys.clone())
            .with_signer_cache(i.signers.clone())
            .with_txn_status_fallback(i.txn_status_fallback);
        if let Some(d) = i.async_deadline {
            ops = ops.with_async_deadline(d);
        }
        if let Some(p) = i.poll_interval {
            ops = ops.with_poll_interval(p);
        }
        let dr = (registry == RegistryType::Dr)
            .then(|| DrClient::with_cache(ops.clone(), i.dr_cache))
            .transpose()?;
        let limiter = crate::limits::Limiter::new(&ops.source().limits);
        Ok(SourceRuntime {
            id,
            updated_at,
            checked: Mutex::new(Instant::now()),
            stale: std::sync::atomic::AtomicBool::new(false),
            ops,
            dr,
            limiter,
        })
    }

    /// The data source's record, as stored now (its state and last test included).
    pub async fn source(&self, code: &str) -> Result<DataSource, EngineError> {
        self.inner
            .store
            .get_data_source(code)
            .await?
            .ok_or_else(|| EngineError::NotFound(code.to_owned()))
    }

    /// The client of `code` if the engine already holds one (no store read: for display,
    /// e.g. the cached token's expiry).
    pub fn cached_client(&self, code: &str) -> Option<DciClient> {
        self.lock_sources()
            .get(code)
            .map(|rt| rt.ops.client().clone())
    }

    /// The client of `code`, enabled or not (for connection tests and token checks).
    pub async fn client(&self, code: &str) -> Result<DciClient, EngineError> {
        Ok(self.runtime(code).await?.ops.client().clone())
    }

    /// The operations of `code`, whatever its state (for connection tests); prefer
    /// [`Engine::operations`], which refuses disabled sources.
    pub async fn operations_any(&self, code: &str) -> Result<Operations, EngineError> {
        Ok(self.runtime(code).await?.ops.clone())
    }

    /// What the engine holds for `code`, refused when the source is disabled.
    async fn active_runtime(&self, code: &str) -> Result<Arc<SourceRuntime>, EngineError> {
        let rt = self.runtime(code).await?;
        if !rt.ops.source().active {
            return Err(EngineError::Disabled(code.to_owned()));
        }
        Ok(rt)
    }

    /// The operations of `code`. A disabled source is refused: nothing is sent on its behalf.
    pub async fn operations(&self, code: &str) -> Result<Operations, EngineError> {
        Ok(self.active_runtime(code).await?.ops.clone())
    }

    /// The limits of `code` ([`crate::limits::Limiter`], from its `limits` settings), shared by
    /// every run on the source in this engine (rebuilt when the record changes).
    pub async fn limiter(&self, code: &str) -> Result<crate::limits::Limiter, EngineError> {
        Ok(self.active_runtime(code).await?.limiter.clone())
    }

    /// The CRVS client of `code`.
    pub async fn crvs(&self, code: &str) -> Result<CrvsClient, EngineError> {
        Ok(CrvsClient::new(self.operations(code).await?)?)
    }

    /// The DR client of `code`, with the engine's status cache for that source.
    pub async fn dr(&self, code: &str) -> Result<DrClient, EngineError> {
        let rt = self.active_runtime(code).await?;
        match &rt.dr {
            Some(dr) => Ok(dr.clone()),
            // Not a DR source: the client refuses it, naming registry_type.
            None => Ok(DrClient::new(rt.ops.clone())?),
        }
    }

    /// The IBR client of `code`.
    pub async fn ibr(&self, code: &str) -> Result<IbrClient, EngineError> {
        Ok(IbrClient::new(self.operations(code).await?)?)
    }

    /// The social-registry client of `code`.
    pub async fn social(&self, code: &str) -> Result<SocialClient, EngineError> {
        Ok(SocialClient::new(self.operations(code).await?)?)
    }

    /// The farmer-registry client of `code`.
    pub async fn farmer(&self, code: &str) -> Result<FarmerClient, EngineError> {
        Ok(FarmerClient::new(self.operations(code).await?)?)
    }

    /// Runs the staged connection test of `code` (enabled or not) and records its outcome.
    pub async fn test_connection(
        &self,
        code: &str,
        opts: TestOptions,
    ) -> Result<TestReport, EngineError> {
        let ops = self.operations_any(code).await?;
        let report = crate::test_connection::test_connection(&ops, opts).await;
        // The state moved: the next use reads the new record.
        self.invalidate(code);
        Ok(report)
    }

    /// One pass of the recovery loop at the current time: see
    /// [`Engine::recover_transactions_at`].
    pub async fn recover_transactions(&self) -> Result<Recovery, EngineError> {
        self.recover_transactions_at(OffsetDateTime::now_utc())
            .await
    }

    /// One pass of the recovery loop as at `now`: every async request still waiting
    /// (`pending` — stored, its process stopped before the answer —, `unknown` — its reply was
    /// lost —, `acknowledged`, `partial`) is followed up under its source's
    /// [`crate::RecoverySettings`] by [`Operations::recover`]: after the expected callback
    /// time its registry is asked with a sync txn-status (again after each poll interval), and
    /// the answer completes it, or fails a request that never arrived; at its give-up time it
    /// is marked `expired` with the reason. A request whose source was deleted or disabled is
    /// expired at its give-up time too (nothing can be asked). Ends every waiting request
    /// with a result or a definite state by its deadline.
    pub async fn recover_transactions_at(
        &self,
        now: OffsetDateTime,
    ) -> Result<Recovery, EngineError> {
        use crate::ops::{RecoveryStep, TransactionFilter, TransactionState as S};
        let mut out = Recovery::default();
        for state in [S::Pending, S::Unknown, S::Acknowledged, S::Partial] {
            let waiting = self
                .inner
                .ops
                .list_transactions(&TransactionFilter {
                    source_code: None,
                    state: Some(state),
                    limit: RECOVERY_BATCH,
                })
                .await
                .map_err(EngineError::Store)?;
            for t in waiting {
                let overdue = now >= t.deadline;
                let ops = match self.operations(&t.source_code).await {
                    Ok(ops) => ops,
                    Err(e) if overdue => {
                        let reason = format!(
                            "no result by its deadline, and its data source cannot be asked ({e}): given up"
                        );
                        self.inner
                            .ops
                            .advance_transaction(&t.transaction_id, S::Expired, now, Some(&reason))
                            .await
                            .map_err(EngineError::Store)?;
                        out.expired += 1;
                        continue;
                    }
                    Err(_) => continue,
                };
                let poll = ops.source().recovery.poll_interval();
                if !overdue && !self.due_for_lookup(&t.transaction_id, now, poll) {
                    continue;
                }
                match ops.recover(&t, now).await {
                    Ok(RecoveryStep::NotDue) => {}
                    Ok(RecoveryStep::Waiting) => {
                        out.looked_up += 1;
                        self.asked(&t.transaction_id, now);
                    }
                    Ok(RecoveryStep::Resolved(_)) => {
                        out.looked_up += 1;
                        out.resolved += 1;
                        self.forget(&t.transaction_id);
                    }
                    Ok(RecoveryStep::Expired(_)) => {
                        out.expired += 1;
                        self.forget(&t.transaction_id);
                    }
                    Err(e) => {
                        self.asked(&t.transaction_id, now);
                        tracing::debug!(source = %t.source_code, error = %e,
                            "recovery step failed; the next pass tries again");
                    }
                }
            }
        }
        Ok(out)
    }

    fn lock_asked(&self) -> std::sync::MutexGuard<'_, HashMap<String, OffsetDateTime>> {
        self.inner.asked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `id` was not asked about within the last `poll`.
    fn due_for_lookup(&self, id: &str, now: OffsetDateTime, poll: Duration) -> bool {
        self.lock_asked().get(id).is_none_or(|at| now - *at >= poll)
    }

    fn asked(&self, id: &str, now: OffsetDateTime) {
        let mut asked = self.lock_asked();
        if asked.len() >= 10 * RECOVERY_BATCH as usize {
            // Bounded: entries of requests ended elsewhere (a callback) are dropped wholesale;
            // at worst each is asked once more.
            asked.clear();
        }
        asked.insert(id.to_owned(), now);
    }

    fn forget(&self, id: &str) {
        self.lock_asked().remove(id);
    }

    /// Marks sources left in `testing` by a test that never finished (its process died) as
    /// `error`, saying so. Tests older than `older_than` count as dead. Returns their codes.
    pub async fn recover_interrupted_tests(
        &self,
        older_than: Duration,
    ) -> Result<Vec<String>, EngineError> {
        let now = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        let all = self
            .inner
            .store
            .list_data_sources(&crate::store::SourceFilter::default())
            .await?;
        for s in all {
            let started = s.last_test_at.unwrap_or(s.updated_at);
            if s.state == SourceState::Testing && now - started > older_than {
                self.inner
                    .store
                    .record_test_result(
                        &s.code,
                        SourceState::Error,
                        now,
                        Some(
                            "the connection test did not finish (its process stopped): test again",
                        ),
                    )
                    .await?;
                self.invalidate(&s.code);
                out.push(s.code);
            }
        }
        Ok(out)
    }
}
