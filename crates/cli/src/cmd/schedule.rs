//! `dci schedule add|list|show|remove|runs`: bulk jobs that `dci serve` runs at each occurrence
//! of a cron expression (the behaviour is `dci_client::jobs`'; this edits the store that
//! `dci serve` reads, so a running server picks a new schedule up at its next tick).
//!
//! Exit codes: 0 done; 2 bad input (each field named); 3 no such schedule.

use clap::{Args, Subcommand};
use dci_client::jobs::{Schedule, ScheduleInput, ScheduleRun, add_schedule};
use serde_json::json;

use crate::cli::exit;
use crate::context::{CmdError, block_on, say};

/// Examples shown under `dci schedule --help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci schedule add --name 'monthly deaths' --source crvs_main --cron '0 2 1 * *' \\
      --input https://spmis.example/caseload.csv
  dci schedule add --name nightly --source crvs_main --cron '30 1 * * *' \\
      --input /srv/spmis/ids.txt --catch-up none
  dci schedule list
  dci schedule runs 0190c0de-…
  dci schedule remove 0190c0de-…

Cron: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, in UTC.
Catch-up after downtime: latest (default) runs the latest missed occurrence once; none records
it as missed. With several `dci serve` on one database exactly one runs each occurrence.";

/// `dci schedule`.
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Add a schedule.
    Add(AddArgs),
    /// Schedules.
    List,
    /// One schedule and its latest run.
    Show(IdArg),
    /// Remove a schedule and its runs (their jobs and results stay).
    Remove(IdArg),
    /// Runs of a schedule (latest occurrence first) with their outcome.
    Runs(RunsArgs),
}

/// `dci schedule add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// A name for people.
    #[arg(long)]
    name: String,
    /// The data source's code.
    #[arg(long)]
    source: String,
    /// Cron expression (UTC), e.g. '0 2 1 * *'.
    #[arg(long)]
    cron: String,
    /// An absolute file path, or an http(s) URL fetched at each run.
    #[arg(long)]
    input: String,
    /// csv, jsonl or lines (default: from the input's extension, else lines).
    #[arg(long, value_name = "FORMAT")]
    input_format: Option<String>,
    /// jsonl (default) or csv.
    #[arg(long, value_name = "FORMAT")]
    output_format: Option<String>,
    /// Identifiers per envelope (default: the source's limits.max_batch_size).
    #[arg(long, value_name = "N")]
    batch_size: Option<u32>,
    /// reg_record_type of every search.
    #[arg(long)]
    record_type: Option<String>,
    /// latest (default) or none.
    #[arg(long, value_name = "POLICY")]
    catch_up: Option<String>,
    /// Add it disabled.
    #[arg(long)]
    disabled: bool,
}

/// A schedule id.
#[derive(Debug, Args)]
pub(crate) struct IdArg {
    /// The schedule's id.
    id: String,
}

/// `dci schedule runs`.
#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    /// The schedule's id.
    id: String,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    limit: u32,
}

/// Runs `dci schedule`.
pub(crate) fn run(cmd: ScheduleCommand, json: bool) -> u8 {
    match block_on(execute(cmd, json)) {
        Ok(code) => code,
        Err(e) => e.report(json),
    }
}

fn no_schedule(id: &str) -> CmdError {
    CmdError::not_found(format!(
        "no schedule {id:?}: `dci schedule list` shows the ids"
    ))
}

fn flag_of(field: &str) -> &str {
    match field {
        "source_code" => "--source",
        "input_format" => "--input-format",
        "output_format" => "--output-format",
        "batch_size" => "--batch-size",
        "record_type" => "--record-type",
        "catch_up" => "--catch-up",
        "name" => "--name",
        "cron" => "--cron",
        "input" => "--input",
        other => other,
    }
}

