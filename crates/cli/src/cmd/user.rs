//! `dci user add|list|remove|passwd|token create|token list|token revoke`: named users of
//! `dci serve` (console and gateway API) and their personal API tokens. Passwords are read
//! from a prompt on a terminal, or from stdin (`--password-stdin`) or a file
//! (`--password-file`), never from the command line, and stored only as argon2 hashes. A new
//! token is printed once; only its digest is stored. Each change is written to the change
//! audit with the actor `cli`.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use dci_client::users::{Role, UserError, Users};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::cli::exit;
use crate::context::{CmdError, block_on, open_store, say};

use crate::context::CLI_ACTOR as ACTOR;

/// Examples shown under `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci user add alice --role operator            (prompts for the password)
  dci user add ci-bot --role viewer --password-file /run/secrets/ci-bot
  printf '%s' \"$PW\" | dci user passwd alice --password-stdin
  dci user list
  dci user token create alice --name laptop --expires-in-days 30
  dci user token list alice
  dci user token revoke 0193…
  dci user remove alice --yes";

/// Where a password comes from.
#[derive(Debug, Args)]
pub(crate) struct PasswordSource {
    /// Read the password from stdin (the whole input, without its final newline).
    #[arg(long, conflicts_with = "password_file", help_heading = "Password")]
    password_stdin: bool,
    /// Read the password from this file (its first line).
    #[arg(long, value_name = "PATH", help_heading = "Password")]
    password_file: Option<PathBuf>,
}

impl PasswordSource {
    /// The password: from stdin, a file, or (on a terminal) a prompt asked twice.
    fn read(&self) -> Result<SecretString, CmdError> {
        if self.password_stdin {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CmdError::failed(format!("reading the password from stdin: {e}")))?;
            let pw = text.trim_end_matches(['\n', '\r']).to_owned();
            text.clear();
            return Ok(SecretString::from(pw));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CmdError::usage(format!(
                    "--password-file {}: {e}: give a readable file holding the password",
                    path.display()
                ))
            })?;
            let pw = text.lines().next().unwrap_or("").to_owned();
            return Ok(SecretString::from(pw));
        }
        if !std::io::stdin().is_terminal() {
            return Err(CmdError::usage(
                "no password: stdin is not a terminal, so pass --password-stdin or --password-file",
            ));
        }
        let pw = rpassword::prompt_password("Password (12+ characters): ")
            .map_err(|e| CmdError::failed(format!("reading the password: {e}")))?;
        let again = rpassword::prompt_password("Password again: ")
            .map_err(|e| CmdError::failed(format!("reading the password: {e}")))?;
        if pw != again {
            return Err(CmdError::usage(
                "the two passwords differ: run the command again",
            ));
        }
        Ok(SecretString::from(pw))
    }
}

