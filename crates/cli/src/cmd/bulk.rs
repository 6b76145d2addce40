//! `dci bulk search|resume|list|show|cancel`: bulk identifier searches as stored, resumable
//! jobs (the behaviour is `dci_client::bulk`'s). Progress goes to stderr: an indicatif bar on a
//! terminal, JSON lines otherwise (at most one a second, and every circuit-breaker change);
//! the final summary goes to stdout (stderr when the answers go to stdout).
//!
//! Exit codes: 0 every row got an answer (`found` or `not_found`); 1 some rows are `error`,
//! or the run stopped (Ctrl-C, cancelled) — `dci bulk resume JOB` continues it; 2 bad input;
//! 3 no such job or data source.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use dci_client::bulk::{
    self, BulkError, BulkJob, InputFormat, InputReader, JobSpec, JobState, OutputFormat,
    OutputWriter, Progress, RunOptions, Summary,
};
use dci_store::Connections;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::cli::exit;
use crate::context::{CmdError, block_on, say};

/// Examples shown under `dci bulk --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci bulk search crvs_main --input people.csv --output answers.jsonl
  dci bulk search crvs_main --input ids.txt --output answers.csv --batch-size 50
  dci bulk search crvs_main --input people.csv --output answers.jsonl --async --wait 300
  cat ids.txt | dci bulk search crvs_main --input - --input-format lines --output -
  dci bulk resume 0190c0de-…        (after Ctrl-C, kill or a crash)
  dci bulk list
  dci bulk show 0190c0de-…
  dci bulk cancel 0190c0de-…

Input: CSV with id_type,id_value columns (other columns are echoed), JSONL objects with
id_type and id_value, or lines TYPE:VALUE. Output: one row per input row with its line number
and outcome: found (with the records), not_found, or error (with the registry's reason).
Exit: 0 every row answered found/not_found, 1 some rows error or the run stopped.";

/// `dci bulk`.
#[derive(Debug, Subcommand)]
pub(crate) enum BulkCommand {
    /// Search every identifier of an input file (a new job).
    Search(SearchArgs),
    /// Continue a job from its checkpoint (after Ctrl-C, kill or a crash).
    Resume(ResumeArgs),
    /// Jobs, newest first.
    List(ListArgs),
    /// One job: state, checkpoint, counts.
    Show(JobArg),
    /// Cancel a job (a run in progress stops after its current batch).
    Cancel(JobArg),
}

/// `dci bulk search`.
#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// The data source's code.
    code: String,
    /// The input file, or - for standard input (not resumable).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// csv, jsonl or lines (default: from the input's extension, else lines).
    #[arg(long, value_name = "FORMAT")]
    input_format: Option<String>,
    /// The output file (created or replaced), or - for standard output (not resumable).
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// jsonl or csv (default: from the output's extension, else jsonl).
    #[arg(long, value_name = "FORMAT")]
    output_format: Option<String>,
    /// Identifiers per envelope (default: the source's limits.max_batch_size, 100).
    #[arg(long, value_name = "N")]
    batch_size: Option<u32>,
    /// reg_record_type of every search (e.g. Person).
    #[arg(long)]
    record_type: Option<String>,
    /// Asynchronous searches: each batch is submitted and its callback collected through the
    /// store (run `dci serve` on the same store to receive them; the source needs a
    /// callback_uri).
    #[arg(long = "async")]
    async_: bool,
    /// With --async: wait up to SECS for each batch's result (default 600).
    #[arg(long, value_name = "SECS", default_value_t = 600, requires = "async_")]
    wait: u64,
    #[command(flatten)]
    run: RunFlags,
}

/// How a run shows itself and retries.
#[derive(Debug, Args)]
pub(crate) struct RunFlags {
    /// Tries of a batch that fails transiently (timeout, connection, 429/5xx), the first
    /// included (default 3).
    #[arg(long, value_name = "N", default_value_t = 3)]
    max_attempts: u32,
    /// Progress on stderr: auto (a bar on a terminal, else JSON lines), bar, json, none.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    progress: String,
}

/// `dci bulk resume`.
#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    /// The job's id.
    job: String,
    #[command(flatten)]
    run: RunFlags,
}

/// `dci bulk list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// At most this many jobs.
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// A job id.
#[derive(Debug, Args)]
pub(crate) struct JobArg {
    /// The job's id.
    job: String,
}

