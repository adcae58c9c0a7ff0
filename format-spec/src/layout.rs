//! The fixed-size structures of a `.smctrace` file — file header, chunk
//! header, footer — with their constants and limits, encoded and decoded by
//! hand in little-endian so the bytes are exactly those drawn in SPEC.md.

/// `\x89SMCT\r\n\x1a`: the high byte catches 7-bit transfers, CR LF catches
/// newline conversion, 0x1a stops `type` on DOS (as PNG does).
pub const FILE_MAGIC: [u8; 8] = *b"\x89SMCT\r\n\x1a";
pub const CHUNK_MAGIC: [u8; 4] = *b"SCHK";
pub const FOOTER_MAGIC: [u8; 8] = *b"SMCTFOOT";

/// Major version: bumped on any change an older reader would misread.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version: bumped on compatible additions (new chunk types, new event
/// kinds, longer event bodies, new `extra` keys).
pub const VERSION_MINOR: u16 = 1;

pub const FILE_HEADER_LEN: usize = 64;
pub const CHUNK_HEADER_LEN: usize = 56;
pub const FOOTER_LEN: usize = 32;

/// Chunk types.
pub const CHUNK_EVENTS: u16 = 1;
pub const CHUNK_TRAILER: u16 = 2;

/// Chunk flags: the body is one zstd frame.
pub const CHUNK_F_ZSTD: u16 = 0x0001;
/// Chunk flags (format 1.1, event chunks): the (decompressed) body is in the
/// columnar layout of SPEC.md Section 5.2, which decodes to the row records.
pub const CHUNK_F_COLUMNS: u16 = 0x0002;
/// The chunk flags this build reads.
pub const CHUNK_F_KNOWN: u16 = CHUNK_F_ZSTD | CHUNK_F_COLUMNS;

/// Largest metadata block a reader accepts.
pub const MAX_METADATA_LEN: usize = 16 << 20;
/// Largest decompressed event chunk.
pub const MAX_EVENTS_RAW: usize = 64 << 20;
/// Largest decompressed trailer (its chunk index alone holds 1.6 million
/// chunks in this much; the bound keeps a hostile trailer's deserialized
/// size well under a gigabyte).
pub const MAX_TRAILER_RAW: usize = 64 << 20;
/// Largest stored chunk body of any type (zstd's worst case for the largest raw size).
pub const MAX_CHUNK_BODY: usize = MAX_TRAILER_RAW + (MAX_TRAILER_RAW >> 7) + (1 << 20);

pub fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// The 64-byte file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    pub major: u16,
    pub minor: u16,
    /// Offset of the first chunk: 64 + metadata, padded to 8.
    pub header_len: u32,
    pub meta_len: u32,
    pub meta_crc: u32,
    pub flags: u32,
}

impl FileHeader {
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut b = [0u8; FILE_HEADER_LEN];
        b[0..8].copy_from_slice(&FILE_MAGIC);
        b[8..10].copy_from_slice(&self.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.minor.to_le_bytes());
        b[12..16].copy_from_slice(&self.header_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.meta_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.meta_crc.to_le_bytes());
        b[24..28].copy_from_slice(&self.flags.to_le_bytes());
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Fields of a header whose magic the caller already checked; the CRC
    /// is checked here (after the version, so a future major version is
    /// reported as such even if it redefined the header).
    pub fn decode(b: &[u8; FILE_HEADER_LEN]) -> FileHeader {
        FileHeader {
            major: u16_at(b, 8),
            minor: u16_at(b, 10),
            header_len: u32_at(b, 12),
            meta_len: u32_at(b, 16),
            meta_crc: u32_at(b, 20),
            flags: u32_at(b, 24),
        }
    }

    pub fn crc_ok(b: &[u8; FILE_HEADER_LEN]) -> bool {
        crc32c::crc32c(&b[..60]) == u32_at(b, 60)
    }
}

/// The 56-byte header in front of every chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChunkHeader {
    pub chunk_type: u16,
    pub flags: u16,
    pub seq: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    pub event_count: u32,
    pub raw_len: u32,
    pub comp_len: u32,
    pub body_crc: u32,
}

/// Why 56 bytes are not a valid chunk header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkHeaderError {
    /// All zero: space the writer reserved but never filled.
    Zero,
    BadMagic,
    BadCrc,
}

