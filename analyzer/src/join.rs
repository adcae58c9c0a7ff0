//! From the sides of every recording to the analysis: pair sockets into
//! connections (tokens, QP numbers, mirrored 4-tuples; never sock ids across
//! recordings), estimate each recording's clock offset from paired CDCs
//! (two-way bracketing as in NTP), and join each sender half of a message with
//! the receiver points that carried its last byte, giving its full timeline.

use std::collections::HashMap;

use crate::model::{
    gap, Addr, BuilderOptions, Mode, RecordingBuilder, RecordingStats, Role, RxAct, Side, TxMsg,
    CLOCK_SAMPLES,
};

/// Facts about one input recording.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecordingMeta {
    pub path: String,
    pub host: String,
    pub boot_id: String,
    pub kernel_release: String,
    /// The file had its trailer (else lost-event counts are unknown).
    pub clean_close: bool,
    pub stats: RecordingStats,
    #[serde(skip)]
    pub snapshot_sockets: Vec<SnapshotSock>,
}

/// A socket listed in the recording's start snapshot (smc_diag), used to
/// name connections whose handshake predates the recording.
#[derive(Clone, Debug)]
pub struct SnapshotSock {
    pub local: Addr,
    pub remote: Addr,
    pub mode: Mode,
    pub local_token: u32,
    pub sndbuf_len: u32,
    pub rmb_len: u32,
    pub peer_rmbe_size: u32,
    pub fallback_rsn: u32,
}

/// Offset of a recording's clock from the reference recording (number 0):
/// `t_reference = t_recording - offset_ns`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClockEstimate {
    pub recording: usize,
    /// "reference", "same_host" (equal boot id), "cdc_bracketing" or "unknown".
    pub method: &'static str,
    pub offset_ns: Option<i64>,
    pub uncertainty_ns: Option<u64>,
    /// CDC pairs used, reference -> this recording and back.
    pub pairs_to: u64,
    pub pairs_from: u64,
    /// Smallest apparent one-way delays (ns), reference -> this and back.
    pub min_delay_to_ns: Option<i64>,
    pub min_delay_from_ns: Option<i64>,
}

/// A connection: one SMC socket pair, with the sides recorded of it.
#[derive(Clone, Debug)]
pub struct Connection {
    /// 1, 2, ... in order of appearance; 0 for an idle socket.
    pub id: u32,
    /// A socket that never connected nor moved data (a listener, a socket
    /// closed unused): not a connection, left out of reports.
    pub idle: bool,
    /// Indices into [`Analysis::sides`]; the client first when known.
    pub sides: Vec<usize>,
}

/// Direction of a message inside its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// From the connection's first side (the client when known) to the other.
    Forward,
    Backward,
}

/// What kind of message this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MsgKind {
    /// Bytes of one user send followed through the SMC data path.
    Smc,
    /// A send on a connection that fell back to TCP: only `send_call` exists.
    Fallback,
    /// Seen only at the receiver (peer not recorded): one CDC's worth of data.
    RxOnly,
}

/// Time points of a message, in the reference clock (ns).
pub const POINTS: [&str; 11] = [
    "send_enter",
    "copy_enter",
    "copy_done",
    "post_enter",
    "post_done",
    "cdc_send",
    "cdc_tx_done",
    "cdc_recv",
    "rx_done",
    "delivered",
    "send_return",
];
pub mod pt {
    pub const SEND_ENTER: usize = 0;
    pub const COPY_ENTER: usize = 1;
    pub const COPY_DONE: usize = 2;
    pub const POST_ENTER: usize = 3;
    pub const POST_DONE: usize = 4;
    pub const CDC_SEND: usize = 5;
    pub const CDC_TX_DONE: usize = 6;
    pub const CDC_RECV: usize = 7;
    pub const RX_DONE: usize = 8;
    pub const DELIVERED: usize = 9;
    pub const SEND_RETURN: usize = 10;
}

/// A stage: a named interval between two points.
pub struct StageDef {
    pub name: &'static str,
    pub from: usize,
    pub to: usize,
    /// Part of the chain that tiles `e2e` (used to find the blocking stage).
    pub chain: bool,
    /// Needs both hosts' clocks (sender and receiver points).
    pub cross_host: bool,
}

/// Every stage, in path order. See docs/analyzer.md for the definitions.
pub const STAGES: [StageDef; 10] = [
    StageDef {
        name: "send_call",
        from: pt::SEND_ENTER,
        to: pt::SEND_RETURN,
        chain: false,
        cross_host: false,
    },
    StageDef {
        name: "send_lock",
        from: pt::SEND_ENTER,
        to: pt::COPY_ENTER,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "copy",
        from: pt::COPY_ENTER,
        to: pt::COPY_DONE,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "post",
        from: pt::COPY_DONE,
        to: pt::POST_DONE,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "cdc_send",
        from: pt::POST_DONE,
        to: pt::CDC_SEND,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "cdc_complete",
        from: pt::CDC_SEND,
        to: pt::CDC_TX_DONE,
        chain: false,
        cross_host: false,
    },
    StageDef {
        name: "wire",
        from: pt::CDC_SEND,
        to: pt::CDC_RECV,
        chain: true,
        cross_host: true,
    },
    StageDef {
        name: "rx_process",
        from: pt::CDC_RECV,
        to: pt::RX_DONE,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "app_wait",
        from: pt::RX_DONE,
        to: pt::DELIVERED,
        chain: true,
        cross_host: false,
    },
    StageDef {
        name: "e2e",
        from: pt::SEND_ENTER,
        to: pt::DELIVERED,
        chain: false,
        cross_host: true,
    },
];

