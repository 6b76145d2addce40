//! Events for the SPMIS: the outbox, newest first, and one event with its deliveries (to each
//! webhook or AMQP sink) and every attempt. A thin view over `dci_client::events`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::events::{EventFilter, EventKind};
use dci_client::webhooks::{DeliveryFilter, DeliveryState};
use maud::{Markup, html};
use serde::Deserialize;

use super::session::ConsoleViewer;
use super::view::{self, badge, crumbs, failed, scroll, when};
use crate::state::AppState;

/// How many events the list shows.
const SHOWN: usize = 200;

/// Query of `GET /events`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    kind: String,
}

/// A delivery state as a badge (the console's colours: pending, completed, failed).
pub(crate) fn delivery_badge(state: DeliveryState) -> Markup {
    let class = match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "completed",
        DeliveryState::Dead => "failed",
    };
    badge(class, state.as_str())
}

/// `GET /events`: the latest events, optionally of one kind.
pub(crate) async fn events(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Query(q): Query<EventsQuery>,
) -> Response {
    let kind: Option<EventKind> = q.kind.trim().parse().ok();
    // The outbox lists oldest first by cursor; the page shows the newest SHOWN.
    let mut all = Vec::new();
    let mut filter = EventFilter {
        kinds: kind.into_iter().collect(),
        limit: 1000,
        ..EventFilter::default()
    };
    loop {
        let page = match st.ops.list_events(&filter).await {
            Ok(p) => p,
            Err(e) => return failed(&ctx, &e.to_string()),
        };
        let Some(last) = page.last() else { break };
        filter.after = Some(last.cursor());
        let full = page.len() == 1000;
        all.extend(page);
        if all.len() > 10 * SHOWN {
            all.drain(..all.len() - SHOWN);
        }
        if !full {
            break;
        }
    }
    let shown: Vec<_> = all.iter().rev().take(SHOWN).collect();
    let body = html! {
        (crumbs(&["DCI", "Events"]))
        h1 { "Events" }
        form.filters method="get" action="/events" {
            div {
                label for="e-kind" { "Kind" }
                select id="e-kind" name="kind" {
                    option value="" selected[kind.is_none()] { "Every kind" }
                    @for k in EventKind::ALL {
                        option value=(k.as_str()) selected[kind == Some(k)] { (k.as_str()) }
                    }
                }
            }
            button.secondary type="submit" { "Filter" }
        }
        p.muted { "What the SPMIS receives, newest first (at most " (SHOWN) "). Each event is delivered to the " a href="/webhooks" { "webhooks and RabbitMQ sinks" } " whose filter takes it; its id is the webhook-id and the AMQP message id." }
        @if shown.is_empty() { p.panel { "No events." } } @else {
            (scroll("Events", html! {
                table id="events" {
                    thead { tr { th { "Event" } th { "Kind" } th { "Source" } th { "Transaction" } th { "Created" } th { "Processed" } } }
                    tbody { @for e in &shown { tr {
                        td { a href={"/events/" (e.id)} { code { (e.id) } } }
                        td { (e.kind.as_str()) }
                        td { (e.source_code.as_deref().unwrap_or("—")) }
                        td.wrap { (e.transaction_id.as_deref().unwrap_or("—")) }
                        td { (when(Some(e.created_at))) }
                        td { (when(e.processed_at)) }
                    } } }
                }
            }))
        }
    };
    view::page(StatusCode::OK, "Events", Some(&ctx), "events", body)
}

/// `GET /events/{id}`: one event, its data, its deliveries and their attempts.
pub(crate) async fn event(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Path(id): Path<String>,
) -> Response {
    let event = match st.ops.get_event(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return view::message_page(
                StatusCode::NOT_FOUND,
                "No such event",
                Some(&ctx),
                &format!("There is no event {id:?}. The events page lists them."),
            );
        }
        Err(e) => return failed(&ctx, &e.to_string()),
    };
    let deliveries = match st
        .ops
        .list_deliveries(&DeliveryFilter {
            event_id: Some(id.clone()),
            limit: 1000,
            ..DeliveryFilter::default()
        })
        .await
    {
        Ok(d) => d,
        Err(e) => return failed(&ctx, &e.to_string()),
    };
    let mut attempts = Vec::new();
    for d in &deliveries {
        match st.ops.list_attempts(&d.endpoint_id, &id).await {
            Ok(a) => attempts.push(a),
            Err(e) => return failed(&ctx, &e.to_string()),
        }
    }
    let data = serde_json::to_string_pretty(&event.payload).unwrap_or_default();
    let body = html! {
        (crumbs(&["DCI", "Events", &event.id]))
        h1 { "Event " code { (event.id) } }
        dl.panel {
            dt { "Kind" } dd { (event.kind.as_str()) }
            dt { "Source" } dd { (event.source_code.as_deref().unwrap_or("—")) }
            dt { "Transaction" } dd {
                @if let Some(t) = &event.transaction_id { a href={"/transactions/" (t)} { (t) } } @else { "—" }
            }
            dt { "Subscription" } dd { (event.subscription_code.as_deref().unwrap_or("—")) }
            dt { "Created" } dd { (when(Some(event.created_at))) }
            dt { "Processed" } dd { (when(event.processed_at)) }
        }
        details { summary { "Data (JSON)" } pre { (data) } }
        h2 { "Deliveries" }
        @if deliveries.is_empty() { p.panel { "No endpoint took this event." } } @else {
            @for (d, tries) in deliveries.iter().zip(&attempts) {
                section.panel aria-label={"Delivery to " (d.endpoint_id)} {
                    h3 { "To " a href={"/webhooks#" (d.endpoint_id)} { code { (d.endpoint_id) } } " " (delivery_badge(d.state)) }
                    p { "Attempts: " (d.attempts) "; next due: " (when(Some(d.next_attempt_at))) "; delivered: " (when(d.delivered_at))
                        @if let Some(e) = &d.last_error { "; last error: " (e) } }
                    @if ctx.can_edit() {
                        form method="post" action="/webhooks/redeliver" {
                            (view::csrf(&ctx))
                            input type="hidden" name="event_id" value=(event.id);
                            input type="hidden" name="endpoint_id" value=(d.endpoint_id);
                            button.secondary type="submit" { "Redeliver" span.visually-hidden { " to " (d.endpoint_id) } }
                        }
                    }
                    @if !tries.is_empty() {
                        (scroll(&format!("Attempts to {}", d.endpoint_id), html! {
                            table {
                                thead { tr { th { "Try" } th { "At" } th { "HTTP" } th { "ms" } th { "Error" } } }
                                tbody { @for a in tries { tr {
                                    td { (a.attempt) } td { (when(Some(a.at))) }
                                    td { (a.status.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
                                    td { (a.duration_ms) } td.wrap { (a.error.as_deref().unwrap_or("")) }
                                } } }
                            }
                        }))
                    }
                }
            }
        }
    };
    view::page(StatusCode::OK, "Event", Some(&ctx), "events", body)
}
