//! Why the engine could not hand out what was asked for.

use crate::error::Error;
use crate::ops::OpsError;
use crate::store::StoreError;

/// Why a data source's client, operations or registry client could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No data source has this code.
    #[error("no data source {0:?}: check the code against the list of data sources")]
    NotFound(String),
    /// The data source is disabled.
    #[error("data source {0:?} is disabled: set its active field to true to use it")]
    Disabled(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data source's configuration cannot make a client (bad TLS file, …).
    #[error(transparent)]
    Client(#[from] Error),
    /// The data source does not fit what was asked (e.g. a registry client of another type).
    #[error(transparent)]
    Ops(#[from] OpsError),
}

impl EngineError {
    /// No such data source.
    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::NotFound(_))
    }

    /// The data source is disabled.
    pub fn is_disabled(&self) -> bool {
        matches!(self, EngineError::Disabled(_))
    }
}

impl From<EngineError> for OpsError {
    fn from(e: EngineError) -> OpsError {
        match e {
            EngineError::Ops(o) => o,
            EngineError::Client(c) => OpsError::Client(c),
            EngineError::Store(s) => OpsError::from(s),
            EngineError::NotFound(code) => OpsError::NotFound(format!(
                "no data source {code:?}: check the code against the list of data sources"
            )),
            EngineError::Disabled(code) => OpsError::invalid(
                "active",
                format!("data source {code:?} is disabled: set its active field to true to use it"),
            ),
        }
    }
}
