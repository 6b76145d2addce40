//! `dci txn-status CODE --transaction-id ID [--async [--wait SECS]]`: ask the registry about a
//! transaction (sync by default), or, with `--local`, show what this store holds for it.

use clap::Args;
use dci_client::ops::{Operation, TxnStatusQuery};
use dci_protocol::codes::TxnType;

use crate::cli::exit;
use crate::cmd::search::{operations_for, ops_error, print_view, submitted};
use crate::context::{CmdError, block_on, say};

/// `dci txn-status`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci txn-status crvs_main --transaction-id 0190c0de-…
  dci txn-status crvs_main --transaction-id T-1 --txn-type subscribe
  dci txn-status crvs_main --transaction-id T-1 --async --wait 30
  dci txn-status crvs_main --transaction-id T-1 --local")]
pub(crate) struct TxnStatusArgs {
    /// The data source's code.
    code: String,
    /// The transaction asked about [required].
    #[arg(long, help_heading = "Transaction")]
    transaction_id: String,
    /// Its kind: search (default), subscribe, unsubscribe (CRVS, FR) or receipt (social, IBR).
    #[arg(long, default_value = "search", help_heading = "Transaction")]
    txn_type: String,
    /// Use the asynchronous endpoint (the answer arrives at the callback URI).
    #[arg(long = "async", help_heading = "Asynchronous")]
    async_: bool,
    /// With --async: wait up to SECS for the answer.
    #[arg(
        long,
        value_name = "SECS",
        requires = "async_",
        help_heading = "Asynchronous"
    )]
    wait: Option<u64>,
    /// Show the stored transaction (ACK, callbacks, results) without asking the registry.
    #[arg(long, conflicts_with_all = ["async_", "dry_run"], help_heading = "Sending")]
    local: bool,
    /// Print the exact signed envelope that would be sent, and send nothing.
    #[arg(long, help_heading = "Sending")]
    dry_run: bool,
}

/// Runs `dci txn-status`.
pub(crate) fn run(args: TxnStatusArgs, json: bool) -> u8 {
    match block_on(execute(args, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

async fn execute(a: TxnStatusArgs, json: bool) -> Result<(), CmdError> {
    let txn_type = match a.txn_type.as_str() {
        "search" | "subscribe" | "unsubscribe" | "receipt" => TxnType::parse_lenient(&a.txn_type),
        other => {
            return Err(CmdError::usage(format!(
                "--txn-type {other:?}: use search, subscribe, unsubscribe or receipt"
            )));
        }
    };
    let ops = operations_for(&a.code).await?;
    if a.local {
        let v = ops
            .transaction(&a.transaction_id)
            .await
            .map_err(ops_error)?;
        print_view(&v, json);
        return Ok(());
    }
    let q = TxnStatusQuery::transaction(a.transaction_id.clone()).txn_type(txn_type);
    if a.dry_run {
        let op = if a.async_ {
            Operation::TxnStatusAsync(q)
        } else {
            Operation::TxnStatus(q)
        };
        let env = ops.dry_run(&op).await.map_err(ops_error)?;
        say!("{}", serde_json::to_string_pretty(&env).unwrap_or_default());
        return Ok(());
    }
    if a.async_ {
        let sub = ops.txn_status_async(&q).await.map_err(ops_error)?;
        return submitted(&ops, sub, a.wait, json).await;
    }
    let r = ops.txn_status(&q).await.map_err(ops_error)?;
    if json {
        say!("{}", serde_json::to_value(&r).unwrap_or_default());
    } else {
        say!(
            "transaction {}: {} item(s) ({}), signature {}",
            a.transaction_id,
            r.items.len(),
            r.txn_type.as_deref().unwrap_or("-"),
            r.signature
        );
        for i in &r.items {
            say!(
                "  item {}: {}, {} record(s)",
                i.reference_id,
                i.status,
                i.records.len()
            );
            for rec in &i.records {
                say!("    {rec}");
            }
        }
    }
    Ok(())
}
