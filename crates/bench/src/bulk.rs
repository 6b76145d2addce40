//! `dci-bench bulk`: `dci bulk search` (the real binary, a child process) over a generated CSV
//! of N identifiers against the sandbox (its own process), at batch sizes 1, 10 and 100, with
//! the peak RSS of the `dci` process (`VmHWM` from `/proc/PID/status`, sampled until it
//! exits) and identifiers answered per second; side by side with the baseline, the library's
//! single-item sync search (`Operations::search` of one identifier per envelope) at the same
//! concurrency in this process. Then a resume run: `dci bulk search` killed with SIGKILL at
//! 50 %, `dci bulk resume`, and the output checked complete, in order, without duplicates,
//! with the rows re-sent counted from the sandbox's request log.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use dci_client::ops::{SearchQuery, SearchSpec};

use crate::{SOURCE, get_json, setup};

#[derive(clap::Args)]
pub(crate) struct BulkArgs {
    /// Identifiers in the input of the batched runs (10 and 100 per envelope) and the resume run.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Identifiers of the single-item runs (batch size 1 and the library baseline), which
    /// send one envelope per identifier.
    #[arg(long, default_value_t = 20_000)]
    single_rows: u64,
    /// Calls in flight (the source's limits.max_concurrency), for both sides.
    #[arg(long, default_value_t = 4)]
    concurrency: u32,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    batch_sizes: Vec<u32>,
    /// Skip the kill -9 / resume run.
    #[arg(long)]
    no_resume: bool,
    /// Where to write the results (Markdown).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Distinct identifiers the sandbox is seeded with (the input cycles through them).
const POPULATION: u64 = 10_000;

struct Run {
    batch: u32,
    rows: u64,
    secs: f64,
    peak_rss_kib: u64,
    summary: serde_json::Value,
}

fn dci_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dci = exe.with_file_name("dci");
    if !dci.is_file() {
        bail!(
            "no dci binary beside {} : build it in the same profile (cargo build --release -p dci-cli)",
            exe.display()
        );
    }
    Ok(dci)
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Waits for `child`, sampling its peak RSS every 50 ms; returns (exit success, peak KiB).
fn wait_sampling(child: &mut Child) -> Result<(bool, u64)> {
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(k);
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status.success(), peak));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_input(path: &Path, ids: &[(String, String)], rows: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "id_type,id_value,case_id")?;
    for n in 0..rows {
        let (t, v) = &ids[(n % ids.len() as u64) as usize];
        writeln!(f, "{t},{v},case-{n}")?;
    }
    f.flush()?;
    Ok(())
}

fn dci(home: &str) -> Result<Command> {
    let mut c = Command::new(dci_exe()?);
    c.env("DCI_HOME", home)
        .env_remove("DCI_DATABASE_URL")
        .env_remove("DCI_MASTER_KEY")
        .env_remove("DCI_CONFIG");
    Ok(c)
}

fn bulk_search(home: &str, input: &Path, output: &Path, batch: u32) -> Result<Child> {
    dci(home)?
        .args([
            "--json",
            "bulk",
            "search",
            SOURCE,
            "--progress",
            "none",
            "--input",
        ])
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--batch-size", &batch.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting dci bulk search")
}

