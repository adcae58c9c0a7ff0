//! One moment of SMC state in the recording format: what the recorder stores at the start
//! and end of a recording (`smctrace_format::meta::Snapshot`).
//!
//! It never fails: each source (statistics, fallback counters, link dump, smc_diag) is read
//! independently, and whatever could not be read is described in `Snapshot.error`, so a
//! recording on a host without smc_diag still keeps the statistics.

use std::net::IpAddr;

use smctrace_format::meta::{FallbackCount, LinkSnapshot, Snapshot, SockSnapshot};

use crate::diag::{diag_sockets, DiagSock};
use crate::smc::{fallback_stats, links, stats, Link};

/// CLOCK_MONOTONIC now, in nanoseconds (the clock of BPF event timestamps).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn addr16(ip: &IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a = v6.octets(),
    }
    a
}

/// One smc_diag socket in the recording's form (mode as `event::MODE_*`).
pub fn sock_snapshot(s: &DiagSock) -> SockSnapshot {
    let c = s.conn.clone().unwrap_or_default();
    let f = s.fallback.unwrap_or_default();
    SockSnapshot {
        family: s.family,
        state: s.state,
        mode: s.event_mode(),
        local_addr: addr16(&s.local),
        local_port: s.local_port,
        remote_addr: addr16(&s.remote),
        remote_port: s.remote_port,
        inode: s.inode,
        uid: s.uid,
        local_token: c.token,
        sndbuf_len: c.sndbuf_size,
        rmb_len: c.rmbe_size,
        peer_rmbe_size: c.peer_rmbe_size,
        fallback_rsn: f.reason,
        peer_diagnosis: f.peer_diagnosis,
    }
}

/// One SMC-R link in the recording's form. Netlink does not expose QP numbers: 0.
pub fn link_snapshot(l: &Link) -> LinkSnapshot {
    LinkSnapshot {
        lgr_id: l.lgr_id,
        link_id: l.link_id,
        ibname: l.ibdev.clone(),
        ibport: l.ibport,
        netdev: l.netdev.clone(),
        qpn: 0,
        peer_qpn: 0,
        state: l.state,
    }
}

/// Reads statistics, fallback counters, SMC-R links and smc_diag sockets now.
pub fn snapshot() -> Snapshot {
    let mut snap = Snapshot {
        taken_monotonic_ns: monotonic_ns(),
        ..Snapshot::default()
    };
    let mut errors: Vec<String> = Vec::new();
    match stats() {
        Ok(s) => snap.stats = s.counters,
        Err(e) => errors.push(e.to_string()),
    }
    match fallback_stats() {
        Ok(f) => {
            snap.fallbacks = f
                .reasons
                .iter()
                .map(|r| FallbackCount {
                    code: r.code,
                    count: r.count,
                    server: r.server,
                })
                .collect()
        }
        Err(e) => errors.push(e.to_string()),
    }
    match links() {
        Ok((_, l)) => snap.links = l.iter().map(link_snapshot).collect(),
        Err(e) => errors.push(e.to_string()),
    }
    match diag_sockets() {
        Ok(s) => snap.sockets = s.iter().map(sock_snapshot).collect(),
        Err(e) => errors.push(e.to_string()),
    }
    errors.dedup();
    if !errors.is_empty() {
        snap.error = Some(errors.join("; "));
    }
    snap
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{ConnInfo, FallbackInfo};

    #[test]
    fn sock_snapshot_maps_fields_and_mode() {
        let s = DiagSock {
            family: libc::AF_INET as u16,
            state: 1,
            mode: crate::diag::SMC_DIAG_MODE_FALLBACK_TCP,
            shutdown: 0,
            local: "10.77.0.1".parse().unwrap(),
            local_port: 5000,
            remote: "10.77.0.2".parse().unwrap(),
            remote_port: 40000,
            ifindex: 0,
            cookie: 0,
            uid: 0,
            inode: 77,
            conn: Some(ConnInfo {
                token: 9,
                sndbuf_size: 16384,
                rmbe_size: 65536,
                peer_rmbe_size: 32768,
                ..Default::default()
            }),
            lgr: None,
            dmb: None,
            fallback: Some(FallbackInfo {
                reason: 0x0303_0008,
                peer_diagnosis: 1,
            }),
            latency: None,
        };
        let x = sock_snapshot(&s);
        assert_eq!(x.mode, smctrace_format::event::MODE_FALLBACK);
        assert_eq!(&x.local_addr[..4], &[10, 77, 0, 1]);
        assert!(x.local_addr[4..].iter().all(|&b| b == 0));
        assert_eq!((x.local_port, x.remote_port, x.inode), (5000, 40000, 77));
        assert_eq!(
            (x.local_token, x.sndbuf_len, x.rmb_len, x.peer_rmbe_size),
            (9, 16384, 65536, 32768)
        );
        assert_eq!((x.fallback_rsn, x.peer_diagnosis), (0x0303_0008, 1));
    }

    #[test]
    fn snapshot_without_smc_reports_why_instead_of_failing() {
        // This host has no SMC: every source fails, and the snapshot says so in one line.
        // (In the lab guests the same call returns data; see docs/tools.md.)
        let s = snapshot();
        assert!(s.taken_monotonic_ns > 0);
        if s.stats.is_empty() {
            let e = s.error.expect("an empty snapshot must say why");
            assert!(e.contains("SMC"), "{e}");
        }
    }
}
