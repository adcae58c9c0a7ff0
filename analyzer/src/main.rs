//! `smc-analyze`: the command line of the offline analyzer. Parses flags,
//! loads recordings, runs the analysis and prints one of its outputs. Every
//! failure reaches the user as one line on stderr and a distinct exit code
//! (the format crate's codes for unreadable recordings; see docs/analyzer.md).

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use smc_analyze::{duration, export, gate, html, info, input, join, pcapng, plot, report};

/// Exit code when an output (stdout, CSV directory) cannot be written.
const EXIT_OUTPUT: u8 = 3;
/// Exit code of `check` when a rule is violated.
const EXIT_CHECK_FAILED: u8 = 1;

#[derive(Parser)]
#[command(
    name = "smc-analyze",
    version,
    about = "Analyze smctrace recordings of SMC (AF_SMC) connections"
)]
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
    /// Write CSV tables (--csv DIR), Parquet tables (--parquet DIR) and/or a pcapng for Wireshark (--pcapng OUT).
    #[command(group(clap::ArgGroup::new("out").required(true).multiple(true).args(["csv", "parquet", "pcapng"])))]
    Export {
        /// Directory to write connections.csv, messages.csv and stages.csv into (created if missing).
        #[arg(long, value_name = "DIR")]
        csv: Option<PathBuf>,
        /// Directory to write connections.parquet, messages.parquet and stages.parquet into (created if missing).
        #[arg(long, value_name = "DIR")]
        parquet: Option<PathBuf>,
        /// Rows per Parquet row group (memory use grows with it).
        #[arg(long, value_name = "N", default_value_t = export::DEFAULT_ROW_GROUP_ROWS as u32,
              value_parser = clap::value_parser!(u32).range(1..), requires = "parquet")]
        row_group_rows: u32,
        /// Compression of the Parquet pages.
        #[arg(
            long,
            value_name = "CODEC",
            value_enum,
            default_value = "zstd",
            requires = "parquet"
        )]
        parquet_compression: export::parquet::Compression,
        /// Write the CLC and CDC messages as packets Wireshark decodes (see docs/analyzer.md).
        #[arg(long, value_name = "OUT")]
        pcapng: Option<PathBuf>,
        #[command(flatten)]
        sel: Selection,
    },
    /// Write SVG charts (stage CDF, stage breakdown, latency over time, handshake waterfall) into DIR.
    Plot {
        /// Directory for the .svg files (created if missing).
        #[arg(long, value_name = "DIR", required = true)]
        out: PathBuf,
        /// Latency from which a message counts as slow in the time chart (default: the p99).
        #[arg(long, value_parser = parse_duration)]
        slow: Option<u64>,
        #[command(flatten)]
        sel: Selection,
    },
    /// Write one self-contained HTML report (tables and inline SVG charts).
    Html {
        /// The .html file to write.
        #[arg(value_name = "OUT.html")]
        out: PathBuf,
        /// How many of the slowest messages to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Latency from which a message counts as slow in the time chart (default: the p99).
        #[arg(long, value_parser = parse_duration)]
        slow: Option<u64>,
        #[command(flatten)]
        sel: Selection,
    },
    /// CI gate: exit 0 if every rule holds, 1 with one line per violated rule (see docs/ci.md).
    Check {
        /// Upper bound STAGE.STAT=DURATION, e.g. e2e.p99=200us (repeatable). STAT: mean, min, p50, p90, p99, p99.9, max.
        #[arg(long = "max", value_name = "RULE", value_parser = gate::parse_max)]
        max: Vec<gate::MaxRule>,
        /// Fail when any connection fell back to TCP.
        #[arg(long)]
        fail_on_fallback: bool,
        /// Fail when events were lost (ring buffer full, unreadable chunks, or a recording not closed cleanly).
        #[arg(long)]
        fail_on_loss: bool,
        /// Fail when more than PCT percent of the messages are incomplete.
        #[arg(long, value_name = "PCT", value_parser = gate::parse_pct)]
        fail_on_incomplete: Option<f64>,
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
        Failure {
            code: e.exit_code().clamp(1, 255) as u8,
            msg: e.to_string(),
        }
    }
}

/// Report and the selected messages (for the charts).
fn collect(
    sel: &Selection,
    top: usize,
    slow: Option<u64>,
) -> Result<(report::Report, join::Analysis, Vec<join::Message>), Failure> {
    let mut sink = plot::Collector {
        report: report::ReportSink::new(options(sel, top, slow)),
        messages: Vec::new(),
    };
    let (a, warnings) = analyze(sel, &mut sink)?;
    let r = sink.report.finish(&a, &warnings);
    Ok((r, a, sink.messages))
}