fn summary_of(child: Child) -> Result<serde_json::Value> {
    let out = child.wait_with_output()?;
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .map(|v| v["summary"].clone())
        .with_context(|| format!("dci's summary: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Search envelopes the sandbox has received so far (registry requests, token requests
/// left out).
async fn envelopes(sb_url: &str) -> Result<u64> {
    let s = get_json(&format!("{sb_url}/admin/stats")).await?;
    let recorded = s["requests"]["recorded"].as_u64().unwrap_or(0);
    let tokens = s["token_requests"].as_u64().unwrap_or(0);
    Ok(recorded.saturating_sub(tokens))
}

pub(crate) async fn bulk_bench(a: BulkArgs) -> Result<()> {
    let s = setup(&[("DCI_BENCH_POPULATION", &POPULATION.to_string())]).await?;
    // The source: the concurrency asked, batches up to 100, no rate limit.
    let mut source = s
        .opened
        .store
        .get_data_source(SOURCE)
        .await?
        .ok_or_else(|| anyhow!("no bench source"))?;
    source.limits.max_concurrency = Some(a.concurrency);
    source.limits.max_batch_size = Some(a.batch_sizes.iter().copied().max().unwrap_or(100));
    s.opened.store.update_data_source(&source).await?;
    s.engine.invalidate(SOURCE);

    let ids: Vec<(String, String)> = {
        let v = get_json(&format!(
            "{}/admin/examples?ids={POPULATION}&offset=0",
            s.sb_url
        ))
        .await?;
        v["crvs"]["ids"]
            .as_array()
            .ok_or_else(|| anyhow!("the sandbox listed no identifiers"))?
            .iter()
            .map(|e| {
                (
                    e["id_type"].as_str().unwrap_or_default().to_owned(),
                    e["id_value"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    if ids.is_empty() {
        bail!("the sandbox listed no identifiers");
    }
    let dir = s.home.path().to_owned();

    // Baseline: the library's single-item sync search, `concurrency` callers.
    let ops = s.engine.operations(SOURCE).await?;
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let ids_arc = Arc::new(ids.clone());
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (ops, next, errors, ids) = (ops.clone(), next.clone(), errors.clone(), ids_arc.clone());
        let n = a.single_rows;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (t, v) = &ids[(i % ids.len() as u64) as usize];
                let q = SearchQuery::one(SearchSpec::new(dci_protocol::message::Query::id(
                    t.clone(),
                    serde_json::Value::String(v.clone()),
                )));
                if ops.search(&q).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let base_secs = t0.elapsed().as_secs_f64();
    let base_rate = a.single_rows as f64 / base_secs;
    let base_errors = errors.load(Ordering::Relaxed);
    eprintln!("library single-item: {base_rate:.0} ids/s ({base_errors} errors)");

    // `dci bulk search` at each batch size.
    let mut runs = Vec::new();
    for &batch in &a.batch_sizes {
        let rows = if batch == 1 { a.single_rows } else { a.rows };
        let input = dir.join(format!("in_{rows}.csv"));
        if !input.exists() {
            write_input(&input, &ids, rows)?;
        }
        let output = dir.join(format!("out_{batch}.jsonl"));
        let t0 = Instant::now();
        let mut child = bulk_search(&s.home_s, &input, &output, batch)?;
        let (_, peak) = wait_sampling(&mut child)?;
        let secs = t0.elapsed().as_secs_f64();
        let summary = summary_of(child)?;
        eprintln!(
            "dci bulk, batch {batch}: {:.0} ids/s, peak RSS {} KiB",
            rows as f64 / secs,
            peak
        );
        let _ = std::fs::remove_file(&output);
        runs.push(Run {
            batch,
            rows,
            secs,
            peak_rss_kib: peak,
            summary,
        });
    }

    // Resume: kill -9 at 50 %, resume, check the output.
    let resume = if a.no_resume {
        None
    } else {
        Some(resume_run(&s, &dir, &ids, a.rows).await?)
    };

    let report = report(&a, base_rate, base_errors, &runs, resume.as_ref());
    println!("{report}");
    if let Some(out) = &a.out {
        std::fs::write(out, &report)?;
    }
    Ok(())
}

struct Resume {
    batch: u32,
    rows: u64,
    done_at_kill: u64,
    envelopes_first: u64,
    resent_rows: u64,
    complete: bool,
    duplicates: u64,
    peak_rss_kib: u64,
}

async fn resume_run(
    s: &crate::Setup,
    dir: &Path,
    ids: &[(String, String)],
    rows: u64,
) -> Result<Resume> {
    let batch = 100;
    let input = dir.join(format!("in_{rows}.csv"));
    if !input.exists() {
        write_input(&input, ids, rows)?;
    }
    let output = dir.join("out_resume.jsonl");
    let before = envelopes(&s.sb_url).await?;
    let mut child = bulk_search(&s.home_s, &input, &output, batch)?;
    let pid = child.id();
    let mut peak = 0;
    let job = loop {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(k);
        }
        if child.try_wait()?.is_some() {
            bail!("dci bulk search ended before 50 %");
        }
        let jobs = s.opened.ops.list_bulk_jobs(1).await?;
        if let Some(j) = jobs.first()
            && j.spec.output.as_deref() == Some(&*output.display().to_string())
            && j.checkpoint.rows_done >= rows / 2
        {
            break j.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    let _ = child.wait();
    let done_at_kill = s
        .opened
        .ops
        .get_bulk_job(&job)
        .await?
        .map(|j| j.checkpoint.rows_done)
        .unwrap_or(0);
    let envelopes_first = envelopes(&s.sb_url).await? - before;
    let mut child = dci(&s.home_s)?
        .args(["--json", "bulk", "resume", &job, "--progress", "none"])
        .stdout(Stdio::piped())
        .spawn()?;
    let (ok, peak2) = wait_sampling(&mut child)?;
    if !ok {
        bail!("dci bulk resume failed");
    }
    // Check the output: every line once, in order.
    let text = std::io::BufReader::new(std::fs::File::open(&output)?);
    let (mut expect, mut duplicates, mut complete) = (2u64, 0u64, true);
    for l in std::io::BufRead::lines(text) {
        let v: serde_json::Value = serde_json::from_str(&l?)?;
        let line = v["line"].as_u64().unwrap_or(0);
        if line < expect {
            duplicates += 1;
        } else if line != expect {
            complete = false;
            expect = line + 1;
        } else {
            expect += 1;
        }
    }
    complete &= expect == rows + 2;
    let resent_rows = (envelopes_first * u64::from(batch)).saturating_sub(done_at_kill);
    let _ = std::fs::remove_file(&output);
    Ok(Resume {
        batch,
        rows,
        done_at_kill,
        envelopes_first,
        resent_rows,
        complete,
        duplicates,
        peak_rss_kib: peak.max(peak2),
    })
}

fn report(
    a: &BulkArgs,
    base_rate: f64,
    base_errors: u64,
    runs: &[Run],
    resume: Option<&Resume>,
) -> String {
    let mut r = String::new();
    r.push_str(&format!(
        "## dci-bench bulk: {} identifiers (batch 1 and baseline: {}), concurrency {}\n\n",
        a.rows, a.single_rows, a.concurrency
    ));
    r.push_str("| side | batch | identifiers | seconds | identifiers/s | vs library single-item | peak RSS (MiB) | found | errors |\n");
    r.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    r.push_str(&format!(
        "| library `Operations::search`, one per envelope | 1 | {} | {:.1} | {:.0} | 1.00× | – | – | {} |\n",
        a.single_rows,
        a.single_rows as f64 / base_rate,
        base_rate,
        base_errors
    ));
    for run in runs {
        let rate = run.rows as f64 / run.secs;
        r.push_str(&format!(
            "| `dci bulk search` | {} | {} | {:.1} | {:.0} | {:.2}× | {:.1} | {} | {} |\n",
            run.batch,
            run.rows,
            run.secs,
            rate,
            rate / base_rate,
            run.peak_rss_kib as f64 / 1024.0,
            run.summary["found"],
            run.summary["errors"],
        ));
    }
    if let Some(x) = resume {
        r.push_str(&format!(
            "\nResume: batch {}, {} rows, `kill -9` at {} rows checkpointed ({} envelopes sent \
             before the kill); rows re-sent by the resume: {} (at most {} = one batch per worker); \
             output complete and in order: {}; duplicate rows: {}; peak RSS of both runs {:.1} MiB.\n",
            x.batch,
            x.rows,
            x.done_at_kill,
            x.envelopes_first,
            x.resent_rows,
            u64::from(x.batch) * u64::from(a.concurrency),
            if x.complete { "yes" } else { "NO" },
            x.duplicates,
            x.peak_rss_kib as f64 / 1024.0
        ));
    }
    r
}
