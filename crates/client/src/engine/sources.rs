//! Saving data sources: the one path the API, the console and the CLI take to create, update,
//! enable or disable and delete a data source. Each save checks the signing key the source
//! names, writes the store (one transaction), records who changed which fields in the change
//! audit and drops what the engine held for the source, so that the next use reads the new
//! record.
//!
//! Owns: the order of those steps and the error a front end translates ([`SaveError`]). Does
//! not own: validating the document (see [`crate::SourceDocument`]) or how a front end words
//! the errors.

use std::fmt;

use super::Engine;
use crate::source::DataSource;
use crate::store::StoreError;
use crate::users::changes::{created_source_fields, source_fields};
use crate::users::{ChangeRecord, ChangeTarget, Users};
use crate::{OpsError, ValidationErrors};

/// Why a data source was not saved.
#[derive(Debug)]
pub enum SaveError {
    /// A field's value was refused (the signing key named is unknown or revoked): the fields
    /// and how to fix them. Nothing was written.
    Invalid(ValidationErrors),
    /// The store refused or failed the write (a code already taken, an unknown source, the
    /// database unavailable). Nothing was written.
    Store(StoreError),
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::Invalid(e) => e.fmt(f),
            SaveError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SaveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SaveError::Invalid(_) => None,
            SaveError::Store(e) => Some(e),
        }
    }
}

impl From<StoreError> for SaveError {
    fn from(e: StoreError) -> SaveError {
        SaveError::Store(e)
    }
}

impl Engine {
    /// Stores a new data source for `actor` and answers the stored record (with its callback
    /// secret, which the caller shows once).
    pub async fn create_source(
        &self,
        actor: &str,
        source: &DataSource,
    ) -> Result<DataSource, SaveError> {
        self.check_signing_key(source).await?;
        self.store().create_data_source(source).await?;
        self.invalidate(&source.code);
        self.record_source_change(actor, &source.code, "create", created_source_fields(source))
            .await;
        self.store()
            .get_data_source(&source.code)
            .await?
            .ok_or_else(|| StoreError::NotFound(source.code.clone()))
            .map_err(SaveError::Store)
    }

    /// Replaces the data source `existing` (as read before the edit) with `source`, for
    /// `actor`, and answers the stored record. The audit lists the fields that changed (secrets
    /// by name only).
    pub async fn update_source(
        &self,
        actor: &str,
        existing: &DataSource,
        source: &DataSource,
    ) -> Result<DataSource, SaveError> {
        self.check_signing_key(source).await?;
        let stored = self.store().update_data_source(source).await?;
        self.invalidate(&existing.code);
        self.invalidate(&stored.code);
        self.record_source_change(
            actor,
            &existing.code,
            "update",
            source_fields(existing, &stored),
        )
        .await;
        Ok(stored)
    }

    /// Enables or disables the data source `code`, for `actor`.
    pub async fn set_source_active(
        &self,
        actor: &str,
        code: &str,
        active: bool,
    ) -> Result<(), StoreError> {
        self.store().set_active(code, active).await?;
        self.invalidate(code);
        self.record_source_change(actor, code, "update", vec!["active".to_owned()])
            .await;
        Ok(())
    }

    /// Deletes the data source `code` (with its secrets and cached token) for `actor` and
    /// drops what the engine held for it.
    pub async fn delete_source(&self, actor: &str, code: &str) -> Result<(), StoreError> {
        self.store().delete_data_source(code).await?;
        self.invalidate(code);
        self.record_source_change(actor, code, "delete", Vec::new())
            .await;
        Ok(())
    }

    /// The signing key a source names must exist and not be revoked: refused on
    /// `signing_key_id`.
    async fn check_signing_key(&self, source: &DataSource) -> Result<(), SaveError> {
        match crate::keys::KeyManager::new(self.ops_store().clone())
            .check_source_key(source)
            .await
        {
            Ok(()) => Ok(()),
            Err(OpsError::Invalid { message, .. }) => Err(SaveError::Invalid(
                ValidationErrors::one("signing_key_id", message),
            )),
            Err(OpsError::Store(e)) => Err(SaveError::Store(e)),
            Err(other) => Err(SaveError::Store(StoreError::Backend {
                message: "checking the signing key".into(),
                source: Box::new(other),
            })),
        }
    }

    /// Writes the change audit entry of a data-source change made another way (an import);
    /// a failure is logged, not returned (the change itself is stored).
    pub async fn record_source_change(
        &self,
        actor: &str,
        code: &str,
        action: &str,
        fields: Vec<String>,
    ) {
        let change = ChangeRecord::now(actor, ChangeTarget::DataSource, code, action, fields);
        Users::new(self.ops_store().clone())
            .record_or_log(change)
            .await;
    }
}
