//! `dci bulk` as a user runs it, against the sandbox: `dci bulk search` is killed with
//! SIGKILL half-way, `dci bulk resume` finishes it, and the output holds every input row's
//! answer exactly once, in order, having re-sent at most one batch per worker. Also: JSON
//! progress lines on a non-terminal stderr, the summary and exit codes, `list`, `show`,
//! `cancel`, `dci source edit` taking the limits flags, and `--async` batches whose callbacks
//! `dci serve` receives into the same store.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dci_client::DataSourceInput;
use dci_client::bulk::JobState;
use dci_protocol::RegistryType;
use dci_sandbox::SandboxConfig;
use dci_store::OpenOptions;
use serde_json::Value;

#[path = "support/serve.rs"]
mod serve_support;
#[path = "support/sources.rs"]
mod sources;

fn dci(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dci"));
    c.env("DCI_HOME", home)
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_MASTER_KEY")
        .env_remove("DCI_CONFIG");
    c
}

async fn store_with_source(
    sb: &dci_sandbox::Sandbox,
    home: &std::path::Path,
    tune: impl FnOnce(&mut DataSourceInput),
) -> dci_store::Opened {
    let options = OpenOptions {
        home: Some(home.to_owned()),
        database_url: None,
        master_key: None,
        master_key_file: None,
        connections: dci_store::Connections::Pool,
    };
    let opened = dci_store::open(&options).await.unwrap();
    let mut input = sources::sandbox_input(sb, RegistryType::Crvs, "crvs_main");
    tune(&mut input);
    let source = input.validate().unwrap();
    opened.store.create_data_source(&source).await.unwrap();
    opened
}

fn envelopes(sb: &dci_sandbox::Sandbox) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.endpoint.ends_with("/registry/sync/search") && r.status == 200)
        .count()
}

