//! Synthetic SMC event streams for tests: a small simulator of one SMC
//! connection that emits exactly the records `smctrace_event.h` describes
//! (hooks, cursors, seqnos, tokens) for ping-pong, bulk, autocork, cursor
//! wrap, split sends, partial reads, reordering, lost events and missing
//! handshakes, on one host or on two hosts with a known clock offset.
//!
//! Not a model of SMC timing: it places events at simple, known times so a
//! test can state the stage durations the analyzer must find.

use smctrace_format::event::{self, as_bytes, Cdc, Curs, EventKind, Hdr};

/// Which transport the simulated connection uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimMode {
    SmcR,
    SmcD,
}

/// One emitted record.
#[derive(Clone, Debug)]
pub struct SimEvent {
    pub host: usize,
    pub kind: EventKind,
    pub ts: u64,
    pub cpu: u16,
    pub bytes: Vec<u8>,
}

/// The events of all simulated hosts, before they are written out.
#[derive(Default)]
pub struct Synth {
    pub events: Vec<SimEvent>,
    /// Added to every timestamp of host `i` (the host's clock offset).
    pub host_offset: Vec<i64>,
}

impl Synth {
    pub fn new(hosts: usize) -> Synth {
        Synth {
            events: Vec::new(),
            host_offset: vec![0; hosts],
        }
    }

    #[allow(clippy::too_many_arguments)] // one argument per header field
    fn emit<T: bytemuck::Pod>(
        &mut self,
        host: usize,
        kind: EventKind,
        mut rec: T,
        ts: u64,
        pid: u32,
        tid: u32,
        cpu: u16,
    ) {
        let len = std::mem::size_of::<T>();
        let hts = (ts as i64 + self.host_offset[host]) as u64;
        {
            let bytes = bytemuck::bytes_of_mut(&mut rec);
            let h = Hdr {
                kind: kind as u16,
                len: len as u16,
                cpu,
                flags: 0,
                ts_ns: hts,
                pid,
                tid,
            };
            bytes[..event::HDR_LEN].copy_from_slice(as_bytes(&h));
            // Span records carry their entry time right after `sock`: it is
            // a timestamp of the same host clock.
            if matches!(
                kind,
                EventKind::SendMsg
                    | EventKind::TxCopy
                    | EventKind::RdmaWrite
                    | EventKind::RxAction
                    | EventKind::RecvMsg
            ) {
                let enter = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes"));
                let shifted = (enter as i64 + self.host_offset[host]) as u64;
                bytes[32..40].copy_from_slice(&shifted.to_le_bytes());
            }
        }
        self.events.push(SimEvent {
            host,
            kind,
            ts: hts,
            cpu,
            bytes: as_bytes(&rec).to_vec(),
        });
    }

    /// Drop the `n`-th event (0-based) of `kind` on `host` (a lost event).
    pub fn drop_nth(&mut self, host: usize, kind: EventKind, n: usize) {
        let mut seen = 0;
        let mut idx = None;
        for (i, e) in self.events.iter().enumerate() {
            if e.host == host && e.kind == kind {
                if seen == n {
                    idx = Some(i);
                    break;
                }
                seen += 1;
            }
        }
        if let Some(i) = idx {
            self.events.remove(i);
        }
    }

    /// Drop every event of `kind` on `host` (e.g. a missing handshake).
    pub fn drop_kind(&mut self, host: usize, kind: EventKind) {
        self.events.retain(|e| !(e.host == host && e.kind == kind));
    }

    /// The records of `host` in emission order (time of the hook that wrote
    /// them), as a ring buffer would deliver them.
    pub fn stream(&self, host: usize) -> Vec<SimEvent> {
        let mut v: Vec<SimEvent> = self
            .events
            .iter()
            .filter(|e| e.host == host)
            .cloned()
            .collect();
        v.sort_by_key(|e| e.ts);
        v
    }

