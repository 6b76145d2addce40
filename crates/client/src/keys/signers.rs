//! Our signing keys, decrypted once and held in memory: the engine signs every envelope from
//! here instead of reading, unsealing and parsing the private key from the store per call.
//!
//! An entry is re-read from the store after its time to live (so a key revoked by another
//! process stops signing within it) and dropped at once when a key changes through
//! [`crate::keys::KeyManager`] with this cache attached. Expiry is checked at every use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dci_protocol::signature::{Signer, SigningKey};
use secrecy::ExposeSecret;
use time::OffsetDateTime;

use crate::ops::OpsError;
use crate::ops::store::{KeyStatus, OpsStore, SigningKeyRecord};

/// How long a decrypted key is used before its record is read again.
pub const DEFAULT_SIGNER_TTL: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Entry {
    record: SigningKeyRecord,
    key: SigningKey,
    loaded: Instant,
}

/// A cache of decrypted signing keys. Cheap to clone (clones share it).
#[derive(Clone)]
pub struct SignerCache {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    ttl: Duration,
}

impl std::fmt::Debug for SignerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for SignerCache {
    fn default() -> Self {
        SignerCache::new(DEFAULT_SIGNER_TTL)
    }
}

impl SignerCache {
    /// A cache re-reading each key's record after `ttl` (zero: never cache).
    pub fn new(ttl: Duration) -> SignerCache {
        SignerCache {
            entries: Arc::new(Mutex::new(HashMap::new())),
            ttl,
        }
    }

    /// Forgets one key (after it changed) or all of them.
    pub fn invalidate(&self, key_id: Option<&str>) {
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match key_id {
            Some(k) => {
                m.remove(k);
            }
            None => m.clear(),
        }
    }

    /// The signer for `key_id` as `sender_id`, if the key may sign at `now`.
    pub async fn signer(
        &self,
        store: &dyn OpsStore,
        key_id: &str,
        sender_id: &str,
        now: OffsetDateTime,
    ) -> Result<Signer, OpsError> {
        let hit = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .filter(|e| e.loaded.elapsed() < self.ttl)
            .cloned();
        let entry = match hit {
            Some(e) => e,
            None => {
                let e = load(store, key_id).await?;
                if !self.ttl.is_zero() {
                    self.entries
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key_id.to_owned(), e.clone());
                }
                e
            }
        };
        usable(&entry.record, now)?;
        Ok(Signer::new(entry.key, sender_id, key_id))
    }
}

async fn load(store: &dyn OpsStore, key_id: &str) -> Result<Entry, OpsError> {
    let record = store.get_signing_key(key_id).await?.ok_or_else(|| {
        OpsError::SigningKey(format!(
            "no signing key {key_id:?}: generate a key with this id, or set the data source's \
             signing_key_id to a key that exists"
        ))
    })?;
    // The record's status is checked before the private key is unsealed at all.
    usable(&record, OffsetDateTime::now_utc())?;
    let pem = store.signing_key_private(key_id).await?.ok_or_else(|| {
        OpsError::SigningKey(format!("signing key {key_id:?} has no private key stored"))
    })?;
    let key = SigningKey::from_pkcs8_pem(pem.expose_secret()).map_err(OpsError::Signing)?;
    Ok(Entry {
        record,
        key,
        loaded: Instant::now(),
    })
}

fn usable(rec: &SigningKeyRecord, now: OffsetDateTime) -> Result<(), OpsError> {
    let key_id = &rec.key_id;
    match rec.status {
        KeyStatus::Revoked => Err(OpsError::SigningKey(format!(
            "signing key {key_id:?} is revoked: set the data source's signing_key_id to an active key"
        ))),
        KeyStatus::Inactive => Err(OpsError::SigningKey(format!(
            "signing key {key_id:?} is not active: activate it, or set the data source's \
             signing_key_id to an active key"
        ))),
        KeyStatus::Active if rec.expires_at.is_some_and(|e| e <= now) => {
            Err(OpsError::SigningKey(format!(
                "signing key {key_id:?} has expired: generate a new key and set the data \
                 source's signing_key_id to it"
            )))
        }
        KeyStatus::Active => Ok(()),
    }
}
