//! The effective settings of a `dci` run: each from its flag, else its environment variable,
//! else the configuration file, else the default — with where it came from, for `dci config
//! show`.
//!
//! The file is TOML, found via `--config FILE`, else `DCI_CONFIG`, else `config.toml` in the
//! data directory (`--home` / `DCI_HOME` / the platform default; a missing file there is no
//! error, a missing `--config` / `DCI_CONFIG` file is). Relative paths in it are relative to
//! the file. Unknown keys are refused, naming the key. Secrets (the master key, the admin
//! token, the console's read-only token) are never accepted as values in the file, nor as
//! flags (argv is visible to every user): only as environment variables or as a path to a file
//! holding them (`master_key_file`, `serve.admin_token_file`, `console.readonly_token_file`). A database URL with a password is refused
//! as a flag for the same reason.
//!
//! Nothing here sets environment variables (the workspace forbids `unsafe`): commands read the
//! resolved [`Settings`] ([`settings`]) instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Args;
use dci_store::OpenOptions;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::context::CmdError;

/// Flags every command takes (`dci --home DIR source list`).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct GlobalArgs {
    /// Configuration file (TOML) [env: DCI_CONFIG] (default: DCI_HOME/config.toml if present).
    #[arg(long, global = true, value_name = "FILE", help_heading = "Settings")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory: SQLite database, master key file, admin token hash [env: DCI_HOME].
    #[arg(long, global = true, value_name = "DIR", help_heading = "Settings")]
    pub(crate) home: Option<PathBuf>,
    /// Database instead of DCI_HOME's SQLite file; no password here (argv is visible to other
    /// users: put it in DCI_DATABASE_URL or the config file) [env: DCI_DATABASE_URL].
    #[arg(long, global = true, value_name = "URL", help_heading = "Settings")]
    pub(crate) database_url: Option<String>,
    /// File holding the master key (base64 of 32 bytes) [env: DCI_MASTER_KEY_FILE].
    #[arg(long, global = true, value_name = "FILE", help_heading = "Settings")]
    pub(crate) master_key_file: Option<PathBuf>,
    /// Log filter on stderr, e.g. debug or dci_client=debug [env: DCI_LOG].
    #[arg(long, global = true, value_name = "FILTER", help_heading = "Settings")]
    pub(crate) log: Option<String>,
    /// Log lines as text or json (one JSON object a line) [env: DCI_LOG_FORMAT] [default:
    /// text].
    #[arg(long, global = true, value_name = "FORMAT", help_heading = "Settings")]
    pub(crate) log_format: Option<LogFormat>,
    /// Export traces over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 (traces go
    /// to its /v1/traces) [env: OTEL_EXPORTER_OTLP_ENDPOINT] [default: no export].
    #[arg(long, global = true, value_name = "URL", help_heading = "Settings")]
    pub(crate) otlp_endpoint: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line (timestamp, level, target, message, fields, spans).
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl std::str::FromStr for LogFormat {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(()),
        }
    }
}

/// Flags of `dci serve` that are settings (also variables and file keys).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServeFlags {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) body_limit: Option<u64>,
    pub(crate) request_timeout: Option<u64>,
    pub(crate) shutdown_grace: Option<u64>,
    pub(crate) admin_token_file: Option<PathBuf>,
    pub(crate) max_in_flight: Option<u64>,
    pub(crate) webhook_max_attempts: Option<u64>,
    pub(crate) webhook_max_age_secs: Option<u64>,
    pub(crate) webhook_retry_base_ms: Option<u64>,
    pub(crate) webhook_lease_secs: Option<u64>,
    pub(crate) job_lease_secs: Option<u64>,
    pub(crate) schedule_takeover_secs: Option<u64>,
    pub(crate) retention_days: Option<u64>,
    pub(crate) console_readonly_token_file: Option<PathBuf>,
    pub(crate) console_secure_cookies: Option<bool>,
    pub(crate) allow_core_dumps: Option<bool>,
    pub(crate) metrics_open: Option<bool>,
}

