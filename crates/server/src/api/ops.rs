//! `/api/v1` DCI operations: search (sync or async), subscribe, unsubscribe, txn status and the
//! transaction lookup. Thin: each handler turns the JSON body into the ops library's input,
//! calls [`dci_client::Operations`], and shapes its result; the library does the work (and the
//! storing, signing and verifying).

use std::time::Duration;

use axum::extract::State;

use crate::ApiPath;
use crate::auth::{ApiOperator, ApiViewer};
use axum::response::IntoResponse;
use dci_client::ops::{
    AsyncSubmission, SearchQuery, SearchSpec, SubscribeSpec, TransactionView, TxnStatusQuery,
    transaction_view,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;

/// Longest an async call may wait for its result inside one HTTP request.
const MAX_WAIT_SECS: u64 = 300;

#[derive(Debug, Default, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    #[default]
    Sync,
    Async,
}

/// Body of `POST /sources/{code}/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchBody {
    query_type: String,
    query: Value,
    #[serde(default)]
    record_type: Option<String>,
    #[serde(default)]
    reg_event_type: Option<String>,
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    mode: Mode,
    /// Async only: wait up to this many seconds for the result and include it.
    #[serde(default)]
    wait_secs: Option<u64>,
}

impl SearchBody {
    fn spec(&self) -> ApiResult<SearchSpec> {
        let mut spec = SearchSpec::from_parts(&self.query_type, self.query.clone())?;
        if let Some(t) = self.record_type.as_deref().filter(|t| !t.is_empty()) {
            spec = spec.record_type(t);
        }
        if let Some(t) = self.reg_event_type.as_deref().filter(|t| !t.is_empty()) {
            spec = spec.event_type(t);
        }
        if self.page == Some(0) {
            return Err(ApiError::field(
                "page",
                "pages are numbered from 1: use 1 for the first page",
            ));
        }
        if self.page_size == Some(0) {
            return Err(ApiError::field(
                "page_size",
                "must be at least 1: use e.g. 50",
            ));
        }
        spec.page = self.page;
        spec.page_size = self.page_size;
        if spec.page.is_some() && spec.page_size.is_none() {
            spec.page_size = Some(dci_client::ops::DEFAULT_PAGE_SIZE);
        }
        Ok(spec)
    }
}

/// The wait an async call asked for, bounded so the answer comes before the server's request
/// timeout cuts the connection (a 408 would lose the transaction id).
fn wait_of(st: &AppState, mode: Mode, wait_secs: Option<u64>) -> ApiResult<Option<Duration>> {
    let limit = MAX_WAIT_SECS.min(st.config.request_timeout.as_secs().saturating_sub(1));
    match (mode, wait_secs) {
        (_, None) => Ok(None),
        (Mode::Sync, Some(_)) => Err(ApiError::field(
            "wait_secs",
            "only applies to \"mode\": \"async\": remove it or switch the mode",
        )),
        (Mode::Async, Some(s)) if s > limit => Err(ApiError::field(
            "wait_secs",
            format!(
                "must be at most {limit} (below the server's request timeout): poll GET /api/v1/transactions/{{id}} for longer waits"
            ),
        )),
        (Mode::Async, Some(s)) => Ok(Some(Duration::from_secs(s))),
    }
}

fn accepted(sub: &AsyncSubmission) -> Value {
    json!({
        "ack_status": sub.ack_status,
        "correlation_id": sub.correlation_id,
        "transaction_id": sub.transaction_id,
        "message_id": sub.message_id,
        "state": sub.state,
    })
}

/// After an ACK: optionally wait for the result (ending early on shutdown).
async fn with_wait(
    st: &AppState,
    ops: &dci_client::Operations,
    sub: AsyncSubmission,
    wait: Option<Duration>,
) -> ApiResult<Value> {
    let mut out = accepted(&sub);
    let Some(wait) = wait else {
        return Ok(out);
    };
    let view = tokio::select! {
        r = ops.await_transaction(&sub.transaction_id, wait) => r?,
        () = st.shutdown.wait() => {
            return Err(ApiError::Unavailable(format!(
                "the server is shutting down: look transaction {} up later",
                sub.transaction_id
            )));
        }
    };
    if let Some(e) = failed(&view) {
        return Err(e);
    }
    out["transaction"] = serde_json::to_value(&view).map_err(ApiError::internal)?;
    Ok(out)
}

/// A transaction the registry refused is an error with its code, never a success.
fn failed(view: &TransactionView) -> Option<ApiError> {
    (view.state == dci_client::ops::TransactionState::Failed).then(|| {
        ApiError::Rejected(view.error.clone().unwrap_or(
            dci_client::RegistryError {
                code: None,
                message:
                    Some(
                        view.reason.clone().unwrap_or_else(|| {
                            format!("transaction {} failed", view.transaction_id)
                        }),
                    ),
            },
        ))
    })
}

pub(crate) async fn search(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<impl IntoResponse> {
    let spec = body.spec()?;
    let wait = wait_of(&st, body.mode, body.wait_secs)?;
    let ops = st.operations(&code).await?;
    let query = SearchQuery::one(spec);
    match body.mode {
        // Serialised straight from the typed result (the same JSON as through a `Value`).
        Mode::Sync => Ok(ApiJson(ops.search(&query).await?).into_response()),
        Mode::Async => {
            let sub = ops.submit_search_async(&query).await?;
            Ok(ApiJson(with_wait(&st, &ops, sub, wait).await?).into_response())
        }
    }
}

/// Body of `POST /sources/{code}/subscribe`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscribeBody {
    event_type: String,
    #[serde(default)]
    filter: Option<Value>,
    #[serde(default)]
    wait_secs: Option<u64>,
}

