//! One recording's event stream turned into per-socket state: the *sides* of
//! connections (identity, handshake, close), the sender halves of messages
//! (one user send followed by stream offset through copy, RDMA write, CDC send
//! and CDC completion) and the receiver-side points (CDC arrivals, rx
//! processing, user receives) that `join` later matches to messages.
//!
//! Events arrive in recording order, which is not time order across CPUs:
//! [`RecordingBuilder::push`] keeps a bounded reorder window and processes
//! events sorted by timestamp. Raw events are never kept beyond that window;
//! what stays is one compact record per message and per receive-side point.
//!
//! Cursors are unwrapped to absolute stream offsets (ring turns · ring size +
//! count), so a byte is "the same byte" in the sender's send buffer, in the
//! peer RMBE and in the receiver's RMB (SMC-INTERNALS §2.6).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::history::{History, Keys};
use crate::idhash::IdMap;

use smctrace_format::event::{self, Curs, EventRef};

/// Default reorder window: events whose timestamps are this much older than
/// the newest one seen are processed. Per-CPU batches of the recorder are far
/// shorter than this.
pub const DEFAULT_REORDER_WINDOW_NS: u64 = 200_000_000;
/// Hard cap of the reorder buffer (events), so memory stays bounded even if
/// timestamps jump.
pub const REORDER_CAP: usize = 1 << 18;
/// Unresolved CDC receptions kept per unknown token before the oldest are dropped.
const PENDING_RX_CAP: usize = 4096;

/// Turns a (wrap, count) cursor of a ring into an absolute stream offset,
/// choosing the u16 wrap epoch closest to the previous value, so it survives
/// both the u16 overflow of `wrap` and mildly reordered events.
#[derive(Clone, Debug, Default)]
pub struct Unwrapper {
    last: Option<u64>,
}

impl Unwrapper {
    /// Absolute offset of `c` in a ring of `ring` bytes (`None` if the ring size is unknown).
    pub fn unwrap(&mut self, c: Curs, ring: u32) -> Option<u64> {
        if ring == 0 {
            return None;
        }
        let ring = ring as u64;
        let span = 65536 * ring;
        let v = c.wrap as u64 * ring + c.count as u64;
        let abs = match self.last {
            None => v,
            Some(last) => {
                let base = last - last % span;
                let mut best = base.saturating_add(v);
                let cands = [
                    base.checked_sub(span).map(|b| b + v),
                    base.checked_add(span).and_then(|b| b.checked_add(v)),
                ];
                for cand in cands.into_iter().flatten() {
                    if cand.abs_diff(last) < best.abs_diff(last) {
                        best = cand;
                    }
                }
                best
            }
        };
        self.last = Some(self.last.map_or(abs, |l| l.max(abs)));
        Some(abs)
    }
}

/// Role of a socket in its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Client,
    Server,
    Unknown,
}

/// Transport of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[serde(rename = "SMC-R")]
    SmcR,
    #[serde(rename = "SMC-D")]
    SmcD,
    Fallback,
    Unknown,
}

impl Mode {
    pub fn from_u8(m: u8) -> Mode {
        match m {
            event::MODE_SMCR => Mode::SmcR,
            event::MODE_SMCD => Mode::SmcD,
            event::MODE_FALLBACK => Mode::Fallback,
            _ => Mode::Unknown,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Mode::SmcR => "SMC-R",
            Mode::SmcD => "SMC-D",
            Mode::Fallback => "fallback",
            Mode::Unknown => "unknown",
        }
    }
}

/// An IP endpoint (address text and port).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Addr {
    pub ip: String,
    pub port: u16,
}

impl Addr {
    pub fn from_endpoint(ep: &event::Endpoint, family: u16) -> Addr {
        let ip = if family == 10 {
            std::net::Ipv6Addr::from(ep.addr).to_string()
        } else {
            std::net::Ipv4Addr::new(ep.addr[0], ep.addr[1], ep.addr[2], ep.addr[3]).to_string()
        };
        Addr { ip, port: ep.port }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ip.contains(':') {
            write!(f, "[{}]:{}", self.ip, self.port)
        } else {
            write!(f, "{}:{}", self.ip, self.port)
        }
    }
}

/// What CONN_INFO said when the handshake finished.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HandshakeInfo {
    pub ts: u64,
    pub rc: i32,
    pub local: Addr,
    pub remote: Addr,
    pub local_token: u32,
    pub peer_token: u32,
    pub local_dmb_token: u64,
    pub peer_dmb_token: u64,
    pub sndbuf_len: u32,
    pub rmb_len: u32,
    pub peer_rmbe_size: u32,
    pub qpn: u32,
    pub peer_qpn: u32,
    pub link_id: u8,
    pub smc_version: u8,
    pub lgr: u64,
    pub ibname: String,
}

/// One CLC message sent or received.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClcEvent {
    pub ts: u64,
    pub dir: &'static str,
    pub clc_type: &'static str,
    pub path: String,
    pub version: u8,
    pub rc: i32,
    pub decline_diag: u32,
}

/// Why a message is incomplete (bit set). Names are part of the JSON/CSV output.
pub mod gap {
    pub const NO_SENDMSG: u32 = 1 << 0;
    pub const NO_TX_COPY: u32 = 1 << 1;
    pub const NO_RDMA_WRITE: u32 = 1 << 2;
    pub const NO_CDC_SEND: u32 = 1 << 3;
    pub const NO_CDC_TX_DONE: u32 = 1 << 4;
    pub const CDC_SEQ_GAP: u32 = 1 << 5;
    pub const NO_CDC_RECV: u32 = 1 << 6;
    pub const NO_RX_ACTION: u32 = 1 << 7;
    pub const NO_RECVMSG: u32 = 1 << 8;
    pub const NO_PEER: u32 = 1 << 9;
    pub const CLOCK_UNKNOWN: u32 = 1 << 10;
    pub const RING_UNKNOWN: u32 = 1 << 11;
    pub const TX_ERROR: u32 = 1 << 12;
    pub const LOSSY_SMCD: u32 = 1 << 13;
    pub const CDC_MISMATCH: u32 = 1 << 14;

    pub const NAMES: [(u32, &str); 15] = [
        (NO_SENDMSG, "no_sendmsg"),
        (NO_TX_COPY, "no_tx_copy"),
        (NO_RDMA_WRITE, "no_rdma_write"),
        (NO_CDC_SEND, "no_cdc_send"),
        (NO_CDC_TX_DONE, "no_cdc_tx_done"),
        (CDC_SEQ_GAP, "cdc_seqno_gap"),
        (NO_CDC_RECV, "no_cdc_recv"),
        (NO_RX_ACTION, "no_rx_action"),
        (NO_RECVMSG, "no_recvmsg"),
        (NO_PEER, "peer_not_recorded"),
        (CLOCK_UNKNOWN, "clock_offset_unknown"),
        (RING_UNKNOWN, "ring_size_unknown"),
        (TX_ERROR, "tx_error"),
        (LOSSY_SMCD, "smcd_with_lost_events"),
        (CDC_MISMATCH, "cdc_mismatch"),
    ];

    /// Names of the bits set in `flags`.
    pub fn names(flags: u32) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(b, _)| flags & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// The sender half of a message: everything the sending host saw.
#[derive(Clone, Debug, Default)]
pub struct TxMsg {
    /// Absolute stream offsets: bytes `[start, end)` of this direction's stream.
    pub start: u64,
    pub end: u64,
    pub tid: u32,
    pub pid: u32,
    pub send_enter: Option<u64>,
    pub send_ret: Option<u64>,
    pub send_rc: i64,
    pub copy_enter: Option<u64>,
    pub copy_ret: Option<u64>,
    pub post_enter: Option<u64>,
    pub post_ret: Option<u64>,
    pub cdc_send: Option<u64>,
    pub cdc_seqno: u16,
    pub cdc_prod: u64,
    pub cdc_tx_done: Option<u64>,
    pub gaps: u32,
    /// Has a stream range (false for fallback sends and sends whose copy was lost).
    pub ranged: bool,
}

impl TxMsg {
    fn apply_write(&mut self, w: &Write) {
        if w.after > w.before
            && self.post_ret.is_none()
            && self.end > w.before
            && self.end <= w.after
        {
            self.post_enter = Some(w.enter);
            self.post_ret = Some(w.ret);
            if w.rc < 0 {
                self.gaps |= gap::TX_ERROR;
            }
        }
    }

