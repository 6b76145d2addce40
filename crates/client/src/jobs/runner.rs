//! [`JobRunner`]: bulk jobs run in the background of a long-lived process (`dci serve`), each
//! through the same [`bulk::run_job`] as `dci bulk search`. An uploaded input is streamed to a
//! file in the runner's directory (never held in memory), the results are written beside it,
//! and the job's checkpoint lives in the store, so after a restart
//! [`JobRunner::adopt`] continues every job of this directory that was still
//! running (or marks it `failed` with the reason when its files are gone).
//!
//! A job belongs to the runner whose directory holds its input: several instances on one
//! database each resume only the jobs whose files they can reach, never a `dci bulk` job of
//! the CLI, and only once the job's lease is free ([`crate::bulk::HeldLease`]): a job another
//! instance runs is left alone until that instance stops or dies ([`JobRunner::adopt`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::Engine;
use crate::bulk::{
    self, BulkError, BulkJob, InputFormat, JobSpec, JobState, OutputFormat, Progress, RunOptions,
};
use crate::jobs::schedule::RunState;
use crate::store::StoreError;

/// Why a job could not be created, found or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// Jobs need a directory for their files and this process has none.
    #[error(
        "background jobs are off: the server has no data directory for their files (set DCI_HOME)"
    )]
    NoDirectory,
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (or query parameter).
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The upload is larger than the runner accepts.
    #[error("the input is larger than {limit} bytes: split it into several jobs")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// No such job.
    #[error("no job {0:?}: list the jobs for their ids")]
    NotFound(String),
    /// The input could not be fetched (a schedule's URL or file).
    #[error("fetching the input {what}: {message}")]
    Fetch {
        /// The URL or path.
        what: String,
        /// Why.
        message: String,
    },
    /// Files of the job could not be written or read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The data source is unknown or disabled.
    #[error(transparent)]
    Engine(#[from] crate::EngineError),
    /// The bulk library refused the job.
    #[error(transparent)]
    Bulk(#[from] BulkError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JobsError {
    let what = what.into();
    move |source| JobsError::Io { what, source }
}

/// What a new job runs (besides its input).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// `csv`, `jsonl` or `lines`.
    pub input_format: Option<String>,
    /// `jsonl` (default) or `csv`.
    pub output_format: Option<String>,
    /// Identifiers per envelope (default: the source's `limits.max_batch_size`).
    pub batch_size: Option<u32>,
    /// `reg_record_type` of every search.
    pub record_type: Option<String>,
}

impl JobRequest {
    fn formats(&self) -> Result<(InputFormat, OutputFormat), JobsError> {
        let input = match &self.input_format {
            Some(f) => InputFormat::parse(f).ok_or_else(|| JobsError::Invalid {
                field: "input_format",
                message: format!("{f:?} is not a format: use csv, jsonl or lines"),
            })?,
            None => {
                return Err(JobsError::Invalid {
                    field: "input_format",
                    message: "is required: csv, jsonl or lines (or send Content-Type text/csv or application/x-ndjson)".into(),
                });
            }
        };
        let output = match &self.output_format {
            Some(f) => OutputFormat::parse(f).ok_or_else(|| JobsError::Invalid {
                field: "output_format",
                message: format!("{f:?} is not a format: use jsonl or csv"),
            })?,
            None => OutputFormat::Jsonl,
        };
        Ok((input, output))
    }
}

/// A job's results file, cut to the rows its checkpoint vouches for.
#[derive(Debug)]
pub struct Results {
    /// The job as stored when the file was opened.
    pub job: BulkJob,
    /// The file, at its start (`None`: no row answered yet, nothing written).
    pub file: Option<tokio::fs::File>,
    /// Bytes to send: the whole answered part of the output.
    pub len: u64,
}

/// Runs bulk jobs in the background (cheap to clone).
#[derive(Clone)]
pub struct JobRunner {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    dir: Option<PathBuf>,
    max_upload: u64,
    opts: RunOptions,
    live: Mutex<HashMap<String, Live>>,
    /// The client that fetches URL inputs, built at the first fetch and then reused (its
    /// pool, and the system's TLS roots loaded once per process).
    fetcher: std::sync::OnceLock<reqwest::Client>,
}

struct Live {
    abort: tokio::task::AbortHandle,
    progress: Option<Progress>,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// Default largest input accepted (1 GiB).
pub const DEFAULT_MAX_UPLOAD: u64 = 1 << 30;

impl JobRunner {
    /// A runner over `engine` whose job files live in `dir` (`None`: jobs are refused).
    pub fn new(engine: Engine, dir: Option<PathBuf>) -> JobRunner {
        JobRunner::with_limits(engine, dir, DEFAULT_MAX_UPLOAD, RunOptions::default())
    }

