//! Brute-force limits on the admin token: failed attempts (a wrong `Authorization: Bearer` on
//! `/api/v1`, a wrong token at the console's `POST /login`) are counted per client address with
//! a GCRA rate limiter (`governor`). Once an address has used up its allowance
//! ([`ThrottleConfig::max_failures`] per [`ThrottleConfig::period`]), it is locked out until the
//! limiter would accept another failure: every request from it that presents a token is answered
//! 429 with `Retry-After`, *without* checking the token, so guessing stops even for the right
//! guess. Other addresses are not affected, and successful requests are never counted.
//!
//! The client address is the TCP peer (`ConnectInfo<SocketAddr>`, which [`crate::serve`]
//! provides); IPv6 peers are grouped by /64, since one host usually owns a whole /64. A request
//! without `ConnectInfo` (a router driven by `oneshot`) counts as one unknown client. Behind a
//! reverse proxy every client is the proxy's address: forwarded headers are not trusted, so the
//! proxy should rate-limit too.
//!
//! The console's failed sign-ins are also counted per username, whichever addresses they come
//! from ([`UserThrottle`]: the same limits, counted by the library in the store —
//! `dci_client::users::sign_in` — so that every instance sharing a database counts the same
//! failures): a locked-out username is refused 429 without its password being checked.
//! Unknown usernames count the same way, so a lock-out does not tell whether a user exists.
//! The address limits are kept per process.
//!
//! Owns: counting failures per address, lock-outs. Does not own: checking tokens
//! (`AdminToken`), the per-username count (the library), answers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::Extensions;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Bounds the memory held per address under an attack from many addresses.
const MAX_TRACKED: usize = 10_000;

/// How many failed admin-token attempts an address may make, and over what period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures allowed in a burst before the lock-out starts. Default 5.
    pub max_failures: NonZeroU32,
    /// The period in which `max_failures` are allowed; the allowance refills evenly over it
    /// (one failure per `period / max_failures`). Default 60 s.
    pub period: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            period: Duration::from_secs(60),
        }
    }
}

/// Who a request comes from, as far as the throttle is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address, or an IPv6 /64 (host bits zeroed).
    Ip(IpAddr),
    /// No peer address is known (the router is called without `ConnectInfo`).
    Unknown,
}

impl ClientKey {
    /// The key of a peer address.
    pub fn of(addr: IpAddr) -> ClientKey {
        let ip = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        };
        ClientKey::Ip(ip)
    }

    /// The key of a request, from its `ConnectInfo<SocketAddr>` extension.
    pub fn from_extensions(ext: &Extensions) -> ClientKey {
        ext.get::<ConnectInfo<SocketAddr>>()
            .map_or(ClientKey::Unknown, |ConnectInfo(a)| ClientKey::of(a.ip()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientKey::from_extensions(&parts.extensions))
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Ip(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            ClientKey::Ip(ip) => write!(f, "{ip}"),
            ClientKey::Unknown => f.write_str("unknown"),
        }
    }
}

/// The limits on failed console sign-ins per username (beside the address [`Throttle`]); the
/// count itself is the store's, through `dci_client::users::Users::sign_in_locked` and
/// `sign_in_failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserThrottle(ThrottleConfig);

impl UserThrottle {
    /// Per-username limits of `config`.
    pub fn new(config: ThrottleConfig) -> UserThrottle {
        UserThrottle(config)
    }

    /// The limits, as the library takes them.
    pub fn limit(self) -> dci_client::users::SignInLimit {
        dci_client::users::SignInLimit {
            max_failures: self.0.max_failures,
            period: self.0.period,
        }
    }
}

/// An address that is locked out: refuse it for `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// How long until the address may try again.
    pub retry_after: Duration,
}

impl Locked {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let s = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        s.max(1)
    }
}

type Limiter = RateLimiter<
    ClientKey,
    DefaultKeyedStateStore<ClientKey>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Failed attempts per client address (cheap to clone; one per server, shared by the API and
/// the console so they add up).
#[derive(Clone)]
pub struct Throttle {
    inner: Arc<Inner>,
}

struct Inner {
    config: ThrottleConfig,
    limiter: Limiter,
    locked: Mutex<HashMap<ClientKey, Instant>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(ThrottleConfig::default())
    }
}

