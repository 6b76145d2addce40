//! `/api/v1` events, notifications and subscriptions: what came back from the registries.
//! Thin: the queries become `dci_client::events` / `dci_client::ops` calls.

use axum::extract::State;
use axum::response::IntoResponse;
use dci_client::events::{EventCursor, EventFilter, EventKind};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ApiQuery;
use crate::auth::{ApiOperator, ApiViewer};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;

pub(crate) fn limit(given: Option<u32>) -> ApiResult<u32> {
    let limit = given.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field(
            "limit",
            "must be between 1 and 1000: use e.g. 100",
        ));
    }
    Ok(limit)
}

pub(crate) fn time_param(field: &str, v: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| {
            ApiError::field(
                field,
                format!("{s:?} is not an RFC 3339 time ({e}): use e.g. 2026-01-31T00:00:00Z"),
            )
        })
    })
    .transpose()
}

/// Query of `GET /events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    after: Option<String>,
    /// Comma-separated kinds.
    kind: Option<String>,
    source: Option<String>,
    unprocessed: Option<bool>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn list(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<impl IntoResponse> {
    let after = q
        .after
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(EventCursor::decode)
        .transpose()
        .map_err(|e| ApiError::field("after", e.to_string()))?;
    let kinds = q
        .kind
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .map(|k| k.parse::<EventKind>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::field("kind", e.to_string()))?;
    let filter = EventFilter {
        after,
        kinds,
        source_code: q.source.filter(|s| !s.is_empty()),
        unprocessed: q.unprocessed.unwrap_or(false),
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        limit: limit(q.limit)?,
    };
    Ok(ApiJson(
        dci_client::events::page(st.ops.as_ref(), &filter).await?,
    ))
}

/// Body of `POST /events/ack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    ids: Vec<String>,
}

pub(crate) async fn ack(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<AckBody>,
) -> ApiResult<impl IntoResponse> {
    if body.ids.is_empty() || body.ids.len() > 1000 {
        return Err(ApiError::field(
            "ids",
            "must list 1 to 1000 event ids (the `id` of each listed event)",
        ));
    }
    let marked = st
        .ops
        .mark_events_processed(&body.ids, OffsetDateTime::now_utc())
        .await?;
    Ok(ApiJson(json!({ "marked": marked })))
}

pub(crate) async fn get(
    _: ApiViewer,
    State(st): State<AppState>,
    crate::ApiPath(id): crate::ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let e = st.ops.get_event(&id).await?.ok_or_else(|| {
        ApiError::NotFound(format!("no event {id:?}: GET /api/v1/events lists them"))
    })?;
    Ok(ApiJson(e))
}

/// Query of `GET /notifications` and `GET /subscriptions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceQuery {
    source: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn notifications(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<SourceQuery>,
) -> ApiResult<impl IntoResponse> {
    let list = dci_client::events::typed_notifications(
        st.store.as_ref(),
        st.ops.as_ref(),
        q.source.as_deref().filter(|s| !s.is_empty()),
        limit(q.limit)?,
    )
    .await?;
    Ok(ApiJson(json!({ "notifications": list })))
}

pub(crate) async fn subscriptions(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<SourceQuery>,
) -> ApiResult<impl IntoResponse> {
    let mut list = dci_client::ops::list_subscriptions(
        st.ops.as_ref(),
        q.source.as_deref().filter(|s| !s.is_empty()),
    )
    .await?;
    list.truncate(limit(q.limit)? as usize);
    Ok(ApiJson(json!({ "subscriptions": list })))
}
