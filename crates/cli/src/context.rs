//! What every command that touches stored state shares: opening the store from the environment
//! (`DCI_HOME`, `DCI_DATABASE_URL`, `DCI_MASTER_KEY`) and the one [`Engine`] over it, the async
//! runtime, colour (`NO_COLOR`), and reporting errors as text or JSON
//! with the documented exit codes.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use dci_client::{Engine, EngineError, Operations};
use dci_store::{Connections, OpenError, Opened};
use serde_json::json;

use crate::cli::exit;

/// `println!` that ignores a closed stdout (`dci source list | head -1` is not an error).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use say;

/// Whether to colour what goes to `stream`: only on a terminal, and never when `NO_COLOR` is
/// set to a non-empty value (<https://no-color.org>).
pub(crate) fn colour(stream: &impl IsTerminal) -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stream.is_terminal()
}

/// Asks before a destructive step, `action` saying what (e.g. `revoke key k1`): passes with
/// `--yes`; on a terminal asks "`action`? [y/N]" on stderr and reads the answer; refuses (exit
/// 2, saying to pass `--yes`) when stdin is not a terminal, so scripts never hang or guess.
pub(crate) fn confirm(action: &str, yes: bool) -> Result<(), CmdError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CmdError::usage(format!(
            "not confirmed: {action} needs --yes when stdin is not a terminal"
        )));
    }
    {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{action}? [y/N] ");
        let _ = err.flush();
    }
    let mut answer = String::new();
    stdin
        .read_line(&mut answer)
        .map_err(|e| CmdError::failed(format!("reading the answer: {e}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(CmdError {
            code: exit::FAILED,
            kind: "cancelled",
            message: format!("cancelled: did not {action}"),
            fields: None,
        })
    }
}

/// Who the change audit records for changes made with the CLI.
pub(crate) const CLI_ACTOR: &str = "cli";

/// Writes a change-audit record of a change the CLI made (actor [`CLI_ACTOR`]): `target` `id`,
/// `action`, the fields by name. The change is already made, so a failure is a warning.
pub(crate) async fn record_change(
    ops: std::sync::Arc<dyn dci_client::OpsStore>,
    target: dci_client::users::ChangeTarget,
    id: &str,
    action: &str,
    fields: Vec<String>,
) {
    let change = dci_client::users::ChangeRecord::now(CLI_ACTOR, target, id, action, fields);
    if let Err(e) = dci_client::users::Users::new(ops).record(change).await {
        tracing::warn!(error = %e, "could not write the change audit");
    }
}

/// The process's engine, once a command opened it (see [`engine`]).
/// With the connections its store was opened with.
static ENGINE: Mutex<Option<(Engine, Connections)>> = Mutex::new(None);

/// Runs a command's async body on a small runtime (commands are short-lived); then writes the
/// audit entries the engine still has queued, so none is lost when the process exits.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let out = rt.block_on(f);
    let engine = ENGINE.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((engine, _)) = engine {
        rt.block_on(engine.close());
    }
    out
}

/// The engine over the store every command opens: opened once per process, closed (its audit
/// queue written) when the command's [`block_on`] ends. One database connection: a command
/// does one thing at a time (a bulk run, which does many, uses [`engine_with`]).
pub(crate) async fn engine() -> Result<Engine, CmdError> {
    engine_with(Connections::Single).await
}

/// [`engine`] over a store that may hold `connections`. The first call of a process opens it,
/// so a command that needs the pool asks for it before anything else opens the engine.
pub(crate) async fn engine_with(connections: Connections) -> Result<Engine, CmdError> {
    if let Some((e, opened_with)) = ENGINE.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        debug_assert!(
            *opened_with == Connections::Pool || connections == Connections::Single,
            "the engine was opened with one connection before this command asked for a pool"
        );
        return Ok(e.clone());
    }
    let opened = open_store_with(connections).await?;
    let engine = Engine::open(opened.store, opened.ops);
    *ENGINE.lock().unwrap_or_else(|p| p.into_inner()) = Some((engine.clone(), connections));
    Ok(engine)
}

/// The operations of data source `code` (refused when disabled).
pub(crate) async fn operations(code: &str) -> Result<Operations, CmdError> {
    engine()
        .await?
        .operations(code)
        .await
        .map_err(CmdError::from)
}

/// Opens the store the way every command does, with one database connection. See
/// `dci_store::open` for the rules (key file created with mode 0600 on first use, wrong or
/// missing key refused).
pub(crate) async fn open_store() -> Result<Opened, CmdError> {
    open_store_with(Connections::Single).await
}

async fn open_store_with(connections: Connections) -> Result<Opened, CmdError> {
    let options = crate::config::settings()
        .open_options()
        .connections(connections);
    dci_store::open(&options).await.map_err(CmdError::from)
}

