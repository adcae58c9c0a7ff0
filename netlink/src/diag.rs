//! smc_diag: the SMC sockets of this network namespace via NETLINK_SOCK_DIAG, family AF_SMC.
//!
//! No netlink crate knows AF_SMC, so the request (`struct smc_diag_req`) and the reply
//! (`struct smc_diag_msg` plus `SMC_DIAG_*` attributes) are encoded here by hand from
//! the uapi `include/uapi/linux/smc_diag.h`. Every read is bounds-checked: a short
//! structure yields a decode error, and attributes newer kernels add are ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::attrs::{self, find};
use crate::error::{Error, Result};
use crate::nl::{Conn, RawMsg};
use netlink_packet_core::NetlinkMessage;

pub const AF_SMC: u8 = 43;
/// `SOCK_DIAG_BY_FAMILY` netlink message type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;

// SMC_DIAG_* extension attributes (request bit = 1 << (attr - 1)).
pub const SMC_DIAG_CONNINFO: u16 = 1;
pub const SMC_DIAG_LGRINFO: u16 = 2;
pub const SMC_DIAG_SHUTDOWN: u16 = 3;
pub const SMC_DIAG_DMBINFO: u16 = 4;
pub const SMC_DIAG_FALLBACK: u16 = 5;
/// Per-connection latency metrics; only kernels with the smctrace net/smc series
/// (`kernel/patches/`) send it.
pub const SMC_DIAG_LATENCY: u16 = 6;

// smc_diag_msg modes.
pub const SMC_DIAG_MODE_SMCR: u8 = 0;
pub const SMC_DIAG_MODE_FALLBACK_TCP: u8 = 1;
pub const SMC_DIAG_MODE_SMCD: u8 = 2;

/// sizeof(struct smc_diag_req): family, pad[2], ext, inet_diag_sockid (48).
pub const DIAG_REQ_LEN: usize = 52;
/// sizeof(struct smc_diag_msg): 4 bytes, inet_diag_sockid (48), uid u32, inode u64.
pub const DIAG_MSG_LEN: usize = 64;
/// sizeof(struct smc_diag_conninfo).
pub const CONNINFO_LEN: usize = 76;
/// sizeof(struct smc_diag_lgrinfo): one smc_diag_linkinfo (146) + role.
pub const LGRINFO_LEN: usize = 147;
/// Stages in `struct smc_diag_latency` (`SMC_DIAG_LAT_STAGES`).
pub const LAT_STAGES: usize = 4;
/// Anomaly slots in `struct smc_diag_latency` (`SMC_DIAG_LAT_ANOMALIES`).
pub const LAT_ANOMALIES: usize = 8;
/// sizeof(struct smc_diag_latency): 4 stages x 24, 4 u32, 8 anomalies x 24.
pub const LATENCY_LEN: usize = LAT_STAGES * 24 + 16 + LAT_ANOMALIES * 24;

/// Name of an `SMC_LAT_*` stage (uapi `linux/smc.h`), as smcctl prints it.
pub fn lat_stage_name(stage: u32) -> &'static str {
    match stage {
        0 => "cdc_tx_compl",
        1 => "rx_consume",
        2 => "tx_sndbuf_full",
        3 => "tx_peer_win",
        _ => "?",
    }
}

/// Encodes the dump request: every SMC socket, all extensions.
pub fn encode_request() -> Vec<u8> {
    let mut req = vec![0u8; DIAG_REQ_LEN];
    req[0] = AF_SMC;
    req[3] = 0xff; // diag_ext: ask for every extension the kernel knows
    req
}

/// A cursor into a ring buffer: wrap count and byte offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cursor {
    pub wrap: u16,
    pub count: u32,
}

/// `SMC_DIAG_CONNINFO`: the connection's buffers and cursors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConnInfo {
    /// `alert_token_local`: the token the peer puts into its CDC messages to us.
    pub token: u32,
    pub sndbuf_size: u32,
    pub rmbe_size: u32,
    pub peer_rmbe_size: u32,
    pub rx_prod: Cursor,
    pub rx_cons: Cursor,
    pub tx_prod: Cursor,
    pub tx_cons: Cursor,
    pub rx_prod_flags: u8,
    pub rx_conn_state_flags: u8,
    pub tx_prod_flags: u8,
    pub tx_conn_state_flags: u8,
    pub tx_prep: Cursor,
    pub tx_sent: Cursor,
    pub tx_fin: Cursor,
}

