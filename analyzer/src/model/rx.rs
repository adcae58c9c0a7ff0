//! The receive path of a socket: CDC arrivals, rx processing and user
//! receives, unwrapped to absolute stream offsets and kept sorted
//! ([`RxState::settle`]) so that `join` can find the point that delivered a
//! message's last byte. Receive-side points are pruned once joined.

use super::*;

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

pub(super) fn settle_list<T>(
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

/// Receiver state of one socket: the receive-side points not yet needed by
/// any message are pruned as messages are joined (see `join`).
#[derive(Debug, Default)]
pub struct RxState {
    pub rmb_len: u32,
    /// Sorted by absolute offset once settled (see [`RxState::settle`]).
    pub cdcs: VecDeque<RxCdc>,
    pub actions: VecDeque<RxAct>,
    pub recvs: VecDeque<Recv>,
    pub(super) settled: [usize; 3],
    pub(super) unwrap: [Unwrapper; 4],
    /// CDC arrivals kept (up to the clock sample limit) for clock estimation.
    pub clock: Vec<RxCdc>,
    /// CDC arrivals seen (also when none are kept as clock samples).
    pub cdc_count: u64,
    pub bytes: u64,
    pub recv_calls: u64,
    pub wakeups: u64,
}

impl RecordingBuilder {
    pub(super) fn keep_rx_cdc(&mut self, i: usize, c: RxCdc) {
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

    pub(super) fn on_cdc_recv(&mut self, h: event::Hdr, e: event::Cdc) {
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

    pub(super) fn on_rx_action(&mut self, h: event::Hdr, e: event::RxAction) {
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
}
