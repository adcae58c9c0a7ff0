//! Reads a `.smctrace` file over a read-only memory map: validates the
//! header, deserializes the metadata once, walks the chunk headers once at
//! open (recovering what a crashed recorder left) and decodes chunks on
//! demand, independently, so callers may decode them in parallel.
//!
//! Nothing here trusts a length from the file before checking it against
//! the file size and the limits in [`crate::layout`].

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, UncheckedAdvice};

use crate::chunk::{ChunkInfo, DecodedChunk};
use crate::columnar::ColumnDecoder;
use crate::error::FormatError;
use crate::layout::{
    self, ChunkHeader, ChunkHeaderError, FileHeader, Footer, CHUNK_EVENTS, CHUNK_F_COLUMNS,
    CHUNK_F_KNOWN, CHUNK_F_ZSTD, CHUNK_HEADER_LEN, CHUNK_MAGIC, CHUNK_TRAILER, FILE_HEADER_LEN,
    FILE_MAGIC, FOOTER_LEN, MAX_CHUNK_BODY, MAX_EVENTS_RAW, MAX_METADATA_LEN, MAX_TRAILER_RAW,
    VERSION_MAJOR,
};
use crate::meta::{Metadata, Trailer};

/// A damaged stretch of the chunk area that the reader stepped over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptChunk {
    /// Position of the chunk among all chunks of the file (0-based).
    pub index: u64,
    /// Sequence number, if the chunk header was intact.
    pub seq: Option<u64>,
    pub offset: u64,
    pub reason: String,
}

/// What the reader found when it walked the file at open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Footer and trailer present and valid.
    pub clean_close: bool,
    /// Event chunks with an intact header (and, if `bodies_verified`, body).
    pub chunks_ok: u64,
    /// Events in those chunks.
    pub events_ok: u64,
    /// Where and why the walk stopped before the end of the chunk area
    /// (`None`: it reached the trailer, or the end of a file without one).
    pub stopped_at: Option<(u64, String)>,
    /// Damaged chunks stepped over (body CRC errors, corrupt headers followed
    /// by a valid one).
    pub corrupt: Vec<CorruptChunk>,
    /// Chunks of types this build does not know, skipped.
    pub unknown_chunks: u64,
    /// Whether body CRCs were checked during the walk (always for files not
    /// closed cleanly; otherwise [`Reader::decode`] and [`Reader::verify`] check them).
    pub bodies_verified: bool,
    /// Why the trailer could not be used although a footer was present.
    pub trailer_error: Option<String>,
}

/// Totals over the event chunks found at open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStats {
    pub event_chunks: u64,
    pub events: u64,
    /// Bytes of records before compression.
    pub raw_bytes: u64,
    /// Bytes of compressed chunk bodies.
    pub compressed_bytes: u64,
    /// Smallest first_ts / largest last_ts over chunks with events (0 if none).
    pub first_ts: u64,
    pub last_ts: u64,
}

#[derive(Clone, Debug)]
enum Entry {
    Chunk(ChunkInfo),
    Bad(CorruptChunk),
}

pub struct Reader {
    path: PathBuf,
    map: Mmap,
    header: FileHeader,
    meta: Metadata,
    trailer: Option<Trailer>,
    trailer_offset: Option<u64>,
    entries: Vec<Entry>,
    recovery: Recovery,
    stats: FileStats,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .field("len", &self.map.len())
            .finish()
    }
}

fn aligned(bytes: &[u8]) -> rkyv::util::AlignedVec<16> {
    let mut v = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    v
}

