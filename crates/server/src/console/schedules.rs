//! Schedules on the Jobs page: the table of schedules with their latest runs, the form "Add a
//! schedule", and removal after a confirmation page. A thin view over
//! `dci_client::jobs::{add_schedule, remove_schedule}`, the functions `POST /api/v1/schedules`
//! and `DELETE /api/v1/schedules/{id}` call (so the change audit records them the same way).
//!
//! Viewing needs a login (viewer); adding and removing need the admin role, as in the API, and
//! the form's CSRF token. A refused form is shown again with what was typed and each error
//! beside its field, named by its label; nothing is stored.

use std::collections::HashMap;

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::jobs::{
    AddScheduleError, Schedule, ScheduleInput, ScheduleRun, add_schedule, remove_schedule,
};
use dci_client::{DataSource, LimitSettings, ValidationErrors};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;

use super::jobs;
use super::session::{ConsoleAdmin, Ctx, see_other};
use super::view::{self, badge, failed, required_mark, scroll, when};
use crate::state::AppState;

/// The add form's fields in the order shown: (form field name, label). The names are the
/// [`ScheduleInput`] fields, so the library's errors name them.
const FIELDS: &[(&str, &str)] = &[
    ("name", "Name"),
    ("source_code", "Data source"),
    ("cron", "Cron expression"),
    ("input", "Input"),
    ("input_format", "Input format"),
    ("output_format", "Results format"),
    ("batch_size", "Identifiers per envelope"),
    ("record_type", "Record type"),
    ("catch_up", "Catch-up"),
    ("enabled", "Enabled"),
];

fn label_of(name: &str) -> &str {
    FIELDS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(name, |(_, l)| l)
}

/// Field errors as (form field name, message), in the form's order.
pub(super) type FieldErrs = Vec<(&'static str, String)>;

fn field_errs(errs: &ValidationErrors) -> FieldErrs {
    let mut out: FieldErrs = errs
        .errors()
        .iter()
        .map(|e| (e.field, e.message.clone()))
        .collect();
    out.sort_by_key(|(f, _)| FIELDS.iter().position(|(n, _)| n == f));
    out
}

/// The add form as sent (and as shown again after an error: every value but the CSRF token).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    source_code: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    input: String,
    #[serde(default)]
    input_format: String,
    #[serde(default)]
    output_format: String,
    #[serde(default)]
    batch_size: String,
    #[serde(default)]
    record_type: String,
    #[serde(default)]
    catch_up: String,
    /// The checkbox: present when ticked.
    #[serde(default)]
    enabled: Option<String>,
}

impl AddForm {
    /// A new form: enabled ticked, the rest empty or the library's defaults.
    fn fresh() -> AddForm {
        AddForm {
            enabled: Some("on".into()),
            ..AddForm::default()
        }
    }

    /// What the library checks; an identifiers-per-envelope that is not a number is an error
    /// of its own, reported with the library's errors of the other fields.
    fn input(&self) -> Result<ScheduleInput, ValidationErrors> {
        let optional = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        let batch = optional(&self.batch_size).map(|b| b.parse::<u32>());
        let input = ScheduleInput {
            name: self.name.clone(),
            source_code: self.source_code.clone(),
            cron: self.cron.clone(),
            input: self.input.clone(),
            input_format: optional(&self.input_format),
            output_format: optional(&self.output_format),
            batch_size: batch.clone().and_then(Result::ok),
            record_type: optional(&self.record_type),
            catch_up: optional(&self.catch_up),
            enabled: Some(self.enabled.is_some()),
        };
        if let Some(Err(_)) = batch {
            let mut errs = input
                .validate(OffsetDateTime::now_utc())
                .err()
                .unwrap_or_default();
            errs.push(
                "batch_size",
                format!(
                    "must be a whole number from 1 to {}: or leave it empty for the source's maximum batch size",
                    LimitSettings::MAX_BATCH_SIZE
                ),
            );
            return Err(errs);
        }
        Ok(input)
    }
}