impl ChunkHeader {
    pub fn encode(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut b = [0u8; CHUNK_HEADER_LEN];
        b[0..4].copy_from_slice(&CHUNK_MAGIC);
        b[4..6].copy_from_slice(&self.chunk_type.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.first_ts.to_le_bytes());
        b[24..32].copy_from_slice(&self.last_ts.to_le_bytes());
        b[32..36].copy_from_slice(&self.event_count.to_le_bytes());
        b[36..40].copy_from_slice(&self.raw_len.to_le_bytes());
        b[40..44].copy_from_slice(&self.comp_len.to_le_bytes());
        b[44..48].copy_from_slice(&self.body_crc.to_le_bytes());
        // 48..52 reserved, zero
        let crc = crc32c::crc32c(&b[..52]);
        b[52..56].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<ChunkHeader, ChunkHeaderError> {
        let b = &b[..CHUNK_HEADER_LEN];
        if b[0..4] != CHUNK_MAGIC {
            return Err(if b.iter().all(|&x| x == 0) {
                ChunkHeaderError::Zero
            } else {
                ChunkHeaderError::BadMagic
            });
        }
        if crc32c::crc32c(&b[..52]) != u32_at(b, 52) {
            return Err(ChunkHeaderError::BadCrc);
        }
        Ok(ChunkHeader {
            chunk_type: u16_at(b, 4),
            flags: u16_at(b, 6),
            seq: u64_at(b, 8),
            first_ts: u64_at(b, 16),
            last_ts: u64_at(b, 24),
            event_count: u32_at(b, 32),
            raw_len: u32_at(b, 36),
            comp_len: u32_at(b, 40),
            body_crc: u32_at(b, 44),
        })
    }

    /// Bytes the whole chunk occupies in the file (header, body, padding).
    pub fn stored_len(&self) -> u64 {
        (CHUNK_HEADER_LEN + pad8(self.comp_len as usize)) as u64
    }
}

/// The 32-byte footer at the very end of a cleanly closed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    pub trailer_offset: u64,
    pub trailer_len: u64,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..8].copy_from_slice(&FOOTER_MAGIC);
        b[8..16].copy_from_slice(&self.trailer_offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.trailer_len.to_le_bytes());
        let crc = crc32c::crc32c(&b[..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Footer> {
        let b = &b[..FOOTER_LEN];
        if b[0..8] != FOOTER_MAGIC || crc32c::crc32c(&b[..24]) != u32_at(b, 24) {
            return None;
        }
        Some(Footer {
            trailer_offset: u64_at(b, 8),
            trailer_len: u64_at(b, 16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli_as_spec_says() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn headers_round_trip_and_detect_damage() {
        let h = ChunkHeader {
            chunk_type: CHUNK_EVENTS,
            flags: CHUNK_F_ZSTD,
            seq: 5,
            first_ts: 10,
            last_ts: 20,
            event_count: 3,
            raw_len: 100,
            comp_len: 50,
            body_crc: 0xdead_beef,
        };
        let mut b = h.encode();
        assert_eq!(ChunkHeader::decode(&b), Ok(h));
        assert_eq!(h.stored_len(), 56 + 56);
        b[9] ^= 1;
        assert_eq!(ChunkHeader::decode(&b), Err(ChunkHeaderError::BadCrc));
        b[0] = b'X';
        assert_eq!(ChunkHeader::decode(&b), Err(ChunkHeaderError::BadMagic));
        assert_eq!(
            ChunkHeader::decode(&[0u8; CHUNK_HEADER_LEN]),
            Err(ChunkHeaderError::Zero)
        );

        let f = Footer {
            trailer_offset: 4096,
            trailer_len: 200,
        };
        let mut fb = f.encode();
        assert_eq!(Footer::decode(&fb), Some(f));
        fb[10] ^= 4;
        assert_eq!(Footer::decode(&fb), None);

        let fh = FileHeader {
            major: 1,
            minor: 0,
            header_len: 128,
            meta_len: 60,
            meta_crc: 7,
            flags: 0,
        };
        let hb = fh.encode();
        assert!(FileHeader::crc_ok(&hb));
        assert_eq!(FileHeader::decode(&hb), fh);
    }
}