impl Reader {
    /// Open and validate a recording. Fails on anything that is not a
    /// readable recording of a supported major version with intact header
    /// and metadata; damage further in is reported by [`Reader::recovery`].
    pub fn open(path: &Path) -> Result<Reader, FormatError> {
        let p = path.to_path_buf();
        let not_rec = |reason: String| FormatError::NotARecording {
            path: p.clone(),
            reason,
        };
        let st = std::fs::metadata(path).map_err(|e| FormatError::Open {
            path: p.clone(),
            source: e,
        })?;
        if st.is_dir() {
            return Err(not_rec("it is a directory".into()));
        }
        if !st.is_file() {
            return Err(not_rec("it is not a regular file".into()));
        }
        if st.len() == 0 {
            return Err(not_rec("the file is empty".into()));
        }
        let file = File::open(path).map_err(|e| FormatError::Open {
            path: p.clone(),
            source: e,
        })?;
        // SAFETY: read-only private view; a concurrent truncation by another
        // process is outside what this reader can defend against (SPEC.md).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| FormatError::Io {
            path: p.clone(),
            op: "mmap",
            offset: None,
            source: e,
        })?;
        let len = map.len();
        if len < FILE_MAGIC.len() || map[..FILE_MAGIC.len()] != FILE_MAGIC {
            let n = len.min(8);
            return Err(not_rec(format!(
                "bad magic (first bytes {:02x?})",
                &map[..n]
            )));
        }
        let corrupt_hdr = |offset: u64, reason: String| FormatError::CorruptHeader {
            path: p.clone(),
            offset,
            reason,
        };
        if len < FILE_HEADER_LEN {
            return Err(corrupt_hdr(
                0,
                format!("file header truncated: {len} of {FILE_HEADER_LEN} bytes"),
            ));
        }
        let hb: &[u8; FILE_HEADER_LEN] = map[..FILE_HEADER_LEN].try_into().unwrap();
        let header = FileHeader::decode(hb);
        if header.major != VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion {
                path: p.clone(),
                major: header.major,
                minor: header.minor,
                supported: VERSION_MAJOR,
            });
        }
        if !FileHeader::crc_ok(hb) {
            return Err(corrupt_hdr(0, "file header checksum mismatch".into()));
        }
        let meta_len = header.meta_len as usize;
        let header_len = header.header_len as usize;
        if meta_len > MAX_METADATA_LEN {
            return Err(corrupt_hdr(
                16,
                format!("metadata length {meta_len} exceeds the {MAX_METADATA_LEN} byte limit"),
            ));
        }
        if header_len < FILE_HEADER_LEN + meta_len || !header_len.is_multiple_of(8) {
            return Err(corrupt_hdr(
                12,
                format!("header length {header_len} does not hold {meta_len} bytes of metadata"),
            ));
        }
        if header_len > len {
            return Err(corrupt_hdr(
                12,
                format!("header length {header_len} runs past the end of the {len} byte file"),
            ));
        }
        let meta_bytes = &map[FILE_HEADER_LEN..FILE_HEADER_LEN + meta_len];
        if crc32c::crc32c(meta_bytes) != header.meta_crc {
            return Err(corrupt_hdr(
                FILE_HEADER_LEN as u64,
                "metadata checksum mismatch".into(),
            ));
        }
        let meta = rkyv::from_bytes::<Metadata, rkyv::rancor::Error>(&aligned(meta_bytes))
            .map_err(|e| {
                corrupt_hdr(
                    FILE_HEADER_LEN as u64,
                    format!("metadata does not validate: {e}"),
                )
            })?;

        let mut r = Reader {
            path: p,
            map,
            header,
            meta,
            trailer: None,
            trailer_offset: None,
            entries: Vec::new(),
            recovery: Recovery::default(),
            stats: FileStats::default(),
        };
        let data_end = r.find_trailer();
        r.walk(data_end);
        // The walk touched every chunk header (and, for a file not closed
        // cleanly, every body): none of it needs to stay resident.
        r.release(r.header.header_len as u64, data_end);
        Ok(r)
    }

    /// Reads footer and trailer; returns where the chunk area ends.
    fn find_trailer(&mut self) -> u64 {
        let len = self.map.len() as u64;
        let hl = self.header.header_len as u64;
        if len < hl + (CHUNK_HEADER_LEN + FOOTER_LEN) as u64 {
            return len;
        }
        let Some(f) = Footer::decode(&self.map[(len as usize - FOOTER_LEN)..]) else {
            return len;
        };
        let foot_at = len - FOOTER_LEN as u64;
        if f.trailer_offset < hl
            || f.trailer_len < CHUNK_HEADER_LEN as u64
            || !f.trailer_offset.is_multiple_of(8)
            || f.trailer_offset.checked_add(f.trailer_len) != Some(foot_at)
        {
            self.recovery.trailer_error = Some(format!(
                "footer points to a trailer at {} of {} bytes, outside the chunk area",
                f.trailer_offset, f.trailer_len
            ));
            return len;
        }
        match self.read_trailer(f.trailer_offset, foot_at) {
            Ok(t) => {
                self.trailer = Some(t);
                self.trailer_offset = Some(f.trailer_offset);
                self.recovery.clean_close = true;
            }
            Err(e) => self.recovery.trailer_error = Some(e),
        }
        f.trailer_offset
    }

    fn read_trailer(&self, off: u64, end: u64) -> Result<Trailer, String> {
        let o = off as usize;
        let h = ChunkHeader::decode(&self.map[o..o + CHUNK_HEADER_LEN])
            .map_err(|e| format!("trailer header: {e:?}"))?;
        if h.chunk_type != CHUNK_TRAILER {
            return Err(format!(
                "chunk at {off} has type {}, not the trailer",
                h.chunk_type
            ));
        }
        if off + h.stored_len() != end {
            return Err(format!(
                "trailer length {} does not match the footer",
                h.comp_len
            ));
        }
        if h.raw_len as usize > MAX_TRAILER_RAW {
            return Err(format!(
                "trailer of {} bytes exceeds the {MAX_TRAILER_RAW} byte limit",
                h.raw_len
            ));
        }
        let body = &self.map[o + CHUNK_HEADER_LEN..o + CHUNK_HEADER_LEN + h.comp_len as usize];
        if crc32c::crc32c(body) != h.body_crc {
            return Err("trailer checksum mismatch".into());
        }
        let raw = unpack(body, &h, MAX_TRAILER_RAW)?;
        rkyv::from_bytes::<Trailer, rkyv::rancor::Error>(&aligned(&raw))
            .map_err(|e| format!("trailer does not validate: {e}"))
    }

    /// Walks the chunk headers in `[header_len, data_end)`.
    fn walk(&mut self, data_end: u64) {
        let clean = self.recovery.clean_close;
        self.recovery.bodies_verified = !clean;
        let map = &self.map;
        let end = data_end as usize;
        let mut off = self.header.header_len as usize;
        let mut index = 0u64;
        let mut stats = FileStats::default();
        let mut rec = std::mem::take(&mut self.recovery);
        let mut entries = Vec::new();
        let mut released = off;
        while off < end {
            if off - released >= WALK_RELEASE_EVERY {
                self.release((released as u64).saturating_sub(FAULT_AROUND), off as u64);
                released = off;
            }
            if off + CHUNK_HEADER_LEN > end {
                let rest = &map[off..end];
                let why = if rest.iter().all(|&b| b == 0) {
                    "zero-filled space after the last chunk: the recording was not closed cleanly"
                        .to_string()
                } else {
                    format!(
                        "chunk {index} header truncated: {} of {CHUNK_HEADER_LEN} bytes",
                        end - off
                    )
                };
                rec.stopped_at = Some((off as u64, why));
                break;
            }
            let h = match ChunkHeader::decode(&map[off..off + CHUNK_HEADER_LEN]) {
                Ok(h) => h,
                Err(kind) => {
                    let what = match kind {
                        ChunkHeaderError::Zero => {
                            "zero-filled space where a chunk header should be: the recording was not closed cleanly"
                        }
                        ChunkHeaderError::BadMagic => "torn or corrupt chunk header (bad magic)",
                        ChunkHeaderError::BadCrc => "torn or corrupt chunk header (checksum mismatch)",
                    };
                    match resync(map, off + 8, end) {
                        Some(next) => {
                            let bad = CorruptChunk {
                                index,
                                seq: None,
                                offset: off as u64,
                                reason: format!(
                                    "{what}; skipped {} bytes to the next valid chunk header",
                                    next - off
                                ),
                            };
                            rec.corrupt.push(bad.clone());
                            entries.push(Entry::Bad(bad));
                            index += 1;
                            off = next;
                            continue;
                        }
                        None => {
                            rec.stopped_at = Some((off as u64, format!("chunk {index}: {what}")));
                            break;
                        }
                    }
                }
            };
            let stored = h.stored_len() as usize;
            if h.comp_len as usize > MAX_CHUNK_BODY || off + stored > end {
                rec.stopped_at = Some((
                    off as u64,
                    format!(
                        "chunk {index} (seq {}) truncated: needs {} bytes, {} left",
                        h.seq,
                        CHUNK_HEADER_LEN + h.comp_len as usize,
                        end - off
                    ),
                ));
                break;
            }
            let info = ChunkInfo::from_header(index, off as u64, &h);
            match h.chunk_type {
                CHUNK_EVENTS => {
                    let body =
                        &map[off + CHUNK_HEADER_LEN..off + CHUNK_HEADER_LEN + h.comp_len as usize];
                    if !clean && crc32c::crc32c(body) != h.body_crc {
                        rec.corrupt.push(CorruptChunk {
                            index,
                            seq: Some(h.seq),
                            offset: off as u64,
                            reason: "chunk body checksum mismatch".into(),
                        });
                    } else {
                        rec.chunks_ok += 1;
                        rec.events_ok += h.event_count as u64;
                    }
                    stats.event_chunks += 1;
                    stats.events += h.event_count as u64;
                    stats.raw_bytes += h.raw_len as u64;
                    stats.compressed_bytes += h.comp_len as u64;
                    if h.event_count > 0 {
                        if stats.first_ts == 0 || h.first_ts < stats.first_ts {
                            stats.first_ts = h.first_ts;
                        }
                        stats.last_ts = stats.last_ts.max(h.last_ts);
                    }
                    entries.push(Entry::Chunk(info));
                }
                CHUNK_TRAILER => {
                    // Only reachable without a usable footer.
                    rec.stopped_at = Some((
                        off as u64,
                        "found the trailer but the footer after it is missing or damaged".into(),
                    ));
                    break;
                }
                _ => rec.unknown_chunks += 1,
            }
            off += stored;
            index += 1;
        }
        self.recovery = rec;
        self.entries = entries;
        self.stats = stats;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (major, minor) of the file.
    pub fn version(&self) -> (u16, u16) {
        (self.header.major, self.header.minor)
    }

    /// Length of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Bytes of file header + metadata (= offset of the first chunk).
    pub fn header_len(&self) -> u64 {
        self.header.header_len as u64
    }

    /// Bytes of the archived metadata.
    pub fn metadata_len(&self) -> u64 {
        self.header.meta_len as u64
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The trailer; `None` if the file was not closed cleanly (or the
    /// trailer is damaged: see [`Recovery::trailer_error`]).
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_ref()
    }

    /// File offset of the trailer chunk, if there is a valid one.
    pub fn trailer_offset(&self) -> Option<u64> {
        self.trailer_offset
    }

    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Totals over the event chunks (from their headers).
    pub fn stats(&self) -> &FileStats {
        &self.stats
    }

    /// The event chunks in file order (header-only: cheap). A damaged header
    /// that a valid one follows yields one `Err` naming the chunk number and
    /// offset; the walk then goes on. The end of a file that was not closed
    /// cleanly is not an error here: see [`Reader::recovery`].
    pub fn chunks(&self) -> impl Iterator<Item = Result<ChunkInfo, FormatError>> + '_ {
        self.entries.iter().map(move |e| match e {
            Entry::Chunk(c) => Ok(*c),
            Entry::Bad(b) => Err(self.chunk_err(b.index, b.seq, b.offset, b.reason.clone())),
        })
    }

    fn chunk_err(&self, index: u64, seq: Option<u64>, offset: u64, reason: String) -> FormatError {
        FormatError::CorruptChunk {
            path: self.path.clone(),
            index,
            seq,
            offset,
            reason,
        }
    }

    /// Drop this process's mapping of the pages that hold file bytes
    /// `[from, to)` (rounded out to whole pages): they stay in the page
    /// cache and reading them again maps them back in, with the same bytes.
    /// A reader streaming through a large recording calls this behind itself
    /// (see [`crate::stream`]) so that the file does not add its whole size
    /// to the process's resident memory. Best effort: errors are ignored.
    pub fn release(&self, from: u64, to: u64) {
        let page = page_size();
        let len = self.map.len();
        let start = (from.min(len as u64) as usize) / page * page;
        let end = (to.min(len as u64) as usize).div_ceil(page) * page;
        let end = end.min(len.div_ceil(page) * page);
        if end <= start {
            return;
        }
        // The last page may extend past the map's length: madvise works on
        // whole pages, memmap2 checks the range against the length.
        let n = (end - start).min(len - start);
        // SAFETY: the map is a read-only MAP_SHARED view of a regular file.
        // MADV_DONTNEED only removes this process's page table entries for
        // it; the next read faults the same file bytes back in from the page
        // cache, so slices borrowed from the map stay valid and unchanged
        // (the UB that memmap2 warns of concerns private and anonymous
        // mappings, whose contents DONTNEED discards).
        let _ = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, start, n)
        };
    }

    /// Check the CRC of an event chunk and decompress it (at most 64 MiB).
    pub fn decode(&self, chunk: &ChunkInfo) -> Result<DecodedChunk, FormatError> {
        self.decode_with(chunk, &mut ChunkDecoder::new(), Vec::new())
    }

    /// [`Reader::decode`] reusing a decoder's state and the allocation of
    /// `buf` (its contents are replaced): a reader of many chunks then
    /// neither allocates nor page-faults a fresh buffer per chunk
    /// ([`crate::stream`] hands back the buffers of chunks it is done with).
    /// Same checks, same results.
    pub fn decode_with(
        &self,
        chunk: &ChunkInfo,
        dec: &mut ChunkDecoder,
        buf: Vec<u8>,
    ) -> Result<DecodedChunk, FormatError> {
        let err =
            |reason: String| self.chunk_err(chunk.index, Some(chunk.seq), chunk.offset, reason);
        let off = chunk.offset as usize;
        if off
            .checked_add(CHUNK_HEADER_LEN)
            .is_none_or(|e| e > self.map.len())
        {
            return Err(err("chunk header lies outside the file".into()));
        }
        let h = ChunkHeader::decode(&self.map[off..off + CHUNK_HEADER_LEN])
            .map_err(|e| err(format!("chunk header does not validate ({e:?})")))?;
        if h.chunk_type != CHUNK_EVENTS {
            return Err(err(format!(
                "chunk type {} is not an event chunk",
                h.chunk_type
            )));
        }
        let body_end = off + CHUNK_HEADER_LEN + h.comp_len as usize;
        if h.comp_len as usize > MAX_CHUNK_BODY || body_end > self.map.len() {
            return Err(err(format!(
                "chunk body of {} bytes runs past the end of the file",
                h.comp_len
            )));
        }
        let body = &self.map[off + CHUNK_HEADER_LEN..body_end];
        if crc32c::crc32c(body) != h.body_crc {
            return Err(err("chunk body checksum mismatch".into()));
        }
        let data = unpack_into(body, &h, MAX_EVENTS_RAW, dec, buf).map_err(err)?;
        Ok(DecodedChunk {
            info: ChunkInfo::from_header(chunk.index, chunk.offset, &h),
            data,
        })
    }

    /// Decode every event chunk in order; damaged ones yield their error and
    /// the iteration goes on.
    pub fn decoded_chunks(&self) -> impl Iterator<Item = Result<DecodedChunk, FormatError>> + '_ {
        self.chunks().map(move |c| c.and_then(|c| self.decode(&c)))
    }

    /// Check the body CRC of every event chunk; returns the damaged ones.
    pub fn verify(&self) -> Vec<FormatError> {
        let mut bad = Vec::new();
        for c in self.chunks() {
            match c {
                Err(e) => bad.push(e),
                Ok(c) => {
                    let o = c.offset as usize + CHUNK_HEADER_LEN;
                    if crc32c::crc32c(&self.map[o..o + c.comp_len as usize]) != c.body_crc {
                        bad.push(self.chunk_err(
                            c.index,
                            Some(c.seq),
                            c.offset,
                            "chunk body checksum mismatch".into(),
                        ));
                    }
                }
            }
        }
        bad
    }
}

