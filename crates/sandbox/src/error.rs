//! The sandbox's error type.

use std::net::SocketAddr;

/// Why the sandbox could not start or an admin operation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listen address is not loopback and non-loopback was not allowed.
    #[error(
        "refusing to listen on {0}: it is not a loopback address; allow it explicitly \
         (SandboxConfig::allow_non_loopback, or `dci sandbox --allow-remote`) to expose the sandbox"
    )]
    NonLoopback(SocketAddr),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A fault specification is invalid; the message names the field.
    #[error("invalid faults: {0}")]
    InvalidFaults(String),
    /// A [`crate::SandboxConfig`] setting is out of range; the message names it.
    #[error("invalid sandbox configuration: {0}")]
    InvalidConfig(String),
    /// Something else needed at start-up failed (HTTP client, signing key).
    #[error("cannot start the sandbox: {0}")]
    Setup(String),
}

/// `Result` with the sandbox's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
