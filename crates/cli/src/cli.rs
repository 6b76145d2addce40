//! Argument parsing and dispatch. Each subcommand lives in its own module under `cmd/`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};
use serde_json::json;

/// Exit codes shared by every command.
pub(crate) mod exit {
    /// Success.
    pub(crate) const OK: u8 = 0;
    /// The operation failed (or, for `verify`, the signature is invalid).
    pub(crate) const FAILED: u8 = 1;
    /// Bad usage or invalid input (a name already taken included).
    pub(crate) const USAGE: u8 = 2;
    /// Not found: no such data source, key or transaction, or the registry has no such record.
    pub(crate) const NOT_FOUND: u8 = 3;
}

/// The `Environment:` section of `dci --help`: every variable the binary reads.
const ENVIRONMENT: &str = "\
Settings come from, in order: a flag, its environment variable, the config file (TOML: --config,
DCI_CONFIG, else DCI_HOME/config.toml), the default. `dci config show` prints the effective ones.
Secrets (master key, admin token) are never flags nor values in the file: environment, or a file.

Environment:
  DCI_CONFIG                  Configuration file (TOML); --config
  DCI_HOME                    Directory of the SQLite database and master key file; --home, home
                              (default: the platform's data directory, e.g. ~/.local/share/dci)
  DCI_DATABASE_URL            Database instead of DCI_HOME's SQLite file (postgres://… or
                              sqlite://…); --database-url (no password there), database_url
  DCI_MASTER_KEY              Master key sealing stored secrets (base64 of 32 bytes)
  DCI_MASTER_KEY_FILE         File holding the master key (default: DCI_HOME/master.key, created
                              with mode 0600 on first use); --master-key-file, master_key_file
  DCI_ADMIN_TOKEN             Admin token of `dci serve`/`dci demo` (console, gateway API); at
                              least 16 characters (default: generated once, only its hash kept)
  DCI_ADMIN_TOKEN_FILE        File holding the admin token; serve --admin-token-file,
                              serve.admin_token_file
  DCI_LISTEN                  Address of `dci serve` (default 127.0.0.1:8080); serve --listen,
                              serve.listen
  DCI_BODY_LIMIT              Largest request body of `dci serve`, bytes (default 2097152);
                              serve --body-limit, serve.body_limit
  DCI_REQUEST_TIMEOUT         Longest request of `dci serve`, seconds (default 60);
                              serve --request-timeout, serve.request_timeout
  DCI_SHUTDOWN_GRACE          Drain time of `dci serve` after SIGTERM, seconds (default 30);
                              serve --shutdown-grace, serve.shutdown_grace
  DCI_CONSOLE_READONLY_TOKEN  A token (16+ characters) that may view the console, change nothing
  DCI_CONSOLE_READONLY_TOKEN_FILE  File holding it; serve --console-readonly-token-file,
                              console.readonly_token_file
  DCI_CONSOLE_SECURE_COOKIES  1: mark console cookies Secure even on plain http (TLS proxy);
                              serve --console-secure-cookies, console.secure_cookies
  DCI_LOG                     Log filter on stderr, e.g. debug or dci_client=debug (default: info
                              for serve and sandbox, warn otherwise); --log, log
  DCI_ALLOW_CORE_DUMPS        1: keep core dumps on for serve/demo (they may hold secrets);
                              serve --allow-core-dumps, serve.allow_core_dumps
  DCI_LOG_FORMAT              Log lines as text or json (one object a line; default text);
                              --log-format, log_format
  OTEL_EXPORTER_OTLP_ENDPOINT Export traces over OTLP/HTTP to this collector, e.g.
                              http://127.0.0.1:4318 (default: none); --otlp-endpoint,
                              otlp_endpoint (OTEL_SERVICE_NAME: the service, default dci)
  DCI_METRICS_OPEN            1: serve /metrics without a token (default 0: admin or read-only
                              token); serve --metrics-open, serve.metrics_open
  DCI_SANDBOX_CLIENT_SECRET   Client secret of `dci sandbox` (default: the demo secret)
  DCI_SANDBOX_CLIENT_SECRET_FILE  File holding it; sandbox --client-secret-file
  DCI_MAX_IN_FLIGHT           Gateway requests of `dci serve` at once, more get 503 (default
                              256); serve --max-in-flight, serve.max_in_flight
  DCI_WEBHOOK_MAX_ATTEMPTS    Webhook attempts before the dead letter (default 12); serve
                              --webhook-max-attempts, serve.webhook_max_attempts
  DCI_WEBHOOK_MAX_AGE_SECS    Event age after which its webhook delivery is dead-lettered
                              (default 259200, 3 days); serve --webhook-max-age-secs,
                              serve.webhook_max_age_secs
  DCI_WEBHOOK_RETRY_BASE_MS   First webhook retry backoff ceiling, ms (default 1000); serve
                              --webhook-retry-base-ms, serve.webhook_retry_base_ms
  DCI_WEBHOOK_LEASE_SECS      How long an instance holds an endpoint's deliveries before another
                              may take over, s (default 60, at least 20); serve
                              --webhook-lease-secs, serve.webhook_lease_secs
  DCI_JOB_LEASE_SECS          How long a background job's lease lasts unless renewed (every
                              third of it): how soon another instance continues the jobs of one
                              that died, s (default 30, 3..=3600); serve --job-lease-secs,
                              serve.job_lease_secs
  DCI_SCHEDULE_TAKEOVER_SECS  How long after a scheduled run's lease ended an instance that
                              cannot reach its files runs it again, s (default 60); serve
                              --schedule-takeover-secs, serve.schedule_takeover_secs
  DCI_RETENTION_DAYS          Days finished requests, callbacks and events are kept; `dci serve`
                              purges older ones hourly, `dci purge` once (default: kept);
                              serve --retention-days, serve.retention_days
  NO_COLOR                    Set (non-empty): no colour in any output

