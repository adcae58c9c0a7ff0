//! `smc-analyze export --csv DIR` / `--parquet DIR`: the report's tables for
//! spreadsheets and SQL engines: connections (one row per connection),
//! messages (one row per message: every point and stage) and stages (the
//! per-stage statistics). Columns are documented in docs/analyzer.md.
//!
//! The three tables are defined once here ([`Column`]s with a [`Kind`], and
//! rows of [`Value`]s); the CSV writer below and the Parquet writer
//! ([`parquet`]) only encode them, so both formats always carry the same
//! columns with the same meaning. Messages are streamed into every open
//! output while the report is accumulated (memory does not grow with the
//! number of messages); connections and stages are written at the end.

pub mod parquet;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::join::{Analysis, Dir, Message, MsgKind, Sink, POINTS, STAGES};
use crate::model::gap;
use crate::report::{basis, ConnReport, Report, ReportSink, SideReport};

/// What one column holds; the CSV writes every kind as text, Parquet as the
/// matching physical type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A signed 64-bit integer (counts, sizes, stream offsets, ns times and durations).
    Int,
    /// An SMC decline code: an integer, written in hex (`0x03030000`) in CSV.
    Code,
    /// UTF-8 text (names, `|`-separated lists).
    Text,
    Bool,
}

/// One column of an exported table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    /// May be empty (CSV: empty cell, Parquet: null).
    pub nullable: bool,
}

/// One cell. `Int` carries both `Kind::Int` and `Kind::Code` values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    /// Names and labels are static strings: no allocation per row.
    Text(Cow<'static, str>),
    Bool(bool),
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(v as i64)
            }
        }
    )*};
}
// Lossless: every one of these fits an i64.
int_value!(i64, u32, u16, u8, usize);
impl From<u64> for Value {
    /// Counts, sizes and stream offsets: below 2^63 in any real recording;
    /// saturates rather than wrapping to a negative number.
    fn from(v: u64) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(Cow::Owned(v))
    }
}
impl From<&'static str> for Value {
    fn from(v: &'static str) -> Value {
        Value::Text(Cow::Borrowed(v))
    }
}

fn col(name: &str, kind: Kind, nullable: bool) -> Column {
    Column {
        name: name.to_string(),
        kind,
        nullable,
    }
}

/// The three tables, in the order they are written.
pub const TABLES: [&str; 3] = ["connections", "messages", "stages"];

/// Columns of the messages table.
pub fn message_columns() -> Vec<Column> {
    use Kind::*;
    let mut c = vec![
        col("conn", Int, false),
        col("dir", Text, false),
        col("kind", Text, false),
        col("len", Int, false),
        col("stream_start", Int, false),
        col("stream_end", Int, false),
        col("cdc_seqno", Int, true),
        col("complete", Bool, false),
        // Empty text when the message has no gap (not null: "no gaps" is known).
        col("gaps", Text, false),
        col("latency_ns", Int, false),
        col("latency_basis", Text, false),
        col("blocking_stage", Text, true),
    ];
    c.extend(POINTS.iter().map(|p| col(&format!("t_{p}_ns"), Int, true)));
    c.extend(
        STAGES
            .iter()
            .map(|s| col(&format!("{}_ns", s.name), Int, true)),
    );
    c
}

/// One row of the messages table: points relative to the report start.
/// The same fields as [`crate::report::message_report`] (report --json), computed directly:
/// building that report's timeline and stage map per row was a quarter of
/// `export --csv`'s instructions.
pub fn message_row(a: &Analysis, msg: &Message) -> Vec<Value> {
    let mut row: Vec<Value> = Vec::with_capacity(12 + POINTS.len() + STAGES.len());
    row.extend([
        a.conns[msg.conn].id.into(),
        match msg.dir {
            Dir::Forward => "forward",
            Dir::Backward => "backward",
        }
        .into(),
        match msg.kind {
            MsgKind::Smc => "smc",
            MsgKind::Fallback => "fallback",
            MsgKind::RxOnly => "rx_only",
        }
        .into(),
        msg.len.into(),
        msg.start.into(),
        msg.end.into(),
        msg.cdc_seqno.into(),
        (!msg.incomplete()).into(),
        gap::names(msg.gaps).join("|").into(),
        msg.latency().into(),
        basis(msg).into(),
        msg.blocking_stage().map(|b| b.0).into(),
    ]);
    row.extend(
        msg.points
            .iter()
            .map(|p| p.map(|t| t.saturating_sub(a.t0)).into()),
    );
    row.extend(msg.stages.iter().map(|s| Value::from(*s)));
    row
}

