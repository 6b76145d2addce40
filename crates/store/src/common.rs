//! What both backends share: the row shapes, conversions at the edge, error mapping, and the one
//! `Store` implementation written once over a sqlx database type (see [`impl_store!`]).

use std::collections::HashMap;
use std::path::PathBuf;

use dci_client::source::CallbackSettings;
use dci_client::store::AuditEntry;
use dci_client::{
    AuthConfig, CredentialLocation, DataSource, Endpoints, OAuth2Config, SignaturePolicy,
    SourceState, StoreError, TlsSettings,
};
use dci_client::{RecoverySettings, RetrySettings};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Field names of sealed secrets (part of the associated data: never rename).
pub(crate) const BEARER_TOKEN: &str = "bearer_token";
pub(crate) const BASIC_PASSWORD: &str = "basic_password";
pub(crate) const CLIENT_SECRET: &str = "client_secret";
pub(crate) const ACCESS_TOKEN: &str = "cached_access_token";
pub(crate) const CALLBACK_SECRET: &str = "callback_secret";

/// The key under which `store_meta` records the id of the master key in use.
pub(crate) const META_MASTER_KEY_ID: &str = "master_key_id";

/// Non-secret settings kept as JSON in `data_source.config`. Every field defaults, so rows
/// written by older versions still read.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct StoredConfig {
    basic_username: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    credential_location: CredentialLocation,
    sender_id: Option<String>,
    receiver_id: Option<String>,
    callback_uri: Option<String>,
    endpoints: Endpoints,
    tls_verify: Option<bool>,
    ca_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    timeout_secs: Option<u32>,
    signing_key_id: Option<String>,
    reply_signature_policy: SignaturePolicy,
    registry_public_keys: Vec<String>,
    registry_jwks_url: Option<String>,
    /// Absent in records written before profiles existed: `standard`.
    profile: dci_client::registries::Profile,
    /// Absent in records written before callback authentication existed: `false`.
    accept_unauthenticated_callbacks: bool,
    /// Absent in records written before callbacks were answered the DCI way: `false`.
    http_refusals: bool,
    /// Absent in records written before per-source recovery settings existed: the defaults.
    recovery: RecoverySettings,
    /// Absent in records written before per-source retry settings existed: the engine's.
    retry: RetrySettings,
    /// Absent in records written before per-source limits existed: the defaults.
    limits: dci_client::LimitSettings,
    notes: String,
}

/// A `data_source` row.
pub(crate) struct SourceRow {
    pub(crate) id: String,
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) registry_type: String,
    pub(crate) base_url: String,
    pub(crate) auth_kind: String,
    pub(crate) state: String,
    pub(crate) active: bool,
    pub(crate) config: String,
    pub(crate) last_test_at: Option<OffsetDateTime>,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
}

