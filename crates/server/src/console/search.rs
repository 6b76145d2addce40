//! Search: one sync search against a data source, its results drawn as the registry's typed
//! records ([`super::records`]). A thin view over `dci_client::ops`.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::ops::{SearchQuery, SearchResult, SearchSpec};
use dci_client::registries::{IdentifierType, identifier_types};
use dci_client::{DataSource, SourceFilter, SourceState};
use dci_protocol::RegistryType;
use maud::{Markup, html};
use serde::Deserialize;

use super::records::item_view;
use super::session::Ctx;
use super::session::{ConsoleOperator, ConsoleViewer};
use super::view::{self, crumbs, required_mark};
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
    ConsoleViewer(ctx): ConsoleViewer,
    Query(form): Query<SearchForm>,
) -> Response {
    search_view(&st, &ctx, StatusCode::OK, &form, None, None).await
}

/// `POST /search`: runs one sync search (it reaches the registry, so it needs the admin role
/// and the CSRF token).
pub(crate) async fn search_run(
    State(st): State<AppState>,
    ConsoleOperator(ctx): ConsoleOperator,
    Form(form): Form<SearchForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf) {
        return r;
    }
    let refuse = |status, e: String| {
        let (st, ctx, form) = (&st, &ctx, &form);
        async move { search_view(st, ctx, status, form, Some(&e), None).await }
    };
    let spec = match build_spec(&form) {
        Ok(s) => s,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, e).await,
    };
    let ops = match st.operations(&form.source).await {
        Ok(o) => o,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).await,
    };
    let registry = ops.source().registry_type;
    match ops.search(&SearchQuery::one(spec)).await {
        Ok(result) => {
            search_view(
                &st,
                &ctx,
                StatusCode::OK,
                &form,
                None,
                Some((registry, &result)),
            )
            .await
        }
        Err(e) => refuse(StatusCode::BAD_GATEWAY, e.to_string()).await,
    }
}

/// Every identifier type the registries are searched by, without repeats, in registry order.
fn all_identifier_types() -> Vec<IdentifierType> {
    let mut out: Vec<IdentifierType> = Vec::new();
    for rt in RegistryType::ALL {
        for t in identifier_types(rt) {
            if !out.iter().any(|o| o.code == t.code) {
                out.push(*t);
            }
        }
    }
    out
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
        let known = all_identifier_types();
        if !known.iter().any(|k| k.code.eq_ignore_ascii_case(t)) {
            let codes: Vec<&str> = known.iter().map(|k| k.code).collect();
            return Err(format!(
                "Identifier type: choose one of {}.",
                codes.join(", ")
            ));
        }
        if v.is_empty() {
            return Err(
                "Identifier value: give the value of the identifier (e.g. the UIN itself).".into(),
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

/// The source the form preselects: the one asked for, else the first active one, else the
/// first one (never one in `error` while an active one exists).
fn default_source<'a>(sources: &'a [DataSource], asked: &str) -> Option<&'a str> {
    sources
        .iter()
        .find(|s| s.code == asked)
        .or_else(|| sources.iter().find(|s| s.state == SourceState::Active))
        .or_else(|| sources.iter().find(|s| s.state != SourceState::Error))
        .or_else(|| sources.first())
        .map(|s| s.code.as_str())
}

async fn search_view(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    form: &SearchForm,
    error: Option<&str>,
    result: Option<(RegistryType, &SearchResult)>,
) -> Response {
    let sources = st
        .store
        .list_data_sources(&SourceFilter {
            active: Some(true),
            ..SourceFilter::default()
        })
        .await
        .unwrap_or_default();
    let chosen = default_source(&sources, &form.source);
    let kind = if form.kind == "date" { "date" } else { "id" };
    let id_type = if form.id_type.is_empty() {
        "UIN"
    } else {
        &form.id_type
    };
    let body = html! {
        (crumbs(&["DCI", "Search"]))
        h1 { "Search a registry" }
        @if let Some(e) = error { div.error-summary role="alert" id="search-error" tabindex="-1" { (e) } }
        @if sources.is_empty() {
            p.panel { "No enabled data source: " a href="/sources/new" { "create one" } " first." }
        }
        @if !ctx.can_operate() {
            // A search reaches the registry: viewers get no form that looks usable.
            p.notice id="search-readonly" { "Read-only logins cannot run searches: sign in with the admin token to search." }
        } @else {
        form method="post" action="/search" id="search-form" {
            (view::csrf(ctx))
            fieldset {
                legend { "Where" }
                div.field {
                    label for="s-source" { "Data source" (required_mark()) }
                    select id="s-source" name="source" aria-required="true" {
                        @for s in &sources {
                            option value=(s.code) selected[chosen == Some(s.code.as_str())] {
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
                    label for="s-id-type" { "Identifier type" (required_mark()) }
                    select id="s-id-type" name="id_type" aria-required="true" {
                        @for t in all_identifier_types() {
                            option value=(t.code) selected[t.code.eq_ignore_ascii_case(id_type)] { (t.code) " — " (t.label) }
                        }
                    }
                }
                div.field {
                    label for="s-id-value" { "Identifier value" (required_mark()) }
                    input type="text" id="s-id-value" name="id_value" value=(form.id_value) aria-required="true";
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
                    input type="text" id="s-event" name="event_type" value=(form.event_type) aria-describedby="s-event-hint";
                    span.hint id="s-event-hint" { "CRVS: LiveBirth, Death, Marriage, Divorce (optional)." }
                }
                div.field {
                    label for="s-page-size" { "Page size" }
                    input type="number" id="s-page-size" name="page_size" min="1" max="1000" value=(form.page_size);
                }
            }
            div.actions.sticky { button type="submit" id="run-search" { "Search" } }
        }
        }
        @if let Some((registry, r)) = result { (result_view(registry, r)) }
    };
    view::page(status, "Search", Some(ctx), "search", body)
}

fn result_view(registry: RegistryType, r: &SearchResult) -> Markup {
    let n: usize = r.items.iter().map(|i| i.records.len()).sum();
    html! {
        section id="results" aria-labelledby="results-h" {
            h2 id="results-h" tabindex="-1" { "Results: " span id="record-count" { (n) } " record(s)" }
            p.muted { "Transaction " code { (r.transaction_id) }
                @if let Some(c) = &r.correlation_id { " · correlation " code { (c) } }
                " · signature " (r.signature.as_str()) }
            @for item in &r.items { (item_view(registry, item, 3)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_identifier_type_is_refused_with_the_valid_ones() {
        let form = SearchForm {
            source: "s".into(),
            id_type: "PASSPORT".into(),
            id_value: "1".into(),
            ..SearchForm::default()
        };
        let e = build_spec(&form).unwrap_err();
        assert!(e.contains("UIN") && e.contains("BRN"), "{e}");
    }
}
