//! `smc-record dump FILE`: a quick check of a recording right after taking it
//! (what was attached, how many events of each kind, losses, and the
//! connection-level records), without the analyzer. Reads only through the
//! smctrace-format crate.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use smctrace_format::event::{c_str, Endpoint, EventRef};
use smctrace_format::Reader;

use crate::Failure;

fn endpoint(family: u16, e: &Endpoint) -> String {
    let ip: IpAddr = if family == 10 {
        IpAddr::V6(Ipv6Addr::from(e.addr))
    } else {
        IpAddr::V4(Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]))
    };
    match ip {
        IpAddr::V6(_) => format!("[{ip}]:{}", e.port),
        IpAddr::V4(_) => format!("{ip}:{}", e.port),
    }
}

fn mode(m: u8) -> &'static str {
    match m {
        1 => "SMCR",
        2 => "SMCD",
        3 => "FALLBACK",
        _ => "unknown",
    }
}

/// One line for the records worth seeing individually (or every record with --all).
fn line(ev: &EventRef<'_>) -> Option<String> {
    let h = ev.hdr();
    let t = h.ts_ns;
    Some(match ev {
        EventRef::ConnInfo(c) => format!(
            "{t} conn_info sock={:016x} role={} mode={} {} -> {} rc={} local_token={:#010x} peer_token={:#010x} qpn={} peer_qpn={} link_id={} ib={} dmb_token={:#x} peer_dmb_token={:#x} smc_v{} sndbuf={} rmb={} peer_rmbe={} fallback_rsn={:#010x} peer_diag={:#010x} comm={}",
            c.sock,
            if c.role == 1 { "client" } else { "server" },
            mode(c.mode),
            endpoint(c.family, &c.local),
            endpoint(c.family, &c.remote),
            c.rc,
            c.local_token,
            c.peer_token,
            c.qpn,
            c.peer_qpn,
            c.link_id,
            c_str(&c.ibname),
            c.local_dmb_token,
            c.peer_dmb_token,
            c.smc_version,
            c.sndbuf_len,
            c.rmb_len,
            c.peer_rmbe_size,
            c.fallback_rsn,
            c.peer_diagnosis,
            c_str(&c.comm),
        ),
        EventRef::Connect(c) => format!(
            "{t} connect sock={:016x} dst={} netns={} comm={} pid={}",
            c.sock,
            endpoint(c.family, &c.dst),
            c.netns,
            c_str(&c.comm),
            h.pid
        ),
        EventRef::Clc(c) => format!(
            "{t} clc sock={:016x} {} type={} len={} v{} path={} rc={} decline_diag={:#010x}",
            c.sock,
            if c.dir == 1 { "tx" } else { "rx" },
            c.clc_type,
            c.length,
            c.version,
            if c.path == 0 { '-' } else { c.path as char },
            c.rc,
            c.decline_diag
        ),
        EventRef::Fallback(f) => format!("{t} fallback sock={:016x} reason={:#010x} peer_diag={:#010x}", f.sock, f.reason, f.peer_diagnosis),
        EventRef::Close(c) => format!("{t} close sock={:016x} state={} killed={}", c.sock, c.state, c.killed),
        EventRef::LinkDown(l) => format!("{t} link_down lgr={:016x} link_id={} state={} ib={}", l.lgr, l.link_id, l.state, c_str(&l.ibname)),
        _ => return None,
    })
}

fn print_snapshot(which: &str, s: Option<&smctrace_format::meta::Snapshot>) {
    let Some(s) = s else {
        println!("{which} snapshot: none");
        return;
    };
    println!(
        "{which} snapshot: {} counters, {} fallback codes, {} links, {} sockets{}",
        s.stats.len(),
        s.fallbacks.len(),
        s.links.len(),
        s.sockets.len(),
        s.error
            .as_deref()
            .map(|e| format!(" (error: {e})"))
            .unwrap_or_default()
    );
    for k in &s.sockets {
        let fam = if k.family == 10 { 10 } else { 2 };
        let l = Endpoint {
            addr: k.local_addr,
            port: k.local_port,
            _pad: [0; 3],
        };
        let r = Endpoint {
            addr: k.remote_addr,
            port: k.remote_port,
            _pad: [0; 3],
        };
        println!(
            "  diag sock {} -> {} mode={} state={} token={:#010x} sndbuf={} rmb={} fallback_rsn={:#010x}",
            endpoint(fam, &l),
            endpoint(fam, &r),
            mode(k.mode),
            k.state,
            k.local_token,
            k.sndbuf_len,
            k.rmb_len,
            k.fallback_rsn
        );
    }
    for l in &s.links {
        println!(
            "  link lgr={} id={} ib={}:{} qpn={} peer_qpn={} state={}",
            l.lgr_id, l.link_id, l.ibname, l.ibport, l.qpn, l.peer_qpn, l.state
        );
    }
}

