//! Argument parsing and dispatch. Each subcommand lives in its own module under `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes shared by every command.
pub(crate) mod exit {
    /// Success.
    pub(crate) const OK: u8 = 0;
    /// The operation failed (or, for `verify`, the signature is invalid).
    pub(crate) const FAILED: u8 = 1;
    /// Bad usage or invalid input.
    pub(crate) const USAGE: u8 = 2;
}

/// Client for DCI (Digital Convergence Initiative) registry APIs.
#[derive(Debug, Parser)]
#[command(name = "dci", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Print machine-readable JSON instead of human-readable text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

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
    /// Search a registry: --id TYPE:VALUE, --expression or --predicate JSON; sync (one page or
    /// --all-pages) or --async [--wait SECS]; --dry-run prints the signed envelope.
    Search(crate::cmd::search::SearchArgs),
    /// Subscribe to a registry event type (async; --wait SECS for the subscription codes).
    Subscribe(crate::cmd::subscribe::SubscribeArgs),
    /// Cancel subscriptions by code (async; --wait SECS for the answer).
    Unsubscribe(crate::cmd::subscribe::UnsubscribeArgs),
    /// Ask the registry about a transaction (sync, or --async), or show it from the store
    /// (--local).
    TxnStatus(crate::cmd::txn_status::TxnStatusArgs),
    /// Manage our signing keys: generate, list, activate, revoke, export-jwks.
    #[command(subcommand)]
    Key(crate::cmd::key::KeyCommand),
    /// Run the callback receiver, the JSON gateway API and the admin console until Ctrl-C/SIGTERM.
    Serve(crate::cmd::serve::ServeArgs),
    /// The main job: start the sandbox registry and the console with a ready, tested sandbox
    /// data source (temporary DCI_HOME), and print the console URL and how to sign in.
    Demo(crate::cmd::demo::DemoArgs),
    /// CRVS: person, birth, death, vital events, subscriptions (exit 0 found, 3 not found).
    #[command(subcommand)]
    Crvs(crate::cmd::crvs::CrvsCommand),
    /// Disability registry: status, details, support (exit 0 found, 3 not found).
    #[command(subcommand)]
    Dr(crate::cmd::dr::DrCommand),
    /// Integrated beneficiary registry: enrolments, dedupe (fails closed), push enrolments.
    #[command(subcommand)]
    Ibr(crate::cmd::ibr::IbrCommand),
    /// Social registry: groups (households) and members (exit 0 found, 3 not found).
    #[command(subcommand)]
    Social(crate::cmd::social::SocialCommand),
    /// Farmer registry: farmers (exit 0 found, 3 not found).
    #[command(subcommand)]
    Fr(crate::cmd::fr::FrCommand),
}

pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = match cli.command {
        Command::Envelope(cmd) => crate::cmd::envelope::run(cmd, cli.json),
        Command::Source(cmd) => crate::cmd::source::run(cmd, cli.json),
        Command::MasterKey(cmd) => crate::cmd::master_key::run(cmd, cli.json),
        Command::Sandbox(args) => crate::cmd::sandbox::run(args, cli.json),
        Command::Token(args) => crate::cmd::token::run(args, cli.json),
        Command::Log(args) => crate::cmd::log::run(args, cli.json),
        Command::Search(args) => crate::cmd::search::run(args, cli.json),
        Command::Subscribe(args) => crate::cmd::subscribe::run(args, cli.json),
        Command::Unsubscribe(args) => crate::cmd::subscribe::run_unsubscribe(args, cli.json),
        Command::TxnStatus(args) => crate::cmd::txn_status::run(args, cli.json),
        Command::Key(cmd) => crate::cmd::key::run(cmd, cli.json),
        Command::Serve(args) => crate::cmd::serve::run(args, cli.json),
        Command::Demo(args) => crate::cmd::demo::run(args, cli.json),
        Command::Crvs(cmd) => crate::cmd::crvs::run(cmd, cli.json),
        Command::Dr(cmd) => crate::cmd::dr::run(cmd, cli.json),
        Command::Ibr(cmd) => crate::cmd::ibr::run(cmd, cli.json),
        Command::Social(cmd) => crate::cmd::social::run(cmd, cli.json),
        Command::Fr(cmd) => crate::cmd::fr::run(cmd, cli.json),
    };
    ExitCode::from(code)
}