/// Index of the `e2e` stage in [`STAGES`].
pub const E2E: usize = 9;

/// One message with its whole timeline.
#[derive(Clone, Debug)]
pub struct Message {
    pub conn: usize,
    pub dir: Dir,
    pub kind: MsgKind,
    pub sender: Option<usize>,
    pub receiver: Option<usize>,
    /// Stream offsets `[start, end)` of the message in its direction.
    pub start: u64,
    pub end: u64,
    pub len: u64,
    pub pid: u32,
    pub points: [Option<i64>; 11],
    pub stages: [Option<i64>; 10],
    pub gaps: u32,
    pub cdc_seqno: Option<u16>,
}

impl Message {
    /// Incomplete: a stage it should have is missing or not trustworthy
    /// (a peer that was not recorded does not make it incomplete).
    pub fn incomplete(&self) -> bool {
        self.gaps & !gap::NO_PEER != 0
    }

    /// The latency used to rank messages: e2e when known, else the span of
    /// the points this side saw.
    pub fn latency(&self) -> i64 {
        if let Some(e) = self.stages[E2E] {
            return e;
        }
        let known = self.points.iter().flatten();
        match (known.clone().min(), known.max()) {
            (Some(a), Some(b)) => b.saturating_sub(*a),
            _ => 0,
        }
    }

    /// The chain stage that took longest, with its share of the chain sum.
    pub fn blocking_stage(&self) -> Option<(&'static str, i64)> {
        STAGES
            .iter()
            .zip(self.stages.iter())
            .filter(|(d, v)| d.chain && v.is_some())
            .map(|(d, v)| (d.name, v.unwrap_or(0)))
            .max_by_key(|(_, v)| *v)
    }

    /// First known point (reference clock).
    pub fn first_point(&self) -> Option<i64> {
        self.points.iter().flatten().min().copied()
    }
}

/// Everything the outputs need except the messages, which stream through a
/// [`Sink`]. Sides here come from the first pass (identity, handshake,
/// counters, clock samples); their message data is not kept.
#[derive(Debug)]
pub struct Analysis {
    pub recordings: Vec<RecordingMeta>,
    pub sides: Vec<Side>,
    pub conns: Vec<Connection>,
    /// Connection index of every side.
    pub side_conn: Vec<usize>,
    pub clocks: Vec<ClockEstimate>,
    /// Earliest event of the reference timeline (ns), the zero of relative times.
    pub t0: i64,
    /// Messages, only when collected with [`collect`] (tests, small inputs).
    pub messages: Vec<Message>,
    /// Index of a recording's first side in `sides`.
    pub side_base: Vec<usize>,
    /// Most message halves and receive points held at once during the
    /// second pass (the memory bound the streaming join achieves).
    pub peak_retained: u64,
}

impl Analysis {
    /// Clock offset of a recording, if known.
    pub fn offset(&self, rec: usize) -> Option<i64> {
        self.clocks.get(rec).and_then(|c| c.offset_ns)
    }

    /// The other side of side `si`'s connection.
    pub fn peer(&self, si: usize) -> Option<usize> {
        self.conns[self.side_conn[si]]
            .sides
            .iter()
            .copied()
            .find(|&k| k != si)
    }

    fn dir_of(&self, si: usize) -> Dir {
        if self.conns[self.side_conn[si]].sides.first() == Some(&si) {
            Dir::Forward
        } else {
            Dir::Backward
        }
    }

    /// Whether the side ever sent data (first pass counters).
    fn sends(&self, si: usize) -> bool {
        let t = &self.sides[si].tx;
        t.msgs > 0 || t.cdc_count > 0
    }
}

/// Receives every finished message once, in join order (roughly time order).
pub trait Sink {
    /// Called once the connections and clocks are known, before any message.
    fn begin(&mut self, _a: &Analysis) {}
    fn message(&mut self, a: &Analysis, m: Message);
}

impl Sink for Vec<Message> {
    fn message(&mut self, _a: &Analysis, m: Message) {
        self.push(m);
    }
}

/// One element of a recording's event stream.
pub enum Item {
    Event(crate::model::Ev),
    /// A chunk that could not be read: its events are missing.
    UnreadableChunk,
    /// A malformed record: the rest of its chunk is missing.
    BadRecord,
}

/// A recording that can be read twice (once per pass).
pub struct Input {
    pub meta: RecordingMeta,
    /// Events the kernel dropped (trailer).
    pub lost: u64,
    /// Opens the recording's event stream (called once per pass); the
    /// stream is read on a thread of its own in the second pass.
    pub open: Box<dyn FnMut() -> Box<dyn Iterator<Item = Item> + Send>>,
}

