//! Running a bulk job: read a batch of rows, send it as one search envelope through
//! [`Operations::search`] under the source's [`Limiter`], write the answers in input order,
//! save the checkpoint; repeat until the input ends, the job is cancelled or the caller drops
//! the future (Ctrl-C). Batches run in spawned tasks, at most the limiter's concurrency at a
//! time, so memory holds those batches and nothing more of the input.
//!
//! A transient failure (connection, timeout, HTTP 429 / 5xx, after the transport's own
//! retries) is tried again, up to [`RunOptions::max_attempts`] in all; each try counts for the
//! circuit breaker, which holds every batch back while it is open. Any other failure is the
//! answer of the batch's rows: `error` with the registry's reason.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use time::OffsetDateTime;

use crate::limits::{BreakerEvent, Limiter, LimiterStats, is_transient};
use crate::ops::{OpsError, SearchQuery, SearchSpec};
use crate::store::StoreError;
use crate::{LimitSettings, Operations};
use dci_protocol::message::Query;

use super::io::{InputReader, InputRow, OutputWriter, RowAnswer, RowOutcome};
use super::job::{BulkJob, BulkStore, Checkpoint, JobSpec, JobState};
use super::lease::HeldLease;

/// Why a run stopped without finishing (a row's failure is its answer, never this).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BulkError {
    /// The job's settings are invalid: `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No such job.
    #[error("no bulk job {0:?} in this store: list them with their ids")]
    NotFound(String),
    /// The job cannot be run (finished, cancelled, or it read standard input).
    #[error("bulk job {id}: {message}")]
    NotResumable {
        /// The job.
        id: String,
        /// Why.
        message: String,
    },
    /// Another process runs the job now (its lease is not free).
    #[error(
        "bulk job {id} is being run by {holder}{}: wait for that run to end (or for its lease to run out if it died), or cancel the job",
        until.map(|u| format!(" (its lease runs until {u}, renewed while it runs)")).unwrap_or_default()
    )]
    Busy {
        /// The job.
        id: String,
        /// The lease holder.
        holder: String,
        /// Its lease's end.
        until: Option<OffsetDateTime>,
    },
    /// This run lost the job's lease to another process (it stalled past the lease's end);
    /// it stopped without writing further.
    #[error(
        "bulk job {id}: {holder} took the job over while this run was stalled past its lease; this run stopped and the other continues"
    )]
    LeaseLost {
        /// The job.
        id: String,
        /// The new holder.
        holder: String,
    },
    /// Reading the input or writing the output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data source is unusable.
    #[error(transparent)]
    Ops(#[from] OpsError),
}

impl BulkError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BulkError {
        let what = what.into();
        move |source| BulkError::Io { what, source }
    }

    /// Whether the caller's input was at fault.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            BulkError::Invalid { .. } | BulkError::NotResumable { .. }
        ) || matches!(self, BulkError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidData)
    }
}

/// How a run behaves (not stored: a resume may choose again).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tries of a batch that fails transiently, the first included (default 3).
    pub max_attempts: u32,
    /// Pause before trying a batch again (default 500 ms).
    pub retry_pause: Duration,
    /// The name this run holds the job's lease under (default: a new
    /// [`super::lease::holder_name`]).
    pub holder: String,
    /// How long the job's lease lasts unless renewed (default
    /// [`super::lease::DEFAULT_LEASE`]); after a crash another process may take the job over
    /// once it ends.
    pub lease: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            max_attempts: 3,
            retry_pause: Duration::from_millis(500),
            holder: super::lease::holder_name(),
            lease: super::lease::DEFAULT_LEASE,
        }
    }
}

