//! Chunks: batches of raw event records, laid out as rows or columns
//! ([`crate::columnar`]), compressed as one zstd frame and framed by a
//! [`crate::layout::ChunkHeader`]. Encoding is separate from the
//! [`Writer`](crate::writer::Writer) ([`ChunkEncoder`], [`encode_chunk`]) so
//! the recorder can compress on its own thread and hand the finished bytes
//! to the writer.

use crate::columnar::ColumnEncoder;
use crate::error::FormatError;
use crate::event;
use crate::layout::{
    self, ChunkHeader, CHUNK_EVENTS, CHUNK_F_COLUMNS, CHUNK_F_ZSTD, CHUNK_HEADER_LEN,
    MAX_EVENTS_RAW,
};

/// A chunk ready to be appended: header, compressed body and padding.
#[derive(Clone, Debug)]
pub struct EncodedChunk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) header: ChunkHeader,
}

impl EncodedChunk {
    /// The chunk as it will be stored (header + body + zero padding to 8).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn seq(&self) -> u64 {
        self.header.seq
    }
    pub fn event_count(&self) -> u32 {
        self.header.event_count
    }
    pub fn first_ts(&self) -> u64 {
        self.header.first_ts
    }
    pub fn last_ts(&self) -> u64 {
        self.header.last_ts
    }
    /// Bytes of records before compression.
    pub fn raw_len(&self) -> u32 {
        self.header.raw_len
    }
    /// Bytes of the compressed body.
    pub fn comp_len(&self) -> u32 {
        self.header.comp_len
    }
}

/// How an event chunk's records are laid out before compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChunkCodec {
    /// The records as the ring buffer gave them (format 1.0's only layout).
    Rows,
    /// The columnar layout (format 1.1, SPEC.md Section 5.2).
    Columns,
    /// Columns for chunks of at least [`AUTO_COLUMNS_MIN`] bytes of records;
    /// smaller chunks are compressed both ways and the smaller kept (the
    /// columnar tables cost more than they save on a few records).
    #[default]
    Auto,
}

/// Record bytes from which [`ChunkCodec::Auto`] uses columns without trying rows.
pub const AUTO_COLUMNS_MIN: usize = 64 << 10;

/// Compresses chunks, keeping its zstd context and buffers from one chunk
/// to the next (one per compressing thread).
pub struct ChunkEncoder {
    level: i32,
    codec: ChunkCodec,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    columns: ColumnEncoder,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for ChunkEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkEncoder")
            .field("level", &self.level)
            .field("codec", &self.codec)
            .finish()
    }
}

impl ChunkEncoder {
    /// An encoder compressing at zstd `level` with `codec`.
    pub fn new(level: i32, codec: ChunkCodec) -> ChunkEncoder {
        ChunkEncoder {
            level,
            codec,
            zstd: None,
            columns: ColumnEncoder::new(),
            scratch: Vec::new(),
        }
    }

    fn compress(&mut self, seq: u64, data: &[u8]) -> Result<Vec<u8>, FormatError> {
        let level = self.level;
        let err = |e: std::io::Error| FormatError::InvalidInput {
            reason: format!("chunk {seq}: zstd compression at level {level} failed: {e}"),
        };
        let z = match &mut self.zstd {
            Some(z) => z,
            slot => slot.insert(zstd::bulk::Compressor::new(level).map_err(err)?),
        };
        z.compress(data).map_err(err)
    }

    /// Compress `records` (event records back to back, as the ring buffer
    /// gave them, at most 64 MiB) into one chunk.
    pub fn encode(
        &mut self,
        seq: u64,
        records: &[u8],
        event_count: u32,
        first_ts: u64,
        last_ts: u64,
    ) -> Result<EncodedChunk, FormatError> {
        if records.len() > MAX_EVENTS_RAW {
            return Err(FormatError::InvalidInput {
                reason: format!(
                    "chunk {seq}: {} bytes of records exceed the {} byte chunk limit",
                    records.len(),
                    MAX_EVENTS_RAW
                ),
            });
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let columns = self.codec != ChunkCodec::Rows
            && !records.is_empty()
            && self.columns.encode_into(records, &mut scratch)
            && scratch.len() <= MAX_EVENTS_RAW;
        let result = (|| {
            let (flags, raw_len, body) = if !columns {
                (CHUNK_F_ZSTD, records.len(), self.compress(seq, records)?)
            } else {
                let cols = self.compress(seq, &scratch)?;
                if self.codec == ChunkCodec::Auto && records.len() < AUTO_COLUMNS_MIN {
                    let rows = self.compress(seq, records)?;
                    if rows.len() <= cols.len() {
                        (CHUNK_F_ZSTD, records.len(), rows)
                    } else {
                        (CHUNK_F_ZSTD | CHUNK_F_COLUMNS, scratch.len(), cols)
                    }
                } else {
                    (CHUNK_F_ZSTD | CHUNK_F_COLUMNS, scratch.len(), cols)
                }
            };
            let header = ChunkHeader {
                chunk_type: CHUNK_EVENTS,
                flags,
                seq,
                first_ts,
                last_ts,
                event_count,
                raw_len: raw_len as u32,
                ..Default::default()
            };
            Ok(build(header, body))
        })();
        self.scratch = scratch;
        result
    }
}

/// Compress `records` (event records back to back, as the ring buffer gave
/// them) into one chunk with [`ChunkCodec::Auto`]. `records` may hold at
/// most 64 MiB. A [`ChunkEncoder`] does the same without setting up zstd
/// and its buffers for every chunk.
pub fn encode_chunk(
    seq: u64,
    records: &[u8],
    event_count: u32,
    first_ts: u64,
    last_ts: u64,
    zstd_level: i32,
) -> Result<EncodedChunk, FormatError> {
    ChunkEncoder::new(zstd_level, ChunkCodec::Auto).encode(
        seq,
        records,
        event_count,
        first_ts,
        last_ts,
    )
}

/// Frame `body` with `header`, whose stored length and body CRC are filled in here.
pub(crate) fn build(mut header: ChunkHeader, body: Vec<u8>) -> EncodedChunk {
    header.comp_len = body.len() as u32;
    header.body_crc = crc32c::crc32c(&body);
    let mut bytes = Vec::with_capacity(CHUNK_HEADER_LEN + layout::pad8(body.len()));
    bytes.extend_from_slice(&header.encode());
    bytes.extend_from_slice(&body);
    bytes.resize(CHUNK_HEADER_LEN + layout::pad8(body.len()), 0);
    EncodedChunk { bytes, header }
}

/// Collects records for one chunk and tracks count and first/last timestamp.
#[derive(Default, Debug)]
pub struct ChunkBuilder {
    buf: Vec<u8>,
    count: u32,
    first_ts: u64,
    last_ts: u64,
}

impl ChunkBuilder {
    pub fn new() -> ChunkBuilder {
        ChunkBuilder::default()
    }