/// The configuration file. Keys a secret would go in exist only to refuse them clearly.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    home: Option<PathBuf>,
    database_url: Option<String>,
    master_key_file: Option<PathBuf>,
    master_key: Option<toml::Value>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    otlp_endpoint: Option<String>,
    #[serde(default)]
    serve: ServeFile,
    #[serde(default)]
    console: ConsoleFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleFile {
    readonly_token_file: Option<PathBuf>,
    readonly_token: Option<toml::Value>,
    secure_cookies: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    listen: Option<String>,
    body_limit: Option<u64>,
    request_timeout: Option<u64>,
    shutdown_grace: Option<u64>,
    admin_token_file: Option<PathBuf>,
    admin_token: Option<toml::Value>,
    max_in_flight: Option<u64>,
    webhook_max_attempts: Option<u64>,
    webhook_max_age_secs: Option<u64>,
    webhook_retry_base_ms: Option<u64>,
    webhook_lease_secs: Option<u64>,
    job_lease_secs: Option<u64>,
    schedule_takeover_secs: Option<u64>,
    allow_core_dumps: Option<bool>,
    metrics_open: Option<bool>,
    retention_days: Option<u64>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `--flag`.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// The configuration file (key, file).
    File(&'static str, PathBuf),
    /// Built in (or unset).
    Default,
}

impl Origin {
    fn describe(&self) -> String {
        match self {
            Origin::Flag(f) => f.to_string(),
            Origin::Env(v) => format!("env {v}"),
            Origin::File(k, p) => format!("{} ({k})", p.display()),
            Origin::Default => "default".into(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Origin::Flag(_) => "flag",
            Origin::Env(_) => "env",
            Origin::File(..) => "file",
            Origin::Default => "default",
        }
    }
}

/// One resolved setting.
#[derive(Debug, Clone)]
pub(crate) struct Setting<T> {
    pub(crate) value: Option<T>,
    pub(crate) origin: Origin,
}

impl<T> Setting<T> {
    fn unset() -> Setting<T> {
        Setting {
            value: None,
            origin: Origin::Default,
        }
    }
}

/// The effective settings of this run.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The configuration file read, if any.
    pub(crate) config_file: Setting<PathBuf>,
    pub(crate) home: Setting<PathBuf>,
    pub(crate) database_url: Setting<String>,
    /// `DCI_MASTER_KEY` (environment only: a secret).
    master_key: Option<SecretString>,
    pub(crate) master_key_file: Setting<PathBuf>,
    pub(crate) log: Setting<String>,
    pub(crate) log_format: Setting<LogFormat>,
    pub(crate) otlp_endpoint: Setting<String>,
    pub(crate) listen: Setting<SocketAddr>,
    pub(crate) body_limit: Setting<u64>,
    pub(crate) request_timeout: Setting<u64>,
    pub(crate) shutdown_grace: Setting<u64>,
    /// `DCI_ADMIN_TOKEN` (environment only: a secret).
    admin_token: Option<SecretString>,
    pub(crate) admin_token_file: Setting<PathBuf>,
    pub(crate) max_in_flight: Setting<u64>,
    pub(crate) webhook_max_attempts: Setting<u64>,
    pub(crate) webhook_max_age_secs: Setting<u64>,
    pub(crate) webhook_retry_base_ms: Setting<u64>,
    /// How long a worker holds an endpoint's deliveries before another instance may take them.
    pub(crate) webhook_lease_secs: Setting<u64>,
    /// How long a background job's lease lasts unless renewed.
    pub(crate) job_lease_secs: Setting<u64>,
    /// How long after a scheduled run's lease ended another instance runs it again.
    pub(crate) schedule_takeover_secs: Setting<u64>,
    /// Days finished requests, callbacks and events are kept (unset: until deleted).
    pub(crate) retention_days: Setting<u64>,
    /// `DCI_CONSOLE_READONLY_TOKEN` (environment only: a secret).
    console_readonly_token: Option<SecretString>,
    pub(crate) console_readonly_token_file: Setting<PathBuf>,
    pub(crate) console_secure_cookies: Setting<bool>,
    pub(crate) allow_core_dumps: Setting<bool>,
    pub(crate) metrics_open: Setting<bool>,
}

/// Defaults of `dci serve`.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub(crate) const DEFAULT_BODY_LIMIT: u64 = 2 * 1024 * 1024;
pub(crate) const DEFAULT_REQUEST_TIMEOUT: u64 = 60;
pub(crate) const DEFAULT_SHUTDOWN_GRACE: u64 = 30;
pub(crate) const DEFAULT_MAX_IN_FLIGHT: u64 = 256;
pub(crate) const DEFAULT_WEBHOOK_MAX_ATTEMPTS: u64 = 12;
pub(crate) const DEFAULT_WEBHOOK_MAX_AGE_SECS: u64 = 3 * 24 * 3600;
pub(crate) const DEFAULT_WEBHOOK_RETRY_BASE_MS: u64 = 1000;
pub(crate) const DEFAULT_WEBHOOK_LEASE_SECS: u64 = 60;
pub(crate) const DEFAULT_JOB_LEASE_SECS: u64 = 30;
pub(crate) const DEFAULT_SCHEDULE_TAKEOVER_SECS: u64 = 60;

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The settings resolved at start-up ([`init`]); resolved from the environment alone if `init`
/// was not called.
pub(crate) fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| {
        resolve(&GlobalArgs::default(), &ServeFlags::default()).unwrap_or_else(|_| {
            resolve_with(&GlobalArgs::default(), &ServeFlags::default(), &no_env)
                .expect("defaults resolve")
        })
    })
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Resolves the settings once, at start-up.
pub(crate) fn init(global: &GlobalArgs, serve: &ServeFlags) -> Result<(), CmdError> {
    let s = resolve(global, serve)?;
    let _ = SETTINGS.set(s);
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Resolves from the real environment.
pub(crate) fn resolve(global: &GlobalArgs, serve: &ServeFlags) -> Result<Settings, CmdError> {
    resolve_with(global, serve, &env)
}

impl<T> Setting<T> {
    /// This setting, or `value` as the default when nothing set it.
    fn or_default(self, value: T) -> Setting<T> {
        match self.value {
            Some(_) => self,
            None => Setting {
                value: Some(value),
                origin: Origin::Default,
            },
        }
    }
}

fn pick<T: Clone>(
    flag: (Option<T>, &'static str),
    env: (Option<T>, &'static str),
    file: (Option<T>, &'static str, Option<&Path>),
) -> Setting<T> {
    if let Some(v) = flag.0 {
        return Setting {
            value: Some(v),
            origin: Origin::Flag(flag.1),
        };
    }
    if let Some(v) = env.0 {
        return Setting {
            value: Some(v),
            origin: Origin::Env(env.1),
        };
    }
    match (file.0, file.2) {
        (Some(v), Some(p)) => Setting {
            value: Some(v),
            origin: Origin::File(file.1, p.to_owned()),
        },
        _ => Setting::unset(),
    }
}

fn parse_env<T: std::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    what: &str,
) -> Result<Option<T>, CmdError> {
    get(name)
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                CmdError::usage(format!("{name}={v:?} is not {what}: set it to {what}"))
            })
        })
        .transpose()
}

