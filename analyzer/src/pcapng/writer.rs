//! The writer: walks the recordings' CLC, CDC, RDMA-write and ISM events,
//! places each on its interface and on the reference clock, attaches the
//! matching message's timings as a comment, and writes the sorted packets
//! as a pcapng file with the `pcap-file` crate.

use super::*;

use smctrace_format::ClockRef;

/// A CLC segment; sequence and acknowledgment numbers are assigned in time
/// order when the file is written.
pub(super) struct Tcp {
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) sport: u16,
    pub(super) dport: u16,
    /// TCP flags (PSH|ACK for CLC data; SYN, SYN|ACK, ACK for the handshake).
    pub(super) flags: u8,
    pub(super) opts: Vec<u8>,
    pub(super) payload: Vec<u8>,
    pub(super) macs: (u8, u8),
}

pub(super) struct Pkt {
    pub(super) ts: i128,
    pub(super) iface: u32,
    pub(super) data: Vec<u8>,
    pub(super) tcp: Option<Tcp>,
    /// Length on the wire when `data` holds only the captured prefix.
    pub(super) orig_len: Option<u32>,
    pub(super) comment: String,
    pub(super) outbound: bool,
}

/// Interfaces in order of first use.
#[derive(Default)]
pub(super) struct Ifaces {
    pub(super) keys: HashMap<(usize, String), u32>,
    pub(super) list: Vec<(String, String)>,
}

impl Ifaces {
    pub(super) fn get(
        &mut self,
        rec: usize,
        dev: String,
        name: impl FnOnce() -> (String, String),
    ) -> u32 {
        let n = self.list.len() as u32;
        *self.keys.entry((rec, dev)).or_insert_with(|| {
            self.list.push(name());
            n
        })
    }
}

pub(super) fn fmt_ns(ns: i64) -> String {
    crate::duration::fmt(ns)
}

/// The comment of a message: id, size, stream range and every known stage.
pub(super) fn message_comment(id: usize, m: &Message) -> String {
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
pub(super) struct MsgIndex<'a> {
    pub(super) msgs: &'a [Message],
    pub(super) tx: HashMap<(usize, u16), Vec<usize>>,
    pub(super) rx: HashMap<(usize, u16), Vec<usize>>,
}

