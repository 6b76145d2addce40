//! # dci-protocol
//!
//! DCI (spdci.org) wire types for the five registries (social, CRVS, DR, FR, IBR): envelopes,
//! headers, messages, builders that cannot produce an invalid envelope, the Python-compatible
//! canonical JSON and the DCI signature profile.
//!
//! Owns: everything that is true of the bytes on the wire.
//! Does not own: network I/O, files, storage, configuration — see `dci-client` and above.
//!
//! Map:
//! - [`canonical`]: `python_json` (byte-compatible with Python `json.dumps(sort_keys=True,
//!   separators=(",", ":"))`) and `jcs` (RFC 8785).
//! - [`signature`]: the DCI `signature` string — [`signature::Signer`], [`signature::verify`],
//!   keys as PKCS#8/SPKI PEM or JWK, Ed25519 and RS256 on aws-lc-rs.

pub mod canonical;
mod registry;
pub mod signature;

pub use registry::{RegistryType, UnknownRegistryType};