fn in_range(
    s: Setting<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    name: &str,
) -> Result<Setting<u64>, CmdError> {
    let Some(v) = s.value else {
        return Ok(Setting {
            value: Some(default),
            origin: Origin::Default,
        });
    };
    if !range.contains(&v) {
        return Err(CmdError::usage(format!(
            "{name} {v} (from {}) is out of range: use {}..={}",
            s.origin.describe(),
            range.start(),
            range.end()
        )));
    }
    Ok(s)
}

/// [`in_range`] for a setting without a default (unset stays unset).
fn optional_in_range(
    s: Setting<u64>,
    range: std::ops::RangeInclusive<u64>,
    name: &str,
) -> Result<Setting<u64>, CmdError> {
    match s.value {
        None => Ok(s),
        Some(v) => in_range(s, v, range, name),
    }
}

fn resolve_with(
    global: &GlobalArgs,
    serve: &ServeFlags,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, CmdError> {
    if let Some(url) = &global.database_url
        && url_has_password(url)
    {
        return Err(CmdError::usage(
            "--database-url holds a password, which every user can read on the command line: \
             put the URL in DCI_DATABASE_URL or in the config file (database_url) instead",
        ));
    }
    // The home as the flag and environment give it (the file may be in it).
    let home_before_file = global
        .home
        .clone()
        .or_else(|| get("DCI_HOME").map(PathBuf::from));
    let config_file = match (&global.config, get("DCI_CONFIG")) {
        (Some(p), _) => Setting {
            value: Some(p.clone()),
            origin: Origin::Flag("--config"),
        },
        (None, Some(p)) => Setting {
            value: Some(PathBuf::from(p)),
            origin: Origin::Env("DCI_CONFIG"),
        },
        (None, None) => {
            let opts = OpenOptions {
                home: home_before_file.clone(),
                ..OpenOptions::default()
            };
            match opts.resolved_home() {
                Ok(h) if h.join("config.toml").is_file() => Setting {
                    value: Some(h.join("config.toml")),
                    origin: Origin::Default,
                },
                _ => Setting::unset(),
            }
        }
    };
    // Absolute, so that paths in it resolve against its directory whatever the current one.
    let config_file = Setting {
        value: config_file
            .value
            .map(|p| std::path::absolute(&p).unwrap_or(p)),
        origin: config_file.origin,
    };
    let file = match &config_file.value {
        Some(p) => read_file(p, &config_file.origin)?,
        None => FileConfig::default(),
    };
    let fp = config_file.value.as_deref();
    let dir = fp.and_then(Path::parent).map(Path::to_owned);
    let rel = |p: Option<PathBuf>| match (p, &dir) {
        (Some(p), Some(d)) if p.is_relative() => Some(d.join(p)),
        (p, _) => p,
    };
    if file.master_key.is_some() {
        return Err(file_secret(
            fp,
            "master_key",
            "master_key_file",
            "DCI_MASTER_KEY",
        ));
    }
    if file.console.readonly_token.is_some() {
        return Err(file_secret(
            fp,
            "console.readonly_token",
            "console.readonly_token_file",
            "DCI_CONSOLE_READONLY_TOKEN",
        ));
    }
    let yes_no = |var: &'static str| {
        get(var)
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => Ok(true),
                "0" | "false" | "no" => Ok(false),
                _ => Err(CmdError::usage(format!(
                    "{var}={v:?} is not a yes/no value: use 1 or 0"
                ))),
            })
            .transpose()
    };
    let secure_env = yes_no("DCI_CONSOLE_SECURE_COOKIES")?;
    let core_dumps_env = yes_no(dci_server::ALLOW_CORE_DUMPS_ENV)?;
    let metrics_open_env = yes_no("DCI_METRICS_OPEN")?;
    if file.serve.admin_token.is_some() {
        return Err(file_secret(
            fp,
            "serve.admin_token",
            "serve.admin_token_file",
            "DCI_ADMIN_TOKEN",
        ));
    }
    let listen_file = file
        .serve
        .listen
        .as_deref()
        .map(|l| {
            l.parse::<SocketAddr>().map_err(|_| {
                CmdError::usage(format!(
                    "serve.listen {l:?} in {} is not an address: use HOST:PORT, e.g. 127.0.0.1:8080",
                    fp.map(Path::display).map(|d| d.to_string()).unwrap_or_default()
                ))
            })
        })
        .transpose()?;
    let listen = pick(
        (serve.listen, "--listen"),
        (
            parse_env(get, "DCI_LISTEN", "an address HOST:PORT")?,
            "DCI_LISTEN",
        ),
        (listen_file, "serve.listen", fp),
    )
    .or_default(DEFAULT_LISTEN.parse().expect("default address"));
    let num = |flag: Option<u64>, f: &'static str, var: &'static str, filev: Option<u64>, key| {
        Ok::<_, CmdError>(pick(
            (flag, f),
            (parse_env(get, var, "a whole number")?, var),
            (filev, key, fp),
        ))
    };
    let s = Settings {
        home: pick(
            (global.home.clone(), "--home"),
            (get("DCI_HOME").map(PathBuf::from), "DCI_HOME"),
            (rel(file.home), "home", fp),
        ),
        database_url: pick(
            (global.database_url.clone(), "--database-url"),
            (get("DCI_DATABASE_URL"), "DCI_DATABASE_URL"),
            (file.database_url, "database_url", fp),
        ),
        master_key: get("DCI_MASTER_KEY").map(SecretString::from),
        master_key_file: pick(
            (global.master_key_file.clone(), "--master-key-file"),
            (
                get("DCI_MASTER_KEY_FILE").map(PathBuf::from),
                "DCI_MASTER_KEY_FILE",
            ),
            (rel(file.master_key_file), "master_key_file", fp),
        ),
        log: pick(
            (global.log.clone(), "--log"),
            (get("DCI_LOG"), "DCI_LOG"),
            (file.log, "log", fp),
        ),
        log_format: {
            let s = pick(
                (global.log_format, "--log-format"),
                (
                    parse_env(get, "DCI_LOG_FORMAT", "text or json")?,
                    "DCI_LOG_FORMAT",
                ),
                (file.log_format, "log_format", fp),
            );
            s.or_default(LogFormat::Text)
        },
        otlp_endpoint: pick(
            (global.otlp_endpoint.clone(), "--otlp-endpoint"),
            (
                get("OTEL_EXPORTER_OTLP_ENDPOINT"),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (file.otlp_endpoint, "otlp_endpoint", fp),
        ),
        listen,
        body_limit: in_range(
            num(
                serve.body_limit,
                "--body-limit",
                "DCI_BODY_LIMIT",
                file.serve.body_limit,
                "serve.body_limit",
            )?,
            DEFAULT_BODY_LIMIT,
            1024..=256 * 1024 * 1024,
            "body_limit",
        )?,
        request_timeout: in_range(
            num(
                serve.request_timeout,
                "--request-timeout",
                "DCI_REQUEST_TIMEOUT",
                file.serve.request_timeout,
                "serve.request_timeout",
            )?,
            DEFAULT_REQUEST_TIMEOUT,
            1..=3600,
            "request_timeout",
        )?,
        shutdown_grace: in_range(
            num(
                serve.shutdown_grace,
                "--shutdown-grace",
                "DCI_SHUTDOWN_GRACE",
                file.serve.shutdown_grace,
                "serve.shutdown_grace",
            )?,
            DEFAULT_SHUTDOWN_GRACE,
            0..=3600,
            "shutdown_grace",
        )?,
        max_in_flight: in_range(
            num(
                serve.max_in_flight,
                "--max-in-flight",
                "DCI_MAX_IN_FLIGHT",
                file.serve.max_in_flight,
                "serve.max_in_flight",
            )?,
            DEFAULT_MAX_IN_FLIGHT,
            1..=1_000_000,
            "max_in_flight",
        )?,
        webhook_max_attempts: in_range(
            num(
                serve.webhook_max_attempts,
                "--webhook-max-attempts",
                "DCI_WEBHOOK_MAX_ATTEMPTS",
                file.serve.webhook_max_attempts,
                "serve.webhook_max_attempts",
            )?,
            DEFAULT_WEBHOOK_MAX_ATTEMPTS,
            1..=100,
            "webhook_max_attempts",
        )?,
        webhook_max_age_secs: in_range(
            num(
                serve.webhook_max_age_secs,
                "--webhook-max-age-secs",
                "DCI_WEBHOOK_MAX_AGE_SECS",
                file.serve.webhook_max_age_secs,
                "serve.webhook_max_age_secs",
            )?,
            DEFAULT_WEBHOOK_MAX_AGE_SECS,
            1..=u64::MAX,
            "webhook_max_age_secs",
        )?,
        webhook_retry_base_ms: in_range(
            num(
                serve.webhook_retry_base_ms,
                "--webhook-retry-base-ms",
                "DCI_WEBHOOK_RETRY_BASE_MS",
                file.serve.webhook_retry_base_ms,
                "serve.webhook_retry_base_ms",
            )?,
            DEFAULT_WEBHOOK_RETRY_BASE_MS,
            1..=3_600_000,
            "webhook_retry_base_ms",
        )?,
        webhook_lease_secs: in_range(
            num(
                serve.webhook_lease_secs,
                "--webhook-lease-secs",
                "DCI_WEBHOOK_LEASE_SECS",
                file.serve.webhook_lease_secs,
                "serve.webhook_lease_secs",
            )?,
            DEFAULT_WEBHOOK_LEASE_SECS,
            20..=86_400,
            "webhook_lease_secs",
        )?,
        job_lease_secs: in_range(
            num(
                serve.job_lease_secs,
                "--job-lease-secs",
                "DCI_JOB_LEASE_SECS",
                file.serve.job_lease_secs,
                "serve.job_lease_secs",
            )?,
            DEFAULT_JOB_LEASE_SECS,
            3..=3_600,
            "job_lease_secs",
        )?,
        schedule_takeover_secs: in_range(
            num(
                serve.schedule_takeover_secs,
                "--schedule-takeover-secs",
                "DCI_SCHEDULE_TAKEOVER_SECS",
                file.serve.schedule_takeover_secs,
                "serve.schedule_takeover_secs",
            )?,
            DEFAULT_SCHEDULE_TAKEOVER_SECS,
            0..=86_400,
            "schedule_takeover_secs",
        )?,
        retention_days: optional_in_range(
            num(
                serve.retention_days,
                "--retention-days",
                "DCI_RETENTION_DAYS",
                file.serve.retention_days,
                "serve.retention_days",
            )?,
            1..=36_500,
            "retention_days",
        )?,
        admin_token: get("DCI_ADMIN_TOKEN").map(SecretString::from),
        admin_token_file: pick(
            (serve.admin_token_file.clone(), "--admin-token-file"),
            (
                get("DCI_ADMIN_TOKEN_FILE").map(PathBuf::from),
                "DCI_ADMIN_TOKEN_FILE",
            ),
            (
                rel(file.serve.admin_token_file),
                "serve.admin_token_file",
                fp,
            ),
        ),
        console_readonly_token: get("DCI_CONSOLE_READONLY_TOKEN").map(SecretString::from),
        console_readonly_token_file: pick(
            (
                serve.console_readonly_token_file.clone(),
                "--console-readonly-token-file",
            ),
            (
                get("DCI_CONSOLE_READONLY_TOKEN_FILE").map(PathBuf::from),
                "DCI_CONSOLE_READONLY_TOKEN_FILE",
            ),
            (
                rel(file.console.readonly_token_file),
                "console.readonly_token_file",
                fp,
            ),
        ),
        console_secure_cookies: {
            let s = pick(
                (serve.console_secure_cookies, "--console-secure-cookies"),
                (secure_env, "DCI_CONSOLE_SECURE_COOKIES"),
                (file.console.secure_cookies, "console.secure_cookies", fp),
            );
            s.or_default(false)
        },
        allow_core_dumps: pick(
            (serve.allow_core_dumps, "--allow-core-dumps"),
            (core_dumps_env, dci_server::ALLOW_CORE_DUMPS_ENV),
            (file.serve.allow_core_dumps, "serve.allow_core_dumps", fp),
        )
        .or_default(false),
        metrics_open: pick(
            (serve.metrics_open, "--metrics-open"),
            (metrics_open_env, "DCI_METRICS_OPEN"),
            (file.serve.metrics_open, "serve.metrics_open", fp),
        )
        .or_default(false),
        config_file,
    };
    if let Some(e) = &s.otlp_endpoint.value {
        let ok = url::Url::parse(e.trim())
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !ok {
            return Err(CmdError::usage(format!(
                "otlp_endpoint {e:?} (from {}) is not an http(s) URL: give the collector's base URL, e.g. http://127.0.0.1:4318",
                s.otlp_endpoint.origin.describe()
            )));
        }
    }
    if s.console_readonly_token.is_some() && s.console_readonly_token_file.value.is_some() {
        return Err(CmdError::usage(format!(
            "the console read-only token is given twice: DCI_CONSOLE_READONLY_TOKEN and console.readonly_token_file (from {}); keep one",
            s.console_readonly_token_file.origin.describe()
        )));
    }
    if s.master_key.is_some() && s.master_key_file.value.is_some() {
        return Err(CmdError::usage(format!(
            "the master key is given twice: DCI_MASTER_KEY and master_key_file (from {}); keep one",
            s.master_key_file.origin.describe()
        )));
    }
    if s.admin_token.is_some() && s.admin_token_file.value.is_some() {
        return Err(CmdError::usage(format!(
            "the admin token is given twice: DCI_ADMIN_TOKEN and admin_token_file (from {}); keep one",
            s.admin_token_file.origin.describe()
        )));
    }
    Ok(s)
}

fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

fn file_secret(file: Option<&Path>, key: &str, instead: &str, var: &str) -> CmdError {
    CmdError::usage(format!(
        "{key} in {}: secrets are not accepted as values in the config file; put the secret in a \
         file (mode 0600) and set {instead} = \"/path/to/it\", or set {var}",
        file.map(|p| p.display().to_string()).unwrap_or_default()
    ))
}

fn read_file(path: &Path, origin: &Origin) -> Result<FileConfig, CmdError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CmdError::usage(format!(
            "cannot read the config file {} (from {}): {e}",
            path.display(),
            origin.describe()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        CmdError::usage(format!(
            "config file {}: {}",
            path.display(),
            e.to_string().trim()
        ))
    })
}

pub(crate) fn read_secret_file(path: &Path, what: &str) -> Result<SecretString, CmdError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        CmdError::failed(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?);
    Ok(SecretString::from(text.trim().to_owned()))
}

impl Settings {
    /// How long finished requests, callbacks and events are kept, if the retention is set.
    pub(crate) fn retention(&self) -> Option<std::time::Duration> {
        self.retention_days
            .value
            .map(|d| std::time::Duration::from_secs(d * 86_400))
    }

    /// How to open the store (a pool of connections; one-shot commands ask for one, see
    /// `context::open_store`).
    pub(crate) fn open_options(&self) -> OpenOptions {
        OpenOptions {
            home: self.home.value.clone(),
            database_url: self.database_url.value.clone(),
            master_key: self
                .master_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            master_key_file: self.master_key_file.value.clone(),
            connections: dci_store::Connections::Pool,
        }
    }

