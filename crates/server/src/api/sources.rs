//! `/api/v1/sources`: data sources CRUD, connection test, audit log.
//!
//! The request and response body is the data-source document (`dci_client::SourceDocument`),
//! so a client can GET, change a field and PUT back: read-only fields are ignored, and a secret
//! sent as `********` (or left out) keeps the stored one. The code is fixed once created: a PUT
//! whose body names another code is refused (422 on `/code`). Field errors point into the body
//! with JSON pointers derived from the document's field paths. Secrets are write-only: no
//! response ever holds one — except the callback URL (`callbacks.url`, which carries the
//! source's callback secret), shown when it is made: in the answer to `POST /sources`, to
//! `PUT /sources/{code}?regenerate_callback_secret=true`, and to
//! `GET /sources/{code}?reveal_callback_url=true`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dci_client::source::names;
use dci_client::{AuditFilter, SourceDocument, SourceFilter, TestOptions};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{ApiAdmin, ApiOperator, ApiViewer};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;

/// Query of `GET /sources`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    registry_type: Option<String>,
    state: Option<String>,
    active: Option<bool>,
}

pub(crate) async fn list(
    _: ApiViewer,
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let mut filter = SourceFilter::default();
    if let Some(r) = q.registry_type.as_deref() {
        filter.registry_type = Some(
            names::registry_type(r).map_err(|e| ApiError::field("registry_type", e.to_string()))?,
        );
    }
    if let Some(s) = q.state.as_deref() {
        filter.state = Some(
            s.parse()
                .map_err(|e: names::UnknownName| ApiError::field("state", e.to_string()))?,
        );
    }
    filter.active = q.active;
    let sources = st.store.list_data_sources(&filter).await?;
    let list: Vec<Value> = sources.iter().map(|s| s.to_redacted_json()).collect();
    Ok(ApiJson(json!({ "sources": list })))
}

pub(crate) async fn create(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<SourceDocument>,
) -> ApiResult<impl IntoResponse> {
    let source = body.validate()?;
    let stored = st.engine.create_source(&who.actor, &source).await?;
    // Shown once: the registry needs the callback URL with its secret.
    Ok((StatusCode::CREATED, ApiJson(revealed(&stored))))
}

/// The document with the callback URL (and so its secret).
fn revealed(s: &dci_client::DataSource) -> SourceDocument {
    SourceDocument::from_source(s).reveal_callback_url(s)
}

/// Query of `GET /sources/{code}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GetQuery {
    /// Include `callbacks.url` (the callback URL with its secret).
    #[serde(default)]
    reveal_callback_url: bool,
}

pub(crate) async fn get(
    _: ApiViewer,
    State(st): State<AppState>,
    Path(code): Path<String>,
    Query(q): Query<GetQuery>,
) -> ApiResult<impl IntoResponse> {
    let s = load(&st, &code).await?;
    if q.reveal_callback_url {
        return Ok(ApiJson(
            serde_json::to_value(revealed(&s)).unwrap_or_default(),
        ));
    }
    Ok(ApiJson(s.to_redacted_json()))
}

/// Query of `PUT /sources/{code}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateQuery {
    /// Replace the callback secret with a fresh one (the answer shows the new callback URL).
    #[serde(default)]
    regenerate_callback_secret: bool,
}

pub(crate) async fn update(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    Path(code): Path<String>,
    Query(q): Query<UpdateQuery>,
    ApiJson(body): ApiJson<SourceDocument>,
) -> ApiResult<impl IntoResponse> {
    let existing = load(&st, &code).await?;
    // A body without a code keeps it; one with another code is refused (on `/code`).
    let mut source = body.validate_update(&existing)?;
    if q.regenerate_callback_secret {
        source.regenerate_callback_secret();
    }
    let stored = st
        .engine
        .update_source(&who.actor, &existing, &source)
        .await?;
    if q.regenerate_callback_secret {
        return Ok(ApiJson(
            serde_json::to_value(revealed(&stored)).unwrap_or_default(),
        ));
    }
    Ok(ApiJson(stored.to_redacted_json()))
}

pub(crate) async fn delete(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    Path(code): Path<String>,
) -> ApiResult<impl IntoResponse> {
    load(&st, &code).await?;
    st.engine.delete_source(&who.actor, &code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /sources/{code}/test` (optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestBody {
    /// The permission check (one probe search): on unless turned off.
    #[serde(default = "yes")]
    probe_search: bool,
}

fn yes() -> bool {
    true
}

impl Default for TestBody {
    fn default() -> Self {
        TestBody { probe_search: true }
    }
}

pub(crate) async fn test(
    _: ApiOperator,
    State(st): State<AppState>,
    Path(code): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    // The body is optional: an empty POST runs the default test.
    let body: TestBody = if body.iter().all(u8::is_ascii_whitespace) {
        TestBody::default()
    } else {
        crate::api::parse_body(&body)?
    };
    let opts = TestOptions {
        probe_search: body.probe_search,
    };
    let report = st.engine.test_connection(&code, opts).await?;
    Ok(ApiJson(report))
}

/// Query of `GET /audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    source: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn audit(
    _: ApiViewer,
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<impl IntoResponse> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field(
            "limit",
            "must be between 1 and 1000: use e.g. 100",
        ));
    }
    let entries = st
        .store
        .list_audit(&AuditFilter {
            source_code: q.source,
            limit,
            ..AuditFilter::default()
        })
        .await?;
    let entries: Vec<Value> = entries.iter().map(dci_client::export::audit_json).collect();
    Ok(ApiJson(json!({ "entries": entries })))
}

pub(crate) async fn load(st: &AppState, code: &str) -> ApiResult<dci_client::DataSource> {
    st.store.get_data_source(code).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no data source {code:?}: GET /api/v1/sources lists the codes"
        ))
    })
}