impl<'a> MsgIndex<'a> {
    pub(super) fn new(msgs: &'a [Message]) -> MsgIndex<'a> {
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
    pub(super) fn find(&self, tx: bool, side: usize, seqno: u16, t: i64) -> Vec<usize> {
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
pub(super) struct PayloadStore {
    pub(super) chunks: std::collections::BTreeMap<u64, Vec<u8>>,
    pub(super) max_wrap: u16,
    pub(super) max_prod_wrap: u16,
    pub(super) overflowed: bool,
}

impl PayloadStore {
    pub(super) fn see_wrap(max: &mut u16, overflowed: &mut bool, wrap: u16) {
        if wrap.saturating_add(1) < *max {
            *overflowed = true;
        }
        *max = (*max).max(wrap);
    }

    /// The captured bytes from `b` on, contiguous, at most up to `a`.
    pub(super) fn bytes(&self, b: u64, a: u64) -> Vec<u8> {
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
pub(super) struct SideIndex {
    pub(super) by_sock: HashMap<(usize, u64), Vec<usize>>,
    pub(super) by_token: HashMap<(usize, u32), Vec<usize>>,
}

impl SideIndex {
    pub(super) fn new(sides: &[Side]) -> SideIndex {
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

    pub(super) fn pick(v: Option<&Vec<usize>>, sides: &[Side], ts: u64) -> Option<usize> {
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
pub(super) fn clc_offset(a: &Analysis, r: usize) -> Option<i64> {
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
pub(super) fn tuple(s: &Side) -> Option<(Addr, Addr)> {
    if let Some(i) = &s.info {
        if i.local.port != 0 && i.remote.port != 0 {
            return Some((i.local.clone(), i.remote.clone()));
        }
    }
    Some((s.snapshot_local.clone()?, s.connect_dst.clone()?))
}

/// Write the pcapng of the analyzed recordings `paths` (in the order given
/// to the analysis) to `out`. `conn_filter`: only the connection with this id.
///
/// The steps: open the recordings, read the CLC headers the receivers saw,
/// turn each recording's events (and its clients' TCP handshakes) into
/// packets on the reference clock, number the TCP segments, write the file.
pub fn write(
    a: &Analysis,
    msgs: &[Message],
    paths: &[std::path::PathBuf],
    out: &Path,
    conn_filter: Option<u32>,
) -> Result<ExportSummary, String> {
    let sides = SideIndex::new(&a.sides);
    let readers: Vec<Reader> = paths
        .iter()
        .map(|p| Reader::open(p).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // Wall time: the reference recording's clock when the offset is known,
    // else the recording's own clock.
    let ref_clock = readers[0].metadata().clock;
    let clc_rx = received_clc_headers(a, &readers, &sides);
    let mut packets = Packets {
        a,
        msgs,
        idx: MsgIndex::new(msgs),
        sides,
        clc_rx,
        conn_filter,
        sum: ExportSummary::default(),
        ifaces: Ifaces::default(),
        pkts: Vec::new(),
        psn: HashMap::new(),
    };
    for (r, reader) in readers.iter().enumerate() {
        let place = Placement::new(a, r, reader, paths, ref_clock);
        let mut payloads = captured_payloads(a, &packets.sides, r, reader);
        packets.events(&place, reader, &mut payloads);
        packets.handshakes(&place);
    }
    let Packets {
        mut sum,
        ifaces,
        mut pkts,
        ..
    } = packets;
    pkts.sort_by_key(|p| p.ts);
    number_tcp_segments(&mut pkts);
    write_blocks(out, &ifaces, &pkts)?;
    sum.interfaces = ifaces.list.len();
    Ok(sum)
}

/// The CLC header as each receiver saw it, by (side, type): the send
/// hooks do not see the length (recorded as 0), the receive side does.
fn received_clc_headers(
    a: &Analysis,
    readers: &[Reader],
    sides: &SideIndex,
) -> HashMap<(usize, u8), (u16, u8, u8)> {
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
    clc_rx
}

/// Where one recording's packets go: its interfaces' names and its clock.
struct Placement {
    r: usize,
    off: Option<i64>,
    ref_clock: ClockRef,
    own_clock: ClockRef,
    host: String,
    rec_desc: String,
    /// The recording's host byte in the synthesized MAC addresses.
    mhost: u8,
}

impl Placement {
    fn new(
        a: &Analysis,
        r: usize,
        reader: &Reader,
        paths: &[std::path::PathBuf],
        ref_clock: ClockRef,
    ) -> Placement {
        let md = reader.metadata();
        let (off, off_from_clc) = match a.offset(r) {
            Some(o) => (Some(o), false),
            None => match clc_offset(a, r) {
                Some(o) => (Some(o), true),
                None => (None, false),
            },
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
        Placement {
            r,
            off,
            ref_clock,
            own_clock: md.clock,
            host,
            rec_desc,
            mhost,
        }
    }

    /// Wall time of a timestamp of this recording (see [`write()`]).
    fn wall(&self, ts: u64) -> i128 {
        match self.off {
            Some(o) => self
                .ref_clock
                .to_realtime_ns((ts as i64).saturating_sub(o).max(0) as u64),
            None => self.own_clock.to_realtime_ns(ts),
        }
    }
}

/// The payload bytes a recording captured (`smc-record --payload N`), by side.
fn captured_payloads(
    a: &Analysis,
    sides: &SideIndex,
    r: usize,
    reader: &Reader,
) -> HashMap<usize, PayloadStore> {
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
            let Some(si) = SideIndex::pick(sides.by_sock.get(&(r, p.sock)), &a.sides, p.hdr.ts_ns)
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
    payloads
}

/// The packets being collected, and what placing them needs.
struct Packets<'a> {
    a: &'a Analysis,
    msgs: &'a [Message],
    idx: MsgIndex<'a>,
    sides: SideIndex,
    clc_rx: HashMap<(usize, u8), (u16, u8, u8)>,
    conn_filter: Option<u32>,
    sum: ExportSummary,
    ifaces: Ifaces,
    pkts: Vec<Pkt>,
    /// PSNs per (recording, dest QP).
    psn: HashMap<(usize, u32), u32>,
}

impl Packets<'_> {
    /// The CLC, CDC, RDMA-write and ISM packets of one recording's events.
    fn events(
        &mut self,
        place: &Placement,
        reader: &Reader,
        payloads: &mut HashMap<usize, PayloadStore>,
    ) {
        let (a, msgs, conn_filter) = (self.a, self.msgs, self.conn_filter);
        let (idx, sides, clc_rx) = (&self.idx, &self.sides, &self.clc_rx);
        let (ifaces, pkts, psn, sum) = (
            &mut self.ifaces,
            &mut self.pkts,
            &mut self.psn,
            &mut self.sum,
        );
        let Placement {
            r,
            off,
            ref host,
            ref rec_desc,
            mhost,
            ..
        } = *place;
        let wall = |ts: u64| place.wall(ts);
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
                        let name = ClcType::from_u8(e.clc_type);
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
                            ClcType::from_u8(e.clc_type),
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
    }

    /// The TCP handshake of every client this recording saw connect:
    /// SYN at connect() with the SMC option (kind 254, magic E2D4C3D9),
    /// SYN-ACK and ACK just before the first CLC message (their real
    /// times are not recorded; they happened in between). The SYN-ACK
    /// carries the option when a proposal followed (the client sends one
    /// only then).
    fn handshakes(&mut self, place: &Placement) {
        let (a, conn_filter) = (self.a, self.conn_filter);
        let (ifaces, pkts) = (&mut self.ifaces, &mut self.pkts);
        let Placement {
            r,
            ref host,
            ref rec_desc,
            mhost,
            ..
        } = *place;
        let wall = |ts: u64| place.wall(ts);
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
                .any(|c| c.dir == "tx" && c.clc_type == ClcType::Proposal);
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
}

/// TCP sequence numbers per direction (relative, from 1), acks = the
/// bytes seen in the other direction so far; builds the TCP frames.
fn number_tcp_segments(pkts: &mut [Pkt]) {
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
}

/// The pcapng file: one interface description per interface, then the packets.
fn write_blocks(out: &Path, ifaces: &Ifaces, pkts: &[Pkt]) -> Result<(), String> {
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
    for p in pkts {
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
    Ok(())
}
