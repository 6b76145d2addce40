//! Recovery of one async request whose result has not come, under its source's
//! [`crate::RecoverySettings`]: after the expected callback time the registry is asked with a
//! sync txn-status (where it has one), and the answer completes it; a registry answering that
//! it has no such transaction ends a request it never acknowledged as `failed` (it never
//! arrived: safe to send again); at the give-up time (the transaction's deadline) a request
//! still without a result is marked `expired` with the reason. Every state change goes through
//! [`super::OpsStore::advance_transaction`]. The engine's loop
//! ([`crate::Engine::recover_transactions`]) calls [`Operations::recover`] for each waiting
//! transaction.

use std::time::Duration;

use time::OffsetDateTime;

use super::store::{TransactionRecord, TransactionState};
use super::{Lookup, Operations, OpsError};

/// What one recovery step did to a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryStep {
    /// Not due yet: its result may still come by itself.
    NotDue,
    /// Asked; no definite answer yet (it is asked again after the poll interval).
    Waiting,
    /// Ended by the registry's answer (`completed` or `failed`).
    Resolved(TransactionState),
    /// Given up: marked `expired` with this reason.
    Expired(String),
}

/// Whether a registry's "no such transaction" means that `t` never arrived: it was never
/// acknowledged (`pending`: stored, the process stopped before the answer; `unknown`: the
/// reply was lost) and nothing has happened to it for `settle`, longer than any send of it can
/// still be under way.
pub fn never_arrived(t: &TransactionRecord, now: OffsetDateTime, settle: Duration) -> bool {
    matches!(
        t.state,
        TransactionState::Pending | TransactionState::Unknown
    ) && now - t.updated_at >= settle
}

impl Operations {
    /// How long a request that was never acknowledged must stay unchanged before a registry's
    /// "no such transaction" is taken as definite: twice the request timeout (a send still
    /// under way has ended by then), and at least the expected callback time.
    pub fn settle_time(&self) -> Duration {
        let s = self.source();
        (2 * Duration::from_secs(s.timeout_secs.into())).max(s.recovery.callback_within())
    }

    /// One recovery step for `t` at `now` (see the module docs). A transaction already ended
    /// is left alone ([`RecoveryStep::NotDue`]).
    pub async fn recover(
        &self,
        t: &TransactionRecord,
        now: OffsetDateTime,
    ) -> Result<RecoveryStep, OpsError> {
        if !matches!(
            t.state,
            TransactionState::Pending
                | TransactionState::Unknown
                | TransactionState::Acknowledged
                | TransactionState::Partial
        ) {
            return Ok(RecoveryStep::NotDue);
        }
        let settings = self.source().recovery;
        let overdue = now >= t.deadline;
        let settled = never_arrived(t, now, self.settle_time());
        if !overdue && !settled && now - t.created_at < settings.callback_within() {
            return Ok(RecoveryStep::NotDue);
        }
        let last = match self.look_up(t).await? {
            Lookup::Answered(view) if view.state.is_terminal() => {
                return Ok(RecoveryStep::Resolved(view.state));
            }
            Lookup::Answered(view) => format!(
                "the registry's transaction status gave part of the result ({} of {} items)",
                view.items.len(),
                t.reference_ids.len()
            ),
            Lookup::Absent(words) if settled => {
                self.fail_never_arrived(t, &words).await?;
                return Ok(RecoveryStep::Resolved(TransactionState::Failed));
            }
            Lookup::Absent(words) => {
                format!(
                    "the registry's transaction status says it has no such transaction ({words})"
                )
            }
            Lookup::NoAnswer(cause) => {
                format!("the registry's transaction status gave no result (last: {cause})")
            }
            Lookup::Unsupported => "the registry has no transaction status for it, so only its \
                                    callback could have delivered the result"
                .to_owned(),
        };
        if !overdue {
            return Ok(RecoveryStep::Waiting);
        }
        let reason = format!(
            "no result {} s after it was sent (the source's recovery.give_up_after_secs): {last}; \
             given up — ask the registry's operators, or send it again if it is still needed",
            settings.give_up_after_secs
        );
        self.expire(t, &reason, now).await?;
        Ok(RecoveryStep::Expired(reason))
    }

    /// Marks `t` `expired` with `reason`.
    pub(crate) async fn expire(
        &self,
        t: &TransactionRecord,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, OpsError> {
        Ok(self
            .store()
            .advance_transaction(
                &t.transaction_id,
                TransactionState::Expired,
                now,
                Some(reason),
            )
            .await?)
    }
}
