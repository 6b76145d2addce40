//! `dci log [--source CODE] [--limit N]`: the audit log of outgoing calls, newest first.
//!
//! Entries hold no payloads, personal identifiers or credentials (see `dci_client::AuditEntry`).

use std::io::Write;
use std::sync::Arc;

use clap::Args;
use dci_client::{AuditEntry, AuditFilter, Store};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::cli::exit;
use crate::context::{CmdError, block_on, open_store};

/// Arguments of `dci log`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci log
  dci log --source crvs_main --limit 10
  dci --json log --limit 1000 | jq '.[] | select(.outcome != \"ok\")'")]
pub(crate) struct LogArgs {
    /// Only entries of this data source.
    #[arg(long, help_heading = "Filter")]
    source: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000), help_heading = "Filter")]
    limit: u32,
}

/// Prints the entries as a table, or a JSON array with `--json`.
pub(crate) fn run(args: LogArgs, json: bool) -> u8 {
    let mut out = std::io::stdout().lock();
    let result = block_on(async {
        let store = open_store().await?.store;
        execute(store, &args, json, &mut out).await
    });
    match result {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

pub(crate) async fn execute(
    store: Arc<dyn Store>,
    args: &LogArgs,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CmdError> {
    let filter = AuditFilter {
        source_code: args.source.clone(),
        limit: args.limit,
        ..AuditFilter::default()
    };
    let entries = store.list_audit(&filter).await?;
    // No entries for a code no source has (nor had): a typo, not an empty log.
    if let Some(code) = &args.source
        && entries.is_empty()
        && store.get_data_source(code).await?.is_none()
    {
        return Err(crate::context::no_source(code));
    }
    let written = if json {
        let v: Vec<_> = entries.iter().map(entry_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(v))
    } else {
        print_table(out, &entries)
    };
    written.map_err(|e| CmdError::failed(format!("cannot write the output: {e}")))
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
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    for e in entries {
        let at = e.at.format(fmt).unwrap_or_default();
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
            writeln!(out, "{:>22}{short}{more}", "")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_connection::testing::*;
    use dci_client::{DciRequest, Endpoint};

    #[tokio::test]
    async fn lists_calls_newest_first_filtered_and_free_of_secrets() {
        let sb = sandbox().await;
        let (_dir, engine) = store().await;
        let store = engine.store().clone();
        add_source(&*store, &sb, "crvs_a", GOOD).await;
        add_source(&*store, &sb, "crvs_b", "wrong").await;
        let a = engine.client("crvs_a").await.unwrap();
        let env = serde_json::json!({"header": {"message_id": "m-log-1", "action": "search",
            "message_ts": "2026-11-29T10:00:00Z", "sender_id": "spmis.example.org",
            "total_count": 1}, "message": {"transaction_id": "t-log-1", "search_request": []}});
        let _ = a
            .make_request(DciRequest::new(Endpoint::SyncSearch, env))
            .await;
        let b = engine.client("crvs_b").await.unwrap();
        let _ = b.token().await;

        let mut out = Vec::new();
        let args = LogArgs {
            source: None,
            limit: 10,
        };
        execute(store.clone(), &args, true, &mut out).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 3, "{v:#}");
        assert_eq!(rows[0]["source"], "crvs_b");
        assert_eq!(rows[0]["outcome"], "auth");
        assert_eq!(rows[0]["http_status"], 401);
        assert_eq!(rows[2]["action"], "token");
        assert_eq!(rows[1]["action"], "sync_search");
        assert_eq!(rows[1]["message_id"], "m-log-1");
        assert_eq!(rows[1]["transaction_id"], "t-log-1");

        let mut out = Vec::new();
        let args = LogArgs {
            source: Some("crvs_a".into()),
            limit: 1,
        };
        execute(store.clone(), &args, false, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows = text.lines().skip(1).filter(|l| !l.starts_with(' '));
        assert_eq!(rows.count(), 1, "{text}");
        assert!(
            text.contains("sync_search") && !text.contains("crvs_b"),
            "{text}"
        );
        assert!(!text.contains(GOOD) && !text.contains("wrong"));
    }
}
