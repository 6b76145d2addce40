//! `dci ibr enrolled|dedupe|push-enrolment CODE …`: exit 0 found (enrolled, duplicate, all
//! accepted), 3 not found (not enrolled, no duplicate), 1 failure. `dedupe` fails closed.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use dci_client::registries::IbrClient;
use serde_json::Value;

use super::crvs::{IdArgs, finish, operations, ops_error, parse_id};
use crate::cli::exit;
use crate::context::{CmdError, block_on, say};

/// Examples shown under `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci ibr enrolled ibr_main --id UIN:1234567890
  dci ibr dedupe ibr_main --id UIN:1234567890 --id BRN:B-2024-17
  dci ibr push-enrolment ibr_main --file enrolments.json";

/// `dci ibr …`.
#[derive(Debug, Subcommand)]
pub(crate) enum IbrCommand {
    /// Programmes this person is enrolled in (`sync/enrolled`).
    Enrolled(IdArgs),
    /// Whether this person is already enrolled anywhere (fails closed: an error is never "no").
    Dedupe(DedupeArgs),
    /// Push enrolment updates from a JSON file (`sync/enrollment/updates`).
    PushEnrolment(PushArgs),
}

/// `dci ibr dedupe`.
#[derive(Debug, Args)]
pub(crate) struct DedupeArgs {
    /// The data source's code.
    code: String,
    /// Identifiers of the person as TYPE:VALUE (repeat for each) [required].
    #[arg(long, required = true, help_heading = "Lookup")]
    id: Vec<String>,
}

/// `dci ibr push-enrolment`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The data source's code.
    code: String,
    /// JSON: a beneficiary object, an array of them, or `{"beneficiaries": [...]}`
    /// [required].
    #[arg(long, help_heading = "Enrolment")]
    file: PathBuf,
}

async fn client(code: &str) -> Result<IbrClient, CmdError> {
    IbrClient::new(operations(code).await?).map_err(ops_error)
}

fn beneficiaries(file: &PathBuf) -> Result<Vec<Value>, CmdError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CmdError::usage(format!("--file {}: {e}", file.display())))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| CmdError::usage(format!("--file {}: not JSON ({e})", file.display())))?;
    Ok(match v {
        Value::Array(a) => a,
        Value::Object(mut m) if m.contains_key("beneficiaries") => {
            match m.remove("beneficiaries") {
                Some(Value::Array(a)) => a,
                _ => {
                    return Err(CmdError::usage(
                        "--file: \"beneficiaries\" must be an array of beneficiary objects",
                    ));
                }
            }
        }
        o @ Value::Object(_) => vec![o],
        _ => {
            return Err(CmdError::usage(
                "--file: give a beneficiary object, an array of them, or {\"beneficiaries\": [...]}",
            ));
        }
    })
}

/// Runs a `dci ibr` subcommand.
pub(crate) fn run(cmd: IbrCommand, json: bool) -> u8 {
    match cmd {
        IbrCommand::Enrolled(a) => {
            let r = block_on(async {
                let id = parse_id(&a.id)?;
                client(&a.code)
                    .await?
                    .enrolled(&id)
                    .await
                    .map_err(ops_error)
            });
            finish(json, &a.code, &format!("enrolment of {}", a.id), r, |e| {
                let mut lines = vec![format!("enrolled in {} programme(s)", e.programmes.len())];
                for p in &e.programmes {
                    lines.push(format!(
                        "  {:<12} {:<28} {:<10} since {}",
                        p.id.as_deref().unwrap_or("-"),
                        p.name.as_deref().unwrap_or("-"),
                        p.status.as_ref().map_or_else(
                            || "-".to_owned(),
                            |s| serde_json::to_value(s)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_else(|| format!("{s:?}"))
                        ),
                        p.enrolment_date.as_deref().unwrap_or("-")
                    ));
                }
                lines
            })
        }
        IbrCommand::Dedupe(a) => {
            let r = block_on(async {
                let ids =
                    a.id.iter()
                        .map(|s| parse_id(s))
                        .collect::<Result<Vec<_>, _>>()?;
                let d = client(&a.code)
                    .await?
                    .dedupe(&ids)
                    .await
                    .map_err(ops_error)?;
                Ok(d.duplicate.then_some(d))
            });
            finish(json, &a.code, "duplicate enrolment", r, |d| {
                vec![format!(
                    "duplicate: yes, enrolled in {}",
                    d.programmes.join(", ")
                )]
            })
        }
        IbrCommand::PushEnrolment(a) => {
            let r = block_on(async {
                let b = beneficiaries(&a.file)?;
                client(&a.code)
                    .await?
                    .push_enrolments(b)
                    .await
                    .map_err(ops_error)
            });
            match r {
                Err(e) => e.report(json),
                Ok(out) => {
                    if json {
                        say!(
                            "{}",
                            serde_json::json!({"source": a.code, "outcome": if out.all_accepted { "accepted" } else { "partly_rejected" }, "result": out})
                        );
                    } else {
                        for i in &out.items {
                            match &i.reason {
                                Some(r) => say!("{} {} ({r})", i.reference_id, i.status),
                                None => say!("{} {}", i.reference_id, i.status),
                            }
                        }
                    }
                    if out.all_accepted {
                        exit::OK
                    } else {
                        exit::FAILED
                    }
                }
            }
        }
    }
}