async fn execute(cmd: ScheduleCommand, json: bool) -> Result<u8, CmdError> {
    let engine = crate::context::engine().await?;
    let store = engine.ops_store().clone();
    match cmd {
        ScheduleCommand::Add(a) => {
            let input = ScheduleInput {
                name: a.name,
                source_code: a.source,
                cron: a.cron,
                input: a.input,
                input_format: a.input_format,
                output_format: a.output_format,
                batch_size: a.batch_size,
                record_type: a.record_type,
                catch_up: a.catch_up,
                enabled: Some(!a.disabled),
            };
            let s = add_schedule(&engine, crate::context::CLI_ACTOR, input)
                .await
                .map_err(|e| match e {
                    dci_client::jobs::AddScheduleError::Invalid(errs) => CmdError::usage(
                        errs.errors()
                            .iter()
                            .map(|f| format!("{}: {}", flag_of(f.field), f.message))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                    dci_client::jobs::AddScheduleError::Store(s) => s.into(),
                    other => CmdError::failed(other.to_string()),
                })?;
            if json {
                say!("{}", json!({ "schedule": s }));
            } else {
                say!("added schedule {} ({})", s.id, s.name);
            }
        }
        ScheduleCommand::List => {
            let list = store.list_schedules().await?;
            if json {
                say!("{}", json!({ "schedules": list }));
            } else if list.is_empty() {
                say!("no schedules");
            } else {
                for s in &list {
                    say!("{}", line_of(s));
                }
            }
        }
        ScheduleCommand::Show(a) => {
            let s = store
                .get_schedule(&a.id)
                .await?
                .ok_or_else(|| no_schedule(&a.id))?;
            let last = store.latest_schedule_run(&a.id).await?;
            if json {
                say!("{}", json!({ "schedule": s, "last_run": last }));
            } else {
                say!("schedule:     {}", s.id);
                say!("name:         {}", s.name);
                say!("source:       {}", s.source_code);
                say!("cron (UTC):   {}", s.cron);
                say!("input:        {} ({:?})", s.input, s.input_format);
                say!("output:       {:?}", s.output_format);
                say!(
                    "batch size:   {}",
                    s.batch_size
                        .map_or_else(|| "the source's maximum".to_owned(), |b| b.to_string())
                );
                say!("catch-up:     {}", s.catch_up.as_str());
                say!("enabled:      {}", s.enabled);
                say!("created:      {}", s.created_at);
                match &last {
                    Some(r) => say!("last run:     {}", run_line(r)),
                    None => say!("last run:     none yet"),
                }
            }
        }
        ScheduleCommand::Remove(a) => {
            if !dci_client::jobs::remove_schedule(&engine, crate::context::CLI_ACTOR, &a.id).await?
            {
                return Err(no_schedule(&a.id));
            }
            if json {
                say!("{}", json!({ "schedule": a.id, "removed": true }));
            } else {
                say!("removed schedule {}", a.id);
            }
        }
        ScheduleCommand::Runs(a) => {
            if store.get_schedule(&a.id).await?.is_none() {
                return Err(no_schedule(&a.id));
            }
            let runs = store.list_schedule_runs(&a.id, a.limit).await?;
            if json {
                say!("{}", json!({ "runs": runs }));
            } else if runs.is_empty() {
                say!("no runs yet");
            } else {
                for r in &runs {
                    say!("{}", run_line(r));
                }
            }
        }
    }
    Ok(exit::OK)
}

fn line_of(s: &Schedule) -> String {
    format!(
        "{}  {:<20}  {:<12}  {:<15}  catch-up {:<6}  {}{}",
        s.id,
        s.name,
        s.source_code,
        s.cron,
        s.catch_up.as_str(),
        s.input,
        if s.enabled { "" } else { "  (disabled)" }
    )
}

fn run_line(r: &ScheduleRun) -> String {
    format!(
        "{}  {:<9}  job {}  by {}{}",
        r.occurrence_at,
        r.state,
        r.job_id.as_deref().unwrap_or("-"),
        r.instance,
        r.reason
            .as_deref()
            .map(|w| format!("  ({w})"))
            .unwrap_or_default()
    )
}