pub(crate) async fn subscribe(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiJson(body): ApiJson<SubscribeBody>,
) -> ApiResult<impl IntoResponse> {
    if body.event_type.trim().is_empty() {
        return Err(ApiError::field(
            "event_type",
            "is required: give the registry event to subscribe to, e.g. LiveBirth",
        ));
    }
    let wait = wait_of(&st, Mode::Async, body.wait_secs)?;
    let spec = SubscribeSpec::new(body.event_type.trim(), body.filter)?;
    let ops = st.operations(&code).await?;
    let sub = ops.subscribe(&spec).await?;
    Ok(ApiJson(with_wait(&st, &ops, sub, wait).await?))
}

/// Body of `POST /sources/{code}/unsubscribe`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnsubscribeBody {
    subscription_codes: Vec<String>,
    #[serde(default)]
    wait_secs: Option<u64>,
}

pub(crate) async fn unsubscribe(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiJson(body): ApiJson<UnsubscribeBody>,
) -> ApiResult<impl IntoResponse> {
    let codes: Vec<String> = body
        .subscription_codes
        .iter()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    if codes.is_empty() {
        return Err(ApiError::field(
            "subscription_codes",
            "needs at least one subscription code: GET the subscribe transaction to see them",
        ));
    }
    let wait = wait_of(&st, Mode::Async, body.wait_secs)?;
    let ops = st.operations(&code).await?;
    let sub = ops.unsubscribe(&codes).await?;
    Ok(ApiJson(with_wait(&st, &ops, sub, wait).await?))
}

/// Body of `POST /sources/{code}/txn-status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TxnStatusBody {
    transaction_id: String,
    #[serde(default)]
    mode: Mode,
}

pub(crate) async fn txn_status(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiJson(body): ApiJson<TxnStatusBody>,
) -> ApiResult<impl IntoResponse> {
    let id = body.transaction_id.trim();
    if id.is_empty() {
        return Err(ApiError::field(
            "transaction_id",
            "is required: give the transaction id returned by the async call",
        ));
    }
    let ops = st.operations(&code).await?;
    let q = TxnStatusQuery::transaction(id);
    match body.mode {
        Mode::Sync => {
            let r = ops.txn_status(&q).await?;
            Ok(ApiJson(
                serde_json::to_value(&r).map_err(ApiError::internal)?,
            ))
        }
        Mode::Async => {
            let sub = ops.txn_status_async(&q).await?;
            Ok(ApiJson(accepted(&sub)))
        }
    }
}

pub(crate) async fn transaction(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let view = transaction_view(st.ops.as_ref(), &id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no transaction {id:?} in this store: it was sent through another store, or never"
            ))
        })?;
    Ok(ApiJson(view))
}

/// Query of `GET /transactions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransactionsQuery {
    source: Option<String>,
    state: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
}

/// Stored async requests, newest first (summaries: `GET /transactions/{id}` has the ACK,
/// callbacks and items).
pub(crate) async fn transactions(
    _: ApiViewer,
    State(st): State<AppState>,
    crate::ApiQuery(q): crate::ApiQuery<TransactionsQuery>,
) -> ApiResult<impl IntoResponse> {
    use dci_client::ops::{TransactionFilter, TransactionState};
    let state = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<TransactionState>().map_err(|_| {
                ApiError::field(
                    "state",
                    format!("{s:?} is not one of pending, acknowledged, unknown, partial, completed, failed, timed_out"),
                )
            })
        })
        .transpose()?;
    let since = super::events::time_param("since", q.since.as_deref())?;
    let until = super::events::time_param("until", q.until.as_deref())?;
    let limit = super::events::limit(q.limit)?;
    // The store filters by source and state; the time window is applied here, over a wider
    // read so that a window still fills the page.
    let wide = if since.is_some() || until.is_some() {
        10_000
    } else {
        limit
    };
    let list = st
        .ops
        .list_transactions(&TransactionFilter {
            source_code: q.source.filter(|s| !s.is_empty()),
            state,
            limit: wide,
        })
        .await?;
    let rows: Vec<Value> = list
        .iter()
        .filter(|t| {
            since.is_none_or(|s| t.created_at >= s) && until.is_none_or(|u| t.created_at < u)
        })
        .take(limit as usize)
        .map(|t| {
            let at = |v: time::OffsetDateTime| {
                v.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            };
            json!({
                "transaction_id": t.transaction_id,
                "source_code": t.source_code,
                "kind": t.kind,
                "state": t.state,
                "message_id": t.message_id,
                "reference_ids": t.reference_ids,
                "ack_status": t.ack.as_ref().map(|a| a.ack_status.clone()),
                "correlation_id": t.ack.as_ref().and_then(|a| a.correlation_id.clone()),
                "created_at": at(t.created_at),
                "updated_at": at(t.updated_at),
                "deadline": at(t.deadline),
            })
        })
        .collect();
    Ok(ApiJson(json!({ "transactions": rows })))
}
