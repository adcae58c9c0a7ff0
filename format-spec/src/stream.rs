//! Reading a whole recording's events in file order, fast: chunks are
//! checked and decompressed on a worker thread a few chunks ahead of the
//! consumer (chunk N+1 decompresses while chunk N is parsed), and the
//! consumer gets each record as an [`EventRef`] parsed straight from the
//! decoded chunk buffer: no per-event allocation, no copy of the chunk.
//!
//! Semantics are those of [`Reader::chunks`] + [`Reader::decode`], in the
//! same order: a damaged chunk is one [`StreamItem::BadChunk`] (its events
//! are missing, the stream goes on), a malformed record ends its chunk with
//! one [`StreamItem::BadRecord`], and the end of a file that was not closed
//! cleanly is simply the end of the stream (see [`Reader::recovery`]).
//!
//! Memory is bounded: at most `depth` decoded chunks (rounded up to a
//! multiple of the number of workers) wait in the queues, plus one being
//! decoded per worker and the one the consumer is reading; the file's pages
//! are released from the process ([`Reader::release`]) as soon as their
//! chunk is decoded, so the mapped file does not grow the resident set.
//!
//! Not for: random access to chunks (use [`Reader::decode`], which is
//! independent per chunk) or interpreting events (the analyzer's model).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::chunk::{ChunkInfo, DecodedChunk};
use crate::error::FormatError;
use crate::event::{EventRef, RecordError};
use crate::reader::{ChunkDecoder, Reader, FAULT_AROUND};

/// Decoded chunks the worker may hold ready by default: enough to hide the
/// jitter of one slow chunk, small enough (a few MiB at 1 MiB chunks) to
/// keep memory flat.
pub const DEFAULT_DEPTH: usize = 3;

type Decoded = Result<DecodedChunk, FormatError>;

enum Source {
    /// Decoding on the caller's thread (depth 0, or no thread could be spawned).
    Inline {
        reader: Arc<Reader>,
        chunks: std::vec::IntoIter<Result<ChunkInfo, FormatError>>,
        dec: ChunkDecoder,
        spare: Vec<u8>,
    },
    /// Decoding on worker threads, each feeding its own bounded queue:
    /// worker `i` decodes chunks `i, i + W, i + 2W, ...`, and the consumer
    /// reads the queues in turn, which restores file order.
    Workers {
        queues: Vec<Receiver<Decoded>>,
        /// Per worker: buffers of chunks the consumer is done with, to
        /// decompress into again.
        spares: Vec<Sender<Vec<u8>>>,
        /// The queue the next chunk comes from.
        turn: usize,
        stop: Arc<AtomicBool>,
        workers: Vec<Option<JoinHandle<()>>>,
    },
}

/// The event chunks of a recording, decoded in file order a few chunks
/// ahead on worker threads. Yields what [`Reader::decoded_chunks`] yields.
pub struct DecodedChunks {
    src: Source,
}

impl DecodedChunks {
    /// Start decoding `reader`'s chunks on one worker thread, up to `depth`
    /// chunks ahead; `depth` 0 decodes on the caller's thread, one chunk per
    /// `next()`. If the thread cannot be spawned the chunks are decoded
    /// inline (same results, slower).
    pub fn new(reader: Arc<Reader>, depth: usize) -> DecodedChunks {
        DecodedChunks::with_workers(reader, depth, 1)
    }

