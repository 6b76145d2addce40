//! `dci token CODE [--force] [--reveal]`: the OAuth2 token of a data source, as metadata.
//!
//! The token itself is a bearer credential: it is printed only with `--reveal`, and never in
//! any other output.

use std::io::Write;

use clap::Args;
use dci_client::Engine;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::exit;
use crate::cmd::test_connection::client_error;
use crate::context::{CmdError, block_on};

/// Arguments of `dci token`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  dci token crvs_main
  dci token crvs_main --force
  dci --json token crvs_main --reveal | jq -r .access_token")]
pub(crate) struct TokenArgs {
    /// The data source's code.
    code: String,
    /// Fetch a new token even if the cached one is still fresh.
    #[arg(long, help_heading = "Token")]
    force: bool,
    /// Also print the access token itself. It is a credential: anyone holding it can call the
    /// registry as you until it expires.
    #[arg(long, help_heading = "Token")]
    reveal: bool,
}

/// Gets (or fetches) the token and prints its metadata.
pub(crate) fn run(args: TokenArgs, json: bool) -> u8 {
    let mut out = std::io::stdout().lock();
    let result = block_on(async {
        let engine = crate::context::engine().await?;
        execute(&engine, &args, json, &mut out).await
    });
    match result {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

pub(crate) async fn execute(
    engine: &Engine,
    args: &TokenArgs,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CmdError> {
    let client = engine.client(&args.code).await?;
    let status = if args.force {
        client.force_refresh().await
    } else {
        client.token().await
    };
    let status = status.map_err(client_error)?;
    let i = &status.info;
    let ts = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let left = (i.expires_at - OffsetDateTime::now_utc()).whole_seconds();
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
    written.map_err(|e| CmdError::failed(format!("cannot write the output: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::test_connection::testing::*;

    /// A new engine over the same stores: what the next `dci` process would have.
    fn fresh(e: &Engine) -> Engine {
        Engine::builder(e.store().clone(), e.ops_store().clone())
            .queued_audit(false)
            .build()
    }

    fn args(force: bool, reveal: bool) -> TokenArgs {
        TokenArgs {
            code: "crvs_t".into(),
            force,
            reveal,
        }
    }

    #[tokio::test]
    async fn shows_metadata_and_the_token_only_when_revealed() {
        let sb = sandbox().await;
        let (_dir, engine) = store().await;
        let store = engine.store().clone();
        add_source(&*store, &sb, "crvs_t", GOOD).await;

        let mut out = Vec::new();
        execute(&fresh(&engine), &args(false, false), false, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("origin:      fetched") && text.contains("scope:       crvs.read"));
        assert!(text.contains("(hidden; --reveal prints it)"), "{text}");

        // A second process finds the token in the store: no new token request.
        let mut out = Vec::new();
        execute(&fresh(&engine), &args(false, false), true, &mut out)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["origin"], "stored");
        assert!(v.get("access_token").is_none());
        assert_eq!(sb.token_requests(), 1);

        let mut out = Vec::new();
        execute(&fresh(&engine), &args(true, true), true, &mut out)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["origin"], "fetched");
        let token = v["access_token"].as_str().unwrap().to_owned();
        assert!(token.len() > 10);
        assert_eq!(sb.token_requests(), 2);

        // Without --reveal the token appears nowhere: not in text, JSON, or the audit log.
        let mut out = Vec::new();
        execute(&fresh(&engine), &args(false, false), false, &mut out)
            .await
            .unwrap();
        execute(&fresh(&engine), &args(false, false), true, &mut out)
            .await
            .unwrap();
        let audit = store
            .list_audit(&dci_client::AuditFilter::default())
            .await
            .unwrap();
        let all = format!("{}{audit:?}", String::from_utf8_lossy(&out));
        assert!(!all.contains(&token) && !all.contains(GOOD), "{all}");
    }

    #[tokio::test]
    async fn a_refused_client_is_an_auth_error_naming_the_fix() {
        let sb = sandbox().await;
        let (_dir, engine) = store().await;
        let store = engine.store().clone();
        add_source(&*store, &sb, "crvs_t", "wrong").await;
        let e = execute(&engine, &args(false, false), false, &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, "auth");
        assert!(e.message.contains("client id and secret"), "{}", e.message);
    }
}
