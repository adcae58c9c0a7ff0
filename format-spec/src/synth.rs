//! Synthetic but realistic SMC event streams, for tests and benchmarks of
//! every crate that reads recordings (not for anything a user sees).
//!
//! [`PingPong`] emits what the recorder would see on one host pair running a
//! request/response workload over SMC-R: the handshake (connect, CLC
//! proposal/accept/confirm, conn_info on both sides), then for each message
//! sendmsg -> tx_copy -> tx_start -> rdma_write -> cdc_send -> cdc_tx_done on
//! the sender and cdc_recv -> rx_action -> rx_wake -> recvmsg on the
//! receiver, with cursors that advance and wrap through the ring buffers and
//! timestamps that move forward by plausible microsecond steps.

use crate::event::*;

/// Small deterministic PRNG (xorshift64*), so streams are reproducible without a dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

fn hdr<T>(kind: EventKind, cpu: u16, ts: u64, pid: u32) -> Hdr {
    Hdr {
        kind: kind as u16,
        len: std::mem::size_of::<T>() as u16,
        cpu,
        flags: 0,
        ts_ns: ts,
        pid,
        tid: pid,
    }
}

/// One side of a connection as the generator tracks it.
#[derive(Clone, Copy, Debug)]
struct Side {
    sock: u64,
    pid: u32,
    cpu: u16,
    token: u32,
    /// Sender view: tx_curs_prep / prod, in absolute bytes.
    sent: u64,
    /// Receiver view: bytes consumed, absolute.
    consumed: u64,
    seqno: u16,
}

/// Parameters of a ping-pong stream.
#[derive(Clone, Debug)]
pub struct PingPong {
    pub seed: u64,
    /// Concurrent connections, interleaved.
    pub connections: u32,
    /// Request size in bytes (the reply has the same size).
    pub msg_size: u32,
    /// RMB (and send buffer) size.
    pub ring_len: u32,
    /// Start timestamp (CLOCK_MONOTONIC ns).
    pub start_ns: u64,
}

impl Default for PingPong {
    fn default() -> Self {
        PingPong {
            seed: 1,
            connections: 4,
            msg_size: 4096,
            ring_len: 65536,
            start_ns: 1_000_000_000,
        }
    }
}

/// The generator state: call [`PingPongGen::next_round`] to get more records.
pub struct PingPongGen {
    p: PingPong,
    rng: Rng,
    ts: u64,
    conns: Vec<(Side, Side)>,
    started: bool,
}

impl PingPong {
    pub fn generator(&self) -> PingPongGen {
        PingPongGen {
            p: self.clone(),
            rng: Rng::new(self.seed),
            ts: self.start_ns,
            conns: Vec::new(),
            started: false,
        }
    }

    /// Records for `rounds` request/response rounds on every connection
    /// (handshakes included); returns the bytes and the record count.
    pub fn build(&self, rounds: u32) -> (Vec<u8>, u64) {
        let mut g = self.generator();
        let mut out = Vec::new();
        let mut n = 0;
        for _ in 0..rounds {
            n += g.next_round(&mut out);
        }
        (out, n)
    }
}

fn curs(abs: u64, ring: u32) -> Curs {
    Curs {
        count: (abs % ring as u64) as u32,
        wrap: ((abs / ring as u64) & 0xffff) as u16,
        _pad: 0,
    }
}

fn push<T: bytemuck::Pod>(out: &mut Vec<u8>, rec: &T) -> u64 {
    out.extend_from_slice(as_bytes(rec));
    1
}

impl PingPongGen {
    fn step(&mut self, lo: u64, hi: u64) -> u64 {
        self.ts += self.rng.range(lo, hi);
        self.ts
    }

