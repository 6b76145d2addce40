//! Bulk search against the sandbox over real HTTP with a real SQLite store: one answer per
//! input row in order (found with records, not_found, error with the reason — bad rows
//! included), several identifiers per envelope, CSV in and out with extra columns echoed, the
//! circuit breaker opening while the registry is down and closing after its probe, transient
//! faults retried, and a run dropped mid-way resuming from its checkpoint without duplicates.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dci_client::bulk::{self, InputFormat, JobSpec, JobState, OutputFormat, RunOptions};
use dci_client::limits::{BreakerState, Limiter};
use dci_client::{DataSourceInput, Engine, LimitsDocument, Operations};
use dci_protocol::RegistryType;
use dci_sandbox::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, FaultTarget, Faults, Sandbox, SandboxConfig,
};
use dci_store::SqliteStore;
use secrecy::SecretString;
use serde_json::Value;

struct H {
    sb: Sandbox,
    engine: Engine,
    dir: tempfile::TempDir,
}

async fn harness(population: usize, tune: impl FnOnce(&mut DataSourceInput)) -> H {
    let sb = dci_sandbox::spawn(SandboxConfig::default().population(population))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open_file(
            &dir.path().join("t.sqlite3"),
            &dci_client::MasterKey::from_bytes([7; 32]),
        )
        .await
        .unwrap(),
    );
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
    let source = input.validate().unwrap();
    dci_client::Store::create_data_source(store.as_ref(), &source)
        .await
        .unwrap();
    let engine = Engine::builder(store.clone(), store)
        .queued_audit(false)
        .build();
    H { sb, engine, dir }
}

impl H {
    async fn ops(&self) -> (Operations, Limiter) {
        (
            self.engine.operations("crvs_main").await.unwrap(),
            self.engine.limiter("crvs_main").await.unwrap(),
        )
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Identifiers the sandbox knows, `n` of them from `offset`.
    fn ids(&self, offset: usize, n: usize) -> Vec<String> {
        self.sb
            .identifiers(RegistryType::Crvs, offset, n)
            .into_iter()
            .map(|e| format!("{}:{}", e.id_type, e.id_value))
            .collect()
    }

    /// Search envelopes the sandbox answered.
    fn envelopes_sent(&self) -> usize {
        self.sb
            .requests()
            .iter()
            .filter(|r| r.endpoint.ends_with("/registry/sync/search") && r.status == 200)
            .count()
    }
}

fn spec(
    input: &str,
    input_format: InputFormat,
    output: &str,
    format: OutputFormat,
    batch: u32,
) -> JobSpec {
    JobSpec {
        input: Some(input.into()),
        input_format,
        output: Some(output.into()),
        output_format: format,
        batch_size: batch,
        record_type: None,
        total_rows: None,
        async_wait_secs: None,
    }
}

fn jsonl(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn quick() -> RunOptions {
    RunOptions {
        max_attempts: 10,
        retry_pause: Duration::from_millis(20),
        ..RunOptions::default()
    }
}

#[tokio::test]
async fn every_row_gets_one_answer_in_order_with_several_identifiers_per_envelope() {
    let h = harness(200, |_| {}).await;
    let (ops, limiter) = h.ops().await;
    let missing = &h.sb.examples()[&RegistryType::Crvs].not_found;
    let found = h.ids(0, 7);
    // Lines: a comment, 7 known ids, an unknown one, a blank line, a malformed one.
    let mut text = String::from("# caseload\n");
    for id in &found {
        text.push_str(id);
        text.push('\n');
    }
    text.push_str(&format!(
        "{}:{}\n\nnot-an-identifier\n",
        missing.id_type, missing.id_value
    ));
    let input = h.path("ids.txt");
    std::fs::write(&input, &text).unwrap();
    let output = h.path("out.jsonl");

    let job = bulk::create_job(
        &ops,
        spec(&input, InputFormat::Lines, &output, OutputFormat::Jsonl, 3),
    )
    .await
    .unwrap();
    assert_eq!(job.spec.total_rows, Some(9));
    let mut seen = Vec::new();
    let summary = bulk::run_job(&ops, &job.id, &limiter, &quick(), None, |p| {
        seen.push(p.done)
    })
    .await
    .unwrap();

    let rows = jsonl(&output);
    assert_eq!(rows.len(), 9, "one answer per input row: {rows:?}");
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(
        lines,
        [2, 3, 4, 5, 6, 7, 8, 9, 11],
        "physical line numbers, in order"
    );
    for (r, id) in rows.iter().zip(&found) {
        assert_eq!(r["outcome"], "found", "{r}");
        assert_eq!(
            format!(
                "{}:{}",
                r["id_type"].as_str().unwrap(),
                r["id_value"].as_str().unwrap()
            ),
            *id
        );
        assert!(!r["records"].as_array().unwrap().is_empty());
    }
    assert_eq!(rows[7]["outcome"], "not_found", "{}", rows[7]);
    assert_eq!(rows[8]["outcome"], "error");
    assert!(
        rows[8]["reason"]["message"]
            .as_str()
            .unwrap()
            .contains("TYPE:VALUE")
    );

    assert_eq!(
        (summary.found, summary.not_found, summary.errors),
        (7, 1, 1)
    );
    assert_eq!(summary.state, JobState::Completed);
    assert!(!summary.all_answered(), "a row is error");
    // 8 valid identifiers in batches of 3: 3 envelopes, not 8.
    assert_eq!(h.envelopes_sent(), 3);
    assert_eq!(summary.batches_sent, 3);
    assert_eq!(seen.last(), Some(&9));
    let stored = ops.store().get_bulk_job(&job.id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Completed);
    assert_eq!(stored.checkpoint.rows_done, 9);
    assert_eq!(
        stored.checkpoint.output_offset,
        std::fs::metadata(&output).unwrap().len()
    );
    // A finished job cannot be resumed.
    let again = bulk::run_job(&ops, &job.id, &limiter, &quick(), None, |_| {}).await;
    assert!(again.unwrap_err().to_string().contains("nothing to resume"));
}

#[tokio::test]
async fn csv_in_csv_out_keeps_extra_columns_and_names_missing_fields() {
    let h = harness(50, |_| {}).await;
    let (ops, limiter) = h.ops().await;
    let ids = h.ids(0, 2);
    let (t0, v0) = ids[0].split_once(':').unwrap();
    let (t1, v1) = ids[1].split_once(':').unwrap();
    let input = h.path("people.csv");
    std::fs::write(
        &input,
        format!("case_id,id_type,id_value\nC-1,{t0},{v0}\n\"C-2, north\",{t1},{v1}\nC-3,UIN,\n"),
    )
    .unwrap();
    let output = h.path("out.csv");
    let job = bulk::create_job(
        &ops,
        spec(&input, InputFormat::Csv, &output, OutputFormat::Csv, 10),
    )
    .await
    .unwrap();
    let s = bulk::run_job(&ops, &job.id, &limiter, &quick(), None, |_| {})
        .await
        .unwrap();
    assert_eq!((s.found, s.not_found, s.errors), (2, 0, 1));
    let mut r = csv::Reader::from_path(&output).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header.last().map(String::as_str), Some("case_id"));
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][0], "2");
    assert_eq!(&rows[0][3], "found");
    assert_eq!(&rows[1][8], "C-2, north");
    assert_eq!(&rows[2][3], "error");
    assert!(rows[2][6].contains("id_value"), "{:?}", rows[2]);
    let records: Value = serde_json::from_str(&rows[0][7]).unwrap();
    assert!(records.as_array().is_some_and(|a| !a.is_empty()));

    // A CSV without the identifier columns is refused, naming them.
    std::fs::write(&input, "uin\n123\n").unwrap();
    let e = bulk::create_job(
        &ops,
        spec(&input, InputFormat::Csv, &output, OutputFormat::Csv, 10),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("id_type and id_value"), "{e}");
    assert!(e.is_invalid_input());
    // A batch larger than the source's limit is refused, naming the field.
    let e = bulk::create_job(
        &ops,
        spec(&input, InputFormat::Csv, &output, OutputFormat::Csv, 5000),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().starts_with("batch_size:"), "{e}");
}

