//! The storage seam of the operations: async requests, callbacks, subscriptions and signing keys.
//!
//! A separate trait from [`crate::Store`] so that the data-source store stays small; `dci-store`
//! implements both for SQLite and PostgreSQL. Object safe, held as `Arc<dyn OpsStore>`.
//!
//! Durability contract: every method is atomic and durable when it returns, so that a request is
//! on disk before it is sent and a callback is on disk before the receiver answers ACK.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use dci_protocol::signature::Algorithm;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::store::StoreError;

/// Storage for the DCI operations. Implementations: `dci_store::SqliteStore`, `dci_store::PgStore`.
/// Every operations store also stores users, sessions and the change audit
/// ([`crate::users::UserStore`]), so a server reaches them through the same handle.
///
/// Events ([`crate::events`]): the methods that change a transaction, store a callback or change
/// a subscription write the events the change causes in the same database transaction (built by
/// [`crate::events::build`]), and fan them out to the webhook endpoints.
#[async_trait]
pub trait OpsStore:
    crate::events::EventStore
    + crate::users::UserStore
    + crate::bulk::BulkStore
    + crate::jobs::ScheduleStore
    + Send
    + Sync
{
    /// Stores a new outgoing async request *before* it is sent. The transaction id is unique:
    /// inserting an existing one fails.
    async fn insert_transaction(&self, t: &TransactionRecord) -> Result<(), StoreError>;

    /// Records the registry's synchronous answer (ACK / NACK / ERR) to a stored request and its
    /// new state. Returns `false` if the transaction is unknown. A move to `failed` writes a
    /// `transaction.failed` event in the same transaction.
    async fn record_ack(&self, transaction_id: &str, ack: &AckRecord) -> Result<bool, StoreError>;

    /// Moves a transaction to `state` unless it is already in a state that outranks it (see
    /// [`TransactionState::rank`]): concurrent callbacks can only move it forward. `reason`
    /// says why, for states that need one (`failed` without a registry answer, `expired`); it
    /// replaces the stored reason when the state changes. The one method that changes a
    /// transaction's state. Returns whether the row changed. A change to `completed` (search),
    /// `failed`, `timed_out` or `expired` writes its event ([`crate::events::build::transaction`])
    /// in the same transaction.
    async fn advance_transaction(
        &self,
        transaction_id: &str,
        state: TransactionState,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// The stored request with this transaction id, if any.
    async fn get_transaction(
        &self,
        transaction_id: &str,
    ) -> Result<Option<TransactionRecord>, StoreError>;

    /// Stored requests, newest first.
    async fn list_transactions(
        &self,
        filter: &TransactionFilter,
    ) -> Result<Vec<TransactionRecord>, StoreError>;

    /// Marks every pending, acknowledged or partial request whose deadline is before `now` as
    /// [`TransactionState::TimedOut`], with a `transaction.expired` event each, in one
    /// transaction. Returns how many changed.
    async fn expire_overdue(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Stores a received callback (any action, notify included) unless one with the same
    /// `(source_code, message_id)` exists. Returns `false` for such a duplicate (nothing changed).
    ///
    /// In the same database transaction: a `notify` writes its `notification.received` event;
    /// a callback of a stored transaction of the same data source moves that transaction to the
    /// state its callbacks now show ([`crate::ops::build_view`], forward only, as
    /// [`OpsStore::advance_transaction`]) with the event of the move. The transaction row is
    /// locked first, so concurrent last pages cannot both miss the completion.
    async fn insert_callback(&self, c: &CallbackRecord) -> Result<bool, StoreError>;

    /// The stored callback of `source_code` with this message id, if any (to tell a re-sent
    /// callback from a different one reusing the id).
    async fn get_callback(
        &self,
        source_code: &str,
        message_id: &str,
    ) -> Result<Option<CallbackRecord>, StoreError>;

    /// Stored requests whose ACK carried this registry correlation id (normally one; several
    /// only if two registries chose the same id).
    async fn transactions_by_correlation(
        &self,
        correlation_id: &str,
    ) -> Result<Vec<TransactionRecord>, StoreError>;

    /// Callbacks of a transaction, in order of arrival.
    async fn callbacks_for(&self, transaction_id: &str) -> Result<Vec<CallbackRecord>, StoreError>;

    /// Callbacks matching the filter, newest first (e.g. notifications: action `notify`).
    async fn list_callbacks(
        &self,
        filter: &CallbackFilter,
    ) -> Result<Vec<CallbackRecord>, StoreError>;

    /// Inserts or updates a subscription (keyed by source code and subscription code); a new
    /// subscription or a changed state writes a `subscription.changed` event with it.
    async fn upsert_subscription(&self, s: &SubscriptionRecord) -> Result<(), StoreError>;

    /// Subscriptions, optionally of one data source, ordered by source code and code.
    async fn list_subscriptions(
        &self,
        source_code: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>, StoreError>;

    /// Stores a new signing key; the private key (PKCS#8 PEM) is sealed at rest. Returns `false`
    /// (nothing stored) if a key with this id exists.
    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        private_pkcs8_pem: &SecretString,
    ) -> Result<bool, StoreError>;

    /// The public record of a signing key.
    async fn get_signing_key(&self, key_id: &str) -> Result<Option<SigningKeyRecord>, StoreError>;

    /// The private key (PKCS#8 PEM) of a signing key, opened.
    async fn signing_key_private(&self, key_id: &str) -> Result<Option<SecretString>, StoreError>;

    /// Every signing key, ordered by creation.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;

    /// Sets a key's status, stamping `activated_at` / `revoked_at`. Returns `false` if unknown.
    async fn set_signing_key_status(
        &self,
        key_id: &str,
        status: KeyStatus,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// How much work is waiting, counted in one read (the metrics' backlog gauges).
    async fn backlog(&self) -> Result<Backlog, StoreError>;

    /// Whether the database's schema is the one this build expects (for `/readyz`).
    async fn schema_status(&self) -> Result<SchemaStatus, StoreError>;

    /// Deletes the personal data kept past its retention: transactions in a final state
    /// ([`TransactionState::is_terminal`]) last changed before `before`, with their callbacks;
    /// callbacks (notifications included) received before it that belong to no kept
    /// transaction; and events created before it that no webhook delivery still waits for. In
    /// one database transaction. What is deleted cannot be looked up again.
    async fn purge_before(&self, before: OffsetDateTime) -> Result<PurgeReport, StoreError>;

    /// A reader of this store's changes (transactions, data sources), if it publishes them:
    /// waits wake on them ([`crate::ops::await_transaction`]) and the engine drops a changed
    /// source. `None` (the default): readers poll.
    fn changes(&self) -> Option<crate::changes::Changes> {
        None
    }
}

/// How much work is waiting: async requests without their final answer, webhook deliveries not
/// delivered, events not yet processed. Counts only, no identifiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Async requests sent, not yet acknowledged.
    pub pending_transactions: u64,
    /// Async requests acknowledged, waiting for their callback.
    pub acknowledged_transactions: u64,
    /// Async requests with some of their callbacks.
    pub partial_transactions: u64,
    /// Webhook deliveries waiting for a (first or next) attempt.
    pub pending_deliveries: u64,
    /// Webhook deliveries given up (the dead letter).
    pub dead_deliveries: u64,
    /// Outbox events the SPMIS has not marked processed.
    pub unprocessed_events: u64,
}

/// The database's migrations against this build's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The newest migration this build knows.
    pub expected: i64,
    /// Migrations this build has that the database has not applied (or applied and failed).
    pub missing: Vec<i64>,
    /// Migrations applied to the database that this build does not know (a newer build ran).
    pub unknown: Vec<i64>,
}

impl SchemaStatus {
    /// Whether the schema is exactly this build's.
    pub fn is_current(&self) -> bool {
        self.missing.is_empty() && self.unknown.is_empty()
    }
}

/// What [`OpsStore::purge_before`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Stored requests.
    pub transactions: u64,
    /// Callbacks and notifications.
    pub callbacks: u64,
    /// Events of the outbox.
    pub events: u64,
}

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $v),+ }

        impl $name {
            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err(StoreError::Corrupt(format!(
                        concat!("unknown ", stringify!($name), " {:?}"), s
                    ))),
                }
            }
        }
    };
}

