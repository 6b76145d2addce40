//! Admission control of the gateway API: at most [`crate::ServerConfig::max_in_flight`]
//! requests in flight; one more is answered at once with 503, `Retry-After` and the documented
//! JSON error (`kind: overloaded`) instead of waiting in a queue for seconds — so the latency
//! of what is admitted stays that of an unloaded server, and callers back off.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::ApiError;

/// Seconds an overloaded caller is asked to wait.
pub const OVERLOAD_RETRY_AFTER_SECS: u64 = 1;

/// The permits of the gateway's requests in flight.
#[derive(Debug, Clone)]
pub struct Admission(Arc<Semaphore>);

impl Admission {
    /// At most `max_in_flight` requests at once (at least one).
    pub fn new(max_in_flight: usize) -> Admission {
        Admission(Arc::new(Semaphore::new(max_in_flight.max(1))))
    }
}

/// Middleware: admits the request while a permit is free, holding it until the answer is
/// ready; refuses it otherwise.
pub async fn admit(State(admission): State<Admission>, req: Request, next: Next) -> Response {
    match admission.0.clone().try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::Overloaded {
            retry_after_secs: OVERLOAD_RETRY_AFTER_SECS,
        }
        .into_response(),
    }
}
