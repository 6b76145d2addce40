//! `/api/v1/audit/changes` (the change audit: who changed what and when, by field name) and
//! `/api/v1/audit/export` (the audit log of outgoing calls, or the change audit, by time range
//! as JSON Lines or CSV). The list of outgoing calls itself is `GET /audit` (`sources::audit`).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use dci_client::AuditFilter;
use dci_client::export::{self, ExportFormat};
use dci_client::users::{ChangeFilter, ChangeTarget, TimeRange};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiQuery;
use crate::api::events::{limit, time_param};
use crate::auth::ApiViewer;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;

/// Query of `GET /audit/changes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangesQuery {
    since: Option<String>,
    until: Option<String>,
    /// `data_source`, `webhook`, `signing_key`, `user`, `api_token` or `schedule`.
    target: Option<String>,
    limit: Option<u32>,
}

fn range(since: Option<&str>, until: Option<&str>) -> ApiResult<TimeRange> {
    let range = TimeRange {
        since: time_param("since", since)?,
        until: time_param("until", until)?,
    };
    if let (Some(s), Some(u)) = (range.since, range.until)
        && u <= s
    {
        return Err(ApiError::field(
            "until",
            "must be later than since: the range is [since, until)",
        ));
    }
    Ok(range)
}

fn target(t: Option<&str>) -> ApiResult<Option<ChangeTarget>> {
    t.map(|t| {
        ChangeTarget::parse(t).ok_or_else(|| {
            ApiError::field(
                "target",
                format!(
                    "{t:?} is unknown: use data_source, webhook, signing_key, user, api_token or schedule"
                ),
            )
        })
    })
    .transpose()
}

pub(crate) async fn changes(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<impl IntoResponse> {
    let filter = ChangeFilter {
        range: range(q.since.as_deref(), q.until.as_deref())?,
        target: target(q.target.as_deref())?,
        limit: limit(q.limit)?,
    };
    let changes = st.users().store().list_changes(&filter).await?;
    let changes: Vec<Value> = changes.iter().map(export::change_json).collect();
    Ok(ApiJson(json!({ "changes": changes })))
}

/// Query of `GET /audit/export`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    since: Option<String>,
    until: Option<String>,
    /// `jsonl` (default) or `csv`.
    format: Option<String>,
    /// `calls` (default: the audit log of outgoing calls) or `changes` (the change audit).
    log: Option<String>,
}

/// Every record in the range, oldest first, as one JSON Lines or CSV document.
pub(crate) async fn export(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let range = range(q.since.as_deref(), q.until.as_deref())?;
    let format: ExportFormat = q
        .format
        .as_deref()
        .unwrap_or("jsonl")
        .parse()
        .map_err(|e: export::UnknownFormat| ApiError::field("format", e.to_string()))?;
    let mut out = Vec::new();
    let written = match q.log.as_deref().unwrap_or("calls") {
        "calls" => {
            let mut entries = st
                .store
                .list_audit(&AuditFilter {
                    range,
                    limit: 0,
                    ..AuditFilter::default()
                })
                .await?;
            entries.reverse();
            export::write_audit(&entries, format, &mut out)
        }
        "changes" => {
            let mut changes = st
                .users()
                .store()
                .list_changes(&ChangeFilter {
                    range,
                    ..ChangeFilter::default()
                })
                .await?;
            changes.reverse();
            export::write_changes(&changes, format, &mut out)
        }
        other => {
            return Err(ApiError::field(
                "log",
                format!(
                    "{other:?} is unknown: use calls (outgoing calls) or changes (the change audit)"
                ),
            ));
        }
    };
    written.map_err(ApiError::internal)?;
    let mut r = out.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(r)
}
