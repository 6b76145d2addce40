//! The secrets of users: argon2id password hashes (PHC strings, salted, default parameters),
//! personal API tokens and console session ids (256 random bits, stored only as a SHA-256
//! digest — nothing to guess from an unsalted fast hash of a random value).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The prefix of every personal API token, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "dcip_";

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Hashes a password with argon2id and a fresh random salt. `None` only if the hasher fails
/// (it does not for passwords of sane length).
pub fn hash_password(password: &SecretString) -> Option<String> {
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes())
        .ok()
        .map(|h| h.to_string())
}

/// Whether `password` matches the stored PHC string (the parameters come from the string).
pub fn verify_password(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash that no password matches, verified against when the username is unknown so that the
/// time taken does not tell whether a user exists.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password(&SecretString::from(random())).unwrap_or_else(|| "$argon2id$".into())
    })
}

/// A new personal API token (`dcip_…`, 256 random bits).
pub fn new_api_token() -> SecretString {
    SecretString::from(format!("{TOKEN_PREFIX}{}", random()))
}

/// 256 random bits, base64url (43 characters): session ids, CSRF tokens.
pub fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a token or session id: what the store keeps.
pub fn digest_hex(s: &str) -> String {
    Sha256::digest(s.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_salted_and_verify() {
        let pw = SecretString::from("correct horse battery");
        let a = hash_password(&pw).unwrap();
        let b = hash_password(&pw).unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.contains("correct horse"));
        assert!(verify_password(&a, "correct horse battery"));
        assert!(!verify_password(&a, "correct horse battery!"));
        assert!(!verify_password("not a phc string", "x"));
        assert!(!verify_password(decoy_hash(), ""));
    }

    #[test]
    fn tokens_are_prefixed_random_and_digested() {
        let t = new_api_token();
        assert!(t.expose_secret().starts_with(TOKEN_PREFIX));
        assert_ne!(t.expose_secret(), new_api_token().expose_secret());
        let d = digest_hex(t.expose_secret());
        assert_eq!(d.len(), 64);
        assert!(!d.contains(t.expose_secret()));
    }
}
