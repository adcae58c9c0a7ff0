//! Flight-recorder mode (`--flight M`): the last M MiB of *compressed* event
//! chunks kept in memory, written out as a recording only when something
//! happened (SIGUSR1, a trigger, the end of the session). This module holds the
//! two pieces that do not touch files: the chunk ring with its byte budget and
//! its account of what it dropped, and the triggers the drain thread checks on
//! every record (`--trigger fallback|link-down|slow=DURATION`).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use smctrace_format::event::{self, EventKind, EventRef};
use smctrace_format::EncodedChunk;

/// Kernel-side lost counters (per possible CPU) minus a base, CPU by CPU.
pub fn lost_delta(now: &[u64], base: &[u64]) -> Vec<u64> {
    now.iter()
        .enumerate()
        .map(|(i, n)| n.saturating_sub(base.get(i).copied().unwrap_or(0)))
        .collect()
}

/// One compressed chunk with the kernel's lost counters read right after the
/// drain thread cut it (None if they could not be read).
pub struct HeldChunk {
    pub chunk: EncodedChunk,
    pub lost_after: Option<Vec<u64>>,
}

/// What the ring evicted since it was last emptied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub chunks: u64,
    pub events: u64,
    pub bytes: u64,
    /// Time range (CLOCK_MONOTONIC ns) of the evicted events; 0 if none.
    pub first_ts: u64,
    pub last_ts: u64,
    /// Events the kernel lost (ring buffer full) while the evicted chunks were drained.
    pub lost: u64,
}

/// The newest chunks within a byte budget (their stored, compressed size).
/// The newest chunk is always kept, even alone over the budget.
pub struct ChunkRing {
    budget: u64,
    bytes: u64,
    chunks: VecDeque<HeldChunk>,
    dropped: Dropped,
    /// Lost counters at the start of the oldest held chunk's span.
    lost_base: Vec<u64>,
}

impl ChunkRing {
    pub fn new(budget: u64) -> ChunkRing {
        ChunkRing {
            budget,
            bytes: 0,
            chunks: VecDeque::new(),
            dropped: Dropped::default(),
            lost_base: Vec::new(),
        }
    }

    pub fn push(&mut self, c: HeldChunk) {
        self.bytes += c.chunk.as_bytes().len() as u64;
        self.chunks.push_back(c);
        while self.bytes > self.budget && self.chunks.len() > 1 {
            let old = self.chunks.pop_front().expect("more than one chunk");
            let len = old.chunk.as_bytes().len() as u64;
            self.bytes -= len;
            let d = &mut self.dropped;
            if d.chunks == 0 {
                d.first_ts = old.chunk.first_ts();
            }
            d.chunks += 1;
            d.events += old.chunk.event_count() as u64;
            d.bytes += len;
            d.first_ts = d.first_ts.min(old.chunk.first_ts());
            d.last_ts = d.last_ts.max(old.chunk.last_ts());
            if let Some(l) = old.lost_after {
                d.lost += lost_delta(&l, &self.lost_base).iter().sum::<u64>();
                self.lost_base = l;
            }
        }
    }

    /// Compressed bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn chunks(&self) -> impl Iterator<Item = &HeldChunk> {
        self.chunks.iter()
    }

    pub fn dropped(&self) -> &Dropped {
        &self.dropped
    }

    /// Lost counters at the start of the held span (per CPU; empty = zeros).
    pub fn lost_base(&self) -> &[u64] {
        &self.lost_base
    }

    /// Lost counters of the newest held chunk that has them.
    pub fn newest_lost(&self) -> Option<&Vec<u64>> {
        self.chunks.iter().rev().find_map(|c| c.lost_after.as_ref())
    }

    /// Empty the ring after a dump: the next dump starts where this one ended,
    /// with `lost_base` as the counters at that point.
    pub fn clear(&mut self, lost_base: Vec<u64>) {
        self.chunks.clear();
        self.bytes = 0;
        self.dropped = Dropped::default();
        self.lost_base = lost_base;
    }
}

/// A condition that writes the flight ring out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A connection fell back to TCP (ST_EV_FALLBACK).
    Fallback,
    /// An SMC-R link went down (ST_EV_LINK_DOWN).
    LinkDown,
    /// One user sendmsg call (entry to return) or one CDC send (post to its
    /// completion, matched by socket and sequence number) took longer than this.
    Slow(Duration),
}

/// Parse `--trigger` values: `fallback`, `link-down`, `slow=DURATION`.
pub fn parse_trigger(s: &str) -> Result<Trigger, String> {
    match s {
        "fallback" => Ok(Trigger::Fallback),
        "link-down" => Ok(Trigger::LinkDown),
        _ => match s.strip_prefix("slow=") {
            Some(d) => parse_duration(d).map(Trigger::Slow),
            None => Err(format!(
                "`{s}` is not a trigger (fallback, link-down, slow=DURATION)"
            )),
        },
    }
}

