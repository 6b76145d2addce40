//! Search, transactions (with subscriptions and notifications), the audit log and signing keys.
//! Each page is a thin view over `dci_client::ops`, `dci_client::keys` and the store.

use std::collections::HashMap;

use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use dci_client::keys::{GenerateOptions, KeyManager, parse_algorithm};
use dci_client::ops::{SearchQuery, SearchResult, SearchSpec, TransactionFilter};
use dci_client::{AuditFilter, SourceFilter};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::session::{Ctx, Sessions, see_other};
use super::view::{self, badge, crumbs, when};
use crate::state::AppState;

/// Values of the search form (`GET /search` prefills from the query string).
#[derive(Debug, Default, Deserialize, Clone)]
pub(crate) struct SearchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    source: String,
    /// `id` or `date`.
    #[serde(default)]
    kind: String,
    #[serde(default)]
    id_type: String,
    #[serde(default)]
    id_value: String,
    #[serde(default)]
    attribute: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    page_size: String,
}

/// `GET /search`.
pub(crate) async fn search_page(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Query(form): Query<SearchForm>,
) -> Response {
    let ctx = match sessions.viewer(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    search_view(&st, &ctx, StatusCode::OK, &form, None, None).await
}

/// `POST /search`: runs one sync search (it reaches the registry, so it needs the admin role
/// and the CSRF token).
pub(crate) async fn search_run(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Form(form): Form<SearchForm>,
) -> Response {
    let ctx = match sessions.editor(&headers, &form.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let spec = match build_spec(&form) {
        Ok(s) => s,
        Err(e) => {
            return search_view(
                &st,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                Some(&e),
                None,
            )
            .await;
        }
    };
    let ops = match st.operations(&form.source).await {
        Ok(o) => o,
        Err(e) => {
            return search_view(
                &st,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
                Some(&e.to_string()),
                None,
            )
            .await;
        }
    };
    match ops.search(&SearchQuery::one(spec)).await {
        Ok(result) => search_view(&st, &ctx, StatusCode::OK, &form, None, Some(&result)).await,
        Err(e) => {
            search_view(
                &st,
                &ctx,
                StatusCode::BAD_GATEWAY,
                &form,
                Some(&e.to_string()),
                None,
            )
            .await
        }
    }
}

fn build_spec(form: &SearchForm) -> Result<SearchSpec, String> {
    if form.source.trim().is_empty() {
        return Err("Data source: choose the registry to search.".into());
    }
    let mut spec = if form.kind == "date" {
        let attr = Some(form.attribute.trim())
            .filter(|a| !a.is_empty())
            .unwrap_or("event_date");
        let from = Some(form.from.trim()).filter(|v| !v.is_empty());
        let to = Some(form.to.trim()).filter(|v| !v.is_empty());
        SearchSpec::date_range(attr, from, to).map_err(|e| e.to_string())?
    } else {
        let t = form.id_type.trim();
        let v = form.id_value.trim();
        if t.is_empty() || v.is_empty() {
            return Err(
                "Identifier: give its type (e.g. UIN) and its value (Search by identifier).".into(),
            );
        }
        SearchSpec::by_id(&format!("{t}:{v}")).map_err(|e| e.to_string())?
    };
    if !form.event_type.trim().is_empty() {
        spec = spec.event_type(form.event_type.trim());
    }
    if !form.page_size.trim().is_empty() {
        let n: u32 = form
            .page_size
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or("Page size: give a whole number from 1 to 1000, or leave it empty.")?;
        spec = spec.page(1, n);
    }
    Ok(spec)
}

async fn search_view(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    form: &SearchForm,
    error: Option<&str>,
    result: Option<&SearchResult>,
) -> Response {
    let sources = st
        .store
        .list_data_sources(&SourceFilter {
            active: Some(true),
            ..SourceFilter::default()
        })
        .await
        .unwrap_or_default();
    let kind = if form.kind == "date" { "date" } else { "id" };
    let body = html! {
        (crumbs(&["DCI", "Search"]))
        h1 { "Search a registry" }
        @if let Some(e) = error { div.error-summary role="alert" id="search-error" { (e) } }
        @if sources.is_empty() {
            p.panel { "No enabled data source: " a href="/sources/new" { "create one" } " first." }
        }
        form method="post" action="/search" id="search-form" {
            (view::csrf(ctx))
            fieldset {
                legend { "Where" }
                div.field {
                    label for="s-source" { "Data source" }
                    select id="s-source" name="source" {
                        @for s in &sources {
                            option value=(s.code) selected[form.source == s.code] {
                                (s.name) " (" (s.code) ", " (s.registry_type.as_str()) ", " (s.state.as_str()) ")"
                            }
                        }
                    }
                }
            }
            fieldset {
                legend { "Search by identifier" }
                div.field {
                    label for="s-kind-id" { "Use this search" }
                    input type="radio" id="s-kind-id" name="kind" value="id" checked[kind == "id"];
                }
                div.field {
                    label for="s-id-type" { "Identifier type" }
                    input type="text" id="s-id-type" name="id_type" value=(if form.id_type.is_empty() { "UIN" } else { &form.id_type });
                    span.hint { "CRVS: UIN, BRN, DRN, MRN." }
                }
                div.field {
                    label for="s-id-value" { "Identifier value" }
                    input type="text" id="s-id-value" name="id_value" value=(form.id_value);
                }
            }
            fieldset {
                legend { "Search by date range" }
                div.field {
                    label for="s-kind-date" { "Use this search" }
                    input type="radio" id="s-kind-date" name="kind" value="date" checked[kind == "date"];
                }
                div.field {
                    label for="s-attribute" { "Date attribute" }
                    input type="text" id="s-attribute" name="attribute" value=(if form.attribute.is_empty() { "event_date" } else { &form.attribute });
                }
                div.field {
                    label for="s-from" { "From" }
                    input type="date" id="s-from" name="from" value=(form.from);
                }
                div.field {
                    label for="s-to" { "To" }
                    input type="date" id="s-to" name="to" value=(form.to);
                }
                div.field {
                    label for="s-event" { "Event type" }
                    input type="text" id="s-event" name="event_type" value=(form.event_type);
                    span.hint { "CRVS: LiveBirth, Death, Marriage, Divorce (optional)." }
                }
                div.field {
                    label for="s-page-size" { "Page size" }
                    input type="number" id="s-page-size" name="page_size" min="1" max="1000" value=(form.page_size);
                }
            }
            @if ctx.can_edit() {
                div.actions { button type="submit" id="run-search" { "Search" } }
            } @else {
                p.muted { "Read-only logins cannot run searches." }
            }
        }
        @if let Some(r) = result { (result_view(r)) }
    };
    view::page(status, "Search", Some(ctx), "search", body)
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn result_view(r: &SearchResult) -> Markup {
    let n: usize = r.items.iter().map(|i| i.records.len()).sum();
    html! {
        section id="results" aria-labelledby="results-h" {
            h2 id="results-h" { "Results: " span id="record-count" { (n) } " record(s)" }
            p.muted { "Transaction " code { (r.transaction_id) }
                @if let Some(c) = &r.correlation_id { " · correlation " code { (c) } }
                " · signature " (r.signature.as_str()) }
            @for item in &r.items {
                div.panel data-status=(item.status) {
                    p {
                        "Item " code { (item.reference_id) } ": " (badge(&item.status.to_ascii_lowercase(), &item.status))
                        @if let Some(t) = &item.record_type { " · record type " (t) }
                        @if let Some(t) = &item.event_type { " · event type " (t) }
                        @if let Some(p) = &item.pagination {
                            " · page " (p.page_number) " (" (p.page_size) " per page) of " (p.total_count) " matching"
                        }
                    }
                    @if let Some(reason) = &item.reason {
                        p { "Registry reason: " (reason.code.as_deref().unwrap_or("")) " " (reason.message.as_deref().unwrap_or("")) }
                    }
                    @for rec in &item.records {
                        div.panel.record {
                            @match rec {
                                Value::Object(m) => dl.record {
                                    @for (k, v) in m {
                                        dt { (k) }
                                        dd { @if v.is_object() || v.is_array() { pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } } @else { (scalar(v)) } }
                                    }
                                },
                                other => pre { (serde_json::to_string_pretty(other).unwrap_or_default()) },
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /transactions`: async requests with their callbacks, subscriptions, notifications.
pub(crate) async fn transactions(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
) -> Response {
    let ctx = match sessions.viewer(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let txns = st
        .ops
        .list_transactions(&TransactionFilter {
            limit: 50,
            ..TransactionFilter::default()
        })
        .await;
    let txns = match txns {
        Ok(t) => t,
        Err(e) => return failed(&ctx, &e.to_string()),
    };
    let mut callbacks = HashMap::new();
    for t in &txns {
        if let Ok(cbs) = st.ops.callbacks_for(&t.transaction_id).await {
            callbacks.insert(t.transaction_id.clone(), cbs);
        }
    }
    let subs = dci_client::ops::list_subscriptions(st.ops.as_ref(), None)
        .await
        .unwrap_or_default();
    let notes = dci_client::ops::list_notifications(st.ops.as_ref(), None, 50)
        .await
        .unwrap_or_default();
    let body = html! {
        (crumbs(&["DCI", "Transactions"]))
        h1 { "Transactions" }
        p.muted { "Async requests (search, subscribe, unsubscribe, txn status), newest first, with the registry's acknowledgement and the callbacks received." }
        @if txns.is_empty() { p.panel { "No async requests yet." } } @else {
            table id="transactions" {
                thead { tr { th { "Created" } th { "Source" } th { "Operation" } th { "State" } th { "Transaction id" } th { "ACK" } th { "Callbacks" } th { "Deadline" } } }
                tbody {
                    @for t in &txns {
                        tr {
                            td { (when(Some(t.created_at))) }
                            td { a href={"/sources/" (t.source_code)} { (t.source_code) } }
                            td { (t.kind.as_str()) }
                            td { (badge(t.state.as_str(), t.state.as_str())) }
                            td { code { (t.transaction_id) } }
                            td { @if let Some(a) = &t.ack { (a.ack_status) @if let Some(m) = &a.error_message { ": " (m) } } @else { "—" } }
                            td {
                                @match callbacks.get(&t.transaction_id) {
                                    Some(cbs) if !cbs.is_empty() => {
                                        @for c in cbs {
                                            (c.action) " " (c.status.as_deref().unwrap_or("")) " (" (when(Some(c.received_at))) ", signature " (c.signature.as_str()) ")" br;
                                        }
                                    },
                                    _ => "none",
                                }
                            }
                            td { (when(Some(t.deadline))) }
                        }
                    }
                }
            }
        }
        h2 { "Subscriptions" }
        @if subs.is_empty() { p.panel { "No subscriptions." } } @else {
            table id="subscriptions" {
                thead { tr { th { "Source" } th { "Code" } th { "State" } th { "Event type" } th { "Transaction" } } }
                tbody { @for s in &subs { tr {
                    td { (s.source_code) } td { code { (s.code) } } td { (s.state.as_str()) }
                    td { (s.event_type.as_deref().unwrap_or("—")) } td { code { (s.transaction_id.as_deref().unwrap_or("—")) } }
                } } }
            }
        }
        h2 { "Notifications" }
        @if notes.is_empty() { p.panel { "No notifications received." } } @else {
            table id="notifications" {
                thead { tr { th { "Received" } th { "Source" } th { "Message id" } th { "Status" } th { "Signature" } } }
                tbody { @for n in &notes { tr {
                    td { (when(Some(n.received_at))) } td { (n.source_code) } td { code { (n.message_id) } }
                    td { (n.status.as_deref().unwrap_or("—")) } td { (n.signature.as_str()) }
                } } }
            }
        }
    };
    view::page(
        StatusCode::OK,
        "Transactions",
        Some(&ctx),
        "transactions",
        body,
    )
}

fn failed(ctx: &Ctx, e: &str) -> Response {
    tracing::error!(error = %e, "console page failed");
    view::message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something failed",
        Some(ctx),
        e,
    )
}

/// Query of `GET /log`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogQuery {
    #[serde(default)]
    source: String,
}

/// `GET /log`: the audit log of outgoing calls.
pub(crate) async fn log(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Response {
    let ctx = match sessions.viewer(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let source = Some(q.source.trim().to_owned()).filter(|s| !s.is_empty());
    let entries = match st
        .store
        .list_audit(&AuditFilter {
            source_code: source.clone(),
            limit: 200,
        })
        .await
    {
        Ok(e) => e,
        Err(e) => return failed(&ctx, &e.to_string()),
    };
    let body = html! {
        (crumbs(&["DCI", "Audit log"]))
        h1 { "Audit log" }
        form.filters method="get" action="/log" {
            div {
                label for="l-source" { "Data source code" }
                input type="text" id="l-source" name="source" value=(source.as_deref().unwrap_or(""));
            }
            button.secondary type="submit" { "Filter" }
        }
        p.muted { "One entry per attempt, newest first (no payloads, identifiers or credentials)." }
        @if entries.is_empty() { p.panel { "No entries." } } @else {
            table id="audit" {
                thead { tr { th { "At" } th { "Source" } th { "Action" } th { "Endpoint" } th { "HTTP" } th { "Outcome" } th { "ms" } th { "Try" } th { "Error" } } }
                tbody { @for e in &entries { tr {
                    td { (when(Some(e.at))) } td { (e.source_code) } td { (e.action) } td { (e.endpoint) }
                    td { (e.http_status.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
                    td { (e.outcome.as_str()) } td { (e.duration_ms) } td { (e.attempt) }
                    td { (e.error.as_deref().unwrap_or("")) }
                } } }
            }
        }
    };
    view::page(StatusCode::OK, "Audit log", Some(&ctx), "log", body)
}

/// Query of `GET /keys`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct KeysQuery {
    #[serde(default)]
    notice: String,
}

/// `GET /keys`: our signing keys (public part only).
pub(crate) async fn keys(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Query(q): Query<KeysQuery>,
) -> Response {
    let ctx = match sessions.viewer(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
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
        @if let Some(e) = error { div.error-summary role="alert" { (e) } }
        p.muted { "Keys that sign our requests; active keys are published at " a href="/.well-known/jwks.json" { "/.well-known/jwks.json" } ". Private keys are sealed in the database and never shown." }
        @if keys.is_empty() { p.panel { "No signing keys." } } @else {
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
                                    (view::csrf(ctx)) button type="submit" { "Activate" }
                                }
                            }
                            @if k.status.as_str() != "revoked" {
                                form method="post" action={"/keys/" (k.key_id) "/revoke"} {
                                    (view::csrf(ctx)) button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                } } }
            }
        }
        @if ctx.can_edit() {
            h2 { "Generate a key" }
            form method="post" action="/keys" id="key-form" {
                (view::csrf(ctx))
                div.field {
                    label for="k-id" { "Key id" }
                    input type="text" id="k-id" name="key_id" required;
                    span.hint { "1-64 letters, digits, '-', '_' or '.', e.g. spmis-2026-11." }
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
                div.actions { button type="submit" { "Generate" } }
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
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    let ctx = match sessions.editor(&headers, &form.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
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
        Ok(_) => see_other("/keys?notice=generated"),
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

/// The activate/revoke forms.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /keys/{id}/activate`.
pub(crate) async fn key_activate(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    change_key(
        &st,
        &sessions,
        &headers,
        &id,
        &form.csrf,
        KeyChange::Activate,
    )
    .await
}

/// `POST /keys/{id}/revoke`.
pub(crate) async fn key_revoke(
    State(st): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    change_key(&st, &sessions, &headers, &id, &form.csrf, KeyChange::Revoke).await
}

/// A key's status change from the keys page.
#[derive(Debug, Clone, Copy)]
enum KeyChange {
    Activate,
    Revoke,
}

/// Checks the editor's CSRF token, applies the change, and redirects with a notice (or shows
/// the keys page with the error).
async fn change_key(
    st: &AppState,
    sessions: &Sessions,
    headers: &HeaderMap,
    id: &str,
    csrf: &str,
    change: KeyChange,
) -> Response {
    let ctx = match sessions.editor(headers, csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let keys = KeyManager::new(st.ops.clone());
    let (outcome, notice) = match change {
        KeyChange::Activate => (keys.activate(id).await, "activated"),
        KeyChange::Revoke => (keys.revoke(id).await, "revoked"),
    };
    match outcome {
        Ok(_) => see_other(&format!("/keys?notice={notice}")),
        Err(e) => {
            keys_view(
                st,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&e.to_string()),
            )
            .await
        }
    }
}