/// Decoding state kept across chunks: the zstd context (created on first
/// use). One per thread; see [`Reader::decode_with`].
#[derive(Default)]
pub struct ChunkDecoder {
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    columns: ColumnDecoder,
    /// The decompressed columnar body, before it becomes rows.
    scratch: Vec<u8>,
}

impl ChunkDecoder {
    pub fn new() -> ChunkDecoder {
        ChunkDecoder::default()
    }
}

impl std::fmt::Debug for ChunkDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkDecoder")
            .field("zstd", &self.zstd.is_some())
            .finish()
    }
}

/// Body -> raw bytes, never more than `limit` (nor than `raw_len`).
fn unpack(body: &[u8], h: &ChunkHeader, limit: usize) -> Result<Vec<u8>, String> {
    unpack_into(body, h, limit, &mut ChunkDecoder::new(), Vec::new())
}

/// [`unpack`] into `out` (its contents are replaced, its allocation reused)
/// with `dec`'s zstd context.
fn unpack_into(
    body: &[u8],
    h: &ChunkHeader,
    limit: usize,
    dec: &mut ChunkDecoder,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let raw_len = h.raw_len as usize;
    if raw_len > limit {
        return Err(format!(
            "raw length {raw_len} exceeds the {limit} byte limit"
        ));
    }
    if h.flags & !CHUNK_F_KNOWN != 0 {
        return Err(format!("unsupported chunk flags {:#06x}", h.flags));
    }
    if h.flags & CHUNK_F_COLUMNS == 0 {
        return decompress_into(body, h, dec, out);
    }
    if h.chunk_type != CHUNK_EVENTS {
        return Err(format!("chunk type {} cannot be columnar", h.chunk_type));
    }
    let cols = std::mem::take(&mut dec.scratch);
    let cols = decompress_into(body, h, dec, cols);
    let res = match &cols {
        Ok(c) => dec
            .columns
            .decode_into(c, limit, &mut out)
            .map(|n| (n, out)),
        Err(e) => Err(e.clone()),
    };
    if let Ok(c) = cols {
        dec.scratch = c;
    }
    let (n, out) = res?;
    if n != h.event_count as usize {
        return Err(format!(
            "columnar body holds {n} records, the header says {}",
            h.event_count
        ));
    }
    Ok(out)
}

