//! Jobs: upload an input file for a bulk search on a data source (streamed to the server's jobs
//! directory, run in the background), follow each job's progress, download its results,
//! cancel it. A thin view over `dci_client::jobs`, like `/api/v1/jobs`. The page also shows
//! the schedules ([`super::schedules`] draws them and owns their forms).
//!
//! Viewing needs a login (viewer); uploading and cancelling need the operator role and the
//! form's CSRF token, as a search does.

use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use dci_client::SourceFilter;
use dci_client::bulk::BulkJob;
use dci_client::jobs::{JobRequest, JobsError};
use futures::TryStreamExt;
use maud::{Markup, html};
use serde::Deserialize;

use super::schedules;
use super::session::{CSRF_FIELD, ConsoleOperator, ConsoleViewer, Ctx, see_other};
use super::view::{self, badge, crumbs, failed, required_mark, scroll, when};
use crate::state::AppState;

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize)]
pub(crate) struct JobsQuery {
    #[serde(default)]
    notice: Option<String>,
}

/// `GET /jobs`.
pub(crate) async fn jobs_page(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Query(q): Query<JobsQuery>,
) -> Response {
    let notice = match q.notice.as_deref() {
        Some("started") => {
            Some("Job started: it runs in the background. Refresh this page for its progress.")
        }
        Some("cancelled") => Some("Job cancelled."),
        Some(n) => schedules::notice_text(n),
        None => None,
    };
    jobs_view(&st, &ctx, StatusCode::OK, notice, None).await
}

/// Which process runs (or ran) `j`: this server, another one (its lease holder's name, and
/// until when it holds the lease), or none yet. A running job whose lease has run out is one
/// another instance may take over.
fn runner_of(j: &BulkJob, me: &str, now: time::OffsetDateTime) -> Markup {
    html! {
        @match &j.lease {
            None => span.muted { "not started" },
            Some(l) if l.holder == me => { "this server" },
            Some(l) => {
                code { (l.holder) }
                @if let Some(until) = l.until.filter(|_| !l.is_free(now)) {
                    br; span.muted { "holds it until " (when(Some(until))) }
                } @else if !j.state.is_final() {
                    br; span.muted { "lease ended: another instance may take it over" }
                }
            },
        }
    }
}

fn progress_of(j: &BulkJob) -> Markup {
    let done = j.checkpoint.rows_done;
    html! {
        @match j.spec.total_rows {
            Some(t) if t > 0 => {
                progress max=(t) value=(done.min(t)) aria-label={"Progress of job " (j.id)} { (done) " of " (t) }
                " " (done) " of " (t) " rows"
            },
            _ => { (done) " rows" },
        }
    }
}

async fn jobs_view(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    page_with(st, ctx, status, notice, error, None).await
}

/// The Jobs page; `schedule_form`: a refused schedule form to show again with its errors.
pub(super) async fn page_with(
    st: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
    schedule_form: Option<schedules::Shown<'_>>,
) -> Response {
    let jobs = match st.ops.list_bulk_jobs(50).await {
        Ok(j) => j,
        Err(e) => return failed(ctx, &e.to_string()),
    };
    let sources = st
        .store
        .list_data_sources(&SourceFilter::default())
        .await
        .unwrap_or_default();
    let schedules = match schedules::section(st, ctx, &sources, schedule_form).await {
        Ok(m) => m,
        Err(e) => return failed(ctx, &e),
    };
    let now = time::OffsetDateTime::now_utc();
    let body = html! {
        (crumbs(&["DCI", "Jobs"]))
        h1 { "Jobs" }
        @if let Some(n) = notice { div.notice role="status" { (n) } }
        @if let Some(e) = error { div.error-summary role="alert" id="error-summary" tabindex="-1" { (e) } }
        p.muted { "Bulk searches run in the background of this server: one answer per input row (found with the records, not_found, or error with the registry's reason). A job interrupted by a restart continues when the server starts again. " a href="/jobs" { "Refresh" } " for the latest progress." }
        h2 { "Jobs" }
        @if jobs.is_empty() { p.panel { "No jobs yet." } } @else {
            (scroll("Jobs", html! {
                table id="jobs" {
                    thead { tr { th { "Created" } th { "Source" } th { "State" } th { "Progress" } th { "Outcomes" } th { "Job id" } th { "Run by" } th { "Results" } @if ctx.can_edit() { th { "Actions" } } } }
                    tbody { @for j in &jobs { tr {
                        td { (when(Some(j.created_at))) }
                        td { (j.source_code) }
                        td { (badge(j.state.as_str(), j.state.as_str())) @if let Some(r) = &j.reason { br; span.muted { (r) } } }
                        td { (progress_of(j)) }
                        td { "found " (j.checkpoint.found) ", not found " (j.checkpoint.not_found) ", error " (j.checkpoint.errors) }
                        td { code { (j.id) } }
                        td { (runner_of(j, st.jobs.instance(), now)) }
                        td { @if st.jobs.owns(j) {
                            a href={"/jobs/" (j.id) "/results"} { "Download" span.visually-hidden { " results of job " (j.id) } }
                        } @else { span.muted { "files outside this server's jobs directory" } } }
                        @if ctx.can_edit() {
                            td { @if !j.state.is_final() && st.jobs.owns(j) {
                                form method="post" action={"/jobs/" (j.id) "/cancel"} {
                                    (view::csrf(ctx))
                                    button.danger type="submit" { "Cancel" span.visually-hidden { " job " (j.id) } }
                                }
                            } }
                        }
                    } } }
                }
            }))
        }
        @if ctx.can_edit() {
            h2 { "Start a job" }
            @if sources.is_empty() { p.panel { "Add a data source first." } } @else {
                form method="post" action="/jobs" enctype="multipart/form-data" id="job-form" {
                    (view::csrf(ctx))
                    div.field {
                        label for="j-source" { "Data source" (required_mark()) }
                        select id="j-source" name="source" required {
                            @for s in &sources { option value=(s.code) { (s.code) " (" (s.name) ")" } }
                        }
                    }
                    div.field {
                        label for="j-format" { "Input format" }
                        select id="j-format" name="input_format" aria-describedby="j-format-hint" {
                            option value="csv" { "CSV (id_type,id_value columns)" }
                            option value="jsonl" { "JSONL (objects with id_type and id_value)" }
                            option value="lines" { "Lines (TYPE:VALUE)" }
                        }
                        span.hint id="j-format-hint" { "Other CSV columns and JSON members are echoed in each answer." }
                    }
                    div.field {
                        label for="j-output" { "Results format" }
                        select id="j-output" name="output_format" {
                            option value="jsonl" { "JSONL" }
                            option value="csv" { "CSV" }
                        }
                    }
                    div.field {
                        label for="j-batch" { "Identifiers per envelope" }
                        input type="number" id="j-batch" name="batch_size" min="1" aria-describedby="j-batch-hint";
                        span.hint id="j-batch-hint" { "Leave empty for the source's maximum batch size." }
                    }
                    div.field {
                        label for="j-file" { "Input file" (required_mark()) }
                        input type="file" id="j-file" name="file" required accept=".csv,.jsonl,.ndjson,.txt,text/csv,text/plain";
                    }
                    div.actions { button type="submit" id="start-job" { "Start job" } }
                }
            }
        }
        (schedules)
    };
    view::page(status, "Jobs", Some(ctx), "jobs", body)
}

