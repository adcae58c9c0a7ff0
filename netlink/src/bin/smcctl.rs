//! `smcctl`: the command line of `smc-netlink` — configure UEIDs and the PNET table, and
//! show SMC statistics, fallback reasons, link groups and sockets (like smc-tools'
//! `smcd`/`smcr`/`smc_pnet`/`smcss`, which Debian does not ship). `--json` output is
//! documented in docs/tools.md.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use smc_netlink as smc;

#[derive(Parser)]
#[command(
    name = "smcctl",
    version,
    about = "Configure and inspect the Linux SMC stack via netlink"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Json {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// User-defined EIDs (needed for SMC-Rv2/SMC-Dv2; both peers need a common one).
    Ueid {
        #[command(subcommand)]
        cmd: UeidCmd,
    },
    /// The PNET table (ties netdevs and RDMA ports together; needed for SMC-R over rxe on 6.1).
    Pnet {
        #[command(subcommand)]
        cmd: PnetCmd,
    },
    /// SMC statistics of this network namespace (GET_STATS), flattened.
    Stats(Json),
    /// Fallback-to-TCP reason counters (GET_FBACK_STATS).
    Fallback(Json),
    /// SMC-R link groups and their links.
    Lgr(Json),
    /// SMC sockets (smc_diag), like smcss.
    Diag(Json),
    /// SMC system information (version, hostname, SEID).
    Info(Json),
    /// What a recording stores as its SMC snapshot (non-zero stats, fallbacks, sockets, links);
    /// parts that could not be read are named under "error", exit status 0.
    Snapshot,
}

#[derive(Subcommand)]
enum UeidCmd {
    /// Add a UEID (upper-cased, blank-padded to 32 bytes; A-Z 0-9 . -).
    Add { name: String },
    /// Remove a UEID.
    Del { name: String },
    /// List the UEIDs.
    List(Json),
    /// Remove all UEIDs.
    Flush,
}

#[derive(Subcommand)]
enum PnetCmd {
    /// Add a PNET table entry for a network device or an RDMA device port.
    Add {
        /// PNET ID (1-16 letters/digits, upper-cased).
        pnetid: String,
        /// Network interface to tie to PNETID.
        #[arg(long, conflicts_with_all = ["ibdev", "ibport"], required_unless_present = "ibdev")]
        netdev: Option<String>,
        /// RDMA device to tie to PNETID (with --ibport).
        #[arg(long, requires = "ibport")]
        ibdev: Option<String>,
        /// Port of --ibdev (1 or 2).
        #[arg(long)]
        ibport: Option<u8>,
    },
    /// Delete every entry of a PNET ID.
    Del { pnetid: String },
    /// List the PNET table.
    List(Json),
    /// Empty the PNET table.
    Flush,
}

