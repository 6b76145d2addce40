//! The audit log of outgoing calls. A thin view over the store.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::AuditFilter;
use maud::html;
use serde::Deserialize;

use super::session::ConsoleViewer;
use super::view::{self, crumbs, failed, scroll, when};
use crate::state::AppState;

/// Query of `GET /log`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogQuery {
    #[serde(default)]
    source: String,
}

/// `GET /log`: the audit log of outgoing calls.
pub(crate) async fn log(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Query(q): Query<LogQuery>,
) -> Response {
    let source = Some(q.source.trim().to_owned()).filter(|s| !s.is_empty());
    let entries = match st
        .store
        .list_audit(&AuditFilter {
            source_code: source.clone(),
            limit: 200,
            ..AuditFilter::default()
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
            (scroll("Audit log entries", html! {
            table id="audit" {
                    thead { tr { th { "At" } th { "Source" } th { "Action" } th { "Endpoint" } th { "HTTP" } th { "Outcome" } th { "ms" } th { "Try" } th { "Error" } } }
                    tbody { @for e in &entries { tr {
                        td { (when(Some(e.at))) } td { (e.source_code) } td { (e.action) } td.wrap { (e.endpoint) }
                        td { (e.http_status.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
                        td { (e.outcome.as_str()) } td { (e.duration_ms) } td { (e.attempt) }
                        td.wrap { (e.error.as_deref().unwrap_or("")) }
                    } } }
                }
            }))
        }
    };
    view::page(StatusCode::OK, "Audit log", Some(&ctx), "log", body)
}
