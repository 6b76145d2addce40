//! The [`dci_client::ops::OpsStore`] implementation, written once over a sqlx database type
//! (see [`impl_ops_store!`]) like the data-source store: both drivers take `$N` placeholders,
//! timestamps bind as `OffsetDateTime` (TEXT in SQLite, TIMESTAMPTZ in PostgreSQL), and
//! deadlines are unix milliseconds so both compare them the same way.

/// Owner id under which a signing key's private half is sealed in `sealed_secret`.
pub(crate) fn signing_key_owner(key_id: &str) -> String {
    format!("signing_key:{key_id}")
}

/// Field name of a signing key's private half (part of the associated data: never rename).
pub(crate) const SIGNING_PRIVATE_KEY: &str = "signing_private_key";

/// Owner under which a stored request (`op_transaction.request`) is sealed (associated data:
/// never rename).
pub(crate) fn request_owner(transaction_id: &str) -> String {
    format!("op_transaction:{transaction_id}")
}

/// Owner under which a stored callback body (`op_callback.body`) is sealed (associated data:
/// never rename).
pub(crate) fn body_owner(source_code: &str, message_id: &str) -> String {
    format!("op_callback:{source_code}:{message_id}")
}

/// Field names of the sealed request and callback body.
pub(crate) const REQUEST: &str = "request";
pub(crate) const BODY: &str = "body";

