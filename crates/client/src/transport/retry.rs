//! Retry policy: jittered exponential backoff (backon) within a budget, honouring `Retry-After`.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How transient failures of idempotent calls are retried.
///
/// Only the token request, sync search and transaction-status calls are retried; async
/// submissions are never resent automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// First backoff delay (jittered).
    pub min_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Total time this call may spend sleeping between attempts. A `Retry-After` that does not
    /// fit the remaining budget ends the retries, and the error reports the status.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            budget: Duration::from_secs(30),
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
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries as usize)
            .build();
        RetryState {
            backoff: Box::new(backoff),
            slept: Duration::ZERO,
            budget: self.budget,
        }
    }
}

pub(crate) struct RetryState {
    backoff: Box<dyn Iterator<Item = Duration> + Send>,
    slept: Duration,
    budget: Duration,
}

impl RetryState {
    /// The delay before the next attempt, or `None` when retries or budget are used up.
    /// `retry_after` (from the server) replaces the computed backoff when larger.
    pub(crate) fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let computed = self.backoff.next()?;
        let delay = retry_after.map_or(computed, |ra| ra.max(computed));
        if self.slept + delay > self.budget {
            return None;
        }
        self.slept += delay;
        Some(delay)
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
        let p = RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        };
        let mut s = p.start();
        assert!(s.next_delay(None).is_some());
        assert!(s.next_delay(None).is_some());
        assert!(s.next_delay(None).is_none());
        let mut s = RetryPolicy::default().start();
        assert_eq!(s.next_delay(Some(Duration::from_secs(31))), None);
        let mut s = RetryPolicy::default().start();
        assert!(s.next_delay(Some(Duration::from_secs(20))).unwrap() >= Duration::from_secs(20));
        assert_eq!(s.next_delay(Some(Duration::from_secs(20))), None);
    }
}
