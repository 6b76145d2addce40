//! Changes to the delivery endpoints made on someone's behalf — add, remove, redeliver — each
//! written to the change audit with its actor: the one path the API, the console and the CLI
//! take, so none of them changes an endpoint without it being recorded.
//!
//! Owns: making the change and recording it. Does not own: validation of an endpoint
//! ([`create_endpoint`]), the outbox ([`crate::events::EventStore`]), who may do it (the front
//! ends' role checks).

use std::sync::Arc;

use time::OffsetDateTime;

use super::model::{
    CreateEndpointError, EndpointInput, Redelivery, RedeliverySelection, WebhookEndpoint,
    create_endpoint,
};
use super::signature::WebhookSecret;
use crate::ops::OpsStore;
use crate::store::StoreError;
use crate::users::{ChangeRecord, ChangeTarget, Users};

/// The fields a new endpoint sets, as the audit names them (never their values).
const CREATED_FIELDS: [&str; 4] = ["url", "kinds", "enabled", "secret"];

/// Writes `actor`'s change of endpoint `id`. The change is made already, so a failure to record
/// it is logged, not returned.
async fn record(ops: &Arc<dyn OpsStore>, actor: &str, id: &str, action: &str, fields: Vec<String>) {
    let change = ChangeRecord::now(actor, ChangeTarget::Webhook, id, action, fields);
    Users::new(ops.clone()).record_or_log(change).await;
}

/// Adds an endpoint ([`create_endpoint`]) and records it (`create`) as `actor`'s.
pub async fn add_endpoint(
    ops: &Arc<dyn OpsStore>,
    actor: &str,
    input: &EndpointInput,
) -> Result<(WebhookEndpoint, Option<WebhookSecret>), CreateEndpointError> {
    let (endpoint, secret) = create_endpoint(ops.as_ref(), input).await?;
    let fields = CREATED_FIELDS.map(str::to_owned).to_vec();
    record(ops, actor, &endpoint.id, "create", fields).await;
    Ok((endpoint, secret))
}

/// Removes endpoint `id` with its deliveries and records it (`delete`) as `actor`'s. `false`
/// (nothing recorded) when there is no such endpoint.
pub async fn remove_endpoint(
    ops: &Arc<dyn OpsStore>,
    actor: &str,
    id: &str,
) -> Result<bool, StoreError> {
    if !ops.delete_webhook(id).await? {
        return Ok(false);
    }
    record(ops, actor, id, "delete", Vec::new()).await;
    Ok(true)
}

/// Queues the selected events again and records it (`redeliver`, on the endpoint named or on
/// `*` for every endpoint, with the selection's field names) as `actor`'s. Returns how many
/// deliveries were queued.
pub async fn redeliver(
    ops: &Arc<dyn OpsStore>,
    actor: &str,
    selection: &Redelivery,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    let queued = ops.redeliver(selection, now).await?;
    let fields = match &selection.events {
        RedeliverySelection::Event(_) => vec!["event_id".to_owned()],
        RedeliverySelection::Range { .. } => vec!["since".to_owned(), "until".to_owned()],
    };
    let target = selection.endpoint_id.as_deref().unwrap_or("*");
    record(ops, actor, target, "redeliver", fields).await;
    Ok(queued)
}
