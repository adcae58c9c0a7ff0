//! `smc-record conns`: the live table of SMC connections and their latency metrics,
//! like `ss -i` for SMC, sorted by anomalies, so that an operator sees *which*
//! connection suffers before tracing it with `smc-record record --conn ID`.
//!
//! Two sources, one table:
//! - `diag`: the `SMC_DIAG_LATENCY` attribute of kernels with the smctrace net/smc
//!   series (docs/kernel.md), read with smc_diag (the `smc-netlink` crate);
//! - `bpf`: on stock kernels, the BPF monitor (`recorder-ebpf/monitor.bpf.c`), which
//!   keeps the same four stages per connection in BPF maps and streams no events;
//!   this module loads it, reads its map every interval and forgets closed
//!   connections once shown.
//!
//! `auto` takes `diag` when the kernel has the series (`net.smc.slow_threshold_us`
//! exists), else `bpf`. The table (and every `--json` line) says which source it shows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::KProbe;
use aya::{Ebpf, EbpfLoader};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use smc_netlink::diag::{lat_stage_name, DiagSock};

use crate::offsets::{self, KernelBtf};
use crate::{exit, Failure};

static MONITOR_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor.bpf.o"));

/// The kernel series' sysctl: its presence means SMC_DIAG_LATENCY exists.
const THRESHOLD_SYSCTL: &str = "/proc/sys/net/smc/slow_threshold_us";
/// The series' default `net.smc.slow_threshold_us`.
const DEFAULT_THRESHOLD_US: u32 = 10_000;
const STAGES: usize = 4;
const ANOMALIES: usize = 8;
const HIST: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// SMC_DIAG_LATENCY when the kernel has it, else the BPF monitor.
    Auto,
    /// The kernel's SMC_DIAG_LATENCY (smctrace net/smc series).
    Diag,
    /// The BPF monitor (kprobes, per-connection maps, no events).
    Bpf,
}

#[derive(Args, Debug)]
pub struct ConnsArgs {
    /// Seconds between two tables (fractions allowed).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    interval: f64,
    /// Print this many tables, then exit (default: until Ctrl-C/SIGTERM; with the diag
    /// source and no --interval given explicitly, one).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// One JSON object per table and line instead of the text table.
    #[arg(long)]
    json: bool,
    /// Where the metrics come from.
    #[arg(long, value_enum, default_value = "auto")]
    source: Source,
    /// BPF monitor: keep anomalies at or above this latency (µs; 0: none). Default: the
    /// kernel's net.smc.slow_threshold_us where it exists, else 10000.
    #[arg(long, value_name = "US")]
    threshold_us: Option<u32>,
    /// Create this file once the source is ready (the BPF monitor attached).
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

/// count / sum / max of one stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stage {
    pub count: u64,
    pub sum_ns: u64,
    pub max_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anomaly {
    pub tstamp_ns: u64,
    pub lat_ns: u64,
    pub stage: u32,
}

/// One row of the table, whatever the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `alert_token_local` (smc_diag's TOKEN): the `--conn` ID.
    pub token: u32,
    pub mode: &'static str,
    pub local: String,
    pub local_port: u16,
    pub remote: String,
    pub remote_port: u16,
    pub closed: bool,
    pub stages: [Stage; STAGES],
    pub anomaly_total: u64,
    /// Newest first.
    pub anomalies: Vec<Anomaly>,
}

impl Row {
    fn worst_max(&self) -> u64 {
        self.stages.iter().map(|s| s.max_ns).max().unwrap_or(0)
    }
}

/// Most anomalies first, then the largest single latency.
pub fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        b.anomaly_total
            .cmp(&a.anomaly_total)
            .then(b.worst_max().cmp(&a.worst_max()))
            .then(a.local_port.cmp(&b.local_port))
    });
}

fn us(ns: u64) -> String {
    let u = ns as f64 / 1000.0;
    if u >= 1000.0 {
        format!("{:.1}ms", u / 1000.0)
    } else {
        format!("{u:.1}us")
    }
}

