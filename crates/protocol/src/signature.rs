//! The DCI signature profile: the envelope's `signature` string.
//!
//! The specs only show an example (`namespace="spdci", kidId="{sender_id}|{key_id}|{alg}", …`);
//! the interoperable recipe is the one the reference implementation (OpenSPP
//! `spp_dci/services/signing.py`) uses, and this module reproduces it byte for byte:
//!
//! 1. `digest = base64(SHA-256(C))` where `C` is the canonical JSON of
//!    `{"header": header, "message": message}` ([`Canonicalization::PythonJson`] by default,
//!    RFC 8785 as an option);
//! 2. signing string `"(created): {created}\n(expires): {expires}\ndigest: {digest}"`;
//! 3. `signature = base64(sign(signing string))` with Ed25519 or RSA PKCS#1 v1.5 SHA-256;
//! 4. emitted as `namespace="dci", kidId="{sender_id}|{key_id}|{alg}", algorithm="{alg}",
//!    created="…", expires="…", headers="(created) (expires) digest", signature="…"`.
//!
//! Verification is lenient about the form (an optional `Signature:` prefix, `kidId` or
//! `keyId`, any namespace, quoted or bare values) and strict about the content (algorithm,
//! validity window with a configurable clock skew, the signature itself).
//!
//! An envelope with no `message` (an error callback) is signed over `"message": null`.
//! Verify inbound envelopes on the JSON as received, before any typed parsing.
//!
//! ```
//! use dci_protocol::OffsetDateTime;
//! use dci_protocol::signature::{Algorithm, Signer, SigningKey, VerifyOptions, verify_envelope};
//!
//! let key = SigningKey::generate(Algorithm::Ed25519)?;
//! let public = key.verifying_key(); // publish with public.to_spki_pem() or public.to_jwk(kid)
//! let signer = Signer::new(key, "spmis.example", "key-1");
//! let now = OffsetDateTime::now_utc();
//! let mut envelope = serde_json::json!({
//!     "header": {"message_id": "1", "message_ts": "2025-01-01T00:00:00Z", "action": "search"},
//!     "message": {"transaction_id": "t", "name": "Zoë"},
//! });
//! signer.sign_envelope(&mut envelope, now)?;
//! let sig = verify_envelope(&envelope, &public, &VerifyOptions::default(), now)?;
//! assert_eq!(sig.sender_id, "spmis.example");
//! # Ok::<(), dci_protocol::signature::SignatureError>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ED25519, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::canonical;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (33 bytes) } — followed by the 32-byte public key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Default validity of a signature, as in the reference implementation.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(300);

/// Default tolerated clock difference between signer and verifier.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(60);

/// The `headers` parameter this profile signs.
pub const SIGNED_HEADERS: &str = "(created) (expires) digest";

/// Signature algorithms of the profile. Wire names `ed25519` and `rs256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Algorithm {
    /// The wire name used in `algorithm="…"` and in `kidId`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rs256 => "rs256",
        }
    }

    /// The JOSE `alg` value for a JWK of this algorithm.
    pub fn jose_alg(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "EdDSA",
            Algorithm::Rs256 => "RS256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = SignatureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ed25519" | "eddsa" => Ok(Algorithm::Ed25519),
            "rs256" | "rsa-sha256" => Ok(Algorithm::Rs256),
            _ => Err(SignatureError::UnsupportedAlgorithm(s.to_owned())),
        }
    }
}

/// How `{"header":…, "message":…}` is turned into bytes before digesting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Canonicalization {
    /// Python `json.dumps(sort_keys=True, separators=(",", ":"))` — what OpenSPP and other
    /// Python peers use.
    #[default]
    PythonJson,
    /// RFC 8785 JSON Canonicalization Scheme.
    Jcs,
}

impl Canonicalization {
    /// Canonical text of `v` in this form.
    pub fn apply(self, v: &Value) -> String {
        match self {
            Canonicalization::PythonJson => canonical::python_json(v),
            Canonicalization::Jcs => canonical::jcs(v),
        }
    }
}