/// Where a run is, after each batch.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The job.
    pub job_id: String,
    /// Rows answered (all runs).
    pub done: u64,
    /// Rows in the input, if counted.
    pub total: Option<u64>,
    /// Rows answered `found`.
    pub found: u64,
    /// Rows answered `not_found`.
    pub not_found: u64,
    /// Rows answered `error`.
    pub errors: u64,
    /// Envelopes sent again after a transient failure.
    pub retries: u64,
    /// Rows answered per second in this run.
    pub rate: f64,
    /// Seconds this run has taken.
    pub elapsed_secs: f64,
    /// The limiter's counters and the breaker's state.
    pub limits: LimiterStats,
    /// The breaker's changes since the last progress.
    pub breaker_events: Vec<BreakerEvent>,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The job.
    pub job_id: String,
    /// Its state after the run.
    pub state: JobState,
    /// Rows answered (all runs).
    pub rows: u64,
    /// Rows in the input, if counted.
    pub total: Option<u64>,
    /// Rows answered `found`.
    pub found: u64,
    /// Rows answered `not_found`.
    pub not_found: u64,
    /// Rows answered `error`.
    pub errors: u64,
    /// Envelopes sent again after a transient failure (all runs).
    pub retries: u64,
    /// Envelopes sent (all runs).
    pub batches_sent: u64,
    /// Rows answered in this run.
    pub rows_this_run: u64,
    /// Seconds this run took.
    pub duration_secs: f64,
    /// The limiter's counters.
    pub limits: LimiterStats,
    /// Runs of the job.
    pub runs: u32,
}

impl Summary {
    /// Whether every row got an answer that is not `error` and the job completed.
    pub fn all_answered(&self) -> bool {
        self.state == JobState::Completed && self.errors == 0
    }
}

/// Creates a job for `spec` on `ops`'s source: [`prepare_job`], then stored.
pub async fn create_job(ops: &Operations, spec: JobSpec) -> Result<BulkJob, BulkError> {
    let job = prepare_job(ops, spec).await?;
    ops.store().create_bulk_job(&job).await?;
    Ok(job)
}

/// The job `spec` would be on `ops`'s source, not stored yet (for a caller that stores it in
/// one transaction with something else): the batch size checked against the source's limit,
/// the input (when a file) counted, for progress.
pub async fn prepare_job(ops: &Operations, mut spec: JobSpec) -> Result<BulkJob, BulkError> {
    let max = ops.source().limits.batch_size();
    if spec.batch_size == 0 || spec.batch_size > max.min(LimitSettings::MAX_BATCH_SIZE) {
        return Err(BulkError::Invalid {
            field: "batch_size".into(),
            message: format!(
                "must be from 1 to {max} (the data source's limits.max_batch_size): use e.g. {}",
                max.min(100)
            ),
        });
    }
    if let Some(path) = &spec.input {
        let p = Path::new(path).to_owned();
        let format = spec.input_format;
        let n = tokio::task::spawn_blocking(move || super::io::count_rows(&p, format))
            .await
            .map_err(|e| {
                BulkError::io(format!("reading the input {path}"))(std::io::Error::other(e))
            })?
            .map_err(BulkError::io(format!("reading the input {path}")))?;
        spec.total_rows = Some(n);
    }
    let now = OffsetDateTime::now_utc();
    let job = BulkJob {
        id: uuid::Uuid::now_v7().to_string(),
        source_code: ops.source().code.clone(),
        state: JobState::Running,
        spec,
        checkpoint: Checkpoint::default(),
        reason: None,
        created_at: now,
        updated_at: now,
        lease: None,
    };
    Ok(job)
}

/// Loads a job that can be run again from its checkpoint.
pub async fn resumable_job(ops: &Operations, id: &str) -> Result<BulkJob, BulkError> {
    let job = ops
        .store()
        .get_bulk_job(id)
        .await?
        .ok_or_else(|| BulkError::NotFound(id.to_owned()))?;
    if job.state.is_final() {
        return Err(BulkError::NotResumable {
            id: id.to_owned(),
            message: format!("it is {}: nothing to resume", job.state),
        });
    }
    if let Some(why) = job.spec.not_resumable() {
        return Err(BulkError::NotResumable {
            id: id.to_owned(),
            message: format!("{why}; start a new job"),
        });
    }
    Ok(job)
}

/// One batch: rows read, the valid ones sent together.
struct Batch {
    rows: Vec<InputRow>,
}

struct BatchDone {
    answers: Vec<RowAnswer>,
    sends: u64,
    retries: u64,
}

fn read_batch(reader: &mut InputReader, size: usize) -> std::io::Result<Option<Batch>> {
    let mut rows = Vec::with_capacity(size);
    let mut valid = 0;
    while valid < size {
        match reader.next() {
            None => break,
            Some(r) => {
                let r = r?;
                if r.id.is_ok() {
                    valid += 1;
                }
                rows.push(r);
            }
        }
    }
    Ok((!rows.is_empty()).then_some(Batch { rows }))
}

