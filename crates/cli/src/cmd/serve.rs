//! `dci serve [--listen 127.0.0.1:8080]`: the callback receiver, the JSON gateway API and the
//! console over the same store as every other command, until SIGINT or SIGTERM. Behaviour lives
//! in `dci-server`; this opens the stores, sets up the admin token and prints where it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use dci_server::{AdminToken, AppState, ServerConfig, TokenOrigin};
use dci_store::OpenOptions;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::cli::exit;
use crate::context::CmdError;

/// Arguments of `dci serve`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci serve
  DCI_ADMIN_TOKEN=$(openssl rand -hex 32) dci serve --listen 0.0.0.0:8080
  DCI_LOG=debug dci serve --request-timeout 120 --shutdown-grace 10")]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", help_heading = "Listening")]
    listen: SocketAddr,
    /// Largest request body, in bytes (callbacks included).
    #[arg(long, default_value_t = 2 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=(256 * 1024 * 1024)), help_heading = "Limits")]
    body_limit: u64,
    /// Longest a request may take, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Limits")]
    request_timeout: u64,
    /// How long in-flight requests may keep running after SIGINT/SIGTERM, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600), help_heading = "Limits")]
    shutdown_grace: u64,
    /// Most gateway requests in flight at once; beyond it a request is answered 503 with
    /// Retry-After at once (admission control) instead of queueing.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000), help_heading = "Limits")]
    max_in_flight: u64,
}

pub(crate) fn run(args: ServeArgs, json: bool) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return CmdError::failed(format!("starting the async runtime: {e}")).report(json),
    };
    match runtime.block_on(serve(args, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

async fn serve(args: ServeArgs, json: bool) -> Result<(), CmdError> {
    // Before any secret is loaded: no core dumps (they would hold the secrets in clear).
    match dci_server::harden_process() {
        Ok(c) => tracing::debug!(core_dumps = ?c, "process hardened"),
        Err(e) => tracing::warn!(error = %e, "could not turn core dumps off"),
    }

    let opened = dci_store::open(&OpenOptions::from_env()).await?;
    let (store, ops, home, database) = (opened.store, opened.ops, opened.home, opened.database);

    let env_token = std::env::var(dci_server::ADMIN_TOKEN_ENV)
        .ok()
        .map(SecretString::from);
    let (admin, new_token) = AdminToken::load_or_generate(env_token, &home)
        .map_err(|e| CmdError::failed(e.to_string()))?;

    let config = ServerConfig {
        body_limit: usize::try_from(args.body_limit).unwrap_or(usize::MAX),
        request_timeout: Duration::from_secs(args.request_timeout),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        max_in_flight: usize::try_from(args.max_in_flight).unwrap_or(usize::MAX),
    };
    let token_origin = admin.origin().clone();
    let state = AppState::with_config(store, ops, admin, config);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CmdError::failed(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CmdError::failed(format!("listener address: {e}")))?;

    let base = format!("http://{addr}");
    let token_note = match &token_origin {
        TokenOrigin::Env => "from DCI_ADMIN_TOKEN".to_owned(),
        TokenOrigin::File(p) => {
            format!("the one generated on first start (hash in {})", p.display())
        }
        TokenOrigin::Generated(p) => format!("generated now (hash in {})", p.display()),
        TokenOrigin::Given => "given".to_owned(),
    };
    {
        let mut out = std::io::stdout().lock();
        if json {
            let mut line = json!({
                "listening": base,
                "api": format!("{base}/api/v1"),
                "openapi": format!("{base}/api/v1/openapi.json"),
                "console": format!("{base}/login"),
                "callbacks": format!("{base}/callback/{{code}}"),
                "database": database,
            });
            if let Some(t) = &new_token {
                line["admin_token"] = t.expose_secret().into();
            }
            let _ = writeln!(out, "{line}");
        } else {
            let _ = writeln!(out, "dci serve listening on {base}");
            let _ = writeln!(
                out,
                "  console:      {base}/login  (sign in with the admin token)"
            );
            let _ = writeln!(
                out,
                "  gateway API:  {base}/api/v1  (OpenAPI: {base}/api/v1/openapi.json)"
            );
            let _ = writeln!(
                out,
                "  callbacks:    {base}/callback/{{code}}  (set a source's callback URI to this)"
            );
            let _ = writeln!(
                out,
                "  health, JWKS: {base}/healthz, {base}/.well-known/jwks.json"
            );
            let _ = writeln!(out, "  database:     {database}");
            match &new_token {
                Some(t) => {
                    let _ = writeln!(
                        out,
                        "  admin token:  {}\n                (shown once: only its hash is kept; set DCI_ADMIN_TOKEN to choose your own)",
                        t.expose_secret()
                    );
                }
                None => {
                    let _ = writeln!(out, "  admin token:  {token_note}");
                }
            }
        }
        let _ = out.flush();
    }
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback over plain HTTP: put TLS in front of it");
    }
    let engine = state.engine.clone();
    // A connection test whose process died left its source `testing`: say so.
    match engine
        .recover_interrupted_tests(Duration::from_secs(300))
        .await
    {
        Ok(codes) if !codes.is_empty() => {
            tracing::warn!(sources = ?codes, "connection tests interrupted by a stop were marked failed")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not check for interrupted connection tests"),
    }
    let served = dci_server::serve(listener, state, dci_server::shutdown_signal())
        .await
        .map_err(|e| CmdError::failed(format!("server failed: {e}")));
    // Every audit entry of the calls made is written before the process ends.
    engine.close().await;
    served
}