Exit codes: 0 ok, 1 failed, 2 bad usage or input, 3 not found.";

/// Client for DCI (Digital Convergence Initiative) registry APIs.
#[derive(Debug, Parser)]
#[command(name = "dci", version, about, long_about = None, after_help = ENVIRONMENT)]
pub(crate) struct Cli {
    /// Print machine-readable JSON instead of human-readable text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(flatten)]
    pub(crate) settings: crate::config::GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Inspect, canonicalize, sign and verify DCI envelopes (read from stdin).
    #[command(subcommand)]
    Envelope(crate::cmd::envelope::EnvelopeCommand),
    /// Manage data sources (registry connections).
    #[command(subcommand)]
    Source(crate::cmd::source::SourceCommand),
    /// Manage the master key that seals stored secrets.
    #[command(subcommand)]
    MasterKey(crate::cmd::master_key::MasterKeyCommand),
    /// Run a local DCI registry (all five registries, OAuth2, callbacks, fault injection).
    Sandbox(crate::cmd::sandbox::SandboxArgs),
    /// Show a data source's OAuth2 token metadata (fetching one if needed); never the token
    /// itself unless --reveal.
    Token(crate::cmd::token::TokenArgs),
    /// Show the audit log of outgoing calls (newest first).
    Log(crate::cmd::log::LogArgs),
    /// Export the audit log (or the change audit) by time range as JSON Lines or CSV.
    #[command(subcommand)]
    Audit(crate::cmd::audit::AuditCommand),
    /// Named users of `dci serve` (viewer, operator, admin) and their personal API tokens:
    /// add, list, remove, passwd, token create|list|revoke.
    #[command(subcommand, after_help = crate::cmd::user::EXAMPLES)]
    User(crate::cmd::user::UserCommand),
    /// Delete finished requests, callbacks and events older than the retention (for cron).
    Purge(crate::cmd::purge::PurgeArgs),
    /// Search a registry: --id TYPE:VALUE, --expression or --predicate JSON; sync (one page or
    /// --all-pages) or --async [--wait SECS]; --dry-run prints the signed envelope.
    Search(crate::cmd::search::SearchArgs),
    /// Bulk searches: every identifier of a CSV/JSONL/TYPE:VALUE file, batched, rate-limited,
    /// with progress and a resumable job (search, resume, list, show, cancel).
    #[command(subcommand, after_help = crate::cmd::bulk::EXAMPLES)]
    Bulk(crate::cmd::bulk::BulkCommand),
    /// Schedules that dci serve runs: a bulk job at each occurrence of a cron expression on an
    /// input file or URL (add, list, show, remove, runs).
    #[command(subcommand, after_help = crate::cmd::schedule::EXAMPLES)]
    Schedule(crate::cmd::schedule::ScheduleCommand),
    /// Subscribe to a registry event type (async; --wait SECS for the subscription codes).
    Subscribe(crate::cmd::subscribe::SubscribeArgs),
    /// Cancel subscriptions by code (async; --wait SECS for the answer).
    Unsubscribe(crate::cmd::subscribe::UnsubscribeArgs),
    /// Ask the registry about a transaction (sync, or --async), or show it from the store
    /// (--local).
    TxnStatus(crate::cmd::txn_status::TxnStatusArgs),
    /// Manage our signing keys: generate, list, activate, revoke, export-jwks.
    #[command(subcommand, after_help = crate::cmd::key::EXAMPLES)]
    Key(crate::cmd::key::KeyCommand),
    /// Webhook endpoints the SPMIS receives events at (Standard Webhooks signatures):
    /// add, list, remove, deliveries, redeliver.
    #[command(subcommand, after_help = crate::cmd::webhook::EXAMPLES)]
    Webhook(crate::cmd::webhook::WebhookCommand),
    /// Events (notifications, completed searches, failures, expiries, subscription and
    /// data-source changes): list by cursor, ack (mark processed).
    #[command(subcommand, after_help = crate::cmd::events::EXAMPLES)]
    Events(crate::cmd::events::EventsCommand),
    /// Run the callback receiver, the JSON gateway API and the admin console until Ctrl-C/SIGTERM.
    Serve(crate::cmd::serve::ServeArgs),
    /// The main job: start the sandbox registry and the console with a ready, tested sandbox
    /// data source (temporary DCI_HOME), and print the console URL and how to sign in.
    Demo(crate::cmd::demo::DemoArgs),
    /// CRVS: person, birth, death, vital events, subscriptions (exit 0 found, 3 not found).
    #[command(subcommand, after_help = crate::cmd::crvs::EXAMPLES)]
    Crvs(crate::cmd::crvs::CrvsCommand),
    /// Disability registry: status, details, support (exit 0 found, 3 not found).
    #[command(subcommand, after_help = crate::cmd::dr::EXAMPLES)]
    Dr(crate::cmd::dr::DrCommand),
    /// Integrated beneficiary registry: enrolments, dedupe (fails closed), push enrolments.
    #[command(subcommand, after_help = crate::cmd::ibr::EXAMPLES)]
    Ibr(crate::cmd::ibr::IbrCommand),
    /// Social registry: groups (households) and members (exit 0 found, 3 not found).
    #[command(subcommand, after_help = crate::cmd::social::EXAMPLES)]
    Social(crate::cmd::social::SocialCommand),
    /// Farmer registry: farmers (exit 0 found, 3 not found).
    #[command(subcommand, after_help = crate::cmd::fr::EXAMPLES)]
    Fr(crate::cmd::fr::FrCommand),
    /// Print a shell completion script to stdout, e.g. `dci completions bash > ~/.local/share/bash-completion/completions/dci`.
    Completions(crate::cmd::completions::CompletionsArgs),
    /// Write man pages (dci.1 and one per subcommand, e.g. dci-source-add.1) into a directory.
    Man(crate::cmd::man::ManArgs),
    /// The effective settings: `dci config show [--json]` (flag > env > config file > default).
    #[command(subcommand)]
    Config(crate::cmd::config::ConfigCommand),
}

