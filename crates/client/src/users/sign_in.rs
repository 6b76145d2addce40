//! Failed sign-ins per username, counted in the store: [`SignInLimit`], and
//! [`Users::sign_in_locked`] / [`Users::sign_in_failed`].
//!
//! The count is a GCRA limiter (the algorithm of the `governor` crate) whose one value per
//! username — the instant from which the next failure would again be within the allowance — is
//! kept in the store, so every instance of `dci serve` sharing a database counts the same
//! failures: with `max_failures` 5 per 60 s, five wrong passwords lock the username whichever
//! instances they reach, and each further 12 s frees one more attempt. A username is keyed by
//! the SHA-256 of its trimmed, lowercased text, so the store holds no username here and unknown
//! usernames count the same way (a lock-out does not tell whether a user exists).
//!
//! Owns: the limit and its arithmetic. Does not own: where the count is kept
//! ([`super::UserStore`]),
//! how a lock-out is answered (the server).

use std::num::NonZeroU32;
use std::time::Duration;

use time::OffsetDateTime;

use super::service::{UserError, Users};

/// How many failed sign-ins a username may have, and over what period: `max_failures` in a
/// burst, refilling evenly (one per `period / max_failures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimit {
    /// Failures allowed in a burst before the lock-out starts.
    pub max_failures: NonZeroU32,
    /// The period in which `max_failures` are allowed.
    pub period: Duration,
}

impl SignInLimit {
    /// The time one failure takes to be forgiven (`period / max_failures`, at least 1 ms).
    fn interval(self) -> Duration {
        (self.period / self.max_failures.get()).max(Duration::from_millis(1))
    }

    /// How long a key whose next allowed instant is `until` stays locked at `now`: `None` when
    /// one more failure is still within the allowance.
    pub fn locked_for(
        self,
        until: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Option<Duration> {
        let until = until?;
        // One more failure would move `until` to max(until, now) + interval; allowed while
        // that is no more than `period` ahead of now.
        let after_one_more = until.max(now) + self.interval();
        let over = after_one_more - (now + self.period);
        (over > time::Duration::ZERO).then(|| over.unsigned_abs())
    }
}

/// The key of a username as typed: the hex SHA-256 of its trimmed, lowercased text.
pub fn sign_in_key(username: &str) -> String {
    super::secret::digest_hex(&username.trim().to_lowercase())
}

impl Users {
    /// `Some(wait)` when `username` has used up its failed sign-ins under `limit` (by the
    /// store's count, shared by every instance): refuse the attempt without checking its
    /// password, and say how long to wait.
    pub async fn sign_in_locked(
        &self,
        username: &str,
        limit: SignInLimit,
    ) -> Result<Option<Duration>, UserError> {
        let until = self
            .store()
            .sign_in_failures_until(&sign_in_key(username))
            .await?;
        Ok(limit.locked_for(until, OffsetDateTime::now_utc()))
    }

    /// Counts one failed sign-in for `username` under `limit`.
    pub async fn sign_in_failed(
        &self,
        username: &str,
        limit: SignInLimit,
    ) -> Result<(), UserError> {
        self.store()
            .record_sign_in_failure(
                &sign_in_key(username),
                OffsetDateTime::now_utc(),
                limit.interval(),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn limit(max: u32, secs: u64) -> SignInLimit {
        SignInLimit {
            max_failures: NonZeroU32::new(max).unwrap(),
            period: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_burst_of_max_failures_locks_and_each_interval_frees_one() {
        let l = limit(5, 60);
        let now = datetime!(2026-12-03 12:00 UTC);
        let mut until = None;
        for i in 0..5 {
            assert_eq!(l.locked_for(until, now), None, "failure {i} is allowed");
            until = Some(until.unwrap_or(now).max(now) + l.interval());
        }
        assert_eq!(l.locked_for(until, now), Some(Duration::from_secs(12)));
        let later = now + time::Duration::seconds(12);
        assert_eq!(l.locked_for(until, later), None, "one interval later");
        let a_bit_earlier = later - time::Duration::seconds(1);
        assert_eq!(
            l.locked_for(until, a_bit_earlier),
            Some(Duration::from_secs(1))
        );
        assert_eq!(l.locked_for(None, now), None, "no failures, no lock");
    }

    #[test]
    fn keys_name_no_one_and_ignore_case_and_spacing() {
        let k = sign_in_key(" Alice ");
        assert_eq!(k, sign_in_key("alice"));
        assert_ne!(k, sign_in_key("bob"));
        assert_eq!(k.len(), 64);
        assert!(!k.contains("alice"));
    }
}