/// Columns of the connections table.
pub fn connection_columns() -> Vec<Column> {
    use Kind::*;
    vec![
        col("id", Int, false),
        col("mode", Text, false),
        col("client", Text, true),
        col("server", Text, true),
        col("recordings", Text, false),
        col("pids", Text, false),
        col("comms", Text, false),
        col("fallback_code", Code, true),
        col("fallback_name", Text, true),
        col("messages_fwd", Int, false),
        col("messages_bwd", Int, false),
        col("bytes_fwd", Int, false),
        col("bytes_bwd", Int, false),
        col("incomplete", Int, false),
        col("latency_basis", Text, false),
        col("latency_p50_ns", Int, true),
        col("latency_p99_ns", Int, true),
        col("dominant_stage", Text, true),
        col("handshake_ns", Int, true),
        col("first_data_ns", Int, true),
        col("local_token", Int, true),
        col("peer_token", Int, true),
        col("qpn", Int, true),
        col("peer_qpn", Int, true),
        col("ibname", Text, true),
        col("sndbuf_len", Int, true),
        col("rmb_len", Int, true),
        col("peer_rmbe_size", Int, true),
    ]
}

/// One row of the connections table; per-side values are `|`-separated,
/// the tokens, QP and buffer sizes are the first side's.
pub fn connection_row(x: &ConnReport) -> Vec<Value> {
    let first = x.sides.first();
    let join =
        |f: &dyn Fn(&SideReport) -> String| x.sides.iter().map(f).collect::<Vec<_>>().join("|");
    vec![
        x.id.into(),
        x.mode.label().into(),
        x.client.clone().into(),
        x.server.clone().into(),
        join(&|s| s.recording.to_string()).into(),
        join(&|s| s.pid.to_string()).into(),
        join(&|s| s.comm.clone()).into(),
        x.fallback.as_ref().map(|f| f.code).into(),
        x.fallback.as_ref().map(|f| f.name.clone()).into(),
        x.messages_fwd.into(),
        x.messages_bwd.into(),
        x.bytes_fwd.into(),
        x.bytes_bwd.into(),
        x.incomplete.into(),
        x.latency_basis.into(),
        x.latency_p50_ns.into(),
        x.latency_p99_ns.into(),
        x.dominant_stage.into(),
        x.handshake.as_ref().and_then(|h| h.total_ns).into(),
        x.handshake.as_ref().and_then(|h| h.first_data_ns).into(),
        first.and_then(|s| s.local_token).into(),
        first.and_then(|s| s.peer_token).into(),
        first.and_then(|s| s.qpn).into(),
        first.and_then(|s| s.peer_qpn).into(),
        first.and_then(|s| s.ibname.clone()).into(),
        first.map(|s| s.sndbuf_len).into(),
        first.map(|s| s.rmb_len).into(),
        first.map(|s| s.peer_rmbe_size).into(),
    ]
}

/// Columns of the stages table.
pub fn stage_columns() -> Vec<Column> {
    [
        "stage", "count", "mean_ns", "min_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns",
    ]
    .iter()
    .map(|n| col(n, if *n == "stage" { Kind::Text } else { Kind::Int }, false))
    .collect()
}

/// The stages table of a finished report (complete messages only).
pub fn stage_rows(r: &Report) -> Vec<Vec<Value>> {
    r.stages
        .iter()
        .map(|st| {
            let x = &st.summary;
            vec![
                st.stage.into(),
                x.count.into(),
                x.mean_ns.into(),
                x.min_ns.into(),
                x.p50_ns.into(),
                x.p90_ns.into(),
                x.p99_ns.into(),
                x.p999_ns.into(),
                x.max_ns.into(),
            ]
        })
        .collect()
}

/// Check a row against its columns (a programming error in the row
/// builders would otherwise shift every later column).
fn check_row(path: &Path, columns: &[Column], row: &[Value]) -> Result<(), String> {
    if row.len() != columns.len() {
        return Err(format!(
            "{}: internal error: row of {} values for {} columns",
            path.display(),
            row.len(),
            columns.len()
        ));
    }
    for (c, v) in columns.iter().zip(row) {
        let ok = match v {
            Value::Null => c.nullable,
            Value::Int(_) => matches!(c.kind, Kind::Int | Kind::Code),
            Value::Text(_) => c.kind == Kind::Text,
            Value::Bool(_) => c.kind == Kind::Bool,
        };
        if !ok {
            return Err(format!(
                "{}: internal error: value {v:?} does not fit column {} ({:?})",
                path.display(),
                c.name,
                c.kind
            ));
        }
    }
    Ok(())
}

/// Rows per Parquet row group unless `--row-group-rows` says otherwise:
/// large enough for engines to scan in parallel, small enough to buffer
/// (about 20 MB for the messages table).
pub const DEFAULT_ROW_GROUP_ROWS: usize = 65_536;

/// An output format of `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// Parquet with at most this many rows per row group.
    Parquet {
        row_group_rows: usize,
        compression: parquet::Compression,
    },
}

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet { .. } => "parquet",
        }
    }
}

