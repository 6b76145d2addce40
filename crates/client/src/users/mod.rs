//! Named users of `dci serve` (console and gateway API), their roles, personal API tokens,
//! console sessions, and the change audit (who changed what and when): the model and the
//! [`UserStore`] trait that `dci-store` implements for SQLite and PostgreSQL.
//!
//! Map:
//! - this file: [`Role`], [`User`], [`ApiToken`], [`ConsoleSession`], [`ChangeRecord`] and
//!   [`UserStore`].
//! - [`secret`]: argon2 password hashes, personal API tokens (random, stored only as a SHA-256
//!   digest) and session ids.
//! - [`service`]: [`Users`], the one path of every user operation (add, password, tokens,
//!   authenticate) for the server and the CLI; each change it makes is written to the change
//!   audit.
//! - [`sign_in`]: failed sign-ins per username, counted in the store so that every instance
//!   sharing it counts the same ones ([`SignInLimit`]).
//! - [`changes`]: which fields of a data source (or any JSON document) a change touched, by
//!   name — never their values.
//!
//! Usernames identify people: they are stored (users, the change audit) but never logged and
//! never used as metric labels.
//!
//! Owns: the user model and its rules. Does not own: storage (`dci-store`), HTTP (`dci-server`).

pub mod changes;
pub mod secret;
pub mod service;
pub mod sign_in;

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::StoreError;
pub use crate::store::TimeRange;

pub use service::{UserError, Users};
pub use sign_in::SignInLimit;

/// What a user may do. Ordered: an admin may do all an operator may, an operator all a viewer
/// may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Views pages and reads the API (sources, transactions, events, audit); changes nothing
    /// and sends nothing to a registry.
    Viewer,
    /// A viewer who may also search registries (and subscribe, ask about transactions, ack
    /// events) and test connections.
    Operator,
    /// Everything: data sources, webhooks, keys, users.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// `viewer`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `viewer`, `operator`, `admin`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("role {0:?} is unknown: use viewer, operator or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(UnknownRole(s.to_owned())),
        }
    }
}

/// A named user. The password hash is kept apart ([`UserStore::password_hash`]) so that no
/// `User` value ever carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Stable id.
    pub id: Uuid,
    /// The login name: 1-64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// When the user was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the role or password last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A personal API token's record: the token itself is shown once when made and only its
/// digest is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Stable id (what `dci user token revoke` names).
    pub id: Uuid,
    /// The owner.
    pub user_id: Uuid,
    /// What the owner called it (e.g. `ci-pipeline`).
    pub name: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl ApiToken {
    /// Whether the token works at `now`: not revoked, not expired.
    pub fn usable_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A console session, stored so it survives a restart and is shared by every instance on the
/// same database. Stored by the digest of its id (the cookie holds the id); the CSRF token is
/// random per session and protects forms, not the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Hex SHA-256 of the session id ([`secret::digest_hex`]).
    pub id_digest: String,
    /// The CSRF token every form of the session carries.
    pub csrf: String,
    /// Who is logged in; `None` before login (the login form's session).
    pub login: Option<SessionLogin>,
    /// When the session was made.
    pub created_at: OffsetDateTime,
    /// When it ends unless used (each use of a logged-in session pushes this out, never past
    /// its maximum age).
    pub expires_at: OffsetDateTime,
}

/// Who a logged-in console session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLogin {
    /// The named user, or `None` for a token-only login (the admin or read-only token).
    pub user_id: Option<Uuid>,
    /// The role the session acts with.
    pub role: Role,
    /// Who the change audit records: `user:NAME`, `admin-token` or `readonly-token`.
    pub actor: String,
}

/// What kind of thing a change audit record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeTarget {
    /// A data source (id: its code).
    DataSource,
    /// A webhook endpoint (id: its id).
    Webhook,
    /// A signing key (id: its key id).
    SigningKey,
    /// A user (id: the username).
    User,
    /// A personal API token (id: the token's id).
    ApiToken,
    /// A schedule (id: its id).
    Schedule,
}

impl ChangeTarget {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeTarget::DataSource => "data_source",
            ChangeTarget::Webhook => "webhook",
            ChangeTarget::SigningKey => "signing_key",
            ChangeTarget::User => "user",
            ChangeTarget::ApiToken => "api_token",
            ChangeTarget::Schedule => "schedule",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<ChangeTarget> {
        Some(match s {
            "data_source" => ChangeTarget::DataSource,
            "webhook" => ChangeTarget::Webhook,
            "signing_key" => ChangeTarget::SigningKey,
            "user" => ChangeTarget::User,
            "api_token" => ChangeTarget::ApiToken,
            "schedule" => ChangeTarget::Schedule,
            _ => return None,
        })
    }
}