    /// Like [`stream`](Self::stream) but delivered per CPU in blocks of
    /// `block` events, as per-CPU buffers do: order across CPUs is broken.
    pub fn stream_reordered(&self, host: usize, cpus: u16, block: usize) -> Vec<SimEvent> {
        let ordered = self.stream(host);
        let mut per_cpu: Vec<Vec<SimEvent>> = vec![Vec::new(); cpus as usize];
        for (i, e) in ordered.into_iter().enumerate() {
            let mut e = e;
            let cpu = ((i / 3) % cpus as usize) as u16;
            e.cpu = cpu;
            e.bytes[4..6].copy_from_slice(&cpu.to_le_bytes());
            per_cpu[cpu as usize].push(e);
        }
        let mut out = Vec::new();
        let mut pos = vec![0usize; cpus as usize];
        loop {
            let mut any = false;
            // Higher CPUs first so that order really differs from time order.
            for c in (0..cpus as usize).rev() {
                let end = (pos[c] + block).min(per_cpu[c].len());
                if pos[c] < end {
                    out.extend(per_cpu[c][pos[c]..end].iter().cloned());
                    pos[c] = end;
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        out
    }

    /// Concatenated record bytes of a stream.
    pub fn bytes(events: &[SimEvent]) -> Vec<u8> {
        events
            .iter()
            .flat_map(|e| e.bytes.iter().copied())
            .collect()
    }
}

/// One end (socket) of the simulated connection.
#[derive(Clone, Debug)]
pub struct End {
    pub host: usize,
    pub sock: u64,
    pub pid: u32,
    pub tid: u32,
    pub token: u32,
    pub dmb_token: u64,
    pub sndbuf_len: u32,
    pub rmb_len: u32,
    pub qpn: u32,
    pub addr: [u8; 4],
    pub port: u16,
    pub comm: &'static str,
    /// Absolute stream offsets (bytes since the connection began).
    pub prep: u64,
    pub prod: u64,
    pub rx_prod: u64,
    pub cons: u64,
    pub seq: u16,
}

/// A CDC on its way to the peer.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    to: usize,
    ts: u64,
    seqno: u16,
    prod: u64,
    cons: u64,
}

/// One simulated connection: end 0 is the client, end 1 the server.
pub struct SimConn {
    pub mode: SimMode,
    pub ends: [End; 2],
    /// One-way CDC latency (ns).
    pub wire_ns: u64,
    pub now: u64,
    cdcs: Vec<InFlight>,
    /// Sent but not yet posted (autocork), per end.
    corked: [u64; 2],
}

fn curs(abs: u64, ring: u32) -> Curs {
    Curs {
        count: (abs % ring as u64) as u32,
        wrap: ((abs / ring as u64) & 0xffff) as u16,
        _pad: 0,
    }
}

fn comm16(s: &str) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..s.len().min(15)].copy_from_slice(&s.as_bytes()[..s.len().min(15)]);
    c
}

fn ep(addr: [u8; 4], port: u16) -> event::Endpoint {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&addr);
    event::Endpoint {
        addr: a,
        port,
        _pad: [0; 3],
    }
}

impl SimConn {
    /// A connection between host `client_host` and `server_host` with rings of `ring` bytes.
    pub fn new(
        mode: SimMode,
        client_host: usize,
        server_host: usize,
        ring: u32,
        id: u32,
    ) -> SimConn {
        let mk = |host, n: u32, port, addr, comm| End {
            host,
            sock: 0x1000_0000 + (id as u64) * 16 + n as u64,
            pid: 100 + n + id * 10,
            tid: 100 + n + id * 10,
            token: 0x200 + id * 2 + n,
            dmb_token: 0x7000_0000 + (id * 2 + n) as u64,
            sndbuf_len: ring,
            rmb_len: ring,
            qpn: 0x40 + n,
            addr,
            port,
            comm,
            prep: 0,
            prod: 0,
            rx_prod: 0,
            cons: 0,
            seq: 0,
        };
        SimConn {
            mode,
            ends: [
                mk(client_host, 0, 40000 + id as u16, [10, 0, 0, 1], "client"),
                mk(server_host, 1, 5000, [10, 0, 0, 2], "server"),
            ],
            wire_ns: 10_000,
            now: 1_000_000_000,
            cdcs: Vec::new(),
            corked: [0, 0],
        }
    }