/// One table being written in one format.
pub trait TableWriter {
    fn row(&mut self, row: &[Value]) -> Result<(), String>;
    /// Flush everything and close the file.
    fn finish(self: Box<Self>) -> Result<(), String>;
}

/// Create `dir/<table>.<ext>` in `format`.
pub fn open_table(
    format: Format,
    dir: &Path,
    table: &str,
    columns: Vec<Column>,
) -> Result<Box<dyn TableWriter>, String> {
    let path = dir.join(format!("{table}.{}", format.ext()));
    Ok(match format {
        Format::Csv => Box::new(CsvTable::create(path, columns)?),
        Format::Parquet {
            row_group_rows,
            compression,
        } => Box::new(parquet::ParquetTable::create(
            path,
            table,
            columns,
            row_group_rows,
            compression,
        )?),
    })
}

/// A CSV table: a header line with the column names, then one line per row.
/// Cells are written field by field (integers through `itoa`): building a
/// `String` per cell was half of `export --csv`'s instructions.
struct CsvTable {
    path: PathBuf,
    columns: Vec<Column>,
    out: csv::Writer<std::fs::File>,
}

impl CsvTable {
    fn create(path: PathBuf, columns: Vec<Column>) -> Result<CsvTable, String> {
        let mut out = csv::Writer::from_path(&path)
            .map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
        out.write_record(columns.iter().map(|c| &c.name))
            .map_err(|e| format!("{}: write failed: {e}", path.display()))?;
        Ok(CsvTable { path, columns, out })
    }
}

impl TableWriter for CsvTable {
    fn row(&mut self, row: &[Value]) -> Result<(), String> {
        check_row(&self.path, &self.columns, row)?;
        let mut num = itoa::Buffer::new();
        for (c, v) in self.columns.iter().zip(row) {
            let written = match v {
                Value::Null => self.out.write_field(b""),
                Value::Int(i) if c.kind == Kind::Code => {
                    self.out.write_field(format!("{:#010x}", *i as u32))
                }
                Value::Int(i) => self.out.write_field(num.format(*i)),
                Value::Text(s) => self.out.write_field(s.as_bytes()),
                Value::Bool(b) => self.out.write_field(if *b { "true" } else { "false" }),
            };
            written.map_err(|e| format!("{}: write failed: {e}", self.path.display()))?;
        }
        // An empty record ends the one written field by field.
        self.out
            .write_record(None::<&[u8]>)
            .map_err(|e| format!("{}: write failed: {e}", self.path.display()))
    }

    fn finish(mut self: Box<Self>) -> Result<(), String> {
        self.out
            .flush()
            .map_err(|e| format!("{}: write failed: {e}", self.path.display()))
    }
}

/// Streams the messages table into every output while the report is
/// accumulated; `finish` writes the connections and stages tables.
pub struct ExportSink {
    pub report: ReportSink,
    outputs: Vec<(Format, PathBuf)>,
    messages: Vec<Box<dyn TableWriter>>,
    error: Option<String>,
}

impl ExportSink {
    /// Create every output directory and start its messages table.
    pub fn create(
        outputs: Vec<(Format, PathBuf)>,
        report: ReportSink,
    ) -> Result<ExportSink, String> {
        let mut messages = Vec::new();
        for (format, dir) in &outputs {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
            messages.push(open_table(*format, dir, "messages", message_columns())?);
        }
        Ok(ExportSink {
            report,
            outputs,
            messages,
            error: None,
        })
    }

    /// Finish the messages tables, write the other two; returns the report
    /// and the files written.
    pub fn finish(
        mut self,
        a: &Analysis,
        warnings: &[Vec<String>],
    ) -> Result<(Report, Vec<String>), String> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        for m in self.messages {
            m.finish()?;
        }
        let r = self.report.finish(a, warnings);
        let mut files = Vec::new();
        for (format, dir) in &self.outputs {
            let mut c = open_table(*format, dir, "connections", connection_columns())?;
            for x in &r.connections {
                c.row(&connection_row(x))?;
            }
            c.finish()?;
            let mut s = open_table(*format, dir, "stages", stage_columns())?;
            for row in stage_rows(&r) {
                s.row(&row)?;
            }
            s.finish()?;
            files.extend(TABLES.iter().map(|t| {
                dir.join(format!("{t}.{}", format.ext()))
                    .display()
                    .to_string()
            }));
        }
        Ok((r, files))
    }
}

impl Sink for ExportSink {
    fn begin(&mut self, a: &Analysis) {
        self.report.begin(a);
    }

    fn message(&mut self, a: &Analysis, msg: Message) {
        if self.error.is_none() && self.report.selected(a, &msg) {
            let row = message_row(a, &msg);
            for m in &mut self.messages {
                if let Err(e) = m.row(&row) {
                    self.error = Some(e);
                    break;
                }
            }
        }
        self.report.message(a, msg);
    }
}
