//! `/api/v1/sources`: data sources CRUD, connection test, audit log.
//!
//! The request body has the shape of the response (`DataSource::to_redacted_json`), so a client
//! can GET, change a field and PUT back: read-only fields are ignored, and a secret sent as
//! `********` (or left out) keeps the stored one. Secrets are write-only: no response ever holds
//! one.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dci_client::{AuditFilter, DataSourceInput, SourceFilter, SourceState, TestOptions};
use dci_protocol::RegistryType;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;

/// A data source as submitted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    registry_type: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    auth: Option<AuthBody>,
    #[serde(default)]
    sender_id: Option<String>,
    #[serde(default)]
    receiver_id: Option<String>,
    #[serde(default)]
    callback_uri: Option<String>,
    #[serde(default)]
    endpoints: Option<EndpointsBody>,
    #[serde(default)]
    tls: Option<TlsBody>,
    #[serde(default)]
    timeout_secs: Option<Value>,
    #[serde(default)]
    signing_key_id: Option<String>,
    #[serde(default)]
    reply_signature_policy: Option<String>,
    #[serde(default)]
    registry_public_keys: Vec<String>,
    #[serde(default)]
    registry_jwks_url: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    notes: Option<String>,
    // Read-only fields of the response, accepted so a GET body can be PUT back.
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    #[serde(default, rename = "state")]
    _state: Option<Value>,
    #[serde(default, rename = "last_test_at")]
    _last_test_at: Option<Value>,
    #[serde(default, rename = "last_error")]
    _last_error: Option<Value>,
    #[serde(default, rename = "created_at")]
    _created_at: Option<Value>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    bearer_token: Option<SecretString>,
    username: Option<String>,
    password: Option<SecretString>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    scope: Option<String>,
    credential_location: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointsBody {
    sync_search: Option<String>,
    search: Option<String>,
    subscribe: Option<String>,
    unsubscribe: Option<String>,
    txn_status: Option<String>,
    sync_txn_status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsBody {
    verify: Option<bool>,
    ca_file: Option<String>,
    client_cert_file: Option<String>,
    client_key_file: Option<String>,
}

impl SourceBody {
    fn into_input(self, code: String) -> DataSourceInput {
        let auth = self.auth.unwrap_or(AuthBody {
            kind: None,
            bearer_token: None,
            username: None,
            password: None,
            token_url: None,
            client_id: None,
            client_secret: None,
            scope: None,
            credential_location: None,
        });
        let ep = self.endpoints.unwrap_or(EndpointsBody {
            sync_search: None,
            search: None,
            subscribe: None,
            unsubscribe: None,
            txn_status: None,
            sync_txn_status: None,
        });
        let tls = self.tls.unwrap_or(TlsBody {
            verify: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        });
        DataSourceInput {
            code,
            name: self.name,
            registry_type: self.registry_type,
            base_url: self.base_url,
            auth: auth.kind,
            bearer_token: auth.bearer_token,
            basic_username: auth.username,
            basic_password: auth.password,
            token_url: auth.token_url,
            client_id: auth.client_id,
            client_secret: auth.client_secret,
            scope: auth.scope,
            credential_location: auth.credential_location,
            sender_id: self.sender_id,
            receiver_id: self.receiver_id,
            callback_uri: self.callback_uri,
            sync_search_path: ep.sync_search,
            search_path: ep.search,
            subscribe_path: ep.subscribe,
            unsubscribe_path: ep.unsubscribe,
            txn_status_path: ep.txn_status,
            sync_txn_status_path: ep.sync_txn_status,
            tls_verify: tls.verify,
            ca_file: tls.ca_file,
            client_cert_file: tls.client_cert_file,
            client_key_file: tls.client_key_file,
            timeout_secs: self.timeout_secs.map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            signing_key_id: self.signing_key_id,
            reply_signature_policy: self.reply_signature_policy,
            registry_public_keys: self.registry_public_keys,
            registry_jwks_url: self.registry_jwks_url,
            profile: self.profile,
            active: self.active,
            notes: self.notes,
        }
    }
}

/// Where a validation field sits in the request body (JSON pointer).
pub(crate) fn pointer_of(field: &str) -> &'static str {
    match field {
        "code" => "/code",
        "name" => "/name",
        "registry_type" => "/registry_type",
        "base_url" => "/base_url",
        "auth" => "/auth/type",
        "bearer_token" => "/auth/bearer_token",
        "basic_username" => "/auth/username",
        "basic_password" => "/auth/password",
        "token_url" => "/auth/token_url",
        "client_id" => "/auth/client_id",
        "client_secret" => "/auth/client_secret",
        "scope" => "/auth/scope",
        "credential_location" => "/auth/credential_location",
        "sender_id" => "/sender_id",
        "receiver_id" => "/receiver_id",
        "callback_uri" => "/callback_uri",
        "sync_search_path" => "/endpoints/sync_search",
        "search_path" => "/endpoints/search",
        "subscribe_path" => "/endpoints/subscribe",
        "unsubscribe_path" => "/endpoints/unsubscribe",
        "txn_status_path" => "/endpoints/txn_status",
        "sync_txn_status_path" => "/endpoints/sync_txn_status",
        "ca_file" => "/tls/ca_file",
        "client_cert_file" => "/tls/client_cert_file",
        "client_key_file" => "/tls/client_key_file",
        "timeout" | "timeout_secs" => "/timeout_secs",
        "signing_key_id" => "/signing_key_id",
        "reply_signature_policy" => "/reply_signature_policy",
        "registry_public_keys" => "/registry_public_keys",
        "registry_jwks_url" => "/registry_jwks_url",
        "profile" => "/profile",
        "active" => "/active",
        "notes" => "/notes",
        _ => "",
    }
}

