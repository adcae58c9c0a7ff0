//! `smc-analyze`: the command line of the offline analyzer. Parses flags,
//! loads recordings, runs the analysis and prints one of its outputs. Every
//! failure reaches the user as one line on stderr and a distinct exit code
//! (the format crate's codes for unreadable recordings; see docs/analyzer.md).

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use smc_analyze::{duration, export, input, join, report};

/// Exit code when an output (stdout, CSV directory) cannot be written.
const EXIT_OUTPUT: u8 = 3;

#[derive(Parser)]
#[command(name = "smc-analyze", version, about = "Analyze smctrace recordings of SMC (AF_SMC) connections")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show a recording's header, metadata, probes, chunks, lost events and close status.
    Info {
        /// The .smctrace file.
        file: PathBuf,
    },
    /// Connections, stage latencies and the slowest messages of one or more recordings.
    Report {
        #[command(flatten)]
        sel: Selection,
        /// Print the report as JSON (schema smc-analyze/report/1, see docs/analyzer.md).
        #[arg(long)]
        json: bool,
        /// How many of the slowest messages to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Also list every message whose latency is at least this (e.g. 200us, 1.5ms).
        #[arg(long, value_parser = parse_duration)]
        slow: Option<u64>,
    },
    /// Write connections.csv, messages.csv and stages.csv.
    Export {
        /// Directory to write the CSV files into (created if missing).
        #[arg(long, value_name = "DIR", required = true)]
        csv: PathBuf,
        #[command(flatten)]
        sel: Selection,
    },
}

#[derive(Args)]
struct Selection {
    /// Recordings: one, or the recordings of both peers (the first is the reference clock).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Only this connection (the id shown in the report).
    #[arg(long)]
    conn: Option<u32>,
    /// Only connections with a side in this process (tgid).
    #[arg(long)]
    pid: Option<u32>,
    /// Only connections with a side in a process of this name.
    #[arg(long)]
    comm: Option<String>,
    /// Only connections with this local or remote TCP port.
    #[arg(long)]
    port: Option<u16>,
    /// Only messages that start at or after this time since the report start (e.g. 1.5s).
    #[arg(long, value_parser = parse_duration)]
    from: Option<u64>,
    /// Only messages that start at or before this time since the report start.
    #[arg(long, value_parser = parse_duration)]
    to: Option<u64>,
    /// Reorder window for events that reach the file out of time order.
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    reorder_window: u64,
}

fn parse_duration(s: &str) -> Result<u64, String> {
    duration::parse(s)
}

struct Failure {
    code: u8,
    msg: String,
}

impl From<smctrace_format::FormatError> for Failure {
    fn from(e: smctrace_format::FormatError) -> Failure {
        Failure { code: e.exit_code().clamp(1, 255) as u8, msg: e.to_string() }
    }
}

/// Open every recording and run both passes into `sink`.
fn analyze(sel: &Selection, sink: &mut dyn join::Sink) -> Result<(join::Analysis, Vec<Vec<String>>), Failure> {
    let mut inputs = Vec::new();
    let mut warnings = Vec::new();
    let bars = indicatif::MultiProgress::new();
    for (i, f) in sel.files.iter().enumerate() {
        let w = Rc::new(RefCell::new(Vec::new()));
        inputs.push(input::open(f, i, Some(&bars), w.clone())?);
        warnings.push(w);
    }
    let a = join::run(inputs, sel.reorder_window, sink);
    Ok((a, warnings.into_iter().map(|w| w.take()).collect()))
}

fn options(sel: &Selection, top: usize, slow: Option<u64>) -> report::Options {
    report::Options {
        filter: report::Filter {
            conn: sel.conn,
            pid: sel.pid,
            comm: sel.comm.clone(),
            port: sel.port,
            from_ns: sel.from,
            to_ns: sel.to,
        },
        top,
        slow_ns: slow,
    }
}

fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A reader that went away (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure { code: EXIT_OUTPUT, msg: format!("stdout: {e}") }),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.cmd {
        Cmd::Info { file } => print(&input::info(&file)?),
        Cmd::Report { sel, json, top, slow } => {
            let mut sink = report::ReportSink::new(options(&sel, top, slow));
            let (a, warnings) = analyze(&sel, &mut sink)?;
            let r = sink.finish(&a, &warnings);
            if json {
                let mut s = serde_json::to_string_pretty(&r)
                    .map_err(|e| Failure { code: EXIT_OUTPUT, msg: format!("JSON encoding failed: {e}") })?;
                s.push('\n');
                print(&s)
            } else {
                print(&report::render_text(&r))
            }
        }
        Cmd::Export { csv, sel } => {
            let out = |msg| Failure { code: EXIT_OUTPUT, msg };
            let mut sink = export::CsvSink::create(&csv, report::ReportSink::new(options(&sel, 0, None))).map_err(out)?;
            let (a, warnings) = analyze(&sel, &mut sink)?;
            let (_, files) = sink.finish(&a, &warnings).map_err(out)?;
            for w in warnings.iter().flatten() {
                eprintln!("smc-analyze: warning: {w}");
            }
            print(&format!("wrote {}\n", files.join(", ")))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("smc-analyze: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}
