//! A bulk job as stored: what it runs ([`JobSpec`]), where it is ([`Checkpoint`]) and its
//! state, and the storage seam [`BulkStore`] that `dci-store` implements for SQLite and
//! PostgreSQL (migration 0007). A supertrait of [`crate::ops::OpsStore`], so every operations
//! store holds jobs too.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::store::StoreError;

use super::io::{InputFormat, OutputFormat};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Being run, or stopped without a word (crash, `kill -9`): `dci bulk resume` continues it.
    Running,
    /// Stopped by a signal (Ctrl-C, SIGTERM) after its last checkpoint was saved; the reason
    /// says which. Resumable like `running`.
    Interrupted,
    /// Every row answered (some answers may be `error`).
    Completed,
    /// Cancelled: not resumed.
    Cancelled,
    /// Stopped by a failure that is not a row's (input unreadable, output not writable).
    Failed,
}

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Interrupted => "interrupted",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "running" => JobState::Running,
            "interrupted" => JobState::Interrupted,
            "completed" => JobState::Completed,
            "cancelled" => JobState::Cancelled,
            "failed" => JobState::Failed,
            _ => return None,
        })
    }

    /// Whether the job is over (not resumable).
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Running | JobState::Interrupted)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a job runs: fixed when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The input file (absolute path). A job reading standard input cannot be resumed.
    pub input: Option<String>,
    /// Its format.
    pub input_format: InputFormat,
    /// The output file (absolute path); `None`: standard output (not resumable either).
    pub output: Option<String>,
    /// Its format.
    pub output_format: OutputFormat,
    /// Identifiers per envelope (at most the source's `limits.max_batch_size`).
    pub batch_size: u32,
    /// `reg_record_type` of every search, if set.
    pub record_type: Option<String>,
    /// Rows in the input, when counted before the run.
    pub total_rows: Option<u64>,
    /// `None`: sync searches. `Some(secs)`: async searches — each batch is submitted (stored
    /// before it is sent) and its callback awaited through the store (received by `dci serve`
    /// or a receiver in the same process), at most this many seconds per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_wait_secs: Option<u64>,
}

impl JobSpec {
    /// Why a job with this spec can never be resumed (its input was standard input or its
    /// output standard output, neither of which can be read again), or `None` if it can be.
    /// Names the spec's fields, so every front end can say it before a run and in a resume
    /// error.
    pub fn not_resumable(&self) -> Option<&'static str> {
        match (self.input.is_none(), self.output.is_none()) {
            (false, false) => None,
            (true, false) => Some(
                "its input is standard input, which cannot be read again: to be resumable, a job's input must be a file",
            ),
            (false, true) => Some(
                "its output is standard output, which cannot be cut back to a checkpoint: to be resumable, a job's output must be a file",
            ),
            (true, true) => Some(
                "its input is standard input and its output standard output, neither of which can be read again: to be resumable, a job's input and output must be files",
            ),
        }
    }
}

/// How far a job got: every row before `rows_done` has its output row written before
/// `output_offset`, and the input continues at `input_offset`. Saved after each batch whose
/// rows are written (in input order), so a resume re-sends at most the batches that were in
/// flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Checkpoint {
    /// Input rows answered (output written).
    pub rows_done: u64,
    /// Byte offset in the input after those rows.
    pub input_offset: u64,
    /// Physical input line of the last answered row (line numbers of the rows after it follow).
    pub input_line: u64,
    /// Byte length of the output holding exactly those rows' answers.
    pub output_offset: u64,
    /// Rows answered `found`.
    pub found: u64,
    /// Rows answered `not_found`.
    pub not_found: u64,
    /// Rows answered `error`.
    pub errors: u64,
    /// Envelopes sent (first attempts and retries, every run of the job).
    pub batches_sent: u64,
    /// Envelopes sent again after a transient failure.
    pub retries: u64,
    /// Runs of the job (1 + resumes).
    pub runs: u32,
}

/// A stored bulk job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkJob {
    /// Its id (a UUID v7).
    pub id: String,
    /// The data source searched.
    pub source_code: String,
    /// Its state.
    pub state: JobState,
    /// What it runs.
    pub spec: JobSpec,
    /// How far it got.
    pub checkpoint: Checkpoint,
    /// Why it failed or was cancelled, if it did.
    pub reason: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change (checkpoint or state).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The process that runs it (or ran it last), and until when (`None`: never run).
    #[serde(default)]
    pub lease: Option<JobLease>,
}

/// Who runs a job: a process holds its lease, renews it while the job runs and ends it when
/// the job stops, so no other process runs the job at the same time (see
/// [`super::lease::HeldLease`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLease {
    /// The holder's name (`host:pid:random:pid-namespace`, see [`super::lease::holder_name`]).
    pub holder: String,
    /// When the lease ends unless renewed (`None`: ended when the job stopped).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub until: Option<OffsetDateTime>,
}

impl JobLease {
    /// Whether another process may take the lease at `now`.
    pub fn is_free(&self, now: OffsetDateTime) -> bool {
        self.until.is_none_or(|u| u <= now)
    }
}

/// Storage of bulk jobs. Object safe.
#[async_trait]
pub trait BulkStore: Send + Sync {
    /// Stores a new job. Fails if the id exists.
    async fn create_bulk_job(&self, job: &BulkJob) -> Result<(), StoreError>;

    /// One job.
    async fn get_bulk_job(&self, id: &str) -> Result<Option<BulkJob>, StoreError>;

    /// Jobs, newest first, at most `limit`.
    async fn list_bulk_jobs(&self, limit: u32) -> Result<Vec<BulkJob>, StoreError>;

    /// Every job not finished (`running` or `interrupted`), oldest first.
    async fn list_open_bulk_jobs(&self) -> Result<Vec<BulkJob>, StoreError>;

    /// Saves the checkpoint of a `running` job whose lease `holder` holds. Returns the job's
    /// state and lease holder after the call (a job cancelled meanwhile keeps its checkpoint
    /// and says `cancelled`, a job another process took over keeps the checkpoint that process
    /// wrote and names it, so the run stops), or `None` if the job is unknown.
    async fn save_bulk_checkpoint(
        &self,
        id: &str,
        holder: &str,
        checkpoint: &Checkpoint,
        at: OffsetDateTime,
    ) -> Result<Option<(JobState, Option<String>)>, StoreError>;

    /// Takes job `id`'s lease for `holder` until `until` if it is free at `now`: no holder,
    /// ended or expired, already `holder`'s (a renewal), or held by `stale` (a holder the
    /// caller knows is dead). Decided by the database in one statement, so of several
    /// processes exactly one takes it. Returns the lease as it stands after the call, or
    /// `None` if the job is unknown.
    async fn take_bulk_lease(
        &self,
        id: &str,
        holder: &str,
        until: OffsetDateTime,
        now: OffsetDateTime,
        stale: Option<&str>,
    ) -> Result<Option<JobLease>, StoreError>;

    /// Ends `holder`'s lease of job `id` (nothing when another process holds it).
    async fn release_bulk_lease(&self, id: &str, holder: &str) -> Result<(), StoreError>;

    /// Moves a job to `state` with `reason`, unless it is already final. Any state but
    /// `running` ends the job's lease. Returns `false` if unknown or already final.
    async fn set_bulk_job_state(
        &self,
        id: &str,
        state: JobState,
        reason: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}