    /// Start every stream cursor of the connection at `abs` (a recording
    /// that begins long after the connection did).
    pub fn set_stream_start(&mut self, abs: u64) {
        for e in &mut self.ends {
            e.prep = abs;
            e.prod = abs;
            e.rx_prod = abs;
            e.cons = abs;
        }
    }

    fn smcd_flag(&self) -> u8 {
        if self.mode == SimMode::SmcD {
            event::CDC_F_SMCD
        } else {
            0
        }
    }

    /// CONNECT, CLC proposal/accept/confirm and CONN_INFO on both sides.
    pub fn handshake(&mut self, sy: &mut Synth) {
        let (c, s) = (self.ends[0].clone(), self.ends[1].clone());
        let t = self.now;
        let mode = if self.mode == SimMode::SmcR {
            event::MODE_SMCR
        } else {
            event::MODE_SMCD
        };
        sy.emit(
            c.host,
            EventKind::Connect,
            event::Connect {
                sock: c.sock,
                dst: ep(s.addr, s.port),
                family: 2,
                comm: comm16(c.comm),
                ..Default::default()
            },
            t,
            c.pid,
            c.tid,
            0,
        );
        let clc = |sy: &mut Synth, e: &End, dir: u8, ty: u8, ts: u64| {
            let path = if self.mode == SimMode::SmcR {
                b'R'
            } else {
                b'D'
            };
            sy.emit(
                e.host,
                EventKind::Clc,
                event::Clc {
                    sock: e.sock,
                    dir,
                    clc_type: ty,
                    length: 44,
                    version: 2,
                    path,
                    ..Default::default()
                },
                ts,
                e.pid,
                e.tid,
                0,
            );
        };
        clc(sy, &c, event::DIR_TX, 1, t + 100_000);
        clc(sy, &s, event::DIR_RX, 1, t + 100_000 + self.wire_ns);
        clc(sy, &s, event::DIR_TX, 2, t + 300_000);
        clc(sy, &c, event::DIR_RX, 2, t + 300_000 + self.wire_ns);
        clc(sy, &c, event::DIR_TX, 3, t + 500_000);
        clc(sy, &s, event::DIR_RX, 3, t + 500_000 + self.wire_ns);
        for (me, peer, role, ts) in [
            (&c, &s, event::ROLE_CLIENT, t + 600_000),
            (&s, &c, event::ROLE_SERVER, t + 650_000),
        ] {
            sy.emit(
                me.host,
                EventKind::ConnInfo,
                event::ConnInfo {
                    sock: me.sock,
                    local: ep(me.addr, me.port),
                    remote: ep(peer.addr, peer.port),
                    family: 2,
                    role,
                    mode,
                    local_token: if mode == event::MODE_SMCR {
                        me.token
                    } else {
                        0
                    },
                    peer_token: if mode == event::MODE_SMCR {
                        peer.token
                    } else {
                        0
                    },
                    local_dmb_token: if mode == event::MODE_SMCD {
                        me.dmb_token
                    } else {
                        0
                    },
                    peer_dmb_token: if mode == event::MODE_SMCD {
                        peer.dmb_token
                    } else {
                        0
                    },
                    sndbuf_len: me.sndbuf_len,
                    rmb_len: me.rmb_len,
                    peer_rmbe_size: peer.rmb_len,
                    qpn: me.qpn,
                    peer_qpn: peer.qpn,
                    link_id: 1,
                    smc_version: 1,
                    ibname: comm16("rxe0"),
                    comm: comm16(me.comm),
                    ..Default::default()
                },
                ts,
                me.pid,
                me.tid,
                0,
            );
        }
        self.now = t + 1_000_000;
    }

