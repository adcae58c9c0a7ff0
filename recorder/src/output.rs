//! Where the compressed chunks go: one file (the default), a series of files
//! of bounded size of which the newest N are kept (`--max-size S --rotate N`),
//! or the flight-recorder ring that is written out as a recording on demand
//! (`--flight M`). The writer thread drives an [`Output`]; every file it closes
//! is a complete recording on its own: metadata with a start snapshot taken
//! when the file was opened, a trailer with the losses of its own span and an
//! end snapshot.
//!
//! Connections that predate a file: its start snapshot names the sockets open
//! when the file was opened, but the writer thread can run behind the kernel
//! (compression), so a connection may already be gone when the snapshot is
//! taken. So the output also keeps the CONNECT and CONN_INFO records of every
//! connection not yet closed ([`Identities`]) and starts each rotated file and
//! each flight dump with a copy of those that happened before its first chunk:
//! the analyzer then names every connection from its own records.
//!
//! File names: with `--rotate` or `--flight`, `-o rec.smctrace` names the
//! series `rec.000001.smctrace`, `rec.000002.smctrace`, ... (six digits, so
//! `ls` order is time order); `-o rec` gives `rec.000001`, ...

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use smctrace_format::meta::{Metadata, Snapshot};
use smctrace_format::{EncodedChunk, TrailerInput, WriteSummary, Writer, WriterOptions};

use crate::flight::{lost_delta, ChunkRing, HeldChunk};
use smctrace_format::encode_chunk;
use smctrace_format::event::{self, EventKind, HDR_LEN};

/// The CONNECT and CONN_INFO records of connections that were open at some
/// time a file may still start at. A CLOSE does not forget a connection at
/// once: the writer sees chunks before it decides to rotate, and a flight dump
/// starts at the ring's oldest chunk, so a connection closed *after* the new
/// file's start must still be carried into it. [`Identities::prune`] forgets
/// the ones closed before the earliest start still possible.
#[derive(Default)]
pub struct Identities {
    open: std::collections::HashMap<u64, Tracked>,
}

/// One connection's identity records (time stamp, raw record) and its close time.
#[derive(Default)]
struct Tracked {
    recs: Vec<(u64, Vec<u8>)>,
    closed_at: Option<u64>,
}

/// Connections tracked at most (a close never seen must not grow memory).
const IDENTITIES_MAX: usize = 1 << 16;

/// Chunks' time ranges overlap a little (per-CPU buffers are cut at slightly
/// different times): closed connections are kept this much longer than the
/// earliest start a file can still have.
const PRUNE_MARGIN_NS: u64 = 1_000_000_000;

impl Identities {
    /// Scan the raw records of one chunk.
    pub fn scan(&mut self, raw: &[u8]) {
        let mut off = 0;
        while let Some(hdr) = event::peek(&raw[off..]) {
            let len = hdr.len as usize;
            if len < HDR_LEN || off + len > raw.len() {
                return;
            }
            let rec = &raw[off..off + len];
            off += len;
            let kind = EventKind::from_u16(hdr.kind);
            if !matches!(
                kind,
                Some(EventKind::Connect | EventKind::ConnInfo | EventKind::Close)
            ) {
                continue;
            }
            let Some(sock) = event::peek_sock(rec) else {
                continue;
            };
            let ts = hdr.ts_ns;
            if kind == Some(EventKind::Close) {
                if let Some(t) = self.open.get_mut(&sock) {
                    t.closed_at = Some(ts);
                }
            } else if self.open.len() < IDENTITIES_MAX || self.open.contains_key(&sock) {
                let t = self.open.entry(sock).or_default();
                if kind == Some(EventKind::Connect) || t.closed_at.is_some() {
                    // A new connect on a reused socket address starts over.
                    t.recs.clear();
                    t.closed_at = None;
                }
                t.recs.push((ts, rec.to_vec()));
            }
        }
    }

    /// Forget the connections closed before `ts` (no file can start before it any more).
    pub fn prune(&mut self, ts: u64) {
        self.open.retain(|_, t| t.closed_at.is_none_or(|c| c >= ts));
    }