/// `dci user …`.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user with a role: viewer (views), operator (also searches and tests
    /// connections) or admin (also changes settings, keys and users).
    Add {
        /// The username: lowercase letters, digits, '.', '_' or '-'.
        username: String,
        /// viewer, operator or admin.
        #[arg(long, help_heading = "User")]
        role: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// List users and their roles.
    List,
    /// Remove a user with their tokens and console sessions. Asks first on a terminal;
    /// elsewhere needs --yes.
    Remove {
        /// The username.
        username: String,
        /// Remove without asking (needed when stdin is not a terminal).
        #[arg(long, short = 'y', help_heading = "Confirmation")]
        yes: bool,
    },
    /// Set a new password (ends the user's console sessions).
    Passwd {
        /// The username.
        username: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Personal API tokens: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `dci user token …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a personal API token for a user (it acts with the user's role); printed once.
    Create {
        /// The username.
        username: String,
        /// What the token is for (e.g. ci-pipeline).
        #[arg(long, help_heading = "Token")]
        name: String,
        /// Days until it stops working (1-366; default 90).
        #[arg(long, value_name = "DAYS", help_heading = "Token")]
        expires_in_days: Option<u32>,
    },
    /// List a user's tokens (never the tokens themselves).
    List {
        /// The username.
        username: String,
    },
    /// Revoke a token by id: it never works again.
    Revoke {
        /// The token's id (from `dci user token list`).
        id: String,
    },
}

/// Runs `dci user`.
pub(crate) fn run(cmd: UserCommand, json: bool) -> u8 {
    match block_on(execute(cmd, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

fn user_error(e: UserError) -> CmdError {
    match e {
        UserError::Invalid { .. } => CmdError::usage(e.to_string()),
        UserError::NotFound(m) => CmdError::not_found(m),
        UserError::Taken(_) => CmdError {
            code: exit::USAGE,
            kind: "conflict",
            message: e.to_string(),
            fields: None,
        },
        UserError::Store(s) => s.into(),
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

async fn execute(cmd: UserCommand, json: bool) -> Result<(), CmdError> {
    // Read a password before opening the store: a prompt should not hold a connection.
    let password = match &cmd {
        UserCommand::Add { password, .. } | UserCommand::Passwd { password, .. } => {
            Some(password.read()?)
        }
        _ => None,
    };
    let users = Users::new(open_store().await?.ops);
    match cmd {
        UserCommand::Add { username, role, .. } => {
            let role: Role = role.parse().map_err(|e: dci_client::users::UnknownRole| {
                CmdError::usage(format!("--role: {e}"))
            })?;
            let pw = password.unwrap_or_else(|| SecretString::from(String::new()));
            let u = users
                .add(ACTOR, &username, role, &pw)
                .await
                .map_err(user_error)?;
            if json {
                say!("{}", serde_json::to_value(&u).unwrap_or_default());
            } else {
                say!("added {} ({})", u.username, u.role);
            }
        }
        UserCommand::List => {
            let list = users.list().await.map_err(user_error)?;
            if json {
                say!("{}", serde_json::to_value(&list).unwrap_or_default());
            } else if list.is_empty() {
                say!("no users: `dci user add USERNAME --role admin`");
            } else {
                for u in &list {
                    say!(
                        "{}\t{}\tadded {}",
                        u.username,
                        u.role,
                        rfc3339(u.created_at)
                    );
                }
            }
        }
        UserCommand::Remove { username, yes } => {
            users.get(&username).await.map_err(user_error)?;
            crate::context::confirm(&format!("remove user {username}"), yes)?;
            users.remove(ACTOR, &username).await.map_err(user_error)?;
            if json {
                say!("{}", json!({ "removed": username }));
            } else {
                say!("removed {username} (their tokens and sessions too)");
            }
        }
        UserCommand::Passwd { username, .. } => {
            let pw = password.unwrap_or_else(|| SecretString::from(String::new()));
            users
                .set_password(ACTOR, &username, &pw)
                .await
                .map_err(user_error)?;
            if json {
                say!("{}", json!({ "password_changed": username }));
            } else {
                say!("password of {username} changed; their console sessions ended");
            }
        }
        UserCommand::Token(TokenCommand::Create {
            username,
            name,
            expires_in_days,
        }) => {
            let (t, token) = users
                .create_token(ACTOR, &username, &name, expires_in_days)
                .await
                .map_err(user_error)?;
            if json {
                let mut v = serde_json::to_value(&t).unwrap_or_default();
                v["token"] = token.expose_secret().into();
                say!("{v}");
            } else {
                say!("{}", token.expose_secret());
                eprintln!(
                    "token {} of {username} (expires {}): shown once, keep it now. Send it as `Authorization: Bearer <token>`.",
                    t.id,
                    rfc3339(t.expires_at)
                );
            }
        }
        UserCommand::Token(TokenCommand::List { username }) => {
            let list = users.tokens(&username).await.map_err(user_error)?;
            if json {
                say!("{}", serde_json::to_value(&list).unwrap_or_default());
            } else if list.is_empty() {
                say!("no tokens: `dci user token create {username} --name NAME`");
            } else {
                let now = time::OffsetDateTime::now_utc();
                for t in &list {
                    let state = match t.revoked_at {
                        Some(at) => format!("revoked {}", rfc3339(at)),
                        None if t.expires_at <= now => format!("expired {}", rfc3339(t.expires_at)),
                        None => format!("expires {}", rfc3339(t.expires_at)),
                    };
                    say!("{}\t{}\t{state}", t.id, t.name);
                }
            }
        }
        UserCommand::Token(TokenCommand::Revoke { id }) => {
            let id: uuid::Uuid = id.trim().parse().map_err(|_| {
                CmdError::usage(format!(
                    "{id:?} is not a token id: `dci user token list USERNAME` shows them"
                ))
            })?;
            let t = users.revoke_token(ACTOR, id).await.map_err(user_error)?;
            if json {
                say!("{}", serde_json::to_value(&t).unwrap_or_default());
            } else {
                say!("revoked token {} ({})", t.id, t.name);
            }
        }
    }
    Ok(())
}