    fn handshake(&mut self, out: &mut Vec<u8>) -> u64 {
        let mut n = 0;
        for i in 0..self.p.connections {
            let c = Side {
                sock: 0x1000 + i as u64 * 2,
                pid: 2000 + i,
                cpu: (i % 2) as u16,
                token: 0x100 + i,
                sent: 0,
                consumed: 0,
                seqno: 0,
            };
            let s = Side {
                sock: 0x1001 + i as u64 * 2,
                pid: 3000,
                cpu: 1 - (i % 2) as u16,
                token: 0x200 + i,
                ..c
            };
            let t = self.step(1000, 5000);
            let mut comm = [0u8; COMM_LEN];
            comm[..8].copy_from_slice(b"smc-load");
            let dst = Endpoint {
                addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                port: 5000,
                _pad: [0; 3],
            };
            n += push(
                out,
                &Connect {
                    hdr: hdr::<Connect>(EventKind::Connect, c.cpu, t, c.pid),
                    sock: c.sock,
                    netns: 4026531840,
                    dst,
                    family: 2,
                    _pad: [0; 3],
                    comm,
                },
            );
            for (ty, dir, who) in [
                (1u8, DIR_TX, c),
                (1, DIR_RX, s),
                (2, DIR_TX, s),
                (2, DIR_RX, c),
                (3, DIR_TX, c),
                (3, DIR_RX, s),
            ] {
                let t = self.step(20_000, 60_000);
                n += push(
                    out,
                    &Clc {
                        hdr: hdr::<Clc>(EventKind::Clc, who.cpu, t, who.pid),
                        sock: who.sock,
                        dir,
                        clc_type: ty,
                        length: 80,
                        version: 2,
                        path: b'R',
                        _pad: 0,
                        rc: 0,
                        decline_diag: 0,
                    },
                );
            }
            for (me, peer, role) in [(c, s, ROLE_CLIENT), (s, c, ROLE_SERVER)] {
                let t = self.step(5_000, 20_000);
                let mut ibname = [0u8; IBNAME_LEN];
                ibname[..5].copy_from_slice(b"rxe_0");
                n += push(
                    out,
                    &ConnInfo {
                        hdr: hdr::<ConnInfo>(EventKind::ConnInfo, me.cpu, t, me.pid),
                        sock: me.sock,
                        netns: 4026531840,
                        local: Endpoint {
                            addr: [
                                10,
                                0,
                                0,
                                if role == ROLE_CLIENT { 1 } else { 2 },
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                            ],
                            port: if role == ROLE_CLIENT {
                                40000 + i as u16
                            } else {
                                5000
                            },
                            _pad: [0; 3],
                        },
                        remote: Endpoint {
                            addr: [
                                10,
                                0,
                                0,
                                if role == ROLE_CLIENT { 2 } else { 1 },
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                                0,
                            ],
                            port: if role == ROLE_CLIENT {
                                5000
                            } else {
                                40000 + i as u16
                            },
                            _pad: [0; 3],
                        },
                        family: 2,
                        role,
                        mode: MODE_SMCR,
                        rc: 0,
                        fallback_rsn: 0,
                        peer_diagnosis: 0,
                        local_token: me.token,
                        peer_token: peer.token,
                        peer_dmb_token: 0,
                        local_dmb_token: 0,
                        sndbuf_len: self.p.ring_len,
                        rmb_len: self.p.ring_len,
                        peer_rmbe_size: self.p.ring_len,
                        // The two ends of one RC QP pair: the client's QP is
                        // the server's peer QP and back (the analyzer pairs
                        // sides only when they agree).
                        qpn: 17 + 2 * i + u32::from(role == ROLE_SERVER),
                        peer_qpn: 17 + 2 * i + u32::from(role == ROLE_CLIENT),
                        link_id: 1,
                        smc_version: 2,
                        _pad: 0,
                        lgr: 0xabc,
                        ibname,
                        comm,
                    },
                );
            }
            self.conns.push((c, s));
        }
        n
    }