/// Runs `dci bulk`.
pub(crate) fn run(cmd: BulkCommand, json: bool) -> u8 {
    match block_on(execute(cmd, json)) {
        Ok(code) => code,
        Err(e) => e.report(json),
    }
}

async fn execute(cmd: BulkCommand, json: bool) -> Result<u8, CmdError> {
    match cmd {
        BulkCommand::Search(a) => search(a, json).await,
        BulkCommand::Resume(a) => {
            let store = crate::context::engine_with(Connections::Pool)
                .await?
                .ops_store()
                .clone();
            let job = store
                .get_bulk_job(&a.job)
                .await?
                .ok_or_else(|| no_job(&a.job))?;
            if let (false, Some(why)) = (job.state.is_final(), job.spec.not_resumable()) {
                return Err(CmdError::usage(format!(
                    "bulk job {}: {why}; start a new job with --input FILE --output FILE",
                    job.id
                )));
            }
            drive(&job, None, &a.run, json).await
        }
        BulkCommand::List(a) => {
            let store = crate::context::engine().await?.ops_store().clone();
            let jobs = store.list_bulk_jobs(a.limit).await?;
            if json {
                say!("{}", json!({ "jobs": jobs }));
            } else if jobs.is_empty() {
                say!("no bulk jobs");
            } else {
                for j in &jobs {
                    say!("{}", line_of(j));
                }
            }
            Ok(exit::OK)
        }
        BulkCommand::Show(a) => {
            let store = crate::context::engine().await?.ops_store().clone();
            let job = store
                .get_bulk_job(&a.job)
                .await?
                .ok_or_else(|| no_job(&a.job))?;
            if json {
                say!("{}", json!({ "job": job }));
            } else {
                show(&job);
            }
            Ok(exit::OK)
        }
        BulkCommand::Cancel(a) => {
            let store = crate::context::engine().await?.ops_store().clone();
            let job = store
                .get_bulk_job(&a.job)
                .await?
                .ok_or_else(|| no_job(&a.job))?;
            let changed = store
                .set_bulk_job_state(
                    &a.job,
                    JobState::Cancelled,
                    Some("cancelled by the user"),
                    time::OffsetDateTime::now_utc(),
                )
                .await?;
            if !changed {
                return Err(CmdError::usage(format!(
                    "bulk job {} is {}: only a running job can be cancelled",
                    a.job, job.state
                )));
            }
            if json {
                say!("{}", json!({ "job": a.job, "state": "cancelled" }));
            } else {
                say!("cancelled bulk job {}", a.job);
            }
            Ok(exit::OK)
        }
    }
}

fn no_job(id: &str) -> CmdError {
    CmdError::not_found(format!("no bulk job {id:?}: `dci bulk list` shows the ids"))
}

fn line_of(j: &BulkJob) -> String {
    let cp = &j.checkpoint;
    let total = j
        .spec
        .total_rows
        .map_or_else(|| "?".to_owned(), |t| t.to_string());
    format!(
        "{}  {:<9}  {:<12}  {}/{} rows  found {}  not_found {}  error {}",
        j.id, j.state, j.source_code, cp.rows_done, total, cp.found, cp.not_found, cp.errors
    )
}

/// Whether `dci bulk resume` can continue `j`, and if not why (naming the flags that fix it).
fn resumable(j: &BulkJob) -> String {
    if j.state.is_final() {
        return format!("no ({})", j.state);
    }
    match j.spec.not_resumable() {
        None => "yes".to_owned(),
        Some(why) => format!("no: {why} (start a new job with --input FILE --output FILE)"),
    }
}

fn show(j: &BulkJob) {
    let cp = &j.checkpoint;
    say!("job:          {}", j.id);
    say!("source:       {}", j.source_code);
    say!("state:        {}", j.state);
    if let Some(r) = &j.reason {
        say!("reason:       {r}");
    }
    say!(
        "input:        {} ({:?})",
        j.spec.input.as_deref().unwrap_or("-"),
        j.spec.input_format
    );
    say!(
        "output:       {} ({:?})",
        j.spec.output.as_deref().unwrap_or("-"),
        j.spec.output_format
    );
    say!("resumable:    {}", resumable(j));
    if let Some(l) = &j.lease {
        match l.until {
            Some(u) if !l.is_free(time::OffsetDateTime::now_utc()) => {
                say!("run by:       {} (lease until {u})", l.holder)
            }
            _ => say!("last run by:  {}", l.holder),
        }
    }
    say!("batch size:   {}", j.spec.batch_size);
    say!(
        "rows:         {} of {}",
        cp.rows_done,
        j.spec
            .total_rows
            .map_or_else(|| "?".to_owned(), |t| t.to_string())
    );
    say!(
        "outcomes:     found {}, not_found {}, error {}",
        cp.found,
        cp.not_found,
        cp.errors
    );
    say!(
        "envelopes:    {} sent, {} retried; {} run(s)",
        cp.batches_sent,
        cp.retries,
        cp.runs
    );
    say!("created:      {}", j.created_at);
    say!("updated:      {}", j.updated_at);
}

