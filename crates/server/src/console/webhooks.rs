//! Delivery endpoints: webhooks and RabbitMQ sinks — list with their pending and dead
//! deliveries, add a webhook (its signing secret shown once, on this page's answer), remove
//! (after a confirmation page), redeliver one event or a time range. A thin view over
//! `dci_client::webhooks`.

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::events::EventKind;
use dci_client::webhooks::{
    CreateEndpointError, DeliveryFilter, DeliveryState, EndpointInput, Redelivery,
    RedeliverySelection, Sink, add_endpoint, redeliver, remove_endpoint,
};
use maud::html;
use secrecy::ExposeSecret;
use serde::Deserialize;
use time::OffsetDateTime;

use super::session::{ConsoleAdmin, ConsoleViewer, Ctx, see_other};
use super::view::{self, crumbs, failed, required_mark, scroll, when};
use crate::state::AppState;

/// Query of `GET /webhooks`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WebhooksQuery {
    #[serde(default)]
    notice: String,
}

/// `GET /webhooks`.
pub(crate) async fn webhooks(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Query(q): Query<WebhooksQuery>,
) -> Response {
    let notice = match q.notice.as_str() {
        "removed" => Some("Endpoint removed, with its deliveries.".to_owned()),
        n if n.starts_with("queued-") => Some(format!(
            "{} deliveries queued again: `dci serve` sends them.",
            &n["queued-".len()..]
        )),
        _ => None,
    };
    webhooks_view(&st, &ctx, StatusCode::OK, notice.as_deref(), None, None).await
}

/// What the add form sent back after an error (never the secret).
#[derive(Debug, Default)]
struct Typed {
    url: String,
    kinds: Vec<String>,
    description: String,
}