fn json<T: Serialize>(v: &T) -> Result<(), smc::Error> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| smc::Error::InvalidArgument(format!("cannot encode JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

fn run(cli: Cli) -> Result<(), smc::Error> {
    match cli.cmd {
        Cmd::Ueid { cmd } => match cmd {
            UeidCmd::Add { name } => smc::add_ueid(&name),
            UeidCmd::Del { name } => smc::del_ueid(&name),
            UeidCmd::Flush => smc::flush_ueids(),
            UeidCmd::List(j) => {
                let l = smc::list_ueids()?;
                if j.json {
                    return json(&l);
                }
                for u in l {
                    println!("{u}");
                }
                Ok(())
            }
        },
        Cmd::Pnet { cmd } => match cmd {
            PnetCmd::Add {
                pnetid,
                netdev: Some(dev),
                ..
            } => smc::pnet_add_netdev(&pnetid, &dev),
            PnetCmd::Add {
                pnetid,
                ibdev: Some(ib),
                ibport: Some(port),
                ..
            } => smc::pnet_add_ib(&pnetid, &ib, port),
            PnetCmd::Add { .. } => Err(smc::Error::InvalidArgument(
                "pnet add: give --netdev IF or --ibdev DEV --ibport N".into(),
            )),
            PnetCmd::Del { pnetid } => smc::pnet_del(&pnetid),
            PnetCmd::Flush => smc::pnet_flush(),
            PnetCmd::List(j) => {
                let l = smc::pnet_list()?;
                if j.json {
                    return json(&l);
                }
                println!("{:<16} {:<16} {:<16} IBPORT", "PNETID", "NETDEV", "IBDEV");
                for e in l {
                    let port = if e.ibdev == "n/a" {
                        "n/a".to_string()
                    } else {
                        e.ibport.to_string()
                    };
                    println!("{:<16} {:<16} {:<16} {port}", e.pnetid, e.netdev, e.ibdev);
                }
                Ok(())
            }
        },
        Cmd::Stats(j) => {
            let s = smc::stats()?;
            if j.json {
                let m: serde_json::Map<String, serde_json::Value> = s
                    .counters
                    .iter()
                    .map(|(k, v)| (k.clone(), (*v).into()))
                    .collect();
                return json(&m);
            }
            for (k, v) in &s.counters {
                println!("{k:<40} {v}");
            }
            Ok(())
        }
        Cmd::Fallback(j) => {
            let f = smc::fallback_stats()?;
            if j.json {
                return json(&f);
            }
            println!(
                "server fallbacks: {}   client fallbacks: {}",
                f.server_total, f.client_total
            );
            if !f.reasons.is_empty() {
                println!("{:<6} {:<10} {:<12} COUNT", "SIDE", "CODE", "REASON");
            }
            for r in &f.reasons {
                println!(
                    "{:<6} 0x{:08x} {:<12} {}",
                    if r.server { "server" } else { "client" },
                    r.code,
                    smc::fallback_reason_name(r.code),
                    r.count
                );
            }
            Ok(())
        }
        Cmd::Lgr(j) => {
            let (lgrs, links) = smc::links()?;
            if j.json {
                #[derive(Serialize)]
                struct Out {
                    link_groups: Vec<smc::LinkGroup>,
                    links: Vec<smc::Link>,
                }
                return json(&Out {
                    link_groups: lgrs,
                    links,
                });
            }
            println!(
                "{:<10} {:<5} {:<7} {:<6} {:<16} VLAN",
                "LG-ID", "ROLE", "TYPE", "CONNS", "PNETID"
            );
            for g in &lgrs {
                println!(
                    "{:<10} {:<5} {:<7} {:<6} {:<16} {}",
                    format!("{:08x}", g.id),
                    g.role_name(),
                    g.type_name(),
                    g.conns,
                    g.pnetid,
                    g.vlan_id
                );
                for l in links.iter().filter(|l| l.lgr_id == g.id) {
                    println!(
                        "  link {:<3} {:<10} {}:{:<2} {:<10} conns {:<4} {}  gid {} peer {}",
                        l.link_id,
                        l.state_name(),
                        l.ibdev,
                        l.ibport,
                        l.netdev,
                        l.conns,
                        format_args!("uid {:08x}/{:08x}", l.link_uid, l.peer_link_uid),
                        l.gid,
                        l.peer_gid
                    );
                }
            }
            Ok(())
        }
        Cmd::Diag(j) => {
            let socks = smc::diag_sockets()?;
            if j.json {
                return json(&socks);
            }
            println!(
                "{:<8} {:<10} {:<28} {:<28} {:<5} {:<10} DETAIL",
                "INODE", "STATE", "LOCAL", "PEER", "MODE", "TOKEN"
            );
            for s in &socks {
                let detail = match (&s.fallback, &s.conn, &s.lgr) {
                    (Some(f), _, _) if s.mode == smc::diag::SMC_DIAG_MODE_FALLBACK_TCP => format!(
                        "fallback 0x{:08x} {} peer 0x{:08x}",
                        f.reason,
                        smc::fallback_reason_name(f.reason),
                        f.peer_diagnosis
                    ),
                    (_, Some(c), l) => format!(
                        "sndbuf {} rmb {} peer_rmb {}{}",
                        c.sndbuf_size,
                        c.rmbe_size,
                        c.peer_rmbe_size,
                        l.as_ref()
                            .map(|l| format!(" {}:{}", l.ibname, l.ibport))
                            .unwrap_or_default()
                    ),
                    _ => String::new(),
                };
                println!(
                    "{:<8} {:<10} {:<28} {:<28} {:<5} {:<10} {}",
                    s.inode,
                    s.state_name(),
                    sockaddr(&s.local, s.local_port),
                    sockaddr(&s.remote, s.remote_port),
                    s.mode_name(),
                    s.conn
                        .as_ref()
                        .map(|c| format!("{:08x}", c.token))
                        .unwrap_or_else(|| "-".into()),
                    detail
                );
                if let Some(l) = &s.latency {
                    print_latency(l);
                }
            }
            Ok(())
        }
        Cmd::Snapshot => {
            print_snapshot(&smc::snapshot());
            Ok(())
        }
        Cmd::Info(j) => {
            let i = smc::sys_info()?;
            if j.json {
                return json(&i);
            }
            println!("SMC version:      {}.{}", i.smc_version, i.smc_release);
            println!("ISM v2 capable:   {}", i.ism_v2_capable);
            if let Some(r) = i.smcr_v2_capable {
                println!("SMC-Rv2 capable:  {r}");
            }
            println!("local host:       {}", i.local_host);
            println!(
                "SEID:             {}",
                if i.seid.is_empty() { "-" } else { &i.seid }
            );
            Ok(())
        }
    }
}

fn print_snapshot(s: &smctrace_format::meta::Snapshot) {
    let addr = |a: &[u8; 16], family: u16| -> std::net::IpAddr {
        if family == libc::AF_INET6 as u16 {
            std::net::IpAddr::from(*a)
        } else {
            std::net::IpAddr::from([a[0], a[1], a[2], a[3]])
        }
    };
    println!("taken_monotonic_ns: {}", s.taken_monotonic_ns);
    let nz: Vec<_> = s.stats.iter().filter(|(_, v)| *v != 0).collect();
    println!("stats: {} counters, {} non-zero", s.stats.len(), nz.len());
    for (k, v) in nz {
        println!("  {k:<40} {v}");
    }
    println!("fallbacks: {}", s.fallbacks.len());
    for f in &s.fallbacks {
        let side = if f.server { "server" } else { "client" };
        println!(
            "  {side} 0x{:08x} {:<12} {}",
            f.code,
            smc::fallback_reason_name(f.code),
            f.count
        );
    }
    println!("sockets: {}", s.sockets.len());
    for k in &s.sockets {
        println!(
            "  inode {} state {} mode {} {} -> {} token {:08x} sndbuf {} rmb {} peer_rmb {} fallback 0x{:08x} peer_diag 0x{:08x}",
            k.inode,
            smc::diag::state_name(k.state),
            k.mode,
            sockaddr(&addr(&k.local_addr, k.family), k.local_port),
            sockaddr(&addr(&k.remote_addr, k.family), k.remote_port),
            k.local_token, k.sndbuf_len, k.rmb_len, k.peer_rmbe_size, k.fallback_rsn, k.peer_diagnosis
        );
    }
    println!("links: {}", s.links.len());
    for l in &s.links {
        println!(
            "  lgr {:08x} link {} {}:{} {} state {}",
            l.lgr_id, l.link_id, l.ibname, l.ibport, l.netdev, l.state
        );
    }
    println!("error: {}", s.error.as_deref().unwrap_or("-"));
}

fn sockaddr(ip: &std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`smcctl stats | head`) like other command-line tools,
    // instead of panicking in println!.
    // SAFETY: setting a signal disposition to SIG_DFL at start-up, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smcctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Microseconds with one decimal, for latencies in ns.
fn us(ns: u64) -> String {
    format!("{:.1}us", ns as f64 / 1000.0)
}

/// The `SMC_DIAG_LATENCY` lines under a socket of `smcctl diag` (patched kernels only).
fn print_latency(l: &smc::LatencyInfo) {
    let stages: Vec<String> = l
        .stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.count > 0)
        .map(|(i, s)| {
            format!(
                "{} n={} avg={} max={}",
                smc::lat_stage_name(i as u32),
                s.count,
                us(s.mean_ns()),
                us(s.max_ns)
            )
        })
        .collect();
    println!(
        "         latency: {}",
        if stages.is_empty() {
            "no samples".to_string()
        } else {
            stages.join(", ")
        }
    );
    println!(
        "         anomalies: {} over {}us",
        l.anomaly_total, l.threshold_us
    );
    for a in &l.anomalies {
        println!(
            "           {} {} at {}",
            smc::lat_stage_name(a.stage),
            us(a.lat_ns),
            format_args!(
                "{}.{:09}",
                a.tstamp_ns / 1_000_000_000,
                a.tstamp_ns % 1_000_000_000
            )
        );
    }
}