/// `SMC_DIAG_LGRINFO`: the (first) link of the SMC-R link group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LgrInfo {
    pub link_id: u8,
    pub ibname: String,
    pub ibport: u8,
    pub gid: String,
    pub peer_gid: String,
    /// 0 client, 1 server.
    pub role: u8,
}

/// `SMC_DIAG_DMBINFO` (SMC-D).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DmbInfo {
    pub linkid: u32,
    pub peer_gid: u64,
    pub my_gid: u64,
    pub token: u64,
    pub peer_token: u64,
}

/// `SMC_DIAG_FALLBACK`: why the socket fell back to TCP (0 if it did not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FallbackInfo {
    pub reason: u32,
    pub peer_diagnosis: u32,
}

/// Count, sum and maximum of one latency stage of a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatStage {
    pub count: u64,
    pub sum_ns: u64,
    pub max_ns: u64,
}

impl LatStage {
    /// Mean latency in ns, 0 without samples.
    pub fn mean_ns(&self) -> u64 {
        self.sum_ns.checked_div(self.count).unwrap_or(0)
    }
}

/// One sample above `net.smc.slow_threshold_us`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatAnomaly {
    /// CLOCK_MONOTONIC (ns) when the slow stage ended.
    pub tstamp_ns: u64,
    pub lat_ns: u64,
    /// `SMC_LAT_*`: see [`lat_stage_name`].
    pub stage: u32,
}

/// `SMC_DIAG_LATENCY`: the connection's latency metrics (patched kernels only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LatencyInfo {
    /// Indexed by `SMC_LAT_*` stage: cdc_tx_compl, rx_consume, tx_sndbuf_full, tx_peer_win.
    pub stages: [LatStage; LAT_STAGES],
    /// `net.smc.slow_threshold_us` when the socket was dumped (0: anomalies off).
    pub threshold_us: u32,
    /// Anomalies since the connection began (the kernel keeps the last 8).
    pub anomaly_total: u32,
    /// The kept anomalies, newest first.
    pub anomalies: Vec<LatAnomaly>,
}

/// One SMC socket as smc_diag reports it. Addresses are those of the internal TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiagSock {
    /// `AF_INET` or `AF_INET6`, inferred from the address words (smc_diag reports AF_SMC).
    pub family: u16,
    /// `enum smc_state` (ACTIVE 1, INIT 2, CLOSED 7, LISTEN 10, ...).
    pub state: u8,
    /// `SMC_DIAG_MODE_*` (0 SMCR, 1 FALLBACK_TCP, 2 SMCD).
    pub mode: u8,
    pub shutdown: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub ifindex: u32,
    pub cookie: u64,
    pub uid: u32,
    pub inode: u64,
    pub conn: Option<ConnInfo>,
    pub lgr: Option<LgrInfo>,
    pub dmb: Option<DmbInfo>,
    pub fallback: Option<FallbackInfo>,
    pub latency: Option<LatencyInfo>,
}

impl DiagSock {
    pub fn state_name(&self) -> &'static str {
        state_name(self.state)
    }
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            SMC_DIAG_MODE_SMCR => "SMCR",
            SMC_DIAG_MODE_FALLBACK_TCP => "TCP",
            SMC_DIAG_MODE_SMCD => "SMCD",
            _ => "?",
        }
    }
    /// The mode as `smctrace_format::event::MODE_*` (1 SMCR, 2 SMCD, 3 FALLBACK, 0 unknown).
    pub fn event_mode(&self) -> u8 {
        match self.mode {
            SMC_DIAG_MODE_SMCR => 1,
            SMC_DIAG_MODE_SMCD => 2,
            SMC_DIAG_MODE_FALLBACK_TCP => 3,
            _ => 0,
        }
    }
}

/// Name of an `enum smc_state` value (net/smc/smc.h).
pub fn state_name(s: u8) -> &'static str {
    match s {
        1 => "ACTIVE",
        2 => "INIT",
        7 => "CLOSED",
        10 => "LISTEN",
        20 => "PEERCLOSEWAIT1",
        21 => "PEERCLOSEWAIT2",
        22 => "APPCLOSEWAIT1",
        23 => "APPCLOSEWAIT2",
        24 => "APPFINCLOSEWAIT",
        25 => "PEERFINCLOSEWAIT",
        26 => "PEERABORTWAIT",
        27 => "PROCESSABORT",
        _ => "?",
    }
}

