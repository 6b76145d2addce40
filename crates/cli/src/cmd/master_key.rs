//! `dci master-key rotate`: re-seal every stored secret under a new master key.

use std::io::{self, Read};

use clap::Subcommand;
use dci_store::{RotateError, master_key};
use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::exit;
use crate::context::{CmdError, block_on, say};

#[derive(Debug, Subcommand)]
pub(crate) enum MasterKeyCommand {
    /// Re-seal every secret under a new master key, in one transaction, while servers run. With
    /// a key file, a new key is generated and the file then holds it and the previous one
    /// (crash-safe: a kill at any moment leaves a store that opens); with DCI_MASTER_KEY, pass
    /// the new key on stdin (--new-key-stdin) after restarting the servers with
    /// DCI_MASTER_KEY=NEW,OLD (see the README, "Rotating the master key").
    Rotate {
        /// Read the new key (base64 of 32 bytes) from stdin instead of generating one.
        #[arg(long)]
        new_key_stdin: bool,
        /// Rotate without asking (needed when stdin is not a terminal, e.g. with
        /// --new-key-stdin).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

pub(crate) fn run(cmd: MasterKeyCommand, json: bool) -> u8 {
    match block_on(run_async(cmd, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

async fn run_async(cmd: MasterKeyCommand, json: bool) -> Result<(), CmdError> {
    let MasterKeyCommand::Rotate { new_key_stdin, yes } = cmd;
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
    // A supplied key (environment) with no new one is refused below, before anything is asked.
    let supplied = crate::config::settings().master_key_supplied();
    if new_key.is_some() || !supplied {
        crate::context::confirm("re-seal every stored secret under a new master key", yes)?;
    }
    // The library stages the new key file, re-seals in one transaction and switches the file so
    // that a kill at any moment leaves a store that opens (see `dci_store::rotate`).
    let rotation = dci_store::rotate_master_key(&crate::config::settings().open_options(), new_key)
        .await
        .map_err(|e| match e {
            RotateError::NewKeyNeeded(var) => CmdError::usage(format!(
                "the master key comes from {var}, so dci cannot store a new one: generate a key \
                 (`openssl rand -base64 32`), pass it with --new-key-stdin, then put it in {var}",
            )),
            RotateError::Open(e) => CmdError::from(e),
            RotateError::Store(e) => CmdError::from(e),
            other => CmdError::failed(other.to_string()),
        })?;
    let report = &rotation.report;
    let key_file = rotation.key_file.as_ref().map(|p| p.display().to_string());
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