async fn webhooks_view(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
    typed: Option<&Typed>,
) -> Response {
    let endpoints = match st.ops.list_webhooks().await {
        Ok(e) => e,
        Err(e) => return failed(ctx, &e.to_string()),
    };
    let mut counts = Vec::new();
    for e in &endpoints {
        let mut per = Vec::new();
        for state in [DeliveryState::Pending, DeliveryState::Dead] {
            match st
                .ops
                .list_deliveries(&DeliveryFilter {
                    endpoint_id: Some(e.id.clone()),
                    state: Some(state),
                    limit: 1000,
                    ..DeliveryFilter::default()
                })
                .await
            {
                Ok(d) => per.push(d.len()),
                Err(err) => return failed(ctx, &err.to_string()),
            }
        }
        counts.push(per);
    }
    let empty = Typed::default();
    let typed = typed.unwrap_or(&empty);
    let body = html! {
        (crumbs(&["DCI", "Configuration", "Webhooks"]))
        h1 { "Webhooks and sinks" }
        @if let Some(n) = notice { div.notice role="status" { (n) } }
        @if let Some(e) = error { div.error-summary role="alert" id="error-summary" tabindex="-1" { (e) } }
        p.muted { "Where events go: signed POSTs (Standard Webhooks) or RabbitMQ exchanges. Secrets and broker passwords are sealed and never shown; " a href="/events" { "events" } " lists what is delivered." }
        @if endpoints.is_empty() { p.panel { "No endpoints." } } @else {
            (scroll("Endpoints", html! {
                table id="webhooks" {
                    thead { tr { th { "Endpoint" } th { "Sink" } th { "URL" } th { "Kinds" } th { "Enabled" } th { "Pending" } th { "Dead" } th { "Created" } @if ctx.can_edit() { th { "Actions" } } } }
                    tbody { @for (e, n) in endpoints.iter().zip(&counts) { tr id=(e.id) {
                        td { code { (e.id) } @if let Some(d) = &e.description { br; span.muted { (d) } } }
                        td { @match &e.sink {
                            Sink::Webhook => { "webhook" }
                            Sink::Amqp { exchange, routing_key } => {
                                "RabbitMQ: exchange " code { (if exchange.is_empty() { "(default)" } else { exchange.as_str() }) }
                                ", key " code { (routing_key.as_deref().unwrap_or("(kind)")) }
                            }
                        } }
                        td.wrap { (e.url) }
                        td { @if e.kinds.is_empty() { "every kind" } @else {
                            (e.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))
                        } }
                        td { (if e.enabled { "yes" } else { "no" }) }
                        td { (n[0]) } td { (n[1]) }
                        td { (when(Some(e.created_at))) }
                        @if ctx.can_edit() {
                            td.actions {
                                a.button.danger href={"/webhooks/" (e.id) "/remove"} { "Remove" span.visually-hidden { " " (e.id) } "…" }
                            }
                        }
                    } } }
                }
            }))
        }
        @if ctx.can_edit() {
            h2 { "Add a webhook" }
            p.muted { "RabbitMQ sinks are added with " code { "dci webhook add --sink amqp --url-stdin" } " or the API, so that the broker password never passes through a browser form." }
            form method="post" action="/webhooks" id="webhook-form" {
                (view::csrf(ctx))
                div.field {
                    label for="w-url" { "URL" (required_mark()) }
                    input type="url" id="w-url" name="url" required value=(typed.url) aria-describedby="w-url-hint";
                    span.hint id="w-url-hint" { "http:// or https://, without credentials, e.g. https://spmis.example/dci-events." }
                }
                fieldset.field {
                    legend { "Kinds (none ticked: every kind)" }
                    @for k in EventKind::ALL {
                        div {
                            input type="checkbox" id={"w-kind-" (k.as_str())} name="kind" value=(k.as_str()) checked[typed.kinds.iter().any(|t| t == k.as_str())];
                            label for={"w-kind-" (k.as_str())} { (k.as_str()) }
                        }
                    }
                }
                div.field {
                    label for="w-description" { "Description" }
                    input type="text" id="w-description" name="description" value=(typed.description);
                }
                div.actions { button type="submit" id="add-webhook" { "Add" } }
            }
            h2 { "Redeliver" }
            form method="post" action="/webhooks/redeliver" id="redeliver-form" {
                (view::csrf(ctx))
                div.field {
                    label for="r-event" { "Event id" }
                    input type="text" id="r-event" name="event_id" aria-describedby="r-hint";
                }
                div.field {
                    label for="r-since" { "Or since (RFC 3339)" }
                    input type="text" id="r-since" name="since" aria-describedby="r-hint";
                }
                div.field {
                    label for="r-until" { "Until (RFC 3339, default now)" }
                    input type="text" id="r-until" name="until";
                }
                span.hint id="r-hint" { "One event by id, or every event created in a time range, e.g. 2026-12-01T00:00:00Z; to every enabled endpoint whose filter takes them." }
                div.actions { button.secondary type="submit" id="redeliver" { "Redeliver" } }
            }
        }
    };
    view::page(status, "Webhooks", Some(ctx), "webhooks", body)
}

/// `POST /webhooks`: the add form (`kind` repeats).
pub(crate) async fn webhook_add(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if let Err(r) = ctx.check_csrf(&get("csrf")) {
        return r;
    }
    let typed = Typed {
        url: get("url"),
        kinds: form
            .iter()
            .filter(|(k, _)| k == "kind")
            .map(|(_, v)| v.clone())
            .collect(),
        description: get("description"),
    };
    let input = EndpointInput {
        url: typed.url.clone(),
        kinds: typed.kinds.clone(),
        description: Some(typed.description.clone()),
        ..EndpointInput::default()
    };
    match add_endpoint(&st.ops, &ctx.who.actor, &input).await {
        Ok((endpoint, secret)) => {
            let secret = secret
                .map(|s| s.expose().expose_secret().to_owned())
                .unwrap_or_default();
            view::page(
                StatusCode::CREATED,
                "Webhook added",
                Some(&ctx),
                "webhooks",
                html! {
                    (crumbs(&["DCI", "Configuration", "Webhooks", "Added"]))
                    h1 { "Webhook added" }
                    div.notice role="status" { "Endpoint " code { (endpoint.id) } " → " (endpoint.url) " added." }
                    div.panel {
                        p { "Its signing secret, shown this once — store it in the SPMIS to verify deliveries (any Standard Webhooks library):" }
                        pre id="webhook-secret" { (secret) }
                    }
                    a.button href="/webhooks" { "Back to webhooks" }
                },
            )
        }
        Err(CreateEndpointError::Invalid(f)) => {
            let label = match f.field {
                "kinds" => "Kinds",
                "url" => "URL",
                other => other,
            };
            webhooks_view(
                &st,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&format!("{label}: {}", f.message)),
                Some(&typed),
            )
            .await
        }
        Err(CreateEndpointError::Store(e)) => failed(&ctx, &e.to_string()),
    }
}

