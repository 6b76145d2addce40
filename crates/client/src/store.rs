//! The storage seam: everything the client persists goes through [`Store`].
//!
//! The trait lives here, beside the model it stores, so that the client (transport, token cache,
//! audit log) depends on an interface rather than on a database; `dci-store` implements it for
//! SQLite and PostgreSQL. It is object safe and meant to be held as `Arc<dyn Store>`.
//!
//! Secrets cross this seam in the clear (as `secrecy` types) and are sealed by the implementation;
//! nothing in these types prints a secret through `Debug`.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use dci_protocol::RegistryType;
use secrecy::{SecretBox, SecretString};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::source::{DataSource, SourceState};

/// Storage for data sources, cached tokens, the audit log and the secrets they carry.
///
/// Implementations must seal every secret at rest (bound to the record id and field name), enforce
/// uniqueness of `code` in the database, and make each method atomic.
#[async_trait]
pub trait Store: Send + Sync {
    /// Inserts a validated data source. Fails with [`StoreError::CodeTaken`] when the code exists.
    async fn create_data_source(&self, source: &DataSource) -> Result<(), StoreError>;

    /// The data source with this code, if any (active or not).
    async fn get_data_source(&self, code: &str) -> Result<Option<DataSource>, StoreError>;

    /// The data source with this id, if any.
    async fn get_data_source_by_id(&self, id: Uuid) -> Result<Option<DataSource>, StoreError>;

    /// Data sources matching the filter, ordered by code.
    async fn list_data_sources(&self, filter: &SourceFilter)
    -> Result<Vec<DataSource>, StoreError>;

    /// Replaces the stored record with the same `id` (the code may change, subject to uniqueness).
    ///
    /// When the credentials differ from the stored ones (auth kind, user, token URL, client id,
    /// scope, credential location or any secret), the cached token is deleted and the state goes
    /// back to [`SourceState::Draft`]: the new credentials have not been tested. Returns the record
    /// as stored. Fails with [`StoreError::NotFound`] if the id is unknown.
    async fn update_data_source(&self, source: &DataSource) -> Result<DataSource, StoreError>;

    /// Applies several creates and updates in one transaction: all of them, or (on the first
    /// failure, e.g. [`StoreError::CodeTaken`] or [`StoreError::NotFound`]) none. Each change
    /// follows the rules of [`Store::create_data_source`] and [`Store::update_data_source`].
    ///
    /// The default refuses: a store that cannot make several changes atomically must not
    /// pretend to.
    async fn apply_data_sources(&self, changes: &[SourceChange]) -> Result<(), StoreError> {
        let _ = changes;
        Err(StoreError::Backend {
            message: "this store cannot apply several changes in one transaction".into(),
            source: "apply_data_sources is not implemented".into(),
        })
    }

    /// Deletes a data source with its secrets and cached token.
    async fn delete_data_source(&self, code: &str) -> Result<(), StoreError>;

    /// Enables (`true`) or disables (`false`) a data source.
    async fn set_active(&self, code: &str, active: bool) -> Result<(), StoreError>;

    /// Sets the lifecycle state (e.g. `testing` while a connection test runs).
    async fn set_state(&self, code: &str, state: SourceState) -> Result<(), StoreError>;

