//! `smc-analyze export --csv DIR`: the report's tables as CSV for
//! spreadsheets and SQL engines: connections.csv (one row per connection),
//! messages.csv (one row per message: every point and stage), stages.csv
//! (the per-stage statistics). Columns are documented in docs/analyzer.md.
//! Parquet is deferred (it needs polars/arrow; see docs).

use std::path::{Path, PathBuf};

use crate::join::{Analysis, Message, Sink, POINTS, STAGES};
use crate::model::gap;
use crate::report::{message_report, Report, ReportSink};

fn w(dir: &Path, name: &str) -> Result<csv::Writer<std::fs::File>, String> {
    let p = dir.join(name);
    csv::Writer::from_path(&p).map_err(|e| format!("{}: cannot create: {e}", p.display()))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Streams messages.csv while the report is accumulated; `finish` writes
/// connections.csv and stages.csv.
pub struct CsvSink {
    pub report: ReportSink,
    dir: PathBuf,
    messages: csv::Writer<std::fs::File>,
    error: Option<String>,
}

impl CsvSink {
    /// Create `dir` and start messages.csv.
    pub fn create(dir: &Path, report: ReportSink) -> Result<CsvSink, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
        let mut m = w(dir, "messages.csv")?;
        let mut head: Vec<String> = [
            "conn", "dir", "kind", "len", "stream_start", "stream_end", "cdc_seqno", "complete", "gaps", "latency_ns",
            "latency_basis", "blocking_stage",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        head.extend(POINTS.iter().map(|p| format!("t_{p}_ns")));
        head.extend(STAGES.iter().map(|s| format!("{}_ns", s.name)));
        m.write_record(&head).map_err(|e| format!("{}: write failed: {e}", dir.join("messages.csv").display()))?;
        Ok(CsvSink { report, dir: dir.to_path_buf(), messages: m, error: None })
    }

    /// Finish messages.csv, write the other two files; returns the report and the file names.
    pub fn finish(mut self, a: &Analysis, warnings: &[Vec<String>]) -> Result<(Report, Vec<String>), String> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.messages.flush().map_err(|e| format!("{}: {e}", self.dir.join("messages.csv").display()))?;
        let r = self.report.finish(a, warnings);
        write_tables(&self.dir, &r)?;
        Ok((r, ["connections.csv", "messages.csv", "stages.csv"].iter().map(|n| self.dir.join(n).display().to_string()).collect()))
    }
}

impl Sink for CsvSink {
    fn begin(&mut self, a: &Analysis) {
        self.report.begin(a);
    }

    fn message(&mut self, a: &Analysis, msg: Message) {
        if self.error.is_none() && self.report.selected(a, &msg) {
            let mr = message_report(a, &msg);
            let mut row = vec![
                mr.conn.to_string(),
                format!("{:?}", mr.dir).to_lowercase(),
                serde_json::to_value(mr.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                mr.len.to_string(),
                mr.stream_start.to_string(),
                mr.stream_end.to_string(),
                opt(mr.cdc_seqno),
                mr.complete.to_string(),
                gap::names(msg.gaps).join("|"),
                mr.latency_ns.to_string(),
                mr.latency_basis.to_string(),
                opt(mr.blocking_stage),
            ];
            row.extend(msg.points.iter().map(|p| opt(p.map(|t| t.saturating_sub(a.t0)))));
            row.extend(msg.stages.iter().map(|s| opt(*s)));
            if let Err(e) = self.messages.write_record(&row) {
                self.error = Some(format!("{}: write failed: {e}", self.dir.join("messages.csv").display()));
            }
        }
        self.report.message(a, msg);
    }
}

/// Write connections.csv and stages.csv for a finished report.
fn write_tables(dir: &Path, r: &Report) -> Result<(), String> {
    let err = |name: &str, e: csv::Error| format!("{}: write failed: {e}", dir.join(name).display());

    let name = "connections.csv";
    let mut c = w(dir, name)?;
    c.write_record([
        "id", "mode", "client", "server", "recordings", "pids", "comms", "fallback_code", "fallback_name",
        "messages_fwd", "messages_bwd", "bytes_fwd", "bytes_bwd", "incomplete", "latency_basis", "latency_p50_ns",
        "latency_p99_ns", "dominant_stage", "handshake_ns", "first_data_ns", "local_token", "peer_token", "qpn",
        "peer_qpn", "ibname", "sndbuf_len", "rmb_len", "peer_rmbe_size",
    ])
    .map_err(|e| err(name, e))?;
    for x in &r.connections {
        let first = x.sides.first();
        let join = |f: &dyn Fn(&crate::report::SideReport) -> String| x.sides.iter().map(f).collect::<Vec<_>>().join("|");
        c.write_record([
            x.id.to_string(),
            x.mode.label().to_string(),
            x.client.clone().unwrap_or_default(),
            x.server.clone().unwrap_or_default(),
            join(&|s| s.recording.to_string()),
            join(&|s| s.pid.to_string()),
            join(&|s| s.comm.clone()),
            opt(x.fallback.as_ref().map(|f| format!("{:#010x}", f.code))),
            opt(x.fallback.as_ref().map(|f| f.name.clone())),
            x.messages_fwd.to_string(),
            x.messages_bwd.to_string(),
            x.bytes_fwd.to_string(),
            x.bytes_bwd.to_string(),
            x.incomplete.to_string(),
            x.latency_basis.to_string(),
            opt(x.latency_p50_ns),
            opt(x.latency_p99_ns),
            opt(x.dominant_stage),
            opt(x.handshake.as_ref().and_then(|h| h.total_ns)),
            opt(x.handshake.as_ref().and_then(|h| h.first_data_ns)),
            opt(first.and_then(|s| s.local_token)),
            opt(first.and_then(|s| s.peer_token)),
            opt(first.and_then(|s| s.qpn)),
            opt(first.and_then(|s| s.peer_qpn)),
            opt(first.and_then(|s| s.ibname.clone())),
            opt(first.map(|s| s.sndbuf_len)),
            opt(first.map(|s| s.rmb_len)),
            opt(first.map(|s| s.peer_rmbe_size)),
        ])
        .map_err(|e| err(name, e))?;
    }
    c.flush().map_err(|e| format!("{}: {e}", dir.join(name).display()))?;

    let name = "stages.csv";
    let mut s = w(dir, name)?;
    s.write_record(["stage", "count", "mean_ns", "min_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"]).map_err(|e| err(name, e))?;
    for st in &r.stages {
        let x = &st.summary;
        s.write_record([
            st.stage.to_string(),
            x.count.to_string(),
            x.mean_ns.to_string(),
            x.min_ns.to_string(),
            x.p50_ns.to_string(),
            x.p90_ns.to_string(),
            x.p99_ns.to_string(),
            x.p999_ns.to_string(),
            x.max_ns.to_string(),
        ])
        .map_err(|e| err(name, e))?;
    }
    s.flush().map_err(|e| format!("{}: {e}", dir.join(name).display()))?;
    Ok(())
}
