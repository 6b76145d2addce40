//! # dci-store
//!
//! SQLite (default) and PostgreSQL implementations of the client's storage trait, with embedded
//! migrations and secrets sealed at rest under a master key.
//!
//! Owns: databases and encryption at rest. Does not own: what is stored (the client's model).
