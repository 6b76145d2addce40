//! `dci fr farmer CODE --id TYPE:VALUE`: exit 0 found, 3 not found, 1 failure.

use clap::Subcommand;
use dci_client::registries::FarmerClient;

use super::crvs::{IdArgs, finish, operations, ops_error, opt, parse_id};
use crate::context::block_on;

/// Examples shown under `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci fr farmer fr_main --id FARMER_ID:FARMER_ID-000001";

/// `dci fr …`.
#[derive(Debug, Subcommand)]
pub(crate) enum FrCommand {
    /// The farmer with this identifier.
    Farmer(IdArgs),
}

/// Runs a `dci fr` subcommand.
pub(crate) fn run(cmd: FrCommand, json: bool) -> u8 {
    match cmd {
        FrCommand::Farmer(a) => {
            let r = block_on(async {
                let id = parse_id(&a.id)?;
                FarmerClient::new(operations(&a.code).await?)
                    .map_err(ops_error)?
                    .farmer(&id)
                    .await
                    .map_err(ops_error)
            });
            finish(json, &a.code, &format!("farmer {}", a.id), r, |f| {
                vec![
                    format!("farmer:    {}", opt(&f.member_identifier)),
                    format!("name:      {}", opt(&f.name)),
                    format!("farm type: {}", opt(&f.farm_type)),
                    format!(
                        "land:      {} ha",
                        f.land_area_hectares
                            .map_or_else(|| "-".to_owned(), |a| a.to_string())
                    ),
                    format!("place:     {}", opt(&f.place)),
                ]
            })
        }
    }
}