/// Trace time a message may wait for its receiver events before it is joined
/// with what is there (then it is incomplete). Delivered messages are joined
/// at once; this only bounds memory when receiver events are missing.
pub const JOIN_HORIZON_NS: i64 = 60_000_000_000;
/// Receive-only messages (peer not recorded) wait this long for their read.
pub const RX_ONLY_HORIZON_NS: i64 = 60_000_000_000;
/// Join every this many events of the merged stream.
const FLUSH_EVERY: u64 = 8192;

fn feed(b: &mut RecordingBuilder, it: Item) {
    match it {
        Item::Event(ev) => b.push_ev(ev),
        Item::UnreadableChunk => b.add_unreadable_chunk(),
        Item::BadRecord => b.add_bad_record(),
    }
}

/// Exit code of `smc-analyze` when several recordings share no connection.
pub const EXIT_NO_COMMON_CONNECTION: u8 = 30;

/// Several recordings were given but no connection appears in more than one
/// of them: they are not the two ends of one run (different runs, hosts that
/// never talked), so no cross-host stage or clock offset can be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoCommonConnection {
    pub paths: Vec<String>,
}

impl std::fmt::Display for NoCommonConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: no connection in common (not the two ends of one run?); analyze them one at a time",
            self.paths.join(", ")
        )
    }
}

/// Analyze recordings (the first is the reference clock): a first pass for
/// connections and clocks, a second that streams messages into `sink`.
/// Recordings without a connection in common are analyzed side by side.
pub fn run(inputs: Vec<Input>, window_ns: u64, sink: &mut dyn Sink) -> Analysis {
    match run_inner(inputs, window_ns, sink, false) {
        Ok(a) => a,
        Err(e) => unreachable!("pairing not required, yet refused: {e}"),
    }
}

/// [`run`], but refuse (before the second pass, without calling `sink`)
/// two or more recordings of which no connection appears in more than one.
pub fn run_checked(
    inputs: Vec<Input>,
    window_ns: u64,
    sink: &mut dyn Sink,
) -> Result<Analysis, NoCommonConnection> {
    run_inner(inputs, window_ns, sink, true)
}

fn run_inner(
    mut inputs: Vec<Input>,
    window_ns: u64,
    sink: &mut dyn Sink,
    require_common: bool,
) -> Result<Analysis, NoCommonConnection> {
    // Pass 1: identities, tokens, handshakes, counters, clock samples.
    let mut recordings = Vec::new();
    let mut sides: Vec<Side> = Vec::new();
    let mut side_base = Vec::new();
    // CDC samples serve only the offset of a recording from another host:
    // one recording (or all from one boot) keeps none, so pass 1 holds only
    // per-socket state. Otherwise up to CLOCK_SAMPLES per socket and direction.
    let cross_host = inputs
        .iter()
        .skip(1)
        .any(|i| i.meta.boot_id.is_empty() || i.meta.boot_id != inputs[0].meta.boot_id);
    let clock_samples = if cross_host { CLOCK_SAMPLES } else { 0 };
    for (r, inp) in inputs.iter_mut().enumerate() {
        let mut b = RecordingBuilder::with_options(
            r,
            BuilderOptions {
                window_ns,
                keep_data: false,
                clock_samples,
            },
        );
        b.add_lost(inp.lost);
        // Read and reorder on a thread of their own, as in pass 2.
        let stream = (inp.open)();
        let input_stats = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Step>(STEPS_IN_FLIGHT);
            let merger =
                scope.spawn(move || merge_streams(vec![stream], vec![0], window_ns, false, tx));
            for step in rx {
                if let Step::Events(_, events) = step {
                    for (ts, ev) in events {
                        b.process_released(ts, ev);
                    }
                }
            }
            match merger.join() {
                Ok(stats) => stats[0],
                Err(p) => std::panic::resume_unwind(p),
            }
        });
        b.set_input_stats(input_stats);
        let rec = b.finish();
        let mut meta = inp.meta.clone();
        meta.stats = rec.stats;
        side_base.push(sides.len());
        sides.extend(rec.sides);
        recordings.push(meta);
    }
    apply_snapshots(&recordings, &mut sides);
    let (conns, side_conn) = pair(&sides);
    if require_common
        && recordings.len() > 1
        && !conns.iter().any(|c| {
            c.sides
                .iter()
                .any(|&s| sides[s].rec != sides[c.sides[0]].rec)
        })
    {
        return Err(NoCommonConnection {
            paths: recordings.iter().map(|r| r.path.clone()).collect(),
        });
    }
    let clocks = estimate_clocks(&recordings, &sides, &conns);
    // The CDC samples served the clock estimate only.
    for s in &mut sides {
        s.tx.cdcs = Vec::new();
        s.rx.clock = Vec::new();
    }
    let mut a = Analysis {
        recordings,
        sides,
        conns,
        side_conn,
        clocks,
        t0: 0,
        messages: Vec::new(),
        side_base,
        peak_retained: 0,
    };
    a.t0 = (0..a.recordings.len())
        .filter_map(|r| {
            a.recordings[r]
                .stats
                .first_ts
                .map(|f| (f as i64).saturating_sub(a.offset(r).unwrap_or(0)))
        })
        .min()
        .unwrap_or(0);
    sink.begin(&a);

    // Pass 2: all recordings merged in reference-clock order; messages are
    // joined as soon as their last byte is delivered, then dropped.
    let n = inputs.len();
    let mut builders: Vec<RecordingBuilder> = (0..n)
        .map(|r| {
            let mut b = RecordingBuilder::with_options(
                r,
                BuilderOptions {
                    window_ns,
                    keep_data: true,
                    clock_samples: 0,
                },
            );
            b.add_lost(inputs[r].lost);
            b
        })
        .collect();
    let iters: Vec<Box<dyn Iterator<Item = Item> + Send>> =
        inputs.iter_mut().map(|i| (i.open)()).collect();
    let offs: Vec<i64> = (0..n).map(|r| a.offset(r).unwrap_or(0)).collect();
    // Without every clock offset the recordings' times cannot be compared:
    // then messages are joined only at the end (memory grows with the input).
    let streaming = (0..n).all(|r| a.offset(r).is_some());
    // Two threads: one reads and merges the streams through the reorder
    // windows, this one models what they release, joins and feeds the sink.
    // The steps reach this thread in the order one thread would run them.
    let mut peak = 0u64;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Step>(STEPS_IN_FLIGHT);
        let merger = scope.spawn(move || merge_streams(iters, offs, window_ns, streaming, tx));
        for step in rx {
            match step {
                Step::Events(r, events) => {
                    let b = &mut builders[r as usize];
                    for (ts, ev) in events {
                        b.process_released(ts, ev);
                    }
                }
                Step::Flush(until) => {
                    // Builders process events a reorder window behind the input.
                    peak = peak.max(retained(&builders));
                    flush(&a, &mut builders, until, false, sink);
                }
            }
        }
        if let Err(p) = merger.join() {
            std::panic::resume_unwind(p);
        }
    });
    for b in builders.iter_mut() {
        b.close_sides();
    }
    peak = peak.max(retained(&builders));
    flush(&a, &mut builders, i64::MAX, true, sink);
    a.peak_retained = peak;
    Ok(a)
}

