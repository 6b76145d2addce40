//! `dci audit export --since --until --format jsonl|csv [--log calls|changes]`: the audit log
//! of outgoing calls (or the change audit) in a time range, oldest first, to stdout — the
//! same rows as `GET /api/v1/audit/export`.

use std::io::Write;

use clap::{Args, Subcommand};
use dci_client::AuditFilter;
use dci_client::export::{self, ExportFormat};
use dci_client::users::{ChangeFilter, TimeRange, UserStore};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::exit;
use crate::context::{CmdError, block_on, open_store};

/// `dci audit …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Write every record in [--since, --until) to stdout as JSON Lines or CSV.
    #[command(after_help = "\
Examples:
  dci audit export --since 2026-11-01T00:00:00Z --until 2026-12-01T00:00:00Z --format csv > nov.csv
  dci audit export --log changes --since 2026-11-01T00:00:00Z")]
    Export(ExportArgs),
}

/// Arguments of `dci audit export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// From this instant on (RFC 3339, inclusive), e.g. 2026-11-01T00:00:00Z.
    #[arg(long, help_heading = "Range")]
    since: Option<String>,
    /// Before this instant (RFC 3339, exclusive).
    #[arg(long, help_heading = "Range")]
    until: Option<String>,
    /// jsonl or csv.
    #[arg(long, default_value = "jsonl", help_heading = "Output")]
    format: String,
    /// calls (the audit log of outgoing calls) or changes (the change audit).
    #[arg(long, default_value = "calls", help_heading = "Output")]
    log: String,
}

fn instant(flag: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, CmdError> {
    v.map(|s| {
        OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| {
            CmdError::usage(format!(
                "--{flag} {s:?} is not an RFC 3339 time ({e}): use e.g. 2026-11-01T00:00:00Z"
            ))
        })
    })
    .transpose()
}

/// Runs `dci audit`.
pub(crate) fn run(cmd: AuditCommand, json: bool) -> u8 {
    let AuditCommand::Export(args) = cmd;
    match block_on(export_to(&args, &mut std::io::stdout().lock())) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

async fn export_to(args: &ExportArgs, out: &mut dyn Write) -> Result<(), CmdError> {
    let range = TimeRange {
        since: instant("since", args.since.as_deref())?,
        until: instant("until", args.until.as_deref())?,
    };
    if let (Some(s), Some(u)) = (range.since, range.until)
        && u <= s
    {
        return Err(CmdError::usage(
            "--until must be later than --since: the range is [since, until)",
        ));
    }
    let format: ExportFormat = args
        .format
        .parse()
        .map_err(|e: export::UnknownFormat| CmdError::usage(format!("--format: {e}")))?;
    let opened = open_store().await?;
    let written = match args.log.as_str() {
        "calls" => {
            let mut entries = opened
                .store
                .list_audit(&AuditFilter {
                    range,
                    limit: 0,
                    ..AuditFilter::default()
                })
                .await?;
            entries.reverse();
            export::write_audit(&entries, format, out)
        }
        "changes" => {
            let users: std::sync::Arc<dyn UserStore> = opened.ops.clone();
            let mut changes = users
                .list_changes(&ChangeFilter {
                    range,
                    ..ChangeFilter::default()
                })
                .await?;
            changes.reverse();
            export::write_changes(&changes, format, out)
        }
        other => {
            return Err(CmdError::usage(format!(
                "--log {other:?} is unknown: use calls (outgoing calls) or changes (the change audit)"
            )));
        }
    };
    written.map_err(|e| CmdError::failed(format!("writing the export: {e}")))
}
