//! Bulk search: millions of identifiers against one data source, streaming both ways, with a
//! job and checkpoint in the store so a crash or Ctrl-C loses nothing.
//!
//! - [`io`]: streaming readers (CSV, JSONL, `TYPE:VALUE` lines) and writers (JSONL, CSV).
//! - [`job`]: the stored job ([`BulkJob`], [`JobSpec`], [`Checkpoint`]) and [`BulkStore`].
//! - [`lease`]: [`HeldLease`], the lease on a job's row that makes one process at a time run
//!   it (a second resume is refused with the holder's name; a dead holder's job is taken over).
//! - [`run`]: [`create_job`], [`run_job`] — batches of identifiers per envelope
//!   (`search_request[]`, at most the source's `limits.max_batch_size`) sent through
//!   [`crate::Operations::search`] (the engine's one path) under the source's
//!   [`crate::limits::Limiter`], answers written in input order, a checkpoint after each
//!   batch; [`Progress`] and [`Summary`] for the caller to show.
//!
//! Any caller (the CLI, a server job) creates a job, then runs it with its own progress
//! callback; the library owns the behaviour.

pub mod io;
pub mod job;
pub mod lease;
pub mod run;

pub use io::{
    Identifier, InputFormat, InputReader, InputRow, OutputFormat, OutputWriter, RowAnswer,
    RowOutcome, count_rows,
};
pub use job::{BulkJob, BulkStore, Checkpoint, JobLease, JobSpec, JobState};
pub use lease::{HeldLease, holder_is_dead, holder_name};
pub use run::{
    BulkError, Progress, RunOptions, Summary, create_job, prepare_job, resumable_job, run_job,
};