/// Everything that can go wrong signing or verifying. Messages are written for the person
/// debugging "the registry rejects our signature".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature string cannot be parsed.
    #[error("malformed signature string: {0}")]
    Malformed(String),
    /// A required parameter is absent from the signature string.
    #[error(
        "malformed signature string: parameter `{0}` is missing (expected namespace, kidId, algorithm, created, expires, headers, signature)"
    )]
    MissingParameter(&'static str),
    /// The signature names an algorithm this profile does not support.
    #[error("unsupported signature algorithm {0:?}: use ed25519 or rs256")]
    UnsupportedAlgorithm(String),
    /// The signature's algorithm is not the verifying key's.
    #[error(
        "algorithm mismatch: the signature says {signature} but the public key is {key}; check that the sender uses the key you were given"
    )]
    AlgorithmMismatch {
        /// Algorithm named in the signature string.
        signature: Algorithm,
        /// Algorithm of the verifying key.
        key: Algorithm,
    },
    /// `expires` is in the past (beyond the allowed skew).
    #[error(
        "signature expired at {expires} (unix), now is {now}; the sender must sign just before sending, or its clock is behind"
    )]
    Expired {
        /// `expires` of the signature (unix seconds).
        expires: i64,
        /// Verifier's clock (unix seconds).
        now: i64,
    },
    /// `created` is further in the future than the allowed skew.
    #[error(
        "signature created at {created} (unix) is in the future (now {now}, allowed skew {max_skew_secs}s); the sender's clock is ahead — check NTP on both sides"
    )]
    NotYetValid {
        /// `created` of the signature (unix seconds).
        created: i64,
        /// Verifier's clock (unix seconds).
        now: i64,
        /// Allowed skew in seconds.
        max_skew_secs: u64,
    },
    /// The signature does not match the digest of header+message under this key.
    #[error(
        "signature does not verify: either the header/message were changed after signing (compare `dci envelope canonicalize` output on both sides), the canonicalization differs, or the signer used another key"
    )]
    Invalid,
    /// A key could not be read.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Signer configuration (sender id, key id) is unusable.
    #[error("invalid signer setting `{field}`: {reason}")]
    InvalidSigner {
        /// Which setting.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The crypto backend failed to produce a signature.
    #[error("signing failed in the crypto backend")]
    Crypto,
}

enum KeyInner {
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key (Ed25519 or RSA). `Debug` never shows key material; clones share the
/// key.
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<KeyInner>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("key", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// Reads an unencrypted PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), Ed25519 or
    /// RSA; the algorithm follows from the key.
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<Self, SignatureError> {
        let block = pem::parse(pem_text.trim())
            .map_err(|e| SignatureError::InvalidKey(format!("not a PEM block: {e}")))?;
        match block.tag() {
            "PRIVATE KEY" => {}
            "RSA PRIVATE KEY" => {
                return Err(SignatureError::InvalidKey(
                    "this is a PKCS#1 RSA key; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem`".into(),
                ));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(SignatureError::InvalidKey(
                    "the private key is password-protected; decrypt it with `openssl pkcs8 -nocrypt -in key.pem -out plain.pem`".into(),
                ));
            }
            "PUBLIC KEY" => {
                return Err(SignatureError::InvalidKey(
                    "this is a public key; signing needs the PKCS#8 private key (-----BEGIN PRIVATE KEY-----)".into(),
                ));
            }
            other => {
                return Err(SignatureError::InvalidKey(format!(
                    "expected a PKCS#8 private key (-----BEGIN PRIVATE KEY-----), found `{other}`"
                )));
            }
        }
        let der = Zeroizing::new(block.into_contents());
        Self::from_pkcs8_der(&der)
    }

    /// Reads an unencrypted PKCS#8 DER private key, Ed25519 or RSA.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignatureError> {
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8(der) {
            return Ok(Self {
                inner: Arc::new(KeyInner::Ed25519(kp)),
            });
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(kp) => Ok(Self {
                inner: Arc::new(KeyInner::Rsa(kp)),
            }),
            Err(e) => Err(SignatureError::InvalidKey(format!(
                "PKCS#8 key is neither Ed25519 nor a usable RSA key (RSA needs 2048–8192 bits): {e}"
            ))),
        }
    }

