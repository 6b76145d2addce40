//! `dci source …`: manage data sources (registry connections).
//!
//! Secrets (client secret, bearer token, basic password) never come from argv: they are read from
//! stdin with `--secret-stdin`, or prompted for on a terminal. Output never shows them: they
//! appear as `********`.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use dci_client::source::names;
use dci_client::{
    AuthKind, DataSource, SourceDocument, SourceFilter, SourceState, Store, UnknownName,
};
use dci_store::transfer::{self, ImportOptions, TransferError};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::cli::exit;
use crate::context::{CLI_ACTOR, CmdError, block_on, open_store, say};

#[derive(Debug, Subcommand)]
pub(crate) enum SourceCommand {
    /// Add a data source. The secret is read from stdin (--secret-stdin) or prompted for.
    Add(Box<AddArgs>),
    /// List data sources.
    List(ListArgs),
    /// Show one data source (secrets masked).
    Show {
        /// The data source's code.
        code: String,
        /// Also print the callback URL the registry must post to; it holds the callback secret.
        #[arg(long)]
        reveal_callback_url: bool,
    },
    /// Change settings of a data source; settings not given keep their value, and so does the
    /// secret unless a new one is given. New credentials send an active source back to draft.
    Edit(Box<EditArgs>),
    /// Delete a data source with its secrets and cached token.
    Remove {
        /// The data source's code.
        code: String,
        /// Remove without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Enable a data source.
    Enable {
        /// The data source's code.
        code: String,
    },
    /// Disable a data source (kept, but not used).
    Disable {
        /// The data source's code.
        code: String,
    },
    /// Run the staged connection test and record the result (state active or error).
    Test(crate::cmd::test_connection::TestArgs),
    /// Write data sources as JSON to stdout. Secrets are left out unless --with-secrets.
    Export(ExportArgs),
    /// Create data sources from an export file.
    Import(ImportArgs),
}

/// Settings shared by `add` and `edit`. Every value is validated by the library; errors name
/// the field and the fix.
#[derive(Debug, Args, Default)]
pub(crate) struct SourceFields {
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Registry type: crvs, dr, ibr, social, fr.
    #[arg(long)]
    registry_type: Option<String>,
    /// Base URL (http or https, no trailing slash), e.g. https://crvs.example.org/api/v1.
    #[arg(long)]
    base_url: Option<String>,
    /// Authentication: none, bearer, basic, oauth2.
    #[arg(long)]
    auth: Option<String>,
    /// OAuth2 token URL.
    #[arg(long)]
    token_url: Option<String>,
    /// OAuth2 client id.
    #[arg(long)]
    client_id: Option<String>,
    /// OAuth2 scope (space-separated).
    #[arg(long)]
    scope: Option<String>,
    /// Where OAuth2 credentials go: body (default), basic, query (OpenCRVS), json.
    #[arg(long)]
    credential_location: Option<String>,
    /// HTTP Basic user name (the password is the secret).
    #[arg(long)]
    basic_user: Option<String>,
    /// Our sender id (required for authenticated sources).
    #[arg(long)]
    sender_id: Option<String>,
    /// The registry's receiver id (default: the base URL).
    #[arg(long)]
    receiver_id: Option<String>,
    /// Base URL of our callback routes.
    #[arg(long)]
    callback_uri: Option<String>,
    /// Sync search path (default /registry/sync/search).
    #[arg(long)]
    sync_search_path: Option<String>,
    /// Async search path (default /registry/search).
    #[arg(long)]
    search_path: Option<String>,
    /// Subscribe path (default /registry/subscribe).
    #[arg(long)]
    subscribe_path: Option<String>,
    /// Unsubscribe path (default /registry/unsubscribe).
    #[arg(long)]
    unsubscribe_path: Option<String>,
    /// Async txn status path (default /registry/txn/status).
    #[arg(long)]
    txn_status_path: Option<String>,
    /// Sync txn status path (default /registry/sync/txn/status).
    #[arg(long)]
    sync_txn_status_path: Option<String>,
    /// Verify the registry's TLS certificate (default true).
    #[arg(long, value_name = "BOOL")]
    tls_verify: Option<bool>,
    /// Extra CA bundle (PEM file).
    #[arg(long)]
    ca_file: Option<String>,
    /// Client certificate for mutual TLS (PEM file).
    #[arg(long)]
    client_cert: Option<String>,
    /// Client key for mutual TLS (PEM file).
    #[arg(long)]
    client_key: Option<String>,
    /// Request timeout in seconds (default 30).
    #[arg(long)]
    timeout: Option<String>,
    /// Expected callback time in seconds: after it the registry is asked with txn-status
    /// (default 30).
    #[arg(long)]
    callback_within: Option<String>,
    /// How often, in seconds, a request still waiting is asked about again (default 30).
    #[arg(long)]
    poll_interval: Option<String>,
    /// Give up (mark expired) a request without a result this many seconds after sending
    /// (default 3600).
    #[arg(long)]
    give_up_after: Option<String>,
    /// Retries of idempotent calls, 0-10 (default 5).
    #[arg(long)]
    max_retries: Option<String>,
    /// Size of the retry quota (token bucket), 0 for none (default 500).
    #[arg(long)]
    retry_quota: Option<String>,
    /// Calls in flight at once to this registry, 1-256 (default 4).
    #[arg(long)]
    max_concurrency: Option<String>,
    /// Requests per second to this registry, 1-100000 (default: no limit).
    #[arg(long)]
    rate_limit: Option<String>,
    /// Requests that may go at once after a quiet spell, 1-100000 (default: the rate).
    #[arg(long)]
    rate_burst: Option<String>,
    /// Identifiers per search envelope in bulk runs, 1-1000 (default 100).
    #[arg(long)]
    max_batch_size: Option<String>,
    /// Consecutive transient failures that open the circuit breaker, 0 for none (default 5).
    #[arg(long)]
    breaker_failures: Option<String>,
    /// Seconds the circuit breaker stays open before a probe, 1-3600 (default 30).
    #[arg(long)]
    breaker_cooldown: Option<String>,
    /// Signing key reference for outgoing envelopes.
    #[arg(long)]
    signing_key: Option<String>,
    /// Check signatures on the registry's replies: off, if-present, require.
    #[arg(long)]
    reply_signatures: Option<String>,
    /// A file holding a registry public key (PEM); repeat for several.
    #[arg(long, value_name = "FILE")]
    registry_public_key: Vec<PathBuf>,
    /// The registry's JWKS URL.
    #[arg(long)]
    registry_jwks_url: Option<String>,
    /// The registry's dialect: standard (default), opencrvs (= opencrvs-1.5), opencrvs-1.5,
    /// opencrvs-1.3.
    #[arg(long)]
    profile: Option<String>,
    /// Accept callbacks that are neither signed nor carry the callback secret (unsafe: anyone
    /// who reaches the receiver can forge results).
    #[arg(long, value_name = "BOOL")]
    accept_unauthenticated_callbacks: Option<bool>,
    /// Answer refused callbacks (bad signature, unknown transaction, wrong sender, malformed
    /// message) with HTTP 4xx statuses instead of HTTP 200 with an ACK ERR (default false).
    #[arg(long, value_name = "BOOL")]
    http_callback_refusals: Option<bool>,
    /// Free-form notes.
    #[arg(long)]
    notes: Option<String>,
    /// Read the secret (client secret, bearer token or basic password) from stdin.
    #[arg(long)]
    secret_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Unique code: lowercase letters, digits and '_'.
    #[arg(long)]
    code: Option<String>,
    /// Create the source disabled.
    #[arg(long)]
    disabled: bool,
    #[command(flatten)]
    fields: SourceFields,
}

#[derive(Debug, Args)]
pub(crate) struct EditArgs {
    /// The data source's code.
    code: String,
    /// Rename the code.
    #[arg(long)]
    new_code: Option<String>,
    /// Prompt for a new secret on the terminal.
    #[arg(long, conflicts_with = "secret_stdin")]
    prompt_secret: bool,
    /// Replace the callback secret with a fresh one and print the new callback URL (callbacks
    /// to the old URL are refused from then on).
    #[arg(long)]
    regenerate_callback_secret: bool,
    #[command(flatten)]
    fields: SourceFields,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only this registry type.
    #[arg(long)]
    registry_type: Option<String>,
    /// Only this state: draft, testing, active, error.
    #[arg(long)]
    state: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Include secrets, sealed under the export key in --secrets-key-file.
    #[arg(long, requires = "secrets_key_file")]
    with_secrets: bool,
    /// File holding the export key (created with mode 0600 if missing). Give the same file to
    /// `import`.
    #[arg(long, value_name = "FILE")]
    secrets_key_file: Option<PathBuf>,
    /// Only these codes (default: all).
    codes: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The export file (`-` for stdin).
    file: PathBuf,
    /// Export key file, needed if the export holds secrets.
    #[arg(long, value_name = "FILE")]
    secrets_key_file: Option<PathBuf>,
    /// Update sources whose code already exists instead of failing.
    #[arg(long)]
    replace: bool,
}

pub(crate) fn run(cmd: SourceCommand, json: bool) -> u8 {
    // The connection test runs its own runtime and reports its own outcome.
    let cmd = match cmd {
        SourceCommand::Test(args) => return crate::cmd::test_connection::run(args, json),
        other => other,
    };
    match block_on(run_async(cmd, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

async fn run_async(cmd: SourceCommand, json: bool) -> Result<(), CmdError> {
    // Parse and read secrets before opening the store, so bad input changes nothing.
    match cmd {
        SourceCommand::Add(args) => add(*args, json).await,
        SourceCommand::List(args) => list(args, json).await,
        SourceCommand::Show {
            code,
            reveal_callback_url,
        } => {
            let store = open_store().await?.store;
            let source = get(&*store, &code).await?;
            print_source(&source, json, reveal_callback_url);
            Ok(())
        }
        SourceCommand::Edit(args) => edit(*args, json).await,
        SourceCommand::Remove { code, yes } => {
            let engine = crate::context::engine().await?;
            // An unknown code says so (exit 3) before anything is asked.
            if engine.store().get_data_source(&code).await?.is_none() {
                return Err(dci_client::StoreError::NotFound(code).into());
            }
            crate::context::confirm(
                &format!("remove data source {code} with its secrets and cached token"),
                yes,
            )?;
            engine.delete_source(CLI_ACTOR, &code).await?;
            out(
                json,
                json!({ "removed": code }),
                &format!("removed data source {code}"),
            );
            Ok(())
        }
        SourceCommand::Enable { code } => set_active(&code, true, json).await,
        SourceCommand::Disable { code } => set_active(&code, false, json).await,
        SourceCommand::Test(_) => unreachable!("dispatched in run"),
        SourceCommand::Export(args) => export(args).await,
        SourceCommand::Import(args) => import(args, json).await,
    }
}

async fn add(args: AddArgs, json: bool) -> Result<(), CmdError> {
    let mut doc = SourceDocument {
        code: args.code,
        ..SourceDocument::default()
    };
    apply_fields(&mut doc, &args.fields)?;
    if args.disabled {
        doc.active = Some(false);
    }
    if let Some(kind) = doc.auth_kind().filter(|k| *k != AuthKind::None) {
        let secret = if args.fields.secret_stdin {
            Some(read_secret_stdin()?)
        } else if io::stdin().is_terminal() {
            Some(prompt_secret(kind)?)
        } else {
            None
        };
        doc.set_secret(kind, secret);
    }
    let source = doc
        .validate()
        .map_err(|e| CmdError::invalid(e.relabel(|f| flag_of(f, "--code"))))?;
    let stored = crate::context::engine()
        .await?
        .create_source(CLI_ACTOR, &source)
        .await
        .map_err(|e| save_error(e, "--code"))?;
    // The callback URL carries the callback secret: shown once here (and on request later).
    if json {
        say!("{}", revealed_json(&stored));
    } else {
        say!(
            "added data source {} ({}, state {})",
            stored.code,
            stored.registry_type,
            stored.state.as_str(),
        );
        say_callback_url(&stored);
    }
    Ok(())
}

/// The library's refusal of a save, its field errors on the flags (`code` on `code_flag`).
fn save_error(e: dci_client::SaveError, code_flag: &'static str) -> CmdError {
    match e {
        dci_client::SaveError::Invalid(errs) => {
            CmdError::invalid(errs.relabel(|f| flag_of(f, code_flag)))
        }
        dci_client::SaveError::Store(e) => e.into(),
    }
}

async fn edit(args: EditArgs, json: bool) -> Result<(), CmdError> {
    // Read a new secret first: stdin is only available once, and a prompt should not hold a
    // database connection.
    let new_secret = if args.fields.secret_stdin {
        Some(read_secret_stdin()?)
    } else {
        None
    };
    let engine = crate::context::engine().await?;
    let existing = get(&**engine.store(), &args.code).await?;
    let mut doc = SourceDocument::from_source(&existing);
    // Switching auth type: the old type's settings would be refused as foreign fields.
    if let Some(auth) = &args.fields.auth
        && auth.parse::<AuthKind>().ok() != Some(existing.auth.kind())
    {
        doc.clear_auth_settings();
    }
    apply_fields(&mut doc, &args.fields)?;
    if let Some(code) = args.new_code {
        doc.code = Some(code);
    }
    if let Some(kind) = doc.auth_kind().filter(|k| *k != AuthKind::None) {
        match new_secret {
            Some(s) => doc.set_secret(kind, Some(s)),
            None if args.prompt_secret => doc.set_secret(kind, Some(prompt_secret(kind)?)),
            None => {}
        }
    }
    let mut updated = doc
        .validate_rename(&existing)
        .map_err(|e| CmdError::invalid(e.relabel(|f| flag_of(f, "--new-code"))))?;
    if args.regenerate_callback_secret {
        updated.regenerate_callback_secret();
    }
    // One transaction: the row, its secrets and (on new credentials) the cached token.
    let stored = engine
        .update_source(CLI_ACTOR, &existing, &updated)
        .await
        .map_err(|e| save_error(e, "--new-code"))?;
    let reset = stored.state == SourceState::Draft && existing.state != SourceState::Draft;
    if json {
        let mut v = if args.regenerate_callback_secret {
            revealed_json(&stored)
        } else {
            stored.to_redacted_json()
        };
        v["credentials_reset"] = reset.into();
        say!("{v}");
    } else {
        say!("updated data source {}", stored.code);
        if args.regenerate_callback_secret {
            say_callback_url(&stored);
        }
        if reset {
            say!(
                "credentials changed: state reset to draft and cached token dropped (test the connection again)"
            );
        }
    }
    Ok(())
}

async fn list(args: ListArgs, json: bool) -> Result<(), CmdError> {
    let mut filter = SourceFilter::default();
    if let Some(r) = &args.registry_type {
        filter.registry_type = Some(
            names::registry_type(r)
                .map_err(|e| CmdError::usage(format!("--registry-type: {e}")))?,
        );
    }
    if let Some(s) = &args.state {
        filter.state = Some(
            s.parse()
                .map_err(|e: UnknownName| CmdError::usage(format!("--state: {e}")))?,
        );
    }
    let store = open_store().await?.store;
    let sources = store.list_data_sources(&filter).await?;
    if json {
        let all: Vec<Value> = sources.iter().map(DataSource::to_redacted_json).collect();
        say!("{}", Value::Array(all));
        return Ok(());
    }
    if sources.is_empty() {
        say!("no data sources; add one with `dci source add`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = sources
        .iter()
        .map(|s| {
            vec![
                s.code.clone(),
                s.name.clone(),
                s.registry_type.to_string(),
                s.auth.kind().as_str().to_owned(),
                s.state.as_str().to_owned(),
                if s.active { "yes" } else { "no" }.to_owned(),
                s.base_url.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "CODE", "NAME", "REGISTRY", "AUTH", "STATE", "ENABLED", "BASE URL",
        ],
        &rows,
    );
    Ok(())
}

async fn set_active(code: &str, active: bool, json: bool) -> Result<(), CmdError> {
    crate::context::engine()
        .await?
        .set_source_active(CLI_ACTOR, code, active)
        .await?;
    let word = if active { "enabled" } else { "disabled" };
    out(
        json,
        json!({ "code": code, "active": active }),
        &format!("{word} data source {code}"),
    );
    Ok(())
}

async fn export(args: ExportArgs) -> Result<(), CmdError> {
    let export_key = match (&args.secrets_key_file, args.with_secrets) {
        (Some(path), true) => Some(load_or_create_export_key(path)?),
        (Some(_), false) => {
            return Err(CmdError::usage(
                "--secrets-key-file is only used with --with-secrets: add --with-secrets or drop it",
            ));
        }
        _ => None,
    };
    let store = open_store().await?.store;
    let file = transfer::export(&*store, &args.codes, export_key.as_ref())
        .await
        .map_err(transfer_error)?;
    let text = serde_json::to_string_pretty(&file).expect("export serializes");
    say!("{text}");
    Ok(())
}

async fn import(args: ImportArgs, json: bool) -> Result<(), CmdError> {
    let text = if args.file == Path::new("-") {
        let mut s = String::new();
        io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CmdError::failed(format!("stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| CmdError::usage(format!("{}: {e}", args.file.display())))?
    };
    let file = transfer::parse_export(&text).map_err(|e| {
        CmdError::usage(format!(
            "{}: {}",
            args.file.display(),
            transfer_error(e).message
        ))
    })?;
    let export_key = match &args.secrets_key_file {
        Some(path) => Some(
            dci_store::master_key::read_file(path).map_err(|e| CmdError::usage(e.to_string()))?,
        ),
        None => None,
    };
    let engine = crate::context::engine().await?;
    let report = transfer::import(
        &**engine.store(),
        file,
        ImportOptions {
            secrets_key: export_key.as_ref(),
            replace: args.replace,
        },
    )
    .await
    .map_err(transfer_error)?;
    // Audited by code: the file's fields are its own, not a change from a stored record.
    let created = report.created.iter().map(|c| (c, "import (create)"));
    let changes = created.chain(report.updated.iter().map(|c| (c, "import (replace)")));
    for (code, action) in changes {
        engine.invalidate(code);
        engine
            .record_source_change(CLI_ACTOR, code, action, Vec::new())
            .await;
    }
    out(
        json,
        json!({ "created": report.created, "updated": report.updated }),
        &format!(
            "imported {} data source(s), updated {}",
            report.created.len(),
            report.updated.len()
        ),
    );
    Ok(())
}

/// The library's transfer errors in the CLI's terms (flags, exit codes).
fn transfer_error(e: TransferError) -> CmdError {
    match e {
        TransferError::Store(s) => {
            let mut err = CmdError::from(s);
            if err.kind == "conflict" {
                err.message = format!(
                    "nothing imported: {} (or import with --replace)",
                    err.message
                );
            }
            err
        }
        TransferError::KeyNeeded { .. } | TransferError::WrongKey { .. } => {
            CmdError::usage(format!("{e}: pass it with --secrets-key-file"))
        }
        other => CmdError::usage(other.to_string()),
    }
}

fn load_or_create_export_key(path: &Path) -> Result<dci_client::MasterKey, CmdError> {
    if path.exists() {
        dci_store::master_key::read_file(path).map_err(|e| CmdError::usage(e.to_string()))
    } else {
        let key = dci_store::master_key::generate();
        dci_store::master_key::write_new_file(path, &key)
            .map_err(|e| CmdError::failed(e.to_string()))?;
        eprintln!(
            "created export key {} (mode 0600): keep it to import the secrets",
            path.display()
        );
        Ok(key)
    }
}

async fn get(store: &dyn Store, code: &str) -> Result<DataSource, CmdError> {
    store
        .get_data_source(code)
        .await?
        .ok_or_else(|| dci_client::StoreError::NotFound(code.to_owned()).into())
}

/// The text flags shared by `add` and `edit`: the document path each sets, the flag, its value.
fn text_flags(f: &SourceFields) -> [(&'static str, &'static str, &Option<String>); 37] {
    [
        ("name", "--name", &f.name),
        ("registry_type", "--registry-type", &f.registry_type),
        ("base_url", "--base-url", &f.base_url),
        ("auth.type", "--auth", &f.auth),
        ("auth.token_url", "--token-url", &f.token_url),
        ("auth.client_id", "--client-id", &f.client_id),
        ("auth.scope", "--scope", &f.scope),
        (
            "auth.credential_location",
            "--credential-location",
            &f.credential_location,
        ),
        ("auth.username", "--basic-user", &f.basic_user),
        ("sender_id", "--sender-id", &f.sender_id),
        ("receiver_id", "--receiver-id", &f.receiver_id),
        ("callback_uri", "--callback-uri", &f.callback_uri),
        (
            "endpoints.sync_search",
            "--sync-search-path",
            &f.sync_search_path,
        ),
        ("endpoints.search", "--search-path", &f.search_path),
        ("endpoints.subscribe", "--subscribe-path", &f.subscribe_path),
        (
            "endpoints.unsubscribe",
            "--unsubscribe-path",
            &f.unsubscribe_path,
        ),
        (
            "endpoints.txn_status",
            "--txn-status-path",
            &f.txn_status_path,
        ),
        (
            "endpoints.sync_txn_status",
            "--sync-txn-status-path",
            &f.sync_txn_status_path,
        ),
        ("tls.ca_file", "--ca-file", &f.ca_file),
        ("tls.client_cert_file", "--client-cert", &f.client_cert),
        ("tls.client_key_file", "--client-key", &f.client_key),
        ("timeout_secs", "--timeout", &f.timeout),
        (
            "recovery.callback_within_secs",
            "--callback-within",
            &f.callback_within,
        ),
        (
            "recovery.poll_interval_secs",
            "--poll-interval",
            &f.poll_interval,
        ),
        (
            "recovery.give_up_after_secs",
            "--give-up-after",
            &f.give_up_after,
        ),
        ("retry.max_retries", "--max-retries", &f.max_retries),
        ("retry.quota", "--retry-quota", &f.retry_quota),
        (
            "limits.max_concurrency",
            "--max-concurrency",
            &f.max_concurrency,
        ),
        ("limits.rate_per_sec", "--rate-limit", &f.rate_limit),
        ("limits.burst", "--rate-burst", &f.rate_burst),
        (
            "limits.max_batch_size",
            "--max-batch-size",
            &f.max_batch_size,
        ),
        (
            "limits.breaker_failures",
            "--breaker-failures",
            &f.breaker_failures,
        ),
        (
            "limits.breaker_cooldown_secs",
            "--breaker-cooldown",
            &f.breaker_cooldown,
        ),
        ("signing_key_id", "--signing-key", &f.signing_key),
        (
            "reply_signature_policy",
            "--reply-signatures",
            &f.reply_signatures,
        ),
        (
            "registry_jwks_url",
            "--registry-jwks-url",
            &f.registry_jwks_url,
        ),
        ("profile", "--profile", &f.profile),
    ]
}

/// How the CLI names a document field in messages: its flag (`code_flag` for the code, which
/// `add` and `edit` spell differently).
fn flag_of(path: &str, code_flag: &'static str) -> Option<String> {
    let flag = match path {
        "code" => code_flag,
        "notes" => "--notes",
        "tls.verify" => "--tls-verify",
        "active" => "--disabled",
        "callbacks.accept_unauthenticated" => "--accept-unauthenticated-callbacks",
        "callbacks.http_refusals" => "--http-callback-refusals",
        "callbacks.secret" => "--regenerate-callback-secret",
        "registry_public_keys" => "--registry-public-key",
        p if SourceDocument::SECRET_FIELDS.contains(&p) => {
            return Some("the secret (--secret-stdin)".into());
        }
        p => {
            return text_flags(&SourceFields::default())
                .into_iter()
                .find(|(path, _, _)| *path == p)
                .map(|(_, flag, _)| flag.to_owned());
        }
    };
    Some(flag.to_owned())
}

/// Applies the given flags to the document; flags not given leave their field as it is.
fn apply_fields(doc: &mut SourceDocument, f: &SourceFields) -> Result<(), CmdError> {
    for (path, _, value) in text_flags(f) {
        if let Some(v) = value {
            doc.set_text(path, Some(v.clone()));
        }
    }
    if let Some(v) = &f.notes {
        doc.notes = Some(v.clone());
    }
    if let Some(v) = f.tls_verify {
        doc.tls.verify = Some(v);
    }
    if let Some(v) = f.accept_unauthenticated_callbacks {
        doc.callbacks.accept_unauthenticated = Some(v);
    }
    if let Some(v) = f.http_callback_refusals {
        doc.callbacks.http_refusals = Some(v);
    }
    if !f.registry_public_key.is_empty() {
        let mut keys = Vec::new();
        for path in &f.registry_public_key {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                CmdError::usage(format!("--registry-public-key {}: {e}", path.display()))
            })?;
            keys.push(pem);
        }
        doc.registry_public_keys = keys;
    }
    Ok(())
}

fn read_secret_stdin() -> Result<SecretString, CmdError> {
    let mut text = String::new();
    io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CmdError::failed(format!("reading the secret from stdin: {e}")))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    text.clear();
    if secret.is_empty() {
        return Err(CmdError::usage(
            "--secret-stdin: stdin was empty: pipe the secret in, e.g. `dci source add … --secret-stdin < secret.txt`",
        ));
    }
    Ok(SecretString::from(secret))
}

fn prompt_secret(kind: AuthKind) -> Result<SecretString, CmdError> {
    let what = match kind {
        AuthKind::Bearer => "Bearer token",
        AuthKind::Basic => "Basic password",
        _ => "OAuth2 client secret",
    };
    let secret = rpassword::prompt_password(format!("{what}: "))
        .map_err(|e| CmdError::failed(format!("reading the secret from the terminal: {e}")))?;
    Ok(SecretString::from(secret))
}

fn out(json: bool, value: Value, text: &str) {
    if json {
        say!("{value}");
    } else {
        say!("{text}");
    }
}

/// The source's document with `callbacks.url` (the callback URL with its secret).
fn revealed_json(s: &DataSource) -> Value {
    serde_json::to_value(SourceDocument::from_source(s).reveal_callback_url(s))
        .unwrap_or_else(|_| s.to_redacted_json())
}

fn say_callback_url(s: &DataSource) {
    match s.callback_url_with_secret() {
        Some(url) => say!(
            "callback URL (holds the callback secret; requests send it as sender_uri): {url}\nshow it again with `dci source show {} --reveal-callback-url`",
            s.code
        ),
        None if s.callback_uri.is_none() => {}
        None => say!("no callback secret: unsigned callbacks are refused"),
    }
}

fn print_source(s: &DataSource, json: bool, reveal_callback_url: bool) {
    let v = if reveal_callback_url {
        revealed_json(s)
    } else {
        s.to_redacted_json()
    };
    if json {
        say!("{v}");
        return;
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    flatten("", &v, &mut rows);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut stdout = io::stdout().lock();
    for (k, val) in rows {
        let _ = writeln!(stdout, "{k:width$}  {val}");
    }
}

/// `auth.client_id`-style keys for nested objects; nulls and empty lists are shown as `-`.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Null => out.push((prefix.to_owned(), "-".into())),
        Value::String(s) if s.is_empty() => out.push((prefix.to_owned(), "-".into())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Array(a) if a.is_empty() => out.push((prefix.to_owned(), "-".into())),
        Value::Array(a) => out.push((prefix.to_owned(), format!("{} item(s)", a.len()))),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut stdout = io::stdout().lock();
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    (*c).to_owned()
                } else {
                    format!("{c}{}", " ".repeat(widths[i] - c.chars().count()))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(stdout, "{}", line(headers.to_vec()));
    for row in rows {
        let _ = writeln!(stdout, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_field_has_a_flag() {
        for path in SourceDocument::TEXT_FIELDS
            .iter()
            .chain(SourceDocument::SECRET_FIELDS)
            .chain(SourceDocument::OTHER_FIELDS)
        {
            let flag = flag_of(path, "--code").unwrap_or_else(|| panic!("no flag for {path}"));
            assert!(flag.contains("--"), "{path}: {flag}");
        }
        for (path, _, _) in text_flags(&SourceFields::default()) {
            assert!(SourceDocument::TEXT_FIELDS.contains(&path), "{path}");
        }
    }
}
