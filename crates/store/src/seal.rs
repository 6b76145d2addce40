//! Sealing secrets at rest: XChaCha20-Poly1305 under the master key ring.
//!
//! The ring holds the current key (which seals) and previous keys (which still open what was
//! sealed before a rotation). Every sealed value names the key that sealed it, so opening picks
//! the right key; a value under a key the ring does not hold makes the ring re-read its source
//! (the key file) once, so a process running while another rotates the key picks the new one
//! up. Which key is current is the database's decision ([`Sealer::adopt`], called by writers
//! inside their transaction), so a writer never seals with a key a rotation has retired.
//!
//! Also the stored request and callback bodies (personal data: names, identifiers), as text in
//! their own columns ([`Sealer::seal_text`]); a body stored before they were sealed (plain
//! JSON) still reads, and is sealed when next written.
//!
//! Each secret is sealed with a fresh random 192-bit nonce (large enough that random nonces never
//! collide) and the owner's id and the field name as associated data, so a ciphertext copied onto
//! another record or field fails to open instead of silently becoming that record's secret.

use std::sync::{Arc, RwLock};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use dci_client::{MasterKey, StoreError};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A secret as stored: which key sealed it, the nonce, and the ciphertext (with its tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Id of the master key (see [`key_id`]).
    pub key_id: String,
    /// 24-byte XChaCha20 nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext followed by the Poly1305 tag.
    pub ciphertext: Vec<u8>,
}