    /// The identity records older than `before_ts` of the connections still
    /// open at `before_ts`, in time order, as one chunk (None if none).
    pub fn chunk(&self, seq: u64, before_ts: u64) -> Result<Option<EncodedChunk>> {
        let mut recs: Vec<&(u64, Vec<u8>)> = self
            .open
            .values()
            .filter(|t| t.closed_at.is_none_or(|c| c >= before_ts))
            .flat_map(|t| t.recs.iter())
            .filter(|(ts, _)| *ts < before_ts)
            .collect();
        if recs.is_empty() {
            return Ok(None);
        }
        recs.sort_by_key(|(ts, _)| *ts);
        let raw: Vec<u8> = recs.iter().flat_map(|(_, r)| r.iter().copied()).collect();
        let (first, last) = (recs[0].0, recs[recs.len() - 1].0);
        Ok(Some(
            encode_chunk(seq, &raw, recs.len() as u32, first, last, 1)
                .context("encoding the carried identities")?,
        ))
    }
}

/// What the writer thread asks the session for when it opens or closes a file.
/// Each call makes the needed capabilities effective on the calling thread
/// for its duration only (see privs.rs).
pub trait Boundary: Send + Sync {
    /// Kernel-side lost counters per possible CPU since the probes were loaded.
    fn lost_per_cpu(&self) -> Option<Vec<u64>>;
    /// Cumulative probe hits (and `<probe>.missed` recursion skips).
    fn probe_hits(&self) -> Vec<(String, u64)>;
    /// An SMC snapshot now (None when snapshots are off).
    fn snapshot(&self) -> Option<Snapshot>;
}

/// How chunks are stored.
#[derive(Clone, Debug)]
pub enum Mode {
    Single,
    Rotate { max_size: u64, keep: usize },
    Flight { budget: u64, post: Duration },
}

/// `base` with a six-digit sequence number before its `.smctrace` extension.
pub fn numbered(base: &Path, n: u64) -> PathBuf {
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let numbered = match name.strip_suffix(".smctrace") {
        Some(stem) => format!("{stem}.{n:06}.smctrace"),
        None => format!("{name}.{n:06}"),
    };
    base.with_file_name(numbered)
}

