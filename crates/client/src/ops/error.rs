//! The error of the operations: bad input (naming the field), the transport's [`crate::Error`]
//! (which carries the registry's own code and message), storage, keys, signatures and waiting.

use dci_protocol::BuildError;
use dci_protocol::signature::SignatureError;

use crate::error::RegistryError;
use crate::store::StoreError;

use super::store::TransactionState;

/// Anything an operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The input is invalid: `field` names it, `message` says how to fix it.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `query` or `message.search_request[0].search_criteria.pagination`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The call to the registry failed, or the registry refused it (ACK `ERR`, `rjct`): ask
    /// [`OpsError::registry_error`] for its code and message.
    #[error(transparent)]
    Client(#[from] crate::Error),
    /// The registry's callback or reply reported a rejection.
    #[error("the registry rejected the request: {0}")]
    Rejected(RegistryError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our signing key cannot sign (unknown, inactive, revoked or expired).
    #[error("signing key: {0}")]
    SigningKey(String),
    /// Signing failed.
    #[error("signing the envelope failed: {0}")]
    Signing(#[source] SignatureError),
    /// The registry's reply failed signature verification under the source's policy.
    #[error("the registry's reply failed signature verification: {0}")]
    Verification(String),
    /// The registry's reply could not be read (not a DCI envelope, a field of the wrong shape,
    /// an expected list missing). Nothing was concluded from it: never an empty answer.
    #[error(
        "unreadable registry reply: {0}; nothing was concluded from it. Check that the data source's base URL and endpoints point at a DCI registry of its type; if they do, report the reply to the registry's operator"
    )]
    Unreadable(String),
    /// The registry received the request and has not answered yet (header status `rcvd` or
    /// `pdng`, no results): neither a success nor a failure.
    #[error(
        "the registry has {} the request but not answered yet{}: ask again later (for an async request, look the transaction up or ask for its status)",
        if status == "pdng" { "accepted" } else { "received" },
        reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Pending {
        /// `rcvd` or `pdng`.
        status: String,
        /// The registry's reason or note, if it gave one.
        reason: Option<RegistryError>,
    },
    /// An async request was sent and its reply lost (connection dropped after sending, a
    /// timeout): the registry may have it. Stored as [`TransactionState::Unknown`] and resolved
    /// by its callback or a status lookup; sending it again could duplicate it.
    #[error(
        "the outcome of transaction {transaction_id} is unknown — the registry may have received it, but its reply was lost ({cause}); it is being resolved from its callback or a status lookup: look the transaction up, do not send it again"
    )]
    OutcomeUnknown {
        /// The transaction being resolved.
        transaction_id: String,
        /// What happened to the reply.
        cause: String,
    },
    /// The transaction did not complete in time (its current state is kept).
    #[error(
        "transaction {transaction_id} is still {state} after waiting; its result may still arrive: look the transaction up later, or ask the registry for its status"
    )]
    Timeout {
        /// The transaction.
        transaction_id: String,
        /// Its state when waiting ended.
        state: TransactionState,
    },
    /// No such transaction or key.
    #[error("{0}")]
    NotFound(String),
}

impl OpsError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> OpsError {
        OpsError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The registry's own reason (code and message), when the registry refused.
    pub fn registry_error(&self) -> Option<&RegistryError> {
        match self {
            OpsError::Client(e) => e.registry_error(),
            OpsError::Rejected(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the caller's input was at fault (HTTP 422 / exit code 2).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, OpsError::Invalid { .. })
    }

    /// Whether the registry refused the request (ERR / NACK / rjct).
    pub fn is_rejected(&self) -> bool {
        match self {
            OpsError::Client(e) => e.is_rejected() || e.registry_error().is_some(),
            OpsError::Rejected(_) => true,
            _ => false,
        }
    }

    /// Whether waiting for a result ran out of time.
    /// The request's reply was lost: its outcome is being resolved (see
    /// [`OpsError::transaction_id`]); do not resend it.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, OpsError::OutcomeUnknown { .. })
    }

    /// The transaction this error concerns, when there is one to look up.
    pub fn transaction_id(&self) -> Option<&str> {
        match self {
            OpsError::OutcomeUnknown { transaction_id, .. }
            | OpsError::Timeout { transaction_id, .. } => Some(transaction_id),
            _ => None,
        }
    }

    pub fn is_timeout(&self) -> bool {
        match self {
            OpsError::Timeout { .. } => true,
            OpsError::Client(e) => e.is_timeout(),
            _ => false,
        }
    }

    /// Whether the registry has the request but has not answered yet (`rcvd` / `pdng`).
    pub fn is_pending(&self) -> bool {
        matches!(self, OpsError::Pending { .. })
    }

    /// Whether the registry's reply could not be read.
    pub fn is_unreadable(&self) -> bool {
        matches!(self, OpsError::Unreadable(_))
    }

    /// Whether a transaction or key does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, OpsError::NotFound(_))
    }
}

impl From<BuildError> for OpsError {
    fn from(e: BuildError) -> Self {
        OpsError::invalid(e.field, e.reason)
    }
}
