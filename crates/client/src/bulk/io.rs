//! Streaming input and output of a bulk run, one row at a time so memory does not grow with
//! the file.
//!
//! - [`InputReader`]: CSV with `id_type` and `id_value` columns (other columns are kept as the
//!   row's fields), JSONL objects with `id_type` and `id_value` (other members kept likewise),
//!   or plain lines `TYPE:VALUE` as `dci search --id` takes them. Blank lines (and, in plain
//!   lines, `#` comments) are skipped. Each row carries its physical line number and the byte
//!   offset after it, so a checkpoint can say where to continue; a row that cannot be read is
//!   still a row (its outcome is `error`).
//! - [`OutputWriter`]: one answer per row, as JSONL or CSV, counting the bytes written so the
//!   output can be cut back to a checkpoint ([`OutputWriter::resume`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::RegistryError;
use crate::ops::{OneLine, RawRecord};

/// How the input is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// CSV with a header naming `id_type` and `id_value`.
    Csv,
    /// One JSON object per line with `id_type` and `id_value`.
    Jsonl,
    /// One `TYPE:VALUE` per line.
    Lines,
}

impl InputFormat {
    /// Parses `csv`, `jsonl` (or `ndjson`) or `lines` (or `txt`).
    pub fn parse(s: &str) -> Option<InputFormat> {
        Some(match s.to_ascii_lowercase().as_str() {
            "csv" => InputFormat::Csv,
            "jsonl" | "ndjson" | "json" => InputFormat::Jsonl,
            "lines" | "txt" | "ids" => InputFormat::Lines,
            _ => return None,
        })
    }

    /// The format a file name's extension implies, if any.
    pub fn from_path(path: &Path) -> Option<InputFormat> {
        InputFormat::parse(path.extension()?.to_str()?)
    }
}

/// How the output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// One JSON object per row.
    Jsonl,
    /// CSV: `line,id_type,id_value,outcome,record_count,reason_code,reason_message,records`,
    /// then the input's extra columns.
    Csv,
}

impl OutputFormat {
    /// Parses `jsonl` (or `ndjson`) or `csv`.
    pub fn parse(s: &str) -> Option<OutputFormat> {
        Some(match s.to_ascii_lowercase().as_str() {
            "csv" => OutputFormat::Csv,
            "jsonl" | "ndjson" | "json" => OutputFormat::Jsonl,
            _ => return None,
        })
    }

    /// The format a file name's extension implies, if any.
    pub fn from_path(path: &Path) -> Option<OutputFormat> {
        OutputFormat::parse(path.extension()?.to_str()?)
    }
}

/// One identifier to look up.
#[derive(Debug, Clone, PartialEq)]
pub struct Identifier {
    /// The identifier type (`UIN`, `BRN`, …).
    pub id_type: String,
    /// Its value.
    pub id_value: String,
}

/// One input row.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRow {
    /// Physical line number in the input (1-based; a CSV header is line 1).
    pub line: u64,
    /// Byte offset in the input just after this row.
    pub end_offset: u64,
    /// The identifier, or why the row could not be read (naming the field).
    pub id: Result<Identifier, String>,
    /// The row's other fields, echoed in its answer.
    pub fields: Map<String, Value>,
}

/// Reads rows from an input, streaming.
pub struct InputReader {
    inner: Inner,
    format: InputFormat,
    /// Extra CSV columns, in order (empty for the other formats).
    extra_columns: Vec<String>,
}

enum Inner {
    Lines {
        reader: Box<dyn BufRead + Send>,
        offset: u64,
        line: u64,
        buf: String,
    },
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        base_offset: u64,
        base_line: u64,
        type_col: usize,
        value_col: usize,
        headers: Vec<String>,
    },
}