/// Audit entries split, in order, into runs whose lengths are powers of two up to
/// [`AUDIT_CHUNK_MAX`] (the binary digits of the count, largest first): a handful of statement
/// shapes, each prepared once per connection, instead of one per batch size.
pub(crate) fn audit_chunks(entries: &[AuditEntry]) -> Vec<&[AuditEntry]> {
    let mut chunks = Vec::new();
    let mut rest = entries;
    while !rest.is_empty() {
        // The largest power of two not above the rest or the cap (itself a power of two).
        let n = 1 << rest.len().min(AUDIT_CHUNK_MAX).ilog2();
        let (chunk, tail) = rest.split_at(n);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// The largest audit INSERT (rows); 11 parameters a row stays far below either backend's
/// parameter limit (SQLite 32 766, PostgreSQL 65 535).
pub(crate) const AUDIT_CHUNK_MAX: usize = 256;

/// Both backends keep microseconds in UTC, so a value reads back equal on either; instants are
/// bound as [`At`] (fixed-width text in SQLite, so that text order is time order).
pub(crate) use crate::instant::{At, ts};

impl SourceRow {
    pub(crate) fn from_source(s: &DataSource) -> SourceRow {
        let mut c = StoredConfig {
            sender_id: s.sender_id.clone(),
            receiver_id: s.receiver_id.clone(),
            callback_uri: s.callback_uri.clone(),
            endpoints: s.endpoints.clone(),
            tls_verify: Some(s.tls.verify),
            ca_file: s.tls.ca_file.clone(),
            client_cert_file: s.tls.client_cert_file.clone(),
            client_key_file: s.tls.client_key_file.clone(),
            timeout_secs: Some(s.timeout_secs),
            signing_key_id: s.signing_key_id.clone(),
            reply_signature_policy: s.reply_signature_policy,
            registry_public_keys: s.registry_public_keys.clone(),
            registry_jwks_url: s.registry_jwks_url.clone(),
            profile: s.profile,
            accept_unauthenticated_callbacks: s.callbacks.accept_unauthenticated,
            http_refusals: s.callbacks.http_refusals,
            recovery: s.recovery,
            retry: s.retry,
            limits: s.limits,
            notes: s.notes.clone(),
            ..StoredConfig::default()
        };
        match &s.auth {
            AuthConfig::None | AuthConfig::Bearer { .. } => {}
            AuthConfig::Basic { username, .. } => c.basic_username = Some(username.clone()),
            AuthConfig::OAuth2(o) => {
                c.token_url = Some(o.token_url.clone());
                c.client_id = Some(o.client_id.clone());
                c.scope = o.scope.clone();
                c.credential_location = o.credential_location;
            }
        }
        SourceRow {
            id: s.id.to_string(),
            code: s.code.clone(),
            name: s.name.clone(),
            registry_type: s.registry_type.as_str().to_owned(),
            base_url: s.base_url.clone(),
            auth_kind: s.auth.kind().as_str().to_owned(),
            state: s.state.as_str().to_owned(),
            active: s.active,
            config: serde_json::to_string(&c).expect("config serializes"),
            last_test_at: s.last_test_at.map(ts),
            last_error: s.last_error.clone(),
            created_at: ts(s.created_at),
            updated_at: ts(s.updated_at),
        }
    }

    /// Rebuilds the record; `secrets` are the opened secrets of this row by field name.
    pub(crate) fn into_source(
        self,
        mut secrets: HashMap<String, SecretString>,
    ) -> Result<DataSource, StoreError> {
        let corrupt =
            |what: &str| StoreError::Corrupt(format!("data source {}: {what}", self.code));
        let c: StoredConfig =
            serde_json::from_str(&self.config).map_err(|e| corrupt(&format!("config: {e}")))?;
        let mut secret = |field: &str| {
            secrets
                .remove(field)
                .ok_or_else(|| corrupt(&format!("{field} is missing")))
        };
        let auth = match self.auth_kind.as_str() {
            "none" => AuthConfig::None,
            "bearer" => AuthConfig::Bearer {
                token: secret(BEARER_TOKEN)?,
            },
            "basic" => AuthConfig::Basic {
                username: c.basic_username.clone().unwrap_or_default(),
                password: secret(BASIC_PASSWORD)?,
            },
            "oauth2" => AuthConfig::OAuth2(OAuth2Config {
                token_url: c.token_url.clone().unwrap_or_default(),
                client_id: c.client_id.clone().unwrap_or_default(),
                client_secret: secret(CLIENT_SECRET)?,
                scope: c.scope.clone(),
                credential_location: c.credential_location,
            }),
            other => return Err(corrupt(&format!("unknown auth kind {other:?}"))),
        };
        // Sources stored before callback secrets existed have none.
        let callbacks = CallbackSettings {
            secret: secrets.remove(CALLBACK_SECRET),
            accept_unauthenticated: c.accept_unauthenticated_callbacks,
            http_refusals: c.http_refusals,
        };
        Ok(DataSource {
            id: self.id.parse().map_err(|_| corrupt("bad id"))?,
            registry_type: self
                .registry_type
                .parse()
                .map_err(|_| corrupt(&format!("unknown registry type {:?}", self.registry_type)))?,
            state: self
                .state
                .parse::<SourceState>()
                .map_err(|e| corrupt(&e.to_string()))?,
            code: self.code,
            name: self.name,
            base_url: self.base_url,
            auth,
            sender_id: c.sender_id,
            receiver_id: c.receiver_id,
            callback_uri: c.callback_uri,
            endpoints: c.endpoints,
            tls: TlsSettings {
                verify: c.tls_verify.unwrap_or(true),
                ca_file: c.ca_file,
                client_cert_file: c.client_cert_file,
                client_key_file: c.client_key_file,
            },
            timeout_secs: c.timeout_secs.unwrap_or(DataSource::DEFAULT_TIMEOUT_SECS),
            signing_key_id: c.signing_key_id,
            reply_signature_policy: c.reply_signature_policy,
            registry_public_keys: c.registry_public_keys,
            registry_jwks_url: c.registry_jwks_url,
            profile: c.profile,
            callbacks,
            recovery: c.recovery,
            retry: c.retry,
            limits: c.limits,
            active: self.active,
            notes: c.notes,
            last_test_at: self.last_test_at,
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The secrets of a data source, by field name: its credential and its callback secret.
pub(crate) fn source_secrets(s: &DataSource) -> Vec<(&'static str, &SecretString)> {
    let mut out = match &s.auth {
        AuthConfig::None => vec![],
        AuthConfig::Bearer { token } => vec![(BEARER_TOKEN, token)],
        AuthConfig::Basic { password, .. } => vec![(BASIC_PASSWORD, password)],
        AuthConfig::OAuth2(o) => vec![(CLIENT_SECRET, &o.client_secret)],
    };
    if let Some(secret) = &s.callbacks.secret {
        out.push((CALLBACK_SECRET, secret));
    }
    out
}

/// Whether two auth configurations present the same credentials to the registry.
pub(crate) fn same_credentials(a: &AuthConfig, b: &AuthConfig) -> bool {
    let eq = |x: &SecretString, y: &SecretString| x.expose_secret() == y.expose_secret();
    match (a, b) {
        (AuthConfig::None, AuthConfig::None) => true,
        (AuthConfig::Bearer { token: x }, AuthConfig::Bearer { token: y }) => eq(x, y),
        (
            AuthConfig::Basic {
                username: u1,
                password: p1,
            },
            AuthConfig::Basic {
                username: u2,
                password: p2,
            },
        ) => u1 == u2 && eq(p1, p2),
        (AuthConfig::OAuth2(x), AuthConfig::OAuth2(y)) => {
            x.token_url == y.token_url
                && x.client_id == y.client_id
                && x.scope == y.scope
                && x.credential_location == y.credential_location
                && eq(&x.client_secret, &y.client_secret)
        }
        _ => false,
    }
}

/// Wraps a driver error without its details in the message (they stay in `source()`).
pub(crate) fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Backend {
        message: what.to_owned(),
        source: Box::new(e),
    }
}

/// A unique violation on insert or update of a data source can only be the code (the id is
/// fresh or unchanged), so it becomes [`StoreError::CodeTaken`].
pub(crate) fn map_write_err(
    code: &str,
    what: &'static str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::CodeTaken(code.to_owned())
        }
        _ => db(what)(e),
    }
}

/// Implements `dci_client::Store` for a backend struct with `pool: sqlx::Pool<$db>` and a
/// `fn sealer(&self) -> Arc<Sealer>`. The SQL is shared: both drivers take `$N` placeholders.
/// `$key_check` reads the master key id inside a writing transaction; PostgreSQL locks the row
/// (`FOR SHARE`) so a concurrent rotation cannot interleave, SQLite has a single writer anyway.
/// `$after_rotation` (an `Option<&str>` statement) runs after a rotation commits, to make it
/// durable where a commit alone is not (SQLite's WAL with `synchronous = NORMAL`).
macro_rules! impl_store {
    ($store:ty, $db:ty, $key_check:expr, $after_rotation:expr, $write_event:path) => {
        pub(crate) mod store_impl {
            use std::collections::HashMap;
            use std::sync::Arc;

            use dci_client::changes::Change;
            use dci_client::{
                AuditEntry, AuditFilter, AuditOutcome, CachedToken, DataSource, MasterKey,
                RotationReport, SourceChange, SourceFilter, SourceState, StoreError, TokenLease,
            };
            use secrecy::SecretString;
            use sqlx::Row;
            use time::OffsetDateTime;
            use uuid::Uuid;

            use $crate::common::{self, db, At, SourceRow};
            use $crate::seal::{SealedSecret, Sealer};

            type Conn = <$db as sqlx::Database>::Connection;
            type DbRow = <$db as sqlx::Database>::Row;

            fn source_row(r: &DbRow) -> Result<SourceRow, sqlx::Error> {
                Ok(SourceRow {
                    id: r.try_get("id")?,
                    code: r.try_get("code")?,
                    name: r.try_get("name")?,
                    registry_type: r.try_get("registry_type")?,
                    base_url: r.try_get("base_url")?,
                    auth_kind: r.try_get("auth_kind")?,
                    state: r.try_get("state")?,
                    active: r.try_get("active")?,
                    config: r.try_get("config")?,
                    last_test_at: r.try_get("last_test_at")?,
                    last_error: r.try_get("last_error")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            /// Makes the key the database records as current (read in the caller's writing
            /// transaction, so no rotation commits in between) the one `sealer` seals with;
            /// fails when the ring does not hold it, even after re-reading it.
            pub(crate) async fn check_key(
                conn: &mut Conn,
                sealer: &Sealer,
            ) -> Result<(), StoreError> {
                match recorded_key_id(conn).await? {
                    Some(id) => sealer.adopt(&id),
                    None => Ok(()),
                }
            }

            /// The id of the master key the store's secrets are sealed under, once recorded.
            async fn recorded_key_id(conn: &mut Conn) -> Result<Option<String>, StoreError> {
                sqlx::query_scalar($key_check)
                    .bind(common::META_MASTER_KEY_ID)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db("reading the master key id"))
            }

            /// Records the key on first use; afterwards, fails on any other key.
            pub(super) async fn claim_key(
                pool: &sqlx::Pool<$db>,
                sealer: &Sealer,
            ) -> Result<(), StoreError> {
                // Read first: once the key is recorded (every open but the first), opening
                // takes no write lock, so it never waits behind another process's writes.
                let mut conn = pool.acquire().await.map_err(db("connecting"))?;
                if let Some(id) = recorded_key_id(&mut conn).await? {
                    return sealer.adopt(&id);
                }
                sqlx::query(
                    "INSERT INTO store_meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(common::META_MASTER_KEY_ID)
                .bind(sealer.key_id())
                .execute(&mut *conn)
                .await
                .map_err(db("recording the master key id"))?;
                check_key(&mut conn, sealer).await
            }

            async fn put_secret(
                conn: &mut Conn,
                owner: &str,
                field: &str,
                sealed: &SealedSecret,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sealed_secret (owner_id, field, key_id, nonce, ciphertext) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner_id, field) DO UPDATE SET \
                     key_id = excluded.key_id, nonce = excluded.nonce, \
                     ciphertext = excluded.ciphertext",
                )
                .bind(owner)
                .bind(field)
                .bind(&sealed.key_id)
                .bind(&sealed.nonce)
                .bind(&sealed.ciphertext)
                .execute(&mut *conn)
                .await
                .map_err(db("storing a sealed secret"))?;
                Ok(())
            }

            async fn open_secrets(
                conn: &mut Conn,
                sealer: &Sealer,
                owner: &str,
            ) -> Result<HashMap<String, SecretString>, StoreError> {
                let rows = sqlx::query(
                    "SELECT field, key_id, nonce, ciphertext FROM sealed_secret \
                     WHERE owner_id = $1",
                )
                .bind(owner)
                .fetch_all(&mut *conn)
                .await
                .map_err(db("reading sealed secrets"))?;
                let mut out = HashMap::new();
                for r in rows {
                    let field: String = r.try_get("field").map_err(db("reading sealed secrets"))?;
                    let sealed = SealedSecret {
                        key_id: r.try_get("key_id").map_err(db("reading sealed secrets"))?,
                        nonce: r.try_get("nonce").map_err(db("reading sealed secrets"))?,
                        ciphertext: r.try_get("ciphertext").map_err(db("reading sealed secrets"))?,
                    };
                    let secret = sealer.open(owner, &field, &sealed)?;
                    out.insert(field, secret);
                }
                Ok(out)
            }

            async fn load(
                conn: &mut Conn,
                sealer: &Sealer,
                row: SourceRow,
            ) -> Result<DataSource, StoreError> {
                let secrets = open_secrets(conn, sealer, &row.id).await?;
                row.into_source(secrets)
            }

            async fn fetch_one(
                conn: &mut Conn,
                sealer: &Sealer,
                column: &'static str,
                value: &str,
            ) -> Result<Option<DataSource>, StoreError> {
                let sql = match column {
                    "id" => "SELECT id, code, name, registry_type, base_url, auth_kind, state, \
                             active, config, last_test_at, last_error, created_at, updated_at \
                             FROM data_source WHERE id = $1",
                    _ => "SELECT id, code, name, registry_type, base_url, auth_kind, state, \
                          active, config, last_test_at, last_error, created_at, updated_at \
                          FROM data_source WHERE code = $1",
                };
                let row = sqlx::query(sql)
                    .bind(value)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db("reading a data source"))?;
                match row {
                    None => Ok(None),
                    Some(r) => {
                        let row = source_row(&r).map_err(db("reading a data source"))?;
                        Ok(Some(load(conn, sealer, row).await?))
                    }
                }
            }

            /// Moves a data source to `state` (with the test result, when given) and writes
            /// its `source.state_changed` event in the same transaction. "Before" is the
            /// state it leaves, or — when it leaves `testing` — the state last reported, so a
            /// test that ends where the previous one did reports nothing.
            async fn change_state(
                pool: &sqlx::Pool<$db>,
                code: &str,
                state: SourceState,
                test: Option<(OffsetDateTime, Option<&str>)>,
            ) -> Result<(), StoreError> {
                let mut tx = pool.begin().await.map_err(db("starting a transaction"))?;
                // A no-op write first: SQLite's write lock, PostgreSQL's row lock.
                let found = sqlx::query("UPDATE data_source SET state = state WHERE code = $1")
                    .bind(code)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("updating a data source"))?;
                if found.rows_affected() == 0 {
                    return Err(StoreError::NotFound(code.to_owned()));
                }
                let row: String = sqlx::query_scalar("SELECT state FROM data_source WHERE code = $1")
                    .bind(code)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db("reading a data source"))?;
                let mut before = row.parse::<SourceState>().ok();
                if before == Some(SourceState::Testing) {
                    let last: Option<String> = sqlx::query_scalar(
                        "SELECT payload FROM event WHERE kind = 'source.state_changed' \
                         AND source_code = $1 ORDER BY seq DESC LIMIT 1",
                    )
                    .bind(code)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("reading events"))?;
                    before = last
                        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
                        .and_then(|p| p.get("state").and_then(|s| s.as_str()).map(str::to_owned))
                        .and_then(|s| s.parse().ok());
                }
                let (at, last_error) = match test {
                    Some((at, last_error)) => {
                        sqlx::query(
                            "UPDATE data_source SET state = $2, last_test_at = $3, last_error = $4 \
                             WHERE code = $1",
                        )
                        .bind(code)
                        .bind(state.as_str())
                        .bind(At::of(at))
                        .bind(last_error)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("updating a data source"))?;
                        (at, last_error)
                    }
                    None => {
                        sqlx::query("UPDATE data_source SET state = $2 WHERE code = $1")
                            .bind(code)
                            .bind(state.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(db("updating a data source"))?;
                        (OffsetDateTime::now_utc(), None)
                    }
                };
                if let Some(e) =
                    dci_client::events::build::source_state(code, before, state, last_error, at)
                {
                    $write_event(&mut tx, &e).await?;
                }
                tx.commit().await.map_err(db("committing"))?;
                Ok(())
            }

            async fn update_by_code(
                pool: &sqlx::Pool<$db>,
                code: &str,
                query: sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments>,
            ) -> Result<(), StoreError> {
                let done = query.execute(pool).await.map_err(db("updating a data source"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(code.to_owned()));
                }
                Ok(())
            }

            /// Inserts a data source and its sealed secrets inside the caller's transaction.
            async fn create_in(
                conn: &mut Conn,
                sealer: &Sealer,
                source: &DataSource,
            ) -> Result<(), StoreError> {
                let row = SourceRow::from_source(source);
                sqlx::query(
                    "INSERT INTO data_source (id, code, name, registry_type, base_url, \
                     auth_kind, state, active, config, last_test_at, last_error, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&row.id)
                .bind(&row.code)
                .bind(&row.name)
                .bind(&row.registry_type)
                .bind(&row.base_url)
                .bind(&row.auth_kind)
                .bind(&row.state)
                .bind(row.active)
                .bind(&row.config)
                .bind(row.last_test_at.map(At::of))
                .bind(&row.last_error)
                .bind(At::of(row.created_at))
                .bind(At::of(row.updated_at))
                .execute(&mut *conn)
                .await
                .map_err(common::map_write_err(&source.code, "creating a data source"))?;
                check_key(&mut *conn, sealer).await?;
                for (field, secret) in common::source_secrets(source) {
                    put_secret(&mut *conn, &row.id, field, &sealer.seal(&row.id, field, secret))
                        .await?;
                }
                Ok(())
            }

            /// Replaces a data source inside the caller's transaction (see
            /// `Store::update_data_source`); also returns the code it had (it may change).
            async fn update_in(
                conn: &mut Conn,
                sealer: &Sealer,
                source: &DataSource,
            ) -> Result<(DataSource, String), StoreError> {
                let id = source.id.to_string();
                // Write first: takes SQLite's write lock and PostgreSQL's row lock before
                // reading what the update is compared against.
                let locked = sqlx::query(
                    "UPDATE data_source SET updated_at = updated_at WHERE id = $1",
                )
                .bind(&id)
                .execute(&mut *conn)
                .await
                .map_err(db("updating a data source"))?;
                if locked.rows_affected() == 0 {
                    return Err(StoreError::NotFound(source.code.clone()));
                }
                check_key(&mut *conn, sealer).await?;
                let existing = fetch_one(&mut *conn, sealer, "id", &id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(source.code.clone()))?;

                let mut stored = source.clone();
                let credentials_changed =
                    !common::same_credentials(&existing.auth, &source.auth);
                if credentials_changed {
                    stored.state = SourceState::Draft;
                }
                stored.updated_at = OffsetDateTime::now_utc();
                let row = SourceRow::from_source(&stored);
                sqlx::query(
                    "UPDATE data_source SET code = $2, name = $3, registry_type = $4, \
                     base_url = $5, auth_kind = $6, state = $7, active = $8, config = $9, \
                     last_test_at = $10, last_error = $11, updated_at = $12 WHERE id = $1",
                )
                .bind(&row.id)
                .bind(&row.code)
                .bind(&row.name)
                .bind(&row.registry_type)
                .bind(&row.base_url)
                .bind(&row.auth_kind)
                .bind(&row.state)
                .bind(row.active)
                .bind(&row.config)
                .bind(row.last_test_at.map(At::of))
                .bind(&row.last_error)
                .bind(At::of(row.updated_at))
                .execute(&mut *conn)
                .await
                .map_err(common::map_write_err(&source.code, "updating a data source"))?;

                sqlx::query("DELETE FROM sealed_secret WHERE owner_id = $1 AND field <> $2")
                    .bind(&id)
                    .bind(common::ACCESS_TOKEN)
                    .execute(&mut *conn)
                    .await
                    .map_err(db("replacing sealed secrets"))?;
                for (field, secret) in common::source_secrets(&stored) {
                    put_secret(&mut *conn, &id, field, &sealer.seal(&id, field, secret)).await?;
                }
                if credentials_changed {
                    delete_token_in(&mut *conn, &id).await?;
                }
                stored.created_at = existing.created_at;
                let stored = DataSource {
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                    last_test_at: row.last_test_at,
                    ..stored
                };
                Ok((stored, existing.code))
            }

            fn audit_from_row(r: &DbRow) -> Result<AuditEntry, sqlx::Error> {
                let status: Option<i64> = r.try_get("http_status")?;
                let outcome: String = r.try_get("outcome")?;
                let duration: i64 = r.try_get("duration_ms")?;
                let attempt: i64 = r.try_get("attempt")?;
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    source_code: r.try_get("source_code")?,
                    endpoint: r.try_get("endpoint")?,
                    action: r.try_get("action")?,
                    message_id: r.try_get("message_id")?,
                    transaction_id: r.try_get("transaction_id")?,
                    http_status: status.and_then(|s| u16::try_from(s).ok()),
                    outcome: AuditOutcome::from_stored(&outcome),
                    duration_ms: u64::try_from(duration).unwrap_or(0),
                    attempt: u32::try_from(attempt).unwrap_or(0),
                    error: r.try_get("error")?,
                })
            }

            /// One multi-row INSERT of `entries` (one of `audit_chunks`'s sizes).
            async fn insert_audit<'c, E>(ex: E, entries: &[AuditEntry]) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO audit_log (at, source_code, endpoint, action, message_id, \
                     transaction_id, http_status, outcome, duration_ms, attempt, error) ",
                );
                q.push_values(entries, |mut b, e| {
                    b.push_bind(At::of(e.at))
                        .push_bind(e.source_code.as_str())
                        .push_bind(e.endpoint.as_str())
                        .push_bind(e.action.as_str())
                        .push_bind(e.message_id.as_deref())
                        .push_bind(e.transaction_id.as_deref())
                        .push_bind(e.http_status.map(i64::from))
                        .push_bind(e.outcome.as_str())
                        .push_bind(i64::try_from(e.duration_ms).unwrap_or(i64::MAX))
                        .push_bind(i64::from(e.attempt))
                        .push_bind(e.error.as_deref());
                });
                q.build()
                    .execute(ex)
                    .await
                    .map_err(db("appending to the audit log"))?;
                Ok(())
            }

            #[async_trait::async_trait]
            impl dci_client::Store for $store {
                async fn create_data_source(&self, source: &DataSource) -> Result<(), StoreError> {
                    let sealer = self.sealer();
                    let mut tx = self.pool.begin().await.map_err(db("starting a transaction"))?;
                    create_in(&mut tx, &sealer, source).await?;
                    tx.commit().await.map_err(db("committing"))?;
                    self.publish(Change::Source(source.code.clone())).await;
                    Ok(())
                }

                async fn get_data_source(
                    &self,
                    code: &str,
                ) -> Result<Option<DataSource>, StoreError> {
                    let sealer = self.sealer();
                    let mut conn = self.pool.acquire().await.map_err(db("connecting"))?;
                    fetch_one(&mut conn, &sealer, "code", code).await
                }

                async fn get_data_source_by_id(
                    &self,
                    id: Uuid,
                ) -> Result<Option<DataSource>, StoreError> {
                    let sealer = self.sealer();
                    let mut conn = self.pool.acquire().await.map_err(db("connecting"))?;
                    fetch_one(&mut conn, &sealer, "id", &id.to_string()).await
                }

                async fn list_data_sources(
                    &self,
                    filter: &SourceFilter,
                ) -> Result<Vec<DataSource>, StoreError> {
                    let sealer = self.sealer();
                    let mut conn = self.pool.acquire().await.map_err(db("connecting"))?;
                    let rows = sqlx::query(
                        "SELECT id, code, name, registry_type, base_url, auth_kind, state, active, \
                         config, last_test_at, last_error, created_at, updated_at FROM data_source \
                         WHERE ($1 IS NULL OR registry_type = $1) AND ($2 IS NULL OR state = $2) \
                         AND ($3 IS NULL OR active = $3) ORDER BY code",
                    )
                    .bind(filter.registry_type.map(|r| r.as_str()))
                    .bind(filter.state.map(|s| s.as_str()))
                    .bind(filter.active)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db("listing data sources"))?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in rows {
                        let row = source_row(&r).map_err(db("listing data sources"))?;
                        out.push(load(&mut conn, &sealer, row).await?);
                    }
                    Ok(out)
                }

                async fn update_data_source(
                    &self,
                    source: &DataSource,
                ) -> Result<DataSource, StoreError> {
                    let sealer = self.sealer();
                    let mut tx = self.pool.begin().await.map_err(db("starting a transaction"))?;
                    let (stored, was) = update_in(&mut tx, &sealer, source).await?;
                    tx.commit().await.map_err(db("committing"))?;
                    if was != stored.code {
                        self.publish(Change::Source(was)).await;
                    }
                    self.publish(Change::Source(stored.code.clone())).await;
                    Ok(stored)
                }

                async fn apply_data_sources(
                    &self,
                    changes: &[SourceChange],
                ) -> Result<(), StoreError> {
                    let sealer = self.sealer();
                    let mut tx = self.pool.begin().await.map_err(db("starting a transaction"))?;
                    // Any failure returns early and drops `tx`, which rolls everything back.
                    let mut codes = Vec::with_capacity(changes.len());
                    for change in changes {
                        match change {
                            SourceChange::Create(s) => {
                                create_in(&mut tx, &sealer, s).await?;
                                codes.push(s.code.clone());
                            }
                            SourceChange::Update(s) => {
                                let (stored, was) = update_in(&mut tx, &sealer, s).await?;
                                codes.push(was);
                                codes.push(stored.code);
                            }
                        }
                    }
                    tx.commit().await.map_err(db("committing"))?;
                    codes.dedup();
                    for code in codes {
                        self.publish(Change::Source(code)).await;
                    }
                    Ok(())
                }

                async fn delete_data_source(&self, code: &str) -> Result<(), StoreError> {
                    let mut tx = self.pool.begin().await.map_err(db("starting a transaction"))?;
                    sqlx::query(
                        "DELETE FROM sealed_secret WHERE owner_id IN \
                         (SELECT id FROM data_source WHERE code = $1)",
                    )
                    .bind(code)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("deleting sealed secrets"))?;
                    sqlx::query(
                        "DELETE FROM cached_token WHERE source_id IN \
                         (SELECT id FROM data_source WHERE code = $1)",
                    )
                    .bind(code)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("deleting a cached token"))?;
                    let done = sqlx::query("DELETE FROM data_source WHERE code = $1")
                        .bind(code)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("deleting a data source"))?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound(code.to_owned()));
                    }
                    tx.commit().await.map_err(db("committing"))?;
                    self.publish(Change::Source(code.to_owned())).await;
                    Ok(())
                }

                async fn set_active(&self, code: &str, active: bool) -> Result<(), StoreError> {
                    let q = sqlx::query(
                        "UPDATE data_source SET active = $2, updated_at = $3 WHERE code = $1",
                    )
                    .bind(code)
                    .bind(active)
                    .bind(At::of(OffsetDateTime::now_utc()));
                    update_by_code(&self.pool, code, q).await?;
                    self.publish(Change::Source(code.to_owned())).await;
                    Ok(())
                }

                async fn set_state(&self, code: &str, state: SourceState) -> Result<(), StoreError> {
                    change_state(&self.pool, code, state, None).await?;
                    self.publish(Change::Source(code.to_owned())).await;
                    Ok(())
                }

                async fn record_test_result(
                    &self,
                    code: &str,
                    state: SourceState,
                    at: OffsetDateTime,
                    last_error: Option<&str>,
                ) -> Result<(), StoreError> {
                    change_state(&self.pool, code, state, Some((at, last_error))).await?;
                    self.publish(Change::Source(code.to_owned())).await;
                    Ok(())
                }

                async fn put_token(
                    &self,
                    source_id: Uuid,
                    token: &CachedToken,
                ) -> Result<(), StoreError> {
                    let sealer = self.sealer();
                    let id = source_id.to_string();
                    let mut tx = self.pool.begin().await.map_err(db("starting a transaction"))?;
                    let done = sqlx::query(
                        "INSERT INTO cached_token (source_id, token_type, expires_at, scope, \
                         updated_at) SELECT id, $2, $3, $4, $5 FROM data_source WHERE id = $1 \
                         ON CONFLICT (source_id) DO UPDATE SET token_type = excluded.token_type, \
                         expires_at = excluded.expires_at, scope = excluded.scope, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(&id)
                    .bind(&token.token_type)
                    .bind(At::of(token.expires_at))
                    .bind(&token.scope)
                    .bind(At::of(token.obtained_at.unwrap_or_else(OffsetDateTime::now_utc)))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("storing a cached token"))?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound(id));
                    }
                    check_key(&mut tx, &sealer).await?;
                    let sealed = sealer.seal(&id, common::ACCESS_TOKEN, &token.access_token);
                    put_secret(&mut tx, &id, common::ACCESS_TOKEN, &sealed).await?;
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(())
                }

                async fn get_token(&self, source_id: Uuid) -> Result<Option<CachedToken>, StoreError> {
                    let sealer = self.sealer();
                    let id = source_id.to_string();
                    let mut conn = self.pool.acquire().await.map_err(db("connecting"))?;
                    let row = sqlx::query(
                        "SELECT t.token_type, t.expires_at, t.scope, t.updated_at, s.key_id, \
                         s.nonce, s.ciphertext FROM cached_token t JOIN sealed_secret s \
                         ON s.owner_id = t.source_id AND s.field = $2 WHERE t.source_id = $1",
                    )
                    .bind(&id)
                    .bind(common::ACCESS_TOKEN)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db("reading a cached token"))?;
                    let Some(r) = row else { return Ok(None) };
                    let read = |e| db("reading a cached token")(e);
                    let sealed = SealedSecret {
                        key_id: r.try_get("key_id").map_err(read)?,
                        nonce: r.try_get("nonce").map_err(read)?,
                        ciphertext: r.try_get("ciphertext").map_err(read)?,
                    };
                    Ok(Some(CachedToken {
                        access_token: sealer.open(&id, common::ACCESS_TOKEN, &sealed)?,
                        token_type: r.try_get("token_type").map_err(read)?,
                        expires_at: r.try_get("expires_at").map_err(read)?,
                        scope: r.try_get("scope").map_err(read)?,
                        obtained_at: r.try_get("updated_at").ok(),
                    }))
                }

                async fn delete_token(&self, source_id: Uuid) -> Result<(), StoreError> {
                    let mut tx = self.pool.begin().await.map_err(db("starting a transaction"))?;
                    delete_token_in(&mut tx, &source_id.to_string()).await?;
                    tx.commit().await.map_err(db("committing"))?;
                    Ok(())
                }

                async fn token_lease(
                    &self,
                    source_id: Uuid,
                ) -> Result<Option<TokenLease>, StoreError> {
                    self.lease_token(source_id).await
                }

                async fn append_audit_batch(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
                    // Multi-row INSERTs of a few fixed sizes (see `audit_chunks`), so each
                    // shape is prepared once per connection and then found in the statement
                    // cache: a batch of any size re-parsed its own SQL before (prepare cost as
                    // much as the insert). More than one statement share one transaction: one
                    // commit (one WAL sync) per batch, all of it or none.
                    let chunks = common::audit_chunks(entries);
                    match chunks.as_slice() {
                        [] => Ok(()),
                        [one] => insert_audit(&self.pool, one).await,
                        many => {
                            let mut tx =
                                self.pool.begin().await.map_err(db("starting a transaction"))?;
                            for chunk in many {
                                insert_audit(&mut *tx, chunk).await?;
                            }
                            tx.commit().await.map_err(db("committing the audit log"))
                        }
                    }
                }

                async fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
                    self.append_audit_batch(std::slice::from_ref(e)).await
                }

                async fn list_audit(
                    &self,
                    filter: &AuditFilter,
                ) -> Result<Vec<AuditEntry>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT at, source_code, endpoint, action, message_id, transaction_id, \
                         http_status, outcome, duration_ms, attempt, error FROM audit_log \
                         WHERE ($1 IS NULL OR source_code = $1) \
                         AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) \
                         ORDER BY id DESC LIMIT $2",
                    )
                    .bind(filter.source_code.as_deref())
                    .bind(if filter.limit == 0 { i64::MAX } else { i64::from(filter.limit) })
                    // Both backends compare instants in UTC at microseconds (see `ts`); SQLite's
                    // text form sorts like the instants it holds.
                    .bind(filter.range.since.map(common::At::of))
                    .bind(filter.range.until.map(common::At::of))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("reading the audit log"))?;
                    rows.iter()
                        .map(audit_from_row)
                        .collect::<Result<_, _>>()
                        .map_err(db("reading the audit log"))
                }

                async fn rotate_master_key(
                    &self,
                    new_key: MasterKey,
                ) -> Result<RotationReport, StoreError> {
                    let old = self.sealer();
                    // The old ring plus the new key: what this process sealed or read before
                    // still opens.
                    let new = Arc::new(old.with_current(&new_key));
                    let mut tx = self.pool.begin().await.map_err(db("starting a transaction"))?;
                    // Write first, so that no other writer interleaves (see `impl_store!`).
                    sqlx::query("UPDATE store_meta SET value = value WHERE key = $1")
                        .bind(common::META_MASTER_KEY_ID)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("locking the master key id"))?;
                    check_key(&mut tx, &old).await?;
                    let rows = sqlx::query(
                        "SELECT owner_id, field, key_id, nonce, ciphertext FROM sealed_secret",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("reading sealed secrets"))?;
                    let read = |e| db("reading sealed secrets")(e);
                    let mut resealed = 0u64;
                    for r in rows {
                        let owner: String = r.try_get("owner_id").map_err(read)?;
                        let field: String = r.try_get("field").map_err(read)?;
                        let sealed = SealedSecret {
                            key_id: r.try_get("key_id").map_err(read)?,
                            nonce: r.try_get("nonce").map_err(read)?,
                            ciphertext: r.try_get("ciphertext").map_err(read)?,
                        };
                        // Any secret that does not open aborts the whole rotation (rollback on
                        // drop), so nothing is left half re-sealed.
                        let plain = old.open(&owner, &field, &sealed)?;
                        put_secret(&mut tx, &owner, &field, &new.seal(&owner, &field, &plain))
                            .await?;
                        resealed += 1;
                    }
                    reseal_bodies(&mut tx, &old, &new).await?;
                    sqlx::query(
                        "INSERT INTO store_meta (key, value) VALUES ($1, $2) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(common::META_MASTER_KEY_ID)
                    .bind(new.key_id())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("recording the master key id"))?;
                    tx.commit().await.map_err(db("committing"))?;
                    // Make the commit durable before the caller retires the old key file.
                    if let Some(sql) = $after_rotation {
                        sqlx::query(sql)
                            .execute(&self.pool)
                            .await
                            .map_err(db("making the rotation durable"))?;
                    }
                    let report = RotationReport {
                        old_key_id: old.key_id(),
                        new_key_id: new.key_id(),
                        resealed,
                    };
                    self.set_sealer(new);
                    Ok(report)
                }
            }

            /// Re-seals the stored request and callback bodies under `new`, inside the rotation;
            /// plain ones (stored before bodies were sealed) are sealed now: the migration path.
            async fn reseal_bodies(
                conn: &mut Conn,
                old: &Sealer,
                new: &Sealer,
            ) -> Result<(), StoreError> {
                use $crate::ops_common::{BODY, REQUEST, body_owner, request_owner};
                let read = |e| db("reading sealed bodies")(e);
                let rows = sqlx::query("SELECT transaction_id, request FROM op_transaction")
                .fetch_all(&mut *conn)
                .await
                .map_err(read)?;
                for r in rows {
                    let id: String = r.try_get("transaction_id").map_err(read)?;
                    let text: String = r.try_get("request").map_err(read)?;
                    let owner = request_owner(&id);
                    let plain = old.open_text(&owner, REQUEST, &text)?;
                    sqlx::query("UPDATE op_transaction SET request = $2 WHERE transaction_id = $1")
                        .bind(&id)
                        .bind(new.seal_text(&owner, REQUEST, &plain))
                        .execute(&mut *conn)
                        .await
                        .map_err(db("re-sealing a request"))?;
                }
                let rows = sqlx::query("SELECT source_code, message_id, body FROM op_callback")
                .fetch_all(&mut *conn)
                .await
                .map_err(read)?;
                for r in rows {
                    let source: String = r.try_get("source_code").map_err(read)?;
                    let message_id: String = r.try_get("message_id").map_err(read)?;
                    let text: String = r.try_get("body").map_err(read)?;
                    let owner = body_owner(&source, &message_id);
                    let plain = old.open_text(&owner, BODY, &text)?;
                    sqlx::query(
                        "UPDATE op_callback SET body = $3 WHERE source_code = $1 AND message_id = $2",
                    )
                    .bind(&source)
                    .bind(&message_id)
                    .bind(new.seal_text(&owner, BODY, &plain))
                    .execute(&mut *conn)
                    .await
                    .map_err(db("re-sealing a callback body"))?;
                }
                Ok(())
            }

            async fn delete_token_in(conn: &mut Conn, id: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM cached_token WHERE source_id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(db("deleting a cached token"))?;
                sqlx::query("DELETE FROM sealed_secret WHERE owner_id = $1 AND field = $2")
                    .bind(id)
                    .bind(common::ACCESS_TOKEN)
                    .execute(&mut *conn)
                    .await
                    .map_err(db("deleting a cached token"))?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_chunks_keep_order_and_use_power_of_two_lengths() {
        let entry = |n: u32| AuditEntry {
            at: OffsetDateTime::UNIX_EPOCH,
            source_code: "s".into(),
            endpoint: "http://r/x".into(),
            action: "search".into(),
            message_id: None,
            transaction_id: None,
            http_status: None,
            outcome: dci_client::store::AuditOutcome::Ok,
            duration_ms: 0,
            attempt: n,
            error: None,
        };
        for len in [0usize, 1, 2, 3, 35, 255, 256, 257, 600] {
            let entries: Vec<AuditEntry> = (0..len as u32).map(entry).collect();
            let chunks = audit_chunks(&entries);
            let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            assert!(
                lens.iter()
                    .all(|l| l.is_power_of_two() && *l <= AUDIT_CHUNK_MAX),
                "{len}: {lens:?}"
            );
            assert!(lens.windows(2).all(|w| w[0] >= w[1]), "{len}: {lens:?}");
            let joined: Vec<u32> = chunks
                .iter()
                .flat_map(|c| c.iter().map(|e| e.attempt))
                .collect();
            assert_eq!(joined, (0..len as u32).collect::<Vec<_>>());
        }
        assert_eq!(
            audit_chunks(&(0..35).map(entry).collect::<Vec<_>>())
                .iter()
                .map(|c| c.len())
                .collect::<Vec<_>>(),
            [32, 2, 1]
        );
    }
}
