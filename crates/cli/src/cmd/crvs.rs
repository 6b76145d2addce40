//! `dci crvs person|verify-birth|check-death|events|subscribe|notifications CODE …`, and what
//! every registry command (`crvs`, `dr`, `ibr`, `social`, `fr`) shares: opening both stores,
//! building the operations of a data source, and the exit codes 0 (found), 3 (the registry
//! answered "not found") and 1 (failure; 2 for bad input).

use std::io::Write as _;

use clap::{Args, Subcommand};
use dci_client::registries::{CrvsClient, IdRef, VitalEventKind};
use dci_client::{Operations, OpsError};
use dci_protocol::codes::IdentifierType;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::exit;
use crate::context::{CmdError, block_on, say};

/// Exit code when the registry answered and had nothing.
pub(crate) const NOT_FOUND: u8 = exit::NOT_FOUND;

/// Examples shown under `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci crvs person crvs_main --id UIN:1234567890
  dci crvs verify-birth crvs_main --id BRN:B-2024-17
  dci crvs check-death crvs_main --id UIN:1234567890
  dci crvs events crvs_main --type birth --from 2026-01-01 --to 2026-01-31
  dci crvs subscribe crvs_main --type birth,death
  dci crvs notifications crvs_main --limit 10";

/// `dci crvs …`.
#[derive(Debug, Subcommand)]
pub(crate) enum CrvsCommand {
    /// The person with this identifier (UIN, BRN, DRN or MRN).
    Person(IdArgs),
    /// The birth record for this identifier.
    VerifyBirth(IdArgs),
    /// Whether the person died, with the date.
    CheckDeath(IdArgs),
    /// Vital events of one type in a date range, every page.
    Events(EventsArgs),
    /// Subscribe to event types (async: needs the source's callback URI and `dci serve`).
    Subscribe(SubscribeArgs),
    /// Notifications received for this source (by `dci serve`), typed.
    Notifications(NotificationsArgs),
}

/// A data source and an identifier.
#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The data source's code.
    pub(crate) code: String,
    /// The identifier as TYPE:VALUE, e.g. UIN:1234567890 [required].
    #[arg(long, help_heading = "Lookup")]
    pub(crate) id: String,
}

/// `dci crvs events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// The data source's code.
    code: String,
    /// birth, death, marriage or divorce [required].
    #[arg(long = "type", help_heading = "Events")]
    kind: String,
    /// First day (YYYY-MM-DD).
    #[arg(long, help_heading = "Events")]
    from: Option<String>,
    /// Last day (YYYY-MM-DD).
    #[arg(long, help_heading = "Events")]
    to: Option<String>,
}

/// `dci crvs subscribe`.
#[derive(Debug, Args)]
pub(crate) struct SubscribeArgs {
    /// The data source's code.
    code: String,
    /// Event types (repeat or comma-separate): birth, death, marriage, divorce [required].
    #[arg(
        long = "type",
        value_delimiter = ',',
        required = true,
        help_heading = "Subscription"
    )]
    kinds: Vec<String>,
}

/// `dci crvs notifications`.
#[derive(Debug, Args)]
pub(crate) struct NotificationsArgs {
    /// The data source's code.
    code: String,
    /// Most notifications to read.
    #[arg(long, default_value_t = 50, help_heading = "Notifications")]
    limit: u32,
}

/// The operations of data source `code` (refused when disabled).
pub(crate) async fn operations(code: &str) -> Result<Operations, CmdError> {
    crate::context::operations(code).await
}

/// An operations error as a command error: bad input exits 2, anything else 1 (a data
/// source of the wrong registry type included: the command cannot be done with it).
pub(crate) fn ops_error(e: OpsError) -> CmdError {
    if let OpsError::Invalid { field, .. } = &e
        && field == "registry_type"
    {
        return CmdError {
            code: exit::FAILED,
            kind: "wrong_registry_type",
            message: e.to_string(),
            fields: None,
        };
    }
    crate::cmd::search::ops_error(e)
}

pub(crate) fn parse_id(s: &str) -> Result<IdRef, CmdError> {
    IdRef::parse(s).map_err(ops_error)
}

/// Warns on stderr, without failing, when an identifier type on a CRVS source is none of the
/// types the CRVS vocabulary lists: registries use others too (`NationalID`, `NID`…), which
/// the protocol keeps verbatim, so it is sent as given. Only the type is shown, never the value.
pub(crate) fn warn_unknown_id_type(id_type: &str) {
    if IdentifierType::parse_lenient(id_type).is_known() {
        return;
    }
    let known: Vec<&str> = IdentifierType::KNOWN
        .iter()
        .map(IdentifierType::as_str)
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "warning: identifier type {id_type:?} is not a CRVS type ({}); sending it as given",
        known.join(", ")
    );
}

/// [`parse_id`] for a CRVS lookup, with [`warn_unknown_id_type`].
fn crvs_id(s: &str) -> Result<IdRef, CmdError> {
    let id = parse_id(s)?;
    warn_unknown_id_type(&id.id_type);
    Ok(id)
}