    /// As [`DecodedChunks::new`] with `workers` decoding threads (at least
    /// one) sharing the look-ahead of `depth` chunks (at least one each):
    /// for consumers that do little per event, decompression is the limit.
    pub fn with_workers(reader: Arc<Reader>, depth: usize, workers: usize) -> DecodedChunks {
        let inline = |reader: Arc<Reader>| {
            let chunks: Vec<_> = reader.chunks().collect();
            DecodedChunks {
                src: Source::Inline {
                    reader,
                    chunks: chunks.into_iter(),
                    dec: ChunkDecoder::new(),
                    spare: Vec::new(),
                },
            }
        };
        if depth == 0 {
            return inline(reader);
        }
        let n = workers.max(1);
        let per = depth.div_ceil(n);
        let stop = Arc::new(AtomicBool::new(false));
        let mut queues = Vec::with_capacity(n);
        let mut spares = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = sync_channel::<Decoded>(per);
            let (spare_tx, spare_rx) = channel::<Vec<u8>>();
            let r = reader.clone();
            let st = stop.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("smctrace-decode-{i}"))
                .spawn(move || {
                    let mut dec = ChunkDecoder::new();
                    for c in r.chunks().skip(i).step_by(n) {
                        if st.load(Ordering::Relaxed) {
                            return;
                        }
                        let buf = spare_rx.try_recv().unwrap_or_default();
                        let d = c.and_then(|c| {
                            let d = r.decode_with(&c, &mut dec, buf);
                            r.release(
                                c.offset.saturating_sub(FAULT_AROUND),
                                c.offset + c.stored_len(),
                            );
                            d
                        });
                        // The consumer went away: stop decoding.
                        if tx.send(d).is_err() {
                            return;
                        }
                    }
                });
            match spawned {
                Ok(h) => {
                    queues.push(rx);
                    spares.push(spare_tx);
                    handles.push(Some(h));
                }
                Err(_) => {
                    // Stop the workers already running, then decode inline.
                    drop(DecodedChunks {
                        src: Source::Workers {
                            queues,
                            spares,
                            turn: 0,
                            stop,
                            workers: handles,
                        },
                    });
                    return inline(reader);
                }
            }
        }
        DecodedChunks {
            src: Source::Workers {
                queues,
                spares,
                turn: 0,
                stop,
                workers: handles,
            },
        }
    }

    /// Hand back a chunk the caller is done with: its buffer is decompressed
    /// into again instead of a fresh allocation (optional; saves a page
    /// fault per 4 KiB of every chunk).
    pub fn recycle(&mut self, done: DecodedChunk) {
        match &mut self.src {
            Source::Inline { spare, .. } => *spare = done.data,
            // To the worker the consumer waits on next; a worker that has
            // finished drops it.
            Source::Workers { spares, turn, .. } => {
                if let Some(s) = spares.get(*turn) {
                    let _ = s.send(done.data);
                }
            }
        }
    }
}

impl Iterator for DecodedChunks {
    type Item = Decoded;

    fn next(&mut self) -> Option<Decoded> {
        match &mut self.src {
            Source::Inline {
                reader,
                chunks,
                dec,
                spare,
            } => {
                let c = chunks.next()?;
                Some(c.and_then(|c| {
                    let d = reader.decode_with(&c, dec, std::mem::take(spare));
                    reader.release(
                        c.offset.saturating_sub(FAULT_AROUND),
                        c.offset + c.stored_len(),
                    );
                    d
                }))
            }
            Source::Workers {
                queues,
                turn,
                workers,
                ..
            } => {
                let t = *turn;
                match queues.get(t)?.recv() {
                    Ok(d) => {
                        *turn = (t + 1) % queues.len();
                        Some(d)
                    }
                    // The worker whose turn it is has finished: that is the
                    // end of the chunks, unless it panicked (a bug in the
                    // reader), which is raised here as it would be inline.
                    Err(_) => {
                        if let Some(h) = workers[t].take() {
                            if let Err(p) = h.join() {
                                std::panic::resume_unwind(p);
                            }
                        }
                        None
                    }
                }
            }
        }
    }
}

impl Drop for DecodedChunks {
    fn drop(&mut self) {
        if let Source::Workers {
            queues,
            spares,
            stop,
            workers,
            ..
        } = &mut self.src
        {
            stop.store(true, Ordering::Relaxed);
            // Dropping the receivers makes a blocked `send` fail at once.
            queues.clear();
            spares.clear();
            for h in workers.iter_mut().filter_map(Option::take) {
                // Do not panic in drop; a worker's panic message was printed.
                let _ = h.join();
            }
        }
    }
}

/// One step of an [`EventStream`].
#[derive(Debug)]
pub enum StreamItem<'a> {
    /// A record, parsed from the decoded chunk (a payload's bytes borrow it).
    Event(EventRef<'a>),
    /// A chunk that could not be read (damaged header or body, or a body
    /// that does not decompress): its events are missing.
    BadChunk(FormatError),
    /// A malformed record: the rest of its chunk is skipped.
    BadRecord {
        chunk: ChunkInfo,
        /// Byte offset of the record inside the decoded chunk.
        offset: usize,
        error: RecordError,
    },
}