pub fn run(path: &Path, all: bool) -> Result<(), Failure> {
    let r = Reader::open(path).map_err(|e| Failure::from(anyhow::Error::new(e)))?;
    let m = r.metadata();
    let (maj, min) = r.version();
    println!("file: {} (format {maj}.{min})", path.display());
    println!(
        "host: {}  kernel: {}  recorder: {}",
        m.host, m.kernel_release, m.recorder_version
    );
    println!("command: {}", m.command_line.join(" "));
    println!(
        "payload bytes: {}  filters: {:?}",
        m.payload_bytes, m.filters
    );
    let attached = m.probes.iter().filter(|p| p.attached).count();
    println!("probes: {attached}/{} attached", m.probes.len());
    for p in m.probes.iter().filter(|p| !p.attached) {
        println!(
            "  not attached: {} ({}): {}",
            p.name,
            p.hook,
            p.error.as_deref().unwrap_or("?")
        );
    }
    print_snapshot("start", m.start_snapshot.as_ref());

    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut unknown = 0u64;
    let mut bad = Vec::new();
    let mut lines = Vec::new();
    for chunk in r.decoded_chunks() {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                bad.push(e.to_string());
                continue;
            }
        };
        for rec in chunk.records() {
            match rec {
                Ok(ev) => {
                    match smctrace_format::event::EventKind::from_u16(ev.hdr().kind) {
                        Some(k) => *counts.entry(k.name()).or_default() += 1,
                        None => unknown += 1,
                    }
                    if all {
                        lines.push(format!("{ev:?}"));
                    } else if let Some(l) = line(&ev) {
                        lines.push(l);
                    }
                }
                Err(e) => bad.push(format!("chunk {}: {e}", chunk.info().index)),
            }
        }
    }
    println!("events by kind:");
    for (k, n) in &counts {
        println!("  {k:<14} {n}");
    }
    if unknown > 0 {
        println!("  (unknown kinds) {unknown}");
    }
    match r.trailer() {
        Some(t) => {
            println!(
                "trailer: clean close, {} events, lost {} (per cpu {:?})",
                t.total_events,
                t.lost_total(),
                t.lost_per_cpu
            );
            let hits: Vec<String> = t
                .probe_hits
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(p, n)| format!("{p}={n}"))
                .collect();
            println!("probe hits: {}", hits.join(" "));
            print_snapshot("end", t.end_snapshot.as_ref());
        }
        None => println!("trailer: MISSING (recording not closed cleanly)"),
    }
    for l in &lines {
        println!("{l}");
    }
    if !bad.is_empty() {
        for b in &bad {
            eprintln!("smc-record: dump: {b}");
        }
        return Err(Failure::from(
            anyhow::anyhow!("{} damaged chunk(s) or record(s)", bad.len())
                .context(path.display().to_string()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smctrace_format::event::{as_bytes, ConnInfo, EventKind, Hdr, SendMsg};
    use smctrace_format::meta::Metadata;
    use smctrace_format::{encode_chunk, TrailerInput, Writer, WriterOptions};

    fn hdr(kind: EventKind, len: usize, ts: u64) -> Hdr {
        Hdr {
            kind: kind as u16,
            len: len as u16,
            ts_ns: ts,
            ..Default::default()
        }
    }

    fn recording(dir: &Path, damage: bool) -> std::path::PathBuf {
        let path = dir.join(if damage {
            "bad.smctrace"
        } else {
            "ok.smctrace"
        });
        let mut w = Writer::create(&path, &Metadata::default(), WriterOptions::default()).unwrap();
        let mut ci = ConnInfo {
            hdr: hdr(EventKind::ConnInfo, std::mem::size_of::<ConnInfo>(), 10),
            ..Default::default()
        };
        ci.sock = 7;
        ci.family = 2;
        ci.local.addr[..4].copy_from_slice(&[10, 77, 0, 1]);
        ci.local.port = 40000;
        ci.remote.addr[..4].copy_from_slice(&[10, 77, 0, 2]);
        ci.remote.port = 7000;
        ci.mode = 1;
        let sm = SendMsg {
            hdr: hdr(EventKind::SendMsg, std::mem::size_of::<SendMsg>(), 20),
            sock: 7,
            len: 64,
            ret: 64,
            enter_ns: 15,
        };
        let mut raw = Vec::new();
        raw.extend_from_slice(as_bytes(&ci));
        raw.extend_from_slice(as_bytes(&sm));
        if damage {
            raw.extend_from_slice(&[0xff; 24]); // a header whose length is invalid
        }
        let c = encode_chunk(0, &raw, 2 + damage as u32, 10, 20, 1).unwrap();
        w.append(&c).unwrap();
        w.finish(TrailerInput {
            lost_per_cpu: vec![0, 0],
            ..Default::default()
        })
        .unwrap();
        path
    }

    #[test]
    fn conn_info_line_names_the_connection() {
        let ci = ConnInfo {
            sock: 7,
            family: 2,
            mode: 1,
            role: 1,
            ..Default::default()
        };
        let l = line(&EventRef::ConnInfo(ci)).unwrap();
        assert!(
            l.contains("conn_info") && l.contains("mode=SMCR") && l.contains("role=client"),
            "{l}"
        );
        let sm = SendMsg::default();
        assert!(line(&EventRef::SendMsg(sm)).is_none());
    }

    #[test]
    fn dump_accepts_a_good_file_and_rejects_a_damaged_one() {
        let dir = std::env::temp_dir().join(format!("smc-record-dump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(run(&recording(&dir, false), false).is_ok());
        let err = run(&recording(&dir, true), false).unwrap_err();
        assert!(
            format!("{:#}", err.error).contains("damaged"),
            "{:#}",
            err.error
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
