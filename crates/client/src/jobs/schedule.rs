//! Schedules: a bulk job definition with a cron expression ([`Schedule`]), checked from what a
//! user sends ([`ScheduleInput::validate`]); one row per occurrence that ran or was missed
//! ([`ScheduleRun`]); the storage seam [`ScheduleStore`] that `dci-store` implements for
//! SQLite and PostgreSQL (migration 0012), and which occurrence is due now ([`due`], with the
//! catch-up policy).
//!
//! Exactly one instance runs each occurrence: the run row's key is `(schedule_id,
//! occurrence_at)`, and [`ScheduleStore::claim_schedule_run`] inserts it only if no instance
//! has, so of several `dci serve` on one database the first claim wins and the others skip.

use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bulk::{InputFormat, OutputFormat};
use crate::source::ValidationErrors;
use crate::store::StoreError;

/// What happens to occurrences missed while no instance ran (downtime).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run the latest missed occurrence once (the default); earlier ones are counted as
    /// skipped in its run.
    #[default]
    Latest,
    /// Run nothing late: the latest missed occurrence is recorded as `missed`.
    None,
}

impl CatchUp {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Latest => "latest",
            CatchUp::None => "none",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<CatchUp> {
        match s {
            "latest" => Some(CatchUp::Latest),
            "none" => Some(CatchUp::None),
            _ => None,
        }
    }
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Its id (a UUID v7).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The data source searched.
    pub source_code: String,
    /// Cron expression (5 fields, or 6 with seconds first), in UTC.
    pub cron: String,
    /// The input: an absolute file path, or an http(s) URL fetched at each run.
    pub input: String,
    /// The input's format.
    pub input_format: InputFormat,
    /// The results' format.
    pub output_format: OutputFormat,
    /// Identifiers per envelope (`None`: the source's `limits.max_batch_size`).
    pub batch_size: Option<u32>,
    /// `reg_record_type` of every search, if set.
    pub record_type: Option<String>,
    /// Missed occurrences after downtime.
    pub catch_up: CatchUp,
    /// Whether it runs.
    pub enabled: bool,
    /// Creation time (occurrences before it are not due).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Schedule {
    /// The parsed cron expression (checked when the schedule was made).
    pub fn cron(&self) -> Result<croner::Cron, String> {
        parse_cron(&self.cron)
    }

    /// Whether the input is fetched over HTTP.
    pub fn input_is_url(&self) -> bool {
        is_url(&self.input)
    }
}

pub(super) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    croner::Cron::from_str(s.trim()).map_err(|e| e.to_string())
}

/// What a user sends to make a schedule (API body, CLI flags, console form).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// A name for people.
    pub name: String,
    /// The data source's code.
    pub source_code: String,
    /// Cron expression.
    pub cron: String,
    /// File path or http(s) URL.
    pub input: String,
    /// `csv`, `jsonl` or `lines` (default: from the input's extension, else `lines`).
    #[serde(default)]
    pub input_format: Option<String>,
    /// `jsonl` or `csv` (default `jsonl`).
    #[serde(default)]
    pub output_format: Option<String>,
    /// Identifiers per envelope.
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// `reg_record_type`.
    #[serde(default)]
    pub record_type: Option<String>,
    /// `latest` (default) or `none`.
    #[serde(default)]
    pub catch_up: Option<String>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl ScheduleInput {
    /// Checks every field and builds the schedule (a new id, created `now`). Every error names
    /// its field and the fix.
    pub fn validate(self, now: OffsetDateTime) -> Result<Schedule, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.len() > 200 {
            errs.push(
                "name",
                "must be 1 to 200 characters: e.g. monthly death check",
            );
        }
        let source_code = self.source_code.trim().to_owned();
        if source_code.is_empty() {
            errs.push("source_code", "is required: the code of a data source");
        }
        let cron = self.cron.trim().to_owned();
        if let Err(e) = parse_cron(&cron) {
            errs.push(
                "cron",
                format!("is not a cron expression ({e}): use 5 fields, minute hour day-of-month month day-of-week, in UTC, e.g. 0 2 1 * * (6 fields put seconds first, a 7th is the year; @daily, @weekly and @monthly also work)"),
            );
        }
        let input = self.input.trim().to_owned();
        if is_url(&input) {
            match url::Url::parse(&input) {
                Ok(u) if !u.username().is_empty() || u.password().is_some() => errs.push(
                    "input",
                    "must not carry credentials (user:password@): schedules are shown in lists and the console",
                ),
                Ok(_) => {}
                Err(e) => errs.push("input", format!("is not a valid URL ({e})")),
            }
        } else if !std::path::Path::new(&input).is_absolute() {
            errs.push(
                "input",
                "must be an absolute file path or an http(s):// URL the SPMIS serves",
            );
        }
        let input_format = match &self.input_format {
            Some(f) => InputFormat::parse(f).unwrap_or_else(|| {
                errs.push(
                    "input_format",
                    format!("{f:?} is not a format: use csv, jsonl or lines"),
                );
                InputFormat::Lines
            }),
            None => {
                let path = input.split(['?', '#']).next().unwrap_or_default();
                InputFormat::from_path(std::path::Path::new(path)).unwrap_or(InputFormat::Lines)
            }
        };
        let output_format = match &self.output_format {
            Some(f) => OutputFormat::parse(f).unwrap_or_else(|| {
                errs.push(
                    "output_format",
                    format!("{f:?} is not a format: use jsonl or csv"),
                );
                OutputFormat::Jsonl
            }),
            None => OutputFormat::Jsonl,
        };
        if let Some(b) = self.batch_size
            && (b == 0 || b > crate::LimitSettings::MAX_BATCH_SIZE)
        {
            errs.push(
                "batch_size",
                format!(
                    "must be from 1 to {}: or leave it out for the source's limits.max_batch_size",
                    crate::LimitSettings::MAX_BATCH_SIZE
                ),
            );
        }
        let catch_up = match &self.catch_up {
            Some(c) => CatchUp::parse(c.trim()).unwrap_or_else(|| {
                errs.push(
                    "catch_up",
                    format!("{c:?}: use latest (run the latest missed occurrence once) or none"),
                );
                CatchUp::Latest
            }),
            None => CatchUp::Latest,
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Schedule {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            source_code,
            cron,
            input,
            input_format,
            output_format,
            batch_size: self.batch_size,
            record_type: self.record_type.filter(|t| !t.trim().is_empty()),
            catch_up,
            enabled: self.enabled.unwrap_or(true),
            created_at: now,
        })
    }
}