/// Query of `GET /sources`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    registry_type: Option<String>,
    state: Option<String>,
    active: Option<bool>,
}

pub(crate) async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let mut filter = SourceFilter::default();
    if let Some(r) = q.registry_type.as_deref() {
        filter.registry_type = Some(r.parse::<RegistryType>().map_err(|_| {
            ApiError::field(
                "registry_type",
                format!("{r:?} is not a registry type: use one of crvs, dr, ibr, social, fr"),
            )
        })?);
    }
    if let Some(s) = q.state.as_deref() {
        filter.state = Some(match s {
            "draft" => SourceState::Draft,
            "testing" => SourceState::Testing,
            "active" => SourceState::Active,
            "error" => SourceState::Error,
            _ => {
                return Err(ApiError::field(
                    "state",
                    format!("{s:?} is not a state: use one of draft, testing, active, error"),
                ));
            }
        });
    }
    filter.active = q.active;
    let sources = st.store.list_data_sources(&filter).await?;
    let list: Vec<Value> = sources.iter().map(|s| s.to_redacted_json()).collect();
    Ok(ApiJson(json!({ "sources": list })))
}

pub(crate) async fn create(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<SourceBody>,
) -> ApiResult<impl IntoResponse> {
    let code = body.code.clone().unwrap_or_default();
    let source = body.into_input(code).validate()?;
    st.store.create_data_source(&source).await?;
    let stored = st
        .store
        .get_data_source(&source.code)
        .await?
        .ok_or_else(|| ApiError::internal("a created data source could not be read back"))?;
    Ok((StatusCode::CREATED, ApiJson(stored.to_redacted_json())))
}

pub(crate) async fn get(
    State(st): State<AppState>,
    Path(code): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let s = load(&st, &code).await?;
    Ok(ApiJson(s.to_redacted_json()))
}

pub(crate) async fn update(
    State(st): State<AppState>,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<SourceBody>,
) -> ApiResult<impl IntoResponse> {
    let existing = load(&st, &code).await?;
    // The code may be changed by sending a new one; by default it stays.
    let new_code = body.code.clone().unwrap_or_else(|| code.clone());
    let source = body.into_input(new_code).validate_update(&existing)?;
    let stored = st.store.update_data_source(&source).await?;
    st.engine.invalidate(&code);
    Ok(ApiJson(stored.to_redacted_json()))
}

pub(crate) async fn delete(
    State(st): State<AppState>,
    Path(code): Path<String>,
) -> ApiResult<impl IntoResponse> {
    load(&st, &code).await?;
    st.store.delete_data_source(&code).await?;
    st.engine.invalidate(&code);
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
        })
        .await?;
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "at": e.at.format(&Rfc3339).unwrap_or_default(),
                "source": e.source_code,
                "endpoint": e.endpoint,
                "action": e.action,
                "message_id": e.message_id,
                "transaction_id": e.transaction_id,
                "http_status": e.http_status,
                "outcome": e.outcome.as_str(),
                "duration_ms": e.duration_ms,
                "attempt": e.attempt,
                "error": e.error,
            })
        })
        .collect();
    Ok(ApiJson(json!({ "entries": entries })))
}

pub(crate) async fn load(st: &AppState, code: &str) -> ApiResult<dci_client::DataSource> {
    st.store.get_data_source(code).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no data source {code:?}: GET /api/v1/sources lists the codes"
        ))
    })
}