/// The text table.
pub fn render(source: Source, threshold_us: u32, rows: &[Row]) -> String {
    let mut s = format!(
        "source: {} · anomalies: >= {threshold_us} us · {} connection(s)\n",
        source_line(source),
        rows.len()
    );
    s += &format!(
        "{:<8}  {:<4}  {:<28} {:<28} {:>6}  METRICS\n",
        "ID", "MODE", "LOCAL", "PEER", "ANOM"
    );
    for r in rows {
        let metrics: Vec<String> = r
            .stages
            .iter()
            .enumerate()
            .filter(|(_, st)| st.count > 0)
            .map(|(i, st)| {
                format!(
                    "{} n={} avg={} max={}",
                    lat_stage_name(i as u32),
                    st.count,
                    us(st.sum_ns.checked_div(st.count).unwrap_or(0)),
                    us(st.max_ns)
                )
            })
            .collect();
        s += &format!(
            "{:08x}  {:<4}  {:<28} {:<28} {:>6}  {}{}\n",
            r.token,
            r.mode,
            format!("{}:{}", r.local, r.local_port),
            format!("{}:{}", r.remote, r.remote_port),
            r.anomaly_total,
            if metrics.is_empty() {
                "-".to_string()
            } else {
                metrics.join(", ")
            },
            if r.closed { " (closed)" } else { "" }
        );
        if let Some(a) = r.anomalies.first() {
            s += &format!(
                "{:<8}  last anomaly: {} {} at {}.{:09}\n",
                "",
                lat_stage_name(a.stage),
                us(a.lat_ns),
                a.tstamp_ns / 1_000_000_000,
                a.tstamp_ns % 1_000_000_000
            );
        }
    }
    s
}

fn source_line(source: Source) -> &'static str {
    match source {
        Source::Diag => "kernel SMC_DIAG_LATENCY (smc_diag)",
        _ => "BPF monitor (kprobes on smc.ko, per-connection BPF maps, no events streamed)",
    }
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Diag => "diag",
        _ => "bpf",
    }
}

/// One `--json` line.
pub fn to_json(source: Source, threshold_us: u32, t_ns: u64, rows: &[Row]) -> Value {
    let conns: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": format!("{:08x}", r.token),
                "token": r.token,
                "mode": r.mode,
                "local": r.local, "local_port": r.local_port,
                "remote": r.remote, "remote_port": r.remote_port,
                "closed": r.closed,
                "stages": r.stages.iter().enumerate().map(|(i, st)| json!({
                    "stage": lat_stage_name(i as u32), "count": st.count, "sum_ns": st.sum_ns,
                    "max_ns": st.max_ns, "mean_ns": st.sum_ns.checked_div(st.count).unwrap_or(0),
                })).collect::<Vec<_>>(),
                "anomaly_total": r.anomaly_total,
                "anomalies": r.anomalies.iter().map(|a| json!({
                    "tstamp_ns": a.tstamp_ns, "lat_ns": a.lat_ns, "stage": lat_stage_name(a.stage),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "schema": "smc-record/conns/1",
        "source": source_name(source),
        "threshold_us": threshold_us,
        "t_ns": t_ns,
        "conns": conns,
    })
}

/// The diag source: every connected SMC socket with its SMC_DIAG_LATENCY.
pub fn rows_from_diag(socks: &[DiagSock]) -> Vec<Row> {
    socks
        .iter()
        .filter_map(|s| {
            let lat = s.latency.as_ref()?;
            let mut stages = [Stage::default(); STAGES];
            for (d, st) in stages.iter_mut().zip(lat.stages.iter()) {
                *d = Stage {
                    count: st.count,
                    sum_ns: st.sum_ns,
                    max_ns: st.max_ns,
                };
            }
            Some(Row {
                token: s.conn.as_ref().map(|c| c.token).unwrap_or(0),
                mode: s.mode_name(),
                local: s.local.to_string(),
                local_port: s.local_port,
                remote: s.remote.to_string(),
                remote_port: s.remote_port,
                closed: false,
                stages,
                anomaly_total: lat.anomaly_total as u64,
                anomalies: lat
                    .anomalies
                    .iter()
                    .map(|a| Anomaly {
                        tstamp_ns: a.tstamp_ns,
                        lat_ns: a.lat_ns,
                        stage: a.stage,
                    })
                    .collect(),
            })
        })
        .collect()
}

// ---- the BPF monitor ----

/// `struct mon_stage` of recorder-ebpf/monitor.h.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct MonStage {
    count: u64,
    sum_ns: u64,
    max_ns: u64,
    hist: [u64; HIST],
}