pub(crate) fn to_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_ms(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Implements `OpsStore` for a backend struct with `fn pool(&self) -> &sqlx::Pool<$db>` and
/// `fn sealer(&self) -> Arc<Sealer>`; `$migrator` is the backend's migration list (for
/// `schema_status`).
macro_rules! impl_ops_store {
    ($store:ty, $db:ty, $migrator:path) => {
        mod ops_store_impl {
            use async_trait::async_trait;
            use dci_client::StoreError;
            use dci_client::changes::{Change, Changes};
            use dci_client::events::build as events;
            use dci_client::ops::store::{
                AckRecord, Backlog, CallbackFilter, CallbackRecord, KeyStatus, OpsStore, PurgeReport,
                SchemaStatus, SigningKeyRecord, SubscriptionRecord, TransactionFilter, TransactionRecord,
                TransactionState,
            };
            use secrecy::SecretString;
            use serde_json::Value;
            use sqlx::Row;
            use time::OffsetDateTime;

            use $crate::common::{db, At};
            use $crate::ops_common::{
                BODY, REQUEST, SIGNING_PRIVATE_KEY, body_owner, from_ms, request_owner,
                signing_key_owner, to_ms,
            };
            use $crate::seal::{SealedSecret, Sealer};

            type DbRow = <$db as sqlx::Database>::Row;
            type Conn = <$db as sqlx::Database>::Connection;

            /// After the write that starts the caller's transaction (SQLite's writer lock) and
            /// sealed a body under `sealed_with`: whether a rotation has since made another key
            /// current, so the body must be sealed again. Called before any other row lock, so
            /// that it never waits for a rotation that waits for it.
            async fn key_retired(
                conn: &mut Conn,
                sealer: &Sealer,
                sealed_with: &str,
            ) -> Result<bool, StoreError> {
                super::check_key(conn, sealer).await?;
                Ok(sealer.key_id() != sealed_with)
            }

            use super::events_store_impl::write_event;

            const TXN_COLUMNS: &str = "transaction_id, source_code, kind, message_id, \
                reference_ids, request, state, ack_status, correlation_id, error_code, \
                error_message, ack_at, created_at, deadline_ms, updated_at, state_reason";

            const CB_COLUMNS: &str = "source_code, message_id, action, transaction_id, \
                correlation_id, status, total_count, completed_count, signature, \
                signature_key_id, body, tolerated, received_at";

            const KEY_COLUMNS: &str = "key_id, algorithm, status, public_key_pem, created_at, \
                activated_at, revoked_at, expires_at";

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            fn json(text: &str, what: &str) -> Result<Value, StoreError> {
                serde_json::from_str(text).map_err(|e| corrupt(what, e))
            }

            fn u64_opt(v: Option<i64>) -> Option<u64> {
                v.and_then(|n| u64::try_from(n).ok())
            }

            fn i64_opt(v: Option<u64>) -> Option<i64> {
                v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
            }

            fn txn_from_row(r: &DbRow, sealer: &Sealer) -> Result<TransactionRecord, StoreError> {
                let read = |e| db("reading a transaction")(e);
                let refs: String = r.try_get("reference_ids").map_err(read)?;
                let request: String = r.try_get("request").map_err(read)?;
                let kind: String = r.try_get("kind").map_err(read)?;
                let state: String = r.try_get("state").map_err(read)?;
                let ack_status: Option<String> = r.try_get("ack_status").map_err(read)?;
                let ack_at: Option<OffsetDateTime> = r.try_get("ack_at").map_err(read)?;
                let state: TransactionState = state.parse()?;
                let ack = match ack_status {
                    None => None,
                    Some(ack_status) => Some(AckRecord {
                        ack_status,
                        correlation_id: r.try_get("correlation_id").map_err(read)?,
                        error_code: r.try_get("error_code").map_err(read)?,
                        error_message: r.try_get("error_message").map_err(read)?,
                        state,
                        at: ack_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    }),
                };
                let transaction_id: String = r.try_get("transaction_id").map_err(read)?;
                let request =
                    sealer.open_text(&request_owner(&transaction_id), REQUEST, &request)?;
                Ok(TransactionRecord {
                    transaction_id,
                    source_code: r.try_get("source_code").map_err(read)?,
                    kind: kind.parse()?,
                    message_id: r.try_get("message_id").map_err(read)?,
                    reference_ids: serde_json::from_str(&refs)
                        .map_err(|e| corrupt("transaction reference ids", e))?,
                    request: json(&request, "transaction request")?,
                    state,
                    ack,
                    created_at: r.try_get("created_at").map_err(read)?,
                    deadline: from_ms(r.try_get("deadline_ms").map_err(read)?),
                    updated_at: r.try_get("updated_at").map_err(read)?,
                    reason: r.try_get("state_reason").map_err(read)?,
                })
            }

            fn cb_from_row(r: &DbRow, sealer: &Sealer) -> Result<CallbackRecord, StoreError> {
                let read = |e| db("reading a callback")(e);
                let body: String = r.try_get("body").map_err(read)?;
                let signature: String = r.try_get("signature").map_err(read)?;
                let tolerated: String = r.try_get("tolerated").map_err(read)?;
                let source_code: String = r.try_get("source_code").map_err(read)?;
                let message_id: String = r.try_get("message_id").map_err(read)?;
                let body = sealer.open_text(&body_owner(&source_code, &message_id), BODY, &body)?;
                Ok(CallbackRecord {
                    source_code,
                    message_id,
                    action: r.try_get("action").map_err(read)?,
                    transaction_id: r.try_get("transaction_id").map_err(read)?,
                    correlation_id: r.try_get("correlation_id").map_err(read)?,
                    status: r.try_get("status").map_err(read)?,
                    total_count: u64_opt(r.try_get("total_count").map_err(read)?),
                    completed_count: u64_opt(r.try_get("completed_count").map_err(read)?),
                    signature: signature.parse()?,
                    signature_key_id: r.try_get("signature_key_id").map_err(read)?,
                    body: json(&body, "callback body")?,
                    tolerated: serde_json::from_str(&tolerated)
                        .map_err(|e| corrupt("callback tolerated", e))?,
                    received_at: r.try_get("received_at").map_err(read)?,
                })
            }

            fn sub_from_row(r: &DbRow) -> Result<SubscriptionRecord, StoreError> {
                let read = |e| db("reading a subscription")(e);
                let state: String = r.try_get("state").map_err(read)?;
                Ok(SubscriptionRecord {
                    source_code: r.try_get("source_code").map_err(read)?,
                    code: r.try_get("code").map_err(read)?,
                    state: state.parse()?,
                    event_type: r.try_get("event_type").map_err(read)?,
                    transaction_id: r.try_get("transaction_id").map_err(read)?,
                    created_at: r.try_get("created_at").map_err(read)?,
                    updated_at: r.try_get("updated_at").map_err(read)?,
                })
            }

            fn key_from_row(r: &DbRow) -> Result<SigningKeyRecord, StoreError> {
                let read = |e| db("reading a signing key")(e);
                let alg: String = r.try_get("algorithm").map_err(read)?;
                let status: String = r.try_get("status").map_err(read)?;
                Ok(SigningKeyRecord {
                    key_id: r.try_get("key_id").map_err(read)?,
                    algorithm: alg
                        .parse()
                        .map_err(|e| corrupt("signing key algorithm", e))?,
                    status: status.parse()?,
                    public_key_pem: r.try_get("public_key_pem").map_err(read)?,
                    created_at: r.try_get("created_at").map_err(read)?,
                    activated_at: r.try_get("activated_at").map_err(read)?,
                    revoked_at: r.try_get("revoked_at").map_err(read)?,
                    expires_at: r.try_get("expires_at").map_err(read)?,
                })
            }

            /// States that a new state may replace (lower rank).
            fn below(state: TransactionState) -> Vec<&'static str> {
                [
                    TransactionState::Pending,
                    TransactionState::Acknowledged,
                    TransactionState::Unknown,
                    TransactionState::TimedOut,
                    TransactionState::Expired,
                    TransactionState::Partial,
                    TransactionState::Completed,
                    TransactionState::Failed,
                ]
                .into_iter()
                .filter(|s| s.rank() < state.rank())
                .map(TransactionState::as_str)
                .collect()
            }

            /// The rank-guarded state change, on a connection inside a transaction.
            async fn advance_in(
                conn: &mut Conn,
                transaction_id: &str,
                state: TransactionState,
                at: OffsetDateTime,
                reason: Option<&str>,
            ) -> Result<bool, StoreError> {
                let below = below(state);
                if below.is_empty() {
                    return Ok(false);
                }
                // The states are constants of the model, not input.
                let list = below
                    .iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "UPDATE op_transaction SET state = $2, updated_at = $3, state_reason = $4 \
                     WHERE transaction_id = $1 AND state IN ({list})"
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(transaction_id)
                    .bind(state.as_str())
                    .bind(At::of(at))
                    .bind(reason)
                    .execute(&mut *conn)
                    .await
                    .map_err(db("updating a transaction"))?;
                Ok(done.rows_affected() > 0)
            }

            /// The transaction (locked on PostgreSQL until commit) and its callbacks, read
            /// inside the current transaction.
            async fn read_in(
                conn: &mut Conn,
                sealer: &Sealer,
                transaction_id: &str,
            ) -> Result<Option<(TransactionRecord, Vec<CallbackRecord>)>, StoreError> {
                let sql = format!(
                    "SELECT {TXN_COLUMNS} FROM op_transaction WHERE transaction_id = $1{}",
                    super::FOR_UPDATE
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(transaction_id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db("reading a transaction"))?;
                let Some(t) = row.as_ref().map(|r| txn_from_row(r, sealer)).transpose()? else {
                    return Ok(None);
                };
                let sql = format!(
                    "SELECT {CB_COLUMNS} FROM op_callback WHERE transaction_id = $1 ORDER BY id"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(transaction_id)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db("reading callbacks"))?;
                let callbacks = rows
                    .iter()
                    .map(|r| cb_from_row(r, sealer))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some((t, callbacks)))
            }

            /// Writes the event of the transaction having just moved to `state`, if that
            /// state has one (completed search, failed, timed out).
            async fn transition_event_in(
                conn: &mut Conn,
                sealer: &Sealer,
                transaction_id: &str,
                state: TransactionState,
                at: OffsetDateTime,
            ) -> Result<(), StoreError> {
                if !matches!(
                    state,
                    TransactionState::Completed
                        | TransactionState::Failed
                        | TransactionState::TimedOut
                        | TransactionState::Expired
                ) {
                    return Ok(());
                }
                let Some((t, callbacks)) = read_in(conn, sealer, transaction_id).await? else {
                    return Ok(());
                };
                let mut view = dci_client::ops::build_view(&t, &callbacks);
                view.state = state;
                if let Some(e) = events::transaction(&view, at) {
                    write_event(conn, &e).await?;
                }
                Ok(())
            }

            #[async_trait]
            impl OpsStore for $store {
                fn changes(&self) -> Option<Changes> {
                    Some(self.subscribe_changes())
                }

                async fn purge_before(
                    &self,
                    before: OffsetDateTime,
                ) -> Result<PurgeReport, StoreError> {
                    let finished = "state IN ($2, $3, $4, $5) AND updated_at < $1";
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let mut deleted = [0u64; 2];
                    let statements = [
                        format!(
                            "DELETE FROM op_callback WHERE transaction_id IN \
                             (SELECT transaction_id FROM op_transaction WHERE {finished})"
                        ),
                        format!("DELETE FROM op_transaction WHERE {finished}"),
                    ];
                    for (n, sql) in deleted.iter_mut().zip(statements) {
                        *n = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .bind(At::of(before))
                            .bind(TransactionState::Completed.as_str())
                            .bind(TransactionState::Failed.as_str())
                            .bind(TransactionState::TimedOut.as_str())
                            .bind(TransactionState::Expired.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(db("purging finished transactions"))?
                            .rows_affected();
                    }
                    let [of_finished, transactions] = deleted;
                    let loose = sqlx::query(
                        "DELETE FROM op_callback WHERE received_at < $1 AND (transaction_id IS NULL \
                         OR transaction_id NOT IN (SELECT transaction_id FROM op_transaction))",
                    )
                    .bind(At::of(before))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("purging callbacks"))?
                    .rows_affected();
                    let events = sqlx::query(
                        "DELETE FROM event WHERE created_ms < $1 AND NOT EXISTS \
                         (SELECT 1 FROM webhook_delivery d WHERE d.event_seq = event.seq \
                         AND d.state = 'pending')",
                    )
                    .bind(to_ms(before))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("purging events"))?
                    .rows_affected();
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(PurgeReport {
                        transactions,
                        callbacks: of_finished + loose,
                        events,
                    })
                }

                async fn insert_transaction(
                    &self,
                    t: &TransactionRecord,
                ) -> Result<(), StoreError> {
                    let refs = serde_json::to_string(&t.reference_ids)
                        .map_err(|e| corrupt("reference ids", e))?;
                    let (sealer, owner) = (self.sealer(), request_owner(&t.transaction_id));
                    let (sealed_with, request) = (sealer.key_id(), t.request.to_string());
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    sqlx::query(
                        "INSERT INTO op_transaction (transaction_id, source_code, kind, \
                         message_id, reference_ids, request, state, ack_status, correlation_id, \
                         error_code, error_message, ack_at, created_at, deadline_ms, updated_at, \
                         state_reason) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                         $16)",
                    )
                    .bind(&t.transaction_id)
                    .bind(&t.source_code)
                    .bind(t.kind.as_str())
                    .bind(&t.message_id)
                    .bind(refs)
                    .bind(sealer.seal_text(&owner, REQUEST, &request))
                    .bind(t.state.as_str())
                    .bind(t.ack.as_ref().map(|a| a.ack_status.clone()))
                    .bind(t.ack.as_ref().and_then(|a| a.correlation_id.clone()))
                    .bind(t.ack.as_ref().and_then(|a| a.error_code.clone()))
                    .bind(t.ack.as_ref().and_then(|a| a.error_message.clone()))
                    .bind(t.ack.as_ref().map(|a| At::of(a.at)))
                    .bind(At::of(t.created_at))
                    .bind(to_ms(t.deadline))
                    .bind(At::of(t.updated_at))
                    .bind(t.reason.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a transaction"))?;
                    if key_retired(&mut tx, &sealer, &sealed_with).await? {
                        sqlx::query(
                            "UPDATE op_transaction SET request = $2 WHERE transaction_id = $1",
                        )
                        .bind(&t.transaction_id)
                        .bind(sealer.seal_text(&owner, REQUEST, &request))
                        .execute(&mut *tx)
                        .await
                        .map_err(db("storing a transaction"))?;
                    }
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(())
                }

                async fn record_ack(
                    &self,
                    transaction_id: &str,
                    ack: &AckRecord,
                ) -> Result<bool, StoreError> {
                    // The ACK is recorded whatever the state; the state moves only forward, so
                    // a callback that beat the ACK keeps its `completed`.
                    let below = below(ack.state);
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let done = sqlx::query(
                        "UPDATE op_transaction SET ack_status = $2, correlation_id = $3, \
                         error_code = $4, error_message = $5, ack_at = $6, updated_at = $6 \
                         WHERE transaction_id = $1",
                    )
                    .bind(transaction_id)
                    .bind(&ack.ack_status)
                    .bind(&ack.correlation_id)
                    .bind(&ack.error_code)
                    .bind(&ack.error_message)
                    .bind(At::of(ack.at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("recording an ACK"))?;
                    let mut changed = false;
                    for from in below {
                        let moved = sqlx::query(
                            "UPDATE op_transaction SET state = $2 \
                             WHERE transaction_id = $1 AND state = $3",
                        )
                        .bind(transaction_id)
                        .bind(ack.state.as_str())
                        .bind(from)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("recording an ACK"))?;
                        changed |= moved.rows_affected() > 0;
                    }
                    if changed {
                        transition_event_in(&mut tx, &self.sealer(), transaction_id, ack.state, ack.at).await?;
                    }
                    tx.commit().await.map_err(db("committing"))?;
                    if changed {
                        self.publish(Change::Transaction(transaction_id.to_owned())).await;
                    }
                    Ok(done.rows_affected() > 0)
                }

                async fn advance_transaction(
                    &self,
                    transaction_id: &str,
                    state: TransactionState,
                    at: OffsetDateTime,
                    reason: Option<&str>,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let changed = advance_in(&mut tx, transaction_id, state, at, reason).await?;
                    if changed {
                        transition_event_in(&mut tx, &self.sealer(), transaction_id, state, at).await?;
                    }
                    tx.commit().await.map_err(db("committing"))?;
                    if changed {
                        self.publish(Change::Transaction(transaction_id.to_owned())).await;
                    }
                    Ok(changed)
                }

                async fn get_transaction(
                    &self,
                    transaction_id: &str,
                ) -> Result<Option<TransactionRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {TXN_COLUMNS} FROM op_transaction WHERE transaction_id = $1"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(transaction_id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(db("reading a transaction"))?;
                    row.as_ref().map(|r| txn_from_row(r, &self.sealer())).transpose()
                }

                async fn list_transactions(
                    &self,
                    filter: &TransactionFilter,
                ) -> Result<Vec<TransactionRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {TXN_COLUMNS} FROM op_transaction \
                         WHERE ($1 IS NULL OR source_code = $1) AND ($2 IS NULL OR state = $2) \
                         ORDER BY created_at DESC, transaction_id DESC LIMIT $3"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(filter.source_code.as_deref())
                        .bind(filter.state.map(|s| s.as_str()))
                        .bind(i64::from(filter.limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing transactions"))?;
                    rows.iter().map(|r| txn_from_row(r, &self.sealer())).collect()
                }

                async fn expire_overdue(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let expired: Vec<String> = sqlx::query_scalar(
                        "UPDATE op_transaction SET state = $1, updated_at = $2 \
                         WHERE state IN ($3, $4, $5, $7) AND deadline_ms < $6 \
                         RETURNING transaction_id",
                    )
                    .bind(TransactionState::TimedOut.as_str())
                    .bind(At::of(now))
                    .bind(TransactionState::Pending.as_str())
                    .bind(TransactionState::Acknowledged.as_str())
                    .bind(TransactionState::Partial.as_str())
                    .bind(to_ms(now))
                    .bind(TransactionState::Unknown.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("expiring overdue transactions"))?;
                    for id in &expired {
                        transition_event_in(&mut tx, &self.sealer(), id, TransactionState::TimedOut, now).await?;
                    }
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(expired.len() as u64)
                }

                async fn insert_callback(&self, c: &CallbackRecord) -> Result<bool, StoreError> {
                    let (sealer, owner) = (self.sealer(), body_owner(&c.source_code, &c.message_id));
                    let (sealed_with, body) = (sealer.key_id(), c.body.to_string());
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let done = sqlx::query(
                        "INSERT INTO op_callback (source_code, message_id, action, \
                         transaction_id, correlation_id, status, total_count, completed_count, \
                         signature, signature_key_id, body, tolerated, received_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                         ON CONFLICT (source_code, message_id) DO NOTHING",
                    )
                    .bind(&c.source_code)
                    .bind(&c.message_id)
                    .bind(&c.action)
                    .bind(&c.transaction_id)
                    .bind(&c.correlation_id)
                    .bind(&c.status)
                    .bind(i64_opt(c.total_count))
                    .bind(i64_opt(c.completed_count))
                    .bind(c.signature.as_str())
                    .bind(&c.signature_key_id)
                    .bind(sealer.seal_text(&owner, BODY, &body))
                    .bind(
                        serde_json::to_string(&c.tolerated)
                            .map_err(|e| corrupt("callback tolerated", e))?,
                    )
                    .bind(At::of(c.received_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a callback"))?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    // Before any row lock a rotation could wait for (see `key_retired`).
                    if key_retired(&mut tx, &sealer, &sealed_with).await? {
                        sqlx::query(
                            "UPDATE op_callback SET body = $3 WHERE source_code = $1 AND message_id = $2",
                        )
                        .bind(&c.source_code)
                        .bind(&c.message_id)
                        .bind(sealer.seal_text(&owner, BODY, &body))
                        .execute(&mut *tx)
                        .await
                        .map_err(db("storing a callback"))?;
                    }
                    let notification = if c.action == "notify" {
                        let registry: Option<String> = sqlx::query_scalar(
                            "SELECT registry_type FROM data_source WHERE code = $1",
                        )
                        .bind(&c.source_code)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db("reading a data source"))?;
                        events::notification(registry.and_then(|r| r.parse().ok()), c)
                    } else {
                        None
                    };
                    // Row locks first (the transaction's), events last (see `write_event`).
                    let mut moved = None;
                    if let Some(id) = &c.transaction_id
                        && let Some((t, callbacks)) = read_in(&mut tx, &self.sealer(), id).await?
                        && t.source_code == c.source_code
                    {
                        let view = dci_client::ops::build_view(&t, &callbacks);
                        if view.state != t.state
                            && view.state != TransactionState::Pending
                            && advance_in(&mut tx, id, view.state, c.received_at, None).await?
                        {
                            moved = Some((id.clone(), view.state));
                        }
                    }
                    if let Some(e) = notification {
                        write_event(&mut tx, &e).await?;
                    }
                    if let Some((id, state)) = &moved {
                        transition_event_in(&mut tx, &self.sealer(), id, *state, c.received_at).await?;
                    }
                    let moved = moved.map(|(id, _)| id);
                    tx.commit().await.map_err(db("committing"))?;
                    if let Some(id) = moved {
                        self.publish(Change::Transaction(id)).await;
                    }
                    Ok(true)
                }

                async fn get_callback(
                    &self,
                    source_code: &str,
                    message_id: &str,
                ) -> Result<Option<CallbackRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {CB_COLUMNS} FROM op_callback \
                         WHERE source_code = $1 AND message_id = $2"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(source_code)
                        .bind(message_id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(db("reading a callback"))?;
                    row.as_ref().map(|r| cb_from_row(r, &self.sealer())).transpose()
                }

                async fn transactions_by_correlation(
                    &self,
                    correlation_id: &str,
                ) -> Result<Vec<TransactionRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {TXN_COLUMNS} FROM op_transaction WHERE correlation_id = $1 \
                         ORDER BY created_at DESC LIMIT 2"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(correlation_id)
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("finding a transaction by correlation id"))?;
                    rows.iter().map(|r| txn_from_row(r, &self.sealer())).collect()
                }

                async fn callbacks_for(
                    &self,
                    transaction_id: &str,
                ) -> Result<Vec<CallbackRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {CB_COLUMNS} FROM op_callback WHERE transaction_id = $1 ORDER BY id"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(transaction_id)
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("reading callbacks"))?;
                    rows.iter().map(|r| cb_from_row(r, &self.sealer())).collect()
                }

                async fn list_callbacks(
                    &self,
                    filter: &CallbackFilter,
                ) -> Result<Vec<CallbackRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {CB_COLUMNS} FROM op_callback \
                         WHERE ($1 IS NULL OR source_code = $1) AND ($2 IS NULL OR action = $2) \
                         ORDER BY id DESC LIMIT $3"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(filter.source_code.as_deref())
                        .bind(filter.action.as_deref())
                        .bind(i64::from(filter.limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing callbacks"))?;
                    rows.iter().map(|r| cb_from_row(r, &self.sealer())).collect()
                }

                async fn upsert_subscription(
                    &self,
                    s: &SubscriptionRecord,
                ) -> Result<(), StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    // A no-op write first: it takes SQLite's write lock and PostgreSQL's row
                    // lock, so the state read next is the one this upsert replaces.
                    sqlx::query(
                        "UPDATE op_subscription SET state = state \
                         WHERE source_code = $1 AND code = $2",
                    )
                    .bind(&s.source_code)
                    .bind(&s.code)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("locking a subscription"))?;
                    let before: Option<String> = sqlx::query_scalar(
                        "SELECT state FROM op_subscription WHERE source_code = $1 AND code = $2",
                    )
                    .bind(&s.source_code)
                    .bind(&s.code)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("reading a subscription"))?;
                    let before = before.map(|b| b.parse()).transpose()?;
                    sqlx::query(
                        "INSERT INTO op_subscription (source_code, code, state, event_type, \
                         transaction_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (source_code, code) DO UPDATE SET state = excluded.state, \
                         event_type = COALESCE(excluded.event_type, op_subscription.event_type), \
                         transaction_id = excluded.transaction_id, updated_at = excluded.updated_at",
                    )
                    .bind(&s.source_code)
                    .bind(&s.code)
                    .bind(s.state.as_str())
                    .bind(&s.event_type)
                    .bind(&s.transaction_id)
                    .bind(At::of(s.created_at))
                    .bind(At::of(s.updated_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a subscription"))?;
                    if let Some(e) = events::subscription(before, s) {
                        write_event(&mut tx, &e).await?;
                    }
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(())
                }

                async fn list_subscriptions(
                    &self,
                    source_code: Option<&str>,
                ) -> Result<Vec<SubscriptionRecord>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT source_code, code, state, event_type, transaction_id, \
                         created_at, updated_at FROM op_subscription \
                         WHERE ($1 IS NULL OR source_code = $1) ORDER BY source_code, code",
                    )
                    .bind(source_code)
                    .fetch_all(self.pool())
                    .await
                    .map_err(db("listing subscriptions"))?;
                    rows.iter().map(sub_from_row).collect()
                }

                async fn insert_signing_key(
                    &self,
                    key: &SigningKeyRecord,
                    private_pkcs8_pem: &SecretString,
                ) -> Result<bool, StoreError> {
                    let owner = signing_key_owner(&key.key_id);
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let done = sqlx::query(
                        "INSERT INTO op_signing_key (key_id, algorithm, status, public_key_pem, \
                         created_at, activated_at, revoked_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key_id) DO NOTHING",
                    )
                    .bind(&key.key_id)
                    .bind(key.algorithm.as_str())
                    .bind(key.status.as_str())
                    .bind(&key.public_key_pem)
                    .bind(At::of(key.created_at))
                    .bind(key.activated_at.map(At::of))
                    .bind(key.revoked_at.map(At::of))
                    .bind(key.expires_at.map(At::of))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a signing key"))?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    // Sealed under the key the database records as current, read in this
                    // transaction (after its first write), so no rotation retires it unseen.
                    let sealer = self.sealer();
                    super::check_key(&mut *tx, &sealer).await?;
                    let sealed: SealedSecret =
                        sealer.seal(&owner, SIGNING_PRIVATE_KEY, private_pkcs8_pem);
                    sqlx::query(
                        "INSERT INTO sealed_secret (owner_id, field, key_id, nonce, ciphertext) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&owner)
                    .bind(SIGNING_PRIVATE_KEY)
                    .bind(&sealed.key_id)
                    .bind(&sealed.nonce)
                    .bind(&sealed.ciphertext)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a sealed signing key"))?;
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(true)
                }

                async fn get_signing_key(
                    &self,
                    key_id: &str,
                ) -> Result<Option<SigningKeyRecord>, StoreError> {
                    let sql = format!("SELECT {KEY_COLUMNS} FROM op_signing_key WHERE key_id = $1");
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(key_id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(db("reading a signing key"))?;
                    row.as_ref().map(key_from_row).transpose()
                }

                async fn signing_key_private(
                    &self,
                    key_id: &str,
                ) -> Result<Option<SecretString>, StoreError> {
                    let owner = signing_key_owner(key_id);
                    let row = sqlx::query(
                        "SELECT key_id, nonce, ciphertext FROM sealed_secret \
                         WHERE owner_id = $1 AND field = $2",
                    )
                    .bind(&owner)
                    .bind(SIGNING_PRIVATE_KEY)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(db("reading a sealed signing key"))?;
                    let Some(r) = row else {
                        return Ok(None);
                    };
                    let read = |e| db("reading a sealed signing key")(e);
                    let sealed = SealedSecret {
                        key_id: r.try_get("key_id").map_err(read)?,
                        nonce: r.try_get("nonce").map_err(read)?,
                        ciphertext: r.try_get("ciphertext").map_err(read)?,
                    };
                    Ok(Some(self.sealer().open(&owner, SIGNING_PRIVATE_KEY, &sealed)?))
                }

                async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {KEY_COLUMNS} FROM op_signing_key ORDER BY created_at, key_id"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing signing keys"))?;
                    let mut keys = rows
                        .iter()
                        .map(key_from_row)
                        .collect::<Result<Vec<_>, _>>()?;
                    // Oldest first, by time rather than by the stored text (SQLite keeps
                    // timestamps as text whose fraction varies in length).
                    keys.sort_by(|a, b| {
                        (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id))
                    });
                    Ok(keys)
                }

                async fn set_signing_key_status(
                    &self,
                    key_id: &str,
                    status: KeyStatus,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    // A revoked key stays revoked.
                    let query = match status {
                        KeyStatus::Active => sqlx::query(
                            "UPDATE op_signing_key SET status = $2, activated_at = $3 \
                             WHERE key_id = $1 AND status <> 'revoked'",
                        )
                        .bind(key_id)
                        .bind(status.as_str())
                        .bind(At::of(at)),
                        KeyStatus::Revoked => sqlx::query(
                            "UPDATE op_signing_key SET status = $2, revoked_at = $3 WHERE key_id = $1",
                        )
                        .bind(key_id)
                        .bind(status.as_str())
                        .bind(At::of(at)),
                        KeyStatus::Inactive => sqlx::query(
                            "UPDATE op_signing_key SET status = $2 \
                             WHERE key_id = $1 AND status <> 'revoked'",
                        )
                        .bind(key_id)
                        .bind(status.as_str()),
                    };
                    let done = query
                        .execute(self.pool())
                        .await
                        .map_err(db("updating a signing key"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn backlog(&self) -> Result<Backlog, StoreError> {
                    let mut b = Backlog::default();
                    let count = |n: i64| u64::try_from(n).unwrap_or(0);
                    let rows: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT state, COUNT(*) FROM op_transaction \
                         WHERE state IN ($1, $2, $3) GROUP BY state",
                    )
                    .bind(TransactionState::Pending.as_str())
                    .bind(TransactionState::Acknowledged.as_str())
                    .bind(TransactionState::Partial.as_str())
                    .fetch_all(self.pool())
                    .await
                    .map_err(db("counting open transactions"))?;
                    for (state, n) in rows {
                        match state.parse::<TransactionState>() {
                            Ok(TransactionState::Pending) => b.pending_transactions = count(n),
                            Ok(TransactionState::Acknowledged) => {
                                b.acknowledged_transactions = count(n)
                            }
                            Ok(TransactionState::Partial) => b.partial_transactions = count(n),
                            _ => {}
                        }
                    }
                    let rows: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT state, COUNT(*) FROM webhook_delivery \
                         WHERE state IN ('pending', 'dead') GROUP BY state",
                    )
                    .fetch_all(self.pool())
                    .await
                    .map_err(db("counting webhook deliveries"))?;
                    for (state, n) in rows {
                        match state.as_str() {
                            "pending" => b.pending_deliveries = count(n),
                            "dead" => b.dead_deliveries = count(n),
                            _ => {}
                        }
                    }
                    let events: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM event WHERE processed_at IS NULL")
                            .fetch_one(self.pool())
                            .await
                            .map_err(db("counting unprocessed events"))?;
                    b.unprocessed_events = count(events);
                    Ok(b)
                }

                async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
                    let applied: Vec<(i64, bool)> =
                        sqlx::query_as("SELECT version, success FROM _sqlx_migrations")
                            .fetch_all(self.pool())
                            .await
                            .map_err(db("reading the applied migrations"))?;
                    let known: Vec<i64> = $migrator().iter().map(|m| m.version).collect();
                    let ok: Vec<i64> = applied.iter().filter(|(_, s)| *s).map(|(v, _)| *v).collect();
                    Ok(SchemaStatus {
                        expected: known.iter().copied().max().unwrap_or(0),
                        missing: known.iter().copied().filter(|v| !ok.contains(v)).collect(),
                        unknown: applied
                            .iter()
                            .map(|(v, _)| *v)
                            .filter(|v| !known.contains(v))
                            .collect(),
                    })
                }
            }
        }
    };
}

pub(crate) use impl_ops_store;
