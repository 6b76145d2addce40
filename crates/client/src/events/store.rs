//! The storage seam of events and webhooks. A supertrait of [`crate::ops::OpsStore`] (the
//! outbox lives beside the callbacks that fill it); `dci-store` implements it for SQLite and
//! PostgreSQL. Object safe.
//!
//! Writing events is not here: the [`crate::ops::OpsStore`] methods that change state write the
//! events of the change in the same database transaction (see [`super::build`]), and fan each
//! event out to the enabled webhook endpoints whose filter takes it (one pending delivery per
//! endpoint), in that transaction too.

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::store::StoreError;
use crate::webhooks::{
    AttemptOutcome, AttemptRecord, DeliveryFilter, DeliveryRecord, Redelivery, WebhookEndpoint,
};

use super::{EventFilter, EventRecord, NewEvent};

/// Storage for events, webhook endpoints and deliveries.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event that no other stored change causes (and fans it out). Returns it with
    /// its position.
    async fn append_event(&self, e: &NewEvent) -> Result<EventRecord, StoreError>;

    /// Events matching the filter, oldest first (outbox order).
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError>;

    /// One event by id.
    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>, StoreError>;

    /// Marks these events processed (by the consumer) unless already marked. Returns how many
    /// changed; unknown ids are ignored.
    async fn mark_events_processed(
        &self,
        ids: &[String],
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Stores a new endpoint; its signing secret is sealed at rest. Fails if the id exists.
    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        secret: &SecretString,
    ) -> Result<(), StoreError>;

    /// Every endpoint, by creation.
    async fn list_webhooks(&self) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// One endpoint.
    async fn get_webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// The endpoint's signing secret, opened.
    async fn webhook_secret(&self, id: &str) -> Result<Option<SecretString>, StoreError>;

    /// Updates URL, filter, enabled and description. Returns `false` if unknown.
    async fn update_webhook(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError>;

    /// Removes an endpoint, its secret, deliveries and attempts. Returns `false` if unknown.
    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError>;

    /// Claims one enabled endpoint whose oldest pending delivery is due at `now` and which no
    /// live lease holds, leasing it to `owner` until `lease_until`. On PostgreSQL the candidate
    /// row is locked with `FOR UPDATE SKIP LOCKED`, so concurrent instances claim different
    /// endpoints; on SQLite the single writer serialises claims. Deliveries to one endpoint
    /// thus run in one place at a time, in event order.
    async fn claim_webhook(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Extends (or, with `None`, releases) `owner`'s lease. Returns `false` if `owner` no
    /// longer holds it.
    async fn renew_webhook_lease(
        &self,
        id: &str,
        owner: &str,
        lease_until: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    /// The endpoint's oldest pending delivery and its event (due or not): deliveries go out in
    /// event order, so a later one waits for it.
    async fn head_delivery(
        &self,
        endpoint_id: &str,
    ) -> Result<Option<(DeliveryRecord, EventRecord)>, StoreError>;

    /// Records an attempt and its outcome, if `owner` still holds the endpoint's lease (else
    /// nothing is changed and `false` returned: another instance took over).
    async fn finish_attempt(
        &self,
        owner: &str,
        attempt: &AttemptRecord,
        outcome: &AttemptOutcome,
    ) -> Result<bool, StoreError>;

    /// Deliveries matching the filter, newest event first.
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Attempts of one event's delivery to one endpoint, in order.
    async fn list_attempts(
        &self,
        endpoint_id: &str,
        event_id: &str,
    ) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Queues the selected events again (attempts reset, due at `now`) for the selected
    /// endpoint(s) whose filter takes them, delivered or dead alike. Returns how many
    /// deliveries were queued.
    async fn redeliver(
        &self,
        selection: &Redelivery,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;
}