/// What the Jobs page shows in the add form: a fresh form, or a refused one with its errors.
pub(super) struct Shown<'a> {
    form: &'a AddForm,
    errs: &'a FieldErrs,
}

/// The notice of `GET /jobs?notice=…` after an add or a removal.
pub(super) fn notice_text(n: &str) -> Option<&'static str> {
    match n {
        "schedule-added" => Some(
            "Schedule added: its first job starts at the next occurrence of its cron expression.",
        ),
        "schedule-removed" => {
            Some("Schedule removed, with its runs' history. Jobs it started are still listed.")
        }
        _ => None,
    }
}

/// The Schedules part of the Jobs page: the table (with a Remove link per schedule for an
/// admin) and, for an admin, the add form (`shown`: a refused form, else a fresh one).
pub(super) async fn section(
    st: &AppState,
    ctx: &Ctx,
    sources: &[DataSource],
    shown: Option<Shown<'_>>,
) -> Result<Markup, String> {
    let schedules = st.ops.list_schedules().await.map_err(|e| e.to_string())?;
    let mut last_runs = Vec::with_capacity(schedules.len());
    for s in &schedules {
        last_runs.push(
            st.ops
                .list_schedule_runs(&s.id, 3)
                .await
                .unwrap_or_default(),
        );
    }
    let fresh = AddForm::fresh();
    let no_errs = FieldErrs::new();
    let shown = shown.unwrap_or(Shown {
        form: &fresh,
        errs: &no_errs,
    });
    Ok(html! {
        h2 id="schedules-h" { "Schedules" }
        p.muted { "Jobs run at each occurrence of a cron expression (UTC). With several servers on one database exactly one runs each occurrence. " code { "dci schedule add" } " and POST /api/v1/schedules add them too." }
        (table(ctx, &schedules, &last_runs))
        @if ctx.can_edit() { (add_form(ctx, sources, &shown)) }
    })
}

fn table(ctx: &Ctx, schedules: &[Schedule], last_runs: &[Vec<ScheduleRun>]) -> Markup {
    html! {
        @if schedules.is_empty() { p.panel { "No schedules." } } @else {
            (scroll("Schedules", html! {
                table id="schedules" {
                    thead { tr { th { "Name" } th { "Source" } th { "Cron" } th { "Input" } th { "Catch-up" } th { "Latest runs" } @if ctx.can_edit() { th { "Actions" } } } }
                    tbody { @for (s, runs) in schedules.iter().zip(last_runs) { tr {
                        td { (s.name) @if !s.enabled { " " (badge("inactive", "disabled")) } }
                        td { (s.source_code) }
                        td { code { (s.cron) } }
                        td.wrap { code { (s.input) } }
                        td { (s.catch_up.as_str()) }
                        td {
                            @if runs.is_empty() { "none yet" }
                            @for r in runs {
                                (when(Some(r.occurrence_at))) " " (badge(r.state.as_str(), r.state.as_str()))
                                @if let Some(why) = &r.reason { " " span.muted { (why) } }
                                br;
                            }
                        }
                        @if ctx.can_edit() {
                            td.actions {
                                a.button.danger href={"/schedules/" (s.id) "/remove"} { "Remove" span.visually-hidden { " schedule " (s.name) } "…" }
                            }
                        }
                    } } }
                }
            }))
        }
    }
}

