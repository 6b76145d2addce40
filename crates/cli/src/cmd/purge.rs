//! `dci purge [--older-than-days N]`: deletes finished requests, callbacks and events older than
//! the retention (`serve.retention_days`, or the flag) once — for cron beside a `dci serve`
//! that runs without a retention, or to purge now.

use clap::Args;
use serde_json::json;

use crate::cli::exit;
use crate::config::settings;
use crate::context::{CmdError, block_on, open_store, say};

/// Arguments of `dci purge`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  DCI_RETENTION_DAYS=30 dci purge
  dci --json purge --older-than-days 90")]
pub(crate) struct PurgeArgs {
    /// Delete what finished more than this many days ago [default: serve.retention_days /
    /// DCI_RETENTION_DAYS].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=36_500))]
    older_than_days: Option<u64>,
}

pub(crate) fn run(args: PurgeArgs, json: bool) -> u8 {
    let result = block_on(async {
        let days = args
            .older_than_days
            .or(settings().retention_days.value)
            .ok_or_else(|| {
                CmdError::usage(
                    "no retention is set: pass --older-than-days N or set DCI_RETENTION_DAYS \
                     (serve.retention_days in the config file)",
                )
            })?;
        let ops = open_store().await?.ops;
        let before = time::OffsetDateTime::now_utc() - time::Duration::days(days as i64);
        let report = ops.purge_before(before).await?;
        Ok::<_, CmdError>((days, report))
    });
    match result {
        Ok((days, r)) => {
            if json {
                say!(
                    "{}",
                    json!({"older_than_days": days, "transactions": r.transactions,
                        "callbacks": r.callbacks, "events": r.events})
                );
            } else {
                say!(
                    "purged what finished more than {days} days ago: {} requests, {} callbacks, {} events",
                    r.transactions,
                    r.callbacks,
                    r.events
                );
            }
            exit::OK
        }
        Err(e) => e.report(json),
    }
}
