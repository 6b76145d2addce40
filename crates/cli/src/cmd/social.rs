//! `dci social group|member CODE --id TYPE:VALUE`: exit 0 found, 3 not found, 1 failure.

use clap::Subcommand;
use dci_client::registries::SocialClient;

use super::crvs::{IdArgs, finish, operations, ops_error, opt, parse_id};
use crate::context::{CmdError, block_on};

/// Examples shown under `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci social group social_main --id HOUSEHOLD_ID:HH-0001
  dci social member social_main --id UIN:1234567890";

/// `dci social …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SocialCommand {
    /// The group (household) for a group id or a member's id, with its composition.
    Group(IdArgs),
    /// The member with this identifier.
    Member(IdArgs),
}

async fn client(code: &str) -> Result<SocialClient, CmdError> {
    SocialClient::new(operations(code).await?).map_err(ops_error)
}

/// Runs a `dci social` subcommand.
pub(crate) fn run(cmd: SocialCommand, json: bool) -> u8 {
    match cmd {
        SocialCommand::Group(a) => {
            let r = block_on(async {
                let id = parse_id(&a.id)?;
                client(&a.code).await?.group(&id).await.map_err(ops_error)
            });
            finish(json, &a.code, &format!("group for {}", a.id), r, |g| {
                let mut lines = vec![format!(
                    "group {} ({}), {} member(s), poverty score {}",
                    g.identifiers
                        .first()
                        .map_or_else(|| "-".to_owned(), ToString::to_string),
                    opt(&g.group_type),
                    g.members.len(),
                    g.poverty_score
                        .map_or_else(|| "-".to_owned(), |p| p.to_string())
                )];
                for m in &g.members {
                    lines.push(format!(
                        "  {:<12} {:<24} {}",
                        opt(&m.member_identifier),
                        opt(&m.name),
                        opt(&m.relationship)
                    ));
                }
                lines
            })
        }
        SocialCommand::Member(a) => {
            let r = block_on(async {
                let id = parse_id(&a.id)?;
                client(&a.code).await?.member(&id).await.map_err(ops_error)
            });
            finish(json, &a.code, &format!("member {}", a.id), r, |m| {
                vec![
                    format!("member: {}", opt(&m.member_identifier)),
                    format!("name:   {}", opt(&m.name)),
                    format!("sex:    {}", opt(&m.sex)),
                    format!("born:   {}", opt(&m.birth_date)),
                    format!("role:   {}", opt(&m.relationship)),
                ]
            })
        }
    }
}
