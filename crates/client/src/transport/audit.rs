//! Where audit entries go: straight to the store (a client built on its own), or through an
//! [`AuditWriter`] task that batches them off the call's critical path (the engine's way).
//!
//! The writer keeps every entry: the queue is bounded, and when it is full the call waits for
//! room rather than dropping the entry. [`AuditWriter::flush`] returns once everything queued
//! before it is stored, so a clean shutdown loses nothing.
//!
//! Under load the writer lingers [`LINGER`] after the first entry of a batch before writing,
//! so a burst becomes one batch (one commit) instead of one per wake-up, and the writer wakes
//! a few hundred times a second at most instead of once per call. A flush never lingers, and
//! cuts short a linger under way (so a one-shot CLI run does not wait it out at exit).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::{AuditEntry, Store};

/// Entries the queue holds before a call waits for the writer.
const QUEUE: usize = 8192;
/// Entries written per batch at most.
const BATCH: usize = 256;
/// How long the writer waits for more entries after the first of a batch.
const LINGER: Duration = Duration::from_millis(5);

/// How a client records its audit entries.
#[derive(Clone)]
pub(crate) enum AuditSink {
    /// No audit log.
    None,
    /// Written by the call itself, before it returns.
    Direct(Arc<dyn Store>),
    /// Queued for an [`AuditWriter`] (the store is for when the writer has gone).
    Queued(mpsc::Sender<Msg>, Arc<dyn Store>),
}

/// What the writer task receives.
pub(crate) enum Msg {
    Entry(AuditEntry),
    Flush(oneshot::Sender<()>),
}

impl AuditSink {
    pub(crate) async fn record(&self, entry: AuditEntry) {
        match self {
            AuditSink::None => {}
            AuditSink::Direct(store) => write(store.as_ref(), std::slice::from_ref(&entry)).await,
            AuditSink::Queued(tx, store) => {
                crate::metrics::audit_queue(1);
                if let Err(mpsc::error::SendError(Msg::Entry(entry))) =
                    tx.send(Msg::Entry(entry)).await
                {
                    crate::metrics::audit_queue(-1);
                    // The writer has stopped (its runtime is going away): write it ourselves.
                    write(store.as_ref(), std::slice::from_ref(&entry)).await;
                }
            }
        }
    }
}

async fn write(store: &dyn Store, entries: &[AuditEntry]) {
    if let Err(e) = store.append_audit_batch(entries).await {
        // The call's outcome matters more than its audit row; say so loudly and go on.
        tracing::warn!(entries = entries.len(), error = %e, "audit write failed");
    }
}

