//! Bulk jobs in a long-lived process and their schedules (`dci serve`), built on [`crate::bulk`].
//!
//! - [`runner`]: [`JobRunner`] — an upload streamed to a file, the job run in the background
//!   through [`crate::bulk::run_job`], progress, cancel, results, and resume after a restart.
//! - [`schedule`]: [`Schedule`] (a job definition with a cron expression and an input file or
//!   URL), [`ScheduleRun`] (one row per occurrence), the catch-up policy ([`CatchUp`], [`due`])
//!   and the storage seam [`ScheduleStore`] (migration 0012).
//! - [`scheduler`]: [`Scheduler`] — the loop that claims each due occurrence (exactly one
//!   instance per occurrence) and starts its job.
//! - [`takeover`]: the runs of an instance that died, continued or run again by another.

pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod takeover;

pub use runner::{DEFAULT_MAX_UPLOAD, JobRequest, JobRunner, JobsError, Results, lease_is_free};
pub use schedule::{
    CatchUp, Due, ON_TIME, RunState, Schedule, ScheduleInput, ScheduleRun, ScheduleStore, due,
};
pub use scheduler::{
    AddScheduleError, DEFAULT_TAKEOVER_AFTER, Scheduler, Tick, add_schedule, remove_schedule,
};
