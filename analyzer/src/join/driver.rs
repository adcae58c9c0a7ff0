//! The driver of the analysis: the two streaming passes (identities and clock
//! samples, then messages) over every recording, each a three-thread pipeline
//! (chunk decoding | merge + reorder windows | model, joins, outputs) whose
//! steps reach the last thread in the order one thread would run them.

use super::*;

/// Trace time a message may wait for its receiver events before it is joined
/// with what is there (then it is incomplete). Delivered messages are joined
/// at once; this only bounds memory when receiver events are missing.
pub const JOIN_HORIZON_NS: i64 = 60_000_000_000;
/// Receive-only messages (peer not recorded) wait this long for their read.
pub const RX_ONLY_HORIZON_NS: i64 = 60_000_000_000;
/// Join every this many events of the merged stream.
pub(super) const FLUSH_EVERY: u64 = 8192;

pub(super) fn feed(b: &mut RecordingBuilder, it: Item) {
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

pub(super) fn run_inner(
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
pub(super) enum Step {
    /// Recording, and (sort key, event) as its reorder window released them.
    Events(u32, Vec<(u64, crate::model::Ev)>),
    /// Join what can be joined up to this reference time.
    Flush(i64),
}

/// Events per [`Step::Events`] (moved between the threads as one vector,
/// not event by event), and steps in flight between the two threads.
pub(super) const STEP_EVENTS: usize = 1024;
pub(super) const STEPS_IN_FLIGHT: usize = 16;

/// The second pass's reading half: merge the recordings in reference-clock
/// order, run each through its reorder window and send what the windows
/// release (and a flush every [`FLUSH_EVERY`] input events) in batches.
pub(super) fn merge_streams(
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
pub(super) type InputStats = (u64, Option<u64>, Option<u64>, u64, u64);

/// Message halves and receive points currently held by the builders.
pub(super) fn retained(b: &[RecordingBuilder]) -> u64 {
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
