//! `dci demo`: the main job in one command. Starts the local sandbox registry and `dci serve`
//! (console, gateway API, callbacks) in this process, over a fresh `DCI_HOME` (a temporary
//! directory unless `--home` is given) whose master key is created on first use, adds an OAuth2
//! data source pointing at the sandbox, tests it with the same staged test as the console, and
//! prints the console URL and how to sign in. Runs until Ctrl-C/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use dci_client::{DataSourceInput, OpsStore, Store, TestOptions};
use dci_protocol::RegistryType;
use dci_server::{AdminToken, AppState};
use dci_store::{OpenOptions, SqliteStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::cli::exit;
use crate::context::CmdError;

/// The code of the data source the demo creates.
const DEMO_SOURCE: &str = "sandbox_crvs";

/// Arguments of `dci demo`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci demo
  dci demo --listen 127.0.0.1:9000 --home ./demo-data")]
pub(crate) struct DemoArgs {
    /// Address of the console and API (if it is taken, a free port is used instead).
    #[arg(long, default_value = "127.0.0.1:8080", help_heading = "Demo")]
    listen: SocketAddr,
    /// Keep the demo's data here (default: a temporary directory removed on exit).
    #[arg(long, help_heading = "Demo")]
    home: Option<PathBuf>,
}

pub(crate) fn run(args: DemoArgs, json: bool) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return CmdError::failed(format!("starting the async runtime: {e}")).report(json),
    };
    match runtime.block_on(demo(args, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

/// Removes the temporary home when the demo ends.
struct TempHome(Option<PathBuf>);

impl Drop for TempHome {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

async fn demo(args: DemoArgs, json: bool) -> Result<(), CmdError> {
    // Before any secret is loaded: no core dumps (they would hold the secrets in clear).
    let allow = crate::config::settings()
        .allow_core_dumps
        .value
        .unwrap_or(false);
    if let Err(e) = dci_server::harden_process_with(allow) {
        tracing::warn!(error = %e, "could not turn core dumps off");
    }

    let (home, cleanup) = match args.home {
        Some(h) => (h, TempHome(None)),
        None => {
            let mut bytes = [0u8; 6];
            unique_suffix(&mut bytes);
            let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let h = std::env::temp_dir().join(format!("dci-demo-{suffix}"));
            (h.clone(), TempHome(Some(h)))
        }
    };

    // 1. The sandbox registry (loopback, free port, demo client sandbox/sandbox-secret).
    let sandbox = dci_sandbox::spawn(dci_sandbox::SandboxConfig::default())
        .await
        .map_err(|e| CmdError::failed(format!("starting the sandbox: {e}")))?;

    // 2. The store under the demo home; the master key file is created here on first use.
    let options = OpenOptions {
        home: Some(home.clone()),
        database_url: None,
        master_key: None,
        master_key_file: None,
        connections: dci_store::Connections::Pool,
    };
    let opened = dci_store::open(&options).await?;
    let key = dci_store::master_key::read_file(&home.join(dci_store::MASTER_KEY_FILE))
        .map_err(|e| CmdError::failed(e.to_string()))?;
    drop(opened);
    let sqlite = Arc::new(
        SqliteStore::open_file(&home.join(dci_store::DATABASE_FILE), &key)
            .await
            .map_err(|e| CmdError::failed(e.to_string()))?,
    );
    let store: Arc<dyn Store> = sqlite.clone();
    let ops: Arc<dyn OpsStore> = sqlite;

    // 3. The admin token: DCI_ADMIN_TOKEN, else one generated now (only its hash is kept).
    let env_token = std::env::var(dci_server::ADMIN_TOKEN_ENV)
        .ok()
        .map(SecretString::from);
    let (admin, new_token) = AdminToken::load_or_generate(env_token, &home)
        .map_err(|e| CmdError::failed(e.to_string()))?;

    // 4. Listen (before creating the source, so its callback URI has the real port).
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(listen = %args.listen, error = %e, "address taken: using a free port");
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(|e| CmdError::failed(format!("cannot listen on 127.0.0.1: {e}")))?
        }
    };
    let addr = listener
        .local_addr()
        .map_err(|e| CmdError::failed(format!("listener address: {e}")))?;
    let base = format!("http://{addr}");

    // 5. The sandbox data source, unless a kept home already has it.
    if store.get_data_source(DEMO_SOURCE).await?.is_none() {
        let source = DataSourceInput {
            code: DEMO_SOURCE.into(),
            name: "Sandbox CRVS (demo)".into(),
            registry_type: "crvs".into(),
            base_url: sandbox.registry_url(RegistryType::Crvs),
            auth: Some("oauth2".into()),
            token_url: Some(sandbox.token_url()),
            client_id: Some(dci_sandbox::DEMO_CLIENT_ID.into()),
            client_secret: Some(SecretString::from(dci_sandbox::DEMO_CLIENT_SECRET)),
            scope: Some("crvs.read".into()),
            credential_location: Some("body".into()),
            sender_id: Some("dci-demo.local".into()),
            receiver_id: Some(sandbox.registry_id().to_owned()),
            callback_uri: Some(format!("{base}/callback/{DEMO_SOURCE}")),
            notes: Some(
                "Created by `dci demo`: the local sandbox registry with its demo-only credentials."
                    .into(),
            ),
            ..DataSourceInput::default()
        }
        .validate()
        .map_err(|e| CmdError::failed(format!("the demo data source is invalid: {e}")))?;
        store.create_data_source(&source).await?;
    } else {
        // A kept home: the sandbox listens on a new port each run, so point the source at it.
        let existing = store
            .get_data_source(DEMO_SOURCE)
            .await?
            .ok_or_else(|| CmdError::failed("the demo data source vanished"))?;
        let mut input = DataSourceInput::from_source(&existing);
        input.base_url = sandbox.registry_url(RegistryType::Crvs);
        input.token_url = Some(sandbox.token_url());
        input.callback_uri = Some(format!("{base}/callback/{DEMO_SOURCE}"));
        let updated = input
            .validate_update(&existing)
            .map_err(|e| CmdError::failed(format!("the demo data source is invalid: {e}")))?;
        store.update_data_source(&updated).await?;
    }

    let state = AppState::new(store.clone(), ops, admin);

    // 6. Serve now: the test's callback stage calls our own callback route.
    let server = tokio::spawn(dci_server::serve(
        listener,
        state.clone(),
        dci_server::shutdown_signal(),
    ));

    // 7. Test it the way the console's Test Connection does.
    let report = state
        .engine
        .test_connection(DEMO_SOURCE, TestOptions::default())
        .await
        .map_err(|e| CmdError::failed(e.to_string()))?;
    let example = sandbox
        .examples()
        .get(&RegistryType::Crvs)
        .and_then(|e| e.found.first().cloned());

    {
        let mut out = std::io::stdout().lock();
        if json {
            let mut line = json!({
                "console": format!("{base}/login"),
                "api": format!("{base}/api/v1"),
                "sandbox": sandbox.base_url(),
                "home": home.display().to_string(),
                "data_source": DEMO_SOURCE,
                "test": report,
                "example": example.as_ref().map(|e| json!({"id_type": e.id_type, "id_value": e.id_value})),
            });
            if let Some(t) = &new_token {
                line["admin_token"] = t.expose_secret().into();
            }
            let _ = writeln!(out, "{line}");
        } else {
            let _ = writeln!(out, "dci demo: sandbox registry + dci serve, ready\n");
            let _ = writeln!(out, "  console:      {base}/login");
            match &new_token {
                Some(t) => {
                    let _ = writeln!(out, "  sign in with the admin token: {}", t.expose_secret());
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  sign in with the admin token from DCI_ADMIN_TOKEN (or the one printed on this home's first run)"
                    );
                }
            }
            let _ = writeln!(
                out,
                "  data source:  {DEMO_SOURCE} (OAuth2 → sandbox) at {base}/sources/{DEMO_SOURCE}"
            );
            let _ = writeln!(
                out,
                "  test:         {} — {}",
                if report.ok {
                    "passed, state active"
                } else {
                    "FAILED"
                },
                report.summary
            );
            for s in &report.stages {
                let _ = writeln!(
                    out,
                    "    {:<12} {:<7} {}",
                    s.stage.as_str(),
                    s.status.as_str(),
                    s.message
                );
            }
            if let Some(e) = &example {
                let _ = writeln!(
                    out,
                    "  try a search: {base}/search → {DEMO_SOURCE}, {} {}",
                    e.id_type, e.id_value
                );
            }
            let _ = writeln!(
                out,
                "  gateway API:  {base}/api/v1 (Authorization: Bearer <admin token>)"
            );
            let _ = writeln!(
                out,
                "  sandbox:      {} (client sandbox / sandbox-secret, demo only)",
                sandbox.base_url()
            );
            let _ = writeln!(
                out,
                "  data:         {}{}",
                home.display(),
                if cleanup.0.is_some() {
                    " (temporary; removed on exit)"
                } else {
                    ""
                }
            );
            let _ = writeln!(out, "\nPress Ctrl-C to stop.");
        }
        let _ = out.flush();
    }
    if !report.ok {
        tracing::warn!(summary = %report.summary, "the demo data source did not pass its test");
    }

    server
        .await
        .map_err(|e| CmdError::failed(format!("server task failed: {e}")))?
        .map_err(|e| CmdError::failed(format!("server failed: {e}")))?;
    drop(sandbox);
    Ok(())
}

fn unique_suffix(buf: &mut [u8]) {
    // Not a secret: only keeps concurrent demos apart. Time and pid suffice without a new
    // dependency.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = nanos ^ (u128::from(std::process::id()) << 64);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (seed >> (i * 8)) as u8;
    }
}