    /// A handshake that ends in fallback with `reason` (SMC_CLC_DECL_*).
    pub fn handshake_fallback(&mut self, sy: &mut Synth, reason: u32) {
        let (c, s) = (self.ends[0].clone(), self.ends[1].clone());
        let t = self.now;
        sy.emit(
            c.host,
            EventKind::Connect,
            event::Connect {
                sock: c.sock,
                dst: ep(s.addr, s.port),
                family: 2,
                comm: comm16(c.comm),
                ..Default::default()
            },
            t,
            c.pid,
            c.tid,
            0,
        );
        sy.emit(
            c.host,
            EventKind::Fallback,
            event::Fallback {
                sock: c.sock,
                reason,
                peer_diagnosis: 0,
                ..Default::default()
            },
            t + 50_000,
            c.pid,
            c.tid,
            0,
        );
        sy.emit(
            c.host,
            EventKind::ConnInfo,
            event::ConnInfo {
                sock: c.sock,
                local: ep(c.addr, c.port),
                remote: ep(s.addr, s.port),
                family: 2,
                role: event::ROLE_CLIENT,
                mode: event::MODE_FALLBACK,
                fallback_rsn: reason,
                comm: comm16(c.comm),
                ..Default::default()
            },
            t + 60_000,
            c.pid,
            c.tid,
            0,
        );
        self.now = t + 100_000;
    }

    /// A user send that goes straight out (no cork): SENDMSG around TX_COPY
    /// around one RDMA_WRITE + CDC_SEND per `pieces`, then the CDC completions.
    /// Returns the send's enter time.
    pub fn send(&mut self, sy: &mut Synth, from: usize, len: u64, pieces: u64) -> u64 {
        let t0 = self.now;
        let e = self.ends[from].clone();
        let before = e.prep;
        let after = before + len;
        self.ends[from].prep = after;
        let mut t = t0 + 2_000;
        let pieces = pieces.max(1);
        for k in 0..pieces {
            let upto = if k + 1 == pieces {
                after
            } else {
                before + len * (k + 1) / pieces
            };
            t = self.post(sy, from, upto, t, e.tid);
        }
        let copy_ret = t + 1_000;
        sy.emit(
            e.host,
            EventKind::TxCopy,
            event::TxCopy {
                sock: e.sock,
                enter_ns: t0 + 1_000,
                prep_before: curs(before, e.sndbuf_len),
                prep_after: curs(after, e.sndbuf_len),
                sndbuf_len: e.sndbuf_len,
                sndbuf_space: 0,
                ret: len as i64,
                ..Default::default()
            },
            copy_ret,
            e.pid,
            e.tid,
            1,
        );
        self.sendmsg_record(sy, from, t0, copy_ret + 1_000, len);
        self.now = copy_ret + 2_000;
        t0
    }

    fn sendmsg_record(&self, sy: &mut Synth, from: usize, enter: u64, ret: u64, len: u64) {
        let e = &self.ends[from];
        sy.emit(
            e.host,
            EventKind::SendMsg,
            event::SendMsg {
                sock: e.sock,
                enter_ns: enter,
                len,
                ret: len as i64,
                ..Default::default()
            },
            ret,
            e.pid,
            e.tid,
            1,
        );
    }

    /// A send that is autocorked: copied, not posted (see [`flush`](Self::flush)).
    pub fn send_corked(&mut self, sy: &mut Synth, from: usize, len: u64) -> u64 {
        let t0 = self.now;
        let e = self.ends[from].clone();
        let before = e.prep;
        let after = before + len;
        self.ends[from].prep = after;
        self.corked[from] = after;
        sy.emit(
            e.host,
            EventKind::TxCopy,
            event::TxCopy {
                sock: e.sock,
                enter_ns: t0 + 1_000,
                prep_before: curs(before, e.sndbuf_len),
                prep_after: curs(after, e.sndbuf_len),
                sndbuf_len: e.sndbuf_len,
                ret: len as i64,
                ..Default::default()
            },
            t0 + 3_000,
            e.pid,
            e.tid,
            1,
        );
        self.sendmsg_record(sy, from, t0, t0 + 4_000, len);
        self.now = t0 + 5_000;
        t0
    }

