//! The columnar layout of an event chunk's body (format 1.1, chunk flag
//! `CHUNK_F_COLUMNS`, SPEC.md Section 5.2). Row records compress to ~10-12
//! bytes per event with zstd level 1 because every record carries absolute
//! 64-bit times, socket ids and cursors whose bytes differ in every record.
//! Grouping the records by (kind, length), delta-coding each group's
//! timestamps, xor-ing its socket ids, storing `enter_ns` as a duration and
//! transposing each group into byte planes (byte 0 of every record, then
//! byte 1, ...) turns those into long runs of zeros and repeats that zstd
//! takes to ~7 bytes per event on the lab's recordings.
//!
//! Speed matters here as much as size: the recorder compresses 10M+ events
//! per second per core and the analyzer reads 30M+. So the transform is two
//! linear passes: records are copied (and delta-coded) into one contiguous
//! row block per group, then each block is transposed 8 records x 8 bytes at
//! a time with word operations; decoding does the same backwards. Both keep
//! their buffers between chunks ([`ColumnEncoder`], [`ColumnDecoder`]).
//!
//! Layout (all little-endian), exactly as SPEC.md Section 5.2 draws it:
//! `u32 n` records, `u32 rows_len` (bytes of the row records it decodes to),
//! `u16 g` groups, `u16` zero; per group `u16 kind, u16 len, u32 count`; the
//! group index of every record in file order (`u8` each when `g <= 256`,
//! else `u16`); then per group its `len * count` bytes as byte planes of the
//! changed records: `ts_ns` (offset 8) minus the previous `ts_ns` of the
//! group (the first: minus 0); `sock` (offset 24, records of >= 32 bytes)
//! xor the previous `sock` of the group; for the kinds that carry `enter_ns`
//! at offset 32 (16, 17, 19, 33, 35; records of >= 40 bytes) `ts_ns -
//! enter_ns` there. All arithmetic wraps. Decoding checks every count against
//! the input and the caller's limit before it allocates, and never panics.

/// Kinds whose record holds `enter_ns` at offset 32.
const ENTER_KINDS: [u16; 5] = [16, 17, 19, 33, 35];

/// Bytes before the group table.
const HEAD_LEN: usize = 12;
/// Bytes per group-table entry.
const GROUP_LEN: usize = 8;

#[inline(always)]
fn rd_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
#[inline(always)]
fn rd_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
#[inline(always)]
fn rd_u64(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}
#[inline(always)]
fn wr_u64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// Transpose an 8x8 byte matrix held as 8 little-endian words (word r =
/// row r, byte c of it = column c) in place: afterwards word c holds column c.
#[inline(always)]
fn transpose8(x: &mut [u64; 8]) {
    for r in 0..4 {
        let t = ((x[r] >> 32) ^ x[r + 4]) & 0x0000_0000_FFFF_FFFF;
        x[r] ^= t << 32;
        x[r + 4] ^= t;
    }
    for r in [0, 1, 4, 5] {
        let t = ((x[r] >> 16) ^ x[r + 2]) & 0x0000_FFFF_0000_FFFF;
        x[r] ^= t << 16;
        x[r + 2] ^= t;
    }
    for r in [0, 2, 4, 6] {
        let t = ((x[r] >> 8) ^ x[r + 1]) & 0x00FF_00FF_00FF_00FF;
        x[r] ^= t << 8;
        x[r + 1] ^= t;
    }
}

/// `planes[i * count + j] = rows[j * len + i]` for `count` rows of `len`
/// bytes (`len` a multiple of 8).
fn rows_to_planes(rows: &[u8], len: usize, count: usize, planes: &mut [u8]) {
    let full = count & !7;
    let mut x = [0u64; 8];
    for j in (0..full).step_by(8) {
        for i in (0..len).step_by(8) {
            for (r, w) in x.iter_mut().enumerate() {
                *w = rd_u64(rows, (j + r) * len + i);
            }
            transpose8(&mut x);
            for (b, w) in x.iter().enumerate() {
                wr_u64(planes, (i + b) * count + j, *w);
            }
        }
    }
    for j in full..count {
        for i in 0..len {
            planes[i * count + j] = rows[j * len + i];
        }
    }
}

