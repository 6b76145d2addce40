//! `dci token CODE [--force] [--reveal]`: the OAuth2 token of a data source, as metadata.
//!
//! The token itself is a bearer credential: it is printed only with `--reveal`, and never in
//! any other output.

use std::io::Write;

use clap::Args;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::exit;
use crate::cmd::test_connection::{client_error, client_for};
use crate::context::block_on;

/// Arguments of `dci token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The data source's code.
    code: String,
    /// Fetch a new token even if the cached one is still fresh.
    #[arg(long)]
    force: bool,
    /// Also print the access token itself. It is a credential: anyone holding it can call the
    /// registry as you until it expires.
    #[arg(long)]
    reveal: bool,
}

/// Gets (or fetches) the token and prints its metadata.
pub(crate) fn run(args: TokenArgs, json: bool) -> u8 {
    let result = block_on(async {
        let client = client_for(&args.code).await?;
        let status = if args.force {
            client.force_refresh().await
        } else {
            client.token().await
        };
        status.map_err(client_error)
    });
    let status = match result {
        Ok(s) => s,
        Err(e) => return e.report(json),
    };
    let i = &status.info;
    let ts = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let left = (i.expires_at - OffsetDateTime::now_utc()).whole_seconds();
    let mut out = std::io::stdout().lock();
    let written = if json {
        let mut v = json!({
            "source": args.code,
            "origin": i.origin.as_str(),
            "token_type": i.token_type,
            "scope": i.scope,
            "obtained_at": ts(i.obtained_at),
            "expires_at": ts(i.expires_at),
            "refresh_at": ts(i.refresh_at),
            "expires_in_secs": left,
            "lifetime_from_server": i.lifetime_from_server,
        });
        if args.reveal {
            v["access_token"] = status.access_token.secret().into();
        }
        writeln!(out, "{v}")
    } else {
        let lifetime = if i.lifetime_from_server {
            "from the server's expires_in"
        } else {
            "assumed (the server sent no expires_in)"
        };
        let token = if args.reveal {
            status.access_token.secret().to_owned()
        } else {
            "(hidden; --reveal prints it)".to_owned()
        };
        writeln!(
            out,
            "source:      {}\norigin:      {}\ntoken type:  {}\nscope:       {}\n\
             obtained at: {}\nexpires at:  {} (in {left} s, {lifetime})\nrefresh at:  {}\n\
             token:       {token}",
            args.code,
            i.origin.as_str(),
            i.token_type,
            i.scope.as_deref().unwrap_or("(none)"),
            ts(i.obtained_at),
            ts(i.expires_at),
            ts(i.refresh_at),
        )
    };
    if written.is_err() {
        exit::FAILED
    } else {
        exit::OK
    }
}
