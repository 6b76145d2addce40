//! `dci envelope …`: interop tools for sysadmins debugging signatures.

use clap::Subcommand;

use crate::cli::exit;

#[derive(Debug, Subcommand)]
pub(crate) enum EnvelopeCommand {
    /// Print the exact canonical bytes that are digested and signed.
    Canonicalize,
}

pub(crate) fn run(cmd: EnvelopeCommand, _json: bool) -> u8 {
    match cmd {
        EnvelopeCommand::Canonicalize => {
            eprintln!("not implemented yet");
            exit::FAILED
        }
    }
}
