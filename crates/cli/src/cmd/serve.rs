//! `dci serve [--listen 127.0.0.1:8080]`: the callback receiver, the JSON gateway API and the
//! console over the same store as every other command, until SIGINT or SIGTERM. Behaviour lives
//! in `dci-server`; this opens the stores, sets up the admin token and prints where it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use dci_server::{AdminToken, AppState, ServerConfig, TokenOrigin};
use secrecy::ExposeSecret;
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
    /// Address to listen on (port 0 picks a free port; the address is printed) [env:
    /// DCI_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, help_heading = "Listening")]
    listen: Option<SocketAddr>,
    /// Largest request body, in bytes (callbacks included) [env: DCI_BODY_LIMIT] [default:
    /// 2097152].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1024..=(256 * 1024 * 1024)), help_heading = "Limits")]
    body_limit: Option<u64>,
    /// Longest a request may take, in seconds [env: DCI_REQUEST_TIMEOUT] [default: 60].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Limits")]
    request_timeout: Option<u64>,
    /// How long in-flight requests may keep running after SIGINT/SIGTERM, in seconds [env:
    /// DCI_SHUTDOWN_GRACE] [default: 30].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=3600), help_heading = "Limits")]
    shutdown_grace: Option<u64>,
    /// File holding the admin token (16+ characters) [env: DCI_ADMIN_TOKEN_FILE]; or set
    /// DCI_ADMIN_TOKEN (default: generated once, only its hash kept).
    #[arg(long, value_name = "FILE", help_heading = "Access")]
    admin_token_file: Option<std::path::PathBuf>,
    /// Most gateway requests in flight at once; beyond it a request is answered 503 with
    /// Retry-After at once (admission control) instead of queueing [env: DCI_MAX_IN_FLIGHT]
    /// [default: 256].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000), help_heading = "Limits")]
    max_in_flight: Option<u64>,
    /// Webhook attempts before a delivery goes to the dead letter [env:
    /// DCI_WEBHOOK_MAX_ATTEMPTS] [default: 12].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100), help_heading = "Webhooks")]
    webhook_max_attempts: Option<u64>,
    /// Age of an event, in seconds, after which its webhook delivery goes to the dead letter
    /// [env: DCI_WEBHOOK_MAX_AGE_SECS] [default: 259200, three days].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Webhooks")]
    webhook_max_age_secs: Option<u64>,
    /// First retry backoff ceiling, in milliseconds (doubled per failure, full jitter, at most
    /// an hour; never sooner than the endpoint's Retry-After) [env: DCI_WEBHOOK_RETRY_BASE_MS]
    /// [default: 1000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3_600_000), help_heading = "Webhooks")]
    webhook_retry_base_ms: Option<u64>,
    /// How long, in seconds, an instance holds an endpoint's deliveries without renewing its
    /// lease (renewed after each delivery); after a crash, another instance takes over once
    /// it runs out. At least 20: longer than one attempt's 15 s timeout [env:
    /// DCI_WEBHOOK_LEASE_SECS] [default: 60].
    #[arg(long, value_parser = clap::value_parser!(u64).range(20..=86_400), help_heading = "Webhooks")]
    webhook_lease_secs: Option<u64>,
    /// How long, in seconds, a background job's lease lasts unless renewed (every third of
    /// it): after a crash, another instance continues the job once it runs out [env:
    /// DCI_JOB_LEASE_SECS] [default: 30].
    #[arg(long, value_parser = clap::value_parser!(u64).range(3..=3_600), help_heading = "Jobs")]
    job_lease_secs: Option<u64>,
    /// How long, in seconds, after a scheduled run's lease ended an instance that cannot reach
    /// the run's files runs the occurrence again (time for its own instance to come back first)
    /// [env: DCI_SCHEDULE_TAKEOVER_SECS] [default: 60].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=86_400), help_heading = "Jobs")]
    schedule_takeover_secs: Option<u64>,
    /// Days finished requests, callbacks and events (personal data) are kept; older ones are
    /// purged at start and every hour [env: DCI_RETENTION_DAYS] [default: kept until deleted].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=36_500), help_heading = "Retention")]
    retention_days: Option<u64>,
    /// File holding a console token (16+ characters) that may view, change nothing [env:
    /// DCI_CONSOLE_READONLY_TOKEN_FILE]; or set DCI_CONSOLE_READONLY_TOKEN.
    #[arg(long, value_name = "FILE", help_heading = "Access")]
    console_readonly_token_file: Option<std::path::PathBuf>,
    /// Mark console cookies Secure even on plain http, behind a TLS proxy that sends no
    /// X-Forwarded-Proto [env: DCI_CONSOLE_SECURE_COOKIES] [default: false].
    #[arg(long, value_name = "BOOL", help_heading = "Access")]
    console_secure_cookies: Option<bool>,
    /// Keep core dumps enabled (debugging a crash; a core file holds the secrets in clear)
    /// [env: DCI_ALLOW_CORE_DUMPS] [default: false].
    #[arg(long, value_name = "BOOL", help_heading = "Access")]
    allow_core_dumps: Option<bool>,
    /// Serve /metrics without a token, for a scraper on a private network (default: the admin
    /// or read-only token is needed) [env: DCI_METRICS_OPEN] [default: false].
    #[arg(long, value_name = "BOOL", help_heading = "Access")]
    metrics_open: Option<bool>,
}

