//! `dci source test CODE`: the staged connection test, printed as a report or JSON.
//!
//! Also home of [`client_for`], which every command that talks to a registry uses to load a
//! data source and build its client over the opened store (so calls are audited and tokens
//! persisted).

use std::io::Write;

use clap::Args;
use dci_client::{DciClient, StageStatus, TestOptions, TestReport};

use crate::cli::exit;
use crate::context::{CmdError, block_on, open_store};

/// Arguments of `dci source test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The data source's code.
    code: String,
    /// Also send one real sync search (for an identifier that matches no one) to prove the
    /// credentials may read. The registry will see and may log it.
    #[arg(long)]
    probe: bool,
}

/// Loads a data source by code and builds its client over the store.
pub(crate) async fn client_for(code: &str) -> Result<DciClient, CmdError> {
    let opened = open_store().await?;
    let source = opened
        .store
        .get_data_source(code)
        .await?
        .ok_or_else(|| CmdError {
            code: exit::FAILED,
            kind: "not_found",
            message: format!("no data source {code:?}: `dci source list` shows the codes"),
            fields: None,
        })?;
    DciClient::builder(source)
        .store(opened.store)
        .build()
        .map_err(client_error)
}

/// A client error as a command error: the message already says what to fix.
pub(crate) fn client_error(e: dci_client::Error) -> CmdError {
    CmdError {
        code: exit::FAILED,
        kind: e.class(),
        message: e.to_string(),
        fields: None,
    }
}

/// Runs the test; exit 0 when it passed, 1 when it did not (the report says why).
pub(crate) fn run(args: TestArgs, json: bool) -> u8 {
    let result = block_on(async {
        let client = client_for(&args.code).await?;
        Ok::<_, CmdError>(
            dci_client::test_connection(
                &client,
                TestOptions {
                    probe_search: args.probe,
                },
            )
            .await,
        )
    });
    match result {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            let _ = if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                )
            } else {
                print_report(&mut out, &report)
            };
            if report.ok { exit::OK } else { exit::FAILED }
        }
        Err(e) => e.report(json),
    }
}

fn print_report(out: &mut impl Write, r: &TestReport) -> std::io::Result<()> {
    writeln!(out, "Connection test of {}", r.source)?;
    for s in &r.stages {
        let mark = match s.status {
            StageStatus::Pass => "pass",
            StageStatus::Warn => "WARN",
            StageStatus::Fail => "FAIL",
            StageStatus::Skipped => "skip",
        };
        writeln!(out, "  [{mark}] {:<48} {:>6} ms", s.label, s.duration_ms)?;
        writeln!(out, "         {}", s.message)?;
    }
    let verdict = if r.ok { "PASSED" } else { "FAILED" };
    writeln!(
        out,
        "{verdict}: {} (state: {})",
        r.summary,
        r.state.as_str()
    )
}
