//! [`Users`]: every user operation, for the server and the CLI alike — validation of names,
//! roles and passwords, argon2 hashing (off the async threads), personal API tokens (made,
//! shown once, checked, revoked), authentication, and a change-audit record for each change.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::secret::{self, MIN_PASSWORD_CHARS};
use super::{ApiToken, ChangeRecord, ChangeTarget, Role, User, UserStore};
use crate::store::StoreError;

/// How long a personal API token lives unless told: 90 days.
pub const DEFAULT_TOKEN_DAYS: u32 = 90;
/// The longest a personal API token may live: 366 days.
pub const MAX_TOKEN_DAYS: u32 = 366;

/// Why a user operation failed. Messages name the field and the fix, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A field is not valid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`username`, `password`, `role`, `expires_in_days`, `name`).
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No such user or token.
    #[error("{0}")]
    NotFound(String),
    /// The username is taken.
    #[error("username {0:?} is already taken: choose another, or change that user's password")]
    Taken(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Missing(m) => UserError::NotFound(m),
            other => UserError::Store(other),
        }
    }
}

/// What a presented personal API token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// A usable token of this user.
    Valid(User, ApiToken),
    /// A known token past its expiry.
    Expired,
    /// A known token that was revoked.
    Revoked,
    /// Not a token we issued (or its user is gone).
    Unknown,
}

/// The user operations over a [`UserStore`] (cheap to clone).
#[derive(Clone)]
pub struct Users {
    store: Arc<dyn UserStore>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

/// Checks a username: 1-64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_username(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid {
            field: "username",
            message: format!(
                "{name:?} is not a valid username: use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. alice.k)"
            ),
        })
    }
}

fn check_password(pw: &SecretString) -> Result<(), UserError> {
    let n = pw.expose_secret().chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(UserError::Invalid {
            field: "password",
            message: format!(
                "is {n} characters long: use at least {MIN_PASSWORD_CHARS} (a passphrase of a few words is easiest)"
            ),
        });
    }
    if n > 1024 {
        return Err(UserError::Invalid {
            field: "password",
            message: "is longer than 1024 characters: use a shorter one".into(),
        });
    }
    Ok(())
}

async fn hash(pw: &SecretString) -> Result<String, UserError> {
    let pw = pw.clone();
    tokio::task::spawn_blocking(move || secret::hash_password(&pw))
        .await
        .ok()
        .flatten()
        .ok_or_else(|| UserError::Invalid {
            field: "password",
            message: "could not be hashed: try another password".into(),
        })
}

fn no_user(name: &str) -> UserError {
    UserError::NotFound(format!(
        "no user {name:?}: check the username against the list of users"
    ))
}

impl Users {
    /// The operations over `store`.
    pub fn new(store: Arc<dyn UserStore>) -> Users {
        Users { store }
    }

    /// The store underneath (sessions, the change audit).
    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// Writes one change-audit record.
    pub async fn record(&self, change: ChangeRecord) -> Result<(), StoreError> {
        self.store.append_change(&change).await
    }

    /// Writes the change-audit record of a change already made: a failure is logged, not
    /// returned (the change itself stands). Every front end's data-source, webhook, schedule
    /// and key change is recorded through this.
    pub async fn record_or_log(&self, change: ChangeRecord) {
        let target = change.target.as_str();
        let action = change.action.clone();
        if let Err(e) = self.record(change).await {
            tracing::error!(error = %e, target, action, "could not write the change audit");
        }
    }

    /// Adds a user. `actor` is who does it (for the change audit).
    pub async fn add(
        &self,
        actor: &str,
        username: &str,
        role: Role,
        password: &SecretString,
    ) -> Result<User, UserError> {
        check_username(username)?;
        check_password(password)?;
        if self.store.get_user(username).await?.is_some() {
            return Err(UserError::Taken(username.to_owned()));
        }
        let hash = hash(password).await?;
        let now = OffsetDateTime::now_utc();
        let user = User {
            id: Uuid::now_v7(),
            username: username.to_owned(),
            role,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_user(&user, &hash).await {
            Err(StoreError::Conflict(_)) => return Err(UserError::Taken(username.to_owned())),
            r => r?,
        }
        self.record(ChangeRecord::now(
            actor,
            ChangeTarget::User,
            username,
            "create",
            vec!["username".into(), "role".into(), "password".into()],
        ))
        .await?;
        Ok(user)
    }

    /// Every user, by username.
    pub async fn list(&self) -> Result<Vec<User>, UserError> {
        Ok(self.store.list_users().await?)
    }

    /// The user named `username`, or [`UserError::NotFound`].
    pub async fn get(&self, username: &str) -> Result<User, UserError> {
        self.store
            .get_user(username)
            .await?
            .ok_or_else(|| no_user(username))
    }

    /// Removes a user with their tokens and sessions.
    pub async fn remove(&self, actor: &str, username: &str) -> Result<(), UserError> {
        let user = self.get(username).await?;
        self.store.delete_user(user.id).await?;
        self.record(ChangeRecord::now(
            actor,
            ChangeTarget::User,
            username,
            "delete",
            Vec::new(),
        ))
        .await?;
        Ok(())
    }

    /// Sets a new password (and ends the user's console sessions).
    pub async fn set_password(
        &self,
        actor: &str,
        username: &str,
        password: &SecretString,
    ) -> Result<(), UserError> {
        check_password(password)?;
        let user = self.get(username).await?;
        let hash = hash(password).await?;
        self.store.set_password_hash(user.id, &hash).await?;
        self.record(ChangeRecord::now(
            actor,
            ChangeTarget::User,
            username,
            "update",
            vec!["password".into()],
        ))
        .await?;
        Ok(())
    }

    /// The user whose name and password these are, or `None`. An unknown name costs the same
    /// hash verification as a wrong password.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<Option<User>, UserError> {
        let user = match check_username(username) {
            Ok(()) => self.store.get_user(username).await?,
            Err(_) => None,
        };
        let stored = match &user {
            Some(u) => self.store.password_hash(u.id).await?,
            None => None,
        };
        let stored = stored.unwrap_or_else(|| secret::decoy_hash().to_owned());
        let pw = password.clone();
        let ok = tokio::task::spawn_blocking(move || {
            secret::verify_password(&stored, pw.expose_secret())
        })
        .await
        .unwrap_or(false);
        Ok(user.filter(|_| ok))
    }

