//! `dci key generate|list|activate|revoke|export-jwks`: our signing keys. Private keys are
//! sealed in the store under the master key and never printed; a data source signs with the
//! key its `signing_key_id` names while that key is active and unexpired.

use clap::Subcommand;
use dci_client::keys::{GenerateOptions, parse_algorithm};
use dci_client::ops::SigningKeyRecord;
use time::OffsetDateTime;

use crate::cli::exit;
use crate::cmd::search::ops_error;
use crate::context::record_change;
use crate::context::{CmdError, block_on, say};
use dci_client::users::ChangeTarget;

/// Examples shown under `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci key generate --id spmis-2026-11
  dci key generate --id spmis-2027-01 --alg rs256 --inactive --expires-in-days 365
  dci key activate spmis-2027-01
  dci key revoke spmis-2026-11 --yes
  dci key export-jwks > jwks.json";

/// `dci key …`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a key pair (active unless --inactive); the private key is sealed in the store.
    Generate {
        /// ed25519 or rs256.
        #[arg(long, default_value = "ed25519", help_heading = "Key")]
        alg: String,
        /// The key id (kid), e.g. spmis-2026-11 [required].
        #[arg(long, help_heading = "Key")]
        id: String,
        /// Stage the key without activating it (for a rotation).
        #[arg(long, help_heading = "Key")]
        inactive: bool,
        /// The key stops signing after this many days.
        #[arg(long, value_name = "DAYS", help_heading = "Key")]
        expires_in_days: Option<u32>,
    },
    /// List keys (public data only).
    List,
    /// Activate a key (several may be active during a rotation).
    Activate {
        /// The key id.
        id: String,
    },
    /// Revoke a key: it never signs again and leaves the JWKS. Asks first on a terminal;
    /// elsewhere needs --yes.
    Revoke {
        /// The key id.
        id: String,
        /// Revoke without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y', help_heading = "Confirmation")]
        yes: bool,
    },
    /// Print the JWKS of the keys that can sign now (what `/.well-known/jwks.json` publishes).
    ExportJwks,
}

/// Runs `dci key`.
pub(crate) fn run(cmd: KeyCommand, json: bool) -> u8 {
    match block_on(execute(cmd, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

fn show(k: &SigningKeyRecord, json: bool) {
    if json {
        say!("{}", serde_json::to_value(k).unwrap_or_default());
    } else {
        let expires = k
            .expires_at
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| "never".into());
        say!(
            "{}\t{}\t{}\texpires {}",
            k.key_id,
            k.algorithm,
            k.status,
            expires
        );
    }
}

async fn execute(cmd: KeyCommand, json: bool) -> Result<(), CmdError> {
    let engine = crate::context::engine().await?;
    let km = engine.keys();
    let ops = engine.ops_store().clone();
    match cmd {
        KeyCommand::Generate {
            alg,
            id,
            inactive,
            expires_in_days,
        } => {
            let alg = parse_algorithm(&alg).map_err(ops_error)?;
            let expires_at = expires_in_days
                .map(|d| OffsetDateTime::now_utc() + time::Duration::days(i64::from(d)));
            let k = km
                .generate(
                    &id,
                    alg,
                    GenerateOptions {
                        activate: !inactive,
                        expires_at,
                    },
                )
                .await
                .map_err(ops_error)?;
            let fields = vec!["algorithm".into(), "status".into()];
            record_change(ops, ChangeTarget::SigningKey, &k.key_id, "create", fields).await;
            show(&k, json);
            if !json {
                say!(
                    "sign a data source's envelopes with it: `dci source edit CODE --signing-key {}`",
                    k.key_id
                );
            }
        }
        KeyCommand::List => {
            let keys = km.list().await.map_err(ops_error)?;
            if json {
                say!("{}", serde_json::to_value(&keys).unwrap_or_default());
            } else if keys.is_empty() {
                say!("no signing keys: `dci key generate --id KEY_ID`");
            } else {
                for k in &keys {
                    show(k, false);
                }
            }
        }
        KeyCommand::Activate { id } => {
            let k = km.activate(&id).await.map_err(ops_error)?;
            let fields = vec!["status".into()];
            record_change(ops, ChangeTarget::SigningKey, &id, "activate", fields).await;
            show(&k, json);
        }
        KeyCommand::Revoke { id, yes } => {
            // An unknown key is "not found" before anyone is asked anything.
            km.get(&id).await.map_err(ops_error)?;
            crate::context::confirm(&format!("revoke key {id}"), yes)?;
            let k = km.revoke(&id).await.map_err(ops_error)?;
            let fields = vec!["status".into()];
            record_change(ops, ChangeTarget::SigningKey, &id, "revoke", fields).await;
            show(&k, json);
        }
        KeyCommand::ExportJwks => {
            let jwks = km
                .jwks(OffsetDateTime::now_utc())
                .await
                .map_err(ops_error)?;
            say!(
                "{}",
                serde_json::to_string_pretty(&jwks).unwrap_or_default()
            );
        }
    }
    Ok(())
}
