//! `smc-analyze export --pcapng OUT`: the recording as packets, so an
//! operator can open it in Wireshark next to a real capture. The recorder
//! never sees packet bytes (only the kernel's view of each CLC and CDC
//! message), so this module *synthesizes* frames that Wireshark's SMC
//! dissector (`packet-smc.c`) decodes, from the recorded values:
//!
//! - CLC messages (`ST_EV_CLC`): Ethernet/IPv4|IPv6/TCP on the real clcsock
//!   4-tuple, a CLC message of the recorded type, length and version with the
//!   fields the recording knows (QPN, RMBE alert token and size, DMB token,
//!   decline diagnosis); everything else is zero.
//! - SMC-R CDCs (`ST_EV_CDC_SEND` / `ST_EV_CDC_RECV`): RoCEv2 frames
//!   (Ethernet/IP/UDP 4791/BTH RC SEND ONLY/44-byte CDC/ICRC) with the real
//!   destination QP and the recorded seqno, token, cursors and flags.
//! - SMC-R RDMA writes: RoCEv2 RDMA WRITE ONLY with a RETH giving the RMBE
//!   offset and length, carrying the payload bytes only when the recording
//!   captured them (`smc-record --payload N`; a captured prefix is written
//!   as a cut-short frame).
//! - TCP SYN / SYN-ACK / ACK of each recorded client, with the SMC option.
//! - SMC-D CDCs and ISM writes: a documented encapsulation on the IEEE local
//!   experimental EtherType 0x88B5 (see docs/analyzer.md).
//!
//! One interface per recording and link (clcsock TCP, each SMC-R link, ISM),
//! nanosecond timestamps on the reference clock, and per packet an
//! `opt_comment` (connection, message, stage timings) and the `epb_flags`
//! direction. Blocks are written by the `pcap-file` crate. Packets are
//! collected and sorted by time before writing, so memory grows with the
//! number of CLC/CDC/write events (about 200 bytes each).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use smctrace_format::event::{self, EventRef};
use smctrace_format::Reader;

use crate::join::{pt, Analysis, Dir, Message, STAGES};
use crate::model::{Addr, Mode, Side};

/// UDP destination port of RoCEv2.
pub const ROCEV2_PORT: u16 = 4791;
/// EtherType of the SMC-D encapsulation (IEEE 802 local experimental 1).
pub const SMCD_ETHERTYPE: u16 = 0x88B5;
/// Magic at the start of an SMC-D encapsulated frame.
pub const SMCD_MAGIC: &[u8; 4] = b"smcd";
/// BTH opcodes (RC).
const OP_SEND_ONLY: u8 = 0x04;
const OP_RDMA_WRITE_ONLY: u8 = 0x0A;
/// EBCDIC eyecatchers.
const EYE_SMCR: [u8; 4] = [0xE2, 0xD4, 0xC3, 0xD9];
const EYE_SMCD: [u8; 4] = [0xE2, 0xD4, 0xC3, 0xC4];

/// What was written.
#[derive(Debug, Default)]
pub struct ExportSummary {
    pub interfaces: usize,
    pub clc: u64,
    pub cdc: u64,
    pub writes: u64,
    pub smcd: u64,
    /// CLC receive events not written because the sender's frame was.
    pub clc_merged: u64,
    /// Events that could not be placed (no 4-tuple or no link known).
    pub skipped: u64,
}

/// A CLC segment; sequence and acknowledgment numbers are assigned in time
/// order when the file is written.
struct Tcp {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    /// TCP flags (PSH|ACK for CLC data; SYN, SYN|ACK, ACK for the handshake).
    flags: u8,
    opts: Vec<u8>,
    payload: Vec<u8>,
    macs: (u8, u8),
}

struct Pkt {
    ts: i128,
    iface: u32,
    data: Vec<u8>,
    tcp: Option<Tcp>,
    /// Length on the wire when `data` holds only the captured prefix.
    orig_len: Option<u32>,
    comment: String,
    outbound: bool,
}

/// Interfaces in order of first use.
#[derive(Default)]
struct Ifaces {
    keys: HashMap<(usize, String), u32>,
    list: Vec<(String, String)>,
}

impl Ifaces {
    fn get(&mut self, rec: usize, dev: String, name: impl FnOnce() -> (String, String)) -> u32 {
        let n = self.list.len() as u32;
        *self.keys.entry((rec, dev)).or_insert_with(|| {
            self.list.push(name());
            n
        })
    }
}

fn ip_of(a: &Addr) -> Option<IpAddr> {
    a.ip.parse().ok()
}

/// Locally administered MAC naming a recording's host (02:53:4d:43:00:rec).
fn mac(rec_hint: u8) -> [u8; 6] {
    [0x02, 0x53, 0x4d, 0x43, 0x00, rec_hint]
}

