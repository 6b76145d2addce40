//! `dci webhook add|list|remove|deliveries|redeliver`: endpoints the SPMIS receives events at
//! (Standard Webhooks signatures), and RabbitMQ sinks (`--sink amqp`). A webhook's secret is
//! generated and printed once by `add`, or read from stdin with `--secret-stdin`; a sink's broker
//! URL with credentials is read from stdin with `--url-stdin`. Neither is taken from argv nor
//! shown again.

use std::io::{self, Read};

use clap::Subcommand;
use dci_client::webhooks::{
    CreateEndpointError, DeliveryFilter, DeliveryState, EndpointInput, Redelivery,
    RedeliverySelection, add_endpoint, redeliver, remove_endpoint,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::exit;
use crate::context::CLI_ACTOR;
use crate::context::{CmdError, block_on, say};

/// Examples shown under `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci webhook add --url https://spmis.example/dci-events --kind notification.received
  dci webhook add --url https://spmis.example/hooks --secret-stdin < whsec.txt
  echo 'amqps://dci:…@rabbit.example/spmis' | dci webhook add --sink amqp --url-stdin --exchange dci.events
  dci webhook list --json
  dci webhook deliveries wh_0190… --state dead
  dci webhook redeliver --event evt_0190…
  dci webhook redeliver --since 2026-12-01T00:00:00Z --until 2026-12-02T00:00:00Z
  dci webhook remove wh_0190… --yes";

/// `dci webhook …`.
#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Add an endpoint; prints a webhook's signing secret once (unless given with
    /// --secret-stdin). With --sink amqp, a RabbitMQ sink: events are published to an exchange
    /// and count as delivered once the broker confirms them.
    Add {
        /// Where events are POSTed (http:// or https://); with --sink amqp, the broker URL
        /// (amqp://host:5672/vhost) when it carries no credentials [required unless --url-stdin].
        #[arg(long, required_unless_present = "url_stdin", help_heading = "Endpoint")]
        url: Option<String>,
        /// Read the URL from stdin (an AMQP broker URL with its user and password).
        #[arg(long, conflicts_with_all = ["url", "secret_stdin"], help_heading = "Endpoint")]
        url_stdin: bool,
        /// webhook (a signed POST per event) or amqp (a message per event to RabbitMQ).
        #[arg(long, default_value = "webhook", help_heading = "Endpoint")]
        sink: String,
        /// With --sink amqp: the exchange (default: the broker's default exchange "").
        #[arg(long, help_heading = "Endpoint")]
        exchange: Option<String>,
        /// With --sink amqp: the routing key (default: each event's kind).
        #[arg(long, help_heading = "Endpoint")]
        routing_key: Option<String>,
        /// An event kind it receives (repeat; none: every kind): notification.received,
        /// search.completed, transaction.failed, transaction.expired, subscription.changed,
        /// source.state_changed.
        #[arg(long = "kind", value_name = "KIND", help_heading = "Endpoint")]
        kinds: Vec<String>,
        /// Free text.
        #[arg(long, help_heading = "Endpoint")]
        description: Option<String>,
        /// Add it disabled.
        #[arg(long, help_heading = "Endpoint")]
        disabled: bool,
        /// Read the signing secret (whsec_…) from stdin instead of generating one.
        #[arg(long, help_heading = "Secret")]
        secret_stdin: bool,
    },
    /// List endpoints (never their secrets).
    List,
    /// Remove an endpoint with its deliveries. Asks first on a terminal; elsewhere needs --yes.
    Remove {
        /// The endpoint id.
        id: String,
        /// Remove without asking.
        #[arg(long, short = 'y', help_heading = "Confirmation")]
        yes: bool,
    },
    /// Deliveries to an endpoint (newest event first); with --event, each attempt.
    Deliveries {
        /// The endpoint id.
        id: String,
        /// Only pending, delivered or dead (the dead letter).
        #[arg(long, help_heading = "Filter")]
        state: Option<String>,
        /// Only this event (shows its attempts).
        #[arg(long, help_heading = "Filter")]
        event: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100, help_heading = "Filter")]
        limit: u32,
    },
    /// Queue events again: one by --event, or a time range --since [--until].
    Redeliver {
        /// The event id.
        #[arg(long, conflicts_with_all = ["since", "until"], help_heading = "Events")]
        event: Option<String>,
        /// From this time (RFC 3339).
        #[arg(long, help_heading = "Events")]
        since: Option<String>,
        /// Until this time (RFC 3339; default now).
        #[arg(long, requires = "since", help_heading = "Events")]
        until: Option<String>,
        /// Only to this endpoint (default: every enabled endpoint whose filter takes them).
        #[arg(long, help_heading = "Events")]
        endpoint: Option<String>,
    },
}