#[tokio::test]
async fn the_breaker_opens_while_the_registry_is_down_probes_and_closes() {
    let h = harness(100, |i| {
        i.retry.max_retries = Some("0".into());
        i.limits = LimitsDocument {
            max_concurrency: Some("2".into()),
            breaker_failures: Some("2".into()),
            breaker_cooldown_secs: Some("1".into()),
            ..LimitsDocument::default()
        };
    })
    .await;
    let (ops, limiter) = h.ops().await;
    let ids = h.ids(0, 40);
    let input = h.path("ids.txt");
    std::fs::write(&input, ids.join("\n")).unwrap();
    let output = h.path("out.jsonl");
    let job = bulk::create_job(
        &ops,
        spec(&input, InputFormat::Lines, &output, OutputFormat::Jsonl, 10),
    )
    .await
    .unwrap();
    h.sb.set_faults(Faults::new(FaultTarget::Crvs).down(true))
        .unwrap();
    let sb_ref = &h.sb;
    let heal = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sb_ref.clear_faults();
    };
    let mut events = Vec::new();
    let opts = quick();
    let run = bulk::run_job(&ops, &job.id, &limiter, &opts, None, |p| {
        events.extend(p.breaker_events.iter().map(|e| e.state));
    });
    let (summary, ()) = tokio::join!(run, heal);
    let s = summary.unwrap();
    assert!(
        s.all_answered(),
        "every row answered once the registry is back: {s:?}"
    );
    assert_eq!(s.found, 40);
    assert!(s.limits.breaker_opened >= 1, "{s:?}");
    assert!(s.limits.breaker_probes >= 1, "{s:?}");
    assert!(s.retries >= 2, "{s:?}");
    assert_eq!(s.limits.breaker, Some(BreakerState::Closed));
    assert!(events.contains(&BreakerState::Open), "{events:?}");
    assert_eq!(events.last(), Some(&BreakerState::Closed), "{events:?}");
    // While open, envelopes were held back: far fewer 503s than a free-running retry loop.
    let refused = h.sb.requests().iter().filter(|r| r.status == 503).count();
    assert!(refused <= 10, "{refused} requests sent while down");
    assert_eq!(jsonl(&output).len(), 40);
}

