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
//! - [`build`]: [`build::RequestBuilder`] (SP → registry: search, subscribe, unsubscribe,
//!   txn-status, DR and IBR sync endpoints) and [`build::CallbackBuilder`] (registry → SP);
//!   [`build::Endpoint`] gives each endpoint's path, action and availability per registry.
//! - [`envelope`]: [`envelope::Envelope`], [`envelope::Header`], the ACK reply
//!   [`envelope::AckResponse`] and [`envelope::HttpErrorBody`].
//! - [`message`]: message payloads; tagged unions (`query`, `txn_status`) decoded by their tag.
//! - [`codes`]: typed vocabularies with an `Other(String)` fallback.
//! - [`lenient`]: inbound leniency (numbers as strings, `""` as absent, object for array),
//!   reported as [`lenient::Tolerated`].
//! - [`inbound`]: typed sync replies and callbacks over the lenient parser (header-only
//!   envelopes included), what `header.status` says ([`inbound::MessageStatus`]), and
//!   [`inbound::search_reply`], a sync search reply read with its records left as text.
//! - [`reason`]: the registry's reason for a failure, from every error shape it may send.
//! - [`canonical`]: `python_json` (byte-compatible with Python `json.dumps(sort_keys=True,
//!   separators=(",", ":"))`) and `jcs` (RFC 8785).
//! - [`signature`]: the DCI `signature` string — [`signature::Signer`], [`signature::verify`],
//!   keys as PKCS#8/SPKI PEM or JWK, Ed25519 and RS256 on aws-lc-rs.
//! - `conformance` (feature `conformance`): validate an envelope against the official
//!   OpenAPI request schema of a registry, with the documented errata applied.
//! - `test_support` (feature `test-support`): `test_support::skip`, the one way a test of
//!   the workspace skips (visible, and a failure under CI).

pub mod build;
pub mod canonical;
pub mod codes;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod envelope;
mod error;
pub mod inbound;
pub mod lenient;
pub mod message;
pub mod reason;
mod registry;
pub mod signature;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use error::{BuildError, ParseError};
pub use registry::{RegistryType, UnknownRegistryType};
/// The timestamp type of the public API (re-exported so callers need not depend on `time`).
pub use time::OffsetDateTime;
