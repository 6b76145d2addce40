//! The [`dci_client::users::UserStore`] implementation (users, personal API tokens, console
//! sessions, the change audit; migration 0008), written once over a sqlx database type like
//! the other stores (see [`impl_user_store!`]). Ids are TEXT, instants unix milliseconds.

/// Implements `UserStore` for a backend struct with `fn pool(&self) -> &sqlx::Pool<$db>`.
macro_rules! impl_user_store {
    ($store:ty, $db:ty) => {
        mod user_store_impl {
            use async_trait::async_trait;
            use dci_client::StoreError;
            use dci_client::users::{
                ApiToken, ChangeFilter, ChangeRecord, ChangeTarget, ConsoleSession, Role,
                SessionLogin, User, UserStore,
            };
            use sqlx::Row;
            use time::OffsetDateTime;
            use uuid::Uuid;

            use $crate::common::db;
            use $crate::ops_common::{from_ms, to_ms};

            type DbRow = <$db as sqlx::Database>::Row;

            /// The row of `table` whose `column` is `key`, with the columns `columns` read by
            /// `read`; `what` names the read in errors. The names are constants of this file,
            /// never input.
            async fn find_by<T>(
                pool: &sqlx::Pool<$db>,
                (columns, table, column): (&str, &str, &str),
                key: &str,
                what: &'static str,
                read: fn(&DbRow) -> Result<T, StoreError>,
            ) -> Result<Option<T>, StoreError> {
                let q = format!("SELECT {columns} FROM {table} WHERE {column} = $1");
                sqlx::query(sqlx::AssertSqlSafe(q))
                    .bind(key)
                    .fetch_optional(pool)
                    .await
                    .map_err(db(what))?
                    .as_ref()
                    .map(read)
                    .transpose()
            }

            const USER_COLUMNS: &str = "id, username, role, created_ms, updated_ms";
            const TOKEN_COLUMNS: &str =
                "id, user_id, name, created_ms, expires_ms, revoked_ms";

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            fn uuid(s: &str) -> Result<Uuid, StoreError> {
                s.parse().map_err(|e| corrupt("an id", e))
            }

            fn role(s: &str) -> Result<Role, StoreError> {
                s.parse().map_err(|e| corrupt("a role", e))
            }

            fn user_from_row(r: &DbRow) -> Result<User, StoreError> {
                let read = |e| db("reading a user")(e);
                let id: String = r.try_get("id").map_err(read)?;
                let role_name: String = r.try_get("role").map_err(read)?;
                Ok(User {
                    id: uuid(&id)?,
                    username: r.try_get("username").map_err(read)?,
                    role: role(&role_name)?,
                    created_at: from_ms(r.try_get("created_ms").map_err(read)?),
                    updated_at: from_ms(r.try_get("updated_ms").map_err(read)?),
                })
            }

            fn token_from_row(r: &DbRow) -> Result<ApiToken, StoreError> {
                let read = |e| db("reading an API token")(e);
                let id: String = r.try_get("id").map_err(read)?;
                let user_id: String = r.try_get("user_id").map_err(read)?;
                let revoked: Option<i64> = r.try_get("revoked_ms").map_err(read)?;
                Ok(ApiToken {
                    id: uuid(&id)?,
                    user_id: uuid(&user_id)?,
                    name: r.try_get("name").map_err(read)?,
                    created_at: from_ms(r.try_get("created_ms").map_err(read)?),
                    expires_at: from_ms(r.try_get("expires_ms").map_err(read)?),
                    revoked_at: revoked.map(from_ms),
                })
            }

            fn session_from_row(r: &DbRow) -> Result<ConsoleSession, StoreError> {
                let read = |e| db("reading a console session")(e);
                let user_id: Option<String> = r.try_get("user_id").map_err(read)?;
                let role_name: Option<String> = r.try_get("role").map_err(read)?;
                let actor: Option<String> = r.try_get("actor").map_err(read)?;
                let login = match (role_name, actor) {
                    (Some(role_name), Some(actor)) => Some(SessionLogin {
                        user_id: user_id.as_deref().map(uuid).transpose()?,
                        role: role(&role_name)?,
                        actor,
                    }),
                    _ => None,
                };
                Ok(ConsoleSession {
                    id_digest: r.try_get("id_digest").map_err(read)?,
                    csrf: r.try_get("csrf").map_err(read)?,
                    login,
                    created_at: from_ms(r.try_get("created_ms").map_err(read)?),
                    expires_at: from_ms(r.try_get("expires_ms").map_err(read)?),
                })
            }

            fn change_from_row(r: &DbRow) -> Result<ChangeRecord, StoreError> {
                let read = |e| db("reading the change audit")(e);
                let target: String = r.try_get("target").map_err(read)?;
                let fields: String = r.try_get("fields").map_err(read)?;
                Ok(ChangeRecord {
                    at: from_ms(r.try_get("at_ms").map_err(read)?),
                    actor: r.try_get("actor").map_err(read)?,
                    target: ChangeTarget::parse(&target)
                        .ok_or_else(|| corrupt("a change target", &target))?,
                    target_id: r.try_get("target_id").map_err(read)?,
                    action: r.try_get("action").map_err(read)?,
                    fields: serde_json::from_str(&fields)
                        .map_err(|e| corrupt("a change's fields", e))?,
                })
            }

            fn unique_violation(e: &sqlx::Error) -> bool {
                matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
            }

            fn no_user(id: Uuid) -> StoreError {
                StoreError::Missing(format!(
                    "no user with id {id}: check it against the list of users"
                ))
            }

            #[async_trait]
            impl UserStore for $store {
                async fn create_user(
                    &self,
                    user: &User,
                    password_hash: &str,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO app_user (id, username, role, password_hash, created_ms, \
                         updated_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(user.id.to_string())
                    .bind(&user.username)
                    .bind(user.role.as_str())
                    .bind(password_hash)
                    .bind(to_ms(user.created_at))
                    .bind(to_ms(user.updated_at))
                    .execute(self.pool())
                    .await
                    .map_err(|e| {
                        if unique_violation(&e) {
                            StoreError::Conflict(format!(
                                "username {:?} is already taken: choose another",
                                user.username
                            ))
                        } else {
                            db("storing a user")(e)
                        }
                    })?;
                    Ok(())
                }

                async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
                    let at = (USER_COLUMNS, "app_user", "username");
                    find_by(self.pool(), at, username, "reading a user", user_from_row).await
                }

                async fn get_user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
                    let at = (USER_COLUMNS, "app_user", "id");
                    find_by(self.pool(), at, &id.to_string(), "reading a user", user_from_row).await
                }

                async fn list_users(&self) -> Result<Vec<User>, StoreError> {
                    let q = format!("SELECT {USER_COLUMNS} FROM app_user ORDER BY username");
                    sqlx::query(sqlx::AssertSqlSafe(q))
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing users"))?
                        .iter()
                        .map(user_from_row)
                        .collect()
                }

                async fn password_hash(&self, user_id: Uuid) -> Result<Option<String>, StoreError> {
                    let row = sqlx::query("SELECT password_hash FROM app_user WHERE id = $1")
                        .bind(user_id.to_string())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(db("reading a password hash"))?;
                    row.map(|r| r.try_get("password_hash"))
                        .transpose()
                        .map_err(db("reading a password hash"))
                }

                async fn set_password_hash(
                    &self,
                    user_id: Uuid,
                    password_hash: &str,
                ) -> Result<(), StoreError> {
                    let mut tx = self.pool().begin().await.map_err(db("starting a transaction"))?;
                    let done = sqlx::query(
                        "UPDATE app_user SET password_hash = $2, updated_ms = $3 WHERE id = $1",
                    )
                    .bind(user_id.to_string())
                    .bind(password_hash)
                    .bind(to_ms(OffsetDateTime::now_utc()))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("changing a password"))?;
                    if done.rows_affected() == 0 {
                        return Err(no_user(user_id));
                    }
                    sqlx::query("DELETE FROM console_session WHERE user_id = $1")
                        .bind(user_id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(db("ending a user's sessions"))?;
                    tx.commit().await.map_err(db("committing a password change"))
                }

                async fn delete_user(&self, user_id: Uuid) -> Result<(), StoreError> {
                    // Tokens and sessions go with it (ON DELETE CASCADE).
                    let done = sqlx::query("DELETE FROM app_user WHERE id = $1")
                        .bind(user_id.to_string())
                        .execute(self.pool())
                        .await
                        .map_err(db("deleting a user"))?;
                    if done.rows_affected() == 0 {
                        return Err(no_user(user_id));
                    }
                    Ok(())
                }

                async fn create_api_token(
                    &self,
                    token: &ApiToken,
                    digest: &str,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO api_token (id, user_id, name, digest, created_ms, \
                         expires_ms, revoked_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(token.id.to_string())
                    .bind(token.user_id.to_string())
                    .bind(&token.name)
                    .bind(digest)
                    .bind(to_ms(token.created_at))
                    .bind(to_ms(token.expires_at))
                    .bind(token.revoked_at.map(to_ms))
                    .execute(self.pool())
                    .await
                    .map_err(db("storing an API token"))?;
                    Ok(())
                }

                async fn find_api_token(
                    &self,
                    digest: &str,
                ) -> Result<Option<ApiToken>, StoreError> {
                    let at = (TOKEN_COLUMNS, "api_token", "digest");
                    find_by(self.pool(), at, digest, "reading an API token", token_from_row).await
                }

                async fn list_api_tokens(&self, user_id: Uuid) -> Result<Vec<ApiToken>, StoreError> {
                    let q = format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_token WHERE user_id = $1 \
                         ORDER BY created_ms DESC, id DESC"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(q))
                        .bind(user_id.to_string())
                        .fetch_all(self.pool())
                        .await
                        .map_err(db("listing API tokens"))?
                        .iter()
                        .map(token_from_row)
                        .collect()
                }

                async fn revoke_api_token(
                    &self,
                    id: Uuid,
                    at: OffsetDateTime,
                ) -> Result<ApiToken, StoreError> {
                    // A second revocation keeps the first instant.
                    sqlx::query(
                        "UPDATE api_token SET revoked_ms = COALESCE(revoked_ms, $2) WHERE id = $1",
                    )
                    .bind(id.to_string())
                    .bind(to_ms(at))
                    .execute(self.pool())
                    .await
                    .map_err(db("revoking an API token"))?;
                    let at = (TOKEN_COLUMNS, "api_token", "id");
                    find_by(self.pool(), at, &id.to_string(), "reading an API token", token_from_row)
                        .await?
                        .ok_or_else(|| {
                            StoreError::Missing(format!(
                                "no API token {id}: check the id against the user's list of tokens"
                            ))
                        })
                }

                async fn put_session(&self, s: &ConsoleSession) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO console_session (id_digest, csrf, user_id, role, actor, \
                         created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (id_digest) DO UPDATE SET csrf = $2, user_id = $3, \
                         role = $4, actor = $5, created_ms = $6, expires_ms = $7",
                    )
                    .bind(&s.id_digest)
                    .bind(&s.csrf)
                    .bind(s.login.as_ref().and_then(|l| l.user_id).map(|u| u.to_string()))
                    .bind(s.login.as_ref().map(|l| l.role.as_str()))
                    .bind(s.login.as_ref().map(|l| l.actor.clone()))
                    .bind(to_ms(s.created_at))
                    .bind(to_ms(s.expires_at))
                    .execute(self.pool())
                    .await
                    .map_err(db("storing a console session"))?;
                    Ok(())
                }

                async fn get_session(
                    &self,
                    id_digest: &str,
                    now: OffsetDateTime,
                ) -> Result<Option<ConsoleSession>, StoreError> {
                    sqlx::query(
                        "SELECT id_digest, csrf, user_id, role, actor, created_ms, expires_ms \
                         FROM console_session WHERE id_digest = $1 AND expires_ms > $2",
                    )
                    .bind(id_digest)
                    .bind(to_ms(now))
                    .fetch_optional(self.pool())
                    .await
                    .map_err(db("reading a console session"))?
                    .as_ref()
                    .map(session_from_row)
                    .transpose()
                }

                async fn touch_session(
                    &self,
                    id_digest: &str,
                    expires_at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    sqlx::query("UPDATE console_session SET expires_ms = $2 WHERE id_digest = $1")
                        .bind(id_digest)
                        .bind(to_ms(expires_at))
                        .execute(self.pool())
                        .await
                        .map_err(db("extending a console session"))?;
                    Ok(())
                }

                async fn delete_session(&self, id_digest: &str) -> Result<(), StoreError> {
                    sqlx::query("DELETE FROM console_session WHERE id_digest = $1")
                        .bind(id_digest)
                        .execute(self.pool())
                        .await
                        .map_err(db("deleting a console session"))?;
                    Ok(())
                }

                async fn purge_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
                    let done = sqlx::query("DELETE FROM console_session WHERE expires_ms <= $1")
                        .bind(to_ms(now))
                        .execute(self.pool())
                        .await
                        .map_err(db("purging console sessions"))?;
                    Ok(done.rows_affected())
                }

                async fn record_sign_in_failure(
                    &self,
                    key: &str,
                    now: OffsetDateTime,
                    interval: std::time::Duration,
                ) -> Result<OffsetDateTime, StoreError> {
                    let now_ms = to_ms(now);
                    sqlx::query("DELETE FROM sign_in_failure WHERE until_ms < $1")
                        .bind(now_ms)
                        .execute(self.pool())
                        .await
                        .map_err(db("forgetting old sign-in failures"))?;
                    let step = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
                    // One statement, so that failures arriving at several instances at once
                    // all count.
                    let until: i64 = sqlx::query_scalar(
                        "INSERT INTO sign_in_failure (user_key, until_ms) VALUES ($1, $2 + $3) \
                         ON CONFLICT (user_key) DO UPDATE SET until_ms = \
                         CASE WHEN sign_in_failure.until_ms > $2 THEN sign_in_failure.until_ms \
                         ELSE $2 END + $3 \
                         RETURNING until_ms",
                    )
                    .bind(key)
                    .bind(now_ms)
                    .bind(step)
                    .fetch_one(self.pool())
                    .await
                    .map_err(db("counting a failed sign-in"))?;
                    Ok(from_ms(until))
                }

                async fn sign_in_failures_until(
                    &self,
                    key: &str,
                ) -> Result<Option<OffsetDateTime>, StoreError> {
                    let until: Option<i64> =
                        sqlx::query_scalar("SELECT until_ms FROM sign_in_failure WHERE user_key = $1")
                            .bind(key)
                            .fetch_optional(self.pool())
                            .await
                            .map_err(db("reading failed sign-ins"))?;
                    Ok(until.map(from_ms))
                }

                async fn append_change(&self, c: &ChangeRecord) -> Result<(), StoreError> {
                    let fields = serde_json::to_string(&c.fields)
                        .map_err(|e| corrupt("a change's fields", e))?;
                    sqlx::query(
                        "INSERT INTO change_audit (at_ms, actor, target, target_id, action, \
                         fields) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(to_ms(c.at))
                    .bind(&c.actor)
                    .bind(c.target.as_str())
                    .bind(&c.target_id)
                    .bind(&c.action)
                    .bind(fields)
                    .execute(self.pool())
                    .await
                    .map_err(db("writing the change audit"))?;
                    Ok(())
                }

                async fn list_changes(
                    &self,
                    f: &ChangeFilter,
                ) -> Result<Vec<ChangeRecord>, StoreError> {
                    let limit = if f.limit == 0 { i64::MAX } else { i64::from(f.limit) };
                    sqlx::query(
                        "SELECT at_ms, actor, target, target_id, action, fields FROM change_audit \
                         WHERE ($1 IS NULL OR at_ms >= $1) AND ($2 IS NULL OR at_ms < $2) \
                         AND ($3 IS NULL OR target = $3) \
                         ORDER BY at_ms DESC, id DESC LIMIT $4",
                    )
                    .bind(f.range.since.map(to_ms))
                    .bind(f.range.until.map(to_ms))
                    .bind(f.target.map(|t| t.as_str()))
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await
                    .map_err(db("reading the change audit"))?
                    .iter()
                    .map(change_from_row)
                    .collect()
                }
            }
        }
    };
}

pub(crate) use impl_user_store;