    /// Generates a fresh key: Ed25519, or RSA-2048 for [`Algorithm::Rs256`].
    pub fn generate(algorithm: Algorithm) -> Result<Self, SignatureError> {
        let inner = match algorithm {
            Algorithm::Ed25519 => {
                KeyInner::Ed25519(Ed25519KeyPair::generate().map_err(|_| SignatureError::Crypto)?)
            }
            Algorithm::Rs256 => KeyInner::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| SignatureError::Crypto)?,
            ),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The key as unencrypted PKCS#8 PEM (v1, as OpenSSL and Python `cryptography` write it).
    pub fn to_pkcs8_pem(&self) -> Result<SecretString, SignatureError> {
        let der: Zeroizing<Vec<u8>> = Zeroizing::new(match &*self.inner {
            KeyInner::Ed25519(kp) => kp
                .to_pkcs8v1()
                .map_err(|_| SignatureError::Crypto)?
                .as_ref()
                .to_vec(),
            KeyInner::Rsa(kp) => kp
                .as_der()
                .map_err(|_| SignatureError::Crypto)?
                .as_ref()
                .to_vec(),
        });
        let text = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
        Ok(SecretString::from(text))
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match &*self.inner {
            KeyInner::Ed25519(_) => Algorithm::Ed25519,
            KeyInner::Rsa(_) => Algorithm::Rs256,
        }
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        match &*self.inner {
            KeyInner::Ed25519(kp) => {
                let mut raw = [0u8; 32];
                raw.copy_from_slice(kp.public_key().as_ref());
                VerifyingKey(VerifyingInner::Ed25519(raw))
            }
            KeyInner::Rsa(kp) => {
                let pk = kp.public_key();
                VerifyingKey(VerifyingInner::Rsa {
                    n: pk.modulus().big_endian_without_leading_zero().to_vec(),
                    e: pk.exponent().big_endian_without_leading_zero().to_vec(),
                })
            }
        }
    }

    /// Signs raw bytes (the signing string).
    pub fn sign_bytes(&self, msg: &[u8]) -> Result<Vec<u8>, SignatureError> {
        match &*self.inner {
            KeyInner::Ed25519(kp) => Ok(kp.sign(msg).as_ref().to_vec()),
            KeyInner::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| SignatureError::Crypto)?;
                Ok(sig)
            }
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum VerifyingInner {
    Ed25519([u8; 32]),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// A public key that verifies signatures (Ed25519 or RSA).
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey(VerifyingInner);

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            VerifyingInner::Ed25519(raw) => f
                .debug_struct("VerifyingKey")
                .field("algorithm", &Algorithm::Ed25519)
                .field("x", &URL_SAFE_NO_PAD.encode(raw))
                .finish(),
            VerifyingInner::Rsa { n, .. } => f
                .debug_struct("VerifyingKey")
                .field("algorithm", &Algorithm::Rs256)
                .field("bits", &(n.len() * 8))
                .finish(),
        }
    }
}