impl std::fmt::Debug for InputReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputReader")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl InputReader {
    /// Opens `path` and continues after byte `offset` whose last row was on line `line` (`0,
    /// 0`: from the start). A CSV header is read from the start either way.
    pub fn open(path: &Path, format: InputFormat, offset: u64, line: u64) -> io::Result<Self> {
        let file = File::open(path)?;
        if format == InputFormat::Csv {
            let mut head = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(BufReader::new(File::open(path)?));
            let headers = head.headers().map_err(csv_err)?.clone();
            let header_end = head.position().byte();
            let header_line = head.position().line().saturating_sub(1).max(1);
            drop(head);
            let (offset, line) = if offset == 0 {
                (header_end, header_line)
            } else {
                (offset, line)
            };
            let mut file = file;
            file.seek(SeekFrom::Start(offset))?;
            return Self::csv_from(
                Box::new(BufReader::with_capacity(64 * 1024, file)),
                &headers,
                offset,
                line,
            );
        }
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Self::lines_from(
            Box::new(BufReader::with_capacity(64 * 1024, file)),
            format,
            offset,
            line,
        ))
    }

    /// Reads `reader` from its start (e.g. standard input).
    pub fn from_reader(reader: Box<dyn BufRead + Send>, format: InputFormat) -> io::Result<Self> {
        if format == InputFormat::Csv {
            let mut r = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(Box::new(reader) as Box<dyn Read + Send>);
            let headers = r.headers().map_err(csv_err)?.clone();
            let (type_col, value_col, names) = csv_columns(&headers)?;
            let extra = extra_of(&names, type_col, value_col);
            return Ok(InputReader {
                inner: Inner::Csv {
                    reader: r,
                    base_offset: 0,
                    base_line: 0,
                    type_col,
                    value_col,
                    headers: names,
                },
                format,
                extra_columns: extra,
            });
        }
        Ok(Self::lines_from(reader, format, 0, 0))
    }

    fn lines_from(
        reader: Box<dyn BufRead + Send>,
        format: InputFormat,
        offset: u64,
        line: u64,
    ) -> Self {
        InputReader {
            inner: Inner::Lines {
                reader,
                offset,
                line,
                buf: String::new(),
            },
            format,
            extra_columns: Vec::new(),
        }
    }

    fn csv_from(
        reader: Box<dyn Read + Send>,
        headers: &csv::StringRecord,
        offset: u64,
        line: u64,
    ) -> io::Result<Self> {
        let (type_col, value_col, names) = csv_columns(headers)?;
        let extra = extra_of(&names, type_col, value_col);
        let reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_reader(reader);
        Ok(InputReader {
            inner: Inner::Csv {
                reader,
                base_offset: offset,
                base_line: line,
                type_col,
                value_col,
                headers: names,
            },
            format: InputFormat::Csv,
            extra_columns: extra,
        })
    }

    /// The CSV input's columns other than `id_type` and `id_value`, in order.
    pub fn extra_columns(&self) -> &[String] {
        &self.extra_columns
    }

    /// The next row; `None` at the end. An I/O error (or a CSV that cannot be tokenised) ends
    /// the run; a row that parses but lacks a field is a row with an error.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<io::Result<InputRow>> {
        match &mut self.inner {
            Inner::Lines {
                reader,
                offset,
                line,
                buf,
            } => loop {
                buf.clear();
                let n = match reader.read_line(buf) {
                    Ok(0) => return None,
                    Ok(n) => n,
                    Err(e) => return Some(Err(e)),
                };
                *offset += n as u64;
                *line += 1;
                let text = buf.trim();
                if text.is_empty() || (self.format == InputFormat::Lines && text.starts_with('#')) {
                    continue;
                }
                let (id, fields) = match self.format {
                    InputFormat::Jsonl => parse_json_row(text),
                    _ => (parse_type_value(text), Map::new()),
                };
                return Some(Ok(InputRow {
                    line: *line,
                    end_offset: *offset,
                    id,
                    fields,
                }));
            },
            Inner::Csv {
                reader,
                base_offset,
                base_line,
                type_col,
                value_col,
                headers,
            } => {
                let mut rec = csv::StringRecord::new();
                loop {
                    match reader.read_record(&mut rec) {
                        Ok(false) => return None,
                        Ok(true) => {}
                        Err(e) => return Some(Err(csv_err(e))),
                    }
                    if rec.iter().all(|f| f.trim().is_empty()) {
                        continue;
                    }
                    break;
                }
                let line = *base_line + rec.position().map_or(0, csv::Position::line);
                let end_offset = *base_offset + reader.position().byte();
                let get = |i: usize| rec.get(i).map(str::trim).unwrap_or_default();
                let (t, v) = (get(*type_col), get(*value_col));
                let id = if t.is_empty() {
                    Err("id_type: is empty: give the identifier type, e.g. UIN".to_owned())
                } else if v.is_empty() {
                    Err("id_value: is empty: give the identifier's value".to_owned())
                } else {
                    Ok(Identifier {
                        id_type: t.to_owned(),
                        id_value: v.to_owned(),
                    })
                };
                let fields = headers
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != *type_col && *i != *value_col)
                    .map(|(i, h)| (h.clone(), Value::String(get(i).to_owned())))
                    .collect();
                Some(Ok(InputRow {
                    line,
                    end_offset,
                    id,
                    fields,
                }))
            }
        }
    }
}