    /// The first CDC (in time) whose producer cursor covers the last byte.
    fn apply_cdc(&mut self, c: &SentCdc) {
        if self.end <= c.prod
            && self.cdc_tx_done.is_none()
            && self.cdc_send.is_none_or(|t| c.ts < t)
        {
            self.cdc_send = Some(c.ts);
            self.cdc_seqno = c.seqno;
            self.cdc_prod = c.prod;
            // A missing CDC may have carried the end first: only if its prod
            // is unknown or reaches the end.
            if c.seq_gap && self.end > c.low && (c.lost_unknown || c.lost_max >= self.end) {
                self.gaps |= gap::CDC_SEQ_GAP;
            } else {
                self.gaps &= !gap::CDC_SEQ_GAP;
            }
            if c.rc < 0 {
                self.gaps |= gap::TX_ERROR;
            }
        }
    }

    /// Earliest time this side saw of the message.
    pub fn first_time(&self) -> Option<u64> {
        [self.send_enter, self.copy_enter]
            .into_iter()
            .flatten()
            .min()
    }

    /// The sender half is over: SMC-R after the CDC's send completion, SMC-D at the CDC.
    fn finished(&self, smcd: bool) -> bool {
        if smcd {
            self.cdc_send.is_some()
        } else {
            self.cdc_tx_done.is_some() || self.gaps & gap::NO_CDC_TX_DONE != 0
        }
    }
}

/// A user send not yet matched with its copy.
#[derive(Clone, Copy, Debug)]
struct OpenSend {
    tid: u32,
    pid: u32,
    enter: u64,
    ret: u64,
    rc: i64,
}

impl OpenSend {
    /// A message with only its send call: a fallback send (the bytes went
    /// to TCP) or an SMC send whose copy event is missing.
    fn into_msg(self, mode: Mode) -> TxMsg {
        TxMsg {
            tid: self.tid,
            pid: self.pid,
            send_enter: Some(self.enter),
            send_ret: Some(self.ret),
            send_rc: self.rc,
            gaps: if mode == Mode::Fallback {
                0
            } else {
                gap::NO_TX_COPY
            },
            ..TxMsg::default()
        }
    }
}

/// An RDMA write / ISM move, in absolute stream offsets.
#[derive(Clone, Copy, Debug)]
struct Write {
    before: u64,
    after: u64,
    enter: u64,
    ret: u64,
    rc: i32,
}

/// A CDC sent, in absolute stream offsets.
#[derive(Clone, Copy, Debug)]
struct SentCdc {
    ts: u64,
    seqno: u16,
    prod: u64,
    /// prod of the previous CDC seen.
    low: u64,
    /// CDCs between the previous one seen and this one are missing.
    seq_gap: bool,
    /// A missing CDC's prod is unknown (its completion was not seen either).
    lost_unknown: bool,
    /// Largest prod of the missing CDCs known from their completions.
    lost_max: u64,
    rc: i32,
}

/// A CDC send completion.
#[derive(Clone, Copy, Debug)]
struct Done {
    seqno: u16,
    ts: u64,
    status: u32,
    cdc_ts: u64,
    /// The CDC's prod cursor (p_cursor), absolute.
    prod: Option<u64>,
}

impl Keys for Write {
    fn key0(&self) -> u64 {
        self.after
    }
    fn key1(&self) -> u64 {
        self.before
    }
}

impl Keys for SentCdc {
    fn key0(&self) -> u64 {
        self.ts
    }
    fn key1(&self) -> u64 {
        self.prod
    }
}

impl Keys for Done {
    fn key0(&self) -> u64 {
        self.cdc_ts
    }
    fn key1(&self) -> u64 {
        self.cdc_ts
    }
}

/// History kept per socket to match events that arrive before the message
/// they belong to (bounded: older entries can no longer be the first match).
pub(crate) const HISTORY: usize = 512;

fn push_bounded<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() >= HISTORY {
        q.pop_front();
    }
    q.push_back(v);
}

/// A CDC as handed to the device (sender side), kept for clock estimation.
#[derive(Clone, Copy, Debug)]
pub struct CdcPoint {
    pub ts: u64,
    pub seqno: u16,
    pub prod: Curs,
    pub cons: Curs,
}

/// A CDC arrival (receiver side).
#[derive(Clone, Copy, Debug)]
pub struct RxCdc {
    pub ts: u64,
    pub seqno: u16,
    pub prod: Curs,
    pub cons: Curs,
    pub prod_abs: u64,
}

/// One run of smc_cdc_msg_recv_action.
#[derive(Clone, Copy, Debug)]
pub struct RxAct {
    pub enter: u64,
    pub ts: u64,
    pub before: Curs,
    pub after: Curs,
    pub seqno: u16,
    pub b_abs: u64,
    pub a_abs: u64,
}

/// One user receive (smc_rx_recvmsg).
#[derive(Clone, Copy, Debug)]
pub struct Recv {
    pub enter: u64,
    pub ts: u64,
    pub before: Curs,
    pub after: Curs,
    pub ret: i64,
    pub pid: u32,
    pub b_abs: u64,
    pub a_abs: u64,
}

fn settle_list<T>(
    q: &mut VecDeque<T>,
    done: &mut usize,
    mut fix: impl FnMut(&mut T),
    key: impl Fn(&T) -> u64,
) {
    if *done > q.len() {
        *done = q.len();
    }
    let start = *done;
    for x in q.range_mut(start..) {
        fix(x);
    }
    let mut sorted = true;
    let mut prev = if start > 0 {
        Some(key(&q[start - 1]))
    } else {
        None
    };
    for x in q.range(start..) {
        let k = key(x);
        if prev.is_some_and(|p| p > k) {
            sorted = false;
            break;
        }
        prev = Some(k);
    }
    if !sorted {
        // Late events: restore offset order (stable, arrival order among equals).
        q.make_contiguous().sort_by_key(|x| key(x));
    }
    *done = q.len();
}

impl RxState {
    /// Give new points their absolute offsets and keep every list sorted by
    /// offset (lookups binary-search them). Needs the ring size.
    pub fn settle(&mut self) {
        let ring = self.rmb_len;
        if ring == 0 {
            return;
        }
        let [uc, ua, ub, ur] = &mut self.unwrap;
        settle_list(
            &mut self.cdcs,
            &mut self.settled[0],
            |c| c.prod_abs = uc.unwrap(c.prod, ring).unwrap_or(0),
            |c| c.prod_abs,
        );
        settle_list(
            &mut self.actions,
            &mut self.settled[1],
            |a| {
                a.b_abs = ub.unwrap(a.before, ring).unwrap_or(0);
                a.a_abs = ua.unwrap(a.after, ring).unwrap_or(0);
            },
            |a| a.a_abs,
        );
        settle_list(
            &mut self.recvs,
            &mut self.settled[2],
            |r| {
                let mut u = ur.clone();
                r.b_abs = u.unwrap(r.before, ring).unwrap_or(0);
                r.a_abs = ur.unwrap(r.after, ring).unwrap_or(0);
            },
            |r| r.a_abs,
        );
    }

    /// True once every list is settled.
    pub fn is_settled(&self) -> bool {
        self.settled == [self.cdcs.len(), self.actions.len(), self.recvs.len()]
    }

    /// Drop settled points below stream offset `end`: no message ending at or
    /// after `end` can need them.
    pub fn prune_below(&mut self, end: u64) {
        while self.settled[0] > 0 && self.cdcs.front().is_some_and(|c| c.prod_abs < end) {
            self.cdcs.pop_front();
            self.settled[0] -= 1;
        }
        while self.settled[1] > 0 && self.actions.front().is_some_and(|a| a.a_abs < end) {
            self.actions.pop_front();
            self.settled[1] -= 1;
        }
        while self.settled[2] > 0 && self.recvs.front().is_some_and(|r| r.a_abs < end) {
            self.recvs.pop_front();
            self.settled[2] -= 1;
        }
    }

