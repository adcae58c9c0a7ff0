//! Column transform of a chunk's event records, the candidate "1.1" chunk
//! codec of issue #8 (NOT yet used by the writer or the reader: no file
//! written by this build contains it). Row records compress to ~10-12 bytes
//! per event with zstd level 1; grouping them by (kind, length), delta-coding
//! each group's timestamps, xor-ing its socket ids, storing `enter_ns` as a
//! duration and transposing each group into byte planes brings the fixtures
//! to 6.9-7.9 bytes/event per chunk on the busy fixtures (pingpong, bulk:
//! ~200 events per chunk) and 4.3-6.7 over whole files at the same level;
//! chunks of a few events gain nothing (`tests/columnar.rs` prints the figures).
//!
//! Layout (all little-endian): `u32 n` records; `u16 g` groups; per group
//! `u16 kind, u16 len, u32 count`; `n` bytes giving each record's group index
//! in file order; then per group its `len * count` bytes as byte planes
//! (byte 0 of every record, then byte 1, ...), after these per-record changes
//! in group order: `ts_ns` (offset 8) minus the previous `ts_ns` of the
//! group (first: minus 0), `sock` (offset 24, records >= 32 bytes) xor the
//! previous `sock` of the group, and for kinds that carry `enter_ns` at
//! offset 32 (16, 17, 19, 33, 35; records >= 40 bytes) `ts_ns - enter_ns`.
//! All arithmetic wraps. [`decode`] checks every count against the input and
//! the caller's limit before allocating and never panics.

/// Kinds whose record holds `enter_ns` at offset 32.
const ENTER_KINDS: [u16; 5] = [16, 17, 19, 33, 35];

fn rd_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn rd_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}
fn rd_u64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

/// Transform back-to-back records (each `len` from its header, >= 24, a
/// multiple of 8). `None` if the input is not such a sequence or has more
/// than 65535 (kind, len) groups: the caller then keeps the rows.
pub fn encode(records: &[u8]) -> Option<Vec<u8>> {
    let mut keys: Vec<(u16, u16)> = Vec::new();
    let mut which: Vec<u16> = Vec::new();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut o = 0;
    while o < records.len() {
        if o + 24 > records.len() {
            return None;
        }
        let (kind, len) = (rd_u16(records, o), rd_u16(records, o + 2));
        if len < 24 || len % 8 != 0 || o + len as usize > records.len() {
            return None;
        }
        let gi = match keys.iter().position(|k| *k == (kind, len)) {
            Some(i) => i,
            None => {
                if keys.len() == u16::MAX as usize {
                    return None;
                }
                keys.push((kind, len));
                rows.push(Vec::new());
                keys.len() - 1
            }
        };
        which.push(gi as u16);
        rows[gi].push(o);
        o += len as usize;
    }
    let n = u32::try_from(which.len()).ok()?;
    let wide = keys.len() > 255;
    let mut out = Vec::with_capacity(records.len() + 16 + which.len() * 2);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(keys.len() as u16).to_le_bytes());
    for (k, rs) in keys.iter().zip(&rows) {
        out.extend_from_slice(&k.0.to_le_bytes());
        out.extend_from_slice(&k.1.to_le_bytes());
        out.extend_from_slice(&(rs.len() as u32).to_le_bytes());
    }
    for w in &which {
        if wide {
            out.extend_from_slice(&w.to_le_bytes());
        } else {
            out.push(*w as u8);
        }
    }
    let mut row = Vec::new();
    for (&(kind, len), rs) in keys.iter().zip(&rows) {
        let len = len as usize;
        let mut plane = vec![0u8; len * rs.len()];
        let (mut pts, mut psock) = (0u64, 0u64);
        for (j, &at) in rs.iter().enumerate() {
            row.clear();
            row.extend_from_slice(&records[at..at + len]);
            let ts = rd_u64(&row, 8);
            if len >= 40 && ENTER_KINDS.contains(&kind) {
                let d = ts.wrapping_sub(rd_u64(&row, 32));
                row[32..40].copy_from_slice(&d.to_le_bytes());
            }
            row[8..16].copy_from_slice(&ts.wrapping_sub(pts).to_le_bytes());
            pts = ts;
            if len >= 32 {
                let s = rd_u64(&row, 24);
                row[24..32].copy_from_slice(&(s ^ psock).to_le_bytes());
                psock = s;
            }
            for (i, b) in row.iter().enumerate() {
                plane[i * rs.len() + j] = *b;
            }
        }
        out.extend_from_slice(&plane);
    }
    Some(out)
}