/// Runs `dci webhook`.
pub(crate) fn run(cmd: WebhookCommand, json: bool) -> u8 {
    match block_on(execute(cmd, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

pub(crate) fn time_arg(flag: &str, s: &str) -> Result<OffsetDateTime, CmdError> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| {
        CmdError::usage(format!(
            "{flag} {s:?} is not an RFC 3339 time ({e}): use e.g. 2026-12-01T00:00:00Z"
        ))
    })
}

fn read_stdin(flag: &str, example: &str) -> Result<SecretString, CmdError> {
    let mut text = String::new();
    io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CmdError::failed(format!("{flag}: reading stdin: {e}")))?;
    let secret = SecretString::from(text.trim().to_owned());
    zeroize::Zeroize::zeroize(&mut text);
    if secret.expose_secret().is_empty() {
        return Err(CmdError::usage(format!(
            "{flag}: stdin was empty: pipe it in, e.g. `{example}`"
        )));
    }
    Ok(secret)
}

/// The URL of `add`: from argv (never with credentials for a broker) or stdin.
fn add_url(url: Option<String>, url_stdin: bool, sink: &str) -> Result<String, CmdError> {
    if url_stdin {
        let url = read_stdin(
            "--url-stdin",
            "dci webhook add --sink amqp --url-stdin < broker-url.txt",
        )?;
        return Ok(url.expose_secret().to_owned());
    }
    let url = url.unwrap_or_default();
    if sink.trim() == "amqp"
        && let Ok(u) = url::Url::parse(url.trim())
        && (!u.username().is_empty() || u.password().is_some())
    {
        return Err(CmdError::usage(
            "--url: the broker URL carries credentials, which must not be on the command line: pipe it in with --url-stdin instead",
        ));
    }
    Ok(url)
}

