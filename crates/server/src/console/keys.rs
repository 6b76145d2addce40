//! Signing keys: list (public part only), generate, activate, revoke (after a confirmation
//! page). A thin view over `dci_client::keys`.

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::keys::{GenerateOptions, KeyManager, parse_algorithm};
use maud::html;
use serde::Deserialize;

use super::session::{ConsoleAdmin, ConsoleViewer};
use super::session::{Ctx, see_other};
use super::view::{self, badge, crumbs, failed, required_mark, scroll, when};
use crate::state::AppState;
use dci_client::users::ChangeTarget;

/// Query of `GET /keys`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct KeysQuery {
    #[serde(default)]
    notice: String,
}

/// `GET /keys`: our signing keys (public part only).
pub(crate) async fn keys(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Query(q): Query<KeysQuery>,
) -> Response {
    let notice = match q.notice.as_str() {
        "generated" => Some("Key generated."),
        "activated" => Some("Key activated."),
        "revoked" => Some("Key revoked: it never signs again."),
        _ => None,
    };
    keys_view(&st, &ctx, StatusCode::OK, notice, None).await
}

async fn keys_view(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let keys = match KeyManager::new(st.ops.clone()).list().await {
        Ok(k) => k,
        Err(e) => return failed(ctx, &e.to_string()),
    };
    let body = html! {
        (crumbs(&["DCI", "Configuration", "Signing keys"]))
        h1 { "Signing keys" }
        @if let Some(n) = notice { div.notice role="status" { (n) } }
        @if let Some(e) = error { div.error-summary role="alert" id="error-summary" tabindex="-1" { (e) } }
        p.muted { "Keys that sign our requests; active keys are published at " a href="/.well-known/jwks.json" { "/.well-known/jwks.json" } ". Private keys are sealed in the database and never shown." }
        @if keys.is_empty() { p.panel { "No signing keys." } } @else {
            (scroll("Signing keys", html! {
            table id="keys" {
                    thead { tr { th { "Key id" } th { "Algorithm" } th { "Status" } th { "Created" } th { "Public key" } @if ctx.can_edit() { th { "Actions" } } } }
                    tbody { @for k in &keys { tr {
                        td { code { (k.key_id) } } td { (k.algorithm.as_str()) }
                        td { (badge(k.status.as_str(), k.status.as_str())) }
                        td { (when(Some(k.created_at))) }
                        td { details { summary { "PEM" } pre { (k.public_key_pem) } } }
                        @if ctx.can_edit() {
                            td.actions {
                                @if k.status.as_str() == "inactive" {
                                    form method="post" action={"/keys/" (k.key_id) "/activate"} {
                                        (view::csrf(ctx)) button type="submit" { "Activate" span.visually-hidden { " " (k.key_id) } }
                                    }
                                }
                                @if k.status.as_str() != "revoked" {
                                    a.button.danger href={"/keys/" (k.key_id) "/revoke"} { "Revoke" span.visually-hidden { " " (k.key_id) } "…" }
                                }
                            }
                        }
                    } } }
                }
            }))
        }
        @if ctx.can_edit() {
            h2 { "Generate a key" }
            form method="post" action="/keys" id="key-form" {
                (view::csrf(ctx))
                div.field {
                    label for="k-id" { "Key id" (required_mark()) }
                    input type="text" id="k-id" name="key_id" required aria-describedby="k-id-hint";
                    span.hint id="k-id-hint" { "1-64 letters, digits, '-', '_' or '.', e.g. spmis-2026-11." }
                }
                div.field {
                    label for="k-alg" { "Algorithm" }
                    select id="k-alg" name="algorithm" {
                        option value="ed25519" { "Ed25519" }
                        option value="rs256" { "RS256 (RSA 2048)" }
                    }
                }
                div.field {
                    label for="k-activate" { "Activate now" }
                    input type="checkbox" id="k-activate" name="activate" checked;
                }
                div.actions { button type="submit" id="generate" { "Generate" } }
            }
        }
    };
    view::page(status, "Signing keys", Some(ctx), "keys", body)
}

