//! Pairing: which sockets of the recordings are the two sides of one SMC
//! connection (tokens, QP numbers, mirrored 4-tuples; never sock ids across
//! recordings), after filling identities from the recordings' socket snapshots.

use super::*;

/// Name sides without CONN_INFO from the start snapshot (matched by token).
pub(super) fn apply_snapshots(recs: &[RecordingMeta], sides: &mut [Side]) {
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

pub(super) fn endpoints(s: &Side) -> Option<(&Addr, &Addr)> {
    if let Some(i) = &s.info {
        return Some((&i.local, &i.remote));
    }
    match (&s.snapshot_local, &s.connect_dst) {
        (Some(l), Some(r)) => Some((l, r)),
        _ => None,
    }
}

/// Pair sides into connections.
pub(super) fn pair(sides: &[Side]) -> (Vec<Connection>, Vec<usize>) {
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
