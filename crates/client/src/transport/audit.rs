//! Where audit entries go: straight to the store (a client built on its own), or through an
//! [`AuditWriter`] task that batches them off the call's critical path (the engine's way).
//!
//! The writer keeps every entry: the queue is bounded, and when it is full the call waits for
//! room rather than dropping the entry. [`AuditWriter::flush`] returns once everything queued
//! before it is stored, so a clean shutdown loses nothing.
//!
//! Under load the writer lingers [`LINGER`] after the first entry of a batch before writing,
//! so a burst becomes one batch (one commit) instead of one per wake-up, and the writer wakes
//! a few hundred times a second at most instead of once per call. A flush never lingers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

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
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn spawn(store: Arc<dyn Store>) -> AuditWriter {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let writer_store = store.clone();
        tokio::spawn(async move {
            let mut msgs = Vec::with_capacity(BATCH);
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut msgs, BATCH).await > 0 {
                if msgs.len() < BATCH && !msgs.iter().any(|m| matches!(m, Msg::Flush(_))) {
                    tokio::time::sleep(LINGER).await;
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
        AuditWriter { tx, store }
    }

    pub(crate) fn sink(&self) -> AuditSink {
        AuditSink::Queued(self.tx.clone(), self.store.clone())
    }

    /// Returns once every entry queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}