/// `GET /webhooks/{id}/remove`: what removing does, and a button that does it.
pub(crate) async fn webhook_remove_confirm(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    remove_confirmation(&st, &ctx, &id).await
}

async fn remove_confirmation(st: &AppState, ctx: &Ctx, id: &str) -> Response {
    let endpoint = match st.ops.get_webhook(id).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return view::message_page(
                StatusCode::NOT_FOUND,
                "No such endpoint",
                Some(ctx),
                &format!("There is no endpoint {id:?}. The webhooks page lists them."),
            );
        }
        Err(e) => return failed(ctx, &e.to_string()),
    };
    view::confirm_page(
        ctx,
        "webhooks",
        &["DCI", "Configuration", "Webhooks", "Remove"],
        &format!("Remove endpoint {}?", endpoint.id),
        html! {
            p { "Endpoint " code { (endpoint.id) } " (" (endpoint.sink.as_str()) ", " (endpoint.url) ") is removed with its secret, its pending and dead deliveries and their attempts. Events stay in the outbox." }
        },
        &format!("/webhooks/{}/remove", endpoint.id),
        "Remove the endpoint",
        "/webhooks",
    )
}

/// `POST /webhooks/{id}/remove`.
pub(crate) async fn webhook_remove(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(id): Path<String>,
    Form(form): Form<view::ConfirmForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf) {
        return r;
    }
    if !form.is_confirmed() {
        return remove_confirmation(&st, &ctx, &id).await;
    }
    match remove_endpoint(&st.ops, &ctx.who.actor, &id).await {
        Ok(true) => see_other("/webhooks?notice=removed"),
        Ok(false) => remove_confirmation(&st, &ctx, &id).await,
        Err(e) => failed(&ctx, &e.to_string()),
    }
}

/// The redeliver form: an event id, or a time range; optionally one endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct RedeliverForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    endpoint_id: String,
}

/// `POST /webhooks/redeliver`.
pub(crate) async fn webhook_redeliver(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Form(form): Form<RedeliverForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf) {
        return r;
    }
    let refuse = |msg: String| {
        let (st, ctx) = (st.clone(), ctx.clone());
        async move {
            webhooks_view(
                &st,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&msg),
                None,
            )
            .await
        }
    };
    let parse = |field: &str, v: &str| {
        OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339).map_err(
            |e| {
                format!(
                    "{field}: {v:?} is not an RFC 3339 time ({e}): use e.g. 2026-12-01T00:00:00Z"
                )
            },
        )
    };
    let events = if !form.event_id.trim().is_empty() {
        RedeliverySelection::Event(form.event_id.trim().to_owned())
    } else if !form.since.trim().is_empty() {
        let since = match parse("Since", &form.since) {
            Ok(t) => t,
            Err(m) => return refuse(m).await,
        };
        let until = if form.until.trim().is_empty() {
            OffsetDateTime::now_utc()
        } else {
            match parse("Until", &form.until) {
                Ok(t) => t,
                Err(m) => return refuse(m).await,
            }
        };
        RedeliverySelection::Range { since, until }
    } else {
        return refuse("Event id: give an event id, or a time range in Since (and Until)".into())
            .await;
    };
    if let RedeliverySelection::Event(id) = &events {
        match st.ops.get_event(id).await {
            Ok(Some(_)) => {}
            Ok(None) => return refuse(format!("Event id: there is no event {id:?}")).await,
            Err(e) => return failed(&ctx, &e.to_string()),
        }
    }
    let endpoint_id = Some(form.endpoint_id.trim().to_owned()).filter(|e| !e.is_empty());
    let selection = Redelivery {
        events,
        endpoint_id,
    };
    match redeliver(
        &st.ops,
        &ctx.who.actor,
        &selection,
        OffsetDateTime::now_utc(),
    )
    .await
    {
        Ok(n) => see_other(&format!("/webhooks?notice=queued-{n}")),
        Err(e) => failed(&ctx, &e.to_string()),
    }
}
