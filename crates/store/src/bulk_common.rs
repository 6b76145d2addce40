//! The [`dci_client::bulk::BulkStore`] implementation (bulk jobs and their checkpoints, table
//! `bulk_job`, migration 0007), written once over a sqlx database type like the other stores
//! (see [`impl_bulk_store!`]).

/// Implements `BulkStore` for a backend struct with `fn pool(&self) -> &sqlx::Pool<$db>`.
macro_rules! impl_bulk_store {
    ($store:ty, $db:ty) => {
        mod bulk_store_impl {
            use async_trait::async_trait;
            use dci_client::StoreError;
            use dci_client::bulk::{BulkJob, BulkStore, Checkpoint, JobState};
            use sqlx::Row;
            use time::OffsetDateTime;

            use $crate::common::{db, ts};

            type DbRow = <$db as sqlx::Database>::Row;

            const COLUMNS: &str =
                "id, source_code, state, spec, checkpoint, reason, created_at, updated_at";

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            fn job_from_row(r: &DbRow) -> Result<BulkJob, StoreError> {
                let read = |e| db("reading a bulk job")(e);
                let state: String = r.try_get("state").map_err(read)?;
                let spec: String = r.try_get("spec").map_err(read)?;
                let cp: String = r.try_get("checkpoint").map_err(read)?;
                Ok(BulkJob {
                    id: r.try_get("id").map_err(read)?,
                    source_code: r.try_get("source_code").map_err(read)?,
                    state: JobState::parse(&state)
                        .ok_or_else(|| corrupt("bulk job state", &state))?,
                    spec: serde_json::from_str(&spec).map_err(|e| corrupt("bulk job spec", e))?,
                    checkpoint: serde_json::from_str(&cp)
                        .map_err(|e| corrupt("bulk job checkpoint", e))?,
                    reason: r.try_get("reason").map_err(read)?,
                    created_at: r.try_get("created_at").map_err(read)?,
                    updated_at: r.try_get("updated_at").map_err(read)?,
                })
            }

            fn to_json(v: &impl serde::Serialize) -> Result<String, StoreError> {
                serde_json::to_string(v).map_err(|e| corrupt("bulk job", e))
            }

            #[async_trait]
            impl BulkStore for $store {
                async fn create_bulk_job(&self, job: &BulkJob) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO bulk_job (id, source_code, state, spec, checkpoint, reason, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&job.id)
                    .bind(&job.source_code)
                    .bind(job.state.as_str())
                    .bind(to_json(&job.spec)?)
                    .bind(to_json(&job.checkpoint)?)
                    .bind(&job.reason)
                    .bind(ts(job.created_at))
                    .bind(ts(job.updated_at))
                    .execute(self.pool())
                    .await
                    .map_err(db("storing a bulk job"))?;
                    Ok(())
                }

                async fn get_bulk_job(&self, id: &str) -> Result<Option<BulkJob>, StoreError> {
                    let sql = format!("SELECT {COLUMNS} FROM bulk_job WHERE id = $1");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(db("reading a bulk job"))?
                        .as_ref()
                        .map(job_from_row)
                        .transpose()
                }

                async fn list_bulk_jobs(&self, limit: u32) -> Result<Vec<BulkJob>, StoreError> {
                    let sql = format!(
                        "SELECT {COLUMNS} FROM bulk_job ORDER BY created_at DESC, id DESC LIMIT $1"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing bulk jobs"))?
                        .iter()
                        .map(job_from_row)
                        .collect()
                }

                async fn save_bulk_checkpoint(
                    &self,
                    id: &str,
                    checkpoint: &Checkpoint,
                    at: OffsetDateTime,
                ) -> Result<Option<JobState>, StoreError> {
                    let state: Option<String> = sqlx::query_scalar(
                        "UPDATE bulk_job SET checkpoint = CASE WHEN state = 'running' THEN $2 \
                         ELSE checkpoint END, updated_at = $3 WHERE id = $1 RETURNING state",
                    )
                    .bind(id)
                    .bind(to_json(checkpoint)?)
                    .bind(ts(at))
                    .fetch_optional(self.pool())
                    .await
                    .map_err(db("saving a bulk checkpoint"))?;
                    state
                        .map(|s| JobState::parse(&s).ok_or_else(|| corrupt("bulk job state", &s)))
                        .transpose()
                }

                async fn set_bulk_job_state(
                    &self,
                    id: &str,
                    state: JobState,
                    reason: Option<&str>,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE bulk_job SET state = $2, reason = $3, updated_at = $4 \
                         WHERE id = $1 AND state IN ('running', 'interrupted')",
                    )
                    .bind(id)
                    .bind(state.as_str())
                    .bind(reason)
                    .bind(ts(at))
                    .execute(self.pool())
                    .await
                    .map_err(db("changing a bulk job's state"))?;
                    Ok(done.rows_affected() > 0)
                }
            }
        }
    };
}

pub(crate) use impl_bulk_store;