str_enum! {
    /// Which operation a stored request is.
    OpKind {
        /// Async search.
        Search => "search",
        /// Subscribe.
        Subscribe => "subscribe",
        /// Unsubscribe.
        Unsubscribe => "unsubscribe",
        /// Async transaction status.
        TxnStatus => "txn_status",
    }
}

str_enum! {
    /// Where an async request stands.
    TransactionState {
        /// Stored, not (yet) acknowledged by the registry.
        Pending => "pending",
        /// The registry answered ACK; waiting for the callback.
        Acknowledged => "acknowledged",
        /// Sent, and the reply was lost (connection dropped after sending, timeout): the
        /// registry may have it. Resolved by its callback or a transaction-status lookup —
        /// never taken for a failure, never resent blindly.
        Unknown => "unknown",
        /// Some, not all, results have arrived.
        Partial => "partial",
        /// Every result has arrived.
        Completed => "completed",
        /// The registry refused it (ACK `ERR`/`NACK`, or a callback with header status `rjct`).
        Failed => "failed",
        /// The deadline passed without a complete result.
        TimedOut => "timed_out",
        /// Given up by the recovery loop: no result by the source's give-up time, however
        /// often the registry was asked (the reason says what was tried).
        Expired => "expired",
    }
}

impl TransactionState {
    /// Order in which states may follow each other: a state only replaces one of lower rank.
    /// A late callback may still complete a timed-out or expired request (the data did
    /// arrive).
    pub fn rank(self) -> u8 {
        match self {
            TransactionState::Pending => 0,
            TransactionState::Acknowledged | TransactionState::Unknown => 1,
            TransactionState::TimedOut => 2,
            TransactionState::Partial => 3,
            // Given up on the rest of a partial result too; a late complete result still wins.
            TransactionState::Expired => 4,
            TransactionState::Completed | TransactionState::Failed => 5,
        }
    }