#[tokio::test]
async fn transient_failures_are_retried_and_counted() {
    let h = harness(300, |i| {
        i.retry.max_retries = Some("0".into());
        i.limits.breaker_failures = Some("0".into());
    })
    .await;
    let (ops, limiter) = h.ops().await;
    let ids = h.ids(0, 200);
    let input = h.path("ids.txt");
    std::fs::write(&input, ids.join("\n")).unwrap();
    let output = h.path("out.jsonl");
    let job = bulk::create_job(
        &ops,
        spec(&input, InputFormat::Lines, &output, OutputFormat::Jsonl, 5),
    )
    .await
    .unwrap();
    h.sb.set_faults(Faults::new(FaultTarget::Crvs).http_500_ratio(0.3))
        .unwrap();
    let opts = RunOptions {
        max_attempts: 12,
        retry_pause: Duration::from_millis(1),
        ..RunOptions::default()
    };
    let s = bulk::run_job(&ops, &job.id, &limiter, &opts, None, |_| {})
        .await
        .unwrap();
    assert!(s.all_answered(), "{s:?}");
    assert_eq!(s.found, 200);
    assert!(s.retries > 0, "30 % of 40 envelopes fail at first: {s:?}");
    assert_eq!(s.batches_sent, 40 + s.retries);
    assert_eq!(s.limits.breaker_opened, 0, "breaker_failures 0: no breaker");
}

#[tokio::test]
async fn a_run_dropped_midway_resumes_from_its_checkpoint_without_duplicates() {
    let h = harness(3000, |i| {
        i.limits.max_concurrency = Some("3".into());
        // Slow enough that the run is stopped well before its end.
        i.limits.rate_per_sec = Some("40".into());
        i.limits.burst = Some("1".into());
    })
    .await;
    let (ops, limiter) = h.ops().await;
    let ids = h.ids(0, 2000);
    let input = h.path("ids.jsonl");
    let body: String = ids
        .iter()
        .map(|id| {
            let (t, v) = id.split_once(':').unwrap();
            format!("{{\"id_type\":\"{t}\",\"id_value\":\"{v}\",\"n\":1}}\n")
        })
        .collect();
    std::fs::write(&input, body).unwrap();
    let output = h.path("out.jsonl");
    let job = bulk::create_job(
        &ops,
        spec(&input, InputFormat::Jsonl, &output, OutputFormat::Jsonl, 20),
    )
    .await
    .unwrap();
    // Stop (drop the future, as Ctrl-C does) once 30 batches are answered.
    let stop = tokio::sync::Notify::new();
    let opts = quick();
    let run = bulk::run_job(&ops, &job.id, &limiter, &opts, None, |p| {
        if p.done >= 600 {
            stop.notify_one();
        }
    });
    tokio::select! {
        r = run => panic!("the run ended before it was stopped: {r:?}"),
        () = stop.notified() => {}
    }
    let cp = ops
        .store()
        .get_bulk_job(&job.id)
        .await
        .unwrap()
        .unwrap()
        .checkpoint;
    assert!(cp.rows_done >= 600 && cp.rows_done < 2000, "{cp:?}");
    // A half-written answer after the checkpoint, as a crash mid-write leaves.
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&output)
            .unwrap();
        f.write_all(b"{\"line\": 99999, \"outc").unwrap();
    }
    // Another holder is refused while the dropped run's lease lasts, naming that run's holder;
    // the same holder (this process resuming its own run) continues at once.
    match bulk::run_job(&ops, &job.id, &limiter, &quick(), None, |_| {}).await {
        Err(bulk::BulkError::Busy { holder, until, .. }) => {
            assert_eq!(holder, opts.holder);
            assert!(until.is_some());
        }
        other => panic!("a second holder ran the job: {other:?}"),
    }
    let sent_before = h.envelopes_sent();
    let s = bulk::run_job(&ops, &job.id, &limiter, &opts, None, |_| {})
        .await
        .unwrap();
    assert!(s.all_answered(), "{s:?}");
    assert_eq!(s.runs, 2);
    assert_eq!(s.rows_this_run, 2000 - cp.rows_done);

    let rows = jsonl(&output);
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(
        lines,
        (1..=2000).collect::<Vec<_>>(),
        "complete, in order, no duplicates"
    );
    assert!(
        rows.iter()
            .all(|r| r["outcome"] == "found" && r["fields"]["n"] == 1)
    );
    // Envelopes sent in all: the 100 batches plus at most the ones in flight when stopped.
    let envelopes = h.envelopes_sent();
    let resent = envelopes - 100;
    assert!(
        resent <= 3,
        "{resent} batches sent twice (sent {sent_before} before the stop)"
    );
    let by_outcome: BTreeMap<&str, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["outcome"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(by_outcome.get("found"), Some(&2000));
    let _ = Path::new(&output);
}