/// One labelled field: its control gets `aria-describedby` (hint, error) and `aria-invalid`.
fn field(
    name: &str,
    required: bool,
    hint: Option<Markup>,
    errs: &HashMap<&str, Vec<&str>>,
    control: impl FnOnce(&str, Option<&str>, Option<&str>) -> Markup,
) -> Markup {
    let id = format!("s-{name}");
    let hint_id = format!("{id}-hint");
    let err_id = format!("{id}-err");
    let e = errs.get(name);
    let described: Vec<&str> = [
        hint.is_some().then_some(hint_id.as_str()),
        e.is_some().then_some(err_id.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let described = (!described.is_empty()).then(|| described.join(" "));
    let label = label_of(name);
    html! {
        div.field {
            label for=(id) { (label) @if required { (required_mark()) } }
            (control(&id, described.as_deref(), e.map(|_| "true")))
            @if let Some(h) = hint { span.hint id=(hint_id) { (h) } }
            @if let Some(e) = e {
                span.err id=(err_id) { @for m in e { span.visually-hidden { "Error: " } (label) ": " (m) br; } }
            }
        }
    }
}

fn add_form(ctx: &Ctx, sources: &[DataSource], shown: &Shown<'_>) -> Markup {
    let f = shown.form;
    let mut by_field: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, m) in shown.errs {
        by_field.entry(name).or_default().push(m);
    }
    let errs = &by_field;
    let known = sources.iter().any(|s| s.code == f.source_code);
    let batch_max = LimitSettings::MAX_BATCH_SIZE.to_string();
    html! {
        h2 id="add-schedule-h" { "Add a schedule" }
        @if sources.is_empty() { p.panel { "Add a data source first." } } @else {
            @if !shown.errs.is_empty() {
                // Focused by the script after a failed submit.
                div.error-summary role="alert" id="error-summary" tabindex="-1" aria-labelledby="error-summary-h" {
                    h3 id="error-summary-h" style="font-size:1rem;margin:0" { "The schedule was not added: fix " (shown.errs.len()) " field(s)." }
                    ul { @for (name, m) in shown.errs { li { a href={"#s-" (name)} { (label_of(name)) } ": " (m) } } }
                }
            }
            form method="post" action="/schedules" id="schedule-form" aria-labelledby="add-schedule-h" {
                (view::csrf(ctx))
                (field("name", true, Some(html! { "For people, e.g. monthly death check." }), errs, |id, d, inv| html! {
                    input type="text" id=(id) name="name" required value=(f.name) aria-describedby=[d] aria-invalid=[inv];
                }))
                (field("source_code", true, None, errs, |id, d, inv| html! {
                    select id=(id) name="source_code" required aria-describedby=[d] aria-invalid=[inv] {
                        option value="" selected[f.source_code.is_empty()] { "Choose a data source" }
                        @for s in sources { option value=(s.code) selected[s.code == f.source_code] { (s.code) " (" (s.name) ")" } }
                        // A code that is not a source stays visible (and is refused) rather
                        // than silently replaced.
                        @if !known && !f.source_code.is_empty() {
                            option value=(f.source_code) selected { (f.source_code) " (no such data source)" }
                        }
                    }
                }))
                (field("cron", true, Some(html! {
                    "In UTC. Five fields: minute hour day-of-month month day-of-week, e.g. " code { "0 2 1 * *" } " (02:00 on the 1st of each month); six fields put seconds first, e.g. " code { "30 0 2 * * *" } "; a seventh is the year. " code { "@daily" } ", " code { "@weekly" } ", " code { "@monthly" } " also work."
                }), errs, |id, d, inv| html! {
                    input type="text" id=(id) name="cron" required value=(f.cron) spellcheck="false" aria-describedby=[d] aria-invalid=[inv];
                }))
                (field("input", true, Some(html! {
                    "An absolute path of a file this server can read (read again at each run), or an http(s):// URL the SPMIS serves (fetched at each run; no user:password@)."
                }), errs, |id, d, inv| html! {
                    input type="text" id=(id) name="input" required value=(f.input) spellcheck="false" aria-describedby=[d] aria-invalid=[inv];
                }))
                (field("input_format", false, None, errs, |id, d, inv| html! {
                    select id=(id) name="input_format" aria-describedby=[d] aria-invalid=[inv] {
                        @for (v, l) in [("", "From the input's extension (else lines)"), ("csv", "CSV (id_type,id_value columns)"), ("jsonl", "JSONL (objects with id_type and id_value)"), ("lines", "Lines (TYPE:VALUE)")] {
                            option value=(v) selected[f.input_format == v] { (l) }
                        }
                    }
                }))
                (field("output_format", false, None, errs, |id, d, inv| html! {
                    select id=(id) name="output_format" aria-describedby=[d] aria-invalid=[inv] {
                        @for (v, l) in [("jsonl", "JSONL"), ("csv", "CSV")] {
                            option value=(v) selected[f.output_format == v] { (l) }
                        }
                    }
                }))
                (field("batch_size", false, Some(html! { "Leave empty for the source's maximum batch size." }), errs, |id, d, inv| html! {
                    input type="number" id=(id) name="batch_size" min="1" max=(batch_max) value=(f.batch_size) aria-describedby=[d] aria-invalid=[inv];
                }))
                (field("record_type", false, Some(html! { "The reg_record_type of every search, if the registry needs one, e.g. Person." }), errs, |id, d, inv| html! {
                    input type="text" id=(id) name="record_type" value=(f.record_type) aria-describedby=[d] aria-invalid=[inv];
                }))
                (field("catch_up", false, Some(html! { "What happens to occurrences missed while no server ran." }), errs, |id, d, inv| html! {
                    select id=(id) name="catch_up" aria-describedby=[d] aria-invalid=[inv] {
                        @for (v, l) in [("latest", "latest: run the latest missed occurrence once"), ("none", "none: run nothing late, record it as missed")] {
                            option value=(v) selected[f.catch_up == v] { (l) }
                        }
                    }
                }))
                (field("enabled", false, None, errs, |id, d, _| html! {
                    input type="checkbox" id=(id) name="enabled" checked[f.enabled.is_some()] aria-describedby=[d];
                }))
                div.actions { button type="submit" id="add-schedule" { "Add schedule" } }
            }
        }
    }
}

/// `POST /schedules`: the add form.
pub(crate) async fn schedule_add(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Form(form): Form<AddForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf) {
        return r;
    }
    let refused = |errs: FieldErrs| {
        let (st, ctx) = (st.clone(), ctx.clone());
        let form = &form;
        async move {
            let shown = Shown { form, errs: &errs };
            jobs::page_with(
                &st,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                None,
                Some(shown),
            )
            .await
        }
    };
    let input = match form.input() {
        Ok(i) => i,
        Err(errs) => return refused(field_errs(&errs)).await,
    };
    match add_schedule(&st.engine, &ctx.who.actor, input).await {
        Ok(_) => see_other("/jobs?notice=schedule-added"),
        Err(AddScheduleError::Invalid(errs)) => refused(field_errs(&errs)).await,
        Err(e) => failed(&ctx, &e.to_string()),
    }
}