    /// Remove the first rx action (after it became a receive-only message).
    pub fn pop_action(&mut self) -> Option<RxAct> {
        let x = self.actions.pop_front()?;
        self.settled[1] = self.settled[1].saturating_sub(1);
        Some(x)
    }

    /// Return time of the settled user receive that delivered the byte
    /// before stream offset `end`.
    pub fn delivering(&self, end: u64) -> Option<u64> {
        // Binary search over the settled (sorted) prefix only.
        let (mut lo, mut hi) = (0, self.settled[2].min(self.recvs.len()));
        let n = hi;
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.recvs[mid].a_abs < end {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.recvs
            .get(lo)
            .filter(|r| lo < n && r.b_abs < end && r.ret > 0)
            .map(|r| r.ts)
    }

    /// Stream offset the receiving application has consumed up to (settled points).
    pub fn delivered_upto(&self) -> Option<u64> {
        if self.settled[2] == 0 {
            return None;
        }
        self.recvs.range(..self.settled[2]).map(|r| r.a_abs).max()
    }
}

/// Sender state of one socket.
#[derive(Debug, Default)]
pub struct TxState {
    prep: Unwrapper,
    prod: Unwrapper,
    pub sndbuf_len: u32,
    pub peer_rmbe_size: u32,
    inflight: VecDeque<TxMsg>,
    /// Finished sender halves waiting to be joined with the receiver.
    pub done: VecDeque<TxMsg>,
    /// CDCs sent, kept (up to the clock sample limit) for clock estimation.
    pub cdcs: Vec<CdcPoint>,
    /// Messages with a stream range seen, and CDCs sent (counted even when not kept).
    pub msgs: u64,
    pub cdc_count: u64,
    /// Largest stream end of the messages already joined.
    pub joined_end: u64,
    open_sends: VecDeque<OpenSend>,
    writes: History<Write>,
    cdc_hist: History<SentCdc>,
    done_hist: History<Done>,
    orphan_done: VecDeque<Done>,
    last_cdc: Option<(u16, u64)>,
    pub bytes: u64,
    pub sends: u64,
}

impl TxState {
    /// Give up waiting for the sender events of in-flight messages that
    /// started before `before` (own clock): they are joined with what is
    /// known (and marked incomplete), so one stuck message cannot hold
    /// memory until the end of the recording.
    pub fn expire(&mut self, before: u64) {
        if self
            .inflight
            .front()
            .is_none_or(|m| m.first_time().is_none_or(|t| t >= before))
        {
            return;
        }
        let mut keep = VecDeque::with_capacity(self.inflight.len());
        for m in self.inflight.drain(..) {
            if m.first_time().is_some_and(|t| t < before) {
                self.done.push_back(m);
            } else {
                keep.push_back(m);
            }
        }
        self.inflight = keep;
    }

    /// Stream ends of the messages not yet joined.
    pub fn pending_ends(&self) -> impl Iterator<Item = u64> + '_ {
        self.inflight
            .iter()
            .chain(self.done.iter())
            .filter(|m| m.ranged)
            .map(|m| m.end)
    }
}

/// Receiver state of one socket: the receive-side points not yet needed by
/// any message are pruned as messages are joined (see `join`).
#[derive(Debug, Default)]
pub struct RxState {
    pub rmb_len: u32,
    /// Sorted by absolute offset once settled (see [`RxState::settle`]).
    pub cdcs: VecDeque<RxCdc>,
    pub actions: VecDeque<RxAct>,
    pub recvs: VecDeque<Recv>,
    settled: [usize; 3],
    unwrap: [Unwrapper; 4],
    /// CDC arrivals kept (up to the clock sample limit) for clock estimation.
    pub clock: Vec<RxCdc>,
    /// CDC arrivals seen (also when none are kept as clock samples).
    pub cdc_count: u64,
    pub bytes: u64,
    pub recv_calls: u64,
    pub wakeups: u64,
}

/// One socket of a connection as one recording saw it.
#[derive(Debug)]
pub struct Side {
    pub rec: usize,
    pub sock: u64,
    pub pid: u32,
    pub comm: String,
    pub netns: u64,
    pub role: Role,
    pub mode: Mode,
    pub connect_ts: Option<u64>,
    pub connect_dst: Option<Addr>,
    /// Local address from the start snapshot, for sides without CONN_INFO.
    pub snapshot_local: Option<Addr>,
    pub info: Option<HandshakeInfo>,
    pub clc: Vec<ClcEvent>,
    pub fallback: Option<(u64, u32, u32)>,
    pub close: Option<(u64, u8, u8)>,
    pub local_token: Option<u32>,
    pub peer_token: Option<u32>,
    pub first_ts: u64,
    pub last_ts: u64,
    pub first_data_ts: Option<u64>,
    pub events: u64,
    pub tx: TxState,
    pub rx: RxState,
}

impl Side {
    fn new(rec: usize, sock: u64, ts: u64) -> Side {
        Side {
            rec,
            sock,
            pid: 0,
            comm: String::new(),
            netns: 0,
            role: Role::Unknown,
            mode: Mode::Unknown,
            connect_ts: None,
            connect_dst: None,
            snapshot_local: None,
            info: None,
            clc: Vec::new(),
            fallback: None,
            close: None,
            local_token: None,
            peer_token: None,
            first_ts: ts,
            last_ts: ts,
            first_data_ts: None,
            events: 0,
            tx: TxState::default(),
            rx: RxState::default(),
        }
    }

    /// Never connected nor moved data: a listening socket, or one closed unused.
    pub fn is_idle(&self) -> bool {
        self.connect_ts.is_none()
            && self.info.is_none()
            && self.clc.is_empty()
            && self.fallback.is_none()
            && self.local_token.is_none()
            && self.tx.sends == 0
            && self.tx.cdc_count == 0
            && self.rx.recv_calls == 0
            && self.rx.cdc_count == 0
            && self.rx.actions.is_empty()
    }

    pub fn is_smcd(&self) -> bool {
        self.mode == Mode::SmcD
    }
}

/// Counters and facts of one recording, for the report summary.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecordingStats {
    pub events: u64,
    pub unknown_kinds: u64,
    pub late_events: u64,
    pub payload_records: u64,
    pub link_down: u64,
    /// The first link-down events (the SMC-R link a connection used failed).
    pub link_down_events: Vec<LinkDownEvent>,
    pub unresolved_cdc_recv: u64,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    /// Events the kernel could not deliver (trailer lost_per_cpu).
    pub lost_events: u64,
    /// Chunks that could not be read (their events are missing).
    pub unreadable_chunks: u64,
    /// Records that could not be parsed (the rest of their chunk is skipped).
    pub bad_records: u64,
}

/// An SMC-R link going down (smcr_link_down_cond).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LinkDownEvent {
    /// Own clock of the recording (ns).
    pub ts: u64,
    pub ibname: String,
    pub link_id: u8,
    pub state: u8,
}

impl RecordingStats {
    /// Events are missing from this recording (kernel drops, unreadable chunks, bad records).
    pub fn lossy(&self) -> bool {
        self.lost_events > 0 || self.unreadable_chunks > 0 || self.bad_records > 0
    }
}

/// The result of one recording: its sockets and counters.
#[derive(Debug)]
pub struct Recording {
    pub stats: RecordingStats,
    pub sides: Vec<Side>,
}

/// How far from the end of the in-order run an event is still inserted
/// into it (see [`RecordingBuilder::push_ev`]).
const INSERT_REACH: usize = 32;

/// The reorder window's heap key: the sort time, the arrival number (which
/// breaks ties, so equal times keep recording order) and the event's slot in
/// [`RecordingBuilder::slab`]. The events themselves stay in the slab: the
/// heap moves only these 24 bytes on every sift instead of a whole
/// `EventRef` (the size of its largest variant, ~170 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Queued {
    ts: u64,
    seq: u64,
    slot: usize,
}

