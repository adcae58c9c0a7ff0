//! Ring buffer -> chunks -> file: the userspace data path of a recording.
//!
//! Two threads. The *drain* thread sleeps in poll(2) on the ring buffer's fd
//! (the BPF side wakes it once enough data is queued, and the poll times out
//! every 50 ms so a trickle is not held back), copies each record into the
//! current chunk and hands the chunk over when it reaches `chunk_bytes` or
//! `chunk_age`. The *writer* thread compresses chunks with
//! `smctrace_format::encode_chunk` and appends them to the memory-mapped
//! file. The channel between them is bounded: if compression falls behind,
//! the drain thread blocks, the kernel's ring buffer fills, and the kernel
//! counts the records it could not reserve (never a silent loss).
//!
//! With `--rotate` or `--flight` the drain thread also reads the kernel's lost
//! counters each time it cuts a chunk (so each file's trailer counts the
//! losses of exactly its own span) and checks every record against the
//! flight triggers; the writer thread hands chunks to an [`Output`].

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use smctrace_format::event::{self, HDR_LEN};
use smctrace_format::{ChunkCodec, ChunkEncoder};

use crate::flight::TriggerCheck;
use crate::output::{Boundary, Cut, Output};

/// Counters shared with the status line and the stop conditions.
#[derive(Default)]
pub struct Progress {
    pub events: AtomicU64,
    pub raw_bytes: AtomicU64,
    /// Bytes in the file so far (header, metadata, chunks).
    pub file_bytes: AtomicU64,
    /// Ring buffer items that were not a valid record (should stay 0).
    pub malformed: AtomicU64,
}

pub struct Options {
    pub chunk_bytes: usize,
    pub chunk_age: Duration,
    pub zstd_level: i32,
    /// Rows, columns, or whichever is smaller per chunk.
    pub chunk_layout: ChunkCodec,
    /// Read the lost and hit counters at every chunk cut (rotate and flight modes).
    pub lost_at_cut: Option<Arc<dyn Boundary>>,
    /// Flight triggers checked on every record.
    pub triggers: TriggerCheck,
    /// Raised by SIGUSR1: write the flight ring out.
    pub dump_request: Arc<AtomicBool>,
}

struct RawChunk {
    seq: u64,
    bytes: Vec<u8>,
    count: u32,
    first_ts: u64,
    last_ts: u64,
    /// The kernel's counters right after the cut (rotate and flight modes).
    cut: Cut,
    trigger: Option<String>,
}

pub struct Pipeline {
    drain: JoinHandle<Result<()>>,
    writer: JoinHandle<Result<Output>>,
}

impl Pipeline {
    pub fn start(
        ring: RingBuf<MapData>,
        output: Output,
        stop: Arc<AtomicBool>,
        progress: Arc<Progress>,
        opts: Options,
    ) -> Result<Pipeline> {
        progress
            .file_bytes
            .store(output.bytes_written(), Ordering::Relaxed);
        let (tx, rx) = sync_channel::<RawChunk>(8);
        let (spent_tx, spent_rx) = sync_channel::<Vec<u8>>(SPENT_BUFFERS);
        let p2 = progress.clone();
        let encoder = ChunkEncoder::new(opts.zstd_level, opts.chunk_layout);
        let stop2 = stop.clone();
        let dump = opts.dump_request.clone();
        let writer = std::thread::Builder::new()
            .name("smc-record-write".into())
            .spawn(move || write_loop(rx, spent_tx, output, p2, encoder, stop2, dump))
            .context("starting the writer thread")?;
        let drain = std::thread::Builder::new()
            .name("smc-record-drain".into())
            .spawn(move || drain_loop(ring, tx, spent_rx, stop, progress, opts))
            .context("starting the ring buffer thread")?;
        Ok(Pipeline { drain, writer })
    }