/// `250ms`, `1.5s`, `800us`, `2000ns`: a number with a unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 250ms, 1.5s, 800us)"))?;
    let ns = match unit {
        "ns" => n,
        "us" => n * 1e3,
        "ms" => n * 1e6,
        "s" => n * 1e9,
        _ => return Err(format!("`{s}`: a duration needs a unit: ns, us, ms or s")),
    };
    if !(ns.is_finite() && (1.0..1e15).contains(&ns)) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_nanos(ns as u64))
}

/// Checks records against the triggers as the drain thread reads them.
pub struct TriggerCheck {
    fallback: bool,
    link_down: bool,
    slow_ns: Option<u64>,
    /// CDC sends waiting for their completion: (sock, seqno) -> post time.
    cdc_pending: HashMap<(u64, u16), u64>,
}

/// CDC sends remembered at most; beyond, the oldest half is forgotten (a
/// completion never seen, e.g. its probe missing, must not grow memory).
const CDC_PENDING_MAX: usize = 1 << 16;

impl TriggerCheck {
    pub fn new(triggers: &[Trigger]) -> TriggerCheck {
        let mut t = TriggerCheck {
            fallback: false,
            link_down: false,
            slow_ns: None,
            cdc_pending: HashMap::new(),
        };
        for tr in triggers {
            match tr {
                Trigger::Fallback => t.fallback = true,
                Trigger::LinkDown => t.link_down = true,
                Trigger::Slow(d) => {
                    let ns = d.as_nanos().min(u64::MAX as u128) as u64;
                    t.slow_ns = Some(t.slow_ns.map_or(ns, |o| o.min(ns)));
                }
            }
        }
        t
    }

    pub fn is_empty(&self) -> bool {
        !self.fallback && !self.link_down && self.slow_ns.is_none()
    }

