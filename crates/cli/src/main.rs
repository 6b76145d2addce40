//! `dci`: the command-line front end. Behaviour lives in the libraries; this binary parses
//! arguments, calls them, and maps outcomes to documented exit codes.

mod cli;
mod cmd;
mod config;
mod context;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