    /// One message from `from` to `to`.
    fn message(&mut self, out: &mut Vec<u8>, from: &mut Side, to: &mut Side) -> u64 {
        let ring = self.p.ring_len;
        let len = self.p.msg_size as u64;
        let mut n = 0;
        let enter = self.step(2_000, 30_000);
        let before = from.sent;
        let copied = self.step(300, 2_000);
        n += push(
            out,
            &TxCopy {
                hdr: hdr::<TxCopy>(EventKind::TxCopy, from.cpu, copied, from.pid),
                sock: from.sock,
                enter_ns: enter + 200,
                prep_before: curs(before, ring),
                prep_after: curs(before + len, ring),
                sndbuf_len: ring,
                sndbuf_space: (ring as u64 - len) as i32,
                ret: len as i64,
            },
        );
        let t = self.step(50, 300);
        n += push(
            out,
            &TxStart {
                hdr: hdr::<TxStart>(EventKind::TxStart, from.cpu, t, from.pid),
                sock: from.sock,
                path: TX_PATH_SENDMSG,
                _pad: [0; 7],
            },
        );
        let w_enter = self.step(50, 300);
        let w_ret = self.step(500, 3_000);
        n += push(
            out,
            &RdmaWrite {
                hdr: hdr::<RdmaWrite>(EventKind::RdmaWrite, from.cpu, w_ret, from.pid),
                sock: from.sock,
                enter_ns: w_enter,
                prod_before: curs(before, ring),
                prod_after: curs(before + len, ring),
                sent_after: curs(before + len, ring),
                peer_rmbe_size: ring,
                rc: 0,
                ism_len: 0,
                ism_offset: 0,
            },
        );
        from.seqno = from.seqno.wrapping_add(1);
        from.sent += len;
        let cdc = Cdc {
            hdr: hdr::<Cdc>(
                EventKind::CdcSend,
                from.cpu,
                self.step(200, 1_000),
                from.pid,
            ),
            sock: from.sock,
            seqno: from.seqno,
            prod_flags: 0,
            conn_state_flags: 0,
            token: to.token,
            prod: curs(from.sent, ring),
            cons: curs(from.consumed, ring),
            rc: 0,
            cdc_flags: 0,
            _pad: [0; 3],
        };
        n += push(out, &cdc);
        let sret = self.step(100, 500);
        n += push(
            out,
            &SendMsg {
                hdr: hdr::<SendMsg>(EventKind::SendMsg, from.cpu, sret, from.pid),
                sock: from.sock,
                enter_ns: enter,
                len,
                ret: len as i64,
            },
        );
        let tdone = self.step(3_000, 15_000);
        n += push(
            out,
            &CdcTxDone {
                hdr: hdr::<CdcTxDone>(EventKind::CdcTxDone, from.cpu, tdone, 0),
                sock: from.sock,
                seqno: from.seqno,
                _pad: 0,
                wc_status: 0,
                prod: curs(from.sent, ring),
            },
        );
        // Receiver: softirq on its CPU.
        let rt = self.ts - self.rng.range(500, 2_500);
        n += push(
            out,
            &Cdc {
                hdr: hdr::<Cdc>(EventKind::CdcRecv, to.cpu, rt, 0),
                sock: 0,
                ..cdc
            },
        );
        let a_enter = self.step(500, 2_000);
        let a_ret = self.step(300, 1_500);
        n += push(
            out,
            &RxAction {
                hdr: hdr::<RxAction>(EventKind::RxAction, to.cpu, a_ret, 0),
                sock: to.sock,
                enter_ns: a_enter,
                prod_before: curs(to.consumed, ring),
                prod_after: curs(from.sent, ring),
                peer_cons: curs(from.consumed, ring),
                seqno: from.seqno,
                prod_flags: 0,
                conn_state_flags: 0,
                bytes_to_rcv: len as i32,
                rmb_len: ring,
                _pad: 0,
            },
        );
        let wk = self.step(100, 800);
        n += push(
            out,
            &RxWake {
                hdr: hdr::<RxWake>(EventKind::RxWake, to.cpu, wk, 0),
                sock: to.sock,
            },
        );
        let r_enter = self.ts - self.rng.range(5_000, 40_000);
        let r_ret = self.step(3_000, 20_000);
        n += push(
            out,
            &RecvMsg {
                hdr: hdr::<RecvMsg>(EventKind::RecvMsg, to.cpu, r_ret, to.pid),
                sock: to.sock,
                enter_ns: r_enter,
                cons_before: curs(to.consumed, ring),
                cons_after: curs(to.consumed + len, ring),
                len: 65536,
                ret: len as i64,
                flags: 0,
                rmb_len: ring,
            },
        );
        to.consumed += len;
        n
    }

    /// Appends one request/response round on every connection (the first
    /// call also emits the handshakes); returns the number of records.
    pub fn next_round(&mut self, out: &mut Vec<u8>) -> u64 {
        let mut n = 0;
        if !self.started {
            self.started = true;
            n += self.handshake(out);
        }
        for i in 0..self.conns.len() {
            let (mut c, mut s) = self.conns[i];
            n += self.message(out, &mut c, &mut s);
            n += self.message(out, &mut s, &mut c);
            self.conns[i] = (c, s);
        }
        n
    }
}