    /// Makes a personal API token for `username`, valid `days` days (default
    /// [`DEFAULT_TOKEN_DAYS`], at most [`MAX_TOKEN_DAYS`]). The token is returned once; only its
    /// digest is stored.
    pub async fn create_token(
        &self,
        actor: &str,
        username: &str,
        name: &str,
        days: Option<u32>,
    ) -> Result<(ApiToken, SecretString), UserError> {
        let days = days.unwrap_or(DEFAULT_TOKEN_DAYS);
        if days == 0 || days > MAX_TOKEN_DAYS {
            return Err(UserError::Invalid {
                field: "expires_in_days",
                message: format!("is {days}: use 1 to {MAX_TOKEN_DAYS} days"),
            });
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(UserError::Invalid {
                field: "name",
                message: "must be 1-100 characters: say what the token is for, e.g. ci-pipeline"
                    .into(),
            });
        }
        let user = self.get(username).await?;
        let token = secret::new_api_token();
        let now = OffsetDateTime::now_utc();
        let record = ApiToken {
            id: Uuid::now_v7(),
            user_id: user.id,
            name: name.to_owned(),
            created_at: now,
            expires_at: now + Duration::days(i64::from(days)),
            revoked_at: None,
        };
        self.store
            .create_api_token(&record, &secret::digest_hex(token.expose_secret()))
            .await?;
        self.record(ChangeRecord::now(
            actor,
            ChangeTarget::ApiToken,
            &record.id.to_string(),
            "create",
            vec!["user".into(), "name".into(), "expires_at".into()],
        ))
        .await?;
        Ok((record, token))
    }

    /// A user's tokens, newest first.
    pub async fn tokens(&self, username: &str) -> Result<Vec<ApiToken>, UserError> {
        let user = self.get(username).await?;
        Ok(self.store.list_api_tokens(user.id).await?)
    }

    /// Revokes a token by id: it never works again.
    pub async fn revoke_token(&self, actor: &str, id: Uuid) -> Result<ApiToken, UserError> {
        let t = self
            .store
            .revoke_api_token(id, OffsetDateTime::now_utc())
            .await?;
        self.record(ChangeRecord::now(
            actor,
            ChangeTarget::ApiToken,
            &id.to_string(),
            "revoke",
            vec!["revoked_at".into()],
        ))
        .await?;
        Ok(t)
    }

    /// What a presented personal API token is.
    pub async fn check_token(&self, presented: &str) -> Result<TokenCheck, UserError> {
        if !presented.trim().starts_with(secret::TOKEN_PREFIX) {
            return Ok(TokenCheck::Unknown);
        }
        let Some(t) = self
            .store
            .find_api_token(&secret::digest_hex(presented))
            .await?
        else {
            return Ok(TokenCheck::Unknown);
        };
        if t.revoked_at.is_some() {
            return Ok(TokenCheck::Revoked);
        }
        if !t.usable_at(OffsetDateTime::now_utc()) {
            return Ok(TokenCheck::Expired);
        }
        match self.store.get_user_by_id(t.user_id).await? {
            Some(u) => Ok(TokenCheck::Valid(u, t)),
            None => Ok(TokenCheck::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked() {
        for ok in ["alice", "a", "alice.k", "ops_2", "x-y"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Alice", ".alice", "al ice", "al/ice", &"a".repeat(65)] {
            let e = check_username(bad).unwrap_err();
            assert!(e.to_string().starts_with("username:"), "{e}");
        }
    }

    #[test]
    fn short_passwords_are_refused_naming_the_field() {
        let e = check_password(&SecretString::from("short")).unwrap_err();
        assert!(e.to_string().contains("password: is 5 characters"), "{e}");
        assert!(check_password(&SecretString::from("long enough pass")).is_ok());
    }
}