fn csv_err(e: csv::Error) -> io::Error {
    invalid(format!("input CSV: {e}"))
}

fn csv_columns(headers: &csv::StringRecord) -> io::Result<(usize, usize, Vec<String>)> {
    let names: Vec<String> = headers
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
        .collect();
    let find = |n: &str| names.iter().position(|h| h.eq_ignore_ascii_case(n));
    match (find("id_type"), find("id_value")) {
        (Some(t), Some(v)) => Ok((t, v, names)),
        _ => Err(invalid(format!(
            "input CSV: the header must name the columns id_type and id_value (it has: {}): add them, e.g. id_type,id_value",
            names.join(",")
        ))),
    }
}

fn extra_of(names: &[String], t: usize, v: usize) -> Vec<String> {
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != t && *i != v)
        .map(|(_, n)| n.clone())
        .collect()
}

/// `TYPE:VALUE` (the value may contain `:`).
fn parse_type_value(s: &str) -> Result<Identifier, String> {
    match s.split_once(':') {
        Some((t, v)) if !t.trim().is_empty() && !v.trim().is_empty() => Ok(Identifier {
            id_type: t.trim().to_owned(),
            id_value: v.trim().to_owned(),
        }),
        _ => Err("id: is not TYPE:VALUE: write each identifier as e.g. UIN:1234567890".into()),
    }
}

fn parse_json_row(s: &str) -> (Result<Identifier, String>, Map<String, Value>) {
    let mut obj = match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return (
                Err(
                    "row: is not a JSON object: write {\"id_type\": \"UIN\", \"id_value\": \"…\"}"
                        .into(),
                ),
                Map::new(),
            );
        }
        Err(e) => return (Err(format!("row: is not JSON ({e})")), Map::new()),
    };
    let mut take = |k: &str| match obj.remove(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let id = match (take("id_type"), take("id_value")) {
        (Some(id_type), Some(id_value)) => Ok(Identifier { id_type, id_value }),
        (None, _) => Err("id_type: is missing: give the identifier type, e.g. \"UIN\"".into()),
        (_, None) => Err("id_value: is missing: give the identifier's value".into()),
    };
    (id, obj)
}

/// What a row's search came to.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutcome {
    /// The registry has records for it (as it sent them).
    Found(Vec<RawRecord>),
    /// The registry has none.
    NotFound,
    /// No answer: the registry's reason, or ours (input, transport).
    Error {
        /// The registry's code, when it gave one.
        code: Option<String>,
        /// What went wrong.
        message: String,
    },
}

impl RowOutcome {
    /// `found`, `not_found` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RowOutcome::Found(_) => "found",
            RowOutcome::NotFound => "not_found",
            RowOutcome::Error { .. } => "error",
        }
    }

    pub(crate) fn from_registry(r: Option<&RegistryError>, fallback: String) -> RowOutcome {
        RowOutcome::Error {
            code: r.and_then(|r| r.code.clone()),
            message: r
                .and_then(|r| r.message.clone().or_else(|| r.code.clone()))
                .unwrap_or(fallback),
        }
    }
}

/// One row's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RowAnswer {
    /// The input row.
    pub row: InputRow,
    /// Its outcome.
    pub outcome: RowOutcome,
}