/// The key generation form.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key_id: String,
    #[serde(default)]
    algorithm: String,
    #[serde(default)]
    activate: Option<String>,
}

/// `POST /keys`.
pub(crate) async fn key_generate(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Form(form): Form<KeyForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf) {
        return r;
    }
    let alg = match parse_algorithm(&form.algorithm) {
        Ok(a) => a,
        Err(e) => {
            return keys_view(
                &st,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&e.to_string()),
            )
            .await;
        }
    };
    let opts = GenerateOptions {
        activate: form.activate.is_some(),
        expires_at: None,
    };
    match KeyManager::new(st.ops.clone())
        .generate(form.key_id.trim(), alg, opts)
        .await
    {
        Ok(k) => {
            let fields = vec!["algorithm".into(), "status".into()];
            st.record_change(
                &ctx.who,
                ChangeTarget::SigningKey,
                &k.key_id,
                "create",
                fields,
            )
            .await;
            see_other("/keys?notice=generated")
        }
        Err(e) => {
            keys_view(
                &st,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&e.to_string()),
            )
            .await
        }
    }
}

/// `POST /keys/{id}/activate`.
pub(crate) async fn key_activate(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(id): Path<String>,
    Form(form): Form<view::ConfirmForm>,
) -> Response {
    change_key(&st, &ctx, &id, &form.csrf, KeyChange::Activate).await
}

/// `POST /keys/{id}/revoke`.
pub(crate) async fn key_revoke(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(id): Path<String>,
    Form(form): Form<view::ConfirmForm>,
) -> Response {
    if !form.is_confirmed() {
        // Not from the confirmation page: ask first (revoking cannot be undone).
        if let Err(r) = ctx.check_csrf(&form.csrf) {
            return r;
        }
        return revoke_confirmation(&st, &ctx, &id).await;
    }
    change_key(&st, &ctx, &id, &form.csrf, KeyChange::Revoke).await
}

/// `GET /keys/{id}/revoke`: what revoking does, and a button that does it.
pub(crate) async fn key_revoke_confirm(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    revoke_confirmation(&st, &ctx, &id).await
}

async fn revoke_confirmation(st: &AppState, ctx: &Ctx, id: &str) -> Response {
    let key = match KeyManager::new(st.ops.clone()).get(id).await {
        Ok(k) => k,
        Err(e) => {
            return view::message_page(
                StatusCode::NOT_FOUND,
                "No such key",
                Some(ctx),
                &e.to_string(),
            );
        }
    };
    view::confirm_page(
        ctx,
        "keys",
        &["DCI", "Configuration", "Signing keys", "Revoke"],
        &format!("Revoke signing key {}?", key.key_id),
        html! {
            p { "Key " code { (key.key_id) } " (" (key.algorithm.as_str()) ", " (key.status.as_str()) ") will never sign again and leaves our published JWKS. This cannot be undone." }
            p { "Data sources that name it as their signing key cannot sign their requests until you choose another key." }
        },
        &format!("/keys/{}/revoke", key.key_id),
        "Revoke the key",
        "/keys",
    )
}

/// A key's status change from the keys page.
#[derive(Debug, Clone, Copy)]
enum KeyChange {
    Activate,
    Revoke,
}

/// Checks the editor's CSRF token, applies the change, and redirects with a notice (or shows
/// the keys page with the error).
async fn change_key(st: &AppState, ctx: &Ctx, id: &str, csrf: &str, change: KeyChange) -> Response {
    if let Err(r) = ctx.check_csrf(csrf) {
        return r;
    }
    let keys = KeyManager::new(st.ops.clone());
    let (outcome, notice, action) = match change {
        KeyChange::Activate => (keys.activate(id).await, "activated", "activate"),
        KeyChange::Revoke => (keys.revoke(id).await, "revoked", "revoke"),
    };
    match outcome {
        Ok(_) => {
            let fields = vec!["status".into()];
            st.record_change(&ctx.who, ChangeTarget::SigningKey, id, action, fields)
                .await;
            see_other(&format!("/keys?notice={notice}"))
        }
        Err(e) => {
            keys_view(
                st,
                ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&e.to_string()),
            )
            .await
        }
    }
}