fn absolute(p: &Path) -> Result<String, CmdError> {
    std::path::absolute(p)
        .map(|p| p.display().to_string())
        .map_err(|e| CmdError::usage(format!("{}: {e}", p.display())))
}

async fn search(a: SearchArgs, json: bool) -> Result<u8, CmdError> {
    let stdin = a.input.as_os_str() == "-";
    let stdout = a.output.as_os_str() == "-";
    let input_format = match &a.input_format {
        Some(f) => InputFormat::parse(f).ok_or_else(|| {
            CmdError::usage(format!("--input-format {f:?}: use csv, jsonl or lines"))
        })?,
        None => InputFormat::from_path(&a.input).unwrap_or(InputFormat::Lines),
    };
    let output_format = match &a.output_format {
        Some(f) => OutputFormat::parse(f)
            .ok_or_else(|| CmdError::usage(format!("--output-format {f:?}: use jsonl or csv")))?,
        None => OutputFormat::from_path(&a.output).unwrap_or(OutputFormat::Jsonl),
    };
    // The run makes many calls at once (see `drive`): the engine opens with the pool before
    // anything else opens it with one connection.
    crate::context::engine_with(Connections::Pool).await?;
    let ops = crate::cmd::search::operations_for(&a.code).await?;
    let spec = JobSpec {
        input: (!stdin).then(|| absolute(&a.input)).transpose()?,
        input_format,
        output: (!stdout).then(|| absolute(&a.output)).transpose()?,
        output_format,
        batch_size: a
            .batch_size
            .unwrap_or_else(|| ops.source().limits.batch_size()),
        record_type: a.record_type.clone(),
        total_rows: None,
        async_wait_secs: a.async_.then_some(a.wait),
    };
    if let Some(input) = &spec.input
        && !Path::new(input).is_file()
    {
        return Err(CmdError::usage(format!(
            "--input {input}: no such file: give the path of a CSV, JSONL or TYPE:VALUE file, or - for standard input"
        )));
    }
    let job = bulk::create_job(&ops, spec).await.map_err(bulk_error)?;
    let streams = if stdin || stdout {
        let reader = if stdin {
            InputReader::from_reader(
                Box::new(std::io::BufReader::new(std::io::stdin())),
                input_format,
            )
        } else {
            InputReader::open(
                Path::new(job.spec.input.as_deref().unwrap_or_default()),
                input_format,
                0,
                0,
            )
        }
        .map_err(|e| CmdError::usage(format!("--input: {e}")))?;
        let out: Box<dyn Write + Send> = if stdout {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::File::create(job.spec.output.as_deref().unwrap_or_default())
                    .map_err(|e| CmdError::failed(format!("--output: {e}")))?,
            )
        };
        let writer = OutputWriter::new(out, output_format, reader.extra_columns().to_vec())
            .map_err(|e| CmdError::failed(format!("--output: {e}")))?;
        Some((reader, writer))
    } else {
        None
    };
    drive(&job, streams, &a.run, json).await
}

