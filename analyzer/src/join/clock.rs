//! Clock offsets: each recording's offset to the reference clock, estimated
//! from paired CDCs by the minimum one-way delay in both directions (two-way
//! bracketing as in NTP).

use super::*;

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

pub(super) type CdcKey = (u16, u16, u32, u16, u32);

/// Minimum of (receive - send) over CDCs sent by `tx` and received by `rx`.
pub(super) fn min_delay(tx: &Side, rx: &Side) -> (Option<i64>, u64) {
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

pub(super) fn estimate_clocks(
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