/// `struct mon_anomaly`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct MonAnomaly {
    tstamp_ns: u64,
    lat_ns: u64,
    stage: u32,
    _pad: u32,
}

/// `struct mon_conn`: the value of the `mon_conns` map.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct MonConn {
    stage: [MonStage; STAGES],
    anomalies: [MonAnomaly; ANOMALIES],
    anomaly_total: u64,
    first_ns: u64,
    closed_ns: u64,
    rx_since_ns: u64,
    rx_last_ns: u64,
    sndbuf_since_ns: u64,
    peerwin_since_ns: u64,
    saddr: [u8; 16],
    daddr: [u8; 16],
    token: u32,
    family: u16,
    sport: u16,
    dport: u16,
    smcd: u8,
    _pad: [u8; 5],
}

// The C struct is 1160 bytes (monitor.h); a mismatch would misread every field.
const _: () = assert!(std::mem::size_of::<MonConn>() == 1160);

// SAFETY: plain old data, every bit pattern valid, no padding left implicit.
unsafe impl aya::Pod for MonConn {}

fn addr(family: u16, b: &[u8; 16]) -> String {
    if family == libc::AF_INET6 as u16 {
        std::net::Ipv6Addr::from(*b).to_string()
    } else {
        std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
    }
}

fn row_from_mon(c: &MonConn) -> Row {
    let mut stages = [Stage::default(); STAGES];
    for (d, s) in stages.iter_mut().zip(c.stage.iter()) {
        *d = Stage {
            count: s.count,
            sum_ns: s.sum_ns,
            max_ns: s.max_ns,
        };
    }
    // The ring's next slot is anomaly_total % 8: walk back from the newest.
    let kept = (c.anomaly_total as usize).min(ANOMALIES);
    let anomalies = (0..kept)
        .map(|i| {
            let slot = (c.anomaly_total as usize + ANOMALIES - 1 - i) % ANOMALIES;
            let a = c.anomalies[slot];
            Anomaly {
                tstamp_ns: a.tstamp_ns,
                lat_ns: a.lat_ns,
                stage: a.stage,
            }
        })
        .filter(|a| a.tstamp_ns != 0)
        .collect();
    Row {
        token: c.token,
        mode: if c.token == 0 {
            "?"
        } else if c.smcd != 0 {
            "SMCD"
        } else {
            "SMCR"
        },
        local: addr(c.family, &c.saddr),
        local_port: c.sport,
        remote: addr(c.family, &c.daddr),
        remote_port: c.dport,
        closed: c.closed_ns != 0,
        stages,
        anomaly_total: c.anomaly_total,
        anomalies,
    }
}

/// The `off_*` globals of monitor.bpf.c (and of offsets.h, which it shares
/// with the recorder); the member each holds is in `offsets::FIELDS` or
/// `offsets::MONITOR_ONLY_FIELDS`.
const MON_GLOBALS: &[&str] = &[
    "off_socket_sk",
    "off_skc_family",
    "off_skc_num",
    "off_skc_dport",
    "off_skc_rcv_saddr",
    "off_skc_daddr",
    "off_skc_v6_rcv_saddr",
    "off_skc_v6_daddr",
    "off_smc_clcsock",
    "off_smc_conn",
    "off_conn_lgr",
    "off_conn_alert_token_local",
    "off_conn_sndbuf_space",
    "off_conn_peer_rmbe_space",
    "off_conn_rx_prod",
    "off_conn_bytes_to_rcv",
    "off_lgr_is_smcd",
    "off_pend_conn",
    "off_pend_ctrl_seq",
    "off_conn_tx_cdc_seq",
];

/// Programs of monitor.bpf.c: (program, hook, return probe, what it measures).
const MON_PROGRAMS: &[(&str, &str, bool, &str)] = &[
    (
        "mon_rx_action_exit",
        "smc_cdc_msg_recv_action",
        true,
        "rx_consume",
    ),
    (
        "mon_rx_action_enter",
        "smc_cdc_msg_recv_action",
        false,
        "rx_consume",
    ),
    ("mon_recvmsg_exit", "smc_rx_recvmsg", true, "rx_consume"),
    ("mon_recvmsg_enter", "smc_rx_recvmsg", false, "rx_consume"),
    (
        "mon_tx_nonempty",
        "smc_tx_sndbuf_nonempty",
        false,
        "tx_sndbuf_full, tx_peer_win",
    ),
    ("mon_tx_sendmsg", "smc_tx_sendmsg", false, "tx_sndbuf_full"),
    ("mon_cdc_send", "smc_cdc_msg_send", false, "cdc_tx_compl"),
    (
        "mon_cdc_tx_done",
        "smc_cdc_tx_handler",
        false,
        "cdc_tx_compl",
    ),
    ("mon_release", "smc_release", false, "closed connections"),
];

