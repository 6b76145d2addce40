//! [`Scheduler`]: the loop of `dci serve` that runs schedules. Each tick it asks every enabled
//! schedule what is [`due`] since its latest handled occurrence, claims that occurrence in the
//! store (one row per occurrence, so of several instances on one database exactly one wins),
//! fetches the input (a file copied, or a URL downloaded, into the runner's directory) and
//! hands the job to the [`JobRunner`]; the runner records the run's outcome when the job ends.
//! A missed occurrence after downtime follows the schedule's [`crate::jobs::CatchUp`] policy.
//! Each tick also continues the jobs no instance runs any more: those whose files are here
//! ([`JobRunner::adopt`]) and the runs of instances that died ([`super::takeover`]).

use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use super::runner::{JobRequest, JobRunner, JobsError};
use super::schedule::{Due, RunState, Schedule, ScheduleRun, due};
use crate::store::StoreError;

/// Runs schedules through a [`JobRunner`].
#[derive(Debug, Clone)]
pub struct Scheduler {
    pub(super) runner: JobRunner,
    tick: Duration,
    pub(super) takeover_after: Duration,
}

/// How long after a run's job lease ended (its instance stopped or died) another instance
/// runs the occurrence again, by default: time for the instance to come back and continue
/// from its checkpoint first.
pub const DEFAULT_TAKEOVER_AFTER: Duration = Duration::from_secs(60);

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Occurrences this instance claimed and started.
    pub started: u32,
    /// Occurrences this instance recorded as missed.
    pub missed: u32,
    /// Occurrences this instance claimed whose input or job failed to start.
    pub failed: u32,
    /// Runs of instances that died that this instance took over.
    pub taken_over: u32,
    /// Jobs whose files are here that this instance resumed.
    pub adopted: u32,
}

impl Scheduler {
    /// A scheduler checking every `tick`, named as its runner's instance.
    pub fn new(runner: JobRunner, tick: Duration) -> Scheduler {
        Scheduler {
            runner,
            tick,
            takeover_after: DEFAULT_TAKEOVER_AFTER,
        }
    }

    /// Takes over a dead instance's run `after` its job's lease ended (default
    /// [`DEFAULT_TAKEOVER_AFTER`]).
    pub fn takeover_after(mut self, after: Duration) -> Scheduler {
        self.takeover_after = after;
        self
    }

    /// This instance's name in the run rows it claims.
    pub fn instance(&self) -> &str {
        self.runner.instance()
    }

    /// Ticks at once, then every tick interval, until `stop` resolves (checked before each
    /// tick: a stopping server starts no further tick; a tick under way ends first).
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        crate::engine::every_until(self.tick, stop, || async {
            if let Err(e) = self.tick(OffsetDateTime::now_utc()).await {
                tracing::warn!(error = %e, "schedules: could not read the schedules");
            }
        })
        .await;
    }

    /// One pass over the schedules at `now`.
    pub async fn tick(&self, now: OffsetDateTime) -> Result<Tick, StoreError> {
        let store = self.runner.engine().ops_store().clone();
        let mut out = Tick::default();
        match self.runner.adopt().await {
            Ok(n) => out.adopted = u32::try_from(n).unwrap_or(u32::MAX),
            Err(e) => tracing::warn!(error = %e, "could not look for bulk jobs to resume"),
        }
        for s in store.list_schedules().await? {
            out.taken_over += self.take_over_runs(&s, now).await?;
            if !s.enabled {
                continue;
            }
            let last = store
                .latest_schedule_run(&s.id)
                .await?
                .map(|r| r.occurrence_at);
            let what = match due(&s, last, now) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(schedule = %s.id, error = %e, "schedule has an unreadable cron expression");
                    continue;
                }
            };
            let (occurrence, skipped, state) = match what {
                Due::Nothing => continue,
                Due::Run {
                    occurrence,
                    skipped,
                } => (occurrence, skipped, RunState::Running),
                Due::Missed {
                    occurrence,
                    skipped,
                } => (occurrence, skipped, RunState::Missed),
            };
            let reason = match (state, skipped) {
                (RunState::Missed, n) => Some(format!(
                    "missed while no instance ran (catch_up = none); {n} earlier occurrence(s) also missed"
                )),
                (_, 0) => None,
                (_, n) => Some(format!(
                    "caught up after downtime (catch_up = latest): {n} earlier missed occurrence(s) not run"
                )),
            };
            let run = ScheduleRun {
                schedule_id: s.id.clone(),
                occurrence_at: occurrence,
                instance: self.instance().to_owned(),
                state,
                job_id: None,
                reason,
                skipped,
                started_at: now,
                finished_at: (state == RunState::Missed).then_some(now),
            };
            if !store.claim_schedule_run(&run).await? {
                continue; // another instance has it
            }
            if state == RunState::Missed {
                out.missed += 1;
                continue;
            }
            match self.start(&s, &run, None).await {
                Ok(true) => out.started += 1,
                Ok(false) => {}
                Err(e) => {
                    out.failed += 1;
                    let why = e.to_string();
                    tracing::warn!(schedule = %s.id, error = %why, "a schedule's run did not start");
                    store
                        .update_schedule_run(
                            &s.id,
                            occurrence,
                            None,
                            RunState::Failed,
                            Some(&why),
                            Some(OffsetDateTime::now_utc()),
                        )
                        .await?;
                }
            }
        }
        Ok(out)
    }

    /// Fetches `s`'s input and starts its job as the job of `run` (as stored: the claim, or
    /// the run of a dead instance) with `reason`. `Ok(false)`: another instance changed the run
    /// first, nothing started.
    pub(super) async fn start(
        &self,
        s: &Schedule,
        run: &ScheduleRun,
        reason: Option<&str>,
    ) -> Result<bool, JobsError> {
        let path = if s.input_is_url() {
            self.runner.stage_url(&s.input, s.input_format).await?
        } else {
            self.runner
                .stage_file(std::path::Path::new(&s.input), s.input_format)
                .await?
        };
        let req = JobRequest {
            input_format: Some(name_of(s.input_format)),
            output_format: Some(name_of(s.output_format)),
            batch_size: s.batch_size,
            record_type: s.record_type.clone(),
        };
        let job = self.runner.prepare(&s.source_code, &path, &req).await?;
        let store = self.runner.engine().ops_store().clone();
        // The job and the run's link to it in one transaction: a stop in between leaves
        // neither a job without its run nor a run without its job.
        let reason = reason.or(run.reason.as_deref());
        let started = store
            .start_schedule_run_job(run, &job, self.instance(), reason)
            .await;
        if !matches!(started, Ok(true)) {
            let _ = tokio::fs::remove_file(&path).await;
        }
        if !started? {
            return Ok(false);
        }
        self.runner.start(&job);
        Ok(true)
    }
}