/// Little bounds-checked reader over a byte slice.
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn bytes(&self, off: usize, len: usize) -> std::result::Result<&'a [u8], String> {
        self.b
            .get(off..off + len)
            .ok_or_else(|| format!("need {} bytes at offset {off}, have {}", len, self.b.len()))
    }
    fn u8(&self, off: usize) -> std::result::Result<u8, String> {
        Ok(self.bytes(off, 1)?[0])
    }
    fn u16(&self, off: usize) -> std::result::Result<u16, String> {
        let b = self.bytes(off, 2)?;
        Ok(u16::from_ne_bytes([b[0], b[1]]))
    }
    fn be16(&self, off: usize) -> std::result::Result<u16, String> {
        let b = self.bytes(off, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&self, off: usize) -> std::result::Result<u32, String> {
        let b = self.bytes(off, 4)?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, off: usize) -> std::result::Result<u64, String> {
        let b = self.bytes(off, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_ne_bytes(a))
    }
    fn cursor(&self, off: usize) -> std::result::Result<Cursor, String> {
        Ok(Cursor {
            wrap: self.u16(off + 2)?,
            count: self.u32(off + 4)?,
        })
    }
    fn cstr(&self, off: usize, len: usize) -> std::result::Result<String, String> {
        let b = self.bytes(off, len)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(String::from_utf8_lossy(&b[..end]).into_owned())
    }
}

fn decode_conninfo(b: &[u8]) -> std::result::Result<ConnInfo, String> {
    let r = Rd { b };
    r.bytes(0, CONNINFO_LEN)?;
    Ok(ConnInfo {
        token: r.u32(0)?,
        sndbuf_size: r.u32(4)?,
        rmbe_size: r.u32(8)?,
        peer_rmbe_size: r.u32(12)?,
        rx_prod: r.cursor(16)?,
        rx_cons: r.cursor(24)?,
        tx_prod: r.cursor(32)?,
        tx_cons: r.cursor(40)?,
        rx_prod_flags: r.u8(48)?,
        rx_conn_state_flags: r.u8(49)?,
        tx_prod_flags: r.u8(50)?,
        tx_conn_state_flags: r.u8(51)?,
        tx_prep: r.cursor(52)?,
        tx_sent: r.cursor(60)?,
        tx_fin: r.cursor(68)?,
    })
}

fn decode_lgrinfo(b: &[u8]) -> std::result::Result<LgrInfo, String> {
    let r = Rd { b };
    r.bytes(0, LGRINFO_LEN)?;
    Ok(LgrInfo {
        link_id: r.u8(0)?,
        ibname: r.cstr(1, 64)?,
        ibport: r.u8(65)?,
        gid: r.cstr(66, 40)?,
        peer_gid: r.cstr(106, 40)?,
        role: r.u8(146)?,
    })
}

fn decode_dmbinfo(b: &[u8]) -> std::result::Result<DmbInfo, String> {
    let r = Rd { b };
    Ok(DmbInfo {
        linkid: r.u32(0)?,
        peer_gid: r.u64(8)?,
        my_gid: r.u64(16)?,
        token: r.u64(24)?,
        peer_token: r.u64(32)?,
    })
}

fn decode_latency(b: &[u8]) -> std::result::Result<LatencyInfo, String> {
    let r = Rd { b };
    r.bytes(0, LATENCY_LEN)?;
    let mut l = LatencyInfo::default();
    for (i, s) in l.stages.iter_mut().enumerate() {
        let o = i * 24;
        *s = LatStage {
            count: r.u64(o)?,
            sum_ns: r.u64(o + 8)?,
            max_ns: r.u64(o + 16)?,
        };
    }
    let o = LAT_STAGES * 24;
    l.threshold_us = r.u32(o)?;
    l.anomaly_total = r.u32(o + 4)?;
    let cnt = r.u32(o + 8)? as usize;
    if cnt > LAT_ANOMALIES {
        return Err(format!(
            "SMC_DIAG_LATENCY: {cnt} anomalies, at most {LAT_ANOMALIES} fit"
        ));
    }
    for i in 0..cnt {
        let a = o + 16 + i * 24;
        l.anomalies.push(LatAnomaly {
            tstamp_ns: r.u64(a)?,
            lat_ns: r.u64(a + 8)?,
            stage: r.u32(a + 16)?,
        });
    }
    Ok(l)
}

