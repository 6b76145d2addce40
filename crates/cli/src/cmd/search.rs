//! `dci search CODE --id TYPE:VALUE | --expression JSON | --predicate JSON […]`: sync search
//! (one page, or every page), async search (with `--wait`, completed by whichever process
//! receives the callback into the same store, e.g. `dci serve`), and `--dry-run`. Also what the
//! other operation commands share: building a data source's operations, JSON arguments that
//! may be `@file`, and printing transactions.

use std::time::Duration;

use clap::{ArgGroup, Args};
use dci_client::ops::{
    AsyncSubmission, Operation, Operations, OpsError, SearchQuery, SearchResult, SearchSpec,
    TransactionView,
};
use dci_protocol::RegistryType;
use dci_protocol::codes::SortOrder;
use serde_json::{Value, json};

use crate::cli::exit;
use crate::context::{CmdError, block_on, say};

/// `dci search`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("query").required(true).args(["id", "expression", "predicate"])),
    after_help = "\
Examples:
  dci search crvs_main --id UIN:1234567890
  dci search social_main --expression '{\"$and\": [{\"poverty_score\": {\"$lt\": 5}}]}' --all-pages
  dci search crvs_main --predicate @query.json --page 2 --page-size 50
  dci search crvs_main --id BRN:B-2024-17 --async --wait 30
  dci search crvs_main --id UIN:1234567890 --dry-run"
)]
pub(crate) struct SearchArgs {
    /// The data source's code.
    code: String,
    /// Search by identifier, TYPE:VALUE, e.g. UIN:1234567890 [required: one of --id,
    /// --expression, --predicate].
    #[arg(long, help_heading = "Query")]
    id: Option<String>,
    /// Search by expression: JSON (or @file), e.g. '{"$and": [{"poverty_score": {"$lt": 5}}]}'.
    #[arg(long, help_heading = "Query")]
    expression: Option<String>,
    /// Search by predicate: JSON array of clauses (or @file).
    #[arg(long, help_heading = "Query")]
    predicate: Option<String>,
    /// reg_record_type, e.g. Person.
    #[arg(long, help_heading = "Query")]
    record_type: Option<String>,
    /// reg_event_type, e.g. LiveBirth (CRVS).
    #[arg(long, help_heading = "Query")]
    event_type: Option<String>,
    /// Consent object: JSON (or @file).
    #[arg(long, help_heading = "Query")]
    consent: Option<String>,
    /// Sort key ATTRIBUTE[:asc|desc] (repeatable).
    #[arg(long, help_heading = "Pages")]
    sort: Vec<String>,
    /// Page number (from 1; needs --page-size).
    #[arg(long, help_heading = "Pages")]
    page: Option<u32>,
    /// Records per page.
    #[arg(long, help_heading = "Pages")]
    page_size: Option<u32>,
    /// Follow pagination to the last page.
    #[arg(long, conflicts_with = "async_", help_heading = "Pages")]
    all_pages: bool,
    /// Use the asynchronous endpoint: the result arrives at the source's callback URI.
    #[arg(long = "async", help_heading = "Asynchronous")]
    async_: bool,
    /// With --async: wait up to SECS for the result (received by `dci serve` on the same store).
    #[arg(
        long,
        value_name = "SECS",
        requires = "async_",
        help_heading = "Asynchronous"
    )]
    wait: Option<u64>,
    /// Our transaction id (default: a fresh UUID).
    #[arg(long, help_heading = "Sending")]
    transaction_id: Option<String>,
    /// Print the exact signed envelope that would be sent, and send nothing.
    #[arg(long, help_heading = "Sending")]
    dry_run: bool,
}

/// The operations of data source `code`, from the process's engine.
pub(crate) async fn operations_for(code: &str) -> Result<Operations, CmdError> {
    crate::context::operations(code).await
}