const ROWS: usize = 2000;
const BATCH: usize = 10;
const WORKERS: usize = 2;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_half_way_then_resume_gives_every_answer_once() {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(ROWS + 100))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // 2 workers, 30 envelopes/s of 10: about 7 s for the whole input.
    let opened = store_with_source(&sb, &home, |i| {
        i.limits.max_concurrency = Some(WORKERS.to_string());
        i.limits.rate_per_sec = Some("30".into());
        i.limits.burst = Some("1".into());
        i.limits.max_batch_size = Some(BATCH.to_string());
    })
    .await;
    let input = dir.path().join("people.csv");
    let mut csv = String::from("id_type,id_value,case\n");
    for (n, e) in sb
        .identifiers(RegistryType::Crvs, 0, ROWS)
        .into_iter()
        .enumerate()
    {
        csv.push_str(&format!("{},{},c{n}\n", e.id_type, e.id_value));
    }
    std::fs::write(&input, csv).unwrap();
    let output = dir.path().join("answers.jsonl");

    let mut child = dci(&home)
        .args(["bulk", "search", "crvs_main", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for half of the rows to be checkpointed, then SIGKILL.
    let until = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let jobs = opened.ops.list_bulk_jobs(10).await.unwrap();
        if let Some(j) = jobs.first()
            && j.checkpoint.rows_done >= (ROWS / 2) as u64
        {
            break j.clone();
        }
        assert!(Instant::now() < until, "the run never got half-way");
        assert!(child.try_wait().unwrap().is_none(), "dci ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // While it runs, a second `dci bulk resume` of the job is refused, naming the process
    // that runs it, without starting a run; `show` says who runs it.
    let second = dci(&home)
        .args(["bulk", "resume", &job.id])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{said}");
    let pid = format!(":{}:", child.id());
    assert!(
        said.contains("is being run by") && said.contains(&pid),
        "{said}"
    );
    let shown = dci(&home).args(["bulk", "show", &job.id]).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("run by:") && shown.contains(&pid), "{shown}");
    let stored = opened.ops.get_bulk_job(&job.id).await.unwrap().unwrap();
    assert_eq!(stored.checkpoint.runs, 1, "the second resume did not run");
    assert!(
        stored.lease.is_some_and(|l| l.holder.contains(&pid)),
        "the second resume left the lease alone"
    );
    assert!(
        Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    // Not a terminal: JSON progress lines.
    let progress: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("progress").is_some())
        .collect();
    assert!(!progress.is_empty(), "stderr: {stderr}");
    assert_eq!(progress[0]["progress"]["total"], ROWS);
    assert!(progress[0]["progress"]["limits"]["breaker"].is_string());

    let stored = opened.ops.get_bulk_job(&job.id).await.unwrap().unwrap();
    assert_eq!(
        stored.state,
        JobState::Running,
        "a killed run stays resumable"
    );
    let done_at_kill = stored.checkpoint.rows_done;
    assert!(done_at_kill < ROWS as u64, "killed before the end");

    let out = dci(&home)
        .args(["--json", "bulk", "resume", &job.id, "--progress", "none"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &summary["summary"];
    assert_eq!(s["state"], "completed", "{summary}");
    assert_eq!(s["rows"], ROWS);
    assert_eq!(s["found"], ROWS);
    assert_eq!(s["runs"], 2);
    assert_eq!(
        s["rows_this_run"].as_u64().unwrap(),
        ROWS as u64 - done_at_kill
    );

    // Complete, in order, no duplicates; the extra column echoed.
    let text = std::fs::read_to_string(&output).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, (2..=ROWS as u64 + 1).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r["outcome"] == "found"));
    assert_eq!(rows[10]["fields"]["case"], "c10");
    // Re-sent: at most the batches in flight when killed, one per worker.
    let sent = envelopes(&sb);
    let batches = ROWS / BATCH;
    assert!(
        sent >= batches && sent - batches <= WORKERS,
        "{sent} envelopes for {batches} batches"
    );

    // show / list / cancel.
    let show = dci(&home)
        .args(["--json", "bulk", "show", &job.id])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["job"]["state"], "completed");
    assert_eq!(shown["job"]["checkpoint"]["rows_done"], ROWS);
    let list = dci(&home).args(["bulk", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains(&job.id));
    let cancel = dci(&home)
        .args(["bulk", "cancel", &job.id])
        .output()
        .unwrap();
    assert_eq!(
        cancel.status.code(),
        Some(2),
        "a finished job is not cancelled"
    );
    let resume = dci(&home)
        .args(["bulk", "resume", &job.id])
        .output()
        .unwrap();
    assert_eq!(resume.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&resume.stderr).contains("nothing to resume"));
    let unknown = dci(&home).args(["bulk", "show", "nope"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_to_stdout_with_an_error_row_exits_1_and_limits_flags_are_taken() {
    let sb = dci_sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    drop(store_with_source(&sb, &home, |_| {}).await);
    let ex = &sb.examples()[&RegistryType::Crvs];
    let input = format!(
        "{}:{}\n{}:{}\nnonsense\n",
        ex.found[0].id_type, ex.found[0].id_value, ex.not_found.id_type, ex.not_found.id_value
    );
    let mut child = dci(&home)
        .args([
            "bulk",
            "search",
            "crvs_main",
            "--input",
            "-",
            "--output",
            "-",
            "--output-format",
            "csv",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a row is error");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("line,id_type,id_value,outcome"),
        "{text}"
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].starts_with("1,") && lines[1].contains(",found,"));
    assert!(lines[2].contains(",not_found,"));
    assert!(lines[3].contains(",error,"));
    // The summary goes to stderr when the answers go to stdout.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("found 1, not_found 1, error 1"), "{err}");

    // `dci source edit` takes the limits flags; a bad one is named.
    let bad = dci(&home)
        .args(["source", "edit", "crvs_main", "--rate-limit", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--rate-limit"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let ok = dci(&home)
        .args([
            "--json",
            "source",
            "edit",
            "crvs_main",
            "--rate-limit",
            "25",
            "--max-batch-size",
            "20",
            "--breaker-failures",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let show = dci(&home)
        .args(["--json", "source", "show", "crvs_main"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    let limits = v
        .pointer("/source/limits")
        .or_else(|| v.get("limits"))
        .unwrap();
    assert_eq!(limits["rate_per_sec"], 25, "{v}");
    assert_eq!(limits["max_batch_size"], 20);
    // A batch larger than the source's maximum is refused.
    let too_big = dci(&home)
        .args([
            "bulk",
            "search",
            "crvs_main",
            "--input",
            "-",
            "--output",
            "-",
            "--batch-size",
            "50",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(too_big.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&too_big.stderr).contains("batch_size"));
}

#[tokio::test(flavor = "multi_thread")]
async fn async_batches_collect_their_callbacks_through_dci_serve() {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(200))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let opened = store_with_source(&sb, &home, |i| {
        i.callback_uri = Some(format!("http://{addr}/callback/crvs_main"));
    })
    .await;
    let serve = serve_support::start_serve(&home, &addr);
    assert_eq!(serve.base, format!("http://{addr}"));
    let ex = &sb.examples()[&RegistryType::Crvs];
    let mut text: String = sb
        .identifiers(RegistryType::Crvs, 0, 45)
        .iter()
        .map(|e| format!("{}:{}\n", e.id_type, e.id_value))
        .collect();
    text.push_str(&format!(
        "{}:{}\n",
        ex.not_found.id_type, ex.not_found.id_value
    ));
    let input = dir.path().join("ids.txt");
    std::fs::write(&input, text).unwrap();
    let output = dir.path().join("answers.jsonl");
    let out = dci(&home)
        .args([
            "--json",
            "bulk",
            "search",
            "crvs_main",
            "--async",
            "--wait",
            "60",
        ])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--batch-size", "10", "--progress", "none"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 46);
    assert!(
        rows[..45].iter().all(|r| r["outcome"] == "found"),
        "{rows:?}"
    );
    assert_eq!(rows[45]["outcome"], "not_found");
    // Five async transactions (batches of 10), each completed by its callback.
    let txns = opened
        .ops
        .list_transactions(&dci_client::ops::TransactionFilter {
            source_code: Some("crvs_main".into()),
            state: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(txns.len(), 5);
    assert!(
        txns.iter()
            .all(|t| t.state == dci_client::ops::TransactionState::Completed)
    );
    assert!(sb.callbacks().iter().any(|c| c.status == Some(200)));
    drop(serve);
}

/// Waits until the newest job is running with at least `rows` rows checkpointed and returns it.
async fn job_at(
    opened: &dci_store::Opened,
    child: &mut std::process::Child,
    rows: u64,
) -> dci_client::bulk::BulkJob {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(j) = opened.ops.list_bulk_jobs(10).await.unwrap().first()
            && j.state == JobState::Running
            && j.checkpoint.rows_done >= rows
        {
            return j.clone();
        }
        assert!(Instant::now() < until, "the run never got to {rows} rows");
        assert!(child.try_wait().unwrap().is_none(), "dci ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn term(child: &mut std::process::Child) -> std::process::Output {
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut out = std::process::Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    std::io::Read::read_to_end(child.stderr.as_mut().unwrap(), &mut out.stderr).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_leaves_the_job_interrupted_and_resumable_stdin_jobs_say_they_are_not() {
    const N: usize = 400;
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(N + 100))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let opened = store_with_source(&sb, &home, |i| {
        i.limits.max_concurrency = Some("1".into());
        i.limits.rate_per_sec = Some("20".into());
        i.limits.burst = Some("1".into());
        i.limits.max_batch_size = Some(BATCH.to_string());
    })
    .await;
    let lines: String = sb
        .identifiers(RegistryType::Crvs, 0, N)
        .into_iter()
        .map(|e| format!("{}:{}\n", e.id_type, e.id_value))
        .collect();
    let input = dir.path().join("people.txt");
    std::fs::write(&input, &lines).unwrap();
    let output = dir.path().join("answers.jsonl");

    let mut child = dci(&home)
        .args([
            "bulk",
            "search",
            "crvs_main",
            "--progress",
            "none",
            "--input",
        ])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let job = job_at(&opened, &mut child, (N / 4) as u64).await;
    let out = term(&mut child);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    assert!(
        stderr.contains(&format!("dci bulk resume {}", job.id)),
        "{stderr}"
    );
    let stored = opened.ops.get_bulk_job(&job.id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Interrupted);
    assert_eq!(stored.reason.as_deref(), Some("interrupted by SIGTERM"));
    assert!(
        stored.checkpoint.rows_done < N as u64,
        "stopped before the end"
    );
    let show = dci(&home).args(["bulk", "show", &job.id]).output().unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("state:        interrupted"), "{shown}");
    assert!(shown.contains("resumable:    yes"), "{shown}");

    let resume = dci(&home)
        .args(["--json", "bulk", "resume", &job.id, "--progress", "none"])
        .output()
        .unwrap();
    assert!(
        resume.status.success(),
        "{}",
        String::from_utf8_lossy(&resume.stderr)
    );
    let summary: Value = serde_json::from_slice(&resume.stdout).unwrap();
    assert_eq!(summary["summary"]["state"], "completed", "{summary}");
    let done = opened.ops.get_bulk_job(&job.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.reason), (JobState::Completed, None));
    let answered: Vec<u64> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        answered,
        (1..=N as u64).collect::<Vec<_>>(),
        "every row once"
    );

    // A job reading standard input: interrupted, it says up front it cannot be resumed.
    let mut child = dci(&home)
        .args(["bulk", "search", "crvs_main", "--progress", "none"])
        .args(["--input", "-", "--output"])
        .arg(dir.path().join("stdin-answers.jsonl"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), lines.as_bytes()).unwrap();
    let job = job_at(&opened, &mut child, BATCH as u64).await;
    let out = term(&mut child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--input FILE"), "{stderr}");
    let show = dci(&home).args(["bulk", "show", &job.id]).output().unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains("resumable:    no: its input is standard input"),
        "{shown}"
    );
    let resume = dci(&home)
        .args(["bulk", "resume", &job.id])
        .output()
        .unwrap();
    assert_eq!(resume.status.code(), Some(2));
    let err = String::from_utf8_lossy(&resume.stderr);
    assert!(
        err.contains("standard input") && err.contains("--input FILE --output FILE"),
        "{err}"
    );
}
