//! Standard Webhooks signing (<https://www.standardwebhooks.com/>): the secret is `whsec_`
//! followed by the base64 of the key bytes; the signature header is `v1,` followed by the
//! base64 of HMAC-SHA256 over `"{webhook-id}.{webhook-timestamp}.{body}"`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far a verified timestamp may be from now (the spec's recommended tolerance).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// An endpoint's signing secret, `whsec_<base64>`. Never shown by `Debug`.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::MASKED)
    }
}

/// A secret that is not `whsec_<base64>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook secret is not whsec_ followed by base64 of at least 24 bytes")]
pub struct BadSecret;

impl WebhookSecret {
    /// A fresh secret of 32 random bytes.
    pub fn generate() -> WebhookSecret {
        let bytes: [u8; 32] = rand::random();
        WebhookSecret(SecretString::from(format!(
            "{SECRET_PREFIX}{}",
            STANDARD.encode(bytes)
        )))
    }

    /// Reads a stored or given secret.
    pub fn parse(s: &SecretString) -> Result<WebhookSecret, BadSecret> {
        let w = WebhookSecret(s.clone());
        let key = w.key()?;
        if key.len() < 24 {
            return Err(BadSecret);
        }
        Ok(w)
    }

    /// The secret as text (`whsec_…`), to store sealed or show once.
    pub fn expose(&self) -> &SecretString {
        &self.0
    }

    fn key(&self) -> Result<Vec<u8>, BadSecret> {
        let text = self.0.expose_secret();
        let b64 = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        STANDARD.decode(b64.trim()).map_err(|_| BadSecret)
    }

    /// The `webhook-signature` header value for this message: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let key = self.key().unwrap_or_default();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Verifies a delivery as a receiver does: one of the space-separated `v1,` signatures
    /// matches (in constant time) and the timestamp is within [`TOLERANCE_SECS`] of `now`.
    pub fn verify(
        &self,
        id: &str,
        timestamp: i64,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> bool {
        if (now - timestamp).abs() > TOLERANCE_SECS {
            return false;
        }
        let key = self.key().unwrap_or_default();
        signatures.split_whitespace().any(|s| {
            let Some(b64) = s.strip_prefix("v1,") else {
                return false;
            };
            let Ok(given) = STANDARD.decode(b64) else {
                return false;
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            mac.verify_slice(&given).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_signature() {
        // The example used by the Standard Webhooks specification and its libraries' tests.
        let secret = WebhookSecret::parse(&SecretString::from(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ))
        .unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            &sig,
            body,
            1614265331
        ));
        assert!(!secret.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            &sig,
            b"{}",
            1614265331
        ));
        assert!(!secret.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            &sig,
            body,
            1614266330
        ));
    }

    #[test]
    fn generated_secrets_parse_and_hide() {
        let s = WebhookSecret::generate();
        assert!(s.expose().expose_secret().starts_with(SECRET_PREFIX));
        assert!(WebhookSecret::parse(s.expose()).is_ok());
        assert_eq!(format!("{s:?}"), crate::MASKED);
        assert!(WebhookSecret::parse(&SecretString::from("whsec_!!")).is_err());
    }
}
