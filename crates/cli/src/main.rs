//! `dci`: the command-line front end. Behaviour lives in the libraries; this binary parses
//! arguments, calls them, and maps outcomes to documented exit codes.

mod cli;
mod cmd;
mod config;
mod context;
mod progress;
mod telemetry;

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the engine allocates per request on every worker
/// thread, where glibc's arenas spend a fifth of the CPU (bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