impl VerifyingKey {
    /// Reads a SubjectPublicKeyInfo PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_spki_pem(pem_text: &str) -> Result<Self, SignatureError> {
        let block = pem::parse(pem_text.trim())
            .map_err(|e| SignatureError::InvalidKey(format!("not a PEM block: {e}")))?;
        match block.tag() {
            "PUBLIC KEY" => Self::from_spki_der(block.contents()),
            "RSA PUBLIC KEY" => {
                let pk = aws_lc_rs::rsa::PublicKey::from_der(block.contents()).map_err(|e| {
                    SignatureError::InvalidKey(format!("unreadable PKCS#1 RSA public key: {e}"))
                })?;
                Ok(Self::from_rsa(&pk))
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                Err(SignatureError::InvalidKey(
                    "this is a private key; verification needs the public key (-----BEGIN PUBLIC KEY-----); export it with `openssl pkey -in key.pem -pubout`".into(),
                ))
            }
            other => Err(SignatureError::InvalidKey(format!(
                "expected a public key (-----BEGIN PUBLIC KEY-----), found `{other}`"
            ))),
        }
    }

    /// Reads a DER SubjectPublicKeyInfo, Ed25519 or RSA.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, SignatureError> {
        if der.len() == 44 && der[..12] == ED25519_SPKI_PREFIX {
            let mut raw = [0u8; 32];
            raw.copy_from_slice(&der[12..]);
            return Ok(Self(VerifyingInner::Ed25519(raw)));
        }
        match aws_lc_rs::rsa::PublicKey::from_der(der) {
            Ok(pk) => Ok(Self::from_rsa(&pk)),
            Err(_) => Err(SignatureError::InvalidKey(
                "public key is neither Ed25519 nor RSA SubjectPublicKeyInfo".into(),
            )),
        }
    }

    fn from_rsa(pk: &aws_lc_rs::rsa::PublicKey) -> Self {
        Self(VerifyingInner::Rsa {
            n: pk.modulus().big_endian_without_leading_zero().to_vec(),
            e: pk.exponent().big_endian_without_leading_zero().to_vec(),
        })
    }

    /// An Ed25519 key from its 32 raw bytes.
    pub fn ed25519_from_bytes(raw: &[u8]) -> Result<Self, SignatureError> {
        let raw: [u8; 32] = raw.try_into().map_err(|_| {
            SignatureError::InvalidKey(format!(
                "an Ed25519 public key is 32 bytes, got {}",
                raw.len()
            ))
        })?;
        Ok(Self(VerifyingInner::Ed25519(raw)))
    }

    /// The key as SubjectPublicKeyInfo PEM.
    pub fn to_spki_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.to_spki_der()))
    }

    /// The key as DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        match &self.0 {
            VerifyingInner::Ed25519(raw) => {
                let mut der = ED25519_SPKI_PREFIX.to_vec();
                der.extend_from_slice(raw);
                der
            }
            VerifyingInner::Rsa { n, e } => {
                let comps = PublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                };
                // Components came from a parsed key, so encoding cannot fail in practice.
                comps
                    .as_der()
                    .map(|d| d.as_ref().to_vec())
                    .unwrap_or_default()
            }
        }
    }

    /// Reads a JWK: `{"kty":"OKP","crv":"Ed25519","x":…}` or `{"kty":"RSA","n":…,"e":…}`.
    pub fn from_jwk(jwk: &Value) -> Result<Self, SignatureError> {
        let field = |name: &str| -> Result<Vec<u8>, SignatureError> {
            let s = jwk.get(name).and_then(Value::as_str).ok_or_else(|| {
                SignatureError::InvalidKey(format!("JWK field `{name}` is missing"))
            })?;
            URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|e| SignatureError::InvalidKey(format!("JWK field `{name}`: {e}")))
        };
        match jwk.get("kty").and_then(Value::as_str) {
            Some("OKP") => {
                let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or("");
                if crv != "Ed25519" {
                    return Err(SignatureError::InvalidKey(format!(
                        "JWK crv {crv:?} is not supported; use Ed25519"
                    )));
                }
                Self::ed25519_from_bytes(&field("x")?)
            }
            Some("RSA") => {
                let strip = |v: Vec<u8>| {
                    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
                    v[first..].to_vec()
                };
                let n = strip(field("n")?);
                let e = strip(field("e")?);
                if n.len() < 256 {
                    return Err(SignatureError::InvalidKey(format!(
                        "RSA key of {} bits is too small; at least 2048 bits",
                        n.len() * 8
                    )));
                }
                Ok(Self(VerifyingInner::Rsa { n, e }))
            }
            other => Err(SignatureError::InvalidKey(format!(
                "JWK kty {other:?} is not supported; use OKP (Ed25519) or RSA"
            ))),
        }
    }

    /// The key as a JWK with `use: sig`, `alg` (`EdDSA` or `RS256`) and the given `kid`.
    pub fn to_jwk(&self, kid: &str) -> Value {
        match &self.0 {
            VerifyingInner::Ed25519(raw) => json!({
                "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(raw),
                "use": "sig", "alg": "EdDSA", "kid": kid,
            }),
            VerifyingInner::Rsa { n, e } => json!({
                "kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e),
                "use": "sig", "alg": "RS256", "kid": kid,
            }),
        }
    }

    /// RFC 7638 JWK thumbprint (base64url SHA-256 of the required members in lexicographic
    /// order) — the usual JWKS `kid`.
    pub fn thumbprint(&self) -> String {
        let members = match &self.0 {
            VerifyingInner::Ed25519(raw) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(raw)
            ),
            VerifyingInner::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(e),
                URL_SAFE_NO_PAD.encode(n)
            ),
        };
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, members.as_bytes());
        URL_SAFE_NO_PAD.encode(d.as_ref())
    }

    /// Finds the signature key `kid` in a JWKS document `{"keys": [...]}` (keys with
    /// `use: enc` are skipped).
    pub fn from_jwks(jwks: &Value, kid: &str) -> Result<Self, SignatureError> {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| SignatureError::InvalidKey("JWKS has no `keys` array".into()))?;
        let jwk = keys
            .iter()
            .filter(|k| k.get("use").and_then(Value::as_str) != Some("enc"))
            .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
            .ok_or_else(|| {
                let known: Vec<&str> = keys
                    .iter()
                    .filter_map(|k| k.get("kid").and_then(Value::as_str))
                    .collect();
                SignatureError::InvalidKey(format!(
                    "no signature key with kid {kid:?} in the JWKS (it has {known:?})"
                ))
            })?;
        Self::from_jwk(jwk)
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match &self.0 {
            VerifyingInner::Ed25519(_) => Algorithm::Ed25519,
            VerifyingInner::Rsa { .. } => Algorithm::Rs256,
        }
    }

    /// Verifies `sig` over raw bytes.
    pub fn verify_bytes(&self, msg: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
        let ok = match &self.0 {
            VerifyingInner::Ed25519(raw) => UnparsedPublicKey::new(&ED25519, raw)
                .verify(msg, sig)
                .is_ok(),
            VerifyingInner::Rsa { n, e } => PublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .verify(&RSA_PKCS1_2048_8192_SHA256, msg, sig)
            .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

/// The canonical text that is digested: `{"header":…,"message":…}` in the given form.
pub fn canonical_payload(header: &Value, message: &Value, c: Canonicalization) -> String {
    match c {
        Canonicalization::PythonJson => canonical::python_json_envelope(header, message),
        Canonicalization::Jcs => canonical::jcs_envelope(header, message),
    }
}

/// `base64(SHA-256(canonical payload))`.
pub fn digest(header: &Value, message: &Value, c: Canonicalization) -> String {
    digest_bytes(canonical_payload(header, message, c).as_bytes())
}

/// `base64(SHA-256(bytes))`, the digest encoding of the profile.
pub fn digest_bytes(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    STANDARD.encode(d.as_ref())
}

/// The string that is actually signed.
pub fn signing_string(created: i64, expires: i64, digest: &str) -> String {
    format!("(created): {created}\n(expires): {expires}\ndigest: {digest}")
}

/// Produces `signature` strings for outgoing envelopes.
#[derive(Debug, Clone)]
#[must_use]
pub struct Signer {
    key: SigningKey,
    sender_id: String,
    key_id: String,
    namespace: String,
    validity: Duration,
    canonicalization: Canonicalization,
}

impl Signer {
    /// A signer for `sender_id` using the key known to peers as `key_id`. Both are checked when
    /// signing (non-empty, no `|`, `"` or control characters).
    pub fn new(key: SigningKey, sender_id: impl Into<String>, key_id: impl Into<String>) -> Self {
        Self {
            key,
            sender_id: sender_id.into(),
            key_id: key_id.into(),
            namespace: "dci".into(),
            validity: DEFAULT_VALIDITY,
            canonicalization: Canonicalization::default(),
        }
    }

    /// How long signatures stay valid (default 300 s).
    pub fn validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    /// Canonical form used for the digest (default Python-compatible).
    pub fn canonicalization(mut self, c: Canonicalization) -> Self {
        self.canonicalization = c;
        self
    }

    /// The `namespace` parameter (default `dci`; the spec's example says `spdci`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The `kidId` value: `{sender_id}|{key_id}|{alg}`.
    pub fn kid(&self) -> String {
        format!(
            "{}|{}|{}",
            self.sender_id,
            self.key_id,
            self.key.algorithm().as_str()
        )
    }

    fn check(&self) -> Result<(), SignatureError> {
        for (field, value) in [
            ("sender_id", &self.sender_id),
            ("key_id", &self.key_id),
            ("namespace", &self.namespace),
        ] {
            if value.is_empty() {
                return Err(SignatureError::InvalidSigner {
                    field,
                    reason: "must not be empty".into(),
                });
            }
            if value
                .chars()
                .any(|c| c == '|' || c == '"' || c == '\\' || c.is_control())
            {
                return Err(SignatureError::InvalidSigner {
                    field,
                    reason: format!(
                        "{value:?} contains `|`, `\"`, `\\` or a control character, which would break the kidId"
                    ),
                });
            }
        }
        if self.validity.is_zero() {
            return Err(SignatureError::InvalidSigner {
                field: "validity",
                reason: "must be longer than zero".into(),
            });
        }
        Ok(())
    }

    /// Signs `header` + `message` (pass `Value::Null` for an absent message) at time `now`.
    pub fn sign(
        &self,
        header: &Value,
        message: &Value,
        now: OffsetDateTime,
    ) -> Result<String, SignatureError> {
        self.check()?;
        let created = now.unix_timestamp();
        let expires =
            created.saturating_add(i64::try_from(self.validity.as_secs()).unwrap_or(i64::MAX));
        let digest = digest(header, message, self.canonicalization);
        let sig = self
            .key
            .sign_bytes(signing_string(created, expires, &digest).as_bytes())?;
        let alg = self.key.algorithm().as_str();
        Ok(format!(
            "namespace=\"{ns}\", kidId=\"{kid}\", algorithm=\"{alg}\", created=\"{created}\", expires=\"{expires}\", headers=\"{SIGNED_HEADERS}\", signature=\"{sig}\"",
            ns = self.namespace,
            kid = self.kid(),
            sig = STANDARD.encode(sig),
        ))
    }

    /// Signs an envelope in place: sets its `signature` from its `header` and `message`.
    pub fn sign_envelope(
        &self,
        envelope: &mut Value,
        now: OffsetDateTime,
    ) -> Result<(), SignatureError> {
        let (header, message) = envelope_parts(envelope)?;
        let sig = self.sign(header, message, now)?;
        if let Some(obj) = envelope.as_object_mut() {
            obj.insert("signature".into(), Value::String(sig));
        }
        Ok(())
    }
}

fn envelope_parts(envelope: &Value) -> Result<(&Value, &Value), SignatureError> {
    let obj = envelope
        .as_object()
        .ok_or_else(|| SignatureError::Malformed("the envelope must be a JSON object".into()))?;
    let header = obj
        .get("header")
        .ok_or_else(|| SignatureError::Malformed("the envelope has no `header`".into()))?;
    Ok((header, obj.get("message").unwrap_or(&Value::Null)))
}

/// The parameters of a signature string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// `namespace` (`dci`, `spdci`, … — not checked).
    pub namespace: Option<String>,
    /// First part of `kidId`/`keyId`.
    pub sender_id: String,
    /// Middle part of `kidId`/`keyId` (the whole value when it has no `|`).
    pub key_id: String,
    /// `algorithm`.
    pub algorithm: Algorithm,
    /// `created`, unix seconds.
    pub created: i64,
    /// `expires`, unix seconds.
    pub expires: i64,
    /// `headers` (defaults to `(created) (expires) digest`).
    pub headers: String,
    /// `signature`, base64.
    pub signature_b64: String,
}

impl ParsedSignature {
    /// Same as [`parse`].
    pub fn parse(s: &str) -> Result<Self, SignatureError> {
        parse(s)
    }

    /// `created` as a timestamp.
    pub fn created_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp(self.created).ok()
    }

    /// `expires` as a timestamp.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp(self.expires).ok()
    }
}