    /// Records the outcome of a connection test: state, when, and the error (cleared on `None`).
    async fn record_test_result(
        &self,
        code: &str,
        state: SourceState,
        at: OffsetDateTime,
        last_error: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Stores (replaces) the cached OAuth2 token of a data source, sealed at rest.
    async fn put_token(&self, source_id: Uuid, token: &CachedToken) -> Result<(), StoreError>;

    /// The cached token of a data source, if any (expired ones included: the caller decides).
    async fn get_token(&self, source_id: Uuid) -> Result<Option<CachedToken>, StoreError>;

    /// Drops the cached token of a data source (no error if there is none).
    async fn delete_token(&self, source_id: Uuid) -> Result<(), StoreError>;

    /// Takes the lock on fetching `source_id`'s token that every process on this database
    /// shares, waiting while another holds it: the one holder fetches and stores the token,
    /// the others then find it stored ([`Store::get_token`]). Held until
    /// [`TokenLease::release`] (or drop). `None` (the default): this store has no such lock, and
    /// the single flight is per process.
    async fn token_lease(&self, source_id: Uuid) -> Result<Option<TokenLease>, StoreError> {
        let _ = source_id;
        Ok(None)
    }

    /// Appends one entry to the audit log. Entries are never updated or deleted.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Appends several entries (the audit writer's batches). The default appends them one by
    /// one; a backend may write them in one transaction.
    async fn append_audit_batch(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        for e in entries {
            self.append_audit(e).await?;
        }
        Ok(())
    }

    /// Audit entries, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;

    /// Re-seals every secret under `new_key` in one transaction and switches to it.
    ///
    /// Every secret is first opened with the current key; if any cannot be opened nothing changes.
    async fn rotate_master_key(&self, new_key: MasterKey) -> Result<RotationReport, StoreError>;
}

/// What a store's [`TokenLease`] holds (e.g. the database transaction with the lock).
#[async_trait]
pub trait TokenLock: Send {
    /// Gives the lock back.
    async fn release(self: Box<Self>);
}

/// The lock of [`Store::token_lease`]; dropping it also gives the lock back, later.
pub struct TokenLease(Box<dyn TokenLock>);

impl TokenLease {
    /// A lease over the store's lock.
    pub fn new(lock: impl TokenLock + 'static) -> TokenLease {
        TokenLease(Box::new(lock))
    }

    /// Gives the lock back now.
    pub async fn release(self) {
        self.0.release().await;
    }
}

impl fmt::Debug for TokenLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenLease")
    }
}

/// One change of [`Store::apply_data_sources`].
#[derive(Debug, Clone)]
pub enum SourceChange {
    /// Insert a new data source.
    Create(DataSource),
    /// Replace the stored data source with the same id.
    Update(DataSource),
}

/// Which data sources to list. The default lists all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceFilter {
    /// Only sources of this registry type.
    pub registry_type: Option<RegistryType>,
    /// Only sources in this state.
    pub state: Option<SourceState>,
    /// Only enabled (`true`) or disabled (`false`) sources.
    pub active: Option<bool>,
}

/// A cached OAuth2 access token.
#[derive(Debug, Clone)]
pub struct CachedToken {
    /// The token (sealed at rest).
    pub access_token: SecretString,
    /// The token type as the server sent it (usually `Bearer`).
    pub token_type: String,
    /// When the token expires.
    pub expires_at: OffsetDateTime,
    /// The granted scope, if the server said.
    pub scope: Option<String>,
    /// When the token was obtained (when it was stored), so a reader refreshes it ahead of
    /// expiry on the same schedule as the process that fetched it. `None` when unknown.
    pub obtained_at: Option<OffsetDateTime>,
}

/// The outcome of one audited call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// The call succeeded (2xx and a well-formed reply).
    Ok,
    /// The registry answered with a non-success HTTP status.
    HttpError,
    /// The call timed out.
    Timeout,
    /// Connection, DNS or TLS failure.
    Network,
    /// Authentication failed (token request refused, 401/403).
    Auth,
    /// The reply could not be parsed or failed verification.
    InvalidResponse,
    /// Anything else; also what an unknown stored value reads back as.
    Other,
}

impl AuditOutcome {
    /// The stored name: `ok`, `http_error`, `timeout`, `network`, `auth`, `invalid_response`,
    /// `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::HttpError => "http_error",
            AuditOutcome::Timeout => "timeout",
            AuditOutcome::Network => "network",
            AuditOutcome::Auth => "auth",
            AuditOutcome::InvalidResponse => "invalid_response",
            AuditOutcome::Other => "other",
        }
    }

    /// Reads a stored name leniently: unknown names become [`AuditOutcome::Other`].
    pub fn from_stored(s: &str) -> AuditOutcome {
        s.parse().unwrap_or(AuditOutcome::Other)
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditOutcome {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ok" => AuditOutcome::Ok,
            "http_error" => AuditOutcome::HttpError,
            "timeout" => AuditOutcome::Timeout,
            "network" => AuditOutcome::Network,
            "auth" => AuditOutcome::Auth,
            "invalid_response" => AuditOutcome::InvalidResponse,
            "other" => AuditOutcome::Other,
            _ => return Err(()),
        })
    }
}