/// What the merging thread hands the modelling one. A recording's events
/// reach its builder in the order its reorder window released them; the
/// builders are independent of each other, so only the flushes order the
/// recordings: every event released before a flush is sent before it.
enum Step {
    /// Recording, and (sort key, event) as its reorder window released them.
    Events(u32, Vec<(u64, crate::model::Ev)>),
    /// Join what can be joined up to this reference time.
    Flush(i64),
}

/// Events per [`Step::Events`] (moved between the threads as one vector,
/// not event by event), and steps in flight between the two threads.
const STEP_EVENTS: usize = 1024;
const STEPS_IN_FLIGHT: usize = 16;

/// The second pass's reading half: merge the recordings in reference-clock
/// order, run each through its reorder window and send what the windows
/// release (and a flush every [`FLUSH_EVERY`] input events) in batches.
fn merge_streams(
    mut iters: Vec<Box<dyn Iterator<Item = Item> + Send>>,
    offs: Vec<i64>,
    window_ns: u64,
    streaming: bool,
    tx: std::sync::mpsc::SyncSender<Step>,
) -> Vec<InputStats> {
    let n = iters.len();
    let mut windows: Vec<RecordingBuilder> = (0..n)
        .map(|r| RecordingBuilder::reorder_only(r, window_ns))
        .collect();
    let mut heads: Vec<Option<Item>> = iters.iter_mut().map(|i| i.next()).collect();
    let key = |it: &Item, r: usize| match it {
        Item::Event(e) => (e.hdr().ts_ns as i64).saturating_sub(offs[r]),
        _ => i64::MIN,
    };
    // Send every recording's released events (all of them, or only full batches).
    let send_released = |windows: &mut [RecordingBuilder], all: bool| -> bool {
        for (r, w) in windows.iter_mut().enumerate() {
            if w.released_len() >= if all { 1 } else { STEP_EVENTS }
                && tx
                    .send(Step::Events(r as u32, w.take_released(STEP_EVENTS)))
                    .is_err()
            {
                return false;
            }
        }
        true
    };
    let mut count = 0u64;
    let mut now = i64::MIN;
    loop {
        let r = if n == 1 {
            if heads[0].is_none() {
                break;
            }
            0
        } else {
            let pick = (0..n)
                .filter(|&r| heads[r].is_some())
                .min_by_key(|&r| key(heads[r].as_ref().expect("some"), r));
            let Some(r) = pick else { break };
            r
        };
        let it = heads[r].take().expect("picked");
        now = now.max(key(&it, r));
        feed(&mut windows[r], it);
        heads[r] = iters[r].next();
        count += 1;
        let flush = streaming && count.is_multiple_of(FLUSH_EVERY);
        if (flush || windows[r].released_len() >= STEP_EVENTS)
            && !send_released(&mut windows, flush)
        {
            return windows.iter().map(|w| w.input_stats()).collect();
        }
        if flush
            && tx
                .send(Step::Flush(now.saturating_sub(window_ns as i64)))
                .is_err()
        {
            break;
        }
    }
    for w in windows.iter_mut() {
        w.drain_queue();
    }
    send_released(&mut windows, true);
    windows.iter().map(|w| w.input_stats()).collect()
}

