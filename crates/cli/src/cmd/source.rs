//! `dci source …`: manage data sources (registry connections).
//!
//! Secrets (client secret, bearer token, basic password) never come from argv: they are read from
//! stdin with `--secret-stdin`, or prompted for on a terminal. Output never shows them: they
//! appear as `********`.

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use dci_client::{
    AuthConfig, AuthKind, DataSource, DataSourceInput, SourceFilter, SourceState, Store,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cli::exit;
use crate::context::{CmdError, block_on, open_store, say};

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
    },
    /// Change settings of a data source; settings not given keep their value, and so does the
    /// secret unless a new one is given. New credentials send an active source back to draft.
    Edit(Box<EditArgs>),
    /// Delete a data source with its secrets and cached token.
    Remove {
        /// The data source's code.
        code: String,
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
        SourceCommand::Show { code } => {
            let store = open_store().await?.store;
            let source = get(&*store, &code).await?;
            print_source(&source, json);
            Ok(())
        }
        SourceCommand::Edit(args) => edit(*args, json).await,
        SourceCommand::Remove { code } => {
            let store = open_store().await?.store;
            store.delete_data_source(&code).await?;
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
    let mut input = DataSourceInput {
        code: args.code.unwrap_or_default(),
        ..Default::default()
    };
    apply_fields(&mut input, &args.fields)?;
    if args.disabled {
        input.active = Some(false);
    }
    let kind = auth_kind(input.auth.as_deref());
    if let Some(kind) = kind.filter(|k| *k != AuthKind::None) {
        let secret = if args.fields.secret_stdin {
            Some(read_secret_stdin()?)
        } else if io::stdin().is_terminal() {
            Some(prompt_secret(kind)?)
        } else {
            None
        };
        put_secret(&mut input, kind, secret);
    }
    let source = input.validate().map_err(CmdError::invalid)?;
    let store = open_store().await?.store;
    store.create_data_source(&source).await?;
    let stored = get(&*store, &source.code).await?;
    if json {
        say!("{}", stored.to_redacted_json());
    } else {
        say!(
            "added data source {} ({}, state {})",
            stored.code,
            stored.registry_type,
            stored.state.as_str(),
        );
    }
    Ok(())
}

async fn edit(args: EditArgs, json: bool) -> Result<(), CmdError> {
    // Read a new secret first: stdin is only available once, and a prompt should not hold a
    // database connection.
    let new_secret = if args.fields.secret_stdin {
        Some(read_secret_stdin()?)
    } else {
        None
    };
    let opened = open_store().await?;
    let store = opened.store;
    let existing = get(&*store, &args.code).await?;
    let mut input = DataSourceInput::from_source(&existing);
    // Switching auth type: the old type's settings would be rejected as foreign fields.
    if let Some(auth) = &args.fields.auth
        && auth_kind(Some(auth)) != Some(existing.auth.kind())
    {
        input.clear_auth_fields();
    }
    apply_fields(&mut input, &args.fields)?;
    if let Some(code) = args.new_code {
        input.code = code;
    }
    let kind = auth_kind(input.auth.as_deref());
    if let Some(kind) = kind.filter(|k| *k != AuthKind::None) {
        let secret = match new_secret {
            Some(s) => Some(s),
            None if args.prompt_secret => Some(prompt_secret(kind)?),
            None => None,
        };
        put_secret(&mut input, kind, secret);
    }
    let updated = input
        .validate_update(&existing)
        .map_err(CmdError::invalid)?;
    let stored = store.update_data_source(&updated).await?;
    let reset = stored.state == SourceState::Draft && existing.state != SourceState::Draft;
    if json {
        let mut v = stored.to_redacted_json();
        v["credentials_reset"] = reset.into();
        say!("{v}");
    } else {
        say!("updated data source {}", stored.code);
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
            r.parse()
                .map_err(|e| CmdError::usage(format!("--registry-type: {e}")))?,
        );
    }
    if let Some(s) = &args.state {
        filter.state = Some(parse_state(s).ok_or_else(|| {
            CmdError::usage(format!(
                "--state: {s:?} is not a state: use one of draft, testing, active, error"
            ))
        })?);
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
    let store = open_store().await?.store;
    store.set_active(code, active).await?;
    let word = if active { "enabled" } else { "disabled" };
    out(
        json,
        json!({ "code": code, "active": active }),
        &format!("{word} data source {code}"),
    );
    Ok(())
}

/// The export format: version 1. Field names follow the configuration names; secrets appear only
/// under `sealed_secret`, encrypted with the export key and bound to the code and field.
#[derive(Debug, Serialize, Deserialize)]
struct ExportFile {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secrets_key_id: Option<String>,
    data_sources: Vec<ExportedSource>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ExportedSource {
    code: String,
    name: String,
    registry_type: String,
    base_url: String,
    auth: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    basic_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_location: Option<String>,
    sender_id: Option<String>,
    receiver_id: Option<String>,
    callback_uri: Option<String>,
    endpoints: dci_client::Endpoints,
    tls: dci_client::TlsSettings,
    timeout_secs: u32,
    signing_key_id: Option<String>,
    reply_signature_policy: String,
    registry_public_keys: Vec<String>,
    registry_jwks_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    active: bool,
    notes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed_secret: Option<ExportedSecret>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ExportedSecret {
    field: String,
    key_id: String,
    nonce: String,
    ciphertext: String,
}

fn secret_field(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::Bearer => "bearer_token",
        AuthKind::Basic => "basic_password",
        _ => "client_secret",
    }
}

fn exported(s: &DataSource) -> ExportedSource {
    let i = DataSourceInput::from_source(s);
    ExportedSource {
        code: s.code.clone(),
        name: s.name.clone(),
        registry_type: s.registry_type.as_str().to_owned(),
        base_url: s.base_url.clone(),
        auth: s.auth.kind().as_str().to_owned(),
        basic_username: i.basic_username,
        token_url: i.token_url,
        client_id: i.client_id,
        scope: i.scope,
        credential_location: i.credential_location,
        sender_id: s.sender_id.clone(),
        receiver_id: s.receiver_id.clone(),
        callback_uri: s.callback_uri.clone(),
        endpoints: s.endpoints.clone(),
        tls: s.tls.clone(),
        timeout_secs: s.timeout_secs,
        signing_key_id: s.signing_key_id.clone(),
        reply_signature_policy: s.reply_signature_policy.as_str().to_owned(),
        registry_public_keys: s.registry_public_keys.clone(),
        registry_jwks_url: s.registry_jwks_url.clone(),
        profile: Some(s.profile.as_str().to_owned()),
        active: s.active,
        notes: s.notes.clone(),
        sealed_secret: None,
    }
}

fn stored_secret(auth: &AuthConfig) -> Option<&SecretString> {
    match auth {
        AuthConfig::None => None,
        AuthConfig::Bearer { token } => Some(token),
        AuthConfig::Basic { password, .. } => Some(password),
        AuthConfig::OAuth2(o) => Some(&o.client_secret),
    }
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
    let mut sources = store.list_data_sources(&SourceFilter::default()).await?;
    if !args.codes.is_empty() {
        for code in &args.codes {
            if !sources.iter().any(|s| &s.code == code) {
                return Err(dci_client::StoreError::NotFound(code.clone()).into());
            }
        }
        sources.retain(|s| args.codes.contains(&s.code));
    }
    let mut file = ExportFile {
        version: 1,
        secrets_key_id: export_key.as_ref().map(dci_store::key_id),
        data_sources: Vec::new(),
    };
    for s in &sources {
        let mut e = exported(s);
        if let (Some(key), Some(secret)) = (&export_key, stored_secret(&s.auth)) {
            let field = secret_field(s.auth.kind());
            let sealed = dci_store::seal_with(key, &s.code, field, secret);
            e.sealed_secret = Some(ExportedSecret {
                field: field.to_owned(),
                key_id: sealed.key_id,
                nonce: STANDARD.encode(sealed.nonce),
                ciphertext: STANDARD.encode(sealed.ciphertext),
            });
        }
        file.data_sources.push(e);
    }
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
    let file: ExportFile = serde_json::from_str(&text).map_err(|e| {
        CmdError::usage(format!(
            "{} is not a dci export file: {e}",
            args.file.display()
        ))
    })?;
    if file.version != 1 {
        return Err(CmdError::usage(format!(
            "export version {} is not supported: this dci reads version 1",
            file.version
        )));
    }
    let export_key = match &args.secrets_key_file {
        Some(path) => Some(
            dci_store::master_key::read_file(path).map_err(|e| CmdError::usage(e.to_string()))?,
        ),
        None => None,
    };
    if file.data_sources.iter().any(|s| s.sealed_secret.is_some()) && export_key.is_none() {
        return Err(CmdError::usage(
            "the export holds sealed secrets: pass the export key with --secrets-key-file",
        ));
    }

    // Validate everything first: an import either applies completely or reports every problem.
    let mut inputs = Vec::new();
    let mut problems = Vec::new();
    for e in file.data_sources {
        let code = e.code.clone();
        let mut input = DataSourceInput {
            code: e.code,
            name: e.name,
            registry_type: e.registry_type,
            base_url: e.base_url,
            auth: Some(e.auth),
            basic_username: e.basic_username,
            token_url: e.token_url,
            client_id: e.client_id,
            scope: e.scope,
            credential_location: e.credential_location,
            sender_id: e.sender_id,
            receiver_id: e.receiver_id,
            callback_uri: e.callback_uri,
            sync_search_path: Some(e.endpoints.sync_search),
            search_path: Some(e.endpoints.search),
            subscribe_path: Some(e.endpoints.subscribe),
            unsubscribe_path: Some(e.endpoints.unsubscribe),
            txn_status_path: Some(e.endpoints.txn_status),
            sync_txn_status_path: Some(e.endpoints.sync_txn_status),
            tls_verify: Some(e.tls.verify),
            ca_file: e.tls.ca_file.map(|p| p.display().to_string()),
            client_cert_file: e.tls.client_cert_file.map(|p| p.display().to_string()),
            client_key_file: e.tls.client_key_file.map(|p| p.display().to_string()),
            timeout_secs: Some(e.timeout_secs.to_string()),
            signing_key_id: e.signing_key_id,
            reply_signature_policy: Some(e.reply_signature_policy),
            registry_public_keys: e.registry_public_keys,
            registry_jwks_url: e.registry_jwks_url,
            profile: e.profile,
            active: Some(e.active),
            notes: Some(e.notes),
            ..DataSourceInput::default()
        };
        if let (Some(sealed), Some(key)) = (e.sealed_secret, &export_key) {
            let decode = |s: &str| STANDARD.decode(s).unwrap_or_default();
            let secret = dci_store::open_with(
                key,
                &code,
                &sealed.field,
                &dci_store::SealedSecret {
                    key_id: sealed.key_id,
                    nonce: decode(&sealed.nonce),
                    ciphertext: decode(&sealed.ciphertext),
                },
            )
            .map_err(|e| {
                CmdError::usage(format!(
                    "secret of {code} does not open with this export key: {e}"
                ))
            })?;
            match sealed.field.as_str() {
                "bearer_token" => input.bearer_token = Some(secret),
                "basic_password" => input.basic_password = Some(secret),
                _ => input.client_secret = Some(secret),
            }
        }
        inputs.push((code, input));
    }
    let store = open_store().await?.store;
    let mut ready = Vec::new();
    for (code, input) in inputs {
        let existing = if args.replace {
            store.get_data_source(&code).await?
        } else {
            None
        };
        let result = match &existing {
            Some(e) => input.validate_update(e),
            None => input.validate(),
        };
        match result {
            Ok(s) => ready.push((s, existing.is_some())),
            Err(errs) => {
                for e in errs.errors() {
                    problems.push(format!("{code}: {e}"));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(CmdError {
            message: format!("nothing imported:\n  {}", problems.join("\n  ")),
            ..CmdError::usage("")
        });
    }
    let mut created = Vec::new();
    let mut updated = Vec::new();
    for (source, exists) in ready {
        if exists {
            store.update_data_source(&source).await?;
            updated.push(source.code);
        } else {
            store.create_data_source(&source).await?;
            created.push(source.code);
        }
    }
    out(
        json,
        json!({ "created": created, "updated": updated }),
        &format!(
            "imported {} data source(s), updated {}",
            created.len(),
            updated.len()
        ),
    );
    Ok(())
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

fn apply_fields(input: &mut DataSourceInput, f: &SourceFields) -> Result<(), CmdError> {
    let set = |target: &mut Option<String>, value: &Option<String>| {
        if let Some(v) = value {
            *target = Some(v.clone());
        }
    };
    if let Some(v) = &f.name {
        input.name = v.clone();
    }
    if let Some(v) = &f.registry_type {
        input.registry_type = v.clone();
    }
    if let Some(v) = &f.base_url {
        input.base_url = v.clone();
    }
    set(&mut input.auth, &f.auth);
    set(&mut input.token_url, &f.token_url);
    set(&mut input.client_id, &f.client_id);
    set(&mut input.scope, &f.scope);
    set(&mut input.credential_location, &f.credential_location);
    set(&mut input.basic_username, &f.basic_user);
    set(&mut input.sender_id, &f.sender_id);
    set(&mut input.receiver_id, &f.receiver_id);
    set(&mut input.callback_uri, &f.callback_uri);
    set(&mut input.sync_search_path, &f.sync_search_path);
    set(&mut input.search_path, &f.search_path);
    set(&mut input.subscribe_path, &f.subscribe_path);
    set(&mut input.unsubscribe_path, &f.unsubscribe_path);
    set(&mut input.txn_status_path, &f.txn_status_path);
    set(&mut input.sync_txn_status_path, &f.sync_txn_status_path);
    if let Some(v) = f.tls_verify {
        input.tls_verify = Some(v);
    }
    set(&mut input.ca_file, &f.ca_file);
    set(&mut input.client_cert_file, &f.client_cert);
    set(&mut input.client_key_file, &f.client_key);
    set(&mut input.timeout_secs, &f.timeout);
    set(&mut input.signing_key_id, &f.signing_key);
    set(&mut input.reply_signature_policy, &f.reply_signatures);
    set(&mut input.registry_jwks_url, &f.registry_jwks_url);
    set(&mut input.profile, &f.profile);
    set(&mut input.notes, &f.notes);
    if !f.registry_public_key.is_empty() {
        let mut keys = Vec::new();
        for path in &f.registry_public_key {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                CmdError::usage(format!("--registry-public-key {}: {e}", path.display()))
            })?;
            keys.push(pem);
        }
        input.registry_public_keys = keys;
    }
    Ok(())
}

fn auth_kind(auth: Option<&str>) -> Option<AuthKind> {
    match auth.map(|a| a.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("none") => Some(AuthKind::None),
        Some("bearer") => Some(AuthKind::Bearer),
        Some("basic") => Some(AuthKind::Basic),
        Some("oauth2") => Some(AuthKind::OAuth2),
        Some(_) => None,
    }
}

fn put_secret(input: &mut DataSourceInput, kind: AuthKind, secret: Option<SecretString>) {
    match kind {
        AuthKind::None => {}
        AuthKind::Bearer => input.bearer_token = secret.or(input.bearer_token.take()),
        AuthKind::Basic => input.basic_password = secret.or(input.basic_password.take()),
        AuthKind::OAuth2 => input.client_secret = secret.or(input.client_secret.take()),
    }
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

fn parse_state(s: &str) -> Option<SourceState> {
    Some(match s.to_ascii_lowercase().as_str() {
        "draft" => SourceState::Draft,
        "testing" => SourceState::Testing,
        "active" => SourceState::Active,
        "error" => SourceState::Error,
        _ => return None,
    })
}

fn out(json: bool, value: Value, text: &str) {
    if json {
        say!("{value}");
    } else {
        say!("{text}");
    }
}

fn print_source(s: &DataSource, json: bool) {
    let v = s.to_redacted_json();
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
    use secrecy::ExposeSecret;

    #[test]
    fn secret_is_exposed_only_to_the_input() {
        let mut input = DataSourceInput::default();
        put_secret(&mut input, AuthKind::OAuth2, Some(SecretString::from("x")));
        assert_eq!(input.client_secret.as_ref().unwrap().expose_secret(), "x");
        assert!(input.bearer_token.is_none());
    }
}
