//! Webhooks to the SPMIS: endpoints, Standard Webhooks signatures, the RabbitMQ sink, and the
//! delivery worker.
//!
//! - [`WebhookEndpoint`]: a URL, a kind filter, enabled or not, and its [`Sink`]: a webhook
//!   (its secret, `whsec_…`, [`WebhookSecret`], is sealed at rest and shown once, on creation)
//!   or a RabbitMQ exchange (its broker URL, credentials included, is sealed at rest instead).
//! - [`amqp`](self): the RabbitMQ sink — persistent messages, publisher confirms, the event id
//!   as message id, reconnection on the delivery's backoff.
//! - [`signature`]: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
//!   HMAC-SHA256("{id}.{timestamp}.{body}")>` per <https://www.standardwebhooks.com/>, so any
//!   Standard Webhooks library verifies a delivery.
//! - [`WebhookWorker`]: claims endpoints from the outbox (a lease per endpoint; `SKIP LOCKED`
//!   on PostgreSQL), delivers each endpoint's events in order, at least once, retries with
//!   exponential backoff and full jitter (honouring `Retry-After`), dead-letters after
//!   [`WebhookSettings::max_attempts`] or [`WebhookSettings::max_age`], records every attempt.
//! - [`create_endpoint`]: validation of a new endpoint and its fresh secret, shared by the CLI
//!   and the gateway.
//! - [`add_endpoint`], [`remove_endpoint`], [`redeliver`]: those changes made on someone's
//!   behalf, recorded in the change audit (every front end goes through them).

mod admin;
mod amqp;
mod model;
pub mod signature;
mod worker;

pub use admin::{add_endpoint, redeliver, remove_endpoint};
pub use model::{
    AttemptOutcome, AttemptRecord, CreateEndpointError, DeliveryFilter, DeliveryRecord,
    DeliveryState, EndpointInput, Redelivery, RedeliverySelection, Sink, WebhookEndpoint,
    create_endpoint,
};
pub use signature::WebhookSecret;
pub use worker::{WebhookSettings, WebhookWorker};