/// An operation's error as a command error: bad input exits 2, anything else 1.
pub(crate) fn ops_error(e: OpsError) -> CmdError {
    let kind = if e.is_invalid_input() {
        "invalid_input"
    } else if e.is_outcome_unknown() {
        "outcome_unknown"
    } else if e.is_rejected() {
        "rejected"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_not_found() {
        "not_found"
    } else {
        "failed"
    };
    CmdError {
        code: if e.is_invalid_input() {
            exit::USAGE
        } else {
            exit::FAILED
        },
        kind,
        message: e.to_string(),
        fields: None,
    }
}

/// A JSON argument, inline or `@file`. Errors name the flag.
pub(crate) fn json_arg(flag: &str, text: &str) -> Result<Value, CmdError> {
    let (body, origin) = match text.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| {
                CmdError::usage(format!("--{flag} @{path}: cannot read the file ({e})"))
            })?,
            format!(" in {path}"),
        ),
        None => (text.to_owned(), String::new()),
    };
    serde_json::from_str(&body)
        .map_err(|e| CmdError::usage(format!("--{flag}: not valid JSON{origin} ({e})")))
}

fn spec(a: &SearchArgs) -> Result<SearchSpec, CmdError> {
    let mut s = match (&a.id, &a.expression, &a.predicate) {
        (Some(id), _, _) => SearchSpec::by_id(id),
        (_, Some(e), _) => SearchSpec::expression(json_arg("expression", e)?),
        (_, _, Some(p)) => SearchSpec::predicate(json_arg("predicate", p)?),
        _ => {
            return Err(CmdError::usage(
                "give --id TYPE:VALUE, --expression JSON or --predicate JSON",
            ));
        }
    }
    .map_err(ops_error)?;
    if let Some(t) = &a.record_type {
        s = s.record_type(t.clone());
    }
    if let Some(t) = &a.event_type {
        s = s.event_type(t.clone());
    }
    for key in &a.sort {
        let (attr, order) = match key.rsplit_once(':') {
            Some((attr, "asc")) => (attr, SortOrder::Asc),
            Some((attr, "desc")) => (attr, SortOrder::Desc),
            _ => (key.as_str(), SortOrder::Asc),
        };
        s = s.sort(attr, order);
    }
    match (a.page, a.page_size) {
        (None, None) => {}
        (page, Some(size)) => s = s.page(page.unwrap_or(1), size),
        (Some(_), None) => {
            return Err(CmdError::usage(
                "--page needs --page-size: add --page-size N",
            ));
        }
    }
    if let Some(c) = &a.consent {
        s = s.consent(json_arg("consent", c)?);
    }
    Ok(s)
}

/// Prints an async submission, then (with `--wait`) the transaction once complete.
pub(crate) async fn submitted(
    ops: &Operations,
    sub: AsyncSubmission,
    wait: Option<u64>,
    json: bool,
) -> Result<(), CmdError> {
    let Some(secs) = wait else {
        if json {
            say!("{}", serde_json::to_value(&sub).unwrap_or_default());
        } else {
            say!(
                "{} transaction {} (correlation id {}); the result arrives at the callback URI — `dci txn-status {} --transaction-id {}` asks the registry",
                sub.ack_status,
                sub.transaction_id,
                sub.correlation_id.as_deref().unwrap_or("-"),
                ops.source().code,
                sub.transaction_id
            );
        }
        return Ok(());
    };
    let spinner = crate::progress::Spinner::start(
        format!(
            "waiting up to {secs} s for the answer to transaction {}",
            sub.transaction_id
        ),
        json,
    );
    let view = ops
        .await_transaction(&sub.transaction_id, Duration::from_secs(secs))
        .await;
    drop(spinner);
    let view = view.map_err(ops_error)?;
    print_view(&view, json);
    if view.state == dci_client::ops::TransactionState::Failed {
        let reason = view.error.as_ref().map_or_else(
            || {
                view.reason
                    .clone()
                    .unwrap_or_else(|| "no reason given".to_owned())
            },
            ToString::to_string,
        );
        return Err(CmdError {
            code: exit::FAILED,
            kind: "rejected",
            message: format!(
                "the registry rejected transaction {}: {reason}",
                view.transaction_id
            ),
            fields: None,
        });
    }
    Ok(())
}