/// Parses a signature string. Accepts an optional `Signature:` prefix, `kidId` or `keyId`,
/// quoted or bare values, and any namespace.
pub fn parse(s: &str) -> Result<ParsedSignature, SignatureError> {
    let mut rest = s.trim();
    if rest.len() >= 10 && rest[..10].eq_ignore_ascii_case("signature:") {
        rest = rest[10..].trim_start();
    }
    if rest.is_empty() {
        return Err(SignatureError::Malformed(
            "the signature is empty (the sender did not sign)".into(),
        ));
    }
    let params = parse_params(rest)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let algorithm: Algorithm = get("algorithm")
        .ok_or(SignatureError::MissingParameter("algorithm"))?
        .parse()?;
    let int = |name: &'static str| -> Result<i64, SignatureError> {
        let v = get(name).ok_or(SignatureError::MissingParameter(name))?;
        v.trim().parse().map_err(|_| {
            SignatureError::Malformed(format!("`{name}` must be unix seconds, got {v:?}"))
        })
    };
    let created = int("created")?;
    let expires = int("expires")?;
    if expires < created {
        return Err(SignatureError::Malformed(format!(
            "`expires` ({expires}) is before `created` ({created})"
        )));
    }
    let signature_b64 = get("signature")
        .ok_or(SignatureError::MissingParameter("signature"))?
        .to_owned();
    let kid = get("kidId")
        .or_else(|| get("keyId"))
        .ok_or(SignatureError::MissingParameter("kidId"))?;
    let parts: Vec<&str> = kid.split('|').collect();
    let (sender_id, key_id, kid_alg) = match parts.as_slice() {
        [key] => ("", *key, None),
        [sender, key] => (*sender, *key, None),
        [sender, middle @ .., alg] => (*sender, "", Some((middle.join("|"), *alg))),
        [] => ("", "", None),
    };
    let key_id = match &kid_alg {
        Some((middle, alg)) => {
            let kid_alg: Algorithm = alg.parse().map_err(|_| {
                SignatureError::Malformed(format!(
                    "kidId {kid:?} should end with the algorithm (ed25519 or rs256)"
                ))
            })?;
            if kid_alg != algorithm {
                return Err(SignatureError::Malformed(format!(
                    "kidId says {kid_alg} but algorithm says {algorithm}"
                )));
            }
            middle.clone()
        }
        None => key_id.to_owned(),
    };
    let headers = get("headers").unwrap_or(SIGNED_HEADERS).to_owned();
    if headers.split_whitespace().collect::<Vec<_>>() != ["(created)", "(expires)", "digest"] {
        return Err(SignatureError::Malformed(format!(
            "headers={headers:?} is not supported; this profile signs \"{SIGNED_HEADERS}\""
        )));
    }
    Ok(ParsedSignature {
        namespace: get("namespace").map(str::to_owned),
        sender_id: sender_id.to_owned(),
        key_id,
        algorithm,
        created,
        expires,
        headers,
        signature_b64,
    })
}