/// Decodes one `smc_diag_msg` reply body (header plus attributes).
pub fn decode_sock(body: &[u8]) -> std::result::Result<DiagSock, String> {
    let r = Rd { b: body };
    r.bytes(0, DIAG_MSG_LEN)?;
    let src = r.bytes(8, 16)?;
    let dst = r.bytes(24, 16)?;
    // smc_diag fills only word 0 for an IPv4 clcsock; a v6 socket fills all four.
    let v4 = src[4..].iter().all(|&x| x == 0) && dst[4..].iter().all(|&x| x == 0);
    let addr = |b: &[u8]| -> IpAddr {
        if v4 {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        } else {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(a))
        }
    };
    let cookie = u64::from(r.u32(44)?) | (u64::from(r.u32(48)?) << 32);
    let mut s = DiagSock {
        family: if v4 {
            libc::AF_INET as u16
        } else {
            libc::AF_INET6 as u16
        },
        state: r.u8(1)?,
        mode: r.u8(2)?,
        shutdown: r.u8(3)?,
        local_port: r.be16(4)?,
        remote_port: r.be16(6)?,
        local: addr(src),
        remote: addr(dst),
        ifindex: r.u32(40)?,
        cookie,
        uid: r.u32(52)?,
        inode: r.u64(56)?,
        conn: None,
        lgr: None,
        dmb: None,
        fallback: None,
        latency: None,
    };
    let a = attrs::parse(&body[DIAG_MSG_LEN..])?;
    if let Some(x) = find(&a, SMC_DIAG_CONNINFO) {
        s.conn = Some(decode_conninfo(x.value)?);
    }
    if let Some(x) = find(&a, SMC_DIAG_LGRINFO) {
        s.lgr = Some(decode_lgrinfo(x.value)?);
    }
    if let Some(x) = find(&a, SMC_DIAG_DMBINFO) {
        s.dmb = Some(decode_dmbinfo(x.value)?);
    }
    if let Some(x) = find(&a, SMC_DIAG_FALLBACK) {
        let fr = Rd { b: x.value };
        s.fallback = Some(FallbackInfo {
            reason: fr.u32(0)?,
            peer_diagnosis: fr.u32(4)?,
        });
    }
    if let Some(x) = find(&a, SMC_DIAG_LATENCY) {
        s.latency = Some(decode_latency(x.value)?);
    }
    Ok(s)
}