impl Throttle {
    /// A throttle with these limits. A zero `period` is taken as one nanosecond per failure.
    pub fn new(config: ThrottleConfig) -> Throttle {
        let per = (config.period / config.max_failures.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(per)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(config.max_failures);
        Throttle {
            inner: Arc::new(Inner {
                config,
                limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
                locked: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The limits.
    pub fn config(&self) -> ThrottleConfig {
        self.inner.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, Instant>> {
        self.inner.locked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `client` is locked out now. Call before checking a presented token, and do not
    /// check it when this says locked.
    pub fn check(&self, client: ClientKey) -> Result<(), Locked> {
        let now = Instant::now();
        let mut locked = self.lock();
        match locked.get(&client) {
            Some(until) if *until > now => Err(Locked {
                retry_after: *until - now,
            }),
            Some(_) => {
                locked.remove(&client);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a failed attempt of `client`. Returns the lock-out when this failure used up the
    /// allowance (the attempt itself is still answered as a wrong token; the next one is
    /// refused).
    pub fn failed(&self, client: ClientKey) -> Option<Locked> {
        let limiter = &self.inner.limiter;
        if limiter.len() > MAX_TRACKED {
            limiter.retain_recent();
        }
        let not_until = match limiter.check_key(&client) {
            Ok(left) if left.remaining_burst_capacity() > 0 => return None,
            // That was the last failure allowed: a second check is refused (which changes
            // nothing) and says when the next one will be.
            Ok(_) => limiter.check_key(&client).err()?,
            // Failures raced past a lock-out (concurrent requests).
            Err(not_until) => not_until,
        };
        let wait = not_until
            .wait_time_from(limiter.clock().now())
            .max(Duration::from_millis(1));
        let now = Instant::now();
        let mut locked = self.lock();
        if locked.len() >= MAX_TRACKED {
            locked.retain(|_, until| *until > now);
        }
        locked.insert(client, now + wait);
        drop(locked);
        let lock = Locked { retry_after: wait };
        tracing::warn!(
            client = %client,
            retry_after_secs = lock.retry_after_secs(),
            "too many failed attempts: locked out"
        );
        Some(lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: u32, period_ms: u64) -> ThrottleConfig {
        ThrottleConfig {
            max_failures: NonZeroU32::new(n).unwrap(),
            period: Duration::from_millis(period_ms),
        }
    }

    #[test]
    fn locks_after_the_allowance_and_only_that_address() {
        let t = Throttle::new(cfg(3, 60_000));
        let a = ClientKey::of("192.0.2.1".parse().unwrap());
        let b = ClientKey::of("192.0.2.2".parse().unwrap());
        for _ in 0..2 {
            assert!(t.check(a).is_ok());
            assert!(t.failed(a).is_none());
        }
        let locked = t
            .failed(a)
            .expect("the third failure uses up the allowance");
        assert!(locked.retry_after <= Duration::from_secs(20));
        assert!(locked.retry_after_secs() >= 1);
        assert!(t.check(a).is_err());
        assert!(t.check(b).is_ok(), "other addresses are not affected");
    }

    #[test]
    fn releases_after_the_period() {
        let t = Throttle::new(cfg(2, 200));
        let a = ClientKey::Unknown;
        assert!(t.failed(a).is_none());
        assert!(t.failed(a).is_some());
        assert!(t.check(a).is_err());
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.check(a).is_ok());
    }

    #[test]
    fn ipv6_is_grouped_by_64_and_mapped_v4_is_v4() {
        let a = ClientKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            ClientKey::of("::ffff:192.0.2.7".parse().unwrap()),
            ClientKey::of("192.0.2.7".parse().unwrap())
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        let l = Locked {
            retry_after: Duration::from_millis(1500),
        };
        assert_eq!(l.retry_after_secs(), 2);
        let l = Locked {
            retry_after: Duration::from_millis(1),
        };
        assert_eq!(l.retry_after_secs(), 1);
    }
}
