//! A refused callback and how it is answered.
//!
//! Two layers, as the DCI specs draw them:
//! - **transport** refusals — the body is over the limit or not JSON, the callback secret
//!   (URL segment or `Authorization: Bearer`) is wrong or missing where it is the only way in,
//!   the data source in the URL does not exist, the store is unavailable — keep their HTTP
//!   status (4xx, or 503), since the message was never read as DCI;
//! - **DCI-level** refusals — missing or invalid signature, unknown transaction, wrong sender,
//!   malformed message, a message id reused for a different body — are answered HTTP 200 with
//!   an ACK `ERR` carrying the spec's error code (`err.signature.invalid`, …), unless the data
//!   source keeps HTTP-status refusals (`callbacks.http_refusals`).
//!
//! Either way nothing was stored.

use dci_protocol::codes::ErrorCode;
use dci_protocol::envelope::AckResponse;
use time::OffsetDateTime;

/// Which layer refused a callback (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalLayer {
    /// Refused before it was read as a DCI message: answered with its HTTP status.
    Transport,
    /// Read, and refused as a DCI message: answered HTTP 200 with ACK `ERR` (unless the
    /// source keeps HTTP-status refusals).
    Dci,
}

/// A refused callback: the HTTP status it stands for, the HTTP status to answer with, and the
/// DCI error (code and message). Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CallbackRejection {
    /// The HTTP status this refusal stands for: 400 malformed, 401 unauthenticated or bad
    /// signature, 403 sender or closed transaction, 404 unknown source or transaction, 409
    /// message id reused for a different body, 413 too large, 503 storage unavailable.
    pub http_status: u16,
    /// The HTTP status to answer with: 200 for a DCI-level refusal (the ACK `ERR` says why),
    /// `http_status` for a transport one or when the source keeps HTTP-status refusals.
    pub answer_status: u16,
    /// Which layer refused it.
    pub layer: RefusalLayer,
    /// `err.request.bad`, `err.signature.invalid`, `err.request.not_found`, … (the ACK's
    /// `error.code`, always one of the spec's `Error.code` values).
    pub code: String,
    /// What is wrong (no secrets, no payload).
    pub message: String,
}

impl CallbackRejection {
    /// A transport-level refusal, answered with `http_status`.
    pub(crate) fn transport(
        http_status: u16,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> CallbackRejection {
        CallbackRejection {
            http_status,
            answer_status: http_status,
            layer: RefusalLayer::Transport,
            code: code.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// A DCI-level refusal that stands for `http_status`, answered HTTP 200 with ACK `ERR`.
    pub(crate) fn dci(
        http_status: u16,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> CallbackRejection {
        CallbackRejection {
            http_status,
            answer_status: 200,
            layer: RefusalLayer::Dci,
            code: code.as_str().to_owned(),
            message: message.into(),
        }
    }

    /// A malformed message (`err.request.bad`, DCI level).
    pub(crate) fn bad(message: impl Into<String>) -> CallbackRejection {
        CallbackRejection::dci(400, ErrorCode::RequestBad, message)
    }

    /// Answered with its HTTP status even if DCI-level, for a source with
    /// `callbacks.http_refusals`.
    pub(crate) fn with_http_status(mut self) -> CallbackRejection {
        self.answer_status = self.http_status;
        self
    }

    /// The DCI body to answer with: an ACK with `ack_status: ERR` and this error.
    pub fn to_ack(&self, now: OffsetDateTime) -> AckResponse {
        AckResponse::err(
            &dci_protocol::build::new_id(),
            ErrorCode::parse_lenient(&self.code),
            &self.message,
            now,
        )
    }

    /// Whether the message id was already received with a different body.
    pub fn is_duplicate(&self) -> bool {
        self.http_status == 409
    }

    /// Whether it is answered HTTP 200 with ACK `ERR` (a DCI-level refusal, the default).
    pub fn answered_in_ack(&self) -> bool {
        self.answer_status == 200
    }
}
