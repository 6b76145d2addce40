//! `dci man [--out DIR]`: man pages generated from the CLI definition, one for `dci` and one
//! per subcommand (`dci-source-add.1`, …), written into a directory.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use serde_json::json;

use crate::cli::{Cli, exit};
use crate::context::{CmdError, say};

/// Arguments of `dci man`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci man --out /usr/local/share/man/man1
  dci man --out ./man && man ./man/dci-search.1")]
pub(crate) struct ManArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
}

/// Writes the pages and lists them.
pub(crate) fn run(args: &ManArgs, json: bool) -> u8 {
    match write_pages(&args.out) {
        Ok(files) => {
            if json {
                let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                say!("{}", json!({ "written": files }));
            } else {
                for f in &files {
                    say!("{}", f.display());
                }
            }
            exit::OK
        }
        Err(e) => e.report(json),
    }
}

/// One page per command, subcommands included (hidden ones and `help` left out).
fn write_pages(dir: &Path) -> Result<Vec<PathBuf>, CmdError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        CmdError::failed(format!("--out {}: cannot create it ({e})", dir.display()))
    })?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut files = Vec::new();
    page(cmd, dir, &mut files)?;
    Ok(files)
}

fn page(cmd: clap::Command, dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), CmdError> {
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let source = format!("dci {}", env!("CARGO_PKG_VERSION"));
    let path = clap_mangen::Man::new(cmd)
        .source(source)
        .manual("DCI client")
        .generate_to(dir)
        .map_err(|e| CmdError::failed(format!("writing a man page into {}: {e}", dir.display())))?;
    files.push(path);
    for s in subs {
        page(s, dir, files)?;
    }
    Ok(())
}