    /// The reason this record fires a trigger, if it does.
    pub fn check(&mut self, rec: &[u8]) -> Option<String> {
        let interesting = match event::peek_kind(rec) {
            Some(EventKind::Fallback) => self.fallback,
            Some(EventKind::LinkDown) => self.link_down,
            Some(EventKind::SendMsg | EventKind::CdcSend | EventKind::CdcTxDone) => {
                self.slow_ns.is_some()
            }
            _ => false,
        };
        if !interesting {
            return None;
        }
        let Ok((ev, _)) = EventRef::parse(rec) else {
            return None;
        };
        match ev {
            EventRef::Fallback(f) => Some(format!(
                "fallback (reason 0x{:08x}, sock {:016x})",
                f.reason, f.sock
            )),
            EventRef::LinkDown(l) => Some(format!(
                "link-down ({} link {})",
                event::c_str(&l.ibname),
                l.link_id
            )),
            EventRef::SendMsg(s) => {
                let took = s.hdr.ts_ns.saturating_sub(s.enter_ns);
                (took > self.slow_ns?)
                    .then(|| format!("slow sendmsg ({} us, sock {:016x})", took / 1000, s.sock))
            }
            EventRef::CdcSend(c) => {
                if c.sock != 0 && c.rc == 0 {
                    if self.cdc_pending.len() >= CDC_PENDING_MAX {
                        let mut ts: Vec<u64> = self.cdc_pending.values().copied().collect();
                        let mid = ts.len() / 2;
                        let cut = *ts.select_nth_unstable(mid).1;
                        self.cdc_pending.retain(|_, t| *t > cut);
                    }
                    self.cdc_pending.insert((c.sock, c.seqno), c.hdr.ts_ns);
                }
                None
            }
            EventRef::CdcTxDone(d) => {
                let posted = self.cdc_pending.remove(&(d.sock, d.seqno))?;
                let took = d.hdr.ts_ns.saturating_sub(posted);
                (took > self.slow_ns?).then(|| {
                    format!(
                        "slow CDC send (post to completion {} us, sock {:016x} seqno {})",
                        took / 1000,
                        d.sock,
                        d.seqno
                    )
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smctrace_format::encode_chunk;
    use smctrace_format::event::{as_bytes, CdcTxDone, Hdr, SendMsg};

    fn chunk(seq: u64, events: u32, fill: u8, ts: u64) -> EncodedChunk {
        // Incompressible bytes so the stored size is predictable (~ raw size).
        let mut raw = Vec::new();
        let mut x = seq as u32 * 7919 + fill as u32;
        for _ in 0..events * 24 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            raw.push((x >> 16) as u8);
        }
        encode_chunk(seq, &raw, events, ts, ts + 10, 1).unwrap()
    }

    #[test]
    fn ring_keeps_the_newest_within_budget_in_order() {
        let one = chunk(0, 40, 1, 0).as_bytes().len() as u64;
        let mut r = ChunkRing::new(one * 3 + one / 2);
        for seq in 0..10u64 {
            r.push(HeldChunk {
                chunk: chunk(seq, 40, 1, seq * 100),
                lost_after: Some(vec![seq, 0]),
            });
            assert!(
                r.bytes() <= one * 3 + one / 2 + 64,
                "over budget after {seq}"
            );
        }
        let seqs: Vec<u64> = r.chunks().map(|c| c.chunk.seq()).collect();
        assert_eq!(seqs, vec![7, 8, 9]);
        let d = r.dropped();
        assert_eq!((d.chunks, d.events), (7, 7 * 40));
        assert_eq!((d.first_ts, d.last_ts), (0, 610));
        // lost counters 0..6 on CPU 0 were in the evicted span
        assert_eq!(d.lost, 6);
        assert_eq!(r.lost_base(), &[6, 0]);
        assert_eq!(r.newest_lost(), Some(&vec![9, 0]));
        assert_eq!(
            lost_delta(r.newest_lost().unwrap(), r.lost_base()),
            vec![3, 0]
        );
    }

    #[test]
    fn ring_keeps_one_chunk_over_budget_and_clears() {
        let mut r = ChunkRing::new(10);
        r.push(HeldChunk {
            chunk: chunk(0, 40, 2, 5),
            lost_after: None,
        });
        r.push(HeldChunk {
            chunk: chunk(1, 40, 2, 6),
            lost_after: None,
        });
        assert_eq!(r.len(), 1);
        assert_eq!(r.chunks().next().unwrap().chunk.seq(), 1);
        assert_eq!(r.dropped().chunks, 1);
        r.clear(vec![4, 4]);
        assert_eq!((r.len(), r.bytes(), r.dropped().chunks), (0, 0, 0));
        assert_eq!(r.lost_base(), &[4, 4]);
    }

    #[test]
    fn triggers_parse() {
        assert_eq!(parse_trigger("fallback"), Ok(Trigger::Fallback));
        assert_eq!(parse_trigger("link-down"), Ok(Trigger::LinkDown));
        assert_eq!(
            parse_trigger("slow=250ms"),
            Ok(Trigger::Slow(Duration::from_millis(250)))
        );
        assert_eq!(
            parse_trigger("slow=1.5s"),
            Ok(Trigger::Slow(Duration::from_millis(1500)))
        );
        assert_eq!(
            parse_trigger("slow=800us"),
            Ok(Trigger::Slow(Duration::from_micros(800)))
        );
        assert!(parse_trigger("slow=5").is_err());
        assert!(parse_trigger("slow=xs").is_err());
        assert!(parse_trigger("fast").is_err());
    }

    fn hdr(kind: u16, len: usize, ts: u64) -> Hdr {
        Hdr {
            kind,
            len: len as u16,
            ts_ns: ts,
            ..Default::default()
        }
    }

    #[test]
    fn slow_sendmsg_and_cdc_completion_fire() {
        let mut t = TriggerCheck::new(&[Trigger::Slow(Duration::from_millis(10))]);
        let n = std::mem::size_of::<SendMsg>();
        let fast = SendMsg {
            hdr: hdr(16, n, 5_000_000),
            sock: 1,
            enter_ns: 0,
            len: 1,
            ret: 1,
        };
        assert_eq!(t.check(as_bytes(&fast)), None);
        let slow = SendMsg {
            hdr: hdr(16, n, 20_000_000),
            sock: 1,
            enter_ns: 0,
            len: 1,
            ret: 1,
        };
        assert!(t
            .check(as_bytes(&slow))
            .unwrap()
            .starts_with("slow sendmsg (20000 us"));

        let nc = std::mem::size_of::<event::Cdc>();
        let post = event::Cdc {
            hdr: hdr(20, nc, 100),
            sock: 9,
            seqno: 3,
            ..Default::default()
        };
        assert_eq!(t.check(as_bytes(&post)), None);
        let nd = std::mem::size_of::<CdcTxDone>();
        let other = CdcTxDone {
            hdr: hdr(21, nd, 50_000_000),
            sock: 9,
            seqno: 4,
            ..Default::default()
        };
        assert_eq!(t.check(as_bytes(&other)), None, "no matching post");
        let done = CdcTxDone {
            hdr: hdr(21, nd, 30_000_100),
            sock: 9,
            seqno: 3,
            ..Default::default()
        };
        assert!(t
            .check(as_bytes(&done))
            .unwrap()
            .starts_with("slow CDC send (post to completion 30000 us"));
        // a fallback is not a trigger here
        let nf = std::mem::size_of::<event::Fallback>();
        let fb = event::Fallback {
            hdr: hdr(4, nf, 1),
            sock: 1,
            reason: 0x03030000,
            peer_diagnosis: 0,
        };
        assert_eq!(t.check(as_bytes(&fb)), None);
        let mut t2 = TriggerCheck::new(&[Trigger::Fallback]);
        assert_eq!(
            t2.check(as_bytes(&fb)).as_deref(),
            Some("fallback (reason 0x03030000, sock 0000000000000001)")
        );
        assert!(TriggerCheck::new(&[]).is_empty());
    }
}