fn ones_sum(data: &[u8], mut sum: u32) -> u32 {
    for c in data.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IP header for an L4 payload; `l4` already holds its header.
/// Returns the frame and the offset of the IP header. `l4_csum_at` (offset
/// inside `l4`) receives the TCP checksum; UDP over IPv4 keeps 0 (allowed).
fn ip_frame(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    mut l4: Vec<u8>,
    l4_csum_at: Option<usize>,
    macs: (u8, u8),
) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 40 + l4.len());
    f.extend_from_slice(&mac(macs.1));
    f.extend_from_slice(&mac(macs.0));
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if let Some(at) = l4_csum_at {
                let mut sum = ones_sum(&s.octets(), 0);
                sum = ones_sum(&d.octets(), sum);
                sum += proto as u32 + l4.len() as u32;
                let c = fold(ones_sum(&l4, sum));
                l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h[6] = 0x40; // DF
            h[8] = 64;
            h[9] = proto;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = fold(ones_sum(&h, 0));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        _ => {
            let s6 = match src {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            let d6 = match dst {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            if let Some(at) = l4_csum_at {
                let mut sum = ones_sum(&s6.octets(), 0);
                sum = ones_sum(&d6.octets(), sum);
                sum += l4.len() as u32 + proto as u32;
                let c = fold(ones_sum(&l4, sum));
                l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            f.extend_from_slice(&0x86DDu16.to_be_bytes());
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
            h[6] = proto;
            h[7] = 64;
            h[8..24].copy_from_slice(&s6.octets());
            h[24..40].copy_from_slice(&d6.octets());
            f.extend_from_slice(&h);
        }
    }
    f.extend_from_slice(&l4);
    f
}

/// RoCEv2 invariant CRC (IBA Annex A17): CRC-32 over 8 bytes of 1s, the IP
/// header with TOS/TTL/checksum (IPv4) or class/flow/hop limit (IPv6) set to
/// 1s, the UDP header with its checksum set to 1s, the BTH with its reserved
/// byte set to 1s, and the payload. Appended little-endian, as rxe does.
fn append_icrc(frame: &mut Vec<u8>) {
    let mut p = vec![0xffu8; 8];
    let mut ip = frame[14..].to_vec();
    let ip_len = if ip[0] >> 4 == 4 {
        ip[1] = 0xff;
        ip[8] = 0xff;
        ip[10] = 0xff;
        ip[11] = 0xff;
        20
    } else {
        ip[0] |= 0x0f;
        ip[1] = 0xff;
        ip[2] = 0xff;
        ip[3] = 0xff;
        ip[7] = 0xff;
        40
    };
    ip[ip_len + 6] = 0xff;
    ip[ip_len + 7] = 0xff;
    ip[ip_len + 8 + 4] = 0xff;
    p.extend_from_slice(&ip);
    let crc = crc32fast::hash(&p);
    frame.extend_from_slice(&crc.to_le_bytes());
}

/// A RoCEv2 frame: UDP 4791, BTH, `payload`, ICRC. The IP/UDP lengths
/// include the ICRC.
#[allow(clippy::too_many_arguments)] // one argument per header field that varies, plus the payload
fn rocev2(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    opcode: u8,
    dqp: u32,
    psn: u32,
    payload: &[u8],
    macs: (u8, u8),
) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(8 + 12 + payload.len() + 4);
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&ROCEV2_PORT.to_be_bytes());
    l4.extend_from_slice(&((8 + 12 + payload.len() + 4) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    // BTH: opcode, SE|M|pad|tver, P_Key, resv8a, dest QP, A|resv7, PSN.
    l4.push(opcode);
    l4.push(if opcode == OP_SEND_ONLY { 0x80 } else { 0x00 });
    l4.extend_from_slice(&0xffffu16.to_be_bytes());
    l4.push(0);
    l4.extend_from_slice(&dqp.to_be_bytes()[1..]);
    l4.push(0x80);
    l4.extend_from_slice(&(psn & 0xff_ffff).to_be_bytes()[1..]);
    l4.extend_from_slice(payload);
    // The ICRC's 4 bytes are counted in the IP length: add a placeholder,
    // build the frame, then replace it with the CRC over everything before.
    l4.extend_from_slice(&[0; 4]);
    let mut f = ip_frame(src, dst, 17, l4, None, macs);
    f.truncate(f.len() - 4);
    append_icrc(&mut f);
    // IPv6 requires a UDP checksum (IPv4 may leave it 0, as RoCEv2 does);
    // the ICRC masks that field, so it is filled in last.
    if f[12..14] == [0x86, 0xDD] {
        let mut sum = ones_sum(&f[22..54], 0);
        sum += 17 + (f.len() - 54) as u32;
        let c = match fold(ones_sum(&f[54..], sum)) {
            0 => 0xffff,
            c => c,
        };
        f[60..62].copy_from_slice(&c.to_be_bytes());
    }
    f
}

/// The 44-byte wire CDC (`struct smc_cdc_msg`, big-endian).
pub fn cdc_bytes(c: &event::Cdc) -> [u8; 44] {
    let mut b = [0u8; 44];
    b[0] = 0xFE;
    b[1] = 44;
    b[2..4].copy_from_slice(&c.seqno.to_be_bytes());
    b[4..8].copy_from_slice(&c.token.to_be_bytes());
    b[10..12].copy_from_slice(&c.prod.wrap.to_be_bytes());
    b[12..16].copy_from_slice(&c.prod.count.to_be_bytes());
    b[18..20].copy_from_slice(&c.cons.wrap.to_be_bytes());
    b[20..24].copy_from_slice(&c.cons.count.to_be_bytes());
    b[24] = c.prod_flags;
    b[25] = c.conn_state_flags;
    b
}

/// `smc_compress_bufsize`: 0 = 16 KiB, n = 16 KiB << n.
fn compress_bufsize(len: u32) -> u8 {
    let mut n = 0u8;
    while (16384u64 << n) < len as u64 && n < 15 {
        n += 1;
    }
    n
}

/// What a synthesized CLC message carries besides its header.
struct ClcFields {
    smcd: bool,
    qpn: u32,
    alert_token: u32,
    rmbe_size: u32,
    dmb_token: u64,
    diag: u32,
}

/// Minimal default lengths (v1) when the recorded length is unusable.
fn clc_default_len(t: u8, smcd: bool) -> u16 {
    match t {
        1 => 52,
        2 | 3 if smcd => 48,
        2 | 3 => 68,
        _ => 28,
    }
}

/// A CLC message of `len` bytes: header, the known fields at their
/// `struct smc_clc_msg_*` offsets, zeros, and the trailing eyecatcher.
fn clc_bytes(t: u8, len: u16, version: u8, path: u8, f: &ClcFields) -> Vec<u8> {
    let min = 12;
    let len = if (len as usize) < min {
        clc_default_len(t, f.smcd)
    } else {
        len
    };
    let eye = if f.smcd || path == b'D' || version >= 2 {
        EYE_SMCD
    } else {
        EYE_SMCR
    };
    let mut b = vec![0u8; len as usize];
    b[0..4].copy_from_slice(&eye);
    b[4] = t;
    b[5..7].copy_from_slice(&len.to_be_bytes());
    b[7] = (version.max(1) & 0x0f) << 4 | if f.smcd { 0x01 } else { 0x00 };
    let n = b.len();
    b[n - 4..].copy_from_slice(&eye);
    match t {
        2 | 3 if !f.smcd && n >= 68 => {
            b[38..41].copy_from_slice(&f.qpn.to_be_bytes()[1..]);
            b[46..50].copy_from_slice(&f.alert_token.to_be_bytes());
            b[50] = compress_bufsize(f.rmbe_size) << 4 | 3; // qp_mtu 3 = 1024
        }
        2 | 3 if f.smcd && n >= 48 => {
            b[16..24].copy_from_slice(&f.dmb_token.to_be_bytes());
        }
        4 if n >= 28 => {
            b[16..20].copy_from_slice(&f.diag.to_be_bytes());
        }
        _ => {}
    }
    b
}

fn tcp_segment(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let hl = 20 + opts.len();
    let mut t = Vec::with_capacity(hl + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.push(((hl / 4) as u8) << 4);
    t.push(flags);
    t.extend_from_slice(&65535u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(opts);
    t.extend_from_slice(payload);
    t
}

fn clc_name(t: u8) -> &'static str {
    match t {
        1 => "proposal",
        2 => "accept",
        3 => "confirm",
        4 => "decline",
        _ => "unknown",
    }
}

fn fmt_ns(ns: i64) -> String {
    crate::duration::fmt(ns)
}

/// The comment of a message: id, size, stream range and every known stage.
fn message_comment(id: usize, m: &Message) -> String {
    let mut s = format!(
        "msg {id} {} {} B stream [{}, {})",
        if m.dir == Dir::Forward { "->" } else { "<-" },
        m.len,
        m.start,
        m.end
    );
    if m.incomplete() {
        s.push_str(&format!(
            " incomplete({})",
            crate::model::gap::names(m.gaps).join("|")
        ));
    }
    for (d, v) in STAGES.iter().zip(m.stages.iter()) {
        if let Some(v) = v {
            s.push_str(&format!(" {}={}", d.name, fmt_ns(*v)));
        }
    }
    s
}

/// Messages indexed by (side, seqno) for the sender's CDC and the receiver's.
struct MsgIndex<'a> {
    msgs: &'a [Message],
    tx: HashMap<(usize, u16), Vec<usize>>,
    rx: HashMap<(usize, u16), Vec<usize>>,
}

impl<'a> MsgIndex<'a> {
    fn new(msgs: &'a [Message]) -> MsgIndex<'a> {
        let mut tx: HashMap<(usize, u16), Vec<usize>> = HashMap::new();
        let mut rx: HashMap<(usize, u16), Vec<usize>> = HashMap::new();
        for (i, m) in msgs.iter().enumerate() {
            let Some(q) = m.cdc_seqno else { continue };
            if let Some(s) = m.sender {
                tx.entry((s, q)).or_default().push(i);
            }
            if let Some(r) = m.receiver {
                rx.entry((r, q)).or_default().push(i);
            }
        }
        MsgIndex { msgs, tx, rx }
    }

    /// Messages whose CDC this is: same side and seqno, the point nearest
    /// to `t` (the u16 seqno wraps), all messages sharing that CDC.
    fn find(&self, tx: bool, side: usize, seqno: u16, t: i64) -> Vec<usize> {
        let map = if tx { &self.tx } else { &self.rx };
        let point = if tx { pt::CDC_SEND } else { pt::CDC_RECV };
        let Some(v) = map.get(&(side, seqno)) else {
            return Vec::new();
        };
        let Some(best) = v
            .iter()
            .filter_map(|&i| self.msgs[i].points[point].map(|p| (p, i)))
            .min_by_key(|(p, _)| (p - t).abs())
        else {
            return Vec::new();
        };
        v.iter()
            .copied()
            .filter(|&i| self.msgs[i].points[point] == Some(best.0))
            .collect()
    }
}

/// Payload bytes a recording captured (`smc-record --payload N`: the first N
/// bytes of each send), per side by absolute send-stream offset
/// (`wrap * ring + count`). That offset is only right until the 16-bit wrap
/// counter overflows; a side whose counter went backwards gets no payload.
#[derive(Default)]
struct PayloadStore {
    chunks: std::collections::BTreeMap<u64, Vec<u8>>,
    max_wrap: u16,
    max_prod_wrap: u16,
    overflowed: bool,
}

impl PayloadStore {
    fn see_wrap(max: &mut u16, overflowed: &mut bool, wrap: u16) {
        if wrap.saturating_add(1) < *max {
            *overflowed = true;
        }
        *max = (*max).max(wrap);
    }

    /// The captured bytes from `b` on, contiguous, at most up to `a`.
    fn bytes(&self, b: u64, a: u64) -> Vec<u8> {
        let mut out = Vec::new();
        if self.overflowed {
            return out;
        }
        let mut pos = b;
        for (&start, data) in self
            .chunks
            .range(b.saturating_sub(event::PAYLOAD_MAX as u64)..a)
        {
            let end = start + data.len() as u64;
            if end <= pos {
                continue;
            }
            if start > pos {
                break;
            }
            let to = end.min(a);
            out.extend_from_slice(&data[(pos - start) as usize..(to - start) as usize]);
            pos = to;
            if pos >= a {
                break;
            }
        }
        out
    }
}

/// Sides of each recording by sock id and by local alert token, in time order.
struct SideIndex {
    by_sock: HashMap<(usize, u64), Vec<usize>>,
    by_token: HashMap<(usize, u32), Vec<usize>>,
}

impl SideIndex {
    fn new(sides: &[Side]) -> SideIndex {
        let mut by_sock: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
        let mut by_token: HashMap<(usize, u32), Vec<usize>> = HashMap::new();
        for (i, s) in sides.iter().enumerate() {
            by_sock.entry((s.rec, s.sock)).or_default().push(i);
            if let Some(t) = s.local_token {
                by_token.entry((s.rec, t)).or_default().push(i);
            }
        }
        for v in by_sock.values_mut().chain(by_token.values_mut()) {
            v.sort_by_key(|&i| sides[i].first_ts);
        }
        SideIndex { by_sock, by_token }
    }

    fn pick(v: Option<&Vec<usize>>, sides: &[Side], ts: u64) -> Option<usize> {
        let v = v?;
        v.iter()
            .rev()
            .copied()
            .find(|&i| sides[i].first_ts <= ts)
            .or_else(|| v.first().copied())
    }
}

/// Clock offset of recording `r` to recording 0 from the CLC messages
/// alone, for placing packets when no CDCs could be paired (a connection
/// that fell back): like the analyzer's CDC bracketing, the smallest apparent
/// one-way delay each way bounds the offset; the midpoint is taken. Needs CLC
/// messages in both directions. Not used by the report.
fn clc_offset(a: &Analysis, r: usize) -> Option<i64> {
    if r == 0 {
        return Some(0);
    }
    let (mut to, mut from): (Option<i64>, Option<i64>) = (None, None);
    for c in &a.conns {
        let s0 = c.sides.iter().map(|&i| &a.sides[i]).find(|s| s.rec == 0);
        let sr = c.sides.iter().map(|&i| &a.sides[i]).find(|s| s.rec == r);
        let (Some(s0), Some(sr)) = (s0, sr) else {
            continue;
        };
        for (tx, rx, acc) in [(s0, sr, &mut to), (sr, s0, &mut from)] {
            for t in tx.clc.iter().filter(|e| e.dir == "tx") {
                if let Some(x) = rx
                    .clc
                    .iter()
                    .find(|e| e.dir == "rx" && e.clc_type == t.clc_type)
                {
                    let d = x.ts as i64 - t.ts as i64;
                    *acc = Some(acc.map_or(d, |v: i64| v.min(d)));
                }
            }
        }
    }
    // to = offset + delay_to, from = -offset + delay_from.
    Some(((to? as i128 - from? as i128) / 2) as i64)
}

/// The clcsock 4-tuple of a side: (local, remote).
fn tuple(s: &Side) -> Option<(Addr, Addr)> {
    if let Some(i) = &s.info {
        if i.local.port != 0 && i.remote.port != 0 {
            return Some((i.local.clone(), i.remote.clone()));
        }
    }
    Some((s.snapshot_local.clone()?, s.connect_dst.clone()?))
}

/// Write the pcapng of the analyzed recordings `paths` (in the order given
/// to the analysis) to `out`. `conn_filter`: only the connection with this id.
pub fn write(
    a: &Analysis,
    msgs: &[Message],
    paths: &[std::path::PathBuf],
    out: &Path,
    conn_filter: Option<u32>,
) -> Result<ExportSummary, String> {
    let mut sum = ExportSummary::default();
    let sides = SideIndex::new(&a.sides);
    let idx = MsgIndex::new(msgs);
    let mut ifaces = Ifaces::default();
    let mut pkts: Vec<Pkt> = Vec::new();
    // PSNs per (recording, dest QP).
    let mut psn: HashMap<(usize, u32), u32> = HashMap::new();

    let readers: Vec<Reader> = paths
        .iter()
        .map(|p| Reader::open(p).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // Wall time: the reference recording's clock when the offset is known,
    // else the recording's own clock.
    let ref_clock = readers[0].metadata().clock;
    // The CLC header as each receiver saw it, by (side, type): the send
    // hooks do not see the length (recorded as 0), the receive side does.
    let mut clc_rx: HashMap<(usize, u8), (u16, u8, u8)> = HashMap::new();
    for (r, reader) in readers.iter().enumerate() {
        for c in reader.chunks() {
            let Ok(d) = c.and_then(|c| reader.decode(&c)) else {
                continue;
            };
            for ev in d.records() {
                let Ok(EventRef::Clc(e)) = ev else { continue };
                if e.dir != event::DIR_RX {
                    continue;
                }
                if let Some(si) =
                    SideIndex::pick(sides.by_sock.get(&(r, e.sock)), &a.sides, e.hdr.ts_ns)
                {
                    clc_rx
                        .entry((si, e.clc_type))
                        .or_insert((e.length, e.version, e.path));
                }
            }
        }
    }
    for (r, reader) in readers.iter().enumerate() {
        let md = reader.metadata();
        let (off, off_from_clc) = match a.offset(r) {
            Some(o) => (Some(o), false),
            None => match clc_offset(a, r) {
                Some(o) => (Some(o), true),
                None => (None, false),
            },
        };
        let wall = |ts: u64| -> i128 {
            match off {
                Some(o) => ref_clock.to_realtime_ns((ts as i64).saturating_sub(o).max(0) as u64),
                None => md.clock.to_realtime_ns(ts),
            }
        };
        let stem = paths[r]
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let host = if md.host.is_empty() || md.host == "(none)" {
            stem.clone()
        } else {
            md.host.clone()
        };
        let clock_note = match off {
            Some(0) if r == 0 => "reference clock".to_string(),
            Some(o) if off_from_clc => {
                format!("corrected to recording 0's clock by -({}), estimated from CLC messages (no CDCs to pair; for display only)", fmt_ns(o))
            }
            Some(o) => format!("corrected to recording 0's clock by -({})", fmt_ns(o)),
            None => "own clock (offset to recording 0 unknown)".to_string(),
        };
        let rec_desc = format!(
            "recording {r} {} (host {host}, kernel {}), {clock_note}",
            paths[r].display(),
            md.kernel_release
        );
        let mhost = r as u8 + 1;

        let mut payloads: HashMap<usize, PayloadStore> = HashMap::new();
        for c in reader.chunks() {
            let Ok(d) = c.and_then(|c| reader.decode(&c)) else {
                continue;
            };
            for ev in d.records() {
                let Ok(ev) = ev else { break };
                let EventRef::Payload(p, bytes) = ev else {
                    continue;
                };
                let Some(si) =
                    SideIndex::pick(sides.by_sock.get(&(r, p.sock)), &a.sides, p.hdr.ts_ns)
                else {
                    continue;
                };
                let Some(ring) = a.sides[si]
                    .info
                    .as_ref()
                    .map(|i| i.sndbuf_len as u64)
                    .filter(|&l| l > 0)
                else {
                    continue;
                };
                let st = payloads.entry(si).or_default();
                PayloadStore::see_wrap(&mut st.max_wrap, &mut st.overflowed, p.prep_before.wrap);
                let n = (p.captured as usize)
                    .min(bytes.len())
                    .min(p.msg_len as usize);
                st.chunks.insert(
                    p.prep_before.wrap as u64 * ring + p.prep_before.count as u64,
                    bytes[..n].to_vec(),
                );
            }
        }
        for c in reader.chunks() {
            let Ok(d) = c.and_then(|c| reader.decode(&c)) else {
                continue;
            };
            for ev in d.records() {
                let Ok(ev) = ev else { break };
                let (side, ts) = match &ev {
                    EventRef::Clc(e) => (
                        SideIndex::pick(sides.by_sock.get(&(r, e.sock)), &a.sides, e.hdr.ts_ns),
                        e.hdr.ts_ns,
                    ),
                    EventRef::CdcSend(e) => (
                        SideIndex::pick(sides.by_sock.get(&(r, e.sock)), &a.sides, e.hdr.ts_ns),
                        e.hdr.ts_ns,
                    ),
                    EventRef::CdcRecv(e) => {
                        let by_sock = if e.sock != 0 {
                            SideIndex::pick(sides.by_sock.get(&(r, e.sock)), &a.sides, e.hdr.ts_ns)
                        } else {
                            None
                        };
                        (
                            by_sock.or_else(|| {
                                SideIndex::pick(
                                    sides.by_token.get(&(r, e.token)),
                                    &a.sides,
                                    e.hdr.ts_ns,
                                )
                            }),
                            e.hdr.ts_ns,
                        )
                    }
                    EventRef::RdmaWrite(e) => (
                        SideIndex::pick(sides.by_sock.get(&(r, e.sock)), &a.sides, e.hdr.ts_ns),
                        e.hdr.ts_ns,
                    ),
                    _ => continue,
                };
                let Some(si) = side else {
                    sum.skipped += 1;
                    continue;
                };
                let s = &a.sides[si];
                let conn = &a.conns[a.side_conn[si]];
                if conn_filter.is_some_and(|c| c != conn.id) {
                    continue;
                }
                let Some((local, remote)) = tuple(s) else {
                    sum.skipped += 1;
                    continue;
                };
                let (Some(lip), Some(rip)) = (ip_of(&local), ip_of(&remote)) else {
                    sum.skipped += 1;
                    continue;
                };
                let peer_host = 0x10 | mhost;
                let tref = (ts as i64).saturating_sub(off.unwrap_or(0));
                let info = s.info.as_ref();
                match ev {
                    EventRef::Clc(e) => {
                        let tx = e.dir == event::DIR_TX;
                        // Wireshark tracks TCP by 4-tuple across interfaces: the
                        // same CLC message twice (sender's and receiver's host)
                        // would be a retransmission and not decoded. One frame
                        // per message: the sender's, or the receiver's when
                        // the sender was not recorded; the other time goes
                        // into the comment.
                        let name = clc_name(e.clc_type);
                        let peer = a.peer(si).map(|p| &a.sides[p]);
                        let peer_ev = |dir: &str| {
                            peer.and_then(|p| {
                                p.clc
                                    .iter()
                                    .find(|c| c.dir == dir && c.clc_type == name)
                                    .map(|c| (p.rec, c.ts))
                            })
                        };
                        if !tx && peer_ev("tx").is_some() {
                            sum.clc_merged += 1;
                            continue;
                        }
                        let other = if tx {
                            peer_ev("rx").map(|(pr, pts)| match a.offset(pr).filter(|_| off.is_some()) {
                                Some(o) => format!("; received by the peer (recording {pr}) {} later", fmt_ns((pts as i64 - o) - tref)),
                                None => format!("; received by the peer (recording {pr}, clock offset unknown)"),
                            })
                        } else {
                            Some("; the sender was not recorded: frame from the receiver's event".to_string())
                        }
                        .unwrap_or_default();
                        let smcd = s.mode == Mode::SmcD || e.path == b'D';
                        let f = ClcFields {
                            smcd,
                            qpn: info
                                .map(|i| if tx { i.qpn } else { i.peer_qpn })
                                .unwrap_or(0),
                            alert_token: if tx { s.local_token } else { s.peer_token }.unwrap_or(0),
                            rmbe_size: info
                                .map(|i| if tx { i.rmb_len } else { i.peer_rmbe_size })
                                .unwrap_or(0),
                            dmb_token: info
                                .map(|i| {
                                    if tx {
                                        i.local_dmb_token
                                    } else {
                                        i.peer_dmb_token
                                    }
                                })
                                .unwrap_or(0),
                            diag: e.decline_diag,
                        };
                        // A send recorded without length: take the header the
                        // receiver read (same message), else a v1 default.
                        let (length, version, path, hdr_from) =
                            match a.peer(si).and_then(|p| clc_rx.get(&(p, e.clc_type))) {
                                Some(&(l, v, p)) if tx && (e.length as usize) < 12 => {
                                    (l, v, p, "; length and version as the receiver read them")
                                }
                                _ if (e.length as usize) < 12 => (
                                    0,
                                    e.version,
                                    e.path,
                                    "; length not recorded: v1 default length",
                                ),
                                _ => (e.length, e.version, e.path, ""),
                            };
                        let msg = clc_bytes(e.clc_type, length, version, path, &f);
                        let (src, dst) = if tx {
                            (&local, &remote)
                        } else {
                            (&remote, &local)
                        };
                        let (ms, md_) = if tx {
                            (mhost, peer_host)
                        } else {
                            (peer_host, mhost)
                        };
                        let tcp = Tcp {
                            src: ip_of(src).unwrap_or(lip),
                            dst: ip_of(dst).unwrap_or(rip),
                            sport: src.port,
                            dport: dst.port,
                            flags: 0x18,
                            opts: Vec::new(),
                            payload: msg.clone(),
                            macs: (ms, md_),
                        };
                        let iface = ifaces.get(r, "tcp".into(), || {
                            (
                                format!("{host}:clcsock"),
                                format!("{rec_desc}; CLC over the clcsock (TCP)"),
                            )
                        });
                        let comment = format!(
                            "conn {} clc {} {} ({} B, v{}{}) rc {}{other}{hdr_from} [synthesized: only the header, {} are from the recording]",
                            conn.id,
                            if tx { "tx" } else { "rx" },
                            clc_name(e.clc_type),
                            msg.len(),
                            version,
                            if e.clc_type == 4 { format!(", peer diagnosis {:#010x}", e.decline_diag) } else { String::new() },
                            e.rc,
                            match (e.clc_type, smcd) {
                                (4, _) => "peer_diagnosis",
                                (2 | 3, false) => "qpn, rmbe_alert_token, rmbe_size",
                                (2 | 3, true) => "the DMB token",
                                _ => "type, length and version",
                            }
                        );
                        pkts.push(Pkt {
                            ts: wall(e.hdr.ts_ns),
                            iface,
                            data: Vec::new(),
                            tcp: Some(tcp),
                            orig_len: None,
                            comment,
                            outbound: tx,
                        });
                        sum.clc += 1;
                    }
                    EventRef::CdcSend(c) | EventRef::CdcRecv(c) => {
                        let tx = matches!(ev, EventRef::CdcSend(_));
                        let (src, dst, ms, md_) = if tx {
                            (lip, rip, mhost, peer_host)
                        } else {
                            (rip, lip, peer_host, mhost)
                        };
                        let found = idx.find(tx, si, c.seqno, tref);
                        let mut comment = format!(
                            "conn {} cdc {} seqno {} token {:#010x} prod {}:{} cons {}:{}",
                            conn.id,
                            if tx { "tx" } else { "rx" },
                            c.seqno,
                            c.token,
                            c.prod.wrap,
                            c.prod.count,
                            c.cons.wrap,
                            c.cons.count
                        );
                        if found.is_empty() {
                            comment.push_str(
                                "; no message ends in this CDC (cursor update or earlier part)",
                            );
                        }
                        for i in found {
                            comment.push_str("; ");
                            comment.push_str(&message_comment(i + 1, &msgs[i]));
                        }
                        if c.cdc_flags & event::CDC_F_SMCD != 0 || s.mode == Mode::SmcD {
                            let mut p = Vec::with_capacity(48);
                            p.extend_from_slice(SMCD_MAGIC);
                            p.extend_from_slice(&[1, 0, 0, 0]);
                            let tok = info
                                .map(|i| {
                                    if tx {
                                        i.peer_dmb_token
                                    } else {
                                        i.local_dmb_token
                                    }
                                })
                                .unwrap_or(0);
                            p.extend_from_slice(&tok.to_be_bytes());
                            p.extend_from_slice(&smcd_cdc_bytes(&c));
                            let iface = ifaces.get(r, "ism".into(), || {
                                (
                                    format!("{host}:ism"),
                                    format!(
                                        "{rec_desc}; SMC-D (ISM), EtherType 0x88B5 encapsulation"
                                    ),
                                )
                            });
                            pkts.push(Pkt {
                                ts: wall(c.hdr.ts_ns),
                                iface,
                                data: eth_raw(&p, (ms, md_)),
                                comment,
                                tcp: None,
                                orig_len: None,
                                outbound: tx,
                            });
                            sum.smcd += 1;
                            continue;
                        }
                        let Some(i) = info else {
                            sum.skipped += 1;
                            continue;
                        };
                        let dqp = if tx { i.peer_qpn } else { i.qpn };
                        let sqp = if tx { i.qpn } else { i.peer_qpn };
                        let p = psn.entry((r, dqp)).or_insert(0);
                        let my_psn = *p;
                        *p = p.wrapping_add(1) & 0xff_ffff;
                        let frame = rocev2(
                            src,
                            dst,
                            0xC000 | (sqp as u16 & 0x3fff),
                            OP_SEND_ONLY,
                            dqp,
                            my_psn,
                            &cdc_bytes(&c),
                            (ms, md_),
                        );
                        let dev = format!("{} link {}", i.ibname, i.link_id);
                        let iface = ifaces.get(r, dev.clone(), || {
                            (
                                format!("{host}:{}", i.ibname),
                                format!(
                                    "{rec_desc}; SMC-R {dev}, QP {} <-> peer QP {} (RoCEv2)",
                                    i.qpn, i.peer_qpn
                                ),
                            )
                        });
                        pkts.push(Pkt {
                            ts: wall(c.hdr.ts_ns),
                            iface,
                            data: frame,
                            comment,
                            tcp: None,
                            orig_len: None,
                            outbound: tx,
                        });
                        sum.cdc += 1;
                    }
                    EventRef::RdmaWrite(w) => {
                        let comment = format!(
                            "conn {} rdma write prod {}:{} -> {}:{} rc {} [RETH rkey/VA synthesized: VA = offset in the peer RMBE]",
                            conn.id, w.prod_before.wrap, w.prod_before.count, w.prod_after.wrap, w.prod_after.count, w.rc
                        );
                        if s.mode == Mode::SmcD || w.ism_len != 0 {
                            let mut p = Vec::with_capacity(32);
                            p.extend_from_slice(SMCD_MAGIC);
                            p.extend_from_slice(&[2, 0, 0, 0]);
                            p.extend_from_slice(
                                &info.map(|i| i.peer_dmb_token).unwrap_or(0).to_be_bytes(),
                            );
                            p.extend_from_slice(&w.ism_offset.to_be_bytes());
                            p.extend_from_slice(&w.ism_len.to_be_bytes());
                            // Captured payload bytes follow (only what was captured).
                            if let Some(st) = payloads.get_mut(&si) {
                                let ring = w.peer_rmbe_size.max(1) as u64;
                                PayloadStore::see_wrap(
                                    &mut st.max_prod_wrap,
                                    &mut st.overflowed,
                                    w.prod_before.wrap,
                                );
                                let b =
                                    w.prod_before.wrap as u64 * ring + w.prod_before.count as u64;
                                let e = w.prod_after.wrap as u64 * ring + w.prod_after.count as u64;
                                p.extend_from_slice(&st.bytes(b, e));
                            }
                            let iface = ifaces.get(r, "ism".into(), || {
                                (
                                    format!("{host}:ism"),
                                    format!(
                                        "{rec_desc}; SMC-D (ISM), EtherType 0x88B5 encapsulation"
                                    ),
                                )
                            });
                            pkts.push(Pkt {
                                ts: wall(w.hdr.ts_ns),
                                iface,
                                data: eth_raw(&p, (mhost, peer_host)),
                                comment,
                                tcp: None,
                                orig_len: None,
                                outbound: true,
                            });
                            sum.smcd += 1;
                            continue;
                        }
                        let Some(i) = info else {
                            sum.skipped += 1;
                            continue;
                        };
                        let ring = w.peer_rmbe_size.max(1) as u64;
                        let before = w.prod_before.wrap as u64 * ring + w.prod_before.count as u64;
                        let after = w.prod_after.wrap as u64 * ring + w.prod_after.count as u64;
                        let len = after.saturating_sub(before).min(u32::MAX as u64) as u32;
                        let mut reth = Vec::with_capacity(16);
                        reth.extend_from_slice(&(w.prod_before.count as u64).to_be_bytes());
                        reth.extend_from_slice(&0u32.to_be_bytes());
                        reth.extend_from_slice(&len.to_be_bytes());
                        let p = psn.entry((r, i.peer_qpn)).or_insert(0);
                        let my_psn = *p;
                        *p = p.wrapping_add(1) & 0xff_ffff;
                        // Captured payload bytes, if any: the frame then has the
                        // full length on the wire and holds the captured prefix.
                        let data = match payloads.get_mut(&si) {
                            Some(st) => {
                                PayloadStore::see_wrap(
                                    &mut st.max_prod_wrap,
                                    &mut st.overflowed,
                                    w.prod_before.wrap,
                                );
                                st.bytes(before, after)
                            }
                            None => Vec::new(),
                        };
                        let mut orig_len = None;
                        let mut payload_note = "no payload (not recorded)".to_string();
                        if !data.is_empty() {
                            payload_note =
                                format!("payload: {} of {len} bytes captured", data.len());
                            let missing = len as usize - data.len().min(len as usize);
                            reth.extend_from_slice(&data);
                            reth.resize(reth.len() + missing, 0);
                        }
                        let mut frame = rocev2(
                            lip,
                            rip,
                            0xC000 | (i.qpn as u16 & 0x3fff),
                            OP_RDMA_WRITE_ONLY,
                            i.peer_qpn,
                            my_psn,
                            &reth,
                            (mhost, peer_host),
                        );
                        if !data.is_empty() && data.len() < len as usize {
                            orig_len = Some(frame.len() as u32);
                            frame.truncate(frame.len() - 4 - (len as usize - data.len()));
                        }
                        let dev = format!("{} link {}", i.ibname, i.link_id);
                        let iface = ifaces.get(r, dev.clone(), || {
                            (
                                format!("{host}:{}", i.ibname),
                                format!(
                                    "{rec_desc}; SMC-R {dev}, QP {} <-> peer QP {} (RoCEv2)",
                                    i.qpn, i.peer_qpn
                                ),
                            )
                        });
                        pkts.push(Pkt {
                            ts: wall(w.hdr.ts_ns),
                            iface,
                            data: frame,
                            comment: format!("{comment}, {len} B, {payload_note}"),
                            tcp: None,
                            orig_len,
                            outbound: true,
                        });
                        sum.writes += 1;
                    }
                    _ => {}
                }
            }
        }

        // The TCP handshake of every client this recording saw connect:
        // SYN at connect() with the SMC option (kind 254, magic E2D4C3D9),
        // SYN-ACK and ACK just before the first CLC message (their real
        // times are not recorded; they happened in between). The SYN-ACK
        // carries the option when a proposal followed (the client sends one
        // only then).
        for (si, s) in a
            .sides
            .iter()
            .enumerate()
            .filter(|(_, s)| s.rec == r && s.role == crate::model::Role::Client)
        {
            let (Some(t_conn), Some((local, remote))) = (s.connect_ts, tuple(s)) else {
                continue;
            };
            let conn = &a.conns[a.side_conn[si]];
            if conn_filter.is_some_and(|c| c != conn.id) {
                continue;
            }
            let (Some(lip), Some(rip)) = (ip_of(&local), ip_of(&remote)) else {
                continue;
            };
            let first_clc = s.clc.iter().map(|c| c.ts).min();
            let proposal = s
                .clc
                .iter()
                .any(|c| c.dir == "tx" && c.clc_type == "proposal");
            let t_est = first_clc.unwrap_or(t_conn).max(t_conn);
            let iface = ifaces.get(r, "tcp".into(), || {
                (
                    format!("{host}:clcsock"),
                    format!("{rec_desc}; CLC over the clcsock (TCP)"),
                )
            });
            // MSS 1460 (synthesized: Wireshark expects one on a SYN), SMC option, 2 NOPs.
            let opt: &[u8] = &[2, 4, 0x05, 0xB4, 254, 6, 0xE2, 0xD4, 0xC3, 0xD9, 1, 1];
            let mss: &[u8] = &opt[..4];
            let peer_host = 0x10 | mhost;
            let seg = |src: IpAddr,
                       dst: IpAddr,
                       sp: u16,
                       dp: u16,
                       flags: u8,
                       opts: &[u8],
                       macs: (u8, u8)| Tcp {
                src,
                dst,
                sport: sp,
                dport: dp,
                flags,
                opts: opts.to_vec(),
                payload: Vec::new(),
                macs,
            };
            let syns = [
                (
                    wall(t_conn),
                    seg(
                        lip,
                        rip,
                        local.port,
                        remote.port,
                        0x02,
                        opt,
                        (mhost, peer_host),
                    ),
                    true,
                    "SYN with the SMC option at connect()",
                ),
                (
                    wall(t_est).saturating_sub(2),
                    seg(
                        rip,
                        lip,
                        remote.port,
                        local.port,
                        0x12,
                        if proposal { opt } else { mss },
                        (peer_host, mhost),
                    ),
                    false,
                    "SYN-ACK (time not recorded: placed just before the first CLC message)",
                ),
                (
                    wall(t_est).saturating_sub(1),
                    seg(
                        lip,
                        rip,
                        local.port,
                        remote.port,
                        0x10,
                        &[],
                        (mhost, peer_host),
                    ),
                    true,
                    "ACK (time not recorded: placed just before the first CLC message)",
                ),
            ];
            for (ts, t, outbound, what) in syns {
                pkts.push(Pkt {
                    ts,
                    iface,
                    data: Vec::new(),
                    tcp: Some(t),
                    orig_len: None,
                    comment: format!("conn {} tcp {what} [synthesized]", conn.id),
                    outbound,
                });
            }
        }
    }

    pkts.sort_by_key(|p| p.ts);
    // TCP sequence numbers per direction (relative, from 1), acks = the
    // bytes seen in the other direction so far.
    let mut next: HashMap<(IpAddr, u16, IpAddr, u16), u32> = HashMap::new();
    for p in pkts.iter_mut() {
        if let Some(t) = p.tcp.take() {
            // Initial sequence numbers are 0 (the SYN), data starts at 1.
            let syn = t.flags & 0x02 != 0;
            let seq = if syn {
                0
            } else {
                *next.entry((t.src, t.sport, t.dst, t.dport)).or_insert(1)
            };
            let ack = if t.flags & 0x10 == 0 {
                0
            } else {
                *next.entry((t.dst, t.dport, t.src, t.sport)).or_insert(1)
            };
            if !syn {
                next.insert(
                    (t.src, t.sport, t.dst, t.dport),
                    seq.wrapping_add(t.payload.len() as u32),
                );
            }
            let seg = tcp_segment(t.sport, t.dport, seq, ack, t.flags, &t.opts, &t.payload);
            p.data = ip_frame(t.src, t.dst, 6, seg, Some(16), t.macs);
        }
    }
    let file =
        std::fs::File::create(out).map_err(|e| format!("{}: cannot create: {e}", out.display()))?;
    let werr = |e: pcap_file::PcapError| format!("{}: write failed: {e}", out.display());
    let mut w = PcapNgWriter::new(std::io::BufWriter::new(file)).map_err(werr)?;
    for (name, desc) in &ifaces.list {
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                InterfaceDescriptionOption::IfDescription(Cow::Borrowed(desc)),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })
        .map_err(werr)?;
    }
    for p in &pkts {
        let ts = p.ts.max(0) as u128;
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: p.iface,
            timestamp: Duration::new((ts / 1_000_000_000) as u64, (ts % 1_000_000_000) as u32),
            original_len: p.orig_len.unwrap_or(p.data.len() as u32),
            data: Cow::Borrowed(&p.data),
            options: vec![
                EnhancedPacketOption::Comment(Cow::Borrowed(&p.comment)),
                // epb_flags bits 0-1: 1 inbound, 2 outbound.
                EnhancedPacketOption::Flags(if p.outbound { 2 } else { 1 }),
            ],
        })
        .map_err(werr)?;
    }
    use std::io::Write as _;
    w.get_mut()
        .flush()
        .map_err(|e| format!("{}: write failed: {e}", out.display()))?;
    sum.interfaces = ifaces.list.len();
    Ok(sum)
}

