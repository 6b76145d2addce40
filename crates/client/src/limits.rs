//! Per-source limits of a run, from the source's [`LimitSettings`]: bounded concurrency (a
//! semaphore), a rate limit (`governor`'s token bucket: `rate_per_sec` with `burst`) and a
//! circuit breaker (opens after `breaker_failures` consecutive transient failures, lets one
//! probe through after `breaker_cooldown_secs`, closes on the probe's success).
//!
//! A [`Limiter`] is shared by every caller that drives one source (a bulk job, a server job);
//! each call takes a [`Pass`] with [`Limiter::acquire`] — which waits for a free slot, for the
//! rate limiter and, while the breaker is open, for its cool-down — and reports how the call
//! went with [`Pass::succeeded`] or [`Pass::failed`]. What the breaker did is kept as
//! [`BreakerEvent`]s and counted in [`LimiterStats`], so a run can show it.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::ops::OpsError;
use crate::source::LimitSettings;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls wait until the cool-down ends.
    Open,
    /// One probe is in flight; the others wait for its outcome.
    HalfOpen,
}

impl BreakerState {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// A change of the breaker's state, for the run's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerEvent {
    /// The new state.
    pub state: BreakerState,
    /// Consecutive transient failures when it changed.
    pub consecutive_failures: u32,
}

/// Counters of a limiter, for the run's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LimiterStats {
    /// Times the breaker opened.
    pub breaker_opened: u64,
    /// Probes let through while half-open.
    pub breaker_probes: u64,
    /// Times a call waited for the rate limiter.
    pub rate_limited: u64,
    /// The breaker's state now.
    pub breaker: Option<BreakerState>,
}

#[derive(Debug)]
struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: BreakerState,
    failures: u32,
    open_until: Instant,
    events: Vec<BreakerEvent>,
}

impl Breaker {
    fn change(&mut self, state: BreakerState) {
        self.state = state;
        self.events.push(BreakerEvent {
            state,
            consecutive_failures: self.failures,
        });
    }
}

#[derive(Debug)]
struct Inner {
    slots: Arc<Semaphore>,
    rate: Option<DefaultDirectRateLimiter>,
    breaker: Mutex<Breaker>,
    opened: AtomicU64,
    probes: AtomicU64,
    rate_limited: AtomicU64,
}

/// The limits of one source. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

/// Leave to make one call; report its outcome (dropping it unreported counts as neither).
#[derive(Debug)]
#[must_use]
pub struct Pass {
    limiter: Limiter,
    probe: bool,
    _slot: OwnedSemaphorePermit,
}