fn jobs_error(e: &JobsError) -> String {
    e.to_string()
}

/// `POST /jobs` (multipart: the CSRF token first, then the settings, the file last). The file
/// is streamed to the jobs directory as it arrives.
pub(crate) async fn job_start(
    State(st): State<AppState>,
    ConsoleOperator(ctx): ConsoleOperator,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    // Not the page's multipart form (a stale or forged post): refused as the form's CSRF
    // check refuses it, before anything is read.
    let Ok(mut form) = form else {
        return match ctx.check_csrf("") {
            Err(r) => r,
            Ok(()) => see_other("/jobs"),
        };
    };
    let mut csrf = String::new();
    let mut source = String::new();
    let mut req = JobRequest::default();
    let outcome = loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break Err("the form had no input file: choose one".to_owned()),
            Err(e) => break Err(format!("the upload could not be read: {e}")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            // The CSRF token comes before the file in the form: checked before it is read.
            if let Err(r) = ctx.check_csrf(&csrf) {
                return r;
            }
            let stream = field.map_err(|e| std::io::Error::other(e.to_string()));
            let reader = tokio_util::io::StreamReader::new(stream);
            break st
                .jobs
                .submit(source.trim(), reader, &req)
                .await
                .map_err(|e| jobs_error(&e));
        }
        let value = match field.text().await {
            Ok(v) => v,
            Err(e) => break Err(format!("the form could not be read: {e}")),
        };
        match name.as_str() {
            CSRF_FIELD => csrf = value,
            "source" => source = value,
            "input_format" => req.input_format = Some(value),
            "output_format" => req.output_format = Some(value),
            "batch_size" if !value.trim().is_empty() => match value.trim().parse() {
                Ok(n) => req.batch_size = Some(n),
                Err(_) => {
                    break Err(
                        "Identifiers per envelope: give a whole number, or leave it empty".into(),
                    );
                }
            },
            _ => {}
        }
    };
    if let Err(r) = ctx.check_csrf(&csrf) {
        return r;
    }
    match outcome {
        Ok(_) => see_other("/jobs?notice=started"),
        Err(e) => jobs_view(&st, &ctx, StatusCode::UNPROCESSABLE_ENTITY, None, Some(&e)).await,
    }
}

/// `GET /jobs/{id}/results`: the answered rows so far, as a download.
pub(crate) async fn job_results(
    State(st): State<AppState>,
    ConsoleViewer(ctx): ConsoleViewer,
    Path(id): Path<String>,
) -> Response {
    match crate::api::jobs::results_response(&st.jobs, &id).await {
        Ok(r) => r,
        Err(JobsError::NotFound(_)) => view::message_page(
            StatusCode::NOT_FOUND,
            "No such job",
            Some(&ctx),
            &format!("There is no job {id:?}: the Jobs page lists them."),
        ),
        Err(e) => failed(&ctx, &e.to_string()),
    }
}

/// The cancel form.
#[derive(Debug, Deserialize)]
pub(crate) struct CancelForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /jobs/{id}/cancel`.
pub(crate) async fn job_cancel(
    State(st): State<AppState>,
    ConsoleOperator(ctx): ConsoleOperator,
    Path(id): Path<String>,
    Form(form): Form<CancelForm>,
) -> Response {
    if let Err(r) = ctx.check_csrf(&form.csrf) {
        return r;
    }
    match st.jobs.cancel(&id, "cancelled in the console").await {
        Ok(true) => see_other("/jobs?notice=cancelled"),
        Ok(false) => {
            jobs_view(
                &st,
                &ctx,
                StatusCode::CONFLICT,
                None,
                Some("That job is already over: only a running job can be cancelled."),
            )
            .await
        }
        Err(e) => jobs_view(&st, &ctx, StatusCode::NOT_FOUND, None, Some(&e.to_string())).await,
    }
}