    /// Post everything copied and not yet posted (tx_pending in softirq).
    pub fn flush(&mut self, sy: &mut Synth, from: usize) {
        let upto = self.ends[from].prep;
        let e = self.ends[from].clone();
        sy.emit(
            e.host,
            EventKind::TxStart,
            event::TxStart {
                sock: e.sock,
                path: event::TX_PATH_PENDING,
                ..Default::default()
            },
            self.now,
            e.pid,
            0,
            2,
        );
        let t = self.post(sy, from, upto, self.now + 1_000, 0);
        self.now = t + 1_000;
    }

    /// RDMA_WRITE [prod, upto) then CDC_SEND; returns the time after the CDC.
    fn post(&mut self, sy: &mut Synth, from: usize, upto: u64, t: u64, tid: u32) -> u64 {
        let e = self.ends[from].clone();
        let peer_ring = self.ends[1 - from].rmb_len;
        let before = e.prod;
        sy.emit(
            e.host,
            EventKind::RdmaWrite,
            event::RdmaWrite {
                sock: e.sock,
                enter_ns: t,
                prod_before: curs(before, peer_ring),
                prod_after: curs(upto, peer_ring),
                sent_after: curs(upto, e.sndbuf_len),
                peer_rmbe_size: peer_ring,
                ..Default::default()
            },
            t + 1_000,
            e.pid,
            tid,
            1,
        );
        self.ends[from].prod = upto;
        self.cdc(sy, from, t + 2_000, tid)
    }

    /// Send a CDC carrying the current prod and cons; returns the time after it.
    pub fn cdc(&mut self, sy: &mut Synth, from: usize, t: u64, tid: u32) -> u64 {
        let e = self.ends[from].clone();
        let peer = self.ends[1 - from].clone();
        let smcd = self.mode == SimMode::SmcD;
        let seqno = if smcd { 0 } else { e.seq.wrapping_add(1) };
        self.ends[from].seq = seqno;
        let rec = Cdc {
            sock: e.sock,
            seqno,
            token: if smcd { 0 } else { peer.token },
            prod: curs(e.prod, peer.rmb_len),
            cons: curs(e.cons, e.rmb_len),
            cdc_flags: self.smcd_flag(),
            ..Default::default()
        };
        sy.emit(e.host, EventKind::CdcSend, rec, t, e.pid, tid, 1);
        if !smcd {
            sy.emit(
                e.host,
                EventKind::CdcTxDone,
                event::CdcTxDone {
                    sock: e.sock,
                    seqno,
                    prod: rec.prod,
                    ..Default::default()
                },
                t + 2 * self.wire_ns,
                0,
                0,
                3,
            );
        }
        self.cdcs.push(InFlight {
            to: 1 - from,
            ts: t,
            seqno,
            prod: e.prod,
            cons: e.cons,
        });
        t + 500
    }