    /// Wait for the final drain (the stop flag must be set) and get the output back.
    pub fn finish(self) -> Result<Output> {
        let drained = self
            .drain
            .join()
            .map_err(|_| anyhow::anyhow!("the ring buffer thread panicked"))?;
        let writer = self
            .writer
            .join()
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
        // A drain error is reported after the writer is back, so the file still closes.
        // When the writer failed (disk full, I/O error), the drain thread only saw the
        // channel close: the writer's error is the one that says what happened.
        match (drained, writer) {
            (Ok(()), w) => w,
            (Err(e), Ok(_)) => Err(e),
            (Err(_), Err(w)) => Err(w),
        }
    }
}

struct Batch {
    seq: u64,
    buf: Vec<u8>,
    count: u32,
    first_ts: u64,
    last_ts: u64,
    started: Option<Instant>,
    trigger: Option<String>,
}

impl Batch {
    fn push(&mut self, rec: &[u8], ts: u64) {
        if self.count == 0 {
            self.started = Some(Instant::now());
            self.first_ts = ts;
            self.last_ts = ts;
        }
        self.first_ts = self.first_ts.min(ts);
        self.last_ts = self.last_ts.max(ts);
        self.buf.extend_from_slice(rec);
        self.count += 1;
    }

    /// The batch as a chunk (None when empty); `fresh` gives the next buffer.
    fn take(&mut self, fresh: impl FnOnce() -> Vec<u8>) -> Option<RawChunk> {
        if self.count == 0 {
            return None;
        }
        let c = RawChunk {
            seq: self.seq,
            bytes: std::mem::replace(&mut self.buf, fresh()),
            count: self.count,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            cut: Cut::default(),
            trigger: self.trigger.take(),
        };
        self.seq += 1;
        self.count = 0;
        self.started = None;
        Some(c)
    }
}

/// Chunk buffers the writer hands back to the drain thread once written. A
/// fresh 1 MiB buffer per chunk cost the drain thread a page fault per 4 KiB
/// it filled: 5-8x its CPU time in `cargo bench --bench pipeline`.
const SPENT_BUFFERS: usize = 8;

/// The next chunk buffer: a spent one if the writer returned one, else a new one.
fn next_buffer(spent: &Receiver<Vec<u8>>, cap: usize) -> Vec<u8> {
    match spent.try_recv() {
        Ok(mut b) => {
            b.clear();
            b
        }
        Err(_) => Vec::with_capacity(cap),
    }
}

fn drain_loop(
    mut ring: RingBuf<MapData>,
    tx: SyncSender<RawChunk>,
    spent: Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    mut opts: Options,
) -> Result<()> {
    let fd = ring.as_raw_fd();
    let cap = opts.chunk_bytes + 4096;
    let fresh = || next_buffer(&spent, cap);
    let mut batch = Batch {
        seq: 0,
        buf: Vec::with_capacity(cap),
        count: 0,
        first_ts: 0,
        last_ts: 0,
        started: None,
        trigger: None,
    };
    let check_triggers = !opts.triggers.is_empty();
    let lost = opts.lost_at_cut.take();
    let emit = |c: Option<RawChunk>| send(&tx, c, lost.as_deref());
    loop {
        // Read stop before draining, so the last pass sees everything submitted before it.
        let stopping = stop.load(Ordering::Acquire);
        while let Some(item) = ring.next() {
            let rec: &[u8] = &item;
            match record_len_ts(rec) {
                Some((len, ts)) => {
                    batch.push(&rec[..len], ts);
                    if check_triggers && batch.trigger.is_none() {
                        batch.trigger = opts.triggers.check(&rec[..len]);
                    }
                    progress.events.fetch_add(1, Ordering::Relaxed);
                    progress.raw_bytes.fetch_add(len as u64, Ordering::Relaxed);
                }
                None => {
                    progress.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(item);
            if batch.buf.len() >= opts.chunk_bytes {
                emit(batch.take(fresh))?;
            }
        }
        if stopping {
            emit(batch.take(fresh))?;
            return Ok(());
        }
        // A chunk holding a trigger goes to the writer at once.
        if batch.trigger.is_some() || batch.started.is_some_and(|t| t.elapsed() >= opts.chunk_age) {
            emit(batch.take(fresh))?;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, 50) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err).context("poll on the BPF ring buffer");
            }
        }
    }
}