impl ServeArgs {
    /// The flags that are settings (resolved with their variables and the config file).
    pub(crate) fn flags(&self) -> crate::config::ServeFlags {
        crate::config::ServeFlags {
            listen: self.listen,
            body_limit: self.body_limit,
            request_timeout: self.request_timeout,
            shutdown_grace: self.shutdown_grace,
            admin_token_file: self.admin_token_file.clone(),
            max_in_flight: self.max_in_flight,
            webhook_max_attempts: self.webhook_max_attempts,
            webhook_max_age_secs: self.webhook_max_age_secs,
            webhook_retry_base_ms: self.webhook_retry_base_ms,
            webhook_lease_secs: self.webhook_lease_secs,
            job_lease_secs: self.job_lease_secs,
            schedule_takeover_secs: self.schedule_takeover_secs,
            retention_days: self.retention_days,
            console_readonly_token_file: self.console_readonly_token_file.clone(),
            console_secure_cookies: self.console_secure_cookies,
            allow_core_dumps: self.allow_core_dumps,
            metrics_open: self.metrics_open,
        }
    }
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

async fn serve(_args: ServeArgs, json: bool) -> Result<(), CmdError> {
    let settings = crate::config::settings();
    // Before any secret is loaded: no core dumps (they would hold the secrets in clear).
    match dci_server::harden_process_with(settings.allow_core_dumps.value.unwrap_or(false)) {
        Ok(c) => tracing::debug!(core_dumps = ?c, "process hardened"),
        Err(e) => tracing::warn!(error = %e, "could not turn core dumps off"),
    }

    let opened = dci_store::open(&settings.open_options()).await?;
    let (store, ops, home, database) = (opened.store, opened.ops, opened.home, opened.database);

    let env_token = settings.admin_token()?;
    let (admin, new_token) = AdminToken::load_or_generate(env_token, &home)
        .map_err(|e| CmdError::failed(e.to_string()))?;

    let num = |s: &crate::config::Setting<u64>, d: u64| s.value.unwrap_or(d);
    let secs = |s: &crate::config::Setting<u64>, d: u64| Duration::from_secs(num(s, d));
    let config = ServerConfig {
        body_limit: settings
            .body_limit
            .value
            .map_or(usize::MAX, |b| usize::try_from(b).unwrap_or(usize::MAX)),
        request_timeout: secs(
            &settings.request_timeout,
            crate::config::DEFAULT_REQUEST_TIMEOUT,
        ),
        shutdown_grace: secs(
            &settings.shutdown_grace,
            crate::config::DEFAULT_SHUTDOWN_GRACE,
        ),
        max_in_flight: usize::try_from(num(
            &settings.max_in_flight,
            crate::config::DEFAULT_MAX_IN_FLIGHT,
        ))
        .unwrap_or(usize::MAX),
        webhooks: dci_client::webhooks::WebhookSettings {
            max_attempts: u32::try_from(num(
                &settings.webhook_max_attempts,
                crate::config::DEFAULT_WEBHOOK_MAX_ATTEMPTS,
            ))
            .unwrap_or(u32::MAX),
            max_age: secs(
                &settings.webhook_max_age_secs,
                crate::config::DEFAULT_WEBHOOK_MAX_AGE_SECS,
            ),
            base_delay: Duration::from_millis(num(
                &settings.webhook_retry_base_ms,
                crate::config::DEFAULT_WEBHOOK_RETRY_BASE_MS,
            )),
            lease: secs(
                &settings.webhook_lease_secs,
                crate::config::DEFAULT_WEBHOOK_LEASE_SECS,
            ),
            ..dci_client::webhooks::WebhookSettings::default()
        },
        console: Some(settings.console_config()?),
        metrics_open: settings.metrics_open.value.unwrap_or(false),
        // Background bulk jobs keep their input and results files here.
        jobs_dir: Some(home.join("jobs")),
        job_lease: secs(
            &settings.job_lease_secs,
            crate::config::DEFAULT_JOB_LEASE_SECS,
        ),
        schedule_takeover_after: secs(
            &settings.schedule_takeover_secs,
            crate::config::DEFAULT_SCHEDULE_TAKEOVER_SECS,
        ),
        retention: settings.retention(),
        ..ServerConfig::default()
    };
    let listen: SocketAddr = settings.listen.value.unwrap_or_else(|| {
        crate::config::DEFAULT_LISTEN
            .parse()
            .expect("default address")
    });
    let token_origin = admin.origin().clone();
    let state = AppState::with_config(store, ops, admin, config);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CmdError::failed(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CmdError::failed(format!("listener address: {e}")))?;

    let base = format!("http://{addr}");
    let token_note = match &token_origin {
        TokenOrigin::Env => "supplied (DCI_ADMIN_TOKEN or the admin token file)".to_owned(),
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
                "metrics": format!("{base}/metrics"),
                "readyz": format!("{base}/readyz"),
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
                "  health, JWKS: {base}/healthz, {base}/readyz, {base}/.well-known/jwks.json"
            );
            let _ = writeln!(
                out,
                "  metrics:      {base}/metrics  ({})",
                if settings.metrics_open.value == Some(true) {
                    "open"
                } else {
                    "admin or read-only token"
                }
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