/// Splits `k="v", k2=v2` into pairs; values may be quoted (with `\"` escapes) or bare.
fn parse_params(s: &str) -> Result<Vec<(String, String)>, SignatureError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(SignatureError::Malformed(format!(
                "expected key=\"value\" pairs, found {:?} without `=`",
                key.trim()
            )));
        }
        let key = key.trim().to_owned();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                // The spec's own example lacks the closing quote; accept it at the very end.
                if chars.peek().is_some() {
                    return Err(SignatureError::Malformed(format!(
                        "unterminated quote in `{key}`"
                    )));
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        if key.is_empty() {
            return Err(SignatureError::Malformed("empty parameter name".into()));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// What [`verify`] checks beyond the signature itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Clock difference tolerated on `created` (future) and `expires` (past). Default 60 s.
    pub max_skew: Duration,
    /// Canonical form of the digest. Default Python-compatible.
    pub canonicalization: Canonicalization,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            max_skew: DEFAULT_MAX_SKEW,
            canonicalization: Canonicalization::default(),
        }
    }
}

/// Verifies the signature string `sig` over `header` + `message` (pass `Value::Null` for an
/// absent message) with `key` at time `now`.
pub fn verify(
    sig: &str,
    header: &Value,
    message: &Value,
    key: &VerifyingKey,
    opts: &VerifyOptions,
    now: OffsetDateTime,
) -> Result<ParsedSignature, SignatureError> {
    let parsed = parse(sig)?;
    if parsed.algorithm != key.algorithm() {
        return Err(SignatureError::AlgorithmMismatch {
            signature: parsed.algorithm,
            key: key.algorithm(),
        });
    }
    let now_s = now.unix_timestamp();
    let skew = i64::try_from(opts.max_skew.as_secs()).unwrap_or(i64::MAX);
    if parsed.created > now_s.saturating_add(skew) {
        return Err(SignatureError::NotYetValid {
            created: parsed.created,
            now: now_s,
            max_skew_secs: opts.max_skew.as_secs(),
        });
    }
    if now_s > parsed.expires.saturating_add(skew) {
        return Err(SignatureError::Expired {
            expires: parsed.expires,
            now: now_s,
        });
    }
    let raw = STANDARD
        .decode(parsed.signature_b64.trim())
        .map_err(|e| SignatureError::Malformed(format!("`signature` is not base64: {e}")))?;
    let digest = digest(header, message, opts.canonicalization);
    key.verify_bytes(
        signing_string(parsed.created, parsed.expires, &digest).as_bytes(),
        &raw,
    )?;
    Ok(parsed)
}

