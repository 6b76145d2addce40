//! `/api/v1/users` (admins: list, add, remove named users) and `/api/v1/me` (who the token
//! acts as). Passwords arrive in the request body, never in a URL, and are stored only as
//! argon2 hashes; personal API tokens are made with `dci user token create`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use dci_client::users::Role;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::ApiPath;
use crate::auth::{ApiAdmin, ApiViewer, role_scope};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;

/// Body of `POST /users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    username: String,
    role: String,
    password: SecretString,
}

pub(crate) async fn list(_: ApiAdmin, State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(ApiJson(json!({ "users": st.users().list().await? })))
}

pub(crate) async fn create(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<NewUserBody>,
) -> ApiResult<impl IntoResponse> {
    let role: Role = body
        .role
        .parse()
        .map_err(|e: dci_client::users::UnknownRole| ApiError::field("role", e.to_string()))?;
    let user = st
        .users()
        .add(&who.actor, body.username.trim(), role, &body.password)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(user)))
}

pub(crate) async fn delete(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    st.users().remove(&who.actor, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn me(ApiViewer(who): ApiViewer) -> ApiResult<impl IntoResponse> {
    Ok(ApiJson(json!({
        "actor": who.actor,
        "role": who.role,
        "may": role_scope(who.role),
    })))
}