/// `GET /schedules/{id}/remove`: what removing does, and a button that does it.
pub(crate) async fn schedule_remove_confirm(
    State(st): State<AppState>,
    ConsoleAdmin(ctx): ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    remove_confirmation(&st, &ctx, &id).await
}

async fn remove_confirmation(st: &AppState, ctx: &Ctx, id: &str) -> Response {
    let s = match st.ops.get_schedule(id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return view::message_page(
                StatusCode::NOT_FOUND,
                "No such schedule",
                Some(ctx),
                &format!("There is no schedule {id:?}: the Jobs page lists them."),
            );
        }
        Err(e) => return failed(ctx, &e.to_string()),
    };
    view::confirm_page(
        ctx,
        "jobs",
        &["DCI", "Jobs", "Schedules", "Remove"],
        &format!("Remove schedule {}?", s.name),
        html! {
            p { "Schedule " strong { (s.name) } " (" code { (s.cron) } " on " (s.source_code) ", input " code { (s.input) } ") is removed with its runs' history: no job starts for it again. Jobs it already started are not affected and stay in the jobs list." }
        },
        &format!("/schedules/{}/remove", s.id),
        "Remove the schedule",
        "/jobs",
    )
}

/// `POST /schedules/{id}/remove`.
pub(crate) async fn schedule_remove(
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
    match remove_schedule(&st.engine, &ctx.who.actor, &id).await {
        Ok(true) => see_other("/jobs?notice=schedule-removed"),
        Ok(false) => remove_confirmation(&st, &ctx, &id).await,
        Err(e) => failed(&ctx, &e.to_string()),
    }
}
