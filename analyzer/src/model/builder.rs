//! The driver of one recording's model: [`RecordingBuilder`] takes events in
//! recording order, keeps the bounded reorder window, and dispatches each event
//! in time order to the side, send-path ([`super::tx`]) and receive-path
//! ([`super::rx`]) handlers; [`RecordingBuilder::finish`] yields a [`Recording`].

use super::*;

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
pub(super) const INSERT_REACH: usize = 32;

/// The reorder window's heap key: the sort time, the arrival number (which
/// breaks ties, so equal times keep recording order) and the event's slot in
/// [`RecordingBuilder::slab`]. The events themselves stay in the slab: the
/// heap moves only these 24 bytes on every sift instead of a whole
/// `EventRef` (the size of its largest variant, ~170 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Queued {
    pub(super) ts: u64,
    pub(super) seq: u64,
    pub(super) slot: usize,
}

/// Streams one recording's events into a [`Recording`].
pub struct RecordingBuilder {
    pub(super) rec: usize,
    pub(super) window: u64,
    /// Queued events in key order (keys non-decreasing from front to
    /// back): most of a recording. Appending and popping here is O(1);
    /// events that arrive a little out of order (span events, keyed by
    /// their start) are inserted at most [`INSERT_REACH`] entries from the
    /// end; only those further out of order pay for the heap and the slab. Run entries carry their
    /// event inline (read in order: cache friendly); their `slot` is unused.
    /// Pops take the smaller of the two heads by (key, arrival), the order a
    /// single heap would give.
    pub(super) run: VecDeque<(Queued, Ev)>,
    pub(super) heap: BinaryHeap<Reverse<Queued>>,
    /// The queued events, indexed by [`Queued::slot`]; freed slots are reused.
    pub(super) slab: Vec<Ev>,
    pub(super) free: Vec<usize>,
    pub(super) seq: u64,
    pub(super) max_ts: u64,
    pub(super) released_ts: u64,
    pub(super) sides: Vec<Side>,
    pub(super) by_sock: IdMap<u64, usize>,
    pub(super) by_token: IdMap<u32, usize>,
    pub(super) pending_rx: IdMap<u32, VecDeque<RxCdc>>,
    pub(super) stats: RecordingStats,
    pub(super) keep_data: bool,
    pub(super) clock_samples: usize,
    /// Reorder-only builders ([`RecordingBuilder::reorder_only`]) collect the
    /// events their window releases here instead of modelling them.
    pub(super) released: Option<Vec<(u64, Ev)>>,
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

    pub(super) fn release(&mut self, ts: u64, ev: Ev) {
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
    pub(super) fn peek_queued(&self) -> Option<Queued> {
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
    pub(super) fn pop_queued(&mut self) -> Option<(u64, Ev)> {
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

    pub(super) fn process(&mut self, ts: u64, ev: Ev) {
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

    pub(super) fn side(&mut self, sock: u64, ts: u64) -> usize {
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
    pub(super) fn fresh_side(&mut self, sock: u64, ts: u64) -> usize {
        let i = self.sides.len();
        let mut s = Side::new(self.rec, sock, ts);
        s.events = 1;
        self.sides.push(s);
        self.by_sock.insert(sock, i);
        i
    }

    pub(super) fn map_token(&mut self, token: u32, idx: usize) {
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

    pub(super) fn apply(&mut self, ev: &EventRef<'static>) {
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
                    clc_type: ClcType::from_u8(e.clc_type),
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
