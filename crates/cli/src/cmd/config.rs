//! `dci config show [--json]`: the effective settings and where each came from (flag,
//! environment variable, configuration file, default). Secrets are shown only as set or not.

use clap::Subcommand;
use serde_json::json;

use crate::cli::exit;
use crate::config::settings;
use crate::context::say;

/// `dci config …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective settings with their origin (flag > env > file > default); secrets
    /// masked.
    Show,
}

pub(crate) fn run(cmd: ConfigCommand, json: bool) -> u8 {
    match cmd {
        ConfigCommand::Show => show(json),
    }
}

fn show(json: bool) -> u8 {
    let rows = settings().rows();
    if json {
        let mut out = serde_json::Map::new();
        for (name, value, kind, origin) in rows {
            out.insert(
                name.to_owned(),
                json!({"value": value, "origin": kind, "from": origin}),
            );
        }
        say!("{}", serde_json::Value::Object(out));
    } else {
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (name, value, _, origin) in rows {
            let value = value.unwrap_or_else(|| "(unset)".into());
            say!("{name:width$}  {value}  [{origin}]");
        }
    }
    exit::OK
}
