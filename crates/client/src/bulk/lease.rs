//! Who runs a bulk job: [`HeldLease`], a lease on the job's row that one process takes before
//! it runs the job, renews while it runs and ends when it stops. A second `dci bulk resume` of a
//! running job, or a second server, is refused with the holder's name instead of writing the
//! same output twice; when the holder dies its lease runs out and another process may take the
//! job over. A holder on this machine whose process is gone (killed, crashed) is recognised at
//! once ([`holder_is_dead`]), so a resume right after `kill -9` need not wait for the expiry.
//!
//! The lease fences the checkpoint: [`super::BulkStore::save_bulk_checkpoint`] saves only the
//! holder's, so a process that lost its lease (stalled past the expiry) stops at its next batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use super::job::{BulkStore, JobLease};
use super::run::BulkError;
use crate::store::StoreError;

/// How long a lease lasts unless renewed (renewed every third of it).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A new holder name for this process: `host:pid:random:pid-namespace` (the namespace part is
/// left out where it cannot be read). Readable by people; [`holder_is_dead`] parses it.
pub fn holder_name() -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    let mut name = format!("{}:{}:{}", host_name(), std::process::id(), &rand[..8]);
    if let Some(ns) = pid_namespace() {
        name.push(':');
        name.push_str(&ns);
    }
    name
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into())
        .replace(':', "-")
}

/// The inode of this process's pid namespace (`/proc/self/ns/pid` → `pid:[4026531836]`): two
/// processes compare pids only within one namespace.
fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let s = link.to_str()?;
    let inner = s.strip_prefix("pid:[")?.strip_suffix(']')?;
    inner
        .chars()
        .all(|c| c.is_ascii_digit())
        .then(|| inner.to_owned())
}

/// Whether `holder` names a process of this machine and pid namespace that no longer runs (gone,
/// or a zombie not yet reaped). `false` whenever that cannot be told: another machine, another
/// namespace, an unreadable name — then only the lease's expiry frees the job.
pub fn holder_is_dead(holder: &str) -> bool {
    let parts: Vec<&str> = holder.split(':').collect();
    let [host, pid, _rand, ns] = parts[..] else {
        return false;
    };
    if host != host_name() || Some(ns) != pid_namespace().as_deref() {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: `123 (dci) Z ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// A lease this process holds on a job, renewed in the background until dropped or released.
pub struct HeldLease {
    store: Arc<dyn BulkStore>,
    job_id: String,
    holder: String,
    lost: Arc<AtomicBool>,
    renew: tokio::task::AbortHandle,
}

impl std::fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldLease")
            .field("job_id", &self.job_id)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

/// `t` plus `d`, saturating (a duration too large for a date stays far in the future).
pub(crate) fn later(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
        .unwrap_or(OffsetDateTime::new_utc(
            time::Date::MAX,
            time::Time::MIDNIGHT,
        ))
}

impl HeldLease {
    /// Takes job `id`'s lease for `holder` for `ttl` (see [`BulkStore::take_bulk_lease`]);
    /// a lease held by a dead process of this machine is taken over. Refused with
    /// [`BulkError::Busy`] naming the holder while another process runs the job.
    pub async fn take(
        store: Arc<dyn BulkStore>,
        id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<HeldLease, BulkError> {
        let now = OffsetDateTime::now_utc();
        let mut lease = store
            .take_bulk_lease(id, holder, later(now, ttl), now, None)
            .await?
            .ok_or_else(|| BulkError::NotFound(id.to_owned()))?;
        if lease.holder != holder && holder_is_dead(&lease.holder) {
            let dead = lease.holder.clone();
            tracing::info!(job = %id, holder = %dead, "taking over a bulk job whose process is gone");
            lease = store
                .take_bulk_lease(id, holder, later(now, ttl), now, Some(&dead))
                .await?
                .ok_or_else(|| BulkError::NotFound(id.to_owned()))?;
        }
        if lease.holder != holder {
            return Err(BulkError::Busy {
                id: id.to_owned(),
                holder: lease.holder,
                until: lease.until,
            });
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renew = tokio::spawn(renew(
            store.clone(),
            id.to_owned(),
            holder.to_owned(),
            ttl,
            lost.clone(),
        ))
        .abort_handle();
        Ok(HeldLease {
            store,
            job_id: id.to_owned(),
            holder: holder.to_owned(),
            lost,
            renew,
        })
    }

    /// The holder's name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether a renewal found the lease in another process's hands.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Stops renewing and ends the lease, so another process may run the job at once.
    pub async fn release(self) -> Result<(), StoreError> {
        self.renew.abort();
        self.store
            .release_bulk_lease(&self.job_id, &self.holder)
            .await
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        // Not released: the lease runs out at its expiry (or at once for a dead process).
        self.renew.abort();
    }
}

async fn renew(
    store: Arc<dyn BulkStore>,
    id: String,
    holder: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let now = OffsetDateTime::now_utc();
        match store
            .take_bulk_lease(&id, &holder, later(now, ttl), now, None)
            .await
        {
            Ok(Some(JobLease { holder: h, .. })) if h == holder => {}
            Ok(other) => {
                tracing::warn!(job = %id, now_held_by = ?other.map(|l| l.holder), "a bulk job's lease was taken over: this run stops at its next batch");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "could not renew a bulk job's lease: trying again");
            }
        }
    }
}
