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
//! - [`metrics`]: the Prometheus series every front end shares, recorded where calls,
//!   callbacks and deliveries happen; [`metrics::scrape`] renders them with the store's backlogs.
//! - `telemetry`: the span of every outgoing call and callback (exported by a front end that
//!   installs `tracing-opentelemetry`), and the link from a callback to its request's span.
//! - [`users`]: named users with roles, personal API tokens, console sessions, the change
//!   audit ([`users::UserStore`], [`users::Users`]); [`export`]: the audit log and the change
//!   audit as JSON Lines or CSV.
//! - [`limits`]: per-source limits of a run — bounded concurrency, a `governor` rate limit and a
//!   circuit breaker — from the source's `limits` settings.
//! - [`bulk`]: bulk search — streaming CSV / JSONL / `TYPE:VALUE` input, batches of identifiers
//!   per envelope through [`Operations`], streaming JSONL / CSV output, a checkpointed job in
//!   the store ([`bulk::BulkStore`]) that resumes after a crash.
//! - [`jobs`]: bulk jobs run in the background of `dci serve` ([`jobs::JobRunner`]: upload,
//!   progress, cancel, results, resume after a restart) and schedules ([`jobs::Schedule`] with a
//!   cron expression, [`jobs::Scheduler`], one claimed row per occurrence in
//!   [`jobs::ScheduleStore`]).
//! - [`changes`]: the change feed a store publishes (a transaction or a data source changed),
//!   which wakes waits and drops a changed source from the engine; shared across instances on
//!   PostgreSQL.
//! - [`events`], [`webhooks`]: the events outbox for the SPMIS (written with the change that
//!   causes each event) and its Standard Webhooks delivery worker.
//!
//! Owns: what a client does. Does not own: wire types (`dci-protocol`), databases (`dci-store`),
//! HTTP serving (`dci-server`).

pub mod auth;
pub mod bulk;
pub mod changes;
pub mod engine;
pub mod error;
pub mod events;
pub mod export;
pub mod jobs;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod registries;
pub mod source;
pub mod store;
mod telemetry;
pub mod test_connection;
pub mod transport;
pub mod users;
pub mod webhooks;

pub use auth::{AccessToken, TokenInfo, TokenOrigin, TokenSettings};
pub use engine::{Engine, EngineBuilder, EngineError, Recovery, SaveError};
pub use error::{Error, RegistryError, Result};
pub use ops::{Operation, Operations, OpsError, OpsStore};
pub use registries::{
    CrvsClient, DrClient, FarmerClient, IbrClient, IdRef, OpenCrvsVersion, Outcome, Profile,
    SocialClient,
};
pub use source::{
    AuthConfig, AuthKind, CredentialLocation, DataSource, Endpoints, LimitSettings, OAuth2Config,
    RecoverySettings, RetrySettings, SignaturePolicy, SourceState, TlsSettings,
};
pub use source::{
    AuthDocument, DataSourceInput, EndpointsDocument, FieldError, LimitsDocument, MASKED,
    SourceDocument, TlsDocument, UnknownName, ValidationErrors,
};
pub use store::{
    AuditEntry, AuditFilter, AuditOutcome, CachedToken, MasterKey, RotationReport, SourceChange,
    SourceFilter, Store, StoreError, TimeRange, TokenLease, TokenLock,
};
pub use test_connection::{
    Stage, StageReport, StageStatus, TestOptions, TestReport, test_connection,
};
pub use transport::{
    AuditWriter, DciClient, DciClientBuilder, DciRequest, DciResponse, Endpoint, RetryPolicy,
    TokenStatus,
};
