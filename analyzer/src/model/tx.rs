//! The send path of a socket: a user `sendmsg` followed by stream offset
//! through copy into the send buffer, RDMA write / ISM move, CDC send and CDC
//! completion, until it is a finished sender half ([`TxMsg`]) waiting in
//! [`TxState::done`] for `join` to match it with the peer's receive side.

use super::*;

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
    pub(super) fn apply_write(&mut self, w: &Write) {
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
    pub(super) fn apply_cdc(&mut self, c: &SentCdc) {
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
    pub(super) fn finished(&self, smcd: bool) -> bool {
        if smcd {
            self.cdc_send.is_some()
        } else {
            self.cdc_tx_done.is_some() || self.gaps & gap::NO_CDC_TX_DONE != 0
        }
    }
}

/// A user send not yet matched with its copy.
#[derive(Clone, Copy, Debug)]
pub(super) struct OpenSend {
    pub(super) tid: u32,
    pub(super) pid: u32,
    pub(super) enter: u64,
    pub(super) ret: u64,
    pub(super) rc: i64,
}

impl OpenSend {
    /// A message with only its send call: a fallback send (the bytes went
    /// to TCP) or an SMC send whose copy event is missing.
    pub(super) fn into_msg(self, mode: Mode) -> TxMsg {
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
pub(super) struct Write {
    pub(super) before: u64,
    pub(super) after: u64,
    pub(super) enter: u64,
    pub(super) ret: u64,
    pub(super) rc: i32,
}

/// A CDC sent, in absolute stream offsets.
#[derive(Clone, Copy, Debug)]
pub(super) struct SentCdc {
    pub(super) ts: u64,
    pub(super) seqno: u16,
    pub(super) prod: u64,
    /// prod of the previous CDC seen.
    pub(super) low: u64,
    /// CDCs between the previous one seen and this one are missing.
    pub(super) seq_gap: bool,
    /// A missing CDC's prod is unknown (its completion was not seen either).
    pub(super) lost_unknown: bool,
    /// Largest prod of the missing CDCs known from their completions.
    pub(super) lost_max: u64,
    pub(super) rc: i32,
}

/// A CDC send completion.
#[derive(Clone, Copy, Debug)]
pub(super) struct Done {
    pub(super) seqno: u16,
    pub(super) ts: u64,
    pub(super) status: u32,
    pub(super) cdc_ts: u64,
    /// The CDC's prod cursor (p_cursor), absolute.
    pub(super) prod: Option<u64>,
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

/// A CDC as handed to the device (sender side), kept for clock estimation.
#[derive(Clone, Copy, Debug)]
pub struct CdcPoint {
    pub ts: u64,
    pub seqno: u16,
    pub prod: Curs,
    pub cons: Curs,
}

/// Sender state of one socket.
#[derive(Debug, Default)]
pub struct TxState {
    pub(super) prep: Unwrapper,
    pub(super) prod: Unwrapper,
    pub sndbuf_len: u32,
    pub peer_rmbe_size: u32,
    pub(super) inflight: VecDeque<TxMsg>,
    /// Finished sender halves waiting to be joined with the receiver.
    pub done: VecDeque<TxMsg>,
    /// CDCs sent, kept (up to the clock sample limit) for clock estimation.
    pub cdcs: Vec<CdcPoint>,
    /// Messages with a stream range seen, and CDCs sent (counted even when not kept).
    pub msgs: u64,
    pub cdc_count: u64,
    /// Largest stream end of the messages already joined.
    pub joined_end: u64,
    pub(super) open_sends: VecDeque<OpenSend>,
    pub(super) writes: History<Write>,
    pub(super) cdc_hist: History<SentCdc>,
    pub(super) done_hist: History<Done>,
    pub(super) orphan_done: VecDeque<Done>,
    pub(super) last_cdc: Option<(u16, u64)>,
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

impl RecordingBuilder {
    pub(super) fn on_tx_copy(&mut self, h: event::Hdr, e: event::TxCopy) {
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

    pub(super) fn on_sendmsg(&mut self, h: event::Hdr, e: event::SendMsg) {
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

    pub(super) fn on_rdma_write(&mut self, h: event::Hdr, e: event::RdmaWrite) {
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

    pub(super) fn on_cdc_send(&mut self, h: event::Hdr, e: event::Cdc) {
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

    pub(super) fn on_tx_done(&mut self, h: event::Hdr, e: event::CdcTxDone) {
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

    pub(super) fn apply_done(tx: &mut TxState, d: Done) {
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
    pub(super) fn retire(tx: &mut TxState, done: impl Fn(&TxMsg) -> bool) {
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
}