/// Verifies the `signature` field of a whole envelope.
pub fn verify_envelope(
    envelope: &Value,
    key: &VerifyingKey,
    opts: &VerifyOptions,
    now: OffsetDateTime,
) -> Result<ParsedSignature, SignatureError> {
    let (header, message) = envelope_parts(envelope)?;
    let sig = match envelope.get("signature") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Null) | None => {
            return Err(SignatureError::Malformed(
                "the envelope has no `signature` (the sender did not sign)".into(),
            ));
        }
        Some(_) => {
            return Err(SignatureError::Malformed(
                "`signature` must be a string".into(),
            ));
        }
    };
    verify(sig, header, message, key, opts, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
    }

    fn sample() -> (Value, Value) {
        (
            json!({"action": "search", "message_id": "m1", "sender_id": "spmis"}),
            json!({"transaction_id": "t1", "name": "Zoë", "score": 1e16}),
        )
    }

    #[test]
    fn round_trip_both_algorithms() {
        for alg in [Algorithm::Ed25519, Algorithm::Rs256] {
            let key = SigningKey::generate(alg).unwrap();
            let vk = key.verifying_key();
            let signer = Signer::new(key, "spmis", "k1");
            let (h, m) = sample();
            let sig = signer.sign(&h, &m, now()).unwrap();
            let p = verify(&sig, &h, &m, &vk, &VerifyOptions::default(), now()).unwrap();
            assert_eq!(p.sender_id, "spmis");
            assert_eq!(p.key_id, "k1");
            assert_eq!(p.algorithm, alg);
            assert_eq!(p.expires - p.created, 300);
            let mut m2 = m.clone();
            m2["name"] = json!("Zoe");
            assert_eq!(
                verify(&sig, &h, &m2, &vk, &VerifyOptions::default(), now()),
                Err(SignatureError::Invalid)
            );
        }
    }

    #[test]
    fn keys_round_trip_through_pem_and_jwk() {
        for alg in [Algorithm::Ed25519, Algorithm::Rs256] {
            let key = SigningKey::generate(alg).unwrap();
            let pem = secrecy::ExposeSecret::expose_secret(&key.to_pkcs8_pem().unwrap()).to_owned();
            let again = SigningKey::from_pkcs8_pem(&pem).unwrap();
            assert_eq!(again.verifying_key(), key.verifying_key());
            let vk = key.verifying_key();
            assert_eq!(VerifyingKey::from_spki_pem(&vk.to_spki_pem()).unwrap(), vk);
            let jwk = vk.to_jwk("kid-1");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["kid"], "kid-1");
            assert_eq!(VerifyingKey::from_jwk(&jwk).unwrap(), vk);
            assert!(!format!("{key:?}").contains(&pem[30..60]));
            assert!(format!("{key:?}").contains("redacted"));
        }
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519",
                         "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let vk = VerifyingKey::from_jwk(&jwk).unwrap();
        assert_eq!(
            vk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "x", "use": "enc", "n": "AQAB", "e": "AQAB"},
            vk.to_jwk("k1"),
        ]});
        assert_eq!(VerifyingKey::from_jwks(&jwks, "k1").unwrap(), vk);
        let err = VerifyingKey::from_jwks(&jwks, "x").unwrap_err();
        assert!(err.to_string().contains("no signature key"), "{err}");
    }

    #[test]
    fn window_and_algorithm_checks() {
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let vk = key.verifying_key();
        let (h, m) = sample();
        let sig = Signer::new(key, "s", "k").sign(&h, &m, now()).unwrap();
        let opts = VerifyOptions::default();
        let later = now() + time::Duration::seconds(300 + 61);
        assert!(matches!(
            verify(&sig, &h, &m, &vk, &opts, later),
            Err(SignatureError::Expired { .. })
        ));
        assert!(
            verify(
                &sig,
                &h,
                &m,
                &vk,
                &opts,
                now() + time::Duration::seconds(359)
            )
            .is_ok()
        );
        let earlier = now() - time::Duration::seconds(61);
        assert!(matches!(
            verify(&sig, &h, &m, &vk, &opts, earlier),
            Err(SignatureError::NotYetValid { .. })
        ));
        let rsa = SigningKey::generate(Algorithm::Rs256)
            .unwrap()
            .verifying_key();
        assert!(matches!(
            verify(&sig, &h, &m, &rsa, &opts, now()),
            Err(SignatureError::AlgorithmMismatch { .. })
        ));
    }

    #[test]
    fn parser_is_lenient_about_form() {
        let p = parse(
            r#"Signature:  namespace="spdci", keyId="a|b|ed25519", algorithm="ed25519", created="1606970629", expires="1607030629", headers="(created) (expires) digest", signature="Zm9v"#,
        )
        .unwrap();
        assert_eq!(p.namespace.as_deref(), Some("spdci"));
        assert_eq!((p.sender_id.as_str(), p.key_id.as_str()), ("a", "b"));
        assert_eq!(p.signature_b64, "Zm9v");
        let p =
            parse("kidId=x|y|rs256,algorithm=rs256,created=1,expires=2,signature=AA==").unwrap();
        assert_eq!(p.algorithm, Algorithm::Rs256);
        assert_eq!(p.signature_b64, "AA==");
        assert_eq!(
            parse("algorithm=\"ed25519\", created=\"1\""),
            Err(SignatureError::MissingParameter("expires"))
        );
        assert!(matches!(
            parse("kidId=a|b|rs256,algorithm=ed25519,created=1,expires=2,signature=AA"),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            parse("invalid-signature"),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            parse("kidId=a,algorithm=hs256,created=1,expires=2,signature=AA"),
            Err(SignatureError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn signer_rejects_bad_ids() {
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let (h, m) = sample();
        let err = Signer::new(key, "a|b", "k")
            .sign(&h, &m, now())
            .unwrap_err();
        assert!(matches!(
            err,
            SignatureError::InvalidSigner {
                field: "sender_id",
                ..
            }
        ));
    }

    #[test]
    fn key_errors_say_what_to_do() {
        let e = SigningKey::from_pkcs8_pem(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("openssl pkcs8 -topk8"));
        let vk = SigningKey::generate(Algorithm::Ed25519)
            .unwrap()
            .verifying_key();
        let e = SigningKey::from_pkcs8_pem(&vk.to_spki_pem()).unwrap_err();
        assert!(e.to_string().contains("public key"));
    }
}