/// A task writing queued audit entries in batches. Cheap to clone; the task runs while any
/// clone or any client fed by it lives.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Msg>,
    store: Arc<dyn Store>,
    /// Cuts the writer's linger short when a flush is queued.
    flush_now: Arc<Notify>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn spawn(store: Arc<dyn Store>) -> AuditWriter {
        Self::spawn_with(store, LINGER)
    }

    fn spawn_with(store: Arc<dyn Store>, linger: Duration) -> AuditWriter {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let flush_now = Arc::new(Notify::new());
        let writer_store = store.clone();
        let woken = flush_now.clone();
        tokio::spawn(async move {
            let mut msgs = Vec::with_capacity(BATCH);
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut msgs, BATCH).await > 0 {
                if msgs.len() < BATCH && !msgs.iter().any(|m| matches!(m, Msg::Flush(_))) {
                    // Linger for more entries, but not past a flush: a caller waiting in
                    // `flush` (a one-shot CLI run at exit) must not wait out the linger.
                    tokio::select! {
                        () = tokio::time::sleep(linger) => {}
                        () = woken.notified() => {}
                    }
                    while msgs.len() < BATCH
                        && let Ok(m) = rx.try_recv()
                    {
                        let flush = matches!(m, Msg::Flush(_));
                        msgs.push(m);
                        if flush {
                            break;
                        }
                    }
                }
                let mut flushed = Vec::new();
                for m in msgs.drain(..) {
                    match m {
                        Msg::Entry(e) => batch.push(e),
                        Msg::Flush(done) => flushed.push(done),
                    }
                }
                if !batch.is_empty() {
                    write(writer_store.as_ref(), &batch).await;
                    crate::metrics::audit_queue(-i64::try_from(batch.len()).unwrap_or(i64::MAX));
                    batch.clear();
                }
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        AuditWriter {
            tx,
            store,
            flush_now,
        }
    }

    pub(crate) fn sink(&self) -> AuditSink {
        AuditSink::Queued(self.tx.clone(), self.store.clone())
    }

    /// Returns once every entry queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            // After the send: the writer, lingering or about to, then finds the flush queued.
            self.flush_now.notify_one();
            let _ = wait.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::source::{DataSource, SourceState};
    use crate::store::{
        AuditFilter, AuditOutcome, CachedToken, MasterKey, RotationReport, SourceFilter, StoreError,
    };

    /// A store that keeps audit entries and is asked for nothing else.
    #[derive(Default)]
    struct AuditOnly(Mutex<Vec<AuditEntry>>);

    const ONLY_AUDIT: &str = "the audit writer only appends audit entries";

    #[async_trait]
    impl Store for AuditOnly {
        async fn create_data_source(&self, _: &DataSource) -> Result<(), StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn get_data_source(&self, _: &str) -> Result<Option<DataSource>, StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn get_data_source_by_id(&self, _: Uuid) -> Result<Option<DataSource>, StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn list_data_sources(&self, _: &SourceFilter) -> Result<Vec<DataSource>, StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn update_data_source(&self, _: &DataSource) -> Result<DataSource, StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn delete_data_source(&self, _: &str) -> Result<(), StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn set_active(&self, _: &str, _: bool) -> Result<(), StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn set_state(&self, _: &str, _: SourceState) -> Result<(), StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn record_test_result(
            &self,
            _: &str,
            _: SourceState,
            _: OffsetDateTime,
            _: Option<&str>,
        ) -> Result<(), StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn put_token(&self, _: Uuid, _: &CachedToken) -> Result<(), StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn get_token(&self, _: Uuid) -> Result<Option<CachedToken>, StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn delete_token(&self, _: Uuid) -> Result<(), StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(entry.clone());
            Ok(())
        }
        async fn list_audit(&self, _: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
        async fn rotate_master_key(&self, _: MasterKey) -> Result<RotationReport, StoreError> {
            unreachable!("{ONLY_AUDIT}")
        }
    }

    fn entry(n: u32) -> AuditEntry {
        AuditEntry {
            at: OffsetDateTime::now_utc(),
            source_code: "s".into(),
            endpoint: "http://registry.test/search".into(),
            action: "search".into(),
            message_id: None,
            transaction_id: None,
            http_status: Some(200),
            outcome: AuditOutcome::Ok,
            duration_ms: 1,
            attempt: n,
            error: None,
        }
    }

    /// A one-shot CLI run queues its entry and flushes at exit: the flush must not wait out
    /// the linger the writer started for that entry. With an hour's linger, a flush that
    /// waited would never return within the test's bound.
    #[tokio::test]
    async fn a_flush_cuts_a_linger_under_way_short_and_writes_everything() {
        let store = Arc::new(AuditOnly::default());
        let writer = AuditWriter::spawn_with(store.clone(), Duration::from_secs(3600));
        for n in 1..=3 {
            writer.sink().record(entry(n)).await;
        }
        // Until the writer has taken the entries (and so is lingering for more).
        while writer.tx.capacity() < QUEUE {
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(Duration::from_secs(60), writer.flush())
            .await
            .expect("the flush waited for the writer's linger to end");
        let written: Vec<u32> = store.0.lock().unwrap().iter().map(|e| e.attempt).collect();
        assert_eq!(written, [1, 2, 3]);
    }
}