/// The body of a chunk as Raw Length bytes: decompressed, or copied when
/// not compressed.
fn decompress_into(
    body: &[u8],
    h: &ChunkHeader,
    dec: &mut ChunkDecoder,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let raw_len = h.raw_len as usize;
    if h.flags & CHUNK_F_ZSTD == 0 {
        if body.len() != raw_len {
            return Err(format!(
                "stored body is {} bytes, header says {raw_len}",
                body.len()
            ));
        }
        out.clear();
        out.extend_from_slice(body);
        return Ok(out);
    }
    let z = match &mut dec.zstd {
        Some(z) => z,
        slot => slot.insert(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?),
    };
    out.clear();
    // Room for exactly raw_len bytes (a reused buffer may have more: then
    // an oversized frame is caught by the length check below).
    out.reserve_exact(raw_len);
    z.decompress_to_buffer(body, &mut out)
        .map_err(|e| format!("zstd: {e}"))?;
    if out.len() != raw_len {
        return Err(format!(
            "decompressed to {} bytes, header says {raw_len}",
            out.len()
        ));
    }
    Ok(out)
}

/// How far behind a read the kernel may map file pages on its own: a page
/// fault maps the aligned block around the faulting page (`fault_around_bytes`,
/// 64 KiB by default), so pages just released before a read can come back.
/// Releases behind a sequential reader reach back this far.
pub(crate) const FAULT_AROUND: u64 = 256 << 10;

/// Bytes of file the walk at open reads before it releases them.
const WALK_RELEASE_EVERY: usize = 8 << 20;

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Next 8-aligned offset in `[from, end)` that holds a valid chunk header.
fn resync(map: &[u8], from: usize, end: usize) -> Option<usize> {
    let mut o = layout::pad8(from);
    while o + CHUNK_HEADER_LEN <= end {
        if map[o..o + 4] == CHUNK_MAGIC
            && ChunkHeader::decode(&map[o..o + CHUNK_HEADER_LEN]).is_ok()
        {
            return Some(o);
        }
        o += 8;
    }
    None
}