    /// The receiver `to` processes every CDC addressed to it: CDC_RECV,
    /// RX_ACTION (cursor update), RX_WAKE.
    pub fn deliver(&mut self, sy: &mut Synth, to: usize) {
        let mine: Vec<InFlight> = self.cdcs.iter().filter(|c| c.to == to).copied().collect();
        self.cdcs.retain(|c| c.to != to);
        let smcd = self.mode == SimMode::SmcD;
        for c in mine {
            let r = self.ends[to].clone();
            let sender_ring = self.ends[1 - to].rmb_len;
            let arr = c.ts + self.wire_ns;
            let rec = Cdc {
                sock: if smcd { r.sock } else { 0 },
                seqno: c.seqno,
                token: if smcd { 0 } else { r.token },
                prod: curs(c.prod, r.rmb_len),
                cons: curs(c.cons, sender_ring),
                cdc_flags: self.smcd_flag(),
                ..Default::default()
            };
            sy.emit(r.host, EventKind::CdcRecv, rec, arr, 0, 0, 2);
            let before = r.rx_prod;
            let after = before.max(c.prod);
            sy.emit(
                r.host,
                EventKind::RxAction,
                event::RxAction {
                    sock: r.sock,
                    enter_ns: arr + 1_000,
                    prod_before: curs(before, r.rmb_len),
                    prod_after: curs(after, r.rmb_len),
                    peer_cons: curs(c.cons, sender_ring),
                    seqno: c.seqno,
                    bytes_to_rcv: (after - r.cons) as i32,
                    rmb_len: r.rmb_len,
                    ..Default::default()
                },
                arr + 3_000,
                0,
                0,
                2,
            );
            sy.emit(
                r.host,
                EventKind::RxWake,
                event::RxWake {
                    sock: r.sock,
                    ..Default::default()
                },
                arr + 2_500,
                0,
                0,
                2,
            );
            self.ends[to].rx_prod = after;
            self.now = self.now.max(arr + 4_000);
        }
    }

    /// A user receive of at most `max` bytes at `to` that returns at once
    /// (data already there). Returns the bytes read.
    pub fn recv(&mut self, sy: &mut Synth, to: usize, max: u64) -> u64 {
        let t = self.now;
        self.recv_from(sy, to, max, t)
    }

    /// Like [`recv`](Self::recv), but the call was entered at `enter` (a
    /// reader blocked waiting for the data) and returns now.
    pub fn recv_from(&mut self, sy: &mut Synth, to: usize, max: u64, enter: u64) -> u64 {
        let r = self.ends[to].clone();
        let n = (r.rx_prod - r.cons).min(max);
        let t = self.now;
        sy.emit(
            r.host,
            EventKind::RecvMsg,
            event::RecvMsg {
                sock: r.sock,
                enter_ns: enter.min(t),
                cons_before: curs(r.cons, r.rmb_len),
                cons_after: curs(r.cons + n, r.rmb_len),
                len: max,
                ret: n as i64,
                rmb_len: r.rmb_len,
                ..Default::default()
            },
            t + 2_000,
            r.pid,
            r.tid,
            0,
        );
        self.ends[to].cons += n;
        self.now = t + 3_000;
        n
    }

    /// The receiver's consumer-cursor update back to the sender (a cons-only CDC).
    pub fn cons_update(&mut self, sy: &mut Synth, from: usize) {
        let t = self.now;
        self.now = self.cdc(sy, from, t, 0);
    }

    /// Wait `ns` (simulated time passes).
    pub fn idle(&mut self, ns: u64) {
        self.now += ns;
    }

    /// Both sides release their sockets.
    pub fn close(&mut self, sy: &mut Synth) {
        for e in self.ends.clone() {
            sy.emit(
                e.host,
                EventKind::Close,
                event::Close {
                    sock: e.sock,
                    state: 7,
                    ..Default::default()
                },
                self.now,
                e.pid,
                e.tid,
                0,
            );
        }
        self.now += 1_000;
    }

    /// One ping-pong round: client sends `len`, server reads it, answers
    /// `len`, client reads. Returns the client's send enter time.
    pub fn pingpong_round(&mut self, sy: &mut Synth, len: u64) -> u64 {
        let t = self.send(sy, 0, len, 1);
        self.deliver(sy, 1);
        self.recv(sy, 1, len);
        self.send(sy, 1, len, 1);
        self.deliver(sy, 0);
        self.recv(sy, 0, len);
        self.idle(20_000);
        t
    }
}