/// The loaded monitor; dropping it detaches everything.
struct Monitor {
    ebpf: Ebpf,
}

impl Monitor {
    fn load(threshold_us: u32) -> Result<Monitor, Failure> {
        let btf = KernelBtf::running().map_err(|e| Failure::new(exit::NO_BTF, e))?;
        let mut values = Vec::with_capacity(MON_GLOBALS.len());
        for global in MON_GLOBALS {
            let path = offsets::field(global)
                .with_context(|| format!("BPF monitor: {global} has no member path in offsets.rs"))
                .map_err(|e| Failure::new(exit::BPF, e))?
                .path;
            let off = btf
                .resolve(path)
                .with_context(|| format!("BPF monitor: kernel member {path}"))
                .map_err(|e| Failure::new(exit::NO_BTF, e))?;
            values.push((*global, off.byte));
        }
        let threshold_ns = threshold_us as u64 * 1000;
        let mut loader = EbpfLoader::new();
        for (g, v) in &values {
            loader.override_global(g, v, true);
        }
        loader.override_global("threshold_ns", &threshold_ns, true);
        let mut ebpf = loader
            .load(MONITOR_OBJ)
            .map_err(anyhow::Error::new)
            .context("loading the BPF monitor")
            .map_err(|e| Failure::new(exit::BPF, e))?;
        for (name, hook, _, what) in MON_PROGRAMS {
            let mut attach = || -> Result<()> {
                let prog = ebpf
                    .program_mut(name)
                    .with_context(|| format!("program {name} missing"))?;
                let kp: &mut KProbe = prog.try_into().map_err(anyhow::Error::new)?;
                kp.load()
                    .map_err(anyhow::Error::new)
                    .with_context(|| format!("verifier refused {name}"))?;
                kp.attach(*hook, 0)
                    .map_err(anyhow::Error::new)
                    .with_context(|| format!("attaching {name} to {hook} ({what})"))?;
                Ok(())
            };
            attach().map_err(|e| Failure::new(exit::BPF, e))?;
        }
        Ok(Monitor { ebpf })
    }

