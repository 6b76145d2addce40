//! The OpenAPI paths of the background jobs and schedules routes (`api::jobs`), merged into the
//! document by `openapi::document`.

use serde_json::{Value, json};

use super::openapi::{body, ok, responses};

fn q(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "schema": schema, "description": description })
}

fn id_param(description: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" }, "description": description })
}

fn job() -> Value {
    json!({ "type": "object", "description": "A bulk job: id, source_code, state (running, interrupted, completed, cancelled, failed), spec (formats, batch size, total_rows), checkpoint (rows_done, found, not_found, errors, batches_sent, retries, runs), reason, lease (holder: the process that runs it or ran it last; until: when its lease ends unless renewed, null once it stopped), running_here, progress (rate, limiter and breaker state, while it runs here), results_url" })
}

fn schedule() -> Value {
    json!({ "type": "object", "description": "A schedule: id, name, source_code, cron (UTC), input (file path or http(s) URL), input_format, output_format, batch_size, record_type, catch_up (latest or none), enabled, created_at" })
}

/// `(path, path item)` of every route of this group.
pub(crate) fn paths() -> Vec<(&'static str, Value)> {
    let job_answer = json!({ "type": "object", "properties": { "job": job() } });
    let limit = q(
        "limit",
        json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 }),
        "At most this many",
    );
    vec![
        (
            "/sources/{code}/jobs",
            json!({ "post": {
                "operationId": "submitJob",
                "summary": "Start a bulk search job: the body is the input (CSV with id_type,id_value columns, JSONL objects with id_type and id_value, or TYPE:VALUE lines), streamed to a file; the job runs in the background",
                "parameters": [
                    { "name": "code", "in": "path", "required": true, "schema": { "type": "string" }, "description": "Data source code" },
                    q("input_format", json!({ "type": "string", "enum": ["csv", "jsonl", "lines"] }), "Default: from Content-Type (text/csv, application/x-ndjson, text/plain)"),
                    q("output_format", json!({ "type": "string", "enum": ["jsonl", "csv"] }), "Default jsonl"),
                    q("batch_size", json!({ "type": "integer", "minimum": 1 }), "Identifiers per envelope (default: the source's limits.max_batch_size)"),
                    q("record_type", json!({ "type": "string" }), "reg_record_type of every search"),
                ],
                "requestBody": { "required": true, "content": {
                    "text/csv": { "schema": { "type": "string" } },
                    "application/x-ndjson": { "schema": { "type": "string" } },
                    "text/plain": { "schema": { "type": "string" } } } },
                "responses": responses("201", ok("The job (Location: its URL)", job_answer.clone()), &["404", "409", "413", "422"])
            }}),
        ),
        (
            "/jobs",
            json!({ "get": {
                "operationId": "listJobs",
                "summary": "Bulk jobs, newest first (those of dci bulk in the same store too)",
                "parameters": [limit.clone()],
                "responses": responses("200", ok("Jobs", json!({ "type": "object", "properties": { "jobs": { "type": "array", "items": job() } } })), &["422"])
            }}),
        ),
        (
            "/jobs/{id}",
            json!({ "parameters": [id_param("Job id")], "get": {
                "operationId": "getJob",
                "summary": "A job with its progress",
                "responses": responses("200", ok("The job", job_answer.clone()), &["404"])
            }}),
        ),
        (
            "/jobs/{id}/results",
            json!({ "parameters": [id_param("Job id")], "get": {
                "operationId": "getJobResults",
                "summary": "The answered rows so far, one per input row (JSONL or CSV as the job's output_format), streamed; X-Job-State says whether more will come",
                "responses": responses("200", json!({ "description": "Rows", "content": {
                    "application/x-ndjson": { "schema": { "type": "string" } },
                    "text/csv": { "schema": { "type": "string" } } } }), &["404"])
            }}),
        ),
        (
            "/jobs/{id}/cancel",
            json!({ "parameters": [id_param("Job id")], "post": {
                "operationId": "cancelJob",
                "summary": "Cancel a running job (it stops at once; the rows answered stay in its results)",
                "responses": responses("200", ok("The job", job_answer), &["404", "409"])
            }}),
        ),
        (
            "/schedules",
            json!({
                "get": {
                    "operationId": "listSchedules",
                    "summary": "Schedules",
                    "responses": responses("200", ok("Schedules", json!({ "type": "object", "properties": { "schedules": { "type": "array", "items": schedule() } } })), &[])
                },
                "post": {
                    "operationId": "createSchedule",
                    "summary": "Add a schedule: a bulk job run at each occurrence of a cron expression (UTC) on an input file or URL fetched at run time; with several instances on one database exactly one runs each occurrence",
                    "requestBody": body(json!({ "type": "object", "additionalProperties": false, "required": ["name", "source_code", "cron", "input"], "properties": {
                        "name": { "type": "string" },
                        "source_code": { "type": "string" },
                        "cron": { "type": "string", "description": "5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; UTC" },
                        "input": { "type": "string", "description": "Absolute file path, or http(s) URL" },
                        "input_format": { "type": "string", "enum": ["csv", "jsonl", "lines"] },
                        "output_format": { "type": "string", "enum": ["jsonl", "csv"] },
                        "batch_size": { "type": "integer", "minimum": 1 },
                        "record_type": { "type": "string" },
                        "catch_up": { "type": "string", "enum": ["latest", "none"], "description": "After downtime: run the latest missed occurrence once (default), or record it as missed" },
                        "enabled": { "type": "boolean" } } })),
                    "responses": responses("201", ok("The schedule", json!({ "type": "object", "properties": { "schedule": schedule() } })), &["422"])
                }
            }),
        ),
        (
            "/schedules/{id}",
            json!({ "parameters": [id_param("Schedule id")],
                "get": {
                    "operationId": "getSchedule",
                    "summary": "A schedule and its latest run",
                    "responses": responses("200", ok("The schedule", json!({ "type": "object", "properties": { "schedule": schedule(), "last_run": { "type": ["object", "null"] } } })), &["404"])
                },
                "delete": {
                    "operationId": "deleteSchedule",
                    "summary": "Remove a schedule and its runs (their jobs and results stay)",
                    "responses": responses("204", json!({ "description": "Deleted" }), &["404"])
                }
            }),
        ),
        (
            "/schedules/{id}/runs",
            json!({ "parameters": [id_param("Schedule id")], "get": {
                "operationId": "listScheduleRuns",
                "summary": "Occurrences claimed, latest first: state (running, completed, failed, cancelled, missed), instance, job_id, reason, skipped (missed earlier occurrences not run)",
                "parameters": [limit],
                "responses": responses("200", ok("Runs", json!({ "type": "object", "properties": { "runs": { "type": "array", "items": { "type": "object" } } } })), &["404", "422"])
            }}),
        ),
    ]
}