/// One simulated recording handed to [`analyze_streams`].
pub struct SimRecording {
    pub events: Vec<SimEvent>,
    pub boot_id: String,
    pub lost: u64,
    /// Sockets of the start snapshot (smc_diag), for connections older than the recording.
    pub snapshot: Vec<crate::join::SnapshotSock>,
}

/// Run the analyzer (both passes, collecting the messages) over simulated
/// recordings (the first is the reference clock), as `smc-analyze` does for files.
pub fn analyze_streams(recs: Vec<SimRecording>) -> crate::join::Analysis {
    let inputs = recs
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let buf = Synth::bytes(&r.events);
            crate::join::Input {
                meta: crate::join::RecordingMeta {
                    path: format!("sim{i}"),
                    host: format!("host{i}"),
                    boot_id: r.boot_id,
                    kernel_release: "synthetic".into(),
                    clean_close: true,
                    stats: Default::default(),
                    snapshot_sockets: r.snapshot,
                },
                lost: r.lost,
                open: Box::new(move || {
                    let items: Vec<crate::join::Item> = event::records(&buf)
                        .map(|ev| {
                            crate::join::Item::Event(crate::model::Ev::from_ref(
                                &ev.expect("synthetic records are well formed"),
                            ))
                        })
                        .collect();
                    Box::new(items.into_iter())
                }),
            }
        })
        .collect();
    crate::join::collect(inputs, crate::model::DEFAULT_REORDER_WINDOW_NS)
}

/// Write `events` as a `.smctrace` file through the format crate's Writer
/// (chunks of `per_chunk` records), with the trailer's lost count `lost` on CPU 0.
/// `clean = false` leaves the file without trailer, as a killed recorder does.
pub fn write_recording(
    path: &std::path::Path,
    events: &[SimEvent],
    host: &str,
    boot_id: &str,
    lost: u64,
    per_chunk: usize,
    clean: bool,
) -> Result<(), smctrace_format::FormatError> {
    use smctrace_format::{
        encode_chunk, ClockRef, Metadata, ProbeInfo, TrailerInput, Writer, WriterOptions,
    };
    let first = events.iter().map(|e| e.ts).min().unwrap_or(0);
    let meta = Metadata {
        host: host.into(),
        kernel_release: "6.1.0-synthetic".into(),
        boot_id: boot_id.into(),
        recorder_version: "synth".into(),
        command_line: vec!["smc_analyze::synth".into()],
        clock: ClockRef {
            monotonic_ns: first,
            realtime_ns: 1_795_000_000_000_000_000,
        },
        probes: EventKind::ALL
            .iter()
            .map(|k| ProbeInfo {
                name: k.name().into(),
                hook: format!("synthetic:{}", k.name()),
                attach_type: "synthetic".into(),
                stage: String::new(),
                attached: true,
                error: None,
            })
            .collect(),
        ..Default::default()
    };
    let mut w = Writer::create(
        path,
        &meta,
        WriterOptions {
            overwrite: true,
            ..Default::default()
        },
    )?;
    for (seq, batch) in events.chunks(per_chunk.max(1)).enumerate() {
        let bytes = Synth::bytes(batch);
        let f = batch.iter().map(|e| e.ts).min().unwrap_or(0);
        let l = batch.iter().map(|e| e.ts).max().unwrap_or(0);
        let c = encode_chunk(seq as u64, &bytes, batch.len() as u32, f, l, 1)?;
        w.append(&c)?;
    }
    if clean {
        let hits = EventKind::ALL
            .iter()
            .map(|k| {
                (
                    k.name().to_string(),
                    events.iter().filter(|e| e.kind == *k).count() as u64,
                )
            })
            .collect();
        w.finish(TrailerInput {
            probe_hits: hits,
            lost_per_cpu: vec![lost, 0],
            end_monotonic_ns: events.iter().map(|e| e.ts).max().unwrap_or(0),
            end_snapshot: None,
        })?;
    } else {
        drop(w);
    }
    Ok(())
}
