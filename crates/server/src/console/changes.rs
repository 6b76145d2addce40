//! The change audit: who changed which data source, webhook, key, user or token, when, and
//! which fields (names only, never values). A thin view over the store.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::users::{ChangeFilter, ChangeTarget};
use maud::html;
use serde::Deserialize;

use super::session::ConsoleViewer;
use super::view::{self, crumbs, failed, scroll, when};
use crate::state::AppState;

/// Query of `GET /changes`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChangesQuery {
    #[serde(default)]
    target: String,
}

const TARGETS: [(&str, &str); 7] = [
    ("", "Everything"),
    ("data_source", "Data sources"),
    ("webhook", "Webhooks"),
    ("signing_key", "Signing keys"),
    ("user", "Users"),
    ("api_token", "API tokens"),
    ("schedule", "Schedules"),
];

/// `GET /changes`: the newest 200 configuration changes.
pub(crate) async fn changes(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Query(q): Query<ChangesQuery>,
) -> Response {
    let target = ChangeTarget::parse(q.target.trim());
    let changes = match st
        .users()
        .store()
        .list_changes(&ChangeFilter {
            target,
            limit: 200,
            ..ChangeFilter::default()
        })
        .await
    {
        Ok(c) => c,
        Err(e) => return failed(&ctx, &e.to_string()),
    };
    let chosen = target.map_or("", |t| t.as_str());
    let body = html! {
        (crumbs(&["DCI", "Changes"]))
        h1 { "Changes" }
        form.filters method="get" action="/changes" {
            div {
                label for="c-target" { "What changed" }
                select id="c-target" name="target" {
                    @for (value, label) in TARGETS {
                        option value=(value) selected[value == chosen] { (label) }
                    }
                }
            }
            button.secondary type="submit" { "Filter" }
        }
        p.muted { "Who changed what and when, newest first. Fields are named, never shown: a changed secret appears as its field name only. Export by time range with "
            code { "dci audit export --log changes" } "." }
        @if changes.is_empty() { p.panel { "No changes recorded." } } @else {
            (scroll("Configuration changes", html! {
                table id="changes" {
                    thead { tr { th { "At" } th { "Who" } th { "What" } th { "Which" } th { "Action" } th { "Fields" } } }
                    tbody { @for c in &changes { tr {
                        td { (when(Some(c.at))) } td { (c.actor) } td { (c.target.as_str()) }
                        td.wrap { (c.target_id) } td { (c.action) } td.wrap { (c.fields.join(", ")) }
                    } } }
                }
            }))
        }
    };
    view::page(StatusCode::OK, "Changes", Some(&ctx), "changes", body)
}