impl Command {
    /// The log filter when `DCI_LOG` is not set: servers say what they do, the rest only warn.
    fn log_default(&self) -> &'static str {
        match self {
            Command::Serve(_) | Command::Sandbox(_) => "info",
            _ => "warn",
        }
    }

    /// Whether the command runs until stopped (it shows no progress spinners).
    fn is_server(&self) -> bool {
        matches!(
            self,
            Command::Serve(_) | Command::Sandbox(_) | Command::Demo(_)
        )
    }
}

/// Whether `--json` is on the command line (before any `--`), read without clap: for the
/// errors of a command line clap could not parse.
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// A clap parse error as `{"error": {"kind": "usage", "message", "fix"?, "reason"}}`: the
/// message is clap's first line, the fix its tip or the usage line.
pub(crate) fn usage_json(e: &clap::Error) -> serde_json::Value {
    let rendered = e.render().to_string();
    // The first paragraph: "error: …" and, after a colon, the indented names it lists.
    let first: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let message = match first.split_first() {
        Some((head, rest)) => {
            let head = head.strip_prefix("error: ").unwrap_or(head);
            if rest.is_empty() {
                head.to_owned()
            } else {
                format!("{head} {}", rest.join(", "))
            }
        }
        None => e.kind().to_string(),
    };
    let tips: Vec<&str> = rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tip: "))
        .collect();
    let usage = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| format!("usage: {u}"));
    let valid = match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(v)) if !v.is_empty() => {
            Some(format!("use one of: {}", v.join(", ")))
        }
        _ => None,
    };
    let fix = if tips.is_empty() {
        valid.or(usage)
    } else {
        Some(tips.join("; "))
    };
    let mut err = json!({"kind": "usage", "message": message, "reason": reason(e.kind())});
    if let Some(f) = fix {
        err["fix"] = f.into();
    }
    json!({ "error": err })
}