/// Writes answers, streaming, counting bytes.
pub struct OutputWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    format: OutputFormat,
    extra_columns: Vec<String>,
    written: u64,
    line: Vec<u8>,
}

impl std::fmt::Debug for OutputWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputWriter")
            .field("format", &self.format)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// The CSV output's fixed columns.
pub const CSV_COLUMNS: &[&str] = &[
    "line",
    "id_type",
    "id_value",
    "outcome",
    "record_count",
    "reason_code",
    "reason_message",
    "records",
];

impl OutputWriter {
    /// Writes to `out` from its start (a CSV gets its header).
    pub fn new(
        out: Box<dyn Write + Send>,
        format: OutputFormat,
        extra_columns: Vec<String>,
    ) -> io::Result<Self> {
        let mut w = OutputWriter {
            out: BufWriter::with_capacity(64 * 1024, out),
            format,
            extra_columns,
            written: 0,
            line: Vec::new(),
        };
        if format == OutputFormat::Csv {
            let mut header: Vec<&str> = CSV_COLUMNS.to_vec();
            header.extend(w.extra_columns.iter().map(String::as_str));
            let bytes = csv_line(&header);
            w.emit(&bytes)?;
        }
        Ok(w)
    }

    /// Opens `path` for a job at `offset` bytes: created (and started) when `offset` is 0,
    /// otherwise cut back to `offset` — dropping any answer written after the checkpoint, which
    /// the resumed run writes again — and appended to.
    pub fn resume(
        path: &Path,
        format: OutputFormat,
        extra_columns: Vec<String>,
        offset: u64,
    ) -> io::Result<Self> {
        if offset == 0 {
            let f = File::create(path)?;
            return Self::new(Box::new(f), format, extra_columns);
        }
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        let len = f.metadata()?.len();
        if len < offset {
            return Err(invalid(format!(
                "the output {} is shorter ({len} bytes) than the checkpoint ({offset} bytes): it was changed since the job ran; restore it or start a new job",
                path.display()
            )));
        }
        f.set_len(offset)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(OutputWriter {
            out: BufWriter::with_capacity(64 * 1024, Box::new(f)),
            format,
            extra_columns,
            written: offset,
            line: Vec::new(),
        })
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes one answer.
    pub fn write(&mut self, a: &RowAnswer) -> io::Result<()> {
        let (id_type, id_value) = match &a.row.id {
            Ok(i) => (i.id_type.as_str(), i.id_value.as_str()),
            Err(_) => ("", ""),
        };
        let (code, message) = match &a.outcome {
            RowOutcome::Error { code, message } => (code.as_deref(), Some(message.as_str())),
            _ => (None, None),
        };
        let records: Option<Vec<OneLine<'_>>> = match &a.outcome {
            RowOutcome::Found(r) => Some(r.iter().map(RawRecord::one_line).collect()),
            _ => None,
        };
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        match self.format {
            OutputFormat::Jsonl => {
                let o = JsonlLine {
                    line: a.row.line,
                    id_type,
                    id_value,
                    outcome: a.outcome.as_str(),
                    records: records.as_deref(),
                    reason: match &a.outcome {
                        RowOutcome::Error { code, message } => Some(JsonlReason {
                            code: code.as_deref(),
                            message,
                        }),
                        _ => None,
                    },
                    fields: &a.row.fields,
                };
                serde_json::to_writer(&mut line, &o).map_err(io::Error::other)?;
                line.push(b'\n');
            }
            OutputFormat::Csv => {
                let line_no = a.row.line.to_string();
                let records = records.as_deref().unwrap_or_default();
                let count = records.len().to_string();
                let recs = if records.is_empty() {
                    String::new()
                } else {
                    serde_json::to_string(&records).map_err(io::Error::other)?
                };
                let mut cells: Vec<&str> = vec![
                    &line_no,
                    id_type,
                    id_value,
                    a.outcome.as_str(),
                    &count,
                    code.unwrap_or_default(),
                    message.unwrap_or_default(),
                    &recs,
                ];
                let extras: Vec<String> = self
                    .extra_columns
                    .iter()
                    .map(|c| match a.row.fields.get(c) {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    })
                    .collect();
                cells.extend(extras.iter().map(String::as_str));
                line = csv_line(&cells);
            }
        }
        let r = self.emit(&line);
        self.line = line;
        r
    }