fn is_not_found_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| {
        c.ends_with("not_found") || c.ends_with("no_record") || c.ends_with("no_records")
    })
}

async fn send_batch(
    ops: Operations,
    limiter: Limiter,
    batch: Batch,
    record_type: Option<String>,
    async_wait: Option<Duration>,
    opts: RunOptions,
) -> BatchDone {
    let specs: Vec<SearchSpec> = batch
        .rows
        .iter()
        .filter_map(|r| {
            let id = r.id.as_ref().ok()?;
            let mut s = SearchSpec::new(Query::id(
                id.id_type.clone(),
                serde_json::Value::String(id.id_value.clone()),
            ))
            .reference_id(r.line.to_string());
            if let Some(t) = &record_type {
                s = s.record_type(t.clone());
            }
            Some(s)
        })
        .collect();
    let (mut sends, mut retries) = (0, 0);
    let result = if specs.is_empty() {
        None
    } else {
        let q = SearchQuery::many(specs);
        let mut attempt = 1;
        loop {
            let pass = limiter.acquire().await;
            sends += 1;
            let answer = match async_wait {
                None => ops.search(&q).await.map(|r| {
                    let pending = r.is_pending();
                    (r.items, pending)
                }),
                Some(wait) => search_async(&ops, &q, wait).await,
            };
            match answer {
                Ok(r) => {
                    pass.succeeded();
                    break Some(Ok(r));
                }
                Err(e) => {
                    let again = is_transient(&e) && attempt < opts.max_attempts.max(1);
                    pass.failed(&e);
                    if !again {
                        break Some(Err(e));
                    }
                    attempt += 1;
                    retries += 1;
                    tokio::time::sleep(opts.retry_pause).await;
                }
            }
        }
    };
    let mut by_ref = HashMap::new();
    let mut whole: Option<RowOutcome> = None;
    match result {
        None => {}
        Some(Ok((_, true))) => {
            whole = Some(RowOutcome::Error {
                code: None,
                message: "the registry received the search but has not answered yet (rcvd/pdng): run this row again later".into(),
            });
        }
        Some(Ok((items, false))) => {
            for item in items {
                let outcome = if item.is_success() {
                    if item.records.is_empty() {
                        RowOutcome::NotFound
                    } else {
                        RowOutcome::Found(item.records)
                    }
                } else if is_not_found_code(item.reason.as_ref().and_then(|r| r.code.as_deref())) {
                    RowOutcome::NotFound
                } else {
                    RowOutcome::from_registry(
                        item.reason.as_ref(),
                        format!(
                            "the registry answered this item with status {}",
                            item.status
                        ),
                    )
                };
                by_ref.insert(item.reference_id, outcome);
            }
        }
        Some(Err(e)) => {
            let reason = e.registry_error();
            whole = Some(
                if is_not_found_code(reason.and_then(|r| r.code.as_deref())) {
                    RowOutcome::NotFound
                } else {
                    RowOutcome::from_registry(reason, e.to_string())
                },
            );
        }
    }
    let answers = batch
        .rows
        .into_iter()
        .map(|row| {
            let outcome =
                match &row.id {
                    Err(why) => RowOutcome::Error {
                        code: Some("input.invalid".into()),
                        message: why.clone(),
                    },
                    Ok(_) => match &whole {
                        Some(o) => o.clone(),
                        None => by_ref.remove(&row.line.to_string()).unwrap_or_else(|| {
                            RowOutcome::Error {
                                code: None,
                                message:
                                    "the registry's answer had no item for this row's reference_id"
                                        .into(),
                            }
                        }),
                    },
                };
            RowAnswer { row, outcome }
        })
        .collect();
    BatchDone {
        answers,
        sends,
        retries,
    }
}