    /// [`JobRunner::new`] with the largest input and the retry options of every run.
    pub fn with_limits(
        engine: Engine,
        dir: Option<PathBuf>,
        max_upload: u64,
        opts: RunOptions,
    ) -> JobRunner {
        JobRunner {
            inner: Arc::new(Inner {
                engine,
                dir,
                max_upload,
                opts,
                live: Mutex::new(HashMap::new()),
                fetcher: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The name this runner holds its jobs' leases under (its instance in schedule runs).
    pub fn instance(&self) -> &str {
        &self.inner.opts.holder
    }

    /// How long its jobs' leases last unless renewed.
    pub fn lease(&self) -> std::time::Duration {
        self.inner.opts.lease
    }

    fn dir(&self) -> Result<&Path, JobsError> {
        self.inner.dir.as_deref().ok_or(JobsError::NoDirectory)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `job`'s files are in this runner's directory.
    pub fn owns(&self, job: &BulkJob) -> bool {
        match (&self.inner.dir, &job.spec.input) {
            (Some(d), Some(i)) => Path::new(i).starts_with(d),
            _ => false,
        }
    }

    /// Streams `body` to a new input file in the directory (at most the runner's upload
    /// limit; a larger body is refused and its file removed).
    pub async fn stage(
        &self,
        mut body: impl AsyncRead + Unpin,
        format: InputFormat,
    ) -> Result<PathBuf, JobsError> {
        let dir = self.dir()?;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(io(format!("creating the jobs directory {}", dir.display())))?;
        let ext = match format {
            InputFormat::Csv => "csv",
            InputFormat::Jsonl => "jsonl",
            InputFormat::Lines => "txt",
        };
        let path = dir.join(format!("{}.input.{ext}", uuid::Uuid::now_v7()));
        let what = format!("writing the input {}", path.display());
        let mut file = tokio::fs::File::create(&path).await.map_err(io(&what))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let result = async {
            loop {
                let n = body
                    .read(&mut buf)
                    .await
                    .map_err(io("reading the upload"))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > self.inner.max_upload {
                    return Err(JobsError::TooLarge {
                        limit: self.inner.max_upload,
                    });
                }
                file.write_all(&buf[..n]).await.map_err(io(&what))?;
            }
            file.flush().await.map_err(io(&what))?;
            file.sync_all().await.map_err(io(&what))
        }
        .await;
        if let Err(e) = result {
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        Ok(path)
    }

    /// Fetches an http(s) URL into a new input file (streamed, at most the upload limit).
    pub async fn stage_url(&self, url: &str, format: InputFormat) -> Result<PathBuf, JobsError> {
        let fetch = |message: String| JobsError::Fetch {
            what: url.to_owned(),
            message,
        };
        let client = self.fetcher().map_err(fetch)?;
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| fetch(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(fetch(format!("the server answered HTTP {}", resp.status())));
        }
        // The body arrives in chunks through a pipe, so `stage` writes it as it comes.
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let pump = async move {
            while let Some(chunk) = resp.chunk().await.map_err(|e| e.without_url())? {
                if tx.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            drop(tx);
            Ok::<_, reqwest::Error>(())
        };
        let (pumped, staged) = tokio::join!(pump, self.stage(rx, format));
        match (pumped, staged) {
            (Err(e), Ok(path)) => {
                let _ = tokio::fs::remove_file(&path).await;
                Err(fetch(e.to_string()))
            }
            (_, staged) => staged,
        }
    }

    /// The URL inputs' client: up to ten minutes per download, redirects followed (an input's
    /// address may move; the request carries no credentials).
    fn fetcher(&self) -> Result<&reqwest::Client, String> {
        if let Some(c) = self.inner.fetcher.get() {
            return Ok(c);
        }
        let b = reqwest::Client::builder()
            .user_agent(concat!("dci-jobs/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(600))
            .connect_timeout(std::time::Duration::from_secs(10));
        let built = crate::transport::with_system_roots(b)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(self.inner.fetcher.get_or_init(|| built))
    }

    /// Copies a local file into a new input file (so a resume reads what this run read, even if
    /// the original changes).
    pub async fn stage_file(&self, path: &Path, format: InputFormat) -> Result<PathBuf, JobsError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| JobsError::Fetch {
                what: path.display().to_string(),
                message: e.to_string(),
            })?;
        self.stage(file, format).await
    }

    /// Creates the job of a staged input on source `code` (not started: see [`Self::start`]).
    pub async fn create(
        &self,
        code: &str,
        input: &Path,
        req: &JobRequest,
    ) -> Result<BulkJob, JobsError> {
        let job = self.prepare(code, input, req).await?;
        if let Err(e) = self.inner.engine.ops_store().create_bulk_job(&job).await {
            let _ = tokio::fs::remove_file(input).await;
            return Err(e.into());
        }
        Ok(job)
    }

    /// The job [`Self::create`] would store for a staged input, not stored (for a caller that
    /// stores it in one transaction with something else). The input is removed if the job is
    /// refused.
    pub async fn prepare(
        &self,
        code: &str,
        input: &Path,
        req: &JobRequest,
    ) -> Result<BulkJob, JobsError> {
        let (input_format, output_format) = req.formats()?;
        let ops = self.inner.engine.operations(code).await?;
        let ext = match output_format {
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Csv => "csv",
        };
        let stem = input
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('.').next())
            .unwrap_or("job");
        let output = self.dir()?.join(format!("{stem}.results.{ext}"));
        let spec = JobSpec {
            input: Some(input.display().to_string()),
            input_format,
            output: Some(output.display().to_string()),
            output_format,
            batch_size: req
                .batch_size
                .unwrap_or_else(|| ops.source().limits.batch_size()),
            record_type: req.record_type.clone().filter(|t| !t.trim().is_empty()),
            total_rows: None,
            // Background jobs search synchronously.
            async_wait_secs: None,
        };
        match bulk::prepare_job(&ops, spec).await {
            Ok(job) => Ok(job),
            Err(e) => {
                let _ = tokio::fs::remove_file(input).await;
                Err(e.into())
            }
        }
    }

    /// Streams `body` to a file, creates the job and starts it.
    pub async fn submit(
        &self,
        code: &str,
        body: impl AsyncRead + Unpin,
        req: &JobRequest,
    ) -> Result<BulkJob, JobsError> {
        let (format, _) = req.formats()?;
        // Refuse an unknown source before reading the body.
        self.inner.engine.operations(code).await?;
        let path = self.stage(body, format).await?;
        let job = self.create(code, &path, req).await?;
        self.start(&job);
        Ok(job)
    }

    /// Runs `job` in the background until it completes, is cancelled or fails (then its state
    /// says `failed` with the reason). A job already running here is left alone.
    pub fn start(&self, job: &BulkJob) {
        let mut live = self.live();
        if live.contains_key(&job.id) {
            return;
        }
        let me = self.clone();
        let (id, code) = (job.id.clone(), job.source_code.clone());
        let task = tokio::spawn(async move {
            let outcome = me.run(&id, &code).await;
            let store = me.inner.engine.ops_store().clone();
            let now = OffsetDateTime::now_utc();
            let (state, reason) = match outcome {
                Ok(s) => (s.state, None),
                Err(JobsError::Bulk(
                    e @ (BulkError::Busy { .. } | BulkError::LeaseLost { .. }),
                )) => {
                    // Another instance runs it: its state and its schedule run are that one's.
                    tracing::info!(job = %id, why = %e, "bulk job left to the instance that holds it");
                    me.live().remove(&id);
                    return;
                }
                Err(e) => {
                    let reason = e.to_string();
                    tracing::warn!(job = %id, error = %reason, "bulk job failed");
                    let _ = store
                        .set_bulk_job_state(&id, JobState::Failed, Some(&reason), now)
                        .await;
                    let state = match store.get_bulk_job(&id).await {
                        Ok(Some(j)) => j.state,
                        _ => JobState::Failed,
                    };
                    (state, Some(reason))
                }
            };
            let run_state = match state {
                JobState::Completed => RunState::Completed,
                JobState::Cancelled => RunState::Cancelled,
                JobState::Failed | JobState::Running | JobState::Interrupted => RunState::Failed,
            };
            if let Err(e) = store
                .finish_schedule_run_of_job(&id, run_state, reason.as_deref(), now)
                .await
            {
                tracing::warn!(job = %id, error = %e, "could not record the end of a schedule's run");
            }
            me.live().remove(&id);
        });
        live.insert(
            job.id.clone(),
            Live {
                abort: task.abort_handle(),
                progress: None,
            },
        );
    }

    async fn run(&self, id: &str, code: &str) -> Result<bulk::Summary, JobsError> {
        let ops = self.inner.engine.operations(code).await?;
        let limiter = self.inner.engine.limiter(code).await?;
        let summary = bulk::run_job(&ops, id, &limiter, &self.inner.opts, None, |p| {
            if let Some(l) = self.live().get_mut(id) {
                l.progress = Some(p.clone());
            }
        })
        .await?;
        Ok(summary)
    }

    /// The latest progress of a job running here (rate, limiter and breaker state).
    pub fn progress(&self, id: &str) -> Option<Progress> {
        self.live().get(id).and_then(|l| l.progress.clone())
    }

    /// Whether a job is running in this runner.
    pub fn is_running(&self, id: &str) -> bool {
        self.live().contains_key(id)
    }

    /// Cancels a running job: its state becomes `cancelled` and, if it runs here, it stops at
    /// once. Returns `false` if it was already over.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<bool, JobsError> {
        let store = self.inner.engine.ops_store().clone();
        if store.get_bulk_job(id).await?.is_none() {
            return Err(JobsError::NotFound(id.to_owned()));
        }
        let now = OffsetDateTime::now_utc();
        let changed = store
            .set_bulk_job_state(id, JobState::Cancelled, Some(reason), now)
            .await?;
        if let Some(l) = self.live().remove(id) {
            l.abort.abort();
        }
        if changed {
            store
                .finish_schedule_run_of_job(id, RunState::Cancelled, Some(reason), now)
                .await?;
        }
        Ok(changed)
    }

    /// Stops every job running here at its last checkpoint (a server shutting down): each
    /// becomes `interrupted` with `reason`, which ends its lease, so the next start (or another
    /// instance reaching the same files) continues it at once ([`Self::adopt`]). Returns how
    /// many were stopped.
    pub async fn stop_all(&self, reason: &str) -> usize {
        let stopped: Vec<(String, Live)> = self.live().drain().collect();
        let store = self.inner.engine.ops_store().clone();
        let now = OffsetDateTime::now_utc();
        for (id, l) in &stopped {
            l.abort.abort();
            if let Err(e) = store
                .set_bulk_job_state(id, JobState::Interrupted, Some(reason), now)
                .await
            {
                tracing::warn!(job = %id, error = %e, "could not mark a stopped bulk job interrupted: it resumes once its lease runs out");
            }
        }
        stopped.len()
    }

    /// Starts every unfinished job whose files are in this directory and whose lease is free
    /// (its holder stopped it, died, or let the lease run out): after a restart, and while
    /// running, when an instance sharing the directory went away. Returns how many started.
    pub async fn adopt(&self) -> Result<usize, JobsError> {
        if self.inner.dir.is_none() {
            return Ok(0);
        }
        let store = self.inner.engine.ops_store().clone();
        let now = OffsetDateTime::now_utc();
        let mut n = 0;
        for job in store.list_open_bulk_jobs().await? {
            if self.owns(&job) && !self.is_running(&job.id) && lease_is_free(&job, now) {
                tracing::info!(job = %job.id, rows_done = job.checkpoint.rows_done, "resuming a bulk job no instance runs");
                self.start(&job);
                n += 1;
            }
        }
        Ok(n)
    }

    /// A job's results: the output file and how many bytes of it hold answered rows (for a
    /// running job, up to its last checkpoint).
    pub async fn results(&self, id: &str) -> Result<Results, JobsError> {
        let store = self.inner.engine.ops_store().clone();
        let job = store
            .get_bulk_job(id)
            .await?
            .ok_or_else(|| JobsError::NotFound(id.to_owned()))?;
        let Some(output) = job.spec.output.clone() else {
            return Err(JobsError::Invalid {
                field: "id",
                message: "this job wrote standard output (a dci bulk run): its results are where that went".into(),
            });
        };
        let file = match tokio::fs::File::open(&output).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && job.checkpoint.rows_done == 0 => {
                // Not started yet: no rows, no file.
                return Ok(Results {
                    job,
                    file: None,
                    len: 0,
                });
            }
            Err(e) => return Err(io(format!("opening the results {output}"))(e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(io(format!("reading the results {output}")))?
            .len();
        let len = size.min(job.checkpoint.output_offset);
        Ok(Results {
            job,
            file: Some(file),
            len,
        })
    }
}

/// Whether no live process holds `job`'s lease at `now`: never taken, ended, expired, or held
/// by a process of this machine that is gone.
pub fn lease_is_free(job: &BulkJob, now: OffsetDateTime) -> bool {
    job.lease
        .as_ref()
        .is_none_or(|l| l.is_free(now) || bulk::holder_is_dead(&l.holder))
}