/// Files of the series of `base` that exist already (any sequence number).
pub fn existing_series(base: &Path) -> Vec<PathBuf> {
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let probe = numbered(base, 0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // "rec.000000.smctrace" -> prefix "rec.", suffix ".smctrace"
    let Some(pos) = probe.find("000000") else {
        return Vec::new();
    };
    let (prefix, suffix) = (&probe[..pos], &probe[pos + 6..]);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.len() == prefix.len() + 6 + suffix.len()
                && n.starts_with(prefix)
                && n.ends_with(suffix)
                && n[prefix.len()..prefix.len() + 6]
                    .bytes()
                    .all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The kernel's counters read right after the drain thread cut a chunk.
#[derive(Default)]
pub struct Cut {
    pub lost: Option<Vec<u64>>,
    pub hits: Option<Vec<(String, u64)>>,
}

/// One closed file, for the final report.
pub struct Closed {
    pub summary: WriteSummary,
}

pub struct Output {
    mode: Mode,
    base: PathBuf,
    force: bool,
    meta: Metadata,
    live: Arc<dyn Boundary>,
    quiet: bool,
    /// The open file (single and rotate modes; a flight dump while written) and its path.
    writer: Option<Writer>,
    open_path: PathBuf,
    /// Sequence number of the last numbered file created.
    index: u64,
    /// Numbered files of this session still on disk, oldest first.
    kept: VecDeque<PathBuf>,
    /// Lost counters at the start of the open file's span (rotate mode).
    lost_base: Vec<u64>,
    /// Newest lost counters attached to a chunk in the open file.
    lost_last: Option<Vec<u64>>,
    /// Probe hits when the open file (or flight span) started.
    hits_base: Vec<(String, u64)>,
    /// Newest probe hits attached to a chunk taken.
    hits_last: Option<Vec<(String, u64)>>,
    ring: ChunkRing,
    /// A dump due at this time, and why.
    pending: Option<(Instant, String)>,
    ids: Identities,
    /// Sequence number of the last chunk taken.
    last_seq: u64,
    pub closed: Vec<Closed>,
    /// Bytes in all files written so far (closed ones + the open one).
    bytes_closed: u64,
}

impl Output {
    /// Open the first file (single, rotate) or just the ring (flight).
    pub fn new(
        mode: Mode,
        base: &Path,
        force: bool,
        meta: Metadata,
        live: Arc<dyn Boundary>,
        quiet: bool,
    ) -> Result<Output> {
        let budget = match &mode {
            Mode::Flight { budget, .. } => *budget,
            _ => 0,
        };
        let mut o = Output {
            mode,
            base: base.to_path_buf(),
            force,
            meta,
            live,
            quiet,
            writer: None,
            open_path: base.to_path_buf(),
            index: 0,
            kept: VecDeque::new(),
            lost_base: Vec::new(),
            lost_last: None,
            hits_base: Vec::new(),
            hits_last: None,
            ring: ChunkRing::new(budget),
            pending: None,
            ids: Identities::default(),
            last_seq: 0,
            closed: Vec::new(),
            bytes_closed: 0,
        };
        match o.mode {
            Mode::Single => {
                let w = Writer::create(
                    base,
                    &o.meta,
                    WriterOptions {
                        overwrite: force,
                        ..Default::default()
                    },
                )?;
                o.writer = Some(w);
            }
            Mode::Rotate { .. } => {
                // The first file's start snapshot is the one the metadata already holds.
                let meta = o.file_meta(vec![("rotate.index".into(), "1".into())], None);
                o.open_next(meta)?;
            }
            Mode::Flight { .. } => {}
        }
        Ok(o)
    }

    fn file_meta(&self, extra: Vec<(String, String)>, snap: Option<Option<Snapshot>>) -> Metadata {
        let mut m = self.meta.clone();
        if let Some(s) = snap {
            m.start_snapshot = s;
        }
        m.extra.extend(extra);
        m
    }

    /// Create the next numbered file; delete the oldest beyond `--rotate N`.
    fn open_next(&mut self, meta: Metadata) -> Result<PathBuf> {
        self.index += 1;
        let path = numbered(&self.base, self.index);
        let w = Writer::create(
            &path,
            &meta,
            WriterOptions {
                overwrite: self.force,
                ..Default::default()
            },
        )?;
        self.writer = Some(w);
        self.open_path = path.clone();
        self.kept.push_back(path.clone());
        if let Mode::Rotate { keep, .. } = self.mode {
            while self.kept.len() > keep {
                let old = self.kept.pop_front().expect("non-empty");
                if let Err(e) = std::fs::remove_file(&old) {
                    eprintln!(
                        "smc-record: warning: could not remove {} (rotation): {e}",
                        old.display()
                    );
                }
            }
        }
        Ok(path)
    }

    /// Bytes written to files so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_closed + self.writer.as_ref().map_or(0, |w| w.bytes_written())
    }

    /// Take one compressed chunk, its raw records and the counters read at its
    /// cut (rotate and flight modes). `trigger` says a record in it fired a trigger.
    pub fn push(
        &mut self,
        chunk: EncodedChunk,
        raw: &[u8],
        cut: Cut,
        trigger: Option<String>,
    ) -> Result<()> {
        let Cut {
            lost: lost_after,
            hits: hits_after,
        } = cut;
        let mode = self.mode.clone();
        if !matches!(mode, Mode::Single) {
            self.ids.scan(raw);
        }
        match mode {
            Mode::Single => self.append(&chunk),
            Mode::Rotate { max_size, .. } => {
                let w = self.writer.as_ref().expect("rotate mode has an open file");
                if w.chunks_written() > 0
                    && w.bytes_written() + chunk.as_bytes().len() as u64 > max_size
                {
                    self.rotate(chunk.first_ts())?;
                }
                self.last_seq = chunk.seq();
                self.append(&chunk)?;
                // The next file starts after this chunk: older closes are no longer needed.
                self.ids
                    .prune(chunk.first_ts().saturating_sub(PRUNE_MARGIN_NS));
                if lost_after.is_some() {
                    self.lost_last = lost_after;
                }
                if hits_after.is_some() {
                    self.hits_last = hits_after;
                }
                Ok(())
            }
            Mode::Flight { post, .. } => {
                if hits_after.is_some() {
                    self.hits_last = hits_after;
                }
                self.ring.push(HeldChunk { chunk, lost_after });
                // A dump starts at the ring's oldest chunk: older closes are no longer needed.
                if let Some(oldest) = self.ring.chunks().next() {
                    self.ids
                        .prune(oldest.chunk.first_ts().saturating_sub(PRUNE_MARGIN_NS));
                }
                if let Some(why) = trigger {
                    if self.pending.is_none() {
                        if !self.quiet {
                            eprintln!("smc-record: trigger: {why}; writing the flight ring out in {:.1} s", post.as_secs_f64());
                        }
                        self.pending = Some((Instant::now() + post, format!("trigger: {why}")));
                    }
                }
                self.tick()
            }
        }
    }

    /// Ask for a dump now (SIGUSR1); coalesced with one already pending.
    pub fn request_dump(&mut self, why: &str) {
        if matches!(self.mode, Mode::Flight { .. }) && self.pending.is_none() {
            self.pending = Some((Instant::now(), why.to_string()));
        }
    }

    /// Write a pending dump out once it is due.
    pub fn tick(&mut self) -> Result<()> {
        if let Some((due, _)) = &self.pending {
            if Instant::now() >= *due {
                let (_, why) = self.pending.take().expect("pending");
                self.dump(&why, None)?;
            }
        }
        Ok(())
    }

    fn append(&mut self, chunk: &EncodedChunk) -> Result<()> {
        let w = self.writer.as_mut().expect("an open file");
        if let Err(e) = w.append(chunk) {
            let kept = format!(
                "writing chunk {} failed; {} keeps the {} chunks and {} events before it ({} bytes, not closed cleanly)",
                chunk.seq(),
                self.open_path.display(),
                w.chunks_written(),
                w.events_written(),
                w.bytes_written()
            );
            return Err(anyhow::Error::new(e).context(kept));
        }
        Ok(())
    }

    /// Close the open file and start the next one, one snapshot serving as the
    /// end of the old file and the start of the new one.
    fn rotate(&mut self, next_ts: u64) -> Result<()> {
        let snap = self.live.snapshot();
        let lost_now = self
            .lost_last
            .clone()
            .or_else(|| self.live.lost_per_cpu())
            .unwrap_or_default();
        let hits = self
            .hits_last
            .clone()
            .unwrap_or_else(|| self.live.probe_hits());
        self.close_open(lost_now.clone(), hits.clone(), snap.clone())?;
        self.lost_base = lost_now;
        self.hits_base = hits;
        let prev = self
            .closed
            .last()
            .map(|c| file_name(&c.summary.path))
            .unwrap_or_default();
        // Connections still open: their identity records first (seq: the last chunk
        // of the previous file, whose state they carry).
        let carry = self.ids.chunk(self.last_seq, next_ts)?;
        self.ids.prune(next_ts);
        let carried = carry.as_ref().map_or(0, |c| c.event_count());
        let meta = self.file_meta(
            vec![
                ("rotate.index".into(), (self.index + 1).to_string()),
                ("rotate.previous".into(), prev),
                ("carried_records".into(), carried.to_string()),
            ],
            Some(snap),
        );
        self.open_next(meta)?;
        if let Some(c) = carry {
            self.append(&c)?;
        }
        Ok(())
    }

    fn close_open(
        &mut self,
        lost_now: Vec<u64>,
        hits: Vec<(String, u64)>,
        end: Option<Snapshot>,
    ) -> Result<()> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let lost_per_cpu = lost_delta(&lost_now, &self.lost_base);
        let trailer = TrailerInput {
            probe_hits: hits_delta(&hits, &self.hits_base),
            lost_per_cpu: lost_per_cpu.clone(),
            end_monotonic_ns: crate::record::clock_ns(libc::CLOCK_MONOTONIC),
            end_snapshot: end,
        };
        let summary = w
            .finish(trailer)
            .with_context(|| format!("closing {}", self.open_path.display()))?;
        let lost: u64 = lost_per_cpu.iter().sum();
        self.bytes_closed += summary.bytes;
        if !self.quiet && !matches!(self.mode, Mode::Single) {
            eprintln!(
                "smc-record: closed {}: {} events, {} chunks, {} bytes; lost {}",
                summary.path.display(),
                summary.events,
                summary.chunks,
                summary.bytes,
                lost
            );
        }
        self.closed.push(Closed { summary });
        Ok(())
    }

    /// Write the flight ring out as a new numbered recording and empty it.
    /// `final_lost`: the counters after the last drain (at exit).
    fn dump(&mut self, why: &str, final_lost: Option<Vec<u64>>) -> Result<()> {
        let snap = self.live.snapshot();
        // At exit the counters after the last drain; else those of the newest chunk.
        let hits = match (&final_lost, &self.hits_last) {
            (None, Some(h)) => h.clone(),
            _ => self.live.probe_hits(),
        };
        let lost_now = final_lost
            .or_else(|| self.ring.newest_lost().cloned())
            .or_else(|| self.live.lost_per_cpu())
            .unwrap_or_else(|| self.ring.lost_base().to_vec());
        let d = self.ring.dropped().clone();
        // Connections whose handshake is older than the ring's first chunk.
        let oldest = self
            .ring
            .chunks()
            .next()
            .map(|c| (c.chunk.first_ts(), c.chunk.seq()));
        let first = oldest.map_or(u64::MAX, |(ts, _)| ts);
        let seq = oldest.map_or(0, |(_, seq)| seq.saturating_sub(1));
        let carry = self.ids.chunk(seq, first)?;
        let carried = carry.as_ref().map_or(0, |c| c.event_count());
        let mut extra = vec![
            ("carried_records".to_string(), carried.to_string()),
            ("flight.reason".to_string(), why.to_string()),
            (
                "flight.held_bytes".to_string(),
                self.ring.bytes().to_string(),
            ),
            ("flight.dropped_chunks".to_string(), d.chunks.to_string()),
            ("flight.dropped_events".to_string(), d.events.to_string()),
            ("flight.dropped_lost".to_string(), d.lost.to_string()),
            (
                "start_snapshot".to_string(),
                "taken when the flight ring was written out".to_string(),
            ),
        ];
        if let Mode::Flight { budget, .. } = self.mode {
            extra.push(("flight.budget_bytes".to_string(), budget.to_string()));
        }
        if d.chunks > 0 {
            extra.push((
                "flight.dropped_ts".to_string(),
                format!("{}..{}", d.first_ts, d.last_ts),
            ));
        }
        let meta = self.file_meta(extra, Some(snap.clone()));
        let path = self.open_next(meta)?;
        if let Some(c) = &carry {
            self.append(c)?;
        }
        // The ring is moved out while its chunks are written (no copy of them).
        let budget = match self.mode {
            Mode::Flight { budget, .. } => budget,
            _ => 0,
        };
        let ring = std::mem::replace(&mut self.ring, ChunkRing::new(budget));
        let res = ring.chunks().try_for_each(|c| self.append(&c.chunk));
        self.ring = ring;
        res?;
        self.lost_base = self.ring.lost_base().to_vec();
        self.close_open(lost_now.clone(), hits.clone(), snap)?;
        self.hits_base = hits;
        self.ring.clear(lost_now);
        if !self.quiet {
            eprintln!(
                "smc-record: flight dump {} ({why}); the ring had dropped {} older chunks ({} events) before it",
                path.display(),
                d.chunks,
                d.events
            );
        }
        Ok(())
    }

    /// End of the session: close the open file, or write the ring out.
    /// `final_lost`: the counters after the last drain.
    pub fn finish(mut self, final_lost: Option<Vec<u64>>) -> Result<Vec<Closed>> {
        match self.mode {
            Mode::Flight { .. } => {
                let why = match self.pending.take() {
                    Some((_, why)) => format!("{why}; written at exit"),
                    None => "exit".to_string(),
                };
                self.dump(&why, final_lost)?;
            }
            _ => {
                let lost = final_lost
                    .or_else(|| self.lost_last.clone())
                    .unwrap_or_default();
                let hits = self.live.probe_hits();
                let snap = self.live.snapshot();
                self.close_open(lost, hits, snap)?;
            }
        }
        Ok(self.closed)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Hits since `base`, probe by probe (a probe missing from base counts from 0).
fn hits_delta(now: &[(String, u64)], base: &[(String, u64)]) -> Vec<(String, u64)> {
    now.iter()
        .map(|(p, n)| {
            let b = base.iter().find(|(q, _)| q == p).map_or(0, |(_, b)| *b);
            (p.clone(), n.saturating_sub(b))
        })
        .collect()
}

/// Refuse to start a series over files of an earlier one (unless --force).
pub fn check_series(base: &Path, force: bool) -> Result<()> {
    let old = existing_series(base);
    if !old.is_empty() && !force {
        return Err(anyhow!(
            "{} and {} more file(s) of an earlier series exist (use --force to overwrite them, or another --output)",
            old[0].display(),
            old.len() - 1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smctrace_format::synth::PingPong;
    use smctrace_format::Reader;
    use std::sync::Mutex;

    /// A minimal lifecycle record: kind, length, time stamp, sock id.
    fn lifecycle(kind: u16, ts: u64, sock: u64) -> Vec<u8> {
        let mut r = vec![0u8; HDR_LEN + 8];
        r[0..2].copy_from_slice(&kind.to_le_bytes());
        r[2..4].copy_from_slice(&((HDR_LEN + 8) as u16).to_le_bytes());
        r[8..16].copy_from_slice(&ts.to_le_bytes());
        r[HDR_LEN..].copy_from_slice(&sock.to_le_bytes());
        r
    }

    #[test]
    fn a_connection_closed_after_the_next_file_starts_is_still_carried() {
        // The writer scans a chunk (which holds the close at t=100) before it
        // decides to rotate at that chunk's first time stamp (t=50): the
        // connection was open at t=50 and must be carried (lab regression).
        let mut ids = Identities::default();
        ids.scan(&[lifecycle(1, 10, 7), lifecycle(2, 11, 7)].concat());
        ids.scan(&lifecycle(5, 100, 7));
        let carried = ids.chunk(3, 50).unwrap().expect("identity carried");
        assert_eq!(carried.event_count(), 2);
        ids.prune(50);
        assert!(
            ids.chunk(3, 50).unwrap().is_some(),
            "closed after 50: kept by prune(50)"
        );
        // A file starting after the close carries nothing, and prune forgets it.
        assert!(ids.chunk(4, 101).unwrap().is_none());
        ids.prune(101);
        assert!(ids.chunk(3, 50).unwrap().is_none(), "pruned");
        // A reused sock id after a close starts over.
        ids.scan(
            &[
                lifecycle(2, 200, 8),
                lifecycle(5, 210, 8),
                lifecycle(2, 220, 8),
            ]
            .concat(),
        );
        assert_eq!(
            ids.chunk(5, 300).unwrap().expect("reopened").event_count(),
            1
        );
    }

    /// Counters a test sets by hand, standing in for the loaded probes.
    struct Counters {
        lost: Mutex<Vec<u64>>,
        hits: Mutex<u64>,
    }

    impl Boundary for Counters {
        fn lost_per_cpu(&self) -> Option<Vec<u64>> {
            Some(self.lost.lock().unwrap().clone())
        }
        fn probe_hits(&self) -> Vec<(String, u64)> {
            vec![("smc_sendmsg".into(), *self.hits.lock().unwrap())]
        }
        fn snapshot(&self) -> Option<Snapshot> {
            None
        }
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let d = std::env::temp_dir().join(format!("smc-record-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            TempDir(d)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Chunks of a synthetic ping-pong (handshakes in the first one) and their raw records,
    /// in rows (of about equal size, which the rotation tests count on).
    fn chunks(n: u64) -> Vec<(EncodedChunk, Vec<u8>)> {
        let mut g = PingPong::default().generator();
        let mut enc = smctrace_format::ChunkEncoder::new(1, smctrace_format::ChunkCodec::Rows);
        (0..n)
            .map(|seq| {
                let mut raw = Vec::new();
                let mut count = 0;
                for _ in 0..20 {
                    count += g.next_round(&mut raw);
                }
                let (mut first, mut last) = (u64::MAX, 0);
                for r in smctrace_format::event::records(&raw) {
                    let ts = r.unwrap().hdr().ts_ns;
                    first = first.min(ts);
                    last = last.max(ts);
                }
                (
                    enc.encode(seq, &raw, count as u32, first, last).unwrap(),
                    raw,
                )
            })
            .collect()
    }

    /// CONN_INFO records in a recording.
    fn conn_infos(r: &Reader) -> usize {
        let mut n = 0;
        for c in r.chunks() {
            let d = r.decode(&c.unwrap()).unwrap();
            n += d
                .records()
                .filter(|e| matches!(e, Ok(smctrace_format::event::EventRef::ConnInfo(_))))
                .count();
        }
        n
    }

    fn meta() -> Metadata {
        Metadata {
            host: "lab-a".into(),
            ..Default::default()
        }
    }

    fn series(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn names_sort_in_time_order() {
        assert_eq!(
            numbered(Path::new("/x/rec.smctrace"), 7),
            PathBuf::from("/x/rec.000007.smctrace")
        );
        assert_eq!(numbered(Path::new("rec"), 12), PathBuf::from("rec.000012"));
        assert!(numbered(Path::new("r.smctrace"), 9) < numbered(Path::new("r.smctrace"), 10));
    }

    #[test]
    fn rotation_keeps_the_newest_n_valid_files_with_their_own_losses() {
        let dir = TempDir::new("rotate");
        let base = dir.0.join("rec.smctrace");
        let all = chunks(12);
        let one = all[1].0.as_bytes().len() as u64;
        let live = Arc::new(Counters {
            lost: Mutex::new(vec![0, 0]),
            hits: Mutex::new(0),
        });
        // room for three chunks (plus header and metadata) per file
        let mode = Mode::Rotate {
            max_size: 4096 + 3 * one + one / 2,
            keep: 2,
        };
        let mut out = Output::new(mode, &base, false, meta(), live.clone(), true).unwrap();
        for (i, (c, raw)) in all.iter().enumerate() {
            // one lost event on CPU 1 per chunk, read at its cut
            let lost = vec![0, i as u64 + 1];
            *live.lost.lock().unwrap() = lost.clone();
            *live.hits.lock().unwrap() = (i as u64 + 1) * 10;
            let hits = vec![("smc_sendmsg".to_string(), (i as u64 + 1) * 10)];
            out.push(
                c.clone(),
                raw,
                Cut {
                    lost: Some(lost),
                    hits: Some(hits),
                },
                None,
            )
            .unwrap();
        }
        let closed = out.finish(Some(vec![0, 12])).unwrap();
        assert_eq!(closed.len(), 4, "12 chunks, 3 per file");
        assert_eq!(
            series(&dir.0),
            vec!["rec.000003.smctrace", "rec.000004.smctrace"]
        );
        let mut seqs = Vec::new();
        for (k, name) in ["rec.000003.smctrace", "rec.000004.smctrace"]
            .iter()
            .enumerate()
        {
            let r = Reader::open(&dir.0.join(name)).unwrap();
            assert!(r.recovery().clean_close, "{name} closed cleanly");
            let t = r.trailer().unwrap();
            assert_eq!(t.total_events, closed[2 + k].summary.events);
            assert_eq!(
                t.lost_per_cpu,
                vec![0, 3],
                "{name}: the losses of its own 3 chunks"
            );
            // hits read at the chunk cuts: 10 per chunk, 3 chunks per file
            assert_eq!(t.probe_hits, vec![("smc_sendmsg".to_string(), 30)]);
            assert!(
                std::fs::metadata(dir.0.join(name)).unwrap().len()
                    <= 4096 + 3 * one + one / 2 + 4096
            );
            assert_eq!(
                r.metadata().extra_value("rotate.index"),
                Some(["3", "4"][k])
            );
            // per connection: the client's CONNECT and both sides' CONN_INFO
            let carried = 3 * PingPong::default().connections;
            assert_eq!(
                r.metadata().extra_value("carried_records"),
                Some(carried.to_string().as_str())
            );
            // the handshakes happened in file 1: carried into every later file
            assert_eq!(
                conn_infos(&r),
                2 * PingPong::default().connections as usize,
                "{name}: identities carried"
            );
            for c in r.chunks() {
                seqs.push(c.unwrap().seq);
            }
        }
        // each file: the carried identities (seq of the previous file's last chunk), then its chunks
        assert_eq!(
            seqs,
            vec![5, 6, 7, 8, 8, 9, 10, 11],
            "the newest chunks, in order"
        );
    }

    #[test]
    fn trigger_post_delays_the_dump_and_coalesces() {
        let dir = TempDir::new("post");
        let base = dir.0.join("p.smctrace");
        let all = chunks(4);
        let live = Arc::new(Counters {
            lost: Mutex::new(vec![0]),
            hits: Mutex::new(0),
        });
        let mode = Mode::Flight {
            budget: 1 << 20,
            post: Duration::from_millis(1500),
        };
        let mut out = Output::new(mode, &base, false, meta(), live, true).unwrap();
        out.push(
            all[0].0.clone(),
            &all[0].1,
            Cut::default(),
            Some("link-down (test)".into()),
        )
        .unwrap();
        out.push(
            all[1].0.clone(),
            &all[1].1,
            Cut::default(),
            Some("fallback (later)".into()),
        )
        .unwrap();
        out.tick().unwrap();
        assert!(
            series(&dir.0).is_empty(),
            "nothing written before --trigger-post has passed"
        );
        std::thread::sleep(Duration::from_millis(1600));
        out.push(all[2].0.clone(), &all[2].1, Cut::default(), None)
            .unwrap();
        assert_eq!(series(&dir.0), vec!["p.000001.smctrace"]);
        let r = Reader::open(&dir.0.join("p.000001.smctrace")).unwrap();
        // the first trigger names the dump; chunks up to the one after the wait are in it
        assert_eq!(
            r.metadata().extra_value("flight.reason"),
            Some("trigger: link-down (test)")
        );
        assert_eq!(r.chunks().count(), 3);
        out.request_dump("SIGUSR1");
        out.tick().unwrap();
        assert_eq!(series(&dir.0).len(), 2, "SIGUSR1 writes at once");
    }

    #[test]
    fn series_refused_without_force() {
        let dir = TempDir::new("series");
        let base = dir.0.join("rec.smctrace");
        assert!(check_series(&base, false).is_ok());
        std::fs::write(dir.0.join("rec.000002.smctrace"), b"x").unwrap();
        std::fs::write(dir.0.join("rec.smctrace"), b"x").unwrap();
        std::fs::write(dir.0.join("rec.00002.smctrace"), b"x").unwrap();
        assert_eq!(
            existing_series(&base),
            vec![dir.0.join("rec.000002.smctrace")]
        );
        assert!(check_series(&base, false).is_err());
        assert!(check_series(&base, true).is_ok());
    }

    #[test]
    fn flight_dump_holds_the_ring_and_accounts_for_what_it_dropped() {
        let dir = TempDir::new("flight");
        let base = dir.0.join("fl.smctrace");
        let all = chunks(10);
        let one = all[1].0.as_bytes().len() as u64;
        let live = Arc::new(Counters {
            lost: Mutex::new(vec![0]),
            hits: Mutex::new(0),
        });
        let mode = Mode::Flight {
            budget: 3 * one + one / 2,
            post: Duration::ZERO,
        };
        let mut out = Output::new(mode, &base, false, meta(), live.clone(), true).unwrap();
        for (i, (c, raw)) in all.iter().take(8).enumerate() {
            let trig = (i == 7).then(|| "fallback (test)".to_string());
            out.push(
                c.clone(),
                raw,
                Cut {
                    lost: Some(vec![2 * (i as u64 + 1)]),
                    hits: None,
                },
                trig,
            )
            .unwrap();
        }
        // the trigger with no post time dumped at once: chunks 5..7, 5 dropped
        assert_eq!(series(&dir.0), vec!["fl.000001.smctrace"]);
        let r = Reader::open(&dir.0.join("fl.000001.smctrace")).unwrap();
        assert!(r.recovery().clean_close);
        let seqs: Vec<u64> = r.chunks().map(|c| c.unwrap().seq).collect();
        // the evicted handshakes carried in first (seq 4: before the ring's first chunk)
        assert_eq!(seqs, vec![4, 5, 6, 7]);
        assert_eq!(conn_infos(&r), 2 * PingPong::default().connections as usize);
        let m = r.metadata();
        assert_eq!(
            m.extra_value("flight.reason"),
            Some("trigger: fallback (test)")
        );
        assert_eq!(m.extra_value("flight.dropped_chunks"), Some("5"));
        assert_eq!(m.extra_value("flight.dropped_lost"), Some("10"));
        assert_eq!(
            r.trailer().unwrap().lost_per_cpu,
            vec![6],
            "losses of chunks 5..7 only"
        );
        // the rest goes out at exit, nothing repeated
        out.push(
            all[8].0.clone(),
            &all[8].1,
            Cut {
                lost: Some(vec![18]),
                hits: None,
            },
            None,
        )
        .unwrap();
        out.push(
            all[9].0.clone(),
            &all[9].1,
            Cut {
                lost: Some(vec![20]),
                hits: None,
            },
            None,
        )
        .unwrap();
        let closed = out.finish(Some(vec![21])).unwrap();
        assert_eq!(closed.len(), 2);
        let r = Reader::open(&dir.0.join("fl.000002.smctrace")).unwrap();
        let seqs: Vec<u64> = r.chunks().map(|c| c.unwrap().seq).collect();
        assert_eq!(seqs, vec![7, 8, 9]);
        assert_eq!(r.metadata().extra_value("flight.reason"), Some("exit"));
        // 16 -> 21: every loss counted once over the dumps (10 dropped + 6 + 5 = 21)
        assert_eq!(r.trailer().unwrap().lost_per_cpu, vec![5]);
        assert_eq!(r.metadata().extra_value("flight.dropped_lost"), Some("0"));
    }
}