/// An async search of one batch: submitted (stored first), then its result awaited through the
/// store. A lost reply (outcome unknown) is not sent again: its transaction is awaited like an
/// acknowledged one (its callback, or the txn-status lookup, settles it).
async fn search_async(
    ops: &Operations,
    q: &SearchQuery,
    wait: Duration,
) -> Result<(Vec<crate::ops::SearchItemResult>, bool), OpsError> {
    let txn = match ops.submit_search_async(q).await {
        Ok(sub) => sub.transaction_id,
        Err(OpsError::OutcomeUnknown { transaction_id, .. }) => transaction_id,
        Err(e) => return Err(e),
    };
    match ops.await_transaction(&txn, wait).await {
        Ok(view) if view.state == crate::ops::TransactionState::Failed => Err(match view.error {
            Some(r) => OpsError::Rejected(r),
            None => OpsError::Rejected(crate::error::RegistryError {
                code: None,
                message: Some(
                    view.reason
                        .unwrap_or_else(|| format!("transaction {txn} failed")),
                ),
            }),
        }),
        Ok(view) => Ok((view.items, false)),
        Err(e) => Err(e),
    }
}

/// Runs (or resumes) job `id` until its input ends, it is cancelled, or the future is dropped.
/// `input`/`output`: the streams of a job that reads standard input or writes standard output
/// (`None`: open the job's files at its checkpoint — the output cut back to it). `progress` is
/// called after every batch.
pub async fn run_job(
    ops: &Operations,
    id: &str,
    limiter: &Limiter,
    opts: &RunOptions,
    streams: Option<(InputReader, OutputWriter)>,
    progress: impl FnMut(&Progress),
) -> Result<Summary, BulkError> {
    let store = ops.store().clone();
    let bulk_store: std::sync::Arc<dyn BulkStore> = store.clone();
    // The lease first, then the job: its checkpoint is the one the last holder left.
    let lease = HeldLease::take(bulk_store, id, &opts.holder, opts.lease).await?;
    let result = async {
        let job = match &streams {
            Some(_) => store
                .get_bulk_job(id)
                .await?
                .ok_or_else(|| BulkError::NotFound(id.to_owned()))?,
            None => resumable_job(ops, id).await?,
        };
        run_held(ops, job, limiter, opts, streams, &lease, progress).await
    }
    .await;
    if !lease.is_lost()
        && let Err(e) = lease.release().await
    {
        tracing::warn!(job = %id, error = %e, "could not end a bulk job's lease: it runs out by itself");
    }
    result
}