    /// Whether the operator supplies the master key (variable or file), so dci cannot write a
    /// new one.
    pub(crate) fn master_key_supplied(&self) -> bool {
        self.master_key.is_some() || self.master_key_file.value.is_some()
    }

    /// The admin token of `dci serve`, if one is supplied (variable or file).
    pub(crate) fn admin_token(&self) -> Result<Option<SecretString>, CmdError> {
        if let Some(t) = &self.admin_token {
            return Ok(Some(t.clone()));
        }
        self.admin_token_file
            .value
            .as_deref()
            .map(|p| read_secret_file(p, "admin token"))
            .transpose()
    }

    /// The console's settings for `dci serve`: the read-only token (variable or file, at
    /// least 16 characters) and the Secure-cookie switch.
    pub(crate) fn console_config(&self) -> Result<dci_server::console::ConsoleConfig, CmdError> {
        let readonly_token = match (
            &self.console_readonly_token,
            &self.console_readonly_token_file.value,
        ) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(p)) => Some(read_secret_file(p, "console read-only token")?),
            (None, None) => None,
        };
        if readonly_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().trim().len() < 16)
        {
            return Err(CmdError::usage(
                "the console read-only token (DCI_CONSOLE_READONLY_TOKEN or console.readonly_token_file) is shorter than 16 characters: use a longer one",
            ));
        }
        Ok(dci_server::console::ConsoleConfig {
            readonly_token,
            secure_cookies: self.console_secure_cookies.value.unwrap_or(false),
        })
    }

    /// The effective settings for `dci config show`: `(name, value, origin kind, origin)`,
    /// secrets masked (only whether one is set is shown).
    pub(crate) fn rows(&self) -> Vec<(&'static str, Option<String>, &'static str, String)> {
        fn row<T: std::fmt::Display>(
            name: &'static str,
            s: &Setting<T>,
        ) -> (&'static str, Option<String>, &'static str, String) {
            (
                name,
                s.value.as_ref().map(ToString::to_string),
                s.origin.kind(),
                s.origin.describe(),
            )
        }
        let path = |s: &Setting<PathBuf>| Setting {
            value: s.value.as_ref().map(|p| p.display().to_string()),
            origin: s.origin.clone(),
        };
        let secret = |name: &'static str, v: &Option<SecretString>, var: &'static str| {
            (
                name,
                v.as_ref().map(|_| dci_client::MASKED.to_owned()),
                if v.is_some() { "env" } else { "default" },
                if v.is_some() {
                    format!("env {var}")
                } else {
                    "default".into()
                },
            )
        };
        let home = match &self.home.value {
            Some(_) => path(&self.home),
            None => Setting {
                value: self
                    .open_options()
                    .resolved_home()
                    .ok()
                    .map(|h| h.display().to_string()),
                origin: Origin::Default,
            },
        };
        let db = Setting {
            value: self
                .database_url
                .value
                .as_deref()
                .map(dci_store::redact_url),
            origin: self.database_url.origin.clone(),
        };
        vec![
            row("config", &path(&self.config_file)),
            row("home", &home),
            row("database_url", &db),
            secret("master_key", &self.master_key, "DCI_MASTER_KEY"),
            row("master_key_file", &path(&self.master_key_file)),
            row("log", &self.log),
            row("log_format", &self.log_format),
            row("otlp_endpoint", &self.otlp_endpoint),
            row("serve.listen", &self.listen),
            row("serve.body_limit", &self.body_limit),
            row("serve.request_timeout", &self.request_timeout),
            row("serve.shutdown_grace", &self.shutdown_grace),
            secret("serve.admin_token", &self.admin_token, "DCI_ADMIN_TOKEN"),
            row("serve.admin_token_file", &path(&self.admin_token_file)),
            row("serve.max_in_flight", &self.max_in_flight),
            row("serve.webhook_max_attempts", &self.webhook_max_attempts),
            row("serve.webhook_max_age_secs", &self.webhook_max_age_secs),
            row("serve.webhook_retry_base_ms", &self.webhook_retry_base_ms),
            row("serve.webhook_lease_secs", &self.webhook_lease_secs),
            row("serve.job_lease_secs", &self.job_lease_secs),
            row("serve.schedule_takeover_secs", &self.schedule_takeover_secs),
            row("serve.allow_core_dumps", &self.allow_core_dumps),
            row("serve.metrics_open", &self.metrics_open),
            row("serve.retention_days", &self.retention_days),
            secret(
                "console.readonly_token",
                &self.console_readonly_token,
                "DCI_CONSOLE_READONLY_TOKEN",
            ),
            row(
                "console.readonly_token_file",
                &path(&self.console_readonly_token_file),
            ),
            row("console.secure_cookies", &self.console_secure_cookies),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::url_has_password;

    #[test]
    fn passwords_in_urls_are_seen() {
        assert!(url_has_password("postgres://dci:s3cret@db/dci"));
        assert!(!url_has_password("postgres://dci@db/dci"));
        assert!(!url_has_password("sqlite:///var/lib/dci/dci.db"));
        assert!(!url_has_password("postgres://db/dci?user=a@b"));
    }
}