/// A reorder window's half of a recording's statistics ([`RecordingBuilder::input_stats`]).
type InputStats = (u64, Option<u64>, Option<u64>, u64, u64);

/// Message halves and receive points currently held by the builders.
fn retained(b: &[RecordingBuilder]) -> u64 {
    b.iter()
        .flat_map(|b| b.sides().iter())
        .map(|s| {
            (s.tx.pending_ends().count() + s.rx.cdcs.len() + s.rx.actions.len() + s.rx.recvs.len())
                as u64
        })
        .sum()
}

/// Run [`run`] collecting every message into `Analysis::messages` (sorted by time).
pub fn collect(inputs: Vec<Input>, window_ns: u64) -> Analysis {
    let mut v: Vec<Message> = Vec::new();
    let mut a = run(inputs, window_ns, &mut v);
    v.sort_by_key(|m| (m.first_point(), m.conn));
    a.messages = v;
    a
}

fn locate(a: &Analysis, gi: usize) -> (usize, usize) {
    let rec = a.sides[gi].rec;
    (rec, gi - a.side_base[rec])
}

/// Join what is ready: messages whose last byte was delivered (or that waited
/// past the horizon, or everything when `last`), then prune receive points
/// no later message can need.
fn flush(a: &Analysis, b: &mut [RecordingBuilder], now: i64, last: bool, sink: &mut dyn Sink) {
    for (r, bl) in b.iter_mut().enumerate() {
        // `now` is on the reference clock; the builders' times on their own.
        let local_before = now
            .saturating_add(a.offset(r).unwrap_or(0))
            .saturating_sub(JOIN_HORIZON_NS);
        for s in bl.sides_mut() {
            s.rx.settle();
            if !last && local_before > 0 {
                s.tx.expire(local_before as u64);
            }
        }
    }
    for gi in 0..a.sides.len() {
        let (r, i) = locate(a, gi);
        if i >= b[r].sides().len() {
            continue;
        }
        let peer = a
            .peer(gi)
            .map(|p| (p, locate(a, p)))
            .filter(|(_, (pr, pi))| *pi < b[*pr].sides().len());
        loop {
            let ready = {
                let s = &b[r].sides()[i];
                let Some(m) = s.tx.done.front() else { break };
                let t = m
                    .first_time()
                    .map(|t| (t as i64).saturating_sub(a.offset(r).unwrap_or(0)));
                last || !m.ranged
                    || peer.is_none()
                    // Delivered, and the receiver has processed every event
                    // up to that delivery (its CDC and rx processing).
                    || peer.is_some_and(|(_, (pr, pi))| {
                        b[pr].sides()[pi].rx.delivering(m.end).is_some_and(|t| b[pr].watermark() >= t)
                    })
                    || t.is_some_and(|t| t.saturating_add(JOIN_HORIZON_NS) < now)
            };
            if !ready {
                break;
            }
            let m = b[r].sides_mut()[i].tx.done.pop_front().expect("front");
            if m.ranged {
                let s = &mut b[r].sides_mut()[i];
                s.tx.joined_end = s.tx.joined_end.max(m.end);
            }
            let msg = {
                let recv = peer.map(|(p, (pr, pi))| (p, &b[pr].sides()[pi]));
                join_one(a, gi, &b[r].sides()[i], recv, &m)
            };
            sink.message(a, msg);
        }
        if let (Some((_, (pr, pi))), false) = (peer, last) {
            let s = &b[r].sides()[i];
            let low =
                s.tx.pending_ends()
                    .min()
                    .unwrap_or(s.tx.joined_end.saturating_add(1));
            b[pr].sides_mut()[pi].rx.prune_below(low);
        }
        // Receive-only messages: this side received from a peer that sent
        // nothing we recorded.
        let peer_sends = a.peer(gi).is_some_and(|p| a.sends(p));
        if !peer_sends {
            loop {
                let msg = {
                    let s = &b[r].sides()[i];
                    if !s.rx.is_settled() && !last {
                        break;
                    }
                    let Some(x) = s.rx.actions.front() else { break };
                    let t = (x.ts as i64).saturating_sub(a.offset(r).unwrap_or(0));
                    let ready = last
                        || s.rx.delivered_upto().is_some_and(|d| d >= x.a_abs)
                        || t.saturating_add(RX_ONLY_HORIZON_NS) < now;
                    if !ready {
                        break;
                    }
                    rx_only(a, gi, s, x)
                };
                let s = &mut b[r].sides_mut()[i];
                let x = s.rx.pop_action().expect("front");
                if let Some(m) = msg {
                    sink.message(a, m);
                }
                // Later actions end further on: what lies before this end is done.
                s.rx.prune_below(x.a_abs.saturating_add(1));
            }
        }
    }
}

fn conv(t: Option<u64>, off: Option<i64>) -> Option<i64> {
    Some((t? as i64).saturating_sub(off?))
}