async fn run_held(
    ops: &Operations,
    mut job: BulkJob,
    limiter: &Limiter,
    opts: &RunOptions,
    streams: Option<(InputReader, OutputWriter)>,
    lease: &HeldLease,
    mut progress: impl FnMut(&Progress),
) -> Result<Summary, BulkError> {
    let store = ops.store().clone();
    let id = job.id.clone();
    let id = id.as_str();
    if job.state == JobState::Interrupted {
        // Resumed after a signal: running again (a checkpoint is saved only while running).
        store
            .set_bulk_job_state(id, JobState::Running, None, OffsetDateTime::now_utc())
            .await?;
        job.state = JobState::Running;
        job.reason = None;
    }
    let (mut reader, mut writer) = match streams {
        Some(s) => s,
        None => open_files(&job)?,
    };
    let started = Instant::now();
    let mut cp = job.checkpoint;
    cp.runs += 1;
    let start_rows = cp.rows_done;
    let batch_size = job.spec.batch_size.max(1) as usize;
    let concurrency = ops.source().limits.concurrency().max(1) as usize;
    let mut inflight = FuturesOrdered::new();
    let mut eof = false;
    let mut state = JobState::Running;
    loop {
        while !eof && inflight.len() < concurrency {
            match read_batch(&mut reader, batch_size).map_err(BulkError::io("reading the input"))? {
                Some(b) => inflight.push_back(Task(tokio::spawn(send_batch(
                    ops.clone(),
                    limiter.clone(),
                    b,
                    job.spec.record_type.clone(),
                    job.spec.async_wait_secs.map(Duration::from_secs),
                    opts.clone(),
                )))),
                None => eof = true,
            }
        }
        let Some(done) = inflight.next().await else {
            break;
        };
        // Every batch answered by now is written before the one checkpoint that covers them
        // all, so that at batch size 1 the store's write is not paid per row. A crash still
        // re-sends at most the batches in flight: none is counted before its answers are out.
        let mut wrote = absorb(&mut writer, &mut cp, done)?;
        while let Some(Some(more)) = inflight.next().now_or_never() {
            wrote |= absorb(&mut writer, &mut cp, more)?;
        }
        if !wrote {
            continue;
        }
        cp.output_offset = writer
            .flush()
            .map_err(BulkError::io("writing the output"))?;
        let saved = store
            .save_bulk_checkpoint(id, lease.holder(), &cp, OffsetDateTime::now_utc())
            .await?;
        if let Some((_, Some(holder))) = &saved
            && holder != lease.holder()
        {
            return Err(BulkError::LeaseLost {
                id: id.to_owned(),
                holder: holder.clone(),
            });
        }
        let now_state = saved.map(|(s, _)| s);
        let elapsed = started.elapsed().as_secs_f64();
        progress(&Progress {
            job_id: id.to_owned(),
            done: cp.rows_done,
            total: job.spec.total_rows,
            found: cp.found,
            not_found: cp.not_found,
            errors: cp.errors,
            retries: cp.retries,
            rate: (cp.rows_done - start_rows) as f64 / elapsed.max(1e-9),
            elapsed_secs: elapsed,
            limits: limiter.stats(),
            breaker_events: limiter.take_events(),
        });
        if now_state != Some(JobState::Running) {
            // Cancelled (or removed) meanwhile: stop; the in-flight batches are dropped.
            state = now_state.unwrap_or(JobState::Cancelled);
            break;
        }
    }
    if state == JobState::Running {
        state = JobState::Completed;
        store
            .set_bulk_job_state(id, JobState::Completed, None, OffsetDateTime::now_utc())
            .await?;
    }
    job.checkpoint = cp;
    Ok(Summary {
        job_id: id.to_owned(),
        state,
        rows: cp.rows_done,
        total: job.spec.total_rows,
        found: cp.found,
        not_found: cp.not_found,
        errors: cp.errors,
        retries: cp.retries,
        batches_sent: cp.batches_sent,
        rows_this_run: cp.rows_done - start_rows,
        duration_secs: started.elapsed().as_secs_f64(),
        limits: limiter.stats(),
        runs: cp.runs,
    })
}

/// Writes a finished batch's answers and counts them into `cp` (its input position included);
/// `false` for a batch without answers, which changes nothing.
fn absorb(
    writer: &mut OutputWriter,
    cp: &mut Checkpoint,
    done: Result<BatchDone, tokio::task::JoinError>,
) -> Result<bool, BulkError> {
    let done = done.map_err(|e| BulkError::io("a batch task")(std::io::Error::other(e)))?;
    let Some(last) = done.answers.last() else {
        return Ok(false);
    };
    let (end_offset, last_line) = (last.row.end_offset, last.row.line);
    for a in &done.answers {
        writer
            .write(a)
            .map_err(BulkError::io("writing the output"))?;
        match a.outcome {
            RowOutcome::Found(_) => cp.found += 1,
            RowOutcome::NotFound => cp.not_found += 1,
            RowOutcome::Error { .. } => cp.errors += 1,
        }
    }
    cp.rows_done += done.answers.len() as u64;
    cp.batches_sent += done.sends;
    cp.retries += done.retries;
    cp.input_offset = end_offset;
    cp.input_line = last_line;
    Ok(true)
}

/// A spawned batch, aborted when dropped (a run dropped by its caller stops sending).
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for Task<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The job's input at its checkpoint and its output cut back to it.
fn open_files(job: &BulkJob) -> Result<(InputReader, OutputWriter), BulkError> {
    let (Some(input), Some(output)) = (&job.spec.input, &job.spec.output) else {
        return Err(BulkError::NotResumable {
            id: job.id.clone(),
            message: "it has no input or output file".into(),
        });
    };
    let cp = &job.checkpoint;
    let reader = InputReader::open(
        Path::new(input),
        job.spec.input_format,
        cp.input_offset,
        cp.input_line,
    )
    .map_err(BulkError::io(format!("opening the input {input}")))?;
    let writer = OutputWriter::resume(
        Path::new(output),
        job.spec.output_format,
        reader.extra_columns().to_vec(),
        cp.output_offset,
    )
    .map_err(BulkError::io(format!("opening the output {output}")))?;
    Ok((reader, writer))
}