fn send(
    tx: &SyncSender<RawChunk>,
    chunk: Option<RawChunk>,
    lost: Option<&dyn Boundary>,
) -> Result<()> {
    if let Some(mut c) = chunk {
        // Read after the cut: every loss counted so far belongs to this chunk's
        // span or an earlier one.
        if let Some(b) = lost {
            c.cut = Cut {
                lost: b.lost_per_cpu(),
                hits: Some(b.probe_hits()),
            };
        }
        tx.send(c)
            .map_err(|_| anyhow::anyhow!("the writer thread stopped early"))?;
    }
    Ok(())
}

/// Length and timestamp of a well-formed record at the start of a ring buffer item.
fn record_len_ts(item: &[u8]) -> Option<(usize, u64)> {
    let hdr = event::peek(item)?;
    let len = hdr.len as usize;
    (len >= HDR_LEN && len <= item.len() && len.is_multiple_of(8)).then_some((len, hdr.ts_ns))
}

/// Compress every chunk and hand it to the output. On the first failure (a
/// full disk, an I/O error) the recording stops: the stop flag is raised so
/// the session ends at once, and the output is dropped, which cuts the open
/// file after the last complete chunk (a valid recording, read as "not closed
/// cleanly"). The error says how much of the recording the file holds.
fn write_loop(
    rx: Receiver<RawChunk>,
    spent: SyncSender<Vec<u8>>,
    mut output: Output,
    progress: Arc<Progress>,
    mut encoder: ChunkEncoder,
    stop: Arc<AtomicBool>,
    dump: Arc<AtomicBool>,
) -> Result<Output> {
    let fail = |e: anyhow::Error| {
        stop.store(true, Ordering::Release);
        Err(e)
    };
    loop {
        if dump.swap(false, Ordering::AcqRel) {
            output.request_dump("SIGUSR1");
        }
        if let Err(e) = output.tick() {
            return fail(e);
        }
        let c = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(output),
        };
        let res = encoder
            .encode(c.seq, &c.bytes, c.count, c.first_ts, c.last_ts)
            .with_context(|| format!("compressing chunk {}", c.seq))
            .and_then(|enc| output.push(enc, &c.bytes, c.cut, c.trigger));
        if let Err(e) = res {
            return fail(e);
        }
        // Back to the drain thread; dropped when it holds enough already.
        let _ = spent.try_send(c.bytes);
        progress
            .file_bytes
            .store(output.bytes_written(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_len_checks_header() {
        let mut rec = vec![0u8; 48];
        rec[0] = 16; // kind
        rec[2] = 48; // len
        rec[8] = 7; // ts_ns
        assert_eq!(record_len_ts(&rec), Some((48, 7)));
        rec[2] = 40; // shorter record in a padded item
        assert_eq!(record_len_ts(&rec), Some((40, 7)));
        rec[2] = 56; // longer than the item
        assert_eq!(record_len_ts(&rec), None);
        rec[2] = 44; // not a multiple of 8
        assert_eq!(record_len_ts(&rec), None);
        rec[2] = 8; // shorter than the header
        assert_eq!(record_len_ts(&rec), None);
        assert_eq!(record_len_ts(&rec[..10]), None);
    }

    #[test]
    fn batch_tracks_time_range_and_resets() {
        let mut b = Batch {
            seq: 7,
            buf: Vec::new(),
            count: 0,
            first_ts: 0,
            last_ts: 0,
            started: None,
            trigger: None,
        };
        assert!(b.take(Vec::new).is_none());
        b.push(&[1; 24], 50);
        b.push(&[2; 24], 40);
        b.push(&[3; 24], 60);
        let c = b.take(Vec::new).unwrap();
        assert_eq!(
            (c.seq, c.count, c.first_ts, c.last_ts, c.bytes.len()),
            (7, 3, 40, 60, 72)
        );
        assert_eq!(b.seq, 8);
        assert!(b.take(Vec::new).is_none());
    }
}