/// Open every recording and run both passes into `sink`.
fn analyze(
    sel: &Selection,
    sink: &mut dyn join::Sink,
) -> Result<(join::Analysis, Vec<Vec<String>>), Failure> {
    let mut inputs = Vec::new();
    let mut warnings = Vec::new();
    let bars = indicatif::MultiProgress::new();
    for (i, f) in sel.files.iter().enumerate() {
        let w = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        inputs.push(input::open(f, i, Some(&bars), w.clone())?);
        warnings.push(w);
    }
    let a = join::run_checked(inputs, sel.reorder_window, sink).map_err(|e| Failure {
        code: join::EXIT_NO_COMMON_CONNECTION,
        msg: e.to_string(),
    })?;
    Ok((
        a,
        warnings
            .into_iter()
            .map(|w| std::mem::take(&mut *w.lock().unwrap_or_else(|e| e.into_inner())))
            .collect(),
    ))
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
        Err(e) => Err(Failure {
            code: EXIT_OUTPUT,
            msg: format!("stdout: {e}"),
        }),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.cmd {
        Cmd::Info { file } => print(&info::info(&file)?),
        Cmd::Report {
            sel,
            json,
            top,
            slow,
        } => {
            let mut sink = report::ReportSink::new(options(&sel, top, slow));
            let (a, warnings) = analyze(&sel, &mut sink)?;
            let r = sink.finish(&a, &warnings);
            if json {
                let mut s = serde_json::to_string_pretty(&r).map_err(|e| Failure {
                    code: EXIT_OUTPUT,
                    msg: format!("JSON encoding failed: {e}"),
                })?;
                s.push('\n');
                print(&s)
            } else {
                print(&report::render_text(&r))
            }
        }
        Cmd::Export {
            csv,
            parquet,
            row_group_rows,
            parquet_compression,
            pcapng: pcap,
            sel,
        } => {
            let out = |msg| Failure {
                code: EXIT_OUTPUT,
                msg,
            };
            let mut text = String::new();
            let mut tables = Vec::new();
            if let Some(dir) = csv {
                tables.push((export::Format::Csv, dir));
            }
            if let Some(dir) = parquet {
                tables.push((
                    export::Format::Parquet {
                        row_group_rows: row_group_rows as usize,
                        compression: parquet_compression,
                    },
                    dir,
                ));
            }
            if !tables.is_empty() {
                let mut sink = export::ExportSink::create(
                    tables,
                    report::ReportSink::new(options(&sel, 0, None)),
                )
                .map_err(out)?;
                let (a, warnings) = analyze(&sel, &mut sink)?;
                let (_, files) = sink.finish(&a, &warnings).map_err(out)?;
                for w in warnings.iter().flatten() {
                    eprintln!("smc-analyze: warning: {w}");
                }
                text.push_str(&format!("wrote {}\n", files.join(", ")));
            }
            if let Some(pcap) = pcap {
                let mut msgs: Vec<join::Message> = Vec::new();
                let (a, _) = analyze(&sel, &mut msgs)?;
                let s = pcapng::write(&a, &msgs, &sel.files, &pcap, sel.conn).map_err(out)?;
                text.push_str(&format!(
                    "wrote {}: {} interfaces, {} CLC, {} CDC, {} RDMA write, {} SMC-D packets{}\n",
                    pcap.display(),
                    s.interfaces,
                    s.clc,
                    s.cdc,
                    s.writes,
                    s.smcd,
                    if s.skipped > 0 {
                        format!(
                            " ({} events without a known 4-tuple or link skipped)",
                            s.skipped
                        )
                    } else {
                        String::new()
                    }
                ));
            }
            print(&text)
        }
        Cmd::Plot { out, slow, sel } => {
            let fail = |msg| Failure {
                code: EXIT_OUTPUT,
                msg,
            };
            let (r, a, msgs) = collect(&sel, 0, slow)?;
            let charts = plot::all(&msgs, &r, &a, slow).map_err(fail)?;
            let files = plot::write(&out, &charts).map_err(fail)?;
            print(&format!("wrote {}\n", files.join(", ")))
        }
        Cmd::Html {
            out,
            top,
            slow,
            sel,
        } => {
            let fail = |msg| Failure {
                code: EXIT_OUTPUT,
                msg,
            };
            let (r, a, msgs) = collect(&sel, top, slow)?;
            let charts = plot::all(&msgs, &r, &a, slow).map_err(fail)?;
            std::fs::write(&out, html::render(&r, &charts))
                .map_err(|e| fail(format!("{}: write failed: {e}", out.display())))?;
            print(&format!("wrote {}\n", out.display()))
        }
        Cmd::Check {
            max,
            fail_on_fallback,
            fail_on_loss,
            fail_on_incomplete,
            sel,
        } => {
            if max.is_empty() && !fail_on_fallback && !fail_on_loss && fail_on_incomplete.is_none()
            {
                return Err(Failure {
                    code: 2,
                    msg: "check needs at least one rule (--max, --fail-on-fallback, --fail-on-loss, --fail-on-incomplete)".into(),
                });
            }
            let mut sink = report::ReportSink::new(options(&sel, 0, None));
            let (a, warnings) = analyze(&sel, &mut sink)?;
            let r = sink.finish(&a, &warnings);
            let rules = gate::Rules {
                max,
                fail_on_fallback,
                fail_on_loss,
                fail_on_incomplete_pct: fail_on_incomplete,
            };
            let (bad, ok) = gate::evaluate(&r, &rules);
            let mut text = String::new();
            for l in &ok {
                text.push_str(&format!("ok   {l}\n"));
            }
            for l in &bad {
                text.push_str(&format!("FAIL {l}\n"));
            }
            if bad.is_empty() {
                text.push_str(&format!("check passed: {} rule(s) hold\n", ok.len()));
                print(&text)
            } else {
                print(&text)?;
                Err(Failure {
                    code: EXIT_CHECK_FAILED,
                    msg: format!(
                        "check failed: {} of {} rule(s) violated",
                        bad.len(),
                        bad.len() + ok.len()
                    ),
                })
            }
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