/// A format's name as the job request takes it (its serde name: `csv`, `jsonl`, `lines`).
fn name_of(format: impl serde::Serialize) -> String {
    serde_json::to_value(format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Checks `input` and stores the schedule for `actor` (recorded in the change audit): the data
/// source must exist and a local input file must be readable now (a URL is fetched only at run
/// time). Occurrences count from now.
pub async fn add_schedule(
    engine: &crate::Engine,
    actor: &str,
    input: super::schedule::ScheduleInput,
) -> Result<Schedule, AddScheduleError> {
    // Every field's error at once: the checks against this server (the source exists, the
    // file is here) beside the library's own.
    let code = input.source_code.trim().to_owned();
    let file = input.input.trim().to_owned();
    let checked = input.validate(OffsetDateTime::now_utc());
    let mut errs = checked.as_ref().err().cloned().unwrap_or_default();
    if !errs.has("source_code") && engine.store().get_data_source(&code).await?.is_none() {
        errs.push(
            "source_code",
            format!("no data source {code:?}: use the code of one that exists"),
        );
    }
    if !errs.has("input") && !super::schedule::is_url(&file) && !Path::new(&file).is_file() {
        errs.push(
            "input",
            format!(
                "{file}: no such file here: give a file this server can read, or an http(s) URL"
            ),
        );
    }
    let s = match checked {
        Ok(s) if errs.is_empty() => s,
        _ => return Err(errs.into()),
    };
    engine.ops_store().create_schedule(&s).await?;
    let fields = crate::users::changes::json_fields(
        &serde_json::Value::Null,
        &serde_json::to_value(&s).unwrap_or_default(),
    );
    record_schedule_change(engine, actor, &s.id, "create", fields).await;
    Ok(s)
}

/// Deletes the schedule `id` (its runs' history goes with it) for `actor`, recorded in the
/// change audit; `false` when there is no such schedule.
pub async fn remove_schedule(
    engine: &crate::Engine,
    actor: &str,
    id: &str,
) -> Result<bool, StoreError> {
    if !engine.ops_store().delete_schedule(id).await? {
        return Ok(false);
    }
    record_schedule_change(engine, actor, id, "delete", Vec::new()).await;
    Ok(true)
}

/// Writes the change audit entry; a failure is logged, not returned (the change is stored).
async fn record_schedule_change(
    engine: &crate::Engine,
    actor: &str,
    id: &str,
    action: &str,
    fields: Vec<String>,
) {
    use crate::users::{ChangeRecord, ChangeTarget, Users};
    let change = ChangeRecord::now(actor, ChangeTarget::Schedule, id, action, fields);
    Users::new(engine.ops_store().clone())
        .record_or_log(change)
        .await;
}

/// Why [`add_schedule`] refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddScheduleError {
    /// Fields are invalid (each named).
    #[error("{0}")]
    Invalid(#[from] crate::source::ValidationErrors),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