/// How an occurrence went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Claimed; its job is running (or is being prepared).
    Running,
    /// Its job completed.
    Completed,
    /// It could not start (input unreachable, source unknown) or its job failed.
    Failed,
    /// Its job was cancelled.
    Cancelled,
    /// Missed during downtime and not run (`catch_up = "none"`).
    Missed,
}

impl RunState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Missed => "missed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<RunState> {
        Some(match s {
            "running" => RunState::Running,
            "completed" => RunState::Completed,
            "failed" => RunState::Failed,
            "cancelled" => RunState::Cancelled,
            "missed" => RunState::Missed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One occurrence of a schedule that an instance claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRun {
    /// The schedule.
    pub schedule_id: String,
    /// The occurrence (the cron time, UTC, whole seconds).
    #[serde(with = "time::serde::rfc3339")]
    pub occurrence_at: OffsetDateTime,
    /// The instance that claimed it (host and process).
    pub instance: String,
    /// How it went.
    pub state: RunState,
    /// Its bulk job, once created.
    pub job_id: Option<String>,
    /// Why it failed, or what catch-up skipped.
    pub reason: Option<String>,
    /// Earlier occurrences missed during downtime that catch-up did not run.
    pub skipped: u64,
    /// When it was claimed.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// Storage of schedules and their runs. Object safe.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Stores a new schedule.
    async fn create_schedule(&self, schedule: &Schedule) -> Result<(), StoreError>;

    /// One schedule.
    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError>;

    /// Every schedule, oldest first.
    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError>;

    /// Deletes a schedule and its runs (their jobs stay). Returns `false` if unknown.
    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError>;

    /// Inserts `run` unless its occurrence is already claimed (by any instance). Returns
    /// whether this call claimed it.
    async fn claim_schedule_run(&self, run: &ScheduleRun) -> Result<bool, StoreError>;

    /// The run with the latest occurrence of a schedule.
    async fn latest_schedule_run(
        &self,
        schedule_id: &str,
    ) -> Result<Option<ScheduleRun>, StoreError>;

    /// Runs of a schedule, latest occurrence first, at most `limit`.
    async fn list_schedule_runs(
        &self,
        schedule_id: &str,
        limit: u32,
    ) -> Result<Vec<ScheduleRun>, StoreError>;

    /// Stores `job` and makes it the job of `run`'s occurrence, run by `instance` (with
    /// `reason`), in one transaction — only if the run row still names `run.instance` and
    /// `run.job_id` (compare and set: the claimer starting its first job, or an instance taking
    /// over the run of one that died). Returns whether it did; nothing is stored otherwise.
    async fn start_schedule_run_job(
        &self,
        run: &ScheduleRun,
        job: &crate::bulk::BulkJob,
        instance: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Sets a run's job, state and reason (`finished_at` when it ended). Returns `false` if
    /// unknown.
    async fn update_schedule_run(
        &self,
        schedule_id: &str,
        occurrence_at: OffsetDateTime,
        job_id: Option<&str>,
        state: RunState,
        reason: Option<&str>,
        finished_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    /// Ends the `running` run whose job is `job_id`, if any (a job of no schedule: no-op).
    async fn finish_schedule_run_of_job(
        &self,
        job_id: &str,
        state: RunState,
        reason: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// What a schedule should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing: no occurrence since the last one handled.
    Nothing,
    /// Run this occurrence; `skipped` earlier ones were missed and are not run.
    Run {
        /// The occurrence.
        occurrence: OffsetDateTime,
        /// Earlier missed occurrences.
        skipped: u64,
    },
    /// Record this occurrence as missed (`catch_up = "none"`), with `skipped` earlier ones.
    Missed {
        /// The occurrence.
        occurrence: OffsetDateTime,
        /// Earlier missed occurrences.
        skipped: u64,
    },
}

/// How late an occurrence may be picked up and still count as on time (not missed): a tick of
/// the scheduler's loop, a slow database.
pub const ON_TIME: time::Duration = time::Duration::seconds(60);

/// Most occurrences counted between the last handled one and now (beyond it `skipped` says
/// this many).
const MAX_COUNTED: u64 = 100_000;

/// What `schedule` should do at `now`, given the latest occurrence already handled (`None`:
/// none yet, so occurrences count from its creation).
pub fn due(
    schedule: &Schedule,
    last: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Due, String> {
    let cron = schedule.cron()?;
    let from = last.unwrap_or(schedule.created_at);
    let from = to_chrono(from);
    let now_c = to_chrono(now);
    let mut latest = None;
    let mut count = 0u64;
    for t in cron.iter_after(from) {
        if t > now_c || count >= MAX_COUNTED {
            break;
        }
        count += 1;
        latest = Some(t);
    }
    let Some(latest) = latest else {
        if count >= MAX_COUNTED {
            // Too many to count: take the latest before now directly.
            let t = cron
                .find_previous_occurrence(&now_c, true)
                .map_err(|e| e.to_string())?;
            return Ok(Due::Run {
                occurrence: from_chrono(t),
                skipped: MAX_COUNTED,
            });
        }
        return Ok(Due::Nothing);
    };
    let occurrence = from_chrono(latest);
    let skipped = count - 1;
    let on_time = now - occurrence <= ON_TIME;
    Ok(match schedule.catch_up {
        CatchUp::None if !on_time => Due::Missed {
            occurrence,
            skipped,
        },
        _ => Due::Run {
            occurrence,
            skipped,
        },
    })
}

fn to_chrono(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap_or_default()
}

fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn hourly(catch_up: CatchUp, created: OffsetDateTime) -> Schedule {
        let mut s = ScheduleInput {
            name: "n".into(),
            source_code: "src".into(),
            cron: "0 * * * *".into(),
            input: "/tmp/in.csv".into(),
            ..ScheduleInput::default()
        }
        .validate(created)
        .unwrap();
        s.catch_up = catch_up;
        s
    }

    #[test]
    fn the_latest_missed_occurrence_runs_once_and_earlier_ones_are_skipped() {
        let s = hourly(CatchUp::Latest, datetime!(2026-01-01 00:30 UTC));
        let now = datetime!(2026-01-01 05:10 UTC);
        assert_eq!(
            due(&s, None, now).unwrap(),
            Due::Run {
                occurrence: datetime!(2026-01-01 05:00 UTC),
                skipped: 4
            }
        );
        let handled = Some(datetime!(2026-01-01 05:00 UTC));
        assert_eq!(due(&s, handled, now).unwrap(), Due::Nothing);
    }

    #[test]
    fn with_catch_up_none_a_late_occurrence_is_missed_and_an_on_time_one_runs() {
        let s = hourly(CatchUp::None, datetime!(2026-01-01 00:30 UTC));
        assert_eq!(
            due(&s, None, datetime!(2026-01-01 03:10 UTC)).unwrap(),
            Due::Missed {
                occurrence: datetime!(2026-01-01 03:00 UTC),
                skipped: 2
            }
        );
        assert_eq!(
            due(&s, None, datetime!(2026-01-01 01:00:20 UTC)).unwrap(),
            Due::Run {
                occurrence: datetime!(2026-01-01 01:00 UTC),
                skipped: 0
            }
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let e = ScheduleInput {
            name: "".into(),
            source_code: "s".into(),
            cron: "every day".into(),
            input: "relative.csv".into(),
            catch_up: Some("all".into()),
            ..ScheduleInput::default()
        }
        .validate(OffsetDateTime::now_utc())
        .unwrap_err();
        for f in ["name", "cron", "input", "catch_up"] {
            assert!(e.has(f), "{f}: {e:?}");
        }
        let e = ScheduleInput {
            name: "x".into(),
            source_code: "s".into(),
            cron: "0 2 * * *".into(),
            input: "https://u:p@spmis.example/ids.csv".into(),
            ..ScheduleInput::default()
        }
        .validate(OffsetDateTime::now_utc())
        .unwrap_err();
        assert!(e.has("input"), "{e:?}");
    }
}
