//! Taking over the scheduled runs of an instance that died: part of each [`Scheduler`] tick.
//!
//! A run is orphaned when its job is unfinished, no live process holds the job's lease, and
//! the lease ended at least [`Scheduler::takeover_after`] ago (time for its own instance to
//! come back and continue from the checkpoint) — or when the run was claimed but its job never
//! started and its instance is gone. An instance whose directory holds the job's files resumes
//! it from its checkpoint ([`super::JobRunner::adopt`]); any other instance runs the occurrence
//! again from the schedule's input: it takes the old job's lease (so of several instances
//! exactly one proceeds), starts a new job and points the run at it in one transaction
//! (compare and set on the run's instance and job), then marks the old job `failed` with the
//! reason. A run whose job ended while its instance died before recording it is closed with
//! the job's outcome.

use std::time::Duration;

use time::OffsetDateTime;

use super::runner::lease_is_free;
use super::schedule::{RunState, Schedule, ScheduleRun};
use super::scheduler::Scheduler;
use crate::bulk::lease::later;
use crate::bulk::{BulkJob, JobState, holder_is_dead};
use crate::store::StoreError;

/// Runs looked at per schedule and tick (the latest occurrences).
const RECENT_RUNS: u32 = 20;

/// How long a claimed run may stay without a job before another instance takes it over (its
/// input is fetched in that time; a URL download may take up to ten minutes).
const STAGING_ALLOWANCE: Duration = Duration::from_secs(600);

/// What an unfinished run needs.
enum Orphan {
    /// Nothing: running here or elsewhere, or its own instance may still come back.
    No,
    /// Its job ended but the run was not closed (its instance died in between).
    Ended(JobState),
    /// No one runs it: run the occurrence again (the old job, if it has one).
    Yes(Option<Box<BulkJob>>),
}

impl Scheduler {
    /// Takes over the orphaned runs of `s` at `now`. Returns how many it started again.
    pub(super) async fn take_over_runs(
        &self,
        s: &Schedule,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let store = self.runner.engine().ops_store().clone();
        let mut n = 0;
        for run in store.list_schedule_runs(&s.id, RECENT_RUNS).await? {
            if run.state != RunState::Running {
                continue;
            }
            match self.orphan(&run, now).await? {
                Orphan::No => {}
                Orphan::Ended(state) => {
                    let (state, why) = match state {
                        JobState::Completed => (RunState::Completed, None),
                        JobState::Cancelled => (RunState::Cancelled, None),
                        _ => (RunState::Failed, Some("its job failed")),
                    };
                    if let Some(job) = &run.job_id {
                        store
                            .finish_schedule_run_of_job(job, state, why, now)
                            .await?;
                    }
                }
                Orphan::Yes(old) => {
                    if self.take_over(s, &run, old, now).await? {
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }

    async fn orphan(&self, run: &ScheduleRun, now: OffsetDateTime) -> Result<Orphan, StoreError> {
        let store = self.runner.engine().ops_store().clone();
        let Some(job_id) = &run.job_id else {
            // Claimed, job not started: the claimer is fetching the input, or died doing so.
            let gone = run.instance != self.instance()
                && (holder_is_dead(&run.instance)
                    || later(run.started_at, self.takeover_after + STAGING_ALLOWANCE) <= now);
            return Ok(if gone { Orphan::Yes(None) } else { Orphan::No });
        };
        let Some(job) = store.get_bulk_job(job_id).await? else {
            return Ok(Orphan::Yes(None));
        };
        if job.state.is_final() {
            return Ok(Orphan::Ended(job.state));
        }
        if self.runner.is_running(&job.id) || self.runner.owns(&job) || !lease_is_free(&job, now) {
            return Ok(Orphan::No);
        }
        let free_since = job
            .lease
            .as_ref()
            .and_then(|l| l.until)
            .unwrap_or(job.updated_at);
        let dead = job
            .lease
            .as_ref()
            .is_some_and(|l| holder_is_dead(&l.holder));
        if dead || later(free_since, self.takeover_after) <= now {
            Ok(Orphan::Yes(Some(Box::new(job))))
        } else {
            Ok(Orphan::No)
        }
    }

    /// Runs `run`'s occurrence again here. `Ok(false)`: another instance was first.
    async fn take_over(
        &self,
        s: &Schedule,
        run: &ScheduleRun,
        old: Option<Box<BulkJob>>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let store = self.runner.engine().ops_store().clone();
        let me = self.instance().to_owned();
        let previous = match &old {
            Some(job) => {
                // The old job's lease decides which instance proceeds.
                let stale = job.lease.as_ref().map(|l| l.holder.clone());
                let until = later(now, self.runner.lease());
                let lease = store
                    .take_bulk_lease(&job.id, &me, until, now, stale.as_deref())
                    .await?;
                if lease.is_none_or(|l| l.holder != me) {
                    return Ok(false);
                }
                stale.unwrap_or_else(|| run.instance.clone())
            }
            None => run.instance.clone(),
        };
        let why = format!(
            "taken over by {me} from {previous}, which stopped running it (its lease ended and its files are not reachable from here): the occurrence ran again from its input"
        );
        tracing::warn!(schedule = %s.id, from = %previous, "taking over a scheduled run whose instance stopped");
        let started = self.start(s, run, Some(&why)).await;
        let abandoned = match &started {
            Ok(true) => format!("abandoned: {why}"),
            Ok(false) => return Ok(false),
            Err(e) => {
                let failed = format!("{why}, but it could not start: {e}");
                store
                    .update_schedule_run(
                        &s.id,
                        run.occurrence_at,
                        None,
                        RunState::Failed,
                        Some(&failed),
                        Some(now),
                    )
                    .await?;
                format!("abandoned: {failed}")
            }
        };
        if let Some(job) = &old {
            store
                .set_bulk_job_state(&job.id, JobState::Failed, Some(&abandoned), now)
                .await?;
        }
        Ok(started.is_ok())
    }
}