/// Every record of a recording in file order, borrowed from the chunk being
/// read (a lending iterator: each item lives until the next call).
///
/// ```
/// use std::sync::Arc;
/// use smctrace_format::stream::{EventStream, StreamItem};
/// use smctrace_format::{encode_chunk, Metadata, Reader, TrailerInput, Writer, WriterOptions};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("rec.smctrace");
/// # let mut w = Writer::create(&path, &Metadata::default(), WriterOptions::default())?;
/// # let (records, n) = smctrace_format::synth::PingPong::default().build(10);
/// # w.append(&encode_chunk(0, &records, n as u32, 0, 0, 3)?)?;
/// # w.finish(TrailerInput::default())?;
/// let mut events = EventStream::new(Arc::new(Reader::open(&path)?));
/// let mut n = 0;
/// while let Some(item) = events.next_item() {
///     match item {
///         StreamItem::Event(ev) => n += (ev.hdr().ts_ns > 0) as u64,
///         StreamItem::BadChunk(e) => eprintln!("{e}"),
///         StreamItem::BadRecord { error, .. } => eprintln!("{error}"),
///     }
/// }
/// assert_eq!(n, events.reader().stats().events);
/// # Ok::<(), smctrace_format::FormatError>(())
/// ```
pub struct EventStream {
    reader: Arc<Reader>,
    chunks: DecodedChunks,
    cur: Option<DecodedChunk>,
    off: usize,
    chunks_seen: u64,
}

impl EventStream {
    /// A stream decoding [`DEFAULT_DEPTH`] chunks ahead on a worker thread.
    pub fn new(reader: Arc<Reader>) -> EventStream {
        EventStream::with_depth(reader, DEFAULT_DEPTH)
    }

    /// A stream with an explicit look-ahead (0: decode on this thread).
    pub fn with_depth(reader: Arc<Reader>, depth: usize) -> EventStream {
        EventStream::with_workers(reader, depth, 1)
    }

    /// A stream decoding on `workers` threads (see [`DecodedChunks::with_workers`]).
    pub fn with_workers(reader: Arc<Reader>, depth: usize, workers: usize) -> EventStream {
        let chunks = DecodedChunks::with_workers(reader.clone(), depth, workers);
        EventStream {
            reader,
            chunks,
            cur: None,
            off: 0,
            chunks_seen: 0,
        }
    }

    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Event chunks started so far (readable or not): for progress display.
    pub fn chunks_seen(&self) -> u64 {
        self.chunks_seen
    }

    /// The next record or damage report; `None` at the end of the recording.
    #[inline]
    pub fn next_item(&mut self) -> Option<StreamItem<'_>> {
        Some(match self.next_record()? {
            RecordItem::Record(rec) => match EventRef::parse(rec) {
                Ok((ev, _)) => StreamItem::Event(ev),
                Err(_) => unreachable!("next_record checked the record"),
            },
            RecordItem::BadChunk(e) => StreamItem::BadChunk(e),
            RecordItem::BadRecord {
                chunk,
                offset,
                error,
            } => StreamItem::BadRecord {
                chunk,
                offset,
                error,
            },
        })
    }

    /// [`EventStream::next_item`] without building the event: the bytes of
    /// the next record, already checked by [`crate::event::check_record`]
    /// (a reader that keeps its own form of the events parses them once).
    pub fn next_record(&mut self) -> Option<RecordItem<'_>> {
        // Move to a chunk with records left without holding a borrow of it.
        while self
            .cur
            .as_ref()
            .is_none_or(|c| self.off >= c.bytes().len())
        {
            if let Some(done) = self.cur.take() {
                self.chunks.recycle(done);
            }
            self.off = 0;
            let next = self.chunks.next()?;
            self.chunks_seen += 1;
            match next {
                Ok(d) => self.cur = Some(d),
                Err(e) => return Some(RecordItem::BadChunk(e)),
            }
        }
        let cur = self.cur.as_ref().expect("chunk with records left");
        let rest = &cur.bytes()[self.off..];
        match crate::event::check_record(rest) {
            Ok((_, len)) => {
                self.off += len;
                Some(RecordItem::Record(&rest[..len]))
            }
            Err(error) => {
                let chunk = *cur.info();
                let offset = self.off;
                // The rest of the chunk cannot be resynchronised: skip it.
                self.off = cur.bytes().len();
                Some(RecordItem::BadRecord {
                    chunk,
                    offset,
                    error,
                })
            }
        }
    }
}

/// What [`EventStream::next_record`] yields.
#[derive(Debug)]
pub enum RecordItem<'a> {
    /// A record's bytes (`hdr.len` of them), checked.
    Record(&'a [u8]),
    /// A chunk that could not be read (its events are missing).
    BadChunk(FormatError),
    /// A record that could not be walked: the rest of its chunk is skipped.
    BadRecord {
        chunk: crate::chunk::ChunkInfo,
        offset: usize,
        error: crate::event::RecordError,
    },
}