/// Streams one recording's events into a [`Recording`].
pub struct RecordingBuilder {
    rec: usize,
    window: u64,
    /// Queued events in key order (keys non-decreasing from front to
    /// back): most of a recording. Appending and popping here is O(1);
    /// events that arrive a little out of order (span events, keyed by
    /// their start) are inserted at most [`INSERT_REACH`] entries from the
    /// end; only those further out of order pay for the heap and the slab. Run entries carry their
    /// event inline (read in order: cache friendly); their `slot` is unused.
    /// Pops take the smaller of the two heads by (key, arrival), the order a
    /// single heap would give.
    run: VecDeque<(Queued, Ev)>,
    heap: BinaryHeap<Reverse<Queued>>,
    /// The queued events, indexed by [`Queued::slot`]; freed slots are reused.
    slab: Vec<Ev>,
    free: Vec<usize>,
    seq: u64,
    max_ts: u64,
    released_ts: u64,
    sides: Vec<Side>,
    by_sock: IdMap<u64, usize>,
    by_token: IdMap<u32, usize>,
    pending_rx: IdMap<u32, VecDeque<RxCdc>>,
    stats: RecordingStats,
    keep_data: bool,
    clock_samples: usize,
    /// Reorder-only builders ([`RecordingBuilder::reorder_only`]) collect the
    /// events their window releases here instead of modelling them.
    released: Option<Vec<(u64, Ev)>>,
}

/// What a [`RecordingBuilder`] keeps.
#[derive(Clone, Copy, Debug)]
pub struct BuilderOptions {
    pub window_ns: u64,
    /// Keep messages and receive-side points (the second pass); without it
    /// only identities, counters and clock samples are kept (the first pass).
    pub keep_data: bool,
    /// CDCs kept per socket and direction for clock estimation.
    pub clock_samples: usize,
}

/// CDC samples per socket and direction used for clock estimation: the
/// minimum one-way delay converges long before this.
pub const CLOCK_SAMPLES: usize = 100_000;

