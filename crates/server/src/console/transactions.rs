//! Transactions: the async requests (search, subscribe, unsubscribe, txn status) with the
//! registry's ACK and the callbacks received; one page per transaction with its items drawn
//! as typed records; subscriptions; notifications with their content. A thin view over
//! `dci_client::ops`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::SourceFilter;
use dci_client::ops::{TransactionFilter, TransactionView, transaction_view};
use dci_client::registries::NotifiedEvent;
use dci_protocol::RegistryType;
use maud::{Markup, html};

use super::records::{item_view, json_block, record_view};
use super::session::ConsoleViewer;
use super::view::{self, badge, crumbs, failed, scroll, when};
use crate::state::AppState;

/// The registry type of every data source, by code (for drawing records).
async fn registry_types(st: &AppState) -> HashMap<String, RegistryType> {
    st.store
        .list_data_sources(&SourceFilter::default())
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.code, s.registry_type))
        .collect()
}

/// A link to a transaction's page.
pub(crate) fn txn_link(id: &str) -> Markup {
    html! { a href={"/transactions/" (id)} { code { (id) } } }
}

/// `GET /transactions`: async requests with their callbacks, subscriptions, notifications.
pub(crate) async fn transactions(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
) -> Response {
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
    let types = registry_types(&st).await;
    let body = html! {
        (crumbs(&["DCI", "Transactions"]))
        h1 { "Transactions" }
        p.muted { "Async requests (search, subscribe, unsubscribe, txn status), newest first, with the registry's acknowledgement and the callbacks received. Open a transaction id for its results." }
        h2 { "Async requests" }
        @if txns.is_empty() { p.panel { "No async requests yet." } } @else {
            (scroll("Async requests", html! {
                table id="transactions" {
                    thead { tr { th { "Created" } th { "Source" } th { "Operation" } th { "State" } th { "Transaction id" } th { "ACK" } th { "Callbacks" } th { "Deadline" } } }
                    tbody {
                        @for t in &txns {
                            tr {
                                td { (when(Some(t.created_at))) }
                                td { a href={"/sources/" (t.source_code)} { (t.source_code) } }
                                td { (t.kind.as_str()) }
                                td { (badge(t.state.as_str(), t.state.as_str())) }
                                td { (txn_link(&t.transaction_id)) }
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
            }))
        }
        h2 { "Subscriptions" }
        @if subs.is_empty() { p.panel { "No subscriptions." } } @else {
            (scroll("Subscriptions", html! {
                table id="subscriptions" {
                    thead { tr { th { "Source" } th { "Code" } th { "State" } th { "Event type" } th { "Transaction" } } }
                    tbody { @for s in &subs { tr {
                        td { (s.source_code) } td { code { (s.code) } } td { (s.state.as_str()) }
                        td { (s.event_type.as_deref().unwrap_or("—")) }
                        td { @if let Some(t) = &s.transaction_id { (txn_link(t)) } @else { "—" } }
                    } } }
                }
            }))
        }
        h2 { "Notifications" }
        @if notes.is_empty() { p.panel { "No notifications received." } } @else {
            @for n in &notes {
                section.panel.notification aria-label={"Notification " (n.message_id)} {
                    p {
                        (when(Some(n.received_at))) " · " (n.source_code) " · message " code { (n.message_id) }
                        " · " (n.status.as_deref().unwrap_or("—")) " · signature " (n.signature.as_str())
                    }
                    @let events = types.get(&n.source_code).map(|rt| NotifiedEvent::from_notification(*rt, &n.body)).unwrap_or_default();
                    @if events.is_empty() {
                        (json_block("Notification as received (JSON)", &n.body))
                    }
                    @if !events.is_empty() {
                        @let records: usize = events.iter().map(|e| e.records.len()).sum();
                        // Folded: one notification may carry many events.
                        details.events {
                            summary { (events.len()) " event(s) with " (records) " record(s): show them" }
                            @for (i, ev) in events.iter().enumerate() {
                                div.event {
                                    h3 { "Event " (i + 1) ": " (ev.event_type.as_deref().unwrap_or("event")) }
                                    p.muted { "Subscription " code { (ev.subscription_code.as_deref().unwrap_or("—")) }
                                        @if let Some(t) = &ev.record_type { " · record type " (t) } }
                                    @for (k, rec) in ev.records.iter().enumerate() { (record_view(rec, k + 1, 4)) }
                                }
                            }
                        }
                    }
                }
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

/// `GET /transactions/{id}`: one transaction with its ACK, callbacks, items and result.
pub(crate) async fn transaction(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Path(id): Path<String>,
) -> Response {
    let view = match transaction_view(st.ops.as_ref(), &id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return view::message_page(
                StatusCode::NOT_FOUND,
                "No such transaction",
                Some(&ctx),
                &format!(
                    "There is no transaction {id:?}: the Transactions page lists the recent ones."
                ),
            );
        }
        Err(e) => return failed(&ctx, &e.to_string()),
    };
    let registry = registry_types(&st).await.get(&view.source_code).copied();
    view::page(
        StatusCode::OK,
        "Transaction",
        Some(&ctx),
        "transactions",
        detail(&view, registry),
    )
}

fn detail(v: &TransactionView, registry: Option<RegistryType>) -> Markup {
    let n: usize = v.items.iter().map(|i| i.records.len()).sum();
    html! {
        (crumbs(&["DCI", "Transactions", &v.transaction_id]))
        h1 { "Transaction " code { (v.transaction_id) } }
        dl.record.panel id="txn" {
            dt { "Data source" } dd { a href={"/sources/" (v.source_code)} { (v.source_code) } }
            dt { "Operation" } dd { (v.kind.as_str()) }
            dt { "State" } dd id="txn-state" { (badge(v.state.as_str(), v.state.as_str())) }
            dt { "Created" } dd { (when(Some(v.created_at))) }
            dt { "Deadline" } dd { (when(Some(v.deadline))) }
            dt { "Message id" } dd { code { (v.message_id) } }
            dt { "Reference ids" } dd { @for (i, r) in v.reference_ids.iter().enumerate() { @if i > 0 { ", " } code { (r) } } }
            @if let Some(e) = &v.error {
                dt { "Registry's reason" } dd id="txn-error" { (e.code.as_deref().unwrap_or("")) " " (e.message.as_deref().unwrap_or("")) }
            }
        }
        h2 { "Acknowledgement" }
        @match &v.ack {
            None => p.panel { "No acknowledgement recorded (the request may not have reached the registry)." },
            Some(a) => dl.record.panel id="ack" {
                dt { "ACK status" } dd { (a.ack_status) }
                dt { "At" } dd { (when(Some(a.at))) }
                dt { "Correlation id" } dd { code { (a.correlation_id.as_deref().unwrap_or("—")) } }
                @if let Some(e) = &a.error {
                    dt { "Error" } dd { (e.code.as_deref().unwrap_or("")) " " (e.message.as_deref().unwrap_or("")) }
                }
            },
        }
        h2 { "Callbacks (" (v.callbacks.len()) ")" }
        @if v.callbacks.is_empty() { p.panel { "No callback received yet." } } @else {
            (scroll("Callbacks", html! {
                table id="callbacks" {
                    thead { tr { th { "Received" } th { "Action" } th { "Status" } th { "Progress" } th { "Signature" } th { "Message id" } th { "Tolerated" } } }
                    tbody { @for c in &v.callbacks { tr {
                        td { (when(Some(c.received_at))) }
                        td { (c.action) @if c.header_only { " (header only)" } }
                        td { (c.status.as_deref().unwrap_or("—")) }
                        td { @match (c.completed_count, c.total_count) { (Some(d), Some(t)) => { (d) " of " (t) }, _ => "—" } }
                        td { (c.signature.as_str()) }
                        td { code { (c.message_id) } }
                        td { @if c.tolerated.is_empty() { "—" } @else { (c.tolerated.join("; ")) } }
                    } } }
                }
            }))
        }
        h2 { "Result: " span id="txn-record-count" { (n) } " record(s)" }
        @if v.items.is_empty() && v.subscriptions.is_empty() { p.panel { "No results yet." } }
        @if let Some(rt) = registry {
            @for item in &v.items { (item_view(rt, item, 3)) }
        } @else {
            @for item in &v.items {
                (json_block(&format!("Item {}", item.reference_id), &item.raw))
                (json_block(&format!("Item {}: {} record(s)", item.reference_id, item.records.len()), &item.records))
            }
        }
        @if !v.subscriptions.is_empty() {
            h3 { "Subscriptions" }
            @for s in &v.subscriptions { (json_block("Subscription (JSON)", s)) }
        }
    }
}
