//! `dci completions bash|zsh|fish|powershell|elvish`: the shell completion script, generated
//! from the CLI definition, on stdout.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::{Cli, exit};

/// Arguments of `dci completions`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci completions bash > ~/.local/share/bash-completion/completions/dci
  dci completions zsh > \"${fpath[1]}/_dci\"
  dci completions fish > ~/.config/fish/completions/dci.fish
  dci completions powershell >> $PROFILE")]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// Writes the script to stdout.
pub(crate) fn run(args: &CompletionsArgs) -> u8 {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "dci", &mut out);
    exit::OK
}