fn fill_stages(m: &mut Message, same_clock: bool) {
    for (k, d) in STAGES.iter().enumerate() {
        if d.cross_host && !same_clock {
            continue;
        }
        if let (Some(f), Some(t)) = (m.points[d.from], m.points[d.to]) {
            m.stages[k] = Some(t.saturating_sub(f));
        }
    }
}

fn join_one(a: &Analysis, si: usize, s: &Side, peer: Option<(usize, &Side)>, t: &TxMsg) -> Message {
    let ci = a.side_conn[si];
    let off_s = a.offset(s.rec);
    // Points of the sending host: its own clock is enough for its own
    // durations, so keep them even when the offset is unknown (offset 0).
    let own = off_s.unwrap_or(0);
    let mut m = Message {
        conn: ci,
        dir: a.dir_of(si),
        kind: if !t.ranged && s.mode == Mode::Fallback {
            MsgKind::Fallback
        } else {
            MsgKind::Smc
        },
        sender: Some(si),
        receiver: peer.map(|p| p.0),
        start: t.start,
        end: t.end,
        len: if t.ranged {
            t.end - t.start
        } else {
            t.send_rc.max(0) as u64
        },
        pid: t.pid,
        points: [None; 11],
        stages: [None; 10],
        gaps: t.gaps,
        cdc_seqno: t.cdc_send.map(|_| t.cdc_seqno),
    };
    let copy_done = match (t.copy_ret, t.post_enter, t.copy_enter) {
        (Some(r), Some(p), Some(c)) if p >= c && p < r => Some(p),
        (r, _, _) => r,
    };
    let p = &mut m.points;
    p[pt::SEND_ENTER] = conv(t.send_enter, Some(own));
    p[pt::SEND_RETURN] = conv(t.send_ret, Some(own));
    p[pt::COPY_ENTER] = conv(t.copy_enter, Some(own));
    p[pt::COPY_DONE] = conv(copy_done, Some(own));
    p[pt::POST_ENTER] = conv(t.post_enter, Some(own));
    p[pt::POST_DONE] = conv(t.post_ret, Some(own));
    p[pt::CDC_SEND] = conv(t.cdc_send, Some(own));
    p[pt::CDC_TX_DONE] = conv(t.cdc_tx_done, Some(own));
    if m.kind == MsgKind::Fallback {
        fill_stages(&mut m, true);
        return m;
    }
    if t.send_enter.is_none() {
        m.gaps |= gap::NO_SENDMSG;
    }
    if !t.ranged {
        fill_stages(&mut m, true);
        return m;
    }
    // Without a trailer the kernel's drop count is unknown: as lossy.
    let lossy = a.recordings[s.rec].stats.lossy() || !a.recordings[s.rec].clean_close;
    if s.mode == Mode::SmcD && lossy {
        m.gaps |= gap::LOSSY_SMCD;
    }
    if t.post_ret.is_none() {
        m.gaps |= gap::NO_RDMA_WRITE;
    }
    if t.cdc_send.is_none() {
        m.gaps |= gap::NO_CDC_SEND;
    }
    if s.mode != Mode::SmcD && t.cdc_tx_done.is_none() {
        m.gaps |= gap::NO_CDC_TX_DONE;
    }
    let Some((_, r)) = peer else {
        m.gaps |= gap::NO_PEER;
        fill_stages(&mut m, false);
        return m;
    };
    let off_r = a.offset(r.rec);
    let same_clock = r.rec == s.rec || (off_s.is_some() && off_r.is_some());
    if !same_clock {
        m.gaps |= gap::CLOCK_UNKNOWN;
    }
    // The receiver's points in the reference clock (or in its own clock,
    // for receiver-local durations, when the offset is unknown).
    let roff = if r.rec == s.rec {
        Some(own)
    } else {
        off_r.or(Some(0))
    };
    let end = t.end;
    let k = r.rx.cdcs.partition_point(|c| c.prod_abs < end);
    match r.rx.cdcs.get(k) {
        // The arrival of the carrying CDC is missing: a later one was found.
        Some(c) if t.cdc_send.is_some() && c.prod_abs > t.cdc_prod => m.gaps |= gap::NO_CDC_RECV,
        Some(c)
            if t.cdc_send.is_some()
                && (c.prod_abs != t.cdc_prod
                    || (s.mode != Mode::SmcD && c.seqno != t.cdc_seqno)) =>
        {
            m.gaps |= gap::CDC_MISMATCH;
        }
        Some(c) => m.points[pt::CDC_RECV] = conv(Some(c.ts), roff),
        None => m.gaps |= gap::NO_CDC_RECV,
    }
    let k = r.rx.actions.partition_point(|x| x.a_abs < end);
    match r.rx.actions.get(k) {
        Some(x) if x.b_abs < end => m.points[pt::RX_DONE] = conv(Some(x.ts), roff),
        _ => m.gaps |= gap::NO_RX_ACTION,
    }
    let k = r.rx.recvs.partition_point(|x| x.a_abs < end);
    match r.rx.recvs.get(k) {
        Some(x) if x.b_abs < end && x.ret > 0 => m.points[pt::DELIVERED] = conv(Some(x.ts), roff),
        _ => m.gaps |= gap::NO_RECVMSG,
    }
    fill_stages(&mut m, same_clock);
    m
}

