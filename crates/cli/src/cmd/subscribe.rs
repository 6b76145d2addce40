//! `dci subscribe CODE --event-type E [--filter JSON]` and `dci unsubscribe CODE --code C…`:
//! both asynchronous (the answer arrives at the source's callback URI); `--wait SECS` waits for
//! it, `--dry-run` prints the signed envelope and sends nothing.

use clap::Args;
use dci_client::ops::{Operation, SubscribeSpec};

use crate::cli::exit;
use crate::cmd::search::{json_arg, operations_for, ops_error, submitted};
use crate::context::{CmdError, block_on, say};

/// `dci subscribe`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci subscribe crvs_main --event-type LiveBirth --wait 30
  dci subscribe crvs_main --event-type Death --filter @filter.json --record-type Person
  dci subscribe crvs_main --event-type LiveBirth --dry-run")]
pub(crate) struct SubscribeArgs {
    /// The data source's code.
    code: String,
    /// reg_event_type to subscribe to, e.g. LiveBirth (CRVS) or REGISTER [required].
    #[arg(long, help_heading = "Subscription")]
    event_type: String,
    /// Filter: a predicate array, an expression, or {"type", "value"}; JSON or @file.
    #[arg(long, help_heading = "Subscription")]
    filter: Option<String>,
    /// notify_record_type (default Person).
    #[arg(long, help_heading = "Subscription")]
    record_type: Option<String>,
    /// Wait up to SECS for the subscription codes (received by `dci serve` on the same store).
    #[arg(long, value_name = "SECS", help_heading = "Asynchronous")]
    wait: Option<u64>,
    /// Print the exact signed envelope that would be sent, and send nothing.
    #[arg(long, help_heading = "Sending")]
    dry_run: bool,
}

/// `dci unsubscribe`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci unsubscribe crvs_main --code SUB-1,SUB-2 --wait 30")]
pub(crate) struct UnsubscribeArgs {
    /// The data source's code.
    code: String,
    /// Subscription code to cancel (repeat or comma-separate) [required].
    #[arg(
        long = "code",
        value_delimiter = ',',
        required = true,
        help_heading = "Subscriptions"
    )]
    codes: Vec<String>,
    /// Wait up to SECS for the registry's answer.
    #[arg(long, value_name = "SECS", help_heading = "Asynchronous")]
    wait: Option<u64>,
    /// Print the exact signed envelope that would be sent, and send nothing.
    #[arg(long, help_heading = "Sending")]
    dry_run: bool,
}

/// Runs `dci subscribe`.
pub(crate) fn run(args: SubscribeArgs, json: bool) -> u8 {
    match block_on(subscribe(args, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

/// Runs `dci unsubscribe`.
pub(crate) fn run_unsubscribe(args: UnsubscribeArgs, json: bool) -> u8 {
    match block_on(unsubscribe(args, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

async fn subscribe(a: SubscribeArgs, json: bool) -> Result<(), CmdError> {
    let filter = a
        .filter
        .as_deref()
        .map(|f| json_arg("filter", f))
        .transpose()?;
    let mut spec = SubscribeSpec::new(a.event_type.clone(), filter).map_err(ops_error)?;
    if let Some(t) = &a.record_type {
        spec = spec.notify_record_type(t.clone());
    }
    let ops = operations_for(&a.code).await?;
    if a.dry_run {
        let env = ops
            .dry_run(&Operation::Subscribe(spec))
            .await
            .map_err(ops_error)?;
        say!("{}", serde_json::to_string_pretty(&env).unwrap_or_default());
        return Ok(());
    }
    let sub = ops.subscribe(&spec).await.map_err(ops_error)?;
    submitted(&ops, sub, a.wait, json).await
}

async fn unsubscribe(a: UnsubscribeArgs, json: bool) -> Result<(), CmdError> {
    let ops = operations_for(&a.code).await?;
    if a.dry_run {
        let env = ops
            .dry_run(&Operation::Unsubscribe(a.codes.clone()))
            .await
            .map_err(ops_error)?;
        say!("{}", serde_json::to_string_pretty(&env).unwrap_or_default());
        return Ok(());
    }
    let sub = ops.unsubscribe(&a.codes).await.map_err(ops_error)?;
    submitted(&ops, sub, a.wait, json).await
}
