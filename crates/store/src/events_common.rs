//! The [`dci_client::events::EventStore`] implementation (outbox, webhook endpoints,
//! deliveries, attempts), written once over a sqlx database type like the other stores (see
//! [`impl_event_store!`]), and [`write_event`](self) — the one insert of an event and its
//! fan-out, used inside the operations store's transactions.

/// Owner id under which a webhook endpoint's secret is sealed in `sealed_secret`.
pub(crate) fn webhook_owner(id: &str) -> String {
    format!("webhook:{id}")
}

/// Field name of a webhook secret (part of the associated data: never rename).
pub(crate) const WEBHOOK_SECRET: &str = "webhook_secret";

/// Field name of an AMQP sink's broker URL (part of the associated data: never rename).
pub(crate) const BROKER_URL: &str = "broker_url";

/// The sealed field holding an endpoint's secret.
pub(crate) fn secret_field(sink: &dci_client::webhooks::Sink) -> &'static str {
    match sink {
        dci_client::webhooks::Sink::Webhook => WEBHOOK_SECRET,
        dci_client::webhooks::Sink::Amqp { .. } => BROKER_URL,
    }
}

/// Implements `EventStore` for a backend struct with `fn pool(&self) -> &sqlx::Pool<$db>` and
/// `fn sealer(&self) -> Arc<Sealer>`; the invoking module defines `SKIP_LOCKED` (the claim's
/// row-lock clause: ` FOR UPDATE SKIP LOCKED` on PostgreSQL, empty on SQLite) and
/// `EVENT_ORDER_LOCK` (see `write_event`).
macro_rules! impl_event_store {
    ($store:ty, $db:ty) => {
        pub(crate) mod events_store_impl {
            use async_trait::async_trait;
            use dci_client::StoreError;
            use dci_client::events::{EventCursor, EventFilter, EventKind, EventRecord, EventStore, NewEvent};
            use dci_client::webhooks::{
                AttemptOutcome, AttemptRecord, DeliveryFilter, DeliveryRecord, DeliveryState,
                Redelivery, RedeliverySelection, Sink, WebhookEndpoint,
            };
            use secrecy::SecretString;
            use sqlx::Row;
            use time::OffsetDateTime;

            use $crate::common::{db, ts, At};
            use $crate::events_common::{BROKER_URL, WEBHOOK_SECRET, secret_field, webhook_owner};
            use $crate::ops_common::{from_ms, to_ms};
            use $crate::seal::SealedSecret;

            type DbRow = <$db as sqlx::Database>::Row;
            type Conn = <$db as sqlx::Database>::Connection;

            const EVENT_COLUMNS: &str = "seq, id, kind, source_code, transaction_id, \
                subscription_code, created_at, payload, processed_at";

            const ENDPOINT_COLUMNS: &str = "id, url, kinds, enabled, description, created_at, \
                updated_at, sink, exchange, routing_key";

            const DELIVERY_COLUMNS: &str = "endpoint_id, event_id, event_kind, state, attempts, \
                next_attempt_ms, last_status, last_error, created_at, delivered_at";

            /// Matches an endpoint's stored kind filter (`e.kinds`, a JSON array) against an
            /// event kind given as `{kind}` (a column or a placeholder).
            fn takes(kind: &str) -> String {
                format!("(e.kinds = '[]' OR e.kinds LIKE '%\"' || {kind} || '\"%')")
            }

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            fn kind_of(s: &str) -> Result<EventKind, StoreError> {
                s.parse().map_err(|e| corrupt("event kind", e))
            }

            fn event_from_row(r: &DbRow) -> Result<EventRecord, StoreError> {
                let read = |e| db("reading an event")(e);
                let kind: String = r.try_get("kind").map_err(read)?;
                let payload: String = r.try_get("payload").map_err(read)?;
                Ok(EventRecord {
                    seq: r.try_get("seq").map_err(read)?,
                    id: r.try_get("id").map_err(read)?,
                    kind: kind_of(&kind)?,
                    source_code: r.try_get("source_code").map_err(read)?,
                    transaction_id: r.try_get("transaction_id").map_err(read)?,
                    subscription_code: r.try_get("subscription_code").map_err(read)?,
                    created_at: r.try_get("created_at").map_err(read)?,
                    payload: serde_json::from_str(&payload).map_err(|e| corrupt("event payload", e))?,
                    processed_at: r.try_get("processed_at").map_err(read)?,
                })
            }

            fn endpoint_from_row(r: &DbRow) -> Result<WebhookEndpoint, StoreError> {
                let read = |e| db("reading a webhook endpoint")(e);
                let kinds: String = r.try_get("kinds").map_err(read)?;
                let kinds: Vec<String> =
                    serde_json::from_str(&kinds).map_err(|e| corrupt("webhook kinds", e))?;
                let sink: String = r.try_get("sink").map_err(read)?;
                let sink = match sink.as_str() {
                    "webhook" => Sink::Webhook,
                    "amqp" => Sink::Amqp {
                        exchange: r
                            .try_get::<Option<String>, _>("exchange")
                            .map_err(read)?
                            .unwrap_or_default(),
                        routing_key: r.try_get("routing_key").map_err(read)?,
                    },
                    other => return Err(corrupt("endpoint sink", other)),
                };
                Ok(WebhookEndpoint {
                    id: r.try_get("id").map_err(read)?,
                    url: r.try_get("url").map_err(read)?,
                    sink,
                    kinds: kinds.iter().map(|k| kind_of(k)).collect::<Result<_, _>>()?,
                    enabled: r.try_get("enabled").map_err(read)?,
                    description: r.try_get("description").map_err(read)?,
                    created_at: r.try_get("created_at").map_err(read)?,
                    updated_at: r.try_get("updated_at").map_err(read)?,
                })
            }

            fn delivery_from_row(r: &DbRow) -> Result<DeliveryRecord, StoreError> {
                let read = |e| db("reading a webhook delivery")(e);
                let kind: String = r.try_get("event_kind").map_err(read)?;
                let state: String = r.try_get("state").map_err(read)?;
                let attempts: i64 = r.try_get("attempts").map_err(read)?;
                let status: Option<i64> = r.try_get("last_status").map_err(read)?;
                Ok(DeliveryRecord {
                    endpoint_id: r.try_get("endpoint_id").map_err(read)?,
                    event_id: r.try_get("event_id").map_err(read)?,
                    event_kind: kind_of(&kind)?,
                    state: DeliveryState::parse(&state)
                        .ok_or_else(|| corrupt("delivery state", &state))?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    next_attempt_at: from_ms(r.try_get("next_attempt_ms").map_err(read)?),
                    last_status: status.and_then(|s| u16::try_from(s).ok()),
                    last_error: r.try_get("last_error").map_err(read)?,
                    created_at: r.try_get("created_at").map_err(read)?,
                    delivered_at: r.try_get("delivered_at").map_err(read)?,
                })
            }

            /// The sink's stored columns: name, exchange, routing key.
            fn sink_columns(sink: &Sink) -> (&'static str, Option<&str>, Option<&str>) {
                match sink {
                    Sink::Webhook => ("webhook", None, None),
                    Sink::Amqp { exchange, routing_key } => {
                        ("amqp", Some(exchange.as_str()), routing_key.as_deref())
                    }
                }
            }

            fn kinds_json(kinds: &[EventKind]) -> String {
                serde_json::to_string(&kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>())
                    .unwrap_or_else(|_| "[]".into())
            }

            /// Inserts an event and one pending delivery per enabled endpoint that takes its
            /// kind, on a connection inside the caller's transaction. Returns its position.
            ///
            /// Positions must become visible in order, or a reader following the cursor
            /// passes one that commits later and never sees it. The invoking module's
            /// `EVENT_ORDER_LOCK` (PostgreSQL: a transaction-scoped advisory lock; SQLite,
            /// whose writers are serial anyway: none) makes the writers of events take their
            /// positions one transaction at a time, held until commit. Callers write their
            /// events last in a transaction, after every row lock they take, so the lock
            /// never waits in a cycle.
            pub(crate) async fn write_event(conn: &mut Conn, e: &NewEvent) -> Result<i64, StoreError> {
                if !super::EVENT_ORDER_LOCK.is_empty() {
                    sqlx::query(super::EVENT_ORDER_LOCK)
                        .execute(&mut *conn)
                        .await
                        .map_err(db("ordering events"))?;
                }
                let seq: i64 = sqlx::query_scalar(
                    "INSERT INTO event (id, kind, source_code, transaction_id, subscription_code, \
                     created_at, created_ms, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     RETURNING seq",
                )
                .bind(&e.id)
                .bind(e.kind.as_str())
                .bind(&e.source_code)
                .bind(&e.transaction_id)
                .bind(&e.subscription_code)
                .bind(At::of(e.created_at))
                .bind(to_ms(e.created_at))
                .bind(e.payload.to_string())
                .fetch_one(&mut *conn)
                .await
                .map_err(db("storing an event"))?;
                let sql = format!(
                    "INSERT INTO webhook_delivery (endpoint_id, event_seq, event_id, event_kind, \
                     state, attempts, next_attempt_ms, created_at) \
                     SELECT e.id, $1, $2, $3, 'pending', 0, $4, $5 FROM webhook_endpoint e \
                     WHERE e.enabled AND {}",
                    takes("$3")
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(seq)
                    .bind(&e.id)
                    .bind(e.kind.as_str())
                    .bind(to_ms(e.created_at))
                    .bind(At::of(e.created_at))
                    .execute(&mut *conn)
                    .await
                    .map_err(db("queueing webhook deliveries"))?;
                Ok(seq)
            }

            #[async_trait]
            impl EventStore for $store {
                async fn append_event(&self, e: &NewEvent) -> Result<EventRecord, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let seq = write_event(&mut tx, e).await?;
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(EventRecord {
                        seq,
                        id: e.id.clone(),
                        kind: e.kind,
                        source_code: e.source_code.clone(),
                        transaction_id: e.transaction_id.clone(),
                        subscription_code: e.subscription_code.clone(),
                        created_at: ts(e.created_at),
                        payload: e.payload.clone(),
                        processed_at: None,
                    })
                }

                async fn list_events(
                    &self,
                    filter: &EventFilter,
                ) -> Result<Vec<EventRecord>, StoreError> {
                    let kinds = filter
                        .kinds
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(",");
                    let sql = format!(
                        "SELECT {EVENT_COLUMNS} FROM event \
                         WHERE seq > $1 AND ($2 = '' OR (',' || $2 || ',') LIKE ('%,' || kind || ',%')) \
                         AND ($3 IS NULL OR source_code = $3) \
                         AND ($4 = 0 OR processed_at IS NULL) \
                         AND ($5 IS NULL OR created_ms >= $5) AND ($6 IS NULL OR created_ms < $6) \
                         ORDER BY seq LIMIT $7"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(filter.after.map_or(0, EventCursor::position))
                        .bind(kinds)
                        .bind(filter.source_code.as_deref())
                        .bind(i64::from(filter.unprocessed))
                        .bind(filter.since.map(to_ms))
                        .bind(filter.until.map(to_ms))
                        .bind(i64::from(filter.limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing events"))?;
                    rows.iter().map(event_from_row).collect()
                }

                async fn get_event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
                    let sql = format!("SELECT {EVENT_COLUMNS} FROM event WHERE id = $1");
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(db("reading an event"))?;
                    row.as_ref().map(event_from_row).transpose()
                }

                async fn mark_events_processed(
                    &self,
                    ids: &[String],
                    at: OffsetDateTime,
                ) -> Result<u64, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let mut n = 0;
                    for id in ids {
                        n += sqlx::query(
                            "UPDATE event SET processed_at = $2 WHERE id = $1 AND processed_at IS NULL",
                        )
                        .bind(id)
                        .bind(At::of(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(db("marking events processed"))?
                        .rows_affected();
                    }
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(n)
                }

                async fn create_webhook(
                    &self,
                    endpoint: &WebhookEndpoint,
                    secret: &SecretString,
                ) -> Result<(), StoreError> {
                    let owner = webhook_owner(&endpoint.id);
                    let field = secret_field(&endpoint.sink);
                    let (sink, exchange, routing_key) = sink_columns(&endpoint.sink);
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    sqlx::query(
                        "INSERT INTO webhook_endpoint (id, url, kinds, enabled, description, \
                         created_at, updated_at, sink, exchange, routing_key) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(&endpoint.id)
                    .bind(&endpoint.url)
                    .bind(kinds_json(&endpoint.kinds))
                    .bind(endpoint.enabled)
                    .bind(&endpoint.description)
                    .bind(At::of(endpoint.created_at))
                    .bind(At::of(endpoint.updated_at))
                    .bind(sink)
                    .bind(exchange)
                    .bind(routing_key)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a webhook endpoint"))?;
                    // Sealed under the key the database records as current, read in this
                    // transaction (after its first write), so no rotation retires it unseen.
                    let sealer = self.sealer();
                    super::check_key(&mut *tx, &sealer).await?;
                    let sealed: SealedSecret = sealer.seal(&owner, field, secret);
                    sqlx::query(
                        "INSERT INTO sealed_secret (owner_id, field, key_id, nonce, ciphertext) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&owner)
                    .bind(field)
                    .bind(&sealed.key_id)
                    .bind(&sealed.nonce)
                    .bind(&sealed.ciphertext)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a sealed webhook secret"))?;
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(())
                }

                async fn list_webhooks(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
                    let sql = format!(
                        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint ORDER BY created_at, id"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing webhook endpoints"))?;
                    let mut all = rows
                        .iter()
                        .map(endpoint_from_row)
                        .collect::<Result<Vec<_>, _>>()?;
                    all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
                    Ok(all)
                }

                async fn get_webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError> {
                    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint WHERE id = $1");
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(db("reading a webhook endpoint"))?;
                    row.as_ref().map(endpoint_from_row).transpose()
                }

                async fn webhook_secret(&self, id: &str) -> Result<Option<SecretString>, StoreError> {
                    let owner = webhook_owner(id);
                    let row = sqlx::query(
                        "SELECT field, key_id, nonce, ciphertext FROM sealed_secret \
                         WHERE owner_id = $1 AND field IN ($2, $3)",
                    )
                    .bind(&owner)
                    .bind(WEBHOOK_SECRET)
                    .bind(BROKER_URL)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(db("reading a sealed webhook secret"))?;
                    let Some(r) = row else {
                        return Ok(None);
                    };
                    let read = |e| db("reading a sealed webhook secret")(e);
                    let sealed = SealedSecret {
                        key_id: r.try_get("key_id").map_err(read)?,
                        nonce: r.try_get("nonce").map_err(read)?,
                        ciphertext: r.try_get("ciphertext").map_err(read)?,
                    };
                    let field: String = r.try_get("field").map_err(read)?;
                    Ok(Some(self.sealer().open(&owner, &field, &sealed)?))
                }

                async fn update_webhook(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE webhook_endpoint SET url = $2, kinds = $3, enabled = $4, \
                         description = $5, updated_at = $6, exchange = $8, routing_key = $9 \
                         WHERE id = $1 AND sink = $7",
                    )
                    .bind(&endpoint.id)
                    .bind(&endpoint.url)
                    .bind(kinds_json(&endpoint.kinds))
                    .bind(endpoint.enabled)
                    .bind(&endpoint.description)
                    .bind(At::of(endpoint.updated_at))
                    .bind(sink_columns(&endpoint.sink).0)
                    .bind(sink_columns(&endpoint.sink).1)
                    .bind(sink_columns(&endpoint.sink).2)
                    .execute(self.pool())
                    .await
                    .map_err(db("updating a webhook endpoint"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    for sql in [
                        "DELETE FROM webhook_attempt WHERE endpoint_id = $1",
                        "DELETE FROM webhook_delivery WHERE endpoint_id = $1",
                    ] {
                        sqlx::query(sql)
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(db("removing a webhook endpoint"))?;
                    }
                    sqlx::query("DELETE FROM sealed_secret WHERE owner_id = $1")
                        .bind(webhook_owner(id))
                        .execute(&mut *tx)
                        .await
                        .map_err(db("removing a webhook secret"))?;
                    let done = sqlx::query("DELETE FROM webhook_endpoint WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("removing a webhook endpoint"))?;
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn claim_webhook(
                    &self,
                    owner: &str,
                    now: OffsetDateTime,
                    lease_until: OffsetDateTime,
                ) -> Result<Option<WebhookEndpoint>, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    // SQLite: take the write lock first, so the candidate read below cannot
                    // be overtaken by another claim (a no-op on PostgreSQL).
                    sqlx::query("UPDATE webhook_endpoint SET lease_owner = lease_owner WHERE 1 = 0")
                        .execute(&mut *tx)
                        .await
                        .map_err(db("claiming a webhook endpoint"))?;
                    let sql = format!(
                        "SELECT e.id FROM webhook_endpoint e \
                         WHERE e.enabled AND (e.lease_owner IS NULL OR e.lease_until_ms < $1) \
                         AND (SELECT d.next_attempt_ms FROM webhook_delivery d \
                              WHERE d.endpoint_id = e.id AND d.state = 'pending' \
                              ORDER BY d.event_seq LIMIT 1) <= $1 \
                         ORDER BY COALESCE(e.lease_until_ms, 0), e.id LIMIT 1{}",
                        super::SKIP_LOCKED
                    );
                    let id: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(to_ms(now))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db("claiming a webhook endpoint"))?;
                    let Some(id) = id else {
                        return Ok(None);
                    };
                    sqlx::query(
                        "UPDATE webhook_endpoint SET lease_owner = $2, lease_until_ms = $3 WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(owner)
                    .bind(to_ms(lease_until))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("claiming a webhook endpoint"))?;
                    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint WHERE id = $1");
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db("claiming a webhook endpoint"))?;
                    let endpoint = endpoint_from_row(&row)?;
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(Some(endpoint))
                }

                async fn renew_webhook_lease(
                    &self,
                    id: &str,
                    owner: &str,
                    lease_until: Option<OffsetDateTime>,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE webhook_endpoint SET lease_owner = $3, lease_until_ms = $4 \
                         WHERE id = $1 AND lease_owner = $2",
                    )
                    .bind(id)
                    .bind(owner)
                    .bind(lease_until.map(|_| owner))
                    .bind(lease_until.map(to_ms))
                    .execute(self.pool())
                    .await
                    .map_err(db("renewing a webhook lease"))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn head_delivery(
                    &self,
                    endpoint_id: &str,
                ) -> Result<Option<(DeliveryRecord, EventRecord)>, StoreError> {
                    let sql = format!(
                        "SELECT {DELIVERY_COLUMNS}, event_seq FROM webhook_delivery \
                         WHERE endpoint_id = $1 AND state = 'pending' ORDER BY event_seq LIMIT 1"
                    );
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(endpoint_id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(db("reading a webhook delivery"))?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let delivery = delivery_from_row(&row)?;
                    let seq: i64 = row.try_get("event_seq").map_err(db("reading a webhook delivery"))?;
                    let sql = format!("SELECT {EVENT_COLUMNS} FROM event WHERE seq = $1");
                    let ev = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(seq)
                        .fetch_one(self.pool())
                        .await
                        .map_err(db("reading an event"))?;
                    Ok(Some((delivery, event_from_row(&ev)?)))
                }

                async fn finish_attempt(
                    &self,
                    owner: &str,
                    attempt: &AttemptRecord,
                    outcome: &AttemptOutcome,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let (state, next_ms, delivered_at, error) = match outcome {
                        AttemptOutcome::Delivered => {
                            (DeliveryState::Delivered, to_ms(attempt.at), Some(At::of(attempt.at)), None)
                        }
                        AttemptOutcome::Retry(at) => {
                            (DeliveryState::Pending, to_ms(*at), None, attempt.error.clone())
                        }
                        AttemptOutcome::Dead(why) => (
                            DeliveryState::Dead,
                            to_ms(attempt.at),
                            None,
                            Some(match &attempt.error {
                                Some(e) => format!("{why}; last error: {e}"),
                                None => why.clone(),
                            }),
                        ),
                    };
                    let done = sqlx::query(
                        "UPDATE webhook_delivery SET state = $3, attempts = $4, \
                         next_attempt_ms = $5, last_status = $6, last_error = $7, delivered_at = $8 \
                         WHERE endpoint_id = $1 AND event_id = $2 AND state = 'pending' \
                         AND EXISTS (SELECT 1 FROM webhook_endpoint e \
                                     WHERE e.id = $1 AND e.lease_owner = $9)",
                    )
                    .bind(&attempt.endpoint_id)
                    .bind(&attempt.event_id)
                    .bind(state.as_str())
                    .bind(i64::from(attempt.attempt))
                    .bind(next_ms)
                    .bind(attempt.status.map(i64::from))
                    .bind(error)
                    .bind(delivered_at)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("recording a webhook attempt"))?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    // Every attempt made is recorded (an AMQP publish confirmed has neither status
                    // nor error); a dead letter for age alone made none.
                    let made = !matches!(outcome, AttemptOutcome::Dead(_))
                        || attempt.status.is_some()
                        || attempt.error.is_some();
                    if made {
                        sqlx::query(
                            "INSERT INTO webhook_attempt (endpoint_id, event_id, attempt, at, \
                             status, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .bind(&attempt.endpoint_id)
                        .bind(&attempt.event_id)
                        .bind(i64::from(attempt.attempt))
                        .bind(At::of(attempt.at))
                        .bind(attempt.status.map(i64::from))
                        .bind(&attempt.error)
                        .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
                        .execute(&mut *tx)
                        .await
                        .map_err(db("recording a webhook attempt"))?;
                    }
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(true)
                }

                async fn list_deliveries(
                    &self,
                    filter: &DeliveryFilter,
                ) -> Result<Vec<DeliveryRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_delivery \
                         WHERE ($1 IS NULL OR endpoint_id = $1) AND ($2 IS NULL OR event_id = $2) \
                         AND ($3 IS NULL OR state = $3) \
                         ORDER BY event_seq DESC, endpoint_id LIMIT $4"
                    );
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(filter.endpoint_id.as_deref())
                        .bind(filter.event_id.as_deref())
                        .bind(filter.state.map(DeliveryState::as_str))
                        .bind(i64::from(filter.limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing webhook deliveries"))?;
                    rows.iter().map(delivery_from_row).collect()
                }

                async fn list_attempts(
                    &self,
                    endpoint_id: &str,
                    event_id: &str,
                ) -> Result<Vec<AttemptRecord>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT endpoint_id, event_id, attempt, at, status, error, duration_ms \
                         FROM webhook_attempt WHERE endpoint_id = $1 AND event_id = $2 ORDER BY at, attempt",
                    )
                    .bind(endpoint_id)
                    .bind(event_id)
                    .fetch_all(self.pool())
                    .await
                    .map_err(db("listing webhook attempts"))?;
                    let read = |e| db("reading a webhook attempt")(e);
                    rows.iter()
                        .map(|r| {
                            let attempt: i64 = r.try_get("attempt").map_err(read)?;
                            let status: Option<i64> = r.try_get("status").map_err(read)?;
                            let ms: i64 = r.try_get("duration_ms").map_err(read)?;
                            Ok(AttemptRecord {
                                endpoint_id: r.try_get("endpoint_id").map_err(read)?,
                                event_id: r.try_get("event_id").map_err(read)?,
                                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                                at: r.try_get("at").map_err(read)?,
                                status: status.and_then(|s| u16::try_from(s).ok()),
                                error: r.try_get("error").map_err(read)?,
                                duration_ms: u64::try_from(ms).unwrap_or(0),
                            })
                        })
                        .collect()
                }

                async fn redeliver(
                    &self,
                    selection: &Redelivery,
                    now: OffsetDateTime,
                ) -> Result<u64, StoreError> {
                    let (event_id, since, until) = match &selection.events {
                        RedeliverySelection::Event(id) => (Some(id.as_str()), None, None),
                        RedeliverySelection::Range { since, until } => {
                            (None, Some(to_ms(*since)), Some(to_ms(*until)))
                        }
                    };
                    let sql = format!(
                        "INSERT INTO webhook_delivery (endpoint_id, event_seq, event_id, \
                         event_kind, state, attempts, next_attempt_ms, created_at) \
                         SELECT e.id, ev.seq, ev.id, ev.kind, 'pending', 0, $4, $5 \
                         FROM event ev CROSS JOIN webhook_endpoint e \
                         WHERE e.enabled AND ($1 IS NULL OR ev.id = $1) \
                         AND ($2 IS NULL OR ev.created_ms >= $2) AND ($3 IS NULL OR ev.created_ms < $3) \
                         AND ($6 IS NULL OR e.id = $6) AND {} \
                         ON CONFLICT (endpoint_id, event_seq) DO UPDATE SET state = 'pending', \
                         attempts = 0, next_attempt_ms = excluded.next_attempt_ms, \
                         last_status = NULL, last_error = NULL, delivered_at = NULL",
                        takes("ev.kind")
                    );
                    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(event_id)
                        .bind(since)
                        .bind(until)
                        .bind(to_ms(now))
                        .bind(At::of(now))
                        .bind(selection.endpoint_id.as_deref())
                        .execute(self.pool())
                        .await
                        .map_err(db("queueing redeliveries"))?;
                    Ok(done.rows_affected())
                }
            }
        }
    };
}

pub(crate) use impl_event_store;