/// A failed command: what to print and which exit code to use.
#[derive(Debug)]
pub(crate) struct CmdError {
    /// `exit::FAILED` or `exit::USAGE`; the kinds `not_found` (exit 3), `invalid_input` and
    /// `conflict` (exit 2) choose their own code (see [`CmdError::exit_code`]).
    pub(crate) code: u8,
    /// Machine-readable kind: `invalid_input`, `not_found`, `conflict`, `master_key`, `failed`…
    pub(crate) kind: &'static str,
    /// The message (free of secrets).
    pub(crate) message: String,
    /// Per-field validation errors, if any.
    pub(crate) fields: Option<dci_client::ValidationErrors>,
}

impl CmdError {
    pub(crate) fn failed(message: impl Into<String>) -> CmdError {
        CmdError {
            code: exit::FAILED,
            kind: "failed",
            message: message.into(),
            fields: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> CmdError {
        CmdError {
            code: exit::USAGE,
            kind: "invalid_input",
            message: message.into(),
            fields: None,
        }
    }

    /// Something named does not exist (a data source, a key, a transaction): exit 3.
    pub(crate) fn not_found(message: impl Into<String>) -> CmdError {
        CmdError {
            code: exit::NOT_FOUND,
            kind: "not_found",
            message: message.into(),
            fields: None,
        }
    }

    /// The exit code, chosen here for every command: not found 3, bad input (and a name
    /// already taken) 2, else the error's own code.
    pub(crate) fn exit_code(&self) -> u8 {
        match self.kind {
            "not_found" => exit::NOT_FOUND,
            "invalid_input" | "conflict" => exit::USAGE,
            _ => self.code,
        }
    }

    pub(crate) fn invalid(errors: dci_client::ValidationErrors) -> CmdError {
        CmdError {
            code: exit::USAGE,
            kind: "invalid_input",
            message: "invalid data source".into(),
            fields: Some(errors),
        }
    }

    /// Prints the error (JSON on stdout with `--json`, text on stderr otherwise) and returns the
    /// exit code.
    pub(crate) fn report(&self, json: bool) -> u8 {
        if json {
            let mut err = json!({ "kind": self.kind, "message": self.message });
            if let Some(f) = &self.fields {
                err["fields"] = serde_json::to_value(f).unwrap_or_default();
            }
            let _ = writeln!(std::io::stdout(), "{}", json!({ "error": err }));
        } else {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {}", self.message);
            if let Some(f) = &self.fields {
                for e in f.errors() {
                    let _ = writeln!(stderr, "  {e}");
                }
            }
        }
        self.exit_code()
    }
}

impl From<OpenError> for CmdError {
    fn from(e: OpenError) -> CmdError {
        let code = match &e {
            OpenError::MasterKey(dci_store::MasterKeyError::Malformed { .. }) => exit::USAGE,
            _ => exit::FAILED,
        };
        let kind = if e.is_key_problem() {
            "master_key"
        } else {
            "failed"
        };
        CmdError {
            code,
            kind,
            message: error_chain(&e),
            fields: None,
        }
    }
}

impl From<EngineError> for CmdError {
    fn from(e: EngineError) -> CmdError {
        match e {
            EngineError::NotFound(code) => no_source(&code),
            EngineError::Disabled(code) => CmdError::failed(format!(
                "data source {code:?} is disabled: `dci source enable {code}`"
            )),
            EngineError::Store(s) => s.into(),
            EngineError::Client(c) => CmdError {
                code: exit::FAILED,
                kind: c.class(),
                message: c.to_string(),
                fields: None,
            },
            EngineError::Ops(o) => crate::cmd::search::ops_error(o),
            other => CmdError::failed(other.to_string()),
        }
    }
}

/// The error for an unknown data source code (exit 3).
pub(crate) fn no_source(code: &str) -> CmdError {
    CmdError::not_found(format!(
        "no data source {code:?}: `dci source list` shows the codes"
    ))
}

impl From<dci_client::StoreError> for CmdError {
    fn from(e: dci_client::StoreError) -> CmdError {
        use dci_client::StoreError as E;
        let kind = match &e {
            E::CodeTaken(_) => "conflict",
            E::NotFound(_) => "not_found",
            E::WrongMasterKey(_) => "master_key",
            _ => "failed",
        };
        let message = match &e {
            // The CLI's own wording: the command that lists the codes.
            E::NotFound(code) => {
                format!("no data source {code:?}: `dci source list` shows the codes")
            }
            _ => error_chain(&e),
        };
        let code = match kind {
            "conflict" => exit::USAGE,
            "not_found" => exit::NOT_FOUND,
            _ => exit::FAILED,
        };
        CmdError {
            code,
            kind,
            message,
            fields: None,
        }
    }
}

/// The error and its causes, `: `-separated (ripgrep's `{:#}`), without duplicates.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}