/// The inverse of [`rows_to_planes`], each row written at its own offset of
/// `out`: row `j` (of `dest.len()` rows of `len` bytes) goes to `out[dest[j]..]`.
fn planes_to_places(planes: &[u8], len: usize, dest: &[usize], out: &mut [u8]) {
    let count = dest.len();
    let full = count & !7;
    // Column block by column block: the eight planes of a block as slices
    // of one length, so that reading them needs no further bounds checks.
    for i in (0..len).step_by(8) {
        let p: [&[u8]; 8] = std::array::from_fn(|b| &planes[(i + b) * count..(i + b + 1) * count]);
        for (jb, d) in dest[..full].chunks_exact(8).enumerate() {
            let j = jb * 8;
            let mut x: [u64; 8] = std::array::from_fn(|b| rd_u64(p[b], j));
            transpose8(&mut x);
            for (r, w) in x.iter().enumerate() {
                wr_u64(out, d[r] + i, *w);
            }
        }
    }
    for (j, &at) in dest.iter().enumerate().skip(full) {
        for i in 0..len {
            out[at + i] = planes[i * count + j];
        }
    }
}

/// One (kind, length) group while encoding.
#[derive(Debug, Default)]
struct EncGroup {
    kind: u16,
    len: u16,
    count: u32,
    enter: bool,
    prev_ts: u64,
    prev_sock: u64,
    rows: Vec<u8>,
}

/// Encodes chunks into the columnar layout, keeping its buffers from one
/// chunk to the next (one per compressing thread).
#[derive(Debug)]
pub struct ColumnEncoder {
    groups: Vec<EncGroup>,
    used: usize,
    /// Group of a kind below 64 (plus one; 0 = look it up), for the common
    /// case of one length per kind.
    by_kind: [u16; 64],
    index: Vec<u16>,
}

impl Default for ColumnEncoder {
    fn default() -> ColumnEncoder {
        ColumnEncoder {
            groups: Vec::new(),
            used: 0,
            by_kind: [0; 64],
            index: Vec::new(),
        }
    }
}

impl ColumnEncoder {
    pub fn new() -> ColumnEncoder {
        ColumnEncoder::default()
    }

    fn group_of(&mut self, kind: u16, len: u16) -> Option<usize> {
        if (kind as usize) < self.by_kind.len() {
            let g = self.by_kind[kind as usize] as usize;
            if g != 0 && self.groups[g - 1].len == len {
                return Some(g - 1);
            }
        }
        let found = self.groups[..self.used]
            .iter()
            .position(|g| g.kind == kind && g.len == len);
        let gi = match found {
            Some(gi) => gi,
            None => {
                if self.used == u16::MAX as usize {
                    return None;
                }
                if self.used == self.groups.len() {
                    self.groups.push(EncGroup::default());
                }
                let g = &mut self.groups[self.used];
                g.kind = kind;
                g.len = len;
                g.count = 0;
                g.enter = len >= 40 && ENTER_KINDS.contains(&kind);
                g.prev_ts = 0;
                g.prev_sock = 0;
                g.rows.clear();
                self.used += 1;
                self.used - 1
            }
        };
        if (kind as usize) < self.by_kind.len() {
            self.by_kind[kind as usize] = gi as u16 + 1;
        }
        Some(gi)
    }

    /// Append the columnar form of `records` (back-to-back records, each
    /// `len` from its header, >= 24 and a multiple of 8) to `out`. `false`
    /// (and `out` as it was) if the input is not such a sequence or has more
    /// than 65535 (kind, length) groups: the caller then keeps the rows.
    pub fn encode_into(&mut self, records: &[u8], out: &mut Vec<u8>) -> bool {
        self.used = 0;
        self.by_kind = [0; 64];
        self.index.clear();
        let mut o = 0;
        while o < records.len() {
            if o + 24 > records.len() {
                return false;
            }
            let (kind, len) = (rd_u16(records, o), rd_u16(records, o + 2));
            let l = len as usize;
            if l < 24 || !l.is_multiple_of(8) || o + l > records.len() {
                return false;
            }
            let Some(gi) = self.group_of(kind, len) else {
                return false;
            };
            self.index.push(gi as u16);
            let g = &mut self.groups[gi];
            let base = g.rows.len();
            g.rows.extend_from_slice(&records[o..o + l]);
            let row = &mut g.rows[base..];
            let ts = rd_u64(row, 8);
            if g.enter {
                let e = rd_u64(row, 32);
                wr_u64(row, 32, ts.wrapping_sub(e));
            }
            wr_u64(row, 8, ts.wrapping_sub(g.prev_ts));
            g.prev_ts = ts;
            if l >= 32 {
                let s = rd_u64(row, 24);
                wr_u64(row, 24, s ^ g.prev_sock);
                g.prev_sock = s;
            }
            g.count += 1;
            o += l;
        }
        let (Ok(n), Ok(rows_len)) = (
            u32::try_from(self.index.len()),
            u32::try_from(records.len()),
        ) else {
            return false;
        };
        let groups = &self.groups[..self.used];
        let wide = groups.len() > 256;
        let start = out.len();
        out.reserve(
            HEAD_LEN
                + GROUP_LEN * groups.len()
                + self.index.len() * (1 + wide as usize)
                + records.len(),
        );
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&rows_len.to_le_bytes());
        out.extend_from_slice(&(groups.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        for g in groups {
            out.extend_from_slice(&g.kind.to_le_bytes());
            out.extend_from_slice(&g.len.to_le_bytes());
            out.extend_from_slice(&g.count.to_le_bytes());
        }
        if wide {
            for w in &self.index {
                out.extend_from_slice(&w.to_le_bytes());
            }
        } else {
            out.extend(self.index.iter().map(|&w| w as u8));
        }
        let mut at = out.len();
        out.resize(at + records.len(), 0);
        for g in groups {
            let bytes = g.rows.len();
            rows_to_planes(
                &g.rows,
                g.len as usize,
                g.count as usize,
                &mut out[at..at + bytes],
            );
            at += bytes;
        }
        debug_assert_eq!(at, out.len());
        debug_assert!(out.len() > start);
        true
    }
}

/// One group's table entry and decoding state.
#[derive(Debug, Default, Clone, Copy)]
struct DecGroup {
    len: usize,
    count: usize,
    enter: bool,
    /// The group's first slot in the decoder's destination table.
    first: usize,
    /// Records of the group placed so far.
    next: usize,
}

/// Decodes columnar chunk bodies back into row records, keeping its buffers
/// from one chunk to the next (one per decoding thread).
#[derive(Debug, Default)]
pub struct ColumnDecoder {
    groups: Vec<DecGroup>,
    /// Output offset of every record, group by group.
    dest: Vec<usize>,
}

impl ColumnDecoder {
    pub fn new() -> ColumnDecoder {
        ColumnDecoder::default()
    }

