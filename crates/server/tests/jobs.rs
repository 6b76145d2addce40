//! Background bulk jobs and schedules in `dci serve`, over real HTTP against the sandbox with
//! real stores: a job uploaded through `/api/v1/sources/{code}/jobs` runs to the end (progress,
//! results streamed in input order), is cancelled, and survives a restart mid-way (every row
//! answered exactly once); schedules run an occurrence exactly once with two servers on one
//! PostgreSQL schema, catch up after downtime by their policy, and fetch a URL input from a
//! test HTTP server.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dci_client::bulk::JobState;
use dci_client::jobs::{CatchUp, RunState, Schedule};
use dci_client::{DataSourceInput, MasterKey, OpsStore, Store};
use dci_protocol::RegistryType;
use dci_sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox, SandboxConfig};
use dci_server::{AdminToken, AppState, RunningServer, ServerConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;

const TOKEN: &str = "test-admin-token-0123456789";

/// Polls `f` until it returns `Some`, for at most 60 s (a bound, not a timing assertion).
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Stores = (Arc<dyn Store>, Arc<dyn OpsStore>);

async fn sqlite(path: &Path) -> Stores {
    let s = Arc::new(
        dci_store::SqliteStore::open_file(path, &MasterKey::from_bytes([9; 32]))
            .await
            .unwrap(),
    );
    (s.clone(), s)
}

fn source_input(sb: &Sandbox, tune: impl FnOnce(&mut DataSourceInput)) -> DataSourceInput {
    let mut input = DataSourceInput {
        code: "crvs_main".into(),
        name: "Sandbox CRVS".into(),
        registry_type: "crvs".into(),
        base_url: sb.registry_url(RegistryType::Crvs),
        auth: Some("oauth2".into()),
        token_url: Some(sb.token_url()),
        client_id: Some(DEMO_CLIENT_ID.into()),
        client_secret: Some(SecretString::from(DEMO_CLIENT_SECRET.to_owned())),
        scope: Some(dci_sandbox::read_scope(RegistryType::Crvs)),
        sender_id: Some("spmis.example.org".into()),
        receiver_id: Some(sb.registry_id().to_owned()),
        ..DataSourceInput::default()
    };
    tune(&mut input);
    input
}

async fn add_source(store: &Arc<dyn Store>, input: DataSourceInput) {
    store
        .create_data_source(&input.validate().unwrap())
        .await
        .unwrap();
}

async fn serve(stores: &Stores, jobs_dir: &Path) -> RunningServer {
    serve_with(stores, jobs_dir, |_| {}).await
}

/// `serve` with settings changed by `tune`.
async fn serve_with(
    stores: &Stores,
    jobs_dir: &Path,
    tune: impl FnOnce(&mut ServerConfig),
) -> RunningServer {
    let mut config = ServerConfig {
        jobs_dir: Some(jobs_dir.to_owned()),
        schedule_tick: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    tune(&mut config);
    let state = AppState::with_config(
        stores.0.clone(),
        stores.1.clone(),
        AdminToken::from_secret(&SecretString::from(TOKEN)),
        config,
    );
    dci_server::spawn("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap()
}

fn ids(sb: &Sandbox, offset: usize, n: usize) -> Vec<(String, String)> {
    sb.identifiers(RegistryType::Crvs, offset, n)
        .into_iter()
        .map(|e| (e.id_type, e.id_value))
        .collect()
}

fn csv_of(rows: &[(String, String)]) -> String {
    let mut s = String::from("id_type,id_value,case\n");
    for (i, (t, v)) in rows.iter().enumerate() {
        s.push_str(&format!("{t},{v},c{i}\n"));
    }
    s
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(server: &RunningServer) -> Api {
        Api {
            base: format!("{}/api/v1", server.base_url()),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn submit(&self, query: &str, content_type: &str, body: String) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/sources/crvs_main/jobs{query}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn job(&self, id: &str) -> Value {
        let (status, v) = self.get(&format!("/jobs/{id}")).await;
        assert_eq!(status, 200, "{v}");
        v["job"].clone()
    }

    async fn until_state(&self, id: &str, state: &str) -> Value {
        eventually(&format!("job {id} {state}"), || async {
            let j = self.job(id).await;
            (j["state"] == state && j["running_here"] == false).then_some(j)
        })
        .await
    }

    async fn results(&self, id: &str) -> (String, String) {
        let r = self
            .http
            .get(format!("{}/jobs/{id}/results", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let state = r.headers()["x-job-state"].to_str().unwrap().to_owned();
        (state, r.text().await.unwrap())
    }
}

fn lines_of(results: &str) -> Vec<Value> {
    results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn an_uploaded_job_runs_to_the_end_with_progress_and_streamed_results() {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(200))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = sqlite(&dir.path().join("db.sqlite3")).await;
    add_source(&stores.0, source_input(&sb, |_| {})).await;
    let server = serve(&stores, &dir.path().join("jobs")).await;
    let api = Api::new(&server);

    let mut rows = ids(&sb, 0, 40);
    rows.push(("BRN".into(), "no-such-person-000".into()));
    let mut body = csv_of(&rows);
    body.push_str(",missing-type,bad\n");

    let anonymous = api
        .http
        .post(format!("{}/sources/crvs_main/jobs", api.base))
        .header("content-type", "text/csv")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "the admin token is required");
    let (status, v) = api.submit("?batch_size=7", "text/csv", body).await;
    assert_eq!(status, 201, "{v}");
    let id = v["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        v["job"]["spec"]["total_rows"], 42,
        "the input is counted: {v}"
    );
    assert_eq!(v["job"]["spec"]["batch_size"], 7);

    let done = api.until_state(&id, "completed").await;
    let cp = &done["checkpoint"];
    assert_eq!(cp["rows_done"], 42, "{done}");
    assert_eq!(cp["found"], 40, "{done}");
    assert_eq!(cp["not_found"], 1, "{done}");
    assert_eq!(cp["errors"], 1, "the bad row is answered as error: {done}");
    assert_eq!(
        cp["batches_sent"], 6,
        "41 valid identifiers in envelopes of 7: {done}"
    );

    let (state, text) = api.results(&id).await;
    assert_eq!(state, "completed");
    let answers = lines_of(&text);
    assert_eq!(answers.len(), 42);
    let lines: Vec<u64> = answers
        .iter()
        .map(|a| a["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        (2..=43).collect::<Vec<_>>(),
        "input order, one answer per row"
    );
    assert_eq!(answers[0]["outcome"], "found", "{}", answers[0]);
    assert_eq!(
        answers[0]["fields"]["case"], "c0",
        "CSV extras echoed: {}",
        answers[0]
    );
    assert_eq!(answers[40]["outcome"], "not_found", "{}", answers[40]);
    assert_eq!(answers[41]["outcome"], "error", "{}", answers[41]);

    let (status, list) = api.get("/jobs").await;
    assert_eq!(status, 200);
    assert!(
        list["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str()),
        "{list}"
    );
    let (status, v) = api.post(&format!("/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 409, "a completed job cannot be cancelled: {v}");
    let (status, v) = api.get("/jobs/nope").await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = api.submit("", "application/octet-stream", "x".into()).await;
    assert_eq!(status, 422, "no input format: {v}");
    assert!(v.to_string().contains("input_format"), "{v}");
    server.shutdown().await.unwrap();
}

/// A slow source: one identifier per envelope, a few envelopes a second.
fn slow(i: &mut DataSourceInput) {
    i.limits.max_concurrency = Some("1".into());
    i.limits.rate_per_sec = Some("20".into());
    i.limits.burst = Some("1".into());
}

#[tokio::test]
async fn a_cancelled_job_stops_and_keeps_the_rows_it_answered() {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(400))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = sqlite(&dir.path().join("db.sqlite3")).await;
    add_source(&stores.0, source_input(&sb, slow)).await;
    let server = serve(&stores, &dir.path().join("jobs")).await;
    let api = Api::new(&server);
    let body: String = ids(&sb, 0, 400)
        .iter()
        .map(|(t, v)| format!("{t}:{v}\n"))
        .collect();
    let (status, v) = api
        .submit("?input_format=lines&batch_size=1", "text/plain", body)
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["job"]["id"].as_str().unwrap().to_owned();
    eventually("some progress", || async {
        let j = api.job(&id).await;
        (j["checkpoint"]["rows_done"].as_u64().unwrap() >= 5 && j["progress"].is_object())
            .then_some(())
    })
    .await;
    let (status, v) = api.post(&format!("/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{v}");
    let job = api.until_state(&id, "cancelled").await;
    let done = job["checkpoint"]["rows_done"].as_u64().unwrap();
    assert!(done < 400, "it stopped before the end: {job}");
    let (state, text) = api.results(&id).await;
    assert_eq!(state, "cancelled");
    assert_eq!(
        lines_of(&text).len() as u64,
        done,
        "the results hold exactly the answered rows"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.job(&id).await["checkpoint"]["rows_done"]
            .as_u64()
            .unwrap(),
        done,
        "nothing more is answered after the cancel"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_job_interrupted_by_a_restart_resumes_and_answers_every_row_once() {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(120))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    let jobs_dir = dir.path().join("jobs");
    let stores = sqlite(&db).await;
    add_source(&stores.0, source_input(&sb, slow)).await;
    let server = serve(&stores, &jobs_dir).await;
    let api = Api::new(&server);
    let (status, v) = api
        .submit(
            "?batch_size=1&output_format=jsonl",
            "application/x-ndjson",
            ids(&sb, 0, 120)
                .iter()
                .map(|(t, v)| json!({ "id_type": t, "id_value": v }).to_string() + "\n")
                .collect(),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["job"]["id"].as_str().unwrap().to_owned();
    eventually("a part of the job", || async {
        (api.job(&id).await["checkpoint"]["rows_done"]
            .as_u64()
            .unwrap()
            >= 10)
            .then_some(())
    })
    .await;
    server.shutdown().await.unwrap();
    drop(stores);
    let stopped = sqlite(&db).await;
    let job = stopped.1.get_bulk_job(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Interrupted, "left resumable");
    assert!(
        job.reason
            .as_deref()
            .unwrap_or_default()
            .contains("server stopped"),
        "{job:?}"
    );
    let lease = job.lease.as_ref().expect("the server held the job's lease");
    assert_eq!(
        lease.until, None,
        "a stopped server ends its jobs' leases: {job:?}"
    );
    let at_stop = job.checkpoint.rows_done;
    assert!(at_stop < 120, "stopped mid-way: {at_stop}");

    // A new server over the same database and directory continues it.
    let server = serve(&stopped, &jobs_dir).await;
    let api = Api::new(&server);
    let done = api.until_state(&id, "completed").await;
    assert_eq!(done["checkpoint"]["rows_done"], 120, "{done}");
    assert_eq!(done["checkpoint"]["runs"], 2, "{done}");
    let answers = lines_of(&api.results(&id).await.1);
    let lines: Vec<u64> = answers
        .iter()
        .map(|a| a["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        (1..=120).collect::<Vec<_>>(),
        "every row once, in order"
    );
    assert!(answers.iter().all(|a| a["outcome"] == "found"));
    server.shutdown().await.unwrap();
}

fn schedule(
    id: &str,
    cron: &str,
    input: String,
    catch_up: CatchUp,
    created_at: OffsetDateTime,
) -> Schedule {
    Schedule {
        id: id.into(),
        name: format!("schedule {id}"),
        source_code: "crvs_main".into(),
        cron: cron.into(),
        input_format: dci_client::bulk::InputFormat::Csv,
        input,
        output_format: dci_client::bulk::OutputFormat::Jsonl,
        batch_size: Some(10),
        record_type: None,
        catch_up,
        enabled: true,
        created_at,
    }
}

/// A test HTTP server standing for the SPMIS: serves `body` at `/caseload.csv`.
async fn spmis(body: String) -> (String, tokio::task::JoinHandle<()>) {
    spmis_after(body, Duration::ZERO).await
}

/// [`spmis`] answering each request only after `delay` (an input still downloading).
async fn spmis_after(body: String, delay: Duration) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        "/caseload.csv",
        axum::routing::get(move || {
            let b = body.clone();
            async move {
                tokio::time::sleep(delay).await;
                ([("content-type", "text/csv")], b)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/caseload.csv", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

/// What the store holds of a schedule's runs — (occurrence, its job, its state) — and of the
/// jobs — (job, state).
type RunsAndJobs = (
    Vec<(OffsetDateTime, Option<String>, RunState)>,
    Vec<(String, JobState)>,
);

/// [`RunsAndJobs`] of `schedule` now.
async fn runs_and_jobs(ops: &Arc<dyn OpsStore>, schedule: &str) -> RunsAndJobs {
    let runs = ops.list_schedule_runs(schedule, 1000).await.unwrap();
    let jobs = ops.list_bulk_jobs(1000).await.unwrap();
    (
        runs.into_iter()
            .map(|r| (r.occurrence_at, r.job_id, r.state))
            .collect(),
        jobs.into_iter().map(|j| (j.id, j.state)).collect(),
    )
}

/// Serves an every-second schedule whose URL input takes `download` to arrive, shuts the
/// server down (with `grace`) as soon as the first occurrence is claimed, and returns what the
/// store held once `shutdown` returned and what it holds `download` + 1 s later.
async fn shut_down_while_an_input_downloads(
    download: Duration,
    grace: Duration,
) -> (RunsAndJobs, RunsAndJobs) {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(20))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = sqlite(&dir.path().join("db.sqlite3")).await;
    add_source(&stores.0, source_input(&sb, |_| {})).await;
    let (url, _spmis) = spmis_after(csv_of(&ids(&sb, 0, 5)), download).await;
    let s = schedule(
        "every-second",
        "* * * * * *",
        url,
        CatchUp::Latest,
        OffsetDateTime::now_utc(),
    );
    stores.1.create_schedule(&s).await.unwrap();
    let server = serve_with(&stores, &dir.path().join("jobs"), |c| {
        c.shutdown_grace = grace
    })
    .await;
    eventually("a claimed occurrence", || async {
        let (runs, _) = runs_and_jobs(&stores.1, &s.id).await;
        (!runs.is_empty()).then_some(())
    })
    .await;
    server.shutdown().await.unwrap();
    let at_stop = runs_and_jobs(&stores.1, &s.id).await;
    tokio::time::sleep(download + Duration::from_secs(1)).await;
    (at_stop, runs_and_jobs(&stores.1, &s.id).await)
}

#[tokio::test]
async fn a_shutdown_while_a_scheduled_run_starts_waits_for_it_and_nothing_starts_after() {
    // The input takes 1.5 s to arrive: the tick that claimed the occurrence is still starting
    // its job when the shutdown comes, well within the grace.
    let (at_stop, later) =
        shut_down_while_an_input_downloads(Duration::from_millis(1500), Duration::from_secs(30))
            .await;
    let (runs, jobs) = &at_stop;
    assert_eq!(
        runs.len(),
        1,
        "one tick, still downloading, claimed one: {at_stop:?}"
    );
    assert!(
        runs[0].1.is_some(),
        "the tick in hand ended before the server stopped: its run has its job {at_stop:?}"
    );
    assert_eq!(jobs.len(), 1, "{at_stop:?}");
    assert_ne!(
        jobs[0].1,
        JobState::Running,
        "the job stopped with the server (at its checkpoint, or done): {at_stop:?}"
    );
    assert_eq!(later, at_stop, "nothing the stopped server began goes on");
}

#[tokio::test]
async fn a_scheduled_start_longer_than_the_shutdown_grace_is_cancelled_and_starts_nothing() {
    let (at_stop, later) =
        shut_down_while_an_input_downloads(Duration::from_secs(3), Duration::from_millis(200))
            .await;
    let (runs, jobs) = &at_stop;
    assert_eq!(runs.len(), 1, "{at_stop:?}");
    assert_eq!(
        runs[0].1, None,
        "the grace ended first: the claim is left for the next instance to take over {at_stop:?}"
    );
    assert!(jobs.is_empty(), "{at_stop:?}");
    assert_eq!(
        later, at_stop,
        "the cancelled tick does not start the job once its download would have ended"
    );
}

#[tokio::test]
async fn after_downtime_schedules_catch_up_by_their_policy_and_a_url_input_is_fetched() {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(100))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = sqlite(&dir.path().join("db.sqlite3")).await;
    add_source(&stores.0, source_input(&sb, |_| {})).await;
    let (url, _spmis) = spmis(csv_of(&ids(&sb, 0, 25))).await;
    let file = dir.path().join("ids.csv");
    std::fs::write(&file, csv_of(&ids(&sb, 30, 5))).unwrap();
    // Hourly at a minute about 30 minutes ago, made 200 minutes ago: the server was down for
    // three occurrences (about 30, 90 and 150 minutes ago), the latest well past on time.
    let now = OffsetDateTime::now_utc();
    let minute = (now.minute() + 30) % 60;
    let cron = format!("{minute} * * * *");
    let made = now - time::Duration::minutes(200);
    let latest = schedule("latest", &cron, url, CatchUp::Latest, made);
    let none = schedule(
        "none",
        &cron,
        file.display().to_string(),
        CatchUp::None,
        made,
    );
    stores.1.create_schedule(&latest).await.unwrap();
    stores.1.create_schedule(&none).await.unwrap();

    let server = serve(&stores, &dir.path().join("jobs")).await;
    let api = Api::new(&server);
    let run = eventually("the caught-up run", || async {
        let (_, v) = api.get("/schedules/latest/runs").await;
        let r = v["runs"][0].clone();
        (r["state"] == "completed").then_some(v)
    })
    .await;
    let runs = run["runs"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        1,
        "the latest missed occurrence runs once: {run}"
    );
    assert_eq!(runs[0]["skipped"], 2, "{run}");
    let occurrence = OffsetDateTime::parse(
        runs[0]["occurrence_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((occurrence.minute(), occurrence.second()), (minute, 0));
    assert!(
        now - occurrence < time::Duration::minutes(31),
        "the latest: {occurrence}"
    );
    let job_id = runs[0]["job_id"].as_str().unwrap();
    let job = api.job(job_id).await;
    assert_eq!(job["checkpoint"]["found"], 25, "the URL's 25 rows: {job}");
    assert_eq!(lines_of(&api.results(job_id).await.1).len(), 25);

    let (_, v) = api.get("/schedules/none/runs").await;
    let missed = v["runs"].as_array().unwrap();
    assert_eq!(missed.len(), 1, "{v}");
    assert_eq!(missed[0]["state"], "missed", "{v}");
    assert!(missed[0]["job_id"].is_null(), "nothing ran: {v}");

    // Later ticks do not run the same occurrences again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = api.get("/schedules/latest/runs").await;
    assert_eq!(v["runs"].as_array().unwrap().len(), 1, "{v}");
    let (_, jobs) = api.get("/jobs").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");

    // The API checks a new schedule's fields.
    let (status, v) = api
        .post(
            "/schedules",
            json!({ "name": "x", "source_code": "crvs_main", "cron": "every day", "input": "ids.csv" }),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    let fields: Vec<&str> = v["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["cron", "input"], "{v}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn schedules_added_and_removed_through_the_api_are_in_the_change_audit() {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(10))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = sqlite(&dir.path().join("db.sqlite3")).await;
    add_source(&stores.0, source_input(&sb, |_| {})).await;
    let file = dir.path().join("ids.csv");
    std::fs::write(&file, csv_of(&ids(&sb, 0, 2))).unwrap();
    let server = serve(&stores, &dir.path().join("jobs")).await;
    let api = Api::new(&server);
    let (status, v) = api
        .post(
            "/schedules",
            json!({ "name": "nightly", "source_code": "crvs_main", "cron": "0 2 * * *",
                    "input": file.display().to_string() }),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["schedule"]["id"].as_str().unwrap().to_owned();
    let gone = api
        .http
        .delete(format!("{}/schedules/{id}", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 204);
    let (_, v) = api.get("/audit/changes?target=schedule").await;
    let changes = v["changes"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["target_id"].as_str().unwrap(),
                c["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 2, "{v}");
    assert!(
        seen.contains(&(id.as_str(), "create")) && seen.contains(&(id.as_str(), "delete")),
        "{v}"
    );
    let created = changes.iter().find(|c| c["action"] == "create").unwrap();
    let fields: Vec<&str> = created["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"cron") && fields.contains(&"source_code"),
        "{v}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_servers_on_one_postgres_schema_run_each_occurrence_once() {
    on_fresh_postgres_schema(two_servers).await;
}

/// Runs `test(url, schema)` on a new schema of `DCI_TEST_DATABASE_URL` and drops the schema
/// afterwards, also when the test panics; skips (saying why, failing under `CI`) without it.
async fn on_fresh_postgres_schema<F, Fut>(test: F)
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(url) = dci_protocol::test_support::postgres_url() else {
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let outcome = tokio::spawn(test(url.clone(), schema.clone())).await;
    dci_store::PgStore::drop_schema(&url, &schema)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn two_servers(url: String, schema: String) {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(50))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([9; 32]);
    let open = || async {
        let s = Arc::new(
            dci_store::PgStore::connect_in_schema(&url, &schema, &key)
                .await
                .unwrap(),
        );
        (s.clone() as Arc<dyn Store>, s as Arc<dyn OpsStore>)
    };
    let a = open().await;
    let b = open().await;
    add_source(&a.0, source_input(&sb, |_| {})).await;
    let file = dir.path().join("ids.csv");
    std::fs::write(&file, csv_of(&ids(&sb, 0, 8))).unwrap();
    // Every second: both servers see each occurrence.
    let s = schedule(
        "every-second",
        "* * * * * *",
        file.display().to_string(),
        CatchUp::Latest,
        OffsetDateTime::now_utc(),
    );
    a.1.create_schedule(&s).await.unwrap();
    let one = serve(&a, &dir.path().join("jobs-a")).await;
    let two = serve(&b, &dir.path().join("jobs-b")).await;
    eventually("six runs", || async {
        let runs = a.1.list_schedule_runs(&s.id, 100).await.unwrap();
        (runs.len() >= 6).then_some(())
    })
    .await;
    one.shutdown().await.unwrap();
    two.shutdown().await.unwrap();

    let runs = a.1.list_schedule_runs(&s.id, 1000).await.unwrap();
    let jobs = a.1.list_bulk_jobs(1000).await.unwrap();
    let occurrences: BTreeSet<_> = runs.iter().map(|r| r.occurrence_at).collect();
    assert_eq!(occurrences.len(), runs.len(), "one row per occurrence");
    let run_jobs: BTreeSet<_> = runs.iter().filter_map(|r| r.job_id.clone()).collect();
    assert_eq!(
        run_jobs.len(),
        runs.iter().filter(|r| r.job_id.is_some()).count(),
        "a job per run"
    );
    assert_eq!(
        jobs.len(),
        run_jobs.len(),
        "no job started for an occurrence another instance claimed"
    );
    let instances: BTreeSet<_> = runs.iter().map(|r| r.instance.clone()).collect();
    assert!(instances.len() <= 2, "{instances:?}");
    let completed = runs
        .iter()
        .filter(|r| r.state == RunState::Completed)
        .count();
    assert!(completed >= 4, "runs end with their outcome: {runs:?}");
    for j in jobs.iter().filter(|j| j.state == JobState::Completed) {
        assert_eq!(j.checkpoint.found, 8, "{j:?}");
    }
}

/// `serve` with a short job lease and takeover delay, so a dead instance's work moves on in
/// seconds.
async fn serve_quick_takeover(stores: &Stores, jobs_dir: &Path) -> RunningServer {
    serve_with(stores, jobs_dir, |c| {
        c.job_lease = Duration::from_secs(1);
        c.schedule_takeover_after = Duration::from_secs(1);
    })
    .await
}

async fn pg_stores(url: &str, schema: &str) -> Stores {
    let s = Arc::new(
        dci_store::PgStore::connect_in_schema(url, schema, &MasterKey::from_bytes([9; 32]))
            .await
            .unwrap(),
    );
    (s.clone(), s)
}

/// A server on its own runtime, killed by dropping that runtime: no shutdown runs, its leases
/// are not ended (the in-process stand-in for `kill -9`). Send on the returned channel to kill.
fn doomed_server(
    url: String,
    schema: String,
    jobs_dir: std::path::PathBuf,
) -> std::sync::mpsc::Sender<()> {
    let (kill, killed) = std::sync::mpsc::channel::<()>();
    let (ready, is_ready) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(async {
            let stores = pg_stores(&url, &schema).await;
            serve_quick_takeover(&stores, &jobs_dir).await
        });
        ready.send(()).unwrap();
        let _ = killed.recv();
        std::mem::forget(server);
        rt.shutdown_background();
    });
    is_ready.recv().unwrap();
    kill
}

/// Sync search envelopes the sandbox received.
fn searches(sb: &Sandbox) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.endpoint.ends_with("/registry/sync/search"))
        .count()
}

/// A cron expression with one occurrence: `at` (whole seconds, UTC; the seventh field is the
/// year).
fn once_at(at: OffsetDateTime) -> String {
    format!(
        "{} {} {} {} {} * {}",
        at.second(),
        at.minute(),
        at.hour(),
        at.day(),
        u8::from(at.month()),
        at.year()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_run_whose_server_died_is_run_again_by_another_server() {
    on_fresh_postgres_schema(|url, schema| takeover(url, schema, false)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_sharing_the_dead_ones_directory_resumes_its_job_from_the_checkpoint() {
    on_fresh_postgres_schema(|url, schema| takeover(url, schema, true)).await;
}

/// Server A runs a scheduled occurrence and dies mid-way; server B (`shared`: on A's jobs
/// directory, else on its own) continues it once A's lease ended.
async fn takeover(url: String, schema: String, shared: bool) {
    const ROWS: usize = 120;
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(ROWS + 10))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = pg_stores(&url, &schema).await;
    add_source(&stores.0, source_input(&sb, slow)).await;
    let file = dir.path().join("ids.csv");
    std::fs::write(&file, csv_of(&ids(&sb, 0, ROWS))).unwrap();
    let now = OffsetDateTime::now_utc();
    let mut s = schedule(
        "once",
        &once_at(now + time::Duration::seconds(2)),
        file.display().to_string(),
        CatchUp::Latest,
        now,
    );
    // One identifier per envelope at 20 envelopes/s: several seconds of work.
    s.batch_size = Some(1);
    stores.1.create_schedule(&s).await.unwrap();

    // Server A claims the occurrence and runs part of it, then dies.
    let kill_a = doomed_server(url.clone(), schema.clone(), dir.path().join("jobs-a"));
    let (run_a, job_a) = eventually("server A running the occurrence", || async {
        let run = stores.1.latest_schedule_run(&s.id).await.unwrap()?;
        let job = stores
            .1
            .get_bulk_job(run.job_id.as_deref()?)
            .await
            .unwrap()?;
        (job.checkpoint.rows_done >= 5).then_some((run, job))
    })
    .await;
    kill_a.send(()).unwrap();
    let left = eventually("server A dead (its job no longer advancing)", || async {
        let before = stores.1.get_bulk_job(&job_a.id).await.unwrap()?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let after = stores.1.get_bulk_job(&job_a.id).await.unwrap()?;
        (before.checkpoint == after.checkpoint).then_some(after)
    })
    .await;
    assert_eq!(left.state, JobState::Running, "died mid-way: {left:?}");
    assert!(
        left.checkpoint.rows_done < ROWS as u64,
        "died mid-way: {left:?}"
    );
    let a_lease = left.lease.clone().expect("A held the job's lease");

    let sent_at_death = searches(&sb);
    let b_dir = dir.path().join(if shared { "jobs-a" } else { "jobs-b" });
    let b = serve_quick_takeover(&stores, &b_dir).await;
    let run = eventually("the run taken over and completed", || async {
        let run = stores.1.latest_schedule_run(&s.id).await.unwrap()?;
        (run.state == RunState::Completed).then_some(run)
    })
    .await;
    b.shutdown().await.unwrap();

    let runs = stores.1.list_schedule_runs(&s.id, 10).await.unwrap();
    assert_eq!(
        runs.len(),
        1,
        "still one row for the one occurrence: {runs:?}"
    );
    assert_eq!(run.occurrence_at, run_a.occurrence_at);
    if shared {
        // B reaches A's files: the same job continues from its checkpoint.
        assert_eq!(run.job_id, run_a.job_id, "{run:?}");
        let job = stores.1.get_bulk_job(&job_a.id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(job.checkpoint.runs, 2, "{job:?}");
        assert_eq!(job.checkpoint.found, ROWS as u64, "{job:?}");
        assert_ne!(job.lease.map(|l| l.holder), Some(a_lease.holder.clone()));
        let out = std::fs::read_to_string(job.spec.output.as_deref().unwrap()).unwrap();
        let lines: Vec<u64> = out
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["line"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        let want: Vec<u64> = (2..ROWS as u64 + 2).collect();
        assert_eq!(lines, want, "every row once, in order");
        let sent_after = searches(&sb) - sent_at_death;
        let rows_left = ROWS as u64 - left.checkpoint.rows_done;
        assert!(
            sent_after as u64 <= rows_left + 1,
            "at most the batch in flight is sent again: {sent_after} envelopes for {rows_left} rows"
        );
        assert_eq!(stores.1.list_bulk_jobs(10).await.unwrap().len(), 1);
        return;
    }
    // B cannot reach A's files: it runs the occurrence again from the schedule's input.
    assert_ne!(
        run.instance, run_a.instance,
        "run by another instance now: {run:?}"
    );
    assert_ne!(run.job_id, run_a.job_id, "{run:?}");
    let why = run.reason.clone().unwrap_or_default();
    assert!(
        why.contains("taken over") && why.contains(&a_lease.holder),
        "the run says what happened: {why}"
    );
    let new_job = stores
        .1
        .get_bulk_job(run.job_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new_job.state, JobState::Completed);
    assert_eq!(new_job.checkpoint.rows_done, ROWS as u64);
    assert_eq!(new_job.checkpoint.found, ROWS as u64, "{new_job:?}");
    assert!(new_job.spec.input.as_deref().unwrap().contains("jobs-b"));
    let old = stores.1.get_bulk_job(&job_a.id).await.unwrap().unwrap();
    assert_eq!(old.state, JobState::Failed);
    assert!(
        old.reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("abandoned"),
        "{old:?}"
    );
    assert_eq!(
        stores.1.list_bulk_jobs(10).await.unwrap().len(),
        2,
        "one job per instance that ran the occurrence"
    );
}
