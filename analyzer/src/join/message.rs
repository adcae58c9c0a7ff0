//! Message joining: each finished sender half is matched with the receiver
//! points that carried its last byte (on the reference clock), giving a
//! [`Message`] with its full timeline, and is handed to the sink as soon as it
//! is complete; receive-only points become receiver-side messages.

use super::*;

pub(super) fn locate(a: &Analysis, gi: usize) -> (usize, usize) {
    let rec = a.sides[gi].rec;
    (rec, gi - a.side_base[rec])
}

/// Join what is ready: messages whose last byte was delivered (or that waited
/// past the horizon, or everything when `last`), then prune receive points
/// no later message can need.
pub(super) fn flush(
    a: &Analysis,
    b: &mut [RecordingBuilder],
    now: i64,
    last: bool,
    sink: &mut dyn Sink,
) {
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

pub(super) fn conv(t: Option<u64>, off: Option<i64>) -> Option<i64> {
    Some((t? as i64).saturating_sub(off?))
}

pub(super) fn fill_stages(m: &mut Message, same_clock: bool) {
    for (k, d) in STAGES.iter().enumerate() {
        if d.cross_host && !same_clock {
            continue;
        }
        if let (Some(f), Some(t)) = (m.points[d.from], m.points[d.to]) {
            m.stages[k] = Some(t.saturating_sub(f));
        }
    }
}

pub(super) fn join_one(
    a: &Analysis,
    si: usize,
    s: &Side,
    peer: Option<(usize, &Side)>,
    t: &TxMsg,
) -> Message {
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
pub(super) fn rx_only(a: &Analysis, si: usize, s: &Side, x: &RxAct) -> Option<Message> {
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