    /// Whether nothing more is expected.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TransactionState::Completed
                | TransactionState::Failed
                | TransactionState::TimedOut
                | TransactionState::Expired
        )
    }
}

str_enum! {
    /// How a callback's signature was checked.
    SignatureState {
        /// The source's policy is `off`.
        NotChecked => "not_checked",
        /// No signature, accepted under policy `if-present`.
        Unsigned => "unsigned",
        /// Verified with the key in `signature_key_id`.
        Verified => "verified",
    }
}

str_enum! {
    /// Lifecycle of one of our signing keys.
    KeyStatus {
        /// Generated, not used for signing.
        Inactive => "inactive",
        /// Signs (when a data source names it) and is published in the JWKS.
        Active => "active",
        /// Never signs again; not published.
        Revoked => "revoked",
    }
}

str_enum! {
    /// Whether a subscription is live.
    SubscriptionState {
        /// Active.
        Subscribed => "subscribed",
        /// Cancelled.
        Unsubscribed => "unsubscribed",
        /// Requested, not confirmed by an `on-subscribe`.
        Requested => "requested",
        /// The registry refused it.
        Rejected => "rejected",
    }
}

/// An async request as stored before sending.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionRecord {
    /// `message.transaction_id` (unique).
    pub transaction_id: String,
    /// The data source it was sent to.
    pub source_code: String,
    /// Which operation.
    pub kind: OpKind,
    /// `header.message_id` of the request.
    pub message_id: String,
    /// The request's item reference ids, in order.
    pub reference_ids: Vec<String>,
    /// The envelope exactly as sent (signature included).
    pub request: Value,
    /// Current state.
    pub state: TransactionState,
    /// The registry's synchronous answer, once known.
    pub ack: Option<AckRecord>,
    /// When it was stored.
    pub created_at: OffsetDateTime,
    /// After this, the request is given up if incomplete.
    pub deadline: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// Why it is in its state, when no registry answer says so (`expired`, or `failed`
    /// because the registry has no such transaction).
    pub reason: Option<String>,
}

