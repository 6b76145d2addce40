//! `dci master-key rotate`: re-seal every stored secret under a new master key.

use std::io::{self, Read};

use clap::Subcommand;
use dci_store::{KeyOrigin, master_key};
use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::exit;
use crate::context::{CmdError, block_on, open_store, say};

#[derive(Debug, Subcommand)]
pub(crate) enum MasterKeyCommand {
    /// Re-seal every secret under a new master key, in one transaction. With a key file, a new
    /// key is generated and the file replaced; with DCI_MASTER_KEY, pass the new key on stdin
    /// (--new-key-stdin) and then update DCI_MASTER_KEY.
    Rotate {
        /// Read the new key (base64 of 32 bytes) from stdin instead of generating one.
        #[arg(long)]
        new_key_stdin: bool,
    },
}

pub(crate) fn run(cmd: MasterKeyCommand, json: bool) -> u8 {
    match block_on(run_async(cmd, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

async fn run_async(cmd: MasterKeyCommand, json: bool) -> Result<(), CmdError> {
    let MasterKeyCommand::Rotate { new_key_stdin } = cmd;
    let new_key = if new_key_stdin {
        let mut text = Zeroizing::new(String::new());
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CmdError::failed(format!("reading the new key from stdin: {e}")))?;
        Some(
            master_key::parse(&text, "the new key on stdin")
                .map_err(|e| CmdError::usage(e.to_string()))?,
        )
    } else {
        None
    };
    let supplied = ["DCI_MASTER_KEY", "DCI_MASTER_KEY_FILE"]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if let (None, Some(var)) = (&new_key, supplied) {
        return Err(CmdError::usage(format!(
            "the master key comes from {var}, so dci cannot store a new one: generate a key \
             (`openssl rand -base64 32`), pass it with --new-key-stdin, then put it in {var}",
        )));
    }
    let new_key = new_key.unwrap_or_else(master_key::generate);
    let opened = open_store().await?;

    // With a key file, the new key is on disk (beside the old one) before the database changes,
    // so no crash can leave secrets sealed under a key that exists nowhere.
    let staged = match &opened.key_origin {
        KeyOrigin::File { path, .. } => {
            let staged = path.with_extension("key.new");
            let _ = std::fs::remove_file(&staged);
            master_key::write_new_file(&staged, &new_key)
                .map_err(|e| CmdError::failed(e.to_string()))?;
            Some((staged, path.clone()))
        }
        KeyOrigin::Env => None,
    };
    let report = match opened.store.rotate_master_key(new_key).await {
        Ok(r) => r,
        Err(e) => {
            if let Some((staged, _)) = &staged {
                let _ = std::fs::remove_file(staged);
            }
            return Err(e.into());
        }
    };
    let key_file = match &staged {
        Some((staged, path)) => {
            std::fs::rename(staged, path).map_err(|e| {
                CmdError::failed(format!(
                    "secrets are re-sealed under the new key, but replacing {} failed ({e}): move {} over it now",
                    path.display(),
                    staged.display()
                ))
            })?;
            Some(path.display().to_string())
        }
        None => None,
    };
    if json {
        say!(
            "{}",
            json!({
                "old_key_id": report.old_key_id,
                "new_key_id": report.new_key_id,
                "resealed": report.resealed,
                "key_file": key_file,
            })
        );
    } else {
        say!(
            "re-sealed {} secret(s) under master key {} (was {})",
            report.resealed,
            report.new_key_id,
            report.old_key_id
        );
        match key_file {
            Some(path) => say!("key file {path} now holds the new key"),
            None => say!(
                "put the new key in DCI_MASTER_KEY (or the DCI_MASTER_KEY_FILE file) before running dci again"
            ),
        }
    }
    Ok(())
}