/// Runs `job` to its end (or Ctrl-C), showing progress, then prints the summary.
async fn drive(
    job: &BulkJob,
    streams: Option<(InputReader, OutputWriter)>,
    flags: &RunFlags,
    json: bool,
) -> Result<u8, CmdError> {
    // A run makes many calls at once, each writing its rows: a pool, not one connection.
    let engine = crate::context::engine_with(Connections::Pool).await?;
    let ops = engine.operations(&job.source_code).await?;
    let limiter = engine.limiter(&job.source_code).await?;
    let to_stdout = job.spec.output.is_none();
    let opts = RunOptions {
        max_attempts: flags.max_attempts.max(1),
        ..RunOptions::default()
    };
    let mut shown = Shown::new(&flags.progress, job)?;
    if !json && !to_stdout && shown.bar.is_none() {
        let _ = writeln!(std::io::stderr(), "bulk job {} started", job.id);
    }
    let run = bulk::run_job(&ops, &job.id, &limiter, &opts, streams, |p| shown.update(p));
    let result = tokio::select! {
        r = run => Ok(r),
        signal = dci_server::stop_signal() => Err(signal),
    };
    shown.finish();
    let result = match result {
        Ok(r) => r,
        Err(signal) => {
            // The run is dropped: its in-flight batches stop; the checkpoint saved after the
            // last written batch is where a resume continues.
            ops.store()
                .set_bulk_job_state(
                    &job.id,
                    JobState::Interrupted,
                    Some(&format!("interrupted by {signal}")),
                    time::OffsetDateTime::now_utc(),
                )
                .await?;
            let next = match job.spec.not_resumable() {
                None => format!("continue with `dci bulk resume {}`", job.id),
                Some(_) => "it cannot be resumed (standard input or output): start it again with --input FILE and --output FILE".to_owned(),
            };
            let _ = writeln!(
                std::io::stderr(),
                "interrupted by {signal}: the answers up to the last checkpoint are kept; {next}"
            );
            return Ok(exit::FAILED);
        }
    };
    let summary = result.map_err(bulk_error)?;
    print_summary(&summary, json, to_stdout);
    Ok(if summary.all_answered() {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn bulk_error(e: BulkError) -> CmdError {
    match e {
        BulkError::Ops(o) => crate::cmd::search::ops_error(o),
        BulkError::Store(s) => s.into(),
        BulkError::NotFound(id) => no_job(&id),
        e if e.is_invalid_input() => CmdError::usage(e.to_string()),
        e => CmdError::failed(e.to_string()),
    }
}

fn print_summary(s: &Summary, json: bool, to_stdout: bool) {
    let text = if json {
        json!({ "summary": s }).to_string()
    } else {
        let mut t = format!(
            "bulk job {}: {} — {} rows ({} this run) in {:.1} s: found {}, not_found {}, error {}; {} envelopes, {} retried; circuit breaker opened {} time(s)",
            s.job_id,
            s.state,
            s.rows,
            s.rows_this_run,
            s.duration_secs,
            s.found,
            s.not_found,
            s.errors,
            s.batches_sent,
            s.retries,
            s.limits.breaker_opened
        );
        if !s.state.is_final() {
            t.push_str(&format!("; continue with `dci bulk resume {}`", s.job_id));
        }
        t
    };
    if to_stdout {
        let _ = writeln!(std::io::stderr(), "{text}");
    } else {
        say!("{text}");
    }
}

/// How progress is shown.
struct Shown {
    bar: Option<ProgressBar>,
    json_lines: bool,
    last: Option<Instant>,
}

impl Shown {
    fn new(mode: &str, job: &BulkJob) -> Result<Shown, CmdError> {
        let tty = std::io::stderr().is_terminal();
        let (bar, json_lines) = match mode {
            "auto" => (tty, !tty),
            "bar" => (true, false),
            "json" => (false, true),
            "none" => (false, false),
            other => {
                return Err(CmdError::usage(format!(
                    "--progress {other:?}: use auto, bar, json or none"
                )));
            }
        };
        let bar = bar.then(|| {
            let pb = ProgressBar::with_draw_target(
                job.spec.total_rows,
                ProgressDrawTarget::stderr_with_hz(4),
            );
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} rows  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            pb.set_style(style);
            pb.set_position(job.checkpoint.rows_done);
            pb.enable_steady_tick(Duration::from_millis(250));
            pb
        });
        Ok(Shown {
            bar,
            json_lines,
            last: None,
        })
    }

    fn update(&mut self, p: &Progress) {
        if let Some(pb) = &self.bar {
            pb.set_position(p.done);
            let breaker = p.limits.breaker.map_or("closed", |b| b.as_str());
            pb.set_message(format!(
                "errors {}  retries {}  breaker {breaker}",
                p.errors, p.retries
            ));
            for e in &p.breaker_events {
                pb.println(format!(
                    "circuit breaker {} after {} consecutive transient failures",
                    e.state.as_str(),
                    e.consecutive_failures
                ));
            }
            return;
        }
        if !self.json_lines {
            return;
        }
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        let done = p.total.is_some_and(|t| p.done >= t);
        if due || done || !p.breaker_events.is_empty() {
            self.last = Some(Instant::now());
            let _ = writeln!(std::io::stderr(), "{}", json!({ "progress": p }));
        }
    }

    fn finish(&mut self) {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
    }
}