/// The public id of a master key: 16 hex digits of a domain-separated SHA-256 of the key.
///
/// It names the key in errors and in the database without revealing it.
pub fn key_id(key: &MasterKey) -> String {
    let mut h = Sha256::new();
    h.update(b"dci-store master key id v1\0");
    h.update(key.expose_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Re-reads the key ring from where it came from (the key file), newest key first.
pub(crate) type Reload = Arc<dyn Fn() -> Result<Vec<MasterKey>, String> + Send + Sync>;

/// Seals under the current key of a ring and opens under any key of it.
pub(crate) struct Sealer {
    ring: RwLock<Ring>,
    reload: Option<Reload>,
}

#[derive(Clone)]
struct Ring {
    /// Index in `keys` of the key that seals.
    current: usize,
    keys: Vec<(String, Arc<XChaCha20Poly1305>)>,
}

impl Ring {
    fn of(keys: &[MasterKey]) -> Ring {
        let mut ring = Ring {
            current: 0,
            keys: Vec::new(),
        };
        ring.merge(keys);
        ring
    }

    /// Adds the keys it does not hold yet (a key is never dropped from a running ring).
    fn merge(&mut self, keys: &[MasterKey]) {
        for key in keys {
            let id = key_id(key);
            if self.find(&id).is_none() {
                let cipher = XChaCha20Poly1305::new(key.expose_bytes().into());
                self.keys.push((id, Arc::new(cipher)));
            }
        }
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.keys.iter().position(|(k, _)| k == id)
    }

    fn current_id(&self) -> &str {
        &self.keys[self.current].0
    }
}

impl Sealer {
    pub(crate) fn new(key: &MasterKey) -> Sealer {
        Sealer::ring(std::slice::from_ref(key), None)
    }

    /// A ring of `keys` (the first seals until [`Sealer::adopt`] says otherwise), re-read with
    /// `reload` when a key id it does not hold turns up. `keys` must not be empty.
    pub(crate) fn ring(keys: &[MasterKey], reload: Option<Reload>) -> Sealer {
        assert!(!keys.is_empty(), "a key ring holds at least one key");
        Sealer {
            ring: RwLock::new(Ring::of(keys)),
            reload,
        }
    }

    /// The same ring with `key` added as the current key (a rotation's new sealer).
    pub(crate) fn with_current(&self, key: &MasterKey) -> Sealer {
        let mut ring = self.read().clone();
        ring.merge(std::slice::from_ref(key));
        ring.current = ring.find(&key_id(key)).unwrap_or(0);
        Sealer {
            ring: RwLock::new(ring),
            reload: self.reload.clone(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Id of the key that seals.
    pub(crate) fn key_id(&self) -> String {
        self.read().current_id().to_owned()
    }

    /// Makes `id` (the key the database records as current, read inside the caller's writing
    /// transaction) the key that seals, re-reading the ring if it does not hold it.
    pub(crate) fn adopt(&self, id: &str) -> Result<(), StoreError> {
        if self.read().current_id() == id {
            return Ok(());
        }
        if self.read().find(id).is_none() {
            self.refresh();
        }
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        match ring.find(id) {
            Some(i) => {
                ring.current = i;
                Ok(())
            }
            None => Err(wrong_key(id, ring.current_id())),
        }
    }

    /// Re-reads the ring's source, keeping the keys already held. A failure is logged: the
    /// caller then reports the unknown key.
    fn refresh(&self) {
        let Some(reload) = &self.reload else { return };
        match reload() {
            Ok(keys) => self
                .ring
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .merge(&keys),
            Err(e) => tracing::warn!(error = %e, "could not re-read the master key ring"),
        }
    }

    /// The cipher for `id`, re-reading the ring once if it does not hold it.
    fn cipher_for(&self, id: &str) -> Result<Arc<XChaCha20Poly1305>, StoreError> {
        let held = |s: &Sealer| {
            let ring = s.read();
            ring.find(id).map(|i| Arc::clone(&ring.keys[i].1))
        };
        if let Some(c) = held(self) {
            return Ok(c);
        }
        self.refresh();
        held(self).ok_or_else(|| wrong_key(id, self.read().current_id()))
    }

    pub(crate) fn seal(&self, owner: &str, field: &str, secret: &SecretString) -> SealedSecret {
        self.seal_bytes(owner, field, secret.expose_secret().as_bytes())
    }

    /// Seals a document for a text column: `sealed:v1:KEY_ID:NONCE:CIPHERTEXT` (base64).
    pub(crate) fn seal_text(&self, owner: &str, field: &str, text: &str) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        let sealed = self.seal_bytes(owner, field, text.as_bytes());
        format!(
            "{SEALED_TEXT}{}:{}:{}",
            sealed.key_id,
            b64.encode(&sealed.nonce),
            b64.encode(&sealed.ciphertext)
        )
    }

    /// Opens [`Sealer::seal_text`]'s text; plain text (a row stored before bodies were
    /// sealed) is returned as it is.
    pub(crate) fn open_text<'a>(
        &self,
        owner: &str,
        field: &str,
        stored: &'a str,
    ) -> Result<std::borrow::Cow<'a, str>, StoreError> {
        use base64::Engine as _;
        let Some(rest) = stored.strip_prefix(SEALED_TEXT) else {
            return Ok(std::borrow::Cow::Borrowed(stored));
        };
        let bad = || StoreError::Corrupt(format!("{field} of {owner}: malformed sealed text"));
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        let mut parts = rest.splitn(3, ':');
        let (Some(key_id), Some(nonce), Some(ct)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let sealed = SealedSecret {
            key_id: key_id.to_owned(),
            nonce: b64.decode(nonce).map_err(|_| bad())?,
            ciphertext: b64.decode(ct).map_err(|_| bad())?,
        };
        let plain = self.open_bytes(owner, field, &sealed)?;
        let text = String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("{field} of {owner} is not UTF-8")))?;
        Ok(std::borrow::Cow::Owned(text))
    }

    fn seal_bytes(&self, owner: &str, field: &str, msg: &[u8]) -> SealedSecret {
        let (key_id, cipher) = {
            let ring = self.read();
            let (id, cipher) = &ring.keys[ring.current];
            (id.clone(), Arc::clone(cipher))
        };
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(owner, field);
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg, aad: &aad })
            // Encryption fails only for messages beyond 256 GiB.
            .expect("XChaCha20-Poly1305 encryption of a small secret");
        SealedSecret {
            key_id,
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    pub(crate) fn open(
        &self,
        owner: &str,
        field: &str,
        sealed: &SealedSecret,
    ) -> Result<SecretString, StoreError> {
        let plain = self.open_bytes(owner, field, sealed)?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| StoreError::Corrupt(format!("{field} of {owner} is not UTF-8")))?;
        Ok(SecretString::from(text.to_owned()))
    }

    fn open_bytes(
        &self,
        owner: &str,
        field: &str,
        sealed: &SealedSecret,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let cipher = self.cipher_for(&sealed.key_id)?;
        if sealed.nonce.len() != 24 {
            return Err(StoreError::Corrupt(format!(
                "{field} of {owner}: bad nonce length"
            )));
        }
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&sealed.nonce),
                    Payload { msg: &sealed.ciphertext, aad: &aad(owner, field) },
                )
                .map_err(|_| {
                    StoreError::Corrupt(format!(
                        "{field} of {owner} does not open under master key {}: it was altered or moved",
                        sealed.key_id
                    ))
                })?,
        );
        Ok(plain)
    }
}

/// Marks a document sealed in a text column. No JSON text starts with `s`, so a plain JSON
/// body (stored before bodies were sealed) is never mistaken for one.
pub(crate) const SEALED_TEXT: &str = "sealed:v1:";

pub(crate) fn wrong_key(stored: &str, given: &str) -> StoreError {
    StoreError::WrongMasterKey(format!(
        "wrong master key: the stored secrets are sealed under master key {stored}, but the key given \
         (DCI_MASTER_KEY or DCI_HOME/master.key) is {given}: supply the key that was used, or restore \
         the key file; nothing was changed"
    ))
}