    /// Replace the contents of `out` with the row records of the columnar
    /// body `data`, at most `limit` bytes of them; returns how many records.
    /// Any inconsistency is an error naming it; nothing is allocated before
    /// the sizes are checked.
    pub fn decode_into(
        &mut self,
        data: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, String> {
        let short = |what: &str| format!("columnar body truncated in {what}");
        if data.len() < HEAD_LEN {
            return Err(short("its counts"));
        }
        let n = rd_u32(data, 0) as usize;
        let rows_len = rd_u32(data, 4) as usize;
        let g = rd_u16(data, 8) as usize;
        if rows_len > limit {
            return Err(format!(
                "columnar body would decode to {rows_len} bytes, limit {limit}"
            ));
        }
        let mut o = HEAD_LEN;
        if data.len() - o < GROUP_LEN * g {
            return Err(short("the group table"));
        }
        self.groups.clear();
        let (mut total_n, mut total_bytes) = (0usize, 0usize);
        for _ in 0..g {
            let (kind, len, count) = (
                rd_u16(data, o),
                rd_u16(data, o + 2) as usize,
                rd_u32(data, o + 4) as usize,
            );
            o += GROUP_LEN;
            if len < 24 || len % 8 != 0 {
                return Err(format!(
                    "column group of kind {kind} has record length {len}"
                ));
            }
            let bytes = len
                .checked_mul(count)
                .ok_or("column group size overflows")?;
            self.groups.push(DecGroup {
                len,
                count,
                enter: len >= 40 && ENTER_KINDS.contains(&kind),
                ..DecGroup::default()
            });
            total_n = total_n.checked_add(count).ok_or("record count overflows")?;
            total_bytes = total_bytes
                .checked_add(bytes)
                .ok_or("record bytes overflow")?;
        }
        if total_n != n {
            return Err(format!(
                "column groups hold {total_n} records, the header says {n}"
            ));
        }
        if total_bytes != rows_len {
            return Err(format!(
                "column groups hold {total_bytes} bytes, the header says {rows_len}"
            ));
        }
        let wide = g > 256;
        let idx_len = if wide { 2 * n } else { n };
        if data.len() - o != idx_len.saturating_add(rows_len) {
            return Err(format!(
                "columnar body is {} bytes, its tables say {}",
                data.len(),
                o.saturating_add(idx_len).saturating_add(rows_len)
            ));
        }
        let idx = &data[o..o + idx_len];
        o += idx_len;
        // Where every record of every group goes in the output (checking
        // that the index names each group exactly its count of times).
        self.dest.clear();
        self.dest.resize(n, 0);
        let mut first = 0;
        for gr in self.groups.iter_mut() {
            gr.first = first;
            first += gr.count;
        }
        let mut at = 0;
        for r in 0..n {
            let gi = if wide {
                rd_u16(idx, 2 * r) as usize
            } else {
                idx[r] as usize
            };
            let Some(gr) = self.groups.get_mut(gi) else {
                return Err(format!("record {r} names column group {gi} of {g}"));
            };
            if gr.next >= gr.count {
                return Err(format!(
                    "column group {gi} is named more than its {} records",
                    gr.count
                ));
            }
            self.dest[gr.first + gr.next] = at;
            gr.next += 1;
            at += gr.len;
        }
        // Planes straight into place, then the per-record changes undone in
        // each group's order.
        out.clear();
        out.resize(rows_len, 0);
        for gr in &self.groups {
            let bytes = gr.len * gr.count;
            let dest = &self.dest[gr.first..gr.first + gr.count];
            planes_to_places(&data[o..o + bytes], gr.len, dest, out);
            o += bytes;
            let (mut prev_ts, mut prev_sock) = (0u64, 0u64);
            for &at in dest {
                let row = &mut out[at..at + gr.len];
                let ts = prev_ts.wrapping_add(rd_u64(row, 8));
                wr_u64(row, 8, ts);
                prev_ts = ts;
                if gr.len >= 32 {
                    let s = rd_u64(row, 24) ^ prev_sock;
                    wr_u64(row, 24, s);
                    prev_sock = s;
                }
                if gr.enter {
                    let e = ts.wrapping_sub(rd_u64(row, 32));
                    wr_u64(row, 32, e);
                }
            }
        }
        Ok(n)
    }
}

/// [`ColumnEncoder::encode_into`] with a fresh encoder and output.
pub fn encode(records: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    ColumnEncoder::new()
        .encode_into(records, &mut out)
        .then_some(out)
}

/// [`ColumnDecoder::decode_into`] with a fresh decoder and output.
pub fn decode(data: &[u8], max_out: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    ColumnDecoder::new().decode_into(data, max_out, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_invert_each_other_for_every_tail() {
        for count in [0usize, 1, 7, 8, 9, 15, 16, 17, 63] {
            for len in [24usize, 32, 72] {
                let rows: Vec<u8> = (0..len * count).map(|i| (i * 131 % 251) as u8).collect();
                let mut planes = vec![0u8; rows.len()];
                rows_to_planes(&rows, len, count, &mut planes);
                for j in 0..count {
                    for i in 0..len {
                        assert_eq!(
                            planes[i * count + j],
                            rows[j * len + i],
                            "len {len} count {count}"
                        );
                    }
                }
                let mut back = vec![0u8; rows.len()];
                let dest: Vec<usize> = (0..count).map(|j| j * len).collect();
                planes_to_places(&planes, len, &dest, &mut back);
                assert_eq!(back, rows);
            }
        }
    }

    #[test]
    fn synthetic_records_round_trip_and_damage_is_an_error() {
        let (records, _) = crate::synth::PingPong {
            connections: 4,
            ..Default::default()
        }
        .build(200);
        let enc = encode(&records).expect("encodable");
        assert_eq!(decode(&enc, records.len()).unwrap(), records);
        assert!(
            decode(&enc, records.len() - 8).is_err(),
            "limit must be enforced"
        );
        for cut in [0, 1, 5, 6, 11, 12, 13, enc.len() / 2, enc.len() - 1] {
            assert!(decode(&enc[..cut], records.len()).is_err(), "cut at {cut}");
        }
        // A flip in a plane byte decodes to other records (zstd's checksum
        // and the chunk CRC catch those in a file); any flip must give a
        // result within the limit or an error, never a panic.
        for i in (0..enc.len()).step_by(enc.len() / 997 + 1) {
            let mut e = enc.clone();
            e[i] ^= 0x5a;
            if let Ok(d) = decode(&e, records.len()) {
                assert!(d.len() <= records.len());
            }
        }
    }

    #[test]
    fn encoder_and_decoder_reuse_gives_the_same_bytes() {
        let mut enc = ColumnEncoder::new();
        let mut dec = ColumnDecoder::new();
        for (conns, n) in [(4, 300), (1, 5), (64, 1000), (2, 0)] {
            let (records, _) = crate::synth::PingPong {
                connections: conns,
                ..Default::default()
            }
            .build(n);
            let mut a = Vec::new();
            assert!(enc.encode_into(&records, &mut a));
            assert_eq!(Some(a.clone()), encode(&records));
            let mut back = vec![1, 2, 3];
            dec.decode_into(&a, records.len(), &mut back).unwrap();
            assert_eq!(back, records);
        }
    }

    #[test]
    fn malformed_rows_are_refused() {
        let (mut records, _) = crate::synth::PingPong::default().build(3);
        records[2] = 20; // first record's len: below 24
        assert!(encode(&records).is_none());
        assert!(encode(&[0u8; 23]).is_none());
    }
}