/// A message seen only by the receiver: the data one rx_action brought.
fn rx_only(a: &Analysis, si: usize, s: &Side, x: &RxAct) -> Option<Message> {
    if x.a_abs <= x.b_abs {
        return None; // a CDC without new data (consumer update, close)
    }
    let off = Some(a.offset(s.rec).unwrap_or(0));
    let fwd = a.dir_of(si) == Dir::Forward;
    let end = x.a_abs;
    let mut m = Message {
        conn: a.side_conn[si],
        // The data flows towards this side.
        dir: if fwd { Dir::Backward } else { Dir::Forward },
        kind: MsgKind::RxOnly,
        sender: None,
        receiver: Some(si),
        start: x.b_abs,
        end,
        len: end - x.b_abs,
        pid: s.pid,
        points: [None; 11],
        stages: [None; 10],
        gaps: gap::NO_PEER,
        cdc_seqno: Some(x.seqno),
    };
    let k = s.rx.cdcs.partition_point(|c| c.prod_abs < end);
    match s.rx.cdcs.get(k) {
        Some(c) if c.prod_abs == end && (s.mode == Mode::SmcD || c.seqno == x.seqno) => {
            m.points[pt::CDC_RECV] = conv(Some(c.ts), off)
        }
        _ => m.gaps |= gap::NO_CDC_RECV,
    }
    m.points[pt::RX_DONE] = conv(Some(x.ts), off);
    let k = s.rx.recvs.partition_point(|r| r.a_abs < end);
    match s.rx.recvs.get(k) {
        Some(r) if r.b_abs < end && r.ret > 0 => m.points[pt::DELIVERED] = conv(Some(r.ts), off),
        _ => m.gaps |= gap::NO_RECVMSG,
    }
    fill_stages(&mut m, false);
    Some(m)
}
/// Name sides without CONN_INFO from the start snapshot (matched by token).
fn apply_snapshots(recs: &[RecordingMeta], sides: &mut [Side]) {
    for s in sides.iter_mut() {
        if s.info.is_some() {
            continue;
        }
        let Some(tok) = s.local_token else { continue };
        let Some(snap) = recs[s.rec]
            .snapshot_sockets
            .iter()
            .find(|x| x.local_token == tok)
        else {
            continue;
        };
        if s.mode == Mode::Unknown {
            s.mode = snap.mode;
        }
        if s.tx.sndbuf_len == 0 {
            s.tx.sndbuf_len = snap.sndbuf_len;
        }
        if s.rx.rmb_len == 0 {
            s.rx.rmb_len = snap.rmb_len;
        }
        s.connect_dst.get_or_insert(snap.remote.clone());
        s.snapshot_local = Some(snap.local.clone());
    }
}

fn endpoints(s: &Side) -> Option<(&Addr, &Addr)> {
    if let Some(i) = &s.info {
        return Some((&i.local, &i.remote));
    }
    match (&s.snapshot_local, &s.connect_dst) {
        (Some(l), Some(r)) => Some((l, r)),
        _ => None,
    }
}

/// Pair sides into connections.
fn pair(sides: &[Side]) -> (Vec<Connection>, Vec<usize>) {
    let mut by_token: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut by_dmb: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut by_tuple: HashMap<(Addr, Addr), Vec<usize>> = HashMap::new();
    for (i, s) in sides.iter().enumerate() {
        if let Some(t) = s.local_token {
            by_token.entry(t).or_default().push(i);
        }
        if let Some(inf) = &s.info {
            if inf.local_dmb_token != 0 {
                by_dmb.entry(inf.local_dmb_token).or_default().push(i);
            }
        }
        if let Some((l, r)) = endpoints(s) {
            by_tuple.entry((l.clone(), r.clone())).or_default().push(i);
        }
    }
    let consistent = |x: &Side, y: &Side| -> bool {
        if let (Some(a), Some(b)) = (x.local_token, y.peer_token) {
            if a != b {
                return false;
            }
        }
        if let (Some((xl, xr)), Some((yl, yr))) = (endpoints(x), endpoints(y)) {
            if xl != yr || xr != yl {
                return false;
            }
        }
        if let (Some(a), Some(b)) = (&x.info, &y.info) {
            if a.qpn != 0 && b.peer_qpn != 0 && a.qpn != b.peer_qpn {
                return false;
            }
        }
        true
    };
    let mut peer: Vec<Option<usize>> = vec![None; sides.len()];
    for (i, x) in sides.iter().enumerate() {
        if peer[i].is_some() {
            continue;
        }
        let mut cands: Vec<usize> = Vec::new();
        if let Some(t) = x.peer_token {
            cands.extend(by_token.get(&t).into_iter().flatten());
        }
        if let Some(inf) = &x.info {
            if inf.peer_dmb_token != 0 {
                cands.extend(by_dmb.get(&inf.peer_dmb_token).into_iter().flatten());
            }
        }
        if let Some((l, r)) = endpoints(x) {
            cands.extend(by_tuple.get(&(r.clone(), l.clone())).into_iter().flatten());
        }
        // Same token, different lifetimes: prefer the candidate closest in time.
        let best = cands
            .into_iter()
            .filter(|&j| j != i && peer[j].is_none())
            .filter(|&j| !(sides[j].rec == x.rec && sides[j].sock == x.sock))
            .filter(|&j| consistent(x, &sides[j]) && consistent(&sides[j], x))
            .min_by_key(|&j| {
                sides[j].first_ts.abs_diff(x.first_ts) / 1_000_000
                    + if sides[j].rec == x.rec { 0 } else { 1 }
            });
        if let Some(j) = best {
            peer[i] = Some(j);
            peer[j] = Some(i);
        }
    }
    let mut conns: Vec<Connection> = Vec::new();
    let mut side_conn = vec![usize::MAX; sides.len()];
    let mut next_id = 1;
    for i in 0..sides.len() {
        if side_conn[i] != usize::MAX {
            continue;
        }
        let mut members = vec![i];
        if let Some(j) = peer[i] {
            members.push(j);
        }
        members.sort_by_key(|&k| {
            (
                sides[k].role != Role::Client,
                sides[k].role == Role::Unknown,
                sides[k].first_ts,
            )
        });
        for &k in &members {
            side_conn[k] = conns.len();
        }
        let idle = members.iter().all(|&k| sides[k].is_idle());
        let id = if idle { 0 } else { next_id };
        if !idle {
            next_id += 1;
        }
        conns.push(Connection {
            id,
            idle,
            sides: members,
        });
    }
    (conns, side_conn)
}