    /// Append one record (must start with a valid `st_hdr` whose `len` equals
    /// `rec.len()`). Timestamps need not be ordered: first/last are min/max.
    pub fn push(&mut self, rec: &[u8]) -> Result<(), FormatError> {
        if rec.len() < event::HDR_LEN {
            return Err(FormatError::InvalidInput {
                reason: format!("record of {} bytes is shorter than a header", rec.len()),
            });
        }
        let hdr: event::Hdr = bytemuck::pod_read_unaligned(&rec[..event::HDR_LEN]);
        if hdr.len as usize != rec.len() || !rec.len().is_multiple_of(8) {
            return Err(FormatError::InvalidInput {
                reason: format!(
                    "record of kind {} has hdr.len {} but {} bytes",
                    hdr.kind,
                    hdr.len,
                    rec.len()
                ),
            });
        }
        if self.buf.len() + rec.len() > MAX_EVENTS_RAW {
            return Err(FormatError::InvalidInput {
                reason: format!("chunk would exceed {} bytes", MAX_EVENTS_RAW),
            });
        }
        if self.count == 0 {
            self.first_ts = hdr.ts_ns;
            self.last_ts = hdr.ts_ns;
        } else {
            self.first_ts = self.first_ts.min(hdr.ts_ns);
            self.last_ts = self.last_ts.max(hdr.ts_ns);
        }
        self.buf.extend_from_slice(rec);
        self.count += 1;
        Ok(())
    }

    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }
    pub fn event_count(&self) -> u32 {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Compress what was collected into a chunk and start over.
    pub fn take(&mut self, seq: u64, zstd_level: i32) -> Result<EncodedChunk, FormatError> {
        let c = encode_chunk(
            seq,
            &self.buf,
            self.count,
            self.first_ts,
            self.last_ts,
            zstd_level,
        )?;
        self.buf.clear();
        self.count = 0;
        Ok(c)
    }
}

/// A chunk as found in a file: its header fields and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Position among all chunks of the file (0-based, unknown types counted).
    pub index: u64,
    /// File offset of the chunk header.
    pub offset: u64,
    pub chunk_type: u16,
    pub flags: u16,
    pub seq: u64,
    pub event_count: u32,
    pub first_ts: u64,
    pub last_ts: u64,
    pub raw_len: u32,
    pub comp_len: u32,
    pub body_crc: u32,
}

impl ChunkInfo {
    pub(crate) fn from_header(index: u64, offset: u64, h: &ChunkHeader) -> ChunkInfo {
        ChunkInfo {
            index,
            offset,
            chunk_type: h.chunk_type,
            flags: h.flags,
            seq: h.seq,
            event_count: h.event_count,
            first_ts: h.first_ts,
            last_ts: h.last_ts,
            raw_len: h.raw_len,
            comp_len: h.comp_len,
            body_crc: h.body_crc,
        }
    }

    /// Bytes the chunk occupies in the file.
    pub fn stored_len(&self) -> u64 {
        (CHUNK_HEADER_LEN + layout::pad8(self.comp_len as usize)) as u64
    }
}

/// A decompressed event chunk; its records borrow from it.
#[derive(Clone, Debug)]
pub struct DecodedChunk {
    pub(crate) info: ChunkInfo,
    pub(crate) data: Vec<u8>,
}

impl DecodedChunk {
    /// The event records, zero-copy over the decompressed bytes.
    pub fn records(&self) -> event::Records<'_> {
        event::records(&self.data)
    }
    pub fn info(&self) -> &ChunkInfo {
        &self.info
    }
    /// The raw records, back to back.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}
