//! # dci-client
//!
//! Talks to DCI registries on behalf of a data source: the data-source record and its validation,
//! authentication (none, bearer, basic, OAuth2 client credentials with a single-flight token cache),
//! the pooled HTTP transport with timeouts and retries, DCI operations, and the staged connection
//! test. Storage sits behind a trait that `dci-store` implements.
//!
//! Map:
//! - [`engine`]: the [`Engine`] — open one per process; it owns every source's client, token
//!   cache, signing keys, JWKS and DR caches, and hands out the rest of this crate.
//! - [`ops`]: the one path of every outgoing call ([`Operations`]: build → dialect → sign →
//!   send → verify → parse) and the callback receiver ([`ops::ingest`]).
//! - [`registries`]: typed CRVS, DR, IBR, SR and FR views over [`Operations`], and the
//!   OpenCRVS dialect.
//! - [`transport`]: the pooled HTTP client per source, auth, retries, the audit writer.
//! - [`auth`], [`keys`]: tokens; our signing keys and the registries' public keys.
//! - [`source`], [`store`]: the data-source record and the storage traits.
//! - [`test_connection`]: the staged connection test.
//! - [`changes`]: the change feed a store publishes (a transaction or a data source changed),
//!   which wakes waits and drops a changed source from the engine; shared across instances on
//!   PostgreSQL.
//! - [`events`], [`webhooks`]: the events outbox for the SPMIS (written with the change that
//!   causes each event) and its Standard Webhooks delivery worker.
//!
//! Owns: what a client does. Does not own: wire types (`dci-protocol`), databases (`dci-store`),
//! HTTP serving (`dci-server`).

pub mod auth;
pub mod changes;
pub mod engine;
pub mod error;
pub mod events;
pub mod keys;
pub mod ops;
pub mod registries;
pub mod source;
pub mod store;
pub mod test_connection;
pub mod transport;
pub mod webhooks;

pub use auth::{AccessToken, TokenInfo, TokenOrigin, TokenSettings};
pub use engine::{Engine, EngineBuilder, EngineError, Recovery};
pub use error::{Error, RegistryError, Result};
pub use ops::{Operation, Operations, OpsError, OpsStore};
pub use registries::{
    CrvsClient, DrClient, FarmerClient, IbrClient, IdRef, OpenCrvsVersion, Outcome, Profile,
    SocialClient,
};
pub use source::{
    AuthConfig, AuthKind, CredentialLocation, DataSource, Endpoints, OAuth2Config,
    RecoverySettings, RetrySettings, SignaturePolicy, SourceState, TlsSettings,
};
pub use source::{
    AuthDocument, DataSourceInput, EndpointsDocument, FieldError, MASKED, SourceDocument,
    TlsDocument, UnknownName, ValidationErrors,
};
pub use store::{
    AuditEntry, AuditFilter, AuditOutcome, CachedToken, MasterKey, RotationReport, SourceChange,
    SourceFilter, Store, StoreError, TokenLease, TokenLock,
};
pub use test_connection::{
    Stage, StageReport, StageStatus, TestOptions, TestReport, test_connection,
};
pub use transport::{
    AuditWriter, DciClient, DciClientBuilder, DciRequest, DciResponse, Endpoint, RetryPolicy,
    TokenStatus,
};