/// The synchronous ACK/NACK/ERR to an async request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckRecord {
    /// `ACK`, `NACK` or `ERR`.
    pub ack_status: String,
    /// The registry's correlation id.
    pub correlation_id: Option<String>,
    /// The registry's error code, for ERR.
    pub error_code: Option<String>,
    /// The registry's error message, for ERR.
    pub error_message: Option<String>,
    /// State after the ACK (`acknowledged` or `failed`).
    pub state: TransactionState,
    /// When it was received.
    pub at: OffsetDateTime,
}

/// Which stored requests to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionFilter {
    /// Only this data source's.
    pub source_code: Option<String>,
    /// Only in this state.
    pub state: Option<TransactionState>,
    /// At most this many (newest first).
    pub limit: u32,
}

impl Default for TransactionFilter {
    fn default() -> Self {
        TransactionFilter {
            source_code: None,
            state: None,
            limit: 100,
        }
    }
}

/// A received callback (or notification), stored verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackRecord {
    /// The data source it arrived for.
    pub source_code: String,
    /// `header.message_id` (unique per source: replays are refused).
    pub message_id: String,
    /// `header.action` (`on-search`, `notify`, …).
    pub action: String,
    /// `message.transaction_id`, if any.
    pub transaction_id: Option<String>,
    /// `message.correlation_id`, if any.
    pub correlation_id: Option<String>,
    /// `header.status`, if any.
    pub status: Option<String>,
    /// `header.total_count`.
    pub total_count: Option<u64>,
    /// `header.completed_count`.
    pub completed_count: Option<u64>,
    /// How the signature was checked.
    pub signature: SignatureState,
    /// The key id that verified it.
    pub signature_key_id: Option<String>,
    /// The envelope as received (parsed JSON of the raw body).
    pub body: Value,
    /// What had to be tolerated to read it (`path: what`, from `dci-protocol`'s lenient
    /// parser); empty when it was well-formed.
    pub tolerated: Vec<String>,
    /// When it was stored.
    pub received_at: OffsetDateTime,
}

/// Which callbacks to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackFilter {
    /// Only this data source's.
    pub source_code: Option<String>,
    /// Only this action (`notify` lists notifications).
    pub action: Option<String>,
    /// At most this many (newest first).
    pub limit: u32,
}

impl Default for CallbackFilter {
    fn default() -> Self {
        CallbackFilter {
            source_code: None,
            action: None,
            limit: 100,
        }
    }
}

/// A subscription at a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionRecord {
    /// The data source.
    pub source_code: String,
    /// The registry's subscription code.
    pub code: String,
    /// Live or not.
    pub state: SubscriptionState,
    /// `reg_event_type` subscribed to, if known.
    pub event_type: Option<String>,
    /// The subscribe (or last unsubscribe) transaction.
    pub transaction_id: Option<String>,
    /// First seen.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One of our signing keys, without its private half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigningKeyRecord {
    /// The key id (`kid` in our JWKS and in `kidId`).
    pub key_id: String,
    /// `ed25519` or `rs256`.
    #[serde(serialize_with = "ser_alg")]
    pub algorithm: Algorithm,
    /// Status.
    pub status: KeyStatus,
    /// The public key, SPKI PEM.
    pub public_key_pem: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was (last) activated.
    #[serde(with = "time::serde::rfc3339::option")]
    pub activated_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// After this it never signs.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

fn ser_alg<S: serde::Serializer>(a: &Algorithm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.as_str())
}

impl SigningKeyRecord {
    /// Whether the key may sign at `now`: active and not expired.
    pub fn can_sign(&self, now: OffsetDateTime) -> bool {
        self.status == KeyStatus::Active && self.expires_at.is_none_or(|e| e > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_store_is_object_safe() {
        fn takes(_: Option<std::sync::Arc<dyn OpsStore>>) {}
        takes(None);
    }

    #[test]
    fn states_round_trip_and_rank() {
        for s in [
            TransactionState::Pending,
            TransactionState::Acknowledged,
            TransactionState::Partial,
            TransactionState::Completed,
            TransactionState::Failed,
            TransactionState::TimedOut,
            TransactionState::Expired,
        ] {
            assert_eq!(s.as_str().parse::<TransactionState>().unwrap(), s);
        }
        assert!(TransactionState::Completed.rank() > TransactionState::TimedOut.rank());
        assert!("exploded".parse::<TransactionState>().is_err());
    }
}