fn aad(owner: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + owner.len() + field.len());
    aad.extend_from_slice(b"dci-store v1\0");
    aad.extend_from_slice(owner.as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad
}

/// Seals one secret under `key`, bound to `owner` and `field` (used for encrypted exports).
pub fn seal_with(key: &MasterKey, owner: &str, field: &str, secret: &SecretString) -> SealedSecret {
    Sealer::new(key).seal(owner, field, secret)
}

/// Opens a secret sealed with [`seal_with`].
pub fn open_with(
    key: &MasterKey,
    owner: &str,
    field: &str,
    sealed: &SealedSecret,
) -> Result<SecretString, StoreError> {
    Sealer::new(key).open(owner, field, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes([b; 32])
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let s = Sealer::new(&key(1));
        let secret = SecretString::from("client-secret-xyz");
        let a = s.seal("id1", "client_secret", &secret);
        let b = s.seal("id1", "client_secret", &secret);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(!a.ciphertext.windows(6).any(|w| w == b"client"));
        assert_eq!(
            s.open("id1", "client_secret", &a).unwrap().expose_secret(),
            "client-secret-xyz"
        );
    }

    #[test]
    fn associated_data_binds_owner_and_field() {
        let s = Sealer::new(&key(1));
        let sealed = s.seal("id1", "client_secret", &SecretString::from("x"));
        assert!(matches!(
            s.open("id2", "client_secret", &sealed),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            s.open("id1", "bearer_token", &sealed),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn another_key_is_reported_as_wrong_key() {
        let sealed = Sealer::new(&key(1)).seal("id1", "f", &SecretString::from("x"));
        let err = Sealer::new(&key(2)).open("id1", "f", &sealed).unwrap_err();
        assert!(err.is_wrong_master_key(), "{err}");
        assert!(err.to_string().contains(&key_id(&key(1))));
    }

    #[test]
    fn documents_seal_as_text_and_plain_ones_still_read() {
        let s = Sealer::new(&key(1));
        let doc = r#"{"name":"Jane Doe"}"#;
        let sealed = s.seal_text("t1", "request", doc);
        assert!(sealed.starts_with(SEALED_TEXT) && !sealed.contains("Jane"));
        assert_eq!(s.open_text("t1", "request", &sealed).unwrap(), doc);
        assert!(
            s.open_text("t2", "request", &sealed).is_err(),
            "bound to its row"
        );
        assert_eq!(s.open_text("t1", "request", doc).unwrap(), doc);
        let err = Sealer::new(&key(2))
            .open_text("t1", "request", &sealed)
            .unwrap_err();
        assert!(err.is_wrong_master_key(), "{err}");
    }

    #[test]
    fn tampering_is_detected() {
        let s = Sealer::new(&key(1));
        let mut sealed = s.seal("id1", "f", &SecretString::from("x"));
        sealed.ciphertext[0] ^= 1;
        assert!(s.open("id1", "f", &sealed).is_err());
    }

    #[test]
    fn key_ids_are_stable_and_distinct() {
        assert_eq!(key_id(&key(1)), key_id(&key(1)));
        assert_ne!(key_id(&key(1)), key_id(&key(2)));
        assert_eq!(key_id(&key(1)).len(), 16);
    }

    #[test]
    fn a_ring_opens_under_any_of_its_keys_and_seals_with_the_adopted_one() {
        let old = Sealer::new(&key(1)).seal("id1", "f", &SecretString::from("x"));
        let ring = Sealer::ring(&[key(2), key(1)], None);
        assert_eq!(ring.open("id1", "f", &old).unwrap().expose_secret(), "x");
        assert_eq!(
            ring.seal("id1", "f", &SecretString::from("y")).key_id,
            key_id(&key(2))
        );
        ring.adopt(&key_id(&key(1))).unwrap();
        assert_eq!(
            ring.seal("id1", "f", &SecretString::from("y")).key_id,
            key_id(&key(1))
        );
        let err = ring.adopt(&key_id(&key(3))).unwrap_err();
        assert!(err.is_wrong_master_key(), "{err}");
    }

    #[test]
    fn an_unknown_key_id_re_reads_the_ring_once() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let reload: Reload = Arc::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(vec![key(2), key(1)])
        });
        let ring = Sealer::ring(&[key(1)], Some(reload));
        let sealed = Sealer::new(&key(2)).seal("id1", "f", &SecretString::from("x"));
        assert_eq!(ring.open("id1", "f", &sealed).unwrap().expose_secret(), "x");
        assert_eq!(ring.open("id1", "f", &sealed).unwrap().expose_secret(), "x");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
