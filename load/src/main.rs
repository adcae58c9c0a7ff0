//! `smc-load` command line: `server` and `client` subcommands over the library in lib.rs.
//! Flags and the output format are documented in docs/tools.md.

#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use smc_load::{run_client, ClientOpts, Error, Mode, Proto, Server, ServerOpts};

#[derive(Parser)]
#[command(
    name = "smc-load",
    version,
    about = "AF_SMC / AF_INET workload: ping-pong, bulk, short connections"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve every mode; one thread per connection.
    Server {
        /// Address to listen on, e.g. 0.0.0.0:5000 or [::]:5000.
        #[arg(long)]
        listen: SocketAddr,
        /// Use AF_INET/AF_INET6 instead of AF_SMC.
        #[arg(long)]
        tcp: bool,
        /// Exit after N connections have been served (default: serve forever).
        #[arg(long, value_name = "N")]
        exit_after: Option<u64>,
        /// Drop a connection that sends nothing for SECS seconds (0: wait forever).
        #[arg(long, value_name = "SECS", default_value_t = 60.0)]
        idle_timeout: f64,
    },
    /// Run a workload against a server.
    Client {
        /// Server address, e.g. 10.0.0.1:5000.
        #[arg(long)]
        connect: SocketAddr,
        /// Workload mode.
        #[arg(long, value_enum)]
        mode: Mode,
        /// Messages (pingpong, default 1000), writes (bulk, default 100) or connections
        /// (shortconn, default 100), split over --conns.
        #[arg(long)]
        count: Option<u64>,
        /// Message/write size in bytes (default 64; bulk 1048576).
        #[arg(long)]
        size: Option<u32>,
        /// Bulk only: write for SECS seconds instead of --count writes.
        #[arg(long, value_name = "SECS")]
        duration: Option<f64>,
        /// Parallel connections (one thread each).
        #[arg(long, default_value_t = 1)]
        conns: u32,
        /// Use AF_INET/AF_INET6 instead of AF_SMC.
        #[arg(long)]
        tcp: bool,
        /// Print one JSON object instead of the summary line.
        #[arg(long)]
        json: bool,
        /// Fail when the server sends nothing for SECS seconds (0: wait forever).
        #[arg(long, value_name = "SECS", default_value_t = 60.0)]
        idle_timeout: f64,
        /// Pingpong only: sleep SECS between sending each message and reading its echo
        /// (a slow reader; the RTT includes the delay).
        #[arg(long, value_name = "SECS")]
        read_delay: Option<f64>,
    },
}

fn proto(tcp: bool) -> Proto {
    if tcp {
        Proto::Tcp
    } else {
        Proto::Smc
    }
}

/// A non-negative number of seconds from the command line.
fn secs(flag: &str, v: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| Error::Protocol(format!("{flag} must be a non-negative number of seconds")))
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.cmd {
        Cmd::Server {
            listen,
            tcp,
            exit_after,
            idle_timeout,
        } => {
            let idle_timeout = Some(secs("--idle-timeout", idle_timeout)?);
            let srv = Server::bind(ServerOpts {
                listen,
                proto: proto(tcp),
                exit_after,
                idle_timeout,
            })?;
            let addr = srv.local_addr()?;
            eprintln!(
                "smc-load server: listening on {addr} ({})",
                if tcp { "TCP" } else { "SMC" }
            );
            let s = srv.run()?;
            eprintln!(
                "smc-load server: served {} connection(s), {} failed, {} bytes received",
                s.connections, s.failed, s.bytes_in
            );
            if s.failed > 0 {
                return Err(Error::Protocol(format!(
                    "{} connection(s) failed",
                    s.failed
                )));
            }
            Ok(())
        }
        Cmd::Client {
            connect,
            mode,
            count,
            size,
            duration,
            conns,
            tcp,
            json,
            idle_timeout,
            read_delay,
        } => {
            let idle_timeout = Some(secs("--idle-timeout", idle_timeout)?);
            if read_delay.is_some() && mode != Mode::Pingpong {
                return Err(Error::Protocol(
                    "--read-delay applies to --mode pingpong only".into(),
                ));
            }
            let read_delay = read_delay.map(|d| secs("--read-delay", d)).transpose()?;
            if duration.is_some() && mode != Mode::Bulk {
                return Err(Error::Protocol(
                    "--duration applies to --mode bulk only".into(),
                ));
            }
            let duration = match duration {
                Some(s) if !(s > 0.0 && s.is_finite()) => {
                    return Err(Error::Protocol(
                        "--duration must be a positive number of seconds".into(),
                    ))
                }
                Some(s) => Some(Duration::from_secs_f64(s)),
                None => None,
            };
            if conns == 0 {
                return Err(Error::Protocol("--conns must be at least 1".into()));
            }
            let o = ClientOpts {
                connect,
                proto: proto(tcp),
                mode,
                count: count.unwrap_or(if mode == Mode::Pingpong { 1000 } else { 100 }),
                size: size.unwrap_or(if mode == Mode::Bulk { 1 << 20 } else { 64 }),
                duration,
                conns,
                idle_timeout,
                read_delay,
            };
            let r = run_client(&o)?;
            let line = if json {
                serde_json::to_string(&r).map_err(|e| Error::Protocol(e.to_string()))?
            } else {
                r.summary()
            };
            // Not println!: a closed stdout must be an error line, not a panic. SIGPIPE stays
            // ignored (Rust's default) so a vanished socket peer is an EPIPE error, too.
            writeln!(std::io::stdout().lock(), "{line}").map_err(|err| Error::Io {
                what: "write result to stdout".into(),
                err,
            })
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smc-load: {e}");
            ExitCode::FAILURE
        }
    }
}