/// One audited call to a registry or token endpoint. Holds no payloads, no PII and no secrets:
/// `endpoint` must be stored without its query string (OpenCRVS sends credentials there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When the call started.
    pub at: OffsetDateTime,
    /// Code of the data source.
    pub source_code: String,
    /// The URL called, without query string.
    pub endpoint: String,
    /// What was done (`search`, `token`, `subscribe`, …).
    pub action: String,
    /// `header.message_id`, if any.
    pub message_id: Option<String>,
    /// `message.transaction_id`, if any.
    pub transaction_id: Option<String>,
    /// The HTTP status, if a reply arrived.
    pub http_status: Option<u16>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Wall time of the attempt in milliseconds.
    pub duration_ms: u64,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// The error, if any (already free of secrets).
    pub error: Option<String>,
}

/// Which audit entries to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this data source's entries.
    pub source_code: Option<String>,
    /// Only entries within this range (of their `at`).
    pub range: TimeRange,
    /// At most this many entries (newest first); 0 means no limit (an export).
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            source_code: None,
            range: TimeRange::default(),
            limit: 100,
        }
    }
}

/// A time range (both ends optional): `since` inclusive, `until` exclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// From this instant on.
    pub since: Option<OffsetDateTime>,
    /// Before this instant.
    pub until: Option<OffsetDateTime>,
}

impl TimeRange {
    /// Whether `at` lies in the range.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at < u)
    }
}

/// The 256-bit key that seals secrets at rest. Its `Debug` shows nothing.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl MasterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(SecretBox::new(Box::new(bytes)))
    }

    /// The raw key bytes, for the AEAD only.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
    }
}

impl Clone for MasterKey {
    fn clone(&self) -> Self {
        MasterKey::from_bytes(*self.expose_bytes())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// What a master-key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// Id of the key the secrets were sealed under.
    pub old_key_id: String,
    /// Id of the key they are sealed under now.
    pub new_key_id: String,
    /// How many secrets were re-sealed.
    pub resealed: u64,
}

/// A storage failure. Database details stay inside (`source()`); messages never hold secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A data source with this code already exists.
    #[error("code {0:?} is already taken by another data source: choose another code")]
    CodeTaken(String),
    /// No data source with this code (or id).
    #[error("no data source {0:?}: check the code against the list of data sources")]
    NotFound(String),
    /// The master key does not open the stored secrets.
    #[error("{0}")]
    WrongMasterKey(String),
    /// A name other than a data source's code is taken (a username); the message says which
    /// and what to do.
    #[error("{0}")]
    Conflict(String),
    /// Something other than a data source does not exist (a user, an API token); the message
    /// says which and where to look.
    #[error("{0}")]
    Missing(String),
    /// A stored value could not be read back (corrupt row or a newer schema).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The database failed (connection, I/O, constraint other than the code).
    #[error("database error: {message}")]
    Backend {
        /// What was being done, free of secrets.
        message: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Whether a create or update failed because the code is taken.
    pub fn is_code_taken(&self) -> bool {
        matches!(self, StoreError::CodeTaken(_))
    }

    /// Whether the data source does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound(_))
    }

    /// Whether the master key is wrong or missing.
    pub fn is_wrong_master_key(&self) -> bool {
        matches!(self, StoreError::WrongMasterKey(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_debug_is_redacted() {
        let key = MasterKey::from_bytes([7u8; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey([redacted])");
    }

    #[test]
    fn cached_token_debug_hides_the_token() {
        let token = CachedToken {
            access_token: SecretString::from("tok-plaintext-123"),
            token_type: "Bearer".into(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
            scope: None,
            obtained_at: None,
        };
        assert!(!format!("{token:?}").contains("tok-plaintext-123"));
    }

    #[test]
    fn audit_outcome_names_round_trip_and_unknown_is_other() {
        for o in [
            AuditOutcome::Ok,
            AuditOutcome::HttpError,
            AuditOutcome::Timeout,
            AuditOutcome::Network,
            AuditOutcome::Auth,
            AuditOutcome::InvalidResponse,
            AuditOutcome::Other,
        ] {
            assert_eq!(AuditOutcome::from_stored(o.as_str()), o);
        }
        assert_eq!(AuditOutcome::from_stored("exploded"), AuditOutcome::Other);
    }

    #[test]
    fn store_is_object_safe() {
        fn takes(_: Option<std::sync::Arc<dyn Store>>) {}
        takes(None);
    }
}