/// A copy of a record that does not borrow the chunk (payload bytes dropped).
pub fn owned(ev: &EventRef<'_>) -> EventRef<'static> {
    match *ev {
        EventRef::Connect(e) => EventRef::Connect(e),
        EventRef::ConnInfo(e) => EventRef::ConnInfo(e),
        EventRef::Clc(e) => EventRef::Clc(e),
        EventRef::Fallback(e) => EventRef::Fallback(e),
        EventRef::Close(e) => EventRef::Close(e),
        EventRef::LinkDown(e) => EventRef::LinkDown(e),
        EventRef::SendMsg(e) => EventRef::SendMsg(e),
        EventRef::TxCopy(e) => EventRef::TxCopy(e),
        EventRef::TxStart(e) => EventRef::TxStart(e),
        EventRef::RdmaWrite(e) => EventRef::RdmaWrite(e),
        EventRef::CdcSend(e) => EventRef::CdcSend(e),
        EventRef::CdcTxDone(e) => EventRef::CdcTxDone(e),
        EventRef::CdcRecv(e) => EventRef::CdcRecv(e),
        EventRef::RxAction(e) => EventRef::RxAction(e),
        EventRef::RxWake(e) => EventRef::RxWake(e),
        EventRef::RecvMsg(e) => EventRef::RecvMsg(e),
        EventRef::Payload(p, _) => EventRef::Payload(p, &[]),
        EventRef::Unknown(h) => EventRef::Unknown(h),
    }
}

/// An event as the model queues it: the data-path kinds (almost every
/// event, at most 80 bytes) inline, the rare connection-level ones (up to
/// 192 bytes) boxed. Every event is moved several times between the chunk
/// and the model (reorder window in and out); at the size of the largest
/// record these moves were a fifth of the analyzer's time.
#[derive(Clone, Debug)]
pub enum Ev {
    SendMsg(event::SendMsg),
    TxCopy(event::TxCopy),
    TxStart(event::TxStart),
    RdmaWrite(event::RdmaWrite),
    CdcSend(event::Cdc),
    CdcTxDone(event::CdcTxDone),
    CdcRecv(event::Cdc),
    RxAction(event::RxAction),
    RxWake(event::RxWake),
    RecvMsg(event::RecvMsg),
    Other(Box<EventRef<'static>>),
}

impl Ev {
    /// A copy of a record that does not borrow the chunk (payload bytes dropped).
    pub fn from_ref(ev: &EventRef<'_>) -> Ev {
        match *ev {
            EventRef::SendMsg(e) => Ev::SendMsg(e),
            EventRef::TxCopy(e) => Ev::TxCopy(e),
            EventRef::TxStart(e) => Ev::TxStart(e),
            EventRef::RdmaWrite(e) => Ev::RdmaWrite(e),
            EventRef::CdcSend(e) => Ev::CdcSend(e),
            EventRef::CdcTxDone(e) => Ev::CdcTxDone(e),
            EventRef::CdcRecv(e) => Ev::CdcRecv(e),
            EventRef::RxAction(e) => Ev::RxAction(e),
            EventRef::RxWake(e) => Ev::RxWake(e),
            EventRef::RecvMsg(e) => Ev::RecvMsg(e),
            _ => Ev::Other(Box::new(owned(ev))),
        }
    }

    /// The event of a record checked by [`event::check_record`] (`kind`
    /// as it returned), read straight into its queued form.
    pub fn from_record(kind: Option<event::EventKind>, rec: &[u8]) -> Ev {
        use event::{read_fixed, EventKind as K};
        match kind {
            Some(K::SendMsg) => Ev::SendMsg(read_fixed(rec)),
            Some(K::TxCopy) => Ev::TxCopy(read_fixed(rec)),
            Some(K::TxStart) => Ev::TxStart(read_fixed(rec)),
            Some(K::RdmaWrite) => Ev::RdmaWrite(read_fixed(rec)),
            Some(K::CdcSend) => Ev::CdcSend(read_fixed(rec)),
            Some(K::CdcTxDone) => Ev::CdcTxDone(read_fixed(rec)),
            Some(K::CdcRecv) => Ev::CdcRecv(read_fixed(rec)),
            Some(K::RxAction) => Ev::RxAction(read_fixed(rec)),
            Some(K::RxWake) => Ev::RxWake(read_fixed(rec)),
            Some(K::RecvMsg) => Ev::RecvMsg(read_fixed(rec)),
            _ => match EventRef::parse(rec) {
                Ok((ev, _)) => Ev::Other(Box::new(owned(&ev))),
                Err(e) => unreachable!("a checked record does not parse: {e:?}"),
            },
        }
    }

    pub fn hdr(&self) -> &event::Hdr {
        match self {
            Ev::SendMsg(e) => &e.hdr,
            Ev::TxCopy(e) => &e.hdr,
            Ev::TxStart(e) => &e.hdr,
            Ev::RdmaWrite(e) => &e.hdr,
            Ev::CdcSend(e) | Ev::CdcRecv(e) => &e.hdr,
            Ev::CdcTxDone(e) => &e.hdr,
            Ev::RxAction(e) => &e.hdr,
            Ev::RxWake(e) => &e.hdr,
            Ev::RecvMsg(e) => &e.hdr,
            Ev::Other(e) => e.hdr(),
        }
    }

    /// The record as the format crate's enum.
    pub fn to_ref(&self) -> EventRef<'static> {
        match self {
            Ev::SendMsg(e) => EventRef::SendMsg(*e),
            Ev::TxCopy(e) => EventRef::TxCopy(*e),
            Ev::TxStart(e) => EventRef::TxStart(*e),
            Ev::RdmaWrite(e) => EventRef::RdmaWrite(*e),
            Ev::CdcSend(e) => EventRef::CdcSend(*e),
            Ev::CdcTxDone(e) => EventRef::CdcTxDone(*e),
            Ev::CdcRecv(e) => EventRef::CdcRecv(*e),
            Ev::RxAction(e) => EventRef::RxAction(*e),
            Ev::RxWake(e) => EventRef::RxWake(*e),
            Ev::RecvMsg(e) => EventRef::RecvMsg(*e),
            Ev::Other(e) => **e,
        }
    }
}

impl RecordingBuilder {
    /// A builder for recording number `rec` with a reorder window of `window_ns`.
    pub fn new(rec: usize, window_ns: u64) -> RecordingBuilder {
        Self::with_options(
            rec,
            BuilderOptions {
                window_ns,
                keep_data: true,
                clock_samples: CLOCK_SAMPLES,
            },
        )
    }

    /// A builder with explicit options.
    pub fn with_options(rec: usize, o: BuilderOptions) -> RecordingBuilder {
        RecordingBuilder {
            keep_data: o.keep_data,
            clock_samples: o.clock_samples,
            rec,
            window: o.window_ns,
            run: VecDeque::new(),
            heap: BinaryHeap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
            max_ts: 0,
            released_ts: 0,
            sides: Vec::new(),
            by_sock: IdMap::default(),
            by_token: IdMap::default(),
            pending_rx: IdMap::default(),
            stats: RecordingStats::default(),
            released: None,
        }
    }

    /// A builder that only runs the reorder window: the events it releases,
    /// in order, are taken with [`RecordingBuilder::take_released`] and modelled
    /// elsewhere with [`RecordingBuilder::process_released`] (the second
    /// pass runs the two halves on two threads).
    pub fn reorder_only(rec: usize, window_ns: u64) -> RecordingBuilder {
        let mut b = Self::with_options(
            rec,
            BuilderOptions {
                window_ns,
                keep_data: false,
                clock_samples: 0,
            },
        );
        b.released = Some(Vec::new());
        b
    }

    /// How many released events wait to be taken.
    pub fn released_len(&self) -> usize {
        self.released.as_ref().map_or(0, Vec::len)
    }

    /// The events released since the last call as one vector (moved out
    /// whole, not event by event), in processing order.
    pub fn take_released(&mut self, capacity: usize) -> Vec<(u64, Ev)> {
        std::mem::replace(
            self.released.get_or_insert_with(Vec::new),
            Vec::with_capacity(capacity),
        )
    }

    /// What the input side counted: events, their time span, unreadable
    /// chunks and bad records (a [`RecordingBuilder::reorder_only`]
    /// builder's half of the statistics).
    pub fn input_stats(&self) -> (u64, Option<u64>, Option<u64>, u64, u64) {
        let s = &self.stats;
        (
            s.events,
            s.first_ts,
            s.last_ts,
            s.unreadable_chunks,
            s.bad_records,
        )
    }

    /// Take over the input side's half of the statistics from the
    /// [`RecordingBuilder::reorder_only`] builder that fed this one.
    pub fn set_input_stats(
        &mut self,
        (events, first, last, unreadable, bad): (u64, Option<u64>, Option<u64>, u64, u64),
    ) {
        self.stats.events = events;
        self.stats.first_ts = first;
        self.stats.last_ts = last;
        self.stats.unreadable_chunks = unreadable;
        self.stats.bad_records = bad;
    }

    /// Model an event released by a [`RecordingBuilder::reorder_only`] builder.
    pub fn process_released(&mut self, ts: u64, ev: Ev) {
        self.process(ts, ev);
    }

    fn release(&mut self, ts: u64, ev: Ev) {
        match &mut self.released {
            Some(out) => out.push((ts, ev)),
            None => self.process(ts, ev),
        }
    }

    /// Feed one event (in recording order).
    pub fn push(&mut self, ev: &EventRef<'_>) {
        self.push_ev(Ev::from_ref(ev));
    }

    /// [`RecordingBuilder::push`] of an event already taken out of its chunk.
    pub fn push_ev(&mut self, ev: Ev) {
        let ts = ev.hdr().ts_ns;
        // Span events (emitted at return) sort by their start so a send is
        // seen before the copy inside it and a copy before the posts inside it.
        let key = match &ev {
            Ev::SendMsg(e) if e.enter_ns != 0 && e.enter_ns <= ts => e.enter_ns,
            Ev::TxCopy(e) if e.enter_ns != 0 && e.enter_ns <= ts => e.enter_ns,
            Ev::RdmaWrite(e) if e.enter_ns != 0 && e.enter_ns <= ts => e.enter_ns,
            Ev::RxAction(e) if e.enter_ns != 0 && e.enter_ns <= ts => e.enter_ns,
            Ev::RecvMsg(e) if e.enter_ns != 0 && e.enter_ns <= ts => e.enter_ns,
            _ => ts,
        };
        self.stats.events += 1;
        self.stats.first_ts = Some(self.stats.first_ts.map_or(ts, |f| f.min(ts)));
        self.stats.last_ts = Some(self.stats.last_ts.map_or(ts, |l| l.max(ts)));
        self.max_ts = self.max_ts.max(ts);
        self.seq += 1;
        // Span events arrive a few events late: slotted into the run when
        // their place is within INSERT_REACH of its end (moving that many
        // entries is cheaper than the heap), else queued in the heap.
        let n = self.run.len();
        let at = if self.run.back().is_none_or(|(q, _)| q.ts <= key) {
            Some(n) // in order: the common case
        } else {
            match self
                .run
                .iter()
                .rev()
                .take(INSERT_REACH)
                .position(|(q, _)| q.ts <= key)
            {
                Some(k) => Some(n - k),
                None if n <= INSERT_REACH => Some(0),
                None => None,
            }
        };
        if let Some(at) = at {
            let q = Queued {
                ts: key,
                seq: self.seq,
                slot: usize::MAX,
            };
            if at == n {
                self.run.push_back((q, ev));
            } else {
                self.run.insert(at, (q, ev));
            }
        } else {
            let slot = match self.free.pop() {
                Some(i) => {
                    self.slab[i] = ev;
                    i
                }
                None => {
                    self.slab.push(ev);
                    self.slab.len() - 1
                }
            };
            self.heap.push(Reverse(Queued {
                ts: key,
                seq: self.seq,
                slot,
            }));
        }
        while let Some(top) = self.peek_queued() {
            if top.ts.saturating_add(self.window) < self.max_ts
                || self.run.len() + self.heap.len() > REORDER_CAP
            {
                let (ts, ev) = self.pop_queued().expect("peeked");
                self.release(ts, ev);
            } else {
                break;
            }
        }
    }

    /// The next event in (key, arrival) order, if any.
    fn peek_queued(&self) -> Option<Queued> {
        match (self.run.front(), self.heap.peek()) {
            (Some((a, _)), Some(Reverse(b))) => Some(if (b.ts, b.seq) < (a.ts, a.seq) {
                *b
            } else {
                *a
            }),
            (Some((a, _)), None) => Some(*a),
            (None, Some(Reverse(b))) => Some(*b),
            (None, None) => None,
        }
    }

    /// Take the next event in (key, arrival) order: its key and the event.
    fn pop_queued(&mut self) -> Option<(u64, Ev)> {
        let from_heap = match (self.run.front(), self.heap.peek()) {
            (Some((a, _)), Some(Reverse(b))) => (b.ts, b.seq) < (a.ts, a.seq),
            (Some(_), None) => false,
            (None, _) => true,
        };
        if from_heap {
            let Reverse(q) = self.heap.pop()?;
            self.free.push(q.slot);
            // The slot is free: leave a cheap placeholder in it.
            let ev =
                std::mem::replace(&mut self.slab[q.slot], Ev::RxWake(event::RxWake::default()));
            Some((q.ts, ev))
        } else {
            self.run.pop_front().map(|(q, ev)| (q.ts, ev))
        }
    }

    /// Account events lost before they reached the file (trailer counts, bad chunks).
    pub fn add_lost(&mut self, n: u64) {
        self.stats.lost_events += n;
    }

    /// Account a chunk whose events could not be read.
    pub fn add_unreadable_chunk(&mut self) {
        self.stats.unreadable_chunks += 1;
    }

    /// Account a malformed record (the rest of its chunk is skipped).
    pub fn add_bad_record(&mut self) {
        self.stats.bad_records += 1;
    }

    fn process(&mut self, ts: u64, ev: Ev) {
        if ts < self.released_ts {
            self.stats.late_events += 1;
        }
        self.released_ts = self.released_ts.max(ts);
        match ev {
            Ev::SendMsg(e) => self.on_sendmsg(e.hdr, e),
            Ev::TxCopy(e) => self.on_tx_copy(e.hdr, e),
            Ev::RdmaWrite(e) => self.on_rdma_write(e.hdr, e),
            Ev::CdcSend(e) => self.on_cdc_send(e.hdr, e),
            Ev::CdcTxDone(e) => self.on_tx_done(e.hdr, e),
            Ev::CdcRecv(e) => self.on_cdc_recv(e.hdr, e),
            Ev::RxAction(e) => self.on_rx_action(e.hdr, e),
            Ev::Other(e) => self.apply(&e),
            other => self.apply(&other.to_ref()),
        }
    }

    fn side(&mut self, sock: u64, ts: u64) -> usize {
        if let Some(&i) = self.by_sock.get(&sock) {
            let s = &mut self.sides[i];
            s.first_ts = s.first_ts.min(ts);
            s.last_ts = s.last_ts.max(ts);
            s.events += 1;
            return i;
        }
        let i = self.sides.len();
        let mut s = Side::new(self.rec, sock, ts);
        s.events = 1;
        self.sides.push(s);
        self.by_sock.insert(sock, i);
        i
    }

    /// A new connection on a socket address seen before (the kernel reuses
    /// freed smc_sock memory, so the keyed sock id repeats): start a new side.
    fn fresh_side(&mut self, sock: u64, ts: u64) -> usize {
        let i = self.sides.len();
        let mut s = Side::new(self.rec, sock, ts);
        s.events = 1;
        self.sides.push(s);
        self.by_sock.insert(sock, i);
        i
    }

    fn map_token(&mut self, token: u32, idx: usize) {
        if token == 0 {
            return;
        }
        self.by_token.insert(token, idx);
        self.sides[idx].local_token = Some(token);
        if let Some(pend) = self.pending_rx.remove(&token) {
            for c in pend {
                self.keep_rx_cdc(idx, c);
            }
        }
    }

    fn apply(&mut self, ev: &EventRef<'static>) {
        let h = *ev.hdr();
        match *ev {
            EventRef::Connect(e) => {
                let i = match self.by_sock.get(&e.sock) {
                    Some(&i)
                        if self.sides[i].connect_ts.is_some()
                            || self.sides[i].info.is_some()
                            || self.sides[i].close.is_some() =>
                    {
                        self.fresh_side(e.sock, h.ts_ns)
                    }
                    _ => self.side(e.sock, h.ts_ns),
                };
                let s = &mut self.sides[i];
                s.connect_ts = Some(h.ts_ns);
                s.connect_dst = Some(Addr::from_endpoint(&e.dst, e.family));
                s.comm = event::c_str(&e.comm);
                s.pid = h.pid;
                s.netns = e.netns;
                s.role = Role::Client;
            }
            EventRef::ConnInfo(e) => {
                let i = match self.by_sock.get(&e.sock) {
                    Some(&i) if self.sides[i].info.is_some() || self.sides[i].close.is_some() => {
                        self.fresh_side(e.sock, h.ts_ns)
                    }
                    _ => self.side(e.sock, h.ts_ns),
                };
                let s = &mut self.sides[i];
                s.role = match e.role {
                    event::ROLE_CLIENT => Role::Client,
                    event::ROLE_SERVER => Role::Server,
                    _ => s.role,
                };
                s.mode = Mode::from_u8(e.mode);
                // A server's handshake ends in a kworker (smc_listen_work):
                // its pid and comm are not the application's.
                if e.role != event::ROLE_SERVER && s.comm.is_empty() {
                    s.comm = event::c_str(&e.comm);
                    s.pid = h.pid;
                }
                s.netns = e.netns;
                if e.fallback_rsn != 0 && s.fallback.is_none() {
                    s.fallback = Some((h.ts_ns, e.fallback_rsn, e.peer_diagnosis));
                }
                if e.peer_token != 0 {
                    s.peer_token = Some(e.peer_token);
                }
                if e.sndbuf_len != 0 {
                    s.tx.sndbuf_len = e.sndbuf_len;
                }
                if e.peer_rmbe_size != 0 {
                    s.tx.peer_rmbe_size = e.peer_rmbe_size;
                }
                if e.rmb_len != 0 {
                    s.rx.rmb_len = e.rmb_len;
                }
                s.info = Some(HandshakeInfo {
                    ts: h.ts_ns,
                    rc: e.rc,
                    local: Addr::from_endpoint(&e.local, e.family),
                    remote: Addr::from_endpoint(&e.remote, e.family),
                    local_token: e.local_token,
                    peer_token: e.peer_token,
                    local_dmb_token: e.local_dmb_token,
                    peer_dmb_token: e.peer_dmb_token,
                    sndbuf_len: e.sndbuf_len,
                    rmb_len: e.rmb_len,
                    peer_rmbe_size: e.peer_rmbe_size,
                    qpn: e.qpn,
                    peer_qpn: e.peer_qpn,
                    link_id: e.link_id,
                    smc_version: e.smc_version,
                    lgr: e.lgr,
                    ibname: event::c_str(&e.ibname),
                });
                if e.mode != event::MODE_SMCD {
                    self.map_token(e.local_token, i);
                }
            }
            EventRef::Clc(e) => {
                // A server socket's first events are CLC messages: on a reused
                // address after a close they start a new side.
                let i = match self.by_sock.get(&e.sock) {
                    Some(&i) if self.sides[i].close.is_some() => self.fresh_side(e.sock, h.ts_ns),
                    _ => self.side(e.sock, h.ts_ns),
                };
                let path = if e.path == 0 {
                    String::new()
                } else {
                    (e.path as char).to_string()
                };
                self.sides[i].clc.push(ClcEvent {
                    ts: h.ts_ns,
                    dir: if e.dir == event::DIR_TX { "tx" } else { "rx" },
                    clc_type: match e.clc_type {
                        1 => "proposal",
                        2 => "accept",
                        3 => "confirm",
                        4 => "decline",
                        _ => "unknown",
                    },
                    path,
                    version: e.version,
                    rc: e.rc,
                    decline_diag: e.decline_diag,
                });
            }
            EventRef::Fallback(e) => {
                let i = self.side(e.sock, h.ts_ns);
                let s = &mut self.sides[i];
                s.fallback = Some((h.ts_ns, e.reason, e.peer_diagnosis));
                s.mode = Mode::Fallback;
            }
            EventRef::Close(e) => {
                let i = self.side(e.sock, h.ts_ns);
                self.sides[i].close = Some((h.ts_ns, e.state, e.killed));
            }
            EventRef::LinkDown(e) => {
                self.stats.link_down += 1;
                if self.stats.link_down_events.len() < 100 {
                    self.stats.link_down_events.push(LinkDownEvent {
                        ts: h.ts_ns,
                        ibname: event::c_str(&e.ibname),
                        link_id: e.link_id,
                        state: e.state,
                    });
                }
            }
            EventRef::SendMsg(e) => self.on_sendmsg(h, e),
            EventRef::TxCopy(e) => self.on_tx_copy(h, e),
            EventRef::TxStart(e) => {
                self.side(e.sock, h.ts_ns);
            }
            EventRef::RdmaWrite(e) => self.on_rdma_write(h, e),
            EventRef::CdcSend(e) => self.on_cdc_send(h, e),
            EventRef::CdcTxDone(e) => self.on_tx_done(h, e),
            EventRef::CdcRecv(e) => self.on_cdc_recv(h, e),
            EventRef::RxAction(e) => self.on_rx_action(h, e),
            EventRef::RxWake(e) => {
                let i = self.side(e.sock, h.ts_ns);
                self.sides[i].rx.wakeups += 1;
            }
            EventRef::RecvMsg(e) => {
                let i = self.side(e.sock, h.ts_ns);
                let s = &mut self.sides[i];
                if e.rmb_len != 0 {
                    s.rx.rmb_len = e.rmb_len;
                }
                if s.pid == 0 {
                    s.pid = h.pid;
                }
                s.rx.recv_calls += 1;
                if e.ret > 0 {
                    s.rx.bytes = s.rx.bytes.saturating_add(e.ret as u64);
                    s.first_data_ts.get_or_insert(h.ts_ns);
                }
                if !self.keep_data {
                    return;
                }
                s.rx.recvs.push_back(Recv {
                    enter: e.enter_ns,
                    ts: h.ts_ns,
                    before: e.cons_before,
                    after: e.cons_after,
                    ret: e.ret,
                    pid: h.pid,
                    b_abs: 0,
                    a_abs: 0,
                });
            }
            EventRef::Payload(..) => self.stats.payload_records += 1,
            EventRef::Unknown(_) => self.stats.unknown_kinds += 1,
        }
    }

    fn on_tx_copy(&mut self, h: event::Hdr, e: event::TxCopy) {
        let window = self.window;
        let i = self.side(e.sock, h.ts_ns);
        let s = &mut self.sides[i];
        if e.sndbuf_len != 0 {
            s.tx.sndbuf_len = e.sndbuf_len;
        }
        let ring = s.tx.sndbuf_len;
        let (Some(b), Some(a)) = (
            s.tx.prep.unwrap(e.prep_before, ring),
            s.tx.prep.unwrap(e.prep_after, ring),
        ) else {
            return;
        };
        if a <= b {
            return; // nothing copied (error or zero-length send)
        }
        s.first_data_ts.get_or_insert(h.ts_ns);
        s.tx.msgs += 1;
        if !self.keep_data {
            return;
        }
        let mut m = TxMsg {
            start: b,
            end: a,
            tid: h.tid,
            pid: h.pid,
            copy_enter: Some(e.enter_ns),
            copy_ret: Some(h.ts_ns),
            ranged: true,
            ..TxMsg::default()
        };
        if let Some(k) =
            s.tx.open_sends
                .iter()
                .position(|o| o.tid == h.tid && o.enter <= e.enter_ns && o.ret >= h.ts_ns)
        {
            let o = s.tx.open_sends.remove(k).expect("position");
            m.send_enter = Some(o.enter);
            m.send_ret = Some(o.ret);
            m.send_rc = o.rc;
        }
        // Writes, CDCs and completions already seen (a long copy returns after
        // the posts made inside it) apply to the new message too.
        // With the histories in order (the normal case) one binary search
        // finds the one entry the scan would apply (history.rs).
        if s.tx.writes.sorted() {
            // Writes before have after < end; at most the first covering one applies.
            if let Some(w) =
                s.tx.writes
                    .get(s.tx.writes.partition_point(|w| w.after < a))
            {
                m.apply_write(w);
            }
        } else {
            for w in s.tx.writes.iter() {
                m.apply_write(w);
            }
        }
        if s.tx.cdc_hist.sorted() {
            // Later CDCs are no earlier in time: only the first covering one applies.
            if let Some(c) =
                s.tx.cdc_hist
                    .get(s.tx.cdc_hist.partition_point(|c| c.prod < a))
            {
                m.apply_cdc(c);
            }
        } else {
            for c in s.tx.cdc_hist.iter() {
                m.apply_cdc(c);
            }
        }
        let done = match m.cdc_send {
            None => None,
            Some(t) if s.tx.done_hist.sorted() => {
                let from = s.tx.done_hist.partition_point(|d| d.cdc_ts < t);
                s.tx.done_hist
                    .iter()
                    .skip(from)
                    .take_while(|d| d.cdc_ts == t)
                    .find(|d| d.seqno == m.cdc_seqno)
            }
            Some(t) => {
                s.tx.done_hist
                    .iter()
                    .find(|d| d.cdc_ts == t && d.seqno == m.cdc_seqno)
            }
        };
        if let Some(d) = done {
            m.cdc_tx_done = Some(d.ts);
            if d.status != 0 {
                m.gaps |= gap::TX_ERROR;
            }
        }
        s.tx.inflight.push_back(m);
        let smcd = s.is_smcd();
        Self::retire(&mut s.tx, |m| m.finished(smcd));
        let _ = window;
    }

    fn on_sendmsg(&mut self, h: event::Hdr, e: event::SendMsg) {
        let window = self.window;
        let i = self.side(e.sock, h.ts_ns);
        let s = &mut self.sides[i];
        if s.pid == 0 {
            s.pid = h.pid;
        }
        s.tx.sends += 1;
        if e.ret > 0 {
            s.tx.bytes = s.tx.bytes.saturating_add(e.ret as u64);
        }
        if !self.keep_data {
            return;
        }
        // Sends older than the reorder window that never met their copy.
        let horizon = e.enter_ns.saturating_sub(window);
        while s.tx.open_sends.front().is_some_and(|o| o.ret < horizon) {
            let o = s.tx.open_sends.pop_front().expect("front");
            s.tx.done.push_back(o.into_msg(s.mode));
        }
        let matches = |m: &TxMsg| {
            m.send_enter.is_none()
                && m.tid == h.tid
                && m.copy_enter.is_some_and(|c| c >= e.enter_ns)
                && m.copy_ret.is_some_and(|c| c <= h.ts_ns)
        };
        let found = match s.tx.inflight.iter_mut().rev().find(|m| matches(m)) {
            Some(m) => Some(m),
            None => s.tx.done.iter_mut().rev().take(256).find(|m| matches(m)),
        };
        match found {
            Some(m) => {
                m.send_enter = Some(e.enter_ns);
                m.send_ret = Some(h.ts_ns);
                m.send_rc = e.ret;
            }
            None if e.ret > 0 => {
                let o = OpenSend {
                    tid: h.tid,
                    pid: h.pid,
                    enter: e.enter_ns,
                    ret: h.ts_ns,
                    rc: e.ret,
                };
                if s.mode == Mode::Fallback {
                    s.tx.done.push_back(o.into_msg(s.mode));
                } else {
                    s.tx.open_sends.push_back(o);
                }
            }
            None => {}
        }
    }

    fn on_rdma_write(&mut self, h: event::Hdr, e: event::RdmaWrite) {
        let i = self.side(e.sock, h.ts_ns);
        let s = &mut self.sides[i];
        if e.peer_rmbe_size != 0 {
            s.tx.peer_rmbe_size = e.peer_rmbe_size;
        }
        if !self.keep_data {
            return;
        }
        let ring = s.tx.peer_rmbe_size;
        let (Some(b), Some(a)) = (
            s.tx.prod.unwrap(e.prod_before, ring),
            s.tx.prod.unwrap(e.prod_after, ring),
        ) else {
            return;
        };
        let w = Write {
            before: b,
            after: a,
            enter: e.enter_ns,
            ret: h.ts_ns,
            rc: e.rc,
        };
        for m in s.tx.inflight.iter_mut() {
            m.apply_write(&w);
        }
        s.tx.writes.push(w);
    }

    fn on_cdc_send(&mut self, h: event::Hdr, e: event::Cdc) {
        let i = self.side(e.sock, h.ts_ns);
        let s = &mut self.sides[i];
        let smcd = e.cdc_flags & event::CDC_F_SMCD != 0;
        if smcd {
            s.mode = Mode::SmcD;
        } else if s.mode == Mode::Unknown {
            s.mode = Mode::SmcR;
        }
        if !smcd && e.token != 0 && s.peer_token.is_none() {
            s.peer_token = Some(e.token);
        }
        s.tx.cdc_count += 1;
        if s.tx.cdcs.len() < self.clock_samples {
            s.tx.cdcs.push(CdcPoint {
                ts: h.ts_ns,
                seqno: e.seqno,
                prod: e.prod,
                cons: e.cons,
            });
        }
        if !self.keep_data {
            return;
        }
        let Some(p) = s.tx.prod.unwrap(e.prod, s.tx.peer_rmbe_size) else {
            for m in s.tx.inflight.iter_mut() {
                m.gaps |= gap::RING_UNKNOWN;
            }
            return;
        };
        // A seqno jump means a CDC of this connection is missing from the
        // recording: a message ending after the previous CDC's prod may have
        // left in the missing one, so its CDC time is not trusted.
        let seq_gap = match s.tx.last_cdc {
            Some((seq, _)) if !smcd => e.seqno != seq.wrapping_add(1),
            _ => false,
        };
        let low = s.tx.last_cdc.map_or(0, |(_, prod)| prod);
        let (mut lost_unknown, mut lost_max) = (false, 0);
        if let (true, Some((last, _))) = (seq_gap, s.tx.last_cdc) {
            let missing = e.seqno.wrapping_sub(last).wrapping_sub(1);
            if missing > 64 {
                lost_unknown = true;
            } else {
                for k in 1..=missing {
                    let seq = last.wrapping_add(k);
                    match s
                        .tx
                        .orphan_done
                        .iter()
                        .find(|d| d.seqno == seq)
                        .and_then(|d| d.prod)
                    {
                        Some(prod) => lost_max = lost_max.max(prod),
                        None => lost_unknown = true,
                    }
                }
            }
        }
        let c = SentCdc {
            ts: h.ts_ns,
            seqno: e.seqno,
            prod: p,
            low,
            seq_gap,
            lost_unknown,
            lost_max,
            rc: e.rc,
        };
        for m in s.tx.inflight.iter_mut() {
            m.apply_cdc(&c);
        }
        if let Some(k) =
            s.tx.orphan_done
                .iter()
                .position(|d| d.seqno == e.seqno && d.ts >= h.ts_ns)
        {
            let d = s.tx.orphan_done.remove(k).expect("position");
            let mut d = d;
            d.cdc_ts = h.ts_ns;
            Self::apply_done(&mut s.tx, d);
        }
        s.tx.cdc_hist.push(c);
        s.tx.last_cdc = Some((e.seqno, p.max(low)));
        Self::retire(&mut s.tx, |m| m.finished(smcd));
    }

    fn on_tx_done(&mut self, h: event::Hdr, e: event::CdcTxDone) {
        let i = self.side(e.sock, h.ts_ns);
        let s = &mut self.sides[i];
        if !self.keep_data {
            return;
        }
        // The CDC this completion belongs to: the latest one sent with this seqno.
        let cdc_ts =
            s.tx.cdc_hist
                .iter()
                .rev()
                .find(|c| c.seqno == e.seqno && c.ts <= h.ts_ns)
                .map(|c| c.ts);
        let ring = s.tx.peer_rmbe_size;
        let prod = s.tx.prod.unwrap(e.prod, ring);
        let d = Done {
            seqno: e.seqno,
            ts: h.ts_ns,
            status: e.wc_status,
            cdc_ts: cdc_ts.unwrap_or(0),
            prod,
        };
        if cdc_ts.is_none() {
            // Completion processed before its CDC (reordered): keep it a while.
            push_bounded(&mut s.tx.orphan_done, d);
            return;
        }
        Self::apply_done(&mut s.tx, d);
        let smcd = s.is_smcd();
        Self::retire(&mut s.tx, |m| m.finished(smcd));
    }

    fn apply_done(tx: &mut TxState, d: Done) {
        for m in tx.inflight.iter_mut() {
            if m.cdc_tx_done.is_none() && m.cdc_seqno == d.seqno && m.cdc_send == Some(d.cdc_ts) {
                m.cdc_tx_done = Some(d.ts);
                if d.status != 0 {
                    m.gaps |= gap::TX_ERROR;
                }
            }
        }
        // Send completions arrive in posting order on the QP: messages of
        // earlier CDCs still waiting lost their completion event.
        for m in tx.inflight.iter_mut() {
            if m.cdc_tx_done.is_none() && m.cdc_send.is_some_and(|t| t < d.cdc_ts) {
                m.gaps |= gap::NO_CDC_TX_DONE;
            }
        }
        tx.done_hist.push(d);
    }

    /// Move finished sender halves out of the in-flight list.
    fn retire(tx: &mut TxState, done: impl Fn(&TxMsg) -> bool) {
        if !tx.inflight.iter().any(&done) {
            return;
        }
        let mut keep = VecDeque::with_capacity(tx.inflight.len());
        for m in tx.inflight.drain(..) {
            if done(&m) {
                tx.done.push_back(m);
            } else {
                keep.push_back(m);
            }
        }
        tx.inflight = keep;
    }

    fn keep_rx_cdc(&mut self, i: usize, c: RxCdc) {
        let cap = self.clock_samples;
        let rx = &mut self.sides[i].rx;
        rx.cdc_count += 1;
        if rx.clock.len() < cap {
            rx.clock.push(c);
        }
        if self.keep_data {
            rx.cdcs.push_back(c);
        }
    }

    fn on_cdc_recv(&mut self, h: event::Hdr, e: event::Cdc) {
        let rx = RxCdc {
            ts: h.ts_ns,
            seqno: e.seqno,
            prod: e.prod,
            cons: e.cons,
            prod_abs: 0,
        };
        let idx = if e.sock != 0 {
            Some(self.side(e.sock, h.ts_ns))
        } else {
            self.by_token.get(&e.token).copied()
        };
        match idx {
            Some(i) => {
                let s = &mut self.sides[i];
                if e.sock == 0 {
                    s.last_ts = s.last_ts.max(h.ts_ns);
                    s.events += 1;
                }
                if e.cdc_flags & event::CDC_F_SMCD != 0 {
                    s.mode = Mode::SmcD;
                }
                self.keep_rx_cdc(i, rx);
            }
            None => {
                let q = self.pending_rx.entry(e.token).or_default();
                if q.len() >= PENDING_RX_CAP {
                    q.pop_front();
                    self.stats.unresolved_cdc_recv += 1;
                }
                q.push_back(rx);
            }
        }
    }

    fn on_rx_action(&mut self, h: event::Hdr, e: event::RxAction) {
        let i = self.side(e.sock, h.ts_ns);
        if self.sides[i].local_token.is_none() && !self.sides[i].is_smcd() {
            // Learn the token of a connection whose CONN_INFO is not in the
            // recording: the CDC just received with this seqno, not yet owned.
            let best = self
                .pending_rx
                .iter()
                .filter_map(|(tok, q)| {
                    q.iter()
                        .filter(|c| c.seqno == e.seqno && c.ts <= h.ts_ns)
                        .map(|c| c.ts)
                        .max()
                        .map(|t| (t, *tok))
                })
                .max();
            if let Some((_, tok)) = best {
                self.map_token(tok, i);
            }
        }
        let s = &mut self.sides[i];
        if e.rmb_len != 0 {
            s.rx.rmb_len = e.rmb_len;
        }
        if !self.keep_data {
            return;
        }
        s.rx.actions.push_back(RxAct {
            enter: e.enter_ns,
            ts: h.ts_ns,
            before: e.prod_before,
            after: e.prod_after,
            seqno: e.seqno,
            b_abs: 0,
            a_abs: 0,
        });
    }

    /// Process everything still in the reorder window and close every
    /// socket's in-flight messages (end of the recording).
    pub fn drain(&mut self) {
        self.drain_queue();
        self.close_sides();
    }

    /// Release every queued event (the end of the input).
    pub fn drain_queue(&mut self) {
        while let Some((ts, ev)) = self.pop_queued() {
            self.release(ts, ev);
        }
    }

    /// Close the sides at the end of the input: sends never matched and
    /// messages still in flight become done, receive points are settled.
    pub fn close_sides(&mut self) {
        for s in &mut self.sides {
            while let Some(o) = s.tx.open_sends.pop_front() {
                s.tx.done.push_back(o.into_msg(s.mode));
            }
            let pending: Vec<TxMsg> = s.tx.inflight.drain(..).collect();
            s.tx.done.extend(pending);
            s.rx.settle();
        }
    }

    /// Every event with an earlier sort key (time, or start for spans) that
    /// has arrived was processed.
    pub fn watermark(&self) -> u64 {
        self.released_ts
    }

    /// The sockets seen so far.
    pub fn sides(&self) -> &[Side] {
        &self.sides
    }

    /// The sockets seen so far, for joining and pruning.
    pub fn sides_mut(&mut self) -> &mut [Side] {
        &mut self.sides
    }

    /// Counters so far.
    pub fn stats(&self) -> &RecordingStats {
        &self.stats
    }

    /// Drain and return the recording.
    pub fn finish(mut self) -> Recording {
        self.drain();
        for q in self.pending_rx.values() {
            self.stats.unresolved_cdc_recv += q.len() as u64;
        }
        Recording {
            stats: self.stats,
            sides: self.sides,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(wrap: u16, count: u32) -> Curs {
        Curs {
            count,
            wrap,
            _pad: 0,
        }
    }

    #[test]
    fn unwrap_follows_ring_turns_and_u16_overflow() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(c(65534, 100), 1000), Some(65534 * 1000 + 100));
        assert_eq!(u.unwrap(c(65535, 999), 1000), Some(65535 * 1000 + 999));
        // wrap overflowed from 65535 to 0: one epoch later
        assert_eq!(u.unwrap(c(0, 5), 1000), Some(65536 * 1000 + 5));
        // a late event from before the overflow stays in the old epoch
        assert_eq!(u.unwrap(c(65535, 10), 1000), Some(65535 * 1000 + 10));
        assert_eq!(u.unwrap(c(1, 0), 0), None);
    }
}
