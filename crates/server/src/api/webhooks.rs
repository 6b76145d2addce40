//! `/api/v1/webhooks`: endpoints (the secret is shown once, in the creation's answer),
//! deliveries with their attempts, and redelivery. Thin over `dci_client::webhooks`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dci_client::webhooks::{
    DeliveryFilter, DeliveryState, EndpointInput, Redelivery, RedeliverySelection, add_endpoint,
    redeliver as redeliver_events, remove_endpoint,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::events::{limit, time_param};
use crate::auth::{ApiAdmin, ApiViewer};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;
use crate::{ApiPath, ApiQuery};
use dci_client::users::ChangeTarget;
use dci_client::users::changes::json_fields;

fn unknown(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no webhook endpoint {id:?}: GET /api/v1/webhooks lists them"
    ))
}

/// Body of `POST /webhooks` and `PUT /webhooks/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointBody {
    url: String,
    /// `webhook` (default) or `amqp`.
    #[serde(default)]
    sink: Option<String>,
    #[serde(default)]
    exchange: Option<String>,
    #[serde(default)]
    routing_key: Option<String>,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    description: Option<String>,
    /// Create only, write-only.
    #[serde(default)]
    secret: Option<secrecy::SecretString>,
}

impl EndpointBody {
    fn input(self) -> EndpointInput {
        EndpointInput {
            url: self.url,
            sink: self.sink,
            exchange: self.exchange,
            routing_key: self.routing_key,
            kinds: self.kinds,
            enabled: self.enabled,
            description: self.description,
            secret: self.secret,
        }
    }
}

fn invalid(e: dci_client::FieldError) -> ApiError {
    ApiError::field(e.field, e.message)
}

pub(crate) async fn create(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> ApiResult<impl IntoResponse> {
    let (endpoint, secret) = add_endpoint(&st.ops, &who.actor, &body.input())
        .await
        .map_err(|e| match e {
            dci_client::webhooks::CreateEndpointError::Invalid(f) => invalid(f),
            dci_client::webhooks::CreateEndpointError::Store(s) => s.into(),
        })?;
    let mut out = serde_json::to_value(&endpoint).map_err(ApiError::internal)?;
    if let Some(secret) = secret {
        out["secret"] = secret.expose().expose_secret().into();
    }
    Ok((StatusCode::CREATED, ApiJson(out)))
}

pub(crate) async fn list(_: ApiViewer, State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(ApiJson(
        json!({ "webhooks": st.ops.list_webhooks().await? }),
    ))
}

pub(crate) async fn get(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(ApiJson(
        st.ops.get_webhook(&id).await?.ok_or_else(|| unknown(&id))?,
    ))
}

pub(crate) async fn update(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> ApiResult<impl IntoResponse> {
    let mut endpoint = st.ops.get_webhook(&id).await?.ok_or_else(|| unknown(&id))?;
    let before = serde_json::to_value(&endpoint).unwrap_or_default();
    let input = body.input();
    let (url, sink, kinds) = input.validate().map_err(invalid)?;
    if sink.as_str() != endpoint.sink.as_str() {
        return Err(ApiError::field(
            "sink",
            format!(
                "the endpoint is a {} sink: a sink's kind does not change (add a new endpoint instead)",
                endpoint.sink.as_str()
            ),
        ));
    }
    if matches!(sink, dci_client::webhooks::Sink::Amqp { .. }) && url != endpoint.url {
        return Err(ApiError::field(
            "url",
            "an AMQP sink's broker URL is sealed and does not change: give the same broker, or add a new sink",
        ));
    }
    endpoint.url = url;
    endpoint.sink = sink;
    endpoint.kinds = kinds;
    if let Some(e) = input.enabled {
        endpoint.enabled = e;
    }
    if input.description.is_some() {
        endpoint.description = input.description.filter(|d| !d.trim().is_empty());
    }
    endpoint.updated_at = OffsetDateTime::now_utc();
    if !st.ops.update_webhook(&endpoint).await? {
        return Err(unknown(&id));
    }
    let mut fields = json_fields(
        &before,
        &serde_json::to_value(&endpoint).unwrap_or_default(),
    );
    fields.retain(|f| f != "updated_at");
    st.record_change(&who, ChangeTarget::Webhook, &id, "update", fields)
        .await;
    Ok(ApiJson(endpoint))
}

pub(crate) async fn delete(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    if !remove_endpoint(&st.ops, &who.actor, &id).await? {
        return Err(unknown(&id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /webhooks/{id}/deliveries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveriesQuery {
    state: Option<String>,
    event: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn deliveries(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> ApiResult<impl IntoResponse> {
    st.ops.get_webhook(&id).await?.ok_or_else(|| unknown(&id))?;
    let state = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            DeliveryState::parse(s).ok_or_else(|| {
                ApiError::field(
                    "state",
                    format!("{s:?} is not one of pending, delivered, dead"),
                )
            })
        })
        .transpose()?;
    let event = q.event.filter(|e| !e.is_empty());
    let list = st
        .ops
        .list_deliveries(&DeliveryFilter {
            endpoint_id: Some(id.clone()),
            event_id: event.clone(),
            state,
            limit: limit(q.limit)?,
        })
        .await?;
    let mut out = Vec::with_capacity(list.len());
    for d in &list {
        let mut v = serde_json::to_value(d).map_err(ApiError::internal)?;
        if event.is_some() {
            v["attempts_made"] =
                serde_json::to_value(st.ops.list_attempts(&id, &d.event_id).await?)
                    .map_err(ApiError::internal)?;
        }
        out.push(v);
    }
    Ok(ApiJson(json!({ "deliveries": out })))
}

/// Body of `POST /webhooks/redeliver`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedeliverBody {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    endpoint_id: Option<String>,
}

pub(crate) async fn redeliver(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<RedeliverBody>,
) -> ApiResult<impl IntoResponse> {
    let since = time_param("since", body.since.as_deref())?;
    let until = time_param("until", body.until.as_deref())?;
    let events = match (body.event_id.filter(|e| !e.is_empty()), since) {
        (Some(id), None) if until.is_none() => {
            st.ops.get_event(&id).await?.ok_or_else(|| {
                ApiError::NotFound(format!("no event {id:?}: GET /api/v1/events lists them"))
            })?;
            RedeliverySelection::Event(id)
        }
        (None, Some(since)) => RedeliverySelection::Range {
            since,
            until: until.unwrap_or_else(OffsetDateTime::now_utc),
        },
        _ => {
            return Err(ApiError::field(
                "event_id",
                "give either event_id, or since (and optionally until) for a time range",
            ));
        }
    };
    if let Some(e) = &body.endpoint_id {
        st.ops.get_webhook(e).await?.ok_or_else(|| unknown(e))?;
    }
    let selection = Redelivery {
        events,
        endpoint_id: body.endpoint_id,
    };
    let queued =
        redeliver_events(&st.ops, &who.actor, &selection, OffsetDateTime::now_utc()).await?;
    Ok(ApiJson(json!({ "queued": queued })))
}