type CdcKey = (u16, u16, u32, u16, u32);

/// Minimum of (receive - send) over CDCs sent by `tx` and received by `rx`.
fn min_delay(tx: &Side, rx: &Side) -> (Option<i64>, u64) {
    let mut sent: HashMap<CdcKey, Vec<u64>> = HashMap::new();
    for c in &tx.tx.cdcs {
        sent.entry((
            c.seqno,
            c.prod.wrap,
            c.prod.count,
            c.cons.wrap,
            c.cons.count,
        ))
        .or_default()
        .push(c.ts);
    }
    let mut recv: Vec<_> = rx.rx.clock.clone();
    recv.sort_by_key(|c| c.ts);
    let mut seen: HashMap<CdcKey, usize> = HashMap::new();
    let mut best: Option<i64> = None;
    let mut n = 0;
    for c in recv {
        let k = (
            c.seqno,
            c.prod.wrap,
            c.prod.count,
            c.cons.wrap,
            c.cons.count,
        );
        let idx = seen.entry(k).or_insert(0);
        if let Some(t) = sent.get(&k).and_then(|v| v.get(*idx)) {
            let d = (c.ts as i64).saturating_sub(*t as i64);
            best = Some(best.map_or(d, |b| b.min(d)));
            n += 1;
        }
        *idx += 1;
    }
    (best, n)
}

fn estimate_clocks(
    recs: &[RecordingMeta],
    sides: &[Side],
    conns: &[Connection],
) -> Vec<ClockEstimate> {
    let mut out = Vec::new();
    for r in 0..recs.len() {
        let mut e = ClockEstimate {
            recording: r,
            method: "unknown",
            offset_ns: None,
            uncertainty_ns: None,
            pairs_to: 0,
            pairs_from: 0,
            min_delay_to_ns: None,
            min_delay_from_ns: None,
        };
        if r == 0 {
            e.method = "reference";
            e.offset_ns = Some(0);
            e.uncertainty_ns = Some(0);
            out.push(e);
            continue;
        }
        if !recs[r].boot_id.is_empty() && recs[r].boot_id == recs[0].boot_id {
            e.method = "same_host";
            e.offset_ns = Some(0);
            e.uncertainty_ns = Some(0);
            out.push(e);
            continue;
        }
        let (mut to, mut from): (Option<i64>, Option<i64>) = (None, None);
        for c in conns {
            for &x in &c.sides {
                for &y in &c.sides {
                    if sides[x].rec == 0 && sides[y].rec == r {
                        let (d, n) = min_delay(&sides[x], &sides[y]);
                        e.pairs_to += n;
                        if let Some(d) = d {
                            to = Some(to.map_or(d, |b: i64| b.min(d)));
                        }
                        let (d, n) = min_delay(&sides[y], &sides[x]);
                        e.pairs_from += n;
                        if let Some(d) = d {
                            from = Some(from.map_or(d, |b: i64| b.min(d)));
                        }
                    }
                }
            }
        }
        e.min_delay_to_ns = to;
        e.min_delay_from_ns = from;
        // to = offset + delay_to, from = -offset + delay_from, delays >= 0:
        // offset lies in [-from, to]; take the middle, half the width is the
        // uncertainty (half the smallest round trip).
        if let (Some(t), Some(f)) = (to, from) {
            e.method = "cdc_bracketing";
            e.offset_ns = Some(((t as i128 - f as i128) / 2) as i64);
            e.uncertainty_ns = Some(((t as i128 + f as i128).max(0) / 2) as u64);
        }
        out.push(e);
    }
    out
}