impl Limiter {
    /// A limiter applying `settings`.
    pub fn new(settings: &LimitSettings) -> Limiter {
        let rate = settings.rate_per_sec.and_then(NonZeroU32::new).map(|r| {
            let burst = settings.burst.and_then(NonZeroU32::new).unwrap_or(r);
            RateLimiter::direct(Quota::per_second(r).allow_burst(burst))
        });
        Limiter {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(settings.concurrency().max(1) as usize)),
                rate,
                breaker: Mutex::new(Breaker {
                    threshold: settings.breaker_threshold(),
                    cooldown: settings.breaker_cooldown(),
                    state: BreakerState::Closed,
                    failures: 0,
                    open_until: Instant::now(),
                    events: Vec::new(),
                }),
                opened: AtomicU64::new(0),
                probes: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
            }),
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.inner.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a free slot, the breaker (closed, or this call is the half-open probe) and the
    /// rate limiter, in that order.
    pub async fn acquire(&self) -> Pass {
        let slot = Arc::clone(&self.inner.slots)
            .acquire_owned()
            .await
            .expect("the limiter's semaphore is never closed");
        let probe = loop {
            let wait = {
                let mut b = self.breaker();
                match b.state {
                    BreakerState::Closed => break false,
                    BreakerState::Open if Instant::now() >= b.open_until => {
                        b.change(BreakerState::HalfOpen);
                        self.inner.probes.fetch_add(1, Ordering::Relaxed);
                        break true;
                    }
                    BreakerState::Open => b.open_until - Instant::now(),
                    // Another call is probing: look again shortly.
                    BreakerState::HalfOpen => Duration::from_millis(50),
                }
            };
            tokio::time::sleep(wait).await;
        };
        if let Some(rate) = &self.inner.rate
            && rate.check().is_err()
        {
            self.inner.rate_limited.fetch_add(1, Ordering::Relaxed);
            rate.until_ready().await;
        }
        Pass {
            limiter: self.clone(),
            probe,
            _slot: slot,
        }
    }

    /// Counters and the breaker's state.
    pub fn stats(&self) -> LimiterStats {
        let state = self.breaker().state;
        LimiterStats {
            breaker_opened: self.inner.opened.load(Ordering::Relaxed),
            breaker_probes: self.inner.probes.load(Ordering::Relaxed),
            rate_limited: self.inner.rate_limited.load(Ordering::Relaxed),
            breaker: Some(state),
        }
    }

    /// The breaker's changes since the last call (each reported once).
    pub fn take_events(&self) -> Vec<BreakerEvent> {
        std::mem::take(&mut self.breaker().events)
    }

    fn record(&self, probe: bool, transient_failure: bool) {
        let mut b = self.breaker();
        if !transient_failure {
            b.failures = 0;
            if b.state != BreakerState::Closed {
                b.change(BreakerState::Closed);
            }
            return;
        }
        b.failures = b.failures.saturating_add(1);
        let trips = probe || (b.threshold > 0 && b.failures >= b.threshold);
        if trips && (probe || b.state == BreakerState::Closed) {
            b.open_until = Instant::now() + b.cooldown;
            b.change(BreakerState::Open);
            self.inner.opened.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Pass {
    /// The call got an answer (any answer from the registry, even a refusal).
    pub fn succeeded(self) {
        self.limiter.record(self.probe, false);
    }

    /// The call failed: a transient failure ([`is_transient`]) counts towards opening the
    /// breaker; any other failure is an answer and resets it.
    pub fn failed(self, e: &OpsError) {
        self.limiter.record(self.probe, is_transient(e));
    }
}

/// Whether `e` is transient trouble (connection, timeout, HTTP 429 / 500 / 502 / 503 / 504)
/// that another attempt may get past. A DCI refusal (`rjct`, ACK `ERR` in an HTTP 200) is an
/// answer, not trouble.
pub fn is_transient(e: &OpsError) -> bool {
    match e {
        OpsError::Client(c) => c.is_transient(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(failures: u32, cooldown: u32) -> LimitSettings {
        LimitSettings {
            max_concurrency: Some(2),
            breaker_failures: Some(failures),
            breaker_cooldown_secs: Some(cooldown),
            ..LimitSettings::default()
        }
    }

    #[tokio::test]
    async fn breaker_opens_after_n_failures_probes_and_closes() {
        let l = Limiter::new(&settings(3, 1));
        let url = url::Url::parse("http://127.0.0.1:9/registry/sync/search").unwrap();
        let transient = || {
            OpsError::Client(crate::Error::timeout(
                crate::error::Phase::Registry,
                &url,
                Duration::from_secs(1),
            ))
        };
        for _ in 0..3 {
            l.acquire().await.failed(&transient());
        }
        assert_eq!(l.stats().breaker, Some(BreakerState::Open));
        let t0 = Instant::now();
        let probe = l.acquire().await;
        assert!(Instant::now() - t0 >= Duration::from_millis(990));
        assert!(probe.probe);
        assert_eq!(l.stats().breaker, Some(BreakerState::HalfOpen));
        probe.failed(&transient());
        assert_eq!(l.stats().breaker, Some(BreakerState::Open));
        let probe = l.acquire().await;
        probe.succeeded();
        assert_eq!(l.stats().breaker, Some(BreakerState::Closed));
        let states: Vec<_> = l.take_events().into_iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            [
                BreakerState::Open,
                BreakerState::HalfOpen,
                BreakerState::Open,
                BreakerState::HalfOpen,
                BreakerState::Closed
            ]
        );
        assert_eq!(l.stats().breaker_opened, 2);
    }
}