async fn execute(cmd: WebhookCommand, json: bool) -> Result<(), CmdError> {
    let ops = crate::context::open_store().await?.ops;
    match cmd {
        WebhookCommand::Add {
            url,
            url_stdin,
            sink,
            exchange,
            routing_key,
            kinds,
            description,
            disabled,
            secret_stdin,
        } => {
            let url = add_url(url, url_stdin, &sink)?;
            let given = secret_stdin
                .then(|| {
                    read_stdin(
                        "--secret-stdin",
                        "dci webhook add --url … --secret-stdin < whsec.txt",
                    )
                })
                .transpose()?;
            let input = EndpointInput {
                url,
                sink: Some(sink),
                exchange,
                routing_key,
                kinds,
                enabled: Some(!disabled),
                description,
                secret: given,
            };
            let (endpoint, secret) =
                add_endpoint(&ops, CLI_ACTOR, &input)
                    .await
                    .map_err(|e| match e {
                        CreateEndpointError::Invalid(f) => {
                            let flag = match f.field {
                                "kinds" => "--kind",
                                "secret" => "--secret-stdin",
                                "sink" => "--sink",
                                "exchange" => "--exchange",
                                "routing_key" => "--routing-key",
                                _ => "--url",
                            };
                            CmdError::usage(format!("{flag}: {}", f.message))
                        }
                        CreateEndpointError::Store(s) => s.into(),
                    })?;
            // A generated secret is shown once; a given one (or a sink's broker URL) never.
            let shown = secret.filter(|_| input.secret.is_none());
            if json {
                let mut v = serde_json::to_value(&endpoint).unwrap_or_default();
                if let Some(secret) = &shown {
                    v["secret"] = secret.expose().expose_secret().into();
                }
                say!("{v}");
            } else {
                say!(
                    "added {} {} → {}",
                    endpoint.sink.as_str(),
                    endpoint.id,
                    endpoint.url
                );
                if let Some(secret) = &shown {
                    say!(
                        "signing secret (shown once; verify deliveries with it): {}",
                        secret.expose().expose_secret()
                    );
                }
            }
        }
        WebhookCommand::List => {
            let all = ops.list_webhooks().await?;
            if json {
                say!("{}", json!({ "webhooks": all }));
            } else if all.is_empty() {
                say!("no webhook endpoints: `dci webhook add --url URL`");
            } else {
                for e in &all {
                    let kinds = if e.kinds.is_empty() {
                        "all kinds".to_owned()
                    } else {
                        e.kinds
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    let on = if e.enabled { "enabled" } else { "disabled" };
                    let sink = match &e.sink {
                        dci_client::webhooks::Sink::Webhook => "webhook".to_owned(),
                        dci_client::webhooks::Sink::Amqp {
                            exchange,
                            routing_key,
                        } => format!(
                            "amqp exchange {exchange:?} key {}",
                            routing_key.as_deref().unwrap_or("<kind>")
                        ),
                    };
                    say!("{}\t{sink}\t{}\t{on}\t{kinds}", e.id, e.url);
                }
            }
        }
        WebhookCommand::Remove { id, yes } => {
            if ops.get_webhook(&id).await?.is_none() {
                return Err(unknown(&id));
            }
            crate::context::confirm(&format!("remove webhook {id}"), yes)?;
            remove_endpoint(&ops, CLI_ACTOR, &id).await?;
            if json {
                say!("{}", json!({ "removed": id }));
            } else {
                say!("removed webhook {id}");
            }
        }
        WebhookCommand::Deliveries {
            id,
            state,
            event,
            limit,
        } => {
            if ops.get_webhook(&id).await?.is_none() {
                return Err(unknown(&id));
            }
            let state = state
                .map(|s| {
                    DeliveryState::parse(&s).ok_or_else(|| {
                        CmdError::usage(format!(
                            "--state {s:?} is not one of pending, delivered, dead"
                        ))
                    })
                })
                .transpose()?;
            let list = ops
                .list_deliveries(&DeliveryFilter {
                    endpoint_id: Some(id.clone()),
                    event_id: event.clone(),
                    state,
                    limit,
                })
                .await?;
            let mut rows = Vec::new();
            for d in &list {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                if event.is_some() {
                    v["attempts_made"] =
                        serde_json::to_value(ops.list_attempts(&id, &d.event_id).await?)
                            .unwrap_or_default();
                }
                rows.push(v);
            }
            if json {
                say!("{}", json!({ "deliveries": rows }));
            } else if list.is_empty() {
                say!("no deliveries");
            } else {
                for d in &list {
                    say!(
                        "{}\t{}\t{}\tattempts {}\tlast status {}\t{}",
                        d.event_id,
                        d.event_kind,
                        d.state.as_str(),
                        d.attempts,
                        d.last_status.map_or("-".into(), |s| s.to_string()),
                        d.last_error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        WebhookCommand::Redeliver {
            event,
            since,
            until,
            endpoint,
        } => {
            let events = match (event, since) {
                (Some(id), _) => {
                    if ops.get_event(&id).await?.is_none() {
                        return Err(CmdError::not_found(format!(
                            "no event {id:?}: `dci events list` shows them"
                        )));
                    }
                    RedeliverySelection::Event(id)
                }
                (None, Some(since)) => RedeliverySelection::Range {
                    since: time_arg("--since", &since)?,
                    until: until
                        .map(|u| time_arg("--until", &u))
                        .transpose()?
                        .unwrap_or_else(OffsetDateTime::now_utc),
                },
                (None, None) => {
                    return Err(CmdError::usage(
                        "give --event ID, or --since TIME [--until TIME]",
                    ));
                }
            };
            if let Some(e) = &endpoint
                && ops.get_webhook(e).await?.is_none()
            {
                return Err(unknown(e));
            }
            let selection = Redelivery {
                events,
                endpoint_id: endpoint,
            };
            let queued = redeliver(&ops, CLI_ACTOR, &selection, OffsetDateTime::now_utc()).await?;
            if json {
                say!("{}", json!({ "queued": queued }));
            } else {
                say!("queued {queued} deliveries (`dci serve` sends them)");
            }
        }
    }
    Ok(())
}

fn unknown(id: &str) -> CmdError {
    CmdError::not_found(format!(
        "no webhook endpoint {id:?}: `dci webhook list` shows them"
    ))
}
