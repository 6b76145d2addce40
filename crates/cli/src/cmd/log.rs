//! `dci log [--source CODE] [--limit N]`: the audit log of outgoing calls, newest first.
//!
//! Entries hold no payloads, personal identifiers or credentials (see `dci_client::AuditEntry`).

use std::io::Write;

use clap::Args;
use dci_client::{AuditEntry, AuditFilter};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::cli::exit;
use crate::context::{CmdError, block_on, open_store};

/// Arguments of `dci log`.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Only entries of this data source.
    #[arg(long)]
    source: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
}

/// Prints the entries as a table, or a JSON array with `--json`.
pub(crate) fn run(args: LogArgs, json: bool) -> u8 {
    let result = block_on(async {
        let store = open_store().await?.store;
        let filter = AuditFilter {
            source_code: args.source.clone(),
            limit: args.limit,
        };
        Ok::<_, CmdError>(store.list_audit(&filter).await?)
    });
    let entries = match result {
        Ok(e) => e,
        Err(e) => return e.report(json),
    };
    let mut out = std::io::stdout().lock();
    let written = if json {
        let v: Vec<_> = entries.iter().map(entry_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(v))
    } else {
        print_table(&mut out, &entries)
    };
    if written.is_err() {
        exit::FAILED
    } else {
        exit::OK
    }
}

fn entry_json(e: &AuditEntry) -> serde_json::Value {
    json!({
        "at": e.at.format(&Rfc3339).unwrap_or_default(),
        "source": e.source_code,
        "endpoint": e.endpoint,
        "action": e.action,
        "message_id": e.message_id,
        "transaction_id": e.transaction_id,
        "http_status": e.http_status,
        "outcome": e.outcome.as_str(),
        "duration_ms": e.duration_ms,
        "attempt": e.attempt,
        "error": e.error,
    })
}

fn print_table(out: &mut impl Write, entries: &[AuditEntry]) -> std::io::Result<()> {
    if entries.is_empty() {
        return writeln!(out, "no audit entries");
    }
    writeln!(
        out,
        "{:<20} {:<16} {:<16} {:>4} {:<16} {:>7} {:>3}  ENDPOINT / ERROR",
        "AT (UTC)", "SOURCE", "ACTION", "HTTP", "OUTCOME", "MS", "TRY"
    )?;
    for e in entries {
        let at =
            e.at.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        let status = e
            .http_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{at:<20} {:<16} {:<16} {status:>4} {:<16} {:>7} {:>3}  {}",
            e.source_code,
            e.action,
            e.outcome.as_str(),
            e.duration_ms,
            e.attempt,
            e.endpoint
        )?;
        if let Some(err) = &e.error {
            let short: String = err.chars().take(160).collect();
            let more = if err.chars().count() > 160 { "…" } else { "" };
            writeln!(out, "{:>71}{short}{more}", "")?;
        }
    }
    Ok(())
}
