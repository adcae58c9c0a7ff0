//! smc-record: records what the kernel's SMC stack does (handshake, data path
//! of every message, fallbacks, link failures) into a `.smctrace` file, using
//! eBPF programs on the smc module (recorder-ebpf/). It records; it does not
//! analyze (that is smc-analyze) and it does not define the file format (that
//! is the smctrace-format crate). See docs/recorder.md.

#[cfg(test)]
mod c_layout;
mod conns;
mod dump;
mod fentry;
mod flight;
mod loader;
mod offsets;
mod output;
mod pipeline;
mod privs;
mod probes;
mod record;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes of smc-record (documented in docs/recorder.md). Format errors
/// keep the format crate's codes (20-27); `record -- CMD` exits with CMD's status.
pub mod exit {
    pub const ERROR: u8 = 1;
    pub const PRIVILEGES: u8 = 10;
    pub const NO_BTF: u8 = 11;
    pub const NO_SMC: u8 = 12;
    pub const BPF: u8 = 13;
    /// The output file system is full (ENOSPC/EDQUOT): recording stopped, the
    /// file holds every chunk completed before (valid, not closed cleanly).
    pub const DISK_FULL: u8 = 14;
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: u8, error: anyhow::Error) -> Failure {
        Failure { code, error }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        let disk_full = error.chain().any(|e| {
            let os = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.raw_os_error())
                .or_else(|| match e.downcast_ref::<smctrace_format::FormatError>() {
                    Some(smctrace_format::FormatError::Io { source, .. }) => source.raw_os_error(),
                    _ => None,
                });
            matches!(os, Some(libc::ENOSPC) | Some(libc::EDQUOT))
        });
        let code = if disk_full {
            exit::DISK_FULL
        } else {
            error
                .chain()
                .find_map(|e| e.downcast_ref::<smctrace_format::FormatError>())
                .map(|f| f.exit_code() as u8)
                .unwrap_or(exit::ERROR)
        };
        Failure { code, error }
    }
}

#[derive(Parser)]
#[command(
    name = "smc-record",
    version,
    about = "Record the SMC (AF_SMC) handshake and data path with eBPF into a .smctrace file"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record until Ctrl-C/SIGTERM, --duration, --max-size (without --rotate), or the end of `-- CMD ARGS`.
    Record(Box<record::RecordArgs>),
    /// List every probe: hook, stage, whether it attaches on this kernel (and why
    /// not), and what the analysis lacks without it. Attaches for real when run as root.
    Probes {
        /// Only check hooks and struct members in BTF; do not load anything.
        #[arg(long)]
        dry_run: bool,
        /// Check another kernel: a directory holding that kernel's `vmlinux.btf`
        /// and `smc.btf` (raw .BTF sections). Programs are still loaded (verifier check)
        /// unless --dry-run; attaching then fails where the kernel differs.
        #[arg(long, value_name = "DIR")]
        btf: Option<PathBuf>,
    },
    /// Live table of SMC connections and their latency metrics, sorted by anomalies:
    /// the kernel's SMC_DIAG_LATENCY where it exists, else the BPF monitor.
    Conns(conns::ConnsArgs),
    /// Check a recording: metadata, probes, per-kind event counts, losses,
    /// and the connection records (identity, CLC, fallbacks).
    Dump {
        file: PathBuf,
        /// Also print every record, one line each.
        #[arg(long)]
        all: bool,
    },
}

/// The error chain as one line; a cause whose text the line already holds
/// (errors that print their own source) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Record(_)) {
        // Text commands piped into `head` end quietly, like other CLI tools,
        // instead of panicking in println! on EPIPE.
        // SAFETY: resetting a signal disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let res = match cli.cmd {
        Cmd::Record(args) => record::run(*args),
        Cmd::Probes { dry_run, btf } => record::probes(dry_run, btf.as_deref()).map(|_| 0),
        Cmd::Dump { file, all } => dump::run(&file, all).map(|_| 0),
        Cmd::Conns(args) => conns::run(args),
    };
    match res {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            let what = if f.code == exit::DISK_FULL {
                "output file system full: "
            } else {
                ""
            };
            eprintln!("smc-record: {what}{}", one_line(&f.error));
            ExitCode::from(f.code)
        }
    }
}
