//! # dci-sandbox
//!
//! A local DCI registry serving all five registries on one port, with an OAuth2 token endpoint,
//! seeded deterministic data, async callbacks, a JWKS and fault injection. Used by `dci sandbox`,
//! the main job's demo, and the integration tests.
//!
//! Owns: behaving like a registry. Uses `dci-protocol` only, so it can disagree with the client.
