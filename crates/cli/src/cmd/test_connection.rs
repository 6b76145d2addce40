//! `dci source test CODE`: the staged connection test, printed as a report or JSON.

use std::io::Write;

use clap::Args;
use dci_client::{Engine, StageStatus, TestOptions, TestReport};

use crate::cli::exit;
use crate::context::{CmdError, block_on};

/// Arguments of `dci source test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The data source's code.
    code: String,
    /// Accepted for compatibility: the probe search (one real sync search for an identifier
    /// that matches no one, proving the credentials may search) now runs by default.
    #[arg(long, hide = true, conflicts_with = "no_probe")]
    probe: bool,
    /// Skip the permission check (the probe search): the registry then sees no test search,
    /// and the test cannot verify that the credentials may search.
    #[arg(long)]
    no_probe: bool,
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
    let mut out = std::io::stdout().lock();
    let result = block_on(async {
        let engine = crate::context::engine().await?;
        execute(&engine, &args, json, &mut out).await
    });
    match result {
        Ok(true) => exit::OK,
        Ok(false) => exit::FAILED,
        Err(e) => e.report(json),
    }
}

/// Runs the test and writes the report; `Ok(passed)`.
pub(crate) async fn execute(
    engine: &Engine,
    args: &TestArgs,
    json: bool,
    out: &mut impl Write,
) -> Result<bool, CmdError> {
    let report = engine
        .test_connection(
            &args.code,
            TestOptions {
                probe_search: !args.no_probe,
            },
        )
        .await?;
    let written = if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )
    } else {
        print_report(out, &report)
    };
    written.map_err(|e| CmdError::failed(format!("cannot write the report: {e}")))?;
    Ok(report.ok)
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

/// Shared by the tests of `source test`, `token` and `log`: a real SQLite store in a temp dir
/// and a sandbox registry.
#[cfg(test)]
pub(crate) mod testing {
    use dci_client::{AuthConfig, CredentialLocation, DataSourceInput, OAuth2Config, Store};
    use dci_protocol::RegistryType;
    use dci_sandbox::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Sandbox};
    use secrecy::SecretString;

    /// A temporary store and an engine over it (audit written before each call returns, so
    /// a test can read the log at once).
    pub(crate) async fn store() -> (tempfile::TempDir, dci_client::Engine) {
        let dir = tempfile::tempdir().unwrap();
        let opts = dci_store::OpenOptions {
            home: Some(dir.path().to_owned()),
            database_url: None,
            master_key: None,
            master_key_file: None,
            connections: dci_store::Connections::Pool,
        };
        let opened = dci_store::open(&opts).await.unwrap();
        let engine = dci_client::Engine::builder(opened.store, opened.ops)
            .queued_audit(false)
            .build();
        (dir, engine)
    }

    /// Adds an OAuth2 CRVS source on the sandbox under `code` with this secret.
    pub(crate) async fn add_source(store: &dyn Store, sb: &Sandbox, code: &str, secret: &str) {
        let input = DataSourceInput {
            code: code.into(),
            name: code.into(),
            registry_type: "crvs".into(),
            base_url: sb.registry_url(RegistryType::Crvs),
            auth: Some("oauth2".into()),
            token_url: Some(sb.token_url()),
            client_id: Some(DEMO_CLIENT_ID.into()),
            client_secret: Some(SecretString::from(secret.to_owned())),
            scope: Some("crvs.read".into()),
            sender_id: Some("spmis.example.org".into()),
            ..DataSourceInput::default()
        };
        let source = input.validate().unwrap();
        assert!(matches!(
            &source.auth,
            AuthConfig::OAuth2(OAuth2Config {
                credential_location: CredentialLocation::Body,
                ..
            })
        ));
        store.create_data_source(&source).await.unwrap();
    }

    pub(crate) async fn sandbox() -> Sandbox {
        dci_sandbox::spawn(dci_sandbox::SandboxConfig::default())
            .await
            .unwrap()
    }

    pub(crate) const GOOD: &str = DEMO_CLIENT_SECRET;
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use dci_client::SourceState;

    #[tokio::test]
    async fn a_good_source_passes_and_becomes_active() {
        let sb = sandbox().await;
        let (_dir, engine) = store().await;
        let store = engine.store().clone();
        add_source(&*store, &sb, "crvs_ok", GOOD).await;
        let args = TestArgs {
            code: "crvs_ok".into(),
            probe: false,
            no_probe: false,
        };
        let mut out = Vec::new();
        assert!(execute(&engine, &args, false, &mut out).await.unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("[pass] permission check"), "{text}");
        assert!(text.contains("PASSED"), "{text}");
        let s = store.get_data_source("crvs_ok").await.unwrap().unwrap();
        assert_eq!(s.state, SourceState::Active);
        assert!(s.last_test_at.is_some() && s.last_error.is_none());
    }

    #[tokio::test]
    async fn a_wrong_secret_fails_with_json_report_and_records_the_error() {
        let sb = sandbox().await;
        let (_dir, engine) = store().await;
        let store = engine.store().clone();
        add_source(&*store, &sb, "crvs_bad", "not-the-secret").await;
        let args = TestArgs {
            code: "crvs_bad".into(),
            probe: false,
            no_probe: true,
        };
        let mut out = Vec::new();
        assert!(!execute(&engine, &args, true, &mut out).await.unwrap());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["stages"][2]["stage"], "token");
        assert_eq!(v["stages"][2]["status"], "fail");
        assert!(!String::from_utf8_lossy(&out).contains("not-the-secret"));
        let s = store.get_data_source("crvs_bad").await.unwrap().unwrap();
        assert_eq!(s.state, SourceState::Error);
        assert!(s.last_error.unwrap().contains("client id and secret"));
    }

    #[tokio::test]
    async fn an_unknown_code_says_how_to_find_codes() {
        let (_dir, engine) = store().await;
        let args = TestArgs {
            code: "nope".into(),
            probe: false,
            no_probe: false,
        };
        let e = execute(&engine, &args, false, &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, "not_found");
        assert!(e.message.contains("dci source list"));
    }
}