    /// Every connection in the map; closed ones are removed after this read.
    fn rows(&mut self) -> Result<Vec<Row>> {
        let map = self
            .ebpf
            .map_mut("mon_conns")
            .context("map mon_conns missing")?;
        let mut m: BpfHashMap<&mut MapData, u64, MonConn> = BpfHashMap::try_from(map)
            .map_err(anyhow::Error::new)
            .context("map mon_conns")?;
        let mut rows = Vec::new();
        let mut closed = Vec::new();
        for item in m.iter() {
            let (k, c) = match item {
                Ok(kv) => kv,
                // An entry deleted between two keys of the walk: skip it.
                Err(_) => continue,
            };
            if c.closed_ns != 0 {
                closed.push(k);
            }
            // Sockets that never connected (listeners) have no port pair.
            if c.sport == 0 && c.dport == 0 {
                continue;
            }
            rows.push(row_from_mon(&c));
        }
        for k in closed {
            let _ = m.remove(&k);
        }
        Ok(rows)
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn kernel_threshold() -> Option<u32> {
    std::fs::read_to_string(THRESHOLD_SYSCTL)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Which source `auto` means on this kernel.
fn pick(source: Source, has_series: bool) -> Source {
    match source {
        Source::Auto if has_series => Source::Diag,
        Source::Auto => Source::Bpf,
        s => s,
    }
}

pub fn run(args: ConnsArgs) -> Result<u8, Failure> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(anyhow::anyhow!("--interval must be a positive number of seconds").into());
    }
    let kernel_thr = kernel_threshold();
    let source = pick(args.source, kernel_thr.is_some());
    if source == Source::Diag && kernel_thr.is_none() {
        return Err(Failure::new(
            exit::NO_SMC,
            anyhow::anyhow!(
                "--source diag: this kernel's SMC has no latency metrics ({THRESHOLD_SYSCTL} missing: not the smctrace net/smc series); use --source bpf"
            ),
        ));
    }
    let threshold_us = match source {
        Source::Diag => kernel_thr.unwrap_or(DEFAULT_THRESHOLD_US),
        _ => args
            .threshold_us
            .or(kernel_thr)
            .unwrap_or(DEFAULT_THRESHOLD_US),
    };
    if source == Source::Diag && args.threshold_us.is_some() {
        return Err(anyhow::anyhow!(
            "--threshold-us applies to the BPF monitor; the kernel's is net.smc.slow_threshold_us"
        )
        .into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let mut monitor = match source {
        Source::Bpf => Some(Monitor::load(threshold_us)?),
        _ => None,
    };
    if let Some(p) = &args.ready_file {
        write_ready(p)?;
    }
    let interval = Duration::from_secs_f64(args.interval);
    let mut shown = 0u64;
    loop {
        let next = Instant::now() + interval;
        let mut rows = match monitor.as_mut() {
            Some(m) => m.rows()?,
            None => rows_from_diag(
                &smc_netlink::diag_sockets().context("reading SMC sockets (smc_diag)")?,
            ),
        };
        sort_rows(&mut rows);
        if args.json {
            println!("{}", to_json(source, threshold_us, monotonic_ns(), &rows));
        } else {
            print!("{}", render(source, threshold_us, &rows));
            println!();
        }
        shown += 1;
        if args.count.is_some_and(|n| shown >= n) || stop.load(Ordering::Relaxed) {
            break;
        }
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if stop.load(Ordering::Relaxed) {
            // One last table with what the monitor holds when stopped.
            if monitor.is_some() {
                continue;
            }
            break;
        }
    }
    Ok(0)
}

/// A `--conn` ID: a token as `conns` shows it, or a TCP 4-tuple.
#[derive(Debug, PartialEq, Eq)]
enum ConnId {
    Token(u32),
    Ports(u16, u16),
}

/// `ADDR:PORT` (IPv6 as `[ADDR]:PORT`) -> the port.
fn endpoint_port(s: &str) -> Option<u16> {
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
}

fn parse_id(id: &str) -> Result<ConnId> {
    let id = id.trim();
    if let Some((l, r)) = id.split_once('-') {
        if let (Some(lp), Some(rp)) = (endpoint_port(l), endpoint_port(r)) {
            return Ok(ConnId::Ports(lp, rp));
        }
    }
    let hex = id.strip_prefix("0x").unwrap_or(id);
    if !hex.is_empty() && hex.len() <= 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(ConnId::Token(u32::from_str_radix(hex, 16)?));
    }
    anyhow::bail!("--conn {id:?}: expected a token as `smc-record conns` shows it (8 hex digits) or LOCAL:PORT-PEER:PORT")
}

/// `--conn` IDs -> (local port, remote port) pairs for the kernel filter, each pair
/// also reversed (the other end of a connection inside this host). Tokens are looked
/// up with smc_diag among the connections alive now.
pub fn resolve_ids(ids: &[String]) -> Result<Vec<(u16, u16)>> {
    let mut pairs = Vec::new();
    let mut socks: Option<Vec<DiagSock>> = None;
    for id in ids {
        let (l, r) = match parse_id(id)? {
            ConnId::Ports(l, r) => (l, r),
            ConnId::Token(t) => {
                if socks.is_none() {
                    socks = Some(
                        smc_netlink::diag_sockets()
                            .context("--conn: looking the token up with smc_diag")?,
                    );
                }
                let s = socks
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .find(|s| s.conn.as_ref().is_some_and(|c| c.token == t) && s.remote_port != 0)
                    .with_context(|| format!("--conn {id}: no live SMC connection has token {t:08x} (see smc-record conns)"))?;
                (s.local_port, s.remote_port)
            }
        };
        for p in [(l, r), (r, l)] {
            if !pairs.contains(&p) {
                pairs.push(p);
            }
        }
    }
    Ok(pairs)
}

fn write_ready(p: &Path) -> Result<()> {
    std::fs::write(p, format!("{}\n", std::process::id()))
        .with_context(|| format!("creating ready file {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `MonConn`, `MonStage`, `MonAnomaly` and their array lengths mirror
    /// monitor.h field for field: every member's offset and size, each
    /// struct's size and alignment, as the C compiler lays them out.
    #[test]
    fn mon_conn_matches_monitor_h() {
        use crate::c_layout::{c_values, field_size, header_source, struct_fields};
        use std::mem::{align_of, offset_of, size_of};

        macro_rules! fields {
            ($out:ident, $t:ty, $c:literal: $($f:ident),* $(,)?) => {
                $( $out.push((
                    format!("{}.{}", $c, stringify!($f)),
                    offset_of!($t, $f) as i64,
                    field_size(|x: &$t| &x.$f) as i64,
                )); )*
                $out.push((format!("{}.#struct", $c), size_of::<$t>() as i64, align_of::<$t>() as i64));
            };
        }
        let mut rust: Vec<(String, i64, i64)> = Vec::new();
        fields!(rust, MonStage, "mon_stage": count, sum_ns, max_ns, hist);
        fields!(rust, MonAnomaly, "mon_anomaly": tstamp_ns, lat_ns, stage, _pad);
        fields!(rust, MonConn, "mon_conn":
            stage, anomalies, anomaly_total, first_ns, closed_ns, rx_since_ns, rx_last_ns,
            sndbuf_since_ns, peerwin_since_ns, saddr, daddr, token, family, sport, dport, smcd, _pad);

        // every C member is listed above, in the same order
        let src = header_source("monitor.h");
        for s in ["mon_stage", "mon_anomaly", "mon_conn"] {
            let prefix = format!("{s}.");
            let listed: Vec<&str> = rust
                .iter()
                .filter_map(|(k, _, _)| k.strip_prefix(&prefix))
                .filter(|f| *f != "#struct")
                .collect();
            assert_eq!(struct_fields(&src, s), listed, "members of struct {s}");
        }

        let mut exprs = Vec::new();
        for (k, _, _) in &rust {
            let (s, f) = k.split_once('.').unwrap();
            if f == "#struct" {
                exprs.push((format!("{k}.a"), format!("sizeof(struct {s})")));
                exprs.push((format!("{k}.b"), format!("_Alignof(struct {s})")));
            } else {
                exprs.push((format!("{k}.a"), format!("offsetof(struct {s}, {f})")));
                exprs.push((format!("{k}.b"), format!("sizeof(((struct {s} *)0)->{f})")));
            }
        }
        for (c, _) in [
            ("MON_STAGES", STAGES),
            ("MON_ANOMALIES", ANOMALIES),
            ("MON_HIST", HIST),
        ] {
            exprs.push((c.to_string(), c.to_string()));
        }
        let c = c_values("monitor.h", &exprs);
        for (k, a, b) in &rust {
            assert_eq!(
                (c[&format!("{k}.a")], c[&format!("{k}.b")]),
                (*a, *b),
                "{k} (offset/size or size/align)"
            );
        }
        for (n, v) in [
            ("MON_STAGES", STAGES),
            ("MON_ANOMALIES", ANOMALIES),
            ("MON_HIST", HIST),
        ] {
            assert_eq!(c[n], v as i64, "{n}");
        }
    }

    fn row(token: u32, anomalies: u64, max_ns: u64) -> Row {
        let mut stages = [Stage::default(); STAGES];
        stages[1] = Stage {
            count: 3,
            sum_ns: 3 * max_ns / 2,
            max_ns,
        };
        Row {
            token,
            mode: "SMCD",
            local: "127.0.0.1".into(),
            local_port: 40000 + token as u16,
            remote: "127.0.0.1".into(),
            remote_port: 5000,
            closed: false,
            stages,
            anomaly_total: anomalies,
            anomalies: Vec::new(),
        }
    }

    #[test]
    fn most_anomalies_first_then_worst_latency() {
        let mut rows = vec![
            row(1, 0, 5_000),
            row(2, 11, 200_000_000),
            row(3, 0, 9_000),
            row(4, 11, 300_000_000),
        ];
        sort_rows(&mut rows);
        assert_eq!(
            rows.iter().map(|r| r.token).collect::<Vec<_>>(),
            vec![4, 2, 3, 1]
        );
    }

    #[test]
    fn monitor_ring_is_read_newest_first() {
        // SAFETY: MonConn is plain data; all-zero is a valid value.
        let mut c: MonConn = unsafe { std::mem::zeroed() };
        c.token = 2;
        c.smcd = 1;
        c.family = libc::AF_INET as u16;
        c.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        c.sport = 42844;
        c.dport = 5000;
        for i in 0..10u64 {
            let slot = (i % 8) as usize;
            c.anomalies[slot] = MonAnomaly {
                tstamp_ns: 100 + i,
                lat_ns: 50_000_000 + i,
                stage: 1,
                _pad: 0,
            };
        }
        c.anomaly_total = 10;
        let r = row_from_mon(&c);
        assert_eq!(r.mode, "SMCD");
        assert_eq!(r.local, "127.0.0.1");
        assert_eq!(r.anomalies.len(), 8);
        assert_eq!(r.anomalies[0].tstamp_ns, 109);
        assert_eq!(r.anomalies[7].tstamp_ns, 102);
    }

    #[test]
    fn conn_ids_parse() {
        assert_eq!(parse_id("00000002").unwrap(), ConnId::Token(2));
        assert_eq!(parse_id("0x1f").unwrap(), ConnId::Token(0x1f));
        assert_eq!(
            parse_id("127.0.0.1:42844-127.0.0.1:5000").unwrap(),
            ConnId::Ports(42844, 5000)
        );
        assert_eq!(
            parse_id("[::1]:40000-[::1]:5000").unwrap(),
            ConnId::Ports(40000, 5000)
        );
        assert!(parse_id("127.0.0.1:5000").is_err());
        assert!(parse_id("token").is_err());
        let pairs = resolve_ids(&[
            "10.0.0.1:1000-10.0.0.2:5000".into(),
            "10.0.0.2:5000-10.0.0.1:1000".into(),
        ])
        .unwrap();
        assert_eq!(pairs, vec![(1000, 5000), (5000, 1000)]);
    }

    #[test]
    fn auto_prefers_the_kernel_metrics() {
        assert_eq!(pick(Source::Auto, true), Source::Diag);
        assert_eq!(pick(Source::Auto, false), Source::Bpf);
        assert_eq!(pick(Source::Bpf, true), Source::Bpf);
    }

    #[test]
    fn table_and_json_name_the_source() {
        let rows = vec![row(2, 11, 51_000_000)];
        let t = render(Source::Bpf, 10000, &rows);
        assert!(t.starts_with("source: BPF monitor"), "{t}");
        assert!(t.contains("00000002  SMCD  127.0.0.1:40002"), "{t}");
        assert!(t.contains("rx_consume n=3 avg=25.5ms max=51.0ms"), "{t}");
        let j = to_json(Source::Diag, 10000, 1, &rows);
        assert_eq!(j["source"], "diag");
        assert_eq!(j["conns"][0]["stages"][1]["stage"], "rx_consume");
        assert_eq!(j["conns"][0]["id"], "00000002");
    }

    /// Every global MON_GLOBALS sets exists in monitor.bpf.c or the offsets.h
    /// it includes (override_global would fail) and has a member path in
    /// offsets.rs; every `off_*` global of the two is in MON_GLOBALS.
    #[test]
    fn fields_match_the_bpf_source() {
        let src = include_str!("../../recorder-ebpf/monitor.bpf.c");
        let shared = include_str!("../../recorder-ebpf/offsets.h");
        assert!(src.contains("#include \"offsets.h\""));
        for g in MON_GLOBALS {
            let decl = format!("volatile const __u32 {g} = 0;");
            assert!(src.contains(&decl) || shared.contains(&decl), "{g}");
            assert!(offsets::field(g).is_some(), "{g} not in offsets.rs");
        }
        for text in [src, shared] {
            for decl in text.split("volatile const __u32 ").skip(1) {
                let g = decl.split(' ').next().unwrap();
                if g.starts_with("off_") {
                    assert!(MON_GLOBALS.contains(&g), "{g} not in MON_GLOBALS");
                }
            }
        }
        for (p, hook, ret, _) in MON_PROGRAMS {
            let sec = if *ret { "kretprobe" } else { "kprobe" };
            assert!(src.contains(&format!("SEC(\"{sec}/{hook}\")")), "{p}");
            assert!(src.contains(&format!("({p}")), "{p}");
        }
    }
}
