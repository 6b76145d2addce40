//! The [`dci_client::bulk::BulkStore`] implementation (bulk jobs and their checkpoints, table
//! `bulk_job`, migration 0007), written once over a sqlx database type like the other stores
//! (see [`impl_bulk_store!`]).

/// Implements `BulkStore` for a backend struct with `fn pool(&self) -> &sqlx::Pool<$db>`.
macro_rules! impl_bulk_store {
    ($store:ty, $db:ty) => {
        pub(crate) mod bulk_store_impl {
            use async_trait::async_trait;
            use dci_client::StoreError;
            use dci_client::bulk::{BulkJob, BulkStore, Checkpoint, JobLease, JobState};
            use sqlx::Row;
            use time::OffsetDateTime;

            use $crate::common::{At, db};

            type DbRow = <$db as sqlx::Database>::Row;
            type Conn = <$db as sqlx::Database>::Connection;

            const COLUMNS: &str = "id, source_code, state, spec, checkpoint, reason, \
                 created_at, updated_at, holder, lease_until_ms";

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
                    lease: lease_from_row(r)?,
                })
            }

            fn lease_from_row(r: &DbRow) -> Result<Option<JobLease>, StoreError> {
                let read = |e| db("reading a bulk job's lease")(e);
                let holder: Option<String> = r.try_get("holder").map_err(read)?;
                let until: Option<i64> = r.try_get("lease_until_ms").map_err(read)?;
                Ok(holder.map(|holder| JobLease {
                    holder,
                    until: until.map(crate::ops_common::from_ms),
                }))
            }

            /// Inserts a new job (no lease yet), on a connection that may be inside the
            /// caller's transaction.
            pub(crate) async fn insert_bulk_job(
                conn: &mut Conn,
                job: &BulkJob,
            ) -> Result<(), StoreError> {
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
                .bind(At::of(job.created_at))
                .bind(At::of(job.updated_at))
                .execute(&mut *conn)
                .await
                .map_err(db("storing a bulk job"))?;
                Ok(())
            }

            fn to_json(v: &impl serde::Serialize) -> Result<String, StoreError> {
                serde_json::to_string(v).map_err(|e| corrupt("bulk job", e))
            }

            #[async_trait]
            impl BulkStore for $store {
                async fn create_bulk_job(&self, job: &BulkJob) -> Result<(), StoreError> {
                    let mut conn = self
                        .pool()
                        .acquire()
                        .await
                        .map_err(db("storing a bulk job"))?;
                    insert_bulk_job(&mut conn, job).await
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

                async fn list_open_bulk_jobs(&self) -> Result<Vec<BulkJob>, StoreError> {
                    let sql = format!(
                        "SELECT {COLUMNS} FROM bulk_job \
                         WHERE state IN ('running', 'interrupted') ORDER BY created_at, id"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing unfinished bulk jobs"))?
                        .iter()
                        .map(job_from_row)
                        .collect()
                }

                async fn save_bulk_checkpoint(
                    &self,
                    id: &str,
                    holder: &str,
                    checkpoint: &Checkpoint,
                    at: OffsetDateTime,
                ) -> Result<Option<(JobState, Option<String>)>, StoreError> {
                    let row = sqlx::query(
                        "UPDATE bulk_job SET \
                         checkpoint = CASE WHEN state = 'running' AND holder = $4 THEN $2 \
                         ELSE checkpoint END, \
                         updated_at = CASE WHEN holder = $4 THEN $3 ELSE updated_at END \
                         WHERE id = $1 RETURNING state, holder",
                    )
                    .bind(id)
                    .bind(to_json(checkpoint)?)
                    .bind(At::of(at))
                    .bind(holder)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(db("saving a bulk checkpoint"))?;
                    let Some(row) = row else { return Ok(None) };
                    let read = |e| db("saving a bulk checkpoint")(e);
                    let state: String = row.try_get("state").map_err(read)?;
                    let held: Option<String> = row.try_get("holder").map_err(read)?;
                    let state =
                        JobState::parse(&state).ok_or_else(|| corrupt("bulk job state", &state))?;
                    Ok(Some((state, held)))
                }

                async fn take_bulk_lease(
                    &self,
                    id: &str,
                    holder: &str,
                    until: OffsetDateTime,
                    now: OffsetDateTime,
                    stale: Option<&str>,
                ) -> Result<Option<JobLease>, StoreError> {
                    sqlx::query(
                        "UPDATE bulk_job SET holder = $2, lease_until_ms = $3 WHERE id = $1 \
                         AND (holder IS NULL OR holder = $2 OR lease_until_ms IS NULL \
                         OR lease_until_ms <= $4 OR holder = $5)",
                    )
                    .bind(id)
                    .bind(holder)
                    .bind(crate::ops_common::to_ms(until))
                    .bind(crate::ops_common::to_ms(now))
                    .bind(stale)
                    .execute(self.pool())
                    .await
                    .map_err(db("taking a bulk job's lease"))?;
                    let row =
                        sqlx::query("SELECT holder, lease_until_ms FROM bulk_job WHERE id = $1")
                            .bind(id)
                            .fetch_optional(self.pool())
                            .await
                            .map_err(db("reading a bulk job's lease"))?;
                    match row {
                        None => Ok(None),
                        Some(r) => Ok(Some(lease_from_row(&r)?.ok_or_else(|| {
                            corrupt("bulk job lease", "no holder after taking it")
                        })?)),
                    }
                }

                async fn release_bulk_lease(
                    &self,
                    id: &str,
                    holder: &str,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "UPDATE bulk_job SET lease_until_ms = NULL WHERE id = $1 AND holder = $2",
                    )
                    .bind(id)
                    .bind(holder)
                    .execute(self.pool())
                    .await
                    .map_err(db("ending a bulk job's lease"))?;
                    Ok(())
                }

                async fn set_bulk_job_state(
                    &self,
                    id: &str,
                    state: JobState,
                    reason: Option<&str>,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE bulk_job SET state = $2, reason = $3, updated_at = $4, \
                         lease_until_ms = CASE WHEN $2 = 'running' THEN lease_until_ms \
                         ELSE NULL END \
                         WHERE id = $1 AND state IN ('running', 'interrupted')",
                    )
                    .bind(id)
                    .bind(state.as_str())
                    .bind(reason)
                    .bind(At::of(at))
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