/// Prints a lookup's answer and returns its exit code: 0 found, 3 not found, else the error's.
pub(crate) fn finish<T: Serialize>(
    json: bool,
    code: &str,
    what: &str,
    result: Result<Option<T>, CmdError>,
    text: impl Fn(&T) -> Vec<String>,
) -> u8 {
    match result {
        Ok(Some(r)) => {
            if json {
                say!(
                    "{}",
                    json!({"source": code, "query": what, "outcome": "found", "result": r})
                );
            } else {
                for line in text(&r) {
                    say!("{line}");
                }
            }
            exit::OK
        }
        Ok(None) => {
            if json {
                say!(
                    "{}",
                    json!({"source": code, "query": what, "outcome": "not_found", "result": Value::Null})
                );
            } else {
                say!("not found: the registry of {code:?} has no {what}");
            }
            NOT_FOUND
        }
        Err(e) => e.report(json),
    }
}

pub(crate) fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

async fn client(code: &str) -> Result<CrvsClient, CmdError> {
    CrvsClient::new(operations(code).await?).map_err(ops_error)
}

/// Runs a `dci crvs` subcommand.
pub(crate) fn run(cmd: CrvsCommand, json: bool) -> u8 {
    match cmd {
        CrvsCommand::Person(a) => {
            let r = block_on(async {
                let id = crvs_id(&a.id)?;
                client(&a.code).await?.person(&id).await.map_err(ops_error)
            });
            finish(json, &a.code, &format!("person {}", a.id), r, |p| {
                vec![
                    format!("name:        {}", opt(&p.name)),
                    format!(
                        "identifiers: {}",
                        p.identifiers
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!("sex:         {}", opt(&p.sex)),
                    format!("born:        {}", opt(&p.birth_date)),
                    format!("deceased:    {}", if p.deceased { "yes" } else { "no" }),
                ]
            })
        }
        CrvsCommand::VerifyBirth(a) => {
            let r = block_on(async {
                let id = crvs_id(&a.id)?;
                client(&a.code)
                    .await?
                    .verify_birth(&id)
                    .await
                    .map_err(ops_error)
            });
            finish(
                json,
                &a.code,
                &format!("birth record for {}", a.id),
                r,
                |p| {
                    vec![
                        format!("birth verified: {}", opt(&p.name)),
                        format!("born:  {}", opt(&p.birth_date)),
                        format!("place: {}", opt(&p.birth_place)),
                        format!("BRN:   {}", p.id("BRN").unwrap_or("-")),
                    ]
                },
            )
        }
        CrvsCommand::CheckDeath(a) => {
            let r = block_on(async {
                let id = crvs_id(&a.id)?;
                client(&a.code)
                    .await?
                    .check_death(&id)
                    .await
                    .map_err(ops_error)
            });
            finish(json, &a.code, &format!("person {}", a.id), r, |d| {
                if d.deceased {
                    vec![format!(
                        "deceased: yes (died {}, DRN {})",
                        opt(&d.death_date),
                        opt(&d.drn)
                    )]
                } else {
                    vec!["deceased: no".to_owned()]
                }
            })
        }
        CrvsCommand::Events(a) => {
            let r = block_on(async {
                let kind: VitalEventKind = a.kind.parse().map_err(ops_error)?;
                let events = client(&a.code)
                    .await?
                    .events(kind, a.from.as_deref(), a.to.as_deref())
                    .await
                    .map_err(ops_error)?;
                Ok((!events.is_empty()).then_some(events))
            });
            finish(json, &a.code, &format!("{} events", a.kind), r, |evs| {
                let mut lines = vec![format!("{} {} event(s)", evs.len(), a.kind)];
                for e in evs {
                    lines.push(format!(
                        "{}  {:<14} {}",
                        opt(&e.date),
                        opt(&e.registration_number),
                        opt(&e.person.name)
                    ));
                }
                lines
            })
        }
        CrvsCommand::Subscribe(a) => subscribe(a, json),
        CrvsCommand::Notifications(a) => {
            let r = block_on(async {
                let evs = client(&a.code)
                    .await?
                    .notifications(a.limit)
                    .await
                    .map_err(ops_error)?;
                Ok((!evs.is_empty()).then_some(evs))
            });
            finish(json, &a.code, "notifications", r, |evs| {
                evs.iter()
                    .map(|e| {
                        format!(
                            "{} {} person(s) ({})",
                            e.kind.map_or("?", VitalEventKind::as_str),
                            e.people.len(),
                            e.subscription_code.as_deref().unwrap_or("-")
                        )
                    })
                    .collect()
            })
        }
    }
}

fn subscribe(a: SubscribeArgs, json: bool) -> u8 {
    let r = block_on(async {
        let kinds = a
            .kinds
            .iter()
            .map(|k| k.parse::<VitalEventKind>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ops_error)?;
        Ok::<_, CmdError>(client(&a.code).await?.subscribe(&kinds).await)
    });
    let outcomes = match r {
        Ok(o) => o,
        Err(e) => return e.report(json),
    };
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if json {
        say!("{}", json!({"source": a.code, "subscriptions": outcomes}));
    } else {
        for o in &outcomes {
            match &o.result {
                Ok(ack) => say!(
                    "{}: {} (transaction {}); the subscription code arrives with on-subscribe",
                    o.kind,
                    ack.ack_status,
                    ack.transaction_id
                ),
                Err(e) => say!("{}: failed: {e}", o.kind),
            }
        }
    }
    if failed == 0 { exit::OK } else { exit::FAILED }
}
