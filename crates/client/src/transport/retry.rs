//! Retry policy, after the AWS SDKs' "standard" mode: transient failures of idempotent calls
//! (connection errors, timeouts, HTTP 429, 500, 502, 503, 504) are retried with exponential
//! backoff and full jitter, `Retry-After` honoured, within a per-call budget and a per-source
//! retry quota (a token bucket), so a failing registry is not hammered: every retry takes from
//! the bucket, a call that succeeds gives back what its retries took (or one token when it
//! needed none), and an empty bucket stops retrying until successes refill it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How transient failures of idempotent calls are retried.
///
/// Only the token request, sync search and transaction-status calls (and registry-specific
/// sync lookups) are retried; async submissions are never resent automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries). Default 5: at a 30 % transient
    /// fault share, 99.9 % of calls then end well (0.3⁶ < 0.001).
    pub max_retries: u32,
    /// Base of the exponential backoff: attempt `n` sleeps a random time in
    /// `[0, min(max_delay, min_delay × 2ⁿ)]` ("full jitter").
    pub min_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Total time this call may spend sleeping between attempts. A `Retry-After` that does not
    /// fit the remaining budget ends the retries, and the error reports the status.
    pub budget: Duration,
    /// Size of the source's retry quota (token bucket). 0 disables the quota.
    pub quota: u32,
    /// What one retry takes from the quota (a timeout takes twice as much).
    pub retry_cost: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            budget: Duration::from_secs(30),
            quota: 500,
            retry_cost: 5,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    pub(crate) fn start(&self) -> RetryState {
        RetryState {
            policy: *self,
            attempt: 0,
            slept: Duration::ZERO,
            taken: 0,
        }
    }
}

/// The retry quota of one data source (shared by its calls).
#[derive(Debug)]
pub(crate) struct RetryQuota {
    tokens: AtomicU32,
    capacity: u32,
}

impl RetryQuota {
    pub(crate) fn new(capacity: u32) -> RetryQuota {
        RetryQuota {
            tokens: AtomicU32::new(capacity),
            capacity,
        }
    }

    /// Takes `cost` tokens if there are that many.
    fn take(&self, cost: u32) -> bool {
        if self.capacity == 0 {
            return true;
        }
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(cost))
            .is_ok()
    }

    /// Gives tokens back (capped at the capacity).
    fn give(&self, n: u32) {
        if self.capacity == 0 {
            return;
        }
        let cap = self.capacity;
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(n).min(cap))
            });
    }

    /// Tokens left (for tests and metrics).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn available(&self) -> u32 {
        self.tokens.load(Ordering::Acquire)
    }
}

pub(crate) struct RetryState {
    policy: RetryPolicy,
    attempt: u32,
    slept: Duration,
    taken: u32,
}

impl RetryState {
    /// The delay before the next attempt, or `None` when retries, budget or the source's
    /// quota are used up. `retry_after` (from the server) replaces the computed backoff when
    /// larger; `timeout` retries cost twice as much quota.
    pub(crate) fn next_delay(
        &mut self,
        quota: &RetryQuota,
        retry_after: Option<Duration>,
        timeout: bool,
    ) -> Option<Duration> {
        if self.attempt >= self.policy.max_retries {
            return None;
        }
        let ceiling = self
            .policy
            .min_delay
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.policy.max_delay);
        let computed = ceiling.mul_f64(rand::random::<f64>());
        let delay = retry_after.map_or(computed, |ra| ra.max(computed));
        if self.slept + delay > self.policy.budget {
            return None;
        }
        let cost = self.policy.retry_cost * if timeout { 2 } else { 1 };
        if !quota.take(cost) {
            tracing::debug!("retry quota exhausted: not retrying");
            return None;
        }
        self.taken += cost;
        self.attempt += 1;
        self.slept += delay;
        Some(delay)
    }

    /// The call ended well: its retries' cost goes back to the quota (one token when it
    /// needed none).
    pub(crate) fn succeeded(&self, quota: &RetryQuota) {
        quota.give(if self.taken == 0 { 1 } else { self.taken });
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn budget_and_count_bound_retries() {
        let q = RetryQuota::new(500);
        let p = RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        };
        let mut s = p.start();
        assert!(s.next_delay(&q, None, false).is_some());
        assert!(s.next_delay(&q, None, false).is_some());
        assert!(s.next_delay(&q, None, false).is_none());
        let mut s = RetryPolicy::default().start();
        assert_eq!(s.next_delay(&q, Some(Duration::from_secs(31)), false), None);
        let mut s = RetryPolicy::default().start();
        let d = s
            .next_delay(&q, Some(Duration::from_secs(20)), false)
            .unwrap();
        assert!(d >= Duration::from_secs(20));
        assert_eq!(s.next_delay(&q, Some(Duration::from_secs(20)), false), None);
    }

    #[test]
    fn full_jitter_stays_under_the_exponential_ceiling() {
        let q = RetryQuota::new(0);
        let p = RetryPolicy {
            max_retries: 6,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            budget: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        let mut s = p.start();
        for ceiling_ms in [100u64, 200, 400, 800, 1000, 1000] {
            let d = s.next_delay(&q, None, false).unwrap();
            assert!(
                d <= Duration::from_millis(ceiling_ms),
                "{d:?} > {ceiling_ms} ms"
            );
        }
    }

    #[test]
    fn the_quota_stops_retries_and_successes_refill_it() {
        let q = RetryQuota::new(12);
        let p = RetryPolicy::default();
        let mut s = p.start();
        assert!(s.next_delay(&q, None, false).is_some()); // 12 → 7
        assert!(s.next_delay(&q, None, false).is_some()); // 7 → 2
        assert!(s.next_delay(&q, None, false).is_none(), "bucket empty");
        assert_eq!(q.available(), 2);
        s.succeeded(&q); // the two retries' cost comes back
        assert_eq!(q.available(), 12);
        let mut t = p.start();
        assert!(t.next_delay(&q, None, true).is_some()); // a timeout costs 10
        assert_eq!(q.available(), 2);
        p.start().succeeded(&q); // a call with no retry gives one token
        assert_eq!(q.available(), 3);
    }
}