/// `UnknownArgument` → `unknown_argument`.
fn reason(kind: ErrorKind) -> String {
    let mut out = String::new();
    for (i, c) in format!("{kind:?}").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed, --json or not.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(exit::OK);
        }
        Err(e) if wants_json(&args) => {
            crate::context::say!("{}", usage_json(&e));
            return ExitCode::from(exit::USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(exit::USAGE);
        }
    };
    let serve_flags = match &cli.command {
        Command::Serve(args) => args.flags(),
        _ => crate::config::ServeFlags::default(),
    };
    if let Err(e) = crate::config::init(&cli.settings, &serve_flags) {
        return ExitCode::from(e.report(cli.json));
    }
    let telemetry = crate::telemetry::init(cli.command.log_default());
    if !cli.command.is_server() {
        crate::progress::enable(cli.json);
    }
    let code = match cli.command {
        Command::Envelope(cmd) => crate::cmd::envelope::run(cmd, cli.json),
        Command::Source(cmd) => crate::cmd::source::run(cmd, cli.json),
        Command::MasterKey(cmd) => crate::cmd::master_key::run(cmd, cli.json),
        Command::Sandbox(args) => crate::cmd::sandbox::run(args, cli.json),
        Command::Token(args) => crate::cmd::token::run(args, cli.json),
        Command::Log(args) => crate::cmd::log::run(args, cli.json),
        Command::Audit(cmd) => crate::cmd::audit::run(cmd, cli.json),
        Command::User(cmd) => crate::cmd::user::run(cmd, cli.json),
        Command::Purge(args) => crate::cmd::purge::run(args, cli.json),
        Command::Search(args) => crate::cmd::search::run(args, cli.json),
        Command::Bulk(cmd) => crate::cmd::bulk::run(cmd, cli.json),
        Command::Schedule(cmd) => crate::cmd::schedule::run(cmd, cli.json),
        Command::Subscribe(args) => crate::cmd::subscribe::run(args, cli.json),
        Command::Unsubscribe(args) => crate::cmd::subscribe::run_unsubscribe(args, cli.json),
        Command::TxnStatus(args) => crate::cmd::txn_status::run(args, cli.json),
        Command::Key(cmd) => crate::cmd::key::run(cmd, cli.json),
        Command::Webhook(cmd) => crate::cmd::webhook::run(cmd, cli.json),
        Command::Events(cmd) => crate::cmd::events::run(cmd, cli.json),
        Command::Serve(args) => crate::cmd::serve::run(args, cli.json),
        Command::Demo(args) => crate::cmd::demo::run(args, cli.json),
        Command::Crvs(cmd) => crate::cmd::crvs::run(cmd, cli.json),
        Command::Dr(cmd) => crate::cmd::dr::run(cmd, cli.json),
        Command::Ibr(cmd) => crate::cmd::ibr::run(cmd, cli.json),
        Command::Social(cmd) => crate::cmd::social::run(cmd, cli.json),
        Command::Fr(cmd) => crate::cmd::fr::run(cmd, cli.json),
        Command::Completions(args) => crate::cmd::completions::run(&args),
        Command::Man(args) => crate::cmd::man::run(&args, cli.json),
        Command::Config(cmd) => crate::cmd::config::run(cmd, cli.json),
    };
    crate::progress::finish();
    // The last spans are exported before the process ends.
    drop(telemetry);
    ExitCode::from(code)
}
