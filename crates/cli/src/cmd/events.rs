//! `dci events list|ack`: the outbox of events (notifications received, searches completed,
//! transactions failed or expired, subscriptions and data sources changed), paged by an
//! opaque cursor, and the consumer's processed marker.

use clap::Subcommand;
use dci_client::events::{EventCursor, EventFilter, EventKind};
use serde_json::json;
use time::OffsetDateTime;

use crate::cli::exit;
use crate::cmd::webhook::time_arg;
use crate::context::{CmdError, block_on, say};

/// Examples shown under `--help`.
pub(crate) const EXAMPLES: &str = "\
Examples:
  dci events list --json
  dci events list --kind notification.received --source crvs --unprocessed
  dci events list --after CURSOR --limit 50 --json
  dci events ack evt_0190… evt_0191…";

/// `dci events …`.
#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// List events, oldest first; --json prints {events, next_cursor}.
    List {
        /// Continue after this cursor (next_cursor of the previous page).
        #[arg(long, help_heading = "Paging")]
        after: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000), help_heading = "Paging")]
        limit: u32,
        /// Only this kind (repeat).
        #[arg(long = "kind", value_name = "KIND", help_heading = "Filter")]
        kinds: Vec<String>,
        /// Only this data source's.
        #[arg(long, help_heading = "Filter")]
        source: Option<String>,
        /// Only events not marked processed.
        #[arg(long, help_heading = "Filter")]
        unprocessed: bool,
        /// Only created at or after this time (RFC 3339).
        #[arg(long, help_heading = "Filter")]
        since: Option<String>,
        /// Only created before this time (RFC 3339).
        #[arg(long, help_heading = "Filter")]
        until: Option<String>,
    },
    /// Mark events processed.
    Ack {
        /// Event ids [required].
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// Runs `dci events`.
pub(crate) fn run(cmd: EventsCommand, json: bool) -> u8 {
    match block_on(execute(cmd, json)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(json),
    }
}

async fn execute(cmd: EventsCommand, json: bool) -> Result<(), CmdError> {
    let ops = crate::context::open_store().await?.ops;
    match cmd {
        EventsCommand::List {
            after,
            limit,
            kinds,
            source,
            unprocessed,
            since,
            until,
        } => {
            let filter = EventFilter {
                after: after
                    .as_deref()
                    .map(EventCursor::decode)
                    .transpose()
                    .map_err(|e| CmdError::usage(format!("--after: {e}")))?,
                kinds: kinds
                    .iter()
                    .map(|k| k.parse::<EventKind>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| CmdError::usage(format!("--kind: {e}")))?,
                source_code: source,
                unprocessed,
                since: since.map(|s| time_arg("--since", &s)).transpose()?,
                until: until.map(|s| time_arg("--until", &s)).transpose()?,
                limit,
            };
            let page = dci_client::events::page(ops.as_ref(), &filter).await?;
            if json {
                say!("{}", serde_json::to_value(&page).unwrap_or_default());
            } else if page.events.is_empty() {
                say!("no events");
            } else {
                for e in &page.events {
                    say!(
                        "{}\t{}\t{}\t{}\t{}",
                        e.created_at
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default(),
                        e.id,
                        e.kind,
                        e.source_code.as_deref().unwrap_or("-"),
                        e.transaction_id
                            .as_deref()
                            .or(e.subscription_code.as_deref())
                            .unwrap_or("-")
                    );
                }
                if let Some(c) = &page.next_cursor {
                    say!("next: dci events list --after {c}");
                }
            }
        }
        EventsCommand::Ack { ids } => {
            let marked = ops
                .mark_events_processed(&ids, OffsetDateTime::now_utc())
                .await?;
            if json {
                say!("{}", json!({ "marked": marked }));
            } else {
                say!("marked {marked} of {} events processed", ids.len());
            }
        }
    }
    Ok(())
}