/// The 32-byte `struct smcd_cdc_msg` as the kernel lays it out (x86: little-endian).
fn smcd_cdc_bytes(c: &event::Cdc) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = 0xFE;
    let cur = |b: &mut [u8], cu: &event::Curs, pf: u8, cf: u8| {
        b[0..2].copy_from_slice(&cu.wrap.to_le_bytes());
        b[2..6].copy_from_slice(&cu.count.to_le_bytes());
        b[6] = pf;
        b[7] = cf;
    };
    cur(&mut b[8..16], &c.prod, c.prod_flags, c.conn_state_flags);
    cur(&mut b[16..24], &c.cons, 0, 0);
    b
}

/// An Ethernet frame with EtherType 0x88B5 carrying `p`.
fn eth_raw(p: &[u8], macs: (u8, u8)) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + p.len());
    f.extend_from_slice(&mac(macs.1));
    f.extend_from_slice(&mac(macs.0));
    f.extend_from_slice(&SMCD_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(p);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = ip_frame(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            6,
            tcp_segment(1, 2, 1, 1, 0x18, &[], b"abc"),
            Some(16),
            (1, 2),
        );
        assert_eq!(fold(ones_sum(&f[14..34], 0)), 0);
    }

    /// Ones-complement sum of the IPv6 pseudo header and the L4 bytes: 0xffff when valid.
    fn v6_l4_sum(f: &[u8], proto: u8) -> u16 {
        let mut sum = ones_sum(&f[22..54], 0);
        sum += proto as u32 + (f.len() - 54) as u32;
        !fold(ones_sum(&f[54..], sum))
    }

    #[test]
    fn ipv6_tcp_and_udp_checksums_verify() {
        let (a, b): (IpAddr, IpAddr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let t = ip_frame(
            a,
            b,
            6,
            tcp_segment(1, 2, 1, 1, 0x18, &[], b"abcde"),
            Some(16),
            (1, 2),
        );
        assert_eq!(&t[12..14], &[0x86, 0xDD]);
        assert_eq!(v6_l4_sum(&t, 6), 0xffff);
        let u = rocev2(a, b, 0xC001, OP_SEND_ONLY, 7, 1, &[0xFE; 44], (1, 2));
        assert_ne!(&u[60..62], &[0, 0]);
        assert_eq!(v6_l4_sum(&u, 17), 0xffff);
    }

    #[test]
    fn clc_accept_carries_qpn_and_token() {
        let f = ClcFields {
            smcd: false,
            qpn: 0x123456,
            alert_token: 0xdeadbeef,
            rmbe_size: 65536,
            dmb_token: 0,
            diag: 0,
        };
        let b = clc_bytes(2, 68, 1, b'R', &f);
        assert_eq!(&b[0..4], &EYE_SMCR);
        assert_eq!(u16::from_be_bytes([b[5], b[6]]), 68);
        assert_eq!(&b[38..41], &[0x12, 0x34, 0x56]);
        assert_eq!(&b[46..50], &0xdeadbeefu32.to_be_bytes());
        assert_eq!(b[50] >> 4, 2);
        assert_eq!(&b[64..68], &EYE_SMCR);
    }
}

#[cfg(test)]
mod icrc_tests {
    use super::*;

    /// A CDC frame whose ICRC was computed independently with scapy's
    /// `scapy.contrib.roce.BTH` (2.6): `Ether(frame)[BTH].icrc = None; raw(...)`.
    #[test]
    fn icrc_matches_an_independent_implementation() {
        let c = event::Cdc {
            seqno: 7,
            token: 0x0102_0304,
            prod: event::Curs {
                count: 4160,
                wrap: 1,
                _pad: 0,
            },
            cons: event::Curs {
                count: 64,
                wrap: 0,
                _pad: 0,
            },
            prod_flags: 0x10,
            conn_state_flags: 0,
            ..Default::default()
        };
        let f = rocev2(
            "10.77.0.1".parse().unwrap(),
            "10.77.0.2".parse().unwrap(),
            0xC011,
            OP_SEND_ONLY,
            0x11,
            5,
            &cdc_bytes(&c),
            (1, 2),
        );
        assert_eq!(f.len(), 14 + 20 + 8 + 12 + 44 + 4);
        assert_eq!(&f[f.len() - 4..], &[0xc6, 0x2f, 0x2d, 0xcc]);
    }
}
