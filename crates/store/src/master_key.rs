//! Where the master key comes from: `DCI_MASTER_KEY` (base64 of 32 bytes) or the file
//! `DCI_MASTER_KEY_FILE` names, else a key file created with mode 0600 in `DCI_HOME` on first use.
//!
//! Each may hold a key ring: several keys separated by commas or line breaks, the newest first
//! (a rotation writes the new key and the one it replaces; see [`crate::rotate`]).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dci_client::MasterKey;
use rand::RngCore;
use zeroize::Zeroizing;

/// Name of the key file inside `DCI_HOME`.
pub const MASTER_KEY_FILE: &str = "master.key";

/// A master key that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The text is not base64 of exactly 32 bytes.
    #[error(
        "{origin} is not a master key: it must be 32 random bytes in base64 (44 characters), e.g. the output of `openssl rand -base64 32`"
    )]
    Malformed {
        /// Where it came from (`DCI_MASTER_KEY` or the file path).
        origin: String,
    },
    /// The key file could not be read or written.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// A fresh random key.
pub fn generate() -> MasterKey {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut());
    MasterKey::from_bytes(*bytes)
}

/// Parses base64 (standard alphabet, padding optional, surrounding whitespace ignored).
pub fn parse(text: &str, origin: &str) -> Result<MasterKey, MasterKeyError> {
    let malformed = || MasterKeyError::Malformed {
        origin: origin.to_owned(),
    };
    let text = text.trim();
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| malformed())?,
    );
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| malformed())?;
    Ok(MasterKey::from_bytes(arr))
}

/// Parses a key ring: one or more keys (as [`parse`] takes them) separated by commas or
/// whitespace, newest first.
pub fn parse_ring(text: &str, origin: &str) -> Result<Vec<MasterKey>, MasterKeyError> {
    let keys = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|k| !k.is_empty())
        .map(|k| parse(k, origin))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(MasterKeyError::Malformed {
            origin: origin.to_owned(),
        });
    }
    Ok(keys)
}

/// The base64 text of a key, as written to key files.
pub fn encode(key: &MasterKey) -> Zeroizing<String> {
    Zeroizing::new(STANDARD.encode(key.expose_bytes()))
}

/// Reads a key file: its newest key.
pub fn read_file(path: &Path) -> Result<MasterKey, MasterKeyError> {
    Ok(read_ring_file(path, &path.display().to_string())?.remove(0))
}

/// Reads a key file's newest key; a malformed key is reported as coming from `origin`.
pub fn read_file_as(path: &Path, origin: &str) -> Result<MasterKey, MasterKeyError> {
    Ok(read_ring_file(path, origin)?.remove(0))
}

/// Reads a key file's whole ring, newest first; a malformed key is reported as coming from
/// `origin`.
pub fn read_ring_file(path: &Path, origin: &str) -> Result<Vec<MasterKey>, MasterKeyError> {
    let text = Zeroizing::new(
        fs::read_to_string(path).map_err(|source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        })?,
    );
    parse_ring(&text, origin)
}

/// Writes `key` to a new file readable only by its owner. Fails with `AlreadyExists` if the
/// file exists. The file appears complete or not at all (written beside it, then hard-linked),
/// so a concurrent reader never sees a partial key.
pub fn write_new_file(path: &Path, key: &MasterKey) -> Result<(), MasterKeyError> {
    write_new_ring_file(path, std::slice::from_ref(key))
}

/// [`write_new_file`] for a ring (newest key first), one key a line.
pub fn write_new_ring_file(path: &Path, keys: &[MasterKey]) -> Result<(), MasterKeyError> {
    let io_err = |source| MasterKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    write_private(&tmp, keys).map_err(io_err)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked.map_err(io_err)
}

fn write_private(path: &Path, keys: &[MasterKey]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    for key in keys {
        file.write_all(encode(key).as_bytes())?;
        file.write_all(b"\n")?;
    }
    file.sync_all()
}

/// Replaces the key file atomically (write a 0600 sibling, then rename over).
pub fn replace_file(path: &Path, key: &MasterKey) -> Result<(), MasterKeyError> {
    replace_ring_file(path, std::slice::from_ref(key))
}

/// [`replace_file`] for a ring (newest key first). The sibling is `*.ring.new`, never the
/// staged key of an older rotation (`master.key.new`).
pub fn replace_ring_file(path: &Path, keys: &[MasterKey]) -> Result<(), MasterKeyError> {
    let tmp = path.with_extension("ring.new");
    let _ = fs::remove_file(&tmp);
    write_new_ring_file(&tmp, keys)?;
    fs::rename(&tmp, path).map_err(|source| MasterKeyError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_32_bytes_only() {
        let key = generate();
        let text = encode(&key);
        assert_eq!(
            parse(&text, "x").unwrap().expose_bytes(),
            key.expose_bytes()
        );
        assert_eq!(
            parse(&format!(" {}\n", text.as_str()), "x")
                .unwrap()
                .expose_bytes(),
            key.expose_bytes()
        );
        let short = STANDARD.encode([1u8; 16]);
        let err = parse(&short, "DCI_MASTER_KEY").unwrap_err().to_string();
        assert!(
            err.contains("DCI_MASTER_KEY") && err.contains("openssl rand -base64 32"),
            "{err}"
        );
        assert!(parse("not base64!", "x").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private_and_not_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        let key = generate();
        write_new_file(&path, &key).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(write_new_file(&path, &generate()).is_err());
        assert_eq!(read_file(&path).unwrap().expose_bytes(), key.expose_bytes());
        let next = generate();
        replace_file(&path, &next).unwrap();
        assert_eq!(
            read_file(&path).unwrap().expose_bytes(),
            next.expose_bytes()
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
