//! `/api/v1/jobs` and `/api/v1/schedules`: bulk jobs run in the background of `dci serve`
//! (upload a CSV / JSONL / `TYPE:VALUE` body, follow its progress, stream its results, cancel)
//! and schedules (a job definition with a cron expression, and its runs). Thin over
//! `dci_client::jobs`; the body of an upload is streamed to a file, never held in memory.
//!
//! Role: the admin token, like every gateway route (the router's `require_admin` layer); these
//! handlers take no role themselves, so a finer extractor can be added per route.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dci_client::bulk::{BulkJob, OutputFormat};
use dci_client::jobs::{JobRequest, JobRunner, ScheduleInput, add_schedule};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::auth::{ApiAdmin, ApiOperator, ApiViewer};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;
use crate::{ApiPath, ApiQuery};

/// Query of `POST /sources/{code}/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitQuery {
    input_format: Option<String>,
    output_format: Option<String>,
    batch_size: Option<u32>,
    record_type: Option<String>,
}

/// The input format a `Content-Type` names, if any.
pub(crate) fn format_of(content_type: Option<&str>) -> Option<&'static str> {
    let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    Some(match essence.as_str() {
        "text/csv" | "application/csv" => "csv",
        "application/x-ndjson"
        | "application/jsonl"
        | "application/jsonlines"
        | "application/json-lines" => "jsonl",
        "text/plain" => "lines",
        _ => return None,
    })
}

/// A job as the API shows it: the stored job, whether it runs in this server, its latest
/// progress (rate, limiter, breaker) and where its results are.
pub(crate) fn job_view(jobs: &JobRunner, job: &BulkJob) -> Value {
    let mut v = serde_json::to_value(job).unwrap_or(Value::Null);
    v["running_here"] = jobs.is_running(&job.id).into();
    v["progress"] = jobs
        .progress(&job.id)
        .and_then(|p| serde_json::to_value(p).ok())
        .unwrap_or(Value::Null);
    v["results_url"] = format!("/api/v1/jobs/{}/results", job.id).into();
    v
}

/// `POST /sources/{code}/jobs`: the body is the input (CSV, JSONL or `TYPE:VALUE` lines, named
/// by `?input_format=` or the `Content-Type`); 201 with the job, which runs in the background.
pub(crate) async fn submit(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<SubmitQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let req = JobRequest {
        input_format: q
            .input_format
            .or_else(|| format_of(content_type).map(str::to_owned)),
        output_format: q.output_format,
        batch_size: q.batch_size,
        record_type: q.record_type,
    };
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let reader = tokio_util::io::StreamReader::new(stream);
    let job = st.jobs.submit(&code, reader, &req).await?;
    let mut r = (
        StatusCode::CREATED,
        ApiJson(json!({ "job": job_view(&st.jobs, &job) })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/jobs/{}", job.id)) {
        r.headers_mut().insert(LOCATION, v);
    }
    Ok(r)
}

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<u32>,
}

pub(crate) async fn list(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let jobs = st
        .ops
        .list_bulk_jobs(q.limit.unwrap_or(50).clamp(1, 1000))
        .await?;
    let list: Vec<Value> = jobs.iter().map(|j| job_view(&st.jobs, j)).collect();
    Ok(ApiJson(json!({ "jobs": list })))
}

fn no_job(id: &str) -> ApiError {
    ApiError::NotFound(format!("no job {id:?}: GET /api/v1/jobs lists them"))
}

pub(crate) async fn get(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let job = st.ops.get_bulk_job(&id).await?.ok_or_else(|| no_job(&id))?;
    Ok(ApiJson(json!({ "job": job_view(&st.jobs, &job) })))
}

/// `GET /jobs/{id}/results`: the answered rows so far (all of them once completed), streamed
/// from the results file; `X-Job-State` says whether more will come.
pub(crate) async fn results(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    results_response(&st.jobs, &id).await.map_err(|e| match e {
        dci_client::jobs::JobsError::NotFound(_) => no_job(&id),
        other => other.into(),
    })
}

/// The streamed results of a job (the console's download uses it too).
pub(crate) async fn results_response(
    jobs: &JobRunner,
    id: &str,
) -> Result<Response, dci_client::jobs::JobsError> {
    let res = jobs.results(id).await?;
    let (content_type, ext) = match res.job.spec.output_format {
        OutputFormat::Jsonl => ("application/x-ndjson", "jsonl"),
        OutputFormat::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let body = match res.file {
        Some(f) => Body::from_stream(tokio_util::io::ReaderStream::new(f.take(res.len))),
        None => Body::empty(),
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(res.len));
    if let Ok(v) = HeaderValue::from_str(res.job.state.as_str()) {
        h.insert("x-job-state", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"job-{}-results.{ext}\"",
        res.job.id
    )) {
        h.insert("content-disposition", v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `POST /jobs/{id}/cancel`: a running job stops now; a job already over is 409.
pub(crate) async fn cancel(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let changed = st
        .jobs
        .cancel(&id, "cancelled through the API")
        .await
        .map_err(|e| match e {
            dci_client::jobs::JobsError::NotFound(_) => no_job(&id),
            other => other.into(),
        })?;
    let job = st.ops.get_bulk_job(&id).await?.ok_or_else(|| no_job(&id))?;
    if !changed {
        return Err(ApiError::Conflict {
            message: format!(
                "job {id} is {}: only a running job can be cancelled",
                job.state
            ),
            field: Some("state"),
        });
    }
    Ok(ApiJson(json!({ "job": job_view(&st.jobs, &job) })))
}

fn no_schedule(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no schedule {id:?}: GET /api/v1/schedules lists them"
    ))
}

pub(crate) async fn schedules(
    _: ApiViewer,
    State(st): State<AppState>,
) -> ApiResult<impl IntoResponse> {
    Ok(ApiJson(
        json!({ "schedules": st.ops.list_schedules().await? }),
    ))
}

pub(crate) async fn create_schedule(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<ScheduleInput>,
) -> ApiResult<impl IntoResponse> {
    let s = add_schedule(&st.engine, &who.actor, body).await?;
    Ok((StatusCode::CREATED, ApiJson(json!({ "schedule": s }))))
}

pub(crate) async fn schedule(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let s = st
        .ops
        .get_schedule(&id)
        .await?
        .ok_or_else(|| no_schedule(&id))?;
    let last = st.ops.latest_schedule_run(&id).await?;
    Ok(ApiJson(json!({ "schedule": s, "last_run": last })))
}

pub(crate) async fn delete_schedule(
    ApiAdmin(who): ApiAdmin,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    if !dci_client::jobs::remove_schedule(&st.engine, &who.actor, &id).await? {
        return Err(no_schedule(&id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /schedules/{id}/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    limit: Option<u32>,
}

/// `GET /schedules/{id}/runs`: occurrences claimed (run or missed), latest first, each with
/// its outcome and job.
pub(crate) async fn schedule_runs(
    _: ApiViewer,
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> ApiResult<impl IntoResponse> {
    if st.ops.get_schedule(&id).await?.is_none() {
        return Err(no_schedule(&id));
    }
    let runs = st
        .ops
        .list_schedule_runs(&id, q.limit.unwrap_or(50).clamp(1, 1000))
        .await?;
    Ok(ApiJson(json!({ "runs": runs })))
}
