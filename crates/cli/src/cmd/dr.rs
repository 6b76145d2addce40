//! `dci dr status|details|support CODE --id TYPE:VALUE`: exit 0 found, 3 not found, 1 failure.

use clap::{Args, Subcommand};
use dci_client::registries::{DisabilityStatusKind, DrClient};

use super::crvs::{IdArgs, finish, operations, ops_error, parse_id};
use crate::context::{CmdError, block_on};

/// Examples shown under `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci dr status dr_main --id UIN:1234567890
  dci dr status dr_main --id UIN:1234567890 --via-search
  dci dr details dr_main --id UIN:1234567890
  dci dr support dr_main --id UIN:1234567890";

/// `dci dr …`.
#[derive(Debug, Subcommand)]
pub(crate) enum DrCommand {
    /// Disability status (approved / pending / expired, and disabled yes/no).
    Status(StatusArgs),
    /// Impairments (`sync/get-disability-details`).
    Details(IdArgs),
    /// Support needs (`sync/get-disability-support`).
    Support(IdArgs),
}

/// `dci dr status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    id: IdArgs,
    /// Read the status from the full record (sync search) instead of `sync/disabled`.
    #[arg(long, help_heading = "Lookup")]
    via_search: bool,
}

async fn client(code: &str) -> Result<DrClient, CmdError> {
    DrClient::new(operations(code).await?).map_err(ops_error)
}

fn kind(k: &Option<DisabilityStatusKind>) -> String {
    match k {
        None => "-".into(),
        Some(DisabilityStatusKind::Approved) => "approved".into(),
        Some(DisabilityStatusKind::Pending) => "pending".into(),
        Some(DisabilityStatusKind::Expired) => "expired".into(),
        Some(DisabilityStatusKind::Other(s)) => s.clone(),
    }
}

/// Runs a `dci dr` subcommand.
pub(crate) fn run(cmd: DrCommand, json: bool) -> u8 {
    match cmd {
        DrCommand::Status(a) => {
            let r = block_on(async {
                let id = parse_id(&a.id.id)?;
                let c = client(&a.id.code).await?;
                if a.via_search {
                    c.status_by_search(&id).await
                } else {
                    c.status(&id).await
                }
                .map_err(ops_error)
            });
            finish(json, &a.id.code, &format!("person {}", a.id.id), r, |s| {
                vec![
                    format!("disabled: {}", if s.disabled { "yes" } else { "no" }),
                    format!("status:   {}", kind(&s.status)),
                    format!("level:    {}", s.level.as_deref().unwrap_or("-")),
                ]
            })
        }
        DrCommand::Details(a) => {
            let r = block_on(async {
                let id = parse_id(&a.id)?;
                client(&a.code).await?.details(&id).await.map_err(ops_error)
            });
            finish(json, &a.code, &format!("person {}", a.id), r, |d| {
                vec![
                    format!("impairments: {}", d.impairment_types.join(", ")),
                    format!("status:      {}", kind(&d.status)),
                    format!("level:       {}", d.level.as_deref().unwrap_or("-")),
                ]
            })
        }
        DrCommand::Support(a) => {
            let r = block_on(async {
                let id = parse_id(&a.id)?;
                client(&a.code)
                    .await?
                    .disability_support(&id)
                    .await
                    .map_err(ops_error)
            });
            finish(json, &a.code, &format!("person {}", a.id), r, |s| {
                vec![
                    format!(
                        "human assistance:     {}",
                        s.human_assistance
                            .map_or("-", |b| if b { "yes" } else { "no" })
                    ),
                    format!(
                        "assistive technology: {}",
                        s.assistive_technology.join(", ")
                    ),
                    format!("housing support:      {}", s.housing_support.join(", ")),
                    format!("medical care:         {}", s.medical_care.join(", ")),
                    format!("animal assistance:    {}", s.animal_assistance.join(", ")),
                ]
            })
        }
    }
}
