//! The admin token that guards the gateway API (and, later, the console).
//!
//! Only a SHA-256 digest is ever kept: in memory for `DCI_ADMIN_TOKEN`, and in
//! `DCI_HOME/admin-token.sha256` (mode 0600) for a generated token. A generated token is returned
//! once, to be printed at start-up, and is never stored or logged in the clear. The token carries
//! 256 random bits, so an unsalted fast hash is enough: there is nothing to guess from it.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "DCI_ADMIN_TOKEN";
/// The file (inside `DCI_HOME`) holding the hex SHA-256 of a generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token.sha256";

/// Checks presented admin tokens against a stored digest. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
    origin: TokenOrigin,
}

/// Where the admin token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOrigin {
    /// `DCI_ADMIN_TOKEN`.
    Env,
    /// A digest file written on an earlier start.
    File(PathBuf),
    /// Generated now; the digest was written to this file.
    Generated(PathBuf),
    /// Given directly (tests, embedding).
    Given,
}

/// Why the admin token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// The digest file could not be read or written.
    #[error("admin token file {path}: {source}: fix its permissions or set DCI_ADMIN_TOKEN")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The digest file does not hold 64 hex digits.
    #[error(
        "admin token file {0} is not a SHA-256 hex digest: delete it to generate a new token, or set DCI_ADMIN_TOKEN"
    )]
    Corrupt(PathBuf),
    /// `DCI_ADMIN_TOKEN` is too short to resist guessing.
    #[error("DCI_ADMIN_TOKEN must be at least 16 characters: use e.g. `openssl rand -hex 32`")]
    TooShort,
}

impl AdminToken {
    /// A verifier for exactly this token.
    pub fn from_secret(token: &SecretString) -> AdminToken {
        AdminToken {
            digest: digest(token.expose_secret()),
            origin: TokenOrigin::Given,
        }
    }

    /// Where the token came from.
    pub fn origin(&self) -> &TokenOrigin {
        &self.origin
    }

    /// Loads the admin token the way `dci serve` does: `env_token` (from `DCI_ADMIN_TOKEN`) if
    /// given; else the digest file in `home`; else a new random token whose digest is written
    /// there with mode 0600. The new token is returned once so the caller can print it.
    pub fn load_or_generate(
        env_token: Option<SecretString>,
        home: &Path,
    ) -> Result<(AdminToken, Option<SecretString>), AdminTokenError> {
        if let Some(t) = env_token.filter(|t| !t.expose_secret().trim().is_empty()) {
            if t.expose_secret().trim().len() < 16 {
                return Err(AdminTokenError::TooShort);
            }
            return Ok((
                AdminToken {
                    digest: digest(t.expose_secret().trim()),
                    origin: TokenOrigin::Env,
                },
                None,
            ));
        }
        let path = home.join(ADMIN_TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let digest =
                    parse_hex(text.trim()).ok_or_else(|| AdminTokenError::Corrupt(path.clone()))?;
                Ok((
                    AdminToken {
                        digest,
                        origin: TokenOrigin::File(path),
                    },
                    None,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = generate();
                let digest = digest(token.expose_secret());
                write_private(&path, &hex(&digest)).map_err(|source| AdminTokenError::Io {
                    path: path.clone(),
                    source,
                })?;
                Ok((
                    AdminToken {
                        digest,
                        origin: TokenOrigin::Generated(path),
                    },
                    Some(token),
                ))
            }
            Err(source) => Err(AdminTokenError::Io { path, source }),
        }
    }

    /// Whether `presented` is the admin token. Compares digests in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        let d = digest(presented.trim());
        d.iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken")
            .field("digest", &"[redacted]")
            .field("origin", &self.origin)
            .finish()
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// 32 random bytes, base64url: URL- and header-safe, 43 characters.
fn generate() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(format!("dci_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_is_stored_hashed_with_mode_0600_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (admin, token) = AdminToken::load_or_generate(None, dir.path()).unwrap();
        let token = token.expect("a first start generates a token");
        assert!(admin.verify(token.expose_secret()));
        assert!(!admin.verify("something-else-entirely"));
        let stored = std::fs::read_to_string(dir.path().join(ADMIN_TOKEN_FILE)).unwrap();
        assert!(!stored.contains(token.expose_secret()));
        assert_eq!(stored.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ADMIN_TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, none) = AdminToken::load_or_generate(None, dir.path()).unwrap();
        assert!(none.is_none(), "the token is printed only once");
        assert!(again.verify(token.expose_secret()));
    }

    #[test]
    fn env_token_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let env = SecretString::from("0123456789abcdef-env");
        let (admin, printed) = AdminToken::load_or_generate(Some(env), dir.path()).unwrap();
        assert!(printed.is_none());
        assert_eq!(admin.origin(), &TokenOrigin::Env);
        assert!(admin.verify("0123456789abcdef-env"));
        assert!(!dir.path().join(ADMIN_TOKEN_FILE).exists());
        let short = AdminToken::load_or_generate(Some("short".into()), dir.path());
        assert!(matches!(short, Err(AdminTokenError::TooShort)));
    }

    #[test]
    fn debug_is_redacted() {
        let a = AdminToken::from_secret(&SecretString::from("super-secret-token-value"));
        let d = format!("{a:?}");
        assert!(!d.contains("super-secret"));
        assert!(d.contains("redacted"));
    }
}