    /// Flushes what is buffered; returns the bytes written in all (the checkpoint's
    /// `output_offset`).
    pub fn flush(&mut self) -> io::Result<u64> {
        self.out.flush()?;
        Ok(self.written)
    }
}

/// One line of JSON Lines output, its fields in this order; records as the registry sent them.
#[derive(Serialize)]
struct JsonlLine<'a> {
    line: u64,
    id_type: &'a str,
    id_value: &'a str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<&'a [OneLine<'a>]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<JsonlReason<'a>>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    fields: &'a Map<String, Value>,
}

/// `reason` of a JSON Lines row whose outcome is `error`.
#[derive(Serialize)]
struct JsonlReason<'a> {
    code: Option<&'a str>,
    message: &'a str,
}

fn csv_line(cells: &[&str]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = w.write_record(cells);
    w.into_inner().unwrap_or_default()
}

/// Counts the rows of an input file (one pass, constant memory) for progress and ETA.
pub fn count_rows(path: &Path, format: InputFormat) -> io::Result<u64> {
    let mut r = InputReader::open(path, format, 0, 0)?;
    let mut n = 0;
    while let Some(row) = r.next() {
        row?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::value::RawValue;

    fn row(line: u64, fields: Value) -> InputRow {
        InputRow {
            line,
            end_offset: 0,
            id: Ok(Identifier {
                id_type: "UIN".into(),
                id_value: format!("{line}"),
            }),
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    fn text(t: &str) -> RawRecord {
        RawRecord::from_text(RawValue::from_string(t.to_owned()).unwrap())
    }

    fn written(format: OutputFormat, answers: &[RowAnswer]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = File::create(&path).unwrap();
        let mut w = OutputWriter::new(Box::new(file), format, vec!["case".into()]).unwrap();
        for a in answers {
            w.write(a).unwrap();
        }
        w.flush().unwrap();
        std::fs::read_to_string(&path).unwrap()
    }

    fn answers() -> Vec<RowAnswer> {
        vec![
            RowAnswer {
                row: row(2, json!({"case": "C-1"})),
                outcome: RowOutcome::Found(vec![
                    text(r#"{"uin": "2",  "h": 1.10}"#),
                    text("{\n  \"uin\": \"2b\"\n}"),
                ]),
            },
            RowAnswer {
                row: row(3, json!({})),
                outcome: RowOutcome::NotFound,
            },
            RowAnswer {
                row: row(4, json!({})),
                outcome: RowOutcome::Error {
                    code: None,
                    message: "timed out".into(),
                },
            },
        ]
    }

    #[test]
    fn json_lines_carry_records_as_sent_one_row_per_line() {
        let out = written(OutputFormat::Jsonl, &answers());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"line":2,"id_type":"UIN","id_value":"2","outcome":"found","records":[{"uin": "2",  "h": 1.10},{"uin":"2b"}],"fields":{"case":"C-1"}}"#,
                r#"{"line":3,"id_type":"UIN","id_value":"3","outcome":"not_found"}"#,
                r#"{"line":4,"id_type":"UIN","id_value":"4","outcome":"error","reason":{"code":null,"message":"timed out"}}"#,
            ],
            "a record on one line as sent, one spread over lines compact"
        );
        for l in lines {
            serde_json::from_str::<Value>(l).unwrap();
        }
    }

    #[test]
    fn csv_rows_carry_records_as_a_json_cell() {
        let out = written(OutputFormat::Csv, &answers());
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(&rows[0][4], "2");
        assert_eq!(&rows[0][7], r#"[{"uin": "2",  "h": 1.10},{"uin":"2b"}]"#);
        assert_eq!(&rows[0][8], "C-1");
        assert_eq!((&rows[1][3], &rows[1][7]), ("not_found", ""));
        assert_eq!((&rows[2][3], &rows[2][6]), ("error", "timed out"));
    }
}
