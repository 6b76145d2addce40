//! The audit log (outgoing calls, [`AuditEntry`]) and the change audit
//! ([`ChangeRecord`]) as JSON values, JSON Lines or CSV: one shape for the gateway API, the
//! export endpoint and `dci audit export`.

use std::io::Write;
use std::str::FromStr;

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::store::AuditEntry;
use crate::users::ChangeRecord;

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line (`application/x-ndjson`).
    Jsonl,
    /// A header row, then one row per record (`text/csv`).
    Csv,
}

impl ExportFormat {
    /// The media type of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// A format name that is neither `jsonl` nor `csv`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("format {0:?} is unknown: use jsonl or csv")]
pub struct UnknownFormat(pub String);

impl FromStr for ExportFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// An audit entry as JSON (what `GET /api/v1/audit` lists).
pub fn audit_json(e: &AuditEntry) -> Value {
    json!({
        "at": rfc3339(e.at),
        "source": e.source_code,
        "endpoint": e.endpoint,
        "action": e.action,
        "message_id": e.message_id,
        "transaction_id": e.transaction_id,
        "http_status": e.http_status,
        "outcome": e.outcome.as_str(),
        "duration_ms": e.duration_ms,
        "attempt": e.attempt,
        "error": e.error,
    })
}

/// A change record as JSON (what `GET /api/v1/audit/changes` lists).
pub fn change_json(c: &ChangeRecord) -> Value {
    json!({
        "at": rfc3339(c.at),
        "actor": c.actor,
        "target": c.target.as_str(),
        "target_id": c.target_id,
        "action": c.action,
        "fields": c.fields,
    })
}

const AUDIT_COLUMNS: [&str; 11] = [
    "at",
    "source",
    "endpoint",
    "action",
    "message_id",
    "transaction_id",
    "http_status",
    "outcome",
    "duration_ms",
    "attempt",
    "error",
];

const CHANGE_COLUMNS: [&str; 6] = ["at", "actor", "target", "target_id", "action", "fields"];

/// Writes JSON rows as JSON Lines, or as CSV with these columns (an array value joined by `;`,
/// null as empty).
fn write_rows(
    rows: impl Iterator<Item = Value>,
    columns: &[&str],
    format: ExportFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        ExportFormat::Jsonl => {
            for row in rows {
                serde_json::to_writer(&mut *out, &row)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(columns)?;
            for row in rows {
                let cells = columns.iter().map(|c| match &row[*c] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(";"),
                    v => v.to_string(),
                });
                w.write_record(cells)?;
            }
            w.flush()
        }
    }
}

/// Writes audit entries (in the order given) in `format`.
pub fn write_audit(
    entries: &[AuditEntry],
    format: ExportFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    write_rows(entries.iter().map(audit_json), &AUDIT_COLUMNS, format, out)
}

/// Writes change records (in the order given) in `format`.
pub fn write_changes(
    changes: &[ChangeRecord],
    format: ExportFormat,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    write_rows(
        changes.iter().map(change_json),
        &CHANGE_COLUMNS,
        format,
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditOutcome;
    use crate::users::ChangeTarget;

    #[test]
    fn csv_quotes_and_jsonl_is_one_object_a_line() {
        let e = AuditEntry {
            at: time::macros::datetime!(2026-01-02 03:04:05 UTC),
            source_code: "crvs".into(),
            endpoint: "https://r.example/search".into(),
            action: "search".into(),
            message_id: None,
            transaction_id: Some("t1".into()),
            http_status: Some(200),
            outcome: AuditOutcome::Ok,
            duration_ms: 12,
            attempt: 1,
            error: Some("a, \"quoted\" error".into()),
        };
        let mut csv = Vec::new();
        write_audit(std::slice::from_ref(&e), ExportFormat::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap(), AUDIT_COLUMNS.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "2026-01-02T03:04:05Z,crvs,https://r.example/search,search,,t1,200,ok,12,1,\"a, \"\"quoted\"\" error\""
        );
        let c = ChangeRecord {
            at: e.at,
            actor: "user:alice".into(),
            target: ChangeTarget::DataSource,
            target_id: "crvs".into(),
            action: "update".into(),
            fields: vec!["base_url".into(), "auth.client_secret".into()],
        };
        let mut jl = Vec::new();
        write_changes(&[c.clone(), c], ExportFormat::Jsonl, &mut jl).unwrap();
        let jl = String::from_utf8(jl).unwrap();
        assert_eq!(jl.lines().count(), 2);
        let v: Value = serde_json::from_str(jl.lines().next().unwrap()).unwrap();
        assert_eq!(v["fields"], json!(["base_url", "auth.client_secret"]));
        assert_eq!("CSV".parse::<ExportFormat>().unwrap(), ExportFormat::Csv);
        assert!("xml".parse::<ExportFormat>().is_err());
    }
}