/// Undo [`encode`]. `max_out` bounds the output (the chunk header's raw
/// length); any inconsistency is an error naming it.
pub fn decode(data: &[u8], max_out: usize) -> Result<Vec<u8>, String> {
    let short = |what: &str| format!("column data truncated in {what}");
    if data.len() < 6 {
        return Err(short("the counts"));
    }
    let n = rd_u32(data, 0) as usize;
    let g = rd_u16(data, 4) as usize;
    let mut o = 6;
    if data.len() < o + 8 * g {
        return Err(short("the group table"));
    }
    let mut groups = Vec::with_capacity(g);
    let (mut total_n, mut total_bytes) = (0usize, 0usize);
    for _ in 0..g {
        let (kind, len, count) = (
            rd_u16(data, o),
            rd_u16(data, o + 2) as usize,
            rd_u32(data, o + 4) as usize,
        );
        o += 8;
        if len < 24 || len % 8 != 0 {
            return Err(format!(
                "column group of kind {kind} has record length {len}"
            ));
        }
        total_n = total_n.checked_add(count).ok_or("record count overflows")?;
        total_bytes = len
            .checked_mul(count)
            .and_then(|b| b.checked_add(total_bytes))
            .ok_or("record bytes overflow")?;
        groups.push((kind, len, count));
    }
    if total_n != n {
        return Err(format!(
            "column groups hold {total_n} records, header says {n}"
        ));
    }
    if total_bytes > max_out {
        return Err(format!(
            "column data would decode to {total_bytes} bytes, limit {max_out}"
        ));
    }
    let wide = g > 255;
    let idx_len = if wide { 2 * n } else { n };
    if data.len() - o < idx_len || data.len() - o - idx_len != total_bytes {
        return Err(format!(
            "column data is {} bytes, the groups need {}",
            data.len(),
            o + idx_len + total_bytes
        ));
    }
    let idx = &data[o..o + idx_len];
    o += idx_len;
    // Planes back to rows, undoing the per-record changes, group by group.
    let mut grows: Vec<Vec<u8>> = Vec::with_capacity(g);
    for &(kind, len, count) in &groups {
        let plane = &data[o..o + len * count];
        o += len * count;
        let mut rows = vec![0u8; len * count];
        let (mut pts, mut psock) = (0u64, 0u64);
        for j in 0..count {
            let row = &mut rows[j * len..(j + 1) * len];
            for (i, b) in row.iter_mut().enumerate() {
                *b = plane[i * count + j];
            }
            let ts = pts.wrapping_add(rd_u64(row, 8));
            row[8..16].copy_from_slice(&ts.to_le_bytes());
            pts = ts;
            if len >= 32 {
                let s = rd_u64(row, 24) ^ psock;
                row[24..32].copy_from_slice(&s.to_le_bytes());
                psock = s;
            }
            if len >= 40 && ENTER_KINDS.contains(&kind) {
                let e = ts.wrapping_sub(rd_u64(row, 32));
                row[32..40].copy_from_slice(&e.to_le_bytes());
            }
        }
        grows.push(rows);
    }
    let mut next = vec![0usize; g];
    let mut out = Vec::with_capacity(total_bytes);
    for r in 0..n {
        let gi = if wide {
            rd_u16(idx, 2 * r) as usize
        } else {
            idx[r] as usize
        };
        let Some(&(_, len, count)) = groups.get(gi) else {
            return Err(format!("record {r} names column group {gi} of {g}"));
        };
        if next[gi] >= count {
            return Err(format!(
                "column group {gi} is named more than its {count} records"
            ));
        }
        out.extend_from_slice(&grows[gi][next[gi] * len..(next[gi] + 1) * len]);
        next[gi] += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for cut in [0, 1, 5, 6, 13, enc.len() / 2, enc.len() - 1] {
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
}
