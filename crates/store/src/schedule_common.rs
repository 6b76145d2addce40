//! The [`dci_client::jobs::ScheduleStore`] implementation (tables `schedule` and
//! `schedule_run`, migration 0012), written once over a sqlx database type like the other
//! stores (see [`impl_schedule_store!`]). A claim is an insert that does nothing when the
//! occurrence's row exists, so the database decides which instance runs it.

/// Implements `ScheduleStore` for a backend struct with `fn pool(&self) -> &sqlx::Pool<$db>`.
macro_rules! impl_schedule_store {
    ($store:ty, $db:ty) => {
        mod schedule_store_impl {
            use async_trait::async_trait;
            use dci_client::StoreError;
            use dci_client::bulk::{InputFormat, OutputFormat};
            use dci_client::jobs::{CatchUp, RunState, Schedule, ScheduleRun, ScheduleStore};
            use sqlx::Row;
            use time::OffsetDateTime;

            use $crate::common::{db, At};

            type DbRow = <$db as sqlx::Database>::Row;

            const SCHEDULE_COLUMNS: &str = "id, name, source_code, cron, input, input_format, \
                 output_format, batch_size, record_type, catch_up, enabled, created_at";
            const RUN_COLUMNS: &str = "schedule_id, occurrence_at, instance, state, job_id, \
                 reason, skipped, started_at, finished_at";

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            fn format_name(v: impl serde::Serialize) -> String {
                serde_json::to_value(v)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            }

            fn schedule_from_row(r: &DbRow) -> Result<Schedule, StoreError> {
                let read = |e| db("reading a schedule")(e);
                let input_format: String = r.try_get("input_format").map_err(read)?;
                let output_format: String = r.try_get("output_format").map_err(read)?;
                let catch_up: String = r.try_get("catch_up").map_err(read)?;
                let batch: Option<i64> = r.try_get("batch_size").map_err(read)?;
                Ok(Schedule {
                    id: r.try_get("id").map_err(read)?,
                    name: r.try_get("name").map_err(read)?,
                    source_code: r.try_get("source_code").map_err(read)?,
                    cron: r.try_get("cron").map_err(read)?,
                    input: r.try_get("input").map_err(read)?,
                    input_format: InputFormat::parse(&input_format)
                        .ok_or_else(|| corrupt("schedule input_format", &input_format))?,
                    output_format: OutputFormat::parse(&output_format)
                        .ok_or_else(|| corrupt("schedule output_format", &output_format))?,
                    batch_size: batch.map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
                    record_type: r.try_get("record_type").map_err(read)?,
                    catch_up: CatchUp::parse(&catch_up)
                        .ok_or_else(|| corrupt("schedule catch_up", &catch_up))?,
                    enabled: r.try_get("enabled").map_err(read)?,
                    created_at: r.try_get("created_at").map_err(read)?,
                })
            }

            fn run_from_row(r: &DbRow) -> Result<ScheduleRun, StoreError> {
                let read = |e| db("reading a schedule run")(e);
                let state: String = r.try_get("state").map_err(read)?;
                let skipped: i64 = r.try_get("skipped").map_err(read)?;
                Ok(ScheduleRun {
                    schedule_id: r.try_get("schedule_id").map_err(read)?,
                    occurrence_at: r.try_get("occurrence_at").map_err(read)?,
                    instance: r.try_get("instance").map_err(read)?,
                    state: RunState::parse(&state)
                        .ok_or_else(|| corrupt("schedule run state", &state))?,
                    job_id: r.try_get("job_id").map_err(read)?,
                    reason: r.try_get("reason").map_err(read)?,
                    skipped: u64::try_from(skipped).unwrap_or(0),
                    started_at: r.try_get("started_at").map_err(read)?,
                    finished_at: r.try_get("finished_at").map_err(read)?,
                })
            }

            #[async_trait]
            impl ScheduleStore for $store {
                async fn create_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO schedule (id, name, source_code, cron, input, input_format, \
                         output_format, batch_size, record_type, catch_up, enabled, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    )
                    .bind(&s.id)
                    .bind(&s.name)
                    .bind(&s.source_code)
                    .bind(&s.cron)
                    .bind(&s.input)
                    .bind(format_name(s.input_format))
                    .bind(format_name(s.output_format))
                    .bind(s.batch_size.map(i64::from))
                    .bind(&s.record_type)
                    .bind(s.catch_up.as_str())
                    .bind(s.enabled)
                    .bind(At::of(s.created_at))
                    .execute(self.pool())
                    .await
                    .map_err(db("storing a schedule"))?;
                    Ok(())
                }

                async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
                    let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedule WHERE id = $1");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(db("reading a schedule"))?
                        .as_ref()
                        .map(schedule_from_row)
                        .transpose()
                }

                async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
                    let sql = format!(
                        "SELECT {SCHEDULE_COLUMNS} FROM schedule ORDER BY created_at, id"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing schedules"))?
                        .iter()
                        .map(schedule_from_row)
                        .collect()
                }

                async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("deleting a schedule"))?;
                    sqlx::query("DELETE FROM schedule_run WHERE schedule_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("deleting a schedule's runs"))?;
                    let done = sqlx::query("DELETE FROM schedule WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("deleting a schedule"))?;
                    tx.commit().await.map_err(db("deleting a schedule"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn claim_schedule_run(&self, run: &ScheduleRun) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "INSERT INTO schedule_run (schedule_id, occurrence_at, instance, state, \
                         job_id, reason, skipped, started_at, finished_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (schedule_id, occurrence_at) DO NOTHING",
                    )
                    .bind(&run.schedule_id)
                    .bind(At::of(run.occurrence_at))
                    .bind(&run.instance)
                    .bind(run.state.as_str())
                    .bind(&run.job_id)
                    .bind(&run.reason)
                    .bind(i64::try_from(run.skipped).unwrap_or(i64::MAX))
                    .bind(At::of(run.started_at))
                    .bind(run.finished_at.map(At::of))
                    .execute(self.pool())
                    .await
                    .map_err(db("claiming a schedule's occurrence"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn latest_schedule_run(
                    &self,
                    schedule_id: &str,
                ) -> Result<Option<ScheduleRun>, StoreError> {
                    Ok(self.list_schedule_runs(schedule_id, 1).await?.into_iter().next())
                }

                async fn list_schedule_runs(
                    &self,
                    schedule_id: &str,
                    limit: u32,
                ) -> Result<Vec<ScheduleRun>, StoreError> {
                    let sql = format!(
                        "SELECT {RUN_COLUMNS} FROM schedule_run WHERE schedule_id = $1 \
                         ORDER BY occurrence_at DESC LIMIT $2"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(schedule_id)
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing a schedule's runs"))?
                        .iter()
                        .map(run_from_row)
                        .collect()
                }

                async fn start_schedule_run_job(
                    &self,
                    run: &ScheduleRun,
                    job: &dci_client::bulk::BulkJob,
                    instance: &str,
                    reason: Option<&str>,
                ) -> Result<bool, StoreError> {
                    let mut tx = self
                        .pool()
                        .begin()
                        .await
                        .map_err(db("starting a transaction"))?;
                    // Write first (SQLite takes its write lock here, not at the update).
                    super::bulk_store_impl::insert_bulk_job(&mut tx, job).await?;
                    let done = sqlx::query(
                        "UPDATE schedule_run SET job_id = $3, instance = $4, state = 'running', \
                         reason = $5, finished_at = NULL \
                         WHERE schedule_id = $1 AND occurrence_at = $2 AND instance = $6 \
                         AND (job_id = $7 OR (job_id IS NULL AND $7 IS NULL))",
                    )
                    .bind(&run.schedule_id)
                    .bind(At::of(run.occurrence_at))
                    .bind(&job.id)
                    .bind(instance)
                    .bind(reason)
                    .bind(&run.instance)
                    .bind(&run.job_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("starting a schedule's run"))?;
                    if done.rows_affected() == 0 {
                        tx.rollback().await.map_err(db("ending a transaction"))?;
                        return Ok(false);
                    }
                    tx.commit().await.map_err(db("committing a schedule's run"))?;
                    Ok(true)
                }

                async fn update_schedule_run(
                    &self,
                    schedule_id: &str,
                    occurrence_at: OffsetDateTime,
                    job_id: Option<&str>,
                    state: RunState,
                    reason: Option<&str>,
                    finished_at: Option<OffsetDateTime>,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE schedule_run SET job_id = COALESCE($3, job_id), state = $4, \
                         reason = $5, finished_at = $6 \
                         WHERE schedule_id = $1 AND occurrence_at = $2",
                    )
                    .bind(schedule_id)
                    .bind(At::of(occurrence_at))
                    .bind(job_id)
                    .bind(state.as_str())
                    .bind(reason)
                    .bind(finished_at.map(At::of))
                    .execute(self.pool())
                    .await
                    .map_err(db("updating a schedule's run"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn finish_schedule_run_of_job(
                    &self,
                    job_id: &str,
                    state: RunState,
                    reason: Option<&str>,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE schedule_run SET state = $2, \
                         reason = COALESCE($3, reason), finished_at = $4 \
                         WHERE job_id = $1 AND state = 'running'",
                    )
                    .bind(job_id)
                    .bind(state.as_str())
                    .bind(reason)
                    .bind(At::of(at))
                    .execute(self.pool())
                    .await
                    .map_err(db("ending a schedule's run"))?;
                    Ok(done.rows_affected() > 0)
                }
            }
        }
    };
}

pub(crate) use impl_schedule_store;