/// Every SMC socket of this network namespace.
pub fn diag_sockets() -> Result<Vec<DiagSock>> {
    let op = "dump SMC sockets (smc_diag)";
    let conn = Conn::sock_diag(op)?;
    let msg = NetlinkMessage::from(RawMsg {
        msg_type: SOCK_DIAG_BY_FAMILY,
        body: encode_request(),
    });
    match conn.transact(msg, true, op)? {
        Ok(msgs) => msgs
            .iter()
            .filter(|m| m.msg_type == SOCK_DIAG_BY_FAMILY)
            .map(|m| decode_sock(&m.body).map_err(|msg| Error::Decode { op, msg }))
            .collect(),
        Err(libc::ENOENT) => Err(Error::DiagNotFound(op)),
        Err(e) => Err(Error::from_errno(op, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::Builder;

    /// A smc_diag_msg as the kernel lays it out for an IPv4 SMC-R socket.
    fn header(mode: u8) -> Vec<u8> {
        let mut b = vec![0u8; DIAG_MSG_LEN];
        b[0] = AF_SMC;
        b[1] = 1; // SMC_ACTIVE
        b[2] = mode;
        b[4..6].copy_from_slice(&5000u16.to_be_bytes());
        b[6..8].copy_from_slice(&40000u16.to_be_bytes());
        b[8..12].copy_from_slice(&[10, 0, 0, 1]);
        b[24..28].copy_from_slice(&[10, 0, 0, 2]);
        b[40..44].copy_from_slice(&2u32.to_ne_bytes());
        b[44..48].copy_from_slice(&0xdeadu32.to_ne_bytes());
        b[48..52].copy_from_slice(&0x1u32.to_ne_bytes());
        b[52..56].copy_from_slice(&1000u32.to_ne_bytes());
        b[56..64].copy_from_slice(&123456u64.to_ne_bytes());
        b
    }

    fn conninfo() -> Vec<u8> {
        let mut c = vec![0u8; CONNINFO_LEN];
        c[0..4].copy_from_slice(&0x0000_0401u32.to_ne_bytes());
        c[4..8].copy_from_slice(&65536u32.to_ne_bytes());
        c[8..12].copy_from_slice(&65536u32.to_ne_bytes());
        c[12..16].copy_from_slice(&32768u32.to_ne_bytes());
        // rx_prod {reserved, wrap 3, count 100}
        c[18..20].copy_from_slice(&3u16.to_ne_bytes());
        c[20..24].copy_from_slice(&100u32.to_ne_bytes());
        c[50] = 0x80;
        // tx_fin {wrap 1, count 4096}
        c[70..72].copy_from_slice(&1u16.to_ne_bytes());
        c[72..76].copy_from_slice(&4096u32.to_ne_bytes());
        c
    }

    fn lgrinfo() -> Vec<u8> {
        let mut l = vec![0u8; LGRINFO_LEN];
        l[0] = 1;
        l[1..5].copy_from_slice(b"rxe0");
        l[65] = 1;
        l[66..70].copy_from_slice(b"fe80");
        l[146] = 0;
        l
    }

    #[test]
    fn request_is_52_bytes_af_smc_all_extensions() {
        let r = encode_request();
        assert_eq!(r.len(), 52);
        assert_eq!(r[0], 43);
        assert_eq!(r[3], 0xff);
    }

    #[test]
    fn decodes_smcr_socket_with_extensions() {
        let mut body = header(SMC_DIAG_MODE_SMCR);
        body.extend(
            Builder::new()
                .bytes(SMC_DIAG_CONNINFO, &conninfo())
                .bytes(SMC_DIAG_LGRINFO, &lgrinfo())
                .u8(SMC_DIAG_SHUTDOWN, 0)
                .bytes(SMC_DIAG_FALLBACK, &[0; 8])
                .build(),
        );
        let s = decode_sock(&body).unwrap();
        assert_eq!(s.family, libc::AF_INET as u16);
        assert_eq!(s.state_name(), "ACTIVE");
        assert_eq!(s.mode_name(), "SMCR");
        assert_eq!(s.event_mode(), 1);
        assert_eq!(s.local, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.local_port, 5000);
        assert_eq!(s.remote, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(s.remote_port, 40000);
        assert_eq!(s.ifindex, 2);
        assert_eq!(s.cookie, 0x1_0000_dead);
        assert_eq!(s.uid, 1000);
        assert_eq!(s.inode, 123456);
        let c = s.conn.unwrap();
        assert_eq!(c.token, 0x401);
        assert_eq!(c.peer_rmbe_size, 32768);
        assert_eq!(
            c.rx_prod,
            Cursor {
                wrap: 3,
                count: 100
            }
        );
        assert_eq!(c.tx_prod_flags, 0x80);
        assert_eq!(
            c.tx_fin,
            Cursor {
                wrap: 1,
                count: 4096
            }
        );
        let l = s.lgr.unwrap();
        assert_eq!(
            (l.link_id, l.ibname.as_str(), l.ibport, l.gid.as_str()),
            (1, "rxe0", 1, "fe80")
        );
        assert_eq!(
            s.fallback,
            Some(FallbackInfo {
                reason: 0,
                peer_diagnosis: 0
            })
        );
    }

    #[test]
    fn decodes_fallback_socket() {
        let mut body = header(SMC_DIAG_MODE_FALLBACK_TCP);
        let mut fb = 0x0303_0008u32.to_ne_bytes().to_vec();
        fb.extend(0x0303_0008u32.to_ne_bytes());
        body.extend(Builder::new().bytes(SMC_DIAG_FALLBACK, &fb).build());
        let s = decode_sock(&body).unwrap();
        assert_eq!(s.mode_name(), "TCP");
        assert_eq!(s.event_mode(), 3);
        assert_eq!(s.fallback.unwrap().reason, 0x0303_0008);
        assert!(s.conn.is_none());
    }

    #[test]
    fn ipv6_addresses_are_recognized() {
        let mut body = header(SMC_DIAG_MODE_SMCR);
        let a: Ipv6Addr = "fd00::1".parse().unwrap();
        body[8..24].copy_from_slice(&a.octets());
        let s = decode_sock(&body).unwrap();
        assert_eq!(s.family, libc::AF_INET6 as u16);
        assert_eq!(s.local, IpAddr::V6(a));
    }

    /// A `struct smc_diag_latency` laid out as the patched kernel sends it.
    fn latency(anomalies: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut b = vec![0u8; LATENCY_LEN];
        // rx_consume: 3 samples, 30 ms in total, 25 ms max
        b[24..32].copy_from_slice(&3u64.to_ne_bytes());
        b[32..40].copy_from_slice(&30_000_000u64.to_ne_bytes());
        b[40..48].copy_from_slice(&25_000_000u64.to_ne_bytes());
        b[96..100].copy_from_slice(&10_000u32.to_ne_bytes());
        b[100..104].copy_from_slice(&11u32.to_ne_bytes());
        b[104..108].copy_from_slice(&(anomalies.len() as u32).to_ne_bytes());
        for (i, &(t, l, s)) in anomalies.iter().enumerate() {
            let o = 112 + i * 24;
            b[o..o + 8].copy_from_slice(&t.to_ne_bytes());
            b[o + 8..o + 16].copy_from_slice(&l.to_ne_bytes());
            b[o + 16..o + 20].copy_from_slice(&s.to_ne_bytes());
        }
        b
    }

    #[test]
    fn latency_struct_is_304_bytes() {
        assert_eq!(LATENCY_LEN, 304);
    }

    #[test]
    fn decodes_latency_attribute() {
        let mut body = header(SMC_DIAG_MODE_SMCD);
        let lat = latency(&[
            (2_000_000_000, 25_000_000, 1),
            (1_000_000_000, 12_000_000, 2),
        ]);
        body.extend(
            Builder::new()
                .bytes(SMC_DIAG_CONNINFO, &conninfo())
                .bytes(SMC_DIAG_LATENCY, &lat)
                .build(),
        );
        let s = decode_sock(&body).unwrap();
        let l = s.latency.unwrap();
        assert_eq!(l.stages[0], LatStage::default());
        assert_eq!(
            l.stages[1],
            LatStage {
                count: 3,
                sum_ns: 30_000_000,
                max_ns: 25_000_000
            }
        );
        assert_eq!(l.stages[1].mean_ns(), 10_000_000);
        assert_eq!(l.stages[0].mean_ns(), 0);
        assert_eq!((l.threshold_us, l.anomaly_total), (10_000, 11));
        assert_eq!(
            l.anomalies,
            vec![
                LatAnomaly {
                    tstamp_ns: 2_000_000_000,
                    lat_ns: 25_000_000,
                    stage: 1
                },
                LatAnomaly {
                    tstamp_ns: 1_000_000_000,
                    lat_ns: 12_000_000,
                    stage: 2
                },
            ]
        );
        assert_eq!(lat_stage_name(l.anomalies[0].stage), "rx_consume");
        assert_eq!(lat_stage_name(l.anomalies[1].stage), "tx_sndbuf_full");
    }

    #[test]
    fn stock_kernel_has_no_latency() {
        let mut body = header(SMC_DIAG_MODE_SMCR);
        body.extend(Builder::new().bytes(SMC_DIAG_CONNINFO, &conninfo()).build());
        assert!(decode_sock(&body).unwrap().latency.is_none());
    }

    #[test]
    fn bad_latency_attributes_are_errors() {
        let mut body = header(SMC_DIAG_MODE_SMCD);
        body.extend(
            Builder::new()
                .bytes(SMC_DIAG_LATENCY, &latency(&[])[..200])
                .build(),
        );
        assert!(decode_sock(&body).unwrap_err().contains("need 304 bytes"));
        let mut lat = latency(&[]);
        lat[104..108].copy_from_slice(&9u32.to_ne_bytes());
        let mut body = header(SMC_DIAG_MODE_SMCD);
        body.extend(Builder::new().bytes(SMC_DIAG_LATENCY, &lat).build());
        assert!(decode_sock(&body).unwrap_err().contains("9 anomalies"));
    }

    #[test]
    fn truncated_structures_are_errors_not_panics() {
        let mut body = header(SMC_DIAG_MODE_SMCR);
        body.extend(
            Builder::new()
                .bytes(SMC_DIAG_CONNINFO, &conninfo()[..40])
                .build(),
        );
        assert!(decode_sock(&body).unwrap_err().contains("need 76 bytes"));
        for cut in 0..DIAG_MSG_LEN {
            assert!(decode_sock(&header(0)[..cut]).is_err());
        }
        let mut body = header(SMC_DIAG_MODE_SMCR);
        body.extend(Builder::new().bytes(SMC_DIAG_FALLBACK, &[1, 2, 3]).build());
        assert!(decode_sock(&body).is_err());
    }
}
