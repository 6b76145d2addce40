//! The engine's periodic work until a stop: the recovery pass ([`Engine::recover_until`]) and
//! the retention purge ([`Engine::purge_until`]), and [`every_until`], the one loop they and
//! the [`crate::jobs::Scheduler`] run in. `dci serve` runs them; a library user holding an
//! engine runs them the same way.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

use super::Engine;

/// How often [`Engine::recover_until`] looks at the waiting async requests (each is asked
/// about under its source's `recovery` settings: expected callback time, poll interval,
/// give-up).
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(5);

/// How often [`Engine::purge_until`] runs (the first run is at once).
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs `pass` at once, then every `period` (a pass that overran is followed by the next one
/// `period` later, not by a burst), until `stop` resolves. The stop is checked first, so a
/// due pass does not delay it; a pass under way ends before the stop is seen.
pub(crate) async fn every_until<F, Fut>(
    period: Duration,
    stop: impl Future<Output = ()>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            _ = every.tick() => {}
        }
        pass().await;
    }
}

impl Engine {
    /// Runs the recovery pass ([`Engine::recover_transactions`]) at once, so a restart catches
    /// up, then every [`RECOVERY_INTERVAL`], until `stop`: every waiting async request ends
    /// with its result or a definite state (`failed` when it never arrived, `expired` at its
    /// source's give-up time).
    pub async fn recover_until(&self, stop: impl Future<Output = ()>) {
        every_until(RECOVERY_INTERVAL, stop, || async {
            match self.recover_transactions().await {
                Ok(r) if r.resolved > 0 || r.expired > 0 => tracing::info!(
                    looked_up = r.looked_up,
                    resolved = r.resolved,
                    expired = r.expired,
                    "recovered waiting async requests"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not recover waiting requests"),
            }
        })
        .await;
    }

    /// Deletes finished requests, callbacks and events older than `keep`
    /// ([`crate::OpsStore::purge_before`]) at once, then every [`PURGE_INTERVAL`], until
    /// `stop`. Several instances may all run it: a purge deletes what is past the retention,
    /// so running it twice deletes nothing more.
    pub async fn purge_until(&self, keep: Duration, stop: impl Future<Output = ()>) {
        every_until(PURGE_INTERVAL, stop, || async {
            let before = OffsetDateTime::now_utc() - keep;
            match self.ops_store().purge_before(before).await {
                Ok(r) if r != crate::ops::PurgeReport::default() => tracing::info!(
                    transactions = r.transactions,
                    callbacks = r.callbacks,
                    events = r.events,
                    "purged what is past its retention"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not purge what is past its retention")
                }
            }
        })
        .await;
    }
}