/// Prints a stored transaction.
pub(crate) fn print_view(v: &TransactionView, json: bool) {
    if json {
        say!("{}", serde_json::to_value(v).unwrap_or_default());
        return;
    }
    say!(
        "transaction {} ({} on {}): {}",
        v.transaction_id,
        v.kind,
        v.source_code,
        v.state
    );
    if let Some(a) = &v.ack {
        say!(
            "  ack: {} (correlation id {})",
            a.ack_status,
            a.correlation_id.as_deref().unwrap_or("-")
        );
    }
    for c in &v.callbacks {
        say!(
            "  callback {} {} status={} signature={}",
            c.action,
            c.message_id,
            c.status.as_deref().unwrap_or("-"),
            c.signature
        );
    }
    for s in &v.subscriptions {
        say!(
            "  subscription {} {}",
            s.get("code").and_then(Value::as_str).unwrap_or("-"),
            s.get("status").and_then(Value::as_str).unwrap_or("-")
        );
    }
    print_items(&v.items);
    if let Some(e) = &v.error {
        say!("  registry error: {e}");
    }
    if let Some(r) = &v.reason {
        say!("  reason: {r}");
    }
}

fn print_items(items: &[dci_client::ops::SearchItemResult]) {
    for i in items {
        let page = i.pagination.map_or(String::new(), |p| {
            format!(
                " page {} of size {} ({} in total)",
                p.page_number, p.page_size, p.total_count
            )
        });
        let reason = i
            .reason
            .as_ref()
            .map_or(String::new(), |r| format!(" ({r})"));
        say!(
            "  item {}: {}{reason}, {} record(s){page}",
            i.reference_id,
            i.status,
            i.records.len()
        );
        for r in &i.records {
            say!("    {r}");
        }
    }
}

fn print_result(r: &SearchResult) {
    say!(
        "transaction {} (correlation id {}), signature {}",
        r.transaction_id,
        r.correlation_id.as_deref().unwrap_or("-"),
        r.signature
    );
    print_items(&r.items);
}

/// Runs `dci search`.
pub(crate) fn run(args: SearchArgs, json: bool) -> u8 {
    match block_on(execute(args, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

async fn execute(a: SearchArgs, json: bool) -> Result<(), CmdError> {
    let spec = spec(&a)?;
    let mut q = SearchQuery::one(spec.clone());
    if let Some(t) = &a.transaction_id {
        q = q.transaction_id(t.clone());
    }
    let ops = operations_for(&a.code).await?;
    if ops.source().registry_type == RegistryType::Crvs
        && let Some((id_type, _)) = a.id.as_deref().and_then(|i| i.split_once(':'))
    {
        crate::cmd::crvs::warn_unknown_id_type(id_type);
    }
    if a.dry_run {
        let op = if a.async_ {
            Operation::SearchAsync(q)
        } else {
            Operation::Search(q)
        };
        let env = ops.dry_run(&op).await.map_err(ops_error)?;
        say!("{}", serde_json::to_string_pretty(&env).unwrap_or_default());
        return Ok(());
    }
    if a.async_ {
        let sub = ops.submit_search_async(&q).await.map_err(ops_error)?;
        return submitted(&ops, sub, a.wait, json).await;
    }
    if a.all_pages {
        let mut pages = ops.search_pages(spec);
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(ops_error)?;
            if !json {
                print_result(&page);
            }
            all.push(page);
        }
        if json {
            let records: usize = all.iter().map(|p| p.records().count()).sum();
            say!("{}", json!({"pages": all, "records": records}));
        }
        return Ok(());
    }
    let r = ops.search(&q).await.map_err(ops_error)?;
    if json {
        say!("{}", serde_json::to_value(&r).unwrap_or_default());
    } else {
        print_result(&r);
    }
    Ok(())
}
