//! # dci-protocol
//!
//! DCI (spdci.org) wire types for the five registries (social, CRVS, DR, FR, IBR): envelopes,
//! headers, messages, builders that cannot produce an invalid envelope, the Python-compatible
//! canonical JSON and the DCI signature profile.
//!
//! Owns: everything that is true of the bytes on the wire.
//! Does not own: network I/O, files, storage, configuration — see `dci-client` and above.

mod registry;

pub use registry::{RegistryType, UnknownRegistryType};