/// One configuration change: who, when, what (kind, id, action) and which fields, by name.
/// Never a value: a changed secret shows as its field name only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRecord {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: `user:NAME`, `admin-token`, `readonly-token` or `cli`.
    pub actor: String,
    /// What kind of thing.
    pub target: ChangeTarget,
    /// Which one (a code, an id, a username).
    pub target_id: String,
    /// `create`, `update`, `delete`, `activate`, `revoke`, `password`, `test`, …
    pub action: String,
    /// The fields the change touched (e.g. `base_url`, `auth.client_secret`); empty when the
    /// action says it all.
    pub fields: Vec<String>,
}

impl ChangeRecord {
    /// A record made now.
    pub fn now(
        actor: &str,
        target: ChangeTarget,
        target_id: &str,
        action: &str,
        fields: Vec<String>,
    ) -> ChangeRecord {
        ChangeRecord {
            at: OffsetDateTime::now_utc(),
            actor: actor.to_owned(),
            target,
            target_id: target_id.to_owned(),
            action: action.to_owned(),
            fields,
        }
    }
}

/// Which change records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Only within this range.
    pub range: TimeRange,
    /// Only about this kind of thing.
    pub target: Option<ChangeTarget>,
    /// At most this many (newest first); 0 means no limit.
    pub limit: u32,
}

/// Storage of users, personal API tokens, console sessions and the change audit.
///
/// Implementations store password hashes and token digests only (never a password or token),
/// keep usernames unique, and make each method atomic.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user with its argon2 password hash. Fails with [`StoreError::Conflict`] when
    /// the username is taken.
    async fn create_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError>;

    /// The user with this username.
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// The user with this id.
    async fn get_user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    /// Every user, by username.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;

    /// The stored password hash of a user (PHC string), for verification only.
    async fn password_hash(&self, user_id: Uuid) -> Result<Option<String>, StoreError>;

    /// Replaces a user's password hash and ends the user's console sessions. Fails with
    /// [`StoreError::Missing`] for an unknown id.
    async fn set_password_hash(&self, user_id: Uuid, password_hash: &str)
    -> Result<(), StoreError>;

    /// Deletes a user with its tokens and sessions. Fails with [`StoreError::Missing`] for an
    /// unknown id.
    async fn delete_user(&self, user_id: Uuid) -> Result<(), StoreError>;

    /// Stores a personal API token's record with the digest of the token.
    async fn create_api_token(&self, token: &ApiToken, digest: &str) -> Result<(), StoreError>;

    /// The token record with this digest (revoked and expired ones included: the caller
    /// decides).
    async fn find_api_token(&self, digest: &str) -> Result<Option<ApiToken>, StoreError>;

    /// A user's tokens, newest first.
    async fn list_api_tokens(&self, user_id: Uuid) -> Result<Vec<ApiToken>, StoreError>;

    /// Marks a token revoked at `at` (a revoked token stays listed). Returns the record, or
    /// [`StoreError::Missing`] for an unknown id.
    async fn revoke_api_token(&self, id: Uuid, at: OffsetDateTime) -> Result<ApiToken, StoreError>;

    /// Inserts or replaces a console session.
    async fn put_session(&self, session: &ConsoleSession) -> Result<(), StoreError>;

    /// The session with this id digest, if stored and not expired at `now`.
    async fn get_session(
        &self,
        id_digest: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ConsoleSession>, StoreError>;

    /// Moves a session's expiry (a logged-in session's idle timer).
    async fn touch_session(
        &self,
        id_digest: &str,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Deletes a session (no error if there is none).
    async fn delete_session(&self, id_digest: &str) -> Result<(), StoreError>;

    /// Deletes sessions expired at `now`; returns how many.
    async fn purge_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Counts one failed sign-in against `key` (a digest that names no one) in the store, so
    /// that every instance sharing it counts the same failures ([`SignInLimit`]): the
    /// key's next allowed instant becomes `max(it, now) + interval`, in one statement. Keys
    /// whose instant has passed are deleted on the way. Returns the new instant.
    async fn record_sign_in_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
        interval: std::time::Duration,
    ) -> Result<OffsetDateTime, StoreError>;

    /// The instant recorded for `key` by [`UserStore::record_sign_in_failure`], if any.
    async fn sign_in_failures_until(&self, key: &str)
    -> Result<Option<OffsetDateTime>, StoreError>;

    /// Appends one change record. Records are never updated or deleted.
    async fn append_change(&self, change: &ChangeRecord) -> Result<(), StoreError>;

    /// Change records, newest first.
    async fn list_changes(&self, filter: &ChangeFilter) -> Result<Vec<ChangeRecord>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        let e = "root".parse::<Role>().unwrap_err();
        assert!(e.to_string().contains("viewer, operator or admin"));
    }

    #[test]
    fn change_targets_round_trip() {
        for t in [
            ChangeTarget::DataSource,
            ChangeTarget::Webhook,
            ChangeTarget::SigningKey,
            ChangeTarget::User,
            ChangeTarget::ApiToken,
        ] {
            assert_eq!(ChangeTarget::parse(t.as_str()), Some(t));
        }
        assert_eq!(ChangeTarget::parse("nope"), None);
    }
}
